"""Call events across a NATS cluster: how long an event published on node A takes to
reach a subscriber on node B, next to a subscriber on A itself (the baseline), in one run.

Two nodes' event sides in this process (each: its bus with its journal, its NATS store
connection and its :class:`~callstream.store.backends.nats.events.ClusterEvents`) on a
3-server loopback JetStream cluster (replicas 3). A publishes events at a steady rate
(transcript segments, as the analytics of ``calls`` concurrent calls would: about 1.5 per
second per call); a subscriber on A and one on B note when each arrives. Latency is from
``publish`` to the subscriber: on A that is the journal's group commit (fdatasync); on B
it adds A's outbox, the replicated JetStream publish, B's fetch and B's own commit.

    python bench/bench_cluster_events.py [--rates 50,200,1000] [--seconds 10]

Needs ``nats-server`` on PATH. Prints a markdown table; raw numbers go to
``bench/out/cluster_events.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_server import OUT, table
from bench_store_nats import Nats, start_cluster
from callstream.events import Event, EventBus, EventFilter
from callstream.store.backends import open_backend
from callstream.store.backends.nats.events import ClusterEvents
from callstream.store.crypto import Keyring, default_kms_key_id


def segment(i: int) -> Event:
    return Event.of(
        "TranscriptSegment",
        CallId=f"call-{i % 100}",
        SegmentId=f"seg-{i}",
        Channel="CALLER",
        StartTime=i * 0.5,
        EndTime=i * 0.5 + 0.4,
        Transcript="I have been waiting for a refund for three weeks now",
        IsPartial=False,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(store: str, root: Path, rate: int, seconds: float) -> dict[str, Any]:
    prefix = f"bench{time.time_ns() % 10**9}"
    keyring = Keyring(root / "keys.json")
    nodes = []
    for name in ("a", "b"):
        bus = EventBus(root / f"{prefix}-{name}" / "events")
        bus.bind()
        backend: Any = open_backend(store, root, keyring=keyring, nats_prefix=prefix)
        await backend.start()
        relay = ClusterEvents(backend, bus, root / f"{prefix}-{name}" / "cluster-events.json")
        await relay.start()
        nodes.append((bus, backend, relay))
    (bus_a, _, _), (bus_b, _, _) = nodes
    sent: dict[str, float] = {}
    arrived: dict[str, dict[str, float]] = {"local": {}, "other node": {}}
    total = int(rate * seconds)

    async def follow(bus: EventBus, where: str) -> None:
        async with bus.subscribe(EventFilter.where({"TranscriptSegment"})) as sub:
            while len(arrived[where]) < total:
                event = await sub.next(30)
                if event is None:
                    return
                arrived[where][str(event.get("SegmentId"))] = time.perf_counter()

    followers = [
        asyncio.create_task(follow(bus_a, "local")),
        asyncio.create_task(follow(bus_b, "other node")),
    ]
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event = segment(i)
        sent[str(event.get("SegmentId"))] = time.perf_counter()
        bus_a.publish(event)
    await asyncio.wait(followers, timeout=60)
    for bus, backend, relay in nodes:
        await relay.close()
        await backend.close()
        bus.end_subscriptions()
        await asyncio.to_thread(bus.close)
    out: dict[str, Any] = {"rate": rate, "events": total}
    for where, times in arrived.items():
        lat = [(times[k] - sent[k]) * 1000 for k in times]
        out[where] = {
            "received": len(times),
            "p50": percentile(lat, 0.5) if lat else None,
            "p99": percentile(lat, 0.99) if lat else None,
            "max": max(lat) if lat else None,
        }
    return out


def report(results: list[dict[str, Any]]) -> str:
    rows = []
    for res in results:
        for where in ("local", "other node"):
            r = res[where]
            rows.append(
                [
                    where,
                    f"{res['rate']:,}",
                    f"{r['received']:,} / {res['events']:,}",
                    f"{r['p50']:.1f}" if r["p50"] is not None else "-",
                    f"{r['p99']:.1f}" if r["p99"] is not None else "-",
                    f"{r['max']:.1f}" if r["max"] is not None else "-",
                ]
            )
    head = ["subscriber", "events/s", "received", "p50 ms", "p99 ms", "max ms"]
    return table(head, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="50,200,1000")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-events-"))
    cluster: list[Nats] = []
    results = []
    try:
        cluster = start_cluster(root)
        Keyring(root / "keys.json").master_key(default_kms_key_id("us-east-1", "123456789012"))
        store = ",".join(x.url for x in cluster)
        for rate in (int(x) for x in args.rates.split(",")):
            res = asyncio.run(measure(store, root, rate, args.seconds))
            results.append(res)
            print(f"rate {rate}/s: {json.dumps({k: res[k] for k in ('local', 'other node')})}")
    finally:
        for x in cluster:
            x.stop()
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(report(results))
    OUT.mkdir(exist_ok=True)
    (OUT / "cluster_events.json").write_text(
        json.dumps({"machine": platform.machine(), "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
