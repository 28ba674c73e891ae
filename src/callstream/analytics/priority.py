"""Speech recognition yields the CPU to live media: its threads run at a lower priority.

Recording (RTP in, streams out) and live GetMedia readers run on the server's event loop;
a Whisper decode keeps a core busy for as long as it takes. When both want more CPU than
the machine has, the media must win: a late transcript catches up, a lost packet is gone.
On Linux each thread has its own nice value, inherited by the threads it starts, so the
recogniser pool's threads, and the thread that loads the model (whose CTranslate2 worker
threads are started there), lower their own priority. Elsewhere this does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["BACKGROUND_NICE", "background_nice", "lower_this_thread", "run_lowered"]

T = TypeVar("T")

BACKGROUND_NICE = 10
"""How much lower than the event loop the recognisers run (nice +10: under contention
they get about a tenth of the CPU the loop gets; idle cores they use in full).
``CALLSTREAM_ASR_NICE`` overrides it (0: the same priority as the loop)."""


def background_nice() -> int:
    """The nice step for recogniser threads: ``CALLSTREAM_ASR_NICE`` or the default."""
    try:
        return max(0, min(19, int(os.environ.get("CALLSTREAM_ASR_NICE", BACKGROUND_NICE))))
    except ValueError:
        return BACKGROUND_NICE


def lower_this_thread(nice: int | None = None) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (default :func:`background_nice`;
    Linux; elsewhere a no-op)."""
    nice = background_nice() if nice is None else nice
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, max(current, 0) + nice))


async def run_lowered(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a new thread of lowered priority and return its result (threads it
    starts, such as a model's workers, keep that priority)."""
    pool = ThreadPoolExecutor(1, "callstream-asr-load", initializer=lower_this_thread)
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn)
    finally:
        pool.shutdown(wait=False)
