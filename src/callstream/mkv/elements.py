"""The element-consumer layer: the structural facts of an MKV stream, found once.

:class:`ElementWalker` drives one streaming :class:`~callstream.mkv.reader.EbmlReader` and
reports what its consumers (the KVS fragment reader, the PutMedia ingest, the PutMedia
client's splitter) need to know about a stream, as calls on an :class:`MkvVisitor`:

* document structure: the EBML header, Segment start and end, each element directly
  inside a top-level element as it completes (Info, Tracks, Tags, Cues, Void ...), with
  absolute byte offsets;
* what the header says: TimecodeScale, the TrackEntries (:class:`TrackInfo`), every Tags
  element with its SimpleTag name/value pairs;
* Clusters: start, Timecode, end; their blocks, runs of plain SimpleBlocks as one call
  (the reader's block-run fast path) and any other block on its own.

A visitor overrides the callbacks it needs; the others do nothing. How an element arrives
does not change what is reported: small header masters (EBML, Info, Tracks, Tags, SeekHead,
Cues) are read whole and decoded once per distinct payload (GetMedia repeats them with
every fragment), large or unknown-size ones stream, and both give the same facts, at the
end of the element. Facts never depend on how the input is chunked.

Usage::

    class Clusters(MkvVisitor):
        def cluster_start(self, offset: int, depth: int) -> None:
            print("Cluster at", offset)

    walker = ElementWalker(Clusters())
    for chunk in source:
        walker.feed(chunk)
    walker.close()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from callstream.mkv.ebml import ID, SIZE_MASK, VINT_LENGTH, MkvError, encode_id, encode_size
from callstream.mkv.reader import (
    DEFAULT_MAX_ELEMENT_SIZE,
    END,
    LEAF,
    RUN,
    START,
    Block,
    EbmlReader,
    RawEvent,
    Tree,
    UnknownSizeInside,
    parse_elements,
)

__all__ = [
    "COLLAPSED",
    "ElementWalker",
    "MkvVisitor",
    "TagItems",
    "TrackInfo",
    "run_blocks",
]

TagItems = tuple[tuple[str, str], ...]
"""The SimpleTags of one Tags element as ``(TagName, value)`` pairs, in document order
(a nested SimpleTag before the one holding it). The value is the TagString, else the
TagBinary in hex, else ``""``."""

COLLAPSED = (ID.EBML, ID.Info, ID.Tracks, ID.Tags, ID.SeekHead, ID.Cues)
"""Masters read whole when small (they are re-sent with every GetMedia fragment)."""

_COLLAPSED_SET = frozenset(COLLAPSED)
_MEMO_MAX = 64
"""Distinct header payloads remembered per walker."""


@dataclass(slots=True)
class TrackInfo:
    """A TrackEntry."""

    number: int
    uid: int | None = None
    name: str | None = None
    codec_id: str | None = None
    codec_private: bytes | None = None
    track_type: int | None = None
    sampling_rate: float | None = None
    channels: int | None = None
    bit_depth: int | None = None
    default_duration_ns: int | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON form printed by ``callstream inspect``."""
        return {
            "number": self.number,
            "name": self.name,
            "codec_id": self.codec_id,
            "sampling_rate": self.sampling_rate,
            "channels": self.channels,
        }


