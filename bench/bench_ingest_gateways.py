"""Ingest gateways under live load: N Twilio Media Streams into one ``callstream serve``,
next to N PutMedia producers into the same server in the same run.

(``bench/bench_ingest.py`` is the PutMedia ingest state machine's micro-benchmark; this
one is the gateways end to end.)

The server runs in its own process (``python -m callstream.cli serve --twilio-auth-token
... --analytics off``, fresh data dir); the load generator runs here (asyncio + aiohttp,
uvloop when installed), all over 127.0.0.1.

Twilio run: N WebSocket clients to ``/ingest/twilio`` (signed), each sending what Twilio
sends for a two-track stream: ``connected``, ``start``, then every 20 ms one ``media``
message per track (``inbound`` and ``outbound``: 160 bytes of base64 µ-law, ``timestamp``
in ms), built with :class:`callstream.ingest.twilio.TwilioClient`; clients are spread
evenly over the 20 ms period. The first 24 µ-law bytes of every frame carry the send time
(ns) and the frame number, one nibble a byte, in codes whose decoded L16 values are
distinct, so the reader recovers them from the stream's PCM. Each call's stream (found
by its ``callstream:call-id`` tag) has one live GetMedia reader (NOW, started once
the stream exists); for every block sent inside the measuring window it records
frame-to-reader latency (the reader's clock at the chunk's arrival minus the send time).
Lost = frames sent in the window that no reader saw.

PutMedia run (the same N, the same server process, right after): ``bench_server.py``'s
real-time producers (Connect-shaped uploads of 20 ms frame pairs, 1 s live Clusters)
with a live GetMedia reader each.

    python bench/bench_ingest_gateways.py [--n 25,50,100] [--seconds 15] [--warmup 3]

Prints a markdown table; raw numbers go to ``bench/out/ingest_gateways.json``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import platform
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

import bench_server as bs
from bench_common import ServerProcess, free_port, rss_kb
from callstream.ingest.signatures import twilio_signature
from callstream.ingest.twilio import TwilioClient
from callstream.mkv.reader import EbmlReader
from callstream.voice.codecs import decode_pcmu

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
TWILIO_TOKEN = "bench-twilio-token"
FRAME_MS = 20
FRAME_BYTES = 160  # µ-law, 20 ms at 8 kHz
MARK = 24  # nibbles: 16 for the send time, 8 for the frame number
NIBBLE_CODES = bytes(range(0x10, 0x20))
PCM_TO_NIBBLE = {
    int.from_bytes(decode_pcmu(bytes([code]))[:2], "little", signed=True): nib
    for nib, code in enumerate(NIBBLE_CODES)
}
FILLER = bytes(np.random.default_rng(1).integers(0x30, 0x70, FRAME_BYTES - MARK, dtype=np.uint8))


def marked_pcm(now_ns: int, k: int) -> bytes:
    """A frame's L16 PCM whose µ-law encoding starts with the send time and number."""
    value = (now_ns << 32) | (k & 0xFFFFFFFF)
    nibbles = bytes(NIBBLE_CODES[(value >> (4 * (MARK - 1 - i))) & 0xF] for i in range(MARK))
    return decode_pcmu(nibbles + FILLER)


_MARK_SAMPLES = struct.Struct(f"<{MARK}h")


def read_mark(pcm: bytes) -> tuple[int, int] | None:
    """(send time ns, frame number) from a block's PCM; None for silence filled in."""
    value = 0
    lookup = PCM_TO_NIBBLE.get
    for s in _MARK_SAMPLES.unpack_from(pcm):
        nib = lookup(s)
        if nib is None:
            return None
        value = (value << 4) | nib
    return value >> 32, value & 0xFFFFFFFF


