"""EBML primitives: variable-size integers, the Matroska element table, value codecs.

Everything here is pure and allocation-light; the streaming reader and the writer
are built on these functions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "ELEMENTS",
    "ID",
    "UNKNOWN_SIZE",
    "ElementSpec",
    "Kind",
    "MkvError",
    "decode_value",
    "encode_id",
    "encode_size",
    "id_length",
    "size_length",
]

UNKNOWN_SIZE = -1
"""Sentinel size of an unknown-size (live) master element."""


class MkvError(ValueError):
    """Malformed Matroska/EBML input; ``offset`` is the absolute byte offset of the fault."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte offset {offset}")
        self.offset = offset
        self.reason = message
        self.fragments: list[Any] = []  # what FragmentReader.close() still delivered


class Kind(Enum):
    """How an element's payload is interpreted."""

    MASTER = "master"
    UINT = "uint"
    INT = "int"
    FLOAT = "float"
    STRING = "string"  # ASCII in the spec; decoded leniently as UTF-8
    UTF8 = "utf8"
    DATE = "date"  # signed ns since 2001-01-01, returned as int
    BINARY = "binary"
    BLOCK = "block"  # SimpleBlock / Block: parsed by the reader


@dataclass(frozen=True, slots=True)
class ElementSpec:
    """One row of the element table."""

    id: int
    name: str
    kind: Kind
    parents: tuple[int, ...]  # empty: top level; GLOBAL: anywhere


# --- the element table -----------------------------------------------------------------
# Parents drive the unknown-size rule: an unknown-size master ends at the first element
# that may not be its descendant (Matroska spec, "Unknown size").

_GLOBAL = (-1,)
_TOP = ()


class ID:
    """Numeric IDs (with their marker bits, as written on the wire)."""

    EBML = 0x1A45DFA3
    EBMLVersion = 0x4286
    EBMLReadVersion = 0x42F7
    EBMLMaxIDLength = 0x42F2
    EBMLMaxSizeLength = 0x42F3
    DocType = 0x4282
    DocTypeVersion = 0x4287
    DocTypeReadVersion = 0x4285
    Void = 0xEC
    CRC32 = 0xBF
    Segment = 0x18538067
    SeekHead = 0x114D9B74
    Seek = 0x4DBB
    SeekID = 0x53AB
    SeekPosition = 0x53AC
    Info = 0x1549A966
    SegmentUID = 0x73A4
    TimecodeScale = 0x2AD7B1
    Duration = 0x4489
    DateUTC = 0x4461
    Title = 0x7BA9
    MuxingApp = 0x4D80
    WritingApp = 0x5741
    Tracks = 0x1654AE6B
    TrackEntry = 0xAE
    TrackNumber = 0xD7
    TrackUID = 0x73C5
    TrackType = 0x83
    FlagEnabled = 0xB9
    FlagDefault = 0x88
    FlagForced = 0x55AA
    FlagLacing = 0x9C
    MinCache = 0x6DE7
    MaxCache = 0x6DF8
    DefaultDuration = 0x23E383
    TrackTimecodeScale = 0x23314F
    MaxBlockAdditionID = 0x55EE
    Name = 0x536E
    Language = 0x22B59C
    LanguageBCP47 = 0x22B59D
    CodecID = 0x86
    CodecPrivate = 0x63A2
    CodecName = 0x258688
    CodecDelay = 0x56AA
    SeekPreRoll = 0x56BB
    Video = 0xE0
    PixelWidth = 0xB0
    PixelHeight = 0xBA
    DisplayWidth = 0x54B0
    DisplayHeight = 0x54BA
    Colour = 0x55B0
    Audio = 0xE1
    SamplingFrequency = 0xB5
    OutputSamplingFrequency = 0x78B5
    Channels = 0x9F
    BitDepth = 0x6264
    Cluster = 0x1F43B675
    Timecode = 0xE7
    Position = 0xA7
    PrevSize = 0xAB
    SimpleBlock = 0xA3
    BlockGroup = 0xA0
    Block = 0xA1
    BlockDuration = 0x9B
    ReferenceBlock = 0xFB
    DiscardPadding = 0x75A2
    Cues = 0x1C53BB6B
    CuePoint = 0xBB
    CueTime = 0xB3
    CueTrackPositions = 0xB7
    CueTrack = 0xF7
    CueClusterPosition = 0xF1
    CueRelativePosition = 0xF0
    CueDuration = 0xB2
    CueBlockNumber = 0x5378
    Tags = 0x1254C367
    Tag = 0x7373
    Targets = 0x63C0
    TargetTypeValue = 0x68CA
    TargetType = 0x63CA
    TagTrackUID = 0x63C5
    TagEditionUID = 0x63C9
    TagChapterUID = 0x63C4
    TagAttachmentUID = 0x63C6
    SimpleTag = 0x67C8
    TagName = 0x45A3
    TagLanguage = 0x447A
    TagDefault = 0x4484
    TagString = 0x4487
    TagBinary = 0x4485
    Chapters = 0x1043A770
    Attachments = 0x1941A469