class MkvVisitor:
    """What :class:`ElementWalker` reports; every callback does nothing unless overridden.

    Offsets are absolute byte offsets in the stream; ``end`` is the first byte after an
    element. ``depth`` is the number of master elements around one (a Segment's children
    have depth 1). A callback may raise :class:`MkvError` to reject the stream.
    """

    def ebml_header(self, offset: int, end: int) -> None:
        """An EBML header (the start of a document) is complete."""

    def segment_start(self, offset: int, data_offset: int) -> None:
        """A Segment begins; its children begin at ``data_offset``."""

    def segment_end(self, offset: int) -> None:
        """A Segment ends at ``offset``."""

    def child(self, eid: int, offset: int, end: int, master: bool) -> None:
        """An element directly inside a top-level element other than the EBML header (a
        Segment's Info, Tracks, Tags, Void ...) is complete. Not called for Clusters and
        blocks, which have their own callbacks. Called after the element's own fact
        (:meth:`tags`, :meth:`tracks` ...). ``master``: a master element (read whole)."""

    def timecode_scale(self, scale: int) -> None:
        """A valid (positive) TimecodeScale, in ns."""

    def tracks(self, entries: tuple[TrackInfo, ...], offset: int, end: int) -> None:
        """A Tracks element is complete; ``number`` is 0 for an entry without TrackNumber.
        The same payload yields the same tuple object again (so it can be memoised)."""

    def tags(self, items: TagItems, offset: int, end: int, depth: int) -> None:
        """A Tags element is complete."""

    def cluster_start(self, offset: int, depth: int) -> None:
        """A Cluster begins."""

    def cluster_timecode(self, timecode: int, offset: int) -> None:
        """The open Cluster's Timecode."""

    def cluster_end(self, offset: int, depth: int) -> None:
        """A Cluster ends at ``offset``."""

    def block_run(self, flat: list[int | bytes]) -> None:
        """Consecutive plain SimpleBlocks of the open Cluster, five items per block as in
        :attr:`~callstream.mkv.reader.BlockRun.flat` (see :func:`run_blocks`)."""

    def block(self, block: Block) -> None:
        """Any other block of the open Cluster (laced, a BlockGroup's Block ...)."""

    def stray_block(self, block: Block) -> None:
        """A block outside any Cluster: malformed, so the default raises."""
        raise MkvError("block outside a Cluster", block.offset)


def run_blocks(flat: list[int | bytes]) -> Iterator[Block]:
    """The blocks of a :meth:`MkvVisitor.block_run` as :class:`Block` objects."""
    it = iter(flat)
    for offset, track, tc, flags, data in zip(it, it, it, it, it, strict=True):
        yield Block(offset, track, tc, flags, (data,))  # type: ignore[arg-type]


