"""The persister: fragments from many connections stored durably in shared batches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from store_helpers import CountingBackend

from callstream.store import (
    EmbeddedBackend,
    FragmentAppend,
    FragmentData,
    FragmentRecord,
    StoreError,
    StreamNotFound,
    make_fragment_number,
)
from callstream.store.backends.embedded import Persister

T0 = 1_700_000_000_000


def create(backend: EmbeddedBackend, name: str) -> None:
    backend.create_stream(
        name, device_name=None, media_type=None, kms_key_id=None, data_retention_hours=1, tags={}
    )


def fragment(backend: EmbeddedBackend, stream_name: str, k: int) -> FragmentAppend:
    stream = backend.get_stream(name=stream_name)
    seq = backend.next_sequence(stream)
    data = FragmentData(
        header=b"h",
        cluster=b"\x1f\x43\xb6\x75" + bytes([k % 256]) * 3000,
        trailer=b"",
        ebml_header=b"e",
    )
    return FragmentAppend(
        stream,
        data,
        server_timestamp_ms=T0 + k,
        producer_timestamp_ms=T0 + k,
        duration_ms=1000,
        cluster_timecode=k,
        fragment_number=make_fragment_number(seq, T0 + k),
    )


def test_concurrent_fragments_are_stored_in_shared_batches(tmp_path: Path) -> None:
    backend = CountingBackend(tmp_path / "data")
    names = [f"s{i}" for i in range(50)]
    for name in names:
        create(backend, name)
    items = [fragment(backend, name, k) for k in range(4) for name in names]

    async def main() -> list[FragmentRecord]:
        persister = Persister(backend, threads=2)
        persister.start(asyncio.get_running_loop())
        try:
            return await asyncio.gather(*(persister.store(item) for item in items))
        finally:
            await asyncio.to_thread(persister.stop)

    records = asyncio.run(main())
    assert [r.fragment_number for r in records] == [i.fragment_number for i in items]
    for item in items:
        assert backend.read_fragment(item.stream, item.fragment_number) == item.data
    assert sum(backend.batches) == len(items)
    assert len(backend.batches) < len(items) // 4  # shared work, not one hop per fragment
    backend.close()


def test_a_failed_fragment_raises_for_its_connection_only(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "data")
    for name in ("kept", "gone"):
        create(backend, name)
    kept, gone = fragment(backend, "kept", 1), fragment(backend, "gone", 2)
    backend.delete_stream(gone.stream.arn, current_version=None)

    async def main() -> tuple[object, object]:
        persister = Persister(backend, threads=1)
        persister.start(asyncio.get_running_loop())
        try:
            return tuple(
                await asyncio.gather(
                    persister.store(kept), persister.store(gone), return_exceptions=True
                )
            )  # type: ignore[return-value]
        finally:
            await asyncio.to_thread(persister.stop)

    ok, failed = asyncio.run(main())
    assert isinstance(ok, FragmentRecord) and isinstance(failed, StreamNotFound)
    assert backend.read_fragment(kept.stream, kept.fragment_number) == kept.data
    backend.close()


def test_store_before_start_is_an_error(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path / "data") as backend:
        persister = Persister(backend)
        with pytest.raises(RuntimeError):
            asyncio.run(persister.store(None))  # type: ignore[arg-type]


def test_a_fragment_handed_in_after_shutdown_is_refused_not_lost_in_a_queue(
    tmp_path: Path,
) -> None:
    with EmbeddedBackend(tmp_path / "data") as backend:
        create(backend, "s")
        item = fragment(backend, "s", 1)

        async def main() -> None:
            persister = Persister(backend)
            persister.start(asyncio.get_running_loop())
            await asyncio.to_thread(persister.stop)
            with pytest.raises(StoreError):
                await asyncio.wait_for(persister.store(item), 5)

        asyncio.run(main())
