"""The record a fragment is stored as in a ``.frag`` file, and its sealed payload.

Record format (all integers big-endian)::

    b"CSR1" | u32 sealed length | 47-byte ASCII fragment number | sealed

``sealed`` is :meth:`RecordCipher.seal` of ``u8 version=1 | u32 len x 4 | ebml_header |
header | cluster | trailer``, authenticated together with the stream ARN and the fragment
number: a record moved to another stream or position fails to open.
"""

from __future__ import annotations

import struct

from callstream.store.base import FragmentData, IntegrityError, InvalidArgument
from callstream.store.crypto import RecordCipher
from callstream.store.numbers import FRAGMENT_NUMBER_DIGITS

__all__ = [
    "RECORD_HEADER_SIZE",
    "RECORD_MAGIC",
    "decode_fragment_data",
    "encode_fragment_data",
    "open_record",
    "seal_record",
]

RECORD_MAGIC = b"CSR1"
"""First bytes of every record in a ``.frag`` file."""
_RECORD_HEADER = struct.Struct(f">4sI{FRAGMENT_NUMBER_DIGITS}s")
RECORD_HEADER_SIZE = _RECORD_HEADER.size
"""Bytes before the sealed payload of a record (magic, length, fragment number)."""
_PAYLOAD_HEADER = struct.Struct(">BIIII")
_PAYLOAD_VERSION = 1
_U32_MAX = 0xFFFFFFFF


def encode_fragment_data(data: FragmentData) -> bytes:
    """Serialise the four parts of a fragment into the plaintext of a record."""
    parts = (data.ebml_header, data.header, data.cluster, data.trailer)
    if any(len(p) > _U32_MAX for p in parts):
        raise InvalidArgument("fragment part larger than 4 GiB")
    head = _PAYLOAD_HEADER.pack(_PAYLOAD_VERSION, *(len(p) for p in parts))
    return b"".join((head, *parts))


def decode_fragment_data(plaintext: bytes) -> FragmentData:
    """Inverse of :func:`encode_fragment_data`; :class:`IntegrityError` if malformed."""
    if len(plaintext) < _PAYLOAD_HEADER.size:
        raise IntegrityError("fragment payload truncated")
    version, *lengths = _PAYLOAD_HEADER.unpack_from(plaintext)
    if version != _PAYLOAD_VERSION or _PAYLOAD_HEADER.size + sum(lengths) != len(plaintext):
        raise IntegrityError("fragment payload malformed")
    view = memoryview(plaintext)
    pos = _PAYLOAD_HEADER.size
    out: list[bytes] = []
    for n in lengths:
        out.append(bytes(view[pos : pos + n]))
        pos += n
    return FragmentData(ebml_header=out[0], header=out[1], cluster=out[2], trailer=out[3])


def seal_record(cipher: RecordCipher, fragment_number: str, data: FragmentData) -> bytes:
    """The complete record (header and sealed payload) of one fragment."""
    sealed = cipher.seal(fragment_number, encode_fragment_data(data))
    if len(sealed) > _U32_MAX:
        raise InvalidArgument("fragment too large")
    head = _RECORD_HEADER.pack(RECORD_MAGIC, len(sealed), fragment_number.encode())
    return head + sealed


def open_record(
    cipher: RecordCipher, fragment_number: str, raw: bytes, length: int
) -> FragmentData:
    """The fragment in ``raw``, the ``length`` bytes read for the record of
    ``fragment_number``; :class:`IntegrityError` if they are not exactly that record."""
    if len(raw) != length or length < RECORD_HEADER_SIZE:
        raise IntegrityError(f"fragment {fragment_number}: record truncated")
    magic, sealed_len, number = _RECORD_HEADER.unpack_from(raw)
    if (
        magic != RECORD_MAGIC
        or sealed_len != length - RECORD_HEADER_SIZE
        or number != fragment_number.encode()
    ):
        raise IntegrityError(f"fragment {fragment_number}: record header does not match")
    plaintext = cipher.open(fragment_number, memoryview(raw)[RECORD_HEADER_SIZE:])
    return decode_fragment_data(plaintext)
