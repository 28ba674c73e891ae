"""Throughput of the embedded store against a plain write+fsync baseline.

Fragments model 1 s of 2-track 8 kHz 16-bit audio (~32 KB of Cluster). Each store append
seals the record (AES-256-GCM), appends it, fsyncs the file and commits the SQLite index
(WAL, synchronous=FULL); the baseline appends the same number of bytes with plain
``os.write`` + ``os.fsync``. Reads decrypt and verify every fragment (page cache warm);
the baseline ``pread``s the same byte ranges.

    python bench/bench_store.py [--dir DIR] [--seconds 2] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from callstream.store import EmbeddedBackend, FragmentData, StreamRecord, make_fragment_number
from callstream.store.backends.embedded import RECORD_HEADER_SIZE, encode_fragment_data

SAMPLES = 8000  # 1 s at 8 kHz
TRACKS = 2
T0 = 1_700_000_000_000


def make_fragment() -> FragmentData:
    """~32 KB Cluster: two tracks of 1 s 16-bit PCM in 20 ms SimpleBlocks, plus headers."""
    rnd = os.urandom
    blocks = b"".join(b"\xa3\x84\x00\x02\x80" + rnd(2 * SAMPLES // 50) for _ in range(50 * TRACKS))
    return FragmentData(
        ebml_header=b"\x1a\x45\xdf\xa3" + rnd(31),
        header=b"\x15\x49\xa9\x66" + rnd(60) + b"\x16\x54\xae\x6b" + rnd(180),
        cluster=b"\x1f\x43\xb6\x75\x01\x00\x00\x00\x00\x00\x7d\x00\xe7\x81\x00" + blocks,
        trailer=b"",
    )


def append_loop(
    b: EmbeddedBackend, s: StreamRecord, data: FragmentData, seconds: float
) -> tuple[int, list[float]]:
    lat: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        seq = b.next_sequence(s)
        t = time.perf_counter()
        b.append_fragment(
            s,
            data=data,
            server_timestamp_ms=T0 + seq * 1000,
            producer_timestamp_ms=seq * 1000,
            duration_ms=1000,
            cluster_timecode=seq * 1000,
            fragment_number=make_fragment_number(seq, T0 + seq * 1000),
        )
        lat.append(time.perf_counter() - t)
    return len(lat), lat


def baseline_append(path: Path, nbytes: int, seconds: float) -> tuple[int, list[float]]:
    payload = os.urandom(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    lat: list[float] = []
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            os.write(fd, payload)
            os.fsync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return len(lat), lat


def baseline_threads(paths: list[Path], nbytes: int, seconds: float) -> int:
    counts = [0] * len(paths)

    def run(i: int) -> None:
        counts[i] = baseline_append(paths[i], nbytes, seconds)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def store_threads(
    b: EmbeddedBackend, streams: list[StreamRecord], data: FragmentData, seconds: float
) -> int:
    counts = [0] * len(streams)

    def run(i: int) -> None:
        counts[i] = append_loop(b, streams[i], data, seconds)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def pct(lat: list[float], q: float) -> float:
    return sorted(lat)[min(len(lat) - 1, int(q * len(lat)))] * 1000


def fs_type(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "-T", str(path)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        return out[-1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help="scratch directory (default: temp)")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of each append phase")
    ap.add_argument("--threads", type=int, default=8, help="streams/threads in the parallel phase")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    try:
        data = make_fragment()
        plain = len(encode_fragment_data(data))
        record = RECORD_HEADER_SIZE + 12 + plain + 16
        rows: list[tuple[str, str, str, str]] = []

        base_n, base_lat = baseline_append(scratch / "baseline.bin", record, args.seconds)
        base_rate = base_n / args.seconds

        with EmbeddedBackend(scratch / "store") as b:
            s = b.create_stream(
                "bench",
                device_name=None,
                media_type="audio/L16",
                kms_key_id=None,
                data_retention_hours=24,
                tags={},
            )
            n, lat = append_loop(b, s, data, args.seconds)
            rate = n / args.seconds
            rows.append(
                (
                    "append, 1 stream (baseline write+fsync)",
                    f"{base_rate:,.0f}/s",
                    f"{base_rate * record / 1e6:.1f} MB/s",
                    f"p50 {pct(base_lat, 0.5):.2f} ms, p99 {pct(base_lat, 0.99):.2f} ms",
                )
            )
            rows.append(
                (
                    "append, 1 stream (store)",
                    f"{rate:,.0f}/s",
                    f"{rate * record / 1e6:.1f} MB/s",
                    f"p50 {pct(lat, 0.5):.2f} ms, p99 {pct(lat, 0.99):.2f} ms; "
                    f"{rate / base_rate:.0%} of baseline",
                )
            )

            k = args.threads
            bpar = (
                baseline_threads(
                    [scratch / f"baseline-{i}.bin" for i in range(k)], record, args.seconds
                )
                / args.seconds
            )
            streams = [
                b.create_stream(
                    f"bench-{i}",
                    device_name=None,
                    media_type=None,
                    kms_key_id=None,
                    data_retention_hours=24,
                    tags={},
                )
                for i in range(k)
            ]
            spar = store_threads(b, streams, data, args.seconds) / args.seconds
            rows.append(
                (
                    f"append, {k} streams/threads (baseline)",
                    f"{bpar:,.0f}/s",
                    f"{bpar * record / 1e6:.1f} MB/s",
                    "",
                )
            )
            rows.append(
                (
                    f"append, {k} streams/threads (store)",
                    f"{spar:,.0f}/s",
                    f"{spar * record / 1e6:.1f} MB/s",
                    f"{spar / bpar:.0%} of baseline",
                )
            )

            frags = b.fragments(s)
            t = time.perf_counter()
            total = 0
            for rec in frags:
                got = b.read_fragment(s, rec.fragment_number)
                total += len(got.cluster) + len(got.header) + len(got.ebml_header)
            dt = time.perf_counter() - t
            locs = [b.locate_fragment(s, rec.fragment_number) for rec in frags]
            t = time.perf_counter()
            btotal = 0
            for path, offset, length in locs:
                with open(path, "rb", buffering=0) as fh:
                    btotal += len(os.pread(fh.fileno(), length, offset))
            bdt = time.perf_counter() - t
            rows.append(
                (
                    "read, decrypt+verify (baseline open+pread)",
                    f"{len(locs) / bdt:,.0f}/s",
                    f"{btotal / bdt / 1e6:,.0f} MB/s",
                    "",
                )
            )
            rows.append(
                (
                    "read, decrypt+verify (store)",
                    f"{len(frags) / dt:,.0f}/s",
                    f"{total / dt / 1e6:,.0f} MB/s",
                    f"{(total / dt) / (btotal / bdt):.0%} of baseline",
                )
            )
            t = time.perf_counter()
            listed = b.fragments(s)
            ldt = time.perf_counter() - t
            rows.append(
                (f"fragments() listing {len(listed):,} rows", f"{ldt * 1000:.1f} ms", "", "")
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"callstream store benchmark — {platform.python_implementation()} "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, {fs_type(scratch.parent)} at {scratch.parent}"
    )
    print(
        f"fragment: 1 s, {TRACKS} tracks x {SAMPLES} Hz 16-bit; record {record:,} bytes "
        f"(cluster {len(data.cluster):,}); {args.seconds:g} s per append phase"
    )
    header = ("case", "rate", "throughput", "notes")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
