"""Build KVS-shaped MKV streams from audio, sans-I/O.

A :class:`KvsProducer` turns PCM into the bytes a KVS producer SDK uploads with PutMedia
(kvs-wire §2.1, §2.6): :meth:`~KvsProducer.header` (EBML header, unknown-size Segment,
Info, Tracks) once, then one :meth:`~KvsProducer.fragment` per Cluster, each preceded by
the fragment metadata that belongs to it (PIC style: every item its own
``Tags > Tag > SimpleTag`` with 8-byte sizes, placed right before its Cluster)::

    producer = connect_producer(contact_id="c-1", instance_id="i-1")
    audio = read_connect_audio("call.wav")            # {track name: 16-bit LE PCM}
    for chunk in produce(producer, audio):            # header, then one chunk per fragment
        sink.write(chunk.data)

Shapes:

* **Connect** (kvs-wire §6): tracks ``AUDIO_FROM_CUSTOMER`` and ``AUDIO_TO_CUSTOMER``,
  8 kHz 16-bit L16 mono each. The default ``codec="connect"`` copies the real profile
  (CodecID ``A_AAC``, CodecPrivate ``11 90``, no Audio master, the sample format only in
  the ``MimeType`` tag); ``codec="pcm"`` declares ``A_PCM/INT/LIT`` with an Audio master.
  ``swap_tracks=True`` makes track 1 ``AUDIO_TO_CUSTOMER`` (real track order is not fixed).
* **Chime Voice Connector** (kvs-wire §7): one mono track per call leg, persistent tags
  ``TransactionId``, ``VoiceConnectorId``, ``CallId``.

Nothing here sleeps or reads a clock except where a default start time is needed; pacing
lives at the edge in :func:`pace`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np

from callstream import __version__
from callstream.media.pcm import samples_to_pcm
from callstream.media.wav import WavAudio, read_wav
from callstream.mkv import writer
from callstream.mkv.writer import TrackSpec

__all__ = [
    "AUDIO_FROM_CUSTOMER",
    "AUDIO_TO_CUSTOMER",
    "CONNECT_CODEC_PRIVATE",
    "Chunk",
    "KvsProducer",
    "StreamBuilder",
    "TimecodeType",
    "chime_producer",
    "connect_producer",
    "pace",
    "produce",
    "read_chime_audio",
    "read_connect_audio",
]

AUDIO_FROM_CUSTOMER = "AUDIO_FROM_CUSTOMER"
AUDIO_TO_CUSTOMER = "AUDIO_TO_CUSTOMER"
CONNECT_CODEC_PRIVATE = bytes.fromhex("1190")
"""The AAC AudioSpecificConfig Connect declares (AAC-LC, 8 kHz, mono) over raw L16 PCM."""

TimecodeType = Literal["ABSOLUTE", "RELATIVE"]

MAX_METADATA_ITEMS = 10
MAX_METADATA_NAME_BYTES = 128
MAX_METADATA_VALUE_BYTES = 256
_PIC_SIZE_WIDTH = 8

WavSource = str | os.PathLike[str] | BinaryIO | WavAudio


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a produced stream.

    ``offset_ms`` is the media time (ms since the start of the stream's audio) at which the
    chunk may be released by a real-time sender: 0 for the header, the end of its audio for
    a fragment. ``timecode`` is the Cluster Timecode a fragment carries (what PutMedia acks
    echo as ``FragmentTimecode``); ``None`` for the header.
    """

    data: bytes
    offset_ms: int
    kind: Literal["header", "fragment"]
    timecode: int | None = None
    start_ms: int | None = None
    """Producer timestamp (epoch ms) of a fragment's first frame."""


