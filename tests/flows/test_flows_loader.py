"""Flow loading: the published LCA flow, the legacy format, and broken flows naming the action."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flows_helpers import (
    DISABLE,
    ENABLE,
    LCA_CAPACITY_PROMPT,
    LCA_DISCONNECT,
    LCA_FLOW,
    LCA_LAMBDA,
    LCA_LOGGING,
    LCA_SET_QUEUE,
    LCA_START,
    LCA_STOP,
    LCA_TRANSFER,
    action,
    flow_doc,
    lca_json,
    legacy_lca,
    legacy_param,
    requires_lca,
)

from callstream.flows import ACTIONS, FlowError, FlowType, load_flow
from callstream.flows.actions import OPERATORS, Outcome
from callstream.flows.conditions import OPERATOR_FUNCTIONS
from callstream.flows.loader import LEGACY_TYPES

# --- the published LCA flow --------------------------------------------------------------------


@requires_lca
def test_lca_flow_loads_as_published() -> None:
    flow = load_flow(LCA_FLOW)
    assert flow.name == "to-lca-kvs"
    assert flow.type is FlowType.CONTACT_FLOW
    assert flow.format == "2019-10-30"
    assert flow.start_action == LCA_LOGGING
    assert len(flow.actions) == 9
    assert {a.type for a in flow.actions.values()} == {
        "UpdateFlowLoggingBehavior",
        "UpdateContactMediaStreamingBehavior",
        "InvokeLambdaFunction",
        "UpdateContactTargetQueue",
        "TransferContactToQueue",
        "MessageParticipant",
        "DisconnectParticipant",
    }
    assert flow.warnings == ()
    lam = flow.action(LCA_LAMBDA)
    assert lam.parameters["LambdaFunctionARN"] == ""
    assert lam.is_friendly_name
    assert lam.display_name("LambdaFunctionARN") == (
        "LCA087-CONNECTKVSSTACK-CTJ01I63PP-StartLCAFunction-QFO3SvEkpbbl"
    )
    assert flow.action(LCA_SET_QUEUE).display_name("QueueId") == "BasicQueue"
    transfer = flow.action(LCA_TRANSFER).transition
    assert transfer.on_error("QueueAtCapacity") == LCA_CAPACITY_PROMPT
    assert transfer.on_error("SomethingElse") == LCA_STOP
    assert flow.action(LCA_DISCONNECT).transition.is_empty
    assert flow.metadata["entryPointPosition"] == {"x": 14.4, "y": 20}
    assert flow.action(LCA_START).metadata["toCustomer"] is True


@requires_lca
def test_lca_flow_from_dict_text_bytes_and_path_agree() -> None:
    text = LCA_FLOW.read_text()
    flows = [
        load_flow(LCA_FLOW),
        load_flow(str(LCA_FLOW)),
        load_flow(text),
        load_flow(text.encode()),
        load_flow(json.loads(text)),
    ]
    assert all(f == flows[0] for f in flows)


def test_action_table_is_consistent() -> None:
    assert set(OPERATORS) == set(OPERATOR_FUNCTIONS)
    for spec in ACTIONS.values():
        if spec.outcome in (Outcome.CONDITIONS,) and spec.implemented:
            assert spec.conditions is not None, spec.type
        if spec.params:
            for name in spec.params:
                assert name[0].isupper(), (spec.type, name)
    assert "StartMediaStreaming" in LEGACY_TYPES


# --- the legacy export format --------------------------------------------------------------------


def test_legacy_flow_maps_onto_the_same_model() -> None:
    flow = load_flow(legacy_lca())
    assert flow.format == "legacy"
    assert flow.name == "legacy-lca"
    # legacy Play prompt blocks had no Error branch
    assert {(w.action, w.message) for w in flow.warnings} == {
        (m, "no NoMatchingError branch: such an error disconnects the contact")
        for m in ("m-lambda-error", "m-capacity")
    }
    types = {ident: a.type for ident, a in flow.actions.items()}
    assert types == {
        "m-log": "UpdateFlowLoggingBehavior",
        "m-start": "UpdateContactMediaStreamingBehavior",
        "m-lambda": "InvokeLambdaFunction",
        "m-lambda-error": "MessageParticipant",
        "m-queue": "UpdateContactTargetQueue",
        "m-transfer": "TransferContactToQueue",
        "m-capacity": "MessageParticipant",
        "m-stop": "UpdateContactMediaStreamingBehavior",
        "m-disconnect": "DisconnectParticipant",
    }
    start = flow.action("m-start").parameters
    assert start["MediaStreamingState"] == "Enabled"
    assert start["Participants"][0]["MediaDirections"] == ["From", "To"]
    assert flow.action("m-stop").parameters["MediaStreamingState"] == "Disabled"
    assert flow.action("m-log").parameters == {"FlowLoggingBehavior": "Enabled"}
    lam = flow.action("m-lambda")
    assert lam.parameters["InvocationTimeLimitSeconds"] == "5"
    assert lam.display_name("LambdaFunctionARN") == "StartLCA"
    assert lam.transition.on_error("NoMatchingError") == "m-lambda-error"
    assert flow.action("m-transfer").transition.on_error("QueueAtCapacity") == "m-capacity"
    assert flow.action("m-capacity").parameters == {"SSML": "<speak>Too many callers.</speak>"}
    assert flow.action("m-queue").display_name("QueueId") == "BasicQueue"


def test_legacy_attributes_and_conditions() -> None:
    doc = {
        "modules": [
            {
                "id": "set",
                "type": "SetAttributes",
                "branches": [{"condition": "Success", "transition": "check"}],
                "parameters": [
                    legacy_param("Attribute", "Customer Number", key="caller", namespace="System"),
                    legacy_param("Attribute", "result", key="copied", namespace="External"),
                    legacy_param("Attribute", "literal", key="plain"),
                    legacy_param(
                        "Attribute", "Customer audio stream ARN", key="arn", namespace="System"
                    ),
                ],
            },
            {
                "id": "check",
                "type": "CheckAttribute",
                "branches": [
                    {
                        "condition": "Evaluate",
                        "conditionType": "Equals",
                        "conditionValue": "1",
                        "transition": "bye",
                    },
                    {
                        "condition": "Evaluate",
                        "conditionType": "GreaterThan",
                        "conditionValue": "5",
                        "transition": "bye",
                    },
                    {"condition": "NoMatch", "transition": "bye"},
                ],
                "parameters": [legacy_param("Attribute", "plain", namespace="User Defined")],
            },
            {"id": "bye", "type": "Disconnect", "branches": [], "parameters": []},
        ],
        "start": "set",
        "metadata": {"name": "legacy-attrs"},
    }
    flow = load_flow(doc)
    assert flow.action("set").parameters["Attributes"] == {
        "caller": "$.CustomerEndpoint.Address",
        "copied": "$.External.result",
        "plain": "literal",
        "arn": "$.MediaStreams.Customer.Audio.StreamARN",
    }
    check = flow.action("check")
    assert check.parameters == {"ComparisonValue": "$.Attributes.plain"}
    ops = [(b.condition.operator, b.condition.operands) for b in check.transition.conditions]
    assert ops == [("Equals", ("1",)), ("NumberGreaterThan", ("5",))]
    assert check.transition.on_error("NoMatchingCondition") == "bye"


def test_legacy_unknown_module_type_names_the_module() -> None:
    doc = legacy_lca()
    doc["modules"][2]["type"] = "SomethingNew"
    with pytest.raises(FlowError, match="m-lambda") as info:
        load_flow(doc)
    assert info.value.action == "m-lambda"
    assert "SomethingNew" in str(info.value)


# --- broken flows --------------------------------------------------------------------------------


def _ok_flow() -> dict[str, Any]:
    return flow_doc(
        action(
            "log",
            "UpdateFlowLoggingBehavior",
            {"FlowLoggingBehavior": "Enabled"},
            next_action="start",
        ),
        action(
            "start",
            "UpdateContactMediaStreamingBehavior",
            ENABLE,
            next_action="hello",
            errors={"NoMatchingError": "hello"},
        ),
        action(
            "hello",
            "MessageParticipant",
            {"Text": "Hello $.Attributes.name"},
            next_action="stop",
            errors={"NoMatchingError": "stop"},
        ),
        action(
            "stop",
            "UpdateContactMediaStreamingBehavior",
            DISABLE,
            next_action="bye",
            errors={"NoMatchingError": "bye"},
        ),
        action("bye", "DisconnectParticipant"),
    )


def _mutate(fn: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    doc = copy.deepcopy(_ok_flow())
    fn(doc)
    return doc


def _act(doc: dict[str, Any], ident: str) -> dict[str, Any]:
    return next(a for a in doc["Actions"] if a["Identifier"] == ident)


def test_the_base_flow_is_valid() -> None:
    flow = load_flow(_ok_flow())
    assert flow.warnings == ()


BROKEN: list[tuple[str, Callable[[dict[str, Any]], object], str | None, str]] = [
    (
        "unknown type",
        lambda d: _act(d, "hello").update(Type="PlayPromptPlease"),
        "hello",
        "unknown action type 'PlayPromptPlease'",
    ),
    (
        "legacy type in new format",
        lambda d: _act(d, "start").update(Type="StartMediaStreaming"),
        "start",
        "legacy module type; use UpdateContactMediaStreamingBehavior",
    ),
    (
        "dangling NextAction",
        lambda d: _act(d, "hello").update(Transitions={"NextAction": "nowhere"}),
        "hello",
        "names no action 'nowhere'",
    ),
    (
        "dangling error branch",
        lambda d: _act(d, "start")["Transitions"].update(
            Errors=[{"ErrorType": "NoMatchingError", "NextAction": "ghost"}]
        ),
        "start",
        "Error NoMatchingError names no action 'ghost'",
    ),
    ("StartAction missing", lambda d: d.pop("StartAction"), None, "StartAction is missing"),
    (
        "StartAction dangling",
        lambda d: d.update(StartAction="nope"),
        None,
        "StartAction 'nope' names no action",
    ),
    (
        "duplicate identifier",
        lambda d: d["Actions"].append(copy.deepcopy(_act(d, "bye"))),
        "bye",
        "duplicate Identifier",
    ),
    (
        "unreachable action",
        lambda d: d["Actions"].append(
            action("orphan", "MessageParticipant", {"Text": "x"}, next_action="bye")
        ),
        "orphan",
        "unreachable",
    ),
    (
        "endless cycle, no exit",
        lambda d: (
            _act(d, "hello").update(Transitions={"NextAction": "again"}),
            d["Actions"].append(
                action("again", "MessageParticipant", {"Text": "again"}, next_action="hello")
            ),
        ),
        "hello",
        "endless path",
    ),
    (
        "unconditional cycle with only an error exit",
        lambda d: (
            _act(d, "hello")["Transitions"].update(NextAction="again"),
            d["Actions"].append(
                action(
                    "again",
                    "UpdateContactAttributes",
                    {"Attributes": {"n": "1"}},
                    next_action="hello",
                    errors={"NoMatchingError": "bye"},
                )
            ),
        ),
        "hello",
        "endless loop 'hello' -> 'again' -> 'hello'",
    ),
    (
        "wrong version",
        lambda d: d.update(Version="2020-01-01"),
        None,
        "unsupported flow language Version",
    ),
    (
        "required parameter missing",
        lambda d: _act(d, "hello").update(
            Type="InvokeLambdaFunction", Parameters={"InvocationTimeLimitSeconds": "5"}
        ),
        "hello",
        "required parameter 'LambdaFunctionARN' is missing",
    ),
    (
        "time limit over 8 s",
        lambda d: _act(d, "hello").update(
            Type="InvokeLambdaFunction",
            Parameters={"LambdaFunctionARN": "f", "InvocationTimeLimitSeconds": "9"},
        ),
        "hello",
        "between 1 and 8",
    ),
    (
        "JSONPath in a static parameter",
        lambda d: _act(d, "log")["Parameters"].update(FlowLoggingBehavior="$.Attributes.log"),
        "log",
        "must be one of Enabled, Disabled",
    ),
    (
        "JSONPath in a static text parameter",
        lambda d: _act(d, "hello").update(
            Type="UpdateContactTextToSpeechVoice",
            Parameters={"TextToSpeechVoice": "$.Attributes.voice"},
        ),
        "hello",
        "must be defined statically",
    ),
    (
        "templated text in a single-JSONPath parameter",
        lambda d: _act(d, "hello").update(
            Type="TransferToFlow", Parameters={"ContactFlowId": "flow-$.Attributes.x"}
        ),
        "hello",
        "must be static or a single JSONPath",
    ),
    (
        "Text and SSML together",
        lambda d: _act(d, "hello")["Parameters"].update(SSML="<speak>hi</speak>"),
        "hello",
        "exactly one of PromptId, Text, SSML, Media",
    ),
    (
        "Loop without DoneLooping",
        lambda d: _act(d, "hello").update(
            Type="Loop",
            Parameters={"LoopCount": "2"},
            Transitions={
                "Conditions": [
                    {
                        "NextAction": "stop",
                        "Condition": {"Operator": "Equals", "Operands": ["ContinueLooping"]},
                    }
                ]
            },
        ),
        "hello",
        "needs Conditions for 'DoneLooping'",
    ),
    (
        "unknown operator",
        lambda d: _act(d, "hello").update(
            Type="Compare",
            Parameters={"ComparisonValue": "$.Attributes.x"},
            Transitions={
                "Conditions": [
                    {"NextAction": "stop", "Condition": {"Operator": "Matches", "Operands": ["1"]}}
                ]
            },
        ),
        "hello",
        "unknown condition operator 'Matches'",
    ),
    (
        "two operands",
        lambda d: _act(d, "hello").update(
            Type="Compare",
            Parameters={"ComparisonValue": "$.Attributes.x"},
            Transitions={
                "Conditions": [
                    {
                        "NextAction": "stop",
                        "Condition": {"Operator": "Equals", "Operands": ["1", "2"]},
                    }
                ]
            },
        ),
        "hello",
        "exactly one string operand",
    ),
    (
        "no NextAction",
        lambda d: _act(d, "hello")["Transitions"].pop("NextAction"),
        "hello",
        "has no Transitions.NextAction",
    ),
    (
        "bad participants",
        lambda d: _act(d, "start")["Parameters"].update(
            Participants=[{"ParticipantType": "Agent", "MediaDirections": ["From"]}]
        ),
        "start",
        "only ParticipantType 'Customer'",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected_action", "text"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_flows_fail_naming_the_action(
    mutation: Callable[[dict[str, Any]], object], expected_action: str | None, text: str
) -> None:
    with pytest.raises(FlowError) as info:
        load_flow(_mutate(mutation))
    message = str(info.value)
    assert text in message
    if expected_action is not None:
        assert any(issue.action == expected_action for issue in info.value.issues)
        assert f"action {expected_action!r}" in message


def test_flow_error_lists_every_problem() -> None:
    doc = _mutate(
        lambda d: (
            _act(d, "hello").update(Type="Nope"),
            _act(d, "stop")["Transitions"].update(NextAction="ghost"),
        )
    )
    with pytest.raises(FlowError) as info:
        load_flow(doc)
    assert len(info.value.issues) == 2
    assert info.value.action == "hello"
    assert "2 problems" in str(info.value)
    assert "flow 'test-flow'" in str(info.value)


def test_flow_type_restrictions() -> None:
    doc = _ok_flow()
    doc["Metadata"]["type"] = "agentWhisper"
    with pytest.raises(
        FlowError, match="DisconnectParticipant is not allowed in a agentWhisper flow"
    ):
        load_flow(doc)
    whisper = flow_doc(
        action(
            "start",
            "UpdateContactMediaStreamingBehavior",
            ENABLE,
            next_action="hi",
            errors={"NoMatchingError": "end"},
        ),
        action(
            "hi",
            "MessageParticipant",
            {"Text": "whisper"},
            next_action="end",
            errors={"NoMatchingError": "end"},
        ),
        action("end", "EndFlowExecution"),
        flow_type="customerWhisper",
    )
    assert load_flow(whisper).type is FlowType.CUSTOMER_WHISPER
    with pytest.raises(FlowError, match="EndFlowExecution is not allowed in a contactFlow flow"):
        load_flow(whisper, flow_type=FlowType.CONTACT_FLOW)
    hold = flow_doc(
        action("hi", "MessageParticipant", {"Text": "hold"}, next_action="hi"),
        flow_type="customerHold",
    )
    with pytest.raises(FlowError, match="not allowed in a customerHold flow"):
        load_flow({**whisper, "Metadata": {"type": "customerHold"}})
    assert load_flow(hold).type is FlowType.CUSTOMER_HOLD


def test_queue_flows_may_loop_forever_with_a_warning() -> None:
    doc = flow_doc(
        action(
            "a",
            "MessageParticipant",
            {"Text": "Please hold"},
            next_action="b",
            errors={"NoMatchingError": "b"},
        ),
        action(
            "b",
            "MessageParticipant",
            {"Text": "Still holding"},
            next_action="a",
            errors={"NoMatchingError": "a"},
        ),
        flow_type="customerQueue",
    )
    flow = load_flow(doc)
    assert any("endless" in str(w) for w in flow.warnings)
    with pytest.raises(FlowError, match="endless"):
        load_flow(doc, flow_type="CONTACT_FLOW")


def test_bounded_loops_are_not_endless() -> None:
    loop = flow_doc(
        action(
            "loop",
            "Loop",
            {"LoopCount": "3"},
            conditions=[("Equals", "ContinueLooping", "say"), ("Equals", "DoneLooping", "bye")],
        ),
        action(
            "say",
            "MessageParticipant",
            {"Text": "again"},
            next_action="loop",
            errors={"NoMatchingError": "bye"},
        ),
        action("bye", "DisconnectParticipant"),
    )
    assert load_flow(loop).warnings == ()
    menu = flow_doc(
        action(
            "menu",
            "GetParticipantInput",
            {"Text": "Press 1", "StoreInput": "False", "InputTimeLimitSeconds": "5"},
            conditions=[("Equals", "1", "bye")],
            errors={
                "NoMatchingCondition": "sorry",
                "InputTimeLimitExceeded": "sorry",
                "NoMatchingError": "bye",
            },
        ),
        action(
            "sorry",
            "MessageParticipant",
            {"Text": "Try again"},
            next_action="menu",
            errors={"NoMatchingError": "bye"},
        ),
        action("bye", "DisconnectParticipant"),
    )
    assert load_flow(menu).warnings == ()


def test_warnings_do_not_stop_loading() -> None:
    doc = _mutate(
        lambda d: (
            _act(d, "hello")["Parameters"].update(Colour="blue"),
            _act(d, "start")["Transitions"].pop("Errors"),
            _act(d, "stop")["Transitions"]["Errors"].append(
                {"ErrorType": "QueueAtCapacity", "NextAction": "bye"}
            ),
            _act(d, "bye").update(Transitions={"NextAction": "log"}),
            d["Actions"].append(
                action(
                    "lex",
                    "ConnectParticipantWithLexBot",
                    {"LexV2Bot": {"AliasArn": "a"}},
                    errors={"NoMatchingError": "bye"},
                )
            ),
            _act(d, "hello")["Transitions"].update(NextAction="lex"),
            _act(d, "lex")["Transitions"].update(NextAction="stop"),
        )
    )
    flow = load_flow(doc)
    text = "\n".join(map(str, flow.warnings))
    assert "unknown parameter 'Colour'" in text
    assert "action 'start': no NoMatchingError branch" in text
    assert "never raises 'QueueAtCapacity'" in text
    assert "DisconnectParticipant ends the flow" in text
    assert "ConnectParticipantWithLexBot is not executed by callstream" in text


def test_unreachable_is_a_warning_when_not_strict() -> None:
    doc = _mutate(
        lambda d: d["Actions"].append(
            action("orphan", "MessageParticipant", {"Text": "x"}, next_action="bye")
        )
    )
    flow = load_flow(doc, strict=False)
    assert [w.action for w in flow.warnings if "unreachable" in w.message] == ["orphan"]


def test_identifier_rules_are_warnings() -> None:
    long_id = "x" * 51
    doc = _mutate(
        lambda d: (
            _act(d, "hello").update(Identifier="say:hello"),
            _act(d, "log")["Transitions"].update(NextAction="start"),
            _act(d, "start")["Transitions"].update(
                NextAction="say:hello",
                Errors=[{"ErrorType": "NoMatchingError", "NextAction": long_id}],
            ),
            d["Actions"].append(
                action(
                    long_id,
                    "MessageParticipant",
                    {"Text": "x"},
                    next_action="stop",
                    errors={"NoMatchingError": "stop"},
                )
            ),
        )
    )
    flow = load_flow(doc)
    assert {w.action for w in flow.warnings} == {"say:hello", long_id}


def test_not_a_flow() -> None:
    with pytest.raises(FlowError, match="must be a JSON object"):
        load_flow([1, 2])  # type: ignore[arg-type]
    with pytest.raises(FlowError, match="not a Connect flow"):
        load_flow({"hello": 1})
    with pytest.raises(FlowError, match="not valid JSON"):
        load_flow("{nope")
    with pytest.raises(FlowError, match="cannot read"):
        load_flow(Path("/nonexistent/flow.json"))
    with pytest.raises(FlowError, match="non-empty list"):
        load_flow({"Version": "2019-10-30", "StartAction": "a", "Actions": []})


@requires_lca
def test_lca_mutations_name_lca_identifiers() -> None:
    doc = lca_json()
    for act in doc["Actions"]:
        if act["Identifier"] == LCA_LAMBDA:
            act["Transitions"]["NextAction"] = "does-not-exist"
    with pytest.raises(FlowError) as info:
        load_flow(doc)
    assert info.value.action == LCA_LAMBDA
    assert "'StartLCA'" in str(info.value)


def test_legacy_namespace_parameter_and_more_module_types() -> None:
    """Legacy exports (AWS's own samples) give CheckAttribute's namespace as a separate
    "Namespace" parameter, and use Resume, SetVoice, SetEventHook and LoopPrompts."""
    doc = {
        "modules": [
            {
                "id": "voice",
                "type": "SetVoice",
                "branches": [{"condition": "Success", "transition": "hook"}],
                "parameters": [legacy_param("GlobalVoice", "Matthew")],
            },
            {
                "id": "hook",
                "type": "SetEventHook",
                "branches": [{"condition": "Success", "transition": "check"}],
                "parameters": [
                    legacy_param("Type", "CustomerQueue"),
                    legacy_param("ContactFlowId", "arn:flow/q", resourceName="Queue flow"),
                ],
            },
            {
                "id": "check",
                "type": "CheckAttribute",
                "branches": [
                    {
                        "condition": "Evaluate",
                        "conditionType": "Equals",
                        "conditionValue": "CHAT",
                        "transition": "done",
                    },
                    {"condition": "NoMatch", "transition": "done"},
                ],
                "parameters": [
                    legacy_param("Attribute", "Channel"),
                    legacy_param("Namespace", "System"),
                ],
            },
            {"id": "done", "type": "Disconnect", "branches": [], "parameters": []},
        ],
        "start": "voice",
        "metadata": {"name": "legacy-inbound"},
    }
    flow = load_flow(doc)
    assert flow.action("check").parameters == {"ComparisonValue": "$.Channel"}
    whisper = {
        "modules": [{"id": "done", "type": "Resume", "branches": [], "parameters": []}],
        "start": "done",
        "metadata": {"name": "legacy-whisper"},
    }
    resumed = load_flow(whisper, flow_type=FlowType.AGENT_WHISPER)
    assert resumed.action("done").type == "EndFlowExecution"
    assert flow.action("voice").parameters == {"TextToSpeechVoice": "Matthew"}
    assert flow.action("hook").parameters == {"EventHooks": {"CustomerQueue": "arn:flow/q"}}
