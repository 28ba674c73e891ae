"""SIPREC (RFC 7866/7865/9806) and Cisco NBR recording offers, sans-I/O.

* :func:`parse_multipart` splits a ``multipart/*`` SIP body (RFC 2046 framing, tolerant).
* :func:`parse_metadata` reads recording metadata in every dialect seen in the wild:

  - ``rfc7865``: namespace ``urn:ietf:params:xml:ns:recording:1``; ``session_id`` /
    ``participant_id`` / ``stream_id`` attributes, ``<nameID aor>``, ``participantstreamassoc``
    with ``<send>``/``<recv>`` (Cisco CUBE, ProComm, Connectel, Intrado...);
  - ``draft``: namespace ``urn:ietf:params:xml:ns:recording`` (no ``:1``); ``id=`` /
    ``session=`` attributes, ``<send>``/``<recv>`` directly inside ``<participant>``,
    ``<mode>`` (Acme Packet / Oracle, Avaya SBCE, Metaswitch), also prefixed (Sonus/Ribbon
    ``tns:``);
  - ``broadworks``: ``<recording_metadata xmlns="urn:ietf:params:xml:ns:siprec">`` with
    ``<aor>`` and ``<send><id>..</id></send>`` inside ``<participant id=..>``;
  - anything else whose root is ``recording``: ``unknown``, read by local names.

  Elements are matched by local name (case-insensitive), never by prefix. XML is parsed with
  defusedxml with DTDs forbidden: no entity expansion, no external entities.
* :func:`parse_recording_offer` turns an INVITE body into a :class:`RecordingOffer`.
* :func:`assign_roles` decides which audio m-line carries the caller (see its rules).

Errors are :class:`SiprecError` with the SIP status to answer with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET

from callstream.voice.sdp import (
    SdpError,
    SessionDescription,
    answer_recording,
    negotiated_media,
    parse_sdp,
)

__all__ = [
    "CALLER_LABELS",
    "MAX_BODY_BYTES",
    "MAX_METADATA_BYTES",
    "NS_RECORDING",
    "NS_RECORDING_DRAFT",
    "NS_SIPREC_BROADWORKS",
    "BodyPart",
    "LegRole",
    "MetaSession",
    "MetaStream",
    "Participant",
    "RecordingMetadata",
    "RecordingOffer",
    "SiprecError",
    "aor_matches",
    "assign_roles",
    "build_answer",
    "is_record_only",
    "parse_content_type",
    "parse_metadata",
    "parse_multipart",
    "parse_nbr_participant",
    "parse_recording_offer",
]

NS_RECORDING = "urn:ietf:params:xml:ns:recording:1"
"""RFC 7865 metadata namespace."""
NS_RECORDING_DRAFT = "urn:ietf:params:xml:ns:recording"
"""Pre-RFC draft namespace (Acme/Oracle, Sonus, Avaya, Metaswitch)."""
NS_SIPREC_BROADWORKS = "urn:ietf:params:xml:ns:siprec"
"""Old draft schema namespace used by BroadWorks (root ``recording_metadata``)."""

MAX_BODY_BYTES = 256 * 1024
"""Largest multipart body :func:`parse_multipart` accepts (SiprecError 413 beyond)."""
MAX_METADATA_BYTES = 128 * 1024
"""Largest metadata document :func:`parse_metadata` accepts."""
MAX_XML_ELEMENTS = 5000
"""Most elements a metadata document may have."""

CALLER_LABELS = frozenset({"1", "10", "a_leg", "inbound"})
"""``a=label`` values the label heuristic takes for the caller's stream (drachtio's set)."""

RECORD_ONLY = "x-voice-connector-record-only"


class SiprecError(ValueError):
    """A recording offer the server cannot take, with the SIP status to answer it with:
    400 malformed, 413 too large, 415 unsupported body type, 488 not acceptable here."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


# --- multipart -------------------------------------------------------------------------


@dataclass
class BodyPart:
    """One part of a multipart body. ``content_type`` is the lowercased ``type/subtype``
    (``text/plain`` when the part has none), ``params`` its parameters (lowercased names,
    unquoted values), ``disposition`` the lowercased Content-Disposition type (e.g.
    ``recording-session``), ``headers`` every part header (lowercased names; the last of a
    repeated header), ``body`` the raw content."""

    content_type: str
    params: dict[str, str]
    disposition: str | None
    headers: dict[str, str]
    body: bytes


