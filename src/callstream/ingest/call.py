"""The call sink: one ingest connection's events in, a call's streams, tags and events out.

A protocol core (:mod:`callstream.ingest.twilio`, ``audiohook``, ``audiosocket``,
``websocket``) turns what a peer sends into :mod:`~callstream.ingest.events`; a
:class:`CallSink` turns those into what every other call in callstream is:

* **streams**, written through the store's in-process ingest (the same
  :class:`~callstream.flows.store.CallUpload` path PutMedia, the flows and the voice
  connector use), in one of two shapes (:class:`SinkSettings.shape`):

  - ``connect``: one stream per call with Connect's two tracks, ``AUDIO_FROM_CUSTOMER``
    (the caller) and ``AUDIO_TO_CUSTOMER`` (the agent), 8 kHz L16 in 20 ms blocks and
    1 s fragments, persistent fragment tags ``ContactId`` / ``InstanceId`` (what
    :mod:`callstream.flows.streaming` writes, so the analytics, ``get-audio`` and the UI
    read it unchanged); audio at another rate is resampled to 8 kHz;
  - ``chime``: one stream per leg (role), one mono L16 track at the call's own rate, the
    voice connector's persistent tags ``TransactionId`` / ``VoiceConnectorId`` /
    ``CallId``;

  every stream carries the stream tags ``callstream:source``, ``callstream:call-id``,
  ``callstream:shape`` (and ``callstream:role`` per leg), plus the call's metadata as
  ``callstream:meta:<name>`` (:func:`stream_tags`);
* **call events** on the bus, the ones the analytics starts calls from: ``connect`` shape
  ``MediaStreamingStarted`` (``ContactId``, ``StreamARN``, ``StartFragmentNumber``,
  ``StartTimestamp``, ``Tracks``) once the first fragment has its number, and
  ``MediaStreamingStopped`` (``StopFragmentNumber``) once the upload is stored;
  ``chime`` shape ``VoiceConnectorStreamingStatus`` ``STARTED`` / ``ENDED`` per leg
  with ``IsCaller`` (``FAILED`` when an upload fails).

Timeline (:class:`Timeline`, sans-I/O): time zero is :class:`CallStarted`. Audio with a
``timestamp_ms`` goes where its timestamp says (a jump ahead is filled with silence,
audio that overlaps what is already placed loses the overlap; within
:data:`TOLERANCE_MS` it is taken as contiguous); audio without one follows the channel's
previous audio. A channel that falls :data:`LAG_MS` behind the call while its peer sends
nothing for it is filled with silence up to :data:`LAG_MS` behind the newest audio (the
voice connector's rule), so live readers of the other channel keep moving; at the end
every channel is filled to the call's end so the tracks line up.

Pause (AudioHook ``paused``) is recorded as **silence**, as long as the pause lasted by
the wall clock: the streams keep true call time, live readers (the analytics, the UI)
keep moving instead of stalling on a gap, ``get-audio`` gives a file whose time is call
time, and a paused call is not an idle one. Audio after ``resumed`` continues where the
silence ends, whatever position the peer's timestamps say (AudioHook's positions may or
may not count the pause).

Roles: each channel's role is the protocol's (``CallStarted.channels``), swapped when
:attr:`SinkSettings.swap_roles` says so; two channels claiming one role make the second
the other role (as the analytics pairs legs).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from callstream.client.producer import (
    AUDIO_FROM_CUSTOMER,
    AUDIO_TO_CUSTOMER,
    KvsProducer,
    chime_producer,
    connect_producer,
)
from callstream.flows.store import (
    MEDIA_STREAMING_STARTED,
    MEDIA_STREAMING_STOPPED,
    CallEvents,
    FedUpload,
    LocalCallStore,
)
from callstream.ingest.events import (
    AudioReceived,
    CallEnded,
    CallPaused,
    CallResumed,
    CallStarted,
    IngestEvent,
    Role,
)
from callstream.kvs.acks import Ack, EventType
from callstream.store.writers import FrameMuxer

if TYPE_CHECKING:
    from callstream.store.service import MediaStore

__all__ = [
    "CONNECT_RATE",
    "FRAME_MS",
    "LAG_MS",
    "STATUS_EVENT",
    "TOLERANCE_MS",
    "CallSink",
    "IngestTarget",
    "Shape",
    "SinkSettings",
    "Timeline",
    "stream_tags",
]

log = logging.getLogger("callstream.ingest")

Shape = Literal["connect", "chime"]
STATUS_EVENT = "VoiceConnectorStreamingStatus"
CONNECT_RATE = 8000
FRAME_MS = 20
"""Audio is written in blocks of this many milliseconds (a shorter one only at the end)."""
LAG_MS = 500
"""How far behind the call's newest audio a channel without audio is filled with silence."""
TOLERANCE_MS = 10
"""A timestamp this close to where a channel's audio ends is taken as contiguous."""
MAX_GAP_MS = 60_000
"""A timestamp jump past this is not filled (the audio follows on): a broken or hostile
peer must not make the server write minutes of silence."""
FRAGMENT_MS = 1000
ROLES: tuple[Role, Role] = ("caller", "agent")
TRACKS: dict[Role, str] = {"caller": AUDIO_FROM_CUSTOMER, "agent": AUDIO_TO_CUSTOMER}
MAX_META_TAGS = 40
"""Stream tags taken from the call's metadata (KVS allows 50 tags a stream)."""
_TAG_CHARS = re.compile(r"[^\w\s_.:/=+\-@]", re.UNICODE)


