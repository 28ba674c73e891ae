"""The embedded backend: streams, fragments, retention, encryption at rest, crash safety."""

from __future__ import annotations

import inspect
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream.store import (
    Backend,
    DataDirLocked,
    EmbeddedBackend,
    FragmentAppend,
    FragmentData,
    FragmentNotFound,
    FragmentRecord,
    IntegrityError,
    InvalidArgument,
    StoreError,
    StreamInUse,
    StreamLimitExceeded,
    StreamNotFound,
    StreamRecord,
    TagsLimitExceeded,
    VersionMismatch,
    make_fragment_number,
    parse_fragment_number,
)
from callstream.store.backends.embedded import RECORD_HEADER_SIZE

T0 = 1_700_000_000_000  # a server clock origin (ms)
HOUR = 3_600_000


def payload(seq: int, size: int = 2000) -> FragmentData:
    """Deterministic fragment content for ``seq``."""
    rnd = random.Random(seq)
    return FragmentData(
        header=b"\x15\x49\xa9\x66" + rnd.randbytes(60),
        cluster=b"\x1f\x43\xb6\x75" + rnd.randbytes(size),
        trailer=b"" if seq % 3 else b"\x12\x54\xc3\x67" + rnd.randbytes(20),
        ebml_header=b"\x1a\x45\xdf\xa3" + rnd.randbytes(30),
    )


def append(
    b: EmbeddedBackend,
    s: StreamRecord,
    *,
    server_ms: int,
    producer_ms: int | None = None,
    size: int = 2000,
) -> tuple[FragmentRecord, FragmentData]:
    seq = b.next_sequence(s)
    data = payload(seq, size)
    rec = b.append_fragment(
        s,
        data=data,
        server_timestamp_ms=server_ms,
        producer_timestamp_ms=server_ms - T0 if producer_ms is None else producer_ms,
        duration_ms=1000,
        cluster_timecode=seq * 1000,
        fragment_number=make_fragment_number(seq, server_ms),
    )
    return rec, data


def create(
    b: EmbeddedBackend, name: str = "call-1", retention: int = 24, **kw: object
) -> StreamRecord:
    args: dict[str, object] = {
        "device_name": None,
        "media_type": "audio/L16",
        "kms_key_id": None,
        "data_retention_hours": retention,
        "tags": {},
    }
    args.update(kw)
    return b.create_stream(name, **args)  # type: ignore[arg-type]


def frag_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "streams").glob("*/*.frag"))


def du(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in frag_files(data_dir))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def backend(data_dir: Path) -> Iterator[EmbeddedBackend]:
    b = EmbeddedBackend(data_dir)
    yield b
    b.close()


# --- streams -------------------------------------------------------------------------------


def _protocol_methods() -> dict[str, Any]:
    return {
        name: member
        for name, member in vars(Backend).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def test_embedded_backend_has_every_backend_method_with_its_signature() -> None:
    """What the API layer may call on a Backend exists on EmbeddedBackend with the same
    parameters (names, kinds, defaults) and annotations: no method missing, no drift."""
    methods = _protocol_methods()
    assert {"create_stream", "append_fragments", "fragments", "read_fragment", "reap"} <= set(
        methods
    )
    for name, declared in methods.items():
        implemented = getattr(EmbeddedBackend, name, None)
        assert inspect.isfunction(implemented), f"EmbeddedBackend has no method {name}"
        want = inspect.signature(declared).parameters.values()
        got = inspect.signature(implemented).parameters.values()
        assert [(p.name, p.kind, p.default) for p in got] == [
            (p.name, p.kind, p.default) for p in want
        ], f"EmbeddedBackend.{name}{inspect.signature(implemented)} differs from Backend"
        assert typing.get_type_hints(implemented) == typing.get_type_hints(declared), name


def test_mypy_accepts_embedded_backend_as_a_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mypy's view of the same: EmbeddedBackend is assignable to Backend (strict)."""
    mypy_api = pytest.importorskip("mypy.api")
    import callstream

    snippet = tmp_path / "backend_check.py"
    snippet.write_text(
        "from callstream.store import Backend, EmbeddedBackend\n\n\n"
        "def as_backend(backend: EmbeddedBackend) -> Backend:\n"
        "    return backend\n"
    )
    config = tmp_path / "mypy.ini"  # not the project's: only this snippet's errors count
    config.write_text("[mypy]\nignore_missing_imports = True\nfollow_imports = silent\n")
    # the sources under test, ahead of an installed copy
    monkeypatch.setenv("MYPYPATH", str(Path(callstream.__file__).resolve().parents[1]))
    out, err, status = mypy_api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "--strict",
            "--python-version",
            "3.11",
            str(snippet),
        ]
    )
    assert status == 0, out + err


