"""G.711 µ-law and A-law codecs built on numpy lookup tables.

The tables are computed by formula at import time (the ITU-T G.711 / Sun ``g711.c``
algorithms that CPython's ``audioop`` also uses), so the output is bit-identical to
``audioop.lin2ulaw`` / ``ulaw2lin`` / ``lin2alaw`` / ``alaw2lin`` at width 2 without
depending on ``audioop`` (deprecated in 3.11, removed in 3.13).

* decode tables: 256 entries, code -> int16
* encode tables: 65,536 entries indexed by ``int16.view(uint16)`` -> code

Linear PCM is 16-bit signed. ``bytes`` input is read as little-endian (``<i2``), the
byte order of WAV files and of the Connect/KVS ``audio/L16`` payloads.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from callstream.media.pcm import as_int16

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]

Int16Array = npt.NDArray[np.int16]
Uint8Array = npt.NDArray[np.uint8]

_ULAW_BIAS: Final = 0x84
_ULAW_CLIP: Final = 8159  # magnitude clip in the 14-bit domain


def _segment(magnitude: npt.NDArray[np.int32], seg_ends: tuple[int, ...]) -> npt.NDArray[np.int32]:
    """Index of the first segment end >= magnitude (8 when beyond the last)."""
    return np.searchsorted(np.asarray(seg_ends, dtype=np.int32), magnitude, side="left").astype(
        np.int32
    )


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its ``uint16`` bit pattern (the encode-table index)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> Uint8Array:
    pcm = _all_int16() >> 2  # 14-bit, arithmetic shift like audioop
    mask = np.where(pcm < 0, 0x7F, 0xFF).astype(np.int32)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(mag, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    # seg >= 8 cannot happen after clipping (8159 + 33 = 0x1FFF), kept for fidelity.
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0xF))
    return ((uval ^ mask) & 0xFF).astype(np.uint8)


def _build_ulaw_decode() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encode() -> Uint8Array:
    pcm = _all_int16() >> 3  # 13-bit
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5).astype(np.int32)
    mag = np.where(negative, -pcm - 1, pcm)
    seg = _segment(mag, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    shift = np.where(seg < 2, 1, seg)
    aval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> shift) & 0xF))
    return ((aval ^ mask) & 0xFF).astype(np.uint8)


def _build_alaw_decode() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE_TABLE: Final[Uint8Array] = _build_ulaw_encode()
"""65,536-entry µ-law encode table indexed by ``int16.view(uint16)``."""
ULAW_DECODE_TABLE: Final[Int16Array] = _build_ulaw_decode()
"""256-entry µ-law decode table: code -> int16."""
ALAW_ENCODE_TABLE: Final[Uint8Array] = _build_alaw_encode()
"""65,536-entry A-law encode table indexed by ``int16.view(uint16)``."""
ALAW_DECODE_TABLE: Final[Int16Array] = _build_alaw_decode()
"""256-entry A-law decode table: code -> int16."""

for _table in (ULAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_ENCODE_TABLE, ALAW_DECODE_TABLE):
    _table.setflags(write=False)


def _as_int16(pcm: npt.ArrayLike | bytes | bytearray | memoryview) -> Int16Array:
    """Coerce PCM input to a flat native int16 array (bytes are read as little-endian)."""
    if isinstance(pcm, bytes | bytearray | memoryview):
        raw = memoryview(pcm).cast("B")
        if raw.nbytes % 2:
            raise ValueError(f"16-bit PCM must have an even byte length, got {raw.nbytes}")
        return np.frombuffer(raw, dtype="<i2").astype(np.int16, copy=False)
    return as_int16(pcm).reshape(-1)


def _as_codes(data: bytes | bytearray | memoryview | npt.ArrayLike) -> Uint8Array:
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    arr = np.asarray(data)
    if arr.dtype != np.uint8:
        raise TypeError(f"G.711 codes must be bytes or a uint8 array, got dtype {arr.dtype}")
    return arr.reshape(-1)


def ulaw_encode(pcm: npt.ArrayLike | bytes | bytearray | memoryview) -> bytes:
    """Encode 16-bit PCM (int16 array, or little-endian bytes) to µ-law bytes.

    Multi-dimensional arrays are flattened in C order, so an ``(n, channels)`` array
    becomes interleaved codes.
    """
    return ULAW_ENCODE_TABLE[_as_int16(pcm).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview | npt.ArrayLike) -> Int16Array:
    """Decode µ-law bytes (or a uint8 array) to a 1-D native int16 array."""
    return ULAW_DECODE_TABLE[_as_codes(data)]


def alaw_encode(pcm: npt.ArrayLike | bytes | bytearray | memoryview) -> bytes:
    """Encode 16-bit PCM (int16 array, or little-endian bytes) to A-law bytes."""
    return ALAW_ENCODE_TABLE[_as_int16(pcm).view(np.uint16)].tobytes()


def alaw_decode(data: bytes | bytearray | memoryview | npt.ArrayLike) -> Int16Array:
    """Decode A-law bytes (or a uint8 array) to a 1-D native int16 array."""
    return ALAW_DECODE_TABLE[_as_codes(data)]
