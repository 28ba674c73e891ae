"""WAV reader/writer tests, including files made by ffmpeg and streamed (pipe) output."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from callstream.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from callstream.media.wav import (
    WavWriter,
    parse_wav,
    read_wav,
    wav_bytes,
    write_raw,
    write_wav,
)

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")


def riff(*chunks: tuple[bytes, bytes], riff_size: int | None = None) -> bytes:
    """Build a RIFF/WAVE file from (id, body) chunks, padding odd bodies."""
    body = b"WAVE" + b"".join(
        cid + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
        for cid, data in chunks
    )
    size = len(body) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", size) + body


def fmt(tag: int, channels: int, rate: int, bits: int, extra: bytes = b"") -> tuple[bytes, bytes]:
    align = channels * bits // 8
    return b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits) + extra


def extensible(sub_tag: int, channels: int, rate: int, bits: int) -> tuple[bytes, bytes]:
    guid = struct.pack("<H", sub_tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    extra = struct.pack("<HHI", 22, bits, 0) + guid
    return fmt(0xFFFE, channels, rate, bits, extra)


def frames_strategy() -> st.SearchStrategy[np.ndarray]:
    return st.integers(1, 3).flatmap(
        lambda ch: hnp.arrays(np.int16, st.tuples(st.integers(0, 200), st.just(ch)))
    )


# --- write -> read ------------------------------------------------------------------------


@settings(max_examples=50)
@given(frames_strategy(), st.sampled_from([8000, 16000, 44100, 48000]))
def test_write_read_round_trip_is_bit_exact(samples: np.ndarray, rate: int) -> None:
    data = wav_bytes(samples, rate)
    audio = parse_wav(data)
    assert (audio.rate, audio.channels) == (rate, samples.shape[1])
    assert audio.samples.dtype == np.int16
    assert np.array_equal(audio.samples, samples)
    # the stdlib agrees with our header
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (samples.shape[1], rate, 2)
        assert w.getnframes() == samples.shape[0]


def test_mono_1d_and_paths(tmp_path: Path) -> None:
    x = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    write_wav(tmp_path / "a.wav", x, 8000)
    write_wav(str(tmp_path / "b.wav"), x.reshape(-1, 1), 8000)
    a = read_wav(tmp_path / "a.wav")
    assert a.samples.shape == (5, 1)
    assert a.samples[:, 0].tolist() == x.tolist()
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    with open(tmp_path / "a.wav", "rb") as f:
        assert np.array_equal(read_wav(f).samples, a.samples)
    assert a.n_frames == 5 and a.duration == pytest.approx(5 / 8000)
    assert a.pcm_bytes() == x.astype("<i2").tobytes()
    # canonical 44-byte header followed by little-endian samples
    raw = (tmp_path / "a.wav").read_bytes()
    assert len(raw) == 44 + 10 and raw[44:] == x.astype("<i2").tobytes()


def test_write_wav_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        wav_bytes(np.zeros((2, 2, 2), np.int16), 8000)
    with pytest.raises(ValueError, match="rate"):
        wav_bytes(np.zeros(4, np.int16), 0)
    with pytest.raises(TypeError):
        wav_bytes(np.zeros(4, np.float32), 8000)


def test_write_raw(tmp_path: Path) -> None:
    x = np.array([1, -2, 3], dtype=np.int16)
    write_raw(tmp_path / "x.raw", x)
    assert (tmp_path / "x.raw").read_bytes() == b"\x01\x00\xfe\xff\x03\x00"
    buf = io.BytesIO()
    write_raw(buf, b"\x01\x02")
    assert buf.getvalue() == b"\x01\x02"


# --- reading other encodings ----------------------------------------------------------------


def test_read_ulaw_alaw_and_u8() -> None:
    x = np.array([0, 1000, -1000, 32767, -32768, 5, -5, 12345], dtype=np.int16)
    u, a = ulaw_encode(x), alaw_encode(x)
    got_u = parse_wav(riff(fmt(7, 1, 8000, 8), (b"data", u)))
    got_a = parse_wav(riff(fmt(6, 2, 8000, 8), (b"data", a)))
    assert got_u.samples[:, 0].tolist() == ulaw_decode(u).tolist()
    assert got_a.samples.shape == (4, 2)
    assert got_a.samples.reshape(-1).tolist() == alaw_decode(a).tolist()
    u8 = bytes([0, 128, 255, 127])
    got8 = parse_wav(riff(fmt(1, 1, 11025, 8), (b"data", u8)))
    assert got8.rate == 11025
    assert got8.samples[:, 0].tolist() == [-32768, 0, 32512, -256]


def test_read_extensible_and_skips_unknown_chunks() -> None:
    x = np.array([[1, 2], [3, 4], [-5, -6]], dtype=np.int16)
    data = riff(
        (b"JUNK", b"odd"),  # odd size: word padding must be honoured
        extensible(1, 2, 16000, 16),
        (b"LIST", b"INFOISFT\x04\x00\x00\x00test"),
        (b"data", x.astype("<i2").tobytes()),
    )
    audio = parse_wav(data)
    assert audio.rate == 16000 and np.array_equal(audio.samples, x)
    mu = parse_wav(riff(extensible(7, 1, 8000, 8), (b"data", b"\xff\x00")))
    assert mu.samples[:, 0].tolist() == [0, -32124]


def test_partial_trailing_frame_is_dropped() -> None:
    audio = parse_wav(riff(fmt(1, 2, 8000, 16), (b"data", b"\x01\x00\x02\x00\x03\x00")))
    assert audio.samples.tolist() == [[1, 2]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a RIFF"),
        (b"OggS" + b"\x00" * 40, "not a RIFF"),
        (b"RIFF\x04\x00\x00\x00AVI ", "not a RIFF"),
        (b"RIFX\x04\x00\x00\x00WAVE", "RIFX"),
        (riff(fmt(3, 1, 8000, 32), (b"data", b"\x00" * 4)), r"format tag 0x0003 \(IEEE float\)"),
        (riff(fmt(0x55, 1, 8000, 0), (b"data", b"")), "unsupported WAV format tag 0x0055"),
        (riff(fmt(1, 1, 8000, 24), (b"data", b"\x00" * 3)), "24-bit"),
        (riff(fmt(7, 1, 8000, 16), (b"data", b"")), "16-bit"),
        (riff(fmt(1, 0, 8000, 16), (b"data", b"")), "0 channels"),
        (riff(fmt(1, 1, 0, 16), (b"data", b"")), "sample rate of 0"),
        (riff((b"fmt ", b"\x01\x00"), (b"data", b"")), "fmt chunk too small"),
        (riff((b"data", b"\x00\x00"), fmt(1, 1, 8000, 16)), "before the fmt chunk"),
        (riff(fmt(1, 1, 8000, 16)), "no data chunk"),
        (riff((b"LIST", b"abcd")), "no fmt chunk"),
        (riff(fmt(1, 1, 8000, 16))[:-4], "truncated 'fmt ' chunk"),
        (riff(fmt(1, 1, 8000, 16)) + b"dat", "truncated chunk header"),
        (riff(fmt(1, 1, 8000, 16), (b"data", b"\x00" * 8))[:-2], "truncated data chunk"),
        (riff(fmt(1, 1, 8000, 16), (b"data", b"")) + b"", None),
    ],
)
def test_malformed_files_raise_value_error_naming_the_problem(
    data: bytes, message: str | None
) -> None:
    if message is None:
        assert parse_wav(data).samples.shape == (0, 1)
        return
    with pytest.raises(ValueError, match=message):
        parse_wav(data)


def test_untrusted_sizes_are_never_used_to_allocate() -> None:
    # a 2 GiB data chunk and a 4 GiB-2 RIFF size declared in a tiny file
    huge_data = riff(fmt(1, 1, 8000, 16)) + b"data" + struct.pack("<I", 0x7FFFFFFF) + b"\x00" * 4
    with pytest.raises(ValueError, match="truncated data chunk"):
        parse_wav(huge_data)
    huge_chunk = riff(fmt(1, 1, 8000, 16)) + b"LIST" + struct.pack("<I", 0xFFFFFFF0)
    with pytest.raises(ValueError, match="truncated 'LIST' chunk"):
        parse_wav(huge_chunk)
    body = riff(fmt(1, 1, 8000, 16), (b"data", b"\x00\x00"))
    lying = body[:4] + struct.pack("<I", 1 << 30) + body[8:]
    with pytest.raises(ValueError, match=r"RIFF size .* larger than the file"):
        parse_wav(lying)


def test_streaming_placeholder_sizes_read_to_end() -> None:
    x = np.arange(-50, 50, dtype=np.int16)
    data = riff(fmt(1, 1, 8000, 16), (b"data", x.astype("<i2").tobytes()))
    streamed = bytearray(data)
    streamed[4:8] = b"\xff\xff\xff\xff"
    streamed[40:44] = b"\xff\xff\xff\xff"
    assert np.array_equal(parse_wav(bytes(streamed)).samples[:, 0], x)


# --- WavWriter ------------------------------------------------------------------------------


class PipeLike(io.RawIOBase):
    """A write-only, non-seekable stream (like sys.stdout.buffer on a pipe)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b: Any) -> int:
        self.buf += bytes(b)
        return len(b)