def test_create_and_describe(backend: EmbeddedBackend) -> None:
    before = time.time_ns() // 1_000_000
    s = create(backend, "call-1", device_name="dev-1", tags={"team": "blue"})
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(
        r"arn:aws:kinesisvideo:us-east-1:123456789012:stream/call-1/(\d+)", s.arn
    ) and s.arn.endswith(f"/{s.creation_time_ms}")
    assert before <= s.creation_time_ms <= after + 1
    assert re.fullmatch(r"[a-zA-Z0-9]{1,64}", s.version)
    assert s.status == "ACTIVE"
    assert s.kms_key_id == "arn:aws:kms:us-east-1:123456789012:alias/aws/kinesisvideo"
    assert (s.device_name, s.media_type, s.data_retention_hours) == ("dev-1", "audio/L16", 24)
    assert s.tags == {"team": "blue"}
    assert backend.get_stream(name="call-1") == s
    assert backend.get_stream(arn=s.arn) == s
    assert backend.get_stream(name="call-1", arn=s.arn) == s
    with pytest.raises(StreamNotFound):
        backend.get_stream(name="nope")
    with pytest.raises(StreamNotFound):
        backend.get_stream(arn=s.arn + "1")
    with pytest.raises(StreamNotFound):
        backend.get_stream(name="other", arn=s.arn)
    with pytest.raises(InvalidArgument):
        backend.get_stream()
    # returned records are copies
    s.tags["x"] = "y"
    assert backend.get_stream(name="call-1").tags == {"team": "blue"}


def test_region_account_and_kms_key(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path / "d", region="eu-west-1", account_id="111122223333") as b:
        s = create(b, "x", kms_key_id="alias/calls")
        assert s.arn.startswith("arn:aws:kinesisvideo:eu-west-1:111122223333:stream/x/")
        assert s.kms_key_id == "alias/calls"
        t = create(b, "y", kms_key_id="arn:aws:kms:eu-west-1:111122223333:alias/calls")
        append(b, s, server_ms=T0)
        append(b, t, server_ms=T0)
        # both spellings name one master key
        assert b.keyring.key_ids() == ["arn:aws:kms:eu-west-1:111122223333:alias/calls"]


def test_create_errors(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path / "d", max_streams=3) as b:
        create(b, "a")
        with pytest.raises(StreamInUse):
            create(b, "a")
        create(b, "b")
        create(b, "c")
        with pytest.raises(StreamLimitExceeded) as info:
            create(b, "d")
        assert info.value.code == "AccountStreamLimitExceededException"
        b.delete_stream(b.get_stream(name="c").arn, None)
        create(b, "d")
    with EmbeddedBackend(tmp_path / "e") as b:
        with pytest.raises(TagsLimitExceeded):
            create(b, "t", tags={f"k{i}": "v" for i in range(51)})
        create(b, "t50", tags={f"k{i}": "v" for i in range(50)})
        for bad in [
            {"name": ""},
            {"name": "a" * 257},
            {"name": "has space"},
            {"name": "slash/x"},
            {"device_name": "bad device"},
            {"media_type": "audio"},
            {"media_type": "audio/x,"},
            {"retention": -1},
            {"retention": 87601},
            {"kms_key_id": ""},
            {"tags": {"": "v"}},
            {"tags": {"k": "v" * 257}},
            {"tags": {"k": "bad\u0000"}},
            {"tags": {"k" * 129: "v"}},
        ]:
            name = bad.pop("name", "ok-name")
            with pytest.raises(InvalidArgument):
                create(b, name, **bad)  # type: ignore[arg-type]
        create(b, "u", media_type="video/h264,audio/aac", tags={"ключ é": "+=@:/._-"})
        assert [s.name for s in b.list_streams(prefix=None, after_name=None, limit=10)] == [
            "t50",
            "u",
        ]


def test_list_prefix_and_pagination(backend: EmbeddedBackend) -> None:
    names = ["b-2", "a-1", "b-1", "c", "b-10", "ba"]
    for n in names:
        create(backend, n)

    def page(prefix: str | None, after: str | None, limit: int) -> list[str]:
        return [s.name for s in backend.list_streams(prefix=prefix, after_name=after, limit=limit)]

    assert page(None, None, 100) == sorted(names)
    assert page(None, None, 2) == ["a-1", "b-1"]
    assert page(None, "b-1", 2) == ["b-10", "b-2"]
    assert page(None, "ba", 10) == ["c"]
    assert page(None, "c", 10) == []
    assert page("b-", None, 10) == ["b-1", "b-10", "b-2"]
    assert page("b-", "b-1", 1) == ["b-10"]
    assert page("b-", "b-2", 10) == []
    assert page("b-", "a", 10) == ["b-1", "b-10", "b-2"]
    assert page("zz", None, 10) == []
    assert page(None, None, 0) == []
    # walk all pages
    seen: list[str] = []
    after = None
    while batch := page(None, after, 4):
        seen += batch
        after = batch[-1]
    assert seen == sorted(names)


