"""One call's live analytics (:class:`CallAnalysis`): utterances out of channel audio,
events out of recognised text (partials, redaction, abuse, categories, the summary) and
the export.

Recognition is scripted (a fixed text per utterance) so the analytics around it are what
is tested; real speech drives the voice activity part."""

from __future__ import annotations

import re
from typing import Any

import pytest
from analytics_helpers import needs_prompts, prompt, silence, voice_bounds
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.analytics.asr import Recognition
from callstream.analytics.call import (
    CallAnalysis,
    CallSettings,
    UtteranceJob,
    interruptions,
    segment_id,
)
from callstream.analytics.categories import Rule
from callstream.analytics.transcript import Segment
from callstream.events.types import Event


def final(role: str, start: float, end: float) -> UtteranceJob:
    return UtteranceJob(role, start, end, b"", True, None)


def partial(role: str, start: float, end: float) -> UtteranceJob:
    return UtteranceJob(role, start, end, b"", False, None)


def said(analysis: CallAnalysis, job: UtteranceJob, text: str, confidence: float = 0.9) -> list:
    return analysis.recognized(job, Recognition(text, confidence))


def of_type(events: list[Event], kind: str) -> list[dict[str, Any]]:
    return [e.fields for e in events if e.type == kind]


def feed_call(
    analysis: CallAnalysis, channels: dict[str, bytes], chunk: int = 1600
) -> list[UtteranceJob]:
    """Both channels in alternating 100 ms pieces, as a live call arrives, then the end."""
    jobs: list[UtteranceJob] = []
    longest = max(len(pcm) for pcm in channels.values())
    for i in range(0, longest, chunk):
        for role, pcm in channels.items():
            if i < len(pcm):
                jobs += analysis.audio(role, pcm[i : i + chunk])
    return jobs + analysis.end_audio()


@needs_prompts
def test_utterances_of_both_channels_get_lca_segment_ids() -> None:
    caller_voice, agent_voice = prompt("agent-alreadyon"), prompt("vm-instructions")
    caller = silence(0.5) + caller_voice + silence(9.0)
    agent = silence(7.0) + agent_voice + silence(1.0)
    analysis = CallAnalysis("call-1", CallSettings(partial_every_s=1.0))
    jobs = feed_call(analysis, {"CALLER": caller, "AGENT": agent})
    finals = [j for j in jobs if j.final]
    assert [j.role for j in finals] == ["CALLER", "AGENT"]
    for job, offset, voice in ((finals[0], 0.5, caller_voice), (finals[1], 7.0, agent_voice)):
        start, end = voice_bounds(voice)
        assert offset + start - 0.3 <= job.start <= offset + start
        assert offset + end <= job.end <= offset + end + 0.3
        assert len(job.pcm) == pytest.approx((job.end - job.start) * 16000, abs=2)
    assert finals[0].segment_id == f"ch_0-{finals[0].start:.3f}"
    assert finals[1].segment_id == f"ch_1-{finals[1].start:.3f}"
    assert re.fullmatch(r"ch_0-\d+\.\d{3}", finals[0].segment_id)
    # partials of an utterance carry its final's segment id
    partials = [j for j in jobs if not j.final]
    assert partials and {j.segment_id for j in partials} <= {j.segment_id for j in finals}
    assert analysis.seconds("CALLER") == pytest.approx(len(caller) / 16000)
    assert analysis.duration() == pytest.approx(max(len(caller), len(agent)) / 16000)
    events = []
    for job in jobs:
        text = "I cannot log in." if job.role == "CALLER" else "Let me help you."
        events += said(analysis, job, text)
    segments = of_type(events, "TranscriptSegment")
    assert {s["SegmentId"] for s in segments} == {j.segment_id for j in jobs}
    assert [s["SegmentId"] for s in segments if not s["IsPartial"]] == [
        j.segment_id for j in finals
    ]


@needs_prompts
def test_partials_are_off_when_the_settings_say_so() -> None:
    analysis = CallAnalysis("call-1", CallSettings(partials=False))
    jobs = feed_call(analysis, {"CALLER": silence(0.5) + prompt("vm-instructions")})
    assert jobs and all(j.final for j in jobs)


def test_segment_id_is_the_channel_index_and_start() -> None:
    assert segment_id("CALLER", 1.5) == "ch_0-1.500"
    assert segment_id("AGENT", 12.34567) == "ch_1-12.346"


