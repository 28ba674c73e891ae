"""Effects the interpreter asks the runner to perform, and the results the runner reports.

The interpreter never does I/O. Each step returns one :class:`Effect`; the runner performs it
and calls :meth:`FlowRun.resume <callstream.flows.interpreter.FlowRun.resume>` with the
result the effect documents (``None`` where nothing needs reporting, :class:`Failed` for any
effect that can fail, which takes the block's error branch)::

    StartMediaStreaming   -> MediaStreamingStarted | Failed
    StopMediaStreaming    -> MediaStreamingStopped | Failed
    InvokeLambda          -> LambdaResult | Failed (Failed(timeout=True) for a timeout)
    PlayPrompt            -> None | Failed
    GetInput              -> InputResult | Failed
    WaitFor               -> WaitResult | Failed
    TransferToQueue       -> TransferResult | Failed
    Log, Disconnect       -> None
    FlowEnded             -> (final; nothing to resume)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from callstream.flows.instance import Queue

__all__ = [
    "Disconnect",
    "Effect",
    "Failed",
    "FlowEnded",
    "GetInput",
    "InputResult",
    "InvokeLambda",
    "LambdaRef",
    "LambdaResult",
    "Log",
    "MediaStreamingStarted",
    "MediaStreamingStopped",
    "PlayPrompt",
    "Result",
    "StartMediaStreaming",
    "StopMediaStreaming",
    "TransferResult",
    "TransferToQueue",
    "WaitFor",
    "WaitResult",
]

T = TypeVar("T")
_LAMBDA_ARN = re.compile(r"^arn:[^:]+:lambda:[^:]*:[^:]*:function:([^:]+)(?::[^:]+)?$")


# --- results (runner -> interpreter) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failed:
    """The effect failed: the block takes its error branch. ``timeout``: a Lambda timeout."""

    message: str = ""
    timeout: bool = False


@dataclass(frozen=True, slots=True)
class MediaStreamingStarted:
    """Streaming started: the values that become ``$.MediaStreams.Customer.Audio.*``.

    ``start_fragment_number``: the KVS fragment in which the customer audio started;
    ``start_timestamp_ms``: epoch ms (None: the interpreter's clock).
    """

    stream_arn: str
    start_fragment_number: str
    start_timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class MediaStreamingStopped:
    """Streaming stopped (StopTimestamp; the last fragment number for the CTR)."""

    stop_timestamp_ms: int | None = None
    stop_fragment_number: str | None = None


@dataclass(frozen=True, slots=True)
class LambdaResult:
    """The function's decoded JSON response; ``elapsed_s`` over the limit counts as timeout."""

    response: Any
    elapsed_s: float | None = None


@dataclass(frozen=True, slots=True)
class InputResult:
    """The digits entered (without the terminator); None when the time limit passed."""

    digits: str | None


@dataclass(frozen=True, slots=True)
class WaitResult:
    """The event that ended the wait (``CustomerReturned``, ...), None when the time elapsed."""

    event: str | None = None


@dataclass(frozen=True, slots=True)
class TransferResult:
    """``queued``: the contact is in the queue; ``at_capacity``: QueueAtCapacity branch."""

    status: Literal["queued", "at_capacity"] = "queued"


Result = (
    Failed
    | MediaStreamingStarted
    | MediaStreamingStopped
    | LambdaResult
    | InputResult
    | WaitResult
    | TransferResult
    | None
)


# --- effects (interpreter -> runner) -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Effect:
    """Base class. ``action``: the block's Identifier; ``flow``: the flow's name."""

    action: str = ""
    flow: str = ""
    results: ClassVar[tuple[type, ...]] = ()
    """Result types :meth:`FlowRun.resume` accepts for this effect (besides ``None``)."""
    result_required: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Log(Effect):
    """A flow-log entry (only while flow logging is enabled): Connect's CloudWatch shape."""

    entry: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StartMediaStreaming(Effect):
    """Start (or, when ``already_streaming``, keep) streaming the customer audio to KVS.

    One stream per contact, ``stream_name`` = ``<prefix>-connect-<alias>-contact-<ContactId>``,
    created with ``kms_key_id`` / ``retention_hours`` when it does not exist. ``directions``:
    ``From`` (what the customer says) and/or ``To`` (what the customer hears).
    """

    stream_name: str
    directions: tuple[str, ...]
    contact_id: str = ""
    participant: str = "Customer"
    media_type: str = "Audio"
    kms_key_id: str | None = None
    retention_hours: int = 24
    already_streaming: bool = False
    results: ClassVar[tuple[type, ...]] = (MediaStreamingStarted, Failed)
    result_required: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class StopMediaStreaming(Effect):
    """Stop streaming (a Disabled block, or ``reason="disconnect"`` when the contact ends)."""

    stream_arn: str
    reason: Literal["block", "disconnect"] = "block"
    results: ClassVar[tuple[type, ...]] = (MediaStreamingStopped, Failed)


@dataclass(frozen=True, slots=True)
class LambdaRef:
    """How a flow names a Lambda: the (rendered) ARN, the block Identifier, the designer name.

    Exported flows often carry an empty or foreign ARN, so a runner binds handlers by any of
    :attr:`keys`, most specific first (see :meth:`lookup`).
    """

    arn: str
    identifier: str
    display_name: str | None = None

    @property
    def function_name(self) -> str | None:
        """The function name from a Lambda ARN (or the value itself when it is not an ARN)."""
        if not self.arn:
            return None
        m = _LAMBDA_ARN.match(self.arn)
        if m:
            return m.group(1)
        return None if self.arn.startswith("arn:") else self.arn

    @property
    def keys(self) -> tuple[str, ...]:
        """ARN, function name, Identifier, designer display name; unique, non-empty."""
        out: list[str] = []
        for key in (self.arn, self.function_name, self.identifier, self.display_name):
            if key and key not in out:
                out.append(key)
        return tuple(out)

    def lookup(self, table: Mapping[str, T]) -> T | None:
        """The first entry of ``table`` under one of :attr:`keys`."""
        for key in self.keys:
            if key in table:
                return table[key]
        return None


@dataclass(frozen=True, slots=True)
class InvokeLambda(Effect):
    """Invoke a Lambda with ``payload`` (the exact ContactFlowEvent) within ``timeout_s``.

    Report :class:`LambdaResult` with the decoded response, or :class:`Failed` (error,
    throttling, ``timeout=True`` past ``timeout_s``). ``ASYNCHRONOUS`` invocations need no
    response (report ``LambdaResult(None)``).
    """

    function: LambdaRef
    payload: Mapping[str, Any]
    timeout_s: int = 3
    invocation_type: Literal["SYNCHRONOUS", "ASYNCHRONOUS"] = "SYNCHRONOUS"
    response_type: Literal["STRING_MAP", "JSON"] = "STRING_MAP"
    results: ClassVar[tuple[type, ...]] = (LambdaResult, Failed)
    result_required: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class PlayPrompt(Effect):
    """Play a prompt to the customer (voice: to the ``To`` track; chat: send the message).

    Exactly one of ``text`` / ``ssml`` / ``prompt_id`` / ``media_uri`` is set (rendered).
    """

    text: str | None = None
    ssml: str | None = None
    prompt_id: str | None = None
    media_uri: str | None = None
    voice: str = "Joanna"
    channel: str = "VOICE"
    results: ClassVar[tuple[type, ...]] = (Failed,)


@dataclass(frozen=True, slots=True)
class GetInput(Effect):
    """Play ``prompt`` (if any) and collect DTMF (voice) or a typed entry.

    Collect up to ``max_digits`` digits, ending early at ``terminator``; ``timeout_s`` is the
    wait for the first digit. Report :class:`InputResult` (``digits=None`` on timeout).
    """

    prompt: PlayPrompt | None
    timeout_s: int = 5
    max_digits: int = 1
    terminator: str | None = None
    store_input: bool = False
    results: ClassVar[tuple[type, ...]] = (InputResult, Failed)
    result_required: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class WaitFor(Effect):
    """Pause up to ``timeout_s`` or until one of ``events``; report :class:`WaitResult`."""

    timeout_s: int
    events: tuple[str, ...] = ()
    results: ClassVar[tuple[type, ...]] = (WaitResult, Failed)
    result_required: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class TransferToQueue(Effect):
    """Put the contact in ``queue``; report :class:`TransferResult` (queued / at capacity).

    On success the flow ends (:class:`FlowEnded` ``reason="queued"``) and the contact stays
    up: agent audio may start; call :meth:`FlowRun.hangup` when the customer hangs up.
    """

    queue: Queue
    results: ClassVar[tuple[type, ...]] = (TransferResult, Failed)
    result_required: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Disconnect(Effect):
    """Hang up the contact (DisconnectParticipant, or an error with no branch)."""

    reason: str = "CONTACT_FLOW_DISCONNECT"


@dataclass(frozen=True, slots=True)
class FlowEnded(Effect):
    """The run is over. ``contact_ended``: the contact is disconnected (write the CTR).

    ``reason``: ``disconnected`` (DisconnectParticipant), ``hangup`` (the customer),
    ``queued`` (TransferContactToQueue succeeded; the contact stays up), ``ended``
    (EndFlowExecution), ``error`` (an error with no branch, or the step limit).
    """

    reason: Literal["disconnected", "hangup", "queued", "ended", "error"]
    contact_ended: bool
    message: str = ""
