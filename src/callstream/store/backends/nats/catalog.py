"""The stream catalog in a JetStream KV bucket: :class:`NatsCatalog`.

One key per stream (``s.<hex name>``: the :class:`StreamRecord` as JSON, with the stream's
wrapped data key) and one per producer lease (``l.<hex name>``). Every change is a
compare-and-set on the key's revision, so two nodes updating one stream at once cannot
both win: the loser gets :class:`VersionMismatch` (UpdateStream, DeleteStream) or retries
(leases). The KVS ``Version`` string is kept as KVS shows it; a new one is drawn with every
revision.

Reader slots stay per node (in memory): a stream may have ``limit`` GetMedia readers on
each node.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import nats.js.errors as js_errors

from callstream.kvs.model import InvalidValue, parse_stream_arn, stream_arn
from callstream.store.backends.nats import names
from callstream.store.base import (
    STREAM_NOT_FOUND,
    IntegrityError,
    InvalidArgument,
    NewStream,
    ProducerLease,
    ReaderKind,
    ReaderSlot,
    ReaderSlots,
    StoreError,
    StreamInUse,
    StreamLimitExceeded,
    StreamNotFound,
    StreamRecord,
    VersionMismatch,
    changed_stream,
    check_stream_changes,
    copy_stream,
    now_ms,
)
from callstream.store.crypto import RecordCipher, new_data_key, stream_key_ids

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from callstream.store.backends.nats.store import NatsStore

__all__ = ["NatsCatalog"]

_KEYCHECK = b"callstream/keycheck/v1"


def _encode(record: StreamRecord, master_key_id: str, wrapped: bytes) -> bytes:
    doc: dict[str, Any] = asdict(record)
    doc["master_key_id"] = master_key_id
    doc["wrapped_key"] = base64.b64encode(wrapped).decode("ascii")
    return json.dumps(doc, sort_keys=True).encode()


def _decode(raw: bytes | None) -> tuple[StreamRecord, str, bytes]:
    try:
        doc = json.loads(raw or b"")
        master_key_id = doc.pop("master_key_id")
        wrapped = base64.b64decode(doc.pop("wrapped_key"))
        return StreamRecord(**doc), master_key_id, wrapped
    except (ValueError, KeyError, TypeError) as err:
        raise StoreError(f"malformed stream entry in the NATS catalog: {err}") from None


class NatsCatalog:
    """:class:`~callstream.store.base.StreamCatalog` in the deployment's KV bucket."""

    def __init__(self, store: NatsStore) -> None:
        self._store = store
        self._ciphers: dict[str, RecordCipher] = {}
        self._readers = ReaderSlots()
        self._last_creation_ms = 0

    @property
    def _kv(self) -> KeyValue:
        return self._store.kv

    # --- entries ---------------------------------------------------------------------------
    async def _entry(self, name: str) -> tuple[StreamRecord, str, bytes, int]:
        """The stream named ``name`` with its key material and KV revision."""
        try:
            entry = await self._store.retrying(self._kv.get, names.stream_key(name))
        except js_errors.KeyNotFoundError:
            raise StreamNotFound(STREAM_NOT_FOUND) from None
        except js_errors.InvalidKeyError:
            raise StreamNotFound(STREAM_NOT_FOUND) from None
        record, master_key_id, wrapped = _decode(entry.value)
        return record, master_key_id, wrapped, int(entry.revision or 0)

    async def _find(
        self, name: str | None, arn: str | None
    ) -> tuple[StreamRecord, str, bytes, int]:
        if name is None and arn is None:
            raise InvalidArgument("StreamName or StreamARN is required")
        if arn is not None:
            try:
                arn_name = parse_stream_arn(arn).name
            except InvalidValue:
                raise StreamNotFound(STREAM_NOT_FOUND) from None
            if name is not None and name != arn_name:
                raise StreamNotFound(STREAM_NOT_FOUND)
            name = arn_name
        assert name is not None
        if not name or len(name) > 256:
            raise StreamNotFound(STREAM_NOT_FOUND)
        found = await self._entry(name)
        if arn is not None and found[0].arn != arn:
            raise StreamNotFound(STREAM_NOT_FOUND)
        return found

    async def cipher(self, stream: StreamRecord) -> RecordCipher:
        """The record cipher of ``stream`` (its data key, unwrapped once per node)."""
        cipher = self._ciphers.get(stream.arn)
        if cipher is None:
            _, master_key_id, wrapped, _ = await self._find(None, stream.arn)
            keyring = self._store.keyring
            data_key = await asyncio.to_thread(
                keyring.unwrap_data_key, master_key_id, wrapped, context=stream.arn
            )
            cipher = self._ciphers[stream.arn] = RecordCipher(data_key, stream.arn)
        return cipher

    async def _check_master_key(self, master_key_id: str, key: bytes) -> None:
        """Every node must hold the same master keys (the key file is copied to each):
        the first node to use a key records its fingerprint, the others compare."""
        mark = hmac.new(key, _KEYCHECK, hashlib.sha256).hexdigest()
        k = "k." + hashlib.sha256(master_key_id.encode()).hexdigest()[:32]
        try:
            await self._store.retrying(self._kv.create, k, mark.encode())
            return
        except js_errors.KeyWrongLastSequenceError:
            pass
        entry = await self._store.retrying(self._kv.get, k)
        if (entry.value or b"").decode() != mark:
            raise IntegrityError(
                f"master key {master_key_id!r} of this node's key file "
                f"({self._store.keyring.path}) differs from the one the other nodes use: "
                "copy the key file from a node that has it"
            )

    # --- streams -----------------------------------------------------------------------------
    async def create_stream(
        self,
        name: str,
        *,
        device_name: str | None,
        media_type: str | None,
        kms_key_id: str | None,
        data_retention_hours: int,
        tags: dict[str, str],
    ) -> StreamRecord:
        """A new ACTIVE stream: its catalog entry, then its fragment storage."""
        store = self._store
        new = NewStream.checked(
            name,
            device_name=device_name,
            media_type=media_type,
            kms_key_id=kms_key_id,
            data_retention_hours=data_retention_hours,
            tags=tags,
        )
        reported_kms, master_key_id = stream_key_ids(new.kms_key_id, store.region, store.account_id)
        count = len(await self._keys())
        if count >= store.max_streams:
            raise StreamLimitExceeded(f"the account already has {count} streams")
        with contextlib.suppress(StreamNotFound):
            await self._entry(name)
            raise StreamInUse(f"stream {name} already exists")
        master = await asyncio.to_thread(store.keyring.master_key, master_key_id)
        await self._check_master_key(master_key_id, master)
        creation_ms = self._last_creation_ms = max(now_ms(), self._last_creation_ms + 1)
        arn = stream_arn(store.region, store.account_id, name, creation_ms)
        data_key = new_data_key()
        wrapped = await asyncio.to_thread(
            store.keyring.wrap_data_key, master_key_id, data_key, context=arn
        )
        record = new.record(arn=arn, creation_time_ms=creation_ms, kms_key_id=reported_kms)
        # The fragment storage first: a catalog entry never points at nothing.
        await store.log.create_storage(record)
        try:
            await self._store.retrying(
                self._kv.create, names.stream_key(name), _encode(record, master_key_id, wrapped)
            )
        except js_errors.KeyWrongLastSequenceError:
            await store.log.delete_storage(record)
            raise StreamInUse(f"stream {name} already exists") from None
        self._ciphers[arn] = RecordCipher(data_key, arn)
        return copy_stream(record)

    async def get_stream(self, *, name: str | None = None, arn: str | None = None) -> StreamRecord:
        """The stream; :class:`StreamNotFound` when absent."""
        self._store.check_open()
        return (await self._find(name, arn))[0]

    async def _keys(self) -> list[str]:
        try:
            keys = await self._store.retrying(self._kv.keys)
        except js_errors.NoKeysError:
            return []
        return [k for k in keys if k.startswith("s.")]

    async def list_streams(
        self, *, prefix: str | None, after_name: str | None, limit: int
    ) -> list[StreamRecord]:
        """Streams ordered by name, names > ``after_name``, starting with ``prefix``."""
        if limit < 0:
            raise InvalidArgument("limit must be >= 0")
        self._store.check_open()
        wanted = sorted(
            n
            for n in map(names.name_of_key, await self._keys())
            if (prefix is None or n.startswith(prefix)) and (after_name is None or n > after_name)
        )
        out: list[StreamRecord] = []
        for name in wanted:
            if len(out) >= limit:
                break
            with contextlib.suppress(StreamNotFound):  # deleted meanwhile
                out.append((await self._entry(name))[0])
        return out

    async def update_stream(
        self, arn: str, current_version: str, **changes: object
    ) -> StreamRecord:
        """Apply ``changes`` if the version matches, as one compare-and-set."""
        check_stream_changes(changes)
        old, master_key_id, wrapped, revision = await self._find(None, arn)
        if old.version != current_version:
            raise VersionMismatch(f"stream version is not {current_version}")
        new = changed_stream(old, changes)
        try:
            await self._store.retrying(
                self._kv.update,
                names.stream_key(old.name),
                _encode(new, master_key_id, wrapped),
                last=revision,
            )
        except js_errors.KeyWrongLastSequenceError:
            raise VersionMismatch(f"stream version is not {current_version}") from None
        if new.data_retention_hours != old.data_retention_hours:
            await self._store.log.update_storage(new)
        return copy_stream(new)

    async def delete_stream(self, arn: str, current_version: str | None) -> None:
        """Delete the catalog entry (compare-and-set), then the fragments; the stream's
        live readers on every node end."""
        record, _, _, revision = await self._find(None, arn)
        if current_version is not None and record.version != current_version:
            raise VersionMismatch(f"stream version is not {current_version}")
        try:
            await self._store.retrying(
                self._kv.delete, names.stream_key(record.name), last=revision
            )
        except js_errors.KeyWrongLastSequenceError:
            if current_version is not None:
                raise VersionMismatch(f"stream version is not {current_version}") from None
            await self._store.retrying(self._kv.delete, names.stream_key(record.name))
        for key in (names.lease_key(record.name), names.reserve_key(record.name)):
            with contextlib.suppress(js_errors.Error):
                await self._store.retrying(self._kv.delete, key)
        await self._store.log.delete_storage(record)
        self._ciphers.pop(arn, None)
        self._readers.forget(arn)
        await self._store.relay.deleted(arn)

    # --- producers ---------------------------------------------------------------------------
    async def acquire_producer(self, arn: str) -> ProducerLease:
        """Take the stream's producer lease (a compare-and-set on its lease key)."""
        record = await self.get_stream(arn=arn)
        key = names.lease_key(record.name)
        while True:
            token, last_ns, revision = await self._lease(key, arn)
            value = json.dumps({"arn": arn, "token": token + 1, "last_ns": last_ns}).encode()
            try:
                if revision:
                    await self._store.retrying(self._kv.update, key, value, last=revision)
                else:
                    await self._store.retrying(self._kv.create, key, value)
            except js_errors.KeyWrongLastSequenceError:
                continue  # another node took it meanwhile: take it from that one
            if token:  # an upload may be running on another node: it ends
                await self._store.relay.superseding(arn, token + 1)
            return ProducerLease(arn, token + 1, last_ns)

    async def _lease(self, key: str, arn: str) -> tuple[int, int | None, int]:
        """``(token, last frame ns, revision)`` of the lease (zeros when there is none)."""
        try:
            entry = await self._store.retrying(self._kv.get, key)
        except js_errors.KeyNotFoundError:
            return 0, None, 0
        doc = json.loads(entry.value or b"{}")
        if doc.get("arn") != arn:  # a deleted stream's, of the same name
            return 0, None, int(entry.revision or 0)
        return int(doc["token"]), doc.get("last_ns"), int(entry.revision or 0)

    async def release_producer(self, lease: ProducerLease, last_timestamp_ns: int | None) -> bool:
        """Give the lease back, recording the last frame stored under it; False when a
        newer lease (on any node) took the stream meanwhile or it was deleted."""
        try:
            record = await self.get_stream(arn=lease.stream_arn)
        except StoreError:
            return False
        key = names.lease_key(record.name)
        while True:
            token, _, revision = await self._lease(key, lease.stream_arn)
            if token != lease.token:
                return False
            if last_timestamp_ns is None:
                return True
            value = json.dumps(
                {"arn": lease.stream_arn, "token": token, "last_ns": last_timestamp_ns}
            ).encode()
            try:
                await self._store.retrying(self._kv.update, key, value, last=revision)
            except js_errors.KeyWrongLastSequenceError:
                continue
            return True

    # --- readers (per node) ------------------------------------------------------------------
    async def acquire_reader(self, arn: str, kind: ReaderKind, limit: int) -> ReaderSlot:
        """A reader slot of this node, or :class:`ReaderLimitExceeded`."""
        return await self._readers.acquire(self, arn, kind, limit)

    async def release_reader(self, slot: ReaderSlot) -> None:
        """Give a reader slot back (idempotent)."""
        self._readers.release(slot)
