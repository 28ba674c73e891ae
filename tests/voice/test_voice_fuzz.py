"""The voice fuzz entry point: its corpus parses cleanly, a bounded run of its mutation loop
finds nothing, and its checks can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.fuzzing import run_loop
from callstream.voice import fuzz
from callstream.voice.errors import SipError
from callstream.voice.sip import Request, parse_message


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


@pytest.mark.parametrize("name", ["siprec", "rtp"])
def test_offer_and_rtp_targets_run_bounded_and_clean(name: str, tmp_path: Path) -> None:
    target = fuzz.TARGETS[name]
    corpus = target.load_corpus(None)
    for data in corpus:
        target.run(data)  # the seeds themselves pass
    done = run_loop(
        target.run, corpus, seed=5, iterations=1500, crash_dir=tmp_path, mutator=target.mutator
    )
    assert done == 1500
    assert not list(tmp_path.iterdir())


def test_siprec_target_accepts_the_corpus_offer() -> None:
    # the seed is a real SIPREC INVITE body: it must get all the way to an answer
    content_type, body = fuzz.siprec_corpus(None)[0].split(b"\n", 1)
    offer = fuzz.parse_recording_offer(content_type.decode(), body, record_only=False)
    assert len(fuzz.assign_roles(offer)) == 2


def test_rtp_target_reports_a_broken_jitter_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    class Gappy(fuzz.JitterBuffer):
        """Leaves one sample out before every chunk it releases."""

        shift = 0

        def push(self, packet, arrival_ms, *, start=None):  # type: ignore[no-untyped-def]
            out = []
            for chunk in super().push(packet, arrival_ms, start=start):
                Gappy.shift += 1
                out.append(type(chunk)(chunk.start + Gappy.shift, chunk.pcm, chunk.silence))
            return out

    monkeypatch.setattr(fuzz, "JitterBuffer", Gappy)
    first, _, _third = fuzz.rtp_corpus(None)
    with pytest.raises(AssertionError, match="contiguous"):
        fuzz.fuzz_rtp(first + fuzz.build_rtp(
            payload_type=0, sequence=2, timestamp=2000, ssrc=7, payload=bytes(160)
        ))  # fmt: skip
