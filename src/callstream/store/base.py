"""The media store's backend contract.

The API layer talks only to :class:`Backend`; the embedded backend (SQLite index plus
append-only fragment files) implements it, and a distributed backend (NATS JetStream)
can implement it later without touching the API layer.

Times are integer epoch milliseconds throughout the store; the API layer converts to
the JSON seconds that KVS clients expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class StoreError(Exception):
    """Base class of store failures; ``code`` is the KVS error code the API layer returns."""

    code = "InternalFailure"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamNotFound(StoreError):
    code = "ResourceNotFoundException"


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
