"""PCI redaction of transcript text (sans-I/O).

:func:`redact_pci` masks, in one utterance:

* card numbers: runs of 13 or more digits, written as numerals (with spaces, dashes or
  commas between groups) or spoken as words ("four one one one ...", "oh", "double five").
  A numeral run is masked when some 13-19 digit stretch of it passes the Luhn check; a run
  that contains spoken digits, or that follows card words ("card", "visa", "debit"...), is
  masked at 13-19 digits even if the check fails (recognisers drop or swap digits);
* CVV-like codes: a 3-4 digit run within a few words of "security code", "CVV", "CVC"...;
* expiry dates: a date-like run (``05/27``, ``0527``, "May twenty seven", "oh five two
  seven") within a few words after "expiry", "expires", "expiration", "exp date".

Ordinary numbers ("2 items", an order number that fails Luhn and is not near card words)
are left alone. :func:`redact_segments` applies it to CALLER segments and returns the
time spans to silence in exported audio.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

from callstream.analytics.abuse import SegmentLike

PCI_MASK = "[PCI]"

_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_MULT = {"double": 2, "triple": 3}
_TOKEN = re.compile(
    r"\d+|\b(?:" + "|".join(sorted([*_WORDS, *_MULT], key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_SEP = re.compile(r"[\s,\-]*")
_CARD_WORDS = re.compile(
    r"\b(?:card|visa|master\s*card|amex|american\s+express|discover|debit|credit|pan)\b", re.I
)
_CVV_WORDS = re.compile(
    r"\b(?:security\s+(?:code|number)|cvv2?|cvc2?|cv2|csc|card\s+verification"
    r"|(?:three|3|four|4)\s+digits?\s+on\s+the\s+(?:back|front))\b",
    re.I,
)
_EXP_WORDS = re.compile(r"\b(?:expir\w*|exp\.?\s+date|valid\s+(?:until|thru|through))\b", re.I)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_YEAR_WORDS = (
    r"(?:twenty(?:[\s\-]+(?:one|two|three|four|five|six|seven|eight|nine))?"
    r"|thirty(?:[\s\-]+(?:one|two|three|four|five))?|20\d\d|\d\d)"
)
_EXP_DATE = re.compile(
    rf"\b(?:\d{{1,2}}\s*/\s*\d{{2,4}}|{_MONTH}(?:\s+(?:of\s+)?(?:20\s*)?{_YEAR_WORDS})?)\b", re.I
)
_NEAR = 40  # characters between a keyword and the code it introduces


@dataclasses.dataclass
class _Run:
    start: int
    end: int
    digits: str
    spoken: bool


def _runs(text: str) -> list[_Run]:
    """Maximal runs of digits / digit words separated by spaces, commas or dashes."""
    runs: list[_Run] = []
    cur: _Run | None = None
    mult = 1
    for m in _TOKEN.finditer(text):
        tok = m.group(0).lower()
        joined = cur is not None and _SEP.fullmatch(text[cur.end : m.start()]) is not None
        if not joined:
            if cur is not None:
                runs.append(cur)
            cur = _Run(m.start(), m.end(), "", False)
            mult = 1
        assert cur is not None
        cur.end = m.end()
        if tok in _MULT:
            mult = _MULT[tok]
            continue
        if tok.isdigit():
            cur.digits += tok * mult if len(tok) == 1 else tok
        else:
            cur.digits += _WORDS[tok] * mult
            cur.spoken = True
        mult = 1
    if cur is not None:
        runs.append(cur)
    # a lone "oh"/"o"/"double" is not a number
    return [
        r
        for r in runs
        if r.digits
        and not (
            r.spoken
            and len(r.digits) == 1
            and not text[r.start : r.end].strip().isdigit()
            and text[r.start : r.end].lower() in ("oh", "o")
        )
    ]


def luhn_ok(digits: str) -> bool:
    """The Luhn check (mod 10) used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def has_luhn_window(digits: str) -> bool:
    """Whether some contiguous 13-19 digit stretch of ``digits`` passes the Luhn check."""
    n = len(digits)
    return any(
        luhn_ok(digits[i : i + k]) for k in range(13, min(19, n) + 1) for i in range(n - k + 1)
    )


def _is_card(text: str, run: _Run) -> bool:
    n = len(run.digits)
    if n < 13:
        return False
    if has_luhn_window(run.digits):
        return True
    if n > 19:
        return False
    if run.spoken:
        return True
    return _CARD_WORDS.search(text[max(0, run.start - 60) : run.start]) is not None


def _near(words: re.Pattern[str], text: str, start: int, end: int) -> bool:
    before = text[max(0, start - _NEAR) : start]
    after = text[end : end + _NEAR]
    return words.search(before) is not None or words.search(after) is not None


def find_pci(text: str) -> list[tuple[int, int]]:
    """Character spans of card numbers, CVV-like codes and expiry dates in ``text``."""
    spans: list[tuple[int, int]] = []
    for run in _runs(text):
        n = len(run.digits)
        cvv = 3 <= n <= 4 and _near(_CVV_WORDS, text, run.start, run.end)
        exp = 3 <= n <= 6 and _EXP_WORDS.search(text[max(0, run.start - _NEAR) : run.start])
        if cvv or exp or _is_card(text, run):
            spans.append((run.start, run.end))
    for m in _EXP_WORDS.finditer(text):
        for d in _EXP_DATE.finditer(text, m.end(), min(len(text), m.end() + _NEAR)):
            spans.append((d.start(), d.end()))
    return _merge(spans)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def redact_pci(text: str, mask: str | None = None) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with PCI data masked, and the masked character spans of the original.

    Each span becomes ``[PCI]``; with ``mask`` (one character) every digit or digit word
    character is replaced by it instead, keeping the length and separators.
    """
    spans = find_pci(text)
    parts: list[str] = []
    pos = 0
    for a, b in spans:
        parts.append(text[pos:a])
        if mask is None:
            parts.append(PCI_MASK)
        else:
            parts.append(re.sub(r"[0-9A-Za-z]", mask, text[a:b]))
        pos = b
    parts.append(text[pos:])
    return "".join(parts), spans


S = TypeVar("S", bound=SegmentLike)


def redact_segments(
    segments: Iterable[S], channels: Sequence[str] = ("CALLER",), mask: str | None = None
) -> tuple[list[S], list[tuple[str, float, float]]]:
    """Redacted copies of ``segments`` (only ``channels`` are touched; inputs are never
    modified) and the (segment_id, start, end) time spans to silence in exported audio.

    Without word timings, a span's time is estimated from its character position in the
    segment, widened by 0.25 s on each side and clipped to the segment.
    """
    out: list[S] = []
    silence: list[tuple[str, float, float]] = []
    for seg in segments:
        text = seg.Transcript or ""
        if seg.Channel not in channels:
            out.append(seg)
            continue
        red, spans = redact_pci(text, mask)
        if not spans:
            out.append(seg)
            continue
        if dataclasses.is_dataclass(seg) and not isinstance(seg, type):
            new = dataclasses.replace(seg, Transcript=red)
        else:
            new = copy.copy(seg)
            new.Transcript = red
        out.append(new)
        dur = max(0.0, seg.EndTime - seg.StartTime)
        n = max(1, len(text))
        for a, b in spans:
            t0 = max(seg.StartTime, seg.StartTime + dur * a / n - 0.25)
            t1 = min(seg.EndTime, seg.StartTime + dur * b / n + 0.25)
            silence.append((seg.SegmentId, t0, t1))
    return out, silence