class KvsProducer:
    """Sans-I/O builder of a KVS PutMedia byte stream for PCM audio tracks.

    ``tracks`` are declared in Tracks in the order given; each needs a ``name`` (blocks are
    addressed by name or number). Audio is 16-bit little-endian PCM, mono per track, at
    ``sample_rate``; it is cut into frames of ``frame_ms`` (one SimpleBlock each) and the
    blocks of all tracks are interleaved in time order.

    Timecodes (TimecodeScale 1 ms): with ``timecode_type="ABSOLUTE"`` a Cluster Timecode is
    the fragment's epoch-ms producer timestamp; with ``"RELATIVE"`` it is that timestamp
    minus :attr:`producer_start_ms` (sent as ``x-amzn-producer-start-timestamp``).
    """

    def __init__(
        self,
        tracks: Iterable[TrackSpec],
        *,
        sample_rate: int = 8000,
        frame_ms: int = 20,
        timecode_type: TimecodeType = "ABSOLUTE",
        producer_start_ms: int | None = None,
        persistent_tags: Mapping[str, str] | None = None,
        title: str | None = "Kinesis Video SDK",
        muxing_app: str = f"callstream {__version__}",
        writing_app: str = f"callstream {__version__}",
        unknown_size_clusters: bool = False,
        keyframes: bool = True,
    ) -> None:
        specs = list(tracks)
        if not specs:
            raise ValueError("a stream needs at least one track")
        numbers = [t.number for t in specs]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"duplicate track numbers {numbers}")
        names = [t.name for t in specs if t.name is not None]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate track names {names}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if frame_ms <= 0 or (sample_rate * frame_ms) % 1000:
            raise ValueError(f"frame_ms={frame_ms} is not a whole number of samples")
        if timecode_type not in ("ABSOLUTE", "RELATIVE"):
            raise ValueError(f"timecode_type must be ABSOLUTE or RELATIVE, not {timecode_type!r}")
        self.tracks: tuple[TrackSpec, ...] = tuple(sorted(specs, key=lambda t: t.number))
        self._declared = tuple(specs)
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self.timecode_type: TimecodeType = timecode_type
        self.producer_start_ms = _now_ms() if producer_start_ms is None else producer_start_ms
        self.title = title
        self.muxing_app = muxing_app
        self.writing_app = writing_app
        self.unknown_size_clusters = unknown_size_clusters
        self.keyframes = keyframes
        self._by_name = {t.name: t.number for t in specs if t.name is not None}
        self._persistent: dict[str, str] = {}
        self._once: list[tuple[str, str]] = []
        self._last_timecode: int | None = None
        for name, value in (persistent_tags or {}).items():
            self.put_metadata(name, value, persistent=True)

    # --- metadata -------------------------------------------------------------------------
    def put_metadata(self, name: str, value: str, *, persistent: bool = False) -> None:
        """Queue fragment metadata, as PutFragmentMetadata does (kvs-wire §2.6).

        A non-persistent item goes before the next fragment once; a persistent one before
        every following fragment until it is re-put with an empty value (which cancels it).
        Raises :class:`ValueError` for names starting with ``AWS``, names over 128 bytes,
        values over 256 bytes, or more than 10 items per fragment.
        """
        if not name:
            raise ValueError("metadata name must not be empty")
        if name.startswith("AWS"):
            raise ValueError(f"metadata name {name!r} must not start with 'AWS'")
        if len(name.encode()) > MAX_METADATA_NAME_BYTES:
            raise ValueError(f"metadata name {name!r} is over {MAX_METADATA_NAME_BYTES} bytes")
        if len(value.encode()) > MAX_METADATA_VALUE_BYTES:
            raise ValueError(f"metadata value for {name!r} is over 256 bytes")
        if persistent:
            if value == "":
                self._persistent.pop(name, None)
                return
            self._persistent[name] = value
        else:
            self._once.append((name, value))
        if len(self._persistent) + len(self._once) > MAX_METADATA_ITEMS:
            raise ValueError(f"more than {MAX_METADATA_ITEMS} metadata items for one fragment")

    @property
    def persistent_metadata(self) -> dict[str, str]:
        """The persistent metadata currently attached to every fragment."""
        return dict(self._persistent)

    # --- stream pieces --------------------------------------------------------------------
    def header(self) -> bytes:
        """EBML header, unknown-size Segment, Info and Tracks: the start of every upload
        (sent again after a reconnect)."""
        return b"".join(
            (
                writer.ebml_header(doc_type_version=2),
                writer.segment_start(),
                writer.info(
                    title=self.title, muxing_app=self.muxing_app, writing_app=self.writing_app
                ),
                writer.tracks(self._declared),
            )
        )

    def timecode_for(self, start_ms: int) -> int:
        """The Cluster Timecode of a fragment whose producer timestamp is ``start_ms``."""
        if self.timecode_type == "ABSOLUTE":
            return start_ms
        tc = start_ms - self.producer_start_ms
        if tc < 0:
            raise ValueError(
                f"fragment start {start_ms} is before the producer start {self.producer_start_ms}"
            )
        return tc

    def track_number(self, key: str | int) -> int:
        """The track number for a track name or number."""
        if isinstance(key, int):
            if key not in {t.number for t in self.tracks}:
                raise KeyError(f"no track number {key}")
            return key
        try:
            return self._by_name[key]
        except KeyError:
            raise KeyError(f"no track named {key!r}") from None

    def fragment(self, pcm_by_track: Mapping[str | int, bytes], start_ms: int) -> bytes:
        """One fragment: its metadata Tags then a Cluster of the given audio.

        ``pcm_by_track`` maps track names (or numbers) to 16-bit LE PCM; ``start_ms`` is the
        epoch-ms producer timestamp of the first sample. Tracks may be omitted or shorter
        than others (KVS rejects a fragment missing a declared track with
        FRAMES_MISSING_FOR_TRACK, so :func:`produce` always fills every track).
        """
        timecode = self.timecode_for(start_ms)
        if self._last_timecode is not None and timecode <= self._last_timecode:
            raise ValueError(
                f"fragment timecode {timecode} is not after the previous one "
                f"({self._last_timecode})"
            )
        blocks: list[tuple[int, int, bytes]] = []  # (relative ms, track, data)
        step = self.frame_samples * 2
        rate = self.sample_rate
        for key, pcm in pcm_by_track.items():
            number = self.track_number(key)
            if len(pcm) % 2:
                raise ValueError(f"track {key!r}: 16-bit PCM needs an even byte count")
            for i, off in enumerate(range(0, len(pcm), step)):
                rel = (i * self.frame_samples * 1000) // rate
                blocks.append((rel, number, bytes(pcm[off : off + step])))
        if not blocks:
            raise ValueError("a fragment needs at least one frame")
        blocks.sort(key=lambda b: (b[0], b[1]))
        if blocks[-1][0] > 32767:
            raise ValueError("a fragment longer than 32.767 s does not fit int16 block timecodes")
        encoded = [
            writer.simple_block(track, rel, data, keyframe=self.keyframes)
            for rel, track, data in blocks
        ]
        cluster = writer.cluster(
            timecode,
            encoded,
            unknown_size=self.unknown_size_clusters,
            position=0 if self.unknown_size_clusters else None,
        )
        self._last_timecode = timecode
        return self._metadata_tags() + cluster

    def cluster_start(self, start_ms: int) -> bytes:
        """A fragment built frame by frame (:meth:`block`): its metadata Tags, then an
        unknown-size Cluster with the Timecode of ``start_ms`` (epoch ms), as the
        producer SDKs send a live fragment. The fragment ends where the next Cluster (or
        the stream) begins. This makes the producer a
        :class:`~callstream.store.writers.FrameEncoder`."""
        timecode = self.timecode_for(start_ms)
        if self._last_timecode is not None and timecode <= self._last_timecode:
            raise ValueError(
                f"fragment timecode {timecode} is not after the previous one "
                f"({self._last_timecode})"
            )
        self._last_timecode = timecode
        return self._metadata_tags() + writer.cluster(timecode, [], unknown_size=True, position=0)

    def block(self, track: str | int, relative_ms: int, data: bytes) -> bytes:
        """One frame of ``track``, ``relative_ms`` after its Cluster's start (a signed
        16-bit block timecode: -32768 .. 32767 ms)."""
        return writer.simple_block(
            self.track_number(track), relative_ms, data, keyframe=self.keyframes
        )

    def _metadata_tags(self) -> bytes:
        items = list(self._persistent.items()) + self._once
        self._once = []
        return b"".join(writer.tags([item], size_width=_PIC_SIZE_WIDTH) for item in items)


