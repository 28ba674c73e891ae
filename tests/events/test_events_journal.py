"""The event journal: durable JSON Lines segments, recovery of a torn tail, rotation,
retention, reads by cursor."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from callstream.events import Event, Journal, JournalLocked, Retention, encode

ARN = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/s/1"


def line(cursor: int, name: str = "s", pad: int = 0) -> bytes:
    event = Event.of("StreamCreated", time_ms=1000 + cursor, StreamARN=ARN, StreamName=name)
    if pad:
        event = Event.of(
            "StreamCreated", time_ms=1000 + cursor, StreamARN=ARN + "x" * pad, StreamName=name
        )
    return encode(event.with_cursor(cursor))


def fill(journal: Journal, n: int, *, batch: int = 7, pad: int = 0) -> None:
    start = journal.last_cursor + 1
    cursors = list(range(start, start + n))
    for i in range(0, n, batch):
        journal.append([(c, line(c, f"s{c}", pad)) for c in cursors[i : i + batch]])


def cursors_of(journal: Journal, after: int = 0) -> list[int]:
    found, _ = journal.read(after, journal.last_cursor, max_events=10**9, max_scan=10**9)
    return [e.cursor for e, _ in found]


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("*.jsonl"))


def test_appends_are_lines_of_the_wire_form_and_read_back_by_cursor(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert (journal.first_cursor, journal.last_cursor) == (1, 0)
    fill(journal, 1000)
    assert journal.last_cursor == 1000
    (seg,) = segments(tmp_path)
    assert seg.name == "00000000000000000001.jsonl"
    lines = seg.read_bytes().splitlines()
    assert [json.loads(x)["Cursor"] for x in lines] == list(range(1, 1001))
    for after in (0, 1, 127, 128, 129, 500, 999, 1000):
        assert cursors_of(journal, after) == list(range(after + 1, 1001))
    found, scanned_to = journal.read(10, 20, max_events=3)
    assert [e.cursor for e, _ in found] == [11, 12, 13] and scanned_to == 13
    found, scanned_to = journal.read(
        0, 1000, want=lambda e: e.get("StreamName") == "s700", max_scan=500
    )
    assert (found, scanned_to) == ([], 500)  # bounded work; continue after 500
    found, scanned_to = journal.read(500, 1000, want=lambda e: e.get("StreamName") == "s700")
    assert [e.cursor for e, _ in found] == [700] and scanned_to == 1000
    with pytest.raises(ValueError, match="expected 1001"):
        journal.append([(1005, line(1005))])
    journal.close()


def test_the_directory_is_locked_and_keeps_its_identity(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    with pytest.raises(JournalLocked):
        Journal(tmp_path)
    first_id = journal.journal_id
    journal.close()
    again = Journal(tmp_path)
    assert again.journal_id == first_id
    again.close()
    for f in tmp_path.iterdir():
        f.unlink()
    fresh = Journal(tmp_path)
    assert fresh.journal_id != first_id
    fresh.close()


def test_a_bad_identity_file_is_replaced_whole_leaving_no_temporary_file(tmp_path: Path) -> None:
    meta = tmp_path / "journal.json"
    meta.write_text('{"JournalId": ' + " " * 1000)
    meta.chmod(0o600)
    old_umask = os.umask(0o022)
    try:
        journal = Journal(tmp_path)
    finally:
        os.umask(old_umask)
    journal.close()
    assert json.loads(meta.read_text()) == {"JournalId": journal.journal_id, "Format": 1}
    assert stat.S_IMODE(meta.stat().st_mode) == 0o644  # the mode open() gives, less the umask
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["00000000000000000001.jsonl", "LOCK", "journal.json"]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-7], id="torn-last-line"),
        pytest.param(lambda data: data[:-1], id="missing-newline"),
        pytest.param(lambda data: data + b"\0" * 4096, id="zeros-after"),
        pytest.param(
            lambda data: data + b'{"Cursor":99,"EventType":"X","Time":1}\n', id="wrong-cursor"
        ),
        pytest.param(lambda data: data + b'{"Cursor":21,"Even', id="half-a-line"),
    ],
)
def test_a_damaged_tail_is_cut_back_to_the_last_whole_line(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    journal = Journal(tmp_path)
    fill(journal, 20)
    journal.close()
    (seg,) = segments(tmp_path)
    data = seg.read_bytes()
    seg.write_bytes(damage(data))
    recovered = Journal(tmp_path)
    last = 19 if len(damage(data)) < len(data) else 20
    assert recovered.last_cursor == last
    assert cursors_of(recovered) == list(range(1, last + 1))
    assert seg.read_bytes() == b"".join(data.splitlines(keepends=True)[:last])
    fill(recovered, 3)  # the next cursors follow on
    assert cursors_of(recovered) == list(range(1, last + 4))
    recovered.close()


def test_segments_rotate_by_size_and_reads_cross_them(tmp_path: Path) -> None:
    journal = Journal(tmp_path, Retention(segment_bytes=20_000))
    fill(journal, 1000, batch=10)
    names = [p.name for p in segments(tmp_path)]
    assert len(names) > 5
    firsts = [int(n.split(".")[0]) for n in names]
    assert firsts[0] == 1 and firsts == sorted(firsts)
    for path in segments(tmp_path):
        first = int(path.name.split(".")[0])
        data = path.read_bytes()
        assert len(data) <= 20_000 + 2000
        assert json.loads(data.splitlines()[0])["Cursor"] == first
    assert cursors_of(journal, 333) == list(range(334, 1001))
    journal.close()
    reopened = Journal(tmp_path, Retention(segment_bytes=20_000))  # sealed segments: from names
    assert reopened.last_cursor == 1000
    assert cursors_of(reopened, 0) == list(range(1, 1001))
    reopened.close()


def test_retention_deletes_whole_old_segments_by_size_and_by_age(tmp_path: Path) -> None:
    by_size = Journal(tmp_path / "size", Retention(max_bytes=60_000, segment_bytes=20_000))
    fill(by_size, 2000, batch=10)
    assert by_size.size <= 60_000 + 20_000
    first = by_size.first_cursor
    assert first > 1
    assert cursors_of(by_size, 0) == list(range(first, 2001))  # older cursors: from the oldest kept
    by_size.close()

    aged = tmp_path / "age"
    journal = Journal(aged, Retention(max_age_s=3600, segment_bytes=5_000))
    fill(journal, 200, batch=5)
    journal.close()
    old = segments(aged)[:-1]
    assert len(old) >= 2
    stale = time.time() - 7200
    for path in old[:2]:
        os.utime(path, (stale, stale))
    reopened = Journal(aged, Retention(max_age_s=3600, segment_bytes=5_000))
    kept = {p.name for p in segments(aged)}
    assert not kept & {p.name for p in old[:2]} and old[2].name in kept
    assert reopened.last_cursor == 200
    reopened.close()


def test_a_failed_write_keeps_nothing_of_the_batch(tmp_path: Path) -> None:
    # A real partial write: the file-size limit lets the kernel write part of the batch,
    # then fails with EFBIG (in a child process, so the limit touches nothing else).
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_events_journal import fill, line, cursors_of
        from callstream.events import Journal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        journal = Journal(Path({str(tmp_path)!r}))
        fill(journal, 5)
        seg = sorted(Path({str(tmp_path)!r}).glob("*.jsonl"))[0]
        size = seg.stat().st_size
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
        try:
            journal.append([(c, line(c)) for c in (6, 7, 8)])
        except OSError as err:
            print("failed", err.errno)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        print("size", seg.stat().st_size == size, journal.last_cursor)
        journal.append([(c, line(c)) for c in (6, 7, 8)])
        print("cursors", cursors_of(journal))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert out == ["failed 27", "size True 5", "cursors [1, 2, 3, 4, 5, 6, 7, 8]"]
    again = Journal(tmp_path)
    assert cursors_of(again) == list(range(1, 9))
    again.close()


def test_an_undecodable_line_in_a_sealed_segment_is_skipped_not_fatal(tmp_path: Path) -> None:
    journal = Journal(tmp_path, Retention(segment_bytes=3_000))
    fill(journal, 60, batch=3)
    journal.close()
    sealed = segments(tmp_path)[0]
    lines = sealed.read_bytes().splitlines(keepends=True)
    lines[2] = b"x" * (len(lines[2]) - 1) + b"\n"  # bit rot
    sealed.write_bytes(b"".join(lines))
    reopened = Journal(tmp_path, Retention(segment_bytes=3_000))
    assert cursors_of(reopened) == [c for c in range(1, 61) if c != 3]
    reopened.close()
