"""The call transcriber inside ``callstream serve``: every call that enters the store is
analysed live.

:class:`CallAnalyticsService` listens on the call-event bus and starts a
:class:`CallSession` by itself:

* a **Connect contact** when Start media streaming runs (``MediaStreamingStarted``): its
  stream from the contact's ``StartFragmentNumber`` on (the StartLCA pattern, so nothing
  is lost between the block and the reader), ``AUDIO_FROM_CUSTOMER`` as the caller and
  ``AUDIO_TO_CUSTOMER`` as the agent. It stops at ``MediaStreamingStopped`` /
  ``ContactEnded``, or where the pooled stream moves on to another ContactId;
* a **voice connector call** on its legs' ``STARTED`` events: the two legs (paired by
  TransactionId) become one call, the leg with ``IsCaller`` the caller. Each leg stops at
  its ``ENDED`` / ``FAILED`` event, or where its stream moves on to another TransactionId;
* any stream named through the API (:meth:`CallAnalyticsService.analyze_stream`).

Sessions read through the store's in-process reader (block by block as the producer
writes, reconnecting after the last whole fragment when a read ends, so no 45-minute
cut), run voice-activity detection per channel and send utterances to the shared
recogniser pool (:mod:`callstream.analytics.pool`). Their events go to the bus (and so to
``GET /callstream/events``, SSE and webhooks), to the call's ``events.jsonl`` in LCA's
shape, and to the call list (:mod:`callstream.analytics.callstore`). When a call ends its
last utterances are finished even if the pool is behind, then the stereo recording, the
export and the summary are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callstream.analytics.asr import Recognizer, open_recognizer
from callstream.analytics.call import CallSettings
from callstream.analytics.callstore import CallRow, CallStore
from callstream.analytics.pool import AsrPool
from callstream.analytics.priority import run_lowered
from callstream.analytics.remote import RemoteCalls
from callstream.analytics.session import LEGS_FILE, CallSession
from callstream.analytics.sources import CONNECT_TRACKS
from callstream.events.bus import EventBus
from callstream.events.types import Event, EventFilter
from callstream.store.base import StoreError, StreamRecord
from callstream.store.service import MediaStore

__all__ = ["AnalyticsConfig", "CallAnalyticsService"]

log = logging.getLogger("callstream.analytics")

_WATCHED = frozenset(
    {
        "MediaStreamingStarted",
        "MediaStreamingStopped",
        "ContactEnded",
        "VoiceConnectorStreamingStatus",
    }
)


@dataclass(slots=True)
class AnalyticsConfig:
    """``callstream serve --analytics ... --asr-*`` settings."""

    enabled: bool = True
    engine: str = "whisper"
    model: str | None = None
    workers: int = 2
    window_s: float = 15.0
    settings: CallSettings = field(default_factory=CallSettings)
    idle_end_s: float = 10.0
    """A call whose streams bring no data this long, with no producer writing to them (and
    no stop event), is finished: how ``analyze --stream`` of a stored stream ends, and what
    ends a call whose stop event never came."""
    redact_audio: bool = False
    """Silence PCI spans in the call's recording.wav too (the stream is never changed)."""


