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

from collections.abc import Iterator
from dataclasses import dataclass

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

__all__ = ["Block", "EbmlReader", "End", "Event", "Leaf", "Start", "parse_block"]

DEFAULT_MAX_ELEMENT_SIZE = 64 * 1024 * 1024
"""Largest leaf element buffered whole (KVS caps a fragment at 50 MB)."""

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


Event = Start | End | Leaf | Block

_SIMPLE_BLOCK = ID.SimpleBlock
_BLOCK = ID.Block
_CLUSTER = ID.Cluster


def _close_unknown(stack: list[tuple[int, int]], parents: tuple[int, ...], here: int) -> list[End]:
    """Pop the unknown-size masters that an element with these parents cannot live in."""
    closed: list[End] = []
    if parents != GLOBAL_PARENTS:
        while stack and stack[-1][1] == UNKNOWN_SIZE and stack[-1][0] not in parents:
            closed.append(End(stack.pop()[0], here))
    return closed


class EbmlReader:
    """Push parser producing :data:`Event` objects from a byte stream."""

    def __init__(self, *, max_element_size: int = DEFAULT_MAX_ELEMENT_SIZE) -> None:
        self.max_element_size = max_element_size
        self._buf = b""
        self._pos = 0
        self._base = 0  # absolute offset of self._buf[0]
        self._chunks: list[bytes] = []
        self._pending = 0  # bytes in self._chunks
        # Open masters: [id, absolute end offset or UNKNOWN_SIZE]
        self._stack: list[tuple[int, int]] = []
        self._eof = False
        self._failed: MkvError | None = None

    # --- input ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Append bytes; call :meth:`events` afterwards to consume what they complete."""
        if self._eof:
            raise RuntimeError("feed() after close()")
        if data:
            self._chunks.append(bytes(data))
            self._pending += len(data)

    def close(self) -> None:
        """Mark the end of input; :meth:`events` then closes open unknown-size masters or
        raises on a truncated element."""
        self._eof = True

    @property
    def offset(self) -> int:
        """Absolute offset of the next unparsed byte."""
        return self._base + self._pos

    @property
    def depth(self) -> int:
        """Number of open master elements."""
        return len(self._stack)

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available from the current position, if fed."""
        have = len(self._buf) - self._pos
        if have + self._pending < need:
            return False
        self._chunks.insert(0, self._buf[self._pos :])
        self._buf = b"".join(self._chunks)
        self._base += self._pos
        self._pos = 0
        self._chunks.clear()
        self._pending = 0
        return True

    # --- parsing --------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Yield every event the fed bytes complete; returns when more input is needed."""
        if self._failed is not None:
            raise self._failed
        try:
            yield from self._run()
        except MkvError as err:
            self._failed = err
            raise

    def _run(self) -> Iterator[Event]:
        stack = self._stack
        elements = ELEMENTS
        vlen = VINT_LENGTH
        masks = SIZE_MASK
        max_size = self.max_element_size
        master = Kind.MASTER
        block_kind = Kind.BLOCK
        buf = self._buf
        pos = self._pos
        end = len(buf)
        while True:
            here = self._base + pos
            # Close known-size masters that end exactly here.
            while stack and stack[-1][1] == here:
                yield End(stack.pop()[0], here)

            # --- element header -----------------------------------------------------
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
                            "invalid element size (vint longer than 8 bytes)", here + id_len
                        )
                    need = header = id_len + size_len
            if avail < need:
                self._pos = pos
                if not self._fill(need):
                    yield from self._at_end_of_data()
                    return
                buf, pos, end = self._buf, 0, len(self._buf)
                continue
            eid = first if id_len == 1 else int.from_bytes(buf[pos : pos + id_len], "big")
            if size_len == 1:
                size = size_first & 0x7F
                if size == 0x7F:
                    size = UNKNOWN_SIZE
            else:
                size = int.from_bytes(buf[pos + id_len : pos + header], "big") & masks[size_len]
                if size == masks[size_len]:
                    size = UNKNOWN_SIZE

            # Fast path: a SimpleBlock inside a Cluster (the bulk of every stream).
            if (
                eid == _SIMPLE_BLOCK
                and stack
                and stack[-1][0] == _CLUSTER
                and 4 <= size <= max_size
            ):
                parent_end = stack[-1][1]
                if parent_end != UNKNOWN_SIZE and here + header + size > parent_end:
                    raise MkvError(f"SimpleBlock of {size} bytes overruns its Cluster", here)
                stop = pos + header + size
                if stop > end:
                    self._pos = pos
                    if not self._fill(header + size):
                        yield from self._at_end_of_data()
                        return
                    buf, pos, end = self._buf, 0, len(self._buf)
                    continue
                p = pos + header
                t = buf[p]
                flags = buf[p + 3]
                if t & 0x80 and not flags & 0x06:
                    tc = (buf[p + 1] << 8) | buf[p + 2]
                    if tc & 0x8000:
                        tc -= 0x10000
                    yield Block(here, t & 0x7F, tc, flags, (buf[p + 4 : stop],))
                else:
                    yield parse_block(buf[p:stop], here, True)
                pos = stop
                continue

            spec = elements.get(eid)
            # The unknown-size rule: an element that may not live inside the open
            # unknown-size master closes it (and possibly its ancestors).
            if stack and stack[-1][1] == UNKNOWN_SIZE and spec is not None:
                yield from _close_unknown(stack, spec.parents, here)
            if stack:
                parent_end = stack[-1][1]
                if parent_end != UNKNOWN_SIZE and (
                    size == UNKNOWN_SIZE or here + header + size > parent_end
                ):
                    raise MkvError(
                        f"{element_name(eid)} of {'unknown' if size < 0 else size} bytes"
                        f" overruns its parent {element_name(stack[-1][0])}",
                        here,
                    )

            if spec is not None and spec.kind is master:
                if len(stack) >= _MAX_DEPTH:
                    raise MkvError("elements nested too deeply", here)
                pos += header
                stack.append((eid, UNKNOWN_SIZE if size == UNKNOWN_SIZE else here + header + size))
                yield Start(eid, here, header, size)
                continue

            if size == UNKNOWN_SIZE:
                raise MkvError(f"unknown size on non-master element {element_name(eid)}", here)
            if size > max_size:
                raise MkvError(
                    f"{element_name(eid)} of {size} bytes exceeds the {max_size}-byte limit", here
                )
            stop = pos + header + size
            if stop > end:
                self._pos = pos
                if not self._fill(header + size):
                    yield from self._at_end_of_data()
                    return
                buf, pos, end = self._buf, 0, len(self._buf)
                continue
            payload = buf[pos + header : stop]
            if spec is None:
                yield Leaf(eid, here, header, size, payload)
            elif spec.kind is block_kind:
                yield parse_block(payload, here, eid != _BLOCK)
            else:
                yield Leaf(eid, here, header, size, decode_value(spec.kind, payload, here))
            pos = stop

    def _at_end_of_data(self) -> Iterator[Event]:
        """Out of fed bytes: at EOF close what may close, else wait for more input."""
        if not self._eof:
            return
        here = self._base + self._pos
        left = len(self._buf) - self._pos + self._pending
        if left:
            raise MkvError(f"input ends inside an element ({left} trailing bytes)", here)
        while self._stack:
            eid, stop = self._stack[-1]
            if stop != UNKNOWN_SIZE:
                raise MkvError(
                    f"input ends inside {element_name(eid)}, which declares"
                    f" {stop - here} more bytes",
                    here,
                )
            self._stack.pop()
            yield End(eid, here)


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
    elif lacing == 3:  # EBML
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
