"""Timeline assembler tests: time stays true, audio is never dropped or moved by jitter."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.media.tracks import Channel, StereoAssembler, TrackTimeline, ns_to_samples

MS = 1_000_000
T0 = 1_726_677_688_724 * MS  # an absolute (epoch) producer timestamp, as Connect sends
YACCHI = Path("/work/shared/testdata/kvs/yacchi")


def pcm(values: list[int] | np.ndarray) -> bytes:
    return np.asarray(values, dtype="<i2").tobytes()


def ramp(start: int, n: int) -> bytes:
    """n distinct, recognisable samples starting at ``start``."""
    return pcm((np.arange(start, start + n) % 30000).astype(np.int16))


def samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


# --- ns_to_samples ----------------------------------------------------------------------------


@given(st.integers(-(10**15), 10**15), st.sampled_from([8000, 11025, 16000, 44100, 48000]))
def test_ns_to_samples_is_exact_round(delta: int, rate: int) -> None:
    from fractions import Fraction

    assert ns_to_samples(delta, rate) == round(Fraction(delta * rate, 10**9))


def test_ns_to_samples_large_epoch_deltas_stay_exact() -> None:
    # float math would lose samples here (8e17 > 2**53)
    assert ns_to_samples(100_000 * 10**9 + 125_000, 8000) == 800_000_001


# --- TrackTimeline ----------------------------------------------------------------------------


def test_first_frame_sets_origin_and_contiguous_frames_concatenate() -> None:
    tl = TrackTimeline(8000)
    assert tl.origin_ns is None
    a, b = ramp(0, 512), ramp(512, 512)
    assert tl.add(T0, a) == 0
    assert tl.add(T0 + 64 * MS, b) == 0
    assert tl.origin_ns == T0
    assert tl.samples_written == 1024
    assert tl.take() == a + b
    assert tl.take() == b""
    assert tl.samples_written == 1024 and tl.buffered_samples == 0


def test_gap_is_filled_with_exact_silence() -> None:
    tl = TrackTimeline(8000)
    tl.add(T0, ramp(1, 160))  # 0..20 ms
    inserted = tl.add(T0 + 100 * MS, ramp(500, 160))  # next frame at 100 ms
    assert inserted == 640  # 80 ms at 8 kHz
    out = samples(tl.take())
    assert len(out) == 800 + 160
    assert out[160:800].tolist() == [0] * 640
    assert out[800:].tolist() == samples(ramp(500, 160)).tolist()
    assert (tl.gap_count, tl.silence_samples) == (1, 640)


def test_small_gap_within_tolerance_is_not_filled() -> None:
    tl = TrackTimeline(8000, gap_tolerance_ms=2.0)
    tl.add(T0, ramp(1, 160))
    assert tl.add(T0 + 22 * MS, ramp(2, 160)) == 0  # 2 ms late: jitter, append directly
    assert tl.samples_written == 320
    tl2 = TrackTimeline(8000, gap_tolerance_ms=2.0)
    tl2.add(T0, ramp(1, 160))
    assert tl2.add(T0 + 23 * MS, ramp(2, 160)) == 24  # 3 ms late: a real hole, whole gap filled


def test_overlap_and_frames_before_origin_are_appended_not_dropped() -> None:
    tl = TrackTimeline(8000, origin_ns=T0)
    early = ramp(100, 80)
    tl.add(T0 - 50 * MS, early)  # before the explicit origin
    first = ramp(1, 160)
    tl.add(T0, first)  # position 0 < 80 written: overlap, appended
    late_overlap = ramp(7, 160)
    tl.add(T0 + 5 * MS, late_overlap)  # overlaps again
    assert tl.take() == early + first + late_overlap
    assert tl.overlap_samples == 400 + 80 + 200  # -50 ms, then 80 and 200 samples behind


def test_explicit_origin_fills_leading_silence() -> None:
    tl = TrackTimeline(16000, origin_ns=T0)
    tl.add(T0 + 10 * MS, ramp(1, 320))
    out = samples(tl.take())
    assert out[:160].tolist() == [0] * 160 and len(out) == 480


def test_pad_to_and_partial_take() -> None:
    tl = TrackTimeline(8000)
    tl.add(T0, ramp(1, 100))
    assert tl.pad_to(50) == 0
    assert tl.pad_to(150) == 50
    assert tl.samples_written == 150
    head = tl.take(30)
    assert head == ramp(1, 30)
    rest = tl.take()
    assert rest == ramp(31, 70) + bytes(100)
    assert tl.take(10) == b""


def test_multichannel_8bit_fill_and_validation() -> None:
    tl = TrackTimeline(8000, channels=2, sample_width=1, fill_byte=0xFF)  # µ-law stereo
    tl.add(T0, b"\x01\x02" * 8)
    assert tl.add(T0 + 4 * MS, b"\x03\x04") == 24  # 32 expected - 8 written
    assert tl.take() == b"\x01\x02" * 8 + b"\xff\xff" * 24 + b"\x03\x04"
    with pytest.raises(ValueError, match="whole number"):
        tl.add(T0 + 10 * MS, b"\x01\x02\x03")
    with pytest.raises(ValueError):
        TrackTimeline(8000, fill_byte=256)
    with pytest.raises(ValueError):
        TrackTimeline(0)


def test_max_gap_refuses_absurd_jumps() -> None:
    tl = TrackTimeline(8000, max_gap_ms=60_000)
    tl.add(T0, ramp(1, 160))
    with pytest.raises(ValueError, match="max_gap_ms"):
        tl.add(T0 + 10**18, ramp(1, 160))  # would be ~254 TB of silence
    assert tl.add(T0 + 30_000 * MS, ramp(1, 160)) == 240_000 - 160
    sa = StereoAssembler(8000, max_gap_ms=60_000)
    sa.add(0, T0, ramp(1, 160))
    with pytest.raises(ValueError, match="max_gap_ms"):
        sa.add(1, T0 - 10**18, ramp(1, 160))  # a garbage early start on the other track
    sa2 = StereoAssembler(8000, max_gap_ms=60_000)
    sa2.add(1, T0, ramp(1, 160))
    with pytest.raises(ValueError, match="max_gap_ms"):
        sa2.add(0, T0 - 10**18, ramp(1, 160))
    assert sa2.origin_ns == T0 and sa2.tracks[0].origin_ns == T0  # nothing half-applied


@st.composite
def contiguous_frames(draw: st.DrawFn) -> tuple[int, list[int]]:
    rate = draw(st.sampled_from([8000, 16000, 11025, 44100, 48000]))
    sizes = draw(st.lists(st.integers(1, 2000), min_size=1, max_size=40))
    return rate, sizes


@settings(max_examples=150, deadline=None)
@given(contiguous_frames(), st.integers(0, 10**6))
def test_contiguous_frames_with_ms_rounded_timestamps_are_bit_exact(
    case: tuple[int, list[int]], start_ms: int
) -> None:
    rate, sizes = case
    origin = T0 + start_ms * MS
    tl = TrackTimeline(rate)
    expected = bytearray()
    pos = 0
    streamed = bytearray()
    for i, n in enumerate(sizes):
        ts = origin + round(pos * 1000 / rate) * MS  # timestamp rounded to whole ms
        frame = ramp(pos, n)
        assert tl.add(ts, frame) == 0
        expected += frame
        pos += n
        if i % 3 == 0:
            streamed += tl.take()
    streamed += tl.take()
    assert bytes(streamed) == bytes(expected)
    assert tl.samples_written == pos and tl.silence_samples == 0


def test_100_sample_frames_at_8khz_12_5ms_are_bit_exact() -> None:
    tl = TrackTimeline(8000)
    frames = [ramp(i * 100, 100) for i in range(200)]
    for i, f in enumerate(frames):
        tl.add(T0 + round(i * 12.5) * MS, f)  # 0, 12, 25, 38, 50, ... ms (half to even)
    assert tl.take() == b"".join(frames)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([8000, 16000, 48000]),
    st.lists(st.tuples(st.integers(1, 800), st.integers(0, 500)), min_size=1, max_size=25),
)
def test_gaps_are_filled_to_the_exact_timestamp_position(
    rate: int, frames: list[tuple[int, int]]
) -> None:
    """Each frame lands at round(ts * rate) when it follows a gap > tolerance."""
    tol = 2.0
    tl = TrackTimeline(rate, gap_tolerance_ms=tol)
    now_ns = 0
    written = 0
    out_positions: list[tuple[int, int, bytes]] = []
    for n, gap_ms in frames:
        frame = ramp(written + 1, n)
        expect = ns_to_samples(now_ns, rate)
        hole = expect - written
        start = expect if hole > tol * rate / 1000 else written
        inserted = tl.add(T0 + now_ns, frame)
        assert inserted == (start - written)
        out_positions.append((start, n, frame))
        written = start + n
        now_ns += round(n * 10**9 / rate) + gap_ms * MS
    out = tl.take()
    assert len(out) == 2 * written
    filled = np.zeros(written, dtype=bool)
    for start, n, frame in out_positions:
        assert out[2 * start : 2 * (start + n)] == frame
        filled[start : start + n] = True
    assert not samples(out)[~filled].any()  # everything else is silence


# --- StereoAssembler --------------------------------------------------------------------------


def stereo(data: bytes) -> np.ndarray:
    return samples(data).reshape(-1, 2)


def test_stereo_interleaves_caller_left_agent_right() -> None:
    sa = StereoAssembler(8000)
    sa.add(Channel.CALLER, T0, pcm([1, 2, 3]))
    sa.add(Channel.AGENT, T0, pcm([-1, -2, -3]))
    assert stereo(sa.finish()).tolist() == [[1, -1], [2, -2], [3, -3]]


def test_stereo_origin_is_earliest_timestamp_even_if_it_arrives_second() -> None:
    sa = StereoAssembler(8000)
    sa.add(0, T0 + 100 * MS, ramp(1, 160))  # caller starts at 100 ms, arrives first
    assert sa.take() == b""  # agent has not reached anything yet
    sa.add(1, T0 + 60 * MS, ramp(1000, 160))  # agent starts earlier
    assert sa.origin_ns == T0 + 60 * MS
    out = stereo(sa.finish())
    assert len(out) == 320 + 160
    assert out[:320, 0].tolist() == [0] * 320  # caller: 40 ms of leading silence
    assert out[320:, 0].tolist() == samples(ramp(1, 160)).tolist()
    assert out[:160, 1].tolist() == samples(ramp(1000, 160)).tolist()
    assert not out[160:, 1].any()  # agent padded at the end


def test_stereo_take_emits_only_what_both_channels_reached() -> None:
    sa = StereoAssembler(8000)
    a = [ramp(10_000 + 160 * i, 160) for i in range(10)]
    b = [ramp(20_000 + 160 * i, 160) for i in range(10)]
    chunks = []
    sa.add(0, T0, a[0])
    sa.add(0, T0 + 20 * MS, a[1])
    sa.add(1, T0, b[0])
    chunks.append(sa.take())
    assert len(chunks[0]) == 160 * 4  # 160 stereo frames; caller's 2nd frame still buffered
    assert sa.tracks[0].buffered_samples == 160
    for i in range(1, 10):
        sa.add(1, T0 + 20 * i * MS, b[i])
        if i + 1 < 10:
            sa.add(0, T0 + 20 * (i + 1) * MS, a[i + 1])
        chunks.append(sa.take())
    chunks.append(sa.finish())
    out = stereo(b"".join(chunks))
    assert sa.samples_emitted == 1600 == len(out)
    assert out[:, 0].tobytes() == b"".join(a)
    assert out[:, 1].tobytes() == b"".join(b)


def test_stereo_finish_pads_shorter_channel_and_closes() -> None:
    sa = StereoAssembler(8000, origin_ns=T0)
    sa.add(1, T0 + 10 * MS, ramp(5, 40))
    out = stereo(sa.finish())
    assert out.shape == (120, 2)
    assert not out[:, 0].any()
    assert out[80:, 1].tolist() == samples(ramp(5, 40)).tolist()
    with pytest.raises(RuntimeError):
        sa.add(0, T0, ramp(1, 2))
    with pytest.raises(ValueError):
        StereoAssembler(8000).add(2, T0, ramp(1, 2))


def test_connect_short_block_mid_track_keeps_the_64ms_grid() -> None:
    """Connect: 1024-byte/64 ms blocks, one 192-byte block, timecodes on the 0/64/128 grid."""
    sa = StereoAssembler(8000)
    customer = [ramp(1, 512), ramp(600, 96), ramp(2000, 512)]
    agent = [ramp(5000, 512), ramp(6000, 512), ramp(7000, 512)]
    for i in range(3):
        sa.add(0, T0 + 64 * i * MS, customer[i])
        sa.add(1, T0 + 64 * i * MS, agent[i])
    out = stereo(sa.take() + sa.finish())
    assert out.shape == (1536, 2)
    left = out[:, 0]
    assert left[:512].tobytes() == customer[0]
    assert left[512:608].tobytes() == customer[1]
    assert not left[608:1024].any()  # 52 ms hole after the short block
    assert left[1024:].tobytes() == customer[2]  # third block still at 128 ms
    assert out[:, 1].tobytes() == b"".join(agent)
    assert sa.tracks[0].silence_samples == 416


# --- the yacchi Connect-shaped fixtures (parsed with a minimal EBML walker) --------------------

_FLATTEN = {0x18538067, 0x1F43B675, 0x1654AE6B, 0xAE, 0x1549A966}  # Segment Cluster Tracks ...


def _vint(buf: bytes, pos: int, keep_marker: bool) -> tuple[int, int, bool]:
    first = buf[pos]
    length = 9 - first.bit_length()
    value = int.from_bytes(buf[pos : pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, pos + length, unknown


def connect_blocks(name: str) -> tuple[dict[str, list[tuple[int, bytes]]], str]:
    """(track name -> [(timestamp_ns, payload)], MimeType tag) from a yacchi fixture."""
    path = YACCHI / f"{name}.ebml.hex"
    if not path.exists():
        pytest.skip(f"test data {path} not available")
    hextext = "".join(ln for ln in path.read_text().splitlines() if not ln.startswith("#"))
    buf = bytes.fromhex("".join(hextext.split()))
    scale, cluster_tc, track_no = 1_000_000, 0, 0
    names: dict[int, str] = {}
    blocks: list[tuple[int, int, bytes]] = []
    mime, tag_name = "", ""
    pos = 0
    while pos < len(buf):
        eid, pos, _ = _vint(buf, pos, keep_marker=True)
        size, pos, unknown = _vint(buf, pos, keep_marker=False)
        if eid in _FLATTEN or eid in (0x1254C367, 0x7373, 0x67C8):  # + Tags Tag SimpleTag
            continue
        assert not unknown, f"unknown size for element {eid:x}"
        body = buf[pos : pos + size]
        pos += size
        if eid == 0x2AD7B1:
            scale = int.from_bytes(body, "big")
        elif eid == 0xE7:
            cluster_tc = int.from_bytes(body, "big")
        elif eid == 0xD7:
            track_no = int.from_bytes(body, "big")
        elif eid == 0x536E:
            names[track_no] = body.decode()
        elif eid == 0x45A3:
            tag_name = body.decode()
        elif eid == 0x4487 and tag_name == "MimeType":
            mime = body.decode()
        elif eid == 0xA3:
            assert body[0] & 0x80
            rel = struct.unpack(">h", body[1:3])[0]
            blocks.append((body[0] & 0x7F, (cluster_tc + rel) * scale, body[4:]))
    by_name: dict[str, list[tuple[int, bytes]]] = {}
    for tno, ts, payload in blocks:
        by_name.setdefault(names[tno], []).append((ts, payload))
    return by_name, mime


def test_yacchi_short_block_mid_track_fixture() -> None:
    from callstream.media.pcm import parse_mime_type

    tracks, mime = connect_blocks("short_block_mid_track")
    rate = parse_mime_type(mime).rate if mime else 8000
    cust, agent = tracks["AUDIO_FROM_CUSTOMER"], tracks["AUDIO_TO_CUSTOMER"]
    assert [len(p) for _, p in cust] == [1024, 192, 1024]
    assert [(ts - cust[0][0]) // MS for ts, _ in cust] == [0, 64, 128]
    sa = StereoAssembler(rate)
    for ts, payload in cust:
        sa.add(Channel.CALLER, ts, payload)
    for ts, payload in agent:
        sa.add(Channel.AGENT, ts, payload)
    out = stereo(sa.finish())
    left = out[:, 0].tobytes()
    assert len(out) == 3 * 512
    assert left[:1024] == cust[0][1]
    assert left[1024:1216] == cust[1][1]
    assert left[1216:2048] == bytes(832)  # silence after the 12 ms block
    assert left[2048:] == cust[2][1]  # the last block still starts at 128 ms
    assert out[:, 1].tobytes() == b"".join(p for _, p in agent)


@pytest.mark.parametrize("fixture", ["gap", "multi_segment", "multi_cluster"])
def test_yacchi_fragments_land_at_their_timestamps(fixture: str) -> None:
    """Fragments ~1.024 s apart (and 'gap': fragments 2 and 3 dropped) keep their time."""
    tracks, _ = connect_blocks(fixture)
    blocks = tracks["AUDIO_FROM_CUSTOMER"]
    tl = TrackTimeline(8000)
    for ts, payload in blocks:
        tl.add(ts, payload)
    out = tl.take()
    t0 = blocks[0][0]
    covered = 0
    for ts, payload in blocks:
        start = 2 * ns_to_samples(ts - t0, 8000)
        assert out[start : start + len(payload)] == payload
        covered += len(payload)
    assert len(out) == 2 * ns_to_samples(blocks[-1][0] - t0, 8000) + len(blocks[-1][1])
    assert tl.silence_samples * 2 == len(out) - covered
    if fixture == "gap":
        assert [(ts - t0) // MS for ts, _ in blocks] == [0, 1024, 4096]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0, 1]), st.integers(1, 400), st.integers(0, 60)),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 200),
)
def test_stereo_streaming_take_equals_one_shot_finish(
    events: list[tuple[int, int, int]], agent_offset_ms: int
) -> None:
    """Emitting incrementally never changes the result, whatever the arrival order."""
    clock = [T0, T0 + agent_offset_ms * MS]
    adds: list[tuple[int, int, bytes]] = []
    for ch, n, gap_ms in events:
        adds.append((ch, clock[ch], ramp(len(adds) * 400 + ch, n)))
        clock[ch] += round(n * 10**9 / 8000) + gap_ms * MS
    live, batch = StereoAssembler(8000), StereoAssembler(8000)
    streamed = bytearray()
    for ch, ts, frame in adds:
        live.add(ch, ts, frame)
        batch.add(ch, ts, frame)
        chunk = live.take()
        assert len(chunk) % 4 == 0
        streamed += chunk
    streamed += live.finish()
    one_shot = batch.finish()
    assert bytes(streamed) == one_shot
    out = stereo(one_shot)
    # every channel's audio is all there, in order
    for ch in (0, 1):
        sent = b"".join(f for c, _, f in adds if c == ch)
        got = out[:, ch].tobytes()
        assert len(got) >= len(sent)
        assert appears_in_order(got, [f for c, _, f in adds if c == ch])


def appears_in_order(channel: bytes, frames: list[bytes]) -> bool:
    """Frames appear in order (possibly separated by silence)."""
    pos = 0
    for f in frames:
        idx = channel.find(f, pos)
        if idx < 0:
            return False
        pos = idx + len(f)
    return True