class CallAnalyticsService:
    """Starts and runs :class:`CallSession` s (see the module docstring)."""

    def __init__(
        self,
        store: MediaStore,
        bus: EventBus,
        calls: CallStore,
        config: AnalyticsConfig | None = None,
        *,
        recognizer: Recognizer | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.calls = calls
        self.config = config or AnalyticsConfig()
        self.recognizer = recognizer
        self.pool: AsrPool | None = None
        self.sessions: dict[str, CallSession] = {}
        self._by_transaction: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[AsrPool] | None = None
        self.remote = RemoteCalls(bus, calls)
        """The calls other nodes of a cluster analyse, kept in this node's call list."""

    async def start(self) -> None:
        """Start the bus listener, and load the recogniser in the background (a server
        starts at once; the first utterance waits for the model if it must)."""
        interrupted = await asyncio.to_thread(self._interrupted)
        self._loading = asyncio.create_task(self._load(), name="callstream-asr-load")
        # a call is analysed on the node it streams to (in a cluster, not where its
        # events are relayed to)
        subscription = self.bus.subscribe(EventFilter(frozenset(_WATCHED), local=True))
        self._task = asyncio.create_task(self._listen(subscription), name="callstream-analytics")
        for row, legs in interrupted:
            await self._resume(row, legs)
        await self.remote.start()

    async def _load(self) -> AsrPool:
        cfg = self.config
        if self.recognizer is None:
            try:
                # its worker threads start here, at the priority of this thread
                self.recognizer = await run_lowered(
                    lambda: open_recognizer(
                        cfg.engine, cfg.model, workers=cfg.workers, window_s=cfg.window_s
                    )
                )
            except Exception as err:
                log.error("call analytics: no speech recogniser: %s", err)
                raise
        self.pool = AsrPool(self.recognizer, cfg.workers)
        log.info("call analytics: %s recogniser, %d workers", self.recognizer.name, cfg.workers)
        return self.pool

    async def ready(self) -> AsrPool:
        """The recogniser pool, once loaded (raises what loading raised)."""
        if self._loading is None:
            raise RuntimeError("call analytics is not running")
        return await asyncio.shield(self._loading)

    async def stop(self) -> None:
        """Stop listening; calls in progress end now (their finals are finished)."""
        await self.remote.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        sessions = list(self.sessions.values())
        for session in sessions:
            session.stop()
        if sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    await asyncio.gather(*(s.done.wait() for s in sessions))
        if self._loading is not None and not self._loading.done():
            with contextlib.suppress(BaseException):
                await self._loading
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)

    def _interrupted(self) -> list[tuple[CallRow, dict[str, Any]]]:
        """Calls the last run left in progress, with what they were reading."""
        found = []
        for status in ("TRANSCRIBING", "STARTED"):
            for row in self.calls.list_calls(status=status, limit=1000):
                if row.node is not None:
                    continue  # another node analyses it
                try:
                    legs = json.loads(self.calls.path(row.call_id, LEGS_FILE).read_text())
                except (OSError, ValueError):
                    legs = {}
                found.append((row, legs))
        return found

    async def _resume(self, row: CallRow, saved: Mapping[str, Any]) -> None:
        """Analyse a call the server stopped during again, from its start: what is stored
        is read at once, a producer that is still (or again) writing is followed live, and
        the call ends as any other (its stop event, or no producer and a quiet stream)."""
        legs = saved.get("Legs") or []
        try:
            for leg in legs:
                await self.store.stream(arn=str(leg["StreamARN"]))
        except (StoreError, KeyError, TypeError) as err:
            legs = []
            log.warning("call %s: cannot resume: %s", row.call_id, err)
        if not legs:
            row.status = "ERRORED"
            row.summary = row.summary or "the server stopped during the call"
            await asyncio.to_thread(self.calls.upsert, row)
            return
        log.info("call %s: the server stopped during it; analysing it again", row.call_id)
        fresh = CallRow(row.call_id, row.source, "STARTED", row.started_ms, int(time.time() * 1000))
        for name in ("contact_id", "transaction_id", "customer_number", "system_number"):
            setattr(fresh, name, getattr(row, name))
        fresh.agent_id = row.agent_id
        session = self._new_session(
            fresh,
            int(saved.get("OriginMs") or row.started_ms),
            swap=bool(saved.get("Swap")),
            channels=saved.get("Channels") or None,
            resumed=True,
        )
        if fresh.transaction_id is not None:
            self._by_transaction[fresh.transaction_id] = fresh.call_id
        for leg in legs:
            session.add_leg(
                str(leg["StreamARN"]),
                leg.get("StartFragmentNumber"),
                role=leg.get("Role"),
                tracks=leg.get("Tracks") or {"*": "CALLER"},
                call_tags=leg.get("CallTags") or {},
            )

    async def _listen(self, subscription: Any) -> None:
        async for event in subscription:
            try:
                await self.handle(event)
            except Exception:
                log.exception("analytics: cannot handle %s", event.type)

    async def handle(self, event: Event) -> None:
        """React to one bus event (public for tests and embedding)."""
        if event.type == "MediaStreamingStarted":
            await self._connect_started(event)
        elif event.type in ("MediaStreamingStopped", "ContactEnded"):
            session = self.sessions.get(str(event.get("ContactId")))
            if session is not None:
                session.stop(stop_fragment=event.get("StopFragmentNumber"))
                if event.type == "ContactEnded":
                    self._contact_details(session, event.get("ContactRecord") or {})
        elif event.type == "VoiceConnectorStreamingStatus":
            status = event.get("StreamingStatus")
            if status == "STARTED":
                await self._leg_started(event)
            elif status in ("ENDED", "FAILED"):
                call_id = self._by_transaction.get(str(event.get("TransactionId")))
                session = self.sessions.get(call_id) if call_id else None
                if session is not None:
                    session.stop(arn=event.get("StreamARN"))

    def forget(self, session: CallSession) -> None:
        """A finished session leaves the service's tables."""
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]
        if session.row.transaction_id is not None:
            self._by_transaction.pop(session.row.transaction_id, None)

    def _new_session(
        self,
        row: CallRow,
        origin_ms: int,
        *,
        swap: bool = False,
        channels: dict[str, Any] | None = None,
        resumed: bool = False,
    ) -> CallSession:
        session = CallSession(self, row, origin_ms, swap=swap, channels=channels, resumed=resumed)
        self.sessions[row.call_id] = session
        self.calls.upsert(row)
        session.publish(
            Event.of(
                "CallAnalyticsStarted",
                CallId=row.call_id,
                Source=row.source,
                CreatedAt=origin_ms,
                ContactId=row.contact_id,
                TransactionId=row.transaction_id,
                CustomerPhoneNumber=row.customer_number,
                SystemPhoneNumber=row.system_number,
                AgentId=row.agent_id,
                Channels=channels or None,
                Resumed=resumed or None,
            )
        )
        return session

    async def _connect_started(self, event: Event) -> None:
        contact_id = str(event.get("ContactId"))
        if contact_id in self.sessions:
            return
        now = int(time.time() * 1000)
        row = CallRow(contact_id, "CONNECT", "STARTED", int(event.get("StartTimestamp")), now)
        row.contact_id = contact_id
        arn = str(event.get("StreamARN"))
        channels = {
            role: {"StreamARN": arn, "Track": track} for track, role in CONNECT_TRACKS.items()
        }
        session = self._new_session(row, int(event.get("StartTimestamp")), channels=channels)
        session.add_leg(
            str(event.get("StreamARN")),
            event.get("StartFragmentNumber"),
            role=None,
            tracks=CONNECT_TRACKS,
            call_tags={"ContactId": contact_id},
        )

    async def _leg_started(self, event: Event) -> None:
        transaction = str(event.get("TransactionId"))
        arn = event.get("StreamARN")
        if not arn:
            return
        role = "CALLER" if event.get("IsCaller", True) else "AGENT"
        call_id = self._by_transaction.get(transaction)
        session = self.sessions.get(call_id) if call_id else None
        if session is None:
            call_id = str(event.get("CallId") or transaction)
            start = int(event.get("StartTime") or event.time_ms)
            row = CallRow(call_id, "VOICE_CONNECTOR", "STARTED", start, int(time.time() * 1000))
            row.transaction_id = transaction
            caller = event.get("FromNumber")
            row.customer_number = caller if role == "CALLER" else event.get("ToNumber")
            row.system_number = event.get("ToNumber") if role == "CALLER" else caller
            self._by_transaction[transaction] = call_id
            session = self._new_session(row, start, channels={role: {"StreamARN": str(arn)}})
        if any(leg.arn == arn for leg in session.legs):
            return
        if any(leg.role == role for leg in session.legs):
            # both legs claim one side (no IsCaller): the second is the other side
            role = "AGENT" if role == "CALLER" else "CALLER"
        session.add_leg(
            str(arn),
            event.get("StartFragmentNumber"),
            role=role,
            tracks={"*": role},
            call_tags={"TransactionId": transaction},
        )

    def _contact_details(self, session: CallSession, record: Mapping[str, Any]) -> None:
        row = session.row
        customer = record.get("CustomerEndpoint") or {}
        system = record.get("SystemEndpoint") or {}
        agent = record.get("Agent") or {}
        row.customer_number = row.customer_number or customer.get("Address")
        row.system_number = row.system_number or system.get("Address")
        agent_id = agent.get("Username") or agent.get("ARN")
        if agent_id and agent_id != row.agent_id:
            session.publish(Event.of("AgentUpdated", CallId=session.call_id, AgentId=str(agent_id)))

    async def analyze_stream(
        self,
        stream: StreamRecord,
        *,
        start_fragment: str | None = None,
        call_id: str | None = None,
        swap: bool = False,
    ) -> CallSession:
        """Analyse a stream a user names (API / ``analyze --stream``): Connect tracks when
        it has them, else its first audio track as the caller."""
        call_id = call_id or f"{stream.name}-{start_fragment or 'earliest'}"
        existing = self.sessions.get(call_id)
        if existing is not None:
            return existing
        now = int(time.time() * 1000)
        row = CallRow(call_id, "STREAM", "STARTED", now, now)
        session = self._new_session(row, now, swap=swap)
        session.origin_ms = 0  # re-anchored on the stream's first frame
        session.add_leg(
            stream.arn,
            start_fragment,
            role=None,
            tracks={**CONNECT_TRACKS, "*": "CALLER"},
            call_tags={},
        )
        return session
