"""Shared helpers for tests/flows: the shared LCA flow, small flow builders (those of
:mod:`callstream.flows.samples`), a scripted runner, and calls placed against a real server
(its fixture, ``server``, is in conftest.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.credentials import Credentials

from callstream.api.server import ServerThread
from callstream.flows import (
    Effect,
    Failed,
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
from callstream.flows.call import CallResult, place_call
from callstream.flows.samples import (
    STREAMING_DISABLED,
    STREAMING_ENABLED,
    legacy_module,
    legacy_param,
)
from callstream.flows.samples import action as action
from callstream.flows.samples import flow_doc as flow_doc
from callstream.media.wav import write_wav
from callstream.store.numbers import make_fragment_number
from shared_data import SHARED

LCA_FLOW = SHARED / "testdata" / "connect-flows" / "lca-contact-flow.json"

requires_lca = pytest.mark.skipif(
    not LCA_FLOW.is_file(),
    reason=f"shared test data not found at {LCA_FLOW} (set CALLSTREAM_SHARED_DIR)",
)

# LCA identifiers (connect-flows.md §5)
LCA_LOGGING = "7061cfdc-b6fc-4252-b88f-bd1e379a7d6d"
LCA_START = "ca22edd8-e0bf-41c6-99a6-d28f87328229"
LCA_LAMBDA = "StartLCA"
LCA_LAMBDA_ERROR_PROMPT = "910d9181-ea1c-4082-9ce6-4492b84970f8"
LCA_SET_QUEUE = "af6c5b96-263d-4537-aa00-941baa7e758d"
LCA_TRANSFER = "4684af58-6395-4ba5-96cc-e9195dcab461"
LCA_CAPACITY_PROMPT = "49400335-39f1-43de-9fe1-d4edf3221826"
LCA_STOP = "c7e3fd8e-08b9-4dbb-aaa3-e1b23445020b"
LCA_DISCONNECT = "99f9b680-3ace-4022-b8e0-dbd3bc4b8784"

T0 = datetime(2024, 1, 26, 3, 7, 41, tzinfo=UTC)


def lca_json() -> dict[str, Any]:
    """The published LCA flow as a dict."""
    data: dict[str, Any] = json.loads(LCA_FLOW.read_text())
    return data


class Clock:
    """A manual clock: ``clock()`` returns the current time, ``advance`` moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @property
    def ms(self) -> int:
        return int(self.now.timestamp() * 1000)


ENABLE = STREAMING_ENABLED
DISABLE = STREAMING_DISABLED

LambdaHandler = Callable[[Mapping[str, Any]], Result]


