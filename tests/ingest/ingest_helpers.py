"""Shared helpers of the ingest tests: read a call's streams back and compare audio."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from callstream.mkv.kvs import Fragment, FragmentReader

RATE = 8000


@dataclass
class StreamAudio:
    """What a stream holds: PCM per track name (frames in order, checked contiguous),
    the fragments' tags and numbers."""

    pcm: dict[str, bytes] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    start_ns: dict[str, int] = field(default_factory=dict)


def parse_stream(fragments: Iterable[Fragment]) -> StreamAudio:
    """Concatenate each track's frames; assert each frame starts where the previous ended
    (so the concatenation is the stream's timeline)."""
    out = StreamAudio()
    ends: dict[str, int] = {}
    pcm: dict[str, bytearray] = {}
    for fragment in fragments:
        out.tags.append(dict(fragment.tags))
        if fragment.fragment_number:
            out.numbers.append(fragment.fragment_number)
        names = {n: t.name or str(n) for n, t in fragment.tracks.items()}
        rates = {n: int(t.sampling_rate or RATE) for n, t in fragment.tracks.items()}
        for frame in fragment.frames:
            name = names[frame.track]
            rate = rates[frame.track]
            if name in ends:
                # ms timestamps: a frame may start up to 1 ms early/late of the sample end
                assert abs(frame.timestamp_ns - ends[name]) <= 1_000_000, (name, frame)
            else:
                out.start_ns[name] = frame.timestamp_ns
            ends[name] = frame.timestamp_ns + len(frame.data) // 2 * 1_000_000_000 // rate
            pcm.setdefault(name, bytearray()).extend(frame.data)
    out.pcm = {k: bytes(v) for k, v in pcm.items()}
    return out


def parse_payload(data: bytes) -> StreamAudio:
    """A GetMedia payload (or MKV) read back."""
    reader = FragmentReader()
    return parse_stream(reader.feed(data) + reader.close())


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2")


def tone(seconds: float, freq: float = 440.0, seed: int = 0, rate: int = RATE) -> bytes:
    """Distinct, non-silent test audio (a tone plus a little noise; no zero runs)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    wave = 8000 * np.sin(2 * np.pi * freq * t) + rng.integers(-300, 300, n)
    wave[wave == 0] = 1
    return np.clip(wave, -32768, 32767).astype("<i2").tobytes()
