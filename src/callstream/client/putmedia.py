"""PutMedia client: a sans-I/O core plus an aiohttp edge.

boto3 has no PutMedia (kvs-wire §2.1), so the upload is hand-rolled: one long-lived chunked
``POST <data endpoint>/putMedia`` carrying an MKV stream (header, then one Cluster per
fragment), while the response body streams JSON acks back (kvs-wire §2.2).

Sans-I/O pieces (no sockets, no clocks):

* :func:`put_media_headers` / :func:`sign_put_media` — request headers and SigV4 with
  botocore's signer (service ``kinesisvideo``). Like the KVS C producer
  (``AwsV4Signer.c``: a request without a body is hashed as the *empty* payload for service
  ``kinesisvideo``), the streamed body is not part of the signature: the payload hash is
  ``SHA256("")`` and no ``x-amz-content-sha256`` header is sent.
* :class:`MkvSplitter` — cuts any MKV byte stream into the header and one unit per
  fragment (the metadata Tags that precede a Cluster plus the Cluster).
* :class:`PutMediaTracker` — per-fragment state (BUFFERING / RECEIVED / PERSISTED / ERROR),
  which fragments a new connection must (re)send, and when the upload is complete.

I/O edge: :func:`put_media` (aiohttp), which also resolves the data endpoint with boto3
``kinesisvideo`` GetDataEndpoint(APIName=PUT_MEDIA).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from botocore.credentials import Credentials

from callstream.client.aws import SERVICE, boto_client, default_region, sign_request
from callstream.kvs.acks import Ack, AckParser, EventType
from callstream.mkv.ebml import ID, MkvError
from callstream.mkv.elements import ElementWalker, MkvVisitor
from callstream.mkv.reader import Block

__all__ = [
    "RETRIABLE_ACK_ERRORS",
    "AckAction",
    "FragmentRecord",
    "FragmentState",
    "MkvSplitter",
    "PutMediaAckError",
    "PutMediaError",
    "PutMediaHTTPError",
    "PutMediaResult",
    "PutMediaTracker",
    "ResendPolicy",
    "StreamUnit",
    "format_start_timestamp",
    "get_data_endpoint",
    "put_media",
    "put_media_headers",
    "resolve_credentials",
    "sign_put_media",
]

log = logging.getLogger(__name__)

RETRIABLE_ACK_ERRORS = frozenset({4003, 5000, 5001})
"""Ack ErrorIds after which the connection is re-opened and the fragment sent again:
MAX_CONNECTION_DURATION_REACHED, INTERNAL_ERROR, ARCHIVAL_ERROR."""
_DUPLICATE_ERROR = 4004  # FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS
_RETRIABLE_HTTP_CODES = frozenset(
    {"ClientLimitExceededException", "ConnectionLimitExceededException"}
)

ResendPolicy = Literal["unreceived", "unpersisted"]
"""Which fragments of a dropped connection are sent again: ``"unreceived"`` (default) resends
only fragments the server never acknowledged as RECEIVED — a RECEIVED fragment is whole on
the server, so resending it could store it twice; ``"unpersisted"`` also resends RECEIVED
fragments whose PERSISTED ack was lost (at-least-once; a KVS server answers a duplicate
with ERROR 4004, which the tracker then records as :attr:`FragmentState.DUPLICATE`)."""


# --- errors ---------------------------------------------------------------------------------
class PutMediaError(Exception):
    """The upload failed."""


class PutMediaHTTPError(PutMediaError):
    """PutMedia (or GetDataEndpoint) was rejected before streaming started."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"HTTP {status} {code or ''}: {message}".strip())
        self.status = status
        self.code = code
        self.message = message

    @property
    def retriable(self) -> bool:
        """Worth retrying: 5xx or a throttling/connection-limit error."""
        return self.status >= 500 or self.status == 429 or self.code in _RETRIABLE_HTTP_CODES


class PutMediaAckError(PutMediaError):
    """The server answered a fragment with an ERROR ack."""

    def __init__(self, ack: Ack, record: FragmentRecord | None) -> None:
        super().__init__(
            f"PutMedia ERROR {ack.error_id} {ack.error_code} for fragment timecode "
            f"{ack.fragment_timecode} ({ack.fragment_number})"
        )
        self.ack = ack
        self.record = record


