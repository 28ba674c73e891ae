"""Subscriptions to what is appended to a stream (:meth:`FragmentLog.subscribe`).

Every append of the embedded store is queued on the event loop and reported back to it
once durable (:class:`~.writers.Persister`); :class:`Feeds` sees both ends. A subscriber
registers before its catch-up query, so a fragment stored while the query runs reaches
it twice (from the index and as an append) or once, never not at all. The catch-up
marks each record it yields that is still in flight or has already arrived, and the
live copy of a marked record is skipped; a stored record that is neither was delivered
before the subscriber registered and never arrives.

Nothing polls: a subscriber sleeps on one future until an append batch for its stream is
delivered, and a batch costs one dictionary lookup per fragment whatever the number of
streams and subscribers elsewhere.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from callstream.store.base import (
    FragmentAppend,
    FragmentRecord,
    StoreError,
    StreamNotFound,
    StreamRecord,
)

__all__ = ["CATCH_UP_PAGE", "Feeds"]

CATCH_UP_PAGE = 500
"""Stored records fetched per catch-up query."""

RangeQuery = Callable[[StreamRecord, str | None, int], Awaitable[list[FragmentRecord]]]
"""``(stream, after_number, limit) -> records``: a page of a stream's stored fragments."""


class _Subscriber:
    """One subscription's inbox: records delivered since it registered."""

    __slots__ = ("arrived", "ended", "inbox", "waiter")

    def __init__(self) -> None:
        self.inbox: deque[FragmentRecord] = deque()
        self.arrived: set[str] | None = set()  # numbers delivered during the catch-up
        self.waiter: asyncio.Future[None] | None = None
        self.ended = False

    def push(self, record: FragmentRecord) -> None:
        self.inbox.append(record)
        if self.arrived is not None:
            self.arrived.add(record.fragment_number)
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        """Sleep until something is pushed or the subscription ends."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


class Feeds:
    """Subscribers by stream ARN and the appends in flight; used on one event loop."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[_Subscriber]] = {}
        self._in_flight: dict[str, dict[str, int]] = {}  # arn -> number -> items queued
        self._closed = False

    # --- the append path ---------------------------------------------------------------------
    def queued(self, items: Sequence[FragmentAppend]) -> None:
        """``items`` were handed to the writer threads (call before they can be stored)."""
        for item in items:
            numbers = self._in_flight.setdefault(item.stream.arn, {})
            numbers[item.fragment_number] = numbers.get(item.fragment_number, 0) + 1

    def delivered(
        self, items: Sequence[FragmentAppend], results: Sequence[FragmentRecord | StoreError]
    ) -> None:
        """``items`` are no longer in flight; pass each stored record to its stream's
        subscribers. Also called for items that were never queued after all."""
        for item, result in zip(items, results, strict=True):
            arn = item.stream.arn
            numbers = self._in_flight.get(arn)
            if numbers is not None:
                left = numbers.get(item.fragment_number, 0) - 1
                if left > 0:
                    numbers[item.fragment_number] = left
                else:
                    numbers.pop(item.fragment_number, None)
                    if not numbers:
                        del self._in_flight[arn]
            if isinstance(result, FragmentRecord):
                for sub in self._subscribers.get(arn, ()):
                    sub.push(result)

    def _in_flight_now(self, arn: str, number: str) -> bool:
        numbers = self._in_flight.get(arn)
        return numbers is not None and number in numbers

    # --- ends ------------------------------------------------------------------------------
    def end_stream(self, arn: str) -> None:
        """The stream was deleted: its subscriptions end."""
        for sub in self._subscribers.pop(arn, ()):
            sub.end()

    def close(self) -> None:
        """The store is closing: every subscription ends."""
        self._closed = True
        for arn in list(self._subscribers):
            self.end_stream(arn)

    # --- subscribing -------------------------------------------------------------------------
    async def subscribe(
        self, stream: StreamRecord, after_number: str | None, query: RangeQuery
    ) -> AsyncIterator[FragmentRecord]:
        """Records of ``stream`` numbered above ``after_number``: the stored ones (pages
        from ``query``, in number order), then each as its append is delivered. When the
        stream is deleted (or was already) or the store closes, what was delivered until
        then is yielded and the iteration ends."""
        arn = stream.arn
        sub = _Subscriber()
        if self._closed:
            return
        self._subscribers.setdefault(arn, set()).add(sub)
        try:
            skip: set[str] = set()  # yielded from the index, still to come live
            cursor = after_number
            while not sub.ended:
                try:
                    page = await query(stream, cursor, CATCH_UP_PAGE)
                except StreamNotFound:
                    sub.ended = True
                    break
                except StoreError:
                    if sub.ended:  # the store closed under the query
                        break
                    raise
                for record in page:
                    # A stored record is in flight, or arrived since we registered, or
                    # neither (it was delivered before: it never arrives).
                    number = record.fragment_number
                    assert sub.arrived is not None
                    if number in sub.arrived or self._in_flight_now(arn, number):
                        skip.add(number)
                    yield record
                    if sub.ended:
                        break
                if len(page) < CATCH_UP_PAGE:
                    break
                cursor = page[-1].fragment_number
            sub.arrived = None
            while True:
                while sub.inbox:
                    record = sub.inbox.popleft()
                    number = record.fragment_number
                    if number in skip:
                        skip.discard(number)
                    elif after_number is None or number > after_number:
                        yield record
                if sub.ended:
                    return
                await sub.wait()
        finally:
            subs = self._subscribers.get(arn)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[arn]
