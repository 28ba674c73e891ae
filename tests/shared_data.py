"""Where the shared reference and test data are: ``shared`` beside the checkout (CI and
the main checkout), or ``CALLSTREAM_SHARED_DIR`` (a worktree elsewhere). Tests that need
it skip with the path they looked at when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(
    os.environ.get("CALLSTREAM_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared"
)
