"""SIPREC / Cisco NBR recording offers: multipart, metadata dialects, roles, answers.

Shared vectors come from /work/shared/testdata/siprec (drachtio-siprec-recording-server test
data, MIT). Inline literals marked "drachtio" are copied from the same repository's
test/data (MIT License, Copyright (c) 2018 Dave Horton); the BroadWorks and Metaswitch-style
samples are written here after those vendors' published schema shapes, with made-up values.
Expected values below were derived by reading each XML document by hand.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.voice.errors import SiprecError
from callstream.voice.multipart import BodyPart, parse_content_type, parse_multipart
from callstream.voice.rsmetadata import (
    NS_RECORDING,
    NS_RECORDING_DRAFT,
    NS_SIPREC_BROADWORKS,
    aor_matches,
    parse_metadata,
)
from callstream.voice.sdp import RtpMap, chosen_codec, parse_sdp
from callstream.voice.siprec import (
    RecordingOffer,
    assign_roles,
    build_answer,
    is_record_only,
    parse_nbr_participant,
    parse_recording_offer,
)

SIPREC_DIR = Path("/work/shared/testdata/siprec")


def _shared_bytes(name: str) -> bytes:
    path = SIPREC_DIR / name
    if not path.exists():
        pytest.skip(f"shared test data not found at {path}")
    return path.read_bytes()


def _mp(boundary: str) -> str:
    return f"multipart/mixed;boundary={boundary}"


def _roles(offer: RecordingOffer, **kw: Any) -> list[tuple[int, str | None, str | None, bool]]:
    return [(r.index, r.label, r.aor, r.is_caller) for r in assign_roles(offer, **kw)]


def _answer(offer: RecordingOffer) -> list[tuple[int, list[str], str]]:
    ports = [20000 + 2 * i for i in range(len(offer.sdp.media))]
    answer = build_answer(offer, address="203.0.113.9", ports=ports, session_id=7)
    text = answer.to_text()
    assert parse_sdp(text) == answer
    # Labels are copied so the SRC can match answer m-lines to its streams.
    assert [m.label for m in answer.media] == [m.label for m in offer.sdp.media]
    return [(m.port, m.formats, m.direction) for m in answer.media]


# --- every shared vector -------------------------------------------------------------------


@dataclass
class Expect:
    boundary: str
    dialect: str
    namespace: str
    metadata_type: str
    part_types: list[str]
    sip_session_ids: list[str]
    # (participant id, aors, names, send, recv)
    participants: list[tuple[str, list[str], list[str], list[str], list[str]]]
    streams: list[tuple[str, str]]  # (stream id, label)
    calling: tuple[str | None, str | None]  # (participant id, hint)
    roles: list[tuple[int, str | None, str | None, bool]]
    reason: str
    answer: list[tuple[int, list[str], str]]


CISCO = Expect(
    boundary="uniqueBoundary",
    dialect="rfc7865",
    namespace=NS_RECORDING,
    metadata_type="application/rs-metadata+xml",
    part_types=["application/sdp", "application/rs-metadata+xml", "application/gtd"],
    sip_session_ids=["e9fffff2020a598b86962867715db0cf;remote=cd0f7093d62c5f0697098fd69a4aa57b"],
    participants=[
        (
            "kQNhKFdEEeeJ99D/VsPGWA==",
            ["sip:7301@35.162.237.204"],
            [],
            ["kQOH5VdEEeeJ/ND/VsPGWA=="],
            ["kQOH5VdEEeeJ/dD/VsPGWA=="],
        ),
        (
            "kQNhKFdEEeeJ+ND/VsPGWA==",
            ["sip:7300@35.162.237.204"],
            ["7300"],
            ["kQOH5VdEEeeJ/dD/VsPGWA=="],
            ["kQOH5VdEEeeJ/ND/VsPGWA=="],
        ),
    ],
    streams=[("kQOH5VdEEeeJ/ND/VsPGWA==", "1"), ("kQOH5VdEEeeJ/dD/VsPGWA==", "2")],
    calling=(None, None),
    # 7301 sends stream label 1 -> m-line 0 (a=label:1); first participant = caller.
    roles=[
        (0, "1", "sip:7301@35.162.237.204", True),
        (1, "2", "sip:7300@35.162.237.204", False),
    ],
    reason="metadata",
    answer=[(20000, ["0", "101"], "recvonly"), (20002, ["0", "101"], "recvonly")],
)

ACME = Expect(
    boundary="unique-boundary-1",
    dialect="draft",
    namespace=NS_RECORDING_DRAFT,
    metadata_type="application/rs-metadata+xml",
    part_types=["application/sdp", "application/rs-metadata+xml"],
    sip_session_ids=[],
    participants=[
        (
            "fSD3PFErSjNTHLDiXCELjw==",
            ["sip:9000@192.168.50.102"],
            ["9000"],
            ["Q4O8SGLQSilXHUGQX2zd8Q=="],
            [],
        ),
        (
            "EbccNyypRlFYXTm4iw8hxw==",
            ["sip:1002@192.168.50.10"],
            ["1002"],
            ["l1NyQy8ORSlouUj2G3UE/A=="],
            [],
        ),
    ],
    streams=[("Q4O8SGLQSilXHUGQX2zd8Q==", "16777227"), ("l1NyQy8ORSlouUj2G3UE/A==", "16777228")],
    # apkt:callingParty true on 9000, whose <send> is the stream labelled 16777227.
    calling=("fSD3PFErSjNTHLDiXCELjw==", "callingParty"),
    roles=[
        (0, "16777227", "sip:9000@192.168.50.102", True),
        (1, "16777228", "sip:1002@192.168.50.10", False),
    ],
    reason="vendor-hint:callingParty",
    answer=[(20000, ["0"], "recvonly"), (20002, ["0"], "recvonly")],
)

PROCOMM = Expect(
    boundary="2CD2A2E9",
    dialect="rfc7865",
    namespace=NS_RECORDING,
    metadata_type="application/rs-metadata",
    part_types=["application/sdp", "application/rs-metadata"],
    sip_session_ids=[],
    participants=[
        (
            "Ye5S5pU+SAG2JY4oG7M4Cw==",
            ["sip:016190200@87.252.209.116"],
            ["016190200"],
            ["HdU6Bt7GTZiHcNe4R2LHdA=="],
            ["T6T6syCpRSGH1J+gwLFaIQ=="],
        ),
        (
            "QDhKextjTa+F1TzXuvHZHw==",
            ["Extension-016190619@speechpath.ie"],
            ["Speechpath-Main-Line 016190619"],
            ["T6T6syCpRSGH1J+gwLFaIQ=="],
            ["HdU6Bt7GTZiHcNe4R2LHdA=="],
        ),
    ],
    streams=[("HdU6Bt7GTZiHcNe4R2LHdA==", "a_leg"), ("T6T6syCpRSGH1J+gwLFaIQ==", "b_leg")],
    calling=(None, None),
    roles=[
        (0, "a_leg", "sip:016190200@87.252.209.116", True),
        (1, "b_leg", "Extension-016190619@speechpath.ie", False),
    ],
    reason="metadata",
    answer=[(20000, ["8"], "recvonly"), (20002, ["8"], "recvonly")],
)

INACTIVE = Expect(
    boundary="uniqueBoundary",
    dialect="rfc7865",
    namespace=NS_RECORDING,
    metadata_type="application/rs-metadata+xml",
    part_types=["application/sdp", "application/rs-metadata+xml"],
    sip_session_ids=["f845891467cf5c2189987435807bd432;remote=1aa1123b8825c906d03681ba23102629"],
    participants=[
        ("GZBIusaXEeuxxa1dFIaIyA==", ["sip:0733165805@192.168.40.34"], [], [], []),
        ("GZBIusaXEeuxxq1dFIaIyA==", ["sip:+972546136443@192.168.10.140"], [], [], []),
    ],
    streams=[("GbZGg8aXEeuxy61dFIaIyA==", "1"), ("GbZGg8aXEeuxzK1dFIaIyA==", "2")],
    calling=(None, None),
    # Empty participantstreamassoc: no association, so the label rule decides (label 1);
    # participants then follow document order (first -> the caller leg).
    roles=[
        (0, "1", "sip:0733165805@192.168.40.34", True),
        (1, "2", "sip:+972546136443@192.168.10.140", False),
    ],
    reason="label",
    answer=[(20000, ["0", "101"], "inactive"), (20002, ["0", "101"], "inactive")],
)

VECTORS = {
    "cisco-siprec-offer.txt": CISCO,
    "acme-siprec-offer.txt": ACME,
    "procomm-siprec-offer.txt": PROCOMM,
    "inactive-sdp-offer.txt": INACTIVE,
}


def _check(offer: RecordingOffer, expect: Expect) -> None:
    assert offer.kind == "siprec"
    md = offer.metadata
    assert md is not None
    assert (md.dialect, md.namespace, md.datamode) == (expect.dialect, expect.namespace, "complete")
    assert offer.metadata_content_type == expect.metadata_type
    assert offer.metadata_text == md.text and md.text.startswith("<?xml")
    assert [p.content_type for p in offer.parts] == expect.part_types
    assert md.sip_session_ids == expect.sip_session_ids
    assert [(p.participant_id, p.aors, p.names, p.send, p.recv) for p in md.participants] == (
        expect.participants
    )
    assert [(s.stream_id, s.label) for s in md.streams] == expect.streams
    assert (md.calling_participant, md.calling_hint) == expect.calling
    assert _roles(offer) == expect.roles
    assert {r.reason for r in assign_roles(offer)} == {expect.reason}
    assert _answer(offer) == expect.answer


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_shared_vector(name: str) -> None:
    expect = VECTORS[name]
    body = _shared_bytes(name)
    assert body.startswith(b"\n")
    offer = parse_recording_offer(_mp(expect.boundary), body, record_only=False)
    _check(offer, expect)
    # The same body with CRLF line ends and a quoted boundary parses identically.
    crlf = body.replace(b"\n", b"\r\n")
    offer2 = parse_recording_offer(
        f'multipart/mixed; boundary="{expect.boundary}"', crlf, record_only=False
    )
    _check(offer2, expect)
    # The per-connector override inverts the decision.
    swapped = assign_roles(offer, swap=True)
    assert [r.is_caller for r in swapped] == [not c for *_, c in expect.roles]
    assert all(r.swapped for r in swapped)


def test_shared_vector_parts_and_gtd_ignored() -> None:
    body = _shared_bytes("cisco-siprec-offer.txt")
    parts = parse_multipart(_mp("uniqueBoundary"), body)
    assert [(p.content_type, p.disposition) for p in parts] == [
        ("application/sdp", "session"),
        ("application/rs-metadata+xml", "recording-session"),
        ("application/gtd", "signal"),
    ]
    assert parts[0].headers["content-disposition"] == "session;handling=required"
    assert parts[0].body.startswith(b"v=0\n") and parts[0].body.endswith(b"a=label:2\n")
    assert parts[2].body == b"IAM,\nGCI,91036128574411e789f9d0ff56c3c658\n"


def test_inactive_vector_comfort_noise_and_codec() -> None:
    body = _shared_bytes("inactive-sdp-offer.txt")
    offer = parse_recording_offer(_mp("uniqueBoundary"), body, record_only=False)
    m = offer.sdp.media[0]
    assert m.comfort_noise_pts == {19} and m.telephone_event_pts == {101}
    answer = build_answer(offer, address="203.0.113.9", ports=[20000, 20002], session_id=1)
    assert chosen_codec(m, answer.media[0]) == RtpMap(0, "PCMU", 8000)


def test_non_siprec_payload_is_refused_unless_record_only() -> None:
    body = _shared_bytes("non-siprec-payload.txt")
    with pytest.raises(SiprecError) as info:
        parse_recording_offer("application/sdp", body, record_only=False)
    assert info.value.status == 488
    assert "X-Voice-Connector-Record-Only" in info.value.reason
    offer = parse_recording_offer("application/sdp", body, record_only=True)
    assert (offer.kind, offer.metadata, offer.parts) == ("nbr", None, [])
    assert offer.sdp_text == body.decode()
    roles = assign_roles(offer)
    assert [(r.index, r.label, r.is_caller, r.reason) for r in roles] == [
        (0, "1", True, "single-leg")
    ]
    # One leg stays the caller even with the override (it is the only voice there is).
    assert [r.is_caller for r in assign_roles(offer, swap=True)] == [True]
    assert _answer(offer) == [(20000, ["0", "101"], "recvonly")]


@pytest.mark.parametrize("name", ["sample-sdps.txt", "sample-sdp2.txt", "sample-sdp3.txt"])
def test_sample_sdps_as_nbr_offers(name: str) -> None:
    texts = _shared_bytes(name).split(b"__split_here__\n")
    assert len(texts) == 2
    for text in texts:
        offer = parse_recording_offer("application/sdp", text, record_only=True)
        (role,) = assign_roles(offer)
        assert role.is_caller and role.reason == "single-leg"
    # Combined into one two-m-line NBR offer (what the drachtio combiner builds).
    first, second = (parse_sdp(t) for t in texts)
    first.media += second.media
    combined = first.to_text().encode()
    offer = parse_recording_offer("application/sdp", combined, record_only=True)
    labels = [m.label for m in offer.sdp.media]
    expected_caller = 0  # label "1" where labelled; else the first m-line
    reason = "label" if labels == ["1", "2"] else "first-m-line"
    roles = assign_roles(offer)
    assert [r.is_caller for r in roles] == [i == expected_caller for i in range(2)]
    assert {r.reason for r in roles} == {reason}


# --- the SIPp scenario's INVITE and re-INVITE ------------------------------------------------

SIPP_VALUES = {
    "remote_port": "5060",
    "remote_ip": "198.51.100.20",
    "transport": "UDP",
    "local_ip": "192.0.2.10",
    "local_port": "5061",
    "local_ip_type": "4",
    "branch": "z9hG4bK-1-1",
    "pid": "4242",
    "call_number": "1",
    "call_id": "1-4242@192.0.2.10",
    "auto_media_port": "6000",
    "peer_tag_param": ";tag=srs1",
    "service": "service",
}


def _sipp_messages() -> list[tuple[dict[str, str], bytes]]:
    scenario = _shared_bytes("uac_siprec_pcap.xml").decode("latin-1")
    messages = []
    for block in re.findall(r"<!\[CDATA\[(.*?)\]\]>", scenario, re.S):
        # SIPp strips each line's leading white space and the leading blank lines.
        lines = [line.strip() for line in block.strip("\n").split("\n")]
        while lines and not lines[0]:
            lines.pop(0)
        blank = lines.index("")
        head, body_lines = lines[:blank], lines[blank + 1 :]
        body = "\n".join(body_lines).strip("\n") + "\n"
        body = re.sub(r"\[(\w+)\]", lambda m: SIPP_VALUES[m.group(1)], body)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        headers["start"] = head[0]
        messages.append((headers, body.encode()))
    return messages


def test_sipp_invite_labels_mismatch_still_a_leg_is_caller() -> None:
    messages = _sipp_messages()
    invites = [(h, b) for h, b in messages if h["start"].startswith("INVITE")]
    assert len(invites) == 2
    (headers, body), (re_headers, re_body) = invites
    assert headers["content-type"] == "multipart/mixed; boundary=690DEB64"
    offer = parse_recording_offer(headers["content-type"], body, record_only=False)
    md = offer.metadata
    assert md is not None
    assert (md.dialect, md.sip_session_ids) == ("rfc7865", ["hvij5wK4Wx"])
    assert [(p.aors, p.send) for p in md.participants] == [
        (["sip:6001@localhost"], []),
        (["sip:101@localhost"], []),
    ]
    assert [s.label for s in md.streams] == ["1", "2"]
    assert [m.label for m in offer.sdp.media] == ["a_leg", "b_leg"]
    assert offer.sdp.media[0].port == 6000
    assert offer.sdp.address_of(offer.sdp.media[1]) == "192.0.2.10"
    # Metadata labels 1/2 do not match SDP labels a_leg/b_leg: the label rule decides.
    assert _roles(offer) == [
        (0, "a_leg", "sip:6001@localhost", True),
        (1, "b_leg", "sip:101@localhost", False),
    ]
    assert {r.reason for r in assign_roles(offer)} == {"label"}
    assert _answer(offer) == [(20000, ["8"], "recvonly"), (20002, ["8"], "recvonly")]
    # The in-dialog re-INVITE puts both streams on hold.
    re_offer = parse_recording_offer(
        re_headers["content-type"], re_body, record_only=False, in_dialog=True
    )
    assert [m.direction for m in re_offer.sdp.media] == ["inactive", "inactive"]
    assert _answer(re_offer) == [(20000, ["8"], "inactive"), (20002, ["8"], "inactive")]


# --- inline dialect samples -----------------------------------------------------------------

# drachtio test/data/sonus-siprec-offer.txt (MIT): prefixed draft namespace, callData, and no
# closing delimiter.
SONUS = b"""
--sonus-content-delim
Content-Disposition: session; handling=required
Content-Type: application/sdp

