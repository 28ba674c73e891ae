"""Baseline for ``bench_server.py``: the cost of the HTTP framework alone.

A minimal aiohttp relay with the same endpoints the benchmark's load generator uses and
none of callstream's work (no SigV4, no MKV parsing, no storage, no acks):

* ``POST /putMedia`` (stream name in ``x-amzn-stream-name``): answers 200 with a chunked
  (empty) body at once, then copies every request body chunk, as it arrives, to the
  GetMedia readers of that stream that are waiting at that moment;
* ``POST /getMedia`` (JSON ``StreamName``): a chunked response carrying those chunks until
  the stream's next producer ends. With ``StartSelectorType`` ``EARLIEST`` it instead
  streams ``--blob-mb`` MB of in-memory bytes in 64 KiB writes (the catch-up baseline);
* any other ``POST`` answers ``{}`` (so control-plane calls such as createStream succeed).

    python bench/relay_server.py --port 8090 [--blob-mb 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from aiohttp import web

CHUNK = 65536


class Relay:
    def __init__(self, blob_mb: float) -> None:
        self.readers: dict[str, set[web.StreamResponse]] = {}
        self.producer_done: dict[str, asyncio.Event] = {}
        self.blob = os.urandom(int(blob_mb * 1_000_000)) if blob_mb > 0 else b""

    async def put_media(self, request: web.Request) -> web.StreamResponse:
        name = request.headers.get("x-amzn-stream-name", "")
        done = self.producer_done.setdefault(name, asyncio.Event())
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(request)
        readers = self.readers.setdefault(name, set())
        try:
            async for chunk in request.content.iter_any():
                for r in tuple(readers):
                    try:
                        await r.write(chunk)
                    except (ConnectionError, RuntimeError):
                        readers.discard(r)
        finally:
            done.set()
            self.producer_done.pop(name, None)
        await response.write_eof()
        return response

    async def get_media(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read() or b"{}")
        name = body.get("StreamName", "")
        kind = (body.get("StartSelector") or {}).get("StartSelectorType")
        response = web.StreamResponse(status=200)
        response.content_type = "video/webm"
        response.enable_chunked_encoding()
        await response.prepare(request)
        if kind == "EARLIEST":
            view = memoryview(self.blob)
            for i in range(0, len(view), CHUNK):
                await response.write(view[i : i + CHUNK])
            await response.write_eof()
            return response
        done = self.producer_done.setdefault(name, asyncio.Event())
        readers = self.readers.setdefault(name, set())
        readers.add(response)
        try:
            await done.wait()
        finally:
            readers.discard(response)
        await response.write_eof()
        return response

    async def other(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({})


def build_app(relay: Relay) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/putMedia", relay.put_media)
    app.router.add_post("/getMedia", relay.get_media)
    app.router.add_post("/{tail:.*}", relay.other)
    return app


async def main(host: str, port: int, blob_mb: float) -> None:
    runner = web.AppRunner(build_app(Relay(blob_mb)), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    print(f"relay serving on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--blob-mb", type=float, default=0.0, help="bytes served for EARLIEST")
    args = ap.parse_args()
    asyncio.run(main(args.host, args.port, args.blob_mb))
