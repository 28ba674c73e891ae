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
VADER reads an utterance (``vader_text``; the exported transcript is unchanged):

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
* a caller saying how they feel ("I'm really disappointed", "I'm fuming") makes the
  utterance NEGATIVE whatever else it holds, like abuse does;
* sarcasm: a praise interjection ("oh great, ...", "brilliant, ... just brilliant", "just
  what I needed") in an utterance whose other words are negative is scored as negative.

The tables and the NEGATIVE threshold were tuned on labelled utterances in
``tests/analytics/data`` (the ``dev`` split, then ``holdout1`` after its one blind run); the
``test`` and ``holdout2`` splits measure them (README, "Call analytics").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from callstream.analytics.abuse import EXCLAMATION, SEGMENT_THRESHOLD, scan_text
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

# Single words VADER's lexicon lacks or weighs for another genre (VADER's -4..+4 scale).
LEXICON_SUPPLEMENT: dict[str, float] = {
    # complaints
    "overcharged": -2.3,
    "overcharging": -2.3,
    "crashed": -1.8,
    "crashing": -1.8,
    "crashes": -1.7,
    "scammed": -2.7,
    "ripoff": -2.7,
    "rip-off": -2.7,
    "shambles": -2.5,
    "shambolic": -2.5,
    "disgraceful": -2.6,
    "atrocious": -3.0,
    "abysmal": -3.0,
    "diabolical": -2.8,
    "appalling": -2.5,
    "unacceptable": -2.5,
    "absurd": -2.0,
    "concerned": -1.2,
    "honestly": 0.0,
    "heart": 0.0,
    "stop": 0.0,  # "stop the direct debit", "the stop tap": requests and things
    "stopped": 0.0,  # "heart tablets", "heart condition": VADER reads the emoticon sense
    "afford": 0.0,
    "stranded": -2.0,
    "spoiled": -1.8,
    "spoilt": -1.8,
    "ruined": -2.3,
    "downhill": -1.5,
    "excuse": -1.0,
    "bloody": 0.0,  # an intensifier ("my bloody dog"): abuse scoring weighs it separately  # an intensifier in complaints far more than praise
    "ridiculous": -2.2,
    "useless": -2.2,
    "unhelpful": -2.0,
    "pointless": -1.8,
    "nightmare": -2.3,
    "unreliable": -2.0,
    "robbed": -2.5,
    "conned": -2.5,
    "misled": -2.0,
    "fobbed": -2.0,
    "runaround": -2.0,
    "rubbish": -2.0,
    "garbage": -2.0,
    "faulty": -1.8,
    "glitchy": -1.5,
    "buggy": -1.5,
    "flaky": -1.5,
    "patchy": -1.3,
    "dodgy": -1.5,
    "gutted": -2.0,
    "excuses": -1.3,
    "joke": -1.0,  # "what a joke", "it's a joke": +1.2 in VADER
    "farce": -2.0,
    "inexcusable": -2.5,
    "extortionate": -2.3,
    "overpriced": -1.8,
    "fleeced": -2.3,
    "dismissive": -2.0,
    "condescending": -2.0,
    "patronising": -2.0,
    "patronizing": -2.0,
    "clueless": -2.0,
    "filthy": -2.5,
    "mouldy": -2.0,
    "moldy": -2.0,
    "stained": -1.2,
    "leaking": -1.5,
    "leaky": -1.3,
    "freezing": -1.0,
    "buffering": -1.5,
    "buffers": -1.5,
    "lagging": -1.3,
    "laggy": -1.3,
    "glitching": -1.5,
    "freezes": -1.5,
    "slow": -1.0,
    "shrugged": -1.0,
    "scammers": -2.5,
    "charlatans": -2.5,
    "cowboys": -1.5,
    "amateurs": -1.5,
    "slowest": -1.5,
    "supposedly": -1.0,
    "nonexistent": -1.5,
    "stains": -1.2,
    # polite formulas and service words that carry no feeling in a complaint
    "kindly": 0.0,
    "needful": 0.0,
    "resolution": 0.0,
    # praise
    "sorted": 1.5,
    "legend": 2.5,
    "superstar": 2.8,
    "marvellous": 2.8,
    "thorough": 1.5,
    "chuffed": 2.3,
    "speedy": 1.5,
    "painless": 1.5,
    "seamless": 1.5,
    "hassle-free": 1.8,
    # routine in a service call, not a feeling
    "cancel": 0.0,
    "cancelling": 0.0,
    "cancellation": 0.0,
    "sorry": 0.0,
    "no": 0.0,  # an answer ("no, that's the old address"); VADER still negates with it
    "well": 0.0,  # mostly a discourse marker in speech ("well, thanks for nothing")
    "yeah": 0.0,  # an answer or a filler ("yeah cheers for nothing"), not approval
    "yes": 0.0,
    "okay": 0.0,
    "ok": 0.0,
}


def _any(alternatives: str) -> str:
    """A regex group of ``|``-separated alternatives, in which a space matches any whitespace."""
    return "(?:" + "|".join(a.strip().replace(" ", r"\s+") for a in alternatives.split("|")) + ")"


_N = _any(
    r"a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|forty"
    r"|fifty|several|many|a few|a couple of|\d+"
)
_ABOUT = r"(?:" + _any("over|more than|nearly|almost") + r"\s+)?"
_NOT = _any(
    "not|no|never|isn't|is not|hasn't|has not|haven't|have not|doesn't|does not|don't|didn't"
    "|did not|can't|cannot|won't|wasn't|aren't|still hasn't"
)
_NOBODY = _any("nobody's|no one's|nobody|no one|no-one|noone")
_ITS_BEEN = _any("it's|it has|it's now|that's|that was")

# (name, valence, alternatives): phrases customers use when unhappy (or pleased). A match of
# any alternative becomes one token ``cue_<name>`` that VADER scores with the valence.
PHRASE_CUES: list[tuple[str, float, tuple[str, ...]]] = [
    # waiting and delay
    (
        "on_hold",
        -2.0,
        (
            rf"\b{_any('on hold|holding')}\s+for\b",
            rf"\bbeen\s+{_any('on hold|holding')}\b",
            rf"\bkept\s+(?:me\s+)?{_any('on hold|waiting')}\b",
            rf"\b{_any('minutes|hours')}\s+on\s+hold\b",
        ),
    ),
    (
        "been_waiting",
        -2.0,
        (
            rf"\b{_any('been|still|left|keep me')}\s+waiting\b",
            r"\bwaiting\s+since\b",
            r"\bwait(?:ed|ing)?\s+"
            rf"(?:for\s+)?{_ABOUT}{_N}\s+{_any('hours?|days?|weeks?|months?')}\b",
        ),
    ),
    (
        "been_ages",
        -1.8,
        (
            rf"\b{_ITS_BEEN}\s+(?:been\s+)?{_ABOUT}{_N}\s+{_any('days|weeks|months')}\b",
            rf"\bfor\s+{_any('days|weeks|months|ages')}\s+now\b",
        ),
    ),
    (
        "takes_long",
        -1.8,
        (
            rf"\b{_any('take|takes|taking|took|taken')}\s+"
            rf"(?:{_any('so long|forever|ages|this long|that long')}|{_ABOUT}{_N}\s+(?:weeks"
            r"|months))\b",
        ),
    ),
    (
        "supposed_to",
        -1.8,
        (
            rf"\b{_any('supposed|meant|promised')}\s+to\s+(?:have\s+)?"
            rf"{_any('call|ring|phone|arrive|come|be|send|fix|refund|get back|turn up|sort')}\w*\b",
            r"\b(?:was|were|been)\s+promised\b",
        ),
    ),
    (
        "never_happened",
        -2.0,
        (
            r"\b"
            + _any("never|didn't|did not|hasn't|has not|haven't|have not|still hasn't")
            + r"\s+(?:even\s+)?"
            + _any(
                "happened|turned up|showed up|came|arrived|called (?:me )?back|rang (?:me )?back"
                "|got back|heard back|received|replied|responded|bothered|been fixed|got it"
                "|delivered|been delivered|been refunded|refunded|been sent|turned up|showed"
            )
            + r"\b",
        ),
    ),
    # repeated contact, repeated failure
    (
        "nth_time",
        -2.2,
        (
            r"\b"
            + _any(
                r"second|third|fourth|fifth|sixth|seventh|tenth|umpteenth|hundredth|\d+(?:st|nd"
                r"|rd|th)"
            )
            + r"\s+time\s+(?:that\s+)?"
            + r"(?:"
            + _any("i've|i have|i'm|i am|i|we've|we're")
            + r"\s+)?(?:had\s+to\s+)?"
            + _any(
                "called|calling|rung|ringing|rang|phoned|phoning|contacted|contacting|chased"
                "|chasing"
                "|asked|asking|explained|explaining|told|been|call|ring|phone|contact|chase|ask"
                "|explain|email|write|complain|come"
            )
            + r"\b",
        ),
    ),
    (
        "n_times",
        -2.0,
        (
            r"\b"
            + _any(
                "called|rung|rang|phoned|contacted|chased|explained|told|asked|emailed|written"
                "|complained|repeated|sent|given|provided|submitted|uploaded|resent|re-sent"
            )
            + rf"\b(?:\s+[\w']+){{0,5}}?\s+(?:twice|{_N}\s+times)\b",
            r"\b(?:twice|"
            + _any(r"two|three|four|five|six|several|multiple|many|\d+")
            + r"\s+times)\s+now\b",
        ),
    ),
    (
        "every_time",
        -1.5,
        (
            rf"\bevery\s+(?:single\s+)?time\s+i\s+{_any('call|ring|phone|try|log|contact')}\b",
            r"\bagain\s+and\s+again\b",
            r"\bover\s+and\s+over\b",
        ),
    ),
    (
        "fails_again",
        -1.8,
        (
            r"\b"
            + _any(
                "down|broken|failed|crashed|happened|happening|dropped|dropping|off|wrong|missing"
                "|late"
                "|charged|locked out|cut off|gone|stopped|declined|rejected|packed in|packed up"
                "|gave up|conked out|broke|broken down|playing up|leaking|tripped"
            )
            + r"(?:\s+[\w']+)?\s+again\b",
        ),
    ),
    (
        "keeps_failing",
        -1.8,
        (
            r"\bkeeps?\s+(?:on\s+)?"
            + _any(
                "dropping|crashing|failing|freezing|cutting (?:out|off)|disconnecting"
                "|logging me out"
                "|going (?:down|off)|breaking|happening|buffering|rejecting|declining|losing"
                "|charging me"
            )
            + r"\b",
            r"\bkeep\s+(?:getting|being)\s+"
            + _any("cut off|disconnected|charged|errors?|passed|transferred|told")
            + r"\b",
        ),
    ),
    (
        "still_not",
        -2.0,
        (
            r"\bstill\s+(?:"
            + _NOT
            + "|"
            + _any(
                "waiting|nothing|broken|down|not working|getting charged|having (?:problems"
                "|issues|trouble)"
            )
            + r")\b",
        ),
    ),
    (
        "not_working",
        -1.8,
        (
            rf"\b{_NOT}\s+(?:even\s+)?"
            + _any(
                "work|worked|working|load|loading|connect|connecting|turn(?:ed)? up"
                "|show(?:ed)? up|go through"
            )
            + r"\b",
        ),
    ),
    (
        "cant_access",
        -1.5,
        (
            r"\b"
            + _any("can't|cannot|can not|couldn't|unable to")
            + r"\s+(?:even\s+)?"
            + _any(r"log\s*in|get in|get into|access|get through|use|make calls|pay|sign in")
            + r"\b",
            r"\blocked\s+out\b",
            rf"\b{_any('been|got|get|getting|was|were|kept|keep')}\s+(?:\w+\s+)?cut\s+off\b",
        ),
    ),
    # nobody helps
    (
        "nobody",
        -2.0,
        (
            rf"\b{_NOBODY}\s+(?:{_any('seems|seemed|appears|wants|bothers')})\s+to\s+"
            rf"{_any('care|know|listen|help|bother|give|take')}\w*\b",
            rf"\b{_NOBODY}\s+(?:{_any('is|was|has been|seems')})\s+"
            rf"{_any('responding|answering|helping|listening|calling me back|getting back|doing anything|interested')}\b",
            rf"\b{_NOBODY}\s+(?:\w+\s+)?"
            + _any(
                "has|have|had|ever|bothered|told|tells|called|calls|rang|rings|answers|answered"
                "|got back|gets back|came|comes|turned up|showed up|fixed|fixes|seems|cares|listens"
                "|knows|helped|helps|explained|replied|responds|responded|picks up|picked up|will"
                "|wants|wanted|would|was willing|seemed|took|takes|looked|checked|mentioned|warned"
                "|said|updated|bothered"
            )
            + r"\b",
        ),
    ),
    (
        "without_telling",
        -1.8,
        (
            rf"\bwithout\s+(?:{_any('anyone|anybody|you|even')}\s+)?"
            + _any(
                "telling|asking|informing|warning|letting|notice|any notice|my permission"
                "|my consent"
                "|a word"
            )
            + r"\b",
        ),
    ),
    (
        "passed_around",
        -1.8,
        (
            rf"\b{_any('passed|pushed|transferred|bounced|sent')}\s+(?:\w+\s+)?"
            + _any("around|about|back and forth|from (?:one|pillar|department)")
            + r"\b",
            r"\bround\s+in\s+circles\b",
            r"\bfobbed\s+off\b",
        ),
    ),
    (
        "different_answer",
        -1.5,
        (
            r"\b(?:a\s+)?different\s+(?:answer|story)\s+(?:every|each)\b",
            rf"\b{_N}\s+different\s+(?:answers|stories|people)\b",
            r"\bget\s+a\s+different\s+(?:answer|story)\b",
        ),
    ),
    # money
    (
        "charged_wrong",
        -2.0,
        (
            rf"\b{_any('charged|charge|charging|billed|bill|billing|debited|taken')}\s+(?:me\s+)?"
            + _any("twice|two times|double|for nothing|too much|the wrong")
            + r"\b",
            r"\b(?:double|over)[-\s]?(?:charged|billed)\b",
            r"\bcharged\s+(?:me\s+)?(?:a\s+)?(?:"
            + _any("late|extra|cancellation|admin")
            + r"\s+)?(?:fee|penalty)\b",
        ),
    ),
    ("even_though", -1.2, (r"\beven\s+though\s+i(?:'d|'ve|\s+had|\s+have)?\b",)),
    # frustration, escalation, leaving
    (
        "fed_up",
        -2.5,
        (
            r"\bfed\s+up\b",
            r"\bsick\s+(?:and\s+tired\s+)?of\b",
            r"\b"
            + _any(
                "had enough|enough is enough|wits'? end|last straw|end of my tether|end of my rope"
                "|banging my head against|had it up to here|takes the biscuit|takes the cake"
                "|i'm done (?:listening|with)|going nowhere|getting nowhere|doing my head in"
                "|(?:bloody|just|how|so) typical"
            )
            + r"\b",
        ),
    ),
    (
        "waste",
        -2.2,
        (
            r"\bwast(?:e|ed|ing)\s+(?:of\s+)?(?:my|our)?\s*(?:time|money|breath)\b",
            r"\bwaste\s+of\s+(?:time|money)\b",
        ),
    ),
    (
        "not_good_enough",
        -2.2,
        (
            r"\bnot\s+"
            + _any("good enough|acceptable|on|right|fair|okay|ok|what i (?:asked|paid) for")
            + r"\b",
        ),
    ),
    (
        "leaving",
        -2.0,
        (
            rf"\b{_any('switch(?:ing)?|mov(?:e|ing)|go(?:ing)?|leav(?:e|ing)')}\s+(?:over\s+)?to\s+"
            + _any("another|a different|a competitor|someone else|your competitors?")
            + r"\b",
            r"\btak(?:e|ing)\s+my\s+(?:business|money|custom)\s+elsewhere\b",
            r"\b(?:i'm|i\s+am|i'll\s+be|we're)\s+switching\s+"
            + _any("providers?|banks?|suppliers?|networks?|insurers?|companies|to")
            + r"\b",
        ),
    ),
    (
        "escalate",
        -1.8,
        (
            r"\bombudsman\b",
            r"\b"
            + _any("trading standards|the regulator|small claims|my solicitor|my lawyer")
            + r"\b",
            r"\b(?:formal|official)\s+complaint\b",
            rf"\b{_any('make|making|file|filing|raise|raising|lodge|lodging')}\s+a\s+complaint\b",
            rf"\breport(?:ing)?\s+{_any('you|this|it|them|the company')}\s+to\b",
            r"\b(?:speak|talk)\s+to\s+(?:a|your"
            rf"|the)\s+{_any('manager|supervisor|someone senior')}\b",
        ),
    ),
    (
        "bad_review",
        -1.5,
        (
            r"\b(?:" + _any("bad|terrible|awful|negative") + r"|(?:one|1)[-\s]star)\s+review\b",
            rf"\b{_any('leave|leaving|write|writing|post|posting')}\s+a\s+review\b",
            rf"\b{_any('post|posting|put|putting|write|writing')}\s+(?:about\s+)?(?:this|it)\s+"
            rf"(?:on|all\s+over)\b",
            r"\breview\s+sites?\b|\bgo(?:ing)?\s+to\s+the\s+(?:press|papers|media)\b",
            r"\btell(?:ing)?\s+everyone\b",
        ),
    ),
    (
        "what_going_on",
        -1.5,
        (
            r"\bwhat(?:'s|\s+is)\s+going\s+on\b",
            r"\bwhat(?:'s|\s+is)\s+the\s+hold[-\s]?up\b",
        ),
    ),
    (
        "why_not",
        -1.5,
        (
            r"\bwhy\s+(?:on\s+earth\s+|the\s+hell\s+)?"
            + _any(
                "won't|can't|didn't|hasn't|haven't|isn't|doesn't|wasn't|weren't|aren't|don't"
                "|couldn't|wouldn't"
            )
            + r"\b",
            r"\bwhy\s+on\s+earth\b",
        ),
    ),
    (
        "no_service",
        -1.8,
        (
            r"\bleft\s+without\s+\w+",
            r"\b(?:whole|full|entire)\s+(?:day|week|month|weekend|fortnight)\s+without\b",
            r"\b(?:no|without)\s+"
            + _any(
                "hot water|heating|heat|power|electricity|gas|water|internet|broadband|wi-?fi"
                "|signal"
                "|service|dial tone|phone line|connection"
            )
            + r"\s+"
            + _any("since|for|at all|all")
            + r"\b",
            r"\b"
            + _any(
                "internet|broadband|wi-?fi|power|electricity|phone|line|service|app|website|site"
                "|signal|heating|boiler"
            )
            + r"\s+"
            + _any("is|was|has been|went|goes|keeps going|keeps")
            + r"\s+"
            + _any("down|off|offline|out|dead")
            + r"\b",
        ),
    ),
    (
        "expected_better",
        -2.0,
        (
            rf"\b{_any('expected|expect|expecting')}\s+(?:{_any('a lot|much|far|way')}\s+)?"
            r"(?:better|more)\b",
        ),
    ),
    (
        "time_off_work",
        -1.5,
        (
            rf"\b{_any('took|take|taken|had to take')}\s+(?:a\s+|the\s+)?"
            rf"{_any('day|days|time|morning|afternoon')}\s+off(?:\s+work)?\b",
            r"\blost\s+(?:a\s+)?" + _any("day's|days|a day's|my") + r"\s+(?:pay|wages)\b",
        ),
    ),
    (
        "hidden_fees",
        -1.8,
        (
            r"\bhidden\s+(?:fees?|charges?|costs?)\b",
            r"\bdaylight\s+robbery\b",
            r"\brip(?:ping)?\s+(?:me|us|people)\s+off\b",
        ),
    ),
    (
        "let_down",
        -2.0,
        (r"\blet\s+(?:me|us|my\s+\w+)\s+down\b|\blet\s+down\b",),
    ),
    (
        "how_hard",
        -1.8,
        (rf"\bhow\s+{_any('hard|difficult|complicated')}\s+(?:can|could|is)\s+it\b",),
    ),
    ("so_called", -1.2, (r"\bso[-\s]called\b",)),
    (
        "how_you_treat",
        -2.2,
        (
            r"\b" + _any("this is|that is|that's|is this") + r"\s+how\s+you\s+treat\b",
            r"\bhow\s+(?:i|we|your\s+customers)\s+(?:get|am|are|'m|'re)\s+treated\b",
        ),
    ),
    ("promised", -1.5, (r"\byou\s+promised\s+(?:me|us)\b",)),
    (
        "heard_before",
        -1.8,
        (
            r"\bthat's\s+what\s+(?:the\s+last|everyone|the\s+other|you\s+all|they\s+all)\b",
            r"\b(?:that's|that\s+is)\s+not\s+what\s+(?:the\s+last|the\s+other|your\s+colleague"
            r"|you|they|he|she)\b",
            r"\bheard\s+(?:that|this)\s+(?:exact\s+|same\s+)?(?:line|story|excuse)\b",
            r"\byou\s+said\s+(?:it\s+)?(?:would|will|was\s+going\s+to)\b",
            r"\blet\s+me\s+get\s+this\s+straight\b",
            r"\bwith\s+all\s+due\s+respect\b",
            r"\b(?:have|having)\s+to\s+(?:keep\s+)?chas(?:e|ing)\b",
            r"\bsame\s+(?:old\s+)?(?:excuse|story|answer)\b",
        ),
    ),
    (
        "how_even",
        -1.8,
        (
            r"\bhow\s+(?:does|did|could|can|is)\s+(?:that|this|it)\s+(?:even\s+)?"
            + _any("happen|be possible|possibly")
            + r"\b",
            r"\band\s+now\s+this\b",
            r"\bhow\s+is\s+it\s+possible\b",
            r"\b(?:this|that|it)(?:'s|\s+is)\s+(?:a\s+|an\s+absolute\s+|a\s+complete\s+)?joke\b",
            r"\bwhat\s+a\s+joke\b",
            r"\b(?:says|said|shows|showing|marked\s+as)\s+delivered\s+but\b",
            r"\balready\s+paid\b",
            r"\b(?:can't|cannot|can\s+not)\s+afford\b",
            r"\b(?:with\s+no|without\s+any|without)\s+warning\b",
            r"\bgone\s+downhill\b",
        ),
    ),
    (
        "wont_pay",
        -1.8,
        (
            r"\b(?:i'm|i\s+am)\s+not\s+paying\b",
            r"\bno\s+way\s+(?:i|we)\s+(?:used|owe|spent|made|ordered)\b",
        ),
    ),
    ("money_back", -1.8, (rf"\b{_any('want|need|demand')}\s+my\s+money\s+back\b",)),
    (
        "i_feel_bad",
        -2.5,
        (
            r"\bi(?:'m|\s+am|\s+feel|\s+felt|\s+was|'ve\s+been)\s+(?:"
            + _any("so|really|very|absolutely|quite|a bit|a little|bit|just|getting|beyond")
            + r"\s+)?"
            + _any(
                "disappointed|disgusted|annoyed|upset|angry|furious|livid|frustrated|gutted"
                "|appalled|horrified|fuming|raging|infuriated|exasperated|insulted|offended"
            )
            + r"\b",
        ),
    ),
    (
        "resigned",
        -1.8,
        (
            r"\b" + _any("i am|i have|we are|we have|i'm|we're|i've") + r"\s+(?:just\s+)?"
            rf"{_any('supposed|meant|expected|got')}\s+to\s+(?:just\s+)?"
            rf"{_any('sit|wait|go|live|manage|cope|put up|pay|accept|keep|believe')}\b",
            rf"\b(?:sit|sitting|be|stay|live|living|manage|cope)\s+(?:here\s+|there\s+)?"
            rf"without\s+(?:any\s+)?"
            rf"{_any('hot water|heating|heat|power|electricity|gas|water|internet|broadband|a phone|signal')}\b",
            r"\bso\s+you(?:'re|\s+are)\s+(?:telling|saying)\b",
            r"\band\s+now\s+(?:you're|you\s+are|they're|they\s+are)\s+(?:telling|saying)\b",
            r"\byou\s+keep\s+(?:on\s+)?(?:saying|telling|promising)\b",
            r"\band\s+it\s+never\s+(?:is|does|did|has|happens|comes|arrives|works)\b",
            r"\btrying\s+to\s+(?:charge|bill|blame|make)\s+(?:me|us)\b",
            r"\bhad\s+to\s+find\s+out\b",
            r"\bno\s+offen[cs]e\s+but\b",
        ),
    ),
    (
        "another_wait",
        -1.5,
        (
            r"\banother\s+(?:\w+\s+)?(?:week|fortnight|month|day|hour|wait|delay)s?\s+"
            r"(?:then|of|to\s+wait|on\s+hold)\b",
            rf"\bwait\s+(?:{_any('another|a further|even longer')})\b",
        ),
    ),
    (
        "broken_promise",
        -1.8,
        (
            r"\bnowhere\s+near\b",
            r"\bnon[-\s]existent\b",
            r"\b(?:than|what|as)\s+(?:you\s+|was\s+|it\s+was\s+|they\s+)?"
            r"(?:advertised|promised|sold\s+(?:me|us|it))\b",
            r"\bshould(?:n't|\s+not)\s+(?:have\s+)?been\s+"
            r"(?:charged|billed|debited|taken|cut\s+off|disconnected|cancelled)\b",
            r"\b(?:charges?|payments?|transactions?|debits?|fees?)\b(?:\s+[\w']+){0,4}\s+"
            r"(?:i\s+)?(?:don't|do\s+not|didn't)\s+recogni[sz]e\b",
            r"\b(?:won't|will\s+not|wouldn't|refuse\s+to|refused\s+to|refusing\s+to)\s+"
            r"(?:cover|pay\s+out|refund|honou?r|accept)\b",
            r"\b(?:hours?|minutes|day|days|time)\s+of\s+my\s+life\b",
            r"\bread(?:ing)?\s+(?:me\s+)?(?:from\s+|off\s+)?(?:a|the|your)\s+script\b",
            r"\b(?:someone|somebody|anyone)\s+(?:who\s+can\s+|to\s+)actually\b",
            r"\bsitting\s+(?:there|here|in\s+a\s+queue|on\s+(?:someone's|a)\s+desk)\s+for\b",
            r"\b(?:arrived|is|was|came)\s+in\s+(?:bits|pieces)\b|\bsmashed\b",
            r"\ball\s+i(?:'ve|\s+have)?\s+(?:got|get|had|received)\s+is\b",
            r"\b(?:gone|went|shot|jumped)\s+up\s+by\b",
            rf"\b(?:this|that|these|those)\s+"
            rf"{_any('bloody|damn|damned|stupid|effing|flipping|freaking|blasted|wretched|godforsaken|useless|rubbish')}"
            r"\s+\w+",
        ),
    ),
    (
        "thanks_for_nothing",
        -2.5,
        (r"\b(?:thanks|cheers)\s+(?:a\s+(?:bunch|lot)\s+)?for\s+nothing\b",),
    ),
    # praise
    (
        "you_star",
        2.5,
        (
            r"\byou(?:'re|\s+are|'ve\s+been|\s+have\s+been)"
            + r"\s+(?:"
            + _any("an?|such an?|an absolute|a real")
            + r"\s+)?"
            + _any("star|legend|gem|hero|angel|diamond|lifesaver|superstar")
            + r"\b",
        ),
    ),
    ("spot_on", 2.0, (r"\bspot\s+on\b",)),
    (
        "sorted_out",
        1.8,
        (
            r"\bsort(?:ed|ing)\s+"
            + _any(r"it|that|this|everything|all of (?:it|that)|(?:the|my) \w+")
            + r"\s+out\b",
        ),
    ),
    ("weight_off", 2.0, (r"\bweight\s+off\s+my\s+(?:mind|shoulders)\b",)),
    ("fair_play", 1.8, (r"\bfair\s+play\b",)),
    ("patient", 1.8, (rf"\b{_any('been|so|very|really|super|extremely|incredibly')}\s+patient\b",)),
    ("above_beyond", 2.5, (r"\babove\s+and\s+beyond\b",)),
]

_PERSON = _any(
    "man|woman|guy|agent|engineer|driver|manager|person|staff|bloke|idiot|lot|people|boss|you"
)
_PRAISE = _any(
    "good|great|brilliant|fantastic|amazing|awesome|excellent|marvellous|superb|lovely|helpful"
    "|fast|quick|nice|fine|perfect|wonderful|well|job|service"
)
# (pattern, replacement): words VADER misreads in service talk
NEUTRAL_SENSES: list[tuple[str, str]] = [
    (
        r"\b"
        + _any("phone|mobile|battery|laptop|computer|tablet|ipad|handset|charger|remote")
        + r"\s+(?:\w+\s+)?"
        + _any("died|dies|is dead|was dead|went dead|ran out|is flat|was flat")
        + r"\b",
        "device off",
    ),
    (
        r"\bshoot\s+(?:me|us|you|it|them)\s+(?:over\s+)?(?:an?\s+|the\s+)?(?:quick\s+)?"
        r"(?=email|e-mail|text|message|line|note|link)",
        "send me ",
    ),
    (
        rf"\bkill(?:ed|ing|s)?(?=\s+(?:for|off|it|{_any('the|a|an|that|this|my|our|old')}\s+"
        rf"(?!{_PERSON}\b)))",
        "cancel",
    ),
    (r"\brisk\s+assessment\b", "assessment"),
    (r"\b(?:fire|smoke|burglar|intruder|house|car|carbon\s+monoxide)\s+alarms?\b", "detector"),
    (r"\balarm\s+(?=(?:clock|system|panel|test|code|company)s?\b)", ""),
    (r"\bdead[-\s]end\b", "end"),
    (r"\bshoot\s+off\b", "leave"),
    (r"\blost\s+property\b", "property"),
    (
        r"\b(?:engine|car|van|motor|bike|scooter)\s+(?:\w+\s+)?"
        r"(?:died|is\s+dead|was\s+dead|went\s+dead|won't\s+start)\b",
        "vehicle stopped",
    ),
    (
        r"\bmy\s+(?:own\s+)?(?:hard\s+drive|computer|laptop|pc|mac|tablet|ipad)\s+"
        r"(?:has\s+|had\s+|just\s+)?crashed\b",
        "my device stopped",
    ),
    # a leading "no" answers; it does not negate what follows ("no, that's not good enough")
    (r"^\s*(?:(?:yeah|oh|um|uh|well)\s+)?no\s+(?=(?:that's|that\s+is|it's|it\s+is|you|i)\b)", ""),
    # filler "like" before an amount ("by like thirty quid"): not the verb VADER scores
    (
        rf"(?<!\bi\s)(?<!\bwe\s)(?<!\byou\s)(?<!\bthey\s)(?<!would\s)(?<!'d\s)(?<!\bdo\s)"
        rf"\blike\s+(?={_N}\b|half\b|about\b|around\b|literally\b)",
        "",
    ),
    (
        r"\bpretty\s+(?=(?:poor|bad|rubbish|awful|terrible|shocking|disappointing|useless)\b)",
        "really ",
    ),
    (
        r"\bkiller\s+(?=(?:feature|deal|app|price|offer|combo|workout|class|classes|view|tune"
        r"|show|question|combination)s?\b)",
        "great ",
    ),
    (r"\bsmart\s+(?=(?:meter|tv|watch|phone|speaker|plug|card|home|thermostat)s?\b)", ""),
    (r"\b(?:don't|doesn't|didn't|do not|does not|did not)\s+fit\b", "need another size"),
    (r"\bloyal\s+(?=customers?\b)", ""),
    # insurance and bereavement paperwork: facts, not feelings
    (r"\bloss\s+adjuster\b", "adjuster"),
    (r"\b(?:water|fire|storm|flood|smoke|accidental)\s+damage\b", "claim item"),
    (r"\bdeath\s+certificate\b", "certificate"),
    (r"\b(feel|felt|feels|seems?|looks?|sounds?)\s+like\b", r"\1 as if"),
    (r"^\s*(?:yeah|yes|oh)\s+(?:sure|right)\b", "yeah"),
    (r"\b(i|we)(?:'d|\s+would)\s+like\s+to\b", r"\1 want to"),
    (r"\bto\s+be\s+(?:perfectly\s+|completely\s+|totally\s+)?honest\b", "frankly"),
    (
        r"\bdead\s+(?=(?:chuffed|good|easy|nice|happy|pleased|keen|impressed|handy|quick)\b)",
        "really ",
    ),
    (r"\b(?:a|the)\s+fine\b", "a penalty"),
    (r"\bcollision\s+damage\b|\bdamage\s+waiver\b", "cover"),
    (r"\bdispute\s+(?=(?:a|the|this|that)\s+(?:charge|transaction|payment|debit)\b)", "query "),
    (r"\bnot\s+sure\s+(?=(?:which|what|how|if|whether|where|when)\b)", "wondering "),
    (r"\b(?:a|any)\s+fault\s+(?=(?:in|on)\s+(?:my|the|our)\b)", "an outage "),
    (EXCLAMATION.pattern, "oh"),
    (r"\b(?:the\s+)?deceased\b", "the account holder"),
    (
        r"\b(?:my|our|his|her)\s+late\s+(?=(?:father|mother|husband|wife|dad|mum|mom|partner"
        r"|son|daughter|brother|sister|grandmother|grandfather|nan|gran)\b)",
        "my ",
    ),
    (r"\bhard\s+of\s+hearing\b", "deaf"),
    (r"\bmissed\s+(?:a\s+)?call\b", "call"),
    (r"\bcut[-\s]?off\s+(?=(?:time|date|point|day)s?\b)", "deadline "),
    (
        rf"\b{_any('garden|food|green|general|household|clinical|hazardous')}\s+waste\b"
        rf"|\bwaste\s+(?={_any('collection|collected|bins?|water|disposal|management|pipe')}\b)",
        "recycling ",
    ),
    (
        r"\b(?:shot|shoot|filmed)\s+(?=(?:a\s+|the\s+|some\s+)?"
        r"(?:video|photo|picture|footage|clip)s?\b)",
        "took ",
    ),
    (
        rf"\b{_any('damn|damned|bloody|fucking|effing|freaking|hell of an?|helluva')}\s+"
        rf"(?={_PRAISE}\b)",
        "really ",
    ),
]
_ABUSE_VALENCE = {"PROFANITY": -2.5, "INSULT": -3.0, "THREAT": -3.5}
_SARCASTIC_PRAISE = _any("great|brilliant|wonderful|fantastic|perfect|lovely|marvellous")
_SARCASM = re.compile(
    rf"^\s*(?:oh\s+|well\s+|yeah\s+)?(?:{_SARCASTIC_PRAISE}|super|terrific|excellent|nice\s+one"
    rf"|just\s+great)\b[,.!]*"
    rf"|\b(?:just|exactly|precisely)\s+(?:{_SARCASTIC_PRAISE}|what\s+i\s+(?:needed|wanted))\b"
    rf"|\b{_any('great|brilliant|wonderful|fantastic|perfect|lovely')}\s*,?\s+(?=another\b)"
    rf"|[,.]?\s+(?:just\s+)?{_SARCASTIC_PRAISE}[.!]*\s*$",
    re.IGNORECASE,
)
# what makes praise markers sarcastic without negative words around them: an "oh great"
# opening, "just what I needed", "brilliant, another ...", a lone "lovely" to end on
# ("perfect, that's exactly what I needed" is thanks)
_SARCASM_LEAD = re.compile(
    rf"^\s*(?:oh|well|yeah)\s+(?:{_SARCASTIC_PRAISE}|super|terrific|excellent|just\s+great)\b"
    rf"|\bjust\s+(?:{_SARCASTIC_PRAISE}|what\s+i\s+(?:needed|wanted))\b"
    rf"|\b{_SARCASTIC_PRAISE}\s*,?\s+another\b"
    rf"|[,.]?\s+(?:just\s+)?{_SARCASTIC_PRAISE}[.!]*\s*$",
    re.IGNORECASE,
)
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
    return text, abusive


def _polarity(rewritten: str) -> dict[str, float]:
    """VADER's polarity of a rewritten utterance, with the sarcasm rule."""
    analyzer = _analyzer()
    polarity: dict[str, float] = analyzer.polarity_scores(rewritten)
    markers = len(_SARCASM.findall(rewritten))
    if markers:
        rest = analyzer.polarity_scores(_SARCASM.sub(" ", rewritten))
        if rest["compound"] <= NEGATIVE_COMPOUND or (
            markers > 1 and _SARCASM_LEAD.search(rewritten)
        ):
            polarity = analyzer.polarity_scores(_SARCASM.sub(" cue_sarcasm ", rewritten))
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
    if label != "NEGATIVE" and (abusive or "cue_i_feel_bad" in rewritten):
        # abuse, or the caller saying they are upset, is negative whatever polite or
        # incidental words surround it
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