v=0
o=Sonus_UAC 328001 655768 IN IP4 172.16.169.181
s=SIP Media Capabilities
t=0 0
m=audio 48932 RTP/AVP 0
c=IN IP4 172.16.169.132
a=label:1
a=rtpmap:0 PCMU/8000
a=sendonly
a=maxptime:20
m=audio 48926 RTP/AVP 0
c=IN IP4 172.16.169.132
a=label:2
a=rtpmap:0 PCMU/8000
a=sendonly
a=maxptime:20

--sonus-content-delim
Content-Disposition: recording-session
Content-Type: application/rs-metadata+xml

<?xml version="1.0" encoding="UTF-8"?>
<tns:recording xmlns:tns='urn:ietf:params:xml:ns:recording'>
    <tns:datamode>complete</tns:datamode>
    <tns:group group_id="MTQ3YzA3YzAtNjdkNy0xMA==">
        <tns:associate-time>1970-05-13T03:29:05Z</tns:associate-time>
        <callData xmlns='urn:ietf:params:xml:ns:callData'>
            <fromhdr>"Extension 8500" &lt;sip:2249888500@172.16.198.55&gt;;tag=SerryvK5ej0jc</fromhdr>
            <tohdr>&lt;sip:2249888012@172.16.195.72&gt;;tag=gK00801b2d</tohdr>
            <callid>2da553f7-a48b-1235-d6a2-5254003a4988</callid>
            <gcid>241205267</gcid>
        </callData>
    </tns:group>
    <tns:session session_id="MTQ3YzA3YzEtNjdkNy0xMA==">
        <tns:group-ref>MTQ3YzA3YzAtNjdkNy0xMA==</tns:group-ref>
        <tns:start-time>1970-05-13T03:29:05Z</tns:start-time>
    </tns:session>
    <tns:participant participant_id="MTQ3YzA3YzItNjdkNy0xMA==">
        <tns:nameID aor="2249888500@172.16.198.55">
            <tns:name xml:lang="en">Extension 8500</tns:name>
        </tns:nameID>
    </tns:participant>
    <tns:participant participant_id="MTQ3YzA3YzMtNjdkNy0xMA==">
        <tns:nameID aor="2249888012@172.16.195.72">
            <tns:name xml:lang="en"> </tns:name>
        </tns:nameID>
    </tns:participant>
    <tns:stream stream_id="MTQ3YzA3YzQtNjdkNy0xMA==" session_id="MTQ3YzA3YzEtNjdkNy0xMA==">
        <tns:label>1</tns:label>
        <tns:associate-time>1970-05-13T03:29:05Z</tns:associate-time>
    </tns:stream>
    <tns:stream stream_id="MTQ3YzA3YzUtNjdkNy0xMA==" session_id="MTQ3YzA3YzEtNjdkNy0xMA==">
        <tns:label>2</tns:label>
        <tns:associate-time>1970-05-13T03:29:05Z</tns:associate-time>
    </tns:stream>
    <tns:sessionrecordingassoc session_id="MTQ3YzA3YzEtNjdkNy0xMA==">
        <tns:associate-time>1970-05-13T03:29:05Z</tns:associate-time>
    </tns:sessionrecordingassoc>
    <tns:participantsessionassoc participant_id="MTQ3YzA3YzItNjdkNy0xMA==" session_id="MTQ3YzA3YzEtNjdkNy0xMA==">
        <tns:associate-time>1970-05-13T03:29:05Z</tns:associate-time>
    </tns:participantsessionassoc>
    <tns:participantsessionassoc participant_id="MTQ3YzA3YzMtNjdkNy0xMA==" session_id="MTQ3YzA3YzEtNjdkNy0xMA==">
        <tns:associate-time>1970-05-13T03:29:05Z</tns:associate-time>
    </tns:participantsessionassoc>
    <tns:participantstreamassoc participant_id="MTQ3YzA3YzItNjdkNy0xMA==">
        <tns:send>MTQ3YzA3YzUtNjdkNy0xMA==</tns:send>
        <tns:recv>MTQ3YzA3YzQtNjdkNy0xMA==</tns:recv>
    </tns:participantstreamassoc>
    <tns:participantstreamassoc participant_id="MTQ3YzA3YzMtNjdkNy0xMA==">
        <tns:send>MTQ3YzA3YzQtNjdkNy0xMA==</tns:send>
        <tns:recv>MTQ3YzA3YzUtNjdkNy0xMA==</tns:recv>
    </tns:participantstreamassoc>