_TABLE: list[tuple[int, str, Kind, tuple[int, ...]]] = [
    (ID.EBML, "EBML", Kind.MASTER, _TOP),
    (ID.EBMLVersion, "EBMLVersion", Kind.UINT, (ID.EBML,)),
    (ID.EBMLReadVersion, "EBMLReadVersion", Kind.UINT, (ID.EBML,)),
    (ID.EBMLMaxIDLength, "EBMLMaxIDLength", Kind.UINT, (ID.EBML,)),
    (ID.EBMLMaxSizeLength, "EBMLMaxSizeLength", Kind.UINT, (ID.EBML,)),
    (ID.DocType, "DocType", Kind.STRING, (ID.EBML,)),
    (ID.DocTypeVersion, "DocTypeVersion", Kind.UINT, (ID.EBML,)),
    (ID.DocTypeReadVersion, "DocTypeReadVersion", Kind.UINT, (ID.EBML,)),
    (ID.Void, "Void", Kind.BINARY, _GLOBAL),
    (ID.CRC32, "CRC-32", Kind.BINARY, _GLOBAL),
    (ID.Segment, "Segment", Kind.MASTER, _TOP),
    (ID.SeekHead, "SeekHead", Kind.MASTER, (ID.Segment,)),
    (ID.Seek, "Seek", Kind.MASTER, (ID.SeekHead,)),
    (ID.SeekID, "SeekID", Kind.BINARY, (ID.Seek,)),
    (ID.SeekPosition, "SeekPosition", Kind.UINT, (ID.Seek,)),
    (ID.Info, "Info", Kind.MASTER, (ID.Segment,)),
    (ID.SegmentUID, "SegmentUID", Kind.BINARY, (ID.Info,)),
    (ID.TimecodeScale, "TimecodeScale", Kind.UINT, (ID.Info,)),
    (ID.Duration, "Duration", Kind.FLOAT, (ID.Info,)),
    (ID.DateUTC, "DateUTC", Kind.DATE, (ID.Info,)),
    (ID.Title, "Title", Kind.UTF8, (ID.Info,)),
    (ID.MuxingApp, "MuxingApp", Kind.UTF8, (ID.Info,)),
    (ID.WritingApp, "WritingApp", Kind.UTF8, (ID.Info,)),
    (ID.Tracks, "Tracks", Kind.MASTER, (ID.Segment,)),
    (ID.TrackEntry, "TrackEntry", Kind.MASTER, (ID.Tracks,)),
    (ID.TrackNumber, "TrackNumber", Kind.UINT, (ID.TrackEntry,)),
    (ID.TrackUID, "TrackUID", Kind.UINT, (ID.TrackEntry,)),
    (ID.TrackType, "TrackType", Kind.UINT, (ID.TrackEntry,)),
    (ID.FlagEnabled, "FlagEnabled", Kind.UINT, (ID.TrackEntry,)),
    (ID.FlagDefault, "FlagDefault", Kind.UINT, (ID.TrackEntry,)),
    (ID.FlagForced, "FlagForced", Kind.UINT, (ID.TrackEntry,)),
    (ID.FlagLacing, "FlagLacing", Kind.UINT, (ID.TrackEntry,)),
    (ID.MinCache, "MinCache", Kind.UINT, (ID.TrackEntry,)),
    (ID.MaxCache, "MaxCache", Kind.UINT, (ID.TrackEntry,)),
    (ID.DefaultDuration, "DefaultDuration", Kind.UINT, (ID.TrackEntry,)),
    (ID.TrackTimecodeScale, "TrackTimecodeScale", Kind.FLOAT, (ID.TrackEntry,)),
    (ID.MaxBlockAdditionID, "MaxBlockAdditionID", Kind.UINT, (ID.TrackEntry,)),
    (ID.Name, "Name", Kind.UTF8, (ID.TrackEntry,)),
    (ID.Language, "Language", Kind.STRING, (ID.TrackEntry,)),
    (ID.LanguageBCP47, "LanguageBCP47", Kind.STRING, (ID.TrackEntry,)),
    (ID.CodecID, "CodecID", Kind.STRING, (ID.TrackEntry,)),
    (ID.CodecPrivate, "CodecPrivate", Kind.BINARY, (ID.TrackEntry,)),
    (ID.CodecName, "CodecName", Kind.UTF8, (ID.TrackEntry,)),
    (ID.CodecDelay, "CodecDelay", Kind.UINT, (ID.TrackEntry,)),
    (ID.SeekPreRoll, "SeekPreRoll", Kind.UINT, (ID.TrackEntry,)),
    (ID.Video, "Video", Kind.MASTER, (ID.TrackEntry,)),
    (ID.PixelWidth, "PixelWidth", Kind.UINT, (ID.Video,)),
    (ID.PixelHeight, "PixelHeight", Kind.UINT, (ID.Video,)),
    (ID.DisplayWidth, "DisplayWidth", Kind.UINT, (ID.Video,)),
    (ID.DisplayHeight, "DisplayHeight", Kind.UINT, (ID.Video,)),
    (ID.Colour, "Colour", Kind.BINARY, (ID.Video,)),
    (ID.Audio, "Audio", Kind.MASTER, (ID.TrackEntry,)),
    (ID.SamplingFrequency, "SamplingFrequency", Kind.FLOAT, (ID.Audio,)),
    (ID.OutputSamplingFrequency, "OutputSamplingFrequency", Kind.FLOAT, (ID.Audio,)),
    (ID.Channels, "Channels", Kind.UINT, (ID.Audio,)),
    (ID.BitDepth, "BitDepth", Kind.UINT, (ID.Audio,)),
    (ID.Cluster, "Cluster", Kind.MASTER, (ID.Segment,)),
    (ID.Timecode, "Timecode", Kind.UINT, (ID.Cluster,)),
    (ID.Position, "Position", Kind.UINT, (ID.Cluster,)),
    (ID.PrevSize, "PrevSize", Kind.UINT, (ID.Cluster,)),
    (ID.SimpleBlock, "SimpleBlock", Kind.BLOCK, (ID.Cluster,)),
    (ID.BlockGroup, "BlockGroup", Kind.MASTER, (ID.Cluster,)),
    (ID.Block, "Block", Kind.BLOCK, (ID.BlockGroup,)),
    (ID.BlockDuration, "BlockDuration", Kind.UINT, (ID.BlockGroup,)),
    (ID.ReferenceBlock, "ReferenceBlock", Kind.INT, (ID.BlockGroup,)),
    (ID.DiscardPadding, "DiscardPadding", Kind.INT, (ID.BlockGroup,)),
    (ID.Cues, "Cues", Kind.MASTER, (ID.Segment,)),
    (ID.CuePoint, "CuePoint", Kind.MASTER, (ID.Cues,)),
    (ID.CueTime, "CueTime", Kind.UINT, (ID.CuePoint,)),
    (ID.CueTrackPositions, "CueTrackPositions", Kind.MASTER, (ID.CuePoint,)),
    (ID.CueTrack, "CueTrack", Kind.UINT, (ID.CueTrackPositions,)),
    (ID.CueClusterPosition, "CueClusterPosition", Kind.UINT, (ID.CueTrackPositions,)),
    (ID.CueRelativePosition, "CueRelativePosition", Kind.UINT, (ID.CueTrackPositions,)),
    (ID.CueDuration, "CueDuration", Kind.UINT, (ID.CueTrackPositions,)),
    (ID.CueBlockNumber, "CueBlockNumber", Kind.UINT, (ID.CueTrackPositions,)),
    (ID.Tags, "Tags", Kind.MASTER, (ID.Segment,)),
    (ID.Tag, "Tag", Kind.MASTER, (ID.Tags,)),
    (ID.Targets, "Targets", Kind.MASTER, (ID.Tag,)),
    (ID.TargetTypeValue, "TargetTypeValue", Kind.UINT, (ID.Targets,)),
    (ID.TargetType, "TargetType", Kind.STRING, (ID.Targets,)),
    (ID.TagTrackUID, "TagTrackUID", Kind.UINT, (ID.Targets,)),
    (ID.TagEditionUID, "TagEditionUID", Kind.UINT, (ID.Targets,)),
    (ID.TagChapterUID, "TagChapterUID", Kind.UINT, (ID.Targets,)),
    (ID.TagAttachmentUID, "TagAttachmentUID", Kind.UINT, (ID.Targets,)),
    (ID.SimpleTag, "SimpleTag", Kind.MASTER, (ID.Tag, ID.SimpleTag)),
    (ID.TagName, "TagName", Kind.UTF8, (ID.SimpleTag,)),
    (ID.TagLanguage, "TagLanguage", Kind.STRING, (ID.SimpleTag,)),
    (ID.TagDefault, "TagDefault", Kind.UINT, (ID.SimpleTag,)),
    (ID.TagString, "TagString", Kind.UTF8, (ID.SimpleTag,)),
    (ID.TagBinary, "TagBinary", Kind.BINARY, (ID.SimpleTag,)),
    # Masters we never look inside: read whole as binary so their children need no rows.
    (ID.Chapters, "Chapters", Kind.BINARY, (ID.Segment,)),
    (ID.Attachments, "Attachments", Kind.BINARY, (ID.Segment,)),
]

