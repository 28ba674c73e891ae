"""bench/bench_voice.py runs end to end (two calls, a few seconds) and its checks see loss."""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from callstream.client.producer import chime_producer
from callstream.store.writers import FrameMuxer

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPT = BENCH / "bench_voice.py"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the bench reads /proc")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_voice", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_voice"] = module  # dataclasses resolve annotations through it
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))  # its sibling modules, as when run as a script
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def load(bench: ModuleType) -> ModuleType:
    return sys.modules["voice_load"]


def test_tiny_run_records_every_packet_of_both_legs(bench: ModuleType, tmp_path: Path) -> None:
    out = io.StringIO()
    report = tmp_path / "voice.json"
    assert bench.main(["--tiny", "--json", str(report)], out=out) == 0
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| server | N calls | legs | packets/s |")
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| callstream", "| baseline"]
    assert all(row.count("|") == rows[0].count("|") for row in rows)
    results = {r["kind"]: r for r in json.loads(report.read_text())}
    served = results["callstream"]
    assert served["answered"] == 2 and served["legs"] == 4
    assert served["packets_sent"] > 0
    assert served["lost"] == 0 and served["legs_unread"] == 0
    assert served["errors"] == []
    assert served["latency"]["n"] > 0
    assert served["server_cpu_pct"] > 0
    base = results["baseline"]
    assert base["lost"] == 0 and base["latency"]["n"] > 0 and base["errors"] == []


def test_leg_check_counts_lost_packets_and_extra_samples(load: ModuleType) -> None:
    leg = load.Leg(7, 3, 1)
    window = load.Window(start_ns=0, end_ns=1 << 62)
    for t in range(6):
        leg.send_ns.append(t * 20_000_000)
    pcm = [load.POOL_PCM[leg.pool_index(k)] for k in range(6)]
    silence = bytes(2 * 50)  # 50 samples: a resync shifts the rest off the 160-sample grid
    stored = load.ZERO_UNIT + pcm[0] + pcm[1] + load.ZERO_UNIT + pcm[3] + silence + pcm[4]
    # reads that do not fall on packet boundaries
    leg.take(stored[:100], 200_000_000, window)
    leg.take(stored[100:1000], 200_000_000, window)
    leg.take(stored[1000:], 300_000_000, window)
    leg.finish()  # packet 5 never came
    assert leg.matched == 4
    assert leg.sent - leg.matched == 2  # packets 2 (silence instead) and 5
    assert leg.extra_samples == 160 + 160 + 50
    assert leg.gaps == 2
    # a packet is delivered when its unit is complete: 0, 1 at 200 ms; 3, 4 at 300 ms
    assert sorted(window.latency_ns) == [ms * 1_000_000 for ms in (180, 200, 220, 240)]


def test_leg_check_of_a_clean_stream(load: ModuleType) -> None:
    leg = load.Leg(1, 0, 1)
    window = load.Window()
    for t in range(50):
        leg.send_ns.append(t)
    stored = b"".join(load.POOL_PCM[leg.pool_index(k)] for k in range(50))
    for i in range(0, len(stored), 333):
        leg.take(stored[i : i + 333], 1000, window)
    leg.finish()
    assert (leg.matched, leg.extra_samples, leg.gaps, leg.samples) == (50, 0, 0, 50 * 160)


def test_block_scanner_reads_the_recorders_mkv(load: ModuleType) -> None:
    muxer = FrameMuxer(
        chime_producer(transaction_id="t", voice_connector_id="v", call_id="c"), fragment_ms=1000
    )
    frames = [bytes([k]) * 320 for k in range(120)]  # 2.4 s: three clusters
    data = b"".join(muxer.frame(1, f, 1_700_000_000_000 + 20 * k) for k, f in enumerate(frames))
    scanner = load.BlockScanner()
    got: list[bytes] = []
    for i in range(0, len(data), 97):  # elements split across reads
        got += scanner.feed(data[i : i + 97])
    assert got == frames
