"""Fuzz entry point for the flow loader (and the interpreter behind it).

:func:`fuzz_one` loads one input as a flow with :func:`~callstream.flows.loader.load_flow`.
The only acceptable failure is :class:`~callstream.flows.model.FlowError`; a flow that loads
is then run by :class:`~callstream.flows.interpreter.FlowRun` against a scripted runner (a
bounded number of effects, then a hang-up), which must not raise at all: whatever the loader
accepts, the interpreter can execute.

``python -m callstream.flows.fuzz --seconds 10`` runs it under atheris when that is
installed, else a random-mutation loop seeded with a built-in corpus (one flow of each
format exercising every action type and legacy module type) and the exported flows in
``shared/testdata/connect-flows`` next to the repository (or ``--corpus DIR``). Mutations
work on the JSON tree (type swaps at any path, deletions, insertions, duplicated keys) and on
the bytes (flips, non-UTF-8 bytes, truncation). An input that fails is written to
``--crash-dir`` and the run exits with status 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from callstream.flows.contact import Contact
from callstream.flows.effects import (
    Effect,
    Failed,
    FlowEnded,
    GetInput,
    InputResult,
    InvokeLambda,
    LambdaResult,
    MediaStreamingStarted,
    MediaStreamingStopped,
    Result,
    StartMediaStreaming,
    StopMediaStreaming,
    TransferResult,
    TransferToQueue,
    WaitFor,
    WaitResult,
)
from callstream.flows.instance import Instance
from callstream.flows.interpreter import FlowRun
from callstream.flows.loader import load_flow
from callstream.flows.model import Flow, FlowError
from callstream.flows.registry import FlowRegistry

__all__ = ["builtin_corpus", "fuzz_one", "main", "mutate", "mutate_tree", "run_flow"]

MAX_EFFECTS = 200
"""Effects performed per run before the scripted customer hangs up."""

_T0 = datetime(2024, 1, 26, 3, 7, 41, tzinfo=UTC)


def run_flow(flow: Flow, seed: int) -> FlowEnded:
    """Run ``flow`` for a voice contact; the runner's answers are drawn from ``seed``.

    Each effect gets a plausible result (success, failure, timeout, at capacity, digits)
    so that error and condition branches are taken too.
    """
    rng = random.Random(seed)
    now = [_T0]

    def clock() -> datetime:
        return now[0]

    instance = Instance()
    contact = Contact.new(instance=instance, contact_id="fuzz-contact", now=_T0)
    run = FlowRun(
        flow,
        contact,
        instance=instance,
        flows=FlowRegistry(flow),
        clock=clock,
        rng=random.Random(seed),
        max_idle_steps=100,
    )

    def perform(effect: Effect) -> Result:
        now[0] += timedelta(seconds=rng.choice((0, 1, 5, 3600)))
        fail = rng.random() < 0.2
        if isinstance(effect, StartMediaStreaming):
            if fail:
                return Failed("scripted failure")
            return MediaStreamingStarted("arn:aws:kinesisvideo:us-east-1:1:stream/s/1", "9" * 20)
        if isinstance(effect, StopMediaStreaming):
            return Failed("scripted failure") if fail else MediaStreamingStopped()
        if isinstance(effect, InvokeLambda):
            if fail:
                return Failed("scripted failure", timeout=rng.random() < 0.5)
            return LambdaResult(rng.choice(({"statusCode": 200}, {"a": "1"}, [], "x")))
        if isinstance(effect, GetInput):
            return InputResult(rng.choice((None, "1", "2", "+15555550100", "12#")))
        if isinstance(effect, WaitFor):
            return WaitResult(rng.choice((None, "CustomerReturned")))
        if isinstance(effect, TransferToQueue):
            return TransferResult(rng.choice(("queued", "at_capacity")))
        return Failed("scripted failure") if fail and effect.results else None

    effect = run.start()
    for _ in range(MAX_EFFECTS):
        if isinstance(effect, FlowEnded):
            break
        effect = run.resume(perform(effect))
    if not isinstance(effect, FlowEnded) or not effect.contact_ended:
        effect = run.hangup()
        while not isinstance(effect, FlowEnded):
            effect = run.resume(perform(effect))
    return effect


def fuzz_one(data: bytes) -> None:
    """Load ``data`` as a flow and run it; raise on anything but a :class:`FlowError`."""
    try:
        flow = load_flow(data)
    except FlowError as err:
        if not str(err):
            raise AssertionError("FlowError without a message") from err
        return
    run_flow(flow, zlib.crc32(data))


# --- the built-in corpus ------------------------------------------------------------------


def _act(
    ident: str,
    type_: str,
    params: dict[str, Any] | None = None,
    nxt: str | None = None,
    errors: dict[str, str] | None = None,
    conditions: list[tuple[str, str, str]] | None = None,
) -> dict[str, Any]:
    transitions: dict[str, Any] = {}
    if nxt is not None:
        transitions["NextAction"] = nxt
    if errors:
        transitions["Errors"] = [{"ErrorType": k, "NextAction": v} for k, v in errors.items()]
    if conditions:
        transitions["Conditions"] = [
            {"NextAction": target, "Condition": {"Operator": op, "Operands": [operand]}}
            for op, operand, target in conditions
        ]
    return {
        "Identifier": ident,
        "Type": type_,
        "Parameters": params or {},
        "Transitions": transitions,
    }


def _doc(name: str, flow_type: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Version": "2019-10-30",
        "StartAction": actions[0]["Identifier"],
        "Metadata": {
            "name": name,
            "type": flow_type,
            "ActionMetadata": {
                "queue": {"parameters": {"QueueId": {"displayName": "BasicQueue"}}},
                "lambda": {"isFriendlyName": True, "position": {"x": 1.5, "y": 2}},
            },
        },
        "Actions": actions,
    }


_ARN = "arn:aws:connect:us-east-1:123456789012:instance/i"
_STREAM = {
    "MediaStreamingState": "Enabled",
    "MediaStreamType": "Audio",
    "Participants": [{"ParticipantType": "Customer", "MediaDirections": ["To", "From"]}],
}


def _contact_flow() -> dict[str, Any]:
    err = "NoMatchingError"
    nmc = "NoMatchingCondition"
    return _doc(
        "every-action",
        "contactFlow",
        [
            _act("log", "UpdateFlowLoggingBehavior", {"FlowLoggingBehavior": "Enabled"}, "voice"),
            _act(
                "voice",
                "UpdateContactTextToSpeechVoice",
                {"TextToSpeechVoice": "Joanna", "TextToSpeechEngine": "Neural"},
                "rec",
                {err: "rec"},
            ),
            _act(
                "rec",
                "UpdateContactRecordingBehavior",
                {
                    "RecordingBehavior": {"RecordedParticipants": ["Agent", "Customer"]},
                    "AnalyticsBehavior": {"Enabled": "True", "AnalyticsLanguage": "en-US"},
                },
                "stream",
            ),
            _act("stream", "UpdateContactMediaStreamingBehavior", _STREAM, "attrs", {err: "attrs"}),
            _act(
                "attrs",
                "UpdateContactAttributes",
                {
                    "Attributes": {"greeting": "Hi $.CustomerEndpoint.Address", "n": "2"},
                    "TargetContact": "Current",
                },
                "lambda",
                {err: "lambda"},
            ),
            _act(
                "lambda",
                "InvokeLambdaFunction",
                {
                    "LambdaFunctionARN": "arn:aws:lambda:us-east-1:1:function:f",
                    "InvocationTimeLimitSeconds": "3",
                    "LambdaInvocationAttributes": {"who": "$.Attributes.greeting"},
                    "ResponseValidation": {"ResponseType": "STRING_MAP"},
                    "InvocationType": "SYNCHRONOUS",
                },
                "compare",
                {err: "compare"},
            ),
            _act(
                "compare",
                "Compare",
                {"ComparisonValue": "$.External.statusCode"},
                errors={nmc: "menu", err: "menu"},
                conditions=[("Equals", "200", "menu"), ("NumberGreaterThan", "300", "menu")],
            ),
            _act(
                "menu",
                "GetParticipantInput",
                {
                    "Text": "Press 1 or 2",
                    "InputTimeLimitSeconds": "5",
                    "StoreInput": "False",
                    "DTMFConfiguration": {"DisableCancelKey": "False"},
                },
                errors={"InputTimeLimitExceeded": "store", nmc: "store", err: "store"},
                conditions=[("Equals", "1", "store"), ("Equals", "2", "phone")],
            ),
            _act(
                "store",
                "GetParticipantInput",
                {
                    "SSML": "<speak>Your account number</speak>",
                    "InputTimeoutSeconds": "7",
                    "StoreInput": "True",
                    "InputValidation": {"CustomValidation": {"MaximumLength": "10"}},
                    "DTMFConfiguration": {"InputTerminationSequence": "#"},
                },
                "phone",
                {"InputTimeLimitExceeded": "phone", err: "phone"},
            ),
            _act(
                "phone",
                "GetParticipantInput",
                {
                    "PromptId": f"{_ARN}/prompt/p",
                    "StoreInput": "True",
                    "InputValidation": {"PhoneNumberValidation": {"NumberFormat": "E164"}},
                },
                "loop",
                {"InvalidPhoneNumber": "loop", "InputTimeLimitExceeded": "loop", err: "loop"},
            ),
            _act(
                "loop",
                "Loop",
                {"LoopCount": "$.Attributes.n"},
                conditions=[
                    ("Equals", "ContinueLooping", "play"),
                    ("Equals", "DoneLooping", "hours"),
                ],
            ),
            _act(
                "play",
                "MessageParticipant",
                {"PromptId": f"{_ARN}/prompt/p"},
                "loop",
                {err: "loop"},
            ),
            _act(
                "hours",
                "CheckHoursOfOperation",
                {"HoursOfOperationId": f"{_ARN}/operating-hours/h"},
                errors={err: "wait"},
                conditions=[("Equals", "True", "wait"), ("Equals", "False", "wait")],
            ),
            _act(
                "wait",
                "Wait",
                {"TimeoutSeconds": "60", "Events": ["CustomerReturned"]},
                errors={err: "dist"},
                conditions=[
                    ("Equals", "WaitCompleted", "dist"),
                    ("Equals", "CustomerReturned", "dist"),
                ],
            ),
            _act(
                "dist",
                "DistributeByPercentage",
                errors={nmc: "metric", err: "metric"},
                conditions=[("NumberLessThan", "50", "metric")],
            ),
            _act(
                "metric",
                "CheckMetricData",
                {"MetricType": "NumberOfAgentsAvailable", "QueueId": f"{_ARN}/queue/q"},
                errors={nmc: "routing", err: "routing"},
                conditions=[("NumberGreaterThan", "0", "routing")],
            ),
            _act(
                "routing",
                "UpdateContactRoutingBehavior",
                {"QueuePriority": "3"},
                "hooks",
                {err: "hooks"},
            ),
            _act(
                "hooks",
                "UpdateContactEventHooks",
                {"EventHooks": {"CustomerQueue": f"{_ARN}/contact-flow/q"}},
                "callback",
                {err: "callback"},
            ),
            _act(
                "callback",
                "UpdateContactCallbackNumber",
                {"CallbackNumber": "$.CustomerEndpoint.Address"},
                "media",
                {
                    "InvalidCallbackNumber": "media",
                    "CallbackNumberNotDialable": "media",
                    err: "media",
                },
            ),
            _act(
                "media",
                "MessageParticipant",
                {"Media": {"Uri": "s3://bucket/a.wav", "SourceType": "S3", "MediaType": "Audio"}},
                "queue",
                {err: "queue"},
            ),
            _act(
                "queue",
                "UpdateContactTargetQueue",
                {"QueueId": f"{_ARN}/queue/q"},
                "xfer",
                {err: "xfer"},
            ),
            _act(
                "xfer",
                "TransferContactToQueue",
                errors={"QueueAtCapacity": "flow", err: "flow"},
            ),
            _act("flow", "TransferToFlow", {"ContactFlowId": "every-action"}, errors={err: "task"}),
            _act("task", "CreateTask", {"Name": "x"}, "stop", {err: "stop"}),
            _act(
                "stop",
                "UpdateContactMediaStreamingBehavior",
                {**_STREAM, "MediaStreamingState": "Disabled"},
                "bye",
                {err: "bye"},
            ),
            _act("bye", "DisconnectParticipant"),
        ],
    )


def _queue_flow() -> dict[str, Any]:
    err = "NoMatchingError"
    return _doc(
        "queue-flow",
        "customerQueue",
        [
            _act(
                "hold", "MessageParticipant", {"Text": "Please hold"}, "dequeue", {err: "dequeue"}
            ),
            _act(
                "dequeue",
                "DequeueContactAndTransferToQueue",
                {"AgentId": f"{_ARN}/agent/a"},
                errors={"QueueAtCapacity": "end", err: "end"},
            ),
            _act("end", "EndFlowExecution"),
        ],
    )


def _param(name: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "value": value, "namespace": None, **extra}


def _module(
    id_: str,
    type_: str,
    params: list[dict[str, Any]],
    branches: list[tuple[str, str]] | dict[str, str],
    **extra: Any,
) -> dict[str, Any]:
    pairs = branches.items() if isinstance(branches, dict) else branches
    return {
        "id": id_,
        "type": type_,
        "branches": [{"condition": c, "transition": t} for c, t in pairs],
        "parameters": params,
        "metadata": {"position": {"x": 0, "y": 0}},
        **extra,
    }


def _legacy_flow() -> dict[str, Any]:
    return {
        "modules": [
            _module(
                "log",
                "SetLoggingBehavior",
                [_param("LoggingBehavior", "Enable")],
                {"Success": "voice"},
            ),
            _module("voice", "SetVoice", [_param("GlobalVoice", "Matthew")], {"Success": "rec"}),
            _module(
                "rec",
                "SetRecordingBehavior",
                [
                    _param("RecordingBehaviorOption", "Enable"),
                    _param("RecordingParticipantOption", "Both"),
                    _param("AnalyticsBehaviorOption", "Enable"),
                    _param("AnalyticsLanguageLocaleCode", "en-US"),
                ],
                {"Success": "stream"},
            ),
            _module(
                "stream",
                "StartMediaStreaming",
                [_param("Track", "FromCustomer"), _param("Track", "ToCustomer")],
                {"Success": "attrs", "Error": "attrs"},
            ),
            _module(
                "attrs",
                "SetAttributes",
                [
                    _param("Attribute", "Customer Number", key="caller", namespace="System"),
                    _param("Attribute", "result", key="copied", namespace="External"),
                    _param("Attribute", "2", key="n"),
                    _param("Attribute", "my key", key="spaced", namespace="User Defined"),
                ],
                {"Success": "lambda", "Error": "lambda"},
            ),
            _module(
                "lambda",
                "InvokeExternalResource",
                [
                    _param(
                        "FunctionArn", "arn:aws:lambda:us-east-1:1:function:f", resourceName="f"
                    ),
                    _param("TimeLimit", "5"),
                    _param("Parameter", "Customer Number", key="who", namespace="System"),
                ],
                {"Success": "check", "Error": "check"},
                target="Lambda",
            ),
            _module(
                "check",
                "CheckAttribute",
                [_param("Attribute", "result"), _param("Namespace", "External")],
                [
                    ("Evaluate", "menu"),
                    ("NoMatch", "menu"),
                ],
            ),
            _module(
                "menu",
                "GetUserInput",
                [
                    _param("Text", "Press 1"),
                    _param("TextToSpeechType", "text"),
                    _param("Timeout", "5"),
                ],
                [
                    ("Evaluate", "store"),
                    ("Timeout", "store"),
                    ("NoMatch", "store"),
                    ("Error", "store"),
                ],
            ),
            _module(
                "store",
                "StoreUserInput",
                [
                    _param("Text", "<speak>Your number</speak>"),
                    _param("TextToSpeechType", "ssml"),
                    _param("CustomerInputType", "PhoneNumber"),
                ],
                {"Success": "digits", "Error": "digits"},
            ),
            _module(
                "digits",
                "StoreUserInput",
                [
                    _param("AudioPrompt", f"{_ARN}/prompt/p", resourceName="Beep"),
                    _param("MaxDigits", 4),
                ],
                {"Success": "loop", "Error": "loop"},
            ),
            _module(
                "loop",
                "Loop",
                [_param("LoopCount", "2")],
                {"Looping": "prompts", "Complete": "hours"},
            ),
            _module(
                "prompts",
                "LoopPrompts",
                [_param("Text", "Still there?")],
                {"Success": "loop", "Error": "loop"},
            ),
            _module(
                "hours",
                "CheckHoursOfOperation",
                [_param("Hours", f"{_ARN}/operating-hours/h", resourceName="Basic Hours")],
                {"True": "staff", "False": "staff", "Error": "staff"},
            ),
            _module(
                "staff",
                "CheckStaffing",
                [
                    _param("Status", "Available"),
                    _param("Queue", f"{_ARN}/queue/q", resourceName="Q"),
                ],
                {"True": "queue", "False": "queue", "Error": "queue"},
            ),
            _module(
                "queue",
                "SetQueue",
                [_param("Queue", f"{_ARN}/queue/q", resourceName="BasicQueue")],
                {"Success": "hook", "Error": "hook"},
            ),
            _module(
                "hook",
                "SetEventHook",
                [
                    _param("Type", "CustomerQueue"),
                    _param("ContactFlowId", "queue-flow", resourceName="q"),
                ],
                {"Success": "xfer", "Error": "xfer"},
            ),
            _module(
                "xfer", "Transfer", [], {"AtCapacity": "toflow", "Error": "toflow"}, target="Queue"
            ),
            _module(
                "toflow",
                "Transfer",
                [_param("ContactFlowId", "legacy-every-module", resourceName="me")],
                {"Error": "say"},
                target="Flow",
            ),
            _module(
                "say", "PlayPrompt", [_param("Text", "Bye")], {"Success": "stop", "Error": "stop"}
            ),
            _module(
                "stop",
                "StopMediaStreaming",
                [_param("Track", "FromCustomer"), _param("Track", "ToCustomer")],
                {"Success": "bye", "Error": "bye"},
            ),
            _module("bye", "Disconnect", [], {}),
        ],
        "version": "1",
        "type": "contactFlow",
        "start": "log",
        "metadata": {"name": "legacy-every-module", "description": None, "status": "published"},
    }


def _legacy_evaluate(doc: dict[str, Any]) -> dict[str, Any]:
    """Give the CheckAttribute/GetUserInput ``Evaluate`` branches their legacy fields."""
    for module in doc["modules"]:
        for branch in module["branches"]:
            if branch["condition"] == "Evaluate":
                branch["conditionType"] = "Equals" if module["id"] == "menu" else "GreaterThan"
                branch["conditionValue"] = "1"
    return doc


def _legacy_whisper() -> dict[str, Any]:
    return {
        "modules": [
            _module(
                "say",
                "PlayPrompt",
                [_param("Text", "Connecting")],
                {"Success": "done", "Error": "end"},
            ),
            _module("done", "Resume", [], {}),
            _module("end", "EndFlowExecution", [], {}),
        ],
        "type": "agentWhisper",
        "start": "say",
        "metadata": {"name": "legacy-whisper"},
    }


def builtin_corpus() -> list[bytes]:
    """Valid flows covering every implemented action type and every legacy module type."""
    docs = [_contact_flow(), _queue_flow(), _legacy_evaluate(_legacy_flow()), _legacy_whisper()]
    return [json.dumps(doc, indent=1).encode() for doc in docs]


def default_corpus_dir() -> Path:
    """``shared/testdata/connect-flows`` next to the repository this module came from."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "connect-flows"


