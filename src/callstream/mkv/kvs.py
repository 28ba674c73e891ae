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

from callstream.mkv import writer
from callstream.mkv.ebml import MkvError
from callstream.mkv.elements import ElementWalker, MkvVisitor, TagItems, TrackInfo
from callstream.mkv.reader import Block

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


_MEMO_MAX = 64
"""Distinct Tags effects remembered."""


class FragmentReader:
    """Assembles :class:`Fragment` objects from an MKV/KVS byte stream (sans-I/O).

    Frame timestamps are absolute: a fragment with a PRODUCER_TIMESTAMP tag anchors its
    Cluster Timecode there; a tagless fragment continues the timeline of the last tagged
    one (same TimecodeScale); without any tag the Cluster timeline is used as is.
    """

    def __init__(self, *, max_element_size: int | None = None) -> None:
        self._assembler = _Assembler()
        if max_element_size is None:
            self._walker = ElementWalker(self._assembler)
        else:
            self._walker = ElementWalker(self._assembler, max_element_size=max_element_size)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Fragment]:
        """Consume bytes; return the fragments they complete."""
        self._walker.feed(data)
        return self._assembler.take()

    @property
    def open_fragment(self) -> Fragment | None:
        """The fragment whose Cluster is still arriving, with its tracks, the tags that
        preceded its Cluster and the frames read so far (a live reader's low-latency view;
        :meth:`feed` returns the same object again once it completes)."""
        return self._assembler.current

    def close(self) -> list[Fragment]:
        """End of input: return the remaining fragments.

        Truncated input raises :class:`MkvError`; its ``fragments`` attribute holds the
        fragments that were still delivered, the cut one last (its frames are those that
        arrived whole), so a saved capture that was cut off loses nothing it contains.
        """
        asm = self._assembler
        try:
            self._walker.close()
        except MkvError as err:
            out = asm.take()
            if asm.current is not None and asm.current.frames:
                asm.apply_pending(asm.current)
                asm.emit(self._walker.offset)
                out.extend(asm.take())
            err.fragments = out
            raise
        asm.finish(self._walker.offset)
        return asm.take()


