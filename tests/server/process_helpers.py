"""`callstream serve` as a real process, for tests of what only a process shows: memory
given back, descriptors, signals, the command line."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

KEY, SECRET = "AKIDPROC", "proc-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``python -m callstream.cli serve`` on a free port with credentials KEY/SECRET."""

    def __init__(
        self, data_dir: Path, *args: str, port: int | None = None, fd_limit: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        env = dict(os.environ, CALLSTREAM_ACCESS_KEY_ID=KEY, CALLSTREAM_SECRET_ACCESS_KEY=SECRET)
        argv = [
            sys.executable,
            "-m",
            "callstream.cli",
            "serve",
            "--no-sip",
            "--port",
            str(self.port),
        ]
        argv += ["--data-dir", str(data_dir), *args]

        def limit_fds() -> None:
            if fd_limit is not None:  # soft and hard: serve raises the soft limit itself
                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=limit_fds if fd_limit is not None else None,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(self.stop()) from None
                time.sleep(0.02)
        self.proc.kill()
        raise AssertionError("server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str, **kw: Any) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            **kw,
        )

    def rss_mb(self) -> float:
        """Resident memory of the server process."""
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def settled_rss_mb(self, above: float, timeout: float = 60.0) -> float:
        """Wait (polling) until RSS is at most ``above`` MB; returns the last reading, which
        is above it only if the time ran out (the caller asserts)."""
        deadline = time.monotonic() + timeout
        rss = self.rss_mb()
        while rss > above and time.monotonic() < deadline:
            time.sleep(0.25)
            rss = self.rss_mb()
        return rss

    def stop(self) -> str:
        """Stop with SIGTERM; returns what the server wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