def load_corpus(directory: Path | None) -> list[bytes]:
    """The built-in corpus plus every ``*.json`` under ``directory`` (default: shared)."""
    corpus = builtin_corpus()
    directory = directory or default_corpus_dir()
    if directory.is_dir():
        corpus += [path.read_bytes() for path in sorted(directory.rglob("*.json"))]
    return corpus


# --- mutations ----------------------------------------------------------------------------

_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    7,
    1.5,
    10**30,
    "",
    " ",
    "x",
    "True",
    "5",
    "-3",
    "$.Attributes.x",
    "$.Nope.y",
    "Hi $.Attributes.x",
    "\u0000",
    "\ud800x",
    [],
    [None],
    ["x"],
    [{}],
    {},
    {"x": 1},
    {"name": "x", "value": "y"},
)
_KEYS = (
    "Identifier",
    "Type",
    "Parameters",
    "Transitions",
    "NextAction",
    "Errors",
    "Conditions",
    "Condition",
    "Operator",
    "Operands",
    "ErrorType",
    "Metadata",
    "ActionMetadata",
    "StartAction",
    "Version",
    "Actions",
    "modules",
    "parameters",
    "branches",
    "metadata",
    "id",
    "type",
    "target",
    "start",
    "name",
    "value",
    "namespace",
    "key",
    "condition",
    "transition",
    "conditionType",
    "conditionValue",
    "resourceName",
    "InputValidation",
    "CustomValidation",
    "PhoneNumberValidation",
    "DTMFConfiguration",
    "RecordingBehavior",
    "AnalyticsBehavior",
    "Participants",
    "MediaDirections",
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*path, index))
    return out


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _random_value(rng: random.Random, doc: Any, paths: list[tuple[Any, ...]]) -> Any:
    if rng.random() < 0.2:  # a subtree from elsewhere in the document (wrong nesting)
        return copy.deepcopy(_at(doc, rng.choice(paths)))
    return copy.deepcopy(rng.choice(_VALUES))


