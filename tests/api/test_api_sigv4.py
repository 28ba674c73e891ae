"""Server-side SigV4 verification against requests signed by botocore, boto3 and the C producer."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import string
import types
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.configloader import raw_config_parse
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callstream.api.errors import ERRORS, KvsError
from callstream.api.sigv4 import (
    EMPTY_SHA256,
    Credentials,
    canonical_query_string,
    canonical_uri,
    check_headers,
    load_credentials,
    verify_headers,
    verify_request,
)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
OTHER_AKID = "AKIDOTHER"
OTHER_SECRET = "c2VjcmV0LW90aGVy+/=="
STORE = Credentials({AKID: SECRET, OTHER_AKID: OTHER_SECRET})
ENDPOINT = "http://127.0.0.1:4567"
SIGNED_AT = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Wire:
    """A request as the server sees it."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())

    def with_header(self, name: str, value: str | None) -> Wire:
        kept = tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        return replace(self, headers=kept if value is None else (*kept, (name, value)))


def _to_wire(method: str, url: str, headers: Any, body: Any) -> Wire:
    parts = urlsplit(url)
    # botocore's prepared headers may hold bytes; a server sees text.
    items = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in headers.items()]
    if not any(k.lower() == "host" for k, _ in items):
        items.insert(0, ("Host", parts.netloc))  # what urllib3 puts on the wire
    if isinstance(body, str):
        body = body.encode()
    return Wire(method, parts.path, parts.query, tuple(items), body or b"")


def sign(
    method: str = "POST",
    path: str = "/describeStream",
    body: bytes = b'{"StreamName": "s1"}',
    headers: dict[str, str] | None = None,
    params: Any = None,
    *,
    akid: str = AKID,
    secret: str = SECRET,
    token: str | None = None,
    region: str = "us-east-1",
    service: str = "kinesisvideo",
    endpoint: str = ENDPOINT,
    context: dict[str, Any] | None = None,
) -> Wire:
    """Sign exactly as boto3 does: ``SigV4Auth.add_auth`` on an ``AWSRequest``."""
    hdrs = {"Content-Type": "application/json"} if headers is None else headers
    req = AWSRequest(method, endpoint + path, data=body, headers=hdrs, params=params or {})
    req.context.update(context or {})
    SigV4Auth(BotoCredentials(akid, secret, token), service, region).add_auth(req)
    prepared = req.prepare()
    return _to_wire(prepared.method, prepared.url, prepared.headers, prepared.body)


def verify(wire: Wire, **kw: Any) -> Any:
    kw.setdefault("credentials", STORE)
    return verify_request(wire.method, wire.path, wire.query, wire.headers, wire.body, **kw)


def verify_hdrs(wire: Wire, **kw: Any) -> Any:
    kw.setdefault("credentials", STORE)
    return verify_headers(wire.method, wire.path, wire.query, wire.headers, **kw)


def refused(code: str, wire: Wire, *, match: str | None = None, **kw: Any) -> KvsError:
    with pytest.raises(KvsError) as info:
        verify(wire, **kw)
    assert info.value.code == code, info.value
    assert info.value.status == ERRORS[code].status
    if match is not None:
        assert match in info.value.message
    return info.value


class _SignedAt(dt.datetime):
    @classmethod
    def utcnow(cls) -> dt.datetime:
        return SIGNED_AT.replace(tzinfo=None)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[dt.datetime]:
    """Make botocore sign at SIGNED_AT. Its signers read the clock through
    ``get_current_datetime`` (newer botocore) or ``datetime.datetime.utcnow()`` (older
    ones, e.g. 1.34): both are replaced, in ``botocore.auth`` only."""
    monkeypatch.setattr(
        botocore.auth,
        "get_current_datetime",
        lambda *a, **k: SIGNED_AT.replace(tzinfo=None),
        raising=False,
    )
    clock = types.ModuleType("datetime")
    clock.__dict__.update(vars(dt))
    clock.datetime = _SignedAt  # type: ignore[attr-defined]
    monkeypatch.setattr(botocore.auth, "datetime", clock)
    yield SIGNED_AT


# ---------------------------------------------------------------------------------------------
# Known-answer vectors and canonicalisation


