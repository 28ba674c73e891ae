"""A stream analysed on request (``POST /callstream/calls``) whose producer stops and comes
back: the reader's live read ends, it continues after the last whole fragment (no audio
lost or read twice), and the call ends once no producer is writing and the stream stayed
quiet for ``idle_end_s`` (here 15 s: the producer's 2 s absence is well within it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from call_speech import prompts, signed_json, wer, write_wav

from callstream.analytics.service import AnalyticsConfig
from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread

pytestmark = pytest.mark.slow

KEY, SECRET = "reconnect-key", "reconnect-secret"
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    config = ServerConfig(
        credentials={KEY: SECRET},
        live_idle_timeout_s=0.5,
        analytics=AnalyticsConfig(workers=2, idle_end_s=15.0),
    )
    with ServerThread(tmp_path / "data", config=config) as srv:
        yield srv


def call_api(server: ServerThread, method: str, path: str, body: Any = None) -> Any:
    return signed_json(server.url + path, method, KEY, SECRET, body)


def put_media(server: ServerThread, stream: str, wav: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callstream.cli", "put-media", "--stream", stream,
         "--endpoint-url", server.url, "--from-customer", str(wav), "--realtime"],
        env=ENV, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_stream_whose_producer_comes_back_is_read_on_to_the_end(
    server: ServerThread, tmp_path: Path
) -> None:
    first, second = prompts(2, seed=31)
    quiet = np.zeros(8000, np.int16)
    one = write_wav(tmp_path / "one.wav", np.concatenate([quiet, first.pcm, quiet]))
    two = write_wav(tmp_path / "two.wav", np.concatenate([quiet, second.pcm, quiet]))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from server_helpers import make_client

    make_client(server.url, "kinesisvideo", KEY, SECRET).create_stream(
        StreamName="agent-desk-7", DataRetentionInHours=1
    )
    started = call_api(server, "POST", "/callstream/calls", {"StreamName": "agent-desk-7"})
    call_id = started["CallId"]
    put_media(server, "agent-desk-7", one)
    time.sleep(2.0)  # the producer is gone for longer than the live reader waits
    put_media(server, "agent-desk-7", two)
    deadline = time.monotonic() + 60
    while "Call" not in (found := call_api(server, "GET", f"/callstream/calls/{call_id}")):
        assert time.monotonic() < deadline, "the call did not end after the stream went quiet"
        time.sleep(0.2)
    call = found["Call"]
    assert found["CallSummary"]["Source"] == "STREAM"
    caller = [s["Transcript"] for s in call["Segments"] if s["Channel"] == "CALLER"]
    assert wer([first.text, second.text], caller) <= 0.1, caller
    assert len(caller) == 2  # each utterance once: nothing read twice across the reconnect

    # the CLI way: analyse the stored stream again under another call id, wait, print
    out = subprocess.run(
        [sys.executable, "-m", "callstream.cli", "analyze", "--stream", "agent-desk-7",
         "--call-id", "again", "--endpoint-url", server.url, "--wait", "60"],
        env=ENV, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    again = json.loads(out.stdout)
    assert again["CallId"] == "again"
    assert [s["Transcript"] for s in again["Segments"]] == caller
