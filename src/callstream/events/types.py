"""Every call event callstream publishes, declared once as data.

An event type is an :class:`EventSpec` in :data:`EVENT_TYPES`: its name, its fields
(:class:`Field`: wire name, JSON kind, required or not) and, where AWS emits a
corresponding EventBridge event, that event's ``source`` / ``detail-type``. Adding a type
(a later issue's transcript or category event) is adding one entry to the table:
validation, the wire form, filtering, the journal, the HTTP API and the EventBridge view
all work from it.

Wire form (the journal line, the HTTP API's ``Events`` entries, the SSE ``data:``): one
flat JSON object, the envelope keys first::

    {"Cursor": 42, "EventType": "MediaStreamingStarted", "Time": 1764870503123,
     "ContactId": "c-1", "StreamARN": "arn:aws:kinesisvideo:...", "StartFragmentNumber": "913...",
     "StartTimestamp": 1764870503000}

* ``Cursor``: the bus's position of the event, an integer increasing by one per event,
  stable across restarts (see :mod:`callstream.events.bus`).
* ``EventType``: a name of :data:`EVENT_TYPES`.
* ``Time``: when the event happened, integer epoch milliseconds (as everywhere in the
  store). Timestamp fields (``kind="timestamp"``) are epoch milliseconds too; fragment
  numbers are the 47-digit decimal strings KVS uses.

Field names are AWS's, PascalCase as in the KVS and Connect APIs: ``StreamARN``,
``StartFragmentNumber``, ``StartTimestamp`` and ``StopTimestamp`` are exactly Connect's
``$.MediaStreams.Customer.Audio.*`` attributes; contact fields are the CTR's. The
EventBridge view (:func:`to_eventbridge`) lowers the first letter and writes ``Arn`` for
``ARN`` (``StreamARN`` -> ``streamArn``, ``CallId`` -> ``callId``), which is exactly the
detail of "Chime VoiceConnector Streaming Status" and of "Amazon Connect Contact Event";
timestamps become ISO 8601 strings there, as AWS sends them.

Decoding (:func:`decode`) accepts event types and fields this version does not know, so
a subscriber reading a journal written by a newer callstream keeps going.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "ENVELOPE",
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "AwsEvent",
    "Event",
    "EventError",
    "EventFilter",
    "EventSpec",
    "Field",
    "Origin",
    "decode",
    "detail_type",
    "encode",
    "eventbridge_id",
    "eventbridge_name",
    "to_eventbridge",
    "types_with_detail_type",
]

Kind = Literal["string", "integer", "number", "boolean", "timestamp", "object", "list"]
Publisher = Literal["server", "client"]

ENVELOPE = ("Cursor", "EventType", "Time")
"""Keys every event carries; no field may take these names (nor ``Origin``)."""

MAX_EVENT_BYTES = 2 * 1024 * 1024
"""Largest encoded event (a ContactEnded carrying a 1 MiB CTR fits)."""

_MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class EventError(ValueError):
    """An event that does not match its declaration; the message names the field."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event type."""

    name: str
    kind: Kind
    required: bool = False
    doc: str = ""
    choices: tuple[str, ...] = ()
    """Allowed values of an enumerated string field (empty: any string)."""


