"""The call-event bus: publish from anywhere, subscribe with a filter and a cursor.

* :meth:`EventBus.publish` takes a validated :class:`~callstream.events.types.Event`,
  gives it the next cursor and returns at once, from any thread. A writer thread appends
  whatever is waiting to the journal as one batch and ``fdatasync``-s it (group commit);
  only then do subscribers see the batch. So a subscriber never sees an event that a
  crash could take back, and cursors are final once committed: ``await
  bus.committed(cursor)`` (on the loop) or :meth:`EventBus.flush` (any thread) wait for
  that. If the disk falls behind (or fails: the writer retries every second), at most
  ``max_backlog_bytes`` of events wait; beyond that :meth:`publish` raises
  :class:`EventBusError` rather than memory growing.
* :meth:`EventBus.subscribe` returns a :class:`Subscription`, an async iterator over the
  events after ``cursor`` that pass the filter: first from the journal, then live. A
  subscriber that restarts with the cursor of the last event it handled misses none and
  sees none twice. Subscriptions run on the event loop the bus is bound to (the first
  loop that subscribes or awaits :meth:`~EventBus.committed`; the server binds its own
  at start-up). Live events are pushed into a per-subscriber queue of at most
  ``queue_events`` events / ``queue_bytes`` bytes; a subscriber that falls further
  behind has its queue dropped and is re-fed from the journal at its own pace, so a
  slow subscriber never blocks publishers or grows memory.
* :meth:`EventBus.query` pages through the journal (the HTTP API's ``GET
  /callstream/events``), from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from callstream.events.journal import Journal, Retention
from callstream.events.types import (
    MAX_EVENT_BYTES,
    Event,
    EventError,
    EventFilter,
    encode,
    validate,
)

__all__ = ["EventBus", "EventBusError", "QueryResult", "Subscription"]

log = logging.getLogger("callstream.events")

_BATCH_BYTES = 4 * 1024 * 1024
_RETRY_S = 1.0


class EventBusError(RuntimeError):
    """The bus cannot take an event now (closed, or its journal cannot be written)."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A page of :meth:`EventBus.query`: the events, the cursor to continue after, and
    whether events after it exist (a filtered page may be short or empty and still have
    more)."""

    events: list[Event]
    next_cursor: int
    has_more: bool


class EventBus:
    """Typed call events with a durable journal in ``directory`` (see the module
    docstring). Close it with :meth:`close`."""

    def __init__(
        self,
        directory: Path,
        *,
        retention: Retention | None = None,
        queue_events: int = 1024,
        queue_bytes: int = 8 * 1024 * 1024,
        max_backlog_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.journal = Journal(Path(directory), retention)
        self.node: str | None = None
        """This node's id in a cluster (set by the cluster relay; None on one server)."""
        self.queue_events = max(1, queue_events)
        self.queue_bytes = max(1, queue_bytes)
        self.max_backlog_bytes = max_backlog_bytes
        self._cond = threading.Condition(threading.Lock())
        # guarded by _cond:
        self._next = self.journal.last_cursor + 1
        self._committed = self.journal.last_cursor
        self._pending: list[tuple[Event, bytes]] = []
        self._pending_bytes = 0
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._write_error: OSError | None = None
        # on the bound loop:
        self._delivered = self._committed
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._writer = threading.Thread(
            target=self._write_forever, name="callstream-events", daemon=True
        )
        self._writer.start()

    # --- publishing (any thread) --------------------------------------------------------

    def publish(self, event: Event) -> int:
        """Journal ``event`` (validated against its type) and return its cursor; never
        waits for the disk. Raises :class:`~callstream.events.types.EventError` for an
        invalid event and :class:`EventBusError` when the bus is closed or its journal
        is too far behind."""
        validate(event)
        line = encode(event.with_cursor(0))
        prefix = b'{"Cursor":0,'
        assert line.startswith(prefix)
        if len(line) > MAX_EVENT_BYTES:
            raise EventError(
                f"{event.type}: {len(line)} bytes, more than an event may have ({MAX_EVENT_BYTES})"
            )
        body = line[len(prefix) :]
        with self._cond:
            if self._closing:
                raise EventBusError("the event bus is closed")
            if self._pending_bytes + len(line) > self.max_backlog_bytes:
                cause = f" ({self._write_error})" if self._write_error else ""
                raise EventBusError(
                    f"the event journal is {self._pending_bytes} bytes behind{cause}; "
                    "try again later"
                )
            cursor = self._next
            self._next += 1
            encoded = b'{"Cursor":%d,%b' % (cursor, body)
            self._pending.append((event.with_cursor(cursor), encoded))
            self._pending_bytes += len(encoded)
            if len(self._pending) == 1:
                self._cond.notify_all()
        return cursor

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (on any thread but the bound loop's) until every event published so far
        is durable; False if ``timeout`` passed first."""
        with self._cond:
            target = self._next - 1
            return self._cond.wait_for(lambda: self._committed >= target, timeout)

    @property
    def published_cursor(self) -> int:
        """The newest cursor :meth:`publish` handed out (it may not be durable yet)."""
        with self._cond:
            return self._next - 1

    @property
    def last_cursor(self) -> int:
        """The newest committed (durable) cursor."""
        with self._cond:
            return self._committed

    @property
    def first_cursor(self) -> int:
        """The oldest cursor the journal still keeps."""
        return self.journal.first_cursor

    @property
    def journal_id(self) -> str:
        """Identity of the journal (changes only when its directory is created anew)."""
        return self.journal.journal_id

    def _write_forever(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                batch: list[tuple[Event, bytes]] = []
                size = 0
                for item in self._pending:
                    if batch and size + len(item[1]) > _BATCH_BYTES:
                        break
                    batch.append(item)
                    size += len(item[1])
            try:
                self.journal.append([(e.cursor, line) for e, line in batch])
            except OSError as err:
                failures += 1
                with self._cond:
                    self._write_error = err
                    closing = self._closing
                if failures == 1 or failures % 60 == 0:
                    log.error(
                        "event journal: cannot write %d events: %s (retrying)", len(batch), err
                    )
                if closing and failures >= 3:
                    with self._cond:
                        lost = len(self._pending)
                        self._pending.clear()
                        self._pending_bytes = 0
                    log.error("event journal: %d events not journaled at close", lost)
                    return
                time.sleep(_RETRY_S)
                continue
            failures = 0
            with self._cond:
                del self._pending[: len(batch)]
                self._pending_bytes -= size
                self._committed = batch[-1][0].cursor
                self._write_error = None
                loop = self._loop
                self._cond.notify_all()
            if loop is not None:
                delivery = [(e, len(line) + 1) for e, line in batch]
                try:
                    loop.call_soon_threadsafe(self._deliver, delivery)
                except RuntimeError:  # the loop closed under us
                    with self._cond:
                        if self._loop is loop:
                            self._loop = None

    # --- the loop side ------------------------------------------------------------------

    def bind(self) -> asyncio.AbstractEventLoop:
        """Bind the bus to the running loop (subscriptions and live delivery run there).
        A bus whose loop has closed may be bound again; binding while another loop runs
        it raises ``RuntimeError``."""
        loop = asyncio.get_running_loop()
        with self._cond:
            current = self._loop
            if current is loop:
                return loop
            if current is not None and not current.is_closed():
                raise RuntimeError("the event bus is bound to another event loop")
            self._loop = loop
            self._delivered = self._committed
        self._subscriptions = weakref.WeakSet()
        self._waiters = []
        return loop

    def _deliver(self, batch: list[tuple[Event, int]]) -> None:
        subscriptions = list(self._subscriptions)
        for event, size in batch:
            if event.cursor <= self._delivered:
                continue
            self._delivered = event.cursor
            for sub in subscriptions:
                sub._offer(event, size)
        if self._waiters:
            ready = [f for c, f in self._waiters if c <= self._delivered]
            self._waiters = [(c, f) for c, f in self._waiters if c > self._delivered]
            for future in ready:
                if not future.done():
                    future.set_result(None)

    async def committed(self, cursor: int) -> None:
        """Return once ``cursor`` is durable and delivered to subscribers."""
        self.bind()
        if cursor <= self._delivered:
            return
        if self._closing:
            raise EventBusError("the event bus is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((cursor, future))
        await future

    def subscribe(
        self, filter: EventFilter | None = None, cursor: int | None = None
    ) -> Subscription:
        """The events after ``cursor`` (``None``: from now on; ``0``: from the oldest kept)
        that pass ``filter``, from the journal first, then live. Call it on the loop the
        subscription will be iterated on. A cursor beyond the newest event (a journal
        that was deleted) counts as the newest."""
        self.bind()
        head = self._delivered
        with self._cond:
            # a cursor may be ahead of what the writer has journaled and delivered yet (it
            # was published a moment ago): only one past every published event is unknown
            published = self._next - 1
        position = head if cursor is None else max(0, min(cursor, published))
        sub = Subscription(self, filter or EventFilter(), position, head)
        if self._closing:
            sub.end()
        self._subscriptions.add(sub)
        return sub

    def end_subscriptions(self) -> None:
        """End every open subscription (their iterators stop); on the bound loop."""
        for sub in list(self._subscriptions):
            sub.end()

    # --- queries (any thread) -----------------------------------------------------------

    def query(
        self,
        filter: EventFilter | None = None,
        after: int = 0,
        limit: int = 100,
        *,
        max_scan: int = 10_000,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> QueryResult:
        """Up to ``limit`` committed events after cursor ``after`` that pass ``filter``,
        looking at no more than ``max_scan`` events and stopping once ``max_bytes`` of
        events are taken (a page has at least one event if any matches). Blocking file
        reads: call it off the event loop."""
        head = self.last_cursor
        after = max(0, min(after, head))
        want = filter.matches if filter is not None and (filter.types or filter.fields) else None
        found, scanned_to = self.journal.read(
            after, head, want=want, max_events=max(1, limit), max_scan=max_scan, max_bytes=max_bytes
        )
        return QueryResult([e for e, _ in found], scanned_to, scanned_to < head)

    # --- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Journal what is waiting, stop the writer and close the journal; later
        publishes raise :class:`EventBusError`. Call :meth:`end_subscriptions` on the
        loop first to stop subscribers (close does it too when called on that loop)."""
        with self._cond:
            if self._closing and not self._writer.is_alive():
                return
            self._closing = True
            self._cond.notify_all()
            loop = self._loop
        with contextlib.suppress(RuntimeError):
            if loop is not None and asyncio.get_running_loop() is loop:
                self.end_subscriptions()
        self._writer.join()
        self.journal.close()

    def __enter__(self) -> EventBus:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Subscription:
    """Events after a cursor that pass a filter (:meth:`EventBus.subscribe`). Iterate
    with ``async for``, or call :meth:`next` with a timeout; :attr:`cursor` is how far it
    got. Use it on the loop it was created on; :meth:`close` it when done (an abandoned
    one is dropped when garbage-collected)."""

    READ_EVENTS = 512
    READ_BYTES = 4 * 1024 * 1024

    def __init__(self, bus: EventBus, filter: EventFilter, position: int, head: int) -> None:
        self.bus = bus
        self.filter = filter
        self.position = position
        """Every event up to this cursor has been returned or filtered out."""
        self.overflows = 0
        """How often the live queue overflowed and the subscriber was re-fed from the journal."""
        self.ended = False
        # Matching events delivered live after _live_from are in _queue (the journal has
        # the ones up to _live_from that this subscription has not looked at).
        self._live_from = head
        self._offered = head
        self._queue: deque[tuple[Event, int]] = deque()
        self._queued_bytes = 0
        self._backlog: deque[Event] = deque()  # read from the journal, filtered
        self._wake = asyncio.Event()
        self._match_all = not filter.types and not filter.fields and not filter.local

    @property
    def cursor(self) -> int:
        """The cursor to resume from: every event up to it was handed out or filtered out
        (events still buffered from the journal are not counted)."""
        return self._backlog[0].cursor - 1 if self._backlog else self.position

    def _offer(self, event: Event, size: int) -> None:
        self._offered = event.cursor
        if self.ended or not (self._match_all or self.filter.matches(event)):
            return
        if self._queue and (
            len(self._queue) >= self.bus.queue_events
            or self._queued_bytes + size > self.bus.queue_bytes
        ):
            # Fallen behind: drop the queue; everything up to here comes from the journal.
            self._queue.clear()
            self._queued_bytes = 0
            self._live_from = event.cursor
            self.overflows += 1
        else:
            self._queue.append((event, size))
            self._queued_bytes += size
        self._wake.set()

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when ``timeout`` seconds pass first or the
        subscription ended (see :attr:`ended`). Cancelling it loses no event."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while not self.ended:
            if self._backlog:
                return self._backlog.popleft()
            if self.position < self._live_from:
                await self._read_journal()
                continue
            while self._queue:
                event, size = self._queue.popleft()
                self._queued_bytes -= size
                if event.cursor > self.position:
                    self.position = event.cursor
                    return event
            self.position = max(self.position, self._offered)
            self._wake.clear()
            if deadline is None:
                await self._wake.wait()
            else:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return None
                try:
                    async with asyncio.timeout(remaining):
                        await self._wake.wait()
                except TimeoutError:
                    return None
        return None

    async def _read_journal(self) -> None:
        after, upto = self.position, self._live_from
        want = None if self._match_all else self.filter.matches
        found, scanned_to = await asyncio.to_thread(
            self.bus.journal.read,
            after,
            upto,
            want=want,
            max_events=self.READ_EVENTS,
            max_bytes=self.READ_BYTES,
        )
        if self.position != after:  # pragma: no cover -- next() is not called concurrently
            return
        if scanned_to <= after and after < upto:
            # The journal no longer has those cursors (retention): skip ahead.
            scanned_to = upto
        self._backlog.extend(e for e, _ in found)
        self.position = scanned_to

    def end(self) -> None:
        """End the subscription: :meth:`next` returns None, iteration stops."""
        self.ended = True
        self._queue.clear()
        self._queued_bytes = 0
        self._wake.set()

    def close(self) -> None:
        """End the subscription and unregister it from the bus."""
        self.end()
        self.bus._subscriptions.discard(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self.next()
        if event is None:
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
