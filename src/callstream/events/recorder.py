"""Contact records as a subscriber of the call-event bus.

A contact's CTR travels in the ``ContactRecord`` field of its ``ContactEnded`` event.
:class:`ContactRecorder` subscribes to those events and stores each record in the
:class:`~callstream.store.contacts.ContactStore`, together with its own cursor (one
SQLite transaction), so after a restart or a crash it resumes exactly after the last
event it stored: every journaled CTR ends up stored, once.

``POST /callstream/contacts`` publishes the ``ContactEnded`` event
(:func:`contact_ended`) and, once it is durable, stores the record itself as well
(:func:`store_contact`), so that a client reading the record right after the POST finds
it. Both writes carry the event's cursor and the store keeps the record of the newest
event, so the two writers cannot disagree (the subscriber's write of the same event is a
no-op).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from callstream.events.bus import EventBus
from callstream.events.types import Event, EventFilter
from callstream.store.base import InvalidArgument
from callstream.store.contacts import ContactStore, check_record

__all__ = ["CONSUMER", "ContactRecorder", "contact_ended", "store_contact"]

log = logging.getLogger("callstream.events")

CONSUMER = "contact-records"
"""The recorder's name in ``contacts.sqlite3``'s ``consumers`` table."""

RETRY_S = 1.0


def _ms(value: object) -> int | None:
    """A CTR timestamp (ISO 8601, as Connect writes them) in epoch ms, or None."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    ms = int(stamp.timestamp() * 1000)
    return ms if ms >= 0 else None


def contact_ended(record: dict[str, Any], *, time_ms: int | None = None) -> Event:
    """The ``ContactEnded`` event carrying CTR ``record`` (validated as the contact store
    takes it: :class:`~callstream.store.base.InvalidArgument` names what is wrong)."""
    check_record(record)

    def text(key: str) -> str | None:
        value = record.get(key)
        return value if isinstance(value, str) and value else None

    return Event.of(
        "ContactEnded",
        time_ms=time_ms,
        ContactId=record["ContactId"],
        Channel=text("Channel"),
        InstanceARN=text("InstanceARN"),
        DisconnectReason=text("DisconnectReason"),
        DisconnectTimestamp=_ms(record.get("DisconnectTimestamp")),
        ContactRecord=record,
    )


def store_contact(store: ContactStore, event: Event, *, consumer: str | None = None) -> bool:
    """Store the CTR ``event`` carries, unless a newer event's record is stored already;
    with ``consumer``, that subscriber moves past the event. Returns whether the record
    was written. A record the store refuses is logged and skipped."""
    record = event.get("ContactRecord")
    if isinstance(record, Mapping):
        try:
            return store.put(dict(record), cursor=event.cursor, consumer=consumer)
        except InvalidArgument as err:
            log.warning(
                "ContactEnded at cursor %d: record not stored: %s", event.cursor, err.message
            )
    if consumer is not None:
        store.advance(consumer, event.cursor)
    return False


class ContactRecorder:
    """The subscriber that stores contact records (see the module docstring). Run
    :meth:`run` as a task on the bus's loop; it ends when the subscription ends
    (:meth:`EventBus.end_subscriptions`)."""

    FILTER = EventFilter.where({"ContactEnded"})

    def __init__(self, bus: EventBus, store: ContactStore) -> None:
        self.bus = bus
        self.store = store
        self.stored = 0
        """Records written by this recorder since it started."""

    def position(self) -> int:
        """The cursor to resume after (blocking: SQLite)."""
        return self.store.consumer_position(CONSUMER, self.bus.journal_id)

    async def run(self, start: int | None = None) -> None:
        """Store records until the subscription ends, from ``start`` (default: where the
        recorder stopped last time)."""
        if start is None:
            start = await asyncio.to_thread(self.position)
        async with self.bus.subscribe(self.FILTER, start) as subscription:
            async for event in subscription:
                while not subscription.ended:
                    try:
                        if await asyncio.to_thread(
                            store_contact, self.store, event, consumer=CONSUMER
                        ):
                            self.stored += 1
                        break
                    except Exception as err:  # sqlite3 errors, a full disk: skip nothing, retry
                        log.error("contact record at cursor %d: %s (retrying)", event.cursor, err)
                        await asyncio.sleep(RETRY_S)
