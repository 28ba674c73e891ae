"""RTP parsing/building (RFC 3550), RTCP demux (RFC 5761), RFC 4733 events, payload decoders."""

from __future__ import annotations

import contextlib
import itertools
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from voice_helpers import pcap_udp_payloads

from callstream.media.g711 import alaw_decode, ulaw_decode
from callstream.voice.codecs import (
    decode_l16,
    decode_pcma,
    decode_pcmu,
    decoder_for,
    decoders_for_rtpmap,
    silence,
)
from callstream.voice.rtp import (
    RtpError,
    RtpPacket,
    build_rtp,
    is_rtcp,
    parse_rtp,
    telephone_event,
)

PCAP = Path("/work/shared/testdata/siprec/pcap/g711a.pcap")

# --- known packets, byte for byte ---------------------------------------------------------

# V=2, PT 0, seq 0x1234, ts 0xDEADBEEF, SSRC 0x01020304, 4-byte payload.
PLAIN = bytes.fromhex("80001234deadbeef01020304") + b"\xff\x7f\x00\x80"
# V=2, M=1, PT 8, 2 CSRCs, extension (profile 0xBEDE, 1 word), padding 3, 2-byte payload.
FULL = (
    bytes.fromhex("b2880001000000a0cafebabe")  # 0xb2 = V2 P X CC=2; 0x88 = M + PT 8
    + bytes.fromhex("0000000a0000000b")  # CSRC 10, 11
    + bytes.fromhex("bede0001")  # extension profile 0xBEDE, 1 word
    + bytes.fromhex("10aa0000")  # one-byte header element (id 1, len 1) + pad
    + b"\x55\xd5"  # payload
    + b"\x00\x00\x03"  # padding: 3 bytes, count in the last
)


def test_parse_plain_packet() -> None:
    p = parse_rtp(PLAIN)
    assert p == RtpPacket(
        version=2,
        padding=False,
        extension=False,
        marker=False,
        payload_type=0,
        sequence=0x1234,
        timestamp=0xDEADBEEF,
        ssrc=0x01020304,
        csrc=(),
        payload=b"\xff\x7f\x00\x80",
    )
    assert type(p.payload) is bytes


def test_parse_packet_with_csrc_extension_padding_marker() -> None:
    p = parse_rtp(FULL)
    assert (p.version, p.padding, p.extension, p.marker) == (2, True, True, True)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc) == (8, 1, 160, 0xCAFEBABE)
    assert p.csrc == (10, 11)
    assert p.extension_header == (0xBEDE, bytes.fromhex("10aa0000"))
    assert p.payload == b"\x55\xd5"


def test_build_produces_the_known_bytes() -> None:
    assert (
        build_rtp(
            payload_type=0,
            sequence=0x1234,
            timestamp=0xDEADBEEF,
            ssrc=0x01020304,
            payload=b"\xff\x7f\x00\x80",
        )
        == PLAIN
    )
    assert (
        build_rtp(
            payload_type=8,
            sequence=1,
            timestamp=160,
            ssrc=0xCAFEBABE,
            payload=b"\x55\xd5",
            marker=True,
            csrc=(10, 11),
            extension=(0xBEDE, bytes.fromhex("10aa0000")),
            padding=3,
        )
        == FULL
    )


def test_header_only_packet_has_empty_payload() -> None:
    assert parse_rtp(PLAIN[:12]).payload == b""


def test_parse_accepts_bytearray_and_memoryview() -> None:
    assert parse_rtp(bytearray(FULL)) == parse_rtp(FULL)
    assert parse_rtp(memoryview(FULL)) == parse_rtp(FULL)


def test_padding_may_fill_everything_after_the_header() -> None:
    data = build_rtp(payload_type=0, sequence=0, timestamp=0, ssrc=0, payload=b"", padding=4)
    assert parse_rtp(data).payload == b""


