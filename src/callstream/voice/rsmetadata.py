"""SIPREC recording metadata (RFC 7865, ``application/rs-metadata+xml``), sans-I/O.

:func:`parse_metadata` reads the metadata in every dialect seen in the wild:

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
defusedxml with DTDs forbidden: no entity expansion, no external entities. Vendor hints
naming the calling party are collected into :attr:`RecordingMetadata.calling_participant`.
Errors are :class:`~callstream.voice.errors.SiprecError` (400).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET

from callstream.voice.errors import SiprecError

__all__ = [
    "MAX_METADATA_BYTES",
    "NS_RECORDING",
    "NS_RECORDING_DRAFT",
    "NS_SIPREC_BROADWORKS",
    "MetaSession",
    "MetaStream",
    "Participant",
    "RecordingMetadata",
    "aor_matches",
    "parse_metadata",
]

NS_RECORDING = "urn:ietf:params:xml:ns:recording:1"
"""RFC 7865 metadata namespace."""
NS_RECORDING_DRAFT = "urn:ietf:params:xml:ns:recording"
"""Pre-RFC draft namespace (Acme/Oracle, Sonus, Avaya, Metaswitch)."""
NS_SIPREC_BROADWORKS = "urn:ietf:params:xml:ns:siprec"
"""Old draft schema namespace used by BroadWorks (root ``recording_metadata``)."""

MAX_METADATA_BYTES = 128 * 1024
"""Largest metadata document :func:`parse_metadata` accepts."""
MAX_XML_ELEMENTS = 5000
"""Most elements a metadata document may have."""


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
