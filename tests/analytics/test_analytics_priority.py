"""Speech recognition threads run below the event loop's priority (Linux thread nice)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from callstream.analytics.priority import (
    BACKGROUND_NICE,
    background_nice,
    lower_this_thread,
    run_lowered,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's"
)


def nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_lowered_thread_and_the_threads_it_starts_run_below_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = nice_of_this_thread()
    seen: dict[str, int] = {}

    def child() -> None:
        seen["child"] = nice_of_this_thread()

    def load() -> str:
        seen["loader"] = nice_of_this_thread()
        worker = threading.Thread(target=child)  # as a model starts its worker threads
        worker.start()
        worker.join()
        return "model"

    monkeypatch.delenv("CALLSTREAM_ASR_NICE", raising=False)  # the production default
    assert asyncio.run(run_lowered(load)) == "model"
    expected = min(19, max(before, 0) + BACKGROUND_NICE)
    assert seen == {"loader": expected, "child": expected}
    assert nice_of_this_thread() == before  # the caller (the event loop) keeps its own


def test_run_lowered_passes_errors_back_and_lowering_is_per_thread() -> None:
    def fail() -> None:
        raise ValueError("no model.bin")

    with pytest.raises(ValueError, match=r"no model\.bin"):
        asyncio.run(run_lowered(fail))
    before = nice_of_this_thread()
    done: list[int] = []

    def worker() -> None:
        lower_this_thread(BACKGROUND_NICE)
        done.append(nice_of_this_thread())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert done == [min(19, max(before, 0) + BACKGROUND_NICE)]
    assert nice_of_this_thread() == before


def test_the_nice_step_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSTREAM_ASR_NICE", "4")
    assert background_nice() == 4
    monkeypatch.setenv("CALLSTREAM_ASR_NICE", "not a number")
    assert background_nice() == BACKGROUND_NICE
    monkeypatch.delenv("CALLSTREAM_ASR_NICE")
    assert background_nice() == BACKGROUND_NICE
