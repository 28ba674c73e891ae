"""One call being analysed: its stream readers, its analysis, its files.

A :class:`CallSession` reads each of the call's streams through the store's in-process
reader (block by block as the producer writes; after a read ends it continues after the
last whole fragment, so there is no 45-minute cut), feeds the channels to its
:class:`~callstream.analytics.call.CallAnalysis`, sends utterances to the service's
recogniser pool, and publishes what comes back: to the call-event bus, to the call's
``events.jsonl`` (LCA's shape, :func:`lca_record`) and to its row in the call list. When
its streams end it finishes the utterances still waiting (even if the pool is behind),
then writes the stereo recording (:func:`write_stereo`), the export and the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from callstream.analytics.call import CallAnalysis, UtteranceJob
from callstream.analytics.callstore import CallRow, apply_event
from callstream.analytics.pool import AsrJob
from callstream.analytics.sources import ChannelFeed, SourceError
from callstream.events.bus import EventBusError
from callstream.events.types import EVENT_TYPES, Event
from callstream.kvs.selectors import StartSelector
from callstream.store.base import StoreError, StreamRecord
from callstream.store.reading import before

if TYPE_CHECKING:
    from callstream.analytics.service import CallAnalyticsService

__all__ = ["CallSession", "lca_record", "write_json", "write_stereo"]

log = logging.getLogger("callstream.analytics")

LEGS_FILE = "legs.json"
"""What a call reads (its streams, start fragments, roles), kept while it runs."""
_GRACE_S = 0.3
"""After a call's stop event (sent once its producer finished), how long the live reader
may still take data before the reader switches to draining what is stored."""


def lca_record(event: Event) -> dict[str, Any]:
    """An analytics event as a line of LCA's call data stream (``analytics-lca.md`` §3)."""
    spec = EVENT_TYPES.get(event.type)
    name = spec.lca if spec is not None and spec.lca else event.type
    created = datetime.fromtimestamp(event.time_ms / 1000, UTC).isoformat(timespec="milliseconds")
    return {"EventType": name, **event.fields, "CreatedAt": created.replace("+00:00", "Z")}


@dataclass(slots=True)
class _Leg:
    role: str | None  # None: the stream carries both channels (Connect)
    arn: str
    start_fragment: str | None
    tracks: Mapping[str, str]
    call_tags: Mapping[str, str]
    stop_fragment: str | None = None
    stopping: bool = False
    stop_at: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    feed: ChannelFeed | None = None


