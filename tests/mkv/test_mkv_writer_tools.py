"""Documents built with callstream.mkv.writer are accepted by mkvinfo, ffprobe and PyAV,
and read back identically by FragmentReader."""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
from pathlib import Path

import pytest
from mkv_helpers import frame_rows, mkvinfo_bytes, requires_ffprobe, requires_mkvinfo

from callstream.mkv import ID, FragmentReader, render_fragment
from callstream.mkv import writer as w

SAMPLES = b"".join(struct.pack("<h", int(3000 * math.sin(i / 10))) for i in range(512))
PCM_TRACKS = [
    w.TrackSpec(
        1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1, bit_depth=16
    ),
    w.TrackSpec(
        2, "AUDIO_TO_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1, bit_depth=16
    ),
]
CONNECT_TRACKS = [
    w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
    w.TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
]
PROFILES = {"pcm": PCM_TRACKS, "connect": CONNECT_TRACKS}
MIME = ("MimeType", "audio/L16;rate=8000;channels=1;")


def _blocks() -> list[bytes]:
    return [w.simple_block(1 + k % 2, (k // 2) * 64, SAMPLES) for k in range(32)]


def plain_document(profile: str, known_segment: bool, known_cluster: bool) -> bytes:
    header = w.info(segment_uid=bytes(16), title="callstream test") + w.tracks(PROFILES[profile])
    clusters = [w.cluster(i * 1024, _blocks(), unknown_size=not known_cluster) for i in range(3)]
    body = header + w.tags([MIME, ("ContactId", "c-1")]) + b"".join(clusters)
    segment = w.master(ID.Segment, [body]) if known_segment else w.segment_start() + body
    return w.ebml_header() + segment


def getmedia_document(profile: str, i: int, *, end_tags: bool = True) -> bytes:
    start = 1_726_677_688_724 + i * 1024
    return render_fragment(
        ebml_header=w.ebml_header(doc_type_version=2),
        header=w.info(segment_uid=bytes(16)) + w.tracks(PROFILES[profile]),
        cluster=w.cluster(start, _blocks(), unknown_size=True, position=0, timecode_width=8),
        trailer=b"".join(w.tags([kv], size_width=8) for kv in [("ContactId", "c-1"), MIME]),
        fragment_number=f"{91343852333181432392682062607743920146159169392 + i}",
        server_timestamp_ms=start + 100,
        producer_timestamp_ms=start,
        millis_behind_now=500 if end_tags else None,
        continuation_token=f"{91343852333181432392682062607743920146159169392 + i}"
        if end_tags
        else None,
    )


DOCUMENTS = {
    f"{profile}-{seg}-segment-{cl}-cluster": (profile, seg == "known", cl == "known")
    for profile in PROFILES
    for seg in ("known", "unknown")
    for cl in ("known", "unknown")
}


def _build(name: str) -> bytes:
    if name.startswith("getmedia-"):
        _, profile, end = name.split("-")
        return getmedia_document(profile, 0, end_tags=end == "end")
    profile, known_segment, known_cluster = DOCUMENTS[name]
    return plain_document(profile, known_segment, known_cluster)


ALL_DOCS = [*DOCUMENTS, "getmedia-pcm-end", "getmedia-connect-end", "getmedia-connect-noend"]


def _ffprobe(path: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    streams = json.loads(proc.stdout or "{}").get("streams", [])
    return proc, streams


@pytest.mark.parametrize("name", ALL_DOCS)
def test_reads_back(name: str) -> None:
    data = _build(name)
    reader = FragmentReader()
    frags = reader.feed(data) + reader.close()
    assert len(frags) == (1 if name.startswith("getmedia") else 3)
    assert frags[0].tags["MimeType"] == MIME[1]  # Tags before a Cluster belong to it
    for frag in frags:
        assert [f.data for f in frag.frames] == [SAMPLES] * 32
        assert frag.track_named("AUDIO_TO_CUSTOMER") is not None


@requires_mkvinfo
@pytest.mark.parametrize("name", ALL_DOCS)
def test_mkvinfo_accepts(name: str, tmp_path: Path) -> None:
    data = _build(name)
    info = mkvinfo_bytes(data, tmp_path)
    assert info.returncode == 0, info.problems
    assert not [p for p in info.problems if "rror" in p or "arning" in p]
    reader = FragmentReader()
    frags = reader.feed(data) + reader.close()
    assert [fr for c in info.clusters for fr in c.frames] == frame_rows(frags)
    assert {name for name, _ in info.tags} >= {"MimeType", "ContactId"}


@requires_ffprobe
@pytest.mark.parametrize("name", ALL_DOCS)
def test_ffprobe_accepts(name: str, tmp_path: Path) -> None:
    path = tmp_path / "doc.mkv"
    path.write_bytes(_build(name))
    proc, streams = _ffprobe(path)
    assert proc.returncode == 0, proc.stderr
    assert [s["codec_type"] for s in streams] == ["audio", "audio"]
    stderr = proc.stderr.splitlines()
    if name in DOCUMENTS and DOCUMENTS[name][1:] == (True, False):
        # RFC 8794 §6.2 (d) allows an unknown-size Cluster to end with its known-size
        # Segment (our reader does); ffmpeg logs it but reads the file.
        assert "inside parent with finite size" in stderr[0]
        stderr = stderr[1:]
    if "pcm" in name:
        assert stderr == []
        assert [(s["codec_name"], s["sample_rate"], s["channels"]) for s in streams] == [
            ("pcm_s16le", "8000", 1)
        ] * 2
    else:
        # Connect declares A_AAC over raw L16: only ffmpeg's AAC decoder complains
        # (probing decodes a few packets); the container itself is clean.
        assert [s["codec_name"] for s in streams] == ["aac", "aac"]
        assert all(line.startswith("[aac @") for line in stderr), proc.stderr


@requires_ffprobe
@requires_mkvinfo
def test_getmedia_concatenation(tmp_path: Path) -> None:
    """Three GetMedia documents back to back: every document passes mkvinfo; ffprobe
    reads the stream, logging only its known complaint about the extra Segments."""
    docs = [getmedia_document("pcm", i) for i in range(3)]
    for i, doc in enumerate(docs):
        info = mkvinfo_bytes(doc, tmp_path, f"d{i}.mkv")
        assert info.returncode == 0 and len(info.clusters) == 1
    path = tmp_path / "all.mkv"
    path.write_bytes(b"".join(docs))
    proc, streams = _ffprobe(path)
    assert proc.returncode == 0
    assert len(streams) == 2
    for line in proc.stderr.splitlines():
        assert "unknown-length element with ID 0x18538067" in line, line


@pytest.mark.parametrize("profile", ["pcm", "connect"])
def test_pyav_demuxes_the_same_packets(profile: str) -> None:
    av = pytest.importorskip("av")
    data = plain_document(profile, known_segment=False, known_cluster=True)
    reader = FragmentReader()
    frags = reader.feed(data) + reader.close()
    ours = [(f.track - 1, f.timestamp_ns // 1_000_000, f.data) for fr in frags for f in fr.frames]
    with av.open(io.BytesIO(data)) as container:
        theirs = [
            (p.stream.index, int(p.pts * p.time_base * 1000), bytes(p))
            for p in container.demux()
            if p.size
        ]
    assert theirs == ours


def test_writer_value_checks() -> None:
    with pytest.raises(ValueError):
        w.simple_block(127, 0, b"")
    with pytest.raises(ValueError):
        w.simple_block(1, 40000, b"")
    with pytest.raises(ValueError):
        w.uint(ID.Timecode, -1)
    with pytest.raises(ValueError):
        w.uint(ID.Timecode, 256, 1)
    assert w.uint(ID.Timecode, 5, 8) == b"\xe7\x88" + (5).to_bytes(8, "big")
    assert w.segment_start() == bytes.fromhex("18538067 01FFFFFFFFFFFFFF".replace(" ", ""))
