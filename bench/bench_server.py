"""Media store benchmark: ``callstream serve`` under live Connect-shaped call load.

The server runs in its own process (``python -m callstream.cli serve``, fresh data dir
per run); the load generator runs here (asyncio + aiohttp, SigV4-signed with botocore,
service ``kinesisvideo``; PutMedia signed over an empty body as the KVS producer SDK
does). All traffic goes to 127.0.0.1 and every phase is bounded in count and time.

(a) N real-time producers, each a Connect-shaped PutMedia upload: 2 tracks
    (AUDIO_FROM_CUSTOMER / AUDIO_TO_CUSTOMER, 8 kHz 16-bit, 20 ms = 320-byte frames),
    1 s unknown-size Clusters with absolute epoch-ms Timecodes, one frame pair written to
    the chunked body every 20 ms (producers spread evenly over the 20 ms period). Each
    stream has one live GetMedia reader (StartSelector NOW, started first) that parses
    the response with ``EbmlReader`` and measures, for every Block, producer-to-reader
    latency from the ``time.time_ns()`` the producer put in the frame's first 8 bytes.
(b) PutMedia ack latency: BUFFERING (Cluster start sent -> ack), PERSISTED (first byte
    of the next Cluster sent -> ack) from the (a) runs; and known-size Clusters written
    whole once a second (RECEIVED / PERSISTED from the Cluster's last byte).
(c) GetMedia catch-up from EARLIEST: ~50 MB uploaded as fast as possible into one
    stream, read back with boto3 ``get_media`` (``Payload.iter_chunks(65536)``) and with
    raw aiohttp.
(d) Server RSS idle vs. with N active producer+reader pairs (each (a) run, plus one
    run long enough to reach the steady state: the live hub keeps recent fragments).

The load generator runs on uvloop when it is installed (``pip install uvloop``; it is in
the ``dev`` extra): one Python process plays every producer and reader, and on the
default loop it saturates its core near N = 500, which inflates the latencies it measures
for every server. Both servers run on the default asyncio loop.

Baselines in the same run: ``bench/relay_server.py`` (aiohttp relay: body chunks copied
to waiting readers, no parsing, storage or auth) under the same load generator for (a),
(c); an in-process write+fsync of one fragment for PERSISTED.

    python bench/bench_server.py [--quick] [--n 25,50,100] [--seconds 15] [--no-profile]

Prints markdown tables; raw numbers go to ``bench/out/server.json`` (py-spy output next to
it). The profile run samples the server with py-spy (``pip install py-spy``) at the first N
that fails. ``BENCH_SERVER_LAUNCHER=bench/diag_serve.py`` runs the server under the
diagnostic wrapper (thread-pool and per-stage timings; see that file).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench_common import ServerProcess, free_port, rss_kb
from callstream.kvs.acks import AckParser
from callstream.mkv import ID, writer
from callstream.mkv.reader import Block, BlockRun, EbmlReader
from make_payloads import connect_tags, producer_header

try:
    import uvloop

    LOOP_FACTORY: Any = uvloop.new_event_loop
    LOOP_NAME = f"uvloop {uvloop.__version__}"
except ImportError:  # pragma: no cover - optional
    LOOP_FACTORY = None
    LOOP_NAME = "asyncio"


def run_async(coro: Any) -> Any:
    """Run a load-generator coroutine on the fastest loop available."""
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        return runner.run(coro)


HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ACCESS_KEY = "AKIDBENCHSERVER0001"
SECRET_KEY = "bench-secret-key-not-a-real-one-000000000"
REGION = "us-east-1"
CREDS = Credentials(ACCESS_KEY, SECRET_KEY)

FRAME_MS = 20
FRAMES_PER_CLUSTER = 50  # 1 s fragments
FRAME_BYTES = 320  # 20 ms of 8 kHz 16-bit mono
HEAD_FRAMES = 5  # "fragment boundary" frames: the first 100 ms of each fragment
SLOTS = 10  # producers are spread over SLOTS phases of the 20 ms period
P99_LIMIT_MS = 200.0


# --- MKV pieces (Connect shape) ---------------------------------------------------------------


HEADER = writer.ebml_header(doc_type_version=2) + writer.segment_start() + producer_header()
TAGS = connect_tags(events=False)
# SimpleBlock element headers for block k of a Cluster, per track (ID, size, track, tc, flags)
BLOCK_HEAD = {
    track: [
        writer.simple_block(track, k * FRAME_MS, bytes(FRAME_BYTES))[:-FRAME_BYTES]
        for k in range(FRAMES_PER_CLUSTER)
    ]
    for track in (1, 2)
}
PCM = os.urandom(FRAME_BYTES - 12)


def cluster_head(timecode_ms: int, *, size: int | None = None) -> bytes:
    """Cluster start: unknown size (or known ``size`` of the body), 8-byte Timecode,
    Position 0 -- the live form the KVS producer SDK writes."""
    body = writer.uint(ID.Timecode, timecode_ms, 8) + writer.uint(ID.Position, 0)
    if size is None:
        return writer.cluster(timecode_ms, [], unknown_size=True, position=0, timecode_width=8)
    return b"\x1f\x43\xb6\x75" + (0x01 << 56 | (len(body) + size)).to_bytes(8, "big") + body


def frame_pair(k: int, now_ns: int) -> bytes:
    """Both tracks' 20 ms frames number ``k``: send time (8 bytes), frame number, PCM."""
    stamp = now_ns.to_bytes(8, "big") + (k & 0xFFFFFFFF).to_bytes(4, "big") + PCM
    i = k % FRAMES_PER_CLUSTER
    return BLOCK_HEAD[1][i] + stamp + BLOCK_HEAD[2][i] + stamp


def whole_cluster(timecode_ms: int, k0: int, now_ns: int) -> bytes:
    """A known-size 1 s Cluster (frames ``k0`` ...)."""
    body = b"".join(frame_pair(k0 + i, now_ns) for i in range(FRAMES_PER_CLUSTER))
    return cluster_head(timecode_ms, size=len(body)) + body


# --- HTTP helpers -----------------------------------------------------------------------------


def signed(url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """SigV4 headers for a POST of ``body`` (PutMedia: ``b""``, as the producer SDK signs)."""
    req = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(CREDS, "kinesisvideo", REGION).add_auth(req)
    return dict(req.headers.items())


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30),
        auto_decompress=False,
    )


