"""The KVS fragment layer: GetMedia/PutMedia payloads as a stream of :class:`Fragment`.

A KVS fragment is one Cluster. In GetMedia output each fragment is its own MKV document
(EBML header + unknown-size Segment + the producer's header elements + KVS Tags before
and after the Cluster); in a plain MKV or a PutMedia upload one Segment holds many
Clusters. :class:`FragmentReader` handles both, fed in chunks of any size::

    reader = FragmentReader()
    for chunk in source:
        for fragment in reader.feed(chunk):
            ...
    for fragment in reader.close():
        ...

A fragment is delivered as soon as it is complete: when the KVS end Tags
(MILLIS_BEHIND_NOW / CONTINUATION_TOKEN) close, when the next Cluster starts, when its
Segment ends, or at the end of input, so the last fragment of a response is never lost.

Tags belong to the Cluster they precede within a Segment (KVS attributes fragment metadata
to the next fragment); Tags after the last Cluster of a Segment or document belong to it
(GetMedia puts the producer's post-Cluster tags and its end tags there). Frame timestamps
are absolute (see :class:`FragmentReader`).

Usage, e.g. a Connect GetMedia response::

    for fragment in iter_fragments(response["Payload"].iter_chunks()):
        caller = fragment.track_named("AUDIO_FROM_CUSTOMER")  # never by track number
        pcm = b"".join(f.data for f in fragment.frames_of(caller.number)) if caller else b""
        contact = fragment.tags.get("ContactId")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from callstream.mkv import writer
from callstream.mkv.ebml import ID, SIZE_MASK, VINT_LENGTH, MkvError, encode_id, encode_size
from callstream.mkv.reader import (
    Block,
    BlockRun,
    EbmlReader,
    End,
    Event,
    Leaf,
    Start,
    Tree,
    UnknownSizeInside,
    parse_elements,
)

__all__ = [
    "AWS_TAG_PREFIX",
    "Fragment",
    "FragmentReader",
    "Frame",
    "TrackInfo",
    "format_kvs_timestamp",
    "iter_fragments",
    "kvs_end_tags",
    "kvs_start_tags",
    "parse_kvs_timestamp",
    "render_fragment",
]

AWS_TAG_PREFIX = "AWS_KINESISVIDEO_"
TAG_FRAGMENT_NUMBER = "AWS_KINESISVIDEO_FRAGMENT_NUMBER"
TAG_SERVER_TIMESTAMP = "AWS_KINESISVIDEO_SERVER_TIMESTAMP"
TAG_PRODUCER_TIMESTAMP = "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"
TAG_MILLIS_BEHIND_NOW = "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"
TAG_CONTINUATION_TOKEN = "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
TAG_ERROR_CODE = "AWS_KINESISVIDEO_ERROR_CODE"
TAG_ERROR_ID = "AWS_KINESISVIDEO_ERROR_ID"
_END_TAGS = (TAG_MILLIS_BEHIND_NOW, TAG_CONTINUATION_TOKEN)
_DOCUMENT_TAGS = frozenset({TAG_FRAGMENT_NUMBER, TAG_ERROR_CODE, TAG_ERROR_ID})
"""AWS tags that make a document without a Cluster a fragment of its own (an error)."""


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


@dataclass(slots=True)
class Frame:
    """One frame of one track. ``timestamp_ns`` is absolute: the fragment's
    ``cluster_timestamp_ns`` (its producer timestamp, else the timeline of the last tagged
    fragment, else the Cluster timeline) plus the block's timecode times TimecodeScale."""

    track: int
    timestamp_ns: int
    timecode: int  # relative to the Cluster, in TimecodeScale ticks
    flags: int
    data: bytes

    @property
    def keyframe(self) -> bool:
        return bool(self.flags & 0x80)


