"""Server-side AWS Signature Version 4 verification, sans-I/O.

All four KVS APIs (control plane, media, archived media, signaling) are signed with the
service name ``kinesisvideo`` (:data:`DEFAULT_SERVICE`); the Chime SDK Voice API
(``chime-sdk-voice``, voice connectors) with ``chime`` (:data:`CHIME_SERVICE`).  The caller
names the one service a request must be scoped to (the server picks it by path): a request
signed for the other service is refused like any wrong scope.  This module re-derives the signature exactly as the clients
compute it (botocore ``SigV4Auth``, AWS JS SDK v3, the KVS producer SDKs) and compares it in
constant time.  Failures raise :class:`~callstream.api.errors.KvsError` with the code real
AWS returns:

==========================================  ==============================================
``MissingAuthenticationTokenException``     no ``Authorization`` header, no presigned query
``IncompleteSignatureException``            malformed ``Authorization`` / presigned params
``UnrecognizedClientException``             unknown access key id
``InvalidSignatureException``               signature mismatch, body changed after signing,
                                            wrong service/region/date scope, clock skew
==========================================  ==============================================

Entry points:

* :func:`check_headers` — everything that needs only the headers (missing or malformed
  authentication, unknown key, scope, clock skew), before any body is read; the returned
  :class:`PendingSignature` then verifies the signature once the payload hash is known.
* :func:`verify_request` — the whole body is available (control-plane JSON calls).  The
  payload hash is the SHA-256 of the body; a declared ``x-amz-content-sha256`` must equal
  it, and ``UNSIGNED-PAYLOAD`` / ``STREAMING-*`` are refused.
* :func:`verify_headers` — before reading the body (PutMedia's long-lived chunked upload).
  The payload hash is the ``x-amz-content-sha256`` header if present, else the caller's
  ``payload_sha256``, else the hash of the *empty* body: that is how the KVS producer SDKs
  (C, C++) and botocore sign a streamed body they cannot hash up front.  The result's
  :attr:`SigV4Result.body_sha256_expected` tells the caller whether the body must still be
  checked once read.

Input conventions: ``path`` is the raw request path exactly as received (still
percent-encoded, without the query), ``query`` the raw query string without ``?``, and
``headers`` the received headers as a mapping or a list of ``(name, value)`` pairs (repeated
names allowed, case ignored).  Hop-by-hop headers must not be stripped: the KVS producer
signs ``connection`` and ``transfer-encoding``.
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_plus

from callstream.api.errors import KvsError

__all__ = [
    "ALGORITHM",
    "CHIME_SERVICE",
    "DEFAULT_SERVICE",
    "EMPTY_SHA256",
    "ENV_ACCESS_KEY_ID",
    "ENV_CREDENTIALS_FILE",
    "ENV_SECRET_ACCESS_KEY",
    "MAX_CLOCK_SKEW",
    "MAX_PRESIGN_EXPIRES",
    "UNSIGNED_PAYLOAD",
    "CredentialLookup",
    "Credentials",
    "HeadersInput",
    "PendingSignature",
    "SigV4Result",
    "canonical_query_string",
    "canonical_uri",
    "check_headers",
    "load_credentials",
    "signing_key",
    "verify_headers",
    "verify_request",
]

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_SERVICE = "kinesisvideo"
CHIME_SERVICE = "chime"
"""Signing name of the ``chime-sdk-voice`` API (the voice connectors)."""
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PREFIX = "STREAMING-"

ENV_ACCESS_KEY_ID = "CALLSTREAM_ACCESS_KEY_ID"
ENV_SECRET_ACCESS_KEY = "CALLSTREAM_SECRET_ACCESS_KEY"
ENV_CREDENTIALS_FILE = "CALLSTREAM_CREDENTIALS_FILE"

CredentialLookup = Callable[[str], str | None]
"""Maps an access key id to its secret access key, or ``None`` if the key is unknown."""

HeadersInput = Mapping[str, str] | Iterable[tuple[str, str]]
"""Request headers: a mapping (``items()`` may repeat names, as multidicts do) or pairs."""

_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_SCOPE_DATE_RE = re.compile(r"\d{8}")
_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_TERMINATOR = "aws4_request"


# --------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True, slots=True)
class SigV4Result:
    """What a successful verification established about the request."""

    access_key_id: str
    """The (verified) access key id that signed the request."""
    region: str
    """Region from the credential scope."""
    service: str
    """Service from the credential scope (``kinesisvideo`` or ``chime``)."""
    signed_at: dt.datetime
    """The request timestamp (``X-Amz-Date`` or ``Date``), timezone-aware UTC."""
    signed_headers: tuple[str, ...]
    """Lower-case names of the headers the signature covers."""
    payload_hash: str
    """The payload-hash line of the canonical request that was verified."""
    body_sha256_expected: str | None
    """Lower-case hex SHA-256 the body must still have, or ``None`` when nothing is left to
    check (body already verified, ``UNSIGNED-PAYLOAD``/``STREAMING-*``, or the empty-payload
    streaming convention under which the body is not covered by the signature)."""
    security_token: str | None = None
    """``X-Amz-Security-Token`` if sent (not validated: callstream has no STS)."""
    presigned: bool = False
    """``True`` for query-string (presigned URL) authentication."""
    body_signed: bool = field(default=True)
    """``False`` when the signature does not cover the body bytes at all."""

    def check_body_sha256(self, sha256_hex: str) -> None:
        """Raise ``InvalidSignatureException`` unless the body hash matches the signed one.

        Call with the hex SHA-256 of the complete body once it has been read; a no-op when
        :attr:`body_sha256_expected` is ``None``.
        """
        expected = self.body_sha256_expected
        if expected is None:
            return
        if not hmac.compare_digest(expected.encode("ascii"), sha256_hex.lower().encode("ascii")):
            raise KvsError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )


# --------------------------------------------------------------------------------------------
# Canonicalisation helpers (public: the client side and tests use them too)


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 §5.2.4 plus the collapsing of empty segments that AWS (and botocore) apply.
    if not path:
        return "/"
    out: list[str] = []
    for seg in path.split("/"):
        if not seg or seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
        else:
            out.append(seg)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def canonical_uri(raw_path: str) -> str:
    """The CanonicalURI of a non-S3 service for the path as received on the wire.

    Dot segments and empty segments are removed, then the (already percent-encoded) path
    is URI-encoded once more, keeping ``/`` — the double encoding every AWS SDK applies for
    services other than S3.
    """
    return quote(_remove_dot_segments(raw_path), safe="/~")


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _parse_query(raw_query: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if not raw_query:
        return pairs
    for piece in raw_query.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def canonical_query_string(raw_query: str, *, exclude: Iterable[str] = ()) -> str:
    """The CanonicalQueryString for a raw query string (without ``?``).

    Parameters are decoded (``+`` is a space, as botocore puts it on the wire), re-encoded
    with RFC 3986 unreserved characters only, and sorted by key then value.  Parameters named
    in ``exclude`` (e.g. ``X-Amz-Signature``) are left out.
    """
    skip = set(exclude)
    encoded = sorted(
        (_uri_encode(k), _uri_encode(v)) for k, v in _parse_query(raw_query) if k not in skip
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """Derive the SigV4 signing key for ``date`` (``YYYYMMDD``), ``region`` and ``service``."""
    k = hmac.new(f"AWS4{secret_access_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, _TERMINATOR):
        k = hmac.new(k, part.encode("utf-8"), hashlib.sha256).digest()
    return k


def _trimall(value: str) -> str:
    return " ".join(value.split())


def _normalise_headers(headers: HeadersInput) -> dict[str, list[str]]:
    items: Iterable[tuple[str, str]]
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, list[str]] = {}
    for name, value in items:
        out.setdefault(name.strip().lower(), []).append(value)
    return out


def _fmt(t: dt.datetime) -> str:
    return t.strftime(_AMZ_DATE_FORMAT)


# --------------------------------------------------------------------------------------------
# Parsing the authentication parameters


@dataclass(frozen=True, slots=True)
class _AuthParams:
    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str | None  # from the query (presigned) or X-Amz-Date header
    expires: int | None
    security_token: str | None
    presigned: bool


def _incomplete(message: str) -> KvsError:
    return KvsError("IncompleteSignatureException", message)


def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) < 5 or not parts[0]:
        raise _incomplete(
            f"Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{credential}'"
        )
    akid = "/".join(parts[:-4])
    date, region, service, terminator = parts[-4:]
    if terminator != _TERMINATOR:
        raise _incomplete(
            f"Credential should be scoped with a valid terminator: '{_TERMINATOR}', "
            f"not '{terminator}'."
        )
    if not _SCOPE_DATE_RE.fullmatch(date):
        raise _incomplete(f"Credential date must be YYYYMMDD, got '{date}'.")
    if not region or not service:
        raise _incomplete(f"Credential scope is missing the region or service: '{credential}'")
    return akid, date, region, service


def _parse_signed_headers(value: str) -> tuple[str, ...]:
    names = tuple(value.split(";"))
    if not value or any(not n or n != n.strip().lower() for n in names):
        raise _incomplete(f"Invalid SignedHeaders value '{value}'.")
    return names


def _parse_authorization_header(value: str, headers: dict[str, list[str]]) -> _AuthParams:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(
            f"Unsupported Authorization type '{algorithm}'; only {ALGORITHM} is accepted."
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, val = item.partition("=")
        if not eq:
            raise _incomplete(
                f"Invalid key=value pair (missing equal-sign) in Authorization header: '{item}'"
            )
        fields[key.strip()] = val.strip()
    missing = [
        f"Authorization header requires '{k}' parameter."
        for k in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(k)
    ]
    amz_date = _single(headers, "x-amz-date")
    if amz_date is None and _single(headers, "date") is None:
        missing.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if missing:
        raise _incomplete(" ".join(missing) + f" Authorization={value}")
    akid, date, region, service = _parse_credential(fields["Credential"])
    return _AuthParams(
        access_key_id=akid,
        scope_date=date,
        region=region,
        service=service,
        signed_headers=_parse_signed_headers(fields["SignedHeaders"]),
        signature=fields["Signature"],
        amz_date=amz_date,
        expires=None,
        security_token=_single(headers, "x-amz-security-token"),
        presigned=False,
    )


def _parse_presigned(query: dict[str, str]) -> _AuthParams:
    required = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    )
    missing = [k for k in required if not query.get(k)]
    if missing:
        raise _incomplete(
            "AWS query-string parameters must include " + ", ".join(f"'{k}'" for k in missing)
        )
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise _incomplete(f"X-Amz-Algorithm only supports '{ALGORITHM}'")
    try:
        expires = int(query["X-Amz-Expires"])
    except ValueError:
        raise _incomplete("X-Amz-Expires should be a number") from None
    if expires < 0:
        raise _incomplete("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise _incomplete(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}"
        )
    akid, date, region, service = _parse_credential(query["X-Amz-Credential"])
    return _AuthParams(
        access_key_id=akid,
        scope_date=date,
        region=region,
        service=service,
        signed_headers=_parse_signed_headers(query["X-Amz-SignedHeaders"]),
        signature=query["X-Amz-Signature"],
        amz_date=query["X-Amz-Date"],
        expires=expires,
        security_token=query.get("X-Amz-Security-Token"),
        presigned=True,
    )


def _single(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise _incomplete(f"Multiple '{name}' headers are not allowed.")
    return values[0]


# --------------------------------------------------------------------------------------------
# Verification core


def _signed_at(params: _AuthParams, headers: dict[str, list[str]]) -> tuple[dt.datetime, str]:
    if params.amz_date is not None:
        if not _AMZ_DATE_RE.fullmatch(params.amz_date):
            raise _incomplete(
                f"Date must be in ISO-8601 'basic format'. Got '{params.amz_date}'. "
                "See http://en.wikipedia.org/wiki/ISO_8601"
            )
        try:
            t = dt.datetime.strptime(params.amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            raise _incomplete(f"Invalid X-Amz-Date '{params.amz_date}'.") from None
        return t, params.amz_date
    date_header = _single(headers, "date")
    assert date_header is not None  # guaranteed by _parse_authorization_header
    try:
        t = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        raise _incomplete(f"Invalid Date header '{date_header}'.") from None
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    return t, _fmt(t)


def _check_time(
    params: _AuthParams, signed_at: dt.datetime, now: dt.datetime, max_skew: dt.timedelta
) -> None:
    latest = now + max_skew
    if signed_at > latest:
        raise KvsError(
            "InvalidSignatureException",
            f"Signature not yet current: {_fmt(signed_at)} is still later than {_fmt(latest)} "
            f"({_fmt(now)} + {_minutes(max_skew)} min.)",
        )
    if params.presigned:
        assert params.expires is not None
        if now > signed_at + dt.timedelta(seconds=params.expires):
            raise KvsError(
                "InvalidSignatureException",
                f"Signature expired: {_fmt(signed_at)} is now earlier than "
                f"{_fmt(now - dt.timedelta(seconds=params.expires))} "
                f"({_fmt(now)} - {params.expires} sec.)",
            )
        return
    earliest = now - max_skew
    if signed_at < earliest:
        raise KvsError(
            "InvalidSignatureException",
            f"Signature expired: {_fmt(signed_at)} is now earlier than {_fmt(earliest)} "
            f"({_fmt(now)} - {_minutes(max_skew)} min.)",
        )


def _minutes(delta: dt.timedelta) -> str:
    m = delta.total_seconds() / 60
    return str(int(m)) if m == int(m) else f"{m:g}"


def _prepare(
    method: str,
    path: str,
    query: str,
    headers: HeadersInput,
    *,
    credentials: CredentialLookup,
    now: dt.datetime | None,
    service: str,
    region: str | None,
    max_skew: dt.timedelta,
) -> tuple[_AuthParams, dict[str, list[str]], bytes, dt.datetime, str]:
    """Run every check that does not need the payload hash.

    Returns the auth parameters, the normalised headers, the signing key, the request time
    and the canonical request without its payload-hash line.
    """
    hdrs = _normalise_headers(headers)
    auth_values = hdrs.get("authorization")
    query_params = dict(_parse_query(query))
    presigned = any(
        k in query_params for k in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
    )
    if auth_values:
        if len(auth_values) > 1:
            raise _incomplete("Multiple 'Authorization' headers are not allowed.")
        if presigned:
            raise _incomplete(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
                "or the Authorization header should be specified"
            )
        params = _parse_authorization_header(auth_values[0], hdrs)
    elif presigned:
        params = _parse_presigned(query_params)
    else:
        raise KvsError("MissingAuthenticationTokenException")

    if "host" not in params.signed_headers:
        raise _incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )

    secret = credentials(params.access_key_id)
    if secret is None:
        raise KvsError("UnrecognizedClientException")

    if params.service != service:
        raise KvsError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'. ",
        )
    if region is not None and params.region != region:
        raise KvsError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{params.region}'. ",
        )

    signed_at, amz_date = _signed_at(params, hdrs)
    if params.scope_date != amz_date[:8]:
        raise KvsError(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{params.scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    if now is None:
        now = dt.datetime.now(dt.UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    _check_time(params, signed_at, now, max_skew)

    if not _SIGNATURE_RE.fullmatch(params.signature):
        # Not a hex SHA-256 HMAC: it cannot match, whatever the secret.
        raise KvsError("InvalidSignatureException")

    canonical_header_lines: list[str] = []
    for name in params.signed_headers:
        values = hdrs.get(name)
        if values is None:
            raise KvsError("InvalidSignatureException")
        canonical_header_lines.append(f"{name}:{','.join(_trimall(v) for v in values)}\n")
    exclude = ("X-Amz-Signature",) if params.presigned else ()
    canonical_prefix = "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query_string(query, exclude=exclude),
            "".join(canonical_header_lines),
            ";".join(params.signed_headers),
        )
    )
    key = signing_key(secret, params.scope_date, params.region, params.service)
    return params, hdrs, key, signed_at, canonical_prefix + "\n"


def _check_signature(
    params: _AuthParams, key: bytes, amz_date: str, canonical_request: str
) -> None:
    scope = f"{params.scope_date}/{params.region}/{params.service}/{_TERMINATOR}"
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        )
    )
    expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), params.signature.encode("ascii")):
        raise KvsError("InvalidSignatureException")


def _declared_content_sha256(hdrs: dict[str, list[str]]) -> str | None:
    value = _single(hdrs, "x-amz-content-sha256")
    if value is None:
        return None
    value = value.strip()
    if (
        value == UNSIGNED_PAYLOAD
        or value.startswith(STREAMING_PREFIX)
        or _HEX64_RE.fullmatch(value)
    ):
        return value
    raise _incomplete(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-..., or a valid sha256 value."
    )


def _result(
    params: _AuthParams,
    signed_at: dt.datetime,
    payload_hash: str,
    body_expected: str | None,
    body_signed: bool,
) -> SigV4Result:
    return SigV4Result(
        access_key_id=params.access_key_id,
        region=params.region,
        service=params.service,
        signed_at=signed_at,
        signed_headers=params.signed_headers,
        payload_hash=payload_hash,
        body_sha256_expected=body_expected,
        security_token=params.security_token,
        presigned=params.presigned,
        body_signed=body_signed,
    )


@dataclass(frozen=True, slots=True)
class PendingSignature:
    """A request whose authentication parameters checked out from the headers alone:
    the access key is known, the scope names this service (and region), the date is
    within the allowed skew. Only the signature itself is left, and it needs the payload
    hash. A server gets here before reading any body, so that a request without valid
    credentials never costs it more than its headers."""

    _params: _AuthParams
    _key: bytes
    _signed_at: dt.datetime
    _canonical_prefix: str
    declared_payload_hash: str | None
    """The ``x-amz-content-sha256`` header as sent (``None`` when absent)."""

    @property
    def access_key_id(self) -> str:
        """The access key id that claims to have signed the request (known to exist)."""
        return self._params.access_key_id

    @property
    def declares_body_hash(self) -> bool:
        """The client declared the body's SHA-256 in ``x-amz-content-sha256``, so the
        signature can be checked before the body is read (:meth:`verify_declared`)."""
        declared = self.declared_payload_hash
        return declared is not None and _HEX64_RE.fullmatch(declared) is not None

    def _verify(
        self, payload_hash: str, body_expected: str | None, body_signed: bool
    ) -> SigV4Result:
        _check_signature(
            self._params, self._key, _fmt(self._signed_at), self._canonical_prefix + payload_hash
        )
        return _result(self._params, self._signed_at, payload_hash, body_expected, body_signed)

    def verify_streamed(self, payload_sha256: str | None = None) -> SigV4Result:
        """Verify a request whose body is a long-lived stream (PutMedia), see
        :func:`verify_headers`."""
        declared = self.declared_payload_hash
        if declared is not None:
            hex_hash = _HEX64_RE.fullmatch(declared) is not None
            return self._verify(declared, declared.lower() if hex_hash else None, hex_hash)
        if payload_sha256 is not None:
            return self._verify(payload_sha256.lower(), None, True)
        return self._verify(EMPTY_SHA256, None, False)

    def require_signed_body(self) -> None:
        """Refuse ``UNSIGNED-PAYLOAD`` and ``STREAMING-*`` payload hashes: APIs whose whole
        body is read before acting on it need the signature to cover that body."""
        declared = self.declared_payload_hash
        if declared is not None and not self.declares_body_hash:
            raise KvsError(
                "InvalidSignatureException",
                f"x-amz-content-sha256 '{declared}' is not accepted for this operation: "
                "sign the SHA-256 of the request body.",
            )

    def verify_declared(self) -> SigV4Result:
        """Check the signature against the declared body hash before reading the body;
        the caller then checks the body with :meth:`SigV4Result.check_body_sha256`."""
        declared = self.declared_payload_hash
        if declared is None or not self.declares_body_hash:
            raise ValueError("no SHA-256 of the body was declared")
        return self._verify(declared, declared.lower(), True)

    def verify_body(self, body: bytes) -> SigV4Result:
        """Verify the signature over the complete ``body`` (whose SHA-256 is always the
        payload hash: :meth:`require_signed_body` applies)."""
        self.require_signed_body()
        body_hash = hashlib.sha256(body).hexdigest()
        if self.declares_body_hash:
            result = self.verify_declared()
            result.check_body_sha256(body_hash)
            return replace(result, body_sha256_expected=None)
        return self._verify(body_hash, None, True)


def check_headers(
    method: str,
    path: str,
    query: str,
    headers: HeadersInput,
    *,
    credentials: CredentialLookup,
    now: dt.datetime | None = None,
    service: str = DEFAULT_SERVICE,
    region: str | None = None,
    max_skew: dt.timedelta = MAX_CLOCK_SKEW,
) -> PendingSignature:
    """Every check that needs only the request line and headers: missing or malformed
    authentication, unknown access key, wrong service or region, a date outside the
    allowed skew. Raises :class:`~callstream.api.errors.KvsError`; on success the
    signature is still to be verified with the payload hash (:class:`PendingSignature`)."""
    params, hdrs, key, signed_at, prefix = _prepare(
        method,
        path,
        query,
        headers,
        credentials=credentials,
        now=now,
        service=service,
        region=region,
        max_skew=max_skew,
    )
    return PendingSignature(params, key, signed_at, prefix, _declared_content_sha256(hdrs))


def verify_headers(
    method: str,
    path: str,
    query: str,
    headers: HeadersInput,
    *,
    credentials: CredentialLookup,
    now: dt.datetime | None = None,
    payload_sha256: str | None = None,
    service: str = DEFAULT_SERVICE,
    region: str | None = None,
    max_skew: dt.timedelta = MAX_CLOCK_SKEW,
) -> SigV4Result:
    """Verify a request's signature before its body is read (streaming uploads).

    The payload hash used is, in order: the ``x-amz-content-sha256`` header; the caller's
    ``payload_sha256``; the SHA-256 of an empty body (the producer-SDK convention for a
    streamed PutMedia body).  When the header declares a concrete hash the caller must hash
    the body and call :meth:`SigV4Result.check_body_sha256`; ``body_sha256_expected`` is set
    to that hash.  Raises :class:`~callstream.api.errors.KvsError` on failure.
    """
    pending = check_headers(
        method,
        path,
        query,
        headers,
        credentials=credentials,
        now=now,
        service=service,
        region=region,
        max_skew=max_skew,
    )
    return pending.verify_streamed(payload_sha256)


def verify_request(
    method: str,
    path: str,
    query: str,
    headers: HeadersInput,
    body: bytes,
    *,
    credentials: CredentialLookup,
    now: dt.datetime | None = None,
    service: str = DEFAULT_SERVICE,
    region: str | None = None,
    max_skew: dt.timedelta = MAX_CLOCK_SKEW,
) -> SigV4Result:
    """Verify a complete request, body included.

    The payload hash is the SHA-256 of ``body``: a declared ``x-amz-content-sha256`` must
    equal it, and ``UNSIGNED-PAYLOAD`` / ``STREAMING-*`` are refused (the signature must
    cover the body that is acted on). Raises :class:`~callstream.api.errors.KvsError` on
    failure.
    """
    pending = check_headers(
        method,
        path,
        query,
        headers,
        credentials=credentials,
        now=now,
        service=service,
        region=region,
        max_skew=max_skew,
    )
    return pending.verify_body(body)


# --------------------------------------------------------------------------------------------
# Credentials store


@dataclass(slots=True)
class Credentials:
    """An in-memory access-key-id -> secret-access-key store; callable as a lookup."""

    keys: dict[str, str] = field(default_factory=dict)

    def lookup(self, access_key_id: str) -> str | None:
        """The secret for ``access_key_id``, or ``None`` if unknown."""
        return self.keys.get(access_key_id)

    def __call__(self, access_key_id: str) -> str | None:
        return self.keys.get(access_key_id)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, access_key_id: object) -> bool:
        return access_key_id in self.keys

    def add(self, access_key_id: str, secret_access_key: str, *, source: str = "") -> None:
        """Register a key pair; a conflicting secret for a known id raises ``ValueError``."""
        if not access_key_id or not secret_access_key:
            raise ValueError(f"empty access key id or secret{_where(source)}")
        if any(c.isspace() for c in access_key_id + secret_access_key):
            raise ValueError(f"access key id or secret contains whitespace{_where(source)}")
        old = self.keys.get(access_key_id)
        if old is not None and old != secret_access_key:
            raise ValueError(
                f"access key id {access_key_id} has two different secrets{_where(source)}"
            )
        self.keys[access_key_id] = secret_access_key


def _where(source: str) -> str:
    return f" ({source})" if source else ""


def load_credentials(
    env: Mapping[str, str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Credentials:
    """Collect the key pairs the server accepts.

    * ``env`` (default ``os.environ``): ``CALLSTREAM_ACCESS_KEY_ID`` together with
      ``CALLSTREAM_SECRET_ACCESS_KEY`` add one pair; ``CALLSTREAM_CREDENTIALS_FILE`` names a
      credentials file when ``path`` is not given.
    * ``path``: a credentials file holding any number of pairs, in either format:

      - AWS INI format (as ``~/.aws/credentials``): ``[profile]`` sections with
        ``aws_access_key_id`` and ``aws_secret_access_key`` (other keys ignored);
      - one ``ACCESS_KEY_ID:SECRET_ACCESS_KEY`` pair per line.

      In both, blank lines and lines starting with ``#`` (or ``;`` in INI) are ignored.  The
      format is INI if the first significant line starts with ``[``.

    Raises ``ValueError`` on a malformed file or half-configured environment, and
    ``OSError`` if the file cannot be read.
    """
    if env is None:
        env = os.environ
    creds = Credentials()
    akid = env.get(ENV_ACCESS_KEY_ID, "").strip()
    secret = env.get(ENV_SECRET_ACCESS_KEY, "").strip()
    if bool(akid) != bool(secret):
        raise ValueError(f"set both {ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY}, or neither")
    if akid:
        creds.add(akid, secret, source="environment")
    if path is None:
        env_path = env.get(ENV_CREDENTIALS_FILE, "").strip()
        path = env_path or None
    if path is not None:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        _parse_credentials_file(text, os.fspath(path), creds)
    return creds


def _parse_credentials_file(text: str, name: str, creds: Credentials) -> None:
    significant = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    if significant and significant[0].startswith("["):
        parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
        try:
            parser.read_string(text, source=name)
        except configparser.Error as exc:
            raise ValueError(f"malformed credentials file {name}: {exc}") from None
        for section in parser.sections():
            sect = parser[section]
            akid = sect.get("aws_access_key_id", "").strip()
            secret = sect.get("aws_secret_access_key", "").strip()
            if not akid and not secret:
                continue
            if not akid or not secret:
                raise ValueError(
                    f"profile [{section}] in {name} needs both aws_access_key_id and "
                    "aws_secret_access_key"
                )
            creds.add(akid, secret, source=f"{name} [{section}]")
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        akid, sep, secret = line.partition(":")
        if not sep or not akid.strip() or not secret.strip():
            raise ValueError(f"{name}:{lineno}: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY")
        creds.add(akid.strip(), secret.strip(), source=f"{name}:{lineno}")
