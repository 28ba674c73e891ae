"""Load and validate flows: the 2019-10-30 flow language and the legacy export format.

:func:`load_flow` accepts a parsed JSON object, JSON text or a path, detects the format
(``Actions`` + ``Version`` vs. legacy ``modules``; connect-flows.md §1.1, §1.4), maps both onto
:mod:`callstream.flows.model` and validates against :data:`callstream.flows.actions.ACTIONS`.

Validation policy. **Errors** (raise one :class:`FlowError` listing every problem, each naming
the action Identifier):

* the document: not UTF-8 JSON text, empty, nested more than :data:`MAX_DEPTH` levels, a
  string holding a lone UTF-16 surrogate (``"\\ud800"``), not an object, unknown format,
  ``Version`` other than ``2019-10-30``, no ``Actions``, more than 250 actions,
  ``StartAction`` missing or naming no action; legacy ``modules`` whose ``id``, ``type``,
  ``parameters`` or ``branches`` have the wrong JSON type (naming the module id);
* an action: missing/empty/duplicate ``Identifier``, ``Parameters`` / ``Transitions`` /
  ``Errors`` / ``Conditions`` of the wrong JSON type, missing or unknown ``Type`` (a legacy
  module type such as ``StartMediaStreaming`` in the new format gets a hint), a type not
  allowed in the flow's type (§2), a required parameter missing, a parameter of the wrong
  shape / out of range / not one of its values, a JSONPath where the parameter must be static,
  templated text where it must be a single JSONPath, a JSONPath with an unknown root there,
  mutually exclusive parameters (``Text`` and ``SSML``), a condition with an unknown or
  disallowed operator or not exactly one string operand, required condition operands missing
  (Loop ``ContinueLooping``/``DoneLooping``, CheckHoursOfOperation ``True``/``False``, Wait
  ``WaitCompleted``), no ``NextAction`` where success needs one, no Conditions where the
  result needs them;
* the graph: a transition naming no action (dangling), an action no path from the
  StartAction reaches (unreachable; a warning with ``strict=False``), and endless paths: an
  action from which no terminal action (DisconnectParticipant, EndFlowExecution) or flow exit
  (a transfer) can be reached, or a cycle made only of blocks that always succeed
  (Play prompt, Set attributes, ...), i.e. with no Loop, Wait, input, Lambda or condition to
  leave it. In customer-queue and hold flows, which loop until Connect interrupts them,
  endless paths are warnings.

**Warnings** (``Flow.warnings``; the flow still runs): unknown parameters, error types the
action never raises, a missing ``NoMatchingError`` / ``NoMatchingCondition`` branch (at run
time such an error ends the contact), transitions on a terminal action, Identifiers longer
than 50 characters or using characters the current docs forbid, known action types callstream
does not execute (at run time they take their error branch), JSONPath roots callstream does
not know inside templated text.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from callstream.flows.actions import ACTIONS, OPERATORS, ActionSpec, Outcome
from callstream.flows.jsonpath import check_restriction, parse_reference
from callstream.flows.model import (
    NO_MATCHING_CONDITION,
    NO_MATCHING_ERROR,
    Action,
    Condition,
    ConditionBranch,
    ErrorBranch,
    Flow,
    FlowError,
    FlowFormat,
    FlowType,
    Issue,
    Transition,
)

__all__ = ["FLOW_VERSION", "LEGACY_TYPES", "MAX_ACTIONS", "load_flow", "parse_flow", "validate"]

FLOW_VERSION = "2019-10-30"
MAX_ACTIONS = 250
MAX_IDENTIFIER = 50
MAX_DEPTH = 64
"""Deepest JSON nesting accepted (exports nest about ten levels)."""
_FORBIDDEN_ID_CHARS = set("%:(\\/)=$,;[]{}")
_RESERVED_IDS = {
    "__proto__",
    "constructor",
    "__defineGetter__",
    "__defineSetter__",
    "toString",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toLocaleString",
    "valueOf",
}
_LOOPING_FLOW_TYPES = {FlowType.CUSTOMER_QUEUE, FlowType.CUSTOMER_HOLD, FlowType.AGENT_HOLD}

FlowSource = Mapping[str, Any] | str | bytes | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# entry point


def load_flow(
    source: FlowSource,
    *,
    flow_type: FlowType | str | None = None,
    name: str | None = None,
    flow_id: str = "",
    arn: str = "",
    strict: bool = True,
) -> Flow:
    """Load, map and validate a flow; raise :class:`FlowError` naming the action on errors.

    ``source``: a parsed JSON object; ``bytes`` or a ``str`` starting with ``{`` (JSON
    text); otherwise a path. ``flow_type`` overrides the type the export declares
    (``Metadata.type``; default contact flow). ``name``/``flow_id``/``arn`` identify the flow
    for :class:`~callstream.flows.registry.FlowRegistry` (the name defaults to the export's).
    ``strict=False`` downgrades unreachable actions to warnings.
    """
    obj = _read(source)
    flow = parse_flow(obj, flow_type=flow_type, name=name, flow_id=flow_id, arn=arn)
    warnings = validate(flow, strict=strict)
    return Flow(
        start_action=flow.start_action,
        actions=flow.actions,
        name=flow.name,
        type=flow.type,
        description=flow.description,
        format=flow.format,
        metadata=flow.metadata,
        warnings=(*flow.warnings, *warnings),
        flow_id=flow.flow_id,
        arn=flow.arn,
    )


def _read(source: FlowSource) -> Any:
    if isinstance(source, Mapping):
        _check_tree(source)
        return source
    if not isinstance(source, str | bytes | os.PathLike):
        raise FlowError("a flow must be a JSON object, JSON text or a path")
    if isinstance(source, bytes):
        where = "flow JSON"
        text = _decode(source, where)
    elif isinstance(source, str) and source.lstrip("\ufeff \t\r\n").startswith("{"):
        text = source.lstrip("\ufeff")
        where = "flow JSON"
    else:
        path = Path(source)
        where = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FlowError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:  # a NUL in the path
            raise FlowError(f"cannot read {str(path)!r}: {exc}") from exc
        text = _decode(data, where)
    if not text.strip():
        raise FlowError(f"{where} is empty")
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise FlowError(f"{where} is not valid JSON: {exc}") from exc
    except ValueError as exc:  # an integer with more digits than Python converts
        raise FlowError(f"{where} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise FlowError(f"{where} is nested more than {MAX_DEPTH} levels deep") from None
    _check_tree(obj)
    return obj


def _decode(data: bytes, where: str) -> str:
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        raise FlowError(
            f"{where} is not UTF-8 text: byte 0x{data[offset]:02x} at byte offset {offset}"
        ) from None


def _no_constant(name: str) -> Any:
    raise FlowError(f"flow JSON is not valid JSON: {name} is not a JSON number")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_tree(obj: Any) -> None:
    """Reject what JSON text allows but a flow cannot carry: nesting deeper than
    :data:`MAX_DEPTH` (later recursive walks would overflow) and lone UTF-16 surrogates
    (``"\\ud800"``: not Unicode text, so no stream name, payload or log could hold them)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(obj, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise FlowError(_at_path(obj, path, f"nested more than {MAX_DEPTH} levels deep"))
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise FlowError(_at_path(obj, path, "holds a lone UTF-16 surrogate (not text)"))
        elif isinstance(node, Mapping):
            for key, value in node.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise FlowError(
                        _at_path(obj, path, f"key {key!r} holds a lone UTF-16 surrogate")
                    )
                stack.append((value, (*path, str(key))))
        elif isinstance(node, list | tuple):
            stack.extend((value, (*path, i)) for i, value in enumerate(node))


def _at_path(obj: Any, path: tuple[str | int, ...], problem: str) -> Issue:
    """An Issue for ``problem`` at ``path``, naming the action when it is inside one."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    ident: str | None = None
    if len(path) >= 2 and path[0] in ("Actions", "modules") and isinstance(path[1], int):
        with contextlib.suppress(LookupError, TypeError, AttributeError):
            found = obj[path[0]][path[1]].get("Identifier" if path[0] == "Actions" else "id")
            ident = found if isinstance(found, str) and not _SURROGATE.search(found) else None
    return Issue(f"{text or 'the document'} {problem}", ident)


# --------------------------------------------------------------------------------------------
# parsing (structure only)


def parse_flow(
    obj: Any,
    *,
    flow_type: FlowType | str | None = None,
    name: str | None = None,
    flow_id: str = "",
    arn: str = "",
) -> Flow:
    """Map either export format onto a :class:`Flow` without semantic validation.

    Structural problems (missing Identifier, malformed Transitions, ...) still raise
    :class:`FlowError`; :func:`validate` checks the rest.
    """
    if not isinstance(obj, Mapping):
        raise FlowError("a flow must be a JSON object")
    fmt: FlowFormat = "2019-10-30"
    if "modules" in obj and "Actions" not in obj:
        obj = _legacy_to_modern(obj)
        fmt = "legacy"
    elif "Actions" not in obj:
        raise FlowError("not a Connect flow: no 'Actions' (2019-10-30) or 'modules' (legacy)")
    elif obj.get("Version") != FLOW_VERSION:
        raise FlowError(
            f"unsupported flow language Version {obj.get('Version')!r} (expected {FLOW_VERSION!r})"
        )

    metadata = obj.get("Metadata") or {}
    if not isinstance(metadata, Mapping):
        metadata = {}
    flow_name = name if name is not None else str(metadata.get("name") or "")
    errors: list[Issue] = []
    warnings: list[Issue] = []

    if flow_type is None:
        declared = metadata.get("type")
        try:
            ftype = FlowType.parse(declared) if isinstance(declared, str) else FlowType.CONTACT_FLOW
        except ValueError:
            warnings.append(Issue(f"unknown Metadata.type {declared!r}; running as a contact flow"))
            ftype = FlowType.CONTACT_FLOW
    elif isinstance(flow_type, FlowType):
        ftype = flow_type
    else:
        try:
            ftype = FlowType.parse(flow_type)
        except ValueError as exc:
            raise FlowError(str(exc), flow_name=flow_name) from None

    raw_actions = obj.get("Actions")
    if not isinstance(raw_actions, list) or not raw_actions:
        raise FlowError("'Actions' must be a non-empty list", flow_name=flow_name)
    if len(raw_actions) > MAX_ACTIONS:
        errors.append(Issue(f"{len(raw_actions)} actions; a flow holds at most {MAX_ACTIONS}"))

    action_meta = metadata.get("ActionMetadata") or {}
    if not isinstance(action_meta, Mapping):
        action_meta = {}

    actions: dict[str, Action] = {}
    broken: set[str] = set()
    for index, raw in enumerate(raw_actions):
        action = _parse_action(raw, index, action_meta, errors)
        if action is None:
            if isinstance(raw, Mapping) and isinstance(raw.get("Identifier"), str):
                broken.add(raw["Identifier"])  # already reported
            continue
        if action.identifier in actions:
            errors.append(Issue("duplicate Identifier", action.identifier))
            continue
        actions[action.identifier] = action

    start = obj.get("StartAction")
    if not isinstance(start, str) or not start:
        errors.append(Issue("StartAction is missing"))
        start = ""
    elif start not in actions and start not in broken:
        errors.append(Issue(f"StartAction {start!r} names no action"))

    if errors:
        raise FlowError(errors, flow_name=flow_name)
    return Flow(
        start_action=start,
        actions=actions,
        name=flow_name,
        type=ftype,
        description=str(metadata.get("description") or ""),
        format=fmt,
        metadata=metadata,
        warnings=tuple(warnings),
        flow_id=flow_id,
        arn=arn,
    )


def _parse_action(
    raw: Any, index: int, action_meta: Mapping[str, Any], errors: list[Issue]
) -> Action | None:
    if not isinstance(raw, Mapping):
        errors.append(Issue(f"Actions[{index}] is not an object"))
        return None
    ident = raw.get("Identifier")
    if not isinstance(ident, str) or not ident:
        errors.append(Issue(f"Actions[{index}] has no Identifier"))
        return None
    type_ = raw.get("Type")
    if not isinstance(type_, str) or not type_:
        errors.append(Issue("has no Type", ident))
        return None
    params = raw.get("Parameters", {})
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        errors.append(Issue("Parameters must be an object", ident))
        return None
    spec = ACTIONS.get(type_)
    # null is "not given" (validation treats it so), so the interpreter never sees it
    aliases = spec.aliases if spec is not None else {}
    params = {aliases.get(k, k): v for k, v in params.items() if v is not None}
    transition = _parse_transitions(raw.get("Transitions", {}), ident, errors)
    if transition is None:
        return None
    meta = action_meta.get(ident, {})
    return Action(
        identifier=ident,
        type=type_,
        parameters=dict(params),
        transition=transition,
        metadata=meta if isinstance(meta, Mapping) else {},
    )


def _parse_transitions(raw: Any, ident: str, errors: list[Issue]) -> Transition | None:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        errors.append(Issue("Transitions must be an object", ident))
        return None
    ok = True
    nxt = raw.get("NextAction")
    if nxt is not None and (not isinstance(nxt, str) or not nxt):
        errors.append(Issue("Transitions.NextAction must be an action Identifier", ident))
        ok = False
    err_branches: list[ErrorBranch] = []
    raw_errors = _list_field(raw, "Errors", ident, errors)
    raw_conditions = _list_field(raw, "Conditions", ident, errors)
    if raw_errors is None or raw_conditions is None:
        return None
    for i, item in enumerate(raw_errors):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("ErrorType"), str)
            or not isinstance(item.get("NextAction"), str)
        ):
            errors.append(Issue(f"Transitions.Errors[{i}] needs ErrorType and NextAction", ident))
            ok = False
            continue
        err_branches.append(ErrorBranch(item["ErrorType"], item["NextAction"]))
    cond_branches: list[ConditionBranch] = []
    for i, item in enumerate(raw_conditions):
        cond = item.get("Condition") if isinstance(item, Mapping) else None
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("NextAction"), str)
            or not isinstance(cond, Mapping)
        ):
            errors.append(
                Issue(f"Transitions.Conditions[{i}] needs NextAction and Condition", ident)
            )
            ok = False
            continue
        operands = cond.get("Operands")
        if not isinstance(operands, list):
            operands = []
        cond_branches.append(
            ConditionBranch(
                Condition(
                    str(cond.get("Operator", "")),
                    tuple(o if isinstance(o, str) else json.dumps(o) for o in operands),
                ),
                item["NextAction"],
            )
        )
        if not all(isinstance(o, str) for o in operands) or len(operands) != 1:
            errors.append(
                Issue(f"Transitions.Conditions[{i}] needs exactly one string operand", ident)
            )
            ok = False
    if not ok:
        return None
    return Transition(nxt, tuple(err_branches), tuple(cond_branches))


def _list_field(
    raw: Mapping[str, Any], key: str, ident: str, errors: list[Issue]
) -> list[Any] | None:
    """``Transitions.<key>``: a list (missing or null: empty); None after reporting."""
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(Issue(f"Transitions.{key} must be a list", ident))
        return None
    return value


# --------------------------------------------------------------------------------------------
# validation


def validate(flow: Flow, *, strict: bool = True) -> tuple[Issue, ...]:
    """Validate a parsed flow; raise :class:`FlowError` on errors, return the warnings."""
    errors: list[Issue] = []
    warnings: list[Issue] = []
    for action in flow.actions.values():
        _check_action(flow, action, errors, warnings)
    _check_graph(flow, errors, warnings, strict)
    if errors:
        raise FlowError(errors, flow_name=flow.name)
    return tuple(warnings)


_LEGACY_HINTS = {
    "StartMediaStreaming": "UpdateContactMediaStreamingBehavior (MediaStreamingState Enabled)",
    "StopMediaStreaming": "UpdateContactMediaStreamingBehavior (MediaStreamingState Disabled)",
    "SetLoggingBehavior": "UpdateFlowLoggingBehavior",
    "SetAttributes": "UpdateContactAttributes",
    "PlayPrompt": "MessageParticipant",
    "Disconnect": "DisconnectParticipant",
    "InvokeExternalResource": "InvokeLambdaFunction",
}


def _check_action(flow: Flow, action: Action, errors: list[Issue], warnings: list[Issue]) -> None:
    ident = action.identifier
    if len(ident) > MAX_IDENTIFIER:
        warnings.append(Issue(f"Identifier longer than {MAX_IDENTIFIER} characters", ident))
    if _FORBIDDEN_ID_CHARS & set(ident) or ident in _RESERVED_IDS:
        warnings.append(
            Issue("Identifier uses characters or a name the current docs forbid", ident)
        )

    spec = ACTIONS.get(action.type)
    if spec is None:
        hint = _LEGACY_HINTS.get(action.type)
        more = f" ({action.type} is a legacy module type; use {hint})" if hint else ""
        errors.append(Issue(f"unknown action type {action.type!r}{more}", ident))
        return
    if not spec.implemented:
        warnings.append(
            Issue(f"{action.type} is not executed by callstream; it takes its error branch", ident)
        )
    if flow.type not in spec.flow_types:
        errors.append(Issue(f"{action.type} is not allowed in a {flow.type.export} flow", ident))
    if spec.params is not None:
        _check_parameters(action, spec, errors, warnings)
    _check_transitions(action, spec, errors, warnings)


def _present(params: Mapping[str, Any], key: str) -> bool:
    return key in params and params[key] is not None


def _check_parameters(
    action: Action, spec: ActionSpec, errors: list[Issue], warnings: list[Issue]
) -> None:
    ident = action.identifier
    params = action.parameters
    rules = spec.params or {}
    for key in params:
        if key not in rules:
            warnings.append(Issue(f"unknown parameter {key!r} for {action.type} (ignored)", ident))
    for key, rule in rules.items():
        if not _present(params, key):
            if rule.required:
                errors.append(Issue(f"required parameter {key!r} is missing", ident))
            continue
        value = params[key]
        problem = _check_value(value, rule.kind, rule.choices, rule.minimum, rule.maximum)
        if problem is None and rule.check is not None:
            problem = rule.check(value)
        if problem is None and rule.kind in ("text", "int", "map"):
            problem, notes = check_restriction(value, rule.restriction)
            warnings.extend(Issue(f"parameter {key!r}: {note}", ident) for note in notes)
        if problem is not None:
            errors.append(Issue(f"parameter {key!r} {problem}", ident))
    for group in spec.exactly_one_of:
        present = [k for k in group if _present(params, k)]
        if len(present) != 1:
            errors.append(
                Issue(f"needs exactly one of {', '.join(group)} (found {len(present)})", ident)
            )
    for group in spec.at_most_one_of:
        present = [k for k in group if _present(params, k)]
        if len(present) > 1:
            errors.append(Issue(f"takes at most one of {', '.join(present)}", ident))


def _check_value(
    value: Any, kind: str, choices: tuple[str, ...], minimum: int | None, maximum: int | None
) -> str | None:
    if kind == "text":
        return None if isinstance(value, str) else "must be a string"
    if kind == "choice":
        if value not in choices:
            return f"must be one of {', '.join(choices)} (got {value!r})"
        return None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, str | int):
            return "must be an integer (as a string or number)"
        if isinstance(value, str) and parse_reference(value) is not None:
            return None
        try:
            number = int(str(value).strip())
        except ValueError:
            return f"must be an integer (got {value!r})"
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            return f"must be between {minimum} and {maximum} (got {number})"
        return None
    if kind == "map":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return "must be an object of string values"
        return None
    if kind == "list":
        if not isinstance(value, list):
            return "must be a list"
        if choices and any(item not in choices for item in value):
            return f"items must be among {', '.join(choices)}"
        return None
    return None  # object: checked by the rule's own check


def _check_transitions(
    action: Action, spec: ActionSpec, errors: list[Issue], warnings: list[Issue]
) -> None:
    ident = action.identifier
    tr = action.transition
    if spec.outcome is Outcome.TERMINAL:
        if not tr.is_empty:
            warnings.append(
                Issue(f"{action.type} ends the flow; its Transitions are ignored", ident)
            )
        return
    if spec.implemented:
        if spec.outcome is Outcome.NEXT and tr.next_action is None:
            errors.append(Issue("has no Transitions.NextAction", ident))
        if spec.outcome is Outcome.CONDITIONS and not tr.conditions:
            errors.append(Issue(f"{action.type} needs Transitions.Conditions", ident))
        if spec.outcome is Outcome.NEXT_OR_CONDITIONS:
            store = str(action.parameters.get("StoreInput", "False")) == "True"
            if store and tr.next_action is None:
                errors.append(Issue("StoreInput is True but there is no NextAction", ident))
            if not store and not tr.conditions:
                errors.append(Issue("StoreInput is False but there are no Conditions", ident))

    rule = spec.conditions
    if tr.conditions and rule is None and spec.implemented:
        warnings.append(
            Issue(f"{action.type} has no results to compare; Conditions ignored", ident)
        )
    for branch in tr.conditions:
        op = branch.condition.operator
        if op not in OPERATORS:
            errors.append(Issue(f"unknown condition operator {op!r}", ident))
        elif rule is not None and op not in rule.operators:
            errors.append(Issue(f"{action.type} does not support operator {op!r}", ident))
    if rule is not None:
        have = {b.condition.operands[0] for b in tr.conditions if b.condition.operator == "Equals"}
        missing = [operand for operand in rule.required_operands if operand not in have]
        if missing:
            errors.append(
                Issue(f"{action.type} needs Conditions for {', '.join(map(repr, missing))}", ident)
            )

    if spec.errors is not None:
        seen: set[str] = set()
        for err in tr.errors:
            if err.error_type in seen:
                warnings.append(Issue(f"duplicate error branch {err.error_type!r}", ident))
            seen.add(err.error_type)
            if err.error_type not in spec.errors:
                warnings.append(
                    Issue(f"{action.type} never raises {err.error_type!r} (branch unused)", ident)
                )
        for needed in (NO_MATCHING_ERROR, NO_MATCHING_CONDITION):
            if needed in spec.errors and needed not in seen and spec.implemented:
                if (
                    needed == NO_MATCHING_CONDITION
                    and spec.outcome is Outcome.NEXT_OR_CONDITIONS
                    and str(action.parameters.get("StoreInput", "False")) == "True"
                ):
                    continue
                warnings.append(
                    Issue(f"no {needed} branch: such an error disconnects the contact", ident)
                )


def _check_graph(flow: Flow, errors: list[Issue], warnings: list[Issue], strict: bool) -> None:
    actions = flow.actions
    edges: dict[str, list[str]] = {}
    for ident, action in actions.items():
        targets: list[str] = []
        for label, target in action.transition.targets():
            if target not in actions:
                errors.append(Issue(f"{label} names no action {target!r} (dangling)", ident))
            elif target not in targets:
                targets.append(target)
        spec = ACTIONS.get(action.type)
        if spec is not None and spec.outcome is Outcome.TERMINAL:
            targets = []
        edges[ident] = targets

    if flow.start_action not in actions:
        return
    complete = not errors and all(a.type in ACTIONS for a in actions.values())
    reach_order = _bfs([flow.start_action], edges)
    reachable = set(reach_order)
    for ident in actions:
        if ident not in reachable:
            issue = Issue("unreachable: no path from the StartAction leads here", ident)
            (errors if strict else warnings).append(issue)
    if not complete:
        return  # dangling transitions or unknown types: path analysis would only echo them

    sink = warnings if flow.type in _LOOPING_FLOW_TYPES else errors
    exits = [
        ident
        for ident, action in actions.items()
        if (spec := ACTIONS.get(action.type)) is not None
        and spec.outcome in (Outcome.TERMINAL, Outcome.EXIT)
    ]
    reverse: dict[str, list[str]] = defaultdict(list)
    for src, targets in edges.items():
        for dst in targets:
            reverse[dst].append(src)
    can_exit = set(_bfs(exits, reverse))
    dead = [ident for ident in reach_order if ident not in can_exit]
    dead_set = set(dead)
    reported: set[str] = set()
    for ident in dead:
        entry = ident == flow.start_action or any(
            pred in reachable and pred not in dead_set for pred in reverse[ident]
        )
        if not entry:
            continue
        loop = _find_loop(ident, edges)
        culprit = loop[0] if loop else ident
        if culprit in reported:
            continue
        reported.add(culprit)
        where = (
            "it loops " + " -> ".join(repr(p) for p in (*loop, loop[0]))
            if loop
            else "the path has no way on"
        )
        via = f" (entered from {ident!r})" if culprit != ident else ""
        sink.append(
            Issue(
                "endless path: no terminal action (DisconnectParticipant, EndFlowExecution) "
                f"or transfer can be reached from here; {where}{via}",
                culprit,
            )
        )

    for cycle in _unconditional_cycles(flow, reach_order):
        if set(cycle) <= dead_set:
            continue
        path = " -> ".join(repr(c) for c in (*cycle, cycle[0]))
        sink.append(
            Issue(
                f"endless loop {path}: every block on it always succeeds, so the flow "
                "repeats forever (add a Loop, Wait, customer input or a condition)",
                cycle[0],
            )
        )


def _bfs(starts: Iterable[str], edges: Mapping[str, list[str]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()
    queue = deque(starts)
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        queue.extend(n for n in edges.get(node, []) if n not in seen)
    return order


def _find_loop(start: str, edges: Mapping[str, list[str]]) -> list[str]:
    """The first cycle met walking first edges from ``start`` (empty when the walk stops)."""
    path: list[str] = []
    index: dict[str, int] = {}
    node: str | None = start
    while node is not None and node not in index:
        index[node] = len(path)
        path.append(node)
        nxt = edges.get(node, [])
        node = nxt[0] if nxt else None
    return [] if node is None else path[index[node] :]


def _unconditional_cycles(flow: Flow, order: list[str]) -> list[list[str]]:
    succ: dict[str, str] = {}
    for ident in order:
        action = flow.actions[ident]
        spec = ACTIONS.get(action.type)
        nxt = action.transition.next_action
        if spec is not None and spec.deterministic and nxt is not None and nxt in flow.actions:
            succ[ident] = nxt
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current walk, 2 = done
    for start in order:
        if start in state:
            continue
        walk: list[str] = []
        node: str | None = start
        while node is not None and node not in state:
            state[node] = 1
            walk.append(node)
            node = succ.get(node)
        if node is not None and state.get(node) == 1:
            cycles.append(walk[walk.index(node) :])
        for visited in walk:
            state[visited] = 2
    return cycles


# --------------------------------------------------------------------------------------------
# legacy export format (§1.4)

_SYSTEM_ATTRIBUTES = {
    "customer number": "$.CustomerEndpoint.Address",
    "dialed number": "$.SystemEndpoint.Address",
    "customer callback number": "$.CustomerCallbackNumber",
    "stored customer input": "$.StoredCustomerInput",
    "queue name": "$.Queue.Name",
    "queue arn": "$.Queue.ARN",
    "queue outbound number": "$.Queue.OutboundCallerId.Address",
    "text to speech voice": "$.TextToSpeechVoice",
    "contact id": "$.ContactId",
    "initial contact id": "$.InitialContactId",
    "previous contact id": "$.PreviousContactId",
    "channel": "$.Channel",
    "instance arn": "$.InstanceARN",
    "initiation method": "$.InitiationMethod",
    "name": "$.Name",
    "description": "$.Description",
    "language": "$.LanguageCode",
    "customer audio stream arn": "$.MediaStreams.Customer.Audio.StreamARN",
    "customer audio start timestamp": "$.MediaStreams.Customer.Audio.StartTimestamp",
    "customer audio stop timestamp": "$.MediaStreams.Customer.Audio.StopTimestamp",
    "customer audio start fragment number": "$.MediaStreams.Customer.Audio.StartFragmentNumber",
}
"""Legacy ``namespace: "System"`` / media-stream attribute display names -> JSONPath."""

_NAMESPACES = {
    "user defined": "$.Attributes.",
    "external": "$.External.",
    "lex.slots": "$.Lex.Slots.",
    "lex.attributes": "$.Lex.SessionAttributes.",
}

_LEGACY_OPERATORS = {
    "Equals": "Equals",
    "GreaterThan": "NumberGreaterThan",
    "GreaterThanOrEqualTo": "NumberGreaterOrEqualTo",
    "LessThan": "NumberLessThan",
    "LessThanOrEqualTo": "NumberLessOrEqualTo",
    "StartsWith": "TextStartsWith",
    "EndsWith": "TextEndsWith",
    "Contains": "TextContains",
}


_SCALAR = (str, int, float)  # bool is an int: legacy exports write some flags as true/false


class _Module:
    """Accessors over one legacy ``modules[]`` entry; shape errors name the module id."""

    def __init__(self, raw: Mapping[str, Any], ident: str) -> None:
        self.raw = raw
        self.id = ident
        type_ = raw.get("type")
        if not isinstance(type_, str) or not type_:
            raise FlowError(Issue("legacy module has no type", ident))
        self.type = type_
        self.target = raw.get("target")
        if self.target is not None and not isinstance(self.target, str):
            raise FlowError(Issue("legacy module target must be a string", ident))
        self.params: list[Mapping[str, Any]] = []
        for i, entry in enumerate(self._list("parameters")):
            if not isinstance(entry, Mapping):
                raise FlowError(Issue(f"legacy parameters[{i}] is not an object", ident))
            name = entry.get("name")
            if not isinstance(name, str):
                raise FlowError(Issue(f"legacy parameters[{i}] has no name", ident))
            value, namespace = entry.get("value"), entry.get("namespace")
            if value is not None and not isinstance(value, _SCALAR):
                raise FlowError(Issue(f"legacy parameter {name!r}: value must be text", ident))
            if namespace is not None and not isinstance(namespace, str):
                raise FlowError(
                    Issue(f"legacy parameter {name!r}: namespace must be a string", ident)
                )
            self.params.append(entry)
        self.display: dict[str, str] = {}

    def _list(self, key: str) -> list[Any]:
        """``raw[key]``: a list (missing or null: empty)."""
        value = self.raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise FlowError(Issue(f"legacy module {key} must be a list", self.id))
        return value

    def branches(self) -> list[Mapping[str, Any]]:
        """The ``branches``, each an object with a ``condition`` and a ``transition``."""
        out: list[Mapping[str, Any]] = []
        for i, branch in enumerate(self._list("branches")):
            if (
                not isinstance(branch, Mapping)
                or not isinstance(branch.get("condition"), str)
                or not isinstance(branch.get("transition"), str)
                or not branch["transition"]
            ):
                raise FlowError(
                    Issue(f"legacy branches[{i}] needs a condition and a transition", self.id)
                )
            out.append(branch)
        return out

    def all(self, name: str) -> list[Mapping[str, Any]]:
        return [p for p in self.params if p.get("name") == name]

    def get(self, name: str) -> Mapping[str, Any] | None:
        found = self.all(name)
        return found[0] if found else None

    def value(self, name: str, default: str | None = None) -> str | None:
        entry = self.get(name)
        if entry is None or entry.get("value") is None:
            return default
        return str(entry["value"])

    def key(self, entry: Mapping[str, Any]) -> str:
        """The ``key`` of an Attribute/Parameter entry (the attribute it sets)."""
        key = entry.get("key")
        if not isinstance(key, str) or not key:
            raise FlowError(Issue(f"legacy parameter {entry.get('name')!r} needs a key", self.id))
        return key

    def dynamic(self, name: str) -> str | None:
        entry = self.get(name)
        return None if entry is None else self.to_value(entry)

    def to_value(self, entry: Mapping[str, Any]) -> str:
        """A legacy parameter value as a literal or a JSONPath (from its namespace)."""
        value = "" if entry.get("value") is None else str(entry["value"])
        namespace = entry.get("namespace")
        if not namespace:
            return value
        ns = str(namespace).lower()
        if ns in ("system", "media streams", "mediastreams"):
            path = _SYSTEM_ATTRIBUTES.get(value.lower())
            if path is None:
                raise FlowError(Issue(f"unknown legacy System attribute {value!r}", self.id))
            return path
        prefix = _NAMESPACES.get(ns)
        if prefix is None:
            raise FlowError(Issue(f"unknown legacy attribute namespace {namespace!r}", self.id))
        if re.fullmatch(r"[A-Za-z0-9_\-]+", value):
            return prefix + value
        quote = "'" if "'" not in value else '"'
        if quote in value:
            raise FlowError(Issue(f"legacy attribute name {value!r} mixes both quotes", self.id))
        return f"{prefix}[{quote}{value}{quote}]"

    def resource(self, param: str, name: str) -> None:
        entry = self.get(name)
        shown = entry.get("resourceName") if entry is not None else None
        if isinstance(shown, str) and shown:
            self.display[param] = shown


def _prompt(m: _Module) -> dict[str, Any]:
    text = m.dynamic("Text")
    if text is not None:
        kind = (m.value("TextToSpeechType") or "text").lower()
        return {"SSML" if kind == "ssml" else "Text": text}
    prompt = m.dynamic("AudioPrompt")
    if prompt is not None:
        m.resource("PromptId", "AudioPrompt")
        return {"PromptId": prompt}
    return {}


def _media_streaming(state: str) -> Callable[[_Module], tuple[str, dict[str, Any]]]:
    def convert(m: _Module) -> tuple[str, dict[str, Any]]:
        tracks = [str(p.get("value")) for p in m.all("Track")]
        directions = [{"FromCustomer": "From", "ToCustomer": "To"}.get(t, t) for t in tracks]
        return "UpdateContactMediaStreamingBehavior", {
            "MediaStreamingState": state,
            "MediaStreamType": "Audio",
            "Participants": [
                {"ParticipantType": "Customer", "MediaDirections": directions or ["To", "From"]}
            ],
        }

    return convert


def _set_logging(m: _Module) -> tuple[str, dict[str, Any]]:
    value = (m.value("LoggingBehavior") or "Enable").lower()
    return "UpdateFlowLoggingBehavior", {
        "FlowLoggingBehavior": "Enabled" if value.startswith("enable") else "Disabled"
    }


def _set_attributes(m: _Module) -> tuple[str, dict[str, Any]]:
    attrs = {m.key(p): m.to_value(p) for p in m.all("Attribute")}
    return "UpdateContactAttributes", {"Attributes": attrs}


def _set_queue(m: _Module) -> tuple[str, dict[str, Any]]:
    m.resource("QueueId", "Queue")
    return "UpdateContactTargetQueue", {"QueueId": m.dynamic("Queue") or ""}


def _transfer(m: _Module) -> tuple[str, dict[str, Any]]:
    if m.target == "Flow":
        m.resource("ContactFlowId", "ContactFlowId")
        return "TransferToFlow", {"ContactFlowId": m.dynamic("ContactFlowId") or ""}
    if m.target in (None, "Queue"):
        return "TransferContactToQueue", {}
    raise FlowError(Issue(f"legacy Transfer target {m.target!r} is not supported", m.id))


def _play_prompt(m: _Module) -> tuple[str, dict[str, Any]]:
    return "MessageParticipant", _prompt(m)


def _disconnect(m: _Module) -> tuple[str, dict[str, Any]]:
    return "DisconnectParticipant", {}


def _invoke(m: _Module) -> tuple[str, dict[str, Any]]:
    if m.target not in (None, "Lambda"):
        raise FlowError(Issue(f"legacy InvokeExternalResource target {m.target!r}", m.id))
    m.resource("LambdaFunctionARN", "FunctionArn")
    params: dict[str, Any] = {
        "LambdaFunctionARN": m.dynamic("FunctionArn") or "",
        "InvocationTimeLimitSeconds": m.value("TimeLimit", "3"),
        "ResponseValidation": {"ResponseType": "STRING_MAP"},
    }
    extra = {m.key(p): m.to_value(p) for p in m.all("Parameter")}
    if extra:
        params["LambdaInvocationAttributes"] = extra
    return "InvokeLambdaFunction", params


def _check_attribute(m: _Module) -> tuple[str, dict[str, Any]]:
    # Legacy exports name the attribute in "Attribute" and its namespace (User Defined,
    # System, External, ...) in a separate "Namespace" parameter.
    attribute = m.get("Attribute")
    namespace = m.value("Namespace")
    if attribute is not None and namespace and not attribute.get("namespace"):
        attribute = {**attribute, "namespace": namespace}
    value = m.to_value(attribute) if attribute is not None else ""
    return "Compare", {"ComparisonValue": value}


def _check_hours(m: _Module) -> tuple[str, dict[str, Any]]:
    hours = m.dynamic("Hours")
    m.resource("HoursOfOperationId", "Hours")
    return "CheckHoursOfOperation", ({"HoursOfOperationId": hours} if hours else {})


def _get_input(store: bool) -> Callable[[_Module], tuple[str, dict[str, Any]]]:
    def convert(m: _Module) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = _prompt(m)
        params["InputTimeLimitSeconds"] = m.value("Timeout", "5")
        params["StoreInput"] = "True" if store else "False"
        if store:
            if (m.value("CustomerInputType") or "").lower() == "phonenumber":
                params["InputValidation"] = {"PhoneNumberValidation": {"NumberFormat": "E164"}}
            else:
                params["InputValidation"] = {
                    "CustomValidation": {"MaximumLength": m.value("MaxDigits", "20")}
                }
        return "GetParticipantInput", params

    return convert


def _recording(m: _Module) -> tuple[str, dict[str, Any]]:
    enabled = (m.value("RecordingBehaviorOption") or "Enable").lower().startswith("enable")
    who = (m.value("RecordingParticipantOption") or "Both").lower()
    participants = {"both": ["Agent", "Customer"], "agent": ["Agent"], "customer": ["Customer"]}
    params: dict[str, Any] = {
        "RecordingBehavior": {
            "RecordedParticipants": participants.get(who, ["Agent", "Customer"]) if enabled else []
        }
    }
    if (m.value("AnalyticsBehaviorOption") or "").lower().startswith("enable"):
        params["AnalyticsBehavior"] = {
            "Enabled": "True",
            "AnalyticsLanguage": m.value("AnalyticsLanguageLocaleCode", "en-US"),
            "AnalyticsRedactionBehavior": m.value("AnalyticsRedactionOption", "Disabled"),
            "AnalyticsRedactionResults": m.value("AnalyticsRedactionPolicy", "None"),
        }
    return "UpdateContactRecordingBehavior", params


def _check_staffing(m: _Module) -> tuple[str, dict[str, Any]]:
    status = (m.value("Status") or "Available").capitalize()
    params: dict[str, Any] = {"MetricType": f"NumberOfAgents{status}"}
    queue = m.dynamic("Queue")
    if queue:
        m.resource("QueueId", "Queue")
        params["QueueId"] = queue
    return "CheckMetricData", params


def _loop(m: _Module) -> tuple[str, dict[str, Any]]:
    return "Loop", {"LoopCount": m.value("LoopCount", "1")}


def _end_flow(m: _Module) -> tuple[str, dict[str, Any]]:
    return "EndFlowExecution", {}


def _set_voice(m: _Module) -> tuple[str, dict[str, Any]]:
    return "UpdateContactTextToSpeechVoice", {
        "TextToSpeechVoice": m.value("GlobalVoice") or m.value("Voice") or "Joanna"
    }


def _set_event_hook(m: _Module) -> tuple[str, dict[str, Any]]:
    hook = m.value("Type") or "CustomerQueue"
    flow = m.dynamic("ContactFlowId") or m.value("ContactFlowId") or ""
    m.resource("ContactFlowId", "ContactFlowId")
    return "UpdateContactEventHooks", {"EventHooks": {hook: flow}}


def _loop_prompts(m: _Module) -> tuple[str, dict[str, Any]]:
    return "MessageParticipantIteratively", {"Messages": [_prompt(m)]}


LEGACY_TYPES: Mapping[str, Callable[[_Module], tuple[str, dict[str, Any]]]] = {
    "StartMediaStreaming": _media_streaming("Enabled"),
    "StopMediaStreaming": _media_streaming("Disabled"),
    "SetLoggingBehavior": _set_logging,
    "SetAttributes": _set_attributes,
    "SetQueue": _set_queue,
    "Transfer": _transfer,
    "PlayPrompt": _play_prompt,
    "Disconnect": _disconnect,
    "InvokeExternalResource": _invoke,
    "CheckAttribute": _check_attribute,
    "CheckHoursOfOperation": _check_hours,
    "GetUserInput": _get_input(store=False),
    "StoreUserInput": _get_input(store=True),
    "SetRecordingBehavior": _recording,
    "CheckStaffing": _check_staffing,
    "Loop": _loop,
    "EndFlowExecution": _end_flow,
    "Resume": _end_flow,  # whisper and hold flows hand the contact back
    "SetVoice": _set_voice,
    "SetEventHook": _set_event_hook,
    "LoopPrompts": _loop_prompts,
}
"""Legacy module ``type`` -> converter returning the 2019-10-30 ``(Type, Parameters)``."""


def _legacy_branches(m: _Module, new_type: str) -> dict[str, Any]:
    nxt: str | None = None
    errors: list[dict[str, str]] = []
    conditions: list[dict[str, Any]] = []

    def cond(op: str, operand: str, target: str) -> None:
        conditions.append(
            {"NextAction": target, "Condition": {"Operator": op, "Operands": [operand]}}
        )

    for branch in m.branches():
        kind: str = branch["condition"]
        target: str = branch["transition"]
        if kind == "Success":
            nxt = target
        elif kind == "Error":
            errors.append({"ErrorType": NO_MATCHING_ERROR, "NextAction": target})
        elif kind == "AtCapacity":
            errors.append({"ErrorType": "QueueAtCapacity", "NextAction": target})
        elif kind == "NoMatch":
            errors.append({"ErrorType": NO_MATCHING_CONDITION, "NextAction": target})
        elif kind == "Timeout":
            errors.append({"ErrorType": "InputTimeLimitExceeded", "NextAction": target})
        elif kind in ("True", "False") and new_type == "CheckMetricData":
            if kind == "True":
                cond("NumberGreaterThan", "0", target)
            else:
                errors.append({"ErrorType": NO_MATCHING_CONDITION, "NextAction": target})
        elif kind in ("True", "False"):
            cond("Equals", kind, target)
        elif kind in ("Looping", "Complete"):
            cond("Equals", "ContinueLooping" if kind == "Looping" else "DoneLooping", target)
        elif kind == "Evaluate":
            op = _LEGACY_OPERATORS.get(str(branch.get("conditionType", "")))
            if op is None:
                raise FlowError(
                    Issue(f"unknown legacy conditionType {branch.get('conditionType')!r}", m.id)
                )
            value = branch.get("conditionValue", "")
            if not isinstance(value, _SCALAR):
                raise FlowError(Issue("legacy conditionValue must be text", m.id))
            cond(op, str(value), target)
        else:
            raise FlowError(Issue(f"unknown legacy branch condition {kind!r}", m.id))
    out: dict[str, Any] = {}
    if nxt is not None:
        out["NextAction"] = nxt
    if errors:
        out["Errors"] = errors
    if conditions:
        out["Conditions"] = conditions
    return out


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _legacy_to_modern(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite a legacy export as a 2019-10-30 document (then parsed like any other)."""
    modules = obj.get("modules")
    # designer data (never affects execution): ignored when it is not an object, as in
    # the 2019-10-30 format
    metadata = _object(obj.get("metadata"))
    if not isinstance(modules, list) or not modules:
        raise FlowError("legacy flow: 'modules' must be a non-empty list")
    actions: list[dict[str, Any]] = []
    action_meta: dict[str, Any] = {}
    for index, raw in enumerate(modules):
        if not isinstance(raw, Mapping):
            raise FlowError(Issue(f"legacy modules[{index}] is not an object"))
        ident = raw.get("id")
        if not isinstance(ident, str) or not ident:
            raise FlowError(Issue(f"legacy modules[{index}] has no id"))
        m = _Module(raw, ident)
        convert = LEGACY_TYPES.get(m.type)
        if convert is None:
            raise FlowError(Issue(f"unknown legacy module type {m.type!r}", m.id))
        new_type, params = convert(m)
        transitions = {} if new_type == "DisconnectParticipant" else _legacy_branches(m, new_type)
        actions.append(
            {
                "Identifier": m.id,
                "Type": new_type,
                "Parameters": params,
                "Transitions": transitions,
            }
        )
        meta = _object(raw.get("metadata"))
        if m.display:
            meta["parameters"] = {k: {"displayName": v} for k, v in m.display.items()}
        action_meta[m.id] = meta
    metadata.setdefault("type", obj.get("type", "contactFlow"))
    metadata["ActionMetadata"] = action_meta
    return {
        "Version": FLOW_VERSION,
        "StartAction": obj.get("start"),
        "Metadata": metadata,
        "Actions": actions,
    }
