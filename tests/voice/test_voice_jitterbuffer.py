"""Per-leg jitter buffer: positions, reordering, loss, gaps, resyncs (deterministic arrivals)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_voice_rtp import PCAP
from voice_helpers import pcap_udp_payloads

from callstream.media.g711 import ulaw_decode, ulaw_encode
from callstream.voice.codecs import decode_pcma, decode_pcmu
from callstream.voice.jitterbuffer import SILENCE_PIECE, Chunk, JitterBuffer
from callstream.voice.rtp import RtpPacket, build_rtp, parse_rtp

FRAME = 160  # samples per 20 ms packet


def identity(payload: bytes) -> bytes:
    """Test decoder: the payload already is 16-bit LE PCM."""
    return payload


def tagged(i: int, samples: int = FRAME) -> bytes:
    """PCM whose every sample is ``i + 1`` (never silence), to find a packet in the output."""
    return np.full(samples, i + 1, dtype="<i2").tobytes()


def packet(
    seq: int,
    ts: int,
    payload: bytes,
    *,
    ssrc: int = 0x1234,
    pt: int = 0,
    marker: bool = False,
) -> RtpPacket:
    return parse_rtp(
        build_rtp(
            payload_type=pt,
            sequence=seq & 0xFFFF,
            timestamp=ts & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=payload,
            marker=marker,
        )
    )


def stream(
    n: int, *, seq0: int = 1000, ts0: int = 50_000, ssrc: int = 0x1234, first: int = 0
) -> list[RtpPacket]:
    """``n`` consecutive 20 ms packets with tagged PCM (identity decoder, payload type 0)."""
    return [packet(seq0 + i, ts0 + i * FRAME, tagged(first + i), ssrc=ssrc) for i in range(n)]


def new_jb(**kwargs: object) -> JitterBuffer:
    kwargs.setdefault("decoders", {0: identity})
    return JitterBuffer(**kwargs)  # type: ignore[arg-type]


def check_contiguous(chunks: Sequence[Chunk], start: int | None = None) -> None:
    for a, b in itertools.pairwise(chunks):
        assert b.start == a.end, f"chunk at {b.start} after one ending at {a.end}"
    if start is not None and chunks:
        assert chunks[0].start == start
    for c in chunks:
        assert len(c.pcm) % 2 == 0
        assert c.pcm or not c.silence
        if c.silence:
            assert c.pcm == bytes(len(c.pcm))
            assert c.samples <= SILENCE_PIECE


def render(chunks: Sequence[Chunk]) -> bytes:
    check_contiguous(chunks)
    return b"".join(c.pcm for c in chunks)


def samples(chunks: Sequence[Chunk]) -> np.ndarray:
    return np.frombuffer(render(chunks), dtype="<i2")


def feed(
    jb: JitterBuffer,
    packets: Iterable[RtpPacket],
    arrivals: Iterable[float] | None = None,
    *,
    start: int | None = None,
) -> list[Chunk]:
    out: list[Chunk] = []
    arrivals = arrivals if arrivals is not None else (20.0 * i for i in range(10**9))
    for p, t in zip(packets, arrivals, strict=False):
        out += jb.push(p, t, start=start)
    return out


def assert_partition(jb: JitterBuffer) -> None:
    """Every pushed packet is counted exactly once (or still held)."""
    assert jb.received == (
        jb.decoded + jb.duplicates + jb.late + jb.ignored + jb.bad_sequence + jb.held
    )


# --- in order -----------------------------------------------------------------------------


def test_in_order_packets_are_released_immediately_with_identical_pcm() -> None:
    jb = new_jb(decoders={0: decode_pcmu})
    rng = np.random.default_rng(1)
    pcm = rng.integers(-20000, 20000, 50 * FRAME).astype(np.int16)
    codes = ulaw_encode(pcm)
    expected = ulaw_decode(codes).astype("<i2").tobytes()
    out: list[Chunk] = []
    for i in range(50):
        p = packet(7 + i, 1000 + i * FRAME, codes[i * FRAME : (i + 1) * FRAME])
        chunks = jb.push(p, 20.0 * i)
        assert len(chunks) == 1 and not chunks[0].silence
        assert chunks[0].start == i * FRAME
        assert jb.position == (i + 1) * FRAME
        out += chunks
    assert render(out) == expected
    assert jb.flush() == []
    assert jb.decoded == 50 and jb.lost == 0 and jb.silence_samples == 0
    assert_partition(jb)


def test_first_packet_sits_at_start() -> None:
    jb = new_jb()
    out = feed(jb, stream(3), start=8000)
    check_contiguous(out, start=8000)
    assert jb.position == 8000 + 3 * FRAME
    assert jb.silence_samples == 0


def test_loss_free_output_length_equals_last_minus_first_position() -> None:
    jb = new_jb()
    packets = stream(250)
    out = feed(jb, packets, start=400) + jb.flush()
    first, last = packets[0], packets[-1]
    assert sum(c.samples for c in out) == (last.timestamp - first.timestamp) + FRAME
    assert out[-1].end - out[0].start == last.timestamp - first.timestamp + FRAME
    assert render(out) == b"".join(p.payload for p in packets)


def test_varying_packet_sizes_keep_positions() -> None:
    jb = new_jb()
    sizes = [80, 160, 240, 160, 320, 80]
    packets, ts = [], 0
    for i, n in enumerate(sizes):
        packets.append(packet(i, ts, tagged(i, n)))
        ts += n
    out = feed(jb, packets)
    assert render(out) == b"".join(p.payload for p in packets)


# --- reordering ---------------------------------------------------------------------------


def test_shuffle_within_reorder_window_gives_the_in_order_output() -> None:
    packets = stream(12)
    in_order = render(feed(new_jb(), packets))
    order = [0, 2, 1, 3, 5, 4, 6, 9, 7, 8, 11, 10]
    jb = new_jb()
    out = feed(jb, [packets[i] for i in order])
    assert render(out) == in_order
    assert jb.reordered == 5 and jb.lost == 0 and jb.held == 0
    assert_partition(jb)


def test_held_packet_is_released_when_the_missing_one_arrives() -> None:
    p = stream(3)
    jb = new_jb()
    assert len(jb.push(p[0], 0)) == 1
    assert jb.push(p[2], 20) == []
    assert jb.held == 1
    chunks = jb.push(p[1], 25)
    assert [c.start for c in chunks] == [FRAME, 2 * FRAME]
    assert jb.held == 0


def test_loss_becomes_silence_of_exactly_the_lost_duration() -> None:
    packets = stream(20)
    jb = new_jb()
    kept = [p for i, p in enumerate(packets) if i not in (5, 6)]
    arrivals = [20.0 * i for i in range(20) if i not in (5, 6)]
    out = feed(jb, kept, arrivals) + jb.flush()
    pcm = samples(out)
    assert len(pcm) == 20 * FRAME
    for i in range(20):
        frame = pcm[i * FRAME : (i + 1) * FRAME]
        assert (frame == (0 if i in (5, 6) else i + 1)).all(), i
    assert jb.lost == 2 and jb.silence_samples == 2 * FRAME
    assert_partition(jb)


def test_loss_is_declared_once_the_held_span_exceeds_reorder_ms() -> None:
    packets = stream(10)
    jb = new_jb(reorder_ms=60)
    feed(jb, packets[:3])
    # packet 3 lost; 4, 5, 6 start 20, 40, 60 ms after the missing sample: held
    for i in (4, 5, 6):
        assert jb.push(packets[i], 20.0 * i) == []
    assert jb.held == 3
    # packet 7 starts 80 ms after it: 3 is declared lost, everything released
    out = jb.push(packets[7], 140)
    assert [c.silence for c in out] == [True, False, False, False, False]
    assert out[0].start == 3 * FRAME and out[0].samples == FRAME
    assert jb.lost == 1 and jb.held == 0
    # the lost packet arriving now is late, not written
    assert jb.push(packets[3], 150) == []
    assert jb.late == 1
    assert_partition(jb)


def test_loss_is_declared_after_reorder_ms_of_arrival_time() -> None:
    # packets that do not advance time (same timestamp) are released by arrival time
    jb = new_jb(reorder_ms=60)
    jb.push(packet(0, 0, tagged(0)), 0)
    jb.push(packet(2, FRAME, tagged(2)), 10)
    assert jb.push(packet(3, FRAME, tagged(3)), 70) == []  # held 60 ms: not more
    out = jb.push(packet(4, FRAME, tagged(4)), 70.5)
    assert jb.lost == 1 and jb.held == 0
    # all three share one position: the first is written, the others overlap it fully
    assert [(c.start, c.samples) for c in out] == [(FRAME, FRAME)]
    assert jb.late == 2
    assert_partition(jb)


def test_max_packets_bounds_what_is_held() -> None:
    jb = new_jb(reorder_ms=10_000, resync_ms=10_000, max_packets=5)
    packets = stream(10)
    jb.push(packets[0], 0)
    for i in range(2, 7):
        assert jb.push(packets[i], 20.0 * i) == []
    assert jb.held == 5
    out = jb.push(packets[7], 140)
    assert jb.held == 0 and jb.lost == 1
    check_contiguous(out, start=FRAME)


def test_duplicates_are_dropped() -> None:
    packets = stream(5)
    jb = new_jb()
    out = feed(jb, [packets[0], packets[0], packets[2], packets[2], packets[1], packets[1]])
    out += feed(jb, packets[3:])
    assert render(out) == b"".join(p.payload for p in packets)
    assert jb.duplicates == 3
    assert_partition(jb)


def test_packet_preceding_the_anchor_is_late() -> None:
    packets = stream(3)
    jb = new_jb()
    out = feed(jb, [packets[1], packets[0], packets[2]])
    assert jb.late == 1
    check_contiguous(out, start=0)
    assert render(out) == packets[1].payload + packets[2].payload


def test_flush_releases_held_packets_in_order() -> None:
    packets = stream(6)
    jb = new_jb()
    out = feed(jb, [packets[0], packets[2], packets[4], packets[3]])
    assert jb.held == 3
    out += jb.flush()
    assert jb.held == 0 and jb.lost == 1
    pcm = samples(out)
    assert len(pcm) == 5 * FRAME
    assert (pcm[FRAME : 2 * FRAME] == 0).all()
    assert (pcm[4 * FRAME :] == 5).all()


# --- wraps --------------------------------------------------------------------------------


def test_sequence_and_timestamp_wraps_continue_seamlessly() -> None:
    packets = stream(40, seq0=65_520, ts0=2**32 - 20 * FRAME)
    assert packets[16].sequence == 0 and packets[20].timestamp == 0
    jb = new_jb()
    out = feed(jb, packets)
    assert render(out) == b"".join(p.payload for p in packets)
    assert jb.resyncs == 0 and jb.lost == 0


def test_reordering_across_the_sequence_wrap() -> None:
    packets = stream(8, seq0=65_533, ts0=2**32 - 3 * FRAME)
    jb = new_jb()
    out = feed(jb, [packets[i] for i in (0, 1, 3, 2, 5, 4, 6, 7)])
    assert render(out) == b"".join(p.payload for p in packets)


def test_loss_across_the_sequence_wrap() -> None:
    packets = stream(8, seq0=65_534)
    jb = new_jb()
    out = feed(jb, [p for i, p in enumerate(packets) if i != 2]) + jb.flush()
    assert jb.lost == 1
    pcm = samples(out)
    assert (pcm[2 * FRAME : 3 * FRAME] == 0).all() and (pcm[7 * FRAME :] == 8).all()


# --- gaps and non-audio payloads ----------------------------------------------------------


def test_silence_suppression_gap_becomes_silence_in_pieces() -> None:
    jb = new_jb()
    a = stream(5)
    # DTX: the sender stops for 2.5 s and resumes with timestamps that kept running
    b = stream(5, seq0=1005, ts0=50_000 + 5 * FRAME + 20_000, first=5)
    out = feed(jb, a, [20.0 * i for i in range(5)])
    out += feed(jb, b, [100 + 2500 + 20.0 * i for i in range(5)])
    assert jb.silence_samples == 20_000 and jb.resyncs == 0
    gaps = [c.samples for c in out if c.silence]
    assert gaps == [SILENCE_PIECE, SILENCE_PIECE, 4000]
    pcm = samples(out)
    assert len(pcm) == 10 * FRAME + 20_000
    assert (pcm[5 * FRAME + 20_000 :][:FRAME] == 6).all()


def test_telephone_events_are_not_written_but_keep_time() -> None:
    jb = new_jb(ignored_payload_types={101})
    out = feed(jb, stream(10), [20.0 * i for i in range(10)])
    # a 200 ms DTMF digit: RFC 4733 packets share the event's start timestamp
    event_ts = 50_000 + 10 * FRAME
    for i in range(10):
        duration = (i + 1) * FRAME
        end = 0x80 if i >= 8 else 0
        dtmf = packet(
            1010 + i, event_ts, bytes([5, end | 10]) + duration.to_bytes(2, "big"), pt=101
        )
        assert jb.push(dtmf, 200 + 20.0 * i) == []
    assert jb.ignored == 10
    out += feed(
        jb,
        stream(10, seq0=1020, ts0=50_000 + 20 * FRAME, first=20),
        [400 + 20.0 * i for i in range(10)],
    )
    pcm = samples(out)
    assert len(pcm) == 30 * FRAME
    assert (pcm[10 * FRAME : 20 * FRAME] == 0).all()
    assert (pcm[20 * FRAME : 21 * FRAME] == 21).all()
    assert jb.lost == 0 and jb.resyncs == 0 and jb.silence_samples == 10 * FRAME
    assert_partition(jb)


def test_comfort_noise_and_unknown_payload_types_are_ignored() -> None:
    jb = new_jb(ignored_payload_types={13})
    out = feed(jb, stream(2))
    out += jb.push(packet(1002, 50_000 + 2 * FRAME, b"\x40", pt=13), 40)  # CN
    out += jb.push(packet(1003, 50_000 + 3 * FRAME, bytes(20), pt=18), 60)  # G.729: no decoder
    out += feed(jb, stream(2, seq0=1004, ts0=50_000 + 4 * FRAME, first=4), [80, 100])
    assert jb.ignored == 2 and jb.lost == 0
    pcm = samples(out)
    assert len(pcm) == 6 * FRAME and (pcm[2 * FRAME : 4 * FRAME] == 0).all()
    assert_partition(jb)


def test_non_audio_before_the_first_audio_or_from_another_ssrc_is_ignored() -> None:
    jb = new_jb(ignored_payload_types={101})
    assert jb.push(packet(1, 0, bytes(4), pt=101), 0) == []
    assert jb.ssrc is None and jb.position == 0
    feed(jb, stream(2))
    assert jb.push(packet(5, 0, bytes(4), pt=101, ssrc=99), 50) == []
    assert jb.ignored == 2 and jb.resyncs == 0 and jb.ssrc == 0x1234


def test_held_non_audio_packet_fills_its_slot() -> None:
    jb = new_jb(ignored_payload_types={101})
    a = stream(4)
    out = feed(jb, a[:1])
    out += jb.push(a[2], 40)
    out += jb.push(packet(1001, 50_000 + FRAME, bytes(4), pt=101), 41)
    assert jb.held == 0 and jb.lost == 0 and jb.ignored == 1
    out += jb.push(a[3], 60)
    pcm = samples(out)
    assert (pcm[FRAME : 2 * FRAME] == 0).all() and (pcm[2 * FRAME : 3 * FRAME] == 3).all()


def test_payload_longer_than_its_timestamp_spacing_is_trimmed() -> None:
    jb = new_jb()
    out = jb.push(packet(0, 0, tagged(0, 200)), 0)  # 200 samples, next packet at 160
    out += jb.push(packet(1, FRAME, tagged(1)), 20)
    out += jb.push(packet(2, 2 * FRAME, tagged(2, 100)), 40)  # shorter: a gap follows
    out += jb.push(packet(3, 3 * FRAME, tagged(3)), 60)
    pcm = samples(out)
    assert len(pcm) == 4 * FRAME
    assert (pcm[:200] == 1).all() and (pcm[200:320] == 2).all()
    assert (pcm[320:420] == 3).all() and (pcm[420:480] == 0).all() and (pcm[480:] == 4).all()
    assert jb.trimmed_samples == 40 and jb.silence_samples == 60


def test_clock_rate_other_than_8000_is_scaled() -> None:
    jb = new_jb(clock_rate=16_000)
    packets = [packet(i, i * 320, tagged(i)) for i in range(4) if i != 2]
    out = feed(jb, packets) + jb.flush()
    pcm = samples(out)
    assert len(pcm) == 4 * FRAME and (pcm[2 * FRAME : 3 * FRAME] == 0).all()


# --- resyncs ------------------------------------------------------------------------------


def test_ssrc_change_reanchors_without_overlap() -> None:
    jb = new_jb()
    out = feed(jb, stream(10), [20.0 * i for i in range(10)])
    # transfer: new SSRC, unrelated sequence and timestamps; it arrives 20 ms after the
    # last old packet, so its arrival position is where the old stream ended
    b = stream(10, seq0=7, ts0=123_456_789, ssrc=0xBEEF, first=10)
    out += feed(jb, b, [200 + 20.0 * i for i in range(10)])
    assert jb.resyncs == 1 and jb.ssrc == 0xBEEF
    pcm = samples(out)
    assert len(pcm) == 20 * FRAME
    assert all((pcm[i * FRAME : (i + 1) * FRAME] == i + 1).all() for i in range(20))


def test_ssrc_change_after_a_pause_is_placed_by_arrival() -> None:
    jb = new_jb()
    out = feed(jb, stream(10), [20.0 * i for i in range(10)])
    b = stream(3, seq0=7, ts0=5, ssrc=0xBEEF, first=10)
    out += feed(jb, b, [5000 + 20.0 * i for i in range(3)])
    assert jb.resyncs == 1
    assert jb.silence_samples == 5000 * 8 - 10 * FRAME
    pcm = samples(out)
    assert (pcm[5000 * 8 : 5000 * 8 + FRAME] == 11).all()


def test_ssrc_change_arriving_early_never_overlaps_or_goes_back() -> None:
    jb = new_jb()
    out = feed(jb, stream(10), [20.0 * i for i in range(10)])
    # the new source starts while the old one's last packets are still being written
    b = stream(3, seq0=0, ts0=0, ssrc=0xBEEF, first=10)
    out += feed(jb, b, [100.0, 120.0, 140.0])
    check_contiguous(out, start=0)
    assert jb.position == 13 * FRAME and jb.silence_samples == 0


def test_ssrc_change_releases_held_packets_first() -> None:
    jb = new_jb()
    a = stream(5)
    out = feed(jb, [a[0], a[1], a[3]])
    assert jb.held == 1
    out += jb.push(stream(1, seq0=1, ts0=1, ssrc=77, first=9)[0], 80)
    assert jb.held == 0 and jb.lost == 1 and jb.resyncs == 1
    pcm = samples(out)
    assert len(pcm) == 5 * FRAME
    assert (pcm[3 * FRAME : 4 * FRAME] == 4).all() and (pcm[4 * FRAME :] == 10).all()


def test_resync_uses_start_when_given() -> None:
    jb = new_jb()
    feed(jb, stream(2), start=0)
    out = jb.push(stream(1, ssrc=5)[0], 40.0, start=9000)
    assert out[-1].start == 9000 and jb.position == 9000 + FRAME


def test_paused_sender_not_advancing_timestamps_resyncs_by_arrival() -> None:
    jb = new_jb(resync_ms=1000)
    out = feed(jb, stream(10), [20.0 * i for i in range(10)])
    # a 3 s hold during which the sender sent nothing and did not advance its clock
    later = stream(10, seq0=1010, ts0=50_000 + 10 * FRAME, first=10)
    out += feed(jb, later, [3200 + 20.0 * i for i in range(10)])
    assert jb.resyncs == 1 and jb.lost == 0
    pcm = samples(out)
    resumed = 3200 * 8
    assert len(pcm) == resumed + 10 * FRAME
    assert (pcm[10 * FRAME : resumed] == 0).all()
    assert (pcm[resumed : resumed + FRAME] == 11).all()
    assert (pcm[-FRAME:] == 20).all()


def test_short_pause_within_resync_ms_keeps_timestamp_positions() -> None:
    jb = new_jb(resync_ms=1000)
    out = feed(jb, stream(10), [20.0 * i for i in range(10)])
    out += feed(
        jb,
        stream(5, seq0=1010, ts0=50_000 + 10 * FRAME, first=10),
        [900 + 20.0 * i for i in range(5)],
    )
    assert jb.resyncs == 0 and jb.silence_samples == 0
    assert render(out) == b"".join(tagged(i) for i in range(15))


def test_timestamp_jump_beyond_resync_ms_does_not_write_the_jump_as_silence() -> None:
    jb = new_jb(resync_ms=1000)
    out = feed(jb, stream(10), [20.0 * i for i in range(10)])
    # the sender's timestamps leap 10 minutes ahead while packets keep arriving every 20 ms
    jump = stream(3, seq0=1010, ts0=50_000 + 10 * FRAME + 600 * 8000, first=10)
    out += feed(jb, jump, [200 + 20.0 * i for i in range(3)])
    assert jb.resyncs == 1 and jb.silence_samples == 0
    assert render(out) == b"".join(tagged(i) for i in range(13))


def test_timestamp_jump_within_resync_ms_is_written_as_silence_in_pieces() -> None:
    jb = new_jb(resync_ms=5000)
    out = feed(jb, stream(2), [0.0, 20.0])
    out += jb.push(stream(1, seq0=1002, ts0=50_000 + 2 * FRAME + 3 * 8000)[0], 40.0)
    assert jb.resyncs == 0 and jb.silence_samples == 3 * 8000
    assert max(c.samples for c in out if c.silence) == SILENCE_PIECE


def test_sequence_restart_on_the_same_ssrc_resyncs_after_confirmation() -> None:
    jb = new_jb()
    out = feed(jb, stream(10), [20.0 * i for i in range(10)])
    restart = stream(3, seq0=40_000, ts0=9, first=10)
    out += feed(jb, restart, [200.0, 220.0, 240.0])
    assert jb.bad_sequence == 1 and jb.resyncs == 1
    check_contiguous(out, start=0)
    pcm = samples(out)
    assert (pcm[-2 * FRAME : -FRAME] == 12).all() and (pcm[-FRAME:] == 13).all()
    assert_partition(jb)


def test_single_stray_sequence_number_is_dropped() -> None:
    jb = new_jb()
    a = stream(6)
    out = feed(jb, a[:3])
    out += jb.push(packet(30_000, 50_000 + 3 * FRAME, tagged(99)), 60)
    out += feed(jb, a[3:], [80.0, 100.0, 120.0])
    assert jb.bad_sequence == 1 and jb.resyncs == 0
    assert render(out) == b"".join(p.payload for p in a)


# --- advance ------------------------------------------------------------------------------


def test_advance_fills_silence_and_later_audio_continues() -> None:
    jb = new_jb()
    out = feed(jb, stream(2))
    out += jb.advance(2 * FRAME + 8000 * 3)
    assert jb.position == 2 * FRAME + 24_000
    assert [c.samples for c in out if c.silence] == [SILENCE_PIECE] * 3
    assert jb.advance(100) == []  # never backwards
    check_contiguous(out, start=0)


def test_advance_before_any_packet_starts_the_timeline_at_zero() -> None:
    jb = new_jb()
    out = jb.advance(4000)
    out += jb.push(stream(1)[0], 0, start=1000)  # too early for 1000: placed at 4000
    check_contiguous(out, start=0)
    assert out[-1].start == 4000 and not out[-1].silence
    out += jb.push(stream(1)[0], 0, start=1000)
    assert jb.duplicates == 1


def test_advance_releases_held_packets_older_than_until_first() -> None:
    jb = new_jb(reorder_ms=1000)
    a = stream(8)
    out = feed(jb, [a[0], a[2], a[3], a[6]])
    assert jb.held == 3
    out += jb.advance(5 * FRAME)
    # 2 and 3 released (1 lost), silence up to 5 * FRAME, 6 still held
    assert jb.held == 1 and jb.lost == 1 and jb.position == 5 * FRAME
    # 4 arrives after its time was filled: late; 5 fills its own slot
    out += jb.push(a[4], 200)
    assert jb.late == 1
    out += jb.push(a[5], 210)
    out += jb.push(a[7], 220)
    pcm = samples(out)
    assert len(pcm) == 8 * FRAME
    expected = [1, 0, 3, 4, 0, 6, 7, 8]
    assert [int(pcm[i * FRAME]) for i in range(8)] == expected
    assert_partition(jb)


def test_advance_into_a_packet_trims_it() -> None:
    jb = new_jb()
    out = feed(jb, stream(1))
    out += jb.advance(FRAME + 60)
    out += jb.push(stream(2)[1], 20)
    assert jb.trimmed_samples == 60
    pcm = samples(out)
    assert len(pcm) == 2 * FRAME and (pcm[FRAME : FRAME + 60] == 0).all()
    assert (pcm[FRAME + 60 :] == 2).all()


def test_arrival_position_follows_the_anchor_and_keeps_a_silent_leg_in_step() -> None:
    jb = new_jb(reorder_ms=60)
    assert jb.arrival_position(0) is None
    out = feed(jb, stream(5), [1000.0 + 20 * i for i in range(5)], start=800)
    assert jb.arrival_position(1000.0) == 800
    assert jb.arrival_position(1100.0) == 800 + 800
    # the sender goes quiet (DTX); the orchestrator keeps the leg in step 100 ms behind
    for now in (1200.0, 1500.0, 2000.0):
        until = jb.arrival_position(now)
        assert until is not None
        out += jb.advance(until - 800)
    assert jb.position == 800 + 1000 * 8 - 800
    # the sender resumes with timestamps that kept running: no overlap, no resync
    ts = 50_000 + (2100 - 1000) * 8
    out += jb.push(packet(1005, ts, tagged(5)), 2100.0)
    assert jb.resyncs == 0 and out[-1].start == 800 + 1100 * 8
    check_contiguous(out, start=800)


# --- real capture -------------------------------------------------------------------------


@pytest.mark.skipif(not PCAP.exists(), reason=f"{PCAP} absent (shared test data not mounted)")
def test_real_pcma_capture_through_the_buffer() -> None:
    import struct

    raw = PCAP.read_bytes()
    times, offset = [], 24
    while offset + 16 <= len(raw):
        sec, usec, incl = struct.unpack_from("<III", raw, offset)
        times.append(sec * 1000 + usec / 1000)
        offset += 16 + incl
    packets = [parse_rtp(d) for d in pcap_udp_payloads(PCAP)]
    jb = JitterBuffer(decoders={8: decode_pcma}, ignored_payload_types={101, 13})
    out = feed(jb, packets, [t - times[0] for t in times]) + jb.flush()
    assert render(out) == b"".join(decode_pcma(p.payload) for p in packets)
    assert jb.decoded == 236 and jb.resyncs == 0 and jb.lost == 0


# --- properties ---------------------------------------------------------------------------


@st.composite
def disorders(draw: st.DrawFn) -> tuple[list[int], list[int], int, int]:
    """A stream of n packets delivered with bounded displacement, duplicates and drops.

    Returns (arrival order as packet indices, per-packet sizes, seq0, ts0).
    """
    n = draw(st.integers(1, 40))
    displacement = draw(st.integers(0, 3))
    keys = [i + draw(st.integers(0, displacement)) + 0.5 * draw(st.booleans()) for i in range(n)]
    order = sorted(range(n), key=lambda i: (keys[i], i))
    dropped = draw(st.sets(st.integers(0, n - 1), max_size=n // 3))
    order = [i for i in order if i not in dropped] or [order[0]]
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, len(order) - 1))
        later = min(len(order), at + draw(st.integers(1, 3)))
        order.insert(later, order[at])
    sizes = [draw(st.sampled_from([80, 160, 160, 160, 240])) for _ in range(n)]
    seq0 = draw(st.sampled_from([0, 1000, 65_530, 65_535]))
    ts0 = draw(st.sampled_from([0, 123_456, 2**32 - 400, 2**32 - 1]))
    return order, sizes, seq0, ts0


def _run_disorder(
    case: tuple[list[int], list[int], int, int], **kwargs: object
) -> tuple[JitterBuffer, list[Chunk], dict[int, int], list[RtpPacket]]:
    order, sizes, seq0, ts0 = case
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    packets = [packet(seq0 + i, ts0 + offsets[i], tagged(i, sizes[i])) for i in range(len(sizes))]
    jb = new_jb(**kwargs)
    start = 3000
    out: list[Chunk] = []
    for slot, i in enumerate(order):
        out += jb.push(packets[i], 20.0 * slot, start=start)
    out += jb.flush()
    anchor = order[0]
    true_pos = {i: start + offsets[i] - offsets[anchor] for i in range(len(sizes))}
    check_contiguous(out, start=start)
    assert_partition(jb)
    assert jb.resyncs == 0
    return jb, out, true_pos, packets


def _delivered_at_true_positions(
    out: list[Chunk], true_pos: dict[int, int], sizes: list[int]
) -> set[int]:
    start = out[0].start
    pcm = np.frombuffer(render(out), dtype="<i2")
    delivered = set()
    for i, pos in true_pos.items():
        hits = np.flatnonzero(pcm == i + 1)
        if not len(hits):
            continue
        delivered.add(i)
        assert hits[0] + start == pos, f"packet {i} at {hits[0] + start}, true position {pos}"
        assert len(hits) == sizes[i] and hits[-1] - hits[0] == sizes[i] - 1
    # everything that is not delivered audio is silence
    assert np.count_nonzero(pcm) == sum(sizes[i] for i in delivered)
    return delivered


@given(disorders())
def test_property_disorder_within_window_delivers_everything_at_true_positions(
    case: tuple[list[int], list[int], int, int],
) -> None:
    order, sizes, _, _ = case
    jb, out, true_pos, _ = _run_disorder(case, reorder_ms=2000, resync_ms=5000)
    delivered = _delivered_at_true_positions(out, true_pos, sizes)
    anchor = order[0]
    assert delivered == {i for i in set(order) if i >= anchor}
    assert jb.lost == len({i for i in range(anchor, max(order) + 1) if i not in set(order)})
    # loss-free and in order after the anchor: the output is exactly the audio
    first, last = anchor, max(order)
    assert out[-1].end - out[0].start == sum(sizes[first : last + 1])


@given(disorders())
def test_property_default_window_never_overlaps_and_keeps_true_positions(
    case: tuple[list[int], list[int], int, int],
) -> None:
    _, sizes, _, _ = case
    jb, out, true_pos, _ = _run_disorder(case)
    _delivered_at_true_positions(out, true_pos, sizes)
    assert jb.position == out[-1].end
