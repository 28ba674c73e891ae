"""KVS fragment numbers.

Real Kinesis Video Streams fragment numbers are 47-digit decimal strings. Decoding the
public samples (kvs-wire.md §4) gives a 157-bit integer laid out as::

    n = (1 << 156) | (seq << 92) | (server_ts_ms << 28) | rand28

with ``seq`` a per-stream ingestion counter (64 bits), ``server_ts_ms`` the fragment's
server timestamp in epoch milliseconds (64 bits) and 28 random bits. We generate numbers
with the same layout, so they increase with ``seq`` (ingestion order) and, because the
width never leaves 47 digits, sort identically as strings and as integers — Java clients
compare them with ``String.compareTo``.
"""

from __future__ import annotations

import re
import secrets

from callstream.store.base import InvalidArgument

__all__ = [
    "FRAGMENT_NUMBER_DIGITS",
    "MAX_SEQUENCE",
    "MAX_SERVER_TIMESTAMP_MS",
    "InvalidFragmentNumber",
    "check_server_timestamp",
    "is_valid_fragment_number",
    "make_fragment_number",
    "parse_fragment_number",
]

FRAGMENT_NUMBER_DIGITS = 47
"""Width of every fragment number, in decimal digits."""

_MARKER = 1 << 156
_SEQ_SHIFT = 92
_TS_SHIFT = 28
_RAND_BITS = 28
_RAND_MASK = (1 << _RAND_BITS) - 1
_TS_MASK = (1 << 64) - 1
_LIMIT = 10**FRAGMENT_NUMBER_DIGITS  # first 48-digit value

MAX_SEQUENCE = (_LIMIT - _MARKER) // (1 << _SEQ_SHIFT) - 1
"""Largest ``seq`` whose numbers still have 47 digits for every timestamp and random part
(about 1.75e18)."""

MAX_SERVER_TIMESTAMP_MS = _TS_MASK
"""Largest encodable server timestamp (the field is 64 bits wide)."""

_DIGITS_RE = re.compile(r"[0-9]{47}")


class InvalidFragmentNumber(InvalidArgument, ValueError):
    """A string that is not a 47-digit fragment number with the KVS layout."""


def check_server_timestamp(server_timestamp_ms: int) -> None:
    """:class:`InvalidArgument` unless ``server_timestamp_ms`` is an integer a fragment
    number can carry (``0 .. MAX_SERVER_TIMESTAMP_MS``)."""
    if (
        type(server_timestamp_ms) is not int
        or not 0 <= server_timestamp_ms <= MAX_SERVER_TIMESTAMP_MS
    ):
        raise InvalidArgument(f"server timestamp out of range: {server_timestamp_ms!r}")


def make_fragment_number(seq: int, server_ts_ms: int, rand: int | None = None) -> str:
    """Return the 47-digit fragment number for ``seq`` and ``server_ts_ms``.

    ``rand`` (28 bits) is drawn from :mod:`secrets` when omitted. Raises
    :class:`ValueError` when a field is out of range (``0 <= seq <= MAX_SEQUENCE``,
    ``0 <= server_ts_ms < 2**64``, ``0 <= rand < 2**28``).
    """
    if not 0 <= seq <= MAX_SEQUENCE:
        raise ValueError(f"fragment sequence out of range: {seq}")
    if not 0 <= server_ts_ms <= MAX_SERVER_TIMESTAMP_MS:
        raise ValueError(f"server timestamp out of range: {server_ts_ms}")
    if rand is None:
        rand = secrets.randbits(_RAND_BITS)
    elif not 0 <= rand <= _RAND_MASK:
        raise ValueError(f"random part out of range: {rand}")
    n = _MARKER | (seq << _SEQ_SHIFT) | (server_ts_ms << _TS_SHIFT) | rand
    return str(n)


def parse_fragment_number(s: str) -> tuple[int, int, int]:
    """Decode ``s`` into ``(seq, server_ts_ms, rand)``.

    Raises :class:`InvalidFragmentNumber` (an :class:`InvalidArgument` and a
    :class:`ValueError`) unless ``s`` is exactly 47 ASCII digits with the marker bit set.
    """
    if not isinstance(s, str) or _DIGITS_RE.fullmatch(s) is None:
        raise InvalidFragmentNumber(f"invalid fragment number: {s!r}")
    n = int(s)
    # A 47-digit value is < 10**47 < 2**157, so "marker bit set" pins the top bit exactly.
    if n < _MARKER:
        raise InvalidFragmentNumber(f"invalid fragment number: {s!r}")
    seq = (n ^ _MARKER) >> _SEQ_SHIFT
    server_ts_ms = (n >> _TS_SHIFT) & _TS_MASK
    return seq, server_ts_ms, n & _RAND_MASK


def is_valid_fragment_number(s: object) -> bool:
    """True when ``s`` is a string :func:`parse_fragment_number` accepts."""
    if not isinstance(s, str):
        return False
    try:
        parse_fragment_number(s)
    except InvalidFragmentNumber:
        return False
    return True
