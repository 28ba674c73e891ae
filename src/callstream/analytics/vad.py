"""Utterances out of one channel of call audio (sans-I/O).

:class:`UtteranceSegmenter` takes 8 kHz 16-bit PCM in pieces of any size and reports:

* :class:`SpeechStarted` when a voice starts (WebRTC VAD over 20 ms frames, with an
  energy floor so line hiss does not count);
* :class:`SpeechSoFar` every ``partial_every_s`` of a long utterance: the audio so far,
  for a partial transcript;
* :class:`SpeechEnded` once ``end_silence_ms`` of silence follow the voice: the whole
  utterance, for the final transcript. An utterance that reaches ``max_utterance_s`` is
  cut at its next short pause (or hard, ``max_utterance_s`` + 5 s in) so no segment grows
  without bound and a final arrives even while someone talks on.

Times are seconds of audio fed so far (the channel's timeline: gaps in the stream arrive
as silence), so they are the segment times of the transcript. Each utterance keeps
``pre_roll_ms`` of audio before the voice was detected and ``post_roll_ms`` after it, which
recognisers need to get the first and last words whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SpeechEnded",
    "SpeechEvent",
    "SpeechSoFar",
    "SpeechStarted",
    "UtteranceSegmenter",
]

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
_START_WINDOW = 8  # frames looked at to decide that speech started ...
_START_VOICED = 5  # ... of which this many must be voiced (100 ms in 160 ms)
_HARD_CUT_EXTRA_S = 5.0


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """A voice started at ``start`` seconds."""

    start: float


@dataclass(frozen=True, slots=True)
class SpeechSoFar:
    """An utterance still going on: its audio from ``start`` to ``end`` seconds."""

    start: float
    end: float
    pcm: bytes


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """A whole utterance from ``start`` to ``end`` seconds. ``cut``: it was cut at the
    length limit and the voice goes on in the next one."""

    start: float
    end: float
    pcm: bytes
    cut: bool = False


SpeechEvent = SpeechStarted | SpeechSoFar | SpeechEnded


class UtteranceSegmenter:
    """Voice activity -> utterances for one channel (see the module docstring)."""

    def __init__(
        self,
        *,
        aggressiveness: int = 2,
        end_silence_ms: int = 600,
        pre_roll_ms: int = 200,
        post_roll_ms: int = 200,
        min_speech_ms: int = 200,
        max_utterance_s: float = 20.0,
        partial_every_s: float = 0.0,
        min_level_dbfs: float = -50.0,
    ) -> None:
        import webrtcvad

        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
        self._vad = webrtcvad.Vad(aggressiveness)
        self._end_frames = max(1, end_silence_ms // FRAME_MS)
        self._pre_frames = max(0, pre_roll_ms // FRAME_MS)
        self._post_frames = max(0, min(post_roll_ms // FRAME_MS, self._end_frames))
        self._min_voiced = max(1, min_speech_ms // FRAME_MS)
        self._max_frames = max(1, int(max_utterance_s * 1000) // FRAME_MS)
        self._hard_frames = self._max_frames + int(_HARD_CUT_EXTRA_S * 1000) // FRAME_MS
        self._partial_frames = int(partial_every_s * 1000) // FRAME_MS if partial_every_s else 0
        self._floor = 32768.0 * 10 ** (min_level_dbfs / 20)
        self._pending = b""
        self._frames = 0  # frames consumed
        self._recent: list[bool] = []  # voiced flags of the last _START_WINDOW frames
        self._ring: list[bytes] = []  # the last pre-roll frames while idle
        self._speech: list[bytes] | None = None  # the utterance's frames while in speech
        self._start_frame = 0
        self._voiced = 0  # voiced frames in the utterance
        self._silent_run = 0  # unvoiced frames since the last voiced one
        self._next_partial = 0

    @property
    def time(self) -> float:
        """Seconds of audio consumed."""
        return self._frames * FRAME_MS / 1000

    @property
    def in_speech(self) -> bool:
        """Whether an utterance is open."""
        return self._speech is not None

    def feed(self, pcm: bytes) -> list[SpeechEvent]:
        """Consume PCM (8 kHz, mono, s16le); return what it completed."""
        data = self._pending + pcm if self._pending else pcm
        whole = len(data) // FRAME_BYTES * FRAME_BYTES
        self._pending = data[whole:]
        if not whole:
            return []
        samples = np.frombuffer(data[:whole], "<i2").reshape(-1, FRAME_SAMPLES)
        levels = np.sqrt(np.mean(samples.astype(np.float32) ** 2, axis=1))
        events: list[SpeechEvent] = []
        for i, level in enumerate(levels.tolist()):
            frame = data[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]
            voiced = level >= self._floor and self._is_speech(frame)
            self._step(frame, voiced, events)
        return events

    def flush(self) -> list[SpeechEvent]:
        """End of the channel: the open utterance (if long enough) ends here."""
        events: list[SpeechEvent] = []
        if self._pending:
            frame = self._pending.ljust(FRAME_BYTES, b"\0")
            self._pending = b""
            self._step(frame, False, events)
        if self._speech is not None:
            self._end(events, cut=False, trailing=self._silent_run)
        return events

    def _is_speech(self, frame: bytes) -> bool:
        result: Any = self._vad.is_speech(frame, RATE)
        return bool(result)

    def _step(self, frame: bytes, voiced: bool, events: list[SpeechEvent]) -> None:
        self._frames += 1
        if self._speech is None:
            self._ring.append(frame)
            if len(self._ring) > self._pre_frames + _START_WINDOW:
                del self._ring[0]
            self._recent.append(voiced)
            if len(self._recent) > _START_WINDOW:
                del self._recent[0]
            if sum(self._recent) >= _START_VOICED:
                self._speech = list(self._ring)
                self._start_frame = self._frames - len(self._ring)
                self._voiced = sum(self._recent)
                self._silent_run = 0
                self._next_partial = len(self._speech) + self._partial_frames
                self._ring, self._recent = [], []
                events.append(SpeechStarted(self._start_frame * FRAME_MS / 1000))
            return
        speech = self._speech
        speech.append(frame)
        if voiced:
            self._voiced += 1
            self._silent_run = 0
        else:
            self._silent_run += 1
        if self._silent_run >= self._end_frames:
            self._end(events, cut=False, trailing=self._silent_run)
            return
        long = len(speech) >= self._max_frames
        if (long and not voiced) or len(speech) >= self._hard_frames:
            self._end(events, cut=True, trailing=0)
            return
        # no partial once the voice has paused past the post-roll: the final is near
        partial_due = self._partial_frames and len(speech) >= self._next_partial
        if partial_due and self._silent_run <= self._post_frames:
            self._next_partial = len(speech) + self._partial_frames
            end = self._start_frame + len(speech)
            events.append(
                SpeechSoFar(
                    self._start_frame * FRAME_MS / 1000, end * FRAME_MS / 1000, b"".join(speech)
                )
            )

    def _end(self, events: list[SpeechEvent], *, cut: bool, trailing: int) -> None:
        speech = self._speech
        assert speech is not None
        keep = len(speech) - max(0, trailing - self._post_frames)
        frames = speech[:keep]
        tail = speech[keep:]
        start = self._start_frame * FRAME_MS / 1000
        end = (self._start_frame + keep) * FRAME_MS / 1000
        if self._voiced >= self._min_voiced:
            events.append(SpeechEnded(start, end, b"".join(frames), cut))
        self._speech = None
        self._voiced = 0
        self._silent_run = 0
        self._recent = []
        self._ring = tail[-(self._pre_frames + _START_WINDOW) :] if tail else []
        if cut:  # the voice goes on: the next utterance starts right here
            self._speech = []
            self._start_frame = self._frames
            self._next_partial = self._partial_frames
            events.append(SpeechStarted(self._start_frame * FRAME_MS / 1000))
