"""The store backend contract: what every backend behind the async seam
(:class:`~callstream.store.base.StoreBackend`) must do, tested through that seam only.

A backend is tested by adding one line to :data:`BACKENDS`. Every test is plain
``asyncio.run`` (no pytest-asyncio): :meth:`Case.run` opens the backend, starts it, runs
the test's coroutine against it and closes it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from store_helpers import create

from callstream.kvs.model import parse_stream_arn
from callstream.store.backends import open_backend
from callstream.store.base import (
    FragmentAppend,
    FragmentData,
    FragmentNotFound,
    FragmentRecord,
    InvalidArgument,
    ReaderLimitExceeded,
    StoreBackend,
    StoreError,
    StreamInUse,
    StreamLimitExceeded,
    StreamNotFound,
    StreamRecord,
    TagsLimitExceeded,
    VersionMismatch,
)
from callstream.store.crypto import default_kms_key_id
from callstream.store.numbers import (
    MAX_SERVER_TIMESTAMP_MS,
    is_valid_fragment_number,
    make_fragment_number,
)

T0 = 1_700_000_000_000  # a server clock origin (ms)
HOUR = 3_600_000
REGION = "eu-west-1"
ACCOUNT = "111122223333"
TIMEOUT = 60.0  # a hung test fails instead of blocking the run

_T = TypeVar("_T")


@dataclass(frozen=True)
class Case:
    """One backend under test: its ``--store`` spec and where its data lives."""

    spec: str
    persistent: bool  # keeps streams and fragments across close + open
    data_dir: Path = Path()

    def open(self, **options: Any) -> StoreBackend:
        return open_backend(self.spec, self.data_dir, region=REGION, account_id=ACCOUNT, **options)

    def run(self, body: Callable[[StoreBackend], Awaitable[_T]], **options: Any) -> _T:
        """``body(backend)`` on a started backend, closed afterwards."""

        async def main() -> _T:
            backend = self.open(**options)
            await backend.start()
            try:
                return await asyncio.wait_for(body(backend), TIMEOUT)
            finally:
                await backend.close()

        return asyncio.run(main())


BACKENDS = [
    pytest.param(Case("embedded", persistent=True), id="embedded"),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    case: Case = request.param
    return Case(case.spec, case.persistent, tmp_path / "store")


# --- helpers ---------------------------------------------------------------------------------


def payload(k: int, size: int = 1500) -> FragmentData:
    rnd = random.Random(k)
    return FragmentData(
        header=b"\x15\x49\xa9\x66" + rnd.randbytes(40),
        cluster=b"\x1f\x43\xb6\x75" + rnd.randbytes(size),
        trailer=b"" if k % 2 else b"\x12\x54\xc3\x67" + rnd.randbytes(12),
        ebml_header=b"\x1a\x45\xdf\xa3" + rnd.randbytes(20),
    )


async def item(
    b: StoreBackend,
    stream: StreamRecord,
    k: int,
    *,
    server_ms: int | None = None,
    producer_ms: int | None = None,
    number: str | None = None,
    size: int | None = None,
) -> FragmentAppend:
    server = T0 + k * 1000 if server_ms is None else server_ms
    return FragmentAppend(
        stream,
        payload(k),
        server_timestamp_ms=server,
        producer_timestamp_ms=k * 1000 if producer_ms is None else producer_ms,
        duration_ms=1000,
        cluster_timecode=k * 1000,
        fragment_number=number or await b.log.allocate(stream, server),
        size=size,
    )


async def append(b: StoreBackend, stream: StreamRecord, k: int, **kw: Any) -> FragmentRecord:
    [result] = await b.log.append([await item(b, stream, k, **kw)])
    assert isinstance(result, FragmentRecord), result
    return result


def numbers(records: list[FragmentRecord]) -> list[str]:
    return [r.fragment_number for r in records]


async def collect(it: AsyncIterator[FragmentRecord], n: int) -> list[FragmentRecord]:
    out: list[FragmentRecord] = []
    async for rec in it:
        out.append(rec)
        if len(out) == n:
            break
    return out


# --- streams ---------------------------------------------------------------------------------


def test_create_get_list_update_delete(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        cat = b.catalog
        s = await cat.create_stream(
            "cam-1",
            device_name="dev_1",
            media_type="audio/L16",
            kms_key_id=None,
            data_retention_hours=24,
            tags={"team": "voice"},
        )
        assert (s.name, s.status, s.device_name, s.media_type) == (
            "cam-1",
            "ACTIVE",
            "dev_1",
            "audio/L16",
        )
        assert (s.data_retention_hours, s.tags) == (24, {"team": "voice"})
        arn = parse_stream_arn(s.arn)
        assert (arn.region, arn.account_id, arn.name, arn.creation_ms) == (
            REGION,
            ACCOUNT,
            "cam-1",
            s.creation_time_ms,
        )
        assert s.version and s.kms_key_id
        assert await cat.get_stream(name="cam-1") == s
        assert await cat.get_stream(arn=s.arn) == s
        assert await cat.get_stream(name="cam-1", arn=s.arn) == s
        for lookup in ({"name": "nope"}, {"arn": s.arn + "0"}, {"name": "x", "arn": s.arn}):
            with pytest.raises(StreamNotFound):
                await cat.get_stream(**lookup)
        with pytest.raises(StreamInUse):
            await create(b, "cam-1")

        updated = await cat.update_stream(
            s.arn, s.version, device_name="dev_2", data_retention_hours=48, tags={"a": "b"}
        )
        assert updated.version != s.version
        assert (updated.device_name, updated.data_retention_hours, updated.tags) == (
            "dev_2",
            48,
            {"a": "b"},
        )
        assert (updated.media_type, updated.arn) == (s.media_type, s.arn)
        assert await cat.get_stream(arn=s.arn) == updated
        with pytest.raises(VersionMismatch):
            await cat.update_stream(s.arn, s.version, device_name="dev_3")
        with pytest.raises(InvalidArgument):
            await cat.update_stream(s.arn, updated.version, name="renamed")
        with pytest.raises(StreamNotFound):
            await cat.update_stream(s.arn + "0", updated.version, device_name="x")

        with pytest.raises(VersionMismatch):
            await cat.delete_stream(s.arn, s.version)
        await cat.delete_stream(s.arn, updated.version)
        with pytest.raises(StreamNotFound):
            await cat.get_stream(arn=s.arn)
        with pytest.raises(StreamNotFound):
            await cat.delete_stream(s.arn, None)
        again = await create(b, "cam-1")  # the name is free again, under a new ARN
        assert again.arn != s.arn

    backend.run(body)


def test_list_streams_by_prefix_and_page(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        cat = b.catalog
        for name in ("b", "a", "ab", "c", "abc", "d"):
            await create(b, name)
        everything = await cat.list_streams(prefix=None, after_name=None, limit=100)
        assert [s.name for s in everything] == ["a", "ab", "abc", "b", "c", "d"]
        prefixed = await cat.list_streams(prefix="ab", after_name=None, limit=100)
        assert [s.name for s in prefixed] == ["ab", "abc"]
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            page = await cat.list_streams(prefix=None, after_name=after, limit=4)
            if not page:
                break
            pages.append([s.name for s in page])
            after = page[-1].name
        assert pages == [["a", "ab", "abc", "b"], ["c", "d"]]
        assert await cat.list_streams(prefix="a", after_name="ab", limit=10) == [
            await cat.get_stream(name="abc")
        ]
        assert await cat.list_streams(prefix="z", after_name=None, limit=10) == []
        assert await cat.list_streams(prefix=None, after_name=None, limit=0) == []

    backend.run(body)


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "has space"),
        ("name", ""),
        ("name", "x" * 257),
        ("device_name", "bad/name"),
        ("media_type", "audio"),
        ("media_type", "audio/" + "x" * 130),
        ("kms_key_id", ""),
        ("data_retention_hours", -1),
        ("data_retention_hours", 87601),
        ("data_retention_hours", True),
        ("tags", {"": "v"}),
        ("tags", {"k": "bad\nvalue"}),
    ],
)
def test_values_kvs_rejects_are_invalid_arguments(backend: Case, field: str, value: Any) -> None:
    async def body(b: StoreBackend) -> None:
        args: dict[str, Any] = {
            "name": "ok",
            "device_name": None,
            "media_type": None,
            "kms_key_id": None,
            "data_retention_hours": 1,
            "tags": {},
        }
        args[field] = value
        name = args.pop("name")
        with pytest.raises(InvalidArgument):
            await b.catalog.create_stream(name, **args)
        assert await b.catalog.list_streams(prefix=None, after_name=None, limit=10) == []

    backend.run(body)


def test_tag_and_stream_limits(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        fifty = {f"k{i}": f"v{i}" for i in range(50)}
        s = await create(b, "tagged", tags=fifty)
        assert s.tags == fifty
        with pytest.raises(TagsLimitExceeded):
            await create(b, "too-many", tags={**fifty, "k50": "v"})
        with pytest.raises(TagsLimitExceeded):
            await b.catalog.update_stream(s.arn, s.version, tags={**fifty, "k50": "v"})
        assert (await b.catalog.get_stream(arn=s.arn)).tags == fifty
        await create(b, "second")
        await create(b, "third")
        with pytest.raises(StreamLimitExceeded):
            await create(b, "fourth")

    backend.run(body, max_streams=3)


def test_kms_key_ids_and_the_answers_kvs_gives(backend: Case) -> None:
    """The KmsKeyId a stream reports (the account's default key when none is given), and
    the answers as KVS gives them: a missing stream, a request checked before its stream
    is looked up, an invalid new value that changes nothing."""

    async def body(b: StoreBackend) -> None:
        cat = b.catalog
        plain = await create(b, "plain")
        assert plain.kms_key_id == default_kms_key_id(REGION, ACCOUNT)
        keyed = await cat.create_stream(
            "keyed",
            device_name=None,
            media_type=None,
            kms_key_id="alias/calls",
            data_retention_hours=1,
            tags={},
        )
        assert keyed.kms_key_id == "alias/calls"
        stored = await append(b, keyed, 0)
        assert await b.log.read(keyed, stored.fragment_number) == payload(0)

        with pytest.raises(StreamNotFound) as missing:
            await cat.get_stream(name="nope")
        assert missing.value.message == "The requested stream is not found or not active."
        with pytest.raises(InvalidArgument, match="cannot update name"):
            await cat.update_stream(plain.arn + "0", plain.version, name="x")
        with pytest.raises(InvalidArgument):
            await cat.acquire_reader(plain.arn + "0", "GET_NOTHING", 3)  # type: ignore[arg-type]
        for changes in (
            {"device_name": "bad/name"},
            {"media_type": "audio"},
            {"data_retention_hours": -1},
            {"tags": {"": "v"}},
        ):
            with pytest.raises(InvalidArgument):
                await cat.update_stream(plain.arn, plain.version, **changes)
        assert await cat.get_stream(arn=plain.arn) == plain

    backend.run(body)


# --- fragment numbers ------------------------------------------------------------------------


def test_allocate_increases_and_never_repeats(backend: Case) -> None:
    async def body(b: StoreBackend) -> list[str]:
        a, c = await create(b, "a"), await create(b, "c", retention=0)
        sequential = [await b.log.allocate(a, T0 + i) for i in range(50)]
        assert sequential == sorted(sequential) and len(set(sequential)) == 50
        assert all(is_valid_fragment_number(n) for n in sequential)
        concurrent = await asyncio.gather(
            *(b.log.allocate(s, T0) for _ in range(100) for s in (a, c))
        )
        assert len(set(concurrent)) == 200
        with pytest.raises(StreamNotFound):
            await b.log.allocate(StreamRecord("ghost", a.arn + "0", T0, "v"), T0)
        for bad in (-1, MAX_SERVER_TIMESTAMP_MS + 1, True, 1.5):
            with pytest.raises(InvalidArgument):
                await b.log.allocate(a, bad)  # type: ignore[arg-type]
        return [*sequential, *concurrent]

    backend.run(body)


def test_allocate_never_repeats_across_close_and_open(backend: Case) -> None:
    if not backend.persistent:
        pytest.skip("the backend keeps nothing across close and open")

    async def first(b: StoreBackend) -> dict[str, list[str]]:
        kept, memory = await create(b, "kept"), await create(b, "memory", retention=0)
        issued: dict[str, list[str]] = {"kept": [], "memory": []}
        for k in range(5):
            issued["kept"].append((await append(b, kept, k)).fragment_number)
            issued["memory"].append((await append(b, memory, k)).fragment_number)
        issued["kept"].append(await b.log.allocate(kept, T0))  # issued, never stored
        issued["memory"].append(await b.log.allocate(memory, T0))
        return issued

    async def second(b: StoreBackend) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in ("kept", "memory"):
            s = await b.catalog.get_stream(name=name)
            out[name] = [await b.log.allocate(s, T0) for _ in range(3)]
        return out

    before = backend.run(first)
    after = backend.run(second)
    for name in ("kept", "memory"):
        assert min(after[name]) > max(before[name]), name


# --- appending and reading -------------------------------------------------------------------


def test_append_then_read_byte_identical(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        s, other = await create(b, "s"), await create(b, "other", retention=0)
        items = [await item(b, s, k) for k in range(4)]
        items.append(await item(b, other, 9, size=123_456))
        results = await b.log.append(items)
        for it, rec in zip(items, results, strict=True):
            assert isinstance(rec, FragmentRecord)
            assert (rec.stream_arn, rec.fragment_number) == (it.stream.arn, it.fragment_number)
            assert (rec.server_timestamp_ms, rec.producer_timestamp_ms) == (
                it.server_timestamp_ms,
                it.producer_timestamp_ms,
            )
            assert (rec.duration_ms, rec.cluster_timecode) == (it.duration_ms, it.cluster_timecode)
            parts = (it.data.ebml_header, it.data.header, it.data.cluster, it.data.trailer)
            assert rec.size == (it.size if it.size is not None else sum(map(len, parts)))
            assert await b.log.read(it.stream, it.fragment_number) == it.data
        assert await b.log.append([]) == []
        with pytest.raises(FragmentNotFound):
            await b.log.read(s, make_fragment_number(999, T0))
        with pytest.raises(InvalidArgument):
            await b.log.read(s, "12345")

    backend.run(body)


def test_append_reports_errors_per_item(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        s = await create(b, "s")
        gone = await create(b, "gone")
        stale = await item(b, gone, 1)
        await b.catalog.delete_stream(gone.arn, None)
        stored = await append(b, s, 0)
        ghost = StreamRecord("ghost", s.arn.replace("/s/", "/ghost/"), T0, "v")
        batch = [
            await item(b, s, 1),
            await item(b, s, 2, number=stored.fragment_number),  # duplicate of a stored one
            await item(b, ghost, 3, number=make_fragment_number(1, T0)),  # no such stream
            stale,  # its stream was deleted
            await item(b, s, 4, number="not-a-number"),
            await item(b, s, 5),
        ]
        results = await b.log.append(batch)
        assert [type(r).__name__ for r in results] == [
            "FragmentRecord",
            "InvalidArgument",
            "StreamNotFound",
            "StreamNotFound",
            "InvalidFragmentNumber",
            "FragmentRecord",
        ]
        assert isinstance(results[4], InvalidArgument)
        listed = await b.log.range(s)
        assert numbers(listed) == sorted(
            [stored.fragment_number, batch[0].fragment_number, batch[5].fragment_number]
        )
        assert await b.log.read(s, stored.fragment_number) == payload(0)  # not overwritten

    backend.run(body)


def test_range_by_number_and_time(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        s = await create(b, "s")
        recs = [
            await append(b, s, k, server_ms=T0 + k * 1000, producer_ms=50_000 - k * 1000)
            for k in range(6)
        ]
        n = numbers(recs)
        log = b.log
        assert numbers(await log.range(s)) == n
        assert numbers(await log.range(s, after_number=n[1])) == n[2:]
        assert numbers(await log.range(s, after_number=n[-1])) == []
        # inclusive bounds, by server time ...
        assert numbers(await log.range(s, start_ms=T0 + 1000, end_ms=T0 + 3000)) == n[1:4]
        assert numbers(await log.range(s, start_ms=T0 + 1001, end_ms=T0 + 2999)) == n[2:3]
        assert numbers(await log.range(s, start_ms=T0 + 4000)) == n[4:]
        assert numbers(await log.range(s, end_ms=T0)) == n[:1]
        # ... and by producer time (which runs backwards here: still number order)
        got = await log.range(s, start_ms=46_000, end_ms=48_000, by="producer")
        assert numbers(got) == n[2:5]
        assert numbers(await log.range(s, start_ms=T0, end_ms=T0 + 9000, by="producer")) == []
        # limit, and everything together
        assert numbers(await log.range(s, limit=2)) == n[:2]
        assert await log.range(s, limit=0) == []
        assert numbers(await log.range(s, after_number=n[0], start_ms=T0, limit=3)) == n[1:4]
        assert await log.range(s, start_ms=T0 + 5000, end_ms=T0) == []
        with pytest.raises(StreamNotFound):
            await log.range(StreamRecord("ghost", s.arn + "0", T0, "v"))
        with pytest.raises(InvalidArgument):
            await log.range(s, after_number="12")

    backend.run(body)


def test_last(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        s, m = await create(b, "s"), await create(b, "m", retention=0)
        assert await b.log.last(s) is None
        recs = [await append(b, s, k) for k in range(3)]
        assert await b.log.last(s) == recs[-1]
        mem = await append(b, m, 0)
        assert await b.log.last(m) == mem
        with pytest.raises(StreamNotFound):
            await b.log.last(StreamRecord("ghost", s.arn + "0", T0, "v"))

    backend.run(body)


# --- subscriptions ---------------------------------------------------------------------------


def test_subscribe_catches_up_follows_and_ends_on_delete(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        s, other = await create(b, "s"), await create(b, "other")
        stored = [await append(b, s, k) for k in range(3)]
        everything = b.log.subscribe(s, None)
        from_second = b.log.subscribe(s, stored[1].fragment_number)
        assert await collect(everything, 3) == stored
        assert await collect(from_second, 1) == stored[2:]
        await append(b, other, 0)  # another stream's: not seen
        live = [await append(b, s, k) for k in range(3, 5)]
        assert await collect(everything, 2) == live
        assert await collect(from_second, 2) == live

        done = asyncio.Event()

        async def drain(it: AsyncIterator[FragmentRecord]) -> list[FragmentRecord]:
            rest = [rec async for rec in it]
            done.set()
            return rest

        waiting = asyncio.create_task(drain(everything))
        await asyncio.sleep(0)
        assert not done.is_set()
        await b.catalog.delete_stream(s.arn, None)
        assert await waiting == []
        assert [rec async for rec in from_second] == []
        assert [rec async for rec in b.log.subscribe(s, None)] == []  # already deleted
        with pytest.raises(InvalidArgument):
            b.log.subscribe(other, "123")

    backend.run(body)


def test_subscribe_misses_nothing_and_repeats_nothing_under_concurrent_appends(
    backend: Case,
) -> None:
    """Subscribers join at different moments while several producers append (single
    fragments and batches): each sees every fragment after its position exactly once."""
    writers, per_writer = 4, 40

    async def body(b: StoreBackend) -> None:
        s = await create(b, "busy")
        appended: list[str] = []
        changed = asyncio.Condition()

        async def writer(w: int) -> None:
            for i in range(per_writer):
                k = w * per_writer + i
                batch = [await item(b, s, k)]
                if i % 5 == 0:
                    batch.append(await item(b, s, k + 10_000))
                for res in await b.log.append(batch):
                    assert isinstance(res, FragmentRecord)
                    appended.append(res.fragment_number)
                async with changed:
                    changed.notify_all()

        afters: dict[int, str | None] = {}
        logs: dict[int, list[str]] = {}

        async def subscriber(i: int, join_at: int) -> None:
            async with changed:
                await changed.wait_for(lambda: len(appended) >= join_at)
            afters[i] = sorted(appended)[join_at // 2] if join_at else None
            logs[i] = []
            async for rec in b.log.subscribe(s, afters[i]):
                logs[i].append(rec.fragment_number)
                async with changed:
                    changed.notify_all()

        joins = (0, 1, *range(3, writers * per_writer, 4))
        subs = [asyncio.create_task(subscriber(i, at)) for i, at in enumerate(joins)]
        await asyncio.gather(*(writer(w) for w in range(writers)))

        def wanted(i: int) -> set[str]:
            after = afters[i]
            return {n for n in appended if after is None or n > after}

        def caught_up() -> bool:
            return len(logs) == len(joins) and all(set(logs[i]) >= wanted(i) for i in logs)

        try:  # every subscriber has seen all it should ...
            async with changed:
                await asyncio.wait_for(changed.wait_for(caught_up), TIMEOUT / 3)
        except TimeoutError:
            missing = {i: len(wanted(i) - set(logs[i])) for i in logs}
            raise AssertionError(f"subscribers missing records: {missing}") from None
        await b.catalog.delete_stream(s.arn, None)  # ... and takes the rest, then ends
        await asyncio.gather(*subs)
        assert len(appended) == writers * (per_writer + per_writer // 5)
        for i in logs:
            assert len(logs[i]) == len(set(logs[i])), f"subscriber {i}: a record came twice"
            assert set(logs[i]) == wanted(i), f"subscriber {i}: a record is missing"

    backend.run(body)


def test_subscribers_of_many_streams_each_see_their_own(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        streams = [await create(b, f"s{i:03d}") for i in range(200)]
        subs = [b.log.subscribe(s, None) for s in streams]
        firsts = [asyncio.create_task(anext(sub)) for sub in subs]
        await asyncio.sleep(0)
        results = await b.log.append([await item(b, s, k) for k, s in enumerate(streams)])
        got = await asyncio.gather(*firsts)
        assert got == results
        for sub in subs:
            await sub.aclose()  # type: ignore[attr-defined]

    backend.run(body)


# --- producers and readers -------------------------------------------------------------------


def test_producer_lease(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        cat = b.catalog
        s = await create(b, "s")
        first = await cat.acquire_producer(s.arn)
        assert (first.stream_arn, first.last_timestamp_ns) == (s.arn, None)
        assert await cat.release_producer(first, 1_000)
        second = await cat.acquire_producer(s.arn)
        assert second.token > first.token and second.last_timestamp_ns == 1_000
        newer = await cat.acquire_producer(s.arn)  # a newer producer wins
        assert newer.token > second.token and newer.last_timestamp_ns == 1_000
        assert not await cat.release_producer(second, 5_000)  # stale: records nothing
        assert await cat.release_producer(newer, None)  # stored nothing: 1_000 stays
        third = await cat.acquire_producer(s.arn)
        assert third.last_timestamp_ns == 1_000
        assert await cat.release_producer(third, 2_000)
        assert (await cat.acquire_producer(s.arn)).last_timestamp_ns == 2_000
        other = await create(b, "other")
        assert (await cat.acquire_producer(other.arn)).last_timestamp_ns is None
        with pytest.raises(StreamNotFound):
            await cat.acquire_producer(s.arn + "0")
        held = await cat.acquire_producer(s.arn)
        await cat.delete_stream(s.arn, None)
        assert not await cat.release_producer(held, 3_000)
        with pytest.raises(StreamNotFound):
            await cat.acquire_producer(s.arn)

    backend.run(body)


def test_reader_slots(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        cat = b.catalog
        s, other = await create(b, "s"), await create(b, "other")
        slots = [await cat.acquire_reader(s.arn, "GET_MEDIA", 3) for _ in range(3)]
        assert len({slot.token for slot in slots}) == 3
        with pytest.raises(ReaderLimitExceeded):
            await cat.acquire_reader(s.arn, "GET_MEDIA", 3)
        # other kinds and other streams count apart
        lists = [
            await cat.acquire_reader(s.arn, "GET_MEDIA_FOR_FRAGMENT_LIST", 5) for _ in range(5)
        ]
        await cat.acquire_reader(other.arn, "GET_MEDIA", 3)
        with pytest.raises(ReaderLimitExceeded):
            await cat.acquire_reader(s.arn, "GET_MEDIA_FOR_FRAGMENT_LIST", 5)
        await cat.release_reader(slots[0])
        await cat.release_reader(slots[0])  # idempotent: frees one slot, not two
        again = await cat.acquire_reader(s.arn, "GET_MEDIA", 3)
        with pytest.raises(ReaderLimitExceeded):
            await cat.acquire_reader(s.arn, "GET_MEDIA", 3)
        assert again.token not in {slot.token for slot in slots}
        with pytest.raises(StreamNotFound):
            await cat.acquire_reader(s.arn + "0", "GET_MEDIA", 3)
        await cat.delete_stream(s.arn, None)
        for slot in [*slots, *lists, again]:
            await cat.release_reader(slot)  # after deletion: nothing to do, no error

    backend.run(body)


# --- retention -------------------------------------------------------------------------------


def test_retention_reaps_what_is_older_than_the_retention(backend: Case) -> None:
    async def body(b: StoreBackend) -> None:
        short, long = await create(b, "short", retention=1), await create(b, "long")
        minute = 60_000
        old = [await append(b, short, k, server_ms=T0 + k * 30 * minute) for k in range(2)]
        new = await append(b, short, 5, server_ms=T0 + 2 * HOUR)
        kept = await append(b, long, 0, server_ms=T0)
        freed = await b.log.reap(T0 + HOUR + 31 * minute)  # cut-off: T0 + 31 min
        assert freed >= 0
        assert numbers(await b.log.range(short)) == [new.fragment_number]
        for rec in old:
            with pytest.raises(FragmentNotFound):
                await b.log.read(short, rec.fragment_number)
        assert await b.log.read(short, new.fragment_number) == payload(5)
        assert numbers(await b.log.range(long)) == [kept.fragment_number]
        assert await b.log.reap(T0 + HOUR + 31 * minute) == 0  # nothing left to do
        assert numbers(await b.log.range(short)) == [new.fragment_number]

    backend.run(body)


def test_retention_zero_keeps_fragments_in_memory_only(backend: Case) -> None:
    async def first(b: StoreBackend) -> None:
        s = await create(b, "live", retention=0)
        recs = [await append(b, s, k, server_ms=T0 + k * 1000) for k in range(3)]
        assert numbers(await b.log.range(s)) == numbers(recs)
        assert numbers(await b.log.range(s, start_ms=T0 + 1000)) == numbers(recs[1:])
        for k, rec in enumerate(recs):
            assert await b.log.read(s, rec.fragment_number) == payload(k)
        # the host buffer holds 5 minutes
        await b.log.reap(T0 + 2000 + 5 * 60_000)
        assert numbers(await b.log.range(s)) == numbers(recs[2:])
        with pytest.raises(FragmentNotFound):
            await b.log.read(s, recs[0].fragment_number)
        await append(b, s, 9, server_ms=T0 + 10_000)

    async def second(b: StoreBackend) -> None:  # nothing was persisted
        s = await b.catalog.get_stream(name="live")
        assert await b.log.range(s) == []
        assert await b.log.last(s) is None

    backend.run(first)
    if backend.persistent:
        backend.run(second)


# --- lifecycle -------------------------------------------------------------------------------


def test_close_ends_subscriptions_and_later_calls_fail(backend: Case) -> None:
    async def body() -> None:
        b = backend.open()
        await b.start()
        s = await create(b, "s")
        rec = await append(b, s, 0)
        sub = b.log.subscribe(s, None)
        assert await collect(sub, 1) == [rec]
        waiting = asyncio.create_task(collect(sub, 5))
        await asyncio.sleep(0)
        await b.close()
        assert await asyncio.wait_for(waiting, TIMEOUT) == []
        await b.close()  # idempotent
        with pytest.raises(StoreError):
            await b.catalog.get_stream(name="s")
        with pytest.raises(StoreError):
            await b.log.append([spare_item(s)])

    asyncio.run(body())
    if backend.persistent:  # what was appended before close is there after open

        async def check(b: StoreBackend) -> None:
            s = await b.catalog.get_stream(name="s")
            assert len(await b.log.range(s)) == 1

        backend.run(check)


def spare_item(stream: StreamRecord) -> FragmentAppend:
    """An item to append that needs no allocation (for a backend that cannot allocate)."""
    return FragmentAppend(stream, payload(1), T0, 0, 1000, 0, make_fragment_number(999, T0), None)
