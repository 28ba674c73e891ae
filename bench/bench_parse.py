"""Parse throughput on a ~50 MB two-track Connect-shaped GetMedia payload.

Every reader extracts every block payload as ``bytes``; all are measured in the same run,
round-robin (each round times every reader once, so a busy moment of a shared machine
hits all of them alike), ``--repeat`` rounds; the table shows the best and the median
(wall clock). Prints a markdown table.

    python bench/bench_parse.py                 # 64 ms / 1024-byte blocks (Connect)
    python bench/bench_parse.py --cadence 20    # 20 ms / 320-byte blocks
"""

from __future__ import annotations

import argparse
import gc
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from callstream.mkv import ID, Block, BlockRun, EbmlReader, FragmentReader
from make_payloads import CONNECT_20MS, CONNECT_64MS, payload_50mb

CHUNK = 64 * 1024
Result = tuple[int, int]  # blocks, payload bytes


# EbmlReader's opt-in fast event mode (what FragmentReader uses): small header masters
# whole, runs of SimpleBlocks as one BlockRun event.
FAST_COLLAPSE = (ID.EBML, ID.Info, ID.Tracks, ID.Tags, ID.SeekHead, ID.Cues)


def callstream_events(data: bytes, chunk: int | None, fast: bool = False) -> Result:
    reader = EbmlReader(collapse=FAST_COLLAPSE, batch_blocks=True) if fast else EbmlReader()
    blocks = nbytes = 0
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        reader.feed(piece)
        for ev in reader.events():
            if type(ev) is Block:
                blocks += 1
                for frame in ev.frames:
                    nbytes += len(frame)
            elif type(ev) is BlockRun:
                payloads = ev.flat[4::5]
                blocks += len(payloads)
                nbytes += sum(map(len, payloads))  # type: ignore[arg-type]
    reader.close()
    for _ in reader.events():
        pass
    return blocks, nbytes


def callstream_streamed(data: bytes, chunk: int) -> Result:
    """Fragments handled as they complete and then dropped (what ``iter_fragments`` users
    do, and what the PyAV loop does with its packets)."""
    reader = FragmentReader()
    blocks = nbytes = 0
    for i in range(0, len(data), chunk):
        for frag in reader.feed(data[i : i + chunk]):
            for f in frag.frames:
                blocks += 1
                nbytes += len(f.data)
    for frag in reader.close():
        for f in frag.frames:
            blocks += 1
            nbytes += len(f.data)
    return blocks, nbytes


def callstream_fragments(data: bytes, chunk: int | None) -> Result:
    reader = FragmentReader()
    frags = []
    if chunk is None:
        frags += reader.feed(data)
    else:
        for i in range(0, len(data), chunk):
            frags += reader.feed(data[i : i + chunk])
    frags += reader.close()
    frames = [f for frag in frags for f in frag.frames]
    return len(frames), sum(len(f.data) for f in frames)


def ebmlite_walk(data: bytes) -> Result:
    import ebmlite

    schema = ebmlite.loadSchema("matroska.xml")
    doc = schema.load(io.BytesIO(data), headers=True)
    master = ebmlite.core.MasterElement
    counts = [0, 0]

    def walk(element: object) -> None:
        for child in element:  # type: ignore[attr-defined]
            if isinstance(child, master):
                walk(child)
            elif child.name == "SimpleBlock":
                payload = bytes(child.value[4:])  # 1-byte track, int16 timecode, flags
                counts[0] += 1
                counts[1] += len(payload)
            else:
                _ = child.value

    walk(doc)
    return counts[0], counts[1]


def pyav_demux(data: bytes) -> Result:
    import av

    av.logging.set_level(None)  # ffmpeg logs each extra Segment as an error
    blocks = nbytes = 0
    with av.open(io.BytesIO(data), format="matroska") as container:
        for packet in container.demux():
            if packet.size:
                payload = bytes(packet)
                blocks += 1
                nbytes += len(payload)
    return blocks, nbytes


