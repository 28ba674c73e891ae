"""The UAS transaction layer, sans-I/O (RFC 3261 §17.2, §13.3.1.4, §9.2; RFC 6026).

:class:`ServerTransactions` matches incoming requests to server transactions, absorbs
retransmissions (resending the last response), runs the timers (G, H, I, J, L) and
retransmits 2xx responses to INVITE until the ACK comes (the UAS core's duty in RFC 3261
§13.3.1.4, done here so the dialog layer need not). Time is passed in as ``now`` (seconds,
any monotonic origin); nothing here reads a clock or touches a socket.

The edge calls :meth:`~ServerTransactions.receive` for every parsed request, sends what
comes back as :class:`Outgoing`, hands requests the :class:`Received` marks ``for_tu`` to
the dialog layer, and calls :meth:`~ServerTransactions.poll` when
:meth:`~ServerTransactions.next_deadline` passes. The dialog layer answers with
:meth:`~ServerTransactions.respond`.

INVITE server transactions follow RFC 6026: a 2xx moves the transaction to Accepted
(Timer L = 64*T1), where INVITE retransmissions are absorbed (the 2xx is resent) instead
of reaching the dialog layer as new requests.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass, field
from typing import Literal

from callstream.voice.sip import Request, Response, response_to
from callstream.voice.sipheaders import MAGIC_COOKIE, response_address, stamp_via

__all__ = [
    "AckTimeout",
    "Kind",
    "Outgoing",
    "Received",
    "ServerTransactions",
    "TransactionEvent",
    "TransactionTimeout",
]


@dataclass
class Outgoing:
    """A response the edge must send: to ``destination`` on the transport/connection the
    edge named with ``transport_key`` in :meth:`ServerTransactions.receive` (for a stream
    transport ``destination`` is the peer's source address)."""

    message: Response
    destination: tuple[str, int]
    transport_key: object


class Kind(enum.Enum):
    """What :meth:`ServerTransactions.receive` made of a request."""

    NEW = "new"
    """A new request for the dialog layer (TU); answer it with ``respond``."""
    RETRANSMISSION = "retransmission"
    """A retransmission, absorbed; ``outgoing`` holds the last response to resend."""
    ACK_ABSORBED = "ack-absorbed"
    """The ACK of a non-2xx final response, absorbed by its INVITE transaction."""
    ACK_2XX = "ack-2xx"
    """The ACK of a 2xx (same Call-ID and CSeq number); 2xx retransmission stopped. For
    the TU."""
    STRAY_ACK = "stray-ack"
    """An ACK matching nothing (e.g. a retransmitted ACK of a 2xx). For the TU to judge."""
    OVERLOADED = "overloaded"
    """A new request refused because ``max_transactions`` are live: ``outgoing`` holds a
    503 with Retry-After, sent statelessly; the TU gets nothing to answer."""


@dataclass
class Received:
    """The outcome of :meth:`ServerTransactions.receive`: send ``outgoing`` now, and hand
    ``request`` to the TU when :attr:`for_tu`."""

    kind: Kind
    request: Request
    outgoing: list[Outgoing] = field(default_factory=list)

    @property
    def for_tu(self) -> bool:
        """True when the dialog layer must see ``request`` (NEW, ACK_2XX, STRAY_ACK)."""
        return self.kind in (Kind.NEW, Kind.ACK_2XX, Kind.STRAY_ACK)


@dataclass
class TransactionEvent:
    """Base of what :meth:`ServerTransactions.poll` reports besides retransmissions."""


@dataclass
class TransactionTimeout(TransactionEvent):
    """A transaction ended without completing: ``timer`` "H" = no ACK came for a non-2xx
    final response to INVITE (RFC 3261 §17.2.1; the TU may end the dialog); "unanswered"
    = the TU never sent a final response within ``unanswered_timeout`` (non-INVITE) or
    ``invite_unanswered_timeout`` (INVITE), so the transaction was dropped."""

    request: Request
    timer: Literal["H", "unanswered"]


@dataclass
class AckTimeout(TransactionEvent):
    """No ACK came for the 2xx to the INVITE with this Call-ID and CSeq number within
    64*T1 (RFC 3261 §13.3.1.4): the session should be ended with a BYE."""

    call_id: str
    cseq: int
    response: Response


_PROCEEDING, _COMPLETED, _CONFIRMED, _ACCEPTED = "proceeding", "completed", "confirmed", "accepted"


class _Timed:
    """Something with one pending deadline in the timer heap (``seq`` -1: none)."""

    __slots__ = ("deadline", "seq")

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.seq = -1


class _Txn(_Timed):
    __slots__ = (
        "destination",
        "g_due",
        "g_interval",
        "h_due",
        "invite",
        "key",
        "last",
        "reliable",
        "request",
        "state",
        "transport_key",
    )

    def __init__(
        self,
        key: tuple[object, ...],
        request: Request,
        *,
        reliable: bool,
        destination: tuple[str, int],
        transport_key: object,
    ) -> None:
        super().__init__()
        self.key = key
        self.request = request
        self.invite = request.method == "INVITE"
        self.state = _PROCEEDING
        self.reliable = reliable
        self.destination = destination
        self.transport_key = transport_key
        self.last: Response | None = None
        self.g_interval = 0.0
        self.g_due = 0.0
        self.h_due = 0.0


class _AckWait(_Timed):
    __slots__ = ("destination", "give_up", "interval", "key", "response", "transport_key")

    def __init__(
        self,
        key: tuple[str, int],
        response: Response,
        destination: tuple[str, int],
        transport_key: object,
        *,
        interval: float,
        give_up: float,
    ) -> None:
        super().__init__()
        self.key = key
        self.response = response
        self.destination = destination
        self.transport_key = transport_key
        self.interval = interval
        self.give_up = give_up


def _transaction_key(request: Request, method: str) -> tuple[object, ...]:
    """RFC 3261 §17.2.3 matching: branch + sent-by + method when the branch has the magic
    cookie, else the RFC 2543 fields (Request-URI, From tag, Call-ID, CSeq number, top
    Via). ``method`` is INVITE for an ACK or the INVITE a CANCEL targets. The To tag of
    RFC 2543 matching is not compared."""
    via = request.top_via
    branch = via.branch
    host, port = via.sent_by
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return ("3261", branch, host.lower(), port, method)
    return (
        "2543",
        request.uri,
        request.from_tag,
        request.call_id,
        request.cseq[0],
        via.transport,
        host.lower(),
        port,
        method,
    )


class ServerTransactions:
    """Every server transaction of one UAS (see the module doc).

    ``t1``, ``t2``, ``t4``: RFC 3261 timer values (s). ``max_transactions``: live
    transactions beyond which a new request gets a stateless 503 (``Kind.OVERLOADED``)
    with ``Retry-After: retry_after``. ``send_trying``: a new INVITE gets 100 Trying at
    once (RFC 3261 §17.2.1 asks for it within 200 ms when the TU is slower).
    ``unanswered_timeout`` (default 64*T1) / ``invite_unanswered_timeout``: a transaction
    the TU never answers is dropped then (a :class:`TransactionTimeout` "unanswered").
    """

    def __init__(
        self,
        *,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        max_transactions: int = 20000,
        retry_after: int = 5,
        send_trying: bool = True,
        unanswered_timeout: float | None = None,
        invite_unanswered_timeout: float = 300.0,
    ) -> None:
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.max_transactions = max_transactions
        self.retry_after = retry_after
        self.send_trying = send_trying
        self.unanswered_timeout = 64 * t1 if unanswered_timeout is None else unanswered_timeout
        self.invite_unanswered_timeout = invite_unanswered_timeout
        self._txns: dict[tuple[object, ...], _Txn] = {}
        self._acks: dict[tuple[str, int], _AckWait] = {}
        self._heap: list[tuple[float, int, _Timed]] = []
        self._seq = 0
        self._stale = 0

    # --- counts (for monitoring and tests) --------------------------------------------------

    @property
    def transaction_count(self) -> int:
        """Live server transactions."""
        return len(self._txns)

    @property
    def ack_wait_count(self) -> int:
        """2xx responses to INVITE still waiting for their ACK."""
        return len(self._acks)

    @property
    def timer_count(self) -> int:
        """Entries in the timer heap (live and cancelled ones not yet discarded)."""
        return len(self._heap)

    # --- input ------------------------------------------------------------------------------

    def receive(
        self,
        request: Request,
        *,
        source: tuple[str, int],
        reliable: bool,
        transport_key: object,
        now: float,
    ) -> Received:
        """Match a request (parsed by :func:`~callstream.voice.sip.parse_message`, so its
        Via/CSeq/From/To/Call-ID are valid) to a transaction. Stamps ``received``/``rport``
        on its top Via first (:func:`~callstream.voice.sipheaders.stamp_via`), so responses built
        from it carry them."""
        stamp_via(request, source)
        if request.method == "ACK":
            return self._receive_ack(request, now)
        key = _transaction_key(request, request.method)
        destination = source if reliable else response_address(request.top_via, source)
        txn = self._txns.get(key)
        if txn is not None:
            txn.destination = destination
            txn.transport_key = transport_key
            out = []
            if txn.last is not None and txn.state != _CONFIRMED:
                out.append(Outgoing(txn.last, destination, transport_key))
            return Received(Kind.RETRANSMISSION, request, out)
        if len(self._txns) >= self.max_transactions:
            busy = response_to(request, 503, headers=[("Retry-After", str(self.retry_after))])
            return Received(Kind.OVERLOADED, request, [Outgoing(busy, destination, transport_key)])
        txn = _Txn(
            key, request, reliable=reliable, destination=destination, transport_key=transport_key
        )
        self._txns[key] = txn
        wait = self.invite_unanswered_timeout if txn.invite else self.unanswered_timeout
        self._schedule(txn, now + wait)
        out = []
        if txn.invite and self.send_trying:
            txn.last = response_to(request, 100)
            out.append(Outgoing(txn.last, destination, transport_key))
        return Received(Kind.NEW, request, out)

    def _receive_ack(self, ack: Request, now: float) -> Received:
        txn = self._txns.get(_transaction_key(ack, "INVITE"))
        if txn is not None and txn.invite:
            if txn.state == _COMPLETED:
                txn.state = _CONFIRMED
                if txn.reliable:
                    self._free(txn)
                else:
                    self._schedule(txn, now + self.t4)  # Timer I
                return Received(Kind.ACK_ABSORBED, ack)
            if txn.state == _CONFIRMED:
                return Received(Kind.ACK_ABSORBED, ack)
        wait = self._acks.pop((ack.call_id, ack.cseq[0]), None)
        if wait is not None:
            self._unschedule(wait)
            return Received(Kind.ACK_2XX, ack)
        return Received(Kind.STRAY_ACK, ack)

    def respond(self, request: Request, response: Response, *, now: float) -> list[Outgoing]:
        """Send the TU's response to ``request`` (one :meth:`receive` returned as NEW):
        what to transmit now. A provisional response keeps the transaction proceeding; a
        final one completes it and starts its timers; a 2xx to INVITE also starts the 2xx
        retransmission until the ACK (:class:`AckTimeout` after 64*T1). Returns [] when
        the transaction is gone (dropped as unanswered) or already has its final response
        (except further 2xx to an accepted INVITE, which are passed on and become the one
        retransmitted)."""
        if request.method == "ACK":
            raise ValueError("an ACK gets no response")
        txn = self._txns.get(_transaction_key(request, request.method))
        if txn is None or txn.state in (_COMPLETED, _CONFIRMED):
            return []
        status = response.status
        out = [Outgoing(response, txn.destination, txn.transport_key)]
        if txn.state == _ACCEPTED:
            if not 200 <= status < 300:
                return []
            txn.last = response
            wait = self._acks.get((request.call_id, request.cseq[0]))
            if wait is not None:
                wait.response = response
            return out
        txn.last = response
        if status < 200:
            return out
        if not txn.invite:
            txn.state = _COMPLETED
            if txn.reliable:
                self._free(txn)
            else:
                self._schedule(txn, now + 64 * self.t1)  # Timer J
        elif status < 300:
            txn.state = _ACCEPTED
            self._schedule(txn, now + 64 * self.t1)  # Timer L (RFC 6026)
            key = (request.call_id, request.cseq[0])
            old = self._acks.pop(key, None)
            if old is not None:
                self._unschedule(old)
            wait = _AckWait(
                key,
                response,
                txn.destination,
                txn.transport_key,
                interval=self.t1,
                give_up=now + 64 * self.t1,
            )
            self._acks[key] = wait
            self._schedule(wait, now + self.t1)
        else:
            txn.state = _COMPLETED
            txn.h_due = now + 64 * self.t1
            if txn.reliable:
                self._schedule(txn, txn.h_due)
            else:
                txn.g_interval = self.t1
                txn.g_due = now + self.t1
                self._schedule(txn, min(txn.g_due, txn.h_due))
        return out

    def find_invite(self, cancel: Request) -> Request | None:
        """The INVITE a CANCEL targets (same branch and sent-by, or the RFC 2543 fields;
        RFC 3261 §9.2), while its transaction has no final response yet; else None."""
        txn = self._txns.get(_transaction_key(cancel, "INVITE"))
        if txn is None or not txn.invite or txn.state != _PROCEEDING:
            return None
        return txn.request

    # --- time -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do, or None."""
        heap = self._heap
        while heap and heap[0][2].seq != heap[0][1]:
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][0] if heap else None

    def poll(self, now: float) -> list[Outgoing | TransactionEvent]:
        """Run the timers due at ``now``: retransmissions to send and events for the TU."""
        out: list[Outgoing | TransactionEvent] = []
        while self._heap and self._heap[0][0] <= now:
            _, seq, item = heapq.heappop(self._heap)
            if item.seq != seq:
                self._stale -= 1
                continue
            item.seq = -1
            item.deadline = None
            if isinstance(item, _Txn):
                self._fire_txn(item, now, out)
            elif isinstance(item, _AckWait):
                self._fire_ack_wait(item, now, out)
        return out

    def _fire_txn(self, txn: _Txn, now: float, out: list[Outgoing | TransactionEvent]) -> None:
        if txn.state == _PROCEEDING:
            self._free(txn)
            out.append(TransactionTimeout(txn.request, "unanswered"))
        elif txn.state == _COMPLETED and txn.invite:
            if now >= txn.h_due:
                self._free(txn)
                out.append(TransactionTimeout(txn.request, "H"))
                return
            if not txn.reliable and now >= txn.g_due and txn.last is not None:
                out.append(Outgoing(txn.last, txn.destination, txn.transport_key))
                txn.g_interval = min(2 * txn.g_interval, self.t2)
                txn.g_due = now + txn.g_interval
            self._schedule(txn, min(txn.g_due, txn.h_due) if not txn.reliable else txn.h_due)
        else:  # Timer J, I or L
            self._free(txn)

    def _fire_ack_wait(
        self, wait: _AckWait, now: float, out: list[Outgoing | TransactionEvent]
    ) -> None:
        if now >= wait.give_up:
            del self._acks[wait.key]
            out.append(AckTimeout(wait.key[0], wait.key[1], wait.response))
            return
        out.append(Outgoing(wait.response, wait.destination, wait.transport_key))
        wait.interval = min(2 * wait.interval, self.t2)
        self._schedule(wait, min(now + wait.interval, wait.give_up))

    # --- timer heap ---------------------------------------------------------------------------

    def _schedule(self, item: _Timed, deadline: float) -> None:
        self._unschedule(item)
        self._seq += 1
        item.seq = self._seq
        item.deadline = deadline
        heapq.heappush(self._heap, (deadline, self._seq, item))

    def _unschedule(self, item: _Timed) -> None:
        if item.seq == -1:
            return
        item.seq = -1
        item.deadline = None
        self._stale += 1
        # Cancelled entries stay in the heap until popped; rebuild it when they dominate,
        # so that a flood of short transactions cannot grow it without bound.
        if self._stale > 256 and 2 * self._stale > len(self._heap):
            self._heap = [e for e in self._heap if e[2].seq == e[1]]
            heapq.heapify(self._heap)
            self._stale = 0

    def _free(self, txn: _Txn) -> None:
        self._unschedule(txn)
        self._txns.pop(txn.key, None)
