"""A live producer's last fragment (an unknown-size Cluster, as a producer writing frame by
frame sends) is completed by the end of the body: the PutMedia client ends the body rather
than waiting for an acknowledgement only that end can bring."""

from __future__ import annotations

import asyncio
import time

from botocore.credentials import Credentials
from server_helpers import ACCESS_KEY, SECRET_KEY, Kvs, unique

from callstream.client.producer import chime_producer
from callstream.client.putmedia import put_media
from callstream.kvs.acks import Ack
from callstream.store.writers import FrameMuxer


def test_last_unknown_size_cluster_is_persisted_when_the_body_ends(kvs: Kvs) -> None:
    _, arn = kvs.create(unique("live-close"))
    muxer = FrameMuxer(
        chime_producer(transaction_id="t", voice_connector_id="v", call_id="c"), fragment_ms=500
    )
    start = int(time.time() * 1000)
    acks: list[Ack] = []

    async def frames() -> object:
        for k in range(60):  # 1.2 s of 20 ms frames: three fragments, the last one open
            yield muxer.frame(1, bytes(320), start + 20 * k)
            await asyncio.sleep(0)

    async def main() -> object:
        return await put_media(
            kvs.url,
            frames(),
            stream_arn=arn,
            credentials=Credentials(ACCESS_KEY, SECRET_KEY),
            region="us-east-1",
            on_ack=acks.append,
            timecode_type="ABSOLUTE",
            producer_start_ms=start,
            finish_timeout=20.0,
        )

    result = asyncio.run(main())
    assert result.complete  # type: ignore[attr-defined]
    assert not result.gave_up  # type: ignore[attr-defined]  # no wait for finish_timeout
    persisted = [a.fragment_timecode for a in acks if a.event_type == "PERSISTED"]
    assert persisted == [start, start + 500, start + 1000]
