"""The call-centre rules added to the classifiers: directed insults, threats and their
look-alikes, the sentiment supplement (phrase cues, neutral senses, sarcasm) and the
per-segment ``Flags`` of the export."""

from __future__ import annotations

import pytest

from callstream.analytics.abuse import find_abuse, is_abusive, scan_text
from callstream.analytics.commands import abuse_flags
from callstream.analytics.report import analyze_transcript
from callstream.analytics.sentiment import score_text, vader_text
from callstream.analytics.transcript import Segment as Seg


@pytest.mark.parametrize(
    "text",
    [
        "are you deaf or something",
        "you lot are a bunch of thieving crooks",
        "listen you stupid cow",
        "your staff are clowns",
        "you absolute waste of space",
        "get your head out of your arse",
        "piss off and put me through to someone else",
        "go to hell",
        "you're all a bunch of con artists",
    ],
)
def test_insults_aimed_at_the_listener(text: str) -> None:
    assert is_abusive(text), scan_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "the cow field behind the house flooded",  # a directed-only word, not aimed at anyone
        "I'm such an idiot, I typed the wrong number",  # aimed at oneself
        "you're not an idiot, the system is confusing",  # negated
        "I'm not calling you stupid",
        "damn good service, thank you",  # profanity intensifying praise
        "that's bloody brilliant",
        "I'm pissed off with this bill",  # mild, not aimed at anyone
        "thank you nobody else has been this helpful",
        "my git repository will not push",
    ],
)
def test_not_abuse(text: str) -> None:
    assert not is_abusive(text), scan_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "I'll break his legs",
        "I'm going to come round there and knock your teeth out",
        "I swear I'll smash the place up",
        "I'm going to find out where you live and make you pay",
        "I'll be waiting outside your office",
        "someone's going to get hurt",
        "you're going to be sorry",
    ],
)
def test_threats(text: str) -> None:
    assert "THREAT" in {h.kind for h in scan_text(text)}, text


@pytest.mark.parametrize(
    "text",
    [
        "I'll shoot you an email with the photos",
        "can you kill the process on the server",
        "I could kill for a cup of tea",
        "I'll hit you up later",
        "I'll break the news to my wife",
        "I'm waiting outside the branch for it to open",
        "I'll deal with it myself",
        "I'm not going to hurt anyone",
    ],
)
def test_threat_look_alikes(text: str) -> None:
    assert scan_text(text) == [], text


def test_masked_word_takes_its_most_severe_reading() -> None:
    assert [h.term for h in scan_text("what the f*ck")] == ["fuck"]


def test_call_flag_names_only_the_abusive_segments() -> None:
    segs = [
        Seg("s1", "CALLER", 0.0, 2.0, "damn, I forgot my password"),
        Seg("s2", "CALLER", 2.0, 4.0, "you useless idiot"),
        Seg("s3", "CALLER", 4.0, 6.0, "bloody thing"),
    ]
    call = [f for f in find_abuse(segs) if f.kind == "ABUSIVE_CALLER"]
    assert len(call) == 1 and call[0].segment_ids == ["s2"]
    assert {ev[0] for ev in call[0].evidence} == {"s2"}
    assert call[0].score == 5  # the caller's summed score: 1 + 3 + 1
    # only mild hits, but enough of them: the call is abusive and they are all the evidence
    mild = [Seg(f"m{i}", "CALLER", i, i + 1.0, "damn it, bloody thing") for i in range(2)]
    call = [f for f in find_abuse(mild) if f.kind == "ABUSIVE_CALLER"]
    assert call[0].segment_ids == ["m0", "m1"]


def test_export_segments_carry_their_flags() -> None:
    segs = [
        Seg("c1", "CALLER", 0.0, 2.0, "damn, I forgot my password"),
        Seg("a1", "AGENT", 2.0, 3.0, "no problem"),
        Seg("c2", "CALLER", 3.0, 5.0, "you useless idiot"),
    ]
    report = analyze_transcript(segs, "c", flaggers=[abuse_flags])
    flags = {s["SegmentId"]: s["Flags"] for s in report["Segments"]}
    assert flags == {"c1": ["PROFANITY"], "a1": [], "c2": ["INSULT", "ABUSIVE_CALLER"]}


@pytest.mark.parametrize(
    "text",
    [
        "this is the third time I'm calling about this",
        "I've been on hold for forty minutes",
        "nobody has called me back",
        "it still isn't working",
        "I'm fed up, I'm going to switch to another provider",
        "you were supposed to send an engineer yesterday",
        "oh great, the internet's down again",
        "well thanks for nothing",
        "you stupid cow, just listen to me",
    ],
)
def test_complaints_are_negative(text: str) -> None:
    assert score_text(text)[0] == "NEGATIVE", vader_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "hold on a second while I find the letter",
        "can you cancel my order from Tuesday",
        "my phone died so I'm calling from my wife's",
        "just shoot me an email with the details",
        "the risk assessment is attached",
        "what's the cut off time for next day delivery",
        "no, that's the old address",
    ],
)
def test_service_talk_is_not_negative(text: str) -> None:
    assert score_text(text)[0] != "NEGATIVE", vader_text(text)


def test_praise_and_negated_cues_are_not_negative() -> None:
    assert score_text("damn good service, thank you")[0] == "POSITIVE"
    assert score_text("you did a hell of a good job")[0] == "POSITIVE"
    assert score_text("oh great, thank you so much")[0] == "POSITIVE"
    assert score_text("I'm not fed up at all, it's fine")[0] != "NEGATIVE"


def test_vader_text_rewrites_only_what_it_knows() -> None:
    assert vader_text("Can I pay by card?") == "Can I pay by card?"
    assert "cue_on_hold" in vader_text("I've been on hold for an hour")