@dataclass(slots=True)
class Fragment:
    """One KVS fragment: its metadata, tracks and frames."""

    index: int  # 0-based position in the input
    offset: int  # byte offset of the fragment's document (or Cluster) in the input
    end_offset: int = 0
    fragment_number: str | None = None
    server_timestamp_ms: int | None = None
    producer_timestamp_ms: int | None = None
    millis_behind_now: int | None = None
    continuation_token: str | None = None
    error_code: str | None = None
    error_id: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tracks: dict[int, TrackInfo] = field(default_factory=dict)
    timecode_scale_ns: int = 1_000_000
    cluster_timecode: int | None = None
    cluster_timestamp_ns: int | None = None  # absolute time of the Cluster Timecode
    frames: list[Frame] = field(default_factory=list)

    def track_named(self, name: str) -> TrackInfo | None:
        """The track whose TrackEntry Name is ``name`` (track numbers are not stable)."""
        for track in self.tracks.values():
            if track.name == name:
                return track
        return None

    def frames_of(self, track: int) -> list[Frame]:
        """Frames of one track number, in stream order."""
        return [f for f in self.frames if f.track == track]

    @property
    def start_ns(self) -> int | None:
        """Absolute time of the fragment's first frame."""
        return min((f.timestamp_ns for f in self.frames), default=None)

    @property
    def duration_ms(self) -> int:
        """Span from the first to the last frame start (what KVS calls fragment length)."""
        if not self.frames:
            return 0
        stamps = [f.timestamp_ns for f in self.frames]
        return (max(stamps) - min(stamps)) // 1_000_000

    def to_json(self, *, frames: bool = False) -> dict[str, object]:
        """The JSON object ``callstream inspect`` prints for this fragment."""
        counts: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for f in self.frames:
            key = str(f.track)
            counts[key] = counts.get(key, 0) + 1
            sizes[key] = sizes.get(key, 0) + len(f.data)
        out: dict[str, object] = {
            "index": self.index,
            "offset": self.offset,
            "fragment_number": self.fragment_number,
            "server_timestamp": _seconds(self.server_timestamp_ms),
            "producer_timestamp": _seconds(self.producer_timestamp_ms),
            "millis_behind_now": self.millis_behind_now,
            "continuation_token": self.continuation_token,
            "error_code": self.error_code,
            "error_id": self.error_id,
            "tags": self.tags,
            "tracks": [t.to_json() for t in self.tracks.values()],
            "timecode_scale_ns": self.timecode_scale_ns,
            "cluster_timecode": self.cluster_timecode,
            "frame_count": len(self.frames),
            "frames_per_track": counts,
            "bytes_per_track": sizes,
        }
        if frames:
            out["frames"] = [
                {
                    "track": f.track,
                    "timestamp": f.timestamp_ns / 1e9,
                    "timecode": f.timecode,
                    "keyframe": f.keyframe,
                    "size": len(f.data),
                }
                for f in self.frames
            ]
        return out


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


_KVS_MILLIS = re.compile(r"(\d{1,20})\.(\d{3})", re.ASCII)
_KVS_TIMESTAMP = re.compile(r"\s*-?\d{1,20}(?:\.\d{0,12})?\s*", re.ASCII)


def parse_kvs_timestamp(value: str) -> int:
    """KVS timestamp tag (epoch seconds, ``"1511852109.126"``) to integer milliseconds
    (extra decimals round half to even). Anything but plain decimal seconds raises
    ``ValueError``: no exponents, NaN or infinities, whose conversion could be unbounded."""
    canonical = _KVS_MILLIS.fullmatch(value)  # "1511852109.126": exact, no rounding
    if canonical:
        return int(canonical[1]) * 1000 + int(canonical[2])
    if not _KVS_TIMESTAMP.fullmatch(value):
        raise ValueError(f"not a KVS timestamp: {value!r}")
    try:
        return int((Decimal(value.strip()) * 1000).to_integral_value())
    except InvalidOperation:  # pragma: no cover - excluded by the pattern
        raise ValueError(f"not a KVS timestamp: {value!r}") from None


def format_kvs_timestamp(ms: int) -> str:
    """Integer milliseconds to the KVS tag form with exactly three decimals."""
    return f"{ms // 1000}.{ms % 1000:03d}"


