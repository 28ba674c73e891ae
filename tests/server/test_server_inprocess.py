"""The store service in process and over HTTP at once: a call written through the
service (PCM frames) or through PutMedia reaches a boto3 GetMedia reader and an
in-process reader live, byte for byte the same, with PERSISTED acks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import (
    ACCESS_KEY,
    SECRET_KEY,
    clusters_of,
    connect_audio,
    make_client,
    put_media,
    ramp,
    unique,
)

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.client.producer import connect_producer
from callstream.kvs.acks import Ack
from callstream.kvs.selectors import StartSelector
from callstream.store.reading import MediaFragment

FRAME_MS = 20
FRAMES = 150  # 3 s of call


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    # Readers at the live edge wait 5 s for news, so that the writer starting after
    # them is still live for them.
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY}, live_idle_timeout_s=5.0)
    with ServerThread(tmp_path / "data", config=config) as srv:
        yield srv


def _stream_read_by_boto(server: ServerThread) -> tuple[str, list[bytes], threading.Thread]:
    """A new stream and a boto3 GetMedia reader of it from the earliest fragment on (a
    thread; the body it reads goes to the list)."""
    name = unique("inproc")
    kv = make_client(server.url, "kinesisvideo")
    kv.create_stream(StreamName=name, DataRetentionInHours=1)
    media = make_client(server.url, "kinesis-video-media")
    out: list[bytes] = []

    def read() -> None:
        resp = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
        out.append(resp["Payload"].read())

    thread = threading.Thread(target=read)
    thread.start()
    return name, out, thread


async def _in_process_reader(server: ServerThread, name: str) -> list[MediaFragment]:
    store = server.store
    stream = await store.stream(name=name)
    got: list[MediaFragment] = []
    async for fragment in store.read(stream, StartSelector.earliest(), idle_s=5.0):
        got.append(fragment)
    return got


def _same_fragments(http_body: bytes, in_process: list[MediaFragment], numbers: list[str]) -> None:
    assert [f.number for f in in_process] == numbers
    from_http = clusters_of(http_body)
    from_service = [clusters_of(f.document())[0] for f in in_process]
    assert from_http == from_service  # byte for byte


def test_a_call_written_as_frames_reaches_both_readers_live(server: ServerThread) -> None:
    name, http_body, boto = _stream_read_by_boto(server)
    acks: list[Ack] = []
    caller, agent = ramp(8 * FRAME_MS * FRAMES, 1), ramp(8 * FRAME_MS * FRAMES, 2)
    start_ms = 1_700_000_000_000

    async def call() -> tuple[list[MediaFragment], Any]:
        store = server.store
        stream = await store.stream(name=name)
        reader = asyncio.create_task(_in_process_reader(server, name))
        producer = connect_producer(
            contact_id="c-inproc", instance_id="i-1", producer_start_ms=start_ms
        )
        writer = await store.open_frame_writer(stream, producer, on_ack=acks.append)
        step = 8 * FRAME_MS * 2
        for i in range(FRAMES):
            at = start_ms + i * FRAME_MS
            await writer.write("AUDIO_FROM_CUSTOMER", caller[i * step : (i + 1) * step], at)
            await writer.write("AUDIO_TO_CUSTOMER", agent[i * step : (i + 1) * step], at)
            await asyncio.sleep(0)
        result = await writer.close()
        return await reader, result

    got, result = server.run(call())
    boto.join(60)
    persisted = [a.fragment_number for a in acks if a.event_type == "PERSISTED"]
    assert len(persisted) == 3 and persisted == result.stored
    assert not result.errors
    _same_fragments(http_body[0], got, persisted)
    # The audio is what was written, sample for sample.
    pcm = b"".join(
        f.data
        for fragment in got
        for f in fragment.parse().frames_of(
            fragment.parse().track_named("AUDIO_FROM_CUSTOMER").number
        )
    )
    assert pcm == caller
    assert got[0].parse().tags["ContactId"] == "c-inproc"


def test_a_call_uploaded_with_putmedia_reaches_both_readers_live(server: ServerThread) -> None:
    name, http_body, boto = _stream_read_by_boto(server)
    future = asyncio.run_coroutine_threadsafe(_in_process_reader(server, name), server._loop)
    audio = connect_audio(5, fragment_ms=400)
    paced: list[bytes | float] = []
    for chunk in audio.chunks:
        paced += [chunk, 0.05]
    result = put_media(server.url, paced, stream_name=name)
    got = future.result(60)
    boto.join(60)
    assert result.status == 200 and not result.of("ERROR")
    numbers = [a["FragmentNumber"] for a in result.of("PERSISTED")]
    assert len(numbers) == 5
    _same_fragments(http_body[0], got, numbers)
