"""Call categories as user rules, matched live on transcript segments (sans-I/O).

A rule file is JSON (or YAML when PyYAML is importable), either a list of rules or
``{"categories": [...]}``. Each rule::

    {"name": "cancellation",              # required, unique
     "phrases": ["cancel my account"],     # or "regex": "cancel+ (my )?(account|plan)"
     "channel": "CALLER",                  # CALLER | AGENT | ANY (default ANY)
     "window": {"first": 60},              # or {"last": 30} or {"start": 10, "end": 70}
     "negate": false}                      # true: matches when the phrase is ABSENT

Phrases match whole words, case-insensitively, with any whitespace between words. A
positive rule matches live (``feed``), once per call, at its first matching segment; rules
with a ``last`` window and negated rules can only be decided when the call ends
(``finish``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callstream.analytics.abuse import SegmentLike

CHANNELS = ("CALLER", "AGENT", "ANY")


class RuleError(ValueError):
    """A rule file or rule is invalid; the message names the rule and the field."""


@dataclass
class Rule:
    """One category rule. Window bounds are seconds from the call start."""

    name: str
    phrases: list[str] = field(default_factory=list)
    regex: str | None = None
    channel: str = "ANY"
    first: float | None = None
    last: float | None = None
    start: float | None = None
    end: float | None = None
    negate: bool = False

    def __post_init__(self) -> None:
        src = self.regex if self.regex is not None else None
        if src is None:
            alts = [r"\s+".join(re.escape(w) for w in p.split()) for p in self.phrases]
            src = r"\b(?:" + "|".join(alts) + r")\b"
        self._rx = re.compile(src, re.IGNORECASE)

    def search(self, text: str) -> re.Match[str] | None:
        """The first match of the rule's phrases or regex in ``text``."""
        return self._rx.search(text)

    def in_window(self, seg_start: float, seg_end: float, call_end: float | None = None) -> bool:
        """Whether a segment overlaps the rule's time window (``last`` needs ``call_end``)."""
        if self.first is not None and seg_start >= self.first:
            return False
        if self.start is not None and seg_end < self.start:
            return False
        if self.end is not None and seg_start > self.end:
            return False
        if self.last is not None:
            return call_end is not None and seg_end > call_end - self.last
        return True

    def wants(self, channel: str) -> bool:
        """Whether segments of ``channel`` are considered."""
        return self.channel == "ANY" or self.channel == channel


@dataclass
class Match:
    """A matched category: the segment and phrase that matched (None/"" for a negated rule,
    whose span is the window searched)."""

    category: str
    segment_id: str | None
    start: float
    end: float
    phrase: str

    def to_json(self) -> dict[str, Any]:
        """The match as an entry of the export's ``Categories``."""
        return {
            "Category": self.category,
            "SegmentId": self.segment_id,
            "StartTime": self.start,
            "EndTime": self.end,
            "Phrase": self.phrase,
        }


