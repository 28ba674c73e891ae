"""Durable appends from the event loop, on a few dedicated writer threads.

A fragment is complete about once a second per stream; with hundreds of live streams
that is hundreds of durable appends a second. Handing each to a thread pool costs a
thread hop, a wake-up of the event loop and a turn at the GIL per fragment, and the
pool's threads fight the event loop for the GIL. Here a fixed number of writer threads
take whatever fragments are waiting as one batch (:meth:`Backend.append_fragments`:
one fsync per record, one index commit per batch) and report the whole batch back to
the event loop in one call. An idle server stores each fragment at once: a batch never
waits to fill.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from callstream.store.base import Backend, FragmentAppend, FragmentRecord, StoreError

__all__ = ["Persister", "StoredCallback"]

log = logging.getLogger(__name__)

_Item = tuple[FragmentAppend, "asyncio.Future[Any]"]

StoredCallback = Callable[[Sequence[FragmentAppend], Sequence[FragmentRecord | StoreError]], None]
"""Called on the event loop with each batch's items and their results, before anyone
waiting for them resumes."""


class Persister:
    """Durable appends for coroutines; :meth:`start` it on the loop that awaits
    :meth:`store`, :meth:`stop` it before closing the backend.

    ``on_stored`` (optional) sees every batch as it is delivered on the loop.
    """

    MAX_BATCH = 256

    def __init__(
        self, backend: Backend, *, threads: int = 2, on_stored: StoredCallback | None = None
    ) -> None:
        self.backend = backend
        self.threads = max(1, threads)
        self._on_stored = on_stored
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._lock = threading.Lock()  # orders store()'s check-and-put against stop()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer threads; results are delivered on ``loop``."""
        self._loop = loop
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"callstream-persist-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        """Store what is queued, then end the threads; later :meth:`store` calls fail."""
        with self._lock:
            self._stopped = True
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join()
        self._workers.clear()

    async def store(self, item: FragmentAppend) -> FragmentRecord:
        """Store one fragment durably; raises the :class:`StoreError` that prevented it."""
        if self._loop is None:
            raise RuntimeError("Persister.store() before start()")
        future: asyncio.Future[Any] = self._loop.create_future()
        with self._lock:
            if self._stopped:
                raise StoreError("the server is shutting down")
            self._queue.put((item, future))
        result = await future
        if isinstance(result, BaseException):
            raise result
        record: FragmentRecord = result
        return record

    async def store_all(self, items: Sequence[FragmentAppend]) -> list[FragmentRecord | StoreError]:
        """Store fragments durably (they may share batches with other callers'); one
        result per item, in order: its record, or the error that kept it from being
        stored. Raises :class:`StoreError` (nothing queued) once stopped."""
        if self._loop is None:
            raise RuntimeError("Persister.store() before start()")
        futures: list[asyncio.Future[Any]] = [self._loop.create_future() for _ in items]
        with self._lock:
            if self._stopped:
                raise StoreError("the server is shutting down")
            for item, future in zip(items, futures, strict=True):
                self._queue.put((item, future))
        return list(await asyncio.gather(*futures))

    def _run(self) -> None:
        get = self._queue.get
        while (first := get()) is not None:
            batch = [first]
            stop = False
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                results: list[Any] = list(self.backend.append_fragments([i for i, _ in batch]))
            except Exception as err:  # e.g. the store was closed under us
                results = [err if isinstance(err, StoreError) else StoreError(str(err))] * len(
                    batch
                )
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._deliver, batch, results)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
            if stop:
                return

    def _deliver(self, batch: list[_Item], results: list[Any]) -> None:
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the waiting connection may have been cancelled
                future.set_result(result)
        if self._on_stored is not None:
            try:
                self._on_stored([item for item, _ in batch], results)
            except Exception:  # a bug there must not stop deliveries
                log.exception("on_stored callback failed")
