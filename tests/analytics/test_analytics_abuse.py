"""Abusive-caller detection on real-looking customer utterances."""

from __future__ import annotations

import pytest

from callstream.analytics.abuse import find_abuse, is_abusive, scan_text
from callstream.analytics.transcript import Segment as Seg

CLEAN = [
    "I'm calling from Scunthorpe about my bill",
    "The assessment said the boiler was fine",
    "We moved to Essex last year",
    "I ordered a cocktail shaker and it never arrived",
    "It's a Dickens novel, the classic edition",
    "The parcel was left on the grassland behind the house",
    "Can you pass me to someone in billing, as I was told to ask",
    "I'd like to cancel my subscription please",
    "I need 2 items returned, order number 55512",
    "Thank you so much, you've been really helpful",
    "This stupid form keeps logging me out",
    "let's wait and see what happens when I restart the router",
    "you deserve a raise for sorting this out",
]
ABUSIVE = [
    "This is fucking ridiculous, I've called five times",
    "What the f*ck is wrong with your company",
    "You people are full of sh1t",
    "Fuuuuck this, put me through to a manager",
    "You're a complete idiot",
    "You are so useless",
    "Go fuck yourself",
    "This is bullshit and you know it",
    "Stop being such a f**king moron",
    "You absolute c*nt",
    "keep laughing and see what happens when I come in tomorrow",
    "i hope you get sacked for this",
    "you're nothing but a glorified answering machine",
    "is there anyone there with half a brain",
    "mate you're a total drongo",
]


@pytest.mark.parametrize("text", CLEAN)
def test_clean_utterances_have_no_hits(text: str) -> None:
    assert not is_abusive(text), scan_text(text)


@pytest.mark.parametrize("text", ABUSIVE)
def test_abusive_utterances_are_flagged(text: str) -> None:
    assert is_abusive(text), text


@pytest.mark.parametrize(
    "word", ["Scunthorpe", "assessment", "Essex", "cocktail", "Dickens", "classic", "grassland"]
)
def test_scunthorpe_words_never_hit(word: str) -> None:
    assert scan_text(word) == []
    assert scan_text(word.upper() + "!") == []


@pytest.mark.parametrize(
    "text",
    [
        "I will kill you",
        "I know where you live",
        "You'll regret this",
        "I'm going to come down there and hurt someone",
        "Watch your back",
        "I'll find you",
    ],
)
def test_threats_are_a_separate_kind(text: str) -> None:
    kinds = {h.kind for h in scan_text(text)}
    assert kinds == {"THREAT"}


def test_negated_threat_is_not_a_threat() -> None:
    assert scan_text("I'm not going to kill you over a bill") == []
    assert scan_text("I will never hurt anyone") == []


def test_call_level_flag_with_evidence_and_timestamps() -> None:
    segs = [
        Seg("s1", "CALLER", 0.0, 2.5, "Hi, my internet is down again"),
        Seg("s2", "AGENT", 2.6, 4.0, "Sorry, what the hell happened there"),
        Seg("s3", "CALLER", 4.1, 7.0, "This is fucking ridiculous"),
        Seg("s4", "CALLER", 7.2, 9.0, "You're a useless idiot"),
    ]
    flags = find_abuse(segs)
    call = [f for f in flags if f.kind == "ABUSIVE_CALLER"]
    assert len(call) == 1
    assert call[0].segment_ids == ["s3", "s4"]
    assert ("s3", 4.1, 7.0, "fucking") in call[0].evidence
    assert all(ev[0] != "s2" for ev in call[0].evidence)  # agent speech is ignored
    assert call[0].score >= 4


def test_single_mild_word_does_not_flag_the_call() -> None:
    segs = [Seg("s1", "CALLER", 0.0, 2.0, "Damn, I forgot my password")]
    flags = find_abuse(segs)
    assert [f.kind for f in flags] == ["PROFANITY"]


def test_threat_alone_flags_the_call() -> None:
    segs = [Seg("s1", "CALLER", 0.0, 2.0, "I know where you live")]
    kinds = [f.kind for f in find_abuse(segs)]
    assert kinds == ["THREAT", "ABUSIVE_CALLER"]


def test_clean_call_has_no_flags() -> None:
    texts = [t for t in CLEAN if "stupid" not in t]  # "stupid form" is a mild, flagged word
    segs = [Seg(f"s{i}", "CALLER", i, i + 1.0, t) for i, t in enumerate(texts)]
    assert find_abuse(segs) == []


@pytest.mark.parametrize(
    "text",
    [
        "oh shit sorry I just dropped my phone",
        "holy crap that was quick, thanks",
        "for fuck's sake the line dropped again, anyway my router is still down",
        "shit, sorry, wrong card, this one ends in four two",
        "we've got rats in the loft and these rats chewed the cable",
        "you know stupid me, I put the wrong date in",
    ],
)
def test_profanity_at_a_mishap_and_literal_animals_are_not_abuse(text: str) -> None:
    assert not is_abusive(text), scan_text(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("you insurance crooks are nothing but parasites", "INSULT"),
        ("these bank leeches would rob their own grandmother", "INSULT"),
        ("you gym people are a pack of greedy leeches", "INSULT"),
        ("what a shower of useless gobshites you are", "INSULT"),
        ("this college is run by halfwits", "INSULT"),
        ("you must be the dumbest person they've ever hired", "INSULT"),
        ("I'd like to punch whoever wrote this policy", "THREAT"),
        ("if your driver comes near my house again I'll set the dog on him", "THREAT"),
        ("I'll come down there myself and smash the place up", "THREAT"),
        ("I know where your office is and I'll be waiting outside for your manager", "THREAT"),
        ("I'll be at the depot tomorrow with a baseball bat", "THREAT"),
    ],
)
def test_insults_by_trade_and_threats_in_other_shapes(text: str, kind: str) -> None:
    hits = scan_text(text)
    assert is_abusive(text) and any(h.kind == kind and h.severity >= 2 for h in hits), hits
