"""Shared helpers for the tests/mkv suite: test data location, feeding, mkvinfo parsing."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from callstream.mkv import ID, EbmlReader, Fragment, FragmentReader, Start
from shared_data import SHARED

KVS_DIR = SHARED / "testdata" / "kvs"
YACCHI_DIR = KVS_DIR / "yacchi"

requires_shared = pytest.mark.skipif(
    not KVS_DIR.is_dir(), reason=f"shared test data not found at {KVS_DIR}"
)
requires_mkvinfo = pytest.mark.skipif(
    shutil.which("mkvinfo") is None, reason="mkvinfo (Debian mkvtoolnix) is not installed"
)
requires_ffprobe = pytest.mark.skipif(
    shutil.which("ffprobe") is None, reason="ffprobe (ffmpeg) is not installed"
)


def capture_paths() -> list[Path]:
    return sorted(KVS_DIR.glob("*.mkv")) if KVS_DIR.is_dir() else []


def yacchi_names() -> list[str]:
    if not YACCHI_DIR.is_dir():
        return []
    return sorted(p.name.removesuffix(".ebml.hex") for p in YACCHI_DIR.glob("*.ebml.hex"))


def decode_hex_fixture(text: str) -> bytes:
    """yacchi fixture: drop '#' comment lines and whitespace, hex-decode the rest."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return bytes.fromhex("".join("".join(lines).split()))


@cache
def yacchi_bytes(name: str) -> bytes:
    return decode_hex_fixture((YACCHI_DIR / f"{name}.ebml.hex").read_text())


@cache
def yacchi_readme() -> dict[str, dict[str, object]]:
    data = json.loads((YACCHI_DIR / "README.json").read_text())
    fixtures: dict[str, dict[str, object]] = data["fixtures"]
    return fixtures


def sample_bytes(name: str) -> bytes:
    """A capture (``output_get_media.mkv``) or a yacchi fixture (``gap``) by name."""
    if name.endswith(".mkv"):
        return (KVS_DIR / name).read_bytes()
    return yacchi_bytes(name)


# --- feeding ------------------------------------------------------------------------------


def parse_whole(data: bytes, **kwargs: int) -> list[Fragment]:
    reader = FragmentReader(**kwargs)
    return reader.feed(data) + reader.close()


def parse_chunked(data: bytes, sizes: Iterable[int]) -> list[Fragment]:
    """Feed ``data`` in chunks of the given sizes (the rest in one final chunk)."""
    reader = FragmentReader()
    out: list[Fragment] = []
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        out += reader.feed(data[pos : pos + size])
        pos += size
    if pos < len(data):
        out += reader.feed(data[pos:])
    return out + reader.close()


def random_sizes(total: int, seed: int, max_size: int) -> list[int]:
    """Chunk sizes from 1 byte up (log-uniform), covering ``total`` bytes."""
    rng = random.Random(seed)
    sizes = []
    covered = 0
    while covered < total:
        size = max(1, int(2 ** rng.uniform(0, max_size.bit_length())))
        size = min(size, max_size)
        sizes.append(size)
        covered += size
    return sizes


def document_offsets(data: bytes) -> list[int]:
    """Offsets of the top-level EBML headers (one per GetMedia fragment document)."""
    reader = EbmlReader()
    reader.feed(data)
    reader.close()
    return [ev.offset for ev in reader.events() if isinstance(ev, Start) and ev.id == ID.EBML]


def split_documents(data: bytes) -> list[tuple[int, int]]:
    starts = document_offsets(data)
    return list(zip(starts, [*starts[1:], len(data)], strict=True))


# --- mkvinfo ------------------------------------------------------------------------------


@dataclass
class MkvinfoCluster:
    timestamp_ns: int
    frames: list[tuple[int, int, int]] = field(default_factory=list)  # track, ts_ns, size
    blocks: int = 0


@dataclass
class MkvinfoDoc:
    returncode: int
    problems: list[str]
    timestamp_scale: int | None = None
    tracks: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)
    tags: list[tuple[str, str]] = field(default_factory=list)
    clusters: list[MkvinfoCluster] = field(default_factory=list)


