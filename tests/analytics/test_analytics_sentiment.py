"""Sentiment in LCA's method (analytics-lca.md §5) with VADER, and the export object."""

from __future__ import annotations

import pytest

from callstream.analytics.report import analyze_transcript
from callstream.analytics.sentiment import score_text, trend, vader_text, weighted_score
from callstream.analytics.transcript import parse_transcript

FURIOUS_THEN_CALM = """\
[00:00] CALLER: This is absolutely unacceptable, I am furious and your service is terrible!
[00:06] AGENT: I understand. Let me look up your account.
[00:12] CALLER: You people are useless, I hate waiting, this is the worst company ever.
[00:20] AGENT: I am checking the order now.
[00:30] CALLER: Okay.
[00:34] AGENT: The order was shipped to the old address. I will send a new one today.
[00:44] CALLER: Oh, that is great, thank you so much, I really appreciate your help!
[00:50] AGENT: The replacement arrives on Tuesday.
[00:56] CALLER: Wonderful, thanks, you have been very helpful.
"""


def test_weighted_score_follows_lca() -> None:
    # NEGATIVE overrides when the Negative score is above 0.4, even for a POSITIVE label
    assert weighted_score("POSITIVE", {"Positive": 0.5, "Negative": 0.45}) == pytest.approx(-2.25)
    # below the thresholds: discarded
    assert weighted_score("POSITIVE", {"Positive": 0.3, "Negative": 0.0}) is None
    assert weighted_score("NEGATIVE", {"Positive": 0.0, "Negative": 0.39}) is None
    assert weighted_score("POSITIVE", {"Positive": 0.8, "Negative": 0.0}) == pytest.approx(4.0)
    assert weighted_score("NEGATIVE", {"Positive": 0.0, "Negative": 1.0}) == pytest.approx(-5)
    assert weighted_score("MIXED", {"Positive": 0.9, "Negative": 0.9}) is None
    assert weighted_score("NEUTRAL", {"Positive": 0.9, "Negative": 0.0}) is None


def test_score_text_labels() -> None:
    assert score_text("You are useless idiots, this is the worst service ever.")[0] == "NEGATIVE"
    assert score_text("Thank you so much, that was wonderful.")[0] == "POSITIVE"
    label, score, weighted = score_text("The invoice is in the email.")
    assert label == "NEUTRAL" and weighted is None
    assert sum(score.values()) == pytest.approx(1, abs=1e-3)
    assert score_text("I love the product but the delivery was terrible.")[0] == "MIXED"


def test_trend_compares_last_quarter_with_previous_mean() -> None:
    q = [{"EndOffsetMillis": i * 1000 + 1000, "Score": v} for i, v in enumerate([-4, -2, 0, 3])]
    assert trend(q) == "UP"
    q[-1]["Score"] = -5
    assert trend(q) == "DOWN"
    assert trend([{"EndOffsetMillis": 1000, "Score": 2.0}]) == "FLAT"


def test_furious_customer_calming_down() -> None:
    report = analyze_transcript(parse_transcript(FURIOUS_THEN_CALM), "call-1")
    caller, agent = report["Sentiment"]["CALLER"], report["Sentiment"]["AGENT"]
    assert caller["Trend"] == "UP"
    scores = [q["Score"] for q in caller["ByQuarter"]]
    assert scores[0] < 0 < scores[-1]
    end_ms = round(report["Segments"][-1]["EndTime"] * 1000)
    assert caller["ByQuarter"][-1]["EndOffsetMillis"] == end_ms
    assert [q["BeginOffsetMillis"] for q in caller["ByQuarter"]] == [
        round(end_ms * i / 4) for i in range(4)
    ]
    assert agent["Overall"] == 0 and agent["Trend"] == "FLAT"
    segs = report["Segments"]
    assert segs[0]["Sentiment"] == "NEGATIVE" and segs[0]["SentimentWeighted"] < -2
    assert segs[-1]["Sentiment"] == "POSITIVE" and segs[-1]["SentimentWeighted"] > 2
    assert report["CallId"] == "call-1"
    assert report["Categories"] == [] and report["Flags"] == []
    summary = report["Summary"]
    assert summary["TalkTimeSeconds"]["CALLER"] > 0 and summary["TalkTimeSeconds"]["AGENT"] > 0
    assert len(summary["Highlights"]) == 3
    starts = [h["StartTime"] for h in summary["Highlights"]]
    assert starts == sorted(starts)
    assert "Okay." not in {h["Transcript"] for h in summary["Highlights"]}


