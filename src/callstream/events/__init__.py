"""The call-event bus: typed events declared once (:mod:`~callstream.events.types`), a
durable journal (:mod:`~callstream.events.journal`), publish / subscribe / query
(:mod:`~callstream.events.bus`) and the contact-record subscriber
(:mod:`~callstream.events.recorder`)."""

from callstream.events.bus import EventBus, EventBusError, QueryResult, Subscription
from callstream.events.journal import Journal, JournalLocked, Retention
from callstream.events.types import (
    EVENT_TYPES,
    Event,
    EventError,
    EventFilter,
    EventSpec,
    Field,
    decode,
    encode,
    to_eventbridge,
)

__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventBus",
    "EventBusError",
    "EventError",
    "EventFilter",
    "EventSpec",
    "Field",
    "Journal",
    "JournalLocked",
    "QueryResult",
    "Retention",
    "Subscription",
    "decode",
    "encode",
    "to_eventbridge",
]
