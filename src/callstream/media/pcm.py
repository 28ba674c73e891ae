"""Helpers for 16-bit little-endian linear PCM (``audio/L16`` as Connect/KVS send it).

All byte conversions use an explicit little-endian dtype (``<i2``) so they are right on
any host; arrays handed back to callers are native-endian ``int16``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "PCM16_LE",
    "MimeType",
    "as_int16",
    "deinterleave",
    "interleave",
    "parse_mime_type",
    "pcm_to_samples",
    "samples_to_pcm",
    "silence",
]

Int16Array = npt.NDArray[np.int16]
BytesLike = bytes | bytearray | memoryview

PCM16_LE: Final = np.dtype("<i2")
"""Wire dtype of 16-bit little-endian PCM."""


def _byte_view(data: BytesLike) -> memoryview:
    return memoryview(data).cast("B")


def pcm_to_samples(data: BytesLike) -> Int16Array:
    """Convert little-endian 16-bit PCM bytes to a new 1-D native ``int16`` array.

    Raises ``ValueError`` if the byte length is odd.
    """
    raw = _byte_view(data)
    if raw.nbytes % 2:
        raise ValueError(f"16-bit PCM must have an even byte length, got {raw.nbytes}")
    return np.frombuffer(raw, dtype=PCM16_LE).astype(np.int16)


def samples_to_pcm(samples: npt.ArrayLike) -> bytes:
    """Convert int16 samples (any shape, flattened in C order) to little-endian bytes.

    Integer arrays of other dtypes are accepted if every value fits in int16.
    """
    arr = as_int16(samples)
    return arr.astype(PCM16_LE, copy=False).tobytes()


def as_int16(samples: npt.ArrayLike) -> Int16Array:
    """Return ``samples`` as a native ``int16`` array, checking range for wider types.

    Raises ``TypeError`` for non-integer input and ``ValueError`` for out-of-range values.
    """
    arr = np.asarray(samples)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"PCM samples must be an integer array, got dtype {arr.dtype}")
    if (arr.dtype.itemsize > 2 or (arr.dtype.kind == "u" and arr.dtype.itemsize == 2)) and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < -32768 or hi > 32767:
            raise ValueError(f"PCM samples out of int16 range: min {lo}, max {hi}")
    return arr.astype(np.int16, copy=False)


def silence(n_samples: int, channels: int = 1) -> bytes:
    """Return ``n_samples`` sample frames of 16-bit PCM silence for ``channels`` channels."""
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    return bytes(n_samples * channels * 2)


def interleave(channels: Sequence[npt.ArrayLike]) -> Int16Array:
    """Interleave mono channels into one flat int16 array (``L0 R0 L1 R1 ...``).

    Shorter channels are padded with silence at the end to the longest one.
    """
    if not channels:
        raise ValueError("interleave() needs at least one channel")
    arrays = [as_int16(ch).reshape(-1) for ch in channels]
    n = max(a.shape[0] for a in arrays)
    out = np.zeros((n, len(arrays)), dtype=np.int16)
    for i, a in enumerate(arrays):
        out[: a.shape[0], i] = a
    return out.reshape(-1)


def deinterleave(pcm: npt.ArrayLike | BytesLike, channels: int) -> list[Int16Array]:
    """Split interleaved PCM (int16 array or little-endian bytes) into per-channel arrays.

    Raises ``ValueError`` if the sample count is not a multiple of ``channels``.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if isinstance(pcm, bytes | bytearray | memoryview):
        flat = pcm_to_samples(pcm)
    else:
        flat = as_int16(pcm).reshape(-1)
    if flat.shape[0] % channels:
        raise ValueError(
            f"{flat.shape[0]} samples is not a whole number of {channels}-channel frames"
        )
    frames = flat.reshape(-1, channels)
    return [np.ascontiguousarray(frames[:, i]) for i in range(channels)]


_SAMPLE_WIDTHS: Final = {"L16": 2, "L8": 1, "PCMU": 1, "PCMA": 1}
_FIXED_RATE: Final = {"PCMU": 8000, "PCMA": 8000}


@dataclass(frozen=True, slots=True)
class MimeType:
    """An audio MIME type such as ``audio/L16;rate=8000;channels=1``.

    ``encoding`` is the upper-cased subtype (``L16``, ``PCMU``, ``PCMA``, ...).
    """

    encoding: str
    rate: int
    channels: int = 1

    @classmethod
    def parse(cls, value: str) -> MimeType:
        """Parse a MIME type string; see :func:`parse_mime_type`."""
        return parse_mime_type(value)

    @property
    def sample_width(self) -> int | None:
        """Bytes per sample for known encodings (``L16`` -> 2, ``PCMU`` -> 1), else None."""
        return _SAMPLE_WIDTHS.get(self.encoding)

    def __str__(self) -> str:
        return f"audio/{self.encoding};rate={self.rate};channels={self.channels}"


def parse_mime_type(value: str) -> MimeType:
    """Parse ``audio/<encoding>;rate=<hz>;channels=<n>`` into a :class:`MimeType`.

    Tolerates a trailing ``;`` (real Connect streams send ``audio/L16;rate=8000;channels=1;``),
    whitespace, quoted values, parameter-name case and unknown parameters. ``channels``
    defaults to 1; ``rate`` is required except for ``PCMU``/``PCMA`` (8000).
    Raises ``ValueError`` for anything else.
    """
    parts = [p.strip() for p in value.split(";")]
    media, params = parts[0], [p for p in parts[1:] if p]
    major, sep, subtype = media.partition("/")
    if not sep or major.strip().lower() != "audio" or not subtype.strip():
        raise ValueError(f"not an audio MIME type: {value!r}")
    encoding = subtype.strip().upper()
    fields: dict[str, str] = {}
    for param in params:
        name, eq, raw = param.partition("=")
        if not eq:
            raise ValueError(f"malformed MIME parameter {param!r} in {value!r}")
        fields[name.strip().lower()] = raw.strip().strip('"')
    try:
        rate = int(fields["rate"]) if "rate" in fields else _FIXED_RATE[encoding]
    except KeyError:
        raise ValueError(f"MIME type {value!r} has no rate") from None
    except ValueError:
        raise ValueError(f"bad rate in MIME type {value!r}") from None
    try:
        channels = int(fields.get("channels", "1"))
    except ValueError:
        raise ValueError(f"bad channels in MIME type {value!r}") from None
    if rate <= 0 or channels <= 0:
        raise ValueError(f"rate and channels must be positive in {value!r}")
    return MimeType(encoding=encoding, rate=rate, channels=channels)
