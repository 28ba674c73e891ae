"""Event types declared once: the table, validation, the wire form, filters and the
EventBridge view."""

from __future__ import annotations

import json
import re

import pytest

from callstream.events import EVENT_TYPES, Event, EventError, EventFilter, decode, encode
from callstream.events.types import ENVELOPE, eventbridge_name, to_eventbridge

ARN = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/s-1/1700000000000"
T = 1_764_870_503_123


def test_the_table_declares_every_type_once_with_aws_style_names() -> None:
    wanted = {
        "StreamCreated",
        "StreamDeleted",
        "ProducerConnected",
        "ProducerEnded",
        "ContactStarted",
        "MediaStreamingStarted",
        "MediaStreamingStopped",
        "ContactEnded",
        "VoiceConnectorStreamingStatus",
        "TranscriptSegment",
        "CategoryMatched",
    }
    assert wanted <= set(EVENT_TYPES)
    for name, spec in EVENT_TYPES.items():
        assert spec.name == name and spec.doc
        names = [f.name for f in spec.fields]
        assert len(names) == len(set(names)), name
        for field in names:
            assert re.fullmatch(r"[A-Z][A-Za-z]+", field), (name, field)
            assert field not in ENVELOPE
    # every declared type is published by now; the analytics ones name their LCA type
    assert not [n for n, s in EVENT_TYPES.items() if s.reserved]
    lca = {n: s.lca for n, s in EVENT_TYPES.items() if s.lca}
    assert lca["CallAnalyticsStarted"] == "START"
    assert lca["TranscriptSegment"] == "ADD_TRANSCRIPT_SEGMENT"
    assert lca["CategoryMatched"] == "ADD_CALL_CATEGORY"
    assert lca["AgentUpdated"] == "UPDATE_AGENT"
    assert lca["CallSummary"] == "ADD_SUMMARY"
    assert lca["CallAnalyticsEnded"] == "END"
    # the store's own events cannot be published by clients
    assert "client" not in EVENT_TYPES["StreamCreated"].publishers
    assert "client" in EVENT_TYPES["MediaStreamingStarted"].publishers


def test_media_streaming_fields_are_connects_attribute_names() -> None:
    started = {f.name for f in EVENT_TYPES["MediaStreamingStarted"].fields}
    stopped = {f.name for f in EVENT_TYPES["MediaStreamingStopped"].fields}
    # $.MediaStreams.Customer.Audio.{StreamARN, StartFragmentNumber, StartTimestamp, StopTimestamp}
    assert {"StreamARN", "StartFragmentNumber", "StartTimestamp", "ContactId"} <= started
    assert {"StreamARN", "StopFragmentNumber", "StopTimestamp", "ContactId"} <= stopped


def test_an_event_is_checked_against_its_declaration() -> None:
    ok = Event.of("StreamCreated", time_ms=T, StreamARN=ARN, StreamName="s-1", KmsKeyId=None)
    assert ok.fields == {"StreamARN": ARN, "StreamName": "s-1"}  # None: left out
    cases = [
        (lambda: Event.of("Nope"), "EventType: unknown event type 'Nope'"),
        (lambda: Event.of("StreamDeleted", StreamARN=ARN), "StreamDeleted.StreamName: required"),
        (
            lambda: Event.of("StreamDeleted", StreamARN=ARN, StreamName="s", Colour="red"),
            "StreamDeleted.Colour: not a field",
        ),
        (
            lambda: Event.of("ProducerEnded", StreamARN=ARN, StreamName="s", FragmentsStored="3"),
            "ProducerEnded.FragmentsStored: expected a JSON integer, got str",
        ),
        (
            lambda: Event.of("ProducerEnded", StreamARN=ARN, StreamName="s", FragmentsStored=True),
            "ProducerEnded.FragmentsStored: expected a JSON integer",
        ),
        (
            lambda: Event.of(
                "MediaStreamingStopped", ContactId="c", StreamARN=ARN, StopTimestamp=-1
            ),
            "MediaStreamingStopped.StopTimestamp: expected epoch milliseconds",
        ),
        (
            lambda: Event.of(
                "VoiceConnectorStreamingStatus",
                StreamingStatus="IN_PROGRESS",
                VoiceConnectorId="v",
                TransactionId="t",
                CallId="c",
            ),
            "StreamingStatus: 'IN_PROGRESS' is not one of STARTED, UPDATED, ENDED, FAILED",
        ),
        (
            lambda: Event.of(
                "TranscriptSegment",
                CallId="c",
                SegmentId="s",
                Channel="CALLER",
                StartTime=float("nan"),
                EndTime=1.0,
                Transcript="hi",
                IsPartial=False,
            ),
            "TranscriptSegment.StartTime: expected a JSON number",
        ),
        (lambda: Event.of("StreamDeleted", time_ms=-5, StreamARN=ARN, StreamName="s"), "Time"),
    ]
    for make, message in cases:
        with pytest.raises(EventError, match=re.escape(message)):
            make()


