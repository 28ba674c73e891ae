"""Fixtures of tests/flows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flows_helpers import KEY, SECRET

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A callstream server (one per test module) that knows the calls' credentials."""
    config = ServerConfig(credentials={KEY: SECRET}, live_idle_timeout_s=0.5)
    with ServerThread(tmp_path_factory.mktemp("calls"), config=config) as srv:
        yield srv
