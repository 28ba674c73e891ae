"""Utterances out of one channel (:class:`UtteranceSegmenter`) on real 8 kHz telephone
speech: where they start and end, noise, long talk cut into pieces, partials, and the
same result whatever the sizes of the pieces the audio arrives in."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from analytics_helpers import (
    RATE,
    needs_prompts,
    noise,
    prompt,
    silence,
    trimmed,
    voice_bounds,
)
from hypothesis import given
from hypothesis import strategies as st

from callstream.analytics.vad import (
    SpeechEnded,
    SpeechEvent,
    SpeechSoFar,
    SpeechStarted,
    UtteranceSegmenter,
)

TOLERANCE_S = 0.3
LONG_TALK = [
    "agent-alreadyon",
    "agent-incorrect",
    "check-number-dial-again",
    "cannot-complete-as-dialed",
    "conf-waitforleader",
    "vm-instructions",
    "queue-holdtime",
    "vm-savefolder",
]


def segment(audio: bytes, pieces: Iterable[int] | None = None, **kw: float) -> list[SpeechEvent]:
    """All events for ``audio`` (fed whole, or in pieces of the given sizes, repeated)."""
    seg = UtteranceSegmenter(**kw)  # type: ignore[arg-type]
    if pieces is None:
        events = seg.feed(audio)
    else:
        sizes = list(pieces)
        events, pos, i = [], 0, 0
        while pos < len(audio):
            n = sizes[i % len(sizes)]
            events += seg.feed(audio[pos : pos + n])
            pos, i = pos + n, i + 1
    return events + seg.flush()


def ended(events: list[SpeechEvent]) -> list[SpeechEnded]:
    return [e for e in events if isinstance(e, SpeechEnded)]


def piece(audio: bytes, start: float, end: float) -> bytes:
    return audio[round(start * RATE) * 2 : round(end * RATE) * 2]


def assert_brackets(utterance: SpeechEnded, voice: tuple[float, float]) -> None:
    """The utterance holds the whole voice and at most TOLERANCE_S more on each side."""
    start, end = voice
    assert start - TOLERANCE_S - 1e-9 <= utterance.start <= start, (utterance.start, start)
    assert end <= utterance.end <= end + TOLERANCE_S + 1e-9, (utterance.end, end)


@needs_prompts
@pytest.mark.parametrize("name", ["agent-alreadyon", "check-number-dial-again", "auth-thankyou"])
def test_a_prompt_in_silence_is_one_utterance_around_its_voice(name: str) -> None:
    voice = prompt(name)
    audio = silence(2.0) + voice + silence(2.0)
    events = segment(audio)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    started, (utterance,) = events[0], ended(events)
    assert started.start == utterance.start and not utterance.cut
    start, end = voice_bounds(voice)
    assert_brackets(utterance, (2.0 + start, 2.0 + end))
    assert utterance.pcm == piece(audio, utterance.start, utterance.end)


@needs_prompts
def test_two_prompts_two_seconds_apart_are_two_utterances() -> None:
    first, second = prompt("agent-alreadyon"), prompt("vm-savefolder")
    audio = silence(1.0) + first + silence(2.0) + second + silence(1.0)
    utterances = ended(segment(audio))
    assert len(utterances) == 2
    offset2 = 1.0 + len(first) / 16000 + 2.0
    for utterance, offset, voice in ((utterances[0], 1.0, first), (utterances[1], offset2, second)):
        start, end = voice_bounds(voice)
        assert_brackets(utterance, (offset + start, offset + end))
        assert utterance.pcm == piece(audio, utterance.start, utterance.end)
    assert utterances[0].end < utterances[1].start


@pytest.mark.parametrize("dbfs", [-90.0, -60.0, -50.0])
def test_silence_and_line_noise_make_no_utterance(dbfs: float) -> None:
    assert segment(noise(5.0, dbfs)) == []
    assert segment(silence(5.0)) == []


@needs_prompts
def test_long_talk_is_cut_into_pieces_without_losing_or_repeating_audio() -> None:
    talk = b"".join(trimmed(n) + silence(0.2) for n in LONG_TALK)  # pauses under 300 ms
    assert len(talk) / 16000 > 25.0
    audio = silence(0.5) + talk + silence(1.0)
    for limit in (20.0, 4.0):
        utterances = ended(segment(audio, max_utterance_s=limit))
        assert any(u.cut for u in utterances)
        assert all(u.end - u.start <= limit + 5.0 for u in utterances)
        for before, after in itertools.pairwise(utterances):
            if before.cut:  # the voice goes on in the next one, from where it was cut
                assert after.start == before.end
        # the pieces cover the talk: no audio lost at a cut, none twice
        first, last = utterances[0], utterances[-1]
        assert first.start <= 0.5 and last.end >= 0.5 + len(talk) / 16000 - 0.2
        assert all(u.cut for u in utterances[:-1])
        joined = b"".join(u.pcm for u in utterances)
        assert joined == piece(audio, first.start, last.end)


def test_talk_without_any_pause_is_cut_hard() -> None:
    loud = noise(20.0, -20.0)  # voiced from end to end for the VAD
    utterances = ended(segment(loud, max_utterance_s=3.0))
    assert [(u.start, u.end, u.cut) for u in utterances] == [
        (0.0, 8.0, True),
        (8.0, 16.0, True),
        (16.0, 20.0, False),
    ]


@needs_prompts
def test_partials_come_every_partial_every_s() -> None:
    voice = prompt("basic-pbx-ivr-main")[: 12 * 16000]  # 12 s of uninterrupted talk
    audio = silence(1.0) + voice + silence(1.0)
    events = segment(audio, partial_every_s=1.5)
    partials = [e for e in events if isinstance(e, SpeechSoFar)]
    (utterance,) = ended(events)
    assert events.index(utterance) == len(events) - 1  # partials come before the final
    assert len(partials) >= 6
    ends = [p.end for p in partials]
    assert all(b - a == pytest.approx(1.5) for a, b in itertools.pairwise(ends))
    for p in partials:
        # the audio so far (a partial may take in the first of the closing silence)
        assert p.start == utterance.start and p.end <= utterance.end + 0.6
        assert p.pcm == piece(audio, p.start, p.end)
    assert not any(isinstance(e, SpeechSoFar) for e in segment(voice))  # off by default


@needs_prompts
def test_flush_ends_an_open_utterance() -> None:
    voice = prompt("agent-alreadyon")
    audio = silence(1.0) + voice
    seg = UtteranceSegmenter()
    events = seg.feed(audio + b"\x01")  # an odd byte: half a sample left pending
    assert [type(e) for e in events] == [SpeechStarted] and seg.in_speech
    (utterance,) = seg.flush()
    assert isinstance(utterance, SpeechEnded) and not utterance.cut and not seg.in_speech
    start, end = voice_bounds(voice)
    assert_brackets(utterance, (1.0 + start, 1.0 + end))
    assert utterance.end <= seg.time and seg.time == pytest.approx(len(audio) / 16000, abs=0.02)
    assert seg.flush() == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="aggressiveness"):
        UtteranceSegmenter(aggressiveness=4)


@needs_prompts
def test_one_byte_at_a_time_gives_the_same_events() -> None:
    audio = silence(0.5) + prompt("check-number-dial-again") + silence(0.8)
    kw = {"partial_every_s": 0.5}
    assert segment(audio, [1], **kw) == segment(audio, **kw)


@pytest.fixture(scope="module")
def two_utterances() -> tuple[bytes, list[SpeechEvent]]:
    audio = (
        silence(0.3)
        + prompt("auth-thankyou")
        + silence(0.7)
        + prompt("check-number-dial-again")[:12000]  # cut off mid-word: flush ends it
    )
    return audio, segment(audio, partial_every_s=0.4)


@needs_prompts
@given(sizes=st.lists(st.integers(1, 4000), min_size=1, max_size=12))
def test_any_chunking_gives_the_same_events(
    two_utterances: tuple[bytes, list[SpeechEvent]], sizes: list[int]
) -> None:
    audio, whole = two_utterances
    assert len(ended(whole)) == 2
    assert any(isinstance(e, SpeechSoFar) for e in whole)
    assert segment(audio, sizes, partial_every_s=0.4) == whole
