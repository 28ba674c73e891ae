"""The server gives freed heap back to the OS (glibc's malloc_trim) on a timer."""

from __future__ import annotations

import asyncio
import platform

import pytest

from callstream.api.app import _malloc_trim, _trim_forever


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_and_runs_on_a_timer() -> None:
    trim = _malloc_trim()
    assert trim is not None
    calls: list[int] = []

    def counting(pad: int) -> int:
        calls.append(pad)
        return trim(pad)

    async def main() -> None:
        task = asyncio.create_task(_trim_forever(counting, 0.01))
        await asyncio.sleep(0.2)
        task.cancel()

    asyncio.run(main())
    assert len(calls) >= 3 and set(calls) == {0}
