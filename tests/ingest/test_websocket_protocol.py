"""The plain call-audio WebSocket core: LCA's shape, jambonz ``listen`` and mod_audio_fork.

Start messages are written the way each peer sends them: LCA's ``CallMetaData`` (callId,
samplingRate, callEvent START/END), jambonz's preamble (the call attributes callSid, callId
= the SIP Call-ID, from, to, direction ..., plus sampleRate and mixType and the verb's
metadata), and mod_audio_fork's user metadata JSON.
"""

from __future__ import annotations

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
from callstream.ingest.websocket import (
    MAX_BINARY_BYTES,
    MAX_TEXT_BYTES,
    PlainWebSocket,
    deinterleave,
    end_message,
    frames,
    interleave,
    start_message,
)
from callstream.media.g711 import ulaw_decode, ulaw_encode


def _pcm(samples: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-32768, 32768, samples, dtype=np.int16).astype("<i2").tobytes()


def _error(events: list[IngestEvent]) -> tuple[str, int]:
    errors = [e for e in events if isinstance(e, ProtocolError)]
    closes = [e for e in events if isinstance(e, Close)]
    assert len(errors) == 1 and len(closes) == 1, events
    return errors[0].message, closes[0].code


def _started(start: dict[str, Any], **kwargs: Any) -> tuple[PlainWebSocket, CallStarted]:
    sock = PlainWebSocket(**kwargs)
    events = sock.receive_text(json.dumps(start))
    assert len(events) == 1 and isinstance(events[0], CallStarted), events
    return sock, events[0]


def test_lca_call_metadata_start_audio_end() -> None:
    start = {
        "callId": "call-1",
        "fromNumber": "+15551230000",
        "toNumber": "+15559870000",
        "agentId": "alice",
        "shouldRecordCall": True,
        "samplingRate": 8000,
        "callEvent": "START",
    }
    sock, started = _started(start)
    assert started == CallStarted(
        "websocket",
        "call-1",
        ("caller", "agent"),
        8000,
        {
            "fromNumber": "+15551230000",
            "toNumber": "+15559870000",
            "agentId": "alice",
            "shouldRecordCall": "true",
            "encoding": "L16",
        },
    )
    caller, agent = _pcm(160, 1), _pcm(160, 2)
    events = sock.receive_bytes(interleave([caller, agent]))
    assert events == [AudioReceived(0, caller), AudioReceived(1, agent)]
    assert sock.receive_text(json.dumps({"callId": "call-1", "callEvent": "END"})) == [
        CallEnded("end message"),
        Close(1000, "call ended"),
    ]
    assert sock.receive_bytes(interleave([caller, agent])) == []
    assert sock.receive_close() == []


def test_interleaving_is_ch0_caller_ch1_agent_sample_by_sample() -> None:
    sock, _ = _started({"callId": "c", "sampleRate": 16000})
    data = np.array([1, -1, 2, -2, 3, -3], dtype="<i2").tobytes()
    events = sock.receive_bytes(data)
    assert [
        np.frombuffer(e.pcm, "<i2").tolist() for e in events if isinstance(e, AudioReceived)
    ] == [
        [1, 2, 3],
        [-1, -2, -3],
    ]


def test_jambonz_preamble_uses_callsid_not_the_sip_call_id() -> None:
    # jambonz sends the call attributes: callSid is jambonz's call identifier, callId the
    # SIP Call-ID header; the call must be keyed by callSid.
    preamble = {
        "callSid": "aad0115d-ec21-40db-aa02-31b7b01540c5",
        "direction": "inbound",
        "from": "+15083084809",
        "to": "+15083728363",
        "callId": "fc5f8190-718a-123b-e6ba-023fd61c5256",
        "sipStatus": 200,
        "callStatus": "in-progress",
        "accountSid": "4bfe85c1-96bb-4af7-ac83-68fe7ebd562d",
        "sampleRate": 16000,
        "mixType": "stereo",
        "metadata": {"campaign": "spring", "priority": 2},
    }
    _, started = _started(preamble)
    assert started.call_id == "aad0115d-ec21-40db-aa02-31b7b01540c5"
    assert started.channels == ("caller", "agent")
    assert started.sample_rate == 16000
    assert started.metadata["callId"] == "fc5f8190-718a-123b-e6ba-023fd61c5256"
    assert started.metadata["from"] == "+15083084809"
    assert started.metadata["direction"] == "inbound"
    assert started.metadata["sipStatus"] == "200"
    assert started.metadata["mixType"] == "stereo"
    assert started.metadata["campaign"] == "spring"
    assert started.metadata["priority"] == "2"


def test_jambonz_snake_case_call_sid_is_accepted() -> None:
    _, started = _started({"call_sid": "js-1", "call_id": "sip-1", "mixType": "mono"})
    assert started.call_id == "js-1" and started.channels == ("caller",)
    assert started.metadata["call_id"] == "sip-1"


@pytest.mark.parametrize(("mix", "roles"), [("mono", ("caller",)), ("mixed", ("caller",))])
def test_jambonz_mix_types(mix: str, roles: tuple[str, ...]) -> None:
    _, started = _started({"callSid": "x", "mixType": mix})
    assert started.channels == roles