def test_update_and_versions(backend: EmbeddedBackend, data_dir: Path) -> None:
    s = create(backend, "u", tags={"a": "1"})
    u1 = backend.update_stream(s.arn, s.version, device_name="phone", media_type="audio/pcm")
    assert u1.version != s.version and re.fullmatch(r"[a-zA-Z0-9]{1,64}", u1.version)
    assert (u1.device_name, u1.media_type, u1.tags) == ("phone", "audio/pcm", {"a": "1"})
    with pytest.raises(VersionMismatch) as info:
        backend.update_stream(s.arn, s.version, device_name="x")
    assert info.value.code == "VersionMismatchException"
    u2 = backend.update_stream(u1.arn, u1.version, tags={"b": "2"}, data_retention_hours=48)
    assert u2.tags == {"b": "2"} and u2.data_retention_hours == 48
    with pytest.raises(InvalidArgument):
        backend.update_stream(u2.arn, u2.version, name="renamed")
    with pytest.raises(InvalidArgument):
        backend.update_stream(u2.arn, u2.version, data_retention_hours=-5)
    with pytest.raises(TagsLimitExceeded):
        backend.update_stream(u2.arn, u2.version, tags={str(i): "" for i in range(51)})
    with pytest.raises(StreamNotFound):
        backend.update_stream(s.arn + "9", u2.version, device_name="x")
    assert backend.get_stream(arn=s.arn) == u2  # failed updates changed nothing
    backend.close()
    with EmbeddedBackend(data_dir) as again:
        assert again.get_stream(name="u") == u2


def test_delete_frees_disk(backend: EmbeddedBackend, data_dir: Path) -> None:
    s = create(backend, "d")
    keep = create(backend, "keep")
    for i in range(5):
        append(backend, s, server_ms=T0 + i * 1000, size=50_000)
    kept, kept_data = append(backend, keep, server_ms=T0)
    assert du(data_dir) > 250_000
    with pytest.raises(VersionMismatch):
        backend.delete_stream(s.arn, "stale")
    backend.delete_stream(s.arn, s.version)
    assert du(data_dir) < 10_000
    assert not any(p.parts[-2] == "1" for p in frag_files(data_dir))
    with pytest.raises(StreamNotFound):
        backend.get_stream(name="d")
    with pytest.raises(StreamNotFound):
        backend.fragments(s)
    with pytest.raises(StreamNotFound):
        append(backend, s, server_ms=T0)
    with pytest.raises(StreamNotFound):
        backend.delete_stream(s.arn, None)
    # the name is free again, with a new ARN and no old fragments
    s2 = create(backend, "d")
    assert s2.arn != s.arn
    assert backend.fragments(s2) == []
    backend.delete_stream(keep.arn, None)  # no version check
    assert frag_files(data_dir) == []
    assert [x.name for x in backend.list_streams(prefix=None, after_name=None, limit=9)] == ["d"]
    del kept, kept_data


# --- fragments -----------------------------------------------------------------------------


def test_append_read_round_trip(backend: EmbeddedBackend) -> None:
    s = create(backend)
    stored = [
        append(backend, s, server_ms=T0 + i * 1000, size=sz)
        for i, sz in enumerate([0, 1, 32_000, 1_000_000])
    ]
    listing = backend.fragments(s)
    assert listing == [r for r, _ in stored]
    for rec, data in stored:
        got = backend.read_fragment(s, rec.fragment_number)
        assert got == data  # bit-exact, all four parts
        assert rec.size == len(data.ebml_header) + len(data.header) + len(data.cluster) + len(
            data.trailer
        )
        assert rec.stream_arn == s.arn
    # plaintext never lands on disk
    blob = b"".join(p.read_bytes() for p in frag_files(backend.data_dir))
    assert stored[2][1].cluster[100:200] not in blob
    with pytest.raises(FragmentNotFound):
        backend.read_fragment(s, make_fragment_number(999, T0))
    with pytest.raises(InvalidArgument):
        backend.read_fragment(s, "123")


def test_append_explicit_size_and_duplicates(backend: EmbeddedBackend) -> None:
    s = create(backend)
    number = make_fragment_number(7, T0)
    kw: dict[str, object] = dict(
        data=payload(7),
        server_timestamp_ms=T0,
        producer_timestamp_ms=5,
        duration_ms=1000,
        cluster_timecode=0,
        fragment_number=number,
    )
    rec = backend.append_fragment(s, size=12345, **kw)  # type: ignore[arg-type]
    assert rec.size == 12345 and backend.fragments(s)[0].size == 12345
    before = du(backend.data_dir)
    with pytest.raises(InvalidArgument):
        backend.append_fragment(s, **kw)  # type: ignore[arg-type]
    assert du(backend.data_dir) == before  # the rejected record was truncated away
    with pytest.raises(InvalidArgument):
        backend.append_fragment(s, **{**kw, "fragment_number": "42"})  # type: ignore[arg-type]
    assert backend.next_sequence(s) == 8  # counter follows appended numbers
    append(backend, s, server_ms=T0 + 1)
    assert len(backend.fragments(s)) == 2


