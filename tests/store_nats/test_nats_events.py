"""The call-event bus across NATS nodes (real nats-server): every node's bus holds every
node's events, with their origin; what acts on a call acts where it happened; a node
that was away catches up; a crash between journaling and saving imports nothing twice."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.cli import signed_request
from callstream.events import Event, EventBus, EventFilter, Subscription
from callstream.events.types import Origin, decode, encode, to_eventbridge
from callstream.events.webhooks import Webhook
from callstream.store.backends import open_backend
from callstream.store.crypto import Keyring
from polling import wait_for

pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[dev]')")

from callstream.store.backends.nats.events import ClusterEvents, RelayState

ACCESS_KEY, SECRET_KEY, REGION = (
    "AKIDEXAMPLE",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "us-east-1",
)
ARN = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/s/1"


def created(i: int) -> Event:
    return Event.of("StreamCreated", StreamARN=f"{ARN}-{i}", StreamName=f"s{i}")


async def take(sub: Subscription, n: int, timeout: float = 30.0) -> list[Event]:
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            event = await sub.next()
            assert event is not None, "subscription ended"
            out.append(event)
    return out


class Node:
    """One node's event side in process: its bus, its NATS store, its relay."""

    def __init__(self, nats_url: str, directory: Path, prefix: str, keyring: Keyring) -> None:
        self.directory = directory
        self.bus = EventBus(directory / "events")
        self.backend: Any = open_backend(nats_url, directory, keyring=keyring, nats_prefix=prefix)
        self.relay: ClusterEvents | None = None

    async def start(self) -> Node:
        self.bus.bind()
        await self.backend.start()
        self.relay = ClusterEvents(self.backend, self.bus, self.directory / "cluster-events.json")
        await self.relay.start()
        return self

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()
        await self.backend.close()
        self.bus.end_subscriptions()
        await asyncio.to_thread(self.bus.close)

    def everything(self) -> list[Event]:
        return self.bus.query(EventFilter(), 0, 1000).events


@pytest.fixture
def cluster(nats_url: str, tmp_path: Path) -> Iterator[Any]:
    """``make(name)``: a node of one deployment (a fresh prefix per test)."""
    prefix = f"ev{uuid.uuid4().hex[:10]}"
    keyring = Keyring(tmp_path / "keys.json")

    def make(name: str) -> Node:
        return Node(nats_url, tmp_path / name, prefix, keyring)

    yield make


def test_the_relay_state_is_saved_whole_and_a_failed_save_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cluster-events.json"
    path.write_text("x" * 1000)
    state = RelayState(
        node="n1", journal_id="j1", sent=5, checkpoint=3, imported={"n2": 7}, stream_seq=9
    )
    state.save(path)
    assert RelayState.load(path, journal_id="j1", journal_head=0) == state
    # a journal made anew: a new node id, so its cursors are not taken for repeats
    fresh = RelayState.load(path, journal_id="j2", journal_head=0)
    assert fresh.node != "n1" and fresh.imported == {"n2": 7} and fresh.sent == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(IsADirectoryError):
        state.save(tmp_path / "a-directory")
    assert sorted(os.listdir(tmp_path)) == ["a-directory", "cluster-events.json"]


def test_each_nodes_events_reach_the_other_with_their_origin(cluster: Any) -> None:
    async def main() -> None:
        a, b = await cluster("a").start(), await cluster("b").start()
        try:
            assert a.relay and b.relay and a.relay.node != b.relay.node
            on_b = b.bus.subscribe(EventFilter())
            local_on_b = b.bus.subscribe(EventFilter(local=True))
            cursors = [a.bus.publish(created(i)) for i in range(3)]
            b_cursor = b.bus.publish(created(9))
            got = await take(on_b, 4)
            imported = [e for e in got if e.origin is not None]
            assert [e.get("StreamName") for e in imported] == ["s0", "s1", "s2"]
            assert [e.origin for e in imported] == [Origin(a.relay.node, c) for c in cursors]
            # what acts on a call (analytics, webhooks) sees only this node's events
            assert [e.get("StreamName") for e in await take(local_on_b, 1)] == ["s9"]
            assert await local_on_b.next(timeout=0.5) is None
            # ... and the other way round
            on_a = a.bus.subscribe(EventFilter(), cursors[-1])
            [back] = await take(on_a, 1)
            assert back.get("StreamName") == "s9" and back.origin == Origin(b.relay.node, b_cursor)
            # one EventBridge id for one event, whichever node renders it
            mine = a.bus.query(EventFilter(), 0, 10).events[0]
            rendered = [
                to_eventbridge(e, account="1", region=REGION, node=n.bus.node)["id"]
                for e, n in ((mine, a), (imported[0], b))
            ]
            assert rendered[0] == rendered[1] == f"callstream-{a.relay.node}-{cursors[0]}"
            # the origin survives the journal and the wire form
            assert decode(json.loads(encode(imported[0]))).origin == imported[0].origin
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_events_published_just_before_a_node_closes_reach_the_others(cluster: Any) -> None:
    """A node shutting down (its calls hung up, their ENDED events just published) sends
    what its outbox still holds before it stops, not at its next start."""

    async def main() -> None:
        a, b = await cluster("a").start(), await cluster("b").start()
        try:
            on_b = b.bus.subscribe(EventFilter())
            for i in range(100):  # well within the drain time at a few hundred events/s
                a.bus.publish(created(i))
            await a.close()
            got = await take(on_b, 100)
            assert [e.get("StreamName") for e in got] == [f"s{i}" for i in range(100)]
        finally:
            await b.close()

    asyncio.run(main())


