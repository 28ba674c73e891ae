"""The zero-copy live write: a GetMedia response fed from the producer's side.

A GetMedia reader that has caught up with the fragment being uploaded attaches a
:class:`ChunkedSink`; the uploading connection then writes each new Cluster chunk straight
to the reader's socket, in the chunked transfer coding the response already uses (RFC 9112
section 7.1). This saves the reader a wake-up per chunk, which is most of what a live
stream costs. It relies on what aiohttp does once a response is prepared without
compression: the headers are out and aiohttp writes its own chunks the same way, keeping
no buffer of its own (checked by a test pinned to the aiohttp versions pyproject allows).
A reader whose socket buffer passes :attr:`ChunkedSink.LIMIT` lets go and catches up
through ``response.write``, which waits for the socket to drain.
"""

from __future__ import annotations

import asyncio

from callstream.store.live import LiveSink

__all__ = ["ChunkedSink"]


class ChunkedSink(LiveSink):
    """Writes a live fragment's chunks to one prepared, chunked aiohttp response."""

    LIMIT = 64 * 1024

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self.transport = transport

    def ready(self) -> bool:
        """The socket takes data without a backlog."""
        t = self.transport
        return not t.is_closing() and t.get_write_buffer_size() <= self.LIMIT

    def push(self, data: bytes) -> bool:
        """Write one chunk now, unless the socket is backed up or closing."""
        if not data:
            return True  # an empty chunk would end the response
        if not self.ready():
            self.release()
            return False
        self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        self.sent += 1
        return True
