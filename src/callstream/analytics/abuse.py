"""Abusive-caller detection on transcript text (sans-I/O).

Profanity and insults are matched per CALLER segment on whole words, case-insensitively,
so Scunthorpe, assessment, Essex, cocktail, Dickens, classic and grassland stay clean.
Obfuscations are undone: ``f*ck`` / ``f**k`` (a ``*`` stands for any letters of the term,
never the first one), repeated letters (``fuuuck``) and common look-alikes (``$hit``,
``@ss``, ``sh1t``). Threats are a separate kind.

What is matched (the word tables are in :mod:`callstream.analytics.abuse_terms`, the
patterns below):

* **words** (``WORDS``): profanity (mild, strong, worst) and insults, inflections
  listed explicitly (no stemming, so "assessment" never reduces to "ass"), with the
  dialect words callers use in other Englishes ("bampot", "fokken", "mumu", "bodoh", "poes");
* **insults aimed at the listener**: an addressee ("you", "you lot", "you people", "your
  staff", "all of you", the question "are you"), an optional copula ("'re", "are"), up to
  five modifiers ("a", "absolute", "bunch of", "fucking", "thieving") and an insult word.
  Words in ``DIRECTED_ONLY`` ("cow", "liar", "deaf", "waste of space") count only in
  this shape: "you stupid cow" is abuse, "the cow field" is not. An order to the listener
  ("stop being such a dropkick", "don't be a muppet"), the insult named first ("crooks,
  the lot of you", "what an idiot you are") and someone at the company ("your manager's a
  liar", "tell your ceo he's a greedy crook") are aimed at the listener too;
* **put-downs and sexual harassment** (:data:`_PHRASES`, :data:`HARASSMENT`): "did they
  hire you off the street", "you don't know anything", "what are you wearing", "you sound
  gorgeous", "give me your number and we'll sort it over dinner";
* **dismissals** (:data:`_PHRASES`): "go to hell", "piss off", "shove it up your arse" ...;
* **threats** (:data:`_THREATS`): a first-person future ("I'll", "I'm going to", "I swear
  I'll"), optionally "come round there and", a violent verb and a person or place as its
  object ("I'll break his legs", "smash the place up"); "kill the process", "I could kill
  for a coffee", "I'll shoot you an email" and negated threats are not threats; plus fixed
  shapes ("I know where you live", "you'll regret this", "someone at your company is going
  to get hurt", "you'd better hope I never meet you").

Not abuse (severity 0; the hit is still reported): an insult aimed at oneself ("I'm such
an idiot") or negated ("you're not an idiot"), and profanity used as an intensifier of
praise ("damn good service", "bloody marvellous", "fucking brilliant"). Profanity and mild
put-downs aimed at nobody are mild (not abusive on their own: together they score at most
1 in an utterance): an exclamation at a mishap ("oh shit", "ag fok"), words about the
situation ("it's been a fucking nightmare", "the damn router's been down all bloody day",
"this stupid form"), an intensified verdict on it ("och this is pure shite"). Profanity is
aimed when the listener ("you", "your", "you lot"; for strong profanity also the company
or its staff: "this fucking bank") is named within five words of it, or when it judges the
company's conduct ("what a fucking joke", "this is fucking ridiculous", "this is damn
crap", "full of shit") or dismisses it ("fuck this"); words naming a person ("bastard",
"prick") and "bullshit" (calling what was said a lie) are always aimed.

Scoring (documented thresholds):

* each hit has a severity: mild profanity 1, strong profanity or an insult 2, a slur or an
  insult aimed at the listener ("you idiot") 3, a threat 5;
* a segment is abusive when its score reaches :data:`SEGMENT_THRESHOLD` (2);
* the call gets an ``ABUSIVE_CALLER`` flag when the caller's summed score (every hit at
  its full severity, aimed or not) reaches :data:`CALL_THRESHOLD` (4), or any single hit
  has severity >= 3 (threats included).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from callstream.analytics.abuse_terms import DIRECTED_ONLY as _DIRECTED_ONLY
from callstream.analytics.abuse_terms import MODIFIERS as _MODIFIERS
from callstream.analytics.abuse_terms import WORDS as _WORDS

SEGMENT_THRESHOLD = 2
CALL_THRESHOLD = 4


class SegmentLike(Protocol):
    """Anything shaped like an LCA transcript segment."""

    SegmentId: str
    Channel: str
    StartTime: float
    EndTime: float
    Transcript: str


@dataclass
class Hit:
    """One matched term in a text: kind, the matched text, its character span, severity.
    ``unaimed`` is the severity left out because the hit is aimed at nobody (the text's
    score does not count it; a call's summed score does)."""

    kind: str  # "PROFANITY" | "INSULT" | "THREAT"
    term: str
    start: int
    end: int
    severity: int
    unaimed: int = 0


@dataclass
class Flag:
    """A flag raised on a call: ``PROFANITY``/``INSULT``/``THREAT`` per segment, or the
    call-level ``ABUSIVE_CALLER``. ``evidence`` holds (segment_id, start, end, term)."""

    kind: str
    segment_ids: list[str]
    evidence: list[tuple[str, float, float, str]] = field(default_factory=list)
    score: int = 0


_LEET = str.maketrans(
    {"@": "a", "$": "s", "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "!": "i", "7": "t"}
)
_TOKEN = re.compile(r"[A-Za-z@$*0-9!]*[A-Za-z][A-Za-z@$*0-9!]*|[@$][A-Za-z@$*0-9!]+")


def _term_regex(word: str) -> re.Pattern[str]:
    # first letter literal (repeatable); later letters repeatable or masked by '*'
    parts = [re.escape(word[0]) + "+"]
    parts += [f"[{re.escape(c)}*]+" for c in word[1:]]
    return re.compile("".join(parts))


_REGEXES: dict[str, list[tuple[re.Pattern[str], str]]] = {}
for _w in _WORDS:
    _REGEXES.setdefault(_w[0], []).append((_term_regex(_w), _w))
_REPEATS = re.compile(r"(.)\1+")
# a plain-letter token can only spell a listed word if it collapses to the same letters
_COLLAPSED = {_REPEATS.sub(r"\1", w) for w in _WORDS}


def _canonical(token: str) -> str | None:
    """The listed word ``token`` spells (after undoing obfuscation), or None."""
    tok = token.lower().rstrip("!")
    if not tok or tok.isdigit():
        return None
    if tok in _WORDS:
        return tok
    tok = tok.translate(_LEET)
    if sum(c.isalpha() for c in tok) < 2 or not tok[0].isalpha():
        return None
    if tok.isalpha() and _REPEATS.sub(r"\1", tok) not in _COLLAPSED:
        return None  # the common case, without trying every regex
    # a masked token may spell several words (f*ck: fuck, feck): take the most severe
    matches = [word for rx, word in _REGEXES.get(tok[0], ()) if rx.fullmatch(tok)]
    return max(matches, key=lambda w: _WORDS[w][1], default=None)


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation of ``words`` (longest first; spaces match any whitespace)."""
    return "|".join(
        re.escape(w).replace(r"\ ", r"\s+") for w in sorted(set(words), key=len, reverse=True)
    )


# who an insult is aimed at: the listener, the listener's group or colleagues
_ADDRESSEE = (
    r"(?:\b(?:you|ya)(?:\s+(?:[a-z]+\s+)?(?:lot|people|guys|lads|folk|folks)|\s+(?:two|all))?"
    r"|\byour\s+(?:[a-z]+\s+){0,2}?(?:staff|people|lot|engineers?|agents?|team|colleagues?"
    r"|managers?|boss|supervisors?|technicians?|drivers?|company|firm|bank|business|lot)"
    r"|\ball\s+of\s+you"
    # an order to the listener: "stop being such a dropkick", "don't be a muppet"
    r"|\bstop\s+being|\bdon['\u2019]?t\s+be"
    # someone at the company, then "he"/"she": "tell your ceo he's a crook"
    r"|\b(?:ceo|boss|manager|supervisor|director|chairman|owner|landlord)\s+(?:that\s+)?(?:he|she))"
    r"(?:\s*['\u2019](?:re|s)|\s+(?:are|r|were|is|have\s+been|'ve\s+been))?(?:\s+all)?"
)
_ASKED = r"\bare\s+(?:you|ya|u)(?:\s+(?:lot|people|guys|all))?(?:\s+(?:just|really|actually))?"
_MODIFIER = _alternation(_MODIFIERS)
_INSULT_TARGETS = [w for w, (kind, _) in _WORDS.items() if kind == "INSULT"] + [
    "bastard",
    "bastards",
    "asshole",
    "assholes",
    "arsehole",
    "arseholes",
    "prick",
    "pricks",
    "twat",
    "twats",
    "cunt",
    "cunts",
    "dickhead",
    "dickheads",
    "wanker",
    "wankers",
    "tosser",
    "tossers",
    "shithead",
    "knobhead",
    "bellend",
    "fuckwit",
    "dipshit",
    "bitch",
    "bitches",
    *_DIRECTED_ONLY,
]
_DIRECTED = re.compile(
    rf"(?:{_ADDRESSEE}|{_ASKED})(?:\s+(?:{_MODIFIER})){{0,5}}\s+"
    rf"(?:{_alternation(_INSULT_TARGETS)})\b",
    re.IGNORECASE,
)
# the insult first, the listener after: "what a shower of useless gobshites you are"
_INSULT_THEN_YOU = re.compile(
    rf"\bwhat\s+an?(?:\s+(?:{_MODIFIER})){{0,5}}\s+(?:{_alternation(_INSULT_TARGETS)})\s+"
    r"(?:you\s+(?:are|lot\s+are|people\s+are)|you['\u2019]re)\b",
    re.IGNORECASE,
)
# the insult, then who it is for: "crooks the lot of you", "idiots, all of you"
_INSULT_THE_LOT = re.compile(
    rf"\b(?:{_alternation(_INSULT_TARGETS)})\s*,?\s+"
    r"(?:the\s+(?:whole\s+)?lot\s+of\s+(?:you|yous|ye)"
    r"|all\s+of\s+(?:you|yous|ye)|you\s+lot)\b",
    re.IGNORECASE,
)
# a group named by its trade: "you insurance crooks", "these bank leeches" (plural insults
# only; animals are left out of the "these ..." form: "these rats" may be in the loft)
_PLURAL_TARGETS = [w for w in _INSULT_TARGETS if w.endswith("s") and " " not in w]
_LITERAL_ANIMALS = {"cows", "pigs", "rats", "animals", "monkeys", "sharks", "hyenas"}
_GROUP_INSULT = re.compile(
    rf"\byou\s+(?:[a-z]+\s+)?(?:{_alternation(_PLURAL_TARGETS)})\b"
    rf"|\b(?:these|those)\s+(?:[a-z]+\s+)?"
    rf"(?:{_alternation(set(_PLURAL_TARGETS) - _LITERAL_ANIMALS)})\b",
    re.IGNORECASE,
)
# the insult is aimed at the speaker ("I'm such an idiot", "silly me"): not abuse
_SELF = re.compile(
    rf"\b(?:i(?:['\u2019]m|\s+am|\s+was|\s+feel|\s+felt|['\u2019]ve\s+been|\s+must\s+be|\s+sound"
    rf"|\s+look)(?:\s+(?:being|like))?|me|myself)(?:\s+(?:{_MODIFIER})){{0,4}}\s*$",
    re.IGNORECASE,
)
# a negated insult ("you're not an idiot", "I'm not calling you stupid"): not abuse
_NEGATED_INSULT = re.compile(
    rf"(?:\bnot|\bnever|n['\u2019]t)(?:\s+(?:calling|saying|think|you|you['\u2019]re|are"
    rf"|{_MODIFIER})){{0,4}}\s*$",
    re.IGNORECASE,
)
# profanity as an intensifier of praise ("damn good", "fucking brilliant"): not abuse
_PRAISE = re.compile(
    r"\s+(?:good|great|brilliant|fantastic|amazing|awesome|excellent|marvellous|marvelous"
    r"|superb|lovely|helpful|fast|quick|nice|fine|perfect|wonderful|legend|star|genius|class"
    r"|service|job|work|well)\b",
    re.IGNORECASE,
)
EXCLAMATION = re.compile(
    r"\b(?:oh|ah|aw|ag|och|eish|ugh|argh|holy|bloody|oh\s+my)\s+(?:shit|shite|crap|fuck|fok|hell"
    r"|damn)\b"
    r"(?!\s+(?:you|off))"
    r"|\bfor\s+(?:fuck|fuck['\u2019]?s|god['\u2019]?s|christ['\u2019]?s|pete['\u2019]?s)"
    r"\s+sake\b"
    r"|^\s*(?:shit|damn|crap)\s*,?\s+(?=sorry|wait|hang\s+on|hold\s+on|i\b|where\b"
    r"|one\s+sec|just\s+a\s+(?:sec|second|minute|moment))",
    re.I,
)
"""Profanity as an exclamation at a mishap, aimed at nobody ("oh shit", "for fuck's sake",
"shit, sorry"): mild (severity 1), and the sentiment scorer reads it as a plain "oh"."""
HARASSMENT = re.compile(
    r"\bwhat\s+(?:are|r)\s+(?:you|ya|u)\s+wearing\b"
    r"|\b(?:sexy|hot|gorgeous|seductive|sultry|sensual)\s+(?:little\s+)?(?:voice|accent|lips"
    r"|body|legs)\b|\bvoice(?:['\u2019]s|\s+is)\s+(?:so\s+|really\s+|very\s+)?(?:sexy|hot|gorgeous"
    r"|seductive|sultry)\b"
    r"|\byou\s+(?:sound|look|must\s+look)\s+(?:so\s+|really\s+|very\s+)?(?:gorgeous|sexy|hot"
    r"|fit|beautiful|cute|stunning|tasty)\b"
    r"|\bi\s+bet\s+you\s+look\s+(?:\w+\s+)?(?:gorgeous|sexy|hot|fit|beautiful|cute|stunning"
    r"|good|great|better|pretty|lovely|amazing|nice)\b"
    r"|\bi\s+bet\s+you(?:['\u2019]re|\s+are)\s+(?:so\s+|really\s+)?(?:gorgeous|sexy|hot|fit"
    r"|beautiful|cute|stunning|pretty)\b"
    r"|\bare\s+you\s+single\b(?!\s+(?:or|applicant|account|policy|occupancy|person|parent))"
    r"|\b(?:do\s+you\s+have|have\s+you\s+got|you\s+got)\s+a\s+(?:boyfriend|girlfriend)\b"
    r"|\b(?:go\s+out|out\s+on\s+a\s+date|a\s+date)\s+with\s+me\b|\btake\s+you\s+out\b"
    r"|\byour\s+(?:\w+\s+)?number\b[\w\s']{0,40}?\b(?:dinner|drinks?|a\s+date)\b"
    r"|\b(?:dinner|drinks?|a\s+date)\b[\w\s']{0,40}?\byour\s+(?:\w+\s+)?number\b",
    re.I,
)
"""Sexual harassment of the agent ("what are you wearing", "sexy voice", "you sound
gorgeous", "give me your number and we'll sort it over dinner"): an insult aimed at the
listener (severity 3)."""
SITUATION = re.compile(
    r"\b(?:this|it|that|all\s+this)(?:['\u2019]s|\s+is|\s+was)\s+(?:just\s+|so\s+)?"
    r"(?:pure|total|absolute|utter|complete)\s+(?:shite|shit|crap|pish)\b",
    re.I,
)
"""Profanity judging a situation, aimed at nobody ("och this is pure shite", "it's absolute
crap"): mild (severity 1). "Your service is shite" names the company and stays strong."""
_PHRASES = [
    (EXCLAMATION, "PROFANITY", 1),
    (SITUATION, "PROFANITY", 1),
    # Hokkien, as Singaporean and Malaysian callers swear
    (re.compile(r"\bkan\s*ni\s*na\b|\bchee\s*bye\b|\bci\s*bai\b", re.I), "PROFANITY", 3),
    # Tagalog "you" after the insult: "tanga ka ba", "bobo ka talaga"
    (re.compile(r"\b(?:tanga|bobo|gago|ulol)\s+(?:ka|kayo)\b", re.I), "INSULT", 3),
    (
        re.compile(r"\b(?:go\s+)?(?:fuck|screw)\s+(?:you|off|yourself|yourselves)\b", re.I),
        "INSULT",
        3,
    ),
    (re.compile(r"\bshut\s+(?:the\s+\w+\s+)?up\b", re.I), "INSULT", 2),
    (HARASSMENT, "INSULT", 3),
    (
        re.compile(
            r"\b(?:run|managed|staffed)\s+by\s+(?:a\s+(?:bunch|pack|load)\s+of\s+)?"
            r"(?:halfwits|idiots|morons|clowns|monkeys|muppets|imbeciles|amateurs|cowboys|crooks)\b"
            r"|\bcouldn['\u2019]?t\s+organi[sz]e\s+a\s+(?:piss[-\s]?up|booze[-\s]?up)\b"
            r"|\b(?:brains?|intelligence|iq|memory)\s+of\s+an?\s+(?:[a-z]+\s+)?[a-z]+\b"
            r"|\b(?:pathetic|sorry|poor|miserable|useless)\s+excuse\s+for\s+an?\s+\w+"
            r"|\b(?:dumber|thicker|stupider|slower|more\s+useless)\s+than\s+an?\s+\w+"
            r"|\b(?:an?|my)\s+(?:goldfish|monkey|chimp|trained\s+monkey|toddler|child|dog|cat"
            r"|five[-\s]year[-\s]old)\s+(?:would|could)\b[\w\s']{0,60}?\b(?:better|quicker"
            r"|faster|smarter)\s+than\s+you\b"
            r"|\btalking\s+to\s+you\s+is\s+like\s+talking\s+to\b"
            r"|\byour\s+(?:mother|mum|mom|parents|family|kids)\s+(?:must|would|should)\s+be\s+"
            r"(?:so\s+|really\s+)?(?:ashamed|embarrassed|disgusted)\b"
            r"|\bare\s+you\s+even\s+(?:human|awake|listening|trained|qualified)\b"
            r"|\bwhat\s+an?\s+(?:absolute\s+|total\s+|complete\s+)?(?:clown\s+show|circus"
            r"|shitshow|joke\s+of\s+a\s+company)\b"
            r"|\bdo\s+your\s+(?:damn|bloody|fucking|effing|flipping|goddamn)\s+job\b"
            r"|\byou(?:['\u2019]re|\s+are)\s+(?:just\s+)?nothing\s+but\s+an?\b"
            r"|\bhalf\s+a\s+brain\b|\b(?:one|two|a\s+single)\s+brain\s+cells?\b"
            # who the company hires: "anybody with a pulse", "someone who actually has a brain"
            r"|\b(?:anybody|anyone|someone|somebody)\s+with\s+a\s+pulse\b"
            r"|\b(?:someone|somebody|anyone|anybody|one)\s+(?:(?:on|in|here|there|else)\s+)?"
            r"(?:(?:who|that)\s+(?:actually\s+"
            r"|really\s+)?(?:has|have|has\s+got|['\u2019]s\s+got)|with)\s+(?:actually\s+)?"
            r"(?:a\s+brain|brains|a\s+clue|a\s+working\s+brain)"
            r"(?=\s*(?:$|[,.!?]|(?:please|for\s+once|and|or|you|who|in|on|to|this|because)\b))"
            r"|\b(?:smarter|brighter|sharper|cleverer)\s+than\s+an?\s+(?:bag|box|sack|bucket"
            r"|pile|lump|plank|rock|brick|potato|doorknob|goldfish)\b"
            r"|\b(?:dumb|thick|dim)\s+as\s+an?\s+(?:bag|box|sack|bucket)\s+of\s+\w+",
            re.I,
        ),
        "INSULT",
        2,
    ),
    (
        re.compile(
            r"\byou(?:['\u2019]re|\s+are|\s+must\s+be|\s+have\s+to\s+be)\s+the\s+"
            r"(?:dumbest|stupidest|thickest|rudest|laziest|worst|most\s+(?:incompetent|useless"
            r"|clueless|ignorant|arrogant))\b",
            re.I,
        ),
        "INSULT",
        3,
    ),
    (
        re.compile(
            r"\bdon['\u2019]?t\s+give\s+me\s+(?:that|this|your)\s+(?:crap|shit|bullshit|bs)\b", re.I
        ),
        "INSULT",
        2,
    ),
    (re.compile(r"\bshut\s+your\s+(?:mouth|face|trap|gob)\b", re.I), "INSULT", 2),
    (re.compile(r"\bpiece\s+of\s+(?:shit|crap|garbage|trash)\b", re.I), "INSULT", 3),
    (re.compile(r"\bgo\s+to\s+hell\b|\bgo\s+(?:and\s+)?die\b|\bdrop\s+dead\b", re.I), "INSULT", 3),
    (
        re.compile(r"\b(?:piss|bugger|sod|bog|naff|frig)\s+off\b|\bget\s+stuffed\b", re.I),
        "INSULT",
        2,
    ),
    (
        re.compile(
            r"\b(?:shove|stick|ram)\s+(?:it|that|them|this|your\s+\w+)\s+up\s+your\s+(?:arse|ass)\b"
            r"|\b(?:can|could|should|go\s+and|to)\s+shove\s+(?:it|that|this|them|his|her|their"
            r"|your)\b"
            r"|\bkiss\s+my\s+(?:arse|ass)\b",
            re.I,
        ),
        "INSULT",
        3,
    ),
    (
        re.compile(
            r"\b(?:out\s+of|up)\s+your\s+(?:arse|ass|backside)\b|\bwhere\s+the\s+sun\s+"
            r"(?:don't|doesn't|does\s+not)\s+shine\b|\bup\s+yours\b|\b(?:damn|sod)\s+you\b"
            r"|\beat\s+shit\b|\bbite\s+me\b",
            re.I,
        ),
        "INSULT",
        3,
    ),
    (
        re.compile(
            r"\bi\s+hope\s+(?:you|your\s+\w+)\s+(?:die|dies|rot|rots|get\s+(?:cancer|run\s+over"
            r"|hit\s+by|sacked|fired|the\s+sack|what(?:['\u2019]s|\s+is)\s+coming))\b",
            re.I,
        ),
        "INSULT",
        3,
    ),
    (
        re.compile(
            r"\byour\s+(?:thick|stupid|fat|empty|tiny|little)\s+(?:head|skull|brain)\b"
            r"|\bjumped[-\s]up\b|\bthick\s+as\s+(?:two\s+short\s+planks|mince|shit|pig\s+shit)\b"
            r"|\bas\s+(?:much\s+)?use(?:ful)?\s+as\s+a\s+chocolate\s+(?:teapot|fireguard)\b"
            r"|\b(?:useless|use)\s+as\s+(?:tits|teats)\s+on\s+a\s+(?:bull|boar)\b"
            # who would hire you: "did they hire you off the street", "who hired you"
            r"|\b(?:hire|hired|find|found|pick|picked|pull|pulled|get|got)\s+you\s+"
            r"(?:off|from|out\s+of)\s+the\s+(?:street|streets|gutter|zoo|circus)\b"
            r"|\bwho\s+(?:on\s+earth\s+|the\s+hell\s+)?hired\s+you\b"
            # "you don't know anything", "you haven't got a clue" (not "... about the outage")
            r"|\byou\s+(?:clearly\s+|obviously\s+|honestly\s+|just\s+)?(?:(?:don['\u2019]?t|do\s+not)"
            r"\s+know\s+(?:anything|a\s+thing|jack|squat|what\s+you(?:['\u2019]re|\s+are)\s+"
            r"(?:doing|talking\s+about|on\s+about))|know\s+nothing"
            r"|(?:haven['\u2019]?t\s+got|have\s+not\s+got|(?:['\u2019]ve|\s+have)\s+(?:got\s+)?no)"
            r"\s+(?:a\s+)?clue)\b"
            r"(?!\s+(?:about|yet|more|else|regarding|when|where|how|why|whether|if)\b)",
            re.I,
        ),
        "INSULT",
        2,
    ),
]

# a first-person future, optionally "come round there and", then a violent verb
_FIRST_PERSON_FUTURE = (
    r"\bi(?:['\u2019]ll|\s+will|\s+shall|['\u2019]d|\s+would|\s+could|\s+gonna"
    r"|['\u2019]m\s+(?:going\s+to|gonna)|\s+am\s+(?:going\s+to|gonna))"
)
_WISH = r"(?:\s+(?:like|love|want|have\s+a\s+(?:good\s+)?mind)\s+to)?"
_APPROACH = (
    r"(?:\s+(?:come|go|get|be)\s+(?:down|over|round|around|up|back|in)"
    r"(?:\s+(?:there|here))?(?:\s+(?:myself|personally))?\s+and)?"
)
# fmt: off
_VIOLENT_VERBS = [
    "kill", "murder", "hurt", "shoot", "stab", "beat", "batter", "strangle", "throttle", "choke",
    "burn", "torch", "bomb", "smash", "wreck", "break", "knock", "punch", "smack", "slap", "hit",
    "deck", "thump", "kick", "bash", "glass", "cut", "slit", "wring", "snap", "strangle",
]
# fmt: on
_VIOLENT = r"(?:" + "|".join(_VIOLENT_VERBS) + r")(?:s|ed|ing)?"
# a person or a place as the verb's object ("kill the process" is not a threat)
_VICTIM = (
    r"(?:you|ya|your|yours|yourself|yourselves|him|his|her|them|their|everyone|everybody|someone"
    r"|somebody|whoever|anyone|anybody|all\s+of\s+you"
    r"|(?:the|this|that|your)\s+(?:agent|manager|engineer|driver|guy|man|woman|bloke|person|people"
    r"|staff|lot|idiot|place|shop|office|building|branch|store|depot|call\s+centre"
    r"|call\s+center))\b"
)
# idioms that look like threats: "shoot you an email", "hit you up", "beat your price"
_NOT_A_THREAT = re.compile(
    r"\b(?:shoot|shot)\s+(?:you|them|him|her)\s+(?:over\s+)?(?:an?|the|a\s+quick)\s+"
    r"(?:email|e-mail|text|message|line|note|link|quick)"
    r"|\bhit\s+(?:you|them|him|her)\s+up\b"
    r"|\bbeat\s+(?:your|their|the)\s+(?:price|offer|quote|deal)",
    re.I,
)
_THREATS = [
    re.compile(
        rf"(?:{_FIRST_PERSON_FUTURE}|\bi\s+(?:want|wanna)\s+to)"
        rf"(?:\s+(?:just|personally|fucking|bloody|actually|really))?"
        rf"{_WISH}{_APPROACH}\s+{_VIOLENT}\s+{_VICTIM}",
        re.I,
    ),
    re.compile(
        r"\b(?:know|find(?:\s+out)?|found(?:\s+out)?|look\s+up|get|got|have)\s+where\s+you\s+"
        r"(?:live|work|sleep)\b"
        r"|\bi\s+know\s+where\s+(?:your|the)\s+(?:office|house|home|branch|depot|manager|boss"
        r"|family|kids)\s+(?:is|are|lives?)\b"
        r"|\bi(?:['\u2019]ll|\s+will|['\u2019]m\s+going\s+to)\s+find\s+out\s+who\s+you\s+are\b",
        re.I,
    ),
    re.compile(
        r"\bteach\s+(?:you|you\s+people|you\s+lot|them|him|her|your\s+\w+)\s+a\s+lesson\b"
        r"|\b(?:pay|paid|paying)\s+(?:you|them|him|her|your\s+\w+)\s+a\s+(?:little\s+)?visit\b"
        r"|\b(?:brick|rock|stone|bottle)\s+through\s+(?:your|the|their)\s+(?:\w+\s+)?window",
        re.I,
    ),
    re.compile(r"\bset\s+(?:the|my)\s+dogs?\s+on\s+(?:you|him|her|them|your\s+\w+)\b", re.I),
    re.compile(r"\bmake\s+your\s+life\s+(?:a\s+(?:living\s+)?)?(?:hell|misery)\b", re.I),
    # a weapon brought along: "I'll be at the college with a baseball bat"
    re.compile(
        rf"{_FIRST_PERSON_FUTURE}(?:\s+[\w']+){{0,10}}?\s+with\s+(?:a|my|an)\s+"
        r"(?:baseball\s+bat|bat|knife|gun|shotgun|rifle|crowbar|hammer|machete|axe|petrol"
        r"|can\s+of\s+petrol|brick|cricket\s+bat|golf\s+club)\b",
        re.I,
    ),
    re.compile(
        r"\byou(?:['\u2019]ll|\s+will|['\u2019]re\s+going\s+to|\s+are\s+going\s+to"
        r"|['\u2019]re\s+gonna)"
        r"\s+(?:regret|be\s+sorry)\b",
        re.I,
    ),
    re.compile(r"\bwatch\s+your\s+back\b", re.I),
    # a veiled threat: "you'd better hope I never meet you", "pray we never meet you"
    re.compile(
        r"\byou(?:['\u2019]d|\s+had)\s+(?:better|best)\s+(?:hope|pray)(?=\s+(?:that\s+)?(?:i|we)"
        r"\s+(?:never|don['\u2019]?t|do\s+not)\s+(?:ever\s+)?(?:meet|see|find|catch|run\s+into"
        r"|bump\s+into|come\s+across)\s+you\b)"
        r"|\b(?:pray|hope)\s+(?:that\s+)?(?:i|we)\s+never\s+(?:meet|catch|find)\s+you\b",
        re.I,
    ),
    # a taunt and a dare: "keep laughing and see what happens", "try me and see what happens"
    re.compile(
        r"\b(?:keep|carry\s+on|go\s+on|try\s+(?:it|me|that))\b[\w\s']{0,30}?\band\s+see\s+what\s+"
        r"happens\b",
        re.I,
    ),
    re.compile(r"\byou(?:['\u2019]re|\s+are)\s+(?:a\s+)?dead(?:\s+(?:man|woman|meat))?\b", re.I),
    re.compile(r"\bi(?:['\u2019]ll|\s+will)\s+(?:find|come\s+for|get)\s+you\b", re.I),
    re.compile(
        rf"{_FIRST_PERSON_FUTURE}(?:\s+[\w']+){{0,8}}?\s+make\s+you\s+(?:pay|suffer|sorry"
        r"|regret)\b",
        re.I,
    ),
    re.compile(r"\b(?:you|your\s+family)\s+(?:won't|will\s+not)\s+be\s+safe\b", re.I),
    re.compile(
        r"\b(?:someone|somebody|you|people|one\s+of\s+you)"
        r"(?:\s+(?:at|from|in)\s+(?:your|the|this|that)\s+(?:[\w']+\s+)?[\w']+)?"
        r"(?:['\u2019]s|\s+is|['\u2019]re|\s+are"
        r"|\s+will"
        r"|['\u2019]ll)\s+(?:going\s+to\s+|gonna\s+)?get(?:ting)?\s+(?:hurt|killed|shot|stabbed"
        r"|a\s+beating|a\s+slap|a\s+smack)\b",
        re.I,
    ),
    re.compile(
        r"\bwaiting\s+outside\s+for\s+(?:you|your\s+\w+|him|her)\b"
        r"|\b(?:waiting\s+for\s+you|see\s+you|meet\s+you)\s+(?:outside|after\s+work|in\s+the\s+car"
        r"\s+park)\b|\b(?:wait|waiting|be)\s+outside\s+your\s+(?:office|house|home|shop|branch|work"
        r"|building|door)\b",
        re.I,
    ),
    re.compile(
        rf"{_FIRST_PERSON_FUTURE}(?:\s+[\w']+){{0,8}}?\s+(?:sort\s+(?:you|him|her|them)\s+out"
        r"|deal\s+with\s+(?:you|him|her|them)\s+(?:myself|personally))\b",
        re.I,
    ),
    re.compile(
        rf"\b(?:someone|somebody)\s+(?:should|ought\s+to|needs\s+to)\s+{_VIOLENT}\s+{_VICTIM}", re.I
    ),
    re.compile(
        r"\byou\s+(?:don't|do\s+not)\s+know\s+who\s+you(?:'re|\s+are)\s+dealing\s+with\b", re.I
    ),
]
_NEGATED = re.compile(r"\b(?:not|never|n't)\s*$", re.I)

# Profanity and mild put-downs count in full only when aimed at someone (see
# :func:`_aim_loose_hits`); words naming a person ("bastard", "prick") and "bullshit" (calling
# what was said a lie) are always aimed.
_ALWAYS_AIMED = {w for w in _INSULT_TARGETS if _WORDS.get(w, ("", 0))[0] == "PROFANITY"}
_ALWAYS_AIMED |= {"bullshit", "horseshit"}
# whom profanity can be aimed at: the listener (group 1), the company or its staff (strong
# profanity only: "this fucking bank", but not "the bloody engineer didn't show")
_TARGET = re.compile(
    r"\b(you|ya|yous|youse|ye|u|jou|y['\u2019]?all|your|yours|yourself|yourselves|ur)\b"
    r"|\b(?:this|that|the|these|those|what\s+a|such\s+a)\s+(?:[\w']+\s+)?"
    r"(?:company|companies|bank|airline|firm|business|insurer|insurers|network|provider|outfit"
    r"|corporation|council|management|staff|agents?|managers?|engineers?|drivers?|technicians?"
    r"|supervisors?|boss|ceo|landlord|agency|couriers?|lot|mob|crowd|shower|people)\b",
    re.I,
)
# "you" that is no one's target: thanks, a filler, a goodbye, a request ("can you send
# someone"; but "can you fucking listen" is aimed)
_NOT_A_TARGET = re.compile(
    r"\bthank\s+you\b|\bsee\s+you\b|\byou\s+know\b(?!\s+(?:it|that|this)\b)"
    r"|\b(?:can|could|would|will)\s+you\b(?!\s+(?:please\s+|just\s+)?(?:fucking|fuckin|bloody|effing"
    r"|freaking|damn|goddamn)\b)",
    re.I,
)
# profanity judging the company's conduct ("what a fucking joke", "this is fucking
# ridiculous", "full of shit") or dismissing it ("fuck this"): aimed at the company
_CONTEMPT_AFTER = re.compile(
    r"\s+(?:[\w']+\s+)?(?:jokes?|disgrace|disgraceful|ridiculous|ludicrous|con|cons|scam|scams"
    r"|rip[-\s]?off|robbery|liars|thieves|crooks|clowns|cowboys|amateurs|pathetic|useless"
    r"|incompetent|shambles|farce|circus|insult|insulting|outrageous|disgusting|service"
    r"|company|customer\s+service)\b",
    re.I,
)
_DISMISSAL_AFTER = re.compile(r"\s+(?:this|that|it|off|the\s+lot|them|em)\b", re.I)
_CONTEMPT_BEFORE = re.compile(
    r"(?:\bfull\s+of|\b(?:taking|take)\s+the"
    # a verdict on what the company is doing: "this is damn crap", "that's a load of shit"
    r"|\b(?:this|that)(?:['\u2019]s|\s+is|\s+was)(?:\s+(?:just|so|such|absolute|total|complete"
    r"|utter|a\s+(?:load|pile|bunch)\s+of|damn|bloody|fucking|effing))*)\s+$",
    re.I,
)
_AIM_WINDOW = 5  # words either side of the profanity


def _aim_loose_hits(text: str, loose: list[Hit]) -> None:
    """Profanity and mild put-downs aimed at nobody ("it's been a fucking nightmare", "the
    damn router's been down all bloody day") are mild: together they score at most 1. A hit
    is aimed when the listener (or, for strong profanity, the company or its staff) is named
    within :data:`_AIM_WINDOW` words of it, or it judges or dismisses the company's conduct."""
    words = [m.start() for m in re.finditer(r"\S+", text)]

    def index(pos: int) -> int:
        return bisect.bisect_right(words, pos) - 1  # the word holding ``pos``

    excluded = [m.span() for m in _NOT_A_TARGET.finditer(text)]
    targets = [
        (index(m.start()), m.group(1) is not None)
        for m in _TARGET.finditer(text)
        if not any(a <= m.start() < b for a, b in excluded)
    ]
    budget = 1
    for hit in loose:
        near = any(
            abs(index(hit.start) - t) <= _AIM_WINDOW and (listener or hit.severity >= 2)
            for t, listener in targets
        )
        contempt = (
            _CONTEMPT_AFTER.match(text, hit.end)
            or _CONTEMPT_BEFORE.search(text, 0, hit.start)
            or (hit.term in ("fuck", "fucks") and _DISMISSAL_AFTER.match(text, hit.end))
        )
        if near or contempt:
            continue
        kept = min(hit.severity, budget)
        hit.unaimed, hit.severity = hit.severity - kept, kept
        budget -= kept


def scan_text(text: str) -> list[Hit]:
    """All profanity, insult and threat hits in ``text``, in order of position."""
    hits: list[Hit] = []
    taken: list[tuple[int, int]] = []
    for rx in _THREATS:
        for m in rx.finditer(text):
            if _NEGATED.search(text[max(0, m.start() - 12) : m.start()]):
                continue
            if re.search(r"\b(?:not|never)\b|n't\b", m.group(0), re.I):
                continue
            if _NOT_A_THREAT.search(text, m.start(), min(len(text), m.end() + 30)):
                continue
            hits.append(Hit("THREAT", m.group(0), m.start(), m.end(), 5))
    for m in _DIRECTED.finditer(text):
        negated = _NEGATED_INSULT.search(text, 0, m.start())
        hits.append(Hit("INSULT", m.group(0), m.start(), m.end(), 0 if negated else 3))
        taken.append((m.start(), m.end()))
    for m in _INSULT_THEN_YOU.finditer(text):
        if not any(a <= m.start() < b for a, b in taken):
            hits.append(Hit("INSULT", m.group(0), m.start(), m.end(), 3))
            taken.append((m.start(), m.end()))
    for m in _INSULT_THE_LOT.finditer(text):
        if not any(a <= m.start() < b for a, b in taken):
            hits.append(Hit("INSULT", m.group(0), m.start(), m.end(), 3))
            taken.append((m.start(), m.end()))
    for m in _GROUP_INSULT.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        negated = _NEGATED_INSULT.search(text, 0, m.start())
        sev = 0 if negated else 3 if m.group(0).lower().startswith("you") else 2
        hits.append(Hit("INSULT", m.group(0), m.start(), m.end(), sev))
        taken.append((m.start(), m.end()))
    loose: list[Hit] = []  # profanity that may be aimed at nobody
    for rx, kind, sev in _PHRASES:
        for m in rx.finditer(text):
            if any(a <= m.start() < b for a, b in taken):
                continue
            hits.append(Hit(kind, m.group(0), m.start(), m.end(), sev))
            taken.append((m.start(), m.end()))
            if rx is EXCLAMATION or rx is SITUATION:
                loose.append(hits[-1])
    for m in _TOKEN.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        word = _canonical(m.group(0))
        if word is None:
            continue
        kind, sev = _WORDS[word]
        aimed_at_self = kind == "INSULT" and (
            _SELF.search(text, 0, m.start()) or _NEGATED_INSULT.search(text, 0, m.start())
        )
        praise = kind == "PROFANITY" and _PRAISE.match(text, m.end())
        if aimed_at_self or praise:
            sev = 0
        hit = Hit(kind, word, m.start(), m.end(), sev)
        hits.append(hit)
        if sev and sev <= 2 and word not in _ALWAYS_AIMED and (kind == "PROFANITY" or sev == 1):
            loose.append(hit)
    _aim_loose_hits(text, loose)
    hits.sort(key=lambda h: h.start)
    return hits


def text_score(text: str) -> int:
    """Summed severity of all hits in ``text``."""
    return sum(h.severity for h in scan_text(text))


def is_abusive(text: str) -> bool:
    """True when one utterance on its own is abusive (score >= :data:`SEGMENT_THRESHOLD`)."""
    return text_score(text) >= SEGMENT_THRESHOLD


def find_abuse(segments: Iterable[SegmentLike], channel: str = "CALLER") -> list[Flag]:
    """Flags for the ``channel`` segments of one call.

    One flag per segment and kind (``PROFANITY``, ``INSULT``, ``THREAT``) with its hits, then
    a call-level ``ABUSIVE_CALLER`` flag when the thresholds in the module docstring are
    passed. Its segments and evidence are the segments abusive on their own (score >=
    :data:`SEGMENT_THRESHOLD`); when none is and only the sum of mild hits passes, all the
    segments with hits. Its score is the caller's summed score (profanity aimed at nobody
    at its full severity). Other channels are ignored.
    """
    flags: list[Flag] = []
    scored: list[tuple[str, int, list[tuple[str, float, float, str]]]] = []
    total = 0  # profanity aimed at nobody counts here, not in a segment's own score
    worst = 0
    for seg in segments:
        if seg.Channel != channel:
            continue
        hits = scan_text(seg.Transcript or "")
        if not hits:
            continue
        by_kind: dict[str, Flag] = {}
        evidence: list[tuple[str, float, float, str]] = []
        for h in hits:
            ev = (seg.SegmentId, float(seg.StartTime), float(seg.EndTime), h.term)
            f = by_kind.setdefault(h.kind, Flag(h.kind, [seg.SegmentId]))
            f.evidence.append(ev)
            f.score += h.severity
            evidence.append(ev)
            worst = max(worst, h.severity)
        flags.extend(by_kind.values())
        scored.append((seg.SegmentId, sum(h.severity for h in hits), evidence))
        total += sum(h.severity + h.unaimed for h in hits)
    if total >= CALL_THRESHOLD or worst >= 3:
        chosen = [s for s in scored if s[1] >= SEGMENT_THRESHOLD] or scored
        flags.append(
            Flag(
                "ABUSIVE_CALLER",
                [sid for sid, _, _ in chosen],
                [ev for _, _, evs in chosen for ev in evs],
                total,
            )
        )
    return flags
