"""Live updates for the UI: server-sent events from the call-event bus.

``GET /ui/api/events[?call=ID][&cursor=C]`` streams, after ``Last-Event-ID`` / ``cursor``
(else from now on):

* ``event: row`` -- a call's list row (``CallRow.to_json``) after events changed it, at
  most one per call every :data:`ROW_INTERVAL_S` (partials come often);
* ``event: CallAlert`` -- every alert, on every page (supervisors see them anywhere);
* with ``call=ID``: that call's own analytics events as they are published
  (``TranscriptSegment``, ``CategoryMatched``, ``CallSummary``, ``CallAnalyticsEnded``, ...),
  each with ``id:`` its bus cursor, so a reconnecting ``EventSource`` resumes without
  losing or repeating one.

A ``: heartbeat`` comment goes out after :data:`HEARTBEAT_S` of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from callstream.analytics.callstore import CALL_EVENT_TYPES, CallRow, CallStore
from callstream.api.app import ServerState
from callstream.events.types import EventFilter, encode
from callstream.web.http import UiError

__all__ = ["CALL_EVENT_TYPES", "ROUTES", "stream_live"]

ROW_INTERVAL_S = 0.5
HEARTBEAT_S = 15.0


def _cursor(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("cursor")
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise UiError(400, "InvalidArgumentException", "cursor must be a non-negative integer.")
    return value


def _rows(calls: CallStore, call_ids: list[str]) -> list[CallRow | None]:
    return [calls.get(c) for c in call_ids]


def _frame(kind: str, cursor: int, data: bytes) -> bytes:
    return b"id: %d\nevent: %s\ndata: %b\n\n" % (cursor, kind.encode(), data)


async def stream_live(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The live stream (see the module docstring)."""
    call_id = request.query.get("call") or None
    cursor = _cursor(request)
    calls = state.calls
    response = web.StreamResponse(status=200)
    response.content_type = "text/event-stream"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    subscription = state.events.subscribe(
        EventFilter.where(CALL_EVENT_TYPES, CallId=call_id), cursor
    )
    dirty: set[str] = set()  # calls whose rows changed since they were last sent
    latest = cursor or 0  # the newest cursor handled: rows sent are as of it
    loop = asyncio.get_running_loop()
    flush_at = 0.0
    async with subscription:
        await response.prepare(request)
        await response.write(b": callstream live\nretry: 2000\n\n")
        while True:
            wait = HEARTBEAT_S if not dirty else max(0.0, flush_at - loop.time())
            event = await subscription.next(wait)
            if event is None and subscription.ended:
                break
            if event is not None:
                latest = event.cursor
                if call_id is not None or event.type == "CallAlert":
                    await response.write(_frame(event.type, event.cursor, encode(event)))
                target = event.get("CallId")
                if isinstance(target, str):
                    if not dirty:
                        flush_at = loop.time() + ROW_INTERVAL_S
                    dirty.add(target)
            if dirty and (event is None or loop.time() >= flush_at):
                batch, dirty = sorted(dirty), set()
                if calls is not None:
                    rows = await state.run(_rows, calls, batch)
                    for row in rows:
                        if row is not None:
                            data = json.dumps(row.to_json(), ensure_ascii=False).encode()
                            await response.write(_frame("row", latest, data))
            elif event is None:
                await response.write(b": heartbeat\n\n")
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


ROUTES = (("/api/events", stream_live),)
"""GET routes under the UI prefix."""
