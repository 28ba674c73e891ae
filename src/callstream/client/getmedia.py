"""GetMedia consumer: a sans-I/O session plus a boto3 edge.

The same code reads real AWS and any KVS-compatible endpoint: GetDataEndpoint(GET_MEDIA)
through the ``kinesisvideo`` client, then GetMedia through ``kinesis-video-media`` on that
endpoint; ``response["Payload"]`` is fed chunk by chunk into a
:class:`~callstream.mkv.kvs.FragmentReader`.

:class:`GetMediaSession` holds all the logic and no I/O: which request to make next
(the start selector, then ``CONTINUATION_TOKEN`` / ``AfterFragmentNumber`` after the
server's ~45-minute cut or a network drop), de-duplication by fragment number (numbers
are fixed-width decimal strings, compared as such), when to stop (``ContactId`` /
``CallId`` / ``TransactionId`` changed — Connect pools and reuses streams — or a stop
timestamp) and when to give up (a reconnect that brings nothing new, or ``follow`` with an
idle timeout). :class:`GetMediaConsumer` / :func:`get_media` run it against boto3::

    for fragment in get_media(stream_name="s1", start=StartSelector.earliest(),
                              endpoint_url="http://127.0.0.1:4566"):
        ...
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from callstream.client.aws import boto_client
from callstream.kvs.selectors import StartSelector, StartSelectorType
from callstream.mkv.ebml import MkvError
from callstream.mkv.kvs import Fragment, FragmentReader

__all__ = [
    "GetMediaConsumer",
    "GetMediaError",
    "GetMediaSession",
    "MediaRequest",
    "StartSelector",
    "StartSelectorType",
    "fragment_number_key",
    "get_media",
]

log = logging.getLogger(__name__)

EDGE_IDLE_S = 2.0
"""Silence before a response's end that marks it as ended at the idle live edge (KVS ends
such responses after a few seconds) rather than cut mid-stream."""

StopReason = Literal["tag_changed", "stop_timestamp", "idle", "end_of_stream", "closed"]

_RETRIABLE_CODES = frozenset(
    {
        "ClientLimitExceededException",
        "ConnectionLimitExceededException",
        "ThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


class GetMediaError(Exception):
    """Reading the stream failed for good."""


def fragment_number_key(number: str) -> tuple[int, str]:
    """Sort key for fragment numbers: by length, then as strings (for the fixed-width
    47-digit numbers this is plain string order, which equals numeric order)."""
    return (len(number), number)


@dataclass(frozen=True, slots=True)
class MediaRequest:
    """The next call to make: ``GetMedia`` with ``selector`` or
    ``GetMediaForFragmentList`` with ``fragments``, after sleeping ``delay`` seconds."""

    api: Literal["GetMedia", "GetMediaForFragmentList"]
    selector: StartSelector | None = None
    fragments: tuple[str, ...] = ()
    delay: float = 0.0


@dataclass(slots=True)
class _Stats:
    responses: int = 0
    delivered: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


class GetMediaSession:
    """Sans-I/O GetMedia reader state (reconnect, de-duplication, stop conditions).

    Drive it with::

        while (req := session.next_request(now)) is not None:
            sleep(req.delay); payload = call(req)
            session.begin_response()
            try:
                for chunk in payload: yield from session.feed(chunk)
            except NetworkError as exc:
                session.end_response(now, error=exc)
            else:
                yield from session.end_response(now)

    ``expected_tags`` (e.g. ``{"ContactId": id}``) stop the session at the first fragment
    whose tag has another value; ``lock_tags`` (e.g. ``("ContactId",)``) take the expected
    value from the first fragment that carries the tag. A fragment without the tag passes.
    ``stop_at_ms`` stops at the first fragment whose ``stop_timestamp`` (producer or server
    timestamp, epoch ms) is at or after it. The stopping fragment is not delivered unless
    ``include_stop_fragment`` (the Java/LCA consumers process a Cluster's frames before they
    see the tags that follow it, and in GetMedia output the tags a producer put before
    Cluster N+1 follow Cluster N).

    A response that ends without a new fragment ends the session (``stop_reason="idle"``)
    unless ``follow``, which keeps polling every ``poll_interval`` s until ``idle_timeout``
    s pass without a new fragment. Network errors reconnect after ``retry_delay`` (doubling)
    and raise :class:`GetMediaError` after ``max_retries`` in a row.
    """

    def __init__(
        self,
        start: StartSelector | None = None,
        *,
        expected_tags: Mapping[str, str] | None = None,
        lock_tags: Iterable[str] = (),
        stop_at_ms: int | None = None,
        stop_timestamp: Literal["PRODUCER", "SERVER"] = "PRODUCER",
        include_stop_fragment: bool = False,
        follow: bool = False,
        idle_timeout: float = 30.0,
        poll_interval: float = 1.0,
        max_retries: int = 5,
        retry_delay: float = 1.0,
    ) -> None:
        self.start = start or StartSelector.now()
        self.expected_tags: dict[str, str] = dict(expected_tags or {})
        self.lock_tags = tuple(t for t in lock_tags if t not in self.expected_tags)
        self.stop_at_ms = stop_at_ms
        self.stop_timestamp = stop_timestamp
        self.include_stop_fragment = include_stop_fragment
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.poll_interval = poll_interval
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.last_fragment_number: str | None = None
        self.continuation_token: str | None = None
        self.stop_reason: StopReason | None = None
        self.stats = _Stats()
        self._reader: FragmentReader | None = None
        self._last_data_at: float | None = None
        self._request: MediaRequest | None = None
        self._new_in_response = 0
        self._failures = 0
        self._last_progress: float | None = None
        self._delay = 0.0
        self._need_inclusive = self.start.type == "FRAGMENT_NUMBER" and self.start.inclusive

    # --- requests -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """The session is over (see :attr:`stop_reason`)."""
        return self.stop_reason is not None

    def next_request(self, now: float) -> MediaRequest | None:
        """The next call to make, or ``None`` when the session is over."""
        if self.done:
            return None
        if self._last_progress is None:
            self._last_progress = now
        delay, self._delay = self._delay, 0.0
        if self._need_inclusive and self.last_fragment_number is None:
            assert self.start.fragment_number is not None
            req = MediaRequest(
                "GetMediaForFragmentList", fragments=(self.start.fragment_number,), delay=delay
            )
        else:
            req = MediaRequest("GetMedia", self.resume_selector(), delay=delay)
        self._request = req
        return req

    def resume_selector(self) -> StartSelector:
        """Where GetMedia must start now: after the last delivered fragment, else the
        start selector (an inclusive FRAGMENT_NUMBER becomes exclusive once its fragment
        was fetched, or failed to be)."""
        if self.continuation_token:
            return StartSelector.continuation(self.continuation_token)
        if self.last_fragment_number:
            return StartSelector.after_fragment(self.last_fragment_number)
        if self.start.inclusive:
            assert self.start.fragment_number is not None
            return StartSelector.after_fragment(self.start.fragment_number)
        return self.start

    # --- responses ------------------------------------------------------------------------
    def begin_response(self) -> None:
        """A response (its payload) starts."""
        self._last_data_at = None
        self._reader = FragmentReader()
        self._new_in_response = 0
        self.stats.responses += 1

    def feed(self, data: bytes, now: float | None = None) -> list[Fragment]:
        """Payload bytes (arriving at ``now``); returns the fragments to deliver, in order."""
        if self._reader is None:
            raise RuntimeError("feed() outside a response")
        if self.done:
            return []
        if now is not None:
            self._last_data_at = now
        return self._filter(self._reader.feed(data))

    def end_response(self, now: float, error: BaseException | None = None) -> list[Fragment]:
        """The response ended (``error`` if it broke). Returns the fragments its end
        completes. Raises :class:`GetMediaError` after too many failures in a row."""
        reader, self._reader = self._reader, None
        request, self._request = self._request, None
        out: list[Fragment] = []
        if error is None and reader is not None and not self.done:
            try:
                out = self._filter(reader.close())
            except MkvError as exc:  # truncated: the last fragment is incomplete
                error = exc
        if request is not None and request.api == "GetMediaForFragmentList":
            self._need_inclusive = False  # fetched or not, go on with GetMedia after it
            if error is not None:
                log.warning("GetMediaForFragmentList failed (%s); continuing after it", error)
                self.stats.errors.append(str(error))
                return out
        if self.done:
            return out
        if self._new_in_response:
            self._last_progress = now
        if error is not None:
            self.stats.errors.append(str(error))
            self._failures = 0 if self._new_in_response else self._failures + 1
            if self._failures > self.max_retries:
                raise GetMediaError(
                    f"GetMedia failed {self._failures} times in a row: {error}"
                ) from error
            self._delay = self.retry_delay * min(2 ** max(self._failures - 1, 0), 16)
            return out
        self._failures = 0
        quiet = None if self._last_data_at is None else now - self._last_data_at
        if self._new_in_response and not self.follow and quiet is not None and quiet >= EDGE_IDLE_S:
            # The server held the response open with nothing to send, then ended it: the
            # live edge with no producer. (A cut of a live response ends right after data.)
            self.stop_reason = "idle"
            return out
        if self._new_in_response:
            return out  # reconnect at once: the server cut a live response
        if request is not None and request.api == "GetMediaForFragmentList":
            return out
        idle_for = now - (self._last_progress if self._last_progress is not None else now)
        if not self.follow or idle_for >= self.idle_timeout:
            self.stop_reason = "idle"
        else:
            self._delay = self.poll_interval
        return out

    def close(self) -> None:
        """Stop the session (the caller lost interest)."""
        if self.stop_reason is None:
            self.stop_reason = "closed"

    # --- filtering ------------------------------------------------------------------------
    def _filter(self, fragments: list[Fragment]) -> list[Fragment]:
        out: list[Fragment] = []
        for frag in fragments:
            if self.done:
                break
            if frag.error_code is not None and not frag.frames:
                msg = f"in-band error {frag.error_id} {frag.error_code}"
                log.warning("GetMedia %s (fragment %s)", msg, frag.fragment_number)
                self.stats.errors.append(msg)
                continue
            number = frag.fragment_number
            last = self.last_fragment_number
            if (
                number is not None
                and last is not None
                and fragment_number_key(number) <= fragment_number_key(last)
            ):
                self.stats.duplicates += 1
                continue
            if self._stops(frag):
                if self.include_stop_fragment:
                    self._deliver(frag, out)
                break
            self._deliver(frag, out)
        return out

    def _stops(self, frag: Fragment) -> bool:
        for name in self.lock_tags:
            if name not in self.expected_tags and name in frag.tags:
                self.expected_tags[name] = frag.tags[name]
        for name, expected in self.expected_tags.items():
            value = frag.tags.get(name)
            if value is not None and value != expected:
                log.info("GetMedia: tag %s changed from %r to %r: stop", name, expected, value)
                self.stop_reason = "tag_changed"
                return True
        if self.stop_at_ms is not None:
            if self.stop_timestamp == "SERVER":
                ts = frag.server_timestamp_ms
            else:
                ts = frag.producer_timestamp_ms
                if ts is None and frag.start_ns is not None:
                    ts = frag.start_ns // 1_000_000
            if ts is not None and ts >= self.stop_at_ms:
                self.stop_reason = "stop_timestamp"
                return True
        return False

    def _deliver(self, frag: Fragment, out: list[Fragment]) -> None:
        if frag.fragment_number is not None:
            self.last_fragment_number = frag.fragment_number
        if frag.continuation_token:
            self.continuation_token = frag.continuation_token
        elif frag.fragment_number is not None:
            # A fragment without a token (GetMediaForFragmentList): resume after its number.
            self.continuation_token = None
        self._new_in_response += 1
        self.stats.delivered += 1
        out.append(frag)


# --- the boto3 edge -------------------------------------------------------------------------
ClientFactory = Callable[[str, str | None], Any]
"""``(service name, endpoint_url or None) -> boto3 client``."""


class GetMediaConsumer:
    """Iterates the fragments of a stream with boto3, following :class:`GetMediaSession`.

    ``endpoint_url`` is the control-plane endpoint (``None`` = AWS); the data endpoints are
    resolved with GetDataEndpoint (GET_MEDIA, and GET_MEDIA_FOR_FRAGMENT_LIST for an
    inclusive start). ``client_factory`` replaces boto3 client creation (tests, custom
    sessions). Blocking: run it in a thread from async code.
    """

    def __init__(
        self,
        session: GetMediaSession,
        *,
        stream_name: str | None = None,
        stream_arn: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        credentials: Any = None,
        client_factory: ClientFactory | None = None,
        chunk_size: int = 1024,
        read_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (stream_name is None) == (stream_arn is None):
            raise ValueError("give exactly one of stream_name and stream_arn")
        self.session = session
        self._stream: dict[str, str] = (
            {"StreamName": stream_name}
            if stream_name is not None
            else {"StreamARN": str(stream_arn)}
        )
        self._factory = client_factory or _boto_factory(region, credentials, read_timeout)
        self._control_endpoint = endpoint_url
        self._control: Any = None
        self._media: Any = None
        self._archived: Any = None
        self._chunk_size = chunk_size
        self._sleep = sleep
        self._clock = clock

    def __iter__(self) -> Iterator[Fragment]:
        session = self.session
        while (req := session.next_request(self._clock())) is not None:
            if req.delay:
                self._sleep(req.delay)
            try:
                payload = self._call(req)
            except Exception as exc:
                # A fragment that cannot be fetched by number is skipped, not fatal.
                if not _retriable(exc) and req.api != "GetMediaForFragmentList":
                    raise
                session.begin_response()
                session.end_response(self._clock(), error=exc)
                continue
            session.begin_response()
            try:
                for chunk in _chunks(payload, self._chunk_size):
                    # A short chunk is the tail that blocking reads hand over only at the
                    # end of the response: it says nothing about when its bytes came.
                    full = len(chunk) >= self._chunk_size
                    yield from session.feed(chunk, self._clock() if full else None)
                    if session.done:
                        break
            except GeneratorExit:
                session.close()
                _close(payload)
                raise
            except Exception as exc:
                if not _retriable(exc):
                    raise
                _close(payload)
                yield from session.end_response(self._clock(), error=exc)
                continue
            _close(payload)
            yield from session.end_response(self._clock())

    def _client(self, service: str, api_name: str) -> Any:
        if self._control is None:
            self._control = self._factory("kinesisvideo", self._control_endpoint)
        response = self._control.get_data_endpoint(APIName=api_name, **self._stream)
        return self._factory(service, str(response["DataEndpoint"]))

    def _call(self, req: MediaRequest) -> Any:
        if req.api == "GetMediaForFragmentList":
            if self._archived is None:
                self._archived = self._client(
                    "kinesis-video-archived-media", "GET_MEDIA_FOR_FRAGMENT_LIST"
                )
            response = self._archived.get_media_for_fragment_list(
                Fragments=list(req.fragments), **self._stream
            )
        else:
            if self._media is None:
                self._media = self._client("kinesis-video-media", "GET_MEDIA")
            assert req.selector is not None
            response = self._media.get_media(StartSelector=req.selector.to_api(), **self._stream)
        return response["Payload"]


def _chunks(payload: Any, size: int) -> Iterator[bytes]:
    if hasattr(payload, "iter_chunks"):
        yield from payload.iter_chunks(size)
    else:
        yield from payload


def _close(payload: Any) -> None:
    close = getattr(payload, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def _retriable(exc: BaseException) -> bool:
    """Network trouble or throttling: reconnect. Anything else: raise."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _RETRIABLE_CODES or int(status or 0) >= 500
    if isinstance(exc, (BotoCoreError, OSError, MkvError, TimeoutError)):
        return True
    try:
        from urllib3.exceptions import HTTPError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, HTTPError)


