"""Call events over HTTP (callstream's own API, beside the KVS ones; SigV4-signed like
every other call).

* ``GET /callstream/events?cursor=C&type=T1,T2&detail-type=D&since=S&stream=ARN&contact=ID
  &call=ID&limit=N&format=F`` pages through the journal, oldest first: ``{"Events": [...],
  "NextCursor": N, "HasMore": bool}``, the events after cursor ``C`` (default 0: the
  oldest kept) that are of one of the types, whose EventBridge ``detail-type`` is one of
  ``D`` (``Chime VoiceConnector Streaming Status``: every type AWS emits that way), whose
  ``Time`` is at or after ``S`` (ISO 8601, or epoch milliseconds) and that carry the
  given ``StreamARN`` / ``ContactId`` / ``CallId``; at most ``limit`` (default 100, at
  most 1000). ``type`` and ``detail-type`` may repeat or list names with commas; all
  filters must pass. ``format=eventbridge`` gives each event as its EventBridge event
  (:func:`~callstream.events.types.to_eventbridge`, the id is ``callstream-<cursor>``,
  in a cluster ``callstream-<node>-<cursor>`` of the node that published it)
  instead of the wire form (``format=callstream``, the default). Continue with
  ``cursor=NextCursor``; ``HasMore`` says whether the journal holds events after it (a
  filtered page may be short, even empty).
* ``GET /callstream/events/stream?...`` (same filters and formats) is a server-sent-events
  stream: per event ``id: <cursor>``, ``event: <EventType>``, ``data: <the event's
  JSON>``, and a ``: heartbeat`` comment every 15 s of silence. It starts after the
  ``Last-Event-ID`` header (what a reconnecting ``EventSource`` sends), else after
  ``cursor``, else with the oldest event when ``since`` is given, else with the next event
  published.
* ``POST /callstream/events`` publishes: ``{"Events": [{"EventType": ..., "Time": ms
  (optional), <fields>}, ...]}`` (at most 100; the contact, media-streaming, voice
  connector, transcript and category types; stream and producer events are the
  server's own). All are validated first, then journaled; the answer ``{"Entries":
  [{"Cursor": N}, ...], "FailedEntryCount": 0}`` comes once they are durable. A
  ``ContactEnded`` with a ``ContactRecord`` stores the CTR as ``POST
  /callstream/contacts`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from callstream.api.app import (
    REQUEST_ID,
    STATE,
    STREAMING,
    Handler,
    ServerState,
    json_response,
    read_json,
)
from callstream.api.errors import KvsError
from callstream.events.bus import EventBus, EventBusError, QueryResult
from callstream.events.recorder import ContactRecorder, store_contact
from callstream.events.types import (
    EVENT_TYPES,
    Event,
    EventError,
    EventFilter,
    detail_type,
    encode,
    to_eventbridge,
    types_with_detail_type,
)
from callstream.events.webhooks import Webhooks, selected_types, type_filter
from callstream.store.base import InvalidArgument
from callstream.store.contacts import check_record

__all__ = [
    "GET_ROUTES",
    "ROUTES",
    "Selection",
    "end_streams",
    "lifecycle",
    "parse_since",
    "publish_durably",
    "query_events",
    "webhook_directory",
]

log = logging.getLogger("callstream.api")

EVENTS_PATH = "/callstream/events"
STREAM_PATH = "/callstream/events/stream"
HEARTBEAT_S = 15.0
"""Seconds of silence after which the SSE stream sends a heartbeat comment."""
COMMIT_TIMEOUT_S = 10.0
"""How long a publishing request waits for the journal before answering 500."""
MAX_LIMIT = 1000
MAX_PUBLISH = 100
_FILTER_FIELDS = {"stream": "StreamARN", "contact": "ContactId", "call": "CallId"}
FORMATS = ("callstream", "eventbridge")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _invalid(message: str) -> KvsError:
    return KvsError("InvalidArgumentException", message)


def _cursor(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        cursor = int(value)
    except ValueError:
        cursor = -1
    if cursor < 0:
        raise _invalid(f"{name} must be a non-negative integer (an event's Cursor).")
    return cursor


def _names(values: list[str]) -> list[str]:
    return [n.strip() for value in values for n in value.split(",") if n.strip()]


def _filter(query: Mapping[str, str], getall: list[str], detail_types: list[str]) -> EventFilter:
    types: set[str] = set()
    for name in _names(getall):
        if name not in EVENT_TYPES:
            known = ", ".join(sorted(EVENT_TYPES))
            raise _invalid(f"type: unknown event type {name!r} (known: {known}).")
        types.add(name)
    details = _names(detail_types)
    for name in details:
        if not types_with_detail_type(name):
            known = ", ".join(sorted({detail_type(s) for s in EVENT_TYPES.values()}))
            raise _invalid(f"detail-type: no event has detail-type {name!r} (known: {known}).")
    fields = {field: query.get(param) or None for param, field in _FILTER_FIELDS.items()}
    return type_filter(selected_types(details, types), **fields)


def parse_since(value: str | None) -> int | None:
    """``since`` as epoch milliseconds: digits are epoch milliseconds, anything else an
    ISO 8601 date or date-time (without a zone: UTC). Raises the 400."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        ms = int(text)
    else:
        stamp = None
        candidates = [text]
        if " " in text:  # an unencoded '+' of "+02:00" arrives as a space
            head, _, tail = text.rpartition(" ")
            candidates.append(f"{head}+{tail}")
        for candidate in candidates:
            with contextlib.suppress(ValueError):
                stamp = datetime.fromisoformat(candidate)
                break
        if stamp is None:
            raise _invalid(
                f"since: {value!r} is neither an ISO 8601 date-time (2026-11-22T10:00:00Z) "
                "nor epoch milliseconds."
            )
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        ms = (stamp - _EPOCH) // timedelta(milliseconds=1)
    if not 0 <= ms <= _MAX_MS:
        raise _invalid(f"since: {value!r} is out of range (1970 to 9999).")
    return ms


