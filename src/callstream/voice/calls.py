"""What a recorded call is: its legs, its identities and its SIP dialog state, as data.

A recording session (one SIPREC or Cisco NBR INVITE dialog) is a :class:`Call`; each
recorded audio m-line of its SDP is a :class:`Leg`, which becomes its own stream
``ChimeVoiceConnector-<VoiceConnectorId>-<uuid>`` (Chime's "2 streams per call"). Both
legs share the call's ``TransactionId`` and ``CallId``; ``isCaller`` says which leg carries
the calling party (see :func:`callstream.voice.siprec.assign_roles`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from callstream.voice.sdp import RtpMap, SessionDescription
from callstream.voice.sip import Request
from callstream.voice.siprec import RecordingOffer

__all__ = ["Call", "CallState", "Leg", "stream_name"]

CallState = Literal["early", "confirmed", "ended"]


def stream_name(voice_connector_id: str) -> str:
    """A new leg stream's name, as Chime names them."""
    return f"ChimeVoiceConnector-{voice_connector_id}-{uuid.uuid4()}"


@dataclass(slots=True)
class Leg:
    """One recorded audio m-line of a call."""

    index: int
    """Position of the m-line in the offer (Chime's ``sdp.mediaIndex``)."""
    label: str | None
    """Its ``a=label`` (Chime's ``sdp.mediaLabel``)."""
    is_caller: bool
    role_reason: str
    aor: str | None
    port: int
    """The local RTP port the answer gave it."""
    remote_ip: str | None
    """Where its RTP is expected from (the offer's connection address)."""
    codec: RtpMap | None
    """The payload format the answer chose (None: rejected m-line)."""
    payload_types: dict[int, RtpMap]
    """Every payload type the answer accepted on the m-line (audio, telephone-event)."""
    direction: str
    stream_name: str


@dataclass(slots=True)
class Call:
    """One recording session."""

    call_id: str
    """The SIP Call-ID (Chime's ``callId``)."""
    local_tag: str
    remote_tag: str
    voice_connector_id: str
    transaction_id: str
    offer: RecordingOffer
    legs: list[Leg]
    invite_headers: dict[str, str]
    from_number: str | None
    to_number: str | None
    direction: Literal["Inbound", "Outbound"]
    retention_hours: int
    signalling_source: tuple[str, int]
    """Where the INVITE came from (RTP from this address is accepted too: NAT)."""
    remote_target: str
    """The SRC's Contact URI (where an in-dialog request of ours goes)."""
    route_set: list[str]
    transport_key: object
    state: CallState = "early"
    remote_cseq: int = 0
    local_cseq: int = 0
    invite_cseq: int = 0
    session_expires: float | None = None
    """RFC 4028 interval in seconds (None: no session timer)."""
    refresh_deadline: float | None = None
    started_at: float = 0.0
    ended_reason: str | None = None
    metadata_text: str | None = None
    invite: Request | None = None
    """The INVITE that offered the call (its 200, CANCEL's 487 and our BYE come from it)."""
    answer: SessionDescription | None = None
    """Our current SDP answer (the same ports for every re-offer)."""
    sdp_version: int = 0
    session_timer: int | None = None
    """The RFC 4028 interval the INVITE asked for, until the 200 applies it."""

    @property
    def recorded_legs(self) -> list[Leg]:
        """Legs with an accepted codec (the ones that get a stream)."""
        return [leg for leg in self.legs if leg.codec is not None]
