"""Media plane: PutMedia and GetMedia, as thin HTTP adapters over the store service.

PutMedia hands the request body and an ack writer to :meth:`MediaStore.ingest
<callstream.store.service.MediaStore.ingest>`; GetMedia finds its start point and lets the
store write fragment documents to the response, live chunks through a
:class:`~callstream.api.livesink.ChunkedSink` (kvs-wire §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import Any

from aiohttp import web

from callstream.api.app import BODY_SHA256, Handler, ServerState, read_json, start_streaming
from callstream.api.errors import KvsError
from callstream.api.livesink import ChunkedSink
from callstream.api.shapes import parse_timestamp
from callstream.kvs.acks import Ack, serialize
from callstream.kvs.selectors import StartSelector

__all__ = ["ROUTES", "start_selector"]


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- PutMedia ---------------------------------------------------------------------------------


async def put_media(request: web.Request, state: ServerState) -> web.StreamResponse:
    """``POST /putMedia``: stream MKV in, acks out, on one connection."""
    h = request.headers
    stream = await state.stream(
        {"StreamName": h.get("x-amzn-stream-name"), "StreamARN": h.get("x-amzn-stream-arn")}
    )
    timecode_type = h.get("x-amzn-fragment-timecode-type", "").upper()
    if timecode_type not in ("ABSOLUTE", "RELATIVE"):
        raise KvsError(
            "InvalidArgumentException",
            "x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE.",
        )
    start_ms: int | None = None
    if h.get("x-amzn-producer-start-timestamp"):
        start_ms = parse_timestamp(
            h["x-amzn-producer-start-timestamp"], "x-amzn-producer-start-timestamp"
        )
        if start_ms < 0:
            raise KvsError(
                "InvalidArgumentException",
                "x-amzn-producer-start-timestamp must not be before 1970.",
            )

    read_next = request.content.readany
    expected_sha256 = request.get(BODY_SHA256)
    if expected_sha256:  # the client signed a concrete body hash: check it before ingesting
        body = await request.read()
        if hashlib.sha256(body).hexdigest() != expected_sha256.lower():
            raise KvsError(
                "InvalidSignatureException",
                "The request body does not match the x-amz-content-sha256 it was signed with.",
            )
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        pieces.reverse()

        async def read_next() -> bytes:
            return pieces.pop() if pieces else b""

    response = await start_streaming(request, "application/json")

    async def send_ack(ack: Ack) -> None:
        await response.write(serialize(ack))

    result = await state.store.ingest(
        stream,
        read_next,
        send_ack,
        timecode_type=timecode_type,
        producer_start_ms=start_ms,
    )
    if not result.acks_sent and request.transport is not None:
        request.transport.abort()  # the producer stopped reading its acks
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    if not request.content.is_eof():
        # Ended before the producer finished its body (a newer connection won, the
        # server is stopping, invalid MKV): close the connection, as KVS does, instead
        # of letting aiohttp read and discard the rest of the upload for 10 s.
        request.protocol.force_close()
    return response


# --- GetMedia ---------------------------------------------------------------------------------


def start_selector(body: dict[str, Any]) -> StartSelector:
    """The request's ``StartSelector`` (InvalidArgumentException when malformed)."""
    selector = body.get("StartSelector")
    if not isinstance(selector, dict):
        raise KvsError("InvalidArgumentException", "StartSelector is required.")
    kind = selector.get("StartSelectorType")
    if kind == "EARLIEST":
        return StartSelector.earliest()
    if kind == "NOW":
        return StartSelector.now()
    if kind == "FRAGMENT_NUMBER":
        number = selector.get("AfterFragmentNumber")
        if not isinstance(number, str):
            raise KvsError("InvalidArgumentException", "AfterFragmentNumber is not valid.")
        return StartSelector.after_fragment(number)
    if kind == "CONTINUATION_TOKEN":
        token = selector.get("ContinuationToken")
        if not isinstance(token, str):
            raise KvsError("InvalidArgumentException", "ContinuationToken is not valid.")
        return StartSelector.continuation(token)
    if kind in ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"):
        ms = parse_timestamp(selector.get("StartTimestamp"), "StartTimestamp")
        if kind == "PRODUCER_TIMESTAMP":
            return StartSelector.producer_timestamp(ms)
        return StartSelector.server_timestamp(ms)
    raise KvsError("InvalidArgumentException", f"Invalid StartSelectorType {kind!r}.")


async def get_media(request: web.Request, state: ServerState) -> web.StreamResponse:
    """``POST /getMedia``."""
    body = await read_json(request)
    stream = await state.stream(body)
    store = state.store
    after = await store.start_after(stream, start_selector(body))
    async with store.reader_slot(stream, "GET_MEDIA"):
        response = await start_streaming(request, "video/webm")
        transport = request.transport
        sink = ChunkedSink(transport) if isinstance(transport, asyncio.Transport) else None
        await store.follow(stream, after, response.write, sink=sink)
        await response.write_eof()
        return response


ROUTES: dict[str, Handler] = {
    "/putMedia": put_media,
    "/getMedia": get_media,
}
