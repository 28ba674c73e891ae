"""The recording server's call control (sans-I/O): what an SBC's requests get answered and
what happens to the call, without sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callstream.voice.client import siprec_body
from callstream.voice.connectors import StreamingConfiguration, VoiceConnectorRegistry
from callstream.voice.sdp import parse_sdp
from callstream.voice.server import PortPool
from callstream.voice.sip import Request, Response, parse_message, serialize
from callstream.voice.sipheaders import Headers
from callstream.voice.uas import (
    CallEnded,
    CallStarted,
    CallUpdated,
    PrepareCall,
    RecordingUas,
    Reply,
    SendRequest,
    UasConfig,
)
from shared_data import SHARED

SRC = ("127.0.0.1", 5999)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[VoiceConnectorRegistry]:
    reg = VoiceConnectorRegistry(tmp_path / "vc.sqlite3", region="us-east-1", account_id="1")
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def connector(registry: VoiceConnectorRegistry) -> str:
    vc = registry.create("lab", require_encryption=False)
    registry.put_streaming(
        vc.voice_connector_id,
        StreamingConfiguration(data_retention_in_hours=12, disabled=False),
    )
    return vc.voice_connector_id


@pytest.fixture
def ports() -> Iterator[PortPool]:
    pool = PortPool("127.0.0.1", 41000, 41999)
    try:
        yield pool
    finally:
        pool.close_all()


@pytest.fixture
def uas(registry: VoiceConnectorRegistry, ports: PortPool, connector: str) -> RecordingUas:
    return RecordingUas(UasConfig(advertise_ip="127.0.0.1", sip_port=5060), registry, ports)


def invite(
    *,
    call_id: str = "c1@src",
    uri: str = "sip:rec@recorder.example",
    extra: list[tuple[str, str]] | None = None,
    body: tuple[str, bytes] | None = None,
    branch: str = "z9hG4bK-1",
    cseq: int = 1,
    to_tag: str | None = None,
) -> Request:
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5999;branch={branch}")
    h.add("From", "<sip:src@127.0.0.1>;tag=src1")
    h.add("To", "<sip:rec@recorder.example>" + (f";tag={to_tag}" if to_tag else ""))
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} INVITE")
    h.add("Contact", "<sip:src@127.0.0.1:5999>;+sip.src")
    h.add("Max-Forwards", "70")
    for name, value in extra or []:
        h.add(name, value)
    ctype, payload = body or siprec_body(local_ip="127.0.0.1", ports=[7000, 7002], codec="PCMU")
    h.add("Content-Type", ctype)
    request = Request("INVITE", uri, h, payload)
    return parse_message(serialize(request))  # type: ignore[return-value]


def in_dialog(method: str, call_tag: str, *, cseq: int, call_id: str = "c1@src") -> Request:
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{method}-{cseq}")
    h.add("From", "<sip:src@127.0.0.1>;tag=src1")
    h.add("To", f"<sip:rec@recorder.example>;tag={call_tag}")
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {method}")
    h.add("Max-Forwards", "70")
    return Request(method, "sip:rec@127.0.0.1", h, b"")


def handle(uas: RecordingUas, request: Request, now: float = 0.0) -> list[object]:
    return list(uas.handle(request, source=SRC, transport_key="udp", reliable=False, now=now))


def statuses(actions: list[object]) -> list[int]:
    return [a.response.status for a in actions if isinstance(a, Reply)]


def answered(uas: RecordingUas, request: Request, now: float = 0.0) -> tuple[Response, object]:
    actions = handle(uas, request, now)
    assert statuses(actions) == []  # 100 Trying is the transaction layer's
    prepare = actions[-1]
    assert isinstance(prepare, PrepareCall)
    out = uas.answer(prepare.call, now)
    reply, started = out
    assert isinstance(reply, Reply) and isinstance(started, CallStarted)
    return reply.response, prepare.call


def test_siprec_invite_is_answered_recvonly_per_leg(uas: RecordingUas, connector: str) -> None:
    response, call = answered(uas, invite())
    assert response.status == 200
    assert response.to_tag
    assert "+sip.srs" in (response.headers.get("Contact") or "")
    answer = parse_sdp(response.body)
    assert [answer.direction_of(m) for m in answer.media] == ["recvonly", "recvonly"]
    assert [m.label for m in answer.media] == ["1", "2"]
    assert all(m.port > 0 for m in answer.media)
    assert call.voice_connector_id == connector  # the only connector takes any host
    assert call.retention_hours == 12
    assert [leg.is_caller for leg in call.legs] == [True, False]
    assert call.from_number == "+15551230001" and call.to_number == "+15559870002"
    assert all(leg.stream_name.startswith(f"ChimeVoiceConnector-{connector}-") for leg in call.legs)


def test_bye_ends_the_call_and_equal_cseq_is_in_order(uas: RecordingUas) -> None:
    response, _call = answered(uas, invite())
    # the drachtio SIPp scenario reuses the re-INVITE's CSeq for its BYE: equal is allowed
    bye = in_dialog("BYE", response.to_tag or "", cseq=1)
    actions = handle(uas, bye)
    assert statuses(actions) == [200]
    assert isinstance(actions[-1], CallEnded) and actions[-1].reason == "BYE"
    assert uas.calls == []
    assert statuses(handle(uas, in_dialog("BYE", response.to_tag or "", cseq=2))) == [481]


def test_lower_cseq_in_dialog_is_refused(uas: RecordingUas) -> None:
    response, _ = answered(uas, invite(cseq=5))
    assert statuses(handle(uas, in_dialog("BYE", response.to_tag or "", cseq=4))) == [500]


def test_cancel_before_the_answer_gets_487(uas: RecordingUas, ports: PortPool) -> None:
    request = invite()
    actions = handle(uas, request)
    assert isinstance(actions[-1], PrepareCall)
    h = Headers()
    h.add("Via", "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1")
    h.add("From", "<sip:src@127.0.0.1>;tag=src1")
    h.add("To", "<sip:rec@recorder.example>")
    h.add("Call-ID", "c1@src")
    h.add("CSeq", "1 CANCEL")
    h.add("Max-Forwards", "70")
    out = handle(uas, Request("CANCEL", request.uri, h, b""))
    assert statuses(out) == [200, 487]
    assert isinstance(out[-1], CallEnded)
    assert uas.answer(actions[-1].call, 0.0) == []  # too late to answer
    assert ports.sockets == {}  # the leg ports went back


def test_reinvite_hold_and_new_metadata_update_the_call(uas: RecordingUas) -> None:
    response, call = answered(uas, invite())
    ctype, body = siprec_body(local_ip="127.0.0.1", ports=[7000, 7002], codec="PCMU")
    body = body.replace(b"a=sendonly", b"a=inactive").replace(b"+15551230001", b"+15550000000")
    again = invite(body=(ctype, body), branch="z9hG4bK-2", cseq=2, to_tag=response.to_tag)
    actions = handle(uas, again)
    assert statuses(actions) == [200]
    update = actions[-1]
    assert isinstance(update, CallUpdated) and update.metadata_changed
    reply = actions[0]
    assert isinstance(reply, Reply)
    answer = parse_sdp(reply.response.body)
    assert [answer.direction_of(m) for m in answer.media] == ["inactive", "inactive"]
    assert [m.port for m in answer.media] == [leg.port for leg in call.legs]  # same ports
    assert [leg.direction for leg in call.legs] == ["inactive", "inactive"]


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ([("Require", "siprec, frobnication")], 420),
        ([("Session-Expires", "30"), ("Supported", "timer")], 422),
    ],
)
def test_refusals_from_headers(
    uas: RecordingUas, extra: list[tuple[str, str]], status: int
) -> None:
    actions = handle(uas, invite(extra=extra))
    assert statuses(actions) == [status]
    reply = actions[0]
    assert isinstance(reply, Reply)
    if status == 420:
        assert reply.response.headers.get("Unsupported") == "frobnication"
    if status == 422:
        assert reply.response.headers.get("Min-SE") == "90"


def test_not_a_recording_offer(uas: RecordingUas) -> None:
    plain = siprec_body(local_ip="127.0.0.1", ports=[7000], codec="PCMU", nbr=True)
    assert statuses(handle(uas, invite(body=plain)))[0] == 488
    nbr = handle(uas, invite(body=plain, extra=[("X-Voice-Connector-Record-Only", "true")]))
    assert isinstance(nbr[-1], PrepareCall)
    assert nbr[-1].call.offer.kind == "nbr"


def test_connector_selection_and_streaming_state(
    uas: RecordingUas, registry: VoiceConnectorRegistry, connector: str
) -> None:
    other = registry.create("other", require_encryption=False).voice_connector_id
    # two connectors: a host naming none is refused, a host naming one selects it
    assert statuses(handle(uas, invite(call_id="a"))) == [404]
    actions = handle(uas, invite(call_id="b", uri=f"sip:x@{connector}.voiceconnector.lab"))
    assert isinstance(actions[-1], PrepareCall)
    # a connector without streaming refuses the call
    assert statuses(handle(uas, invite(call_id="c", uri=f"sip:x@{other}.voiceconnector.lab"))) == [
        403
    ]
    registry.put_streaming(other, StreamingConfiguration(data_retention_in_hours=1, disabled=True))
    assert statuses(handle(uas, invite(call_id="d", uri=f"sip:x@{other}.voiceconnector.lab"))) == [
        403
    ]


def test_limits_answer_503_with_retry_after(
    registry: VoiceConnectorRegistry, connector: str
) -> None:
    pool = PortPool("127.0.0.1", 42000, 42003)  # two ports: one call
    try:
        uas = RecordingUas(UasConfig(max_calls=5), registry, pool)
        assert isinstance(handle(uas, invite(call_id="one"))[-1], PrepareCall)
        busy = handle(uas, invite(call_id="two"))
        assert statuses(busy) == [503]
        assert busy[0].response.headers.get("Retry-After")  # type: ignore[attr-defined]
        uas1 = RecordingUas(UasConfig(max_calls=1), registry, PortPool("127.0.0.1", 42100, 42199))
        assert isinstance(handle(uas1, invite(call_id="x"))[-1], PrepareCall)
        assert statuses(handle(uas1, invite(call_id="y"))) == [503]
        uas1.ports.close_all()  # type: ignore[attr-defined]
    finally:
        pool.close_all()


def test_an_overloaded_server_refuses_new_calls_but_keeps_the_ones_it_has(
    uas: RecordingUas,
) -> None:
    response, _call = answered(uas, invite(call_id="before"), now=10.0)
    uas.shed_new_calls(until=13.0)
    refused = handle(uas, invite(call_id="during"), now=12.0)
    assert statuses(refused) == [503]
    assert refused[0].response.reason == "Server Overloaded"  # type: ignore[attr-defined]
    assert refused[0].response.headers.get("Retry-After")  # type: ignore[attr-defined]
    # the call in progress goes on: its in-dialog requests are answered
    options = in_dialog("OPTIONS", response.to_tag or "", cseq=2, call_id="before")
    assert statuses(handle(uas, options, now=12.5)) == [200]
    assert isinstance(handle(uas, invite(call_id="after"), now=13.0)[-1], PrepareCall)


def test_options_and_methods(uas: RecordingUas) -> None:
    options = in_dialog("OPTIONS", "", cseq=1)
    options.headers.set("To", "<sip:rec@recorder.example>")
    actions = handle(uas, options)
    assert statuses(actions) == [200]
    assert "INVITE" in (actions[0].response.headers.get("Allow") or "")  # type: ignore[attr-defined]
    for method, status in (("REGISTER", 405), ("FROB", 501), ("INFO", 481)):
        request = in_dialog(method, "", cseq=1)
        request.headers.set("To", "<sip:rec@recorder.example>")
        if method == "INFO":
            request.headers.set("To", "<sip:rec@recorder.example>;tag=nope")
        assert statuses(handle(uas, request)) == [status], method


def test_session_timer_expiry_sends_bye(uas: RecordingUas) -> None:
    response, _call = answered(
        uas, invite(extra=[("Session-Expires", "120"), ("Supported", "timer")]), now=100.0
    )
    assert response.headers.get("Session-Expires") == "120;refresher=uac"
    assert response.headers.get("Require") == "timer"
    assert uas.poll(100.0 + 80.0) == []  # 120 - min(32, 40) = 88 s
    out = uas.poll(100.0 + 89.0)
    bye = next(a for a in out if isinstance(a, SendRequest))
    assert bye.request.method == "BYE"
    assert (bye.request.headers.get("To") or "").endswith("tag=src1")
    assert any(isinstance(a, CallEnded) for a in out)
    # retransmitted over UDP until answered
    again = uas.poll(100.0 + 89.0 + 0.6)
    assert [a.request.method for a in again if isinstance(a, SendRequest)] == ["BYE"]
    ok = Response(200, "OK", bye.request.headers.copy(), b"")
    uas.response_received(ok)
    assert uas.poll(100.0 + 95.0) == []


SIPREC_DATA = SHARED / "testdata" / "siprec"


def _shared_body(name: str, boundary: str | None) -> tuple[str, bytes]:
    path = SIPREC_DATA / name
    if not path.exists():
        pytest.skip(f"shared test data absent ({path})")
    body = path.read_bytes().lstrip(b"\n").replace(b"\n", b"\r\n")
    return (f"multipart/mixed;boundary={boundary}" if boundary else "application/sdp"), body


def test_inactive_offer_is_answered_inactive_and_recorded(uas: RecordingUas) -> None:
    """drachtio's inactive-sdp-offer: a call on hold when recording starts is still taken
    (its legs get streams; RTP that comes anyway is written)."""
    body = _shared_body("inactive-sdp-offer.txt", "uniqueBoundary")
    response, call = answered(uas, invite(body=body))
    answer = parse_sdp(response.body)
    assert [answer.direction_of(m) for m in answer.media] == ["inactive", "inactive"]
    assert [leg.direction for leg in call.legs] == ["inactive", "inactive"]
    assert all(leg.port > 0 for leg in call.legs)


def test_non_siprec_payload_is_refused_488(uas: RecordingUas) -> None:
    body = _shared_body("non-siprec-payload.txt", None)
    assert statuses(handle(uas, invite(body=body))) == [488]


def test_serve_refuses_an_overload_threshold_below_timer_slack(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "callstream.cli", "serve", "--data-dir", str(tmp_path),
         "--overload-late-ms", "5"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "--overload-late-ms must be 0 (off) or 20-10000, got 5" in done.stderr
