"""RTP payload decoders: G.711 µ-law/A-law and L16 to 16-bit little-endian PCM.

:func:`decoder_for` maps an SDP ``rtpmap`` encoding (name, clock rate, channels) to a
function ``payload -> PCM bytes`` (8 kHz mono, 16-bit signed little-endian), or ``None``
when the encoding is not one we write as audio.

G.711 decodes per packet (160 bytes for 20 ms) with two ``bytes.translate`` passes (low
and high byte of each sample, from the 256-entry tables of :mod:`callstream.media.g711`)
interleaved by slice assignment into one ``bytearray``: no per-sample Python work and no
numpy array objects. ``bench/bench_rtp.py`` compares it with ``numpy.take`` and a join
over 2-byte strings; it was the fastest for 160-byte payloads.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from callstream.media.g711 import ALAW_DECODE_TABLE, ULAW_DECODE_TABLE

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "Decoder",
    "decode_l16",
    "decode_pcma",
    "decode_pcmu",
    "decoder_for",
    "decoders_for_rtpmap",
    "silence",
]

Decoder = Callable[[bytes], bytes]
"""Payload bytes -> 8 kHz mono 16-bit little-endian PCM bytes."""


def _byte_tables(table: npt.NDArray[np.int16]) -> tuple[bytes, bytes]:
    """Translate tables for the low and the high byte of each code's LE sample."""
    le = table.astype("<i2").view(np.uint8).reshape(256, 2)
    return le[:, 0].tobytes(), le[:, 1].tobytes()


_ULAW_LO, _ULAW_HI = _byte_tables(ULAW_DECODE_TABLE)
_ALAW_LO, _ALAW_HI = _byte_tables(ALAW_DECODE_TABLE)
_LITTLE_ENDIAN: Final = sys.byteorder == "little"


def decode_pcmu(payload: bytes) -> bytes:
    """Decode G.711 µ-law codes to 16-bit LE PCM (bit-identical to ``ulaw_decode``)."""
    out = bytearray(2 * len(payload))
    out[0::2] = payload.translate(_ULAW_LO)
    out[1::2] = payload.translate(_ULAW_HI)
    return bytes(out)


def decode_pcma(payload: bytes) -> bytes:
    """Decode G.711 A-law codes to 16-bit LE PCM (bit-identical to ``alaw_decode``)."""
    out = bytearray(2 * len(payload))
    out[0::2] = payload.translate(_ALAW_LO)
    out[1::2] = payload.translate(_ALAW_HI)
    return bytes(out)


def decode_l16(payload: bytes) -> bytes:
    """L16 (RFC 3551: big-endian, network byte order) to little-endian PCM.

    An odd trailing byte (a truncated sample) is dropped.
    """
    if len(payload) & 1:
        payload = payload[:-1]
    if not _LITTLE_ENDIAN:
        return bytes(payload)
    samples = array.array("h", payload)
    samples.byteswap()
    return samples.tobytes()


_DECODERS: Final[dict[str, Decoder]] = {
    "PCMU": decode_pcmu,
    "PCMA": decode_pcma,
    "L16": decode_l16,
}


def decoder_for(encoding: str, clock_rate: int, channels: int = 1) -> Decoder | None:
    """The decoder for an SDP ``a=rtpmap`` encoding, or ``None`` if we do not write it.

    PCMU and PCMA (G.711) and L16, each only at 8000 Hz mono (the output is 8 kHz mono);
    the encoding name is case-insensitive. Everything else (telephone-event, CN, G.729,
    G.722, Opus, L16 at other rates or stereo, ...) is ``None``.
    """
    if clock_rate != 8000 or channels != 1:
        return None
    return _DECODERS.get(encoding.upper())


STATIC_PAYLOAD_TYPES: Final[Mapping[int, tuple[str, int, int]]] = {
    0: ("PCMU", 8000, 1),
    8: ("PCMA", 8000, 1),
    13: ("CN", 8000, 1),
}
"""RFC 3551 static payload types we meet on call legs: ``pt -> (encoding, rate, channels)``."""

_NOT_AUDIO: Final = frozenset({"TELEPHONE-EVENT", "CN"})


def decoders_for_rtpmap(
    rtpmap: Mapping[int, tuple[str, int, int]],
) -> tuple[dict[int, Decoder], frozenset[int]]:
    """Decoders and ignored payload types for one SDP media description.

    ``rtpmap`` maps payload types to ``(encoding, clock rate, channels)`` from its
    ``a=rtpmap`` lines; :data:`STATIC_PAYLOAD_TYPES` fill in types it does not remap.
    Returns ``(decoders, ignored)`` for :class:`~callstream.voice.jitterbuffer.JitterBuffer`:
    ``ignored`` holds the telephone-event and CN types (not audio, but they take time).
    """
    merged = {**STATIC_PAYLOAD_TYPES, **rtpmap}
    decoders: dict[int, Decoder] = {}
    ignored: set[int] = set()
    for pt, (encoding, rate, channels) in merged.items():
        decoder = decoder_for(encoding, rate, channels)
        if decoder is not None:
            decoders[pt] = decoder
        elif encoding.upper() in _NOT_AUDIO:
            ignored.add(pt)
    return decoders, frozenset(ignored)


@lru_cache(maxsize=64)
def silence(samples: int) -> bytes:
    """``samples`` samples of 16-bit PCM silence (zero bytes), cached per length."""
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")
    return bytes(2 * samples)
