"""KVS-shaped MKV producer: parsed back with FragmentReader."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.client.producer import (
    AUDIO_FROM_CUSTOMER,
    AUDIO_TO_CUSTOMER,
    Chunk,
    KvsProducer,
    chime_producer,
    connect_producer,
    pace,
    produce,
    read_chime_audio,
    read_connect_audio,
)
from callstream.client.putmedia import MkvSplitter
from callstream.media.wav import write_wav
from callstream.mkv import Fragment, FragmentReader
from callstream.mkv.ebml import ID
from callstream.mkv.reader import EbmlReader, Start
from callstream.mkv.writer import TrackSpec

T0 = 1_726_677_688_724
CONNECT_TAGS = ("ContactId", "InstanceId", "MimeType", AUDIO_FROM_CUSTOMER, AUDIO_TO_CUSTOMER)


def parse(data: bytes) -> list[Fragment]:
    reader = FragmentReader()
    return reader.feed(data) + reader.close()


def track_pcm(frags: list[Fragment], name: str) -> bytes:
    out = []
    for f in frags:
        track = f.track_named(name)
        assert track is not None, name
        out += [fr.data for fr in f.frames_of(track.number)]
    return b"".join(out)


def per_fragment(data: bytes) -> list[Fragment]:
    """Each fragment parsed alone (header + its own unit): its own metadata, as PIC meant."""
    splitter = MkvSplitter()
    units = splitter.feed(data) + splitter.close()
    header = units[0].data
    return [parse(header + u.data)[0] for u in units[1:]]


def connect_audio(seconds: float) -> dict[str, bytes]:
    n = int(8000 * seconds) * 2
    return {AUDIO_FROM_CUSTOMER: os.urandom(n), AUDIO_TO_CUSTOMER: os.urandom(n)}


# --- Connect --------------------------------------------------------------------------------
def test_connect_shape_round_trip() -> None:
    producer = connect_producer(contact_id="c-1", instance_id="i-1", producer_start_ms=T0)
    audio = connect_audio(3.5)
    data = b"".join(c.data for c in produce(producer, audio))
    frags = parse(data)
    assert [f.cluster_timecode for f in frags] == [T0, T0 + 1000, T0 + 2000, T0 + 3000]
    for name in (AUDIO_FROM_CUSTOMER, AUDIO_TO_CUSTOMER):
        assert track_pcm(frags, name) == audio[name]  # bit-exact
    f0 = frags[0]
    assert f0.timecode_scale_ns == 1_000_000
    frm, to = f0.track_named(AUDIO_FROM_CUSTOMER), f0.track_named(AUDIO_TO_CUSTOMER)
    assert frm is not None and to is not None
    assert (frm.number, to.number) == (1, 2)
    for t in (frm, to):
        assert t.codec_id == "A_AAC" and t.codec_private == b"\x11\x90"
        assert t.sampling_rate is None and t.channels is None  # no Audio master
        assert t.track_type == 2
    # 20 ms frames, both tracks interleaved in time order, absolute timestamps
    assert len(f0.frames) == 100 and [fr.track for fr in f0.frames[:4]] == [1, 2, 1, 2]
    assert [fr.timestamp_ns // 1_000_000 for fr in f0.frames[:4]] == [T0, T0, T0 + 20, T0 + 20]
    assert all(len(fr.data) == 320 for fr in f0.frames)
    assert frags[-1].duration_ms == 480  # 0.5 s: 25 frames, last starts at 480 ms
    for f in per_fragment(data):
        assert f.tags == {
            "ContactId": "c-1",
            "InstanceId": "i-1",
            "MimeType": "audio/L16;rate=8000;channels=1;",
            AUDIO_FROM_CUSTOMER: "1",
            AUDIO_TO_CUSTOMER: "2",
        }


def test_connect_swapped_tracks_and_pcm_codec() -> None:
    producer = connect_producer(
        contact_id="c", instance_id="i", producer_start_ms=T0, swap_tracks=True, codec="pcm"
    )
    audio = connect_audio(2.0)
    frags = parse(b"".join(c.data for c in produce(producer, audio)))
    frm, to = frags[0].track_named(AUDIO_FROM_CUSTOMER), frags[0].track_named(AUDIO_TO_CUSTOMER)
    assert frm is not None and to is not None
    assert (to.number, frm.number) == (1, 2)
    assert frm.codec_id == "A_PCM/INT/LIT"
    assert (frm.sampling_rate, frm.channels, frm.bit_depth) == (8000.0, 1, 16)
    assert frags[0].tags[AUDIO_FROM_CUSTOMER] == "2" and frags[0].tags[AUDIO_TO_CUSTOMER] == "1"
    for name in audio:
        assert track_pcm(frags, name) == audio[name]


def test_connect_64ms_frames_relative_timecodes() -> None:
    producer = connect_producer(
        contact_id="c",
        instance_id="i",
        producer_start_ms=T0,
        frame_ms=64,
        timecode_type="RELATIVE",
    )
    audio = connect_audio(2.048)
    chunks = list(produce(producer, audio, start_ms=T0 + 500, fragment_ms=1024))
    assert [c.timecode for c in chunks] == [None, 500, 1524]
    assert [c.start_ms for c in chunks[1:]] == [T0 + 500, T0 + 1524]
    frags = parse(b"".join(c.data for c in chunks))
    assert [f.cluster_timecode for f in frags] == [500, 1524]
    assert all(len(fr.data) == 1024 for f in frags for fr in f.frames)
    assert [fr.timecode for fr in frags[0].frames[:6]] == [0, 0, 64, 64, 128, 128]
    assert len(frags[0].frames) == 32  # 16 blocks per track, as Connect sends
    for name in audio:
        assert track_pcm(frags, name) == audio[name]


def test_unknown_size_clusters_parse() -> None:
    producer = connect_producer(
        contact_id="c", instance_id="i", producer_start_ms=T0, unknown_size_clusters=True
    )
    audio = connect_audio(2.2)
    data = b"".join(c.data for c in produce(producer, audio))
    assert bytes.fromhex("1f43b675ff") in data
    frags = parse(data)
    assert len(frags) == 3
    for name in audio:
        assert track_pcm(frags, name) == audio[name]


# --- Chime ----------------------------------------------------------------------------------
def test_chime_shape_round_trip() -> None:
    producer = chime_producer(
        transaction_id="tx-1",
        voice_connector_id="vc-1",
        call_id="call-1",
        producer_start_ms=T0,
        extra_tags={"Direction": "Inbound"},
    )
    pcm = os.urandom(8000 * 2 * 2 + 2)
    data = b"".join(c.data for c in produce(producer, {"AUDIO": pcm}))
    frags = parse(data)
    assert len(frags) == 3 and list(frags[0].tracks) == [1]
    assert track_pcm(frags, "AUDIO") == pcm
    assert frags[0].tracks[1].codec_id == "A_PCM/INT/LIT"
    for f in per_fragment(data):
        assert f.tags == {
            "TransactionId": "tx-1",
            "VoiceConnectorId": "vc-1",
            "CallId": "call-1",
            "Direction": "Inbound",
        }


# --- metadata (PIC placement) ---------------------------------------------------------------
def test_metadata_is_one_tags_element_per_item_with_8_byte_sizes_before_its_cluster() -> None:
    producer = connect_producer(contact_id="c", instance_id="i", producer_start_ms=T0)
    pcm = {AUDIO_FROM_CUSTOMER: bytes(16000), AUDIO_TO_CUSTOMER: bytes(16000)}
    producer.put_metadata("Once", "x")
    unit = producer.fragment(pcm, T0)
    reader = EbmlReader()
    reader.feed(unit)
    reader.close()
    top = []
    depth = 0
    for ev in reader.events():
        if type(ev) is Start:
            if depth == 0:
                top.append((ev.id, ev.header_size))
            depth += 1
        elif type(ev).__name__ == "End":
            depth -= 1
    assert top == [(ID.Tags, 12)] * 6 + [(ID.Cluster, top[-1][1])]
    second = producer.fragment(pcm, T0 + 1000)
    assert b"Once" not in second and b"ContactId" in second
    producer.put_metadata("ContactId", "", persistent=True)  # cancel
    assert b"ContactId" not in producer.fragment(pcm, T0 + 2000)
    with pytest.raises(ValueError):
        producer.fragment(pcm, T0 + 2000)  # timecode must increase


def test_metadata_limits() -> None:
    producer = KvsProducer([TrackSpec(1, "A", "A_PCM/INT/LIT")], producer_start_ms=T0)
    with pytest.raises(ValueError):
        producer.put_metadata("AWS_X", "1")
    with pytest.raises(ValueError):
        producer.put_metadata("n" * 129, "1")
    with pytest.raises(ValueError):
        producer.put_metadata("n", "v" * 257)
    for i in range(10):
        producer.put_metadata(f"k{i}", "v", persistent=True)
    with pytest.raises(ValueError):
        producer.put_metadata("k10", "v")


# --- WAV sources ----------------------------------------------------------------------------
def _samples(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-32768, 32767, n, dtype=np.int16)


def test_wav_sources(tmp_path: Path) -> None:
    a, b = _samples(12000, 1), _samples(12000, 2)
    write_wav(tmp_path / "stereo.wav", np.stack([a, b], axis=1), 8000)
    write_wav(tmp_path / "a.wav", a, 8000)
    write_wav(tmp_path / "b.wav", b, 8000)
    stereo = read_connect_audio(tmp_path / "stereo.wav")
    two = read_connect_audio(tmp_path / "a.wav", tmp_path / "b.wav")
    assert stereo == two
    assert stereo[AUDIO_FROM_CUSTOMER] == a.astype("<i2").tobytes()
    assert stereo[AUDIO_TO_CUSTOMER] == b.astype("<i2").tobytes()
    mono = read_connect_audio(tmp_path / "a.wav")
    assert mono[AUDIO_TO_CUSTOMER] == b""
    producer = connect_producer(contact_id="c", instance_id="i", producer_start_ms=T0)
    frags = parse(b"".join(c.data for c in produce(producer, mono)))
    assert track_pcm(frags, AUDIO_FROM_CUSTOMER) == mono[AUDIO_FROM_CUSTOMER]
    assert track_pcm(frags, AUDIO_TO_CUSTOMER) == bytes(len(mono[AUDIO_FROM_CUSTOMER]))
    write_wav(tmp_path / "wide.wav", _samples(16000, 3), 16000)
    assert abs(len(read_chime_audio(tmp_path / "wide.wav")["AUDIO"]) - 16000) <= 4
    with pytest.raises(ValueError):
        read_chime_audio(tmp_path / "stereo.wav")


# --- pacing ---------------------------------------------------------------------------------
def test_pace_real_time_and_fast() -> None:
    chunks = [
        Chunk(b"h", 0, "header"),
        Chunk(b"1", 1000, "fragment"),
        Chunk(b"2", 2000, "fragment"),
    ]

    async def run(realtime: bool) -> tuple[list[bytes], list[float]]:
        now = [100.0]
        sleeps: list[float] = []

        async def sleep(d: float) -> None:
            sleeps.append(round(d, 6))
            now[0] += d

        out = [
            c
            async for c in pace(
                chunks, realtime=realtime, speed=2.0, clock=lambda: now[0], sleep=sleep
            )
        ]
        return out, sleeps

    out, sleeps = asyncio.run(run(True))
    assert out == [b"h", b"1", b"2"] and sleeps == [0.5, 0.5]
    out, sleeps = asyncio.run(run(False))
    assert out == [b"h", b"1", b"2"] and sleeps == []


# --- property -------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    n_from=st.integers(0, 30000),
    n_to=st.integers(0, 30000),
    frame_ms=st.sampled_from([10, 20, 32, 64]),
    fragment_ms=st.sampled_from([500, 1000, 1024, 2000]),
    swap=st.booleans(),
)
def test_round_trip_property(
    n_from: int, n_to: int, frame_ms: int, fragment_ms: int, swap: bool
) -> None:
    if n_from == n_to == 0:
        n_from = 1
    audio = {AUDIO_FROM_CUSTOMER: os.urandom(2 * n_from), AUDIO_TO_CUSTOMER: os.urandom(2 * n_to)}
    producer = connect_producer(
        contact_id="c", instance_id="i", producer_start_ms=T0, frame_ms=frame_ms, swap_tracks=swap
    )
    chunks = list(produce(producer, audio, fragment_ms=fragment_ms))
    frags = parse(b"".join(c.data for c in chunks))
    total = max(n_from, n_to) * 2
    for name, pcm in audio.items():
        assert track_pcm(frags, name) == pcm + bytes(total - len(pcm))
    assert [f.cluster_timecode for f in frags] == [c.timecode for c in chunks[1:]]
    stamps = [fr.timestamp_ns for f in frags for fr in f.frames]
    assert stamps == sorted(stamps)


def test_ffmpeg_reads_the_pcm_profile_bit_exact() -> None:
    av = pytest.importorskip("av")
    import io

    producer = connect_producer(contact_id="c", instance_id="i", codec="pcm", producer_start_ms=T0)
    audio = connect_audio(2.0)
    container = av.open(io.BytesIO(b"".join(c.data for c in produce(producer, audio))))
    streams = {s.metadata.get("title"): s for s in container.streams}
    assert streams[AUDIO_TO_CUSTOMER].codec_context.name == "pcm_s16le"
    assert container.metadata["ContactId"] == "c"
    raw = b"".join(bytes(p) for p in container.demux(streams[AUDIO_TO_CUSTOMER]) if p.size)
    assert raw == audio[AUDIO_TO_CUSTOMER]
