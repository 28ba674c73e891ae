"""Place a contact: the I/O edge of the flow engine.

:func:`place_call` runs a flow for one contact the way Amazon Connect would, with real media
and real side effects, against a server or the store service in this process::

    result = await place_call(
        flow="lca-contact-flow.json",
        customer_audio="customer.wav",
        agent_audio="agent.wav",
        lambdas={"StartLCA": "my_handlers:start_lca"},
        endpoint_url="http://127.0.0.1:8080",  # or store=LocalCallStore(media_store, ...)
        speed=10.0,
    )
    print(json.dumps(result.ctr, indent=2))

**The media clock** (:mod:`callstream.flows.clock`). Call audio is 8 kHz, 16-bit mono per
direction, moved in 20 ms frames. Media time 0 is the call start (the contact's
InitiationTimestamp, a whole epoch second); the clock advances in real time divided by
``speed``. Frame *k* (samples ``160k .. 160k+159``) is *played* when the clock reaches its
end; only then does it reach the stream.

* **From the customer**: sample *t* of the call is sample *t* of ``customer_audio`` (the
  whole WAV plays from the call start). The customer hangs up when it ends (the last frame
  may be short), unless the flow disconnected first.
* **To the customer**: prompts (MessageParticipant, GetParticipantInput), played one after
  the other (:mod:`callstream.flows.prompts`: spoken with ``espeak-ng`` when it is
  installed, else a 440 Hz tone of about 60 ms per character, at most 3 s); once
  TransferContactToQueue queued the contact, the agent audio; silence otherwise. A
  prompt's block completes when the prompt has been played on the media clock.

**Live media streaming** (:mod:`callstream.flows.streaming`). An Enabled
UpdateContactMediaStreamingBehavior block creates the contact's stream when it is absent
(CreateStream with the instance's retention and KMS key; an existing stream is reused, as
Connect pools streams) and opens a PutMedia upload in the Connect shape
(:func:`~callstream.client.producer.connect_producer`: ``AUDIO_FROM_CUSTOMER`` and
``AUDIO_TO_CUSTOMER`` tracks, ``ContactId``/``InstanceId`` tags, ABSOLUTE timecodes = call
start + media time, 20 ms frames, fragments ending on whole media seconds). Streaming starts
at the next frame to be played: StartTimestamp is that frame's media time and
StartFragmentNumber the number the server assigned (BUFFERING ack) to the first fragment.
A direction the block does not request is streamed as silence. Streaming goes on across
TransferToFlow until a Disabled block (the upload ends after the frame being played, and
the block completes once every fragment is PERSISTED) or the end of the contact. The audio
is sample-exact: from StartFragmentNumber a reader gets ``customer_audio[start:stop]`` on
``AUDIO_FROM_CUSTOMER`` and exactly what the customer heard on ``AUDIO_TO_CUSTOMER``, with
``start = (StartTimestamp - InitiationTimestamp) * 8``.

**Lambdas** (:mod:`callstream.flows.lambdas`) are bound with
:meth:`~callstream.flows.effects.LambdaRef.lookup` (ARN, function name, block Identifier or
designer name) to a ``module:function`` (or ``path/to/file.py:function``) handler, called as
``handler(event, context)`` in a thread, or to an ``http(s)://`` URL that receives the event
as a JSON POST; both within the block's time limit (real time, not media time).

**The store** (:mod:`callstream.flows.store`). Streams, uploads, the contact record and the
call's events go through one :class:`~callstream.flows.store.CallStore`: with
``endpoint_url``, a server over HTTP (boto3 ``kinesisvideo``, PutMedia, SigV4-signed POSTs
to ``/callstream/contacts`` and ``/callstream/events``); with ``store``, any implementation,
e.g. :class:`~callstream.flows.store.LocalCallStore` over the store service in this process.
The call publishes ContactStarted, MediaStreamingStarted and MediaStreamingStopped (per
streaming period) and ContactEnded (with the CTR) events. At the end the contact record
(:func:`~callstream.flows.ctr.build_ctr`) is stored (HTTP: POSTed to
``{endpoint_url}/callstream/contacts``). A store that does not take the record or the
events is reported through ``on_event``; it does not fail the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import numpy as np
from botocore.credentials import Credentials

from callstream.flows.clock import FRAME_SAMPLES, SAMPLE_RATE, Int16Array, MediaClock, mono_8k
from callstream.flows.contact import Channel, Contact, MediaStream
from callstream.flows.ctr import build_ctr
from callstream.flows.effects import (
    Disconnect,
    Effect,
    FlowEnded,
    GetInput,
    InputResult,
    InvokeLambda,
    Log,
    PlayPrompt,
    Result,
    StartMediaStreaming,
    StopMediaStreaming,
    TransferResult,
    TransferToQueue,
    WaitFor,
    WaitResult,
)
from callstream.flows.instance import Instance
from callstream.flows.interpreter import FlowRun, Step
from callstream.flows.lambdas import (
    LambdaCall,
    LambdaContext,
    LambdaInvoker,
    LambdaSpec,
    load_handler,
)
from callstream.flows.loader import load_flow
from callstream.flows.model import Flow
from callstream.flows.prompts import (
    NON_TEXT_PROMPT_MS,
    TONE_MAX_MS,
    prompt_audio,
    prompt_text,
    tone,
)
from callstream.flows.registry import FlowRegistry
from callstream.flows.store import (
    CONTACT_CONNECTED_TO_AGENT,
    CONTACT_CONNECTED_TO_SYSTEM,
    CONTACT_ENDED,
    CONTACT_QUEUED,
    CONTACT_STARTED,
    CONTACTS_PATH,
    CallEvents,
    CallStore,
    CallStoreError,
    HttpCallStore,
    LocalCallStore,
)
from callstream.flows.streaming import MediaStreaming

__all__ = [
    "CONTACTS_PATH",
    "FRAME_SAMPLES",
    "NON_TEXT_PROMPT_MS",
    "SAMPLE_RATE",
    "TONE_MAX_MS",
    "CallControl",
    "CallResult",
    "CallStore",
    "HttpCallStore",
    "LambdaCall",
    "LambdaContext",
    "LambdaSpec",
    "LocalCallStore",
    "PromptPlayed",
    "iso_ms",
    "load_handler",
    "place_call",
    "prompt_audio",
    "tone",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
EventSink = Callable[[str], object]
FlowSource = Flow | PathLike | Mapping[str, Any]
"""A loaded flow, a path to an exported flow, or its parsed JSON."""

_DTMF_SEPARATORS = frozenset(", ;")


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptPlayed:
    """A prompt on the to-customer track: media samples ``[start, end)`` (8 kHz)."""

    start: int
    end: int
    text: str
    action: str = ""


@dataclass(slots=True)
class CallResult:
    """What a placed call did.

    ``stream_arn`` / ``start_fragment_number`` / ``start_timestamp_ms`` /
    ``stop_timestamp_ms`` / ``stop_fragment_number`` describe the first live-media-streaming
    period (all of them are in ``media_streams`` and the CTR's ``Recordings``). Timestamps
    are epoch ms; ``initiation_timestamp_ms`` is media time 0. ``customer_audio`` and
    ``heard`` are the two directions of the whole call (8 kHz int16, ``duration_samples``
    long): what the customer said and what the customer heard.
    """

    contact_id: str
    ctr: dict[str, Any]
    lambda_calls: list[LambdaCall]
    stream_arn: str | None
    start_fragment_number: str | None
    start_timestamp_ms: int | None
    stop_timestamp_ms: int | None
    stop_fragment_number: str | None
    stream_name: str | None
    initiation_timestamp_ms: int
    duration_samples: int
    customer_audio: Int16Array
    heard: Int16Array
    end: FlowEnded
    media_streams: list[MediaStream] = field(default_factory=list)
    prompts: list[PromptPlayed] = field(default_factory=list)
    agent_start: int | None = None
    """Sample at which the agent audio started on the to-customer track (None: never)."""
    messages: list[str] = field(default_factory=list)
    """Prompts sent as messages (chat and task contacts)."""
    trace: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    logs: list[Mapping[str, Any]] = field(default_factory=list)
    """Flow-log entries (while UpdateFlowLoggingBehavior enabled logging)."""
    ctr_stored: bool = False
    """True when the store accepted the CTR."""

    @property
    def duration_ms(self) -> int:
        """Length of the call in media milliseconds."""
        return self.duration_samples * 1000 // SAMPLE_RATE


# --- the call -------------------------------------------------------------------------------


def _epoch_ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    """Epoch ms as ISO 8601 with milliseconds (``2026-01-02T03:04:05.678Z``), as Connect's
    contact events write timestamps."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class CallControl:
    """A handle on a contact while :func:`place_call` places it: :attr:`contact` once it
    started (live: attributes may be changed), :meth:`stop` ends it as StopContact does
    (the customer side hangs up after the frame being played; DisconnectReason ``API``)."""

    def __init__(self) -> None:
        self.contact: Contact | None = None
        self.started = asyncio.Event()
        self.stopped = False
        self._call: _Call | None = None

    def _attach(self, call: _Call) -> None:
        self._call = call
        self.contact = call.contact
        self.started.set()
        if self.stopped:
            self._hang_up(call)

    def stop(self) -> None:
        """End the contact (no-op once it ended)."""
        self.stopped = True
        if self._call is not None:
            self._hang_up(self._call)

    @staticmethod
    def _hang_up(call: _Call) -> None:
        call.hangup_reason = "API"
        call.media.hang_up()


class _Call:
    """Performs one contact's effects on the media clock: prompts, input and the queue
    here; streaming, Lambdas and the store through their own parts."""

    def __init__(
        self,
        *,
        run: FlowRun,
        media: MediaClock,
        instance: Instance,
        agent: Int16Array | None,
        lambdas: Mapping[str, LambdaSpec],
        store: CallStore,
        dtmf: str,
        on_event: EventSink | None,
        http: aiohttp.ClientSession,
        contact_events: bool = False,
    ) -> None:
        self.run = run
        self.contact_events = contact_events
        self.hangup_reason = "CUSTOMER_DISCONNECT"
        self.contact = run.contact
        self.media = media
        self.instance = instance
        self.agent = agent
        self.store = store
        self.dtmf = dtmf
        self.on_event = on_event
        self.prompts: list[PromptPlayed] = []
        self.messages: list[str] = []
        self.logs: list[Mapping[str, Any]] = []
        self.agent_start: int | None = None
        self.events = CallEvents(store, self.emit)
        self.lambdas = LambdaInvoker(lambdas, http=http, emit=self.emit)
        self.streaming = MediaStreaming(
            store=store,
            media=media,
            contact=self.contact,
            instance=instance,
            emit=self.emit,
            publish=self.events.publish,
        )

    # events ----------------------------------------------------------------------------
    def emit(self, message: str) -> None:
        """A progress line, stamped with the media time."""
        ms = self.media.now_ms
        line = f"[{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}] {message}"
        if self.on_event is not None:
            self.on_event(line)
        else:
            log.info("%s", line)

    def contact_started(self) -> None:
        """Publish ContactStarted."""
        contact = self.contact
        self.events.publish(CONTACT_STARTED, self._contact_fields())
        if self.contact_events and contact.channel == "VOICE":
            self.events.publish(
                CONTACT_CONNECTED_TO_SYSTEM,
                {
                    **self._contact_fields(),
                    "ConnectedToSystemTimestamp": _epoch_ms(
                        contact.connected_to_system_timestamp or contact.initiation_timestamp
                    ),
                },
            )

    def _contact_fields(self) -> dict[str, Any]:
        """The fields every Connect contact event carries."""
        contact = self.contact
        return {
            "ContactId": contact.contact_id,
            "Channel": contact.channel,
            "InitiationMethod": contact.initiation_method,
            "InstanceARN": contact.instance_arn or self.instance.arn,
            "InitiationTimestamp": _epoch_ms(contact.initiation_timestamp),
            "InitialContactId": contact.initial_contact_id,
            "PreviousContactId": contact.previous_contact_id,
        }

    async def contact_ended(self, ctr: Mapping[str, Any]) -> bool:
        """Store the contact record and publish ContactEnded, after the events before it;
        True when the record was stored."""
        await self.events.flush()
        try:
            await self.store.store_contact_record(ctr)
        except CallStoreError as exc:
            self.emit(str(exc))
            stored = False
        else:
            self.emit("CTR stored")
            stored = True
        contact = self.contact
        self.events.publish(
            CONTACT_ENDED,
            {
                "ContactId": contact.contact_id,
                "Channel": contact.channel,
                "InstanceARN": contact.instance_arn or self.instance.arn,
                "DisconnectReason": contact.disconnect_reason,
                "DisconnectTimestamp": _epoch_ms(contact.disconnect_timestamp),
                "ContactRecord": dict(ctr),
            },
        )
        return stored

    # driving ---------------------------------------------------------------------------
    async def drive(self) -> FlowEnded:
        """Run the flow to the end of the contact."""
        run = self.run
        effect = run.start()
        hung_up = False
        while True:
            if isinstance(effect, FlowEnded):
                if effect.contact_ended:
                    return effect
                self.emit(f"flow ended ({effect.reason}); the contact stays up")
                await self.media.done.wait()
                if not self.media.customer_left.is_set():  # pragma: no cover - defensive
                    self.emit("media ended")
                self.emit("customer hung up")
                effect = run.hangup(self.hangup_reason)
                hung_up = True
                continue
            if not hung_up and self.media.customer_left.is_set():
                self.emit(f"customer hung up (during {type(effect).__name__})")
                effect = run.hangup(self.hangup_reason)
                hung_up = True
                continue
            # Starting a stream is not abandoned on a hang-up: the upload it began is
            # finished either way, and the contact must record it (StartFragmentNumber).
            streaming = StartMediaStreaming | StopMediaStreaming
            if hung_up or isinstance(effect, Log | Disconnect | streaming):
                result = await self.perform(effect)
            else:
                result, left = await self._race(effect)
                if left:
                    self.emit(f"customer hung up (during {type(effect).__name__})")
                    effect = run.hangup(self.hangup_reason)
                    hung_up = True
                    continue
            effect = run.resume(result)

    async def _race(self, effect: Effect) -> tuple[Result, bool]:
        """Perform ``effect`` unless the customer hangs up first (then it is abandoned)."""
        task = asyncio.create_task(self.perform(effect))
        left = asyncio.create_task(self.media.customer_left.wait())
        try:
            await asyncio.wait({task, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
        if task.done():
            return task.result(), False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None, True

    async def perform(self, effect: Effect) -> Result:
        """Perform one effect; returns its result for :meth:`FlowRun.resume`."""
        if isinstance(effect, Log):
            self.logs.append(effect.entry)
            entry = effect.entry
            self.emit(
                f"log {entry.get('ContactFlowModuleType')} {entry.get('Identifier')}"
                f" -> {entry.get('Results')}"
            )
            return None
        if isinstance(effect, StartMediaStreaming):
            return await self.streaming.start(effect)
        if isinstance(effect, StopMediaStreaming):
            return await self.streaming.stop(effect)
        if isinstance(effect, InvokeLambda):
            return await self.lambdas.invoke(effect)
        if isinstance(effect, PlayPrompt):
            await self.play(effect)
            return None
        if isinstance(effect, GetInput):
            return await self.get_input(effect)
        if isinstance(effect, WaitFor):
            self.emit(f"wait {effect.timeout_s} s")
            await self.media.until(self.media.emitted + effect.timeout_s * SAMPLE_RATE)
            return WaitResult(None)
        if isinstance(effect, TransferToQueue):
            return self.enqueue(effect)
        if isinstance(effect, Disconnect):
            self.emit(f"disconnect ({effect.reason})")
            await self.media.stop_after_current_frame()
            return None
        raise TypeError(f"unknown effect {type(effect).__name__}")  # pragma: no cover

    # prompts, input, queue -------------------------------------------------------------
    async def play(self, prompt: PlayPrompt) -> None:
        """Play a prompt to the customer and wait until it has been heard."""
        text, _ = prompt_text(prompt)
        label = text or prompt.prompt_id or prompt.media_uri or ""
        if self.contact.channel != "VOICE":
            self.messages.append(label)
            self.emit(f"message: {label!r}")
            return
        audio = await prompt_audio(prompt)
        start, end = self.media.schedule(audio)
        self.prompts.append(PromptPlayed(start, end, label, prompt.action))
        self.emit(f"prompt {label!r} ({(end - start) * 1000 // SAMPLE_RATE} ms)")
        await self.media.until(end)

    def _take_digits(self, effect: GetInput) -> str | None:
        rest = self.dtmf.lstrip("".join(_DTMF_SEPARATORS))
        if not rest:
            self.dtmf = ""
            return None
        limit = effect.max_digits if effect.store_input else 1
        digits = ""
        i = 0
        while i < len(rest) and len(digits) < limit:
            ch = rest[i]
            if ch in _DTMF_SEPARATORS:
                break
            i += 1
            if effect.terminator is not None and ch == effect.terminator:
                break
            digits += ch
        if (
            i < len(rest)
            and effect.terminator is not None
            and rest[i] == effect.terminator
            and len(digits) == limit
        ):
            i += 1
        self.dtmf = rest[i:]
        return digits

    async def get_input(self, effect: GetInput) -> Result:
        """Play the prompt, then answer from ``dtmf`` or time out on the media clock."""
        if effect.prompt is not None:
            await self.play(effect.prompt)
        digits = self._take_digits(effect)
        if digits is None:
            self.emit(f"input: no digits; waiting {effect.timeout_s} s")
            await self.media.until(self.media.emitted + effect.timeout_s * SAMPLE_RATE)
            return InputResult(None)
        self.emit(f"input: {digits!r}")
        return InputResult(digits)

    def enqueue(self, effect: TransferToQueue) -> Result:
        """Queue the contact; the agent audio follows what is already playing."""
        self.emit(f"queued in {effect.queue.name}")
        if self.contact_events:
            self.events.publish(
                CONTACT_QUEUED,
                {
                    **self._contact_fields(),
                    "QueueInfo": {
                        "queueArn": effect.queue.arn,
                        "queueType": "STANDARD",
                        "enqueueTimestamp": iso_ms(self.media.epoch_ms(self.media.emitted)),
                    },
                },
            )
        if self.agent is not None and self.contact.channel == "VOICE":
            start, end = self.media.schedule(self.agent)
            self.agent_start = start
            self.emit(f"agent audio at {start * 1000 // SAMPLE_RATE} ms ({end - start} samples)")
            if self.contact_events:
                self.events.publish(
                    CONTACT_CONNECTED_TO_AGENT,
                    {
                        **self._contact_fields(),
                        "QueueInfo": {"queueArn": effect.queue.arn, "queueType": "STANDARD"},
                        "AgentInfo": {
                            "agentArn": f"{self.instance.arn}/agent/callstream-agent",
                            "connectedToAgentTimestamp": iso_ms(self.media.epoch_ms(start)),
                        },
                    },
                )
        return TransferResult("queued")


def _as_flow(source: FlowSource) -> Flow:
    return source if isinstance(source, Flow) else load_flow(source)


# --- entry point ----------------------------------------------------------------------------


async def place_call(
    *,
    flow: FlowSource,
    customer_audio: PathLike | Int16Array,
    endpoint_url: str | None = None,
    store: CallStore | None = None,
    flows: Sequence[FlowSource] = (),
    agent_audio: PathLike | Int16Array | None = None,
    channel: Channel = "VOICE",
    attributes: Mapping[str, str] | None = None,
    lambdas: Mapping[str, LambdaSpec] | None = None,
    region: str = "us-east-1",
    credentials: Credentials | None = None,
    speed: float = 1.0,
    instance: Instance | None = None,
    dtmf: str | None = None,
    contact_id: str | None = None,
    on_event: EventSink | None = None,
    customer_address: str | None = "+15555550100",
    system_address: str | None = "+15555550199",
    initiation_method: str = "INBOUND",
    control: CallControl | None = None,
    contact_events: bool = False,
) -> CallResult:
    """Place one contact through ``flow`` against the server at ``endpoint_url`` (or
    through ``store``).

    ``flow`` (and the TransferToFlow targets in ``flows``): a loaded :class:`Flow`, a path
    to an exported flow, or its parsed JSON. ``customer_audio``: a WAV (channel 0 of a
    stereo file), resampled to 8 kHz; the contact lasts until it ends unless the flow
    disconnects first. ``agent_audio``: a WAV the customer hears once the contact is
    queued. ``channel``: VOICE, CHAT or TASK (media streaming is voice only).
    ``attributes``: initial contact attributes. ``lambdas``: ``{name: module:function |
    path.py:function | URL | callable}`` where a name is a function ARN, function name,
    block Identifier or designer name. ``endpoint_url`` / ``region`` / ``credentials``:
    the server (an :class:`~callstream.flows.store.HttpCallStore`; credentials None: the
    botocore chain). ``store``: any :class:`~callstream.flows.store.CallStore` instead
    (its owner closes it). ``speed``: media time runs ``speed`` times faster than real
    time. ``instance``: queues and streaming settings (default: a fresh instance in
    ``region``). ``dtmf``: the keys the customer presses, taken by each
    GetParticipantInput in turn (``,`` or a space ends one entry). ``on_event``: receives
    progress lines (default: the ``callstream.flows.call`` logger).

    Raises :class:`~callstream.flows.model.FlowError` for a broken flow and
    :class:`ValueError` for bad arguments; everything that happens during the call (stream,
    Lambda or server errors) takes the blocks' error branches or is reported through
    ``on_event``.
    """
    if (endpoint_url is None) == (store is None):
        raise ValueError("give either endpoint_url or store")
    if not speed > 0 or math.isinf(speed):
        raise ValueError(f"speed must be a positive number, got {speed}")
    if channel not in ("VOICE", "CHAT", "TASK"):
        raise ValueError(f"channel must be VOICE, CHAT or TASK, not {channel!r}")
    main = _as_flow(flow)
    registry = FlowRegistry(main, *(_as_flow(f) for f in flows))
    customer = customer_audio if isinstance(customer_audio, np.ndarray) else mono_8k(customer_audio)
    agent = (
        agent_audio
        if isinstance(agent_audio, np.ndarray) or agent_audio is None
        else mono_8k(agent_audio)
    )
    instance = instance or Instance(region=region)

    call_start_ms = time.time_ns() // 1_000_000 // 1000 * 1000  # a whole second
    media = MediaClock(customer, speed=speed, call_start_ms=call_start_ms)
    contact = Contact.new(
        instance=instance,
        channel=channel,
        attributes=dict(attributes or {}),
        contact_id=contact_id,
        now=datetime.fromtimestamp(call_start_ms / 1000, tz=UTC),
        customer_address=customer_address,
        system_address=system_address,
        initiation_method=initiation_method,
    )
    run = FlowRun(main, contact, instance=instance, flows=registry, clock=media.now)

    async with aiohttp.ClientSession() as http:
        call_store = store
        if call_store is None:
            assert endpoint_url is not None
            call_store = HttpCallStore(
                endpoint_url, region=region, credentials=credentials, session=http
            )
        call = _Call(
            run=run,
            media=media,
            instance=instance,
            agent=agent,
            lambdas=dict(lambdas or {}),
            store=call_store,
            dtmf=dtmf or "",
            on_event=on_event,
            http=http,
            contact_events=contact_events,
        )
        if control is not None:
            control._attach(call)
        try:
            call.emit(
                f"contact {contact.contact_id} ({channel}) through {main.name or 'flow'};"
                f" customer audio {customer.shape[0] * 1000 // SAMPLE_RATE} ms, speed {speed:g}"
            )
            if channel == "VOICE":  # e.g. building a boto3 client: not on the media clock
                with contextlib.suppress(Exception):
                    await call_store.prepare()
            call.contact_started()
            media.start()
            try:
                end = await call.drive()
                await media.stop_after_current_frame()
                await call.streaming.finish()
                await call.lambdas.wait_background()
            finally:
                await media.close()
                await call.streaming.cancel()
            call.emit(f"contact ended: {end.reason} ({contact.disconnect_reason})")
            ctr = build_ctr(contact, instance, now=media.now())
            stored = await call.contact_ended(ctr)
            await call.events.drain()
        finally:
            await call.events.cancel()
            if store is None:
                await call_store.close()

    first = contact.media_streams[0] if contact.media_streams else None
    stream_name = instance.stream_name(contact.contact_id) if first is not None else None
    return CallResult(
        contact_id=contact.contact_id,
        ctr=ctr,
        lambda_calls=call.lambdas.calls,
        stream_arn=first.stream_arn if first else None,
        start_fragment_number=first.start_fragment_number if first else None,
        start_timestamp_ms=first.start_timestamp_ms if first else None,
        stop_timestamp_ms=first.stop_timestamp_ms if first else None,
        stop_fragment_number=first.stop_fragment_number if first else None,
        stream_name=stream_name,
        initiation_timestamp_ms=call_start_ms,
        duration_samples=media.emitted,
        customer_audio=customer[: media.emitted].copy(),
        heard=media.heard_audio(),
        end=end,
        media_streams=list(contact.media_streams),
        prompts=call.prompts,
        agent_start=call.agent_start,
        messages=call.messages,
        trace=list(run.trace),
        notes=list(run.notes),
        logs=call.logs,
        ctr_stored=stored,
    )
