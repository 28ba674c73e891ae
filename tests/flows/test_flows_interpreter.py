"""The interpreter, driven by a scripted runner: LCA end to end, error branches, transfers."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from flows_helpers import (
    DISABLE,
    ENABLE,
    LCA_CAPACITY_PROMPT,
    LCA_DISCONNECT,
    LCA_FLOW,
    LCA_LAMBDA,
    LCA_LAMBDA_ERROR_PROMPT,
    LCA_SET_QUEUE,
    LCA_START,
    LCA_STOP,
    LCA_TRANSFER,
    Clock,
    ScriptedRunner,
    action,
    flow_doc,
    legacy_lca,
    ok_lambda,
    requires_lca,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.flows import (
    Contact,
    Disconnect,
    Failed,
    Flow,
    FlowEnded,
    FlowRegistry,
    FlowRun,
    GetInput,
    HoursOfOperation,
    HoursRange,
    InputResult,
    Instance,
    InvokeLambda,
    LambdaResult,
    Log,
    MediaStreamingStarted,
    PlayPrompt,
    Queue,
    StartMediaStreaming,
    StopMediaStreaming,
    TransferToQueue,
    build_ctr,
    check_lambda_response,
    load_flow,
)
from callstream.flows.actions import OPERATORS
from callstream.flows.conditions import matches
from callstream.flows.interpreter import LambdaResponseError

AUDIO = ("Details", "ContactData", "MediaStreams", "Customer", "Audio")


def audio_of(payload: Any) -> Any:
    for key in AUDIO:
        payload = payload[key]
    return payload


def run_flow(
    flow: Flow,
    runner: ScriptedRunner,
    contact: Contact | None = None,
    **options: Any,
) -> tuple[FlowRun, FlowEnded]:
    contact = contact or Contact.new(instance=options.get("instance"), now=runner.clock())
    run = FlowRun(flow, contact, clock=runner.clock, **options)
    return run, run.drive(runner)


def path_of(run: FlowRun) -> list[tuple[str, str]]:
    return [(step.action, step.result) for step in run.trace]


def kinds(runner: ScriptedRunner) -> list[str]:
    return [type(e).__name__ for e in runner.effects if not isinstance(e, Log)]


# --- the LCA flow -------------------------------------------------------------------------------


@requires_lca
@pytest.mark.parametrize(
    "binding", ["StartLCA", "LCA087-CONNECTKVSSTACK-CTJ01I63PP-StartLCAFunction-QFO3SvEkpbbl"]
)
def test_lca_voice_contact_end_to_end(binding: str) -> None:
    instance = Instance(alias="lca-test")
    runner = ScriptedRunner(lambdas={binding: ok_lambda()})
    contact = Contact.new(instance=instance, now=runner.clock())
    run, end = run_flow(load_flow(LCA_FLOW), runner, contact, instance=instance)

    assert end.reason == "queued" and not end.contact_ended
    assert kinds(runner) == ["StartMediaStreaming", "InvokeLambda", "TransferToQueue"]
    [start] = runner.of(StartMediaStreaming)
    assert start.stream_name == f"callstream-connect-lca-test-contact-{contact.contact_id}"
    assert start.directions == ("To", "From") and start.action == LCA_START
    [invoke] = runner.of(InvokeLambda)
    assert invoke.function.arn == "" and invoke.function.identifier == LCA_LAMBDA
    assert invoke.timeout_s == 5 and invoke.response_type == "STRING_MAP"
    # the Lambda sees what the streaming block produced, before it ran
    stream = contact.media_streams[0]
    assert audio_of(invoke.payload) == {
        "StreamARN": stream.stream_arn,
        "StartTimestamp": str(stream.start_timestamp_ms),
        "StartFragmentNumber": stream.start_fragment_number,
    }
    assert stream.stream_arn.startswith("arn:aws:kinesisvideo:us-east-1:123456789012:stream/")
    assert len(stream.start_fragment_number) == 47
    assert invoke.payload["Name"] == "ContactFlowEvent"
    assert invoke.payload["Details"]["ContactData"]["InstanceARN"] == instance.arn
    assert contact.external == {
        "statusCode": "200",
        "body": '"Successfully invoked Connect KVS Consumer"',
    }
    [transfer] = runner.of(TransferToQueue)
    assert transfer.queue.name == "BasicQueue"
    assert path_of(run) == [
        ("7061cfdc-b6fc-4252-b88f-bd1e379a7d6d", "NextAction"),
        (LCA_START, "NextAction"),
        (LCA_LAMBDA, "NextAction"),
        (LCA_SET_QUEUE, "NextAction"),
        (LCA_TRANSFER, "queued"),
    ]
    # flow logging was enabled by the first block: one log entry per block
    logs = runner.of(Log)
    assert [log.entry["Identifier"] for log in logs] == [a for a, _ in path_of(run)]
    assert logs[2].entry["ContactFlowModuleType"] == "InvokeLambdaFunction"
    assert logs[2].entry["ExternalResults"]["statusCode"] == "200"
    assert logs[0].entry["ContactFlowName"] == "to-lca-kvs"

    # streaming goes on while queued, until the customer hangs up
    assert contact.streaming is stream
    runner.clock.advance(30)
    effect = run.hangup()
    assert isinstance(effect, StopMediaStreaming) and effect.reason == "disconnect"
    final = run.resume(runner(effect))
    assert isinstance(final, FlowEnded) and final.reason == "hangup" and final.contact_ended
    assert run.done and run.hangup() is final
    assert stream.stop_timestamp_ms is not None and stream.stop_fragment_number
    ctr = build_ctr(contact, instance, now=runner.clock())
    assert ctr["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    assert ctr["Queue"]["Name"] == "BasicQueue" and ctr["Queue"]["Duration"] == 30
    [rec] = ctr["Recordings"]
    assert rec["FragmentStartNumber"] == stream.start_fragment_number
    assert rec["FragmentStopNumber"] == stream.stop_fragment_number


@requires_lca
def test_lca_chat_contact_takes_the_streaming_error_branch() -> None:
    runner = ScriptedRunner(lambdas={"StartLCA": ok_lambda()})
    contact = Contact.new(channel="CHAT", now=runner.clock())
    run, end = run_flow(load_flow(LCA_FLOW), runner, contact)
    assert (LCA_START, "Error NoMatchingError") in path_of(run)
    assert not runner.of(StartMediaStreaming)
    [invoke] = runner.of(InvokeLambda)
    assert invoke.payload["Details"]["ContactData"]["Channel"] == "CHAT"
    assert audio_of(invoke.payload) is None
    assert end.reason == "queued"
    assert contact.media_streams == []
    assert run.hangup() == FlowEnded("hangup", contact_ended=True, flow="to-lca-kvs")


def _lca_error_path(run: FlowRun) -> list[str]:
    return [a for a, _ in path_of(run)][2:]


@requires_lca
@pytest.mark.parametrize(
    "response",
    [
        Failed("Task timed out after 5.00 seconds", timeout=True),
        LambdaResult({"ok": "yes"}, elapsed_s=5.2),
        LambdaResult({"statusCode": "200", "body": {"nested": "map"}}),
        LambdaResult({"items": ["a", "b"]}),
        LambdaResult({"value": None}),
        LambdaResult(["not", "a", "map"]),
        LambdaResult({"big": "x" * 33_000}),
        Failed("Unhandled exception"),
    ],
    ids=[
        "timeout",
        "too-slow",
        "nested-map",
        "list-value",
        "null-value",
        "not-an-object",
        "over-32k",
        "error",
    ],
)
def test_lca_lambda_failures_take_the_error_branch(response: Any) -> None:
    runner = ScriptedRunner(lambdas={"StartLCA": lambda payload: response})
    contact = Contact.new(now=runner.clock())
    run, end = run_flow(load_flow(LCA_FLOW), runner, contact)
    assert path_of(run)[2] == (LCA_LAMBDA, "Error NoMatchingError")
    assert _lca_error_path(run) == [LCA_LAMBDA, LCA_LAMBDA_ERROR_PROMPT, LCA_STOP, LCA_DISCONNECT]
    assert runner.prompts == ["I'm sorry, an error occurred starting the LCA Transcriber."]
    assert kinds(runner)[-3:] == ["PlayPrompt", "StopMediaStreaming", "Disconnect"]
    assert end.reason == "disconnected" and end.contact_ended
    assert contact.disconnect_reason == "CONTACT_FLOW_DISCONNECT"
    assert contact.external == {}
    # the Disabled block stopped streaming: StopTimestamp is set
    stop = runner.of(StopMediaStreaming)[0]
    assert stop.reason == "block" and stop.action == LCA_STOP
    assert contact.media_streams[0].stop_timestamp_ms is not None


@requires_lca
def test_lca_queue_at_capacity_stops_streaming_at_the_disabled_block() -> None:
    runner = ScriptedRunner(lambdas={"StartLCA": ok_lambda()}, queue_status="at_capacity")
    contact = Contact.new(now=runner.clock())
    run, end = run_flow(load_flow(LCA_FLOW), runner, contact)
    assert (LCA_TRANSFER, "Error QueueAtCapacity") in path_of(run)
    assert runner.prompts == ["We're sorry, there are too many callers waiting."]
    stream = contact.media_streams[0]
    assert (
        stream.stop_timestamp_ms is not None
        and stream.stop_timestamp_ms > stream.start_timestamp_ms
    )
    assert stream.stop_fragment_number is not None
    assert kinds(runner)[-3:] == ["PlayPrompt", "StopMediaStreaming", "Disconnect"]
    assert end.reason == "disconnected"
    [rec] = build_ctr(contact)["Recordings"]
    assert rec["FragmentStopNumber"] == stream.stop_fragment_number
    # a configured at-capacity queue decides without asking the runner
    instance = Instance(queues=(Queue("BasicQueue", at_capacity=True),))
    runner2 = ScriptedRunner(lambdas={"StartLCA": ok_lambda()})
    run2, _ = run_flow(load_flow(LCA_FLOW), runner2, instance=instance)
    assert (LCA_TRANSFER, "Error QueueAtCapacity") in path_of(run2)
    assert not runner2.of(TransferToQueue)


@requires_lca
def test_lca_with_live_media_streaming_disabled_for_the_instance() -> None:
    instance = Instance(live_media_streaming=False)
    runner = ScriptedRunner(lambdas={"StartLCA": ok_lambda()})
    run, _ = run_flow(load_flow(LCA_FLOW), runner, instance=instance)
    assert (LCA_START, "Error NoMatchingError") in path_of(run)
    assert not runner.of(StartMediaStreaming)


@requires_lca
def test_lca_missing_handler_and_strict_string_map() -> None:
    runner = ScriptedRunner()
    run, _ = run_flow(load_flow(LCA_FLOW), runner)
    assert path_of(run)[2] == (LCA_LAMBDA, "Error NoMatchingError")
    runner = ScriptedRunner(lambdas={"StartLCA": ok_lambda()})
    run, _ = run_flow(load_flow(LCA_FLOW), runner, strict_string_map=True)
    assert path_of(run)[2] == (LCA_LAMBDA, "Error NoMatchingError")


def test_legacy_flow_runs_the_same() -> None:
    flow = load_flow(legacy_lca())
    runner = ScriptedRunner(lambdas={"StartLCA": ok_lambda()})
    contact = Contact.new(now=runner.clock())
    run, end = run_flow(flow, runner, contact)
    assert kinds(runner) == ["StartMediaStreaming", "InvokeLambda", "TransferToQueue"]
    [invoke] = runner.of(InvokeLambda)
    assert invoke.function.function_name == "StartLCA"
    assert audio_of(invoke.payload)["StreamARN"] == contact.media_streams[0].stream_arn
    assert invoke.timeout_s == 5
    assert end.reason == "queued"
    assert contact.queue is not None and contact.queue.name == "BasicQueue"
    # the failure path too
    runner = ScriptedRunner(lambdas={"StartLCA": lambda p: Failed(timeout=True)})
    run, end = run_flow(flow, runner)
    assert [a for a, _ in path_of(run)] == [
        "m-log",
        "m-start",
        "m-lambda",
        "m-lambda-error",
        "m-stop",
        "m-disconnect",
    ]
    assert end.reason == "disconnected"


@requires_lca
def test_legacy_and_new_format_produce_the_same_effects() -> None:
    def effects(flow: Flow, **runner_options: Any) -> list[tuple[str, Any]]:
        runner = ScriptedRunner(lambdas={"StartLCA": ok_lambda()}, **runner_options)
        run_flow(flow, runner)
        out: list[tuple[str, Any]] = []
        for e in runner.effects:
            if isinstance(e, Log):
                continue
            directions = getattr(e, "directions", None)
            detail = sorted(directions) if directions else getattr(e, "timeout_s", None)
            out.append((type(e).__name__, detail))
        return out

    new, old = load_flow(LCA_FLOW), load_flow(legacy_lca())
    assert effects(new) == effects(old)
    assert (
        effects(new, queue_status="at_capacity")[:3] == effects(old, queue_status="at_capacity")[:3]
    )


# --- streaming semantics ------------------------------------------------------------------------


def _second_flow() -> Flow:
    return load_flow(
        flow_doc(
            action(
                "lambda",
                "InvokeLambdaFunction",
                {
                    "LambdaFunctionARN": "arn:aws:lambda:us-east-1:123456789012:function:Consumer",
                    "InvocationTimeLimitSeconds": "8",
                    "LambdaInvocationAttributes": {
                        "arn": "$.MediaStreams.Customer.Audio.StreamARN"
                    },
                },
                next_action="stop",
                errors={"NoMatchingError": "stop"},
            ),
            action(
                "stop",
                "UpdateContactMediaStreamingBehavior",
                DISABLE,
                next_action="after",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "after",
                "InvokeLambdaFunction",
                {"LambdaFunctionARN": "Consumer", "ResponseValidation": {"ResponseType": "JSON"}},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
            name="second",
        ),
        flow_id="flow-2",
        arn="arn:aws:connect:us-east-1:123456789012:instance/i/contact-flow/flow-2",
    )


@pytest.mark.parametrize(
    "ref",
    [
        "arn:aws:connect:us-east-1:123456789012:instance/i/contact-flow/flow-2",
        "flow-2",
        "second",
        "$.Attributes.next",
    ],
)
def test_transfer_to_flow_keeps_streaming(ref: str) -> None:
    first = load_flow(
        flow_doc(
            action(
                "start",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="go",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "go", "TransferToFlow", {"ContactFlowId": ref}, errors={"NoMatchingError": "bye"}
            ),
            action("bye", "DisconnectParticipant"),
            name="first",
        )
    )
    second = _second_flow()
    runner = ScriptedRunner(lambdas={"Consumer": ok_lambda({"stage": {"deep": 1}})})
    contact = Contact.new(now=runner.clock(), attributes={"next": "second"})
    run, end = run_flow(first, runner, contact, flows=FlowRegistry(first, second))

    assert [s.flow for s in run.trace] == ["first", "first", "second", "second", "second", "second"]
    assert run.flow is second
    assert len(runner.of(StartMediaStreaming)) == 1
    first_call, second_call = runner.of(InvokeLambda)
    stream = contact.media_streams[0]
    assert audio_of(first_call.payload)["StreamARN"] == stream.stream_arn
    assert "StopTimestamp" not in audio_of(first_call.payload)
    assert first_call.payload["Details"]["Parameters"] == {"arn": stream.stream_arn}
    assert first_call.timeout_s == 8
    # STRING_MAP rejects the nested response; the JSON block accepts it
    assert ("lambda", "Error NoMatchingError") in path_of(run)
    assert contact.external == {"stage": {"deep": 1}}
    # after the Disabled block, a Lambda sees StopTimestamp
    assert audio_of(second_call.payload)["StopTimestamp"] == str(stream.stop_timestamp_ms)
    assert end.reason == "disconnected"
    assert len(runner.of(StopMediaStreaming)) == 1  # the disconnect had nothing left to stop


def test_transfer_to_unknown_or_wrong_type_flow_takes_the_error_branch() -> None:
    first = load_flow(
        flow_doc(
            action(
                "go",
                "TransferToFlow",
                {"ContactFlowId": "nowhere"},
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    run, _ = run_flow(first, ScriptedRunner())
    assert path_of(run)[0] == ("go", "Error NoMatchingError")
    whisper = load_flow(
        flow_doc(action("end", "EndFlowExecution"), name="nowhere", flow_type="customerWhisper")
    )
    run, _ = run_flow(first, ScriptedRunner(), flows=FlowRegistry(whisper))
    assert path_of(run)[0] == ("go", "Error NoMatchingError")


def test_streaming_carries_into_a_later_run_and_can_restart() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "on",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="again",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "again",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="off",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "off",
                "UpdateContactMediaStreamingBehavior",
                DISABLE,
                next_action="on2",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "on2",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="end",
                errors={"NoMatchingError": "bye"},
            ),
            action("end", "EndFlowExecution"),
            action("bye", "EndFlowExecution"),
            flow_type="customerWhisper",
        )
    )
    runner = ScriptedRunner()
    contact = Contact.new(now=runner.clock())
    _, end = run_flow(flow, runner, contact)
    assert end.reason == "ended" and not end.contact_ended
    starts = runner.of(StartMediaStreaming)
    assert [s.already_streaming for s in starts] == [False, True, False]
    assert len(contact.media_streams) == 2
    first, second = contact.media_streams
    assert first.stop_timestamp_ms is not None and second.active
    assert len(build_ctr(contact)["Recordings"]) == 2
    # a queue flow run for the same contact sees the active stream
    queue_flow = load_flow(
        flow_doc(
            action(
                "l",
                "InvokeLambdaFunction",
                {"LambdaFunctionARN": "q"},
                next_action="end",
                errors={"NoMatchingError": "end"},
            ),
            action("end", "EndFlowExecution"),
            flow_type="customerQueue",
        )
    )
    runner.lambdas["q"] = ok_lambda({})
    run_flow(queue_flow, runner, contact)
    assert audio_of(runner.of(InvokeLambda)[-1].payload)["StreamARN"] == second.stream_arn


def test_disconnect_stops_an_active_stream() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "on",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    runner = ScriptedRunner()
    contact = Contact.new(now=runner.clock())
    _, end = run_flow(flow, runner, contact)
    assert kinds(runner) == ["StartMediaStreaming", "Disconnect", "StopMediaStreaming"]
    assert runner.of(StopMediaStreaming)[0].reason == "disconnect"
    assert runner.of(Disconnect)[0].action == "bye"
    assert contact.media_streams[0].stop_timestamp_ms is not None
    assert end.reason == "disconnected" and contact.ended


def test_start_streaming_failure_takes_the_error_branch() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "on",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="bye",
                errors={"NoMatchingError": "sorry"},
            ),
            action(
                "sorry",
                "MessageParticipant",
                {"Text": "no stream"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    runner = ScriptedRunner(fail={StartMediaStreaming})
    run, _ = run_flow(flow, runner)
    assert path_of(run)[0] == ("on", "Error NoMatchingError")
    assert runner.prompts == ["no stream"]


# --- other blocks ---------------------------------------------------------------------------------


def _menu_flow() -> Flow:
    return load_flow(
        flow_doc(
            action(
                "menu",
                "GetParticipantInput",
                {
                    "Text": "Press 1 for sales, 2 to enter your account",
                    "StoreInput": "False",
                    "InputTimeLimitSeconds": "4",
                },
                conditions=[("Equals", "1", "sales"), ("Equals", "2", "account")],
                errors={
                    "InputTimeLimitExceeded": "timeout",
                    "NoMatchingCondition": "nomatch",
                    "NoMatchingError": "bye",
                },
            ),
            action(
                "account",
                "GetParticipantInput",
                {
                    "Text": "Enter your account number followed by pound",
                    "StoreInput": "True",
                    "InputValidation": {"CustomValidation": {"MaximumLength": "6"}},
                },
                next_action="check",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "check",
                "Compare",
                {"ComparisonValue": "$.StoredCustomerInput"},
                conditions=[("NumberGreaterThan", "1000", "big")],
                errors={"NoMatchingCondition": "bye"},
            ),
            action(
                "big",
                "UpdateContactAttributes",
                {"Attributes": {"account": "acct-$.StoredCustomerInput"}},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "sales",
                "MessageParticipant",
                {"Text": "Sales"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "timeout",
                "MessageParticipant",
                {"Text": "Timeout"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "nomatch",
                "MessageParticipant",
                {"Text": "No match"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )


@pytest.mark.parametrize(
    ("inputs", "prompt"),
    [(["1"], "Sales"), ([None], "Timeout"), (["9"], "No match")],
)
def test_dtmf_menu(inputs: list[str | None], prompt: str) -> None:
    runner = ScriptedRunner(inputs=list(inputs))
    run_flow(_menu_flow(), runner)
    [get] = runner.of(GetInput)
    assert get.timeout_s == 4 and get.max_digits == 1 and not get.store_input
    assert (
        get.prompt is not None
        and get.prompt.text is not None
        and get.prompt.text.startswith("Press 1")
    )
    assert runner.prompts[-1] == prompt


def test_stored_input_and_compare() -> None:
    runner = ScriptedRunner(inputs=["2", "123456"])
    contact = Contact.new(now=runner.clock())
    run, _ = run_flow(_menu_flow(), runner, contact)
    second = runner.of(GetInput)[1]
    assert second.store_input and second.max_digits == 6 and second.terminator == "#"
    assert contact.stored_customer_input == "123456"
    assert ("check", "Condition NumberGreaterThan(1000)") in path_of(run)
    assert contact.attributes["account"] == "acct-123456"


def test_get_input_on_chat_errors() -> None:
    runner = ScriptedRunner(inputs=["1"])
    run, _ = run_flow(_menu_flow(), runner, Contact.new(channel="CHAT"))
    assert path_of(run)[0] == ("menu", "Error NoMatchingError")


def test_phone_number_validation() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "phone",
                "GetParticipantInput",
                {
                    "Text": "Number?",
                    "StoreInput": "True",
                    "InputValidation": {"PhoneNumberValidation": {"NumberFormat": "E164"}},
                },
                next_action="bye",
                errors={"InvalidPhoneNumber": "bad", "NoMatchingError": "bye"},
            ),
            action(
                "bad",
                "MessageParticipant",
                {"Text": "Invalid"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    run, _ = run_flow(flow, ScriptedRunner(inputs=["12"]))
    assert path_of(run)[0] == ("phone", "Error InvalidPhoneNumber")
    contact = Contact.new()
    run, _ = run_flow(flow, ScriptedRunner(inputs=["14155550100"]), contact)
    assert (
        path_of(run)[0] == ("phone", "NextAction")
        and contact.stored_customer_input == "14155550100"
    )


def test_loop_runs_its_count() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "loop",
                "Loop",
                {"LoopCount": "3"},
                conditions=[("Equals", "ContinueLooping", "say"), ("Equals", "DoneLooping", "bye")],
            ),
            action(
                "say",
                "MessageParticipant",
                {"Text": "Please hold"},
                next_action="loop",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    runner = ScriptedRunner()
    run, _ = run_flow(flow, runner)
    assert runner.prompts == ["Please hold"] * 3
    assert [r for a, r in path_of(run) if a == "loop"] == [
        "Condition Equals(ContinueLooping)"
    ] * 3 + ["Condition Equals(DoneLooping)"]


def test_check_hours_of_operation() -> None:
    nine_to_five = HoursOfOperation.from_api(
        {
            "HoursOfOperationId": "office",
            "Name": "Office",
            "TimeZone": "America/New_York",
            "Config": [
                {
                    "Day": day,
                    "StartTime": {"Hours": 9, "Minutes": 0},
                    "EndTime": {"Hours": 17, "Minutes": 0},
                }
                for day in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY")
            ],
        }
    )
    instance = Instance(
        hours=(nine_to_five,), queues=(Queue("Support", hours_of_operation_id="office"),)
    )
    flow = load_flow(
        flow_doc(
            action(
                "q",
                "UpdateContactTargetQueue",
                {"QueueId": "Support"},
                next_action="hours",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "hours",
                "CheckHoursOfOperation",
                {},
                conditions=[("Equals", "True", "open"), ("Equals", "False", "closed")],
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "open",
                "MessageParticipant",
                {"Text": "open"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "closed",
                "MessageParticipant",
                {"Text": "closed"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    monday_10_ny = datetime(2024, 1, 29, 15, 0, tzinfo=UTC)
    sunday = datetime(2024, 1, 28, 15, 0, tzinfo=UTC)
    monday_8_ny = datetime(2024, 1, 29, 13, 0, tzinfo=UTC)
    for when, expected in ((monday_10_ny, "open"), (sunday, "closed"), (monday_8_ny, "closed")):
        runner = ScriptedRunner(clock=Clock(when))
        run_flow(flow, runner, instance=instance)
        assert runner.prompts == [expected], when
    # default Basic Hours: always open; an unknown id errors
    assert Instance().find_hours("basic-hours") is not None
    assert HoursOfOperation("x", "x").is_open(sunday)


def test_hours_ranges_past_midnight() -> None:
    night = HoursOfOperation(
        "n", "Night", "UTC", (HoursRange("FRIDAY", *map(_t, ("22:00", "02:00"))),)
    )
    assert night.is_open(datetime(2024, 1, 26, 23, 0, tzinfo=UTC))  # Friday 23:00
    assert night.is_open(datetime(2024, 1, 27, 1, 0, tzinfo=UTC))  # Saturday 01:00
    assert not night.is_open(datetime(2024, 1, 27, 3, 0, tzinfo=UTC))
    assert not night.is_open(datetime(2024, 1, 26, 21, 0, tzinfo=UTC))


def _t(text: str) -> Any:
    return datetime.strptime(text, "%H:%M").time()


def test_target_queue_resolution() -> None:
    instance = Instance(queues=(Queue("Sales", queue_id="q-sales"),))

    def queue_after(
        params: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> tuple[str, list[str]]:
        flow = load_flow(
            flow_doc(
                action(
                    "q",
                    "UpdateContactTargetQueue",
                    params,
                    next_action="bye",
                    errors={"NoMatchingError": "bye"},
                ),
                action("bye", "DisconnectParticipant"),
                action_metadata={"q": meta} if meta else None,
            )
        )
        contact = Contact.new(instance=instance)
        run, _ = run_flow(flow, ScriptedRunner(), contact, instance=instance)
        assert contact.queue is not None
        return contact.queue.name, run.notes

    assert queue_after({"QueueId": ""}) == ("BasicQueue", [])
    assert queue_after({"QueueId": "q-sales"}) == ("Sales", [])
    assert queue_after({"QueueId": "arn:aws:connect:us-east-1:1:instance/x/queue/q-sales"}) == (
        "Sales",
        [],
    )
    assert queue_after(
        {"QueueId": "arn:aws:connect:eu-west-2:9:instance/y/queue/zzz"},
        {"queue": {"text": "Sales"}},
    ) == ("Sales", [])
    name, notes = queue_after({"QueueId": "arn:aws:connect:eu-west-2:9:instance/y/queue/zzz"})
    assert name == "zzz" and "not configured" in notes[0]
    assert queue_after({"AgentId": "agent-7"})[0] == "agent:agent-7"


def test_attributes_from_lambda_results_and_compare_order() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "l",
                "InvokeLambdaFunction",
                {
                    "LambdaFunctionARN": "lookup",
                    "LambdaInvocationAttributes": {"caller": "$.CustomerEndpoint.Address"},
                },
                next_action="set",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "set",
                "UpdateContactAttributes",
                {"Attributes": {"tier": "$.External.tier", "greet": "Hi $.External.name"}},
                next_action="cmp",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "cmp",
                "Compare",
                {"ComparisonValue": "$.Attributes.tier"},
                conditions=[("TextStartsWith", "gold", "gold"), ("Equals", "gold-plus", "never")],
                errors={"NoMatchingCondition": "bye"},
            ),
            action(
                "gold",
                "MessageParticipant",
                {"SSML": "<speak>$.Attributes.greet</speak>"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "never",
                "MessageParticipant",
                {"Text": "never"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    runner = ScriptedRunner(
        lambdas={"lookup": ok_lambda({"tier": "gold-plus", "name": "Ada", "count": 3})}
    )
    contact = Contact.new(now=runner.clock())
    run, _ = run_flow(flow, runner, contact)
    assert runner.of(InvokeLambda)[0].payload["Details"]["Parameters"] == {"caller": "+15555550100"}
    assert contact.external == {"tier": "gold-plus", "name": "Ada", "count": "3"}
    assert contact.attributes == {"tier": "gold-plus", "greet": "Hi Ada"}
    assert ("cmp", "Condition TextStartsWith(gold)") in path_of(run)
    assert runner.of(PlayPrompt)[0].ssml == "<speak>Hi Ada</speak>"


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(OPERATORS),
    st.text(alphabet="0123456789.-ab", max_size=5),
    st.text(alphabet="0123456789.-ab", min_size=1, max_size=5),
)
def test_compare_branches_like_the_operator(operator: str, value: str, operand: str) -> None:
    flow = load_flow(
        flow_doc(
            action(
                "cmp",
                "Compare",
                {"ComparisonValue": "$.Attributes.v"},
                conditions=[(operator, operand, "yes")],
                errors={"NoMatchingCondition": "no"},
            ),
            action("yes", "DisconnectParticipant"),
            action("no", "DisconnectParticipant"),
        )
    )
    run, _ = run_flow(flow, ScriptedRunner(), Contact.new(attributes={"v": value}))
    assert (run.trace[0].next_action == "yes") == matches(operator, value, operand)


def test_wait_and_distribute() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "split",
                "DistributeByPercentage",
                {},
                conditions=[("NumberLessThan", "50", "wait")],
                errors={"NoMatchingCondition": "wait"},
            ),
            action(
                "wait",
                "Wait",
                {"TimeoutSeconds": "60", "Events": ["CustomerReturned"]},
                conditions=[
                    ("Equals", "WaitCompleted", "expired"),
                    ("Equals", "CustomerReturned", "back"),
                ],
                errors={"NoMatchingError": "expired"},
            ),
            action("expired", "EndFlowExecution"),
            action("back", "EndFlowExecution"),
            flow_type="customerQueue",
        )
    )
    run, _ = run_flow(flow, ScriptedRunner(), rng=random.Random(1))
    assert path_of(run)[1] == ("wait", "Condition Equals(WaitCompleted)")
    run, _ = run_flow(flow, ScriptedRunner(wait_events=["CustomerReturned"]), rng=random.Random(2))
    assert path_of(run)[1] == ("wait", "Condition Equals(CustomerReturned)")


def test_recording_voice_and_logging_blocks() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "rec",
                "UpdateContactRecordingBehavior",
                {"RecordingBehavior": {"RecordedParticipants": ["Agent", "Customer"]}},
                next_action="voice",
            ),
            action(
                "voice",
                "UpdateContactTextToSpeechVoice",
                {"TextToSpeechVoice": "Matthew"},
                next_action="log",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "log",
                "UpdateFlowLoggingBehavior",
                {"FlowLoggingBehavior": "Disabled"},
                next_action="say",
            ),
            action(
                "say",
                "MessageParticipant",
                {"Text": "hi"},
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    runner = ScriptedRunner()
    contact = Contact.new(now=runner.clock())
    run_flow(flow, runner, contact)
    assert contact.recording is not None and contact.recording.recorded_participants == (
        "Agent",
        "Customer",
    )
    assert runner.of(PlayPrompt)[0].voice == "Matthew"
    assert not runner.of(Log) and not contact.flow_logging


# --- driving: errors, hang-ups, limits ----------------------------------------------------------


def test_resume_checks_results() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "on",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="bye",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    run = FlowRun(flow, Contact.new())
    with pytest.raises(RuntimeError):
        run.resume(None)
    effect = run.start()
    assert isinstance(effect, StartMediaStreaming)
    with pytest.raises(RuntimeError):
        run.start()
    with pytest.raises(TypeError, match="needs a result"):
        run.resume(None)
    with pytest.raises(TypeError, match="takes MediaStreamingStarted, Failed, not InputResult"):
        run.resume(InputResult("1"))
    nxt = run.resume(MediaStreamingStarted("arn:x", "1"))
    assert isinstance(nxt, Disconnect)
    assert run.contact.media_streams[0].start_timestamp_ms > 0  # defaulted from the clock


def test_hangup_during_input_stops_streaming() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "on",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="menu",
                errors={"NoMatchingError": "bye"},
            ),
            action(
                "menu",
                "GetParticipantInput",
                {"Text": "Press 1", "StoreInput": "False"},
                conditions=[("Equals", "1", "bye")],
                errors={"NoMatchingError": "bye", "NoMatchingCondition": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    runner = ScriptedRunner()
    contact = Contact.new(now=runner.clock())
    run = FlowRun(flow, contact, clock=runner.clock)
    effect = run.start()
    effect = run.resume(runner(effect))
    assert isinstance(effect, GetInput)
    effect = run.hangup()
    assert isinstance(effect, StopMediaStreaming)
    end = run.resume(runner(effect))
    assert isinstance(end, FlowEnded) and end.reason == "hangup"
    assert contact.disconnect_reason == "CUSTOMER_DISCONNECT"
    with pytest.raises(RuntimeError):
        run.resume(None)


def test_unhandled_error_disconnects_the_contact() -> None:
    flow = load_flow(
        flow_doc(
            action("say", "MessageParticipant", {"Text": "hi"}, next_action="bye"),
            action("bye", "DisconnectParticipant"),
        )
    )
    runner = ScriptedRunner(fail={PlayPrompt})
    _, end = run_flow(flow, runner)
    assert end.reason == "error" and end.contact_ended
    assert "'say'" in end.message and "NoMatchingError has no branch" in end.message
    assert kinds(runner)[-1] == "Disconnect"


def test_endless_runtime_loop_is_stopped() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "cmp",
                "Compare",
                {"ComparisonValue": "$.Attributes.x"},
                conditions=[("Equals", "1", "set")],
                errors={"NoMatchingCondition": "bye"},
            ),
            action(
                "set",
                "UpdateContactAttributes",
                {"Attributes": {"x": "1"}},
                next_action="cmp",
                errors={"NoMatchingError": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    run, end = run_flow(
        flow, ScriptedRunner(), Contact.new(attributes={"x": "1"}), max_idle_steps=50
    )
    assert end.reason == "error" and "without any effect" in end.message
    assert len(run.trace) == 51


def test_unsupported_blocks_take_their_error_branch() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "lex",
                "ConnectParticipantWithLexBot",
                {"Text": "Hi", "LexV2Bot": {"AliasArn": "arn"}},
                errors={"NoMatchingError": "bye"},
                conditions=[("Equals", "Intent", "bye")],
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    assert any("not executed" in str(w) for w in flow.warnings)
    run, end = run_flow(flow, ScriptedRunner())
    assert path_of(run)[0] == ("lex", "Error NoMatchingError")
    assert run.notes and "ConnectParticipantWithLexBot" in run.notes[0]
    assert end.reason == "disconnected"


def test_check_lambda_response_rules() -> None:
    assert check_lambda_response({"a": "b", "n": 1, "t": True, "f": 1.5}) == {
        "a": "b",
        "n": "1",
        "t": "true",
        "f": "1.5",
    }
    assert check_lambda_response({"a": {"b": [1]}}, "JSON") == {"a": {"b": [1]}}
    for bad in ({"a": {"b": "c"}}, {"a": [1]}, {"a": None}, "text", None, {"x": "y" * 40_000}):
        with pytest.raises(LambdaResponseError):
            check_lambda_response(bad)
    with pytest.raises(LambdaResponseError):
        check_lambda_response({"n": 1}, strict_strings=True)


@requires_lca
def test_lca_events_carry_action_and_flow() -> None:
    runner = ScriptedRunner(lambdas={"StartLCA": ok_lambda()})
    run_flow(load_flow(LCA_FLOW), runner)
    for effect in runner.effects:
        assert effect.flow == "to-lca-kvs"
    assert runner.of(InvokeLambda)[0].action == LCA_LAMBDA
    assert LCA_CAPACITY_PROMPT not in {e.action for e in runner.effects}


def test_stop_with_no_result_and_drive_after_hangup() -> None:
    flow = load_flow(
        flow_doc(
            action(
                "on",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="off",
                errors={"NoMatchingError": "q"},
            ),
            action(
                "off",
                "UpdateContactMediaStreamingBehavior",
                DISABLE,
                next_action="on2",
                errors={"NoMatchingError": "q"},
            ),
            action(
                "on2",
                "UpdateContactMediaStreamingBehavior",
                ENABLE,
                next_action="q",
                errors={"NoMatchingError": "q"},
            ),
            action(
                "q",
                "TransferContactToQueue",
                {},
                errors={"NoMatchingError": "bye", "QueueAtCapacity": "bye"},
            ),
            action("bye", "DisconnectParticipant"),
        )
    )
    runner = ScriptedRunner()
    contact = Contact.new(now=runner.clock())
    contact.queue = Instance().default_queue
    run = FlowRun(flow, contact, clock=runner.clock)

    def perform(effect: Any) -> Any:
        return None if isinstance(effect, StopMediaStreaming) else runner(effect)

    end = run.drive(perform)
    assert end.reason == "queued" and path_of(run)[1] == ("off", "NextAction")
    assert run.drive(perform) is end
    runner.clock.advance(10)
    run.hangup()
    final = run.drive(perform)
    assert final.reason == "hangup" and contact.ended
    assert [s.stop_timestamp_ms is not None for s in contact.media_streams] == [True, True]


def test_review_regressions_defaults_and_bad_numbers() -> None:
    """A Compare without a NoMatchingCondition branch falls back to NoMatchingError, then to
    NextAction; a Loop count from a non-numeric attribute takes the Error branch instead of
    crashing the run; an unknown root in a single-path parameter is only a warning."""
    doc = flow_doc(
        action(
            "cmp",
            "Compare",
            {"ComparisonValue": "$.Attributes.x"},
            conditions=[("Equals", "1", "bye")],
            next_action="loop",
        ),
        action(
            "loop",
            "Loop",
            {"LoopCount": "$.Attributes.n"},
            conditions=[("Equals", "ContinueLooping", "loop"), ("Equals", "DoneLooping", "bye")],
            errors={"NoMatchingError": "err"},
        ),
        action(
            "err",
            "UpdateContactAttributes",
            {"Attributes": {"where": "$.FlowAttributes.y"}},
            next_action="bye",
            errors={"NoMatchingError": "bye"},
        ),
        action("bye", "DisconnectParticipant"),
    )
    flow = load_flow(doc)
    contact = Contact.new(attributes={"x": "2", "n": "abc"})
    run = FlowRun(flow, contact)
    effect = run.start()
    while not isinstance(effect, FlowEnded):
        effect = run.resume(None)
    path = [step.action for step in run.trace]
    assert path[:3] == ["cmp", "loop", "err"]