def mutate_tree(doc: Any, rng: random.Random) -> Any:
    """A few structural edits of a parsed document: replace any node with a value of another
    type or a subtree from elsewhere, delete keys or items, insert keys or items."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)
        path = rng.choice(paths)
        value = _random_value(rng, doc, paths)
        if not path:
            doc = value
            continue
        parent = _at(doc, path[:-1])
        op = rng.randrange(4)
        if op == 0:
            parent[path[-1]] = value
        elif op == 1:
            del parent[path[-1]]
        elif op == 2 and isinstance(parent, dict):
            parent[rng.choice((*_KEYS, "extra"))] = value
        elif op == 2:
            parent.insert(path[-1], value)
        else:
            target = _at(doc, path)
            if isinstance(target, dict):
                target[rng.choice(_KEYS)] = value
            elif isinstance(target, list):
                target.append(value)
            else:
                parent[path[-1]] = value
    return doc


_BYTES = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf", b"\\ud800", b'"', b"{", b"]")


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    """Mostly structural edits of the parsed JSON, sometimes raw byte edits."""
    if rng.random() < 0.75:
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if doc is not None:
            text = json.dumps(mutate_tree(doc, rng), ensure_ascii=rng.random() < 0.5)
            data = text.encode("utf-8", "surrogatepass")
            if rng.random() < 0.9:
                return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf = bytearray(rng.choice(corpus)[:64])
        i = rng.randrange(len(buf))
        op = rng.randrange(6)
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            token = rng.choice(_BYTES)
            buf[i : i + len(token)] = token
        elif op == 2:
            buf[i:i] = rng.choice(_BYTES)
        elif op == 3:
            del buf[i : i + rng.randint(1, 32)]
        elif op == 4:
            del buf[i:]
        else:
            span = rng.randint(1, 64)
            buf[i:i] = buf[i : i + span]
    return bytes(buf)


def run_loop(
    *,
    seed: int,
    corpus: list[bytes],
    crash_dir: Path,
    seconds: float | None = None,
    iterations: int | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Mutate and check inputs until ``seconds`` pass or ``iterations`` are done (whichever
    is given; both: the first reached). Returns the number of inputs checked."""
    if seconds is None and iterations is None:
        raise ValueError("give seconds or iterations")
    rng = random.Random(seed)
    deadline = None if seconds is None else time.monotonic() + seconds
    done = 0
    while (iterations is None or done < iterations) and (
        deadline is None or time.monotonic() < deadline
    ):
        data = mutate(rng.choice(corpus), rng, corpus)
        try:
            fuzz_one(data)
        except Exception:
            crash_dir.mkdir(parents=True, exist_ok=True)
            path = crash_dir / f"crash-{zlib.crc32(data):08x}.json"
            path.write_bytes(data)
            log(f"crash after {done} iterations; input saved to {path}")
            raise
        done += 1
    return done