# --- headers and signing --------------------------------------------------------------------
def format_start_timestamp(ms: int) -> str:
    """Epoch milliseconds as decimal seconds, ``"1700000000.005"``.

    (The C producer writes ``"%llu.%llu"`` without zero padding, which turns 5 ms into
    ``".5"``; callstream pads to three decimals, which every parser reads correctly.)
    """
    if ms < 0:
        raise ValueError("timestamp must not be negative")
    return f"{ms // 1000}.{ms % 1000:03d}"


def put_media_headers(
    *,
    stream_name: str | None = None,
    stream_arn: str | None = None,
    timecode_type: Literal["ABSOLUTE", "RELATIVE"] = "ABSOLUTE",
    producer_start_ms: int,
    ack_required: bool = True,
    user_agent: str | None = None,
) -> dict[str, str]:
    """The PutMedia request headers (kvs-wire §2.1), before signing."""
    if (stream_name is None) == (stream_arn is None):
        raise ValueError("give exactly one of stream_name and stream_arn")
    if timecode_type not in ("ABSOLUTE", "RELATIVE"):
        raise ValueError(f"timecode_type must be ABSOLUTE or RELATIVE, not {timecode_type!r}")
    headers: dict[str, str] = {}
    if stream_name is not None:
        headers["x-amzn-stream-name"] = stream_name
    else:
        headers["x-amzn-stream-arn"] = str(stream_arn)
    headers["x-amzn-fragment-timecode-type"] = timecode_type
    headers["x-amzn-producer-start-timestamp"] = format_start_timestamp(producer_start_ms)
    headers["x-amzn-fragment-acknowledgment-required"] = "1" if ack_required else "0"
    if user_agent is not None:
        headers["User-Agent"] = user_agent
    return headers


def sign_put_media(
    url: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str,
    *,
    service: str = SERVICE,
) -> dict[str, str]:
    """Sign a PutMedia request; returns all headers to send.

    The body is signed as empty (``SHA256("")``), as the KVS C producer does for its
    streamed upload. Hop-by-hop headers (``transfer-encoding``, ``connection``) and
    ``user-agent`` are left unsigned.
    """
    return sign_request(
        "POST", url, credentials=credentials, region=region, headers=dict(headers), service=service
    )


def resolve_credentials(
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    token: str | None = None,
    profile: str | None = None,
) -> Credentials:
    """Explicit keys, or the botocore credential chain (env, profile, instance role ...)."""
    if access_key is not None or secret_key is not None:
        if not (access_key and secret_key):
            raise ValueError("give both access_key and secret_key")
        return Credentials(access_key, secret_key, token)
    import botocore.session

    creds: Credentials | None = botocore.session.Session(profile=profile).get_credentials()
    if creds is None:
        raise PutMediaError("no AWS credentials found")
    return creds


# --- splitting an MKV stream into fragments -------------------------------------------------
@dataclass(frozen=True, slots=True)
class StreamUnit:
    """A piece of the upload: the ``header`` (everything before the first fragment's
    metadata/Cluster), a ``fragment`` (its metadata Tags + the Cluster), or a ``trailer``
    (elements after the last Cluster)."""

    kind: Literal["header", "fragment", "trailer"]
    data: bytes
    timecode: int | None = None


