"""One hour of two-track Connect call audio (a GetMedia payload in memory) to a stereo WAV
and one mono WAV per track. Target: < 1 s end to end.

Stages, each timed (best of ``--repeat``, wall clock):

1. parse: ``FragmentReader`` -> fragments and frames, tracks resolved by TrackEntry Name
   (AUDIO_FROM_CUSTOMER = caller = left, AUDIO_TO_CUSTOMER = agent = right);
2. assemble: ``callstream.media.tracks.StereoAssembler`` places every frame at its
   timestamp (silence for gaps) and interleaves;
3. wav: ``callstream.media.wav.wav_bytes`` for the stereo file and the two mono files.

For comparison it also times the timeline-blind path (join each track's payloads, then
interleave with numpy), which is what the assembler must not be much slower than.

    python bench/bench_extract.py
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from callstream.mkv import Fragment, FragmentReader
from make_payloads import CONNECT_64MS, payload_hour

RATE = 8000
CALLER, AGENT = "AUDIO_FROM_CUSTOMER", "AUDIO_TO_CUSTOMER"


def parse(data: bytes) -> list[Fragment]:
    reader = FragmentReader()
    return reader.feed(data) + reader.close()


def channel_frames(frags: list[Fragment]) -> list[tuple[int, int, bytes]]:
    """(channel, timestamp_ns, pcm) in stream order, channel chosen by track name."""
    out = []
    for frag in frags:
        by_number = {}
        for channel, name in enumerate((CALLER, AGENT)):
            track = frag.track_named(name)
            if track is not None:
                by_number[track.number] = channel
        for f in frag.frames:
            channel = by_number.get(f.track)
            if channel is not None:
                out.append((channel, f.timestamp_ns, f.data))
    return out


def assemble(frames: list[tuple[int, int, bytes]]) -> bytes:
    from callstream.media.tracks import StereoAssembler

    asm = StereoAssembler(RATE)
    add = asm.add
    for channel, ts, pcm in frames:
        add(channel, ts, pcm)
    return asm.finish()


def wavs(stereo: bytes) -> tuple[bytes, bytes, bytes]:
    from callstream.media.wav import wav_bytes

    samples = np.frombuffer(stereo, dtype="<i2").reshape(-1, 2)
    return (
        wav_bytes(samples, RATE),
        wav_bytes(samples[:, 0], RATE),
        wav_bytes(samples[:, 1], RATE),
    )


def naive(frags: list[Fragment]) -> bytes:
    """Timeline-blind: concatenate each track's payloads and interleave."""
    tracks: list[list[bytes]] = [[], []]
    for channel, _, pcm in channel_frames(frags):
        tracks[channel].append(pcm)
    left, right = (np.frombuffer(b"".join(t), dtype="<i2") for t in tracks)
    n = max(len(left), len(right))
    out = np.zeros(2 * n, dtype="<i2")
    out[0 : 2 * len(left) : 2] = left
    out[1 : 2 * len(right) : 2] = right
    return out.tobytes()


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = payload_hour(CONNECT_64MS)
    r = args.repeat

    t_parse, frags = best_of(lambda: parse(data), r)
    t_route, frames = best_of(lambda: channel_frames(frags), r)
    try:
        from callstream.media.tracks import StereoAssembler  # noqa: F401
    except ImportError:
        have_media = False
    else:
        have_media = True
    rows = [
        ("parse (FragmentReader, whole payload)", t_parse),
        ("route frames by track Name", t_route),
    ]
    if have_media:
        t_asm, stereo = best_of(lambda: assemble(frames), r)
        t_wav, files = best_of(lambda: wavs(stereo), r)
        rows += [
            ("StereoAssembler (timeline placement + interleave)", t_asm),
            ("3 x wav_bytes (stereo + 2 mono)", t_wav),
        ]
    t_naive, naive_stereo = best_of(lambda: naive(frags), r)
    total = sum(t for _, t in rows)

    seconds_audio = len(naive_stereo) / 4 / RATE
    print(
        f"Payload: {len(data):,} bytes, {len(frags)} fragments, {len(frames)} frames, "
        f"{seconds_audio / 3600:.3f} h of two-track audio; best of {r}, wall clock.\n"
    )
    print("| stage | seconds |")
    print("|---|---:|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} |")
    print(f"| **total** | **{total:.3f}** |")
    print(
        f"| (reference: parse + route + join/interleave with numpy, no timeline) | {t_parse + t_route + t_naive:.3f} |"
    )
    print()
    if have_media:
        stereo_wav, left_wav, right_wav = files
        same = stereo == naive_stereo
        print(
            f"- WAV sizes: stereo {len(stereo_wav):,} B, mono {len(left_wav):,} B + {len(right_wav):,} B;"
            f" assembler output {'==' if same else '!='} plain concatenation (no gaps in this payload)"
        )
        print(f"- target < 1 s: {'PASS' if total < 1 else 'MISS'} ({total:.3f} s)")
    else:
        print(
            "- callstream.media.tracks.StereoAssembler not available yet: measured parse + numpy only"
        )


if __name__ == "__main__":
    main()
