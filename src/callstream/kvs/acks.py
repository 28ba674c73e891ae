"""PutMedia acknowledgement events, sans-I/O (serialize on the server, parse on the client).

A PutMedia response body is a sequence of JSON objects, one per HTTP chunk, each followed by
``"\\n"`` (kvs-wire §2.2)::

    {"EventType":"BUFFERING","FragmentTimecode":0,"FragmentNumber":"91343852333193120789800267782983005990846373393"}
    {"EventType":"ERROR","FragmentTimecode":2433,"FragmentNumber":"9134...","ErrorCode":"FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS","ErrorId":4004}

:func:`serialize` produces exactly that (key order ``EventType, FragmentTimecode,
FragmentNumber, ErrorCode, ErrorId``; compact separators; ``ErrorId`` a number;
``FragmentNumber`` a string).  :class:`AckParser` takes the de-chunked body bytes in any
splits and returns the acks as they complete.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "ACK_ERRORS",
    "ACK_ERROR_IDS",
    "MAX_ACK_BYTES",
    "Ack",
    "AckParser",
    "EventType",
    "serialize",
]


class EventType(enum.StrEnum):
    """The ``EventType`` values of a PutMedia ack."""

    BUFFERING = "BUFFERING"
    """First byte of a fragment received; the fragment number is already assigned."""
    RECEIVED = "RECEIVED"
    """The whole fragment has been received."""
    PERSISTED = "PERSISTED"
    """The fragment is stored (only sent when the stream retains data)."""
    ERROR = "ERROR"
    """The fragment (or the upload) failed; carries ``ErrorId`` and ``ErrorCode``."""
    IDLE = "IDLE"
    """Keep-alive sent while no data arrives; carries no fragment fields."""


ACK_ERRORS: Mapping[int, str] = MappingProxyType(
    {
        4000: "STREAM_READ_ERROR",
        4001: "MAX_FRAGMENT_SIZE_REACHED",
        4002: "MAX_FRAGMENT_DURATION_REACHED",
        4003: "MAX_CONNECTION_DURATION_REACHED",
        4004: "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
        4005: "MORE_THAN_ONE_TRACK_FOUND",
        4006: "INVALID_MKV_DATA",
        4007: "INVALID_PRODUCER_TIMESTAMP",
        4008: "STREAM_NOT_ACTIVE",
        4009: "FRAGMENT_METADATA_LIMIT_REACHED",
        4010: "TRACK_NUMBER_MISMATCH",
        4011: "FRAMES_MISSING_FOR_TRACK",
        4012: "MORE_THAN_ALLOWED_TRACKS_FOUND",
        4500: "KMS_KEY_ACCESS_DENIED",
        4501: "KMS_KEY_DISABLED",
        4502: "KMS_KEY_VALIDATION_ERROR",
        4503: "KMS_KEY_UNAVAILABLE",
        4504: "KMS_KEY_INVALID_USAGE",
        4505: "KMS_KEY_INVALID_STATE",
        4506: "KMS_KEY_NOT_FOUND",
        4507: "STREAM_DELETED",
        5000: "INTERNAL_ERROR",
        5001: "ARCHIVAL_ERROR",
    }
)
"""PutMedia ``ErrorId`` -> ``ErrorCode`` (kvs-wire §2.2; 4507 is known only from the PIC)."""

ACK_ERROR_IDS: Mapping[str, int] = MappingProxyType({v: k for k, v in ACK_ERRORS.items()})
"""``ErrorCode`` -> ``ErrorId``, the inverse of :data:`ACK_ERRORS`."""

MAX_ACK_BYTES = 64 * 1024
"""An ack that has not completed within this many bytes is treated as a protocol error."""


@dataclass(frozen=True, slots=True)
class Ack:
    """One PutMedia acknowledgement event.

    ``fragment_timecode`` echoes the raw Cluster ``Timecode`` the producer sent;
    ``fragment_number`` is the 47-digit fragment number as a string.
    """

    event_type: str
    fragment_timecode: int | None = None
    fragment_number: str | None = None
    error_id: int | None = None
    error_code: str | None = None

    @classmethod
    def error(cls, code_name: str, timecode: int | None, number: str | None) -> Ack:
        """An ``ERROR`` ack for ``code_name`` (a value of :data:`ACK_ERRORS`)."""
        try:
            error_id = ACK_ERROR_IDS[code_name]
        except KeyError:
            raise ValueError(f"unknown PutMedia ack error code {code_name!r}") from None
        return cls(EventType.ERROR, timecode, number, error_id, code_name)

    @classmethod
    def idle(cls) -> Ack:
        """An ``IDLE`` keep-alive ack."""
        return cls(EventType.IDLE)


def serialize(ack: Ack) -> bytes:
    """Encode ``ack`` as one PutMedia ack line: compact JSON followed by ``\\n``.

    Fields that are ``None`` are omitted; an ``IDLE`` ack never carries fragment fields.
    Raises :class:`ValueError` for acks a client could not parse (for example an ``ERROR``
    without an error id, or a non-numeric fragment number).
    """
    if not isinstance(ack.event_type, str) or not ack.event_type:
        raise ValueError("Ack.event_type must be a non-empty string")
    obj: dict[str, Any] = {"EventType": str(ack.event_type)}
    if ack.event_type != EventType.IDLE:
        if ack.fragment_timecode is not None:
            if type(ack.fragment_timecode) is not int:
                raise ValueError("Ack.fragment_timecode must be an int")
            obj["FragmentTimecode"] = ack.fragment_timecode
        if ack.fragment_number is not None:
            if not (isinstance(ack.fragment_number, str) and ack.fragment_number.isdigit()):
                raise ValueError("Ack.fragment_number must be a string of decimal digits")
            if not ack.fragment_number.isascii():
                raise ValueError("Ack.fragment_number must be ASCII digits")
            obj["FragmentNumber"] = ack.fragment_number
    if ack.error_code is not None:
        obj["ErrorCode"] = ack.error_code
    if ack.error_id is not None:
        if type(ack.error_id) is not int:
            raise ValueError("Ack.error_id must be an int")
        obj["ErrorId"] = ack.error_id
    if ack.event_type == EventType.ERROR and ack.error_id is None:
        raise ValueError("an ERROR ack needs an error_id")
    return json.dumps(obj, separators=(",", ":")).encode("ascii") + b"\n"


_WS = frozenset(b" \t\r\n")
_LBRACE = ord("{")
_RBRACE = ord("}")
_LBRACKET = ord("[")
_RBRACKET = ord("]")
_QUOTE = ord('"')
_BACKSLASH = ord("\\")


class AckParser:
    """Incremental parser of a PutMedia response body (the de-chunked bytes).

    Feed bytes as they arrive, in any splits; each call returns the acks completed so far.
    Objects may be separated by whitespace (normally ``"\\n"``) or simply concatenated.
    Malformed input raises :class:`ValueError` naming the byte offset in the body; after
    that the parser stays failed.

    >>> p = AckParser()
    >>> [a.event_type == EventType.IDLE for a in p.feed(b'{"EventType":"IDLE"}\\n{"Event')]
    [True]
    >>> p.feed(b'Type":"IDLE"}')[0].event_type == "IDLE"
    True
    """

    def __init__(self, max_ack_bytes: int = MAX_ACK_BYTES) -> None:
        self._max = max_ack_bytes
        self._buf = bytearray()
        self._base = 0  # body offset of self._buf[0]
        self._scan = 0  # next index of self._buf to scan
        self._start = -1  # index of the current object's "{", -1 between objects
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._failed: ValueError | None = None
        self._decoder = json.JSONDecoder()

    @property
    def offset(self) -> int:
        """Number of body bytes fed so far."""
        return self._base + len(self._buf)

    def feed(self, data: bytes) -> list[Ack]:
        """Add body bytes; return the acks that are now complete, in order."""
        if self._failed is not None:
            raise ValueError(f"AckParser already failed: {self._failed}")
        try:
            return self._feed(data)
        except ValueError as exc:
            self._failed = exc
            raise

    def close(self) -> None:
        """Declare the end of the body; raises :class:`ValueError` if an ack is unfinished."""
        if self._failed is not None:
            raise ValueError(f"AckParser already failed: {self._failed}")
        if self._start >= 0:
            exc = ValueError(
                f"PutMedia ack stream ended inside an ack that started at byte "
                f"{self._base + self._start}"
            )
            self._failed = exc
            raise exc

    def _feed(self, data: bytes) -> list[Ack]:
        self._buf += data
        buf = self._buf
        out: list[Ack] = []
        i = self._scan
        n = len(buf)
        consumed = 0  # index before which everything has been handled
        while i < n:
            c = buf[i]
            if self._start < 0:
                if c in _WS:
                    i += 1
                    consumed = i
                    continue
                if c != _LBRACE:
                    raise ValueError(
                        f"malformed PutMedia ack stream at byte {self._base + i}: "
                        f"expected '{{', got {bytes([c])!r}"
                    )
                self._start = i
                self._depth = 1
                i += 1
                continue
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif c == _BACKSLASH:
                    self._escape = True
                elif c == _QUOTE:
                    self._in_string = False
                i += 1
                continue
            if c == _QUOTE:
                self._in_string = True
            elif c in (_LBRACE, _LBRACKET):
                self._depth += 1
            elif c in (_RBRACE, _RBRACKET):
                self._depth -= 1
                if self._depth == 0:
                    if i + 1 - self._start > self._max:
                        raise ValueError(
                            f"PutMedia ack starting at byte {self._base + self._start} "
                            f"exceeds {self._max} bytes"
                        )
                    out.append(self._decode(self._start, i + 1))
                    self._start = -1
                    consumed = i + 1
            i += 1
        if self._start >= 0:
            if i - self._start > self._max:
                raise ValueError(
                    f"PutMedia ack starting at byte {self._base + self._start} exceeds "
                    f"{self._max} bytes without completing"
                )
            consumed = self._start
        # Drop everything handled; keep the unfinished object (if any).
        if consumed:
            del buf[:consumed]
            self._base += consumed
            i -= consumed
            if self._start >= 0:
                self._start -= consumed
        self._scan = i
        return out

    def _decode(self, start: int, end: int) -> Ack:
        offset = self._base + start
        raw = bytes(self._buf[start:end])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"malformed PutMedia ack at byte {offset + exc.start}: invalid UTF-8"
            ) from None
        try:
            obj, idx = self._decoder.raw_decode(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"malformed PutMedia ack at byte {offset + len(text[: exc.pos].encode())}: "
                f"{exc.msg}"
            ) from None
        if idx != len(text):  # pragma: no cover - the scanner only cuts at the closing brace
            raise ValueError(f"malformed PutMedia ack at byte {offset + idx}")
        return _ack_from_json(obj, offset)


def _ack_from_json(obj: object, offset: int) -> Ack:
    where = f"PutMedia ack at byte {offset}"
    if not isinstance(obj, dict):
        raise ValueError(f"{where} is not a JSON object")
    event = obj.get("EventType")
    if not isinstance(event, str) or not event:
        raise ValueError(f"{where} has no EventType")
    event_type: str = EventType(event) if event in EventType.__members__ else event
    timecode = obj.get("FragmentTimecode")
    if timecode is not None and (type(timecode) is not int):
        raise ValueError(f"{where}: FragmentTimecode must be an integer, got {timecode!r}")
    number = obj.get("FragmentNumber")
    if number is not None:
        if type(number) is int:  # tolerate servers that send it as a number
            number = str(number)
        if not isinstance(number, str):
            raise ValueError(f"{where}: FragmentNumber must be a string, got {number!r}")
    error_id = obj.get("ErrorId")
    if error_id is not None:
        if isinstance(error_id, str) and error_id.isdigit():
            error_id = int(error_id)
        if type(error_id) is not int:
            raise ValueError(f"{where}: ErrorId must be an integer, got {error_id!r}")
    error_code = obj.get("ErrorCode")
    if error_code is not None and not isinstance(error_code, str):
        raise ValueError(f"{where}: ErrorCode must be a string, got {error_code!r}")
    return Ack(event_type, timecode, number, error_id, error_code)