</tns:recording>
"""


def test_sonus_prefixed_draft_with_call_data() -> None:
    offer = parse_recording_offer(_mp("sonus-content-delim"), SONUS, record_only=False)
    md = offer.metadata
    assert md is not None
    assert (md.dialect, md.namespace) == ("draft", NS_RECORDING_DRAFT)
    assert md.call_data["callid"] == "2da553f7-a48b-1235-d6a2-5254003a4988"
    assert md.call_data["gcid"] == "241205267"
    assert md.call_data["fromhdr"].startswith('"Extension 8500" <sip:2249888500@')
    assert [s.session_id for s in md.sessions] == ["MTQ3YzA3YzEtNjdkNy0xMA=="]
    assert [p.names for p in md.participants] == [["Extension 8500"], []]
    # From: 2249888500 = the first participant, who SENDS the stream labelled 2: the caller's
    # voice is on the second m-line, whatever the label heuristic would say.
    assert (md.calling_participant, md.calling_hint) == ("MTQ3YzA3YzItNjdkNy0xMA==", "callData")
    assert _roles(offer) == [
        (0, "1", "2249888012@172.16.195.72", False),
        (1, "2", "2249888500@172.16.198.55", True),
    ]
    assert {r.reason for r in assign_roles(offer)} == {"vendor-hint:callData"}
    assert _answer(offer) == [(20000, ["0"], "recvonly"), (20002, ["0"], "recvonly")]


# drachtio test/data/avaya-siprec-offer.txt (MIT): Acme extension data on an Avaya SBC; the
# second m-line relies on the static payload type 8 (no a=rtpmap:8).
AVAYA = b"""
--unique-boundary-1
Content-Type: application/sdp