def timed(fn: Callable[[], Result]) -> tuple[float, Result]:
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def ffmpeg_cli(path: Path, repeat: int) -> float:
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "quiet",
        "-i",
        str(path),
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cadence", type=int, choices=(64, 20), default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-ffmpeg", action="store_true")
    args = ap.parse_args()
    cadence = CONNECT_64MS if args.cadence == 64 else CONNECT_20MS
    data = payload_50mb(cadence)
    mb = len(data) / 1e6
    readers: list[tuple[str, str, Callable[[], Result]]] = [
        ("callstream EbmlReader (events)", "whole", lambda: callstream_events(data, None)),
        ("callstream EbmlReader (events)", "64 KiB chunks", lambda: callstream_events(data, CHUNK)),
        (
            "callstream EbmlReader (events; collapse + batch_blocks)",
            "whole",
            lambda: callstream_events(data, None, fast=True),
        ),
        (
            "callstream FragmentReader (fragments+frames)",
            "whole",
            lambda: callstream_fragments(data, None),
        ),
        (
            "callstream FragmentReader (fragments+frames)",
            "64 KiB chunks",
            lambda: callstream_fragments(data, CHUNK),
        ),
        (
            "callstream FragmentReader (fragments+frames)",
            "64 KiB chunks, streamed",
            lambda: callstream_streamed(data, CHUNK),
        ),
        ("ebmlite 3.4.1 (schema load, full walk)", "whole (BytesIO)", lambda: ebmlite_walk(data)),
        ("PyAV (demux, bytes(packet))", "whole (BytesIO)", lambda: pyav_demux(data)),
    ]
    times: list[list[float]] = [[] for _ in readers]
    results: list[Result | None] = [None] * len(readers)
    for _ in range(args.repeat):
        for i, (_, _, fn) in enumerate(readers):
            seconds, results[i] = timed(fn)
            times[i].append(seconds)
    rows: list[tuple[str, str, float, float, Result | None]] = [
        (name, mode, min(t), statistics.median(t), result)
        for (name, mode, _), t, result in zip(readers, times, results, strict=True)
    ]
    if not args.no_ffmpeg and shutil.which("ffmpeg"):
        # ffmpeg refuses to stream-copy Connect's A_AAC-over-L16 tracks (no sample rate
        # in the bogus AAC config), so it reads the same layout declared A_PCM/INT/LIT.
        pcm = payload_50mb(cadence, pcm_tracks=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "payload.mkv"
            path.write_bytes(pcm)
            seconds = ffmpeg_cli(path, 3) * len(data) / len(pcm)
        rows.append(
            (
                "ffmpeg 5.1 CLI (-c copy -f null), native",
                "file (A_PCM twin), incl. process start",
                seconds,
                seconds,
                None,
            )
        )

    expected = rows[0][4]
    base = next(r[2] for r in rows if r[0].startswith("ebmlite"))
    base_median = next(r[3] for r in rows if r[0].startswith("ebmlite"))
    pyav = next(r[2] for r in rows if r[0].startswith("PyAV"))
    print(
        f"Payload: {len(data):,} bytes, {args.cadence} ms blocks, two tracks, Connect GetMedia shape;"
    )
    print(f"{args.repeat} round-robin rounds (ffmpeg: best of 3), wall clock.\n")
    print(
        "| reader | input | MB/s (best) | MB/s (median) | blocks | payload bytes"
        " | vs ebmlite (best; median) | vs PyAV (best) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, mode, best, median, result in rows:
        blocks, nbytes = result if result else ("-", "-")
        note = "" if result is None or result == expected else " (!)"
        print(
            f"| {name} | {mode} | {mb / best:.0f} | {mb / median:.0f} | {blocks}{note}"
            f" | {nbytes}{note} | {base / best:.1f}x; {base_median / median:.1f}x"
            f" | {pyav / best:.2f}x |"
        )
    print()
    for name, mode, best, _, _ in rows:
        if name.startswith("callstream FragmentReader"):
            ratio = base / best
            verdict = "PASS" if ratio >= 5 and best < pyav else "MISS"
            print(
                f"- FragmentReader, {mode}: {mb / best:.0f} MB/s, {ratio:.1f}x ebmlite,"
                f" {pyav / best:.2f}x PyAV (targets >= 5x ebmlite and faster than PyAV): {verdict}"
            )


if __name__ == "__main__":
    main()
