"""RTP packets (RFC 3550): parse, build, RTP/RTCP demultiplexing and RFC 4733 events.

Sans-I/O and built for a hot path: :func:`parse_rtp` reads the fixed 12-byte header with
one ``struct.unpack_from`` and returns a slots dataclass; optional parts (CSRC list,
header extension, padding) cost only when present.

* :class:`RtpPacket` carries the payload with padding removed and the header extension
  skipped (its profile word and data are kept in ``extension_header``).
* :func:`is_rtcp` tells RTCP from RTP on a shared port (RFC 5761 §4).
* :func:`build_rtp` is the inverse of :func:`parse_rtp`, for tests and load generators.
* :func:`telephone_event` reads an RFC 4733 DTMF event payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "RtpError",
    "RtpPacket",
    "build_rtp",
    "is_rtcp",
    "parse_rtp",
    "telephone_event",
]

_HEADER: Final = struct.Struct("!BBHII")
_EXT_HEADER: Final = struct.Struct("!HH")
_EVENT: Final = struct.Struct("!BBH")


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP version 2 packet."""


@dataclass(slots=True)
class RtpPacket:
    """One parsed RTP packet.

    ``payload`` excludes the CSRC list, the header extension and the padding.
    ``extension_header`` is ``(profile, data)`` when the X bit is set (``data`` without the
    4-byte extension header), else ``None``.
    """

    version: int
    padding: bool
    extension: bool
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    csrc: tuple[int, ...]
    payload: bytes
    extension_header: tuple[int, bytes] | None = None


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP datagram (``bytes``; other buffers are copied first).

    Raises :class:`RtpError` (naming the field) when the datagram is shorter than 12
    bytes, its version is not 2, the CSRC list or the header extension runs past the end,
    or the padding count is 0 or larger than what follows the header.
    """
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if size < 12:
        raise RtpError(f"RTP packet too short: {size} bytes, the fixed header is 12")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if b0 == 0x80:  # the usual packet: no padding, extension or CSRC
        return RtpPacket(
            2, False, False, b1 > 127, b1 & 0x7F, sequence, timestamp, ssrc, (), data[12:]
        )
    if b0 >> 6 != 2:
        raise RtpError(f"RTP version must be 2, got {b0 >> 6}")
    offset = 12
    csrc: tuple[int, ...] = ()
    count = b0 & 0x0F
    if count:
        offset += 4 * count
        if offset > size:
            raise RtpError(
                f"CSRC list of {count} entries runs past the end of a {size}-byte packet"
            )
        csrc = struct.unpack_from(f"!{count}I", data, 12)
    ext: tuple[int, bytes] | None = None
    if b0 & 0x10:
        if offset + 4 > size:
            raise RtpError(f"header extension at byte {offset} runs past the end of the packet")
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        start = offset + 4
        offset = start + 4 * words
        if offset > size:
            raise RtpError(
                f"header extension of {words} words at byte {start} runs past the end of a "
                f"{size}-byte packet"
            )
        ext = (profile, data[start:offset])
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or pad > size - offset:
            raise RtpError(
                f"padding count {pad} is invalid: {size - offset} bytes follow the header"
            )
        payload = data[offset : size - pad]
    else:
        payload = data[offset:]
    return RtpPacket(
        2,
        b0 & 0x20 != 0,
        ext is not None,
        b1 > 127,
        b1 & 0x7F,
        sequence,
        timestamp,
        ssrc,
        csrc,
        payload,
        ext,
    )


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram on a shared RTP/RTCP port is RTCP (RFC 5761 §4).

    RTCP packet types 192-223 (SR 200 ... APP 204 among them) put 64-95 in the low seven
    bits of the second byte, a range RTP payload types must not use when multiplexed.
    """
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


def build_rtp(
    *,
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
    csrc: tuple[int, ...] | list[int] = (),
    extension: tuple[int, bytes] | None = None,
    padding: int = 0,
) -> bytes:
    """Serialize an RTP version 2 packet (the inverse of :func:`parse_rtp`).

    ``extension`` is ``(profile, data)`` with ``len(data)`` a multiple of 4; ``padding``
    is the number of padding bytes to append (0-255; the last one holds the count).
    Raises :class:`ValueError` for a field out of range.
    """
    if not 0 <= payload_type <= 127:
        raise ValueError(f"payload_type must be 0-127, got {payload_type}")
    if not 0 <= sequence <= 0xFFFF:
        raise ValueError(f"sequence must be 0-65535, got {sequence}")
    if not 0 <= timestamp <= 0xFFFFFFFF:
        raise ValueError(f"timestamp must be a 32-bit unsigned value, got {timestamp}")
    if not 0 <= ssrc <= 0xFFFFFFFF:
        raise ValueError(f"ssrc must be a 32-bit unsigned value, got {ssrc}")
    if len(csrc) > 15:
        raise ValueError(f"at most 15 CSRC entries, got {len(csrc)}")
    if not 0 <= padding <= 255:
        raise ValueError(f"padding must be 0-255 bytes, got {padding}")
    b0 = 0x80 | len(csrc)
    if padding:
        b0 |= 0x20
    parts = [_HEADER.pack(b0, (0x80 if marker else 0) | payload_type, sequence, timestamp, ssrc)]
    if csrc:
        parts.append(struct.pack(f"!{len(csrc)}I", *csrc))
    if extension is not None:
        profile, data = extension
        if not 0 <= profile <= 0xFFFF:
            raise ValueError(f"extension profile must be 0-65535, got {profile}")
        if len(data) % 4 or len(data) > 4 * 0xFFFF:
            raise ValueError(
                f"extension data must be a multiple of 4 bytes (at most 262140), got {len(data)}"
            )
        parts[0] = bytes([parts[0][0] | 0x10]) + parts[0][1:]
        parts.append(_EXT_HEADER.pack(profile, len(data) // 4))
        parts.append(bytes(data))
    parts.append(bytes(payload))
    if padding:
        parts.append(bytes(padding - 1) + bytes([padding]))
    return b"".join(parts)


def telephone_event(payload: bytes) -> tuple[int, bool, int, int] | None:
    """Read an RFC 4733 named telephone event: ``(event, end, volume, duration)``.

    ``event`` is 0-255 (0-9, ``*`` = 10, ``#`` = 11, A-D = 12-15 for DTMF), ``end`` the E
    bit, ``volume`` 0-63 (-dBm0), ``duration`` in timestamp units. ``None`` when the
    payload is shorter than the 4-byte event block.
    """
    if len(payload) < 4:
        return None
    event, flags, duration = _EVENT.unpack_from(payload)
    return event, bool(flags & 0x80), flags & 0x3F, duration
