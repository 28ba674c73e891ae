"""Attack benchmark for ``callstream serve`` (issue #8, items 1 and 3): what unauthenticated
or slow clients do to the server's memory and descriptors, and to a legitimate client.

The server runs in its own process (``python -m callstream.cli serve``, fresh data dir per
run; restarted, same port and data dir, with the low descriptor limit for the slow attacks). Everything goes to
127.0.0.1 and every phase is bounded in connections, bytes and time. The attacker speaks
raw HTTP/1.1 over asyncio sockets (``asyncio.open_connection``) so it controls every byte,
from one client address (``--attacker-address``, default 127.0.0.2, still loopback; the
legitimate client comes from 127.0.0.1, so per-address limits can tell them apart); request
bodies are streamed from one shared 256 KiB buffer, so the attacker itself holds a few MiB
whatever the body size.

memory (item 1): K concurrent POSTs to a control-plane path (``/listStreams``) with a big
    body, several rounds per variant; after its answer a connection stays open, as an HTTP/1.1
    keep-alive client's does, until the variant's last round (``--close-each-round`` closes
    them every round), then a phase closes them all:
    - ``unsigned``: no Authorization header, Content-Length body;
    - ``chunked``: no Authorization header, ``Transfer-Encoding: chunked`` body;
    - ``unknown-key``: a well-formed SigV4 Authorization header naming an unknown key;
    - ``bad-signature``: the configured key with a wrong signature.
    A connection stops sending once the server answers (a fixed server refuses before the
    body), and every connection stops if the server's RSS passes ``--max-rss-mb``.
slow (item 3): from one client address, up to ``--slow-conns`` connections of one kind,
    held for ``--hold`` seconds, the server started with a low descriptor limit
    (``--nofile``, soft and hard, set in the child: ``callstream serve`` raises its soft
    limit to the hard one at start):
    - ``idle``: connect, send nothing;
    - ``slow-header``: the request line, then one header byte every ``--trickle`` seconds;
    - ``slow-body``: complete, correctly signed headers (Content-Length 64 KiB), then one
      body byte every ``--trickle`` seconds.
    "open at the end" counts what the attacker sees open: past the server's descriptor limit
    that includes connections the kernel completed into the listen backlog but the server
    never accepted (the server's own count is the fds column).

For every phase: the server's RSS (``VmRSS``) and open descriptors (``/proc/<pid>/fd``)
before, at the peak during and ``--settle`` seconds after the attack (attack connections
closed, or still open for the memory rounds that keep them); what the server answered the attack connections; the latency of a legitimate
client during the attack window; and the tracebacks the server wrote to its stderr. A
baseline phase (no attack) on the same server comes first and a recovery phase (no attack)
last. The legitimate client is a separate process (so the attacker's CPU use does not
stall it): boto3 ``kinesisvideo`` ``ListStreams`` / ``DescribeStream`` alternately, signed,
every ``--legit-interval`` s, each on a new connection (``Connection: close``, as new
clients arrive), no retries, ``--legit-timeout`` s connect and read timeouts.

    python bench/bench_attack.py [--attack memory|slow|all] [--quick | --tiny]
                                 [--conns 8] [--body-mib 60] [--rounds 3]
                                 [--slow-conns 2000] [--hold 20] [--nofile 1024] [--json F]

Prints one markdown table row per phase as it completes, then the server's error lines per
phase (``--keep`` keeps its logs). The default run takes about 4 minutes, ``--quick`` about
40 s; ``--tiny`` (a few seconds) is what the test suite runs. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bench_common import HOST, ServerProcess, fd_count, free_port, rss_kb

REGION = "us-east-1"
ACCESS_KEY = "AKIDBENCHATTACK"
SECRET_KEY = "bench-attack-secret"
LEGIT_STREAM = "bench-attack-legit"
MIB = 1024 * 1024
BUF = memoryview(b" " * (256 * 1024))  # every attack body is cut from this
CONNECT_TIMEOUT_S = 2.0
SLOW_BODY_LEN = 64 * 1024
TRACEBACK = "Traceback (most recent call last)"
MEMORY_VARIANTS = ("unsigned", "chunked", "unknown-key", "bad-signature")
SLOW_KINDS = ("idle", "slow-header", "slow-body")

_PROFILE_FIELDS = (
    "conns",
    "body_mib",
    "rounds",
    "slow_conns",
    "hold",
    "trickle",
    "nofile",
    "baseline",
    "settle",
    "legit_timeout",
)
# fmt: off
PROFILES: dict[str, dict[str, Any]] = {
    name: dict(zip(_PROFILE_FIELDS, values, strict=True))
    for name, values in {
        #         conns body_mib rounds slow_conns hold trickle nofile baseline settle legit_timeout
        "full":  (8,    60.0,    3,     2000,      20.0, 2.0,    1024,  5.0,     3.0,   5.0),
        "quick": (4,    16.0,    1,     300,       2.5,  1.0,    256,   1.5,     0.7,   2.0),
        "tiny":  (2,    1.0,     1,     8,         0.5,  0.2,    0,     0.5,     0.2,   2.0),
    }.items()
}
# fmt: on
PROFILES["tiny"].update(variants="unsigned", slow_kinds="idle")  # what the test suite runs


# --- the server process -----------------------------------------------------------------------


class Server(ServerProcess):
    """``callstream serve`` as a subprocess, stdout and stderr to ``log_path``."""

    def __init__(self, data_dir: Path, port: int, log_path: Path, nofile: int) -> None:
        env = dict(
            os.environ,
            CALLSTREAM_ACCESS_KEY_ID=ACCESS_KEY,
            CALLSTREAM_SECRET_ACCESS_KEY=SECRET_KEY,
        )
        env.pop("CALLSTREAM_CREDENTIALS_FILE", None)
        cmd = [sys.executable, "-m", "callstream.cli", "serve", "--no-sip", "--host", HOST]
        cmd += ["--port", str(port), "--data-dir", str(data_dir)]
        super().__init__(
            cmd,
            port=port,
            log_path=log_path,
            env=env,
            host=HOST,
            preexec_fn=_limit_fds(nofile) if nofile else None,
        )
        self.nofile = nofile


def _limit_fds(nofile: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return apply


def server_errors(text: str) -> tuple[int, Counter[str]]:
    """Tracebacks in a slice of the server's output, and its error lines by kind."""
    errors: Counter[str] = Counter()
    for line in text.splitlines():
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line):
            errors[line.strip()[:120]] += 1
    return text.count(TRACEBACK), errors


