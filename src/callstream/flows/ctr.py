"""The contact trace record (CTR) of a contact (connect-flows.md §4).

:func:`build_ctr` returns the JSON object Connect writes for a contact, with the fields of the
reference data model. Timestamps are ``yyyy-mm-ddThh:mm:ssZ`` (UTC, whole seconds). Live media
streaming shows up twice, as Connect shows it: ``MediaStreams`` is ``[{"Type": "AUDIO"}]`` and
every streaming period is a ``Recordings[]`` entry with ``StorageType
"KINESIS_VIDEO_STREAM"``, ``Location`` = the stream ARN, ``FragmentStartNumber`` /
``FragmentStopNumber`` and start/stop timestamps, ``ParticipantType "CUSTOMER"`` and
``Status``/``DeletionReason`` null (as in a captured real CTR).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from callstream.flows.contact import Contact, MediaStream
from callstream.flows.instance import Instance, utc_now

__all__ = [
    "CTR_FORMAT_VERSION",
    "KVS_MEDIA_STREAM_TYPE",
    "build_ctr",
    "format_ctr_timestamp",
    "recording_entry",
]

CTR_FORMAT_VERSION = "2017-03-10"
KVS_MEDIA_STREAM_TYPE = "AUDIO"
"""``Recordings[].MediaStreamType`` for a KVS entry (docs: AUDIO | VIDEO; one captured real
CTR shows ``VIDEO`` for a Connect audio stream)."""

_CHANNEL_STREAM_TYPE = {"VOICE": "AUDIO", "CHAT": "CHAT"}


def format_ctr_timestamp(value: datetime | int | None) -> str | None:
    """A datetime or epoch milliseconds as ``yyyy-mm-ddThh:mm:ssZ`` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1000, tz=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recording_entry(stream: MediaStream) -> dict[str, Any]:
    """One ``Recordings[]`` entry for a live-media-streaming period."""
    return {
        "DeletionReason": None,
        "FragmentStartNumber": stream.start_fragment_number,
        "FragmentStopNumber": stream.stop_fragment_number,
        "Location": stream.stream_arn,
        "MediaStreamType": KVS_MEDIA_STREAM_TYPE,
        "ParticipantType": "CUSTOMER",
        "StartTimestamp": format_ctr_timestamp(stream.start_timestamp_ms),
        "Status": None,
        "StopTimestamp": format_ctr_timestamp(stream.stop_timestamp_ms),
        "StorageType": "KINESIS_VIDEO_STREAM",
    }


def _queue(contact: Contact, now: datetime) -> dict[str, Any] | None:
    queue = contact.queue
    if queue is None or contact.enqueue_timestamp is None:
        return None
    end = contact.dequeue_timestamp or contact.disconnect_timestamp or now
    return {
        "ARN": queue.arn,
        "DequeueTimestamp": format_ctr_timestamp(contact.dequeue_timestamp),
        "Duration": max(0, int((end - contact.enqueue_timestamp).total_seconds())),
        "EnqueueTimestamp": format_ctr_timestamp(contact.enqueue_timestamp),
        "Name": queue.name,
    }


def build_ctr(
    contact: Contact, instance: Instance | None = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """The contact record JSON for ``contact`` (keys sorted as Connect's export sorts them).

    ``now`` stands in for ``LastUpdateTimestamp`` and open durations of a contact that is
    still up.
    """
    instance = instance or Instance()
    now = now or utc_now()
    stream_type = _CHANNEL_STREAM_TYPE.get(contact.channel)
    recordings = [recording_entry(s) for s in contact.media_streams]
    ctr: dict[str, Any] = {
        "AWSAccountId": instance.account_id,
        "AWSContactTraceRecordFormatVersion": CTR_FORMAT_VERSION,
        "Agent": None,
        "AgentConnectionAttempts": 0,
        "Attributes": dict(contact.attributes),
        "Channel": contact.channel,
        "ConnectedToSystemTimestamp": format_ctr_timestamp(contact.connected_to_system_timestamp),
        "ContactId": contact.contact_id,
        "CustomerEndpoint": contact.customer_endpoint.to_json()
        if contact.customer_endpoint
        else None,
        "DisconnectReason": contact.disconnect_reason,
        "DisconnectTimestamp": format_ctr_timestamp(contact.disconnect_timestamp),
        "InitialContactId": contact.initial_contact_id,
        "InitiationMethod": contact.initiation_method,
        "InitiationTimestamp": format_ctr_timestamp(contact.initiation_timestamp),
        "InstanceARN": contact.instance_arn or instance.arn,
        "LastUpdateTimestamp": format_ctr_timestamp(contact.last_update_timestamp or now),
        "MediaStreams": [{"Type": stream_type}] if stream_type else [],
        "NextContactId": None,
        "PreviousContactId": contact.previous_contact_id,
        "Queue": _queue(contact, now),
        "Recording": None,
        "Recordings": recordings or None,
        "RelatedContactId": None,
        "ScheduledTimestamp": None,
        "SystemEndpoint": contact.system_endpoint.to_json() if contact.system_endpoint else None,
        "TransferCompletedTimestamp": None,
        "TransferredToEndpoint": None,
    }
    return ctr
