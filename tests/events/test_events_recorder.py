"""Contact records as a subscriber of the bus: every journaled CTR is stored once, the
recorder resumes after restarts, the newest event's record wins."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from callstream.events import Event, EventBus
from callstream.events.recorder import CONSUMER, ContactRecorder, contact_ended, store_contact
from callstream.store.base import InvalidArgument
from callstream.store.contacts import ContactStore


def ctr(contact_id: str, **extra: object) -> dict[str, object]:
    return {
        "ContactId": contact_id,
        "Channel": "VOICE",
        "InitiationTimestamp": "2026-11-22T10:00:00Z",
        "DisconnectTimestamp": "2026-11-22T10:05:00.250Z",
        "DisconnectReason": "CUSTOMER_DISCONNECT",
        **extra,
    }


def run_recorder(events: Path, contacts: Path, until_stored: int) -> int:
    """Run the recorder against the bus and store in those places until it stored
    ``until_stored`` records and has caught up with the journal; returns its count."""

    async def main() -> int:
        store = ContactStore(contacts)
        with EventBus(events) as bus:
            recorder = ContactRecorder(bus, store)
            task = asyncio.create_task(recorder.run())
            async with asyncio.timeout(20):
                while recorder.stored < until_stored or (
                    store.consumer_position(CONSUMER, bus.journal_id) < _last_contact_ended(bus)
                ):
                    await asyncio.sleep(0.01)
            bus.end_subscriptions()
            await task
        store.close()
        return recorder.stored

    return asyncio.run(main())


def _last_contact_ended(bus: EventBus) -> int:
    from callstream.events import EventFilter

    page = bus.query(EventFilter.where({"ContactEnded"}), limit=1000, max_scan=10**9)
    return page.events[-1].cursor if page.events else 0


def test_contact_ended_carries_the_record_and_refuses_what_the_store_would() -> None:
    event = contact_ended(ctr("c-1", InstanceARN="arn:aws:connect:us-east-1:1:instance/i"))
    assert event.type == "ContactEnded"
    assert event.fields["ContactId"] == "c-1"
    assert event.fields["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    assert event.fields["DisconnectTimestamp"] == 1795341900250
    assert event.fields["InstanceARN"] == "arn:aws:connect:us-east-1:1:instance/i"
    assert event.fields["ContactRecord"]["ContactId"] == "c-1"
    bare = contact_ended({"ContactId": "c-2", "DisconnectTimestamp": "not a time"})
    assert set(bare.fields) == {"ContactId", "ContactRecord"}
    with pytest.raises(InvalidArgument, match="ContactId"):
        contact_ended({"Channel": "VOICE"})
    with pytest.raises(InvalidArgument, match="Channel"):
        contact_ended({"ContactId": "c", "Channel": {"nested": 1}})


def test_the_recorder_stores_each_record_and_resumes_after_a_restart(tmp_path: Path) -> None:
    events, contacts = tmp_path / "events", tmp_path / "contacts.sqlite3"
    with EventBus(events) as bus:
        bus.publish(Event.of("ContactStarted", ContactId="c-1"))
        for n in (1, 2, 3):
            bus.publish(contact_ended(ctr(f"c-{n}")))
        bus.publish(Event.of("ContactEnded", ContactId="c-9"))  # no record: nothing to store
    assert run_recorder(events, contacts, 3) == 3
    # The server is down while two more contacts end: their records are only journaled.
    with EventBus(events) as bus:
        for n in (4, 5):
            bus.publish(contact_ended(ctr(f"c-{n}", Attributes={"n": str(n)})))
    assert run_recorder(events, contacts, 2) == 2  # just the two: none stored twice
    store = ContactStore(contacts)
    assert sorted(r["ContactId"] for r in store.list()) == ["c-1", "c-2", "c-3", "c-4", "c-5"]
    assert store.get("c-4") == ctr("c-4", Attributes={"n": "4"})
    with EventBus(events) as bus:
        assert store.consumer_position(CONSUMER, bus.journal_id) == 7
    store.close()


def test_the_newest_event_wins_whichever_writer_comes_last(tmp_path: Path) -> None:
    store = ContactStore(tmp_path / "contacts.sqlite3")
    old = contact_ended(ctr("c-1", Version="old")).with_cursor(3)
    new = contact_ended(ctr("c-1", Version="new")).with_cursor(5)
    assert store_contact(store, new)  # the POST handler, right after publishing
    assert not store_contact(store, old)  # a replay of an older event
    assert not store_contact(store, new)  # the subscriber's write of the same event
    assert store.get("c-1")["Version"] == "new"  # type: ignore[index]
    store.put(ctr("c-1", Version="plain"))  # without a cursor: written as before
    assert store.get("c-1")["Version"] == "plain"  # type: ignore[index]
    store.close()


def test_a_bad_record_is_skipped_and_the_recorder_moves_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events, contacts = tmp_path / "events", tmp_path / "contacts.sqlite3"
    with EventBus(events) as bus:
        bus.publish(Event.of("ContactEnded", ContactId="c-1", ContactRecord={"Channel": 5}))
        bus.publish(contact_ended(ctr("c-2")))
    with caplog.at_level(logging.WARNING, logger="callstream.events"):
        assert run_recorder(events, contacts, 1) == 1
    assert "cursor 1: record not stored: A contact record needs a ContactId" in caplog.text
    store = ContactStore(contacts)
    assert [r["ContactId"] for r in store.list()] == ["c-2"]
    store.close()


def test_a_new_journal_starts_the_recorder_over(tmp_path: Path) -> None:
    events, contacts = tmp_path / "events", tmp_path / "contacts.sqlite3"
    with EventBus(events) as bus:
        for n in range(5):
            bus.publish(contact_ended(ctr(f"c-{n}", Version="first")))
    assert run_recorder(events, contacts, 5) == 5
    shutil.rmtree(events)  # the operator deleted the journal; cursors start at 1 again
    with EventBus(events) as bus:
        bus.publish(contact_ended(ctr("c-4", Version="second")))
    assert run_recorder(events, contacts, 1) == 1
    store = ContactStore(contacts)
    assert store.get("c-4")["Version"] == "second"  # type: ignore[index]
    assert store.get("c-0")["Version"] == "first"  # type: ignore[index]
    store.close()


def test_a_contact_store_from_before_the_bus_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "contacts.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE contacts (contact_id TEXT PRIMARY KEY, initiation_ms INTEGER NOT NULL,
                               channel TEXT, record TEXT NOT NULL);
        INSERT INTO contacts VALUES ('old', 5, 'VOICE', '{"ContactId":"old"}');
        """
    )
    db.commit()
    db.close()
    store = ContactStore(path)
    assert store.get("old") == {"ContactId": "old"}
    assert store.put(ctr("old", Version="2"), cursor=1)
    assert store.get("old")["Version"] == "2"  # type: ignore[index]
    store.close()


def test_record_cursors_of_a_journal_the_recorder_never_saw_are_forgotten(tmp_path: Path) -> None:
    store = ContactStore(tmp_path / "contacts.sqlite3")
    # written by the HTTP handler (cursor 7 of some journal) before the recorder ever ran
    assert store.put(ctr("c-1", Version="old"), cursor=7)
    assert store.consumer_position(CONSUMER, "journal-2") == 0
    assert store.put(ctr("c-1", Version="new"), cursor=1, consumer=CONSUMER)
    assert store.get("c-1")["Version"] == "new"  # type: ignore[index]
    assert store.consumer_position(CONSUMER, "journal-2") == 1
    fresh = ContactStore(tmp_path / "fresh.sqlite3")
    assert fresh.consumer_position(CONSUMER, "j") == 0  # a first start writes nothing
    fresh.advance(CONSUMER, 4)
    assert fresh.consumer_position(CONSUMER, "j") == 4
    fresh.close()
    store.close()
