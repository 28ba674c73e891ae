"""Fuzz entry point for the MKV/KVS readers.

:func:`fuzz_one` feeds one input to :class:`EbmlReader` and :class:`FragmentReader` in
several chunkings. The only acceptable failure is :class:`MkvError`, and the outcome (the
fragments, or the error message) must not depend on the chunking; anything else raises.

``python -m callstream.mkv.fuzz --seconds 10`` runs it under atheris when that is
installed, else a random-mutation loop seeded with the KVS test captures (``shared/
testdata/kvs`` next to the repository, or ``--corpus DIR``) and a few built-in documents.
An input that fails is written to ``--crash-dir`` and the run exits with status 1.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from callstream.mkv import writer
from callstream.mkv.ebml import ID, MkvError
from callstream.mkv.kvs import Fragment, FragmentReader, render_fragment
from callstream.mkv.reader import Block, EbmlReader

__all__ = ["builtin_corpus", "fuzz_one", "main", "mutate"]

_BYTEWISE_LIMIT = 4096  # inputs up to this size are also fed one byte at a time


def _chunkings(data: bytes) -> Iterator[list[int]]:
    n = len(data)
    yield []  # whole
    yield [7] * (n // 7 + 1)
    rng = random.Random(zlib.crc32(data))
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(rng.choice((1, 2, 3, 5, 64, 1000, 65536)))
    yield sizes
    if n <= _BYTEWISE_LIMIT:
        yield [1] * n


def _fragments(data: bytes, sizes: list[int]) -> tuple[str, object]:
    reader = FragmentReader()
    out: list[Fragment] = []
    pos = 0
    try:
        for size in sizes:
            out += reader.feed(data[pos : pos + size])
            pos += size
        out += reader.feed(data[pos:])
        out += reader.close()
    except MkvError as err:
        if not 0 <= err.offset <= len(data):
            raise AssertionError(f"error offset {err.offset} outside the input") from err
        return ("error", str(err))
    return ("ok", out)


def _events(data: bytes, sizes: list[int]) -> tuple[str, object]:
    reader = EbmlReader()
    out: list[object] = []
    pos = 0
    try:
        for size in [*sizes, len(data)]:
            reader.feed(data[pos : pos + size])
            pos += size
            out.extend(reader.events())
        reader.close()
        out.extend(reader.events())
    except MkvError as err:
        return ("error", str(err))
    for ev in out:
        if type(ev) is Block and not all(type(f) is bytes for f in ev.frames):
            raise AssertionError("block frames are not bytes")
    return ("ok", out)


def fuzz_one(data: bytes) -> None:
    """Parse ``data`` in a few chunkings; raise on anything but a consistent outcome."""
    for parse in (_fragments, _events):
        reference: tuple[str, object] | None = None
        for sizes in _chunkings(data):
            outcome = parse(data, sizes)
            if reference is None:
                reference = outcome
            elif outcome != reference:
                raise AssertionError(
                    f"{parse.__name__}: chunking {sizes[:4]}... changed the outcome:"
                    f" {str(outcome)[:200]} != {str(reference)[:200]}"
                )


# --- the mutation loop --------------------------------------------------------------------


def builtin_corpus() -> list[bytes]:
    """Small documents covering the shapes the readers handle."""
    tracks = writer.tracks(
        [
            writer.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
            writer.TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
        ]
    )
    header = writer.info(segment_uid=bytes(16)) + tracks
    blocks = [writer.simple_block(1 + k % 2, k * 32, bytes([k]) * 40) for k in range(6)]
    laced = writer.element(ID.SimpleBlock, b"\x81\x00\x00\x86\x02\x83\x82" + b"abcdefghi")
    getmedia = b"".join(
        render_fragment(
            ebml_header=writer.ebml_header(),
            header=header,
            cluster=writer.cluster(1000 * i, blocks, unknown_size=bool(i % 2), timecode_width=8),
            trailer=writer.tags([("ContactId", "c")], size_width=8),
            fragment_number=str(i),
            server_timestamp_ms=1000 * i,
            producer_timestamp_ms=1000 * i,
            millis_behind_now=0,
            continuation_token=str(i),
        )
        for i in range(2)
    )
    plain = writer.ebml_header() + writer.master(
        ID.Segment, [header, writer.tags([("k", "v")]), writer.cluster(0, [laced, *blocks])]
    )
    return [getmedia, plain]


def default_corpus_dir() -> Path:
    """``shared/testdata/kvs`` next to the repository this module was installed from."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "kvs"