_TOKEN_PARAM = re.compile(r'\s*;\s*([^=;\s]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;]*))?')


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type (or Content-Disposition) value into the lowercased type and its
    parameters (lowercased names, unquoted values)."""
    head, sep, rest = value.partition(";")
    params: dict[str, str] = {}
    if sep:
        for match in _TOKEN_PARAM.finditer(";" + rest):
            raw = (match.group(2) or "").strip()
            if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            params[match.group(1).lower()] = raw
    return head.strip().lower(), params


def _parse_part(raw: bytes) -> BodyPart:
    # Headers end at the first empty line; a part starting with an empty line has none.
    headers: dict[str, str] = {}
    body = raw
    pos = 0
    last: str | None = None
    while True:
        end = raw.find(b"\n", pos)
        line_bytes = raw[pos:] if end < 0 else raw[pos:end]
        line = line_bytes.rstrip(b"\r").decode("utf-8", "replace")
        next_pos = len(raw) if end < 0 else end + 1
        if not line.strip():
            body = raw[next_pos:]
            break
        if line[0] in " \t" and last is not None:
            headers[last] += " " + line.strip()
        else:
            name, colon, value = line.partition(":")
            if not colon:
                # Not a header: a part without a header block.
                body = raw[pos:]
                break
            last = name.strip().lower()
            headers[last] = value.strip()
        if end < 0:
            body = b""
            break
        pos = next_pos
    content_type, params = parse_content_type(headers.get("content-type", "text/plain"))
    disposition = None
    if "content-disposition" in headers:
        disposition = parse_content_type(headers["content-disposition"])[0] or None
    return BodyPart(content_type, params, disposition, headers, body)


def parse_multipart(content_type: str, body: bytes, *, max_parts: int = 8) -> list[BodyPart]:
    """Split a ``multipart/*`` body into its parts (RFC 2046).

    The boundary comes from the Content-Type parameter (quoted or not). Delimiter lines may
    end in CRLF or LF and carry trailing white space; the preamble and epilogue are ignored;
    a missing closing delimiter is tolerated (the last part runs to the end). Raises
    SiprecError 415 when ``content_type`` is not multipart, 400 without a boundary, without
    any part or with more than ``max_parts`` parts, 413 over :data:`MAX_BODY_BYTES`.
    """
    ctype, params = parse_content_type(content_type)
    if not ctype.startswith("multipart/"):
        raise SiprecError(415, f"expected a multipart body, got {ctype or 'no type'}")
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise SiprecError(400, "multipart Content-Type without a usable boundary parameter")
    if len(body) > MAX_BODY_BYTES:
        raise SiprecError(413, f"body is {len(body)} bytes, over the {MAX_BODY_BYTES} limit")
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    starts: list[tuple[int, int, bool]] = []  # (delimiter line start, content start, closing)
    pos = 0
    while True:
        at = body.find(delimiter, pos)
        if at < 0:
            break
        pos = at + len(delimiter)
        if at > 0 and body[at - 1 : at] != b"\n":
            continue
        line_end = body.find(b"\n", pos)
        rest = body[pos:] if line_end < 0 else body[pos:line_end]
        closing = rest.startswith(b"--")
        if closing:
            rest = rest[2:]
        if rest.strip(b" \t\r"):
            continue  # the boundary text followed by more characters: not a delimiter
        content_start = len(body) if line_end < 0 else line_end + 1
        starts.append((at, content_start, closing))
        if closing:
            break
        if len(starts) > max_parts:
            raise SiprecError(400, f"multipart body has more than {max_parts} parts")
    parts: list[BodyPart] = []
    for n, (_, content_start, closing) in enumerate(starts):
        if closing:
            break
        following = starts[n + 1] if n + 1 < len(starts) else None
        if following is None:
            raw = body[content_start:]
        else:
            end = following[0]
            # The line break before a delimiter belongs to the delimiter.
            if body[end - 1 : end] == b"\n":
                end -= 1
                if body[end - 1 : end] == b"\r":
                    end -= 1
            raw = body[content_start:end]
        parts.append(_parse_part(raw))
    if not parts:
        raise SiprecError(400, f"no body part delimited by boundary {boundary!r}")
    if len(parts) > max_parts:
        raise SiprecError(400, f"multipart body has more than {max_parts} parts")
    return parts


# --- metadata --------------------------------------------------------------------------


@dataclass
class Participant:
    """A metadata participant: its id, AoRs (``sip:..`` as sent), display names and the
    stream ids it sends and receives (from ``participantstreamassoc`` or, in the draft and
    BroadWorks dialects, from ``<send>``/``<recv>`` inside ``<participant>``)."""

    participant_id: str
    aors: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    send: list[str] = field(default_factory=list)
    recv: list[str] = field(default_factory=list)
    role: str | None = None
    """A vendor's explicit role, when one was given: ``caller`` or ``callee``."""


@dataclass
class MetaStream:
    """A metadata stream: its id, ``<label>`` (matches an SDP ``a=label``), session and the
    draft-dialect ``<mode>`` (``separate``/``mixed``)."""

    stream_id: str
    label: str | None
    session_id: str | None
    mode: str | None = None


@dataclass
class MetaSession:
    """A metadata (communication) session."""

    session_id: str
    sip_session_ids: list[str] = field(default_factory=list)
    start_time: str | None = None
    stop_time: str | None = None


@dataclass
class RecordingMetadata:
    """Parsed recording metadata.

    ``calling_participant`` is the participant id an explicit vendor hint names as the
    caller, and ``calling_hint`` says which hint: ``callingParty`` (Acme/Oracle
    ``apkt:callingParty``), ``role`` (a ``<role>`` element in the participant), ``callData``
    (Sonus/Ribbon ``<callData><fromhdr>``), ``callingPartyNumber`` (BroadWorks/Metaswitch
    extension data) or ``broadworks-userID`` (BroadWorks ``userID`` with ``origCall`` /
    ``termCall``). ``call_data`` holds Sonus ``callData`` children (fromhdr, tohdr, callid,
    gcid) and BroadWorks/Metaswitch call facts (``callingPartyNumber``, ``calledPartyNumber``,
    ``userID``, ``callType``, ``callID``), when present.
    """

    dialect: str
    namespace: str
    datamode: str | None
    sessions: list[MetaSession]
    sip_session_ids: list[str]
    participants: list[Participant]
    streams: list[MetaStream]
    calling_participant: str | None
    text: str
    calling_hint: str | None = None
    call_data: dict[str, str] = field(default_factory=dict)

    def participant(self, participant_id: str) -> Participant | None:
        """The participant with that id, else None."""
        return next((p for p in self.participants if p.participant_id == participant_id), None)

    def stream(self, stream_id: str) -> MetaStream | None:
        """The stream with that id, else None."""
        return next((s for s in self.streams if s.stream_id == stream_id), None)


def _split_tag(tag: Any) -> tuple[str, str]:
    if not isinstance(tag, str):  # comments and processing instructions
        return "", ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local.lower()
    return "", tag.lower()


def _local(el: Element) -> str:
    return _split_tag(el.tag)[1]


def _children(el: Element, *names: str) -> Iterator[Element]:
    for child in el:
        if _local(child) in names:
            yield child


def _child_text(el: Element, *names: str) -> str | None:
    for child in _children(el, *names):
        text = "".join(child.itertext()).strip()
        if text:
            return text
    return None


def _attr(el: Element, *names: str) -> str | None:
    for key, value in el.attrib.items():
        if _split_tag(key)[1] in names and value.strip():
            return value.strip()
    return None


def _ref_texts(el: Element, name: str) -> list[str]:
    """``<send>id</send>`` or BroadWorks ``<send><id>id</id></send>`` children."""
    refs: list[str] = []
    for child in _children(el, name):
        inner = _child_text(child, "id")
        text = inner if inner is not None else (child.text or "").strip()
        if text and text not in refs:
            refs.append(text)
    return refs


_ROLE_CALLER = {"calling", "caller", "originating", "orig", "calling-party", "from"}
_ROLE_CALLEE = {"called", "callee", "terminating", "term", "called-party", "to"}


def _bool_text(text: str | None) -> bool | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    return None


def _aor_key(value: str) -> tuple[str, str] | None:
    """(user, host) of a SIP/tel URI, name-addr or bare ``user@host``; None when empty."""
    text = value.strip()
    if "<" in text and ">" in text.split("<", 1)[1]:
        text = text.split("<", 1)[1].split(">", 1)[0]
    text = text.strip()
    lowered = text.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    text = text.split("?", 1)[0]
    user, at, host = text.rpartition("@")
    if not at:
        user, host = host, ""
    user = user.split(";", 1)[0].strip()
    host = host.split(";", 1)[0].strip().lower()
    if host.startswith("["):
        host = host.split("]", 1)[0] + "]"
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if not user and not host:
        return None
    return user, host


def aor_matches(a: str, b: str) -> bool:
    """Whether two AoRs name the same party: same user part (and same host when both have
    one). ``"Name" <sip:100@h>;tag=x``, ``sip:100@h;user=phone`` and ``100@h`` all match."""
    ka, kb = _aor_key(a), _aor_key(b)
    if ka is None or kb is None:
        return False
    if ka[0] and kb[0]:
        return ka[0] == kb[0] and (not ka[1] or not kb[1] or ka[1] == kb[1])
    return not ka[0] and not kb[0] and ka[1] == kb[1]


def _find_participant_by_aor(participants: list[Participant], aor: str) -> Participant | None:
    for p in participants:
        if any(aor_matches(aor, candidate) for candidate in p.aors):
            return p
    return None


def _dialect(root: Element) -> tuple[str, str]:
    ns, local = _split_tag(root.tag)
    if local == "recording_metadata":
        return "broadworks", ns
    if ns == NS_RECORDING:
        return "rfc7865", ns
    if ns == NS_RECORDING_DRAFT:
        return "draft", ns
    if ns == NS_SIPREC_BROADWORKS:
        return "broadworks", ns
    return "unknown", ns


def _parse_xml(data: bytes) -> Element:
    try:
        root = DefusedET.fromstring(data, forbid_dtd=True, forbid_entities=True)
    except Exception as exc:  # defusedxml/expat raise several types; all mean "bad XML"
        detail = f"{type(exc).__name__}: {exc}"
        raise SiprecError(400, f"unparseable recording metadata: {detail}") from None
    if not isinstance(root, Element):
        raise SiprecError(400, "unparseable recording metadata")
    return root


def parse_metadata(xml: bytes | str) -> RecordingMetadata:
    """Parse recording metadata (any dialect, see the module doc).

    Raises SiprecError 400 for malformed XML, any DTD (so no entity expansion and no external
    entity is ever processed), a document over :data:`MAX_METADATA_BYTES` or
    :data:`MAX_XML_ELEMENTS` elements, or a root element other than ``recording`` /
    ``recording_metadata``.
    """
    data = xml.encode("utf-8", "replace") if isinstance(xml, str) else bytes(xml)
    if len(data) > MAX_METADATA_BYTES:
        raise SiprecError(400, f"recording metadata over {MAX_METADATA_BYTES} bytes")
    data = data.lstrip(b"\xef\xbb\xbf").strip()
    root = _parse_xml(data)
    text = data.decode("utf-8", "replace")
    for count, _ in enumerate(root.iter(), start=1):
        if count > MAX_XML_ELEMENTS:
            raise SiprecError(400, f"recording metadata has over {MAX_XML_ELEMENTS} elements")
    if _local(root) not in ("recording", "recording_metadata"):
        raise SiprecError(400, f"unexpected metadata root element {_local(root)!r}")
    dialect, namespace = _dialect(root)

    sessions: list[MetaSession] = []
    participants: list[Participant] = []
    streams: list[MetaStream] = []
    assoc: list[tuple[str, list[str], list[str]]] = []
    explicit: dict[str, bool] = {}  # participant id -> is caller, from per-participant hints
    explicit_source: dict[str, str] = {}
    call_data: dict[str, str] = {}

    for el in root:
        name = _local(el)
        if name == "session":
            sid = _attr(el, "session_id", "id") or ""
            ids = [t for c in _children(el, "sipsessionid") if (t := "".join(c.itertext()).strip())]
            sessions.append(
                MetaSession(sid, ids, _child_text(el, "start-time"), _child_text(el, "stop-time"))
            )
        elif name == "participant":
            pid = _attr(el, "participant_id", "id")
            if pid is None:
                continue
            p = Participant(pid)
            for name_id in _children(el, "nameid"):
                aor = _attr(name_id, "aor")
                if aor:
                    p.aors.append(aor)
                names = [t for c in _children(name_id, "name") if (t := (c.text or "").strip())]
                p.names += names
            p.aors += [t for c in _children(el, "aor") if (t := (c.text or "").strip())]
            p.names += [t for c in _children(el, "name") if (t := (c.text or "").strip())]
            p.send += _ref_texts(el, "send")
            p.recv += _ref_texts(el, "recv")
            role = (_child_text(el, "role") or "").lower()
            if role in _ROLE_CALLER or role in _ROLE_CALLEE:
                explicit[pid] = role in _ROLE_CALLER
                explicit_source[pid] = "role"
            for ext in _children(el, "extensiondata"):
                flag = _bool_text(_child_text(ext, "callingparty"))
                if flag is not None:
                    explicit[pid] = flag
                    explicit_source[pid] = "callingParty"
            participants.append(p)
        elif name == "stream":
            stream_id = _attr(el, "stream_id", "id") or _child_text(el, "id")
            if stream_id is None:
                continue
            streams.append(
                MetaStream(
                    stream_id,
                    _child_text(el, "label"),
                    _attr(el, "session_id", "session"),
                    _child_text(el, "mode"),
                )
            )
        elif name == "participantstreamassoc":
            pid = _attr(el, "participant_id", "id")
            if pid is not None:
                assoc.append((pid, _ref_texts(el, "send"), _ref_texts(el, "recv")))
        elif name == "group":
            for data_el in _children(el, "calldata"):
                for child in data_el:
                    value = "".join(child.itertext()).strip()
                    if value and _local(child):
                        call_data.setdefault(_local(child), value)
    for ext in root.iter():
        local = _local(ext)
        if local in ("broadworksrecordingmetadata", "metaswitchrecordingmetadata"):
            _collect_call_facts(ext, call_data)

    for pid, send, recv in assoc:
        target = next((p for p in participants if p.participant_id == pid), None)
        if target is None:
            continue
        target.send += [s for s in send if s not in target.send]
        target.recv += [r for r in recv if r not in target.recv]

    calling, hint = _calling_participant(participants, explicit, explicit_source, call_data)
    for p in participants:
        if p.participant_id in explicit:
            p.role = "caller" if explicit[p.participant_id] else "callee"
    datamode = _child_text(root, "datamode")
    return RecordingMetadata(
        dialect=dialect,
        namespace=namespace,
        datamode=datamode,
        sessions=sessions,
        sip_session_ids=[i for s in sessions for i in s.sip_session_ids],
        participants=participants,
        streams=streams,
        calling_participant=calling,
        text=text,
        calling_hint=hint,
        call_data=call_data,
    )


def _collect_call_facts(ext: Element, call_data: dict[str, str]) -> None:
    for el in ext.iter():
        local = el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""
        if local in ("origCall", "termCall"):
            call_data.setdefault("callType", local)
        elif local == "callType" and len(el) == 0 and (el.text or "").strip():
            call_data.setdefault("callType", (el.text or "").strip())
        elif local in ("callingPartyNumber", "calledPartyNumber", "userID", "callID"):
            value = (el.text or "").strip()
            if value:
                call_data.setdefault(local, value)


def _calling_participant(
    participants: list[Participant],
    explicit: dict[str, bool],
    explicit_source: dict[str, str],
    call_data: dict[str, str],
) -> tuple[str | None, str | None]:
    callers = [pid for pid, is_caller in explicit.items() if is_caller]
    if callers:
        return callers[0], explicit_source[callers[0]]
    if explicit and len(participants) == 2:
        # One participant flagged "not the caller": with two, the other one is.
        others = [p.participant_id for p in participants if p.participant_id not in explicit]
        if len(others) == 1:
            return others[0], explicit_source[next(iter(explicit))]
    fromhdr = call_data.get("fromhdr")
    if fromhdr:
        found = _find_participant_by_aor(participants, fromhdr)
        if found is not None:
            return found.participant_id, "callData"
    calling_number = call_data.get("callingPartyNumber")
    if calling_number:
        found = _find_participant_by_aor(participants, calling_number)
        if found is not None:
            return found.participant_id, "callingPartyNumber"
    user_id = call_data.get("userID")
    call_type = call_data.get("callType", "").lower()
    if user_id and call_type in ("origcall", "termcall", "originating", "terminating"):
        found = _find_participant_by_aor(participants, user_id)
        if found is not None:
            if call_type in ("origcall", "originating"):
                return found.participant_id, "broadworks-userID"
            if len(participants) == 2:
                other = next(p for p in participants if p is not found)
                return other.participant_id, "broadworks-userID"
    return None, None


# --- the recording offer ----------------------------------------------------------------


@dataclass
class RecordingOffer:
    """A parsed recording INVITE body. ``kind`` is ``siprec`` (multipart with rs-metadata)
    or ``nbr`` (plain SDP flagged record-only, e.g. Cisco network-based recording).
    ``parts`` holds every multipart part (e.g. ``application/gtd``); empty for plain SDP."""

    kind: Literal["siprec", "nbr"]
    sdp: SessionDescription
    sdp_text: str
    metadata: RecordingMetadata | None
    metadata_text: str | None
    metadata_content_type: str | None
    parts: list[BodyPart] = field(default_factory=list)

    @property
    def audio_indexes(self) -> list[int]:
        """Indexes (into ``sdp.media``) of the recordable audio m-lines: ``m=audio`` with a
        non-zero port."""
        return _audio_indexes(self.sdp)


_METADATA_TYPES = ("application/rs-metadata+xml", "application/rs-metadata")


def _audio_indexes(sdp: SessionDescription) -> list[int]:
    return [i for i, m in enumerate(sdp.media) if m.media.lower() == "audio" and m.port != 0]


def _parse_offer_sdp(data: bytes) -> tuple[SessionDescription, str]:
    try:
        sdp = parse_sdp(data)
    except SdpError as exc:
        raise SiprecError(400, f"bad SDP: {exc}") from None
    return sdp, data.decode("utf-8")


def parse_recording_offer(
    content_type: str | None, body: bytes, *, record_only: bool, in_dialog: bool = False
) -> RecordingOffer:
    """Parse a recording INVITE body.

    * ``multipart/*`` with an ``application/sdp`` part and a metadata part
      (``application/rs-metadata+xml`` or ``application/rs-metadata``, or any part with
      ``Content-Disposition: recording-session``) -> ``siprec``; other parts are ignored
      (kept in ``parts``).
    * ``application/sdp`` (or a multipart without metadata) with ``record_only`` (the
      ``X-Voice-Connector-Record-Only: true`` flag, see :func:`is_record_only`) -> ``nbr``.
    * SDP without metadata and without the flag -> SiprecError 488: not a recording session.
      Amazon Chime Voice Connector requires the flag for Cisco NBR, and an INVITE carrying
      neither metadata nor the flag is an ordinary call sent to a recorder by mistake.
      (drachtio would record a metadata-less SDP with two m-lines; a connector that wants
      that passes ``record_only=True``.)
    * ``in_dialog=True`` (a re-INVITE/UPDATE of an established recording session): metadata
      is optional, since SRCs often repeat only the SDP (kind ``nbr`` if ``record_only``,
      else ``siprec``).

    Raises SiprecError: 488 for no body, no SDP part, no audio m-line with a non-zero port,
    or no recording-session indication; 415 for another body type; 400 for malformed SDP,
    multipart or metadata; 413 for an oversized body.
    """
    if not body.strip():
        raise SiprecError(488, "no SDP offer in the INVITE (delayed offer is not supported)")
    if content_type is None or not content_type.strip():
        raise SiprecError(400, "body without a Content-Type")
    ctype, _ = parse_content_type(content_type)
    parts: list[BodyPart] = []
    metadata: RecordingMetadata | None = None
    metadata_text: str | None = None
    metadata_type: str | None = None
    if ctype.startswith("multipart/"):
        parts = parse_multipart(content_type, body)
        sdp_part = next((p for p in parts if p.content_type == "application/sdp"), None)
        if sdp_part is None:
            raise SiprecError(488, "multipart body without an application/sdp part")
        meta_part = next((p for p in parts if p.content_type in _METADATA_TYPES), None)
        if meta_part is None:
            meta_part = next(
                (p for p in parts if p.disposition == "recording-session" and p is not sdp_part),
                None,
            )
        sdp, sdp_text = _parse_offer_sdp(sdp_part.body)
        if meta_part is not None:
            metadata = parse_metadata(meta_part.body)
            metadata_text = metadata.text
            metadata_type = meta_part.content_type
    elif ctype == "application/sdp":
        sdp, sdp_text = _parse_offer_sdp(body)
    else:
        raise SiprecError(415, f"unsupported body type {ctype!r}")
    kind: Literal["siprec", "nbr"]
    if metadata is not None:
        kind = "siprec"
    elif record_only:
        kind = "nbr"
    elif in_dialog:
        kind = "siprec"
    else:
        raise SiprecError(
            488, "not a recording session (no rs-metadata and no X-Voice-Connector-Record-Only)"
        )
    if not _audio_indexes(sdp):
        raise SiprecError(488, "no audio m-line to record")
    return RecordingOffer(kind, sdp, sdp_text, metadata, metadata_text, metadata_type, parts)


def is_record_only(request_uri: str, header_value: str | None) -> bool:
    """Whether an INVITE asks for record-only (Cisco NBR into Voice Connector): the header
    ``X-Voice-Connector-Record-Only: true``, or the same name as a Request-URI parameter
    (``sip:vc@host;X-Voice-Connector-Record-Only=true``) or URI header (``?...=true``).
    Names are case-insensitive, and so is the value ``true``."""
    if header_value is not None and header_value.strip().strip('"').lower() == "true":
        return True
    uri, _, headers = request_uri.partition("?")
    for chunk in [*uri.split(";")[1:], *headers.split("&")]:
        name, _, value = chunk.partition("=")
        if name.strip().lower() == RECORD_ONLY and value.strip().strip('"').lower() == "true":
            return True
    return False


def parse_nbr_participant(value: str) -> tuple[str, int | None]:
    """Split an ``X-Cisco-Recording-Participant`` value, e.g.
    ``sip:2164485925@ccf.org;media-index="0"`` -> (``sip:2164485925@ccf.org``, 0). The
    URI may be in angle brackets; media-index is None when absent or not a number."""
    text = value.strip()
    if text.startswith("<") or ("<" in text and text.index("<") < text.find(";")):
        inner_start = text.index("<")
        close = text.find(">", inner_start)
        uri = text[inner_start + 1 : close if close >= 0 else len(text)]
        params = text[close + 1 :] if close >= 0 else ""
    else:
        uri, _, params = text.partition(";")
        params = ";" + params
    index: int | None = None
    for chunk in params.split(";"):
        name, _, raw = chunk.partition("=")
        if name.strip().lower() == "media-index":
            raw = raw.strip().strip('"')
            index = int(raw) if raw.isdigit() else None
    return uri.strip(), index


# --- caller / agent ---------------------------------------------------------------------


@dataclass
class LegRole:
    """Role of one recordable audio m-line.

    ``index`` indexes ``offer.sdp.media``; ``participant`` is the metadata participant whose
    voice the m-line carries (when known); ``aor`` its first AoR, or the Cisco NBR
    participant URI; ``reason`` names the rule that decided who the caller is (the same for
    every leg): ``single-leg``, ``vendor-hint:<hint>``, ``metadata``, ``label``,
    ``nbr-media-index`` or ``first-m-line``. ``swapped`` is True when ``swap=True`` inverted
    the decision."""

    index: int
    label: str | None
    participant: Participant | None
    aor: str | None
    is_caller: bool
    reason: str
    swapped: bool = False


def _leg_participants(
    sdp: SessionDescription, legs: list[int], md: RecordingMetadata
) -> dict[int, Participant]:
    """Leg index -> the participant that sends the stream labelled like the m-line."""
    result: dict[int, Participant] = {}
    for p in md.participants:
        for stream_id in p.send:
            stream = md.stream(stream_id)
            if stream is None or stream.label is None:
                continue
            for i in legs:
                if i not in result and sdp.media[i].label == stream.label:
                    result[i] = p
                    break
    return result


def _caller_by_participant(
    legs: list[int], mapping: dict[int, Participant], caller_id: str
) -> int | None:
    mine = [i for i in legs if i in mapping and mapping[i].participant_id == caller_id]
    if mine:
        return mine[0]
    if len(legs) == 2:
        others = [i for i in legs if i in mapping]
        if len(others) == 1:
            return next(i for i in legs if i != others[0])
    return None


def assign_roles(
    offer: RecordingOffer, *, nbr_participants: Sequence[str] = (), swap: bool = False
) -> list[LegRole]:
    """Decide which recordable audio m-line (see :attr:`RecordingOffer.audio_indexes`)
    carries the caller. One :class:`LegRole` per such m-line, in SDP order, exactly one
    with ``is_caller``. Rules, first that decides wins:

    0. one leg only: it is the caller (``single-leg``);
    1. an explicit vendor hint (:attr:`RecordingMetadata.calling_participant`: Acme/Oracle
       ``callingParty``, ``<role>``, Sonus ``callData`` fromhdr, BroadWorks/Metaswitch
       ``callingPartyNumber``/``userID``) -> that participant's sent stream -> its label ->
       the m-line with that ``a=label`` (``vendor-hint:<hint>``);
    2. metadata association: the first participant in document order is the caller; its
       sent stream's label picks the m-line (``metadata``);
    3. labels: the one m-line whose label is in :data:`CALLER_LABELS` (``label``);
    4. Cisco NBR: the m-line whose ``X-Cisco-Recording-Participant`` has ``media-index``
       0 (``nbr-media-index``; ``nbr_participants`` are those header values);
    5. the first audio m-line (``first-m-line``).

    ``swap=True`` (a per-connector override) exchanges the caller with the other leg when
    there are exactly two. Legs the association does not map take the remaining
    participants: the caller leg the hinted (else first) participant, the others in order.
    """
    sdp = offer.sdp
    legs = _audio_indexes(sdp)
    if not legs:
        return []
    md = offer.metadata
    mapping = _leg_participants(sdp, legs, md) if md is not None else {}
    nbr: dict[int, str] = {}
    for value in nbr_participants:
        uri, index = parse_nbr_participant(value)
        if index is not None and index not in nbr:
            nbr[index] = uri

    caller: int | None = None
    reason = ""
    if len(legs) == 1:
        caller, reason = legs[0], "single-leg"
    if caller is None and md is not None and md.calling_participant is not None:
        caller = _caller_by_participant(legs, mapping, md.calling_participant)
        reason = f"vendor-hint:{md.calling_hint}"
    if caller is None and md is not None and md.participants:
        caller = _caller_by_participant(legs, mapping, md.participants[0].participant_id)
        reason = "metadata"
    if caller is None:
        labelled = [i for i in legs if (sdp.media[i].label or "").lower() in CALLER_LABELS]
        if len(labelled) == 1:
            caller, reason = labelled[0], "label"
    if caller is None and 0 in nbr and 0 in legs:
        caller, reason = 0, "nbr-media-index"
    if caller is None:
        caller, reason = legs[0], "first-m-line"

    swapped = swap and len(legs) == 2
    if swapped:
        caller = next(i for i in legs if i != caller)

    if md is not None:
        used = {id(p) for p in mapping.values()}
        remaining = [p for p in md.participants if id(p) not in used]
        preferred = md.participant(md.calling_participant) if md.calling_participant else None
        for i in [caller, *[i for i in legs if i != caller]]:
            if i in mapping or not remaining:
                continue
            pick = preferred if i == caller and preferred in remaining else remaining[0]
            assert pick is not None
            mapping[i] = pick
            remaining.remove(pick)

    roles: list[LegRole] = []
    for i in legs:
        participant = mapping.get(i)
        aor = participant.aors[0] if participant is not None and participant.aors else nbr.get(i)
        roles.append(LegRole(i, sdp.media[i].label, participant, aor, i == caller, reason, swapped))
    return roles


def build_answer(
    offer: RecordingOffer,
    *,
    address: str,
    ports: Sequence[int | None],
    codecs: Sequence[str] = ("PCMU", "PCMA", "L16"),
    session_id: int,
    session_version: int = 0,
) -> SessionDescription:
    """:func:`~callstream.voice.sdp.answer_recording` for a recording offer, raising
    SiprecError 488 when it accepts no m-line (no audio m-line with a supported codec and a
    port)."""
    answer = answer_recording(
        offer.sdp,
        address=address,
        ports=ports,
        codecs=codecs,
        session_id=session_id,
        session_version=session_version,
    )
    if not any(
        negotiated_media(o, a) is not None
        for o, a in zip(offer.sdp.media, answer.media, strict=True)
    ):
        raise SiprecError(488, "no audio m-line with a supported codec")
    return answer
