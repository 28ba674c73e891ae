"""Per-leg jitter buffer: RTP packets in, a contiguous 8 kHz PCM timeline out (sans-I/O).

One :class:`JitterBuffer` per call leg. :meth:`JitterBuffer.push` takes a parsed
:class:`~callstream.voice.rtp.RtpPacket` and its arrival time (milliseconds on any
monotonic clock the caller keeps) and returns the :class:`Chunk` list that became final;
:meth:`~JitterBuffer.advance` and :meth:`~JitterBuffer.flush` release the rest. Nothing
here reads a clock or a socket: the same inputs always give the same output.

Semantics
---------
* **Contiguous output.** Each chunk starts exactly where the previous one ended; the first
  starts at the leg's anchor (or at 0 when :meth:`~JitterBuffer.advance` ran before any
  packet). Writing the chunks back to back keeps stream time true. Positions are sample
  counts at 8 kHz on the call's timeline; :attr:`~JitterBuffer.position` is the end of the
  last chunk and never moves backwards. Audio is never written twice for one position.
* **Anchor.** The first audio packet sits at ``start`` when given (the orchestrator aligns
  both legs of a call on one timeline from arrival times), else at 0 (or at
  :attr:`~JitterBuffer.position` if that is already further). Later packets of the same
  SSRC sit at ``anchor + (extended timestamp - first extended timestamp)``, scaled from
  ``clock_rate`` to 8 kHz; timestamps (32-bit) and sequence numbers (16-bit) are extended
  across wraps as in RFC 3550 A.1. ``start`` is only read when a packet (re-)anchors.
  A packet that arrives after the anchor packet but precedes it in sequence is late.
* **Reordering.** The next expected packet (by sequence number) is released at once, so a
  loss-free stream adds no latency. A packet ahead of it is held until the missing ones
  arrive, or until the held span exceeds ``reorder_ms`` (the newest held packet starts
  more than ``reorder_ms`` after the first missing sample, or the oldest held packet
  arrived more than ``reorder_ms`` ago) or more than ``max_packets`` are held; then the
  missing packets are declared lost (counter ``lost``) and their time becomes silence.
* **Drops.** A packet whose sequence number was already released or is held is a
  duplicate (``duplicates``); one that was declared lost, precedes the anchor packet, or
  lies entirely before :attr:`~JitterBuffer.position` is late (``late``). A packet that
  starts before :attr:`~JitterBuffer.position` but ends after it (decoded length longer
  than the timestamp spacing, or time already filled by :meth:`~JitterBuffer.advance`) is
  trimmed: only its new part is written (``trimmed_samples``).
* **Gaps.** A timestamp gap (silence suppression, DTX, a hold where the sender keeps its
  timestamp clock running) becomes silence chunks, so stream time stays true. Silence is
  emitted in pieces of at most 1 s (:data:`SILENCE_PIECE`), sharing cached zero bytes.
* **Resync.** When the SSRC changes (re-INVITE, transfer), when the sequence number jumps
  by more than 3000 forward or 100 backward twice in a row (a restarted sender, RFC 3550
  A.1), or when the position an audio packet's timestamp implies differs by more than
  ``resync_ms`` from the position its arrival implies (``reference position + (arrival -
  reference arrival) * 8``, the reference being the last anchor packet), the buffer
  releases what it holds and re-anchors the packet at ``max(arrival-derived position,
  position)`` (or ``max(start, position)`` when ``start`` is given), counting ``resyncs``.
  That covers a sender that restarts its timestamps and one that pauses without
  advancing them. A network stall longer than ``resync_ms`` also resyncs (the delayed
  packets are placed by arrival). The first packet of a big sequence jump is dropped
  (``bad_sequence``) unless the next one confirms it.
* **Bounded memory and silence.** At most ``max_packets`` packets are held. Silence is
  only emitted up to a packet that is within ``resync_ms`` of real time (arrival), or up
  to the position the caller passes to :meth:`~JitterBuffer.advance`; a giant timestamp
  jump is a resync, not a giant silence.
* **Other payload types.** Types in ``ignored_payload_types`` (telephone-event RFC 4733,
  CN 13) and types without a decoder are counted (``ignored``) and not written, but
  still take their place in the sequence: the time they cover becomes silence once the
  next audio packet arrives. They never anchor a leg nor trigger a resync; ones from
  another SSRC than the current audio are dropped outright.

Every pushed packet ends up in exactly one of ``decoded``, ``duplicates``, ``late``,
``ignored``, ``bad_sequence`` or :attr:`~JitterBuffer.held`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Final

from callstream.voice.codecs import silence
from callstream.voice.rtp import RtpPacket

__all__ = ["SAMPLE_RATE", "SILENCE_PIECE", "Chunk", "JitterBuffer"]

SAMPLE_RATE: Final = 8000
"""Output sample rate of every leg (8 kHz mono 16-bit LE PCM)."""
SILENCE_PIECE: Final = SAMPLE_RATE
"""Longest silence chunk, in samples (1 s)."""

_PER_MS: Final = SAMPLE_RATE // 1000
_MAX_DROPOUT: Final = 3000
_MAX_MISORDER: Final = 100
_MAX_LOST_TRACKED: Final = 4096

# A held packet: (position, payload, decoder or None for a non-audio packet, arrival ms).
_Held = tuple[int, bytes, Callable[[bytes], bytes] | None, float]


@dataclass(slots=True)
class Chunk:
    """A run of output PCM: ``pcm`` (16-bit LE mono, 8 kHz) starting at sample ``start``."""

    start: int
    pcm: bytes
    silence: bool

    @property
    def samples(self) -> int:
        """Number of samples in ``pcm``."""
        return len(self.pcm) >> 1

    @property
    def end(self) -> int:
        """Sample position just past this chunk (where the next one starts)."""
        return self.start + (len(self.pcm) >> 1)


class JitterBuffer:
    """Reorder, loss and gap handling for one call leg (see the module docstring).

    ``decoders`` maps RTP payload types to payload -> 8 kHz PCM decoders
    (:func:`callstream.voice.codecs.decoder_for`); ``ignored_payload_types`` are types
    known not to be audio (telephone-event, CN); ``clock_rate`` is the RTP timestamp rate.
    """

    __slots__ = (
        "_anchor",
        "_arrival_base",
        "_bad_seq",
        "_base_ts",
        "_decoders",
        "_expected",
        "_first_seq",
        "_held",
        "_held_max_pos",
        "_held_since",
        "_ignored_types",
        "_lost_seqs",
        "_max_packets",
        "_max_seq",
        "_position",
        "_rate",
        "_reorder_ms",
        "_reorder_samples",
        "_resync_samples",
        "_ssrc",
        "_started",
        "_ts_offset",
        "_ts_ref",
        "bad_sequence",
        "decoded",
        "duplicates",
        "ignored",
        "late",
        "lost",
        "received",
        "reordered",
        "resyncs",
        "silence_samples",
        "trimmed_samples",
    )

    def __init__(
        self,
        *,
        decoders: Mapping[int, Callable[[bytes], bytes]],
        ignored_payload_types: Collection[int] = (),
        clock_rate: int = 8000,
        reorder_ms: int = 60,
        resync_ms: int = 1000,
        max_packets: int = 100,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be positive, got {clock_rate}")
        if reorder_ms < 0 or resync_ms <= 0 or max_packets < 1:
            raise ValueError(
                f"need reorder_ms >= 0, resync_ms > 0, max_packets >= 1; got {reorder_ms}, "
                f"{resync_ms}, {max_packets}"
            )
        self._decoders: dict[int, Callable[[bytes], bytes]] = dict(decoders)
        self._ignored_types = frozenset(ignored_payload_types)
        self._rate = clock_rate
        self._reorder_ms = reorder_ms
        self._reorder_samples = reorder_ms * SAMPLE_RATE // 1000
        self._resync_samples = resync_ms * SAMPLE_RATE // 1000
        self._max_packets = max_packets
        self._position = 0
        self._started = False
        self._ssrc: int | None = None
        self._anchor = 0
        self._base_ts = 0
        self._ts_ref = 0
        self._ts_offset = 0  # anchor - first extended timestamp (clock_rate 8000)
        self._arrival_base = 0.0  # arrival-derived position = arrival_ms * 8 + this
        self._max_seq = 0
        self._expected = 0
        self._first_seq = 0
        self._bad_seq = -1
        self._held: dict[int, _Held] = {}
        self._held_max_pos = 0
        self._held_since = 0.0
        self._lost_seqs: set[int] = set()
        #: Packets pushed.
        self.received = 0
        #: Audio packets written (at least in part).
        self.decoded = 0
        #: Packets dropped because their sequence number was released or held already.
        self.duplicates = 0
        #: Packets dropped because their time was already written (or declared lost).
        self.late = 0
        #: Packets declared lost (never arrived in time).
        self.lost = 0
        #: Packets that arrived after one with a higher sequence number and were used.
        self.reordered = 0
        #: Re-anchors (SSRC change, sequence restart, timestamp/arrival disagreement).
        self.resyncs = 0
        #: Non-audio packets: ignored payload types (DTMF, CN) and types without a decoder.
        self.ignored = 0
        #: Packets dropped as the unconfirmed first packet of a big sequence jump.
        self.bad_sequence = 0
        #: Silence written, in samples.
        self.silence_samples = 0
        #: Samples cut from the front of packets overlapping audio already written.
        self.trimmed_samples = 0

    @property
    def position(self) -> int:
        """Sample position just past the last emitted chunk (the next chunk's start)."""
        return self._position

    @property
    def held(self) -> int:
        """Packets currently held for reordering."""
        return len(self._held)

    @property
    def ssrc(self) -> int | None:
        """SSRC of the current audio source (``None`` before the first audio packet)."""
        return self._ssrc

    def arrival_position(self, now_ms: float) -> int | None:
        """The position real time has reached at ``now_ms`` by this leg's arrival clock.

        That is the last anchor packet's position plus the time elapsed since it arrived
        (``None`` before the first audio packet). To keep a silent leg (hold, DTX,
        one-way audio) in step, call ``advance(arrival_position(now) - allowance)`` with
        an allowance of at least ``reorder_ms`` plus the network jitter: time that
        :meth:`advance` fills is final, so a packet still in flight for it is cut.
        """
        if self._ssrc is None:
            return None
        return round(now_ms * _PER_MS + self._arrival_base)

    def counters(self) -> dict[str, int]:
        """All counters by name (for logs and stream detail records)."""
        return {
            "received": self.received,
            "decoded": self.decoded,
            "duplicates": self.duplicates,
            "late": self.late,
            "lost": self.lost,
            "reordered": self.reordered,
            "resyncs": self.resyncs,
            "ignored": self.ignored,
            "bad_sequence": self.bad_sequence,
            "silence_samples": self.silence_samples,
            "trimmed_samples": self.trimmed_samples,
        }

    # -- input -------------------------------------------------------------------------

    def push(
        self, packet: RtpPacket, arrival_ms: float, *, start: int | None = None
    ) -> list[Chunk]:
        """Take one packet that arrived at ``arrival_ms``; return the chunks now final.

        ``start`` is the sample position for the packet if it (re-)anchors the leg (the
        first audio packet, a new SSRC, a resync); it is ignored otherwise.
        """
        self.received += 1
        decoder = self._decoders.get(packet.payload_type)
        if decoder is None:
            return self._push_other(packet, arrival_ms)
        if packet.ssrc != self._ssrc:
            return self._reanchor(packet, decoder, arrival_ms, start)
        seq = packet.sequence
        max_seq = self._max_seq
        delta = ((seq - max_seq + 0x8000) & 0xFFFF) - 0x8000
        if delta > _MAX_DROPOUT or delta < -_MAX_MISORDER:
            if seq == self._bad_seq:
                return self._reanchor(packet, decoder, arrival_ms, start)
            self._bad_seq = (seq + 1) & 0xFFFF
            self.bad_sequence += 1
            return []
        ext = max_seq + delta
        if self._stale(ext):
            return []
        expected = self._expected
        held = self._held
        ts_ref = self._ts_ref
        ext_ts = ts_ref + (((packet.timestamp - ts_ref + 0x80000000) & 0xFFFFFFFF) - 0x80000000)
        if self._rate == SAMPLE_RATE:
            pos = ext_ts + self._ts_offset
        else:
            pos = self._anchor + (ext_ts - self._base_ts) * SAMPLE_RATE // self._rate
        drift = pos - arrival_ms * _PER_MS - self._arrival_base
        if drift > self._resync_samples or -drift > self._resync_samples:
            return self._reanchor(packet, decoder, arrival_ms, start)
        self._ts_ref = ext_ts
        if delta > 0:
            self._max_seq = ext
        elif delta < 0:
            self.reordered += 1
        if ext == expected and not held:
            # Fast path: the next packet, nothing held.
            self._expected = ext + 1
            pcm = decoder(packet.payload)
            position = self._position
            if pos == position and pcm:
                self._position = position + (len(pcm) >> 1)
                self.decoded += 1
                return [Chunk(position, pcm, False)]
            out: list[Chunk] = []
            self._write(pos, pcm, out)
            return out
        out = []
        if ext == expected:
            self._expected = ext + 1
            self._write(pos, decoder(packet.payload), out)
            self._drain(out)
        else:
            if not held:
                self._held_since = arrival_ms
                self._held_max_pos = pos
            elif pos > self._held_max_pos:
                self._held_max_pos = pos
            held[ext] = (pos, packet.payload, decoder, arrival_ms)
        if held:
            self._check_held(arrival_ms, out)
        return out

    def advance(self, until: int) -> list[Chunk]:
        """Fill silence up to sample position ``until``.

        Held packets that start before ``until`` are released first (the packets missing
        before them declared lost); then the time up to ``until`` that is neither written
        nor covered by a held packet becomes silence. A packet arriving later for time
        before ``until`` is trimmed or late, so keep ``until`` behind real time by the
        jitter allowance (see :meth:`arrival_position`). Call it when real time has passed
        with no packets (hold, DTX, one-way audio) so the leg keeps pace with its call.
        """
        out: list[Chunk] = []
        held = self._held
        while held:
            first = min(held)
            if held[first][0] >= until:
                break
            self._release_oldest(out)
        self._refresh_held()
        self._fill(until, out)
        return out

    def flush(self) -> list[Chunk]:
        """End of leg: release every held packet in order, gaps as silence."""
        out: list[Chunk] = []
        while self._held:
            self._release_oldest(out)
        return out

    # -- internals ---------------------------------------------------------------------

    def _push_other(self, packet: RtpPacket, arrival_ms: float) -> list[Chunk]:
        """A packet without a decoder: keep its sequence slot, write nothing."""
        if packet.ssrc != self._ssrc:
            self.ignored += 1
            return []
        max_seq = self._max_seq
        delta = ((packet.sequence - max_seq + 0x8000) & 0xFFFF) - 0x8000
        if delta > _MAX_DROPOUT or delta < -_MAX_MISORDER:
            self.ignored += 1
            return []
        ext = max_seq + delta
        if self._stale(ext):
            return []
        held = self._held
        if delta > 0:
            self._max_seq = ext
        elif delta < 0:
            self.reordered += 1
        out: list[Chunk] = []
        if ext == self._expected:
            self._expected = ext + 1
            self.ignored += 1
            if not held:
                return out
            self._drain(out)
        else:
            if not held:
                self._held_since = arrival_ms
                self._held_max_pos = self._position
            # Non-audio packets do not widen the held span: their timestamps may be old
            # (an RFC 4733 event keeps its start timestamp for its whole duration).
            held[ext] = (self._position, packet.payload, None, arrival_ms)
        if held:
            self._check_held(arrival_ms, out)
        return out

    def _stale(self, ext: int) -> bool:
        """Whether a packet's sequence slot has passed or is already held; if so, count it
        (late, or a duplicate)."""
        if ext < self._expected:
            if ext < self._first_seq or ext in self._lost_seqs:
                self.late += 1
            else:
                self.duplicates += 1
            return True
        if ext in self._held:
            self.duplicates += 1
            return True
        return False

    def _reanchor(
        self,
        packet: RtpPacket,
        decoder: Callable[[bytes], bytes],
        arrival_ms: float,
        start: int | None,
    ) -> list[Chunk]:
        """Start a new epoch at ``packet`` (first packet, new SSRC, or resync)."""
        out: list[Chunk] = []
        if self._ssrc is None:
            base = 0 if start is None else start
        else:
            while self._held:
                self._release_oldest(out)
            self.resyncs += 1
            base = round(arrival_ms * _PER_MS + self._arrival_base) if start is None else start
        if not self._started:
            # The leg's first chunk starts at its anchor, not at 0.
            self._started = True
            self._position = base
        anchor = max(base, self._position)
        seq = packet.sequence
        self._ssrc = packet.ssrc
        self._anchor = anchor
        self._base_ts = self._ts_ref = packet.timestamp
        self._ts_offset = anchor - packet.timestamp
        self._arrival_base = anchor - arrival_ms * _PER_MS
        self._max_seq = self._first_seq = seq
        self._expected = seq + 1
        self._bad_seq = -1
        self._lost_seqs.clear()
        self._write(anchor, decoder(packet.payload), out)
        return out

    def _write(self, pos: int, pcm: bytes, out: list[Chunk]) -> None:
        """Emit one packet's PCM at ``pos``: silence before it, its overlap trimmed."""
        position = self._position
        if pos > position:
            self._fill(pos, out)
            position = pos
        elif pos < position:
            cut = (position - pos) << 1
            if cut >= len(pcm):
                self.late += 1
                return
            self.trimmed_samples += position - pos
            pcm = pcm[cut:]
        self.decoded += 1
        if pcm:
            out.append(Chunk(position, pcm, False))
            self._position = position + (len(pcm) >> 1)

    def _fill(self, until: int, out: list[Chunk]) -> None:
        """Silence from :attr:`position` up to ``until``, in pieces of at most 1 s."""
        position = self._position
        gap = until - position
        if gap <= 0:
            return
        self._started = True
        self.silence_samples += gap
        while gap > 0:
            n = SILENCE_PIECE if gap > SILENCE_PIECE else gap
            out.append(Chunk(position, silence(n), True))
            position += n
            gap -= n
        self._position = position

    def _release(self, entry: _Held, out: list[Chunk]) -> None:
        pos, payload, decoder, _ = entry
        if decoder is None:
            self.ignored += 1
        else:
            self._write(pos, decoder(payload), out)

    def _drain(self, out: list[Chunk]) -> None:
        """Release held packets that are next in sequence."""
        held = self._held
        while held:
            entry = held.pop(self._expected, None)
            if entry is None:
                break
            self._expected += 1
            self._release(entry, out)

    def _release_oldest(self, out: list[Chunk]) -> None:
        """Declare the packets missing before the oldest held one lost; release from it."""
        held = self._held
        first = min(held)
        missing = first - self._expected
        if missing > 0:
            self.lost += missing
            lost_seqs = self._lost_seqs
            if len(lost_seqs) + missing > _MAX_LOST_TRACKED:
                lost_seqs.clear()
            if missing <= _MAX_LOST_TRACKED:
                lost_seqs.update(range(self._expected, first))
        self._expected = first
        self._drain(out)

    def _refresh_held(self) -> None:
        held = self._held
        if held:
            self._held_since = min(e[3] for e in held.values())
            self._held_max_pos = max(e[0] for e in held.values())

    def _check_held(self, arrival_ms: float, out: list[Chunk]) -> None:
        """Give up on missing packets once the held span or count is too large."""
        held = self._held
        while held and (
            len(held) > self._max_packets
            or self._held_max_pos - self._position > self._reorder_samples
            or arrival_ms - self._held_since > self._reorder_ms
        ):
            self._release_oldest(out)
            self._refresh_held()