def test_a_node_that_was_away_catches_up_and_nothing_is_imported_twice(cluster: Any) -> None:
    async def main() -> None:
        a, b = await cluster("a").start(), await cluster("b").start()
        try:
            sub = b.bus.subscribe(EventFilter())
            a.bus.publish(created(0))
            await take(sub, 1)
            sub.close()
            state_before = (b.directory / "cluster-events.json").read_bytes()
            await b.close()
            for i in range(1, 6):  # published while b is down
                a.bus.publish(created(i))
            b = await cluster("b").start()
            sub = b.bus.subscribe(EventFilter(), b.bus.last_cursor)
            assert [e.get("StreamName") for e in await take(sub, 5)] == [
                f"s{i}" for i in range(1, 6)
            ]
            sub.close()
            await b.close()
            # a crash after the journal took a batch but before the state was saved: the
            # saved state says less than the journal holds, and the stream is read again
            # from the older position
            (b.directory / "cluster-events.json").write_bytes(state_before)
            b = await cluster("b").start()
            a.bus.publish(created(6))
            sub = b.bus.subscribe(EventFilter(), b.bus.last_cursor)
            [after] = await take(sub, 1)
            assert after.get("StreamName") == "s6"
            names = [e.get("StreamName") for e in b.everything()]
            assert names == [f"s{i}" for i in range(7)]
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_an_outbox_that_resends_after_a_restart_duplicates_nothing(cluster: Any) -> None:
    async def main() -> None:
        a, b = await cluster("a").start(), await cluster("b").start()
        try:
            sub = b.bus.subscribe(EventFilter())
            for i in range(4):
                a.bus.publish(created(i))
            await take(sub, 4)
            await a.close()
            # a's state as if it crashed before saving what it sent: it sends all again
            path = a.directory / "cluster-events.json"
            saved = json.loads(path.read_text())
            saved["sent"] = 0
            path.write_text(json.dumps(saved))
            a = await cluster("a").start()
            a.bus.publish(created(4))
            [new] = await take(sub, 1)
            assert new.get("StreamName") == "s4"
            assert [e.get("StreamName") for e in b.everything()] == [f"s{i}" for i in range(5)]
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


# --- two servers: the events API and webhooks ----------------------------------------------


CREDS = Credentials(ACCESS_KEY, SECRET_KEY)


def events_of(base: str, **params: Any) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    status, body = signed_request(
        "GET", f"{base}/callstream/events?{query}", region=REGION, credentials=CREDS
    )
    assert status == 200, body
    return list(json.loads(body)["Events"])