class Server(ServerProcess):
    """``callstream serve`` with the Twilio gateway, no analytics/UI/SIP."""

    kind = "callstream"

    def __init__(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.port_ = port
        self.dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        env = dict(os.environ)
        env.update(
            CALLSTREAM_ACCESS_KEY_ID=bs.ACCESS_KEY, CALLSTREAM_SECRET_ACCESS_KEY=bs.SECRET_KEY
        )
        cmd = [sys.executable, "-m", "callstream.cli", "serve", "--no-sip", "--port", str(port),
               "--data-dir", str(self.dir / "data"), "--analytics", "off", "--ui", "off",
               "--twilio-auth-token", TWILIO_TOKEN, "--ingest-max-calls", "1000"]  # fmt: skip
        super().__init__(cmd, port=port, log_path=self.dir / "server.log", env=env,
                         name="callstream server")  # fmt: skip
        time.sleep(0.3)
        self.idle_rss_kb = rss_kb(self.pid)

    def stop(self) -> None:
        super().stop()
        import shutil

        problems = [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if "ingest" in line or "Traceback" in line or "Error" in line
        ]
        if problems:
            print(f"server log: {len(problems)} warnings/errors, e.g. {problems[:3]}")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Call:
    idx: int
    call_id: str
    client: TwilioClient
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    k: int = 0
    sent: int = 0
    sent_in_window: int = 0
    seen: set[tuple[int, int]] = field(default_factory=set)
    """(track, frame number) of window frames a reader saw."""
    stopped: bool = False
    active: bool = False
    error: str | None = None
    reader_error: str | None = None

    def emit(self, now_ns: int, window: bs.Window) -> None:
        k = self.k
        self.k += 1
        pcm = marked_pcm(now_ns, k)
        for track in ("inbound", "outbound"):
            self.queue.put_nowait(self.client.media(track, pcm, k * FRAME_MS))
        self.sent += 2
        if window.start_ns <= now_ns < window.end_ns:
            self.sent_in_window += 2


async def _send(sess: aiohttp.ClientSession, url: str, call: Call, up: asyncio.Event) -> None:
    headers = {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url)}
    try:
        async with sess.ws_connect(url, headers=headers) as ws:
            await ws.send_str(call.client.connected())
            await ws.send_str(call.client.start())
            up.set()
            while (msg := await call.queue.get()) is not None:
                await ws.send_str(msg)
            await ws.send_str(call.client.stop())
            await ws.receive(timeout=10)
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as err:
        call.error = f"{type(err).__name__}: {err}"
    finally:
        up.set()


async def _find_streams(base: str, calls: dict[str, Call], found: dict[str, str]) -> None:
    """Fill ``found`` (call id -> stream name) from the streams' tags."""
    checked: set[str] = set()  # a stream's tags are set when it is created
    async with bs.new_session() as sess:
        while len(found) < len(calls):
            listed = await bs.post_json(
                sess,
                base,
                "/listStreams",
                {
                    "MaxResults": 10000,
                    "StreamNameCondition": {
                        "ComparisonOperator": "BEGINS_WITH",
                        "ComparisonValue": "callstream-ingest-twilio",
                    },
                },
            )
            for info in listed.get("StreamInfoList", []):
                name = info["StreamName"]
                if name in checked or not name.startswith("callstream-ingest-twilio"):
                    continue
                checked.add(name)
                tags = await bs.post_json(sess, base, "/listTagsForStream", {"StreamName": name})
                call_id = tags.get("Tags", {}).get("callstream:call-id")
                if call_id in calls:
                    found[call_id] = name
            await asyncio.sleep(0.2)


async def _read(
    sess: aiohttp.ClientSession,
    base: str,
    name: str,
    call: Call,
    lat: array.array[int],
    window: bs.Window,
) -> None:
    # from the live edge, as the PutMedia readers: what was written before the reader came
    # (while the other calls were being set up) is not what this measures
    body = json.dumps({"StreamName": name, "StartSelector": {"StartSelectorType": "NOW"}})
    url = base + "/getMedia"
    hdrs = bs.signed(url, body.encode(), {"Content-Type": "application/json"})
    try:
        async with sess.post(url, data=body.encode(), headers=hdrs) as resp:
            if resp.status != 200:
                call.reader_error = f"GetMedia {resp.status}"
                return
            reader = EbmlReader(batch_blocks=True)

            def frame(track: int, data: bytes, now: int) -> None:
                mark = read_mark(data)
                if mark is None:
                    return
                sent_ns, k = mark
                if window.start_ns <= sent_ns < window.end_ns:
                    lat.append(now - sent_ns)
                    call.seen.add((track, k))

            await bs.feed_frames(resp, reader, frame)
    except (aiohttp.ClientError, ConnectionError, ValueError) as err:
        call.reader_error = f"{type(err).__name__}: {err}"


