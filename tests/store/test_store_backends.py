"""Choosing a store backend from ``--store``: :func:`callstream.store.backends.open_backend`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callstream.store.backends import (
    NatsServers,
    open_backend,
    parse_backend_spec,
    parse_nats_url,
)
from callstream.store.backends.embedded import DataDirLocked, EmbeddedStore
from callstream.store.base import StoreError


def test_embedded_is_the_store_in_the_data_dir(tmp_path: Path) -> None:
    async def main() -> None:
        store = open_backend("embedded", tmp_path / "d", region="eu-west-1", account_id="1")
        assert isinstance(store, EmbeddedStore)
        await store.start()
        try:
            s = await store.catalog.create_stream(
                "s",
                device_name=None,
                media_type=None,
                kms_key_id=None,
                data_retention_hours=1,
                tags={},
            )
            assert s.arn.startswith("arn:aws:kinesisvideo:eu-west-1:1:stream/s/")
            with pytest.raises(DataDirLocked):  # one store per data directory
                open_backend("embedded", tmp_path / "d")
        finally:
            await store.close()

    asyncio.run(main())
    assert (tmp_path / "d" / "index.sqlite3").exists()


def test_stream_limit_is_passed_on(tmp_path: Path) -> None:
    store = open_backend(" embedded ", tmp_path / "d", max_streams=0)
    assert isinstance(store, EmbeddedStore)
    assert store.backend.max_streams == 0
    asyncio.run(store.close())


def test_nats_urls_open_the_nats_backend_which_says_when_no_server_answers(
    tmp_path: Path,
) -> None:
    import socket

    pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[dev]')")
    from callstream.store.backends.nats import NatsStore

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = open_backend(f"nats://127.0.0.1:{port},127.0.0.1:{port}", tmp_path / "d")
    assert isinstance(store, NatsStore)
    assert not (tmp_path / "d").exists()  # nothing opened before start()

    async def main() -> None:
        with pytest.raises(StoreError) as exc:
            await store.start()
        assert f"cannot connect to NATS at nats://127.0.0.1:{port}" in str(exc.value)

    asyncio.run(main())


def test_nats_url_forms() -> None:
    assert parse_nats_url("nats://h") == NatsServers((("h", 4222),))
    assert parse_nats_url("nats://h1:1, nats://h2:2,h3").servers == (
        ("h1", 1),
        ("h2", 2),
        ("h3", 4222),
    )
    v6 = parse_nats_url("nats://[::1]:4333,[fe80::1]")
    assert v6.servers == (("::1", 4333), ("fe80::1", 4222))
    assert v6.urls == ("nats://[::1]:4333", "nats://[fe80::1]:4222")
    secret = parse_nats_url("nats://user:s3cret@h1,h2")
    assert (secret.user, secret.password) == ("user", "s3cret")
    assert "s3cret" not in repr(secret) and "s3cret" not in ",".join(secret.urls)
    assert parse_backend_spec("nats://h") == NatsServers((("h", 4222),))
    assert parse_backend_spec("embedded") == "embedded"


@pytest.mark.parametrize(
    "spec",
    [
        "nats://",
        "nats://h:99999",
        "nats://h:port",
        "nats://h/stream",
        "nats://h?x=1",
        "nats://a,,b",
        "nats://u:pw-one@a,v:pw-two@b",
    ],
)
def test_bad_nats_urls_name_the_spec(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NATS URL") as exc:
        open_backend(spec, tmp_path / "d")
    assert not isinstance(exc.value, StoreError)
    assert "pw-" not in str(exc.value)  # no passwords


@pytest.mark.parametrize("spec", ["", "sqlite", "Embedded", "http://h:4222", "embedded:x"])
def test_unknown_specs_are_a_clear_value_error(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown store backend") as exc:
        open_backend(spec, tmp_path / "d")
    assert repr(spec) in str(exc.value) and "nats://" in str(exc.value)
