"""The UAS transaction layer: matching, retransmissions absorbed, timers G/H/I/J/L, 2xx
retransmission until ACK, CANCEL matching, bounds, state freed. Time is passed in."""

from __future__ import annotations

import pytest

from callstream.voice.sip import Request, parse_message, response_to
from callstream.voice.transactions import (
    AckTimeout,
    Kind,
    Outgoing,
    ServerTransactions,
    TransactionEvent,
    TransactionTimeout,
)

SRC = ("203.0.113.7", 40000)
UDP = "udp-socket"


def req(
    method: str,
    *,
    branch: str = "z9hG4bKinv1",
    cseq: int = 1,
    cseq_method: str | None = None,
    call_id: str = "call-1",
    to_tag: str | None = None,
    uri: str = "sip:rec@10.0.0.9",
    sent_by: str = "10.0.0.5:5060",
    rport: bool = True,
) -> Request:
    via = f"Via: SIP/2.0/UDP {sent_by};branch={branch}" + (";rport" if rport else "")
    to = "To: <sip:rec@10.0.0.9>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        via,
        "From: <sip:src@10.0.0.5>;tag=f1",
        to,
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def run(st: ServerTransactions, until: float) -> list[tuple[float, Outgoing | TransactionEvent]]:
    """Poll at every deadline up to ``until``; what came out, with its time."""
    out: list[tuple[float, Outgoing | TransactionEvent]] = []
    while (deadline := st.next_deadline()) is not None and deadline <= until:
        out += [(deadline, item) for item in st.poll(deadline)]
    return out


def sent_times(items: list[tuple[float, Outgoing | TransactionEvent]]) -> list[float]:
    return [t for t, item in items if isinstance(item, Outgoing)]


def receive(
    st: ServerTransactions, request: Request, now: float, *, reliable: bool = False
) -> Kind:
    return st.receive(request, source=SRC, reliable=reliable, transport_key=UDP, now=now).kind


def assert_empty(st: ServerTransactions) -> None:
    assert st.transaction_count == 0
    assert st.ack_wait_count == 0
    assert st.next_deadline() is None
    assert st.timer_count == 0


# --- INVITE -----------------------------------------------------------------------------------


def test_new_invite_gets_100_trying_and_retransmissions_resend_the_last_response() -> None:
    st = ServerTransactions()
    invite = req("INVITE")
    got = st.receive(invite, source=SRC, reliable=False, transport_key=UDP, now=0.0)
    assert got.kind is Kind.NEW and got.for_tu and got.request is invite
    (trying,) = got.outgoing
    assert trying.message.status == 100 and trying.transport_key == UDP
    assert trying.destination == SRC  # rport: the source address and port
    # The top Via was stamped, so responses carry received/rport.
    assert invite.top_via.received == SRC[0] and invite.top_via.rport == SRC[1]
    assert trying.message.headers.get("Via") == invite.headers.get("Via")

    again = st.receive(req("INVITE"), source=SRC, reliable=False, transport_key="k2", now=0.1)
    assert again.kind is Kind.RETRANSMISSION and not again.for_tu
    assert [o.message.status for o in again.outgoing] == [100]
    assert again.outgoing[0].transport_key == "k2"  # the latest connection/socket

    ringing = response_to(invite, 180, to_tag="t1")
    assert [o.message for o in st.respond(invite, ringing, now=0.2)] == [ringing]
    resent = st.receive(req("INVITE"), source=SRC, reliable=False, transport_key=UDP, now=0.3)
    assert [o.message for o in resent.outgoing] == [ringing]


def test_no_trying_when_disabled() -> None:
    st = ServerTransactions(send_trying=False)
    got = st.receive(req("INVITE"), source=SRC, reliable=False, transport_key=UDP, now=0)
    assert got.outgoing == []
    again = st.receive(req("INVITE"), source=SRC, reliable=False, transport_key=UDP, now=0)
    assert again.kind is Kind.RETRANSMISSION and again.outgoing == []


def test_timer_g_schedule_and_timer_h_timeout() -> None:
    st = ServerTransactions()
    invite = req("INVITE")
    receive(st, invite, 0.0)
    busy = response_to(invite, 486, to_tag="t1")
    assert [o.message for o in st.respond(invite, busy, now=0.0)] == [busy]
    items = run(st, 100.0)
    times = sent_times(items)
    gaps = [round(b - a, 6) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]  # T1 doubling, capped at T2, until H
    assert all(isinstance(i, Outgoing) and i.message is busy for _, i in items[:-1])
    when, event = items[-1]
    assert when == 32.0 and event == TransactionTimeout(invite, "H")
    assert_empty(st)