def test_provided_labels_kept_and_partials_not_scored() -> None:
    text = (
        '{"Channel": "CALLER", "SegmentId": "s1", "StartTime": 0, "EndTime": 2,'
        ' "Transcript": "I hate this", "Sentiment": "POSITIVE"}\n'
        '{"Channel": "AGENT", "SegmentId": "s2", "StartTime": 2, "EndTime": 4,'
        ' "Transcript": "terrible awful", "IsPartial": true}\n'
    )
    report = analyze_transcript(parse_transcript(text), "c")
    s1, s2 = report["Segments"]
    assert s1["Sentiment"] == "POSITIVE" and s1["SentimentWeighted"] == 5
    assert s2["Sentiment"] is None and s2["SentimentWeighted"] is None
    assert report["Sentiment"]["CALLER"]["Overall"] == 5


def test_hooks_redact_flag_categorize() -> None:
    segs = parse_transcript("CALLER: my card is 4111 1111 1111 1111\nAGENT: thanks")
    report = analyze_transcript(
        segs,
        "c",
        redact=lambda s: "".join("#" if c.isdigit() else c for c in s.Transcript),
        flaggers=[lambda ss: [{"Type": "TEST", "SegmentIds": [ss[0].SegmentId]}]],
        categorizers=[lambda ss: [{"Name": "Billing"}]],
    )
    assert "4111" not in report["Segments"][0]["Transcript"]
    assert report["Flags"] == [{"Type": "TEST", "SegmentIds": ["CALLER-0"]}]
    assert report["Categories"] == [{"Name": "Billing"}]


def test_talk_time_merges_overlaps() -> None:
    segs = parse_transcript("[0-4] CALLER: a b\n[2-6] CALLER: c d\n[10-12] AGENT: e")
    summary = analyze_transcript(segs, "c")["Summary"]
    assert summary["TalkTimeSeconds"] == {"CALLER": 6, "AGENT": 2}
    assert summary["DurationSeconds"] == 12 and summary["NonTalkTimeSeconds"] == 4


@pytest.mark.parametrize(
    ("text", "label"),
    [
        # thanks, and sarcasm that reads like it
        ("perfect that's exactly what i needed", "POSITIVE"),
        ("oh great another recorded message exactly what i needed today", "NEGATIVE"),
        ("great so i paid for express delivery and it's coming in ten days lovely", "NEGATIVE"),
        # spoken fillers and answers are not feelings
        ("yeah no that's not good enough", "NEGATIVE"),
        ("yeah cheers for nothing i suppose", "NEGATIVE"),
        ("the bill's gone up by like thirty quid and no one told me", "NEGATIVE"),
        # resignation, broken promises, repeated contact
        ("so i'm just supposed to sit here without heating then", "NEGATIVE"),
        ("this is the fourth time i've had to ring about the same bill", "NEGATIVE"),
        ("i've repeated my date of birth like six times now", "NEGATIVE"),
        ("the broadband speed is nowhere near what you advertised", "NEGATIVE"),
        # profanity at a fault is frustration, though it is not abuse (no one is its target)
        ("this fucking printer jammed again", "NEGATIVE"),
        ("the laptop you sold me keeps overheating", "NEGATIVE"),
    ],
)
def test_spoken_complaints_and_sarcasm(text: str, label: str) -> None:
    assert score_text(text)[0] == label, vader_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "we've got the fire alarm test on thursday so could the engineer come after eleven",
        "the house is at the dead end of the lane",
        "i'm after the number for the lost property office",
        "i need to shoot off in ten minutes so can we do the quick version",
        "the engine is dead i think it's the battery can you send someone out",
        "damn where did i put it ok here's the card",
        "i need to claim for a cracked windscreen what's the excess on that",
    ],
)
def test_harmless_words_that_sound_alarming_are_not_negative(text: str) -> None:
    assert score_text(text)[0] != "NEGATIVE", vader_text(text)
