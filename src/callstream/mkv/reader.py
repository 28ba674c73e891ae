"""Sans-I/O streaming EBML/Matroska reader.

Feed bytes as they arrive, in chunks of any size, and iterate events::

    reader = EbmlReader()
    for chunk in source:
        reader.feed(chunk)
        for event in reader.events():
            ...
    reader.close()
    for event in reader.events():   # the ends of unknown-size masters still open
        ...

Events carry absolute byte offsets into the stream, so a caller that keeps the raw
bytes (the PutMedia ingest does) can cut exact element ranges out of it.

Guarantees: every byte is looked at once (nothing is re-parsed); only a leaf element
is ever buffered whole, and never one larger than ``max_element_size``; masters
(Segment, Cluster, ...) are streamed, known or unknown size. Malformed input raises
:class:`~callstream.mkv.ebml.MkvError` naming the byte offset. The reader never
allocates by a size read from the input.
"""

from __future__ import annotations

import operator
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from callstream.mkv.ebml import (
    ELEMENTS,
    GLOBAL_PARENTS,
    ID,
    SIZE_MASK,
    UNKNOWN_SIZE,
    VINT_LENGTH,
    Kind,
    MkvError,
    decode_value,
    element_name,
)

__all__ = [
    "Block",
    "BlockRun",
    "EbmlReader",
    "End",
    "Event",
    "Leaf",
    "Start",
    "parse_block",
    "parse_elements",
    "scan_blocks",
]

DEFAULT_MAX_ELEMENT_SIZE = 64 * 1024 * 1024
"""Largest leaf element buffered whole (KVS caps a fragment at 50 MB)."""

DEFAULT_MAX_COLLAPSE_SIZE = 1024 * 1024
"""Largest master delivered whole when its ID is in ``collapse``; bigger ones stream."""

_MAX_DEPTH = 32


@dataclass(slots=True)
class Start:
    """A master element begins; ``size`` is :data:`UNKNOWN_SIZE` for live masters."""

    id: int
    offset: int
    header_size: int
    size: int

    @property
    def name(self) -> str:
        return element_name(self.id)


@dataclass(slots=True)
class End:
    """A master element ends; ``offset`` is the first byte after it."""

    id: int
    offset: int

    @property
    def name(self) -> str:
        return element_name(self.id)


@dataclass(slots=True)
class Leaf:
    """A leaf element with its decoded value (int, float, str or bytes)."""

    id: int
    offset: int
    header_size: int
    size: int
    value: int | float | str | bytes

    @property
    def name(self) -> str:
        return element_name(self.id)


@dataclass(slots=True)
class Block:
    """A SimpleBlock (or a Block inside a BlockGroup), header decoded, lacing undone."""

    offset: int  # of the element header
    track: int
    timecode: int  # signed, relative to the Cluster Timecode
    flags: int
    frames: tuple[bytes, ...]
    simple: bool = True

    @property
    def keyframe(self) -> bool:
        return bool(self.flags & 0x80)


@dataclass(slots=True)
class BlockRun:
    """Consecutive unlaced SimpleBlocks of one Cluster. ``flat`` holds five items per
    block: ``offset, track, timecode, flags, payload, offset, ...`` (flat, so a block adds
    no object for the garbage collector to track); :meth:`blocks` pairs them up.
    Only with ``EbmlReader(batch_blocks=True)``; other blocks still come as :class:`Block`.
    """

    flat: list[int | bytes]

    def blocks(self) -> Iterator[tuple[int, int, int, int, bytes]]:
        """``(offset, track, timecode, flags, payload)`` per block."""
        it = iter(self.flat)
        return zip(it, it, it, it, it, strict=True)  # type: ignore[arg-type]


Event = Start | End | Leaf | Block | BlockRun

START, END, LEAF, RUN, BLOCK = range(5)
"""Codes of the raw events (see :meth:`EbmlReader._raw_events`)."""
RawEvent = tuple[Any, ...]

_Row = tuple[Kind, tuple[int, ...], bool]  # kind, parents, delivered whole
_ROWS: dict[frozenset[int], dict[int, _Row]] = {}


