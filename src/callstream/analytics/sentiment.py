"""Sentiment per segment, per channel, by quarter and trend, in LCA's method.

The method follows ``analytics-lca.md`` §5 (AWS Live Call Analytics), with VADER
(``vaderSentiment``, lexicon shipped in the package) in place of Amazon Comprehend:

* **Segment, label provided** (the input already carries ``Sentiment``): the label is kept
  and ``SentimentWeighted`` is LCA's ``SENTIMENT_WEIGHT``: POSITIVE 5, NEGATIVE -5,
  NEUTRAL 0, MIXED 0 (``eventprocessor.py``).
* **Segment, computed** (final segments only; partials are not scored): VADER's scores are
  mapped onto Comprehend's ``SentimentScore`` shape (see ``vader_scores``), the label is
  VADER's own convention (compound >= 0.05 POSITIVE, <= -0.05 NEGATIVE, else NEUTRAL; MIXED
  when the mixed score dominates), and the weighted score is LCA's
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
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from callstream.analytics.transcript import CHANNELS, Segment

__all__ = [
    "NEGATIVE_THRESHOLD",
    "POSITIVE_THRESHOLD",
    "SCALE_RANGE",
    "SENTIMENT_WEIGHT",
    "by_quarter",
    "channel_sentiment",
    "score_segments",
    "score_text",
    "trend",
    "vader_scores",
    "weighted_score",
]

SCALE_RANGE = 5
NEGATIVE_THRESHOLD = 0.4
POSITIVE_THRESHOLD = 0.4
SENTIMENT_WEIGHT = {"POSITIVE": 5.0, "NEGATIVE": -5.0, "NEUTRAL": 0.0, "MIXED": 0.0}
_COMPOUND_THRESHOLD = 0.05  # VADER's documented neutral band


@cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_scores(polarity: dict[str, float]) -> tuple[str, dict[str, float]]:
    """Map VADER ``polarity_scores`` output to a Comprehend-style (label, SentimentScore).

    Positive = max(compound, 0), Negative = max(-compound, 0); Mixed = twice the smaller of
    VADER's pos/neg proportions (how much of the text carries the losing polarity), at most
    1 - |compound|; Neutral = the rest, so the four sum to 1. The label is MIXED when Mixed
    beats both Positive and Negative, else VADER's compound convention.
    """
    compound = float(polarity["compound"])
    pos, neg = float(polarity["pos"]), float(polarity["neg"])
    positive, negative = max(compound, 0.0) + 0.0, max(-compound, 0.0) + 0.0  # no -0.0
    mixed = min(2 * min(pos, neg), 1 - abs(compound))
    neutral = max(0.0, 1.0 - positive - negative - mixed)
    score = {"Positive": positive, "Negative": negative, "Neutral": neutral, "Mixed": mixed}
    if mixed > max(positive, negative):
        label = "MIXED"
    elif compound >= _COMPOUND_THRESHOLD:
        label = "POSITIVE"
    elif compound <= -_COMPOUND_THRESHOLD:
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
    label, score = vader_scores(_analyzer().polarity_scores(text))
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
