"""The media store's backend contract.

A backend is two things (:class:`StoreBackend`), each an async protocol a second
implementation (NATS JetStream) can provide without the rest of callstream changing:

* :class:`StreamCatalog` -- names, versions, tags, retention, keys, and the state
  producers and readers of a stream share (the producer lease with the last frame's
  timestamp, reader slots);
* :class:`FragmentLog` -- fragment numbers, durable appends, reads by number, ranges by
  number or time, and a subscription to what is appended after a number.

The store service (:mod:`callstream.store.service`) is their only user. The synchronous
:class:`Backend` is what the embedded backend is built from.

Times are integer epoch milliseconds throughout the store; the API layer converts to
the JSON seconds that KVS clients expect.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from callstream.kvs.model import (
    InvalidValue,
    TooManyTags,
    new_stream_version,
    validate_device_name,
    validate_kms_key_id,
    validate_media_type,
    validate_retention_hours,
    validate_stream_name,
    validate_tags,
)
from callstream.store.live import LiveRelay

if TYPE_CHECKING:
    from callstream.events.bus import EventBus
    from callstream.voice.connectors import VoiceConnectorRegistry


def now_ms() -> int:
    """The current time as the store keeps times (integer epoch milliseconds)."""
    return time.time_ns() // 1_000_000


class StoreError(Exception):
    """Base class of store failures; ``code`` is the KVS error code the API layer returns."""

    code = "InternalFailure"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamNotFound(StoreError):
    code = "ResourceNotFoundException"


STREAM_NOT_FOUND = "The requested stream is not found or not active."
"""KVS's message for a stream that is not there."""


class FragmentNotFound(StoreError):
    """No fragment with that number (never stored, or already expired)."""

    code = "ResourceNotFoundException"


class StreamInUse(StoreError):
    code = "ResourceInUseException"


class VersionMismatch(StoreError):
    code = "VersionMismatchException"


class InvalidArgument(StoreError):
    code = "InvalidArgumentException"


class StreamLimitExceeded(StoreError):
    code = "AccountStreamLimitExceededException"


class TagsLimitExceeded(StoreError):
    code = "TagsPerResourceExceededLimitException"


class ReaderLimitExceeded(StoreError):
    """A stream already has as many readers of a kind as it may (KVS: 3 GetMedia and 5
    GetMediaForFragmentList connections)."""

    code = "ConnectionLimitExceededException"


class StorageFull(StoreError):
    """The store's file system is full: nothing new can be written until space is freed
    (by the retention reaper, DeleteStream, or the operator). A server-side condition that
    passes, so the API answers it like KVS answers its own failures: 500 InternalFailure,
    which SDKs retry, with a message that says what is wrong."""

    code = "InternalFailure"


class IntegrityError(StoreError):
    """Stored bytes failed authentication (tampering or corruption)."""

    code = "InternalFailure"


@dataclass(slots=True)
class StreamRecord:
    """A stream as DescribeStream reports it."""

    name: str
    arn: str
    creation_time_ms: int
    version: str
    status: str = "ACTIVE"
    device_name: str | None = None
    media_type: str | None = None
    kms_key_id: str | None = None
    data_retention_hours: int = 0
    tags: dict[str, str] = field(default_factory=dict)


# --- stream records: the rules every catalog keeps ----------------------------------------

STREAM_CHANGES = frozenset({"device_name", "media_type", "data_retention_hours", "tags"})
"""The fields UpdateStream may change."""


@contextlib.contextmanager
def _kvs_rules() -> Iterator[None]:
    """Validation by :mod:`callstream.kvs.model`, its errors raised as the store's."""
    try:
        yield
    except TooManyTags as exc:
        raise TagsLimitExceeded(exc.message) from None
    except InvalidValue as exc:
        raise InvalidArgument(exc.message) from None


@dataclass(frozen=True, slots=True)
class NewStream:
    """A CreateStream request whose values passed KVS's checks (:meth:`checked`)."""

    name: str
    device_name: str | None
    media_type: str | None
    kms_key_id: str | None
    """As the creator gave it (None: the account's default key)."""
    data_retention_hours: int
    tags: dict[str, str]

    @classmethod
    def checked(
        cls,
        name: str,
        *,
        device_name: str | None,
        media_type: str | None,
        kms_key_id: str | None,
        data_retention_hours: int,
        tags: dict[str, str],
    ) -> NewStream:
        """The request; :class:`InvalidArgument` (:class:`TagsLimitExceeded` past 50
        tags) for the first value KVS would reject."""
        with _kvs_rules():
            return cls(
                name=validate_stream_name(name),
                device_name=validate_device_name(device_name),
                media_type=validate_media_type(media_type),
                kms_key_id=validate_kms_key_id(kms_key_id),
                data_retention_hours=validate_retention_hours(data_retention_hours),
                tags=validate_tags(tags),
            )

    def record(self, *, arn: str, creation_time_ms: int, kms_key_id: str) -> StreamRecord:
        """The new stream's record: ACTIVE, a fresh version, ``kms_key_id`` the key it
        reports."""
        return StreamRecord(
            name=self.name,
            arn=arn,
            creation_time_ms=creation_time_ms,
            version=new_stream_version(),
            status="ACTIVE",
            device_name=self.device_name,
            media_type=self.media_type,
            kms_key_id=kms_key_id,
            data_retention_hours=self.data_retention_hours,
            tags=dict(self.tags),
        )


