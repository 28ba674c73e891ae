"""Live calls on the NATS JetStream store: one and two ``callstream serve`` nodes on a
3-node JetStream cluster, next to the embedded store, in one run.

The load is bench_server.py's (a): N Connect-shaped real-time PutMedia uploads (2 tracks,
20 ms frames, 1 s fragments, one frame pair every 20 ms per call), each with a live
GetMedia reader (StartSelector NOW) that measures producer-to-reader latency per frame
from the send time the producer wrote into the frame. Setups:

* ``embedded`` -- one node, the embedded store (the reference);
* ``nats x1`` -- one node on the cluster (replicas 3): producer and reader on that node;
* ``nats x2`` -- two nodes on the cluster: calls split over the nodes, and every reader
  on the *other* node than its producer (live bytes cross between nodes over NATS).

A setup sustains N calls when no frame is lost, no upload or reader failed, and the p99
producer-to-reader latency is under 200 ms. Everything runs on this machine (loopback):
the load generator, the callstream nodes and the three nats-servers share its cores, so
the numbers are a floor for machines of their own (see README, "Scale-out on NATS
JetStream").

    python bench/bench_store_nats.py [--n 25,50,100] [--seconds 10] [--warmup 3]

Needs ``nats-server`` on PATH (scripts/setup-dev.sh installs it). Prints a markdown table;
raw numbers go to ``bench/out/store_nats.json``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench_common import ServerProcess, free_port, rss_kb
from bench_server import (
    ACCESS_KEY,
    FRAMES_PER_CLUSTER,
    LOOP_NAME,
    OUT,
    P99_LIMIT_MS,
    SECRET_KEY,
    Stream,
    Ticker,
    Window,
    _producer,
    _reader,
    create_streams,
    fmt,
    new_session,
    run_async,
    stop_load,
    summary_ms,
    table,
)
from callstream.store.crypto import Keyring, default_kms_key_id


class Nats(ServerProcess):
    """One nats-server of a loopback JetStream cluster."""

    def __init__(self, i: int, port: int, cport: int, routes: list[int], root: Path) -> None:
        store = root / f"js{i}"
        conf = root / f"n{i}.conf"
        route_list = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
        conf.write_text(
            f'server_name: "n{i}"\nlisten: 127.0.0.1:{port}\nmax_payload: 8388608\n'
            f'jetstream {{ store_dir: "{store}" }}\n'
            f'cluster {{ name: "bench", listen: 127.0.0.1:{cport}, routes: [{route_list}] }}\n'
        )
        exe = shutil.which("nats-server")
        if exe is None:
            raise SystemExit("nats-server is not installed (apt-get install nats-server)")
        super().__init__(
            [exe, "-c", str(conf)], port=port, log_path=root / f"n{i}.log", name=f"nats n{i}"
        )
        self.url = f"nats://127.0.0.1:{port}"


def start_cluster(root: Path, size: int = 3) -> list[Nats]:
    """``size`` nats-servers routed to one another, on free loopback ports."""
    ports = [(free_port(), free_port()) for _ in range(size)]
    return [
        Nats(i, p, c, [c2 for j, (_, c2) in enumerate(ports) if j != i], root)
        for i, (p, c) in enumerate(ports)
    ]


class Node(ServerProcess):
    """``callstream serve`` with the given ``--store``."""

    def __init__(self, store: str, data_dir: Path) -> None:
        port = free_port()
        self.kind = "callstream"
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, CALLSTREAM_ACCESS_KEY_ID=ACCESS_KEY)
        env["CALLSTREAM_SECRET_ACCESS_KEY"] = SECRET_KEY
        cmd = [sys.executable, "-m", "callstream.cli", "serve", "--no-sip", "--ui", "off"]
        cmd += ["--analytics", "off", "--port", str(port), "--data-dir", str(data_dir)]
        cmd += ["--store", store]
        super().__init__(
            cmd, port=port, log_path=data_dir.with_suffix(".log"), env=env, name="callstream"
        )
        time.sleep(0.3)
        self.idle_rss_kb = rss_kb(self.pid)


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(
    label: str, nodes: list[Node], others: list[int], n: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """N live calls: call i produces on node i % k and is read on node (i + 1) % k."""
    k = len(nodes)
    names = [f"nb-{label.replace(' ', '')}-{n}-{i}-{time.time_ns() % 10**6}" for i in range(n)]
    await create_streams(nodes[0].url, names)
    window = Window()
    lat = array.array("q")
    head = array.array("q")
    acks: dict[str, array.array] = {x: array.array("q") for x in ("BUFFERING", "PERSISTED")}
    acks["RECEIVED"] = array.array("q")
    streams = [Stream(i, name) for i, name in enumerate(names)]
    ticker = Ticker(window)
    tick = asyncio.create_task(ticker.run())
    sess = new_session()
    tasks: list[asyncio.Task[Any]] = []
    sem = asyncio.Semaphore(25)

    async def start(st: Stream) -> None:
        async with sem:
            ready = asyncio.Event()
            reader_node = nodes[(st.idx + 1) % k]
            tasks.append(
                asyncio.create_task(_reader(sess, reader_node.url, st, lat, head, window, ready))
            )
            await ready.wait()
            st.tc0_ms = int(time.time() * 1000)
            started = asyncio.Event()
            producer_node = nodes[st.idx % k]
            tasks.append(asyncio.create_task(_producer(sess, producer_node.url, st, acks, started)))
            ticker.add(st)
            await started.wait()

    pids = [node.pid for node in nodes]
    try:
        await asyncio.gather(*(start(st) for st in streams))
        await asyncio.sleep(warmup)
        c0, o0, t0 = sum(map(cpu_s, pids)), sum(map(cpu_s, others)), time.monotonic()
        window.start_ns = time.time_ns()
        window.end_ns = window.start_ns + int(seconds * 1e9)
        await asyncio.sleep(seconds)
        c1, o1, t1 = sum(map(cpu_s, pids)), sum(map(cpu_s, others)), time.monotonic()
        for st in streams:
            st.stopped = True
            st.queue.put_nowait(None)
        ticker.running = False
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            if all(s.received >= s.sent for s in streams) and all(
                s.acks["PERSISTED"] >= s.sent // (2 * FRAMES_PER_CLUSTER) for s in streams
            ):
                break
            await asyncio.sleep(0.1)
    finally:
        await stop_load(ticker, tick, tasks, sess)
    sent = sum(s.sent for s in streams)
    received = sum(s.received for s in streams)
    errors = [e for s in streams for e in (s.reader_error, s.producer_error) if e]
    latency = summary_ms(lat)
    p99 = latency.get("p99")
    return {
        "setup": label,
        "n": n,
        "frames_sent": sent,
        "lost": sent - received,
        "latency": latency,
        "persisted": summary_ms(acks["PERSISTED"]),
        "callstream_cpu_pct": 100 * (c1 - c0) / (t1 - t0),
        "nats_cpu_pct": 100 * (o1 - o0) / (t1 - t0),
        "errors": errors[:5],
        "ok": p99 is not None and p99 < P99_LIMIT_MS and sent == received and not errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="25,50,100", help="concurrent live calls to try")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    args = ap.parse_args()
    counts = [int(x) for x in args.n.split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench-nats-"))
    results: list[dict[str, Any]] = []
    cluster: list[Nats] = []
    try:
        cluster = start_cluster(root)
        store = ",".join(x.url for x in cluster)
        nats_pids = [x.pid for x in cluster]
        dirs = [root / "node-a", root / "node-b", root / "embedded"]
        for d in dirs:
            d.mkdir(mode=0o700)
        Keyring(dirs[0] / "keys.json").master_key(default_kms_key_id("us-east-1", "123456789012"))
        shutil.copy2(dirs[0] / "keys.json", dirs[1] / "keys.json")
        setups: list[tuple[str, list[Node], list[int]]] = []
        embedded = Node("embedded", dirs[2])
        a, b = Node(store, dirs[0]), Node(store, dirs[1])
        setups = [("embedded", [embedded], []), ("nats x1", [a], nats_pids)]
        setups.append(("nats x2", [a, b], nats_pids))
        try:
            for n in counts:
                for label, nodes, others in setups:
                    res = run_async(run(label, nodes, others, n, args.seconds, args.warmup))
                    results.append(res)
                    lat = res["latency"]
                    print(
                        f"{label:9} N={n:4}: p50={fmt(lat.get('p50'))} p99={fmt(lat.get('p99'))}"
                        f" ms lost={res['lost']} errors={len(res['errors'])}"
                        f" {'ok' if res['ok'] else 'FAIL'}",
                        flush=True,
                    )
        finally:
            for node in (embedded, a, b):
                node.stop()
    finally:
        for x in cluster:
            x.stop()
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(report(results))
    OUT.mkdir(exist_ok=True)
    meta = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "loop": LOOP_NAME}
    meta["machine"] = platform.platform()
    (OUT / "store_nats.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=1))


def report(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        lat, pers = r["latency"], r["persisted"]
        rows.append(
            [
                r["setup"],
                str(r["n"]),
                fmt(lat.get("p50")),
                fmt(lat.get("p99")),
                fmt(pers.get("p99")),
                str(r["lost"]),
                f"{r['callstream_cpu_pct']:.0f}",
                f"{r['nats_cpu_pct']:.0f}",
                "yes" if r["ok"] else "no",
            ]
        )
    best: dict[str, int] = defaultdict(int)
    for r in results:
        if r["ok"]:
            best[r["setup"]] = max(best[r["setup"]], r["n"])
    head = [
        "setup",
        "live calls",
        "p50 ms",
        "p99 ms",
        "PERSISTED p99 ms",
        "frames lost",
        "callstream CPU %",
        "nats CPU %",
        "p99<200, no loss",
    ]
    lines = [table(head, rows), ""]
    for setup in dict.fromkeys(r["setup"] for r in results):
        lines.append(f"- {setup}: sustained {best.get(setup, 0)} live calls (of those tried)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
