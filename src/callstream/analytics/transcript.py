"""Transcript segments in the LCA schema, parsed from text (sans-I/O).

Two input formats are read line by line (``parse_transcript``):

* **JSON Lines** of LCA-shaped segments (``analytics-lca.md`` §3, the custom
  ``ADD_TRANSCRIPT_SEGMENT`` shape): ``Channel`` (``CALLER``/``AGENT``; or ``IsCaller``),
  ``SegmentId``, ``StartTime``/``EndTime`` in seconds (numbers or numeric strings; or
  ``BeginOffsetMillis``/``EndOffsetMillis``), ``Transcript``, ``IsPartial`` and optionally
  ``Sentiment``/``SentimentScore``. A line may also be a whole call event with an
  ``EventType``: ``ADD_TRANSCRIPT_SEGMENT`` (alias ``SEGMENTS``) is read as a segment, the
  other event types (``START``, ``END``, ``UPDATE_AGENT`` ...) are skipped.
* **Text lines** ``CALLER: ...`` / ``AGENT: ...`` (``CUSTOMER`` is read as ``CALLER``),
  optionally preceded by a timestamp in brackets: ``[mm:ss]``, ``[hh:mm:ss]`` or seconds
  ``[12.5]``, or a range ``[00:05-00:09]``.

Times that the text does not give are estimated from the word count at 150 words per minute
(``WORDS_PER_SECOND``, at least ``MIN_SEGMENT_SECONDS``): an untimed line starts where the
previous line ended, a line with only a start time ends after its estimated duration.

Partial segments are replaced by the final segment with the same ``SegmentId`` (a partial
arriving after its final is ignored), as LCA's transcript view does. Blank lines and lines
starting with ``#`` are skipped. Errors raise ``TranscriptError`` naming the line number.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "CHANNELS",
    "MIN_SEGMENT_SECONDS",
    "WORDS_PER_SECOND",
    "Segment",
    "TranscriptError",
    "parse_transcript",
]

CHANNELS = ("CALLER", "AGENT")
WORDS_PER_SECOND = 150 / 60
"""Speaking rate used to estimate a segment's duration when the input gives none."""
MIN_SEGMENT_SECONDS = 0.5
SENTIMENT_LABELS = ("POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED")
# LCA channels that carry no speech of a call party: skipped, not an error
_SKIPPED_CHANNELS = {"AGENT_ASSISTANT", "CATEGORY_MATCH", "AGENT_VOICETONE", "CALLER_VOICETONE"}
_CHANNEL_ALIASES = {"CALLER": "CALLER", "CUSTOMER": "CALLER", "AGENT": "AGENT"}
_SEGMENT_EVENTS = {"ADD_TRANSCRIPT_SEGMENT", "SEGMENTS"}

_TIME = r"\d+(?::\d{1,2}){0,2}(?:\.\d+)?"
_TEXT_LINE = re.compile(
    rf"^\s*(?:\[\s*(?P<start>{_TIME})\s*(?:-\s*(?P<end>{_TIME})\s*)?\]\s*)?"
    r"(?P<channel>[A-Za-z_]+)\s*:\s*(?P<text>.*?)\s*$"
)


