"""A clip of a stream's audio as one WAV file (what callstream's GetClip serves).

:func:`build_clip` decodes the audio of a run of fragments and lays it on a true
timeline (gaps become silence). Channels: Connect streams give stereo (left
``AUDIO_FROM_CUSTOMER``, right ``AUDIO_TO_CUSTOMER``, found by track name); other
streams one channel per audio track in track-number order. What cannot be decoded raises
:class:`ClipError` whose ``reason`` says why, so that an API can answer it in its own
terms.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from callstream.media.extract import (
    FROM_CUSTOMER,
    TO_CUSTOMER,
    AudioFormat,
    AudioFormatError,
    audio_format,
    to_pcm16,
)
from callstream.media.resample import resample
from callstream.media.tracks import TrackTimeline, ns_to_samples
from callstream.media.wav import wav_bytes
from callstream.mkv.kvs import Fragment, TrackInfo

__all__ = ["MAX_CLIP_PCM_BYTES", "ClipError", "build_clip"]

MAX_CLIP_PCM_BYTES = 512 * 1024 * 1024
"""Largest WAV payload a clip may expand to (long silences between sparse fragments)."""

ClipErrorReason = Literal[
    "unsupported",
    "missing_codec_private",
    "invalid_codec_private",
    "invalid_frame",
    "no_audio",
    "too_long",
]


class ClipError(ValueError):
    """The fragments cannot make a clip; ``reason`` says why."""

    def __init__(self, reason: ClipErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason: ClipErrorReason = reason


def _track_format(fragment: Fragment, track: TrackInfo) -> AudioFormat:
    try:
        return audio_format(fragment, track)
    except AudioFormatError as exc:
        message = f"{str(exc)[0].upper()}{str(exc)[1:]}; callstream clips are WAV."
        raise ClipError(exc.reason, message) from None  # type: ignore[arg-type]


def _channel_tracks(fragment: Fragment) -> list[TrackInfo | None]:
    """The tracks feeding output channels 0, 1, ... (None: silent in this fragment)."""
    names = {t.name for t in fragment.tracks.values()}
    if FROM_CUSTOMER in names or TO_CUSTOMER in names:
        return [fragment.track_named(FROM_CUSTOMER), fragment.track_named(TO_CUSTOMER)]
    return [fragment.tracks[n] for n in sorted(fragment.tracks)]


def build_clip(fragments: list[Fragment]) -> bytes:
    """A WAV file (16-bit PCM) of the fragments' audio (blocking; see the module
    docstring)."""
    plan: list[list[tuple[int, TrackInfo, AudioFormat]]] = []
    channels = 0
    rates: dict[int, int] = {}
    for frag in fragments:
        sources = _channel_tracks(frag)
        if not channels:
            channels = len(sources)
        entry: list[tuple[int, TrackInfo, AudioFormat]] = []
        for channel, track in enumerate(sources[:channels]):
            if track is None:
                continue
            fmt = _track_format(frag, track)
            if rates.setdefault(channel, fmt.rate) != fmt.rate:
                raise ClipError("unsupported", "The sample rate changes within the requested clip.")
            entry.append((channel, track, fmt))
        plan.append(entry)
    if not channels:
        raise ClipError("unsupported", "The requested fragments have no audio tracks.")
    stamps = [
        f.timestamp_ns
        for frag, entry in zip(fragments, plan, strict=True)
        for _, track, _ in entry
        for f in frag.frames
        if f.track == track.number
    ]
    if not stamps:
        raise ClipError("no_audio", "The requested fragments hold no audio.")
    origin, last = min(stamps), max(stamps)
    rate = max(rates.values())
    if ns_to_samples(last - origin, rate) * channels * 2 > MAX_CLIP_PCM_BYTES:
        raise ClipError(
            "too_long",
            "The clip would be longer than callstream serves in one WAV; narrow the range.",
        )
    timelines = {c: TrackTimeline(r, origin_ns=origin) for c, r in rates.items()}
    for frag, entry in zip(fragments, plan, strict=True):
        for channel, track, fmt in entry:
            line = timelines[channel]
            for frame in frag.frames:
                if frame.track == track.number:
                    try:
                        line.add(frame.timestamp_ns, to_pcm16(frame.data, fmt))
                    except ValueError as exc:
                        raise ClipError("invalid_frame", str(exc)) from None
    columns: list[np.ndarray[Any, np.dtype[np.int16]]] = []
    for channel in range(channels):
        timeline = timelines.get(channel)
        if timeline is None:
            pcm = np.zeros(0, "<i2")
        else:
            pcm = np.frombuffer(timeline.take(), dtype="<i2")
            if timeline.rate != rate:
                pcm = np.asarray(resample(pcm, timeline.rate, rate), dtype="<i2")
        columns.append(pcm)
    length = max(len(c) for c in columns)
    out = np.zeros((length, channels), dtype="<i2")
    for channel, pcm in enumerate(columns):
        out[: len(pcm), channel] = pcm
    return wav_bytes(out, rate)