v=0
o=- 15345885 220 IN IP4 10.89.88.243
s=-
c=IN IP4 10.89.88.244
t=0 0
m=audio 33802 RTP/AVP 8 18 101
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=label:201835599
a=sendonly
m=audio 33806 RTP/AVP 8 101
a=rtpmap:101 telephone-event/8000
a=ptime:20
a=label:201835600
a=sendonly

--unique-boundary-1
Content-Type: application/rs-metadata+xml
Content-Disposition: recording-session

<?xml version='1.0' encoding='UTF-8'?>
<recording xmlns='urn:ietf:params:xml:ns:recording'>
\t<datamode>complete</datamode>
\t<session id="0rBXFi0CTBB0j8HyGBBrlg==">
\t\t<associate-time>2020-03-27T13:56:05</associate-time>
\t\t<extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
\t\t\t<apkt:ucid>00FA081003B9CF5E7DF7E5;encoding=hex</apkt:ucid>
\t\t\t<apkt:callerOrig>true</apkt:callerOrig>
\t\t</extensiondata>
\t</session>
\t<participant id="ARlTfnirTkxisET9jl8njg==" session="0rBXFi0CTBB0j8HyGBBrlg==">
\t\t<nameID aor="sip:31624895902@10.10.128.62">
\t\t\t<name>31624895902</name>
\t\t</nameID>
\t\t<send>0CWQGFVzQf5hAGoO9gnx8g==</send>
\t\t<associate-time>2020-03-27T13:56:05</associate-time>
\t\t<extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
\t\t\t<apkt:callingParty>true</apkt:callingParty>
\t\t\t<apkt:request-uri>sip:33187164021@10.77.91.46:5060</apkt:request-uri>
\t\t\t<apkt:realm>Avaya-GR-REC</apkt:realm>
\t\t\t<apkt:header label="Call-ID">
\t\t\t\t<value>134485702_44821128@10.10.128.62</value>
\t\t\t</apkt:header>
\t\t</extensiondata>
\t</participant>
\t<participant id="L1OKBsjoTO11Pn5uow6ptQ==" session="0rBXFi0CTBB0j8HyGBBrlg==">
\t\t<nameID aor="sip:33187164021@sip.webhelpgroupe.lan">
\t\t\t<name>33187164021</name>
\t\t</nameID>
\t\t<send>oOmIeCrQRZ1zaHo/DHE5og==</send>
\t\t<associate-time>2020-03-27T13:56:05</associate-time>
\t\t<extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
\t\t\t<apkt:callingParty>false</apkt:callingParty>
\t\t</extensiondata>
\t</participant>
\t<stream id="0CWQGFVzQf5hAGoO9gnx8g==" session="0rBXFi0CTBB0j8HyGBBrlg==">
\t\t<label>201835599</label>
\t\t<mode>separate</mode>
\t\t<associate-time>2020-03-27T13:56:05</associate-time>
\t</stream>
\t<stream id="oOmIeCrQRZ1zaHo/DHE5og==" session="0rBXFi0CTBB0j8HyGBBrlg==">
\t\t<label>201835600</label>
\t\t<mode>separate</mode>
\t\t<associate-time>2020-03-27T13:56:05</associate-time>
\t</stream>
</recording>
--unique-boundary-1--
"""


def test_avaya_acme_extension_and_static_payload_type() -> None:
    offer = parse_recording_offer(_mp("unique-boundary-1"), AVAYA, record_only=False)
    md = offer.metadata
    assert md is not None
    assert md.dialect == "draft"
    assert [s.session_id for s in md.sessions] == ["0rBXFi0CTBB0j8HyGBBrlg=="]
    assert [(s.label, s.mode, s.session_id) for s in md.streams] == [
        ("201835599", "separate", "0rBXFi0CTBB0j8HyGBBrlg=="),
        ("201835600", "separate", "0rBXFi0CTBB0j8HyGBBrlg=="),
    ]
    assert [p.role for p in md.participants] == ["caller", "callee"]
    assert _roles(offer) == [
        (0, "201835599", "sip:31624895902@10.10.128.62", True),
        (1, "201835600", "sip:33187164021@sip.webhelpgroupe.lan", False),
    ]
    assert _answer(offer) == [(20000, ["8", "101"], "recvonly"), (20002, ["8", "101"], "recvonly")]


# drachtio test/data/broadworks-offer-2.txt (MIT): RFC 7865 namespace, dataMode spelled in
# camel case, associations before the streams, labels 10/20.
LABELS_10_20 = b"""
--foobar
Content-Type: application/sdp

v=0
o=- 831174 1 IN IP4 212.188.68.146
s=SipCall
c=IN IP4 10.201.1.168
t=0 0
m=audio 38606 RTP/AVP 8 97
a=rtpmap:8 PCMA/8000
a=rtpmap:97 telephone-event/8000
a=label:10
a=sendonly
a=ptime:20
m=audio 35744 RTP/AVP 8 97
a=rtpmap:8 PCMA/8000
a=rtpmap:97 telephone-event/8000
a=label:20
a=sendonly
a=ptime:20

--foobar
Content-Type: application/rs-metadata+xml
Content-Disposition: recording-session

<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
<dataMode>complete</dataMode>
<session session_id="00FA0800705D4C5DCAAC41"></session>
<sessionrecordingassoc session_id="00FA0800705D4C5DCAAC41">
<associate-time>2019-11-12T15:57:37</associate-time>
</sessionrecordingassoc>
<participant participant_id="9a2de728ba0bc348db1e">
<nameID aor="sip:9878942259@212.188.68.145"></nameID>
</participant>
<participantsessionassoc participant_id="9a2de728ba0bc348db1e" session_id="00FA0800705D4C5DCAAC41">
<associate-time>2019-11-12T15:57:37</associate-time>
</participantsessionassoc>
<participantstreamassoc participant_id="9a2de728ba0bc348db1e">
<send>e6988909e02ca808ec0a</send>
</participantstreamassoc>
<participant participant_id="abcdef12345678901234">
<nameID aor="sip:ASBCE@asbce.com"></nameID>
</participant>
<participantsessionassoc participant_id="abcdef12345678901234" session_id="00FA0800705D4C5DCAAC41">
<associate-time>2019-11-12T15:57:37</associate-time>
</participantsessionassoc>
<participantstreamassoc participant_id="abcdef12345678901234">
<send>261ddd3615629f108092</send>
</participantstreamassoc>
<stream stream_id="e6988909e02ca808ec0a" session_id="00FA0800705D4C5DCAAC41">
<label>10</label>
</stream>
<stream stream_id="261ddd3615629f108092" session_id="00FA0800705D4C5DCAAC41">
<label>20</label>
</stream>
</recording>
--foobar--
"""


def test_association_declared_before_streams_labels_10_20() -> None:
    offer = parse_recording_offer(_mp("foobar"), LABELS_10_20, record_only=False)
    md = offer.metadata
    assert md is not None
    assert (md.dialect, md.datamode) == ("rfc7865", "complete")
    assert [p.send for p in md.participants] == [["e6988909e02ca808ec0a"], ["261ddd3615629f108092"]]
    assert _roles(offer) == [
        (0, "10", "sip:9878942259@212.188.68.145", True),
        (1, "20", "sip:ASBCE@asbce.com", False),
    ]
    assert {r.reason for r in assign_roles(offer)} == {"metadata"}
    # The same SDP without metadata associations falls to the label rule ("10" is a caller
    # label in drachtio's set).
    sdp_only = offer.sdp.to_text().encode()
    nbr = parse_recording_offer("application/sdp", sdp_only, record_only=True)
    assert [(r.is_caller, r.reason) for r in assign_roles(nbr)] == [
        (True, "label"),
        (False, "label"),
    ]


# drachtio test/data/connectel-offer.txt (MIT): no t=/c= lines, GSM offered first, no
# participantstreamassoc at all.
CONNECTEL = b"""
--OSS-unique-boundary-42
Content-Type: application/sdp

