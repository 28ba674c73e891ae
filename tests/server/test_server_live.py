"""The live edge: frames reach a GetMedia reader while their fragment is still being
uploaded, and a reader that stops reading for a while still gets every byte in order."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from server_helpers import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Kvs,
    PutResult,
    clusters_of,
    connect_audio,
    make_client,
    put_media,
    wait_for,
)

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.mkv import writer as w
from callstream.store import EmbeddedBackend
from callstream.store.uploads import StoreConfig

TRACKS = [w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0)]
HEADER = w.ebml_header() + w.segment_start() + w.info() + w.tracks(TRACKS)


def _produce(kvs: Kvs, name: str, chunks: Any) -> tuple[threading.Thread, list[PutResult]]:
    results: list[PutResult] = []
    thread = threading.Thread(
        target=lambda: results.append(put_media(kvs.url, chunks, stream_name=name)), daemon=True
    )
    thread.start()
    return thread, results


def test_each_frame_reaches_a_live_reader_while_its_fragment_is_open(kvs: Kvs) -> None:
    """The producer sends a frame only once the reader got the previous one: each frame
    is served as it arrives, not when its fragment closes (which would stall the upload
    here until the waits give up)."""
    name, _ = kvs.create()
    sock = _open_get_media(kvs, name)
    frames = 15
    marks = [f"<frame {k:02d}>".encode() for k in range(frames)]
    seen = [threading.Event() for _ in range(frames)]
    in_time: list[bool] = []  # frame k reached the reader before anything more was sent

    def chunks() -> Any:
        t0 = int(time.time() * 1000)
        yield HEADER + w.cluster(t0, [], unknown_size=True, timecode_width=8)
        patience = 1000  # polls of 20 ms for all frames together: a stall fails, not hangs
        for k in range(frames):
            yield w.simple_block(1, k * 20, marks[k] + bytes(320 - len(marks[k])))
            while not seen[k].is_set() and patience > 0:
                patience -= 1
                yield 0.02
            in_time.append(seen[k].is_set())
        # the fragment closes only now, when the next one starts
        yield w.cluster(t0 + 1000, [w.simple_block(1, 0, bytes(320))], unknown_size=True)

    producer, results = _produce(kvs, name, chunks())
    raw = bytearray()
    sock.settimeout(60)
    while chunk := sock.recv(65536):  # the server ends the response at the idle edge
        raw += chunk
        for k in range(frames):
            if not seen[k].is_set() and marks[k] in raw:
                seen[k].set()
    sock.close()
    producer.join(60)
    assert results and results[0].status == 200
    assert in_time == [True] * frames, f"frames that reached the reader in time: {in_time}"
    assert clusters_of(_dechunk(bytes(raw)))[0].count(b"<frame ") == frames


def _open_get_media(kvs: Kvs, name: str) -> socket.socket:
    """A GetMedia (StartSelector NOW) on a plain socket with a small receive buffer, so
    that a test decides when, and how fast, the response is read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((kvs.server.host, kvs.server.port))
    sock.sendall(_signed_get_media(kvs.url, name))
    time.sleep(0.2)  # the reader is at the live edge, waiting
    return sock


