"""Shared material for the call-analytics tests: real 8 kHz telephone prompts with their
transcripts (Debian ``asterisk-core-sounds-en-wav``), silence and noise, where a voice
starts and ends, and the word error rate."""

from __future__ import annotations

import gzip
import wave
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np
import pytest

__all__ = [
    "PROMPTS",
    "RATE",
    "needs_prompts",
    "noise",
    "prompt",
    "silence",
    "transcript",
    "trimmed",
    "voice_bounds",
    "word_error_rate",
]

RATE = 8000
PROMPTS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

needs_prompts = pytest.mark.skipif(
    not (PROMPTS.is_dir() and TRANSCRIPTS.is_file()),
    reason=(
        f"real 8 kHz telephone speech is not installed ({PROMPTS}, {TRANSCRIPTS}): "
        "apt-get install asterisk-core-sounds-en-wav"
    ),
)


@cache
def _transcripts() -> dict[str, str]:
    out: dict[str, str] = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            out[name.strip()] = text.strip()
    return out


def transcript(name: str) -> str:
    """The official transcript of prompt ``name`` (for example ``"vm-instructions"``)."""
    return _transcripts()[name]


def prompt(name: str) -> bytes:
    """Prompt ``name`` as 8 kHz mono s16le PCM."""
    with wave.open(str(PROMPTS / f"{name}.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return w.readframes(w.getnframes())


def silence(seconds: float) -> bytes:
    """Digital silence."""
    return bytes(int(seconds * RATE) * 2)


def noise(seconds: float, dbfs: float, seed: int = 0) -> bytes:
    """White noise at ``dbfs`` RMS."""
    rng = np.random.default_rng(seed)
    level = 32768 * 10 ** (dbfs / 20)
    samples = np.clip(rng.standard_normal(int(seconds * RATE)) * level, -32768, 32767)
    return samples.astype("<i2").tobytes()


def voice_bounds(pcm: bytes, threshold_dbfs: float = -45.0) -> tuple[float, float]:
    """Seconds where the voice in ``pcm`` starts and ends: the first and the last 10 ms
    whose RMS level reaches ``threshold_dbfs``."""
    step = RATE // 100
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    frames = samples[: len(samples) // step * step].reshape(-1, step)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.nonzero(rms >= 32768 * 10 ** (threshold_dbfs / 20))[0]
    assert len(loud), "no voice in the audio"
    return float(loud[0] * step / RATE), float((loud[-1] + 1) * step / RATE)


def trimmed(name: str) -> bytes:
    """Prompt ``name`` without the silence around its voice."""
    pcm = prompt(name)
    start, end = voice_bounds(pcm)
    return pcm[int(start * RATE) * 2 : int(end * RATE) * 2]


def word_error_rate(references: Iterable[str], hypotheses: Iterable[str]) -> float:
    """WER over all pairs after Whisper's English text normaliser (so "45" and "forty
    five" are equal), as ``dependencies.md`` §1.2 measures it."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    return float(jiwer.wer(refs, hyps))