v=0
o=- 1516628962 0 IN IP4 0.0.0.0
s=-
m=audio 35011 RTP/AVP 0 8 3 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=maxptime:150
a=label:1
a=sendonly
m=audio 35012 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=maxptime:150
a=label:2
a=sendonly

--OSS-unique-boundary-42
Content-Type: application/rs-metadata+xml
Content-Disposition: recording-session

<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
        <datamode>complete</datamode>
        <session session_id="2+hKdGY+QvCKu8HYTdBouQ==">
                <sipSessionID>2d8abbf0769c66e15bb349f509693d60@52.57.92.239</sipSessionID>
        </session>
        <participant participant_id="WEWTz80cS1Cqdyepmu3STQ==">
                <nameID aor="sip:0771121212@52.57.92.239">
                        <name>test_user;lang=en-US;id=22</name>
                </nameID>
        </participant>
        <participant participant_id="21Isz6eFRYuiDN0vEkVXQQ==">
                <nameID aor="sip:0760516936@sip-cust1.connectel.io"/>
        </participant>
        <stream stream_id="EkG6jSRhQqCupqs53tna1w==" session_id="2+hKdGY+QvCKu8HYTdBouQ==">
                <label>1</label>
        </stream>
        <stream stream_id="4CLOddBJRvGyTJJxPE2ZSw==" session_id="2+hKdGY+QvCKu8HYTdBouQ==">
                <label>2</label>
        </stream>
</recording>
--OSS-unique-boundary-42--
"""


def test_connectel_no_association_and_per_m_line_codec_choice() -> None:
    offer = parse_recording_offer(_mp("OSS-unique-boundary-42"), CONNECTEL, record_only=False)
    assert offer.sdp.times == [] and offer.sdp.connection is None
    assert _roles(offer) == [
        (0, "1", "sip:0771121212@52.57.92.239", True),
        (1, "2", "sip:0760516936@sip-cust1.connectel.io", False),
    ]
    assert {r.reason for r in assign_roles(offer)} == {"label"}
    # Each m-line gets the offerer's first supported codec, in that m-line's order.
    assert _answer(offer) == [(20000, ["0", "101"], "recvonly"), (20002, ["8", "101"], "recvonly")]


# drachtio test/data/intrado-siprec-invite.txt body (MIT): one m-line, a <role> element.
INTRADO = b"""
--Itro-wXyZ-bdry
Content-Type: application/sdp

v=0
o=SRC 1518687853 1518687853 IN IP4 10.106.2.10
s=Asterisk PBX 13.6.0
c=IN IP4 10.106.2.10
t=0 0
m=audio 11854 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=maxptime:150
a=sendonly
a=label:1

--Itro-wXyZ-bdry
Content-Type: application/rs-metadata
Content-Disposition: recording-session

<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
<dataMode>complete</dataMode>
<group group_id="ZWIxYWRkOTAtYjg4Ny00ZWVhLWFjYWMtZWRl">
<associate-time>2022-07-21T12:36:06-06:00</associate-time>
</group>
<session session_id="ZGI2NDQ1MzItODBmOC00ZDBhLTlhMDMtNjg2">
<start-time>2022-07-21T12:36:06-06:00</start-time>
<group-ref>ZWIxYWRkOTAtYjg4Ny00ZWVhLWFjYWMtZWRl</group-ref>
</session>
<stream stream_id="ZDY2YTc1YTMtYTAzZi00ZDQwLTkzNmYtYTFm"
session_id="ZGI2NDQ1MzItODBmOC00ZDBhLTlhMDMtNjg2">
<label>1</label>
</stream>
<participant participant_id="YTllOTVhZTgtZjY4MS00YTBjLWIxOGUtYTQw">
<nameID aor="4058327108@10.105.190.136:5060">
<name xml:lang="en"></name>
</nameID>
<channel>SIP/911202-073e</channel>
<role>calling</role>
</participant>
<participantstreamassoc
participant_id="YTllOTVhZTgtZjY4MS00YTBjLWIxOGUtYTQw">
<send>ZDY2YTc1YTMtYTAzZi00ZDQwLTkzNmYtYTFm</send>
<recv>ZDY2YTc1YTMtYTAzZi00ZDQwLTkzNmYtYTFm</recv>
</participantstreamassoc>
</recording>

