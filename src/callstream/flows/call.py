"""Place a contact against a running server: the I/O edge of the flow engine.

:func:`place_call` runs a flow for one contact the way Amazon Connect would, with real media
and real side effects::

    result = await place_call(
        flow="lca-contact-flow.json",
        customer_audio="customer.wav",
        agent_audio="agent.wav",
        lambdas={"StartLCA": "my_handlers:start_lca"},
        endpoint_url="http://127.0.0.1:8080",
        speed=10.0,
    )
    print(json.dumps(result.ctr, indent=2))

**The media clock.** Call audio is 8 kHz, 16-bit mono per direction, moved in 20 ms frames.
Media time 0 is the call start (the contact's InitiationTimestamp, a whole epoch second);
the clock advances in real time divided by ``speed``. Frame *k* (samples ``160k ..
160k+159``) is *played* when the clock reaches its end; only then does it reach the stream.

* **From the customer**: sample *t* of the call is sample *t* of ``customer_audio`` (the
  whole WAV plays from the call start). The customer hangs up when it ends (the last frame
  may be short), unless the flow disconnected first.
* **To the customer**: prompts (MessageParticipant, GetParticipantInput), played one after
  the other (spoken with ``espeak-ng`` when it is installed, else a 440 Hz tone of about
  60 ms per character, at most 3 s); once TransferContactToQueue queued the contact, the
  agent audio; silence otherwise. A prompt's block completes when the prompt has been
  played on the media clock.

**Live media streaming.** An Enabled UpdateContactMediaStreamingBehavior block creates the
contact's stream when it is absent (CreateStream with the instance's retention and KMS key;
an existing stream is reused, as Connect pools streams) and opens a PutMedia upload in the
Connect shape (:func:`~callstream.client.producer.connect_producer`: ``AUDIO_FROM_CUSTOMER``
and ``AUDIO_TO_CUSTOMER`` tracks, ``ContactId``/``InstanceId`` tags, ABSOLUTE timecodes =
call start + media time, 20 ms frames, fragments ending on whole media seconds). Streaming
starts at the next frame to be played: StartTimestamp is that frame's media time and
StartFragmentNumber the number the server assigned (BUFFERING ack) to the first fragment.
A direction the block does not request is streamed as silence. Streaming goes on across
TransferToFlow until a Disabled block (the upload ends after the frame being played, and
the block completes once every fragment is PERSISTED) or the end of the contact. The audio
is sample-exact: from StartFragmentNumber a reader gets ``customer_audio[start:stop]`` on
``AUDIO_FROM_CUSTOMER`` and exactly what the customer heard on ``AUDIO_TO_CUSTOMER``, with
``start = (StartTimestamp - InitiationTimestamp) * 8``.

**Lambdas** are bound with :meth:`~callstream.flows.effects.LambdaRef.lookup` (ARN,
function name, block Identifier or designer name) to a ``module:function`` (or
``path/to/file.py:function``) handler, called as ``handler(event, context)`` in a thread,
or to an ``http(s)://`` URL that receives the event as a JSON POST; both within the block's
time limit (real time, not media time).

At the end the contact record (:func:`~callstream.flows.ctr.build_ctr`) is POSTed,
SigV4-signed, to ``{endpoint_url}/callstream/contacts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import numpy as np
import numpy.typing as npt
from botocore.credentials import Credentials

from callstream.client.aws import sign_request
from callstream.client.producer import (
    AUDIO_FROM_CUSTOMER,
    AUDIO_TO_CUSTOMER,
    KvsProducer,
    connect_producer,
)
from callstream.client.putmedia import PutMediaResult, put_media
from callstream.flows.contact import Channel, Contact, MediaStream
from callstream.flows.ctr import build_ctr
from callstream.flows.effects import (
    Disconnect,
    Effect,
    Failed,
    FlowEnded,
    GetInput,
    InputResult,
    InvokeLambda,
    LambdaResult,
    Log,
    MediaStreamingStarted,
    MediaStreamingStopped,
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
from callstream.flows.loader import load_flow
from callstream.flows.model import Flow
from callstream.flows.registry import FlowRegistry
from callstream.kvs.acks import Ack, EventType
from callstream.media.resample import resample
from callstream.media.wav import read_wav

__all__ = [
    "CONTACTS_PATH",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "CallResult",
    "LambdaCall",
    "LambdaContext",
    "LambdaSpec",
    "PromptPlayed",
    "load_handler",
    "place_call",
    "prompt_audio",
    "tone",
]

log = logging.getLogger(__name__)

Int16Array = npt.NDArray[np.int16]
PathLike = str | os.PathLike[str]
LambdaHandler = Callable[[dict[str, Any], Any], Any]
LambdaSpec = str | LambdaHandler
"""A Lambda binding: ``module:function``, ``path/to/file.py:function``, an ``http(s)://``
URL, or a callable ``handler(event, context)``."""
EventSink = Callable[[str], object]
FlowSource = Flow | PathLike | Mapping[str, Any]
"""A loaded flow, a path to an exported flow, or its parsed JSON."""

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAGMENT_SAMPLES = SAMPLE_RATE  # 1 s fragments, aligned to whole media seconds
CONTACTS_PATH = "/callstream/contacts"
SERVICE = "kinesisvideo"

TONE_HZ = 440.0
TONE_MS_PER_CHAR = 60
TONE_MAX_MS = 3000
TONE_AMPLITUDE = 8000
NON_TEXT_PROMPT_MS = 1000
"""Length of the tone standing in for a PromptId / Media prompt (no text to speak)."""
_ESPEAK_TIMEOUT_S = 20.0
_MAX_FRAMES_PER_TICK = 250
_MIN_SLEEP_S = 0.002  # at high speeds frames are played in batches rather than one by one
_SSML_TAG = re.compile(r"<[^>]*>")
_DTMF_SEPARATORS = frozenset(", ;")


# --- results --------------------------------------------------------------------------------


class LambdaCall(NamedTuple):
    """One Lambda invocation: the binding name, the event sent, and the decoded response
    (a :class:`~callstream.flows.effects.Failed` when it failed or timed out)."""

    name: str
    payload: dict[str, Any]
    response: Any


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
    """True when the server accepted the CTR."""

    @property
    def duration_ms(self) -> int:
        """Length of the call in media milliseconds."""
        return self.duration_samples * 1000 // SAMPLE_RATE


# --- audio helpers --------------------------------------------------------------------------


def tone(text_length: int, *, ms: int | None = None) -> Int16Array:
    """The stand-in for speech: 440 Hz, ``TONE_MS_PER_CHAR`` ms per character (at least one
    character, at most ``TONE_MAX_MS``), or exactly ``ms`` milliseconds when given."""
    duration = ms if ms is not None else min(TONE_MS_PER_CHAR * max(1, text_length), TONE_MAX_MS)
    n = SAMPLE_RATE * duration // 1000
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    wave = TONE_AMPLITUDE * np.sin(2 * math.pi * TONE_HZ * t)
    return np.asarray(np.round(wave), dtype=np.int16)


def _mono_8k(path: PathLike) -> Int16Array:
    """Channel 0 of a WAV file at 8 kHz."""
    audio = read_wav(path)
    samples = np.ascontiguousarray(audio.samples[:, 0])
    if audio.rate != SAMPLE_RATE:
        samples = resample(samples, audio.rate, SAMPLE_RATE)
    return np.asarray(samples, dtype=np.int16).reshape(-1)


def _prompt_text(prompt: PlayPrompt) -> tuple[str, bool]:
    """The words of a prompt and whether they are SSML."""
    if prompt.text is not None:
        return prompt.text, False
    if prompt.ssml is not None:
        return prompt.ssml, True
    return "", False


async def prompt_audio(prompt: PlayPrompt, *, espeak: str | None = None) -> Int16Array:
    """The 8 kHz audio of a prompt.

    Text and SSML are spoken with ``espeak-ng`` (``espeak`` = its path; default: found on
    ``PATH``) and resampled to 8 kHz; without it (or when it fails) a :func:`tone` of the
    text's length stands in. A PromptId / Media prompt has no text: a 1 s tone.
    """
    text, ssml = _prompt_text(prompt)
    if not text:
        return tone(0, ms=NON_TEXT_PROMPT_MS)
    plain = _SSML_TAG.sub("", text).strip() if ssml else text
    binary = espeak if espeak is not None else shutil.which("espeak-ng")
    if binary:
        try:
            return await _espeak(binary, text, ssml)
        except (OSError, ValueError, TimeoutError) as exc:
            log.warning("espeak-ng failed (%s); using a tone", exc)
    return tone(len(plain))


async def _espeak(binary: str, text: str, ssml: bool) -> Int16Array:
    with tempfile.TemporaryDirectory(prefix="callstream-tts-") as tmp:
        out = Path(tmp) / "prompt.wav"
        args = [binary, "-w", str(out)]
        if ssml:
            args.append("-m")
        args += ["--", text]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), _ESPEAK_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0 or not out.is_file():
            raise ValueError(f"exit {proc.returncode}: {err.decode(errors='replace').strip()}")
        return _mono_8k(out)


def _pcm(samples: Int16Array) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()


# --- Lambda handlers ------------------------------------------------------------------------


@dataclass(slots=True)
class LambdaContext:
    """The ``context`` a local handler receives (the attributes Lambda's Python runtime
    provides)."""

    function_name: str
    invoked_function_arn: str
    deadline: float
    """``time.monotonic()`` value at which the invocation times out."""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    log_group_name: str = ""
    log_stream_name: str = "callstream"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the block's time limit."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def load_handler(spec: str) -> LambdaHandler:
    """Import ``module:function`` (or ``path/to/file.py:function``) and return the function.

    Raises :class:`ValueError` for a spec without ``:``, :class:`ImportError` /
    :class:`AttributeError` when the module or function is missing.
    """
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"a Lambda handler is module:function, not {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name).resolve()
        unique = f"callstream_lambda_{abs(hash(str(path)))}"
        module = sys.modules.get(unique)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(unique, path)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[unique] = module
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(unique, None)
                raise
    else:
        # As `python -m` would: handlers next to where the user runs the command import.
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    handler = getattr(module, func_name)
    if not callable(handler):
        raise AttributeError(f"{spec} is not callable")
    return handler  # type: ignore[no-any-return]


async def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a daemon thread: a handler that overruns its time limit is
    abandoned (the block takes its Error branch) without keeping the process alive, as
    ``asyncio.to_thread``'s pool threads would."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def run() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the call may be over, its loop closed
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="callstream-lambda", daemon=True).start()
    return await future


def _is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


# --- the media clock and the two tracks -----------------------------------------------------


class _Media:
    """The media clock: plays the call frame by frame and hands each frame to the streams.

    ``emitted`` counts samples played so far. The to-customer track is a schedule of
    non-overlapping segments (prompts, agent audio); a frame is rendered when it is played,
    and the rendered audio is kept (``heard``).
    """

    def __init__(self, customer: Int16Array, *, speed: float, call_start_ms: int) -> None:
        self.customer = customer
        self.total = int(customer.shape[0])
        self.speed = speed
        self.call_start_ms = call_start_ms
        self.emitted = 0
        self.limit = self.total
        self.stopped_by_flow = False
        self.heard: list[Int16Array] = []
        self.sinks: list[_Streamer] = []
        self.customer_left = asyncio.Event()
        self.done = asyncio.Event()
        self._segments: list[tuple[int, Int16Array]] = []
        self.tail = 0
        self._tick = asyncio.Event()
        self._t0 = 0.0
        self._task: asyncio.Task[None] | None = None

    # clock -----------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        """Media time in ms (of the samples played so far)."""
        return self.emitted * 1000 // SAMPLE_RATE

    def epoch_ms(self, sample: int) -> int:
        """Epoch ms of a media sample position."""
        return self.call_start_ms + sample * 1000 // SAMPLE_RATE

    def now(self) -> datetime:
        """The current media time as a UTC datetime (the interpreter's clock)."""
        return datetime.fromtimestamp(self.epoch_ms(self.emitted) / 1000, tz=UTC)

    def start(self) -> None:
        """Start playing (media time 0 is now)."""
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._task = asyncio.create_task(self._pump(), name="callstream-media-clock")

    async def close(self) -> None:
        """Stop playing now."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._finish()

    # to-customer schedule --------------------------------------------------------------
    def schedule(self, audio: Int16Array) -> tuple[int, int]:
        """Queue ``audio`` on the to-customer track after what is already queued; returns
        its ``[start, end)`` sample positions."""
        start = max(self.emitted, self.tail)
        end = start + int(audio.shape[0])
        if end > start:
            self._segments.append((start, audio))
        self.tail = end
        return start, end

    def _render(self, a: int, b: int) -> Int16Array:
        out = np.zeros(b - a, dtype=np.int16)
        keep: list[tuple[int, Int16Array]] = []
        for start, audio in self._segments:
            end = start + int(audio.shape[0])
            lo, hi = max(a, start), min(b, end)
            if lo < hi:
                out[lo - a : hi - a] = audio[lo - start : hi - start]
            if end > b:
                keep.append((start, audio))
        self._segments = keep
        return out

    # waiting ---------------------------------------------------------------------------
    async def until(self, sample: int) -> None:
        """Wait until ``sample`` samples have been played (or the media ended)."""
        while self.emitted < sample and not self.done.is_set():
            tick = self._tick
            await tick.wait()

    async def stop_after_current_frame(self) -> None:
        """End the media after the frame being played (the flow disconnected)."""
        if not self.done.is_set():
            frame_end = (self.emitted // FRAME_SAMPLES + 1) * FRAME_SAMPLES
            self.limit = min(self.limit, frame_end)
            self.stopped_by_flow = True
            self._notify()
            await self.done.wait()

    def _notify(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    # the pump --------------------------------------------------------------------------
    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        frame_s = FRAME_MS / 1000 / self.speed
        try:
            while self.emitted < self.limit:
                frame = self.emitted // FRAME_SAMPLES
                due = self._t0 + (frame + 1) * frame_s
                now = loop.time()
                if now < due:
                    await asyncio.sleep(max(due - now, _MIN_SLEEP_S))
                    continue
                frames_due = int((now - self._t0) / frame_s) - frame
                for _ in range(max(1, min(frames_due, _MAX_FRAMES_PER_TICK))):
                    if self.emitted >= self.limit:
                        break
                    self._play_frame()
                self._notify()
                await asyncio.sleep(0)
            if not self.stopped_by_flow:
                self.customer_left.set()
        finally:
            self._finish()

    def _play_frame(self) -> None:
        a = self.emitted
        b = min(a + FRAME_SAMPLES, self.limit)
        customer = self.customer[a:b]
        heard = self._render(a, b)
        self.heard.append(heard)
        self.emitted = b
        for sink in self.sinks:
            sink.push(a, b, customer, heard)

    def _finish(self) -> None:
        if not self.done.is_set():
            self.done.set()
            for sink in self.sinks:
                sink.close()
            self._notify()

    def heard_audio(self) -> Int16Array:
        """The to-customer track as played."""
        if not self.heard:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.heard).astype(np.int16, copy=False)


# --- one PutMedia upload --------------------------------------------------------------------


class _Streamer:
    """One live-media-streaming period: frames in, 1 s fragments out to a PutMedia upload."""

    def __init__(
        self,
        *,
        stream_name: str,
        stream_arn: str,
        producer: KvsProducer,
        media: _Media,
        start_sample: int,
        directions: tuple[str, ...],
    ) -> None:
        self.stream_name = stream_name
        self.stream_arn = stream_arn
        self.producer = producer
        self.media = media
        self.start_sample = start_sample
        self.stop_sample: int | None = None
        self.end_sample = start_sample
        self.directions = directions
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False
        self.first_timecode: int | None = None
        self.last_timecode: int | None = None
        self.numbers: dict[int, str] = {}
        self.errors: list[Ack] = []
        self.start_error: str | None = None
        self.first_number: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[PutMediaResult] | None = None
        self._customer: list[bytes] = []
        self._heard: list[bytes] = []
        self._fragment_start: int | None = None

    # frames in -------------------------------------------------------------------------
    def push(self, a: int, b: int, customer: Int16Array, heard: Int16Array) -> None:
        """One played frame (samples ``[a, b)`` of the call)."""
        if self.closed or a < self.start_sample:
            return
        if self.stop_sample is not None and a >= self.stop_sample:
            self.close()
            return
        if self._fragment_start is None:
            self._fragment_start = a
        silence = bytes(2 * (b - a))
        self._customer.append(_pcm(customer) if "From" in self.directions else silence)
        self._heard.append(_pcm(heard) if "To" in self.directions else silence)
        self.end_sample = b
        if b % FRAGMENT_SAMPLES == 0:
            self._flush()
        if self.stop_sample is not None and b >= self.stop_sample:
            self.close()

    def _flush(self) -> None:
        if self._fragment_start is None or not self._customer:
            return
        start_ms = self.media.epoch_ms(self._fragment_start)
        data = self.producer.fragment(
            {
                AUDIO_FROM_CUSTOMER: b"".join(self._customer),
                AUDIO_TO_CUSTOMER: b"".join(self._heard),
            },
            start_ms,
        )
        timecode = self.producer.timecode_for(start_ms)
        if self.first_timecode is None:
            self.first_timecode = timecode
            self.queue.put_nowait(self.producer.header())
        self.last_timecode = timecode
        self.queue.put_nowait(data)
        self._customer, self._heard, self._fragment_start = [], [], None

    def close(self) -> None:
        """No more frames: send the partial fragment, end the upload's input."""
        if not self.closed:
            self._flush()
            self.closed = True
            self.queue.put_nowait(None)
            if self.first_timecode is None:
                self._fail_start("the call ended before any audio was streamed")

    # the upload ------------------------------------------------------------------------
    async def source(self) -> AsyncIterator[bytes]:
        """The MKV bytes for :func:`put_media`."""
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    def on_ack(self, ack: Ack) -> None:
        """Fragment numbers from BUFFERING acks; errors kept."""
        if ack.event_type == EventType.BUFFERING and ack.fragment_number:
            if ack.fragment_timecode is not None:
                self.numbers[ack.fragment_timecode] = ack.fragment_number
            if ack.fragment_timecode == self.first_timecode and not self.first_number.done():
                self.first_number.set_result(ack.fragment_number)
        elif ack.event_type == EventType.ERROR:
            self.errors.append(ack)
            if ack.fragment_timecode == self.first_timecode:
                self._fail_start(f"PutMedia ERROR {ack.error_id} {ack.error_code}")

    def _fail_start(self, message: str) -> None:
        if not self.first_number.done():
            self.start_error = message
            self.first_number.cancel()

    async def started(self) -> str:
        """The first fragment's number, once the server assigned it."""
        assert self.task is not None
        waiters: set[asyncio.Future[Any]] = {self.first_number, self.task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self.first_number.done() and not self.first_number.cancelled():
            return self.first_number.result()
        if self.start_error is not None:
            raise RuntimeError(self.start_error)
        exc = self.task.exception() if self.task.done() else None
        raise RuntimeError(f"PutMedia ended before the first fragment: {exc}") from exc

    async def stop(self, at_sample: int) -> PutMediaResult | None:
        """Stream up to ``at_sample`` (or the end of the media), then wait for the upload to
        finish (every fragment PERSISTED); None when the upload failed."""
        self.stop_sample = max(self.start_sample, at_sample)
        if self.end_sample >= self.stop_sample or self.media.done.is_set():
            self.close()
        else:
            await self.media.until(self.stop_sample)
            self.close()
        if self.task is None:
            return None
        try:
            return await self.task
        except Exception as exc:
            log.warning("PutMedia upload to %s failed: %s", self.stream_name, exc)
            return None

    @property
    def stop_fragment_number(self) -> str | None:
        """The number of the last fragment streamed."""
        if self.last_timecode is None:
            return None
        return self.numbers.get(self.last_timecode)


# --- the call -------------------------------------------------------------------------------


class _Call:
    """Performs one contact's effects against the server, on the media clock."""

    def __init__(
        self,
        *,
        run: FlowRun,
        media: _Media,
        instance: Instance,
        agent: Int16Array | None,
        lambdas: Mapping[str, LambdaSpec],
        endpoint_url: str,
        region: str,
        credentials: Credentials | None,
        dtmf: str,
        on_event: EventSink | None,
        http: aiohttp.ClientSession,
    ) -> None:
        self.run = run
        self.contact = run.contact
        self.media = media
        self.instance = instance
        self.agent = agent
        self.lambdas = lambdas
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials = credentials
        self.dtmf = dtmf
        self.on_event = on_event
        self.http = http
        self.lambda_calls: list[LambdaCall] = []
        self.prompts: list[PromptPlayed] = []
        self.messages: list[str] = []
        self.logs: list[Mapping[str, Any]] = []
        self.streamers: list[_Streamer] = []
        self.active: _Streamer | None = None
        self.background: set[asyncio.Task[Any]] = set()
        self.agent_start: int | None = None
        self._kv: Any = None
        self._handlers: dict[str, LambdaHandler] = {}

    # events ----------------------------------------------------------------------------
    def emit(self, message: str) -> None:
        """A progress line, stamped with the media time."""
        ms = self.media.now_ms
        line = f"[{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}] {message}"
        if self.on_event is not None:
            self.on_event(line)
        else:
            log.info("%s", line)

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
                effect = run.hangup()
                hung_up = True
                continue
            if not hung_up and self.media.customer_left.is_set():
                self.emit(f"customer hung up (during {type(effect).__name__})")
                effect = run.hangup()
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
                    effect = run.hangup()
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
            return await self.start_streaming(effect)
        if isinstance(effect, StopMediaStreaming):
            return await self.stop_streaming(effect)
        if isinstance(effect, InvokeLambda):
            return await self.invoke(effect)
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

    # media streaming -------------------------------------------------------------------
    async def start_streaming(self, effect: StartMediaStreaming) -> Result:
        """Create/reuse the stream, start the upload, wait for the first fragment number."""
        if effect.already_streaming and self.active is not None:
            self.active.directions = effect.directions
            stream = self.contact.streaming
            self.emit(f"media streaming continues ({'/'.join(effect.directions)})")
            return MediaStreamingStarted(
                self.active.stream_arn,
                stream.start_fragment_number if stream else "",
                stream.start_timestamp_ms if stream else None,
            )
        if self.media.done.is_set():
            return Failed("the call has ended")
        try:
            arn = await asyncio.to_thread(
                self._ensure_stream, effect.stream_name, effect.retention_hours, effect.kms_key_id
            )
        except Exception as exc:
            self.emit(f"media streaming failed: {exc}")
            return Failed(f"cannot create stream {effect.stream_name}: {exc}")
        producer = connect_producer(
            contact_id=self.contact.contact_id, instance_id=self.instance.instance_id
        )
        start = self.media.emitted
        streamer = _Streamer(
            stream_name=effect.stream_name,
            stream_arn=arn,
            producer=producer,
            media=self.media,
            start_sample=start,
            directions=effect.directions,
        )
        streamer.task = asyncio.create_task(
            put_media(
                self.endpoint_url,
                streamer.source(),
                stream_name=effect.stream_name,
                credentials=self.credentials,
                region=self.region,
                on_ack=streamer.on_ack,
                timecode_type="ABSOLUTE",
                producer_start_ms=self.media.epoch_ms(start),
                persist_expected=effect.retention_hours > 0,
                session=self.http,
            ),
            name=f"putmedia-{effect.stream_name}",
        )
        self.streamers.append(streamer)
        self.media.sinks.append(streamer)
        try:
            number = await streamer.started()
        except Exception as exc:
            streamer.close()
            self.emit(f"media streaming failed: {exc}")
            return Failed(str(exc))
        self.active = streamer
        start_ms = self.media.epoch_ms(start)
        self.emit(
            f"media streaming started: {effect.stream_name} ({'/'.join(effect.directions)}),"
            f" StartFragmentNumber {number}, StartTimestamp {start_ms}"
        )
        return MediaStreamingStarted(arn, number, start_ms)

    def _ensure_stream(self, name: str, retention_hours: int, kms_key_id: str | None) -> str:
        from botocore.exceptions import ClientError

        kv = self.kinesisvideo()
        kwargs: dict[str, Any] = {"StreamName": name, "DataRetentionInHours": retention_hours}
        if kms_key_id:
            kwargs["KmsKeyId"] = kms_key_id
        try:
            return str(kv.create_stream(**kwargs)["StreamARN"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
        info = kv.describe_stream(StreamName=name)["StreamInfo"]
        return str(info["StreamARN"])

    def kinesisvideo(self) -> Any:
        """The boto3 ``kinesisvideo`` client for the server (built once)."""
        if self._kv is None:
            import boto3

            kwargs: dict[str, Any] = {"endpoint_url": self.endpoint_url, "region_name": self.region}
            if self.credentials is not None:
                frozen = self.credentials.get_frozen_credentials()
                kwargs.update(
                    aws_access_key_id=frozen.access_key,
                    aws_secret_access_key=frozen.secret_key,
                    aws_session_token=frozen.token,
                )
            self._kv = boto3.client("kinesisvideo", **kwargs)
        return self._kv

    async def stop_streaming(self, effect: StopMediaStreaming) -> Result:
        """End the upload after the frame being played; wait for the last PERSISTED."""
        streamer = self.active
        if streamer is None or streamer.stream_arn != effect.stream_arn:
            return MediaStreamingStopped(self.media.epoch_ms(self.media.emitted))
        self.active = None
        if self.media.done.is_set():
            at = self.media.emitted
        else:
            at = min((self.media.emitted // FRAME_SAMPLES + 1) * FRAME_SAMPLES, self.media.limit)
        result = await streamer.stop(at)
        stop_ms = self.media.epoch_ms(streamer.end_sample)
        number = streamer.stop_fragment_number
        if result is None and effect.reason == "block":
            self.emit("media streaming stop failed (upload error)")
            return Failed("the PutMedia upload failed")
        if result is not None and not result.complete:
            self.emit("media streaming stopped; some fragments were not confirmed")
        self.emit(
            f"media streaming stopped ({effect.reason}): StopTimestamp {stop_ms},"
            f" last fragment {number}"
        )
        return MediaStreamingStopped(stop_ms, number)

    async def finish_streams(self) -> None:
        """End every upload still running (a start abandoned by a hangup, errors)."""
        for streamer in self.streamers:
            if not streamer.closed or (streamer.task is not None and not streamer.task.done()):
                await streamer.stop(self.media.emitted)

    # prompts, input, queue -------------------------------------------------------------
    async def play(self, prompt: PlayPrompt) -> None:
        """Play a prompt to the customer and wait until it has been heard."""
        text, _ = _prompt_text(prompt)
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
        if self.agent is not None and self.contact.channel == "VOICE":
            start, end = self.media.schedule(self.agent)
            self.agent_start = start
            self.emit(f"agent audio at {start * 1000 // SAMPLE_RATE} ms ({end - start} samples)")
        return TransferResult("queued")

    # Lambdas ---------------------------------------------------------------------------
    async def invoke(self, effect: InvokeLambda) -> Result:
        """Invoke the bound handler or URL within the block's time limit."""
        ref = effect.function
        spec = ref.lookup(self.lambdas)
        name = next((k for k in ref.keys if k in self.lambdas), ref.keys[0] if ref.keys else "")
        payload: dict[str, Any] = json.loads(json.dumps(effect.payload))
        if spec is None:
            failed = Failed(f"no Lambda bound for {', '.join(ref.keys) or ref.identifier}")
            self.lambda_calls.append(LambdaCall(name, payload, failed))
            self.emit(f"lambda {name}: {failed.message}")
            return failed
        if effect.invocation_type == "ASYNCHRONOUS":
            task = asyncio.create_task(self._call(name, spec, payload, effect.timeout_s, ref.arn))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
            self.emit(f"lambda {name} invoked asynchronously")
            return LambdaResult(None)
        return await self._call(name, spec, payload, effect.timeout_s, ref.arn)

    async def _call(
        self, name: str, spec: LambdaSpec, payload: dict[str, Any], timeout_s: int, arn: str
    ) -> Result:
        started = time.monotonic()
        result: Result
        try:
            if isinstance(spec, str) and _is_url(spec):
                response = await asyncio.wait_for(self._post(spec, payload), timeout_s)
            else:
                handler = self._handler(spec)
                context = LambdaContext(
                    function_name=name,
                    invoked_function_arn=arn,
                    deadline=started + timeout_s,
                )
                event = json.loads(json.dumps(payload))  # the handler's own copy
                response = await asyncio.wait_for(
                    _in_daemon_thread(handler, event, context), timeout_s
                )
                if inspect.isawaitable(response):
                    response = await asyncio.wait_for(response, timeout_s)
                response = json.loads(json.dumps(response))
            elapsed = time.monotonic() - started
            result = LambdaResult(response, elapsed_s=elapsed)
            self.lambda_calls.append(LambdaCall(name, payload, response))
            self.emit(f"lambda {name} -> {json.dumps(response)[:200]} ({elapsed:.2f} s)")
        except TimeoutError:
            result = Failed(f"timed out after {timeout_s} s", timeout=True)
            self.lambda_calls.append(LambdaCall(name, payload, result))
            self.emit(f"lambda {name} timed out after {timeout_s} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            result = Failed(f"{type(exc).__name__}: {exc}")
            self.lambda_calls.append(LambdaCall(name, payload, result))
            self.emit(f"lambda {name} failed: {result.message}")
        return result

    def _handler(self, spec: LambdaSpec) -> LambdaHandler:
        if not isinstance(spec, str):
            return spec
        handler = self._handlers.get(spec)
        if handler is None:
            handler = self._handlers[spec] = load_handler(spec)
        return handler

    async def _post(self, url: str, payload: dict[str, Any]) -> Any:
        async with self.http.post(url, json=payload) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status}: {text[:200]}")
            return json.loads(text) if text.strip() else None

    async def wait_background(self, timeout: float = 10.0) -> None:
        """Let asynchronous Lambda invocations finish (up to ``timeout`` s)."""
        if self.background:
            await asyncio.wait(set(self.background), timeout=timeout)

    # the contact record ----------------------------------------------------------------
    async def post_ctr(self, ctr: Mapping[str, Any]) -> bool:
        """POST the CTR to the server's contact API, SigV4-signed; False when not stored."""
        url = self.endpoint_url.rstrip("/") + CONTACTS_PATH
        body = json.dumps(ctr).encode("utf-8")
        creds = self.credentials or _chain_credentials()
        headers = {"Content-Type": "application/json"}
        if creds is not None:
            headers = sign_request(
                "POST", url, credentials=creds, region=self.region, headers=headers, body=body
            )
        try:
            async with self.http.post(url, data=body, headers=headers) as resp:
                text = await resp.text()
                if resp.status == 404:
                    self.emit("the server has no contact API (404); CTR not stored")
                    return False
                if resp.status >= 300:
                    self.emit(f"storing the CTR failed: HTTP {resp.status} {text[:200]}")
                    return False
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.emit(f"storing the CTR failed: {exc}")
            return False
        self.emit("CTR stored")
        return True


def _chain_credentials() -> Credentials | None:
    import botocore.session

    found = botocore.session.get_session().get_credentials()
    return found if isinstance(found, Credentials) else None


def _as_flow(source: FlowSource) -> Flow:
    return source if isinstance(source, Flow) else load_flow(source)


# --- entry point ----------------------------------------------------------------------------


async def place_call(
    *,
    flow: FlowSource,
    customer_audio: PathLike,
    endpoint_url: str,
    flows: Sequence[FlowSource] = (),
    agent_audio: PathLike | None = None,
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
) -> CallResult:
    """Place one contact through ``flow`` against the server at ``endpoint_url``.

    ``flow`` (and the TransferToFlow targets in ``flows``): a loaded :class:`Flow`, a path
    to an exported flow, or its parsed JSON. ``customer_audio``: a WAV (channel 0 of a stereo file), resampled to
    8 kHz; the contact lasts until it ends unless the flow disconnects first.
    ``agent_audio``: a WAV the customer hears once the contact is queued. ``channel``:
    VOICE, CHAT or TASK (media streaming is voice only). ``attributes``: initial contact
    attributes. ``lambdas``: ``{name: module:function | path.py:function | URL | callable}``
    where a name is a function ARN, function name, block Identifier or designer name.
    ``credentials``: botocore credentials (None: the botocore chain). ``speed``: media time
    runs ``speed`` times faster than real time. ``instance``: queues and streaming settings
    (default: a fresh instance in ``region``). ``dtmf``: the keys the customer presses, taken
    by each GetParticipantInput in turn (``,`` or a space ends one entry). ``on_event``:
    receives progress lines (default: the ``callstream.flows.call`` logger).

    Raises :class:`~callstream.flows.model.FlowError` for a broken flow and
    :class:`ValueError` for bad arguments; everything that happens during the call (stream,
    Lambda or server errors) takes the blocks' error branches or is reported through
    ``on_event``.
    """
    if not speed > 0 or math.isinf(speed):
        raise ValueError(f"speed must be a positive number, got {speed}")
    if channel not in ("VOICE", "CHAT", "TASK"):
        raise ValueError(f"channel must be VOICE, CHAT or TASK, not {channel!r}")
    main = _as_flow(flow)
    registry = FlowRegistry(main, *(_as_flow(f) for f in flows))
    customer = _mono_8k(customer_audio)
    agent = _mono_8k(agent_audio) if agent_audio is not None else None
    instance = instance or Instance(region=region)

    call_start_ms = time.time_ns() // 1_000_000 // 1000 * 1000  # a whole second
    media = _Media(customer, speed=speed, call_start_ms=call_start_ms)
    contact = Contact.new(
        instance=instance,
        channel=channel,
        attributes=dict(attributes or {}),
        contact_id=contact_id,
        now=datetime.fromtimestamp(call_start_ms / 1000, tz=UTC),
    )
    run = FlowRun(main, contact, instance=instance, flows=registry, clock=media.now)

    async with aiohttp.ClientSession() as http:
        call = _Call(
            run=run,
            media=media,
            instance=instance,
            agent=agent,
            lambdas=dict(lambdas or {}),
            endpoint_url=endpoint_url,
            region=region,
            credentials=credentials,
            dtmf=dtmf or "",
            on_event=on_event,
            http=http,
        )
        call.emit(
            f"contact {contact.contact_id} ({channel}) through {main.name or 'flow'};"
            f" customer audio {customer.shape[0] * 1000 // SAMPLE_RATE} ms, speed {speed:g}"
        )
        if channel == "VOICE":  # boto3 takes a while to build a client: not on the media clock
            with contextlib.suppress(Exception):
                await asyncio.to_thread(call.kinesisvideo)
        media.start()
        try:
            end = await call.drive()
            await media.stop_after_current_frame()
            await call.finish_streams()
            await call.wait_background()
        finally:
            await media.close()
            for streamer in call.streamers:
                if streamer.task is not None and not streamer.task.done():
                    streamer.task.cancel()
                    with contextlib.suppress(BaseException):
                        await streamer.task
        call.emit(f"contact ended: {end.reason} ({contact.disconnect_reason})")
        ctr = build_ctr(contact, instance, now=media.now())
        stored = await call.post_ctr(ctr)

    first = contact.media_streams[0] if contact.media_streams else None
    stream_name = instance.stream_name(contact.contact_id) if first is not None else None
    return CallResult(
        contact_id=contact.contact_id,
        ctr=ctr,
        lambda_calls=call.lambda_calls,
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