@pytest.mark.parametrize(
    ("query", "signature"),
    [
        ("", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        (
            "Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ],
)
def test_aws_sigv4_test_suite_vectors(query: str, signature: str) -> None:
    """``get-vanilla`` and ``get-vanilla-query-order-key-case`` from the AWS SigV4 test suite."""
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )
    headers = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("Authorization", auth),
    ]
    now = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC)
    result = verify_request(
        "GET", "/", query, headers, b"", credentials=STORE, now=now, service="service"
    )
    assert result.access_key_id == AKID and result.region == "us-east-1"
    with pytest.raises(KvsError):
        verify_request(
            "GET", "/", query + "&x=1", headers, b"", credentials=STORE, now=now, service="service"
        )


def test_canonical_uri_double_encodes_like_botocore() -> None:
    assert canonical_uri("") == "/"
    assert canonical_uri("/putMedia") == "/putMedia"
    assert canonical_uri("/a%20b/c") == "/a%2520b/c"
    assert canonical_uri("/a/./b/../c//d/") == "/a/c/d/"
    assert canonical_uri("/ü~") == "/%C3%BC~"


def test_canonical_query_string() -> None:
    assert canonical_query_string("b=2&a=1&a=0&c") == "a=0&a=1&b=2&c="
    assert canonical_query_string("k=a+b&s=%7E%20") == "k=a%20b&s=~%20"
    assert canonical_query_string("a=1&X-Amz-Signature=x", exclude=["X-Amz-Signature"]) == "a=1"


# ---------------------------------------------------------------------------------------------
# Real clients


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _capture_boto3(service: str, operation: str, token: str | None = None, **kwargs: Any) -> Wire:
    client = boto3.session.Session().client(
        service,
        region_name="eu-central-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
    )
    seen: list[Wire] = []

    def handler(request: Any, **_: Any) -> AWSResponse:
        seen.append(_to_wire(request.method, request.url, request.headers, request.body))
        return AWSResponse(request.url, 200, {}, _Raw(b"{}"))

    client.meta.events.register("before-send", handler)
    getattr(client, operation)(**kwargs)
    [wire] = seen
    return wire


@pytest.mark.parametrize(
    ("service", "operation", "kwargs"),
    [
        ("kinesisvideo", "describe_stream", {"StreamName": "call-1"}),
        ("kinesisvideo", "create_stream", {"StreamName": "s", "Tags": {"a b": "ü"}}),
        ("kinesisvideo", "list_streams", {}),
        (
            "kinesis-video-media",
            "get_media",
            {"StreamName": "s", "StartSelector": {"StartSelectorType": "EARLIEST"}},
        ),
        ("kinesis-video-archived-media", "list_fragments", {"StreamName": "s"}),
    ],
)
def test_boto3_requests_verify(service: str, operation: str, kwargs: dict[str, Any]) -> None:
    wire = _capture_boto3(service, operation, **kwargs)
    result = verify(wire)
    assert result.access_key_id == AKID
    assert result.service == "kinesisvideo"  # all KVS planes sign with kinesisvideo
    assert result.region == "eu-central-1"
    assert result.body_signed and result.body_sha256_expected is None
    assert "host" in result.signed_headers
    refused("InvalidSignatureException", replace(wire, body=wire.body + b" "))


def test_boto3_session_token_is_signed_and_reported() -> None:
    wire = _capture_boto3("kinesisvideo", "list_streams", token="FQoGZXIvYXdzE//token")
    result = verify(wire)
    assert result.security_token == "FQoGZXIvYXdzE//token"
    assert "x-amz-security-token" in result.signed_headers
    refused("InvalidSignatureException", wire.with_header("X-Amz-Security-Token", "other"))


# ---------------------------------------------------------------------------------------------
# Tampering


def _flip_last(value: str) -> str:
    return value[:-1] + ("1" if value[-1] == "0" else "0")


def _tamper_auth(wire: Wire, old: str, new: str) -> Wire:
    return wire.with_header("Authorization", wire.header("Authorization").replace(old, new, 1))