--Itro-wXyZ-bdry--
"""


def test_intrado_single_leg_with_role() -> None:
    offer = parse_recording_offer(_mp("Itro-wXyZ-bdry"), INTRADO, record_only=False)
    md = offer.metadata
    assert md is not None
    assert (md.calling_participant, md.calling_hint) == (
        "YTllOTVhZTgtZjY4MS00YTBjLWIxOGUtYTQw",
        "role",
    )
    assert md.sessions[0].start_time == "2022-07-21T12:36:06-06:00"
    assert _roles(offer) == [(0, "1", "4058327108@10.105.190.136:5060", True)]
    assert _answer(offer) == [(20000, ["0", "101"], "recvonly")]


# BroadWorks (old draft schema, namespace urn:ietf:params:xml:ns:siprec), written after the
# shape BroadWorks sends: <aor> and <send><id>..</id></send> inside <participant>, extension
# data naming the call type. Here the recorded BroadWorks user (first participant) is the
# CALLED party (termCall) and callingPartyNumber names the second participant.
BROADWORKS_TERM = """<?xml version="1.0" encoding="UTF-8"?>
<recording_metadata xmlns="urn:ietf:params:xml:ns:siprec"><dataMode>complete</dataMode>\
<recording id="urn:uuid:00000000-0000-4000-8000-000000000001"><requestor>SRC</requestor>\
<type>selective</type></recording>\
<group id="urn:uuid:00000000-0000-4000-8000-000000000002" \
recording="urn:uuid:00000000-0000-4000-8000-000000000001">\
<initiator>sip:agent_100</initiator></group>\
<session id="urn:uuid:00000000-0000-4000-8000-000000000003" \
group="urn:uuid:00000000-0000-4000-8000-000000000002">\
<start-time>2024-05-01T09:00:00+00:00</start-time></session>\
<participant id="urn:uuid:00000000-0000-4000-8000-00000000000a" \
session="urn:uuid:00000000-0000-4000-8000-000000000003"><aor>sip:agent_100</aor>\
<send><id>urn:uuid:00000000-0000-4000-8000-0000000000a1</id></send></participant>\
<participant id="urn:uuid:00000000-0000-4000-8000-00000000000b" \
session="urn:uuid:00000000-0000-4000-8000-000000000003"><aor>sip:555@192.0.2.40</aor>\
<send><id>urn:uuid:00000000-0000-4000-8000-0000000000b1</id></send></participant>\
<stream id="urn:uuid:00000000-0000-4000-8000-0000000000a1" \
session="urn:uuid:00000000-0000-4000-8000-000000000003"><label>1</label><mode>separate</mode>\
</stream>\
<stream id="urn:uuid:00000000-0000-4000-8000-0000000000b1" \
session="urn:uuid:00000000-0000-4000-8000-000000000003"><label>2</label><mode>separate</mode>\
</stream>\
<extensiondata id="urn:uuid:00000000-0000-4000-8000-000000000004" \
parent="urn:uuid:00000000-0000-4000-8000-000000000003">\
<broadWorksRecordingMetadata xmlns="http://schema.broadsoft.com/broadworksCallRecording" \
version="2.0"><extTrackingID>1:1</extTrackingID><userID>agent_100@example.com</userID>\
<callID>callhalf-1:0</callID><callType><termCall>\
<callingPartyNumber>sip:555@192.0.2.40</callingPartyNumber>\
<calledPartyNumber>sip:+15550100@192.0.2.40</calledPartyNumber></termCall></callType>\
<recordingType>on</recordingType></broadWorksRecordingMetadata></extensiondata>\
</recording_metadata>
"""

BROADWORKS_SDP = """v=0
o=BroadWorks 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 58014 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendonly
a=label:1
m=audio 58016 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendonly
a=label:2
"""


def _broadworks_body(xml: str, sdp: str = BROADWORKS_SDP) -> bytes:
    # BroadWorks puts the metadata first, writes headers without a space, adds Content-Length.
    return (
        "--uniqueBoundary\r\n"
        "Content-Type:application/rs-metadata+xml\r\n"
        "Content-Disposition:recording-session\r\n"
        f"Content-Length:{len(xml)}\r\n\r\n{xml}\r\n"
        "--uniqueBoundary\r\n"
        "Content-Type: application/sdp\r\n\r\n"
        f"{sdp.replace(chr(10), chr(13) + chr(10))}\r\n"
        "--uniqueBoundary--\r\n"
    ).encode()


def test_broadworks_term_call_caller_is_second_participant() -> None:
    body = _broadworks_body(BROADWORKS_TERM)
    offer = parse_recording_offer(_mp("uniqueBoundary"), body, record_only=False)
    md = offer.metadata
    assert md is not None
    assert (md.dialect, md.namespace, md.datamode) == (
        "broadworks",
        NS_SIPREC_BROADWORKS,
        "complete",
    )
    assert [s.session_id for s in md.sessions] == ["urn:uuid:00000000-0000-4000-8000-000000000003"]
    assert [(p.aors, p.send) for p in md.participants] == [
        (["sip:agent_100"], ["urn:uuid:00000000-0000-4000-8000-0000000000a1"]),
        (["sip:555@192.0.2.40"], ["urn:uuid:00000000-0000-4000-8000-0000000000b1"]),
    ]
    assert [(s.label, s.mode) for s in md.streams] == [("1", "separate"), ("2", "separate")]
    assert md.call_data["callType"] == "termCall"
    assert md.call_data["userID"] == "agent_100@example.com"
    assert (md.calling_participant, md.calling_hint) == (
        "urn:uuid:00000000-0000-4000-8000-00000000000b",
        "callingPartyNumber",
    )
    # The hint beats both "first participant" and the label rule: m-line 1 is the caller.
    assert _roles(offer) == [
        (0, "1", "sip:agent_100", False),
        (1, "2", "sip:555@192.0.2.40", True),
    ]
    assert {r.reason for r in assign_roles(offer)} == {"vendor-hint:callingPartyNumber"}
    assert _answer(offer) == [(20000, ["8", "101"], "recvonly"), (20002, ["8", "101"], "recvonly")]


def test_broadworks_user_id_decides_when_calling_number_matches_nobody() -> None:
    orig = BROADWORKS_TERM.replace("termCall", "origCall").replace(
        "sip:555@192.0.2.40</callingPartyNumber>", "sip:+15550199@example.com</callingPartyNumber>"
    )
    md = parse_metadata(orig)
    # userID agent_100@example.com matches the aor sip:agent_100 (no host) and the call is
    # originated by that user: the first participant is the caller.
    assert (md.calling_participant, md.calling_hint) == (
        "urn:uuid:00000000-0000-4000-8000-00000000000a",
        "broadworks-userID",
    )
    term = orig.replace("origCall", "termCall")
    md2 = parse_metadata(term)
    assert (md2.calling_participant, md2.calling_hint) == (
        "urn:uuid:00000000-0000-4000-8000-00000000000b",
        "broadworks-userID",
    )


def test_broadworks_mixed_single_m_line() -> None:
    # One mixed stream both participants send (BroadWorks "mixed" mode): one leg, the caller.
    xml = BROADWORKS_TERM.replace("0000000000b1</id></send>", "0000000000a1</id></send>")
    sdp = BROADWORKS_SDP.split("m=audio 58016")[0]
    offer = parse_recording_offer(
        _mp("uniqueBoundary"), _broadworks_body(xml, sdp), record_only=False
    )
    roles = assign_roles(offer)
    assert [(r.index, r.is_caller, r.reason) for r in roles] == [(0, True, "single-leg")]
    assert roles[0].aor == "sip:agent_100"


# Metaswitch-style: draft namespace, <recording id=..>, a mixed stream and extension data
# carrying callingPartyNumber (values made up).
METASWITCH = """<?xml version="1.0" encoding="UTF-8"?>
<recording id="bXMtcmVjLTE=" xmlns="urn:ietf:params:xml:ns:recording">
 <datamode>complete</datamode>
 <session session_id="bXMtc2Vzcy0x"><start-time>2024-01-02T03:04:05Z</start-time></session>
 <participant participant_id="bXMtcGFydC1h"><nameID aor="5550001"><name>5550001</name></nameID>
 </participant>
 <participant participant_id="bXMtcGFydC1i"><nameID aor="5550002"><name>5550002</name></nameID>
 </participant>
 <participantstreamassoc participant_id="bXMtcGFydC1h"><send>bXMtc3RyLTE=</send>
 </participantstreamassoc>
 <participantstreamassoc participant_id="bXMtcGFydC1i"><send>bXMtc3RyLTE=</send>
 </participantstreamassoc>
 <stream id="bXMtc3RyLTE=" session_id="bXMtc2Vzcy0x"><label>1</label></stream>
 <extensiondata>
  <metaswitchRecordingMetadata>
   <callType>terminating</callType>
   <callingPartyNumber>5550002</callingPartyNumber>
  </metaswitchRecordingMetadata>
 </extensiondata>
</recording>
"""


def test_metaswitch_style_calling_party_number() -> None:
    md = parse_metadata(METASWITCH.encode())
    assert md.dialect == "draft"
    assert [s.stream_id for s in md.streams] == ["bXMtc3RyLTE="]
    assert (md.calling_participant, md.calling_hint) == ("bXMtcGFydC1i", "callingPartyNumber")
    assert md.call_data["callType"] == "terminating"


def test_unknown_namespace_read_by_local_names() -> None:
    xml = (
        '<r:recording xmlns:r="urn:example:vendor-recording">'
        '<r:participant r:participant_id="p1"><r:nameID aor="sip:a@x"/></r:participant>'
        '<r:stream stream_id="s1"><r:label>7</r:label></r:stream>'
        '<r:participantstreamassoc participant_id="p1"><r:send>s1</r:send>'
        "</r:participantstreamassoc></r:recording>"
    )
    md = parse_metadata(xml)
    assert (md.dialect, md.namespace) == ("unknown", "urn:example:vendor-recording")
    assert [(p.participant_id, p.aors, p.send) for p in md.participants] == [
        ("p1", ["sip:a@x"], ["s1"])
    ]
    assert [(s.stream_id, s.label) for s in md.streams] == [("s1", "7")]
    no_ns = parse_metadata("<recording><datamode>partial</datamode></recording>")
    assert (no_ns.dialect, no_ns.namespace, no_ns.datamode) == ("unknown", "", "partial")


# --- security ---------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE recording [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>&lol9;</datamode></recording>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE recording [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
<participant participant_id="p"><nameID aor="&xxe;"/></participant></recording>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE recording SYSTEM "http://127.0.0.1:9/evil.dtd">
<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>
"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE recording [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>
"""


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY])
def test_unsafe_xml_is_refused_without_expansion(xml: bytes) -> None:
    with pytest.raises(SiprecError) as info:
        parse_metadata(xml)
    assert info.value.status == 400
    assert "lollollol" not in info.value.reason and "root:" not in info.value.reason
    # The same through a whole offer.
    body = (
        b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n"
        b"m=audio 4000 RTP/AVP 0\r\n\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n"
        + xml
        + b"\r\n--b--\r\n"
    )
    with pytest.raises(SiprecError) as info2:
        parse_recording_offer(_mp("b"), body, record_only=False)
    assert info2.value.status == 400


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        (b"<recording", "unparseable"),
        (b"", "unparseable"),
        (b"<other/>", "unexpected metadata root element 'other'"),
        (b"<recording>" + b"<x/>" * 6000 + b"</recording>", "over 5000 elements"),
        (b"<recording>" + b" " * 200_000 + b"</recording>", "over 131072 bytes"),
        (b"\xff\xfe<recording/>", "unparseable"),
    ],
)
def test_bad_metadata(xml: bytes, fragment: str) -> None:
    with pytest.raises(SiprecError) as info:
        parse_metadata(xml)
    assert info.value.status == 400
    assert fragment in info.value.reason


