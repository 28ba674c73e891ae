"""The call-event bus across a cluster: every node's bus holds every node's events.

Each ``callstream serve`` node keeps its own event journal (:mod:`callstream.events.bus`).
With the NATS store, :class:`ClusterEvents` joins them:

* the **outbox** publishes every event of this node's bus that was published here (no
  :class:`~callstream.events.types.Origin`) to the JetStream stream ``<prefix>_events``,
  subject ``<prefix>.events.<node>``, message id ``<node>.<cursor>``;
* the **inbox** (an ordered JetStream consumer from the last message it imported) takes
  the other nodes' events from it and publishes them into this node's bus with their
  Origin.

So ``GET /callstream/events``, the SSE stream and the contact records on any node see the
whole cluster's calls, in the order each node published its own, while what acts on a
call (analytics, webhooks: subscribers with ``EventFilter(local=True)``) acts on the node
that has it. Cursors stay per node; an event's EventBridge ``id``
(``callstream-<node>-<cursor>``) is the same on every node.

Exactly once: the outbox publishes one event at a time, each acknowledged by JetStream
before the next (so a node's events are in the stream in its order), and resends from its
last saved cursor after a restart (JetStream drops a repeat within its duplicate window).
The inbox reads the stream strictly in order from the last message it imported and skips
an event whose origin cursor it already holds. What it holds (per origin node, the last
origin cursor; the last stream message) is saved only once the batch is durable in the
journal, with the local cursor it is true at; on start the journal after that cursor is
read back, so a batch journaled before a crash is not imported twice. A journal made anew
gives the node a new id, so its restarted cursors are not taken for repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors as js_errors
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from callstream.durable import replace_file
from callstream.events.bus import EventBus, EventBusError
from callstream.events.types import Event, EventError, EventFilter, Origin, decode, encode

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from callstream.store.backends.nats.store import NatsStore

__all__ = ["ClusterEvents", "RelayState", "events_stream", "events_subject"]

log = logging.getLogger("callstream.events")

NODE_HEADER = "Callstream-Node"
CURSOR_HEADER = "Callstream-Cursor"
MAX_AGE_S = 7 * 24 * 3600.0
"""How long the cluster keeps events (the journal's default retention)."""
DUPLICATE_WINDOW_S = 600.0
BATCH = 256
RETRY_S = 1.0
SAVE_EVERY_S = 1.0
DRAIN_S = 5.0
DRAIN_POLL_S = 0.05
"""How long closing waits for the outbox to publish what this node published before it
(calls ended by the shutdown); what is left then goes out at the node's next start."""


def events_stream(prefix: str) -> str:
    return f"{prefix}_events"


def events_subject(prefix: str, node: str = "*") -> str:
    return f"{prefix}.events.{node}"


@dataclass
class RelayState:
    """What the relay of one node keeps in ``<data dir>/cluster-events.json``."""

    node: str
    journal_id: str = ""
    """The journal the cursors below count in (a new journal: a new node id)."""
    sent: int = 0
    """The last local cursor the outbox had acknowledged by JetStream."""
    checkpoint: int = 0
    """The local cursor up to which :attr:`imported` is known to be complete."""
    imported: dict[str, int] = field(default_factory=dict)
    """Per origin node, the last origin cursor imported into this node's bus."""
    stream_seq: int = 0
    """The last message of the cluster's event stream imported (durable in the journal)."""

    @classmethod
    def load(cls, path: Path, *, journal_id: str, journal_head: int) -> RelayState:
        """The saved state, or a new node id (outbox from the journal's head: events
        from before the node joined a cluster stay on it). A journal made anew since
        gets a new node id too: its cursors start again, and the cluster must not take
        them for repeats of the old ones."""
        try:
            raw = json.loads(path.read_text())
            state = cls(
                node=str(raw["node"]),
                journal_id=str(raw.get("journal_id", journal_id)),
                sent=int(raw["sent"]),
                checkpoint=int(raw["checkpoint"]),
                imported={str(k): int(v) for k, v in raw["imported"].items()},
                stream_seq=int(raw.get("stream_seq", 0)),
            )
        except FileNotFoundError:
            state = cls(node="")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: not a cluster-events state file ({err})") from None
        if not state.node or state.journal_id != journal_id:
            state = cls(
                node=secrets.token_hex(6),
                journal_id=journal_id,
                sent=journal_head,
                checkpoint=0,  # imports in the journal are read back from its start
                imported=state.imported,
                stream_seq=state.stream_seq,
            )
            state.save(path)
        return state

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, fsync, rename)."""
        body = json.dumps(
            {
                "node": self.node,
                "journal_id": self.journal_id,
                "sent": self.sent,
                "checkpoint": self.checkpoint,
                "imported": self.imported,
                "stream_seq": self.stream_seq,
            }
        ).encode()
        replace_file(path, body, mode=0o600)


class ClusterEvents:
    """Relays ``bus`` to and from the other nodes of ``store``'s cluster (see the module
    docstring). :meth:`start`, then :meth:`close`."""

    def __init__(self, store: NatsStore, bus: EventBus, state_path: Path) -> None:
        self.store = store
        self.bus = bus
        self.state_path = state_path
        self.state = RelayState.load(
            state_path, journal_id=bus.journal_id, journal_head=bus.last_cursor
        )
        self.node = self.state.node
        self.sent = 0
        """Events this node published to the cluster since start."""
        self.imported = 0
        """Events of other nodes imported into this node's bus since start."""
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox_sub: Any = None
        self._psub: Any = None  # the inbox's subscription
        self._closed = False
        self._drain_to: int | None = None
        """Closing: the outbox ends once it has passed this bus cursor."""
        self._saving = asyncio.Lock()
        self._too_big_warned = False

    @property
    def stream(self) -> str:
        return events_stream(self.store.prefix)

    async def start(self) -> None:
        """Create the cluster's event stream if needed, catch up with the journal, and
        start the outbox and the inbox."""
        self.bus.node = self.node
        await self.store.retrying(self._ensure_stream)
        await asyncio.to_thread(self._catch_up)
        self._tasks = [
            asyncio.create_task(self._outbox(), name="callstream-cluster-outbox"),
            asyncio.create_task(self._inbox(), name="callstream-cluster-inbox"),
        ]

    async def close(self) -> None:
        """Publish what is still in the outbox (for at most :data:`DRAIN_S`), stop
        relaying and save the state."""
        drain_to = self._drain_to = self.bus.published_cursor
        if self._tasks:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DRAIN_S):
                    await self.bus.committed(drain_to)  # handed to the outbox
                    await asyncio.shield(self._tasks[0])
        self._closed = True
        if self._outbox_sub is not None:
            self._outbox_sub.end()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._psub is not None:  # it would hold up the store's drain
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()
        await self._save()

    # --- setup ----------------------------------------------------------------------------

    async def _ensure_stream(self) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[events_subject(self.store.prefix)],
            storage=StorageType.FILE,
            num_replicas=self.store.replicas,
            max_age=MAX_AGE_S,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        try:
            await self.store.js.add_stream(config)
        except js_errors.APIError as err:
            if err.err_code != 10058:  # created by another node meanwhile (its settings win)
                raise

    def _catch_up(self) -> None:
        """Read the journal after the checkpoint: imports it holds that the state file
        does not know yet (a crash between journaling and saving)."""
        state, journal = self.state, self.bus.journal
        head = self.bus.last_cursor
        after = state.checkpoint
        while after < head:
            found, scanned_to = journal.read(
                after, head, want=lambda e: e.origin is not None, max_events=4096
            )
            for event, _ in found:
                if event.origin is not None:
                    known = state.imported.get(event.origin.node, 0)
                    state.imported[event.origin.node] = max(known, event.origin.cursor)
            if scanned_to <= after:
                break
            after = scanned_to
        state.checkpoint = head

    async def _save(self) -> None:
        async with self._saving:
            await asyncio.to_thread(self.state.save, self.state_path)

    # --- this node's events -> the cluster --------------------------------------------------

    async def _outbox(self) -> None:
        subject = events_subject(self.store.prefix, self.node)
        unsaved = False
        async with self.bus.subscribe(EventFilter(local=True), self.state.sent) as sub:
            self._outbox_sub = sub
            while not self._closed:
                drain_to = self._drain_to
                event = await sub.next(SAVE_EVERY_S if drain_to is None else DRAIN_POLL_S)
                if event is None:
                    if sub.ended or (drain_to is not None and sub.cursor >= drain_to):
                        self.state.sent = max(self.state.sent, sub.cursor)
                        break
                    if unsaved:
                        self.state.sent = max(self.state.sent, sub.cursor)
                        await self._save()
                        unsaved = False
                    continue
                await self._publish(subject, event)
                self.state.sent = event.cursor
                self.sent += 1
                unsaved = True

    async def _publish(self, subject: str, event: Event) -> None:
        payload = encode(event)
        if len(payload) > self.store.max_payload:
            if not self._too_big_warned:
                self._too_big_warned = True
                log.warning(
                    "cluster events: %s at cursor %d is %d bytes, more than NATS max_payload "
                    "(%d): kept on this node only (raise max_payload on the NATS servers)",
                    event.type,
                    event.cursor,
                    len(payload),
                    self.store.max_payload,
                )
            return
        headers = {
            "Nats-Msg-Id": f"{self.node}.{event.cursor}",
            NODE_HEADER: self.node,
            CURSOR_HEADER: str(event.cursor),
        }
        while not self._closed:
            try:
                await self.store.retrying(self.store.js.publish, subject, payload, headers=headers)
                return
            except Exception as err:  # NATS down longer than a fail-over: keep trying
                log.warning("cluster events: cannot publish (%s); retrying", err)
                await asyncio.sleep(RETRY_S)

    # --- the other nodes' events -> this node -----------------------------------------------

    async def _inbox(self) -> None:
        # An ordered consumer from the last message imported: strictly in stream order
        # (each node's events in the order it published them), re-created by nats-py on a
        # gap; the state file, saved once a batch is durable, stands in for acks.
        sub = None
        while not self._closed:
            try:
                if sub is None:
                    after = self.state.stream_seq
                    sub = self._psub = await self.store.js.subscribe(
                        events_subject(self.store.prefix),
                        stream=self.stream,
                        ordered_consumer=True,
                        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else None,
                        config=ConsumerConfig(opt_start_seq=after + 1) if after else None,
                    )
                try:
                    msgs = [await sub.next_msg(timeout=SAVE_EVERY_S)]
                except nats.errors.TimeoutError:
                    continue
                while sub.pending_msgs and len(msgs) < BATCH:
                    msgs.append(await sub.next_msg(timeout=SAVE_EVERY_S))
                await self._import(msgs)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self._closed:
                    return
                log.warning("cluster events: cannot read the cluster's events (%s); retrying", err)
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                sub = None  # again from the last message imported
                await asyncio.sleep(RETRY_S)

    async def _import(self, msgs: list[Msg]) -> None:
        """Publish the batch's new events into the bus; the state moves on only once they
        are durable there."""
        state = self.state
        taken: dict[str, int] = {}
        last = 0
        for msg in msgs:
            event = self._relayed(msg)
            if event is None or event.origin is None:
                continue
            node, cursor = event.origin.node, event.origin.cursor
            if node == self.node or cursor <= taken.get(node, state.imported.get(node, 0)):
                continue
            while not self._closed:
                try:
                    last = self.bus.publish(event)
                    break
                except EventError as err:  # a newer node's event this version cannot keep
                    log.warning(
                        "cluster events: %s from node %s dropped: %s", event.type, node, err
                    )
                    break
                except EventBusError:  # the journal is behind: wait (nothing is acked)
                    await asyncio.sleep(RETRY_S)
            taken[node] = cursor
            self.imported += 1
        if last:
            await self.bus.committed(last)
        state.imported.update(taken)
        state.stream_seq = max(state.stream_seq, msgs[-1].metadata.sequence.stream)
        if last:
            state.checkpoint = max(state.checkpoint, last)
        await self._save()

    def _relayed(self, msg: Msg) -> Event | None:
        headers = msg.headers or {}
        try:
            origin = Origin(headers[NODE_HEADER], int(headers[CURSOR_HEADER]))
            return decode(json.loads(msg.data)).relayed(origin)
        except (KeyError, ValueError, EventError) as err:
            log.warning("cluster events: a message on %s is not an event (%s)", msg.subject, err)
            return None
