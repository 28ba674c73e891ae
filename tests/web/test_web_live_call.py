"""End to end: a real Connect call placed with ``callstream call`` (real telephone speech,
one abusive line spoken by espeak-ng) against a server transcribing with Whisper, watched
in headless Chromium: the call appears in the list, its transcript grows live in the
call's page, the abusive-caller alert shows up, the recording plays, and the call's
stream can be browsed fragment by fragment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from web_helpers import Browser, artifact, chromium, need_browser

from callstream.analytics.call import CallSettings
from callstream.analytics.service import AnalyticsConfig
from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.voice.server import VoiceConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analytics"))
from call_speech import RATE, need_speech, prompts, write_wav
from call_speech import STREAMING_FLOW as FLOW

pytestmark = pytest.mark.slow

KEY, SECRET = "ui-e2e-key", "ui-e2e-secret"
WAIT_MS = 90_000
ABUSE = "Shut up you stupid bitch, I know where you live."


def espeak(text: str, path: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng at 130 words a minute, as 8 kHz samples."""
    from callstream.media.resample import resample
    from callstream.media.wav import read_wav

    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(path), text],
                   check=True, capture_output=True)  # fmt: skip
    wav = read_wav(path)
    mono = wav.samples[:, 0] if wav.samples.ndim == 2 else wav.samples
    return np.asarray(resample(mono, wav.rate, RATE), np.int16)