# --- the legitimate client (its own process) -------------------------------------------------


def legit_client(url: str, out_path: str, interval: float, timeout: float) -> int:
    """Signed control-plane requests in a loop, one line per request in ``out_path``:
    ``<start monotonic s> <latency ms> <status>``. Runs until killed or orphaned."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"total_max_attempts": 1},
        max_pool_connections=1,
    )
    kv = boto3.client(
        "kinesisvideo",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=config,
    )

    def new_connection_each_time(request: Any, **_: Any) -> None:
        request.headers["Connection"] = "close"  # unsigned, added after signing

    kv.meta.events.register("before-send", new_connection_each_time)
    parent = os.getppid()
    deadline = time.monotonic() + 60
    while os.getppid() == parent and time.monotonic() < deadline:  # the server may be starting
        try:
            kv.create_stream(StreamName=LEGIT_STREAM, DataRetentionInHours=1)
            break
        except ClientError:  # ResourceInUseException: it exists
            break
        except Exception:
            time.sleep(0.05)
    calls: list[Callable[[], Any]] = [
        lambda: kv.list_streams(MaxResults=10),
        lambda: kv.describe_stream(StreamName=LEGIT_STREAM),
    ]
    with open(out_path, "a") as out:
        i = 0
        while os.getppid() == parent:
            t0 = time.monotonic()
            try:
                calls[i % 2]()
                status = "ok"
            except (ConnectTimeoutError, ReadTimeoutError):
                status = "timeout"
            except EndpointConnectionError:
                status = "refused"
            except ClientError as err:
                status = "error:" + str(err.response.get("Error", {}).get("Code", "?"))
                if status.endswith("ResourceNotFoundException"):
                    with contextlib.suppress(Exception):
                        kv.create_stream(StreamName=LEGIT_STREAM, DataRetentionInHours=1)
            except Exception as err:
                status = "error:" + type(err).__name__
            t1 = time.monotonic()
            out.write(f"{t0:.6f} {1000 * (t1 - t0):.3f} {status}\n")
            out.flush()
            i += 1
            time.sleep(max(0.0, interval - (t1 - t0)))
    return 0


@dataclass(slots=True)
class LegitSample:
    t0: float
    ms: float
    status: str


class Legit:
    """The legitimate client process and its samples."""

    def __init__(self, url: str, out_path: Path, interval: float, timeout: float) -> None:
        self.out_path = out_path
        self.timeout = timeout
        out_path.touch()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--legit-client", url]
        cmd += [str(out_path), "--legit-interval", str(interval)]
        cmd += ["--legit-timeout", str(timeout)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def samples(self) -> list[LegitSample]:
        rows = []
        with open(self.out_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and line.endswith("\n"):
                    rows.append(LegitSample(float(parts[0]), float(parts[1]), parts[2]))
        return rows

    async def wait_ok_after(self, t: float, limit_s: float) -> bool:
        """Wait until a request started after ``t`` succeeded (the client is warm)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any(s.t0 >= t and s.status == "ok" for s in self.samples()):
                return True
            await asyncio.sleep(0.1)
        return False

    async def window(self, t_start: float, t_end: float) -> list[LegitSample]:
        """Requests started in [t_start, t_end), once the last of them has finished (the
        client is sequential: a later start means every earlier one is logged)."""
        deadline = time.monotonic() + self.timeout + 3
        while time.monotonic() < deadline and self.proc.poll() is None:
            samples = self.samples()
            if samples and samples[-1].t0 >= t_end:
                break
            await asyncio.sleep(0.1)
        return [s for s in self.samples() if t_start <= s.t0 < t_end]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def legit_summary(samples: list[LegitSample]) -> dict[str, Any]:
    ok = sorted(s.ms for s in samples if s.status == "ok")
    statuses = Counter(s.status for s in samples)

    def q(p: float) -> float | None:
        if not ok:
            return None
        return ok[min(len(ok) - 1, round(p / 100 * (len(ok) - 1)))]

    return {
        "requests": len(samples),
        "ok": len(ok),
        "p50_ms": q(50),
        "p99_ms": q(99),
        "max_ms": ok[-1] if ok else None,
        "timeouts": statuses["timeout"],
        "failed": len(samples) - len(ok) - statuses["timeout"],
        "statuses": dict(statuses),
    }


