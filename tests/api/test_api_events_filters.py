"""``GET /callstream/events`` and its SSE stream filtered by AWS ``detail-type`` and by
``since``, and in the EventBridge ``format``, over real SigV4-signed HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
import yarl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from callstream.api.app import ServerConfig
from callstream.api.errors import KvsError
from callstream.api.events import parse_since
from callstream.api.server import ServerThread
from callstream.cli import signed_request
from callstream.events import Event, to_eventbridge

KEY, SECRET, REGION, ACCOUNT = "AKIDFILTER", "filter-secret", "eu-central-1", "444455556666"
CREDS = Credentials(KEY, SECRET)
CHIME = "Chime VoiceConnector Streaming Status"
CONNECT = "Amazon Connect Contact Event"
BASE_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z: later than any other event's Time


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = ServerConfig(credentials={KEY: SECRET}, region=REGION, account_id=ACCOUNT)
    with ServerThread(tmp_path_factory.mktemp("filters") / "data", config=config) as running:
        yield running


def url_of(base: str, path: str, params: dict[str, Any]) -> str:
    query = urlencode(params, doseq=True, quote_via=quote, safe="")
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
    return [e["Cursor"] for e in body["Entries"]]


def listed(base: str, **params: Any) -> list[dict[str, Any]]:
    """Every event selected, following NextCursor."""
    out: list[dict[str, Any]] = []
    cursor = params.pop("cursor", 0)
    while True:
        status, page = call(base, "GET", "/callstream/events", cursor=cursor, **params)
        assert status == 200, page
        out.extend(page["Events"])
        cursor = page["NextCursor"]
        if not page["HasMore"]:
            return out


def status_event(call_id: str, status: str, at: int) -> dict[str, Any]:
    return {
        "EventType": "VoiceConnectorStreamingStatus",
        "Time": at,
        "StreamingStatus": status,
        "VoiceConnectorId": "vc-filters",
        "TransactionId": f"tx-{call_id}",
        "CallId": call_id,
        "Direction": "Outbound",
        "StartTime": at,
        "StreamARN": f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/ChimeVoiceConnector-x/1",
        "StartFragmentNumber": "91343852333181432392682062626916362215787186434",
    }


def mixed(call_id: str, base: int) -> list[dict[str, Any]]:
    """A call's events, one second apart from ``base``."""
    return [
        status_event(call_id, "STARTED", base),
        {"EventType": "ContactStarted", "Time": base + 1000, "ContactId": call_id},
        {
            "EventType": "MediaStreamingStarted",
            "Time": base + 2000,
            "ContactId": call_id,
            "StreamARN": "arn:x",
            "StartFragmentNumber": "1",
            "StartTimestamp": base,
        },
        status_event(call_id, "ENDED", base + 3000),
        {"EventType": "ContactEnded", "Time": base + 4000, "ContactId": call_id},
    ]


def uid() -> str:
    return uuid.uuid4().hex[:10]


def test_detail_type_selects_every_event_type_aws_sends_that_way(server: ServerThread) -> None:
    a, b = uid(), uid()
    cursors = publish(server.url, *mixed(a, BASE_MS), *mixed(b, BASE_MS))
    chime = listed(server.url, **{"detail-type": CHIME, "since": BASE_MS})
    mine = [e for e in chime if e["CallId"] in (a, b)]
    assert [e["Cursor"] for e in mine] == [cursors[0], cursors[3], cursors[5], cursors[8]]
    assert [e["StreamingStatus"] for e in mine] == ["STARTED", "ENDED"] * 2
    assert {e["EventType"] for e in chime} == {"VoiceConnectorStreamingStatus"}

    # the Connect detail-type is two callstream types; combined with the other filters
    connect = listed(server.url, contact=a, **{"detail-type": CONNECT})
    assert [e["EventType"] for e in connect] == ["ContactStarted", "ContactEnded"]
    both = listed(server.url, contact=a, **{"detail-type": [CONNECT, CHIME]})
    assert [e["EventType"] for e in both] == ["ContactStarted", "ContactEnded"]
    assert listed(server.url, call=a, **{"detail-type": f"{CONNECT},{CHIME}"}) == mine[:2]
    # types AWS does not emit have their own name as detail-type
    own = listed(server.url, contact=a, **{"detail-type": "MediaStreamingStarted"})
    assert [e["Cursor"] for e in own] == [cursors[2]]
    # type and detail-type must both pass; none can -> nothing, not everything
    narrowed = listed(server.url, contact=a, type="ContactEnded", **{"detail-type": CONNECT})
    assert [e["Cursor"] for e in narrowed] == [cursors[4]]
    assert listed(server.url, type="ContactStarted", **{"detail-type": CHIME}) == []


