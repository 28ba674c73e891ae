"""Matroska writer: element encoders and the pieces of a streaming MKV.

Each function returns the bytes of one element, so documents are built by plain
concatenation, which is also how the KVS layer re-assembles stored fragments::

    data = ebml_header() + segment_start() + info() + tracks([...]) + cluster(0, blocks)
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callstream.mkv.ebml import ID, UNKNOWN_SIZE, encode_id, encode_size

__all__ = [
    "TrackSpec",
    "binary",
    "cluster",
    "ebml_header",
    "element",
    "float_",
    "info",
    "master",
    "segment_start",
    "simple_block",
    "string",
    "tags",
    "tracks",
    "uint",
]


def element(eid: int, payload: bytes, size_width: int | None = None) -> bytes:
    """One element: ID, size vint (minimal unless ``size_width`` is given), payload."""
    return encode_id(eid) + encode_size(len(payload), size_width) + payload


def master(eid: int, children: Iterable[bytes], *, size_width: int | None = None) -> bytes:
    """A master element of known size holding the encoded ``children``."""
    return element(eid, b"".join(children), size_width)


def uint(eid: int, value: int, width: int | None = None) -> bytes:
    """Unsigned integer element, minimal width unless ``width`` (1..8 bytes) is given
    (the KVS producer SDKs write TimecodeScale and the Cluster Timecode on 8 bytes)."""
    if value < 0:
        raise ValueError(f"negative value {value} for an unsigned element")
    n = width or max(1, (value.bit_length() + 7) // 8)
    if not 1 <= n <= 8 or value >= 1 << (8 * n):
        raise ValueError(f"value {value} does not fit an unsigned integer of {n} bytes")
    return element(eid, value.to_bytes(n, "big"))


def float_(eid: int, value: float) -> bytes:
    """8-byte float element."""
    return element(eid, struct.pack(">d", value))


def string(eid: int, value: str, size_width: int | None = None) -> bytes:
    """UTF-8 string element."""
    return element(eid, value.encode("utf-8"), size_width)


def binary(eid: int, value: bytes) -> bytes:
    """Binary element."""
    return element(eid, value)


def ebml_header(doc_type: str = "matroska", doc_type_version: int = 4) -> bytes:
    """The EBML header element that starts every Matroska document."""
    return master(
        ID.EBML,
        [
            uint(ID.EBMLVersion, 1),
            uint(ID.EBMLReadVersion, 1),
            uint(ID.EBMLMaxIDLength, 4),
            uint(ID.EBMLMaxSizeLength, 8),
            string(ID.DocType, doc_type),
            uint(ID.DocTypeVersion, doc_type_version),
            uint(ID.DocTypeReadVersion, 2),
        ],
    )


def segment_start() -> bytes:
    """An unknown-size Segment header (``18 53 80 67 01 FF FF FF FF FF FF FF``)."""
    return encode_id(ID.Segment) + encode_size(UNKNOWN_SIZE, 8)


def info(
    *,
    timecode_scale: int = 1_000_000,
    title: str | None = None,
    muxing_app: str = "callstream",
    writing_app: str = "callstream",
    segment_uid: bytes | None = None,
) -> bytes:
    """The Info element (TimecodeScale in ns per tick; 1 ms by default)."""
    children = [binary(ID.SegmentUID, segment_uid or os.urandom(16))]
    children.append(uint(ID.TimecodeScale, timecode_scale))
    if title is not None:
        children.append(string(ID.Title, title))
    children += [string(ID.MuxingApp, muxing_app), string(ID.WritingApp, writing_app)]
    return master(ID.Info, children)


@dataclass(frozen=True, slots=True)
class TrackSpec:
    """A track to declare in Tracks. ``sampling_rate`` etc. add an Audio master."""

    number: int
    name: str | None
    codec_id: str
    uid: int | None = None
    track_type: int = 2  # 1 video, 2 audio
    codec_private: bytes | None = None
    sampling_rate: float | None = None
    channels: int | None = None
    bit_depth: int | None = None
    default_duration_ns: int | None = None


def tracks(specs: Sequence[TrackSpec]) -> bytes:
    """The Tracks element. TrackNumber is written first and Name before CodecID, the
    order LCA's JavaScript consumer depends on."""
    entries = []
    for t in specs:
        children = [uint(ID.TrackNumber, t.number), uint(ID.TrackUID, t.uid or t.number)]
        children.append(uint(ID.TrackType, t.track_type))
        if t.name is not None:
            children.append(string(ID.Name, t.name))
        children.append(string(ID.CodecID, t.codec_id))
        if t.codec_private is not None:
            children.append(binary(ID.CodecPrivate, t.codec_private))
        if t.default_duration_ns is not None:
            children.append(uint(ID.DefaultDuration, t.default_duration_ns))
        audio = []
        if t.sampling_rate is not None:
            audio.append(float_(ID.SamplingFrequency, t.sampling_rate))
        if t.channels is not None:
            audio.append(uint(ID.Channels, t.channels))
        if t.bit_depth is not None:
            audio.append(uint(ID.BitDepth, t.bit_depth))
        if audio:
            children.append(master(ID.Audio, audio))
        entries.append(master(ID.TrackEntry, children))
    return master(ID.Tracks, entries)


def tags(items: Iterable[tuple[str, str]], *, size_width: int | None = None) -> bytes:
    """A Tags element with one Tag holding one SimpleTag per (name, value).

    TagName comes first and TagString second in each SimpleTag, as consumers that read
    children by position (LCA) require. KVS writes every size with ``size_width=4``;
    the producer SDKs use 8.
    """
    simple = [
        element(
            ID.SimpleTag,
            string(ID.TagName, name, size_width) + string(ID.TagString, value, size_width),
            size_width,
        )
        for name, value in items
    ]
    return element(ID.Tags, element(ID.Tag, b"".join(simple), size_width), size_width)


def simple_block(track: int, timecode: int, data: bytes, *, keyframe: bool = True) -> bytes:
    """An unlaced SimpleBlock; ``timecode`` is relative to its Cluster (int16)."""
    if not -32768 <= timecode <= 32767:
        raise ValueError(f"block timecode {timecode} does not fit int16")
    if not 1 <= track <= 126:
        raise ValueError(f"track number {track} out of range 1..126")
    head = bytes((0x80 | track,)) + (timecode & 0xFFFF).to_bytes(2, "big")
    head += b"\x80" if keyframe else b"\x00"
    return element(ID.SimpleBlock, head + data)


def cluster(
    timecode: int,
    blocks: Iterable[bytes],
    *,
    unknown_size: bool = False,
    position: int | None = None,
    timecode_width: int | None = None,
) -> bytes:
    """A Cluster: Timecode (+ Position) then the encoded blocks. ``unknown_size``
    writes the live form the KVS producer SDKs send (with ``timecode_width=8``)."""
    children = [uint(ID.Timecode, timecode, timecode_width)]
    if position is not None:
        children.append(uint(ID.Position, position))
    children.extend(blocks)
    body = b"".join(children)
    if unknown_size:
        return encode_id(ID.Cluster) + encode_size(UNKNOWN_SIZE, 1) + body
    return element(ID.Cluster, body)
