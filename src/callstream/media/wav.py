"""Read and write WAV files.

Reading uses a small RIFF chunk reader that validates every declared size against the
bytes actually present (nothing is allocated by a size read from the file). It handles
16-bit PCM, 8-bit unsigned PCM, 8-bit µ-law (format tag 7) and 8-bit A-law (tag 6),
also inside ``WAVE_FORMAT_EXTENSIBLE``, and always returns int16 samples. The stdlib
``wave`` reader is not used because on Python 3.11 it rejects ``WAVE_FORMAT_EXTENSIBLE``
and every non-PCM tag. A ``data`` size of ``0xFFFFFFFF`` (the placeholder streaming
writers such as ``ffmpeg -f wav -`` and :class:`WavWriter` put on pipes) means "to the
end of the file".

Writing whole files uses the stdlib ``wave`` module; :class:`WavWriter` streams 16-bit
PCM to any binary file object, including a non-seekable pipe.
"""

from __future__ import annotations

import io
import os
import struct
import wave
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Final

import numpy as np
import numpy.typing as npt

from callstream.media.g711 import alaw_decode, ulaw_decode
from callstream.media.pcm import PCM16_LE, as_int16

__all__ = [
    "WAVE_FORMAT_ALAW",
    "WAVE_FORMAT_EXTENSIBLE",
    "WAVE_FORMAT_MULAW",
    "WAVE_FORMAT_PCM",
    "WavAudio",
    "WavWriter",
    "parse_wav",
    "read_wav",
    "wav_bytes",
    "write_raw",
    "write_wav",
]

Int16Array = npt.NDArray[np.int16]
PathOrFile = str | os.PathLike[str] | IO[bytes]

WAVE_FORMAT_PCM: Final = 0x0001
WAVE_FORMAT_IEEE_FLOAT: Final = 0x0003
WAVE_FORMAT_ALAW: Final = 0x0006
WAVE_FORMAT_MULAW: Final = 0x0007
WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE

_STREAMING_SIZE: Final = 0xFFFFFFFF
_TAG_NAMES: Final = {
    WAVE_FORMAT_PCM: "PCM",
    WAVE_FORMAT_IEEE_FLOAT: "IEEE float",
    WAVE_FORMAT_ALAW: "A-law",
    WAVE_FORMAT_MULAW: "µ-law",
    0x0011: "IMA ADPCM",
    0x0055: "MPEG layer 3",
}
# KSDATAFORMAT_SUBTYPE_* GUIDs: <tag as uint16 LE> 00 00 + this fixed tail.
_GUID_TAIL: Final = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


@dataclass(frozen=True, slots=True)
class WavAudio:
    """Decoded WAV audio: ``samples`` is int16 with shape ``(n_frames, channels)``."""

    rate: int
    channels: int
    samples: Int16Array

    @property
    def n_frames(self) -> int:
        """Number of sample frames (samples per channel)."""
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.n_frames / self.rate

    def pcm_bytes(self) -> bytes:
        """Interleaved 16-bit little-endian PCM."""
        return self.samples.astype(PCM16_LE, copy=False).tobytes()


@dataclass(frozen=True, slots=True)
class _Format:
    tag: int
    channels: int
    rate: int
    block_align: int
    bits: int


def _tag_name(tag: int) -> str:
    name = _TAG_NAMES.get(tag)
    return f"0x{tag:04X} ({name})" if name else f"0x{tag:04X}"


