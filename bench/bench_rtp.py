"""Benchmark: per-packet cost of the voice connector's RTP path.

Not a test. Run: ``python bench/bench_rtp.py [--packets 50000] [--repeat 7]``.
Prints a markdown table (best of N runs, microseconds per packet, 160-byte G.711
payloads = 20 ms) next to a baseline of a bare ``struct.unpack_from`` of the fixed
header measured in the same run, and the alternatives considered for G.711 decoding.
The target: 300 calls = 600 legs x 50 packets/s = 30,000 packets/s in one event loop.
"""

from __future__ import annotations

import argparse
import os
import struct
from collections.abc import Callable

import numpy as np

from bench_g711 import best_of
from callstream.media.g711 import ULAW_DECODE_TABLE
from callstream.voice.codecs import decode_l16, decode_pcmu
from callstream.voice.jitterbuffer import JitterBuffer
from callstream.voice.rtp import RtpPacket, build_rtp, parse_rtp

TARGET_PPS = 30_000
FRAME = 160


def make_datagrams(n: int, legs: int = 1) -> list[bytes]:
    """``n`` PCMU datagrams, round-robin over ``legs`` SSRCs (20 ms apart per leg)."""
    payloads = [os.urandom(FRAME) for _ in range(64)]
    return [
        build_rtp(
            payload_type=0,
            sequence=(i // legs) & 0xFFFF,
            timestamp=((i // legs) * FRAME) & 0xFFFFFFFF,
            ssrc=0x1234 + i % legs,
            payload=payloads[i % 64],
        )
        for i in range(n)
    ]


def disorder(packets: list[RtpPacket], seed: int = 0) -> list[RtpPacket]:
    """1 % loss and 5 % of packets swapped with their successor."""
    rng = np.random.default_rng(seed)
    out = [p for p in packets if rng.random() >= 0.01]
    for i in range(len(out) - 1):
        if rng.random() < 0.05:
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n, repeat = args.packets, args.repeat

    datagrams = make_datagrams(n)
    packets = [parse_rtp(d) for d in datagrams]
    # decode inputs: a ring of 64 payloads, in cache like a datagram just received
    payloads = ([p.payload for p in packets[:64]] * (n // 64 + 1))[:n]
    l16 = [os.urandom(2 * FRAME) for _ in range(64)] * (n // 64 + 1)
    l16 = l16[:n]
    header = struct.Struct("!BBHII")

    # G.711 decode alternatives (bench_rtp chose bytes.translate; see codecs.py)
    lut = ULAW_DECODE_TABLE.astype("<i2")
    pairs = tuple(lut[i : i + 1].tobytes() for i in range(256))
    take, frombuffer, u8 = lut.take, np.frombuffer, np.uint8

    def baseline() -> None:
        unpack = header.unpack_from
        for d in datagrams:
            unpack(d)

    def parse() -> None:
        for d in datagrams:
            parse_rtp(d)

    def decode_translate() -> None:
        for p in payloads:
            decode_pcmu(p)

    def decode_numpy_take() -> None:
        for p in payloads:
            take(frombuffer(p, u8)).tobytes()

    def decode_join() -> None:
        join = b"".join
        for p in payloads:
            join([pairs[c] for c in p])

    def decode_byteswap() -> None:
        for p in l16:
            decode_l16(p)

    def push_in_order() -> None:
        jb = JitterBuffer(decoders={0: decode_pcmu})
        push = jb.push
        t = 0.0
        for p in packets:
            push(p, t)
            t += 20.0

    shuffled = disorder(packets)
    arrivals = [20.0 * i for i in range(len(shuffled))]

    def push_disordered() -> None:
        jb = JitterBuffer(decoders={0: decode_pcmu})
        push = jb.push
        for p, t in zip(shuffled, arrivals, strict=True):
            push(p, t)
        jb.flush()

    legs = 600
    interleaved = make_datagrams(n, legs=legs)

    def parse_and_push_legs() -> None:
        jbs = [JitterBuffer(decoders={0: decode_pcmu}) for _ in range(legs)]
        t = 0.0
        for i, d in enumerate(interleaved):
            jbs[i % legs].push(parse_rtp(d), t)
            t += 20.0 / legs

    def parse_and_push() -> None:
        jb = JitterBuffer(decoders={0: decode_pcmu})
        push = jb.push
        t = 0.0
        for d in datagrams:
            push(parse_rtp(d), t)
            t += 20.0

    rows: list[tuple[str, Callable[[], None], int]] = [
        ("baseline: struct.unpack_from('!BBHII')", baseline, n),
        ("parse_rtp", parse, n),
        ("decode PCMU 160 B: bytes.translate x2 (used)", decode_translate, n),
        ("decode PCMU 160 B: numpy take + tobytes", decode_numpy_take, n),
        ("decode PCMU 160 B: join of 2-byte table", decode_join, n),
        ("decode L16 320 B: array byteswap (used)", decode_byteswap, n),
        ("JitterBuffer.push in order (incl. decode)", push_in_order, n),
        ("JitterBuffer.push 1% loss, 5% swapped", push_disordered, len(shuffled)),
        ("parse_rtp + push in order", parse_and_push, n),
        (f"parse_rtp + push, {legs} legs interleaved", parse_and_push_legs, n),
    ]
    results = [(name, best_of(fn, repeat) / count * 1e6) for name, fn, count in rows]
    base = results[0][1]
    print(f"{n} packets, best of {repeat}; target {TARGET_PPS} packets/s\n")
    print("| step | µs/packet | x baseline | packets/s on one core | share of a core at target |")
    print("|---|---:|---:|---:|---:|")
    for name, us in results:
        print(
            f"| {name} | {us:.2f} | {us / base:.1f} | {1e6 / us:,.0f} | "
            f"{us * TARGET_PPS / 1e6:.1%} |"
        )


if __name__ == "__main__":
    main()
