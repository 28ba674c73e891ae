"""Helpers of the server suite: boto3 clients for a test server, a PutMedia helper
(boto3 has no PutMedia, kvs-wire §2.1) and MKV inspection.

Everything talks to the server over HTTP, the way real AWS clients do: boto3 for every
modelled operation, a SigV4-signed (``botocore.auth.SigV4Auth``) chunked aiohttp POST for
PutMedia, and a signed JSON POST (:func:`signed_post`) where the exact request matters
more than what the installed botocore serializes (sub-second timestamps, members an older
botocore does not model).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from callstream.api.server import ServerThread
from callstream.mkv.ebml import ID, MkvError
from callstream.mkv.reader import EbmlReader, End, Start
from polling import wait_for as wait_for  # re-exported for the server tests
from shared_data import SHARED

ACCESS_KEY = "AKIDTEST"
SECRET_KEY = "secret"
REGION = "us-east-1"
ACCOUNT = "123456789012"
KVS_TESTDATA = SHARED / "testdata" / "kvs"


def shared_file(name: str) -> Path:
    """A file of the shared KVS test data; skips the test when the checkout lacks it."""
    path = KVS_TESTDATA / name
    if not path.is_file():
        pytest.skip(f"shared test data {path} is not available (../shared is not checked out)")
    return path


def whole_second(ms: int) -> dt.datetime:
    """Epoch ``ms`` as a request timestamp that every botocore the project allows sends
    unchanged. botocore before 1.43.93 serializes the timestamps of the KVS media and
    archived-media APIs as whole seconds (``int(calendar.timegm(...))``: 1700000000.6 is
    sent as 1700000000); later versions send the fraction. Tests that select fragments
    through boto3 therefore use whole seconds; sub-second selection goes through
    :func:`signed_post`, as the JS SDK v3 and Java SDK send it."""
    assert ms % 1000 == 0, f"{ms} ms is not a whole second: older botocore truncates it"
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC)


def signed_post(
    url: str, path: str, body: dict[str, Any], *, timeout: float = 30.0
) -> tuple[int, bytes]:
    """POST ``body`` as JSON to ``path``, SigV4-signed: a request exactly as written here
    (JSON numbers for timestamps, any precision), whatever botocore would serialize.
    Returns the HTTP status and the whole response body."""
    data = json.dumps(body).encode()
    endpoint = url.rstrip("/") + path
    req = AWSRequest(
        method="POST", url=endpoint, data=data, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "kinesisvideo", REGION).add_auth(req)
    request = urllib.request.Request(
        endpoint, data=data, headers=dict(req.headers.items()), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def sent_bodies(client: Any, operation: str) -> list[dict[str, Any]]:
    """The JSON bodies ``client`` sends for ``operation`` from now on, as serialized by the
    installed botocore (a ``before-send`` hook; the requests still go out)."""
    bodies: list[dict[str, Any]] = []
    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}"

    def keep(request: Any, **_: Any) -> None:
        bodies.append(json.loads(request.body))

    client.meta.events.register(event, keep)
    return bodies


def unique(prefix: str = "s") -> str:
    """A stream name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class PutResult:
    """What a PutMedia call returned: the HTTP status and the parsed acks (or error)."""

    status: int
    acks: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [a for a in self.acks if a.get("EventType") == event]

    @property
    def numbers(self) -> list[str]:
        """Fragment numbers of the PERSISTED (or, for retention 0, RECEIVED) acks."""
        kind = "PERSISTED" if self.of("PERSISTED") else "RECEIVED"
        return [a["FragmentNumber"] for a in self.of(kind)]


Chunks = Iterable[bytes | float]
"""A PutMedia body: byte chunks, with floats meaning "pause this many seconds"."""


def put_media(
    url: str,
    chunks: Chunks,
    *,
    stream_name: str | None = None,
    stream_arn: str | None = None,
    timecode_type: str = "ABSOLUTE",
    producer_start_ms: int | None = None,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    sign: bool = True,
    signed_body: bytes | None = None,
    timeout: float = 30.0,
) -> PutResult:
    """POST ``/putMedia`` with a chunked body; returns once the server closed the acks."""
    headers = {"x-amzn-fragment-timecode-type": timecode_type}
    if stream_name is not None:
        headers["x-amzn-stream-name"] = stream_name
    if stream_arn is not None:
        headers["x-amzn-stream-arn"] = stream_arn
    if producer_start_ms is not None:
        ms = producer_start_ms
        headers["x-amzn-producer-start-timestamp"] = f"{ms // 1000}.{ms % 1000:03d}"
    endpoint = url.rstrip("/") + "/putMedia"
    if sign:
        # The streamed body is not part of the signature: botocore hashes the empty body,
        # as the KVS C producer does. With ``signed_body`` the signature covers that body,
        # declared in x-amz-content-sha256 (a client that knows its whole body).
        data = b""
        if signed_body is not None:
            data = signed_body
            headers["x-amz-content-sha256"] = hashlib.sha256(signed_body).hexdigest()
        req = AWSRequest(method="POST", url=endpoint, headers=headers, data=data)
        SigV4Auth(Credentials(access_key, secret_key), "kinesisvideo", REGION).add_auth(req)
        headers = dict(req.headers.items())

    async def body() -> Any:
        for chunk in chunks:
            if isinstance(chunk, float | int) and not isinstance(chunk, bytes):
                await asyncio.sleep(float(chunk))
            else:
                yield chunk

    async def run() -> PutResult:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(endpoint, data=body(), headers=headers) as resp,
        ):
            raw = await resp.read()
            result = PutResult(resp.status, headers=dict(resp.headers))
            if resp.status != 200:
                result.error = {"Code": resp.headers.get("x-amzn-ErrorType"), **json.loads(raw)}
                return result
            for line in raw.decode().splitlines():
                if line.strip():
                    result.acks.append(json.loads(line))
            return result

    return asyncio.run(run())


