"""Asterisk AudioSocket core: framing, UUID first, audio, DTMF, hangup, error kinds.

Frames are built by hand from the protocol (kind byte, big-endian length, payload), as
``res_audiosocket.c`` writes them: ``htons`` length, ``slin`` frame data copied unchanged
(little-endian on every platform Asterisk runs on), the UUID's 16 raw bytes.
"""

from __future__ import annotations

import struct
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.ingest.audiosocket import (
    MAX_PAYLOAD_BYTES,
    AudioSocketConnection,
    audio_frame,
    client_stream,
    dtmf_frame,
    error_frame,
    frame,
    hangup_frame,
    uuid_frame,
)
from callstream.ingest.events import (
    AudioReceived,
    CallEnded,
    CallStarted,
    Close,
    IngestEvent,
    ProtocolError,
)

CALL = "40325ec2-5efd-4bd3-805f-53576e581d13"


def _raw(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


def _pcm(samples: int, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-32768, 32768, samples, dtype=np.int16).astype("<i2").tobytes()


def _feed(data: bytes, conn: AudioSocketConnection | None = None) -> list[IngestEvent]:
    conn = conn or AudioSocketConnection()
    return conn.receive_bytes(data)


def _errors(events: list[IngestEvent]) -> list[str]:
    return [e.message for e in events if isinstance(e, ProtocolError)]


def test_hand_built_call_gives_uuid_audio_dtmf_hangup() -> None:
    pcm = _pcm(160)
    stream = (
        _raw(0x01, uuid.UUID(CALL).bytes)
        + _raw(0x10, pcm)
        + _raw(0x03, b"5")
        + _raw(0x10, pcm[:64])
        + _raw(0x00, b"")
    )
    conn = AudioSocketConnection()
    events = conn.receive_bytes(stream)
    assert events == [
        CallStarted("audiosocket", CALL, ("caller",), 8000, {"uuid": CALL}),
        AudioReceived(0, pcm),
        AudioReceived(0, pcm[:64]),
        CallEnded("hangup"),
        Close(),
    ]
    assert conn.dtmf == ["5"]
    assert conn.ended
    # bytes after the end are ignored
    assert conn.receive_bytes(_raw(0x10, pcm)) == []
    assert conn.receive_eof() == []


def test_samples_are_little_endian_as_asterisk_copies_slin() -> None:
    payload = struct.pack("<3h", 1, -2, 0x1234)
    conn = AudioSocketConnection()
    events = conn.receive_bytes(_raw(0x01, uuid.UUID(CALL).bytes) + _raw(0x10, payload))
    audio = [e for e in events if isinstance(e, AudioReceived)]
    assert np.frombuffer(audio[0].pcm, "<i2").tolist() == [1, -2, 0x1234]


def test_encoders_match_the_hand_built_frames() -> None:
    pcm = _pcm(160)
    assert uuid_frame(CALL) == _raw(0x01, uuid.UUID(CALL).bytes)
    assert uuid_frame(uuid.UUID(CALL)) == uuid_frame(CALL)
    assert audio_frame(pcm) == _raw(0x10, pcm)
    assert audio_frame(pcm, 16000) == _raw(0x12, pcm)
    assert dtmf_frame("#") == _raw(0x03, b"#")
    assert hangup_frame() == b"\x00\x00\x00"
    assert error_frame() == b"\xff\x00\x00"
    assert error_frame(0x04) == b"\xff\x00\x01\x04"
    with pytest.raises(ValueError):
        frame(0x100)
    with pytest.raises(ValueError):
        frame(0x10, bytes(0x10000))
    with pytest.raises(ValueError):
        audio_frame(pcm, 11025)
    with pytest.raises(ValueError):
        dtmf_frame("12")


def test_audio_before_uuid_is_refused() -> None:
    events = _feed(_raw(0x10, _pcm(10)))
    assert _errors(events) == ["kind 0x10 at byte 0 before the UUID message"]
    assert isinstance(events[-1], Close) and events[-1].code == 1002


def test_dtmf_before_uuid_is_refused() -> None:
    assert _errors(_feed(_raw(0x03, b"1")))


def test_second_uuid_is_refused() -> None:
    first = _raw(0x01, uuid.UUID(CALL).bytes)
    events = _feed(first + first)
    assert _errors(events) == [f"second UUID message at byte {len(first)}"]


@pytest.mark.parametrize("size", [0, 15, 17])
def test_uuid_of_the_wrong_size_is_refused(size: int) -> None:
    events = _feed(_raw(0x01, bytes(size)))
    assert _errors(events) == [f"UUID message at byte 0 has {size} bytes, not 16"]


def test_dtmf_of_the_wrong_size_is_refused() -> None:
    events = _feed(_raw(0x01, uuid.UUID(CALL).bytes) + _raw(0x03, b"12"))
    assert "DTMF message at byte 19 has 2 bytes, not 1" in _errors(events)


def test_odd_audio_payload_is_refused() -> None:
    events = _feed(_raw(0x01, uuid.UUID(CALL).bytes) + _raw(0x10, b"\x01\x02\x03"))
    assert _errors(events) == ["audio at byte 19 has an odd length 3"]


def test_unknown_kind_is_named_with_its_offset() -> None:
    events = _feed(_raw(0x01, uuid.UUID(CALL).bytes) + b"\x42\x00\x00")
    assert _errors(events) == ["unknown AudioSocket kind 0x42 at byte 19"]


def test_audio_kind_of_another_rate_is_refused() -> None:
    conn = AudioSocketConnection()
    events = conn.receive_bytes(_raw(0x01, uuid.UUID(CALL).bytes) + _raw(0x12, _pcm(4)))
    assert "(16000 Hz)" in _errors(events)[0]
    wide = AudioSocketConnection(sample_rate=16000)
    events = wide.receive_bytes(_raw(0x01, uuid.UUID(CALL).bytes) + _raw(0x12, _pcm(4)))
    assert isinstance(events[0], CallStarted) and events[0].sample_rate == 16000
    assert events[1] == AudioReceived(0, _pcm(4))


def test_oversized_length_is_refused_from_the_header_alone() -> None:
    conn = AudioSocketConnection()
    conn.receive_bytes(_raw(0x01, uuid.UUID(CALL).bytes))
    # Only the three header bytes: the payload never arrives, the refusal must not wait.
    events = conn.receive_bytes(b"\x10\xff\xff")
    assert _errors(events) == [
        f"AudioSocket kind 0x10 at byte 19 announces 65535 bytes (limit {MAX_PAYLOAD_BYTES})"
    ]
    assert conn.failed and len(conn._buffer) == 0
    assert conn.receive_bytes(b"\x00" * 100) == []


def test_an_announced_length_allocates_nothing_before_it_arrives() -> None:
    conn = AudioSocketConnection()
    conn.receive_bytes(_raw(0x01, uuid.UUID(CALL).bytes))
    assert conn.receive_bytes(struct.pack(">BH", 0x10, MAX_PAYLOAD_BYTES)) == []
    # the buffer holds what arrived (the header), not what was announced
    assert len(conn._buffer) == 3


def test_hangup_before_uuid_closes_without_a_call() -> None:
    conn = AudioSocketConnection()
    assert conn.receive_bytes(hangup_frame()) == [Close()]


def test_eof_ends_the_call_and_eof_inside_a_frame_is_an_error() -> None:
    conn = AudioSocketConnection()
    conn.receive_bytes(uuid_frame(CALL))
    assert conn.receive_eof() == [CallEnded("connection closed"), Close()]
    partial = AudioSocketConnection()
    partial.receive_bytes(uuid_frame(CALL) + audio_frame(_pcm(10))[:7])
    events = partial.receive_eof()
    assert _errors(events) == ["connection closed inside a frame (7 bytes pending)"]
    assert AudioSocketConnection().receive_eof() == [Close()]


def test_error_kind_names_asterisk_flags() -> None:
    conn = AudioSocketConnection()
    conn.receive_bytes(uuid_frame(CALL))
    events = conn.receive_bytes(error_frame(0x01))
    assert events == [CallEnded("error 0x01 (hangup of calling party)"), Close()]
    assert conn.error_code == 0x01

    conn = AudioSocketConnection()
    conn.receive_bytes(uuid_frame(CALL))
    events = conn.receive_bytes(error_frame(0x06))
    assert _errors(events) == [
        "peer reported AudioSocket error 0x06 (frame forwarding error, memory (allocation) error)"
    ]
    assert CallEnded("error 0x06 (frame forwarding error, memory (allocation) error)") in events

    conn = AudioSocketConnection()
    events = conn.receive_bytes(uuid_frame(CALL) + error_frame())
    assert _errors(events) == ["peer reported AudioSocket error (no code)"]
    conn = AudioSocketConnection()
    events = conn.receive_bytes(uuid_frame(CALL) + _raw(0xFF, b"\x00\x10"))
    assert _errors(events) == ["peer reported AudioSocket error 0010 (application-specific)"]
    conn = AudioSocketConnection()
    events = conn.receive_bytes(uuid_frame(CALL) + error_frame(0x18))
    assert "unknown flags 0x18" in _errors(events)[0]


def test_empty_audio_payload_gives_no_event() -> None:
    conn = AudioSocketConnection()
    events = conn.receive_bytes(uuid_frame(CALL) + _raw(0x10, b""))
    assert len(events) == 1


def test_client_stream_round_trip_is_sample_exact() -> None:
    pcm = _pcm(8000 + 37)
    conn = AudioSocketConnection()
    events: list[IngestEvent] = []
    for message in client_stream(CALL, pcm):
        events += conn.receive_bytes(message)
    audio = b"".join(e.pcm for e in events if isinstance(e, AudioReceived))
    assert audio == pcm
    assert events[-2:] == [CallEnded("hangup"), Close()]


# --- properties ----------------------------------------------------------------------------


@st.composite
def _valid_streams(draw: st.DrawFn) -> bytes:
    call = uuid.UUID(bytes=draw(st.binary(min_size=16, max_size=16)))
    parts = [uuid_frame(call)]
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            parts.append(
                audio_frame(draw(st.binary(max_size=200).map(lambda b: b[: len(b) // 2 * 2])))
            )
        else:
            parts.append(dtmf_frame(draw(st.sampled_from("0123456789*#ABCD"))))
    if draw(st.booleans()):
        parts.append(hangup_frame())
    return b"".join(parts)


def _run(data: bytes, cuts: list[int]) -> tuple[list[IngestEvent], list[str]]:
    conn = AudioSocketConnection()
    events: list[IngestEvent] = []
    last = 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)):
        events += conn.receive_bytes(data[last:cut])
        last = cut
    events += conn.receive_bytes(data[last:])
    events += conn.receive_eof()
    return events, conn.dtmf


@settings(max_examples=150)
@given(_valid_streams(), st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_of_a_valid_stream_gives_the_same_events(data: bytes, cuts: list[int]) -> None:
    whole = _run(data, [])
    assert _run(data, cuts) == whole
    # byte by byte as well
    conn = AudioSocketConnection()
    events: list[IngestEvent] = []
    for i in range(len(data)):
        events += conn.receive_bytes(data[i : i + 1])
    events += conn.receive_eof()
    assert (events, conn.dtmf) == whole
    assert not _errors(whole[0])


@settings(max_examples=150)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=8))
def test_arbitrary_bytes_never_raise_and_chunking_does_not_matter(
    data: bytes, cuts: list[int]
) -> None:
    assert _run(data, cuts) == _run(data, [])


@settings(max_examples=100)
@given(_valid_streams(), st.binary(max_size=64), st.integers(min_value=0))
def test_garbage_after_a_valid_prefix_never_raises(prefix: bytes, junk: bytes, cut: int) -> None:
    events, _ = _run(prefix + junk, [cut])
    assert sum(isinstance(e, Close) for e in events) <= 1


@settings(max_examples=100)
@given(st.binary(max_size=2000).map(lambda b: b[: len(b) // 2 * 2]))
def test_encoder_round_trip_is_sample_exact(pcm: bytes) -> None:
    conn = AudioSocketConnection()
    events: list[IngestEvent] = []
    for message in client_stream(CALL, pcm, frame_ms=20):
        events += conn.receive_bytes(message)
    assert b"".join(e.pcm for e in events if isinstance(e, AudioReceived)) == pcm


def test_recorded_dtmf_is_bounded() -> None:
    conn = AudioSocketConnection()
    conn.receive_bytes(uuid_frame(CALL) + dtmf_frame("9") * 1500)
    assert conn.dtmf == ["9"] * 1000 and not conn.failed
