"""bench/bench_attack.py runs end to end (tiny numbers) and prints its table."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "bench_attack.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_attack", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_attack"] = module  # dataclasses resolve annotations through it
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(SCRIPT.parent))  # its sibling modules, as when run as a script
        spec.loader.exec_module(module)
    return module


def test_tiny_memory_attack_prints_a_row_per_phase(bench: ModuleType) -> None:
    out = io.StringIO()
    assert bench.main(["--tiny", "--attack", "memory"], out=out) == 0
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| phase | attack |")
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    for name in (
        "baseline",
        "memory: unsigned, round 1/1",
        "memory: unsigned, connections closed",
        "after the memory attacks",
    ):
        assert name in names
    assert all(row.count("|") == rows[0].count("|") for row in rows)


def test_server_errors_counts_tracebacks_and_error_lines(bench: ModuleType) -> None:
    text = (
        "socket.accept() out of system resource\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "OSError: [Errno 24] Too many open files\n"
    ) * 3
    tracebacks, errors = bench.server_errors(text)
    assert tracebacks == 3
    assert errors == {"OSError: [Errno 24] Too many open files": 3}