def main(argv: list[str] | None = None) -> int:
    """``python -m callstream.flows.fuzz``: see the module docstring."""
    ap = argparse.ArgumentParser(prog="python -m callstream.flows.fuzz", description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--iterations", type=int, default=None, help="stop after this many inputs")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--corpus", type=Path, default=None, help="a directory of flow JSON files")
    ap.add_argument("--crash-dir", type=Path, default=Path("flow-fuzz-crashes"))
    ap.add_argument("--no-atheris", action="store_true", help="use the built-in loop")
    args, rest = ap.parse_known_args(argv)
    try:
        if args.no_atheris:
            raise ImportError
        import atheris
    except ImportError:
        corpus = load_corpus(args.corpus)
        print(f"mutation loop: {len(corpus)} corpus inputs, seed {args.seed}, {args.seconds}s")
        try:
            n = run_loop(
                seed=args.seed,
                corpus=corpus,
                crash_dir=args.crash_dir,
                seconds=args.seconds,
                iterations=args.iterations,
            )
        except Exception as err:  # reported above, with the saved input
            print(f"FAILED: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        print(f"ok: {n} inputs, no failure")
        return 0

    def one_input(data: bytes) -> None:
        fuzz_one(data)

    atheris.Setup([sys.argv[0], f"-max_total_time={int(args.seconds)}", *rest], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
