"""soxr resampling tests (one-shot and streaming)."""

from __future__ import annotations

import numpy as np
import pytest

from callstream.media.resample import Resampler, resample


def tone(freq: float, rate: int, seconds: float, amp: float = 12000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.int16)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 16000), (16000, 8000), (8000, 48000), (44100, 8000)]
)
def test_resample_length_dtype_and_pitch(src: int, dst: int) -> None:
    x = tone(440.0, src, 1.0)
    y = resample(x, src, dst)
    assert y.dtype == np.int16 and y.ndim == 1
    assert len(y) == round(len(x) * dst / src)
    assert peak_hz(y, dst) == pytest.approx(440.0, abs=2.0)
    # amplitude is preserved away from the edges
    assert np.abs(y[dst // 10 : -dst // 10]).max() == pytest.approx(12000, rel=0.02)


def test_downsampling_removes_content_above_new_nyquist() -> None:
    x = tone(6000.0, 16000, 0.5)  # above 4 kHz: must be filtered, not aliased to 2 kHz
    y = resample(x, 16000, 8000)
    assert np.abs(y[400:-400]).max() < 200


def test_equal_rates_return_a_copy() -> None:
    x = tone(100.0, 8000, 0.01)
    y = resample(x, 8000, 8000)
    assert np.array_equal(x, y) and y is not x


def test_stereo_and_empty() -> None:
    left, right = tone(300.0, 8000, 0.5), tone(1000.0, 8000, 0.5)
    y = resample(np.stack([left, right], axis=1), 8000, 16000)
    assert y.shape == (8000, 2)
    assert peak_hz(y[:, 0], 16000) == pytest.approx(300, abs=3)
    assert peak_hz(y[:, 1], 16000) == pytest.approx(1000, abs=3)
    assert resample(np.zeros(0, np.int16), 8000, 16000).shape == (0,)
    with pytest.raises(ValueError):
        resample(np.zeros(4, np.int16), 0, 8000)


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (8000, 8000)])
def test_streaming_20ms_frames_matches_one_shot(src: int, dst: int) -> None:
    x = tone(440.0, src, 1.0)
    frame = src // 50
    r = Resampler(src, dst)
    parts = [r.process(x[i : i + frame]) for i in range(0, len(x), frame)]
    parts.append(r.flush())
    y = np.concatenate(parts)
    ref = resample(x, src, dst)
    assert len(y) == len(ref)
    assert np.abs(y.astype(np.int32) - ref).max() <= 4
    with pytest.raises(ValueError, match="flushed"):
        r.process(x[:frame])


def test_streaming_accepts_le_bytes_and_stereo() -> None:
    x = tone(500.0, 8000, 0.2)
    r = Resampler(8000, 16000)
    y = np.concatenate([r.process(x[:800].astype("<i2").tobytes()), r.process(x[800:], last=True)])
    assert len(y) == 3200
    s = Resampler(8000, 16000, channels=2)
    st = np.stack([x, -x], axis=1)
    out = np.concatenate([s.process(st[:800].reshape(-1)), s.process(st[800:]), s.flush()])
    assert out.shape == (3200, 2)
    assert np.abs(out[:, 0].astype(np.int32) + out[:, 1]).max() <= 2
    with pytest.raises(ValueError, match="whole number"):
        Resampler(8000, 16000, channels=2).process(np.zeros(3, np.int16))
