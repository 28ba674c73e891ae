"""``place_call`` through its store interface: the call events over HTTP, and a contact run
entirely in this process against the store service (:class:`LocalCallStore`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from flows_helpers import (
    CREDS,
    DISABLE,
    ENABLE,
    KEY,
    RATE,
    REGION,
    SECRET,
    SPEED,
    action,
    call,
    ctr_ms,
    flow_doc,
    noise,
    wav,
)

from callstream.api.server import ServerThread
from callstream.client.aws import sign_request
from callstream.flows import Instance, load_flow
from callstream.flows.call import CallResult, place_call
from callstream.flows.model import Flow
from callstream.flows.store import (
    CALL_EVENTS,
    CallStore,
    CallStoreError,
    CallUpload,
    HttpCallStore,
    LocalCallStore,
)
from callstream.kvs.acks import Ack
from callstream.kvs.selectors import StartSelector
from callstream.media.extract import AudioExtractor, Selection


def streaming_flow() -> Flow:
    """Start streaming, a prompt, a 1 s wait, stop streaming, a prompt, disconnect."""
    doc = flow_doc(
        action("start", "UpdateContactMediaStreamingBehavior", ENABLE, next_action="hello",
               errors={"NoMatchingError": "bye"}),
        action("hello", "MessageParticipant", {"Text": "Hello."}, next_action="pause",
               errors={"NoMatchingError": "bye"}),
        action("pause", "Wait", {"TimeoutSeconds": "1"},
               conditions=[("Equals", "WaitCompleted", "stop")],
               errors={"NoMatchingError": "bye"}),
        action("stop", "UpdateContactMediaStreamingBehavior", DISABLE, next_action="after",
               errors={"NoMatchingError": "bye"}),
        action("after", "MessageParticipant", {"Text": "Bye."}, next_action="bye",
               errors={"NoMatchingError": "bye"}),
        action("bye", "DisconnectParticipant"),
    )  # fmt: skip
    return load_flow(doc, strict=False)


def streaming_call(
    server: ServerThread, tmp_path: Path, seed: int, **kwargs: Any
) -> tuple[CallResult, list[str]]:
    """:func:`streaming_flow` for 20 s of customer noise (from ``seed``) against ``server``:
    the result and the progress lines."""
    lines: list[str] = []
    customer = wav(tmp_path, "customer.wav", noise(20, seed=seed))
    result = call(server, lines=lines, flow=streaming_flow(), customer_audio=customer, **kwargs)
    return result, lines


def assert_call_events(events: list[dict[str, Any]], result: CallResult) -> None:
    """The four events of a contact with one streaming period, with Connect's fields."""
    assert [e["EventType"] for e in events] == list(CALL_EVENTS)
    started, streaming, stopped, ended = events
    instance_arn = result.ctr["InstanceARN"]
    assert started == {
        "EventType": "ContactStarted",
        "ContactId": result.contact_id,
        "Channel": "VOICE",
        "InitiationMethod": "INBOUND",
        "InstanceARN": instance_arn,
        "InitiationTimestamp": result.initiation_timestamp_ms,
        "InitialContactId": result.contact_id,
    }
    assert streaming == {
        "EventType": "MediaStreamingStarted",
        "ContactId": result.contact_id,
        "StreamARN": result.stream_arn,
        "StartFragmentNumber": result.start_fragment_number,
        "StartTimestamp": result.start_timestamp_ms,
        "InstanceARN": instance_arn,
        "Tracks": ["AUDIO_FROM_CUSTOMER", "AUDIO_TO_CUSTOMER"],
    }
    assert stopped == {
        "EventType": "MediaStreamingStopped",
        "ContactId": result.contact_id,
        "StreamARN": result.stream_arn,
        "StopFragmentNumber": result.stop_fragment_number,
        "StopTimestamp": result.stop_timestamp_ms,
        "InstanceARN": instance_arn,
    }
    assert result.stop_fragment_number is not None
    disconnect = ended["DisconnectTimestamp"]
    assert ended == {
        "EventType": "ContactEnded",
        "ContactId": result.contact_id,
        "Channel": "VOICE",
        "InstanceARN": instance_arn,
        "DisconnectReason": "CONTACT_FLOW_DISCONNECT",
        "DisconnectTimestamp": disconnect,
        "ContactRecord": result.ctr,
    }
    assert disconnect // 1000 * 1000 == ctr_ms(result.ctr["DisconnectTimestamp"])


# --- the HTTP store ---------------------------------------------------------------------------


