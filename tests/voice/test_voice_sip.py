"""The SIP message layer: real-world messages, every error path, round trips, URIs,
addresses, Via and rport rules, stream framing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.voice.errors import SipError
from callstream.voice.fuzz import SIP_CORPUS
from callstream.voice.sip import (
    KEEPALIVE,
    KeepAlive,
    Limits,
    Request,
    Response,
    StreamParser,
    is_keepalive,
    parse_message,
    response_to,
    serialize,
)
from callstream.voice.sipheaders import (
    Headers,
    NameAddr,
    Params,
    SipUri,
    Via,
    new_branch,
    new_call_id,
    new_tag,
    parse_name_addr,
    parse_params,
    parse_uri,
    parse_via,
    response_address,
    stamp_via,
)


def msg(*lines: str, body: bytes = b"", length: int | None = None, eol: str = "\r\n") -> bytes:
    """A message from header lines; Content-Length added unless ``length`` is -1."""
    head = list(lines)
    if length != -1:
        head.append(f"Content-Length: {len(body) if length is None else length}")
    return (eol.join(head) + eol + eol).encode() + body


BASIC = [
    "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK776asdhds",
    "From: <sip:alice@10.0.0.5>;tag=1928301774",
    "To: <sip:rec@10.0.0.9>",
    "Call-ID: a84b4c76e66710@10.0.0.5",
]


def request(method: str = "OPTIONS", *extra: str, cseq: int = 1) -> Request:
    data = msg(f"{method} sip:rec@10.0.0.9 SIP/2.0", *BASIC, f"CSeq: {cseq} {method}", *extra)
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


# --- real-world messages ----------------------------------------------------------------------

CUBE_BODY = (
    b"--uniqueBoundary\r\nContent-Disposition: session;handling=required\r\n"
    b"Content-Type: application/sdp\r\n\r\nv=0\r\no=CiscoSystemsSIP-GW-UserAgent 1247 9367 IN IP4"
    b" 172.31.93.236\r\ns=SIP Call\r\nc=IN IP4 172.31.93.236\r\nt=0 0\r\n"
    b"m=audio 10292 RTP/AVP 0 101\r\na=sendonly\r\na=label:1\r\n"
    b"m=audio 10294 RTP/AVP 0 101\r\na=sendonly\r\na=label:2\r\n\r\n"
    b"--uniqueBoundary\r\nContent-Disposition: recording-session\r\n"
    b"Content-Type: application/rs-metadata+xml\r\n\r\n<?xml version='1.0' encoding='UTF-8'?>\r\n"
    b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>complete</datamode>"
    b"</recording>\r\n--uniqueBoundary--\r\n"
)
CUBE_INVITE = msg(
    "INVITE sip:siprec@172.31.93.10:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 172.31.93.236:5060;branch=z9hG4bK1D2A1E1F",
    "Remote-Party-ID: <sip:7301@172.31.93.236>;party=calling;screen=no;privacy=off",
    "From: <sip:7301@172.31.93.236>;tag=8F5A2B-1E4",
    "To: <sip:siprec@172.31.93.10>",
    "Date: Tue, 14 Mar 2023 10:00:00 GMT",
    "Call-ID: 5C6D7E8F-C1E111EE-8F9AE1B2-C3D4E5F6@172.31.93.236",
    "Supported: 100rel,timer,resource-priority,replaces,sdp-anat",
    "Min-SE:  1800",
    "Cisco-Guid: 1234567890-1234567890-1234567890-1234567890",
    "User-Agent: Cisco-SIPGateway/IOS-16.12.4",
    "Allow: INVITE, OPTIONS, BYE, CANCEL, ACK, PRACK, UPDATE, REFER, SUBSCRIBE, NOTIFY, INFO,"
    " REGISTER",
    "CSeq: 101 INVITE",
    "Timestamp: 1678788000",
    "Contact: <sip:172.31.93.236:5060>;+sip.src",
    "Expires: 180",
    "Allow-Events: telephone-event",
    "Max-Forwards: 70",
    'X-Cisco-Recording-Participant: <sip:7301@172.31.93.236>;media-index="0"',
    'X-Cisco-Recording-Participant: <sip:7300@172.31.93.237>;media-index="1"',
    "Session-Expires:  1800",
    "Require: siprec",
    "Content-Type: multipart/mixed;boundary=uniqueBoundary",
    "Mime-Version: 1.0",
    body=CUBE_BODY,
)


def test_sipp_siprec_invite() -> None:
    m = parse_message(SIP_CORPUS[0])
    assert isinstance(m, Request)
    assert (m.method, m.uri) == ("INVITE", "sip:drachtio:5060")
    assert m.call_id == "1-4242@10.0.0.5"
    assert m.cseq == (1, "INVITE")
    assert m.from_tag == "4242SIPpTag091"
    assert m.to_tag is None
    assert m.branch == "z9hG4bK-4242-1-0"
    assert m.top_via == Via("UDP", "10.0.0.5", 5060, Params({"branch": "z9hG4bK-4242-1-0"}))
    assert m.content_type == "multipart/mixed; boundary=690DEB64"
    assert m.body.startswith(b"--690DEB64\r\nContent-Type: application/sdp\r\n")
    assert m.body.endswith(b"--690DEB64--\r\n")
    assert m.request_uri == SipUri("sip", host="drachtio", port=5060)
    assert parse_name_addr(m.headers.get("To") or "").uri.host == "drachtio"


def test_cisco_cube_invite() -> None:
    m = parse_message(CUBE_INVITE)
    assert isinstance(m, Request)
    assert m.body == CUBE_BODY
    assert m.headers.get("min-se") == "1800"
    assert m.headers.values("Supported") == [
        "100rel",
        "timer",
        "resource-priority",
        "replaces",
        "sdp-anat",
    ]
    assert len(m.headers.values("Allow")) == 12
    participants = [parse_name_addr(v) for v in m.headers.get_all("x-cisco-recording-participant")]
    assert [p.uri.user for p in participants] == ["7301", "7300"]
    assert [p.params["Media-Index"] for p in participants] == ['"0"', '"1"']
    contact = parse_name_addr(m.headers.values("Contact")[0])
    assert contact.uri == SipUri("sip", host="172.31.93.236", port=5060)
    assert "+sip.src" in contact.params and contact.params["+sip.src"] is None
    assert m.headers.get("Require") == "siprec"
    # Names keep their spelling; lookups are case-insensitive.
    assert ("Mime-Version", "1.0") in list(m.headers)


def test_compact_forms_are_expanded() -> None:
    data = msg(
        "INVITE sip:rec@h SIP/2.0",
        "v: SIP/2.0/UDP h:5060;branch=z9hG4bKc",
        "f: <sip:a@h>;tag=1",
        "t: <sip:b@h>",
        "i: cid",
        "CSeq: 1 INVITE",
        "m: <sip:a@h>",
        "k: timer",
        "s: hi",
        "c: application/sdp",
        "e: gzip",
        "o: dialog",
        "r: <sip:x@h>",
        "x: 1800",
        "u: talk",
        "a: *;+sip.x",
        "b: <sip:y@h>",
        "j: *;+sip.z",
        "d: proxy",
        "y: abc",
        "n: <https://x>",
        length=-1,
    )
    m = parse_message(data + b"v=0")
    names = [n for n, _ in m.headers]
    assert names == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Supported",
        "Subject",
        "Content-Type",
        "Content-Encoding",
        "Event",
        "Refer-To",
        "Session-Expires",
        "Allow-Events",
        "Accept-Contact",
        "Referred-By",
        "Reject-Contact",
        "Request-Disposition",
        "Identity",
        "Identity-Info",
    ]
    assert m.body == b"v=0"  # no Content-Length on a datagram: the rest
    assert m.headers.get("i") == "cid" and "l" not in m.headers and "V" in m.headers


def test_folded_headers_are_joined() -> None:
    m = parse_message(
        msg(
            "OPTIONS sip:rec@h SIP/2.0",
            *BASIC,
            "CSeq: 1",
            "\t  OPTIONS",
            "Subject: I know you're there,",
            "   pick up the phone",
            "   and talk to me!",
        )
    )
    assert m.cseq == (1, "OPTIONS")
    assert m.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"


def test_ipv6_and_multiple_via() -> None:
    m = parse_message(
        msg(
            "BYE sip:rec@[2001:db8::9] SIP/2.0",
            "Via: SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bKa;rport,"
            " SIP / 2.0 / TCP proxy.example.com ;branch=z9hG4bKb",
            "v: SIP/2.0/TLS [2001:db8::1];branch=z9hG4bKc",
            *BASIC[1:],
            "CSeq: 7 BYE",
        )
    )
    vias = [parse_via(v) for v in m.headers.values("Via")]
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "2001:db8::5", 5070, "z9hG4bKa"),
        ("TCP", "proxy.example.com", None, "z9hG4bKb"),
        ("TLS", "2001:db8::1", None, "z9hG4bKc"),
    ]
    assert vias[0].rport_requested and vias[0].rport is None
    assert vias[2].sent_by == ("2001:db8::1", 5061)
    assert str(vias[0]) == "SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bKa;rport"
    assert m.request_uri.host == "2001:db8::9"


def test_bare_lf_line_ends_and_leading_crlf() -> None:
    data = b"\r\n" + msg("OPTIONS sip:rec@h SIP/2.0", *BASIC, "CSeq: 1 OPTIONS", eol="\n")
    assert parse_message(data).cseq == (1, "OPTIONS")


def test_response_parses() -> None:
    m = parse_message(SIP_CORPUS[4])
    assert isinstance(m, Response)
    assert (m.status, m.reason, m.to_tag) == (200, "OK", "srs-77")
    no_reason = parse_message(msg("SIP/2.0 180", *BASIC, "CSeq: 1 INVITE"))
    assert isinstance(no_reason, Response) and no_reason.reason == ""


# --- errors -----------------------------------------------------------------------------------

OK_LINES = ["OPTIONS sip:rec@h SIP/2.0", *BASIC, "CSeq: 1 OPTIONS"]


def without(name: str) -> list[str]:
    return [ln for ln in OK_LINES if not ln.startswith(name + ":")]


ERRORS: list[tuple[bytes, int, str]] = [
    (b"", 400, "empty message"),
    (b"OPTIONS sip:rec@h SIP/2.0\r\nVia: x", 400, "no empty line"),
    (msg(*without("Via")), 400, "missing Via header"),
    (msg(*without("From")), 400, "missing From header"),
    (msg(*without("To")), 400, "missing To header"),
    (msg(*without("Call-ID")), 400, "missing Call-ID header"),
    (msg(*without("CSeq")), 400, "missing CSeq header"),
    (msg("OPTIONS sip:rec@h SIP/3.0", *OK_LINES[1:]), 505, "SIP/3.0"),
    (msg("SIP/1.0 200 OK", *OK_LINES[1:]), 505, "SIP/1.0"),
    (msg("OPTIONS mailto:rec@h SIP/2.0", *OK_LINES[1:]), 416, "mailto"),
    (msg("OPTIONS sip:rec@h:99999 SIP/2.0", *OK_LINES[1:]), 400, "Request-URI: bad port"),
    (msg("OPTIONS  sip:rec@h SIP/2.0", *OK_LINES[1:]), 400, "bad request line"),
    (msg("OPT\x01ONS sip:rec@h SIP/2.0", *OK_LINES[1:]), 400, "bad request line"),
    (msg("OPTIONS sip:rec@h HTTP/1.1", *OK_LINES[1:]), 400, "bad request line"),
    (msg("SIP/2.0 2000 OK", *OK_LINES[1:]), 400, "bad status code"),
    (msg("SIP/2.0 099 Hm", *OK_LINES[1:]), 400, "bad status code"),
    (msg(*OK_LINES, "Bad Header: x"), 400, "bad header name 'Bad Header'"),
    (msg(*OK_LINES, "NoColon"), 400, "header line 7 has no ':'"),
    (msg(OK_LINES[0], " folded", *OK_LINES[1:]), 400, "continuation line before"),
    (msg(*OK_LINES[:-1], "CSeq: x OPTIONS"), 400, "bad CSeq"),
    (msg(*OK_LINES[:-1], "CSeq: 1 INVITE"), 400, "CSeq method 'INVITE' is not 'OPTIONS'"),
    (msg(*OK_LINES[:-1], "CSeq: 4294967296 OPTIONS"), 400, "CSeq number too large"),
    (msg(*OK_LINES, "Via: SIP/2.0/UDP"), 400, "bad Via"),
    (msg(*OK_LINES, "Via: HTTP/1.1/TCP h"), 400, "bad Via protocol"),
    (msg(*OK_LINES, "Via: SIP/2.0/UDP [::1"), 400, "bad IPv6 host"),
    (msg(*without("Via"), "Via: ,"), 400, "empty Via"),
    (msg(*OK_LINES[:2], "From: <sip:alice@h", *OK_LINES[3:]), 400, "From: missing '>'"),
    (msg(*OK_LINES[:3], 'To: "Bob <sip:b@h>', *OK_LINES[4:]), 400, "To: unterminated"),
    (msg(*OK_LINES[:4], "Call-ID:  ", *OK_LINES[5:]), 400, "empty Call-ID"),
    (msg(*OK_LINES, body=b"abc", length=4), 400, "body of 3 bytes, Content-Length says 4"),
    (msg(*OK_LINES, "Content-Length: -1", length=-1), 400, "bad Content-Length"),
    (msg(*OK_LINES, "l: 5", length=0), 400, "conflicting Content-Length"),
    (msg(*OK_LINES, "Content-Length: 1_0", length=-1), 400, "bad Content-Length"),
    (msg(*OK_LINES, "Content-Length: \u00b2", length=-1), 400, "bad Content-Length"),
    (msg(*OK_LINES, length=99999999999), 413, "over 65535"),
    (msg(*OK_LINES, length=-1) + b"x" * 65536, 513, "message of"),
    (msg(*OK_LINES, "Xx: a\rb"), 400, "CR inside header line"),
    (msg(*OK_LINES, "Xx: " + "a" * 9000), 513, "Xx header over 8192"),
    (msg(*OK_LINES, "Xy: a", *[" " + "a" * 1000] * 9), 513, "Xy header over 8192"),
    (msg(*OK_LINES, *["Xx: a"] * 128), 513, "more than 128 headers"),
]


@pytest.mark.parametrize(("data", "status", "reason"), ERRORS, ids=[e[2] for e in ERRORS])
def test_error_paths(data: bytes, status: int, reason: str) -> None:
    with pytest.raises(SipError) as info:
        parse_message(data)
    assert info.value.status == status
    assert reason in info.value.reason
    assert str(info.value).startswith(str(status))


def test_body_limit_without_content_length() -> None:
    limits = Limits(max_body_bytes=10)
    with pytest.raises(SipError) as info:
        parse_message(msg(*OK_LINES, length=-1) + b"x" * 11, limits=limits)
    assert info.value.status == 413
    assert parse_message(msg(*OK_LINES, length=-1) + b"x" * 10, limits=limits).body == b"x" * 10


def test_datagram_body_extra_bytes_are_ignored() -> None:
    m = parse_message(msg(*OK_LINES, body=b"hello") + b"trailing junk")
    assert m.body == b"hello"


def test_unsupported_request_uri_only_for_request_uri() -> None:
    # From/To may hold any URI scheme; only the Request-URI gets 416.
    m = parse_message(msg(OK_LINES[0], OK_LINES[1], "From: <urn:service:sos>;tag=x", *OK_LINES[3:]))
    assert m.from_tag == "x"
    with pytest.raises(SipError) as info:
        parse_uri("urn:service:sos")
    assert info.value.status == 416


def test_properties_raise_sip_error_on_hand_built_messages() -> None:
    bare = Request("OPTIONS", "sip:h", Headers([("CSeq", "nonsense")]))
    for prop in ("call_id", "cseq", "from_tag", "to_tag", "top_via", "branch"):
        with pytest.raises(SipError) as info:
            getattr(bare, prop)
        assert info.value.status == 400


# --- headers ----------------------------------------------------------------------------------


def test_headers_api() -> None:
    h = Headers([("Via", "a, b"), ("X-One", "1"), ("v", "c"), ("x-one", "2")])
    assert h.get("VIA") == "a, b"
    assert h.get_all("via") == ["a, b", "c"]
    assert h.values("Via") == ["a", "b", "c"]
    assert h.get("missing") is None and h.get_all("missing") == [] and h.values("missing") == []
    assert "x-ONE" in h and "nope" not in h and 3 not in h
    h.set("X-One", "3")
    assert list(h) == [("Via", "a, b"), ("X-One", "3"), ("v", "c")]
    h.set("New", "n")
    assert list(h)[-1] == ("New", "n")
    h.remove("via")
    assert list(h) == [("X-One", "3"), ("New", "n")]
    h.add("New", "m")
    assert len(h) == 3 and h.get_all("new") == ["n", "m"]
    assert h == h.copy() and h != Headers() and h.__eq__(1) is NotImplemented
    assert "Headers(" in repr(h)


def test_values_respects_quotes_and_angle_brackets() -> None:
    h = Headers(
        [("Contact", '"Smith, John" <sip:j@h;a=1,2>;q=0.5, <sip:k@h>, "a \\" , b" <sip:l@h>,')]
    )
    assert h.values("Contact") == [
        '"Smith, John" <sip:j@h;a=1,2>;q=0.5',
        "<sip:k@h>",
        '"a \\" , b" <sip:l@h>',
    ]


# --- URIs, name-addr, params, Via -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:[2001:db8::10]:5070;lr",
        "sip:10.0.0.1",
        "tel:+1-201-555-0123;phone-context=example.com",
    ],
)
def test_uri_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text
    assert parse_uri(str(parse_uri(text))) == parse_uri(text)


def test_uri_fields() -> None:
    u = parse_uri("SIP:alice:pw@[::1]:5060;Transport=TCP;lr?Subject=hi")
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sip", "alice", "pw", "::1", 5060)
    assert u.params["transport"] == "TCP" and u.params["LR"] is None
    assert u.headers == {"Subject": "hi"}
    tel = parse_uri("tel:+15551234")
    assert (tel.user, tel.host) == ("+15551234", "")


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("", 400),
        ("alice@h", 400),
        ("sip:", 400),
        ("sip:@h", 400),
        ("sip:a b@h", 400),
        ("sip:h:port", 400),
        ("sip:h:65536", 400),
        ("sip:[zz::1]", 400),
        ("sip:[::1]x", 400),
        ("sip:h;=x", 400),
        ("sip:h?=x", 400),
        ("tel:", 400),
        ("http://x", 416),
        ("1sip:h", 400),
    ],
)
def test_uri_errors(text: str, status: int) -> None:
    with pytest.raises(SipError) as info:
        parse_uri(text)
    assert info.value.status == status


def test_name_addr_forms() -> None:
    a = parse_name_addr('"Alice \\"A\\"" <sip:alice@h;transport=tcp>;tag=88;x')
    assert a.display_name == 'Alice "A"' and a.tag == "88"
    assert a.uri.params["transport"] == "tcp" and a.params["x"] is None
    assert str(a) == '"Alice \\"A\\"" <sip:alice@h;transport=tcp>;tag=88;x'
    b = parse_name_addr("Bob Smith <sip:bob@h>")
    assert b.display_name == "Bob Smith"
    # Without <> the parameters belong to the header (RFC 3261 20.10).
    c = parse_name_addr("sip:carol@h;tag=5;transport=udp")
    assert c.uri == SipUri("sip", "carol", host="h")
    assert c.tag == "5" and c.params["transport"] == "udp"
    assert str(c) == "<sip:carol@h>;tag=5;transport=udp"
    d = parse_name_addr("<sip:d@h>")
    assert d.display_name is None and d == NameAddr(None, SipUri("sip", "d", host="h"))
    assert parse_name_addr("<urn:uuid:f81d4fae>").uri.opaque == "uuid:f81d4fae"


@pytest.mark.parametrize(
    "text", ["", '"x', '"x" sip:a@h', "<sip:a@h", "<sip:a@h> x", "<>", "<sip:a@h>;t@g"]
)
def test_name_addr_errors(text: str) -> None:
    with pytest.raises(SipError) as info:
        parse_name_addr(text)
    assert info.value.status == 400


def test_params() -> None:
    p = parse_params(';Tag=1;lr; received = 1.2.3.4 ;x="a;b"')
    assert p == {"tag": "1", "LR": None, "received": "1.2.3.4", "x": '"a;b"'}
    assert list(p) == ["Tag", "lr", "received", "x"]
    assert str(p) == ';Tag=1;lr;received=1.2.3.4;x="a;b"'
    p["TAG"] = "2"
    del p["lr"]
    assert str(p) == ';Tag=2;received=1.2.3.4;x="a;b"'
    assert p.__eq__(3) is NotImplemented and "Params(" in repr(p)


def test_response_address_rules() -> None:
    src = ("203.0.113.7", 40123)
    plain = parse_via("SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1")
    assert response_address(plain, src) == ("10.0.0.5", 5060)
    received = parse_via("SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1;received=203.0.113.7")
    assert response_address(received, src) == ("203.0.113.7", 5070)
    bare_rport = parse_via("SIP/2.0/UDP 10.0.0.5:5070;rport;branch=z9hG4bK1")
    assert response_address(bare_rport, src) == src
    stamped = parse_via("SIP/2.0/UDP 10.0.0.5;rport=1111;received=198.51.100.1")
    assert response_address(stamped, src) == ("198.51.100.1", 1111)
    v6 = parse_via("SIP/2.0/UDP [2001:db8::5];received=[2001:db8::7]")
    assert response_address(v6, ("2001:db8::7", 5)) == ("2001:db8::7", 5060)
    assert response_address(parse_via("SIP/2.0/UDP [2001:db8::5]"), src) == ("2001:db8::5", 5060)


def test_stamp_via() -> None:
    src = ("203.0.113.7", 40123)
    r = request("OPTIONS")
    r.headers.set("Via", "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP p;branch=2")
    stamp_via(r, src)
    assert r.headers.get("Via") == (
        "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport=40123;received=203.0.113.7,"
        " SIP/2.0/UDP p;branch=2"
    )
    assert response_address(r.top_via, ("0.0.0.0", 1)) == src
    same = request("OPTIONS")
    before = same.headers.get("Via")
    stamp_via(same, ("10.0.0.5", 5060))  # sent-by is the source: nothing to add
    assert same.headers.get("Via") == before
    other = request("OPTIONS")
    stamp_via(other, ("10.9.9.9", 5060))
    assert other.top_via.received == "10.9.9.9" and not other.top_via.rport_requested


# --- serialize and response_to ----------------------------------------------------------------


def test_serialize_sets_content_length() -> None:
    r = Request("MESSAGE", "sip:h", Headers([("l", "999"), ("Content-Length", "3")]), b"hey")
    assert serialize(r) == b"MESSAGE sip:h SIP/2.0\r\nl: 3\r\n\r\nhey"
    r2 = Response(200, "OK", Headers([("To", "<sip:a@h>")]))
    assert bytes(r2) == b"SIP/2.0 200 OK\r\nTo: <sip:a@h>\r\nContent-Length: 0\r\n\r\n"


def test_serialize_refuses_header_injection() -> None:
    for headers in ([("X", "a\r\nVia: evil")], [("X\n", "a")]):
        with pytest.raises(ValueError, match="CR or LF"):
            serialize(Response(200, "OK", Headers(headers)))
    with pytest.raises(ValueError, match="start line"):
        serialize(Response(200, "OK\r\nX: y", Headers()))


@pytest.mark.parametrize(
    "data",
    [*SIP_CORPUS, CUBE_INVITE],
    ids=["siprec-invite", "ack", "bye", "compact-options", "200", "cube-invite"],
)
def test_real_messages_round_trip(data: bytes) -> None:
    m = parse_message(data)
    assert parse_message(bytes(m)) == m
    if b"\r\nf: " not in data and b":  " not in data:  # nothing normalized: the same bytes
        assert bytes(m) == data


def test_response_to() -> None:
    req = parse_message(
        msg(
            "INVITE sip:rec@h SIP/2.0",
            "Via: SIP/2.0/UDP p1;branch=z9hG4bKa",
            "Max-Forwards: 70",
            "Via: SIP/2.0/UDP p2;branch=z9hG4bKb, SIP/2.0/UDP p3;branch=z9hG4bKc",
            *BASIC[1:],
            "CSeq: 4 INVITE",
            "Timestamp: 54",
            "Record-Route: <sip:p1;lr>",
        )
    )
    assert isinstance(req, Request)
    ok = response_to(
        req,
        200,
        to_tag="srs1",
        headers=[("Contact", "<sip:rec@10.0.0.9>")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    assert (ok.status, ok.reason) == (200, "OK")
    assert list(ok.headers) == [
        ("Via", "SIP/2.0/UDP p1;branch=z9hG4bKa"),
        ("Via", "SIP/2.0/UDP p2;branch=z9hG4bKb, SIP/2.0/UDP p3;branch=z9hG4bKc"),
        ("From", "<sip:alice@10.0.0.5>;tag=1928301774"),
        ("To", "<sip:rec@10.0.0.9>;tag=srs1"),
        ("Call-ID", "a84b4c76e66710@10.0.0.5"),
        ("CSeq", "4 INVITE"),
        ("Contact", "<sip:rec@10.0.0.9>"),
        ("Content-Type", "application/sdp"),
    ]
    assert ok.to_tag == "srs1" and ok.body == b"v=0\r\n"
    trying = response_to(req, 100)
    assert trying.reason == "Trying" and trying.headers.get("Timestamp") == "54"
    assert trying.to_tag is None
    # A To that already has a tag keeps it.
    tagged = response_to(response_to_request(ok), 481, to_tag="other")
    assert tagged.to_tag == "srs1" and tagged.reason == "Call/Transaction Does Not Exist"
    assert response_to(req, 299).reason == "OK" and response_to(req, 499).reason == "Client Error"
    assert response_to(req, 799).reason == "Unknown"
    assert response_to(req, 488, "Nope").reason == "Nope"
    assert parse_message(bytes(ok)).to_tag == "srs1"


def response_to_request(resp: Response) -> Request:
    """A BYE carrying ``resp``'s dialog headers (so its To has a tag)."""
    return Request("BYE", "sip:h", resp.headers.copy())