def test_wire_form_round_trips_with_the_envelope_first() -> None:
    event = Event.of(
        "MediaStreamingStarted",
        time_ms=T,
        ContactId="c-1",
        StreamARN=ARN,
        StartFragmentNumber="91343852333181432392682062626916362215787186434",
        StartTimestamp=T - 123,
    ).with_cursor(42)
    line = encode(event)
    assert line.startswith(b'{"Cursor":42,"EventType":"MediaStreamingStarted","Time":')
    assert b"\n" not in line
    assert decode(json.loads(line)) == event
    text = Event.of("ContactEnded", ContactId="c", ContactRecord={"Note": "a\nb ü"})
    assert b"\n" not in encode(text) and decode(json.loads(encode(text))) == text


def test_decoding_a_future_type_or_field_does_not_fail() -> None:
    future = {"Cursor": 7, "EventType": "SentimentShifted", "Time": T, "Score": 0.5}
    event = decode(future)
    assert (event.type, event.cursor, event.fields, event.spec) == (
        "SentimentShifted",
        7,
        {"Score": 0.5},
        None,
    )
    newer = decode({"Cursor": 8, "EventType": "StreamDeleted", "Time": T, "Region": "x"})
    assert newer.get("Region") == "x"
    assert to_eventbridge(event, account="1", region="r")["detail-type"] == "SentimentShifted"
    for broken in ([], {"Cursor": 1, "Time": T}, {"EventType": "X", "Cursor": -1, "Time": T}):
        with pytest.raises(EventError):
            decode(broken)


def test_filters_by_type_and_fields() -> None:
    started = Event.of("ContactStarted", ContactId="c-1", Channel="VOICE")
    ended = Event.of("ContactEnded", ContactId="c-2")
    stream = Event.of("StreamDeleted", StreamARN=ARN, StreamName="s")
    assert EventFilter().matches(stream)
    by_type = EventFilter.where({"ContactStarted", "ContactEnded"})
    assert [by_type.matches(e) for e in (started, ended, stream)] == [True, True, False]
    by_contact = EventFilter.where(ContactId="c-2", StreamARN=None)
    assert [by_contact.matches(e) for e in (started, ended, stream)] == [False, True, False]
    both = EventFilter.where({"ContactStarted"}, ContactId="c-2")
    assert not any(both.matches(e) for e in (started, ended, stream))


def test_eventbridge_view_matches_the_chime_and_connect_events() -> None:
    assert eventbridge_name("StreamARN") == "streamArn"
    assert eventbridge_name("StartFragmentNumber") == "startFragmentNumber"
    # voice-connector.md §3: the real STARTED sample's detail keys
    chime = Event.of(
        "VoiceConnectorStreamingStatus",
        time_ms=T,
        StreamingStatus="STARTED",
        VoiceConnectorId="fo6zye2x3gr0vjugxb0k5i",
        TransactionId="24f48be4",
        CallId="cfb57784",
        Direction="Outbound",
        MediaType="audio/L16",
        StartFragmentNumber="913438523331825",
        StartTime=1569600482702,
        StreamArn=None,
        StreamARN=ARN,
    ).with_cursor(3)
    out = to_eventbridge(chime, account="123456789012", region="us-east-1")
    assert out["source"] == "aws.chime"
    assert out["detail-type"] == "Chime VoiceConnector Streaming Status"
    assert set(out["detail"]) == {
        "callId",
        "direction",
        "mediaType",
        "startFragmentNumber",
        "startTime",
        "streamArn",
        "transactionId",
        "voiceConnectorId",
        "streamingStatus",
        "version",
    }
    assert out["detail"]["startTime"] == "2019-09-27T16:08:02.702Z"
    assert out["detail"]["version"] == "0"
    assert out["resources"] == [ARN]
    connect = Event.of(
        "ContactStarted",
        ContactId="c-1",
        Channel="VOICE",
        InitiationMethod="INBOUND",
        InstanceARN="arn:aws:connect:us-east-1:123456789012:instance/i-1",
    )
    detail = to_eventbridge(connect, account="1", region="r")["detail"]
    assert detail == {
        "eventType": "INITIATED",
        "contactId": "c-1",
        "channel": "VOICE",
        "initiationMethod": "INBOUND",
        "instanceArn": "arn:aws:connect:us-east-1:123456789012:instance/i-1",
    }
