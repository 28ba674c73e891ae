"""SIPREC (RFC 7866) and Cisco NBR recording offers, sans-I/O.

* :func:`parse_recording_offer` turns an INVITE body into a :class:`RecordingOffer`: the SDP
  offer and, for SIPREC, the recording metadata, from a ``multipart/*`` body
  (:mod:`~callstream.voice.multipart`, :mod:`~callstream.voice.rsmetadata`) or a plain SDP
  flagged record-only (:func:`is_record_only`).
* :func:`assign_roles` decides which audio m-line carries the caller (see its rules).
* :func:`build_answer` is the recorder's SDP answer to the offer.

Errors are :class:`~callstream.voice.errors.SiprecError` with the SIP status to answer with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from callstream.voice.errors import SiprecError
from callstream.voice.multipart import BodyPart, parse_content_type, parse_multipart
from callstream.voice.rsmetadata import Participant, RecordingMetadata, parse_metadata
from callstream.voice.sdp import (
    SdpError,
    SessionDescription,
    answer_recording,
    negotiated_media,
    parse_sdp,
)

__all__ = [
    "CALLER_LABELS",
    "LegRole",
    "RecordingOffer",
    "assign_roles",
    "build_answer",
    "is_record_only",
    "parse_nbr_participant",
    "parse_recording_offer",
]

CALLER_LABELS = frozenset({"1", "10", "a_leg", "inbound"})
"""``a=label`` values the label heuristic takes for the caller's stream (drachtio's set)."""

RECORD_ONLY = "x-voice-connector-record-only"


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
