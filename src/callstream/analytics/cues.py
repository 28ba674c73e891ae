"""The cue tables the sentiment scorer (:mod:`callstream.analytics.sentiment`) applies before
VADER reads a caller utterance: single-word weights, phrase cues, neutral senses and the
sarcasm markers. See that module's docstring for how each table is used.

Every entry is a word or a phrase pattern a caller other than the one who prompted it would
also say; the labelled sets in ``tests/analytics/data`` measure them (README, "Call
analytics").
"""

from __future__ import annotations

import re

from callstream.analytics.abuse import EXCLAMATION

__all__ = [
    "LEXICON_SUPPLEMENT",
    "MOCKING",
    "NEUTRAL_SENSES",
    "PHRASE_CUES",
    "SARCASM",
    "SARCASM_AFTER_COMPLAINT",
    "SARCASM_LEAD",
]

# Single words VADER's lexicon lacks or weighs for another genre (VADER's -4..+4 scale).
LEXICON_SUPPLEMENT: dict[str, float] = {
    # complaints
    # profanity VADER lacks ("fucking" and the like are its boosters: they strengthen the
    # next word, so "this fucking printer jammed again" is as negative as "jammed")
    "shite": -2.0,
    # faults VADER lacks ("cracked" and "smashed" stay out: insurance claims say them calmly)
    "jammed": -1.5,
    "jams": -1.3,
    "jamming": -1.3,
    "overheating": -1.5,
    "overheats": -1.5,
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
    "po": 0.0,
    "security": 0.0,  # a product or a check ("security app", "security question")
    "alert": 0.0,  # a notification ("fraud alert", "text alert"), not attentiveness
    "alerts": 0.0,  # Filipino politeness particle ("yes po"); VADER reads "pissed off"
    # dismay and trouble in Nigerian, South African and Singaporean English
    "wahala": -1.5,
    "haibo": -1.2,
    "eish": -1.0,
    "aiyo": -1.0,
    "aiyoh": -1.0,
    "alamak": -1.2,
    "damp": -1.2,
    "holiday": 0.0,  # a booking ("a ruined holiday", "the holiday balance"), not a feeling
}


def _any(alternatives: str) -> str:
    """A regex group of ``|``-separated alternatives, in which a space matches any whitespace."""
    return "(?:" + "|".join(a.strip().replace(" ", r"\s+") for a in alternatives.split("|")) + ")"


