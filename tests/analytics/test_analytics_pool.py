"""The recogniser worker pool: finals first, stale and late partials skipped, the backlog,
failures confined to their job, and closing.

The recogniser here is a scheduling double: every recognition blocks until the test opens
its gate, so the order in which the pool starts jobs is observed, not timed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from callstream.analytics.asr import Recognition
from callstream.analytics.pool import AsrJob, AsrPool


class GatedRecognizer:
    """Recognises ``pcm`` as ``pcm.decode()`` (``fail...`` raises) once the test opens
    the gate of that audio; records the order in which recognitions started."""

    name = "gated"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.started: list[str] = []
        self._open: set[str] = set()

    def release(self, *names: str) -> None:
        with self._cond:
            self._open.update(names)
            self._cond.notify_all()

    def wait_started(self, count: int) -> list[str]:
        """The names of the first ``count`` recognitions, once that many started."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.started) >= count, timeout=30)
            assert ok, f"only {self.started} started, expected {count}"
            return self.started[:count]

    def recognize(self, pcm: bytes) -> Recognition:
        name = pcm.rstrip(b"\0").decode()
        with self._cond:
            self.started.append(name)
            self._cond.notify_all()
            assert self._cond.wait_for(lambda: name in self._open, timeout=30), name
        if name.startswith("fail"):
            raise RuntimeError(f"cannot recognise {name}")
        return Recognition(name, 0.9)


def job(
    name: str,
    *,
    final: bool,
    key: str | None = None,
    call: str = "call-1",
    seconds: float = 0.0,
    age: float = 0.0,
) -> AsrJob:
    """A job whose audio carries ``name`` (zero-padded to ``seconds`` of 8 kHz audio)."""
    pcm = name.encode().ljust(int(seconds * 16000), b"\0")
    return AsrJob(call, key or name, pcm, final, time.monotonic() - age)


def run(test: Callable[[AsrPool, GatedRecognizer], Awaitable[None]], **kw: Any) -> None:
    recognizer = GatedRecognizer()
    pool = AsrPool(recognizer, **kw)

    async def main() -> None:
        try:
            await test(pool, recognizer)
        finally:
            recognizer.release(*{*recognizer.started, "f0", "f1", "f2", "p1", "p2"})
            await asyncio.to_thread(pool.close)

    asyncio.run(main())


async def submit(pool: AsrPool, *jobs: AsrJob) -> list[asyncio.Task[Recognition | None]]:
    """Queue ``jobs`` in this order (each is queued before the next)."""
    tasks = []
    for j in jobs:
        tasks.append(asyncio.create_task(pool.recognize(j)))
        await asyncio.sleep(0)  # the task runs up to its await: the job is queued
    return tasks


async def busy_with_f0(pool: AsrPool, recognizer: GatedRecognizer, **kw: Any) -> asyncio.Task[Any]:
    """Occupy the (single) worker with final job ``f0`` until it is released."""
    (task,) = await submit(pool, job("f0", final=True, **kw))
    await asyncio.to_thread(recognizer.wait_started, 1)
    return task


def texts(results: list[Recognition | None]) -> list[str | None]:
    return [None if r is None else r.text for r in results]


def test_finals_run_before_queued_partials_oldest_first() -> None:
    async def test(pool: AsrPool, rec: GatedRecognizer) -> None:
        first = await busy_with_f0(pool, rec)
        tasks = await submit(
            pool,
            job("p1", final=False),
            job("f1", final=True),
            job("p2", final=False),
            job("f2", final=True),
        )
        stats = pool.stats()
        assert (stats.busy, stats.queued_finals, stats.queued_partials) == (1, 2, 2)
        for n in range(1, 5):
            rec.release(*rec.started)
            await asyncio.to_thread(rec.wait_started, n + 1)
        rec.release(*rec.started)
        results = await asyncio.gather(first, *tasks)
        assert rec.started == ["f0", "f1", "f2", "p1", "p2"]
        assert texts(results) == ["f0", "p1", "f1", "p2", "f2"]

    run(test, workers=1, partial_max_wait_s=60)


def test_two_workers_run_two_finals_at_once() -> None:
    async def test(pool: AsrPool, rec: GatedRecognizer) -> None:
        tasks = await submit(pool, job("f0", final=True), job("f1", final=True))
        assert sorted(await asyncio.to_thread(rec.wait_started, 2)) == ["f0", "f1"]
        assert pool.stats().busy == 2
        rec.release("f0", "f1")
        assert texts(await asyncio.gather(*tasks)) == ["f0", "f1"]

    run(test, workers=2)


