"""Store backends, chosen by name (``--store``): :func:`open_backend`.

* ``embedded`` (the default) -- one data directory on local disk
  (:mod:`callstream.store.backends.embedded`);
* ``nats://host:4222[,host2:4222...]`` -- NATS JetStream, shared by several nodes
  (:mod:`callstream.store.backends.nats`; imported only when chosen).

A second backend is a subpackage here implementing
:class:`~callstream.store.base.StoreBackend`, a branch in :func:`open_backend`, and one
line in the contract tests (``tests/store/test_backend_contract.py``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from callstream.store.backends.embedded.store import EmbeddedStore
from callstream.store.base import StoreBackend, StoreError
from callstream.store.crypto import Keyring

__all__ = [
    "DEFAULT_BACKEND",
    "NATS_DEFAULT_PORT",
    "BackendNotAvailable",
    "NatsServers",
    "open_backend",
    "parse_backend_spec",
    "parse_nats_url",
]

DEFAULT_BACKEND = "embedded"
"""The ``--store`` value when none is given."""
NATS_DEFAULT_PORT = 4222
_NATS_SCHEME = "nats://"


class BackendNotAvailable(StoreError, NotImplementedError):
    """The spec names a backend this build of callstream cannot open yet."""


@dataclass(frozen=True, slots=True)
class NatsServers:
    """A ``nats://`` spec: the seed servers of one NATS cluster, and credentials if the
    URL carried them (never shown in ``repr``)."""

    servers: tuple[tuple[str, int], ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def urls(self) -> tuple[str, ...]:
        """``nats://host:port`` of each server (without credentials)."""
        return tuple(f"{_NATS_SCHEME}{_host_text(host)}:{port}" for host, port in self.servers)


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_nats_url(spec: str) -> NatsServers:
    """Parse ``nats://[user[:password]@]host[:port][,host[:port]...]`` (later entries may
    repeat the ``nats://`` scheme; the port defaults to 4222; IPv6 hosts in brackets).
    :class:`ValueError` naming the spec and the bad part otherwise."""
    if not spec.startswith(_NATS_SCHEME):
        raise ValueError(f"not a NATS URL (nats://host:4222[,...]): {spec!r}")
    servers: list[tuple[str, int]] = []
    user: str | None = None
    password: str | None = None
    for entry in spec[len(_NATS_SCHEME) :].split(","):
        entry = entry.strip()
        if entry.startswith(_NATS_SCHEME):
            entry = entry[len(_NATS_SCHEME) :]
        parts = urllib.parse.urlsplit(_NATS_SCHEME + entry)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad port in NATS URL {_safe(spec)!r}: {entry!r}") from None
        host = parts.hostname
        if not host or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"bad server in NATS URL {_safe(spec)!r}: {_safe(entry)!r}")
        if parts.username is not None:
            if user is not None and (parts.username, parts.password) != (user, password):
                raise ValueError(f"NATS URL {_safe(spec)!r} gives two sets of credentials")
            user, password = parts.username, parts.password
        servers.append((host, NATS_DEFAULT_PORT if port is None else port))
    return NatsServers(tuple(servers), user, password)


def _safe(text: str) -> str:
    """``text`` with any ``user:password@`` credentials masked."""
    out = []
    for entry in text.split(","):
        scheme, sep, rest = entry.rpartition("://")
        at = rest.rfind("@")
        if at >= 0:
            rest = "***@" + rest[at + 1 :]
        out.append(scheme + sep + rest)
    return ",".join(out)


def parse_backend_spec(spec: str) -> str | NatsServers:
    """``"embedded"``, or the servers of a ``nats://`` spec; :class:`ValueError` naming
    the spec for anything else (suits an ``argparse`` ``type=``)."""
    text = spec.strip()
    if text == DEFAULT_BACKEND:
        return DEFAULT_BACKEND
    if text.startswith(_NATS_SCHEME):
        return parse_nats_url(text)
    raise ValueError(
        f"unknown store backend {spec!r}: use {DEFAULT_BACKEND!r} "
        f"or {_NATS_SCHEME}host:{NATS_DEFAULT_PORT}[,host2:{NATS_DEFAULT_PORT}...]"
    )


def open_backend(
    spec: str,
    data_dir: Path,
    *,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    max_streams: int = 10000,
    keyring: Keyring | None = None,
    writer_threads: int = 2,
    io_threads: int = 4,
    nats_replicas: int | None = None,
    nats_prefix: str | None = None,
    nats_advertise_url: str | None = None,
) -> StoreBackend:
    """Open the backend ``spec`` names (see :func:`parse_backend_spec`); then ``await
    backend.start()`` on the event loop that will use it, and ``await backend.close()``.

    ``data_dir`` holds the embedded backend's data; ``region`` and ``account_id`` go into
    stream ARNs; ``max_streams`` caps the streams of the account. Opening is synchronous
    (the embedded backend opens and recovers its files). Raises :class:`ValueError` for
    an unknown spec, :class:`BackendNotAvailable` for a backend not available yet, and
    the backend's own errors (e.g. ``DataDirLocked``).

    A NATS backend connects in ``start()`` (:class:`StoreError` when no server answers);
    its master keys are in ``keyring`` (default ``<data_dir>/keys.json``: the same file on
    every node), ``nats_replicas`` copies of each stream (default: 3 in a cluster of 3 or
    more, else 1), names under ``nats_prefix`` (default ``callstream``);
    ``nats_advertise_url`` is the URL clients reach this node at, given to GetMedia
    readers on other nodes of a stream this node ingests live.
    """
    kind = parse_backend_spec(spec)
    if isinstance(kind, NatsServers):
        try:
            from callstream.store.backends.nats import DEFAULT_PREFIX, NatsStore
        except ImportError as err:  # pragma: no cover - nats-py is a dependency
            raise BackendNotAvailable(
                f"the NATS backend needs nats-py (pip install 'callstream[nats]'): {err}"
            ) from None
        return NatsStore(
            kind.urls,
            keyring=keyring if keyring is not None else NatsStore.default_keyring(data_dir),
            region=region,
            account_id=account_id,
            max_streams=max_streams,
            replicas=nats_replicas,
            prefix=nats_prefix or DEFAULT_PREFIX,
            user=kind.user,
            password=kind.password,
            advertise_url=nats_advertise_url,
        )
    return EmbeddedStore.open(
        data_dir,
        region=region,
        account_id=account_id,
        max_streams=max_streams,
        keyring=keyring,
        writer_threads=writer_threads,
        io_threads=io_threads,
    )
