"""The labelled customer utterances through audio: spoken by espeak-ng, sent through a
G.711 telephone channel, recognised by Whisper, then classified.

The ``test`` split of ``data/customer_utterances.jsonl`` (never tuned on) becomes the
caller channel of one call (1.5 s between utterances, the agent silent) and goes through
``callstream analyze --input call.wav``: voice activity, recognition, redaction,
sentiment and abuse, exactly as a live call. Each utterance's prediction comes from the
CALLER segments overlapping its time (negative: any of them NEGATIVE; abusive: any of
them named by the ABUSIVE_CALLER flag). The table is printed (``pytest -s``); espeak-ng is
a robotic voice (about 21 % WER through G.711, ``dependencies.md`` §1.3), so the bar here
is lower than the text-only one and guards against the pipeline breaking, not the
classifiers' quality. Measured (140 words per minute, en-us and en-us+f3 voices): negative
P 0.94 R 0.60, abusive P 1.00 R 0.55; the misses are words the recogniser did not hear
("useless idiot" -> "duplicit"), not classifier errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from call_speech import write_wav
from test_analytics_labelled import LABELLED, load, precision_recall

from callstream.media.g711 import ulaw_decode, ulaw_encode
from callstream.media.resample import resample
from callstream.media.wav import read_wav

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]

GAP_S = 1.5
AUDIO_BAR = 0.5


def speak(text: str, path: Path, voice: str) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 8 kHz telephone audio (G.711 µ-law round trip)."""
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "140", "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=60,
    )
    wav = read_wav(path)
    samples = wav.samples[:, 0] if wav.samples.ndim == 2 else wav.samples
    eight = resample(samples, wav.rate, 8000)
    return ulaw_decode(ulaw_encode(eight))


def test_labelled_utterances_through_the_recogniser(tmp_path: Path) -> None:
    rows = load(LABELLED, "test")
    assert len(rows) >= 48
    pieces: list[np.ndarray] = [np.zeros(int(8000 * GAP_S), np.int16)]
    spans: list[tuple[float, float]] = []
    position = GAP_S
    for i, row in enumerate(rows):
        voice = "en-us" if i % 2 else "en-us+f3"
        audio = speak(row["text"], tmp_path / f"u{i}.wav", voice)
        spans.append((position, position + len(audio) / 8000))
        position += len(audio) / 8000 + GAP_S
        pieces += [audio, np.zeros(int(8000 * GAP_S), np.int16)]
    caller = np.concatenate(pieces)
    stereo = np.stack([caller, np.zeros_like(caller)], axis=1)
    call = write_wav(tmp_path / "call.wav", stereo, channels=2)
    out = subprocess.run(
        [sys.executable, "-m", "callstream.cli", "analyze", "--input", str(call),
         "--asr-workers", "2"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    abusive_ids = {
        sid for f in report["Flags"] if f["Type"] == "ABUSIVE_CALLER" for sid in f["SegmentIds"]
    }
    predicted: list[tuple[bool, bool]] = []
    heard = 0
    for start, end in spans:
        segs = [
            s
            for s in report["Segments"]
            if s["Channel"] == "CALLER" and s["StartTime"] < end and s["EndTime"] > start
        ]
        heard += bool(segs)
        predicted.append(
            (
                any(s["Sentiment"] == "NEGATIVE" for s in segs),
                any(s["SegmentId"] in abusive_ids for s in segs),
            )
        )
    assert heard == len(rows)  # every utterance became at least one segment
    neg = precision_recall([r["sentiment"] == "negative" for r in rows], [p[0] for p in predicted])
    abu = precision_recall([r["abusive"] for r in rows], [p[1] for p in predicted])
    table = (
        f"audio (espeak-ng + G.711 + Whisper tiny.en), n={len(rows)}: "
        f"negative P {neg[0]:.3f} R {neg[1]:.3f}, abusive P {abu[0]:.3f} R {abu[1]:.3f}"
    )
    print("\n" + table)
    assert min(*neg, *abu) >= AUDIO_BAR, table
