"""Store hardening (issue #8): one producer's out-of-range times never cost other streams
their fragments, and a full disk heals (deletions still free space, failed appends leave
nothing behind, nothing acknowledged is lost)."""

from __future__ import annotations

import logging
import os
import random
import resource
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream.kvs.acks import ACK_ERROR_IDS
from callstream.mkv import writer as w
from callstream.store import (
    EmbeddedBackend,
    FragmentAppend,
    FragmentData,
    FragmentRecord,
    InvalidArgument,
    StoreError,
    StreamRecord,
    make_fragment_number,
)
from callstream.store.backends.embedded import fragments as embedded_fragments
from callstream.store.base import StorageFull
from callstream.store.ingest import (
    MAX_TIMESTAMP_NS,
    FragmentReady,
    IngestError,
    IngestEvent,
    IngestSession,
)

T0 = 1_700_000_000_000  # a server clock origin (ms)
HOUR = 3_600_000
INT64_MAX = (1 << 63) - 1


def payload(seq: int, size: int = 2000) -> FragmentData:
    rnd = random.Random(seq)
    return FragmentData(
        header=b"\x15\x49\xa9\x66" + rnd.randbytes(60),
        cluster=b"\x1f\x43\xb6\x75" + rnd.randbytes(size),
        trailer=b"",
        ebml_header=b"\x1a\x45\xdf\xa3" + rnd.randbytes(30),
    )


def create(b: EmbeddedBackend, name: str, retention: int = 24) -> StreamRecord:
    return b.create_stream(
        name,
        device_name=None,
        media_type="audio/L16",
        kms_key_id=None,
        data_retention_hours=retention,
        tags={},
    )


def item(
    b: EmbeddedBackend, s: StreamRecord, server_ms: int, nbytes: int = 2000, **numbers: object
) -> tuple[FragmentAppend, FragmentData]:
    """A fragment of ``nbytes`` of Cluster for ``s``; ``numbers`` override its fields."""
    seq = b.next_sequence(s)
    data = payload(seq, nbytes)
    fields: dict[str, object] = {
        "server_timestamp_ms": server_ms,
        "producer_timestamp_ms": server_ms - T0,
        "duration_ms": 1000,
        "cluster_timecode": seq * 1000,
        "size": None,
    }
    fields.update(numbers)
    return (
        FragmentAppend(
            stream=s,
            data=data,
            fragment_number=make_fragment_number(seq, T0 + seq),
            **fields,  # type: ignore[arg-type]
        ),
        data,
    )


def append(
    b: EmbeddedBackend, s: StreamRecord, server_ms: int, size: int = 2000
) -> tuple[FragmentRecord, FragmentData]:
    it, data = item(b, s, server_ms, size)
    rec = b.append_fragment(
        s,
        data=data,
        server_timestamp_ms=it.server_timestamp_ms,
        producer_timestamp_ms=it.producer_timestamp_ms,
        duration_ms=it.duration_ms,
        cluster_timecode=it.cluster_timecode,
        fragment_number=it.fragment_number,
    )
    return rec, data


def frag_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "streams").glob("*/*.frag"))


def assert_no_litter(
    b: EmbeddedBackend, streams: list[StreamRecord], *, reaped: tuple[str, ...] = ()
) -> None:
    """Every fragment file ends exactly at its last indexed record (no partial tail, no
    empty or unindexed file) and no stream directory is empty, except the directories
    ``reaped`` (stream ids) that retention emptied."""
    ends: dict[Path, int] = {}
    for s in streams:
        for rec in b.fragments(s):
            path, offset, length = b.locate_fragment(s, rec.fragment_number)
            ends[path] = max(ends.get(path, 0), offset + length)
    assert {p: p.stat().st_size for p in frag_files(b.data_dir)} == ends
    for d in (b.data_dir / "streams").iterdir():
        assert d.name in reaped or any(d.iterdir()), f"empty stream directory {d}"


def assert_readable(
    b: EmbeddedBackend, acked: dict[str, tuple[StreamRecord, FragmentData]]
) -> None:
    for number, (s, data) in acked.items():
        assert b.read_fragment(s, number) == data, number


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(tmp_path / "data")
    yield b
    b.close()


# --- defect 2: out-of-range numbers ----------------------------------------------------------