class Receiver:
    """A webhook receiver: the bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def test_two_servers_list_each_others_events_and_a_webhook_gets_each_event_once(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLSTREAM_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("CALLSTREAM_SECRET_ACCESS_KEY", SECRET_KEY)
    receiver = Receiver()
    prefix = f"ev{uuid.uuid4().hex[:10]}"
    hook = Webhook(receiver.url, event_types=("StreamCreated", "ContactStarted"))
    config = ServerConfig(store=nats_url, store_prefix=prefix, webhooks=(hook,))
    a = ServerThread(tmp_path / "a", config=config).start()
    b: ServerThread | None = None
    try:
        a.run(a.store.create_stream("made-on-a", data_retention_hours=1))
        (tmp_path / "b").mkdir()  # the same master key file on every node
        shutil.copy(tmp_path / "a" / "keys.json", tmp_path / "b" / "keys.json")
        b = ServerThread(tmp_path / "b", config=config).start()
        publish(b.url, "c-on-b")
        node_a, node_b = a.state.events.node, b.state.events.node
        [contact] = wait_for_events(a.url, type="ContactStarted")
        [stream] = wait_for_events(b.url, type="StreamCreated")
        assert contact["ContactId"] == "c-on-b" and contact["Origin"]["Node"] == node_b
        assert stream["StreamName"] == "made-on-a" and stream["Origin"]["Node"] == node_a
        assert "Origin" not in events_of(a.url, type="StreamCreated")[0]
        # the EventBridge view names the event the same on both nodes
        ids = {
            e["id"]
            for base in (a.url, b.url)
            for e in events_of(base, type="StreamCreated", format="eventbridge")
        }
        assert ids == {f"callstream-{node_a}-{stream['Origin']['Cursor']}"}
        # a marker published on each node after it holds the other's event: each node's
        # webhook delivers in its bus's order, so a relayed copy would come before it
        publish(a.url, "marker-a")
        publish(b.url, "marker-b")
        wait_for(
            lambda: (
                {"marker-a", "marker-b"}
                <= {body["detail"].get("contactId") for body in receiver.bodies}
            ),
            60,
            "the markers never reached the webhook",
        )
        delivered = sorted(
            body["detail"].get("contactId") or body["detail"]["streamName"]
            for body in receiver.bodies
        )
        assert delivered == ["c-on-b", "made-on-a", "marker-a", "marker-b"], receiver.bodies
    finally:
        a.stop()
        if b is not None:
            b.stop()
        receiver.server.shutdown()


def publish(base: str, contact_id: str) -> None:
    body = {"Events": [{"EventType": "ContactStarted", "ContactId": contact_id}]}
    status, answer = signed_request(
        "POST",
        f"{base}/callstream/events",
        region=REGION,
        credentials=CREDS,
        body=json.dumps(body).encode(),
    )
    assert status == 200, answer


def wait_for_events(base: str, **params: Any) -> list[dict[str, Any]]:
    return wait_for(lambda: events_of(base, **params), 60, f"no {params} events on {base}")


# --- GetDataEndpoint: live readers go to the node that ingests -----------------------------


def test_get_data_endpoint_sends_live_readers_to_the_node_that_ingests(
    nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from callstream.client.producer import connect_producer, produce
    from nats_process import free_port

    monkeypatch.setenv("CALLSTREAM_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("CALLSTREAM_SECRET_ACCESS_KEY", SECRET_KEY)
    prefix = f"ep{uuid.uuid4().hex[:10]}"
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]

    def node(i: int) -> ServerThread:
        config = ServerConfig(store=nats_url, store_prefix=prefix, public_url=urls[i])
        return ServerThread(tmp_path / "ab"[i], config=config, port=ports[i]).start()

    def endpoint(i: int, api: str) -> str:
        kv = boto3.client(
            "kinesisvideo",
            endpoint_url=urls[i],
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        return str(kv.get_data_endpoint(StreamName="call", APIName=api)["DataEndpoint"])

    header, fragment = [
        c.data
        for c in produce(
            connect_producer(contact_id="c", instance_id="i"), {1: bytes(32000)}, fragment_ms=1000
        )
    ][:2]
    a = node(0)
    b: ServerThread | None = None
    try:
        stream = a.run(a.store.create_stream("call", data_retention_hours=1))
        (tmp_path / "b").mkdir()
        shutil.copy(tmp_path / "a" / "keys.json", tmp_path / "b" / "keys.json")
        b = node(1)
        assert endpoint(1, "GET_MEDIA") == urls[1]  # nobody ingests: the node asked
        writer = a.run(a.store.open_writer(stream))
        a.run(writer.write(header + fragment[: len(fragment) // 2]))  # a fragment is open
        # the live reader goes to the producer's node (once A answers on NATS: it starts
        # to as its first fragment opens; a loaded machine may take a moment)
        wait_for(lambda: endpoint(1, "GET_MEDIA") == urls[0], 30, "B never named A")
        assert endpoint(0, "GET_MEDIA") == urls[0]
        assert endpoint(1, "PUT_MEDIA") == urls[1]  # everything else: any node
        assert endpoint(1, "GET_MEDIA_FOR_FRAGMENT_LIST") == urls[1]
        a.run(writer.write(fragment[len(fragment) // 2 :]))
        a.run(writer.close())
        wait_for(lambda: endpoint(1, "GET_MEDIA") == urls[1], 30, "still sent to A")  # ended
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_a_call_analysed_on_one_node_is_in_the_call_list_of_the_other(
    nats_url: str, tmp_path: Path
) -> None:
    import time

    from callstream.analytics.service import AnalyticsConfig

    prefix = f"ev{uuid.uuid4().hex[:10]}"
    config = ServerConfig(
        store=nats_url,
        store_prefix=prefix,
        analytics=AnalyticsConfig(engine="none", idle_end_s=0.5),
    )
    a = ServerThread(tmp_path / "a", config=config).start()
    b: ServerThread | None = None
    try:
        stream = a.run(a.store.create_stream("analysed-on-a", data_retention_hours=1))
        (tmp_path / "b").mkdir()  # the same master key file on every node
        shutil.copy(tmp_path / "a" / "keys.json", tmp_path / "b" / "keys.json")
        b = ServerThread(tmp_path / "b", config=config).start()
        a.state.events.publish(
            Event.of(
                "MediaStreamingStarted",
                ContactId="c-analysed-on-a",
                StreamARN=stream.arn,
                StartFragmentNumber="91343852333181432392682062607743920146264220000",
                StartTimestamp=int(time.time() * 1000),
            )
        )
        calls_b = b.state.calls
        assert calls_b is not None
        row = wait_for(lambda: calls_b.get("c-analysed-on-a"), 60, "B never listed A's call")
        assert row.node == a.state.events.node and row.source == "CONNECT"
        assert a.state.calls is not None and a.state.calls.get("c-analysed-on-a") is not None
        assert a.state.calls.get("c-analysed-on-a").node is None  # type: ignore[union-attr]
    finally:
        a.stop()
        if b is not None:
            b.stop()
