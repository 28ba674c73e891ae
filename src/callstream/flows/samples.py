"""Flow documents covering every action and legacy module type, and the builders that write
them (also used by the tests).

:func:`sample_flows` gives valid flows in both formats: a 2019-10-30 contact flow using every
implemented action type, a customer-queue flow, a legacy (module format) contact flow using
every legacy module type, and a legacy agent-whisper flow. They seed the flow fuzzer
(:mod:`callstream.flows.fuzz`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "STREAMING_DISABLED",
    "STREAMING_ENABLED",
    "action",
    "flow_doc",
    "legacy_module",
    "legacy_param",
    "sample_flows",
]


# --- builders -------------------------------------------------------------------------------


def action(
    ident: str,
    type_: str,
    params: Mapping[str, Any] | None = None,
    *,
    next_action: str | None = None,
    errors: Mapping[str, str] | None = None,
    conditions: list[tuple[str, str, str]] | None = None,
) -> dict[str, Any]:
    """One 2019-10-30 action; ``conditions``: (operator, operand, next)."""
    transitions: dict[str, Any] = {}
    if next_action is not None:
        transitions["NextAction"] = next_action
    if errors:
        transitions["Errors"] = [{"ErrorType": k, "NextAction": v} for k, v in errors.items()]
    if conditions:
        transitions["Conditions"] = [
            {"NextAction": nxt, "Condition": {"Operator": op, "Operands": [operand]}}
            for op, operand, nxt in conditions
        ]
    return {
        "Identifier": ident,
        "Type": type_,
        "Parameters": dict(params or {}),
        "Transitions": transitions,
    }


def flow_doc(
    *actions: dict[str, Any],
    start: str | None = None,
    name: str = "test-flow",
    flow_type: str = "contactFlow",
    action_metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A 2019-10-30 flow document around ``actions`` (start: the first one)."""
    return {
        "Version": "2019-10-30",
        "StartAction": start if start is not None else actions[0]["Identifier"],
        "Metadata": {
            "name": name,
            "type": flow_type,
            "ActionMetadata": dict(action_metadata or {}),
        },
        "Actions": list(actions),
    }


def legacy_param(name: str, value: Any, **extra: Any) -> dict[str, Any]:
    """One parameter of a legacy module (``key``, ``namespace``, ``resourceName``: extra)."""
    return {"name": name, "value": value, "namespace": None, **extra}


def legacy_module(
    id_: str,
    type_: str,
    params: list[dict[str, Any]],
    branches: list[tuple[str, str]] | Mapping[str, str],
    **extra: Any,
) -> dict[str, Any]:
    """One legacy module; ``branches``: (condition, transition) pairs or a mapping of them."""
    pairs = branches.items() if isinstance(branches, Mapping) else branches
    return {
        "id": id_,
        "type": type_,
        "branches": [{"condition": c, "transition": t} for c, t in pairs],
        "parameters": params,
        "metadata": {"position": {"x": 0, "y": 0}},
        **extra,
    }


STREAMING_ENABLED: Mapping[str, Any] = {
    "MediaStreamingState": "Enabled",
    "MediaStreamType": "Audio",
    "Participants": [{"ParticipantType": "Customer", "MediaDirections": ["To", "From"]}],
}
"""UpdateContactMediaStreamingBehavior parameters that start streaming the customer audio."""
STREAMING_DISABLED: Mapping[str, Any] = {**STREAMING_ENABLED, "MediaStreamingState": "Disabled"}
"""The parameters that stop it."""


# --- the sample flows -----------------------------------------------------------------------


def sample_flows() -> list[dict[str, Any]]:
    """Valid flows covering every implemented action type and every legacy module type
    (new documents on each call)."""
    return [_contact_flow(), _queue_flow(), _legacy_evaluate(_legacy_flow()), _legacy_whisper()]


_DESIGNER = {  # designer data as the console writes it (ignored when the flow runs)
    "queue": {"parameters": {"QueueId": {"displayName": "BasicQueue"}}},
    "lambda": {"isFriendlyName": True, "position": {"x": 1.5, "y": 2}},
}
_ARN = "arn:aws:connect:us-east-1:123456789012:instance/i"