def test_fragments_filters(backend: EmbeddedBackend) -> None:
    s = create(backend)
    # producer time runs backwards relative to server time to tell the two apart
    recs = [
        append(backend, s, server_ms=T0 + i * 1000, producer_ms=100_000 - i * 1000)[0]
        for i in range(10)
    ]
    numbers = [r.fragment_number for r in recs]
    assert numbers == sorted(numbers)
    assert backend.fragments(s) == recs
    assert backend.fragments(s, after_number=numbers[3]) == recs[4:]  # exclusive
    assert backend.fragments(s, after_number=numbers[-1]) == []
    assert backend.fragments(s, limit=3) == recs[:3]
    assert backend.fragments(s, limit=0) == []
    assert backend.fragments(s, after_number=numbers[3], limit=2) == recs[4:6]
    # server-time range, inclusive at both ends
    assert backend.fragments(s, start_ms=T0 + 2000, end_ms=T0 + 5000) == recs[2:6]
    assert backend.fragments(s, start_ms=T0 + 2001, end_ms=T0 + 4999) == recs[3:5]
    assert backend.fragments(s, start_ms=T0 + 8000) == recs[8:]
    assert backend.fragments(s, end_ms=T0) == recs[:1]
    assert backend.fragments(s, start_ms=T0 + 5000, end_ms=T0 + 5000) == [recs[5]]
    # producer-time range: fragments 2..5 have producer 98000..95000
    assert backend.fragments(s, start_ms=95_000, end_ms=98_000, by="producer") == recs[2:6]
    assert backend.fragments(s, start_ms=95_000, end_ms=98_000) == []
    assert (
        backend.fragments(s, start_ms=95_000, end_ms=98_000, by="producer", after_number=numbers[3])
        == recs[4:6]
    )
    with pytest.raises(InvalidArgument):
        backend.fragments(s, by="arrival")
    with pytest.raises(InvalidArgument):
        backend.fragments(s, after_number="nope")
    other = create(backend, "other")
    assert backend.fragments(other) == []


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    stamps=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=0, max_size=15),
    start=st.none() | st.integers(-1, 51),
    end=st.none() | st.integers(-1, 51),
    after=st.none() | st.integers(0, 16),
    limit=st.none() | st.integers(0, 16),
    by=st.sampled_from(["server", "producer"]),
    retention=st.sampled_from([0, 1]),
)
def test_fragments_match_a_model(
    tmp_path: Path,
    stamps: list[tuple[int, int]],
    start: int | None,
    end: int | None,
    after: int | None,
    limit: int | None,
    by: str,
    retention: int,
) -> None:
    """``fragments()`` agrees with a straightforward filter over what was appended, for
    disk and in-memory streams alike."""
    d = tmp_path / os.urandom(8).hex()
    with EmbeddedBackend(d) as b:
        s = create(b, retention=retention)
        recs = [
            append(b, s, server_ms=T0 + srv, producer_ms=T0 + prod, size=10)[0]
            for srv, prod in stamps
        ]
        after_number = (
            recs[after].fragment_number if after is not None and after < len(recs) else None
        )
        lo = None if start is None else T0 + start
        hi = None if end is None else T0 + end

        def ts(r: FragmentRecord) -> int:
            return r.server_timestamp_ms if by == "server" else r.producer_timestamp_ms

        want = [
            r
            for r in recs
            if (after_number is None or r.fragment_number > after_number)
            and (lo is None or ts(r) >= lo)
            and (hi is None or ts(r) <= hi)
        ]
        if limit is not None:
            want = want[:limit]
        got = b.fragments(s, after_number=after_number, start_ms=lo, end_ms=hi, by=by, limit=limit)
        assert got == want


def test_sequences_persist_across_restart(data_dir: Path) -> None:
    with EmbeddedBackend(data_dir) as b:
        s = create(b)
        assert [b.next_sequence(s) for _ in range(3)] == [1, 2, 3]
        for i in range(3):
            append(b, s, server_ms=T0 + i)
        last = parse_fragment_number(b.fragments(s)[-1].fragment_number)[0]
        assert last == 6
    with EmbeddedBackend(data_dir) as b:
        s = b.get_stream(name="call-1")
        nxt = b.next_sequence(s)
        assert nxt > last
        assert [r.fragment_number for r in b.fragments(s)] == sorted(
            r.fragment_number for r in b.fragments(s)
        )


def test_file_rolling_and_reap(data_dir: Path) -> None:
    with EmbeddedBackend(data_dir, file_size_limit=100_000) as b:
        s = create(b, retention=1)
        recs = [append(b, s, server_ms=T0 + i * 1000, size=30_000) for i in range(12)]
        files = frag_files(data_dir)
        assert len(files) == 4  # three ~30 KB records per 100 KB file
        total = du(data_dir)
        first_size = files[0].stat().st_size
        assert b.reap(T0 + HOUR - 1) == 0  # nothing older than an hour yet
        # fragments 0..4 expire: the first file (0..2) goes, the second (3..5) stays
        freed = b.reap(T0 + HOUR + 4500)
        assert freed == first_size > 90_000
        assert not files[0].exists() and files[1].exists()
        assert du(data_dir) == total - freed
        assert b.fragments(s) == [r for r, _ in recs[5:]]
        for rec, data in recs[5:]:
            assert b.read_fragment(s, rec.fragment_number) == data
        with pytest.raises(FragmentNotFound):
            b.read_fragment(s, recs[4][0].fragment_number)
        # everything expires, including the file being appended to
        freed2 = b.reap(T0 + 2 * HOUR)
        assert freed + freed2 == total
        assert frag_files(data_dir) == [] and b.fragments(s) == []
        rec, data = append(b, s, server_ms=T0 + 2 * HOUR)  # a fresh file is started
        assert b.read_fragment(s, rec.fragment_number) == data
        assert len(frag_files(data_dir)) == 1
    with EmbeddedBackend(data_dir) as b:
        s = b.get_stream(name="call-1")
        assert b.fragments(s) == [rec]
        assert b.next_sequence(s) > parse_fragment_number(rec.fragment_number)[0]


