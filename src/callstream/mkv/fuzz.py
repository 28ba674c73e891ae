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

import random
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from callstream.fuzzing import DEFAULT_TOKENS, fuzz_main
from callstream.fuzzing import mutate as fuzzing_mutate
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


_TOKENS = (  # element IDs, unknown sizes, block headers, hostile tag values
    b"\x1a\x45\xdf\xa3",
    b"\x18\x53\x80\x67",
    b"\x1f\x43\xb6\x75",
    b"\x12\x54\xc3\x67",
    b"\x73\x73",
    b"\x67\xc8",
    b"\x01\xff\xff\xff\xff\xff\xff\xff",
    b"\x08\x00\x00\x00\x00",
    b"\xa3\x84\x81\x80\x00\x86",
    *DEFAULT_TOKENS,
)


def mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes]) -> bytes:
    """:func:`callstream.fuzzing.mutate` with EBML tokens, on a window of big inputs."""
    return fuzzing_mutate(_window(data, rng), rng, corpus, _TOKENS)


def _window(data: bytes, rng: random.Random, limit: int = 64 * 1024) -> bytes:
    """Big captures: fuzz a prefix (headers) or a slice, to keep iterations fast."""
    if len(data) <= limit:
        return data
    if rng.random() < 0.5:
        return data[: rng.randint(1, limit)]
    start = rng.randrange(len(data) - limit)
    return data[start : start + limit]


def main(argv: list[str] | None = None) -> int:
    return fuzz_main(
        argv,
        prog="python -m callstream.mkv.fuzz",
        description=__doc__,
        target=fuzz_one,
        load_corpus=load_corpus,
        mutator=mutate,
        suffix=".mkv",
        crash_dir="mkv-fuzz-crashes",
    )


if __name__ == "__main__":
    sys.exit(main())
