"""What the server benchmarks (``bench_server.py``, ``bench_attack.py``) share: a free
port, a process's resident memory and open descriptors from ``/proc`` (Linux), and a
server command run as a subprocess that counts as up once its port accepts connections."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    """Resident set size (``VmRSS``) of a process in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid: int) -> int:
    """Open descriptors of a process (0 once it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class ServerProcess:
    """``cmd`` as a subprocess, stdout and stderr to ``log_path``; the constructor returns
    once ``host:port`` accepts a connection and raises (naming ``name``, with the log's
    tail if it exited) when the process exits first or 30 s pass."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        port: int,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        host: str = HOST,
        name: str = "server",
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.port = port
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.log.close()
                raise RuntimeError(f"{name} exited: {tail}")
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{name} did not come up") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_size(self) -> int:
        self.log.flush()
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, start: int, end: int) -> str:
        """The log's bytes ``[start, end)`` as text."""
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read(max(0, end - start)).decode(errors="replace")

    def log_tail(self, size: int = 2000) -> str:
        end = self.log_size()
        return self.log_text(max(0, end - size), end)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; closes the log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