def test_since_takes_iso_8601_or_epoch_ms_and_pages_oldest_first(server: ServerThread) -> None:
    call_id = uid()
    base = BASE_MS + 86_400_000  # 2100-01-02
    cursors = publish(server.url, *mixed(call_id, base))
    assert [e["Cursor"] for e in listed(server.url, contact=call_id, since=base + 1000)] == [
        cursors[1],
        cursors[2],
        cursors[4],
    ]
    mine = {"call": call_id}
    for since in (
        base + 3000,
        "2100-01-02T00:00:03Z",
        "2100-01-02T00:00:03.000+00:00",
        "2100-01-02T01:00:03+01:00",
        "2100-01-02T00:00:03",  # no zone: UTC
    ):
        got = listed(server.url, since=since, **mine)
        assert [e["Cursor"] for e in got] == [cursors[3]], since
    assert listed(server.url, since=base + 3001, **mine) == []
    assert len(listed(server.url, since="2100-01-02", **mine)) == 2
    # with the other filters and a page of one event at a time, oldest first
    one_by_one = listed(server.url, since=base, limit=1, **{"detail-type": CHIME, **mine})
    assert [e["Cursor"] for e in one_by_one] == [cursors[0], cursors[3]]
    # the time filter is on the event's Time, not on when it was published
    (late,) = publish(server.url, status_event(call_id, "UPDATED", base + 500))
    assert [e["Cursor"] for e in listed(server.url, since=base + 400, **mine)] == [
        cursors[3],
        late,
    ]


def test_format_eventbridge_gives_what_aws_would_send(server: ServerThread) -> None:
    call_id = uid()
    events = mixed(call_id, BASE_MS + 2 * 86_400_000)
    cursors = publish(server.url, *events)
    status, page = call(
        server.url,
        "GET",
        "/callstream/events",
        cursor=cursors[0] - 1,
        limit=len(events),
        format="eventbridge",
    )
    assert status == 200 and page["NextCursor"] == cursors[-1]
    sent = page["Events"]
    for got, fields, cursor in zip(sent, events, cursors, strict=True):
        kind, when = fields["EventType"], fields["Time"]
        rest = {k: v for k, v in fields.items() if k not in ("EventType", "Time")}
        event = Event(kind, rest, when, cursor)
        assert got == to_eventbridge(event, account=ACCOUNT, region=REGION)
    started = sent[0]
    assert started["source"] == "aws.chime" and started["detail-type"] == CHIME
    assert started["id"] == f"callstream-{cursors[0]}"
    assert started["account"] == ACCOUNT and started["region"] == REGION
    assert started["time"] == "2100-01-03T00:00:00Z"
    assert started["detail"]["callId"] == call_id
    assert started["detail"]["streamingStatus"] == "STARTED"
    assert started["detail"]["startTime"] == "2100-01-03T00:00:00.000Z"
    assert started["detail"]["version"] == "0"
    assert sent[1]["source"] == "aws.connect" and sent[1]["detail"]["eventType"] == "INITIATED"
    assert sent[2]["source"] == "callstream" and sent[2]["detail-type"] == "MediaStreamingStarted"
    # the default format is unchanged
    default = listed(server.url, call=call_id, format="callstream")
    assert default == listed(server.url, call=call_id)
    assert default[0]["EventType"] == "VoiceConnectorStreamingStatus"


# --- the SSE stream ----------------------------------------------------------------------


