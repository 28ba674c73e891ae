"""SIP messages, sans-I/O (RFC 3261 §7, §18.3, §20, §25; RFC 3581 rport; RFC 5626 CRLF
keep-alives).

Bytes in, objects out: :func:`parse_message` reads one datagram, :class:`StreamParser`
frames messages on a stream (TCP/TLS), :func:`serialize` (or ``bytes(message)``) writes one.
:func:`response_to` builds a UAS response from a request, :func:`stamp_via` and
:func:`response_address` implement the ``received``/``rport`` rules.

Parsing raises :class:`SipError` (with the SIP status the peer should get and a short
reason naming the header, field or line) and nothing else, on any input. Sizes are bounded
by :class:`Limits` before anything is allocated by them.

Header text is decoded as UTF-8 with ``surrogateescape``: any byte sequence parses, and
serializing a parsed message gives the same bytes back for the parts it kept.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field

__all__ = [
    "COMPACT_FORMS",
    "DEFAULT_LIMITS",
    "KEEPALIVE",
    "REASON_PHRASES",
    "HeaderMessage",
    "Headers",
    "KeepAlive",
    "Limits",
    "Message",
    "NameAddr",
    "Params",
    "Request",
    "Response",
    "SipError",
    "SipUri",
    "StreamParser",
    "Via",
    "is_keepalive",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "parse_via",
    "response_address",
    "response_to",
    "serialize",
    "stamp_via",
]

MAGIC_COOKIE = "z9hG4bK"
"""The RFC 3261 branch prefix (§8.1.1.7)."""


class SipError(Exception):
    """A message that cannot be accepted: ``status`` is the SIP response code the peer
    should get (400, 413, 416, 505, 513) and ``reason`` names the offending part."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Size bounds for parsing (bytes unless named otherwise)."""

    max_message_bytes: int = 65535
    """A whole message (RFC 3261's UDP maximum); larger gets 513."""
    max_headers: int = 128
    """Header fields per message (after unfolding); more gets 513."""
    max_header_bytes: int = 8192
    """One header field (after unfolding) or the start line; longer gets 513."""
    max_body_bytes: int = 65535
    """Body size; a larger Content-Length (or datagram body) gets 413."""


DEFAULT_LIMITS = Limits()

COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "v": "Via",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "x": "Session-Expires",
    "u": "Allow-Events",
    "a": "Accept-Contact",
    "b": "Referred-By",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}
"""Compact header names (RFC 3261 §7.3.3 and later RFCs) and their canonical forms."""

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
"""Default reason phrases for :func:`response_to`."""

_CLASS_PHRASES = {1: "Progress", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error"}

_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~\-]+")
_HOST = re.compile(r"[A-Za-z0-9._\-]+")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_URI_FORBIDDEN = re.compile(r'[\x00-\x20\x7f<>"]')
_VIA = re.compile(
    r"[ \t]*([A-Za-z0-9.!%*_+`'~\-]+)[ \t]*/[ \t]*([A-Za-z0-9.!%*_+`'~\-]+)[ \t]*/"
    r"[ \t]*([A-Za-z0-9.!%*_+`'~\-]+)[ \t]+(.*)",
    re.S,
)
_SIP_SCHEMES = ("sip", "sips", "tel")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_COPIED = ("from", "to", "call-id", "cseq")


def _short(text: str, n: int = 40) -> str:
    """``text`` cut for an error reason."""
    return repr(text if len(text) <= n else text[:n] + "...")


def _is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def _digits(text: str, max_len: int = 10) -> bool:
    return 0 < len(text) <= max_len and text.isascii() and text.isdigit()


def _key(name: str) -> str:
    """The lookup key of a header name: lower case, compact forms expanded."""
    low = name.lower()
    if len(low) == 1:
        full = COMPACT_FORMS.get(low)
        if full is not None:
            return full.lower()
    return low


