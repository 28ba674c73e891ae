"""The fuzz entry point: accepts the corpus, flags what it must flag, runs its loop."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
from mkv_helpers import KVS_DIR, requires_shared, sample_bytes, yacchi_names

from callstream.mkv import fuzz, kvs, render_fragment
from callstream.mkv import writer as w


@pytest.mark.parametrize("data", fuzz.builtin_corpus())
def test_builtin_corpus_is_clean(data: bytes) -> None:
    fuzz.fuzz_one(data)


@requires_shared
@pytest.mark.parametrize("name", [*yacchi_names(), "test_mixed_tags.mkv"])
def test_fixtures_are_clean(name: str) -> None:
    fuzz.fuzz_one(sample_bytes(name))


def test_garbage_and_truncations_are_clean() -> None:
    rng = random.Random(3)
    corpus = fuzz.builtin_corpus()
    for _ in range(60):
        fuzz.fuzz_one(fuzz.mutate(rng.choice(corpus), rng, corpus))
    fuzz.fuzz_one(b"")
    fuzz.fuzz_one(b"\x1a\x45\xdf")


def _old_parse_kvs_timestamp(value: str) -> int:
    """The pre-fix implementation (Decimal without validation)."""
    return int((Decimal(value.strip()) * 1000).to_integral_value())


def test_it_flags_a_non_mkv_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the old timestamp parser back in place, fuzz_one surfaces its OverflowError."""
    data = render_fragment(
        ebml_header=w.ebml_header(),
        header=w.info() + w.tracks([w.TrackSpec(1, "A", "A_AAC")]),
        cluster=w.cluster(0, [w.simple_block(1, 0, b"x")]),
        fragment_number="1",
        server_timestamp_ms=1,
        producer_timestamp_ms=12345678,
    ).replace(b"12345.678", b"Infinity\x00")
    fuzz.fuzz_one(data)  # fixed: a plain tag
    monkeypatch.setattr(kvs, "parse_kvs_timestamp", _old_parse_kvs_timestamp)
    with pytest.raises(OverflowError):
        fuzz.fuzz_one(data)


def test_main_runs_the_mutation_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.mkv").write_bytes(fuzz.builtin_corpus()[0])
    argv = ["--seconds", "0.5", "--seed", "1", "--no-atheris", "--corpus", str(corpus)]
    assert fuzz.main([*argv, "--crash-dir", str(tmp_path / "crashes")]) == 0
    assert "no failure" in capsys.readouterr().out


def test_default_corpus_dir_is_the_shared_test_data() -> None:
    """``shared/testdata/kvs`` next to the repository the package was installed from."""
    found = fuzz.default_corpus_dir()
    assert found.parts[-3:] == ("shared", "testdata", "kvs")
    if KVS_DIR.is_dir() and found.is_dir():
        assert found.samefile(KVS_DIR)