def test_metadata_with_bom_and_leading_blank_lines() -> None:
    md = parse_metadata(
        b"\xef\xbb\xbf\r\n\r\n  <recording xmlns='urn:ietf:params:xml:ns:recording:1'/>"
    )
    assert md.dialect == "rfc7865"


# --- multipart ----------------------------------------------------------------------------------


def test_multipart_preamble_epilogue_folding_and_lookalike_boundaries() -> None:
    body = (
        b"This is the preamble --frontier not a delimiter\r\n"
        b"--frontier\r\n"
        b"Content-Type: Application/SDP;\r\n"
        b'  charset="utf-8"\r\n'
        b"\r\n"
        b"line one\r\n"
        b"--frontierX is not a delimiter\r\n"
        b" --frontier is not at a line start\r\n"
        b"--frontier   \r\n"
        b"\r\n"
        b"no headers here\r\n"
        b"--frontier--\t\r\n"
        b"epilogue\r\n--frontier\r\nignored\r\n"
    )
    parts = parse_multipart('multipart/mixed; boundary="frontier"', body)
    assert len(parts) == 2
    assert (parts[0].content_type, parts[0].params) == ("application/sdp", {"charset": "utf-8"})
    assert parts[0].body == (
        b"line one\r\n--frontierX is not a delimiter\r\n --frontier is not at a line start"
    )
    assert (parts[1].content_type, parts[1].headers, parts[1].body) == (
        "text/plain",
        {},
        b"no headers here",
    )


def test_multipart_missing_closing_delimiter_and_lf() -> None:
    body = b"--x\nContent-Type: a/b\n\nfirst\n--x\nContent-Type: c/d\n\nsecond\n"
    parts = parse_multipart("multipart/mixed;boundary=x", body)
    assert [(p.content_type, p.body) for p in parts] == [("a/b", b"first"), ("c/d", b"second\n")]


def test_multipart_limits_and_errors() -> None:
    many = b"".join(b"--x\r\nContent-Type: a/b\r\n\r\n%d\r\n" % i for i in range(9)) + b"--x--"
    with pytest.raises(SiprecError, match="more than 8 parts") as info:
        parse_multipart("multipart/mixed;boundary=x", many)
    assert info.value.status == 400
    assert len(parse_multipart("multipart/mixed;boundary=x", many, max_parts=9)) == 9
    cases = [
        ("application/sdp", b"v=0", 415),
        ("multipart/mixed", b"--x\r\n\r\nbody", 400),
        ("multipart/mixed; boundary=", b"--\r\n\r\nbody", 400),
        ("multipart/mixed; boundary=x", b"no delimiter at all", 400),
        ("multipart/mixed; boundary=x", b"--x--\r\n", 400),
        ("multipart/mixed; boundary=x", b"--x\r\n" + b"a" * 300_000, 413),
    ]
    for ctype, body, status in cases:
        with pytest.raises(SiprecError) as err:
            parse_multipart(ctype, body)
        assert err.value.status == status, (ctype, body[:20])


def test_parse_content_type() -> None:
    assert parse_content_type('Multipart/Mixed ; Boundary="a;b\\"c" ; x=1') == (
        "multipart/mixed",
        {"boundary": 'a;b"c', "x": "1"},
    )
    assert parse_content_type("session;handling=required") == (
        "session",
        {"handling": "required"},
    )


def test_body_part_is_a_plain_dataclass() -> None:
    part = BodyPart("application/sdp", {}, None, {}, b"")
    assert part.disposition is None


# --- recording offer errors --------------------------------------------------------------------

SDP_OK = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
AUDIO = b"m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"


def _multipart(*parts: tuple[str, bytes]) -> bytes:
    out = b""
    for ctype, body in parts:
        out += b"--b\r\nContent-Type: " + ctype.encode() + b"\r\n\r\n" + body + b"\r\n"
    return out + b"--b--\r\n"


META_MIN = b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>"


@pytest.mark.parametrize(
    ("content_type", "body", "record_only", "status", "fragment"),
    [
        (None, b"", False, 488, "no SDP offer"),
        ("application/sdp", b"  \r\n", True, 488, "no SDP offer"),
        (None, SDP_OK + AUDIO, True, 400, "without a Content-Type"),
        ("text/plain", b"hello", True, 415, "unsupported body type 'text/plain'"),
        ("application/sdp", SDP_OK + AUDIO, False, 488, "not a recording session"),
        ("application/sdp", b"v=0\r\nbogus\r\n", True, 400, "bad SDP: line 2"),
        ("application/sdp", SDP_OK + b"m=video 4000 RTP/AVP 96\r\n", True, 488, "no audio"),
        ("application/sdp", SDP_OK + b"m=audio 0 RTP/AVP 0\r\n", True, 488, "no audio"),
        (_mp("b"), _multipart(("application/rs-metadata+xml", META_MIN)), False, 488, "sdp"),
        (
            _mp("b"),
            _multipart(("application/sdp", SDP_OK + AUDIO), ("application/rs-metadata", b"<x")),
            False,
            400,
            "unparseable recording metadata",
        ),
        (_mp("b"), _multipart(("application/sdp", SDP_OK + AUDIO)), False, 488, "not a recording"),
    ],
)
def test_offer_errors(
    content_type: str | None, body: bytes, record_only: bool, status: int, fragment: str
) -> None:
    with pytest.raises(SiprecError) as info:
        parse_recording_offer(content_type, body, record_only=record_only)
    assert info.value.status == status
    assert fragment in info.value.reason
    assert str(info.value).startswith(str(status))


def test_offer_variants() -> None:
    # Multipart without metadata but flagged record-only: NBR-style.
    nbr = parse_recording_offer(
        _mp("b"), _multipart(("application/sdp", SDP_OK + AUDIO)), record_only=True
    )
    assert (nbr.kind, nbr.metadata, len(nbr.parts)) == ("nbr", None, 1)
    # Metadata and the flag: still SIPREC (the metadata is richer).
    both = parse_recording_offer(
        _mp("b"),
        _multipart(("application/sdp", SDP_OK + AUDIO), ("application/rs-metadata", META_MIN)),
        record_only=True,
    )
    assert both.kind == "siprec" and both.metadata_content_type == "application/rs-metadata"
    # A metadata part recognised by its disposition alone (a mangled type).
    odd = (
        b"--b\r\nContent-Type: application/sdp\r\n\r\n" + SDP_OK + AUDIO + b"\r\n"
        b"--b\r\nContent-Type: application/xml\r\nContent-Disposition: recording-session\r\n\r\n"
        + META_MIN
        + b"\r\n--b--"
    )
    by_disposition = parse_recording_offer(_mp("b"), odd, record_only=False)
    assert by_disposition.metadata_content_type == "application/xml"
    # In-dialog: plain SDP is fine.
    again = parse_recording_offer(
        "application/sdp", SDP_OK + AUDIO, record_only=False, in_dialog=True
    )
    assert again.kind == "siprec" and again.metadata is None
    assert again.audio_indexes == [0]


