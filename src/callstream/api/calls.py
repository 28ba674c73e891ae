"""Analysed calls over HTTP (callstream's own API; SigV4 like every other call).

* ``GET /callstream/calls`` -- the call list, newest first: ``?limit=`` (1..1000),
  ``next=`` (the previous page's ``NextToken``), ``status=``, ``search=`` (call id, phone
  numbers, agent, categories), ``flagged=1``. Each entry: status, start, duration,
  sentiment per channel with trend, categories, flags, seconds behind live.
* ``GET /callstream/calls/{id}`` -- one call: its list entry and, once it ended, its
  export (``Call``: what ``callstream analyze`` prints).
* ``GET /callstream/calls/{id}/transcript`` -- the transcript so far (partials replaced
  by finals) and the bus ``Cursor`` to follow it live from
  (``/callstream/events/stream?type=TranscriptSegment&call=<id>&cursor=<Cursor>``).
* ``GET /callstream/calls/{id}/events`` -- the call's events as JSON Lines in LCA's
  call-data-stream shape.
* ``GET /callstream/calls/{id}/recording.wav`` -- the stereo recording (channel 0 the
  caller, 1 the agent), once the call ended.
* ``GET /callstream/analytics`` -- the recogniser pool: workers, backlog, calls running
  and how far each is behind live.
* ``POST /callstream/calls`` -- analyse a stream now: ``{"StreamName"|"StreamARN",
  "StartFragmentNumber"?, "CallId"?, "SwapChannels"?}``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from callstream.api.app import Handler, ServerState, json_response, read_json
from callstream.api.errors import KvsError

if TYPE_CHECKING:
    from callstream.analytics.callstore import CallRow

__all__ = ["GET_ROUTES", "ROUTES", "call_export", "call_page", "call_row", "recording_path"]

CALLS_PATH = "/callstream/calls"
ANALYTICS_PATH = "/callstream/analytics"


def _invalid(message: str) -> KvsError:
    return KvsError("InvalidArgumentException", message)


def _token(row_started: int, call_id: str) -> str:
    raw = json.dumps([row_started, call_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        started, call_id = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(started, int) or not isinstance(call_id, str):
            raise ValueError
    except (ValueError, TypeError):
        raise _invalid("next: not a NextToken this API gave.") from None
    return started, call_id


async def call_page(state: ServerState, query: Mapping[str, str]) -> dict[str, Any]:
    """The page of the call list ``query`` asks for (``limit``, ``next``, ``status``,
    ``search``, ``flagged``): ``{"Calls": [...], "NextToken"?}``; bad values raise the
    400. Shared by the API and the web UI."""
    calls = state.calls
    if calls is None:
        return {"Calls": []}
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise _invalid("limit must be an integer.") from None
    if not 1 <= limit <= 1000:
        raise _invalid("limit must be within 1..1000.")
    before = _page(query["next"]) if query.get("next") else None
    status = query.get("status") or None
    if status is not None and status not in ("STARTED", "TRANSCRIBING", "ENDED", "ERRORED"):
        raise _invalid("status must be STARTED, TRANSCRIBING, ENDED or ERRORED.")
    rows = await state.run(
        calls.list_calls,
        limit=limit,
        before=before,
        status=status,
        search=query.get("search") or None,
        flagged=query.get("flagged") in ("1", "true"),
    )
    body: dict[str, Any] = {"Calls": [r.to_json() for r in rows]}
    if len(rows) == limit:
        body["NextToken"] = _token(rows[-1].started_ms, rows[-1].call_id)
    return body


async def list_calls(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The call list (see the module docstring)."""
    return json_response(await call_page(state, request.query))


async def call_row(state: ServerState, call_id: str) -> CallRow:
    """The call's row (404 ``ResourceNotFoundException`` when there is none)."""
    calls = state.calls
    row: CallRow | None = None if calls is None else await state.run(calls.get, call_id)
    if row is None:
        raise KvsError("ResourceNotFoundException", f"Call {call_id} not found.")
    return row


async def call_export(state: ServerState, call_id: str) -> dict[str, Any] | None:
    """The call's export (``call.json``), once it ended."""
    assert state.calls is not None
    path = state.calls.path(call_id, "call.json")
    try:
        text = await state.run(path.read_text, encoding="utf-8")
    except FileNotFoundError:
        return None
    export: dict[str, Any] = json.loads(text)
    return export