def check_stream_changes(changes: Mapping[str, object]) -> None:
    """:class:`InvalidArgument` naming the fields of ``changes`` that UpdateStream cannot
    change (:data:`STREAM_CHANGES` are those it can)."""
    unknown = set(changes) - STREAM_CHANGES
    if unknown:
        raise InvalidArgument(f"cannot update {', '.join(sorted(unknown))}")


def changed_stream(old: StreamRecord, changes: Mapping[str, object]) -> StreamRecord:
    """A copy of ``old`` with UpdateStream's ``changes`` (each value checked as KVS checks
    it: :class:`InvalidArgument`, :class:`TagsLimitExceeded`) and a new version; ``tags``
    is the complete new tag set."""
    new = copy_stream(old)
    with _kvs_rules():
        if "device_name" in changes:
            new.device_name = validate_device_name(changes["device_name"])
        if "media_type" in changes:
            new.media_type = validate_media_type(changes["media_type"])
        if "data_retention_hours" in changes:
            new.data_retention_hours = validate_retention_hours(changes["data_retention_hours"])
        if "tags" in changes:
            new.tags = validate_tags(changes["tags"])
    new.version = new_stream_version()
    while new.version == old.version:  # pragma: no cover - 62**20 odds
        new.version = new_stream_version()
    return new


def copy_stream(record: StreamRecord) -> StreamRecord:
    """A copy of ``record`` the caller may change (tags included)."""
    return replace(record, tags=dict(record.tags))


@dataclass(slots=True)
class FragmentRecord:
    """Index entry of one stored fragment (one Cluster)."""

    stream_arn: str
    fragment_number: str  # 47 decimal digits
    server_timestamp_ms: int  # arrival of the fragment's first byte
    producer_timestamp_ms: int
    duration_ms: int
    size: int  # bytes of header + cluster + trailing elements, as served
    cluster_timecode: int  # raw Cluster Timecode, echoed in acks


@dataclass(slots=True)
class FragmentData:
    """The bytes a fragment is served from (plaintext)."""

    header: bytes  # producer's pre-cluster Segment children (Info, Tracks, Tags ...)
    cluster: bytes  # the Cluster element exactly as ingested
    trailer: bytes  # producer elements that followed the Cluster (Tags, Cues)
    ebml_header: bytes  # the producer's EBML header element

    @property
    def size(self) -> int:
        """Bytes of the four parts (a fragment's size as served)."""
        return len(self.ebml_header) + len(self.header) + len(self.cluster) + len(self.trailer)


@dataclass(frozen=True, slots=True)
class FragmentAppend:
    """One fragment to store: :meth:`Backend.append_fragment`'s arguments, for
    :meth:`Backend.append_fragments`."""

    stream: StreamRecord
    data: FragmentData
    server_timestamp_ms: int
    producer_timestamp_ms: int
    duration_ms: int
    cluster_timecode: int
    fragment_number: str
    size: int | None = None

    def record(self) -> FragmentRecord:
        """The fragment's index entry; its size is ``size``, by default the bytes of the
        four :class:`FragmentData` parts."""
        return FragmentRecord(
            stream_arn=self.stream.arn,
            fragment_number=self.fragment_number,
            server_timestamp_ms=self.server_timestamp_ms,
            producer_timestamp_ms=self.producer_timestamp_ms,
            duration_ms=self.duration_ms,
            size=self.data.size if self.size is None else self.size,
            cluster_timecode=self.cluster_timecode,
        )