def _events(data: bytes, partial: bool) -> list[Any]:
    """Reader events of ``data``; with ``partial`` a truncated tail is tolerated (a GetMedia
    response cut short mid-fragment)."""
    reader = EbmlReader()
    reader.feed(data)
    out = list(reader.events())
    try:
        reader.close()
        out.extend(reader.events())
    except MkvError:
        if not partial:
            raise
    return out


def clusters_of(data: bytes, *, partial: bool = False) -> list[bytes]:
    """The Cluster elements of an MKV byte stream (one or many documents), byte for byte."""
    out: list[bytes] = []
    start: int | None = None
    for ev in _events(data, partial):
        if isinstance(ev, Start) and ev.id == ID.Cluster:
            start = ev.offset
        elif isinstance(ev, End) and ev.id == ID.Cluster and start is not None:
            out.append(data[start : ev.offset])
            start = None
    return out


def tag_values(data: bytes, name: str, *, partial: bool = False) -> list[str]:
    """Every TagString whose TagName is ``name``, in stream order."""
    out: list[str] = []
    current: str | None = None
    for ev in _events(data, partial):
        if getattr(ev, "id", None) == ID.TagName:
            current = str(ev.value)
        elif getattr(ev, "id", None) == ID.TagString and current == name:
            out.append(str(ev.value))
    return out


@dataclass
class Kvs:
    """A running server and clients for it."""

    server: ServerThread
    kv: Any  # kinesisvideo
    media: Any  # kinesis-video-media
    archived: Any  # kinesis-video-archived-media

    @property
    def url(self) -> str:
        return self.server.url

    def client(
        self,
        service: str,
        *,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        config: Config | None = None,
    ) -> Any:
        """Another boto3 client for this server (other keys, other botocore config)."""
        return make_client(self.url, service, access_key, secret_key, config)

    def create(self, name: str | None = None, **kwargs: Any) -> tuple[str, str]:
        """Create a stream; returns ``(name, arn)``."""
        name = name or unique()
        kwargs.setdefault("DataRetentionInHours", 24)
        arn = self.kv.create_stream(StreamName=name, **kwargs)["StreamARN"]
        return name, arn

    def put(self, name: str, chunks: Chunks, **kwargs: Any) -> PutResult:
        """PutMedia to stream ``name``; fails the test on HTTP errors or ERROR acks."""
        result = put_media(self.url, chunks, stream_name=name, **kwargs)
        assert result.status == 200, result.error
        assert not result.of("ERROR"), result.of("ERROR")
        return result

    def get_media(self, name: str, selector: dict[str, Any]) -> bytes:
        """The whole GetMedia body (the server ends it at the idle live edge)."""
        resp = self.media.get_media(StreamName=name, StartSelector=selector)
        assert resp["ContentType"] == "video/webm"
        data: bytes = resp["Payload"].read()
        return data


def make_client(
    url: str,
    service: str,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    config: Config | None = None,
) -> Any:
    base = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30)
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=base.merge(config) if config is not None else base,
    )


def ramp(n_samples: int, seed: int) -> bytes:
    """Recognisable 16-bit LE PCM: a ramp that differs per ``seed``."""
    import numpy as np

    values = (np.arange(n_samples, dtype=np.int64) * (seed + 1) * 7 + seed * 1000) % 60000 - 30000
    return values.astype("<i2").tobytes()


@dataclass
class AudioUpload:
    """A produced audio stream: the PutMedia chunks and the PCM they carry."""

    chunks: list[bytes]
    pcm: dict[str, bytes]
    starts_ms: list[int]  # producer timestamp of each fragment
    fragment_ms: int
    rate: int

    def fragment_pcm(self, track: str, index: int) -> bytes:
        step = self.rate * self.fragment_ms // 1000 * 2
        return self.pcm[track][index * step : (index + 1) * step]


def connect_audio(
    fragments: int,
    *,
    fragment_ms: int = 200,
    start_ms: int = 1_700_000_000_000,
    codec: str = "connect",
    contact_id: str = "c-1",
) -> AudioUpload:
    """A Connect-shaped stream (tracks AUDIO_FROM_CUSTOMER / AUDIO_TO_CUSTOMER, 8 kHz L16)
    with ABSOLUTE timecodes, one Cluster per ``fragment_ms``."""
    from callstream.client.producer import connect_producer, produce

    rate = 8000
    n = rate * fragment_ms // 1000 * fragments
    pcm = {"AUDIO_FROM_CUSTOMER": ramp(n, 1), "AUDIO_TO_CUSTOMER": ramp(n, 2)}
    producer = connect_producer(
        contact_id=contact_id,
        instance_id="i-1",
        codec=codec,  # type: ignore[arg-type]
        producer_start_ms=start_ms,
    )
    chunks = list(produce(producer, pcm, start_ms=start_ms, fragment_ms=fragment_ms))
    return AudioUpload(
        chunks=[c.data for c in chunks],
        pcm=pcm,
        starts_ms=[c.start_ms for c in chunks if c.start_ms is not None],
        fragment_ms=fragment_ms,
        rate=rate,
    )
