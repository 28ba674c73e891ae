"""Where a reader starts in a stream: the six GetMedia start selectors (kvs-wire §2.3),
plus "from this fragment on" (a Connect ``StartFragmentNumber``), declared once for the
GetMedia client, the store's readers and the command line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

__all__ = ["CONTAINS_SLACK_MS", "StartSelector", "StartSelectorType", "contains", "select_from"]

StartSelectorType = Literal[
    "NOW",
    "EARLIEST",
    "FRAGMENT_NUMBER",
    "PRODUCER_TIMESTAMP",
    "SERVER_TIMESTAMP",
    "CONTINUATION_TOKEN",
]


@dataclass(frozen=True, slots=True)
class StartSelector:
    """Where GetMedia starts (kvs-wire §2.3). Build with the class methods.

    ``FRAGMENT_NUMBER`` starts *after* ``fragment_number``; :meth:`from_fragment` asks for
    that fragment too (fetched first with GetMediaForFragmentList).
    """

    type: StartSelectorType
    fragment_number: str | None = None
    timestamp_ms: int | None = None
    continuation_token: str | None = None
    inclusive: bool = False

    @classmethod
    def now(cls) -> StartSelector:
        """The live edge."""
        return cls("NOW")

    @classmethod
    def earliest(cls) -> StartSelector:
        """The oldest fragment retained."""
        return cls("EARLIEST")

    @classmethod
    def after_fragment(cls, number: str) -> StartSelector:
        """The fragment after ``number`` (GetMedia's own FRAGMENT_NUMBER semantics)."""
        return cls("FRAGMENT_NUMBER", fragment_number=number)

    @classmethod
    def from_fragment(cls, number: str) -> StartSelector:
        """Fragment ``number`` itself, then everything after it (e.g. a Connect
        ``StartFragmentNumber``)."""
        return cls("FRAGMENT_NUMBER", fragment_number=number, inclusive=True)

    @classmethod
    def producer_timestamp(cls, ms: int) -> StartSelector:
        """The fragment containing producer timestamp ``ms`` (epoch ms)."""
        return cls("PRODUCER_TIMESTAMP", timestamp_ms=ms)

    @classmethod
    def server_timestamp(cls, ms: int) -> StartSelector:
        """The fragment containing server timestamp ``ms`` (epoch ms)."""
        return cls("SERVER_TIMESTAMP", timestamp_ms=ms)

    @classmethod
    def continuation(cls, token: str) -> StartSelector:
        """Where a previous response ended (its last ``CONTINUATION_TOKEN``)."""
        return cls("CONTINUATION_TOKEN", continuation_token=token)

    def to_api(self) -> dict[str, Any]:
        """The ``StartSelector`` request member as boto3 takes it."""
        out: dict[str, Any] = {"StartSelectorType": self.type}
        if self.type == "FRAGMENT_NUMBER":
            if not self.fragment_number:
                raise ValueError("FRAGMENT_NUMBER needs a fragment number")
            out["AfterFragmentNumber"] = self.fragment_number
        elif self.type in ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"):
            if self.timestamp_ms is None:
                raise ValueError(f"{self.type} needs a timestamp")
            out["StartTimestamp"] = dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.UTC)
        elif self.type == "CONTINUATION_TOKEN":
            if not self.continuation_token:
                raise ValueError("CONTINUATION_TOKEN needs a token")
            out["ContinuationToken"] = self.continuation_token
        elif self.type not in ("NOW", "EARLIEST"):
            raise ValueError(f"unknown StartSelectorType {self.type!r}")
        return out


CONTAINS_SLACK_MS = 200
"""A fragment's recorded duration runs from its first frame's start to its last frame's
start; the last frame lasts a little longer (20 ms for Chime, 64 ms for Connect). A time
this close after the last frame's start still lies in the fragment."""


def contains(start_ms: int, duration_ms: int, at_ms: int) -> bool:
    """Does a fragment starting at ``start_ms`` and lasting ``duration_ms`` contain the
    time ``at_ms`` (the rule of the PRODUCER/SERVER_TIMESTAMP start selectors)?"""
    return start_ms <= at_ms <= start_ms + duration_ms + CONTAINS_SLACK_MS


class _Sequenced(Protocol):
    @property
    def fragment_number(self) -> str | None: ...

    @property
    def producer_timestamp_ms(self) -> int | None: ...

    @property
    def server_timestamp_ms(self) -> int | None: ...

    @property
    def start_ns(self) -> int | None: ...

    @property
    def duration_ms(self) -> int: ...


F = TypeVar("F", bound=_Sequenced)


def _number_key(number: str) -> tuple[int, str]:
    return (len(number), number)


def select_from(fragments: Iterable[F], selector: StartSelector) -> Iterator[F]:
    """The fragments of a sequential source (a file, a GetMedia response) from where
    ``selector`` starts, with the store's semantics: FRAGMENT_NUMBER and
    CONTINUATION_TOKEN start after the number (inclusive with :meth:`StartSelector.
    from_fragment`); a timestamp starts with the fragment containing it, else the first
    one after it; EARLIEST and NOW take everything."""
    kind = selector.type
    if kind in ("FRAGMENT_NUMBER", "CONTINUATION_TOKEN"):
        number = selector.fragment_number or selector.continuation_token or ""
        want = _number_key(number)
        for fragment in fragments:
            n = fragment.fragment_number
            if n is None:
                continue
            key = _number_key(n)
            if key > want or (selector.inclusive and key == want):
                yield fragment
        return
    if kind not in ("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP") or selector.timestamp_ms is None:
        yield from fragments
        return
    at = selector.timestamp_ms
    held: F | None = None  # the latest fragment starting at or before the time
    started = False
    for fragment in fragments:
        if not started:
            start = _start_ms(fragment, server=kind == "SERVER_TIMESTAMP")
            if start is None:  # no frames: nothing to place in time
                continue
            if start <= at:
                held = fragment
                continue
            started = True
            if held is not None and _contains(held, at, kind == "SERVER_TIMESTAMP"):
                yield held
        yield fragment
    if not started and held is not None and _contains(held, at, kind == "SERVER_TIMESTAMP"):
        yield held


def _start_ms(fragment: _Sequenced, *, server: bool) -> int | None:
    if server:
        return fragment.server_timestamp_ms
    if fragment.producer_timestamp_ms is not None:
        return int(fragment.producer_timestamp_ms)
    start = fragment.start_ns
    return None if start is None else int(start // 1_000_000)


def _contains(fragment: _Sequenced, at: int, server: bool) -> bool:
    start = _start_ms(fragment, server=server)
    return start is not None and contains(start, fragment.duration_ms, at)