def test_mod_audio_fork_metadata_with_uuid_and_edge_defaults() -> None:
    # mod_audio_fork takes rate and mix from its API command; the metadata JSON carries
    # whatever the dialplan put in, and the edge supplies the rest.
    sock, started = _started(
        {"uuid": "5b1f4d4e-0d0e-4c57-9d1c-ffea1d3a0c11", "caller": "1000"},
        default_sample_rate=16000,
        default_channels=1,
        source="mod_audio_fork",
    )
    assert started.source == "mod_audio_fork"
    assert started.call_id == "5b1f4d4e-0d0e-4c57-9d1c-ffea1d3a0c11"
    assert started.sample_rate == 16000 and started.channels == ("caller",)
    assert started.metadata["caller"] == "1000"
    pcm = _pcm(320, 4)
    assert sock.receive_bytes(pcm) == [AudioReceived(0, pcm)]
    assert sock.receive_close() == [CallEnded("peer closed the connection")]


def test_call_id_from_the_nested_metadata_and_numbers() -> None:
    _, started = _started({"metadata": {"callId": "nested"}})
    assert started.call_id == "nested"
    _, started = _started({"callId": 42})
    assert started.call_id == "42"


def test_roles_list_and_string_numbers() -> None:
    _, started = _started({"callId": "c", "roles": ["agent", "caller"], "sampleRate": "16000"})
    assert started.channels == ("agent", "caller") and started.sample_rate == 16000
    _, started = _started({"callId": "c", "channels": ["agent"]})
    assert started.channels == ("agent",)
    _, started = _started({"callId": "c", "channels": "1"})
    assert started.channels == ("caller",)


def test_pcmu_encoding_decodes_with_the_project_g711() -> None:
    sock, started = _started({"callId": "c", "encoding": "audio/x-mulaw", "channels": 2})
    assert started.metadata["encoding"] == "PCMU"
    codes = bytes(range(256))
    events = sock.receive_bytes(codes)
    expected = ulaw_decode(codes).astype("<i2")
    assert events == [
        AudioReceived(0, expected[0::2].tobytes()),
        AudioReceived(1, expected[1::2].tobytes()),
    ]


@pytest.mark.parametrize(
    ("start", "code", "fragment"),
    [
        ({}, 1002, "no callId"),
        ({"callId": ""}, 1002, "no callId"),
        ({"callId": True}, 1002, "no callId"),
        ({"callId": ["x"]}, 1002, "no callId"),
        ({"callId": "c", "sampleRate": 44100}, 1003, "sample rate"),
        ({"callId": "c", "sampleRate": "fast"}, 1003, "sample rate"),
        ({"callId": "c", "sampleRate": True}, 1003, "sample rate"),
        ({"callId": "c", "sampleRate": [8000]}, 1003, "sample rate"),
        ({"callId": "c", "encoding": "opus"}, 1003, "unsupported encoding"),
        ({"callId": "c", "encoding": 16}, 1003, "encoding must be a string"),
        ({"callId": "c", "channels": 3}, 1003, "channel count"),
        ({"callId": "c", "channels": 0}, 1003, "channel count"),
        ({"callId": "c", "channels": True}, 1003, "channel count"),
        ({"callId": "c", "channels": 2.0}, 1003, "channel count"),
        ({"callId": "c", "channels": 1.5}, 1003, "channel count"),
        ({"callId": "c", "channels": {"n": 1}}, 1003, "channel count"),
        ({"callId": "c", "mixType": "quad"}, 1003, "channel count"),
        ({"callId": "c", "roles": ["caller", "caller"]}, 1003, "roles"),
        ({"callId": "c", "roles": ["boss"]}, 1003, "roles"),
        ({"callId": "c", "roles": [{"a": 1}]}, 1003, "roles"),
        ({"callId": "c", "roles": "caller"}, 1003, "roles"),
        ({"callId": "c", "channels": []}, 1003, "roles"),
        ({"event": "end", "callId": "c"}, 1002, "end message before"),
    ],
)
def test_start_validation(start: dict[str, Any], code: int, fragment: str) -> None:
    sock = PlainWebSocket()
    message, got = _error(sock.receive_text(json.dumps(start)))
    assert fragment in message and got == code
    assert sock.failed


@pytest.mark.parametrize(
    ("text", "code"),
    [("{", 1007), ("[]", 1007), ("null", 1007), ("x" * (MAX_TEXT_BYTES + 1), 1009)],
)
def test_bad_text(text: str, code: int) -> None:
    assert _error(PlainWebSocket().receive_text(text))[1] == code


def test_binary_before_start_odd_sizes_and_oversize() -> None:
    assert _error(PlainWebSocket().receive_bytes(b"\x00\x00"))[1] == 1002
    sock, _ = _started({"callId": "c"})
    message, code = _error(sock.receive_bytes(b"\x00" * 6))
    assert code == 1007 and "6 bytes" in message
    sock, _ = _started({"callId": "c", "channels": 1})
    assert _error(sock.receive_bytes(b"\x00" * 3))[1] == 1007
    sock, _ = _started({"callId": "c", "channels": 2, "encoding": "PCMU"})
    assert _error(sock.receive_bytes(b"\x00" * 3))[1] == 1007
    sock, _ = _started({"callId": "c"})
    assert _error(sock.receive_bytes(b"\x00" * (MAX_BINARY_BYTES + 4)))[1] == 1009
    sock, _ = _started({"callId": "c"})
    assert sock.receive_bytes(b"") == []