def test_reason_phrases_of_the_brief() -> None:
    req = request()
    expected = {
        420: "Bad Extension",
        422: "Session Interval Too Small",
        487: "Request Terminated",
        488: "Not Acceptable Here",
        491: "Request Pending",
        501: "Not Implemented",
        503: "Service Unavailable",
        505: "Version Not Supported",
        513: "Message Too Large",
        416: "Unsupported URI Scheme",
        413: "Request Entity Too Large",
    }
    for status, reason in expected.items():
        assert response_to(req, status).reason == reason


def test_identifiers() -> None:
    assert new_branch().startswith("z9hG4bK") and new_branch() != new_branch()
    assert len(new_tag()) == 16 and new_tag() != new_tag()
    assert len(new_call_id()) == 32


def test_is_keepalive() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n")
    assert not is_keepalive(b"") and not is_keepalive(b"\r\nX")


# --- streams ----------------------------------------------------------------------------------


def test_stream_parser_frames_pipelined_messages_and_keepalives() -> None:
    a, b = SIP_CORPUS[2], SIP_CORPUS[3]
    p = StreamParser()
    items = p.feed(b"\r\n\r\n" + a + b"\r\n" + b + b"\r\n\r\n" + b[:20])
    assert items[0] is KEEPALIVE and isinstance(items[3], KeepAlive)
    # A lone CRLF (a pong) is skipped.
    assert items[1:3] == [parse_message(a), parse_message(b)]
    assert p.buffered == 20 and p.error is None
    assert p.feed(b[20:]) == [parse_message(b)]
    assert p.buffered == 0


