"""PutMedia ingest steady state: ``IngestSession.feed`` on a live Connect-shaped upload.

The upload is what ``bench/bench_server.py``'s producers send: EBML header, unknown-size
Segment, Info + Tracks, then 1 s unknown-size Clusters (8-byte epoch-ms Timecode,
Position 0) with Connect's fragment Tags between them, written one frame pair (both
tracks' 20 ms / 320-byte frames, or Connect's 64 ms / 1024-byte ones) per write. Every
write is fed as it would arrive; events are collected as the server would.

Baseline in the same run: a plain ``EbmlReader.feed_blocks`` pass over the same writes
(the reader's steady-state fast path, a round of events only for what is not a whole
block), i.e. what reading the bytes costs with no ingest state machine. Each row is the
best of ``--repeat`` (wall clock); prints a markdown table.

    python bench/bench_ingest.py                # 20 ms frame pairs, 600 s of call
    python bench/bench_ingest.py --cadence 64   # 64 ms frame pairs
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable

from callstream.mkv import writer
from callstream.mkv.reader import EbmlReader
from callstream.store.ingest import ClusterBytes, FragmentReady, IngestError, IngestSession
from make_payloads import START_MS, connect_tags, producer_header

HEADER = writer.ebml_header(doc_type_version=2) + writer.segment_start() + producer_header()
TAGS = connect_tags(events=False)


def cluster_head(timecode_ms: int) -> bytes:
    return writer.cluster(timecode_ms, [], unknown_size=True, position=0, timecode_width=8)


def live_writes(seconds: int, frame_ms: int) -> list[bytes]:
    """One write per frame pair; a Cluster start (and the Tags before it) every second."""
    frame_bytes = 16 * frame_ms  # 8 kHz 16-bit mono
    per_cluster = max(1, 1000 // frame_ms)
    pcm = os.urandom(frame_bytes)
    heads = {
        track: [
            writer.simple_block(track, k * frame_ms, pcm)[:-frame_bytes] for k in range(per_cluster)
        ]
        for track in (1, 2)
    }
    writes = []
    for k in range(seconds * 1000 // frame_ms):
        i = k % per_cluster
        chunk = heads[1][i] + pcm + heads[2][i] + pcm
        if i == 0:
            lead = HEADER if k == 0 else TAGS
            chunk = lead + cluster_head(START_MS + k * frame_ms) + chunk
        writes.append(chunk)
    return writes


Result = tuple[int, int]  # fragments (or blocks), live bytes


def ingest(writes: list[bytes]) -> Result:
    session = IngestSession()
    fragments = live = 0
    for chunk in writes:
        for ev in session.feed(chunk):
            if type(ev) is ClusterBytes:
                live += len(ev.data)
            elif type(ev) is FragmentReady:
                fragments += 1
            elif type(ev) is IngestError:
                raise RuntimeError(ev.message)
    for ev in session.close():
        if type(ev) is FragmentReady:
            fragments += 1
    return fragments, live


def reader_pass(writes: list[bytes]) -> Result:
    reader = EbmlReader(max_element_size=50 * 1024 * 1024)
    blocks = fed = 0
    for chunk in writes:
        run = reader.feed_blocks(chunk)
        blocks += len(run) // 5
        fed += len(chunk)
        if reader.offset < fed or reader.at_limit:
            for _ in reader.events():
                pass
    reader.close()
    for _ in reader.events():
        pass
    return blocks, fed


def coalesced(writes: list[bytes], size: int) -> list[bytes]:
    data = b"".join(writes)
    return [data[i : i + size] for i in range(0, len(data), size)]


def best_of(fn: Callable[[], Result], repeat: int) -> tuple[float, Result]:
    best = float("inf")
    result: Result = (0, 0)
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cadence", type=int, choices=(20, 64), default=20)
    ap.add_argument("--seconds", type=int, default=600, help="call length")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    writes = live_writes(args.seconds, args.cadence)
    big = coalesced(writes, 64 * 1024)
    total = sum(map(len, writes))
    rows = []
    for name, fn, n in [
        ("IngestSession.feed", lambda: ingest(writes), len(writes)),
        ("EbmlReader.feed_blocks pass (baseline)", lambda: reader_pass(writes), len(writes)),
        ("IngestSession.feed, 64 KiB writes", lambda: ingest(big), len(big)),
        (
            "EbmlReader.feed_blocks pass, 64 KiB writes (baseline)",
            lambda: reader_pass(big),
            len(big),
        ),
    ]:
        seconds, result = best_of(fn, args.repeat)
        rows.append((name, n, seconds, result))
    print(
        f"Upload: {args.seconds} s of two-track Connect call, {args.cadence} ms frame pairs,"
        f" {total:,} bytes, {len(writes):,} writes; best of {args.repeat}, wall clock.\n"
    )
    print("| path | writes | MB/s | µs per write | writes/s | vs baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for i, (name, n, seconds, _) in enumerate(rows):
        base = rows[i | 1][2]
        print(
            f"| {name} | {n:,} | {total / seconds / 1e6:.0f} | {seconds / n * 1e6:.2f}"
            f" | {n / seconds:,.0f} | {seconds / base:.2f}x |"
        )
    fragments, live = rows[0][3]
    assert rows[2][3] == rows[0][3], "the write size changed what was ingested"
    print(f"\n{fragments} fragments stored, {live:,} Cluster bytes sent live.")


if __name__ == "__main__":
    main()
