"""How a placed call reaches its store: one interface, :class:`CallStore`, two implementations.

Everything a contact does to the media store goes through a :class:`CallStore`:

* :meth:`~CallStore.ensure_stream` -- the contact's stream, created when absent
  (CreateStream with the instance's retention and KMS key), reused when present (Connect
  pools streams);
* :meth:`~CallStore.open_upload` -- a PutMedia-shaped upload (:class:`CallUpload`: MKV bytes
  with ABSOLUTE timecodes in, acks out as they come);
* :meth:`~CallStore.store_contact_record` -- the contact record (CTR) at the end;
* :meth:`~CallStore.publish` -- the call's events (:data:`CALL_EVENTS`), sent in order and
  without holding up the flow by :class:`CallEvents`.

:class:`HttpCallStore` talks to a callstream (or KVS) server: boto3 ``kinesisvideo`` for
the control plane, :func:`~callstream.client.putmedia.put_media` for the media (with its
resume logic), SigV4-signed POSTs to ``/callstream/contacts`` and ``/callstream/events``.
:class:`LocalCallStore` is the store service in this process
(:class:`~callstream.store.service.MediaStore`), with the contact records and events going
to callables (the contact-record table, the event bus).

Failures a call reports but survives (a contact record or an event the server does not
take) raise :class:`CallStoreError`, whose message is the one progress line to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from botocore.credentials import Credentials

from callstream.client.aws import boto_client, sign_request
from callstream.client.putmedia import PutMediaResult, get_data_endpoint, put_media
from callstream.kvs.acks import Ack
from callstream.store.base import StreamInUse
from callstream.store.upload import EndReason

if TYPE_CHECKING:
    from callstream.store.service import MediaStore
    from callstream.store.writers import Writer

__all__ = [
    "CALL_EVENTS",
    "CONTACTS_PATH",
    "EVENTS_PATH",
    "CallEvents",
    "CallStore",
    "CallStoreError",
    "CallUpload",
    "FedUpload",
    "HttpCallStore",
    "LocalCallStore",
]

log = logging.getLogger("callstream.flows.call")

CONTACTS_PATH = "/callstream/contacts"
EVENTS_PATH = "/callstream/events"
CONTACT_STARTED = "ContactStarted"
MEDIA_STREAMING_STARTED = "MediaStreamingStarted"
MEDIA_STREAMING_STOPPED = "MediaStreamingStopped"
CONTACT_ENDED = "ContactEnded"
CONTACT_CONNECTED_TO_SYSTEM = "ContactConnectedToSystem"
CONTACT_QUEUED = "ContactQueued"
CONTACT_CONNECTED_TO_AGENT = "ContactConnectedToAgent"
CONTACT_EVENTS = (CONTACT_CONNECTED_TO_SYSTEM, CONTACT_QUEUED, CONTACT_CONNECTED_TO_AGENT)
"""Connect's CONNECTED_TO_SYSTEM, QUEUED and CONNECTED_TO_AGENT contact events, published
(between ContactStarted = INITIATED and ContactEnded = DISCONNECTED) by the contacts the
server places (``place_call(contact_events=True)``)."""
CALL_EVENTS = (CONTACT_STARTED, MEDIA_STREAMING_STARTED, MEDIA_STREAMING_STOPPED, CONTACT_ENDED)
"""The events a call publishes, in the order of a contact's life. Fields are Connect's
(PascalCase, timestamps in epoch ms): ContactStarted ``ContactId, Channel,
InitiationMethod, InstanceARN, InitiationTimestamp, InitialContactId``;
MediaStreamingStarted ``ContactId, StreamARN, StartFragmentNumber, StartTimestamp,
InstanceARN, Tracks``; MediaStreamingStopped ``ContactId, StreamARN, StopFragmentNumber,
StopTimestamp, InstanceARN``; ContactEnded ``ContactId, Channel, InstanceARN,
DisconnectReason, DisconnectTimestamp, ContactRecord`` (the CTR)."""


class CallStoreError(Exception):
    """A store operation the call reports and survives; ``str()`` is the line to show."""


class CallUpload(Protocol):
    """One PutMedia-shaped upload into a stream (ABSOLUTE timecodes)."""

    async def write(self, data: bytes) -> None:
        """MKV bytes (the producer's header, then fragments), in any chunking; raises when
        the upload has already ended (it failed, or another producer took the stream)."""
        ...

    def write_nowait(self, data: bytes) -> bool:
        """Hand over bytes without waiting when that is possible now; False when it is
        not (the store is behind, or the upload ended): then :meth:`write`."""
        ...

    async def close(self) -> bool:
        """End the body; returns once every fragment has its final ack (PERSISTED, or
        RECEIVED on a stream that keeps no data): True when all of them were confirmed,
        False when some were not. Raises when the upload failed."""
        ...

    async def abort(self) -> None:
        """End the upload now (the call is being torn down)."""
        ...


class FedUpload:
    """A :class:`CallUpload` fed from a real-time loop that must not wait: bytes go
    straight in while the store keeps up, else queue in order behind one drain task. A
    failure of the upload is kept in :attr:`failed` (the owner reports it) and what is
    queued is dropped."""

    def __init__(self, upload: CallUpload) -> None:
        self.upload = upload
        self.backlog: deque[bytes] = deque()
        self.task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None

    def feed(self, data: bytes) -> None:
        """Hand ``data`` over now or queue it (never waits)."""
        if self.failed is not None or not data:
            return
        if not self.backlog and self.upload.write_nowait(data):
            return
        self.backlog.append(data)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.backlog:
                await self.upload.write(self.backlog.popleft())
        except Exception as exc:  # the upload ended under us; the owner reports it
            self.failed = exc
            self.backlog.clear()

    async def flush(self) -> None:
        """Wait until what was queued has been handed over (or the upload failed)."""
        if self.task is not None:
            await self.task


class CallStore(Protocol):
    """Where a placed call's streams, uploads, contact record and events go."""

    async def prepare(self) -> None:
        """Get ready before the call's media clock starts (e.g. build clients)."""
        ...

    async def ensure_stream(
        self, name: str, *, retention_hours: int, kms_key_id: str | None
    ) -> str:
        """The stream's ARN, created when absent (CreateStream with the instance's
        retention and KMS key), reused when present (Connect pools streams)."""
        ...

    async def open_upload(
        self, stream_arn: str, *, producer_start_ms: int, on_ack: Callable[[Ack], object]
    ) -> CallUpload:
        """A PutMedia-shaped upload (ABSOLUTE timecodes); acks
        (:class:`~callstream.kvs.acks.Ack`) go to ``on_ack`` as they come."""
        ...

    async def store_contact_record(self, ctr: Mapping[str, Any]) -> None:
        """Store the contact record; :class:`CallStoreError` when it was not stored."""
        ...

    async def publish(self, event_type: str, detail: Mapping[str, Any]) -> None:
        """A call event (:data:`CALL_EVENTS`); :class:`CallStoreError` when it was not
        published."""
        ...

    async def close(self) -> None:
        """End uploads still open and release what the store holds for the call."""
        ...


# --- events, in order, off the flow's path --------------------------------------------------


class CallEvents:
    """A call's events, sent to its store one after the other on a task of their own (the
    flow never waits for the store). A failure is reported through ``report`` once per
    distinct message; it never fails the call. ``None`` fields are left out."""

    def __init__(self, store: CallStore, report: Callable[[str], None]) -> None:
        self.store = store
        self.report = report
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._reported: set[str] = set()

    def publish(self, event_type: str, detail: Mapping[str, Any]) -> None:
        """Queue one event."""
        if self._task is None:
            self._task = asyncio.create_task(self._send(), name="callstream-call-events")
        self._queue.put_nowait((event_type, {k: v for k, v in detail.items() if v is not None}))

    async def _send(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    return
                event_type, detail = item
                await self.store.publish(event_type, detail)
            except CallStoreError as exc:
                self._report(str(exc))
            except Exception as exc:  # a broken store must not fail the call
                self._report(f"publishing {event_type} failed: {type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until the events queued so far have been sent (up to ``timeout`` s)."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)

    def _report(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            self.report(message)

    async def drain(self, timeout: float = 10.0) -> None:
        """Send what is queued (up to ``timeout`` s), then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        if not done:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._report("some call events were not published in time")

    async def cancel(self) -> None:
        """Drop what is still queued (the call is being torn down)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- a server over HTTP ---------------------------------------------------------------------


def _chain_credentials() -> Credentials | None:
    import botocore.session

    found = botocore.session.get_session().get_credentials()
    return found if isinstance(found, Credentials) else None


class _HttpUpload:
    """A :func:`put_media` upload fed through a queue."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False
        self.task: asyncio.Task[PutMediaResult] | None = None

    async def source(self) -> AsyncIterator[bytes]:
        """The MKV bytes for :func:`put_media`."""
        while (item := await self._queue.get()) is not None:
            yield item

    def _ended(self) -> BaseException | None:
        assert self.task is not None
        if not self.task.done():
            return None
        if not self.task.cancelled() and self.task.exception() is not None:
            return self.task.exception()
        return RuntimeError("the PutMedia upload has ended")

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise RuntimeError("the upload is closed")
        ended = self._ended()
        if ended is not None:
            raise ended
        self._queue.put_nowait(data)

    def write_nowait(self, data: bytes) -> bool:
        if self._closed or self._ended() is not None:
            return False
        self._queue.put_nowait(data)
        return True

    async def close(self) -> bool:
        assert self.task is not None
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)
        result = await self.task
        return result.complete

    async def abort(self) -> None:
        self._closed = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


class HttpCallStore:
    """A callstream (or KVS-compatible) server at ``endpoint_url``.

    Streams with boto3 ``kinesisvideo`` (CreateStream; DescribeStream when it exists),
    uploads with :func:`~callstream.client.putmedia.put_media` (GetDataEndpoint, then
    PutMedia by StreamARN with resumption and pacing), the CTR and the events as
    SigV4-signed JSON POSTs to ``/callstream/contacts`` and ``/callstream/events``
    (``{"Events": [{"EventType": ..., <fields>}]}``). ``credentials``: botocore
    credentials (None: the botocore chain). ``session``: an aiohttp session to use (by
    default one of its own, closed by :meth:`close`).
    """

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str = "us-east-1",
        credentials: Credentials | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials = credentials
        self._session = session
        self._own_session = session is None
        self._kv: Any = None
        self._retention: dict[str, int] = {}
        self._uploads: set[_HttpUpload] = set()
        self._recorded: set[str] = set()  # ContactIds whose record was stored

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def kinesisvideo(self) -> Any:
        """The boto3 ``kinesisvideo`` client for the server (built once; blocking)."""
        if self._kv is None:
            self._kv = boto_client("kinesisvideo", self.endpoint_url, self.region, self.credentials)
        return self._kv

    async def prepare(self) -> None:
        """Build the boto3 client (which takes a while) off the event loop."""
        await asyncio.to_thread(self.kinesisvideo)

    # streams ---------------------------------------------------------------------------
    async def ensure_stream(
        self, name: str, *, retention_hours: int, kms_key_id: str | None
    ) -> str:
        return await asyncio.to_thread(self._ensure_stream, name, retention_hours, kms_key_id)

    def _ensure_stream(self, name: str, retention_hours: int, kms_key_id: str | None) -> str:
        from botocore.exceptions import ClientError

        kv = self.kinesisvideo()
        kwargs: dict[str, Any] = {"StreamName": name, "DataRetentionInHours": retention_hours}
        if kms_key_id:
            kwargs["KmsKeyId"] = kms_key_id
        try:
            arn = str(kv.create_stream(**kwargs)["StreamARN"])
            self._retention[arn] = retention_hours
            return arn
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
        info = kv.describe_stream(StreamName=name)["StreamInfo"]
        arn = str(info["StreamARN"])
        self._retention[arn] = int(info.get("DataRetentionInHours", retention_hours))
        return arn

    # uploads ---------------------------------------------------------------------------
    async def open_upload(
        self, stream_arn: str, *, producer_start_ms: int, on_ack: Callable[[Ack], object]
    ) -> CallUpload:
        """GetDataEndpoint now (its failure is the caller's), then PutMedia on a task."""
        data_endpoint = await asyncio.to_thread(
            lambda: get_data_endpoint(
                "PUT_MEDIA", stream_arn=stream_arn, client=self.kinesisvideo()
            )
        )
        upload = _HttpUpload()
        upload.task = asyncio.create_task(
            put_media(
                data_endpoint,
                upload.source(),
                stream_arn=stream_arn,
                credentials=self.credentials,
                region=self.region,
                on_ack=on_ack,
                timecode_type="ABSOLUTE",
                producer_start_ms=producer_start_ms,
                discover_endpoint=False,
                # PERSISTED acks come only from a stream that keeps data
                persist_expected=self._retention.get(stream_arn, 1) > 0,
                session=self._http(),
            ),
            name=f"putmedia-{stream_arn}",
        )
        self._uploads.add(upload)
        upload.task.add_done_callback(lambda _: self._uploads.discard(upload))
        return upload

    # contact records and events --------------------------------------------------------
    async def _post(self, path: str, document: Mapping[str, Any], doing: str, on_404: str) -> None:
        """POST ``document`` as JSON to ``path``; a failure is a :class:`CallStoreError`
        saying ``doing`` failed, or ``on_404`` when the server has no such API."""
        url = self.endpoint_url.rstrip("/") + path
        body = json.dumps(document).encode("utf-8")
        try:
            creds = self.credentials or _chain_credentials()
            headers = {"Content-Type": "application/json"}
            if creds is not None:
                headers = sign_request(
                    "POST", url, credentials=creds, region=self.region, headers=headers, body=body
                )
            async with self._http().post(url, data=body, headers=headers) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise CallStoreError(f"{doing} failed: {exc}") from exc
        if status == 404:
            raise CallStoreError(on_404)
        if status >= 300:
            raise CallStoreError(f"{doing} failed: HTTP {status} {text[:200]}")

    async def store_contact_record(self, ctr: Mapping[str, Any]) -> None:
        """POST the CTR to ``/callstream/contacts``."""
        await self._post(
            CONTACTS_PATH,
            ctr,
            "storing the CTR",
            "the server has no contact API (404); CTR not stored",
        )
        self._recorded.add(str(ctr.get("ContactId")))

    async def publish(self, event_type: str, detail: Mapping[str, Any]) -> None:
        """POST ``{"Events": [{"EventType": event_type, **detail}]}`` to
        ``/callstream/events``. A ContactEnded of a contact whose record this store has
        POSTed is not sent: storing a record is publishing its ContactEnded on the server."""
        if event_type == CONTACT_ENDED and str(detail.get("ContactId")) in self._recorded:
            return
        document = {"Events": [{"EventType": event_type, **detail}]}
        await self._post(
            EVENTS_PATH,
            document,
            f"publishing {event_type}",
            "the server has no event API (404); call events not published",
        )

    async def close(self) -> None:
        """Abort uploads still open; close the session when it is this store's own."""
        for upload in list(self._uploads):
            await upload.abort()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None


# --- the store service in this process ------------------------------------------------------


class _LocalUpload:
    """A :class:`~callstream.store.writers.Writer` as a :class:`CallUpload`."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.closed = False

    async def write(self, data: bytes) -> None:
        await self.writer.write(data)

    def write_nowait(self, data: bytes) -> bool:
        return self.writer.write_nowait(data)

    async def close(self) -> bool:
        self.closed = True
        result = await self.writer.close()
        return result.end_reason is EndReason.BODY_ENDED and not result.errors

    async def abort(self) -> None:
        self.closed = True
        await self.writer.abort()


async def _call(fn: Callable[..., object], *args: Any) -> object:
    out = fn(*args)
    if inspect.isawaitable(out):
        out = await out
    return out


class LocalCallStore:
    """The store service in this process (``store``, started by its owner; not closed by
    :meth:`close`).

    ``publish(event_type, detail)`` receives the call's events (e.g. the event bus; None:
    events go nowhere); ``store_contact_record(ctr)`` stores the contact record. Without
    it the record travels only in the ContactEnded event (a bus subscriber stores it);
    with neither, it is not stored, which the call reports. Either callable may be a
    coroutine function; one that raises or returns False counts as not done.
    """

    def __init__(
        self,
        store: MediaStore,
        *,
        publish: Callable[[str, Mapping[str, Any]], object] | None = None,
        store_contact_record: Callable[[Mapping[str, Any]], object] | None = None,
    ) -> None:
        self.store = store
        self._publish = publish
        self._store_contact_record = store_contact_record
        self._uploads: list[_LocalUpload] = []

    async def prepare(self) -> None:
        """Nothing to prepare in process."""

    async def ensure_stream(
        self, name: str, *, retention_hours: int, kms_key_id: str | None
    ) -> str:
        try:
            record = await self.store.create_stream(
                name, data_retention_hours=retention_hours, kms_key_id=kms_key_id
            )
        except StreamInUse:
            record = await self.store.stream(name=name)
        return record.arn

    async def open_upload(
        self, stream_arn: str, *, producer_start_ms: int, on_ack: Callable[[Ack], object]
    ) -> CallUpload:
        stream = await self.store.stream(arn=stream_arn)
        writer = await self.store.open_writer(
            stream, timecode_type="ABSOLUTE", producer_start_ms=producer_start_ms, on_ack=on_ack
        )
        upload = _LocalUpload(writer)
        self._uploads = [u for u in self._uploads if not (u.closed or u.writer.ended)]
        self._uploads.append(upload)
        return upload

    async def store_contact_record(self, ctr: Mapping[str, Any]) -> None:
        if self._store_contact_record is None:
            if self._publish is None:
                raise CallStoreError("no contact-record store; CTR not stored")
            return  # the record travels in the ContactEnded event (its subscriber stores it)
        try:
            out = await _call(self._store_contact_record, ctr)
        except Exception as exc:
            raise CallStoreError(f"storing the CTR failed: {exc}") from exc
        if out is False:
            raise CallStoreError("the contact-record store refused the CTR")

    async def publish(self, event_type: str, detail: Mapping[str, Any]) -> None:
        if self._publish is None:
            return
        try:
            out = await _call(self._publish, event_type, detail)
        except Exception as exc:
            raise CallStoreError(f"publishing {event_type} failed: {exc}") from exc
        if out is False:
            raise CallStoreError(f"publishing {event_type} failed: refused")

    async def close(self) -> None:
        """Abort uploads still open (the media store itself stays up)."""
        uploads, self._uploads = self._uploads, []
        for upload in uploads:
            if not upload.closed and not upload.writer.ended:
                with contextlib.suppress(Exception):
                    await upload.abort()