def test_stream_parser_waits_for_the_body() -> None:
    data = SIP_CORPUS[0]
    p = StreamParser()
    assert p.feed(data[:-1]) == []
    (m,) = p.feed(data[-1:])
    assert bytes(m) == data


def test_stream_parser_without_content_length_is_dead() -> None:
    good = SIP_CORPUS[2]
    p = StreamParser()
    items = p.feed(good + msg(*OK_LINES, length=-1))
    assert [bytes(m) for m in items] == [good]  # what came before the error is kept
    assert p.error is not None and p.error.status == 400
    assert "Content-Length" in p.error.reason
    assert p.buffered == 0
    with pytest.raises(SipError):
        p.feed(good)


def test_stream_parser_bounds_its_buffer() -> None:
    p = StreamParser(limits=Limits(max_message_bytes=1000))
    for _ in range(10):
        p.feed(b"X" * 100)
    assert p.error is None
    p.feed(b"X" * 100)
    assert p.error is not None and p.error.status == 513 and p.buffered == 0
    big = StreamParser(limits=Limits(max_message_bytes=1000))
    big.feed(msg(*OK_LINES, length=900))
    assert big.error is not None and big.error.status == 513
    huge = StreamParser()
    huge.feed(msg(*OK_LINES, "X: " + "y" * 70000))
    assert huge.error is not None and huge.error.status == 513