class MkvSplitter:
    """Cuts an MKV upload, fed in chunks of any size, into :class:`StreamUnit` objects.

    Top-level ``Tags`` right before a Cluster belong to that Cluster's fragment (PIC puts
    fragment metadata there); everything else before the first Cluster is the header.
    A second EBML document or Segment is rejected (KVS allows one Segment per upload).
    """

    def __init__(self) -> None:
        self._cuts = _SplitPoints()
        self._walker = ElementWalker(self._cuts)
        self._buf = bytearray()
        self._base = 0  # stream offset of self._buf[0]
        self._cut = 0  # start of the next unit

    def feed(self, data: bytes) -> list[StreamUnit]:
        """Consume bytes; return the units they complete."""
        self._buf += data
        self._walker.feed(data)
        return self._units()

    def close(self) -> list[StreamUnit]:
        """End of input: return the remaining units (raises on truncated input)."""
        self._walker.close()
        out = self._units()
        end = self._base + len(self._buf)
        if end > self._cut:
            kind: Literal["header", "trailer"] = "trailer" if self._cuts.header_done else "header"
            out.append(StreamUnit(kind, self._take(end)))
        return out

    def _take(self, end: int) -> bytes:
        start = self._cut - self._base
        data = bytes(self._buf[start : end - self._base])
        del self._buf[: end - self._base]
        self._base = end
        self._cut = end
        return data

    def _units(self) -> list[StreamUnit]:
        out: list[StreamUnit] = []
        for kind, end, timecode in self._cuts.take():
            if kind == "header":
                end = max(end, self._cut)
            out.append(StreamUnit(kind, self._take(end), timecode))
        return out


class _SplitPoints(MkvVisitor):
    """Where an upload is cut: after the header, and after each Cluster of the Segment."""

    def __init__(self) -> None:
        self.header_done = False
        self._cuts: list[tuple[Literal["header", "fragment"], int, int | None]] = []
        self._non_tags_end = 0  # end of the last top-level child that is not Tags
        self._in_cluster = False
        self._timecode: int | None = None
        self._segments = 0
        self._documents = 0

    def take(self) -> list[tuple[Literal["header", "fragment"], int, int | None]]:
        cuts, self._cuts = self._cuts, []
        return cuts

    def ebml_header(self, offset: int, end: int) -> None:
        self._documents += 1
        if self._documents > 1:
            raise MkvError("more than one EBML document in a PutMedia upload", offset)
        self._non_tags_end = end

    def segment_start(self, offset: int, data_offset: int) -> None:
        self._segments += 1
        if self._segments > 1:
            raise MkvError("more than one Segment in a PutMedia upload", offset)

    def child(self, eid: int, offset: int, end: int, master: bool) -> None:
        if eid != ID.Tags:
            self._non_tags_end = end

    def cluster_start(self, offset: int, depth: int) -> None:
        if depth == 1:
            if not self.header_done:
                self._cuts.append(("header", self._non_tags_end, None))
                self.header_done = True
            self._in_cluster = True
            self._timecode = None

    def cluster_timecode(self, timecode: int, offset: int) -> None:
        if self._in_cluster:
            self._timecode = timecode

    def cluster_end(self, offset: int, depth: int) -> None:
        if depth == 1:
            self._in_cluster = False
            self._cuts.append(("fragment", offset, self._timecode))
            self._non_tags_end = offset

    def stray_block(self, block: Block) -> None:
        """Blocks outside a Cluster are the server's to refuse; they stay in the unit."""


# --- fragment bookkeeping -------------------------------------------------------------------
class FragmentState(enum.Enum):
    """Where a fragment is in its life."""

    PENDING = "PENDING"
    """To be sent (never sent, or to be sent again on the next connection)."""
    SENT = "SENT"
    """Written on the current connection, no ack yet."""
    BUFFERING = "BUFFERING"
    RECEIVED = "RECEIVED"
    PERSISTED = "PERSISTED"
    ERROR = "ERROR"
    DUPLICATE = "DUPLICATE"
    """A resent fragment the server already had (ERROR 4004 on a resend)."""


_ACKED_STATES = {FragmentState.RECEIVED, FragmentState.PERSISTED, FragmentState.DUPLICATE}


@dataclass(slots=True, eq=False)
class FragmentRecord:
    """One fragment of the upload and what the server said about it."""

    index: int
    timecode: int | None
    data: bytes
    size: int
    state: FragmentState = FragmentState.PENDING
    fragment_number: str | None = None
    attempts: int = 0
    connection: int | None = None
    unconfirmed: bool = False
    """RECEIVED, but the connection ended before PERSISTED (not resent by default)."""
    error: Ack | None = None
    acks: list[str] = field(default_factory=list)