# --- server resource sampling -----------------------------------------------------------------


class Sampler:
    """Samples the server's RSS and descriptors every 0.1 s; keeps the peaks since
    ``reset``; ``over_limit`` turns true once RSS passes ``max_rss_mb``."""

    def __init__(self, pid: int, max_rss_mb: float) -> None:
        self.pid = pid
        self.max_rss_mb = max_rss_mb
        self.peak_rss = 0.0
        self.peak_fds = 0
        self.over_limit = False
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> tuple[float, int]:
        rss, fds = rss_kb(self.pid) / 1024, fd_count(self.pid)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_fds = max(self.peak_fds, fds)
        if rss > self.max_rss_mb:
            self.over_limit = True
        return rss, fds

    def reset(self) -> tuple[float, int]:
        self.peak_rss, self.peak_fds, self.over_limit = 0.0, 0, False
        return self.sample()

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- attack connections -----------------------------------------------------------------------


@dataclass(slots=True)
class ConnResult:
    """What happened to one attack connection."""

    outcome: str = "not started"  # "answered", "refused by server", "connect failed", ...
    status: int | None = None
    sent: int = 0
    open_s: float = 0.0  # how long it stayed open
    writer: asyncio.StreamWriter | None = None
    aborted: bool = False  # closed by us
    server_closed: bool = False  # closed by the server after its answer
    watch: asyncio.Task[None] | None = None


