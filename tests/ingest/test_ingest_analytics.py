"""A call through each ingest gateway is transcribed live by the server's analytics
(Whisper tiny.en on real telephone speech), each party on its own channel."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "analytics"))
from call_speech import conversation, need_speech, signed_json, wer

from callstream.analytics.call import CallSettings
from callstream.analytics.service import AnalyticsConfig
from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.ingest.config import IngestConfig
from callstream.ingest.replay import ReplayOptions, replay

pytestmark = pytest.mark.slow

KEY, SECRET = "ingest-asr-key", "ingest-asr-secret"
TWILIO_TOKEN = "asr-twilio"
HOOK_KEY, HOOK_SECRET = "asr-hook", "YXNyLWhvb2stc2VjcmV0"
TOKEN = "asr-token"
MAX_WER = 0.1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    need_speech()
    config = ServerConfig(
        credentials={KEY: SECRET},
        live_idle_timeout_s=0.5,
        ui=None,
        analytics=AnalyticsConfig(workers=2, settings=CallSettings(alert_categories=None)),
        ingest=IngestConfig(
            twilio_auth_token=TWILIO_TOKEN,
            audiohook_keys={HOOK_KEY: HOOK_SECRET},
            token=TOKEN,
            audiosocket_port=0,
        ),
    )
    with ServerThread(tmp_path_factory.mktemp("ingest-asr"), config=config) as srv:
        yield srv


def contact_of(server: ServerThread, call_id: str) -> str:
    """The ContactId of the stream tagged with the protocol's call id."""
    deadline = time.monotonic() + 30
    while True:
        for event in server.state.events.query(after=0, limit=10000).events:
            if event.type == "StreamCreated":
                stream = server.run(server.store.stream(arn=event.fields["StreamARN"]))
                if stream.tags.get("callstream:call-id") == call_id:
                    return str(stream.tags["callstream:contact-id"])
        assert time.monotonic() < deadline, f"no stream for {call_id}"
        time.sleep(0.2)


def transcript(server: ServerThread, contact_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        try:
            found = signed_json(f"{server.url}/callstream/calls/{contact_id}", "GET", KEY, SECRET)
            if "Call" in found and found["CallSummary"]["Status"] == "ENDED":
                return dict(found)
        except AssertionError:  # 404 until the call is known
            pass
        assert time.monotonic() < deadline, f"call {contact_id} did not finish"
        time.sleep(0.5)


def texts(call: dict[str, Any], channel: str) -> list[str]:
    return [s["Transcript"] for s in call["Segments"] if s["Channel"] == channel]


@pytest.mark.parametrize("protocol", ["twilio", "audiohook", "websocket", "audiosocket"])
def test_a_call_through_each_gateway_is_transcribed_per_channel(
    server: ServerThread, protocol: str
) -> None:
    seed = {"twilio": 11, "audiohook": 12, "websocket": 13, "audiosocket": 3}[protocol]
    talk = conversation(4, seed=seed)
    caller = np.ascontiguousarray(talk.caller, "<i2").tobytes()
    agent = np.ascontiguousarray(talk.agent, "<i2").tobytes()
    mono = protocol == "audiosocket"  # AudioSocket carries one channel: the caller
    ingest = server.config.ingest
    assert ingest is not None
    call_id = str(uuid.uuid4())
    options = ReplayOptions(
        protocol,  # type: ignore[arg-type]
        port=(ingest.bound_audiosocket_port if mono else server.port) or 0,
        call_id=call_id,
        speed=4.0,
        twilio_auth_token=TWILIO_TOKEN,
        audiohook_api_key=HOOK_KEY,
        audiohook_secret=HOOK_SECRET,
        token=TOKEN,
    )
    asyncio.run(replay([caller] if mono else [caller, agent], options))
    contact_id = contact_of(server, call_id)
    found = transcript(server, contact_id)
    call = found["Call"]
    assert found["CallSummary"]["Source"] == "CONNECT"
    caller_wer = wer(talk.caller_text, texts(call, "CALLER"))
    assert caller_wer <= MAX_WER, (caller_wer, texts(call, "CALLER"))
    if mono:
        assert texts(call, "AGENT") == []
    else:
        agent_wer = wer(talk.agent_text, texts(call, "AGENT"))
        assert agent_wer <= MAX_WER, (agent_wer, texts(call, "AGENT"))
        assert wer(talk.caller_text, texts(call, "AGENT")) > 0.5  # roles not swapped
    json.dumps(found)  # the API's answer is plain JSON


@pytest.fixture(scope="module")
def chime_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    need_speech()
    config = ServerConfig(
        credentials={KEY: SECRET},
        live_idle_timeout_s=0.5,
        ui=None,
        analytics=AnalyticsConfig(workers=2, settings=CallSettings(alert_categories=None)),
        ingest=IngestConfig(token=TOKEN, shape="chime"),
    )
    with ServerThread(tmp_path_factory.mktemp("ingest-asr-chime"), config=config) as srv:
        yield srv


def test_a_chime_shaped_call_is_paired_by_leg_and_transcribed_per_channel(
    chime_server: ServerThread,
) -> None:
    """The chime shape: a stream per leg, STARTED per leg with IsCaller; the analytics
    pairs the two legs into one call by TransactionId, each on its own channel."""
    talk = conversation(4, seed=13)  # as the connect-shaped websocket call
    caller = np.ascontiguousarray(talk.caller, "<i2").tobytes()
    agent = np.ascontiguousarray(talk.agent, "<i2").tobytes()
    call_id = str(uuid.uuid4())
    options = ReplayOptions(
        "websocket", port=chime_server.port, call_id=call_id, speed=4.0, token=TOKEN
    )
    asyncio.run(replay([caller, agent], options))
    found = transcript(chime_server, call_id)
    call = found["Call"]
    assert found["CallSummary"]["Source"] == "VOICE_CONNECTOR"
    caller_wer = wer(talk.caller_text, texts(call, "CALLER"))
    agent_wer = wer(talk.agent_text, texts(call, "AGENT"))
    assert caller_wer <= MAX_WER, (caller_wer, texts(call, "CALLER"))
    assert agent_wer <= MAX_WER, (agent_wer, texts(call, "AGENT"))