_COLLAPSE = (ID.EBML, ID.Info, ID.Tracks, ID.Tags, ID.SeekHead, ID.Cues)
"""Masters the fragment layer takes whole (small, and re-sent with every fragment)."""

_MEMO_MAX = 64
"""Distinct header payloads remembered (GetMedia repeats them byte for byte)."""

_VALID = True  # memo value of a master that is only validated


class FragmentReader:
    """Assembles :class:`Fragment` objects from an MKV/KVS byte stream (sans-I/O).

    Frame timestamps are absolute: a fragment with a PRODUCER_TIMESTAMP tag anchors its
    Cluster Timecode there; a tagless fragment continues the timeline of the last tagged
    one (same TimecodeScale); without any tag the Cluster timeline is used as is.
    """

    def __init__(self, *, max_element_size: int | None = None) -> None:
        if max_element_size is None:
            self._reader = EbmlReader(collapse=_COLLAPSE, batch_blocks=True)
        else:
            self._reader = EbmlReader(
                max_element_size=max_element_size, collapse=_COLLAPSE, batch_blocks=True
            )
        self._index = 0
        self._doc_offset = 0  # where the current EBML document (or stream) began
        self._doc_pending = True  # no Cluster of that document seen yet
        self._tracks: dict[int, TrackInfo] = {}
        self._scale = 1_000_000
        # Tags not yet attributed: seen in this Segment before a Cluster, or after the
        # current fragment's Cluster (they belong to the next Cluster if one follows).
        self._pre: list[_TagsEffect] = []
        self._current: Fragment | None = None  # the fragment whose Cluster was seen last
        self._cluster_open = False
        self._cstart: int | None = None  # absolute ns of the open Cluster's Timecode
        self._origin: tuple[int, int] | None = None  # (ns at Timecode 0, scale), last tagged
        # State of masters that stream (unknown size or too big to collapse).
        self._in_tags: list[tuple[str, str]] | None = None
        self._simple: list[list[str | None]] = []  # open SimpleTags: [name, value]
        self._track: TrackInfo | None = None
        self._track_list: dict[int, TrackInfo] | None = None
        self._ready: list[Fragment] = []
        self._memo: dict[tuple[int, bytes], object] = {}
        self._templates: dict[int, list[_TagTemplate]] = {}
        self._tags_memo: dict[bytes, _TagsEffect] = {}
        self._leaf_handlers = self._leaf_table()
        self._start_handlers = self._start_table()
        self._end_handlers = self._end_table()

    # --- feeding --------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> list[Fragment]:
        """Consume bytes; return the fragments they complete."""
        self._reader.feed(data)
        return self._drain()

    def close(self) -> list[Fragment]:
        """End of input: return the remaining fragments.

        Truncated input raises :class:`MkvError`; its ``fragments`` attribute holds the
        fragments that were still delivered, the cut one last (its frames are those that
        arrived whole), so a saved capture that was cut off loses nothing it contains.
        """
        self._reader.close()
        try:
            out = self._drain()
        except MkvError as err:
            out = self._take()
            if self._current is not None and self._current.frames:
                self._apply_pending(self._current)
                self._emit(self._reader.offset)
                out.extend(self._take())
            err.fragments = out
            raise
        self._finish(self._reader.offset)
        out.extend(self._take())
        return out

    def _take(self) -> list[Fragment]:
        ready, self._ready = self._ready, []
        return ready

    def _drain(self) -> list[Fragment]:
        leaf_handlers = self._leaf_handlers
        start_handlers = self._start_handlers
        end_handlers = self._end_handlers
        start_type = Start
        end_type = End
        handle = self._handle
        frames: list[Frame] | None = None
        tracks: dict[int, TrackInfo] = {}
        start = scale = 0
        run_type = BlockRun
        block_type = Block
        leaf_type = Leaf
        frame = Frame
        for ev in self._reader.events():
            kind = type(ev)
            if kind is run_type:
                # The bulk of the stream, inline. The Cluster context is looked up once
                # per run of blocks (any other event may change it).
                run: BlockRun = ev  # type: ignore[assignment]
                flat: list[Any] = run.flat
                if frames is None:
                    frames, tracks, start, scale = self._block_context(flat[0])
                append = frames.append
                it = iter(flat)
                for offset, track, tc, flags, data in zip(it, it, it, it, it, strict=False):
                    if track not in tracks:
                        raise MkvError(f"frame for undeclared track {track}", offset)
                    append(frame(track, start + tc * scale, tc, flags, data))
            elif kind is block_type:
                block: Block = ev  # type: ignore[assignment]
                if frames is None:
                    frames, tracks, start, scale = self._block_context(block.offset)
                track = block.track
                if track not in tracks:
                    raise MkvError(f"frame for undeclared track {track}", block.offset)
                tc = block.timecode
                ts = start + tc * scale
                flags = block.flags
                for data in block.frames:
                    frames.append(frame(track, ts, tc, flags, data))
            else:
                frames = None
                if kind is leaf_type:
                    leaf: Leaf = ev  # type: ignore[assignment]
                    on_leaf = leaf_handlers.get(leaf.id)
                    if on_leaf is not None:
                        on_leaf(leaf)
                    elif self._track is not None:
                        _track_field(self._track, leaf.id, leaf.value)
                elif kind is start_type:
                    on_start = start_handlers.get(ev.id)  # type: ignore[union-attr]
                    if on_start is not None:
                        on_start(ev)  # type: ignore[arg-type]
                elif kind is end_type:
                    on_end = end_handlers.get(ev.id)  # type: ignore[union-attr]
                    if on_end is not None:
                        on_end(ev)  # type: ignore[arg-type]
                else:
                    handle(ev)
        return self._take()

    # --- event handling -------------------------------------------------------------------
    def _block_context(self, offset: int) -> tuple[list[Frame], dict[int, TrackInfo], int, int]:
        frag = self._current
        if frag is None or not self._cluster_open:
            raise MkvError("block outside a Cluster", offset)
        start = self._cstart
        if start is None:  # no Timecode before the first block: take it as 0
            start = self._cluster_time(frag, 0)
        return frag.frames, frag.tracks, start, frag.timecode_scale_ns

    def _cluster_time(self, frag: Fragment, timecode: int) -> int:
        """Absolute ns of a Cluster Timecode (see the class docstring)."""
        scale = frag.timecode_scale_ns
        if frag.producer_timestamp_ms is not None:
            start = frag.producer_timestamp_ms * 1_000_000
            self._origin = (start - timecode * scale, scale)
        elif self._origin is not None and self._origin[1] == scale:
            start = self._origin[0] + timecode * scale
        else:
            start = timecode * scale
        frag.cluster_timestamp_ns = start
        self._cstart = start
        return start

    def _handle(self, event: Event) -> None:
        if isinstance(event, Leaf):
            on_leaf = self._leaf_handlers.get(event.id)
            if on_leaf is not None:
                on_leaf(event)
            elif self._track is not None:
                _track_field(self._track, event.id, event.value)
        elif isinstance(event, Start):
            on_start = self._start_handlers.get(event.id)
            if on_start is not None:
                on_start(event)
        elif isinstance(event, End):
            on_end = self._end_handlers.get(event.id)
            if on_end is not None:
                on_end(event)
        elif isinstance(event, Block):  # met while re-reading a collapsed master
            frames, tracks, start, scale = self._block_context(event.offset)
            if event.track not in tracks:
                raise MkvError(f"frame for undeclared track {event.track}", event.offset)
            ts = start + event.timecode * scale
            for data in event.frames:
                frames.append(Frame(event.track, ts, event.timecode, event.flags, data))

    def _start_table(self) -> dict[int, Callable[[Start], None]]:
        return {
            ID.Cluster: self._start_cluster,
            ID.Tags: self._start_tags,
            ID.SimpleTag: self._start_simple_tag,
            ID.TrackEntry: self._start_track_entry,
            ID.Tracks: self._start_tracks,
            ID.Segment: self._start_segment,
            ID.EBML: self._start_ebml,
        }

    def _end_table(self) -> dict[int, Callable[[End], None]]:
        return {
            ID.Cluster: self._end_cluster,
            ID.SimpleTag: self._end_simple_tag,
            ID.Tags: self._end_tags,
            ID.TrackEntry: self._end_track_entry,
            ID.Tracks: self._end_tracks,
            ID.Segment: self._end_segment,
        }

    def _start_cluster(self, ev: Start) -> None:
        if self._current is not None:
            self._emit(ev.offset)
        frag = Fragment(
            index=self._index,
            offset=self._doc_offset if self._doc_pending else ev.offset,
            tracks=self._tracks,
            timecode_scale_ns=self._scale,
        )
        self._doc_pending = False
        self._index += 1
        self._apply_pending(frag)
        self._current = frag
        self._cluster_open = True
        self._cstart = None

    def _start_tags(self, ev: Start) -> None:
        self._in_tags = []

    def _start_simple_tag(self, ev: Start) -> None:
        self._simple.append([None, None])

    def _start_track_entry(self, ev: Start) -> None:
        self._track = TrackInfo(number=0)

    def _start_tracks(self, ev: Start) -> None:
        self._track_list = {}

    def _start_segment(self, ev: Start) -> None:
        self._finish(ev.offset)
        self._scale = 1_000_000

    def _start_ebml(self, ev: Start) -> None:
        self._new_document(ev.offset)

    def _end_cluster(self, ev: End) -> None:
        self._cluster_open = False

    def _end_simple_tag(self, ev: End) -> None:
        if self._simple:
            name, value = self._simple.pop()
            if self._in_tags is not None and name is not None:
                self._in_tags.append((name, value or ""))

    def _end_tags(self, ev: End) -> None:
        items = self._in_tags or []
        self._in_tags = None
        self._simple.clear()
        self._tags_done(_TagsEffect.of(items), ev.offset)

    def _end_track_entry(self, ev: End) -> None:
        track = self._track
        self._track = None
        if track is not None and self._track_list is not None:
            if track.number == 0:
                raise MkvError("TrackEntry without a TrackNumber", ev.offset)
            self._track_list[track.number] = track

    def _end_tracks(self, ev: End) -> None:
        if self._track_list is not None:
            self._tracks = self._track_list
        self._track_list = None

    def _end_segment(self, ev: End) -> None:
        self._finish(ev.offset)

    def _leaf_table(self) -> dict[int, Callable[[Leaf], None]]:
        table: dict[int, Callable[[Leaf], None]] = {
            ID.Timecode: self._on_timecode,
            ID.TagName: self._on_tag_name,
            ID.TagString: self._on_tag_string,
            ID.TagBinary: self._on_tag_binary,
            ID.TimecodeScale: self._on_timecode_scale,
        }
        for eid in _COLLAPSE:
            table[eid] = self._collapsed
        table[ID.Tags] = self._on_tags
        return table

    def _on_tags(self, ev: Leaf) -> None:
        """A collapsed Tags element: apply its (memoised) effect."""
        payload = ev.value
        if not isinstance(payload, bytes):  # pragma: no cover - collapsed masters are bytes
            return
        effect = self._tags_memo.get(payload)
        if effect is None:
            items = self._tags_by_template(payload)
            if items is None:
                try:
                    tree = parse_elements(payload, ev.offset + ev.header_size)
                except UnknownSizeInside:
                    self._stream(ev, payload)
                    return
                items = _extract(ID.Tags, tree, ev.offset)  # type: ignore[assignment]
                assert items is not None
            effect = _TagsEffect.of(items)
            if not effect.aws:  # KVS tags are new every fragment: not worth keeping
                if len(self._tags_memo) >= _MEMO_MAX:
                    self._tags_memo.clear()
                self._tags_memo[payload] = effect
        self._tags_done(effect, ev.offset + ev.header_size + ev.size)

    def _on_timecode(self, ev: Leaf) -> None:
        frag = self._current
        if frag is not None and self._cluster_open and isinstance(ev.value, int):
            frag.cluster_timecode = ev.value
            self._cluster_time(frag, ev.value)

    def _on_tag_name(self, ev: Leaf) -> None:
        if self._simple:
            self._simple[-1][0] = str(ev.value)

    def _on_tag_string(self, ev: Leaf) -> None:
        if self._simple:
            self._simple[-1][1] = str(ev.value)

    def _on_tag_binary(self, ev: Leaf) -> None:
        if self._simple and self._simple[-1][1] is None and isinstance(ev.value, bytes):
            self._simple[-1][1] = ev.value.hex()

    def _on_timecode_scale(self, ev: Leaf) -> None:
        if isinstance(ev.value, int) and ev.value > 0:
            self._scale = ev.value

    # --- collapsed masters ----------------------------------------------------------------
    def _collapsed(self, ev: Leaf) -> None:
        eid = ev.id
        payload = ev.value
        if not isinstance(payload, bytes):  # pragma: no cover - collapsed masters are bytes
            return
        key = (eid, payload)
        result = self._memo.get(key)
        if result is None:
            try:
                tree = parse_elements(payload, ev.offset + ev.header_size)
            except UnknownSizeInside:
                self._stream(ev, payload)
                return
            result = _extract(eid, tree, ev.offset)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[key] = result
        if eid == ID.Tracks:
            self._tracks = result  # type: ignore[assignment]
        elif eid == ID.Info:
            if result:
                self._scale = result  # type: ignore[assignment]
        elif eid == ID.EBML:
            self._new_document(ev.offset)

    def _tags_by_template(self, payload: bytes) -> tuple[tuple[str, str], ...] | None:
        """Tags values via a matching template, else via the flat reader (recording a
        template); None if neither applies (the generic walker then runs)."""
        templates = self._templates.get(len(payload))
        if templates:
            for template in templates:
                items = template.apply(payload)
                if items is not None:
                    return items
        parsed = _fast_tags(payload)
        if parsed is None:
            return None
        items, found = parsed
        if found is not None:
            if len(self._templates) >= _MEMO_MAX:
                self._templates.clear()
            known = self._templates.setdefault(len(payload), [])
            if len(known) >= 8:
                known.pop(0)
            known.append(found)
        return items

    def _stream(self, ev: Leaf, payload: bytes) -> None:
        """Re-read a collapsed master through the event path (it holds an unknown-size
        element, whose extent only the streaming reader's nesting rule decides)."""
        nested = EbmlReader(max_element_size=self._reader.max_element_size)
        nested._base = ev.offset
        id_len = len(encode_id(ev.id))
        nested.feed(encode_id(ev.id) + encode_size(ev.size, ev.header_size - id_len) + payload)
        nested.close()
        for event in nested.events():
            self._handle(event)

    # --- fragment assembly ----------------------------------------------------------------
    def _new_document(self, offset: int) -> None:
        self._finish(offset)
        self._doc_offset = offset
        self._doc_pending = True

    def _tags_done(self, effect: _TagsEffect, end_offset: int) -> None:
        """A Tags element ended. Before any Cluster, or after the current one, its tags
        wait: the next Cluster of the Segment takes them (KVS attributes metadata to the
        fragment it precedes), else the current fragment does when its document, its
        Segment or the input ends, or when the KVS end tags arrive (GetMedia)."""
        frag = self._current
        if frag is None or (not effect.ends and not self._cluster_open):
            self._pre.append(effect)
            return
        self._apply_pending(frag)
        _apply_effect(frag, effect)
        if frag.millis_behind_now is not None and frag.continuation_token is not None:
            self._emit(end_offset)  # GetMedia's last Tags: deliver now, not at the next one

    def _apply_pending(self, frag: Fragment) -> None:
        for effect in self._pre:
            _apply_effect(frag, effect)
        self._pre = []

    def _emit(self, end_offset: int) -> None:
        frag = self._current
        if frag is not None:
            frag.end_offset = end_offset
            self._ready.append(frag)
            self._current = None

    def _finish(self, offset: int) -> None:
        """A Segment or document ends: deliver its fragment, or an error-only one."""
        if self._current is not None:
            self._apply_pending(self._current)
            self._emit(offset)
        elif any(name in _DOCUMENT_TAGS for effect in self._pre for name, _ in effect.aws):
            frag = Fragment(
                index=self._index,
                offset=self._doc_offset,
                tracks=self._tracks,
                timecode_scale_ns=self._scale,
            )
            self._index += 1
            self._apply_pending(frag)
            frag.end_offset = offset
            self._ready.append(frag)
        self._pre = []
        self._cluster_open = False