def amz_date() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def forged_authorization(key: str) -> list[tuple[str, str]]:
    """A well-formed SigV4 header set whose signature is wrong (or whose key is unknown)."""
    date = amz_date()
    scope = f"{date[:8]}/{REGION}/kinesisvideo/aws4_request"
    auth = (
        f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={'0' * 64}"
    )
    return [("X-Amz-Date", date), ("Authorization", auth)]


def signed_headers(port: int, path: str, body: bytes) -> list[tuple[str, str]]:
    """Correct SigV4 headers (botocore) for a control-plane POST of ``body``."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=f"http://{HOST}:{port}{path}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(request)
    return [(k, v) for k, v in request.headers.items() if k.lower() != "content-type"]


def request_head(port: int, path: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_status(reader: asyncio.StreamReader) -> int | None:
    """The status of the server's answer; None if it closed without one."""
    try:
        line = await reader.readline()
    except (ConnectionError, OSError):
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
    return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class Target:
    """Where attack connections go, and the loopback address they come from."""

    port: int
    path: str
    source: str


def usable_source(address: str) -> str:
    """``address`` if this host can connect from it to ``HOST``, else ``HOST``."""
    with socket.socket() as listener, socket.socket() as s:
        listener.bind((HOST, 0))
        listener.listen(1)
        try:
            s.bind((address, 0))
            s.connect(listener.getsockname())
        except OSError:
            return HOST
    return address


async def open_conn(target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
    """A connection, or why there is none."""
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(HOST, target.port, local_addr=(target.source, 0)),
            CONNECT_TIMEOUT_S,
        )
    except TimeoutError:
        return "connect timed out"
    except ConnectionRefusedError:
        return "refused by server"
    except OSError as err:
        return f"connect failed ({err.strerror or type(err).__name__})"


def abort(res: ConnResult) -> None:
    """Close an attack connection from our side (a reset: nothing lingers)."""
    res.aborted = True
    if res.writer is not None and not res.writer.transport.is_closing():
        res.writer.transport.abort()


async def watch_eof(reader: asyncio.StreamReader, res: ConnResult) -> None:
    """Drain what the server sends after its answer; note when it closes the connection."""
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass
    if not res.aborted:
        res.server_closed = True


async def flood_one(
    target: Target, variant: str, body_len: int, stop: Callable[[], bool], limit_s: float
) -> ConnResult:
    """One memory-attack connection: a big body, streamed until done or answered."""
    res = ConnResult()
    t0 = time.monotonic()
    conn = await open_conn(target)
    if isinstance(conn, str):
        res.outcome = conn
        return res
    reader, writer = conn
    res.writer = writer
    headers: list[tuple[str, str]] = []
    if variant == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(body_len)))
    if variant == "unknown-key":
        headers += forged_authorization("AKIDUNKNOWNUNKNOWN00")
    elif variant == "bad-signature":
        headers += forged_authorization(ACCESS_KEY)
    answer = asyncio.create_task(read_status(reader))
    cut = False
    try:
        writer.write(request_head(target.port, target.path, headers))
        await writer.drain()
        remaining = body_len
        while remaining and not answer.done() and not stop():
            n = min(remaining, len(BUF))
            if variant == "chunked":
                writer.write(b"%x\r\n" % n)
                writer.write(BUF[:n])
                writer.write(b"\r\n")
            else:
                writer.write(BUF[:n])
            await writer.drain()
            res.sent += n
            remaining -= n
        if variant == "chunked" and not remaining and not answer.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        cut = True  # reset or closed under us; the answer may still be readable
    wait = max(0.1, limit_s - (time.monotonic() - t0))
    try:
        res.status = await asyncio.wait_for(answer, 1.0 if stop() else wait)
    except TimeoutError:
        res.status = None
        res.outcome = "stopped (RSS limit)" if stop() else "no answer (timed out)"
    else:
        if res.status is not None:
            res.outcome = "answered"
        else:
            res.outcome = "refused by server"
    if cut and res.status is None and res.outcome != "stopped (RSS limit)":
        res.outcome = "refused by server"
    if res.status is not None:
        res.watch = asyncio.create_task(watch_eof(reader, res))
    res.open_s = time.monotonic() - t0
    return res


