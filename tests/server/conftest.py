"""Fixtures for the server suite: ``callstream serve`` on a free port in a temporary data
directory (credentials AKIDTEST/secret) and boto3 clients pointed at it.

Every test that takes ``kvs`` or ``make_kvs`` runs against both store backends: the
embedded one and NATS JetStream (the session's nats-server, a prefix of its own per
server; skipped when nats-server is not installed)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import ACCESS_KEY, SECRET_KEY, Kvs, make_client

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread

BACKENDS = ["embedded", "nats"]


@pytest.fixture(scope="session", params=BACKENDS)
def store_spec(request: pytest.FixtureRequest) -> str:
    """The ``--store`` of the servers the fixtures start (one session per backend)."""
    if request.param == "nats":
        url: str = request.getfixturevalue("nats_url")
        return url
    return "embedded"


def _start(data_dir: Path, store: str, **options: Any) -> ServerThread:
    max_streams = options.pop("max_streams", 10000)
    if store != "embedded":
        options.setdefault("store", store)
        options.setdefault("store_prefix", "t" + uuid.uuid4().hex[:16])
    config = ServerConfig(
        credentials={ACCESS_KEY: SECRET_KEY},
        live_idle_timeout_s=options.pop("live_idle_timeout_s", 0.5),
        **options,
    )
    return ServerThread(data_dir, config=config, max_streams=max_streams).start()


def _kvs(server: ServerThread) -> Kvs:
    return Kvs(
        server=server,
        kv=make_client(server.url, "kinesisvideo"),
        media=make_client(server.url, "kinesis-video-media"),
        archived=make_client(server.url, "kinesis-video-archived-media"),
    )


@pytest.fixture(scope="session")
def kvs(tmp_path_factory: pytest.TempPathFactory, store_spec: str) -> Iterator[Kvs]:
    """The shared server (credentials AKIDTEST/secret, 0.5 s live-idle timeout)."""
    server = _start(tmp_path_factory.mktemp("kvs-data"), store_spec)
    try:
        yield _kvs(server)
    finally:
        server.stop()


@pytest.fixture
def make_kvs(tmp_path: Path, store_spec: str) -> Iterator[Callable[..., Kvs]]:
    """Start a dedicated server with other settings (``max_streams``, ServerConfig fields)."""
    started: list[ServerThread] = []

    def make(**options: Any) -> Kvs:
        server = _start(tmp_path / f"data{len(started)}", store_spec, **options)
        started.append(server)
        return _kvs(server)

    try:
        yield make
    finally:
        for server in started:
            server.stop()
