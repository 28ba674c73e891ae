"""SDP (RFC 8866, formerly RFC 4566) parsing, writing and the recorder's offer/answer (RFC 3264).

Sans-I/O: text in, dataclasses out, and back. The parser is tolerant of what real session
recording clients send (LF-only line ends, trailing spaces, blank lines, lines out of the RFC
order, unknown line types and attributes, a missing ``t=`` or ``c=``), and strict on what a
recorder relies on: the ``v=``/``o=`` lines, ``m=`` syntax, ports 0..65535, RTP payload types
0..127 and ``a=rtpmap`` syntax. Input is bounded (:data:`MAX_SDP_BYTES`, :data:`MAX_LINES`,
:data:`MAX_MEDIA`). Every error is an :class:`SdpError` whose message names the line number
and the field.

:func:`answer_recording` builds the answer a recording server (the SIPREC SRS, or the Cisco NBR
target) gives: one m-line per offered m-line in the same order, each either rejected (port 0)
or accepting exactly one audio codec (plus telephone-event) in ``recvonly`` (``inactive``
when the offer has nothing to send).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "DIRECTIONS",
    "MAX_LINES",
    "MAX_MEDIA",
    "MAX_SDP_BYTES",
    "STATIC_PAYLOAD_TYPES",
    "Connection",
    "MediaDescription",
    "NegotiatedMedia",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "answer_recording",
    "chosen_codec",
    "negotiated_media",
    "parse_sdp",
]

MAX_SDP_BYTES = 64 * 1024
"""Largest SDP body :func:`parse_sdp` accepts."""
MAX_LINES = 1000
"""Most lines :func:`parse_sdp` accepts."""
MAX_MEDIA = 64
"""Most ``m=`` lines :func:`parse_sdp` accepts."""

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
"""The RFC 3264 direction attributes."""


class SdpError(ValueError):
    """Malformed or unsupported SDP; the message names the line number and the field."""


@dataclass(frozen=True)
class RtpMap:
    """One ``a=rtpmap`` (or a static payload type): ``PT encoding/clock_rate[/channels]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    def to_value(self) -> str:
        """The attribute value, e.g. ``0 PCMU/8000`` (channels only when not 1)."""
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    pt: RtpMap(pt, enc, rate, ch)
    for pt, enc, rate, ch in (
        (0, "PCMU", 8000, 1),
        (3, "GSM", 8000, 1),
        (4, "G723", 8000, 1),
        (5, "DVI4", 8000, 1),
        (6, "DVI4", 16000, 1),
        (7, "LPC", 8000, 1),
        (8, "PCMA", 8000, 1),
        (9, "G722", 8000, 1),
        (10, "L16", 44100, 2),
        (11, "L16", 44100, 1),
        (12, "QCELP", 8000, 1),
        (13, "CN", 8000, 1),
        (14, "MPA", 90000, 1),
        (15, "G728", 8000, 1),
        (16, "DVI4", 11025, 1),
        (17, "DVI4", 22050, 1),
        (18, "G729", 8000, 1),
        (25, "CelB", 90000, 1),
        (26, "JPEG", 90000, 1),
        (28, "nv", 90000, 1),
        (31, "H261", 90000, 1),
        (32, "MPV", 90000, 1),
        (33, "MP2T", 90000, 1),
        (34, "H263", 90000, 1),
    )
}
"""RFC 3551 static payload types, used when an m-line lists one without ``a=rtpmap``."""


@dataclass
class Connection:
    """A ``c=`` line: ``IN IP4 192.0.2.1`` (the address may carry ``/ttl``)."""

    nettype: str
    addrtype: str
    address: str

    def to_value(self) -> str:
        """The line value."""
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass
class Origin:
    """The ``o=`` line. Session id and version are kept as sent (digits per the RFC)."""

    username: str
    session_id: str
    session_version: str
    nettype: str
    addrtype: str
    address: str

    def to_value(self) -> str:
        """The line value."""
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


def _is_rtp(proto: str) -> bool:
    return "RTP/" in proto.upper()