async def post_json(sess: aiohttp.ClientSession, base: str, path: str, payload: dict) -> Any:
    body = json.dumps(payload).encode()
    url = base + path
    hdrs = signed(url, body, {"Content-Type": "application/json"})
    async with sess.post(url, data=body, headers=hdrs) as resp:
        text = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path} -> {resp.status}: {text[:200]!r}")
        return json.loads(text or b"{}")


async def create_streams(base: str, names: list[str], retention_h: int = 1) -> None:
    sem = asyncio.Semaphore(32)
    async with new_session() as sess:

        async def one(name: str) -> None:
            async with sem:
                await post_json(
                    sess,
                    base,
                    "/createStream",
                    {"StreamName": name, "DataRetentionInHours": retention_h},
                )

        await asyncio.gather(*(one(n) for n in names))


def putmedia_headers(url: str, name: str, start_ms: int) -> dict[str, str]:
    return signed(
        url,
        b"",
        {
            "x-amzn-stream-name": name,
            "x-amzn-fragment-timecode-type": "ABSOLUTE",
            "x-amzn-producer-start-timestamp": f"{start_ms / 1000:.3f}",
            "x-amzn-fragment-acknowledgment-required": "1",
        },
    )


# --- processes --------------------------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def cpu_s(pid: int) -> float:
    return sum(cpu_times(pid))


def machine_busy_s() -> float:
    """CPU seconds all processes on the machine used (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, limit_pct: float = 30.0) -> float:
    """Wait (at most ``max_wait`` s) until the machine is nearly idle: other work on this
    shared box skews latency. Returns the busy % of the last 1 s sample."""
    deadline = time.monotonic() + max_wait
    while True:
        m0 = machine_busy_s()
        time.sleep(1.0)
        busy = 100 * (machine_busy_s() - m0)
        if busy < limit_pct or time.monotonic() >= deadline:
            return busy
        time.sleep(1.0)


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Server(ServerProcess):
    """A server process: ``callstream`` (the real thing) or ``relay`` (the baseline)."""

    def __init__(self, kind: str, *, blob_mb: float = 0.0) -> None:
        self.kind = kind
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
        env = dict(os.environ)
        if kind == "callstream":
            env.update(CALLSTREAM_ACCESS_KEY_ID=ACCESS_KEY, CALLSTREAM_SECRET_ACCESS_KEY=SECRET_KEY)
            # BENCH_SERVER_LAUNCHER: a script taking the CLI's arguments (diagnostic wrappers)
            launcher = os.environ.get("BENCH_SERVER_LAUNCHER")
            cmd = (
                [sys.executable, launcher] if launcher else [sys.executable, "-m", "callstream.cli"]
            )
            cmd += ["serve", "--no-sip", "--port", str(port)]
            cmd += ["--data-dir", str(self.dir / "data")]
        else:
            cmd = [sys.executable, str(HERE / "relay_server.py"), "--port", str(port)]
            cmd += ["--blob-mb", str(blob_mb)]
        super().__init__(
            cmd, port=port, log_path=self.dir / "server.log", env=env, name=f"{kind} server"
        )
        time.sleep(0.3)
        self.idle_rss_kb = rss_kb(self.pid)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- statistics -------------------------------------------------------------------------------


def pct(values: Any, q: float) -> float | None:
    if len(values) == 0:
        return None
    return float(np.percentile(np.frombuffer(values, dtype=np.int64) / 1e6, q))


def summary_ms(values: array.array) -> dict[str, float | None]:
    if len(values) == 0:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    a = np.frombuffer(values, dtype=np.int64) / 1e6
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "n": int(a.size),
    }


def fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


# --- (a) real-time load -----------------------------------------------------------------------


@dataclass
class Window:
    start_ns: int = 1 << 62  # frames sent inside [start, end) are measured
    end_ns: int = 1 << 62


@dataclass
class Stream:
    idx: int
    name: str
    known_size: bool = False
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    k: int = 0  # next frame number
    tc0_ms: int = 0
    sent: int = 0  # frames (blocks) sent
    received: int = 0  # blocks received by the reader
    gaps: int = 0
    next_seq: dict[int, int] = field(default_factory=dict)
    active: bool = False
    stopped: bool = False
    cluster_sent: dict[int, int] = field(default_factory=dict)  # timecode -> start sent ns
    cluster_done: dict[int, int] = field(default_factory=dict)  # timecode -> complete ns
    reader_ok: bool = False
    reader_error: str | None = None
    producer_error: str | None = None
    acks: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def body(self) -> Any:
        q = self.queue
        while (chunk := await q.get()) is not None:
            yield chunk

    def emit(self, now_ns: int, window: Window) -> None:
        """Write the next frame pair (and a Cluster start every second)."""
        k = self.k
        self.k = k + 1
        i = k % FRAMES_PER_CLUSTER
        if self.known_size:
            if i != FRAMES_PER_CLUSTER - 1:
                return
            k0 = k - i
            tc = self.tc0_ms + k0 * FRAME_MS
            lead = HEADER if k0 == 0 else TAGS
            self.queue.put_nowait(lead + whole_cluster(tc, k0, now_ns))
            self.sent += 2 * FRAMES_PER_CLUSTER
            if window.start_ns <= now_ns < window.end_ns:
                self.cluster_sent[tc] = now_ns
                self.cluster_done[tc] = now_ns
            return
        chunk = frame_pair(k, now_ns)
        if i == 0:
            tc = self.tc0_ms + k * FRAME_MS
            lead = HEADER if k == 0 else TAGS
            chunk = lead + cluster_head(tc) + chunk
            if k:
                prev = tc - FRAMES_PER_CLUSTER * FRAME_MS
                if prev in self.cluster_sent:
                    self.cluster_done[prev] = now_ns
            if window.start_ns <= now_ns < window.end_ns:
                self.cluster_sent[tc] = now_ns
        self.queue.put_nowait(chunk)
        self.sent += 2


@dataclass
class RunResult:
    target: str
    n: int
    mode: str
    seconds: float
    frames_sent: int = 0
    frames_received: int = 0
    gaps: int = 0
    latency: dict = field(default_factory=dict)
    latency_head: dict = field(default_factory=dict)  # first 100 ms of each fragment
    send_lag: dict = field(default_factory=dict)
    acks: dict = field(default_factory=dict)
    ack_counts: dict = field(default_factory=dict)
    server_cpu_pct: float = 0.0
    server_sys_pct: float = 0.0
    busy_before_pct: float = 0.0  # machine busy % just before the run
    gen_cpu_pct: float = 0.0
    other_cpu_pct: float = 0.0  # everything else on the machine (noise)
    idle_rss_kb: int = 0
    active_rss_kb: int = 0
    rss_per_stream_kb: float = 0.0
    setup_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.frames_sent - self.frames_received

    @property
    def ok(self) -> bool:
        p99 = self.latency.get("p99")
        return p99 is not None and p99 < P99_LIMIT_MS and self.lost == 0 and not self.errors


async def feed_frames(
    resp: aiohttp.ClientResponse, reader: EbmlReader, frame: Callable[[int, bytes, int], None]
) -> None:
    """Parse a GetMedia response as it arrives: ``frame(track, payload, arrival ns)`` per
    block (``reader`` batches runs of blocks, so the generator's own CPU stays low)."""
    async for chunk in resp.content.iter_any():
        now = time.time_ns()
        reader.feed(chunk)
        for ev in reader.events():
            if type(ev) is BlockRun:
                flat = ev.flat
                for i in range(0, len(flat), 5):
                    frame(flat[i + 1], flat[i + 4], now)  # type: ignore[arg-type]
            elif type(ev) is Block:
                frame(ev.track, ev.frames[0], now)


async def stop_load(
    ticker: Ticker,
    tick: asyncio.Task[Any],
    tasks: list[asyncio.Task[Any]],
    sess: aiohttp.ClientSession,
) -> None:
    """End a load run: stop the ticker, cancel the producers and readers, close the session."""
    ticker.running = False
    tick.cancel()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, tick, return_exceptions=True)
    await sess.close()


