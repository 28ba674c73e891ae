"""The internal flow model both export formats load into.

A :class:`Flow` is a graph of :class:`Action` objects keyed by Identifier, entered at
``start_action``. Each action carries its raw ``parameters`` (as exported, JSON values), its
:class:`Transition` (``NextAction``, ``Errors[]``, ``Conditions[]``) and the designer metadata
the export keeps for it (``Metadata.ActionMetadata[<Identifier>]``), which is where a block's
friendly names live (a Lambda's display name, a queue's name).

Everything here is immutable; validation lives in :mod:`callstream.flows.loader`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "NO_MATCHING_CONDITION",
    "NO_MATCHING_ERROR",
    "Action",
    "Condition",
    "ConditionBranch",
    "ErrorBranch",
    "Flow",
    "FlowError",
    "FlowFormat",
    "FlowType",
    "Issue",
    "Transition",
]

NO_MATCHING_ERROR = "NoMatchingError"
"""The catch-all error type: taken when an error occurs and no other ErrorType matches."""
NO_MATCHING_CONDITION = "NoMatchingCondition"
"""The error type taken when no Condition evaluates true."""

FlowFormat = Literal["2019-10-30", "legacy"]


class FlowType(enum.Enum):
    """Connect flow types (API ``ContactFlowType`` values; ``export`` is the console name)."""

    CONTACT_FLOW = "contactFlow"
    CUSTOMER_QUEUE = "customerQueue"
    CUSTOMER_HOLD = "customerHold"
    CUSTOMER_WHISPER = "customerWhisper"
    AGENT_HOLD = "agentHold"
    AGENT_WHISPER = "agentWhisper"
    OUTBOUND_WHISPER = "outboundWhisper"
    AGENT_TRANSFER = "agentTransfer"
    QUEUE_TRANSFER = "queueTransfer"

    @property
    def export(self) -> str:
        """The name a console export uses in ``Metadata.type`` (e.g. ``contactFlow``)."""
        return self.value

    @classmethod
    def parse(cls, text: str) -> FlowType:
        """Accept the API name (``CONTACT_FLOW``) or the export name (``contactFlow``)."""
        for member in cls:
            if text in (member.name, member.value):
                return member
        raise ValueError(f"unknown flow type {text!r}")


@dataclass(frozen=True, slots=True)
class Issue:
    """One validation finding; ``action`` is the Identifier it concerns (None: the flow)."""

    message: str
    action: str | None = None

    def __str__(self) -> str:
        if self.action is None:
            return self.message
        return f"action {self.action!r}: {self.message}"


class FlowError(ValueError):
    """A flow that cannot be loaded or run; the message names the action Identifier.

    ``issues`` holds every error found (the message lists them all); ``action`` is the
    Identifier of the first one, or None when the problem concerns the whole flow.
    """

    def __init__(self, issues: list[Issue] | Issue | str, *, flow_name: str = "") -> None:
        if isinstance(issues, str):
            issues = [Issue(issues)]
        elif isinstance(issues, Issue):
            issues = [issues]
        self.issues: tuple[Issue, ...] = tuple(issues)
        self.action: str | None = self.issues[0].action if self.issues else None
        where = f"flow {flow_name!r}: " if flow_name else ""
        if len(self.issues) == 1:
            text = f"{where}{self.issues[0]}"
        else:
            lines = "\n".join(f"  - {issue}" for issue in self.issues)
            text = f"{where}{len(self.issues)} problems:\n{lines}"
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class Condition:
    """``{"Operator": ..., "Operands": [...]}``; operands are strings (possibly JSONPath)."""

    operator: str
    operands: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConditionBranch:
    """One entry of ``Transitions.Conditions``."""

    condition: Condition
    next_action: str


@dataclass(frozen=True, slots=True)
class ErrorBranch:
    """One entry of ``Transitions.Errors``."""

    error_type: str
    next_action: str


@dataclass(frozen=True, slots=True)
class Transition:
    """An action's ``Transitions`` object."""

    next_action: str | None = None
    errors: tuple[ErrorBranch, ...] = ()
    conditions: tuple[ConditionBranch, ...] = ()

    def on_error(self, error_type: str) -> str | None:
        """The target for ``error_type``: its own branch, else ``NoMatchingError``'s (the
        error "no other error matched"), else, for ``NoMatchingCondition`` only, the default
        ``NextAction`` that some exports and hand-written flows rely on; else None."""
        for branch in self.errors:
            if branch.error_type == error_type:
                return branch.next_action
        for branch in self.errors:
            if branch.error_type == NO_MATCHING_ERROR:
                return branch.next_action
        if error_type == NO_MATCHING_CONDITION:
            return self.next_action
        return None

    def targets(self) -> Iterator[tuple[str, str]]:
        """Every ``(label, target Identifier)``; labels: ``NextAction``, error type, condition."""
        if self.next_action is not None:
            yield "NextAction", self.next_action
        for cond in self.conditions:
            operands = ",".join(cond.condition.operands)
            yield f"Condition {cond.condition.operator}({operands})", cond.next_action
        for err in self.errors:
            yield f"Error {err.error_type}", err.next_action

    @property
    def is_empty(self) -> bool:
        """True for ``"Transitions": {}``."""
        return self.next_action is None and not self.errors and not self.conditions


@dataclass(frozen=True, slots=True)
class Action:
    """One flow block."""

    identifier: str
    type: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    transition: Transition = field(default_factory=Transition)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """``Metadata.ActionMetadata[<Identifier>]`` (designer data; never affects execution)."""

    def display_name(self, parameter: str) -> str | None:
        """The designer's friendly name for a resource parameter, if the export kept one.

        Reads ``parameters.<parameter>.displayName`` and, for ``QueueId``, ``queue.text``.
        """
        params = self.metadata.get("parameters")
        if isinstance(params, Mapping):
            entry = params.get(parameter)
            if isinstance(entry, Mapping):
                name = entry.get("displayName")
                if isinstance(name, str) and name:
                    return name
        if parameter == "QueueId":
            queue = self.metadata.get("queue")
            if isinstance(queue, Mapping):
                text = queue.get("text")
                if isinstance(text, str) and text:
                    return text
        return None

    @property
    def is_friendly_name(self) -> bool:
        """True when the designer marks the Identifier as a user-given name."""
        return bool(self.metadata.get("isFriendlyName"))


@dataclass(frozen=True, slots=True)
class Flow:
    """A loaded, validated flow."""

    start_action: str
    actions: Mapping[str, Action]
    name: str = ""
    type: FlowType = FlowType.CONTACT_FLOW
    description: str = ""
    format: FlowFormat = "2019-10-30"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """The export's top-level ``Metadata`` (legacy: ``metadata``), kept as exported."""
    warnings: tuple[Issue, ...] = ()
    """Findings that do not stop the flow from running (see the loader's policy)."""
    flow_id: str = ""
    """Optional id for :class:`~callstream.flows.registry.FlowRegistry` lookups."""
    arn: str = ""
    """Optional ARN (``...:instance/<id>/contact-flow/<flow id>``)."""

    def action(self, identifier: str) -> Action:
        """The action named ``identifier``; :class:`FlowError` when there is none."""
        try:
            return self.actions[identifier]
        except KeyError:
            raise FlowError(Issue("no such action", identifier), flow_name=self.name) from None

    @property
    def start(self) -> Action:
        """The StartAction."""
        return self.action(self.start_action)
