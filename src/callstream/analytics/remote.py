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
import time
from typing import TYPE_CHECKING

from callstream.analytics.callstore import CALL_EVENT_TYPES, CallRow, CallStore, apply_event
from callstream.analytics.session import lca_record
from callstream.events.types import Event, EventFilter

if TYPE_CHECKING:
    from callstream.events.bus import EventBus, Subscription

__all__ = ["REMOTE_TYPES", "RemoteCalls"]

log = logging.getLogger("callstream.analytics")

REMOTE_TYPES = frozenset(CALL_EVENT_TYPES)
"""The analytics events a call's row and log are built from on the other nodes."""
SAVE_EVERY_S = 1.0
"""How often the follower records how far it has read (so a start need not rescan)."""


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
        cursor = await asyncio.to_thread(self.calls.remote_cursor)
        self._subscription = self.bus.subscribe(EventFilter(REMOTE_TYPES), cursor or 0)
        self._task = asyncio.create_task(self._run(), name="callstream-remote-calls")

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.end()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        sub = self._subscription
        assert sub is not None
        loop = asyncio.get_running_loop()
        saved = await asyncio.to_thread(self.calls.remote_cursor) or 0
        saved_at = loop.time()
        while not sub.ended:
            event = await sub.next(SAVE_EVERY_S)
            if event is not None and event.origin is not None:
                try:
                    await asyncio.to_thread(self.apply, event)
                    saved = event.cursor
                except Exception:
                    log.exception("call list: cannot apply %s from %s", event.type, event.origin)
            # this node's own events (its analysis keeps its rows itself) need not be read
            # again at the next start: record now and then how far the bus was read
            if event is None or loop.time() - saved_at >= SAVE_EVERY_S:
                saved_at = loop.time()
                if sub.cursor > saved:
                    saved = sub.cursor
                    await asyncio.to_thread(self.calls.set_remote_cursor, saved)

    def apply(self, event: Event) -> None:
        """Apply one relayed analytics event (blocking: files and SQLite)."""
        origin = event.origin
        call_id = event.get("CallId")
        if origin is None or not isinstance(call_id, str) or not call_id:
            return
        row = self.calls.get(call_id)
        if event.type == "CallAnalyticsStarted" and (row is None or row.node == origin.node):
            row = _started_row(call_id, event, origin.node)  # a resumed analysis starts anew
            self._sentiments.pop(call_id, None)
        if row is None or row.node != origin.node:
            return  # started before this node kept events, or analysed here or elsewhere
        sentiments = self._sentiments.setdefault(call_id, {})
        apply_event(row, event, sentiments)
        if event.type == "TranscriptSegment":
            row.duration_s = max(row.duration_s, float(event.get("EndTime") or 0.0))
            if row.status == "STARTED":
                row.status = "TRANSCRIBING"
        elif event.type == "CallSummary":
            _summarised(row, event)
        elif event.type == "CallAnalyticsEnded":
            row.status = str(event.get("Status") or "ENDED")
            row.ended_ms = event.time_ms
            row.duration_s = float(event.get("DurationSeconds") or row.duration_s)
            self._sentiments.pop(call_id, None)
        row.updated_ms = int(time.time() * 1000)
        line = json.dumps(lca_record(event), ensure_ascii=False) + "\n"
        with (self.calls.call_dir(call_id) / "events.jsonl").open("a", encoding="utf-8") as f:
            f.write(line)
        self.calls.upsert(row, remote_cursor=event.cursor)


def _started_row(call_id: str, event: Event, node: str) -> CallRow:
    now = int(time.time() * 1000)
    row = CallRow(
        call_id,
        str(event.get("Source") or "UNKNOWN"),
        "STARTED",
        int(event.get("CreatedAt") or event.time_ms),
        now,
        node=node,
    )
    row.contact_id = event.get("ContactId")
    row.transaction_id = event.get("TransactionId")
    row.customer_number = event.get("CustomerPhoneNumber")
    row.system_number = event.get("SystemPhoneNumber")
    row.agent_id = event.get("AgentId")
    return row


def _summarised(row: CallRow, event: Event) -> None:
    row.summary = str(event.get("CallSummaryText") or "")[:2000] or None
    sentiment = event.get("Sentiment") or {}
    caller, agent = sentiment.get("CALLER") or {}, sentiment.get("AGENT") or {}
    row.caller_trend, row.agent_trend = caller.get("Trend"), agent.get("Trend")
    if caller.get("Overall") is not None and row.caller_sentiment is not None:
        row.caller_sentiment = round(float(caller["Overall"]), 3)
    if agent.get("Overall") is not None and row.agent_sentiment is not None:
        row.agent_sentiment = round(float(agent["Overall"]), 3)
    row.categories = sorted({*row.categories, *(event.get("Categories") or [])})
    row.flags = sorted({*row.flags, *(event.get("Flags") or [])})