async def _reader(
    sess: aiohttp.ClientSession,
    base: str,
    st: Stream,
    lat: array.array,
    head: array.array,
    window: Window,
    ready: asyncio.Event,
) -> None:
    body = json.dumps({"StreamName": st.name, "StartSelector": {"StartSelectorType": "NOW"}})
    url = base + "/getMedia"
    hdrs = signed(url, body.encode(), {"Content-Type": "application/json"})
    try:
        async with sess.post(url, data=body.encode(), headers=hdrs) as resp:
            if resp.status != 200:
                st.reader_error = f"GetMedia {resp.status}: {(await resp.read())[:200]!r}"
                return
            st.reader_ok = True
            ready.set()
            # Runs of blocks as one event each: the generator plays N readers in one
            # process, and its own CPU inflates every latency it measures.
            reader = EbmlReader(batch_blocks=True)
            next_seq = st.next_seq
            w0 = window
            append = lat.append
            head_append = head.append

            def frame(track: int, f: bytes, now: int) -> None:
                ts = int.from_bytes(f[:8], "big")
                st.received += 1
                seq = int.from_bytes(f[8:12], "big")
                if next_seq.get(track, seq) != seq:
                    st.gaps += 1
                next_seq[track] = seq + 1
                if w0.start_ns <= ts < w0.end_ns:
                    append(now - ts)
                    if seq % FRAMES_PER_CLUSTER < HEAD_FRAMES:
                        head_append(now - ts)

            await feed_frames(resp, reader, frame)
    except (aiohttp.ClientError, ConnectionError, ValueError) as err:
        st.reader_error = f"GetMedia: {type(err).__name__}: {err}"
    finally:
        ready.set()


async def _producer(
    sess: aiohttp.ClientSession, base: str, st: Stream, acks: dict, started: asyncio.Event
) -> None:
    url = base + "/putMedia"
    hdrs = putmedia_headers(url, st.name, st.tc0_ms)
    try:
        async with sess.post(url, data=st.body(), headers=hdrs) as resp:
            started.set()
            if resp.status != 200:
                st.producer_error = f"PutMedia {resp.status}: {(await resp.read())[:200]!r}"
                return
            parser = AckParser()
            async for chunk in resp.content.iter_any():
                now = time.time_ns()
                for ack in parser.feed(chunk):
                    kind = str(ack.event_type)
                    st.acks[kind] += 1
                    tc = ack.fragment_timecode
                    if kind == "BUFFERING" and tc in st.cluster_sent:
                        acks["BUFFERING"].append(now - st.cluster_sent[tc])
                    elif kind in ("RECEIVED", "PERSISTED") and tc in st.cluster_done:
                        acks[kind].append(now - st.cluster_done[tc])
                    elif kind == "ERROR":
                        st.producer_error = f"ERROR ack {ack}"
    except (aiohttp.ClientError, ConnectionError, ValueError) as err:
        st.producer_error = f"PutMedia: {type(err).__name__}: {err}"
    finally:
        started.set()


class Ticker:
    """Writes every active stream's frame pair when it is 'spoken': stream i speaks at
    phase (i % SLOTS) * 2 ms of every 20 ms period."""

    def __init__(self, window: Window) -> None:
        self.slots: list[list[Stream]] = [[] for _ in range(SLOTS)]
        self.window = window
        self.lag = array.array("q")
        self.running = True

    def add(self, st: Stream) -> None:
        st.active = True
        self.slots[st.idx % SLOTS].append(st)

    async def run(self) -> None:
        step = FRAME_MS * 1_000_000 // SLOTS
        base = time.monotonic_ns()
        g = 0
        window = self.window
        while self.running:
            now = time.monotonic_ns()
            while base + g * step <= now and self.running:
                due = base + g * step
                wall = time.time_ns()
                if window.start_ns <= wall < window.end_ns:
                    self.lag.append(time.monotonic_ns() - due)
                for st in self.slots[g % SLOTS]:
                    if not st.stopped:
                        st.emit(wall, window)
                g += 1
            await asyncio.sleep(max(0.0, (base + g * step - time.monotonic_ns()) / 1e9))