def _parse_rtpmap(value: str) -> RtpMap:
    """Parse an ``a=rtpmap`` value; ValueError with the reason when malformed."""
    pt_text, _, rest = value.strip().partition(" ")
    parts = rest.strip().split("/")
    if not pt_text.isdigit() or not 0 <= int(pt_text) <= 127:
        raise ValueError(f"payload type {pt_text!r} is not 0..127")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].isdigit():
        raise ValueError(f"expected <encoding>/<clock rate>[/<channels>], got {rest!r}")
    channels = 1
    if len(parts) == 3:
        if not parts[2].isdigit() or int(parts[2]) < 1:
            raise ValueError(f"channel count {parts[2]!r} is not a positive integer")
        channels = int(parts[2])
    return RtpMap(int(pt_text), parts[0], int(parts[1]), channels)


def _attribute(attributes: list[tuple[str, str | None]], name: str) -> str | None:
    """The value of the first ``a=<name>`` (``""`` for a property attribute), else None."""
    for key, value in attributes:
        if key == name:
            return "" if value is None else value
    return None


def _direction(attributes: list[tuple[str, str | None]]) -> str | None:
    """The direction attribute among ``attributes`` (the last one wins), else None."""
    found = None
    for key, _ in attributes:
        if key in DIRECTIONS:
            found = key
    return found