def _apply_effect(frag: Fragment, effect: _TagsEffect) -> None:
    if effect.plain:
        frag.tags.update(effect.plain)
    for name, value in effect.aws:
        try:
            if name == TAG_FRAGMENT_NUMBER:
                frag.fragment_number = value
            elif name == TAG_SERVER_TIMESTAMP:
                frag.server_timestamp_ms = parse_kvs_timestamp(value)
            elif name == TAG_PRODUCER_TIMESTAMP:
                frag.producer_timestamp_ms = parse_kvs_timestamp(value)
            elif name == TAG_MILLIS_BEHIND_NOW:
                frag.millis_behind_now = int(value)
            elif name == TAG_CONTINUATION_TOKEN:
                frag.continuation_token = value
            elif name == TAG_ERROR_CODE:
                frag.error_code = value
            elif name == TAG_ERROR_ID:
                frag.error_id = int(value)
            else:
                frag.tags[name] = value
        except ValueError:
            frag.tags[name] = value


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


def _extract(eid: int, tree: Tree, offset: int) -> object:
    """What the fragment layer keeps of a collapsed master (memoised per payload)."""
    if eid == ID.Tags:
        items: list[tuple[str, str]] = []
        for tag_id, tag in tree:
            if tag_id == ID.Tag and isinstance(tag, list):
                for sub_id, sub in tag:
                    if sub_id == ID.SimpleTag and isinstance(sub, list):
                        _simple_tag(sub, items)
        return tuple(items)
    if eid == ID.Tracks:
        tracks: dict[int, TrackInfo] = {}
        for entry_id, entry in tree:
            if entry_id == ID.TrackEntry and isinstance(entry, list):
                track = TrackInfo(number=0)
                for field_id, value in entry:
                    if isinstance(value, list):  # Audio / Video
                        for sub_id, sub in value:
                            _track_field(track, sub_id, sub)
                    else:
                        _track_field(track, field_id, value)
                if track.number == 0:
                    raise MkvError("TrackEntry without a TrackNumber", offset)
                tracks[track.number] = track
        return tracks
    if eid == ID.Info:
        scale = 1_000_000
        for field_id, value in tree:
            if field_id == ID.TimecodeScale and isinstance(value, int) and value > 0:
                scale = value
        return scale
    return _VALID


