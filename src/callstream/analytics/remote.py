"""Calls that other nodes of a cluster analyse, in this node's call list.

In a cluster (the NATS store) every node's call-event bus holds every node's events, and
a call is analysed by the node it streams to (:mod:`callstream.analytics.service` takes
only events published on its own node). :class:`RemoteCalls` makes the analysis visible
on every node: from the analytics events another node publishes about a call
(``CallAnalyticsStarted``, ``TranscriptSegment``, ``CategoryMatched``, ``CallAlert``,
``AgentUpdated``, ``CallSummary``, ``CallAnalyticsEnded``), as they are relayed here, it
keeps the call's row in this node's call list (``Node`` names the node that analyses it)
and the call's ``events.jsonl``. So the call list, a call's summary, transcript and events
are the same on every node, and a live transcript follows on any of them (its segments are
on every bus). The recording and the export stay on the node that made them.

Each event is applied once: the row and the bus cursor of the event are written in one
transaction (when idle, the cursor also moves past the node's own events), and after a
restart the node goes on from that cursor (a line of
``events.jsonl`` written just before a crash may appear twice; the transcript keeps one
segment per id). A row this node analyses itself is never touched by relayed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from callstream.analytics.callstore import CALL_EVENT_TYPES, CallRow, CallStore, apply_event
from callstream.analytics.session import lca_record
from callstream.events.types import Event, EventFilter

if TYPE_CHECKING:
    from callstream.events.bus import EventBus, Subscription

__all__ = ["RemoteCalls"]

log = logging.getLogger("callstream.analytics")

SAVE_EVERY_S = 1.0
"""How often the follower records how far it has read (so a start need not rescan)."""
RETRY_S, MAX_RETRY_S = 0.5, 30.0
"""Backoff of an event whose storage failed (it is retried, not skipped)."""
STOP_S = 10.0


class RemoteCalls:
    """Keeps the calls other nodes analyse in ``calls`` (see the module docstring)."""

    def __init__(self, bus: EventBus, calls: CallStore) -> None:
        self.bus = bus
        self.calls = calls
        self._sentiments: dict[str, dict[str, list[float]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Follow the bus from the last event applied (from the oldest kept, the first
        time: what the node imported from the cluster before it began)."""
        cursor = await asyncio.to_thread(self.calls.remote_cursor) or 0
        self._subscription = self.bus.subscribe(EventFilter(frozenset(CALL_EVENT_TYPES)), cursor)
        self._task = asyncio.create_task(self._run(cursor), name="callstream-remote-calls")

    async def stop(self) -> None:
        """Stop following (an event being applied is finished first)."""
        if self._subscription is not None:
            self._subscription.end()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_S)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def _run(self, saved: int) -> None:
        """Apply relayed events in order; ``saved`` is the cursor the call list holds."""
        sub = self._subscription
        assert sub is not None
        loop = asyncio.get_running_loop()
        saved_at = loop.time()
        while not sub.ended:
            event = await sub.next(SAVE_EVERY_S)
            if event is not None and event.origin is not None:
                if not await self._apply(event):
                    return  # stopped while retrying
                saved = event.cursor
            # this node's own events (its analysis keeps its rows itself) need not be read
            # again at the next start: record now and then how far the bus was read
            if event is None or loop.time() - saved_at >= SAVE_EVERY_S:
                saved_at = loop.time()
                if sub.cursor > saved:
                    try:
                        await asyncio.to_thread(self.calls.set_remote_cursor, sub.cursor)
                        saved = sub.cursor
                    except (OSError, sqlite3.Error) as err:
                        log.warning("call list: cannot record the bus cursor: %s", err)

    async def _apply(self, event: Event) -> bool:
        """Apply ``event``. A storage error (disk full, a locked database) is retried until
        it passes, so no event is skipped; an event that cannot be applied (fields a peer
        sent malformed) is logged and passed over. False: the follower stopped first."""
        delay = RETRY_S
        while self._subscription is not None and not self._subscription.ended:
            try:
                await asyncio.to_thread(self.apply, event)
                return True
            except (OSError, sqlite3.OperationalError) as err:
                log.warning("call list: cannot apply %s (%s); retrying", event.type, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
            except Exception:
                log.exception("call list: %s from %s passed over", event.type, event.origin)
                return True
        return False

    def apply(self, event: Event) -> None:
        """Apply one relayed analytics event (blocking: files and SQLite)."""
        origin = event.origin
        call_id = event.get("CallId")
        if origin is None or not isinstance(call_id, str) or not call_id:
            return
        row = self.calls.get(call_id)
        log_mode = "a"
        if event.type == "CallAnalyticsStarted" and (row is None or row.node == origin.node):
            # a new call, or one its node analyses again from the start after a restart
            log_mode = "w"
            row = _started_row(call_id, event, origin.node)
            self._sentiments[call_id] = {}
        if row is None or row.node != origin.node:
            return  # started before this node kept events, or analysed here or elsewhere
        sentiments = self._sentiments.get(call_id)
        if sentiments is None:  # this node restarted during the call
            sentiments = self._sentiments[call_id] = self._sentiments_so_far(call_id)
        apply_event(row, event, sentiments)
        if event.type == "TranscriptSegment":
            row.duration_s = max(row.duration_s, _number(event.get("EndTime")))
            if row.status == "STARTED":
                row.status = "TRANSCRIBING"
        elif event.type == "CallSummary":
            _summarised(row, event)
        elif event.type == "CallAnalyticsEnded":
            row.status = "ERRORED" if event.get("Status") == "ERRORED" else "ENDED"
            row.ended_ms = event.time_ms
            row.duration_s = _number(event.get("DurationSeconds")) or row.duration_s
            self._sentiments.pop(call_id, None)
        row.updated_ms = int(time.time() * 1000)
        line = json.dumps(lca_record(event), ensure_ascii=False) + "\n"
        with (self.calls.call_dir(call_id) / "events.jsonl").open(log_mode, encoding="utf-8") as f:
            f.write(line)
        self.calls.upsert(row, remote_cursor=event.cursor)

    def _sentiments_so_far(self, call_id: str) -> dict[str, list[float]]:
        """Each channel's weighted sentiment values in the call's log (after a restart)."""
        values: dict[str, list[float]] = {}
        for record in self.calls.events(call_id):
            weighted = record.get("SentimentWeighted")
            if (
                record.get("EventType") == "ADD_TRANSCRIPT_SEGMENT"
                and not record.get("IsPartial")
                and isinstance(weighted, int | float)
            ):
                values.setdefault(str(record.get("Channel")), []).append(float(weighted))
        return values


def _started_row(call_id: str, event: Event, node: str) -> CallRow:
    now = int(time.time() * 1000)
    row = CallRow(
        call_id,
        _text(event.get("Source")) or "UNKNOWN",
        "STARTED",
        int(_number(event.get("CreatedAt")) or event.time_ms),
        now,
        node=node,
    )
    row.contact_id = _text(event.get("ContactId"))
    row.transaction_id = _text(event.get("TransactionId"))
    row.customer_number = _text(event.get("CustomerPhoneNumber"))
    row.system_number = _text(event.get("SystemPhoneNumber"))
    row.agent_id = _text(event.get("AgentId"))
    return row


def _summarised(row: CallRow, event: Event) -> None:
    row.summary = (_text(event.get("CallSummaryText")) or "")[:2000] or None
    sentiment = event.get("Sentiment")
    sentiment = sentiment if isinstance(sentiment, dict) else {}
    caller, agent = sentiment.get("CALLER"), sentiment.get("AGENT")
    caller = caller if isinstance(caller, dict) else {}
    agent = agent if isinstance(agent, dict) else {}
    row.caller_trend, row.agent_trend = _text(caller.get("Trend")), _text(agent.get("Trend"))
    if isinstance(caller.get("Overall"), int | float) and row.caller_sentiment is not None:
        row.caller_sentiment = round(float(caller["Overall"]), 3)
    if isinstance(agent.get("Overall"), int | float) and row.agent_sentiment is not None:
        row.agent_sentiment = round(float(agent["Overall"]), 3)
    row.categories = sorted({*row.categories, *_texts(event.get("Categories"))})
    row.flags = sorted({*row.flags, *_texts(event.get("Flags"))})


def _text(value: object) -> str | None:
    return value[:256] if isinstance(value, str) else None


def _texts(value: object) -> list[str]:
    return [v[:256] for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