@dataclass
class ScriptedRunner:
    """Performs effects from a script, as the real runner would, and records them.

    Streaming: answers with a realistic KVS ARN and fragment numbers that grow with the clock.
    Lambdas are bound with :meth:`LambdaRef.lookup` (ARN, name, Identifier, display name).
    """

    clock: Clock = field(default_factory=Clock)
    lambdas: dict[str, LambdaHandler] = field(default_factory=dict)
    inputs: list[str | None] = field(default_factory=list)
    queue_status: str = "queued"
    wait_events: list[str | None] = field(default_factory=list)
    fail: set[type] = field(default_factory=set)
    effects: list[Effect] = field(default_factory=list)
    payloads: list[Mapping[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    seconds_per_prompt: float = 2.0
    _seq: int = 0

    def fragment_number(self) -> str:
        self._seq += 1
        return make_fragment_number(self._seq, self.clock.ms, 12345)

    def __call__(self, effect: Effect) -> Result:
        self.effects.append(effect)
        if type(effect) in self.fail:
            return Failed(f"scripted failure of {type(effect).__name__}")
        if isinstance(effect, Log):
            return None
        if isinstance(effect, StartMediaStreaming):
            self.clock.advance(0.1)
            arn = f"arn:aws:kinesisvideo:us-east-1:123456789012:stream/{effect.stream_name}/1700000000000"
            return MediaStreamingStarted(arn, self.fragment_number(), self.clock.ms)
        if isinstance(effect, StopMediaStreaming):
            self.clock.advance(0.1)
            return MediaStreamingStopped(self.clock.ms, self.fragment_number())
        if isinstance(effect, InvokeLambda):
            self.payloads.append(effect.payload)
            handler = effect.function.lookup(self.lambdas)
            if handler is None:
                return Failed(f"no handler for {effect.function.keys}")
            return handler(effect.payload)
        if isinstance(effect, PlayPrompt):
            self.prompts.append(effect.text or effect.ssml or effect.prompt_id or "")
            self.clock.advance(self.seconds_per_prompt)
            return None
        if isinstance(effect, GetInput):
            if effect.prompt is not None:
                self.prompts.append(effect.prompt.text or effect.prompt.ssml or "")
            digits = self.inputs.pop(0) if self.inputs else None
            self.clock.advance(effect.timeout_s if digits is None else 1)
            return InputResult(digits)
        if isinstance(effect, WaitFor):
            event = self.wait_events.pop(0) if self.wait_events else None
            self.clock.advance(effect.timeout_s if event is None else 1)
            return WaitResult(event)
        if isinstance(effect, TransferToQueue):
            return TransferResult("at_capacity" if self.queue_status == "at_capacity" else "queued")
        return None

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]


def ok_lambda(response: Any = None) -> LambdaHandler:
    """A handler returning ``response`` (default: LCA's StartLCA success response)."""
    body = {"statusCode": 200, "body": '"Successfully invoked Connect KVS Consumer"'}
    return lambda payload: LambdaResult(body if response is None else response, elapsed_s=0.05)


def legacy_lca(
    lambda_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:StartLCA",
) -> dict[str, Any]:
    """The LCA graph (connect-flows.md §5) written in the legacy module format (§1.4)."""
    return {
        "modules": [
            legacy_module(
                "m-log",
                "SetLoggingBehavior",
                [legacy_param("LoggingBehavior", "Enable")],
                {"Success": "m-start"},
            ),
            legacy_module(
                "m-start",
                "StartMediaStreaming",
                [
                    legacy_param("Track", "FromCustomer"),
                    legacy_param("Track", "ToCustomer"),
                    legacy_param("MediaStreamTypes", "Audio"),
                ],
                {"Success": "m-lambda", "Error": "m-lambda"},
            ),
            legacy_module(
                "m-lambda",
                "InvokeExternalResource",
                [
                    legacy_param("FunctionArn", lambda_arn, resourceName="StartLCA"),
                    legacy_param("TimeLimit", "5"),
                ],
                {"Success": "m-queue", "Error": "m-lambda-error"},
                target="Lambda",
            ),
            legacy_module(
                "m-lambda-error",
                "PlayPrompt",
                [
                    legacy_param("Text", "I'm sorry, an error occurred."),
                    legacy_param("TextToSpeechType", "text"),
                ],
                {"Success": "m-stop"},
            ),
            legacy_module(
                "m-queue",
                "SetQueue",
                [
                    legacy_param(
                        "Queue",
                        "arn:aws:connect:us-east-1:1:instance/x/queue/q-1",
                        resourceName="BasicQueue",
                    )
                ],
                {"Success": "m-transfer", "Error": "m-stop"},
            ),
            legacy_module(
                "m-transfer",
                "Transfer",
                [],
                {"AtCapacity": "m-capacity", "Error": "m-stop"},
                target="Queue",
            ),
            legacy_module(
                "m-capacity",
                "PlayPrompt",
                [
                    legacy_param("Text", "<speak>Too many callers.</speak>"),
                    legacy_param("TextToSpeechType", "ssml"),
                ],
                {"Success": "m-stop"},
            ),
            legacy_module(
                "m-stop",
                "StopMediaStreaming",
                [legacy_param("Track", "FromCustomer"), legacy_param("Track", "ToCustomer")],
                {"Success": "m-disconnect", "Error": "m-disconnect"},
            ),
            legacy_module("m-disconnect", "Disconnect", [], {}),
        ],
        "version": "1",
        "type": "contactFlow",
        "start": "m-log",
        "metadata": {
            "name": "legacy-lca",
            "description": None,
            "type": "contactFlow",
            "status": "published",
        },
    }


# --- calls against a real server (the ``server`` fixture) -------------------------------------

KEY, SECRET = "AKIDCALLTEST", "call-secret"
CREDS = Credentials(KEY, SECRET)
REGION = "us-east-1"
SPEED = 10.0
RATE = 8000


def noise(seconds: float, seed: int, extra: int = 0, level: int = 6000) -> np.ndarray:
    """``seconds`` of random 8 kHz samples (and ``extra`` more) within ±``level``."""
    rng = np.random.default_rng(seed)
    return rng.integers(-level, level, size=int(seconds * RATE) + extra).astype(np.int16)


def wav(tmp_path: Path, name: str, samples: np.ndarray, rate: int = RATE) -> Path:
    """``samples`` written to ``tmp_path/name``."""
    path = tmp_path / name
    write_wav(path, samples, rate)
    return path


def call(server: ServerThread, *, lines: list[str] | None = None, **kwargs: Any) -> CallResult:
    """``place_call`` against ``server`` at ``SPEED`` (unless given); its progress lines go to
    ``lines`` and there must be some."""
    lines = [] if lines is None else lines
    kwargs.setdefault("speed", SPEED)
    result = asyncio.run(
        place_call(
            endpoint_url=server.url,
            region=REGION,
            credentials=CREDS,
            on_event=lines.append,
            **kwargs,
        )
    )
    assert lines, "no progress lines"
    return result


def ctr_ms(value: str) -> int:
    """A contact record's timestamp (whole seconds, UTC) in milliseconds."""
    when = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return int(when.timestamp()) * 1000
