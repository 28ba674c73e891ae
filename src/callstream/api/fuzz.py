"""Fuzz entry point for the HTTP side of the server: raw requests into a real server.

:func:`fuzz_one` sends one input as raw bytes over TCP to an in-process server (the first
byte picks one with SigV4 on or one with it off, so that mutated bodies also reach the
handlers and their validation) and reads the answer. Acceptable outcomes are any 2xx-4xx
response or the server closing the connection; a 5xx, an error logged by the server, a
connection left hanging or a server that stops answering raise.

``python -m callstream.api.fuzz --seconds 60`` runs the mutation loop (byte edits, and
edits of the JSON bodies' values that keep them valid JSON) seeded with a signed request
for every operation; atheris is used when installed.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import random
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callstream.fuzzing import corpus_files, fuzz_main
from callstream.fuzzing import mutate as byte_mutate

__all__ = ["builtin_corpus", "fuzz_one", "main", "mutate"]

KEY, SECRET = "AKIDFUZZ", "fuzz-secret"
STREAM = "fuzz-stream"
ANSWER_TIMEOUT_S = 20.0
"""A server that neither answers nor closes within this (its own body and header
timeouts are 1 s here) is hanging."""


class _Errors(logging.Handler):
    """Records the server logs at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.name}: {record.getMessage()}")


@dataclass
class _Servers:
    signed: Any
    open: Any
    errors: _Errors


_servers: _Servers | None = None


def _start() -> _Servers:
    global _servers
    if _servers is not None:
        return _servers
    from callstream.api.app import ServerConfig
    from callstream.api.server import ServerThread

    root = Path(tempfile.mkdtemp(prefix="callstream-fuzz-"))

    def config(credentials: dict[str, str] | None) -> ServerConfig:
        return ServerConfig(
            credentials=credentials, body_timeout_s=1.0, header_timeout_s=1.0, idle_timeout_s=1.0
        )

    signed = ServerThread(root / "signed", config=config({KEY: SECRET})).start()
    open_ = ServerThread(root / "open", config=config(None)).start()
    errors = _Errors()
    for name in ("callstream", "aiohttp"):
        logging.getLogger(name).addHandler(errors)
    for server in (signed, open_):
        _request(server.port, _signed_request(server.port, "/createStream", _create_body()))
    _servers = _Servers(signed, open_, errors)

    # The servers run on daemon threads until the process ends; their data goes with it.
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return _servers


def _create_body() -> bytes:
    return json.dumps({"StreamName": STREAM, "DataRetentionInHours": 1}).encode()