class AckAction(enum.Enum):
    """What the I/O edge must do after an ack."""

    NONE = "none"
    RECONNECT = "reconnect"
    FAIL = "fail"


class PutMediaTracker:
    """Sans-I/O state of a PutMedia upload across connections.

    Feed it the stream (:meth:`add_unit` / :meth:`source_finished`), open connections
    (:meth:`begin_connection`), take what to write (:meth:`header`, :meth:`next_to_send`,
    :meth:`mark_sent`), hand it every ack (:meth:`on_ack`) and close connections
    (:meth:`end_connection`). A fragment is *done* when PERSISTED (or RECEIVED when
    ``persist_expected`` is false), DUPLICATE, ERROR, or RECEIVED on a connection that died
    before PERSISTED (``unconfirmed``; resent only with ``resend="unpersisted"``).
    Everything not RECEIVED when a connection ends — including a fragment cut off
    mid-write — is sent again on the next connection, in order, after the header.
    """

    def __init__(
        self,
        *,
        persist_expected: bool = True,
        resend: ResendPolicy = "unreceived",
        keep_data: bool = False,
    ) -> None:
        if resend not in ("unreceived", "unpersisted"):
            raise ValueError(f"resend must be 'unreceived' or 'unpersisted', not {resend!r}")
        self.persist_expected = persist_expected
        self.resend: ResendPolicy = resend
        self.keep_data = keep_data
        self.records: list[FragmentRecord] = []
        self.header: bytes | None = None
        self.trailer = b""
        self.finished = False
        self.connection = 0  # id of the current connection, 0 = none open
        self._connections = 0
        self._cursor = 0
        self._first_open = 0
        self._inflight: dict[int, FragmentRecord] = {}  # timecode -> record, this connection
        self._trailer_sent = False

    # --- the stream -----------------------------------------------------------------------
    def add_unit(self, unit: StreamUnit) -> FragmentRecord | None:
        """Add a unit from :class:`MkvSplitter`; returns the record of a fragment."""
        if self.finished:
            raise RuntimeError("add_unit() after source_finished()")
        if unit.kind == "header":
            if self.records:
                raise ValueError("header after the first fragment")
            self.header = (self.header or b"") + unit.data
            return None
        if unit.kind == "trailer":
            self.trailer += unit.data
            return None
        if self.header is None:
            raise ValueError("fragment before the header")
        record = FragmentRecord(len(self.records), unit.timecode, unit.data, len(unit.data))
        self.records.append(record)
        return record

    def source_finished(self) -> None:
        """No more units will be added."""
        self.finished = True

    # --- connections ----------------------------------------------------------------------
    def begin_connection(self) -> int:
        """Start a connection; returns its id. What it must send: the header, then every
        PENDING fragment from :meth:`next_to_send`."""
        if self.connection:
            raise RuntimeError("a connection is already open")
        self._connections += 1
        self.connection = self._connections
        self._inflight = {}
        self._advance_first_open()
        self._cursor = self._first_open
        self._trailer_sent = False
        return self.connection

    def next_to_send(self) -> FragmentRecord | None:
        """The next fragment to write on the open connection, or ``None`` for now."""
        records = self.records
        while self._cursor < len(records):
            record = records[self._cursor]
            self._cursor += 1
            if record.state is FragmentState.PENDING:
                return record
        return None

    def mark_sent(self, record: FragmentRecord) -> None:
        """The fragment's bytes were handed to the open connection."""
        if not self.connection:
            raise RuntimeError("no open connection")
        record.state = FragmentState.SENT
        record.attempts += 1
        record.connection = self.connection
        if record.timecode is not None:
            self._inflight[record.timecode] = record

    def take_trailer(self) -> bytes:
        """Trailing bytes to send once all fragments are written (once per connection)."""
        if self._trailer_sent or not self.all_sent:
            return b""
        self._trailer_sent = True
        return self.trailer

    def end_connection(self) -> list[FragmentRecord]:
        """The open connection is over (cleanly or not). Returns the fragments that will be
        sent again on the next connection."""
        resend: list[FragmentRecord] = []
        for record in self.records[self._first_open :]:
            if record.connection != self.connection:
                continue
            if record.state in (FragmentState.SENT, FragmentState.BUFFERING):
                record.state = FragmentState.PENDING
                resend.append(record)
            elif record.state is FragmentState.RECEIVED and self.persist_expected:
                if self.resend == "unpersisted":
                    record.state = FragmentState.PENDING
                    resend.append(record)
                else:
                    record.unconfirmed = True
                    self._release(record)
        self.connection = 0
        self._inflight = {}
        self._advance_first_open()
        return resend

    # --- acks -----------------------------------------------------------------------------
    def on_ack(self, ack: Ack) -> tuple[FragmentRecord | None, AckAction]:
        """Apply an ack received on the open connection."""
        if ack.event_type == EventType.IDLE or ack.fragment_timecode is None:
            if ack.event_type == EventType.ERROR:
                return None, self._error_action(ack)
            return None, AckAction.NONE
        record = self._inflight.get(ack.fragment_timecode)
        if record is None:
            log.debug("ack for unknown fragment timecode %s: %s", ack.fragment_timecode, ack)
            if ack.event_type == EventType.ERROR:
                return None, self._error_action(ack)
            return None, AckAction.NONE
        record.acks.append(str(ack.event_type))
        if ack.fragment_number:
            record.fragment_number = ack.fragment_number
        event = ack.event_type
        if event == EventType.BUFFERING:
            if record.state is FragmentState.SENT:
                record.state = FragmentState.BUFFERING
        elif event == EventType.RECEIVED:
            if record.state in (FragmentState.SENT, FragmentState.BUFFERING):
                record.state = FragmentState.RECEIVED
                if not self.persist_expected:
                    self._release(record)
        elif event == EventType.PERSISTED:
            if record.state is not FragmentState.ERROR:
                record.state = FragmentState.PERSISTED
                record.unconfirmed = False
                self._release(record)
        elif event == EventType.ERROR:
            record.error = ack
            if ack.error_id in RETRIABLE_ACK_ERRORS:
                record.state = FragmentState.PENDING
                return record, AckAction.RECONNECT
            if ack.error_id == _DUPLICATE_ERROR and record.attempts > 1:
                record.state = FragmentState.DUPLICATE
                self._release(record)
                return record, AckAction.NONE
            record.state = FragmentState.ERROR
            self._release(record)
            return record, AckAction.FAIL
        self._advance_first_open()
        return record, AckAction.NONE

    @staticmethod
    def _error_action(ack: Ack) -> AckAction:
        return AckAction.RECONNECT if ack.error_id in RETRIABLE_ACK_ERRORS else AckAction.FAIL

    # --- progress -------------------------------------------------------------------------
    def is_done(self, record: FragmentRecord) -> bool:
        """True when nothing more will happen to ``record``."""
        state = record.state
        if state in (FragmentState.PERSISTED, FragmentState.DUPLICATE, FragmentState.ERROR):
            return True
        if state is FragmentState.RECEIVED:
            return record.unconfirmed or not self.persist_expected
        return False

    @property
    def all_sent(self) -> bool:
        """The source is finished and no fragment waits to be written."""
        return self.finished and not any(
            r.state is FragmentState.PENDING for r in self.records[self._first_open :]
        )

    @property
    def complete(self) -> bool:
        """The source is finished and every fragment is done."""
        self._advance_first_open()
        return self.finished and self._first_open == len(self.records)

    @property
    def pending(self) -> list[FragmentRecord]:
        """Fragments not done yet."""
        return [r for r in self.records[self._first_open :] if not self.is_done(r)]

    def _advance_first_open(self) -> None:
        records = self.records
        i = self._first_open
        while i < len(records) and self.is_done(records[i]):
            i += 1
        self._first_open = i

    def _release(self, record: FragmentRecord) -> None:
        if not self.keep_data:
            record.data = b""


