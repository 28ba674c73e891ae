"""Benchmark: callstream.media G.711 tables vs audioop, and soxr resampling.

Not a test. Run: ``python bench/bench_g711.py [--seconds 600] [--repeat 7]``.
Prints a markdown table (best of N runs) for 600 s of 8 kHz mono audio.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np

from callstream.media import (
    Resampler,
    alaw_decode,
    alaw_encode,
    resample,
    ulaw_decode,
    ulaw_encode,
)

RATE = 8000


def load_audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


def best_of(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    n = int(args.seconds * RATE)
    rng = np.random.default_rng(0)
    t = np.arange(n) / RATE
    pcm = (np.sin(2 * np.pi * 440 * t) * 12000 + rng.normal(0, 2000, n)).clip(-32768, 32767)
    samples = pcm.astype(np.int16)
    raw = samples.astype("<i2").tobytes()
    ulaw, alaw = ulaw_encode(samples), alaw_encode(samples)
    audioop = load_audioop()

    rows: list[tuple[str, float, float | None, str]] = []

    def add(name: str, ours: Callable[[], object], ref: Callable[[], object] | None) -> None:
        mine = best_of(ours, args.repeat)
        base = best_of(ref, args.repeat) if ref is not None else None
        rows.append((name, mine, base, ""))

    if audioop is not None:
        assert ulaw_encode(samples) == audioop.lin2ulaw(raw, 2)
        assert alaw_encode(samples) == audioop.lin2alaw(raw, 2)
        add("µ-law encode", lambda: ulaw_encode(samples), lambda: audioop.lin2ulaw(raw, 2))
        add("µ-law decode", lambda: ulaw_decode(ulaw), lambda: audioop.ulaw2lin(ulaw, 2))
        add("A-law encode", lambda: alaw_encode(samples), lambda: audioop.lin2alaw(raw, 2))
        add("A-law decode", lambda: alaw_decode(alaw), lambda: audioop.alaw2lin(alaw, 2))
    else:
        add("µ-law encode", lambda: ulaw_encode(samples), None)
        add("µ-law decode", lambda: ulaw_decode(ulaw), None)
        add("A-law encode", lambda: alaw_encode(samples), None)
        add("A-law decode", lambda: alaw_decode(alaw), None)
    add("µ-law encode (bytes in)", lambda: ulaw_encode(raw), None)
    add("resample 8k→16k, one-shot (soxr HQ)", lambda: resample(samples, 8000, 16000), None)

    def streamed() -> None:
        r = Resampler(8000, 16000)
        for i in range(0, n, 160):  # 20 ms frames
            r.process(samples[i : i + 160])
        r.flush()

    add("resample 8k→16k, 20 ms stream (soxr HQ)", streamed, None)
    if audioop is not None:
        rows.append(
            (
                "resample 8k→16k, audioop.ratecv",
                best_of(lambda: audioop.ratecv(raw, 2, 1, 8000, 16000, None), args.repeat),
                None,
                "baseline only",
            )
        )

    print(
        f"{args.seconds:g} s of {RATE} Hz mono int16, best of {args.repeat}; numpy {np.__version__}"
    )
    print()
    print("| operation | callstream.media | audioop | speed-up | × real time |")
    print("|---|---:|---:|---:|---:|")
    for name, mine, base, note in rows:
        base_s = f"{base * 1e3:.1f} ms" if base is not None else "–"
        speed = f"{base / mine:.1f}×" if base is not None else "–"
        if note:
            name, mine_s = f"{name} ({note})", "–"
            base_s, rt = f"{mine * 1e3:.1f} ms", f"{args.seconds / mine:,.0f}×"
        else:
            mine_s, rt = f"{mine * 1e3:.1f} ms", f"{args.seconds / mine:,.0f}×"
        print(f"| {name} | {mine_s} | {base_s} | {speed} | {rt} |")


if __name__ == "__main__":
    main()