def test_files_roll_by_time_span(data_dir: Path) -> None:
    with EmbeddedBackend(data_dir) as b:
        s = create(b, retention=1)  # span per file: 6 minutes
        for i in range(10):
            append(b, s, server_ms=T0 + i * 60_000)
        assert len(frag_files(data_dir)) == 2


def test_retention_zero_stays_in_memory(data_dir: Path) -> None:
    with EmbeddedBackend(data_dir, memory_buffer_bytes=100_000) as b:
        s = create(b, "live", retention=0)
        recs = [append(b, s, server_ms=T0 + i * 1000, size=10_000) for i in range(5)]
        assert not (data_dir / "streams").exists() or frag_files(data_dir) == []
        assert b.fragments(s) == [r for r, _ in recs]
        assert b.fragments(s, after_number=recs[1][0].fragment_number, limit=2) == [
            recs[2][0],
            recs[3][0],
        ]
        assert b.fragments(s, start_ms=T0 + 1000, end_ms=T0 + 2000) == [recs[1][0], recs[2][0]]
        for rec, data in recs:
            assert b.read_fragment(s, rec.fragment_number) == data
        with pytest.raises(FragmentNotFound):
            b.locate_fragment(s, recs[0][0].fragment_number)
        # byte cap: ~10 KB each, 100 KB cap
        more = [append(b, s, server_ms=T0 + 5000 + i * 1000, size=10_000) for i in range(10)]
        kept = b.fragments(s)
        assert 5 <= len(kept) <= 10 and kept[-1] == more[-1][0]
        assert sum(r.size for r in kept) <= 100_000
        # time window: 5 minutes behind the newest fragment
        late, _ = append(b, s, server_ms=T0 + 15_000 + 300_000)
        assert b.fragments(s) == [late]
        # reap drops what is older than now - 5 min
        assert b.reap(T0 + 15_000 + 300_000 + 300_001) > 0
        assert b.fragments(s) == []
        assert frag_files(data_dir) == []
        last_seq = parse_fragment_number(late.fragment_number)[0]
    with EmbeddedBackend(data_dir) as b:
        s = b.get_stream(name="live")
        assert b.fragments(s) == []  # the buffer did not survive the restart
        assert b.next_sequence(s) > last_seq  # but numbers are never reused


def test_retention_change_switches_storage(backend: EmbeddedBackend) -> None:
    s = create(backend, retention=0)
    mem, _ = append(backend, s, server_ms=T0)
    s = backend.update_stream(s.arn, s.version, data_retention_hours=2)
    disk, disk_data = append(backend, s, server_ms=T0 + 1000)
    assert backend.fragments(s) == [mem, disk]
    assert backend.read_fragment(s, disk.fragment_number) == disk_data
    assert len(frag_files(backend.data_dir)) == 1
    s = backend.update_stream(s.arn, s.version, data_retention_hours=0)
    assert backend.reap(T0 + 2000) > 0  # retention 0: disk rows go entirely
    assert frag_files(backend.data_dir) == []
    assert backend.fragments(s) == [mem]


def test_last_fragment(backend: EmbeddedBackend) -> None:
    s = create(backend)
    assert backend.last_fragment(s) is None
    recs = [append(backend, s, server_ms=T0 + i)[0] for i in range(5)]
    assert backend.last_fragment(s) == recs[-1]
    live = create(backend, "live", retention=0)
    assert backend.last_fragment(live) is None
    mem = [append(backend, live, server_ms=T0 + i)[0] for i in range(3)]
    assert backend.last_fragment(live) == mem[-1]


def test_idle_file_descriptors_are_bounded(tmp_path: Path) -> None:
    with EmbeddedBackend(tmp_path / "d", max_open_files=2) as b:
        streams = [create(b, f"s{i}") for i in range(5)]
        fds_before = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else 0
        stored = []
        for i in range(4):
            for s in streams:
                stored.append((s, *append(b, s, server_ms=T0 + i)))
        if fds_before:
            assert len(os.listdir("/proc/self/fd")) <= fds_before + 2
        # suspended writers resumed their files instead of starting new ones
        assert len(frag_files(tmp_path / "d")) == 5
        for s, rec, data in stored:
            assert b.read_fragment(s, rec.fragment_number) == data


