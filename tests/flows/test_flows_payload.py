"""The Lambda ContactFlowEvent payload and the contact record (CTR)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flows_helpers import SHARED, T0

from callstream.flows import (
    Contact,
    Instance,
    MediaStream,
    Queue,
    build_ctr,
    contact_flow_event,
    format_ctr_timestamp,
)

REFERENCE_DOC = SHARED / "reference" / "connect-flows.md"
CTR_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def reference_event() -> dict[str, Any]:
    """The ContactFlowEvent example of connect-flows.md §3.2."""
    if not REFERENCE_DOC.is_file():
        pytest.skip(f"shared reference not found at {REFERENCE_DOC}")
    text = REFERENCE_DOC.read_text()
    section = text[text.index("### 3.2") :]
    m = re.search(r"```\n(\{.*?\n\})\n```", section, re.S)
    assert m is not None
    event: dict[str, Any] = json.loads(m.group(1))
    return event


def shape(value: Any) -> Any:
    """Key structure (keys in order) of a JSON value; leaves become their kind."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    return "leaf"


def streaming_contact() -> Contact:
    instance = Instance(alias="acme")
    contact = Contact.new(
        instance=instance,
        contact_id="4a573372-1f28-4e26-b97b-XXXXXXXXXXX",
        attributes={"exampleAttributeKey1": "exampleAttributeValue1"},
    )
    contact.queue = instance.with_queues(
        Queue("PasswordReset", outbound_caller_id="+12345678903")
    ).find_queue("PasswordReset")
    contact.references = {"key1": {"Type": "url", "Value": "urlvalue"}}
    contact.customer_id = "someCustomerId"
    contact.description = "someDescription"
    stream = MediaStream(
        "arn:aws:kinesisvideo:us-east-1:123456789012:stream/x/1571360000000", "100", 1571360125131
    )
    stream.stop_timestamp_ms = 1571360126131
    contact.media_streams.append(stream)
    return contact


def test_payload_has_the_reference_shape() -> None:
    reference = reference_event()
    event = contact_flow_event(
        streaming_contact(), {"exampleParameterKey1": "exampleParameterValue1"}
    )
    assert shape(event) == shape(reference)
    assert json.loads(json.dumps(event)) == event
    data = event["Details"]["ContactData"]
    ref = reference["Details"]["ContactData"]
    for key in ("Channel", "Name", "LanguageCode", "CustomerId", "Description", "References"):
        assert data[key] == ref[key], key
    assert data["MediaStreams"]["Customer"]["Audio"] == {
        "StreamARN": "arn:aws:kinesisvideo:us-east-1:123456789012:stream/x/1571360000000",
        "StartTimestamp": "1571360125131",
        "StopTimestamp": "1571360126131",
        "StartFragmentNumber": "100",
    }
    assert event["Details"]["Parameters"] == reference["Details"]["Parameters"]
    assert event["Name"] == "ContactFlowEvent"
    assert data["Queue"]["OutboundCallerId"] == {
        "Address": "+12345678903",
        "Type": "TELEPHONE_NUMBER",
    }


def test_payload_before_streaming_and_for_chat() -> None:
    contact = Contact.new(contact_id="c-2")
    event = contact_flow_event(contact)
    data = event["Details"]["ContactData"]
    assert data["MediaStreams"] == {"Customer": {"Audio": None}}
    assert data["Queue"] is None
    assert data["InitialContactId"] == data["PreviousContactId"] == data["ContactId"] == "c-2"
    assert data["InstanceARN"] == Instance().arn
    assert event["Details"]["Parameters"] == {}
    chat = contact_flow_event(Contact.new(channel="CHAT"))["Details"]["ContactData"]
    assert chat["Channel"] == "CHAT"
    assert chat["CustomerEndpoint"] is None and chat["SystemEndpoint"] is None


def test_streaming_audio_has_no_stop_timestamp_while_active() -> None:
    contact = streaming_contact()
    contact.media_streams[0].stop_timestamp_ms = None
    audio = contact_flow_event(contact)["Details"]["ContactData"]["MediaStreams"]["Customer"][
        "Audio"
    ]
    assert list(audio) == ["StreamARN", "StartTimestamp", "StartFragmentNumber"]


# --- CTR --------------------------------------------------------------------------------------

