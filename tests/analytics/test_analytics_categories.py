"""Category rules: live matching, windows, negation, and clear errors for bad rule files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callstream.analytics.categories import CategoryMatcher, RuleError, load_rules, parse_rules
from callstream.analytics.transcript import Segment as Seg

RULES = {
    "categories": [
        {
            "name": "cancel",
            "phrases": ["cancel my account", "close my account"],
            "channel": "CALLER",
        },
        {
            "name": "greeting",
            "regex": r"thank(s| you) for calling",
            "channel": "AGENT",
            "window": {"first": 15},
        },
        {
            "name": "no-greeting",
            "phrases": ["thank you for calling"],
            "channel": "AGENT",
            "window": {"first": 15},
            "negate": True,
        },
        {
            "name": "no-closing",
            "phrases": ["anything else"],
            "channel": "AGENT",
            "window": {"last": 30},
            "negate": True,
        },
        {
            "name": "supervisor",
            "phrases": ["supervisor", "manager"],
            "window": {"start": 20, "end": 60},
        },
    ]
}

CALL = [
    Seg("a1", "AGENT", 0.5, 3.0, "Thank you for calling Acme, this is Dana."),
    Seg("c1", "CALLER", 3.2, 7.0, "Hi, I want to CANCEL   my account please."),
    Seg("c2", "CALLER", 8.0, 10.0, "Get me your manager."),
    Seg("a2", "AGENT", 25.0, 28.0, "Let me get my manager for you."),
    Seg("a3", "AGENT", 100.0, 104.0, "Is there anything else I can help with?"),
]


def run(rules: list, segs: list[Seg], end: float) -> tuple[list, list]:
    m = CategoryMatcher(rules)
    live = [x for s in segs for x in m.feed(s)]
    return live, m.finish(end)


def test_live_matches_channel_and_windows() -> None:
    live, final = run(parse_rules(RULES), CALL, 110.0)
    got = [(x.category, x.segment_id) for x in live]
    # manager at 8 s is before the 20-60 s window; the agent's at 25 s is inside it
    assert got == [("greeting", "a1"), ("cancel", "c1"), ("supervisor", "a2")]
    assert live[1].phrase == "CANCEL   my account"
    assert final == []  # greeting and closing both happened


def test_each_category_once_per_call() -> None:
    rules = parse_rules([{"name": "cancel", "phrases": ["cancel"]}])
    segs = [Seg(f"s{i}", "CALLER", i, i + 1, "cancel it, cancel") for i in range(3)]
    live, _ = run(rules, segs, 5.0)
    assert len(live) == 1


def test_word_boundaries() -> None:
    rules = parse_rules([{"name": "cancel", "phrases": ["cancel"]}])
    live, _ = run(rules, [Seg("s", "CALLER", 0, 1, "the cancellation fee")], 2.0)
    assert live == []


def test_negated_rules_match_when_phrase_absent() -> None:
    segs = [
        Seg("a1", "AGENT", 1.0, 3.0, "Yeah, what do you want?"),
        Seg("a2", "AGENT", 20.0, 23.0, "Thank you for calling."),  # too late for the window
        Seg("a3", "AGENT", 95.0, 98.0, "Bye."),
    ]
    live, final = run(parse_rules(RULES), segs, 100.0)
    assert [x.category for x in live] == []
    cats = {x.category: x for x in final}
    assert set(cats) == {"no-greeting", "no-closing"}
    assert (cats["no-greeting"].start, cats["no-greeting"].end) == (0.0, 15.0)
    assert (cats["no-closing"].start, cats["no-closing"].end) == (70.0, 100.0)
    assert cats["no-closing"].segment_id is None


def test_last_window_positive_rule_decided_at_finish() -> None:
    rules = parse_rules([{"name": "angry-end", "phrases": ["ridiculous"], "window": {"last": 10}}])
    m = CategoryMatcher(rules)
    assert m.feed(Seg("c1", "CALLER", 1, 2, "ridiculous")) == []
    assert m.feed(Seg("c2", "CALLER", 45, 48, "this is ridiculous")) == []
    [hit] = m.finish(50.0)
    assert hit.segment_id == "c2"


def test_load_rules_json(tmp_path: Path) -> None:
    p = tmp_path / "rules.json"
    p.write_text(json.dumps(RULES))
    assert [r.name for r in load_rules(p)] == [r["name"] for r in RULES["categories"]]


def test_load_rules_yaml(tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="PyYAML not installed")
    p = tmp_path / "rules.yaml"
    p.write_text("categories:\n  - name: refund\n    phrases: [refund]\n    channel: caller\n")
    [r] = load_rules(p)
    assert (r.name, r.channel) == ("refund", "CALLER")


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ({"phrases": ["x"]}, "rule #0: field 'name'"),
        ({"name": "r"}, "rule 'r': give exactly one of field 'phrases' or 'regex'"),
        ({"name": "r", "phrases": ["x"], "regex": "x"}, "exactly one"),
        ({"name": "r", "regex": "(unclosed"}, "rule 'r': field 'regex' is not a valid regex"),
        ({"name": "r", "phrases": ["x"], "channel": "BOTH"}, "rule 'r': field 'channel'"),
        ({"name": "r", "phrases": ["x"], "window": {"first": -1}}, "field 'window.first'"),
        ({"name": "r", "phrases": ["x"], "window": {"first": "ten"}}, "field 'window.first'"),
        ({"name": "r", "phrases": ["x"], "window": {"from": 1}}, "field 'window.from'"),
        ({"name": "r", "phrases": ["x"], "window": {"first": 1, "last": 2}}, "field 'window'"),
        ({"name": "r", "phrases": ["x"], "window": {"start": 5, "end": 1}}, "'window.end'"),
        ({"name": "r", "phrases": ["x"], "negate": "yes"}, "field 'negate'"),
        ({"name": "r", "phrases": [""]}, "field 'phrases'"),
        ({"name": "r", "phrases": ["x"], "colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_bad_rules_name_rule_and_field(rule: dict, needle: str) -> None:
    with pytest.raises(RuleError) as e:
        parse_rules([rule])
    assert needle in str(e.value)


def test_duplicate_names_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="used twice"):
        parse_rules([{"name": "a", "phrases": ["x"]}, {"name": "a", "phrases": ["y"]}])
    p = tmp_path / "bad.json"
    p.write_text('{"categories": [}')
    with pytest.raises(RuleError, match="invalid JSON at line 1"):
        load_rules(p)
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(tmp_path / "missing.json")
    with pytest.raises(RuleError, match="'categories'"):
        parse_rules({"rules": []})