_TAG_SKIP = frozenset({ID.Targets, ID.CRC32, ID.Void})
_SIMPLE_SKIP = frozenset({ID.TagLanguage, ID.TagDefault, ID.CRC32, ID.Void})


def _fast_tags(data: bytes) -> tuple[tuple[tuple[str, str], ...], _TagTemplate | None] | None:
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
class _TagsEffect:
    """What a Tags element does to a fragment, precomputed once per distinct payload."""

    items: tuple[tuple[str, str], ...]  # all, in order (for tags seen before a Cluster)
    plain: dict[str, str]  # the producer's tags, last value winning
    aws: tuple[tuple[str, str], ...]  # the AWS_KINESISVIDEO_* ones
    ends: bool  # carries MILLIS_BEHIND_NOW / CONTINUATION_TOKEN: the fragment is complete

    @classmethod
    def of(cls, items: Sequence[tuple[str, str]]) -> _TagsEffect:
        aws = []
        plain = {}
        ends = False
        for item in items:
            name = item[0]
            if name.startswith(AWS_TAG_PREFIX):
                aws.append(item)
                ends = ends or name in _END_TAGS
            else:
                plain[name] = item[1]
        return cls(tuple(items), plain, tuple(aws), ends)


@dataclass(frozen=True, slots=True)
class _TagTemplate:
    """A parsed Tags payload with its values cut out. Another payload of the same size
    whose every byte outside the value spans matches has, element for element, the same
    tree: only the TagString values differ (KVS's per-fragment tags are like that)."""

    size: int
    pieces: tuple[tuple[int, bytes], ...]  # (offset, bytes) outside the values
    slots: tuple[tuple[str, int, int], ...]  # (name, start, end) of each value

    @classmethod
    def build(cls, data: bytes, slots: tuple[tuple[str, int, int], ...]) -> _TagTemplate:
        pieces = []
        at = 0
        for _, start, end in slots:
            pieces.append((at, data[at:start]))
            at = end
        pieces.append((at, data[at:]))
        return cls(len(data), tuple(pieces), slots)

    def apply(self, data: bytes) -> tuple[tuple[str, str], ...] | None:
        for offset, piece in self.pieces:
            if not data.startswith(piece, offset):
                return None
        return tuple(
            (name, data[a:b].rstrip(b"\x00").decode("utf-8", "replace"))
            for name, a, b in self.slots
        )


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


