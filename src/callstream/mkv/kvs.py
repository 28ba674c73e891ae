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
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from callstream.mkv import writer
from callstream.mkv.ebml import ID, MkvError
from callstream.mkv.reader import Block, EbmlReader, End, Event, Leaf, Start

__all__ = [
    "AWS_TAG_PREFIX",
    "Fragment",
    "FragmentReader",
    "Frame",
    "TrackInfo",
    "format_kvs_timestamp",
    "iter_fragments",
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
    """One frame of one track. ``timestamp_ns`` is absolute: the fragment's producer
    timestamp (or, without one, the Cluster timeline) plus the block's offset."""

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


def parse_kvs_timestamp(value: str) -> int:
    """KVS timestamp tag (epoch seconds, ``"1511852109.126"``) to integer milliseconds."""
    try:
        return int((Decimal(value.strip()) * 1000).to_integral_value())
    except InvalidOperation:
        raise ValueError(f"not a KVS timestamp: {value!r}") from None


def format_kvs_timestamp(ms: int) -> str:
    """Integer milliseconds to the KVS tag form with exactly three decimals."""
    return f"{ms // 1000}.{ms % 1000:03d}"


class FragmentReader:
    """Assembles :class:`Fragment` objects from an MKV/KVS byte stream (sans-I/O)."""

    def __init__(self, *, max_element_size: int | None = None) -> None:
        self._reader = (
            EbmlReader()
            if max_element_size is None
            else EbmlReader(max_element_size=max_element_size)
        )
        self._index = 0
        self._doc_offset = 0  # where the current EBML document (or stream) began
        self._doc_pending = True  # no Cluster of that document seen yet
        self._tracks: dict[int, TrackInfo] = {}
        self._scale = 1_000_000
        self._pre: list[tuple[str, str]] = []  # tags seen in this Segment before its Cluster
        self._current: Fragment | None = None  # the fragment whose Cluster was seen last
        self._cluster_open = False
        self._in_tags: list[tuple[str, str]] | None = None
        self._tag_name: str | None = None
        self._tag_value: str | None = None
        self._track: TrackInfo | None = None
        self._track_list: dict[int, TrackInfo] | None = None
        self._ready: list[Fragment] = []

    # --- feeding --------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Fragment]:
        """Consume bytes; return the fragments they complete."""
        self._reader.feed(data)
        return self._drain()

    def close(self) -> list[Fragment]:
        """End of input: return the remaining fragments (raises on truncated input)."""
        self._reader.close()
        out = self._drain()
        self._finish(self._reader.offset)
        out.extend(self._take())
        return out

    def _take(self) -> list[Fragment]:
        ready, self._ready = self._ready, []
        return ready

    def _drain(self) -> list[Fragment]:
        handle = self._handle
        for event in self._reader.events():
            if type(event) is Block:
                self._block(event)
            else:
                handle(event)
        return self._take()

    # --- event handling -------------------------------------------------------------------
    def _block(self, block: Block) -> None:
        frag = self._current
        if frag is None or not self._cluster_open:
            raise MkvError("block outside a Cluster", block.offset)
        if block.track not in frag.tracks:
            raise MkvError(f"frame for undeclared track {block.track}", block.offset)
        base_tc = frag.cluster_timecode or 0
        scale = frag.timecode_scale_ns
        if frag.producer_timestamp_ms is not None:
            ts = frag.producer_timestamp_ms * 1_000_000 + block.timecode * scale
        else:
            ts = (base_tc + block.timecode) * scale
        frames = frag.frames
        for data in block.frames:
            frames.append(Frame(block.track, ts, block.timecode, block.flags, data))

    def _handle(self, event: Event) -> None:
        if type(event) is Leaf:
            self._leaf(event)
        elif type(event) is Start:
            self._start(event)
        elif type(event) is End:
            self._end(event)

    def _start(self, ev: Start) -> None:
        eid = ev.id
        if eid == ID.Cluster:
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
            self._apply_tags(frag, self._pre)
            self._pre = []
            self._current = frag
            self._cluster_open = True
        elif eid == ID.Tags:
            self._in_tags = []
        elif eid == ID.SimpleTag:
            self._tag_name = None
            self._tag_value = None
        elif eid == ID.TrackEntry:
            self._track = TrackInfo(number=0)
        elif eid == ID.Tracks:
            self._track_list = {}
        elif eid == ID.Segment:
            self._finish(ev.offset)
            self._pre = []
        elif eid == ID.EBML:
            self._finish(ev.offset)
            self._doc_offset = ev.offset
            self._doc_pending = True

    def _end(self, ev: End) -> None:
        eid = ev.id
        if eid == ID.Cluster:
            self._cluster_open = False
        elif eid == ID.SimpleTag:
            if self._in_tags is not None and self._tag_name is not None:
                self._in_tags.append((self._tag_name, self._tag_value or ""))
        elif eid == ID.Tags:
            items = self._in_tags or []
            self._in_tags = None
            if self._current is not None:
                self._apply_tags(self._current, items)
                if any(name in _END_TAGS for name, _ in items):
                    self._emit(ev.offset)
            else:
                self._pre.extend(items)
        elif eid == ID.TrackEntry:
            track = self._track
            self._track = None
            if track is not None and self._track_list is not None:
                if track.number == 0:
                    raise MkvError("TrackEntry without a TrackNumber", ev.offset)
                self._track_list[track.number] = track
        elif eid == ID.Tracks:
            if self._track_list is not None:
                self._tracks = self._track_list
            self._track_list = None
        elif eid == ID.Segment:
            self._finish(ev.offset)

    def _leaf(self, ev: Leaf) -> None:
        eid = ev.id
        value = ev.value
        if eid == ID.Timecode:
            if self._current is not None and self._cluster_open and isinstance(value, int):
                self._current.cluster_timecode = value
        elif eid == ID.TagName:
            self._tag_name = str(value)
        elif eid == ID.TagString:
            self._tag_value = str(value)
        elif eid == ID.TagBinary:
            if self._tag_value is None and isinstance(value, bytes):
                self._tag_value = value.hex()
        elif eid == ID.TimecodeScale:
            if isinstance(value, int) and value > 0:
                self._scale = value
        elif self._track is not None:
            self._track_field(self._track, eid, value)

    @staticmethod
    def _track_field(track: TrackInfo, eid: int, value: int | float | str | bytes) -> None:
        if eid == ID.TrackNumber and isinstance(value, int):
            track.number = value
        elif eid == ID.TrackUID and isinstance(value, int):
            track.uid = value
        elif eid == ID.Name:
            track.name = str(value)
        elif eid == ID.CodecID:
            track.codec_id = str(value)
        elif eid == ID.CodecPrivate and isinstance(value, bytes):
            track.codec_private = value
        elif eid == ID.TrackType and isinstance(value, int):
            track.track_type = value
        elif eid == ID.SamplingFrequency and isinstance(value, float):
            track.sampling_rate = value
        elif eid == ID.Channels and isinstance(value, int):
            track.channels = value
        elif eid == ID.BitDepth and isinstance(value, int):
            track.bit_depth = value
        elif eid == ID.DefaultDuration and isinstance(value, int):
            track.default_duration_ns = value

    def _apply_tags(self, frag: Fragment, items: list[tuple[str, str]]) -> None:
        for name, value in items:
            if not name.startswith(AWS_TAG_PREFIX):
                frag.tags[name] = value
                continue
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

    def _emit(self, end_offset: int) -> None:
        frag = self._current
        if frag is not None:
            frag.end_offset = end_offset
            self._ready.append(frag)
            self._current = None

    def _finish(self, offset: int) -> None:
        """A Segment or document ends: deliver its fragment, or an error-only one."""
        if self._current is not None:
            self._emit(offset)
        elif any(name.startswith(AWS_TAG_PREFIX) for name, _ in self._pre):
            frag = Fragment(index=self._index, offset=self._doc_offset, tracks=self._tracks)
            self._index += 1
            self._apply_tags(frag, self._pre)
            frag.end_offset = offset
            self._ready.append(frag)
        self._pre = []


def iter_fragments(chunks: Iterable[bytes]) -> Iterator[Fragment]:
    """Fragments of a byte stream given as an iterable of chunks."""
    reader = FragmentReader()
    for chunk in chunks:
        yield from reader.feed(chunk)
    yield from reader.close()


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
    pre = writer.tags(
        [
            (TAG_FRAGMENT_NUMBER, fragment_number),
            (TAG_SERVER_TIMESTAMP, format_kvs_timestamp(server_timestamp_ms)),
            (TAG_PRODUCER_TIMESTAMP, format_kvs_timestamp(producer_timestamp_ms)),
        ],
        size_width=4,
    )
    parts = [ebml_header, writer.segment_start(), header, pre, cluster, trailer]
    if millis_behind_now is not None or continuation_token is not None:
        end: list[tuple[str, str]] = []
        if millis_behind_now is not None:
            end.append((TAG_MILLIS_BEHIND_NOW, str(millis_behind_now)))
        if continuation_token is not None:
            end.append((TAG_CONTINUATION_TOKEN, continuation_token))
        parts.append(writer.tags(end, size_width=4))
    return b"".join(parts)