# --- the I/O edge ---------------------------------------------------------------------------
@dataclass(slots=True)
class PutMediaResult:
    """Outcome of :func:`put_media`."""

    fragments: list[FragmentRecord]
    connections: int
    data_endpoint: str
    complete: bool
    """Every fragment got its final ack: PERSISTED (RECEIVED with ``persist_expected=False``)
    or DUPLICATE; no ERROR, nothing unconfirmed."""
    gave_up: bool = False
    """The body was ended after ``finish_timeout`` with fragments still unacknowledged."""

    @property
    def persisted(self) -> list[FragmentRecord]:
        """Fragments acknowledged as PERSISTED."""
        return [r for r in self.fragments if r.state is FragmentState.PERSISTED]

    @property
    def errors(self) -> list[FragmentRecord]:
        """Fragments the server answered with a (non-retriable) ERROR."""
        return [r for r in self.fragments if r.state is FragmentState.ERROR]

    @property
    def unconfirmed(self) -> list[FragmentRecord]:
        """Fragments without a final ack (RECEIVED only, or nothing at all)."""
        open_states = (FragmentState.PENDING, FragmentState.SENT, FragmentState.BUFFERING)
        return [r for r in self.fragments if r.unconfirmed or r.state in open_states]


def get_data_endpoint(
    api_name: str,
    *,
    stream_name: str | None = None,
    stream_arn: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials: Credentials | None = None,
    client: Any = None,
) -> str:
    """GetDataEndpoint through boto3 ``kinesisvideo`` (blocking)."""
    if client is None:
        client = boto_client("kinesisvideo", endpoint_url, region, credentials)
    kwargs: dict[str, str] = {"APIName": api_name}
    if stream_arn is not None:
        kwargs["StreamARN"] = stream_arn
    elif stream_name is not None:
        kwargs["StreamName"] = stream_name
    else:
        raise ValueError("give stream_name or stream_arn")
    response = client.get_data_endpoint(**kwargs)
    return str(response["DataEndpoint"])


