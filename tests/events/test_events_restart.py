"""A subscriber that restarts with its cursor misses no event and sees none twice: across
a clean restart of the bus, a torn last line, and a process killed while publishing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from callstream.events import Event, EventBus, EventFilter, Subscription


def event(i: int) -> Event:
    return Event.of("ContactStarted", ContactId=f"c{i}", Channel="VOICE")


async def take(sub: Subscription, n: int) -> list[Event]:
    out: list[Event] = []
    async with asyncio.timeout(20):
        while len(out) < n:
            got = await sub.next()
            assert got is not None
            out.append(got)
    return out


def consume(
    directory: Path, cursor: int, n: int, *, last: bool = True, **filters: str
) -> list[Event]:
    """Open the bus, take ``n`` events after ``cursor`` (with ``last``: and check there
    are no more), close it: a subscriber's life."""

    async def main() -> list[Event]:
        with EventBus(directory) as bus:
            sub = bus.subscribe(EventFilter.where(**filters), cursor)
            got = await take(sub, n)
            if last:
                assert await sub.next(timeout=0.05) is None
            return got

    return asyncio.run(main())


def test_a_subscriber_resumes_exactly_after_a_restart_of_the_bus(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    with EventBus(directory) as bus:
        for i in range(100):
            bus.publish(event(i))

    async def first_life() -> int:
        with EventBus(directory) as bus:
            sub = bus.subscribe(cursor=0)
            got = await take(sub, 40)
            assert [e.cursor for e in got] == list(range(1, 41))
            return got[-1].cursor

    saved = asyncio.run(first_life())
    with EventBus(directory) as bus:  # others publish while the subscriber is away
        assert bus.last_cursor == 100
        assert [bus.publish(event(i)) for i in range(100, 150)] == list(range(101, 151))
    second = consume(directory, saved, 110)
    assert [e.cursor for e in second] == list(range(41, 151))
    assert [e.get("ContactId") for e in second] == [f"c{i}" for i in range(40, 150)]
    # a filtered subscriber resumes from the cursor of the last event it was given
    only = consume(directory, 0, 1, ContactId="c77")
    assert [e.cursor for e in only] == [78]
    assert consume(directory, 78, 1, ContactId="c120")[0].cursor == 121


def test_after_a_torn_last_line_the_cursor_is_given_to_the_next_event_once(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    with EventBus(directory) as bus:
        for i in range(50):
            bus.publish(event(i))
    seen = consume(directory, 0, 49, last=False)  # the subscriber handled 1..49
    assert seen[-1].cursor == 49
    # A crash in the middle of writing cursor 50: half its line reached the disk.
    (segment,) = directory.glob("*.jsonl")
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 30])
    with EventBus(directory) as bus:
        assert bus.last_cursor == 49
        assert bus.publish(event(999)) == 50
    after = consume(directory, 49, 1)
    assert [(e.cursor, e.get("ContactId")) for e in after] == [(50, "c999")]


def test_every_event_committed_before_a_kill_9_survives_and_cursors_continue(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "events"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from callstream.events import Event, EventBus
        bus = EventBus(Path({str(directory)!r}))
        i = 0
        while True:
            for _ in range(25):
                last = bus.publish(Event.of("ContactStarted", ContactId=f"c{{i}}"))
                i += 1
            bus.flush()
            print(last, flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert child.stdout is not None
    committed = 0
    for text in child.stdout:
        committed = int(text)
        if committed >= 5000:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    with EventBus(directory) as bus:
        last = bus.last_cursor
        assert last >= committed  # every event reported durable is there
        page = bus.query(limit=last, max_scan=10**9)
        assert [e.cursor for e in page.events] == list(range(1, last + 1))
        assert [e.get("ContactId") for e in page.events] == [f"c{i}" for i in range(last)]
        assert bus.publish(event(-1)) == last + 1
    for segment in directory.glob("*.jsonl"):
        for line in segment.read_bytes().splitlines():
            json.loads(line)  # no torn line left behind
