"""A callstream server with its SIP recording server on, a voice connector with streaming,
ways to read back what a call's legs became, and the datagrams of a capture."""

from __future__ import annotations

import json
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from server_helpers import ACCESS_KEY, SECRET_KEY, make_client

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.mkv import FragmentReader
from callstream.voice.server import VoiceConfig

__all__ = [
    "ACCESS_KEY",
    "SECRET_KEY",
    "SENDER_STALL_S",
    "VoiceLab",
    "assert_leg_audio",
    "leg_fragments",
    "leg_pcm",
    "pcap_udp_payloads",
    "status_events",
    "tone",
]


@dataclass
class VoiceLab:
    server: ServerThread
    data_dir: Path
    chime: Any
    kv: Any
    media: Any
    connector_id: str

    @property
    def sip(self) -> tuple[str, int]:
        voice = self.server.state.voice
        assert voice is not None
        return ("127.0.0.1", voice.sip_port)

    def events(self) -> list[dict[str, Any]]:
        return status_events(self.server)

    def wait_events(
        self, status: str, count: int, *, call_id: str | None = None, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """At least ``count`` events of ``status`` (of call ``call_id``), polling the bus."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                e
                for e in status_events(self.server)
                if e["StreamingStatus"] == status and call_id in (None, e["CallId"])
            ]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} {status} events expected, saw {found}")
            time.sleep(0.05)

    def get_media(self, arn: str) -> bytes:
        resp = self.media.get_media(StreamARN=arn, StartSelector={"StartSelectorType": "EARLIEST"})
        data: bytes = resp["Payload"].read()
        return data


def start_lab(
    data_dir: Path, *, retention: int = 24, max_streams: int = 10000, **voice: Any
) -> VoiceLab:
    config = ServerConfig(
        credentials={ACCESS_KEY: SECRET_KEY},
        live_idle_timeout_s=0.5,
        voice=VoiceConfig(sip_port=0, rtp_ports=(30000, 39999), **voice),
    )
    server = ServerThread(data_dir, config=config, max_streams=max_streams).start()
    chime = make_client(server.url, "chime-sdk-voice")
    vc = chime.create_voice_connector(Name="lab", RequireEncryption=False)["VoiceConnector"]
    if retention >= 0:
        chime.put_voice_connector_streaming_configuration(
            VoiceConnectorId=vc["VoiceConnectorId"],
            StreamingConfiguration={
                "DataRetentionInHours": retention,
                "Disabled": False,
                "StreamingNotificationTargets": [{"NotificationTarget": "EventBridge"}],
            },
        )
    return VoiceLab(
        server=server,
        data_dir=data_dir,
        chime=chime,
        kv=make_client(server.url, "kinesisvideo"),
        media=make_client(server.url, "kinesis-video-media"),
        connector_id=vc["VoiceConnectorId"],
    )


def status_events(server: ServerThread) -> list[dict[str, Any]]:
    """Every VoiceConnectorStreamingStatus event on the server's bus, oldest first."""
    bus = server.state.events
    assert bus is not None
    bus.flush(5)
    result = bus.query(after=0, limit=10000)
    return [
        {**dict(e.fields), "Time": e.time_ms}
        for e in result.events
        if e.type == "VoiceConnectorStreamingStatus"
    ]


def leg_fragments(data: bytes) -> list[Any]:
    reader = FragmentReader()
    return reader.feed(data) + reader.close()


def leg_pcm(data: bytes) -> bytes:
    """The leg stream's PCM, block after block."""
    return b"".join(bytes(f.data) for frag in leg_fragments(data) for f in frag.frames)


SENDER_STALL_S = 0.4
"""How far behind its 20 ms schedule the test's RTP sender may fall and the leg must still be
sample-exact: the jitter buffer places packets by arrival when their timestamps and arrival
disagree by more than a second (its resync rule, as Asterisk's ``jbresyncthreshold``)."""


def assert_leg_audio(pcm: bytes, expected: bytes, send_times: list[float]) -> None:
    """A leg stream holds exactly the audio sent on it.

    The sender runs in the test process; on a loaded machine it can stall for a second or
    more and then catch up in a burst. Those packets arrive late for their timestamps, so
    the jitter buffer resyncs (by design) and writes silence before them. Then the leg must
    still hold every sent sample, in order, with only whole runs of inserted silence."""
    lateness = max(
        (sent - send_times[0] - i * 0.02 for i, sent in enumerate(send_times)), default=0.0
    )
    if lateness <= SENDER_STALL_S:
        assert pcm == expected
        return
    samples = np.frombuffer(pcm, dtype="<i2")
    zero = samples == 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], zero.view(np.int8), [0]))))
    keep = np.ones(len(samples), dtype=bool)
    for begin, end in zip(edges[::2], edges[1::2], strict=True):
        if end - begin >= 160:  # a packet or more of digital silence: inserted, not sent
            keep[begin:end] = False
    assert samples[keep].tobytes() == expected, f"sender fell {lateness:.2f} s behind"


def tone(seconds: float, freq: float, *, seed: int = 0) -> bytes:
    """A tone with a little noise, as 16-bit LE PCM at 8 kHz (distinct per leg)."""
    n = int(seconds * 8000)
    t = np.arange(n) / 8000
    rng = np.random.default_rng(seed)
    wave = 8000 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 300, n)
    return np.clip(wave, -32768, 32767).astype("<i2").tobytes()


def sdr_lines(data_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted((data_dir / "Amazon-Chime-Voice-Connector-SDRs").rglob("*")):
        if path.is_file():
            for line in path.read_text().splitlines():
                yield json.loads(line)


def pcap_udp_payloads(path: Path) -> list[bytes]:
    """UDP payloads of an Ethernet/IPv4 pcap (little- or big-endian classic format)."""
    data = path.read_bytes()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offset = 24
    out = []
    while offset + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, offset + 8)[0]
        frame = data[offset + 16 : offset + 16 + incl]
        offset += 16 + incl
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = 14 + ihl
        length = struct.unpack_from("!H", frame, udp + 4)[0]
        out.append(frame[udp + 8 : udp + length])
    return out
