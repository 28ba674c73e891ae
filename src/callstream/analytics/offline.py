"""Analysing a saved recording: the live pipeline, run as fast as the CPU allows.

:func:`analyze_audio` feeds both channels of a call through the same
:class:`~callstream.analytics.call.CallAnalysis` a live call uses (voice activity,
utterances, recognition, redaction, sentiment, abuse, categories) and returns the export,
so ``callstream analyze --input call.wav`` prints what the server would have stored for
that call. Utterances are recognised on ``workers`` threads; results are applied in call
order so the output does not depend on thread timing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from callstream.analytics.asr import Recognizer
from callstream.analytics.call import CallAnalysis, CallSettings, UtteranceJob
from callstream.analytics.sources import CallAudio
from callstream.events.types import Event

__all__ = ["analyze_audio"]

_CHUNK = 8000 * 2  # feed 1 s at a time


def analyze_audio(
    audio: CallAudio,
    recognizer: Recognizer,
    call_id: str,
    settings: CallSettings | None = None,
    *,
    workers: int = 1,
) -> tuple[dict[str, Any], list[Event]]:
    """The call's export object and the events a live run would have published (no
    partials: the whole recording is at hand)."""
    settings = replace(settings or CallSettings(), partials=False)
    analysis = CallAnalysis(call_id, settings)
    jobs: list[UtteranceJob] = []
    for role, pcm in (("CALLER", audio.caller), ("AGENT", audio.agent)):
        for i in range(0, len(pcm), _CHUNK):
            jobs += analysis.audio(role, pcm[i : i + _CHUNK])
    jobs += analysis.end_audio()
    jobs.sort(key=lambda j: (j.start, j.role))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda job: recognizer.recognize(job.pcm), jobs))
    events: list[Event] = []
    for job, result in zip(jobs, results, strict=True):
        events += analysis.recognized(job, result)
    events += analysis.finish()
    return analysis.export(), events