@dataclass(frozen=True, slots=True)
class AwsEvent:
    """The EventBridge event AWS emits for the same happening."""

    source: str
    detail_type: str
    detail: Mapping[str, str] = field(default_factory=dict)
    """Constant detail fields (Connect's ``eventType``, Chime's ``version``)."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event type: its fields, who may publish it, and its AWS counterpart."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    publishers: frozenset[Publisher] = frozenset({"server"})
    """``server``: only the server publishes it (stream and producer events);
    ``client``: clients may publish it over ``POST /callstream/events`` too."""
    aws: AwsEvent | None = None
    reserved: bool = False
    """Declared for a later issue; nothing in callstream publishes it yet."""
    lca: str | None = None
    """The event's ``EventType`` on LCA's call data stream (``analytics-lca.md`` §3), for
    call-analytics events: what the per-call JSON Lines log writes."""

    def field(self, name: str) -> Field | None:
        """The field called ``name``, or None."""
        for f in self.fields:
            if f.name == name:
                return f
        return None


_CLIENT: frozenset[Publisher] = frozenset({"server", "client"})
_CONNECT_CONTACT = "Amazon Connect Contact Event"


def _spec(
    name: str,
    doc: str,
    *fields: Field,
    publishers: frozenset[Publisher] = frozenset({"server"}),
    aws: AwsEvent | None = None,
    reserved: bool = False,
    lca: str | None = None,
) -> EventSpec:
    return EventSpec(name, doc, tuple(fields), publishers, aws, reserved, lca)


_STREAM_ARN = Field("StreamARN", "string", True, "ARN of the Kinesis Video stream")
_STREAM_NAME = Field("StreamName", "string", True)
_CONTACT_ID = Field("ContactId", "string", True, "the Connect contact")
_CHANNEL = Field("Channel", "string", False, "VOICE | CHAT | TASK | EMAIL")
_INSTANCE = Field("InstanceARN", "string", False, "the Connect instance")
_CALL_ID = Field("CallId", "string", True, "ContactId, or the voice connector call's CallId")
_SENTIMENT = Field("Sentiment", "string", choices=("POSITIVE", "NEGATIVE", "NEUTRAL", "MIXED"))

EVENT_TYPES: dict[str, EventSpec] = {
    spec.name: spec
    for spec in (
        # --- the media store ---------------------------------------------------------
        _spec(
            "StreamCreated",
            "CreateStream succeeded (KVS itself sends no EventBridge event for this).",
            _STREAM_ARN,
            _STREAM_NAME,
            Field("DataRetentionInHours", "integer"),
            Field("MediaType", "string"),
            Field("KmsKeyId", "string"),
        ),
        _spec("StreamDeleted", "DeleteStream succeeded.", _STREAM_ARN, _STREAM_NAME),
        _spec(
            "ProducerConnected",
            "A PutMedia connection started streaming into a stream.",
            _STREAM_ARN,
            _STREAM_NAME,
            Field("ProducerStartTimestamp", "timestamp", doc="x-amzn-producer-start-timestamp"),
            Field("FragmentTimecodeType", "string", choices=("ABSOLUTE", "RELATIVE")),
        ),
        _spec(
            "ProducerEnded",
            "A PutMedia connection ended; what it stored.",
            _STREAM_ARN,
            _STREAM_NAME,
            Field("FragmentsStored", "integer", True, "fragments acknowledged PERSISTED"),
            Field("LastFragmentNumber", "string", doc="the last fragment stored, if any"),
            Field(
                "Reason",
                "string",
                doc="why the upload ended",
                choices=("COMPLETED", "SUPERSEDED", "IDLE_TIMEOUT", "ERROR", "SERVER_STOPPING"),
            ),
            Field("ErrorCode", "string", doc="the ERROR ack's code when Reason is ERROR"),
        ),
        # --- contacts (Amazon Connect) --------------------------------------------------
        _spec(
            "ContactStarted",
            "A contact was initiated (Connect: Contact Event INITIATED).",
            _CONTACT_ID,
            _CHANNEL,
            Field("InitiationMethod", "string", doc="INBOUND | OUTBOUND | TRANSFER | ..."),
            _INSTANCE,
            Field("InitiationTimestamp", "timestamp"),
            Field("InitialContactId", "string"),
            Field("PreviousContactId", "string"),
            publishers=_CLIENT,
            aws=AwsEvent("aws.connect", _CONNECT_CONTACT, {"eventType": "INITIATED"}),
        ),
        _spec(
            "MediaStreamingStarted",
            "Start media streaming ran: the contact's audio goes to StreamARN from "
            "StartFragmentNumber (Connect's $.MediaStreams.Customer.Audio attributes).",
            _CONTACT_ID,
            _STREAM_ARN,
            Field("StartFragmentNumber", "string", True),
            Field("StartTimestamp", "timestamp", True),
            _INSTANCE,
            Field("Tracks", "list", doc='e.g. ["AUDIO_FROM_CUSTOMER", "AUDIO_TO_CUSTOMER"]'),
            publishers=_CLIENT,
        ),
        _spec(
            "MediaStreamingStopped",
            "Streaming of the contact's audio stopped (a Stop block or the hang-up).",
            _CONTACT_ID,
            _STREAM_ARN,
            Field("StopFragmentNumber", "string", doc="the last fragment of the contact"),
            Field("StopTimestamp", "timestamp", True),
            _INSTANCE,
            publishers=_CLIENT,
        ),
        _spec(
            "ContactEnded",
            "The contact ended (Connect: Contact Event DISCONNECTED); carries its CTR, "
            "which the contact-record subscriber stores.",
            _CONTACT_ID,
            _CHANNEL,
            _INSTANCE,
            Field("DisconnectReason", "string"),
            Field("DisconnectTimestamp", "timestamp"),
            Field("ContactRecord", "object", doc="the contact record (CTR), at most 1 MiB"),
            publishers=_CLIENT,
            aws=AwsEvent("aws.connect", _CONNECT_CONTACT, {"eventType": "DISCONNECTED"}),
        ),
        *(
            _spec(
                name,
                f"Connect's contact event {event_type}: {doc} (published by the contacts "
                "the server places).",
                _CONTACT_ID,
                _CHANNEL,
                _INSTANCE,
                Field("InitiationMethod", "string", doc="INBOUND | OUTBOUND | API | ..."),
                Field("InitiationTimestamp", "timestamp"),
                Field("InitialContactId", "string"),
                Field("PreviousContactId", "string"),
                Field("ConnectedToSystemTimestamp", "timestamp"),
                Field("QueueInfo", "object", doc="queueArn, queueType, enqueueTimestamp"),
                Field("AgentInfo", "object", doc="agentArn, connectedToAgentTimestamp"),
                publishers=_CLIENT,
                aws=AwsEvent("aws.connect", _CONNECT_CONTACT, {"eventType": event_type}),
            )
            for name, event_type, doc in (
                (
                    "ContactConnectedToSystem",
                    "CONNECTED_TO_SYSTEM",
                    "the contact has media (the call was answered)",
                ),
                ("ContactQueued", "QUEUED", "the contact was placed in a queue"),
                ("ContactConnectedToAgent", "CONNECTED_TO_AGENT", "an agent took the contact"),
            )
        ),
        # --- the voice connector (Chime) -------------------------------------------------
        _spec(
            "VoiceConnectorStreamingStatus",
            "A Voice Connector call leg's streaming status (Chime's EventBridge event).",
            Field(
                "StreamingStatus", "string", True, choices=("STARTED", "UPDATED", "ENDED", "FAILED")
            ),
            Field("VoiceConnectorId", "string", True),
            Field("TransactionId", "string", True),
            Field("CallId", "string", True),
            Field("StreamARN", "string"),
            Field("StartFragmentNumber", "string"),
            Field("StartTime", "timestamp"),
            Field("EndTime", "timestamp"),
            Field("FailTime", "timestamp"),
            Field("FailureReason", "string"),
            Field("Direction", "string", choices=("Inbound", "Outbound")),
            Field("FromNumber", "string"),
            Field("ToNumber", "string"),
            Field("IsCaller", "boolean"),
            Field("MediaType", "string"),
            Field("InviteHeaders", "object"),
            Field("UpdateHeaders", "object"),
            Field("SiprecMetadata", "string"),
            Field("Sdp", "object", doc="the leg's m-line: mediaIndex, mediaLabel"),
            publishers=_CLIENT,
            aws=AwsEvent("aws.chime", "Chime VoiceConnector Streaming Status", {"version": "0"}),
        ),
        # --- call analytics (LCA's call data stream) ---------------------------------------
        _spec(
            "CallAnalyticsStarted",
            "Call analytics started on a call (LCA's START).",
            _CALL_ID,
            Field(
                "Source",
                "string",
                True,
                choices=("CONNECT", "VOICE_CONNECTOR", "STREAM", "FILE"),
            ),
            Field("CreatedAt", "timestamp", doc="when the call's audio starts"),
            Field("ContactId", "string"),
            Field("TransactionId", "string"),
            Field("VoiceConnectorId", "string"),
            Field("CustomerPhoneNumber", "string"),
            Field("SystemPhoneNumber", "string"),
            Field("AgentId", "string"),
            Field("Channels", "object", doc="role (CALLER/AGENT) -> {StreamARN, Track}"),
            Field(
                "Resumed",
                "boolean",
                doc="the server stopped during the call; it is analysed again from its start",
            ),
            lca="START",
        ),
        _spec(
            "TranscriptSegment",
            "A transcript segment of a call (LCA's ADD_TRANSCRIPT_SEGMENT); partials are "
            "replaced by the final with the same SegmentId.",
            _CALL_ID,
            Field("SegmentId", "string", True),
            Field("Channel", "string", True, choices=("CALLER", "AGENT")),
            Field("StartTime", "number", True, "seconds from the start of the call"),
            Field("EndTime", "number", True, "seconds from the start of the call"),
            Field("Transcript", "string", True),
            Field("IsPartial", "boolean", True),
            Field("ContactId", "string"),
            Field("StreamARN", "string"),
            _SENTIMENT,
            Field("SentimentScore", "object", doc="Positive, Negative, Neutral, Mixed"),
            Field("SentimentWeighted", "number", doc="LCA's -5..5 score"),
            Field("Confidence", "number", doc="the recogniser's confidence, 0..1"),
            Field("Issues", "list", doc="PROFANITY / INSULT / THREAT found in the segment"),
            Field("LatencyMs", "integer", doc="from the utterance's end to this event"),
            publishers=_CLIENT,
            lca="ADD_TRANSCRIPT_SEGMENT",
        ),
        _spec(
            "CategoryMatched",
            "Real-time categories matched a call (LCA's ADD_CALL_CATEGORY).",
            _CALL_ID,
            Field("MatchedCategories", "list", True),
            Field("MatchedDetails", "object", doc="category -> {TimestampRanges: [...]}"),
            Field("ContactId", "string"),
            publishers=_CLIENT,
            lca="ADD_CALL_CATEGORY",
        ),
        _spec(
            "CallAlert",
            "Something a supervisor should see now: an abusive caller, or a category "
            "marked as an alert.",
            _CALL_ID,
            Field("AlertType", "string", True, choices=("ABUSIVE_CALLER", "CATEGORY")),
            Field("Category", "string"),
            Field("SegmentIds", "list"),
            Field("Evidence", "list", doc="[{SegmentId, StartTime, EndTime, Term}]"),
            Field("ContactId", "string"),
            lca="ADD_CALL_ALERT",
        ),
        _spec(
            "AgentUpdated",
            "The call's agent is known or changed (LCA's UPDATE_AGENT).",
            _CALL_ID,
            Field("AgentId", "string", True),
            publishers=_CLIENT,
            lca="UPDATE_AGENT",
        ),
        _spec(
            "CallSummary",
            "The post-call summary (LCA's ADD_SUMMARY): summary text, sentiment per "
            "channel, talk time.",
            _CALL_ID,
            Field("CallSummaryText", "string", True),
            Field("Sentiment", "object"),
            Field("TalkTime", "object"),
            Field("Categories", "list"),
            Field("Flags", "list"),
            lca="ADD_SUMMARY",
        ),
        _spec(
            "CallAnalyticsEnded",
            "Call analytics finished a call (LCA's END); the export and the recording are ready.",
            _CALL_ID,
            Field("Status", "string", True, choices=("ENDED", "ERRORED")),
            Field("DurationSeconds", "number"),
            Field("RecordingUrl", "string", doc="the stereo WAV (ch0 caller, ch1 agent)"),
            Field("Error", "string"),
            lca="END",
        ),
    )
}
"""The event types, by name (the table every other part works from)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event relayed from another node of a cluster was published: that node's
    id and the event's cursor there (wire form ``"Origin": {"Node": ..., "Cursor": ...}``).
    Events published on this node have none."""

    node: str
    cursor: int

    def to_json(self) -> dict[str, Any]:
        return {"Node": self.node, "Cursor": self.cursor}


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its type, its fields (wire names), when it happened, its cursor (0
    until the bus published it) and, for an event relayed from another node of a
    cluster, its :class:`Origin`."""

    type: str
    fields: Mapping[str, Any]
    time_ms: int
    cursor: int = 0
    origin: Origin | None = None

    @classmethod
    def of(cls, type_name: str, /, *, time_ms: int | None = None, **fields: Any) -> Event:
        """A new event of a declared type, checked against its declaration (missing
        required fields, unknown fields, wrong kinds raise :class:`EventError`).
        ``time_ms`` defaults to now; fields given as None are left out."""
        present = {k: v for k, v in fields.items() if v is not None}
        when = int(time.time() * 1000) if time_ms is None else time_ms
        event = cls(type_name, present, when)
        validate(event)
        return event

    @property
    def spec(self) -> EventSpec | None:
        """The declaration of this event's type (None for a type this version lacks)."""
        return EVENT_TYPES.get(self.type)

    def get(self, name: str, default: Any = None) -> Any:
        """A field's value."""
        return self.fields.get(name, default)

    def to_json(self) -> dict[str, Any]:
        """The wire form: the envelope (with ``Origin`` if relayed), then the fields."""
        wire: dict[str, Any] = {"Cursor": self.cursor, "EventType": self.type, "Time": self.time_ms}
        if self.origin is not None:
            wire["Origin"] = self.origin.to_json()
        wire.update(self.fields)
        return wire

    def with_cursor(self, cursor: int) -> Event:
        """The same event at ``cursor``."""
        return Event(self.type, self.fields, self.time_ms, cursor, self.origin)

    def relayed(self, origin: Origin) -> Event:
        """The same event as imported from ``origin`` (cursor 0 until published here)."""
        return Event(self.type, self.fields, self.time_ms, 0, origin)