def _tag_text(text: str, limit: int) -> str:
    """``text`` in the characters KVS allows in tags, at most ``limit`` characters."""
    return _TAG_CHARS.sub("_", text)[:limit]


def stream_tags(
    source: str, call_id: str, shape: str, metadata: Mapping[str, str], **extra: str
) -> dict[str, str]:
    """The stream tags of an ingested call: ``callstream:source``, ``callstream:call-id``,
    ``callstream:shape``, ``extra`` as ``callstream:<name>``, then up to
    :data:`MAX_META_TAGS` metadata items as ``callstream:meta:<name>`` (characters KVS
    does not allow in tags become ``_``; keys cut at 128, values at 256 characters)."""
    tags = {
        "callstream:source": _tag_text(source, 256),
        "callstream:call-id": _tag_text(call_id, 256),
        "callstream:shape": shape,
    }
    for name, value in extra.items():
        tags[f"callstream:{name}"] = _tag_text(value, 256)
    for name, value in list(metadata.items())[:MAX_META_TAGS]:
        key = _tag_text(f"callstream:meta:{name}", 128)
        tags.setdefault(key, _tag_text(str(value), 256))
    return tags


# --- the timeline (sans-I/O) -----------------------------------------------------------------


@dataclass(slots=True)
class _Lane:
    """One role's audio on the call's timeline."""

    role: Role
    present: bool
    """The peer has a channel for this role (an absent one is silence in connect shape)."""
    released: int = 0
    """Samples handed out by :meth:`Timeline.release`."""
    pending: bytearray = field(default_factory=bytearray)
    last_audio_ms: float | None = None
    audio_samples: int = 0
    """Samples of the peer's audio placed (not silence)."""
    dropped_samples: int = 0
    """Samples of late audio dropped because their place was already taken."""

    @property
    def position(self) -> int:
        return self.released + len(self.pending) // 2

    def fill_to(self, target: int) -> None:
        if target > self.position:
            self.pending += bytes(2 * (target - self.position))


