"""callstream.durable on real files: atomic, durable replacement and directory fsync."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from callstream.durable import replace_file, sync_directory


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_content_with_mode_0600_by_default(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    replace_file(path, b"\x00key\xff")
    assert path.read_bytes() == b"\x00key\xff"
    assert _mode(path) == 0o600
    assert os.listdir(tmp_path) == ["secret.key"]


def test_mode_is_given_less_umask(tmp_path: Path, umask_022: None) -> None:
    replace_file(tmp_path / "a", b"a", mode=0o666)
    replace_file(tmp_path / "b", b"b", mode=0o640)
    assert _mode(tmp_path / "a") == 0o644
    assert _mode(tmp_path / "b") == 0o640


def test_empty_data(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"old")
    replace_file(path, b"")
    assert path.read_bytes() == b""


def test_existing_file_is_replaced_whole_and_takes_the_new_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"x" * 100_000)
    path.chmod(0o644)
    with open(path, "rb") as old:  # a reader of the old file keeps reading the old file
        replace_file(path, b"short", mode=0o600)
        assert old.read() == b"x" * 100_000
    assert path.read_bytes() == b"short"
    assert _mode(path) == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_large_data_is_written_in_full(tmp_path: Path) -> None:
    data = os.urandom(8 * 1024 * 1024 + 3)
    replace_file(tmp_path / "big", data, sync_parent=True)
    assert (tmp_path / "big").read_bytes() == data


def test_missing_directory_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_file(tmp_path / "missing" / "file", b"data")
    assert os.listdir(tmp_path) == []


def test_failed_rename_removes_the_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    with pytest.raises(IsADirectoryError):
        replace_file(tmp_path / "target", b"data")
    assert os.listdir(tmp_path) == ["target"]
    assert os.listdir(tmp_path / "target") == []


def test_failure_while_writing_removes_the_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        replace_file(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file"]


def test_write_error_after_a_short_write_keeps_the_old_file(tmp_path: Path) -> None:
    """A file-size limit makes the first os.write short and the next one fail (EFBIG): a
    real write error, in a child process so the limit stays there."""
    path = tmp_path / "file"
    path.write_bytes(b"old contents")
    script = textwrap.dedent(
        """
        import errno, resource, signal, sys
        from callstream.durable import replace_file

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            replace_file(sys.argv[1], b"n" * 10_000)
        except OSError as err:
            print(errno.errorcode[err.errno])
        else:
            print("written")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == errno.errorcode[errno.EFBIG]
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["file"]


def test_concurrent_threads_each_leave_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    payloads = [bytes([i]) * (64 * 1024 + i) for i in range(8)]
    start = threading.Barrier(len(payloads))
    errors: list[BaseException] = []

    def writer(data: bytes) -> None:
        try:
            start.wait()
            for _ in range(20):
                replace_file(path, data)
                assert path.read_bytes() in payloads
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_bytes() in payloads
    assert os.listdir(tmp_path) == ["shared"]


def test_concurrent_processes_each_leave_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    script = textwrap.dedent(
        """
        import sys
        from callstream.durable import replace_file

        data = sys.argv[2].encode() * 50_000
        for _ in range(20):
            replace_file(sys.argv[1], data)
        """
    )
    letters = "abcd"
    children = [
        subprocess.Popen([sys.executable, "-c", script, str(path), c], stderr=subprocess.PIPE)
        for c in letters
    ]
    for child in children:
        _, err = child.communicate()
        assert child.returncode == 0, err
    assert path.read_bytes() in [c.encode() * 50_000 for c in letters]
    assert os.listdir(tmp_path) == ["shared"]


def test_sync_directory(tmp_path: Path) -> None:
    sync_directory(tmp_path)
    sync_directory(str(tmp_path))
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        sync_directory(tmp_path / "file")
    with pytest.raises(FileNotFoundError):
        sync_directory(tmp_path / "missing")


def test_sync_parent_of_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    replace_file("relative", b"data", sync_parent=True)
    assert (tmp_path / "relative").read_bytes() == b"data"