def validate(event: Event) -> None:
    """Check ``event`` against its type's declaration; raises :class:`EventError`."""
    spec = EVENT_TYPES.get(event.type)
    if spec is None:
        known = ", ".join(sorted(EVENT_TYPES))
        raise EventError(f"EventType: unknown event type {event.type!r} (known: {known})")
    if not _is_int(event.time_ms) or not 0 <= event.time_ms <= _MAX_TIMESTAMP_MS:
        raise EventError(f"{event.type}.Time: expected epoch milliseconds, got {event.time_ms!r}")
    for name, value in event.fields.items():
        f = spec.field(name)
        if f is None:
            raise EventError(f"{event.type}.{name}: not a field of {event.type}")
        _check(event.type, f, value)
    for f in spec.fields:
        if f.required and f.name not in event.fields:
            raise EventError(f"{event.type}.{f.name}: required")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(type_name: str, f: Field, value: Any) -> None:
    where = f"{type_name}.{f.name}"
    ok: bool
    if f.kind == "string":
        ok = isinstance(value, str)
    elif f.kind == "integer":
        ok = _is_int(value) and abs(value) < 2**63
    elif f.kind == "timestamp":
        ok = _is_int(value) and 0 <= value <= _MAX_TIMESTAMP_MS
    elif f.kind == "number":
        ok = (_is_int(value) and abs(value) < 2**63) or (
            isinstance(value, float) and math.isfinite(value)
        )
    elif f.kind == "boolean":
        ok = isinstance(value, bool)
    elif f.kind == "object":
        ok = isinstance(value, dict)
    else:
        ok = isinstance(value, list)
    if not ok:
        expected = "epoch milliseconds" if f.kind == "timestamp" else f"a JSON {f.kind}"
        raise EventError(f"{where}: expected {expected}, got {type(value).__name__}")
    if f.choices and value not in f.choices:
        raise EventError(f"{where}: {value!r} is not one of {', '.join(f.choices)}")