def test_group_commit_isolates_a_failing_row(backend: EmbeddedBackend) -> None:
    streams = [create(backend, f"g{i}") for i in range(4)]
    dup_stream = create(backend, "dup")
    number = make_fragment_number(1, T0)
    kw: dict[str, object] = dict(
        data=payload(1),
        server_timestamp_ms=T0,
        producer_timestamp_ms=0,
        duration_ms=1,
        cluster_timecode=0,
        fragment_number=number,
    )
    backend.append_fragment(dup_stream, **kw)  # type: ignore[arg-type]
    ok: list[FragmentRecord] = []
    rejected: list[BaseException] = []
    unexpected: list[BaseException] = []

    def good(s: StreamRecord) -> None:
        try:
            for i in range(20):
                ok.append(append(backend, s, server_ms=T0 + i, size=100)[0])
        except BaseException as exc:  # pragma: no cover
            unexpected.append(exc)

    def bad() -> None:
        for _ in range(20):
            try:
                backend.append_fragment(dup_stream, **kw)  # type: ignore[arg-type]
            except InvalidArgument as exc:
                rejected.append(exc)
            except BaseException as exc:  # pragma: no cover
                unexpected.append(exc)

    threads = [threading.Thread(target=good, args=(s,)) for s in streams]
    threads.append(threading.Thread(target=bad))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == [] and len(rejected) == 20 and len(ok) == 80
    for s in streams:
        assert len(backend.fragments(s)) == 20
    assert len(backend.fragments(dup_stream)) == 1
    backend.read_fragment(dup_stream, number)


def test_closed_store_refuses_calls(data_dir: Path) -> None:
    b = EmbeddedBackend(data_dir)
    s = create(b)
    b.close()
    b.close()  # idempotent
    for call in (
        lambda: b.get_stream(name="call-1"),
        lambda: b.fragments(s),
        lambda: append(b, s, server_ms=T0),
        lambda: create(b, "other"),
    ):
        with pytest.raises(StoreError):
            call()


def test_files_are_private(backend: EmbeddedBackend, data_dir: Path) -> None:
    s = create(backend)
    append(backend, s, server_ms=T0)
    for path in [data_dir / "index.sqlite3", data_dir / "keys.json", *frag_files(data_dir)]:
        assert path.stat().st_mode & 0o077 == 0, path
    assert (data_dir / "streams").stat().st_mode & 0o077 == 0


# --- encryption at rest --------------------------------------------------------------------


def test_tampered_byte_detected_others_readable(backend: EmbeddedBackend) -> None:
    s = create(backend)
    recs = [append(backend, s, server_ms=T0 + i * 1000) for i in range(4)]
    path, offset, _ = backend.locate_fragment(s, recs[1][0].fragment_number)
    raw = bytearray(path.read_bytes())
    raw[offset + RECORD_HEADER_SIZE + 100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError) as info:
        backend.read_fragment(s, recs[1][0].fragment_number)
    assert info.value.code == "InternalFailure"
    for rec, data in recs[:1] + recs[2:]:
        assert backend.read_fragment(s, rec.fragment_number) == data
    # the record header is checked too
    raw[offset + RECORD_HEADER_SIZE + 100] ^= 0x01
    raw[offset + 10] ^= 0x01  # a digit of the stored fragment number
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        backend.read_fragment(s, recs[1][0].fragment_number)


def test_swapped_records_detected(backend: EmbeddedBackend) -> None:
    s = create(backend)
    (a, _), (b, _) = (append(backend, s, server_ms=T0 + i) for i in range(2))
    path, off_a, len_a = backend.locate_fragment(s, a.fragment_number)
    path_b, off_b, len_b = backend.locate_fragment(s, b.fragment_number)
    assert path == path_b and len_a == len_b
    original = path.read_bytes()
    rec_a, rec_b = original[off_a : off_a + len_a], original[off_b : off_b + len_b]

    # whole records swapped
    raw = bytearray(original)
    raw[off_a : off_a + len_a], raw[off_b : off_b + len_b] = rec_b, rec_a
    path.write_bytes(bytes(raw))
    for rec in (a, b):
        with pytest.raises(IntegrityError):
            backend.read_fragment(s, rec.fragment_number)

    # only the sealed payloads swapped (headers left in place): AES-GCM's AAD catches it
    h = RECORD_HEADER_SIZE
    raw = bytearray(original)
    raw[off_a + h : off_a + len_a], raw[off_b + h : off_b + len_b] = rec_b[h:], rec_a[h:]
    path.write_bytes(bytes(raw))
    for rec in (a, b):
        with pytest.raises(IntegrityError):
            backend.read_fragment(s, rec.fragment_number)


def test_record_moved_between_streams_detected(backend: EmbeddedBackend) -> None:
    s1, s2 = create(backend, "one"), create(backend, "two")
    r1, _ = append(backend, s1, server_ms=T0)
    r2, d2 = append(backend, s2, server_ms=T0)
    p1, o1, l1 = backend.locate_fragment(s1, r1.fragment_number)
    p2, o2, l2 = backend.locate_fragment(s2, r2.fragment_number)
    assert l1 == l2
    foreign = p1.read_bytes()[o1 : o1 + l1]
    raw = bytearray(p2.read_bytes())
    raw[o2 : o2 + l2] = (
        foreign[:RECORD_HEADER_SIZE].replace(
            r1.fragment_number.encode(), r2.fragment_number.encode()
        )
        + foreign[RECORD_HEADER_SIZE:]
    )
    p2.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        backend.read_fragment(s2, r2.fragment_number)
    del d2


