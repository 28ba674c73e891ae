"""The per-call analytics export: one JSON object (``CallId``, ``Channels``, ``Segments``,
``Sentiment``, ``Categories``, ``Flags``, ``Summary``) built from transcript segments.

Hooks for the other analytics parts: ``redact`` rewrites each transcript before anything
else reads it (PCI masking), each of ``flaggers`` returns flags (for example
``{"Type": "ABUSIVE_CALLER", "SegmentIds": [...]}``) and each of ``categorizers`` returns
matched categories, both from the scored segments. Each exported segment also carries
``Flags``: the ``Type`` of every flag whose ``SegmentIds`` name it, in flag order without
repeats (``[]`` when none), so a reader can mark a segment without scanning the call's flags.

The summary is extractive: the ``summary_size`` final segments with the most information,
scored as the sum over their distinct content words (not stop words, 3+ letters) of
log(total content words in the call / occurrences of the word in the call), divided by the
square root of the segment's word count so long rambling segments do not always win;
they are returned in call order. Talk time per channel is the union of its segments' time
ranges; non-talk time is the call's duration that no segment covers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from callstream.analytics.sentiment import channel_sentiment, score_segments
from callstream.analytics.transcript import CHANNELS, Segment

__all__ = ["Categorizer", "Flagger", "Redactor", "analyze_transcript", "summarize", "talk_time"]

Flagger = Callable[[list[Segment]], list[dict[str, Any]]]
Categorizer = Callable[[list[Segment]], list[dict[str, Any]]]
Redactor = Callable[[Segment], str]

_WORD = re.compile(r"[a-z][a-z']+")
_STOP_WORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "and",
        "any",
        "are",
        "aren't",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "can",
        "can't",
        "could",
        "did",
        "didn't",
        "does",
        "doesn't",
        "doing",
        "don't",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hasn't",
        "have",
        "haven't",
        "having",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i'm",
        "i've",
        "into",
        "isn't",
        "it's",
        "its",
        "itself",
        "just",
        "let's",
        "like",
        "more",
        "most",
        "mustn't",
        "myself",
        "nor",
        "not",
        "now",
        "off",
        "once",
        "only",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "shouldn't",
        "some",
        "such",
        "than",
        "that",
        "that's",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "there's",
        "these",
        "they",
        "they're",
        "this",
        "those",
        "through",
        "too",
        "under",
        "until",
        "very",
        "was",
        "wasn't",
        "we're",
        "we've",
        "were",
        "weren't",
        "what",
        "what's",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won't",
        "would",
        "wouldn't",
        "yes",
        "you",
        "you're",
        "you've",
        "your",
        "yours",
        "yourself",
        "okay",
        "well",
        "yeah",
        "right",
        "one",
        "get",
        "got",
        "thank",
        "thanks",
        "please",
        "sure",
    ]
)


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _STOP_WORDS]


def summarize(segments: list[Segment], size: int = 3) -> list[Segment]:
    """The ``size`` most informative final segments, in call order (see the module doc)."""
    finals = [s for s in segments if not s.IsPartial]
    counts = Counter(w for s in finals for w in _content_words(s.Transcript))
    total = sum(counts.values())
    if total == 0:
        return []

    def information(seg: Segment) -> float:
        words = set(_content_words(seg.Transcript))
        if not words:
            return 0.0
        n = len(seg.Transcript.split())
        return sum(math.log(total / counts[w]) for w in words) / math.sqrt(n)

    ranked = sorted(finals, key=information, reverse=True)[:size]
    chosen = {id(s) for s in ranked if information(s) > 0}
    return [s for s in finals if id(s) in chosen]


def _union_seconds(ranges: list[tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, -1.0, -1.0
    for start, end in sorted(ranges):
        if start > cur_end:
            total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    return total + cur_end - cur_start


def talk_time(segments: list[Segment]) -> dict[str, Any]:
    """Seconds of speech per channel, the call's duration and its non-talk time."""
    finals = [s for s in segments if not s.IsPartial]
    duration = max((s.EndTime for s in finals), default=0.0)
    per_channel = {
        ch: round(_union_seconds([(s.StartTime, s.EndTime) for s in finals if s.Channel == ch]), 3)
        for ch in CHANNELS
    }
    spoken = _union_seconds([(s.StartTime, s.EndTime) for s in finals])
    return {
        "DurationSeconds": round(duration, 3),
        "TalkTimeSeconds": per_channel,
        "NonTalkTimeSeconds": round(max(0.0, duration - spoken), 3),
    }


def _flags_by_segment(flags: list[dict[str, Any]]) -> dict[str, list[str]]:
    """SegmentId -> the Types of the flags naming it (flag order, no repeats)."""
    by_segment: dict[str, list[str]] = {}
    for flag in flags:
        for segment_id in flag.get("SegmentIds", ()):
            types = by_segment.setdefault(segment_id, [])
            if flag["Type"] not in types:
                types.append(flag["Type"])
    return by_segment


def analyze_transcript(
    segments: list[Segment],
    call_id: str,
    *,
    redact: Redactor | None = None,
    flaggers: Sequence[Flagger] = (),
    categorizers: Sequence[Categorizer] = (),
    summary_size: int = 3,
) -> dict[str, Any]:
    """Score the segments (in place) and build the call's export object."""
    if redact is not None:
        for seg in segments:
            seg.Transcript = redact(seg)
    score_segments(segments)
    flags = [flag for flagger in flaggers for flag in flagger(segments)]
    categories = [cat for categorizer in categorizers for cat in categorizer(segments)]
    highlights = summarize(segments, summary_size)
    flagged = _flags_by_segment(flags)
    return {
        "CallId": call_id,
        "Channels": [
            {
                "Channel": f"ch_{i}",
                "Role": role,
                "Segments": sum(s.Channel == role for s in segments),
            }
            for i, role in enumerate(CHANNELS)
        ],
        "Segments": [{**s.to_json(), "Flags": flagged.get(s.SegmentId, [])} for s in segments],
        "Sentiment": channel_sentiment(segments),
        "Categories": categories,
        "Flags": flags,
        "Summary": {
            "Text": " ".join(f"{s.Channel}: {s.Transcript}" for s in highlights),
            "Highlights": [
                {
                    "SegmentId": s.SegmentId,
                    "Channel": s.Channel,
                    "StartTime": s.StartTime,
                    "Transcript": s.Transcript,
                }
                for s in highlights
            ],
            **talk_time(segments),
        },
    }
