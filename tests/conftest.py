"""Suite-wide settings: no test may depend on how fast this machine is."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from nats_process import need_nats_server, start_server

# Hypothesis fails an example that runs longer than its deadline (200 ms by default) and
# a test whose data takes too long to generate: wall-clock limits that a loaded machine
# breaks. Speed is measured in bench/, not asserted here.
settings.register_profile("callstream", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("callstream")

# Speech recognition runs below the event loop's priority in production (a saturated
# server keeps its audio and lets transcripts fall behind). Under -n 2 the other worker's
# tests would then starve this worker's recognisers and stretch every transcript wait, so
# the suite runs them at the loop's priority; test_analytics_priority.py tests the lowering
# itself with explicit values.
os.environ.setdefault("CALLSTREAM_ASR_NICE", "0")


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JetStream nats-server of this test session (one per xdist worker), on a free
    loopback port with its storage in a temporary directory; skips without nats-server."""
    need_nats_server()
    node = start_server(tmp_path_factory.mktemp("nats"))
    try:
        yield node.url
    finally:
        node.stop()
