"""The store service in process: writers that end, readers that follow, streams that go."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from callstream.client.producer import connect_producer
from callstream.kvs.selectors import StartSelector
from callstream.store.backends import open_backend
from callstream.store.service import MediaStore
from callstream.store.upload import EndReason
from callstream.store.writers import WriterClosed

T = TypeVar("T")


def run(tmp_path: Path, body: Callable[[MediaStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = MediaStore(open_backend("embedded", tmp_path / "data"))
        await store.start()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def producer(start_ms: int) -> Any:
    return connect_producer(contact_id="c-1", instance_id="i-1", producer_start_ms=start_ms)


def frames(seconds: int, start_ms: int) -> list[tuple[str, bytes, int]]:
    out = []
    for i in range(seconds * 50):
        for track in ("AUDIO_FROM_CUSTOMER", "AUDIO_TO_CUSTOMER"):
            out.append((track, bytes([i % 256]) * 320, start_ms + 20 * i))
    return out


def test_a_newer_writer_ends_the_older_one_which_stops_taking_bytes(tmp_path: Path) -> None:
    async def body(store: MediaStore) -> Any:
        stream = await store.create_stream("s", data_retention_hours=1)
        start = 1_700_000_000_000
        old = await store.open_frame_writer(stream, producer(start))
        for frame in frames(2, start):
            await old.write(*frame)
        newer = await store.open_frame_writer(stream, producer(start + 10_000))
        # The old upload is over: writing again fails at once, whatever its queue holds.
        with pytest.raises(WriterClosed):
            for frame in frames(30, start + 2000):
                await old.write(*frame)
        old_result = await old.close()
        for frame in frames(1, start + 10_000):
            await newer.write(*frame)
        new_result = await newer.close()
        return old_result, new_result

    old_result, new_result = run(tmp_path, body)
    assert old_result.end_reason is EndReason.SUPERSEDED
    assert len(old_result.stored) >= 1  # what it completed is kept
    assert new_result.end_reason is EndReason.BODY_ENDED and len(new_result.stored) == 1


def test_invalid_bytes_end_a_writer_with_an_error(tmp_path: Path) -> None:
    async def body(store: MediaStore) -> Any:
        stream = await store.create_stream("s", data_retention_hours=1)
        writer = await store.open_writer(stream)
        await writer.write(b"\x1a\x45\xdf\xa3\x01\xff\xff\xff\xff\xff\xff\xff\x00garbage")
        result = await writer.close()
        with pytest.raises(WriterClosed):
            await writer.write(b"more")
        return result

    result = run(tmp_path, body)
    assert result.end_reason is EndReason.FAILED
    assert [a.error_code for a in result.errors] == ["INVALID_MKV_DATA"]


def test_a_following_reader_ends_when_its_stream_is_deleted(tmp_path: Path) -> None:
    async def body(store: MediaStore) -> Any:
        stream = await store.create_stream("s", data_retention_hours=1)
        start = 1_700_000_000_000
        writer = await store.open_frame_writer(stream, producer(start))
        for frame in frames(2, start):
            await writer.write(*frame)
        await writer.close()
        got: list[str] = []

        async def follow() -> None:
            async for fragment in store.read(stream, StartSelector.earliest(), follow=True):
                got.append(fragment.number)

        reader = asyncio.create_task(follow())
        while len(got) < 2:  # caught up; now it waits at the live edge, with no timeout
            await asyncio.sleep(0.01)
        await store.delete_stream(stream.arn)
        await asyncio.wait_for(reader, timeout=30)
        return got

    assert len(run(tmp_path, body)) == 2


def test_a_reader_from_a_fragment_includes_it(tmp_path: Path) -> None:
    async def body(store: MediaStore) -> Any:
        stream = await store.create_stream("s", data_retention_hours=1)
        start = 1_700_000_000_000
        writer = await store.open_frame_writer(stream, producer(start))
        for frame in frames(3, start):
            await writer.write(*frame)
        numbers = (await writer.close()).stored
        second = StartSelector.from_fragment(numbers[1])
        after_second = StartSelector.after_fragment(numbers[1])
        at_time = StartSelector.producer_timestamp(start + 1500)
        picks = []
        for selector in (second, after_second, at_time):
            picks.append([f.number async for f in store.read(stream, selector, follow=False)])
        return numbers, picks

    numbers, (from_second, after_second, at_time) = run(tmp_path, body)
    assert from_second == numbers[1:]
    assert after_second == numbers[2:]
    assert at_time == numbers[1:]