CTR_FIELDS = {
    "Agent",
    "AgentConnectionAttempts",
    "Attributes",
    "AWSAccountId",
    "AWSContactTraceRecordFormatVersion",
    "Channel",
    "ConnectedToSystemTimestamp",
    "ContactId",
    "InitialContactId",
    "NextContactId",
    "PreviousContactId",
    "RelatedContactId",
    "CustomerEndpoint",
    "SystemEndpoint",
    "DisconnectTimestamp",
    "DisconnectReason",
    "InitiationMethod",
    "InitiationTimestamp",
    "LastUpdateTimestamp",
    "ScheduledTimestamp",
    "TransferCompletedTimestamp",
    "InstanceARN",
    "MediaStreams",
    "Queue",
    "Recording",
    "Recordings",
    "TransferredToEndpoint",
}
RECORDING_FIELDS = {
    "DeletionReason",
    "FragmentStartNumber",
    "FragmentStopNumber",
    "Location",
    "MediaStreamType",
    "ParticipantType",
    "StartTimestamp",
    "Status",
    "StopTimestamp",
    "StorageType",
}


def test_ctr_fields_and_kvs_recording() -> None:
    instance = Instance(alias="acme", account_id="032998046382", region="us-west-2")
    contact = Contact.new(instance=instance, now=T0, attributes={"a": "1"})
    contact.connected_to_system_timestamp = T0
    contact.queue = instance.default_queue
    contact.enqueue_timestamp = T0 + timedelta(seconds=5)
    start_ms = int((T0 + timedelta(seconds=1)).timestamp() * 1000)
    stream = MediaStream(
        f"arn:aws:kinesisvideo:us-west-2:032998046382:stream/{instance.stream_name(contact.contact_id)}/1706169572895",
        "91343852333181432392682062659924109276236173057",
        start_ms,
    )
    stream.stop_timestamp_ms = start_ms + 31_000
    stream.stop_fragment_number = "91343852333181432546186627531311271605344142199"
    contact.media_streams.append(stream)
    contact.disconnect_timestamp = T0 + timedelta(seconds=35)
    contact.disconnect_reason = "CUSTOMER_DISCONNECT"
    contact.dequeue_timestamp = contact.disconnect_timestamp

    ctr = build_ctr(contact, instance, now=T0 + timedelta(minutes=1))
    assert set(ctr) == CTR_FIELDS
    assert json.loads(json.dumps(ctr)) == ctr
    assert ctr["AWSAccountId"] == "032998046382"
    assert ctr["Channel"] == "VOICE"
    assert ctr["MediaStreams"] == [{"Type": "AUDIO"}]
    assert ctr["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    assert ctr["InitiationTimestamp"] == "2024-01-26T03:07:41Z"
    for key in ("ConnectedToSystemTimestamp", "DisconnectTimestamp", "LastUpdateTimestamp"):
        assert CTR_TIMESTAMP.match(ctr[key]), key
    assert ctr["Queue"] == {
        "ARN": instance.default_queue.arn,
        "DequeueTimestamp": "2024-01-26T03:08:16Z",
        "Duration": 30,
        "EnqueueTimestamp": "2024-01-26T03:07:46Z",
        "Name": "BasicQueue",
    }
    [rec] = ctr["Recordings"]
    assert set(rec) == RECORDING_FIELDS
    assert rec == {
        "DeletionReason": None,
        "FragmentStartNumber": "91343852333181432392682062659924109276236173057",
        "FragmentStopNumber": "91343852333181432546186627531311271605344142199",
        "Location": stream.stream_arn,
        "MediaStreamType": "AUDIO",
        "ParticipantType": "CUSTOMER",
        "StartTimestamp": "2024-01-26T03:07:42Z",
        "Status": None,
        "StopTimestamp": "2024-01-26T03:08:13Z",
        "StorageType": "KINESIS_VIDEO_STREAM",
    }
    assert "stream/callstream-connect-acme-contact-" in rec["Location"]


def test_ctr_without_streaming_or_queue() -> None:
    contact = Contact.new(channel="CHAT", now=T0)
    ctr = build_ctr(contact, now=T0)
    assert ctr["Recordings"] is None and ctr["Queue"] is None
    assert ctr["MediaStreams"] == [{"Type": "CHAT"}]
    assert ctr["CustomerEndpoint"] is None


def test_ctr_timestamp_format() -> None:
    assert format_ctr_timestamp(0) == "1970-01-01T00:00:00Z"
    assert format_ctr_timestamp(datetime(2024, 1, 1, 12, 0, 0, 999999)) == "2024-01-01T12:00:00Z"
    assert format_ctr_timestamp(datetime(2024, 1, 1, 12, tzinfo=UTC)) == "2024-01-01T12:00:00Z"
    assert format_ctr_timestamp(None) is None