def _signed_request(
    port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> bytes:
    """A request as botocore signs it (fresh date), as raw bytes."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    hdrs = {"Content-Type": "application/json", **(headers or {})}
    req = AWSRequest("POST", f"http://127.0.0.1:{port}{path}", data=body, headers=hdrs)
    SigV4Auth(Credentials(KEY, SECRET), "kinesisvideo", "us-east-1").add_auth(req)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _request(port: int, data: bytes) -> bytes:
    """Send ``data``, close the sending side, return everything the server answered
    (raises TimeoutError if it neither answers nor closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed early (an answer may still be there to read)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def fuzz_one(data: bytes) -> None:
    """Send ``data[1:]`` to the signed (``data[0]`` even) or open server; raise when the
    server answers 5xx, logs an error, hangs or stops answering."""
    if not data:
        return
    servers = _start()
    server = servers.signed if data[0] % 2 == 0 else servers.open
    answer = _request(server.port, data[1:])
    status_line = answer.split(b"\r\n", 1)[0]
    parts = status_line.split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:1] == b"5":
        raise AssertionError(f"server answered {status_line!r}: {answer[:400]!r}")
    if servers.errors.seen:
        seen, servers.errors.seen = servers.errors.seen, []
        raise AssertionError(f"server logged errors: {seen}")


# --- corpus and mutations ------------------------------------------------------------------

_BODIES: dict[str, dict[str, Any]] = {
    "/createStream": {"StreamName": "s", "DataRetentionInHours": 1, "Tags": {"k": "v"}},
    "/describeStream": {"StreamName": STREAM},
    "/listStreams": {
        "MaxResults": 2,
        "StreamNameCondition": {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "f"},
    },
    "/updateStream": {"StreamName": STREAM, "CurrentVersion": "abc", "DeviceName": "d"},
    "/updateDataRetention": {
        "StreamName": STREAM,
        "CurrentVersion": "abc",
        "Operation": "INCREASE_DATA_RETENTION",
        "DataRetentionChangeInHours": 1,
    },
    "/getDataEndpoint": {"StreamName": STREAM, "APIName": "GET_MEDIA"},
    "/tagStream": {"StreamName": STREAM, "Tags": {"a": "b"}},
    "/untagStream": {"StreamName": STREAM, "TagKeyList": ["a"]},
    "/listTagsForStream": {"StreamName": STREAM},
    "/TagResource": {
        "ResourceARN": "arn:aws:kinesisvideo:us-east-1:1:stream/x/1",
        "Tags": [{"Key": "a", "Value": "b"}],
    },
    "/getMedia": {
        "StreamName": STREAM,
        "StartSelector": {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": 1.5},
    },
    "/listFragments": {
        "StreamName": STREAM,
        "MaxResults": 5,
        "FragmentSelector": {
            "FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": 0, "EndTimestamp": 2e9},
        },
    },
    "/getMediaForFragmentList": {
        "StreamName": STREAM,
        "Fragments": ["91343852333181432392682062607743920146264440066"],
    },
    "/getClip": {
        "StreamName": STREAM,
        "ClipFragmentSelector": {
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": 0, "EndTimestamp": 10},
        },
    },
    "/getHLSStreamingSessionURL": {"StreamName": STREAM, "PlaybackMode": "LIVE"},
    "/callstream/contacts": {
        "ContactId": "c-1",
        "Channel": "VOICE",
        "InitiationTimestamp": "2024-01-01T00:00:00Z",
    },
    "/deleteStream": {"StreamARN": "arn:aws:kinesisvideo:us-east-1:1:stream/x/1"},
}


def builtin_corpus(port: int = 8080) -> list[bytes]:
    """One signed request per operation (for either server), and a PutMedia upload."""
    from callstream.mkv import writer
    from callstream.mkv.ebml import ID

    out: list[bytes] = []
    for path, body in _BODIES.items():
        raw = _signed_request(port, path, json.dumps(body).encode())
        out += [b"\x00" + raw, b"\x01" + raw]
    tracks = writer.tracks([writer.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT")])
    mkv = writer.ebml_header() + writer.master(
        ID.Segment,
        [
            writer.info(segment_uid=bytes(16)),
            tracks,
            writer.cluster(0, [writer.simple_block(1, 0, bytes(320))]),
        ],
    )
    put = {
        "x-amzn-stream-name": STREAM,
        "x-amzn-fragment-timecode-type": "ABSOLUTE",
        "x-amzn-producer-start-timestamp": "1700000000.5",
    }
    raw = _signed_request(port, "/putMedia", b"", put)
    raw = raw.replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: %d\r\n\r\n" % len(mkv)) + mkv
    return [*out, b"\x00" + raw, b"\x01" + raw]


def load_corpus(directory: Path | None) -> list[bytes]:
    """The built-in corpus signed for the fuzzing servers, plus files in ``directory``."""
    servers = _start()
    corpus = [
        data[:1] + data[1:].replace(b"127.0.0.1:8080", f"127.0.0.1:{server.port}".encode())
        for data in builtin_corpus()
        for server in ((servers.signed if data[0] % 2 == 0 else servers.open),)
    ]
    return [*corpus, *corpus_files(directory)]


_ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2**63,
    -(2**63) - 1,
    1e308,
    -1e308,
    0.5,
    "",
    "x" * 3000,
    "1e999999999",
    "-1e999999999",
    "NaN",
    "Infinity",
    "9" * 40,
    "\u0000",
    "\ud7ff\U0001f600",
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": {}}},
    ["x"] * 60,
    {f"k{i}": "v" for i in range(60)},
)


def _json_edit(body: Any, rng: random.Random) -> Any:
    """Replace one value somewhere in ``body`` with an odd one (or drop or add a key)."""
    if isinstance(body, dict) and body and rng.random() < 0.7:
        key = rng.choice(list(body))
        roll = rng.random()
        if roll < 0.15:
            del body[key]
        elif roll < 0.3:
            body[rng.choice(["Extra", "StreamARN", "NextToken", key + "x"])] = rng.choice(
                _ODD_VALUES
            )
        else:
            body[key] = _json_edit(body[key], rng)
        return body
    if isinstance(body, list) and body and rng.random() < 0.7:
        i = rng.randrange(len(body))
        body[i] = _json_edit(body[i], rng)
        return body
    return copy.deepcopy(rng.choice(_ODD_VALUES))


def mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes]) -> bytes:
    """Edit a JSON body's values (keeping it JSON, Content-Length fixed) or the bytes."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if sep and rng.random() < 0.6:
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        if value is not None:
            for _ in range(rng.randint(1, 3)):
                value = _json_edit(value, rng)
            new = json.dumps(value).encode()
            lines = [
                ln
                if not ln.lower().startswith(b"content-length:")
                else b"Content-Length: %d" % len(new)
                for ln in head.split(b"\r\n")
            ]
            return b"\r\n".join(lines) + sep + new
    return byte_mutate(data, rng, corpus)


def main(argv: list[str] | None = None) -> int:
    return fuzz_main(
        argv,
        prog="python -m callstream.api.fuzz",
        description=__doc__,
        target=fuzz_one,
        load_corpus=load_corpus,
        mutator=mutate,
        suffix=".http",
        crash_dir="api-fuzz-crashes",
    )


if __name__ == "__main__":
    sys.exit(main())
