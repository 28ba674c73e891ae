"""Two ``callstream serve`` nodes on a 3-node NATS JetStream cluster (all on loopback, real
processes): live calls through both nodes, then ``kill -9`` of one NATS server and one
callstream node mid-call. Producers move to the surviving node; every fragment acked
PERSISTED is then readable from it, byte-exact, and readers resume with continuation
tokens. Also: a live GetMedia on one node follows a producer on the other."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials

from callstream.client.producer import connect_producer, produce
from callstream.client.putmedia import PutMediaError, put_media
from callstream.kvs.acks import Ack, EventType
from callstream.mkv.kvs import FragmentReader
from callstream.store.crypto import Keyring, default_kms_key_id
from nats_process import NatsNode, free_port, need_nats_server, start_cluster

nats = pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[dev]')")

KEY, SECRET = "AKIDNATS", "nats-secret"
REGION, ACCOUNT = "us-east-1", "123456789012"
CLUSTER_ID = b"\x1f\x43\xb6\x75"

pytestmark = pytest.mark.slow


class Node:
    """``python -m callstream.cli serve --store nats://...`` on a free port."""

    def __init__(self, data_dir: Path, store: str) -> None:
        self.port = free_port()
        env = dict(os.environ, CALLSTREAM_ACCESS_KEY_ID=KEY, CALLSTREAM_SECRET_ACCESS_KEY=SECRET)
        argv = [sys.executable, "-m", "callstream.cli", "serve", "--no-sip", "--ui", "off"]
        argv += ["--analytics", "off", "--port", str(self.port), "--data-dir", str(data_dir)]
        argv += ["--store", store]
        self.log = data_dir.with_suffix(".log")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                self.client("kinesisvideo").list_streams()
                return
            except Exception:
                time.sleep(0.1)
        raise AssertionError(f"serve did not start: {self.log.read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=Config(retries={"max_attempts": 1}, read_timeout=60),
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Deployment:
    nats: list[NatsNode]
    nodes: list[Node]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    need_nats_server()
    cluster = start_cluster(tmp_path / "nats", 3)
    store = ",".join(n.url for n in cluster)
    dirs = [tmp_path / "node-a", tmp_path / "node-b"]
    for d in dirs:
        d.mkdir(mode=0o700)
    # The nodes share the master key file (copied, as an operator would).
    key_id = default_kms_key_id(REGION, ACCOUNT)
    Keyring(dirs[0] / "keys.json").master_key(key_id)
    shutil.copy2(dirs[0] / "keys.json", dirs[1] / "keys.json")
    nodes: list[Node] = []
    try:
        nodes = [Node(d, store) for d in dirs]
        yield Deployment(cluster, nodes)
    finally:
        for node in nodes:
            node.stop()
        for n in cluster:
            n.stop()


def fragments_of(seconds: int, contact: str, fragment_ms: int = 500) -> list[bytes]:
    producer = connect_producer(contact_id=contact, instance_id="inst")
    tone = bytes(range(256)) * (8000 * 2 * seconds // 256)
    return [c.data for c in produce(producer, {1: tone, 2: tone[::-1]}, fragment_ms=fragment_ms)]


def cluster_of(chunk: bytes) -> bytes:
    return chunk[chunk.index(CLUSTER_ID) :]


@dataclass
class Call:
    name: str
    chunks: list[bytes]  # header, then one per fragment
    persisted: dict[int, str] = field(default_factory=dict)  # timecode -> fragment number
    clusters: dict[int, bytes] = field(default_factory=dict)  # timecode -> Cluster bytes
    moved: bool = False  # the producer reconnected to the surviving node

    def __post_init__(self) -> None:
        for chunk in self.chunks[1:]:
            reader = FragmentReader()
            header = self.chunks[0]
            frags = reader.feed(header + chunk) + reader.close()
            timecode = frags[0].cluster_timecode
            assert timecode is not None
            self.clusters[timecode] = cluster_of(chunk)


async def upload(node_url: str, call: Call, chunks: list[bytes], *, realtime: bool) -> None:
    """PutMedia of ``chunks`` to one node, recording PERSISTED acks."""

    def on_ack(ack: Ack) -> None:
        if ack.event_type == EventType.PERSISTED and ack.fragment_number:
            assert ack.fragment_timecode is not None
            call.persisted[ack.fragment_timecode] = ack.fragment_number

    async def source() -> Any:
        for i, chunk in enumerate(chunks):
            if realtime and i > 1:
                await asyncio.sleep(0.25)
            yield chunk

    await put_media(
        node_url,
        source(),
        stream_name=call.name,
        credentials=Credentials(KEY, SECRET),
        region=REGION,
        on_ack=on_ack,
        discover_endpoint=False,
        resend="unpersisted",
        max_retries=2,
        retry_delay=0.2,
        finish_timeout=60.0,
    )


async def call_with_failover(call: Call, first: Node, second: Node) -> None:
    """Stream the call to ``first``; if that node dies, send what is not PERSISTED yet
    to ``second`` (a producer's reconnect to the surviving node)."""
    try:
        await upload(first.url, call, call.chunks, realtime=True)
        return
    except (TimeoutError, PutMediaError, OSError):
        pass
    rest = [
        chunk
        for tc, chunk in zip(sorted(call.clusters), call.chunks[1:], strict=True)
        if tc not in call.persisted
    ]
    call.moved = True
    await upload(second.url, call, [call.chunks[0], *rest], realtime=False)


def fragment_documents(node: Node, name: str, numbers: list[str]) -> dict[str, bytes]:
    archived = node.client("kinesis-video-archived-media")
    out: dict[str, bytes] = {}
    for k in range(0, len(numbers), 100):
        part = numbers[k : k + 100]
        body = archived.get_media_for_fragment_list(StreamName=name, Fragments=part)
        data = body["Payload"].read()
        reader = FragmentReader()
        for frag in reader.feed(data) + reader.close():
            out[frag.fragment_number or ""] = data
    return out


def test_kill_nats_node_and_callstream_node_mid_call_loses_nothing_persisted(
    deployment: Deployment,
) -> None:
    a, b = deployment.nodes
    kv = a.client("kinesisvideo")
    calls = [Call(f"call-{i}", fragments_of(6, f"contact-{i}")) for i in range(4)]
    for call in calls:
        kv.create_stream(StreamName=call.name, DataRetentionInHours=24)

    async def main() -> None:
        # in a 3-server cluster every stream (and the buckets, and the events) has 3
        # copies by default
        nc = await nats.connect([n.url for n in deployment.nats])
        replicas = [info.config.num_replicas async for info in _streams(nc)]
        await nc.close()
        # the calls, the catalog bucket, the cluster's call events, its voice connectors
        assert replicas == [3] * (len(calls) + 3), replicas
        tasks = [
            asyncio.create_task(call_with_failover(c, a if i % 2 == 0 else b, b))
            for i, c in enumerate(calls)
        ]
        # mid-call: some fragments of every call are PERSISTED
        while not all(len(c.persisted) >= 2 for c in calls):
            await asyncio.sleep(0.05)
        deployment.nats[0].kill()  # kill -9 a NATS server ...
        a.kill()  # ... and the callstream node half of the calls stream through
        await asyncio.gather(*tasks)

    asyncio.run(asyncio.wait_for(main(), 240))
    assert [c.moved for c in calls] == [True, False, True, False]  # node A's calls moved

    for call in calls:
        assert call.persisted, call.name
        numbers = sorted(set(call.persisted.values()))
        docs = fragment_documents(b, call.name, numbers)
        for number in call.persisted.values():
            assert number in docs, f"{call.name}: PERSISTED fragment {number} is not readable"
        # byte-exact: every PERSISTED fragment's Cluster is served as it was sent
        whole = b"".join(docs.values())
        for timecode in call.persisted:
            assert call.clusters[timecode] in whole, f"{call.name}: fragment {timecode} differs"
        # every fragment of the call was stored in the end (the survivor took the rest)
        assert set(call.persisted) == set(call.clusters), call.name

    # Readers resume with continuation tokens: two GetMedia reads, the second from the
    # first's last CONTINUATION_TOKEN, give the stream's fragments once each, in order.
    media = b.client("kinesis-video-media")
    listed = b.client("kinesis-video-archived-media").list_fragments(StreamName=calls[0].name)
    want = sorted(f["FragmentNumber"] for f in listed["Fragments"])
    first = _read_fragments(media, calls[0].name, {"StartSelectorType": "EARLIEST"}, limit=3)
    token = first[-1]
    rest = _read_fragments(
        media,
        calls[0].name,
        {"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": token},
        limit=len(want),
    )
    assert first + rest == want


async def _streams(nc: Any) -> Any:
    for info in await nc.jetstream().streams_info():
        if info.config.name.startswith(("callstream_", "KV_callstream_")):
            yield info


def _read_fragments(media: Any, name: str, selector: dict[str, str], limit: int) -> list[str]:
    resp = media.get_media(StreamName=name, StartSelector=selector)
    reader = FragmentReader()
    numbers: list[str] = []
    payload = resp["Payload"]
    while len(numbers) < limit:
        data = payload.read(65536)
        if not data:
            break
        numbers += [f.fragment_number or "" for f in reader.feed(data)]
    payload.close()
    return numbers[:limit]


def test_live_get_media_on_one_node_follows_a_producer_on_the_other(
    deployment: Deployment,
) -> None:
    a, b = deployment.nodes
    a.client("kinesisvideo").create_stream(StreamName="live-call", DataRetentionInHours=1)
    call = Call("live-call", fragments_of(4, "live-contact"))
    got: list[tuple[str, bytes]] = []
    started = threading.Event()

    def reader() -> None:
        resp = b.client("kinesis-video-media").get_media(
            StreamName="live-call", StartSelector={"StartSelectorType": "NOW"}
        )
        started.set()
        frag_reader = FragmentReader()
        payload = resp["Payload"]
        while True:
            data = payload.read(1024)
            if not data:
                break
            for frag in frag_reader.feed(data):
                got.append((frag.fragment_number or "", b""))
            if len(got) >= len(call.clusters):
                break

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert started.wait(30)

    async def produce_on_a() -> None:
        await upload(a.url, call, call.chunks, realtime=True)

    asyncio.run(asyncio.wait_for(produce_on_a(), 120))
    thread.join(60)
    numbers = [n for n, _ in got]
    persisted = [call.persisted[tc] for tc in sorted(call.persisted)]
    assert numbers, "the reader on node B got nothing of the producer on node A"
    assert numbers == persisted[-len(numbers) :]  # from NOW on, in order, none missing
