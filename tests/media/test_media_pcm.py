"""PCM helper and MIME type tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from callstream.media.pcm import (
    MimeType,
    deinterleave,
    interleave,
    parse_mime_type,
    pcm_to_samples,
    samples_to_pcm,
    silence,
)

int16_arrays = hnp.arrays(np.int16, st.integers(0, 300))


def test_bytes_are_little_endian_on_any_host() -> None:
    assert pcm_to_samples(b"\x01\x00\xff\xff\x00\x80").tolist() == [1, -1, -32768]
    assert samples_to_pcm(np.array([1, -1, -32768], dtype=np.int16)) == b"\x01\x00\xff\xff\x00\x80"
    # big-endian input arrays are converted by value
    assert samples_to_pcm(np.array([258], dtype=">i2")) == b"\x02\x01"
    out = pcm_to_samples(b"\x02\x01")
    assert out.dtype == np.dtype(np.int16) and out.flags.writeable


@given(int16_arrays)
def test_pcm_bytes_round_trip(x: np.ndarray) -> None:
    data = samples_to_pcm(x)
    assert len(data) == 2 * x.size
    assert np.array_equal(pcm_to_samples(data), x)
    assert pcm_to_samples(memoryview(data)).tolist() == x.tolist()


def test_pcm_errors() -> None:
    with pytest.raises(ValueError, match="even byte length"):
        pcm_to_samples(b"\x00")
    with pytest.raises(ValueError, match="int16 range"):
        samples_to_pcm(np.array([32768]))
    with pytest.raises(TypeError):
        samples_to_pcm(np.array([0.0]))


def test_silence() -> None:
    assert silence(3) == b"\x00" * 6
    assert silence(3, channels=2) == b"\x00" * 12
    assert silence(0) == b""
    with pytest.raises(ValueError):
        silence(-1)
    with pytest.raises(ValueError):
        silence(1, channels=0)


def test_interleave_pads_shorter_channel_at_end() -> None:
    left = np.array([1, 2, 3], dtype=np.int16)
    right = np.array([-1], dtype=np.int16)
    assert interleave([left, right]).tolist() == [1, -1, 2, 0, 3, 0]
    assert interleave([right, left]).tolist() == [-1, 1, 0, 2, 0, 3]
    assert interleave([left]).tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        interleave([])


@given(st.lists(int16_arrays, min_size=1, max_size=4))
def test_deinterleave_inverts_interleave(chans: list[np.ndarray]) -> None:
    n = max(c.size for c in chans)
    mixed = interleave(chans)
    assert mixed.shape == (n * len(chans),)
    back = deinterleave(mixed, len(chans))
    assert len(back) == len(chans)
    for orig, got in zip(chans, back, strict=True):
        assert got.shape == (n,)
        assert np.array_equal(got[: orig.size], orig)
        assert not got[orig.size :].any()
    # the bytes path is the same
    back_bytes = deinterleave(samples_to_pcm(mixed), len(chans))
    assert all(np.array_equal(a, b) for a, b in zip(back, back_bytes, strict=True))


def test_deinterleave_rejects_partial_frames() -> None:
    with pytest.raises(ValueError, match="whole number"):
        deinterleave(np.arange(5, dtype=np.int16), 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("audio/L16;rate=8000;channels=1;", MimeType("L16", 8000, 1)),  # real Connect value
        ("audio/L16;rate=8000;channels=1", MimeType("L16", 8000, 1)),  # yacchi fixture
        ("audio/L16", None),
        ("Audio/l16; Rate=16000 ; CHANNELS=2", MimeType("L16", 16000, 2)),
        ('audio/L16;rate="48000"', MimeType("L16", 48000, 1)),
        ("audio/PCMU", MimeType("PCMU", 8000, 1)),
        ("audio/L16;rate=8000;foo=bar;;", MimeType("L16", 8000, 1)),
    ],
)
def test_parse_mime_type(text: str, expected: MimeType | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="no rate"):
            parse_mime_type(text)
    else:
        assert parse_mime_type(text) == expected
        assert MimeType.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "video/h264",
        "L16;rate=8000",
        "audio/",
        "audio/L16;rate=abc",
        "audio/L16;rate",
        "audio/L16;rate=0",
    ],
)
def test_parse_mime_type_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_mime_type(text)


def test_mime_type_str_and_sample_width() -> None:
    mt = parse_mime_type("audio/L16;rate=8000;channels=1;")
    assert str(mt) == "audio/L16;rate=8000;channels=1"
    assert parse_mime_type(str(mt)) == mt
    assert mt.sample_width == 2
    assert parse_mime_type("audio/PCMA").sample_width == 1
    assert MimeType("OPUS", 48000).sample_width is None
