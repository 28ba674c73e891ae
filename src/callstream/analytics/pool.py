"""The recogniser worker pool: a bounded set of threads every call shares.

Speech recognition is the one part of call analytics that costs real CPU, so all calls
share ``workers`` threads (about one per core: a Whisper decode keeps a core busy).
Work is queued, never dropped silently:

* **final** jobs (a whole utterance) go first, oldest first, and are never dropped: past
  capacity they wait, the backlog grows and the calls fall behind live; they catch up
  when the load goes down (:attr:`AsrPool.backlog_seconds`, :meth:`AsrPool.behind`);
* **partial** jobs (an utterance still going on) run only when no final waits and another
  worker is free for the next final; a partial is skipped when a newer job for the same
  segment supersedes it (its result would be replaced at once), when it waited longer
  than ``partial_max_wait_s`` or when running it would leave no worker free.

Results come back on the event loop that submitted the job (:meth:`AsrPool.recognize`
is awaited there). Recognisers are thread-safe (:mod:`callstream.analytics.asr`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field

from callstream.analytics.asr import Recognition, Recognizer
from callstream.analytics.priority import lower_this_thread

__all__ = ["AsrJob", "AsrPool", "PoolStats"]

log = logging.getLogger("callstream.analytics")

_FINAL, _PARTIAL = 0, 1


@dataclass(slots=True)
class AsrJob:
    """One utterance to recognise: whose it is, its audio (8 kHz s16le) and whether it is
    final. ``key`` names the segment (a newer job with the same key supersedes a
    waiting partial)."""

    call_id: str
    key: str
    pcm: bytes
    final: bool
    submitted: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 16000


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of the pool's load."""

    workers: int
    busy: int
    queued_finals: int
    queued_partials: int
    backlog_seconds: float
    """Audio seconds of final jobs waiting."""
    recognized_seconds: float
    """Audio seconds recognised since start."""
    busy_seconds: float
    """Worker seconds spent recognising since start."""
    skipped_partials: int


class AsrPool:
    """``workers`` threads running ``recognizer`` over queued jobs (module docstring)."""

    def __init__(
        self, recognizer: Recognizer, workers: int = 2, *, partial_max_wait_s: float = 1.0
    ) -> None:
        self.recognizer = recognizer
        self.workers = max(1, workers)
        self.partial_max_wait_s = partial_max_wait_s
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, AsrJob, asyncio.Future[Recognition | None]]] = []
        self._order = itertools.count()
        self._latest: dict[tuple[str, str], int] = {}  # (call, key) -> newest job's order
        self._closed = False
        self._busy = 0
        self._backlog = 0.0
        self._finals = 0
        self._recognized = 0.0
        self._busy_s = 0.0
        self._skipped = 0
        self._oldest_final: dict[str, list[float]] = {}  # call -> submit times waiting/running
        self._threads = [
            threading.Thread(target=self._work, name=f"callstream-asr-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    async def recognize(self, job: AsrJob) -> Recognition | None:
        """Queue ``job`` and wait for its result (None: a partial that was skipped)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Recognition | None] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the recogniser pool is closed")
            order = next(self._order)
            self._latest[(job.call_id, job.key)] = order
            heapq.heappush(self._heap, (_FINAL if job.final else _PARTIAL, order, job, future))
            if job.final:
                self._backlog += job.seconds
                self._finals += 1
                self._oldest_final.setdefault(job.call_id, []).append(job.submitted)
            self._cond.notify()
        return await future

    def stats(self) -> PoolStats:
        """The pool's load now."""
        with self._cond:
            return PoolStats(
                workers=self.workers,
                busy=self._busy,
                queued_finals=self._finals,
                queued_partials=len(self._heap) - self._finals,
                backlog_seconds=round(self._backlog, 3),
                recognized_seconds=round(self._recognized, 3),
                busy_seconds=round(self._busy_s, 3),
                skipped_partials=self._skipped,
            )

    @property
    def backlog_seconds(self) -> float:
        """Audio seconds of final jobs waiting for a worker."""
        with self._cond:
            return self._backlog

    def behind(self, call_id: str) -> float:
        """How long the call's oldest unfinished final job has been waiting (0: none)."""
        with self._cond:
            waiting = self._oldest_final.get(call_id)
            return time.monotonic() - min(waiting) if waiting else 0.0

    def forget(self, call_id: str) -> None:
        """A call ended: drop what the pool remembers of its segments."""
        with self._cond:
            for key in [k for k in self._latest if k[0] == call_id]:
                del self._latest[key]

    def close(self) -> None:
        """Stop the workers; waiting jobs are cancelled."""
        with self._cond:
            self._closed = True
            pending, self._heap = self._heap, []
            # the cancelled finals are no longer waiting: the backlog and how far each call
            # is behind keep only the jobs still running
            for kind, _, job, _ in pending:
                if kind == _FINAL:
                    self._finals -= 1
                    self._backlog = max(0.0, self._backlog - job.seconds)
                    self._final_done(job)
            self._cond.notify_all()
        for _, _, _, future in pending:
            _resolve(future, None, cancel=True)
        for thread in self._threads:
            thread.join(timeout=30)

    def _take(self) -> tuple[AsrJob, asyncio.Future[Recognition | None]] | None:
        with self._cond:
            while True:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return None
                kind, order, job, future = heapq.heappop(self._heap)
                if kind == _FINAL:
                    self._finals -= 1
                    self._backlog = max(0.0, self._backlog - job.seconds)
                    self._busy += 1
                    return job, future
                stale = self._latest.get((job.call_id, job.key)) != order
                late = time.monotonic() - job.submitted > self.partial_max_wait_s
                # one worker stays free for the next final (partials are a nicety)
                crowded = self.workers > 1 and self._busy + 1 >= self.workers
                if stale or late or crowded or future.cancelled():
                    self._skipped += 1
                    _resolve(future, None)
                    continue
                self._busy += 1
                return job, future

    def _work(self) -> None:
        lower_this_thread()  # live media first (callstream.analytics.priority)
        while True:
            taken = self._take()
            if taken is None:
                return
            job, future = taken
            started = time.monotonic()
            try:
                result: Recognition | None = self.recognizer.recognize(job.pcm)
                error: BaseException | None = None
            except Exception as err:  # a recogniser failure fails the job, not the pool
                log.error("speech recogniser failed on %s: %s", job.call_id, err)
                result, error = None, err
            spent = time.monotonic() - started
            with self._cond:
                self._busy -= 1
                self._busy_s += spent
                self._recognized += job.seconds
                if self._latest.get((job.call_id, job.key)) is not None and job.final:
                    self._latest.pop((job.call_id, job.key), None)
                if job.final:
                    self._final_done(job)
            _resolve(future, result, error=error)

    def _final_done(self, job: AsrJob) -> None:
        """``job`` (a final) no longer keeps its call behind (under ``_cond``)."""
        waiting = self._oldest_final.get(job.call_id)
        if waiting:
            with contextlib.suppress(ValueError):
                waiting.remove(job.submitted)
            if not waiting:
                del self._oldest_final[job.call_id]


def _resolve(
    future: asyncio.Future[Recognition | None],
    result: Recognition | None,
    *,
    error: BaseException | None = None,
    cancel: bool = False,
) -> None:
    def settle() -> None:
        if future.done():
            return
        if cancel:
            future.cancel()
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    loop = future.get_loop()
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
        loop.call_soon_threadsafe(settle)
