"""Recording a call's legs: RTP in, one stream per leg out, Chime's streaming events on the side.

A :class:`CallRecorder` owns one answered call. Each recorded leg gets a
:class:`LegRecorder`: an asyncio datagram protocol on the leg's RTP socket that parses
packets (:mod:`~callstream.voice.rtp`), puts them through the leg's
:class:`~callstream.voice.jitterbuffer.JitterBuffer`, muxes the PCM it releases into the
MKV a Chime leg stream carries (:class:`~callstream.store.writers.FrameMuxer` over
:func:`~callstream.client.producer.chime_producer`: one mono ``audio/L16`` track, the
persistent tags ``TransactionId``, ``VoiceConnectorId``, ``CallId``) and hands it to the
leg's upload. Uploads go through a :class:`~callstream.flows.store.CallStore`: the store
service in this process, or PutMedia to any KVS endpoint; both run the one ingest path.

Timeline: the first RTP packet of the call (on any leg) is the call's time zero. Each
leg's audio sits on that timeline from its own first packet on, so the two streams line
up by their timestamps; a leg that is silent while the other one talks (no RTP yet, a
one-way hold) is filled with silence up to :data:`SILENT_LEG_LAG_MS` behind the other, so
live readers of both legs keep moving. Loss, reordering and gaps are the jitter buffer's.

Events, per leg, through the store's event channel (``VoiceConnectorStreamingStatus``,
Chime's "Chime VoiceConnector Streaming Status"): STARTED once the leg's first fragment
has its number (the ``startFragmentNumber`` a consumer starts GetMedia from), ENDED once
its upload is closed and stored, FAILED when its stream or upload fails; UPDATED once per
call for a re-INVITE or UPDATE. A streaming detail record is written per leg at the end
(:mod:`callstream.voice.sdr`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callstream.client.producer import chime_producer
from callstream.flows.store import CallEvents, CallStore, FedUpload
from callstream.kvs.acks import Ack
from callstream.store.writers import FrameMuxer
from callstream.voice.calls import Call, Leg
from callstream.voice.codecs import decoder_for
from callstream.voice.jitterbuffer import Chunk, JitterBuffer
from callstream.voice.rtp import RtpError, is_rtcp, parse_rtp

__all__ = ["SILENT_LEG_LAG_MS", "STATUS_EVENT", "CallRecorder", "LegRecorder", "LegStats"]

log = logging.getLogger("callstream.voice")

STATUS_EVENT = "VoiceConnectorStreamingStatus"
MEDIA_TYPE = "audio/L16"
SAMPLE_RATE = 8000
SILENT_LEG_LAG_MS = 500
"""How far behind the call's newest audio a leg without RTP is filled with silence."""
FRAGMENT_MS = 2000
SILENT_LAG_SAMPLES = SILENT_LEG_LAG_MS * SAMPLE_RATE // 1000
MAX_PACKETS_PER_POLL = 256
GRID_SAMPLES = 160
PACKET_MS = 20
"""The packet time assumed when estimating when queued packets arrived."""
TRACK = 1


@dataclass(slots=True)
class LegStats:
    """Counters of one leg (``callstream calls`` and the benchmark read them)."""

    packets: int = 0
    bytes_written: int = 0
    foreign: int = 0
    """Datagrams from an address the call did not offer (ignored)."""
    malformed: int = 0
    rtcp: int = 0
    last_arrival_ms: float | None = None


