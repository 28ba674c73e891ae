"""JSONPath references, templating, restriction classes and condition operators."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.flows import Contact, Instance, MediaStream, Queue
from callstream.flows.actions import OPERATORS, Restriction
from callstream.flows.conditions import first_match, matches, to_number
from callstream.flows.jsonpath import (
    ROOTS,
    check_restriction,
    evaluate,
    find_references,
    parse_reference,
    render,
    resolve,
)
from callstream.flows.model import Condition, ConditionBranch


def _contact() -> Contact:
    instance = Instance()
    contact = Contact.new(instance=instance, contact_id="c-1", attributes={"name": "Ada", "n": "7"})
    contact.external = {"status": "ok", "nested": {"a": {"b": "deep"}}, "list": ["x", "y"]}
    contact.queue = instance.with_queues(Queue("Sales", outbound_caller_id="+15550001")).find_queue(
        "Sales"
    )
    contact.stored_customer_input = "1234"
    contact.name = "Task name"
    contact.media_streams.append(
        MediaStream("arn:aws:kinesisvideo:us-east-1:1:stream/s/1", "9134385233318", 1700000000123)
    )
    return contact


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("$.Attributes.name", "Ada"),
        ("$.Attributes['name']", "Ada"),
        ('$.Attributes["name"]', "Ada"),
        ("$.Attributes.missing", None),
        ("$.External.status", "ok"),
        ("$.External.nested.a.b", "deep"),
        ("$.External.list.1", "y"),
        ("$.Lex.IntentName", None),
        ("$.MediaStreams.Customer.Audio.StreamARN", "arn:aws:kinesisvideo:us-east-1:1:stream/s/1"),
        ("$.MediaStreams.Customer.Audio.StartTimestamp", "1700000000123"),
        ("$.MediaStreams.Customer.Audio.StartFragmentNumber", "9134385233318"),
        ("$.MediaStreams.Customer.Audio.StopTimestamp", None),
        ("$.Channel", "VOICE"),
        ("$.ContactId", "c-1"),
        ("$.InitialContactId", "c-1"),
        ("$.CustomerEndpoint.Address", "+15555550100"),
        ("$.SystemEndpoint.Address", "+15555550199"),
        ("$.Queue.Name", "Sales"),
        ("$.Queue.OutboundCallerId.Address", "+15550001"),
        ("$.StoredCustomerInput", "1234"),
        ("$.Name", "Task name"),
        ("$.Agent.UserName", None),
    ],
)
def test_resolve(path: str, value: object) -> None:
    assert resolve(path, _contact()) == value


def test_queue_arn_and_stop_timestamp() -> None:
    contact = _contact()
    assert str(resolve("$.Queue.ARN", contact)).startswith("arn:aws:connect:us-east-1:")
    contact.media_streams[0].stop_timestamp_ms = 1700000009999
    assert resolve("$.MediaStreams.Customer.Audio.StopTimestamp", contact) == "1700000009999"


def test_render_templates() -> None:
    contact = _contact()
    assert render("My name is $.Attributes.name.", contact) == "My name is Ada."
    assert render("$.Attributes.name/$.ContactId", contact) == "Ada/c-1"
    assert render("missing: [$.Attributes.nope]", contact) == "missing: []"
    assert render("costs $.50 and $.Unknown.x", contact) == "costs $.50 and $.Unknown.x"
    assert render("obj $.External.nested.a", contact) == 'obj {"b":"deep"}'
    assert evaluate({"k": "$.Attributes.n", "l": ["$.Channel"]}, contact) == {
        "k": "7",
        "l": ["VOICE"],
    }


def test_parse_reference() -> None:
    ref = parse_reference(" $.Attributes['a b'] ")
    assert ref is not None and ref.path == ("Attributes", "a b") and ref.known
    assert parse_reference("x $.Attributes.a") is None
    assert parse_reference("$.Nope.x") is not None and not parse_reference("$.Nope.x").known  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        resolve("not a path", _contact())


def test_restriction_classes() -> None:
    assert check_restriction("Enabled", Restriction.STATIC) == (None, [])
    err, _ = check_restriction("$.Attributes.x", Restriction.STATIC)
    assert err is not None and "statically" in err
    assert check_restriction("$.Attributes.x", Restriction.PATH) == (None, [])
    assert check_restriction("plain", Restriction.PATH) == (None, [])
    err, _ = check_restriction("q-$.Attributes.x", Restriction.PATH)
    assert err is not None and "single JSONPath" in err
    err, warnings = check_restriction("$.Bogus.x", Restriction.PATH)  # newer consoles add roots
    assert err is None and "unknown JSONPath root" in warnings[0]
    assert check_restriction("$.FlowAttributes.x", Restriction.PATH) == (None, [])
    err, _ = check_restriction("+15550100", Restriction.PATH_ONLY)
    assert err is not None
    assert check_restriction("Hi $.Attributes.x", Restriction.DYNAMIC) == (None, [])
    err, notes = check_restriction({"k": "Hi $.Bogus.x"}, Restriction.DYNAMIC)
    assert err is None and notes and "Bogus" in notes[0]


# --- hypothesis: templating -------------------------------------------------------------------

literal = st.text(alphabet=st.characters(blacklist_characters="$"), max_size=12)
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
values = st.text(max_size=10)


@given(
    attrs=st.dictionaries(keys, values, max_size=5),
    parts=st.lists(st.tuples(literal, keys), max_size=5),
    tail=literal,
)
def test_templating_substitutes_each_reference(
    attrs: dict[str, str], parts: list[tuple[str, str]], tail: str
) -> None:
    contact = Contact.new(attributes=attrs)
    # a reference must not run into following word characters: separate with a space
    template = "".join(f"{text} $.Attributes.{key} " for text, key in parts) + tail
    expected = "".join(f"{text} {attrs.get(key, '')} " for text, key in parts) + tail
    assert render(template, contact) == expected
    assert [r.path for r in find_references(template)] == [("Attributes", k) for _, k in parts]


@given(st.sampled_from(sorted(ROOTS)), st.lists(keys, max_size=3))
def test_every_root_parses_as_a_single_reference(root: str, segments: list[str]) -> None:
    path = ".".join(["$", root, *segments])
    ref = parse_reference(path)
    assert ref is not None and ref.path == (root, *segments) and ref.known
    assert check_restriction(path, Restriction.PATH) == (None, [])


# --- condition operators -----------------------------------------------------------------------

numbers = st.decimals(
    allow_nan=False, allow_infinity=False, places=3, min_value=-1e6, max_value=1e6
)


@given(numbers, numbers)
def test_number_operators_agree_with_decimal_order(a: Decimal, b: Decimal) -> None:
    x, y = str(a), str(b)
    assert matches("NumberGreaterThan", x, y) == (a > b)
    assert matches("NumberGreaterOrEqualTo", x, y) == (a >= b)
    assert matches("NumberLessThan", x, y) == (a < b)
    assert matches("NumberLessOrEqualTo", x, y) == (a <= b)
    assert matches("NumberGreaterThan", x, y) != matches("NumberLessOrEqualTo", x, y)


@given(st.text(max_size=8), st.text(max_size=8))
def test_text_operators(value: str, operand: str) -> None:
    assert matches("Equals", value, operand) == (value == operand)
    assert matches("TextStartsWith", value, operand) == value.startswith(operand)
    assert matches("TextEndsWith", value, operand) == value.endswith(operand)
    assert matches("TextContains", value, operand) == (operand in value)
    assert matches("TextContains", operand + value, operand)


@given(st.text(alphabet="abcxyz ", min_size=1, max_size=6), numbers)
def test_non_numbers_never_match_number_operators(word: str, n: Decimal) -> None:
    for op in OPERATORS:
        if op.startswith("Number"):
            assert not matches(op, word, str(n))
            assert not matches(op, str(n), word)


def test_numbers_parse_leniently_but_finitely() -> None:
    assert to_number(" 10 ") == Decimal(10)
    assert to_number("1e3") == Decimal(1000)
    assert to_number("NaN") is None and to_number("Infinity") is None and to_number("") is None
    assert matches("NumberGreaterThan", "10", "9")  # numerically, not as text
    assert not matches("Equals", "1.0", "1")  # Equals compares text


def test_first_match_is_ordered() -> None:
    branches = [
        ConditionBranch(Condition("NumberLessThan", ("5",)), "low"),
        ConditionBranch(Condition("NumberLessThan", ("50",)), "mid"),
        ConditionBranch(Condition("Equals", ("3",)), "never"),
    ]
    hit = first_match(branches, "3")
    assert hit is not None and hit.next_action == "low"
    hit = first_match(branches, "7")
    assert hit is not None and hit.next_action == "mid"
    assert first_match(branches, "77") is None
