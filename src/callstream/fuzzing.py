"""The mutation loop the fuzz entry points share (``callstream.mkv.fuzz``,
``callstream.flows.fuzz``, ``callstream.api.fuzz``, ``callstream.voice.fuzz``,
``callstream.ingest.fuzz``).

Each entry point supplies a target (one input in, an exception out when the code under
test misbehaves) and a corpus; this module mutates corpus inputs, runs the target on
them for a time or a number of iterations, saves an input that fails, and runs the
target under atheris instead when that is installed and asked for. An entry point with
several targets names each with a :class:`FuzzTarget` and picks one with ``--target``
(:func:`targets_main`).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FuzzTarget",
    "Mutator",
    "Target",
    "corpus_files",
    "fuzz_main",
    "mutate",
    "run_loop",
    "targets_main",
]

Target = Callable[[bytes], None]
"""Runs one input; raises (anything) when the code under test misbehaved on it."""
Mutator = Callable[[bytes, random.Random, Sequence[bytes]], bytes]
"""Makes a new input from a corpus input, a random generator and the whole corpus."""

_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0x81, 0xFF, 0x10, 0x1A, 0x1F, 0xA3, 0xE7)
DEFAULT_TOKENS: tuple[bytes, ...] = (
    b"\xff",
    b"9e999999",
    b"1e999999999",
    b"Infinity",
    b"NaN",
    b"-0.5",
    b"99999999999999999999999",
    b"null",
    b"[]",
    b"{}",
    b'""',
)


def mutate(
    data: bytes,
    rng: random.Random,
    corpus: Sequence[bytes],
    tokens: Sequence[bytes] = DEFAULT_TOKENS,
) -> bytes:
    """A few random edits: bit flips, interesting bytes, inserts, deletes, duplicates,
    truncation, long variable-length integers, tokens, and splices with another corpus
    input."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf = bytearray(rng.choice(corpus)[:64])
            if not buf:
                buf = bytearray(b"\x00")
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
        elif op == 6:  # a would-be size byte rewritten as a long vint
            buf[i : i + 1] = bytes([0x01, 0, 0, 0, 0, 0, 0, rng.randrange(256)])
        elif op == 7:  # overwrite with a token (keeps what is around it intact)
            token = rng.choice(tokens)
            buf[i : i + len(token)] = token
        else:
            other = rng.choice(corpus)
            j = rng.randrange(max(1, len(other)))
            buf[i:] = other[j : j + rng.randint(1, 4096)]
    return bytes(buf)


def corpus_files(directory: Path | None) -> list[bytes]:
    """The files directly in ``directory``, in name order (none without one)."""
    if directory is None or not directory.is_dir():
        return []
    return [path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()]


def run_loop(
    target: Target,
    corpus: Sequence[bytes],
    *,
    seed: int,
    crash_dir: Path,
    seconds: float | None = None,
    iterations: int | None = None,
    mutator: Mutator = mutate,
    suffix: str = ".bin",
    log: Callable[[str], None] = print,
) -> int:
    """Mutate corpus inputs and run ``target`` on them, for ``seconds`` or ``iterations``
    (whichever ends first); returns the number of inputs run. An input that fails is
    saved in ``crash_dir`` and its exception re-raised."""
    if not corpus:
        raise ValueError("empty corpus")
    if seconds is None and iterations is None:
        raise ValueError("give seconds or iterations")
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds if seconds is not None else None
    done = 0
    while (deadline is None or time.monotonic() < deadline) and (
        iterations is None or done < iterations
    ):
        data = mutator(rng.choice(corpus), rng, corpus)
        try:
            target(data)
        except Exception:
            crash_dir.mkdir(parents=True, exist_ok=True)
            path = crash_dir / f"crash-{zlib.crc32(data):08x}{suffix}"
            path.write_bytes(data)
            log(f"crash after {done} inputs; input saved to {path}")
            raise
        done += 1
    return done


def fuzz_main(
    argv: list[str] | None,
    *,
    prog: str,
    description: str | None,
    target: Target,
    load_corpus: Callable[[Path | None], list[bytes]],
    mutator: Mutator = mutate,
    suffix: str = ".bin",
    crash_dir: str = "fuzz-crashes",
) -> int:
    """The command line of a fuzz entry point: ``--seconds``, ``--iterations``, ``--seed``,
    ``--corpus``, ``--crash-dir``; atheris when installed (unless ``--no-atheris``)."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--iterations", type=int, default=None, help="stop after this many inputs")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--corpus", type=Path, default=None, help="more seed inputs (a folder)")
    ap.add_argument("--crash-dir", type=Path, default=Path(crash_dir))
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
            n = run_loop(
                target,
                corpus,
                seed=args.seed,
                seconds=args.seconds,
                iterations=args.iterations,
                crash_dir=args.crash_dir,
                mutator=mutator,
                suffix=suffix,
            )
        except Exception as err:  # reported above, with the saved input
            print(f"FAILED: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        print(f"ok: {n} inputs, no failure")
        return 0
    limits = [f"-max_total_time={int(args.seconds)}"]
    if args.iterations is not None:
        limits.append(f"-runs={args.iterations}")
    atheris.Setup([sys.argv[0], *limits, *rest], target)
    atheris.Fuzz()
    return 0


@dataclass(frozen=True)
class FuzzTarget:
    """A named fuzz target: the function run on each input, its corpus loader (given
    ``--corpus``), its mutator and the suffix of saved crash files."""

    run: Target
    load_corpus: Callable[[Path | None], list[bytes]]
    mutator: Mutator = mutate
    suffix: str = ".bin"


def targets_main(
    argv: list[str] | None,
    *,
    prog: str,
    description: str | None,
    targets: Mapping[str, FuzzTarget],
    default: str,
    crash_dir: str,
) -> int:
    """The command line of an entry point with several targets: ``--target NAME`` (one of
    ``targets``, else ``default``) plus the options of :func:`fuzz_main`."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--target", choices=sorted(targets), default=default)
    args, rest = pre.parse_known_args(argv)
    target = targets[args.target]
    return fuzz_main(
        rest,
        prog=f"{prog} --target {args.target}",
        description=description,
        target=target.run,
        load_corpus=target.load_corpus,
        mutator=target.mutator,
        suffix=target.suffix,
        crash_dir=crash_dir,
    )
