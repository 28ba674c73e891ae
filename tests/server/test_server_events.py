"""Call events over HTTP: ``GET /callstream/events`` (JSON pages), the server-sent-events
stream with cursor / Last-Event-ID resume, publishing with ``POST /callstream/events``,
contact records as ``ContactEnded`` events, and a restart of the server."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
import yarl
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from server_helpers import ACCESS_KEY, REGION, SECRET_KEY, Kvs, wait_for

from callstream.api import events as events_api
from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.cli import signed_request
from callstream.events.recorder import contact_ended

CREDS = Credentials(ACCESS_KEY, SECRET_KEY)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def url_of(base: str, path: str, params: dict[str, Any] | None = None) -> str:
    query = urlencode(params or {}, doseq=True, quote_via=quote, safe="")
    return f"{base}{path}" + (f"?{query}" if query else "")


def call(base: str, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
    raw = None if body is None else json.dumps(body).encode()
    status, payload = signed_request(
        method, url_of(base, path, params), region=REGION, body=raw, credentials=CREDS
    )
    return status, json.loads(payload) if payload else None


def publish(base: str, *events: dict[str, Any]) -> list[int]:
    status, body = call(base, "POST", "/callstream/events", {"Events": list(events)})
    assert status == 200, body
    assert body["FailedEntryCount"] == 0
    return [e["Cursor"] for e in body["Entries"]]


def listed(base: str, **params: Any) -> list[dict[str, Any]]:
    """Every event the filters select, following NextCursor."""
    out: list[dict[str, Any]] = []
    cursor = params.pop("cursor", 0)
    while True:
        status, page = call(base, "GET", "/callstream/events", cursor=cursor, **params)
        assert status == 200, page
        out.extend(page["Events"])
        cursor = page["NextCursor"]
        if not page["HasMore"]:
            return out


def ctr(contact_id: str) -> dict[str, Any]:
    return {
        "ContactId": contact_id,
        "Channel": "VOICE",
        "InitiationTimestamp": "2026-11-22T10:00:00Z",
        "DisconnectTimestamp": "2026-11-22T10:01:00Z",
        "DisconnectReason": "CUSTOMER_DISCONNECT",
    }


def contact_events(contact_id: str, arn: str) -> list[dict[str, Any]]:
    return [
        {"EventType": "ContactStarted", "ContactId": contact_id, "Channel": "VOICE"},
        {
            "EventType": "MediaStreamingStarted",
            "ContactId": contact_id,
            "StreamARN": arn,
            "StartFragmentNumber": "91343852333181432392682062626916362215787186434",
            "StartTimestamp": 1_764_870_503_000,
        },
        {
            "EventType": "MediaStreamingStopped",
            "ContactId": contact_id,
            "StreamARN": arn,
            "StopTimestamp": 1_764_870_563_000,
        },
    ]


# --- server-sent events ------------------------------------------------------------------


@dataclass
class Frame:
    id: str | None
    event: str | None
    data: str | None
    comment: str | None = None


async def open_stream(
    base: str,
    session: aiohttp.ClientSession,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    *,
    presign: bool = False,
) -> aiohttp.ClientResponse:
    url = url_of(base, "/callstream/events/stream", params)
    request = AWSRequest(method="GET", url=url, headers=dict(headers or {}))
    if presign:
        SigV4QueryAuth(CREDS, "kinesisvideo", REGION, expires=300).add_auth(request)
        url = request.url
        sent = dict(headers or {})
    else:
        SigV4Auth(CREDS, "kinesisvideo", REGION).add_auth(request)
        sent = dict(request.headers.items())
    resp = await session.get(yarl.URL(url, encoded=True), headers=sent)
    return resp


async def frames(resp: aiohttp.ClientResponse) -> AsyncIterator[Frame]:
    """The SSE frames and comments of a response, as they arrive."""
    fields: dict[str, str] = {}
    while True:
        raw = await resp.content.readline()
        if not raw:
            return
        text = raw.decode().rstrip("\n")
        if text.startswith(":"):
            yield Frame(None, None, None, comment=text[1:].strip())
        elif text:
            name, _, value = text.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        else:  # a blank line dispatches an event, if it has data (as EventSource does)
            if "data" in fields:
                yield Frame(fields.get("id"), fields.get("event"), fields.get("data"))
            fields = {}


async def events_from(stream: AsyncIterator[Frame], n: int, timeout: float = 20) -> list[Frame]:
    out: list[Frame] = []
    async with asyncio.timeout(timeout):
        async for frame in stream:
            if frame.comment is None:
                out.append(frame)
                if len(out) == n:
                    break
    return out


async def first_comment(stream: AsyncIterator[Frame]) -> str:
    async with asyncio.timeout(20):
        async for frame in stream:
            if frame.comment is not None:
                return frame.comment
    raise AssertionError("the stream ended")


# --- tests ---------------------------------------------------------------------------------


def test_contact_and_streaming_events_are_listed_filtered_and_paged(kvs: Kvs) -> None:
    contact_id = uid("c")
    _, arn = kvs.create()
    cursors = publish(kvs.url, *contact_events(contact_id, arn))
    assert cursors == sorted(cursors) and len(set(cursors)) == 3
    status, answer = call(kvs.url, "POST", "/callstream/contacts", ctr(contact_id))
    assert status == 200 and answer["ContactId"] == contact_id
    assert answer["Cursor"] > cursors[-1]
    # the record is readable at once, and it came as an event
    status, stored = call(kvs.url, "GET", f"/callstream/contacts/{contact_id}")
    assert (status, stored) == (200, ctr(contact_id))

    mine = listed(kvs.url, contact=contact_id)
    assert [e["EventType"] for e in mine] == [
        "ContactStarted",
        "MediaStreamingStarted",
        "MediaStreamingStopped",
        "ContactEnded",
    ]
    assert [e["Cursor"] for e in mine] == [*cursors, answer["Cursor"]]
    started = mine[1]
    assert started["StreamARN"] == arn and started["StartTimestamp"] == 1_764_870_503_000
    assert started["StartFragmentNumber"] == "91343852333181432392682062626916362215787186434"
    assert isinstance(started["Time"], int)
    ended = mine[3]
    assert ended["ContactRecord"] == ctr(contact_id)
    assert ended["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    assert ended["DisconnectTimestamp"] == 1795341660000

    on_stream = listed(kvs.url, stream=arn)
    assert [e["EventType"] for e in on_stream] == [
        "StreamCreated",  # published by the store service itself
        "MediaStreamingStarted",
        "MediaStreamingStopped",
    ]
    typed = listed(kvs.url, contact=contact_id, type="ContactStarted,ContactEnded")
    assert [e["Cursor"] for e in typed] == [cursors[0], answer["Cursor"]]
    repeated = listed(kvs.url, contact=contact_id, type=["ContactEnded", "ContactStarted"])
    assert repeated == typed
    one_by_one = listed(kvs.url, contact=contact_id, limit=1)
    assert one_by_one == mine
    after = listed(kvs.url, contact=contact_id, cursor=cursors[1])
    assert [e["Cursor"] for e in after] == [cursors[2], answer["Cursor"]]


def test_the_sse_stream_is_live_and_resumes_with_last_event_id_or_cursor(kvs: Kvs) -> None:
    contact_id = uid("c")
    arn = f"arn:aws:kinesisvideo:us-east-1:123456789012:stream/{uid('s')}/1"
    events = contact_events(contact_id, arn)

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            resp = await open_stream(kvs.url, session, {"contact": contact_id})
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            assert resp.headers["Cache-Control"] == "no-cache"
            stream = frames(resp)
            assert await first_comment(stream) == "callstream events"  # subscribed
            cursors = await asyncio.to_thread(publish, kvs.url, *events[:2])
            got = await events_from(stream, 2)
            assert [f.id for f in got] == [str(c) for c in cursors]
            assert [f.event for f in got] == ["ContactStarted", "MediaStreamingStarted"]
            data = [json.loads(f.data or "") for f in got]
            assert data[1] == {"Cursor": cursors[1], "Time": data[1]["Time"], **events[1]}
            resp.close()  # the client goes away ...

            missed = await asyncio.to_thread(publish, kvs.url, events[2])
            status, answer = await asyncio.to_thread(
                call, kvs.url, "POST", "/callstream/contacts", ctr(contact_id)
            )
            assert status == 200
            # ... and comes back the way EventSource does, with the last id it saw
            again = await open_stream(
                kvs.url,
                session,
                {"contact": contact_id, "cursor": 0},
                {"Last-Event-ID": got[-1].id or ""},
            )
            resumed = await events_from(frames(again), 2)
            assert [f.id for f in resumed] == [str(missed[0]), str(answer["Cursor"])]
            assert [f.event for f in resumed] == ["MediaStreamingStopped", "ContactEnded"]
            again.close()
            by_cursor = await open_stream(
                kvs.url, session, {"contact": contact_id, "cursor": cursors[0]}, presign=True
            )
            assert by_cursor.status == 200  # a presigned URL works too (what EventSource can use)
            from_cursor = await events_from(frames(by_cursor), 3)
            assert [f.id for f in from_cursor] == [
                str(c) for c in (cursors[1], missed[0], answer["Cursor"])
            ]
            by_cursor.close()

    asyncio.run(main())


def test_a_quiet_stream_sends_heartbeats(kvs: Kvs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_api, "HEARTBEAT_S", 0.2)

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            resp = await open_stream(kvs.url, session, {"contact": uid("nobody")})
            stream = frames(resp)
            assert await first_comment(stream) == "callstream events"
            assert await first_comment(stream) == "heartbeat"
            assert await first_comment(stream) == "heartbeat"
            resp.close()

    asyncio.run(main())


def test_requests_are_signed_and_bad_parameters_are_400s(kvs: Kvs) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(kvs.url + "/callstream/events", timeout=10)
    assert err.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(kvs.url + "/callstream/events/stream", timeout=10)
    assert err.value.code == 403

    def refused(method: str, path: str, body: Any = None, **params: Any) -> str:
        status, answer = call(kvs.url, method, path, body, **params)
        assert status == 400 and answer["__type"] == "InvalidArgumentException", answer
        return str(answer["Message"])

    assert "cursor must be a non-negative integer" in refused(
        "GET", "/callstream/events", cursor=-1
    )
    assert "cursor" in refused("GET", "/callstream/events", cursor="abc")
    assert "unknown event type 'Nope'" in refused("GET", "/callstream/events", type="Nope")
    assert "limit must be an integer" in refused("GET", "/callstream/events", limit="x")
    assert "unknown event type" in refused("GET", "/callstream/events/stream", type="X")
    path = "/callstream/events"
    assert "non-empty list" in refused("POST", path, {"Events": {}})
    assert "published by the server only" in refused(
        "POST",
        path,
        {"Events": [{"EventType": "StreamCreated", "StreamARN": "a", "StreamName": "s"}]},
    )
    contact_id = uid("c")
    good = {"EventType": "ContactStarted", "ContactId": contact_id}
    message = refused(
        "POST", path, {"Events": [good, {"EventType": "MediaStreamingStarted", "ContactId": "x"}]}
    )
    assert "Events[1]: MediaStreamingStarted.StreamARN: required" in message
    assert listed(kvs.url, contact=contact_id) == []  # all or nothing
    assert "Events[0].Cursor" in refused("POST", path, {"Events": [{**good, "Cursor": 5}]})
    assert "Events[0]: ContactStarted.Time" in refused(
        "POST", path, {"Events": [{**good, "Time": "now"}]}
    )
    assert "Events[0].ContactRecord: A contact record needs a ContactId" in refused(
        "POST",
        path,
        {"Events": [{"EventType": "ContactEnded", "ContactId": "c", "ContactRecord": {}}]},
    )
    assert "at most 100" in refused("POST", path, {"Events": [good] * 101})
    # a record that is not JSON (NaN) is refused before anything is journaled or stored
    status, answer = signed_request(
        "POST",
        kvs.url + "/callstream/contacts",
        region=REGION,
        body=f'{{"ContactId": "{contact_id}", "Score": NaN}}'.encode(),
        credentials=CREDS,
    )
    assert status == 400 and b"not JSON-serialisable" in answer
    assert call(kvs.url, "GET", f"/callstream/contacts/{contact_id}")[0] == 404

    async def bad_last_event_id() -> int:
        async with aiohttp.ClientSession() as session:
            resp = await open_stream(kvs.url, session, headers={"Last-Event-ID": "yesterday"})
            body = await resp.json()
            assert "Last-Event-ID" in body["Message"]
            return resp.status

    assert asyncio.run(bad_last_event_id()) == 400


def test_contact_records_published_in_process_are_stored_by_the_subscriber(kvs: Kvs) -> None:
    contact_id = uid("c")
    record = ctr(contact_id)
    cursor = kvs.server.state.events.publish(contact_ended(record))  # from a non-loop thread
    wait_for(lambda: kvs.server.state.contacts.get(contact_id) is not None)
    status, stored = call(kvs.url, "GET", f"/callstream/contacts/{contact_id}")
    assert (status, stored) == (200, record)
    (event,) = listed(kvs.url, contact=contact_id)
    assert event["Cursor"] == cursor
    # a ContactEnded published over HTTP stores its record the same way
    other = uid("c")
    publish(kvs.url, {"EventType": "ContactEnded", "ContactId": other, "ContactRecord": ctr(other)})
    status, stored = call(kvs.url, "GET", f"/callstream/contacts/{other}")
    assert (status, stored) == (200, ctr(other))


@pytest.fixture
def server_dir(tmp_path: Path) -> Iterator[tuple[Path, ServerConfig]]:
    yield tmp_path / "data", ServerConfig(credentials={ACCESS_KEY: SECRET_KEY})


def test_events_survive_a_restart_and_an_open_stream_does_not_hold_up_shutdown(
    server_dir: tuple[Path, ServerConfig],
) -> None:
    data_dir, config = server_dir
    contact_id = uid("c")
    first = ServerThread(data_dir, config=config).start()
    ended = threading.Event()
    got: list[Frame] = []

    async def listen(url: str) -> None:
        async with aiohttp.ClientSession() as session:
            resp = await open_stream(url, session, {"contact": contact_id, "cursor": 0})
            async for frame in frames(resp):
                if frame.comment is None:
                    got.append(frame)
        ended.set()  # the server ended the stream when it stopped

    listener = threading.Thread(target=asyncio.run, args=(listen(first.url),))
    listener.start()
    try:
        cursors = publish(first.url, *contact_events(contact_id, "arn:x"))
        status, _ = call(first.url, "POST", "/callstream/contacts", ctr(contact_id))
        assert status == 200
        wait_for(lambda: len(got) == 4)
    finally:
        first.stop()
    assert not first._thread.is_alive()
    assert ended.wait(10)
    listener.join(10)

    second = ServerThread(data_dir, config=config).start()
    try:
        before = listed(second.url, contact=contact_id)
        assert [e["Cursor"] for e in before[:3]] == cursors
        assert [f.id for f in got] == [str(e["Cursor"]) for e in before]
        (more,) = publish(second.url, {"EventType": "ContactStarted", "ContactId": contact_id})
        assert more == before[-1]["Cursor"] + 1
        status, stored = call(second.url, "GET", f"/callstream/contacts/{contact_id}")
        assert (status, stored) == (200, ctr(contact_id))
    finally:
        second.stop()


def test_the_store_reports_streams_and_producers(kvs: Kvs) -> None:
    from server_helpers import connect_audio

    name, arn = kvs.create()
    upload = connect_audio(3, fragment_ms=200)
    result = kvs.put(name, upload.chunks)
    kvs.kv.delete_stream(StreamARN=arn)
    wait_for(lambda: len(listed(kvs.url, stream=arn)) == 4)
    created, connected, ended, deleted = listed(kvs.url, stream=arn)
    assert created["EventType"] == "StreamCreated" and created["StreamName"] == name
    assert created["DataRetentionInHours"] == 24
    assert connected["EventType"] == "ProducerConnected"
    assert connected["FragmentTimecodeType"] == "ABSOLUTE"
    assert ended["EventType"] == "ProducerEnded" and ended["Reason"] == "COMPLETED"
    assert ended["FragmentsStored"] == 3
    assert ended["LastFragmentNumber"] == result.numbers[-1]
    assert deleted["EventType"] == "StreamDeleted" and deleted["StreamARN"] == arn