def test_ack_stops_timer_g_and_timer_i_frees() -> None:
    st = ServerTransactions()
    invite = req("INVITE")
    receive(st, invite, 0.0)
    st.respond(invite, response_to(invite, 488, to_tag="t1"), now=0.0)
    assert len(st.poll(0.5)) == 1  # one retransmission
    ack = req("ACK", to_tag="t1", cseq_method="ACK")  # same branch as the INVITE
    got = st.receive(ack, source=SRC, reliable=False, transport_key=UDP, now=0.7)
    assert got.kind is Kind.ACK_ABSORBED and not got.for_tu and got.outgoing == []
    assert receive(st, ack, 0.8) is Kind.ACK_ABSORBED  # retransmitted ACK
    late = st.receive(req("INVITE"), source=SRC, reliable=False, transport_key=UDP, now=1.0)
    assert late.kind is Kind.RETRANSMISSION and late.outgoing == []  # Confirmed: absorbed
    assert st.next_deadline() == 0.7 + 5.0  # Timer I = T4
    assert run(st, 100.0) == []
    assert_empty(st)


def test_reliable_non_2xx_has_no_timer_g_and_ack_frees_at_once() -> None:
    st = ServerTransactions()
    invite = req("INVITE")
    receive(st, invite, 0.0, reliable=True)
    out = st.respond(invite, response_to(invite, 480, to_tag="t"), now=0.0)
    assert out[0].destination == SRC
    assert st.next_deadline() == 32.0  # only Timer H
    assert receive(st, req("ACK", cseq_method="ACK"), 1.0, reliable=True) is Kind.ACK_ABSORBED
    assert_empty(st)
    # Without the ACK, Timer H still fires.
    receive(st, invite, 0.0, reliable=True)
    st.respond(invite, response_to(invite, 480, to_tag="t"), now=0.0)
    assert run(st, 100.0) == [(32.0, TransactionTimeout(invite, "H"))]
    assert_empty(st)


# --- 2xx to INVITE ------------------------------------------------------------------------------


@pytest.mark.parametrize("reliable", [False, True])
def test_2xx_is_retransmitted_until_the_ack(reliable: bool) -> None:
    # RFC 3261 13.3.1.4: "independent of whatever transport protocols are used".
    st = ServerTransactions()
    invite = req("INVITE")
    receive(st, invite, 0.0, reliable=reliable)
    ok = response_to(invite, 200, to_tag="t1")
    assert [o.message for o in st.respond(invite, ok, now=0.0)] == [ok]
    assert st.ack_wait_count == 1
    items = run(st, 4.0)
    assert sent_times(items) == [0.5, 1.5, 3.5]
    assert all(isinstance(i, Outgoing) and i.message is ok for _, i in items)
    # A retransmitted INVITE is absorbed (RFC 6026 Accepted) and gets the 2xx again.
    again = st.receive(invite, source=SRC, reliable=reliable, transport_key=UDP, now=4.5)
    assert again.kind is Kind.RETRANSMISSION and [o.message for o in again.outgoing] == [ok]
    # The ACK has its own branch; it matches by Call-ID and CSeq number.
    ack = req("ACK", branch="z9hG4bKack1", to_tag="t1", uri="sip:rec@10.0.0.9:5060")
    got = st.receive(ack, source=SRC, reliable=reliable, transport_key=UDP, now=5.0)
    assert got.kind is Kind.ACK_2XX and got.for_tu
    assert st.ack_wait_count == 0
    assert receive(st, ack, 5.1, reliable=reliable) is Kind.STRAY_ACK  # a retransmitted ACK
    assert sent_times(run(st, 31.0)) == []
    assert run(st, 100.0) == []  # Timer L frees the INVITE transaction
    assert_empty(st)


def test_ack_timeout_after_64_t1() -> None:
    st = ServerTransactions()
    invite = req("INVITE", cseq=7)
    receive(st, invite, 10.0)
    ok = response_to(invite, 200, to_tag="t1")
    st.respond(invite, ok, now=10.0)
    items = run(st, 100.0)
    gaps = [round(t - 10.0, 6) for t in sent_times(items)]
    assert gaps == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    timeouts = [(t, i) for t, i in items if isinstance(i, AckTimeout)]
    assert timeouts == [(42.0, AckTimeout("call-1", 7, ok))]
    assert_empty(st)


def test_later_2xx_replaces_the_retransmitted_one_and_other_finals_are_ignored() -> None:
    st = ServerTransactions()
    invite = req("INVITE")
    receive(st, invite, 0.0)
    st.respond(invite, response_to(invite, 200, to_tag="t1"), now=0.0)
    newer = response_to(invite, 200, to_tag="t1", body=b"v=0\r\n")
    assert [o.message for o in st.respond(invite, newer, now=0.1)] == [newer]
    assert st.respond(invite, response_to(invite, 500), now=0.2) == []
    assert st.respond(invite, response_to(invite, 180), now=0.2) == []
    (first,) = st.poll(0.5)
    assert isinstance(first, Outgoing) and first.message is newer