async def realtime_run(
    srv: Server,
    n: int,
    seconds: float,
    warmup: float,
    *,
    known_size: bool = False,
    readers: bool = True,
    started: asyncio.Event | None = None,
) -> RunResult:
    res = RunResult(srv.kind, n, "known-size" if known_size else "live", seconds)
    res.idle_rss_kb = srv.idle_rss_kb
    names = [f"bench-{'k' if known_size else 'u'}{n}-{i}" for i in range(n)]
    t_setup = time.monotonic()
    await create_streams(srv.url, names)
    window = Window()
    lat = array.array("q")
    head = array.array("q")  # frames in the first HEAD_FRAMES of their fragment
    acks: dict[str, array.array] = {
        k: array.array("q") for k in ("BUFFERING", "RECEIVED", "PERSISTED")
    }
    streams = [Stream(i, name, known_size=known_size) for i, name in enumerate(names)]
    ticker = Ticker(window)
    tick_task = asyncio.create_task(ticker.run())
    sess = new_session()
    tasks: list[asyncio.Task] = []
    sem = asyncio.Semaphore(25)

    async def start(st: Stream) -> None:
        async with sem:
            if readers:
                ready = asyncio.Event()
                tasks.append(
                    asyncio.create_task(_reader(sess, srv.url, st, lat, head, window, ready))
                )
                await ready.wait()
            st.tc0_ms = int(time.time() * 1000)
            started = asyncio.Event()
            tasks.append(asyncio.create_task(_producer(sess, srv.url, st, acks, started)))
            ticker.add(st)
            await started.wait()

    try:
        await asyncio.gather(*(start(st) for st in streams))
        res.setup_s = time.monotonic() - t_setup
        await asyncio.sleep(warmup)
        (u0, s0), g0, m0, t0 = cpu_times(srv.pid), self_cpu_s(), machine_busy_s(), time.monotonic()
        c0 = u0 + s0
        window.start_ns = time.time_ns()
        window.end_ns = window.start_ns + int(seconds * 1e9)
        if started is not None:
            started.set()
        peak = 0
        while time.time_ns() < window.end_ns:
            await asyncio.sleep(min(1.0, max(0.0, (window.end_ns - time.time_ns()) / 1e9)))
            peak = max(peak, rss_kb(srv.pid))
        (u1, s1), g1, m1, t1 = cpu_times(srv.pid), self_cpu_s(), machine_busy_s(), time.monotonic()
        c1 = u1 + s1
        res.server_sys_pct = 100 * (s1 - s0) / (t1 - t0)
        res.server_cpu_pct = 100 * (c1 - c0) / (t1 - t0)
        res.gen_cpu_pct = 100 * (g1 - g0) / (t1 - t0)
        res.other_cpu_pct = 100 * ((m1 - m0) - (c1 - c0) - (g1 - g0)) / (t1 - t0)
        res.active_rss_kb = peak
        res.rss_per_stream_kb = (peak - srv.idle_rss_kb) / n
        # stop speaking; let readers drain
        for st in streams:
            st.stopped = True
            st.queue.put_nowait(None)
        ticker.running = False
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            if (not readers or all(s.received >= s.sent for s in streams)) and (
                srv.kind != "callstream"
                or all(s.acks["PERSISTED"] >= s.sent // (2 * FRAMES_PER_CLUSTER) for s in streams)
            ):
                break
            await asyncio.sleep(0.1)
    finally:
        await stop_load(ticker, tick_task, tasks, sess)
    res.frames_sent = sum(s.sent for s in streams)
    res.frames_received = sum(s.received for s in streams) if readers else res.frames_sent
    res.gaps = sum(s.gaps for s in streams)
    res.latency = summary_ms(lat)
    res.latency_head = summary_ms(head)
    res.send_lag = summary_ms(ticker.lag)
    res.acks = {k: summary_ms(v) for k, v in acks.items()}
    counts: dict[str, int] = defaultdict(int)
    for s in streams:
        for k, v in s.acks.items():
            counts[k] += v
    res.ack_counts = dict(counts)
    errs = [s.reader_error for s in streams if s.reader_error]
    errs += [s.producer_error for s in streams if s.producer_error]
    res.errors = errs[:5] + ([f"... {len(errs) - 5} more"] if len(errs) > 5 else [])
    return res


def run_realtime(kind: str, n: int, seconds: float, warmup: float, **kw: Any) -> RunResult:
    with Server(kind) as srv:
        return run_async(realtime_run(srv, n, seconds, warmup, **kw))


# --- (d) memory ------------------------------------------------------------------------------


def memory_run(n: int, seconds: float, warmup: float) -> dict[str, Any]:
    """The (a) load at ``n`` for long enough to reach the server's steady-state RSS, with
    VmRSS sampled every 3 s."""
    with Server("callstream") as srv:

        async def go() -> tuple[RunResult, list[tuple[float, int]]]:
            curve: list[tuple[float, int]] = []
            t0 = time.monotonic()

            async def sampler() -> None:
                while True:
                    await asyncio.sleep(3)
                    curve.append((round(time.monotonic() - t0, 1), rss_kb(srv.pid)))

            task = asyncio.create_task(sampler())
            try:
                return await realtime_run(srv, n, seconds, warmup), curve
            finally:
                task.cancel()

        res, curve = run_async(go())
        idle = srv.idle_rss_kb
    peak = max((kb for _, kb in curve), default=0)
    return {
        "n": n,
        "seconds": seconds,
        "idle_rss_kb": idle,
        "peak_rss_kb": peak,
        "per_stream_kb": (peak - idle) / n,
        "curve": [(t, kb, (kb - idle) / n) for t, kb in curve],
        "latency": res.latency,
        "lost": res.lost,
    }


# --- profile ----------------------------------------------------------------------------------


PROFILE_HZ = 250
PROFILE_KEYS = [
    ("UploadRunner._read_loop (callstream/store/uploads.py)", "upload loop (PutMedia), all of it"),
    ("UploadLifecycle.data (callstream/store/upload.py)", "- UploadLifecycle.data"),
    (
        "IngestSession.feed (callstream/store/ingest.py)",
        "  - IngestSession.feed (EBML parse, checks)",
    ),
    ("UploadRunner.handle (callstream/store/uploads.py)", "- UploadRunner.handle (events)"),
    ("StreamReader.readany (aiohttp/streams.py)", "- StreamReader.readany"),
    ("get_media (callstream/api/media.py)", "GetMedia adapter, all of it"),
    ("_follow (callstream/store/reading.py)", "- store reading: follow"),
    ("_follow_live (callstream/store/reading.py)", "  - a live fragment's tail"),
    ("StreamResponse.write (aiohttp/web_response.py)", "aiohttp StreamResponse.write (all)"),
    ("_SelectorSocketTransport.write (asyncio/selector_events.py)", "- socket send()"),
    ("UploadRunner._write_acks (callstream/store/uploads.py)", "ack writer task"),
    ("UploadRunner._persist_fragments (callstream/store/uploads.py)", "persist task"),
    (
        "RequestHandler.data_received (aiohttp/web_protocol.py)",
        "aiohttp data_received (HTTP parse)",
    ),
    ("_Guarded.data_received (callstream/api/connections.py)", "connection guard forwarding"),
    ("BaseEventLoop.create_task (asyncio/base_events.py)", "create_task (anywhere)"),
    ("BaseEventLoop.call_later (asyncio/base_events.py)", "call_later timers (anywhere)"),
    ("EpollSelector.select (selectors.py)", "epoll_wait"),
    ("_worker (concurrent/futures/thread.py)", "worker threads (pool)"),
    ("sync_fd (callstream/store/backends/embedded/files.py)", "- fsync of fragment files"),
    (
        "Index.commit_rows (callstream/store/backends/embedded/index.py)",
        "- SQLite index group commit",
    ),
]


BUCKETS = [  # leaf-to-root, the first frame that matches decides
    ("IngestSession.feed (", "upload: IngestSession.feed (EBML parse + checks)"),
    ("UploadLifecycle.", "upload: lifecycle"),
    ("UploadRunner.handle (", "upload: UploadRunner.handle"),
    ("_read_loop (", "upload: read loop, rest"),
    ("StreamResponse.write (", "aiohttp StreamResponse.write (GetMedia chunks, acks)"),
    ("_follow_live (", "GetMedia: a live fragment's tail, rest"),
    ("_follow (", "GetMedia: store reading, rest"),
    ("get_media (", "GetMedia: adapter, rest"),
    ("_write_acks (", "acks: serialize + send"),
    ("_persist_fragments (", "persist task"),
    ("_chain_future.", "thread hand-off completion callbacks"),
    ("_call_set_state", "thread hand-off completion callbacks"),
    ("_Guarded.data_received (", "socket read + aiohttp HTTP parsing"),
    ("data_received (", "socket read + aiohttp HTTP parsing"),
    ("_read_ready", "socket read + aiohttp HTTP parsing"),
    ("EpollSelector.select (", "epoll_wait"),
    ("Handle._run (", "asyncio: task steps / callbacks outside any handler frame"),
]
OTHER_BUCKET = "asyncio: _run_once bookkeeping (ready queue, timer heap), other"


def profile_run(n: int, seconds: float, warmup: float) -> dict[str, Any]:
    """The (a) load at ``n`` with py-spy on the server: first half of the measured window
    ``--gil`` (where the event loop's Python CPU goes), second half wall-clock, all
    non-idle threads (adds time inside syscalls and the worker threads)."""
    files = {m: OUT / f"pyspy-server-n{n}-{m}.txt" for m in ("gil", "wall")}
    half = max(2, int(seconds / 2) - 1)
    with Server("callstream") as srv:

        async def spy(mode: str) -> str:
            cmd = [
                "py-spy",
                "record",
                "-o",
                str(files[mode]),
                "-f",
                "raw",
                "-p",
                str(srv.pid),
                "-d",
                str(half),
                "-r",
                str(PROFILE_HZ),
                "--threads",
            ]
            if mode == "gil":
                cmd.append("--gil")
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
            _, err = await proc.communicate()
            return f"py-spy {mode}: {err.decode()[-300:]}" if proc.returncode else ""

        async def go() -> RunResult:
            window = asyncio.Event()
            task = asyncio.create_task(realtime_run(srv, n, seconds, warmup, started=window))
            await window.wait()
            errs = [await spy("gil"), await spy("wall")]
            res = await task
            res.errors += [e for e in errs if e]
            return res

        res = run_async(go())
    prof: dict[str, Any] = {"n": n, "result": res.__dict__, "seconds_each": half}
    for mode, path in files.items():
        if path.exists():
            prof[mode] = fold_profile(path, main_only=mode == "gil")
            prof[mode]["file"] = str(path.relative_to(HERE.parent))
    return prof


def _fn(frame: str) -> str:
    """``func (pkg/file.py:123)`` -> ``func (pkg/file.py)``."""
    return frame.rsplit(":", 1)[0] + ")" if frame.endswith(")") else frame


def fold_profile(path: Path, *, main_only: bool) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's raw (folded) output."""
    self_c: dict[str, int] = defaultdict(int)
    incl: dict[str, int] = defaultdict(int)
    thread_c: dict[str, int] = defaultdict(int)
    buckets: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        frames = stack.split(";")
        main = "MainThread" in frames[0]
        thread_c["event loop thread" if main else "worker threads"] += c
        if main_only and not main:
            continue
        frames = [_fn(f) for f in frames[1:] if f]
        total += c
        bucket = OTHER_BUCKET
        for f in reversed(frames):
            hit = next((label for key, label in BUCKETS if key in f), None)
            if hit is not None:
                bucket = hit
                break
        buckets[bucket] += c
        if frames:
            self_c[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    share = 100 / max(total, 1)
    top_self = sorted(self_c.items(), key=lambda kv: -kv[1])[:15]
    return {
        "samples": total,
        "threads": dict(thread_c),
        "top_self": [(f, c, c * share) for f, c in top_self],
        "breakdown": [(label, f, incl.get(f, 0) * share) for f, label in PROFILE_KEYS],
        "buckets": sorted(((k, v * share) for k, v in buckets.items()), key=lambda kv: -kv[1]),
    }


# --- (c) catch-up -----------------------------------------------------------------------------


def catchup_fragments(target_bytes: int) -> tuple[bytes, list[bytes]]:
    """A PutMedia body of ~``target_bytes``: header + Connect-shaped 1 s Clusters."""
    n = target_bytes // (2 * FRAMES_PER_CLUSTER * (FRAME_BYTES + 7) + 300) + 1
    start_ms = int(time.time() * 1000) - (n + 60) * 1000
    frags = []
    for c in range(n):
        tc = start_ms + c * 1000
        body = b"".join(
            frame_pair(c * FRAMES_PER_CLUSTER + i, 0) for i in range(FRAMES_PER_CLUSTER)
        )
        frags.append((TAGS if c else b"") + cluster_head(tc) + body)
    return HEADER, frags


async def upload(
    base: str, name: str, header: bytes, frags: list[bytes], *, want_acks: bool
) -> dict[str, Any]:
    async with new_session() as sess:
        if want_acks:
            await post_json(
                sess, base, "/createStream", {"StreamName": name, "DataRetentionInHours": 24}
            )

        async def body() -> Any:
            yield header
            for f in frags:
                yield f

        url = base + "/putMedia"
        t0 = time.monotonic()
        counts: dict[str, int] = defaultdict(int)
        async with sess.post(url, data=body(), headers=putmedia_headers(url, name, 0)) as resp:
            if resp.status != 200:
                raise RuntimeError(f"PutMedia {resp.status}: {await resp.read()!r}")
            parser = AckParser()
            async for chunk in resp.content.iter_any():
                for ack in parser.feed(chunk):
                    counts[str(ack.event_type)] += 1
                    if ack.event_type == "ERROR":
                        raise RuntimeError(f"upload: {ack}")
        dt = time.monotonic() - t0
    nbytes = len(header) + sum(map(len, frags))
    if want_acks and counts["PERSISTED"] != len(frags):
        raise RuntimeError(f"upload: {counts['PERSISTED']} of {len(frags)} PERSISTED")
    return {
        "bytes": nbytes,
        "fragments": len(frags),
        "seconds": dt,
        "mb_s": nbytes / dt / 1e6,
        "acks": dict(counts),
    }


def read_boto3(base: str, name: str) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "kinesis-video-media",
        endpoint_url=base,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(read_timeout=60, retries={"max_attempts": 1}),
    )
    t0 = time.monotonic()
    resp = client.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    nbytes = full = 0
    last = t0
    for chunk in resp["Payload"].iter_chunks(65536):
        nbytes += len(chunk)
        if len(chunk) == 65536:  # the final partial chunk only returns at EOF
            full, last = nbytes, time.monotonic()
    return {
        "bytes": nbytes,
        "seconds": last - t0,
        "mb_s": full / (last - t0) / 1e6,
        "seconds_to_eof": time.monotonic() - t0,
    }


async def read_aiohttp(base: str, name: str, parse: bool = False) -> dict[str, Any]:
    body = json.dumps({"StreamName": name, "StartSelector": {"StartSelectorType": "EARLIEST"}})
    url = base + "/getMedia"
    async with new_session() as sess:
        t0 = time.monotonic()
        hdrs = signed(url, body.encode(), {"Content-Type": "application/json"})
        nbytes = blocks = 0
        last = t0
        reader = EbmlReader() if parse else None
        async with sess.post(url, data=body.encode(), headers=hdrs) as resp:
            async for chunk in resp.content.iter_any():
                nbytes += len(chunk)
                if reader is not None:
                    reader.feed(chunk)
                    blocks += sum(1 for ev in reader.events() if type(ev) is Block)
                last = time.monotonic()
        end = time.monotonic()
    out = {
        "bytes": nbytes,
        "seconds": last - t0,
        "mb_s": nbytes / (last - t0) / 1e6,
        "seconds_to_eof": end - t0,
    }
    if parse:
        out["blocks"] = blocks
    return out


def catchup(target_mb: float) -> dict[str, Any]:
    header, frags = catchup_fragments(int(target_mb * 1e6))
    res: dict[str, Any] = {}
    with Server("callstream") as srv:
        res["upload"] = run_async(upload(srv.url, "catchup", header, frags, want_acks=True))
        res["boto3"] = read_boto3(srv.url, "catchup")
        res["aiohttp"] = run_async(read_aiohttp(srv.url, "catchup"))
        res["aiohttp_parse"] = run_async(read_aiohttp(srv.url, "catchup", parse=True))
        res["server_rss_kb"] = rss_kb(srv.pid)
    with Server("relay", blob_mb=res["aiohttp"]["bytes"] / 1e6) as relay:
        res["relay_upload"] = run_async(upload(relay.url, "sink", header, frags, want_acks=False))
        res["relay_boto3"] = read_boto3(relay.url, "blob")
        res["relay_aiohttp"] = run_async(read_aiohttp(relay.url, "blob"))
    return res


def fsync_floor(nbytes: int, count: int = 200) -> dict[str, float | None]:
    """write + fsync of one fragment-sized record on the data dir's filesystem."""
    d = Path(tempfile.mkdtemp(prefix="bench-fsync-"))
    fd = os.open(d / "f", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    lat = array.array("q")
    blob = os.urandom(nbytes)
    try:
        for _ in range(count):
            t = time.perf_counter_ns()
            os.write(fd, blob)
            os.fsync(fd)
            lat.append(time.perf_counter_ns() - t)
    finally:
        os.close(fd)
        shutil.rmtree(d, ignore_errors=True)
    return summary_ms(lat)


# --- report -----------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def realtime_table(results: list[RunResult]) -> str:
    rows = []
    for r in results:
        lat = r.latency
        verdict = "yes" if r.ok else "**no**"
        if r.errors:
            verdict += f" ({r.errors[0][:60]})"
        rows.append(
            [
                r.target,
                str(r.n),
                fmt(lat.get("p50")),
                fmt(lat.get("p99")),
                fmt(lat.get("max")),
                fmt(r.latency_head.get("p99")),
                f"{r.frames_received:,} / {r.frames_sent:,}",
                fmt(r.acks.get("BUFFERING", {}).get("p99")),
                fmt(r.acks.get("PERSISTED", {}).get("p99")),
                f"{r.server_cpu_pct:.0f} ({r.server_sys_pct:.0f})",
                f"{10 * r.server_cpu_pct / r.n:.2f}",
                f"{r.active_rss_kb / 1024:.0f}",
                f"{r.gen_cpu_pct:.0f}",
                f"{r.other_cpu_pct:.0f}",
                fmt(r.send_lag.get("p99")),
                verdict,
            ]
        )
    return table(
        [
            "server",
            "N",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p99 1st 100 ms",
            "frames recv / sent",
            "BUFFERING p99",
            "PERSISTED p99",
            "server CPU % (sys)",
            "CPU ms / stream-s",
            "RSS MB",
            "loadgen CPU %",
            "other CPU %",
            "send lag p99",
            "p99<200, no loss",
        ],
        rows,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="N 10,25, 5 s runs, 10 MB catch-up, no profile"
    )
    ap.add_argument("--n", help="comma-separated N values (default 25,50,100,200,300,500)")
    ap.add_argument("--seconds", type=float, help="measured seconds per N (default 15)")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--catchup-mb", type=float, help="catch-up upload size (default 50)")
    ap.add_argument("--ack-n", type=int, default=25, help="streams for the known-size run")
    ap.add_argument("--no-relay", action="store_true")
    ap.add_argument("--mem-n", type=int, default=50, help="streams for the steady-state RSS run")
    ap.add_argument(
        "--mem-seconds", type=float, help="length of the steady-state RSS run (default 36)"
    )
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument(
        "--profile-n",
        type=int,
        help="N for the py-spy run (default: first N that fails, else the largest)",
    )
    ap.add_argument("--keep-going", action="store_true", help="run every N even after one fails")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="before each run wait up to this long for the shared machine to be idle",
    )
    ap.add_argument("--quiet-wait-total", type=float, default=45.0, help="budget for all waits")
    args = ap.parse_args()
    quick = args.quick
    ns = (
        [int(x) for x in args.n.split(",")]
        if args.n
        else ([10, 25] if quick else [25, 50, 100, 200, 300, 500])
    )
    seconds = args.seconds or (5.0 if quick else 15.0)
    catch_mb = args.catchup_mb or (10.0 if quick else 50.0)
    OUT.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "aiohttp": aiohttp.__version__,
            "load_generator_loop": LOOP_NAME,
        },
        "config": {
            "n": ns,
            "seconds": seconds,
            "warmup": args.warmup,
            "catchup_mb": catch_mb,
            "p99_limit_ms": P99_LIMIT_MS,
        },
    }

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    quiet_budget = [args.quiet_wait_total]

    def quiet() -> float:
        """Wait for the shared machine to calm down, within the total budget."""
        t = time.monotonic()
        busy = wait_for_quiet(min(args.quiet_wait, quiet_budget[0]))
        quiet_budget[0] = max(0.0, quiet_budget[0] - (time.monotonic() - t))
        return busy

    cluster_bytes = len(whole_cluster(0, 0, 0)) + len(TAGS)
    quiet()
    report["fsync_floor"] = fsync_floor(cluster_bytes)

    results: list[RunResult] = []
    for kind in ("callstream",) + (() if args.no_relay else ("relay",)):
        for n in ns:
            busy = quiet()
            log(f"(a) {kind} N={n} (machine busy {busy:.0f}% before) ...")
            r = run_realtime(kind, n, seconds, args.warmup)
            r.busy_before_pct = busy
            results.append(r)
            log(
                f"    p50={fmt(r.latency.get('p50'))} p99={fmt(r.latency.get('p99'))} ms "
                f"lost={r.lost} cpu={r.server_cpu_pct:.0f}% gen={r.gen_cpu_pct:.0f}% "
                f"other={r.other_cpu_pct:.0f}% setup={r.setup_s:.1f}s errors={r.errors[:1]}"
            )
            if not r.ok and not args.keep_going:
                break
    report["realtime"] = [r.__dict__ | {"lost": r.lost, "ok": r.ok} for r in results]

    quiet()
    log(f"(b) known-size clusters, N={args.ack_n} ...")
    known = run_realtime(
        "callstream", args.ack_n, seconds, args.warmup, known_size=True, readers=False
    )
    report["known_size"] = known.__dict__ | {"ok": known.ok}

    quiet()
    log(f"(c) catch-up {catch_mb:.0f} MB ...")
    report["catchup"] = catchup(catch_mb)

    quiet()
    mem_s = args.mem_seconds or (8.0 if quick else 36.0)
    log(f"(d) memory: N={args.mem_n} for {mem_s:.0f} s ...")
    report["memory"] = memory_run(args.mem_n, mem_s, args.warmup)

    prof = None
    cs = [r for r in results if r.target == "callstream"]
    want_profile = not args.no_profile and (not quick or args.profile_n is not None)
    if want_profile and cs and shutil.which("py-spy"):
        failed = [r for r in cs if not r.ok]
        pn = args.profile_n or (failed[0].n if failed else max(r.n for r in cs))
        quiet()
        log(f"profile: py-spy on the server at N={pn} ...")
        prof = profile_run(pn, seconds, args.warmup)
        report["profile"] = prof
    report["elapsed_s"] = time.monotonic() - t_start
    (OUT / "server.json").write_text(json.dumps(report, indent=1, default=str))
    print_report(report, results, known, prof, seconds, cluster_bytes)


