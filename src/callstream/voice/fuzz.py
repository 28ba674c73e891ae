"""Fuzz entry point for the voice connector's parsers.

``python -m callstream.voice.fuzz [--target sip] [--iterations N] [--seconds S]`` mutates a
built-in corpus of real messages and runs the named target on each input (atheris is used
when installed, see :mod:`callstream.fuzzing`). Targets live in :data:`TARGETS`; more
(sdp, rs-metadata, rtp) are added there as :class:`FuzzTarget` entries.

The ``sip`` target (:func:`fuzz_sip`) feeds an input to
:func:`~callstream.voice.sip.parse_message` and to
:class:`~callstream.voice.sip.StreamParser` in several chunkings. Only
:class:`~callstream.voice.errors.SipError` may come out; a parsed message must serialize and
parse back to the same bytes with its properties readable; and the stream outcome must
not depend on the chunking.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from pathlib import Path

from callstream.fuzzing import DEFAULT_TOKENS, FuzzTarget, corpus_files, targets_main
from callstream.fuzzing import mutate as byte_mutate
from callstream.voice.codecs import decode_pcma, decode_pcmu
from callstream.voice.errors import SipError, SiprecError
from callstream.voice.jitterbuffer import Chunk, JitterBuffer
from callstream.voice.rtp import RtpError, build_rtp, is_rtcp, parse_rtp
from callstream.voice.sdp import answer_recording, parse_sdp
from callstream.voice.sip import KeepAlive, StreamParser, parse_message
from callstream.voice.siprec import assign_roles, parse_recording_offer

__all__ = [
    "SIP_CORPUS",
    "TARGETS",
    "FuzzTarget",
    "fuzz_sip",
    "main",
    "sip_corpus",
]


def _message(start: str, headers: list[str], body: str = "") -> bytes:
    raw = body.replace("\n", "\r\n").encode()
    lines = [start, *headers, f"Content-Length: {len(raw)}", "", ""]
    return "\r\n".join(lines).encode() + raw


# The SIPREC offer of drachtio-siprec-recording-server's SIPp scenario
# (test/scenarios/uac_siprec_pcap.xml, MIT), placeholders filled in.
_SIPREC_BODY = """--690DEB64
Content-Type: application/sdp

v=0
o=user1 53655765 2353687637 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 6000 RTP/AVP 8
c=IN IP4 10.0.0.5
a=rtpmap:8 PCMA/8000
a=direction:both
a=sendonly
a=label:a_leg
m=audio 60000 RTP/AVP 8
c=IN IP4 10.0.0.5
a=rtpmap:8 PCMA/8000
a=direction:both
a=sendonly
a=label:b_leg

--690DEB64
Content-Type: application/rs-metadata
Content-Disposition: recording-session

<?xml version="1.0" encoding="UTF-8"?>
  <recording xmlns='urn:ietf:params:xml:ns:recording:1'>
    <datamode>complete</datamode>
    <session session_id="XoM2pKdFR8C3eX33qJKcww==">
      <sipSessionID>hvij5wK4Wx</sipSessionID>
    </session>
    <participant participant_id="omFyWlFETEyFz/KXNLe4iQ==">
    <nameID aor="sip:6001@localhost"/>
    </participant>
    <participant participant_id="fLbZzLMgRXGp+F5w0hOt6w==">
      <nameID aor="sip:101@localhost"/>
    </participant>
    <stream stream_id="1LiAtnDVR9m469/0L4bwCA==" session_id="XoM2pKdFR8C3eX33qJKcww==">
    <label>1</label>
    </stream>
    <stream stream_id="WJgj5uxeRH+nwUah02dWqg==" session_id="XoM2pKdFR8C3eX33qJKcww==">
    <label>2</label>
    </stream>
  </recording>

