"""Live fragments between two store nodes on one NATS server (in process, real
nats-server): a GetMedia reader on node B gets the open fragment's Cluster bytes that a
producer on node A is still sending, before the fragment is complete or stored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from callstream.client.producer import connect_producer, produce
from callstream.kvs.selectors import StartSelector
from callstream.store.backends import open_backend
from callstream.store.crypto import Keyring
from callstream.store.service import MediaStore
from callstream.store.upload import EndReason

CLUSTER_ID = b"\x1f\x43\xb6\x75"


def test_reader_on_another_node_gets_the_open_fragments_bytes(
    nats_url: str, tmp_path: Path
) -> None:
    keyring = Keyring(tmp_path / "keys.json")  # one key file, as copied to every node
    prefix = f"live{time.time_ns() % 10**9}"

    def node(name: str) -> MediaStore:
        return MediaStore(
            open_backend(nats_url, tmp_path / name, keyring=keyring, nats_prefix=prefix)
        )

    chunks = [
        c.data
        for c in produce(
            connect_producer(contact_id="c", instance_id="i"), {1: bytes(32000)}, fragment_ms=1000
        )
    ]
    header, fragment = chunks[0], chunks[1]
    cut = fragment.index(CLUSTER_ID) + 4000  # the Cluster start and its first frames

    async def main() -> bytes:
        a, b = node("a"), node("b")
        await a.start()
        await b.start()
        try:
            stream = await a.create_stream("call", data_retention_hours=1)
            got = bytearray()

            async def write(data: bytes) -> None:
                got.extend(data)

            after = await b.start_after(stream, StartSelector.now())
            reader = asyncio.create_task(b.follow(stream, after, write, live_edge=True))
            writer = await a.open_writer(stream)
            await writer.write(header + fragment[:cut])
            async with asyncio.timeout(30):
                while fragment[fragment.index(CLUSTER_ID) : cut - 400] not in got:  # whole frames
                    await asyncio.sleep(0.01)
            # node A still holds the fragment open: nothing of it is stored yet
            [open_frag] = a.hub.after(stream.arn, None)
            assert not open_frag.complete and not open_frag.persisted
            assert await b.list_fragments(stream) == []
            await writer.write(fragment[cut:])
            await writer.close()
            reader.cancel()
            return bytes(got)
        finally:
            await a.close()
            await b.close()

    got = asyncio.run(main())
    assert got.startswith(b"\x1a\x45\xdf\xa3")  # the GetMedia document of the fragment


def test_a_newer_upload_on_another_node_ends_the_older_one(nats_url: str, tmp_path: Path) -> None:
    """As on KVS, a stream's newer producer wins: also when it connects to another node."""
    keyring = Keyring(tmp_path / "keys.json")
    prefix = f"sup{time.time_ns() % 10**9}"
    chunks = [
        c.data
        for c in produce(
            connect_producer(contact_id="c", instance_id="i"), {1: bytes(64000)}, fragment_ms=1000
        )
    ]

    async def main() -> None:
        a, b = (
            MediaStore(open_backend(nats_url, tmp_path / n, keyring=keyring, nats_prefix=prefix))
            for n in "ab"
        )
        await a.start()
        await b.start()
        try:
            stream = await a.create_stream("call", data_retention_hours=1)
            old = await a.open_writer(stream)
            await old.write(chunks[0] + chunks[1])
            async with asyncio.timeout(30):
                while not a.hub.after(stream.arn, None):  # the old upload is under way
                    await asyncio.sleep(0.01)
            new = await b.open_writer(stream)
            await new.write(chunks[0] + chunks[2])
            async with asyncio.timeout(30):
                while a.producing(stream.arn):
                    await asyncio.sleep(0.01)
            result = await old.close()
            assert str(result.end_reason) == str(EndReason.SUPERSEDED)
            await new.close()
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_a_remote_fragment_missing_live_bytes_ends_its_readers_once_stored() -> None:
    """Live bytes are at-most-once: when a chunk never reached the reader's node (a NATS
    reconnect) and the fragment is then stored, its readers end instead of waiting for
    bytes that will not come, and resume from the log with their continuation token."""
    from nats.aio.msg import Msg

    from callstream.store.backends.nats.live import NatsRelay, _Watch
    from callstream.store.live import LiveHub

    relay = NatsRelay(store=None)  # type: ignore[arg-type]  # no connection needed
    hub = LiveHub()
    arn = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/s/1"
    watch = _Watch(arn, hub)
    number = "9" * 47

    def event(headers: dict[str, str], data: bytes = b"") -> None:
        msg = Msg(None, subject="x", data=data, headers=headers)  # type: ignore[arg-type]
        asyncio.run(relay._on_event(watch, msg))

    event({"E": "o", "N": number, "S": "1", "P": "1"}, b"prefix")
    event({"E": "c", "N": number, "I": "0"}, b"c0")
    event({"E": "c", "N": number, "I": "2"}, b"c2")  # chunk 1 was lost
    [frag] = hub.after(arn, None)
    assert frag.chunks == [b"c0"] and not frag.dropped
    event({"E": "f", "N": number, "I": "3", "D": "1000"}, b"trailer")
    assert not frag.complete  # still waiting for chunk 1
    event({"E": "p", "N": number})
    assert frag.dropped and frag.persisted
