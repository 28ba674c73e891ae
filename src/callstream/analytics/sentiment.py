"""Sentiment per segment, per channel, by quarter and trend, in LCA's method.

The method follows ``analytics-lca.md`` §5 (AWS Live Call Analytics), with VADER
(``vaderSentiment``, lexicon shipped in the package) in place of Amazon Comprehend:

* **Segment, label provided** (the input already carries ``Sentiment``): the label is kept
  and ``SentimentWeighted`` is LCA's ``SENTIMENT_WEIGHT``: POSITIVE 5, NEGATIVE -5,
  NEUTRAL 0, MIXED 0 (``eventprocessor.py``).
* **Segment, computed** (final segments only; partials are not scored): VADER's scores are
  mapped onto Comprehend's ``SentimentScore`` shape (see ``vader_scores``), the label is
  VADER's convention (compound >= 0.05 POSITIVE, <= :data:`NEGATIVE_COMPOUND` NEGATIVE,
  else NEUTRAL; MIXED when the mixed score dominates), and the weighted score is LCA's
  ``sentiment/weighted_sentiment.py`` exactly: only POSITIVE and NEGATIVE labels are
  weighted (MIXED/NEUTRAL -> None); if the Negative score is above the negative threshold
  (0.4) NEGATIVE overrides the label; a score below its threshold (0.4 for both) is
  discarded (None); otherwise the weighted score is +5 x Positive or -5 x Negative.
* **Channel overall**: the mean of the channel's ``SentimentWeighted`` values (segments
  with None are left out; 0.0 when none) = ``OverallSentiment`` (``call_event_processor.py``).
* **Quarters**: the call's time range [0, last EndTime] split into 4 equal quarters;
  each segment belongs to the quarter holding its EndTime; Score is the mean of its
  weighted values, 0 when it has none (``_get_sentiment_per_quarter``).
* **Trend**: the last quarter's Score compared with the mean of the previous quarters
  (quarters with EndOffsetMillis > 0): lower -> DOWN, higher -> UP, equal -> FLAT (UI
  ``common/sentiment.js getSentimentTrendLabel``).

VADER is tuned for social-media text; contact-centre customers complain in other words. Before
VADER reads an utterance (``vader_text``; the exported transcript is unchanged), the tables in
:mod:`callstream.analytics.cues` rewrite it:

* :data:`LEXICON_SUPPLEMENT` adds or re-weights single words (``overcharged``, ``shambles``,
  ``joke`` -1.0 instead of +1.2; ``cancel`` and ``sorry`` 0, they are routine requests);
* each :data:`PHRASE_CUES` match (``on hold for``, ``third time I'm calling``, ``nobody
  called``, ``still not working``, ``fed up``, ``switch to another provider``, ``spot on``
  ...) becomes one token carrying the cue's valence, so VADER's own negation ("I'm not fed
  up"), boosters and "but" rules still apply to it;
* :data:`NEUTRAL_SENSES` rewrite words VADER misreads in service talk ("my phone died",
  "shoot me an email", "kill the process", "risk assessment") and profanity intensifying
  praise ("damn good service", "hell of a good job" -> "really good");
* an utterance that is abusive on its own (:func:`callstream.analytics.abuse.is_abusive`)
  has each abusive hit scored as a strongly negative word, and its label is NEGATIVE
  whatever polite words surround the abuse;
* a caller saying how they feel ("I'm really disappointed", "I'm fuming", "I'm really
  stressed") or taking it outside ("I've consulted a lawyer", "consumer court", "I'll call
  the local news") makes the utterance NEGATIVE whatever else it holds, like abuse does;
* thanks before a complaint is politeness, not praise: "thanks for your help but ...", "I
  do appreciate it but ...", "you're very kind but ..." are read from the "but";
* sarcasm: a praise interjection ("oh great, ...", "oh that's great", "brilliant, ... just
  brilliant", "just what I needed") or a mocking phrase
  (:data:`~callstream.analytics.cues.MOCKING`: "love that for me", "you've outdone
  yourselves", "that's totally fine", "definitely coming this time", "really love paying
  for", "no problem at all", "wow thanks so much for") in an utterance whose other words
  are negative is scored as negative, and so is a praise word right after a complaint cue
  ("takes thirty working days, fantastic"). Two praise markers with a sarcastic lead are
  sarcasm on their own unless the rest is positive ("... just perfect, thank you").

The tables and the NEGATIVE threshold were tuned on labelled utterances in
``tests/analytics/data`` (the ``dev`` split, then each later holdout after its blind run);
the ``test`` and ``holdout2`` splits were never tuned on and measure them (README, "Call
analytics").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from callstream.analytics.abuse import SEGMENT_THRESHOLD, scan_text
from callstream.analytics.cues import (
    LEXICON_SUPPLEMENT,
    MOCKING,
    NEUTRAL_SENSES,
    PHRASE_CUES,
    SARCASM,
    SARCASM_AFTER_COMPLAINT,
    SARCASM_LEAD,
)
from callstream.analytics.transcript import CHANNELS, Segment

__all__ = [
    "LEXICON_SUPPLEMENT",
    "NEGATIVE_COMPOUND",
    "NEGATIVE_THRESHOLD",
    "NEUTRAL_SENSES",
    "PHRASE_CUES",
    "POSITIVE_THRESHOLD",
    "SCALE_RANGE",
    "SENTIMENT_WEIGHT",
    "by_quarter",
    "channel_sentiment",
    "score_segments",
    "score_text",
    "trend",
    "vader_scores",
    "vader_text",
    "weighted_score",
]

SCALE_RANGE = 5
NEGATIVE_THRESHOLD = 0.4
POSITIVE_THRESHOLD = 0.4
SENTIMENT_WEIGHT = {"POSITIVE": 5.0, "NEGATIVE": -5.0, "NEUTRAL": 0.0, "MIXED": 0.0}
_COMPOUND_THRESHOLD = 0.05  # VADER's documented neutral band (POSITIVE side)
NEGATIVE_COMPOUND = -0.15
"""A compound at or below this is NEGATIVE. VADER's own band is -0.05; on the dev split any
value in (-0.36, -0.05) separates the classes; -0.15 leaves a request with one weak word
(|valence| < 0.6, such as "hard") NEUTRAL."""

_FORCING_CUES = ("cue_i_feel_bad", "cue_go_public")
_ABUSE_VALENCE = {"PROFANITY": -2.5, "INSULT": -3.0, "THREAT": -3.5}
_CUES = [(name, re.compile("|".join(alts), re.IGNORECASE)) for name, _, alts in PHRASE_CUES]
_SENSES = [(re.compile(pattern, re.IGNORECASE), repl) for pattern, repl in NEUTRAL_SENSES]


@cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    class CallAnalyzer(SentimentIntensityAnalyzer):  # type: ignore[misc]
        """VADER, but a complaint cue is negated only by the word right before it: "not
        fed up" is not a complaint, "I never had and cue_wont_pay" still is."""

        @staticmethod
        def _negation_check(valence: float, words: list[str], start_i: int, i: int) -> float:
            if start_i > 0 and valence < 0 and str(words[i]).lower().startswith("cue_"):
                return valence
            result: float = SentimentIntensityAnalyzer._negation_check(valence, words, start_i, i)
            return result

    analyzer = CallAnalyzer()
    analyzer.lexicon.update(LEXICON_SUPPLEMENT)
    analyzer.lexicon.update({f"cue_{name}": valence for name, valence, _ in PHRASE_CUES})
    analyzer.lexicon.update({f"cue_{kind.lower()}": v for kind, v in _ABUSE_VALENCE.items()})
    analyzer.lexicon["cue_sarcasm"] = -1.5
    return analyzer


