"""The flow fuzz entry point: a clean corpus, it flags what it must flag, its loop runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from flows_helpers import LCA_FLOW, requires_lca

from callstream.flows import ACTIONS, FlowType, fuzz, load_flow
from callstream.flows import loader as flow_loader
from callstream.fuzzing import run_loop


@pytest.mark.parametrize(
    "data", fuzz.builtin_corpus(), ids=["contact", "queue", "legacy", "whisper"]
)
def test_builtin_corpus_is_clean(data: bytes) -> None:
    fuzz.fuzz_one(data)
    assert not [w for w in load_flow(data).warnings if "unknown" in w.message]


def test_builtin_corpus_covers_every_action_and_legacy_module_type() -> None:
    flows = [load_flow(data) for data in fuzz.builtin_corpus()]
    used = {a.type for flow in flows for a in flow.actions.values()}
    implemented = {t for t, spec in ACTIONS.items() if spec.implemented}
    assert implemented <= used
    modules = {
        m["type"] for data in fuzz.builtin_corpus() for m in json.loads(data).get("modules", [])
    }
    assert modules == set(flow_loader.LEGACY_TYPES)
    assert {flow.type for flow in flows} >= {FlowType.CONTACT_FLOW, FlowType.CUSTOMER_QUEUE}


@requires_lca
def test_the_shared_flows_are_clean() -> None:
    corpus = fuzz.load_corpus(LCA_FLOW.parent)
    assert LCA_FLOW.read_bytes() in corpus
    for data in corpus:
        fuzz.fuzz_one(data)


def test_garbage_and_mutations_are_clean() -> None:
    rng = random.Random(5)
    corpus = fuzz.builtin_corpus()
    for _ in range(150):
        fuzz.fuzz_one(fuzz.mutate(rng.choice(corpus), rng, corpus))
    for data in (b"", b"{", b"\xff", b"[]", b"null", b'{"modules": 5}', b'{"Actions": {}}'):
        fuzz.fuzz_one(data)


def _old_list_field(raw, key, ident, errors):  # type: ignore[no-untyped-def]
    """The pre-fix reading of Transitions.Errors/Conditions (any truthy value iterated)."""
    return raw.get(key) or []


def test_it_flags_a_non_flow_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the old Transitions reading back in place, fuzz_one surfaces its TypeError."""
    doc = json.loads(fuzz.builtin_corpus()[1])
    doc["Actions"][0]["Transitions"]["Errors"] = True
    data = json.dumps(doc).encode()
    fuzz.fuzz_one(data)  # fixed: a FlowError naming the action
    monkeypatch.setattr(flow_loader, "_list_field", _old_list_field)
    with pytest.raises(TypeError):
        fuzz.fuzz_one(data)


def test_the_loop_runs_a_bounded_number_of_iterations(tmp_path: Path) -> None:
    logged: list[str] = []
    n = run_loop(
        fuzz.fuzz_one,
        fuzz.load_corpus(tmp_path),  # no files there: the built-in corpus
        seed=11,
        crash_dir=tmp_path / "crashes",
        iterations=400,
        mutator=fuzz.mutate,
        log=logged.append,
    )
    assert n == 400 and not logged
    assert not (tmp_path / "crashes").exists()


def test_a_crash_is_saved_and_main_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(flow_loader, "_list_field", _old_list_field)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    doc = json.loads(fuzz.builtin_corpus()[1])
    doc["Actions"][0]["Transitions"]["Conditions"] = 5
    (corpus / "crash.json").write_text(json.dumps(doc))
    crashes = tmp_path / "crashes"
    # the seed input itself mutated a little still crashes within a few thousand tries
    argv = ["--seconds", "60", "--iterations", "3000", "--seed", "3", "--no-atheris"]
    assert fuzz.main([*argv, "--corpus", str(corpus), "--crash-dir", str(crashes)]) == 1
    saved = list(crashes.glob("crash-*.json"))
    assert len(saved) == 1
    with pytest.raises(TypeError):
        fuzz.fuzz_one(saved[0].read_bytes())
    out = capsys.readouterr()
    assert "input saved to" in out.out and "FAILED: TypeError" in out.err


def test_main_runs_the_mutation_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--iterations", "200", "--seed", "1", "--no-atheris", "--corpus", str(tmp_path)]
    assert fuzz.main([*argv, "--crash-dir", str(tmp_path / "crashes")]) == 0
    assert "ok: 200 inputs, no failure" in capsys.readouterr().out


def test_default_corpus_dir_is_the_shared_test_data() -> None:
    """``shared/testdata/connect-flows`` next to the repository the package came from."""
    found = fuzz.default_corpus_dir()
    assert found.parts[-3:] == ("shared", "testdata", "connect-flows")
    if LCA_FLOW.is_file() and found.is_dir():
        assert found.samefile(LCA_FLOW.parent)


def test_the_loop_needs_a_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seconds or iterations"):
        run_loop(fuzz.fuzz_one, fuzz.builtin_corpus(), seed=1, crash_dir=tmp_path)