--690DEB64--
"""

_DIALOG = [
    "From: sipp <sip:sipp@10.0.0.5:5060>;tag=4242SIPpTag091",
    "To: <sip:drachtio@10.0.0.9:5060>;tag=srs-77",
    "Call-ID: 1-4242@10.0.0.5",
]

SIP_CORPUS: tuple[bytes, ...] = (
    _message(
        "INVITE sip:drachtio:5060 SIP/2.0",
        [
            "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-4242-1-0",
            "From: sipp <sip:sipp@10.0.0.5:5060>;tag=4242SIPpTag091",
            "To: sip:drachtio:5060",
            "Call-ID: 1-4242@10.0.0.5",
            "CSeq: 1 INVITE",
            "Contact: <sip:10.0.0.5:5060>",
            "Max-Forwards: 70",
            "Subject: siprec Test",
            "Content-Type: multipart/mixed; boundary=690DEB64",
        ],
        _SIPREC_BODY,
    ),
    _message(
        "ACK sip:drachtio@10.0.0.9:5060 SIP/2.0",
        [
            "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-4242-1-5",
            *_DIALOG,
            "CSeq: 1 ACK",
            "Max-Forwards: 70",
        ],
    ),
    _message(
        "BYE sip:drachtio@10.0.0.9:5060 SIP/2.0",
        [
            "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-4242-1-9;rport",
            *_DIALOG,
            "CSeq: 2 BYE",
            "Contact: sip:sipp@10.0.0.5:5060",
            "Max-Forwards: 70",
        ],
    ),
    _message(
        "OPTIONS sip:recorder@10.0.0.9 SIP/2.0",
        [
            "Via: SIP/2.0/TCP [2001:db8::5]:5070;branch=z9hG4bKopt1;rport",
            "Max-Forwards: 70",
            'f: "Cisco CUBE" <sip:ping@[2001:db8::5]>;tag=98F1',
            "t: <sip:recorder@10.0.0.9>",
            "i: 0F2C55E4-1DD211B2@2001:db8::5",
            "CSeq: 101 OPTIONS",
            "Accept: application/sdp",
            "Allow: INVITE, OPTIONS, BYE, CANCEL, ACK,",
            " PRACK, UPDATE, INFO",
        ],
    ),
    _message(
        "SIP/2.0 200 OK",
        [
            "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-4242-1-0;received=10.0.0.5;rport=5060",
            *_DIALOG[:1],
            "To: sip:drachtio:5060;tag=srs-77",
            *_DIALOG[2:],
            "CSeq: 1 INVITE",
            "Contact: <sip:10.0.0.9:5060;transport=udp>",
            "Supported: timer, replaces",
            "Content-Type: application/sdp",
        ],
        "v=0\no=- 1 1 IN IP4 10.0.0.9\ns=-\nc=IN IP4 10.0.0.9\nt=0 0\n"
        "m=audio 40000 RTP/AVP 8\na=recvonly\nm=audio 40002 RTP/AVP 8\na=recvonly\n",
    ),
)
"""Real-world SIP messages: a SIPREC INVITE (multipart SDP + rs-metadata), its ACK and
BYE, a compact-form OPTIONS over IPv6 with a folded header, a 200 OK with SDP."""

_SIP_TOKENS: tuple[bytes, ...] = (
    *DEFAULT_TOKENS,
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"\n",
    b";tag=",
    b";branch=z9hG4bK",
    b";rport",
    b"SIP/2.0",
    b"SIP/3.0",
    b"Content-Length: 99999999\r\n",
    b"l: 0\r\n",
    b"v: SIP/2.0/TCP [::1]:5061\r\n",
    b"<sip:a@[::1]:65536>",
    b'"\\"',
    b",",
    b"%00",
    b"tel:+1",
    b"mailto:x",
)


def _mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes]) -> bytes:
    return byte_mutate(data, rng, corpus, _SIP_TOKENS)


def sip_corpus(directory: Path | None = None) -> list[bytes]:
    """:data:`SIP_CORPUS`, two of its messages pipelined with keep-alives (a stream
    input), and the files in ``directory``."""
    pipelined = b"\r\n\r\n" + SIP_CORPUS[2] + b"\r\n" + SIP_CORPUS[3] + b"\r\n\r\n"
    return [*SIP_CORPUS, pipelined, *corpus_files(directory)]


def _stream_outcome(chunks: list[bytes]) -> tuple[list[bytes], int | None]:
    parser = StreamParser()
    items: list[bytes] = []
    for chunk in chunks:
        for item in parser.feed(chunk):
            items.append(b"<keepalive>" if isinstance(item, KeepAlive) else bytes(item))
        if parser.error is not None:
            return items, parser.error.status
    return items, None


def fuzz_sip(data: bytes) -> None:
    """Run one input through the SIP parsers; raise when they misbehave (see the module
    doc)."""
    try:
        message = parse_message(data)
    except SipError:
        pass
    else:
        raw = bytes(message)
        again = parse_message(raw)
        if bytes(again) != raw:
            raise AssertionError(f"serialized message does not parse back the same: {raw!r}")
        _ = (again.call_id, again.cseq, again.from_tag, again.to_tag, again.top_via)
    whole = _stream_outcome([data])
    cut = data[0] % (len(data) + 1) if data else 0
    chunkings = [[data[:cut], data[cut:]], [data[i : i + 7] for i in range(0, len(data), 7)]]
    if len(data) <= 2048:
        chunkings.append([data[i : i + 1] for i in range(len(data))])
    for chunks in chunkings:
        outcome = _stream_outcome(chunks)
        if outcome != whole:
            raise AssertionError(f"stream outcome depends on chunking: {outcome} vs {whole}")


def _recording_body() -> tuple[str, bytes]:
    head, _, body = SIP_CORPUS[0].partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            return value.strip().decode(), body
    raise AssertionError("the corpus INVITE has no Content-Type")


def siprec_corpus(directory: Path | None = None) -> list[bytes]:
    """Recording-offer bodies: the corpus INVITE's multipart body, its SDP alone, and the
    files in ``directory``. The first line of an input is its Content-Type."""
    content_type, body = _recording_body()
    sdp = body.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
    offer = content_type.encode() + b"\n" + body
    return [offer, b"application/sdp\n" + sdp, *corpus_files(directory)]


def fuzz_siprec(data: bytes) -> None:
    """An INVITE body (first line: its Content-Type) through the offer parser, the role
    assignment and the SDP answer: only :class:`SiprecError` may escape, and an accepted
    offer gets one answer m-line per offered one."""
    content_type, _, body = data.partition(b"\n")
    try:
        offer = parse_recording_offer(
            content_type.decode("latin-1"), body, record_only=bool(data[:1] == b"a")
        )
        roles = assign_roles(offer)
    except SiprecError:
        return
    ports: list[int | None] = [None] * len(offer.sdp.media)
    for n, role in enumerate(roles):
        ports[role.index] = 20000 + 2 * n
    answer = answer_recording(offer.sdp, address="127.0.0.1", ports=ports, session_id=1)
    if len(answer.media) != len(offer.sdp.media):
        raise AssertionError("the answer does not have one m-line per offered m-line")
    parse_sdp(answer.to_text())
    if roles and sum(r.is_caller for r in roles) != 1:
        raise AssertionError(f"not exactly one caller leg: {roles}")


def rtp_corpus(directory: Path | None = None) -> list[bytes]:
    """RTP packets (PCMU, a telephone-event, padding and CSRC/extension forms), and the
    files in ``directory``."""
    corpus = [
        build_rtp(payload_type=0, sequence=1, timestamp=160, ssrc=7, payload=bytes(160)),
        build_rtp(payload_type=101, sequence=2, timestamp=320, ssrc=7, payload=b"\x01\x80\x00\xa0"),
        build_rtp(
            payload_type=8, sequence=65535, timestamp=2**32 - 80, ssrc=9, payload=b"\xd5" * 80,
            csrc=(1, 2), extension=(0xBEDE, b"\x00" * 4), padding=4, marker=True,
        ),
    ]  # fmt: skip
    return [*corpus, *corpus_files(directory)]


def fuzz_rtp(data: bytes) -> None:
    """A datagram, then the same cut into a packet stream, through the RTP parser and a
    jitter buffer: only :class:`RtpError` may escape, and the buffer's output stays
    contiguous."""
    buffer = JitterBuffer(
        decoders={0: decode_pcmu, 8: decode_pcma}, ignored_payload_types=(101, 13)
    )
    end: int | None = None
    pieces = [data] + [data[i : i + 172] for i in range(0, len(data), 172)]
    for n, piece in enumerate(pieces):
        if is_rtcp(piece):
            continue
        try:
            packet = parse_rtp(piece)
        except RtpError:
            continue
        end = _contiguous(buffer.push(packet, 20.0 * n), end)
    _contiguous(buffer.flush(), end)


def _contiguous(chunks: Sequence[Chunk], end: int | None) -> int | None:
    for chunk in chunks:
        if end is not None and chunk.start != end:
            raise AssertionError(f"jitter buffer output not contiguous at {chunk.start}")
        end = chunk.start + len(chunk.pcm) // 2
    return end


TARGETS: dict[str, FuzzTarget] = {
    "sip": FuzzTarget(fuzz_sip, sip_corpus, _mutate, ".sip"),
    "siprec": FuzzTarget(fuzz_siprec, siprec_corpus, suffix=".body"),
    "rtp": FuzzTarget(fuzz_rtp, rtp_corpus, suffix=".rtp"),
}
"""The fuzz targets by name (``--target``)."""


def main(argv: list[str] | None = None) -> int:
    """The command line: ``--target NAME`` plus the options of
    :func:`callstream.fuzzing.fuzz_main`."""
    return targets_main(
        argv,
        prog="python -m callstream.voice.fuzz",
        description=__doc__,
        targets=TARGETS,
        default="sip",
        crash_dir="voice-fuzz-crashes",
    )


if __name__ == "__main__":
    sys.exit(main())
