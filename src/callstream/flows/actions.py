"""The action table: every action type, its parameters and their restriction classes.

This is the one place that knows what an action type accepts. The loader validates against
it, the interpreter dispatches on ``ActionSpec.type`` and uses the same rules. Sources:
connect-flows.md §1.1-§1.3 (flow language reference pages) and §2 (flow types).

Parameter restriction classes (§1.1):

* ``STATIC`` - "must be defined statically": no JSONPath reference at all.
* ``PATH`` - "statically or as a single valid JSONPath identifier": if the value references
  anything it must be exactly one reference (``$.Attributes.x``) and nothing else.
* ``PATH_ONLY`` - "single JSONPath only" (``UpdateContactCallbackNumber``).
* ``DYNAMIC`` - "statically or dynamically": templated text, ``"Hi $.Attributes.name"``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from callstream.flows.model import NO_MATCHING_CONDITION, NO_MATCHING_ERROR, FlowType

__all__ = [
    "ACTIONS",
    "ALL_FLOW_TYPES",
    "OPERATORS",
    "ActionSpec",
    "Category",
    "ConditionRule",
    "Outcome",
    "Param",
    "Restriction",
    "spec_for",
]


class Restriction(enum.Enum):
    """How a parameter value may reference contact data (§1.1)."""

    STATIC = "must be defined statically"
    PATH = "must be static or a single JSONPath"
    PATH_ONLY = "must be a single JSONPath"
    DYNAMIC = "may be static or dynamic"


class Category(enum.Enum):
    """Action categories of the flow language (flow-language-concepts)."""

    CONTACT = "Contact actions"
    FLOW_CONTROL = "Flow control actions"
    INTERACTION = "Interactions"
    PARTICIPANT = "Participant actions"


class Outcome(enum.Enum):
    """How an action leaves on success."""

    NEXT = "NextAction"
    """Success goes to ``NextAction`` (required)."""
    CONDITIONS = "Conditions"
    """A result selects a Condition; no match takes ``NoMatchingCondition``."""
    NEXT_OR_CONDITIONS = "NextAction or Conditions"
    """Either (``GetParticipantInput``: Conditions unless StoreInput is True)."""
    EXIT = "exit"
    """Success leaves the flow (queued, transferred); ``NextAction`` optional."""
    TERMINAL = "terminal"
    """Ends the flow; ``"Transitions": {}``."""


ParamKind = Literal["text", "int", "choice", "map", "object", "list"]


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter rule."""

    restriction: Restriction = Restriction.STATIC
    required: bool = False
    kind: ParamKind = "text"
    choices: tuple[str, ...] = ()
    """``choice`` kind: the allowed values; ``list`` kind: allowed items (empty: any)."""
    minimum: int | None = None
    maximum: int | None = None
    check: Callable[[Any], str | None] | None = None
    """Extra shape check for ``object``/``list`` values; returns a problem or None."""