class TranscriptError(ValueError):
    """Bad transcript input; ``line`` is the 1-based line number (None: the whole input)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass
class Segment:
    """One transcript segment with LCA's ``TranscriptSegment`` fields (times in seconds)."""

    SegmentId: str
    Channel: str
    StartTime: float
    EndTime: float
    Transcript: str
    IsPartial: bool = False
    Sentiment: str | None = None
    SentimentScore: dict[str, float] | None = None
    SentimentWeighted: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The segment as an LCA JSON object."""
        return asdict(self)


def _estimate_seconds(text: str) -> float:
    return max(MIN_SEGMENT_SECONDS, len(text.split()) / WORDS_PER_SECOND)


def _clock(value: str) -> float:
    """``ss``, ``mm:ss`` or ``hh:mm:ss`` (fractions allowed) -> seconds."""
    seconds = 0.0
    for part in value.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _number(obj: dict[str, Any], key: str, lineno: int) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TranscriptError(f"{key} must be a number, got {value!r}", lineno)
    try:
        number = float(value)
    except ValueError:
        raise TranscriptError(f"{key} must be a number, got {value!r}", lineno) from None
    if not number >= 0 or number == float("inf"):
        raise TranscriptError(f"{key} must be a finite number >= 0, got {value!r}", lineno)
    return number


def _json_segment(obj: Any, lineno: int, cursor: float) -> Segment | None:
    if not isinstance(obj, dict):
        raise TranscriptError("a JSON line must be an object", lineno)
    event = obj.get("EventType")
    if event is not None and event not in _SEGMENT_EVENTS:
        return None  # START, END, UPDATE_AGENT, ...: not a segment
    raw_channel = obj.get("Channel")
    if raw_channel is None and isinstance(obj.get("IsCaller"), bool):
        raw_channel = "CALLER" if obj["IsCaller"] else "AGENT"
    if raw_channel in _SKIPPED_CHANNELS:
        return None
    if not isinstance(raw_channel, str) or raw_channel.upper() not in _CHANNEL_ALIASES:
        raise TranscriptError(f"Channel must be CALLER or AGENT, got {raw_channel!r}", lineno)
    channel = _CHANNEL_ALIASES[raw_channel.upper()]
    text = obj.get("Transcript")
    if not isinstance(text, str):
        raise TranscriptError("Transcript (a string) is missing", lineno)
    start = _number(obj, "StartTime", lineno)
    end = _number(obj, "EndTime", lineno)
    if start is None and (ms := _number(obj, "BeginOffsetMillis", lineno)) is not None:
        start = ms / 1000
    if end is None and (ms := _number(obj, "EndOffsetMillis", lineno)) is not None:
        end = ms / 1000
    if start is None:
        start = cursor
    if end is None:
        end = start + _estimate_seconds(text)
    if end < start:
        raise TranscriptError(f"EndTime {end:g} is before StartTime {start:g}", lineno)
    partial = obj.get("IsPartial", False)
    if not isinstance(partial, bool):
        raise TranscriptError(f"IsPartial must be true or false, got {partial!r}", lineno)
    segment_id = obj.get("SegmentId")
    if segment_id is None:
        segment_id = f"{channel}-{start:g}"
    if not isinstance(segment_id, str | int) or isinstance(segment_id, bool):
        raise TranscriptError(f"SegmentId must be a string, got {segment_id!r}", lineno)
    sentiment = obj.get("Sentiment")
    if sentiment is not None and sentiment not in SENTIMENT_LABELS:
        raise TranscriptError(
            f"Sentiment must be one of {', '.join(SENTIMENT_LABELS)}, got {sentiment!r}", lineno
        )
    score = obj.get("SentimentScore")
    if score is not None and not (
        isinstance(score, dict)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in score.values())
    ):
        raise TranscriptError("SentimentScore must be an object of numbers", lineno)
    return Segment(
        SegmentId=str(segment_id),
        Channel=channel,
        StartTime=start,
        EndTime=end,
        Transcript=text,
        IsPartial=partial,
        Sentiment=sentiment,
        SentimentScore={k: float(v) for k, v in score.items()} if score is not None else None,
    )


def _text_segment(line: str, lineno: int, cursor: float, index: int) -> Segment:
    m = _TEXT_LINE.match(line)
    if m is None:
        raise TranscriptError(
            "expected 'CALLER: text', 'AGENT: text' (optionally after a [mm:ss] time) "
            "or a JSON object",
            lineno,
        )
    channel = _CHANNEL_ALIASES.get(m["channel"].upper())
    if channel is None:
        raise TranscriptError(f"unknown speaker {m['channel']!r} (CALLER or AGENT)", lineno)
    text = m["text"]
    try:
        start = _clock(m["start"]) if m["start"] else cursor
        end = _clock(m["end"]) if m["end"] else start + _estimate_seconds(text)
    except ValueError:
        raise TranscriptError(f"bad time {m.group(0).split(']')[0]}]", lineno) from None
    if end < start:
        raise TranscriptError(f"end time {end:g} is before start time {start:g}", lineno)
    return Segment(
        SegmentId=f"{channel}-{index}",
        Channel=channel,
        StartTime=start,
        EndTime=end,
        Transcript=text,
    )


def parse_transcript(text: str) -> list[Segment]:
    """Parse a transcript (JSON Lines or ``CALLER:``/``AGENT:`` lines; see the module doc).

    Returns the segments ordered by start time, partials replaced by their finals.
    Raises ``TranscriptError`` (with the line number) on bad input or when no segment is found.
    """
    by_id: dict[str, Segment] = {}
    cursor = 0.0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise TranscriptError(
                    f"invalid JSON: {err.msg} (column {err.colno})", lineno
                ) from None
            segment = _json_segment(obj, lineno, cursor)
            if segment is None:
                continue
        else:
            segment = _text_segment(line, lineno, cursor, len(by_id))
        if segment.Transcript.strip() == "" and not segment.IsPartial:
            continue
        previous = by_id.get(segment.SegmentId)
        if previous is not None and not previous.IsPartial and segment.IsPartial:
            continue  # a late partial never replaces its final
        by_id[segment.SegmentId] = segment
        cursor = max(cursor, segment.EndTime)
    if not by_id:
        raise TranscriptError("no transcript segments found")
    return sorted(by_id.values(), key=lambda s: s.StartTime)