def _split(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside double quotes (with backslash escapes) and
    ``<...>``."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    quoted = angle = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == sep and not angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


# --- headers ---------------------------------------------------------------------------------


class Headers:
    """An ordered list of ``(name, value)`` header fields with case-insensitive lookup.

    Names keep the spelling they were given (the parser expands compact forms to their
    canonical names); lookups accept any case and the compact forms.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        key = _key(name)
        for n, v in self._items:
            if _key(n) == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` (one per header line), in order."""
        key = _key(name)
        return [v for n, v in self._items if _key(n) == key]

    def values(self, name: str) -> list[str]:
        """Every element of the list header ``name`` (Via, Contact, Supported, Require,
        Allow, ...): each line split on commas outside quotes and ``<...>``, stripped,
        empty elements dropped."""
        out: list[str] = []
        for value in self.get_all(name):
            out += [p for p in (s.strip(" \t") for s in _split(value, ",")) if p]
        return out

    def add(self, name: str, value: str) -> None:
        """Append a header field."""
        self._items.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of ``name`` with one (where the first was, else at the
        end)."""
        key = _key(name)
        out: list[tuple[str, str]] = []
        done = False
        for n, v in self._items:
            if _key(n) != key:
                out.append((n, v))
            elif not done:
                out.append((n, value))
                done = True
        if not done:
            out.append((name, value))
        self._items = out

    def remove(self, name: str) -> None:
        """Remove every field of ``name``."""
        key = _key(name)
        self._items = [(n, v) for n, v in self._items if _key(n) != key]

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        return any(_key(n) == key for n, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


# --- parameters, URIs, addresses, Via --------------------------------------------------------


class Params(MutableMapping[str, str | None]):
    """``;name=value`` parameters: ordered, case-insensitive names (spelling kept), a value
    or None for a bare ``;name``. Values are kept as sent (quotes included)."""

    def __init__(
        self, items: Mapping[str, str | None] | Iterable[tuple[str, str | None]] = ()
    ) -> None:
        self._d: dict[str, tuple[str, str | None]] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for k, v in pairs:
            self[k] = v

    def __getitem__(self, key: str) -> str | None:
        return self._d[key.lower()][1]

    def __setitem__(self, key: str, value: str | None) -> None:
        low = key.lower()
        old = self._d.get(low)
        self._d[low] = (old[0] if old is not None else key, value)

    def __delitem__(self, key: str) -> None:
        del self._d[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return {k.lower(): v for k, v in self.items()} == {
            str(k).lower(): v for k, v in other.items()
        }

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self._d.values())

    def __repr__(self) -> str:
        return f"Params({dict(self._d.values())!r})"


def parse_params(text: str) -> Params:
    """``;a=b;c`` (the leading ``;`` optional) as :class:`Params`; SipError 400 on a bad
    name."""
    params = Params()
    for piece in _split(text, ";"):
        piece = piece.strip(" \t")
        if not piece:
            continue
        name, eq, value = piece.partition("=")
        name = name.strip(" \t")
        if not _is_token(name):
            raise SipError(400, f"bad parameter name {_short(name)}")
        params[name] = value.strip(" \t") if eq else None
    return params


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _port(text: str) -> int:
    if not _digits(text, 5) or int(text) > 65535:
        raise SipError(400, f"bad port {_short(text)}")
    return int(text)


def _parse_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with IPv6 in brackets; the host is returned without brackets."""
    if text.startswith("["):
        end = text.find("]")
        host = text[1:end] if end > 0 else ""
        if not host or _IPV6.fullmatch(host) is None:
            raise SipError(400, f"bad IPv6 host {_short(text)}")
        after = text[end + 1 :]
        if not after:
            return host, None
        if not after.startswith(":"):
            raise SipError(400, f"bad host {_short(text)}")
        return host, _port(after[1:])
    host, colon, port = text.partition(":")
    if _HOST.fullmatch(host) is None:
        raise SipError(400, f"bad host {_short(text)}")
    return host, (_port(port) if colon else None)


@dataclass
class SipUri:
    """A ``sip:``/``sips:``/``tel:`` URI (RFC 3261 §19.1, RFC 3966); ``str()`` gives it back.

    For ``tel:`` the number is in ``user`` and ``host`` is empty. A URI of another scheme
    (only accepted inside name-addr headers, e.g. ``From: <urn:...>``) keeps everything
    after the colon in ``opaque``. Escapes (``%40``) are kept as sent.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = field(default_factory=Params)
    headers: dict[str, str] = field(default_factory=dict)
    opaque: str | None = None

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{self.params}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(_format_host(self.host))
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(str(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)


def _parse_uri(text: str, *, any_scheme: bool) -> SipUri:
    text = text.strip(" \t")
    colon = text.find(":")
    scheme = text[:colon] if colon > 0 else ""
    if _SCHEME.fullmatch(scheme) is None:
        raise SipError(400, f"bad URI {_short(text)}")
    scheme = scheme.lower()
    rest = text[colon + 1 :]
    if _URI_FORBIDDEN.search(rest) is not None:
        raise SipError(400, f"bad character in URI {_short(text)}")
    if scheme not in _SIP_SCHEMES:
        if not any_scheme:
            raise SipError(416, f"unsupported URI scheme {_short(scheme)}")
        if not rest:
            raise SipError(400, f"bad URI {_short(text)}")
        return SipUri(scheme, opaque=rest)
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not number:
            raise SipError(400, f"bad tel URI {_short(text)}")
        return SipUri("tel", user=number, params=parse_params(params))
    rest, question, header_text = rest.partition("?")
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon_pw, pw = userinfo.partition(":")
        password = pw if colon_pw else None
        if not user:
            raise SipError(400, f"empty user in URI {_short(text)}")
    hostport, _, param_text = rest.partition(";")
    host, port = _parse_hostport(hostport)
    headers: dict[str, str] = {}
    if question:
        for part in header_text.split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            if not name:
                raise SipError(400, f"bad URI header in {_short(text)}")
            headers[name] = value
    return SipUri(scheme, user, password, host, port, parse_params(param_text), headers)


def parse_uri(text: str) -> SipUri:
    """A SIP, SIPS or tel URI (a Request-URI): SipError 416 for another scheme, 400 when
    malformed."""
    return _parse_uri(text, any_scheme=False)


@dataclass
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    display_name: str | None
    uri: SipUri
    params: Params = field(default_factory=Params)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter, or None."""
        return self.params.get("tag")

    def __str__(self) -> str:
        name = ""
        if self.display_name is not None:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{escaped}" '
        return f"{name}<{self.uri}>{self.params}"


def parse_name_addr(text: str) -> NameAddr:
    """A name-addr (``"Name" <uri>;params``) or addr-spec (``uri;params``); without ``<>``
    the parameters belong to the header, not the URI (RFC 3261 §20.10). Any URI scheme is
    accepted here (``opaque`` for non-SIP ones). SipError 400 when malformed."""
    s = text.strip(" \t")
    display: str | None = None
    if s.startswith('"'):
        chars: list[str] = []
        i, n = 1, len(s)
        while i < n and s[i] != '"':
            if s[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(s[i])
            i += 1
        if i >= n:
            raise SipError(400, f"unterminated display name in {_short(s)}")
        display = "".join(chars)
        rest: str | None = s[i + 1 :].lstrip(" \t")
        if not rest or not rest.startswith("<"):
            raise SipError(400, f"expected '<' after the display name in {_short(s)}")
    else:
        lt = s.find("<")
        if lt >= 0:
            display = s[:lt].strip(" \t") or None
            rest = s[lt:]
        else:
            rest = None
    if rest is not None:
        gt = rest.find(">")
        if gt < 0:
            raise SipError(400, f"missing '>' in {_short(s)}")
        uri = _parse_uri(rest[1:gt], any_scheme=True)
        tail = rest[gt + 1 :].strip(" \t")
        if tail and not tail.startswith(";"):
            raise SipError(400, f"unexpected text after '>' in {_short(s)}")
        return NameAddr(display, uri, parse_params(tail))
    if not s:
        raise SipError(400, "empty address")
    uri_text, _, param_text = s.partition(";")
    return NameAddr(None, _parse_uri(uri_text, any_scheme=True), parse_params(param_text))


def _default_port(transport: str) -> int:
    return 5061 if transport.upper() in ("TLS", "WSS", "TLS-SCTP") else 5060


@dataclass
class Via:
    """One Via element: ``SIP/2.0/<transport> <host>[:<port>];params`` (host without IPv6
    brackets, transport upper case)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=Params)

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter, or None."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (an address), or None."""
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` port value (RFC 3581), or None when absent or valueless."""
        value = self.params.get("rport")
        return int(value) if value is not None and _digits(value, 5) else None

    @property
    def rport_requested(self) -> bool:
        """True when the ``rport`` parameter is present (with or without a value)."""
        return "rport" in self.params

    @property
    def sent_by(self) -> tuple[str, int]:
        """``(host, port)`` with the transport's default port filled in."""
        return self.host, self.port if self.port is not None else _default_port(self.transport)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {_format_host(self.host)}{port}{self.params}"


def parse_via(text: str) -> Via:
    """One Via element (split a header with :meth:`Headers.values` first); SipError 400
    when malformed."""
    m = _VIA.fullmatch(text)
    if m is None:
        raise SipError(400, f"bad Via {_short(text)}")
    name, version, transport, rest = m.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise SipError(400, f"bad Via protocol {_short(name + '/' + version)}")
    hostport, _, param_text = rest.partition(";")
    host, port = _parse_hostport(hostport.replace(" ", "").replace("\t", ""))
    return Via(transport.upper(), host, port, parse_params(param_text))


def response_address(via: Via, source: tuple[str, int]) -> tuple[str, int]:
    """Where a response goes over an unreliable transport (RFC 3261 §18.2.2, RFC 3581
    §4): with ``rport``, the ``received`` address (else the source address) and the
    ``rport`` value (else the source port); else ``received`` or the sent-by host, at the
    sent-by port (default 5060). ``maddr`` is ignored. Hosts come without brackets."""
    if via.rport_requested:
        host = _unbracket(via.received) if via.received else source[0]
        port = via.rport
        return host, port if port is not None else source[1]
    host, port = via.sent_by
    return (_unbracket(via.received) if via.received else host), port


# --- messages ----------------------------------------------------------------------------------


def _parse_cseq(value: str | None) -> tuple[int, str]:
    if value is None:
        raise SipError(400, "missing CSeq header")
    parts = value.split()
    if len(parts) != 2 or not _digits(parts[0]) or not _is_token(parts[1]):
        raise SipError(400, f"bad CSeq {_short(value)}")
    number = int(parts[0])
    if number >= 2**31:
        raise SipError(400, f"CSeq number too large {_short(value)}")
    return number, parts[1]


class HeaderMessage:
    """What requests and responses share: the header-derived properties, ``bytes()``."""

    headers: Headers
    body: bytes

    def start_line(self) -> str:
        """The first line, without CRLF."""
        raise NotImplementedError

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipError(400, f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID (SipError 400 when missing)."""
        return self._required("Call-ID").strip(" \t")

    @property
    def cseq(self) -> tuple[int, str]:
        """``(number, method)`` of the CSeq header (SipError 400 when missing/malformed)."""
        return _parse_cseq(self.headers.get("CSeq"))

    @property
    def from_tag(self) -> str | None:
        """The From tag (SipError 400 when From is missing/malformed)."""
        return parse_name_addr(self._required("From")).tag

    @property
    def to_tag(self) -> str | None:
        """The To tag (SipError 400 when To is missing/malformed)."""
        return parse_name_addr(self._required("To")).tag

    @property
    def top_via(self) -> Via:
        """The first Via element (SipError 400 when missing/malformed)."""
        vias = self.headers.values("Via")
        if not vias:
            raise SipError(400, "missing Via header")
        return parse_via(vias[0])

    @property
    def branch(self) -> str | None:
        """The top Via's branch."""
        return self.top_via.branch

    @property
    def content_type(self) -> str | None:
        """The Content-Type value, or None."""
        return self.headers.get("Content-Type")

    def __bytes__(self) -> bytes:
        return serialize(self)


@dataclass(eq=True)
class Request(HeaderMessage):
    """A SIP request. ``uri`` is the Request-URI text (:attr:`request_uri` parses it)."""

    method: str
    uri: str
    headers: Headers
    body: bytes = b""

    def start_line(self) -> str:
        """``METHOD uri SIP/2.0``."""
        return f"{self.method} {self.uri} SIP/2.0"

    @property
    def request_uri(self) -> SipUri:
        """The parsed Request-URI."""
        return parse_uri(self.uri)


@dataclass(eq=True)
class Response(HeaderMessage):
    """A SIP response."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def start_line(self) -> str:
        """``SIP/2.0 status reason``."""
        return f"SIP/2.0 {self.status:03d} {self.reason}"


Message = Request | Response


def _head_end(data: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """``(end of the headers, start of the body)`` at the first empty line (CRLF or bare
    LF line ends) at or after ``start``, or None."""
    a = data.find(b"\n\r\n", start)
    b = data.find(b"\n\n", start)
    if a < 0 and b < 0:
        return None
    if b < 0 or 0 <= a < b:
        return a, a + 3
    return b, b + 2


def _skip_crlf(data: bytes) -> int:
    i = 0
    while i < len(data) and data[i] in b"\r\n":
        i += 1
    return i


def _parse_head(head: bytes, limits: Limits) -> Request | Response:
    """The start line and headers (no empty line at the end); validates the headers the
    transaction and dialog layers rely on."""
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    first = lines[0].removesuffix("\r")
    if len(first) > limits.max_header_bytes:
        raise SipError(513, f"start line longer than {limits.max_header_bytes} bytes")
    if "\r" in first:
        raise SipError(400, "CR inside the start line")

    fields: list[tuple[str, list[str]]] = []
    size = 0
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.removesuffix("\r")
        if "\r" in line:
            raise SipError(400, f"CR inside header line {number}")
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipError(400, "continuation line before any header")
            size += len(line)
            if size > limits.max_header_bytes:
                raise SipError(513, f"{fields[-1][0]} header over {limits.max_header_bytes} bytes")
            fields[-1][1].append(line.strip(" \t"))
            continue
        name, colon, value = line.partition(":")
        name = name.strip(" \t")
        if not colon:
            raise SipError(400, f"header line {number} has no ':' ({_short(line)})")
        if not _is_token(name):
            raise SipError(400, f"bad header name {_short(name)} (line {number})")
        if len(fields) >= limits.max_headers:
            raise SipError(513, f"more than {limits.max_headers} headers")
        size = len(line)
        if size > limits.max_header_bytes:
            raise SipError(513, f"{name} header over {limits.max_header_bytes} bytes")
        if len(name) == 1:
            name = COMPACT_FORMS.get(name.lower(), name)
        fields.append((name, [value.strip(" \t")]))
    headers = Headers((n, " ".join(p for p in parts if p)) for n, parts in fields)

    message: Request | Response
    if first[:4].upper() == "SIP/":
        version, _, rest = first.partition(" ")
        if version.upper() != "SIP/2.0":
            raise SipError(505, f"SIP version {_short(version)} not supported")
        code, _, reason = rest.partition(" ")
        if not _digits(code, 3) or len(code) != 3 or not 100 <= int(code) <= 699:
            raise SipError(400, f"bad status code {_short(code)}")
        message = Response(int(code), reason, headers)
    else:
        parts = first.split(" ")
        if len(parts) != 3 or not _is_token(parts[0]):
            raise SipError(400, f"bad request line {_short(first)}")
        method, uri, version = parts
        if version.upper() != "SIP/2.0":
            if version[:4].upper() == "SIP/":
                raise SipError(505, f"SIP version {_short(version)} not supported")
            raise SipError(400, f"bad request line {_short(first)}")
        try:
            parse_uri(uri)
        except SipError as err:
            raise SipError(err.status, f"Request-URI: {err.reason}") from None
        message = Request(method, uri, headers)

    for name in _REQUIRED:
        if name not in headers:
            raise SipError(400, f"missing {name} header")
    _, method = message.cseq
    if isinstance(message, Request) and method != message.method:
        raise SipError(400, f"CSeq method {_short(method)} is not {_short(message.method)}")
    if not message.call_id:
        raise SipError(400, "empty Call-ID")
    vias = headers.values("Via")
    if not vias:
        raise SipError(400, "empty Via header")
    for name in ("From", "To"):
        try:
            parse_name_addr(headers.get(name) or "")
        except SipError as err:
            raise SipError(400, f"{name}: {err.reason}") from None
    for via in vias:
        parse_via(via)
    return message


def _content_length(headers: Headers, limits: Limits) -> int | None:
    values = {v.strip(" \t") for v in headers.get_all("Content-Length")}
    if not values:
        return None
    if len(values) > 1:
        raise SipError(400, "conflicting Content-Length headers")
    value = values.pop()
    if not _digits(value, 12):
        raise SipError(400, f"bad Content-Length {_short(value)}")
    length = int(value)
    if length > limits.max_body_bytes:
        raise SipError(413, f"Content-Length {length} over {limits.max_body_bytes} bytes")
    return length


def parse_message(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """One message from a datagram (RFC 3261 §18.3): the body is Content-Length bytes
    (extra bytes after it are ignored; fewer is an error) or, without Content-Length, the
    rest of the datagram. Leading CRLFs are skipped.

    Checks the start line (505 for a version other than SIP/2.0, 416 for a Request-URI
    that is not sip/sips/tel), the presence of Via, From, To, Call-ID and CSeq, their
    syntax (so the properties of the result do not raise), and the CSeq method of a
    request. Raises :class:`SipError` (400/413/416/505/513) and nothing else.
    """
    if len(data) > limits.max_message_bytes:
        raise SipError(513, f"message of {len(data)} bytes over {limits.max_message_bytes}")
    start = _skip_crlf(data)
    found = _head_end(data, start)
    if found is None:
        if start == len(data):
            raise SipError(400, "empty message")
        raise SipError(400, "no empty line after the headers")
    head_end, body_start = found
    message = _parse_head(data[start:head_end], limits)
    length = _content_length(message.headers, limits)
    available = len(data) - body_start
    if length is None:
        if available > limits.max_body_bytes:
            raise SipError(413, f"body of {available} bytes over {limits.max_body_bytes}")
        message.body = data[body_start:]
    elif available < length:
        raise SipError(400, f"body of {available} bytes, Content-Length says {length}")
    else:
        message.body = data[body_start : body_start + length]
    return message


def is_keepalive(data: bytes) -> bool:
    """True for a datagram of only CRLF/whitespace (a keep-alive, not a message: ignore
    it)."""
    return bool(data) and not data.strip(b"\r\n \t")


@dataclass(frozen=True)
class KeepAlive:
    """A CRLFCRLF keep-alive ping seen on a stream (RFC 5626 §3.5.1): answer with a single
    CRLF (the pong)."""


KEEPALIVE = KeepAlive()


class StreamParser:
    """Frames messages on a stream transport (RFC 3261 §18.3): Content-Length is
    mandatory. ``feed(data)`` returns the complete messages, and :data:`KEEPALIVE` for
    each CRLFCRLF ping between messages (a lone CRLF, a pong, is skipped).

    On an error, ``feed`` returns the messages decoded before it and sets :attr:`error`
    (a :class:`SipError`); the connection must then be closed (after a response with
    ``error.status`` if wanted). Feeding a parser in error raises that error again.
    Buffered bytes are bounded by ``limits.max_message_bytes`` per message (plus the
    chunk being fed).
    """

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.error: SipError | None = None
        self._buf = bytearray()
        self._scan = 0
        self._pending: tuple[Request | Response, int, int] | None = None

    @property
    def buffered(self) -> int:
        """Bytes held that are not yet part of a complete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Request | Response | KeepAlive]:
        """Add bytes; return what they completed (see the class doc)."""
        if self.error is not None:
            raise self.error
        self._buf += data
        out: list[Request | Response | KeepAlive] = []
        try:
            while (item := self._next()) is not None:
                out.append(item)
        except SipError as err:
            self.error = err
            self._buf.clear()
            self._pending = None
        return out

    def _next(self) -> Request | Response | KeepAlive | None:
        buf = self._buf
        limits = self.limits
        if self._pending is None:
            while buf[:2] == b"\r\n":
                if buf[:4] == b"\r\n\r\n":
                    del buf[:4]
                    return KEEPALIVE
                if len(buf) < 4 and b"\r\n\r\n".startswith(buf):
                    return None  # maybe the start of a ping
                del buf[:2]
            if not buf:
                return None
            found = _head_end(buf, max(self._scan - 2, 0))
            if found is None:
                self._scan = len(buf)
                if len(buf) > limits.max_message_bytes:
                    raise SipError(
                        513, f"no end of headers within {limits.max_message_bytes} bytes"
                    )
                return None
            self._scan = 0
            head_end, body_start = found
            if body_start > limits.max_message_bytes:
                raise SipError(513, f"headers over {limits.max_message_bytes} bytes")
            message = _parse_head(bytes(buf[:head_end]), limits)
            length = _content_length(message.headers, limits)
            if length is None:
                raise SipError(400, "missing Content-Length header (mandatory on streams)")
            if body_start + length > limits.max_message_bytes:
                raise SipError(513, f"message over {limits.max_message_bytes} bytes")
            self._pending = (message, body_start, length)
        message, body_start, length = self._pending
        end = body_start + length
        if len(buf) < end:
            return None
        message.body = bytes(buf[body_start:end])
        del buf[:end]
        self._pending = None
        return message


def serialize(message: HeaderMessage) -> bytes:
    """The message as bytes, with Content-Length set to the body's length (written where
    the first Content-Length was, else last). ValueError when a name or value holds CR or
    LF (header injection)."""
    body = message.body
    lines = [message.start_line()]
    length_done = False
    for name, value in message.headers:
        if _key(name) == "content-length":
            if not length_done:
                lines.append(f"{name}: {len(body)}")
                length_done = True
            continue
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"CR or LF in the {name[:40]!r} header")
        lines.append(f"{name}: {value}")
    if "\n" in lines[0] or "\r" in lines[0]:
        raise ValueError("CR or LF in the start line")
    if not length_done:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


def response_to(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6.2): its Via fields in order, From, To
    (with ``;tag=to_tag`` added when given and To has no tag), Call-ID and CSeq copied
    (and Timestamp for 100), then ``headers``, then Content-Type when given. ``reason``
    defaults to :data:`REASON_PHRASES`."""
    h = Headers()
    copied = ("from", "to", "call-id", "cseq", "timestamp") if status == 100 else _COPIED
    for name, value in request.headers:
        key = _key(name)
        if key == "to" and to_tag is not None and "to" not in h:
            try:
                tagged = parse_name_addr(value).tag is not None
            except SipError:
                tagged = ";tag=" in value.lower()
            h.add(name, value if tagged else f"{value};tag={to_tag}")
        elif key == "via" or (key in copied and key not in h):
            h.add(name, value)
    for name, value in headers:
        h.add(name, value)
    if content_type is not None:
        h.set("Content-Type", content_type)
    if reason is None:
        reason = REASON_PHRASES.get(status) or _CLASS_PHRASES.get(status // 100, "Unknown")
    return Response(status, reason, h, body)


def stamp_via(request: Request, source: tuple[str, int]) -> None:
    """Add ``received`` (and the ``rport`` value when the client asked with a bare
    ``rport``) to the top Via, as a server transport does on receipt (RFC 3261 §18.2.1,
    RFC 3581 §4). Modifies ``request``; responses made from it then carry the stamps."""
    for index, (name, value) in enumerate(request.headers._items):
        if _key(name) != "via":
            continue
        elements = _split(value, ",")
        for i, element in enumerate(elements):
            if not element.strip(" \t"):
                continue
            via = parse_via(element)
            host = source[0]
            if via.rport_requested:
                via.params["received"] = host
                via.params["rport"] = str(source[1])
            elif _unbracket(via.host) != host:
                via.params["received"] = host
            else:
                return
            elements[i] = (" " if i else "") + str(via)
            request.headers._items[index] = (name, ",".join(elements))
            return


def new_tag() -> str:
    """A random From/To tag (64 bits)."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A random RFC 3261 branch (magic cookie + 96 bits)."""
    return MAGIC_COOKIE + secrets.token_hex(12)


def new_call_id() -> str:
    """A random Call-ID (128 bits)."""
    return secrets.token_hex(16)
