"""The ingest fuzz entry point: its corpora pass, bounded mutation runs find nothing, and
its checks can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.fuzzing import run_loop
from callstream.ingest import fuzz
from callstream.ingest.events import Close, IngestEvent, ProtocolError
from callstream.ingest.twilio import TwilioStream


@pytest.mark.parametrize("name", sorted(fuzz.TARGETS))
def test_every_corpus_session_passes(name: str) -> None:
    target = fuzz.TARGETS[name]
    corpus = target.load_corpus(None)
    assert corpus
    for data in corpus:
        target.run(data)


def test_corpus_sessions_are_real_sessions() -> None:
    # The corpus must exercise the cores, not be refused on the first message.
    stream = TwilioStream()
    events: list[IngestEvent] = []
    for line in fuzz.twilio_corpus(None)[0].split(b"\n"):
        events += stream.receive_text(line.decode())
    assert not any(isinstance(e, ProtocolError) for e in events)
    assert events[-1] == Close(1000, "stream stopped")


def test_corpus_directory_is_added(tmp_path: Path) -> None:
    (tmp_path / "one.session").write_bytes(b"{}")
    assert fuzz.websocket_corpus(tmp_path)[-1] == b"{}"


@pytest.mark.parametrize("name", sorted(fuzz.TARGETS))
def test_a_bounded_mutation_run_finds_nothing(name: str, tmp_path: Path) -> None:
    target = fuzz.TARGETS[name]
    done = run_loop(
        target.run,
        target.load_corpus(None),
        seed=7,
        iterations=400,
        crash_dir=tmp_path,
        mutator=target.mutator,
        log=lambda _: None,
    )
    assert done == 400
    assert not list(tmp_path.iterdir())


def test_main_runs_the_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--target", "audiosocket", "--iterations", "200", "--seed", "5", "--no-atheris"]
    assert fuzz.main([*argv, "--crash-dir", str(tmp_path)]) == 0
    assert "ok: 200 inputs, no failure" in capsys.readouterr().out


def test_an_internal_error_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The check must be able to fail: break a helper the Twilio core calls.
    def broken(payload: bytes) -> bytes:
        raise IndexError("decoder bug")

    monkeypatch.setattr("callstream.ingest.twilio.decode_pcmu", broken)
    argv = ["--target", "twilio", "--iterations", "5", "--seed", "1", "--no-atheris"]
    assert fuzz.main([*argv, "--crash-dir", str(tmp_path)]) == 1
    assert "internal-error path" in capsys.readouterr().err
    assert len(list(tmp_path.iterdir())) == 1


def test_a_chunking_dependent_outcome_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = fuzz._audiosocket_events

    def flaky(chunks: list[bytes]) -> list[IngestEvent]:
        calls.append(len(chunks))
        events = real(chunks)
        return events if len(calls) == 1 else [*events, Close()]

    monkeypatch.setattr(fuzz, "_audiosocket_events", flaky)
    with pytest.raises(AssertionError, match="chunking"):
        fuzz.fuzz_audiosocket(fuzz.audiosocket_corpus(None)[0])


def test_two_closes_are_reported() -> None:
    with pytest.raises(AssertionError, match="2 Close events"):
        fuzz._check([Close(), Close()])
