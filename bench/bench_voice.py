"""Voice connector load benchmark: concurrent recorded SIPREC calls into ``callstream serve``.

The server runs in its own process (``python -m callstream.cli serve --sip-port P
--rtp-ports 20000-39999``, fresh data dir per N, the default asyncio loop); a voice
connector with streaming (retention 1 h) is created through boto3 ``chime-sdk-voice``.
The load generator (``voice_load.py``) runs in this process on uvloop when installed:

* N SIPREC calls over one UDP SIP socket, INVITEs ramped at ``--rate`` per second; each
  call has two ``a=sendonly`` PCMU legs;
* one central pacer sends every leg's 20 ms RTP packet per period (legs spread over 5
  phases of the period; distinct deterministic audio per leg and packet); a central pacer
  instead of ``callstream.voice.client.place_call`` per call, whose per-call sleep loop
  costs too much at N >= 300;
* after the last call is answered, ``--warmup`` s, then the measured window of
  ``--seconds`` s, then a BYE per call;
* every leg has a live GetMedia reader (StartSelector EARLIEST on the ``StreamARN`` of the
  leg's STARTED event, which ``GET /callstream/events`` delivers; all legs, not a
  subset), which walks the stored PCM packet by packet (``voice_load.Leg.take``): a
  packet is delivered when its 160 samples (its G.711-decoded payload, bit-exact) have
  arrived, normally when the reader holds ``(k+1) * 160`` samples of the leg; its
  latency is the reader's receive time minus the packet's send time (one clock, this
  process). p50/p99 over the packets sent inside the window.

Zero loss: after BYE and the ENDED events (the readers read each leg through its end),
every packet sent must be in its leg's stream: ``packets lost`` counts those that are
not (skipped over, or replaced by silence or a trimmed copy). "extra samples" are stored
samples that carry no packet (``stored samples - stored packets x 160``, summed over legs,
with the number of legs concerned; "gaps" counts places after a leg's first packet where
they sit): silence before a leg (the server anchors a call's second leg by arrival time,
so a loop running late at call start shifts it in 20 ms steps), after it (the legs of a
call end together), or inserted by a jitter-buffer resync (a server that reads its
sockets late sees arrival times jump and re-anchors by arrival). With no loss and no
extra samples, each stream is exactly ``packets sent x 160`` samples. Extra samples are
reported, not part of the verdict: the audio is all there, on a timeline that moved.
"Readers caught up": when the window closed, every reader was past all but the last 500 ms
of what had been sent. "kernel drops" is the delta of ``/proc/net/snmp`` ``Udp
RcvbufErrors`` over the run (machine-wide: datagrams dropped because a socket's buffer was
full, i.e. a receiver that did not read in time).

Baseline in the same run, same load generator and pacer: ``voice_baseline.py``, a plain
asyncio UDP receiver (the default loop, as the server) with one socket per leg that
forwards each datagram at once to a reader socket here, which checks it the same way.

CPU: the server process's user+sys from ``/proc/<pid>/stat`` over the measured window;
"CPU ms/s per call" is that divided by N (ms of CPU per second of one two-leg call).
Before each run the bench waits for a quiet machine (it is shared; see bench_server.py);
"other CPU %" is what the rest of the machine used during the window (other processes,
and the kernel's softirq work for loopback UDP, which no process is charged for): 200%
is both cores.

    python bench/bench_voice.py [--n 100,200,300,400] [--seconds 20] [--warmup 5]
                                [--rate 40] [--keep-going] [--quick | --tiny]
                                [--profile] [--no-baseline] [--json F]

The verdict per row: every call answered, zero packets lost, p99 < 200 ms, readers
caught up, no errors. Stops after the first N at which callstream fails unless ``--keep-going``. ``--profile`` samples the server with py-spy (``record
--gil --format raw``) over the measured window of every callstream run and prints its
hottest functions (py-spy slows the server: the rows of a profiled run are not the
benchmark's numbers). ``--quick``: N 25,50, 5 s; ``--tiny``: N 2, 3 s, no quiet wait
(what the test suite runs). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3

from bench_common import HOST, ServerProcess, free_port
from bench_server import (
    LOOP_FACTORY,
    LOOP_NAME,
    cpu_times,
    machine_busy_s,
    self_cpu_s,
    summary_ms,
)
from bench_server import wait_for_quiet as _wait_for_quiet
from voice_load import (
    BaselineReader,
    EventLog,
    Leg,
    Pacer,
    Signer,
    SipCall,
    SipUa,
    Window,
    new_session,
    poll_events,
    read_leg,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ACCESS_KEY = "AKIDBENCHVOICE0001"
SECRET_KEY = "bench-voice-secret-key-not-a-real-one-0000"
REGION = "us-east-1"
RTP_PORTS = "20000-39999"
P99_LIMIT_MS = 200.0
CAUGHT_UP_MS = 500.0


def run_async(coro: Any) -> Any:
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        return runner.run(coro)


def udp_rcvbuf_errors() -> int:
    """Machine-wide UDP datagrams dropped for a full receive buffer (``/proc/net/snmp``)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


