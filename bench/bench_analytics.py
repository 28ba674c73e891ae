"""Live call analytics benchmark: N concurrent two-channel calls transcribed in real time.

The server is ``callstream serve`` in its own process (fresh data dir per N, analytics on,
``--asr-workers`` recogniser workers, Whisper tiny.en). The calls are Connect contacts placed
over HTTP in real time by ``callstream.flows.call.place_call`` (what ``callstream call``
runs), all from one load-generator process so the load generator takes little of the CPU
the server is measured on; each sends its 20 ms frames by PutMedia as they are played: a conversation of real 8 kHz telephone speech (Debian
asterisk-core-sounds-en-wav, each call its own prompts), turns alternating between the
caller and the agent. Calls start ``--stagger`` s apart.

Measured per run:

* **latency**: for every final transcript segment, the bus ``Time`` of its
  ``TranscriptSegment`` event minus the moment the utterance's last word was played: the
  stream's StartTimestamp + the segment's EndTime - 0.2 s of post-roll, plus how late the
  call's media clock runs behind its whole-second InitiationTimestamp (the smallest delay
  between a ``[mm:ss.fff]`` progress line's media time and when it was printed).
  ``callstream call`` sends each 20 ms frame when it is played. p50 / p95 / max;
* **finals**: final segments received / utterances spoken (nothing may be lost) and the
  WER per channel (jiwer after whisper-normalizer) against the script;
* **backlog**: the largest recogniser backlog (seconds of audio waiting) and the largest
  "seconds behind live" of any call, sampled every second from ``GET
  /callstream/analytics``; **catch-up**: from the last hang-up to the last call's END;
* **server CPU**: user+system seconds of the server process per wall second.

Baseline, same run, same audio: the recogniser alone (the same ``WhisperRecognizer``
settings, one thread per worker like the server's), decoding every utterance of the
largest run back to back: per-utterance decode time p50 / p95 and its real-time factor;
``capacity`` = workers / RTF is the number of channels of continuous speech the engine
could keep up with (a two-party call has about one channel speaking at a time).

    python bench/bench_analytics.py --calls 4,8,12 --turns 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "analytics"))

from call_speech import STREAMING_FLOW as FLOW  # noqa: E402
from call_speech import conversation, wer, write_wav  # noqa: E402

KEY, SECRET = "bench", "bench-secret"
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
POST_ROLL_S = 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, method: str = "GET") -> Any:
    from botocore.credentials import Credentials

    from callstream.cli import signed_request

    status, data = signed_request(
        method, url, region="us-east-1", credentials=Credentials(KEY, SECRET)
    )
    if status != 200:
        raise RuntimeError(f"{url}: HTTP {status} {data[:200]!r}")
    return json.loads(data)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    calls: int
    latencies: list[float] = field(default_factory=list)
    finals: int = 0
    spoken: int = 0
    wer_caller: list[float] = field(default_factory=list)
    wer_agent: list[float] = field(default_factory=list)
    max_backlog: float = 0.0
    max_behind: float = 0.0
    catch_up: float = 0.0
    cpu: float = 0.0
    utterances: list[np.ndarray] = field(default_factory=list)


def run(n: int, args: argparse.Namespace, work: Path) -> Run:
    data = work / f"data-{n}"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "callstream.cli", "serve", "--data-dir", str(data), "--port",
         str(port), "--no-sip", "--asr-workers", str(args.workers)],
        env={**ENV, "CALLSTREAM_ACCESS_KEY_ID": KEY, "CALLSTREAM_SECRET_ACCESS_KEY": SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    result = Run(n)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(url + "/callstream/analytics").get("Pool"):
                    break
            except (RuntimeError, OSError, Exception):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        flow = work / "flow.json"
        flow.write_text(json.dumps(FLOW))
        scripts = []
        wavs = []
        for i in range(n):
            talk = conversation(args.turns, seed=100 + i, gap_s=1.0)
            scripts.append(talk)
            result.spoken += args.turns
            wavs.append(
                (
                    write_wav(work / f"c{n}-{i}.wav", talk.caller),
                    write_wav(work / f"a{n}-{i}.wav", talk.agent),
                )
            )
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                try:
                    status = request(url + "/callstream/analytics")
                except Exception:
                    continue
                pool = status.get("Pool") or {}
                result.max_backlog = max(result.max_backlog, pool.get("backlog_seconds", 0.0))
                for call in status["Calls"]:
                    result.max_behind = max(result.max_behind, call["SecondsBehindLive"])

        sampler = threading.Thread(target=sample, daemon=True)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        sampler.start()
        progress: list[list[tuple[float, float]]] = [[] for _ in range(n)]
        placed = asyncio.run(_place_all(url, flow, wavs, progress, args.stagger))
        contacts = [r.contact_id for r in placed]
        # media time lags the wall clock by how late each call's clock started after its
        # whole-second InitiationTimestamp: the smallest progress-line delay tells
        lags = [
            min(wall - (r.initiation_timestamp_ms / 1000 + media) for wall, media in lines)
            for r, lines in zip(placed, progress, strict=True)
        ]
        hung_up = time.monotonic()
        for contact in contacts:
            while "Call" not in request(f"{url}/callstream/calls/{contact}"):
                time.sleep(0.2)
        result.catch_up = time.monotonic() - hung_up
        result.cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - t0)
        stop.set()
        sampler.join()
        for contact, talk, lag in zip(contacts, scripts, lags, strict=True):
            found = request(f"{url}/callstream/calls/{contact}")["Call"]
            segs = found["Segments"]
            result.finals += len(segs)
            result.wer_caller.append(
                wer(talk.caller_text, [s["Transcript"] for s in segs if s["Channel"] == "CALLER"])
            )
            result.wer_agent.append(
                wer(talk.agent_text, [s["Transcript"] for s in segs if s["Channel"] == "AGENT"])
            )
            events = request(
                f"{url}/callstream/events?type=TranscriptSegment&call={contact}&limit=1000"
            )
            started = request(
                f"{url}/callstream/events?type=MediaStreamingStarted&contact={contact}"
            )["Events"][0]["StartTimestamp"]
            for event in events["Events"]:
                if event["IsPartial"] or not event["Transcript"]:
                    continue
                spoken_end = started + (event["EndTime"] - POST_ROLL_S + lag) * 1000
                result.latencies.append((event["Time"] - spoken_end) / 1000)
            for prompt_pcm in (talk.caller, talk.agent):
                result.utterances.extend(_voiced(prompt_pcm))
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
    return result


async def _place_all(
    url: str,
    flow: Path,
    wavs: list[tuple[Path, Path]],
    progress: list[list[tuple[float, float]]],
    stagger: float,
) -> list[Any]:
    """Place every call from this one process (as ``callstream call`` does, without a
    Python interpreter per call eating the CPU the server is measured on)."""
    from botocore.credentials import Credentials

    from callstream.flows.call import place_call

    def recorder(lines: list[tuple[float, float]]) -> Any:
        def on_event(line: str) -> None:
            m = re.match(r"\[(\d+):(\d+\.\d+)\]", line)
            if m:
                lines.append((time.time(), int(m[1]) * 60 + float(m[2])))

        return on_event

    tasks = []
    for (customer, agent), lines in zip(wavs, progress, strict=True):
        tasks.append(
            asyncio.create_task(
                place_call(
                    flow=flow,
                    customer_audio=customer,
                    agent_audio=agent,
                    endpoint_url=url,
                    credentials=Credentials(KEY, SECRET),
                    on_event=recorder(lines),
                )
            )
        )
        await asyncio.sleep(stagger)
    return list(await asyncio.gather(*tasks))


def _voiced(track: np.ndarray) -> list[np.ndarray]:
    """The non-silent stretches of a script track (the utterances as spoken)."""
    loud = np.abs(track) > 0
    out: list[np.ndarray] = []
    start = None
    quiet = 0
    for i in range(0, len(track), 160):
        block = bool(loud[i : i + 160].any())
        if block and start is None:
            start, quiet = i, 0
        elif not block and start is not None:
            quiet += 1
            if quiet >= 25:
                out.append(track[start : i - quiet * 160 + 160])
                start = None
    if start is not None:
        out.append(track[start:])
    return out


def baseline(utterances: list[np.ndarray], workers: int) -> tuple[list[float], float]:
    """The engine alone: decode times per utterance (one thread) and the RTF."""
    from callstream.analytics.asr import open_recognizer

    recognizer = open_recognizer("whisper", workers=1, threads=1)
    recognizer.recognize(utterances[0].tobytes())  # warm up
    times = []
    audio = 0.0
    for pcm in utterances:
        t = time.perf_counter()
        recognizer.recognize(pcm.tobytes())
        times.append(time.perf_counter() - t)
        audio += len(pcm) / 8000
    return times, sum(times) / audio


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="4,8,12", help="comma-separated call counts")
    parser.add_argument("--turns", type=int, default=8, help="turns per call")
    parser.add_argument("--workers", type=int, default=2, help="--asr-workers of the server")
    parser.add_argument("--stagger", type=float, default=0.7, help="seconds between call starts")
    args = parser.parse_args()
    counts = [int(x) for x in args.calls.split(",")]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            print(f"running {n} calls ...", file=sys.stderr, flush=True)
            runs.append(run(n, args, Path(tmp)))
    times, rtf = baseline(runs[-1].utterances, args.workers)
    print()
    print(f"Live call analytics, {os.cpu_count()} cores, {args.workers} recogniser workers, "
          f"Whisper tiny.en, {args.turns} turns per call")  # fmt: skip
    print()
    head = (
        "| calls | finals / spoken | WER caller | WER agent | latency p50 | p95 | max |"
        " max backlog | max behind | catch-up | server CPU |"
    )
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for r in runs:
        print(
            f"| {r.calls} | {r.finals} / {r.spoken} | {statistics.mean(r.wer_caller):.1%} |"
            f" {statistics.mean(r.wer_agent):.1%} | {pct(r.latencies, 50):.2f} s |"
            f" {pct(r.latencies, 95):.2f} s | {max(r.latencies, default=float('nan')):.2f} s |"
            f" {r.max_backlog:.1f} s | {r.max_behind:.1f} s | {r.catch_up:.1f} s |"
            f" {r.cpu:.0%} |"
        )
    print()
    print("| baseline: engine alone, same audio | utterances | decode p50 | p95 | RTF | capacity |")
    print("|---|---|---|---|---|---|")
    print(
        f"| Whisper tiny.en, 1 thread | {len(times)} | {pct(times, 50) * 1000:.0f} ms |"
        f" {pct(times, 95) * 1000:.0f} ms | {rtf:.3f} | {args.workers / rtf:.0f} channels |"
    )


if __name__ == "__main__":
    main()
