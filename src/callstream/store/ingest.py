"""PutMedia ingest as a sans-I/O state machine.

A PutMedia body is one MKV stream: EBML header, one Segment, header elements (Info,
Tracks, Tags ...), then Clusters; each Cluster is a KVS fragment. :class:`IngestSession`
takes the body bytes as they arrive and returns events; the HTTP handler turns them into
acks, live bytes for waiting GetMedia readers, and stored fragments.

Byte layout kept for GetMedia (kvs-wire §2.4, §2.6):

* ``lead``: Tags before any other Segment child (fragment metadata put before the first
  frame) belong to the first fragment only;
* ``header``: the Segment children from the first non-Tags element up to the first
  Cluster, re-emitted in front of every fragment;
* each Cluster byte for byte as ingested;
* ``trailer``: whatever follows a Cluster up to the next Cluster (producer metadata Tags
  for the next fragment, Cues at the end) is served after that Cluster, as KVS does.

Validation follows the PutMedia error table; a rejected fragment is dropped with an
ERROR event and never touches what is stored. Malformed MKV is fatal for the connection.

Time range. The store keeps times as signed 64-bit integers, and MKV consumers (the KVS
parser library's ``long``, ffmpeg's ``int64_t``) hold a timestamp in nanoseconds: a
fragment is accepted only if its producer timestamp (Cluster Timecode x TimecodeScale,
plus the start timestamp for RELATIVE timecodes) and the time of each of its frames lie
in ``0 .. 2**63 - 1`` ns (up to the year 2262); :data:`MAX_TIMESTAMP_NS`. A fragment
outside it is refused with ``INVALID_PRODUCER_TIMESTAMP`` (4007): KVS documents 4007 as
"Invalid producer timestamp" and returns it for producer clocks far in the future, which
is what such a value is; ``INVALID_MKV_DATA`` (4006) would be wrong, the MKV parses. The
error is for that fragment only, not fatal, as KVS's other per-fragment timestamp error
(4004, FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS) is: the producer's next Cluster may carry a
valid timecode, and the refused one never becomes "the previous fragment".
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from callstream.mkv.ebml import ID, MkvError
from callstream.mkv.elements import ElementWalker, MkvVisitor, TagItems, TrackInfo
from callstream.mkv.kvs import AWS_TAG_PREFIX
from callstream.mkv.reader import Block

__all__ = [
    "MAX_TIMESTAMP_NS",
    "ClusterBytes",
    "FragmentOpened",
    "FragmentReady",
    "FragmentReceived",
    "IngestError",
    "IngestEvent",
    "IngestLimits",
    "IngestSession",
]

MAX_TIMESTAMP_NS = (1 << 63) - 1
"""Latest producer time (epoch ns) of a fragment or frame that ingest accepts."""


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """PutMedia limits (kvs-wire §5)."""

    max_fragment_bytes: int = 50 * 1024 * 1024
    max_fragment_duration_ms: int = 10_000
    max_tracks: int = 3
    max_metadata_items: int = 10
    max_metadata_name: int = 128
    max_metadata_value: int = 256


@dataclass(slots=True)
class FragmentOpened:
    """A Cluster's Timecode arrived: assign a fragment number, ack BUFFERING."""

    seq: int  # ingest-local counter
    timecode: int  # raw Cluster Timecode, echoed in acks
    producer_timestamp_ms: int
    ebml_header: bytes
    prefix: bytes  # lead (first fragment) + header: what precedes the Cluster in its Segment


@dataclass(slots=True)
class ClusterBytes:
    """More bytes of the open Cluster (complete elements only), for live readers."""

    seq: int
    data: bytes


@dataclass(slots=True)
class FragmentReceived:
    """The Cluster is complete: ack RECEIVED."""

    seq: int
    timecode: int


@dataclass(slots=True)
class FragmentReady:
    """The fragment and the elements that follow it are complete: store it."""

    seq: int
    timecode: int
    producer_timestamp_ms: int
    duration_ms: int
    ebml_header: bytes
    header: bytes
    cluster: bytes
    trailer: bytes
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class IngestError:
    """A fragment (or the whole body, if ``fatal``) is rejected: ack ERROR."""

    code: str  # PutMedia ErrorCode name, e.g. FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS
    message: str
    timecode: int | None
    seq: int | None
    fatal: bool = False


IngestEvent = FragmentOpened | ClusterBytes | FragmentReceived | FragmentReady | IngestError