class Backend(Protocol):
    """Storage for streams and their fragments."""

    # --- streams -----------------------------------------------------------------------
    def create_stream(
        self,
        name: str,
        *,
        device_name: str | None,
        media_type: str | None,
        kms_key_id: str | None,
        data_retention_hours: int,
        tags: dict[str, str],
    ) -> StreamRecord: ...

    def get_stream(self, *, name: str | None = None, arn: str | None = None) -> StreamRecord:
        """Raise :class:`StreamNotFound` when absent."""
        ...

    def list_streams(
        self, *, prefix: str | None, after_name: str | None, limit: int
    ) -> list[StreamRecord]:
        """Streams ordered by name, names > ``after_name``."""
        ...

    def update_stream(self, arn: str, current_version: str, **changes: object) -> StreamRecord:
        """Apply ``changes`` (device_name, media_type, data_retention_hours, tags) if the
        version matches; a new version string is assigned."""
        ...

    def delete_stream(self, arn: str, current_version: str | None) -> None:
        """Delete the stream and free its stored fragments."""
        ...

    # --- fragments ---------------------------------------------------------------------
    def append_fragment(
        self,
        stream: StreamRecord,
        *,
        data: FragmentData,
        server_timestamp_ms: int,
        producer_timestamp_ms: int,
        duration_ms: int,
        cluster_timecode: int,
        fragment_number: str,
        size: int | None = None,
    ) -> FragmentRecord:
        """Store durably (fsync) and index; returns only when the fragment is persisted.

        ``size`` is the FragmentSizeInBytes to report; by default the sum of the four
        :class:`FragmentData` parts."""
        ...

    def append_fragments(
        self, items: Sequence[FragmentAppend]
    ) -> list[FragmentRecord | StoreError]:
        """:meth:`append_fragment` for many fragments at once (of any streams), sharing
        the cost of making them durable; one result per item, in order: its record, or
        the error that kept it from being stored (the others are stored regardless)."""
        ...

    def fragments(
        self,
        stream: StreamRecord,
        *,
        after_number: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        by: str = "server",  # "server" | "producer" timestamp for start/end
        limit: int | None = None,
    ) -> list[FragmentRecord]:
        """Index entries in fragment-number order (``after_number`` exclusive, times inclusive)."""
        ...

    def last_fragment(self, stream: StreamRecord) -> FragmentRecord | None:
        """The newest fragment (highest fragment number), or None when there is none."""
        ...

    def read_fragment(self, stream: StreamRecord, fragment_number: str) -> FragmentData:
        """Decrypt and verify; raises :class:`IntegrityError` on tampering and
        :class:`FragmentNotFound` when there is no such fragment."""
        ...

    def next_sequence(self, stream: StreamRecord) -> int:
        """Next per-stream fragment sequence (1, 2, 3 ...); persistent across restarts."""
        ...

    def reap(self, now_ms: int) -> int:
        """Delete fragments older than their stream's retention; returns bytes freed."""
        ...

    def close(self) -> None: ...


# --- the async seam ------------------------------------------------------------------------

ReaderKind = Literal["GET_MEDIA", "GET_MEDIA_FOR_FRAGMENT_LIST"]


@dataclass(frozen=True, slots=True)
class ProducerLease:
    """One producer's hold on a stream. A stream has one producer at a time and a newer
    one wins (as on KVS): acquiring a lease ends the older one's claim, and the older
    producer's :meth:`StreamCatalog.release_producer` then records nothing."""

    stream_arn: str
    token: int
    """Increases with every acquisition of the stream's lease."""
    last_timestamp_ns: int | None
    """The last frame the stream's previous producer stored (ordering checks go on from
    it: a new upload may not go back in time)."""


@dataclass(frozen=True, slots=True)
class ReaderSlot:
    """A reader's place among a stream's concurrent readers of one kind."""

    stream_arn: str
    kind: ReaderKind
    token: int


READER_KINDS: frozenset[str] = frozenset(get_args(ReaderKind))


def check_reader_kind(kind: str) -> None:
    """Raise :class:`InvalidArgument` for a reader kind the store does not know."""
    if kind not in READER_KINDS:
        raise InvalidArgument(f"unknown reader kind {kind!r}")


class ReaderSlots:
    """The reader slots a process hands out: per stream and kind, the tokens of the
    readers holding one (what :meth:`StreamCatalog.acquire_reader` counts)."""

    def __init__(self) -> None:
        self._tokens = itertools.count(1)
        self._held: dict[tuple[str, ReaderKind], set[int]] = {}

    async def acquire(
        self, catalog: StreamCatalog, arn: str, kind: ReaderKind, limit: int
    ) -> ReaderSlot:
        """A slot on ``catalog``'s stream ``arn``: :class:`InvalidArgument` for a kind the
        store does not know, :class:`StreamNotFound` when there is no such stream,
        :class:`ReaderLimitExceeded` when ``limit`` are taken."""
        check_reader_kind(kind)
        await catalog.get_stream(arn=arn)
        held = self._held.setdefault((arn, kind), set())
        if len(held) >= limit:
            raise ReaderLimitExceeded(
                f"stream {arn} already has {len(held)} {kind} connections (limit {limit})"
            )
        token = next(self._tokens)
        held.add(token)
        return ReaderSlot(arn, kind, token)

    def release(self, slot: ReaderSlot) -> None:
        """Give a slot back (idempotent)."""
        key = (slot.stream_arn, slot.kind)
        held = self._held.get(key)
        if held is not None:
            held.discard(slot.token)
            if not held:
                del self._held[key]

    def forget(self, arn: str) -> None:
        """Drop every slot of a deleted stream."""
        for kind in get_args(ReaderKind):
            self._held.pop((arn, kind), None)


