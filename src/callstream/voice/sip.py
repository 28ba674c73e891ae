"""SIP messages, sans-I/O (RFC 3261 §7, §18.3, §20; RFC 5626 CRLF keep-alives).

Bytes in, objects out: :func:`parse_message` reads one datagram, :class:`StreamParser`
frames messages on a stream (TCP/TLS), :func:`serialize` (or ``bytes(message)``) writes one.
:func:`response_to` builds a UAS response from a request. The header fields and the values
inside them (URIs, addresses, Via) are in :mod:`~callstream.voice.sipheaders`.

Parsing raises :class:`~callstream.voice.errors.SipError` (with the SIP status the peer
should get and a short reason naming the header, field or line) and nothing else, on any
input. Sizes are bounded by :class:`Limits` before anything is allocated by them.

Header text is decoded as UTF-8 with ``surrogateescape``: any byte sequence parses, and
serializing a parsed message gives the same bytes back for the parts it kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from callstream.voice.errors import SipError
from callstream.voice.sipheaders import (
    COMPACT_FORMS,
    Headers,
    SipUri,
    Via,
    _digits,
    _is_token,
    _key,
    _short,
    parse_name_addr,
    parse_uri,
    parse_via,
)

__all__ = [
    "DEFAULT_LIMITS",
    "KEEPALIVE",
    "REASON_PHRASES",
    "HeaderMessage",
    "KeepAlive",
    "Limits",
    "Message",
    "Request",
    "Response",
    "StreamParser",
    "is_keepalive",
    "parse_message",
    "response_to",
    "serialize",
]


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
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_COPIED = ("from", "to", "call-id", "cseq")


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