@dataclass(slots=True)
class SlowState:
    """Shared by one slow phase's connections."""

    gate: asyncio.Semaphore  # connects in flight (not connections held)
    tried: int = 0  # connects attempted so far
    hold_end: float = float("inf")  # set once every connect has been tried


async def slow_one(
    target: Target,
    kind: str,
    trickle: float,
    body_headers: list[tuple[str, str]],
    state: SlowState,
) -> ConnResult:
    """One slow connection, kept open (trickling bytes) until the hold ends or the server
    closes it."""
    res = ConnResult()
    async with state.gate:
        t0 = time.monotonic()
        conn = await open_conn(target)
        state.tried += 1
    if isinstance(conn, str):
        res.outcome = conn
        return res
    reader, writer = conn
    res.writer = writer
    res.outcome = "open at the end"
    answer = asyncio.create_task(read_status(reader))
    try:
        if kind == "slow-header":
            head = f"POST {target.path} HTTP/1.1\r\nHost: {HOST}:{target.port}\r\nX-Slow"
            writer.write(head.encode())
        elif kind == "slow-body":
            writer.write(request_head(target.port, target.path, body_headers))
        await writer.drain()
        while True:
            left = state.hold_end - time.monotonic()
            if left <= 0:
                break
            done, _ = await asyncio.wait({answer}, timeout=min(left, trickle))
            if done:
                break
            if kind == "slow-header":
                writer.write(b"a")
            elif kind == "slow-body":
                writer.write(b" ")
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    if not answer.done():
        # closed under us while writing: give a reset or an answer a moment to land
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(answer), 0.05)
    res.open_s = time.monotonic() - t0
    if answer.done():
        res.status = answer.result()
        res.outcome = "closed by server"
    else:
        answer.cancel()
    return res


def describe_outcomes(results: list[ConnResult]) -> str:
    """``answered 403 ×8 after 60.0 MiB sent`` style summary of attack connections."""
    groups: dict[str, list[ConnResult]] = {}
    for r in results:
        key = r.outcome
        if r.outcome == "answered":
            key = f"answered {r.status}" + (", then closed" if r.server_closed else "")
        elif r.status is not None:
            key = f"{r.outcome} with {r.status}"
        groups.setdefault(key, []).append(r)
    parts = []
    for key, rs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        text = f"{key} ×{len(rs)}"
        if any(r.sent for r in rs):
            text += f" after {sum(r.sent for r in rs) / len(rs) / MIB:.1f} MiB sent"
        elif key.startswith("closed by server"):
            times = sorted(r.open_s for r in rs)
            text += f" (median {times[len(times) // 2]:.1f} s)"
        parts.append(text)
    return ", ".join(parts) or "–"


# --- phases -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    """One row of the table."""

    name: str
    attack: str
    outcome: str
    seconds: float
    rss_mb: tuple[float, float, float]  # before, peak, after
    fds: tuple[int, int, int]
    legit: dict[str, Any]
    tracebacks: int
    errors: dict[str, int] = field(default_factory=dict)


COLUMNS = (
    "phase",
    "attack",
    "attack connections",
    "s",
    "server RSS MB before → peak → after",
    "server fds before → peak → after",
    "legit req",
    "p50 ms",
    "p99 ms",
    "max ms",
    "failed",
    "timed out",
    "tracebacks",
)


