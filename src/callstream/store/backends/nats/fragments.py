"""Fragments as JetStream messages: :class:`NatsLog`.

Each KVS stream has a JetStream stream of its own (file storage, ``replicas`` copies,
``max_age`` = the stream's retention, so JetStream expires fragments itself), and each
fragment is one message on its subject:

* payload: the fragment's sealed record, exactly as the embedded store writes it to its
  files (:func:`~callstream.store.backends.embedded.records.seal_record`: AES-256-GCM under
  the stream's data key, bound to the stream ARN and fragment number) -- JetStream holds
  ciphertext only;
* headers: the index entry (``Cs-Number``, ``Cs-Server-Ms``, ``Cs-Producer-Ms``,
  ``Cs-Duration-Ms``, ``Cs-Timecode``, ``Cs-Size``) and ``Nats-Msg-Id`` = the fragment
  number, so a publish retried after a lost acknowledgement is stored once.

A record larger than the servers' ``max_payload`` goes in parts: the first parts carry
only ``Cs-Part``; the last carries the index headers and ``Cs-Parts``, the sequences of
the parts before it.

Fragment numbers keep the KVS layout (:mod:`callstream.store.numbers`); their sequence
field is the JetStream sequence the fragment is expected to get (the stream's last
sequence + 1 when the producer's node first numbers a fragment of the stream, counting
up from there). Each node keeps an index (number -> JetStream sequence and the index
entry) of the streams it uses, brought up to date from the stream's last sequence before
a query, so gaps (fragments numbered but dropped, parts) do not matter and reads on any
node see every fragment JetStream acknowledged.

A fragment is acknowledged (``append`` returns, and the producer gets PERSISTED) only
once JetStream acknowledged the publish: with replicas, once a majority stored it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import nats.errors
import nats.js.errors as js_errors
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from callstream.store.backends.embedded.memory import MEMORY_BUFFER_MS
from callstream.store.backends.embedded.records import (
    RECORD_HEADER_SIZE,
    open_record,
    seal_record,
)
from callstream.store.backends.nats import names
from callstream.store.base import (
    STREAM_NOT_FOUND,
    FragmentAppend,
    FragmentData,
    FragmentNotFound,
    FragmentRecord,
    InvalidArgument,
    StoreError,
    StreamNotFound,
    StreamRecord,
)
from callstream.store.numbers import (
    check_server_timestamp,
    make_fragment_number,
    parse_fragment_number,
)

if TYPE_CHECKING:
    from callstream.store.backends.nats.store import NatsStore

__all__ = ["PUBLISH_DEADLINE_S", "RESERVE_BLOCK", "NatsLog"]

log = logging.getLogger("callstream.store.nats")

PUBLISH_DEADLINE_S = 30.0
"""How long an append keeps retrying (a NATS node fails over, the connection moves to
another server) before the fragment is reported as not stored."""
RESERVE_BLOCK = 64
"""Fragment sequences a node reserves at a time."""
_ATTEMPT_TIMEOUT_S = 3.0
_PART_HEADROOM = 1024  # headers of a part message
_GET_WINDOW = 32  # index look-ups in flight at once
_INDEX_IDLE_S = 600.0  # a node forgets the index of a stream it has not used for this long


def _retention_s(record: StreamRecord) -> float:
    hours = record.data_retention_hours
    return hours * 3600.0 if hours > 0 else MEMORY_BUFFER_MS / 1000.0


@dataclass(slots=True)
class _Index:
    """One node's index of one stream: records in sequence order."""

    seqs: list[int] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    records: list[FragmentRecord] = field(default_factory=list)
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)  # number -> part seqs
    scanned: int = 0  # every sequence up to this one is indexed
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    used: float = field(default_factory=time.monotonic)
    next_seq: int | None = None  # allocation counter (the producer's node)
    reserved: int = 0  # sequences up to this one are reserved for this node

    def add(self, seq: int, rec: FragmentRecord, parts: tuple[int, ...]) -> None:
        if rec.fragment_number in self.parts:
            return
        if self.numbers and rec.fragment_number < self.numbers[-1]:
            at = bisect.bisect(self.numbers, rec.fragment_number)
        else:
            at = len(self.numbers)
        self.seqs.insert(at, seq)
        self.numbers.insert(at, rec.fragment_number)
        self.records.insert(at, rec)
        self.parts[rec.fragment_number] = (*parts, seq)

    def expire(self, first_seq: int) -> None:
        """Forget fragments JetStream no longer has (older than ``first_seq``)."""
        if not self.seqs or self.seqs[0] >= first_seq:
            return
        keep = [i for i, s in enumerate(self.seqs) if s >= first_seq]
        for i in range(len(self.seqs)):
            if self.seqs[i] < first_seq:
                self.parts.pop(self.numbers[i], None)
        self.seqs = [self.seqs[i] for i in keep]
        self.numbers = [self.numbers[i] for i in keep]
        self.records = [self.records[i] for i in keep]