def vader_text(text: str) -> str:
    """``text`` as VADER reads it: abusive hits, phrase cues and neutral senses rewritten
    (see the module docstring)."""
    return _rewrite(text)[0]


def _rewrite(text: str) -> tuple[str, bool]:
    """(``text`` as VADER reads it, whether it is abusive on its own)."""
    hits = scan_text(text)
    abusive = sum(h.severity for h in hits) >= SEGMENT_THRESHOLD
    if abusive:
        for hit in sorted(hits, key=lambda h: h.start, reverse=True):
            if hit.severity > 0:
                text = f"{text[: hit.start]} cue_{hit.kind.lower()} {text[hit.end :]}"
    for rx, repl in _SENSES:
        text = rx.sub(repl, text)
    for name, rx in _CUES:
        text = rx.sub(f" cue_{name} ", text)
    text = SARCASM_AFTER_COMPLAINT.sub(r"\1 cue_sarcasm", text)
    return text, abusive


def _polarity(rewritten: str) -> dict[str, float]:
    """VADER's polarity of a rewritten utterance, with the sarcasm rule."""
    analyzer = _analyzer()
    polarity: dict[str, float] = analyzer.polarity_scores(rewritten)
    markers = len(SARCASM.findall(rewritten))
    if markers or MOCKING.search(rewritten):
        rest = analyzer.polarity_scores(MOCKING.sub(" ", SARCASM.sub(" ", rewritten)))
        if rest["compound"] <= NEGATIVE_COMPOUND or (
            markers > 1
            and SARCASM_LEAD.search(rewritten)
            and rest["compound"] < _COMPOUND_THRESHOLD  # not "... just perfect, thank you"
        ):
            sarcastic = MOCKING.sub(" cue_sarcasm ", SARCASM.sub(" cue_sarcasm ", rewritten))
            polarity = analyzer.polarity_scores(sarcastic)
    return polarity


