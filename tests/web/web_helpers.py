"""Helpers of the web UI tests: calls seeded straight into a server's call store (rows,
LCA event logs, exports and real stereo recordings, as the analytics service writes
them), live events published on its bus, streams filled through PutMedia, and a
headless Chromium driven by playwright."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callstream.analytics.callstore import CallRow, CallStore
from callstream.analytics.categories import parse_rules
from callstream.analytics.commands import abuse_flags, category_matches
from callstream.analytics.report import analyze_transcript
from callstream.analytics.session import lca_record
from callstream.analytics.transcript import parse_transcript
from callstream.api.server import ServerThread
from callstream.events.types import Event

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("CALLSTREAM_UI_ARTIFACTS") or tempfile.gettempdir()) / (
    "callstream-ui-artifacts"
)
RATE = 8000

SCRIPT = [
    ("CALLER", 0.5, 4.0, "Hello, I have been on hold for an hour and my internet is still not working."),
    ("AGENT", 4.6, 7.4, "I am sorry to hear that, let me check your account right away."),
    ("CALLER", 8.0, 11.0, "Shut up you stupid idiot, I know where you live."),
    ("AGENT", 11.6, 14.2, "Please stay calm, I will have an engineer fix this today."),
    ("CALLER", 14.8, 17.5, "Thank you, that is great, I appreciate your help."),
]  # fmt: skip
RULES = [{"name": "Outage", "phrases": ["not working"]}, {"name": "Escalation", "phrases": ["engineer"]}]  # fmt: skip


def need_browser() -> None:
    """Skip unless Debian's chromium and the playwright package are installed."""
    if not CHROMIUM.is_file():
        pytest.skip("needs Debian's chromium (apt-get install chromium; scripts/setup-dev.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("needs the playwright package (pip install playwright; pyproject dev extras)")


def artifact(name: str) -> Path:
    """Where a screenshot or other test artifact goes (kept after the run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


# --- seeded calls ---------------------------------------------------------------------------
def stereo_recording(
    path: Path, script: list[tuple[str, float, float, str]], seconds: float
) -> Path:
    """A real 8 kHz stereo WAV: a tone on the speaker's channel during each turn (caller
    left, agent right), silence elsewhere."""
    n = int(seconds * RATE)
    frames = np.zeros((n, 2), "<i2")
    t = np.arange(n) / RATE
    for channel, start, end, _ in script:
        col = 0 if channel == "CALLER" else 1
        lo, hi = int(start * RATE), min(n, int(end * RATE))
        tone = 440.0 if col == 0 else 660.0
        frames[lo:hi, col] = (6000 * np.sin(2 * np.pi * tone * t[lo:hi])).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames.tobytes())
    return path


def _analysis(call_id: str, script: list[tuple[str, float, float, str]]) -> dict[str, Any]:
    lines = [
        json.dumps(
            {
                "SegmentId": f"ch_{0 if ch == 'CALLER' else 1}-{start:.3f}",
                "Channel": ch,
                "StartTime": start,
                "EndTime": end,
                "Transcript": text,
                "IsPartial": False,
            }
        )
        for ch, start, end, text in script
    ]
    segments = parse_transcript("\n".join(lines))
    rules = parse_rules(RULES)
    return analyze_transcript(
        segments, call_id, flaggers=[abuse_flags], categorizers=[category_matches(rules)]
    )


def segment_event(call_id: str, seg: dict[str, Any], *, partial: bool = False) -> Event:
    """A TranscriptSegment as the analytics service publishes it."""
    fields: dict[str, Any] = {
        "CallId": call_id,
        "SegmentId": seg["SegmentId"],
        "Channel": seg["Channel"],
        "StartTime": seg["StartTime"],
        "EndTime": seg["EndTime"],
        "Transcript": seg["Transcript"],
        "IsPartial": partial,
    }
    if not partial:
        fields.update(
            Sentiment=seg.get("Sentiment"),
            SentimentScore=seg.get("SentimentScore"),
            SentimentWeighted=seg.get("SentimentWeighted"),
            Confidence=0.9,
            Issues=[f for f in seg.get("Flags", []) if f != "ABUSIVE_CALLER"] or None,
        )
    return Event.of("TranscriptSegment", **{k: v for k, v in fields.items() if v is not None})


def call_events(call_id: str, export: dict[str, Any], started_ms: int) -> list[Event]:
    """Every event of a finished call, in the order the service publishes them."""
    events = [
        Event.of(
            "CallAnalyticsStarted",
            CallId=call_id,
            Source="CONNECT",
            CreatedAt=started_ms,
            ContactId=call_id,
            CustomerPhoneNumber="+15550100",
        )
    ]
    for seg in export["Segments"]:
        events.append(segment_event(call_id, seg))
        for cat in export["Categories"]:
            if cat["SegmentId"] == seg["SegmentId"]:
                events.append(category_event(call_id, cat))
        for flag in export["Flags"]:
            if flag["Type"] == "ABUSIVE_CALLER" and seg["SegmentId"] == flag["SegmentIds"][-1]:
                events.append(alert_event(call_id, flag))
    events.append(
        Event.of(
            "CallAnalyticsEnded",
            CallId=call_id,
            Status="ENDED",
            DurationSeconds=export["Summary"]["DurationSeconds"],
        )
    )
    return events


def category_event(call_id: str, cat: dict[str, Any]) -> Event:
    return Event.of(
        "CategoryMatched",
        CallId=call_id,
        MatchedCategories=[cat["Category"]],
        MatchedDetails={
            cat["Category"]: {
                "TimestampRanges": [
                    {
                        "BeginOffsetMillis": round(cat["StartTime"] * 1000),
                        "EndOffsetMillis": round(cat["EndTime"] * 1000),
                    }
                ]
            }
        },
    )


def alert_event(call_id: str, flag: dict[str, Any]) -> Event:
    return Event.of(
        "CallAlert",
        CallId=call_id,
        AlertType="ABUSIVE_CALLER",
        SegmentIds=flag["SegmentIds"],
        Evidence=flag["Evidence"],
    )


def seed_call(
    calls: CallStore,
    call_id: str,
    started_ms: int,
    *,
    script: list[tuple[str, float, float, str]] = SCRIPT,
    agent: str = "agent-7",
    number: str = "+15550100",
) -> dict[str, Any]:
    """A finished call, written as the analytics service leaves one: its row, its
    ``events.jsonl``, its export and its recording. Returns the export."""
    export = _analysis(call_id, script)
    folder = calls.call_dir(call_id)
    with (folder / "events.jsonl").open("w", encoding="utf-8") as log:
        for event in call_events(call_id, export, started_ms):
            log.write(json.dumps(lca_record(event), ensure_ascii=False) + "\n")
    duration = max(end for _, _, end, _ in script) + 1.0
    stereo_recording(folder / "recording.wav", script, duration)
    export["Recording"] = "recording.wav"
    (folder / "call.json").write_text(json.dumps(export, indent=2), encoding="utf-8")
    sentiment = export["Sentiment"]
    calls.upsert(
        CallRow(
            call_id,
            "CONNECT",
            "ENDED",
            started_ms,
            started_ms + int(duration * 1000),
            ended_ms=started_ms + int(duration * 1000),
            contact_id=call_id,
            customer_number=number,
            system_number="+15559990000",
            agent_id=agent,
            duration_s=duration,
            segments=len(export["Segments"]),
            caller_sentiment=sentiment["CALLER"]["Overall"],
            agent_sentiment=sentiment["AGENT"]["Overall"],
            caller_trend=sentiment["CALLER"]["Trend"],
            agent_trend=sentiment["AGENT"]["Trend"],
            categories=sorted({c["Category"] for c in export["Categories"]}),
            flags=sorted({f["Type"] for f in export["Flags"]}),
            summary=export["Summary"]["Text"],
        )
    )
    return export


def seed_many(calls: CallStore, count: int, newest_ms: int) -> None:
    """``count`` finished calls (rows only), one a minute back from ``newest_ms``."""
    for i in range(count):
        calls.upsert(
            CallRow(
                f"bulk-{i:05d}",
                "VOICE_CONNECTOR" if i % 4 == 0 else "CONNECT",
                "ENDED",
                newest_ms - i * 60_000,
                newest_ms - i * 60_000 + 90_000,
                ended_ms=newest_ms - i * 60_000 + 90_000,
                customer_number=f"+1555{i:07d}",
                agent_id=f"agent-{i % 37}",
                duration_s=30.0 + i % 300,
                segments=10,
                caller_sentiment=round((i % 11) / 2 - 2.5, 2),
                agent_sentiment=round((i % 7) / 2 - 1.0, 2),
                caller_trend=("UP", "DOWN", "FLAT")[i % 3],
                agent_trend=("FLAT", "UP", "DOWN")[i % 3],
                categories=["Billing"] if i % 3 == 0 else [],
                flags=["ABUSIVE_CALLER"] if i % 97 == 0 else [],
            )
        )


@dataclass
class LiveCall:
    """A call in progress, driven by the test: each step is published on the bus,
    logged and reflected in the row, as :class:`~callstream.analytics.session.CallSession`
    does."""

    server: ServerThread
    call_id: str
    started_ms: int
    row: CallRow = field(init=False)
    export: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        calls = self.server.state.calls
        assert calls is not None
        self.calls = calls
        self.export = _analysis(self.call_id, SCRIPT)
        self.row = CallRow(
            self.call_id,
            "CONNECT",
            "STARTED",
            self.started_ms,
            self.started_ms,
            contact_id=self.call_id,
            customer_number="+15550123",
        )
        self.log = (calls.call_dir(self.call_id) / "events.jsonl").open("a", encoding="utf-8")
        self.publish(
            Event.of(
                "CallAnalyticsStarted",
                CallId=self.call_id,
                Source="CONNECT",
                CreatedAt=self.started_ms,
                ContactId=self.call_id,
            )
        )

    def publish(self, event: Event) -> None:
        self.log.write(json.dumps(lca_record(event), ensure_ascii=False) + "\n")
        self.log.flush()
        self.row.updated_ms = int(time.time() * 1000)
        self.calls.upsert(self.row)
        self.server.state.events.publish(event)
        self.server.state.events.flush(5)

    def say(self, index: int, *, partial_first: bool = True) -> dict[str, Any]:
        """Turn ``index`` of the script: a partial (half the words), then the final."""
        seg = self.export["Segments"][index]
        self.row.status = "TRANSCRIBING"
        if partial_first:
            half = dict(seg, Transcript=" ".join(seg["Transcript"].split()[:4]))
            self.publish(segment_event(self.call_id, half, partial=True))
        self.row.segments += 1
        self.row.duration_s = seg["EndTime"]
        self.publish(segment_event(self.call_id, seg))
        for cat in self.export["Categories"]:
            if cat["SegmentId"] == seg["SegmentId"]:
                self.row.categories = sorted({*self.row.categories, cat["Category"]})
                self.publish(category_event(self.call_id, cat))
        return seg

    def line(self, channel: str, start: float, end: float, text: str) -> None:
        """A final segment outside the script (no analysis of its own)."""
        seg = {
            "SegmentId": f"ch_{0 if channel == 'CALLER' else 1}-{start:.3f}",
            "Channel": channel,
            "StartTime": start,
            "EndTime": end,
            "Transcript": text,
            "Sentiment": "NEUTRAL",
            "SentimentWeighted": 0.0,
        }
        self.row.segments += 1
        self.publish(segment_event(self.call_id, seg))

    def alert(self) -> None:
        (flag,) = [f for f in self.export["Flags"] if f["Type"] == "ABUSIVE_CALLER"]
        self.row.flags = ["ABUSIVE_CALLER"]
        self.publish(alert_event(self.call_id, flag))

    def end(self) -> None:
        folder = self.calls.call_dir(self.call_id)
        duration = max(end for _, _, end, _ in SCRIPT) + 1.0
        stereo_recording(folder / "recording.wav", SCRIPT, duration)
        (folder / "call.json").write_text(json.dumps(self.export), encoding="utf-8")
        sentiment = self.export["Sentiment"]
        self.row.status = "ENDED"
        self.row.ended_ms = self.started_ms + int(duration * 1000)
        self.row.duration_s = duration
        self.row.caller_sentiment = sentiment["CALLER"]["Overall"]
        self.row.agent_sentiment = sentiment["AGENT"]["Overall"]
        self.row.caller_trend = sentiment["CALLER"]["Trend"]
        self.row.agent_trend = sentiment["AGENT"]["Trend"]
        self.publish(
            Event.of(
                "CallAnalyticsEnded", CallId=self.call_id, Status="ENDED", DurationSeconds=duration
            )
        )
        self.log.close()


# --- streams --------------------------------------------------------------------------------
def put_audio(
    server: ServerThread,
    stream: str,
    wav: Path,
    start_ms: int,
    *,
    tags: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Upload a stereo WAV as a Connect-shaped stream from producer time ``start_ms``."""
    args = [
        sys.executable, "-m", "callstream.cli", "put-media", "--stream", stream,
        "--endpoint-url", server.url, "--wav", str(wav), "--start-timestamp", str(start_ms / 1000),
    ]  # fmt: skip
    for name, value in (tags or {}).items():
        args += ["--tag", f"{name}={value}"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --- HTTP without a browser -----------------------------------------------------------------
class Client:
    """A cookie-keeping HTTP client that does not follow redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )

    def request(
        self,
        path: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, headers=headers or {}, method=method
        )
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, _headers(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, _headers(err.headers), err.read()

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)


def _headers(message: Any) -> dict[str, str]:
    """Response headers as a dict; repeated ones (Set-Cookie) joined by newlines."""
    found: dict[str, str] = {}
    for name, value in message.items():
        found[name] = f"{found[name]}\n{value}" if name in found else value
    return found


def non_loopback_address() -> str | None:
    """An address of this machine other than loopback (None if it has none)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.123", 9))  # no packet is sent: this only picks a route
        address = str(s.getsockname()[0])
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    return None


# --- the browser ----------------------------------------------------------------------------
@dataclass
class Browser:
    """A headless Chromium; every page records console errors and page errors."""

    browser: Any
    errors: list[str] = field(default_factory=list)

    def page(self, *, width: int = 1400, height: int = 900) -> Any:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.on(
            "console",
            lambda msg: self.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        return page


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium (Debian's, through playwright's ``executable_path``) with a
    fresh profile."""
    need_browser()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="callstream-chromium-")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
                env={**os.environ, "HOME": profile},
            )
            try:
                yield Browser(browser)
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
