"""The embedded backend behind the async seam: :class:`EmbeddedStore`.

One :class:`~.backend.EmbeddedBackend` does the work. Calls that block (SQLite, files)
run on a small thread pool of the store's; what is in memory runs inline on the event
loop: looking a stream up, and allocating a fragment number (a counter in memory, whose
reservation is written once every 1024 numbers). Appends go to the writer threads
(:class:`~.writers.Persister`), which store whatever is waiting as one batch with one
index commit. The state producers and readers share — the producer lease with the last
frame's timestamp, reader slots — is the store's, in memory: it lasts as long as the
process, like the connections it describes.

Use a store from one event loop (the one :meth:`EmbeddedStore.start` ran on), and change
streams only through it while it is open: it learns of deletions and appends from its own
calls (subscriptions end and leases are forgotten on its ``delete_stream``).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

from callstream.store.backends.embedded.backend import EmbeddedBackend
from callstream.store.backends.embedded.feeds import Feeds
from callstream.store.backends.embedded.writers import Persister
from callstream.store.base import (
    FragmentAppend,
    FragmentData,
    FragmentRecord,
    NodeState,
    ProducerLease,
    ReaderKind,
    ReaderSlot,
    ReaderSlots,
    StoreError,
    StreamNotFound,
    StreamRecord,
)
from callstream.store.crypto import Keyring
from callstream.store.numbers import (
    check_server_timestamp,
    make_fragment_number,
    parse_fragment_number,
)

__all__ = ["EmbeddedCatalog", "EmbeddedLog", "EmbeddedStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(slots=True)
class _Lease:
    token: int  # the current lease's
    last_timestamp_ns: int | None  # the last frame stored under an ended lease


class EmbeddedStore:
    """:class:`~callstream.store.base.StoreBackend` over one :class:`EmbeddedBackend`.

    ``writer_threads`` store appends in batches; ``io_threads`` run the other blocking
    calls. :attr:`backend` is the synchronous backend, for callers not yet on the seam;
    :meth:`close` closes it unless ``close_backend`` is False.
    """

    def __init__(
        self,
        backend: EmbeddedBackend,
        *,
        writer_threads: int = 2,
        io_threads: int = 4,
        close_backend: bool = True,
    ) -> None:
        self.backend = backend
        self._close_backend = close_backend
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, io_threads), thread_name_prefix="callstream-store"
        )
        self._feeds = Feeds()
        self._writers = Persister(backend, threads=writer_threads, on_stored=self._feeds.delivered)
        self._catalog = EmbeddedCatalog(self)
        self._log = EmbeddedLog(self)
        self._started = False
        self._closed = False

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        max_streams: int = 10000,
        keyring: Keyring | None = None,
        writer_threads: int = 2,
        io_threads: int = 4,
    ) -> EmbeddedStore:
        """Open (and lock) the data directory; :class:`~.backend.DataDirLocked` if another
        store has it."""
        backend = EmbeddedBackend(
            data_dir,
            region=region,
            account_id=account_id,
            max_streams=max_streams,
            keyring=keyring,
        )
        return cls(backend, writer_threads=writer_threads, io_threads=io_threads)

    @property
    def catalog(self) -> EmbeddedCatalog:
        """Streams, producer leases and reader slots."""
        return self._catalog

    @property
    def log(self) -> EmbeddedLog:
        """Fragments."""
        return self._log

    @property
    def relay(self) -> None:
        """None: the data directory is this process's alone (no other node reads live)."""
        return None

    def join(self, node: NodeState) -> None:
        """None: nothing to share, the data directory is this process's alone."""
        return None

    async def start(self) -> None:
        """Start the writer threads (delivering to the running loop)."""
        if self._started:
            raise RuntimeError("EmbeddedStore.start() called twice")
        self._check_open()
        self._started = True
        self._writers.start(asyncio.get_running_loop())

    async def close(self) -> None:
        """End subscriptions, store what is queued, wait for calls in flight, then close
        the backend. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._feeds.close()
        await asyncio.to_thread(self._writers.stop)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        if self._close_backend:
            await asyncio.to_thread(self.backend.close)

    # --- for the catalog and the log -----------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    async def _run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``fn(*args, **kwargs)`` on the store's threads."""
        self._check_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))


