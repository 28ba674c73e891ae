"""SIPp (Debian ``sip-tester``), a real SIPREC client, against the recording server: the
drachtio SIPREC scenario with its G.711 A-law pcap."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from voice_helpers import (
    VoiceLab,
    leg_fragments,
    leg_pcm,
    pcap_udp_payloads,
    sdr_lines,
    start_lab,
)

from callstream.media.g711 import alaw_decode
from shared_data import SHARED

SIPREC_DATA = SHARED / "testdata" / "siprec"
SCENARIO = SIPREC_DATA / "uac_siprec_pcap.xml"
PCAP = SIPREC_DATA / "pcap" / "g711a.pcap"

pytestmark = [
    pytest.mark.skipif(
        shutil.which("sipp") is None, reason="SIPp (Debian sip-tester) not installed"
    ),
    pytest.mark.skipif(not SCENARIO.exists(), reason=f"shared test data absent ({SIPREC_DATA})"),
    pytest.mark.skipif(
        hasattr(os, "geteuid") and os.geteuid() != 0,
        reason="SIPp's play_pcap_audio needs root (raw sockets)",
    ),
]


def pcap_rtp_payloads(path: Path) -> list[bytes]:
    """RTP payloads of an Ethernet/IPv4/UDP pcap, in file order."""
    return [d[12 + 4 * (d[0] & 0x0F) :] for d in pcap_udp_payloads(path)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[VoiceLab]:
    lab = start_lab(tmp_path / "data")
    try:
        yield lab
    finally:
        lab.server.stop()


NBR_SCENARIO = Path(__file__).with_name("scenarios") / "cisco_nbr_pcap.xml"


def run_sipp(
    lab: VoiceLab, tmp_path: Path, *, pause_ms: int, scenario_file: Path = SCENARIO
) -> subprocess.CompletedProcess[str]:
    text = scenario_file.read_text(encoding="latin-1")
    text = text.replace("/tmp/pcap/g711a.pcap", str(PCAP)).replace("PCAP_PATH", str(PCAP))
    text = text.replace('<pause milliseconds="3000"/>', f'<pause milliseconds="{pause_ms}"/>')
    scenario = tmp_path / "scenario.xml"
    scenario.write_text(text, encoding="latin-1")
    host, port = lab.sip
    return subprocess.run(
        [
            "sipp", f"{host}:{port}", "-sf", str(scenario), "-m", "1",
            "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port() & ~1),
            "-timeout", "60", "-timeout_error", "-nostdin", "-trace_err",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def test_sipp_siprec_scenario_records_both_legs(lab: VoiceLab, tmp_path: Path) -> None:
    # the scenario's comment asks for ~8 s (the pcap's length); its BYE comes after that
    done = run_sipp(lab, tmp_path, pause_ms=8000)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    ended = lab.wait_events("ENDED", 2)
    assert len(ended) == 2
    call_ids = {e["CallId"] for e in ended}
    assert len(call_ids) == 1
    caller = next(e for e in ended if e["IsCaller"])
    callee = next(e for e in ended if not e["IsCaller"])
    # SDP labels a_leg/b_leg (the metadata's labels 1/2 do not match them): a_leg, the
    # first m-line, is the caller; SIPp plays the pcap on that m-line only
    assert caller["Sdp"] == {"mediaIndex": 0, "mediaLabel": "a_leg"}
    assert callee["Sdp"] == {"mediaIndex": 1, "mediaLabel": "b_leg"}

    expected = b"".join(alaw_decode(p).astype("<i2").tobytes() for p in pcap_rtp_payloads(PCAP))
    caller_data = lab.get_media(caller["StreamARN"])
    assert leg_pcm(caller_data) == expected
    callee_pcm = leg_pcm(lab.get_media(callee["StreamARN"]))
    assert len(callee_pcm) == len(expected)  # the silent leg spans the same time
    assert callee_pcm == bytes(len(callee_pcm))
    for fragment in leg_fragments(caller_data):
        assert set(fragment.tags) >= {"TransactionId", "VoiceConnectorId", "CallId"}

    updated = [e for e in lab.events() if e["StreamingStatus"] == "UPDATED"]
    assert len(updated) == 1  # the re-INVITE (a=inactive, metadata resent)
    assert len(list(sdr_lines(lab.data_dir))) == 2


def test_sipp_cisco_nbr_session_records_both_legs(lab: VoiceLab, tmp_path: Path) -> None:
    """CUBE network-based recording: plain SDP, the record-only flag, participants by
    media-index (0 is the caller); a session timer the SRC refreshes."""
    done = run_sipp(lab, tmp_path, pause_ms=8000, scenario_file=NBR_SCENARIO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ended = lab.wait_events("ENDED", 2)
    caller = next(e for e in ended if e["IsCaller"])
    callee = next(e for e in ended if not e["IsCaller"])
    assert caller["Sdp"]["mediaIndex"] == 0 and callee["Sdp"]["mediaIndex"] == 1
    assert caller["FromNumber"] == "2164485925" and caller["ToNumber"] == "5551000"
    assert "SiprecMetadata" not in caller or caller["SiprecMetadata"] is None
    expected = b"".join(alaw_decode(p).astype("<i2").tobytes() for p in pcap_rtp_payloads(PCAP))
    assert leg_pcm(lab.get_media(caller["StreamARN"])) == expected