class LegRecorder:
    """One leg: its RTP socket, jitter buffer, muxer, upload and status events."""

    def __init__(self, recorder: CallRecorder, leg: Leg, stream_arn: str) -> None:
        self.recorder = recorder
        self.leg = leg
        self.stream_arn = stream_arn
        self.stats = LegStats()
        decoders: dict[int, Callable[[bytes], bytes]] = {}
        ignored: list[int] = []
        for pt, rtpmap in leg.payload_types.items():
            decode = decoder_for(rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels)
            if decode is None:
                ignored.append(pt)
            else:
                decoders[pt] = decode
        ignored.append(13)  # comfort noise: time, not audio
        self.jitter = JitterBuffer(decoders=decoders, ignored_payload_types=ignored)
        call = recorder.call
        self.muxer = FrameMuxer(
            chime_producer(
                transaction_id=call.transaction_id,
                voice_connector_id=call.voice_connector_id,
                call_id=call.call_id,
            ),
            fragment_ms=FRAGMENT_MS,
        )
        self.output: FedUpload | None = None
        self.start_fragment: str | None = None
        self.start_ms: int | None = None
        self.end_ms: int | None = None
        self.failed: str | None = None
        self.ended = False
        self.sock: socket.socket | None = None

    # --- RTP in ------------------------------------------------------------------------
    def poll(self, now_ms: float) -> bool:
        """Read every datagram waiting on the leg's socket, put the packets through the
        jitter buffer and write what it releases as one piece; True when a packet came.

        The server polls all legs every few tens of milliseconds instead of taking one
        event-loop callback per datagram: at hundreds of calls the per-datagram callbacks
        and per-packet uploads were most of the server's work."""
        sock = self.sock
        if sock is None or self.ended:
            return False
        allowed = self.recorder.allowed_sources(self.leg)
        stats = self.stats
        packets = []
        for _ in range(MAX_PACKETS_PER_POLL):
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # ICMP errors surface here on some kernels
                log.debug("RTP socket of %s: %s", self.leg.stream_name, exc)
                break
            if addr[0] not in allowed:
                stats.foreign += 1
                continue
            if is_rtcp(data):
                stats.rtcp += 1
                continue
            try:
                packets.append(parse_rtp(data))
            except RtpError:
                stats.malformed += 1
        got = bool(packets)
        jitter = self.jitter
        chunks: list[Chunk] = []
        # A poll reads what queued up since the last one: the newest packet arrived about
        # now, each earlier one a packet time before it (a steady sender's pace), which is
        # closer to the truth than stamping them all with the poll's time.
        last = len(packets) - 1
        for i, packet in enumerate(packets):
            arrival = now_ms - (last - i) * PACKET_MS
            start = None
            if jitter.received == 0:
                start = max(self.recorder.position_at(arrival), jitter.position)
            chunks += jitter.push(packet, arrival, start=start)
        stats.packets += len(packets)
        if got:
            stats.last_arrival_ms = now_ms
        if chunks:
            self.write(chunks)
        return got

    # --- audio out ---------------------------------------------------------------------
    def write(self, chunks: list[Chunk]) -> None:
        """Mux released audio into the leg's upload."""
        if not chunks or self.output is None:
            return
        t0 = self.recorder.t0_epoch_ms
        parts = []
        for chunk in chunks:
            timestamp = t0 + chunk.start // 8
            if self.start_ms is None:
                self.start_ms = timestamp
            parts.append(self.muxer.frame(TRACK, chunk.pcm, timestamp))
            self.end_ms = timestamp + len(chunk.pcm) // 16
        data = b"".join(parts)
        self.stats.bytes_written += len(data)
        self.output.feed(data)

    def on_ack(self, ack: Ack) -> None:
        if self.start_fragment is None and ack.fragment_number:
            self.start_fragment = ack.fragment_number
            self.recorder.publish_leg(self, "STARTED")
        elif ack.event_type == "ERROR" and self.failed is None:
            self.failed = f"{ack.error_code or 'ERROR'}"

    async def open(self, store: CallStore) -> None:
        upload = await store.open_upload(
            self.stream_arn, producer_start_ms=int(time.time() * 1000), on_ack=self.on_ack
        )
        self.output = FedUpload(upload)

    def summary(self) -> str:
        """One line for the call's end log: packets, and what the jitter buffer had to do
        about loss, lateness and timing (only the counters that are not zero)."""
        jitter = self.jitter
        counters = [
            ("lost", jitter.lost),
            ("late", jitter.late),
            ("duplicates", jitter.duplicates),
            ("reordered", jitter.reordered),
            ("resyncs", jitter.resyncs),
            ("malformed", self.stats.malformed),
            ("foreign", self.stats.foreign),
        ]
        shown = ", ".join(f"{value} {name}" for name, value in counters if value)
        return f"{self.leg.stream_name} {self.stats.packets} packets" + (
            f" ({shown})" if shown else ""
        )

    async def close(self) -> bool:
        """Flush the jitter buffer, end the upload; True when every fragment was stored."""
        self.poll(self.recorder.loop.time() * 1000.0)  # what arrived before the BYE
        self.ended = True
        if self.sock is not None:
            self.sock.close()
        self.write(self.jitter.flush())
        if self.output is None:
            return False
        await self.output.flush()
        if self.output.failed is not None:
            self.failed = self.failed or str(self.output.failed)
            with contextlib.suppress(Exception):
                await self.output.upload.abort()
            return False
        try:
            return await self.output.upload.close()
        except Exception as exc:
            self.failed = self.failed or f"{type(exc).__name__}: {exc}"
            return False