class _Assembler(MkvVisitor):
    """The fragment layer proper: turns the walker's facts into :class:`Fragment` objects."""

    def __init__(self) -> None:
        self._index = 0
        self._doc_offset = 0  # where the current EBML document (or stream) began
        self._doc_pending = True  # no Cluster of that document seen yet
        self._tracks: dict[int, TrackInfo] = {}
        self._entries: tuple[TrackInfo, ...] | None = None  # what ``_tracks`` was made of
        self._scale = 1_000_000
        # Tags not yet attributed: seen in this Segment before a Cluster, or after the
        # current fragment's Cluster (they belong to the next Cluster if one follows).
        self._pre: list[_TagsEffect] = []
        self.current: Fragment | None = None  # the fragment whose Cluster was seen last
        self._cluster_open = False
        self._cstart: int | None = None  # absolute ns of the open Cluster's Timecode
        self._origin: tuple[int, int] | None = None  # (ns at Timecode 0, scale), last tagged
        self._ready: list[Fragment] = []
        self._effects: dict[TagItems, _TagsEffect] = {}

    def take(self) -> list[Fragment]:
        ready, self._ready = self._ready, []
        return ready

    # --- facts ----------------------------------------------------------------------------
    def ebml_header(self, offset: int, end: int) -> None:
        self.finish(offset)
        self._doc_offset = offset
        self._doc_pending = True

    def segment_start(self, offset: int, data_offset: int) -> None:
        self.finish(offset)
        self._scale = 1_000_000

    def segment_end(self, offset: int) -> None:
        self.finish(offset)

    def timecode_scale(self, scale: int) -> None:
        self._scale = scale

    def tracks(self, entries: tuple[TrackInfo, ...], offset: int, end: int) -> None:
        if entries is self._entries:
            return
        tracks: dict[int, TrackInfo] = {}
        for track in entries:
            if track.number == 0:
                raise MkvError("TrackEntry without a TrackNumber", offset)
            tracks[track.number] = track
        self._tracks = tracks
        self._entries = entries

    def tags(self, items: TagItems, offset: int, end: int, depth: int) -> None:
        """A Tags element ended. Before any Cluster, or after the current one, its tags
        wait: the next Cluster of the Segment takes them (KVS attributes metadata to the
        fragment it precedes), else the current fragment does when its document, its
        Segment or the input ends, or when the KVS end tags arrive (GetMedia)."""
        effect = self._effects.get(items)
        if effect is None:
            effect = _TagsEffect.of(items)
            if not effect.aws:  # KVS tags are new every fragment: not worth keeping
                if len(self._effects) >= _MEMO_MAX:
                    self._effects.clear()
                self._effects[items] = effect
        frag = self.current
        if frag is None or (not effect.ends and not self._cluster_open):
            self._pre.append(effect)
            return
        if self._pre:
            self.apply_pending(frag)
        _apply_effect(frag, effect)
        if frag.millis_behind_now is not None and frag.continuation_token is not None:
            self.emit(end)  # GetMedia's last Tags: deliver now, not at the next one

    def cluster_start(self, offset: int, depth: int) -> None:
        if self.current is not None:
            self.emit(offset)
        frag = Fragment(
            index=self._index,
            offset=self._doc_offset if self._doc_pending else offset,
            tracks=self._tracks,
            timecode_scale_ns=self._scale,
        )
        self._doc_pending = False
        self._index += 1
        self.apply_pending(frag)
        self.current = frag
        self._cluster_open = True
        self._cstart = None

    def cluster_timecode(self, timecode: int, offset: int) -> None:
        frag = self.current
        if frag is not None and self._cluster_open:
            frag.cluster_timecode = timecode
            self._cluster_time(frag, timecode)

    def cluster_end(self, offset: int, depth: int) -> None:
        self._cluster_open = False

    def block_run(self, flat: list[int | bytes]) -> None:
        frames, tracks, start, scale = self._block_context(flat[0])  # type: ignore[arg-type]
        if len(flat) <= 10:  # a block or two (a live stream): a loop is cheaper
            for i in range(0, len(flat), 5):
                track: int = flat[i + 1]  # type: ignore[assignment]
                if track not in tracks:
                    raise MkvError(f"frame for undeclared track {track}", flat[i])  # type: ignore[arg-type]
                tc: int = flat[i + 2]  # type: ignore[assignment]
                frames.append(Frame(track, start + tc * scale, tc, flat[i + 3], flat[i + 4]))  # type: ignore[arg-type]
            return
        # Column by column: the run's frames are made by C loops, not a Python one.
        numbers: list[int] = flat[1::5]  # type: ignore[assignment]
        if not tracks.keys() >= set(numbers):
            for i, number in enumerate(numbers):
                if number not in tracks:
                    raise MkvError(f"frame for undeclared track {number}", flat[5 * i])  # type: ignore[arg-type]
        timecodes: list[int] = flat[2::5]  # type: ignore[assignment]
        stamps = map(start.__add__, map(scale.__mul__, timecodes))
        frames.extend(map(Frame, numbers, stamps, timecodes, flat[3::5], flat[4::5]))  # type: ignore[arg-type]

    def block(self, block: Block) -> None:
        frames, tracks, start, scale = self._block_context(block.offset)
        track = block.track
        if track not in tracks:
            raise MkvError(f"frame for undeclared track {track}", block.offset)
        tc = block.timecode
        ts = start + tc * scale
        flags = block.flags
        for data in block.frames:
            frames.append(Frame(track, ts, tc, flags, data))

    # --- assembly -------------------------------------------------------------------------
    def _block_context(self, offset: int) -> tuple[list[Frame], dict[int, TrackInfo], int, int]:
        frag = self.current
        if frag is None or not self._cluster_open:
            raise MkvError("block outside a Cluster", offset)
        start = self._cstart
        if start is None:  # no Timecode before the first block: take it as 0
            start = self._cluster_time(frag, 0)
        return frag.frames, frag.tracks, start, frag.timecode_scale_ns

    def _cluster_time(self, frag: Fragment, timecode: int) -> int:
        """Absolute ns of a Cluster Timecode (see :class:`FragmentReader`)."""
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

    def apply_pending(self, frag: Fragment) -> None:
        tags = frag.tags
        for effect in self._pre:
            if effect.aws:
                _apply_effect(frag, effect)
            else:
                tags.update(effect.plain)
        self._pre = []

    def emit(self, end_offset: int) -> None:
        frag = self.current
        if frag is not None:
            frag.end_offset = end_offset
            self._ready.append(frag)
            self.current = None

    def finish(self, offset: int) -> None:
        """A Segment or document ends: deliver its fragment, or an error-only one."""
        if self.current is not None:
            self.apply_pending(self.current)
            self.emit(offset)
        elif self._pre and any(
            name in _DOCUMENT_TAGS for effect in self._pre for name, _ in effect.aws
        ):
            frag = Fragment(
                index=self._index,
                offset=self._doc_offset,
                tracks=self._tracks,
                timecode_scale_ns=self._scale,
            )
            self._index += 1
            self.apply_pending(frag)
            frag.end_offset = offset
            self._ready.append(frag)
        self._pre = []
        self._cluster_open = False


def _apply_effect(frag: Fragment, effect: _TagsEffect) -> None:
    if effect.plain:
        frag.tags.update(effect.plain)
    for name, value in effect.aws:
        known = _AWS_FIELDS.get(name)
        if known is None:
            frag.tags[name] = value
            continue
        try:
            setattr(frag, known[0], known[1](value))
        except ValueError:
            frag.tags[name] = value


_AWS_FIELDS: dict[str, tuple[str, Callable[[str], object]]] = {
    TAG_FRAGMENT_NUMBER: ("fragment_number", str),
    TAG_SERVER_TIMESTAMP: ("server_timestamp_ms", lambda value: parse_kvs_timestamp(value)),
    TAG_PRODUCER_TIMESTAMP: ("producer_timestamp_ms", lambda value: parse_kvs_timestamp(value)),
    TAG_MILLIS_BEHIND_NOW: ("millis_behind_now", int),
    TAG_CONTINUATION_TOKEN: ("continuation_token", str),
    TAG_ERROR_CODE: ("error_code", str),
    TAG_ERROR_ID: ("error_id", int),
}
"""KVS tags that fill a :class:`Fragment` field: (field, parser; ValueError keeps it a tag).
The timestamp parser is looked up when called (the fuzz tests swap it)."""


@dataclass(slots=True)
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