def load_corpus(directory: Path | None) -> list[bytes]:
    corpus = builtin_corpus()
    directory = directory or default_corpus_dir()
    if directory.is_dir():
        for path in sorted(directory.rglob("*")):
            if path.suffix == ".mkv":
                corpus.append(path.read_bytes())
            elif path.name.endswith(".ebml.hex"):
                text = "".join(
                    line for line in path.read_text().splitlines() if not line.startswith("#")
                )
                corpus.append(bytes.fromhex("".join(text.split())))
    return corpus


_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x81, 0xFF, 0x10, 0x1A, 0x1F, 0xA3, 0xE7)
_TOKENS = (  # element IDs, unknown sizes, block headers, hostile tag values
    b"\x1a\x45\xdf\xa3",
    b"\x18\x53\x80\x67",
    b"\x1f\x43\xb6\x75",
    b"\x12\x54\xc3\x67",
    b"\x73\x73",
    b"\x67\xc8",
    b"\x01\xff\xff\xff\xff\xff\xff\xff",
    b"\xff",
    b"\x08\x00\x00\x00\x00",
    b"\xa3\x84\x81\x80\x00\x86",
    b"9e999999",
    b"Infinity",
    b"NaN",
    b"-0.5",
    b"99999999999999999999999",
)


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    """A few random edits: bit flips, interesting bytes, inserts, deletes, duplicates,
    truncation, and splices with another corpus input."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf = bytearray(rng.choice(corpus)[:64])
        i = rng.randrange(len(buf))
        op = rng.randrange(9)
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i] = rng.choice(_INTERESTING)
        elif op == 2:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3:
            del buf[i : i + rng.randint(1, 32)]
        elif op == 4:
            span = rng.randint(1, 64)
            buf[i:i] = buf[i : i + span]
        elif op == 5:
            del buf[i:]
        elif op == 6:  # rewrite a would-be size byte as a long vint
            buf[i : i + 1] = bytes([0x01, 0, 0, 0, 0, 0, 0, rng.randrange(256)])
        elif op == 7:  # overwrite with a token (keeps sizes around it intact)
            token = rng.choice(_TOKENS)
            buf[i : i + len(token)] = token
        else:
            other = rng.choice(corpus)
            j = rng.randrange(len(other))
            buf[i:] = other[j : j + rng.randint(1, 4096)]
    return bytes(buf)


def _window(data: bytes, rng: random.Random, limit: int = 64 * 1024) -> bytes:
    """Big captures: fuzz a prefix (headers) or a slice, to keep iterations fast."""
    if len(data) <= limit:
        return data
    if rng.random() < 0.5:
        return data[: rng.randint(1, limit)]
    start = rng.randrange(len(data) - limit)
    return data[start : start + limit]


def run_loop(
    seconds: float,
    *,
    seed: int,
    corpus: list[bytes],
    crash_dir: Path,
    log: Callable[[str], None] = print,
) -> int:
    """Mutate and check inputs for ``seconds``; returns the number of iterations."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    iterations = 0
    while time.monotonic() < deadline:
        data = mutate(_window(rng.choice(corpus), rng), rng, corpus)
        try:
            fuzz_one(data)
        except Exception:
            crash_dir.mkdir(parents=True, exist_ok=True)
            path = crash_dir / f"crash-{zlib.crc32(data):08x}.mkv"
            path.write_bytes(data)
            log(f"crash after {iterations} iterations; input saved to {path}")
            raise
        iterations += 1
    return iterations


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m callstream.mkv.fuzz", description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--crash-dir", type=Path, default=Path("mkv-fuzz-crashes"))
    ap.add_argument("--no-atheris", action="store_true", help="use the built-in loop")
    args, rest = ap.parse_known_args(argv)
    try:
        if args.no_atheris:
            raise ImportError
        import atheris
    except ImportError:
        corpus = load_corpus(args.corpus)
        print(f"mutation loop: {len(corpus)} corpus inputs, seed {args.seed}, {args.seconds}s")
        try:
            n = run_loop(args.seconds, seed=args.seed, corpus=corpus, crash_dir=args.crash_dir)
        except Exception as err:  # reported above, with the saved input
            print(f"FAILED: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        print(f"ok: {n} inputs, no failure")
        return 0

    def one_input(data: bytes) -> None:
        fuzz_one(data)

    atheris.Setup([sys.argv[0], f"-max_total_time={int(args.seconds)}", *rest], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