def vader_scores(polarity: dict[str, float]) -> tuple[str, dict[str, float]]:
    """Map VADER ``polarity_scores`` output to a Comprehend-style (label, SentimentScore).

    Positive = max(compound, 0), Negative = max(-compound, 0); Mixed = twice the smaller of
    VADER's pos/neg proportions (how much of the text carries the losing polarity), at most
    1 - |compound|; Neutral = the rest, so the four sum to 1. The label is NEGATIVE for a
    negative compound whose positive words weigh less than 0.6 of its negative ones (a
    complaint with a polite or incidental word in it); else MIXED when Mixed beats both
    Positive and Negative; else VADER's compound convention.
    """
    compound = float(polarity["compound"])
    pos, neg = float(polarity["pos"]), float(polarity["neg"])
    positive, negative = max(compound, 0.0) + 0.0, max(-compound, 0.0) + 0.0  # no -0.0
    mixed = min(2 * min(pos, neg), 1 - abs(compound))
    neutral = max(0.0, 1.0 - positive - negative - mixed)
    score = {"Positive": positive, "Negative": negative, "Neutral": neutral, "Mixed": mixed}
    if compound <= NEGATIVE_COMPOUND and pos < 0.6 * neg:
        label = "NEGATIVE"  # a complaint stays one with a polite or incidental word in it
    elif mixed > max(positive, negative):
        label = "MIXED"
    elif compound >= _COMPOUND_THRESHOLD:
        label = "POSITIVE"
    elif compound <= NEGATIVE_COMPOUND:
        label = "NEGATIVE"
    else:
        label = "NEUTRAL"
    return label, {k: round(v, 4) for k, v in score.items()}


def weighted_score(
    label: str,
    score: dict[str, float],
    *,
    negative_threshold: float = NEGATIVE_THRESHOLD,
    positive_threshold: float = POSITIVE_THRESHOLD,
    scale_range: float = SCALE_RANGE,
) -> float | None:
    """LCA's weighted sentiment on the +-``scale_range`` scale (None: discarded)."""
    if label not in ("POSITIVE", "NEGATIVE"):
        return None
    positive = score.get("Positive", 0.0)
    negative = score.get("Negative", 0.0)
    key = "NEGATIVE" if negative > negative_threshold else label
    if (key == "NEGATIVE" and negative < negative_threshold) or (
        key == "POSITIVE" and positive < positive_threshold
    ):
        return None
    if key == "NEGATIVE":
        return -scale_range * negative
    return scale_range * positive


def score_text(text: str) -> tuple[str, dict[str, float], float | None]:
    """(label, SentimentScore, SentimentWeighted) of one utterance."""
    rewritten, abusive = _rewrite(text)
    label, score = vader_scores(_polarity(rewritten))
    if label != "NEGATIVE" and (abusive or any(cue in rewritten for cue in _FORCING_CUES)):
        # abuse, the caller saying they are upset or taking it to a lawyer or the press is
        # negative whatever polite or incidental words surround it
        label = "NEGATIVE"
    weighted = weighted_score(label, score)
    return label, score, None if weighted is None else round(weighted, 4)


def score_segments(segments: Iterable[Segment]) -> None:
    """Fill Sentiment, SentimentScore and SentimentWeighted of each final segment in place.

    A segment that already has a Sentiment label keeps it (weight from SENTIMENT_WEIGHT).
    """
    for seg in segments:
        if seg.IsPartial:
            continue
        if seg.Sentiment is not None:
            seg.SentimentWeighted = SENTIMENT_WEIGHT[seg.Sentiment]
            continue
        seg.Sentiment, seg.SentimentScore, seg.SentimentWeighted = score_text(seg.Transcript)


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def by_quarter(segments: list[Segment], channel: str) -> list[dict[str, Any]]:
    """The channel's weighted sentiment in each quarter of the call (LCA's QUARTER shape)."""
    finals = [s for s in segments if not s.IsPartial]
    end = max((s.EndTime for s in finals), default=0.0)
    quarters: list[dict[str, Any]] = []
    for i in range(4):
        begin, stop = end * i / 4, end * (i + 1) / 4
        values = [
            s.SentimentWeighted
            for s in finals
            if s.Channel == channel
            and s.SentimentWeighted is not None
            and (begin < s.EndTime <= stop or (i == 0 and s.EndTime == 0))
        ]
        quarters.append(
            {
                "BeginOffsetMillis": round(begin * 1000),
                "EndOffsetMillis": round(stop * 1000),
                "Score": _mean(values),
            }
        )
    return quarters


def trend(quarters: list[dict[str, Any]]) -> str:
    """UP, DOWN or FLAT: the last quarter against the mean of the previous ones."""
    values = [q["Score"] or 0.0 for q in quarters if q["EndOffsetMillis"] > 0]
    if len(values) <= 1:
        return "FLAT"
    last, previous = values[-1], sum(values[:-1]) / (len(values) - 1)
    if previous > last:
        return "DOWN"
    if previous < last:
        return "UP"
    return "FLAT"


def channel_sentiment(segments: list[Segment]) -> dict[str, dict[str, Any]]:
    """Per channel: ``Overall`` (mean weighted score), ``ByQuarter``, ``Trend``."""
    result: dict[str, dict[str, Any]] = {}
    for channel in CHANNELS:
        weights = [
            s.SentimentWeighted
            for s in segments
            if s.Channel == channel and not s.IsPartial and s.SentimentWeighted is not None
        ]
        quarters = by_quarter(segments, channel)
        result[channel] = {
            "Overall": _mean(weights),
            "ByQuarter": quarters,
            "Trend": trend(quarters),
        }
    return result
