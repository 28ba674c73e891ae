"""A server killed during a call (SIGKILL: nothing is finished or flushed on the way out)
analyses the call again when it starts: what was stored is read at once from the call's
start, the producer that comes back is followed live, and the call ends as usual, with
one START (marked Resumed) and no segment twice in its events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.credentials import Credentials
from call_speech import prompts, signed_json, wer, write_wav

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from process_helpers import KEY, SECRET, ServeProcess

from callstream.cli import signed_request

pytestmark = pytest.mark.slow

ENV = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}


def call_api(server: ServeProcess, method: str, path: str, body: Any = None) -> Any:
    return signed_json(server.url + path, method, KEY, SECRET, body)


def put_media(server: ServeProcess, stream: str, wav: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callstream.cli", "put-media", "--stream", stream,
         "--endpoint-url", server.url, "--from-customer", str(wav), "--realtime"],
        env=ENV, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def wait_for(what: str, check: Any, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


def test_a_call_the_server_died_during_is_analysed_again_when_it_starts(tmp_path: Path) -> None:
    first, second = prompts(2, seed=47)
    quiet = np.zeros(8000, np.int16)
    one = write_wav(tmp_path / "one.wav", np.concatenate([quiet, first.pcm, quiet]))
    two = write_wav(tmp_path / "two.wav", np.concatenate([quiet, second.pcm, quiet]))
    data = tmp_path / "data"
    server = ServeProcess(data, "--asr-workers", "1")
    try:
        server.client("kinesisvideo").create_stream(StreamName="desk-9", DataRetentionInHours=1)
        call_id = call_api(server, "POST", "/callstream/calls", {"StreamName": "desk-9"})["CallId"]
        put_media(server, "desk-9", one)
        wait_for(
            "the call was not being transcribed",
            lambda: (
                call_api(server, "GET", f"/callstream/calls/{call_id}")["CallSummary"]["Status"]
                == "TRANSCRIBING"
            ),
        )
    finally:
        server.proc.send_signal(signal.SIGKILL)
        server.stop()

    server = ServeProcess(data, "--asr-workers", "1")
    try:
        put_media(server, "desk-9", two)  # the producer comes back after the restart
        found = wait_for(
            "the resumed call did not end",
            lambda: (
                found
                if (found := call_api(server, "GET", f"/callstream/calls/{call_id}"))[
                    "CallSummary"
                ]["Status"]
                == "ENDED"
                and "Call" in found
                else None
            ),
        )
        summary = found["CallSummary"]
        assert summary["Status"] == "ENDED"
        caller = [s["Transcript"] for s in found["Call"]["Segments"] if s["Channel"] == "CALLER"]
        assert wer([first.text, second.text], caller) <= 0.1, caller
        status, body = signed_request(
            "GET",
            f"{server.url}/callstream/calls/{call_id}/events",
            region="us-east-1",
            body=None,
            credentials=Credentials(KEY, SECRET),
        )
        assert status == 200, body
        records = [json.loads(line) for line in body.splitlines()]
        starts = [e for e in records if e["EventType"] == "START"]
        assert len(starts) == 1 and starts[0]["Resumed"] is True, starts
        finals = [
            e["SegmentId"]
            for e in records
            if e["EventType"] == "ADD_TRANSCRIPT_SEGMENT" and not e["IsPartial"]
        ]
        assert len(finals) == len(set(finals)) >= 2
        assert not (data / "analytics").exists() or not list((data).rglob("legs.json")), (
            "a finished call keeps no legs file"
        )
        print(json.dumps(summary))
    finally:
        server.stop()