def table_header() -> str:
    return "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * 2 + "---|" + "---:|" * 10


def table_row(p: Phase) -> str:
    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f}"

    legit = p.legit
    cells = [
        p.name,
        p.attack,
        p.outcome,
        f"{p.seconds:.1f}",
        " → ".join(f"{v:.0f}" for v in p.rss_mb),
        " → ".join(str(v) for v in p.fds),
        str(legit["requests"]),
        ms(legit["p50_ms"]),
        ms(legit["p99_ms"]),
        ms(legit["max_ms"]),
        str(legit["failed"]),
        str(legit["timeouts"]),
        str(p.tracebacks),
    ]
    return "| " + " | ".join(cells) + " |"


class ServerExited(Exception):
    """The server process ended during a phase: the rest of that attack family is skipped."""


class Run:
    """One benchmark run: the data dir, the port, the server, the legitimate client."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.dir = Path(tempfile.mkdtemp(prefix="bench-attack-"))
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.target = Target(self.port, args.path, usable_source(args.attacker_address))
        self.server: Server | None = None
        self.sampler: Sampler | None = None
        self.legit: Legit | None = None
        self.phases: list[Phase] = []
        self.held: list[ConnResult] = []  # attack connections kept open across phases
        self.starts = 0

    def emit(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def start_server(self, nofile: int) -> None:
        await self.stop_server()
        self.starts += 1
        log = self.dir / f"server-{self.starts}.log"
        data = self.dir / "data"
        if self.legit is None:  # its imports overlap the server's start; it retries
            self.legit = Legit(
                self.url,
                self.dir / "legit.txt",
                self.args.legit_interval,
                self.args.legit_timeout,
            )
        self.server = await asyncio.to_thread(Server, data, self.port, log, nofile)
        self.sampler = Sampler(self.server.pid, self.args.max_rss_mb)
        self.sampler.start()
        t = time.monotonic()
        if not await self.legit.wait_ok_after(t, 30):
            raise RuntimeError("the legitimate client gets no answer from the server")

    async def stop_server(self) -> None:
        if self.sampler is not None:
            await self.sampler.stop()
            self.sampler = None
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
            self.server = None

    async def close(self) -> None:
        await self.stop_server()
        if self.legit is not None:
            self.legit.stop()
        if self.args.keep:
            self.emit(f"server logs and legitimate-client samples kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    async def phase(
        self,
        name: str,
        attack: str,
        body: Callable[[], Any],
        *,
        close: bool = True,
        outcome: str | None = None,
    ) -> Phase:
        """Measure around ``body`` (a coroutine function returning the attack connections):
        before, the peak during, and ``--settle`` s after; its connections are closed at
        the end of the attack, or, with ``close=False``, held (as keep-alive clients do)
        until ``release``."""
        assert self.server is not None and self.sampler is not None and self.legit is not None
        log_start = self.server.log_size()
        rss0, fds0 = self.sampler.reset()
        t0 = time.monotonic()
        results: list[ConnResult] = await body()
        t1 = time.monotonic()
        for r in results:
            if close:
                abort(r)
            else:
                self.held.append(r)
        samples = await self.legit.window(t0, t1)
        rss_peak, fds_peak = self.sampler.peak_rss, self.sampler.peak_fds
        await asyncio.sleep(max(0.0, self.args.settle - (time.monotonic() - t1)))
        rss1, fds1 = self.sampler.sample()
        tracebacks, errors = server_errors(self.server.log_text(log_start, self.server.log_size()))
        phase = Phase(
            name=name,
            attack=attack,
            outcome=outcome or describe_outcomes(results),
            seconds=t1 - t0,
            rss_mb=(rss0, max(rss_peak, rss0, rss1), rss1),
            fds=(fds0, max(fds_peak, fds0, fds1), fds1),
            legit=legit_summary(samples),
            tracebacks=tracebacks,
            errors=dict(errors),
        )
        code = self.server.proc.poll()
        if code is not None:
            phase.outcome += f"; the server exited (status {code})"
        self.phases.append(phase)
        self.emit(table_row(phase))
        if code is not None:
            raise ServerExited(f"{name}: the server exited (status {code})")
        return phase

    async def quiet(self, name: str) -> Phase:
        async def idle() -> list[ConnResult]:
            await asyncio.sleep(self.args.baseline)
            return []

        return await self.phase(name, "none", idle)

    # --- item 1 ---

    async def memory(self) -> None:
        a = self.args
        body_len = int(a.body_mib * MIB)
        await self.start_server(0)
        await self.quiet("baseline")
        keep = not a.close_each_round
        for variant in a.variants:
            for rnd in range(1, a.rounds + 1):

                async def attack(variant: str = variant) -> list[ConnResult]:
                    assert self.sampler is not None
                    sampler = self.sampler
                    tasks = [
                        flood_one(
                            self.target,
                            variant,
                            body_len,
                            lambda: sampler.over_limit,
                            a.conn_limit,
                        )
                        for _ in range(a.conns)
                    ]
                    return list(await asyncio.gather(*tasks))

                await self.phase(
                    f"memory: {variant}, round {rnd}/{a.rounds}",
                    f"{a.conns} × {a.body_mib:g} MiB POST {a.path}"
                    + (", kept open" if keep else ""),
                    attack,
                    close=not keep,
                )
            if keep:
                await self.release(f"memory: {variant}, connections closed")
        await self.quiet("after the memory attacks")

    async def release(self, name: str) -> Phase:
        """A phase that closes the held attack connections."""
        held, self.held = self.held, []
        open_ = [r for r in held if r.writer is not None]
        gone = sum(r.server_closed for r in open_)

        async def close() -> list[ConnResult]:
            for r in held:
                abort(r)
            await asyncio.sleep(self.args.settle)  # the legitimate client's window
            return []

        return await self.phase(
            name,
            f"close the {len(open_)} connections kept open",
            close,
            outcome=f"{gone} of {len(open_)} had been closed by the server",
        )

    # --- item 3 ---

    async def slow(self) -> None:
        a = self.args
        await self.start_server(a.nofile)
        limit = f"RLIMIT_NOFILE {a.nofile}" if a.nofile else "default RLIMIT_NOFILE"
        await self.quiet(f"baseline ({limit})")
        body = b" " * SLOW_BODY_LEN
        body_headers = signed_headers(self.port, a.path, body)
        body_headers.append(("Content-Length", str(len(body))))
        for kind in a.slow_kinds:

            async def attack(kind: str = kind) -> list[ConnResult]:
                state = SlowState(asyncio.Semaphore(512))
                tasks = [
                    asyncio.create_task(slow_one(self.target, kind, a.trickle, body_headers, state))
                    for _ in range(a.slow_conns)
                ]
                while state.tried < len(tasks):  # the hold starts once all are tried
                    await asyncio.sleep(0.05)
                state.hold_end = time.monotonic() + a.hold
                return list(await asyncio.gather(*tasks))

            await self.phase(
                f"slow: {kind}",
                f"{a.slow_conns} {kind} conns, {a.hold:g} s hold",
                attack,
            )
        await self.quiet(f"after the slow attacks ({limit})")


async def run_all(args: argparse.Namespace, out: TextIO) -> list[Phase]:
    run = Run(args, out)
    notes: list[str] = []
    run.emit(
        f"callstream attack bench: Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{args.profile} profile, server {run.url}, attacker from {run.target.source}"
    )
    run.emit("")
    run.emit(table_header())
    try:
        for family, attack in (("memory", run.memory), ("slow", run.slow)):
            if args.attack in (family, "all"):
                try:
                    await attack()
                except ServerExited as err:
                    for r in run.held:
                        abort(r)
                    run.held.clear()
                    notes.append(f"- {err}; the rest of the {family} attack was skipped")
    finally:
        await run.close()
    run.emit("")
    for note in notes:
        run.emit(note)
    for p in run.phases:
        if p.errors or p.tracebacks:
            top = sorted(p.errors.items(), key=lambda kv: -kv[1])[:3]
            lines = "; ".join(f"{n} × {line}" for line, n in top) or "–"
            run.emit(f"- {p.name}: {p.tracebacks} tracebacks; {lines}")
    return run.phases


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--attack", choices=["memory", "slow", "all"], default="all")
    p.add_argument("--quick", action="store_true", help="small numbers, about 40 s")
    p.add_argument("--tiny", action="store_true", help="smallest numbers (tests)")
    p.add_argument("--conns", type=int, help="memory: concurrent connections (8)")
    p.add_argument("--body-mib", type=float, help="memory: body per connection (60)")
    p.add_argument("--rounds", type=int, help="memory: rounds per variant (3)")
    p.add_argument("--variants", help=f"memory: comma list of {','.join(MEMORY_VARIANTS)}")
    p.add_argument("--path", default="/listStreams", help="control-plane path attacked")
    p.add_argument(
        "--attacker-address",
        default="127.0.0.2",
        help="loopback address the attack comes from (the legitimate client uses 127.0.0.1)",
    )
    p.add_argument("--max-rss-mb", type=float, default=4000, help="stop sending above this")
    p.add_argument(
        "--close-each-round",
        action="store_true",
        help="memory: close the connections after each round (default: keep them open, as "
        "keep-alive clients do, until the variant's last round)",
    )
    p.add_argument("--conn-limit", type=float, default=120, help="memory: s per connection")
    p.add_argument("--slow-conns", type=int, help="slow: connections per kind (2000)")
    p.add_argument("--slow-kinds", help=f"slow: comma list of {','.join(SLOW_KINDS)}")
    p.add_argument("--hold", type=float, help="slow: seconds to hold them (20)")
    p.add_argument("--trickle", type=float, help="slow: seconds between trickled bytes (2)")
    p.add_argument("--nofile", type=int, help="slow: server descriptor limit, 0 = as is (1024)")
    p.add_argument("--baseline", type=float, help="seconds of the no-attack phases (5)")
    p.add_argument("--settle", type=float, help="seconds after an attack to measure (3)")
    p.add_argument("--legit-interval", type=float, default=0.1)
    p.add_argument("--legit-timeout", type=float, help="legitimate client timeouts (5)")
    p.add_argument("--json", help="write the phases to this file")
    p.add_argument("--keep", action="store_true", help="keep the server logs (path printed)")
    p.add_argument("--legit-client", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.profile = "tiny" if args.tiny else "quick" if args.quick else "full"
    defaults: dict[str, Any] = dict(
        variants=",".join(MEMORY_VARIANTS), slow_kinds=",".join(SLOW_KINDS)
    )
    defaults.update(PROFILES[args.profile])
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.variants = _choices(p, "--variants", args.variants, MEMORY_VARIANTS)
    args.slow_kinds = _choices(p, "--slow-kinds", args.slow_kinds, SLOW_KINDS)
    return args


def _choices(
    p: argparse.ArgumentParser, flag: str, value: str, allowed: tuple[str, ...]
) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        p.error(f"{flag}: expected a comma list of {', '.join(allowed)}")
    return items


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    if args.legit_client:
        url, path = args.legit_client
        return legit_client(url, path, args.legit_interval, args.legit_timeout)
    if not sys.platform.startswith("linux"):
        print("bench_attack.py reads /proc: Linux only", file=sys.stderr)
        return 1
    from callstream.api.server import raise_fd_limit  # not in the legitimate client

    have = raise_fd_limit(args.slow_conns + 256)  # the slow attack holds one per connection
    if args.attack != "memory" and have < args.slow_conns + 64:
        args.slow_conns = max(1, have - 64)
        print(
            f"descriptor limit {have}: --slow-conns lowered to {args.slow_conns}", file=sys.stderr
        )
    phases = asyncio.run(run_all(args, out or sys.stdout))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(p) for p in phases], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
