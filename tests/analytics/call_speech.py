"""Real telephone speech for the analytics tests: two-party conversations built from the
Debian package asterisk-core-sounds-en-wav (8 kHz recordings of a human voice, with the
official transcripts from asterisk-core-sounds-en), and WER as the acceptance measures it
(jiwer after whisper-normalizer's English normaliser)."""

from __future__ import annotations

import gzip
import random
import re
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callstream.flows.samples import action, flow_doc

SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
RATE = 8000


def need_speech() -> None:
    """Skip unless the recordings and their transcripts are installed."""
    if not SOUNDS.is_dir() or not TRANSCRIPTS.is_file():
        pytest.skip(
            "needs Debian packages asterisk-core-sounds-en-wav and asterisk-core-sounds-en "
            "(scripts/setup-dev.sh installs them)"
        )


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    pcm: np.ndarray  # int16, 8 kHz mono

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE


def prompts(
    count: int, *, seed: int = 1, min_words: int = 6, max_seconds: float = 6.0
) -> list[Prompt]:
    """``count`` distinct prompts (6+ words, at most ``max_seconds``), chosen by ``seed``."""
    need_speech()
    texts: dict[str, str] = {}
    with gzip.open(TRANSCRIPTS, "rt", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            texts[name.strip()] = text.strip()
    found: list[Prompt] = []
    names = sorted(n for n, t in texts.items() if len(t.split()) >= min_words)
    random.Random(seed).shuffle(names)
    for name in names:
        path = SOUNDS / f"{name}.wav"
        text = texts[name]
        # skip transcripts with markup, and hyphenated spellings ("Un-indentified")
        if not path.is_file() or re.search(r"[\[\]<>()]|\w-\w", text):
            continue
        with wave.open(str(path)) as w:
            if w.getframerate() != RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
                continue
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        if len(pcm) / RATE > max_seconds:
            continue
        found.append(Prompt(name, text, pcm))
        if len(found) == count:
            return found
    raise AssertionError(f"only {len(found)} usable prompts")


@dataclass(frozen=True)
class Conversation:
    """A call: ``caller`` and ``agent`` mono tracks of equal length, turns alternating."""

    caller: np.ndarray
    agent: np.ndarray
    caller_text: list[str]
    agent_text: list[str]


def conversation(
    turns: int = 6, *, seed: int = 1, gap_s: float = 1.2, lead_s: float = 0.5
) -> Conversation:
    """``turns`` alternating turns (the caller first), ``gap_s`` of silence between them."""
    chosen = prompts(turns, seed=seed)
    caller: list[np.ndarray] = [np.zeros(int(lead_s * RATE), np.int16)]
    agent: list[np.ndarray] = [np.zeros(int(lead_s * RATE), np.int16)]
    caller_text: list[str] = []
    agent_text: list[str] = []
    gap = np.zeros(int(gap_s * RATE), np.int16)
    for i, prompt in enumerate(chosen):
        quiet = np.zeros(len(prompt.pcm), np.int16)
        if i % 2 == 0:
            caller += [prompt.pcm, gap]
            agent += [quiet, gap]
            caller_text.append(prompt.text)
        else:
            agent += [prompt.pcm, gap]
            caller += [quiet, gap]
            agent_text.append(prompt.text)
    return Conversation(np.concatenate(caller), np.concatenate(agent), caller_text, agent_text)


def write_wav(path: Path, samples: np.ndarray, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
    return path


def wer(reference: list[str], hypothesis: list[str]) -> float:
    """Word error rate of the joined texts after the English normaliser."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    ref = norm(" ".join(reference))
    hyp = norm(" ".join(hypothesis))
    return float(jiwer.wer(ref, hyp)) if ref.strip() else float(bool(hyp.strip()))


def write_rtp_pcap(path: Path, samples: np.ndarray, *, payload_type: int = 8) -> Path:
    """``samples`` (8 kHz) as a pcap of G.711 A-law RTP in 20 ms packets, Ethernet / IPv4 /
    UDP, 20 ms apart: what SIPp's ``play_pcap_audio`` plays."""
    import struct

    from callstream.media.g711 import alaw_encode

    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    pcm = np.ascontiguousarray(samples, dtype="<i2")
    for seq, i in enumerate(range(0, len(pcm) - 159, 160)):
        payload = alaw_encode(pcm[i : i + 160])
        rtp = struct.pack("!BBHII", 0x80, payload_type, seq & 0xFFFF, i, 0x5EED) + payload
        udp = struct.pack("!HHHH", 6000, 7000, 8 + len(rtp), 0) + rtp
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF, 0, 64, 17, 0,
            bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
        )  # fmt: skip
        words = struct.unpack("!10H", header)
        total = sum(words)
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
        frame = b"\0" * 12 + b"\x08\x00" + header + udp
        usec = seq * 20_000
        out.append(
            struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        )
        out.append(frame)
    path.write_bytes(b"".join(out))
    return path


# A Connect flow that streams the contact's audio (To and From) and queues it: the
# customer audio plays from the start, the agent audio once queued (a second in).
STREAMING_FLOW = flow_doc(
    action(
        "stream",
        "UpdateContactMediaStreamingBehavior",
        {
            "MediaStreamingState": "Enabled",
            "MediaStreamType": "Audio",
            "Participants": [{"ParticipantType": "Customer", "MediaDirections": ["To", "From"]}],
        },
        next_action="queue",
        errors={"NoMatchingError": "queue"},
    ),
    action(
        "queue",
        "UpdateContactTargetQueue",
        {"QueueId": "arn:aws:connect:us-east-1:123456789012:instance/i/queue/q"},
        next_action="transfer",
        errors={"NoMatchingError": "transfer"},
    ),
    action(
        "transfer",
        "TransferContactToQueue",
        {},
        errors={"QueueAtCapacity": "end", "NoMatchingError": "end"},
    ),
    action("end", "DisconnectParticipant", {}),
)


def signed_json(url: str, method: str, key: str, secret: str, body: object = None) -> Any:
    """A SigV4-signed request to a callstream server's own API; the JSON answer (200)."""
    import json

    from botocore.credentials import Credentials

    from callstream.cli import signed_request

    status, data = signed_request(
        method,
        url,
        region="us-east-1",
        body=None if body is None else json.dumps(body).encode(),
        credentials=Credentials(key, secret),
    )
    assert status == 200, data
    return json.loads(data)
