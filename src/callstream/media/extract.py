"""Call audio out of KVS fragments: tracks chosen by name, decoded to 16-bit PCM, placed
on a true timeline.

Connect names its tracks ``AUDIO_FROM_CUSTOMER`` (what the caller says) and
``AUDIO_TO_CUSTOMER`` (what the caller hears) but numbers them differently from call to
call, labels the raw L16 payload ``A_AAC`` and gives the sample format only in a
``MimeType`` tag (kvs-wire §6.3). :class:`AudioExtractor` copes with all of that, with the
legacy single track ``Track_audio/L16`` and with Chime's one-track-per-leg streams.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import Enum

import numpy as np

from callstream.media.g711 import alaw_decode, ulaw_decode
from callstream.media.pcm import parse_mime_type
from callstream.media.tracks import StereoAssembler, TrackTimeline
from callstream.mkv.kvs import Fragment, TrackInfo

__all__ = [
    "AudioExtractor",
    "AudioFormat",
    "AudioFormatError",
    "Selection",
    "audio_format",
    "resolve_track",
    "to_pcm16",
]

FROM_CUSTOMER = "AUDIO_FROM_CUSTOMER"
TO_CUSTOMER = "AUDIO_TO_CUSTOMER"
LEGACY_FROM_CUSTOMER = "Track_audio/L16"
MAX_GAP_MS = 3_600_000.0
"""A timestamp jump beyond this is treated as corrupt input rather than filled with silence."""


class Selection(Enum):
    """Which audio ``callstream get-audio --track`` extracts."""

    FROM_CUSTOMER = "AUDIO_FROM_CUSTOMER"
    TO_CUSTOMER = "AUDIO_TO_CUSTOMER"
    ALL = "all"  # stereo: channel 0 = customer, channel 1 = agent


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """How a track's frames decode to 16-bit PCM."""

    encoding: str  # L16 (little-endian), L16BE, PCMU, PCMA
    rate: int
    channels: int = 1


def resolve_track(fragment: Fragment, want: str) -> TrackInfo | None:
    """The track carrying ``want`` (AUDIO_FROM_CUSTOMER / AUDIO_TO_CUSTOMER) in this
    fragment, by TrackEntry Name; never by number, UID or the AUDIO_* tag values."""
    named = fragment.track_named(want)
    if named is not None:
        return named
    audio = [
        t for t in fragment.tracks.values() if t.track_type in (None, 2) and t.name != TO_CUSTOMER
    ]
    if want == FROM_CUSTOMER:
        legacy = fragment.track_named(LEGACY_FROM_CUSTOMER)
        if legacy is not None:
            return legacy
        if len(audio) == 1:  # Chime leg, or a one-track producer
            return audio[0]
    audio = [t for t in fragment.tracks.values() if t.track_type in (None, 2)]
    if len(audio) == 2 and all(not t.name for t in audio):
        # Unnamed pair: the convention some producers use (1 = from, 2 = to).
        ordered = sorted(audio, key=lambda t: t.number)
        return ordered[0] if want == FROM_CUSTOMER else ordered[1]
    return None


class AudioFormatError(ValueError):
    """A track that cannot be decoded to PCM; ``reason`` is ``"unsupported"``,
    ``"missing_codec_private"`` or ``"invalid_codec_private"``."""

    def __init__(self, message: str, reason: str = "unsupported") -> None:
        super().__init__(message)
        self.reason = reason


CONNECT_CODEC_PRIVATE = bytes.fromhex("1190")
"""What Connect puts in CodecPrivate of its ``A_AAC``-labelled L16 tracks."""


def audio_format(fragment: Fragment, track: TrackInfo) -> AudioFormat:
    """How ``track`` decodes to 16-bit PCM.

    PCM tracks (``A_PCM/INT/LIT|BIG``) and ``A_MS/ACM`` (its WAVEFORMATEX: PCM, A-law,
    µ-law) describe themselves; anything else needs the ``MimeType`` tag (Connect's L16
    labelled ``A_AAC``), or Connect's CodecPrivate signature without one. Raises
    :class:`AudioFormatError` for video, real AAC and other codecs.
    """
    fmt = _audio_format(fragment, track)
    if not 1 <= fmt.rate <= MAX_SAMPLE_RATE:
        raise AudioFormatError(f"track {track.number}: sampling rate {fmt.rate} is not usable")
    if not 1 <= fmt.channels <= MAX_CHANNELS:
        raise AudioFormatError(f"track {track.number}: {fmt.channels} channels is not usable")
    return fmt


MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 16


def _sampling_rate(track: TrackInfo) -> int:
    """The track's SamplingFrequency as an int (0 when absent); NaN, infinite or
    negative values are refused."""
    value = track.sampling_rate
    if not value:
        return 0
    if not math.isfinite(value) or value < 0 or value > MAX_SAMPLE_RATE:
        raise AudioFormatError(f"track {track.number}: SamplingFrequency {value} is not usable")
    return int(value)


def _audio_format(fragment: Fragment, track: TrackInfo) -> AudioFormat:
    mime = fragment.tags.get("MimeType") or fragment.tags.get("mimeType")
    codec = (track.codec_id or "").upper()
    rate = _sampling_rate(track)
    channels = track.channels or 1
    if track.track_type not in (None, 2) or codec.startswith("V_"):
        raise AudioFormatError(f"track {track.number} ({track.codec_id}) is not audio")
    if codec in ("A_PCM/INT/LIT", "A_PCM/INT/BIG"):
        if track.bit_depth not in (None, 16):
            raise AudioFormatError(f"track {track.number}: {track.bit_depth}-bit PCM")
        if not rate and mime:
            rate = _mime_format(mime).rate
        return AudioFormat("L16" if codec.endswith("LIT") else "L16BE", rate or 8000, channels)
    if codec == "A_MS/ACM":
        return _waveformatex(track)
    if mime:
        return _mime_format(mime)
    if codec == "A_AAC" and track.codec_private == CONNECT_CODEC_PRIVATE and not rate:
        return AudioFormat("L16", 8000, 1)  # Connect's signature without its MimeType tag
    raise AudioFormatError(
        f"track {track.number}: codec {track.codec_id} is not PCM, G.711 or Connect L16 audio"
    )


def _mime_format(mime: str) -> AudioFormat:
    try:
        m = parse_mime_type(mime)
    except ValueError:
        if mime.strip().lower().rstrip(";") == "audio/l16":  # no rate: Connect's 8 kHz
            return AudioFormat("L16", 8000, 1)
        raise AudioFormatError(f"MimeType {mime!r} is not an audio format") from None
    if m.encoding not in ("L16", "PCMU", "PCMA"):
        raise AudioFormatError(f"MimeType {mime!r} is not a supported audio format")
    return AudioFormat(m.encoding, m.rate, m.channels)


def _waveformatex(track: TrackInfo) -> AudioFormat:
    """The format of an ``A_MS/ACM`` track from its WAVEFORMATEX CodecPrivate."""
    cpd = track.codec_private
    if not cpd:
        raise AudioFormatError(
            f"track {track.number} (A_MS/ACM) has no codec private data", "missing_codec_private"
        )
    if len(cpd) < 16:
        raise AudioFormatError(
            f"track {track.number}: WAVEFORMATEX codec private data is too short",
            "invalid_codec_private",
        )
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", cpd)
    if channels < 1 or rate < 1:
        raise AudioFormatError(
            f"track {track.number}: WAVEFORMATEX declares {channels} channels at {rate} Hz",
            "invalid_codec_private",
        )
    if tag == 1 and bits == 16:
        return AudioFormat("L16", rate, channels)
    if tag == 6:
        return AudioFormat("PCMA", rate, channels)
    if tag == 7:
        return AudioFormat("PCMU", rate, channels)
    raise AudioFormatError(f"track {track.number}: WAVE format 0x{tag:04x}/{bits} bit")