@dataclass(frozen=True, slots=True)
class Selection:
    """What a ``GET`` asks for: the bus filter, ``since`` (epoch ms) and the format."""

    filter: EventFilter
    since: int | None
    format: str

    def wants(self, event: Event) -> bool:
        """Whether ``event`` passes every filter."""
        return (self.since is None or event.time_ms >= self.since) and self.filter.matches(event)

    def render(self, event: Event, state: ServerState) -> dict[str, Any]:
        """``event`` in the requested format."""
        if self.format == "eventbridge":
            return to_eventbridge(
                event,
                account=state.config.account_id,
                region=state.config.region,
                node=state.events.node,
            )
        return event.to_json()


def _request_filter(request: web.Request) -> EventFilter:
    query = request.query
    return _filter(query, query.getall("type", []), query.getall("detail-type", []))


def _selection(request: web.Request) -> Selection:
    fmt = request.query.get("format") or "callstream"
    if fmt not in FORMATS:
        raise _invalid(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    return Selection(_request_filter(request), parse_since(request.query.get("since")), fmt)


def query_events(bus: EventBus, selection: Selection, after: int, limit: int) -> QueryResult:
    """A page as :meth:`EventBus.query` gives it, with ``since`` applied while scanning
    (blocking file reads)."""
    if selection.since is None:
        return bus.query(selection.filter, after, limit)
    head = bus.last_cursor
    after = max(0, min(after, head))
    found, scanned_to = bus.journal.read(
        after, head, want=selection.wants, max_events=max(1, limit), max_scan=10_000
    )
    return QueryResult([e for e, _ in found], scanned_to, scanned_to < head)


async def publish_durably(bus: EventBus, events: list[Event]) -> list[int]:
    """Publish ``events`` and wait until they are durable (400 for an event that does
    not encode, 500 when the journal cannot take them)."""
    try:
        cursors = [bus.publish(event) for event in events]
        async with asyncio.timeout(COMMIT_TIMEOUT_S):
            await bus.committed(cursors[-1])
    except EventError as err:
        raise _invalid(str(err)) from None
    except EventBusError as err:
        raise KvsError(
            "InternalFailure", f"The event journal cannot take events now: {err}"
        ) from None
    except TimeoutError:
        raise KvsError(
            "InternalFailure", "The event journal did not store the events in time."
        ) from None
    return cursors


async def list_events(request: web.Request, state: ServerState) -> web.StreamResponse:
    """A page of events (``?cursor=C&type=T1,T2&detail-type=D&since=S&stream=ARN&contact=ID
    &call=ID&limit=N&format=F``)."""
    selection = _selection(request)
    after = _cursor(request.query.get("cursor"), "cursor") or 0
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise _invalid("limit must be an integer.") from None
    limit = max(1, min(limit, MAX_LIMIT))
    result = await state.run(query_events, state.events, selection, after, limit)
    return json_response(
        {
            "Events": [selection.render(e, state) for e in result.events],
            "NextCursor": result.next_cursor,
            "HasMore": result.has_more,
        }
    )


def sse_frame(event: Event, data: bytes | None = None) -> bytes:
    """One server-sent event: ``id`` = cursor, ``event`` = type, ``data`` = the JSON (the
    wire form unless ``data`` is given)."""
    body = encode(event) if data is None else data
    return b"id: %d\nevent: %s\ndata: %b\n\n" % (event.cursor, event.type.encode(), body)


async def stream_events(request: web.Request, state: ServerState) -> web.StreamResponse:
    """Server-sent events from ``Last-Event-ID`` / ``cursor`` / ``since`` / now on (same
    filters and formats as the listing)."""
    selection = _selection(request)
    last_id = request.headers.get("Last-Event-ID")
    if last_id is not None and last_id.strip():
        cursor = _cursor(last_id.strip(), "Last-Event-ID")
    else:
        cursor = _cursor(request.query.get("cursor"), "cursor")
    if cursor is None and selection.since is not None:
        cursor = 0  # everything since that time, then live
    response = web.StreamResponse(status=200)
    response.content_type = "text/event-stream"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a reverse proxy must not buffer it
    response.headers["x-amzn-RequestId"] = request[REQUEST_ID]
    async with state.events.subscribe(selection.filter, cursor) as subscription:
        request[STREAMING] = response
        await response.prepare(request)
        await response.write(b": callstream events\nretry: 2000\n\n")
        while True:
            event = await subscription.next(HEARTBEAT_S)
            if event is None:
                if subscription.ended:
                    break
                await response.write(b": heartbeat\n\n")
                continue
            if selection.since is not None and event.time_ms < selection.since:
                continue
            data = None
            if selection.format != "callstream":
                rendered = selection.render(event, state)
                data = json.dumps(rendered, separators=(",", ":"), ensure_ascii=False).encode()
            await response.write(sse_frame(event, data))
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def put_events(request: web.Request, state: ServerState) -> web.StreamResponse:
    """Publish client events (``{"Events": [...]}``), all or none."""
    body = await read_json(request)
    entries = body.get("Events")
    if not isinstance(entries, list) or not entries:
        raise _invalid("Events must be a non-empty list of events.")
    if len(entries) > MAX_PUBLISH:
        raise _invalid(f"Events: at most {MAX_PUBLISH} events per request.")
    events: list[Event] = []
    now = int(time.time() * 1000)
    for i, entry in enumerate(entries):
        events.append(_client_event(entry, f"Events[{i}]", now))
    cursors = await publish_durably(state.events, events)
    for event, cursor in zip(events, cursors, strict=True):
        if event.type == "ContactEnded":
            await state.run(store_contact, state.contacts, event.with_cursor(cursor))
    return json_response({"Entries": [{"Cursor": c} for c in cursors], "FailedEntryCount": 0})


def _client_event(entry: object, where: str, now: int) -> Event:
    if not isinstance(entry, dict):
        raise _invalid(f"{where}: an event must be a JSON object.")
    type_name = entry.get("EventType")
    spec = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if spec is None:
        known = ", ".join(sorted(n for n, s in EVENT_TYPES.items() if "client" in s.publishers))
        raise _invalid(f"{where}.EventType: {type_name!r} is not an event type (one of: {known}).")
    if "client" not in spec.publishers:
        raise _invalid(f"{where}.EventType: {type_name} events are published by the server only.")
    if "Cursor" in entry:
        raise _invalid(f"{where}.Cursor: cursors are given by the server.")
    fields: dict[str, Any] = {k: v for k, v in entry.items() if k not in ("EventType", "Time")}
    when = entry.get("Time", now)
    try:
        event = Event.of(spec.name, time_ms=when, **fields)
    except EventError as err:
        raise _invalid(f"{where}: {err}") from None
    if type_name == "ContactEnded" and isinstance(fields.get("ContactRecord"), dict):
        try:
            check_record(fields["ContactRecord"])
        except InvalidArgument as err:
            raise _invalid(f"{where}.ContactRecord: {err.message}") from None
    return event


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The bus's part of the server's life (an aiohttp cleanup context): bind the bus to
    the server's loop, run the contact-record subscriber from its cursor (read before
    the first request, so a recreated journal is noticed before anything is stored) and
    the configured webhooks (cursors in ``<data dir>/webhooks``), and at the end stop
    them and close the bus."""
    state = app[STATE]
    bus = state.events
    bus.bind()
    recorder = ContactRecorder(bus, state.contacts)
    start = await asyncio.to_thread(recorder.position)
    task = asyncio.create_task(recorder.run(start), name="callstream-contact-recorder")
    webhooks = Webhooks(
        bus,
        state.config.webhooks,
        webhook_directory(bus),
        account=state.config.account_id,
        region=state.config.region,
    )
    await webhooks.start()
    yield
    await webhooks.stop()
    bus.end_subscriptions()
    try:
        async with asyncio.timeout(10):
            await task
    except TimeoutError:
        task.cancel()
    except Exception:
        log.exception("the contact-record subscriber failed")
    await asyncio.to_thread(bus.close)


def webhook_directory(bus: EventBus) -> Path:
    """Where the server keeps its webhooks' cursors: ``webhooks`` beside the journal."""
    return bus.journal.directory.parent / "webhooks"


async def end_streams(app: web.Application) -> None:
    """On shutdown: end every subscription, so that SSE responses finish before the
    server waits for its requests."""
    app[STATE].events.end_subscriptions()


ROUTES: dict[str, Handler] = {EVENTS_PATH: put_events}
GET_ROUTES: dict[str, Handler] = {EVENTS_PATH: list_events, STREAM_PATH: stream_events}
