"""Request authentication for the ingest edges: Twilio, Genesys AudioHook, a shared token.

Pure functions: the edge hands in what arrived on the WebSocket upgrade request (method,
path, headers, URL, the configured secrets, the current time) and gets a
:class:`AuthResult` back; on ``ok=False`` it answers ``401`` with nothing more specific
than "unauthorized" (``reason`` is for its log, not for the peer).

Twilio (``X-Twilio-Signature``)
    ``base64(HMAC-SHA1(auth_token, url + key1 + value1 + key2 + value2 ...))`` with the
    POST parameters sorted by name. A Media Streams WebSocket upgrade is a GET, so Twilio
    signs the ``wss://`` URL alone (query string included). Like Twilio's own validators,
    the URL is tried as given and with the default port added or removed.

Genesys AudioHook (RFC 9421 HTTP message signatures)
    ``Signature-Input: sig1=("@request-target" "@authority" "audiohook-organization-id"
    "audiohook-session-id" "audiohook-correlation-id" "x-api-key");keyid="<api key>";
    nonce="...";alg="hmac-sha256";created=...;expires=...`` and
    ``Signature: sig1=:<base64 HMAC-SHA256>:``. The signature base is one line per covered
    component (``"name": value``) followed by ``"@signature-params": <the inner list>``;
    the HMAC key is the client secret (base64-decoded). ``keyid`` must equal the
    ``X-API-KEY`` header, the six components above must all be covered, ``created`` may be
    at most :data:`AUDIOHOOK_MAX_SIGNATURE_AGE_S` old and ``expires`` must lie ahead. An API
    key whose configured secret is empty may connect unsigned (as the Genesys reference
    server allows). Nonces are required but not remembered (no replay cache here).

Shared token (plain WebSocket, AudioSocket-side configuration)
    ``Authorization: Bearer <token>`` or ``?token=<token>``, compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "AUDIOHOOK_MAX_SIGNATURE_AGE_S",
    "AUDIOHOOK_REQUIRED_COMPONENTS",
    "AuthResult",
    "check_audiohook_request",
    "check_shared_token",
    "check_twilio_signature",
    "decode_client_secret",
    "sign_audiohook_request",
    "twilio_signature",
]

AUDIOHOOK_REQUIRED_COMPONENTS: Final = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
"""The components every AudioHook signature must cover (the Genesys protocol's list)."""

AUDIOHOOK_MAX_SIGNATURE_AGE_S: Final = 10
"""How old ``created`` may be, in seconds (the Genesys reference server's value)."""

_CLOCK_SKEW_S: Final = 3
_OBS_FOLD_RE: Final = re.compile(r"[ \t]*\r?\n[ \t]+")
_MAX_FIELD_LEN: Final = 8192
_MIN_NONCE_LEN: Final = 16


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of a request check: ``ok``, or why not (for the log)."""

    ok: bool
    reason: str = ""
    key_id: str | None = None


def _fail(reason: str, key_id: str | None = None) -> AuthResult:
    return AuthResult(False, reason, key_id)


def _lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lowercased; values as RFC 9421 §2.1 canonicalizes them: trimmed,
    obsolete line folding replaced by one space (inner whitespace kept), repeated fields
    joined with ``", "``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        clean = _OBS_FOLD_RE.sub(" ", str(value)).strip(" \t")
        out[key] = f"{out[key]}, {clean}" if key in out else clean
    return out


# --- Twilio ----------------------------------------------------------------------------


def twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str | Iterable[str]] | None = None
) -> str:
    """The ``X-Twilio-Signature`` value Twilio sends for ``url`` and POST ``params``.

    A parameter with several values contributes ``name + value`` once per value, values in
    sorted order (as Twilio's helper libraries do).
    """
    data = url
    for name in sorted(params or {}):
        value = (params or {})[name]
        values = [value] if isinstance(value, str) else sorted(value)
        data += "".join(name + v for v in values)
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


_DEFAULT_PORTS: Final = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def _url_variants(url: str) -> list[str]:
    """``url`` as given, then with its default port added or removed."""
    variants = [url]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return variants
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or parts.hostname is None:
        return variants
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: len(parts.netloc) - len(host)]
    if port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{default}")))
    elif port == default:
        bare = host.rsplit(":", 1)[0]
        variants.append(urlunsplit(parts._replace(netloc=f"{userinfo}{bare}")))
    return variants


def check_twilio_signature(
    auth_token: str,
    url: str,
    signature: str | None,
    params: Mapping[str, str | Iterable[str]] | None = None,
) -> AuthResult:
    """Check ``X-Twilio-Signature`` for a request to ``url`` (with POST ``params``, if any).

    ``url`` is the full URL Twilio called, as configured in TwiML (for Media Streams the
    ``wss://`` URL; behind a TLS-terminating proxy rebuild it from the public host).
    """
    if not signature:
        return _fail("missing X-Twilio-Signature header")
    if not auth_token:
        return _fail("no Twilio auth token configured")
    for candidate in _url_variants(url):
        expected = twilio_signature(auth_token, candidate, params)
        if hmac.compare_digest(expected.encode(), signature.strip().encode()):
            return AuthResult(True)
    return _fail("X-Twilio-Signature does not match")


# --- RFC 8941 structured fields (the subset RFC 9421 signatures use) -------------------

_KEY_RE: Final = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN_RE: Final = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_INT_RE: Final = re.compile(r"-?[0-9]{1,15}")
_BYTES_RE: Final = re.compile(r":([A-Za-z0-9+/=]*):")

_Bare = str | int | bool | bytes


@dataclass(frozen=True, slots=True)
class _Token:
    value: str


@dataclass(frozen=True, slots=True)
class _Item:
    value: _Bare | _Token
    params: tuple[tuple[str, _Bare | _Token], ...]


@dataclass(frozen=True, slots=True)
class _InnerList:
    items: tuple[_Item, ...]
    params: tuple[tuple[str, _Bare | _Token], ...]


class _SFError(ValueError):
    pass


class _SFParser:
    """A strict RFC 8941 dictionary parser for ``Signature-Input`` / ``Signature``."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def _peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def _skip_sp(self) -> None:
        while self._peek() == " ":
            self.i += 1

    def _skip_ows(self) -> None:
        while self._peek() in (" ", "\t") and self._peek():
            self.i += 1

    def _match(self, pattern: re.Pattern[str]) -> str:
        m = pattern.match(self.s, self.i)
        if not m:
            raise _SFError(f"unexpected {self._peek()!r} at offset {self.i}")
        self.i = m.end()
        return m.group(0)

    def _string(self) -> str:
        self.i += 1  # opening quote
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == "\\":
                nxt = self._peek()
                if nxt not in ('"', "\\"):
                    raise _SFError(f"bad escape at offset {self.i}")
                out.append(nxt)
                self.i += 1
            elif c == '"':
                return "".join(out)
            elif not (" " <= c <= "~"):
                raise _SFError(f"bad character in string at offset {self.i - 1}")
            else:
                out.append(c)
        raise _SFError("unterminated string")

    def _bare(self) -> _Bare | _Token:
        c = self._peek()
        if c == '"':
            return self._string()
        if c == ":":
            m = _BYTES_RE.match(self.s, self.i)
            if not m:
                raise _SFError(f"bad byte sequence at offset {self.i}")
            self.i = m.end()
            try:
                return base64.b64decode(m.group(1), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _SFError(f"bad base64 in byte sequence: {exc}") from None
        if c == "?":
            self.i += 1
            flag = self._peek()
            if flag not in ("0", "1"):
                raise _SFError(f"bad boolean at offset {self.i}")
            self.i += 1
            return flag == "1"
        if c == "-" or c.isdigit():
            text = self._match(_INT_RE)
            if self._peek() == ".":
                raise _SFError("decimals are not used in signatures")
            return int(text)
        if c.isalpha() or c == "*":
            return _Token(self._match(_TOKEN_RE))
        raise _SFError(f"unexpected {c!r} at offset {self.i}")

    def _params(self) -> tuple[tuple[str, _Bare | _Token], ...]:
        params: list[tuple[str, _Bare | _Token]] = []
        while self._peek() == ";":
            self.i += 1
            self._skip_sp()
            key = self._match(_KEY_RE)
            value: _Bare | _Token = True
            if self._peek() == "=":
                self.i += 1
                value = self._bare()
            params = [p for p in params if p[0] != key]
            params.append((key, value))
        return tuple(params)

    def _item_or_list(self) -> _Item | _InnerList:
        if self._peek() == "(":
            self.i += 1
            items: list[_Item] = []
            while True:
                self._skip_sp()
                if self._peek() == ")":
                    self.i += 1
                    return _InnerList(tuple(items), self._params())
                value = self._bare()
                items.append(_Item(value, self._params()))
                if self._peek() not in (" ", ")"):
                    raise _SFError(f"unexpected {self._peek()!r} in inner list")
        value = self._bare()
        return _Item(value, self._params())

    def dictionary(self) -> dict[str, _Item | _InnerList]:
        out: dict[str, _Item | _InnerList] = {}
        self._skip_sp()
        while self.i < len(self.s):
            key = self._match(_KEY_RE)
            if self._peek() == "=":
                self.i += 1
                out[key] = self._item_or_list()
            else:
                out[key] = _Item(True, self._params())
            self._skip_ows()
            if self.i >= len(self.s):
                break
            if self._peek() != ",":
                raise _SFError(f"expected ',' at offset {self.i}")
            self.i += 1
            self._skip_ows()
            if self.i >= len(self.s):
                raise _SFError("trailing comma")
        return out


def _ser_bare(value: _Bare | _Token) -> str:
    if isinstance(value, _Token):
        return value.value
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ser_params(params: Iterable[tuple[str, _Bare | _Token]]) -> str:
    return "".join(f";{k}" if v is True else f";{k}={_ser_bare(v)}" for k, v in params)


def _ser_inner_list(inner: _InnerList) -> str:
    items = " ".join(_ser_bare(i.value) + _ser_params(i.params) for i in inner.items)
    return f"({items}){_ser_params(inner.params)}"


# --- AudioHook ---------------------------------------------------------------------------


def decode_client_secret(secret: str) -> bytes:
    """An AudioHook client secret as configured in Genesys Cloud (base64) -> key bytes."""
    return base64.b64decode(secret, validate=True)


def _signature_base(components: Iterable[str], values: Mapping[str, str], params_text: str) -> str:
    lines = [f'"{name}": {values[name]}' for name in components]
    lines.append(f'"@signature-params": {params_text}')
    return "\n".join(lines)


def _component_values(path: str, method: str, headers: Mapping[str, str]) -> dict[str, str]:
    values = dict(headers)
    values["@request-target"] = path
    values["@method"] = method.upper()
    values["@path"] = path.split("?", 1)[0]
    if "host" in headers:
        values["@authority"] = headers["host"].lower()
    return values


def sign_audiohook_request(
    path: str,
    authority: str,
    *,
    organization_id: str,
    session_id: str,
    correlation_id: str,
    api_key: str,
    client_secret: bytes,
    created: int,
    expires: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers a Genesys AudioHook client sends on its upgrade request, signed.

    Returns ``Host``, the ``Audiohook-*`` ids, ``X-API-KEY``, ``Signature-Input`` and
    ``Signature`` (the replay client's side of :func:`check_audiohook_request`).
    """
    headers = {
        "host": authority,
        "audiohook-organization-id": organization_id,
        "audiohook-session-id": session_id,
        "audiohook-correlation-id": correlation_id,
        "x-api-key": api_key,
    }
    params: list[tuple[str, _Bare | _Token]] = [
        ("keyid", api_key),
        ("nonce", nonce if nonce is not None else secrets.token_urlsafe(24)),
        ("alg", "hmac-sha256"),
        ("created", created),
    ]
    if expires is not None:
        params.append(("expires", expires))
    inner = _InnerList(tuple(_Item(c, ()) for c in AUDIOHOOK_REQUIRED_COMPONENTS), tuple(params))
    params_text = _ser_inner_list(inner)
    values = _component_values(path, "GET", headers)
    base = _signature_base(AUDIOHOOK_REQUIRED_COMPONENTS, values, params_text)
    digest = hmac.new(client_secret, base.encode(), hashlib.sha256).digest()
    return {
        "Host": authority,
        "Audiohook-Organization-Id": organization_id,
        "Audiohook-Session-Id": session_id,
        "Audiohook-Correlation-Id": correlation_id,
        "X-API-KEY": api_key,
        "Signature-Input": f"sig1={params_text}",
        "Signature": f"sig1=:{base64.b64encode(digest).decode('ascii')}:",
    }


def check_audiohook_request(
    method: str,
    path: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    secrets_by_key: Mapping[str, bytes],
    *,
    now: float,
    max_age_s: float = AUDIOHOOK_MAX_SIGNATURE_AGE_S,
) -> AuthResult:
    """Check an AudioHook upgrade request's API key and RFC 9421 signature.

    ``path`` is the request target (path and query) as on the request line, ``headers``
    the request headers (any case; a multidict's items are fine), ``secrets_by_key`` the
    configured API key -> client secret bytes (see :func:`decode_client_secret`), ``now``
    the current Unix time.
    """
    try:
        return _check_audiohook(
            method, path, _lower_headers(headers), secrets_by_key, now, max_age_s
        )
    except (_SFError, ValueError, TypeError) as exc:
        return _fail(f"malformed signature headers: {exc}")


def _check_audiohook(
    method: str,
    path: str,
    headers: dict[str, str],
    secrets_by_key: Mapping[str, bytes],
    now: float,
    max_age_s: float,
) -> AuthResult:
    api_key = headers.get("x-api-key")
    if not api_key:
        return _fail("missing X-API-KEY header")
    raw_input = headers.get("signature-input")
    raw_sig = headers.get("signature")
    if raw_input is None and raw_sig is None:
        if secrets_by_key.get(api_key) == b"":
            return AuthResult(True, "unsigned request for a key without a client secret", api_key)
        return _fail("request is not signed", api_key)
    if raw_input is None or raw_sig is None:
        return _fail("Signature and Signature-Input must come together", api_key)
    if len(raw_input) > _MAX_FIELD_LEN or len(raw_sig) > _MAX_FIELD_LEN:
        return _fail("signature header too long", api_key)
    inputs = _SFParser(raw_input).dictionary()
    sigs = _SFParser(raw_sig).dictionary()
    if not inputs:
        return _fail("empty Signature-Input", api_key)
    label, inner = next(iter(inputs.items()))
    if not isinstance(inner, _InnerList):
        return _fail(f"Signature-Input {label!r} is not an inner list", api_key)
    sig_item = sigs.get(label)
    if not isinstance(sig_item, _Item) or not isinstance(sig_item.value, bytes):
        return _fail(f"no byte-sequence Signature for label {label!r}", api_key)

    params = dict(inner.params)
    for name in ("keyid", "nonce", "alg"):
        if name in params and not isinstance(params[name], str):
            return _fail(f"signature parameter {name} must be a string", api_key)
    for name in ("created", "expires"):
        if name in params and (isinstance(params[name], bool) or not isinstance(params[name], int)):
            return _fail(f"signature parameter {name} must be an integer", api_key)
    if params.get("keyid") != api_key:
        return _fail("signature keyid does not match X-API-KEY", api_key)
    nonce = params.get("nonce")
    if not isinstance(nonce, str) or len(nonce) < _MIN_NONCE_LEN:
        return _fail("missing or too short nonce", api_key)
    if params.get("alg", "hmac-sha256") != "hmac-sha256":
        return _fail(f"unsupported signature algorithm {params['alg']!r}", api_key)
    created = params.get("created")
    expires = params.get("expires")
    if not isinstance(created, int):
        return _fail("signature has no created time", api_key)
    if created > now + _CLOCK_SKEW_S:
        return _fail("signature created in the future", api_key)
    if created + max_age_s < now - _CLOCK_SKEW_S:
        return _fail("signature too old", api_key)
    if isinstance(expires, int) and expires < now - _CLOCK_SKEW_S:
        return _fail("signature expired", api_key)

    components: list[str] = []
    for item in inner.items:
        if not isinstance(item.value, str) or item.params:
            return _fail("covered components must be plain strings", api_key)
        if item.value in components:
            return _fail(f"component {item.value!r} listed twice", api_key)
        components.append(item.value)
    missing = [c for c in AUDIOHOOK_REQUIRED_COMPONENTS if c not in components]
    if missing:
        return _fail(f"signature does not cover {', '.join(missing)}", api_key)
    values = _component_values(path, method, headers)
    absent = [c for c in components if c not in values]
    if absent:
        return _fail(f"cannot resolve component {absent[0]!r}", api_key)
    base = _signature_base(components, values, _ser_inner_list(inner))

    secret = secrets_by_key.get(api_key)
    # An unknown key is still run through the HMAC so the answer takes the same time.
    key = secret if secret else secrets.token_bytes(32)
    computed = hmac.new(key, base.encode(), hashlib.sha256).digest()
    matches = hmac.compare_digest(computed, sig_item.value)
    if secret is None:
        return _fail("unknown API key", api_key)
    if not matches:
        return _fail("signature does not match", api_key)
    return AuthResult(True, "", api_key)


# --- Shared token -----------------------------------------------------------------------


def check_shared_token(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    query: Mapping[str, str],
    tokens: Iterable[str],
) -> AuthResult:
    """Check ``Authorization: Bearer <token>`` or the ``token`` query parameter.

    Every configured token is compared (in constant time) so the answer does not reveal
    which one came close. An empty ``tokens`` refuses everything.
    """
    offered: str | None = None
    auth = _lower_headers(headers).get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        offered = value.strip()
    elif query.get("token"):
        offered = query["token"]
    if offered is None:
        return _fail("no token (Authorization: Bearer or ?token=)")
    found = False
    for token in tokens:
        if token and hmac.compare_digest(token.encode(), offered.encode()):
            found = True
    return AuthResult(True) if found else _fail("token not accepted")
