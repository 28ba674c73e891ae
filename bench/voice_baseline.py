"""Baseline for ``bench_voice.py``: the cost of receiving the RTP load in Python at all.

A plain asyncio UDP receiver on the default event loop (as ``callstream serve`` runs):
``--legs`` sockets on 127.0.0.1, one asyncio datagram endpoint each (as the voice
connector has one per leg). Every datagram is forwarded at once, prefixed with its
socket's 4-byte leg index, to ``--reader HOST:PORT`` (the load generator's reader
socket), so the generator measures send-to-reader latency the way it does through
callstream. No parsing, jitter buffer, muxing or storage.

    python bench/voice_baseline.py --legs 600 --reader 127.0.0.1:40000

Prints one JSON line ``{"ports": [...]}`` once every socket is bound, then runs until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from typing import Any


class _Leg(asyncio.DatagramProtocol):
    def __init__(self, index: int, out: socket.socket, reader: tuple[str, int]) -> None:
        self.prefix = index.to_bytes(4, "big")
        self.out = out
        self.reader = reader

    def datagram_received(self, data: bytes, addr: Any) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):  # lost: counted there
            self.out.sendto(self.prefix + data, self.reader)


async def run(legs: int, reader: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    out.setblocking(False)
    ports = []
    for index in range(legs):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)  # as the voice server
        sock.setblocking(False)
        ports.append(sock.getsockname()[1])
        await loop.create_datagram_endpoint(
            lambda i=index: _Leg(i, out, reader),  # type: ignore[misc]
            sock=sock,
        )
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--legs", type=int, required=True)
    ap.add_argument("--reader", required=True, metavar="HOST:PORT")
    args = ap.parse_args()
    host, _, port = args.reader.rpartition(":")
    asyncio.run(run(args.legs, (host, int(port))))
    sys.exit(0)


if __name__ == "__main__":
    main()