def to_pcm16(data: bytes, fmt: AudioFormat) -> bytes:
    """One frame's payload as 16-bit little-endian mono PCM."""
    if fmt.encoding == "L16":
        pcm = data
    elif fmt.encoding == "L16BE":
        pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype=">i2").astype("<i2").tobytes()
    elif fmt.encoding == "PCMU":
        pcm = ulaw_decode(data).astype("<i2").tobytes()
    elif fmt.encoding == "PCMA":
        pcm = alaw_decode(data).astype("<i2").tobytes()
    else:
        raise ValueError(f"unsupported audio encoding {fmt.encoding}")
    if fmt.channels > 1:  # mix down to the first channel
        frames = np.frombuffer(pcm[: len(pcm) // (2 * fmt.channels) * 2 * fmt.channels], "<i2")
        pcm = frames[:: fmt.channels].tobytes()
    return pcm


class AudioExtractor:
    """Feeds fragments in, gets contiguous PCM out (mono, or stereo for ``ALL``).

    Time stays true: gaps between frames become silence, so a sample's position in the
    output is its time since the first frame (or since ``origin_ns`` if given).
    """

    def __init__(self, selection: Selection, *, origin_ns: int | None = None) -> None:
        self.selection = selection
        self.rate: int | None = None
        self._origin = origin_ns
        self._mono: TrackTimeline | None = None
        self._stereo: StereoAssembler | None = None
        self._formats: dict[str, AudioFormat] = {}
        self.fragments = 0

    @property
    def channels(self) -> int:
        return 2 if self.selection is Selection.ALL else 1

    def _sink(self, rate: int) -> None:
        if self.rate is None:
            self.rate = rate
            if self.selection is Selection.ALL:
                self._stereo = StereoAssembler(rate, origin_ns=self._origin, max_gap_ms=MAX_GAP_MS)
            else:
                self._mono = TrackTimeline(rate, origin_ns=self._origin, max_gap_ms=MAX_GAP_MS)
        elif rate != self.rate:
            raise ValueError(f"sample rate changed from {self.rate} to {rate} Hz mid-stream")

    def add(self, fragment: Fragment) -> bytes:
        """Add a fragment's audio; return the PCM that is now final."""
        self.fragments += 1
        wanted = (
            [(FROM_CUSTOMER, 0), (TO_CUSTOMER, 1)]
            if self.selection is Selection.ALL
            else [(self.selection.value, 0)]
        )
        found = False
        absent: list[int] = []
        for name, channel in wanted:
            track = resolve_track(fragment, name)
            if track is None:
                absent.append(channel)
                continue
            found = True
            fmt = self._format(fragment, track, name)
            self._sink(fmt.rate)
            for frame in fragment.frames:
                if frame.track != track.number:
                    continue
                data = frame.data
                if len(data) % 2 and fmt.encoding.startswith("L16"):
                    data = data[:-1]  # a stray odd byte: keep the call, lose the byte
                pcm = to_pcm16(data, fmt)
                if self._stereo is not None:
                    self._stereo.add(channel, frame.timestamp_ns, pcm)
                elif self._mono is not None:
                    self._mono.add(frame.timestamp_ns, pcm)
        if not found and fragment.frames:
            names = ", ".join(str(t.name) for t in fragment.tracks.values())
            raise ValueError(
                f"fragment {fragment.fragment_number or fragment.index}: no"
                f" {self.selection.value} audio track (tracks: {names})"
            )
        if self._stereo is not None and found and absent:
            # A channel whose track this stream does not have (a Chime leg asked for in
            # stereo) is silence as far as the other has come, so output keeps flowing.
            tracks = self._stereo.tracks
            for channel in absent:
                tracks[channel].pad_to(tracks[1 - channel].samples_written)
        return self.take()

    def _format(self, fragment: Fragment, track: TrackInfo, name: str) -> AudioFormat:
        try:
            fmt = audio_format(fragment, track)
        except AudioFormatError:
            # A fragment without its MimeType tag (Connect sends some) keeps the format
            # the track had before.
            known = self._formats.get(name)
            if known is None or "MimeType" in fragment.tags:
                raise
            return known
        self._formats[name] = fmt
        return fmt

    def take(self) -> bytes:
        """PCM that is final so far."""
        if self._stereo is not None:
            return self._stereo.take()
        if self._mono is not None:
            return self._mono.take()
        return b""

    def finish(self) -> bytes:
        """The remaining PCM (the shorter stereo channel padded with silence)."""
        if self._stereo is not None:
            return self._stereo.finish()
        return self.take()