def _record_from_headers(
    arn: str, headers: dict[str, str]
) -> tuple[FragmentRecord, tuple[int, ...]] | None:
    number = headers.get("Cs-Number")
    if number is None:
        return None  # a part of a larger fragment
    parts = tuple(int(s) for s in headers.get("Cs-Parts", "").split(",") if s)
    rec = FragmentRecord(
        stream_arn=arn,
        fragment_number=number,
        server_timestamp_ms=int(headers["Cs-Server-Ms"]),
        producer_timestamp_ms=int(headers["Cs-Producer-Ms"]),
        duration_ms=int(headers["Cs-Duration-Ms"]),
        size=int(headers["Cs-Size"]),
        cluster_timecode=int(headers["Cs-Timecode"]),
    )
    return rec, parts


class NatsLog:
    """:class:`~callstream.store.base.FragmentLog` on JetStream (see the module docstring)."""

    def __init__(self, store: NatsStore) -> None:
        self._store = store
        self._indexes: dict[str, _Index] = {}
        self._appended: dict[str, asyncio.Event] = {}  # arn -> set on each local append
        self._stream_locks: dict[str, asyncio.Lock] = {}

    # --- storage of a stream (the catalog's calls) -------------------------------------------
    def _config(self, record: StreamRecord) -> StreamConfig:
        store = self._store
        return StreamConfig(
            name=names.js_stream(store.prefix, record.arn),
            subjects=[names.fragment_subject(store.prefix, record.arn)],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=store.replicas,
            max_age=_retention_s(record),
            discard=DiscardPolicy.OLD,
            duplicate_window=120.0,
        )

    async def create_storage(self, record: StreamRecord) -> None:
        """Create the JetStream stream of a new KVS stream."""
        try:
            await self._store.retrying(self._store.js.add_stream, self._config(record))
        except js_errors.APIError as err:
            raise StoreError(f"cannot create the JetStream stream: {err.description}") from None

    async def update_storage(self, record: StreamRecord) -> None:
        """The stream's retention changed: JetStream's ``max_age`` follows."""
        try:
            await self._store.retrying(self._store.js.update_stream, self._config(record))
        except js_errors.APIError as err:
            raise StoreError(f"cannot update the JetStream stream: {err.description}") from None

    async def delete_storage(self, record: StreamRecord) -> None:
        """Delete the stream's fragments (its JetStream stream)."""
        with contextlib.suppress(js_errors.NotFoundError):
            await self._store.retrying(
                self._store.js.delete_stream, names.js_stream(self._store.prefix, record.arn)
            )
        self._indexes.pop(record.arn, None)
        self._stream_locks.pop(record.arn, None)
        event = self._appended.pop(record.arn, None)
        if event is not None:
            event.set()

    # --- the index ---------------------------------------------------------------------------
    async def _index(self, stream: StreamRecord) -> _Index:
        """The stream's index, brought up to date with JetStream."""
        index = self._indexes.get(stream.arn)
        if index is None:
            index = self._indexes[stream.arn] = _Index()
        index.used = time.monotonic()
        async with index.lock:
            js = self._store.js
            name = names.js_stream(self._store.prefix, stream.arn)
            try:
                info = await self._store.retrying(js.stream_info, name)
            except js_errors.NotFoundError:
                self._indexes.pop(stream.arn, None)
                raise StreamNotFound(STREAM_NOT_FOUND) from None
            state = info.state
            first, last = int(state.first_seq or 0), int(state.last_seq or 0)
            index.expire(first)
            start = max(index.scanned + 1, first)
            for low in range(start, last + 1, _GET_WINDOW):
                seqs = range(low, min(last, low + _GET_WINDOW - 1) + 1)
                msgs = await asyncio.gather(
                    *(self._get(name, s) for s in seqs), return_exceptions=True
                )
                for seq, msg in zip(seqs, msgs, strict=True):
                    if isinstance(msg, js_errors.NotFoundError):
                        continue  # deleted or expired meanwhile
                    if isinstance(msg, BaseException):
                        raise StoreError(f"cannot read the fragment index: {msg!r}") from None
                    found = _record_from_headers(stream.arn, msg)
                    if found is not None:
                        index.add(seq, *found)
                index.scanned = seqs[-1]
            index.scanned = max(index.scanned, last)
        return index

    async def _get(self, name: str, seq: int) -> dict[str, str]:
        msg = await self._store.retrying(self._store.js.get_msg, name, seq)
        return dict(msg.headers or {})

    def forget_idle(self, now: float) -> None:
        """Drop indexes of streams this node has not used for a while."""
        for arn, index in list(self._indexes.items()):
            if now - index.used > _INDEX_IDLE_S and not index.lock.locked():
                del self._indexes[arn]

    # --- FragmentLog -------------------------------------------------------------------------
    async def allocate(self, stream: StreamRecord, server_timestamp_ms: int) -> str:
        """The stream's next fragment number (see the module docstring)."""
        self._store.check_open()
        check_server_timestamp(server_timestamp_ms)
        index = self._indexes.get(stream.arn)
        if index is None or index.next_seq is None or index.next_seq > index.reserved:
            index = await self._index(stream)
            async with index.lock:
                if index.next_seq is None or index.next_seq > index.reserved:
                    await self._reserve(stream, index)
        assert index.next_seq is not None
        seq = index.next_seq
        index.next_seq += 1
        return make_fragment_number(seq, server_timestamp_ms)

    async def _reserve(self, stream: StreamRecord, index: _Index) -> None:
        """Reserve the next :data:`RESERVE_BLOCK` sequences of the stream for this node
        (compare-and-set in the catalog bucket), so that numbers are never issued twice,
        also when a node restarts or the producer moves to another node."""
        kv = self._store.kv
        key = names.reserve_key(stream.name)
        newest = parse_fragment_number(index.numbers[-1])[0] if index.numbers else 0
        while True:
            reserved, revision = 0, 0
            try:
                entry = await self._store.retrying(kv.get, key)
                doc = json.loads(entry.value or b"{}")
                revision = int(entry.revision or 0)
                if doc.get("arn") == stream.arn:
                    reserved = int(doc["upto"])
            except js_errors.KeyNotFoundError:
                pass
            base = max(reserved, index.scanned, newest, (index.next_seq or 1) - 1)
            value = json.dumps({"arn": stream.arn, "upto": base + RESERVE_BLOCK}).encode()
            try:
                if revision:
                    await self._store.retrying(kv.update, key, value, last=revision)
                else:
                    await self._store.retrying(kv.create, key, value)
            except js_errors.KeyWrongLastSequenceError:
                continue
            index.next_seq = base + 1
            index.reserved = base + RESERVE_BLOCK
            return

    async def append(self, items: Sequence[FragmentAppend]) -> list[FragmentRecord | StoreError]:
        """Publish each fragment and wait for JetStream's acknowledgement (fragments of
        one stream in order, streams side by side)."""
        self._store.check_open()
        by_stream: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            by_stream.setdefault(it.stream.arn, []).append(i)
        results: list[FragmentRecord | StoreError] = [StoreError("not stored")] * len(items)

        async def run(indices: list[int]) -> None:
            arn = items[indices[0]].stream.arn
            lock = self._stream_locks.setdefault(arn, asyncio.Lock())
            async with lock:
                for i in indices:
                    try:
                        results[i] = await self._append_one(items[i])
                    except StoreError as err:
                        results[i] = err

        await asyncio.gather(*(run(ix) for ix in by_stream.values()))
        return results

    async def _append_one(self, item: FragmentAppend) -> FragmentRecord:
        stream = item.stream
        number = item.fragment_number
        parse_fragment_number(number)
        index = self._indexes.get(stream.arn)
        if index is not None and number in index.parts:
            raise InvalidArgument(f"fragment number {number} is already stored")
        cipher = await self._store.catalog.cipher(stream)
        record = seal_record(cipher, number, item.data)
        rec = item.record()
        subject = names.fragment_subject(self._store.prefix, stream.arn)
        limit = max(4096, self._store.max_payload - _PART_HEADROOM)
        pieces = [record[i : i + limit] for i in range(0, len(record), limit)] or [b""]
        part_seqs: list[int] = []
        for k, piece in enumerate(pieces[:-1]):
            ack_seq, _ = await self._publish(
                subject, piece, {"Nats-Msg-Id": f"{number}.{k}", "Cs-Part": str(k)}
            )
            part_seqs.append(ack_seq)
        headers = {
            "Nats-Msg-Id": number,
            "Cs-Number": number,
            "Cs-Server-Ms": str(rec.server_timestamp_ms),
            "Cs-Producer-Ms": str(rec.producer_timestamp_ms),
            "Cs-Duration-Ms": str(rec.duration_ms),
            "Cs-Timecode": str(rec.cluster_timecode),
            "Cs-Size": str(rec.size),
        }
        if part_seqs:
            headers["Cs-Parts"] = ",".join(map(str, part_seqs))
        seq, duplicate = await self._publish(subject, pieces[-1], headers)
        if duplicate == "first":
            raise InvalidArgument(f"fragment number {number} is already stored")
        index = self._indexes.get(stream.arn)
        if index is not None:
            index.add(seq, rec, tuple(part_seqs))
            if index.scanned == seq - 1 - len(part_seqs) or index.scanned == seq - 1:
                index.scanned = seq
        event = self._appended.get(stream.arn)
        if event is not None:
            event.set()
        return rec

    async def _publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None]:
        """Publish until JetStream acknowledges (retrying through fail-overs with the same
        message id); ``(sequence, "first" if the first attempt was a duplicate)``."""
        js = self._store.js
        deadline = time.monotonic() + PUBLISH_DEADLINE_S
        attempt = 0
        while True:
            attempt += 1
            try:
                ack = await js.publish(
                    subject, payload, timeout=_ATTEMPT_TIMEOUT_S, headers=headers
                )
            except js_errors.APIError as err:
                if err.code == 503 and time.monotonic() < deadline:  # no leader yet
                    await asyncio.sleep(0.25)
                    continue
                if err.err_code == 10060:  # wrong expected stream: it was deleted
                    raise StreamNotFound(STREAM_NOT_FOUND) from None
                raise StoreError(f"JetStream refused the fragment: {err.description}") from None
            except (
                TimeoutError,
                nats.errors.TimeoutError,
                nats.errors.NoRespondersError,
                nats.errors.ConnectionClosedError,
                js_errors.NoStreamResponseError,
            ) as err:
                if self._store.closed:
                    raise StoreError("the store is closed") from None
                if isinstance(err, js_errors.NoStreamResponseError) and attempt > 1:
                    # nobody listens on the subject: the stream was deleted (or the whole
                    # cluster is down); keep trying only while the deadline allows
                    pass
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"JetStream did not acknowledge the fragment within "
                        f"{PUBLISH_DEADLINE_S:.0f} s"
                    ) from None
                await asyncio.sleep(0.1 if attempt < 5 else 0.5)
                continue
            duplicate = "first" if ack.duplicate and attempt == 1 else None
            return int(ack.seq), duplicate

    async def read(self, stream: StreamRecord, fragment_number: str) -> FragmentData:
        """One fragment's bytes (decrypted and verified)."""
        parse_fragment_number(fragment_number)
        index = self._indexes.get(stream.arn)
        if index is None or fragment_number not in index.parts:
            index = await self._index(stream)
        seqs = index.parts.get(fragment_number)
        if seqs is None:
            raise FragmentNotFound(f"no fragment {fragment_number}")
        name = names.js_stream(self._store.prefix, stream.arn)
        try:
            msgs = [await self._store.retrying(self._store.js.get_msg, name, s) for s in seqs]
        except js_errors.NotFoundError:
            raise FragmentNotFound(f"no fragment {fragment_number} (expired)") from None
        raw = b"".join(m.data or b"" for m in msgs)
        if len(raw) < RECORD_HEADER_SIZE:
            raise FragmentNotFound(f"no fragment {fragment_number}")
        cipher = await self._store.catalog.cipher(stream)
        return open_record(cipher, fragment_number, raw, len(raw))

    async def range(
        self,
        stream: StreamRecord,
        *,
        after_number: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        by: Literal["server", "producer"] = "server",
        limit: int | None = None,
    ) -> list[FragmentRecord]:
        """Fragments in number order, filtered as :meth:`FragmentLog.range` says."""
        if after_number is not None:
            parse_fragment_number(after_number)
        if limit is not None and limit <= 0:
            return []
        index = await self._index(stream)
        at = 0 if after_number is None else bisect.bisect_right(index.numbers, after_number)
        out: list[FragmentRecord] = []
        producer = by == "producer"
        for rec in index.records[at:]:
            ts = rec.producer_timestamp_ms if producer else rec.server_timestamp_ms
            if (start_ms is not None and ts < start_ms) or (end_ms is not None and ts > end_ms):
                continue
            out.append(rec)
            if limit is not None and len(out) >= limit:
                break
        return out

    async def last(self, stream: StreamRecord) -> FragmentRecord | None:
        """The stream's newest fragment."""
        index = await self._index(stream)
        return index.records[-1] if index.records else None

    def subscribe(
        self, stream: StreamRecord, after_number: str | None
    ) -> AsyncIterator[FragmentRecord]:
        """Every fragment numbered above ``after_number``, stored ones first, then each as
        it is appended (on any node); ends when the stream is deleted."""
        if after_number is not None:
            parse_fragment_number(after_number)
        return self._follow(stream, after_number)

    async def _follow(
        self, stream: StreamRecord, after_number: str | None
    ) -> AsyncIterator[FragmentRecord]:
        last = after_number
        event = self._appended.setdefault(stream.arn, asyncio.Event())
        while not self._store.closed:
            event.clear()
            try:
                records = await self.range(stream, after_number=last, limit=64)
                if not records:
                    await self._store.catalog.get_stream(arn=stream.arn)
            except StreamNotFound:
                return
            except StoreError:
                if self._store.closed:
                    return
                raise
            for rec in records:
                last = rec.fragment_number
                yield rec
            if not records:
                # Appends on this node wake us at once; other nodes' are polled for.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await event.wait()
                event = self._appended.setdefault(stream.arn, event)

    async def reap(self, now_ms: int) -> int:
        """Delete fragments whose server timestamp is older than ``now_ms`` minus their
        stream's retention (retention 0: the 5-minute host buffer); returns the bytes
        freed. (JetStream's ``max_age`` expires them too, by arrival time: this is the
        exact rule, and the one that runs when clocks are set in tests.) Any node may
        reap; purging twice is harmless."""
        self.forget_idle(time.monotonic())
        freed = 0
        streams = await self._store.catalog.list_streams(
            prefix=None, after_name=None, limit=1 << 30
        )
        for stream in streams:
            try:
                freed += await self._reap_stream(stream, now_ms)
            except StreamNotFound:
                continue
            except StoreError as err:
                log.warning("reaping %s failed: %s", stream.arn, err.message)
        return freed

    async def _reap_stream(self, stream: StreamRecord, now_ms: int) -> int:
        """Purge the stream's fragments older than the cutoff, walking from its first
        message (no index needed: every node reaps every stream at little cost)."""
        cutoff = now_ms - int(_retention_s(stream) * 1000)
        js = self._store.js
        name = names.js_stream(self._store.prefix, stream.arn)
        # The raw STREAM.INFO answer: nats-py's StreamState leaves out first_ts.
        reply = await self._store.retrying(
            self._store.nc.request, f"$JS.API.STREAM.INFO.{name}", b"", timeout=5.0
        )
        doc = json.loads(reply.data)
        if "error" in doc:
            if doc["error"].get("code") == 404:
                raise StreamNotFound(STREAM_NOT_FOUND)
            raise StoreError(f"cannot read the stream: {doc['error'].get('description')}")
        state = doc.get("state", {})
        first, last = int(state.get("first_seq", 0)), int(state.get("last_seq", 0))
        if not state.get("messages"):
            return 0
        first_ms = _iso_ms(str(state.get("first_ts", "")))
        real_clock = abs(now_ms - time.time_ns() // 1_000_000) < 60_000
        if real_clock and first_ms is not None and first_ms >= cutoff:
            # A server timestamp is never after the fragment reached JetStream (arrival
            # times are on the real clock: the shortcut holds when the reaper runs on it).
            return 0
        upto = 0
        freed = 0
        seq = first
        while seq <= last:
            try:
                headers = await self._get(name, seq)
            except js_errors.NotFoundError:
                seq += 1
                continue
            found = _record_from_headers(stream.arn, headers)
            if found is not None:
                rec = found[0]
                if rec.server_timestamp_ms >= cutoff:
                    break
                upto = seq + 1
                freed += rec.size
            seq += 1
        if not upto:
            return 0
        try:
            await self._store.retrying(js.purge_stream, name, seq=upto)
        except js_errors.NotFoundError:
            raise StreamNotFound(STREAM_NOT_FOUND) from None
        except js_errors.APIError as err:
            raise StoreError(f"cannot purge: {err.description}") from None
        index = self._indexes.get(stream.arn)
        if index is not None:
            async with index.lock:
                index.expire(upto)
        return freed


def _iso_ms(text: str) -> int | None:
    """Epoch ms of a JetStream RFC 3339 timestamp (nanosecond fractions), or None."""
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        base = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None
    ms = int((frac + "000")[:3]) if frac.isdigit() else 0
    return int(base.timestamp()) * 1000 + ms