def test_a_partial_superseded_by_a_newer_job_of_its_segment_is_skipped() -> None:
    async def test(pool: AsrPool, rec: GatedRecognizer) -> None:
        first = await busy_with_f0(pool, rec)
        tasks = await submit(
            pool,
            job("p1", final=False, key="seg-a"),  # replaced by p2: skipped
            job("p2", final=False, key="seg-a"),
            job("x1", final=False, key="seg-b"),  # replaced by its final: skipped
            job("f1", final=True, key="seg-b"),
        )
        rec.release("f0", "p2", "f1")
        results = await asyncio.gather(first, *tasks)
        assert texts(results) == ["f0", None, "p2", None, "f1"]
        assert rec.started == ["f0", "f1", "p2"]
        assert pool.stats().skipped_partials == 2

    run(test, workers=1, partial_max_wait_s=60)


def test_a_partial_that_waited_too_long_is_skipped() -> None:
    async def test(pool: AsrPool, rec: GatedRecognizer) -> None:
        first = await busy_with_f0(pool, rec)
        (late,) = await submit(pool, job("p1", final=False))
        await asyncio.sleep(0.05)  # p1 is now older than partial_max_wait_s (0.01 s)
        rec.release("f0")
        assert texts(await asyncio.gather(first, late)) == ["f0", None]
        assert rec.started == ["f0"]
        assert pool.stats().skipped_partials == 1

    run(test, workers=1, partial_max_wait_s=0.01)


def test_a_partial_submitted_long_ago_is_skipped_even_with_a_free_worker() -> None:
    async def test(pool: AsrPool, rec: GatedRecognizer) -> None:
        (late,) = await submit(pool, job("p1", final=False, age=10.0))
        assert await late is None
        assert rec.started == []

    run(test, workers=1, partial_max_wait_s=1.0)


def test_backlog_and_behind_follow_the_waiting_finals() -> None:
    async def test(pool: AsrPool, rec: GatedRecognizer) -> None:
        first = await busy_with_f0(pool, rec, seconds=1.0, age=5.0)
        tasks = await submit(
            pool,
            job("f1", final=True, seconds=2.0),
            job("f2", final=True, seconds=0.5, call="call-2"),
            job("p1", final=False, seconds=3.0),  # partials are not backlog
        )
        assert pool.backlog_seconds == pytest.approx(2.5)
        assert pool.stats().backlog_seconds == pytest.approx(2.5)
        assert pool.behind("call-1") >= 5.0  # f0 was submitted 5 s ago and is not done
        assert 0.0 < pool.behind("call-2") < 5.0
        assert pool.behind("call-3") == 0.0
        rec.release("f0", "f1", "f2", "p1")
        await asyncio.gather(first, *tasks)
        stats = pool.stats()
        assert pool.backlog_seconds == 0.0 and stats.backlog_seconds == 0.0
        assert pool.behind("call-1") == 0.0 and pool.behind("call-2") == 0.0
        assert (stats.busy, stats.queued_finals, stats.queued_partials) == (0, 0, 0)
        assert stats.recognized_seconds == pytest.approx(1.0 + 2.0 + 0.5 + 3.0)

    run(test, workers=1, partial_max_wait_s=60)


def test_a_recogniser_failure_fails_only_its_job() -> None:
    async def test(pool: AsrPool, rec: GatedRecognizer) -> None:
        tasks = await submit(pool, job("fail-1", final=True), job("f1", final=True))
        rec.release("fail-1", "f1")
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[0], RuntimeError) and "fail-1" in str(results[0])
        assert isinstance(results[1], Recognition) and results[1].text == "f1"
        (again,) = await submit(pool, job("f2", final=True))
        rec.release("f2")
        assert (await again) == Recognition("f2", 0.9)
        assert pool.stats().busy == 0

    run(test, workers=1)


def test_close_cancels_waiting_jobs_and_refuses_new_ones() -> None:
    async def test(pool: AsrPool, rec: GatedRecognizer) -> None:
        first = await busy_with_f0(pool, rec)
        waiting = await submit(pool, job("f1", final=True, seconds=1.0), job("p1", final=False))
        closing = asyncio.create_task(asyncio.to_thread(pool.close))
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results
        rec.release("f0")  # the running job still finishes, then the worker stops
        assert (await first) == Recognition("f0", 0.9)
        await closing
        assert rec.started == ["f0"]
        stats = pool.stats()
        assert (stats.queued_finals, stats.queued_partials, stats.backlog_seconds) == (0, 0, 0)
        assert pool.behind("call-1") == 0.0
        with pytest.raises(RuntimeError, match="closed"):
            await pool.recognize(job("f2", final=True))

    run(test, workers=1, partial_max_wait_s=60)
