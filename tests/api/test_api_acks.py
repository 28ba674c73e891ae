"""PutMedia ack events: exact serialization (kvs-wire §2.2) and the incremental parser."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.kvs.acks import (
    ACK_ERROR_IDS,
    ACK_ERRORS,
    MAX_ACK_BYTES,
    Ack,
    AckParser,
    EventType,
    serialize,
)

N1 = "91343852333193120789800267782983005990846373393"
N2 = "91343852333193120794752027940124532060778351310"

# The real trace from awslabs/amazon-kinesis-video-streams-producer-sdk-java issue #9 as
# (chunk-size line, chunk data) - the ERROR line's tail is the reconstruction in kvs-wire §2.2.
TRACE = [
    ("72", f'{{"EventType":"BUFFERING","FragmentTimecode":0,"FragmentNumber":"{N1}"}}\n'),
    ("71", f'{{"EventType":"RECEIVED","FragmentTimecode":0,"FragmentNumber":"{N1}"}}\n'),
    ("75", f'{{"EventType":"BUFFERING","FragmentTimecode":2433,"FragmentNumber":"{N2}"}}\n'),
    ("72", f'{{"EventType":"PERSISTED","FragmentTimecode":0,"FragmentNumber":"{N1}"}}\n'),
    (
        "b5",
        f'{{"EventType":"ERROR","FragmentTimecode":2433,"FragmentNumber":"{N2}",'
        f'"ErrorCode":"FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS","ErrorId":4004}}\n',
    ),
]
TRACE_ACKS = [
    Ack(EventType.BUFFERING, 0, N1),
    Ack(EventType.RECEIVED, 0, N1),
    Ack(EventType.BUFFERING, 2433, N2),
    Ack(EventType.PERSISTED, 0, N1),
    Ack.error("FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS", 2433, N2),
]


def _http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _dechunk(raw: bytes) -> bytes:
    out = bytearray()
    while raw:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += raw[:size]
        assert raw[size : size + 2] == b"\r\n"
        raw = raw[size + 2 :]
    return bytes(out)


def test_trace_reproduced_byte_for_byte() -> None:
    for ack, (size_hex, line) in zip(TRACE_ACKS, TRACE, strict=True):
        wire = serialize(ack)
        assert wire == line.encode()
        assert f"{len(wire):x}" == size_hex  # one ack per HTTP chunk, "\n" included


def test_trace_http_body_parses_back() -> None:
    raw = b"".join(_http_chunk(serialize(a)) for a in TRACE_ACKS) + b"0\r\n\r\n"
    assert raw.startswith(b"72\r\n{")
    parser = AckParser()
    assert parser.feed(_dechunk(raw)) == TRACE_ACKS
    parser.close()


def test_idle_omits_fragment_fields() -> None:
    assert serialize(Ack.idle()) == b'{"EventType":"IDLE"}\n'
    assert serialize(Ack(EventType.IDLE, 5, N1)) == b'{"EventType":"IDLE"}\n'
    assert AckParser().feed(b'{"EventType":"IDLE"}\n') == [Ack(EventType.IDLE)]


def test_error_table() -> None:
    assert set(ACK_ERRORS) == set(range(4000, 4013)) | set(range(4500, 4508)) | {5000, 5001}
    assert ACK_ERRORS[4004] == "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"
    assert ACK_ERRORS[4006] == "INVALID_MKV_DATA"
    assert ACK_ERRORS[5001] == "ARCHIVAL_ERROR"
    assert {v: k for k, v in ACK_ERRORS.items()} == dict(ACK_ERROR_IDS)
    err = Ack.error("INVALID_MKV_DATA", 7, N1)
    assert (err.event_type, err.error_id, err.error_code) == ("ERROR", 4006, "INVALID_MKV_DATA")
    with pytest.raises(ValueError, match="unknown"):
        Ack.error("NOT_A_CODE", 0, N1)


@pytest.mark.parametrize(
    "bad",
    [
        Ack(EventType.ERROR, 0, N1),  # ERROR without ErrorId
        Ack(EventType.BUFFERING, 0, "12a"),
        Ack(EventType.BUFFERING, True, N1),  # bool is not a timecode
        Ack(""),
    ],
)
def test_serialize_refuses_acks_clients_cannot_parse(bad: Ack) -> None:
    with pytest.raises(ValueError):
        serialize(bad)


def test_concatenated_without_separators_and_extra_whitespace() -> None:
    body = b"".join(serialize(a).rstrip(b"\n") for a in TRACE_ACKS)
    assert AckParser().feed(body) == TRACE_ACKS
    spaced = b"\r\n  ".join(serialize(a) for a in TRACE_ACKS) + b" \t\n"
    assert AckParser().feed(spaced) == TRACE_ACKS


def test_byte_at_a_time() -> None:
    body = b"".join(serialize(a) for a in TRACE_ACKS)
    parser = AckParser()
    got: list[Ack] = []
    for i in range(len(body)):
        got += parser.feed(body[i : i + 1])
    assert got == TRACE_ACKS
    assert parser.offset == len(body)


def test_values_keep_their_wire_types() -> None:
    [ack] = AckParser().feed(
        b'{"EventType":"ERROR","FragmentTimecode":18446744073709551615,'
        b'"FragmentNumber":"' + N2.encode() + b'","ErrorId":4001,'
        b'"ErrorCode":"MAX_FRAGMENT_SIZE_REACHED","Extra":{"a":[1,2]}}'
    )
    assert ack.fragment_number == N2  # 47 digits, never squeezed through a float
    assert ack.fragment_timecode == 2**64 - 1
    assert ack.error_id == 4001 and isinstance(ack.error_id, int)
    assert ack.event_type is EventType.ERROR


def test_unknown_event_type_is_kept() -> None:
    [ack] = AckParser().feed(b'{"EventType":"SOMETHING_NEW"}')
    assert ack.event_type == "SOMETHING_NEW"


def test_braces_and_quotes_inside_strings() -> None:
    ack = Ack(EventType.ERROR, 1, N1, 5000, 'we"ird}{ \\ code\n')
    wire = serialize(ack)
    parser = AckParser()
    assert [x for i in range(len(wire)) for x in parser.feed(wire[i : i + 1])] == [ack]


@pytest.mark.parametrize(
    ("body", "offset"),
    [
        (b'{"EventType":"IDLE"}\n{"EventType":BAD}\n', 34),
        (b'{"EventType":"IDLE"}\nxyz', 21),
        (b'  {"EventType":"IDLE",}', 22),
        (b'{"EventType":"IDLE"}\n[1]', 21),
    ],
)
def test_malformed_json_reports_byte_offset(body: bytes, offset: int) -> None:
    parser = AckParser()
    with pytest.raises(ValueError, match=rf"\bbyte {offset}\b"):
        # Split in two to check offsets are body offsets, not buffer offsets.
        parser.feed(body[:5])
        parser.feed(body[5:])
    with pytest.raises(ValueError, match="already failed"):
        parser.feed(b"{}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"FragmentTimecode":0}', "no EventType"),
        (b'{"EventType":"BUFFERING","FragmentTimecode":"0"}', "FragmentTimecode"),
        (b'{"EventType":"ERROR","ErrorId":"x"}', "ErrorId"),
        (b'{"EventType":"BUFFERING","FragmentNumber":1.5}', "FragmentNumber"),
        (b'{"EventType":"IDLE","x":"\xff"}', "UTF-8"),
    ],
)
def test_schema_violations(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AckParser().feed(body)


def test_oversized_ack_is_refused_while_streaming() -> None:
    parser = AckParser()
    parser.feed(b'{"EventType":"')
    fed = 14
    with pytest.raises(ValueError, match=f"exceeds {MAX_ACK_BYTES} bytes"):
        while True:
            parser.feed(b"A" * 1024)
            fed += 1024
            assert fed < MAX_ACK_BYTES + 2048, "parser kept buffering past the bound"


def test_oversized_ack_in_one_feed_is_refused() -> None:
    big = b'{"EventType":"IDLE","Pad":"' + b"x" * MAX_ACK_BYTES + b'"}'
    with pytest.raises(ValueError, match="exceeds"):
        AckParser().feed(big)
    small = AckParser(max_ack_bytes=100)
    with pytest.raises(ValueError, match="exceeds 100 bytes"):
        small.feed(serialize(TRACE_ACKS[0]))


def test_close_detects_truncated_body() -> None:
    parser = AckParser()
    assert parser.feed(serialize(TRACE_ACKS[0]) + b'{"EventType":"REC') == TRACE_ACKS[:1]
    with pytest.raises(ValueError, match="ended inside an ack that started at byte 114"):
        parser.close()
    complete = AckParser()
    complete.feed(serialize(TRACE_ACKS[0]))
    complete.close()


fragment_numbers = st.integers(10**46, 10**47 - 1).map(str)
timecodes = st.integers(min_value=0, max_value=2**63 - 1)
fragment_acks = st.builds(
    Ack,
    st.sampled_from([EventType.BUFFERING, EventType.RECEIVED, EventType.PERSISTED]),
    timecodes,
    fragment_numbers,
)
error_acks = st.builds(
    Ack,
    st.just(EventType.ERROR),
    st.none() | timecodes,
    st.none() | fragment_numbers,
    st.sampled_from(sorted(ACK_ERRORS)) | st.integers(0, 10**6),
    st.none() | st.text(max_size=40),
)
any_ack = fragment_acks | error_acks | st.just(Ack.idle())


@settings(max_examples=300, deadline=None)
@given(
    acks=st.lists(any_ack, max_size=12),
    separator=st.sampled_from([b"", b"\n", b"\r\n", b" \n\t"]),
    data=st.data(),
)
def test_round_trip_any_split(acks: list[Ack], separator: bytes, data: st.DataObject) -> None:
    body = b"".join(serialize(a).rstrip(b"\n") + separator for a in acks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    parser = AckParser()
    got: list[Ack] = []
    prev = 0
    for cut in [*cuts, len(body)]:
        got += parser.feed(body[prev:cut])
        prev = cut
    parser.close()
    assert got == acks


@settings(max_examples=200, deadline=None)
@given(ack=any_ack)
def test_serialized_ack_is_one_compact_line_with_fixed_key_order(ack: Ack) -> None:
    wire = serialize(ack)
    assert wire.endswith(b"\n") and wire.count(b"\n") == 1
    obj = json.loads(wire)
    # Re-encoding compactly in the parsed (= wire) key order reproduces the line exactly.
    assert json.dumps(obj, separators=(",", ":")).encode() + b"\n" == wire
    order = ["EventType", "FragmentTimecode", "FragmentNumber", "ErrorCode", "ErrorId"]
    assert list(obj) == [k for k in order if k in obj]
    assert isinstance(obj.get("FragmentNumber", ""), str)
    assert isinstance(obj.get("ErrorId", 0), int)