_TIME = re.compile(r"(-?)(\d+):(\d\d):(\d\d)\.(\d{9})")
_BLOCK = re.compile(
    r"(?:Simple block|Block): .*?track number (\d+), (\d+) frame\(s\), timestamp (\S+)"
)


def mkvinfo_time(text: str) -> int:
    """``HH:MM:SS.nnnnnnnnn`` (hours may exceed 24) to integer nanoseconds."""
    m = _TIME.fullmatch(text.strip())
    assert m, f"unexpected mkvinfo time {text!r}"
    sign, h, mi, s, ns = m.groups()
    value = ((int(h) * 60 + int(mi)) * 60 + int(s)) * 1_000_000_000 + int(ns)
    return -value if sign else value


def run_mkvinfo(path: Path) -> MkvinfoDoc:
    """``mkvinfo -v -a`` parsed into tracks, tags and clusters with their frames."""
    proc = subprocess.run(
        ["mkvinfo", "-v", "-a", str(path)], capture_output=True, text=True, timeout=120
    )
    return parse_mkvinfo(proc.stdout + proc.stderr, proc.returncode)


def parse_mkvinfo(text: str, returncode: int = 0) -> MkvinfoDoc:
    doc = MkvinfoDoc(returncode=returncode, problems=[])
    context: list[str] = []  # element names by depth
    track: int | None = None
    pending_name: str | None = None
    cluster: MkvinfoCluster | None = None
    block: tuple[int, int] | None = None  # track, ts
    for raw in text.splitlines():
        if not raw.startswith(("+", "|")):
            if raw.strip():
                doc.problems.append(raw)
            continue
        depth = raw.index("+")
        body = raw[depth + 1 :].strip()
        name, _, value = body.partition(": ")
        del context[depth:]
        context.append(name)
        parent = context[depth - 1] if depth else ""
        if depth == 1 and name != "Cluster":
            cluster = None
        if name == "Timestamp scale":
            doc.timestamp_scale = int(value)
        elif name == "Track number" and parent == "Track":
            track = int(value.split()[0])
            doc.tracks[track] = (None, None)
        elif name == "Name" and parent == "Track" and track is not None:
            doc.tracks[track] = (value, doc.tracks[track][1])
        elif name == "Codec ID" and parent == "Track" and track is not None:
            doc.tracks[track] = (doc.tracks[track][0], value)
        elif name == "Name" and parent == "Simple":
            pending_name = value
        elif name == "String" and parent == "Simple" and pending_name is not None:
            doc.tags.append((pending_name, value))
            pending_name = None
        elif name == "Cluster" and depth == 1:
            cluster = MkvinfoCluster(timestamp_ns=0)
            doc.clusters.append(cluster)
        elif name == "Cluster timestamp" and cluster is not None:
            cluster.timestamp_ns = mkvinfo_time(value)
        elif name in ("Simple block", "Block") and cluster is not None:
            m = _BLOCK.search(body)
            assert m, body
            block = (int(m.group(1)), mkvinfo_time(m.group(3)))
            cluster.blocks += 1
        elif name.startswith("Frame with size") and cluster is not None and block is not None:
            cluster.frames.append((block[0], block[1], int(name.split()[-1])))
    return doc


def mkvinfo_bytes(data: bytes, tmp_path: Path, name: str = "doc.mkv") -> MkvinfoDoc:
    path = tmp_path / name
    path.write_bytes(data)
    return run_mkvinfo(path)


def frame_rows(fragments: Sequence[Fragment]) -> list[tuple[int, int, int]]:
    """(track, Cluster-timeline ns, size) of every frame, mkvinfo's view of a block."""
    rows = []
    for frag in fragments:
        tc = frag.cluster_timecode or 0
        for f in frag.frames:
            rows.append((f.track, (tc + f.timecode) * frag.timecode_scale_ns, len(f.data)))
    return rows
