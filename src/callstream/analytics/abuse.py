"""Abusive-caller detection on transcript text (sans-I/O).

Profanity and insults are matched per CALLER segment on whole words, case-insensitively,
so Scunthorpe, assessment, Essex, cocktail, Dickens, classic and grassland stay clean.
Obfuscations are undone: ``f*ck`` / ``f**k`` (a ``*`` stands for any letters of the term,
never the first one), repeated letters (``fuuuck``) and common look-alikes (``$hit``,
``@ss``, ``sh1t``). Threats are a separate kind.

Scoring (documented thresholds):

* each hit has a severity: mild profanity 1, strong profanity or an insult 2, a slur or an
  insult aimed at the listener ("you idiot") 3, a threat 5;
* a segment is abusive when its score reaches :data:`SEGMENT_THRESHOLD` (2);
* the call gets an ``ABUSIVE_CALLER`` flag when the caller's summed score reaches
  :data:`CALL_THRESHOLD` (4), or any single hit has severity >= 3 (threats included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

SEGMENT_THRESHOLD = 2
CALL_THRESHOLD = 4


class SegmentLike(Protocol):
    """Anything shaped like an LCA transcript segment."""

    SegmentId: str
    Channel: str
    StartTime: float
    EndTime: float
    Transcript: str


@dataclass
class Hit:
    """One matched term in a text: kind, the matched text, its character span, severity."""

    kind: str  # "PROFANITY" | "INSULT" | "THREAT"
    term: str
    start: int
    end: int
    severity: int


@dataclass
class Flag:
    """A flag raised on a call: ``PROFANITY``/``INSULT``/``THREAT`` per segment, or the
    call-level ``ABUSIVE_CALLER``. ``evidence`` holds (segment_id, start, end, term)."""

    kind: str
    segment_ids: list[str]
    evidence: list[tuple[str, float, float, str]] = field(default_factory=list)
    score: int = 0


# word -> (kind, severity). Inflected forms are listed explicitly: no stemming, so
# "assessment" can never reduce to "ass".
_WORDS: dict[str, tuple[str, int]] = {}


def _add(kind: str, severity: int, *words: str) -> None:
    for w in words:
        _WORDS[w] = (kind, severity)


_add(
    "PROFANITY",
    1,
    "damn",
    "damned",
    "dammit",
    "goddamn",
    "crap",
    "crappy",
    "bloody",
    "piss",
    "pissed",
    "arse",
    "bollocks",
    "bugger",
)
_add(
    "PROFANITY",
    2,
    "fuck",
    "fucks",
    "fucked",
    "fucker",
    "fuckers",
    "fucking",
    "fuckin",
    "fuckup",
    "shit",
    "shits",
    "shitty",
    "shite",
    "bullshit",
    "horseshit",
    "ass",
    "asses",
    "asshole",
    "assholes",
    "arsehole",
    "bitch",
    "bitches",
    "bitching",
    "bastard",
    "bastards",
    "dick",
    "dicks",
    "dickhead",
    "cock",
    "cocks",
    "prick",
    "pricks",
    "wanker",
    "wankers",
    "twat",
    "jackass",
    "dumbass",
    "shithead",
    "douche",
    "douchebag",
    "goddamnit",
)
_add(
    "PROFANITY",
    3,
    "cunt",
    "cunts",
    "motherfucker",
    "motherfuckers",
    "motherfucking",
    "whore",
    "slut",
)
_add(
    "INSULT",
    2,
    "idiot",
    "idiots",
    "idiotic",
    "moron",
    "morons",
    "moronic",
    "imbecile",
    "imbeciles",
    "cretin",
    "scumbag",
    "scum",
    "loser",
    "losers",
    "clown",
    "clowns",
    "retard",
    "retarded",
    "incompetent",
    "useless",
    "pathetic",
    "worthless",
    "stupid",
    "dumb",
    "dimwit",
    "halfwit",
    "numpty",
    "muppet",
)
# words that are only mildly rude unless aimed at someone ("this stupid form" vs "you're stupid")
_add("INSULT", 1, "stupid", "dumb", "useless", "pathetic", "worthless", "incompetent", "clown")

_LEET = str.maketrans(
    {"@": "a", "$": "s", "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "!": "i", "7": "t"}
)
_TOKEN = re.compile(r"[A-Za-z@$*0-9!]*[A-Za-z][A-Za-z@$*0-9!]*|[@$][A-Za-z@$*0-9!]+")


def _term_regex(word: str) -> re.Pattern[str]:
    # first letter literal (repeatable); later letters repeatable or masked by '*'
    parts = [re.escape(word[0]) + "+"]
    parts += [f"[{re.escape(c)}*]+" for c in word[1:]]
    return re.compile("".join(parts))


_REGEXES: dict[str, list[tuple[re.Pattern[str], str]]] = {}
for _w in _WORDS:
    _REGEXES.setdefault(_w[0], []).append((_term_regex(_w), _w))


def _canonical(token: str) -> str | None:
    """The listed word ``token`` spells (after undoing obfuscation), or None."""
    tok = token.lower().rstrip("!")
    if not tok or tok.isdigit():
        return None
    if tok in _WORDS:
        return tok
    tok = tok.translate(_LEET)
    if sum(c.isalpha() for c in tok) < 2 or not tok[0].isalpha():
        return None
    for rx, word in _REGEXES.get(tok[0], ()):
        if rx.fullmatch(tok):
            return word
    return None


_YOU = r"\byou(?:'re|r| are| r)?\s+(?:such\s+|a\s+|an\s+|so\s+|absolutely\s+|total\s+|complete\s+|fucking\s+|bloody\s+)*"
_DIRECTED = re.compile(
    _YOU + r"(idiots?|morons?|imbeciles?|clowns?|stupid|useless|incompetent|pathetic|worthless"
    r"|losers?|scum(?:bag)?|bitch|bastard|assholes?|dickheads?|pricks?|cunts?|twats?|retard(?:ed)?)\b",
    re.IGNORECASE,
)
_PHRASES = [
    (re.compile(r"\b(?:go\s+)?(?:fuck|screw)\s+(?:you|off|yourself)\b", re.I), "INSULT", 3),
    (re.compile(r"\bshut\s+(?:the\s+\w+\s+)?up\b", re.I), "INSULT", 2),
    (re.compile(r"\bpiece\s+of\s+(?:shit|crap|garbage|trash)\b", re.I), "INSULT", 3),
]
_THREATS = [
    re.compile(
        r"\bi(?:'ll|\s+will|'m\s+going\s+to|\s+am\s+going\s+to|'m\s+gonna|\s+am\s+gonna|\s+gonna)"
        r"\s+(?:come\s+(?:down|over|round)\s+(?:there\s+)?and\s+)?(?:\w+\s+)?(?:kill|hurt|shoot|stab|beat|strangle|murder|burn|smash|break)\b"
        r"(?:\s+(?:you|your|him|her|them|the|everyone|this))?",
        re.I,
    ),
    re.compile(r"\bi\s+know\s+where\s+you\s+(?:live|work|are)\b", re.I),
    re.compile(
        r"\byou(?:'ll|\s+will|'re\s+going\s+to|\s+are\s+going\s+to|'re\s+gonna)\s+regret\b", re.I
    ),
    re.compile(r"\bwatch\s+your\s+back\b", re.I),
    re.compile(r"\byou(?:'re|\s+are)\s+(?:a\s+)?dead(?:\s+(?:man|woman|meat))?\b", re.I),
    re.compile(r"\bi(?:'ll|\s+will)\s+(?:find|come\s+for|get)\s+you\b", re.I),
    re.compile(r"\bi(?:'ll|\s+will)\s+make\s+you\s+(?:pay|suffer|sorry)\b", re.I),
    re.compile(r"\b(?:you|your\s+family)\s+(?:won't|will\s+not)\s+be\s+safe\b", re.I),
]
_NEGATED = re.compile(r"\b(?:not|never|n't)\s*$", re.I)


def scan_text(text: str) -> list[Hit]:
    """All profanity, insult and threat hits in ``text``, in order of position."""
    hits: list[Hit] = []
    taken: list[tuple[int, int]] = []
    for rx in _THREATS:
        for m in rx.finditer(text):
            if _NEGATED.search(text[max(0, m.start() - 12) : m.start()]):
                continue
            if re.search(r"\b(?:not|never)\b|n't\b", m.group(0), re.I):
                continue
            hits.append(Hit("THREAT", m.group(0), m.start(), m.end(), 5))
    for m in _DIRECTED.finditer(text):
        hits.append(Hit("INSULT", m.group(0), m.start(), m.end(), 3))
        taken.append((m.start(), m.end()))
    for rx, kind, sev in _PHRASES:
        for m in rx.finditer(text):
            hits.append(Hit(kind, m.group(0), m.start(), m.end(), sev))
            taken.append((m.start(), m.end()))
    for m in _TOKEN.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        word = _canonical(m.group(0))
        if word is None:
            continue
        kind, sev = _WORDS[word]
        hits.append(Hit(kind, word, m.start(), m.end(), sev))
    hits.sort(key=lambda h: h.start)
    return hits


def text_score(text: str) -> int:
    """Summed severity of all hits in ``text``."""
    return sum(h.severity for h in scan_text(text))


def is_abusive(text: str) -> bool:
    """True when one utterance on its own is abusive (score >= :data:`SEGMENT_THRESHOLD`)."""
    return text_score(text) >= SEGMENT_THRESHOLD


def find_abuse(segments: Iterable[SegmentLike], channel: str = "CALLER") -> list[Flag]:
    """Flags for the ``channel`` segments of one call.

    One flag per segment and kind (``PROFANITY``, ``INSULT``, ``THREAT``) with its hits, then
    a call-level ``ABUSIVE_CALLER`` flag (all evidence, summed score) when the thresholds in
    the module docstring are passed. Other channels are ignored.
    """
    flags: list[Flag] = []
    total = 0
    worst = 0
    evidence: list[tuple[str, float, float, str]] = []
    seg_ids: list[str] = []
    for seg in segments:
        if seg.Channel != channel:
            continue
        hits = scan_text(seg.Transcript or "")
        if not hits:
            continue
        by_kind: dict[str, Flag] = {}
        for h in hits:
            ev = (seg.SegmentId, float(seg.StartTime), float(seg.EndTime), h.term)
            f = by_kind.setdefault(h.kind, Flag(h.kind, [seg.SegmentId]))
            f.evidence.append(ev)
            f.score += h.severity
            evidence.append(ev)
            total += h.severity
            worst = max(worst, h.severity)
        flags.extend(by_kind.values())
        seg_ids.append(seg.SegmentId)
    if total >= CALL_THRESHOLD or worst >= 3:
        flags.append(Flag("ABUSIVE_CALLER", seg_ids, evidence, total))
    return flags