class CallRecorder:
    """One answered call: its legs' recorders, timeline and events."""

    def __init__(
        self,
        call: Call,
        store: CallStore,
        events: CallEvents,
    ) -> None:
        self.call = call
        self.store = store
        self.events = events
        self.loop = asyncio.get_running_loop()
        self.legs: list[LegRecorder] = []
        self.t0_ms: float | None = None
        """Loop time (ms) of the call's first RTP packet."""
        self.t0_epoch_ms = 0
        self.created_ms = int(time.time() * 1000)
        self.ended_ms: int | None = None
        self.prepared = False
        """Its streams exist and its uploads are open."""
        self._ending = False
        self._sources: dict[int, frozenset[str]] = {}

    # --- set-up ------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Create every leg's stream and open its upload (before the 200 goes out)."""
        call = self.call
        for leg in call.recorded_legs:
            arn = await self.store.ensure_stream(
                leg.stream_name, retention_hours=call.retention_hours, kms_key_id=None
            )
            recorder = LegRecorder(self, leg, arn)
            self.legs.append(recorder)
        for recorder in self.legs:
            await recorder.open(self.store)

    def start(self, take_socket: Callable[[int], socket.socket | None]) -> None:
        """Take each leg's RTP socket (bound when the INVITE was taken) for polling."""
        for recorder in self.legs:
            if not recorder.ended and recorder.sock is None:
                recorder.sock = take_socket(recorder.leg.port)

    def poll(self, now_ms: float) -> None:
        """Read every leg's waiting RTP; then fill legs that have been silent a while up
        to just behind the call's newest audio, so live readers of both keep moving."""
        moved = False
        for recorder in self.legs:
            moved = recorder.poll(now_ms) or moved
        if moved and len(self.legs) > 1:
            self._fill_silent_legs(now_ms)

    def allowed_sources(self, leg: Leg) -> frozenset[str]:
        cached = self._sources.get(leg.index)
        if cached is None:
            allowed = {self.call.signalling_source[0]}
            if leg.remote_ip:
                allowed.add(leg.remote_ip)
            cached = self._sources[leg.index] = frozenset(allowed)
        return cached

    def updated(self) -> None:
        """Offer addresses may have changed (re-INVITE)."""
        self._sources.clear()

    # --- timeline ----------------------------------------------------------------------
    def position_at(self, now_ms: float) -> int:
        """The call-timeline sample position of ``now_ms`` (loop time); sets time zero."""
        if self.t0_ms is None:
            self.t0_ms = now_ms
            # ``now_ms`` may be an estimate a little in the past (see LegRecorder.poll)
            self.t0_epoch_ms = int(time.time() * 1000 - (self.loop.time() * 1000 - now_ms))
            return 0
        # A leg's start sits on the 20 ms grid of the call's timeline: legs whose first
        # packets arrive a moment apart (the two legs of one call) start together.
        elapsed = now_ms - self.t0_ms
        samples = elapsed * SAMPLE_RATE / 1000
        return max(0, round(samples / GRID_SAMPLES) * GRID_SAMPLES)

    def _fill_silent_legs(self, now_ms: float) -> None:
        target = max(r.jitter.position for r in self.legs) - SILENT_LAG_SAMPLES
        for other in self.legs:
            if other.ended or other.jitter.position >= target:
                continue
            last = other.stats.last_arrival_ms
            if last is None or now_ms - last >= SILENT_LEG_LAG_MS:
                other.write(other.jitter.advance(target))

    @property
    def last_rtp_ms(self) -> float | None:
        times = [leg.stats.last_arrival_ms for leg in self.legs if leg.stats.last_arrival_ms]
        return max(times) if times else None

    # --- events --------------------------------------------------------------------------
    def _common(self) -> dict[str, Any]:
        call = self.call
        return {
            "VoiceConnectorId": call.voice_connector_id,
            "TransactionId": call.transaction_id,
            "CallId": call.call_id,
        }

    def leg_detail(self, recorder: LegRecorder) -> dict[str, Any]:
        """The STARTED/ENDED fields of one leg."""
        call = self.call
        leg = recorder.leg
        return {
            **self._common(),
            "StreamARN": recorder.stream_arn,
            "StartFragmentNumber": recorder.start_fragment,
            "StartTime": recorder.start_ms,
            "Direction": call.direction,
            "FromNumber": call.from_number,
            "ToNumber": call.to_number,
            "IsCaller": leg.is_caller,
            "MediaType": MEDIA_TYPE,
            "InviteHeaders": call.invite_headers,
            "SiprecMetadata": call.metadata_text,
            "Sdp": {"mediaIndex": leg.index, "mediaLabel": leg.label},
        }

    def publish_leg(self, recorder: LegRecorder, status: str, **extra: Any) -> None:
        detail = {**self.leg_detail(recorder), "StreamingStatus": status, **extra}
        self.events.publish(STATUS_EVENT, detail)

    def publish_updated(self, headers: dict[str, str]) -> None:
        self.events.publish(
            STATUS_EVENT,
            {
                **self._common(),
                "StreamingStatus": "UPDATED",
                "UpdateHeaders": headers,
                "SiprecMetadata": self.call.metadata_text,
            },
        )

    def publish_failed(self, reason: str) -> None:
        self.events.publish(
            STATUS_EVENT,
            {
                **self._common(),
                "StreamingStatus": "FAILED",
                "Direction": self.call.direction,
                "FailTime": int(time.time() * 1000),
                "FailureReason": reason,
            },
        )

    # --- the end -------------------------------------------------------------------------
    async def end(self) -> list[tuple[LegRecorder, bool]]:
        """Close every leg (their last audio is stored), publish ENDED / FAILED per leg."""
        if self._ending:
            return []
        self._ending = True
        for recorder in self.legs:
            recorder.write(recorder.jitter.flush())
        if len(self.legs) > 1 and self.t0_ms is not None:
            # every leg ends where the call's audio ends, so the streams line up
            last = max(r.jitter.position for r in self.legs)
            for recorder in self.legs:
                recorder.write(recorder.jitter.advance(last))
        results = []
        for recorder in self.legs:
            ok = await recorder.close()
            results.append((recorder, ok))
            if recorder.start_fragment is not None and recorder.failed is None:
                self.publish_leg(recorder, "ENDED", EndTime=recorder.end_ms)
            elif recorder.failed is not None:
                self.publish_failed(recorder.failed)
        self.ended_ms = int(time.time() * 1000)
        return results