def recording_path(state: ServerState, call_id: str) -> Path:
    """The call's stereo WAV (404 while it has none)."""
    assert state.calls is not None
    path = state.calls.path(call_id, "recording.wav")
    if not path.is_file():
        raise KvsError("ResourceNotFoundException", f"Call {call_id} has no recording yet.")
    return path


async def get_call(request: web.Request, state: ServerState) -> web.StreamResponse:
    """One call: its row, and its export once finished."""
    call_id = request.match_info["call_id"]
    row = await call_row(state, call_id)
    body: dict[str, Any] = {"CallSummary": row.to_json()}
    export = await call_export(state, call_id)
    if export is not None:
        body["Call"] = export
    return json_response(body)


async def get_transcript(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The transcript so far, and the bus cursor to follow it from."""
    call_id = request.match_info["call_id"]
    row = await call_row(state, call_id)
    assert state.calls is not None
    cursor = state.events.last_cursor
    segments = await state.run(state.calls.transcript, call_id)
    return json_response(
        {
            "CallId": call_id,
            "Status": row.status,
            "Segments": segments,
            "Cursor": cursor,
        }
    )


async def get_events(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The call's events.jsonl."""
    call_id = request.match_info["call_id"]
    await call_row(state, call_id)
    assert state.calls is not None
    path = state.calls.path(call_id, "events.jsonl")
    try:
        data = await state.run(path.read_bytes)
    except FileNotFoundError:
        data = b""
    return web.Response(body=data, content_type="application/x-ndjson")


async def get_recording(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The call's stereo WAV."""
    call_id = request.match_info["call_id"]
    row = await call_row(state, call_id)
    if row.node is not None:
        raise KvsError(
            "ResourceNotFoundException",
            f"Call {call_id} is analysed on cluster node {row.node}: its recording is there.",
        )
    path = recording_path(state, call_id)
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


async def analytics_status(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The recogniser pool's load and the calls being analysed."""
    service = state.analytics
    if service is None:
        return json_response({"Enabled": False, "Calls": []})
    pool = service.pool
    stats = dataclasses.asdict(pool.stats()) if pool is not None else None
    return json_response(
        {
            "Enabled": True,
            "Engine": service.recognizer.name if service.recognizer is not None else None,
            "Pool": stats,
            "Calls": [
                {
                    "CallId": call_id,
                    "SecondsBehindLive": round(pool.behind(call_id), 3) if pool else 0.0,
                    "DurationSeconds": round(session.analysis.duration(), 3),
                }
                for call_id, session in service.sessions.items()
            ],
        }
    )


async def start_call(request: web.Request, state: ServerState) -> web.StreamResponse:
    """Analyse a stream (``POST /callstream/calls``)."""
    service = state.analytics
    if service is None:
        raise KvsError("ResourceNotFoundException", "Call analytics is off on this server.")
    body = await read_json(request)
    name = body.get("StreamName")
    arn = body.get("StreamARN")
    if not isinstance(name, str | None) or not isinstance(arn, str | None) or not (name or arn):
        raise _invalid("give StreamName or StreamARN.")
    start = body.get("StartFragmentNumber")
    if start is not None and (not isinstance(start, str) or not start.isdigit()):
        raise _invalid("StartFragmentNumber must be a fragment number (digits).")
    call_id = body.get("CallId")
    if call_id is not None and (not isinstance(call_id, str) or not 0 < len(call_id) <= 256):
        raise _invalid("CallId must be a string of 1..256 characters.")
    stream = await state.store.stream(name=name, arn=arn)
    session = await service.analyze_stream(
        stream, start_fragment=start, call_id=call_id, swap=bool(body.get("SwapChannels"))
    )
    return json_response({"CallId": session.call_id, "StreamARN": stream.arn})


ROUTES: dict[str, Handler] = {CALLS_PATH: start_call}
GET_ROUTES: dict[str, Handler] = {
    CALLS_PATH: list_calls,
    CALLS_PATH + "/{call_id}": get_call,
    CALLS_PATH + "/{call_id}/transcript": get_transcript,
    CALLS_PATH + "/{call_id}/events": get_events,
    CALLS_PATH + "/{call_id}/recording.wav": get_recording,
    ANALYTICS_PATH: analytics_status,
}