def test_a_partial_after_its_final_is_dropped() -> None:
    analysis = CallAnalysis("call-1")
    first = said(analysis, partial("CALLER", 1.0, 3.0), "I would like")
    assert of_type(first, "TranscriptSegment")[0]["IsPartial"] is True
    assert said(analysis, partial("CALLER", 1.0, 3.0), "") == []  # nothing heard yet
    events = said(analysis, final("CALLER", 1.0, 4.0), "I would like to pay.")
    assert of_type(events, "TranscriptSegment")[0]["IsPartial"] is False
    assert said(analysis, partial("CALLER", 1.0, 3.5), "I would like to") == []
    other = partial("AGENT", 5.0, 6.0)
    assert analysis.recognized(other, None) == []  # a skipped partial: nothing
    assert of_type(said(analysis, other, "Sure"), "TranscriptSegment")[0]["IsPartial"]


def test_an_empty_final_clears_its_partials_and_later_ones_stay_dropped() -> None:
    analysis = CallAnalysis("call-1")
    said(analysis, partial("CALLER", 1.0, 3.0), "uh")
    (cleared,) = of_type(said(analysis, final("CALLER", 1.0, 3.5), "  "), "TranscriptSegment")
    assert (cleared["Transcript"], cleared["IsPartial"]) == ("", False)
    assert said(analysis, partial("CALLER", 1.0, 3.0), "uh huh") == []
    assert said(analysis, final("CALLER", 1.0, 3.5), "") == []  # once is enough
    assert analysis.segments == {}


def test_a_final_below_min_confidence_clears_its_partials() -> None:
    analysis = CallAnalysis("call-1", CallSettings(min_confidence=0.5))
    said(analysis, partial("CALLER", 1.0, 3.0), "hello there")
    events = said(analysis, final("CALLER", 1.0, 4.0), "hello there friend", confidence=0.2)
    (cleared,) = of_type(events, "TranscriptSegment")
    assert (cleared["Transcript"], cleared["IsPartial"]) == ("", False)
    assert said(analysis, partial("CALLER", 1.0, 3.0), "hello there") == []
    assert analysis.segments == {}
    kept = said(analysis, final("CALLER", 5.0, 6.0), "Goodbye.", confidence=0.8)
    assert of_type(kept, "TranscriptSegment")[0]["Transcript"] == "Goodbye."


def test_card_numbers_are_redacted_for_the_caller_only() -> None:
    analysis = CallAnalysis("call-1")
    spoken = "my card number is 4111 1111 1111 1111"
    caller = of_type(said(analysis, final("CALLER", 1.0, 4.0), spoken), "TranscriptSegment")[0]
    agent = of_type(said(analysis, final("AGENT", 5.0, 8.0), spoken), "TranscriptSegment")[0]
    assert "4111" not in caller["Transcript"] and "1111" not in caller["Transcript"]
    assert caller["Transcript"].startswith("my card number is ")
    assert agent["Transcript"] == spoken
    export = analysis.export()
    assert "4111" not in export["Segments"][0]["Transcript"]
    unredacted = CallAnalysis("call-2", CallSettings(redact=False))
    kept = said(unredacted, final("CALLER", 1.0, 4.0), spoken)
    assert of_type(kept, "TranscriptSegment")[0]["Transcript"] == spoken


def test_an_abusive_caller_raises_one_alert_with_its_evidence() -> None:
    analysis = CallAnalysis("call-1", contact_id="contact-1")
    events = said(analysis, final("AGENT", 0.5, 1.5), "You stupid idiot, I hate this.")
    events += said(analysis, final("CALLER", 2.0, 4.0), "Hello, I need help with my bill.")
    events += said(analysis, final("CALLER", 5.0, 7.0), "This is damn crap.")
    assert of_type(events, "CallAlert") == []  # mild so far, and the agent does not count
    events += said(analysis, final("CALLER", 8.0, 9.5), "You are a fucking idiot.")
    events += said(analysis, final("CALLER", 10.0, 11.0), "Shit, you moron.")
    (alert,) = of_type(events, "CallAlert")
    assert alert["AlertType"] == "ABUSIVE_CALLER" and alert["ContactId"] == "contact-1"
    assert alert["SegmentIds"] == ["ch_0-5.000", "ch_0-8.000"]
    assert {e["SegmentId"] for e in alert["Evidence"]} == {"ch_0-5.000", "ch_0-8.000"}
    assert all(e["Term"] for e in alert["Evidence"])
    issues = [s.get("Issues") for s in of_type(events, "TranscriptSegment")]
    assert issues[0] is None and issues[1] is None and issues[3]
    flags = analysis.export()["Flags"]
    assert "ABUSIVE_CALLER" in {f["Type"] for f in flags}


