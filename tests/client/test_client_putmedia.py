"""PutMedia client: headers, SigV4, splitter, ack/resume tracker, and a real-socket upload."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from aiohttp import web
from botocore.credentials import Credentials

from callstream.api.errors import KvsError
from callstream.api.sigv4 import EMPTY_SHA256, verify_headers
from callstream.client.producer import (
    AUDIO_FROM_CUSTOMER,
    AUDIO_TO_CUSTOMER,
    connect_producer,
    pace,
    produce,
)
from callstream.client.putmedia import (
    AckAction,
    FragmentState,
    MkvSplitter,
    PutMediaAckError,
    PutMediaHTTPError,
    PutMediaResult,
    PutMediaTracker,
    StreamUnit,
    format_start_timestamp,
    put_media,
    put_media_headers,
    sign_put_media,
)
from callstream.kvs.acks import Ack, EventType, serialize
from callstream.mkv import FragmentReader
from callstream.mkv.ebml import ID
from callstream.mkv.reader import EbmlReader, End, Leaf, Start

START_MS = 1_700_000_000_000
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = Credentials(KEY_ID, SECRET)


def _audio(seconds: float, seed: int = 0) -> dict[str, bytes]:
    n = int(8000 * seconds) * 2
    rnd = os.urandom if seed == 0 else (lambda k: bytes((i * 7 + seed) % 256 for i in range(k)))
    return {AUDIO_FROM_CUSTOMER: rnd(n), AUDIO_TO_CUSTOMER: rnd(n)}


def _stream(seconds: float = 5.0) -> tuple[list[bytes], dict[str, bytes], list[int]]:
    producer = connect_producer(contact_id="c-1", instance_id="i-1", producer_start_ms=START_MS)
    audio = _audio(seconds)
    chunks = list(produce(producer, audio))
    timecodes = [c.timecode for c in chunks if c.timecode is not None]
    return [c.data for c in chunks], audio, timecodes


def _units(data: list[bytes]) -> list[StreamUnit]:
    splitter = MkvSplitter()
    units: list[StreamUnit] = []
    for piece in data:
        units += splitter.feed(piece)
    return units + splitter.close()


def _ack(event: str, tc: int, n: int = 1, error_id: int | None = None) -> Ack:
    number = f"9134385233318{n:034d}"
    if error_id is not None:
        return Ack(EventType.ERROR, tc, number, error_id, "X")
    return Ack(event, tc, number)


# --- headers and signing --------------------------------------------------------------------
def test_start_timestamp_is_zero_padded_decimal_seconds() -> None:
    assert format_start_timestamp(1_700_000_000_005) == "1700000000.005"
    assert format_start_timestamp(1_700_000_000_123) == "1700000000.123"
    assert format_start_timestamp(0) == "0.000"


def test_headers_name_or_arn() -> None:
    h = put_media_headers(stream_name="s1", producer_start_ms=START_MS)
    assert h == {
        "x-amzn-stream-name": "s1",
        "x-amzn-fragment-timecode-type": "ABSOLUTE",
        "x-amzn-producer-start-timestamp": "1700000000.000",
        "x-amzn-fragment-acknowledgment-required": "1",
    }
    arn = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/s1/1700000000000"
    h = put_media_headers(stream_arn=arn, timecode_type="RELATIVE", producer_start_ms=START_MS)
    assert h["x-amzn-stream-arn"] == arn and "x-amzn-stream-name" not in h
    assert h["x-amzn-fragment-timecode-type"] == "RELATIVE"
    with pytest.raises(ValueError):
        put_media_headers(producer_start_ms=0)
    with pytest.raises(ValueError):
        put_media_headers(stream_name="a", stream_arn=arn, producer_start_ms=0)


@pytest.mark.parametrize(
    "url",
    [
        "https://s-1234.kinesisvideo.us-west-2.amazonaws.com/putMedia",
        "http://127.0.0.1:8123/putMedia",
    ],
)
def test_sigv4_signature_verifies(url: str) -> None:
    base = put_media_headers(stream_name="s1", producer_start_ms=START_MS)
    headers = sign_put_media(url, base, Credentials(KEY_ID, SECRET, "TOKEN"), "us-west-2")
    auth = headers["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "/us-west-2/kinesisvideo/aws4_request" in auth
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    for name in (
        "host",
        "x-amz-date",
        "x-amzn-stream-name",
        "x-amzn-producer-start-timestamp",
        "x-amzn-fragment-timecode-type",
        "x-amzn-fragment-acknowledgment-required",
        "x-amz-security-token",
    ):
        assert name in signed
    assert "x-amz-content-sha256" not in {k.lower() for k in headers}
    assert headers["X-Amz-Security-Token"] == "TOKEN"
    # Recompute independently (callstream.api.sigv4): the streamed body is signed as empty.
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.netloc
    sent = {**headers, "Host": host, "Transfer-Encoding": "chunked"}
    result = verify_headers(
        "POST", parts.path, "", sent, credentials={KEY_ID: SECRET}.get, region="us-west-2"
    )
    assert result.payload_hash == EMPTY_SHA256
    assert result.security_token == "TOKEN"
    tampered = {**sent, "x-amzn-stream-name": "other"}
    with pytest.raises(KvsError, match="Signature"):
        verify_headers("POST", parts.path, "", tampered, credentials={KEY_ID: SECRET}.get)


# --- splitter -------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 7, 333, 1 << 20])
def test_splitter_recovers_header_and_fragments_for_any_chunking(chunk: int) -> None:
    data, _, timecodes = _stream(3.5)
    whole = b"".join(data)
    pieces = [whole[i : i + chunk] for i in range(0, len(whole), chunk)]
    units = _units(pieces)
    assert [u.kind for u in units] == ["header"] + ["fragment"] * 4
    assert units[0].data == data[0]
    assert [u.data for u in units[1:]] == data[1:]
    assert [u.timecode for u in units[1:]] == timecodes == [START_MS + i * 1000 for i in range(4)]


def test_splitter_unknown_size_clusters_and_trailer() -> None:
    producer = connect_producer(
        contact_id="c", instance_id="i", producer_start_ms=START_MS, unknown_size_clusters=True
    )
    data = [c.data for c in produce(producer, _audio(2.0))]
    from callstream.mkv import writer

    trailer = writer.tags([("Final", "1")], size_width=8)
    units = _units([*data, trailer])
    assert [u.kind for u in units] == ["header", "fragment", "fragment", "trailer"]
    assert units[1].data == data[1] and units[2].data == data[2]
    assert units[2].timecode == START_MS + 1000
    assert units[3].data == trailer


def test_splitter_rejects_a_second_segment() -> None:
    data, _, _ = _stream(1.0)
    with pytest.raises(ValueError):
        _units([*data, *data])


# --- tracker --------------------------------------------------------------------------------
def _tracker(n: int = 5, **kw: object) -> PutMediaTracker:
    t = PutMediaTracker(**kw)  # type: ignore[arg-type]
    t.add_unit(StreamUnit("header", b"H"))
    for i in range(n):
        t.add_unit(StreamUnit("fragment", bytes([i]) * 3, 1000 * i))
    t.source_finished()
    return t


def _send_all(t: PutMediaTracker) -> list[int]:
    sent = []
    while (r := t.next_to_send()) is not None:
        t.mark_sent(r)
        sent.append(r.index)
    return sent


def test_tracker_happy_path() -> None:
    t = _tracker(3)
    t.begin_connection()
    assert _send_all(t) == [0, 1, 2]
    assert t.all_sent and not t.complete
    for i in range(3):
        for ev in ("BUFFERING", "RECEIVED", "PERSISTED"):
            t.on_ack(_ack(ev, 1000 * i, i))
    assert t.complete
    assert all(r.state is FragmentState.PERSISTED for r in t.records)
    assert t.records[1].fragment_number == f"9134385233318{1:034d}"
    assert t.records[0].data == b""  # released once persisted


def test_tracker_drop_mid_fragment_resends_without_duplicates() -> None:
    t = _tracker(5)
    t.begin_connection()
    assert _send_all(t) == [0, 1, 2, 3, 4]
    for ev in ("BUFFERING", "RECEIVED", "PERSISTED"):
        t.on_ack(_ack(ev, 0))
    for ev in ("BUFFERING", "RECEIVED"):  # received, PERSISTED lost with the connection
        t.on_ack(_ack(ev, 1000))
    t.on_ack(_ack("BUFFERING", 2000))  # the connection drops in the middle of fragment 2
    resent = t.end_connection()
    assert [r.index for r in resent] == [2, 3, 4]
    assert t.records[1].unconfirmed and t.records[1].state is FragmentState.RECEIVED
    t.begin_connection()
    assert _send_all(t) == [2, 3, 4]  # never fragment 0 (persisted) or 1 (received)
    for i in (2, 3, 4):
        for ev in ("BUFFERING", "RECEIVED", "PERSISTED"):
            t.on_ack(_ack(ev, 1000 * i))
    assert t.complete
    assert [r.attempts for r in t.records] == [1, 1, 2, 2, 2]


def test_tracker_unpersisted_policy_and_duplicate_answer() -> None:
    t = _tracker(2, resend="unpersisted")
    t.begin_connection()
    _send_all(t)
    for ev in ("BUFFERING", "RECEIVED"):
        t.on_ack(_ack(ev, 0))
    assert [r.index for r in t.end_connection()] == [0, 1]
    t.begin_connection()
    assert _send_all(t) == [0, 1]
    # The server already had fragment 0: a KVS server says FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS
    record, action = t.on_ack(_ack("ERROR", 0, error_id=4004))
    assert action is AckAction.NONE and record is not None
    assert record.state is FragmentState.DUPLICATE
    t.on_ack(_ack("PERSISTED", 1000))
    assert t.complete


def test_tracker_errors() -> None:
    t = _tracker(3)
    t.begin_connection()
    _send_all(t)
    record, action = t.on_ack(_ack("ERROR", 0, error_id=4006))
    assert action is AckAction.FAIL and record is t.records[0]
    assert record.state is FragmentState.ERROR and record.error is not None
    record, action = t.on_ack(_ack("ERROR", 1000, error_id=5000))
    assert action is AckAction.RECONNECT and record is not None
    assert record.state is FragmentState.PENDING
    assert [r.index for r in t.end_connection()] == [2]
    t.begin_connection()
    assert _send_all(t) == [1, 2]  # the retriable one and the unacknowledged one
    assert t.on_ack(Ack.idle()) == (None, AckAction.NONE)
    assert t.on_ack(_ack("PERSISTED", 99999))[0] is None  # unknown timecode is ignored


def test_tracker_without_persistence_is_done_at_received() -> None:
    t = _tracker(2, persist_expected=False)
    t.begin_connection()
    _send_all(t)
    t.on_ack(_ack("RECEIVED", 0))
    t.on_ack(_ack("RECEIVED", 1000))
    assert t.complete


def test_tracker_new_fragments_during_a_connection() -> None:
    t = PutMediaTracker()
    t.add_unit(StreamUnit("header", b"H"))
    t.begin_connection()
    assert t.next_to_send() is None
    t.add_unit(StreamUnit("fragment", b"a", 0))
    assert _send_all(t) == [0]
    t.add_unit(StreamUnit("fragment", b"b", 1000))
    assert _send_all(t) == [1]
    assert not t.all_sent
    t.source_finished()
    assert t.all_sent and not t.complete


# --- a real socket --------------------------------------------------------------------------
class FakeKvs:
    """A tiny PutMedia server: verifies SigV4, parses the upload as it streams, acks each
    Cluster (BUFFERING at its start, RECEIVED + PERSISTED at its end), rejects timecodes
    that do not increase (ERROR 4004), and can drop the connection in the middle of a
    fragment."""

    def __init__(
        self,
        *,
        drop_in_cluster: int | None = None,
        error_at: int | None = None,
        persist: bool = True,
        status: int = 200,
    ):
        self.persist = persist
        self.status = status
        self.drop_in_cluster = drop_in_cluster  # 0-based cluster index on the 1st connection
        self.error_at = error_at
        self.header: bytes | None = None
        self.stored: list[tuple[int, bytes]] = []  # (timecode, tags + cluster bytes)
        self.connections = 0
        self.acks_sent: list[Ack] = []
        self.base_url = ""
        self.signed: list[tuple[str, ...]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/getDataEndpoint", self.get_data_endpoint)
        app.router.add_post("/putMedia", self.put_media)
        return app

    async def get_data_endpoint(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert body["APIName"] == "PUT_MEDIA"
        return web.json_response({"DataEndpoint": self.base_url})

    async def put_media(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        conn = self.connections
        result = verify_headers(
            "POST",
            request.path,
            request.query_string,
            list(request.headers.items()),
            credentials={KEY_ID: SECRET}.get,
        )
        self.signed.append(result.signed_headers)
        if self.status != 200:
            return web.json_response(
                {"Message": "The requested stream is not found or not active."},
                status=self.status,
                headers={"x-amzn-ErrorType": "ResourceNotFoundException:http://internal/"},
            )
        assert request.headers["x-amzn-stream-name"] == "s1"
        assert request.headers["x-amzn-fragment-acknowledgment-required"] == "1"
        assert request.headers.get("Transfer-Encoding") == "chunked"
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def ack(a: Ack) -> None:
            self.acks_sent.append(a)
            await resp.write(serialize(a))

        reader = EbmlReader()
        buf = bytearray()
        unit_start = 0
        clusters = 0
        tc: int | None = None
        depth = 0
        async for chunk in request.content.iter_any():
            buf += chunk
            reader.feed(chunk)
            for ev in reader.events():
                if type(ev) is Start:
                    depth += 1
                elif type(ev) is End:
                    depth -= 1
                    if ev.id == ID.Tracks:
                        unit_start = ev.offset
                        if self.header is None:
                            self.header = bytes(buf[: ev.offset])
                    elif ev.id == ID.Cluster:
                        assert tc is not None
                        number = f"91343852333{conn:02d}{clusters:034d}"
                        if self.stored and tc <= self.stored[-1][0]:
                            await ack(
                                Ack.error("FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS", tc, number)
                            )
                        elif self.error_at is not None and len(self.stored) == self.error_at:
                            await ack(Ack.error("INVALID_MKV_DATA", tc, number))
                            self.error_at = None
                        else:
                            self.stored.append((tc, bytes(buf[unit_start : ev.offset])))
                            await ack(Ack(EventType.RECEIVED, tc, number))
                            if self.persist:
                                await ack(Ack(EventType.PERSISTED, tc, number))
                        unit_start = ev.offset
                        clusters += 1
                elif type(ev) is Leaf and ev.id == ID.Timecode and depth == 2:
                    tc = int(ev.value)  # type: ignore[arg-type]
                    number = f"91343852333{conn:02d}{clusters:034d}"
                    await ack(Ack(EventType.BUFFERING, tc, number))
                    if conn == 1 and clusters == self.drop_in_cluster:
                        # Drop the connection in the middle of this fragment.
                        await asyncio.sleep(0.05)
                        assert request.transport is not None
                        request.transport.close()
                        return resp
        await resp.write_eof()
        return resp


async def _serve(server: FakeKvs) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base_url = f"http://127.0.0.1:{port}"
    return runner, server.base_url


def _check_upload(server: FakeKvs, audio: dict[str, bytes], timecodes: list[int]) -> None:
    assert [tc for tc, _ in server.stored] == timecodes  # no loss, no duplicate, in order
    assert server.header is not None
    data = server.header + b"".join(unit for _, unit in server.stored)
    reader = FragmentReader()
    frags = reader.feed(data) + reader.close()
    assert [f.cluster_timecode for f in frags] == timecodes
    for name, pcm in audio.items():
        got = b""
        for f in frags:
            track = f.track_named(name)
            assert track is not None
            got += b"".join(fr.data for fr in f.frames_of(track.number))
        assert got == pcm
    for _, unit in server.stored:  # each fragment carries its own metadata before its Cluster
        one = FragmentReader()
        (frag,) = one.feed(server.header + unit) + one.close()
        assert frag.tags["ContactId"] == "c-1"
        assert frag.tags["AUDIO_FROM_CUSTOMER"] == "1"


def test_put_media_real_socket_full_duplex_drop_and_resume() -> None:
    async def main() -> None:
        server = FakeKvs(drop_in_cluster=2)
        runner, url = await _serve(server)
        try:
            producer = connect_producer(
                contact_id="c-1", instance_id="i-1", producer_start_ms=START_MS
            )
            audio = _audio(6.0)
            chunks = list(produce(producer, audio))
            timecodes = [c.timecode for c in chunks if c.timecode is not None]
            seen: list[Ack] = []
            acked_before_last_sent: list[bool] = []

            async def source() -> Iterator[bytes]:  # type: ignore[misc]
                async for data in pace(chunks, realtime=True, speed=20.0):
                    # Full duplex: acks of earlier fragments arrive while we still upload.
                    acked_before_last_sent.append(any(a.event_type == "PERSISTED" for a in seen))
                    yield data

            result = await put_media(
                url,
                source(),
                stream_name="s1",
                credentials=CREDS,
                region="us-east-1",
                on_ack=seen.append,
                producer_start_ms=START_MS,
                retry_delay=0.05,
                finish_timeout=5.0,
            )
        finally:
            await runner.cleanup()
        assert result.complete and result.connections == 2
        assert result.data_endpoint == url
        assert len(result.persisted) == len(timecodes) == 6
        attempts = [r.attempts for r in result.fragments]
        assert attempts[:3] == [1, 1, 2]  # fragment 2 was cut off mid-way and resent
        assert set(attempts[3:]) <= {1, 2}  # (fragment 3 may have been in flight too)
        assert server.connections == 2
        assert acked_before_last_sent[-1] is True
        assert not any(a.event_type == EventType.ERROR for a in server.acks_sent)
        assert "x-amzn-stream-name" in server.signed[0]
        _check_upload(server, audio, timecodes)

    asyncio.run(asyncio.wait_for(main(), 20))


def test_put_media_real_socket_error_ack_raises() -> None:
    async def main() -> None:
        server = FakeKvs(error_at=1)
        runner, url = await _serve(server)
        try:
            producer = connect_producer(
                contact_id="c-1", instance_id="i-1", producer_start_ms=START_MS
            )
            chunks = [c.data for c in produce(producer, _audio(3.0))]
            with pytest.raises(PutMediaAckError) as info:
                await put_media(
                    url,
                    chunks,
                    stream_name="s1",
                    credentials=CREDS,
                    region="us-east-1",
                    producer_start_ms=START_MS,
                    finish_timeout=5.0,
                )
            assert info.value.ack.error_id == 4006
            assert info.value.record is not None and info.value.record.index == 1
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(main(), 20))


def _upload(server: FakeKvs, seconds: float = 2.0, **kw: object) -> object:
    async def main() -> object:
        runner, url = await _serve(server)
        try:
            producer = connect_producer(
                contact_id="c-1", instance_id="i-1", producer_start_ms=START_MS
            )
            chunks = [c.data for c in produce(producer, _audio(seconds))]
            return await put_media(
                url,
                chunks,
                stream_name="s1",
                credentials=CREDS,
                region="us-east-1",
                producer_start_ms=START_MS,
                **kw,  # type: ignore[arg-type]
            )
        finally:
            await runner.cleanup()

    return asyncio.run(asyncio.wait_for(main(), 20))


def test_put_media_finish_timeout_without_persisted_acks() -> None:
    result = _upload(FakeKvs(persist=False), finish_timeout=0.3)
    assert isinstance(result, PutMediaResult)
    assert not result.complete and result.connections == 1
    assert [r.state for r in result.unconfirmed] == [FragmentState.RECEIVED] * 2


def test_put_media_without_persistence_completes_at_received() -> None:
    result = _upload(FakeKvs(persist=False), persist_expected=False, finish_timeout=5.0)
    assert isinstance(result, PutMediaResult)
    assert result.complete and len(result.fragments) == 2


def test_put_media_http_error_is_raised() -> None:
    with pytest.raises(PutMediaHTTPError) as info:
        _upload(FakeKvs(status=404))
    assert info.value.status == 404 and info.value.code == "ResourceNotFoundException"
    assert not info.value.retriable