def test_truncated_file_detected(backend: EmbeddedBackend) -> None:
    s = create(backend)
    rec, _ = append(backend, s, server_ms=T0)
    path, offset, length = backend.locate_fragment(s, rec.fragment_number)
    os.truncate(path, offset + length - 1)
    with pytest.raises(IntegrityError):
        backend.read_fragment(s, rec.fragment_number)
    path.unlink()
    with pytest.raises(IntegrityError):
        backend.read_fragment(s, rec.fragment_number)


def test_wrong_master_key_detected(data_dir: Path) -> None:
    with EmbeddedBackend(data_dir) as b:
        s = create(b)
        rec, _ = append(b, s, server_ms=T0)
    (data_dir / "keys.json").unlink()  # master keys lost: data must not decrypt to garbage
    with EmbeddedBackend(data_dir) as b, pytest.raises(IntegrityError):
        b.read_fragment(s, rec.fragment_number)


# --- durability ----------------------------------------------------------------------------


def test_data_dir_is_exclusive(data_dir: Path) -> None:
    with EmbeddedBackend(data_dir), pytest.raises(DataDirLocked):
        EmbeddedBackend(data_dir)
    EmbeddedBackend(data_dir).close()


def test_recovery_truncates_unindexed_bytes(data_dir: Path) -> None:
    with EmbeddedBackend(data_dir) as b:
        s = create(b)
        recs = [append(b, s, server_ms=T0 + i) for i in range(3)]
        path, offset, length = b.locate_fragment(s, recs[-1][0].fragment_number)
    end = offset + length
    with open(path, "ab") as fh:  # a half-written record from a crash
        fh.write(b"CSR1\x00\x01\x00\x00" + b"9" * 30)
    orphan = path.with_name("99999999.frag")  # a file whose first record never committed
    orphan.write_bytes(b"CSR1 partial")
    (data_dir / "streams" / "77").mkdir()  # directory of a stream deleted mid-way
    with EmbeddedBackend(data_dir) as b:
        assert path.stat().st_size == end
        assert not orphan.exists() and not (data_dir / "streams" / "77").exists()
        s = b.get_stream(name="call-1")
        for rec, data in recs:
            assert b.read_fragment(s, rec.fragment_number) == data
        rec, data = append(b, s, server_ms=T0 + 10)
        assert b.read_fragment(s, rec.fragment_number) == data
        assert b.fragments(s) == [r for r, _ in recs] + [rec]


def test_concurrent_appends_and_reads(backend: EmbeddedBackend) -> None:
    streams = [create(backend, f"s{i}") for i in range(4)]
    results: dict[str, list[tuple[FragmentRecord, FragmentData]]] = {s.name: [] for s in streams}
    errors: list[BaseException] = []

    def producer(s: StreamRecord) -> None:
        try:
            for i in range(25):
                results[s.name].append(append(backend, s, server_ms=T0 + i, size=5000))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                for s in streams:
                    for rec in backend.fragments(s, limit=5):
                        backend.read_fragment(s, rec.fragment_number)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(s,)) for s in streams]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for s in streams:
        stored = results[s.name]
        assert backend.fragments(s) == sorted(
            (r for r, _ in stored), key=lambda r: r.fragment_number
        )
        for rec, data in stored:
            assert backend.read_fragment(s, rec.fragment_number) == data


CHILD = textwrap.dedent(
    """
    import random, sys
    from callstream.store import EmbeddedBackend, FragmentData, make_fragment_number

    def payload(seq):
        rnd = random.Random(seq)
        size = rnd.randrange(1, 300_000)
        return FragmentData(header=b"H" + rnd.randbytes(50), cluster=rnd.randbytes(size),
                            trailer=b"", ebml_header=b"E")

    b = EmbeddedBackend(sys.argv[1], file_size_limit=int(sys.argv[2]))
    s = b.get_stream(name="crash")
    print("ready", flush=True)
    while True:
        seq = b.next_sequence(s)
        ts = 1_700_000_000_000 + seq
        number = make_fragment_number(seq, ts)
        b.append_fragment(s, data=payload(seq), server_timestamp_ms=ts, producer_timestamp_ms=seq,
                          duration_ms=1000, cluster_timecode=seq, fragment_number=number)
        print(number, flush=True)
    """
)


def _child_payload(seq: int) -> FragmentData:
    rnd = random.Random(seq)
    size = rnd.randrange(1, 300_000)
    return FragmentData(
        header=b"H" + rnd.randbytes(50), cluster=rnd.randbytes(size), trailer=b"", ebml_header=b"E"
    )