StreamBuilder = KvsProducer
"""Alias of :class:`KvsProducer`."""


# --- shapes ---------------------------------------------------------------------------------
def connect_producer(
    *,
    contact_id: str,
    instance_id: str,
    codec: Literal["connect", "pcm"] = "connect",
    swap_tracks: bool = False,
    sample_rate: int = 8000,
    frame_ms: int = 20,
    timecode_type: TimecodeType = "ABSOLUTE",
    producer_start_ms: int | None = None,
    extra_tags: Mapping[str, str] | None = None,
    unknown_size_clusters: bool = False,
) -> KvsProducer:
    """A producer of the Amazon Connect live-media-streaming shape (kvs-wire §6).

    Persistent tags: ``ContactId``, ``InstanceId``, ``MimeType``
    (``audio/L16;rate=8000;channels=1;``), ``AUDIO_FROM_CUSTOMER`` and ``AUDIO_TO_CUSTOMER``
    (their values are the track numbers), then ``extra_tags``. Connect itself uses 64 ms
    frames (``frame_ms=64``, 1024 bytes); the default 20 ms is finer-grained.
    """
    numbers = {AUDIO_FROM_CUSTOMER: 1, AUDIO_TO_CUSTOMER: 2}
    if swap_tracks:
        numbers = {AUDIO_FROM_CUSTOMER: 2, AUDIO_TO_CUSTOMER: 1}
    specs = [
        _audio_track(numbers[name], name, codec, sample_rate)
        for name in sorted(numbers, key=lambda n: numbers[n])
    ]
    tags = {
        "ContactId": contact_id,
        "InstanceId": instance_id,
        "MimeType": f"audio/L16;rate={sample_rate};channels=1;",
        AUDIO_FROM_CUSTOMER: str(numbers[AUDIO_FROM_CUSTOMER]),
        AUDIO_TO_CUSTOMER: str(numbers[AUDIO_TO_CUSTOMER]),
    }
    tags.update(extra_tags or {})
    return KvsProducer(
        specs,
        sample_rate=sample_rate,
        frame_ms=frame_ms,
        timecode_type=timecode_type,
        producer_start_ms=producer_start_ms,
        persistent_tags=tags,
        unknown_size_clusters=unknown_size_clusters,
    )


