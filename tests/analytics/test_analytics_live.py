"""Acceptance of the live call transcriber: real telephone speech placed as a Connect call
with ``callstream call`` (in real time, over HTTP) and as a SIPREC voice-connector call
over real SIP/RTP sockets, transcribed by the server's Whisper tiny.en, read back through
the HTTP API and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from call_speech import (
    STREAMING_FLOW,
    conversation,
    need_speech,
    signed_json,
    wer,
    write_rtp_pcap,
    write_wav,
)

from callstream.analytics.call import CallSettings
from callstream.analytics.service import AnalyticsConfig
from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.cli import signed_request
from callstream.voice.server import VoiceConfig

pytestmark = pytest.mark.slow

KEY, SECRET = "analytics-key", "analytics-secret"
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
MAX_WER = 0.08


class Receiver:
    """A webhook receiver on loopback: keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        import http.server
        import threading

        bodies: list[Any] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.httpd.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[ServerThread]:
    """One server with analytics (two recogniser workers), the SIP recording server and a
    webhook for call alerts."""
    from callstream.events.webhooks import Webhook

    need_speech()
    config = ServerConfig(
        credentials={KEY: SECRET},
        live_idle_timeout_s=0.5,
        voice=VoiceConfig(sip_port=0, rtp_ports=(40000, 40999)),
        analytics=AnalyticsConfig(
            workers=2, settings=CallSettings(alert_categories=None, partials=True)
        ),
        webhooks=(Webhook(receiver.url, event_types=("CallAlert",), format="callstream"),),
    )
    with ServerThread(tmp_path_factory.mktemp("analytics"), config=config) as srv:
        yield srv


def api(server: ServerThread, path: str, body: Any = None) -> Any:
    return signed_json(server.url + path, "GET" if body is None else "POST", KEY, SECRET, body)


def cli(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "callstream.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_ended(server: ServerThread, call_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, data = signed_request(
            "GET",
            f"{server.url}/callstream/calls/{call_id}",
            region="us-east-1",
            credentials=_creds(),
        )
        if status == 200:
            found = json.loads(data)
            if "Call" in found:
                return found
        assert time.monotonic() < deadline, f"call {call_id} did not finish"
        time.sleep(0.2)


def _creds() -> Any:
    from botocore.credentials import Credentials

    return Credentials(KEY, SECRET)


def texts(call: dict[str, Any], channel: str) -> list[str]:
    return [s["Transcript"] for s in call["Segments"] if s["Channel"] == channel]


def bus_events(server: ServerThread, call_id: str) -> list[dict[str, Any]]:
    server.state.events.flush(5)
    page = server.state.events.query(after=0, limit=10000)
    return [e.to_json() for e in page.events if e.fields.get("CallId") == call_id]


