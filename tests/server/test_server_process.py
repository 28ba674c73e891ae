"""`callstream serve` as a process: start, clean shutdown, and kill -9 durability. (How fast
it starts is a benchmark figure, not a test.)"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from callstream.kvs.acks import AckParser
from callstream.mkv import FragmentReader
from callstream.mkv import writer as w

KEY, SECRET = "AKIDPROC", "proc-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """``callstream serve`` on ``port``, once it accepts connections."""
    env = dict(os.environ, CALLSTREAM_ACCESS_KEY_ID=KEY, CALLSTREAM_SECRET_ACCESS_KEY=SECRET)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callstream.cli",
            "serve",
            "--no-sip",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60  # a server that never listens fails, not hangs
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(
                    proc.stderr.read().decode() if proc.stderr else "died"
                ) from None
            time.sleep(0.02)
    proc.kill()
    raise AssertionError("server did not start")


def client_kwargs(url: str) -> dict[str, Any]:
    return dict(
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )


def clients(url: str) -> tuple[object, object]:
    kw = client_kwargs(url)
    return boto3.client("kinesisvideo", **kw), boto3.client("kinesis-video-media", **kw)


def connect_fragment(start_ms: int) -> bytes:
    blocks = []
    for i in range(50):
        for track in (1, 2):
            blocks.append(w.simple_block(track, i * 20, bytes([track, i]) * 160))
    return w.cluster(start_ms, blocks)


HEADER = (
    w.ebml_header()
    + w.segment_start()
    + w.info()
    + w.tracks(
        [
            w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
            w.TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
        ]
    )
)


async def put_until_killed(url: str, stream: str, proc: subprocess.Popen[bytes]) -> list[str]:
    """Stream fragments, kill -9 the server after a few PERSISTED acks; return the
    fragment numbers acknowledged PERSISTED before the kill."""
    headers = {
        "x-amzn-stream-name": stream,
        "x-amzn-fragment-timecode-type": "ABSOLUTE",
        "x-amzn-producer-start-timestamp": f"{time.time():.3f}",
    }
    req = AWSRequest(method="POST", url=url + "/putMedia", headers=headers, data=b"")
    SigV4Auth(Credentials(KEY, SECRET), "kinesisvideo", "us-east-1").add_auth(req)
    persisted: list[str] = []
    start = int(time.time() * 1000)

    async def body():  # type: ignore[no-untyped-def]
        yield HEADER
        for n in range(1000):
            yield connect_fragment(start + 1000 * n)
            await asyncio.sleep(0.01)

    parser = AckParser()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/putMedia", data=body(), headers=dict(req.headers)) as r:
                assert r.status == 200
                async for chunk in r.content.iter_any():
                    for ack in parser.feed(chunk):
                        if ack.event_type == "PERSISTED":
                            persisted.append(str(ack.fragment_number))
                            if len(persisted) == 8:
                                proc.send_signal(signal.SIGKILL)
    except (aiohttp.ClientError, ConnectionError):
        pass
    return persisted


def test_kill_dash_9_keeps_every_persisted_fragment(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(tmp_path, port)
    try:
        kv, _ = clients(url)
        kv.create_stream(StreamName="durable", DataRetentionInHours=2)  # type: ignore[attr-defined]
        persisted = asyncio.run(put_until_killed(url, "durable", proc))
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
    assert len(persisted) >= 8
    proc = start_server(tmp_path, port)
    try:
        _, media = clients(url)
        resp = media.get_media(  # type: ignore[attr-defined]
            StreamName="durable", StartSelector={"StartSelectorType": "EARLIEST"}
        )
        reader = FragmentReader()
        fragments = []
        for chunk in resp["Payload"].iter_chunks(65536):
            fragments += reader.feed(chunk)
        fragments += reader.close()
        numbers = [f.fragment_number for f in fragments]
        assert set(persisted) <= set(numbers)
        assert numbers == sorted(numbers)
        for f in fragments:  # nothing half-written is served: every fragment is whole
            assert len(f.frames) == 100
            assert {len(fr.data) for fr in f.frames} == {320}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_serve_starts_and_stops_cleanly_on_sigint_and_sigterm(tmp_path: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        port = free_port()
        proc = start_server(tmp_path / sig.name, port)
        try:
            kv, _ = clients(f"http://127.0.0.1:{port}")
            assert kv.list_streams()["StreamInfoList"] == []  # type: ignore[attr-defined]
        finally:
            proc.send_signal(sig)
            code = proc.wait(10)
        assert code == 0
        if proc.stderr is not None:
            assert "Traceback" not in proc.stderr.read().decode()


@pytest.mark.parametrize(
    "bad", [b"not mkv at all", b"\x1aE\xdf\xa3\x84\x42\x86\x81\x01" + b"\x00" * 8]
)
def test_invalid_mkv_gets_an_error_ack_and_stored_fragments_survive(
    tmp_path: Path, bad: bytes
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(tmp_path, port)
    try:
        kv, media = clients(url)
        kv.create_stream(StreamName="s", DataRetentionInHours=1)  # type: ignore[attr-defined]

        async def put(payload: bytes) -> list[str]:
            req = AWSRequest(
                method="POST",
                url=url + "/putMedia",
                data=b"",
                headers={"x-amzn-stream-name": "s", "x-amzn-fragment-timecode-type": "ABSOLUTE"},
            )
            SigV4Auth(Credentials(KEY, SECRET), "kinesisvideo", "us-east-1").add_auth(req)
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    url + "/putMedia", data=payload, headers=dict(req.headers)
                ) as r:
                    parser = AckParser()
                    return [a.error_code or a.event_type for a in parser.feed(await r.read())]

        now = int(time.time() * 1000)
        good = asyncio.run(put(HEADER + connect_fragment(now) + connect_fragment(now + 1000)))
        assert good.count("PERSISTED") == 2
        assert "INVALID_MKV_DATA" in asyncio.run(put(bad))
        resp = media.get_media(  # type: ignore[attr-defined]
            StreamName="s", StartSelector={"StartSelectorType": "EARLIEST"}
        )
        reader = FragmentReader()
        frags = reader.feed(resp["Payload"].read()) + reader.close()
        assert len(frags) == 2 and all(len(f.frames) == 100 for f in frags)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_a_newer_putmedia_connection_to_the_stream_wins(tmp_path: Path) -> None:
    """As on AWS (one PutMedia connection per stream, the last one accepted): the older
    upload's ack stream ends, the newer one's fragments are stored after the older ones."""
    import threading

    from server_helpers import connect_audio, put_media, wait_for

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(tmp_path, port)
    try:
        kv, media = clients(url)
        kv.create_stream(StreamName="pooled", DataRetentionInHours=1)  # type: ignore[attr-defined]
        first = connect_audio(20, fragment_ms=200, start_ms=1_700_000_000_000)
        second = connect_audio(3, fragment_ms=200, start_ms=1_700_000_100_000, contact_id="c-2")
        results = {}
        newer_done = threading.Event()

        def older_chunks() -> Any:
            yield b"".join(first.chunks[:4])  # header and fragments 0-2
            while not newer_done.is_set():  # the rest only once the newer upload is done
                yield 0.05
            yield from first.chunks[4:]

        def older_upload() -> None:
            results["first"] = put_media(
                url, older_chunks(), stream_name="pooled", access_key=KEY, secret_key=SECRET
            )

        thread = threading.Thread(target=older_upload)
        thread.start()
        try:
            archived = boto3.client("kinesis-video-archived-media", **client_kwargs(url))
            wait_for(lambda: len(archived.list_fragments(StreamName="pooled")["Fragments"]) == 3)
            results["second"] = put_media(
                url, second.chunks, stream_name="pooled", access_key=KEY, secret_key=SECRET
            )
        finally:
            newer_done.set()
            thread.join(60)
        older, newer = results["first"], results["second"]
        assert len(older.of("PERSISTED")) < 20  # cut off when the newer one arrived
        assert len(newer.of("PERSISTED")) == 3 and not newer.of("ERROR")
        resp = media.get_media(  # type: ignore[attr-defined]
            StreamName="pooled", StartSelector={"StartSelectorType": "EARLIEST"}
        )
        reader = FragmentReader()
        frags = reader.feed(resp["Payload"].read()) + reader.close()
        contacts = [f.tags.get("ContactId") for f in frags]
        assert contacts[-3:] == ["c-2"] * 3 and "c-1" in contacts
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
