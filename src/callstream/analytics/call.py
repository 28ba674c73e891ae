"""One call's live analytics: channel audio in, LCA-shaped call events out.

:class:`CallAnalysis` holds no sockets and runs no threads. Its driver (the live service,
or ``callstream analyze --input`` for a file) feeds each channel's PCM as it arrives
(:meth:`~CallAnalysis.audio`) and gets back :class:`UtteranceJob` s to recognise; it hands
each result back (:meth:`~CallAnalysis.recognized`) and gets the events to publish:

* ``TranscriptSegment`` for every partial and final (finals: PCI-redacted when spoken by
  the caller, scored for sentiment, scanned for abuse);
* ``CategoryMatched`` as rules match, ``CallAlert`` when the caller turns abusive or an
  alert category matches;
* at the end (:meth:`~CallAnalysis.finish`) the post-call ``CallSummary``; the export
  object (:meth:`~CallAnalysis.export`) is what ``analyze`` prints.

Segment times are seconds from the call's start (the channels share that origin); segment
ids are ``ch_0-<start>`` for the caller and ``ch_1-<start>`` for the agent, as LCA's are.
"""

from __future__ import annotations

import bisect
import re
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from callstream.analytics.abuse import find_abuse, scan_text
from callstream.analytics.asr import Recognition
from callstream.analytics.categories import CategoryMatcher, Match, Rule
from callstream.analytics.redaction import redact_pci
from callstream.analytics.report import analyze_transcript
from callstream.analytics.sentiment import score_text
from callstream.analytics.transcript import CHANNELS, Segment
from callstream.analytics.vad import SpeechEnded, SpeechSoFar, UtteranceSegmenter
from callstream.events.types import Event

__all__ = ["CallAnalysis", "CallSettings", "UtteranceJob", "interruptions", "segment_id"]

_POST_ROLL_S = 0.2
_ARRIVALS_KEPT = 1024


@dataclass(frozen=True, slots=True)
class CallSettings:
    """How calls are analysed (``callstream serve --analytics-*`` / ``analyze`` flags)."""

    rules: tuple[Rule, ...] = ()
    alert_categories: re.Pattern[str] | None = None
    """Categories whose match is also a ``CallAlert``."""
    redact: bool = True
    partials: bool = True
    partial_every_s: float = 2.0
    end_silence_ms: int = 600
    max_utterance_s: float = 20.0
    min_confidence: float = 0.0
    """Final segments below this recogniser confidence are dropped (0: keep all)."""


@dataclass(slots=True)
class UtteranceJob:
    """Audio of one channel's utterance to recognise."""

    role: str
    start: float
    end: float
    pcm: bytes
    final: bool
    spoken_at: float | None
    """Monotonic time the utterance's last word arrived (None: not live)."""

    @property
    def segment_id(self) -> str:
        return segment_id(self.role, self.start)


def segment_id(role: str, start: float) -> str:
    """LCA's segment id: ``ch_<channel index>-<start seconds>``."""
    return f"ch_{CHANNELS.index(role)}-{start:.3f}"


@dataclass(slots=True)
class _Channel:
    segmenter: UtteranceSegmenter
    seconds: float = 0.0  # audio fed so far
    arrivals: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=_ARRIVALS_KEPT)
    )  # (audio seconds fed, monotonic time)

    def arrived(self, at_seconds: float) -> float | None:
        """When the audio at ``at_seconds`` arrived."""
        for seconds, when in self.arrivals:
            if seconds >= at_seconds:
                return when
        return self.arrivals[-1][1] if self.arrivals else None