def test_a_connect_call_is_transcribed_live_per_channel(
    server: ServerThread, tmp_path: Path
) -> None:
    talk = conversation(6, seed=3)
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(STREAMING_FLOW))
    customer = write_wav(tmp_path / "customer.wav", talk.caller)
    # the agent's audio starts once the contact is queued, a second into the call
    agent = write_wav(tmp_path / "agent.wav", talk.agent)
    out = cli(
        "call",
        "--flow",
        str(flow),
        "--customer-audio",
        str(customer),
        "--agent-audio",
        str(agent),
        "--endpoint-url",
        server.url,
    )
    contact_id = json.loads(out)["ContactId"]
    found = wait_ended(server, contact_id)
    call = found["Call"]
    assert found["CallSummary"]["Status"] == "ENDED"
    assert found["CallSummary"]["Source"] == "CONNECT"

    # right words on the right channel: the caller's WER against the caller's script
    caller_wer = wer(talk.caller_text, texts(call, "CALLER"))
    agent_wer = wer(talk.agent_text, texts(call, "AGENT"))
    assert caller_wer <= MAX_WER, (caller_wer, texts(call, "CALLER"))
    assert agent_wer <= MAX_WER, (agent_wer, texts(call, "AGENT"))
    swapped = wer(talk.caller_text, texts(call, "AGENT"))
    assert swapped > 0.5

    # LCA's events on the bus: START first, END last, finals carry sentiment and latency
    events = bus_events(server, contact_id)
    kinds = [e["EventType"] for e in events]
    assert kinds[0] == "CallAnalyticsStarted" and kinds[-1] == "CallAnalyticsEnded"
    assert "CallSummary" in kinds
    finals = [e for e in events if e["EventType"] == "TranscriptSegment" and not e["IsPartial"]]
    assert len(finals) == 6
    for seg in finals:
        assert seg["Sentiment"] in ("POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED")
        assert seg["LatencyMs"] >= 0 and 0 < seg["Confidence"] <= 1
        assert seg["SegmentId"].startswith("ch_0-" if seg["Channel"] == "CALLER" else "ch_1-")
    # utterances longer than the partial interval had partials first, with the same id
    partial_ids = {
        e["SegmentId"] for e in events if e["EventType"] == "TranscriptSegment" and e["IsPartial"]
    }
    assert partial_ids <= {s["SegmentId"] for s in finals}

    # the per-call log in LCA's shape, the transcript endpoint and the CLI
    log = cli("transcript", contact_id, "--endpoint-url", server.url, "--json")
    lines = [json.loads(x) for x in log.splitlines()]
    assert [x["SegmentId"] for x in lines] == [s["SegmentId"] for s in call["Segments"]]
    calls = [
        json.loads(x) for x in cli("calls", "--endpoint-url", server.url, "--json").splitlines()
    ]
    row = next(c for c in calls if c["CallId"] == contact_id)
    assert row["Status"] == "ENDED" and row["Segments"] == 6
    assert row["DurationSeconds"] > len(talk.caller) / 8000 - 1
    assert row["SecondsBehindLive"] == 0
    lca = api_text(server, f"/callstream/calls/{contact_id}/events")
    lca_types = [json.loads(x)["EventType"] for x in lca.splitlines()]
    assert lca_types[0] == "START" and lca_types[-1] == "END"
    assert "ADD_TRANSCRIPT_SEGMENT" in lca_types and "ADD_SUMMARY" in lca_types

    # the stereo recording: caller left, agent right, aligned with the call
    wav_path = tmp_path / "recording.wav"
    status, data = signed_request(
        "GET",
        f"{server.url}/callstream/calls/{contact_id}/recording.wav",
        region="us-east-1",
        credentials=_creds(),
    )
    assert status == 200
    wav_path.write_bytes(data)
    with wave.open(str(wav_path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert len(stereo) / 8000 >= call["Summary"]["DurationSeconds"] - 0.1
    for seg in call["Segments"]:  # each utterance is loud on its own channel only
        span = stereo[int(seg["StartTime"] * 8000) : int(seg["EndTime"] * 8000)]
        own, other = (0, 1) if seg["Channel"] == "CALLER" else (1, 0)
        assert np.abs(span[:, own]).mean() > 10 * np.abs(span[:, other]).mean() + 1, seg

    # the saved recording analysed offline gives the same transcripts
    offline = json.loads(cli("analyze", "--input", str(wav_path), "--asr-workers", "2"))
    assert wer(talk.caller_text, texts(offline, "CALLER")) <= MAX_WER
    assert wer(talk.agent_text, texts(offline, "AGENT")) <= MAX_WER

    # the call's utterances as a training set
    calls = server.state.calls
    assert calls is not None
    out = tmp_path / "dataset"
    cli("export-dataset", "--data-dir", str(calls.directory.parent), "--out", str(out),
        "--calls", contact_id)  # fmt: skip
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [m["segment_id"] for m in manifest] == [s["SegmentId"] for s in call["Segments"]]
    assert [m["text"] for m in manifest] == [s["Transcript"] for s in call["Segments"]]


def api_text(server: ServerThread, path: str) -> str:
    status, data = signed_request(
        "GET", server.url + path, region="us-east-1", credentials=_creds()
    )
    assert status == 200
    return data.decode()


@pytest.fixture(scope="module")
def connector(server: ServerThread) -> dict[str, Any]:
    """The server's one voice connector, streaming on."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from server_helpers import make_client

    chime = make_client(server.url, "chime-sdk-voice", KEY, SECRET)
    vc: dict[str, Any] = chime.create_voice_connector(Name="analytics", RequireEncryption=False)[
        "VoiceConnector"
    ]
    chime.put_voice_connector_streaming_configuration(
        VoiceConnectorId=vc["VoiceConnectorId"],
        StreamingConfiguration={"DataRetentionInHours": 24, "Disabled": False},
    )
    return vc


def test_a_voice_connector_call_pairs_its_legs_into_one_call(
    server: ServerThread, connector: dict[str, Any]
) -> None:
    from callstream.voice.client import place_call

    vc = connector
    talk = conversation(4, seed=11)
    voice = server.state.voice
    assert voice is not None
    result = asyncio.run(
        place_call(
            ("127.0.0.1", voice.sip_port),
            [talk.caller.tobytes(), talk.agent.tobytes()],
            request_uri=f"sip:+15550100@{vc['OutboundHostName']}",
        )
    )
    found = wait_ended(server, result.call_id)
    call = found["Call"]
    assert found["CallSummary"]["Source"] == "VOICE_CONNECTOR"
    assert wer(talk.caller_text, texts(call, "CALLER")) <= MAX_WER
    assert wer(talk.agent_text, texts(call, "AGENT")) <= MAX_WER
    started = [
        e for e in bus_events(server, result.call_id) if e["EventType"] == "CallAnalyticsStarted"
    ]
    assert len(started) == 1 and started[0]["TransactionId"]


NBR_SCENARIO = Path(__file__).resolve().parents[1] / "voice" / "scenarios" / "cisco_nbr_pcap.xml"


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp (Debian sip-tester) not installed")
@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() != 0,
    reason="SIPp's play_pcap_audio needs root (raw sockets)",
)
def test_sipp_plays_a_pcap_of_speech_into_a_recorded_call(
    server: ServerThread, connector: dict[str, Any], tmp_path: Path
) -> None:
    """SIPp (a real SIP stack) sets up a Cisco NBR recording session and plays a pcap of
    G.711 speech on the caller's m-line; the server transcribes the caller's leg."""
    talk = conversation(3, seed=21)
    pcap = write_rtp_pcap(tmp_path / "speech.pcap", talk.caller)
    seconds = len(talk.caller) / 8000
    text = NBR_SCENARIO.read_text(encoding="latin-1").replace("PCAP_PATH", str(pcap))
    text = text.replace(
        '<pause milliseconds="8000"/>', f'<pause milliseconds="{int(seconds * 1000) + 1500}"/>'
    )
    scenario = tmp_path / "scenario.xml"
    scenario.write_text(text, encoding="latin-1")
    voice = server.state.voice
    assert voice is not None
    before = {e["CallId"] for e in server_calls(server)}
    done = subprocess.run(
        [
            "sipp", f"127.0.0.1:{voice.sip_port}", "-sf", str(scenario), "-m", "1",
            "-i", "127.0.0.1", "-p", str(_free_port()), "-mp", str(_free_port() & ~1),
            "-timeout", "90", "-timeout_error", "-nostdin", "-trace_err",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    new = [c for c in server_calls(server) if c["CallId"] not in before]
    assert len(new) == 1 and new[0]["Source"] == "VOICE_CONNECTOR"
    call = wait_ended(server, new[0]["CallId"])["Call"]
    assert wer(talk.caller_text, texts(call, "CALLER")) <= MAX_WER, texts(call, "CALLER")
    assert texts(call, "AGENT") == []  # SIPp plays to the first m-line only


def server_calls(server: ServerThread) -> list[dict[str, Any]]:
    return list(api(server, "/callstream/calls?limit=1000")["Calls"])


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_an_abusive_caller_is_flagged_live_with_a_webhook_alert(
    server: ServerThread, receiver: Receiver, tmp_path: Path
) -> None:
    """Spoken abuse becomes a CallAlert on the webhook while the call goes on, and
    ``callstream transcript --follow`` prints the call as it happens, then ends with it."""
    from callstream.media.resample import resample
    from callstream.media.wav import read_wav

    lines = [
        "Hello, I am calling about my broadband bill.",
        "Shut up you stupid bitch, I know where you live.",
        "I want to speak to your manager right now.",
    ]
    pieces = [np.zeros(4000, np.int16)]
    for i, line in enumerate(lines):
        path = tmp_path / f"line{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(path), line],
                       check=True, capture_output=True)  # fmt: skip
        wav = read_wav(path)
        mono = wav.samples[:, 0] if wav.samples.ndim == 2 else wav.samples
        pieces += [resample(mono, wav.rate, 8000), np.zeros(12000, np.int16)]
    pieces.append(np.zeros(8000 * 4, np.int16))
    customer = write_wav(tmp_path / "abusive.wav", np.concatenate(pieces))
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(STREAMING_FLOW))
    before = {c["CallId"] for c in server_calls(server)}
    call_proc = subprocess.Popen(
        [sys.executable, "-m", "callstream.cli", "call", "--flow", str(flow),
         "--customer-audio", str(customer), "--endpoint-url", server.url],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (new := [c for c in server_calls(server) if c["CallId"] not in before]):
            assert time.monotonic() < deadline, "the call never appeared in the call list"
            time.sleep(0.1)
        call_id = new[0]["CallId"]
        follow = subprocess.Popen(
            [sys.executable, "-m", "callstream.cli", "transcript", call_id, "--follow",
             "--endpoint-url", server.url],
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        out, err = follow.communicate(timeout=120)  # ends with the call
        assert follow.returncode == 0, err
    finally:
        call_proc.communicate(timeout=120)
    found = wait_ended(server, call_id)
    assert "ABUSIVE_CALLER" in found["CallSummary"]["Flags"]
    printed = [line for line in out.splitlines() if line.strip()]
    assert len(printed) == len(found["Call"]["Segments"]) >= 2
    assert all(" CALLER " in line for line in printed)
    deadline = time.monotonic() + 30
    while not [b for b in receiver.bodies if b.get("CallId") == call_id]:
        assert time.monotonic() < deadline, "no webhook alert"
        time.sleep(0.1)
    (alert,) = [b for b in receiver.bodies if b.get("CallId") == call_id]
    assert alert["EventType"] == "CallAlert" and alert["AlertType"] == "ABUSIVE_CALLER"
    evidence = {e["SegmentId"] for e in alert["Evidence"]}
    flagged = [s for s in found["Call"]["Segments"] if s["SegmentId"] in evidence]
    assert [s["Transcript"] for s in flagged] == [
        s["Transcript"] for s in found["Call"]["Segments"] if "bitch" in s["Transcript"].lower()
    ]