def _num(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RuleError(f"rule {name!r}: field {key!r} must be a number >= 0, got {value!r}")
    return float(value)


def parse_rule(raw: Any, index: int = 0) -> Rule:
    """One rule from its dict form; :class:`RuleError` names the rule and the bad field."""
    if not isinstance(raw, Mapping):
        raise RuleError(f"rule #{index}: must be an object, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleError(f"rule #{index}: field 'name' is required (a non-empty string)")
    known = {"name", "phrases", "regex", "channel", "window", "negate"}
    extra = sorted(set(raw) - known)
    if extra:
        raise RuleError(f"rule {name!r}: unknown field {extra[0]!r}")
    phrases = raw.get("phrases", [])
    if isinstance(phrases, str):
        phrases = [phrases]
    if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
        raise RuleError(f"rule {name!r}: field 'phrases' must be a list of non-empty strings")
    regex = raw.get("regex")
    if (regex is None) == (not phrases):
        raise RuleError(f"rule {name!r}: give exactly one of field 'phrases' or 'regex'")
    if regex is not None:
        if not isinstance(regex, str) or not regex:
            raise RuleError(f"rule {name!r}: field 'regex' must be a non-empty string")
        try:
            re.compile(regex)
        except re.error as e:
            raise RuleError(f"rule {name!r}: field 'regex' is not a valid regex: {e}") from None
    channel = str(raw.get("channel", "ANY")).upper()
    if channel not in CHANNELS:
        raise RuleError(f"rule {name!r}: field 'channel' must be one of {', '.join(CHANNELS)}")
    negate = raw.get("negate", False)
    if not isinstance(negate, bool):
        raise RuleError(f"rule {name!r}: field 'negate' must be true or false")
    rule = Rule(name, list(phrases), regex, channel, negate=negate)
    window = raw.get("window")
    if window is not None:
        if not isinstance(window, Mapping) or not window:
            raise RuleError(f"rule {name!r}: field 'window' must be an object")
        keys = set(window)
        bad = sorted(keys - {"first", "last", "start", "end"})
        if bad:
            raise RuleError(f"rule {name!r}: field 'window.{bad[0]}' is not known")
        if len(keys & {"first", "last"}) + bool(keys & {"start", "end"}) > 1:
            raise RuleError(f"rule {name!r}: field 'window' takes first, last or start/end")
        for k in keys:
            setattr(rule, k, _num(name, f"window.{k}", window[k]))
        if rule.start is not None and rule.end is not None and rule.end < rule.start:
            raise RuleError(f"rule {name!r}: field 'window.end' is before 'window.start'")
    return rule


def parse_rules(data: Any) -> list[Rule]:
    """Rules from a decoded rule file (a list, or an object with ``categories``)."""
    if isinstance(data, Mapping):
        if "categories" not in data:
            raise RuleError("rule file: expected a list or an object with field 'categories'")
        data = data["categories"]
    if not isinstance(data, list):
        raise RuleError("rule file: field 'categories' must be a list")
    rules = [parse_rule(r, i) for i, r in enumerate(data)]
    seen: set[str] = set()
    for r in rules:
        if r.name in seen:
            raise RuleError(f"rule {r.name!r}: field 'name' is used twice")
        seen.add(r.name)
    return rules


def load_rules(path: str | Path) -> list[Rule]:
    """Rules from a ``.json`` file, or ``.yaml``/``.yml`` when PyYAML is installed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RuleError(f"rule file {p}: cannot read: {e.strerror}") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise RuleError(f"rule file {p}: YAML needs PyYAML; use JSON instead") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RuleError(f"rule file {p}: invalid YAML: {e}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RuleError(f"rule file {p}: invalid JSON at line {e.lineno}: {e.msg}") from None
    return parse_rules(data)


class CategoryMatcher:
    """Incremental matcher for one call: ``feed`` each final segment, ``finish`` at the end."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self.matched: set[str] = set()
        self._found: dict[str, bool] = {r.name: False for r in self.rules if r.negate}
        self._pending: list[SegmentLike] = []  # kept only for rules with a 'last' window
        self._need_tail = any(r.last is not None for r in self.rules)

    def _hit(self, rule: Rule, seg: SegmentLike, call_end: float | None) -> re.Match[str] | None:
        if not rule.wants(seg.Channel):
            return None
        if not rule.in_window(seg.StartTime, seg.EndTime, call_end):
            return None
        return rule.search(seg.Transcript or "")

    def feed(self, segment: SegmentLike) -> list[Match]:
        """Categories newly matched by this segment (each category at most once per call)."""
        out: list[Match] = []
        if self._need_tail:
            self._pending.append(segment)
        for rule in self.rules:
            if rule.last is not None or rule.name in self.matched:
                continue
            m = self._hit(rule, segment, None)
            if m is None:
                continue
            if rule.negate:
                self._found[rule.name] = True
            else:
                self.matched.add(rule.name)
                out.append(
                    Match(rule.name, segment.SegmentId, segment.StartTime, segment.EndTime, m[0])
                )
        return out

    def finish(self, call_end: float) -> list[Match]:
        """Categories decided at the end of the call: negated rules whose phrase never
        occurred in their window, and rules with a ``last`` window."""
        out: list[Match] = []
        for rule in self.rules:
            if rule.name in self.matched:
                continue
            hit: tuple[SegmentLike, re.Match[str]] | None = None
            if rule.last is not None:
                for seg in self._pending:
                    m = self._hit(rule, seg, call_end)
                    if m is not None:
                        hit = (seg, m)
                        break
            elif rule.negate and self._found[rule.name]:
                continue
            if rule.negate:
                if hit is not None:
                    continue
                lo = rule.start or 0.0
                if rule.last is not None:
                    lo = max(0.0, call_end - rule.last)
                hi = min(call_end, rule.end if rule.end is not None else call_end)
                if rule.first is not None:
                    hi = min(hi, rule.first)
                out.append(Match(rule.name, None, lo, hi, ""))
            elif hit is not None:
                seg, m = hit
                out.append(Match(rule.name, seg.SegmentId, seg.StartTime, seg.EndTime, m[0]))
            else:
                continue
            self.matched.add(rule.name)
        return out