# --- every RtpError path ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short: 0 bytes"),
        (PLAIN[:11], "too short: 11 bytes"),
        (b"\x40" + PLAIN[1:], "version must be 2, got 1"),
        (b"\x00" + PLAIN[1:], "version must be 2, got 0"),
        (b"\xc0" + PLAIN[1:], "version must be 2, got 3"),
        # CC=2 but only one CSRC word follows the header
        (bytes.fromhex("82001234deadbeef01020304") + b"\x00\x00\x00\x01", "CSRC list of 2"),
        (bytes.fromhex("8f001234deadbeef01020304"), "CSRC list of 15"),
        # X set but no room for the extension header
        (bytes.fromhex("90001234deadbeef01020304") + b"\xbe\xde", "header extension at byte 12"),
        # extension says 2 words, 1 present
        (
            bytes.fromhex("90001234deadbeef01020304") + bytes.fromhex("bede0002") + bytes(4),
            "header extension of 2 words",
        ),
        # X with a CSRC before it, extension header overruns
        (
            bytes.fromhex("91001234deadbeef01020304") + bytes(4) + b"\xbe",
            "header extension at byte 16",
        ),
        # P set, padding count 0
        (bytes.fromhex("a0001234deadbeef01020304") + b"\x01\x02\x00", "padding count 0"),
        # P set, padding count larger than what follows the header
        (bytes.fromhex("a0001234deadbeef01020304") + b"\x01\x02\x04", "padding count 4"),
        # P set on a header-only packet: the count byte is inside the header
        (bytes.fromhex("a0001234deadbeef01020301"), "padding count 1"),
        # P set, extension consumes everything: the count byte belongs to the extension
        (
            bytes.fromhex("b0001234deadbeef01020304")
            + bytes.fromhex("bede0001")
            + b"\x00\x00\x00\x01",
            "padding count 1",
        ),
    ],
)
def test_malformed_packets_raise_rtp_error(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse_rtp(data)


def test_rtp_error_is_a_value_error() -> None:
    assert issubclass(RtpError, ValueError)


@given(st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_rtp_error(data: bytes) -> None:
    try:
        p = parse_rtp(data)
    except RtpError:
        return
    assert p.version == 2
    assert len(p.payload) <= len(data) - 12


@given(st.binary(min_size=12, max_size=80))
def test_arbitrary_version_2_headers_raise_only_rtp_error(tail: bytes) -> None:
    data = bytes([0x80 | (tail[0] & 0x3F)]) + tail[1:]
    with contextlib.suppress(RtpError):
        parse_rtp(data)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"payload_type": 128}, "payload_type"),
        ({"payload_type": -1}, "payload_type"),
        ({"sequence": 65536}, "sequence"),
        ({"timestamp": 2**32}, "timestamp"),
        ({"ssrc": -1}, "ssrc"),
        ({"csrc": tuple(range(16))}, "CSRC"),
        ({"padding": 256}, "padding"),
        ({"extension": (0x10000, b"")}, "profile"),
        ({"extension": (1, b"abc")}, "multiple of 4"),
    ],
)
def test_build_rejects_out_of_range_fields(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "payload_type": 0,
        "sequence": 0,
        "timestamp": 0,
        "ssrc": 0,
        "payload": b"",
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        build_rtp(**args)  # type: ignore[arg-type]


@given(
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)
def test_build_parse_round_trip(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    csrc: tuple[int, ...],
    extension: tuple[int, bytes] | None,
    padding: int,
) -> None:
    data = build_rtp(
        payload_type=payload_type,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=payload,
        marker=marker,
        csrc=csrc,
        extension=extension,
        padding=padding,
    )
    p = parse_rtp(data)
    assert p == RtpPacket(
        version=2,
        padding=padding > 0,
        extension=extension is not None,
        marker=marker,
        payload_type=payload_type,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        csrc=csrc,
        payload=payload,
        extension_header=extension,
    )
    assert not is_rtcp(data) or 64 <= payload_type <= 95


# --- RTP/RTCP demultiplexing --------------------------------------------------------------


@pytest.mark.parametrize("packet_type", [200, 201, 202, 203, 204, 205, 206, 207])
def test_rtcp_packet_types_are_rtcp(packet_type: int) -> None:
    header = struct.pack("!BBH", 0x80, packet_type, 1) + bytes(4)
    assert is_rtcp(header)


@pytest.mark.parametrize("payload_type", [0, 8, 13, 18, 96, 101, 127])
def test_rtp_payload_types_are_not_rtcp(payload_type: int) -> None:
    for marker in (False, True):
        data = build_rtp(
            payload_type=payload_type, sequence=1, timestamp=1, ssrc=1, payload=b"", marker=marker
        )
        assert not is_rtcp(data)


def test_is_rtcp_on_short_datagrams() -> None:
    assert not is_rtcp(b"")
    assert not is_rtcp(b"\x80")


# --- RFC 4733 telephone events ------------------------------------------------------------


def test_telephone_event_fields() -> None:
    # digit 5, not end, volume 10, duration 800
    assert telephone_event(bytes([5, 10]) + (800).to_bytes(2, "big")) == (5, False, 10, 800)
    # '#' (11), end bit, reserved bit set (ignored), volume 63, duration 65535
    assert telephone_event(bytes([11, 0x80 | 0x40 | 63, 0xFF, 0xFF])) == (11, True, 63, 65535)
    # trailing bytes (a second event block) do not matter
    assert telephone_event(bytes([1, 0x80, 0, 160, 2, 0, 0, 0])) == (1, True, 0, 160)


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x02\x03"])
def test_telephone_event_malformed_is_none(payload: bytes) -> None:
    assert telephone_event(payload) is None


# --- payload decoders ---------------------------------------------------------------------

ALL_CODES = bytes(range(256))


def test_pcmu_decodes_like_media_g711_for_every_code() -> None:
    assert decode_pcmu(ALL_CODES) == ulaw_decode(ALL_CODES).astype("<i2").tobytes()
    assert (
        decode_pcmu(ALL_CODES[::-1] * 3) == ulaw_decode(ALL_CODES[::-1] * 3).astype("<i2").tobytes()
    )


def test_pcma_decodes_like_media_g711_for_every_code() -> None:
    assert decode_pcma(ALL_CODES) == alaw_decode(ALL_CODES).astype("<i2").tobytes()


@given(st.binary(max_size=400))
def test_g711_decoders_match_media_g711(payload: bytes) -> None:
    assert decode_pcmu(payload) == ulaw_decode(payload).astype("<i2").tobytes()
    assert decode_pcma(payload) == alaw_decode(payload).astype("<i2").tobytes()


def test_l16_is_byteswapped_to_little_endian() -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 0x1234], dtype=np.int16)
    assert decode_l16(samples.astype(">i2").tobytes()) == samples.astype("<i2").tobytes()
    assert decode_l16(b"\x12\x34\x56") == b"\x34\x12"  # odd trailing byte dropped
    assert decode_l16(b"") == b""