class CallSession:
    """One call being analysed: its readers, its analysis, its files."""

    def __init__(
        self,
        service: CallAnalyticsService,
        row: CallRow,
        origin_ms: int,
        *,
        swap: bool = False,
        channels: Mapping[str, Any] | None = None,
        resumed: bool = False,
    ) -> None:
        self.service = service
        self.row = row
        self.call_id = row.call_id
        self.origin_ms = origin_ms
        self.swap = swap
        self.analysis = CallAnalysis(
            row.call_id, service.config.settings, contact_id=row.contact_id
        )
        self.legs: list[_Leg] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()
        self.finishing = False
        self.channels = dict(channels or {})
        self._legs_wanted: list[dict[str, Any]] = []
        self._dir = service.calls.call_dir(row.call_id)
        # a resumed call is analysed again from its start: its old events and export go
        if resumed:
            (self._dir / "call.json").unlink(missing_ok=True)
        self._log = (self._dir / "events.jsonl").open("w" if resumed else "a", encoding="utf-8")
        self._raw: dict[str, BinaryIO] = {
            role: (self._dir / f"{role.lower()}.raw").open("wb") for role in ("CALLER", "AGENT")
        }
        self._sentiment: dict[str, list[float]] = {"CALLER": [], "AGENT": []}
        self._last_data = time.monotonic()

    # --- legs ----------------------------------------------------------------------------
    def add_leg(
        self,
        arn: str,
        start_fragment: str | None,
        *,
        role: str | None,
        tracks: Mapping[str, str],
        call_tags: Mapping[str, str],
    ) -> None:
        """Read ``arn`` from ``start_fragment`` (None: the earliest) into the call.

        The legs are also written to the call's ``legs.json``, so a server that stops
        during the call analyses it again from there when it starts (see
        :meth:`CallAnalyticsService.start`)."""
        if self.finishing:
            return
        self._legs_wanted.append(
            {
                "StreamARN": arn,
                "StartFragmentNumber": start_fragment,
                "Role": role,
                "Tracks": dict(tracks),
                "CallTags": dict(call_tags),
            }
        )
        write_json(
            self._dir / LEGS_FILE,
            {
                "OriginMs": self.origin_ms,
                "Swap": self.swap,
                "Channels": self.channels,
                "Legs": self._legs_wanted,
            },
        )
        if self.swap:
            tracks = {name: _other(r) for name, r in tracks.items()}
        leg = _Leg(role, arn, start_fragment, tracks, call_tags)
        self.legs.append(leg)
        leg.task = asyncio.create_task(self._read(leg), name=f"callstream-analytics-{arn}")

    def stop(self, arn: str | None = None, stop_fragment: str | None = None) -> None:
        """The call (or one leg's stream) ended: readers drain what is stored, then end."""
        for leg in self.legs:
            if arn is None or leg.arn == arn:
                if not leg.stopping:
                    leg.stopping = True
                    leg.stop_at = time.monotonic() + _GRACE_S
                leg.stop_fragment = stop_fragment or leg.stop_fragment
                leg.wake.set()

    async def _read(self, leg: _Leg) -> None:
        store = self.service.store
        try:
            stream = await store.stream(arn=leg.arn)
            if leg.start_fragment:
                after: str | None = before(leg.start_fragment)
            else:
                after = await store.start_after(stream, StartSelector.earliest())
            feed = ChannelFeed(leg.tracks, self.origin_ms * 1_000_000, leg.call_tags)
            leg.feed = feed
            await self._follow(stream, leg, feed, after)
            for role, pcm in feed.finish():
                self._audio(role, pcm)
            if feed.ended:
                log.info("call %s: %s", self.call_id, feed.ended)
        except (StoreError, SourceError, ValueError) as err:
            log.warning("call %s: cannot read %s: %s", self.call_id, leg.arn, err)
        finally:
            leg.stopping = True
            if all(lg.task is None or lg.task.done() or lg is leg for lg in self.legs):
                await self._finish()

    async def _follow(
        self, stream: StreamRecord, leg: _Leg, feed: ChannelFeed, after: str | None
    ) -> None:
        store = self.service.store
        idle_end = self.service.config.idle_end_s

        async def write(data: bytes) -> None:
            pieces = feed.feed(data)
            if pieces:
                self._last_data = time.monotonic()
            for role, pcm in pieces:
                self._audio(role, pcm)
            if feed.ended is not None:
                raise _Moved
            if leg.stop_fragment and feed.last_fragment and feed.last_fragment >= leg.stop_fragment:
                raise _Moved

        while True:
            reading = asyncio.create_task(store.follow(stream, after, write, live_edge=True))
            try:
                while not reading.done():
                    wait = max(0.0, leg.stop_at - time.monotonic()) if leg.stopping else 1.0
                    woken = asyncio.ensure_future(leg.wake.wait())
                    await asyncio.wait({reading, woken}, timeout=wait)
                    woken.cancel()
                    leg.wake.clear()
                    if leg.stopping and time.monotonic() >= leg.stop_at:
                        break
                    quiet = time.monotonic() - self._last_data > idle_end
                    if quiet and not store.producing(stream.arn):
                        leg.stopping = True  # the producer is gone and did not come back
                        break
            finally:
                if not reading.done():
                    reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, _Moved):
                    await reading
            if feed.ended is not None or (leg.stopping and not reading.cancelled()):
                return
            after = feed.last_fragment or after
            feed.restart()
            if leg.stopping:
                # what is stored after the last whole fragment read, then done
                with contextlib.suppress(_Moved):
                    await store.follow(stream, after, write, live_edge=False)
                return

    # --- audio and recognition -----------------------------------------------------------
    def _audio(self, role: str, pcm: bytes) -> None:
        if self.finishing and self.done.is_set():
            return
        self._raw[role].write(pcm)
        now = time.monotonic()
        for job in self.analysis.audio(role, pcm, now):
            self._recognize(job)
        if self.row.status == "STARTED":
            self.row.status = "TRANSCRIBING"

    def _recognize(self, job: UtteranceJob) -> None:
        task = asyncio.create_task(self._run_job(job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_job(self, job: UtteranceJob) -> None:
        try:
            pool = await self.service.ready()
            result = await pool.recognize(AsrJob(self.call_id, job.segment_id, job.pcm, job.final))
        except (RuntimeError, asyncio.CancelledError):
            return
        except Exception as err:  # the recogniser failed on this utterance
            log.warning("call %s: segment %s not recognised: %s", self.call_id, job.segment_id, err)
            return
        for event in self.analysis.recognized(job, result):
            self.publish(event)

    def publish(self, event: Event) -> None:
        """Send one of the call's events to the bus, its log and its row."""
        try:
            self.service.bus.publish(event)
        except EventBusError as err:
            log.warning("call %s: event not published: %s", self.call_id, err)
        self._log.write(json.dumps(lca_record(event), ensure_ascii=False) + "\n")
        self._log.flush()
        self._update_row(event)

    def _update_row(self, event: Event) -> None:
        apply_event(self.row, event, self._sentiment)
        self.save_row()

    def save_row(self) -> None:
        row = self.row
        pool = self.service.pool
        row.behind_s = pool.behind(self.call_id) if pool is not None else 0.0
        row.duration_s = self.analysis.duration()
        row.updated_ms = int(time.time() * 1000)
        self.service.calls.upsert(row)

    # --- the end -------------------------------------------------------------------------
    async def _finish(self) -> None:
        if self.finishing:
            return
        self.finishing = True
        try:
            for job in self.analysis.end_audio():
                self._recognize(job)
            while self.tasks:  # finals finish even when the pool is behind
                await asyncio.gather(*list(self.tasks), return_exceptions=True)
            for event in self.analysis.finish():
                self.publish(event)
            for raw in self._raw.values():
                raw.close()
            recording = await asyncio.to_thread(self._write_recording)
            export = self.analysis.export()
            export["Source"] = self.row.source
            export["Recording"] = recording.name
            await asyncio.to_thread(write_json, self._dir / "call.json", export)
            summary = export["Summary"]
            sentiment = export["Sentiment"]
            row = self.row
            row.status = "ENDED"
            row.ended_ms = int(time.time() * 1000)
            row.summary = summary["Text"][:2000]
            row.caller_trend = sentiment.get("CALLER", {}).get("Trend")
            row.agent_trend = sentiment.get("AGENT", {}).get("Trend")
            row.flags = sorted({*row.flags, *(f["Type"] for f in export["Flags"])})
            row.categories = sorted(
                {*row.categories, *(c["Category"] for c in export["Categories"])}
            )
            self.publish(
                Event.of(
                    "CallAnalyticsEnded",
                    CallId=self.call_id,
                    Status="ENDED",
                    DurationSeconds=round(self.analysis.duration(), 3),
                    RecordingUrl=f"/callstream/calls/{self.call_id}/recording.wav",
                )
            )
        except Exception as err:
            log.exception("call %s: analytics failed", self.call_id)
            self.row.status = "ERRORED"
            with contextlib.suppress(Exception):
                self.publish(
                    Event.of(
                        "CallAnalyticsEnded", CallId=self.call_id, Status="ERRORED", Error=str(err)
                    )
                )
        finally:
            self._log.close()
            (self._dir / LEGS_FILE).unlink(missing_ok=True)
            self.done.set()
            if self.service.pool is not None:
                self.service.pool.forget(self.call_id)
            self.service.forget(self)

    def _write_recording(self) -> Path:
        caller = self._dir / "caller.raw"
        agent = self._dir / "agent.raw"
        out = self._dir / "recording.wav"
        silence: list[tuple[str, float, float]] = []
        if self.service.config.redact_audio:
            from callstream.analytics.redaction import redact_segments

            silence = redact_segments(self.analysis.ordered_segments())[1]
        write_stereo(out, caller, agent, silence=[(a, b) for _, a, b in silence])
        caller.unlink(missing_ok=True)
        agent.unlink(missing_ok=True)
        return out


class _Moved(Exception):
    """The reader reached the end of the call in its stream."""


def _other(role: str) -> str:
    return "AGENT" if role == "CALLER" else "CALLER"


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, replacing ``path`` in one rename."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_stereo(
    out: Path,
    caller: Path,
    agent: Path,
    *,
    silence: list[tuple[float, float]] = (),  # type: ignore[assignment]
) -> None:
    """Interleave two raw 8 kHz channels into a stereo WAV (the shorter padded), with
    ``silence`` time spans zeroed in the caller channel."""
    block = 8000 * 2 * 10  # 10 s per step
    with (
        wave.open(str(out), "wb") as wav,
        _open_or_empty(caller) as left,
        _open_or_empty(agent) as right,
    ):
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        position = 0
        while True:
            a = left.read(block)
            b = right.read(block)
            if not a and not b:
                break
            n = max(len(a), len(b)) // 2
            frames = np.zeros((n, 2), "<i2")
            frames[: len(a) // 2, 0] = np.frombuffer(a[: len(a) // 2 * 2], "<i2")
            frames[: len(b) // 2, 1] = np.frombuffer(b[: len(b) // 2 * 2], "<i2")
            for start, end in silence:
                lo = max(0, int(start * 8000) - position)
                hi = min(n, int(end * 8000) - position)
                if lo < hi:
                    frames[lo:hi, 0] = 0
            wav.writeframes(frames.tobytes())
            position += n


@contextlib.contextmanager
def _open_or_empty(path: Path) -> Iterator[BinaryIO]:
    try:
        f = path.open("rb")
    except FileNotFoundError:
        import io

        yield io.BytesIO()
        return
    with f:
        yield f