def test_crash_safety_kill_9(data_dir: Path) -> None:
    """SIGKILL a writer mid-run; every acknowledged fragment must survive intact and no
    partial record may be served."""
    with EmbeddedBackend(data_dir) as b:
        create(b, "crash", retention=1)
    acked: list[str] = []
    rnd = random.Random(1234)
    for _round in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data_dir), "1000000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
        want = rnd.randrange(3, 25)
        got = 0
        while got < want:
            line = proc.stdout.readline()
            assert line.endswith("\n"), proc.stderr.read() if proc.stderr else ""
            acked.append(line.strip())
            got += 1
        time.sleep(rnd.random() * 0.02)  # land somewhere inside the next append
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        acked += [ln for ln in rest.splitlines(keepends=True) if ln.endswith("\n")]
        acked = [a.strip() for a in acked]

        with EmbeddedBackend(data_dir) as b:
            s = b.get_stream(name="crash")
            listing = b.fragments(s)
            numbers = [r.fragment_number for r in listing]
            assert len(set(numbers)) == len(numbers)
            assert set(acked) <= set(numbers)  # nothing acknowledged was lost
            for rec in listing:  # everything listed is whole and authentic
                seq = parse_fragment_number(rec.fragment_number)[0]
                assert b.read_fragment(s, rec.fragment_number) == _child_payload(seq)
            # recovery left no bytes after the last indexed record of any file
            ends: dict[Path, int] = {}
            for rec in listing:
                path, offset, length = b.locate_fragment(s, rec.fragment_number)
                ends[path] = max(ends.get(path, 0), offset + length)
            assert {p: p.stat().st_size for p in frag_files(data_dir)} == ends
    assert len(acked) >= 12


def _item(b: EmbeddedBackend, s: StreamRecord, server_ms: int) -> FragmentAppend:
    seq = b.next_sequence(s)
    return FragmentAppend(
        s,
        payload(seq),
        server_timestamp_ms=server_ms,
        producer_timestamp_ms=server_ms - T0,
        duration_ms=1000,
        cluster_timecode=seq * 1000,
        fragment_number=make_fragment_number(seq, server_ms),
    )


def test_append_fragments_stores_a_batch_and_reports_each_failure_alone(
    tmp_path: Path,
) -> None:
    sizes = []
    for with_duplicate in (True, False):
        with EmbeddedBackend(tmp_path / str(with_duplicate)) as backend:
            a, zero = create(backend, "a"), create(backend, "zero", retention=0)
            gone = create(backend, "g")
            items = [_item(backend, a, T0), _item(backend, zero, T0), _item(backend, gone, T0)]
            items.append(_item(backend, a, T0 + 1000))
            if with_duplicate:
                items.append(items[0])
            backend.delete_stream(gone.arn, current_version=None)
            results = backend.append_fragments(items)
            kinds = ["FragmentRecord", "FragmentRecord", "StreamNotFound", "FragmentRecord"]
            assert [type(r).__name__ for r in results] == kinds + (
                ["InvalidArgument"] if with_duplicate else []  # the same number twice
            )
            assert [f.fragment_number for f in backend.fragments(a)] == [
                items[0].fragment_number,
                items[3].fragment_number,
            ]
            for item in (items[0], items[1], items[3]):
                assert backend.read_fragment(item.stream, item.fragment_number) == item.data
            sizes.append(du(backend.data_dir))
    assert sizes[0] == sizes[1]  # the rejected duplicate was cut off its file again


def test_reaping_never_deletes_a_file_whose_new_record_is_not_indexed_yet(
    data_dir: Path,
) -> None:
    """A batch writes and fsyncs its records first and indexes them after; a reap in
    between must not take the file they sit in, even when every indexed row of that file
    has expired."""
    with EmbeddedBackend(data_dir) as b:
        s = create(b, retention=1)
        append(b, s, server_ms=T0)
        index_rows = b._index.commit_rows

        def reap_then_index(rows: list[tuple[object, ...]]) -> list[BaseException | None]:
            b.reap(T0 + HOUR + 500)  # the only indexed row of the file expires
            return index_rows(rows)

        b._index.commit_rows = reap_then_index  # type: ignore[method-assign]
        item = _item(b, s, T0 + 1000)
        [record] = b.append_fragments([item])
        assert isinstance(record, FragmentRecord)
        assert b.read_fragment(s, item.fragment_number) == item.data


def test_a_batch_item_that_cannot_be_written_fails_alone(
    backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = create(backend, "a"), create(backend, "b")
    open_new_file = backend._files.open_new
    stream_b = backend._fragments.resolve(b).id

    def no_descriptors_for_b(stream_id: int, writer: Any) -> None:
        if stream_id == stream_b:
            raise OSError(24, "Too many open files")
        open_new_file(stream_id, writer)

    monkeypatch.setattr(backend._files, "open_new", no_descriptors_for_b)
    items = [_item(backend, a, T0), _item(backend, b, T0), _item(backend, a, T0 + 1000)]
    results = backend.append_fragments(items)
    assert isinstance(results[1], StoreError) and "Too many open files" in str(results[1])
    assert [type(r) for r in (results[0], results[2])] == [FragmentRecord, FragmentRecord]
    assert len(backend.fragments(a)) == 2 and backend.fragments(b) == []


def test_a_stream_deleted_while_its_fragment_is_indexed_reports_stream_not_found(
    backend: EmbeddedBackend,
) -> None:
    s = create(backend)
    index_rows = backend._index.commit_rows

    def delete_then_index(rows: list[tuple[object, ...]]) -> list[BaseException | None]:
        backend.delete_stream(s.arn, current_version=None)
        return index_rows(rows)

    backend._index.commit_rows = delete_then_index  # type: ignore[method-assign]
    [result] = backend.append_fragments([_item(backend, s, T0)])
    assert isinstance(result, StreamNotFound)