async def open_stream(
    base: str, session: aiohttp.ClientSession, params: dict[str, Any]
) -> aiohttp.ClientResponse:
    url = url_of(base, "/callstream/events/stream", params)
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(CREDS, "kinesisvideo", REGION).add_auth(request)
    return await session.get(yarl.URL(url, encoded=True), headers=dict(request.headers.items()))


async def data_frames(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str, Any]]:
    """(id, event, parsed data) of each SSE event; comments are skipped."""
    fields: dict[str, str] = {}
    while True:
        raw = await resp.content.readline()
        if not raw:
            return
        text = raw.decode().rstrip("\n")
        if text.startswith(":"):
            continue
        if text:
            name, _, value = text.partition(":")
            fields[name] = value.removeprefix(" ")
        elif "data" in fields:
            yield fields["id"], fields["event"], json.loads(fields["data"])
            fields = {}


def test_the_sse_stream_takes_the_same_filters_and_format(server: ServerThread) -> None:
    call_id = uid()
    base = BASE_MS + 3 * 86_400_000
    old = publish(server.url, *mixed(call_id, base))

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            # since without a cursor: the matching events from the journal, then live ones
            params = {
                "detail-type": CHIME,
                "since": base + 1,
                "format": "eventbridge",
                "call": call_id,
            }
            resp = await open_stream(server.url, session, params)
            assert resp.status == 200
            frames = data_frames(resp)
            async with asyncio.timeout(20):
                first = await anext(frames)
                assert first[0] == str(old[3]) and first[1] == "VoiceConnectorStreamingStatus"
                assert first[2]["detail-type"] == CHIME
                assert first[2]["detail"]["streamingStatus"] == "ENDED"
                assert first[2]["id"] == f"callstream-{old[3]}"
                (_, new, _) = await asyncio.to_thread(
                    publish,
                    server.url,
                    status_event(call_id, "UPDATED", base),  # before since: not sent
                    status_event(call_id, "FAILED", base + 5000),
                    {"EventType": "ContactEnded", "Time": base + 6000, "ContactId": call_id},
                )
                live = await anext(frames)
                assert live[0] == str(new)
                assert live[2]["detail"]["streamingStatus"] == "FAILED"
                assert live[2]["source"] == "aws.chime"
            resp.close()

    asyncio.run(main())


def test_bad_values_are_400s_and_requests_must_be_signed(server: ServerThread) -> None:
    import urllib.error
    import urllib.request

    for path in ("/callstream/events", "/callstream/events/stream"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + path + "?detail-type=x&since=1", timeout=10)
        assert err.value.code == 403

    def refused(path: str, **params: Any) -> str:
        status, answer = call(server.url, "GET", path, **params)
        assert status == 400 and answer["__type"] == "InvalidArgumentException", answer
        return str(answer["Message"])

    for path in ("/callstream/events", "/callstream/events/stream"):
        assert "since: 'yesterday' is neither" in refused(path, since="yesterday")
        assert "since: '-5'" in refused(path, since="-5")
        assert "out of range" in refused(path, since="99999999999999999999")
        assert "format must be one of callstream, eventbridge, got 'xml'" in refused(
            path, format="xml"
        )
        assert "detail-type: no event has detail-type 'Chime'" in refused(
            path, **{"detail-type": "Chime"}
        )
        assert CHIME in refused(path, **{"detail-type": "nope"})  # the known ones are listed
    # the existing parameters keep their checks
    assert "cursor must be a non-negative integer" in refused("/callstream/events", cursor=-1)
    assert "unknown event type 'Nope'" in refused("/callstream/events", type="Nope")


def test_parse_since() -> None:
    assert parse_since(None) is None and parse_since(" ") is None
    assert parse_since("0") == 0
    assert parse_since("1764870503123") == 1764870503123
    assert parse_since("2025-12-04T17:48:23.123Z") == 1764870503123
    assert parse_since("2025-12-04T18:48:23.123 01:00") == 1764870503123  # '+' sent raw
    assert parse_since("1970-01-01") == 0
    for bad in ("now", "-1", "1969-12-31T23:59:59Z", "12:00", "2025-13-01"):
        with pytest.raises(KvsError):
            parse_since(bad)
