"""The recording server's call control, sans-I/O: SIP requests in, replies and call actions out.

:class:`RecordingUas` is the user-agent server core that sits on top of the transaction
layer (:mod:`callstream.voice.transactions`, which absorbs retransmissions). It owns the
dialogs of recording sessions and decides, for each new request, what to answer and what
happens to the call:

========== =================================================================================
INVITE     a new recording session: the voice connector is chosen by the request-URI host
           (``<VoiceConnectorId>.voiceconnector.<anything>``, else the default), the body
           must be a SIPREC offer (multipart SDP + rs-metadata) or a Cisco NBR one (plain
           SDP with ``X-Voice-Connector-Record-Only: true``); RTP ports are bound, ``100
           Trying`` goes out and :class:`PrepareCall` asks the edge to create the leg
           streams. :meth:`~RecordingUas.answer` then sends ``200`` with the SDP answer
           (``a=recvonly`` per recorded m-line) and :class:`CallStarted` follows.
re-INVITE  a new offer in the dialog (hold/resume, new metadata): ``200`` with the same
/ UPDATE   ports, :class:`CallUpdated` (Chime's UPDATED event); refreshes the session timer.
ACK        confirms the dialog.
BYE        ``200``, :class:`CallEnded`.
CANCEL     before the ``200``: ``200`` to the CANCEL, ``487`` to the INVITE, the call ends.
OPTIONS    ``200`` (keep-alive / capability probe), in or out of a dialog.
INFO       ``200`` in a dialog (DTMF relays).
others     ``405`` for SIP methods a recorder does not serve, ``501`` for unknown ones,
           ``481`` for in-dialog requests of a dialog that does not exist.
========== =================================================================================

Refusals (the SBC sees them; each also has a log line at the edge): ``404`` no voice
connector for the host, ``403`` streaming is not enabled on the connector (the connector
exists but has been told not to stream, so retrying elsewhere on the same connector will
not help: a configuration refusal, as a SIP proxy refuses a forbidden destination),
``420`` an unsupported ``Require`` option, ``422`` a Session-Expires below ``Min-SE``,
``415``/``488``/``400`` from the offer (:class:`~callstream.voice.errors.SiprecError`),
``503`` with ``Retry-After`` when the call or RTP port limit is reached, or while the edge
says the server is overloaded (:meth:`~RecordingUas.shed_new_calls`: the calls in
progress keep their audio rather than every call losing some).

Session timers (RFC 4028): when the SRC supports them, the SRC refreshes
(``refresher=uac``); a session not refreshed in time is ended with a BYE. The core also
ends a call with a BYE when the edge says so (:meth:`~RecordingUas.hangup`: RTP timeout,
shutdown) and retransmits that BYE over UDP until it is answered.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from callstream.voice import sdp as sdp_mod
from callstream.voice.calls import Call, Leg, stream_name
from callstream.voice.errors import SipError, SiprecError
from callstream.voice.sip import Request, Response, response_to
from callstream.voice.sipheaders import Headers, new_branch, new_tag, parse_name_addr, parse_uri
from callstream.voice.siprec import assign_roles, is_record_only, parse_recording_offer

__all__ = [
    "Action",
    "CallEnded",
    "CallStarted",
    "CallUpdated",
    "ConnectorLookup",
    "MediaPorts",
    "PrepareCall",
    "RecordingUas",
    "Reply",
    "SendRequest",
    "UasConfig",
]

log = logging.getLogger("callstream.voice")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
SUPPORTED = "timer, siprec"
KNOWN_OPTION_TAGS = frozenset({"siprec", "timer", "100rel", "replaces", "norefersub", "path"})
"""Option tags a ``Require`` may name without a 420 (we need no extra behaviour for the
last four as a recorder: no reliable provisionals are sent, nothing is replaced)."""
NOT_SERVED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "PRACK"})
T1 = 0.5
BYE_TIMEOUT_S = 64 * T1


class ConnectorLookup(Protocol):
    """Finds the voice connector for a SIP host (the registry)."""

    def resolve(self, host: str | None, *, default_id: str | None = None) -> ConnectorInfo | None:
        """The connector ``host`` selects, else the default; None when there is none."""
        ...


class StreamingInfo(Protocol):
    @property
    def data_retention_in_hours(self) -> int: ...

    @property
    def disabled(self) -> bool: ...


class ConnectorInfo(Protocol):
    @property
    def voice_connector_id(self) -> str: ...

    @property
    def streaming(self) -> StreamingInfo | None: ...

    @property
    def swap_roles(self) -> bool: ...


class MediaPorts(Protocol):
    """Binds RTP ports (the edge owns the sockets)."""

    def open(self, count: int) -> list[int] | None:
        """``count`` bound RTP ports, or None when the range is exhausted."""
        ...

    def close(self, ports: Sequence[int]) -> None:
        """Release ports :meth:`open` returned."""
        ...


# --- actions ----------------------------------------------------------------------------
@dataclass(slots=True)
class Reply:
    """Answer ``request`` with ``response`` (through its server transaction)."""

    request: Request
    response: Response


@dataclass(slots=True)
class SendRequest:
    """Send a request of ours (a BYE) to ``destination`` on ``transport_key``."""

    request: Request
    destination: tuple[str, int]
    transport_key: object


@dataclass(slots=True)
class PrepareCall:
    """A new call was offered: create its leg streams, then call
    :meth:`RecordingUas.answer` (or :meth:`RecordingUas.reject`)."""

    call: Call


@dataclass(slots=True)
class CallStarted:
    """The call was answered: start recording its legs."""

    call: Call


@dataclass(slots=True)
class CallUpdated:
    """A re-INVITE or UPDATE changed the call (directions, metadata)."""

    call: Call
    headers: dict[str, str]
    metadata_changed: bool


@dataclass(slots=True)
class CallEnded:
    """The call is over (BYE, CANCEL, timeout, refusal after prepare)."""

    call: Call
    reason: str


Action = Reply | SendRequest | PrepareCall | CallStarted | CallUpdated | CallEnded


@dataclass(slots=True)
class UasConfig:
    """Call-control settings."""

    advertise_ip: str = "127.0.0.1"
    """The address in SDP answers and Contact headers (``--sip-advertise-ip``)."""
    sip_port: int = 5060
    max_calls: int = 1000
    retry_after_s: int = 10
    min_se: int = 90
    user_agent: str = "callstream"
    default_connector: str | None = None


@dataclass(slots=True)
class _PendingBye:
    action: SendRequest
    next_send: float
    interval: float
    give_up: float
    reliable: bool


@dataclass(slots=True)
class _Dialogs:
    by_key: dict[tuple[str, str], Call] = field(default_factory=dict)
    """(Call-ID, local tag) -> call."""
    early_by_invite: dict[tuple[str, str], Call] = field(default_factory=dict)
    """(Call-ID, remote tag) -> a call not yet answered (CANCEL target)."""


def _headers_dict(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _user_or_uri(aor: str | None) -> str | None:
    if not aor:
        return None
    try:
        uri = parse_uri(aor.strip().strip("<>"))
    except SipError:
        return aor
    return uri.user or aor


def _host_of(uri_text: str) -> str | None:
    try:
        return parse_uri(uri_text).host
    except SipError:
        return None


class RecordingUas:
    """The dialogs of recording sessions (see the module docstring)."""

    def __init__(self, config: UasConfig, connectors: ConnectorLookup, ports: MediaPorts) -> None:
        self.config = config
        self.connectors = connectors
        self.ports = ports
        self._dialogs = _Dialogs()
        self._byes: dict[str, _PendingBye] = {}
        self._shed_until = 0.0

    def shed_new_calls(self, until: float) -> None:
        """Refuse new INVITEs (``503`` with ``Retry-After``) until ``until`` (the clock of
        ``now``): the edge found the server overloaded."""
        self._shed_until = max(self._shed_until, until)

    def shedding(self, now: float) -> bool:
        """Whether new calls are refused at ``now``."""
        return now < self._shed_until

    # --- queries -------------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        """Calls in progress (answered or being prepared)."""
        return list(self._dialogs.by_key.values())

    def next_deadline(self) -> float | None:
        """When :meth:`poll` has work (session timers, BYE retransmissions)."""
        times = [b.next_send for b in self._byes.values()]
        times += [c.refresh_deadline for c in self._dialogs.by_key.values() if c.refresh_deadline]
        return min(times) if times else None

    # --- requests ------------------------------------------------------------------------
    def handle(
        self,
        request: Request,
        *,
        source: tuple[str, int],
        transport_key: object,
        reliable: bool,
        now: float,
    ) -> list[Action]:
        """A new request from the transaction layer (not a retransmission)."""
        method = request.method.upper()
        try:
            if method == "ACK":
                return self._ack(request)
            if method == "CANCEL":
                return self._cancel(request)
            if method == "OPTIONS":
                return [self._reply(request, 200, extra=self._capabilities())]
            call = self._dialog_of(request)
            if request.to_tag and call is None and method != "INVITE":
                return [self._reply(request, 481)]
            if method == "INVITE":
                if request.to_tag:
                    if call is None:
                        return [self._reply(request, 481)]
                    return self._reinvite(call, request, now, with_ack=True)
                return self._invite(request, source, transport_key, now)
            if call is None:
                if method in ("BYE", "UPDATE", "INFO"):
                    return [self._reply(request, 481)]
                if method in NOT_SERVED:
                    return [self._reply(request, 405, extra={"Allow": ALLOW})]
                return [self._reply(request, 501, extra={"Allow": ALLOW})]
            if not self._cseq_ok(call, request):
                return [self._reply(request, 500, reason="CSeq Out Of Order")]
            if method == "BYE":
                return self._bye(call, request)
            if method == "UPDATE":
                return self._reinvite(call, request, now, with_ack=False)
            if method == "INFO":
                return [self._reply(request, 200)]
            if method in NOT_SERVED:
                return [self._reply(request, 405, extra={"Allow": ALLOW})]
            return [self._reply(request, 501, extra={"Allow": ALLOW})]
        except SipError as exc:
            return [self._reply(request, exc.status, reason=exc.reason)]

    def _cseq_ok(self, call: Call, request: Request) -> bool:
        number = request.cseq[0]
        if number < call.remote_cseq:  # RFC 3261 12.2.2: lower is out of order, equal is not
            return False
        call.remote_cseq = number
        return True

    def _dialog_of(self, request: Request) -> Call | None:
        tag = request.to_tag
        if not tag:
            return None
        call = self._dialogs.by_key.get((request.call_id, tag))
        if call is not None and call.remote_tag != (request.from_tag or ""):
            return None
        return call

    # --- INVITE ----------------------------------------------------------------------------
    def _invite(
        self, request: Request, source: tuple[str, int], transport_key: object, now: float
    ) -> list[Action]:
        cfg = self.config
        from_tag = request.from_tag or ""
        if (request.call_id, from_tag) in self._dialogs.early_by_invite:
            return [self._reply(request, 482)]  # the same call offered on a second branch
        busy = {"Retry-After": str(cfg.retry_after_s)}
        if len(self._dialogs.by_key) >= cfg.max_calls:
            return [self._reply(request, 503, reason="Too Many Calls", extra=busy)]
        if self.shedding(now):
            return [self._reply(request, 503, reason="Server Overloaded", extra=busy)]
        required = {tag.strip().lower() for tag in request.headers.values("Require") if tag.strip()}
        unknown = sorted(required - KNOWN_OPTION_TAGS)
        if unknown:
            return [self._reply(request, 420, extra={"Unsupported": ", ".join(unknown)})]

        host = _host_of(request.uri)
        connector = self.connectors.resolve(host, default_id=cfg.default_connector)
        if connector is None:
            to_value = request.headers.get("To")
            if to_value:
                to_host = parse_name_addr(to_value).uri.host
                connector = self.connectors.resolve(to_host, default_id=cfg.default_connector)
        if connector is None:
            return [self._reply(request, 404, reason="No Voice Connector For This Host")]
        streaming = connector.streaming
        if streaming is None or streaming.disabled:
            return [self._reply(request, 403, reason="Streaming Not Enabled")]

        timer = self._session_timer(request)
        if isinstance(timer, Response):
            return [Reply(request, timer)]

        record_only = is_record_only(
            request.uri, request.headers.get("X-Voice-Connector-Record-Only")
        )
        try:
            offer = parse_recording_offer(
                request.headers.get("Content-Type"), request.body, record_only=record_only
            )
            roles = assign_roles(
                offer,
                nbr_participants=request.headers.get_all("X-Cisco-Recording-Participant"),
                swap=connector.swap_roles,
            )
        except SiprecError as exc:
            return [self._reply(request, exc.status, reason=exc.reason)]
        if not roles:
            return [self._reply(request, 488, reason="No Recordable Audio")]

        ports = self.ports.open(len(roles))
        if ports is None:
            return [self._reply(request, 503, reason="No RTP Ports Available", extra=busy)]

        invite_headers = _headers_dict(request.headers)
        legs = []
        for role, port in zip(roles, ports, strict=True):
            m = offer.sdp.media[role.index]
            legs.append(
                Leg(
                    index=role.index,
                    label=role.label,
                    is_caller=role.is_caller,
                    role_reason=role.reason,
                    aor=role.aor,
                    port=port,
                    remote_ip=offer.sdp.address_of(m),
                    codec=None,
                    payload_types={},
                    direction=offer.sdp.direction_of(m),
                    stream_name=stream_name(connector.voice_connector_id),
                )
            )
        caller = next((leg for leg in legs if leg.is_caller), None)
        callee = next((leg for leg in legs if not leg.is_caller), None)
        from_number = _user_or_uri(caller.aor if caller else None)
        to_number = _user_or_uri(callee.aor if callee else None)
        if from_number is None:
            from_number = _user_or_uri(str(parse_name_addr(request.headers.get("From") or "").uri))
        if to_number is None:
            to_number = _user_or_uri(str(parse_name_addr(request.headers.get("To") or "").uri))

        contact = request.headers.get("Contact")
        remote_target = str(parse_name_addr(contact).uri) if contact else request.uri
        call = Call(
            call_id=request.call_id,
            local_tag=new_tag(),
            remote_tag=from_tag,
            voice_connector_id=connector.voice_connector_id,
            transaction_id=str(uuid.uuid4()),
            offer=offer,
            legs=legs,
            invite_headers=invite_headers,
            from_number=from_number,
            to_number=to_number,
            direction="Inbound",
            retention_hours=streaming.data_retention_in_hours,
            signalling_source=source,
            remote_target=remote_target,
            route_set=request.headers.values("Record-Route"),
            transport_key=transport_key,
            remote_cseq=request.cseq[0],
            invite_cseq=request.cseq[0],
            started_at=now,
            metadata_text=offer.metadata_text,
        )
        call.invite = request
        call.session_timer = timer
        self._set_codecs(call)
        self._dialogs.by_key[(call.call_id, call.local_tag)] = call
        self._dialogs.early_by_invite[(call.call_id, from_tag)] = call
        return [PrepareCall(call)]  # 100 Trying went out with the transaction

    def _session_timer(self, request: Request) -> int | Response | None:
        """RFC 4028: the session interval to use (the SRC refreshes: we never send
        refreshes, and the UAS may choose the refresher), a 422 to send, or None."""
        value = request.headers.get("Session-Expires")
        if value is None:
            return None
        try:
            interval = int(value.partition(";")[0].strip())
        except ValueError:
            raise SipError(400, "malformed Session-Expires") from None
        if interval < self.config.min_se:
            return response_to(
                request, 422, headers=[("Min-SE", str(self.config.min_se))], to_tag=None
            )
        supported = {t.strip().lower() for t in request.headers.values("Supported")}
        if "timer" not in supported:
            return None  # the SRC cannot refresh and we do not send refreshes: no timer
        return interval

    def _set_codecs(self, call: Call) -> None:
        """The answer's codec per leg (what the edge decodes)."""
        answer = self._answer_sdp(call)
        for leg in call.legs:
            offered = call.offer.sdp.media[leg.index]
            answered = answer.media[leg.index]
            leg.codec = sdp_mod.chosen_codec(offered, answered)
            leg.payload_types = {
                int(pt): rtpmap
                for pt, rtpmap in answered.rtpmaps.items()
                if str(pt) in answered.formats
            }
        call.answer = answer

    def _answer_sdp(self, call: Call) -> sdp_mod.SessionDescription:
        ports: list[int | None] = [None] * len(call.offer.sdp.media)
        for leg in call.legs:
            ports[leg.index] = leg.port
        return sdp_mod.answer_recording(
            call.offer.sdp,
            address=self.config.advertise_ip,
            ports=ports,
            session_id=abs(hash(call.transaction_id)) % 10**12,
            session_version=call.sdp_version,
        )

    def answer(self, call: Call, now: float) -> list[Action]:
        """The edge prepared ``call`` (its streams exist): send the 200 and start it."""
        invite = call.invite
        if call.state != "early" or invite is None:
            return []
        self._dialogs.early_by_invite.pop((call.call_id, call.remote_tag), None)
        answer = call.answer
        assert answer is not None
        extra = self._capabilities()
        extra["Contact"] = (
            f"<sip:callstream@{self.config.advertise_ip}:{self.config.sip_port}>;+sip.srs"
        )
        interval = call.session_timer
        if interval is not None:
            extra["Session-Expires"] = f"{interval};refresher=uac"
            extra["Require"] = "timer"
            call.session_expires = float(interval)
            call.refresh_deadline = now + self._expiry(interval)
        call.state = "confirmed"
        response = response_to(
            invite,
            200,
            to_tag=call.local_tag,
            headers=list(extra.items()),
            body=answer.to_text().encode(),
            content_type="application/sdp",
        )
        return [Reply(invite, response), CallStarted(call)]

    def reject(self, call: Call, status: int, reason: str) -> list[Action]:
        """The edge could not prepare ``call``: refuse the INVITE, end the call."""
        invite = call.invite
        if call.state != "early" or invite is None:
            return []
        self._forget(call)
        call.state = "ended"
        call.ended_reason = reason
        return [
            Reply(invite, response_to(invite, status, reason, to_tag=call.local_tag)),
            CallEnded(call, reason),
        ]

    @staticmethod
    def _expiry(interval: float) -> float:
        return interval - min(32.0, interval / 3)

    # --- in-dialog -------------------------------------------------------------------------
    def _reinvite(
        self, call: Call, request: Request, now: float, *, with_ack: bool
    ) -> list[Action]:
        if request.method.upper() == "INVITE" and not self._cseq_ok(call, request):
            return [self._reply(request, 500, reason="CSeq Out Of Order")]
        if call.state == "early":
            return [self._reply(request, 491)]
        metadata_changed = False
        if request.body:
            record_only = call.offer.kind == "nbr"
            try:
                offer = parse_recording_offer(
                    request.headers.get("Content-Type"),
                    request.body,
                    record_only=record_only,
                    in_dialog=True,
                )
            except SiprecError as exc:
                return [self._reply(request, exc.status, reason=exc.reason)]
            if len(offer.sdp.media) < len(call.offer.sdp.media):
                return [self._reply(request, 488, reason="M-Lines Removed")]
            metadata_changed = (
                offer.metadata_text is not None and offer.metadata_text != call.metadata_text
            )
            if offer.metadata_text is not None:
                call.metadata_text = offer.metadata_text
            call.offer = offer
            for leg in call.legs:
                m = offer.sdp.media[leg.index]
                leg.direction = offer.sdp.direction_of(m)
                address = offer.sdp.address_of(m)
                if address and address != "0.0.0.0":
                    leg.remote_ip = address
            call.sdp_version += 1
            self._set_codecs(call)
        if call.session_expires is not None:
            call.refresh_deadline = now + self._expiry(call.session_expires)
        extra = self._capabilities()
        extra["Contact"] = (
            f"<sip:callstream@{self.config.advertise_ip}:{self.config.sip_port}>;+sip.srs"
        )
        if call.session_expires is not None:
            extra["Session-Expires"] = f"{int(call.session_expires)};refresher=uac"
            extra["Require"] = "timer"
        answer = call.answer
        assert answer is not None
        body = answer.to_text().encode() if (request.body or with_ack) else b""
        response = response_to(
            request,
            200,
            headers=list(extra.items()),
            body=body,
            content_type="application/sdp" if body else None,
        )
        if with_ack:
            call.invite_cseq = request.cseq[0]
        return [
            Reply(request, response),
            CallUpdated(call, _headers_dict(request.headers), metadata_changed),
        ]

    def _ack(self, request: Request) -> list[Action]:
        return []  # the dialog is confirmed when answered; the 2xx tracker stops on ACK

    def _bye(self, call: Call, request: Request) -> list[Action]:
        self._forget(call)
        call.state = "ended"
        call.ended_reason = "BYE"
        return [self._reply(request, 200), CallEnded(call, "BYE")]

    def _cancel(self, request: Request) -> list[Action]:
        call = self._dialogs.early_by_invite.get((request.call_id, request.from_tag or ""))
        if call is None or call.state != "early":
            # no pending INVITE (answered already, or unknown): RFC 3261 9.2
            known = any(c.call_id == request.call_id for c in self._dialogs.by_key.values())
            return [self._reply(request, 200 if known else 481)]
        invite = call.invite
        assert invite is not None
        self._forget(call)
        call.state = "ended"
        call.ended_reason = "CANCEL"
        return [
            self._reply(request, 200),
            Reply(invite, response_to(invite, 487, to_tag=call.local_tag)),
            CallEnded(call, "CANCEL"),
        ]

    def _forget(self, call: Call) -> None:
        self._dialogs.by_key.pop((call.call_id, call.local_tag), None)
        self._dialogs.early_by_invite.pop((call.call_id, call.remote_tag), None)
        self.ports.close([leg.port for leg in call.legs])

    # --- our own requests --------------------------------------------------------------------
    def hangup(self, call: Call, reason: str, now: float, *, reliable: bool) -> list[Action]:
        """End ``call`` from our side: a BYE to the SRC, then :class:`CallEnded`."""
        if call.state == "ended":
            return []
        if call.state == "early":
            return self.reject(call, 503, reason)
        self._forget(call)
        call.state = "ended"
        call.ended_reason = reason
        bye = self._bye_request(call)
        send = SendRequest(bye, call.signalling_source, call.transport_key)
        self._byes[bye.branch or ""] = _PendingBye(
            send, now + T1, T1, now + BYE_TIMEOUT_S, reliable=reliable
        )
        return [send, CallEnded(call, reason)]

    def _bye_request(self, call: Call) -> Request:
        invite = call.invite
        assert invite is not None
        call.local_cseq += 1
        headers = Headers()
        headers.add(
            "Via",
            f"SIP/2.0/{self._transport_name(invite)} "
            f"{self.config.advertise_ip}:{self.config.sip_port};branch={new_branch()};rport",
        )
        headers.add("Max-Forwards", "70")
        to_value = invite.headers.get("To") or ""
        from_value = invite.headers.get("From") or ""
        if ";tag=" not in to_value.lower():
            to_value = f"{to_value};tag={call.local_tag}"
        headers.add("From", to_value)
        headers.add("To", from_value)
        headers.add("Call-ID", call.call_id)
        headers.add("CSeq", f"{call.local_cseq} BYE")
        for route in call.route_set:
            headers.add("Route", route)
        headers.add("Reason", 'SIP;cause=200;text="' + (call.ended_reason or "") + '"')
        headers.add("User-Agent", self.config.user_agent)
        return Request("BYE", call.remote_target, headers, b"")

    @staticmethod
    def _transport_name(request: Request) -> str:
        try:
            return request.top_via.transport.upper()
        except (SipError, AttributeError):
            return "UDP"

    def response_received(self, response: Response) -> None:
        """A response to one of our requests (a BYE): stop retransmitting it."""
        try:
            branch = response.top_via.branch
        except SipError:
            return
        if branch:
            self._byes.pop(branch, None)

    def ack_timeout(self, call_id: str, cseq: int, now: float) -> list[Action]:
        """The SRC never ACKed our 200: end the call (RFC 3261 13.3.1.4)."""
        for call in self.calls:
            if call.call_id == call_id and call.invite_cseq == cseq:
                return self.hangup(call, "no ACK", now, reliable=False)
        return []

    def poll(self, now: float) -> list[Action]:
        """Session timers that expired, BYE retransmissions due."""
        out: list[Action] = []
        for call in self.calls:
            if call.refresh_deadline is not None and now >= call.refresh_deadline:
                out += self.hangup(call, "session timer expired", now, reliable=False)
        for branch, pending in list(self._byes.items()):
            if now >= pending.give_up or pending.reliable:
                del self._byes[branch]
                continue
            if now >= pending.next_send:
                out.append(pending.action)
                pending.interval = min(pending.interval * 2, 4.0)
                pending.next_send = now + pending.interval
        return out

    # --- replies ---------------------------------------------------------------------------
    def _capabilities(self) -> dict[str, str]:
        return {
            "Allow": ALLOW,
            "Supported": SUPPORTED,
            "Accept": "application/sdp, application/rs-metadata+xml, multipart/mixed",
            "User-Agent": self.config.user_agent,
        }

    def _reply(
        self,
        request: Request,
        status: int,
        *,
        reason: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Reply:
        to_tag = None
        if status >= 200 and not request.to_tag and request.method.upper() != "CANCEL":
            to_tag = new_tag()
        headers = list((extra or {}).items())
        if status >= 300 and "User-Agent" not in (extra or {}):
            headers.append(("User-Agent", self.config.user_agent))
        return Reply(request, response_to(request, status, reason, to_tag=to_tag, headers=headers))
