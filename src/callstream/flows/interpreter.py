"""The flow interpreter: a state machine from runner results to effects.

:class:`FlowRun` executes a :class:`~callstream.flows.model.Flow` for a
:class:`~callstream.flows.contact.Contact`. It performs no I/O: every step that needs the
outside world returns an :mod:`effect <callstream.flows.effects>` and waits for the runner to
report its result through :meth:`FlowRun.resume`::

    run = FlowRun(flow, contact, instance=instance, flows=registry)
    effect = run.start()
    while not isinstance(effect, FlowEnded):
        effect = run.resume(perform(effect))     # the runner's I/O
    if not effect.contact_ended:                 # queued: the call goes on
        ...                                      # agent audio until the customer hangs up
        effect = run.hangup()                    # -> StopMediaStreaming ... FlowEnded

Streaming state lives on the contact, so it carries over TransferToFlow (same run) and into
any later run for the same contact (a customer-queue or whisper flow). When the runner
reports :class:`~callstream.flows.effects.MediaStreamingStarted`, the StreamARN,
StartFragmentNumber and StartTimestamp are on the contact before the next block runs, so a
following InvokeLambdaFunction payload carries them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from callstream.flows.actions import ACTIONS
from callstream.flows.conditions import first_match
from callstream.flows.contact import Contact, MediaStream, RecordingBehavior, contact_flow_event
from callstream.flows.effects import (
    Disconnect,
    Effect,
    Failed,
    FlowEnded,
    GetInput,
    InputResult,
    InvokeLambda,
    LambdaRef,
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
from callstream.flows.instance import Instance, Queue, utc_now
from callstream.flows.jsonpath import evaluate, render
from callstream.flows.model import (
    NO_MATCHING_CONDITION,
    NO_MATCHING_ERROR,
    Action,
    Flow,
    FlowType,
)
from callstream.flows.registry import FlowRegistry

__all__ = [
    "MAX_LAMBDA_RESPONSE_BYTES",
    "FlowRun",
    "LambdaResponseError",
    "Step",
    "check_lambda_response",
]

MAX_LAMBDA_RESPONSE_BYTES = 32 * 1024
MAX_LAMBDA_TIMEOUT_S = 8
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

EndReason = Literal["disconnected", "hangup", "queued", "ended", "error"]


class LambdaResponseError(ValueError):
    """A Lambda response the block's ResponseValidation rejects (Error branch)."""