def test_poison_row_in_a_batch_spares_the_other_streams(backend: EmbeddedBackend) -> None:
    victims = [create(backend, f"victim-{i}") for i in range(3)]
    producer = create(backend, "producer")
    items: list[FragmentAppend] = []
    datas: list[FragmentData] = []
    for i in range(4):
        for s in victims:
            it, data = item(backend, s, T0 + i * 1000)
            items.append(it)
            datas.append(data)
        if i == 2:  # the issue's case: a Cluster Timecode of 2^63 ms
            it, data = item(backend, producer, T0, producer_timestamp_ms=1 << 63)
            items.append(it)
            datas.append(data)
    results = backend.append_fragments(items)
    assert len(results) == len(items)
    for it, data, result in zip(items, datas, results, strict=True):
        if it.stream is producer:
            assert isinstance(result, InvalidArgument)
            assert "producer_timestamp_ms" in result.message
        else:
            assert isinstance(result, FragmentRecord), result
            assert backend.read_fragment(it.stream, it.fragment_number) == data
    for s in victims:
        assert len(backend.fragments(s)) == 4
    assert backend.fragments(producer) == []
    assert_no_litter(backend, [*victims, producer])


def test_concurrent_poison_appends_do_not_touch_other_streams(
    backend: EmbeddedBackend,
) -> None:
    """The group commit shares one transaction among concurrent appends: a poison
    fragment in it must not fail the others (the issue's 82 of 1,200 lost)."""
    streams = [create(backend, f"g{i}") for i in range(4)]
    producer = create(backend, "producer")
    ok: list[FragmentRecord] = []
    rejected: list[InvalidArgument] = []
    unexpected: list[object] = []

    def good(s: StreamRecord) -> None:
        try:
            for i in range(25):
                ok.append(append(backend, s, T0 + i, size=100)[0])
        except BaseException as exc:  # pragma: no cover - the failure this test catches
            unexpected.append(exc)

    def bad() -> None:
        for i in range(25):
            it, _ = item(backend, producer, T0 + i, cluster_timecode=(1 << 64) - 1 - i)
            try:
                result = backend.append_fragments([it])[0]
            except BaseException as exc:  # pragma: no cover
                unexpected.append(exc)
                continue
            if isinstance(result, InvalidArgument):
                rejected.append(result)
            else:
                unexpected.append(result)

    threads = [threading.Thread(target=good, args=(s,)) for s in streams]
    threads.append(threading.Thread(target=bad))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == [] and len(rejected) == 25 and len(ok) == 100
    for s in streams:
        assert len(backend.fragments(s)) == 25
    assert backend.fragments(producer) == []


def test_group_commit_isolates_any_row_error(backend: EmbeddedBackend) -> None:
    """A row SQLite cannot bind (too large, wrong type) or that breaks a constraint
    fails alone; the rest of the batch commits. (append_fragments validates its input
    first, so such rows are handed to the group commit directly here; the rows point at
    no file, only the index matters.)"""
    streams = [create(backend, f"s{i}") for i in range(3)]
    existing, _ = append(backend, streams[0], T0)
    ids = [
        backend._index.reader()
        .execute("SELECT id FROM streams WHERE name = ?", (s.name,))
        .fetchone()[0]
        for s in streams
    ]

    def row(stream_id: int, seq: int, **overrides: object) -> tuple[object, ...]:
        values: dict[str, object] = {
            "number": make_fragment_number(seq, T0),
            "server": T0,
            "producer": 0,
            "timecode": 0,
        }
        values.update(overrides)
        return (
            stream_id,
            values["number"],
            seq,
            values["server"],
            values["producer"],
            1000,
            10,
            values["timecode"],
            999,
            0,
            10,
        )

    rows = [
        row(ids[0], 100),
        row(ids[1], 100, producer=1 << 63),  # OverflowError when binding
        row(ids[1], 101),
        row(ids[2], 100, timecode={"not": "bindable"}),  # an sqlite3 binding error
        row(ids[2], 101),
        row(ids[0], 102, number=existing.fragment_number),  # duplicate key
        row(ids[1], 102),
    ]
    errors = backend._index.commit_rows(rows)
    assert [e is None for e in errors] == [True, False, True, False, True, False, True]
    assert isinstance(errors[1], OverflowError)
    listed = {s.name: [r.fragment_number for r in backend.fragments(s)] for s in streams}
    assert len(listed["s0"]) == 2 and len(listed["s1"]) == 2 and len(listed["s2"]) == 1