def script(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Caller and agent tracks: real recorded prompts taking turns, the caller's second
    turn the abusive line."""
    said = prompts(4, seed=7)
    turns = [
        ("CALLER", said[0].pcm),
        ("AGENT", said[1].pcm),
        ("CALLER", espeak(ABUSE, tmp_path / "abuse.wav")),
        ("AGENT", said[2].pcm),
        ("CALLER", said[3].pcm),
    ]
    gap = np.zeros(int(1.2 * RATE), np.int16)
    caller: list[np.ndarray] = [np.zeros(RATE // 2, np.int16)]
    agent: list[np.ndarray] = [np.zeros(RATE // 2, np.int16)]
    for role, pcm in turns:
        quiet = np.zeros(len(pcm), np.int16)
        caller += [pcm if role == "CALLER" else quiet, gap]
        agent += [pcm if role == "AGENT" else quiet, gap]
    caller.append(np.zeros(2 * RATE, np.int16))
    return np.concatenate(caller), np.concatenate(agent)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    need_browser()
    need_speech()
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng for the abusive line (scripts/setup-dev.sh installs it)")
    config = ServerConfig(
        credentials={KEY: SECRET},
        live_idle_timeout_s=0.5,
        voice=VoiceConfig(sip_port=0, rtp_ports=(41000, 41999)),
        analytics=AnalyticsConfig(workers=2, settings=CallSettings(partials=True)),
    )
    with ServerThread(tmp_path_factory.mktemp("ui-e2e"), config=config) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def test_a_real_call_is_watched_live_in_the_browser(
    server: ServerThread, browser: Browser, tmp_path: Path
) -> None:
    caller, agent = script(tmp_path)
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(FLOW))
    page = browser.page(width=1360, height=860)
    page.goto(server.url + "/")
    page.wait_for_selector("#calls-message:has-text('No calls match')")
    page.wait_for_selector("#live-status[data-state='live']")

    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
    placed = subprocess.Popen(
        [sys.executable, "-m", "callstream.cli", "call", "--flow", str(flow),
         "--customer-audio", str(write_wav(tmp_path / "caller.wav", caller)),
         "--agent-audio", str(write_wav(tmp_path / "agent.wav", agent)),
         "--endpoint-url", server.url],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # the call appears in the list by itself (server-sent events), while it is live
        page.wait_for_selector("#calls-table tbody tr", timeout=WAIT_MS)
        call_id = page.locator("#calls-table tbody tr").first.get_attribute("data-call-id")
        assert call_id
        status = page.locator("#calls-table tbody tr .col-status").first.inner_text()
        assert status in ("STARTED", "TRANSCRIBING")
        page.screenshot(path=str(artifact("e2e-call-list.png")))

        # its page: the transcript grows while the call goes on
        page.locator("#calls-table a.call-link").first.click()
        page.wait_for_selector("#call-id", timeout=WAIT_MS)
        counts: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ended = "ENDED" in page.locator(".call-head h1").inner_text()
            counts.append(page.locator("#transcript li.final").count())
            if ended:
                break
            time.sleep(0.25)
        live_counts = counts[:-1]
        assert len({c for c in live_counts if c > 0}) >= 2, counts  # grew while live
        assert counts[-1] >= 4, counts

        # the abusive caller: an alert with its evidence, the line marked
        pill = page.locator("#call-alerts .alert-pill", has_text="Abusive caller")
        pill.wait_for(timeout=WAIT_MS)
        abusive = page.locator("#transcript li.abusive")
        assert abusive.count() >= 1
        assert "bitch" in abusive.first.inner_text().lower()
        assert abusive.first.locator("mark.abuse").count() >= 1
        assert page.locator(".toast", has_text="Abusive caller").count() >= 1
    finally:
        out, err = placed.communicate(timeout=120)
    assert placed.returncode == 0, err
    assert json.loads(out)["ContactId"] == call_id

    # the recording: click a line, the player seeks there and its time advances
    page.wait_for_selector("#recording", timeout=WAIT_MS)
    page.wait_for_function("() => document.getElementById('recording').readyState >= 1")
    line = page.locator("#transcript li.agent").first
    start = float(line.get_attribute("data-start") or 0)
    line.click()
    page.wait_for_function(
        f"() => {{ const a = document.getElementById('recording');"
        f" return !a.paused && a.currentTime > {start} + 0.5; }}",
        timeout=WAIT_MS,
    )
    page.evaluate("document.getElementById('recording').pause()")
    page.locator(".toast button.close").first.click()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifact("e2e-call-detail.png")))
    assert page.locator(".chart-caller circle.dot").count() >= 2

    # the call's stream, from the call's page to its fragments
    page.locator("#call-streams a").first.click()
    page.wait_for_selector("#timeline", timeout=WAIT_MS)
    info = page.locator("#stream-info").inner_text()
    assert "Amazon Connect contact" in info and f"ContactId={call_id}" in info
    assert page.locator("#timeline rect.span").count() >= 1
    assert page.locator("#fragments-table tr.fragment").count() >= 20
    command = page.locator("#get-audio-command").inner_text()
    assert command.startswith("callstream get-audio --stream ") and "--start-timestamp" in command
    page.locator("#range-audio").evaluate("a => a.play()")
    page.wait_for_function(
        "() => document.getElementById('range-audio').currentTime > 0.5", timeout=WAIT_MS
    )
    page.locator("#range-audio").evaluate("a => a.pause()")
    page.screenshot(path=str(artifact("e2e-stream.png")))
    assert browser.errors == []
    page.close()


def test_a_voice_connector_call_shows_its_two_legs(server: ServerThread, browser: Browser) -> None:
    """A SIPREC recording session (real SIP and RTP sockets): one call in the list with
    the voice connector as its source, its transcript, and each leg's stream."""
    import asyncio
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from server_helpers import make_client

    from callstream.voice.client import place_call

    chime = make_client(server.url, "chime-sdk-voice", KEY, SECRET)
    vc = chime.create_voice_connector(Name="ui", RequireEncryption=False)["VoiceConnector"]
    chime.put_voice_connector_streaming_configuration(
        VoiceConnectorId=vc["VoiceConnectorId"],
        StreamingConfiguration={"DataRetentionInHours": 24, "Disabled": False},
    )
    said = prompts(2, seed=13)
    gap = np.zeros(RATE, np.int16)
    caller = np.concatenate([gap, said[0].pcm, gap, np.zeros(len(said[1].pcm), np.int16), gap])
    agent = np.concatenate([gap, np.zeros(len(said[0].pcm), np.int16), gap, said[1].pcm, gap])
    voice = server.state.voice
    assert voice is not None
    page = browser.page()
    page.goto(server.url + "/ui/#/calls")
    page.wait_for_selector("#live-status[data-state='live']")
    shown = set(
        page.locator("#calls-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.callId)")
    )
    results: list[object] = []
    placing = threading.Thread(
        target=lambda: results.append(
            asyncio.run(
                place_call(
                    ("127.0.0.1", voice.sip_port),
                    [caller.tobytes(), agent.tobytes()],
                    request_uri=f"sip:+15550100@{vc['OutboundHostName']}",
                )
            )
        ),
        daemon=True,
    )
    placing.start()
    page.wait_for_function(
        "(shown) => [...document.querySelectorAll('#calls-table tbody tr')]"
        ".some(r => !shown.includes(r.dataset.callId))",
        arg=sorted(shown),
        timeout=WAIT_MS,
    )
    row = page.locator("#calls-table tbody tr").first
    assert row.locator(".col-source").inner_text() == "Voice connector"
    row.locator("a.call-link").click()
    page.wait_for_selector("#transcript li.final", timeout=WAIT_MS)
    placing.join(120)
    assert results, "the SIPREC call did not finish"
    page.wait_for_selector("#recording", timeout=WAIT_MS)
    assert page.locator("#transcript li.caller.final").count() >= 1
    assert page.locator("#transcript li.agent.final").count() >= 1
    legs = page.locator("#call-streams a")
    page.wait_for_function(
        "() => document.querySelectorAll('#call-streams a').length === 2", timeout=WAIT_MS
    )
    roles = page.locator("#call-streams li").all_inner_texts()
    assert any("(caller)" in r for r in roles) and any("(agent)" in r for r in roles)
    legs.first.click()
    page.wait_for_selector("#timeline", timeout=WAIT_MS)
    assert "Voice connector leg" in page.locator("#stream-info").inner_text()
    assert page.locator("#fragments-table tr.fragment").count() >= 3
    assert browser.errors == []
    page.close()
