"""Fuzz entry point for the flow loader (and the interpreter behind it).

:func:`fuzz_one` loads one input as a flow with :func:`~callstream.flows.loader.load_flow`.
The only acceptable failure is :class:`~callstream.flows.model.FlowError`; a flow that loads
is then run by :class:`~callstream.flows.interpreter.FlowRun` against a scripted runner (a
bounded number of effects, then a hang-up), which must not raise at all: whatever the loader
accepts, the interpreter can execute.

``python -m callstream.flows.fuzz --seconds 10`` runs it under atheris when that is
installed, else a random-mutation loop seeded with a built-in corpus (one flow of each
format exercising every action type and legacy module type) and the exported flows in
``shared/testdata/connect-flows`` next to the repository (or ``--corpus DIR``). Mutations
work on the JSON tree (type swaps at any path, deletions, insertions, duplicated keys) and on
the bytes (flips, non-UTF-8 bytes, truncation). An input that fails is written to
``--crash-dir`` and the run exits with status 1.
"""

from __future__ import annotations

import copy
import json
import random
import sys
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from callstream.flows.contact import Contact
from callstream.flows.effects import (
    Effect,
    Failed,
    FlowEnded,
    GetInput,
    InputResult,
    InvokeLambda,
    LambdaResult,
    MediaStreamingStarted,
    MediaStreamingStopped,
    Result,
    StartMediaStreaming,
    StopMediaStreaming,
    TransferResult,
    TransferToQueue,
    WaitFor,
    WaitResult,
)
from callstream.flows.instance import Instance
from callstream.flows.interpreter import FlowRun
from callstream.flows.loader import load_flow
from callstream.flows.model import Flow, FlowError
from callstream.flows.registry import FlowRegistry
from callstream.flows.samples import sample_flows
from callstream.fuzzing import DEFAULT_TOKENS, fuzz_main
from callstream.fuzzing import mutate as fuzzing_mutate

__all__ = [
    "FLOW_KEYS",
    "builtin_corpus",
    "fuzz_one",
    "main",
    "mutate",
    "mutate_tree",
    "run_flow",
    "tree_at",
    "tree_paths",
]

MAX_EFFECTS = 200
"""Effects performed per run before the scripted customer hangs up."""

_T0 = datetime(2024, 1, 26, 3, 7, 41, tzinfo=UTC)


def run_flow(flow: Flow, seed: int) -> FlowEnded:
    """Run ``flow`` for a voice contact; the runner's answers are drawn from ``seed``.

    Each effect gets a plausible result (success, failure, timeout, at capacity, digits)
    so that error and condition branches are taken too.
    """
    rng = random.Random(seed)
    now = [_T0]

    def clock() -> datetime:
        return now[0]

    instance = Instance()
    contact = Contact.new(instance=instance, contact_id="fuzz-contact", now=_T0)
    run = FlowRun(
        flow,
        contact,
        instance=instance,
        flows=FlowRegistry(flow),
        clock=clock,
        rng=random.Random(seed),
        max_idle_steps=100,
    )

    def perform(effect: Effect) -> Result:
        now[0] += timedelta(seconds=rng.choice((0, 1, 5, 3600)))
        fail = rng.random() < 0.2
        if isinstance(effect, StartMediaStreaming):
            if fail:
                return Failed("scripted failure")
            return MediaStreamingStarted("arn:aws:kinesisvideo:us-east-1:1:stream/s/1", "9" * 20)
        if isinstance(effect, StopMediaStreaming):
            return Failed("scripted failure") if fail else MediaStreamingStopped()
        if isinstance(effect, InvokeLambda):
            if fail:
                return Failed("scripted failure", timeout=rng.random() < 0.5)
            return LambdaResult(rng.choice(({"statusCode": 200}, {"a": "1"}, [], "x")))
        if isinstance(effect, GetInput):
            return InputResult(rng.choice((None, "1", "2", "+15555550100", "12#")))
        if isinstance(effect, WaitFor):
            return WaitResult(rng.choice((None, "CustomerReturned")))
        if isinstance(effect, TransferToQueue):
            return TransferResult(rng.choice(("queued", "at_capacity")))
        return Failed("scripted failure") if fail and effect.results else None

    effect = run.start()
    for _ in range(MAX_EFFECTS):
        if isinstance(effect, FlowEnded):
            break
        effect = run.resume(perform(effect))
    if not isinstance(effect, FlowEnded) or not effect.contact_ended:
        effect = run.hangup()
        while not isinstance(effect, FlowEnded):
            effect = run.resume(perform(effect))
    return effect


def fuzz_one(data: bytes) -> None:
    """Load ``data`` as a flow and run it; raise on anything but a :class:`FlowError`."""
    try:
        flow = load_flow(data)
    except FlowError as err:
        if not str(err):
            raise AssertionError("FlowError without a message") from err
        return
    run_flow(flow, zlib.crc32(data))


# --- the corpus -----------------------------------------------------------------------------


