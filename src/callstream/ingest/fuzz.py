"""Fuzz entry point for the ingest protocol cores.

``python -m callstream.ingest.fuzz [--target twilio] [--iterations N] [--seconds S]``
mutates a built-in corpus of whole sessions (made with the cores' own client encoders) and
runs the named target on each input (atheris is used when installed, see
:mod:`callstream.fuzzing`). Targets live in :data:`TARGETS`.

An input for a WebSocket core (``twilio``, ``audiohook``, ``websocket``) is a session: one
message per line, a line starting with ``B:`` is a binary message (the rest of the line),
any other line a text message (UTF-8, undecodable bytes replaced). The ``audiosocket``
input is the TCP byte stream, fed whole, in two pieces and in 7-byte pieces.

Every target checks the same contract: nothing raises out of a core, no input reaches the
cores' internal-error path (close code 1011), at most one :class:`~callstream.ingest.events
.Close` comes out, and for AudioSocket the events do not depend on the chunking.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from pathlib import Path

from callstream.fuzzing import DEFAULT_TOKENS, FuzzTarget, corpus_files, targets_main
from callstream.fuzzing import mutate as byte_mutate
from callstream.ingest.audiohook import AudioHookClient, AudioHookSession
from callstream.ingest.audiosocket import AudioSocketConnection, client_stream, dtmf_frame
from callstream.ingest.events import Close, IngestEvent, Reply
from callstream.ingest.twilio import TwilioStream, client_messages
from callstream.ingest.websocket import PlainWebSocket, end_message, frames, start_message

__all__ = [
    "TARGETS",
    "FuzzTarget",
    "audiohook_corpus",
    "audiosocket_corpus",
    "fuzz_audiohook",
    "fuzz_audiosocket",
    "fuzz_twilio",
    "fuzz_websocket",
    "main",
    "twilio_corpus",
    "websocket_corpus",
]

_CALL = "5f0c6b0e-9d0c-4f5e-8a53-0b6c3f1b2a10"
_PCM = bytes(range(256)) * 5  # 640 samples of varied 16-bit values
_TOKENS = (
    *DEFAULT_TOKENS,
    b'"event"',
    b'"start"',
    b'"media"',
    b'"stop"',
    b'"seq"',
    b'"serverseq"',
    b'"open"',
    b'"PT0S"',
    b'"PT.5S"',
    b"B:",
    b"\n",
    b"\x10\xff\xff",
    b"\x01\x00\x10",
)


def _mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes]) -> bytes:
    return byte_mutate(data, rng, corpus, _TOKENS)


def _session(messages: Sequence[str | bytes]) -> bytes:
    lines = [b"B:" + m if isinstance(m, bytes) else m.encode() for m in messages]
    return b"\n".join(line.replace(b"\n", b" ") for line in lines)


def twilio_corpus(directory: Path | None = None) -> list[bytes]:
    """A two-track Media Streams session, a one-track one, and the files in ``directory``."""
    both = client_messages("CA" + "0" * 32, {"inbound": _PCM, "outbound": _PCM[::-1]})
    one = client_messages("CA" + "1" * 32, {"inbound": _PCM}, custom_parameters={"a": "b"})
    return [_session(both), _session(one), *corpus_files(directory)]


def audiohook_corpus(directory: Path | None = None) -> list[bytes]:
    """A whole AudioHook session (open, audio, ping, pause/resume, update, close) as the
    client sends it, and the files in ``directory``."""
    client = AudioHookClient(
        session_id="e160e428-53e2-487c-977d-96989bf5c99d",
        organization_id="d7934305-0972-4844-938e-9060eef73d05",
        conversation_id="090eaa2f-72fa-480a-83e0-8667ff89c0ec",
        custom_config={"k": "v"},
    )
    server = AudioHookSession()
    messages: list[str | bytes] = []

    def send(message: str | bytes) -> None:
        messages.append(message)
        events = (
            server.receive_text(message)
            if isinstance(message, str)
            else server.receive_bytes(message)
        )
        for event in events:
            if isinstance(event, Reply) and isinstance(event.data, str):
                client.receive(event.data)

    send(client.open())
    for frame in client.frames({"external": _PCM, "internal": _PCM[::-1]}):
        send(frame)
    for text in (client.ping(10.0), client.paused(), client.resumed(160), client.update("fr-FR")):
        send(text)
    send(client.audio({"external": _PCM[:320]}))
    send(client.close())
    return [_session(messages), *corpus_files(directory)]


def websocket_corpus(directory: Path | None = None) -> list[bytes]:
    """Plain-socket sessions in L16 and µ-law, a jambonz-style one, and the files in
    ``directory``."""
    l16: list[str | bytes] = [start_message("c1"), *frames([_PCM, _PCM[::-1]]), end_message("c1")]
    pcmu: list[str | bytes] = [
        start_message("c2", encoding="PCMU", roles=("agent",)),
        *frames([_PCM], encoding="PCMU"),
        end_message("c2"),
    ]
    jambonz: list[str | bytes] = [
        '{"callSid": "abc", "callId": "sip-1", "from": "+1555", "sampleRate": 16000, '
        '"mixType": "stereo", "metadata": {"x": 1}}',
        *frames([_PCM, _PCM], sample_rate=16000),
    ]
    return [_session(l16), _session(pcmu), _session(jambonz), *corpus_files(directory)]


def audiosocket_corpus(directory: Path | None = None) -> list[bytes]:
    """An AudioSocket call (UUID, audio, DTMF, hangup) and the files in ``directory``."""
    stream = client_stream(_CALL, _PCM)
    return [b"".join([*stream[:2], dtmf_frame("5"), *stream[2:]]), *corpus_files(directory)]


def _messages(data: bytes) -> list[str | bytes]:
    out: list[str | bytes] = []
    for line in data.split(b"\n"):
        out.append(line[2:] if line.startswith(b"B:") else line.decode("utf-8", "replace"))
    return out


def _check(events: list[IngestEvent]) -> None:
    closes = [e for e in events if isinstance(e, Close)]
    if len(closes) > 1:
        raise AssertionError(f"{len(closes)} Close events: {closes}")
    if any(c.code == 1011 for c in closes):
        raise AssertionError(f"a core hit its internal-error path: {events}")


def _run_session(core: TwilioStream | AudioHookSession | PlainWebSocket, data: bytes) -> None:
    events: list[IngestEvent] = []
    for message in _messages(data):
        if isinstance(message, str):
            events += core.receive_text(message)
        else:
            events += core.receive_bytes(message)
    events += core.receive_close()
    _check(events)


def fuzz_twilio(data: bytes) -> None:
    """One session through :class:`~callstream.ingest.twilio.TwilioStream` (and with the
    tracks swapped)."""
    _run_session(TwilioStream(), data)
    _run_session(TwilioStream(swap_tracks=True), data)


def fuzz_audiohook(data: bytes) -> None:
    """One session through :class:`~callstream.ingest.audiohook.AudioHookSession`."""
    _run_session(AudioHookSession(), data)


def fuzz_websocket(data: bytes) -> None:
    """One session through :class:`~callstream.ingest.websocket.PlainWebSocket` (with the
    LCA defaults and with mod_audio_fork-style mono 16 kHz defaults)."""
    _run_session(PlainWebSocket(), data)
    _run_session(PlainWebSocket(default_sample_rate=16000, default_channels=1), data)


def _audiosocket_events(chunks: list[bytes]) -> list[IngestEvent]:
    conn = AudioSocketConnection()
    events: list[IngestEvent] = []
    for chunk in chunks:
        events += conn.receive_bytes(chunk)
    return events + conn.receive_eof()


def fuzz_audiosocket(data: bytes) -> None:
    """One TCP stream through :class:`~callstream.ingest.audiosocket.AudioSocketConnection`
    in several chunkings; the events must not depend on them."""
    whole = _audiosocket_events([data])
    _check(whole)
    cut = data[0] % (len(data) + 1) if data else 0
    for chunks in ([data[:cut], data[cut:]], [data[i : i + 7] for i in range(0, len(data), 7)]):
        if _audiosocket_events(chunks) != whole:
            raise AssertionError("AudioSocket events depend on the chunking")


TARGETS: dict[str, FuzzTarget] = {
    "twilio": FuzzTarget(fuzz_twilio, twilio_corpus, _mutate, ".session"),
    "audiohook": FuzzTarget(fuzz_audiohook, audiohook_corpus, _mutate, ".session"),
    "websocket": FuzzTarget(fuzz_websocket, websocket_corpus, _mutate, ".session"),
    "audiosocket": FuzzTarget(fuzz_audiosocket, audiosocket_corpus, _mutate, ".tcp"),
}
"""The fuzz targets by name (``--target``)."""


def main(argv: list[str] | None = None) -> int:
    """The command line: ``--target NAME`` plus the options of
    :func:`callstream.fuzzing.fuzz_main`."""
    return targets_main(
        argv,
        prog="python -m callstream.ingest.fuzz",
        description=__doc__,
        targets=TARGETS,
        default="twilio",
        crash_dir="ingest-fuzz-crashes",
    )


if __name__ == "__main__":
    sys.exit(main())