@dataclass
class MediaDescription:
    """One media section: the ``m=`` line and the ``i=``/``c=``/``b=``/``k=``/``a=`` lines after it.

    ``attributes`` keeps every ``a=`` line in order as ``(name, value)``; a property attribute
    (``a=sendonly``) has value None. ``other`` keeps ``i=``, ``k=`` and unknown line types as
    ``(type, value)``. ``session_direction`` is the session-level direction attribute, set by
    :func:`parse_sdp` so that :attr:`direction` resolves fully; it is not written out and not
    compared.
    """

    media: str
    port: int
    port_count: int
    proto: str
    formats: list[str]
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)
    session_direction: str | None = field(default=None, compare=False, repr=False)

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=<name>`` (``""`` for a property attribute), else None."""
        return _attribute(self.attributes, name)

    def attribute_values(self, name: str) -> list[str]:
        """The values of every ``a=<name>`` in order (``""`` for property attributes)."""
        return ["" if v is None else v for k, v in self.attributes if k == name]

    @property
    def media_direction(self) -> str | None:
        """The media-level direction attribute (the last one wins), else None."""
        return _direction(self.attributes)

    @property
    def direction(self) -> str:
        """``sendrecv``/``sendonly``/``recvonly``/``inactive``: media-level, else the session's
        (as set by :func:`parse_sdp`), else ``sendrecv`` (RFC 3264 §5.1)."""
        return self.media_direction or self.session_direction or "sendrecv"

    def direction_in(self, session_default: str | None) -> str:
        """The direction with an explicit session-level default."""
        return self.media_direction or session_default or "sendrecv"

    @property
    def label(self) -> str | None:
        """The ``a=label`` value (RFC 4574), stripped, else None."""
        value = self.attribute("label")
        return value.strip() if value is not None else None

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload type -> mapping for the listed formats: ``a=rtpmap`` lines, and RFC 3551
        static payload types that have none. Formats with neither are absent."""
        if not _is_rtp(self.proto):
            return {}
        explicit: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            try:
                rtpmap = _parse_rtpmap(value)
            except ValueError:
                continue
            explicit.setdefault(rtpmap.payload_type, rtpmap)
        result: dict[int, RtpMap] = {}
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            found = explicit.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if found is not None:
                result[pt] = found
        return result

    def fmtp(self, payload_type: int) -> str | None:
        """The ``a=fmtp`` parameters for a payload type, else None."""
        for value in self.attribute_values("fmtp"):
            pt_text, _, params = value.strip().partition(" ")
            if pt_text == str(payload_type):
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (fractions truncated), else None."""
        return _int_attr(self.attribute("ptime"))

    @property
    def maxptime(self) -> int | None:
        """``a=maxptime`` in milliseconds, else None."""
        return _int_attr(self.attribute("maxptime"))

    @property
    def telephone_event_pts(self) -> set[int]:
        """Payload types mapped to ``telephone-event`` (RFC 4733)."""
        return {pt for pt, m in self.rtpmaps.items() if m.encoding.lower() == "telephone-event"}

    @property
    def comfort_noise_pts(self) -> set[int]:
        """Payload types mapped to ``CN`` (RFC 3389)."""
        return {pt for pt, m in self.rtpmaps.items() if m.encoding.upper() == "CN"}

    @property
    def rtcp_port(self) -> int | None:
        """The RTCP port: ``a=rtcp`` (RFC 3605), else the RTP port + 1; None when rejected."""
        value = self.attribute("rtcp")
        if value:
            first = value.split()[0]
            if first.isdigit() and 0 < int(first) <= 65535:
                return int(first)
        if self.port == 0:
            return None
        if self.attribute("rtcp-mux") is not None:
            return self.port
        return self.port + 1

    def to_lines(self) -> list[str]:
        """The section's lines in RFC 8866 order (``m= i= c= b= k= a=``), without line ends."""
        port = f"{self.port}/{self.port_count}" if self.port_count != 1 else str(self.port)
        lines = [f"m={' '.join([self.media, port, self.proto, *self.formats])}"]
        lines += [f"i={v}" for k, v in self.other if k == "i"]
        if self.connection is not None:
            lines.append(f"c={self.connection.to_value()}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"k={v}" for k, v in self.other if k == "k"]
        lines += [f"{k}={v}" for k, v in self.other if k not in ("i", "k")]
        lines += [_attr_line(k, v) for k, v in self.attributes]
        return lines


def _attr_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


def _int_attr(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(float(value.strip()))
    except (ValueError, OverflowError):
        return None


_SESSION_BEFORE_C = ("i", "u", "e", "p")
_SESSION_AFTER_T = ("r", "z", "k")


@dataclass
class SessionDescription:
    """A whole SDP. ``times`` holds the ``t=`` values; ``other`` keeps ``i= u= e= p= r= z= k=``
    and unknown session-level line types as ``(type, value)``."""

    version: int
    origin: Origin
    session_name: str
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The value of the first session-level ``a=<name>`` (``""`` if valueless), else None."""
        return _attribute(self.attributes, name)

    @property
    def session_direction(self) -> str | None:
        """The session-level direction attribute, else None."""
        return _direction(self.attributes)

    def direction_of(self, m: MediaDescription) -> str:
        """The direction of a media section: media-level, else session-level, else sendrecv."""
        return m.direction_in(self.session_direction)

    def address_of(self, m: MediaDescription) -> str | None:
        """The connection address of a media section (media ``c=``, else session ``c=``),
        without any ``/ttl`` suffix."""
        conn = m.connection or self.connection
        if conn is None:
            return None
        return conn.address.split("/")[0]

    def to_text(self) -> str:
        """The SDP text in RFC 8866 line order with CRLF line ends (a final CRLF included)."""
        lines = [
            f"v={self.version}",
            f"o={self.origin.to_value()}",
            f"s={self.session_name}",
        ]
        for kind in _SESSION_BEFORE_C:
            lines += [f"{kind}={v}" for k, v in self.other if k == kind]
        if self.connection is not None:
            lines.append(f"c={self.connection.to_value()}")
        lines += [f"b={b}" for b in self.bandwidths]
        lines += [f"t={t}" for t in (self.times or ["0 0"])]
        for kind in _SESSION_AFTER_T:
            lines += [f"{kind}={v}" for k, v in self.other if k == kind]
        known = (*_SESSION_BEFORE_C, *_SESSION_AFTER_T)
        lines += [f"{k}={v}" for k, v in self.other if k not in known]
        lines += [_attr_line(k, v) for k, v in self.attributes]
        for m in self.media:
            lines += m.to_lines()
        return "\r\n".join(lines) + "\r\n"


def _parse_connection(value: str, lineno: int) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"line {lineno}: c= expects '<nettype> <addrtype> <address>', got {value!r}")
    return Connection(parts[0], parts[1], parts[2])


def _parse_origin(value: str, lineno: int) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(
            f"line {lineno}: o= expects 6 fields (username sess-id sess-version nettype "
            f"addrtype address), got {len(parts)}"
        )
    return Origin(*parts)


def _parse_media_line(value: str, lineno: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"line {lineno}: m= expects '<media> <port> <proto> <fmt> ...'")
    media, port_text, proto, formats = parts[0], parts[1], parts[2], parts[3:]
    port_str, slash, count_str = port_text.partition("/")
    if not port_str.isdigit() or not 0 <= int(port_str) <= 65535:
        raise SdpError(f"line {lineno}: m= port {port_str!r} is not 0..65535")
    count = 1
    if slash:
        if not count_str.isdigit() or not 1 <= int(count_str) <= 65535:
            raise SdpError(f"line {lineno}: m= port count {count_str!r} is not a positive integer")
        count = int(count_str)
    port = int(port_str)
    if not formats and port != 0:
        raise SdpError(f"line {lineno}: m= lists no formats")
    if _is_rtp(proto):
        for fmt in formats:
            if not fmt.isdigit() or not 0 <= int(fmt) <= 127:
                raise SdpError(f"line {lineno}: m= payload type {fmt!r} is not 0..127")
    return MediaDescription(media, port, count, proto, formats)


def _split_attribute(value: str) -> tuple[str, str | None]:
    name, colon, rest = value.partition(":")
    return (name, rest) if colon else (name, None)


def parse_sdp(data: str | bytes) -> SessionDescription:
    """Parse an SDP body (RFC 8866).

    Accepts CRLF or LF line ends, trailing white space, blank lines, unknown line types and
    attributes (kept, and written back by :meth:`SessionDescription.to_text`) and a missing
    ``s=``/``t=``. Raises :class:`SdpError` (naming the line and field) for: input over
    :data:`MAX_SDP_BYTES`/:data:`MAX_LINES`/:data:`MAX_MEDIA`, bytes that are not UTF-8, a
    first line other than ``v=0``, a missing or malformed ``o=``, a line that is not
    ``<letter>=<value>``, a malformed ``m=``/``c=``/``a=rtpmap`` line, a port outside 0..65535
    or an RTP payload type outside 0..127.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_SDP_BYTES:
            raise SdpError(f"SDP is {len(data)} bytes, over the {MAX_SDP_BYTES}-byte limit")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP is not UTF-8 (byte offset {exc.start})") from None
    else:
        text = data
        if len(text) > MAX_SDP_BYTES:
            raise SdpError(f"SDP is {len(text)} characters, over the {MAX_SDP_BYTES} limit")
    raw_lines = text.split("\n")
    if len(raw_lines) > MAX_LINES:
        raise SdpError(f"SDP has {len(raw_lines)} lines, over the {MAX_LINES}-line limit")

    version: int | None = None
    origin: Origin | None = None
    session_name: str | None = None
    session = SessionDescription(0, Origin("-", "0", "0", "IN", "IP4", "0.0.0.0"), "-")
    current: MediaDescription | None = None
    for lineno, raw in enumerate(raw_lines, start=1):
        line = raw.rstrip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"line {lineno}: expected '<type>=<value>', got {line[:40]!r}")
        kind, value = line[0], line[2:]
        if version is None:
            if kind != "v":
                raise SdpError(f"line {lineno}: SDP must start with v=0, got {kind}=")
            if value.strip() != "0":
                raise SdpError(f"line {lineno}: v= version {value!r} is not 0")
            version = 0
            continue
        if kind == "m":
            if len(session.media) >= MAX_MEDIA:
                raise SdpError(f"line {lineno}: more than {MAX_MEDIA} m= lines")
            current = _parse_media_line(value, lineno)
            session.media.append(current)
        elif kind == "a":
            if not value:
                raise SdpError(f"line {lineno}: empty a= line")
            name, attr_value = _split_attribute(value)
            if name == "rtpmap" and current is not None and _is_rtp(current.proto):
                try:
                    _parse_rtpmap(attr_value or "")
                except ValueError as exc:
                    raise SdpError(f"line {lineno}: a=rtpmap: {exc}") from None
            target = current.attributes if current is not None else session.attributes
            target.append((name, attr_value))
        elif kind == "c":
            conn = _parse_connection(value, lineno)
            if current is not None:
                current.connection = conn
            else:
                session.connection = conn
        elif kind == "b":
            (current.bandwidths if current is not None else session.bandwidths).append(value)
        elif current is not None:
            current.other.append((kind, value))
        elif kind == "o":
            if origin is not None:
                raise SdpError(f"line {lineno}: second o= line")
            origin = _parse_origin(value, lineno)
        elif kind == "s":
            if session_name is None:
                session_name = value
            else:
                session.other.append((kind, value))
        elif kind == "t":
            session.times.append(value)
        elif kind == "v":
            raise SdpError(f"line {lineno}: second v= line")
        else:
            session.other.append((kind, value))
    if version is None:
        raise SdpError("line 1: empty SDP (no v= line)")
    if origin is None:
        raise SdpError("SDP has no o= line")
    session.origin = origin
    session.session_name = session_name if session_name is not None else "-"
    direction = session.session_direction
    for m in session.media:
        m.session_direction = direction
    return session


@dataclass
class NegotiatedMedia:
    """What one answered m-line carries: the audio codec, the telephone-event payload type
    the answer accepted (or None), and the comfort-noise payload types the offer listed (a
    sender may still emit CN; drop those packets)."""

    audio: RtpMap
    telephone_event: RtpMap | None
    comfort_noise_pts: frozenset[int]
    ptime: int | None


_FIXED_CLOCK = {"PCMU": (8000, 1), "PCMA": (8000, 1), "L16": (8000, 1)}


def _codec_supported(rtpmap: RtpMap, codecs: Sequence[str]) -> bool:
    for spec in codecs:
        name, _, rest = spec.partition("/")
        if rtpmap.encoding.upper() != name.upper():
            continue
        if rest:
            rate_text, _, ch_text = rest.partition("/")
            want = (int(rate_text), int(ch_text) if ch_text else 1)
        else:
            want_opt = _FIXED_CLOCK.get(name.upper())
            if want_opt is None:
                return True
            want = want_opt
        if (rtpmap.clock_rate, rtpmap.channels) == want:
            return True
    return False


def _address_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _rejected(m: MediaDescription) -> MediaDescription:
    return MediaDescription(m.media, 0, 1, m.proto, list(m.formats) or ["0"])


def answer_recording(
    offer: SessionDescription,
    *,
    address: str,
    ports: Sequence[int | None],
    codecs: Sequence[str] = ("PCMU", "PCMA", "L16"),
    session_id: int,
    session_version: int = 0,
    username: str = "callstream",
) -> SessionDescription:
    """The recorder's SDP answer (RFC 3264) to a recording offer.

    One answer m-line per offered m-line, in the same order. ``ports[i]`` is the local RTP
    port for offered m-line ``i``, None to reject it (port 0, the offer's formats copied).
    An m-line is also rejected when it is not ``audio`` over ``RTP/AVP``/``RTP/AVPF``, when
    its offered port is 0, or when it offers no codec in ``codecs``. ``codecs`` entries are
    encoding names (case-insensitive; PCMU, PCMA and L16 only at 8000 Hz mono, others at any
    clock) or ``NAME/clock[/channels]``. An accepted m-line carries ONE codec (the offerer's
    first supported, in the offer's format order), plus telephone-event when offered (same
    payload type and fmtp; the one at the codec's clock rate if several), an ``a=rtpmap``
    for each, the offer's ``a=ptime`` and ``a=label``, and ``recvonly`` (``inactive`` when
    the offer is ``inactive`` or ``recvonly``: nothing to record). The answer's ``c=``
    carries ``address`` (IP4 or IP6 by its form).

    Raises ValueError when ``len(ports)`` differs from the number of offered m-lines or a
    port is outside 1..65535.
    """
    if len(ports) != len(offer.media):
        raise ValueError(f"{len(ports)} ports for {len(offer.media)} offered m-lines")
    addrtype = _address_type(address)
    answer = SessionDescription(
        version=0,
        origin=Origin(username, str(session_id), str(session_version), "IN", addrtype, address),
        session_name="-",
        connection=Connection("IN", addrtype, address),
        times=["0 0"],
    )
    session_direction = offer.session_direction
    for m, port in zip(offer.media, ports, strict=True):
        if port is not None and not 0 < port <= 65535:
            raise ValueError(f"port {port} is not 1..65535")
        if (
            port is None
            or m.port == 0
            or m.media.lower() != "audio"
            or m.proto.upper() not in ("RTP/AVP", "RTP/AVPF")
        ):
            answer.media.append(_rejected(m))
            continue
        rtpmaps = m.rtpmaps
        ordered = [rtpmaps[int(f)] for f in m.formats if f.isdigit() and int(f) in rtpmaps]
        chosen = next((r for r in ordered if _codec_supported(r, codecs)), None)
        if chosen is None:
            answer.media.append(_rejected(m))
            continue
        events = [r for r in ordered if r.encoding.lower() == "telephone-event"]
        event = next((e for e in events if e.clock_rate == chosen.clock_rate), None)
        if event is None and events:
            event = events[0]
        formats = [str(chosen.payload_type)]
        attributes: list[tuple[str, str | None]] = [("rtpmap", chosen.to_value())]
        chosen_fmtp = m.fmtp(chosen.payload_type)
        if chosen_fmtp is not None:
            attributes.append(("fmtp", f"{chosen.payload_type} {chosen_fmtp}"))
        if event is not None:
            formats.append(str(event.payload_type))
            attributes.append(("rtpmap", event.to_value()))
            event_fmtp = m.fmtp(event.payload_type)
            if event_fmtp is not None:
                attributes.append(("fmtp", f"{event.payload_type} {event_fmtp}"))
        ptime = m.attribute("ptime")
        if ptime:
            attributes.append(("ptime", ptime.strip()))
        label = m.label
        if label is not None:
            attributes.append(("label", label))
        offered = m.direction_in(session_direction)
        attributes.append(("recvonly" if offered in ("sendonly", "sendrecv") else "inactive", None))
        answer.media.append(
            MediaDescription(
                m.media, port, 1, m.proto, formats, attributes=attributes, session_direction=None
            )
        )
    return answer


def negotiated_media(
    offer_m: MediaDescription, answer_m: MediaDescription
) -> NegotiatedMedia | None:
    """What an answered m-line carries (see :class:`NegotiatedMedia`); None when rejected."""
    if answer_m.port == 0:
        return None
    answer_maps = answer_m.rtpmaps
    offer_maps = offer_m.rtpmaps
    audio: RtpMap | None = None
    event: RtpMap | None = None
    for fmt in answer_m.formats:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        rtpmap = answer_maps.get(pt) or offer_maps.get(pt)
        if rtpmap is None:
            continue
        encoding = rtpmap.encoding.lower()
        if encoding == "telephone-event":
            event = event or rtpmap
        elif encoding != "cn" and audio is None:
            audio = rtpmap
    if audio is None:
        return None
    return NegotiatedMedia(
        audio=audio,
        telephone_event=event,
        comfort_noise_pts=frozenset(offer_m.comfort_noise_pts),
        ptime=answer_m.ptime or offer_m.ptime,
    )


def chosen_codec(offer_m: MediaDescription, answer_m: MediaDescription) -> RtpMap | None:
    """The audio codec an answered m-line accepted, None when it was rejected."""
    negotiated = negotiated_media(offer_m, answer_m)
    return negotiated.audio if negotiated is not None else None