def _chunks(x: np.ndarray, n: int) -> list[np.ndarray]:
    return [x[i : i + n] for i in range(0, len(x), n)]


def test_wav_writer_seekable_patches_sizes(tmp_path: Path) -> None:
    x = np.random.default_rng(1).integers(-32768, 32768, (1000, 2)).astype(np.int16)
    with WavWriter(tmp_path / "s.wav", 8000, channels=2) as w:
        assert w.seekable
        for part in _chunks(x, 160):
            w.write(part)
        w.write(b"")
    assert w.frames_written == 1000
    raw = (tmp_path / "s.wav").read_bytes()
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    assert struct.unpack_from("<I", raw, 40)[0] == 4000
    with wave.open(str(tmp_path / "s.wav")) as r:
        assert r.getnframes() == 1000 and r.getnchannels() == 2
    assert np.array_equal(read_wav(tmp_path / "s.wav").samples, x)
    # identical to the one-shot writer
    assert raw == wav_bytes(x, 8000)


def test_wav_writer_at_nonzero_offset_patches_its_own_header() -> None:
    buf = io.BytesIO()
    buf.write(b"prefix")
    with WavWriter(buf, 16000) as w:
        w.write(np.array([1, 2, 3], np.int16))
    assert buf.getvalue()[:6] == b"prefix"
    audio = parse_wav(buf.getvalue()[6:])
    assert audio.samples[:, 0].tolist() == [1, 2, 3]