class ElementWalker:
    """Feeds an MKV byte stream, in chunks of any size, to one :class:`MkvVisitor`.

    ``collapse=False`` streams every master (the facts are the same; for tests).
    Malformed input raises :class:`MkvError` from :meth:`feed` / :meth:`close`, as does
    a visitor callback; the error is sticky, as the reader's.
    """

    def __init__(
        self,
        visitor: MkvVisitor,
        *,
        max_element_size: int = DEFAULT_MAX_ELEMENT_SIZE,
        collapse: bool = True,
    ) -> None:
        self._reader = EbmlReader(
            max_element_size=max_element_size,
            collapse=COLLAPSED if collapse else (),
            batch_blocks=True,
        )
        self._visitor = visitor
        self._on_tags = visitor.tags
        self._headers = _HeaderCache()
        self._tags_memo = self._headers.tags_memo
        self._depth = 0
        self._in_cluster = False
        self._top = 0  # offset of the open element of depth 1
        self._root = 0  # ID of the open top-level element
        self._ebml: list[int] = []  # offsets of open (streamed) EBML headers
        self._tags: list[tuple[str, str]] | None = None  # a streamed Tags element's items
        self._tags_at = 0
        self._simple: list[list[str | None]] = []  # open SimpleTags: [name, value]
        self._track_list: list[TrackInfo] | None = None
        self._tracks_at = 0
        self._track: TrackInfo | None = None
        overridden = type(visitor).child is not MkvVisitor.child
        self._child: Callable[[int, int, int, bool], None] | None = (
            visitor.child if overridden else None
        )
        self._leaf_handlers: dict[int, Callable[[RawEvent], None]] = {
            ID.EBML: self._collapsed_ebml,
            ID.Info: self._collapsed_info,
            ID.Tracks: self._collapsed_tracks,
            ID.Tags: self._collapsed_tags,
            ID.SeekHead: self._collapsed_other,
            ID.Cues: self._collapsed_other,
            ID.Timecode: self._on_timecode,
            ID.TimecodeScale: self._on_timecode_scale,
            ID.TagName: self._on_tag_name,
            ID.TagString: self._on_tag_string,
            ID.TagBinary: self._on_tag_binary,
        }
        self._start_handlers: dict[int, Callable[[RawEvent, int], None]] = {
            ID.EBML: self._start_ebml,
            ID.Segment: self._start_segment,
            ID.Cluster: self._start_cluster,
            ID.Tags: self._start_tags,
            ID.SimpleTag: self._start_simple_tag,
            ID.Tracks: self._start_tracks,
            ID.TrackEntry: self._start_track_entry,
        }
        self._end_handlers: dict[int, Callable[[RawEvent, int], None]] = {
            ID.EBML: self._end_ebml,
            ID.Segment: self._end_segment,
            ID.Cluster: self._end_cluster,
            ID.Tags: self._end_tags,
            ID.SimpleTag: self._end_simple_tag,
            ID.Tracks: self._end_tracks,
            ID.TrackEntry: self._end_track_entry,
        }

    # --- input ----------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Consume bytes, reporting what they complete."""
        self._reader.feed(data)
        self._process(self._reader._raw_events())

    def feed_blocks(self, data: bytes | bytearray | memoryview) -> None:
        """:meth:`feed` with the reader's steady-state fast path: whole plain SimpleBlocks
        at the start of ``data`` in an open Cluster go straight to
        :meth:`MkvVisitor.block_run`, without a round of reader events; whatever follows
        is processed as by :meth:`feed`."""
        reader = self._reader
        run = reader.feed_blocks(data)
        if run:
            if self._in_cluster:
                self._visitor.block_run(run)
            else:
                self._stray_run(run)
        if reader._events_due():
            self._process(reader._raw_events())

    def close(self) -> None:
        """End of input: report the ends of open unknown-size masters, or raise on a
        truncated element."""
        self._reader.close()
        self._process(self._reader._raw_events())

    @property
    def offset(self) -> int:
        """Absolute offset of the next unparsed byte."""
        reader = self._reader
        return reader._base + reader._pos

    @property
    def at_limit(self) -> bool:
        """The next byte is where an open known-size master ends (its end is due)."""
        return self._reader.at_limit

    @property
    def max_element_size(self) -> int:
        """The reader's bound on what is ever buffered whole."""
        return self._reader.max_element_size

    # --- dispatch -------------------------------------------------------------------------
    def _process(self, events: Iterator[RawEvent]) -> None:
        visitor = self._visitor
        on_run = visitor.block_run
        leaf_handlers = self._leaf_handlers
        start_handlers = self._start_handlers
        end_handlers = self._end_handlers
        child = self._child
        collapsed = _COLLAPSED_SET
        cluster = ID.Cluster
        ebml = ID.EBML
        for ev in events:
            code = ev[0]
            if code == LEAF:
                eid = ev[1]
                handler = leaf_handlers.get(eid)
                if handler is not None:
                    handler(ev)
                elif self._track is not None:
                    _track_field(self._track, eid, ev[5])
                if (
                    child is not None
                    and self._depth == 1
                    and eid not in collapsed
                    and self._root != ebml
                ):
                    child(eid, ev[2], ev[2] + ev[3] + ev[4], False)
            elif code == RUN:
                if self._in_cluster:
                    on_run(ev[1])
                else:
                    self._stray_run(ev[1])
            elif code == START:
                depth = self._depth
                self._depth = depth + 1
                if depth == 1:
                    self._top = ev[2]
                elif depth == 0:
                    self._root = ev[1]
                on_start = start_handlers.get(ev[1])
                if on_start is not None:
                    on_start(ev, depth)
            elif code == END:
                self._depth = depth = self._depth - 1
                on_end = end_handlers.get(ev[1])
                if on_end is not None:
                    on_end(ev, depth)
                if child is not None and depth == 1 and ev[1] != cluster and self._root != ebml:
                    child(ev[1], self._top, ev[2], True)
            elif self._in_cluster:
                visitor.block(ev[1])
            else:
                visitor.stray_block(ev[1])

    def _stray_run(self, flat: list[int | bytes]) -> None:
        for block in run_blocks(flat):
            self._visitor.stray_block(block)

    # --- streamed masters (raw events: see EbmlReader._raw_events) -----------------------
    def _start_ebml(self, ev: RawEvent, depth: int) -> None:
        self._ebml.append(ev[2])

    def _end_ebml(self, ev: RawEvent, depth: int) -> None:
        if self._ebml:
            self._visitor.ebml_header(self._ebml.pop(), ev[2])

    def _start_segment(self, ev: RawEvent, depth: int) -> None:
        self._visitor.segment_start(ev[2], ev[2] + ev[3])

    def _end_segment(self, ev: RawEvent, depth: int) -> None:
        self._visitor.segment_end(ev[2])

    def _start_cluster(self, ev: RawEvent, depth: int) -> None:
        self._in_cluster = True
        self._visitor.cluster_start(ev[2], depth)

    def _end_cluster(self, ev: RawEvent, depth: int) -> None:
        self._in_cluster = False
        self._visitor.cluster_end(ev[2], depth)

    def _start_tags(self, ev: RawEvent, depth: int) -> None:
        self._tags = []
        self._tags_at = ev[2]

    def _end_tags(self, ev: RawEvent, depth: int) -> None:
        items = tuple(self._tags or ())
        self._tags = None
        self._simple.clear()
        self._visitor.tags(items, self._tags_at, ev[2], depth)

    def _start_simple_tag(self, ev: RawEvent, depth: int) -> None:
        self._simple.append([None, None])

    def _end_simple_tag(self, ev: RawEvent, depth: int) -> None:
        if self._simple:
            name, value = self._simple.pop()
            if self._tags is not None and name is not None:
                self._tags.append((name, value or ""))

    def _on_tag_name(self, ev: RawEvent) -> None:
        if self._simple:
            self._simple[-1][0] = str(ev[5])

    def _on_tag_string(self, ev: RawEvent) -> None:
        if self._simple:
            self._simple[-1][1] = str(ev[5])

    def _on_tag_binary(self, ev: RawEvent) -> None:
        if self._simple and self._simple[-1][1] is None and isinstance(ev[5], bytes):
            self._simple[-1][1] = ev[5].hex()

    def _start_tracks(self, ev: RawEvent, depth: int) -> None:
        self._track_list = []
        self._tracks_at = ev[2]

    def _end_tracks(self, ev: RawEvent, depth: int) -> None:
        if self._track_list is not None:
            entries = tuple(self._track_list)
            self._track_list = None
            self._visitor.tracks(entries, self._tracks_at, ev[2])

    def _start_track_entry(self, ev: RawEvent, depth: int) -> None:
        self._track = TrackInfo(number=0)

    def _end_track_entry(self, ev: RawEvent, depth: int) -> None:
        track = self._track
        self._track = None
        if track is not None and self._track_list is not None:
            self._track_list.append(track)

    def _on_timecode(self, ev: RawEvent) -> None:
        if self._in_cluster and isinstance(ev[5], int):
            self._visitor.cluster_timecode(ev[5], ev[2])

    def _on_timecode_scale(self, ev: RawEvent) -> None:
        if isinstance(ev[5], int) and ev[5] > 0:
            self._visitor.timecode_scale(ev[5])

    # --- collapsed masters (leaf events whose value is the raw payload) -------------------
    def _collapsed_ebml(self, ev: RawEvent) -> None:
        if self._headers.decode(ev) is _STREAM:
            self._stream(ev)
        else:
            self._visitor.ebml_header(ev[2], ev[2] + ev[3] + ev[4])

    def _collapsed_info(self, ev: RawEvent) -> None:
        scale = self._headers.decode(ev)
        if scale is _STREAM:
            self._stream(ev)
            return
        if scale is not None:
            self._visitor.timecode_scale(scale)  # type: ignore[arg-type]
        if self._child is not None:
            self._done(ev)

    def _collapsed_tracks(self, ev: RawEvent) -> None:
        entries = self._headers.decode(ev)
        if entries is _STREAM:
            self._stream(ev)
            return
        self._visitor.tracks(entries, ev[2], ev[2] + ev[3] + ev[4])  # type: ignore[arg-type]
        if self._child is not None:
            self._done(ev)

    def _collapsed_tags(self, ev: RawEvent) -> None:
        # The most frequent element of GetMedia output (eight per fragment): kept short.
        _, _, offset, header, size, payload = ev
        items = self._tags_memo.get(payload)
        if items is None:
            items = self._headers.tags(ev)
            if items is None:
                self._stream(ev)
                return
        self._on_tags(items, offset, offset + header + size, self._depth)
        if self._child is not None:
            self._done(ev)

    def _collapsed_other(self, ev: RawEvent) -> None:
        if self._headers.decode(ev) is _STREAM:
            self._stream(ev)
        elif self._child is not None:
            self._done(ev)

    def _done(self, ev: RawEvent) -> None:
        """The :meth:`MkvVisitor.child` fact of a collapsed master."""
        if self._child is not None and self._depth == 1 and self._root != ID.EBML:
            self._child(ev[1], ev[2], ev[2] + ev[3] + ev[4], True)

    def _stream(self, ev: RawEvent) -> None:
        """Re-read a collapsed master through the event path: it holds an unknown-size
        element, whose extent only the streaming reader's nesting rule decides."""
        _, eid, offset, header, size, payload = ev
        nested = EbmlReader(max_element_size=self._reader.max_element_size)
        nested._base = offset
        head = encode_id(eid)
        nested.feed(head + encode_size(size, header - len(head)) + payload)
        nested.close()
        self._process(nested._raw_events())