def test_final_after_final_is_ignored_and_unknown_requests_get_nothing() -> None:
    st = ServerTransactions()
    invite = req("INVITE")
    receive(st, invite, 0.0)
    st.respond(invite, response_to(invite, 486), now=0.0)
    assert st.respond(invite, response_to(invite, 200), now=0.1) == []
    assert st.ack_wait_count == 0
    other = req("OPTIONS", branch="z9hG4bKnever")
    assert st.respond(other, response_to(other, 200), now=0.0) == []
    with pytest.raises(ValueError, match="ACK"):
        st.respond(req("ACK"), response_to(invite, 200), now=0.0)


# --- non-INVITE ---------------------------------------------------------------------------------


def test_non_invite_timer_j_over_udp() -> None:
    st = ServerTransactions()
    bye = req("BYE", branch="z9hG4bKbye", cseq=2, to_tag="t1")
    got = st.receive(bye, source=SRC, reliable=False, transport_key=UDP, now=0.0)
    assert got.kind is Kind.NEW and got.outgoing == []  # no 100 Trying for non-INVITE
    trying = st.receive(bye, source=SRC, reliable=False, transport_key=UDP, now=0.1)
    assert trying.kind is Kind.RETRANSMISSION and trying.outgoing == []  # Trying: absorbed
    ok = response_to(bye, 200)
    assert [o.message for o in st.respond(bye, ok, now=1.0)] == [ok]
    again = st.receive(bye, source=SRC, reliable=False, transport_key=UDP, now=2.0)
    assert [o.message for o in again.outgoing] == [ok]
    assert st.next_deadline() == 33.0  # Timer J = 64*T1
    assert run(st, 100.0) == []  # the server side sends nothing on its own
    assert_empty(st)
    # After Timer J the same request is new again (the client gave up long ago).
    assert receive(st, bye, 40.0) is Kind.NEW


def test_non_invite_provisional_is_resent() -> None:
    st = ServerTransactions()
    info = req("INFO", branch="z9hG4bKinfo")
    receive(st, info, 0.0)
    prov = response_to(info, 183)
    st.respond(info, prov, now=0.0)
    resent = st.receive(info, source=SRC, reliable=False, transport_key=UDP, now=0.5)
    assert [o.message for o in resent.outgoing] == [prov]


def test_non_invite_over_reliable_transport_is_freed_at_once() -> None:
    st = ServerTransactions()
    options = req("OPTIONS", branch="z9hG4bKopt")
    receive(st, options, 0.0, reliable=True)
    st.respond(options, response_to(options, 200), now=0.0)
    assert_empty(st)


def test_unanswered_transactions_are_dropped() -> None:
    st = ServerTransactions(invite_unanswered_timeout=100.0)
    options = req("OPTIONS", branch="z9hG4bKopt")
    invite = req("INVITE")
    receive(st, options, 0.0)
    receive(st, invite, 0.0)
    assert run(st, 1000.0) == [
        (32.0, TransactionTimeout(options, "unanswered")),
        (100.0, TransactionTimeout(invite, "unanswered")),
    ]
    assert_empty(st)
    assert st.respond(options, response_to(options, 200), now=1000.0) == []


# --- matching -----------------------------------------------------------------------------------


def test_matching_uses_branch_sent_by_and_method() -> None:
    st = ServerTransactions()
    assert receive(st, req("INVITE"), 0.0) is Kind.NEW
    assert receive(st, req("INVITE", sent_by="10.0.0.6:5060"), 0.0) is Kind.NEW
    assert receive(st, req("INVITE", branch="z9hG4bKother"), 0.0) is Kind.NEW
    cancel = req("CANCEL", cseq_method="CANCEL")  # same branch, its own transaction
    assert receive(st, cancel, 0.0) is Kind.NEW
    assert receive(st, cancel, 0.1) is Kind.RETRANSMISSION
    assert st.transaction_count == 4
    # sent-by with the default port matches the explicit 5060.
    assert receive(st, req("INVITE", sent_by="10.0.0.5"), 0.2) is Kind.RETRANSMISSION


def test_cancel_finds_its_invite_while_proceeding() -> None:
    st = ServerTransactions()
    invite = req("INVITE")
    receive(st, invite, 0.0)
    cancel = req("CANCEL", cseq_method="CANCEL")
    assert receive(st, cancel, 1.0) is Kind.NEW
    assert st.find_invite(cancel) is invite
    assert st.find_invite(req("CANCEL", branch="z9hG4bKelse")) is None
    assert st.find_invite(req("CANCEL", sent_by="10.0.0.6")) is None
    st.respond(cancel, response_to(cancel, 200), now=1.0)
    st.respond(invite, response_to(invite, 487, to_tag="t"), now=1.0)
    assert st.find_invite(cancel) is None  # the INVITE has its final response