ELEMENTS: dict[int, ElementSpec] = {
    eid: ElementSpec(eid, name, kind, parents) for eid, name, kind, parents in _TABLE
}
"""Known elements by numeric ID."""

GLOBAL_PARENTS = _GLOBAL


def element_name(eid: int) -> str:
    """Readable name of an element ID (``0x4FFE`` for unknown ones)."""
    spec = ELEMENTS.get(eid)
    return spec.name if spec else f"0x{eid:X}"


# --- variable-size integers ---------------------------------------------------------------

# Length of a vint from its first byte (0 means invalid: a zero first byte).
VINT_LENGTH: tuple[int, ...] = tuple(0 if b == 0 else 9 - b.bit_length() for b in range(256))
# Mask that strips the marker bit from an n-byte size, and the all-ones "unknown" value.
SIZE_MASK: tuple[int, ...] = tuple((1 << (7 * n)) - 1 for n in range(9))


def id_length(eid: int) -> int:
    """Encoded length of an element ID (IDs keep their marker bits)."""
    n = (eid.bit_length() + 7) // 8
    return max(n, 1)


def encode_id(eid: int) -> bytes:
    """Wire bytes of an element ID."""
    return eid.to_bytes(id_length(eid), "big")


def size_length(size: int) -> int:
    """Smallest vint length that can carry ``size`` (the all-ones value is reserved)."""
    n = 1
    while size >= SIZE_MASK[n]:
        n += 1
        if n > 8:
            raise ValueError(f"size {size} does not fit an EBML vint")
    return n


