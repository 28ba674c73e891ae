"""``place_call`` end to end: a real server, real PutMedia uploads, real Lambda handlers.

Every call runs at a high ``speed`` on the media clock; audio is read back with GetMedia and
compared sample for sample with what the customer said and heard.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import lca_handlers
import numpy as np
import pytest
from aiohttp import web
from flows_helpers import (
    CREDS,
    DISABLE,
    ENABLE,
    KEY,
    LCA_FLOW,
    LCA_LAMBDA,
    LCA_LOGGING,
    LCA_SET_QUEUE,
    LCA_START,
    LCA_TRANSFER,
    RATE,
    REGION,
    SECRET,
    SPEED,
    action,
    call,
    ctr_ms,
    flow_doc,
    noise,
    requires_lca,
    wav,
)

from callstream.api.server import ServerThread
from callstream.client.getmedia import StartSelector, get_media
from callstream.flows import Failed, FlowError, PlayPrompt, load_flow
from callstream.flows.call import (
    FRAME_SAMPLES,
    NON_TEXT_PROMPT_MS,
    TONE_MAX_MS,
    CallResult,
    load_handler,
    place_call,
    prompt_audio,
    tone,
)
from callstream.media.extract import AudioExtractor, Selection
from callstream.media.resample import resample
from callstream.media.wav import read_wav
from callstream.mkv.kvs import Fragment

SRC = Path(__file__).resolve().parents[2] / "src"


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    lca_handlers.EVENTS.clear()


def read_stream(
    server: ServerThread, arn: str, start_fragment: str
) -> tuple[np.ndarray, list[Fragment]]:
    """Stereo audio (ch0 customer, ch1 to-customer) from ``start_fragment`` on, and the
    fragments, as a Connect consumer reads them."""
    extractor = AudioExtractor(Selection.ALL)
    fragments: list[Fragment] = []
    pcm = bytearray()
    for fragment in get_media(
        stream_arn=arn,
        start=StartSelector.from_fragment(start_fragment),
        endpoint_url=server.url,
        region=REGION,
        credentials=CREDS,
        retry_delay=0.1,
    ):
        fragments.append(fragment)
        pcm += extractor.add(fragment)
    pcm += extractor.finish()
    return np.frombuffer(bytes(pcm), "<i2").reshape(-1, 2), fragments


def audio_of(payload: dict[str, Any]) -> Any:
    return payload["Details"]["ContactData"]["MediaStreams"]["Customer"]["Audio"]


def steps(result: CallResult) -> dict[str, str]:
    return {s.action: s.result for s in result.trace}


# --- the LCA sample flow ----------------------------------------------------------------------


@requires_lca
def test_lca_flow_runs_as_published_and_the_stream_is_sample_exact(
    server: ServerThread, tmp_path: Path
) -> None:
    customer = noise(6.5, seed=1, extra=77)  # does not end on a frame
    agent = noise(10, seed=2, level=3000)
    result = call(
        server,
        flow=LCA_FLOW,
        customer_audio=wav(tmp_path, "customer.wav", customer),
        agent_audio=wav(tmp_path, "agent.wav", agent),
        lambdas={"StartLCA": "lca_handlers:start_lca"},
    )

    # the flow: logging, start streaming, StartLCA, queue, queued; then the customer hangs up
    path = steps(result)
    assert path[LCA_LOGGING] == "NextAction"
    assert path[LCA_START] == "NextAction"
    assert path[LCA_LAMBDA] == "NextAction"
    assert path[LCA_SET_QUEUE] == "NextAction"
    assert path[LCA_TRANSFER] == "queued"
    assert result.end.reason == "hangup"
    assert result.duration_samples == len(customer)  # ends when the customer audio ends

    # the StartLCA Lambda got the ContactFlowEvent with the media-streaming attributes
    assert len(lca_handlers.EVENTS) == 1
    event = lca_handlers.EVENTS[0]
    assert event["Name"] == "ContactFlowEvent"
    assert event["Details"]["ContactData"]["ContactId"] == result.contact_id
    audio = audio_of(event)
    assert set(audio) == {"StreamARN", "StartTimestamp", "StartFragmentNumber"}
    assert audio["StreamARN"] == result.stream_arn
    assert audio["StartFragmentNumber"] == result.start_fragment_number
    assert audio["StartTimestamp"] == str(result.start_timestamp_ms)
    ((name, payload, response),) = result.lambda_calls
    assert name == "StartLCA" and payload == event and response["statusCode"] == 200

    # a consumer reading from StartFragmentNumber gets exactly what was said and heard
    initiation = ctr_ms(result.ctr["InitiationTimestamp"])
    assert initiation == result.initiation_timestamp_ms
    start = (int(audio["StartTimestamp"]) - initiation) * RATE // 1000
    assert start % FRAME_SAMPLES == 0
    stereo, fragments = read_stream(server, audio["StreamARN"], audio["StartFragmentNumber"])
    assert stereo.shape == (len(customer) - start, 2)
    np.testing.assert_array_equal(stereo[:, 0], customer[start:])
    np.testing.assert_array_equal(stereo[:, 1], result.heard[start:])
    # what the customer heard: silence until queued, then the agent
    assert result.agent_start is not None and result.agent_start > start
    assert not result.heard[: result.agent_start].any()
    np.testing.assert_array_equal(
        result.heard[result.agent_start :], agent[: len(customer) - result.agent_start]
    )
    # fragments: Connect tags, 1 s fragments on whole media seconds
    assert fragments[0].fragment_number == audio["StartFragmentNumber"]
    assert all(f.tags.get("ContactId") == result.contact_id for f in fragments)
    assert {t.name for t in fragments[0].tracks.values()} == {
        "AUDIO_FROM_CUSTOMER",
        "AUDIO_TO_CUSTOMER",
    }
    stamps = [f.producer_timestamp_ms for f in fragments]
    assert stamps[0] == result.start_timestamp_ms
    assert all(s is not None and (s - initiation) % 1000 == 0 for s in stamps[1:])

    # the CTR: the KVS recording entry with fragment numbers, stored on the server
    ctr = result.ctr
    assert ctr["ContactId"] == result.contact_id
    assert ctr["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    assert ctr["Queue"]["Name"] == "BasicQueue"
    (recording,) = ctr["Recordings"]
    assert recording["StorageType"] == "KINESIS_VIDEO_STREAM"
    assert recording["Location"] == audio["StreamARN"]
    assert recording["FragmentStartNumber"] == audio["StartFragmentNumber"]
    assert recording["FragmentStopNumber"] == fragments[-1].fragment_number
    assert recording["StopTimestamp"] is not None
    assert result.stop_timestamp_ms == initiation + len(customer) * 1000 // RATE
    assert result.ctr_stored
    assert server.state.contacts.get(result.contact_id) == ctr
    assert result.logs and result.logs[0]["ContactFlowModuleType"] == "UpdateFlowLoggingBehavior"

    # and with the command line, as the acceptance criterion reads
    out = tmp_path / "all.wav"
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        PYTHONPATH=os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "callstream.cli",
            "get-audio",
            "--stream",
            str(result.stream_name),
            "--endpoint-url",
            server.url,
            "--start-fragment",
            audio["StartFragmentNumber"],
            "--track",
            "all",
            "--out",
            str(out),
        ],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    got = read_wav(out)
    np.testing.assert_array_equal(got.samples[:, 0], customer[start:])
    np.testing.assert_array_equal(got.samples[:, 1], result.heard[start:])


@requires_lca
@pytest.mark.parametrize("channel", ["CHAT", "TASK"])
def test_non_voice_contact_takes_the_streaming_error_branch(
    server: ServerThread, tmp_path: Path, channel: str
) -> None:
    result = call(
        server,
        flow=LCA_FLOW,
        customer_audio=wav(tmp_path, "customer.wav", noise(1.5, seed=3)),
        channel=channel,
        lambdas={"StartLCA": "lca_handlers:start_lca"},
    )
    assert steps(result)[LCA_START] == "Error NoMatchingError"
    assert steps(result)[LCA_LAMBDA] == "NextAction"  # the error branch goes on to StartLCA
    event = lca_handlers.EVENTS[0]
    assert event["Details"]["ContactData"]["Channel"] == channel
    assert audio_of(event) is None
    assert result.stream_arn is None and result.start_fragment_number is None
    assert result.ctr["Channel"] == channel
    assert result.ctr["Recordings"] is None
    kv = boto3.client(
        "kinesisvideo",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )
    names = [s["StreamName"] for s in kv.list_streams()["StreamInfoList"]]
    assert not any(result.contact_id in n for n in names)


# --- transfers and the Disabled block ---------------------------------------------------------


def _first_flow() -> dict[str, Any]:
    return flow_doc(
        action("start", "UpdateContactMediaStreamingBehavior", ENABLE, next_action="hello",
               errors={"NoMatchingError": "bye"}),
        action("hello", "MessageParticipant", {"Text": "Welcome to flow one."},
               next_action="go", errors={"NoMatchingError": "go"}),
        action("go", "TransferToFlow", {"ContactFlowId": "flow-two"},
               errors={"NoMatchingError": "bye"}),
        action("bye", "DisconnectParticipant"),
        name="flow-one",
    )  # fmt: skip


def _second_flow() -> dict[str, Any]:
    return flow_doc(
        action("two", "MessageParticipant", {"Text": "You are now in flow two."},
               next_action="stop", errors={"NoMatchingError": "stop"}),
        action("stop", "UpdateContactMediaStreamingBehavior", DISABLE, next_action="report",
               errors={"NoMatchingError": "bye"}),
        action("report", "InvokeLambdaFunction",
               {"LambdaFunctionARN": "arn:aws:lambda:us-east-1:123456789012:function:Report",
                "InvocationTimeLimitSeconds": "3"},
               next_action="after", errors={"NoMatchingError": "after"}),
        action("after", "MessageParticipant", {"Text": "Streaming is off now."},
               next_action="bye", errors={"NoMatchingError": "bye"}),
        action("bye", "DisconnectParticipant"),
        name="flow-two",
    )  # fmt: skip


def test_transfer_to_flow_keeps_streaming_and_a_disabled_block_ends_the_audio(
    server: ServerThread, tmp_path: Path
) -> None:
    customer = noise(20, seed=4)
    second = tmp_path / "flow-two.json"
    second.write_text(json.dumps(_second_flow()))
    result = call(
        server,
        flow=load_flow(_first_flow()),
        flows=[second],
        customer_audio=wav(tmp_path, "customer.wav", customer),
        lambdas={"Report": "lca_handlers:flat"},  # bound by the function name in the ARN
    )
    assert [s.flow for s in result.trace] == ["flow-one"] * 3 + ["flow-two"] * 5
    assert steps(result)["stop"] == "NextAction"
    assert result.end.reason == "disconnected"
    assert result.ctr["DisconnectReason"] == "CONTACT_FLOW_DISCONNECT"
    assert result.duration_samples < len(customer)

    # StopTimestamp is set, and a Lambda after the Disabled block sees it
    assert result.stop_timestamp_ms is not None
    (report,) = result.lambda_calls
    assert report.name == "Report"
    assert audio_of(report.payload)["StopTimestamp"] == str(result.stop_timestamp_ms)
    assert result.ctr["Recordings"][0]["StopTimestamp"] is not None

    # the stream holds exactly [StartTimestamp, StopTimestamp): flow two's prompt is in it,
    # the prompt after the Disabled block is not
    assert result.start_timestamp_ms is not None and result.start_fragment_number is not None
    init = result.initiation_timestamp_ms
    start = (result.start_timestamp_ms - init) * RATE // 1000
    stop = (result.stop_timestamp_ms - init) * RATE // 1000
    stereo, fragments = read_stream(server, str(result.stream_arn), result.start_fragment_number)
    assert stereo.shape == (stop - start, 2)
    np.testing.assert_array_equal(stereo[:, 0], customer[start:stop])
    np.testing.assert_array_equal(stereo[:, 1], result.heard[start:stop])
    welcome, two, after = result.prompts
    assert start <= welcome.start and two.end <= stop <= after.start
    assert stereo[two.start - start : two.end - start, 1].any()
    assert result.heard[after.start : after.end].any()
    assert result.ctr["Recordings"][0]["FragmentStopNumber"] == fragments[-1].fragment_number
    assert result.stop_fragment_number == fragments[-1].fragment_number


def test_directions_not_requested_are_silence_and_dtmf_picks_the_branch(
    server: ServerThread, tmp_path: Path
) -> None:
    customer = noise(30, seed=5)
    from_only = {
        **ENABLE,
        "Participants": [{"ParticipantType": "Customer", "MediaDirections": ["From"]}],
    }
    doc = flow_doc(
        action("start", "UpdateContactMediaStreamingBehavior", from_only, next_action="menu",
               errors={"NoMatchingError": "bye"}),
        action("menu", "GetParticipantInput",
               {"Text": "Press 1 for sales or 2 for support.", "StoreInput": "False",
                "InputTimeLimitSeconds": "3"},
               conditions=[("Equals", "1", "sales"), ("Equals", "2", "support")],
               errors={"InputTimeLimitExceeded": "timeout", "NoMatchingCondition": "bye",
                       "NoMatchingError": "bye"}),
        action("sales", "MessageParticipant", {"Text": "Sales."}, next_action="bye",
               errors={"NoMatchingError": "bye"}),
        action("support", "MessageParticipant", {"Text": "Support."}, next_action="pause",
               errors={"NoMatchingError": "bye"}),
        action("pause", "Wait", {"TimeoutSeconds": "2"},
               conditions=[("Equals", "WaitCompleted", "bye")],
               errors={"NoMatchingError": "bye"}),
        action("timeout", "MessageParticipant", {"Text": "Goodbye."}, next_action="bye",
               errors={"NoMatchingError": "bye"}),
        action("bye", "DisconnectParticipant"),
    )  # fmt: skip
    flow = load_flow(doc, strict=False)
    customer_wav = wav(tmp_path, "customer.wav", customer)

    result = call(server, flow=flow, customer_audio=customer_wav, dtmf="2")
    assert steps(result)["menu"] == "Condition Equals(2)"
    assert [p.text for p in result.prompts] == ["Press 1 for sales or 2 for support.", "Support."]
    assert result.duration_samples >= result.prompts[-1].end + 2 * RATE  # the Wait ran
    assert result.end.reason == "disconnected"
    assert result.start_fragment_number is not None and result.start_timestamp_ms is not None
    start = (result.start_timestamp_ms - result.initiation_timestamp_ms) * RATE // 1000
    stereo, _ = read_stream(server, str(result.stream_arn), result.start_fragment_number)
    assert stereo.shape == (result.duration_samples - start, 2)
    np.testing.assert_array_equal(stereo[:, 0], customer[start : result.duration_samples])
    assert result.heard[start:].any()  # the customer heard the prompts ...
    assert not stereo[:, 1].any()  # ... but "To" was not requested

    timed_out = call(server, flow=flow, customer_audio=customer_wav)
    assert steps(timed_out)["menu"] == "Error InputTimeLimitExceeded"
    menu = timed_out.prompts[0]
    assert timed_out.prompts[1].start >= menu.end + 3 * RATE  # waited 3 s for input


def test_customer_hangup_during_a_block_stops_streaming_at_the_end_of_the_audio(
    server: ServerThread, tmp_path: Path
) -> None:
    customer = noise(5, seed=6, extra=33)
    doc = flow_doc(
        action("start", "UpdateContactMediaStreamingBehavior", ENABLE, next_action="pause",
               errors={"NoMatchingError": "bye"}),
        action("pause", "Wait", {"TimeoutSeconds": "60"},
               conditions=[("Equals", "WaitCompleted", "bye")],
               errors={"NoMatchingError": "bye"}),
        action("bye", "DisconnectParticipant"),
    )  # fmt: skip
    result = call(
        server,
        flow=load_flow(doc, strict=False),
        customer_audio=wav(tmp_path, "customer.wav", customer),
    )
    assert result.end.reason == "hangup"
    assert result.ctr["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    assert result.duration_samples == len(customer)
    assert result.start_timestamp_ms is not None and result.start_fragment_number is not None
    start = (result.start_timestamp_ms - result.initiation_timestamp_ms) * RATE // 1000
    stereo, _ = read_stream(server, str(result.stream_arn), result.start_fragment_number)
    np.testing.assert_array_equal(stereo[:, 0], customer[start:])
    assert not stereo[:, 1].any()


# --- Lambdas ----------------------------------------------------------------------------------


def _lambda_flow() -> Any:
    doc = flow_doc(
        action("fn", "InvokeLambdaFunction",
               {"LambdaFunctionARN": "", "InvocationTimeLimitSeconds": "1",
                "LambdaInvocationAttributes": {"who": "$.Attributes.name"},
                "ResponseValidation": {"ResponseType": "STRING_MAP"}},
               next_action="save", errors={"NoMatchingError": "sorry"}),
        action("save", "UpdateContactAttributes", {"Attributes": {"tier": "$.External.tier"}},
               next_action="bye", errors={"NoMatchingError": "bye"}),
        action("sorry", "MessageParticipant", {"Text": "Sorry."}, next_action="bye",
               errors={"NoMatchingError": "bye"}),
        action("bye", "DisconnectParticipant"),
    )  # fmt: skip
    return load_flow(doc)


@pytest.mark.parametrize(
    ("handler", "branch"),
    [
        ("lca_handlers:flat", "NextAction"),
        ("lca_handlers:slow", "Error NoMatchingError"),
        ("lca_handlers:nested", "Error NoMatchingError"),
        ("lca_handlers:broken", "Error NoMatchingError"),
    ],
)
def test_lambda_timeouts_nested_maps_and_errors_take_the_error_branch(
    server: ServerThread, tmp_path: Path, handler: str, branch: str
) -> None:
    result = call(
        server,
        flow=_lambda_flow(),
        customer_audio=wav(tmp_path, "customer.wav", noise(20, seed=7)),
        attributes={"name": "Ada"},
        lambdas={"fn": handler},  # bound by the block Identifier (the ARN is empty)
        speed=5.0,
    )
    assert steps(result)["fn"] == branch
    ((name, payload, response),) = result.lambda_calls
    assert name == "fn"
    assert payload["Details"]["Parameters"] == {"who": "Ada"}
    if handler.endswith("flat"):
        assert response == {"tier": "gold", "echo": "Ada"}
        assert result.ctr["Attributes"] == {"name": "Ada", "tier": "gold"}
    else:
        assert "tier" not in result.ctr["Attributes"]
        assert [p.text for p in result.prompts] == ["Sorry."]
    if handler.endswith("slow"):
        assert isinstance(response, Failed) and response.timeout
    if handler.endswith("nested"):
        assert response == {"customer": {"tier": "gold"}}
    if handler.endswith("broken"):
        assert isinstance(response, Failed) and "boom" in response.message


def test_lambda_bound_to_an_url_gets_the_event_as_a_post(
    server: ServerThread, tmp_path: Path
) -> None:
    received: list[Any] = []

    async def flat(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"tier": "silver"})

    async def nested(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"deep": {"x": "1"}})

    async def scenario() -> list[CallResult]:
        app = web.Application()
        app.router.add_post("/flat", flat)
        app.router.add_post("/nested", nested)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return [
                await place_call(
                    flow=_lambda_flow(),
                    customer_audio=wav(tmp_path, "customer.wav", noise(20, seed=8)),
                    attributes={"name": "Bob"},
                    lambdas={"fn": f"http://127.0.0.1:{port}/{path}"},
                    endpoint_url=server.url,
                    region=REGION,
                    credentials=CREDS,
                    speed=SPEED,
                    on_event=lambda line: None,
                )
                for path in ("flat", "nested")
            ]
        finally:
            await runner.cleanup()

    good, bad = asyncio.run(scenario())
    assert steps(good)["fn"] == "NextAction"
    assert good.ctr["Attributes"]["tier"] == "silver"
    assert steps(bad)["fn"] == "Error NoMatchingError"
    assert [r["Details"]["Parameters"] for r in received] == [{"who": "Bob"}] * 2
    assert received[0]["Details"]["ContactData"]["ContactId"] == good.contact_id


def test_unbound_lambda_takes_the_error_branch(server: ServerThread, tmp_path: Path) -> None:
    result = call(
        server,
        flow=_lambda_flow(),
        customer_audio=wav(tmp_path, "customer.wav", noise(20, seed=9)),
    )
    assert steps(result)["fn"] == "Error NoMatchingError"
    ((_, _, response),) = result.lambda_calls
    assert isinstance(response, Failed) and "no Lambda bound" in response.message


def test_load_handler_from_a_file(tmp_path: Path) -> None:
    module = tmp_path / "my_lambda.py"
    module.write_text("def go(event, context):\n    return {'ok': 'yes'}\n")
    assert load_handler(f"{module}:go")({}, None) == {"ok": "yes"}
    assert load_handler("lca_handlers:flat") is lca_handlers.flat
    with pytest.raises(ValueError):
        load_handler("no-colon")
    with pytest.raises(AttributeError):
        load_handler("lca_handlers:missing")


# --- prompts and arguments --------------------------------------------------------------------


def test_prompt_tones_without_espeak() -> None:
    assert len(tone(10)) == 10 * 60 * RATE // 1000
    assert len(tone(500)) == TONE_MAX_MS * RATE // 1000
    text = PlayPrompt(text="Hello there")
    audio = asyncio.run(prompt_audio(text, espeak=""))
    assert len(audio) == len("Hello there") * 60 * RATE // 1000 and audio.any()
    ssml = PlayPrompt(ssml="<speak>Hi</speak>")
    assert len(asyncio.run(prompt_audio(ssml, espeak=""))) == 2 * 60 * RATE // 1000
    media = PlayPrompt(prompt_id="arn:aws:connect:::prompt/1")
    assert len(asyncio.run(prompt_audio(media, espeak=""))) == NON_TEXT_PROMPT_MS * RATE // 1000


def test_prompts_are_spoken_with_espeak_ng_when_present(tmp_path: Path) -> None:
    fake = tmp_path / "espeak-ng"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, numpy as np\n"
        "from callstream.media.wav import write_wav\n"
        "args = sys.argv[1:]\n"
        "out = args[args.index('-w') + 1]\n"
        "assert args[-2] == '--'\n"
        "n = 22050 // 2 if '-m' not in args else 22050\n"
        "write_wav(out, np.full(n, 1000, dtype=np.int16), 22050)\n"
    )
    fake.chmod(0o755)
    env_path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path
    try:
        spoken = asyncio.run(prompt_audio(PlayPrompt(text="Hello"), espeak=str(fake)))
        assert abs(len(spoken) - RATE // 2) <= 2  # 0.5 s at 22.05 kHz -> 8 kHz
        ssml = asyncio.run(prompt_audio(PlayPrompt(ssml="<speak>Hi</speak>"), espeak=str(fake)))
        assert abs(len(ssml) - RATE) <= 2
        failing = tmp_path / "failing"
        failing.write_text("#!/bin/sh\nexit 3\n")
        failing.chmod(0o755)
        fallback = asyncio.run(prompt_audio(PlayPrompt(text="Hello"), espeak=str(failing)))
        np.testing.assert_array_equal(fallback, tone(5))
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def test_broken_flows_and_bad_arguments_fail_before_the_call(tmp_path: Path) -> None:
    customer = wav(tmp_path, "customer.wav", noise(1, seed=10))
    broken = flow_doc(
        action("a", "MessageParticipant", {"Text": "hi"}, next_action="nowhere"),
    )
    with pytest.raises(FlowError, match="action 'a': NextAction names no action 'nowhere'"):
        asyncio.run(
            place_call(flow=broken, customer_audio=customer, endpoint_url="http://127.0.0.1:9")
        )
    with pytest.raises(ValueError, match="speed"):
        asyncio.run(
            place_call(
                flow=load_flow(flow_doc(action("bye", "DisconnectParticipant"))),
                customer_audio=customer,
                endpoint_url="http://127.0.0.1:9",
                speed=0,
            )
        )


def test_stereo_customer_audio_at_16_khz_plays_channel_0_at_8_khz(
    server: ServerThread, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    # 30 s: at SPEED the customer must still be on the line when the flow disconnects,
    # however long starting the stream takes on a loaded machine
    stereo16k = rng.integers(-6000, 6000, size=(30 * 16000, 2)).astype(np.int16)
    path = wav(tmp_path, "customer16k.wav", stereo16k, rate=16000)
    doc = flow_doc(
        action("start", "UpdateContactMediaStreamingBehavior", ENABLE, next_action="pause",
               errors={"NoMatchingError": "bye"}),
        action("pause", "Wait", {"TimeoutSeconds": "1"},
               conditions=[("Equals", "WaitCompleted", "bye")],
               errors={"NoMatchingError": "bye"}),
        action("bye", "DisconnectParticipant"),
    )  # fmt: skip
    result = call(server, flow=load_flow(doc, strict=False), customer_audio=path)
    assert result.end.reason == "disconnected"
    expected = resample(np.ascontiguousarray(stereo16k[:, 0]), 16000, RATE)
    np.testing.assert_array_equal(result.customer_audio, expected[: result.duration_samples])
    assert result.start_timestamp_ms is not None and result.start_fragment_number is not None
    start = (result.start_timestamp_ms - result.initiation_timestamp_ms) * RATE // 1000
    got, _ = read_stream(server, str(result.stream_arn), result.start_fragment_number)
    np.testing.assert_array_equal(got[:, 0], expected[start : result.duration_samples])