async def _aiter(source: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


async def put_media(
    endpoint_url: str | None,
    fragments: AsyncIterable[bytes] | Iterable[bytes],
    *,
    stream_name: str | None = None,
    stream_arn: str | None = None,
    credentials: Credentials | None = None,
    region: str | None = None,
    on_ack: Callable[[Ack], object] | None = None,
    timecode_type: Literal["ABSOLUTE", "RELATIVE"] = "ABSOLUTE",
    producer_start_ms: int | None = None,
    discover_endpoint: bool = True,
    persist_expected: bool = True,
    resend: ResendPolicy = "unreceived",
    raise_on_error: bool = True,
    max_retries: int = 5,
    retry_delay: float = 0.5,
    finish_timeout: float = 30.0,
    connect_timeout: float = 10.0,
    read_timeout: float | None = None,
    user_agent: str | None = None,
    session: aiohttp.ClientSession | None = None,
) -> PutMediaResult:
    """Upload an MKV stream with PutMedia, resuming after dropped connections.

    ``fragments`` yields the MKV bytes — typically the producer's header then one item per
    fragment, but any chunking works (the stream is re-cut by :class:`MkvSplitter`). Each
    fragment is written as soon as it is complete; acks are read concurrently and passed to
    ``on_ack``. An ERROR ack raises :class:`PutMediaAckError` (unless ``raise_on_error`` is
    false); ERRORs 4003/5000/5001 and dropped connections re-open the connection, re-send
    the header and then every fragment not yet RECEIVED (see :data:`ResendPolicy`). After
    the source ends, the upload waits up to ``finish_timeout`` s for the last PERSISTED
    (RECEIVED with ``persist_expected=False``) and then ends the request body.

    ``endpoint_url`` is the control-plane endpoint used for GetDataEndpoint(PUT_MEDIA)
    (``None`` = the AWS default for ``region``); with ``discover_endpoint=False`` it is the
    data endpoint itself. Credentials default to the botocore chain. Up to ``max_retries``
    consecutive connections without progress are tolerated.
    """
    base_headers = put_media_headers(
        stream_name=stream_name,
        stream_arn=stream_arn,
        timecode_type=timecode_type,
        producer_start_ms=time.time_ns() // 1_000_000
        if producer_start_ms is None
        else producer_start_ms,
        user_agent=user_agent,
    )
    creds = credentials or resolve_credentials()
    region_name = region or default_region()
    if discover_endpoint:
        data_endpoint = await asyncio.to_thread(
            get_data_endpoint,
            "PUT_MEDIA",
            stream_name=stream_name,
            stream_arn=stream_arn,
            endpoint_url=endpoint_url,
            region=region_name,
            credentials=creds,
        )
    elif endpoint_url is None:
        raise ValueError("endpoint_url is required with discover_endpoint=False")
    else:
        data_endpoint = endpoint_url
    url = data_endpoint.rstrip("/") + "/putMedia"
    upload = _Upload(
        url=url,
        base_headers=base_headers,
        credentials=creds,
        region=region_name,
        tracker=PutMediaTracker(persist_expected=persist_expected, resend=resend),
        on_ack=on_ack,
        raise_on_error=raise_on_error,
        finish_timeout=finish_timeout,
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        ),
    )
    own_session = session is None
    http = session or aiohttp.ClientSession()
    try:
        return await upload.run(http, _aiter(fragments), max_retries, retry_delay, data_endpoint)
    finally:
        if own_session:
            await http.close()


