"""The ingest gateways from the command line: ``callstream serve --ingest*`` as a real
process and ``callstream replay`` playing WAV files into it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from ingest_helpers import parse_payload, tone

KEY, SECRET = "AKIDINGEST", "ingest-cli-secret"
TOKEN = "cli-token"
ENV = dict(os.environ, CALLSTREAM_ACCESS_KEY_ID=KEY, CALLSTREAM_SECRET_ACCESS_KEY=SECRET)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "callstream.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


class Serve:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port, self.audiosocket = free_port(), free_port()
        argv = [sys.executable, "-m", "callstream.cli", "serve", "--no-sip", "--analytics",
                "off", "--ui", "off", "--port", str(self.port), "--data-dir", str(data_dir),
                "--audiosocket-port", str(self.audiosocket), *args]  # fmt: skip
        self.proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                assert self.proc.poll() is None, self.stop()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=f"http://127.0.0.1:{self.port}",
                            region_name="us-east-1", aws_access_key_id=KEY,
                            aws_secret_access_key=SECRET)  # fmt: skip

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode(errors="replace")


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    server = Serve(
        tmp_path_factory.mktemp("serve"),
        "--ingest-shape", "chime", "--ingest-token", TOKEN, "--ingest-swap-roles", "websocket",
    )  # fmt: skip
    yield server
    assert "Traceback" not in server.stop()


def write_wav(path: Path, channels: list[bytes]) -> Path:
    data = np.stack([np.frombuffer(c, "<i2") for c in channels], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.ascontiguousarray(data).tobytes())
    return path


def legs(server: Serve, call_id: str, count: int) -> dict[str, tuple[str, dict[str, str]]]:
    """role -> (stream ARN, tags) of the call's legs."""
    kv = server.client("kinesisvideo")
    deadline = time.monotonic() + 30
    while True:
        found = {}
        for info in kv.list_streams()["StreamInfoList"]:
            tags = kv.list_tags_for_stream(StreamARN=info["StreamARN"])["Tags"]
            if tags.get("callstream:call-id") == call_id:
                found[tags["callstream:role"]] = (info["StreamARN"], tags)
        if len(found) == count:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def leg_pcm(server: Serve, arn: str) -> bytes:
    media = server.client("kinesis-video-media")
    deadline = time.monotonic() + 30
    while True:  # the leg is complete once its last fragment is stored
        payload = media.get_media(StreamARN=arn, StartSelector={"StartSelectorType": "EARLIEST"})
        audio = parse_payload(payload["Payload"].read())
        if audio.pcm and len(audio.pcm["AUDIO"]) >= 16000 * 2 * 0.9:
            return audio.pcm["AUDIO"]
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_replay_a_stereo_wav_into_the_plain_socket_with_swapped_roles(
    serve: Serve, tmp_path: Path
) -> None:
    first, second = tone(2.0, 300, 1), tone(2.0, 650, 2)
    wav = write_wav(tmp_path / "call.wav", [first, second])
    out = cli("replay", "--protocol", "websocket", "--wav", str(wav), "--port", str(serve.port),
              "--token", TOKEN, "--speed", "10", "--call-id", "fs-1",
              "--metadata", "from=+15550100")  # fmt: skip
    line = json.loads(out.stdout)
    assert line == {"Protocol": "websocket", "CallId": "fs-1", "Frames": 100, "CloseCode": 1000}
    found = legs(serve, "fs-1", 2)
    # --ingest-swap-roles websocket: channel 0 is the agent
    assert leg_pcm(serve, found["agent"][0]) == first
    assert leg_pcm(serve, found["caller"][0]) == second
    assert found["caller"][1]["callstream:meta:from"] == "+15550100"


def test_replay_into_audiosocket(serve: Serve, tmp_path: Path) -> None:
    pcm = tone(2.0, 440, 3)
    wav = write_wav(tmp_path / "mono.wav", [pcm])
    call_id = "6b1f5c1e-0b5e-4c39-9f0e-3f3f8a0c2a11"
    out = cli("replay", "--protocol", "audiosocket", "--wav", str(wav), "--port",
              str(serve.audiosocket), "--speed", "10", "--call-id", call_id)  # fmt: skip
    assert json.loads(out.stdout)["Frames"] == 100
    found = legs(serve, call_id, 1)
    assert leg_pcm(serve, found["caller"][0]) == pcm


def test_replay_refused_and_bad_usage_give_one_line(serve: Serve, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "short.wav", [tone(0.2)])
    done = cli("replay", "--protocol", "websocket", "--wav", str(wav), "--port", str(serve.port),
               "--token", "wrong", check=False)  # fmt: skip
    assert done.returncode != 0 and "401" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # Twilio is not configured on this server: 403
    done = cli("replay", "--protocol", "twilio", "--wav", str(wav), "--port", str(serve.port),
               check=False)  # fmt: skip
    assert done.returncode != 0 and "403" in done.stderr
    done = cli("replay", "--protocol", "websocket", "--wav", str(tmp_path / "none.wav"),
               check=False)  # fmt: skip
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    done = cli("serve", "--audiohook-api-key", "no-colon", "--port", "0", "--no-sip",
               "--data-dir", str(tmp_path / "data"), check=False)  # fmt: skip
    assert done.returncode != 0 and "KEY:SECRET" in done.stderr