def test_category_rules_report_matches_with_millisecond_ranges() -> None:
    rules = (
        Rule("cancellation", phrases=["cancel my account"], channel="CALLER"),
        Rule("greeting", phrases=["thank you for calling"], channel="AGENT"),
    )
    analysis = CallAnalysis("call-1", CallSettings(rules=rules))
    greeting = said(analysis, final("AGENT", 0.5, 2.0), "Thank you for calling, how can I help?")
    (matched,) = of_type(greeting, "CategoryMatched")
    assert matched["MatchedCategories"] == ["greeting"]
    assert matched["MatchedDetails"] == {
        "greeting": {
            "TimestampRanges": [{"BeginOffsetMillis": 500, "EndOffsetMillis": 2000}],
            "SegmentId": "ch_1-0.500",
            "Phrase": "Thank you for calling",
        }
    }
    # segment times are multiples of 20 ms that are not exact in binary (4.02 * 1000 < 4020)
    events = said(analysis, final("CALLER", 4.02, 8.06), "I want to cancel my account today.")
    (matched,) = of_type(events, "CategoryMatched")
    assert matched["MatchedDetails"]["cancellation"]["TimestampRanges"] == [
        {"BeginOffsetMillis": 4020, "EndOffsetMillis": 8060}
    ]
    assert of_type(events, "CallAlert") == []  # not an alert category
    again = said(analysis, final("CALLER", 9.0, 10.0), "Cancel my account, I said.")
    assert of_type(again, "CategoryMatched") == []  # once per call
    categories = analysis.export()["Categories"]
    assert [c["Category"] for c in categories] == ["greeting", "cancellation"]


def test_alert_categories_raise_a_category_alert() -> None:
    settings = CallSettings(
        rules=(
            Rule("legal-threat", phrases=["my lawyer"], channel="CALLER"),
            Rule("billing", phrases=["my bill"]),
        ),
        alert_categories=re.compile(r"^legal"),
    )
    analysis = CallAnalysis("call-1", settings)
    events = said(analysis, final("CALLER", 1.0, 3.0), "About my bill: I will call my lawyer.")
    assert sorted(of_type(events, "CategoryMatched")[0]["MatchedCategories"]) == [
        "billing",
        "legal-threat",
    ]
    (alert,) = of_type(events, "CallAlert")
    assert (alert["AlertType"], alert["Category"]) == ("CATEGORY", "legal-threat")
    assert alert["SegmentIds"] == ["ch_0-1.000"]
    assert alert["Evidence"][0]["Term"] == "my lawyer"


def scripted_call(**settings: Any) -> CallAnalysis:
    analysis = CallAnalysis("call-1", CallSettings(**settings))
    said(analysis, final("AGENT", 0.5, 2.5), "Thank you for calling, how can I help you today?")
    said(analysis, final("CALLER", 2.0, 6.0), "My internet has been down for three days.")
    said(analysis, final("AGENT", 6.5, 9.0), "I am sorry, let me check the outage for you.")
    said(analysis, final("CALLER", 8.0, 10.0), "This is terrible service.", confidence=0.42)
    return analysis


def test_finish_publishes_the_call_summary() -> None:
    analysis = scripted_call(rules=(Rule("no-apology", phrases=["sorry"], negate=True),))
    analysis.audio("CALLER", silence(12.0))
    events = analysis.finish()
    assert [e.type for e in events] == ["CallSummary"]  # the agent did apologise
    summary = events[-1].fields
    assert summary["CallId"] == "call-1"
    assert summary["CallSummaryText"]
    assert set(summary["Sentiment"]) == {"CALLER", "AGENT"}
    assert summary["TalkTime"]["DurationSeconds"] == 12.0
    assert summary["Categories"] == [] and summary["Flags"] == []
    late = said(analysis, partial("CALLER", 11.0, 12.0), "hello?")
    assert late == []  # the call is over: no more partials