def _rows_for(collapse: frozenset[int]) -> dict[int, _Row]:
    """The element table as the reader consults it, per set of collapsed masters."""
    rows = _ROWS.get(collapse)
    if rows is None:
        if len(_ROWS) >= 16:
            _ROWS.clear()
        rows = _ROWS[collapse] = {
            eid: (spec.kind, spec.parents, eid in collapse) for eid, spec in ELEMENTS.items()
        }
    return rows


_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_BLOCK_HEAD_1 = struct.Struct(">BBBhB")  # SimpleBlock ID, 1-byte size, track, tc, flags
_BLOCK_HEAD_2 = struct.Struct(">BHBhB")  # the same with a 2-byte size
_SIMPLE_BLOCK = ID.SimpleBlock
_BLOCK = ID.Block
_CLUSTER = ID.Cluster
_ID_LENGTH = tuple(n if n <= 4 else 0 for n in VINT_LENGTH)
"""Length of an element ID by its first byte; 0 where no ID can start (IDs are 1-4 bytes)."""
_UNKNOWN = UNKNOWN_SIZE


class EbmlReader:
    """Push parser producing :data:`Event` objects from a byte stream.

    ``max_element_size`` bounds what is ever buffered whole: a leaf (or block) that
    declares more raises :class:`MkvError` before any byte of it is buffered.

    ``collapse`` lists master IDs to deliver whole: such a master of known size up to
    ``max_collapse_size`` bytes comes as one :class:`Leaf` whose ``value`` is its raw
    payload (walk it with :func:`parse_elements`) instead of Start/children/End. The
    decision depends only on the element header, so it is the same however the input is
    chunked. Larger or unknown-size ones stream as usual.

    ``batch_blocks`` delivers runs of plain SimpleBlocks (unlaced, track < 127) as one
    :class:`BlockRun` instead of one :class:`Block` each (the fragment layer's hot path).
    """

    def __init__(
        self,
        *,
        max_element_size: int = DEFAULT_MAX_ELEMENT_SIZE,
        collapse: Iterable[int] = (),
        max_collapse_size: int = DEFAULT_MAX_COLLAPSE_SIZE,
        batch_blocks: bool = False,
    ) -> None:
        if max_element_size < 0:
            raise ValueError("max_element_size must be >= 0")
        self.max_element_size = max_element_size
        self.collapse = frozenset(collapse)
        self.max_collapse_size = min(max_collapse_size, max_element_size)
        self.batch_blocks = batch_blocks
        self._rows = _rows_for(self.collapse)
        self._buf = b""
        self._pos = 0
        self._base = 0  # absolute offset of self._buf[0]
        self._chunks: deque[bytes] = deque()
        self._skip = 0  # bytes of self._chunks[0] already taken into self._buf
        self._pending = 0  # bytes in self._chunks not yet taken
        # Open masters: (id, absolute end offset or UNKNOWN_SIZE, limit). ``limit`` is the
        # end of the nearest known-size master among it and its ancestors (UNKNOWN_SIZE if
        # none): an unknown-size master also ends where a known-size ancestor ends.
        self._stack: list[tuple[int, int, int]] = []
        self._eof = False
        self._failed: MkvError | None = None

    # --- input ----------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes; call :meth:`events` afterwards to consume what they complete."""
        if self._eof:
            raise RuntimeError("feed() after close()")
        if data:
            self._chunks.append(bytes(data))
            self._pending += len(data)

    def feed_blocks(self, data: bytes | bytearray | memoryview) -> list[int | bytes]:
        """Feed ``data``, parsing the plain SimpleBlocks at its start right away when the
        reader waits between elements of an open Cluster (the steady state of a live
        upload), without an :meth:`events` round. Returns those blocks flat, five items
        each as in :attr:`BlockRun.flat` (often empty); their events are not repeated.
        Whatever follows them is left for :meth:`events`, as after :meth:`feed`."""
        data = bytes(data)
        stack = self._stack
        if (
            stack
            and stack[-1][0] == _CLUSTER
            and self._pos == len(self._buf)
            and not self._pending
            and not self._eof
            and self._failed is None
        ):
            base = self._base + self._pos
            run: list[int | bytes] = []
            pos = scan_blocks(data, 0, len(data), base, stack[-1][2], self.max_element_size, run)
            if pos:
                self._buf, self._base, self._pos = data, base, pos
                return run
        self.feed(data)
        return []

    def _events_due(self) -> bool:
        """Fed bytes wait for :meth:`events`, or an open master's end is due."""
        return self._pos < len(self._buf) or self._pending > 0 or self.at_limit

    def close(self) -> None:
        """Mark the end of input; :meth:`events` then closes open unknown-size masters or
        raises on a truncated element."""
        self._eof = True

    @property
    def offset(self) -> int:
        """Absolute offset of the next unparsed byte."""
        return self._base + self._pos

    @property
    def at_limit(self) -> bool:
        """The next byte is where an open known-size master ends (its End is due)."""
        return bool(self._stack) and self._stack[-1][2] == self._base + self._pos

    @property
    def depth(self) -> int:
        """Number of open master elements."""
        return len(self._stack)

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available from the current position, if fed. Parsing goes
        on in a fed chunk itself where it can; only an element that straddles chunks is
        copied (with just the bytes it needs), not the chunks around it."""
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        if have + self._pending < need:
            return False
        chunks = self._chunks
        skip = self._skip
        if not have and len(chunks[0]) - skip >= need:
            self._base += len(buf) - skip
            self._buf = chunks.popleft()
            self._pos = skip
            self._pending -= len(self._buf) - skip
            self._skip = 0
            return True
        parts = [buf[pos:]] if have else []
        missing = need - have
        while missing:
            chunk = chunks[0]
            take = min(len(chunk) - skip, missing)
            parts.append(chunk[skip : skip + take] if skip or take < len(chunk) else chunk)
            missing -= take
            self._pending -= take
            skip += take
            if skip == len(chunk):
                chunks.popleft()
                skip = 0
        self._skip = skip
        self._base += pos
        self._buf = b"".join(parts)
        self._pos = 0
        return True

    # --- parsing --------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Yield every event the fed bytes complete; returns when more input is needed.

        Stopping early (``break``) is safe: the next call resumes after the last event
        delivered.
        """
        if self._failed is not None:
            raise self._failed
        return self._run(False)  # type: ignore[return-value]

    def _raw_events(self) -> Iterator[RawEvent]:
        """:meth:`events` as plain tuples, cheaper to make than event objects (for the
        element walker): ``(START, id, offset, header_size, size)``, ``(END, id, offset)``,
        ``(LEAF, id, offset, header_size, size, value)``, ``(RUN, flat)``, ``(BLOCK, Block)``."""
        if self._failed is not None:
            raise self._failed
        return self._run(True)  # type: ignore[return-value]

    def _run(self, raw: bool) -> Iterator[Event | RawEvent]:
        stack = self._stack
        rows = self._rows
        global_parents = GLOBAL_PARENTS
        vlen = VINT_LENGTH
        id_length = _ID_LENGTH
        cluster = _CLUSTER
        masks = SIZE_MASK
        max_size = self.max_element_size
        max_collapse = self.max_collapse_size
        batch = self.batch_blocks
        u32 = _U32.unpack_from
        u64 = _U64.unpack_from
        utf8_kind = Kind.UTF8
        string_kind = Kind.STRING
        master = Kind.MASTER
        uint_kind = Kind.UINT
        block_kind = Kind.BLOCK
        unknown = _UNKNOWN
        buf = self._buf
        pos = self._pos
        base = self._base
        end = len(buf)
        # The innermost open master (cached: it changes only on push and pop).
        top_id, top_end, limit = stack[-1] if stack else (0, 0, unknown)
        try:
            while True:
                here = base + pos
                # Close masters that end here: known-size ones at their end, unknown-size
                # ones at the end of a known-size ancestor.
                while limit == here:
                    stack.pop()
                    closed = top_id
                    top_id, top_end, limit = stack[-1] if stack else (0, 0, unknown)
                    yield (END, closed, here) if raw else End(closed, here)

                if top_id == cluster and pos < end and buf[pos] == 0xA3:
                    # The cluster loop: runs of plain SimpleBlocks, the bulk of every audio
                    # stream. Anything else, or a block not yet complete, goes to the
                    # general path below.
                    start = pos
                    run: list[int | bytes] = []
                    pos = scan_blocks(buf, pos, end, base, limit, max_size, run)
                    if pos == start:
                        pass
                    elif batch:
                        yield (RUN, run) if raw else BlockRun(run)
                        continue
                    else:
                        # One event per block, resumable after each (a consumer may stop).
                        last = pos
                        n = len(run)
                        for i in range(0, n, 5):
                            pos = run[i + 5] - base if i + 5 < n else last  # type: ignore[operator]
                            blk = Block(run[i], run[i + 1], run[i + 2], run[i + 3], (run[i + 4],))  # type: ignore[arg-type]
                            yield (BLOCK, blk) if raw else blk
                        continue

                # --- element header -------------------------------------------------
                if end - pos >= 12:  # the whole header is here (an ID <= 4, a size <= 8 bytes)
                    first = buf[pos]
                    id_len = id_length[first]
                    if not id_len:
                        raise MkvError(f"invalid element ID byte 0x{first:02X}", here)
                    size_first = buf[pos + id_len]
                    size_len = vlen[size_first]
                    if not size_len:
                        raise MkvError(
                            "invalid element size (vint longer than 8 bytes)", here + id_len
                        )
                    header = id_len + size_len
                else:
                    avail = end - pos
                    need = 1
                    if avail:
                        first = buf[pos]
                        id_len = vlen[first]
                        if id_len == 0 or id_len > 4:
                            raise MkvError(f"invalid element ID byte 0x{first:02X}", here)
                        need = id_len + 1
                        if avail >= need:
                            size_first = buf[pos + id_len]
                            size_len = vlen[size_first]
                            if size_len == 0:
                                raise MkvError(
                                    "invalid element size (vint longer than 8 bytes)",
                                    here + id_len,
                                )
                            need = header = id_len + size_len
                    if avail < need:
                        self._pos = pos
                        if not self._fill(need):
                            yield from self._at_end_of_data(raw)
                            return
                        buf, pos, base = self._buf, self._pos, self._base
                        end = len(buf)
                        continue
                if size_len == 1:
                    size = size_first & 0x7F
                    if size == 0x7F:
                        size = unknown
                else:
                    if size_len == 8:
                        size = u64(buf, pos + id_len)[0] & 0x00FFFFFFFFFFFFFF
                    elif size_len == 2:
                        size = ((size_first & 0x3F) << 8) | buf[pos + id_len + 1]
                    elif size_len == 4:
                        size = u32(buf, pos + id_len)[0] & 0x0FFFFFFF
                    else:
                        size = (
                            int.from_bytes(buf[pos + id_len : pos + header], "big")
                            & masks[size_len]
                        )
                    if size == masks[size_len]:
                        size = unknown

                # Fast path: a SimpleBlock inside a Cluster (the bulk of every stream).
                if first == 0xA3 and top_id == cluster and 4 <= size <= max_size:
                    if limit != unknown and here + header + size > limit:
                        raise MkvError(f"SimpleBlock of {size} bytes overruns its Cluster", here)
                    stop = pos + header + size
                    if stop > end:
                        self._pos = pos
                        if not self._fill(header + size):
                            yield from self._at_end_of_data(raw)
                            return
                        buf, pos, base = self._buf, self._pos, self._base
                        end = len(buf)
                        continue
                    p = pos + header
                    t = buf[p]
                    flags = buf[p + 3]
                    pos = stop
                    if t & 0x80 and not flags & 0x06:
                        tc = (buf[p + 1] << 8) | buf[p + 2]
                        if tc & 0x8000:
                            tc -= 0x10000
                        blk = Block(here, t & 0x7F, tc, flags, (buf[p + 4 : stop],))
                    else:
                        blk = parse_block(buf[p:stop], here, True)
                    yield (BLOCK, blk) if raw else blk
                    continue

                if id_len == 4:
                    eid = u32(buf, pos)[0]
                elif id_len == 1:
                    eid = first
                elif id_len == 2:
                    eid = (first << 8) | buf[pos + 1]
                else:
                    eid = int.from_bytes(buf[pos : pos + id_len], "big")
                row = rows.get(eid)
                if row is None:
                    kind = None
                else:
                    kind, parents, collapsible = row
                    # The unknown-size rule: an element that may not live inside the open
                    # unknown-size master closes it (and possibly its ancestors).
                    if (
                        top_end == unknown
                        and top_id not in parents
                        and stack
                        and parents is not global_parents
                    ):
                        while stack and top_end == unknown and top_id not in parents:
                            stack.pop()
                            closed = top_id
                            top_id, top_end, limit = stack[-1] if stack else (0, 0, unknown)
                            yield (END, closed, here) if raw else End(closed, here)

                    if kind is master:
                        if size != unknown:
                            if limit != unknown and here + header + size > limit:
                                raise MkvError(
                                    f"{element_name(eid)} of {size} bytes overruns its parent"
                                    f" {element_name(top_id)}",
                                    here,
                                )
                            if collapsible and size <= max_collapse:
                                # Delivered whole, as a Leaf holding the raw payload.
                                stop = pos + header + size
                                if stop > end:
                                    self._pos = pos
                                    if not self._fill(header + size):
                                        yield from self._at_end_of_data(raw)
                                        return
                                    buf, pos, base = self._buf, self._pos, self._base
                                    end = len(buf)
                                    continue
                                payload = buf[pos + header : stop]
                                pos = stop
                                yield (
                                    (LEAF, eid, here, header, size, payload)
                                    if raw
                                    else Leaf(eid, here, header, size, payload)
                                )
                                continue
                        if len(stack) >= _MAX_DEPTH:
                            raise MkvError("elements nested too deeply", here)
                        pos += header
                        top_id = eid
                        if size == unknown:
                            top_end = unknown
                        else:
                            top_end = limit = here + header + size
                        stack.append((eid, top_end, limit))
                        yield (
                            (START, eid, here, header, size)
                            if raw
                            else Start(eid, here, header, size)
                        )
                        continue

                if size == unknown:
                    raise MkvError(f"unknown size on non-master element {element_name(eid)}", here)
                if limit != unknown and here + header + size > limit:
                    raise MkvError(
                        f"{element_name(eid)} of {size} bytes overruns its parent"
                        f" {element_name(top_id)}",
                        here,
                    )
                if size > max_size:
                    raise MkvError(
                        f"{element_name(eid)} of {size} bytes exceeds the {max_size}-byte limit",
                        here,
                    )
                stop = pos + header + size
                if stop > end:
                    self._pos = pos
                    if not self._fill(header + size):
                        yield from self._at_end_of_data(raw)
                        return
                    buf, pos, base = self._buf, self._pos, self._base
                    end = len(buf)
                    continue
                payload = buf[pos + header : stop]
                pos = stop
                if kind is uint_kind and size <= 8:
                    yield (
                        (LEAF, eid, here, header, size, int.from_bytes(payload, "big"))
                        if raw
                        else Leaf(eid, here, header, size, int.from_bytes(payload, "big"))
                    )
                elif kind is None:
                    yield (
                        (LEAF, eid, here, header, size, payload)
                        if raw
                        else Leaf(eid, here, header, size, payload)
                    )
                elif kind is utf8_kind or kind is string_kind:
                    text = payload.rstrip(b"\x00").decode("utf-8", "replace")
                    yield (
                        (LEAF, eid, here, header, size, text)
                        if raw
                        else Leaf(eid, here, header, size, text)
                    )
                elif kind is block_kind:
                    blk = parse_block(payload, here, eid != _BLOCK)
                    yield (BLOCK, blk) if raw else blk
                else:
                    yield (
                        (LEAF, eid, here, header, size, decode_value(kind, payload, here))
                        if raw
                        else Leaf(eid, here, header, size, decode_value(kind, payload, here))
                    )
        except MkvError as err:
            self._failed = err
            raise
        finally:
            # Keep the resume point when the consumer stops early (or on an error).
            self._pos = pos

    def _at_end_of_data(self, raw: bool) -> Iterator[Event | RawEvent]:
        """Out of fed bytes: at EOF close what may close, else wait for more input."""
        if not self._eof:
            return
        here = self._base + self._pos
        left = len(self._buf) - self._pos + self._pending
        if left:
            raise MkvError(f"input ends inside an element ({left} trailing bytes)", here)
        stack = self._stack
        while stack:
            eid, stop, limit = stack[-1]
            if limit != UNKNOWN_SIZE:
                name = element_name(eid) if stop != UNKNOWN_SIZE else "a known-size ancestor"
                raise MkvError(
                    f"input ends inside {name}, which declares {limit - here} more bytes", here
                )
            stack.pop()
            yield (END, eid, here) if raw else End(eid, here)