def print_report(
    report: dict[str, Any],
    results: list[RunResult],
    known: RunResult,
    prof: dict[str, Any] | None,
    seconds: float,
    cluster_bytes: int,
) -> None:
    cs_ok = [r.n for r in results if r.target == "callstream" and r.ok]
    relay_ok = [r.n for r in results if r.target == "relay" and r.ok]
    m = report["machine"]
    print(
        f"# callstream media server benchmark ({m['cpus']} CPUs, Python {m['python']}, "
        f"aiohttp {m['aiohttp']}; load generator on {m['load_generator_loop']})\n"
    )
    print(
        f"**Headline:** largest N with p99 < {P99_LIMIT_MS:.0f} ms and no frame lost: "
        f"callstream **{max(cs_ok) if cs_ok else 'none'}** (N tried: "
        f"{', '.join(str(r.n) for r in results if r.target == 'callstream')}); "
        f"relay baseline **{max(relay_ok) if relay_ok else 'none'}** (N tried: "
        f"{', '.join(str(r.n) for r in results if r.target == 'relay')}).\n"
    )
    print(
        f"## (a) Real-time Connect-shaped producers, one live GetMedia reader each "
        f"({seconds:.0f} s measured per N)\n"
    )
    print(realtime_table(results))
    print(
        "\nLatency: reader receive time minus the producer's send time embedded in each "
        'frame (2 frames per stream per 20 ms). "1st 100 ms": frames in the first 100 ms '
        'of their fragment. CPU % is of one core (sys = kernel part). "other": CPU used by '
        "everything else on this shared machine during the window. Send lag: load "
        "generator lateness (a saturated generator inflates every latency, baseline "
        "included).\n"
    )

    print("## (b) PutMedia ack latency (ms)\n")
    rows = []
    light = next((r for r in results if r.target == "callstream"), None)
    if light is not None:
        for kind, label in (
            ("BUFFERING", "Cluster's Timecode sent"),
            ("RECEIVED", "next Cluster's first byte sent"),
            ("PERSISTED", "next Cluster's first byte sent"),
        ):
            a = light.acks.get(kind, {})
            rows.append(
                [
                    f"unknown-size, live (N={light.n})",
                    kind,
                    label,
                    fmt(a.get("p50")),
                    fmt(a.get("p99")),
                    str(a.get("n", 0)),
                ]
            )
    for kind in ("BUFFERING", "RECEIVED", "PERSISTED"):
        a = known.acks.get(kind, {})
        rows.append(
            [
                f"known-size, whole Cluster in one write (N={known.n})",
                kind,
                "Cluster's last byte sent",
                fmt(a.get("p50")),
                fmt(a.get("p99")),
                str(a.get("n", 0)),
            ]
        )
    relay_light = next((r for r in results if r.target == "relay"), None)
    if relay_light is not None:
        lat = relay_light.latency
        rows.append(
            [
                f"baseline: relay, one-way chunk (N={relay_light.n})",
                "–",
                "chunk sent -> reader",
                fmt(lat.get("p50")),
                fmt(lat.get("p99")),
                str(lat.get("n")),
            ]
        )
    ff = report["fsync_floor"]
    rows.append(
        [
            f"baseline: write+fsync of {cluster_bytes:,} B",
            "–",
            "in-process, same disk",
            fmt(ff["p50"], 2),
            fmt(ff["p99"], 2),
            str(ff["n"]),
        ]
    )
    print(table(["upload", "ack", "measured from", "p50", "p99", "samples"], rows))

    c = report["catchup"]
    up = c["upload"]
    print(
        f"\n## (c) GetMedia catch-up from EARLIEST ({up['fragments']:,} fragments, "
        f"{up['bytes'] / 1e6:.1f} MB uploaded)\n"
    )
    rows = [
        [
            "PutMedia upload, until the last PERSISTED ack",
            "callstream",
            f"{up['mb_s']:.1f}",
            f"{up['bytes'] / 1e6:.1f}",
            f"{up['seconds']:.2f}",
        ],
        [
            "PutMedia upload, until the response ends",
            "relay (discards)",
            f"{c['relay_upload']['mb_s']:.1f}",
            f"{c['relay_upload']['bytes'] / 1e6:.1f}",
            f"{c['relay_upload']['seconds']:.2f}",
        ],
    ]
    for key, client in (
        ("boto3", "boto3 get_media, Payload.iter_chunks(65536)"),
        ("aiohttp", "aiohttp, content.iter_any()"),
        ("aiohttp_parse", "aiohttp + EbmlReader parse"),
    ):
        v = c[key]
        rows.append(
            [
                client,
                "callstream",
                f"{v['mb_s']:.1f}",
                f"{v['bytes'] / 1e6:.1f}",
                f"{v['seconds']:.2f}",
            ]
        )
        if "relay_" + key in c:
            b = c["relay_" + key]
            rows.append(
                [
                    client,
                    "relay (same bytes from memory)",
                    f"{b['mb_s']:.1f}",
                    f"{b['bytes'] / 1e6:.1f}",
                    f"{b['seconds']:.2f}",
                ]
            )
    print(table(["client", "server", "MB/s", "MB", "s to last byte"], rows))
    print(
        f"\nThe callstream GetMedia response then stays open until the live-edge idle "
        f"timeout (boto3 EOF after {c['boto3']['seconds_to_eof']:.1f} s), as KVS does.\n"
    )

    print("## (d) Server memory per active stream (producer + live reader)\n")
    rows = []
    for r in results:
        rows.append(
            [
                r.target,
                str(r.n),
                f"{r.idle_rss_kb / 1024:.1f}",
                f"{r.active_rss_kb / 1024:.1f}",
                f"{r.rss_per_stream_kb:.0f}",
            ]
        )
    mem = report["memory"]
    rows.append(
        [
            f"callstream, {mem['seconds']:.0f} s run (steady state)",
            str(mem["n"]),
            f"{mem['idle_rss_kb'] / 1024:.1f}",
            f"{mem['peak_rss_kb'] / 1024:.1f}",
            f"{mem['per_stream_kb']:.0f}",
        ]
    )
    print(table(["server", "N", "idle RSS MB", "active RSS MB (peak)", "KB per stream"], rows))
    curve = ", ".join(f"{t:.0f} s: {kb:.0f}" for t, _, kb in mem["curve"][1::2])
    print(
        f"\nRSS growth per stream over the {mem['seconds']:.0f} s run (KB per stream at time "
        f"since server start): {curve}. The (a) rows are taken ~{seconds:.0f} s into a run.\n"
    )

    if prof:
        r = prof["result"]
        lat = r["latency"]
        print(
            f"\n## Server profile (py-spy at N={prof['n']}: p99 {fmt(lat.get('p99'))} ms, "
            f"server CPU {r['server_cpu_pct']:.0f}%, profiler running)\n"
        )
        g, w = prof.get("gil", {}), prof.get("wall", {})
        print(
            f"`--gil` samples: {g.get('samples', 0):,} in {prof['seconds_each']} s at "
            f"{PROFILE_HZ} Hz "
            f"(event loop thread holding the GIL); wall samples: {w.get('samples', 0):,} "
            f"(non-idle threads: {w.get('threads')}).\n"
        )
        busy = g.get("samples", 0) / (PROFILE_HZ * prof["seconds_each"])  # GIL-held share
        chunks_s = prof["n"] * 1000 / FRAME_MS
        print(
            f"Where the event loop's CPU goes (exclusive buckets; the loop thread held the "
            f"GIL {100 * busy:.0f}% of the time; {chunks_s:,.0f} producer chunks/s in, as "
            f"many GetMedia writes out):\n"
        )
        rows = [
            [label, f"{p:.1f}", f"{p / 100 * busy * 1e6 / chunks_s:.1f}"]
            for label, p in g.get("buckets", [])
        ]
        print(table(["bucket", "% of loop CPU", "µs per 20 ms chunk"], rows))
        print()
        wall = {label: pctv for label, _, pctv in w.get("breakdown", [])}
        rows = [
            [label, f"`{f}`", f"{pctv:.1f}", f"{wall.get(label, 0.0):.1f}"]
            for label, f, pctv in g.get("breakdown", [])
        ]
        print(
            table(
                ["inclusive", "function", "% of loop CPU (gil)", "% of wall samples"],
                rows,
            )
        )
        print()
        print(
            table(
                ["top self time, event loop (gil)", "%"],
                [[f"`{f}`", f"{p:.1f}"] for f, _, p in g.get("top_self", [])[:12]],
            )
        )
    print(
        f"\n(total {report['elapsed_s']:.0f} s; raw numbers in "
        f"{(OUT / 'server.json').relative_to(HERE.parent)})"
    )


if __name__ == "__main__":
    main()
