"""nats-server processes for tests: one JetStream server, or a cluster, on free loopback
ports with their storage in a temporary directory. Tests that need one skip (with the
reason) when ``nats-server`` is not installed (scripts/setup-dev.sh installs it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NATS_SERVER = shutil.which("nats-server")
MAX_PAYLOAD = 8 * 1024 * 1024
"""The tests' servers take 8 MB messages (fragments above it are stored in parts)."""


def need_nats_server() -> str:
    """The nats-server executable; skips the test when it (or nats-py) is not installed."""
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[dev]')")
    return NATS_SERVER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on {port}")


@dataclass
class NatsNode:
    """One nats-server process."""

    name: str
    port: int
    cluster_port: int | None
    store_dir: Path
    routes: list[int] = field(default_factory=list)
    max_payload: int = MAX_PAYLOAD
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsNode:
        exe = need_nats_server()
        conf = self.store_dir.with_suffix(".conf")
        lines = [
            f'server_name: "{self.name}"',
            f"listen: 127.0.0.1:{self.port}",
            f"max_payload: {self.max_payload}",
            f'jetstream {{ store_dir: "{self.store_dir}" }}',
        ]
        if self.cluster_port is not None:
            routes = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in self.routes)
            lines.append(
                f'cluster {{ name: "cs-test", listen: 127.0.0.1:{self.cluster_port},'
                f" routes: [{routes}] }}"
            )
        conf.write_text("\n".join(lines) + "\n")
        log = open(self.store_dir.with_suffix(".log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        _wait_port(self.port, self.proc)
        return self

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(tmp: Path, *, max_payload: int = MAX_PAYLOAD) -> NatsNode:
    """One JetStream server (no cluster)."""
    tmp.mkdir(parents=True, exist_ok=True)
    return NatsNode("solo", free_port(), None, tmp / "js", max_payload=max_payload).start()


def start_cluster(tmp: Path, size: int = 3) -> list[NatsNode]:
    """A JetStream cluster of ``size`` servers on loopback."""
    tmp.mkdir(parents=True, exist_ok=True)
    ports = [(free_port(), free_port()) for _ in range(size)]
    nodes = [
        NatsNode(
            f"n{i}",
            port,
            cport,
            tmp / f"js{i}",
            routes=[c for j, (_, c) in enumerate(ports) if j != i],
        )
        for i, (port, cport) in enumerate(ports)
    ]
    for node in nodes:
        node.start()
    return nodes