class CallAnalysis:
    """Live analytics of one call (see the module docstring)."""

    def __init__(
        self,
        call_id: str,
        settings: CallSettings | None = None,
        *,
        contact_id: str | None = None,
    ) -> None:
        self.call_id = call_id
        self.settings = settings or CallSettings()
        self.contact_id = contact_id
        s = self.settings
        self._channels = {
            role: _Channel(
                UtteranceSegmenter(
                    end_silence_ms=s.end_silence_ms,
                    max_utterance_s=s.max_utterance_s,
                    partial_every_s=s.partial_every_s if s.partials else 0.0,
                )
            )
            for role in CHANNELS
        }
        self.segments: dict[str, Segment] = {}
        self.confidence: dict[str, float] = {}
        self._finals: set[str] = set()  # segments whose final was handled, kept or not
        self._matcher = CategoryMatcher(s.rules)
        self._categories: list[Match] = []
        self._abusive_alerted = False
        self._finished = False

    # --- audio ---------------------------------------------------------------------------
    def audio(self, role: str, pcm: bytes, arrived: float | None = None) -> list[UtteranceJob]:
        """Feed ``role``'s next PCM (8 kHz s16le, on the call's timeline); ``arrived`` is
        the monotonic time it arrived (live calls). Returns the utterances to recognise."""
        channel = self._channels[role]
        channel.seconds += len(pcm) / 16000
        if arrived is not None:
            channel.arrivals.append((channel.seconds, arrived))
        return self._jobs(role, channel, channel.segmenter.feed(pcm))

    def end_audio(self) -> list[UtteranceJob]:
        """No more audio: the utterances still open end here."""
        jobs: list[UtteranceJob] = []
        for role, channel in self._channels.items():
            jobs += self._jobs(role, channel, channel.segmenter.flush())
        return jobs

    def seconds(self, role: str) -> float:
        """Audio seconds fed on ``role``'s channel."""
        return self._channels[role].seconds

    def _jobs(self, role: str, channel: _Channel, events: Iterable[object]) -> list[UtteranceJob]:
        jobs: list[UtteranceJob] = []
        for event in events:
            if isinstance(event, SpeechEnded):
                speech_end = max(event.start, event.end - (0.0 if event.cut else _POST_ROLL_S))
                spoken = channel.arrived(speech_end) if channel.arrivals else None
                jobs.append(UtteranceJob(role, event.start, event.end, event.pcm, True, spoken))
            elif isinstance(event, SpeechSoFar):
                jobs.append(UtteranceJob(role, event.start, event.end, event.pcm, False, None))
        return jobs

    # --- results -------------------------------------------------------------------------
    def recognized(
        self, job: UtteranceJob, result: Recognition | None, now: float | None = None
    ) -> list[Event]:
        """The events a recognised utterance makes: none for a skipped partial or a partial
        that arrives after its final; an empty final (which clears the segment's partials)
        for a final that heard nothing or is below ``min_confidence``."""
        if result is None:
            return []
        sid = job.segment_id
        text = result.text.strip()
        if not job.final:
            if sid in self._finals or not text or self._finished:
                return []
            return [self._segment_event(sid, job, text, partial=True)]
        if not text or result.confidence < self.settings.min_confidence:
            if sid in self._finals:
                return []
            self._finals.add(sid)
            # noise, or too unsure to keep: an empty final clears the partials shown so far
            return [self._segment_event(sid, job, "", partial=False)]
        self._finals.add(sid)
        issues: list[str] = []
        if job.role == "CALLER":
            if self.settings.redact:
                text = redact_pci(text)[0]
            issues = sorted({hit.kind for hit in scan_text(text)})
        label, scores, weighted = score_text(text)
        seg = Segment(
            sid,
            job.role,
            round(job.start, 3),
            round(job.end, 3),
            text,
            False,
            label,
            scores,
            weighted,
        )
        self.segments[sid] = seg
        self.confidence[sid] = round(result.confidence, 4)
        now = time.monotonic() if now is None else now
        latency = None if job.spoken_at is None else max(0, int((now - job.spoken_at) * 1000))
        events = [
            self._segment_event(
                sid,
                job,
                text,
                partial=False,
                extra={
                    "Sentiment": label,
                    "SentimentScore": scores,
                    "SentimentWeighted": weighted,
                    "Confidence": self.confidence[sid],
                    "Issues": issues or None,
                    "LatencyMs": latency,
                },
            )
        ]
        events += self._categorized(self._matcher.feed(seg))
        if job.role == "CALLER" and issues and not self._abusive_alerted:
            events += self._abuse_alert()
        return events

    def _segment_event(
        self,
        sid: str,
        job: UtteranceJob,
        text: str,
        *,
        partial: bool,
        extra: dict[str, Any] | None = None,
    ) -> Event:
        return Event.of(
            "TranscriptSegment",
            CallId=self.call_id,
            SegmentId=sid,
            Channel=job.role,
            StartTime=round(job.start, 3),
            EndTime=round(job.end, 3),
            Transcript=text,
            IsPartial=partial,
            ContactId=self.contact_id,
            **(extra or {}),
        )

    def _categorized(self, matches: Sequence[Match]) -> list[Event]:
        if not matches:
            return []
        self._categories += matches
        details = {
            m.category: {
                "TimestampRanges": [
                    {
                        "BeginOffsetMillis": round(m.start * 1000),
                        "EndOffsetMillis": round(m.end * 1000),
                    }
                ],
                "SegmentId": m.segment_id,
                "Phrase": m.phrase,
            }
            for m in matches
        }
        events = [
            Event.of(
                "CategoryMatched",
                CallId=self.call_id,
                MatchedCategories=[m.category for m in matches],
                MatchedDetails=details,
                ContactId=self.contact_id,
            )
        ]
        alert = self.settings.alert_categories
        for m in matches:
            if alert is not None and alert.search(m.category):
                events.append(
                    Event.of(
                        "CallAlert",
                        CallId=self.call_id,
                        AlertType="CATEGORY",
                        Category=m.category,
                        SegmentIds=[m.segment_id] if m.segment_id else [],
                        Evidence=[
                            {
                                "SegmentId": m.segment_id,
                                "StartTime": m.start,
                                "EndTime": m.end,
                                "Term": m.phrase,
                            }
                        ],
                        ContactId=self.contact_id,
                    )
                )
        return events

    def _abuse_alert(self) -> list[Event]:
        caller = sorted(
            (s for s in self.segments.values() if s.Channel == "CALLER"),
            key=lambda s: s.StartTime,
        )
        for flag in find_abuse(caller):
            if flag.kind != "ABUSIVE_CALLER":
                continue
            self._abusive_alerted = True
            return [
                Event.of(
                    "CallAlert",
                    CallId=self.call_id,
                    AlertType="ABUSIVE_CALLER",
                    SegmentIds=flag.segment_ids,
                    Evidence=[
                        {"SegmentId": sid, "StartTime": a, "EndTime": b, "Term": term}
                        for sid, a, b, term in flag.evidence
                    ],
                    ContactId=self.contact_id,
                )
            ]
        return []

    # --- the end -------------------------------------------------------------------------
    def finish(self, duration_s: float | None = None) -> list[Event]:
        """The call ended and every final is in: late categories and the summary."""
        self._finished = True
        end = duration_s if duration_s is not None else self.duration()
        events = self._categorized(self._matcher.finish(end))
        report = self.export()
        summary = report["Summary"]
        events.append(
            Event.of(
                "CallSummary",
                CallId=self.call_id,
                CallSummaryText=summary["Text"],
                Sentiment=report["Sentiment"],
                TalkTime={k: v for k, v in summary.items() if k not in ("Text", "Highlights")},
                Categories=sorted({c["Category"] for c in report["Categories"]}),
                Flags=sorted({f["Type"] for f in report["Flags"]}),
            )
        )
        return events

    def duration(self) -> float:
        """The call's length: the longer channel's audio."""
        return max(channel.seconds for channel in self._channels.values())

    def ordered_segments(self) -> list[Segment]:
        """Final segments in call order."""
        return sorted(self.segments.values(), key=lambda s: (s.StartTime, s.Channel))

    def export(self) -> dict[str, Any]:
        """The call's export object (``analyze``'s output): ``CallId``, ``Channels``,
        ``Segments``, ``Sentiment``, ``Categories``, ``Flags``, ``Summary``."""
        from callstream.analytics.commands import abuse_flags

        segments = [
            Segment(
                s.SegmentId,
                s.Channel,
                s.StartTime,
                s.EndTime,
                s.Transcript,
                s.IsPartial,
                s.Sentiment,
                s.SentimentScore,
                s.SentimentWeighted,
            )
            for s in self.ordered_segments()
        ]
        matches = list(self._categories)

        def categories(_: list[Any]) -> list[dict[str, Any]]:
            return [m.to_json() for m in matches]

        report = analyze_transcript(
            segments, self.call_id, flaggers=[abuse_flags], categorizers=[categories]
        )
        summary = report["Summary"]
        spoken = summary["DurationSeconds"] - summary["NonTalkTimeSeconds"]
        duration = max(summary["DurationSeconds"], round(self.duration(), 3))
        summary["DurationSeconds"] = duration
        summary["NonTalkTimeSeconds"] = round(max(0.0, duration - spoken), 3)
        summary["Interruptions"] = interruptions(segments)
        for seg in report["Segments"]:
            seg["Confidence"] = self.confidence.get(seg["SegmentId"])
        return report


def interruptions(segments: Sequence[Segment]) -> dict[str, int]:
    """Per channel, how often it started talking while the other channel was talking
    (more than a quarter second before the other's segment ended).

    O(n log n): per channel, the other channel's segments sorted by start with the
    running latest "talking until" mark, and a bisect per segment."""
    counts = dict.fromkeys(CHANNELS, 0)
    by_channel: dict[str, list[Segment]] = {}
    for seg in segments:
        by_channel.setdefault(seg.Channel, []).append(seg)
    talking: dict[str, tuple[list[float], list[float]]] = {}
    for channel, own in by_channel.items():
        ordered = sorted(own, key=lambda s: s.StartTime)
        starts = [s.StartTime for s in ordered]
        until: list[float] = []
        latest = float("-inf")
        for s in ordered:
            latest = max(latest, s.EndTime - 0.25)
            until.append(latest)
        talking[channel] = (starts, until)
    for seg in segments:
        for channel, (starts, until) in talking.items():
            if channel == seg.Channel:
                continue
            before = bisect.bisect_left(starts, seg.StartTime)
            if before and until[before - 1] > seg.StartTime:
                counts[seg.Channel] += 1
                break
    return counts
