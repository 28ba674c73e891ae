"""The zero-copy live write (``ChunkedSink``) against the aiohttp that is installed.

The sink writes chunked framing straight to the transport under a prepared aiohttp
response. That is correct only while aiohttp sends a prepared response's headers at once,
frames its own writes the same way and keeps no buffer between them; these tests fail
when an aiohttp release changes that, whatever its version number."""

from __future__ import annotations

import asyncio
import zlib

import aiohttp
import pytest
from aiohttp import web

from callstream.api.livesink import ChunkedSink
from callstream.store.live import LiveFragment


async def _serve(handler: web.RequestHandler) -> tuple[web.AppRunner, str]:  # type: ignore[type-arg]
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]


def test_aiohttp_is_a_version_this_was_checked_with() -> None:
    major, minor = (int(p) for p in aiohttp.__version__.split(".")[:2])
    assert (major, minor) >= (3, 14), "pyproject requires aiohttp >= 3.14"
    assert major == 3, "a new aiohttp major version: check ChunkedSink against it"


@pytest.mark.parametrize("interleave", [False, True])
def test_chunks_pushed_by_the_sink_arrive_in_order_between_aiohttp_writes(
    interleave: bool,
) -> None:
    pieces = [bytes([i]) * (1 + 997 * i % 5000) for i in range(60)]

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"prefix:")
        assert isinstance(request.transport, asyncio.Transport)
        sink = ChunkedSink(request.transport)
        for i, piece in enumerate(pieces):
            if interleave and i % 3 == 0:
                await response.write(piece)  # aiohttp's own chunk between the sink's
            else:
                assert sink.push(piece)
        await response.write(b":end")
        await response.write_eof()
        return response

    async def main() -> bytes:
        runner, url = await _serve(handler)
        try:
            async with aiohttp.ClientSession() as session, session.post(url) as resp:
                assert resp.headers.get("Transfer-Encoding") == "chunked"
                return await resp.read()
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) == b"prefix:" + b"".join(pieces) + b":end"


def test_a_sink_riding_a_fragment_gets_every_chunk_until_it_completes() -> None:
    frag = LiveFragment(number="1", server_timestamp_ms=0, producer_timestamp_ms=0, prefix=b"")
    chunks = [zlib.compress(bytes([i]) * 100) for i in range(20)]

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"<")
        assert isinstance(request.transport, asyncio.Transport)
        sink = ChunkedSink(request.transport)

        async def produce() -> None:
            for chunk in chunks:
                await asyncio.sleep(0)
                frag.append(chunk)
            frag.finish(b"", 0)

        producer = asyncio.create_task(produce())
        sent = await sink.ride(frag, 0)
        await producer
        assert sent == len(chunks)
        await response.write(b">")
        await response.write_eof()
        return response

    async def main() -> bytes:
        runner, url = await _serve(handler)
        try:
            async with aiohttp.ClientSession() as session, session.post(url) as resp:
                return await resp.read()
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) == b"<" + b"".join(chunks) + b">"
