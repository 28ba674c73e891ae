"""Diagnostic launcher for ``callstream serve`` (a benchmark aid, not part of the server).

Runs the CLI unchanged, optionally instrumenting it from the outside (monkeypatching;
nothing under src/ is edited), and writes what it measured to ``$DIAG_OUT`` (JSON) at
exit. Use it through ``bench_server.py``::

    BENCH_SERVER_LAUNCHER=bench/diag_serve.py DIAG_POOL_STATS=1 DIAG_SEGMENTS=1 \\
        DIAG_OUT=/tmp/diag.json python bench/bench_server.py --n 150 --no-relay ...

Environment switches:

* ``DIAG_POOL_STATS=1``: time every ``ServerState.run`` (``asyncio.to_thread``) call by
  function: queue wait (submit -> worker starts), run time, and total (submit -> the
  awaiting coroutine resumes; total - wait - run is the hand-back through the loop/GIL);
* ``DIAG_SEGMENTS=1``: per frame, producer send time (embedded by bench_server.py) ->
  ``IngestSession.feed`` returned it (``ingest``) and -> ``_follow`` yields it to the
  GetMedia writer (``egress``);
* ``DIAG_INLINE=name,...``: run those backend calls inline on the event loop instead of
  in the thread pool (what-if experiment);
* ``DIAG_SWITCH=0.0005``: ``sys.setswitchinterval`` (GIL hand-off experiment);
* always: GC pause times per generation.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import gc
import json
import os
import re
import sys
import time
from typing import Any

import numpy as np

OUT = os.environ.get("DIAG_OUT", "/tmp/callstream-diag.json")
gc_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
pool: dict[str, dict[str, list[float]]] = collections.defaultdict(
    lambda: {"wait": [], "run": [], "total": []}
)
segments: dict[str, list[float]] = {"ingest": [], "egress": []}
_gc_t0 = [0.0]


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_t0[0] = time.perf_counter()
    else:
        gc_pauses[info["generation"]].append((time.perf_counter() - _gc_t0[0]) * 1000)


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "n": int(a.size),
    }


def _dump() -> None:
    res: dict[str, Any] = {}
    for g, v in gc_pauses.items():
        if v:
            res[f"gc_gen{g}_ms"] = {"count": len(v), "total": sum(v), **_stats(v)}
    for name, v in segments.items():
        if v:
            res[f"segment_{name}_ms"] = _stats(v[len(v) // 4 :])  # skip the ramp-up
    for name, st in pool.items():
        res[f"pool_{name}_ms"] = {k: _stats(v) for k, v in st.items() if v}
    with open(OUT, "w") as f:
        json.dump(res, f, indent=1)


def install() -> None:
    gc.callbacks.append(_gc_callback)
    if os.environ.get("DIAG_SWITCH"):
        sys.setswitchinterval(float(os.environ["DIAG_SWITCH"]))

    from callstream.api import app

    original_run = app.ServerState.run
    inline = set(filter(None, os.environ.get("DIAG_INLINE", "").split(",")))

    async def run(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(fn, "__name__", str(fn))
        if name in inline:
            return fn(*args, **kwargs)
        if not os.environ.get("DIAG_POOL_STATS"):
            return await original_run(self, fn, *args, **kwargs)
        t0 = time.perf_counter()
        box: dict[str, float] = {}

        def timed() -> Any:
            box["start"] = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                box["end"] = time.perf_counter()

        try:
            return await asyncio.to_thread(timed)
        finally:
            if "end" in box:
                st = pool[name]
                st["wait"].append((box["start"] - t0) * 1000)
                st["run"].append((box["end"] - box["start"]) * 1000)
                st["total"].append((time.perf_counter() - t0) * 1000)

    app.ServerState.run = run  # type: ignore[method-assign]

    if os.environ.get("DIAG_SEGMENTS"):
        from callstream.api import media
        from callstream.store import ingest

        # bench_server.py frames: SimpleBlock a3 41 44, track 81/82, 2-byte tc, flags, ts
        block = re.compile(rb"\xa3\x41\x44[\x81\x82]")

        def stamps(data: bytes, out: list[float]) -> None:
            now = time.time_ns()
            for m in block.finditer(data):
                ts = int.from_bytes(data[m.start() + 7 : m.start() + 15], "big")
                if 10**18 < ts < 3 * 10**18:
                    out.append((now - ts) / 1e6)

        feed = ingest.IngestSession.feed

        def traced_feed(self: Any, data: bytes) -> Any:
            events = feed(self, data)
            for ev in events:
                if type(ev) is ingest.ClusterBytes:
                    stamps(ev.data, segments["ingest"])
            return events

        ingest.IngestSession.feed = traced_feed  # type: ignore[method-assign]
        follow = media._follow

        async def traced_follow(*args: Any, **kwargs: Any) -> Any:
            async for piece in follow(*args, **kwargs):
                stamps(piece, segments["egress"])
                yield piece

        media._follow = traced_follow  # type: ignore[assignment]
    atexit.register(_dump)


if __name__ == "__main__":
    install()
    from callstream.cli import main

    sys.argv = ["callstream", *sys.argv[1:]]
    sys.exit(main())
