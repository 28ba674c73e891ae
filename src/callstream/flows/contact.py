"""The contact a flow runs for, and its Lambda ``ContactFlowEvent`` serialization.

A :class:`Contact` is the mutable state of one contact: ids, channel, endpoints, attributes,
the last Lambda result (``$.External``), the target queue, the live-media-streaming sessions
(``$.MediaStreams.Customer.Audio.*``), recording and logging behaviour and timestamps. The
interpreter mutates it; the runner reads it (and :func:`callstream.flows.ctr.build_ctr`
turns it into the contact record).

:func:`contact_flow_event` builds the exact payload Connect sends to a Lambda
(connect-flows.md §3.2)::

    {"Details": {"ContactData": {...}, "Parameters": {...}}, "Name": "ContactFlowEvent"}
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from callstream.flows.instance import Instance, Queue, utc_now

__all__ = [
    "CHANNELS",
    "Channel",
    "Contact",
    "Endpoint",
    "MediaStream",
    "RecordingBehavior",
    "contact_data",
    "contact_flow_event",
    "media_streams_json",
]

Channel = Literal["VOICE", "CHAT", "TASK"]
CHANNELS: tuple[Channel, ...] = ("VOICE", "CHAT", "TASK")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """``{"Address": ..., "Type": "TELEPHONE_NUMBER"}``."""

    address: str
    type: str = "TELEPHONE_NUMBER"

    def to_json(self) -> dict[str, str]:
        """The Connect JSON shape."""
        return {"Address": self.address, "Type": self.type}


@dataclass(slots=True)
class MediaStream:
    """One live-media-streaming period of the customer audio (Enabled ... Disabled).

    Timestamps are epoch milliseconds; Connect exposes them as strings (§3.1).
    ``start_fragment_number`` is the KVS fragment in which streaming started.
    """

    stream_arn: str
    start_fragment_number: str
    start_timestamp_ms: int
    directions: tuple[str, ...] = ("To", "From")
    stop_timestamp_ms: int | None = None
    stop_fragment_number: str | None = None

    @property
    def active(self) -> bool:
        """True until a Disabled block or the disconnect stops it."""
        return self.stop_timestamp_ms is None

    def audio_json(self) -> dict[str, str]:
        """``$.MediaStreams.Customer.Audio``: StreamARN, StartTimestamp, [StopTimestamp],
        StartFragmentNumber (StopTimestamp appears once streaming stopped)."""
        out = {"StreamARN": self.stream_arn, "StartTimestamp": str(self.start_timestamp_ms)}
        if self.stop_timestamp_ms is not None:
            out["StopTimestamp"] = str(self.stop_timestamp_ms)
        out["StartFragmentNumber"] = self.start_fragment_number
        return out


@dataclass(frozen=True, slots=True)
class RecordingBehavior:
    """What UpdateContactRecordingBehavior set (kept for the runner and the CTR)."""

    recorded_participants: tuple[str, ...] = ()
    analytics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Contact:
    """One contact's state.

    Build one with :meth:`new`; ``initial_contact_id`` defaults to ``contact_id``.
    """

    contact_id: str
    channel: Channel = "VOICE"
    initiation_method: str = "INBOUND"
    initial_contact_id: str = ""
    previous_contact_id: str | None = None
    instance_arn: str = ""
    customer_endpoint: Endpoint | None = None
    system_endpoint: Endpoint | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    external: dict[str, Any] = field(default_factory=dict)
    """The last successful Lambda result (``$.External``); not persisted in the CTR."""
    lex: dict[str, Any] = field(default_factory=dict)
    stored_customer_input: str | None = None
    queue: Queue | None = None
    language_code: str = "en-US"
    name: str | None = None
    description: str | None = None
    customer_id: str | None = None
    references: dict[str, dict[str, str]] = field(default_factory=dict)
    media_streams: list[MediaStream] = field(default_factory=list)
    recording: RecordingBehavior | None = None
    flow_logging: bool = False
    text_to_speech_voice: str = "Joanna"
    text_to_speech_engine: str = "standard"
    event_hooks: dict[str, str] = field(default_factory=dict)
    routing: dict[str, int] = field(default_factory=dict)
    callback_number: str | None = None
    initiation_timestamp: datetime | None = None
    connected_to_system_timestamp: datetime | None = None
    enqueue_timestamp: datetime | None = None
    dequeue_timestamp: datetime | None = None
    disconnect_timestamp: datetime | None = None
    disconnect_reason: str | None = None
    last_update_timestamp: datetime | None = None

    def __post_init__(self) -> None:
        if not self.initial_contact_id:
            self.initial_contact_id = self.contact_id

    @classmethod
    def new(
        cls,
        *,
        instance: Instance | None = None,
        channel: Channel = "VOICE",
        customer_address: str | None = "+15555550100",
        system_address: str | None = "+15555550199",
        attributes: Mapping[str, str] | None = None,
        contact_id: str | None = None,
        initiation_method: str = "INBOUND",
        now: datetime | None = None,
    ) -> Contact:
        """A fresh contact (random ContactId) on ``instance`` initiated at ``now``.

        Chat and task contacts get no telephone endpoints.
        """
        instance = instance or Instance()
        when = now or utc_now()
        voice = channel == "VOICE"
        return cls(
            contact_id=contact_id or str(uuid.uuid4()),
            channel=channel,
            initiation_method=initiation_method,
            instance_arn=instance.arn,
            customer_endpoint=Endpoint(customer_address) if voice and customer_address else None,
            system_endpoint=Endpoint(system_address) if voice and system_address else None,
            attributes=dict(attributes or {}),
            initiation_timestamp=when,
            last_update_timestamp=when,
        )

    @property
    def streaming(self) -> MediaStream | None:
        """The active streaming period, if any."""
        if self.media_streams and self.media_streams[-1].active:
            return self.media_streams[-1]
        return None

    @property
    def customer_audio(self) -> MediaStream | None:
        """The latest streaming period (active or stopped): what ``$.MediaStreams`` shows."""
        return self.media_streams[-1] if self.media_streams else None

    @property
    def ended(self) -> bool:
        """True once the contact is disconnected."""
        return self.disconnect_timestamp is not None


def media_streams_json(contact: Contact) -> dict[str, Any]:
    """``{"Customer": {"Audio": {...} | null}}`` as the Lambda payload carries it."""
    audio = contact.customer_audio
    return {"Customer": {"Audio": audio.audio_json() if audio else None}}


def _queue_json(queue: Queue | None) -> dict[str, Any] | None:
    if queue is None:
        return None
    caller = queue.outbound_caller_id
    return {
        "ARN": queue.arn,
        "Name": queue.name,
        "OutboundCallerId": Endpoint(caller).to_json() if caller else None,
    }


def contact_data(contact: Contact) -> dict[str, Any]:
    """``Details.ContactData`` with the keys, order and nulls of the reference (§3.2)."""
    return {
        "Attributes": dict(contact.attributes),
        "Channel": contact.channel,
        "ContactId": contact.contact_id,
        "CustomerEndpoint": contact.customer_endpoint.to_json()
        if contact.customer_endpoint
        else None,
        "CustomerId": contact.customer_id,
        "Description": contact.description,
        "InitialContactId": contact.initial_contact_id,
        "InitiationMethod": contact.initiation_method,
        "InstanceARN": contact.instance_arn,
        "LanguageCode": contact.language_code,
        "MediaStreams": media_streams_json(contact),
        "Name": "ContactFlowEvent",
        "PreviousContactId": contact.previous_contact_id or contact.contact_id,
        "Queue": _queue_json(contact.queue),
        "References": {k: dict(v) for k, v in contact.references.items()},
        "SystemEndpoint": contact.system_endpoint.to_json() if contact.system_endpoint else None,
    }


def contact_flow_event(
    contact: Contact, parameters: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Lambda request payload: ``{"Details": {"ContactData", "Parameters"}, "Name"}``.

    ``parameters`` are the block's rendered ``LambdaInvocationAttributes``.
    """
    return {
        "Details": {
            "ContactData": contact_data(contact),
            "Parameters": dict(parameters or {}),
        },
        "Name": "ContactFlowEvent",
    }
