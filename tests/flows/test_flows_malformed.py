"""Malformed flows: whatever the input, loading raises FlowError (naming the action and the
field where there is one) or gives a flow the interpreter runs without crashing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from flows_helpers import LCA_FLOW, action, flow_doc, legacy_lca, legacy_param
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream.flows import FlowError, load_flow
from callstream.flows.fuzz import FLOW_KEYS, builtin_corpus, run_flow, tree_at, tree_paths


def _seeds() -> list[Any]:
    docs: list[Any] = [json.loads(data) for data in builtin_corpus()]
    docs.append(legacy_lca())
    docs.append(
        flow_doc(
            action("hi", "MessageParticipant", {"Text": "Hi"}, next_action="bye"),
            action("bye", "DisconnectParticipant"),
        )
    )
    if LCA_FLOW.is_file():
        docs.append(json.loads(LCA_FLOW.read_text()))
    return docs


SEEDS = _seeds()


def check(data: bytes | dict[str, Any]) -> None:
    """The property: FlowError with a message, or a flow that runs to its end."""
    try:
        flow = load_flow(data)
    except FlowError as err:
        assert str(err)
        return
    source = data if isinstance(data, bytes) else json.dumps(data).encode()
    run_flow(flow, len(source))


# --- the property -----------------------------------------------------------------------------

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(
        [
            "",
            "True",
            "False",
            "5",
            "-1",
            "0",
            "$.Attributes.x",
            "$.External.y",
            "$.Nope.z",
            "Hi $.Attributes.x",
            "Enabled",
            "Customer",
            "NoMatchingError",
            "Equals",
            "\ud800",
        ]
    )
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_KEYS = st.sampled_from(FLOW_KEYS)


@st.composite
def mutated_flows(draw: st.DrawFn) -> bytes:
    """A seed flow with 1-4 structural edits at any JSON path (type swaps, deletions,
    insertions, subtrees moved elsewhere), sometimes with raw byte edits on top."""
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        paths = tree_paths(doc)
        path = paths[draw(st.integers(0, len(paths) - 1))]
        if draw(st.booleans()):
            value = draw(_JSON)
        else:
            value = copy.deepcopy(tree_at(doc, paths[draw(st.integers(0, len(paths) - 1))]))
        op = draw(st.sampled_from(["replace", "delete", "insert"]))
        if not path:
            doc = value if op == "replace" else doc
            continue
        parent = tree_at(doc, path[:-1])
        if op == "replace":
            parent[path[-1]] = value
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(_KEYS)] = value
        else:
            parent.insert(path[-1], value)
    data = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:  # non-UTF-8 bytes, truncation
        at = draw(st.integers(0, len(data)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"", b"\\"]))
        data = data[:at] + junk + data[at + draw(st.integers(0, 3)) :]
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_flows())
def test_mutated_flows_raise_only_flow_error(data: bytes) -> None:
    check(data)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_any_json_raises_only_flow_error(value: Any) -> None:
    check(json.dumps(value).encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_raise_only_flow_error(data: bytes) -> None:
    check(data)


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_every_seed_loads_and_runs(index: int) -> None:
    flow = load_flow(copy.deepcopy(SEEDS[index]))
    for seed in range(5):
        assert run_flow(flow, seed).contact_ended


# --- the places that raised something else ---------------------------------------------------


def _new(ident: str, type_: str, params: dict[str, Any], **transitions: Any) -> dict[str, Any]:
    """A contact flow whose first action is ``ident`` followed by a Disconnect."""
    first = action(ident, type_, params)
    first["Transitions"] = {"NextAction": "bye", **transitions}
    return flow_doc(first, action("bye", "DisconnectParticipant"))


def _legacy(module: dict[str, Any]) -> dict[str, Any]:
    return {
        "modules": [
            {"branches": [{"condition": "Success", "transition": "bye"}], **module},
            {"id": "bye", "type": "Disconnect", "branches": [], "parameters": []},
        ],
        "start": module.get("id", "m"),
        "metadata": {"name": "legacy"},
    }


SAY = {"id": "say", "type": "PlayPrompt", "parameters": [legacy_param("Text", "Hi")]}

# (case, flow, the action the error must name, text the message must contain)
BROKEN: list[tuple[str, Any, str | None, str]] = [
    (
        "Transitions.Errors is not a list",
        _new("hi", "MessageParticipant", {"Text": "Hi"}, Errors=True),
        "hi",
        "Transitions.Errors must be a list",
    ),
    (
        "Transitions.Conditions is not a list",
        _new("cmp", "Compare", {"ComparisonValue": "x"}, Conditions=5),
        "cmp",
        "Transitions.Conditions must be a list",
    ),
    (
        "legacy parameters is a number",
        _legacy({**SAY, "parameters": 5}),
        "say",
        "parameters must be a list",
    ),
    (
        "legacy parameters item is not an object",
        _legacy({**SAY, "parameters": ["Text"]}),
        "say",
        "parameters[0] is not an object",
    ),
    (
        "legacy parameter value is an object",
        _legacy({**SAY, "parameters": [legacy_param("Text", {"a": 1})]}),
        "say",
        "'Text': value must be text",
    ),
    (
        "legacy branches is a number",
        _legacy({**SAY, "branches": 5}),
        "say",
        "branches must be a list",
    ),
    (
        "legacy branch has no transition",
        _legacy({**SAY, "branches": [{"condition": "Success"}]}),
        "say",
        "branches[0] needs a condition and a transition",
    ),
    (
        "legacy module id is a number",
        _legacy({**SAY, "id": 5}),
        None,
        "modules[0] has no id",
    ),
    (
        "legacy attribute without a key",
        _legacy(
            {"id": "set", "type": "SetAttributes", "parameters": [legacy_param("Attribute", "v")]}
        ),
        "set",
        "'Attribute' needs a key",
    ),
    (
        "legacy Evaluate conditionValue is an object",
        _legacy(
            {
                "id": "check",
                "type": "CheckAttribute",
                "parameters": [legacy_param("Attribute", "a", namespace="User Defined")],
                "branches": [
                    {
                        "condition": "Evaluate",
                        "conditionType": "Equals",
                        "conditionValue": {"x": 1},
                        "transition": "bye",
                    }
                ],
            }
        ),
        "check",
        "conditionValue must be text",
    ),
    (
        "RecordedParticipants is not a list",
        _new(
            "rec",
            "UpdateContactRecordingBehavior",
            {"RecordingBehavior": {"RecordedParticipants": True}},
        ),
        "rec",
        "parameter 'RecordingBehavior' RecordedParticipants must be a list",
    ),
    (
        "CustomValidation is not an object",
        _new(
            "in",
            "GetParticipantInput",
            {"Text": "Hi", "StoreInput": "True", "InputValidation": {"CustomValidation": 5}},
        ),
        "in",
        "parameter 'InputValidation' CustomValidation must be",
    ),
    (
        "CustomValidation.MaximumLength is not a number",
        _new(
            "in",
            "GetParticipantInput",
            {
                "Text": "Hi",
                "StoreInput": "True",
                "InputValidation": {"CustomValidation": {"MaximumLength": "many"}},
            },
        ),
        "in",
        "MaximumLength",
    ),
    (
        "DTMF terminator is not a string",
        _new(
            "in",
            "GetParticipantInput",
            {
                "Text": "Hi",
                "StoreInput": "True",
                "DTMFConfiguration": {"InputTerminationSequence": 5},
            },
        ),
        "in",
        "InputTerminationSequence must be a string",
    ),
    (
        "a lone surrogate in an action parameter",
        _new("hi", "MessageParticipant", {"Text": "Hi \ud800"}),
        "hi",
        "Actions[0].Parameters.Text holds a lone UTF-16 surrogate",
    ),
    (
        "a lone surrogate in designer metadata",
        {
            **_new("hi", "MessageParticipant", {"Text": "Hi"}),
            "Metadata": {
                "ActionMetadata": {"hi": {"parameters": {"x": {"displayName": "\udc00"}}}}
            },
        },
        None,
        "Metadata.ActionMetadata.hi.parameters.x.displayName holds a lone UTF-16 surrogate",
    ),
]


@pytest.mark.parametrize(
    ("doc", "ident", "text"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN]
)
def test_malformed_shapes_raise_flow_error_naming_the_action(
    doc: Any, ident: str | None, text: str
) -> None:
    for source in (doc, json.dumps(doc).encode()):
        with pytest.raises(FlowError) as info:
            load_flow(source)
        assert info.value.action == ident, str(info.value)
        assert text in str(info.value)


def test_legacy_designer_metadata_that_is_not_an_object_is_ignored() -> None:
    """As ``Metadata`` in the 2019-10-30 format: designer data never affects execution."""
    doc = {**_legacy({**SAY, "metadata": "x"}), "metadata": True}
    flow = load_flow(doc)
    assert flow.action("say").metadata == {}
    assert flow.metadata == {"type": "contactFlow", "ActionMetadata": {"say": {}, "bye": {}}}


def test_null_parameters_count_as_absent_when_the_flow_runs() -> None:
    """``"InvocationTimeLimitSeconds": null`` passed validation (null is "not given") but
    the interpreter read it as the text 'None' and crashed."""
    doc = _new(
        "lambda",
        "InvokeLambdaFunction",
        {"LambdaFunctionARN": "arn:aws:lambda:us-east-1:1:function:f"},
        Errors=[{"ErrorType": "NoMatchingError", "NextAction": "bye"}],
    )
    doc["Actions"][0]["Parameters"]["InvocationTimeLimitSeconds"] = None
    flow = load_flow(doc)
    assert "InvocationTimeLimitSeconds" not in flow.action("lambda").parameters
    for seed in range(4):
        assert run_flow(flow, seed).contact_ended


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (
            b'{"Version": "2019-10-30", "Actions": [\xff]}',
            "not UTF-8 text: byte 0xff at byte offset 38",
        ),
        (b"\xef\xbb\xbf\xc3(", "not UTF-8 text: byte 0xc3 at byte offset 3"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8 text"),
        (b"", "flow JSON is empty"),
        (b" \n", "flow JSON is empty"),
        (b"[" * 100_000, "nested more than 64 levels deep"),
        (b'{"a":' * 65 + b"1" + b"}" * 65, "nested more than 64 levels deep"),
        (b'{"a": ' + b"1" * 5000 + b"}", "is not valid JSON"),
        (b'{"Version": NaN}', "NaN is not a JSON number"),
        (b'{"Version": -Infinity}', "-Infinity is not a JSON number"),
    ],
    ids=[
        "invalid byte",
        "invalid byte after a BOM",
        "encoded surrogate",
        "empty",
        "blank",
        "deep arrays",
        "deep objects",
        "huge integer",
        "NaN",
        "-Infinity",
    ],
)
def test_bytes_that_are_not_a_json_document(data: bytes, text: str) -> None:
    with pytest.raises(FlowError) as info:
        load_flow(data)
    assert text in str(info.value)


def test_paths_that_cannot_be_read(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"Actions": "é"}'.encode("latin-1"))
    cases = [
        ("flow\x00.json", "cannot read 'flow\\x00.json'"),
        (empty, f"{empty} is empty"),
        (latin, f"{latin} is not UTF-8 text: byte 0xe9 at byte offset 13"),
        (tmp_path, f"cannot read {tmp_path}: Is a directory"),
    ]
    for source, text in cases:
        with pytest.raises(FlowError) as info:
            load_flow(source)
        assert text in str(info.value)


def test_json_text_with_a_byte_order_mark() -> None:
    text = json.dumps(SEEDS[1])
    assert load_flow("\ufeff" + text).name == load_flow(text.encode()).name


def test_an_unknown_flow_type_argument() -> None:
    with pytest.raises(FlowError, match="unknown flow type 'nope'"):
        load_flow(SEEDS[0], flow_type="nope")


def test_legacy_attribute_names_with_quotes() -> None:
    """A name holding ``'`` used to give ``$.Attributes.['it's']``, which is no reference."""

    def compare(name: str) -> dict[str, Any]:
        return _legacy(
            {
                "id": "check",
                "type": "CheckAttribute",
                "parameters": [legacy_param("Attribute", name, namespace="User Defined")],
                "branches": [
                    {
                        "condition": "Evaluate",
                        "conditionType": "Equals",
                        "conditionValue": "1",
                        "transition": "bye",
                    },
                    {"condition": "NoMatch", "transition": "bye"},
                ],
            }
        )

    flow = load_flow(compare("it's"))
    assert flow.action("check").parameters == {"ComparisonValue": '$.Attributes.["it\'s"]'}
    with pytest.raises(FlowError, match="mixes both quotes") as info:
        load_flow(compare('"it\'s"'))
    assert info.value.action == "check"
