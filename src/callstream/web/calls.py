"""The UI's call endpoints, on the call store the analytics API reads
(:mod:`callstream.api.calls` gives the paging, rows and exports).

* ``GET /ui/api/calls?limit&next&status&search&flagged`` -- a page of the call list
  (newest first), the total count and the server's clock.
* ``GET /ui/api/calls/{id}`` -- the row, the export once the call ended, whether the
  recording exists.
* ``GET /ui/api/calls/{id}/transcript`` -- segments so far (partials folded into
  finals), alerts with their evidence, category matches with their time ranges, the
  call's streams (a voice-connector call's start event names its first leg only; the
  other is found by :func:`other_leg`), and the bus cursor to follow live from.
* ``GET /ui/api/calls/{id}/recording.wav`` (byte ranges; ``?download=1`` saves it),
  ``/call.json`` (the export), ``/transcript.txt`` (``[mm:ss] CALLER: text`` lines).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from callstream.api.app import ServerState
from callstream.api.calls import call_export, call_page, call_row, recording_path
from callstream.api.errors import KvsError
from callstream.mkv.ebml import MkvError
from callstream.store.base import StoreError
from callstream.web.http import UiError, attachment, json_ok

__all__ = ["ROUTES", "call_extras", "other_leg", "transcript_text"]

DEFAULT_PAGE = 50


async def list_calls(request: web.Request, state: ServerState) -> web.StreamResponse:
    """A page of the call list."""
    query = dict(request.query)
    query.setdefault("limit", str(DEFAULT_PAGE))
    page = await call_page(state, query)
    total = 0 if state.calls is None else await state.run(state.calls.count)
    page["Total"] = total
    page["ServerTime"] = _now_ms()
    return json_ok(page)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


async def get_call(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The call's row, export and recording state."""
    call_id = request.match_info["call_id"]
    row = await call_row(state, call_id)
    body: dict[str, Any] = {"CallSummary": row.to_json(), "ServerTime": _now_ms()}
    export = await call_export(state, call_id)
    if export is not None:
        body["Call"] = export
    try:
        recording_path(state, call_id)
        body["HasRecording"] = True
    except KvsError:
        body["HasRecording"] = False
    return json_ok(body)


def call_extras(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Alerts, category matches and the call's streams from its event log (LCA records)."""
    alerts: list[dict[str, Any]] = []
    categories: dict[str, list[dict[str, Any]]] = {}
    channels: dict[str, Any] = {}
    for record in records:
        kind = record.get("EventType")
        if kind == "ADD_CALL_ALERT":
            alerts.append(record)
        elif kind == "ADD_CALL_CATEGORY":
            details = record.get("MatchedDetails") or {}
            for name in record.get("MatchedCategories") or []:
                ranges = (details.get(name) or {}).get("TimestampRanges") or []
                categories.setdefault(str(name), []).extend(ranges)
        elif kind == "START" and isinstance(record.get("Channels"), dict):
            channels = record["Channels"]
    return {"Alerts": alerts, "Categories": categories, "Channels": channels}


async def get_transcript(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The transcript so far with alerts and categories, and the cursor to follow from."""
    call_id = request.match_info["call_id"]
    row = await call_row(state, call_id)
    calls = state.calls
    assert calls is not None
    cursor = state.events.last_cursor  # before reading: nothing after it is missed

    def read() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return calls.transcript(call_id), call_extras(list(calls.events(call_id)))

    segments, extras = await state.run(read)
    if row.source == "VOICE_CONNECTOR" and row.transaction_id:
        extras["Channels"] = await other_leg(state, extras["Channels"], row.transaction_id)
    return json_ok(
        {
            "CallId": call_id,
            "Status": row.status,
            "Segments": segments,
            **extras,
            "Cursor": cursor,
        }
    )


_CHIME_STREAM = re.compile(r"^(ChimeVoiceConnector-.+-)[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
LEG_WINDOW_MS = 10_000
MAX_LEG_CANDIDATES = 20


async def other_leg(
    state: ServerState, channels: dict[str, Any], transaction_id: str
) -> dict[str, Any]:
    """``channels`` with a voice-connector call's second leg added when its start event
    named only the first: the connector's leg stream created within
    :data:`LEG_WINDOW_MS` of it whose fragments carry the call's ``TransactionId``."""
    if len(channels) != 1:
        return channels
    ((role, known),) = channels.items()
    try:
        first = await state.store.stream(arn=str((known or {}).get("StreamARN")))
    except StoreError:
        return channels
    found = _CHIME_STREAM.match(first.name)
    if found is None:
        return channels
    streams = await state.store.list_streams(prefix=found.group(1), limit=10_000)
    near = [
        s
        for s in streams
        if s.arn != first.arn and abs(s.creation_time_ms - first.creation_time_ms) <= LEG_WINDOW_MS
    ]
    near.sort(key=lambda s: abs(s.creation_time_ms - first.creation_time_ms))
    for stream in near[:MAX_LEG_CANDIDATES]:
        records = await state.store.list_fragments(stream, limit=1)
        if not records:
            continue
        try:
            fragment = await state.store.fragment(stream, records[0])
            tags = (await state.run(fragment.parse)).tags
        except (StoreError, MkvError, IndexError, ValueError):
            continue
        if tags.get("TransactionId") == transaction_id:
            other = "AGENT" if role == "CALLER" else "CALLER"
            return {**channels, other: {"StreamARN": stream.arn}}
    return channels


def _clock(seconds: float) -> str:
    whole = int(max(0.0, seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def transcript_text(segments: list[dict[str, Any]]) -> str:
    """The transcript as text: one ``[mm:ss] CHANNEL: words`` line per final segment."""
    lines = [
        f"[{_clock(float(s.get('StartTime') or 0))}] {s.get('Channel')}: {s.get('Transcript')}"
        for s in segments
        if not s.get("IsPartial") and s.get("Transcript")
    ]
    return "".join(line + "\n" for line in lines)


async def get_transcript_text(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The transcript as a text download."""
    call_id = request.match_info["call_id"]
    await call_row(state, call_id)
    assert state.calls is not None
    segments = await state.run(state.calls.transcript, call_id)
    return web.Response(
        text=transcript_text(segments),
        content_type="text/plain",
        charset="utf-8",
        headers={
            "Content-Disposition": attachment(f"{call_id}-transcript.txt"),
            "Cache-Control": "no-store",
        },
    )


async def get_export(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The export (``call.json``) as a download."""
    call_id = request.match_info["call_id"]
    await call_row(state, call_id)
    export = await call_export(state, call_id)
    if export is None:
        raise UiError(404, "ResourceNotFoundException", f"Call {call_id} has not ended yet.")
    response = json_ok(export)
    response.headers["Content-Disposition"] = attachment(f"{call_id}.json")
    return response


async def get_recording(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The stereo recording; byte ranges let the player seek."""
    call_id = request.match_info["call_id"]
    await call_row(state, call_id)
    path = recording_path(state, call_id)
    headers = {"Content-Type": "audio/wav", "Cache-Control": "no-store"}
    if request.query.get("download"):
        headers["Content-Disposition"] = attachment(f"{call_id}.wav")
    return web.FileResponse(path, headers=headers)


ROUTES = (
    ("/api/calls", list_calls),
    ("/api/calls/{call_id}", get_call),
    ("/api/calls/{call_id}/transcript", get_transcript),
    ("/api/calls/{call_id}/transcript.txt", get_transcript_text),
    ("/api/calls/{call_id}/call.json", get_export),
    ("/api/calls/{call_id}/recording.wav", get_recording),
)
"""GET routes under the UI prefix."""
