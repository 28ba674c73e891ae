"""The web UI's call list under load: how long the first page, a search, a filter and the
next page take in a real browser as the number of stored calls grows.

For each size a fresh server (``ServerThread``, embedded store, no login on loopback) gets
that many finished calls in its call list, and headless Chromium (Debian's, driven by
playwright) opens ``/ui/#/calls``. Measured in the browser:

* ``first page``: navigation start to the first 50 rows on screen (a ``performance.mark``
  the page sets once it has rendered them);
* ``search`` / ``flagged`` / ``older page``: the page's own fetch-and-render time for a
  server-side search, the flagged-only filter and the next page (``data-render-ms``);
* ``API list``: ``GET /ui/api/calls?limit=50`` (what the page fetches) from Python, best of 20 (server only).

Baseline in the same run: the smallest size (100 calls), where the list is trivially
small; the other rows show what growth costs. Each browser figure is the best of
``--repeat`` page loads. Prints a markdown table.

    python bench/bench_web.py                       # 100, 1,000, 10,000 calls
    python bench/bench_web.py --sizes 100 100000    # a bigger list
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "web"))

from web_helpers import chromium, seed_many  # noqa: E402

from callstream.api.app import ServerConfig  # noqa: E402
from callstream.api.server import ServerThread  # noqa: E402

T0 = 1_790_000_000_000
WAIT_MS = 60_000


def _wait_rows(page: Any, first: str) -> None:
    page.wait_for_function(
        "first => { const rs = document.querySelectorAll('#calls-table tbody tr');"
        " return rs.length > 0 && rs[0].dataset.callId === first; }",
        arg=first,
        timeout=WAIT_MS,
    )


def _render_ms(page: Any) -> float:
    return float(page.get_attribute("#calls-table", "data-render-ms") or "nan")


def measure(size: int, repeat: int, browser: Any) -> dict[str, float]:
    """Best-of-``repeat`` timings (ms) for a call list of ``size`` calls."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerThread(Path(tmp), config=ServerConfig(credentials={"k": "s"})) as srv,
    ):
        assert srv.state.calls is not None
        seed_many(srv.state.calls, size, T0)
        best: dict[str, float] = {}

        def keep(name: str, value: float) -> None:
            best[name] = min(best.get(name, float("inf")), value)

        for _ in range(max(1, repeat)):
            page = browser.page()
            page.goto(srv.url + "/ui/#/calls")
            _wait_rows(page, "bulk-00000")
            keep(
                "first page",
                page.evaluate("performance.getEntriesByName('calls-rendered')[0].startTime"),
            )
            page.fill("#call-search", "agent-36")
            _wait_rows(page, "bulk-00036")
            keep("search", _render_ms(page))
            page.fill("#call-search", "")
            _wait_rows(page, "bulk-00000")
            page.check("#call-flagged")
            _wait_rows(page, "bulk-00000")
            keep("flagged", _render_ms(page))
            page.uncheck("#call-flagged")
            _wait_rows(page, "bulk-00000")
            if size > 50:
                page.click("#page-older")
                _wait_rows(page, "bulk-00050")
                keep("older page", _render_ms(page))
            page.context.close()
        for _ in range(20):
            t = time.perf_counter()
            with urllib.request.urlopen(srv.url + "/ui/api/calls?limit=50") as resp:
                resp.read()
            keep("API list", (time.perf_counter() - t) * 1000)
        return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    columns = ["first page", "search", "flagged", "older page", "API list"]
    results: dict[int, dict[str, float]] = {}
    with chromium() as browser:
        for size in sizes:
            results[size] = measure(size, args.repeat, browser)
            print(f"{size} calls: {results[size]}", file=sys.stderr)
    print(f"| calls stored | {' | '.join(c + ' (ms)' for c in columns)} |")
    print("|---:|" + "---:|" * len(columns))
    for size in sizes:
        cells = [f"{results[size].get(c, float('nan')):.0f}" for c in columns]
        label = f"{size:,}" + (" (baseline)" if size == sizes[0] else "")
        print(f"| {label} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