def test_rfc2543_fallback_matching() -> None:
    st = ServerTransactions()
    invite = req("INVITE", branch="1", rport=False)  # no magic cookie
    assert receive(st, invite, 0.0) is Kind.NEW
    assert receive(st, req("INVITE", branch="1", rport=False), 0.1) is Kind.RETRANSMISSION
    assert receive(st, req("INVITE", branch="1", cseq=2, rport=False), 0.1) is Kind.NEW
    cancel = req("CANCEL", branch="1", cseq_method="CANCEL", rport=False)
    assert st.find_invite(cancel) is invite
    st.respond(invite, response_to(invite, 486, to_tag="t"), now=0.2)
    ack = req("ACK", branch="1", to_tag="t", cseq_method="ACK", rport=False)
    assert receive(st, ack, 0.3) is Kind.ACK_ABSORBED
    # Without rport and with a sent-by unlike the source: received + sent-by port.
    assert st.respond(cancel, response_to(cancel, 200), now=0.3) == []  # never received
    got = st.receive(cancel, source=SRC, reliable=False, transport_key=UDP, now=0.4)
    (ok,) = st.respond(cancel, response_to(cancel, 200), now=0.4)
    assert got.kind is Kind.NEW and ok.destination == (SRC[0], 5060)


def test_stray_ack_goes_to_the_tu() -> None:
    st = ServerTransactions()
    got = st.receive(
        req("ACK", branch="z9hG4bKx"), source=SRC, reliable=False, transport_key=UDP, now=0
    )
    assert got.kind is Kind.STRAY_ACK and got.for_tu
    assert_empty(st)


# --- bounds ---------------------------------------------------------------------------------------


def test_flood_is_bounded_with_503() -> None:
    st = ServerTransactions(max_transactions=10, retry_after=7)
    for i in range(10):
        assert receive(st, req("OPTIONS", branch=f"z9hG4bK{i}"), 0.0) is Kind.NEW
    extra = req("OPTIONS", branch="z9hG4bKextra")
    got = st.receive(extra, source=SRC, reliable=False, transport_key=UDP, now=0.0)
    assert got.kind is Kind.OVERLOADED and not got.for_tu
    (busy,) = got.outgoing
    assert busy.message.status == 503 and busy.message.headers.get("Retry-After") == "7"
    assert busy.destination == SRC and busy.message.branch == "z9hG4bKextra"
    assert st.transaction_count == 10
    # Retransmissions of live transactions and ACKs still work.
    assert receive(st, req("OPTIONS", branch="z9hG4bK3"), 0.1) is Kind.RETRANSMISSION
    assert receive(st, req("ACK", branch="z9hG4bKa"), 0.1) is Kind.STRAY_ACK
    first = req("OPTIONS", branch="z9hG4bK0")
    st.respond(first, response_to(first, 200), now=0.2)
    assert receive(st, extra, 0.3) is Kind.OVERLOADED  # Completed still counts (Timer J)
    run(st, 100.0)
    assert st.transaction_count == 0
    assert receive(st, extra, 100.0) is Kind.NEW


def test_state_is_freed_and_the_timer_heap_stays_bounded() -> None:
    st = ServerTransactions()
    now = 0.0
    for i in range(5000):  # answered at once over TCP: nothing stays
        options = req("OPTIONS", branch=f"z9hG4bKo{i}", call_id=f"c{i}")
        receive(st, options, now, reliable=True)
        st.respond(options, response_to(options, 200), now=now)
        now += 0.001
    assert st.transaction_count == 0
    assert st.timer_count <= 600  # cancelled timers are compacted away
    for i in range(300):  # a mix of calls over UDP, all completed
        invite = req("INVITE", branch=f"z9hG4bKi{i}", call_id=f"call{i}")
        receive(st, invite, now)
        status = 200 if i % 2 else 486
        st.respond(invite, response_to(invite, status, to_tag="t"), now=now)
        if i % 3:
            ack_branch = f"z9hG4bKack{i}" if status == 200 else f"z9hG4bKi{i}"
            receive(st, req("ACK", branch=ack_branch, call_id=f"call{i}"), now + 0.1)
    assert st.transaction_count == 300
    events = [i for _, i in run(st, now + 1000.0) if isinstance(i, TransactionEvent)]
    assert len(events) == 100  # the unacknowledged third: AckTimeout or Timer H
    assert_empty(st)
