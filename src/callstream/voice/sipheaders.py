"""SIP header fields and the values inside them, sans-I/O (RFC 3261 §7.3, §19.1, §20, §25;
RFC 3581 rport).

:class:`Headers` holds a message's fields (case-insensitive, compact forms expanded).
The values the transaction and dialog layers read are parsed here: ``;name=value``
:class:`Params`, :class:`SipUri` (sip, sips, tel), :class:`NameAddr` (From, To, Contact) and
:class:`Via`. :func:`stamp_via` and :func:`response_address` implement the
``received``/``rport`` rules; :func:`new_tag`, :func:`new_branch` and :func:`new_call_id`
make fresh identifiers.

Parsing raises :class:`~callstream.voice.errors.SipError` (400, or 416 for a Request-URI
scheme) with a reason naming the field, and nothing else.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callstream.voice.errors import SipError

if TYPE_CHECKING:
    from callstream.voice.sip import Request

__all__ = [
    "COMPACT_FORMS",
    "MAGIC_COOKIE",
    "Headers",
    "NameAddr",
    "Params",
    "SipUri",
    "Via",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "parse_via",
    "response_address",
    "stamp_via",
]

MAGIC_COOKIE = "z9hG4bK"
"""The RFC 3261 branch prefix (§8.1.1.7)."""

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


# --- identifiers -----------------------------------------------------------------------------


def new_tag() -> str:
    """A random From/To tag (64 bits)."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A random RFC 3261 branch (magic cookie + 96 bits)."""
    return MAGIC_COOKIE + secrets.token_hex(12)


def new_call_id() -> str:
    """A random Call-ID (128 bits)."""
    return secrets.token_hex(16)
