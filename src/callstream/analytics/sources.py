"""Call audio for analytics: channels out of KVS streams (live) and out of saved files.

:class:`ChannelFeed` (sans-I/O) turns a GetMedia byte stream into PCM per call channel
as soon as each block arrives, not when its fragment completes: tracks are chosen by name
(Connect's ``AUDIO_FROM_CUSTOMER`` is the caller, ``AUDIO_TO_CUSTOMER`` the agent; a
one-track stream such as a Chime leg is one channel), decoded (L16, G.711) and resampled
to 8 kHz, and placed on the call's timeline (gaps become silence). It notices when the
stream moves on to another call: a fragment whose ``ContactId`` / ``TransactionId`` tag
differs from the call's ends the feed (Connect and Chime pool streams).

:func:`read_call_file` reads a saved call: a WAV (stereo: channel 0 the caller, channel 1
the agent; mono: the caller) or an MKV / GetMedia payload (Connect or Chime tracks). Of a
capture that holds several calls (a pooled stream) the first is read; a capture cut off at
the end gives the audio before the cut. Both set :attr:`CallAudio.warning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callstream.media.extract import AudioFormat, AudioFormatError, audio_format, to_pcm16
from callstream.media.resample import Resampler, resample
from callstream.media.tracks import TrackTimeline
from callstream.mkv.kvs import Fragment, FragmentReader, TrackInfo

__all__ = [
    "CONNECT_TRACKS",
    "RATE",
    "CallAudio",
    "ChannelFeed",
    "SourceError",
    "read_call_file",
]

RATE = 8000
CONNECT_TRACKS = {"AUDIO_FROM_CUSTOMER": "CALLER", "AUDIO_TO_CUSTOMER": "AGENT"}
_CALL_TAGS = ("ContactId", "TransactionId")  # what names the call in a Connect / Chime stream
_MAX_GAP_MS = 600_000.0
"""A timestamp jump past this is corrupt input, not silence to fill (bounded memory)."""
_MAX_RATE = 48_000
"""Call audio beyond this rate is refused (a crafted rate would make gaps expensive)."""
_FAR_NS = 600 * 1_000_000_000


class SourceError(ValueError):
    """Call audio that cannot be analysed (no audio track, unknown format ...)."""


@dataclass(slots=True)
class _Track:
    role: str
    timeline: TrackTimeline
    fmt: AudioFormat
    resampler: Resampler | None = None
    last_ns: int = -1


@dataclass(slots=True)
class ChannelFeed:
    """GetMedia bytes -> (role, PCM) pieces (see the module docstring).

    ``tracks`` maps a track name to its role; the name ``"*"`` takes the stream's first
    audio track whatever it is called. ``origin_ns`` is time zero of the call (shared by
    the call's streams). ``call_tags``: tag values the call's fragments carry (for example
    ``{"ContactId": "c-1"}``); a fragment with another value ends the feed."""

    tracks: Mapping[str, str]
    origin_ns: int
    call_tags: Mapping[str, str] = field(default_factory=dict)
    ended: str | None = None
    """Why the feed ended early (another call's fragment), or None."""
    last_fragment: str | None = None
    """The last complete fragment read (where a reconnect continues after)."""
    _reader: FragmentReader = field(default_factory=FragmentReader)
    _open: Fragment | None = None
    _seen: int = 0
    _state: dict[str, _Track] = field(default_factory=dict)

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """Consume GetMedia bytes; return new PCM per role, in arrival order."""
        if self.ended is not None:
            return []
        out: list[tuple[str, bytes]] = []
        for fragment in self._reader.feed(data):
            start = self._seen if fragment is self._open else 0
            if fragment is self._open:
                self._open, self._seen = None, 0
            if not self._accept(fragment):
                return out
            self._frames(fragment, start, out)
            if fragment.fragment_number:
                self.last_fragment = fragment.fragment_number
        current = self._reader.open_fragment
        if current is not None and current.cluster_timestamp_ns is not None:
            if current is not self._open:
                self._open, self._seen = current, 0
                if not self._accept(current):
                    return out
            self._frames(current, self._seen, out)
            self._seen = len(current.frames)
        return out

    def restart(self) -> None:
        """A new GetMedia connection follows (continuing after :attr:`last_fragment`):
        frames already read are skipped by timestamp."""
        self._reader = FragmentReader()
        self._open, self._seen = None, 0

    def finish(self) -> list[tuple[str, bytes]]:
        """The end: what the resamplers still hold."""
        out: list[tuple[str, bytes]] = []
        for state in self._state.values():
            pcm = state.timeline.take()
            if state.resampler is not None:
                pcm = np.asarray(state.resampler.process(pcm)).tobytes() if pcm else b""
                pcm += np.asarray(state.resampler.flush()).tobytes()
            if pcm:
                out.append((state.role, pcm))
        return out

    def _anchor(self, first_ns: int) -> None:
        """Time zero is the call's start, unless the stream's clock is far from it (a
        producer with RELATIVE timecodes, or no start given): then its first frame."""
        if not self._state and abs(first_ns - self.origin_ns) > _FAR_NS:
            self.origin_ns = first_ns

    def _accept(self, fragment: Fragment) -> bool:
        for key, want in self.call_tags.items():
            got = fragment.tags.get(key)
            if got is not None and got != want:
                self.ended = f"the stream moved on to {key} {got}"
                return False
        return True

    def _track(self, fragment: Fragment, name: str) -> TrackInfo | None:
        if name == "*":  # the first audio track no other name claims
            for track in fragment.tracks.values():
                if (track.codec_id or "").startswith("A_") and track.name not in self.tracks:
                    return track
            return None
        return fragment.track_named(name)

    def _frames(self, fragment: Fragment, start: int, out: list[tuple[str, bytes]]) -> None:
        frames = fragment.frames[start:]
        if not frames:
            return
        for name, role in self.tracks.items():
            track = self._track(fragment, name)
            if track is None:
                continue
            state = self._state.get(name)
            try:
                fmt = audio_format(fragment, track)
            except AudioFormatError:
                if state is None:
                    continue  # a fragment without the MimeType tag: the format comes later
                fmt = state.fmt
            if fmt.rate > _MAX_RATE:
                raise SourceError(f"track {name}: {fmt.rate} Hz is not call audio")
            if state is None:
                self._anchor(frames[0].timestamp_ns)
                state = _Track(
                    role,
                    TrackTimeline(fmt.rate, origin_ns=self.origin_ns, max_gap_ms=_MAX_GAP_MS),
                    fmt,
                    Resampler(fmt.rate, RATE) if fmt.rate != RATE else None,
                )
                self._state[name] = state
            elif fmt.rate != state.fmt.rate:
                raise SourceError(f"track {name}: sample rate changed to {fmt.rate} Hz")
            state.fmt = fmt
            number = track.number
            for frame in frames:
                if frame.track != number or frame.timestamp_ns <= state.last_ns:
                    continue
                state.last_ns = frame.timestamp_ns
                data = frame.data
                if len(data) % 2 and fmt.encoding.startswith("L16"):
                    data = data[:-1]
                state.timeline.add(frame.timestamp_ns, to_pcm16(data, fmt))
            ready = state.timeline.take()
            if ready and state.resampler is not None:
                ready = np.asarray(state.resampler.process(ready)).tobytes()
            if ready:
                out.append((role, ready))


@dataclass(frozen=True, slots=True)
class CallAudio:
    """A saved call's channels (8 kHz s16le; an absent channel is empty)."""

    caller: bytes
    agent: bytes
    warning: str | None = None
    """What is wrong with a file that was still read (an MKV cut off at the end)."""


def read_call_file(path: Path, *, swap: bool = False) -> CallAudio:
    """The channels of a saved call (see the module docstring); ``swap`` exchanges the
    roles. Raises :class:`SourceError` (or ``OSError``) with the reason."""
    data = path.read_bytes()
    if data[:4] == b"RIFF":
        audio = _wav_channels(data, path)
    elif data[:4] == b"\x1a\x45\xdf\xa3":
        audio = _mkv_channels(data, path)
    else:
        raise SourceError(f"{path}: not a WAV or MKV file")
    return CallAudio(audio.agent, audio.caller, audio.warning) if swap else audio


def _wav_channels(data: bytes, path: Path) -> CallAudio:
    from callstream.media.wav import parse_wav

    try:
        wav = parse_wav(data)
    except ValueError as err:
        raise SourceError(f"{path}: {err}") from None
    samples = wav.samples
    if wav.rate != RATE:
        samples = resample(samples, wav.rate, RATE)
    if samples.ndim == 1:
        samples = samples.reshape(-1, 1)
    caller = np.ascontiguousarray(samples[:, 0]).astype("<i2").tobytes()
    agent = b""
    if samples.shape[1] > 1:
        agent = np.ascontiguousarray(samples[:, 1]).astype("<i2").tobytes()
    return CallAudio(caller, agent)


def _mkv_channels(data: bytes, path: Path) -> CallAudio:
    from callstream.mkv.ebml import MkvError

    reader = FragmentReader()
    notes: list[str] = []
    try:
        fragments = reader.feed(data)
    except MkvError as err:
        raise SourceError(f"{path}: {err}") from None
    try:
        fragments += reader.close()
    except MkvError as err:
        # cut off at the end (a GetMedia download stopped mid-fragment): what arrived whole
        # is still the call, as `callstream inspect` and `get-audio` read such captures
        if not any(f.frames for f in err.fragments + fragments):
            raise SourceError(f"{path}: {err}") from None
        fragments += err.fragments
        notes.append(f"{err} (the audio before it was read)")
    # a pooled stream's capture holds call after call: the first one is the call, as for
    # `get-audio` (the same rule as a live feed: another ContactId/TransactionId ends it)
    call = _call_tags(fragments)
    for i, fragment in enumerate(fragments):
        other = {k: fragment.tags.get(k, v) for k, v in call.items()}
        if other != call:
            moved = ", ".join(f"{k} {v}" for k, v in other.items())
            notes.append(f"fragment {i} is another call ({moved}): only the first was read")
            fragments = fragments[:i]
            break
    starts = [f.start_ns for f in fragments if f.start_ns is not None]
    if not starts:
        raise SourceError(f"{path}: no audio frames")
    connect = any(f.track_named("AUDIO_FROM_CUSTOMER") for f in fragments)
    feed = ChannelFeed(CONNECT_TRACKS if connect else {"*": "CALLER"}, min(starts), call)
    out: list[tuple[str, bytes]] = []
    try:
        for fragment in fragments:
            feed._frames(fragment, 0, out)
    except ValueError as err:  # a corrupt timestamp jump or sample format
        raise SourceError(f"{path}: {err}") from None
    pieces: dict[str, list[bytes]] = {"CALLER": [], "AGENT": []}
    for role, pcm in out + feed.finish():
        pieces[role].append(pcm)
    if not pieces["CALLER"] and not pieces["AGENT"]:
        raise SourceError(f"{path}: no audio track (tracks: {_names(fragments)})")
    warning = f"{path}: {'; '.join(notes)}" if notes else None
    return CallAudio(b"".join(pieces["CALLER"]), b"".join(pieces["AGENT"]), warning)


def _call_tags(fragments: list[Fragment]) -> dict[str, str]:
    """The tag naming the call of the first fragment that has one."""
    for fragment in fragments:
        for key in _CALL_TAGS:
            value = fragment.tags.get(key)
            if value:
                return {key: value}
    return {}


def _names(fragments: list[Fragment]) -> str:
    names = {str(t.name) for f in fragments for t in f.tracks.values()}
    return ", ".join(sorted(names)) or "none"