_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=INT64_MAX - 2, max_value=INT64_MAX + 2),
    st.integers(min_value=-2, max_value=2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.decimals(allow_nan=False, allow_infinity=False),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    server=_NUMBERS,
    producer=_NUMBERS,
    duration=_NUMBERS,
    timecode=_NUMBERS,
    size=_NUMBERS,
    retention=st.sampled_from([0, 24]),
)
def test_any_numbers_fail_only_their_own_item(
    backend: EmbeddedBackend,
    server: object,
    producer: object,
    duration: object,
    timecode: object,
    size: object,
    retention: int,
) -> None:
    streams = {}
    for name in ("a", "fuzz-0", "fuzz-24", "c"):
        try:
            streams[name] = backend.get_stream(name=name)
        except StoreError:
            streams[name] = create(backend, name, 0 if name == "fuzz-0" else 24)
    a, c = streams["a"], streams["c"]
    fuzz = streams[f"fuzz-{retention}"]
    good_a, data_a = item(backend, a, T0)
    bad, _ = item(
        backend,
        fuzz,
        T0,
        server_timestamp_ms=server,
        producer_timestamp_ms=producer,
        duration_ms=duration,
        cluster_timecode=timecode,
        size=size,
    )
    good_c, data_c = item(backend, c, T0)
    results = backend.append_fragments([good_a, bad, good_c])
    assert len(results) == 3
    assert isinstance(results[0], FragmentRecord) and isinstance(results[2], FragmentRecord)
    assert backend.read_fragment(a, good_a.fragment_number) == data_a
    assert backend.read_fragment(c, good_c.fragment_number) == data_c

    def ok(v: object, *, optional: bool = False) -> bool:
        if v is None:
            return optional
        return type(v) is int and 0 <= v <= INT64_MAX

    valid = all(ok(v) for v in (server, producer, duration, timecode)) and ok(size, optional=True)
    if valid:
        assert isinstance(results[1], FragmentRecord)
        listed = {r.fragment_number: r for r in backend.fragments(fuzz)}
        assert listed[bad.fragment_number] == results[1]
    else:
        assert isinstance(results[1], InvalidArgument), results[1]
        assert bad.fragment_number not in {r.fragment_number for r in backend.fragments(fuzz)}


# --- defect 2: ingest refuses times the store cannot represent ------------------------------

