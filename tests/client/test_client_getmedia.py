"""GetMedia consumer: the sans-I/O session against scripted payloads, and the boto3 edge."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials

from callstream.client.getmedia import (
    GetMediaConsumer,
    GetMediaError,
    GetMediaSession,
    MediaRequest,
    StartSelector,
    fragment_number_key,
    get_media,
)
from callstream.mkv import Fragment, render_fragment, writer
from callstream.mkv.writer import TrackSpec

T0 = 1_726_677_688_000
EBML = writer.ebml_header(doc_type_version=2)
HEADER = writer.info(title="Kinesis Video SDK") + writer.tracks(
    [
        TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
        TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
    ]
)


def number(seq: int) -> str:
    return f"91343852333{seq:036d}"


def doc(seq: int, contact: str = "A", *, end_tags: bool = True) -> bytes:
    """Fragment ``seq`` as GetMedia serves it (1 s, two tracks, Connect tags after it)."""
    ts = T0 + 1000 * seq
    blocks = [
        writer.simple_block(track, 20 * i, bytes([seq % 256, track]) * 160)
        for i in range(50)
        for track in (1, 2)
    ]
    trailer = b"".join(
        writer.tags([(k, v)], size_width=8)
        for k, v in (("ContactId", contact), ("InstanceId", "I"))
    )
    return render_fragment(
        ebml_header=EBML,
        header=HEADER,
        cluster=writer.cluster(ts, blocks),
        trailer=trailer,
        fragment_number=number(seq),
        server_timestamp_ms=ts + 150,
        producer_timestamp_ms=ts,
        millis_behind_now=100 if end_tags else None,
        continuation_token=number(seq) if end_tags else None,
    )


class Script:
    """Drives a session through scripted responses: each is (payload bytes, error or None)."""

    def __init__(self, session: GetMediaSession, chunk: int = 997) -> None:
        self.session = session
        self.chunk = chunk
        self.requests: list[MediaRequest] = []
        self.now = 0.0

    def run(self, responses: list[tuple[bytes, Exception | None]]) -> list[Fragment]:
        out: list[Fragment] = []
        s = self.session
        for payload, error in responses:
            req = s.next_request(self.now)
            if req is None:
                break
            self.requests.append(req)
            self.now += req.delay
            s.begin_response()
            for i in range(0, len(payload), self.chunk):
                out += s.feed(payload[i : i + self.chunk])
            out += s.end_response(self.now, error=error)
            self.now += 1.0
        return out


def seqs(frags: list[Fragment]) -> list[int]:
    return [int(f.fragment_number or "0") % 10**36 for f in frags]


# --- selectors ------------------------------------------------------------------------------
def test_start_selectors_to_api() -> None:
    assert StartSelector.now().to_api() == {"StartSelectorType": "NOW"}
    assert StartSelector.earliest().to_api() == {"StartSelectorType": "EARLIEST"}
    assert StartSelector.after_fragment("123").to_api() == {
        "StartSelectorType": "FRAGMENT_NUMBER",
        "AfterFragmentNumber": "123",
    }
    api = StartSelector.producer_timestamp(1_704_067_200_123).to_api()
    assert api["StartSelectorType"] == "PRODUCER_TIMESTAMP"
    assert api["StartTimestamp"].timestamp() == pytest.approx(1_704_067_200.123)
    assert StartSelector.server_timestamp(0).to_api()["StartSelectorType"] == "SERVER_TIMESTAMP"
    assert StartSelector.continuation("tok").to_api() == {
        "StartSelectorType": "CONTINUATION_TOKEN",
        "ContinuationToken": "tok",
    }
    with pytest.raises(ValueError):
        StartSelector("FRAGMENT_NUMBER").to_api()


def test_fragment_number_order_is_string_order_for_fixed_width() -> None:
    a, b = number(9), number(10)
    assert a < b and fragment_number_key(a) < fragment_number_key(b)
    assert fragment_number_key("99") < fragment_number_key("100")


# --- the session ----------------------------------------------------------------------------
def test_reads_then_ends_when_a_reconnect_brings_nothing_new() -> None:
    script = Script(GetMediaSession(StartSelector.earliest()))
    frags = script.run([(doc(1) + doc(2) + doc(3), None), (b"", None), (b"", None)])
    assert seqs(frags) == [1, 2, 3]
    assert [r.selector for r in script.requests] == [
        StartSelector.earliest(),
        StartSelector.continuation(number(3)),
    ]
    assert script.session.stop_reason == "idle"
    f = frags[0]
    assert f.producer_timestamp_ms == T0 + 1000 and f.tags["ContactId"] == "A"
    assert f.track_named("AUDIO_TO_CUSTOMER") is not None


@pytest.mark.parametrize("chunk", [1, 64, 4096, 1 << 20])
def test_drop_mid_fragment_then_resume_without_loss_or_duplicates(chunk: int) -> None:
    broken = doc(1) + doc(2) + doc(3)[:-700]  # the connection dies inside fragment 3
    script = Script(GetMediaSession(StartSelector.now()), chunk=chunk)
    frags = script.run(
        [
            (broken, ConnectionResetError("reset")),
            # the server resumes one too early (as if the token were inclusive)
            (doc(2) + doc(3) + doc(4), None),
            (b"", None),
        ]
    )
    assert seqs(frags) == [1, 2, 3, 4]
    assert script.requests[1].selector == StartSelector.continuation(number(2))
    assert script.requests[1].delay > 0  # backoff after an error
    assert script.session.stats.duplicates == 1


def test_clean_cut_after_45_minutes_reconnects_immediately() -> None:
    script = Script(GetMediaSession(StartSelector.now()))
    frags = script.run([(doc(1) + doc(2), None), (doc(3), None), (b"", None)])
    assert seqs(frags) == [1, 2, 3]
    assert [r.delay for r in script.requests] == [0.0, 0.0, 0.0]


def test_stops_when_the_contact_id_changes() -> None:
    payload = doc(1, "A") + doc(2, "A") + doc(3, "B") + doc(4, "B")
    script = Script(GetMediaSession(StartSelector.earliest(), expected_tags={"ContactId": "A"}))
    frags = script.run([(payload, None), (b"", None)])
    assert seqs(frags) == [1, 2]
    assert script.session.stop_reason == "tag_changed"
    assert len(script.requests) == 1

    locked = Script(GetMediaSession(StartSelector.earliest(), lock_tags=("ContactId",)))
    assert seqs(locked.run([(payload, None)])) == [1, 2]
    inclusive = GetMediaSession(
        StartSelector.earliest(), lock_tags=("CallId", "ContactId"), include_stop_fragment=True
    )
    assert seqs(Script(inclusive).run([(payload, None)])) == [1, 2, 3]


def test_stops_at_a_timestamp() -> None:
    payload = b"".join(doc(i) for i in range(1, 6))
    script = Script(GetMediaSession(StartSelector.earliest(), stop_at_ms=T0 + 3000))
    assert seqs(script.run([(payload, None)])) == [1, 2]
    assert script.session.stop_reason == "stop_timestamp"
    server = GetMediaSession(
        StartSelector.earliest(), stop_at_ms=T0 + 3100, stop_timestamp="SERVER"
    )  # server timestamps are +150 ms
    assert seqs(Script(server).run([(payload, None)])) == [1, 2]


def test_inclusive_start_fetches_the_fragment_itself_first() -> None:
    session = GetMediaSession(StartSelector.from_fragment(number(5)))
    script = Script(session)
    frags = script.run(
        [
            (doc(5, end_tags=False), None),  # GetMediaForFragmentList: no end tags
            (doc(5) + doc(6) + doc(7), None),  # a server that treats FRAGMENT_NUMBER inclusively
            (b"", None),
        ]
    )
    assert seqs(frags) == [5, 6, 7]
    assert script.requests[0] == MediaRequest("GetMediaForFragmentList", fragments=(number(5),))
    assert script.requests[1] == MediaRequest("GetMedia", StartSelector.after_fragment(number(5)))
    assert script.requests[2].selector == StartSelector.continuation(number(7))


def test_inclusive_start_goes_on_when_the_fragment_cannot_be_fetched() -> None:
    script = Script(GetMediaSession(StartSelector.from_fragment(number(5))))
    frags = script.run([(b"", RuntimeError("not found")), (doc(6), None), (b"", None)])
    assert seqs(frags) == [6]
    assert script.requests[1].selector == StartSelector.after_fragment(number(5))


def test_follow_polls_until_idle_timeout() -> None:
    session = GetMediaSession(
        StartSelector.now(), follow=True, idle_timeout=10.0, poll_interval=1.0
    )
    script = Script(session)  # each response takes 1 s, each poll waits 1 s
    frags = script.run([(doc(1), None)] + [(b"", None)] * 3 + [(doc(2), None)] + [(b"", None)] * 20)
    assert seqs(frags) == [1, 2]
    assert session.stop_reason == "idle"
    # fragment 2 arrived at t=7 s; empty polls at 8, 10, ..., 18 (idle >= 10 s: stop)
    assert len(script.requests) == 1 + 3 + 1 + 6
    assert script.requests[-1].delay == 1.0


def test_gives_up_after_repeated_failures() -> None:
    script = Script(GetMediaSession(StartSelector.now(), max_retries=2, retry_delay=0.5))
    with pytest.raises(GetMediaError):
        script.run([(b"", OSError("down"))] * 5)
    assert [r.delay for r in script.requests] == [0.0, 0.5, 1.0]


def test_in_band_error_fragment_is_not_delivered() -> None:
    err = (
        EBML
        + writer.segment_start()
        + writer.tags(
            [
                ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number(9)),
                ("AWS_KINESISVIDEO_ERROR_CODE", "FRAGMENT_NOT_FOUND"),
                ("AWS_KINESISVIDEO_ERROR_ID", "4000"),
            ],
            size_width=4,
        )
    )
    script = Script(GetMediaSession(StartSelector.earliest()))
    assert seqs(script.run([(doc(1) + err, None), (b"", None)])) == [1]
    assert any("4000" in e for e in script.session.stats.errors)


# --- the boto3 edge with fake clients -------------------------------------------------------
class FakePayload:
    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.data = data
        self.fail_after = fail_after
        self.closed = False

    def iter_chunks(self, size: int) -> Iterator[bytes]:
        for i in range(0, len(self.data), size):
            if self.fail_after is not None and i >= self.fail_after:
                from urllib3.exceptions import ProtocolError

                raise ProtocolError("Connection broken: IncompleteRead")
            yield self.data[i : i + size]

    def close(self) -> None:
        self.closed = True


class FakeClients:
    def __init__(self, media: list[FakePayload], archived: list[FakePayload] | None = None):
        self.media = media
        self.archived = archived or []
        self.calls: list[tuple[str, str | None, dict[str, Any]]] = []
        self.endpoints: list[tuple[str, str | None]] = []

    def __call__(self, service: str, endpoint_url: str | None) -> Any:
        self.endpoints.append((service, endpoint_url))
        return _FakeClient(self, service, endpoint_url)


class _FakeClient:
    def __init__(self, owner: FakeClients, service: str, endpoint: str | None) -> None:
        self.owner, self.service, self.endpoint = owner, service, endpoint

    def get_data_endpoint(self, **kw: Any) -> dict[str, str]:
        self.owner.calls.append(("GetDataEndpoint", self.endpoint, kw))
        return {"DataEndpoint": f"http://data-{kw['APIName'].lower()}"}

    def get_media(self, **kw: Any) -> dict[str, Any]:
        self.owner.calls.append(("GetMedia", self.endpoint, kw))
        return {"Payload": self.owner.media.pop(0) if self.owner.media else FakePayload(b"")}

    def get_media_for_fragment_list(self, **kw: Any) -> dict[str, Any]:
        self.owner.calls.append(("GetMediaForFragmentList", self.endpoint, kw))
        return {"Payload": self.owner.archived.pop(0)}


def test_consumer_with_fake_clients_reconnects_after_network_error() -> None:
    first = doc(1) + doc(2) + doc(3)
    clients = FakeClients([FakePayload(first, fail_after=len(first) - 900), FakePayload(doc(3))])
    archived = [FakePayload(doc(0, end_tags=False))]
    clients.archived = archived
    sleeps: list[float] = []
    consumer = GetMediaConsumer(
        GetMediaSession(StartSelector.from_fragment(number(0)), retry_delay=0.25),
        stream_name="s1",
        endpoint_url="http://control",
        client_factory=clients,
        sleep=sleeps.append,
    )
    frags = list(consumer)
    assert seqs(frags) == [0, 1, 2, 3]
    names = [(c[0], c[1]) for c in clients.calls]
    assert names == [
        ("GetDataEndpoint", "http://control"),
        ("GetMediaForFragmentList", "http://data-get_media_for_fragment_list"),
        ("GetDataEndpoint", "http://control"),
        ("GetMedia", "http://data-get_media"),
        ("GetMedia", "http://data-get_media"),
        ("GetMedia", "http://data-get_media"),
    ]
    gm = [c[2] for c in clients.calls if c[0] == "GetMedia"]
    assert gm[0] == {
        "StreamName": "s1",
        "StartSelector": {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": number(0)},
    }
    assert gm[1]["StartSelector"] == {
        "StartSelectorType": "CONTINUATION_TOKEN",
        "ContinuationToken": number(2),
    }
    assert [c[2] for c in clients.calls if c[0] == "GetMediaForFragmentList"] == [
        {"StreamName": "s1", "Fragments": [number(0)]}
    ]
    assert sleeps == [0.25]
    assert archived == []


def test_consumer_raises_non_retriable_client_errors() -> None:
    from botocore.exceptions import ClientError

    class Failing(FakeClients):
        def __call__(self, service: str, endpoint_url: str | None) -> Any:
            client = super().__call__(service, endpoint_url)

            def get_media(**kw: Any) -> Any:
                raise ClientError(
                    {"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "GetMedia"
                )

            client.get_media = get_media
            return client

    with pytest.raises(ClientError):
        list(get_media(stream_name="s1", client_factory=Failing([])))


# --- the boto3 edge against a real HTTP server ----------------------------------------------
def test_get_media_with_real_boto3_over_http() -> None:
    from aiohttp import web

    bodies: list[dict[str, Any]] = []
    payloads = [doc(1) + doc(2), b""]

    async def get_data_endpoint(request: web.Request) -> web.Response:
        return web.json_response({"DataEndpoint": str(request.url.origin())})

    async def handle_get_media(request: web.Request) -> web.StreamResponse:
        bodies.append(json.loads(await request.read()))
        resp = web.StreamResponse(headers={"Content-Type": "video/webm"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        data = payloads.pop(0) if payloads else b""
        for i in range(0, len(data), 5000):
            await resp.write(data[i : i + 5000])
        await resp.write_eof()
        return resp

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/getDataEndpoint", get_data_endpoint)
        app.router.add_post("/getMedia", handle_get_media)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()))
    thread.start()
    try:
        assert ready.wait(10)
        frags = list(
            get_media(
                stream_name="s1",
                start=StartSelector.producer_timestamp(T0),
                endpoint_url=f"http://127.0.0.1:{state['port']}",
                region="us-east-1",
                credentials=Credentials("AKID", "SECRET"),
                read_timeout=5,
            )
        )
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert seqs(frags) == [1, 2]
    assert bodies[0]["StartSelector"]["StartSelectorType"] == "PRODUCER_TIMESTAMP"
    assert bodies[0]["StartSelector"]["StartTimestamp"] == pytest.approx((T0) / 1000)
    assert bodies[1]["StartSelector"] == {
        "StartSelectorType": "CONTINUATION_TOKEN",
        "ContinuationToken": number(2),
    }
    assert frags[1].frames_of(1)[0].data == bytes([2, 1]) * 160


def test_a_response_ended_at_the_idle_live_edge_is_not_reconnected() -> None:
    """KVS holds a caught-up response open for a few seconds, then ends it: after data
    followed by that silence there is nothing more to fetch. A response cut right after
    data (the 45-minute cut) is still resumed."""
    session = GetMediaSession(StartSelector.earliest())
    request = session.next_request(0.0)
    assert request is not None
    session.begin_response()
    got = session.feed(doc(1) + doc(2), 10.0)
    got += session.end_response(13.0)  # 3 s of silence, then the end
    assert seqs(got) == [1, 2] and session.stop_reason == "idle"
    assert session.next_request(13.0) is None

    cut = GetMediaSession(StartSelector.earliest())
    cut.next_request(0.0)
    cut.begin_response()
    cut.feed(doc(1), 10.0)
    cut.end_response(10.1)  # ended right after data: resume with the token
    assert cut.stop_reason is None
    again = cut.next_request(10.1)
    assert again is not None and again.selector == StartSelector.continuation(number(1))