def test_decoders_return_bytes() -> None:
    for decode in (decode_pcmu, decode_pcma, decode_l16):
        assert type(decode(b"\x00\x01")) is bytes


def test_decoder_for_known_and_unknown_encodings() -> None:
    assert decoder_for("PCMU", 8000) is decode_pcmu
    assert decoder_for("pcmu", 8000, 1) is decode_pcmu
    assert decoder_for("PCMA", 8000) is decode_pcma
    assert decoder_for("L16", 8000, 1) is decode_l16
    for encoding, rate, channels in [
        ("L16", 16000, 1),
        ("L16", 8000, 2),
        ("L16", 44100, 2),
        ("PCMU", 16000, 1),
        ("telephone-event", 8000, 1),
        ("CN", 8000, 1),
        ("G729", 8000, 1),
        ("G722", 8000, 1),
        ("opus", 48000, 2),
    ]:
        assert decoder_for(encoding, rate, channels) is None


def test_decoders_for_rtpmap_fills_static_types_and_finds_non_audio() -> None:
    decoders, ignored = decoders_for_rtpmap(
        {101: ("telephone-event", 8000, 1), 96: ("L16", 8000, 1), 97: ("opus", 48000, 2)}
    )
    assert decoders == {0: decode_pcmu, 8: decode_pcma, 96: decode_l16}
    assert ignored == {13, 101}
    # a dynamic remap of a static number wins
    decoders, ignored = decoders_for_rtpmap({8: ("telephone-event", 8000, 1)})
    assert decoders == {0: decode_pcmu} and ignored == {8, 13}


def test_silence_is_cached_zero_bytes() -> None:
    assert silence(0) == b""
    assert silence(160) == bytes(320)
    assert silence(160) is silence(160)
    with pytest.raises(ValueError, match="samples"):
        silence(-1)


# --- a real capture -----------------------------------------------------------------------


@pytest.mark.skipif(not PCAP.exists(), reason=f"{PCAP} absent (shared test data not mounted)")
def test_real_pcma_capture_parses() -> None:
    datagrams = pcap_udp_payloads(PCAP)
    assert len(datagrams) == 236
    packets = [parse_rtp(d) for d in datagrams if not is_rtcp(d)]
    assert len(packets) == 236
    assert {p.payload_type for p in packets} == {8}
    assert len({p.ssrc for p in packets}) == 1
    assert {len(p.payload) for p in packets} == {240}
    seqs = [p.sequence for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    pcm = decode_pcma(packets[0].payload)
    assert len(pcm) == 480