def encode(event: Event) -> bytes:
    """The event as one line of compact JSON (no newline), UTF-8."""
    try:
        text = json.dumps(
            event.to_json(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as err:
        raise EventError(f"{event.type}: not JSON-serialisable ({err})") from None
    return text.encode()


def decode(obj: object) -> Event:
    """An event from its wire form. Unknown event types and fields are kept as they are
    (a newer callstream wrote them); only a broken envelope raises :class:`EventError`."""
    if not isinstance(obj, dict):
        raise EventError("an event must be a JSON object")
    cursor = obj.get("Cursor", 0)
    type_name = obj.get("EventType")
    when = obj.get("Time")
    if not isinstance(type_name, str) or not type_name:
        raise EventError("EventType: missing or not a string")
    if not _is_int(cursor) or cursor < 0:
        raise EventError("Cursor: expected a non-negative integer")
    if not isinstance(when, int) or isinstance(when, bool):
        raise EventError("Time: expected epoch milliseconds")
    origin = _origin(obj.get("Origin"))
    fields = {k: v for k, v in obj.items() if k not in ENVELOPE and k != "Origin"}
    return Event(type_name, fields, when, cursor, origin)


def _origin(value: object) -> Origin | None:
    if value is None:
        return None
    node = value.get("Node") if isinstance(value, dict) else None
    cursor = value.get("Cursor") if isinstance(value, dict) else None
    if (
        not isinstance(node, str)
        or not node
        or not isinstance(cursor, int)
        or isinstance(cursor, bool)
        or cursor < 1
    ):
        raise EventError('Origin: expected {"Node": id, "Cursor": positive integer}')
    return Origin(node, cursor)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a subscriber or query wants: any of ``types`` (empty: all types),
    and every ``fields`` pair equal (an event without the field does not match); with
    ``local``, only events published on this node (not relayed from another node of a
    cluster: what acts on a call, such as analytics and webhooks, acts where it happened)."""

    types: frozenset[str] = frozenset()
    fields: tuple[tuple[str, Any], ...] = ()
    local: bool = False

    @classmethod
    def where(cls, types: Iterable[str] = (), **fields: Any) -> EventFilter:
        """``EventFilter.where({"ContactEnded"}, ContactId="c-1")``; None values are
        ignored."""
        pairs = tuple(sorted((k, v) for k, v in fields.items() if v is not None))
        return cls(frozenset(types), pairs)

    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes."""
        if self.types and event.type not in self.types:
            return False
        if self.local and event.origin is not None:
            return False
        missing = object()
        return all(event.fields.get(k, missing) == v for k, v in self.fields)


def eventbridge_name(name: str) -> str:
    """The EventBridge detail key of a field: ``StreamARN`` -> ``streamArn``."""
    name = name.replace("ARN", "Arn")
    return name[:1].lower() + name[1:]


def _iso(ms: int) -> str:
    stamp = datetime.fromtimestamp(ms / 1000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def detail_type(spec: EventSpec) -> str:
    """The ``detail-type`` of an event type in its EventBridge view: AWS's where AWS emits
    the event, else the type's own name (with ``source`` ``callstream``)."""
    return spec.aws.detail_type if spec.aws is not None else spec.name


def types_with_detail_type(name: str) -> frozenset[str]:
    """The event types whose EventBridge view has ``detail-type`` ``name`` (empty when
    none has): ``"Amazon Connect Contact Event"`` -> ContactStarted, ContactEnded."""
    return frozenset(n for n, spec in EVENT_TYPES.items() if detail_type(spec) == name)


def eventbridge_id(event: Event, node: str | None = None) -> str:
    """The EventBridge ``id`` of an event: ``callstream-<cursor>`` on a single server;
    in a cluster (``node``: this node's id) ``callstream-<node>-<cursor>`` of the node
    that published it, the same on every node."""
    if event.origin is not None:
        return f"callstream-{event.origin.node}-{event.origin.cursor}"
    if node is not None:
        return f"callstream-{node}-{event.cursor}"
    return f"callstream-{event.cursor}"


def to_eventbridge(
    event: Event, *, account: str, region: str, node: str | None = None
) -> dict[str, Any]:
    """The event as an EventBridge event: AWS's ``source`` / ``detail-type`` where AWS
    emits one (Connect contact events, Chime streaming status), ``callstream`` and the
    type name otherwise; detail keys by :func:`eventbridge_name`, timestamps in ISO 8601;
    ``id`` by :func:`eventbridge_id`."""
    spec = event.spec
    detail: dict[str, Any] = {}
    if spec is not None and spec.aws is not None:
        source, detail_type = spec.aws.source, spec.aws.detail_type
        detail.update(spec.aws.detail)
    else:
        source, detail_type = "callstream", event.type
    for name, value in event.fields.items():
        f = spec.field(name) if spec is not None else None
        if f is not None and f.kind == "timestamp" and _is_int(value):
            value = _iso(value)
        detail[eventbridge_name(name)] = value
    resources = [
        str(event.fields[k])
        for k in ("StreamARN", "InstanceARN")
        if isinstance(event.fields.get(k), str)
    ]
    return {
        "version": "0",
        "id": eventbridge_id(event, node),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": _iso(event.time_ms).split(".")[0] + "Z",
        "region": region,
        "resources": resources,
        "detail": detail,
    }
