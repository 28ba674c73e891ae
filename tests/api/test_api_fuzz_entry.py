"""The HTTP fuzz entry point: its corpus reaches every operation cleanly, and a bounded
run of its mutation loop finds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.api import fuzz
from callstream.fuzzing import run_loop


def test_every_corpus_request_is_answered_cleanly() -> None:
    for data in fuzz.load_corpus(None):
        fuzz.fuzz_one(data)


def test_a_bounded_mutation_run_finds_nothing(tmp_path: Path) -> None:
    corpus = fuzz.load_corpus(None)
    done = run_loop(
        fuzz.fuzz_one, corpus, seed=8, iterations=1500, crash_dir=tmp_path, mutator=fuzz.mutate
    )
    assert done == 1500


def test_a_server_error_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # The check itself must be able to fail: make the open server log an error.
    servers = fuzz._start()
    servers.errors.seen.append("callstream.api: internal error")
    with pytest.raises(AssertionError, match="logged errors"):
        fuzz.fuzz_one(b"\x01GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_main_runs_the_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--seconds", "0.5", "--seed", "3", "--no-atheris", "--crash-dir", str(tmp_path)]
    assert fuzz.main(argv) == 0
    assert "no failure" in capsys.readouterr().out