def iter_fragments(chunks: Iterable[bytes]) -> Iterator[Fragment]:
    """Fragments of a byte stream given as an iterable of chunks."""
    reader = FragmentReader()
    for chunk in chunks:
        yield from reader.feed(chunk)
    try:
        tail = reader.close()
    except MkvError as err:  # truncated: what arrived whole is still delivered first
        delivered, err.fragments = err.fragments, []
        yield from delivered
        raise
    yield from tail


def kvs_start_tags(
    fragment_number: str, server_timestamp_ms: int, producer_timestamp_ms: int
) -> bytes:
    """The Tags KVS puts before each Cluster in GetMedia output (4-byte sizes)."""
    return writer.tags(
        [
            (TAG_FRAGMENT_NUMBER, fragment_number),
            (TAG_SERVER_TIMESTAMP, format_kvs_timestamp(server_timestamp_ms)),
            (TAG_PRODUCER_TIMESTAMP, format_kvs_timestamp(producer_timestamp_ms)),
        ],
        size_width=4,
    )


def kvs_end_tags(millis_behind_now: int | None, continuation_token: str | None) -> bytes:
    """The Tags KVS puts after each Cluster in GetMedia output (4-byte sizes)."""
    end: list[tuple[str, str]] = []
    if millis_behind_now is not None:
        end.append((TAG_MILLIS_BEHIND_NOW, str(millis_behind_now)))
    if continuation_token is not None:
        end.append((TAG_CONTINUATION_TOKEN, continuation_token))
    return writer.tags(end, size_width=4)


def render_fragment(
    *,
    ebml_header: bytes,
    header: bytes,
    cluster: bytes,
    trailer: bytes = b"",
    fragment_number: str,
    server_timestamp_ms: int,
    producer_timestamp_ms: int,
    millis_behind_now: int | None = None,
    continuation_token: str | None = None,
) -> bytes:
    """One fragment as GetMedia serves it (kvs-wire §2.4): EBML header, unknown-size
    Segment, the producer's header elements, KVS Tags, the Cluster as ingested, the
    producer's trailing elements, then (GetMedia only) the KVS end Tags."""
    pre = kvs_start_tags(fragment_number, server_timestamp_ms, producer_timestamp_ms)
    parts = [ebml_header, writer.segment_start(), header, pre, cluster, trailer]
    if millis_behind_now is not None or continuation_token is not None:
        parts.append(kvs_end_tags(millis_behind_now, continuation_token))
    return b"".join(parts)