TAMPERS: dict[str, Any] = {
    "method": lambda w: replace(w, method="PUT"),
    "path": lambda w: replace(w, path="/describeStreams"),
    "path case": lambda w: replace(w, path="/DescribeStream"),
    "query": lambda w: replace(w, query="Marker=2"),
    "query added": lambda w: replace(w, query=w.query + "&x=1"),
    "signed header": lambda w: w.with_header("Content-Type", "application/x-amz-json-1.1"),
    "signed header removed": lambda w: w.with_header("Content-Type", None),
    "host": lambda w: w.with_header("Host", "127.0.0.1:4568"),
    "body": lambda w: replace(w, body=w.body.replace(b"s1", b"s2")),
    "date": lambda w: w.with_header(
        "X-Amz-Date",
        (SIGNED_AT + dt.timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ"),
    ),
    "scope region": lambda w: _tamper_auth(w, "/us-east-1/", "/us-east-2/"),
    "signature": lambda w: w.with_header("Authorization", _flip_last(w.header("Authorization"))),
    "other known key": lambda w: _tamper_auth(
        w, f"Credential={AKID}/", f"Credential={OTHER_AKID}/"
    ),
}


@pytest.mark.parametrize("what", sorted(TAMPERS))
def test_any_tampering_is_refused(frozen: dt.datetime, what: str) -> None:
    wire = sign(params={"Marker": "1"})
    assert verify(wire, now=frozen).access_key_id == AKID
    tampered = TAMPERS[what](wire)
    assert tampered != wire
    refused("InvalidSignatureException", tampered, now=frozen)


def test_unknown_access_key(frozen: dt.datetime) -> None:
    wire = sign(akid="AKIDUNKNOWN")
    refused(
        "UnrecognizedClientException",
        wire,
        match="The security token included in the request is invalid.",
        now=frozen,
    )


def test_wrong_secret(frozen: dt.datetime) -> None:
    err = refused("InvalidSignatureException", sign(secret=SECRET + "x"), now=frozen)
    assert err.message == ERRORS["InvalidSignatureException"].default_message
    assert err.message.startswith("The request signature we calculated does not match")


def test_wrong_service_and_region(frozen: dt.datetime) -> None:
    refused(
        "InvalidSignatureException",
        sign(service="kinesis"),
        match="Credential should be scoped to correct service: 'kinesisvideo'",
        now=frozen,
    )
    wire = sign(region="eu-west-1")
    assert verify(wire, now=frozen, region="eu-west-1").region == "eu-west-1"
    refused("InvalidSignatureException", wire, match="valid region", now=frozen, region="us-east-1")


def test_scope_date_must_match_request_date(frozen: dt.datetime) -> None:
    wire = sign().with_header("X-Amz-Date", "20240502T000001Z")
    refused(
        "InvalidSignatureException",
        wire,
        match="'20240501' != '20240502'",
        now=frozen + dt.timedelta(hours=12),
    )


# ---------------------------------------------------------------------------------------------
# Clock


def test_clock_skew_limit(frozen: dt.datetime) -> None:
    wire = sign()
    skew = dt.timedelta(minutes=15)
    verify(wire, now=frozen + skew)
    verify(wire, now=frozen - skew)
    err = refused("InvalidSignatureException", wire, now=frozen + skew + dt.timedelta(seconds=1))
    assert err.message == (
        "Signature expired: 20240501T120000Z is now earlier than 20240501T120001Z "
        "(20240501T121501Z - 15 min.)"
    )
    err = refused("InvalidSignatureException", wire, now=frozen - skew - dt.timedelta(seconds=1))
    assert err.message.startswith("Signature not yet current: 20240501T120000Z is still later")


def test_naive_now_is_utc(frozen: dt.datetime) -> None:
    verify(sign(), now=frozen.replace(tzinfo=None))


def test_real_clock_default() -> None:
    assert verify(sign()).signed_at <= dt.datetime.now(dt.UTC)


def test_date_header_instead_of_x_amz_date(frozen: dt.datetime) -> None:
    wire = sign(headers={"Content-Type": "application/json", "Date": "x"})
    assert not any(k.lower() == "x-amz-date" for k, _ in wire.headers)
    assert wire.header("Date") == "Wed, 01 May 2024 12:00:00 -0000"
    assert verify(wire, now=frozen).signed_at == frozen
    refused(
        "InvalidSignatureException",
        wire.with_header("Date", "Wed, 01 May 2024 12:00:01 GMT"),
        now=frozen,
    )
    refused("IncompleteSignatureException", wire.with_header("Date", "yesterday"), now=frozen)


# ---------------------------------------------------------------------------------------------
# Missing / malformed authentication


def test_missing_authentication(frozen: dt.datetime) -> None:
    wire = sign().with_header("Authorization", None)
    err = refused("MissingAuthenticationTokenException", wire, now=frozen)
    assert err.message == "Missing Authentication Token"
    assert err.status == 403


GOOD_CRED = f"Credential={AKID}/20240501/us-east-1/kinesisvideo/aws4_request"
SIG = "Signature=" + "0" * 64
MALFORMED = {
    "no signature": f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=host;x-amz-date",
    "no credential": f"AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, {SIG}",
    "other scheme": "Bearer abc.def",
    "sigv2": f"AWS {AKID}:c2ln",
    "missing =": f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders, {SIG}",
    "short credential": f"AWS4-HMAC-SHA256 Credential={AKID}/20240501/us-east-1, "
    f"SignedHeaders=host;x-amz-date, {SIG}",
    "bad terminator": f"AWS4-HMAC-SHA256 {GOOD_CRED[:-8]}aws4, SignedHeaders=host, {SIG}",
    "host not signed": f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=x-amz-date, {SIG}",
    "upper-case signed header": f"AWS4-HMAC-SHA256 {GOOD_CRED}, SignedHeaders=Host, {SIG}",
}


@pytest.mark.parametrize("what", sorted(MALFORMED))
def test_malformed_authorization_header(frozen: dt.datetime, what: str) -> None:
    wire = sign().with_header("Authorization", MALFORMED[what])
    refused("IncompleteSignatureException", wire, now=frozen)


@pytest.mark.parametrize(
    "change",
    [
        lambda w: w.with_header("X-Amz-Date", None),
        lambda w: w.with_header("X-Amz-Date", "2024-05-01T12:00:00Z"),
        lambda w: replace(w, headers=(*w.headers, ("authorization", w.header("Authorization")))),
        lambda w: replace(w, query="X-Amz-Algorithm=AWS4-HMAC-SHA256"),
        lambda w: w.with_header("X-Amz-Content-SHA256", "not-a-hash"),
    ],
    ids=["no date", "extended date", "two auth headers", "header+query auth", "bad payload hash"],
)
def test_malformed_request(frozen: dt.datetime, change: Any) -> None:
    refused("IncompleteSignatureException", change(sign()), now=frozen)


# ---------------------------------------------------------------------------------------------
# Presigned URLs


def _presign(
    path: str = "/getHLSStreamingSessionURL", query: str = "a=1", expires: int = 300
) -> Wire:
    req = AWSRequest("GET", f"{ENDPOINT}{path}?{query}")
    SigV4QueryAuth(
        BotoCredentials(AKID, SECRET, "tok"), "kinesisvideo", "us-west-2", expires
    ).add_auth(req)
    prepared = req.prepare()
    return _to_wire("GET", prepared.url, prepared.headers, b"")


def test_presigned_url(frozen: dt.datetime) -> None:
    wire = _presign()
    result = verify(wire, now=frozen + dt.timedelta(seconds=300))
    assert result.presigned and result.security_token == "tok" and result.region == "us-west-2"
    refused("InvalidSignatureException", replace(wire, query=wire.query.replace("a=1", "a=2")))
    refused("InvalidSignatureException", replace(wire, path="/getDASHStreamingSessionURL"))
    err = refused("InvalidSignatureException", wire, now=frozen + dt.timedelta(seconds=301))
    assert err.message.startswith("Signature expired: 20240501T120000Z")
    refused(
        "IncompleteSignatureException",
        replace(wire, query=wire.query.replace("X-Amz-Expires=300", "X-Amz-Expires=604801")),
        now=frozen,
    )
    no_sig = "&".join(p for p in wire.query.split("&") if not p.startswith("X-Amz-Signature"))
    refused("IncompleteSignatureException", replace(wire, query=no_sig), now=frozen)


# ---------------------------------------------------------------------------------------------
# Payload hashes and streaming bodies


def test_declared_sha256_must_match_body(frozen: dt.datetime) -> None:
    body = b"\x1aE\xdf\xa3" + bytes(range(256)) * 4
    digest = hashlib.sha256(body).hexdigest()
    wire = sign(body=body, headers={"X-Amz-Content-SHA256": digest})
    assert verify(wire, now=frozen).body_signed
    result = verify_hdrs(wire, now=frozen)
    assert result.body_sha256_expected == digest
    result.check_body_sha256(digest)
    with pytest.raises(KvsError) as info:
        result.check_body_sha256(hashlib.sha256(body[:-1]).hexdigest())
    assert info.value.code == "InvalidSignatureException"
    refused("InvalidSignatureException", replace(wire, body=body[:-1]), now=frozen)


def test_unsigned_payload_is_refused_when_the_body_is_read(frozen: dt.datetime) -> None:
    wire = sign(
        body=b"anything",
        endpoint="https://kvs.example:8443",
        context={"payload_signing_enabled": False},
    )
    assert wire.header("X-Amz-Content-SHA256") == "UNSIGNED-PAYLOAD"
    # A control-plane body is acted on: its signature must cover it (a swapped body must
    # not pass because the client opted out of signing it).
    refused("InvalidSignatureException", replace(wire, body=b"something else"), now=frozen)
    refused("InvalidSignatureException", wire, now=frozen)
    # A streamed upload (PutMedia) keeps the producer SDKs' convention.
    result = verify_hdrs(wire, now=frozen)
    assert not result.body_signed and result.payload_hash == "UNSIGNED-PAYLOAD"
    assert result.body_sha256_expected is None


def test_streaming_payload_is_refused_when_the_body_is_read(frozen: dt.datetime) -> None:
    value = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    wire = sign(body=b'{"StreamName": "s1"}', headers={"X-Amz-Content-SHA256": value})
    with pytest.raises(KvsError, match="is not accepted for this operation") as info:
        verify(wire, now=frozen)
    assert info.value.code == "InvalidSignatureException"


def test_declared_hash_is_checked_before_the_body_is_read(frozen: dt.datetime) -> None:
    body = b'{"StreamName": "s1"}'
    wire = sign(body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    pending = check_headers(
        wire.method, wire.path, wire.query, wire.headers, credentials=STORE, now=frozen
    )
    assert pending.declares_body_hash
    pending.verify_declared().check_body_sha256(hashlib.sha256(body).hexdigest())
    with pytest.raises(KvsError, match="InvalidSignatureException"):
        pending.verify_body(body + b" ")


def test_headers_alone_refuse_unknown_keys_and_missing_signatures(frozen: dt.datetime) -> None:
    wire = sign(body=b"{}")
    with pytest.raises(KvsError) as info:
        check_headers(
            wire.method, wire.path, wire.query, wire.headers, credentials={}.get, now=frozen
        )
    assert info.value.code == "UnrecognizedClientException"
    bare = [(k, v) for k, v in wire.headers if k.lower() != "authorization"]
    with pytest.raises(KvsError) as info:
        check_headers(wire.method, wire.path, wire.query, bare, credentials=STORE, now=frozen)
    assert info.value.code == "MissingAuthenticationTokenException"


def test_streaming_payload_value_is_signed_literally(frozen: dt.datetime) -> None:
    value = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    wire = sign(body=b"", headers={"X-Amz-Content-SHA256": value})
    result = verify_hdrs(wire, now=frozen)
    assert result.payload_hash == value and result.body_sha256_expected is None
    refused(
        "InvalidSignatureException",
        wire.with_header("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"),
        now=frozen,
    )


def test_verify_headers_needs_a_declared_hash_for_a_signed_body(frozen: dt.datetime) -> None:
    wire = sign(body=b'{"StreamName": "s1"}')
    with pytest.raises(KvsError, match="InvalidSignatureException"):
        verify_hdrs(wire, now=frozen)  # botocore signed the body, which we have not read
    result = verify_hdrs(wire, now=frozen, payload_sha256=hashlib.sha256(wire.body).hexdigest())
    assert result.body_signed


C_PRODUCER_HEADERS = [
    ("user-agent", "AWS-SDK-KVS-CPP-CLIENT/3.4.2/1.5.3 GCC/12.2.0 Linux/6.6.51+rpt-rpi-v8 aarch64"),
    ("x-amzn-stream-name", "demo-stream"),
    ("x-amzn-producer-start-timestamp", "1714564800.5"),  # "%llu.%llu": 500 ms -> ".5"
    ("x-amzn-fragment-acknowledgment-required", "1"),
    ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
    ("transfer-encoding", "chunked"),
    ("connection", "keep-alive"),
    ("host", "127.0.0.1:4567"),
    ("X-Amz-Date", "20240501T120000Z"),
    ("content-type", "application/json"),
]


def _c_producer_put_media(sign_content_type: bool, token: str | None = None) -> Wire:
    """A PutMedia request signed the way producer-c ``AwsV4Signer.c`` does it.

    Headers sorted case-insensitively, names lower-cased, values trimmed; ``content-type``,
    ``content-length``, ``authorization`` and ``x-amz-security-token`` are skipped by newer
    versions (``IS_CANONICAL_HEADER_NAME``), older ones sign ``content-type``; the body is
    streamed, so the payload hash is SHA-256 of the empty string.
    """
    skip = {"content-length", "x-amz-security-token", "authorization"}
    if not sign_content_type:
        skip.add("content-type")
    canon = sorted((k, v) for k, v in C_PRODUCER_HEADERS if k.lower() not in skip)
    canon.sort(key=lambda kv: kv[0].lower())
    signed = ";".join(k.lower() for k, _ in canon)
    creq = "\n".join(
        [
            "POST",
            "/putMedia",
            "",
            "".join(f"{k.lower()}:{v.strip()}\n" for k, v in canon),
            signed,
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    scope = "20240501/us-west-2/kinesisvideo/aws4_request"
    sts = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            "20240501T120000Z",
            scope,
            hashlib.sha256(creq.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + SECRET).encode()
    for part in ("20240501", "us-west-2", "kinesisvideo", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    auth = f"AWS4-HMAC-SHA256 Credential={AKID}/{scope}, SignedHeaders={signed}, Signature={sig}"
    headers = [*C_PRODUCER_HEADERS, ("Authorization", auth)]
    if token is not None:
        headers.append(("x-amz-security-token", token))  # added after signing: unsigned
    mkv = b"\x1aE\xdf\xa3\x9fB\x86\x81\x01" + b"\x00" * 64
    return Wire("POST", "/putMedia", "", tuple(headers), mkv)


@pytest.mark.parametrize("sign_content_type", [False, True], ids=["producer-c", "older-c"])
def test_c_producer_put_media(frozen: dt.datetime, sign_content_type: bool) -> None:
    wire = _c_producer_put_media(sign_content_type, token="session-token")
    result = verify_hdrs(wire, now=frozen)
    assert result.payload_hash == EMPTY_SHA256
    assert not result.body_signed and result.body_sha256_expected is None
    assert result.security_token == "session-token"
    assert ("content-type" in result.signed_headers) is sign_content_type
    assert "connection" in result.signed_headers and "transfer-encoding" in result.signed_headers
    # The streamed body is not what was signed, so full-body verification must not be used.
    refused("InvalidSignatureException", wire, now=frozen)
    with pytest.raises(KvsError, match="InvalidSignatureException"):
        verify_hdrs(wire.with_header("x-amzn-stream-name", "other-stream"), now=frozen)
    with pytest.raises(KvsError, match="InvalidSignatureException"):
        verify_hdrs(wire.with_header("connection", "close"), now=frozen)


def test_botocore_streaming_put_media_uses_the_same_convention(frozen: dt.datetime) -> None:
    """A Python client signing a streamed (unknown) body with SigV4Auth gets the same hash."""
    headers = {k: v for k, v in C_PRODUCER_HEADERS if k.lower() not in ("host", "x-amz-date")}
    wire = sign(path="/putMedia", body=b"", headers=headers)
    result = verify_hdrs(replace(wire, body=b"\x1aE\xdf\xa3..."), now=frozen)
    assert result.payload_hash == EMPTY_SHA256 and not result.body_signed


def test_repeated_header_values_are_joined_with_commas(frozen: dt.datetime) -> None:
    req = AWSRequest("POST", ENDPOINT + "/tagStream", data=b"{}")
    req.headers.add_header("X-Multi", "a   b")  # two header lines with the same name
    req.headers.add_header("X-Multi", " c ")
    SigV4Auth(BotoCredentials(AKID, SECRET), "kinesisvideo", "us-east-1").add_auth(req)
    wire = _to_wire(req.method, req.url, req.headers, req.data)
    assert [v for k, v in wire.headers if k == "X-Multi"] == ["a   b", " c "]
    verify(wire, now=frozen)
    multi = tuple(h for h in wire.headers if h[0] == "X-Multi")
    others = tuple(h for h in wire.headers if h[0] != "X-Multi")
    verify(replace(wire, headers=multi + others[::-1]), now=frozen)  # other lines may move
    swapped = wire.with_header("X-Multi", None)
    swapped = replace(swapped, headers=(*swapped.headers, ("x-multi", " c "), ("x-multi", "a b")))
    refused("InvalidSignatureException", swapped, now=frozen)


# ---------------------------------------------------------------------------------------------
# Properties


printable = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c") + " ", max_size=24)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    segments=st.lists(st.text(min_size=1, max_size=8), max_size=4),
    params=st.dictionaries(
        st.text(max_size=8).filter(lambda k: not k.lower().startswith("x-amz")),
        st.text(max_size=8),
        max_size=4,
    ),
    extra=st.dictionaries(st.from_regex(r"\Ax-test-[a-z]{1,6}\Z"), printable, max_size=3),
    body=st.binary(max_size=300),
    data=st.data(),
)
def test_sign_then_verify_always_passes_and_body_mutations_fail(
    frozen: dt.datetime,
    segments: list[str],
    params: dict[str, str],
    extra: dict[str, str],
    body: bytes,
    data: st.DataObject,
) -> None:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    headers = {"Content-Type": "application/json", **extra}
    wire = sign(path=path, body=body, headers=headers, params=params)
    result = verify(wire, now=frozen)
    assert result.payload_hash == hashlib.sha256(body).hexdigest()
    assume(body)
    i = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    mutated = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    refused("InvalidSignatureException", replace(wire, body=mutated), now=frozen)


# ---------------------------------------------------------------------------------------------
# Credentials


def test_credentials_from_environment() -> None:
    env = {"CALLSTREAM_ACCESS_KEY_ID": AKID, "CALLSTREAM_SECRET_ACCESS_KEY": SECRET}
    creds = load_credentials(env)
    assert creds(AKID) == SECRET and creds("nope") is None and len(creds) == 1
    assert len(load_credentials({})) == 0
    with pytest.raises(ValueError, match="both"):
        load_credentials({"CALLSTREAM_ACCESS_KEY_ID": AKID})


def test_credentials_file_ini_format(tmp_path: Path, frozen: dt.datetime) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "# callstream keys\n"
        "[default]\n"
        f"aws_access_key_id = {AKID}\n"
        f"aws_secret_access_key = {SECRET}\n"
        "aws_session_token = ignored\n\n"
        "[camera-7]\n"
        f"aws_access_key_id={OTHER_AKID}\n"
        f"aws_secret_access_key={OTHER_SECRET}\n"
        "region = eu-west-1\n\n"
        "[profile settings-only]\n"
        "region = us-east-1\n"
    )
    creds = load_credentials({}, path)
    assert creds.keys == {AKID: SECRET, OTHER_AKID: OTHER_SECRET}
    # The same file read by botocore's own parser gives the same pairs.
    parsed = raw_config_parse(str(path))
    assert {
        p["aws_access_key_id"]: p["aws_secret_access_key"]
        for p in parsed.values()
        if "aws_access_key_id" in p
    } == creds.keys
    assert verify(sign(akid=OTHER_AKID, secret=OTHER_SECRET), now=frozen, credentials=creds)


def test_credentials_file_simple_format(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"# id:secret\n\n{AKID}:{SECRET}\n  {OTHER_AKID} : {OTHER_SECRET}  \n")
    env = {
        "CALLSTREAM_ACCESS_KEY_ID": "AKIDENV",
        "CALLSTREAM_SECRET_ACCESS_KEY": "envsecret",
        "CALLSTREAM_CREDENTIALS_FILE": str(path),
    }
    creds = load_credentials(env)
    assert creds.keys == {"AKIDENV": "envsecret", AKID: SECRET, OTHER_AKID: OTHER_SECRET}
    assert AKID in creds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("AKID1\n", r"keys.txt:1: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY"),
        ("A:1\nA:2\n", "two different secrets"),
        ("[p]\naws_access_key_id = A\n", "needs both"),
        ("[p]\naws_access_key_id = A\n[p]\n", "malformed credentials file"),
        ("A:two words\n", "whitespace"),
    ],
)
def test_credentials_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_credentials({}, path)


def test_credentials_file_missing(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_credentials({}, tmp_path / "absent")
