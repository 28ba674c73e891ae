"""The embedded backend's async facade (:class:`EmbeddedStore`) beyond the contract:
appends share writer-thread batches, the synchronous backend stays usable, retention-0
fragments never reach the disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from store_helpers import CountingBackend, create

from callstream.store.backends.embedded import EmbeddedBackend, EmbeddedStore
from callstream.store.base import (
    FragmentAppend,
    FragmentData,
    FragmentRecord,
    StoreError,
    StreamRecord,
)

T0 = 1_700_000_000_000


async def item(store: EmbeddedStore, stream: StreamRecord, k: int) -> FragmentAppend:
    data = FragmentData(header=b"h", cluster=bytes([k % 256]) * 2000, trailer=b"", ebml_header=b"e")
    number = await store.log.allocate(stream, T0 + k)
    return FragmentAppend(stream, data, T0 + k, k, 1000, k, number)


def test_concurrent_appends_share_writer_batches(tmp_path: Path) -> None:
    backend = CountingBackend(tmp_path / "d")

    async def main() -> None:
        store = EmbeddedStore(backend, writer_threads=1)
        await store.start()
        try:
            streams = [await create(store, f"s{i}") for i in range(20)]
            items = [await item(store, s, k) for k in range(5) for s in streams]
            results = await asyncio.gather(*(store.log.append([it]) for it in items))
            assert all(isinstance(r, FragmentRecord) for [r] in results)
            assert sum(backend.batches) == len(items)
            assert len(backend.batches) < len(items)  # one writer thread: batches formed
            for s in streams:
                assert len(await store.log.range(s)) == 5
        finally:
            await store.close()

    asyncio.run(main())


def test_the_sync_backend_can_stay_open(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path / "d") as backend:

        async def main() -> StreamRecord:
            store = EmbeddedStore(backend, close_backend=False)
            with pytest.raises(StoreError, match="before start"):
                await store.log.append([])
            await store.start()
            s = await create(store, "s")
            await store.log.append([await item(store, s, 1)])
            await store.close()
            return s

        stream = asyncio.run(main())
        assert len(backend.fragments(stream)) == 1  # still open, and it sees the append


def test_retention_zero_fragments_never_reach_the_disk(tmp_path: Path) -> None:
    async def main() -> None:
        store = EmbeddedStore.open(tmp_path / "d")
        await store.start()
        try:
            s = await create(store, "live", retention=0)
            [rec] = await store.log.append([await item(store, s, 3)])
            assert isinstance(rec, FragmentRecord)
            assert (await store.log.read(s, rec.fragment_number)).cluster == bytes([3]) * 2000
        finally:
            await store.close()

    asyncio.run(main())
    assert [p for p in (tmp_path / "d" / "streams").rglob("*") if p.is_file()] == []


def test_subscriptions_of_other_streams_go_on_after_a_delete(tmp_path: Path) -> None:
    async def main() -> None:
        store = EmbeddedStore.open(tmp_path / "d")
        await store.start()
        try:
            doomed, kept = await create(store, "doomed"), await create(store, "kept")
            ends = store.log.subscribe(doomed, None)
            follows = store.log.subscribe(kept, None)
            ended = asyncio.create_task(anext(ends, None))
            first = asyncio.create_task(anext(follows))
            await asyncio.sleep(0)
            await store.catalog.delete_stream(doomed.arn, None)
            assert await ended is None
            [rec] = await store.log.append([await item(store, kept, 1)])
            assert await first == rec
        finally:
            await store.close()

    asyncio.run(main())
