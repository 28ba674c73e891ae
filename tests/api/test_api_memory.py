"""The server collects reference cycles and gives freed heap back to the OS (glibc's
malloc_trim) on a timer."""

from __future__ import annotations

import asyncio
import platform

import pytest

from callstream.api.memory import hygiene_forever, malloc_trim


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_and_runs_on_a_timer() -> None:
    trim = malloc_trim()
    assert trim is not None
    calls: list[int] = []

    def counting(pad: int) -> int:
        calls.append(pad)
        return trim(pad)

    async def main() -> None:
        task = asyncio.create_task(hygiene_forever(counting, 0.01))
        async with asyncio.timeout(60):  # each round also collects cycles: not instant
            while len(calls) < 3:
                await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(main())
    assert len(calls) >= 3 and set(calls) == {0}


def test_cycles_are_collected_on_the_timer_even_with_high_gc_thresholds() -> None:
    import gc
    import weakref

    class Node:
        pass

    old = gc.get_threshold()
    gc.set_threshold(1_000_000, 1000, 1000)  # what serve does, exaggerated
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        gone = weakref.ref(a)
        del a, b

        async def main() -> None:
            task = asyncio.create_task(hygiene_forever(None, 0.01))
            async with asyncio.timeout(60):
                while gone() is not None:
                    await asyncio.sleep(0.01)
            task.cancel()

        asyncio.run(main())
    finally:
        gc.set_threshold(*old)