async def twilio_run(srv: Server, n: int, seconds: float, warmup: float) -> bs.RunResult:
    res = bs.RunResult("twilio gateway", n, "live", seconds)
    res.idle_rss_kb = rss_kb(srv.pid)
    url = f"ws://127.0.0.1:{srv.port_}/ingest/twilio"
    window = bs.Window()
    lat: array.array[int] = array.array("q")
    calls = {f"CA{n:04d}{i:028d}": None for i in range(n)}
    objs = [Call(i, cid, TwilioClient(cid)) for i, cid in enumerate(calls)]
    by_id = {c.call_id: c for c in objs}
    ticker = bs.Ticker(window)
    tick = asyncio.create_task(ticker.run())
    sess = bs.new_session()
    tasks: list[asyncio.Task[Any]] = []
    t_setup = time.monotonic()
    try:
        for call in objs:
            up = asyncio.Event()
            tasks.append(asyncio.create_task(_send(sess, url, call, up)))
            await up.wait()
            ticker.add(call)  # type: ignore[arg-type]
        names: dict[str, str] = {}
        try:
            await asyncio.wait_for(_find_streams(srv.url, by_id, names), 120)
        except TimeoutError:
            missing = [c for c in objs if c.call_id not in names]
            res.errors.append(
                f"{len(missing)} calls without a stream: {missing[0].error or 'no error'}"
            )
        for cid, name in names.items():
            tasks.append(asyncio.create_task(_read(sess, srv.url, name, by_id[cid], lat, window)))
        res.setup_s = time.monotonic() - t_setup
        await asyncio.sleep(warmup)
        (u0, s0), g0, m0, t0 = (
            bs.cpu_times(srv.pid),
            bs.self_cpu_s(),
            bs.machine_busy_s(),
            time.monotonic(),
        )
        window.start_ns = time.time_ns()
        window.end_ns = window.start_ns + int(seconds * 1e9)
        peak = 0
        while time.time_ns() < window.end_ns:
            await asyncio.sleep(min(1.0, max(0.0, (window.end_ns - time.time_ns()) / 1e9)))
            peak = max(peak, rss_kb(srv.pid))
        (u1, s1), g1, m1, t1 = (
            bs.cpu_times(srv.pid),
            bs.self_cpu_s(),
            bs.machine_busy_s(),
            time.monotonic(),
        )
        res.server_cpu_pct = 100 * ((u1 + s1) - (u0 + s0)) / (t1 - t0)
        res.server_sys_pct = 100 * (s1 - s0) / (t1 - t0)
        res.gen_cpu_pct = 100 * (g1 - g0) / (t1 - t0)
        res.other_cpu_pct = 100 * ((m1 - m0) - ((u1 + s1) - (u0 + s0)) - (g1 - g0)) / (t1 - t0)
        res.active_rss_kb = peak
        res.rss_per_stream_kb = (peak - res.idle_rss_kb) / n
        deadline = time.monotonic() + 3  # frames of the window still on their way
        while time.monotonic() < deadline:
            if all(len(c.seen) >= c.sent_in_window for c in objs):
                break
            await asyncio.sleep(0.1)
        ticker.running = False
        for call in objs:
            call.queue.put_nowait(None)
        await asyncio.wait([t for t in tasks[:n]], timeout=15)
    finally:
        await bs.stop_load(ticker, tick, tasks, sess)
    res.frames_sent = sum(c.sent_in_window for c in objs)
    res.frames_received = sum(len(c.seen) for c in objs)
    res.latency = bs.summary_ms(lat)
    res.send_lag = bs.summary_ms(ticker.lag)
    errs = [c.error for c in objs if c.error] + [c.reader_error for c in objs if c.reader_error]
    res.errors += errs[:5]
    return res


def table(results: list[bs.RunResult]) -> str:
    rows = []
    for r in results:
        lat = r.latency
        rows.append(
            [
                r.target,
                str(r.n),
                bs.fmt(lat.get("p50")),
                bs.fmt(lat.get("p99")),
                bs.fmt(lat.get("max")),
                f"{r.lost:,} / {r.frames_sent:,}",
                f"{r.server_cpu_pct:.0f}",
                f"{10 * r.server_cpu_pct / r.n:.2f}",
                f"{r.active_rss_kb / 1024:.0f}",
                f"{r.gen_cpu_pct:.0f}",
                f"{r.other_cpu_pct:.0f}",
                bs.fmt(r.send_lag.get("p99")),
                "yes" if r.ok else f"**no** {(r.errors or [''])[0][:50]}",
            ]
        )
    return bs.table(
        ["path", "N", "p50 ms", "p99 ms", "max ms", "frames lost / sent", "server CPU %",
         "CPU ms / stream-s", "RSS MB", "loadgen CPU %", "other CPU %", "send lag p99",
         "p99<200, no loss"],
        rows,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="25,50,100", help="concurrent calls per run")
    ap.add_argument("--seconds", type=float, default=15.0, help="measuring window per run")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument(
        "--quiet", type=float, default=60.0, help="wait up to S s for an idle machine per run"
    )
    args = ap.parse_args()
    ns = [int(x) for x in args.n.split(",")]
    results: list[bs.RunResult] = []
    with Server() as srv:
        for n in ns:
            bs.wait_for_quiet(args.quiet)
            results.append(bs.run_async(twilio_run(srv, n, args.seconds, args.warmup)))
            print(table(results[-1:]), flush=True)
            bs.wait_for_quiet(args.quiet)
            put = bs.run_async(bs.realtime_run(srv, n, args.seconds, args.warmup))  # type: ignore[arg-type]
            put.target = "PutMedia"
            results.append(put)
            print(table(results[-1:]), flush=True)
    print()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load generator on {bs.LOOP_NAME}")  # fmt: skip
    print(table(results))
    OUT.mkdir(exist_ok=True)
    (OUT / "ingest_gateways.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=1, default=str)
    )


if __name__ == "__main__":
    main()