class StreamCatalog(Protocol):
    """Streams, and the state their producers and readers share."""

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
        """A new ACTIVE stream; :class:`StreamInUse`, :class:`StreamLimitExceeded`,
        :class:`TagsLimitExceeded` or :class:`InvalidArgument` as KVS answers."""
        ...

    async def get_stream(self, *, name: str | None = None, arn: str | None = None) -> StreamRecord:
        """:class:`StreamNotFound` when absent (or when name and ARN disagree)."""
        ...

    async def list_streams(
        self, *, prefix: str | None, after_name: str | None, limit: int
    ) -> list[StreamRecord]:
        """Streams ordered by name, names > ``after_name``, starting with ``prefix``."""
        ...

    async def update_stream(
        self, arn: str, current_version: str, **changes: object
    ) -> StreamRecord:
        """Apply ``changes`` (device_name, media_type, data_retention_hours, tags) if the
        version matches (:class:`VersionMismatch`); a new version is assigned."""
        ...

    async def delete_stream(self, arn: str, current_version: str | None) -> None:
        """Delete the stream and free its fragments (``None`` skips the version check)."""
        ...

    async def acquire_producer(self, arn: str) -> ProducerLease:
        """Take the stream's producer lease (from any older holder)."""
        ...

    async def release_producer(self, lease: ProducerLease, last_timestamp_ns: int | None) -> bool:
        """Give the lease back, recording the last frame stored under it; False (and
        nothing recorded) when a newer lease took the stream meanwhile."""
        ...

    async def acquire_reader(self, arn: str, kind: ReaderKind, limit: int) -> ReaderSlot:
        """A reader slot, or :class:`ReaderLimitExceeded` when ``limit`` are taken."""
        ...

    async def release_reader(self, slot: ReaderSlot) -> None:
        """Give a reader slot back (idempotent)."""
        ...


class FragmentLog(Protocol):
    """The fragments of every stream."""

    async def allocate(self, stream: StreamRecord, server_timestamp_ms: int) -> str:
        """The number of the stream's next fragment, which arrived at
        ``server_timestamp_ms`` (numbers increase in ingestion order and are never
        reused, also across restarts)."""
        ...

    async def append(self, items: Sequence[FragmentAppend]) -> list[FragmentRecord | StoreError]:
        """Store fragments durably (of any streams, numbers from :meth:`allocate`); one
        result per item, in order: its record once durable, or the error that kept it
        from being stored (the others are stored regardless)."""
        ...

    async def read(self, stream: StreamRecord, fragment_number: str) -> FragmentData:
        """One fragment's bytes; :class:`FragmentNotFound`, :class:`IntegrityError`."""
        ...

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
        """Fragments in number order: numbers > ``after_number``, start times within
        ``[start_ms, end_ms]`` (inclusive), at most ``limit``."""
        ...

    async def last(self, stream: StreamRecord) -> FragmentRecord | None:
        """The stream's newest fragment."""
        ...

    def subscribe(
        self, stream: StreamRecord, after_number: str | None
    ) -> AsyncIterator[FragmentRecord]:
        """Every fragment of ``stream`` with a number > ``after_number``, stored ones
        first, then each as it is appended; ends when the stream is deleted."""
        ...

    async def reap(self, now_ms: int) -> int:
        """Delete fragments older than their stream's retention; returns bytes freed."""
        ...


@dataclass(frozen=True, slots=True)
class NodeState:
    """What a ``callstream serve`` node keeps of its own besides the store: a backend that
    several nodes share keeps it the same on all of them (:meth:`StoreBackend.join`)."""

    events: EventBus
    voice_connectors: VoiceConnectorRegistry
    directory: Path
    """Where the node keeps what it knows of the other nodes (its data directory)."""


class Membership(Protocol):
    """A node's part in a shared backend: started after the store, closed before it."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class StoreBackend(Protocol):
    """A backend: its catalog and fragment log, opened and closed together."""

    @property
    def catalog(self) -> StreamCatalog: ...

    @property
    def log(self) -> FragmentLog: ...

    @property
    def relay(self) -> LiveRelay | None:
        """How live fragments reach the other processes that share this backend (None:
        one process has the backend to itself, as the embedded one)."""
        ...

    async def start(self) -> None:
        """Start background work (writer threads, connections); call once, before use."""
        ...

    async def close(self) -> None:
        """Finish what is in flight and release everything (idempotent)."""
        ...

    def join(self, node: NodeState) -> Membership | None:
        """What keeps ``node``'s events and voice connectors the same as those of the other
        nodes sharing this backend (None: the backend is this process's alone)."""
        ...