_CLOSE_GRACE = 2.0  # seconds the server gets to end its response after our body ended


class _Upload:
    """The connection loop of :func:`put_media` (all the waiting happens here)."""

    def __init__(
        self,
        *,
        url: str,
        base_headers: dict[str, str],
        credentials: Credentials,
        region: str,
        tracker: PutMediaTracker,
        on_ack: Callable[[Ack], object] | None,
        raise_on_error: bool,
        finish_timeout: float,
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        self.url = url
        self.base_headers = base_headers
        self.credentials = credentials
        self.region = region
        self.tracker = tracker
        self.on_ack = on_ack
        self.raise_on_error = raise_on_error
        self.finish_timeout = finish_timeout
        self.timeout = timeout
        self.changed = asyncio.Event()
        self.stop = asyncio.Event()  # per connection: stop reading, close it
        self.body_done = asyncio.Event()  # per connection: the request body has ended
        self.source_error: BaseException | None = None
        self.fatal: BaseException | None = None
        self.gave_up = False
        self.connections = 0

    # --- plumbing -------------------------------------------------------------------------
    def _notify(self) -> None:
        self.changed.set()

    async def _wait_change(self, timeout: float | None = None) -> None:
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)

    def _check_source(self) -> None:
        if self.source_error is not None:
            raise PutMediaError(f"bad PutMedia input: {self.source_error}") from self.source_error

    def _progress(self) -> int:
        return sum(1 for r in self.tracker.records if r.state in _ACKED_STATES)

    async def _pump(self, source: AsyncIterator[bytes]) -> None:
        splitter = MkvSplitter()
        try:
            async for chunk in source:
                for unit in splitter.feed(chunk):
                    self.tracker.add_unit(unit)
                self._notify()
            for unit in splitter.close():
                self.tracker.add_unit(unit)
        except Exception as exc:  # the source or its MKV is broken: fail the upload
            self.source_error = exc
            self.stop.set()
        finally:
            self.tracker.source_finished()
            self._notify()

    # --- the loop -------------------------------------------------------------------------
    async def run(
        self,
        http: aiohttp.ClientSession,
        source: AsyncIterator[bytes],
        max_retries: int,
        retry_delay: float,
        data_endpoint: str,
    ) -> PutMediaResult:
        tracker = self.tracker
        pump = asyncio.create_task(self._pump(source))
        failures = 0
        try:
            while True:
                while tracker.header is None and not tracker.finished:
                    await self._wait_change()
                self._check_source()
                if tracker.header is None or tracker.complete:
                    break
                before = self._progress()
                tracker.begin_connection()
                self.connections += 1
                self.stop = asyncio.Event()
                self.body_done = asyncio.Event()
                error: BaseException | None = None
                try:
                    await self._connection(http)
                except PutMediaHTTPError as exc:
                    if not exc.retriable:
                        raise
                    error = exc
                except (aiohttp.ClientError, OSError, ValueError, TimeoutError) as exc:
                    error = exc
                finally:
                    resent = tracker.end_connection()
                if self.fatal is not None:
                    raise self.fatal
                self._check_source()
                if tracker.complete or self.gave_up:
                    break
                failures = 0 if self._progress() > before else failures + 1
                log.warning(
                    "PutMedia connection %d ended (%s); %d fragment(s) to resend",
                    self.connections,
                    error or "closed by the server",
                    len(resent),
                )
                if failures > max_retries:
                    raise PutMediaError(
                        f"PutMedia: {failures} connections in a row made no progress"
                    ) from error
                if failures:
                    await asyncio.sleep(retry_delay * min(2 ** (failures - 1), 16))
        finally:
            if not pump.done():
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        return PutMediaResult(
            fragments=list(tracker.records),
            connections=self.connections,
            data_endpoint=data_endpoint,
            complete=tracker.complete
            and not any(r.unconfirmed or r.state is FragmentState.ERROR for r in tracker.records),
            gave_up=self.gave_up,
        )

    async def _body(
        self, connection: int, stop: asyncio.Event, body_done: asyncio.Event
    ) -> AsyncIterator[bytes]:
        """The request body of one connection: header, fragments, (trailer)."""
        tracker = self.tracker
        assert tracker.header is not None
        yield tracker.header
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while tracker.connection == connection and not stop.is_set():
            record = tracker.next_to_send()
            if record is not None:
                tracker.mark_sent(record)
                yield record.data
                continue
            if not tracker.all_sent:
                await self._wait_change()
                continue
            trailer = tracker.take_trailer()
            if trailer:
                yield trailer
            pending = tracker.pending
            if not pending:
                break  # all acknowledged: end the body
            if pending == tracker.records[-1:]:
                # Only the last fragment is unacknowledged: if its Cluster is of unknown
                # size (a live producer's), only the end of the body completes it, so end
                # the body now and read its acks from the response.
                break
            if deadline is None:
                deadline = loop.time() + self.finish_timeout
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning(
                    "PutMedia: %d fragment(s) still unacknowledged after %.1f s",
                    len(tracker.pending),
                    self.finish_timeout,
                )
                self.gave_up = True
                break
            await self._wait_change(remaining)
        body_done.set()

    async def _connection(self, http: aiohttp.ClientSession) -> None:
        headers = sign_put_media(self.url, self.base_headers, self.credentials, self.region)
        headers["Content-Type"] = "application/json"
        body = self._body(self.tracker.connection, self.stop, self.body_done)
        async with http.post(self.url, data=body, headers=headers, timeout=self.timeout) as resp:
            if resp.status != 200:
                text = await resp.text()
                code = resp.headers.get("x-amzn-ErrorType", "").split(":", 1)[0] or None
                raise PutMediaHTTPError(resp.status, code, text[:500])
            reader = asyncio.create_task(self._read_acks(resp))
            stop = asyncio.create_task(self.stop.wait())
            body_done = asyncio.create_task(self.body_done.wait())
            try:
                await asyncio.wait({reader, stop, body_done}, return_when=asyncio.FIRST_COMPLETED)
                if not reader.done() and not self.stop.is_set():
                    # The body ended (all acknowledged, or gave up): let the server finish.
                    await asyncio.wait(
                        {reader, stop}, timeout=_CLOSE_GRACE, return_when=asyncio.FIRST_COMPLETED
                    )
            finally:
                for task in (stop, body_done):
                    task.cancel()
                if not reader.done():
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
            if not reader.cancelled():
                exc = reader.exception()
                if exc is not None:
                    raise exc

    async def _read_acks(self, resp: aiohttp.ClientResponse) -> None:
        tracker = self.tracker
        parser = AckParser()
        async for data in resp.content.iter_any():
            for ack in parser.feed(data):
                record, action = tracker.on_ack(ack)
                if self.on_ack is not None:
                    result = self.on_ack(ack)
                    if inspect.isawaitable(result):
                        await result
                self._notify()
                if action is AckAction.FAIL and self.raise_on_error:
                    self.fatal = PutMediaAckError(ack, record)
                    self.stop.set()
                    return
                if action is AckAction.RECONNECT:
                    self.stop.set()
                    return