def chime_producer(
    *,
    transaction_id: str,
    voice_connector_id: str,
    call_id: str,
    track_name: str = "AUDIO",
    codec: Literal["connect", "pcm"] = "pcm",
    sample_rate: int = 8000,
    frame_ms: int = 20,
    timecode_type: TimecodeType = "ABSOLUTE",
    producer_start_ms: int | None = None,
    extra_tags: Mapping[str, str] | None = None,
    unknown_size_clusters: bool = False,
) -> KvsProducer:
    """A producer of one Chime Voice Connector call leg (kvs-wire §7): one mono L16 track
    and persistent tags ``TransactionId``, ``VoiceConnectorId``, ``CallId`` (+ ``extra_tags``).

    The real track name and codec declaration of Chime streams are not documented; the
    defaults (``AUDIO``, ``A_PCM/INT/LIT``) are callstream's choice.
    """
    tags = {
        "TransactionId": transaction_id,
        "VoiceConnectorId": voice_connector_id,
        "CallId": call_id,
    }
    tags.update(extra_tags or {})
    return KvsProducer(
        [_audio_track(1, track_name, codec, sample_rate)],
        sample_rate=sample_rate,
        frame_ms=frame_ms,
        timecode_type=timecode_type,
        producer_start_ms=producer_start_ms,
        persistent_tags=tags,
        unknown_size_clusters=unknown_size_clusters,
    )


def _audio_track(number: int, name: str, codec: str, sample_rate: int) -> TrackSpec:
    if codec == "connect":
        return TrackSpec(
            number=number, name=name, codec_id="A_AAC", codec_private=CONNECT_CODEC_PRIVATE
        )
    if codec == "pcm":
        return TrackSpec(
            number=number,
            name=name,
            codec_id="A_PCM/INT/LIT",
            sampling_rate=float(sample_rate),
            channels=1,
            bit_depth=16,
        )
    raise ValueError(f"codec must be 'connect' or 'pcm', not {codec!r}")


# --- audio sources --------------------------------------------------------------------------
def _load(source: WavSource, sample_rate: int) -> WavAudio:
    audio = source if isinstance(source, WavAudio) else read_wav(source)
    if audio.rate != sample_rate:
        from callstream.media.resample import resample

        samples = resample(audio.samples, audio.rate, sample_rate)
        if samples.ndim == 1:
            samples = samples.reshape(-1, 1)
        audio = WavAudio(rate=sample_rate, channels=audio.channels, samples=samples)
    return audio


def _channel(audio: WavAudio, index: int) -> bytes:
    return samples_to_pcm(np.ascontiguousarray(audio.samples[:, index]))


