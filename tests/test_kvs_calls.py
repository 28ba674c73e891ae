"""The call window: one call out of a pooled stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from callstream.kvs.calls import CallWindow, call_fragments, call_fragments_async


@dataclass
class Frag:
    name: str
    tags: dict[str, str] = field(default_factory=dict)


STREAM = [
    Frag("a1", {"ContactId": "a"}),
    Frag("a2"),
    Frag("b1", {"ContactId": "b"}),
    Frag("b2"),
    Frag("b3", {"ContactId": "b"}),
    Frag("c1", {"TransactionId": "c", "CallId": "c-call"}),
]


def names(frags: object) -> list[str]:
    return [f.name for f in frags]  # type: ignore[attr-defined]


def test_the_first_call_seen_when_none_is_named() -> None:
    assert names(call_fragments(STREAM)) == ["a1", "a2"]


def test_a_named_call_skips_earlier_ones_and_stops_at_the_next() -> None:
    assert names(call_fragments(STREAM, "b")) == ["b1", "b2", "b3"]


def test_a_chime_leg_by_transaction_or_call_id() -> None:
    assert names(call_fragments(STREAM, "c-call")) == ["c1"]
    assert names(call_fragments(STREAM, "c")) == ["c1"]


def test_follow_all_takes_everything_and_an_unknown_call_nothing() -> None:
    assert names(call_fragments(STREAM, follow_all=True)) == names(STREAM)
    assert names(call_fragments(STREAM, "zzz")) == []


def test_tagless_fragments_before_the_call_are_skipped() -> None:
    window = CallWindow("b")
    assert [window.judge(f.tags) for f in [Frag("x"), *STREAM[2:4]]] == ["skip", "take", "take"]


def test_the_async_window_is_the_same() -> None:
    async def source() -> AsyncIterator[Frag]:
        for f in STREAM:
            yield f

    async def collect() -> list[Frag]:
        return [f async for f in call_fragments_async(source(), "b")]

    assert names(asyncio.run(collect())) == ["b1", "b2", "b3"]