@dataclass(frozen=True, slots=True)
class ConditionRule:
    """Which condition operators an action accepts and which operands it requires."""

    operators: frozenset[str]
    required_operands: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """Everything the loader and interpreter know about one action type."""

    type: str
    category: Category
    outcome: Outcome
    params: Mapping[str, Param] | None = field(default_factory=dict)
    """None: parameters are not checked (known but not executed by callstream)."""
    errors: frozenset[str] | None = frozenset()
    """Error types the action can raise; None: not checked."""
    conditions: ConditionRule | None = None
    flow_types: frozenset[FlowType] = frozenset(FlowType)
    deterministic: bool = False
    """Success does not depend on runtime input (used to find unconditional endless loops)."""
    implemented: bool = True
    """False: known type the interpreter skips (logged, error branch if any)."""
    exactly_one_of: tuple[tuple[str, ...], ...] = ()
    at_most_one_of: tuple[tuple[str, ...], ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Alternative parameter spellings accepted as the canonical name (alias -> name)."""


OPERATORS: tuple[str, ...] = (
    "Equals",
    "TextStartsWith",
    "TextEndsWith",
    "TextContains",
    "NumberGreaterThan",
    "NumberGreaterOrEqualTo",
    "NumberLessThan",
    "NumberLessOrEqualTo",
)
"""Condition operators (§1.1), all taking one string operand."""

ALL_FLOW_TYPES = frozenset(FlowType)
_HOLD = frozenset({FlowType.CUSTOMER_HOLD, FlowType.AGENT_HOLD})
_NO_HOLD = ALL_FLOW_TYPES - _HOLD
_WHISPER = frozenset({FlowType.CUSTOMER_WHISPER, FlowType.AGENT_WHISPER, FlowType.OUTBOUND_WHISPER})
_ROUTING = frozenset(
    {
        FlowType.CONTACT_FLOW,
        FlowType.CUSTOMER_QUEUE,
        FlowType.AGENT_TRANSFER,
        FlowType.QUEUE_TRANSFER,
    }
)
_TRANSFERRING = frozenset({FlowType.CONTACT_FLOW, FlowType.AGENT_TRANSFER, FlowType.QUEUE_TRANSFER})
_END_FLOW = _WHISPER | _HOLD | {FlowType.CUSTOMER_QUEUE}

_ERR = frozenset({NO_MATCHING_ERROR})
_EQUALS = frozenset({"Equals"})
_NUMBER_OPS = frozenset(op for op in OPERATORS if op.startswith("Number"))


def _check_participants(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of {ParticipantType, MediaDirections}"
    for item in value:
        if not isinstance(item, Mapping):
            return "items must be objects"
        if item.get("ParticipantType") != "Customer":
            return "only ParticipantType 'Customer' is supported"
        dirs = item.get("MediaDirections")
        if not isinstance(dirs, list) or not dirs or any(d not in ("From", "To") for d in dirs):
            return "MediaDirections must be a non-empty list of 'From' / 'To'"
    return None


def _check_response_validation(value: Any) -> str | None:
    if not isinstance(value, Mapping) or value.get("ResponseType") not in ("STRING_MAP", "JSON"):
        return "ResponseType must be 'STRING_MAP' or 'JSON'"
    return None


def _check_media(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("Uri"), str):
        return "must be {Uri, SourceType: 'S3', MediaType: 'Audio'}"
    return None


def _check_object(value: Any) -> str | None:
    return None if isinstance(value, Mapping) else "must be an object"


def _whole(value: Any) -> int | None:
    """A whole number given as a number or a string, else None."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _check_recording(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be an object"
    who = value.get("RecordedParticipants")
    if who is not None and (
        not isinstance(who, list) or any(p not in ("Agent", "Customer") for p in who)
    ):
        return "RecordedParticipants must be a list of 'Agent' / 'Customer'"
    return None


def _check_input_validation(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be an object"
    phone = value.get("PhoneNumberValidation")
    if phone is not None and (
        not isinstance(phone, Mapping) or phone.get("NumberFormat", "E164") not in ("E164", "Local")
    ):
        return "PhoneNumberValidation must be {NumberFormat: 'E164' | 'Local'}"
    custom = value.get("CustomValidation")
    if custom is not None:
        length = custom.get("MaximumLength", 20) if isinstance(custom, Mapping) else None
        number = _whole(length)
        if number is None or number < 1:
            return "CustomValidation must be {MaximumLength: a whole number of digits >= 1}"
    return None


def _check_dtmf(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be an object"
    terminator = value.get("InputTerminationSequence")
    if terminator is not None and not isinstance(terminator, str):
        return "InputTerminationSequence must be a string"
    return None


def _check_event_hooks(value: Any) -> str | None:
    if not isinstance(value, Mapping) or len(value) != 1:
        return "must hold exactly one {EventType: flow}"
    return None


_PROMPT: dict[str, Param] = {
    "PromptId": Param(Restriction.PATH),
    "Text": Param(Restriction.DYNAMIC),
    "SSML": Param(Restriction.DYNAMIC),
    "Media": Param(kind="object", check=_check_media),
}
_PROMPT_KEYS = ("PromptId", "Text", "SSML", "Media")


def _spec(*specs: ActionSpec) -> dict[str, ActionSpec]:
    return {spec.type: spec for spec in specs}


def _known(
    type_: str, category: Category, outcome: Outcome = Outcome.NEXT_OR_CONDITIONS
) -> ActionSpec:
    return ActionSpec(type_, category, outcome, params=None, errors=None, implemented=False)


ACTIONS: Mapping[str, ActionSpec] = _spec(
    # --- contact actions -------------------------------------------------------------------
    ActionSpec(
        "UpdateContactMediaStreamingBehavior",
        Category.CONTACT,
        Outcome.NEXT,
        params={
            "MediaStreamingState": Param(
                required=True, kind="choice", choices=("Enabled", "Disabled")
            ),
            "Participants": Param(kind="list", check=_check_participants),
            "MediaStreamType": Param(kind="choice", choices=("Audio",)),
        },
        errors=_ERR,
        flow_types=_NO_HOLD,
        deterministic=True,
    ),
    ActionSpec(
        "UpdateContactAttributes",
        Category.CONTACT,
        Outcome.NEXT,
        params={
            "Attributes": Param(Restriction.DYNAMIC, required=True, kind="map"),
            "TargetContact": Param(kind="choice", choices=("Current", "Related")),
        },
        errors=_ERR,
        deterministic=True,
    ),
    ActionSpec(
        "UpdateContactTargetQueue",
        Category.CONTACT,
        Outcome.NEXT,
        params={"QueueId": Param(Restriction.PATH), "AgentId": Param(Restriction.PATH)},
        errors=_ERR,
        flow_types=_ROUTING,
        deterministic=True,
        exactly_one_of=(("QueueId", "AgentId"),),
    ),
    ActionSpec(
        "TransferContactToQueue",
        Category.CONTACT,
        Outcome.EXIT,
        errors=frozenset({"QueueAtCapacity", NO_MATCHING_ERROR}),
        flow_types=_TRANSFERRING,
    ),
    ActionSpec(
        "DequeueContactAndTransferToQueue",
        Category.CONTACT,
        Outcome.EXIT,
        params={"QueueId": Param(Restriction.PATH), "AgentId": Param(Restriction.PATH)},
        errors=frozenset({"QueueAtCapacity", NO_MATCHING_ERROR}),
        flow_types=frozenset({FlowType.CUSTOMER_QUEUE}),
        exactly_one_of=(("QueueId", "AgentId"),),
    ),
    ActionSpec(
        "UpdateContactRecordingBehavior",
        Category.CONTACT,
        Outcome.NEXT,
        params={
            "RecordingBehavior": Param(kind="object", check=_check_recording),
            "AnalyticsBehavior": Param(kind="object", check=_check_object),
        },
        flow_types=_NO_HOLD,
        deterministic=True,
    ),
    ActionSpec(
        "UpdateContactTextToSpeechVoice",
        Category.CONTACT,
        Outcome.NEXT,
        params={
            "TextToSpeechVoice": Param(required=True),
            "TextToSpeechEngine": Param(),
            "TextToSpeechStyle": Param(),
        },
        errors=_ERR,
        deterministic=True,
    ),
    ActionSpec(
        "UpdateContactEventHooks",
        Category.CONTACT,
        Outcome.NEXT,
        params={"EventHooks": Param(kind="object", required=True, check=_check_event_hooks)},
        errors=_ERR,
        flow_types=_ROUTING,
        deterministic=True,
    ),
    ActionSpec(
        "UpdateContactRoutingBehavior",
        Category.CONTACT,
        Outcome.NEXT,
        params={
            "QueuePriority": Param(Restriction.PATH, kind="int", minimum=1, maximum=9_223_372_036),
            "QueueTimeAdjustmentSeconds": Param(Restriction.PATH, kind="int"),
        },
        errors=_ERR,
        flow_types=_ROUTING,
        deterministic=True,
        exactly_one_of=(("QueuePriority", "QueueTimeAdjustmentSeconds"),),
    ),
    ActionSpec(
        "UpdateContactCallbackNumber",
        Category.CONTACT,
        Outcome.NEXT,
        params={"CallbackNumber": Param(Restriction.PATH_ONLY, required=True)},
        errors=frozenset({"InvalidCallbackNumber", "CallbackNumberNotDialable", NO_MATCHING_ERROR}),
        flow_types=_ROUTING,
    ),
    # --- flow control ----------------------------------------------------------------------
    ActionSpec(
        "UpdateFlowLoggingBehavior",
        Category.FLOW_CONTROL,
        Outcome.NEXT,
        params={
            "FlowLoggingBehavior": Param(
                required=True, kind="choice", choices=("Enabled", "Disabled")
            )
        },
        deterministic=True,
    ),
    ActionSpec(
        "Compare",
        Category.FLOW_CONTROL,
        Outcome.CONDITIONS,
        params={"ComparisonValue": Param(Restriction.PATH, required=True)},
        errors=frozenset({NO_MATCHING_CONDITION, NO_MATCHING_ERROR}),
        conditions=ConditionRule(frozenset(OPERATORS)),
    ),
    ActionSpec(
        "Loop",
        Category.FLOW_CONTROL,
        Outcome.CONDITIONS,
        params={
            "LoopCount": Param(Restriction.PATH, required=True, kind="int", minimum=0, maximum=100)
        },
        conditions=ConditionRule(_EQUALS, ("ContinueLooping", "DoneLooping")),
    ),
    ActionSpec(
        "Wait",
        Category.FLOW_CONTROL,
        Outcome.CONDITIONS,
        params={
            "TimeoutSeconds": Param(
                Restriction.PATH, required=True, kind="int", minimum=1, maximum=604_800
            ),
            "Events": Param(
                kind="list", choices=("CustomerReturned", "BotParticipantDisconnected")
            ),
        },
        errors=frozenset({NO_MATCHING_ERROR, "ParticipantNotFound"}),
        conditions=ConditionRule(_EQUALS, ("WaitCompleted",)),
    ),
    ActionSpec(
        "CheckHoursOfOperation",
        Category.FLOW_CONTROL,
        Outcome.CONDITIONS,
        params={"HoursOfOperationId": Param(Restriction.PATH)},
        errors=_ERR,
        conditions=ConditionRule(_EQUALS, ("True", "False")),
        flow_types=_ROUTING,
    ),
    ActionSpec(
        "DistributeByPercentage",
        Category.FLOW_CONTROL,
        Outcome.CONDITIONS,
        errors=frozenset({NO_MATCHING_CONDITION, NO_MATCHING_ERROR}),
        conditions=ConditionRule(frozenset({"NumberLessThan"})),
    ),
    ActionSpec(
        "CheckMetricData",
        Category.FLOW_CONTROL,
        Outcome.CONDITIONS,
        params={
            "MetricType": Param(
                required=True,
                kind="choice",
                choices=(
                    "NumberOfAgentsAvailable",
                    "NumberOfAgentsStaffed",
                    "NumberOfAgentsOnline",
                    "OldestContactInQueueAgeSeconds",
                    "NumberOfContactsInQueue",
                ),
            ),
            "QueueId": Param(Restriction.PATH),
            "AgentId": Param(Restriction.PATH),
        },
        errors=frozenset({NO_MATCHING_CONDITION, NO_MATCHING_ERROR}),
        conditions=ConditionRule(_NUMBER_OPS | _EQUALS),
        flow_types=_ROUTING,
        at_most_one_of=(("QueueId", "AgentId"),),
    ),
    ActionSpec(
        "TransferToFlow",
        Category.FLOW_CONTROL,
        Outcome.EXIT,
        params={"ContactFlowId": Param(Restriction.PATH, required=True)},
        errors=_ERR,
        flow_types=_TRANSFERRING,
    ),
    ActionSpec(
        "EndFlowExecution",
        Category.FLOW_CONTROL,
        Outcome.TERMINAL,
        flow_types=_END_FLOW,
    ),
    # --- interactions ----------------------------------------------------------------------
    ActionSpec(
        "InvokeLambdaFunction",
        Category.INTERACTION,
        Outcome.NEXT,
        params={
            "LambdaFunctionARN": Param(Restriction.DYNAMIC, required=True),
            "InvocationTimeLimitSeconds": Param(kind="int", minimum=1, maximum=8),
            "LambdaInvocationAttributes": Param(Restriction.DYNAMIC, kind="map"),
            "ResponseValidation": Param(kind="object", check=_check_response_validation),
            "InvocationType": Param(kind="choice", choices=("SYNCHRONOUS", "ASYNCHRONOUS")),
        },
        errors=_ERR,
    ),
    # --- participant actions ---------------------------------------------------------------
    ActionSpec(
        "MessageParticipant",
        Category.PARTICIPANT,
        Outcome.NEXT,
        params=_PROMPT,
        errors=_ERR,
        deterministic=True,
        exactly_one_of=(_PROMPT_KEYS,),
    ),
    ActionSpec(
        "GetParticipantInput",
        Category.PARTICIPANT,
        Outcome.NEXT_OR_CONDITIONS,
        params={
            **_PROMPT,
            "InputTimeLimitSeconds": Param(kind="int", minimum=1, maximum=180),
            "StoreInput": Param(kind="choice", choices=("True", "False")),
            "InputValidation": Param(kind="object", check=_check_input_validation),
            "InputEncryption": Param(kind="object", check=_check_object),
            "DTMFConfiguration": Param(kind="object", check=_check_dtmf),
        },
        errors=frozenset(
            {
                NO_MATCHING_ERROR,
                NO_MATCHING_CONDITION,
                "InvalidPhoneNumber",
                "InputTimeLimitExceeded",
            }
        ),
        conditions=ConditionRule(_EQUALS),
        flow_types=_ROUTING,
        at_most_one_of=(_PROMPT_KEYS,),
        aliases={"InputTimeoutSeconds": "InputTimeLimitSeconds"},
    ),
    ActionSpec(
        "DisconnectParticipant",
        Category.PARTICIPANT,
        Outcome.TERMINAL,
        flow_types=_ROUTING,
    ),
    # --- known, not executed ---------------------------------------------------------------
    _known("ConnectParticipantWithLexBot", Category.PARTICIPANT, Outcome.CONDITIONS),
    _known("MessageParticipantIteratively", Category.PARTICIPANT),
    _known("TransferParticipantToThirdParty", Category.PARTICIPANT, Outcome.EXIT),
    _known("TransferContactToAgent", Category.CONTACT, Outcome.EXIT),
    _known("UpdatePreviousContactParticipantState", Category.CONTACT),
    _known("UpdateContactRecordingAndAnalyticsBehavior", Category.CONTACT),
    _known("CompleteOutboundCall", Category.CONTACT),
    _known("GetMetricData", Category.FLOW_CONTROL),
    _known("CheckOutboundCallStatus", Category.FLOW_CONTROL, Outcome.CONDITIONS),
    _known("CheckVoiceId", Category.FLOW_CONTROL, Outcome.CONDITIONS),
    _known("StartVoiceIdStream", Category.FLOW_CONTROL),
    _known("CreateCallbackContact", Category.INTERACTION),
    _known("CreateCustomerProfile", Category.INTERACTION),
    _known("GetCustomerProfile", Category.INTERACTION),
    _known("UpdateCustomerProfile", Category.INTERACTION),
    _known("CreateTask", Category.CONTACT),
    _known("TagContact", Category.CONTACT),
    _known("UpdateContactData", Category.CONTACT),
    _known("UpdateFlowAttributes", Category.FLOW_CONTROL),
    _known("UpdateRoutingCriteria", Category.CONTACT),
    _known("InvokeFlowModule", Category.FLOW_CONTROL),
    _known("CreateWisdomSession", Category.INTERACTION),
    _known("CreateCase", Category.INTERACTION),
)
"""Every action type callstream knows, keyed by ``Type``."""


def spec_for(action_type: str) -> ActionSpec | None:
    """The :class:`ActionSpec` for ``action_type``, or None when the type is unknown."""
    return ACTIONS.get(action_type)
