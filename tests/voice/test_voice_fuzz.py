"""The voice fuzz entry point: its corpus parses cleanly, a bounded run of its mutation loop
finds nothing, and its checks can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.fuzzing import run_loop
from callstream.voice import fuzz
from callstream.voice.sip import Request, SipError, parse_message


def test_every_corpus_message_parses_and_passes() -> None:
    for data in fuzz.SIP_CORPUS:
        assert parse_message(data) is not None
    for data in fuzz.sip_corpus(None):
        fuzz.fuzz_sip(data)


def test_corpus_directory_is_added(tmp_path: Path) -> None:
    (tmp_path / "one.sip").write_bytes(b"OPTIONS x")
    assert fuzz.sip_corpus(tmp_path)[-1] == b"OPTIONS x"


def test_a_bounded_mutation_run_finds_nothing(tmp_path: Path) -> None:
    target = fuzz.TARGETS["sip"]
    corpus = target.load_corpus(None)
    done = run_loop(
        target.run, corpus, seed=11, iterations=2000, crash_dir=tmp_path, mutator=target.mutator
    )
    assert done == 2000
    assert not list(tmp_path.iterdir())


def test_main_runs_the_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--target", "sip", "--iterations", "300", "--seed", "5", "--no-atheris"]
    assert fuzz.main([*argv, "--crash-dir", str(tmp_path)]) == 0
    assert "ok: 300 inputs, no failure" in capsys.readouterr().out


def test_a_parser_failure_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The checks themselves must be able to fail: break the parser the target calls.
    def broken(data: bytes) -> Request:
        raise IndexError("parser bug")

    monkeypatch.setattr(fuzz, "parse_message", broken)
    argv = ["--iterations", "5", "--seed", "1", "--no-atheris", "--crash-dir", str(tmp_path)]
    assert fuzz.main(argv) == 1
    assert "IndexError" in capsys.readouterr().err
    assert len(list(tmp_path.iterdir())) == 1


def test_a_chunking_dependent_outcome_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def flaky(chunks: list[bytes]) -> tuple[list[bytes], int | None]:
        calls.append(len(chunks))
        return [], len(calls)

    monkeypatch.setattr(fuzz, "_stream_outcome", flaky)
    with pytest.raises(AssertionError, match="chunking"):
        fuzz.fuzz_sip(fuzz.SIP_CORPUS[1])


def test_sip_error_is_the_accepted_failure() -> None:
    with pytest.raises(SipError):
        parse_message(b"\x00garbage\r\n\r\n")
    fuzz.fuzz_sip(b"\x00garbage\r\n\r\n")