def test_finish_decides_negated_categories() -> None:
    analysis = scripted_call(rules=(Rule("no-goodbye", phrases=["goodbye"], negate=True),))
    events = analysis.finish()
    assert of_type(events, "CategoryMatched")[0]["MatchedCategories"] == ["no-goodbye"]
    assert of_type(events, "CallSummary")[0]["Categories"] == ["no-goodbye"]


def test_export_has_channels_segments_sentiment_and_talk_time() -> None:
    analysis = scripted_call()
    analysis.audio("CALLER", silence(12.0))
    export = analysis.export()
    assert export["CallId"] == "call-1"
    assert [(c["Channel"], c["Role"], c["Segments"]) for c in export["Channels"]] == [
        ("ch_0", "CALLER", 2),
        ("ch_1", "AGENT", 2),
    ]
    segments = export["Segments"]
    assert [s["StartTime"] for s in segments] == [0.5, 2.0, 6.5, 8.0]  # call order
    assert [s["Confidence"] for s in segments] == [0.9, 0.9, 0.9, 0.42]
    assert all(s["Sentiment"] in ("POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED") for s in segments)
    assert segments[3]["Sentiment"] == "NEGATIVE"
    assert set(export["Sentiment"]) == {"CALLER", "AGENT"}
    summary = export["Summary"]
    assert summary["DurationSeconds"] == 12.0  # the audio, not the last word
    assert summary["TalkTimeSeconds"] == {"CALLER": 6.0, "AGENT": 4.5}
    # spoken by anyone: 0.5..6.0 and 6.5..10.0
    assert summary["NonTalkTimeSeconds"] == pytest.approx(12.0 - 9.0)
    assert summary["Interruptions"] == {"CALLER": 2, "AGENT": 0}
    assert summary["Text"]


def seg(channel: str, start: float, end: float) -> Segment:
    return Segment(f"{channel}-{start}", channel, start, end, "words")


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ([], {"CALLER": 0, "AGENT": 0}),
        # turn taking: one starts after (or just as) the other stops
        ([seg("CALLER", 0, 2), seg("AGENT", 2, 4), seg("CALLER", 4.5, 5)], (0, 0)),
        # the agent starts 1 s before the caller's end
        ([seg("CALLER", 0, 3), seg("AGENT", 2, 4)], (0, 1)),
        # overlapping by less than a quarter second is not an interruption
        ([seg("CALLER", 0, 3), seg("AGENT", 2.8, 4)], (0, 0)),
        # a backchannel inside the other's turn counts once per segment
        ([seg("CALLER", 0, 10), seg("AGENT", 2, 3), seg("AGENT", 5, 6)], (0, 2)),
        # both ways
        ([seg("CALLER", 0, 3), seg("AGENT", 2, 6), seg("CALLER", 5, 7)], (1, 1)),
        # the same channel never interrupts itself
        ([seg("CALLER", 0, 5), seg("CALLER", 1, 2)], (0, 0)),
        # starting together is nobody's interruption
        ([seg("CALLER", 1, 3), seg("AGENT", 1, 3)], (0, 0)),
    ],
)
def test_interruptions(segments: list[Segment], expected: Any) -> None:
    if isinstance(expected, tuple):
        expected = {"CALLER": expected[0], "AGENT": expected[1]}
    assert interruptions(segments) == expected


def _interruptions_by_definition(segments: list[Segment]) -> dict[str, int]:
    counts = {"CALLER": 0, "AGENT": 0}
    for s in segments:
        if any(
            o.Channel != s.Channel and o.StartTime < s.StartTime < o.EndTime - 0.25
            for o in segments
        ):
            counts[s.Channel] += 1
    return counts


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["CALLER", "AGENT"]),
            st.integers(0, 400).map(lambda t: t / 4),
            st.integers(1, 40).map(lambda d: d / 8),
        ),
        max_size=40,
    )
)
def test_interruptions_match_their_definition_on_any_call(spans: list[Any]) -> None:
    """The sorted count (a long call has thousands of segments) agrees with the plain
    pairwise definition."""
    segments = [seg(channel, start, start + length) for channel, start, length in spans]
    assert interruptions(segments) == _interruptions_by_definition(segments)