class Recorder:
    """A small server standing in for a callstream server's contact and event APIs: it
    records the signed JSON POSTs it gets (``routes``: the paths it has; others are 404) and
    answers them with an empty object, or with HTTP 500 and ``refusal`` when given."""

    def __init__(self, routes: tuple[str, ...], refusal: str | None = None) -> None:
        self.routes = routes
        self.refusal = refusal
        self.posts: list[tuple[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={KEY}/"), auth
        assert request.content_type == "application/json"
        self.posts.append((request.path, await request.json()))
        if self.refusal is not None:
            return web.Response(status=500, text=self.refusal)
        return web.json_response({})

    async def __aenter__(self) -> Recorder:
        app = web.Application()
        for path in self.routes:
            app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path, body in self.posts:
            if path == "/callstream/events":
                out.extend(body["Events"])
        return out

    def records(self) -> list[Any]:
        return [body for path, body in self.posts if path == "/callstream/contacts"]


class SplitStore:
    """Streams and uploads through one HTTP store (the media server), contact records and
    events through another (the recorder)."""

    def __init__(self, media: HttpCallStore, records: HttpCallStore) -> None:
        self.media = media
        self.records = records

    async def prepare(self) -> None:
        await self.media.prepare()

    async def ensure_stream(
        self, name: str, *, retention_hours: int, kms_key_id: str | None
    ) -> str:
        return await self.media.ensure_stream(
            name, retention_hours=retention_hours, kms_key_id=kms_key_id
        )

    async def open_upload(
        self, stream_arn: str, *, producer_start_ms: int, on_ack: Callable[[Ack], object]
    ) -> CallUpload:
        return await self.media.open_upload(
            stream_arn, producer_start_ms=producer_start_ms, on_ack=on_ack
        )

    async def store_contact_record(self, ctr: Mapping[str, Any]) -> None:
        await self.records.store_contact_record(ctr)

    async def publish(self, event_type: str, detail: Mapping[str, Any]) -> None:
        await self.records.publish(event_type, detail)

    async def close(self) -> None:
        await self.media.close()
        await self.records.close()


def _split_call(
    server: ServerThread, tmp_path: Path, routes: tuple[str, ...]
) -> tuple[CallResult, Recorder, list[str]]:
    customer = wav(tmp_path, "customer.wav", noise(20, seed=21))
    lines: list[str] = []

    async def scenario() -> tuple[CallResult, Recorder]:
        async with Recorder(routes) as recorder:
            store = SplitStore(
                HttpCallStore(server.url, region=REGION, credentials=CREDS),
                HttpCallStore(recorder.url, region=REGION, credentials=CREDS),
            )
            try:
                result = await place_call(
                    flow=streaming_flow(),
                    customer_audio=customer,
                    store=store,
                    speed=SPEED,
                    on_event=lines.append,
                )
            finally:
                await store.close()
        return result, recorder

    result, recorder = asyncio.run(scenario())
    return result, recorder, lines


def test_the_http_store_posts_the_events_and_the_record_once(
    server: ServerThread, tmp_path: Path
) -> None:
    result, recorder, lines = _split_call(
        server, tmp_path, ("/callstream/events", "/callstream/contacts")
    )
    assert result.ctr_stored and "CTR stored" in " ".join(lines)
    assert recorder.records() == [result.ctr]
    # storing the record is the server's ContactEnded: the call does not send it twice
    paths = [path for path, _ in recorder.posts]
    assert paths == ["/callstream/events"] * 3 + ["/callstream/contacts"]
    events = recorder.events()
    assert [e["EventType"] for e in events] == list(CALL_EVENTS[:3])
    ended = {
        "EventType": "ContactEnded",
        "ContactId": result.contact_id,
        "Channel": "VOICE",
        "InstanceARN": result.ctr["InstanceARN"],
        "DisconnectReason": "CONTACT_FLOW_DISCONNECT",
        "DisconnectTimestamp": ctr_ms(result.ctr["DisconnectTimestamp"]),
        "ContactRecord": result.ctr,
    }
    assert_call_events([*events, ended], result)


def test_without_a_contact_api_the_record_travels_in_contact_ended(
    server: ServerThread, tmp_path: Path
) -> None:
    result, recorder, lines = _split_call(server, tmp_path, ("/callstream/events",))
    assert not result.ctr_stored
    assert sum("no contact API (404)" in line for line in lines) == 1
    assert_call_events(recorder.events(), result)


def test_a_server_without_the_event_api_is_reported_once_and_the_call_goes_on(
    server: ServerThread, tmp_path: Path
) -> None:
    result, recorder, lines = _split_call(server, tmp_path, ("/callstream/contacts",))
    assert result.ctr_stored and recorder.records() == [result.ctr]
    assert sum("no event API (404)" in line for line in lines) == 1
    assert result.stop_fragment_number is not None  # streaming was not disturbed
    assert result.end.reason == "disconnected"


def test_a_pooled_stream_that_keeps_no_data_is_stopped_without_waiting_for_persisted(
    server: ServerThread, tmp_path: Path
) -> None:
    # Connect reuses an existing stream whatever its retention; one that keeps no data
    # never sends PERSISTED, so the Disabled block must not wait for it (it used to wait
    # for PutMedia's 30 s finish timeout, and the customer hung up meanwhile).
    import boto3

    instance = Instance()
    contact_id = str(uuid.uuid4())
    kv = boto3.client(
        "kinesisvideo",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )
    kv.create_stream(StreamName=instance.stream_name(contact_id), DataRetentionInHours=0)
    result, lines = streaming_call(server, tmp_path, 25, instance=instance, contact_id=contact_id)
    assert {s.action: s.result for s in result.trace}["stop"] == "NextAction"
    assert result.end.reason == "disconnected"
    assert not any("not confirmed" in line for line in lines)
    assert result.stop_fragment_number is not None


def _signed_get(server: ServerThread, path: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    url = server.url + path
    headers = sign_request("GET", url, credentials=CREDS, region=REGION)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, None


async def _sse_events(server: ServerThread, contact_id: str, count: int) -> list[dict[str, Any]]:
    import aiohttp

    url = f"{server.url}/callstream/events/stream?contact={contact_id}&cursor=0"
    headers = sign_request("GET", url, credentials=CREDS, region=REGION)
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 200
        async with asyncio.timeout(30):
            while len(out) < count:
                line = (await resp.content.readline()).decode()
                if line.startswith("data: "):
                    out.append(json.loads(line[len("data: ") :]))
    return out


def test_call_events_are_on_the_servers_event_api(server: ServerThread, tmp_path: Path) -> None:
    status, _ = _signed_get(server, "/callstream/events?limit=1")
    if status in (404, 405):
        pytest.skip(f"this server has no GET /callstream/events yet ({status})")
    result, lines = streaming_call(server, tmp_path, 22)
    assert result.ctr_stored, lines
    status, page = _signed_get(server, f"/callstream/events?contact={result.contact_id}")
    assert status == 200

    def plain(event: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in event.items() if k not in ("Cursor", "Time")}

    assert_call_events([plain(e) for e in page["Events"]], result)
    streamed = asyncio.run(_sse_events(server, result.contact_id, len(CALL_EVENTS)))
    assert streamed == page["Events"]


# --- the store service in this process --------------------------------------------------------


def _open_backend() -> Callable[..., Any]:
    backends = pytest.importorskip("callstream.store.backends")
    open_backend = getattr(backends, "open_backend", None)
    if open_backend is None:
        pytest.skip("callstream.store.backends.open_backend (the async embedded backend) is absent")
    return open_backend  # type: ignore[no-any-return]


async def _read_audio(store: Any, arn: str, start_fragment: str) -> tuple[np.ndarray, list[str]]:
    """Stereo audio and fragment numbers from ``start_fragment`` on, read in process."""
    stream = await store.stream(arn=arn)
    extractor = AudioExtractor(Selection.ALL)
    numbers: list[str] = []
    pcm = bytearray()
    async for fragment in store.read(
        stream, StartSelector.from_fragment(start_fragment), follow=False
    ):
        numbers.append(fragment.number)
        pcm += extractor.add(fragment.parse())
    pcm += extractor.finish()
    return np.frombuffer(bytes(pcm), "<i2").reshape(-1, 2), numbers


def test_a_contact_runs_entirely_in_process_with_the_local_store(tmp_path: Path) -> None:
    open_backend = _open_backend()
    from callstream.store.service import MediaStore

    customer = noise(20, seed=23)
    customer_path = wav(tmp_path, "customer.wav", customer)
    events: list[dict[str, Any]] = []
    records: list[Mapping[str, Any]] = []

    async def publish(event_type: str, detail: Mapping[str, Any]) -> None:
        events.append({"EventType": event_type, **detail})

    async def scenario() -> tuple[CallResult, np.ndarray, list[str], Any]:
        store = MediaStore(open_backend("embedded", tmp_path / "store"))
        await store.start()
        try:
            result = await place_call(
                flow=streaming_flow(),
                customer_audio=customer_path,
                store=LocalCallStore(store, publish=publish, store_contact_record=records.append),
                speed=SPEED,
                on_event=lambda line: None,
            )
            assert result.stream_arn is not None and result.start_fragment_number is not None
            stereo, numbers = await _read_audio(
                store, result.stream_arn, result.start_fragment_number
            )
            stream = await store.stream(arn=result.stream_arn)
        finally:
            await store.close()
        return result, stereo, numbers, stream

    result, stereo, numbers, stream = asyncio.run(scenario())
    assert result.end.reason == "disconnected"
    assert result.ctr_stored and records == [result.ctr]
    assert_call_events(events, result)
    assert stream.name == result.stream_name and stream.data_retention_hours == 24

    # the stream holds exactly [StartTimestamp, StopTimestamp) of what was said and heard
    assert result.start_timestamp_ms is not None and result.stop_timestamp_ms is not None
    init = result.initiation_timestamp_ms
    start = (result.start_timestamp_ms - init) * RATE // 1000
    stop = (result.stop_timestamp_ms - init) * RATE // 1000
    assert stereo.shape == (stop - start, 2)
    np.testing.assert_array_equal(stereo[:, 0], customer[start:stop])
    np.testing.assert_array_equal(stereo[:, 1], result.heard[start:stop])
    hello, bye = result.prompts
    assert stereo[hello.start - start : hello.end - start, 1].any()
    assert stop <= bye.start
    assert numbers[0] == result.start_fragment_number
    assert numbers[-1] == result.stop_fragment_number
    (recording,) = result.ctr["Recordings"]
    assert recording["FragmentStopNumber"] == numbers[-1]


def test_the_local_store_reuses_pooled_streams_and_may_leave_records_to_the_events(
    tmp_path: Path,
) -> None:
    open_backend = _open_backend()
    from callstream.store.service import MediaStore

    customer = wav(tmp_path, "customer.wav", noise(3, seed=24))
    flow = load_flow(flow_doc(action("bye", "DisconnectParticipant")), strict=False)

    async def scenario() -> tuple[str, str, Any, list[CallResult], list[str], list[str]]:
        store = MediaStore(open_backend("embedded", tmp_path / "store"))
        await store.start()
        try:
            local: CallStore = LocalCallStore(store)
            first = await local.ensure_stream("pooled", retention_hours=2, kms_key_id="my-key")
            again = await local.ensure_stream("pooled", retention_hours=48, kms_key_id=None)
            record = await store.stream(arn=first)
            # no record store, no event sink: the call says so and goes on
            bare: list[str] = []
            plain = await place_call(flow=flow, customer_audio=customer, store=local, speed=SPEED,
                                     on_event=bare.append)  # fmt: skip
            # events only: the record rides on ContactEnded
            seen: list[str] = []
            via_events = await place_call(
                flow=flow,
                customer_audio=customer,
                store=LocalCallStore(store, publish=lambda t, d: seen.append(t)),
                speed=SPEED,
                on_event=lambda line: None,
            )
            await local.close()
        finally:
            await store.close()
        return first, again, record, [plain, via_events], bare, seen

    first, again, record, (plain, via_events), bare, seen = asyncio.run(scenario())
    assert first == again
    assert record.name == "pooled" and record.data_retention_hours == 2
    assert record.kms_key_id == "my-key"
    assert not plain.ctr_stored
    assert sum("no contact-record store" in line for line in bare) == 1
    assert via_events.ctr_stored
    assert seen == ["ContactStarted", "ContactEnded"]


def test_the_http_store_names_what_failed_for_each_post() -> None:
    async def scenario() -> list[str]:
        messages: list[str] = []
        paths = ("/callstream/events", "/callstream/contacts")
        async with Recorder(paths, refusal="broken " * 100) as recorder:
            url = recorder.url
            store = HttpCallStore(url, region=REGION, credentials=CREDS)
            try:
                for post in (
                    store.store_contact_record({"ContactId": "c"}),
                    store.publish("ContactStarted", {"ContactId": "c"}),
                ):
                    with pytest.raises(CallStoreError) as err:
                        await post
                    messages.append(str(err.value))
            finally:
                await store.close()
        # the server is gone: the connection itself fails
        store = HttpCallStore(url, region=REGION, credentials=CREDS)
        try:
            with pytest.raises(CallStoreError) as err:
                await store.publish("ContactStarted", {"ContactId": "c"})
            messages.append(str(err.value))
        finally:
            await store.close()
        return messages

    stored, published, refused = asyncio.run(scenario())
    assert stored == "storing the CTR failed: HTTP 500 " + ("broken " * 100)[:200]
    assert published == "publishing ContactStarted failed: HTTP 500 " + ("broken " * 100)[:200]
    assert refused.startswith("publishing ContactStarted failed: ") and "HTTP" not in refused