class Timeline:
    """The call's audio per role on one clock (see the module docstring): audio is
    :meth:`place` d, silence filled by :meth:`fill_lagging` / pauses, and whole frames
    taken by :meth:`release`. ``rate`` is the timeline's sample rate; ``now_ms`` values
    are any monotonic milliseconds (the wall clock at the edge, anything in tests)."""

    def __init__(self, roles: Iterable[Role], rate: int, *, joint: bool) -> None:
        present = set(roles)
        self.rate = rate
        self.frame = rate * FRAME_MS // 1000
        self.joint = joint
        """Release both roles together (one two-track stream: every block has its pair)."""
        self.lanes: dict[Role, _Lane] = {
            role: _Lane(role, role in present) for role in ROLES if joint or role in present
        }
        self.offset = 0
        """Samples added to a timestamp's position (moved by a resume)."""
        self._reanchor = False
        self.paused_at: tuple[float, int] | None = None
        """(now_ms, timeline position) of the current pause."""

    def _samples(self, ms: float) -> int:
        return round(ms * self.rate / 1000)

    @property
    def end(self) -> int:
        """The newest position of any role."""
        return max(lane.position for lane in self.lanes.values())

    def place(self, role: Role, pcm: bytes, timestamp_ms: float | None, now_ms: float) -> None:
        """Put ``pcm`` (16-bit LE at :attr:`rate`) on ``role``'s lane (see the module
        docstring for where)."""
        lane = self.lanes.get(role)
        if lane is None or not pcm:
            return
        if len(pcm) % 2:
            pcm = pcm[:-1]
        if self.paused_at is not None:  # audio during a pause: the pause is over
            self.resume(now_ms)
        lane.last_audio_ms = now_ms
        if timestamp_ms is not None:
            at = self._samples(timestamp_ms)
            if self._reanchor:
                self.offset = max(self.offset, lane.position - at)
                self._reanchor = False
            gap = at + self.offset - lane.position
            tolerance = self._samples(TOLERANCE_MS)
            if gap > tolerance:
                if gap <= self._samples(MAX_GAP_MS):
                    lane.fill_to(lane.position + gap)
            elif gap < -tolerance:
                late = min(-gap, len(pcm) // 2)
                lane.dropped_samples += late
                pcm = pcm[2 * late :]
        lane.pending += pcm
        lane.audio_samples += len(pcm) // 2
        self.fill_lagging(now_ms)

    def fill_lagging(self, now_ms: float) -> None:
        """Fill every lane that has had no audio for :data:`LAG_MS` up to :data:`LAG_MS`
        behind the newest audio; while paused, fill all of them up to the pause's length."""
        if self.paused_at is not None:
            since, base = self.paused_at
            target = base + self._samples(max(0.0, now_ms - since))
            for lane in self.lanes.values():
                lane.fill_to(target)
            return
        end = self.end
        target = end - self._samples(LAG_MS)
        for lane in self.lanes.values():
            if not lane.present:  # no channel for this role: silence, never waited for
                lane.fill_to(end)
                continue
            if lane.position >= target:
                continue
            last = lane.last_audio_ms
            if last is None or now_ms - last >= LAG_MS:
                lane.fill_to(target)

    def pause(self, now_ms: float) -> None:
        """Audio stops on purpose: silence from here until :meth:`resume`."""
        if self.paused_at is None:
            end = self.end
            for lane in self.lanes.values():
                lane.fill_to(end)
            self.paused_at = (now_ms, end)

    def resume(self, now_ms: float) -> None:
        """The pause ends: its silence is filled; the next timestamped audio continues
        where it ends."""
        if self.paused_at is not None:
            self.fill_lagging(now_ms)
            self.paused_at = None
            self._reanchor = True

    def release(self, *, final: bool = False) -> list[tuple[int, dict[Role, bytes]]]:
        """The audio ready to write, as ``(position, {role: pcm})`` pieces in time order,
        one frame each. Only whole frames leave unless ``final``: then every lane is first
        filled to the call's end, so all streams end together."""
        lanes = list(self.lanes.values())
        if final:
            end = self.end
            for lane in lanes:
                lane.fill_to(end)
        out: list[tuple[int, dict[Role, bytes]]] = []
        frame = self.frame
        if self.joint:
            upto = min(lane.position for lane in lanes)
            start = lanes[0].released
            if not final:
                upto = start + (upto - start) // frame * frame
            for pos in range(start, upto, frame):
                n = min(frame, upto - pos)
                out.append((pos, {lane.role: self._take(lane, n) for lane in lanes}))
            return out
        for lane in lanes:
            upto = lane.position
            if not final:
                upto = lane.released + (upto - lane.released) // frame * frame
            for pos in range(lane.released, upto, frame):
                out.append((pos, {lane.role: self._take(lane, min(frame, upto - pos))}))
        out.sort(key=lambda item: item[0])
        return out

    @staticmethod
    def _take(lane: _Lane, n: int) -> bytes:
        data = bytes(lane.pending[: 2 * n])
        del lane.pending[: 2 * n]
        lane.released += n
        return data


# --- I/O: the store and the bus --------------------------------------------------------------


@dataclass(slots=True)
class IngestTarget:
    """Where ingested calls go: the store service in this process and the call-event bus
    (``publish(event_type, detail)``, e.g. :func:`callstream.voice.server.bus_publisher`)."""

    store: MediaStore
    publish: Callable[[str, Mapping[str, Any]], object] | None = None
    report: Callable[[str], None] = field(default=lambda m: log.warning("%s", m))

    def call_store(self) -> LocalCallStore:
        return LocalCallStore(self.store, publish=self.publish)


@dataclass(frozen=True, slots=True)
class SinkSettings:
    """How a call is written (from ``callstream serve --ingest-*``)."""

    shape: Shape = "connect"
    swap_roles: bool = False
    """Swap caller and agent (a gateway whose tracks are the other way round)."""
    stream_prefix: str = "callstream-ingest"
    retention_hours: int = 24
    instance_id: str = "callstream-ingest"
    """The ``InstanceId`` tag of connect-shaped streams."""


@dataclass(slots=True)
class _Stream:
    """One stream of the call (connect: the call's; chime: one leg's)."""

    name: str
    roles: tuple[Role, ...]
    arn: str = ""
    muxer: FrameMuxer | None = None
    output: FedUpload | None = None
    start_fragment: str | None = None
    last_fragment: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    failed: str | None = None
    announced: bool = False
    bytes_written: int = 0


class CallSink:
    """One connection's call: feed it the core's events (:meth:`handle`), call
    :meth:`tick` now and then (lag and pause silence), and :meth:`end` when the
    connection ends (also fine without a call). ``clock`` gives epoch milliseconds."""

    def __init__(
        self,
        target: IngestTarget,
        settings: SinkSettings | None = None,
        *,
        clock: Callable[[], float] = lambda: time.time() * 1000.0,
    ) -> None:
        self.target = target
        self.settings = settings or SinkSettings()
        self.clock = clock
        self.started: CallStarted | None = None
        self.ended = False
        self.end_reason: str | None = None
        self.timeline: Timeline | None = None
        self.roles: dict[int, Role] = {}
        self.streams: list[_Stream] = []
        self.contact_id = str(uuid.uuid4())
        """The call's ``ContactId`` (connect shape) or ``TransactionId`` (chime shape)."""
        self.t0_ms = 0
        self.rate = 0
        self._store = target.call_store()
        self._events = CallEvents(self._store, target.report)
        self._resamplers: dict[Role, Any] = {}
        self._fed: dict[Role, float] = {}
        self._produced: dict[Role, int] = {}

    # --- identities -----------------------------------------------------------------------
    @property
    def call_id(self) -> str | None:
        """The protocol's call id (None before :class:`CallStarted`)."""
        return self.started.call_id if self.started is not None else None

    @property
    def failed(self) -> str | None:
        """Why writing the call failed (the edge ends the connection), or None."""
        for stream in self.streams:
            if stream.output is not None and stream.output.failed is not None:
                return stream.failed or str(stream.output.failed)
            if stream.failed:
                return stream.failed
        return None

    # --- events in ------------------------------------------------------------------------
    async def handle(self, events: Iterable[IngestEvent]) -> None:
        """Apply the core's events (``Reply``, ``Close`` and ``ProtocolError`` are the
        edge's and ignored here; ``CallEnded`` ends the call)."""
        for event in events:
            if self.ended:
                return
            if isinstance(event, AudioReceived):
                self.audio(event)
            elif isinstance(event, CallStarted):
                await self.start(event)
            elif isinstance(event, CallPaused):
                if self.timeline is not None:
                    self.timeline.pause(self.clock())
            elif isinstance(event, CallResumed):
                if self.timeline is not None:
                    self.timeline.resume(self.clock())
                    self._write()
            elif isinstance(event, CallEnded):
                await self.end(event.reason)

    async def start(self, event: CallStarted) -> None:
        """Create the call's streams (tagged), open their uploads."""
        if self.started is not None:
            log.debug("second CallStarted on one connection ignored")
            return
        self.started = event
        settings = self.settings
        roles: dict[int, Role] = {}
        for index, role in enumerate(event.channels[:2]):
            if settings.swap_roles:
                role = "agent" if role == "caller" else "caller"
            if role in roles.values():
                role = "agent" if role == "caller" else "caller"
            roles[index] = role
        self.roles = roles
        joint = settings.shape == "connect"
        self.rate = CONNECT_RATE if joint else event.sample_rate
        if event.sample_rate != self.rate:
            from callstream.media.resample import Resampler

            self._resamplers = {role: Resampler(event.sample_rate, self.rate) for role in ROLES}
        self.timeline = Timeline(roles.values(), self.rate, joint=joint)
        self.t0_ms = int(self.clock())
        store = self.target.store
        base = f"{settings.stream_prefix}-{_name_part(event.source)}-{self.contact_id}"
        if joint:
            self.streams = [_Stream(base, ROLES)]
        else:
            self.streams = [_Stream(f"{base}-{role}", (role,)) for role in self.timeline.lanes]
        for stream in self.streams:
            extra = (
                {"contact-id": self.contact_id}
                if joint
                else {
                    "transaction-id": self.contact_id,
                    "role": stream.roles[0],
                }
            )
            tags = stream_tags(event.source, event.call_id, settings.shape, event.metadata, **extra)
            record = await store.create_stream(
                stream.name,
                data_retention_hours=settings.retention_hours,
                media_type="audio/L16",
                tags=tags,
            )
            stream.arn = record.arn
            stream.muxer = FrameMuxer(self._producer(event), fragment_ms=FRAGMENT_MS)
        for stream in self.streams:
            upload = await self._store.open_upload(
                stream.arn,
                producer_start_ms=self.t0_ms,
                on_ack=lambda ack, s=stream: self._on_ack(s, ack),  # type: ignore[misc]
            )
            stream.output = FedUpload(upload)

    def _producer(self, event: CallStarted) -> KvsProducer:
        extra = {"callstream:source": event.source[:256], "callstream:call-id": event.call_id[:256]}
        if self.settings.shape == "connect":
            return connect_producer(
                contact_id=self.contact_id,
                instance_id=self.settings.instance_id,
                frame_ms=FRAME_MS,
                extra_tags=extra,
            )
        return chime_producer(
            transaction_id=self.contact_id,
            voice_connector_id=self._voice_connector_id,
            call_id=event.call_id[:256],
            sample_rate=self.rate,
            frame_ms=FRAME_MS,
            extra_tags={"callstream:source": event.source[:256]},
        )

    @property
    def _voice_connector_id(self) -> str:
        source = self.started.source if self.started is not None else "ingest"
        return f"callstream-ingest-{_name_part(source)}"

    def audio(self, event: AudioReceived) -> None:
        """Place one piece of audio and write what is ready."""
        role = self.roles.get(event.channel)
        timeline = self.timeline
        if role is None or timeline is None:
            return
        pcm = event.pcm
        timestamp: float | None = event.timestamp_ms
        resampler = self._resamplers.get(role)
        if resampler is not None:
            # the resampler holds back some audio (its filter delay): the piece it gives
            # ends that much before the end of what went in
            started = self.started
            assert started is not None
            fed = self._fed.get(role, 0.0) + len(pcm) // 2 * self.rate / started.sample_rate
            pcm = resampler.process(pcm[: len(pcm) // 2 * 2]).tobytes()
            produced = self._produced.get(role, 0) + len(pcm) // 2
            self._fed[role], self._produced[role] = fed, produced
            if timestamp is not None:
                held = fed - produced
                end = timestamp * self.rate / 1000 + len(event.pcm) // 2 * self.rate / (
                    started.sample_rate
                )
                timestamp = (end - held - len(pcm) // 2) * 1000 / self.rate
        timeline.place(role, pcm, timestamp, self.clock())
        self._write()

    def tick(self) -> None:
        """Fill lagging channels and paused time with silence, write what is ready."""
        if self.timeline is not None and not self.ended:
            self.timeline.fill_lagging(self.clock())
            self._write()

    # --- audio out ------------------------------------------------------------------------
    def _write(self, *, final: bool = False) -> None:
        timeline = self.timeline
        if timeline is None:
            return
        pieces = timeline.release(final=final)
        if not pieces:
            return
        rate = timeline.rate
        joint = timeline.joint
        by_stream: dict[int, list[bytes]] = {}
        for pos, parts in pieces:
            timestamp = self.t0_ms + pos * 1000 // rate
            end_ms = timestamp + (len(next(iter(parts.values()))) // 2) * 1000 // rate
            for i, stream in enumerate(self.streams):
                if joint:
                    chunk = [
                        stream.muxer.frame(TRACKS[role], parts[role], timestamp)  # type: ignore[union-attr]
                        for role in ROLES
                    ]
                elif stream.roles[0] in parts:
                    chunk = [stream.muxer.frame(1, parts[stream.roles[0]], timestamp)]  # type: ignore[union-attr]
                else:
                    continue
                if stream.start_ms is None:
                    stream.start_ms = timestamp
                stream.end_ms = end_ms
                by_stream.setdefault(i, []).extend(chunk)
        for i, chunks in by_stream.items():
            stream = self.streams[i]
            data = b"".join(chunks)
            stream.bytes_written += len(data)
            if stream.output is not None:
                stream.output.feed(data)

    def _on_ack(self, stream: _Stream, ack: Ack) -> None:
        if ack.fragment_number and ack.event_type in (EventType.BUFFERING, EventType.RECEIVED):
            stream.last_fragment = ack.fragment_number
            if stream.start_fragment is None:
                stream.start_fragment = ack.fragment_number
                self._announce(stream)
        elif ack.event_type == EventType.ERROR and stream.failed is None:
            stream.failed = f"PutMedia ERROR {ack.error_id} {ack.error_code}"

    # --- events out -----------------------------------------------------------------------
    def _announce(self, stream: _Stream) -> None:
        stream.announced = True
        if self.settings.shape == "connect":
            self._events.publish(
                MEDIA_STREAMING_STARTED,
                {
                    "ContactId": self.contact_id,
                    "StreamARN": stream.arn,
                    "StartFragmentNumber": stream.start_fragment,
                    "StartTimestamp": stream.start_ms,
                    "Tracks": [AUDIO_FROM_CUSTOMER, AUDIO_TO_CUSTOMER],
                },
            )
        else:
            self._events.publish(STATUS_EVENT, {**self._leg(stream), "StreamingStatus": "STARTED"})

    def _leg(self, stream: _Stream) -> dict[str, Any]:
        started = self.started
        assert started is not None
        meta = started.metadata
        return {
            "VoiceConnectorId": self._voice_connector_id,
            "TransactionId": self.contact_id,
            "CallId": started.call_id,
            "StreamARN": stream.arn,
            "StartFragmentNumber": stream.start_fragment,
            "StartTime": stream.start_ms,
            "Direction": "Inbound",
            "FromNumber": _first(meta, "from", "From", "fromNumber", "ani", "caller"),
            "ToNumber": _first(meta, "to", "To", "toNumber", "dnis", "called"),
            "IsCaller": stream.roles[0] == "caller",
            "MediaType": "audio/L16",
        }

    async def end(self, reason: str = "ended") -> None:
        """End the call: the rest of the audio (every channel filled to the end), the
        uploads closed and stored, the stop events published. Idempotent."""
        if self.ended:
            return
        self.ended = True
        self.end_reason = reason
        if self.timeline is not None:
            for role, resampler in self._resamplers.items():
                tail = resampler.flush().tobytes()
                if tail:
                    self.timeline.place(role, tail, None, self.clock())
            self.timeline.paused_at = None
            self._write(final=True)
        for stream in self.streams:
            ok = await self._close(stream)
            if not stream.announced:
                continue
            if self.settings.shape == "connect":
                self._events.publish(
                    MEDIA_STREAMING_STOPPED,
                    {
                        "ContactId": self.contact_id,
                        "StreamARN": stream.arn,
                        "StopFragmentNumber": stream.last_fragment,
                        "StopTimestamp": stream.end_ms,
                    },
                )
            elif ok and stream.failed is None:
                self._events.publish(
                    STATUS_EVENT,
                    {**self._leg(stream), "StreamingStatus": "ENDED", "EndTime": stream.end_ms},
                )
            else:
                self._events.publish(
                    STATUS_EVENT,
                    {
                        "VoiceConnectorId": self._voice_connector_id,
                        "TransactionId": self.contact_id,
                        "CallId": self.call_id,
                        "StreamingStatus": "FAILED",
                        "Direction": "Inbound",
                        "FailTime": int(self.clock()),
                        "FailureReason": stream.failed or "the upload failed",
                    },
                )
        await self._events.drain()

    async def _close(self, stream: _Stream) -> bool:
        output = stream.output
        if output is None:
            return False
        await output.flush()
        if output.failed is not None:
            stream.failed = stream.failed or str(output.failed)
            with contextlib.suppress(Exception):
                await output.upload.abort()
            return False
        try:
            return await output.upload.close()
        except Exception as exc:
            stream.failed = stream.failed or f"{type(exc).__name__}: {exc}"
            return False

    async def abort(self) -> None:
        """Tear the call down now (the server is stopping hard): uploads aborted."""
        self.ended = True
        for stream in self.streams:
            if stream.output is not None:
                with contextlib.suppress(Exception):
                    await stream.output.upload.abort()
        await self._events.cancel()


def _first(meta: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        value = meta.get(key)
        if value:
            return str(value)
    return None


def _name_part(text: str) -> str:
    """``text`` in the characters a stream name allows."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text)[:64] or "x"