def test_stream_parser_message_error_kills_the_connection() -> None:
    p = StreamParser()
    p.feed(msg("OPTIONS sip:rec@h SIP/3.0", *OK_LINES[1:]))
    assert p.error is not None and p.error.status == 505


# --- properties -------------------------------------------------------------------------------

_token = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=2
)
_value = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
).map(lambda s: s.strip(" \t"))


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    headers = Headers(
        [
            ("Via", f"SIP/2.0/UDP h{draw(st.integers(0, 99))};branch=z9hG4bK{draw(_token)}"),
            ("From", f"<sip:a@h>;tag={draw(_token)}"),
            ("To", "<sip:b@h>"),
            ("Call-ID", draw(_token)),
        ]
    )
    method = draw(_token).upper()
    headers.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
    for name, value in draw(st.lists(st.tuples(_token, _value), max_size=8)):
        if name.lower() != "content-length":
            headers.add(name, value)
    body = draw(st.binary(max_size=300))
    headers.add("Content-Length", str(len(body)))
    if draw(st.booleans()):
        return Request(method, f"sip:{draw(_token)}@example.com", headers, body)
    return Response(draw(st.integers(100, 699)), draw(_value), headers, body)


@given(messages())
def test_generated_messages_round_trip(message: Request | Response) -> None:
    raw = bytes(message)
    assert parse_message(raw) == message
    (streamed,) = StreamParser().feed(raw)
    assert streamed == message


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_sip_error(data: bytes) -> None:
    for parse in (parse_message, lambda d: StreamParser().feed(d)):
        with contextlib.suppress(SipError):
            parse(data)


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_sip_error(text: str) -> None:
    for parse in (parse_uri, parse_name_addr, parse_via, parse_params):
        with contextlib.suppress(SipError):
            parse(text)


_stream_parts = st.sampled_from([*SIP_CORPUS[1:4], b"\r\n", b"\r\n\r\n", b"garbage\r\n\r\n", b"\n"])


@given(st.lists(_stream_parts, max_size=6), st.lists(st.integers(0, 5000), max_size=8))
def test_stream_chunking_does_not_matter(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    whole = StreamParser()
    expected = whole.feed(data)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunked = StreamParser()
    got: list[Request | Response | KeepAlive] = []
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        if chunked.error is None:
            got += chunked.feed(data[start:end])
    assert got == expected
    assert (chunked.error is None) == (whole.error is None)
    if whole.error is not None and chunked.error is not None:
        assert chunked.error.status == whole.error.status
