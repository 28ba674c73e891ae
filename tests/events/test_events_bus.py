"""The event bus: publish from any thread, subscribe with filters and cursors, slow
subscribers, queries, a journal that cannot be written."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from callstream.events import Event, EventBus, EventBusError, EventError, EventFilter, Subscription

ARN = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/s/1"


def created(i: int) -> Event:
    return Event.of("StreamCreated", StreamARN=f"{ARN}-{i}", StreamName=f"s{i}")


def contact(kind: str, contact_id: str) -> Event:
    if kind == "ContactStarted":
        return Event.of(kind, ContactId=contact_id, Channel="VOICE")
    return Event.of(kind, ContactId=contact_id)


async def take(sub: Subscription, n: int, timeout: float = 20.0) -> list[Event]:
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            event = await sub.next()
            assert event is not None, "subscription ended"
            out.append(event)
    return out


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EventBus]:
    with EventBus(tmp_path / "events") as b:
        yield b


def test_a_live_subscriber_sees_each_event_once_after_it_is_durable(bus: EventBus) -> None:
    async def main() -> None:
        sub = bus.subscribe()
        cursors = [bus.publish(created(i)) for i in range(5)]
        assert cursors == [1, 2, 3, 4, 5]
        await bus.committed(5)
        assert bus.last_cursor == 5
        got = await take(sub, 5)
        assert [e.cursor for e in got] == cursors
        assert [e.get("StreamName") for e in got] == [f"s{i}" for i in range(5)]
        assert await sub.next(timeout=0.05) is None  # nothing more: a timeout, not the end
        assert not sub.ended
        assert sub.cursor == 5

    asyncio.run(main())


def test_subscribe_from_a_cursor_reads_the_journal_then_goes_live_without_gap_or_repeat(
    bus: EventBus,
) -> None:
    for i in range(3000):
        bus.publish(created(i))

    async def main() -> None:
        sub = bus.subscribe(cursor=1234)
        stop = threading.Event()

        def publish_more() -> None:
            for i in range(3000, 5000):
                bus.publish(created(i))
            stop.set()

        writer = threading.Thread(target=publish_more)
        writer.start()
        got = await take(sub, 5000 - 1234)
        writer.join()
        assert [e.cursor for e in got] == list(range(1235, 5001))
        assert await sub.next(timeout=0.05) is None

        everything = bus.subscribe(cursor=0)
        assert [e.cursor for e in await take(everything, 5000)] == list(range(1, 5001))
        beyond = bus.subscribe(cursor=10**9)  # a cursor from a journal that no longer exists
        assert beyond.position == 5000

    asyncio.run(main())


def test_filters_apply_to_journal_and_live_events(bus: EventBus) -> None:
    kinds = ["ContactStarted", "MediaStreamingStopped", "ContactEnded"]

    def publish(n0: int, n1: int) -> None:
        for i in range(n0, n1):
            kind = kinds[i % 3]
            if kind == "MediaStreamingStopped":
                bus.publish(
                    Event.of(kind, ContactId=f"c{i % 5}", StreamARN=ARN, StopTimestamp=1000 + i)
                )
            else:
                bus.publish(contact(kind, f"c{i % 5}"))

    publish(0, 300)

    async def main() -> None:
        wanted = EventFilter.where({"ContactStarted", "ContactEnded"}, ContactId="c2")
        sub = bus.subscribe(wanted, cursor=0)
        publish(300, 600)
        expected = [
            i + 1 for i in range(600) if kinds[i % 3] != "MediaStreamingStopped" and i % 5 == 2
        ]
        got = await take(sub, len(expected))
        assert [e.cursor for e in got] == expected
        assert all(wanted.matches(e) for e in got)
        assert await sub.next(timeout=0.05) is None

    asyncio.run(main())


def test_a_slow_subscriber_is_refed_from_the_journal_and_never_buffers_more_than_its_queue(
    tmp_path: Path,
) -> None:
    with EventBus(tmp_path / "events", queue_events=16) as bus:

        async def main() -> None:
            slow = bus.subscribe(cursor=0)
            fast = bus.subscribe(cursor=0)
            fast_got: list[int] = []

            async def keep_up() -> None:
                fast_got.extend(e.cursor for e in await take(fast, 3000))

            reader = asyncio.create_task(keep_up())
            for i in range(3000):
                bus.publish(created(i))
                if i % 100 == 0:
                    await asyncio.sleep(0)  # let deliveries in while publishing
                    assert len(slow._queue) <= 16
            await bus.committed(3000)
            assert len(slow._queue) <= 16
            assert slow.overflows > 0  # it fell behind and dropped its live queue
            got = await take(slow, 3000)
            assert [e.cursor for e in got] == list(range(1, 3001))
            await reader
            assert fast_got == list(range(1, 3001))

        asyncio.run(main())


def test_publish_is_thread_safe_and_orders_each_publishers_events(bus: EventBus) -> None:
    results: dict[int, list[int]] = {}

    def publisher(t: int) -> None:
        results[t] = [bus.publish(created(t * 1000 + i)) for i in range(500)]

    threads = [threading.Thread(target=publisher, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bus.flush(timeout=30)
    every = sorted(c for cursors in results.values() for c in cursors)
    assert every == list(range(1, 4001))
    for cursors in results.values():
        assert cursors == sorted(cursors)
    page = bus.query(after=0, limit=5000, max_scan=10**9)
    by_cursor = {e.cursor: e.get("StreamName") for e in page.events}
    for t, cursors in results.items():
        assert [by_cursor[c] for c in cursors] == [f"s{t * 1000 + i}" for i in range(500)]


def test_query_pages_with_a_filter_and_says_whether_more_follow(bus: EventBus) -> None:
    for i in range(250):
        bus.publish(contact("ContactStarted" if i % 2 else "ContactEnded", f"c{i % 10}"))
    bus.flush()
    page = bus.query(EventFilter.where(ContactId="c3"), after=0, limit=10)
    assert [e.cursor for e in page.events] == [4 + 10 * k for k in range(10)]
    assert page.next_cursor == 94 and page.has_more
    rest = bus.query(EventFilter.where(ContactId="c3"), after=page.next_cursor, limit=100)
    assert [e.cursor for e in rest.events] == [4 + 10 * k for k in range(10, 25)]
    assert (rest.next_cursor, rest.has_more) == (250, False)
    sparse = bus.query(EventFilter.where(ContactId="c3"), after=0, limit=100, max_scan=50)
    assert len(sparse.events) == 5 and sparse.next_cursor == 50 and sparse.has_more
    assert bus.query(after=10**6).events == [] and bus.query(after=10**6).next_cursor == 250
    everything = bus.query(limit=1000)
    assert [e.cursor for e in everything.events] == list(range(1, 251))
    small = bus.query(limit=1000, max_bytes=1000)  # pages are bounded in bytes too
    assert 1 < len(small.events) < 20 and small.has_more
    assert small.next_cursor == small.events[-1].cursor
    assert len(bus.query(limit=1000, max_bytes=1).events) == 1  # at least one event


def test_invalid_events_and_a_closed_bus_are_refused(tmp_path: Path) -> None:
    bus = EventBus(tmp_path / "events")
    bad = Event("StreamCreated", {"StreamName": "s"}, 1)
    with pytest.raises(EventError, match="StreamARN: required"):
        bus.publish(bad)
    with pytest.raises(EventError, match="unknown event type"):
        bus.publish(Event("Whatever", {}, 1))
    huge = Event.of("ContactEnded", ContactId="c", ContactRecord={"x": "y" * 3_000_000})
    with pytest.raises(EventError, match="more than an event may have"):
        bus.publish(huge)
    assert bus.publish(created(1)) == 1
    bus.close()
    with pytest.raises(EventBusError, match="closed"):
        bus.publish(created(2))
    bus.close()  # twice is fine
    with EventBus(tmp_path / "events") as again:
        assert again.last_cursor == 1  # what was published before close is durable


def test_cancelled_waits_lose_no_event_and_ending_stops_iteration(bus: EventBus) -> None:
    async def main() -> None:
        sub = bus.subscribe(cursor=0)
        got: list[int] = []

        async def publish_slowly() -> None:
            for i in range(200):
                bus.publish(created(i))
                if i % 7 == 0:
                    await asyncio.sleep(0.001)

        publisher = asyncio.create_task(publish_slowly())
        while len(got) < 200:
            try:
                event = await asyncio.wait_for(sub.next(), 0.0005)
            except TimeoutError:
                continue
            assert event is not None
            got.append(event.cursor)
        await publisher
        assert got == list(range(1, 201))

        listening = bus.subscribe()

        async def drain() -> list[Event]:
            return [e async for e in listening]

        task = asyncio.create_task(drain())
        await asyncio.sleep(0.01)
        bus.end_subscriptions()
        assert await asyncio.wait_for(task, 5) == []
        assert listening.ended and await listening.next() is None

    asyncio.run(main())


def test_the_bus_moves_to_a_new_loop_once_the_old_one_is_closed(bus: EventBus) -> None:
    async def first() -> int:
        sub = bus.subscribe()
        bus.publish(created(1))
        (event,) = await take(sub, 1)
        return event.cursor

    async def second(after: int) -> list[int]:
        sub = bus.subscribe(cursor=after)
        bus.publish(created(2))
        return [e.cursor for e in await take(sub, 1)]

    cursor = asyncio.run(first())
    assert asyncio.run(second(cursor)) == [2]


def test_a_journal_that_cannot_be_written_holds_events_back_and_bounds_the_backlog(
    tmp_path: Path,
) -> None:
    # The file-size limit makes every journal write fail with EFBIG (in a child process,
    # so the limit touches nothing else); lifting it lets the writer's retry through.
    script = textwrap.dedent(
        f"""
        import asyncio, resource, signal, time
        from pathlib import Path
        from callstream.events import Event, EventBus, EventBusError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        bus = EventBus(Path({str(tmp_path)!r}) / "events", max_backlog_bytes=20_000)
        bus.publish(Event.of("StreamDeleted", StreamARN="a", StreamName="s0"))
        bus.flush()
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        seg = sorted((Path({str(tmp_path)!r}) / "events").glob("*.jsonl"))[0]
        resource.setrlimit(resource.RLIMIT_FSIZE, (seg.stat().st_size + 50, hard))
        accepted = 1
        try:
            for i in range(1, 10_000):
                bus.publish(Event.of("StreamDeleted", StreamARN="a", StreamName=f"s{{i}}"))
                accepted += 1
        except EventBusError as err:
            print("refused", "behind" in str(err))
        print("flushed", bus.flush(timeout=1.5), bus.last_cursor)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        print("flushed", bus.flush(timeout=30), bus.last_cursor == accepted)
        page = bus.query(limit=10_000)
        print("names", [e.get("StreamName") for e in page.events] == [f"s{{i}}" for i in range(accepted)])
        bus.close()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.splitlines() == [
        "refused True",
        "flushed False 1",
        "flushed True True",
        "names True",
    ], out.stderr
    assert "cannot write" in out.stderr  # logged once, not per retry