def _contact_flow() -> dict[str, Any]:
    err = "NoMatchingError"
    nmc = "NoMatchingCondition"
    actions = [
        action(
            "log",
            "UpdateFlowLoggingBehavior",
            {"FlowLoggingBehavior": "Enabled"},
            next_action="voice",
        ),
        action(
            "voice",
            "UpdateContactTextToSpeechVoice",
            {"TextToSpeechVoice": "Joanna", "TextToSpeechEngine": "Neural"},
            next_action="rec",
            errors={err: "rec"},
        ),
        action(
            "rec",
            "UpdateContactRecordingBehavior",
            {
                "RecordingBehavior": {"RecordedParticipants": ["Agent", "Customer"]},
                "AnalyticsBehavior": {"Enabled": "True", "AnalyticsLanguage": "en-US"},
            },
            next_action="stream",
        ),
        action(
            "stream",
            "UpdateContactMediaStreamingBehavior",
            STREAMING_ENABLED,
            next_action="attrs",
            errors={err: "attrs"},
        ),
        action(
            "attrs",
            "UpdateContactAttributes",
            {
                "Attributes": {"greeting": "Hi $.CustomerEndpoint.Address", "n": "2"},
                "TargetContact": "Current",
            },
            next_action="lambda",
            errors={err: "lambda"},
        ),
        action(
            "lambda",
            "InvokeLambdaFunction",
            {
                "LambdaFunctionARN": "arn:aws:lambda:us-east-1:1:function:f",
                "InvocationTimeLimitSeconds": "3",
                "LambdaInvocationAttributes": {"who": "$.Attributes.greeting"},
                "ResponseValidation": {"ResponseType": "STRING_MAP"},
                "InvocationType": "SYNCHRONOUS",
            },
            next_action="compare",
            errors={err: "compare"},
        ),
        action(
            "compare",
            "Compare",
            {"ComparisonValue": "$.External.statusCode"},
            errors={nmc: "menu", err: "menu"},
            conditions=[("Equals", "200", "menu"), ("NumberGreaterThan", "300", "menu")],
        ),
        action(
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
        action(
            "store",
            "GetParticipantInput",
            {
                "SSML": "<speak>Your account number</speak>",
                "InputTimeoutSeconds": "7",
                "StoreInput": "True",
                "InputValidation": {"CustomValidation": {"MaximumLength": "10"}},
                "DTMFConfiguration": {"InputTerminationSequence": "#"},
            },
            next_action="phone",
            errors={"InputTimeLimitExceeded": "phone", err: "phone"},
        ),
        action(
            "phone",
            "GetParticipantInput",
            {
                "PromptId": f"{_ARN}/prompt/p",
                "StoreInput": "True",
                "InputValidation": {"PhoneNumberValidation": {"NumberFormat": "E164"}},
            },
            next_action="loop",
            errors={"InvalidPhoneNumber": "loop", "InputTimeLimitExceeded": "loop", err: "loop"},
        ),
        action(
            "loop",
            "Loop",
            {"LoopCount": "$.Attributes.n"},
            conditions=[
                ("Equals", "ContinueLooping", "play"),
                ("Equals", "DoneLooping", "hours"),
            ],
        ),
        action(
            "play",
            "MessageParticipant",
            {"PromptId": f"{_ARN}/prompt/p"},
            next_action="loop",
            errors={err: "loop"},
        ),
        action(
            "hours",
            "CheckHoursOfOperation",
            {"HoursOfOperationId": f"{_ARN}/operating-hours/h"},
            errors={err: "wait"},
            conditions=[("Equals", "True", "wait"), ("Equals", "False", "wait")],
        ),
        action(
            "wait",
            "Wait",
            {"TimeoutSeconds": "60", "Events": ["CustomerReturned"]},
            errors={err: "dist"},
            conditions=[
                ("Equals", "WaitCompleted", "dist"),
                ("Equals", "CustomerReturned", "dist"),
            ],
        ),
        action(
            "dist",
            "DistributeByPercentage",
            errors={nmc: "metric", err: "metric"},
            conditions=[("NumberLessThan", "50", "metric")],
        ),
        action(
            "metric",
            "CheckMetricData",
            {"MetricType": "NumberOfAgentsAvailable", "QueueId": f"{_ARN}/queue/q"},
            errors={nmc: "routing", err: "routing"},
            conditions=[("NumberGreaterThan", "0", "routing")],
        ),
        action(
            "routing",
            "UpdateContactRoutingBehavior",
            {"QueuePriority": "3"},
            next_action="hooks",
            errors={err: "hooks"},
        ),
        action(
            "hooks",
            "UpdateContactEventHooks",
            {"EventHooks": {"CustomerQueue": f"{_ARN}/contact-flow/q"}},
            next_action="callback",
            errors={err: "callback"},
        ),
        action(
            "callback",
            "UpdateContactCallbackNumber",
            {"CallbackNumber": "$.CustomerEndpoint.Address"},
            next_action="media",
            errors={
                "InvalidCallbackNumber": "media",
                "CallbackNumberNotDialable": "media",
                err: "media",
            },
        ),
        action(
            "media",
            "MessageParticipant",
            {"Media": {"Uri": "s3://bucket/a.wav", "SourceType": "S3", "MediaType": "Audio"}},
            next_action="queue",
            errors={err: "queue"},
        ),
        action(
            "queue",
            "UpdateContactTargetQueue",
            {"QueueId": f"{_ARN}/queue/q"},
            next_action="xfer",
            errors={err: "xfer"},
        ),
        action("xfer", "TransferContactToQueue", errors={"QueueAtCapacity": "flow", err: "flow"}),
        action("flow", "TransferToFlow", {"ContactFlowId": "every-action"}, errors={err: "task"}),
        action("task", "CreateTask", {"Name": "x"}, next_action="stop", errors={err: "stop"}),
        action(
            "stop",
            "UpdateContactMediaStreamingBehavior",
            STREAMING_DISABLED,
            next_action="bye",
            errors={err: "bye"},
        ),
        action("bye", "DisconnectParticipant"),
    ]
    return flow_doc(
        *actions, name="every-action", flow_type="contactFlow", action_metadata=_DESIGNER
    )


def _queue_flow() -> dict[str, Any]:
    err = "NoMatchingError"
    actions = [
        action(
            "hold",
            "MessageParticipant",
            {"Text": "Please hold"},
            next_action="dequeue",
            errors={err: "dequeue"},
        ),
        action(
            "dequeue",
            "DequeueContactAndTransferToQueue",
            {"AgentId": f"{_ARN}/agent/a"},
            errors={"QueueAtCapacity": "end", err: "end"},
        ),
        action("end", "EndFlowExecution"),
    ]
    return flow_doc(
        *actions, name="queue-flow", flow_type="customerQueue", action_metadata=_DESIGNER
    )


def _legacy_flow() -> dict[str, Any]:
    return {
        "modules": [
            legacy_module(
                "log",
                "SetLoggingBehavior",
                [legacy_param("LoggingBehavior", "Enable")],
                {"Success": "voice"},
            ),
            legacy_module(
                "voice", "SetVoice", [legacy_param("GlobalVoice", "Matthew")], {"Success": "rec"}
            ),
            legacy_module(
                "rec",
                "SetRecordingBehavior",
                [
                    legacy_param("RecordingBehaviorOption", "Enable"),
                    legacy_param("RecordingParticipantOption", "Both"),
                    legacy_param("AnalyticsBehaviorOption", "Enable"),
                    legacy_param("AnalyticsLanguageLocaleCode", "en-US"),
                ],
                {"Success": "stream"},
            ),
            legacy_module(
                "stream",
                "StartMediaStreaming",
                [legacy_param("Track", "FromCustomer"), legacy_param("Track", "ToCustomer")],
                {"Success": "attrs", "Error": "attrs"},
            ),
            legacy_module(
                "attrs",
                "SetAttributes",
                [
                    legacy_param("Attribute", "Customer Number", key="caller", namespace="System"),
                    legacy_param("Attribute", "result", key="copied", namespace="External"),
                    legacy_param("Attribute", "2", key="n"),
                    legacy_param("Attribute", "my key", key="spaced", namespace="User Defined"),
                ],
                {"Success": "lambda", "Error": "lambda"},
            ),
            legacy_module(
                "lambda",
                "InvokeExternalResource",
                [
                    legacy_param(
                        "FunctionArn", "arn:aws:lambda:us-east-1:1:function:f", resourceName="f"
                    ),
                    legacy_param("TimeLimit", "5"),
                    legacy_param("Parameter", "Customer Number", key="who", namespace="System"),
                ],
                {"Success": "check", "Error": "check"},
                target="Lambda",
            ),
            legacy_module(
                "check",
                "CheckAttribute",
                [legacy_param("Attribute", "result"), legacy_param("Namespace", "External")],
                [
                    ("Evaluate", "menu"),
                    ("NoMatch", "menu"),
                ],
            ),
            legacy_module(
                "menu",
                "GetUserInput",
                [
                    legacy_param("Text", "Press 1"),
                    legacy_param("TextToSpeechType", "text"),
                    legacy_param("Timeout", "5"),
                ],
                [
                    ("Evaluate", "store"),
                    ("Timeout", "store"),
                    ("NoMatch", "store"),
                    ("Error", "store"),
                ],
            ),
            legacy_module(
                "store",
                "StoreUserInput",
                [
                    legacy_param("Text", "<speak>Your number</speak>"),
                    legacy_param("TextToSpeechType", "ssml"),
                    legacy_param("CustomerInputType", "PhoneNumber"),
                ],
                {"Success": "digits", "Error": "digits"},
            ),
            legacy_module(
                "digits",
                "StoreUserInput",
                [
                    legacy_param("AudioPrompt", f"{_ARN}/prompt/p", resourceName="Beep"),
                    legacy_param("MaxDigits", 4),
                ],
                {"Success": "loop", "Error": "loop"},
            ),
            legacy_module(
                "loop",
                "Loop",
                [legacy_param("LoopCount", "2")],
                {"Looping": "prompts", "Complete": "hours"},
            ),
            legacy_module(
                "prompts",
                "LoopPrompts",
                [legacy_param("Text", "Still there?")],
                {"Success": "loop", "Error": "loop"},
            ),
            legacy_module(
                "hours",
                "CheckHoursOfOperation",
                [legacy_param("Hours", f"{_ARN}/operating-hours/h", resourceName="Basic Hours")],
                {"True": "staff", "False": "staff", "Error": "staff"},
            ),
            legacy_module(
                "staff",
                "CheckStaffing",
                [
                    legacy_param("Status", "Available"),
                    legacy_param("Queue", f"{_ARN}/queue/q", resourceName="Q"),
                ],
                {"True": "queue", "False": "queue", "Error": "queue"},
            ),
            legacy_module(
                "queue",
                "SetQueue",
                [legacy_param("Queue", f"{_ARN}/queue/q", resourceName="BasicQueue")],
                {"Success": "hook", "Error": "hook"},
            ),
            legacy_module(
                "hook",
                "SetEventHook",
                [
                    legacy_param("Type", "CustomerQueue"),
                    legacy_param("ContactFlowId", "queue-flow", resourceName="q"),
                ],
                {"Success": "xfer", "Error": "xfer"},
            ),
            legacy_module(
                "xfer", "Transfer", [], {"AtCapacity": "toflow", "Error": "toflow"}, target="Queue"
            ),
            legacy_module(
                "toflow",
                "Transfer",
                [legacy_param("ContactFlowId", "legacy-every-module", resourceName="me")],
                {"Error": "say"},
                target="Flow",
            ),
            legacy_module(
                "say",
                "PlayPrompt",
                [legacy_param("Text", "Bye")],
                {"Success": "stop", "Error": "stop"},
            ),
            legacy_module(
                "stop",
                "StopMediaStreaming",
                [legacy_param("Track", "FromCustomer"), legacy_param("Track", "ToCustomer")],
                {"Success": "bye", "Error": "bye"},
            ),
            legacy_module("bye", "Disconnect", [], {}),
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
            legacy_module(
                "say",
                "PlayPrompt",
                [legacy_param("Text", "Connecting")],
                {"Success": "done", "Error": "end"},
            ),
            legacy_module("done", "Resume", [], {}),
            legacy_module("end", "EndFlowExecution", [], {}),
        ],
        "type": "agentWhisper",
        "start": "say",
        "metadata": {"name": "legacy-whisper"},
    }