def scan_blocks(
    buf: bytes,
    pos: int,
    end: int,
    base: int,
    limit: int,
    max_size: int,
    run: list[int | bytes],
) -> int:
    """Consume the complete plain SimpleBlocks at ``buf[pos:end]`` (inside a Cluster whose
    known end, if any, is the absolute offset ``limit``): unlaced, a 1-byte track number,
    a 1- or 2-byte size. Appends ``offset, track, timecode, flags, payload`` per block to
    ``run`` (``base`` is the absolute offset of ``buf[0]``) and returns the position of
    the first byte it did not consume. Anything else stops the scan.

    Blocks laid out like the one before them (same size, as audio frames are) are taken
    in bulk by :func:`_scan_uniform`, which gives exactly what this loop would."""
    head1 = _BLOCK_HEAD_1.unpack_from
    head2 = _BLOCK_HEAD_2.unpack_from
    bulk = end - pos >= 1024  # (a write of a frame or two is not worth a bulk try)
    while pos + 7 <= end:
        # ID A3, size (1 or 2 bytes), track vint, int16 timecode, flags
        sf = buf[pos + 1]
        if sf >= 0x80:
            eid, size, t, tc, flags = head1(buf, pos)
            size &= 0x7F
            p = pos + 2
        elif sf >= 0x40:
            eid, size, t, tc, flags = head2(buf, pos)
            size &= 0x3FFF
            p = pos + 3
        else:
            break
        stop: int = p + size
        if (
            eid != 0xA3
            or stop > end
            or size < 4
            or size > max_size
            or size in (0x7F, 0x3FFF)
            or t < 0x80
            or flags & 0x06
            or (limit != _UNKNOWN and base + stop > limit)
        ):
            break
        run += (base + pos, t & 0x7F, tc, flags, buf[p + 4 : stop])
        if base + stop == limit:
            return stop
        if bulk and end - stop >= _BULK_MIN * (stop - pos):
            at = stop
            stop = _scan_uniform(buf, pos, stop, end, base, limit, run)
            # A stream whose blocks differ in layout: one try per call, not one per block.
            bulk = stop - at >= _BULK_MIN * (at - pos)
            if base + stop == limit:
                return stop
        pos = stop
    return pos