# --- decoding collapsed masters -------------------------------------------------------------


class _Stream:
    """Marks a collapsed master that has to be re-read as a stream."""


_STREAM = _Stream()


class _HeaderCache:
    """Decodes collapsed masters once per distinct payload (GetMedia repeats the EBML
    header, Info, Tracks and most Tags byte for byte). Tags whose values change from one
    fragment to the next (KVS's per-fragment tags) are matched against a template of the
    last such payload instead of being parsed again."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, bytes], object] = {}
        self.tags_memo: dict[bytes, TagItems] = {}
        self._templates: dict[int, list[_TagTemplate]] = {}

    def decode(self, ev: RawEvent) -> object:
        """EBML/SeekHead/Cues: validated (``True``); Info: its TimecodeScale or None;
        Tracks: its entries. :data:`_STREAM` if the payload needs the streaming path."""
        _, eid, offset, header, _, payload = ev
        key = (eid, payload)
        result = self._memo.get(key)
        if result is None:
            try:
                tree = parse_elements(payload, offset + header, parent=eid)
            except UnknownSizeInside:
                return _STREAM
            result = _extract(eid, tree)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[key] = result
        return None if result is _NO_SCALE else result

    def tags(self, ev: RawEvent) -> TagItems | None:
        """The items of a collapsed Tags element; None if it needs the streaming path."""
        _, eid, offset, header, _, payload = ev
        items = self.tags_memo.get(payload)
        if items is not None:
            return items
        items = self._by_template(payload)
        if items is not None:
            return items  # values that change per fragment: not worth remembering
        parsed = _fast_tags(payload)
        if parsed is not None:
            items, template = parsed
            if template is not None:
                if len(self._templates) >= _MEMO_MAX:
                    self._templates.clear()
                known = self._templates.setdefault(len(payload), [])
                if len(known) >= 8:
                    known.pop(0)
                known.append(template)
        else:
            try:
                tree = parse_elements(payload, offset + header, parent=eid)
            except UnknownSizeInside:
                return None
            items = _tag_items(tree)
        if len(self.tags_memo) >= _MEMO_MAX:
            self.tags_memo.clear()
        self.tags_memo[payload] = items
        return items

    def _by_template(self, payload: bytes) -> TagItems | None:
        for template in self._templates.get(len(payload), ()):
            items = template.apply(payload)
            if items is not None:
                return items
        return None


class _NoScale:
    """Memo value of an Info without a valid TimecodeScale."""


_NO_SCALE = _NoScale()


def _extract(eid: int, tree: Tree) -> object:
    """What the layer keeps of a collapsed master (memoised per payload)."""
    if eid == ID.Tracks:
        entries: list[TrackInfo] = []
        for entry_id, entry in tree:
            if entry_id == ID.TrackEntry and isinstance(entry, list):
                track = TrackInfo(number=0)
                for field_id, value in entry:
                    if isinstance(value, list):  # Audio / Video
                        for sub_id, sub in value:
                            _track_field(track, sub_id, sub)
                    else:
                        _track_field(track, field_id, value)
                entries.append(track)
        return tuple(entries)
    if eid == ID.Info:
        scale: object = _NO_SCALE
        for field_id, value in tree:
            if field_id == ID.TimecodeScale and isinstance(value, int) and value > 0:
                scale = value
        return scale
    return True


_TRACK_FIELDS: dict[int, tuple[str, type]] = {
    ID.TrackNumber: ("number", int),
    ID.TrackUID: ("uid", int),
    ID.Name: ("name", str),
    ID.CodecID: ("codec_id", str),
    ID.CodecPrivate: ("codec_private", bytes),
    ID.TrackType: ("track_type", int),
    ID.SamplingFrequency: ("sampling_rate", float),
    ID.Channels: ("channels", int),
    ID.BitDepth: ("bit_depth", int),
    ID.DefaultDuration: ("default_duration_ns", int),
}
"""TrackEntry child element -> (TrackInfo field, value type)."""


def _track_field(track: TrackInfo, eid: int, value: object) -> None:
    field_and_type = _TRACK_FIELDS.get(eid)
    if field_and_type is not None and isinstance(value, field_and_type[1]):
        setattr(track, field_and_type[0], value)


def _tag_items(tree: Tree) -> TagItems:
    items: list[tuple[str, str]] = []
    for tag_id, tag in tree:
        if tag_id == ID.Tag and isinstance(tag, list):
            for sub_id, sub in tag:
                if sub_id == ID.SimpleTag and isinstance(sub, list):
                    _simple_tag(sub, items)
    return tuple(items)


def _simple_tag(tree: Tree, out: list[tuple[str, str]]) -> None:
    name: str | None = None
    value: str | None = None
    for eid, v in tree:
        if eid == ID.TagName and isinstance(v, str):
            name = v
        elif eid == ID.TagString and isinstance(v, str):
            value = v
        elif eid == ID.TagBinary and value is None and isinstance(v, bytes):
            value = v.hex()
        elif eid == ID.SimpleTag and isinstance(v, list):
            _simple_tag(v, out)
    if name is not None:
        out.append((name, value or ""))


_TAG_SKIP = frozenset({ID.Targets, ID.CRC32, ID.Void})
_SIMPLE_SKIP = frozenset({ID.TagLanguage, ID.TagDefault, ID.CRC32, ID.Void})


def _fast_tags(data: bytes) -> tuple[TagItems, _TagTemplate | None] | None:
    """The common Tags shape (Tag > [Targets] SimpleTag > TagName, TagString), read flat,
    with a :class:`_TagTemplate` for Tags that differ only in their values. ``None`` for
    anything else (nesting, TagBinary, unknown or malformed elements): the generic walker
    then decides, and names the offset of any fault."""
    vlen = VINT_LENGTH
    masks = SIZE_MASK
    items: list[tuple[str, str]] = []
    slots: list[tuple[str, int, int]] = []
    templatable = True
    n = len(data)
    pos = 0
    while pos < n:  # Tags children: Tag
        if pos + 3 > n or data[pos] != 0x73 or data[pos + 1] != 0x73:
            return None
        slen = vlen[data[pos + 2]]
        if slen == 0 or pos + 2 + slen > n:
            return None
        size = int.from_bytes(data[pos + 2 : pos + 2 + slen], "big") & masks[slen]
        p = pos + 2 + slen
        tag_end = p + size
        if size == masks[slen] or tag_end > n:
            return None
        while p < tag_end:  # Tag children: SimpleTag (an empty Targets skipped)
            first = data[p]
            ilen = vlen[first]
            if ilen == 0 or ilen > 4 or p + ilen >= tag_end:
                return None
            eid = first if ilen == 1 else int.from_bytes(data[p : p + ilen], "big")
            slen = vlen[data[p + ilen]]
            if slen == 0 or p + ilen + slen > tag_end:
                return None
            size = int.from_bytes(data[p + ilen : p + ilen + slen], "big") & masks[slen]
            q = p + ilen + slen
            stop = q + size
            if size == masks[slen] or stop > tag_end:
                return None
            if eid == ID.SimpleTag:
                name: str | None = None
                value: str | None = None
                span: tuple[int, int] | None = None
                strings = 0
                while q < stop:
                    first = data[q]
                    ilen = vlen[first]
                    if ilen == 0 or ilen > 4 or q + ilen >= stop:
                        return None
                    cid = first if ilen == 1 else int.from_bytes(data[q : q + ilen], "big")
                    slen = vlen[data[q + ilen]]
                    if slen == 0 or q + ilen + slen > stop:
                        return None
                    size = int.from_bytes(data[q + ilen : q + ilen + slen], "big") & masks[slen]
                    r = q + ilen + slen
                    if size == masks[slen] or r + size > stop:
                        return None
                    if cid == ID.TagName:
                        name = data[r : r + size].rstrip(b"\x00").decode("utf-8", "replace")
                    elif cid == ID.TagString:
                        value = data[r : r + size].rstrip(b"\x00").decode("utf-8", "replace")
                        span = (r, r + size)
                        strings += 1
                    elif cid not in _SIMPLE_SKIP or (cid == ID.TagDefault and size > 8):
                        return None
                    q = r + size
                if name is not None:
                    items.append((name, value or ""))
                    if span is not None:
                        slots.append((name, span[0], span[1]))
                    templatable = templatable and strings <= 1
                elif strings:
                    templatable = False
            elif eid not in _TAG_SKIP or (eid == ID.Targets and size):
                return None  # (a non-empty Targets gets validated by the generic walker)
            p = stop
        pos = tag_end
    template = None
    if templatable and slots and len(slots) == len(items):
        template = _TagTemplate.build(data, tuple(slots))
    return tuple(items), template


@dataclass(frozen=True, slots=True)
class _TagTemplate:
    """A parsed Tags payload with its values cut out. Another payload of the same size
    whose every byte outside the value spans matches has, element for element, the same
    tree: only the TagString values differ (KVS's per-fragment tags are like that)."""

    size: int
    pieces: tuple[tuple[int, bytes], ...]  # (offset, bytes) outside the values
    slots: tuple[tuple[str, int, int], ...]  # (name, start, end) of each value

    @classmethod
    def build(cls, data: bytes, slots: Sequence[tuple[str, int, int]]) -> _TagTemplate:
        pieces = []
        at = 0
        for _, start, end in slots:
            pieces.append((at, data[at:start]))
            at = end
        pieces.append((at, data[at:]))
        return cls(len(data), tuple(pieces), tuple(slots))

    def apply(self, data: bytes) -> TagItems | None:
        startswith = data.startswith
        for offset, piece in self.pieces:
            if not startswith(piece, offset):
                return None
        return tuple(
            [
                (name, data[a:b].rstrip(b"\x00").decode("utf-8", "replace"))
                for name, a, b in self.slots
            ]
        )
