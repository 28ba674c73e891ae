"""A/B of the live-call benchmark: two callstream checkouts, interleaved, on one machine.

Runs ``bench_server.run_realtime`` (N real-time Connect-shaped producers, each with a live
GetMedia reader) for checkout A and checkout B in turn, several rounds, so that a change in
the machine's speed during the runs hits both alike. Each run uses that checkout's own
``src`` and ``bench/bench_server.py``::

    python bench/bench_server_ab.py --a /path/to/old/checkout --b . --n 150,300,400 --rounds 2

Prints a markdown table: checkout, round, N, p50 and p99 latency, frames lost, server CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
sys.path.insert(0, {bench!r})
sys.argv = ["bench_server"]
import bench_server as b
r = b.run_realtime("callstream", {n}, {seconds}, {warmup})
print("RESULT", r.latency.get("p50"), r.latency.get("p99"), r.lost, r.server_cpu_pct)
"""


def run(root: Path, n: int, seconds: float, warmup: float) -> str:
    code = PROBE.format(bench=str(root / "bench"), n=n, seconds=seconds, warmup=warmup)
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return "failed: " + done.stderr.strip().splitlines()[-1] if done.stderr else "failed"
    p50, p99, lost, cpu = lines[-1].split()[1:]
    return f"{float(p50):.1f} | {float(p99):.1f} | {lost} | {float(cpu):.0f}%"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True, help="checkout A (e.g. the old code)")
    ap.add_argument("--b", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--n", default="150,300,400")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    args = ap.parse_args(argv)
    print("| checkout | round | N | p50 ms | p99 ms | frames lost | server CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rnd in range(1, args.rounds + 1):
        for name, root in (("A", args.a), ("B", args.b)):
            for n in (int(x) for x in args.n.split(",")):
                row = run(root.resolve(), n, args.seconds, args.warmup)
                print(f"| {name} | {rnd} | {n} | {row} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