class EmbeddedCatalog:
    """:class:`~callstream.store.base.StreamCatalog` of an :class:`EmbeddedStore`."""

    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store
        self._backend = store.backend
        self._tokens = itertools.count(1)
        self._leases: dict[str, _Lease] = {}
        self._readers = ReaderSlots()

    async def create_stream(
        self,
        name: str,
        *,
        device_name: str | None,
        media_type: str | None,
        kms_key_id: str | None,
        data_retention_hours: int,
        tags: dict[str, str],
    ) -> StreamRecord:
        """A new ACTIVE stream (see :meth:`EmbeddedBackend.create_stream`)."""
        return await self._store._run(
            self._backend.create_stream,
            name,
            device_name=device_name,
            media_type=media_type,
            kms_key_id=kms_key_id,
            data_retention_hours=data_retention_hours,
            tags=tags,
        )

    async def get_stream(self, *, name: str | None = None, arn: str | None = None) -> StreamRecord:
        """The stream (in memory: runs inline); :class:`StreamNotFound` when absent."""
        self._store._check_open()
        return self._backend.get_stream(name=name, arn=arn)

    async def list_streams(
        self, *, prefix: str | None, after_name: str | None, limit: int
    ) -> list[StreamRecord]:
        """Streams ordered by name, names > ``after_name``, starting with ``prefix``."""
        return await self._store._run(
            self._backend.list_streams, prefix=prefix, after_name=after_name, limit=limit
        )

    async def update_stream(
        self, arn: str, current_version: str, **changes: object
    ) -> StreamRecord:
        """Apply ``changes`` if the version matches (see
        :meth:`EmbeddedBackend.update_stream`)."""
        return await self._store._run(self._backend.update_stream, arn, current_version, **changes)

    async def delete_stream(self, arn: str, current_version: str | None) -> None:
        """Delete the stream and its fragments; its subscriptions end and its lease and
        reader slots are forgotten."""
        try:
            await self._store._run(self._backend.delete_stream, arn, current_version)
        except StreamNotFound:
            self._forget(arn)
            raise
        self._forget(arn)

    def _forget(self, arn: str) -> None:
        self._leases.pop(arn, None)
        self._readers.forget(arn)
        self._store._feeds.end_stream(arn)

    # --- producers ---------------------------------------------------------------------------
    async def acquire_producer(self, arn: str) -> ProducerLease:
        """Take the stream's producer lease (from any older holder)."""
        await self.get_stream(arn=arn)
        token = next(self._tokens)
        lease = self._leases.get(arn)
        if lease is None:
            lease = self._leases[arn] = _Lease(token, None)
        else:
            lease.token = token
        return ProducerLease(arn, token, lease.last_timestamp_ns)

    async def release_producer(self, lease: ProducerLease, last_timestamp_ns: int | None) -> bool:
        """Give the lease back, recording the last frame stored under it (None: nothing
        was stored, the previous value stays); False (nothing recorded) when a newer
        lease took the stream meanwhile or the stream was deleted."""
        current = self._leases.get(lease.stream_arn)
        if current is None or current.token != lease.token:
            return False
        if last_timestamp_ns is not None:
            current.last_timestamp_ns = last_timestamp_ns
        return True

    # --- readers -----------------------------------------------------------------------------
    async def acquire_reader(self, arn: str, kind: ReaderKind, limit: int) -> ReaderSlot:
        """A reader slot, or :class:`ReaderLimitExceeded` when ``limit`` are taken."""
        return await self._readers.acquire(self, arn, kind, limit)

    async def release_reader(self, slot: ReaderSlot) -> None:
        """Give a reader slot back (idempotent)."""
        self._readers.release(slot)


class EmbeddedLog:
    """:class:`~callstream.store.base.FragmentLog` of an :class:`EmbeddedStore`."""

    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store
        self._backend = store.backend

    async def allocate(self, stream: StreamRecord, server_timestamp_ms: int) -> str:
        """The stream's next fragment number (inline: the counter is in memory)."""
        self._store._check_open()
        check_server_timestamp(server_timestamp_ms)
        seq = self._backend.next_sequence(stream)
        return make_fragment_number(seq, server_timestamp_ms)

    async def append(self, items: Sequence[FragmentAppend]) -> list[FragmentRecord | StoreError]:
        """Store fragments durably on the writer threads (batched with other appends);
        one result per item, in order."""
        self._store._check_open()
        if not self._store._started:
            raise StoreError("EmbeddedStore.append() before start()")
        if not items:
            return []
        feeds = self._store._feeds
        feeds.queued(items)
        try:
            return await self._store._writers.store_all(items)
        except StoreError as err:  # shutting down: nothing was queued
            feeds.delivered(items, [err] * len(items))
            raise

    async def read(self, stream: StreamRecord, fragment_number: str) -> FragmentData:
        """One fragment's bytes (decrypted and verified)."""
        return await self._store._run(self._backend.read_fragment, stream, fragment_number)

    async def range(
        self,
        stream: StreamRecord,
        *,
        after_number: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        by: Literal["server", "producer"] = "server",
        limit: int | None = None,
    ) -> list[FragmentRecord]:
        """Fragments in number order (see :meth:`EmbeddedBackend.fragments`)."""
        return await self._store._run(
            self._backend.fragments,
            stream,
            after_number=after_number,
            start_ms=start_ms,
            end_ms=end_ms,
            by=by,
            limit=limit,
        )

    async def last(self, stream: StreamRecord) -> FragmentRecord | None:
        """The stream's newest fragment."""
        return await self._store._run(self._backend.last_fragment, stream)

    def subscribe(
        self, stream: StreamRecord, after_number: str | None
    ) -> AsyncIterator[FragmentRecord]:
        """Every fragment of ``stream`` numbered above ``after_number``: stored ones first,
        then each as its append completes; ends when the stream is deleted or the store
        closes."""
        if after_number is not None:
            parse_fragment_number(after_number)
        return self._store._feeds.subscribe(stream, after_number, self._page)

    async def _page(
        self, stream: StreamRecord, after_number: str | None, limit: int
    ) -> list[FragmentRecord]:
        return await self.range(stream, after_number=after_number, limit=limit)

    async def reap(self, now_ms: int) -> int:
        """Delete fragments older than their stream's retention; returns bytes freed."""
        return await self._store._run(self._backend.reap, now_ms)