def _parse_fmt(body: memoryview) -> _Format:
    if len(body) < 16:
        raise ValueError(f"WAV fmt chunk too small: {len(body)} bytes (need 16)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise ValueError(f"WAVE_FORMAT_EXTENSIBLE fmt chunk too small: {len(body)} bytes")
        guid = bytes(body[24:40])
        if guid[2:] != _GUID_TAIL:
            raise ValueError(f"unsupported WAVE_FORMAT_EXTENSIBLE sub-format {guid.hex()}")
        tag = struct.unpack_from("<H", guid)[0]
    if channels < 1:
        raise ValueError("WAV fmt chunk declares 0 channels")
    if rate < 1:
        raise ValueError("WAV fmt chunk declares a sample rate of 0")
    supported = {WAVE_FORMAT_PCM: (8, 16), WAVE_FORMAT_MULAW: (8,), WAVE_FORMAT_ALAW: (8,)}
    if tag not in supported:
        raise ValueError(f"unsupported WAV format tag {_tag_name(tag)}")
    if bits not in supported[tag]:
        raise ValueError(f"unsupported {bits}-bit sample size for WAV format {_tag_name(tag)}")
    expected_align = channels * bits // 8
    if block_align != expected_align:
        raise ValueError(
            f"WAV block align {block_align} does not match {channels} channel(s) x {bits} bits"
        )
    return _Format(tag, channels, rate, block_align, bits)


def _decode(fmt: _Format, data: memoryview) -> Int16Array:
    if fmt.tag == WAVE_FORMAT_MULAW:
        flat = ulaw_decode(data)
    elif fmt.tag == WAVE_FORMAT_ALAW:
        flat = alaw_decode(data)
    elif fmt.bits == 8:  # unsigned 8-bit PCM, 128 = silence
        flat = ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    else:
        flat = np.frombuffer(data, dtype=PCM16_LE).astype(np.int16)
    return flat.reshape(-1, fmt.channels)


def parse_wav(data: bytes | bytearray | memoryview) -> WavAudio:
    """Decode a complete WAV file held in memory; see :func:`read_wav`."""
    buf = memoryview(data).cast("B")
    size = len(buf)
    magic = bytes(buf[0:4])
    if size < 12 or magic not in (b"RIFF", b"RIFX"):
        raise ValueError(f"not a RIFF/WAVE file (starts with {magic!r}, {size} bytes)")
    if bytes(buf[8:12]) != b"WAVE":
        raise ValueError(f"not a RIFF/WAVE file (RIFF form type {bytes(buf[8:12])!r})")
    if magic == b"RIFX":
        raise ValueError("big-endian RIFX WAV files are not supported")
    fmt: _Format | None = None
    pos = 12
    while pos < size:
        if size - pos < 8:
            raise ValueError(f"truncated chunk header at offset {pos}")
        chunk_id = bytes(buf[pos : pos + 4])
        chunk_size = struct.unpack_from("<I", buf, pos + 4)[0]
        body_start = pos + 8
        available = size - body_start
        name = chunk_id.decode("latin-1")
        if chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk comes before the fmt chunk")
            if chunk_size == _STREAMING_SIZE:
                chunk_size = available  # streamed WAV: data runs to the end of the file
            elif chunk_size > available:
                raise ValueError(
                    f"truncated data chunk: declares {chunk_size} bytes but only "
                    f"{available} bytes are left in the file"
                )
            riff_size = struct.unpack_from("<I", buf, 4)[0]
            if riff_size not in (0, _STREAMING_SIZE) and riff_size > size - 8:
                raise ValueError(
                    f"RIFF size {riff_size} is larger than the file "
                    f"({size - 8} bytes after the header)"
                )
            usable = chunk_size - chunk_size % fmt.block_align  # drop a partial last frame
            samples = _decode(fmt, buf[body_start : body_start + usable])
            return WavAudio(rate=fmt.rate, channels=fmt.channels, samples=samples)
        if chunk_size > available:
            raise ValueError(
                f"truncated {name!r} chunk: declares {chunk_size} bytes but only "
                f"{available} bytes are left in the file"
            )
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(buf[body_start : body_start + chunk_size])
        pos = body_start + chunk_size + (chunk_size & 1)
    if fmt is None:
        raise ValueError("WAV file has no fmt chunk")
    raise ValueError("WAV file has no data chunk")


def read_wav(source: PathOrFile) -> WavAudio:
    """Read a WAV file from a path or binary file object (read to EOF) into int16 samples.

    Supports 16-bit PCM, 8-bit unsigned PCM, 8-bit µ-law and A-law (plain or
    ``WAVE_FORMAT_EXTENSIBLE``). Raises ``ValueError`` naming the problem for anything
    that is not a well-formed WAV of those kinds.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            return parse_wav(f.read())
    return parse_wav(source.read())


def _as_frames(samples: npt.ArrayLike) -> Int16Array:
    arr = as_int16(samples)
    if arr.ndim == 1:
        return arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"samples must be 1-D (mono) or (n, channels), got shape {arr.shape}")
    return arr


def _check_rate(rate: int) -> None:
    if rate < 1:
        raise ValueError(f"sample rate must be positive, got {rate}")


def write_wav(dest: PathOrFile, samples: npt.ArrayLike, rate: int) -> None:
    """Write 16-bit PCM WAV. ``samples``: 1-D mono or ``(n, channels)`` int16 array.

    Works on non-seekable file objects too (the sizes are known up front).
    """
    _check_rate(rate)
    frames = _as_frames(samples)
    data = frames.astype(PCM16_LE, copy=False).tobytes()
    if isinstance(dest, str | os.PathLike):
        with open(dest, "wb") as f:
            write_wav(f, frames, rate)
        return
    w = wave.open(dest, "wb")  # noqa: SIM115 - closed in finally
    try:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.setnframes(frames.shape[0])  # header is final; no seek needed on close
        w.writeframesraw(data)
    finally:
        w.close()


def wav_bytes(samples: npt.ArrayLike, rate: int) -> bytes:
    """Return a complete 16-bit PCM WAV file as bytes; see :func:`write_wav`."""
    out = io.BytesIO()
    write_wav(out, samples, rate)
    return out.getvalue()


def write_raw(dest: PathOrFile, samples: npt.ArrayLike | bytes) -> None:
    """Write headerless 16-bit little-endian PCM (``s16le``) to a path or binary stream."""
    data = bytes(samples) if isinstance(samples, bytes) else _pcm_bytes(samples)
    if isinstance(dest, str | os.PathLike):
        with open(dest, "wb") as f:
            f.write(data)
    else:
        dest.write(data)


def _pcm_bytes(samples: npt.ArrayLike) -> bytes:
    return as_int16(samples).astype(PCM16_LE, copy=False).tobytes()


def _is_seekable(f: IO[bytes]) -> bool:
    try:
        if not f.seekable():
            return False
        f.tell()
    except (AttributeError, OSError, ValueError):
        return False
    return True


class WavWriter:
    """Incremental 16-bit PCM WAV writer for live audio.

    On a seekable destination the RIFF and data sizes are written as placeholders and
    patched on :meth:`close`. On a non-seekable one (a pipe, ``sys.stdout.buffer``) they
    are written as ``0xFFFFFFFF``, which ffmpeg, sox and :func:`read_wav` read as "until
    end of stream". A seekable file that grows past the 4 GiB RIFF limit also keeps the
    ``0xFFFFFFFF`` sizes. Use as a context manager.
    """

    _HEADER: Final = struct.Struct("<4sI4s4sIHHIIHH4sI")

    def __init__(self, dest: PathOrFile, rate: int, channels: int = 1) -> None:
        _check_rate(rate)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.rate = rate
        self.channels = channels
        self._f: IO[bytes]
        if isinstance(dest, str | os.PathLike):
            self._f = open(dest, "wb")  # noqa: SIM115 - closed in close()
            self._owns = True
        else:
            self._f = dest
            self._owns = False
        self._seekable = _is_seekable(self._f)
        self._start = self._f.tell() if self._seekable else 0
        self._data_bytes = 0
        self._closed = False
        self._f.write(self._header(_STREAMING_SIZE))

    def _header(self, data_size: int) -> bytes:
        riff_size = _STREAMING_SIZE if data_size == _STREAMING_SIZE else 36 + data_size
        block_align = 2 * self.channels
        return self._HEADER.pack(
            b"RIFF",
            riff_size,
            b"WAVE",
            b"fmt ",
            16,
            WAVE_FORMAT_PCM,
            self.channels,
            self.rate,
            self.rate * block_align,
            block_align,
            16,
            b"data",
            data_size,
        )

    @property
    def seekable(self) -> bool:
        """True if the sizes will be patched on close."""
        return self._seekable

    @property
    def frames_written(self) -> int:
        """Sample frames written so far."""
        return self._data_bytes // (2 * self.channels)

    def write(self, samples: npt.ArrayLike | bytes | bytearray | memoryview) -> None:
        """Append int16 samples (``(n, channels)`` or interleaved 1-D) or interleaved
        little-endian PCM bytes. The length must be a whole number of frames."""
        if self._closed:
            raise ValueError("write to a closed WavWriter")
        if isinstance(samples, bytes | bytearray | memoryview):
            data = bytes(samples)
        else:
            data = _pcm_bytes(samples)
        if len(data) % (2 * self.channels):
            raise ValueError(
                f"{len(data)} bytes is not a whole number of {self.channels}-channel frames"
            )
        self._f.write(data)
        self._data_bytes += len(data)

    def close(self) -> None:
        """Patch the header (when seekable), flush, and close the file if we opened it."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._seekable and self._data_bytes <= _STREAMING_SIZE - 1 - 36:
                end = self._f.tell()
                self._f.seek(self._start)
                self._f.write(self._header(self._data_bytes))
                self._f.seek(end)
            self._f.flush()
        finally:
            if self._owns:
                self._f.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
