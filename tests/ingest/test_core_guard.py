"""What the Twilio and plain-WebSocket cores share (websocket.receive_guarded and
end_on_close): a bug in a core closes with 1011 instead of raising, nothing comes out after
a failure or the end, and a close ends a started call once."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from callstream.ingest.events import CallEnded, Close, IngestEvent, ProtocolError
from callstream.ingest.twilio import TwilioStream, client_messages
from callstream.ingest.websocket import PlainWebSocket, end_message, frames, start_message

PCM = bytes(range(256)) * 2


def _twilio() -> tuple[TwilioStream, list[str | bytes]]:
    messages = client_messages("CA" + "0" * 32, {"inbound": PCM})
    return TwilioStream(), [*messages[:2], messages[2]]  # connected, start, one media


def _plain() -> tuple[PlainWebSocket, list[str | bytes]]:
    start = start_message("c1", encoding="PCMU", roles=("caller",))
    return PlainWebSocket(), [start, frames([PCM], encoding="PCMU")[0]]


CORES: dict[str, Callable[[], tuple[TwilioStream | PlainWebSocket, list[str | bytes]]]] = {
    "twilio": _twilio,
    "websocket": _plain,
}


def _send(core: TwilioStream | PlainWebSocket, message: str | bytes) -> list[IngestEvent]:
    return core.receive_text(message) if isinstance(message, str) else core.receive_bytes(message)


@pytest.mark.parametrize("name", sorted(CORES))
def test_a_bug_in_a_core_closes_with_1011_and_stops_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(payload: bytes) -> bytes:
        raise IndexError("decoder bug")

    monkeypatch.setattr(f"callstream.ingest.{name}.decode_pcmu", broken)
    core, messages = CORES[name]()
    for message in messages[:-1]:
        assert not any(isinstance(e, ProtocolError) for e in _send(core, message))
    events = _send(core, messages[-1])  # the audio: the decoder raises
    assert events == [
        ProtocolError("internal error: IndexError('decoder bug')"),
        Close(1011, "internal error: IndexError('decoder bug')"),
    ]
    assert core.failed and not core.ended
    for message in messages:
        assert _send(core, message) == []
    assert core.receive_close() == []  # a failed call is not ended again


@pytest.mark.parametrize("name", sorted(CORES))
def test_a_close_ends_a_started_call_once(name: str) -> None:
    core, messages = CORES[name]()
    assert core.receive_close() == []  # nothing started
    assert not core.ended
    for message in messages:
        _send(core, message)
    (ended,) = core.receive_close()
    assert isinstance(ended, CallEnded) and core.ended
    assert core.receive_close() == []
    assert _send(core, messages[-1]) == []


def test_after_the_end_message_nothing_comes_out() -> None:
    core, messages = _plain()
    for message in messages:
        _send(core, message)
    assert core.receive_text(end_message("c1"))[-1] == Close(1000, "call ended")
    assert core.receive_text(json.dumps({"event": "end"})) == []
    assert core.receive_bytes(messages[-1]) == [] and core.receive_close() == []
    assert not core.failed


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"event": "dtmf", "dtmf": {"digit": 5}}, "dtmf message has no dtmf.digit"),
        ({"event": "dtmf", "dtmf": "5"}, "dtmf message has no dtmf.digit"),
        ({"event": "mark", "mark": {}}, "mark message has no mark.name"),
        ({"event": "mark"}, "mark message has no mark.name"),
    ],
)
def test_twilio_dtmf_and_mark_without_their_field(body: dict[str, object], message: str) -> None:
    core, messages = _twilio()
    for m in messages[:2]:
        _send(core, m)
    assert core.receive_text(json.dumps(body)) == [ProtocolError(message), Close(1002, message)]
    assert core.failed and core.dtmf == [] and core.marks == []
