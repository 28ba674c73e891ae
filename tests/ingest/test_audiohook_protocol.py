"""Genesys AudioHook v2 server core: transactions, sequence numbers, audio, errors.

Client messages are written out as the AudioHook protocol specification shows them (every
message ``{version "2", id, type, seq, serverseq, position, parameters}``), not with the
module's client encoder, except where the encoder itself is under test.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.ingest.audiohook import (
    MAX_BINARY_BYTES,
    MAX_TEXT_BYTES,
    AudioHookClient,
    AudioHookSession,
    format_duration,
    parse_duration,
)
from callstream.ingest.events import (
    AudioReceived,
    CallEnded,
    CallPaused,
    CallResumed,
    CallStarted,
    Close,
    IngestEvent,
    ProtocolError,
    Reply,
)
from callstream.media.g711 import ulaw_decode, ulaw_encode

SESSION = "e160e428-53e2-487c-977d-96989bf5c99d"
ORG = "d7934305-0972-4844-938e-9060eef73d05"
CONVERSATION = "090eaa2f-72fa-480a-83e0-8667ff89c0ec"
NULL_UUID = "00000000-0000-0000-0000-000000000000"

OPEN_PARAMS: dict[str, Any] = {
    "organizationId": ORG,
    "conversationId": CONVERSATION,
    "participant": {
        "id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0",
        "ani": "+1-555-555-1234",
        "aniName": "John Doe",
        "dnis": "+1-800-555-6789",
    },
    "media": [
        {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
        {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000},
        {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000},
    ],
    "language": "en-US",
    "customConfig": {"queue": "sales", "weight": 3},
}


def _msg(
    kind: str,
    seq: int,
    params: dict[str, Any] | None = None,
    *,
    serverseq: int = 0,
    position: str = "PT0S",
    session: str = SESSION,
) -> str:
    return json.dumps(
        {
            "version": "2",
            "id": session,
            "type": kind,
            "seq": seq,
            "serverseq": serverseq,
            "position": position,
            "parameters": params if params is not None else {},
        }
    )


def _replies(events: list[IngestEvent]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        if isinstance(e, Reply):
            assert isinstance(e.data, str)
            out.append(json.loads(e.data))
    return out


def _opened(**kwargs: Any) -> tuple[AudioHookSession, list[IngestEvent]]:
    session = AudioHookSession(**kwargs)
    return session, session.receive_text(_msg("open", 1, OPEN_PARAMS))


def _failure(events: list[IngestEvent]) -> tuple[dict[str, Any], str, int]:
    """The disconnect reply, the error message and the close code of a protocol error."""
    replies = _replies(events)
    errors = [e for e in events if isinstance(e, ProtocolError)]
    closes = [e for e in events if isinstance(e, Close)]
    assert len(replies) == 1 and len(errors) == 1 and len(closes) == 1, events
    assert replies[0]["type"] == "disconnect"
    assert replies[0]["parameters"]["reason"] == "error"
    return replies[0], errors[0].message, closes[0].code


def test_open_replies_opened_with_the_chosen_media_and_starts_the_call() -> None:
    session, events = _opened(session_id=SESSION, organization_id=ORG)
    replies = _replies(events)
    assert replies == [
        {
            "version": "2",
            "id": SESSION,
            "type": "opened",
            "seq": 1,
            "clientseq": 1,
            "parameters": {
                "media": [
                    {
                        "type": "audio",
                        "format": "PCMU",
                        "channels": ["external", "internal"],
                        "rate": 8000,
                    }
                ],
                "startPaused": False,
            },
        }
    ]
    started = events[1]
    assert started == CallStarted(
        "audiohook",
        CONVERSATION,
        ("caller", "agent"),
        8000,
        {
            "organizationId": ORG,
            "conversationId": CONVERSATION,
            "sessionId": SESSION,
            "mediaFormat": "PCMU",
            "mediaChannels": "external,internal",
            "participantId": "883efee8-3d6c-4537-b500-6d7ca4b92fa0",
            "ani": "+1-555-555-1234",
            "aniName": "John Doe",
            "dnis": "+1-800-555-6789",
            "language": "en-US",
            "customConfig.queue": "sales",
            "customConfig.weight": "3",
        },
    )
    assert session.state == "active" and session.language == "en-US"


def test_channel_order_follows_the_offered_media() -> None:
    params = json.loads(json.dumps(OPEN_PARAMS))
    params["media"] = [
        {"type": "audio", "format": "L16", "channels": ["internal", "external"], "rate": 8000},
        {"type": "audio", "format": "PCMU", "channels": ["internal"], "rate": 8000},
    ]
    session = AudioHookSession()
    events = session.receive_text(_msg("open", 1, params))
    assert isinstance(events[1], CallStarted) and events[1].channels == ("agent", "caller")
    assert _replies(events)[0]["parameters"]["media"][0]["format"] == "L16"
    agent = np.array([1, 2, 3], dtype="<i2")
    caller = np.array([-1, -2, -3], dtype="<i2")
    frame = np.stack([agent, caller], axis=1).astype("<i2").tobytes()
    assert session.receive_bytes(frame) == [
        AudioReceived(0, agent.tobytes(), 0),
        AudioReceived(1, caller.tobytes(), 0),
    ]


def test_stereo_pcmu_is_preferred_over_mono_and_over_l16() -> None:
    params = json.loads(json.dumps(OPEN_PARAMS))
    params["media"] = [
        {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000},
        {"type": "audio", "format": "L16", "channels": ["external", "internal"], "rate": 8000},
        {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
        {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 16000},
    ]
    events = AudioHookSession().receive_text(_msg("open", 1, params))
    media = _replies(events)[0]["parameters"]["media"]
    assert media == [
        {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
    ]


def test_pcmu_stereo_frames_decode_with_the_project_g711_and_carry_the_position() -> None:
    session, _ = _opened()
    codes = bytes(range(256)) * 5  # 640 samples per channel = 80 ms
    first = session.receive_bytes(codes)
    decoded = ulaw_decode(codes).astype("<i2")
    assert first == [
        AudioReceived(0, decoded[0::2].tobytes(), 0),
        AudioReceived(1, decoded[1::2].tobytes(), 0),
    ]
    second = session.receive_bytes(codes)
    assert [e.timestamp_ms for e in second if isinstance(e, AudioReceived)] == [80, 80]
    assert session.samples == 1280


def test_ping_pong_and_rtt() -> None:
    session, _ = _opened()
    events = session.receive_text(_msg("ping", 2, {"rtt": "PT0.012S"}, serverseq=1))
    assert _replies(events) == [
        {
            "version": "2",
            "id": SESSION,
            "type": "pong",
            "seq": 2,
            "clientseq": 2,
            "parameters": {},
        }
    ]
    assert session.rtt_ms == 12.0
    assert _replies(session.receive_text(_msg("ping", 3, {}, serverseq=2)))[0]["type"] == "pong"


def test_server_pause_client_paused_resumed_with_discard() -> None:
    session, _ = _opened()
    pause = _replies(session.pause())
    assert pause[0]["type"] == "pause" and pause[0]["seq"] == 2
    # audio still in flight before the client's "paused" is accepted
    assert session.receive_bytes(b"\xff" * 160)
    assert session.receive_text(_msg("paused", 2, serverseq=2, position="PT0.01S")) == [
        CallPaused()
    ]
    assert session.state == "paused"
    resume = _replies(session.resume())
    assert resume[0]["type"] == "resume" and resume[0]["seq"] == 3
    events = session.receive_text(
        _msg(
            "resumed",
            3,
            {"start": "PT0.01S", "discarded": "PT2S"},
            serverseq=3,
            position="PT2.01S",
        )
    )
    assert events == [CallResumed()]
    # the 2 s discarded while paused advance the stream position
    audio = session.receive_bytes(b"\xff" * 160)
    assert [e.timestamp_ms for e in audio if isinstance(e, AudioReceived)] == [2010, 2010]


def test_audio_while_paused_is_a_protocol_error() -> None:
    session, _ = _opened()
    session.receive_text(_msg("paused", 2, serverseq=1))
    disconnect, message, code = _failure(session.receive_bytes(b"\xff\xff"))
    assert message == "audio while paused" and code == 1002
    assert disconnect["parameters"]["info"] == "audio while paused"


def test_start_paused_option() -> None:
    session, events = _opened(start_paused=True)
    assert _replies(events)[0]["parameters"]["startPaused"] is True
    assert events[-1] == CallPaused() and session.state == "paused"


def test_discarded_advances_the_position() -> None:
    session, _ = _opened()
    session.receive_bytes(b"\xff" * 16)  # 1 ms
    session.receive_text(
        _msg("discarded", 2, {"start": "PT0.001S", "discarded": "PT0.5S"}, serverseq=1)
    )
    audio = session.receive_bytes(b"\xff" * 16)
    assert audio[0].timestamp_ms == 501  # type: ignore[union-attr]


def test_update_replies_updated() -> None:
    session, _ = _opened()
    events = session.receive_text(_msg("update", 2, {"language": "fr-FR"}, serverseq=1))
    assert _replies(events)[0]["type"] == "updated"
    assert session.language == "fr-FR"
    _, message, _ = _failure(session.receive_text(_msg("update", 3, {}, serverseq=2)))
    assert "language" in message


def test_client_error_is_kept_and_close_ends_the_call() -> None:
    session, _ = _opened()
    error = {"code": 500, "message": "Internal client error"}
    assert session.receive_text(_msg("error", 2, error, serverseq=1)) == []
    assert session.client_errors == [error]
    events = session.receive_text(_msg("close", 3, {"reason": "error"}, serverseq=1))
    assert _replies(events) == [
        {
            "version": "2",
            "id": SESSION,
            "type": "closed",
            "seq": 2,
            "clientseq": 3,
            "parameters": {},
        }
    ]
    assert events[1:] == [CallEnded("error"), Close(1000, "session closed")]
    assert session.state == "closed"
    assert session.receive_text(_msg("ping", 4, serverseq=2)) == []
    assert session.receive_bytes(b"\xff\xff") == []
    assert session.receive_close() == []


def test_close_before_open_gives_closed_without_a_call() -> None:
    session = AudioHookSession()
    events = session.receive_text(_msg("close", 1, {"reason": "end"}))
    assert [r["type"] for r in _replies(events)] == ["closed"]
    assert not any(isinstance(e, CallEnded) for e in events)


def test_socket_closed_without_close_transaction() -> None:
    session, _ = _opened()
    assert session.receive_close() == [CallEnded("connection closed without a close transaction")]
    assert AudioHookSession().receive_close() == []


def test_server_disconnect_and_event_only_while_open() -> None:
    assert AudioHookSession().disconnect() == []
    session, _ = _opened()
    events = session.disconnect("completed", "done")
    assert _replies(events)[0]["parameters"] == {"reason": "completed", "info": "done"}
    entity = {"type": "transcript", "data": {"id": "1"}}
    assert _replies(session.send_event([entity]))[0]["parameters"] == {"entities": [entity]}


# --- the connection probe -------------------------------------------------------------------


def test_connection_probe_is_answered_without_starting_a_call() -> None:
    # Genesys probes a new integration with an open for the null conversation id, then
    # closes: it must be answered (opened, closed) but is no call to record.
    params = json.loads(json.dumps(OPEN_PARAMS))
    params["conversationId"] = NULL_UUID
    params["participant"] = {"id": NULL_UUID, "ani": "", "aniName": "", "dnis": ""}
    session = AudioHookSession()
    events = session.receive_text(_msg("open", 1, params))
    assert [r["type"] for r in _replies(events)] == ["opened"]
    assert not any(isinstance(e, CallStarted) for e in events)
    assert session.probe
    events = session.receive_text(_msg("close", 2, {"reason": "end"}, serverseq=1))
    assert [r["type"] for r in _replies(events)] == ["closed"]
    assert not any(isinstance(e, CallEnded) for e in events)
    assert events[-1] == Close(1000, "session closed")


# --- protocol errors --------------------------------------------------------------------------


def test_binary_before_open_is_refused_with_disconnect() -> None:
    session = AudioHookSession(session_id=SESSION)
    disconnect, message, code = _failure(session.receive_bytes(b"\xff" * 320))
    assert message == "audio before the open transaction completed" and code == 1002
    assert disconnect["id"] == SESSION and disconnect["seq"] == 1
    assert session.state == "failed"
    assert session.receive_text(_msg("open", 1, OPEN_PARAMS)) == []


@pytest.mark.parametrize(("size", "code"), [(3, 1007), (1, 1007), (MAX_BINARY_BYTES + 2, 1009)])
def test_odd_and_oversized_frames(size: int, code: int) -> None:
    session, _ = _opened()
    assert _failure(session.receive_bytes(b"\xff" * size))[2] == code


def test_odd_l16_frame() -> None:
    params = json.loads(json.dumps(OPEN_PARAMS))
    params["media"] = [{"type": "audio", "format": "L16", "channels": ["external"], "rate": 8000}]
    session = AudioHookSession()
    session.receive_text(_msg("open", 1, params))
    assert _failure(session.receive_bytes(b"\x00" * 3))[2] == 1007
    session = AudioHookSession()
    session.receive_text(_msg("open", 1, params))
    assert session.receive_bytes(b"") == []


def test_seq_errors_are_answered_with_disconnect_error() -> None:
    for seq in (3, 0, 1):  # a skip, zero, a repeat of the open's seq
        session, _ = _opened()
        disconnect, message, code = _failure(session.receive_text(_msg("ping", seq, serverseq=1)))
        assert "invalid seq" in message and code == 1002
        assert disconnect["clientseq"] == 1  # the last valid client seq
    session, _ = _opened()
    _, message, _ = _failure(session.receive_text(_msg("ping", 2, serverseq=5)))
    assert message == "invalid serverseq 5 (last sent 1)"
    session = AudioHookSession()
    _, message, _ = _failure(session.receive_text(_msg("open", 2, OPEN_PARAMS)))
    assert "invalid seq 2 (expected 1" in message


def test_session_id_and_organization_mismatch() -> None:
    session, _ = _opened()
    _, message, _ = _failure(session.receive_text(_msg("ping", 2, serverseq=1, session=NULL_UUID)))
    assert message == "session identifier mismatch"
    session = AudioHookSession(session_id=SESSION)
    _, message, _ = _failure(session.receive_text(_msg("open", 1, OPEN_PARAMS, session=ORG)))
    assert message == "session identifier mismatch"
    session = AudioHookSession(organization_id=NULL_UUID)
    _, message, code = _failure(session.receive_text(_msg("open", 1, OPEN_PARAMS)))
    assert "organizationId" in message and code == 1008


def _envelope(**changes: Any) -> str:
    msg = json.loads(_msg("open", 1, OPEN_PARAMS))
    for key, value in changes.items():
        if value is None:
            msg.pop(key)
        else:
            msg[key] = value
    return json.dumps(msg)


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("{", 1007, "not JSON"),
        ("[1]", 1007, "not a JSON object"),
        ("x" * (MAX_TEXT_BYTES + 1), 1009, "exceeds 65535"),
        ("[" * 60_000, 1007, "not JSON"),
        (_envelope(version="1"), 1002, "unsupported protocol version"),
        (_envelope(version=2), 1002, "unsupported protocol version"),
        (_envelope(version=None), 1002, "unsupported protocol version"),
        (_envelope(type=None), 1002, "'type' and 'id'"),
        (_envelope(id=7), 1002, "'type' and 'id'"),
        (_envelope(seq="1"), 1002, "integer 'seq'"),
        (_envelope(seq=True), 1002, "integer 'seq'"),
        (_envelope(serverseq=None), 1002, "integer 'seq' and 'serverseq'"),
        (_envelope(parameters=[]), 1002, "'parameters' object"),
        (_envelope(position="5s"), 1002, "invalid position"),
        (_envelope(position=None), 1002, "invalid position"),
        (_envelope(type="opened"), 1002, "'opened' is not a supported client message"),
        (_envelope(parameters={}), 1002, "open without organizationId"),
        (_envelope(parameters={**OPEN_PARAMS, "media": "PCMU"}), 1002, "'media' list"),
        (_envelope(parameters={**OPEN_PARAMS, "conversationId": ""}), 1002, "conversationId"),
        (_envelope(parameters={**OPEN_PARAMS, "media": []}), 1003, "no offered media"),
        (
            _envelope(
                parameters={
                    **OPEN_PARAMS,
                    "media": [
                        {"type": "audio", "format": "opus", "channels": ["external"], "rate": 8000},
                        {"type": "video", "format": "PCMU", "channels": ["external"], "rate": 8000},
                        {"type": "audio", "format": "PCMU", "channels": ["x"], "rate": 8000},
                        {
                            "type": "audio",
                            "format": ["PCMU"],
                            "channels": ["external"],
                            "rate": 8000,
                        },
                        {
                            "type": "audio",
                            "format": "PCMU",
                            "channels": [["external"]],
                            "rate": 8000,
                        },
                        {"type": "audio", "format": "PCMU", "channels": [{"a": 1}], "rate": 8000},
                        {
                            "type": "audio",
                            "format": {"a": 1},
                            "channels": ["external"],
                            "rate": 8000,
                        },
                        {"type": "audio", "format": "PCMU", "channels": [], "rate": 8000},
                        {
                            "type": "audio",
                            "format": "PCMU",
                            "channels": ["external", "external"],
                            "rate": 8000,
                        },
                        "PCMU",
                    ],
                }
            ),
            1003,
            "no offered media",
        ),
    ],
)
def test_bad_envelopes_and_open_parameters(text: str, code: int, fragment: str) -> None:
    session = AudioHookSession()
    _, message, got = _failure(session.receive_text(text))
    assert fragment in message and got == code


def test_messages_before_open_and_a_second_open() -> None:
    for kind in ("paused", "resumed", "update", "discarded"):
        session = AudioHookSession()
        _, message, _ = _failure(session.receive_text(_msg(kind, 1, {"language": "en-US"})))
        assert f"'{kind}' before the open transaction" in message
    session, _ = _opened()
    _, message, _ = _failure(session.receive_text(_msg("open", 2, OPEN_PARAMS, serverseq=1)))
    assert message == "second 'open' message"
    session, _ = _opened()
    _, message, _ = _failure(session.receive_text(_msg("ping", 2, {"rtt": 5}, serverseq=1)))
    assert "rtt" in message
    session, _ = _opened()
    bad = {"start": "PT0S", "discarded": "soon"}
    _, message, _ = _failure(session.receive_text(_msg("discarded", 2, bad, serverseq=1)))
    assert "not a duration" in message


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("PT0S", 0),
        ("PT1.25S", 1_250_000),
        ("PT0.012S", 12_000),
        ("PT3600S", 3_600_000_000),
        ("PT.5S", 500_000),  # the reference implementation's grammar allows no integer part
        ("PT0.000000001S", 0),
        ("PT1.1234567891234S", 1_123_456),  # digits past nanoseconds are dropped
    ],
)
def test_parse_duration(text: str, micros: int) -> None:
    assert parse_duration(text) == micros


@pytest.mark.parametrize(
    "text", ["PT", "PTS", "PT.S", "PT1.S", "P1S", "PT-1S", "PT1M", 5, None, "PT1,5S"]
)
def test_parse_duration_refuses(text: Any) -> None:
    assert parse_duration(text) is None


def test_format_duration_is_exact_to_the_sample() -> None:
    assert format_duration(0) == "PT0S"
    assert format_duration(8000) == "PT1S"
    assert format_duration(1) == "PT0.000125S"
    assert format_duration(12345) == "PT1.543125S"
    for samples in (0, 1, 7, 160, 8001, 123456789):
        assert parse_duration(format_duration(samples)) == samples * 1_000_000 // 8000


# --- the client encoder ---------------------------------------------------------------------


def _run_client(
    client: AudioHookClient, session: AudioHookSession, texts: list[str]
) -> list[IngestEvent]:
    events: list[IngestEvent] = []
    for text in texts:
        got = session.receive_text(text)
        for e in got:
            if isinstance(e, Reply) and isinstance(e.data, str):
                client.receive(e.data)
        events += got
    return events


def test_client_encoder_full_session_round_trip() -> None:
    rng = np.random.default_rng(9)
    external = ulaw_decode(ulaw_encode(rng.integers(-32768, 32768, 4000, dtype=np.int16)))
    internal = ulaw_decode(ulaw_encode(rng.integers(-32768, 32768, 4000, dtype=np.int16)))
    pcm = {
        "external": external.astype("<i2").tobytes(),
        "internal": internal.astype("<i2").tobytes(),
    }
    client = AudioHookClient(
        session_id=SESSION,
        organization_id=ORG,
        conversation_id=CONVERSATION,
        custom_config={"a": "b"},
        language="en-US",
    )
    session = AudioHookSession(session_id=SESSION, organization_id=ORG)
    events = _run_client(client, session, [client.open()])
    assert client.opened is not None and client.opened["channels"] == ["external", "internal"]
    for frame in client.frames(pcm):
        events += session.receive_bytes(frame)
    events += _run_client(
        client,
        session,
        [client.ping(12.5), client.paused(), client.resumed(800), client.update("de-DE")],
    )
    events += session.receive_bytes(client.audio({"external": pcm["external"][:320]}))
    events += _run_client(client, session, [client.error(503, "busy"), client.close()])
    assert not any(isinstance(e, ProtocolError) for e in events), events
    for channel, name in enumerate(("external", "internal")):
        audio = [e for e in events if isinstance(e, AudioReceived) and e.channel == channel]
        assert b"".join(e.pcm for e in audio[:-1]) == pcm[name]
        assert [e.timestamp_ms for e in audio[:-1]] == [i * 20 for i in range(len(audio) - 1)]
        # after 800 discarded samples (100 ms) the position jumps
        assert audio[-1].timestamp_ms == 500 + 100
    assert b"".join(
        e.pcm for e in events if isinstance(e, AudioReceived) and e.channel == 1
    ).endswith(bytes(320))
    assert session.rtt_ms == 12.5 and session.language == "de-DE"
    assert session.client_errors == [{"code": 503, "message": "busy"}]
    assert events[-2:] == [CallEnded("end"), Close(1000, "session closed")]


def test_client_audio_needs_opened_media() -> None:
    client = AudioHookClient(session_id=SESSION, organization_id=ORG, conversation_id=CONVERSATION)
    with pytest.raises(ValueError):
        client.audio({"external": b"\x00\x00"})


# --- properties -----------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150)
@given(
    st.sampled_from(["open", "ping", "close", "paused", "resumed", "discarded", "update", "error"]),
    st.dictionaries(
        st.sampled_from(
            [
                "organizationId",
                "conversationId",
                "participant",
                "media",
                "language",
                "customConfig",
                "rtt",
                "discarded",
                "start",
                "reason",
                "code",
            ]
        ),
        _json_values,
        max_size=6,
    ),
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "type": _json_values,
                "format": st.sampled_from(["PCMU", "L16"]) | _json_values,
                "channels": st.lists(st.sampled_from(["external", "internal"]) | _json_values)
                | _json_values,
                "rate": st.just(8000) | _json_values,
            },
        ),
        max_size=3,
    ),
    st.booleans(),
)
def test_any_parameters_are_accepted_or_refused_cleanly(
    kind: str, params: dict[str, Any], media: list[dict[str, Any]], open_first: bool
) -> None:
    session = AudioHookSession()
    seq = 1
    if open_first:
        session.receive_text(_msg("open", 1, OPEN_PARAMS))
        seq = 2
    if kind == "open" and "media" not in params:
        params = {**OPEN_PARAMS, **params, "media": media}
    events = session.receive_text(_msg(kind, seq, params, serverseq=int(open_first)))
    events += session.receive_bytes(b"\xff" * 4)
    assert not any(isinstance(e, Close) and e.code == 1011 for e in events), events


@settings(max_examples=200)
@given(st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=8))
def test_arbitrary_messages_never_raise(messages: list[str | bytes]) -> None:
    session = AudioHookSession()
    for message in [_msg("open", 1, OPEN_PARAMS), *messages]:
        if isinstance(message, str):
            session.receive_text(message)
        else:
            session.receive_bytes(message)
    session.receive_close()


@settings(max_examples=60)
@given(
    st.sampled_from(
        [
            ("PCMU", ["external", "internal"]),
            ("PCMU", ["internal", "external"]),
            ("L16", ["external", "internal"]),
            ("L16", ["internal"]),
            ("PCMU", ["external"]),
        ]
    ),
    st.lists(st.integers(-32768, 32767), max_size=1200),
    st.sampled_from([10, 20, 100]),
)
def test_encoder_round_trip_every_media(
    media: tuple[str, list[str]], samples: list[int], frame_ms: int
) -> None:
    fmt, channels = media
    pcm = np.array(samples, dtype=np.int16)
    if fmt == "PCMU":
        pcm = ulaw_decode(ulaw_encode(pcm))
    data = {
        name: (pcm if i == 0 else pcm[::-1]).astype("<i2").tobytes()
        for i, name in enumerate(channels)
    }
    offered = [{"type": "audio", "format": fmt, "channels": channels, "rate": 8000}]
    client = AudioHookClient(
        session_id=SESSION, organization_id=ORG, conversation_id=CONVERSATION, media=offered
    )
    session = AudioHookSession()
    events = _run_client(client, session, [client.open()])
    for frame in client.frames(data, frame_ms=frame_ms):
        events += session.receive_bytes(frame)
    started = events[1]
    assert isinstance(started, CallStarted)
    roles = {"external": "caller", "internal": "agent"}
    assert started.channels == tuple(roles[c] for c in channels)
    for i, name in enumerate(channels):
        got = b"".join(e.pcm for e in events if isinstance(e, AudioReceived) and e.channel == i)
        assert got == data[name]


def test_recorded_client_errors_are_bounded() -> None:
    session, _ = _opened()
    for seq in range(2, 1502):
        session.receive_text(_msg("error", seq, {"code": 500, "message": "x"}, serverseq=1))
    assert len(session.client_errors) == 1000 and session.state == "active"


def test_reconnect_moves_the_conversation_to_a_new_session() -> None:
    """The server asks for a reconnect; the client announces it, closes the old session
    with reason ``reconnect`` and opens a new one listing the old in continuedSessions."""
    old, _ = _opened()
    assert _replies(old.reconnect()) == [
        {
            "version": "2",
            "id": SESSION,
            "type": "reconnect",
            "seq": 2,
            "clientseq": 1,
            "parameters": {},
        }
    ]
    assert old.receive_text(_msg("reconnecting", 2, serverseq=2)) == []
    events = old.receive_text(_msg("close", 3, {"reason": "reconnect"}, serverseq=2))
    assert CallEnded("reconnect") in events
    assert old.reconnect_notices == 1

    new_id = "5d0b1e3a-7c1e-4a43-9a51-0d2a5b0c7e11"
    continued = [{"id": SESSION, "serverseq": 3, "clientseq": 3}]
    new = AudioHookSession()
    events = new.receive_text(
        _msg("open", 1, {**OPEN_PARAMS, "continuedSessions": continued}, session=new_id)
    )
    started = next(e for e in events if isinstance(e, CallStarted))
    assert started.call_id == CONVERSATION
    assert started.metadata["continuedSessions"] == SESSION
    assert new.receive_text(_msg("reconnected", 2, serverseq=1, session=new_id)) == []
    assert new.state == "active"


def test_reconnect_messages_need_an_open_session() -> None:
    session = AudioHookSession()
    _, message, _ = _failure(session.receive_text(_msg("reconnecting", 1)))
    assert "before the open" in message
