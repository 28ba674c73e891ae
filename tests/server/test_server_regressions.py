"""Behaviour found by review against real producer and consumer habits."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from server_helpers import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Kvs,
    connect_audio,
    put_media,
    wait_for,
    whole_second,
)

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.mkv import FragmentReader


def fragments_of(payload: bytes) -> list:  # type: ignore[type-arg]
    reader = FragmentReader()
    return reader.feed(payload) + reader.close()


def test_timestamp_selector_starts_at_the_fragment_deep_in_a_stored_stream(
    tmp_path: Path,
) -> None:
    """More stored fragments than one index page, and after a restart (empty live layer):
    the fragment holding the timestamp comes first, and the response ends."""
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY}, live_idle_timeout_s=0.5)
    # fragments start 100 ms before whole seconds: a whole second (which every botocore
    # sends exactly) lies inside a fragment, after its start
    upload = connect_audio(30, fragment_ms=200, start_ms=1_699_999_999_900)
    with ServerThread(tmp_path, config=config) as server:
        kvs = Kvs(server, *(_clients(server)))
        name, _ = kvs.create()
        kvs.put(name, upload.chunks)
    with ServerThread(tmp_path, config=config) as server:  # restarted: nothing live
        kvs = Kvs(server, *(_clients(server)))
        start = 1_700_000_004_000
        assert upload.starts_ms[20] < start < upload.starts_ms[21]  # inside fragment 20
        payload = kvs.get_media(
            name,
            {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": whole_second(start)},
        )
        frags = fragments_of(payload)
        assert [f.producer_timestamp_ms for f in frags] == upload.starts_ms[20:]
        # the stream is not locked out afterwards
        assert len(fragments_of(kvs.get_media(name, {"StartSelectorType": "EARLIEST"}))) == 30


def _clients(server: ServerThread) -> tuple[object, object, object]:
    from server_helpers import make_client

    return tuple(  # type: ignore[return-value]
        make_client(server.url, s)
        for s in ("kinesisvideo", "kinesis-video-media", "kinesis-video-archived-media")
    )


def test_a_relative_producer_that_reconnects_keeps_streaming(kvs: Kvs) -> None:
    """RELATIVE timecodes restart at 0 on each connection with a new start timestamp (the
    Java PutMediaWorker, connection rotation): the fragments are in order, not rejected."""
    name, _ = kvs.create()
    upload = connect_audio(3, fragment_ms=200, start_ms=0)
    now = int(time.time() * 1000)
    first = kvs.put(name, upload.chunks, timecode_type="RELATIVE", producer_start_ms=now)
    second = kvs.put(name, upload.chunks, timecode_type="RELATIVE", producer_start_ms=now + 5000)
    assert len(first.of("PERSISTED")) == len(second.of("PERSISTED")) == 3
    frags = fragments_of(kvs.get_media(name, {"StartSelectorType": "EARLIEST"}))
    stamps = [f.producer_timestamp_ms for f in frags]
    assert stamps == [now, now + 200, now + 400, now + 5000, now + 5200, now + 5400]


def test_get_data_endpoint_keeps_the_port_when_host_has_none(kvs: Kvs) -> None:
    """The KVS C producer signs and sends ``Host`` without the port."""
    port = int(kvs.url.rsplit(":", 1)[1])
    body = json.dumps({"StreamName": "x", "APIName": "PUT_MEDIA"}).encode()
    req = AWSRequest(
        method="POST",
        url=f"http://127.0.0.1:{port}/getDataEndpoint",
        data=body,
        headers={"Host": "127.0.0.1", "Content-Type": "application/json"},
    )
    req.headers.replace_header("Host", "127.0.0.1")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(req)
    kvs.create("x")
    raw = (
        b"POST /getDataEndpoint HTTP/1.1\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in req.headers.items())
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["DataEndpoint"] == kvs.url


def test_header_tags_of_a_muxer_are_not_fragment_metadata(kvs: Kvs) -> None:
    """ffmpeg/mkvmerge files carry global Tags in the header; they are not the producer
    SDK's fragment metadata and its 10-item limit does not apply to them."""
    from callstream.mkv import writer as w

    name, _ = kvs.create()
    many = w.tags([(f"TAG{i}", "v" * 300) for i in range(12)])
    tracks = w.tracks([w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT")])
    start = int(time.time() * 1000)
    clusters = [
        w.cluster(start + 1000 * n, [w.simple_block(1, i * 20, b"\0\1" * 160) for i in range(50)])
        for n in range(2)
    ]
    body = w.ebml_header() + w.segment_start() + w.info() + tracks + many + b"".join(clusters)
    result = kvs.put(name, [body])
    assert len(result.of("PERSISTED")) == 2
    frags = fragments_of(kvs.get_media(name, {"StartSelectorType": "EARLIEST"}))
    assert all(f.tags["TAG11"] == "v" * 300 for f in frags)  # header re-emitted per fragment


def test_an_abrupt_disconnect_keeps_the_fragments_acked_received(kvs: Kvs) -> None:
    name, _ = kvs.create()
    upload = connect_audio(2, fragment_ms=200)
    port = int(kvs.url.rsplit(":", 1)[1])
    headers = {
        "x-amzn-stream-name": name,
        "x-amzn-fragment-timecode-type": "ABSOLUTE",
        "Host": f"127.0.0.1:{port}",
    }
    req = AWSRequest(method="POST", url=kvs.url + "/putMedia", data=b"", headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(req)
    body = b"".join(upload.chunks)
    head = (
        b"POST /putMedia HTTP/1.1\r\n"
        + b"".join(f"{k}: {v}\r\n".encode() for k, v in req.headers.items())
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + f"{len(body):x}\r\n".encode() + body + b"\r\n")
        seen = b""
        deadline = time.monotonic() + 10
        while seen.count(b"RECEIVED") < 2 and time.monotonic() < deadline:
            seen += sock.recv(65536)
    # closed without the terminating chunk
    deadline = time.monotonic() + 10
    numbers: list[str] = []
    while len(numbers) < 2 and time.monotonic() < deadline:
        numbers = [
            f["FragmentNumber"]
            for f in kvs.archived.list_fragments(
                StreamName=name,
                FragmentSelector={
                    "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": 0, "EndTimestamp": 4e9},
                },
            )["Fragments"]
        ]
        time.sleep(0.1)
    assert len(numbers) == 2


def test_timestamp_inside_the_open_live_fragment_starts_there(kvs: Kvs) -> None:
    """A consumer asking for a time inside the fragment being ingested gets that
    fragment from its start, not the next one."""
    name, arn = kvs.create()
    # fragments start half a second before whole seconds: the reader asks for the whole
    # second inside fragment 0 (a time every botocore sends exactly)
    at = (int(time.time()) + 1) * 1000
    upload = connect_audio(3, fragment_ms=1000, start_ms=at - 500)
    half = len(upload.chunks[1]) // 2
    asked = threading.Event()

    def body() -> Iterator[bytes | float]:
        yield upload.chunks[0] + upload.chunks[1][:half]  # fragment 0 is open ...
        while not asked.is_set():  # ... while the reader asks for a time inside it
            yield 0.02
        yield upload.chunks[1][half:]
        yield from upload.chunks[2:]

    got: list = []  # type: ignore[type-arg]

    def read() -> None:
        try:
            wait_for(
                lambda: bool(kvs.server.state.store.hub.after(arn, None))
            )  # fragment 0 is live
            selector = {
                "StartSelectorType": "PRODUCER_TIMESTAMP",
                "StartTimestamp": whole_second(at),
            }
            resp = kvs.media.get_media(StreamName=name, StartSelector=selector)
        finally:
            asked.set()  # the start was chosen before the response began
        got.extend(fragments_of(resp["Payload"].read()))

    reader = threading.Thread(target=read)
    reader.start()
    put_media(kvs.url, body(), stream_name=name)
    reader.join(30)
    assert [f.producer_timestamp_ms for f in got] == upload.starts_ms


def test_contact_record_with_an_impossible_timestamp_is_a_400(kvs: Kvs) -> None:
    from callstream.cli import signed_request

    for stamp in ("1e300", "NaN"):
        status, body = signed_request(
            "POST",
            kvs.url + "/callstream/contacts",
            region=REGION,
            body=f'{{"ContactId": "a", "InitiationTimestamp": {stamp}}}'.encode(),
            credentials=Credentials(ACCESS_KEY, SECRET_KEY),
        )
        assert status == 400, body


def test_a_paused_producer_gets_idle_acks_and_its_fragment_stored_promptly(kvs: Kvs) -> None:
    name, _ = kvs.create()
    upload = connect_audio(2, fragment_ms=200)
    # header + fragment 0, then a 3.5 s pause, then fragment 1
    result = kvs.put(name, [upload.chunks[0] + upload.chunks[1], 3.5, upload.chunks[2]])
    events = [a["EventType"] for a in result.acks]
    assert "IDLE" in events  # sent while the producer was quiet (every 3 s)
    first_persisted = events.index("PERSISTED")
    assert first_persisted < events.index("IDLE")  # stored during the pause, not after it
    assert len(result.of("PERSISTED")) == 2