def builtin_corpus() -> list[bytes]:
    """Valid flows covering every implemented action type and every legacy module type
    (:func:`callstream.flows.samples.sample_flows`)."""
    return [json.dumps(doc, indent=1).encode() for doc in sample_flows()]


def default_corpus_dir() -> Path:
    """``shared/testdata/connect-flows`` next to the repository this module came from."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "connect-flows"


def load_corpus(directory: Path | None) -> list[bytes]:
    """The built-in corpus plus every ``*.json`` under ``directory`` (default: shared)."""
    corpus = builtin_corpus()
    directory = directory or default_corpus_dir()
    if directory.is_dir():
        corpus += [path.read_bytes() for path in sorted(directory.rglob("*.json"))]
    return corpus


# --- mutations ----------------------------------------------------------------------------

_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    7,
    1.5,
    10**30,
    "",
    " ",
    "x",
    "True",
    "5",
    "-3",
    "$.Attributes.x",
    "$.Nope.y",
    "Hi $.Attributes.x",
    "\u0000",
    "\ud800x",
    [],
    [None],
    ["x"],
    [{}],
    {},
    {"x": 1},
    {"name": "x", "value": "y"},
)
FLOW_KEYS: tuple[str, ...] = (
    "Identifier",
    "Type",
    "Parameters",
    "Transitions",
    "NextAction",
    "Errors",
    "Conditions",
    "Condition",
    "Operator",
    "Operands",
    "ErrorType",
    "Metadata",
    "ActionMetadata",
    "StartAction",
    "Version",
    "Actions",
    "modules",
    "parameters",
    "branches",
    "metadata",
    "id",
    "type",
    "target",
    "start",
    "name",
    "value",
    "namespace",
    "key",
    "condition",
    "transition",
    "conditionType",
    "conditionValue",
    "resourceName",
    "InputValidation",
    "CustomValidation",
    "PhoneNumberValidation",
    "MaximumLength",
    "DTMFConfiguration",
    "RecordingBehavior",
    "RecordedParticipants",
    "AnalyticsBehavior",
    "Participants",
    "MediaDirections",
    "InvocationTimeLimitSeconds",
)
"""Keys of both flow formats that the loader reads: what a mutation inserts."""


def tree_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path (keys and indexes) of every node of a parsed JSON document, root first."""
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += tree_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += tree_paths(value, (*path, index))
    return out


def tree_at(node: Any, path: tuple[Any, ...]) -> Any:
    """The node at ``path`` (as given by :func:`tree_paths`)."""
    for step in path:
        node = node[step]
    return node


def _random_value(rng: random.Random, doc: Any, paths: list[tuple[Any, ...]]) -> Any:
    if rng.random() < 0.2:  # a subtree from elsewhere in the document (wrong nesting)
        return copy.deepcopy(tree_at(doc, rng.choice(paths)))
    return copy.deepcopy(rng.choice(_VALUES))


def mutate_tree(doc: Any, rng: random.Random) -> Any:
    """A few structural edits of a parsed document: replace any node with a value of another
    type or a subtree from elsewhere, delete keys or items, insert keys or items."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = tree_paths(doc)
        path = rng.choice(paths)
        value = _random_value(rng, doc, paths)
        if not path:
            doc = value
            continue
        parent = tree_at(doc, path[:-1])
        op = rng.randrange(4)
        if op == 0:
            parent[path[-1]] = value
        elif op == 1:
            del parent[path[-1]]
        elif op == 2 and isinstance(parent, dict):
            parent[rng.choice((*FLOW_KEYS, "extra"))] = value
        elif op == 2:
            parent.insert(path[-1], value)
        else:
            target = tree_at(doc, path)
            if isinstance(target, dict):
                target[rng.choice(FLOW_KEYS)] = value
            elif isinstance(target, list):
                target.append(value)
            else:
                parent[path[-1]] = value
    return doc


_TOKENS = (  # bytes that break UTF-8 or JSON
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\\ud800",
    b'"',
    b"{",
    b"]",
    *DEFAULT_TOKENS,
)


def mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes]) -> bytes:
    """Mostly structural edits of the parsed JSON, sometimes byte edits
    (:func:`callstream.fuzzing.mutate` with UTF-8 and JSON tokens)."""
    if rng.random() < 0.75:
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if doc is not None:
            text = json.dumps(mutate_tree(doc, rng), ensure_ascii=rng.random() < 0.5)
            data = text.encode("utf-8", "surrogatepass")
            if rng.random() < 0.9:
                return data
    return fuzzing_mutate(data, rng, corpus, _TOKENS)


def main(argv: list[str] | None = None) -> int:
    """``python -m callstream.flows.fuzz``: see the module docstring."""
    return fuzz_main(
        argv,
        prog="python -m callstream.flows.fuzz",
        description=__doc__,
        target=fuzz_one,
        load_corpus=load_corpus,
        mutator=mutate,
        suffix=".json",
        crash_dir="flow-fuzz-crashes",
    )


if __name__ == "__main__":
    sys.exit(main())