def test_wav_writer_non_seekable_uses_placeholders() -> None:
    pipe = PipeLike()
    x = np.arange(-400, 400, dtype=np.int16)
    with WavWriter(pipe, 8000) as w:  # type: ignore[arg-type]
        assert not w.seekable
        for part in _chunks(x, 160):
            w.write(part.astype("<i2").tobytes())
    raw = bytes(pipe.buf)
    assert raw[4:8] == b"\xff\xff\xff\xff" and raw[40:44] == b"\xff\xff\xff\xff"
    assert np.array_equal(parse_wav(raw).samples[:, 0], x)


def test_wav_writer_errors(tmp_path: Path) -> None:
    w = WavWriter(tmp_path / "e.wav", 8000, channels=2)
    with pytest.raises(ValueError, match="whole number"):
        w.write(b"\x00\x00")
    w.close()
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.write(b"")
    with pytest.raises(ValueError):
        WavWriter(io.BytesIO(), 8000, channels=0)


# --- interoperability with ffmpeg -------------------------------------------------------


def _run(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(args, input=stdin, capture_output=True, check=True, timeout=60).stdout


@needs_ffmpeg
@pytest.mark.parametrize(("codec", "tag"), [("pcm_mulaw", 7), ("pcm_alaw", 6), ("pcm_u8", 1)])
def test_reads_ffmpeg_wav_like_ffmpeg_decodes_it(tmp_path: Path, codec: str, tag: int) -> None:
    assert FFMPEG is not None
    src = tmp_path / "x.wav"
    _run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=1", "-ar", "8000",
         "-c:a", codec, "-y", str(src))  # fmt: skip
    raw = src.read_bytes()
    assert struct.unpack_from("<H", raw, 20)[0] == tag
    ref = _run(FFMPEG, "-v", "error", "-i", str(src), "-f", "s16le", "-c:a", "pcm_s16le", "-")
    audio = read_wav(src)
    assert (audio.rate, audio.channels) == (8000, 1)
    assert audio.n_frames == 8000
    assert audio.pcm_bytes() == ref


@needs_ffmpeg
def test_reads_ffmpeg_streamed_wav_from_a_pipe() -> None:
    assert FFMPEG is not None
    raw = _run(FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=f=300:d=0.5", "-ar", "8000",
               "-ac", "2", "-c:a", "pcm_mulaw", "-f", "wav", "-")  # fmt: skip
    assert raw[4:8] == b"\xff\xff\xff\xff"  # ffmpeg could not seek back
    audio = parse_wav(raw)
    ref = _run(FFMPEG, "-v", "error", "-f", "wav", "-i", "-", "-f", "s16le", "-", stdin=raw)
    assert audio.channels == 2 and audio.pcm_bytes() == ref


@needs_ffmpeg
def test_ffmpeg_reads_wav_writer_output_through_a_real_pipe() -> None:
    assert FFMPEG is not None
    x = (np.sin(np.arange(4000) * 0.05) * 20000).astype(np.int16)
    proc = subprocess.Popen(
        [FFMPEG, "-v", "error", "-f", "wav", "-i", "-", "-f", "s16le", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None
    with WavWriter(proc.stdin, 8000) as w:
        assert not w.seekable
        for part in _chunks(x, 160):
            w.write(part)
    proc.stdin.close()  # 8 kB of output fits in the pipe buffer, so no deadlock
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    assert out == x.astype("<i2").tobytes()
