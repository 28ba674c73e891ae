"""One call out of a stream.

Connect pools and reuses streams, and a Chime leg's stream carries one call after
another: the fragments of a call are those whose tags name it (``ContactId`` for
Connect, ``TransactionId`` / ``CallId`` for Chime Voice Connector). A
:class:`CallWindow` judges fragments in stream order: fragments of earlier calls are
skipped, the call's fragments taken (tagless ones belong to the run they sit in), and
the window stops when the stream moves on. The same rule serves the command line, the
store's in-process readers and the analytics.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Literal, Protocol, TypeVar

__all__ = ["CALL_ID_TAGS", "CallWindow", "Tagged", "call_fragments", "call_fragments_async"]

CALL_ID_TAGS = ("ContactId", "TransactionId", "CallId")
"""Tags naming the call a fragment belongs to (Connect, Chime)."""

Verdict = Literal["skip", "take", "stop"]


class Tagged(Protocol):
    """A fragment with producer tags."""

    @property
    def tags(self) -> Mapping[str, str]: ...


F = TypeVar("F", bound=Tagged)


class CallWindow:
    """Judges fragments in stream order (see the module docstring). With ``call_id``
    that call is wanted (its ContactId, TransactionId or CallId); without it, the first
    call seen; ``follow_all`` takes everything."""

    def __init__(self, call_id: str | None = None, *, follow_all: bool = False) -> None:
        self.call_id = call_id
        self.follow_all = follow_all
        self.seen = False

    def judge(self, tags: Mapping[str, str]) -> Verdict:
        """``"skip"``, ``"take"`` or ``"stop"`` for the next fragment's tags."""
        if self.follow_all:
            return "take"
        ids = [tags[t] for t in CALL_ID_TAGS if t in tags]
        if not ids:
            return "take" if self.seen or self.call_id is None else "skip"
        if self.call_id is None:
            self.call_id = ids[0]  # lock onto the first call seen
        if self.call_id in ids:
            self.seen = True
            return "take"
        return "stop" if self.seen else "skip"


def call_fragments(
    fragments: Iterable[F], call_id: str | None = None, *, follow_all: bool = False
) -> Iterator[F]:
    """The fragments of one call (see :class:`CallWindow`)."""
    window = CallWindow(call_id, follow_all=follow_all)
    for fragment in fragments:
        verdict = window.judge(fragment.tags)
        if verdict == "stop":
            return
        if verdict == "take":
            yield fragment


async def call_fragments_async(
    fragments: AsyncIterable[F], call_id: str | None = None, *, follow_all: bool = False
) -> AsyncIterator[F]:
    """:func:`call_fragments` for an async source (a live store reader)."""
    window = CallWindow(call_id, follow_all=follow_all)
    async for fragment in fragments:
        verdict = window.judge(fragment.tags)
        if verdict == "stop":
            return
        if verdict == "take":
            yield fragment
