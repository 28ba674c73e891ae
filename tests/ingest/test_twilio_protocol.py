"""Twilio Media Streams core: the documented messages, roles, metadata, timestamps, errors.

The message texts follow the examples of Twilio's "WebSocket messages" page (connected,
start, media, dtmf, mark, stop); sequenceNumber, chunk and timestamp are strings there.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.ingest.events import (
    AudioReceived,
    CallEnded,
    CallStarted,
    Close,
    IngestEvent,
    ProtocolError,
)
from callstream.ingest.twilio import (
    MAX_MESSAGE_BYTES,
    TwilioClient,
    TwilioStream,
    client_messages,
    server_clear,
    server_mark,
    server_media,
)
from callstream.media.g711 import ulaw_decode, ulaw_encode

ACCOUNT = "AC00000000000000000000000000000000"
CALL = "CA00000000000000000000000000000000"
STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"

CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START: dict[str, Any] = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": ACCOUNT,
        "streamSid": STREAM,
        "callSid": CALL,
        "tracks": ["inbound", "outbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
    },
    "streamSid": STREAM,
}
# The documented media payload: 20 ms of µ-law (160 codes).
ULAW = bytes(range(0x00, 0xA0))


def _media(seq: int, track: str, ulaw: bytes, chunk: int, timestamp: int) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str(timestamp),
                "payload": base64.b64encode(ulaw).decode(),
            },
            "streamSid": STREAM,
        }
    )


def _started(**kwargs: Any) -> tuple[TwilioStream, list[IngestEvent]]:
    stream = TwilioStream(**kwargs)
    events = stream.receive_text(json.dumps(CONNECTED)) + stream.receive_text(json.dumps(START))
    return stream, events


def _error(events: list[IngestEvent]) -> tuple[str, int]:
    errors = [e for e in events if isinstance(e, ProtocolError)]
    closes = [e for e in events if isinstance(e, Close)]
    assert len(errors) == 1 and len(closes) == 1, events
    return errors[0].message, closes[0].code


def test_documented_start_gives_call_started_with_roles_and_metadata() -> None:
    stream, events = _started()
    assert events == [
        CallStarted(
            "twilio",
            CALL,
            ("caller", "agent"),
            8000,
            {
                "FirstName": "Jane",
                "LastName": "Doe",
                "RemoteParty": "Bob",
                "accountSid": ACCOUNT,
                "callSid": CALL,
                "streamSid": STREAM,
                "tracks": "inbound,outbound",
            },
        )
    ]
    assert stream.stream_sid == STREAM


def test_media_decodes_with_the_project_g711_and_keeps_the_timestamp() -> None:
    stream, _ = _started()
    inbound = stream.receive_text(_media(2, "inbound", ULAW, 1, 5))
    outbound = stream.receive_text(_media(3, "outbound", ULAW[::-1], 1, 5))
    assert inbound == [AudioReceived(0, ulaw_decode(ULAW).astype("<i2").tobytes(), 5)]
    assert outbound == [AudioReceived(1, ulaw_decode(ULAW[::-1]).astype("<i2").tobytes(), 5)]
    assert stream.sequence_gaps == []


def test_swap_tracks_makes_inbound_the_agent() -> None:
    stream, events = _started(swap_tracks=True)
    assert isinstance(events[0], CallStarted)
    assert events[0].channels == ("agent", "caller")
    # channel indices still follow start.tracks
    assert stream.receive_text(_media(2, "outbound", ULAW, 1, 0))[0] == AudioReceived(
        1, ulaw_decode(ULAW).astype("<i2").tobytes(), 0
    )


def test_single_track_and_telnyx_track_names() -> None:
    start = json.loads(json.dumps(START))
    start["start"]["tracks"] = ["outbound_track"]
    stream = TwilioStream()
    events = stream.receive_text(json.dumps(start))
    assert isinstance(events[0], CallStarted) and events[0].channels == ("agent",)
    assert events[0].metadata["tracks"] == "outbound"
    audio = stream.receive_text(_media(2, "outbound_track", ULAW, 1, 20))
    assert audio == [AudioReceived(0, ulaw_decode(ULAW).astype("<i2").tobytes(), 20)]
    # media on a track the start did not announce
    message, code = _error(stream.receive_text(_media(3, "inbound", ULAW, 1, 20)))
    assert "not in start.tracks" in message and code == 1002


def test_dtmf_mark_stop() -> None:
    stream, _ = _started()
    dtmf = {
        "event": "dtmf",
        "streamSid": STREAM,
        "sequenceNumber": "2",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
    mark = {"event": "mark", "sequenceNumber": "3", "streamSid": STREAM, "mark": {"name": "x"}}
    stop = {
        "event": "stop",
        "sequenceNumber": "4",
        "streamSid": STREAM,
        "stop": {"accountSid": ACCOUNT, "callSid": CALL},
    }
    assert stream.receive_text(json.dumps(dtmf)) == []
    assert stream.receive_text(json.dumps(mark)) == []
    assert stream.receive_text(json.dumps(stop)) == [
        CallEnded("stop"),
        Close(1000, "stream stopped"),
    ]
    assert stream.dtmf == ["1"] and stream.marks == ["x"] and stream.ended
    assert stream.receive_text(_media(5, "inbound", ULAW, 2, 40)) == []
    assert stream.receive_close() == []


def test_close_without_stop_ends_the_call_once() -> None:
    stream, _ = _started()
    assert stream.receive_close() == [CallEnded("connection closed without stop")]
    assert stream.receive_close() == []
    assert TwilioStream().receive_close() == []


def test_unknown_events_are_counted_and_ignored() -> None:
    stream, _ = _started()
    assert stream.receive_text(json.dumps({"event": "newThing", "sequenceNumber": "2"})) == []
    assert stream.ignored_events == 1
    assert stream.receive_text(_media(3, "inbound", ULAW, 1, 0))


def test_sequence_gaps_are_recorded_not_fatal() -> None:
    stream, _ = _started()
    stream.receive_text(_media(2, "inbound", ULAW, 1, 0))
    assert stream.receive_text(_media(5, "inbound", ULAW, 2, 20))
    stream.receive_text(_media(4, "inbound", ULAW, 3, 40))
    assert stream.sequence_gaps == [(3, 5), (6, 4)]
    assert not stream.failed


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        (json.dumps({**CONNECTED}) + "}", 1007, "not JSON"),
        ("[1, 2]", 1007, "not a JSON object"),
        ('"x"', 1007, "not a JSON object"),
        (json.dumps({"sequenceNumber": "1"}), 1002, "no 'event'"),
        (json.dumps({"event": 5}), 1002, "no 'event'"),
        (json.dumps({"event": "media", "sequenceNumber": "x"}), 1002, "bad sequenceNumber"),
        (json.dumps({"event": "media", "sequenceNumber": -1}), 1002, "bad sequenceNumber"),
        (json.dumps({"event": "media", "sequenceNumber": True}), 1002, "bad sequenceNumber"),
        (_media(1, "inbound", ULAW, 1, 0), 1002, "'media' before 'start'"),
        (json.dumps({"event": "stop"}), 1002, "'stop' before 'start'"),
        (json.dumps({"event": "start"}), 1002, "no 'start' object"),
        (json.dumps({"event": "start", "start": {}}), 1002, "callSid missing"),
        (json.dumps({"event": "start", "start": {"callSid": 7}}), 1002, "callSid missing"),
        (" " * (MAX_MESSAGE_BYTES + 1), 1009, "exceeds"),
        ("[" * 100_000 + "]" * 100_000, 1009, "exceeds"),
        ("[" * 50_000, 1007, "not JSON"),
    ],
)
def test_bad_messages_fail_with_the_right_close_code(
    message: str, code: int, fragment: str
) -> None:
    stream = TwilioStream()
    got, got_code = _error(stream.receive_text(message))
    assert fragment in got and got_code == code
    assert stream.failed
    assert stream.receive_text(json.dumps(START)) == []


def _start_with(**changes: Any) -> str:
    start = json.loads(json.dumps(START))
    start["start"].update(changes)
    return json.dumps(start)


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        (
            _start_with(mediaFormat={"encoding": "audio/l16", "sampleRate": 8000, "channels": 1}),
            1003,
            "unsupported media format",
        ),
        (
            _start_with(mediaFormat={"encoding": "audio/x-mulaw", "sampleRate": 16000}),
            1003,
            "unsupported media format",
        ),
        (
            _start_with(mediaFormat={"encoding": "audio/x-mulaw", "channels": 2}),
            1003,
            "unsupported media format",
        ),
        (_start_with(mediaFormat="mulaw"), 1002, "mediaFormat is not an object"),
        (_start_with(tracks=[]), 1002, "non-empty list"),
        (_start_with(tracks="inbound"), 1002, "non-empty list"),
        (_start_with(tracks=["both_tracks"]), 1002, "unknown track"),
        (_start_with(tracks=[{"x": 1}]), 1002, "unknown track"),
    ],
)
def test_bad_start_messages(message: str, code: int, fragment: str) -> None:
    got, got_code = _error(TwilioStream().receive_text(message))
    assert fragment in got and got_code == code


def _media_with(**media: Any) -> str:
    return json.dumps({"event": "media", "sequenceNumber": "2", "media": media})


@pytest.mark.parametrize(
    ("message", "code", "fragment"),
    [
        (json.dumps({"event": "media", "sequenceNumber": "2"}), 1002, "no 'media' object"),
        (_media_with(track="inbound", timestamp="5"), 1002, "media.payload missing"),
        (_media_with(track="inbound", payload=5), 1002, "media.payload missing"),
        (_media_with(track="inbound", payload="!!!"), 1007, "not base64"),
        (_media_with(track="inbound", payload="QQ"), 1007, "not base64"),
        (
            _media_with(track="inbound", payload="QQ==", timestamp="1.5"),
            1007,
            "bad media.timestamp",
        ),
        (_media_with(track="inbound", payload="QQ==", timestamp=-5), 1007, "bad media.timestamp"),
        (_media_with(track="sideways", payload="QQ=="), 1002, "not in start.tracks"),
        (_media_with(track=["inbound"], payload="QQ=="), 1002, "not in start.tracks"),
    ],
)
def test_bad_media_messages(message: str, code: int, fragment: str) -> None:
    stream, _ = _started()
    got, got_code = _error(stream.receive_text(message))
    assert fragment in got and got_code == code


def test_second_start_and_bad_dtmf_or_mark() -> None:
    stream, _ = _started()
    assert "second 'start'" in _error(stream.receive_text(json.dumps(START)))[0]
    for body in ({"event": "dtmf", "dtmf": {}}, {"event": "mark", "mark": "x"}):
        stream, _ = _started()
        assert _error(stream.receive_text(json.dumps(body)))[1] == 1002


def test_binary_messages_are_refused() -> None:
    stream = TwilioStream()
    assert _error(stream.receive_bytes(b"\x00\x01"))[1] == 1003
    assert stream.receive_bytes(b"x") == []


def test_empty_payload_gives_no_audio_and_integer_fields_are_accepted() -> None:
    stream, _ = _started()
    media = {"event": "media", "sequenceNumber": 2, "media": {"payload": "", "timestamp": 0}}
    assert stream.receive_text(json.dumps(media)) == []
    media["media"] = {"payload": base64.b64encode(ULAW).decode(), "timestamp": 20}
    media["sequenceNumber"] = 3
    events = stream.receive_text(json.dumps(media))
    # no track: Twilio's one-track streams are inbound
    assert events == [AudioReceived(0, ulaw_decode(ULAW).astype("<i2").tobytes(), 20)]


def test_non_string_custom_parameters_are_json_text_and_ids_win() -> None:
    stream = TwilioStream()
    events = stream.receive_text(
        _start_with(customParameters={"n": 5, "callSid": "spoof", "nested": {"a": [1]}})
    )
    assert isinstance(events[0], CallStarted)
    assert events[0].metadata["n"] == "5"
    assert events[0].metadata["nested"] == '{"a": [1]}'
    assert events[0].metadata["callSid"] == CALL


def test_client_messages_round_trip_sample_exact_per_track() -> None:
    rng = np.random.default_rng(3)
    # µ-law is lossy: encode once, and the decode of those codes is what must come back.
    inbound = ulaw_decode(ulaw_encode(rng.integers(-32768, 32768, 1000, dtype=np.int16)))
    outbound = ulaw_decode(ulaw_encode(rng.integers(-32768, 32768, 777, dtype=np.int16)))
    pcm = {"inbound": inbound.astype("<i2").tobytes(), "outbound": outbound.astype("<i2").tobytes()}
    messages = client_messages(CALL, pcm, custom_parameters={"k": "v"})
    stream = TwilioStream()
    events: list[IngestEvent] = []
    for text in messages:
        events += stream.receive_text(text)
    started = events[0]
    assert isinstance(started, CallStarted) and started.metadata["k"] == "v"
    for channel, track in enumerate(("inbound", "outbound")):
        audio = [e for e in events if isinstance(e, AudioReceived) and e.channel == channel]
        assert b"".join(e.pcm for e in audio) == pcm[track]
        assert [e.timestamp_ms for e in audio] == [i * 20 for i in range(len(audio))]
    assert events[-2:] == [CallEnded("stop"), Close(1000, "stream stopped")]
    assert stream.sequence_gaps == []


def test_client_dtmf_mark_and_server_messages() -> None:
    client = TwilioClient(CALL, tracks=("inbound",))
    stream = TwilioStream()
    for text in (client.connected(), client.start(), client.dtmf("7"), client.mark("m1")):
        stream.receive_text(text)
    assert stream.dtmf == ["7"] and stream.marks == ["m1"]
    pcm = np.arange(-800, 800, 10, dtype="<i2").tobytes()
    media = json.loads(server_media(STREAM, pcm))
    assert media["event"] == "media" and media["streamSid"] == STREAM
    assert base64.b64decode(media["media"]["payload"]) == ulaw_encode(pcm)
    assert json.loads(server_mark(STREAM, "a")) == {
        "event": "mark",
        "streamSid": STREAM,
        "mark": {"name": "a"},
    }
    assert json.loads(server_clear(STREAM)) == {"event": "clear", "streamSid": STREAM}


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.lists(st.text(max_size=300), max_size=6), st.booleans())
def test_arbitrary_text_never_raises(texts: list[str], start_first: bool) -> None:
    stream = TwilioStream()
    if start_first:
        stream.receive_text(json.dumps(START))
    for text in texts:
        events = stream.receive_text(text)
        assert all(not isinstance(e, ProtocolError) or e.message for e in events)
    stream.receive_bytes(b"")
    stream.receive_close()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200)
@given(
    st.sampled_from(["start", "media", "stop", "dtmf", "mark", "connected", "other"]),
    st.dictionaries(
        st.sampled_from(["sequenceNumber", "start", "media", "streamSid", "dtmf", "mark", "stop"]),
        _json_values,
        max_size=5,
    ),
    st.booleans(),
)
def test_well_formed_json_with_wrong_types_never_raises(
    event: str, fields: dict[str, Any], start_first: bool
) -> None:
    stream = TwilioStream()
    if start_first:
        stream.receive_text(json.dumps(START))
    events = stream.receive_text(json.dumps({"event": event, **fields}))
    internal = [e for e in events if isinstance(e, Close) and e.code == 1011]
    assert not internal, events


@settings(max_examples=100)
@given(
    st.lists(st.integers(-32768, 32767), max_size=600),
    st.lists(st.integers(-32768, 32767), max_size=600),
)
def test_round_trip_property(inbound: list[int], outbound: list[int]) -> None:
    def exact(samples: list[int]) -> bytes:
        return ulaw_decode(ulaw_encode(np.array(samples, dtype=np.int16))).astype("<i2").tobytes()

    pcm = {"inbound": exact(inbound), "outbound": exact(outbound)}
    stream = TwilioStream()
    events: list[IngestEvent] = []
    for text in client_messages(CALL, pcm):
        events += stream.receive_text(text)
    for channel, track in enumerate(pcm):
        got = b"".join(
            e.pcm for e in events if isinstance(e, AudioReceived) and e.channel == channel
        )
        assert got == pcm[track]


def test_recorded_dtmf_marks_and_gaps_are_bounded() -> None:
    stream, _ = _started()
    for i in range(1500):
        digit = {"event": "dtmf", "sequenceNumber": str(10 * i + 5), "dtmf": {"digit": "1"}}
        stream.receive_text(json.dumps(digit))
    mark = {"event": "mark", "mark": {"name": "m" * 10_000}}
    stream.receive_text(json.dumps(mark))
    assert len(stream.dtmf) == 1000 and len(stream.sequence_gaps) == 1000
    assert stream.marks == ["m" * 200]
    assert not stream.failed
