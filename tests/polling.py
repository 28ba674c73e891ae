"""Waiting in tests for what another thread, process or node does: poll a condition until
it holds, with a generous deadline (what is asserted is the outcome, never the time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition not reached in time"
) -> T:
    """Poll until ``predicate()`` is truthy and return it; AssertionError(``what``) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.02)
    return found
