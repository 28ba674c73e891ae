"""SDP parsing, writing and the recorder's offer/answer (callstream.voice.sdp)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.voice.sdp import (
    MAX_MEDIA,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    answer_recording,
    chosen_codec,
    negotiated_media,
    parse_sdp,
)

SIPREC_DIR = Path("/work/shared/testdata/siprec")


def _shared(name: str) -> str:
    path = SIPREC_DIR / name
    if not path.exists():
        pytest.skip(f"shared test data not found at {path}")
    return path.read_text()


def _split(name: str) -> list[str]:
    return _shared(name).split("__split_here__\n")


def sdp(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


HEAD = ("v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0")


def offer(*media_lines: str, head: tuple[str, ...] = HEAD) -> SessionDescription:
    return parse_sdp(sdp(*head, *media_lines))


# --- the shared SDP-combining inputs (drachtio test data) -------------------------------


def test_sample_sdps_two_sonus_sdps() -> None:
    first, second = (parse_sdp(t) for t in _split("sample-sdps.txt"))
    for parsed, label, port in ((first, "1", 48932), (second, "2", 48926)):
        assert parsed.origin == Origin(
            "Sonus_UAC", "328001", "655768", "IN", "IP4", "172.16.169.181"
        )
        assert parsed.session_name == "SIP Media Capabilities"
        assert parsed.connection is None
        (m,) = parsed.media
        assert (m.media, m.port, m.proto, m.formats) == ("audio", port, "RTP/AVP", ["0"])
        assert m.connection == Connection("IN", "IP4", "172.16.169.132")
        assert parsed.address_of(m) == "172.16.169.132"
        assert m.label == label
        assert m.direction == "sendonly"
        assert m.maxptime == 20 and m.ptime is None
        assert m.rtpmaps == {0: RtpMap(0, "PCMU", 8000)}
        answer = answer_recording(parsed, address="198.51.100.7", ports=[4000], session_id=9)
        (a,) = answer.media
        assert (a.port, a.formats, a.direction, a.label) == (4000, ["0"], "recvonly", label)


def test_sample_sdp2_ice_rtcp_bandwidth_out_of_order() -> None:
    first, second = (parse_sdp(t) for t in _split("sample-sdp2.txt"))
    (m,) = first.media
    # c= comes after t= at session level, b= lines sit between a= lines: both tolerated.
    assert first.connection == Connection("IN", "IP4", "127.0.0.1")
    assert m.bandwidths == ["AS:84", "TIAS:64000"]
    assert m.formats == ["8", "0", "101"]
    assert m.rtcp_port == 60552
    assert m.telephone_event_pts == {101}
    assert m.fmtp(101) == "0-16"
    assert m.attribute("X-nat") == "0"
    assert len(m.attribute_values("candidate")) == 2
    assert (m.label, m.direction) == ("1", "sendonly")
    answer = answer_recording(first, address="198.51.100.7", ports=[4000], session_id=1)
    (a,) = answer.media
    # The offerer's first supported codec, in the offer's order: PCMA.
    assert a.formats == ["8", "101"]
    assert a.attributes == [
        ("rtpmap", "8 PCMA/8000"),
        ("rtpmap", "101 telephone-event/8000"),
        ("fmtp", "101 0-16"),
        ("label", "1"),
        ("recvonly", None),
    ]
    assert chosen_codec(m, a) == RtpMap(8, "PCMA", 8000)
    (m2,) = second.media
    assert (m2.label, m2.port, m2.direction) == ("2", 48926, "sendonly")
    # The written form parses back to the same description.
    assert parse_sdp(first.to_text()) == first


def test_sample_sdp3_freeswitch_no_label_and_recvonly() -> None:
    first, second = (parse_sdp(t) for t in _split("sample-sdp3.txt"))
    (m1,), (m2,) = first.media, second.media
    assert m1.label is None and m1.ptime == 20  # "a=ptime:20 " has a trailing space
    assert m1.direction == "sendrecv"
    assert m2.direction == "recvonly"
    a1 = answer_recording(first, address="198.51.100.7", ports=[4000], session_id=1).media[0]
    a2 = answer_recording(second, address="198.51.100.7", ports=[4002], session_id=1).media[0]
    assert (a1.direction, a1.formats, a1.ptime) == ("recvonly", ["8", "101"], 20)
    # A recvonly offer sends nothing to record: the answer is inactive.
    assert (a2.direction, a2.port) == ("inactive", 4002)


# --- parser behaviour --------------------------------------------------------------------


def test_lf_only_trailing_spaces_blank_lines_and_unknown_lines_kept() -> None:
    text = (
        "v=0\n"
        "o=alice 2890844526 2890844527 IN IP4 host.example.com  \n"
        "s=Talk\n"
        "i=A call\n"
        "u=http://example.com/x\n"
        "e=alice@example.com\n"
        "\n"
        "c=IN IP4 198.51.100.1\n"
        "b=CT:128\n"
        "t=0 0\n"
        "z=2882844526 -1h\n"
        "y=unknown type\n"
        "a=tool:foo\n"
        "a=sendonly\n"
        "m=audio 49170 RTP/AVP 0\n"
        "i=the audio\n"
        "k=prompt\n"
        "x=media unknown\n"
        "a=weird-flag\n"
    )
    parsed = parse_sdp(text)
    assert parsed.origin.address == "host.example.com"
    assert parsed.other == [
        ("i", "A call"),
        ("u", "http://example.com/x"),
        ("e", "alice@example.com"),
        ("z", "2882844526 -1h"),
        ("y", "unknown type"),
    ]
    (m,) = parsed.media
    assert m.other == [("i", "the audio"), ("k", "prompt"), ("x", "media unknown")]
    assert m.attribute("weird-flag") == ""
    assert m.attribute("absent") is None
    # The session-level direction applies to a media section without its own.
    assert m.media_direction is None
    assert m.direction == "sendonly"
    assert parsed.direction_of(m) == "sendonly"
    assert m.direction_in(None) == "sendrecv"
    out = parsed.to_text()
    assert out.endswith("\r\n") and "\n" not in out.replace("\r\n", "")
    assert out.splitlines() == [
        "v=0",
        "o=alice 2890844526 2890844527 IN IP4 host.example.com",
        "s=Talk",
        "i=A call",
        "u=http://example.com/x",
        "e=alice@example.com",
        "c=IN IP4 198.51.100.1",
        "b=CT:128",
        "t=0 0",
        "z=2882844526 -1h",
        "y=unknown type",
        "a=tool:foo",
        "a=sendonly",
        "m=audio 49170 RTP/AVP 0",
        "i=the audio",
        "k=prompt",
        "x=media unknown",
        "a=weird-flag",
    ]
    assert parse_sdp(out) == parsed


def test_static_payload_types_without_rtpmap() -> None:
    (m,) = offer("m=audio 4000 RTP/AVP 0 8 9 18 13 3 96").media
    assert {pt: (r.encoding, r.clock_rate) for pt, r in m.rtpmaps.items()} == {
        0: ("PCMU", 8000),
        8: ("PCMA", 8000),
        9: ("G722", 8000),
        18: ("G729", 8000),
        13: ("CN", 8000),
        3: ("GSM", 8000),
    }  # 96 is dynamic and unmapped: absent
    assert m.comfort_noise_pts == {13}


def test_explicit_rtpmap_overrides_static_and_channels() -> None:
    (m,) = offer(
        "m=audio 4000 RTP/AVP 0 97", "a=rtpmap:0 pcmu/8000", "a=rtpmap:97 L16/8000/2"
    ).media
    assert m.rtpmaps == {0: RtpMap(0, "pcmu", 8000), 97: RtpMap(97, "L16", 8000, 2)}
    assert RtpMap(97, "L16", 8000, 2).to_value() == "97 L16/8000/2"


def test_rtcp_port_defaults() -> None:
    m1, m2, m3 = offer(
        "m=audio 4000 RTP/AVP 0",
        "m=audio 4002 RTP/AVP 0",
        "a=rtcp-mux",
        "m=audio 0 RTP/AVP 0",
    ).media
    assert (m1.rtcp_port, m2.rtcp_port, m3.rtcp_port) == (4001, 4002, None)


def test_media_connection_overrides_session_and_ttl_dropped() -> None:
    parsed = offer(
        "m=audio 4000 RTP/AVP 0",
        "m=audio 4002 RTP/AVP 0",
        "c=IN IP4 233.252.0.1/127",
    )
    assert parsed.address_of(parsed.media[0]) == "192.0.2.1"
    assert parsed.address_of(parsed.media[1]) == "233.252.0.1"
    no_c = offer("m=audio 4000 RTP/AVP 0", head=("v=0", "o=- 1 1 IN IP4 h", "s=-"))
    assert no_c.address_of(no_c.media[0]) is None
    assert no_c.times == []


def test_port_count_and_non_rtp_formats() -> None:
    m1, m2 = offer("m=audio 4000/2 RTP/AVP 0", "m=application 9 TCP/MRCPv2 1 x-y").media
    assert (m1.port, m1.port_count) == (4000, 2)
    assert m2.formats == ["1", "x-y"] and m2.rtpmaps == {}
    assert "m=audio 4000/2 RTP/AVP 0" in offer("m=audio 4000/2 RTP/AVP 0").to_text()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no v= line"),
        ("o=- 1 1 IN IP4 h\r\n", "line 1: SDP must start with v=0"),
        ("v=1\r\n", "line 1: v= version"),
        ("v=0\r\ns=-\r\n", "no o= line"),
        ("v=0\r\no=- 1 IN IP4 h\r\n", "line 2: o= expects 6 fields"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nnonsense\r\n", "line 3: expected '<type>=<value>'"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nA=x\r\n", "line 3"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n", "line 3: c="),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n", "line 3: m= port"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio -1 RTP/AVP 0\r\n", "line 3: m= port"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000/0 RTP/AVP 0\r\n", "port count"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000 RTP/AVP 128\r\n", "payload type '128'"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000 RTP/AVP PCMU\r\n", "payload type"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000 RTP/AVP\r\n", "no formats"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio\r\n", "line 3: m= expects"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", "line 4"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:200 X/8000\r\n", "0..127"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 X/8000/0\r\n", "channel"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\na=\r\n", "line 3: empty a="),
        ("v=0\r\nv=0\r\n", "line 2: second v="),
        ("v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\n", "line 3: second o="),
    ],
)
def test_errors_name_line_and_field(text: str, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(text)
    assert fragment in str(info.value)


def test_limits() -> None:
    many_m = sdp(*HEAD, *["m=audio 4000 RTP/AVP 0"] * (MAX_MEDIA + 1))
    with pytest.raises(SdpError, match="more than 64 m= lines"):
        parse_sdp(many_m)
    with pytest.raises(SdpError, match="lines, over the"):
        parse_sdp(sdp(*HEAD, *["a=x"] * 1000))
    with pytest.raises(SdpError, match="over the 65536-byte limit"):
        parse_sdp(sdp(*HEAD, "a=" + "x" * 70000).encode())
    with pytest.raises(SdpError, match="not UTF-8"):
        parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=\xff\r\n")
    assert parse_sdp(sdp(*HEAD, "s=caf\u00e9")).other == [("s", "caf\u00e9")]


# --- answer_recording ---------------------------------------------------------------------


def _answer(
    parsed: SessionDescription, *ports: int | None, address: str = "203.0.113.5", **kw: Any
) -> SessionDescription:
    return answer_recording(parsed, address=address, ports=list(ports), session_id=42, **kw)


def test_answer_session_lines() -> None:
    answer = _answer(offer("m=audio 4000 RTP/AVP 0", "a=sendonly"), 30000, session_version=3)
    assert answer.to_text().splitlines()[:5] == [
        "v=0",
        "o=callstream 42 3 IN IP4 203.0.113.5",
        "s=-",
        "c=IN IP4 203.0.113.5",
        "t=0 0",
    ]
    v6 = _answer(offer("m=audio 4000 RTP/AVP 0"), 30000, address="2001:db8::5")
    assert v6.connection == Connection("IN", "IP6", "2001:db8::5")
    assert v6.origin.addrtype == "IP6"


def test_answer_codec_choice_follows_offer_order_and_support() -> None:
    cases: list[tuple[list[str], dict[str, Any], list[str]]] = [
        (["m=audio 4000 RTP/AVP 8 0"], {}, ["8"]),
        (["m=audio 4000 RTP/AVP 0 8"], {}, ["0"]),
        (["m=audio 4000 RTP/AVP 18 9 0"], {}, ["0"]),
        (["m=audio 4000 RTP/AVP 8 0"], {"codecs": ("PCMU",)}, ["0"]),
        (["m=audio 4000 RTP/AVP 9 0"], {"codecs": ("G722", "PCMU")}, ["9"]),
        (["m=audio 4000 RTP/AVP 96 0", "a=rtpmap:96 L16/16000"], {}, ["0"]),
        (["m=audio 4000 RTP/AVP 96 0", "a=rtpmap:96 l16/8000"], {}, ["96"]),
        (["m=audio 4000 RTP/AVP 96 0", "a=rtpmap:96 L16/8000/2"], {}, ["0"]),
        (["m=audio 4000 RTP/AVP 96", "a=rtpmap:96 L16/16000"], {"codecs": ("L16/16000",)}, ["96"]),
        (["m=audio 4000 RTP/AVP 96 8", "a=rtpmap:96 PCMU/16000"], {}, ["8"]),
    ]
    for lines, kw, formats in cases:
        parsed = offer(*lines, "a=sendonly")
        (a,) = _answer(parsed, 30000, **kw).media
        assert a.formats == formats, (lines, kw)
        assert a.port == 30000


def test_answer_telephone_event_same_pt_and_fmtp_at_codec_clock() -> None:
    parsed = offer(
        "m=audio 4000 RTP/AVP 0 100 101 13",
        "a=rtpmap:100 telephone-event/48000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:30",
        "a=label:leg-a",
        "a=sendrecv",
    )
    (a,) = _answer(parsed, 30000).media
    assert a.formats == ["0", "101"]
    assert a.fmtp(101) == "0-15"
    assert (a.ptime, a.label, a.direction) == (30, "leg-a", "recvonly")
    negotiated = negotiated_media(parsed.media[0], a)
    assert negotiated is not None
    assert negotiated.audio == RtpMap(0, "PCMU", 8000)
    assert negotiated.telephone_event == RtpMap(101, "telephone-event", 8000)
    assert negotiated.comfort_noise_pts == frozenset({13})
    assert negotiated.ptime == 30


def test_answer_rejections_keep_order_and_formats() -> None:
    parsed = offer(
        "m=audio 4000 RTP/AVP 0",  # refused by the caller (None)
        "m=video 4002 RTP/AVP 96",  # not audio
        "m=audio 4004 RTP/AVP 18",  # no supported codec
        "m=audio 0 RTP/AVP 0",  # already rejected by the offerer
        "m=audio 4006 RTP/SAVP 0",  # SRTP is not supported
        "m=audio 4008 RTP/AVP 8",  # accepted
    )
    answer = _answer(parsed, None, 30002, 30004, 30006, 30008, 30010)
    assert [m.port for m in answer.media] == [0, 0, 0, 0, 0, 30010]
    assert [m.formats for m in answer.media] == [["0"], ["96"], ["18"], ["0"], ["0"], ["8"]]
    assert [m.media for m in answer.media] == ["audio", "video", "audio", "audio", "audio", "audio"]
    assert answer.media[0].attributes == []
    assert [chosen_codec(o, a) for o, a in zip(parsed.media, answer.media, strict=True)] == [
        None,
        None,
        None,
        None,
        None,
        RtpMap(8, "PCMA", 8000),
    ]
    again = parse_sdp(answer.to_text())
    assert again == answer


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendonly", "recvonly"),
        ("sendrecv", "recvonly"),
        ("recvonly", "inactive"),
        ("inactive", "inactive"),
    ],
)
def test_answer_direction(offered: str, answered: str) -> None:
    (a,) = _answer(offer("m=audio 4000 RTP/AVP 0", f"a={offered}"), 30000).media
    assert a.direction == answered
    # The session-level attribute counts when the m-line has none.
    session_level = offer("m=audio 4000 RTP/AVP 0", head=(*HEAD, f"a={offered}"))
    (b,) = _answer(session_level, 30000).media
    assert b.direction == answered


def test_answer_argument_errors() -> None:
    parsed = offer("m=audio 4000 RTP/AVP 0")
    with pytest.raises(ValueError, match="1 offered m-lines"):
        _answer(parsed, 1, 2)
    with pytest.raises(ValueError, match=r"not 1\.\.65535"):
        _answer(parsed, 70000)


# --- properties ------------------------------------------------------------------------------

_token = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=12,
)
_value = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF).filter(str.isprintable),
    max_size=20,
).map(str.strip)


@st.composite
def _media(draw: st.DrawFn) -> MediaDescription:
    formats = draw(st.lists(st.integers(0, 127).map(str), min_size=1, max_size=5))
    attributes: list[tuple[str, str | None]] = draw(
        st.lists(st.tuples(_token, st.none() | _value), max_size=5)
    )
    attributes += [
        (name, value)
        for name, value in draw(
            st.lists(
                st.sampled_from(
                    [
                        ("rtpmap", f"{formats[0]} PCMU/8000"),
                        ("rtpmap", f"{formats[-1]} telephone-event/8000"),
                        ("sendonly", None),
                        ("inactive", None),
                        ("label", "1"),
                        ("ptime", "20"),
                    ]
                ),
                max_size=4,
            )
        )
    ]
    return MediaDescription(
        media=draw(st.sampled_from(["audio", "video", "audio"])),
        port=draw(st.integers(0, 65535)),
        port_count=draw(st.integers(1, 4)),
        proto=draw(st.sampled_from(["RTP/AVP", "RTP/AVPF", "RTP/SAVP"])),
        formats=formats,
        connection=draw(st.none() | st.just(Connection("IN", "IP4", "192.0.2.9"))),
        bandwidths=draw(st.lists(st.sampled_from(["AS:64", "TIAS:64000"]), max_size=2)),
        attributes=attributes,
        other=draw(st.lists(st.tuples(st.sampled_from("ikx"), _value), max_size=2)),
    )


@st.composite
def _session(draw: st.DrawFn) -> SessionDescription:
    return SessionDescription(
        version=0,
        origin=Origin(
            draw(_token),
            str(draw(st.integers(0, 2**63))),
            str(draw(st.integers(0, 2**63))),
            "IN",
            "IP4",
            "192.0.2.1",
        ),
        session_name=draw(_value.filter(bool)),
        connection=draw(st.none() | st.just(Connection("IN", "IP6", "2001:db8::1"))),
        bandwidths=draw(st.lists(st.just("CT:100"), max_size=1)),
        times=draw(st.lists(st.sampled_from(["0 0", "3034423619 3042462419"]), min_size=1)),
        attributes=draw(st.lists(st.tuples(_token, st.none() | _value), max_size=4)),
        media=draw(st.lists(_media(), max_size=4)),
        other=draw(st.lists(st.tuples(st.sampled_from("iuepzkry"), _value), max_size=3)),
    )


def _normalized(sd: SessionDescription) -> SessionDescription:
    # The writer groups session-level extra lines by type (RFC order); compare in that order.
    order = "iuepcbtrzk"
    sd.other.sort(key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    for m in sd.media:
        m.other.sort(key=lambda kv: {"i": 0, "k": 1}.get(kv[0], 2))
    return sd


@given(_session())
def test_to_text_parse_round_trip(generated: SessionDescription) -> None:
    text = generated.to_text()
    assert parse_sdp(text) == _normalized(generated)
    assert parse_sdp(text.encode()).to_text() == text


@given(st.text(max_size=400))
def test_parse_sdp_any_text_raises_only_sdp_error(text: str) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(text)


@given(
    st.lists(
        st.sampled_from(
            [
                "v=0",
                "o=- 1 1 IN IP4 h",
                "s=-",
                "c=IN IP4 1.2.3.4",
                "t=0 0",
                "m=audio 4000 RTP/AVP 0 101",
                "m=audio 99999 RTP/AVP 0",
                "m=video 0 RTP/AVP 96",
                "a=rtpmap:101 telephone-event/8000",
                "a=rtpmap:0 PCMU",
                "a=sendonly",
                "a=label:1",
                "a=ptime:x",
                "a=rtcp:abc",
                "b=AS:1",
                "garbage",
                "",
            ]
        ),
        max_size=30,
    ),
    st.binary(max_size=20),
)
def test_parse_sdp_line_soup_raises_only_sdp_error(lines: list[str], tail: bytes) -> None:
    data = "\n".join(["v=0", *lines]).encode() + tail
    try:
        parsed = parse_sdp(data)
    except SdpError:
        return
    for m in parsed.media:  # every accessor works on whatever parsed
        _ = (m.rtpmaps, m.direction, m.label, m.ptime, m.rtcp_port, m.telephone_event_pts)


@given(_session(), st.data())
def test_answer_has_one_m_line_per_offered(
    generated: SessionDescription, data: st.DataObject
) -> None:
    ports = data.draw(
        st.lists(
            st.none() | st.integers(1, 65535),
            min_size=len(generated.media),
            max_size=len(generated.media),
        )
    )
    answer = answer_recording(generated, address="192.0.2.50", ports=ports, session_id=1)
    assert len(answer.media) == len(generated.media)
    for offered, answered, port in zip(generated.media, answer.media, ports, strict=True):
        assert answered.media == offered.media
        assert answered.port in (0, port)
        if answered.port:
            assert answered.direction in ("recvonly", "inactive")
            assert chosen_codec(offered, answered) is not None
    assert parse_sdp(answer.to_text()) == answer
