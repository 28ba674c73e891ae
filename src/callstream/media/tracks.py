"""Timeline assembly: turn timestamped audio frames into contiguous PCM where time stays true.

MKV/KVS audio arrives as blocks with timestamps. Concatenating the payloads loses time
whenever the producer skips (a network hiccup, a short block); this module places each
frame at its timestamp instead, filling holes with silence, but never drops, truncates or
moves audio because of small jitter.

Rules (per track, frames in arrival order):

* Time zero is ``origin_ns`` (given, or the first frame's timestamp).
* A frame's expected position in samples is ``round((timestamp_ns - origin_ns) * rate / 1e9)``
  (computed exactly in integers, ties to even).
* If that position is ahead of the samples written so far by more than
  ``gap_tolerance_ms``, silence fills the whole gap, then the frame is appended.
* Otherwise (within tolerance, overlapping, or before the origin) the frame is appended
  as is. The tolerance absorbs millisecond-rounded timestamps of frames whose duration is
  not a whole number of milliseconds.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import numpy as np

from callstream.media.pcm import PCM16_LE

__all__ = ["Channel", "StereoAssembler", "TrackTimeline", "ns_to_samples"]

_NS_PER_S: Final = 1_000_000_000


def ns_to_samples(delta_ns: int, rate: int) -> int:
    """``round(delta_ns * rate / 1e9)`` computed exactly (ties to even, like ``round``)."""
    q, r = divmod(delta_ns * rate, _NS_PER_S)
    twice = 2 * r
    if twice > _NS_PER_S or (twice == _NS_PER_S and q & 1):
        q += 1
    return q


class TrackTimeline:
    """Places one track's timestamped PCM frames on a sample-accurate timeline.

    ``rate`` is the sample rate, ``channels`` and ``sample_width`` describe the frames'
    PCM layout (one "sample" below means one sample frame). ``fill_byte`` is the byte
    silence is made of (0 for signed PCM; 0xFF for µ-law, 0xD5 for A-law). ``max_gap_ms``,
    if set, makes :meth:`add` raise ``ValueError`` rather than allocate silence for an
    implausible timestamp jump (e.g. from untrusted input).
    """

    def __init__(
        self,
        rate: int,
        channels: int = 1,
        sample_width: int = 2,
        gap_tolerance_ms: float = 2.0,
        *,
        origin_ns: int | None = None,
        fill_byte: int = 0,
        max_gap_ms: float | None = None,
    ) -> None:
        if rate <= 0 or channels <= 0 or sample_width <= 0:
            raise ValueError("rate, channels and sample_width must be positive")
        if gap_tolerance_ms < 0:
            raise ValueError(f"gap_tolerance_ms must be >= 0, got {gap_tolerance_ms}")
        if not 0 <= fill_byte <= 255:
            raise ValueError(f"fill_byte must be a byte value, got {fill_byte}")
        self.rate = rate
        self.channels = channels
        self.sample_width = sample_width
        self.frame_bytes = channels * sample_width
        self.gap_tolerance_ms = gap_tolerance_ms
        self.max_gap_ms = max_gap_ms
        self._tolerance_samples = gap_tolerance_ms * rate / 1000.0
        self._fill = bytes([fill_byte]) * self.frame_bytes
        self._origin_ns = origin_ns
        self._buf = bytearray()
        self._written = 0  # samples appended in total (audio + silence)
        self._taken = 0  # samples handed out by take()
        self.frames_added = 0
        self.gap_count = 0
        self.silence_samples = 0
        self.overlap_samples = 0

    @property
    def origin_ns(self) -> int | None:
        """Timestamp of sample 0, or None before the first frame."""
        return self._origin_ns

    @property
    def samples_written(self) -> int:
        """Samples placed on the timeline so far (audio + silence, including taken ones)."""
        return self._written

    @property
    def buffered_samples(self) -> int:
        """Samples placed but not yet returned by :meth:`take`."""
        return self._written - self._taken

    def position_of(self, timestamp_ns: int) -> int:
        """Expected sample position of ``timestamp_ns`` (requires a known origin)."""
        if self._origin_ns is None:
            raise ValueError("timeline has no origin yet")
        return ns_to_samples(timestamp_ns - self._origin_ns, self.rate)

    def add(self, timestamp_ns: int, pcm: bytes | bytearray | memoryview) -> int:
        """Place one frame; returns the number of silence samples inserted before it.

        Raises ``ValueError`` if ``pcm`` is not a whole number of sample frames.
        """
        data = pcm if isinstance(pcm, bytes | bytearray) else memoryview(pcm).cast("B")
        nbytes = len(data)
        if nbytes % self.frame_bytes:
            raise ValueError(
                f"frame of {nbytes} bytes is not a whole number of "
                f"{self.frame_bytes}-byte sample frames"
            )
        if self._origin_ns is None:
            self._origin_ns = timestamp_ns
        gap = ns_to_samples(timestamp_ns - self._origin_ns, self.rate) - self._written
        inserted = 0
        if gap > self._tolerance_samples:
            self._check_gap(gap, timestamp_ns)
            self._append_silence(gap)
            self.gap_count += 1
            inserted = gap
        elif gap < 0:
            self.overlap_samples += -gap
        self._buf += data
        self._written += nbytes // self.frame_bytes
        self.frames_added += 1
        return inserted

    def _check_gap(self, gap: int, timestamp_ns: int) -> None:
        if self.max_gap_ms is not None and gap * 1000 > self.max_gap_ms * self.rate:
            raise ValueError(
                f"timestamp {timestamp_ns} ns jumps {gap * 1000 / self.rate:.1f} ms "
                f"(max_gap_ms={self.max_gap_ms})"
            )

    def _append_silence(self, n_samples: int) -> None:
        self._buf += self._fill * n_samples
        self._written += n_samples
        self.silence_samples += n_samples

    def pad_to(self, n_samples: int) -> int:
        """Append silence until ``samples_written == n_samples``; returns samples added."""
        missing = n_samples - self._written
        if missing <= 0:
            return 0
        self._append_silence(missing)
        return missing

    def take(self, max_samples: int | None = None) -> bytes:
        """Return and clear the buffered PCM (at most ``max_samples`` sample frames)."""
        n = (
            self.buffered_samples
            if max_samples is None
            else min(max_samples, self.buffered_samples)
        )
        if n <= 0:
            return b""
        nbytes = n * self.frame_bytes
        if nbytes == len(self._buf):  # the usual case: one copy, not two
            out = bytes(self._buf)
            self._buf.clear()
        else:
            out = bytes(memoryview(self._buf)[:nbytes])
            del self._buf[:nbytes]
        self._taken += n
        return out

    def _rebase(self, origin_ns: int) -> None:
        """Move the origin earlier, prepending silence so placed audio keeps its time."""
        if self._origin_ns is None:
            self._origin_ns = origin_ns
            return
        shift = self.position_of(self._origin_ns) - self.position_of(origin_ns)
        if self._written:
            if self._taken:
                raise RuntimeError("cannot move the origin after samples were taken")
            self._check_gap(shift, origin_ns)
            self._buf[0:0] = self._fill * shift
            self._written += shift
            self.silence_samples += shift
        self._origin_ns = origin_ns


class Channel(IntEnum):
    """Stereo channel assignment used by :class:`StereoAssembler`."""

    CALLER = 0
    """Left: the customer / caller (Connect ``AUDIO_FROM_CUSTOMER``)."""
    AGENT = 1
    """Right: the agent / what the customer hears (Connect ``AUDIO_TO_CUSTOMER``)."""


class StereoAssembler:
    """Builds interleaved stereo 16-bit PCM from two mono tracks on one shared timeline.

    Channel 0 is the caller/customer, channel 1 the agent. The shared origin is
    ``origin_ns`` if given, else the earliest first-frame timestamp of either track (a
    track whose first frame is earlier than audio already buffered on the other shifts
    it, as long as nothing has been emitted yet). :meth:`take` emits only the samples both
    channels have reached; :meth:`finish` pads the shorter channel with silence and emits
    the rest. Output is little-endian ``L R L R ...``.
    """

    def __init__(
        self,
        rate: int,
        gap_tolerance_ms: float = 2.0,
        *,
        origin_ns: int | None = None,
        max_gap_ms: float | None = None,
    ) -> None:
        self.rate = rate
        self._fixed_origin = origin_ns is not None
        self.tracks: tuple[TrackTimeline, TrackTimeline] = (
            TrackTimeline(rate, 1, 2, gap_tolerance_ms, origin_ns=origin_ns, max_gap_ms=max_gap_ms),
            TrackTimeline(rate, 1, 2, gap_tolerance_ms, origin_ns=origin_ns, max_gap_ms=max_gap_ms),
        )
        self._started = [False, False]
        self._emitted = 0
        self._finished = False

    @property
    def origin_ns(self) -> int | None:
        """Timestamp of sample 0, or None before any frame."""
        return self.tracks[0].origin_ns

    @property
    def samples_emitted(self) -> int:
        """Stereo sample frames returned by :meth:`take` / :meth:`finish` so far."""
        return self._emitted

    def add(self, channel: int, timestamp_ns: int, pcm: bytes | bytearray | memoryview) -> int:
        """Add a mono 16-bit LE frame to ``channel`` (0 = caller, 1 = agent).

        Returns the number of silence samples inserted before it on that channel.
        """
        if self._finished:
            raise RuntimeError("StereoAssembler already finished")
        if channel not in (0, 1):
            raise ValueError(f"channel must be 0 (caller) or 1 (agent), got {channel}")
        if not self._started[channel] and not self._fixed_origin:
            origin = self.origin_ns
            if origin is None or (timestamp_ns < origin and self._emitted == 0):
                # the track holding audio first: it may refuse (max_gap_ms) before any change
                for track in sorted(self.tracks, key=lambda t: -t.samples_written):
                    track._rebase(timestamp_ns)
        self._started[channel] = True
        return self.tracks[channel].add(timestamp_ns, pcm)

    def _emit(self, n: int) -> bytes:
        if n <= 0:
            return b""
        left = np.frombuffer(self.tracks[0].take(n), dtype=PCM16_LE)
        right = np.frombuffer(self.tracks[1].take(n), dtype=PCM16_LE)
        out = np.empty(2 * n, dtype=PCM16_LE)
        out[0::2] = left
        out[1::2] = right
        self._emitted += n
        return out.tobytes()

    def take(self) -> bytes:
        """Return interleaved stereo for the samples both channels have reached."""
        return self._emit(min(t.buffered_samples for t in self.tracks))

    def finish(self) -> bytes:
        """Pad the shorter channel with silence and return all remaining stereo PCM."""
        self._finished = True
        end = max(t.samples_written for t in self.tracks)
        for track in self.tracks:
            track.pad_to(end)
        return self._emit(end - self._emitted)