_BULK_MIN = 8
"""Fewest blocks worth a bulk scan (below it the loop is as fast)."""
_BULK_MAX = 512
"""Most blocks looked at in one bulk scan (the columns are cut from that many)."""
_FIRST_LOW = bytes(0 if b < 0x80 else 1 for b in range(256))  # 0: not a 1-byte track vint
_FIRST_LACED = bytes(0 if b & 0x06 else 1 for b in range(256))  # 0: laced
_LOW7 = bytes(b & 0x7F for b in range(256))
_PAYLOAD_STRUCTS: dict[tuple[int, int], struct.Struct] = {}
_payload_of = operator.itemgetter(0)


def _scan_uniform(
    buf: bytes, first: int, pos: int, end: int, base: int, limit: int, run: list[int | bytes]
) -> int:
    """The blocks at ``buf[pos:end]`` whose header is laid out like that of the block at
    ``first`` (which ends at ``pos``): same ID and size bytes, a 1-byte track number and
    no lacing. Reads them column by column with strided slices, appends them to ``run``
    as :func:`scan_blocks` does and returns where they end."""
    step = pos - first
    hl = 2 if buf[first + 1] >= 0x80 else 3  # ID + size bytes
    if not buf.startswith(buf[first : first + hl], pos + (_BULK_MIN - 1) * step):
        return pos  # (the cheap test: no run of blocks this size)
    room = (end - pos) // step
    if limit != _UNKNOWN:
        room = min(room, (limit - base - pos) // step)
    if room < _BULK_MIN:
        return pos
    window = _BULK_MIN * 4  # grows while blocks keep coming: little is read past a run
    while room:
        count = min(room, window)
        stop = pos + count * step
        taken = count
        # The first block that differs from the template, in any column, ends the run.
        for col in range(hl):
            same = buf[pos + col : stop : step]
            taken = min(taken, count - len(same.lstrip(buf[first + col : first + col + 1])))
        for col, table in ((hl, _FIRST_LOW), (hl + 3, _FIRST_LACED)):
            bad = buf[pos + col : stop : step].translate(table).find(0)
            if bad >= 0:
                taken = min(taken, bad)
        if taken:
            _take_uniform(buf, pos, taken, step, hl, base, run)
            pos += taken * step
        if taken < count:
            break
        room -= taken
        window = min(2 * window, _BULK_MAX)
    return pos


def _take_uniform(
    buf: bytes, pos: int, count: int, step: int, hl: int, base: int, run: list[int | bytes]
) -> None:
    """Append ``count`` checked blocks of ``step`` bytes at ``buf[pos:]`` to ``run``."""
    stop = pos + count * step
    key = (hl + 4, step)
    layout = _PAYLOAD_STRUCTS.get(key)
    if layout is None:
        if len(_PAYLOAD_STRUCTS) >= 64:
            _PAYLOAD_STRUCTS.clear()
        layout = _PAYLOAD_STRUCTS[key] = struct.Struct(f"{hl + 4}x{step - hl - 4}s")
    pairs = bytearray(2 * count)  # the int16 timecodes, big-endian
    pairs[0::2] = buf[pos + hl + 1 : stop : step]
    pairs[1::2] = buf[pos + hl + 2 : stop : step]
    flat: list[int | bytes] = [0] * (5 * count)
    flat[0::5] = range(base + pos, base + stop, step)
    flat[1::5] = buf[pos + hl : stop : step].translate(_LOW7)
    flat[2::5] = struct.unpack(f">{count}h", pairs)
    flat[3::5] = buf[pos + hl + 3 : stop : step]
    flat[4::5] = list(map(_payload_of, layout.iter_unpack(memoryview(buf)[pos:stop])))
    run += flat


def parse_block(payload: bytes, offset: int, simple: bool) -> Block:
    """Decode a (Simple)Block payload: track vint, int16 timecode, flags, lacing."""
    n = len(payload)
    if n == 0:
        raise MkvError("empty block", offset)
    tlen = VINT_LENGTH[payload[0]]
    if tlen == 0 or tlen > 8 or n < tlen + 3:
        raise MkvError("block header truncated or invalid track number", offset)
    track = int.from_bytes(payload[:tlen], "big") & SIZE_MASK[tlen]
    tc = (payload[tlen] << 8) | payload[tlen + 1]
    if tc & 0x8000:
        tc -= 0x10000
    flags = payload[tlen + 2]
    p = tlen + 3
    lacing = (flags >> 1) & 3
    if lacing == 0:
        return Block(offset, track, tc, flags, (payload[p:],), simple)
    if p >= n:
        raise MkvError("laced block without a frame count", offset)
    count = payload[p] + 1
    p += 1
    sizes: list[int] = []
    if lacing == 1:  # Xiph
        for _ in range(count - 1):
            s = 0
            while True:
                if p >= n:
                    raise MkvError("Xiph lace sizes run past the block", offset)
                b = payload[p]
                p += 1
                s += b
                if b != 255:
                    break
            sizes.append(s)
    elif lacing == 3:  # EBML: first size a vint, the others signed differences
        if count > 1:
            value, used = _read_vint(payload, p, offset)
            p += used
            sizes.append(value)
        for _ in range(count - 2):
            raw, used = _read_vint(payload, p, offset)
            bias = (1 << (7 * used - 1)) - 1
            p += used
            value += raw - bias
            if value < 0:
                raise MkvError("negative EBML lace size", offset)
            sizes.append(value)
    else:  # fixed
        body = n - p
        if body % count:
            raise MkvError(f"fixed lacing: {body} bytes do not split into {count} frames", offset)
        sizes = [body // count] * (count - 1)
    last = n - p - sum(sizes)
    if last < 0:
        raise MkvError("lace sizes exceed the block", offset)
    sizes.append(last)
    frames = []
    for s in sizes:
        frames.append(payload[p : p + s])
        p += s
    return Block(offset, track, tc, flags, tuple(frames), simple)


def _read_vint(data: bytes, p: int, offset: int) -> tuple[int, int]:
    if p >= len(data):
        raise MkvError("lace size runs past the block", offset)
    n = VINT_LENGTH[data[p]]
    if n == 0 or p + n > len(data):
        raise MkvError("invalid lace size", offset)
    return int.from_bytes(data[p : p + n], "big") & SIZE_MASK[n], n


class UnknownSizeInside(Exception):
    """:func:`parse_elements` met an unknown-size element; stream the master instead."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"unknown-size element at byte offset {offset}")
        self.offset = offset


Tree = list[tuple[int, "int | float | str | bytes | Block | Tree"]]


_KINDS: dict[int, Kind] = {eid: spec.kind for eid, spec in ELEMENTS.items()}


def parse_elements(data: bytes, offset: int, depth: int = 0, parent: int | None = None) -> Tree:
    """The elements of a known-size master's payload ``data`` (which starts at absolute
    ``offset``), as ``(id, value)`` pairs in order; a master's value is its own list.
    ``parent`` (the master's ID) names it in errors.

    Leaf values are decoded as :class:`EbmlReader` decodes them and malformed input raises
    the same :class:`MkvError` (with absolute offsets). An unknown-size element inside
    raises :class:`UnknownSizeInside`: its extent depends on the element table's nesting
    rule, so such a master has to go through :class:`EbmlReader` instead.
    """
    out: Tree = []
    append = out.append
    vlen = VINT_LENGTH
    masks = SIZE_MASK
    kinds = _KINDS
    master = Kind.MASTER
    uint = Kind.UINT
    utf8 = Kind.UTF8
    string = Kind.STRING
    n = len(data)
    pos = 0
    while pos < n:
        first = data[pos]
        id_len = vlen[first]
        if id_len == 0 or id_len > 4:
            raise MkvError(f"invalid element ID byte 0x{first:02X}", offset + pos)
        if pos + id_len >= n:
            raise MkvError("element header overruns its parent", offset + pos)
        size_len = vlen[data[pos + id_len]]
        if size_len == 0:
            raise MkvError("invalid element size (vint longer than 8 bytes)", offset + pos + id_len)
        header = pos + id_len + size_len
        if header > n:
            raise MkvError("element header overruns its parent", offset + pos)
        eid = first if id_len == 1 else int.from_bytes(data[pos : pos + id_len], "big")
        size = int.from_bytes(data[pos + id_len : header], "big") & masks[size_len]
        if size == masks[size_len]:
            raise UnknownSizeInside(offset + pos)
        stop = header + size
        if stop > n:
            where = "its parent" if parent is None else f"its parent {element_name(parent)}"
            raise MkvError(f"{element_name(eid)} of {size} bytes overruns {where}", offset + pos)
        kind = kinds.get(eid)
        if kind is utf8 or kind is string:
            append((eid, data[header:stop].rstrip(b"\x00").decode("utf-8", "replace")))
        elif kind is uint and size <= 8:
            append((eid, int.from_bytes(data[header:stop], "big")))
        elif kind is master:
            if depth >= _MAX_DEPTH:
                raise MkvError("elements nested too deeply", offset + pos)
            append((eid, parse_elements(data[header:stop], offset + header, depth + 1, eid)))
        elif kind is None:
            append((eid, data[header:stop]))
        elif kind is Kind.BLOCK:
            append((eid, parse_block(data[header:stop], offset + pos, eid != _BLOCK)))
        else:
            append((eid, decode_value(kind, data[header:stop], offset + pos)))
        pos = stop
    return out
