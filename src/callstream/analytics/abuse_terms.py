"""The word tables of :mod:`callstream.analytics.abuse`: profanity and insults with their
severities, the insults that count only when aimed at the listener, and the words allowed
between an addressee and an insult. See that module's docstring for how they are used.
"""

from __future__ import annotations

__all__ = ["DIRECTED_ONLY", "MODIFIERS", "WORDS"]

# word -> (kind, severity). Inflected forms are listed explicitly: no stemming, so
# "assessment" can never reduce to "ass".
WORDS: dict[str, tuple[str, int]] = {}


def _add(kind: str, severity: int, *words: str) -> None:
    for w in words:
        WORDS[w] = (kind, severity)


_add(
    "PROFANITY",
    1,
    "damn",
    "damned",
    "dammit",
    "goddamn",
    "crap",
    "crappy",
    "bloody",
    "piss",
    "pissed",
    "arse",
    "bugger",
    "sodding",
    "frigging",
    "feck",
    "frickin",
    "fricking",
)
_add(
    "PROFANITY",
    2,
    "fuck",
    "fucks",
    "fucked",
    "fucker",
    "fuckers",
    "fucking",
    "fuckin",
    "fuckup",
    "fuckwit",
    "clusterfuck",
    "shit",
    "shits",
    "shitty",
    "shite",
    "shitshow",
    "bullshit",
    "horseshit",
    "dipshit",
    "ass",
    "asses",
    "asshole",
    "assholes",
    "arsehole",
    "arseholes",
    "bollocks",
    "bitch",
    "bitches",
    "bitching",
    "bastard",
    "bastards",
    "dick",
    "dicks",
    "dickhead",
    "dickheads",
    "cock",
    "cocks",
    "prick",
    "pricks",
    "wanker",
    "wankers",
    "tosser",
    "tossers",
    "twat",
    "twats",
    "knobhead",
    "bellend",
    "jackass",
    "dumbass",
    "shithead",
    "douche",
    "douchebag",
    "goddamnit",
    # South African, Filipino, Malay/Singaporean English
    "fok",
    "fokken",
    "fokkin",
    "putangina",
    "puta",
)
_add(
    "PROFANITY",
    3,
    "cunt",
    "cunts",
    "motherfucker",
    "motherfuckers",
    "motherfucking",
    "whore",
    "slut",
    "poes",
    "cheebye",
    "cibai",
    "knn",
)
_add(
    "INSULT",
    2,
    "idiot",
    "idiots",
    "idiotic",
    "moron",
    "morons",
    "moronic",
    "imbecile",
    "imbeciles",
    "cretin",
    "cretins",
    "scumbag",
    "scumbags",
    "scum",
    "loser",
    "losers",
    "clowns",
    "retard",
    "retarded",
    "dimwit",
    "halfwit",
    "nitwit",
    "numpty",
    "numpties",
    "muppet",
    "muppets",
    "buffoon",
    "buffoons",
    "pillock",
    "plonker",
    "drongo",
    "drongos",
    "eejit",
    "eejits",
    "nincompoop",
    "dunce",
    "bozo",
    "dingbat",
    "dingbats",
    "dipstick",
    # Scottish, Nigerian, Malay/Singaporean, Filipino English
    "bampot",
    "bampots",
    "mumu",
    "mumus",
    "bodoh",
    "gago",
)
# words that are only mildly rude unless aimed at someone ("this stupid form" vs "you're stupid")
_add(
    "INSULT",
    1,
    "stupid",
    "dumb",
    "useless",
    "pathetic",
    "worthless",
    "incompetent",
    "clown",
    "brainless",
    "clueless",
)
# insults only when aimed at the listener ("you stupid cow", "are you deaf", "you're a liar")
# fmt: off
DIRECTED_ONLY = (
    "cow", "cows", "pig", "pigs", "donkey", "fool", "fools", "liar", "liars", "crook", "crooks",
    "thief", "thieves", "cowboys", "parasites", "leeches", "vultures", "snake", "animals",
    "jobsworth", "jobsworths", "joke", "disgrace", "deaf", "thick", "dense", "dim", "simple",
    "mental", "hopeless", "brain dead", "braindead", "waste of space", "waste of oxygen",
    "piece of work", "piece of shit", "piece of crap", "piece of garbage", "piece of trash",
    "con artist", "con artists", "con men", "conmen", "scammers", "fraudsters", "frauds",
    "charlatans", "sharks", "bandits", "robbers", "gangsters", "amateurs", "jokers", "monkeys",
    "sod", "sods", "git", "gits", "prat", "prats", "dozy", "gormless", "daft",
    "snotty", "know it all", "know-it-all", "smart arse", "smartass", "bloodsuckers", "rats",
    "crooked", "vermin", "hyenas", "swindlers", "leech", "parasite", "slobs", "slob",
    "bludgers", "bludger", "gobshites", "gobshite", "halfwits", "clown show", "circus",
    "galah", "wally", "div", "dope", "glorified answering machine", "glorified robot",
    "dof", "twp", "ode", "dropkick", "dropkicks", "doos", "tanga", "bobo",
)
# fmt: on

# words allowed between the addressee and the insult ("a fucking useless idiot")
# fmt: off
MODIFIERS = [
    "a", "an", "such", "so", "absolute", "absolutely", "total", "totally", "complete",
    "completely", "utter", "utterly", "proper", "right", "real", "really", "just", "all", "bunch",
    "load", "pack", "set", "lot", "of", "nothing", "but", "fucking", "fuckin", "effing",
    "freaking", "flipping", "bloody", "bleeding", "damn", "stupid", "useless", "incompetent",
    "pathetic", "worthless", "brainless", "clueless", "thieving", "lying", "lazy", "ignorant",
    "little", "silly", "dumb", "thick", "arrogant", "greedy", "miserable", "sad", "old", "bent",
    "dodgy", "rude", "this", "that", "even", "spineless", "gutless", "filthy", "shower",
    "smug", "entitled", "brainless", "overpaid", "big", "too", "as",
]
# fmt: on