def test_build_answer_refuses_when_nothing_is_acceptable() -> None:
    offer = parse_recording_offer(
        "application/sdp", SDP_OK + b"m=audio 4000 RTP/AVP 18\r\n", record_only=True
    )
    with pytest.raises(SiprecError) as info:
        build_answer(offer, address="192.0.2.5", ports=[30000], session_id=1)
    assert info.value.status == 488
    with pytest.raises(SiprecError):
        parse_recording_offer("application/sdp", SDP_OK + AUDIO, record_only=False)


# --- record-only flag and Cisco NBR -----------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "header", "expected"),
    [
        ("sip:+15550100@vc.example.com", "true", True),
        ("sip:+15550100@vc.example.com", " TRUE ", True),
        ("sip:+15550100@vc.example.com", "false", False),
        ("sip:+15550100@vc.example.com", None, False),
        ("sip:+15550100@vc.example.com;X-Voice-Connector-Record-Only=true", None, True),
        (
            "sip:+15550100@vc.example.com;transport=tcp;x-voice-connector-record-only=True",
            None,
            True,
        ),
        ("sip:+15550100@vc.example.com;X-Voice-Connector-Record-Only=false", None, False),
        ("sip:+15550100@vc.example.com;X-Voice-Connector-Record-Only", None, False),
        ("sip:+15550100@vc.example.com?X-Voice-Connector-Record-Only=true", None, True),
        ("sip:x-voice-connector-record-only=true@vc.example.com", None, False),
    ],
)
def test_is_record_only(uri: str, header: str | None, expected: bool) -> None:
    assert is_record_only(uri, header) is expected


def test_parse_nbr_participant() -> None:
    assert parse_nbr_participant('sip:2164485925@ccf.org;media-index="0"') == (
        "sip:2164485925@ccf.org",
        0,
    )
    assert parse_nbr_participant("<sip:20053@10.144.106.41;user=phone>;media-index=1") == (
        "sip:20053@10.144.106.41;user=phone",
        1,
    )
    assert parse_nbr_participant("sip:a@b") == ("sip:a@b", None)
    assert parse_nbr_participant('sip:a@b;media-index="x"') == ("sip:a@b", None)


NBR_SDP = (
    b"v=0\r\no=CUBE-UA 2009 576 IN IP4 192.0.2.30\r\ns=SIP Call\r\nc=IN IP4 192.0.2.30\r\n"
    b"t=0 0\r\n"
    b"m=audio 16384 RTP/AVP 0 101 19\r\nc=IN IP4 192.0.2.30\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtpmap:19 CN/8000\r\n"
    b"a=ptime:20\r\na=sendonly\r\n"
    b"m=audio 16386 RTP/AVP 0 101 19\r\nc=IN IP4 192.0.2.30\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtpmap:19 CN/8000\r\n"
    b"a=ptime:20\r\na=sendonly\r\n"
)


def test_cisco_nbr_media_index() -> None:
    offer = parse_recording_offer("application/sdp", NBR_SDP, record_only=True)
    assert offer.kind == "nbr"
    headers = [
        'sip:20053@10.144.106.41;media-index="1"',
        'sip:2164485925@ccf.org;media-index="0"',
    ]
    roles = assign_roles(offer, nbr_participants=headers)
    assert [(r.index, r.aor, r.is_caller, r.reason) for r in roles] == [
        (0, "sip:2164485925@ccf.org", True, "nbr-media-index"),
        (1, "sip:20053@10.144.106.41", False, "nbr-media-index"),
    ]
    swapped = assign_roles(offer, nbr_participants=headers, swap=True)
    assert [r.is_caller for r in swapped] == [False, True]
    # No participant headers: the first m-line.
    assert [(r.is_caller, r.reason) for r in assign_roles(offer)] == [
        (True, "first-m-line"),
        (False, "first-m-line"),
    ]
    assert _answer(offer) == [(20000, ["0", "101"], "recvonly"), (20002, ["0", "101"], "recvonly")]


def test_roles_skip_rejected_and_non_audio_m_lines() -> None:
    sdp = (
        SDP_OK
        + b"m=video 5000 RTP/AVP 96\r\n"
        + b"m=audio 0 RTP/AVP 0\r\n"
        + b"m=audio 4000 RTP/AVP 0\r\na=label:b_leg\r\n"
        + b"m=audio 4002 RTP/AVP 0\r\na=label:a_leg\r\n"
    )
    offer = parse_recording_offer("application/sdp", sdp, record_only=True)
    assert offer.audio_indexes == [2, 3]
    assert [(r.index, r.is_caller, r.reason) for r in assign_roles(offer)] == [
        (2, False, "label"),
        (3, True, "label"),
    ]


def test_aor_matches() -> None:
    assert aor_matches('"Ext" <sip:100@h.example>;tag=1', "100@H.example")
    assert aor_matches("sip:100@h:5060;user=phone", "sips:100@h")
    assert aor_matches("agent@example.com", "sip:agent")
    assert not aor_matches("sip:100@a", "sip:100@b")
    assert not aor_matches("sip:100@a", "sip:101@a")
    assert not aor_matches("", "sip:1@a")


# --- properties -------------------------------------------------------------------------------


@given(st.text(max_size=60), st.binary(max_size=600))
def test_parse_multipart_arbitrary_raises_only_siprec_error(ctype: str, body: bytes) -> None:
    with contextlib.suppress(SiprecError):
        parse_multipart(ctype, body)
    with contextlib.suppress(SiprecError):
        parse_multipart("multipart/mixed;boundary=b", b"--b\r\n" + body)


@given(st.binary(max_size=600))
def test_parse_metadata_arbitrary_raises_only_siprec_error(data: bytes) -> None:
    with contextlib.suppress(SiprecError):
        parse_metadata(data)


_tags = st.sampled_from(
    [
        "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>",
        "<recording_metadata xmlns='urn:ietf:params:xml:ns:siprec'>",
        "</recording>",
        "<participant participant_id='p'>",
        "<participant id='q'>",
        "</participant>",
        "<stream stream_id='s'>",
        "<stream>",
        "</stream>",
        "<label>1</label>",
        "<send>s</send>",
        "<send><id>s</id></send>",
        "<nameID aor='sip:1@x'/>",
        "<aor>sip:2@x</aor>",
        "<participantstreamassoc participant_id='p'>",
        "</participantstreamassoc>",
        "<extensiondata><callingParty>true</callingParty></extensiondata>",
        "<role>called</role>",
        "<group><callData><fromhdr>&lt;sip:1@x&gt;</fromhdr></callData></group>",
        "<callType><termCall><callingPartyNumber>1</callingPartyNumber></termCall></callType>",
        "<userID>2@x</userID>",
        "<broadWorksRecordingMetadata>",
        "</broadWorksRecordingMetadata>",
        "&amp;",
        "<!-- c -->",
    ]
)


@given(st.lists(_tags, max_size=25))
def test_parse_metadata_tag_soup_and_roles(tags: list[str]) -> None:
    xml = "".join(tags)
    try:
        md = parse_metadata(xml)
    except SiprecError:
        return
    offer = RecordingOffer(
        "siprec",
        parse_sdp(SDP_OK + b"m=audio 1 RTP/AVP 0\r\na=label:1\r\nm=audio 3 RTP/AVP 0\r\n"),
        "",
        md,
        xml,
        "application/rs-metadata+xml",
    )
    for swap in (False, True):
        roles = assign_roles(offer, swap=swap)
        assert len(roles) == 2
        assert sum(r.is_caller for r in roles) == 1


@given(st.sampled_from([None, "application/sdp", _mp("b"), "text/plain"]), st.binary(max_size=400))
def test_parse_recording_offer_arbitrary_raises_only_siprec_error(
    ctype: str | None, body: bytes
) -> None:
    for record_only in (False, True):
        try:
            offer = parse_recording_offer(ctype, body, record_only=record_only)
        except SiprecError:
            continue
        roles = assign_roles(offer)
        assert sum(r.is_caller for r in roles) == 1
