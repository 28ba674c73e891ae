"""Sample-rate conversion of int16 PCM with ``soxr`` (one-shot and streaming)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import soxr

from callstream.media.pcm import as_int16, pcm_to_samples

__all__ = ["Quality", "Resampler", "resample"]

Int16Array = npt.NDArray[np.int16]
Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
"""soxr quality recipes (quick, low, medium, high, very high)."""


def _check_rates(from_rate: int, to_rate: int) -> None:
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")


def resample(
    samples: npt.ArrayLike, from_rate: int, to_rate: int, quality: Quality = "HQ"
) -> Int16Array:
    """Resample int16 audio from ``from_rate`` to ``to_rate`` Hz.

    ``samples`` is 1-D (mono) or ``(n, channels)``; the result has the same layout and
    about ``n * to_rate / from_rate`` frames. Equal rates return a copy.
    """
    _check_rates(from_rate, to_rate)
    arr = as_int16(samples)
    if arr.ndim not in (1, 2):
        raise ValueError(f"samples must be 1-D or (n, channels), got shape {arr.shape}")
    if from_rate == to_rate:
        return arr.copy()
    if arr.shape[0] == 0:
        return arr.copy()
    out = soxr.resample(np.ascontiguousarray(arr), from_rate, to_rate, quality=quality)
    return np.asarray(out, dtype=np.int16)


class Resampler:
    """Streaming resampler for live audio (e.g. 20 ms frames), wrapping ``soxr.ResampleStream``.

    Feed chunks with :meth:`process`; call :meth:`flush` at the end to get the filter's
    tail. Output chunk sizes vary (the filter has a delay), but the concatenated output
    matches one-shot :func:`resample` to within a couple of LSB.
    """

    def __init__(
        self, from_rate: int, to_rate: int, channels: int = 1, quality: Quality = "HQ"
    ) -> None:
        _check_rates(from_rate, to_rate)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self.channels = channels
        self._passthrough = from_rate == to_rate
        self._stream = (
            None
            if self._passthrough
            else soxr.ResampleStream(from_rate, to_rate, channels, dtype="int16", quality=quality)
        )
        self._finished = False

    def _frames(self, samples: npt.ArrayLike | bytes | bytearray | memoryview) -> Int16Array:
        if isinstance(samples, bytes | bytearray | memoryview):
            arr = pcm_to_samples(samples)
        else:
            arr = as_int16(samples)
        if self.channels == 1:
            if arr.ndim == 2 and arr.shape[1] == 1:
                return np.ascontiguousarray(arr[:, 0])
            return np.ascontiguousarray(arr.reshape(-1))
        flat = arr.reshape(-1)
        if flat.shape[0] % self.channels:
            raise ValueError(f"chunk is not a whole number of {self.channels}-channel frames")
        return np.ascontiguousarray(flat.reshape(-1, self.channels))

    def process(
        self, samples: npt.ArrayLike | bytes | bytearray | memoryview, last: bool = False
    ) -> Int16Array:
        """Resample one chunk (int16 array, or little-endian PCM bytes, interleaved if
        multi-channel). Returns 1-D for mono, ``(n, channels)`` otherwise."""
        if self._finished:
            raise ValueError("Resampler already flushed")
        frames = self._frames(samples)
        self._finished = last
        if self._stream is None:
            return frames.copy()
        out = self._stream.resample_chunk(frames, last=last)
        return np.asarray(out, dtype=np.int16)

    def flush(self) -> Int16Array:
        """Signal end of input and return the remaining output."""
        shape: tuple[int, ...] = (0,) if self.channels == 1 else (0, self.channels)
        return self.process(np.zeros(shape, dtype=np.int16), last=True)