def _signed_get_media(url: str, name: str) -> bytes:
    body = json.dumps({"StreamName": name, "StartSelector": {"StartSelectorType": "NOW"}})
    req = AWSRequest(
        method="POST",
        url=url + "/getMedia",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(req)
    host = url.split("//", 1)[1]
    head = f"POST /getMedia HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "host")
    return head.encode() + b"\r\n" + body.encode()


def _dechunk(raw: bytes) -> bytes:
    """The body of a complete HTTP/1.1 chunked response."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    out = bytearray()
    while True:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]


def test_a_reader_that_stops_reading_gets_every_byte_once_it_reads_again(kvs: Kvs) -> None:
    """The producer outruns a stalled reader by megabytes: the server holds back (no
    unbounded buffering, no lost or reordered bytes) and serves the rest when it reads."""
    name, _ = kvs.create()
    sock = _open_get_media(kvs, name)
    t0 = int(time.time() * 1000)
    frames = [w.simple_block(1, k, bytes([k % 251]) * 8000) for k in range(400)]
    first = w.cluster(t0, [], unknown_size=True, timecode_width=8)
    second = w.cluster(t0 + 1000, [w.simple_block(1, 0, b"end!" * 80)], unknown_size=True)

    producer, results = _produce(kvs, name, [HEADER + first, *frames, 0.2, second])
    producer.join(60)
    assert results and results[0].status == 200 and not results[0].of("ERROR")
    wait_for(lambda: len(kvs.archived.list_fragments(StreamName=name)["Fragments"]) == 2)
    raw = bytearray()
    sock.settimeout(30)
    while chunk := sock.recv(1 << 20):  # the server ends the response at the idle edge
        raw += chunk
    sock.close()
    assert clusters_of(_dechunk(bytes(raw))) == [first + b"".join(frames), second]


def _server_with_a_slow_disk(data_dir: Path, *, seconds_per_batch: float) -> ServerThread:
    """A server (not started) whose store takes ``seconds_per_batch`` for every batch."""
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY}, live_idle_timeout_s=0.5)
    server = ServerThread(data_dir, config=config)
    backend = server.state.store.backend.backend  # the embedded store's sync backend
    store = backend.append_fragments

    def slow_disk(items: Any) -> Any:
        time.sleep(seconds_per_batch)
        return store(items)

    backend.append_fragments = slow_disk  # type: ignore[method-assign]
    return server


def test_when_storage_falls_behind_the_producer_is_slowed_not_buffered(tmp_path: Path) -> None:
    """Fragments waiting to be stored are bounded per connection: with a slow disk the
    server stops reading the upload (TCP slows the producer) instead of holding every
    fragment in memory, and every fragment is still stored."""
    server = _server_with_a_slow_disk(tmp_path, seconds_per_batch=0.15)
    with server:
        kvs = Kvs(server, make_client(server.url, "kinesisvideo"), None, None)
        name, arn = kvs.create()
        upload = connect_audio(30, fragment_ms=200)
        held: list[int] = []
        producer, results = _produce(kvs, name, [b"".join(upload.chunks)])
        while producer.is_alive():
            live = server.state.store.hub.stream(arn)
            held.append(sum(1 for f in list(live.fragments.values()) if not f.persisted))
            time.sleep(0.01)
        producer.join()
    assert results and results[0].status == 200 and not results[0].of("ERROR")
    assert len(results[0].of("PERSISTED")) == 30
    assert StoreConfig().persist_backlog == 4
    assert max(held) <= 6  # the backlog queued, one being stored, one being received


def test_stopping_the_server_stores_and_acks_every_fragment_it_received(tmp_path: Path) -> None:
    """Shutdown mid-upload (storage behind): each upload is ended the way a newer
    connection would end it, so every fragment acked RECEIVED is stored and acked
    PERSISTED before the server stops."""
    server = _server_with_a_slow_disk(tmp_path / "data", seconds_per_batch=0.1).start()
    kvs = Kvs(server, make_client(server.url, "kinesisvideo"), None, None)
    name, arn = kvs.create()
    upload = connect_audio(12, fragment_ms=200)
    release = threading.Event()

    def chunks() -> Any:
        yield b"".join(upload.chunks)
        while not release.is_set():  # the producer never ends its upload by itself
            yield 0.05

    producer, results = _produce(kvs, name, chunks())
    try:
        wait_for(lambda: len(server.state.store.hub.stream(arn).fragments) >= 6)
        server.stop()
        producer.join(60)
        # ended by the server while the producer was still sending
        assert not producer.is_alive() and not release.is_set()
    finally:
        release.set()
    assert results and results[0].status == 200
    received = {a["FragmentNumber"] for a in results[0].of("RECEIVED")}
    persisted = {a["FragmentNumber"] for a in results[0].of("PERSISTED")}
    assert len(received) >= 6 and received == persisted
    with EmbeddedBackend(tmp_path / "data") as reopened:
        stream = reopened.get_stream(name=name)
        assert {f.fragment_number for f in reopened.fragments(stream)} == received


def _signed_put_media_head(url: str, name: str) -> bytes:
    headers = {"x-amzn-stream-name": name, "x-amzn-fragment-timecode-type": "ABSOLUTE"}
    req = AWSRequest(method="POST", url=url + "/putMedia", data=b"", headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(req)
    host = url.split("//", 1)[1]
    head = f"POST /putMedia HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "host")
    return head.encode() + b"\r\n"


def test_a_producer_that_reconnects_while_its_old_upload_is_stored_loses_nothing(
    tmp_path: Path,
) -> None:
    """The KVS SDK reconnects at once when its connection breaks. The new connection
    takes the stream while the old one is still storing what it received (slow disk):
    every fragment either connection completed is stored."""
    server = _server_with_a_slow_disk(tmp_path / "data", seconds_per_batch=0.1)
    with server:
        kvs = Kvs(server, make_client(server.url, "kinesisvideo"), None, None)
        name, arn = kvs.create()
        upload = connect_audio(16, fragment_ms=200)
        first = b"".join(upload.chunks[:10])  # header + fragments 0..8
        sock = socket.create_connection((server.host, server.port))
        sock.sendall(_signed_put_media_head(server.url, name))
        sock.sendall(
            b"%x\r\n%b\r\n" % (len(first), first) + b"%x\r\n%b\r\n" % (10, upload.chunks[10][:10])
        )
        wait_for(lambda: len(server.state.store.hub.stream(arn).fragments) >= 9)
        sock.close()  # broken mid-fragment, with fragments still waiting for the disk
        rest = upload.chunks[0] + b"".join(upload.chunks[10:])
        result = kvs.put(name, [rest])
        assert len(result.of("PERSISTED")) == 7  # fragments 9..15
        wait_for(lambda: not server.state.store.uploads, timeout=20)
    with EmbeddedBackend(tmp_path / "data") as reopened:
        fragments = reopened.fragments(reopened.get_stream(name=name))
    assert len(fragments) == 16  # 0..8 from the broken connection, 9..15 from the new one