# --- processes ----------------------------------------------------------------------------------


class VoiceServer(ServerProcess):
    """``callstream serve`` with SIP on, and a voice connector with streaming."""

    def __init__(self, n: int) -> None:
        port = free_port()
        self.sip_port = free_port()
        while self.sip_port == port:
            self.sip_port = free_port()
        self.url = f"http://{HOST}:{port}"
        self.dir = Path(tempfile.mkdtemp(prefix="bench-voice-"))
        env = dict(os.environ)
        env.update(CALLSTREAM_ACCESS_KEY_ID=ACCESS_KEY, CALLSTREAM_SECRET_ACCESS_KEY=SECRET_KEY)
        cmd = [
            sys.executable,
            "-m",
            "callstream.cli",
            "serve",
            "--data-dir",
            str(self.dir / "data"),
        ]
        cmd += ["--port", str(port), "--sip-port", str(self.sip_port), "--rtp-ports", RTP_PORTS]
        cmd += ["--max-calls", str(max(1000, n + 10))]
        cmd += ["--analytics", "off"]  # the recording path (analytics has its own bench)
        cmd += os.environ.get("BENCH_VOICE_SERVER_ARGS", "").split()
        super().__init__(
            cmd, port=port, log_path=self.dir / "server.log", env=env, name="callstream serve"
        )
        try:
            self._connector()
        except Exception:
            self.stop()
            raise

    def _connector(self) -> None:
        chime = boto3.client(
            "chime-sdk-voice",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        vc = chime.create_voice_connector(Name="bench", RequireEncryption=False)["VoiceConnector"]
        chime.put_voice_connector_streaming_configuration(
            VoiceConnectorId=vc["VoiceConnectorId"],
            StreamingConfiguration={"DataRetentionInHours": 1, "Disabled": False},
        )

    def tracebacks(self) -> int:
        return self.log_text(0, self.log_size()).count("Traceback")

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- results ------------------------------------------------------------------------------------


@dataclass
class RunResult:
    kind: str
    n: int
    legs: int
    seconds: float
    answered: int = 0
    packets_per_s: float = 0.0
    server_cpu_pct: float = 0.0
    server_sys_pct: float = 0.0
    gen_cpu_pct: float = 0.0
    machine_busy_pct: float = 0.0
    latency: dict[str, float | None] = field(default_factory=dict)
    packets_sent: int = 0
    lost: int = 0
    extra_samples: int = 0
    legs_extra: int = 0
    gaps: int = 0
    legs_unread: int = 0
    max_lag_ms: float = 0.0
    kernel_drops: int = 0
    pacer_late_ticks: int = 0
    pacer_max_late_ms: float = 0.0
    errors: list[str] = field(default_factory=list)
    profile: dict[str, Any] | None = None

    @property
    def caught_up(self) -> bool:
        return self.legs_unread == 0 and self.max_lag_ms < CAUGHT_UP_MS

    @property
    def ok(self) -> bool:
        p99 = self.latency.get("p99")
        return (
            self.answered == self.n
            and self.lost == 0
            and self.caught_up
            and p99 is not None
            and p99 < P99_LIMIT_MS
            and not self.errors
        )


def count_errors(res: RunResult, messages: list[str]) -> None:
    """Distinct messages with their counts."""
    for msg, c in Counter(messages).most_common():
        res.errors.append(f"{c}x {msg}" if c > 1 else msg)


def check_legs(res: RunResult, legs: list[Leg]) -> None:
    for leg in legs:
        res.packets_sent += leg.sent
        if leg.samples == 0:
            res.legs_unread += 1
        res.lost += leg.sent - leg.matched
        res.extra_samples += leg.extra_samples
        res.legs_extra += leg.extra_samples > 0
        res.gaps += leg.gaps


def lag_ms(legs: list[Leg]) -> float:
    return max((20.0 * (leg.sent - leg.delivered()) for leg in legs), default=0.0)


@dataclass
class Meter:
    """CPU of a process, of this process and of the machine over the window."""

    pid: int
    t: float = 0.0
    cpu: tuple[float, float] = (0.0, 0.0)
    gen: float = 0.0
    busy: float = 0.0
    sent: int = 0

    def start(self, legs: list[Leg]) -> None:
        self.t = time.monotonic()
        self.cpu = cpu_times(self.pid)
        self.gen = self_cpu_s()
        self.busy = machine_busy_s()
        self.sent = sum(leg.sent for leg in legs)

    def stop(self, res: RunResult, legs: list[Leg]) -> None:
        dt = time.monotonic() - self.t
        u, s = cpu_times(self.pid)
        res.server_cpu_pct = 100 * (u + s - sum(self.cpu)) / dt
        res.server_sys_pct = 100 * (s - self.cpu[1]) / dt
        res.gen_cpu_pct = 100 * (self_cpu_s() - self.gen) / dt
        res.machine_busy_pct = 100 * (machine_busy_s() - self.busy) / dt
        res.packets_per_s = (sum(leg.sent for leg in legs) - self.sent) / dt


async def _ramp(n: int, rate: float, start: Any) -> None:
    t0 = time.monotonic()
    for i in range(n):
        start(i)
        delay = t0 + (i + 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def _spy(pid: int, seconds: float, path: Path) -> str:
    cmd = ["py-spy", "record", "-o", str(path), "-f", "raw", "-p", str(pid)]
    cmd += ["-d", str(max(1, int(seconds))), "-r", "100", "--gil", "--nonblocking"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    return f"py-spy: {err.decode()[-300:]}" if proc.returncode else ""


def fold_profile(path: Path, top: int = 20) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's raw (folded) output."""
    self_c: dict[str, int] = defaultdict(int)
    incl: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        frames = [f.rsplit(":", 1)[0] + ")" if f.endswith(")") else f for f in stack.split(";")]
        frames = frames[1:]  # the thread
        total += c
        if frames:
            self_c[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    share = 100 / max(total, 1)

    def best(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, round(c * share, 1)) for f, c in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"samples": total, "self": best(self_c), "inclusive": best(incl)}


# --- the runs -----------------------------------------------------------------------------------


async def callstream_load(srv: VoiceServer, n: int, a: argparse.Namespace) -> RunResult:
    loop = asyncio.get_running_loop()
    res = RunResult("callstream", n, 2 * n, a.seconds)
    window = Window()
    pacer = Pacer()
    ua_transport, ua = await loop.create_datagram_endpoint(
        lambda: SipUa((HOST, srv.sip_port)), local_addr=(HOST, 0)
    )
    calls = [SipCall(c, [Leg(2 * c, c, 0), Leg(2 * c + 1, c, 1)]) for c in range(n)]
    legs = [leg for call in calls for leg in call.legs]
    by_key = {(call.call_id, leg.media_index): leg for call in calls for leg in call.legs}
    signer = Signer(ACCESS_KEY, SECRET_KEY, REGION)
    evlog = EventLog()
    messages: list[str] = []
    drops0 = udp_rcvbuf_errors()
    async with new_session() as sess:

        def on_started(leg: Leg) -> None:
            leg.reader = loop.create_task(read_leg(sess, srv.url, signer, leg, window))

        stop_events = asyncio.Event()
        poller = loop.create_task(
            poll_events(sess, srv.url, signer, by_key, on_started, evlog, stop_events)
        )
        pacer_task = loop.create_task(pacer.run())

        async def place(call: SipCall) -> None:
            try:
                await call.invite(ua, pacer.port)
            except (RuntimeError, TimeoutError, ValueError) as err:
                call.error = str(err)
                return
            for leg in call.legs:
                pacer.add(leg)

        placing: list[asyncio.Task[None]] = []
        await _ramp(n, a.rate, lambda i: placing.append(loop.create_task(place(calls[i]))))
        await asyncio.gather(*placing)
        res.answered = sum(call.answered for call in calls)
        messages += [f"INVITE: {call.error}" for call in calls if call.error]
        await asyncio.sleep(a.warmup)

        meter = Meter(srv.pid)
        spy = None
        if a.profile:
            path = OUT / f"pyspy-voice-n{n}.txt"
            spy = loop.create_task(_spy(srv.pid, a.seconds, path))
        meter.start(legs)
        window.start_ns = time.monotonic_ns()
        await asyncio.sleep(a.seconds)
        window.end_ns = time.monotonic_ns()
        meter.stop(res, legs)
        res.max_lag_ms = lag_ms([leg for call in calls if call.answered for leg in call.legs])
        if spy is not None:
            err = await spy
            messages += [err] if err else []
            if path.exists():
                res.profile = fold_profile(path)

        for leg in legs:
            pacer.remove(leg)
        pacer.stop()
        await pacer_task
        await asyncio.sleep(0.1)
        byes = await asyncio.gather(
            *(call.bye(ua) for call in calls if call.answered), return_exceptions=True
        )
        messages += [f"BYE: {b}" for b in byes if isinstance(b, BaseException)]
        expected = sum(1 for leg in legs if leg.stream_arn is not None)
        deadline = time.monotonic() + 30 + n / 20
        while time.monotonic() < deadline and evlog.ended < expected:
            await asyncio.sleep(0.2)
        stop_events.set()
        await poller
        readers = [leg.reader for leg in legs if leg.reader is not None]
        if readers:
            _, pending = await asyncio.wait(readers, timeout=max(5.0, deadline - time.monotonic()))
            for task in pending:
                task.cancel()
            messages += ["reader still running at the end"] * len(pending)
    ua_transport.close()
    pacer.close()
    for leg in legs:
        leg.finish()
    res.kernel_drops = udp_rcvbuf_errors() - drops0
    res.pacer_late_ticks = pacer.late_ticks
    res.pacer_max_late_ms = pacer.max_late_ns / 1e6
    check_legs(res, [leg for call in calls if call.answered for leg in call.legs])
    res.latency = summary_ms(window.latency_ns)
    messages += [f"no STARTED event for {res.legs_unread} legs"] if res.legs_unread else []
    messages += [f"ENDED events {evlog.ended} of {expected}"] if evlog.ended < expected else []
    messages += [f"FAILED: {f}" for f in evlog.failed] + evlog.errors
    messages += [leg.reader_error for leg in legs if leg.reader_error]
    messages += [f"pacer send errors: {pacer.send_errors}"] if pacer.send_errors else []
    count_errors(res, messages)
    return res


async def baseline_load(n: int, a: argparse.Namespace) -> RunResult:
    loop = asyncio.get_running_loop()
    res = RunResult("baseline", n, 2 * n, a.seconds)
    window = Window()
    legs = [Leg(i, i // 2, i % 2) for i in range(2 * n)]
    transport, _reader = await loop.create_datagram_endpoint(
        lambda: BaselineReader(legs, window), local_addr=(HOST, 0)
    )
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    port = transport.get_extra_info("sockname")[1]
    cmd = [sys.executable, str(HERE / "voice_baseline.py"), "--legs", str(2 * n)]
    proc = subprocess.Popen(
        [*cmd, "--reader", f"{HOST}:{port}"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    drops0 = udp_rcvbuf_errors()
    pacer = Pacer()
    try:
        assert proc.stdout is not None
        line = await loop.run_in_executor(None, proc.stdout.readline)
        ports = json.loads(line)["ports"]
        for leg, p in zip(legs, ports, strict=True):
            leg.target = (HOST, p)
        pacer_task = loop.create_task(pacer.run())

        def start(i: int) -> None:
            pacer.add(legs[2 * i])
            pacer.add(legs[2 * i + 1])

        await _ramp(n, a.rate, start)
        res.answered = n
        await asyncio.sleep(a.warmup)
        meter = Meter(proc.pid)
        meter.start(legs)
        window.start_ns = time.monotonic_ns()
        await asyncio.sleep(a.seconds)
        window.end_ns = time.monotonic_ns()
        meter.stop(res, legs)
        res.max_lag_ms = lag_ms(legs)
        pacer.stop()
        await pacer_task
        await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(10)
        transport.close()
        pacer.close()
    res.kernel_drops = udp_rcvbuf_errors() - drops0
    res.pacer_late_ticks = pacer.late_ticks
    res.pacer_max_late_ms = pacer.max_late_ns / 1e6
    check_legs(res, legs)
    res.latency = summary_ms(window.latency_ns)
    messages = [f"pacer send errors: {pacer.send_errors}"] if pacer.send_errors else []
    count_errors(res, messages)
    return res


def run_callstream(n: int, a: argparse.Namespace) -> RunResult:
    srv = VoiceServer(n)
    try:
        res: RunResult = run_async(callstream_load(srv, n, a))
        tb = srv.tracebacks()
        if tb:
            res.errors.append(f"{tb} tracebacks in the server log")
    finally:
        srv.stop()
    return res


# --- report -------------------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


HEADERS = [
    "server",
    "N calls",
    "legs",
    "packets/s",
    "server CPU % (sys)",
    "CPU ms/s per call",
    "p50 ms",
    "p99 ms",
    "max ms",
    "packets lost",
    "extra samples",
    "readers caught up",
    "kernel drops",
    "loadgen CPU %",
    "other CPU %",
    "errors",
]


def row(r: RunResult) -> str:
    cells = [
        r.kind,
        str(r.n),
        str(r.legs),
        f"{r.packets_per_s:,.0f}",
        f"{r.server_cpu_pct:.0f} ({r.server_sys_pct:.0f})",
        f"{10 * r.server_cpu_pct / r.n:.2f}",
        fmt(r.latency.get("p50")),
        fmt(r.latency.get("p99")),
        fmt(r.latency.get("max")),
        f"{r.lost:,}",
        f"{r.extra_samples:,} ({r.legs_extra} legs, {r.gaps} gaps)" if r.extra_samples else "0",
        ("yes" if r.caught_up else f"no ({r.max_lag_ms:,.0f} ms behind)"),
        str(r.kernel_drops),
        f"{r.gen_cpu_pct:.0f}",
        f"{max(0.0, r.machine_busy_pct - r.server_cpu_pct - r.gen_cpu_pct):.0f}",
        "; ".join(r.errors)[:160] or "none",
    ]
    return "| " + " | ".join(cells) + " |"


def header() -> str:
    return "| " + " | ".join(HEADERS) + " |\n|" + "|".join("---" for _ in HEADERS) + "|"


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="100,200,300,400", help="concurrent calls, comma-separated")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per run")
    ap.add_argument("--warmup", type=float, default=5.0, help="after the last 200 OK")
    ap.add_argument("--rate", type=float, default=40.0, help="INVITEs per second")
    ap.add_argument("--keep-going", action="store_true", help="run every N even after a failure")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--profile", action="store_true", help="py-spy on the server (see above)")
    ap.add_argument("--quick", action="store_true", help="N 25,50, 5 s windows")
    ap.add_argument("--tiny", action="store_true", help="N 2, 3 s (the test suite's run)")
    ap.add_argument("--quiet-wait", type=float, default=20.0, help="max wait for a quiet machine")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.seconds, a.warmup = "25,50", 5.0, 2.0
    if a.tiny:
        a.n, a.seconds, a.warmup, a.quiet_wait, a.rate = "2", 3.0, 1.0, 0.0, 20.0
    ns = [int(x) for x in a.n.split(",") if x.strip()]
    if a.profile:
        OUT.mkdir(exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def quiet() -> None:
        if a.quiet_wait > 0:
            busy = _wait_for_quiet(a.quiet_wait)
            log(f"machine busy {busy:.0f}% before the run")

    print(
        f"# callstream voice connector benchmark ({os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load generator on {LOOP_NAME}; "
        f"{a.seconds:g} s window after {a.warmup:g} s warm-up, INVITEs at {a.rate:g}/s)\n",
        file=out,
    )
    print(header(), file=out, flush=True)
    results: list[RunResult] = []
    for n in ns:
        quiet()
        log(f"callstream N={n} ...")
        res = run_callstream(n, a)
        results.append(res)
        print(row(res), file=out, flush=True)
        if res.profile:
            log(f"profile N={n}: {json.dumps(res.profile['self'][:10])}")
        if not a.no_baseline:
            quiet()
            log(f"baseline N={n} ...")
            base = run_async(baseline_load(n, a))
            results.append(base)
            print(row(base), file=out, flush=True)
        if not res.ok and not a.keep_going:
            break
    good = [r.n for r in results if r.kind != "baseline" and r.ok]
    print(
        f"\nLargest N with zero loss, p99 < {P99_LIMIT_MS:.0f} ms and readers caught up: "
        f"{max(good) if good else 'none'}",
        file=out,
    )
    for r in results:
        if r.profile:
            print(f"\npy-spy (--gil) of the server at N={r.n}, self % of samples:", file=out)
            for f, p in r.profile["self"][:15]:
                print(f"  {p:5.1f}  {f}", file=out)
            print("inclusive %:", file=out)
            for f, p in r.profile["inclusive"][:25]:
                print(f"  {p:5.1f}  {f}", file=out)
    if a.json:
        a.json.write_text(
            json.dumps(
                [{**asdict(r), "ok": r.ok, "caught_up": r.caught_up} for r in results], indent=1
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