def test_other_text_after_start_is_ignored_and_a_second_start_is_not_a_restart() -> None:
    sock, _ = _started({"callId": "c"})
    assert sock.receive_text(json.dumps({"event": "dtmf", "dtmf": "1"})) == []
    assert sock.receive_text(json.dumps({"callId": "d"})) == []
    assert sock.ignored_text == 2
    assert sock.started is not None and sock.started.call_id == "c"
    for end in ({"event": "stop"}, {"type": "END"}, {"callEvent": "hangup"}):
        sock, _ = _started({"callId": "c"})
        assert isinstance(sock.receive_text(json.dumps(end))[0], CallEnded)


def test_start_message_and_frames_round_trip_l16_and_pcmu() -> None:
    caller, agent = _pcm(1000, 5), _pcm(1000, 6)
    for encoding in ("L16", "PCMU"):
        if encoding == "PCMU":
            caller = ulaw_decode(ulaw_encode(caller)).astype("<i2").tobytes()
            agent = ulaw_decode(ulaw_encode(agent)).astype("<i2").tobytes()
        sock = PlainWebSocket()
        events = sock.receive_text(
            start_message("c", encoding=encoding, sample_rate=16000, metadata={"k": "v"})
        )
        started = events[0]
        assert isinstance(started, CallStarted) and started.metadata["k"] == "v"
        assert started.sample_rate == 16000
        got: list[IngestEvent] = []
        for message in frames([caller, agent], encoding=encoding, sample_rate=16000):
            got += sock.receive_bytes(message)
        got += sock.receive_text(end_message("c"))
        assert b"".join(e.pcm for e in got if isinstance(e, AudioReceived) and e.channel == 0) == (
            caller
        )
        assert b"".join(e.pcm for e in got if isinstance(e, AudioReceived) and e.channel == 1) == (
            agent
        )
        assert got[-2:] == [CallEnded("end message"), Close(1000, "call ended")]


def test_interleave_pads_and_deinterleave_splits() -> None:
    assert interleave([b"\x01\x00\x02\x00", b"\x03\x00"]) == b"\x01\x00\x03\x00\x02\x00\x00\x00"
    assert deinterleave(b"\x01\x00\x03\x00\x02\x00\x00\x00", 2) == [
        b"\x01\x00\x02\x00",
        b"\x03\x00\x00\x00",
    ]
    assert deinterleave(b"\x05\x00", 1) == [b"\x05\x00"]


# --- properties ----------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_START_FIELDS = st.sampled_from(
    [
        "callId",
        "callSid",
        "uuid",
        "sampleRate",
        "samplingRate",
        "encoding",
        "channels",
        "roles",
        "mixType",
        "metadata",
        "event",
        "callEvent",
        "from",
    ]
)


@settings(max_examples=200)
@given(st.dictionaries(_START_FIELDS, _json_values, max_size=6), st.binary(max_size=64))
def test_any_start_object_is_accepted_or_refused_cleanly(
    start: dict[str, Any], audio: bytes
) -> None:
    sock = PlainWebSocket()
    events = sock.receive_text(json.dumps(start))
    assert not any(isinstance(e, Close) and e.code == 1011 for e in events), events
    events = sock.receive_bytes(audio)
    assert not any(isinstance(e, Close) and e.code == 1011 for e in events), events


@settings(max_examples=200)
@given(
    st.lists(
        st.one_of(st.text(max_size=200), st.binary(max_size=200)),
        max_size=8,
    )
)
def test_arbitrary_messages_never_raise(messages: list[str | bytes]) -> None:
    sock = PlainWebSocket()
    for message in messages:
        if isinstance(message, str):
            sock.receive_text(message)
        else:
            sock.receive_bytes(message)
    sock.receive_close()


@settings(max_examples=100)
@given(
    st.integers(1, 2),
    st.integers(0, 900),
    st.sampled_from([8000, 16000]),
    st.randoms(use_true_random=False),
)
def test_round_trip_property(channels: int, samples: int, rate: int, rnd: Any) -> None:
    pcm = [
        np.array([rnd.randint(-32768, 32767) for _ in range(samples)], dtype="<i2").tobytes()
        for _ in range(channels)
    ]
    roles = ("caller", "agent")[:channels]
    sock = PlainWebSocket()
    sock.receive_text(start_message("c", sample_rate=rate, roles=roles))
    events: list[IngestEvent] = []
    for message in frames(pcm, sample_rate=rate, frame_ms=rnd.choice([10, 20, 100])):
        events += sock.receive_bytes(message)
    for i in range(channels):
        got = b"".join(e.pcm for e in events if isinstance(e, AudioReceived) and e.channel == i)
        assert got == pcm[i]