_N = _any(
    r"a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|forty"
    r"|fifty|several|many|a few|a couple of|\d+"
)
# a number of days that is a long wait ("thirty working days"), unlike "three days"
_MANY = _any("ten|fourteen|fifteen|twenty|thirty|forty|sixty|ninety|[1-9][0-9]")
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
            r"\b(?:calling|ringing|phoning|chasing|emailing|queuing|queueing)\s+"
            r"(?:you\s+|them\s+|this\s+number\s+)?since\b",
            rf"\b{_any('days|weeks|months')}\s+(?:of\s+)?{_any('waiting|chasing')}\b",
            r"\b(?:pending|stuck|outstanding|frozen|missing|delayed|sitting\s+there"
            r"|sitting\s+(?:in|at|on)\s+(?:a|the|your|their|some)\s+(?:[\w']+\s+)?[\w']+)\s+"
            rf"for\s+{_ABOUT}{_N}\s+{_any('days?|weeks?|months?')}\b",
            r"\bwait(?:ed|ing)?\s+"
            rf"(?:for\s+)?{_ABOUT}{_N}\s+{_any('hours?|days?|weeks?|months?')}\b",
        ),
    ),
    (
        "been_ages",
        -1.8,
        (
            rf"\b{_ITS_BEEN}\s+(?:been\s+)?{_ABOUT}{_N}\s+{_any('days|weeks|months')}\b"
            r"(?!\s+old\b)",
            rf"\bfor\s+{_any('days|weeks|months|ages')}\s+now\b",
            rf"\bfor\s+{_ABOUT}{_N}\s+{_any('days|weeks|months')}\s+now\b",
            rf"\b{_ITS_BEEN}\s+been\s+{_ABOUT}a\s+(?:whole\s+|full\s+)?"
            rf"{_any('week|month|fortnight|year')}\b(?!\s+(?:old|since)\b)",
        ),
    ),
    (
        "takes_long",
        -1.8,
        (
            rf"\b{_any('take|takes|taking|took|taken')}\s+"
            rf"(?:{_any('so long|forever|ages|this long|that long')}|{_ABOUT}{_N}\s+(?:weeks"
            r"|months)"
            rf"|{_ABOUT}{_MANY}\s+(?:working\s+|business\s+)?days)\b",
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
                "|entered|reflected|came through|went through|been credited|landed|come through"
                "|gone through|been paid|been processed|paid out"
            )
            + r"\b(?!\s+yet\b)",  # "the reset email hasn't come through yet" is a fact
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
                "|explain|email|write|complain|come|giving|give|given|repeating|repeat|spelling"
                "|spell|confirming|confirm|sending|send|sent|going through|filling|uploading"
            )
            + r"\b",
        ),
    ),
    (
        "nth_person",
        -2.2,
        (
            r"\b"
            + _any(r"second|third|fourth|fifth|sixth|umpteenth|\d+(?:st|nd|rd|th)")
            + r"\s+"
            + _any("person|agent|one|adviser|advisor|engineer|technician|call handler")
            + r"\s+"
            + _any("who's|who has|who|that's|that has|that|to")
            + r"\s+(?:\w+\s+)?"
            + _any("told|said|promised|tell|say|promise|given|give")
            + r"\b",
        ),
    ),
    (
        "nth_visit",
        -2.0,
        (
            r"\b(?:that's|that\s+is|this\s+is|it's|it\s+is|that\s+was|this\s+was|we've\s+had"
            r"|i've\s+had|after)\s+(?:the|my|our|a|their|your)\s+"
            + _any(r"third|fourth|fifth|sixth|seventh|tenth|umpteenth|\d+(?:rd|th)")
            + r"\s+(?:[\w']+\s+)?"
            + _any(
                "visits?|appointments?|call-?outs?|replacements?|repairs?|attempts?|engineers?"
                "|technicians?|plumbers?|letters?|reminders?|complaints?|deliveries|delivery"
            )
            + r"\b",
            r"\b"
            + _any(r"second|third|fourth|fifth|sixth|umpteenth")
            + r"\s+(?:[\w']+\s+)?"
            + _any("visit|appointment|call-?out|replacement|repair|attempt|engineer|technician")
            + r"\s+(?:this\s+(?:week|month|year)|in\s+a\s+(?:row|week|month|fortnight)|already)\b",
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
            # "losing the same parcel twice", "charged for the same thing three times"
            rf"\bthe\s+same\s+\w+\s+(?:twice|{_N}\s+times)\b",
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
                "|gave up|conked out|broke|broken down|playing up|leaking|tripped|went up|gone up"
                "|goes up|going up"
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
            r"\b"
            + _any(
                "drops|drops out|crashes|freezes|fails|cuts out|cuts off|goes off|goes down"
                "|breaks|logs me out|kicks me out|throws me out|disconnects|buffers"
            )
            + r"\s+(?:\w+\s+){0,2}?every\s+(?:single\s+)?time\b",
            r"\balways\s+(?:so\s+|very\s+)?"
            + _any("late|wrong|broken|down|delayed|missing|cancelled|cold")
            + r"\b",
            r"\b(?:you|they)\s+keep\s+(?:on\s+)?"
            + _any(
                "sending|charging|billing|calling|ringing|emailing|texting|chasing|writing to"
                "|taking|cancelling|losing|ignoring"
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
            + r")\b"
            + r"(?:\s+(?:"
            + _any("ready|here|there|sorted|fixed|resolved|done|right|back|working|showing")
            + r")\b)?",
            rf"\bstill\s+(?:{_any('got|have|having|getting|had')}\s+no|{_NOBODY})\b",
            r"\bstill\s+(?:[\w']+\s+)?the\s+(?:exact\s+)?same\s+"
            + _any("noise|problem|fault|issue|error|thing|message|rattle|leak|smell|bill|amount")
            + r"\b",
            r"\b(?:up\s+)?(?:until|till|til)\s+now\s+"
            + _any("no|nothing|nobody|no one|not|still|i haven't|i have not|i never|they never")
            + r"\b",
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
            rf"\b{_any('nobody|no one|no-one|noone')}(?:'s|\s+is|\s+was|\s+has\s+been|\s+seems)\s+"
            r"(?:even\s+|actually\s+)?"
            + _any(
                "responding|answering|helping|listening|calling me back|getting back|coming"
                "|doing anything|interested|following up|following it up|replying|bothering"
                "|turning up|showing up|picking up|looking into|updating|resolving|sorting"
                "|fixing|dealing with|keeping me|explaining|telling me"
            )
            + r"\b",
            rf"\b{_NOBODY}\s+(?:\w+\s+)?{_any('can|could|is able to|seems able to')}\s+(?:seem\s+to\s+)?"
            + _any("sort|fix|help|tell|explain|answer|give|find|resolve|be bothered")
            + r"\b",
            # the number nobody answers: "it just rings out", "straight to voicemail"
            r"\b(?:just|keeps?|always|still|only)\s+(?:rings|rang|ringing)\s+out\b",
            r"\b(?:goes|went|going)\s+(?:straight\s+)?to\s+"
            r"(?:voicemail|an\s+answering\s+machine)\b",
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
            + _any(
                "twice|two times|three times|four times|several times|multiple times|double"
                "|for nothing|too much|the wrong"
            )
            + r"\b",
            r"\b(?:double|over)[-\s]?(?:charged|billed)\b",
            r"\bcharged\s+(?:me\s+)?(?:a\s+)?(?:"
            + _any("late|extra|cancellation|admin")
            + r"\s+)?(?:fee|penalty)\b",
            # "billed me for a private room and I was on a ward", "charged us for delivery but
            # we collected it"
            r"\b(?:billed|charged|invoiced|charging|billing)\s+(?:me|us)\s+for\s+(?:[\w']+\s+){1,5}?"
            r"(?:and|but|when|even\s+though|though)\s+(?:i|we)\s+(?:(?:was|were)\s+"
            + _any("on|in|at|only|never|not|away|abroad|out|already|still|home")
            + "|"
            + _any(
                "wasn't|weren't|never|didn't|did not|only|had|hadn't|haven't|don't|cancelled"
                "|returned|collected"
            )
            + r")\b",
            # "bills for a property I moved out of", "charging me for a phone I sent back"
            r"\b(?:bills?|billed|billing|charged|charging|charges|invoices?|letters|sending\s+me"
            r"\s+\w+)\s+(?:me\s+)?for\s+(?:[\w']+\s+){1,4}?(?:i|we)(?:'ve|\s+have|\s+had|'d)?\s+"
            r"(?:already\s+|never\s+)?"
            + _any(
                "moved out of|moved out|left|sold|closed|cancelled|returned|sent back|never had"
                "|never ordered|never used|don't have|no longer have"
            )
            + r"\b",
        ),
    ),
    (
        # "my premium's gone up forty percent", "double the price", "a price hike"
        "price_rise",
        -1.8,
        (
            r"\b(?:gone|went|go|going|goes|shot|jumped|jumps|risen|rose|increased|hiked|put)\s+"
            r"(?:it\s+)?up\s+(?:by\s+)?(?:over\s+|nearly\s+|almost\s+|about\s+|like\s+)?"
            r"(?:[\w-]+\s+){1,3}?(?:percent|per\s+cent|%)",
            r"\b(?:doubled|tripled|trebled)\b",
            r"\b(?:at|for|charging|charged|charge|paying|pay|costs?|now|is|it's)\s+(?:like\s+)?"
            r"(?:double|triple|twice|three\s+times)\s+(?:the\s+|what\s+)"
            r"(?:price|cost|amount|rate|fee|premium|i\s+(?:was\s+)?(?:paid|paying|quoted))\b",
            r"\bprice\s+(?:hikes?|gouging)\b",
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
            r"\bnot\s+(?:really\s+|quite\s+|exactly\s+|even\s+|remotely\s+)?"
            + _any("good enough|acceptable|on|right|fair|okay|ok|what i (?:asked|paid) for")
            + r"\b",
            r"\b(?:(?:that's|that\s+is|it's|it\s+is|this\s+is)\s+not|that\s+isn't|that's\s+no)\s+"
            r"(?:really\s+|even\s+)?an?\s+"
            + _any("answer|solution|explanation|resolution")
            + r"\b",
            # rhetorical: "is it too much to ask", "what am I even paying for"
            r"\b(?:is\s+(?:it|that)|it's|it\s+is|that's)\s+(?:really\s+)?too\s+much\s+to\s+ask\b",
            # compensation that falls short: "doesn't really cover a ruined holiday"
            r"\b(?:doesn't|does\s+not|won't|will\s+not|wouldn't|isn't\s+going\s+to|hardly|barely)\s+"
            r"(?:(?:really|even|begin\s+to)\s+(?:cover|make\s+up\s+for)|make\s+up\s+for"
            r"|come\s+close)\b",
            r"\bwhat\s+(?:exactly\s+|even\s+)?(?:am\s+i|are\s+we|do\s+i|i'm)\s+"
            r"(?:even\s+|actually\s+|exactly\s+)?"
            r"pay(?:ing)?\s+(?:you\s+)?for\b",
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
            rf"\bcomplain(?:ing)?\s+to\s+(?:the\s+|my\s+)?{_any('regulator|ombudsman|mp|council')}\b",
        ),
    ),
    (
        # the caller takes it outside: lawyers, courts, the press ("consulted a lawyer",
        # "consumer court", "call the local news"); the label is NEGATIVE whatever else is said
        "go_public",
        -2.2,
        (
            # "I've already consulted a lawyer" (not "getting a solicitor for the house sale")
            r"\b"
            + _any("already|i've|i have|we've|we have|i'll|i will|we'll|i'm|we're|going to|gonna")
            + r"\s+(?:already\s+|now\s+)?"
            + _any(
                "consulted|consulting|spoken to|speaking to|contacted|contacting|instructed"
                "|instructing|hired|hiring|getting|got|get|call|calling|involve|involving|see"
            )
            + r"\s+(?:a|my|our)\s+"
            + _any("lawyer|lawyers|solicitor|solicitors|attorney|advocate|legal team")
            + r"\b(?!\s+(?:for|about|to\s+(?:handle|do|deal\s+with|sort|look\s+at)\s+"
            r"(?:the|our|my)\s+(?:house|sale|purchase|will|probate|estate|conveyancing"
            r"|mortgage|divorce)))",
            r"\bconsumer\s+" + _any("court|forum|tribunal|commission") + r"\b",
            r"\b" + _any("legal action|legal proceedings|see you in court|class action") + r"\b",
            r"\btak(?:e|ing)\s+(?:you|this|it|them|the\s+matter|the\s+company)\s+"
            r"(?:to\s+court|to\s+the\s+(?:ombudsman|regulator|press)|legal)\b",
            r"\b(?:sue|suing)\s+(?:you|the|this|your|them)\b",
            r"\b"
            + _any(
                "call|calling|ring|ringing|phone|phoning|contact|contacting|tell|telling|go to"
                "|going to|went to|email|emailing|write to|writing to|tip off"
            )
            + r"\s+(?:the\s+)?(?:local\s+)?"
            + _any(
                "news|newspapers?|papers|press|media|tv station|radio|journalists?|reporters?"
                "|watchdog|consumer programme|consumer show"
            )
            + r"\b",
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
            rf"\b{_any('post|posting|put|putting|share|sharing|spread|spreading|plaster|plastering')}"
            r"\s+(?:about\s+)?(?:this|it|that|the\s+whole\s+thing)\s+(?:everywhere|on\s+"
            + _any(
                "social media|facebook|twitter|instagram|tiktok|reddit|x|linkedin|trustpilot"
                "|youtube|every \\w+"
            )
            + r")\b",
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
                "|signal|tv|telly|television|reception"
                "|service|dial tone|phone line|connection"
            )
            + r"\s+"
            + _any("since|for|at all|all")
            + r"\b",
            r"\b"
            + _any("days?|weeks?|months?|nights?|weekend|fortnight")
            + r"\s+(?:with\s+no|without)\s+"
            + _any(
                "hot water|heating|heat|power|electricity|gas|water|internet|broadband|wi-?fi"
                "|signal|tv|telly|television|service|phone|a phone"
            )
            + r"\b",
            r"\b"
            + _any(
                "internet|broadband|wi-?fi|power|electricity|phone|line|service|app|website|site"
                "|signal|heating|boiler|tv|telly"
            )
            + r"(?:'s|\s+is|\s+was|\s+has\s+been|'s\s+been|\s+went|\s+goes|\s+keeps\s+going"
            + r"|\s+keeps)\s+(?:"
            + _any("still|completely|totally|just|now|also|all")
            + r"\s+)?"
            + _any("down|off|offline|out|dead")
            + r"\b",
            r"\b"
            + _any("taking|took|take|taken|brought|bringing|knocked|knocking")
            + r"\s+(?:the\s+|your\s+|our\s+|my\s+|their\s+)?(?:whole\s+|entire\s+)?"
            + _any("site|website|app|system|network|service|servers?|platform")
            + r"\s+(?:down|offline)\b",
        ),
    ),
    (
        "expected_better",
        -2.0,
        (
            rf"\b{_any('expected|expect|expecting|hoping for|hoped for')}\s+"
            rf"(?:{_any('a lot|much|far|way|a bit|a little|something')}\s+)?(?:better|more)\b",
        ),
    ),
    (
        "time_off_work",
        -1.5,
        (
            rf"\b{_any('took|take|taken|had to take')}\s+(?:a\s+|the\s+)?"
            rf"(?:{_any('whole|entire|full|half a')}\s+)?"
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
            r"\bwith\s+(?:all\s+)?(?:due\s+)?respect\b",
            r"\b(?:i'm\s+sure|i\s+know|i\s+understand)\s+(?:that\s+)?you(?:'re|\s+are)\s+"
            r"(?:doing|trying)\s+your\s+best\s+but\b",
            r"\b(?:have|having)\s+to\s+(?:keep\s+)?chas(?:e|ing)\b",
            r"\bsame\s+(?:[\w-]+\s+){0,2}?(?:excuse|story|answer|reply|response|script)s?\b",
            rf"\bjust\s+like\s+(?:the\s+)?last\s+(?:{_N}\s+)?times?\b",
            r"\b(?:this\s+is|that's|it's|that\s+is|it\s+is|just|again|yet\s+again)\s+the\s+"
            r"(?:exact\s+|very\s+)?same\s+"
            + _any("letter|email|e-mail|reply|response|text|message|answer|form letter")
            + r"\s+(?:as\s+)?(?:you|they|your\s+\w+)\s+(?:sent|gave|wrote)\b",
            r"\bcop(?:y|ied)[-\s]+(?:and[-\s]+)?past(?:e|ed)\b",
            rf"\blike\s+the\s+last\s+{_N}\s+times\b",
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
            r"\b(?:says|said|shows|showed|showing|marked\s+as|claims|claimed)\s+(?:[\w']+\s+){0,4}?"
            + _any(
                "delivered|collected|completed|fixed|resolved|dispatched|shipped|installed"
                "|refunded|paid|done|sent"
            )
            + r"(?:\s+[\w']+){0,5}?\s+(?:but|and\s+i\s+was|and\s+i(?:'ve|\s+have)\s+been"
            r"|when\s+i\s+was|even\s+though|yet)\b",
            # "how can an airline this size lose a suitcase", "how can like that"
            r"\bhow\s+(?:can|could|does|do|did)\s+(?!i\b)(?:[\w']+\s+){1,5}?"
            + _any("lose|lost|misplace|forget|mess up|screw up|get (?:it|this|that) wrong")
            + r"\b",
            r"\bhow\s+(?!i\b)(?:[\w']+\s+){1,5}?(?:can|could)\s+(?:possibly\s+|even\s+)?"
            + _any("lose|misplace|forget|mess up|screw up|get (?:it|this|that) wrong")
            + r"\b",
            r"\bhow\s+can\s+(?:be\s+)?like\s+(?:that|this)\b",
            r"\blike\s+what\s*[?!.]*\s*$",
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
    (
        "money_back",
        -1.8,
        (
            rf"\b{_any('want|need|demand')}\s+my\s+money\s+back\b",
            r"\bjust\s+want\s+my\s+money\b",
        ),
    ),
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
                "|stressed|stressed out|distraught|devastated|heartbroken|humiliated|mortified"
                "|worried sick|beside myself|at my wits' end|in tears|desperate"
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
            r"\bnot\s+to\s+be\s+" + _any("rude|funny|difficult|awkward|horrible|mean|a pain"),
            r"\bnow\s+(?:you|they)(?:'re|\s+are)?\s+"
            + _any("want|wanting|expect|expecting|trying")
            + r"\s+(?:me\s+|us\s+)?to\b",
            r"\bi\s+pay\s+you\s+(?:[\w']+\s+){0,3}?to\b",
        ),
    ),
    (
        # giving up: "I guess I'll just wait", "whatever, forget it", "I've stopped expecting"
        "giving_up",
        -2.0,
        (
            r"\b"
            + _any("i guess|i suppose|you know what")
            + r"\s*,?\s+i(?:'ll|\s+will)\s+(?:just|have\s+to)\b",
            r"\b(?:forget\s+it|whatever)\s*,?\s+i(?:'ll|\s+will)\b",
            r"\bwhatever\s*,?\s+forget\s+it\b",
            r"\bi(?:'ll|\s+will|\s+guess\s+i'll)\s+just\s+(?:uh\s+|um\s+)?"
            + _any("live|manage|cope|sit|struggle|survive|carry on")
            + r"\s+without\b",
            r"\badd\s+(?:that|it|this)\s+to\s+the\s+list\b",
            r"\b"
            + _any("stopped|given up|gave up|no longer")
            + r"\s+"
            + _any("expecting|hoping|believing|trusting|bothering")
            + r"\b",
            r"\blike\s+i\s+always\s+(?:end\s+up\s+|have\s+to\s+)?"
            + _any("doing|do|having to|have to")
            + r"\b",
        ),
    ),
    (
        # a competitor did better: "funny how the other crowd managed", "at least they answer"
        "others_manage",
        -1.8,
        (
            r"\bfunny\s+how\s+"
            + _any("the other|other|your competitors?|they|everyone else|every other|you|you lot")
            + r"\b",
            r"\bat\s+least\s+(?:they|the\s+other\s+\w+|your\s+competitors?)\s+(?:actually\s+)?"
            + _any(
                "answer|answers|reply|replies|pick up|picks up|turn up|turns up|bother"
                "|bothers|care|cares|know|knows|call|calls|deliver|delivers|get|gets"
            )
            + r"\b",
        ),
    ),
    (
        "cant_help",
        -2.0,
        (
            r"\b(?:you(?:'re|\s+are)?|you\s+people|you\s+lot|you\s+guys|they(?:'re|\s+are)?)\s+"
            r"(?:clearly\s+|obviously\s+|just\s+|still\s+)?"
            + _any("not able to|unable to|can't|cannot|couldn't|incapable of")
            + r"\s+(?:even\s+)?"
            + _any("help|helping|fix|fixing|sort|sorting|answer|answering|tell|do anything")
            + r"\b",
            r"\b(?:there's|there\s+is)\s+nothing\s+(?:you|they)\s+can\s+do\b",
        ),
    ),
    (
        "wrong_place",
        -1.8,
        (
            r"\b(?:to|at|in)\s+the\s+wrong\s+"
            + _any(
                "address|flat|house|door|suburb|street|building|branch|hotel|airport|city"
                "|country|depot|locker|town|floor|store|shop"
            )
            + r"\b",
        ),
    ),
    (
        "elsewhere",
        -1.8,
        (
            r"\b(?:delivered|sent|left|went|gone|given|posted|handed|paid|credited|applied"
            r"|charged|dropped|shipped)\s+(?:[\w']+\s+){0,3}?(?:to|at|with|into|on|onto)\s+"
            r"(?:someone|somebody|some\s+random\s+person)\s+else['\u2019]?s\b",
        ),
    ),
    (
        "stranded",
        -1.8,
        (r"\bin\s+the\s+middle\s+of\s+nowhere\b",),
    ),
    (
        "for_nothing",
        -2.0,
        (
            r"\b"
            + _any(
                "queue|queued|queuing|queueing|wait|waited|waiting|drove|driven|drive|came|come"
                "|travelled|traveled|paid|paying|pay|sat|stayed|rushed"
            )
            + r"\b(?:\s+[\w']+){0,4}?\s+for\s+nothing\b",
        ),
    ),
    (
        # Singaporean English: "this one really cannot make it" (this is not acceptable)
        "cannot_make_it",
        -1.8,
        (
            r"\b(?:this|that)\s+(?:one\s+)?(?:really\s+|also\s+|still\s+)?"
            r"(?:cannot|can't)\s+make\s+it\b",
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
            r"\b(?:told|said|promised)\b(?:\s+[\w']+){1,10}?\s+(?:and|but)\s+instead\b",
            r"\b(?:said|told\s+(?:me|us)|promised)\s+(?:[\w']+\s+){0,4}?"
            r"(?:would|will|was\s+going\s+to|'d)\s+be\s+(?:[\w']+\s+){0,2}?"
            r"(?:yesterday|last\s+\w+|by\s+now|days\s+ago|weeks\s+ago|this\s+morning)\b",
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
        # no progress: "not really any further on than when I rang", "back to square one"
        "no_progress",
        -2.0,
        (
            r"\b(?:not|no|none|nothing)\s+(?:really\s+|even\s+|much\s+|any\s+|one\s+bit\s+){0,2}"
            r"(?:further|closer|nearer)\s+(?:on|forward|along|ahead|than|to)\b",
            r"\bback\s+to\s+square\s+one\b|\b(?:no|zero)\s+progress\b",
        ),
    ),
    (
        # distrust: "I don't believe a word", "I can't trust anything you say"
        "distrust",
        -2.0,
        (
            r"\b(?:don't|do\s+not|can't|cannot|won't|never)\s+(?:ever\s+)?believe\s+"
            r"(?:a\s+(?:single\s+)?word|anything|a\s+thing)\b(?!['\u2019]s|\s+(?:has|have|was|is)\b)",
            r"\b(?:don't|do\s+not|can't|cannot|won't|no\s+longer)\s+trust\s+"
            + _any("you|your|anyone|anybody|anything|a word|them|this company|a thing")
            + r"\b",
        ),
    ),
    (
        # not what I agreed: "store credit which I never agreed to", "I never signed up for"
        "never_agreed",
        -2.0,
        (
            r"\b(?:never|didn't|did\s+not)\s+(?:ever\s+)?"
            + _any(
                "agreed|agree|signed up|sign up|consented|consent|authori[sz]ed|authori[sz]e"
                "|asked|ask|ordered|order|requested|request|approved|approve|opted in|opt in"
            )
            + r"\s+(?:to|for|this|that|it|them|any)\b",
        ),
    ),
    (
        # damage done by the service: "came back with a scratch", "that wasn't there before"
        "damaged",
        -1.8,
        (
            r"\b(?:came|come|comes|got\s+it|was|arrived|returned|handed)\s+back\s+"
            r"(?:[\w']+\s+){0,4}?with\s+"
            r"(?:a|an|new|another|more|two|three|some)\s+(?:[\w']+\s+){0,2}?"
            + _any(
                "scratch|scratches|dent|dents|crack|cracks|chip|chips|marks?|stains?|damage"
                "|holes?|tears?|scuffs?|scrapes?|rips?|burns?"
            )
            + r"\b",
            r"\b(?:that|which)\s+(?:wasn't|was\s+not|weren't|were\s+not)\s+there\s+before\b",
        ),
    ),
    (
        # "declined ... and there's plenty of money in the account", "in front of everyone"
        "wrongly_refused",
        -1.8,
        (
            r"\b(?:declined|rejected|refused|bounced|blocked|frozen)\b(?:\s+[\w']+){0,12}?\s+"
            r"(?:plenty\s+of|enough|more\s+than\s+enough|loads\s+of|lots\s+of|sufficient)\s+"
            r"(?:money|funds|cash|balance|credit)\b",
            r"\bin\s+front\s+of\s+(?:everyone|everybody|all\s+(?:the|those)\s+people|people"
            r"|the\s+whole\s+\w+|a\s+(?:queue|crowd|full\s+\w+)|(?:my|the|our)\s+"
            + _any(
                "kids|children|family|wife|husband|friends|colleagues|boss|customers|clients"
                "|neighbours|neighbors|guests|in-laws|team|queue|class"
            )
            + r")\b",
        ),
    ),
    (
        # a service that barely works: "broadband that works twice a week", "half the time"
        "barely_works",
        -1.8,
        (
            r"\b(?:works|working|worked|connects|loads|comes\s+on)\s+(?:about\s+|maybe\s+|only\s+)?"
            r"(?:once|twice|[\w-]+\s+times)\s+(?:a|per|every)\s+(?:week|month|day|fortnight)\b",
            r"\b(?:works|working|connects|loads)\s+(?:about\s+|maybe\s+|only\s+)?half\s+the\s+time\b",
            r"\bwhen\s+it\s+feels\s+(?:like|as\s+if)\s+it\b",
            r"\bif\s+(?:i'm|i\s+am|you're|you\s+are|we're|we\s+are)\s+lucky\b",
        ),
    ),
    (
        # paying and still not getting it: "I pay for the premium plan and it's still showing ads"
        "paid_and_still",
        -1.8,
        (
            r"\b(?:i|we)(?:'m|\s+am|'re|\s+are)?\s+(?:pay|paying|paid)\s+(?:for|good\s+money"
            r"|\w+\s+(?:a|per|every)\s+(?:month|year|week))\b(?:\s+[\w']+){0,8}?\s+"
            r"(?:and|but|yet)\s+(?:it(?:'s|\s+is)?\s+|i(?:'m|\s+am)?\s+|they(?:'re)?\s+)?"
            r"(?:still\s+"
            + _any(
                "not|no|haven't|hasn't|can't|showing|getting|get|got no|waiting|nothing|have to"
                "|being|charged|broken"
            )
            + r"|never|can't|cannot|doesn't|didn't|barely|hardly)\b",
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
        r"\b(?:alarm\s+)?"
        + _any(
            "phone|mobile|battery|laptop|computer|tablet|ipad|handset|charger|remote|panel"
            "|keypad|router|modem|decoder|receiver|screen|doorbell|camera|smoke detector|unit"
        )
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
    (
        r"\balarm\s+(?=(?:clock|system|panel|test|code|company|package|plan|cover|monitoring"
        r"|installation|installer|sensor|service|contract|box|app|engineer|upgrade|keypad|fob"
        r"|batter(?:y|ies))s?\b)",
        "",
    ),
    # matter-of-fact faults: "the car's got a dead battery", "a flat tyre"
    (r"\b(?:dead|flat)\s+(?=(?:battery|batteries|tyre|tire|tyres|tires)\b)", ""),
    # reporting fraud is a request: "report a fraudulent charge", "dispute an unauthorised payment"
    (
        r"\b(report|reporting|flag|flagging|dispute|disputing|query|querying)\s+"
        r"(an?|some|the|this|two|three|a\s+few)\s+(?:possibly\s+|potentially\s+)?"
        r"(?:fraudulent|suspicious|unauthori[sz]ed|unrecogni[sz]ed)\s+"
        r"(?=(?:charge|transaction|payment|debit|activity|purchase|withdrawal|email|e-mail|text"
        r"|message|call|link|login|log-in)s?\b)",
        r"\1 \2 ",
    ),
    # a correction to personal details: "there's a problem with the address on my letter"
    (
        r"\b(?:a|an|one)\s+(?:small\s+|little\s+|slight\s+|quick\s+)?"
        r"(?:problem|issue|mistake|error|typo)\s+(?:with|in|on)\s+"
        r"(?=(?:the|my|our|his|her)\s+(?:address|name|postcode|post\s+code|zip\s+code|spelling"
        r"|date\s+of\s+birth|email(?:\s+address)?|phone\s+number|details|surname"
        r"|first\s+name)\b)",
        "a correction to ",
    ),
    # bereavement paperwork: "my dad died in march so I need to close his account"
    (
        r"\b((?:my|our|his|her)\s+(?:\w+\s+)?(?:dad|father|mum|mom|mother|husband|wife|partner"
        r"|son|daughter|brother|sister|gran|granny|grandad|grandma|grandpa|grandmother"
        r"|grandfather|nan|uncle|aunt|auntie|aunty))\s+(?:has\s+|had\s+|just\s+|sadly\s+"
        r"|recently\s+)?(?:died|passed\s+away)\b",
        r"\1 passed on",
    ),
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
        rf"\blike\s+(?={_N}\b|half\b|about\b|around\b|literally\b|double\b|twice\b|triple\b"
        r"|word\s+for\s+word\b|every\b|forever\b|ages\b|totally\b|completely\b)",
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
    # a team or a reference named after what it handles: "the fraud department", "my
    # complaint reference number"
    (
        r"\b(?:fraud|disputes?|claims?|bereavement|arrears|collections)\s+"
        r"(?=(?:department|dept|team|line|office|unit|section|desk|squad|reference|ref|number"
        r"|case\s+number|id|form|handler|officer|adviser|advisor)s?\b)"
        r"|\bcomplaint\s+(?=(?:reference|ref|number|case\s+number|id)\b)",
        "",
    ),
    # a request to stop a card: "can you block the card", "I want to block my account"
    (
        r"\bblock(?:ed|ing)?\s+(?=(?:the|my|this|that|both|all|our|his|her)\s+(?:\w+\s+)?"
        r"(?:cards?|accounts?|payments?|numbers?|sims?|phones?|transactions?|cheques?)\b)",
        "lock ",
    ),
    # reporting a theft is a request: "my car was stolen so I need to make a claim"
    (
        r"\b((?:my|our|his|her|the)\s+(?:[\w']+\s+)?(?:car|van|wallet|purse|bag|handbag|phone|mobile"
        r"|bike|bicycle|laptop|cards?|passport|keys|luggage|suitcase|motorbike|scooter|tablet|ipad"
        r"|vehicle|caravan|trailer|tools))(?:\s+(?:was|were|got|has\s+been|have\s+been|had\s+been)"
        r"|'s\s+been|'ve\s+been)\s+(?:\w+\s+)?stolen\b",
        r"\1 was taken",
    ),
    (r"\b(feel|felt|feels|seems?|looks?|sounds?)\s+like\b", r"\1 as if"),
    (r"^\s*(?:(?:yeah|yes|oh|okay|ok)\s+)?(?:sure|right)\b", "yeah"),
    # thanks before a complaint is politeness, not praise: "thanks for your help but ...", "I
    # do appreciate it but ...", "you're very kind but ...", "you're the first person who's
    # actually listened but ..."
    (
        r"^\s*(?:(?:look|well|okay|ok|yeah|um|uh|so|no|and)\s+)*"
        r"(?:thanks|thank\s+you|cheers|i\s+(?:do\s+|really\s+|totally\s+)?appreciate\s+"
        r"(?:it|that|this|you|your\s+\w+|the\s+\w+)"
        r"|(?:you're|you\s+are|that's|that\s+is)\s+(?:very\s+|really\s+|so\s+|being\s+(?:very\s+)?)?"
        r"(?:kind|nice|sweet|helpful|lovely)"
        r"|you've\s+been\s+(?:very\s+|really\s+|so\s+)?(?:kind|nice|helpful|lovely|patient|great)"
        r"|you(?:'re|\s+are)\s+the\s+(?:first|only)\s+(?:person|one|agent)\s+(?:who|that)"
        r"(?:'s|\s+has)?\s+(?:actually\s+|even\s+|really\s+)?\w+)"
        r"(?:\s+[\w']+){0,6}?\s*,?\s+but\b",
        "but",
    ),
    # a kind of credit, not praise: "store credit", "credit card"
    (r"\b(?:store|account|in-store|shop)\s+credit\b", "voucher"),
    (r"\bcredit\s+(?=(?:cards?|notes?|limit|score|check|rating|union|agreement)\b)", ""),
    (r"\b(i|we)(?:'d|\s+would)\s+(?:just\s+|really\s+|also\s+)?like\s+to\b", r"\1 want to"),
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
    # a precaution: "if we get cut off can you ring me back"
    (
        r"\b(?:in\s+case|if)\s+(?:we|i|you|the\s+(?:line|call))\s+(?:get|gets|got)\s+cut\s+off\b",
        "if the call drops",
    ),
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
_SARCASTIC_PRAISE = _any("great|brilliant|wonderful|fantastic|perfect|lovely|marvellous")
SARCASM = re.compile(
    rf"^\s*(?:(?:oh|well|yeah|wow)\s+){{0,2}}(?:{_SARCASTIC_PRAISE}|super|terrific|excellent"
    rf"|nice\s+one|just\s+great)\b[,.!]*"
    rf"|\b(?:just|exactly|precisely)\s+(?:{_SARCASTIC_PRAISE}|what\s+i\s+(?:needed|wanted))\b"
    # "oh that's great ..." (not "oh that's brilliant, thank you")
    rf"|^\s*(?:(?:oh|well|yeah|wow)\s+){{0,2}}(?:that's|that\s+is|how)\s+(?:just\s+)?"
    rf"{_SARCASTIC_PRAISE}\b(?![,.!]*\s+(?:thank|thanks|cheers)\b)[,.!]*"
    rf"|\b{_any('great|brilliant|wonderful|fantastic|perfect|lovely')}\s*,?\s+(?=another\b)"
    rf"|[,.]?\s+(?:just\s+)?{_SARCASTIC_PRAISE}[.!]*\s*$",
    re.IGNORECASE,
)
MOCKING = re.compile(
    # praise that mocks only next to a complaint: "oh fair play ... losing it twice", "love
    # that for me", "you've outdone yourselves", "bless your heart", "that's totally fine",
    # "so good it charged me twice", "definitely coming this time", "top notch security that"
    rf"^\s*(?:oh\s+|well\s+)?cue_fair_play\b"
    rf"|\blove\s+(?:that|this|it)\s+for\s+(?:me|us)\b"
    rf"|\b(?:really\s+)?outdone\s+(?:yourself|yourselves|themselves)\b"
    rf"|\bbless\s+(?:your|his|her|their)\s+(?:heart|cotton\s+socks)\b"
    rf"|\b(?:that's|it's|that\s+is|it\s+is)\s+(?:totally\s+|absolutely\s+|completely\s+"
    rf"|perfectly\s+|all\s+)?fine(?:\s+(?:thank\s+you|thanks))?\b"
    # "really love paying for broadband that ...", "no problem at all", "wow thanks so much for"
    rf"|\b(?:really\s+|just\s+|i\s+)?love\s+(?:paying|being|waiting|getting|having\s+to"
    rf"|spending|sitting|listening|hearing)\b"
    rf"|\bno\s+(?:problem|worries|bother)(?:\s+at\s+all)?\b"
    rf"|^\s*(?:(?:oh|well|wow|yeah)\s+)+(?:thanks|thank\s+you|cheers)(?:\s+(?:so|very)\s+much)?"
    rf"(?:\s+for)?\b"
    rf"|\bso\s+(?:good|great|efficient|smart|clever|reliable|helpful)\s+(?:that\s+)?"
    rf"(?=(?:it|they|you)\b)"
    rf"|\b(?:definitely|surely|for\s+sure)\b(?=(?:\s+[\w']+){{0,3}}\s+this\s+time\b)"
    rf"|\b(?:really\s+)?(?:top[-\s]notch|customer[-\s]focused|first[-\s]class|world[-\s]class"
    rf"|{_SARCASTIC_PRAISE})\s+(?:[\w-]+\s+)?that\s*[.!]*\s*$",
    re.IGNORECASE,
)
"""Praise markers that are sarcastic when the rest of the utterance is negative."""
# what makes praise markers sarcastic without negative words around them: an "oh great"
# opening, "just what I needed", "brilliant, another ...", a lone "lovely" to end on
# ("perfect, that's exactly what I needed" is thanks)
SARCASM_LEAD = re.compile(
    rf"^\s*(?:oh|well|yeah)\s+(?:{_SARCASTIC_PRAISE}|super|terrific|excellent|just\s+great)\b"
    rf"|\bjust\s+(?:{_SARCASTIC_PRAISE}|what\s+i\s+(?:needed|wanted))\b"
    rf"|\b{_SARCASTIC_PRAISE}\s*,?\s+another\b"
    rf"|[,.]?\s+(?:just\s+)?{_SARCASTIC_PRAISE}[.!]*\s*$",
    re.IGNORECASE,
)
_COMPLAINT_CUES = "|".join(f"cue_{name}" for name, valence, _ in PHRASE_CUES if valence < 0)
SARCASM_AFTER_COMPLAINT = re.compile(
    rf"\b({_COMPLAINT_CUES})\s+(?:just\s+|really\s+|absolutely\s+|how\s+)?"
    rf"(?:{_SARCASTIC_PRAISE}|amazing|super|terrific|excellent)\b",
    re.IGNORECASE,
)
"""Praise right after a complaint ("takes thirty working days, fantastic"; "on hold an hour,
lovely") mocks it: the scorer reads the praise word as ``cue_sarcasm``."""
