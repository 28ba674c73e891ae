"""The shared fuzz driver (callstream.fuzzing): the same seed runs the same inputs, a
failing input is saved and reported, the bounds hold, and ``--target`` picks a target."""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.fuzzing import FuzzTarget, corpus_files, fuzz_main, run_loop, targets_main

CORPUS = [b"hello world", b"\x1a\x45\xdf\xa3\x00", b"{}"]


def _inputs(seed: int, tmp_path: Path, iterations: int = 50) -> list[bytes]:
    seen: list[bytes] = []
    done = run_loop(seen.append, CORPUS, seed=seed, iterations=iterations, crash_dir=tmp_path)
    assert done == iterations == len(seen)
    return seen


def test_the_same_seed_runs_the_same_inputs(tmp_path: Path) -> None:
    first = _inputs(3, tmp_path)
    assert _inputs(3, tmp_path) == first
    assert _inputs(4, tmp_path) != first
    assert len(set(first)) > 10  # they are mutated, not the corpus over and over


def _fails_on_z(data: bytes) -> None:
    if b"z" in data:
        raise ValueError(f"found z in {len(data)} bytes")


def test_a_failing_input_is_saved_and_its_error_raised(tmp_path: Path) -> None:
    logged: list[str] = []
    with pytest.raises(ValueError, match="found z") as raised:
        run_loop(
            _fails_on_z,
            [b"abc", b"xyz"],
            seed=1,
            iterations=1000,
            crash_dir=tmp_path / "crashes",
            suffix=".txt",
            log=logged.append,
        )
    (saved,) = (tmp_path / "crashes").iterdir()
    assert saved.suffix == ".txt" and saved.name.startswith("crash-")
    assert b"z" in saved.read_bytes()
    with pytest.raises(ValueError, match=str(raised.value)):
        _fails_on_z(saved.read_bytes())  # the saved input is the one that failed
    assert len(logged) == 1 and str(saved) in logged[0]


def test_main_reports_a_crash_with_the_saved_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crashes = tmp_path / "crashes"
    argv = ["--iterations", "1000", "--seed", "1", "--no-atheris", "--crash-dir", str(crashes)]
    code = fuzz_main(
        argv,
        prog="fuzz-test",
        description=None,
        target=_fails_on_z,
        load_corpus=lambda _: [b"abc", b"xyz"],
    )
    assert code == 1
    (saved,) = crashes.iterdir()
    out = capsys.readouterr()
    assert f"input saved to {saved}" in out.out
    assert "FAILED: ValueError: found z" in out.err


def test_main_runs_clean_for_its_iterations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[bytes] = []
    argv = ["--iterations", "30", "--seed", "9", "--no-atheris", "--crash-dir", str(tmp_path)]
    code = fuzz_main(
        argv, prog="fuzz-test", description=None, target=seen.append, load_corpus=lambda _: CORPUS
    )
    assert code == 0 and len(seen) == 30
    out = capsys.readouterr().out
    assert "mutation loop: 3 corpus inputs, seed 9" in out
    assert "ok: 30 inputs, no failure" in out
    assert seen == _inputs(9, tmp_path, 30)  # the command line's seed is the loop's seed
    assert not list(tmp_path.iterdir())


def test_the_loop_needs_a_corpus_and_a_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty corpus"):
        run_loop(_fails_on_z, [], seed=1, iterations=1, crash_dir=tmp_path)
    with pytest.raises(ValueError, match="seconds or iterations"):
        run_loop(_fails_on_z, CORPUS, seed=1, crash_dir=tmp_path)
    assert run_loop(_fails_on_z, CORPUS, seed=1, seconds=0.0, crash_dir=tmp_path) == 0


def test_corpus_files_are_the_files_of_the_folder_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.bin").write_bytes(b"second")
    (tmp_path / "a.bin").write_bytes(b"first")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.bin").write_bytes(b"nested: not read")
    assert corpus_files(tmp_path) == [b"first", b"second"]
    assert corpus_files(None) == []
    assert corpus_files(tmp_path / "missing") == []


def _targets(seen: dict[str, list[bytes]]) -> dict[str, FuzzTarget]:
    def target(name: str) -> FuzzTarget:
        return FuzzTarget(
            lambda data: seen.setdefault(name, []).append(data),
            lambda directory: [name.encode(), *corpus_files(directory)],
            suffix=f".{name}",
        )

    return {"one": target("one"), "two": target("two")}


def test_target_picks_one_of_several(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seen: dict[str, list[bytes]] = {}

    def run(*target: str) -> int:
        rest = ["--iterations", "5", "--seed", "2", "--no-atheris", "--crash-dir", str(tmp_path)]
        return targets_main(
            [*target, *rest],
            prog="fuzz-test",
            description=None,
            targets=_targets(seen),
            default="one",
            crash_dir="unused",
        )

    assert run() == 0
    assert list(seen) == ["one"]  # the default
    assert run("--target", "two") == 0
    assert len(seen["one"]) == len(seen["two"]) == 5
    assert "ok: 5 inputs, no failure" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        run("--target", "three")
    assert exited.value.code == 2
    assert "invalid choice: 'three'" in capsys.readouterr().err


def test_a_target_crash_is_saved_with_its_suffix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = {"z": FuzzTarget(_fails_on_z, lambda _: [b"xyz"], suffix=".zz")}
    argv = ["--iterations", "100", "--seed", "1", "--no-atheris", "--crash-dir", str(tmp_path)]
    code = targets_main(
        argv, prog="fuzz-test", description=None, targets=targets, default="z", crash_dir="x"
    )
    assert code == 1
    (saved,) = tmp_path.iterdir()
    assert saved.suffix == ".zz"
    assert "FAILED: ValueError" in capsys.readouterr().err