def read_connect_audio(
    wav: WavSource, to_customer: WavSource | None = None, *, sample_rate: int = 8000
) -> dict[str, bytes]:
    """Audio for the Connect shape as ``{track name: 16-bit LE PCM}``.

    * one stereo WAV: channel 0 -> ``AUDIO_FROM_CUSTOMER``, channel 1 -> ``AUDIO_TO_CUSTOMER``;
    * one mono WAV: ``AUDIO_FROM_CUSTOMER`` (``AUDIO_TO_CUSTOMER`` is filled with silence by
      :func:`produce`);
    * two mono WAVs: ``wav`` is the customer, ``to_customer`` what the customer hears.

    Other sample rates are resampled to ``sample_rate``.
    """
    first = _load(wav, sample_rate)
    if to_customer is not None:
        second = _load(to_customer, sample_rate)
        if first.channels != 1 or second.channels != 1:
            raise ValueError("with two WAV files both must be mono")
        return {AUDIO_FROM_CUSTOMER: _channel(first, 0), AUDIO_TO_CUSTOMER: _channel(second, 0)}
    if first.channels == 1:
        return {AUDIO_FROM_CUSTOMER: _channel(first, 0), AUDIO_TO_CUSTOMER: b""}
    if first.channels == 2:
        return {AUDIO_FROM_CUSTOMER: _channel(first, 0), AUDIO_TO_CUSTOMER: _channel(first, 1)}
    raise ValueError(f"expected a mono or stereo WAV, got {first.channels} channels")


def read_chime_audio(
    wav: WavSource, *, track_name: str = "AUDIO", sample_rate: int = 8000
) -> dict[str, bytes]:
    """Audio for one Chime call leg: a mono WAV as ``{track_name: PCM}``."""
    audio = _load(wav, sample_rate)
    if audio.channels != 1:
        raise ValueError(f"a Chime call leg is mono, got {audio.channels} channels")
    return {track_name: _channel(audio, 0)}


# --- whole streams --------------------------------------------------------------------------
def produce(
    producer: KvsProducer,
    audio: Mapping[str | int, bytes],
    *,
    start_ms: int | None = None,
    fragment_ms: int = 1000,
    header: bool = True,
) -> Iterator[Chunk]:
    """The whole stream for ``audio`` (``{track name or number: PCM}``): the header, then one
    fragment per ``fragment_ms`` of audio.

    Every declared track gets frames in every fragment: a track missing from ``audio`` or
    shorter than the longest is padded with silence. ``start_ms`` (epoch ms of the first
    sample) defaults to the producer's start timestamp. Fragment start times are derived
    from sample positions, so they never drift.
    """
    if fragment_ms <= 0 or (producer.sample_rate * fragment_ms) % 1000:
        raise ValueError(f"fragment_ms={fragment_ms} is not a whole number of samples")
    start = producer.producer_start_ms if start_ms is None else start_ms
    rate = producer.sample_rate
    pcm: dict[int, bytes] = {t.number: b"" for t in producer.tracks}
    for key, data in audio.items():
        if len(data) % 2:
            raise ValueError(f"track {key!r}: 16-bit PCM needs an even byte count")
        pcm[producer.track_number(key)] = bytes(data)
    total = max(len(d) for d in pcm.values())
    if header:
        yield Chunk(producer.header(), 0, "header")
    step = rate * fragment_ms // 1000 * 2
    for off in range(0, total, step):
        end = min(off + step, total)
        parts: dict[str | int, bytes] = {}
        for number, data in pcm.items():
            piece = data[off:end]
            if len(piece) < end - off:
                piece += bytes(end - off - len(piece))
            parts[number] = piece
        begin_ms = start + (off // 2) * 1000 // rate
        data = producer.fragment(parts, begin_ms)
        yield Chunk(
            data,
            (end // 2) * 1000 // rate,
            "fragment",
            timecode=producer.timecode_for(begin_ms),
            start_ms=begin_ms,
        )


async def pace(
    chunks: Iterable[Chunk],
    *,
    realtime: bool = True,
    speed: float = 1.0,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[object]] | None = None,
) -> AsyncIterator[bytes]:
    """Release produced chunks as an async byte stream (the input of ``put_media``).

    With ``realtime=True`` each chunk is held until its audio would have been spoken
    (``offset_ms / speed`` after the first chunk was taken); otherwise everything is
    released as fast as the consumer takes it. ``clock``/``sleep`` default to the running
    loop's monotonic clock and :func:`asyncio.sleep`.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    loop = asyncio.get_running_loop()
    now = clock or loop.time
    wait = sleep or asyncio.sleep
    t0: float | None = None
    for chunk in chunks:
        if realtime:
            if t0 is None:
                t0 = now()
            delay = t0 + chunk.offset_ms / 1000 / speed - now()
            if delay > 0:
                await wait(delay)
        yield chunk.data