def check_lambda_response(
    response: Any, response_type: str = "STRING_MAP", *, strict_strings: bool = False
) -> dict[str, Any]:
    """Validate a Lambda response and return what becomes ``$.External``.

    STRING_MAP: a flat JSON object. Nested objects/arrays and nulls are rejected; numbers and
    booleans are converted to their JSON text (``200`` -> ``"200"``) because Connect runs the
    published LCA StartLCA handler, which returns ``{"statusCode": 200, ...}``, down its
    success branch; ``strict_strings=True`` rejects every non-string value instead.
    JSON: any JSON object. Both: under 32 KB of UTF-8 JSON.
    """
    if not isinstance(response, Mapping):
        raise LambdaResponseError(
            f"the response must be a JSON object, got {type(response).__name__}"
        )
    try:
        size = len(json.dumps(response, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise LambdaResponseError(f"the response is not JSON: {exc}") from exc
    if size >= MAX_LAMBDA_RESPONSE_BYTES:
        raise LambdaResponseError(f"the response is {size} bytes; the limit is 32 KB")
    if response_type == "JSON":
        return {str(k): v for k, v in response.items()}
    out: dict[str, Any] = {}
    for key, value in response.items():
        if not isinstance(key, str):
            raise LambdaResponseError("STRING_MAP keys must be strings")
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, Mapping | list):
            raise LambdaResponseError(
                f"STRING_MAP value {key!r} is nested ({type(value).__name__})"
            )
        elif value is None or strict_strings:
            raise LambdaResponseError(f"STRING_MAP value {key!r} is not a string ({value!r})")
        elif isinstance(value, bool | int | float):
            out[key] = json.dumps(value)
        else:
            raise LambdaResponseError(f"STRING_MAP value {key!r} is not a string")
    return out


@dataclass(frozen=True, slots=True)
class Step:
    """One executed block: where it was and which branch it took."""

    flow: str
    action: str
    type: str
    result: str
    """``NextAction``, ``Error <ErrorType>``, ``Condition <Operator>(<operand>)``, ``end``."""
    next_action: str | None


@dataclass(frozen=True, slots=True)
class _Go:
    """Where a block leaves to: a target, an unhandled error (target None), or the end."""

    label: str
    target: str | None = None
    error: str | None = None
    message: str = ""
    end: FlowEnded | None = None
    switch: Flow | None = None


Gen = Generator[Effect, Result, None]
Handler = Generator[Effect, Result, _Go]


class FlowRun:
    """Runs one flow (and the flows it transfers to) for one contact.

    ``instance``: queues, hours, streaming settings (default: a fresh instance with
    BasicQueue). ``flows``: where TransferToFlow looks targets up. ``clock``: returns an aware
    datetime (CheckHoursOfOperation, timestamps). ``rng``: DistributeByPercentage.
    ``max_idle_steps``: consecutive blocks without any effect before the run is stopped as an
    endless loop. ``strict_string_map``: reject numbers in STRING_MAP responses.
    """

    def __init__(
        self,
        flow: Flow,
        contact: Contact,
        *,
        instance: Instance | None = None,
        flows: FlowRegistry | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        max_idle_steps: int = 1000,
        strict_string_map: bool = False,
    ) -> None:
        self.flow = flow
        self.contact = contact
        self.instance = instance or Instance()
        self.flows = flows or FlowRegistry()
        self.clock = clock
        self.rng = rng or random.Random()
        self.max_idle_steps = max_idle_steps
        self.strict_string_map = strict_string_map
        self.trace: list[Step] = []
        """Every block executed, in order."""
        self.notes: list[str] = []
        """Run-time warnings (blocks callstream does not execute, ad-hoc queues, ...)."""
        self.pending: Effect | None = None
        """The effect waiting for :meth:`resume` (None before start and after the end)."""
        self.ended: FlowEnded | None = None
        self._gen: Gen | None = None
        self._asked = 0
        self._loops: dict[tuple[str, str], int] = {}
        self._handlers: dict[str, Callable[[Action], _Go | Handler]] = {
            "UpdateFlowLoggingBehavior": self._logging,
            "UpdateContactMediaStreamingBehavior": self._media_streaming,
            "InvokeLambdaFunction": self._lambda,
            "UpdateContactAttributes": self._attributes,
            "Compare": self._compare,
            "UpdateContactTargetQueue": self._target_queue,
            "TransferContactToQueue": self._transfer_to_queue,
            "DequeueContactAndTransferToQueue": self._dequeue_to_queue,
            "TransferToFlow": self._transfer_to_flow,
            "MessageParticipant": self._message,
            "GetParticipantInput": self._get_input,
            "Loop": self._loop,
            "Wait": self._wait,
            "CheckHoursOfOperation": self._hours,
            "UpdateContactRecordingBehavior": self._recording,
            "DisconnectParticipant": self._disconnect,
            "EndFlowExecution": self._end_flow,
            "DistributeByPercentage": self._distribute,
            "UpdateContactTextToSpeechVoice": self._voice,
            "UpdateContactEventHooks": self._event_hooks,
            "UpdateContactRoutingBehavior": self._routing,
            "UpdateContactCallbackNumber": self._callback_number,
            "CheckMetricData": self._metric,
        }
        missing = [t for t, s in ACTIONS.items() if s.implemented and t not in self._handlers]
        assert not missing, f"no handler for {missing}"

    # --- driving ----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once :class:`FlowEnded` was returned (the contact may still be up after a
        ``queued`` end: see ``FlowEnded.contact_ended`` and :meth:`hangup`)."""
        return self.ended is not None and self.pending is None

    def start(self) -> Effect:
        """Begin at the flow's StartAction; returns the first effect."""
        if self._gen is not None:
            raise RuntimeError("this run has already started")
        now = self.clock()
        if self.contact.initiation_timestamp is None:
            self.contact.initiation_timestamp = now
        if self.contact.connected_to_system_timestamp is None:
            self.contact.connected_to_system_timestamp = now
        self._gen = self._run()
        return self._advance(None, first=True)

    def resume(self, result: Result = None) -> Effect:
        """Report the pending effect's result; returns the next effect.

        Raises TypeError when ``result`` is not one the pending effect accepts.
        """
        effect = self.pending
        if effect is None or self._gen is None:
            raise RuntimeError("nothing is pending: call start(), or the run has ended")
        if result is None:
            if effect.result_required:
                raise TypeError(f"{type(effect).__name__} needs a result")
        elif not isinstance(result, effect.results):
            allowed = ", ".join(t.__name__ for t in effect.results) or "None"
            raise TypeError(f"{type(effect).__name__} takes {allowed}, not {type(result).__name__}")
        return self._advance(result)

    def hangup(self, reason: str = "CUSTOMER_DISCONNECT") -> Effect:
        """The customer hung up (or the call dropped): stop streaming and end the contact.

        Valid at any point, including after a ``queued`` :class:`FlowEnded`; whatever effect
        was pending is abandoned. Returns the next effect (a StopMediaStreaming when
        streaming, else the final FlowEnded).
        """
        if self.contact.ended:  # already over (here or in another run for this contact)
            if self.ended is None or not self.ended.contact_ended:
                if self._gen is not None:
                    self._gen.close()
                self.ended = FlowEnded("hangup", contact_ended=True, flow=self.flow.name)
                self.pending = None
            return self.ended
        if self._gen is not None:
            self._gen.close()
        self._gen = self._hangup(reason)
        return self._advance(None, first=True)

    def drive(self, perform: Callable[[Effect], Result]) -> FlowEnded:
        """Run to the end synchronously, performing effects with ``perform``."""
        effect: Effect | None = self.start() if self._gen is None else self.pending
        if effect is None and self.ended is not None:
            return self.ended
        while effect is not None and not isinstance(effect, FlowEnded):
            effect = self.resume(perform(effect))
        assert isinstance(effect, FlowEnded)
        return effect

    def _advance(self, result: Result, *, first: bool = False) -> Effect:
        assert self._gen is not None
        try:
            effect = next(self._gen) if first else self._gen.send(result)
        except StopIteration:  # pragma: no cover - the generators always end on FlowEnded
            raise RuntimeError("the run has ended") from None
        if isinstance(effect, FlowEnded):
            self.ended = effect
            self.pending = None
        else:
            self.pending = effect
        return effect

    # --- main loop --------------------------------------------------------------------------

    def _run(self) -> Gen:
        current = self.flow.start_action
        idle = 0
        while True:
            action = self.flow.action(current)
            spec = ACTIONS[action.type]
            handler = self._handlers[action.type] if spec.implemented else self._unsupported
            before = self._asked
            step = handler(action)
            go = step if isinstance(step, _Go) else (yield from step)
            idle = 0 if self._asked != before else idle + 1
            self.contact.last_update_timestamp = self.clock()

            if go.target is None and go.end is None and go.switch is None:
                what = f"{go.error or 'the flow'} has no branch" if go.error else "no next block"
                detail = f"; {go.message}" if go.message else ""
                go = _Go(
                    go.label,
                    error=go.error,
                    message=go.message,
                    end=(
                        yield from self._finish(
                            "error",
                            "CONTACT_FLOW_DISCONNECT",
                            message=f"action {action.identifier!r}: {what}{detail}",
                            action=action.identifier,
                        )
                    ),
                )
            self.trace.append(
                Step(self.flow.name, action.identifier, action.type, go.label, go.target)
            )
            if self.contact.flow_logging:
                yield Log(
                    entry=self._log_entry(action, go), action=action.identifier, flow=self.flow.name
                )
            if go.end is not None:
                yield go.end
                return
            if go.switch is not None:
                self.flow = go.switch
                current = self.flow.start_action
            else:
                assert go.target is not None
                current = go.target
            if idle > self.max_idle_steps:
                end = yield from self._finish(
                    "error",
                    "CONTACT_FLOW_DISCONNECT",
                    message=f"stopped after {idle} blocks without any effect (endless loop?)",
                )
                yield end
                return

    def _hangup(self, reason: str) -> Gen:
        end = yield from self._finish("hangup", reason, disconnect=False)
        yield end

    def _ask(self, effect: Effect) -> Generator[Effect, Result, Result]:
        self._asked += 1
        result = yield effect
        return result

    def _finish(
        self,
        reason: EndReason,
        disconnect_reason: str,
        *,
        message: str = "",
        disconnect: bool = True,
        action: str = "",
    ) -> Generator[Effect, Result, FlowEnded]:
        """Disconnect (unless the customer already left), stop streaming, end the contact."""
        contact = self.contact
        if disconnect:
            yield from self._ask(
                Disconnect(reason=disconnect_reason, action=action, flow=self.flow.name)
            )
        now = self.clock()
        contact.disconnect_reason = disconnect_reason
        contact.disconnect_timestamp = now
        contact.last_update_timestamp = now
        if contact.enqueue_timestamp is not None and contact.dequeue_timestamp is None:
            contact.dequeue_timestamp = now
        yield from self._stop_streaming("disconnect", action)
        return FlowEnded(
            reason, contact_ended=True, message=message, action=action, flow=self.flow.name
        )

    # --- helpers ----------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def _text(self, value: Any) -> str:
        return render(value, self.contact) if isinstance(value, str) else str(value)

    def _next(self, action: Action) -> _Go:
        return _Go("NextAction", action.transition.next_action)

    def _error(self, action: Action, error_type: str = NO_MATCHING_ERROR, message: str = "") -> _Go:
        return _Go(
            f"Error {error_type}",
            action.transition.on_error(error_type),
            error=error_type,
            message=message,
        )

    def _choose(self, action: Action, value: str) -> _Go:
        branch = first_match(action.transition.conditions, value, self._text)
        if branch is None:
            return self._error(action, NO_MATCHING_CONDITION, f"no condition matched {value!r}")
        cond = branch.condition
        return _Go(f"Condition {cond.operator}({','.join(cond.operands)})", branch.next_action)

    def _log_entry(self, action: Action, go: _Go) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ContactId": self.contact.contact_id,
            "ContactFlowId": self.flow.arn or self.flow.flow_id,
            "ContactFlowName": self.flow.name,
            "ContactFlowModuleType": action.type,
            "Identifier": action.identifier,
            "Timestamp": self.clock().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "Parameters": evaluate(dict(action.parameters), self.contact),
            "Results": go.label,
        }
        if action.type == "InvokeLambdaFunction" and go.error is None:
            entry["ExternalResults"] = dict(self.contact.external)
        if go.message:
            entry["Error"] = go.message
        return entry

    def _stop_streaming(
        self, reason: Literal["block", "disconnect"], action: str = ""
    ) -> Generator[Effect, Result, bool]:
        stream = self.contact.streaming
        if stream is None:
            return True
        res = yield from self._ask(
            StopMediaStreaming(
                stream_arn=stream.stream_arn, reason=reason, action=action, flow=self.flow.name
            )
        )
        if isinstance(res, Failed):
            if reason == "block":
                return False  # still streaming; the block takes its error branch
            res = None  # the contact is gone: the stream stops regardless
        if not isinstance(res, MediaStreamingStopped):
            res = MediaStreamingStopped()
        stream.stop_timestamp_ms = res.stop_timestamp_ms or self._now_ms()
        stream.stop_fragment_number = res.stop_fragment_number
        return True

    def _prompt(self, action: Action) -> PlayPrompt | None:
        p = action.parameters
        media = p.get("Media")
        fields = {
            "text": self._text(p["Text"]) if p.get("Text") is not None else None,
            "ssml": self._text(p["SSML"]) if p.get("SSML") is not None else None,
            "prompt_id": self._text(p["PromptId"]) if p.get("PromptId") is not None else None,
            "media_uri": self._text(media["Uri"]) if isinstance(media, Mapping) else None,
        }
        if all(v is None for v in fields.values()):
            return None
        return PlayPrompt(
            **fields,
            voice=self.contact.text_to_speech_voice,
            channel=self.contact.channel,
            action=action.identifier,
            flow=self.flow.name,
        )

    def _find_queue(self, action: Action) -> Queue | None:
        p = action.parameters
        if p.get("AgentId") is not None:
            agent = self._text(p["AgentId"]).strip()
            if not agent:
                return None
            agent_id = agent.rsplit("/", 1)[-1]
            return Queue(
                name=f"agent:{agent_id}",
                queue_id=agent_id,
                arn=f"{self.instance.arn}/agent/{agent_id}",
            )
        ref = self._text(p.get("QueueId", "")).strip()
        if not ref:
            return self.instance.default_queue
        queue = self.instance.find_queue(ref)
        display = action.display_name("QueueId")
        if queue is None and display:
            queue = self.instance.find_queue(display)
        if queue is None:
            name = display or ref.rsplit("/", 1)[-1]
            queue = self.instance.with_queues(
                Queue(name, arn=ref if ref.startswith("arn:") else "")
            ).find_queue(name)
            self.notes.append(
                f"action {action.identifier!r}: queue {ref!r} is not configured; "
                f"using an ad-hoc queue {name!r}"
            )
        return queue

    # --- handlers ---------------------------------------------------------------------------

    def _logging(self, action: Action) -> _Go:
        self.contact.flow_logging = action.parameters["FlowLoggingBehavior"] == "Enabled"
        return self._next(action)

    def _media_streaming(self, action: Action) -> Handler:
        p = action.parameters
        if self.contact.channel != "VOICE":
            return self._error(
                action, message=f"media streaming is voice only ({self.contact.channel})"
            )
        if not self.instance.live_media_streaming:
            return self._error(action, message="live media streaming is disabled for the instance")
        directions: tuple[str, ...] = ("To", "From")
        for participant in p.get("Participants") or []:
            if participant.get("ParticipantType") == "Customer":
                directions = tuple(participant.get("MediaDirections") or directions)
        if p["MediaStreamingState"] == "Disabled":
            ok = yield from self._stop_streaming("block", action.identifier)
            return self._next(action) if ok else self._error(action, message="stop failed")
        active = self.contact.streaming
        res = yield from self._ask(
            StartMediaStreaming(
                stream_name=self.instance.stream_name(self.contact.contact_id),
                directions=directions,
                contact_id=self.contact.contact_id,
                kms_key_id=self.instance.kms_key_id,
                retention_hours=self.instance.retention_hours,
                already_streaming=active is not None,
                action=action.identifier,
                flow=self.flow.name,
            )
        )
        if not isinstance(res, MediaStreamingStarted):
            message = res.message if isinstance(res, Failed) else "no result"
            return self._error(action, message=message)
        if active is not None:
            active.directions = directions
        else:
            self.contact.media_streams.append(
                MediaStream(
                    stream_arn=res.stream_arn,
                    start_fragment_number=res.start_fragment_number,
                    start_timestamp_ms=res.start_timestamp_ms or self._now_ms(),
                    directions=directions,
                )
            )
        return self._next(action)

    def _lambda(self, action: Action) -> Handler:
        p = action.parameters
        timeout = int(str(p.get("InvocationTimeLimitSeconds", 3)))
        timeout = max(1, min(MAX_LAMBDA_TIMEOUT_S, timeout))
        validation = p.get("ResponseValidation") or {}
        response_type = cast(
            Literal["STRING_MAP", "JSON"], validation.get("ResponseType", "STRING_MAP")
        )
        invocation_type = cast(
            Literal["SYNCHRONOUS", "ASYNCHRONOUS"], p.get("InvocationType", "SYNCHRONOUS")
        )
        attributes = {
            k: self._text(v) for k, v in (p.get("LambdaInvocationAttributes") or {}).items()
        }
        ref = LambdaRef(
            arn=self._text(p.get("LambdaFunctionARN", "")).strip(),
            identifier=action.identifier,
            display_name=action.display_name("LambdaFunctionARN"),
        )
        res = yield from self._ask(
            InvokeLambda(
                function=ref,
                payload=contact_flow_event(self.contact, attributes),
                timeout_s=timeout,
                invocation_type=invocation_type,
                response_type=response_type,
                action=action.identifier,
                flow=self.flow.name,
            )
        )
        if isinstance(res, Failed):
            what = f"timed out after {timeout} s" if res.timeout else (res.message or "failed")
            return self._error(action, message=f"Lambda {what}")
        assert isinstance(res, LambdaResult)
        if res.elapsed_s is not None and res.elapsed_s > timeout:
            return self._error(action, message=f"Lambda timed out after {timeout} s")
        if invocation_type == "ASYNCHRONOUS":
            return self._next(action)
        try:
            external = check_lambda_response(
                res.response, response_type, strict_strings=self.strict_string_map
            )
        except LambdaResponseError as exc:
            return self._error(action, message=str(exc))
        self.contact.external = external
        return self._next(action)

    def _attributes(self, action: Action) -> _Go:
        p = action.parameters
        if p.get("TargetContact", "Current") == "Related":
            return self._error(action, message="the contact has no related contact")
        values = {k: self._text(v) for k, v in p["Attributes"].items()}
        self.contact.attributes.update(values)
        return self._next(action)

    def _compare(self, action: Action) -> _Go:
        return self._choose(action, self._text(action.parameters["ComparisonValue"]))

    def _target_queue(self, action: Action) -> _Go:
        queue = self._find_queue(action)
        if queue is None:
            return self._error(action, message="no queue")
        self.contact.queue = queue
        return self._next(action)

    def _enqueue(self, action: Action, queue: Queue | None) -> Handler:
        if queue is None:
            return self._error(action, message="no working queue is set")
        if queue.at_capacity:
            return self._error(action, "QueueAtCapacity", f"queue {queue.name!r} is at capacity")
        res = yield from self._ask(
            TransferToQueue(queue=queue, action=action.identifier, flow=self.flow.name)
        )
        if isinstance(res, Failed):
            return self._error(action, message=res.message)
        assert isinstance(res, TransferResult)
        if res.status == "at_capacity":
            return self._error(action, "QueueAtCapacity", f"queue {queue.name!r} is at capacity")
        self.contact.queue = queue
        self.contact.enqueue_timestamp = self.clock()
        return _Go(
            "queued",
            end=FlowEnded(
                "queued", contact_ended=False, action=action.identifier, flow=self.flow.name
            ),
        )

    def _transfer_to_queue(self, action: Action) -> Handler:
        return (yield from self._enqueue(action, self.contact.queue))

    def _dequeue_to_queue(self, action: Action) -> Handler:
        return (yield from self._enqueue(action, self._find_queue(action)))

    def _transfer_to_flow(self, action: Action) -> _Go:
        ref = self._text(action.parameters["ContactFlowId"]).strip()
        target = self.flows.resolve(ref)
        if target is None and (display := action.display_name("ContactFlowId")):
            target = self.flows.resolve(display)
        if target is None:
            return self._error(action, message=f"no flow {ref!r} is registered")
        if target.type is not FlowType.CONTACT_FLOW:
            return self._error(
                action, message=f"flow {target.name!r} is a {target.type.export} flow"
            )
        return _Go(f"TransferToFlow {target.name}", switch=target)

    def _message(self, action: Action) -> Handler:
        prompt = self._prompt(action)
        if prompt is None:
            return self._error(action, message="no prompt")
        res = yield from self._ask(prompt)
        if isinstance(res, Failed):
            return self._error(action, message=res.message)
        return self._next(action)

    def _get_input(self, action: Action) -> Handler:
        p = action.parameters
        if self.contact.channel != "VOICE":
            return self._error(
                action, message=f"DTMF input needs a voice contact ({self.contact.channel})"
            )
        store = str(p.get("StoreInput", "False")) == "True"
        validation = p.get("InputValidation") or {}
        phone = validation.get("PhoneNumberValidation")
        custom = validation.get("CustomValidation") or {}
        max_digits = int(str(custom.get("MaximumLength", 20))) if store else 1
        dtmf = p.get("DTMFConfiguration") or {}
        terminator = dtmf.get("InputTerminationSequence") or ("#" if store else None)
        res = yield from self._ask(
            GetInput(
                prompt=self._prompt(action),
                timeout_s=int(str(p.get("InputTimeLimitSeconds", 5))),
                max_digits=max_digits,
                terminator=terminator,
                store_input=store,
                action=action.identifier,
                flow=self.flow.name,
            )
        )
        if isinstance(res, Failed):
            return self._error(action, message=res.message)
        assert isinstance(res, InputResult)
        if res.digits is None:
            return self._error(action, "InputTimeLimitExceeded", "no input before the time limit")
        digits = res.digits
        if not store:
            return self._choose(action, digits)
        if isinstance(phone, Mapping):
            number = digits if digits.startswith("+") else "+" + digits
            if phone.get("NumberFormat", "E164") == "E164" and not _E164.match(number):
                return self._error(action, "InvalidPhoneNumber", f"{digits!r} is not E.164")
            if phone.get("NumberFormat") == "Local" and not re.fullmatch(r"\d{4,15}", digits):
                return self._error(action, "InvalidPhoneNumber", f"{digits!r} is not a number")
        self.contact.stored_customer_input = digits
        return self._next(action)

    def _whole(self, action: Action, name: str, low: int, high: int) -> int | _Go:
        """An integer parameter (possibly from a JSONPath), or the Error branch."""
        text = self._text(action.parameters.get(name, "")).strip() or "0"
        try:
            value = int(text)
        except ValueError:
            return self._error(action, message=f"{name} {text!r} is not a whole number")
        if not low <= value <= high:
            return self._error(action, message=f"{name} {value} is outside {low}..{high}")
        return value

    def _loop(self, action: Action) -> _Go:
        count = self._whole(action, "LoopCount", 0, 100)
        if isinstance(count, _Go):
            return count
        key = (self.flow.name, action.identifier)
        done = self._loops.get(key, 0)
        if done < count:
            self._loops[key] = done + 1
            return self._choose(action, "ContinueLooping")
        self._loops.pop(key, None)
        return self._choose(action, "DoneLooping")

    def _wait(self, action: Action) -> Handler:
        p = action.parameters
        timeout_s = self._whole(action, "TimeoutSeconds", 0, 604800)
        if isinstance(timeout_s, _Go):
            return timeout_s
        res = yield from self._ask(
            WaitFor(
                timeout_s=timeout_s,
                events=tuple(p.get("Events") or ()),
                action=action.identifier,
                flow=self.flow.name,
            )
        )
        if isinstance(res, Failed):
            return self._error(action, message=res.message)
        assert isinstance(res, WaitResult)
        return self._choose(action, res.event or "WaitCompleted")

    def _hours(self, action: Action) -> _Go:
        ref = self._text(action.parameters.get("HoursOfOperationId", "")).strip()
        if not ref:
            queue = self.contact.queue or self.instance.default_queue
            ref = queue.hours_of_operation_id
        hours = self.instance.find_hours(ref)
        if hours is None:  # an exported flow names another account's ARN: try the name
            shown = action.display_name("HoursOfOperationId")
            hours = self.instance.find_hours(shown) if shown else None
        if hours is None:
            return self._error(action, message=f"no hours of operation {ref!r}")
        return self._choose(action, "True" if hours.is_open(self.clock()) else "False")

    def _recording(self, action: Action) -> _Go:
        p = action.parameters
        behavior = p.get("RecordingBehavior") or {}
        self.contact.recording = RecordingBehavior(
            recorded_participants=tuple(behavior.get("RecordedParticipants") or ()),
            analytics=dict(p.get("AnalyticsBehavior") or {}),
        )
        return self._next(action)

    def _disconnect(self, action: Action) -> Handler:
        end = yield from self._finish(
            "disconnected", "CONTACT_FLOW_DISCONNECT", action=action.identifier
        )
        return _Go("end", end=end)

    def _end_flow(self, action: Action) -> _Go:
        end = FlowEnded("ended", contact_ended=False, action=action.identifier, flow=self.flow.name)
        return _Go("end", end=end)

    def _distribute(self, action: Action) -> _Go:
        return self._choose(action, str(self.rng.randint(1, 100)))

    def _voice(self, action: Action) -> _Go:
        p = action.parameters
        self.contact.text_to_speech_voice = self._text(p["TextToSpeechVoice"])
        if p.get("TextToSpeechEngine"):
            self.contact.text_to_speech_engine = self._text(p["TextToSpeechEngine"])
        return self._next(action)

    def _event_hooks(self, action: Action) -> _Go:
        hooks = action.parameters["EventHooks"]
        self.contact.event_hooks.update({str(k): self._text(v) for k, v in hooks.items()})
        return self._next(action)

    def _routing(self, action: Action) -> _Go:
        for key in ("QueuePriority", "QueueTimeAdjustmentSeconds"):
            if action.parameters.get(key) is not None:
                try:
                    self.contact.routing[key] = int(self._text(action.parameters[key]))
                except ValueError:
                    return self._error(action, message=f"{key} is not an integer")
        return self._next(action)

    def _callback_number(self, action: Action) -> _Go:
        number = self._text(action.parameters["CallbackNumber"]).strip()
        if not _E164.match(number):
            return self._error(action, "InvalidCallbackNumber", f"{number!r} is not E.164")
        self.contact.callback_number = number
        return self._next(action)

    def _metric(self, action: Action) -> _Go:
        p = action.parameters
        queue = (
            self._find_queue(action)
            if p.get("QueueId") is not None or p.get("AgentId") is not None
            else self.contact.queue or self.instance.default_queue
        )
        if queue is None:
            return self._error(action, message="no queue")
        value = queue.metrics.get(str(p["MetricType"]), 0)
        text = str(int(value)) if float(value).is_integer() else str(value)
        return self._choose(action, text)

    def _unsupported(self, action: Action) -> _Go:
        self.notes.append(
            f"action {action.identifier!r}: {action.type} is not executed by callstream"
        )
        tr = action.transition
        if tr.on_error(NO_MATCHING_ERROR) is not None:
            return self._error(action, message=f"{action.type} is not supported by callstream")
        if tr.next_action is not None:
            return self._next(action)
        return _Go(
            "unsupported", error=NO_MATCHING_ERROR, message=f"{action.type} is not supported"
        )