def _boto_factory(region: str | None, credentials: Any, read_timeout: float) -> ClientFactory:
    def make(service: str, endpoint_url: str | None) -> Any:
        return boto_client(
            service,
            endpoint_url,
            region,
            credentials,
            read_timeout=read_timeout,
            retries={"max_attempts": 2},
        )

    return make


def get_media(
    *,
    stream_name: str | None = None,
    stream_arn: str | None = None,
    start: StartSelector | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials: Any = None,
    expected_tags: Mapping[str, str] | None = None,
    lock_tags: Iterable[str] = (),
    stop_at_ms: int | None = None,
    stop_timestamp: Literal["PRODUCER", "SERVER"] = "PRODUCER",
    include_stop_fragment: bool = False,
    follow: bool = False,
    idle_timeout: float = 30.0,
    poll_interval: float = 1.0,
    max_retries: int = 5,
    retry_delay: float = 1.0,
    chunk_size: int = 1024,
    read_timeout: float = 60.0,
    client_factory: ClientFactory | None = None,
) -> Iterator[Fragment]:
    """Fragments of a KVS stream from ``start`` (default NOW), reconnecting as needed.

    See :class:`GetMediaSession` for the stop and reconnect rules and
    :class:`GetMediaConsumer` for the endpoint handling.
    """
    session = GetMediaSession(
        start,
        expected_tags=expected_tags,
        lock_tags=lock_tags,
        stop_at_ms=stop_at_ms,
        stop_timestamp=stop_timestamp,
        include_stop_fragment=include_stop_fragment,
        follow=follow,
        idle_timeout=idle_timeout,
        poll_interval=poll_interval,
        max_retries=max_retries,
        retry_delay=retry_delay,
    )
    return iter(
        GetMediaConsumer(
            session,
            stream_name=stream_name,
            stream_arn=stream_arn,
            endpoint_url=endpoint_url,
            region=region,
            credentials=credentials,
            client_factory=client_factory,
            chunk_size=chunk_size,
            read_timeout=read_timeout,
        )
    )