TRACK = [w.TrackSpec(1, "AUDIO", "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1)]


def mkv_header(scale: int = 1_000_000) -> bytes:
    return w.ebml_header() + w.segment_start() + w.info(timecode_scale=scale) + w.tracks(TRACK)


def cluster(timecode: int, offsets: tuple[int, ...] = (0,)) -> bytes:
    return w.cluster(timecode, [w.simple_block(1, o, b"\x01\x02" * 80) for o in offsets])


def ingest(data: bytes, **kw: object) -> tuple[IngestSession, list[IngestEvent]]:
    session = IngestSession(**kw)  # type: ignore[arg-type]
    events = session.feed(data)
    events += session.close()
    return session, events


def summary(events: list[IngestEvent]) -> list[tuple[str, int | None, object]]:
    out: list[tuple[str, int | None, object]] = []
    for ev in events:
        if isinstance(ev, FragmentReady):
            out.append(("ready", ev.timecode, ev.producer_timestamp_ms))
        elif isinstance(ev, IngestError):
            out.append((ev.code, ev.timecode, ev.fatal))
    return out


BAD = "INVALID_PRODUCER_TIMESTAMP"


@pytest.mark.parametrize(
    ("scale", "good", "bad", "step"),
    [
        pytest.param(1_000_000, T0, 1 << 63, 2000, id="timecode-2^63-ms"),
        pytest.param(1_000_000, T0, (1 << 64) - 1, 2000, id="timecode-uint64-max"),
        pytest.param(1_000_000, T0, INT64_MAX // 1_000_000 + 1, 2000, id="just-past-2262"),
        pytest.param(10**9, T0 // 1000, 10**10, 2, id="timecode-fits-product-does-not"),
        pytest.param(1, T0 * 10**6, INT64_MAX + 1, 2 * 10**9, id="ns-scale-past-int64"),
    ],
)
def test_out_of_range_cluster_timecode_refused_for_that_fragment(
    scale: int, good: int, bad: int, step: int
) -> None:
    data = mkv_header(scale) + cluster(good) + cluster(bad) + cluster(good + step)
    session, events = ingest(data)
    assert summary(events) == [
        ("ready", good, good * scale // 1_000_000),
        (BAD, bad, False),
        ("ready", good + step, (good + step) * scale // 1_000_000),
    ]
    assert not session.failed
    assert ACK_ERROR_IDS[BAD] == 4007


def test_huge_timecode_scale_refused() -> None:
    scale = 1 << 56  # a TimecodeScale no muxer writes; Timecode 128 is past 2^63 ns
    data = mkv_header(scale) + cluster(0) + cluster(128) + cluster(1)
    session, events = ingest(data)
    assert summary(events) == [("ready", 0, 0), (BAD, 128, False), ("ready", 1, scale // 10**6)]
    assert not session.failed


def test_frame_past_the_range_refused(backend: EmbeddedBackend) -> None:
    last_ms = MAX_TIMESTAMP_NS // 1_000_000  # 2262-04-11: the latest millisecond accepted
    ok = cluster(last_ms)
    late_frame = cluster(last_ms, offsets=(0, 1))  # its second frame is 1 ms too late
    session, events = ingest(mkv_header() + late_frame + ok)
    assert summary(events) == [(BAD, last_ms, False), ("ready", last_ms, last_ms)]
    assert not session.failed
    # the latest accepted time is one the store holds
    (ready,) = [e for e in events if isinstance(e, FragmentReady)]
    s = create(backend, "far-future")
    rec = backend.append_fragment(
        s,
        data=FragmentData(ready.header, ready.cluster, ready.trailer, ready.ebml_header),
        server_timestamp_ms=T0,
        producer_timestamp_ms=ready.producer_timestamp_ms,
        duration_ms=ready.duration_ms,
        cluster_timecode=ready.timecode,
        fragment_number=make_fragment_number(backend.next_sequence(s), T0),
    )
    assert backend.fragments(s, by="producer", start_ms=last_ms) == [rec]


@pytest.mark.parametrize(
    ("start_ms", "timecode"),
    [
        pytest.param(MAX_TIMESTAMP_NS // 1_000_000 - 5, 10, id="start-plus-timecode-past-2262"),
        pytest.param(1 << 62, 0, id="start-past-int64-ns"),
        pytest.param(-1000, 0, id="negative-start"),
    ],
)
def test_relative_timecodes_checked_against_start(start_ms: int, timecode: int) -> None:
    data = mkv_header() + cluster(timecode) + cluster(timecode + 1)
    session, events = ingest(data, timecode_type="RELATIVE", producer_start_ms=start_ms)
    codes = summary(events)
    assert codes[0] == (BAD, timecode, False)
    assert all(c[0] == BAD for c in codes) and not session.failed
    # the same session shape with a sane start is stored
    _, events = ingest(data, timecode_type="RELATIVE", producer_start_ms=T0)
    assert summary(events) == [
        ("ready", timecode, T0 + timecode),
        ("ready", timecode + 1, T0 + timecode + 1),
    ]


def test_issue_8_one_producer_cannot_cost_others_their_fragments(
    backend: EmbeddedBackend,
) -> None:
    """End to end: what ingest emits for a producer with a 2^63 ms Cluster Timecode goes
    into one batch with three other streams' fragments; all of theirs are stored."""
    victims = [create(backend, f"victim-{i}") for i in range(3)]
    producer = create(backend, "producer")
    _, events = ingest(mkv_header() + cluster(1 << 63) + cluster(T0))
    ready = [e for e in events if isinstance(e, FragmentReady)]
    assert summary(events)[0] == (BAD, 1 << 63, False)
    items: list[FragmentAppend] = []
    for ev in ready:
        seq = backend.next_sequence(producer)
        items.append(
            FragmentAppend(
                producer,
                FragmentData(ev.header, ev.cluster, ev.trailer, ev.ebml_header),
                T0,
                ev.producer_timestamp_ms,
                ev.duration_ms,
                ev.timecode,
                make_fragment_number(seq, T0),
            )
        )
    for s in victims:
        items.append(item(backend, s, T0)[0])
    results = backend.append_fragments(items)
    assert all(isinstance(r, FragmentRecord) for r in results), results
    for s in victims:
        assert len(backend.fragments(s)) == 1
    assert [r.producer_timestamp_ms for r in backend.fragments(producer)] == [T0]


# --- defect 4: a full disk heals -------------------------------------------------------------


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        block = b"\0" * 4096
        while True:
            try:
                os.write(fd, block)
            except OSError:
                if len(block) == 1:
                    return
                block = block[: len(block) // 2]
    finally:
        os.close(fd)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root / CAP_SYS_ADMIN; skipped otherwise)."""
    if os.name != "posix" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the no-mount tests run")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode})")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_with_fragments(
    b: EmbeddedBackend, streams: list[StreamRecord], size: int
) -> dict[str, tuple[StreamRecord, FragmentData]]:
    """Append to the streams in turn until appends fail for lack of space."""
    acked: dict[str, tuple[StreamRecord, FragmentData]] = {}
    failures = 0
    for i in range(10_000):
        s = streams[i % len(streams)]
        try:
            rec, data = append(b, s, T0 + i * 1000, size=size)
        except StorageFull:
            failures += 1
            if failures == 2 * len(streams):
                return acked
            continue
        acked[rec.fragment_number] = (s, data)
    raise AssertionError("the file system never filled up")


@pytest.mark.parametrize("size", [20_000, 300_000], ids=["index-fills-first", "file-fills-first"])
def test_full_disk_heals(small_fs: Path, size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_fragments, "_DELETE_CHUNK_ROWS", 2)  # deletions in several chunks
    data_dir = small_fs / "data"
    b = EmbeddedBackend(data_dir, reserve_bytes=256 * 1024, file_size_limit=64 * 1024)
    try:
        old = create(b, "old", retention=1)
        keep = create(b, "keep", retention=24)
        victim = create(b, "victim", retention=24)
        streams = [old, keep, victim]
        acked = fill_with_fragments(b, streams, size)
        assert len({s.name for s, _ in acked.values()}) == 3
        fill(small_fs / "filler")  # not a byte left
        with pytest.raises(StorageFull):
            append(b, keep, T0 + 10**7, size=size)
        assert_no_litter(b, streams)
        assert_readable(b, acked)

        # the reaper frees the expired stream on the full disk ...
        old_files = {b.locate_fragment(old, r.fragment_number)[0] for r in b.fragments(old)}
        freed = b.reap(T0 + 10**7 + 2 * HOUR)  # "old" (1 h) expired, the others (24 h) not
        assert freed >= sum(len(d.cluster) for s, d in acked.values() if s is old)
        assert b.fragments(old) == [] and not any(p.exists() for p in old_files)
        # ... DeleteStream works on it too ...
        fill(small_fs / "filler")
        b.delete_stream(victim.arn, None)
        assert not (data_dir / "streams" / victim.arn.rsplit("/", 1)[1]).exists()
        acked = {n: v for n, v in acked.items() if v[0] is keep}
        assert_readable(b, acked)
        # ... and appends work again once space is free
        (small_fs / "filler").unlink()
        rec, data = append(b, keep, T0 + 10**7 + 1, size=size)
        acked[rec.fragment_number] = (keep, data)
        assert_no_litter(b, [old, keep], reaped=("1",))  # "old" is stream 1
        assert_readable(b, acked)
        assert (data_dir / "reserve").stat().st_size == 256 * 1024  # allocated again
    finally:
        b.close()
    with EmbeddedBackend(data_dir, reserve_bytes=256 * 1024) as b:  # nothing lost on reopen
        keep = b.get_stream(name="keep")
        assert {r.fragment_number for r in b.fragments(keep)} == set(acked)
        assert_readable(b, {n: (keep, d) for n, (_, d) in acked.items()})


def test_full_disk_without_reserve_reports_storage_full(
    small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With no reserve to release, deleting may not be possible: a clear StorageFull
    (HTTP 500 InternalFailure with a message), one log line per stream, nothing lost."""
    data_dir = small_fs / "data"
    b = EmbeddedBackend(data_dir, reserve_bytes=0)
    try:
        old = create(b, "old", retention=1)
        keep = create(b, "keep", retention=24)
        ballast = small_fs / "ballast"  # what the operator deletes later on
        ballast.write_bytes(bytes(300_000))
        acked = fill_with_fragments(b, [old, keep], 20_000)
        fill(small_fs / "filler")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="callstream.store.backends.embedded"):
            b.reap(T0 + 10**7 + 2 * HOUR)
        failures = [r for r in caplog.records if "retention reaper" in r.getMessage()]
        assert len(failures) == 1 and failures[0].exc_info is None
        assert "stream old" in failures[0].getMessage() and "full" in failures[0].getMessage()
        with pytest.raises(StorageFull) as info:
            b.delete_stream(keep.arn, None)
        assert info.value.code == "InternalFailure" and "is full" in info.value.message
        assert b.get_stream(name="keep") == keep
        assert_readable(b, acked)  # nothing was lost
        assert_no_litter(b, [old, keep])
        (small_fs / "filler").unlink()
        ballast.unlink()
        assert b.reap(T0 + 10**7 + 2 * HOUR) > 0
        assert b.fragments(old) == []
        b.delete_stream(keep.arn, None)
        assert frag_files(data_dir) == []
    finally:
        b.close()


def test_index_full_without_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic variant (no mount needed): SQLite's page limit makes every index
    commit that needs a new page fail with SQLITE_FULL. Appends fail cleanly (their new
    files are removed), the reaper still frees space (in chunks), appends work again
    afterwards, DeleteStream (in chunks) removes everything."""
    monkeypatch.setattr(embedded_fragments, "_DELETE_CHUNK_ROWS", 3)
    data_dir = tmp_path / "data"
    b = EmbeddedBackend(data_dir, file_size_limit=1)  # one record per file: each append
    try:  # creates a file
        old = create(b, "old", retention=1)
        keep = create(b, "keep", retention=24)
        acked: dict[str, tuple[StreamRecord, FragmentData]] = {}
        for i in range(40):
            s = (old, keep)[i % 2]
            rec, data = append(b, s, T0 + i * 1000)
            acked[rec.fragment_number] = (s, data)
        (pages,) = b._index.conn.execute("PRAGMA page_count").fetchone()
        b._index.conn.execute(f"PRAGMA max_page_count = {pages}")  # the index cannot grow
        full = 0
        for i in range(2000):
            try:
                rec, data = append(b, keep, T0 + 10**6 + i * 1000, size=100)
            except StorageFull:
                full += 1
                if full == 3:
                    break
                continue
            acked[rec.fragment_number] = (keep, data)
        assert full == 3
        assert_no_litter(b, [old, keep])
        assert_readable(b, acked)
        assert b.reap(T0 + 10**7 + 2 * HOUR) > 0
        assert b.fragments(old) == []
        acked = {n: v for n, v in acked.items() if v[0] is keep}
        for i in range(10):  # pages freed by the reaper take new rows
            rec, data = append(b, keep, T0 + 2 * 10**7 + i * 1000, size=100)
            acked[rec.fragment_number] = (keep, data)
        assert_no_litter(b, [old, keep], reaped=("1",))
        assert_readable(b, acked)
        assert len(frag_files(data_dir)) > 3 * embedded_fragments._DELETE_CHUNK_ROWS
        b.delete_stream(keep.arn, None)
        assert frag_files(data_dir) == [] and b.fragments(old) == []
    finally:
        b.close()


class FileSizeLimit:
    """RLIMIT_FSIZE for this process: writes past it fail with EFBIG (Python ignores
    SIGXFSZ). ``lower()`` sets it, ``restore()`` puts the original back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.original = resource.getrlimit(resource.RLIMIT_FSIZE)

    def lower(self) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.original[1]))

    def restore(self) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, self.original)


@pytest.fixture
def fsize() -> Iterator[FileSizeLimit]:
    limit = FileSizeLimit(700_000)
    hard = limit.original[1]
    if hard != resource.RLIM_INFINITY and hard < 10 * limit.limit:
        pytest.skip("RLIMIT_FSIZE is already lower than this test needs")
    try:
        yield limit
    finally:
        limit.restore()


def test_failed_writes_leave_nothing_behind(tmp_path: Path, fsize: FileSizeLimit) -> None:
    """Deterministic OS-level fault (no mount needed): a record that cannot be written
    whole is cut off again, a file or directory created for it is removed, and every
    fragment acknowledged before is intact, also after a reopen."""
    data_dir = tmp_path / "data"
    b = EmbeddedBackend(data_dir, reserve_bytes=0)
    try:
        s = create(b, "s")
        fresh = create(b, "fresh")
        acked = {}
        for i in range(3):
            rec, data = append(b, s, T0 + i * 1000, size=200_000)
            acked[rec.fragment_number] = (s, data)
        (path,) = frag_files(data_dir)
        size_before = path.stat().st_size
        fsize.lower()
        with pytest.raises(StoreError):  # the fourth record would end past the limit
            append(b, s, T0 + 3000, size=200_000)
        assert path.stat().st_size == size_before  # the partial record is cut off
        with pytest.raises(StoreError):  # a first record larger than any file may be
            append(b, fresh, T0, size=fsize.limit + 1)
        assert_no_litter(b, [s, fresh])  # its new file and directory are gone
        assert len(frag_files(data_dir)) == 1
        fsize.restore()
        for stream in (s, fresh):
            rec, data = append(b, stream, T0 + 5000, size=200_000)
            acked[rec.fragment_number] = (stream, data)
        assert_no_litter(b, [s, fresh])
        assert_readable(b, acked)
    finally:
        b.close()
    with EmbeddedBackend(data_dir, reserve_bytes=0) as b:
        assert_readable(b, {n: (b.get_stream(name=s.name), d) for n, (s, d) in acked.items()})


def test_reaper_goes_on_when_one_stream_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    with EmbeddedBackend(data_dir) as b:
        streams = [create(b, name, retention=1) for name in ("a", "b", "c")]
        for i in range(3):
            for s in streams:
                append(b, s, T0 + i * 1000)
        broken = data_dir / "streams" / "2"  # stream "b": its directory is not one any more
        assert {p.parent.name for p in frag_files(data_dir)} == {"1", "2", "3"}
        broken.rename(tmp_path / "b-files")
        broken.write_bytes(b"")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="callstream.store.backends.embedded"):
            freed = b.reap(T0 + 2 * HOUR)
        assert freed > 0
        assert b.fragments(streams[0]) == [] and b.fragments(streams[2]) == []
        assert frag_files(data_dir) == []  # a's and c's files are gone
        lines = [r for r in caplog.records if "retention reaper" in r.getMessage()]
        assert len(lines) == 1 and "stream b" in lines[0].getMessage()
        assert lines[0].exc_info is None  # one line, not a traceback
        broken.unlink()
        (tmp_path / "b-files").rename(broken)
    with EmbeddedBackend(data_dir) as b:  # the next open drops b's unindexed files
        assert frag_files(data_dir) == []
        assert all(b.fragments(b.get_stream(name=n)) == [] for n in ("a", "b", "c"))


def test_delete_on_a_disk_that_stays_full_raises_storage_full(
    tmp_path: Path, fsize: FileSizeLimit
) -> None:
    """Deterministic (no mount): the WAL cannot grow by a frame, so no deletion can
    commit, not even with the reserve released. DeleteStream then fails with StorageFull
    (a clear InternalFailure, not a raw SQLite error), the stream and its fragments stay
    intact, and the delete works once the disk has room again."""
    data_dir = tmp_path / "data"
    b = EmbeddedBackend(data_dir, reserve_bytes=64 * 1024)
    try:
        s = create(b, "s")
        acked = {}
        for i in range(3):
            rec, data = append(b, s, T0 + i * 1000)
            acked[rec.fragment_number] = (s, data)
        wal = data_dir / "index.sqlite3-wal"
        fsize.limit = wal.stat().st_size + 100  # the next WAL frame is written short
        fsize.lower()
        with pytest.raises(StorageFull) as info:
            b.delete_stream(s.arn, None)
        fsize.restore()
        assert info.value.code == "InternalFailure" and "is full" in info.value.message
        assert not (data_dir / "reserve").exists()  # released for the retry
        assert b.get_stream(name="s") == s
        assert_readable(b, acked)
        assert_no_litter(b, [s])
        b.delete_stream(s.arn, None)
        assert frag_files(data_dir) == []
        assert (data_dir / "reserve").stat().st_size == 64 * 1024  # allocated again
    finally:
        b.close()


def test_fragment_queries_take_any_integer_bounds(tmp_path: Path) -> None:
    """Times beyond SQLite's integer (a fragment number encodes up to 2**64 ms) select
    nothing instead of failing."""
    from callstream.store.backends.embedded import EmbeddedBackend

    with EmbeddedBackend(tmp_path / "data") as backend:
        stream = backend.create_stream(
            "q",
            device_name=None,
            media_type=None,
            kms_key_id=None,
            data_retention_hours=1,
            tags={},
        )
        for lo, hi in ((2**64, 2**64), (-(2**70), -(2**64)), (0, 2**80)):
            assert backend.fragments(stream, start_ms=lo, end_ms=hi) == []
            assert backend.fragments(stream, start_ms=lo, end_ms=hi, by="producer") == []
