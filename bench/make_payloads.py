"""Deterministic Connect-shaped KVS GetMedia payloads for the benchmarks.

Every fragment is its own MKV document, built with :func:`callstream.mkv.render_fragment`
the way Amazon Connect's live media streaming produces it (kvs-wire.md §2.4, §6.2-6.3):

    EBML header, unknown-size Segment,
    Info (Title/MuxingApp/WritingApp "Kinesis Video SDK ..."),
    Tracks (AUDIO_FROM_CUSTOMER / AUDIO_TO_CUSTOMER, CodecID A_AAC, CodecPrivate 11 90,
            no Audio master),
    KVS Tags (FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP; 4-byte sizes),
    Cluster (unknown size, 8-byte ABSOLUTE epoch-ms Timecode, Position 0,
             SimpleBlocks alternating FROM/TO, 8 kHz 16-bit L16),
    Connect Tags after the Cluster, one SimpleTag per Tags (8-byte sizes):
             ContactId, InstanceId, MimeType, AUDIO_FROM_CUSTOMER, AUDIO_TO_CUSTOMER, Events,
    KVS end Tags (MILLIS_BEHIND_NOW, CONTINUATION_TOKEN).

Cadence: 1024-byte (64 ms) blocks per track, 16 blocks per track per fragment (1.024 s
fragments, 32 blocks), or the 20 ms variant (320-byte blocks, 50 per track, 1.0 s).

Usage::

    python bench/make_payloads.py --out /tmp/callstream-bench   # writes the three payloads
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callstream.mkv import ID, render_fragment, writer

RATE = 8000
CONTACT_ID = "d111f871-5fe7-40b1-b5f7-6b67060de0c2"
INSTANCE_ID = "d5b716a2-10bb-45cb-bf7f-01a9864be591"
MIME_TYPE = "audio/L16;rate=8000;channels=1;"
START_MS = 1_726_677_688_724  # epoch ms of the first fragment (the §6.2 capture's)
SDK = "Kinesis Video SDK 1.1.0 JNI 2.0"


@dataclass(frozen=True)
class Cadence:
    block_ms: int
    blocks_per_track: int  # per fragment

    @property
    def block_bytes(self) -> int:
        return RATE * self.block_ms // 1000 * 2

    @property
    def fragment_ms(self) -> int:
        return self.block_ms * self.blocks_per_track


CONNECT_64MS = Cadence(block_ms=64, blocks_per_track=16)  # 1024-byte blocks, 1.024 s
CONNECT_20MS = Cadence(block_ms=20, blocks_per_track=50)  # 320-byte blocks, 1.0 s


def fragment_number(seq: int, server_ms: int, rand28: int) -> str:
    """A 47-digit fragment number with the empirical KVS layout (kvs-wire.md §4)."""
    return str((1 << 156) | (seq << 92) | (server_ms << 28) | (rand28 & 0xFFFFFFF))


def producer_header(pcm_tracks: bool = False) -> bytes:
    """Info + Tracks as the KVS producer SDK writes them for a Connect call."""
    info = writer.master(
        ID.Info,
        [
            writer.binary(ID.SegmentUID, bytes(range(0xC0, 0xD0))),
            writer.uint(ID.TimecodeScale, 1_000_000, 8),
            writer.string(ID.Title, "Kinesis Video SDK"),
            writer.string(ID.MuxingApp, SDK),
            writer.string(ID.WritingApp, SDK),
        ],
    )
    if pcm_tracks:  # what ffmpeg needs to stream-copy: a codec with a sample rate
        specs = [
            writer.TrackSpec(
                n, name, "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1, bit_depth=16
            )
            for n, name in ((1, "AUDIO_FROM_CUSTOMER"), (2, "AUDIO_TO_CUSTOMER"))
        ]
    else:  # Connect: A_AAC over L16, no Audio master
        specs = [
            writer.TrackSpec(n, name, "A_AAC", codec_private=b"\x11\x90")
            for n, name in ((1, "AUDIO_FROM_CUSTOMER"), (2, "AUDIO_TO_CUSTOMER"))
        ]
    tracks = writer.tracks(specs)
    return info + tracks


def connect_tags(*, events: bool = True) -> bytes:
    """The fragment metadata Connect attaches (one SimpleTag per Tags, 8-byte sizes)."""
    items = [
        ("ContactId", CONTACT_ID),
        ("InstanceId", INSTANCE_ID),
        ("MimeType", MIME_TYPE),
        ("AUDIO_FROM_CUSTOMER", "1"),
        ("AUDIO_TO_CUSTOMER", "2"),
    ]
    if events:
        items.append(("Events", "[]"))
    return b"".join(writer.tags([item], size_width=8) for item in items)


def call_audio(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two deterministic int16 tracks (caller, agent): alternating talk spurts over noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n, dtype=np.float64) / RATE
    tracks = []
    for k, freq in enumerate((220.0, 330.0)):
        voice = np.sin(2 * np.pi * freq * t) + 0.5 * np.sin(2 * np.pi * 2.7 * freq * t)
        talking = ((t // 3.0).astype(np.int64) % 2) == k  # 3 s turns
        pcm = 6000 * voice * talking + rng.normal(0, 200, n)
        tracks.append(np.clip(pcm, -32768, 32767).astype("<i2"))
    return tracks[0], tracks[1]


def connect_payload(
    *,
    seconds: float | None = None,
    target_bytes: int | None = None,
    cadence: Cadence = CONNECT_64MS,
    seed: int = 0,
    pcm_tracks: bool = False,
) -> bytes:
    """A GetMedia response body: Connect fragments covering ``seconds`` of two-track audio,
    or as many as it takes to reach ``target_bytes``. ``pcm_tracks`` declares the tracks
    as A_PCM/INT/LIT with an Audio master instead of Connect's A_AAC (same layout)."""
    if (seconds is None) == (target_bytes is None):
        raise ValueError("give exactly one of seconds and target_bytes")
    header = producer_header(pcm_tracks)
    ebml = writer.ebml_header(doc_type_version=2)
    trailer = connect_tags()
    frag_s = cadence.fragment_ms / 1000
    if seconds is None:
        assert target_bytes is not None
        # audio bytes per fragment plus ~1.1 kB of headers and tags
        per_fragment = 2 * cadence.blocks_per_track * (cadence.block_bytes + 6) + 1100
        seconds = (target_bytes // per_fragment + 1) * frag_s
    n_frag = max(1, round(seconds / frag_s))
    caller, agent = call_audio(n_frag * frag_s + 1, seed)
    caller_b, agent_b = caller.tobytes(), agent.tobytes()
    rng = np.random.default_rng(seed + 1)
    bb = cadence.block_bytes
    out: list[bytes] = []
    size = 0
    for seq in range(n_frag):
        producer_ms = START_MS + seq * cadence.fragment_ms
        server_ms = producer_ms + 100 + int(rng.integers(0, 50))
        blocks = []
        for k in range(cadence.blocks_per_track):
            lo = (seq * cadence.blocks_per_track + k) * bb
            tc = k * cadence.block_ms
            blocks.append(writer.simple_block(1, tc, caller_b[lo : lo + bb], keyframe=True))
            blocks.append(writer.simple_block(2, tc, agent_b[lo : lo + bb], keyframe=True))
        cluster = writer.cluster(
            producer_ms, blocks, unknown_size=True, position=0, timecode_width=8
        )
        number = fragment_number(seq + 1, server_ms, int(rng.integers(0, 1 << 28)))
        doc = render_fragment(
            ebml_header=ebml,
            header=header,
            cluster=cluster,
            trailer=trailer,
            fragment_number=number,
            server_timestamp_ms=server_ms,
            producer_timestamp_ms=producer_ms,
            millis_behind_now=(n_frag - seq) * cadence.fragment_ms,
            continuation_token=number,
        )
        out.append(doc)
        size += len(doc)
        if target_bytes is not None and size >= target_bytes:
            break
    return b"".join(out)


def payload_50mb(cadence: Cadence = CONNECT_64MS, *, pcm_tracks: bool = False) -> bytes:
    """~50 MB (50,000,000 bytes or just over) of Connect GetMedia output."""
    return connect_payload(target_bytes=50_000_000, cadence=cadence, pcm_tracks=pcm_tracks)


def payload_hour(cadence: Cadence = CONNECT_64MS) -> bytes:
    """One hour of two-track call audio as a GetMedia payload."""
    return connect_payload(seconds=3600, cadence=cadence)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/callstream-bench"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in [
        ("connect_64ms_50mb.mkv", lambda: payload_50mb(CONNECT_64MS)),
        ("connect_20ms_50mb.mkv", lambda: payload_50mb(CONNECT_20MS)),
        ("connect_64ms_1h.mkv", lambda: payload_hour(CONNECT_64MS)),
    ]:
        data = make()
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}: {len(data):,} bytes")


if __name__ == "__main__":
    main()
