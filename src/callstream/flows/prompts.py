"""Prompt audio: what the customer hears for a MessageParticipant / GetParticipantInput prompt.

Text and SSML are spoken with ``espeak-ng`` when it is installed (resampled to the call's
8 kHz); without it, or when it fails, a 440 Hz :func:`tone` of about 60 ms per character (at
most 3 s) stands in. A PromptId / Media prompt has no text to speak: a 1 s tone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from callstream.flows.clock import SAMPLE_RATE, Int16Array, mono_8k
from callstream.flows.effects import PlayPrompt

__all__ = [
    "NON_TEXT_PROMPT_MS",
    "TONE_AMPLITUDE",
    "TONE_HZ",
    "TONE_MAX_MS",
    "TONE_MS_PER_CHAR",
    "prompt_audio",
    "prompt_text",
    "tone",
]

log = logging.getLogger("callstream.flows.call")

TONE_HZ = 440.0
TONE_MS_PER_CHAR = 60
TONE_MAX_MS = 3000
TONE_AMPLITUDE = 8000
NON_TEXT_PROMPT_MS = 1000
"""Length of the tone standing in for a PromptId / Media prompt (no text to speak)."""
_ESPEAK_TIMEOUT_S = 20.0
_SSML_TAG = re.compile(r"<[^>]*>")


def tone(text_length: int, *, ms: int | None = None) -> Int16Array:
    """The stand-in for speech: 440 Hz, ``TONE_MS_PER_CHAR`` ms per character (at least one
    character, at most ``TONE_MAX_MS``), or exactly ``ms`` milliseconds when given."""
    duration = ms if ms is not None else min(TONE_MS_PER_CHAR * max(1, text_length), TONE_MAX_MS)
    n = SAMPLE_RATE * duration // 1000
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    wave = TONE_AMPLITUDE * np.sin(2 * math.pi * TONE_HZ * t)
    return np.asarray(np.round(wave), dtype=np.int16)


def prompt_text(prompt: PlayPrompt) -> tuple[str, bool]:
    """The words of a prompt and whether they are SSML."""
    if prompt.text is not None:
        return prompt.text, False
    if prompt.ssml is not None:
        return prompt.ssml, True
    return "", False


async def prompt_audio(prompt: PlayPrompt, *, espeak: str | None = None) -> Int16Array:
    """The 8 kHz audio of a prompt.

    Text and SSML are spoken with ``espeak-ng`` (``espeak`` = its path; default: found on
    ``PATH``) and resampled to 8 kHz; without it (or when it fails) a :func:`tone` of the
    text's length stands in. A PromptId / Media prompt has no text: a 1 s tone.
    """
    text, ssml = prompt_text(prompt)
    if not text:
        return tone(0, ms=NON_TEXT_PROMPT_MS)
    plain = _SSML_TAG.sub("", text).strip() if ssml else text
    binary = espeak if espeak is not None else shutil.which("espeak-ng")
    if binary:
        try:
            return await _espeak(binary, text, ssml)
        except (OSError, ValueError, TimeoutError) as exc:
            log.warning("espeak-ng failed (%s); using a tone", exc)
    return tone(len(plain))


async def _espeak(binary: str, text: str, ssml: bool) -> Int16Array:
    with tempfile.TemporaryDirectory(prefix="callstream-tts-") as tmp:
        out = Path(tmp) / "prompt.wav"
        args = [binary, "-w", str(out)]
        if ssml:
            args.append("-m")
        args += ["--", text]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), _ESPEAK_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0 or not out.is_file():
            raise ValueError(f"exit {proc.returncode}: {err.decode(errors='replace').strip()}")
        return mono_8k(out)