def encode_size(size: int, width: int | None = None) -> bytes:
    """Encode an element data size; ``size == UNKNOWN_SIZE`` writes the unknown marker.

    ``width`` forces a fixed vint length (KVS writes 4- and 8-byte sizes).
    """
    if size == UNKNOWN_SIZE:
        n = width or 8
        return ((1 << (7 * n + 1)) - 1).to_bytes(n, "big")
    n = width or size_length(size)
    if size >= SIZE_MASK[n]:
        raise ValueError(f"size {size} does not fit {n} bytes")
    return (size | (1 << (7 * n))).to_bytes(n, "big")


_FLOAT4 = struct.Struct(">f")
_FLOAT8 = struct.Struct(">d")


def decode_value(kind: Kind, data: bytes, offset: int) -> int | float | str | bytes:
    """Decode a leaf payload; raises :class:`MkvError` naming ``offset`` on bad data."""
    if kind is Kind.UINT:
        if len(data) > 8:
            raise MkvError(f"unsigned integer of {len(data)} bytes", offset)
        return int.from_bytes(data, "big")
    if kind is Kind.INT or kind is Kind.DATE:
        if len(data) > 8:
            raise MkvError(f"signed integer of {len(data)} bytes", offset)
        return int.from_bytes(data, "big", signed=True)
    if kind is Kind.FLOAT:
        if len(data) == 8:
            return float(_FLOAT8.unpack(data)[0])
        if len(data) == 4:
            return float(_FLOAT4.unpack(data)[0])
        if len(data) == 0:
            return 0.0
        raise MkvError(f"float of {len(data)} bytes", offset)
    if kind is Kind.STRING or kind is Kind.UTF8:
        return data.rstrip(b"\x00").decode("utf-8", "replace")
    return data