@dataclass(slots=True)
class _Cluster:
    seq: int
    start: int  # absolute offset of the Cluster element
    timecode: int | None = None
    end: int | None = None
    sent: int = 0  # absolute offset up to which ClusterBytes were emitted
    first_ns: int | None = None
    last_ns: int | None = None
    error: IngestError | None = None
    opened: bool = False
    metadata: list[tuple[str, str]] = field(default_factory=list)
    carry: bytes = b""  # elements that arrived after the previous fragment was flushed


_TRIM_AT = 65536  # raw bytes no longer needed are dropped in steps of at least this


class _Spool:
    """The body bytes still needed, kept as the chunks they arrived in: appending copies
    nothing (a growing bytearray copies itself over and over), and a slice is cut from
    the chunks it spans. Runs of tiny chunks are merged, so that a producer sending
    bytes one at a time costs memory in proportion to the bytes, not the chunks."""

    __slots__ = ("_chunks", "_starts", "end")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._starts: list[int] = []  # absolute offset of each chunk
        self.end = 0  # absolute offset after the last byte appended

    def append(self, data: bytes) -> None:
        self._chunks.append(data)
        self._starts.append(self.end)
        self.end += len(data)
        if len(self._chunks) > 64 and len(self._chunks) * 256 > self.end - self._starts[0]:
            start = self._starts[0]
            self._chunks = [b"".join(self._chunks)]
            self._starts = [start]

    def slice(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (absolute offsets, still held)."""
        if end <= start:
            return b""
        starts, chunks = self._starts, self._chunks
        i = bisect_right(starts, start) - 1
        first = chunks[i]
        lo = start - starts[i]
        if end - starts[i] <= len(first):
            return first[lo : end - starts[i]]
        parts = [first[lo:]]
        i += 1
        while end - starts[i] > len(chunks[i]):
            parts.append(chunks[i])
            i += 1
        parts.append(chunks[i][: end - starts[i]])
        return b"".join(parts)

    def drop_before(self, keep: int) -> None:
        """Forget whole chunks that end at or before ``keep``."""
        starts = self._starts
        n = bisect_right(starts, keep) - 1  # the chunk holding ``keep`` stays
        if n > 0:
            del self._chunks[:n], starts[:n]

    @property
    def start(self) -> int:
        """Absolute offset of the first byte held."""
        return self._starts[0] if self._starts else self.end


class IngestSession:
    """Turns one PutMedia body into :data:`IngestEvent` objects."""

    def __init__(
        self,
        *,
        timecode_type: str = "ABSOLUTE",
        producer_start_ms: int = 0,
        limits: IngestLimits | None = None,
        last_timestamp_ns: int | None = None,
    ) -> None:
        self.relative = timecode_type.upper() == "RELATIVE"
        self.producer_start_ms = producer_start_ms
        self._offset_ns = producer_start_ms * 1_000_000 if self.relative else 0
        self.limits = limits or IngestLimits()
        self._walker = ElementWalker(
            _IngestFacts(self), max_element_size=self.limits.max_fragment_bytes
        )
        self._out: list[IngestEvent] = []  # what the current feed/close call returns
        self._raw = _Spool()
        self._ebml: tuple[int, int] | None = None
        self._ebml_header = b""
        self._segment_seen = False
        self._segment_data = 0  # offset where Segment children begin
        self._lead_end: int | None = None  # end of leading Tags
        self._header: bytes | None = None
        self._lead = b""
        self._scale = 1_000_000
        self._tracks: set[int] = set()
        self._cluster: _Cluster | None = None
        self._done: _Cluster | None = None  # complete Cluster waiting for its trailer
        self._seq = 0
        self._pending_metadata: list[tuple[str, str]] = []
        self._last_ns = last_timestamp_ns
        self._failed = False
        self._carry_start: int | None = None  # set by flush(): start of the next prefix
        self._child_end = 0  # end of the last complete element directly inside the Segment

    # --- input ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[IngestEvent]:
        """Consume body bytes; return the events they complete."""
        if self._failed or not data:
            return []
        data = bytes(data)
        self._raw.append(data)
        c = self._cluster
        if c is None or not c.opened or c.error is not None:
            return self._run(self._walker.feed, data)
        # The steady state of a live upload: whole frames of an open Cluster, checked
        # without a round of reader events.
        out = self._out = []
        try:
            self._walker.feed_blocks(data)
        except MkvError as err:
            return self._fatal(err, out)
        return self._live(out, data)

    def close(self) -> list[IngestEvent]:
        """The body ended: flush the last fragment."""
        if self._failed:
            return []
        done = self._done
        out = self._run(self._close_walker, b"")
        offset = self._walker.offset
        if self._failed and done is not None and self._done is done:
            # The input ended badly after a complete Cluster: that fragment still counts.
            out[:0] = self._finish_done(offset)
        if self._failed:
            return out
        out.extend(self._finish_done(offset))
        return out

    def flush(self) -> list[IngestEvent]:
        """The producer paused after a complete Cluster: store that fragment now with the
        trailer received so far. Elements that arrive later, before the next Cluster, are
        served in front of that Cluster instead of after this one."""
        if self._failed or self._done is None:
            return []
        # Up to the last complete element: one still arriving goes with the next Cluster.
        end = max(self._done.end or 0, self._child_end)
        out = self._finish_done(end)
        self._carry_start = end
        return out

    @property
    def awaiting_trailer(self) -> bool:
        """A complete Cluster is waiting for what follows it (see :meth:`flush`)."""
        return self._done is not None and not self._failed

    @property
    def last_timestamp_ns(self) -> int | None:
        """Time of the last frame of the last accepted fragment (for the next connection)."""
        return self._last_ns

    @property
    def failed(self) -> bool:
        """A fatal error ended this session."""
        return self._failed

    # --- core -----------------------------------------------------------------------------
    def _close_walker(self, data: bytes) -> None:
        self._walker.close()

    def _run(self, step: Callable[[bytes], None], data: bytes) -> list[IngestEvent]:
        """Run one walker step on ``data``; the callbacks of :class:`_IngestFacts` add
        their events to ``self._out``. Then the open Cluster's new bytes go live."""
        out = self._out = []
        try:
            step(data)
        except MkvError as err:
            return self._fatal(err, out)
        return self._live(out, data)

    def _fatal(self, err: MkvError, out: list[IngestEvent]) -> list[IngestEvent]:
        self._failed = True
        c = self._cluster
        out.append(
            IngestError(
                "MORE_THAN_ALLOWED_TRACKS_FOUND"
                if isinstance(err, _TooManyTracks)
                else "INVALID_MKV_DATA",
                str(err),
                c.timecode if c else None,
                c.seq if c else None,
                fatal=True,
            )
        )
        return out

    def _live(self, out: list[IngestEvent], data: bytes) -> list[IngestEvent]:
        """The open Cluster's new bytes (``data`` was just fed) go to live readers."""
        c = self._cluster
        if c is not None and c.opened and c.error is None:
            upto = self._walker.offset
            if upto > c.sent:
                raw = self._raw
                whole = c.sent == raw.end - len(data) and upto == raw.end
                out.append(ClusterBytes(c.seq, data if whole else self._slice(c.sent, upto)))
                c.sent = upto
        if self._raw.end - self._raw.start > _TRIM_AT:
            self._trim()
        return out

    def _slice(self, start: int, end: int) -> bytes:
        return self._raw.slice(start, end)

    def _trim(self) -> None:
        """Drop raw bytes nothing will need again (bounded memory)."""
        keep = self._walker.offset
        for c in (self._done, self._cluster):
            if c is not None:
                keep = min(keep, c.start)
        if self._header is None:
            keep = min(keep, self._ebml[0] if self._ebml else 0)
        if self._carry_start is not None:
            keep = min(keep, self._carry_start)
        if keep - self._raw.start > _TRIM_AT:
            self._raw.drop_before(keep)

    # --- what the walker reports (through _IngestFacts) -----------------------------------
    def _on_ebml_header(self, offset: int, end: int) -> None:
        if self._ebml is not None:
            raise MkvError("more than one EBML document in one PutMedia body", offset)
        self._ebml = (offset, end)
        self._ebml_header = self._slice(offset, end)

    def _on_segment_start(self, offset: int, data_offset: int) -> None:
        if self._segment_seen:
            raise MkvError("more than one Segment in one PutMedia body", offset)
        self._segment_seen = True
        self._segment_data = data_offset

    def _on_child(self, eid: int, offset: int, end: int, master: bool) -> None:
        self._child_end = end
        if master and eid != ID.Tags and self._header is None and self._lead_end is None:
            self._lead_end = offset  # first non-Tags child: the header starts here

    def _on_tags(self, items: TagItems, depth: int) -> None:
        # Fragment metadata: Tags before every other header element (PIC puts metadata
        # for the first fragment there) or after the first Cluster. Tags inside the
        # header (a muxer's global tags) are part of the header, not metadata.
        if depth == 1 and not (self._header is None and self._lead_end is not None):
            self._pending_metadata.extend(i for i in items if not i[0].startswith(AWS_TAG_PREFIX))

    def _on_tracks(self, entries: tuple[TrackInfo, ...], offset: int, end: int) -> None:
        numbers = [t.number for t in entries if t.number]
        if numbers and self._header is not None:
            raise MkvError("Tracks after the first Cluster", offset)
        self._tracks.update(numbers)
        if len(self._tracks) > self.limits.max_tracks:
            n, most = len(self._tracks), self.limits.max_tracks
            raise _TooManyTracks(f"{n} tracks (at most {most})", end)

    def _on_timecode_scale(self, scale: int) -> None:
        self._scale = scale

    def _on_cluster_start(self, offset: int) -> None:
        if self._header is None:
            lead_end = self._lead_end if self._lead_end is not None else self._segment_data
            self._lead = self._slice(self._segment_data, lead_end)
            self._header = self._slice(lead_end, offset)
        self._out.extend(self._finish_done(offset))
        self._seq += 1
        self._cluster = _Cluster(self._seq, offset, sent=offset)
        if self._carry_start is not None:
            self._cluster.carry = self._slice(self._carry_start, offset)
            self._carry_start = None
        self._cluster.metadata = self._pending_metadata
        self._pending_metadata = []

    def _on_cluster_timecode(self, timecode: int) -> None:
        if self._cluster is not None:
            self._open(self._cluster, timecode, self._out)

    def _on_cluster_end(self, offset: int) -> None:
        c = self._cluster
        if c is None:
            return
        out = self._out
        c.end = offset
        if not c.opened and c.error is None:
            self._reject(c, "INVALID_MKV_DATA", "Cluster without a Timecode", out)
        if c.error is None:
            if c.end - c.start > self.limits.max_fragment_bytes:
                self._reject(c, "MAX_FRAGMENT_SIZE_REACHED", "fragment exceeds 50 MB", out)
            else:
                if c.end > c.sent:
                    out.append(ClusterBytes(c.seq, self._slice(c.sent, c.end)))
                    c.sent = c.end
                out.append(FragmentReceived(c.seq, c.timecode or 0))
        self._done = c
        self._cluster = None

    def _on_blocks(self, flat: list[int | bytes]) -> None:
        """Blocks of the open Cluster, five items each as in ``BlockRun.flat``."""
        c = self._cluster
        if c is None:  # pragma: no cover - the walker reports blocks inside a Cluster only
            raise MkvError("block outside a Cluster", flat[0])  # type: ignore[arg-type]
        if c.error is not None:
            return
        if not c.opened and flat[1] in self._tracks:
            self._open(c, 0, self._out)
        self._frames(c, flat, self._out)

    def _open(self, c: _Cluster, timecode: int, out: list[IngestEvent]) -> None:
        if c.opened:
            return
        c.timecode = timecode
        c.opened = True
        start_ns = timecode * self._scale + self._offset_ns
        if not 0 <= start_ns <= MAX_TIMESTAMP_NS:
            self._reject(
                c,
                "INVALID_PRODUCER_TIMESTAMP",
                f"producer timestamp {start_ns // 1_000_000} ms (Cluster Timecode {timecode} x "
                f"TimecodeScale {self._scale} ns) is outside 0 .. {MAX_TIMESTAMP_NS} ns",
                out,
            )
            return
        producer_ms = start_ns // 1_000_000
        meta = c.metadata
        lim = self.limits
        if len(meta) > lim.max_metadata_items or any(
            len(n.encode()) > lim.max_metadata_name or len(v.encode()) > lim.max_metadata_value
            for n, v in meta
        ):
            self._reject(c, "FRAGMENT_METADATA_LIMIT_REACHED", "fragment metadata over limits", out)
            return
        prefix = self._prefix(c)
        out.append(FragmentOpened(c.seq, timecode, producer_ms, self._ebml_header, prefix))

    def _frames(self, c: _Cluster, run: list[int | bytes], out: list[IngestEvent]) -> None:
        """Check the blocks of ``run`` (flat, as ``BlockRun.flat``) against the limits;
        the first one that breaks a limit rejects the fragment."""
        tracks = self._tracks
        scale = self._scale
        offset_ns = self._offset_ns
        lim = self.limits
        max_ns = lim.max_fragment_duration_ms * 1_000_000
        for i in range(0, len(run), 5):
            if c.error is not None:
                return
            track = run[i + 1]
            if track not in tracks:  # an int: scan_blocks and Block give ints
                self._reject(
                    c, "TRACK_NUMBER_MISMATCH", f"frame for undeclared track {track!s}", out
                )
                return
            # Compared on the absolute producer timeline, so that a RELATIVE producer that
            # reconnects (timecodes restart at 0 with a new start timestamp) stays in order.
            ts = ((c.timecode or 0) + run[i + 2]) * scale + offset_ns  # type: ignore[operator]
            if c.first_ns is None:
                c.first_ns = ts
                if self._last_ns is not None and ts <= self._last_ns:
                    self._reject(
                        c,
                        "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
                        "fragment starts before the end of the previous one",
                        out,
                    )
                    return
            if c.last_ns is None or ts > c.last_ns:
                if ts > MAX_TIMESTAMP_NS:
                    self._reject(
                        c,
                        "INVALID_PRODUCER_TIMESTAMP",
                        f"frame timestamp {ts} ns is after {MAX_TIMESTAMP_NS} ns",
                        out,
                    )
                    return
                c.last_ns = ts
            if c.last_ns - c.first_ns >= max_ns + 1_000_000:
                self._reject(
                    c, "MAX_FRAGMENT_DURATION_REACHED", "fragment longer than allowed", out
                )
                return
            if run[i] - c.start > lim.max_fragment_bytes:  # type: ignore[operator]
                self._reject(c, "MAX_FRAGMENT_SIZE_REACHED", "fragment exceeds 50 MB", out)
                return

    def _reject(self, c: _Cluster, code: str, message: str, out: list[IngestEvent]) -> None:
        c.error = IngestError(code, message, c.timecode, c.seq)
        out.append(c.error)

    def _prefix(self, c: _Cluster) -> bytes:
        return (self._lead if c.seq == 1 else b"") + (self._header or b"") + c.carry

    def _finish_done(self, end: int) -> list[IngestEvent]:
        """The complete Cluster's trailer ends at ``end``: emit it for storage."""
        c = self._done
        if c is None:
            return []
        self._done = None
        if c.error is not None or c.end is None:
            return []
        first = c.first_ns or 0
        last = c.last_ns or first
        self._last_ns = last
        tc = c.timecode or 0
        tc_ms = tc * self._scale // 1_000_000
        producer_ms = self.producer_start_ms + tc_ms if self.relative else tc_ms
        return [
            FragmentReady(
                seq=c.seq,
                timecode=tc,
                producer_timestamp_ms=producer_ms,
                duration_ms=(last - first) // 1_000_000,
                ebml_header=self._ebml_header,
                header=self._prefix(c),
                cluster=self._slice(c.start, c.end),
                trailer=self._slice(c.end, end),
                metadata=dict(c.metadata),
            )
        ]


class _TooManyTracks(MkvError):
    pass


class _IngestFacts(MkvVisitor):
    """Hands what the element walker finds to the session."""

    def __init__(self, session: IngestSession) -> None:
        self._session = session
        self.block_run = session._on_blocks  # type: ignore[method-assign]  # (hot: no hop)

    def ebml_header(self, offset: int, end: int) -> None:
        self._session._on_ebml_header(offset, end)

    def segment_start(self, offset: int, data_offset: int) -> None:
        self._session._on_segment_start(offset, data_offset)

    def child(self, eid: int, offset: int, end: int, master: bool) -> None:
        self._session._on_child(eid, offset, end, master)

    def timecode_scale(self, scale: int) -> None:
        self._session._on_timecode_scale(scale)

    def tracks(self, entries: tuple[TrackInfo, ...], offset: int, end: int) -> None:
        self._session._on_tracks(entries, offset, end)

    def tags(self, items: TagItems, offset: int, end: int, depth: int) -> None:
        self._session._on_tags(items, depth)

    def cluster_start(self, offset: int, depth: int) -> None:
        self._session._on_cluster_start(offset)

    def cluster_timecode(self, timecode: int, offset: int) -> None:
        self._session._on_cluster_timecode(timecode)

    def cluster_end(self, offset: int, depth: int) -> None:
        self._session._on_cluster_end(offset)

    def block(self, block: Block) -> None:
        self._session._on_blocks([block.offset, block.track, block.timecode, block.flags, b""])
