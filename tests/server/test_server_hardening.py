"""What an attacker or a broken client can do to the server, and what it must not achieve:
memory held by unauthenticated bodies, connections held by slow or idle clients, bodies
that escape their signature, 500s from odd values, tracebacks for clients that leave."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import botocore
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from process_helpers import KEY, SECRET, ServeProcess
from server_helpers import ACCESS_KEY, SECRET_KEY, Kvs, connect_audio, make_client, unique, wait_for

RECV_TIMEOUT = 60.0  # generous: what is asserted is the answer, never how fast it came


def head(
    port: int,
    path: str,
    body: bytes,
    *,
    sign: bool = True,
    key: str = ACCESS_KEY,
    secret: str = SECRET_KEY,
    headers: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
    length: int | None = None,
) -> bytes:
    """The request line and headers of a POST, signed as botocore signs ``body`` (which
    the caller then sends, all, some or none of it)."""
    hdrs = {"Content-Type": "application/x-amz-json-1.1", **(headers or {})}
    req = AWSRequest("POST", f"http://127.0.0.1:{port}{path}", data=body, headers=hdrs)
    req.context.update(context or {})
    if sign:
        SigV4Auth(Credentials(key, secret), "kinesisvideo", "us-east-1").add_auth(req)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(RECV_TIMEOUT)
    return sock


def response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response (status, lower-case headers, body by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length]


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed the connection (reads until EOF or reset)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


# --- unauthenticated and oversized bodies ---------------------------------------------------


@pytest.mark.parametrize(
    ("sign", "key", "code"),
    [
        (False, ACCESS_KEY, "MissingAuthenticationTokenException"),
        (True, "AKIDUNKNOWN", "UnrecognizedClientException"),
    ],
)
def test_bad_credentials_are_refused_from_the_headers_before_any_body(
    kvs: Kvs, sign: bool, key: str, code: str
) -> None:
    # 60 MiB announced, not one byte sent: the answer comes from the headers alone (the
    # old server waited for, and buffered, the whole body first).
    with connect(kvs.server.port) as sock:
        body = b'{"StreamName": "x"}'
        sock.sendall(
            head(kvs.server.port, "/createStream", body, sign=sign, key=key, length=60 << 20)
        )
        status, headers, payload = response(sock)
    assert status == 403
    assert headers["x-amzn-errortype"] == code
    assert json.loads(payload)["__type"] == code


def test_a_body_over_the_limit_is_refused_by_its_content_length(kvs: Kvs) -> None:
    limit = kvs.server.config.max_body_bytes
    with connect(kvs.server.port) as sock:
        sock.sendall(head(kvs.server.port, "/listStreams", b"{}", length=limit + 1))
        status, headers, _ = response(sock)
    assert (status, headers["x-amzn-errortype"]) == (413, "RequestEntityTooLargeException")


def test_a_chunked_body_over_the_limit_is_refused_when_it_passes_the_limit(kvs: Kvs) -> None:
    limit = kvs.server.config.max_body_bytes
    body = b"[" + b" " * limit + b"]"
    with connect(kvs.server.port) as sock:
        top = head(kvs.server.port, "/listStreams", body).replace(
            f"Content-Length: {len(body)}".encode(), b"Transfer-Encoding: chunked"
        )
        sock.sendall(top)
        for i in range(0, len(body), 65536):
            piece = body[i : i + 65536]
            try:
                sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
            except (BrokenPipeError, ConnectionResetError):
                break
        status, headers, _ = response(sock)
    assert (status, headers["x-amzn-errortype"]) == (413, "RequestEntityTooLargeException")


def test_the_contact_api_takes_records_up_to_its_own_limit(kvs: Kvs) -> None:
    # Bigger than the API-wide limit, within the contact records' own one.
    record = {"ContactId": unique("c"), "Channel": "VOICE", "Notes": "n" * 900_000}
    body = json.dumps(record).encode() + b" " * 300_000  # laid out: a compact 0.9 MB record
    assert len(body) > kvs.server.config.max_body_bytes
    with connect(kvs.server.port) as sock:
        sock.sendall(head(kvs.server.port, "/callstream/contacts", body) + body)
        status, _, payload = response(sock)
    assert status == 200, payload


def test_a_slow_body_times_out_and_its_connection_closes(make_kvs: Callable[..., Kvs]) -> None:
    kvs = make_kvs(body_timeout_s=0.5)
    body = b'{"MaxResults": 10}'
    with connect(kvs.server.port) as sock:
        sock.sendall(head(kvs.server.port, "/listStreams", body) + body[:5])
        status, headers, _ = response(sock)
        assert (status, headers["x-amzn-errortype"]) == (408, "RequestTimeoutException")
        assert closed_by_server(sock)
    assert kvs.kv.list_streams()["StreamInfoList"] is not None  # others unaffected


# --- connections ----------------------------------------------------------------------------


def test_a_connection_without_request_headers_is_closed(make_kvs: Callable[..., Kvs]) -> None:
    kvs = make_kvs(header_timeout_s=0.3)
    with connect(kvs.server.port) as idle, connect(kvs.server.port) as slow:
        slow.sendall(b"POST /listStreams HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        assert closed_by_server(idle)
        assert closed_by_server(slow)
    assert kvs.kv.list_streams()["StreamInfoList"] is not None


def test_an_idle_keep_alive_connection_is_closed(make_kvs: Callable[..., Kvs]) -> None:
    kvs = make_kvs(idle_timeout_s=0.3)
    with connect(kvs.server.port) as sock:
        sock.sendall(head(kvs.server.port, "/listStreams", b"{}") + b"{}")
        assert response(sock)[0] == 200
        assert closed_by_server(sock)


def test_one_client_cannot_hold_more_than_its_connection_cap(
    make_kvs: Callable[..., Kvs],
) -> None:
    kvs = make_kvs(max_client_connections=6, header_timeout_s=60)
    port = kvs.server.port
    held = [connect(port) for _ in range(6)]
    try:
        extra = connect(port)
        assert closed_by_server(extra)  # closed at once: the client is at its cap
        extra.close()
        # The connections it holds still work.
        held[0].sendall(head(port, "/listStreams", b"{}") + b"{}")
        assert response(held[0])[0] == 200
        # Once one is closed, the client may connect again.
        held.pop().close()
        guard = kvs.server.state.guard
        assert guard is not None
        wait_for(lambda: guard.connections("127.0.0.1") < 6)  # the server saw the close
        again = connect(port)
        again.sendall(head(port, "/listStreams", b"{}") + b"{}")
        assert response(again)[0] == 200
        again.close()
    finally:
        for sock in held:
            sock.close()
    assert guard.refused >= 1


# --- signed bodies --------------------------------------------------------------------------


def test_the_control_plane_refuses_an_unsigned_payload(kvs: Kvs) -> None:
    name = unique()
    body = json.dumps({"StreamName": name}).encode()
    swapped = json.dumps({"StreamName": name + "-x"}).encode()
    ctx = {"payload_signing_enabled": False}
    with connect(kvs.server.port) as sock:
        top = head(kvs.server.port, "/createStream", body, context=ctx, length=len(swapped))
        assert b"UNSIGNED-PAYLOAD" in top
        sock.sendall(top + swapped)
        status, headers, _ = response(sock)
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    with pytest.raises(kvs.kv.exceptions.ResourceNotFoundException):
        kvs.kv.describe_stream(StreamName=name + "-x")


def test_the_control_plane_refuses_streaming_payload_signatures(kvs: Kvs) -> None:
    body = json.dumps({"StreamName": unique()}).encode()
    extra = {"X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    with connect(kvs.server.port) as sock:
        sock.sendall(head(kvs.server.port, "/createStream", body, headers=extra) + body)
        status, headers, payload = response(sock)
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD" in payload


def test_a_declared_body_hash_must_match_the_body(kvs: Kvs) -> None:
    import hashlib

    body = json.dumps({"StreamName": unique()}).encode()
    declared = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    with connect(kvs.server.port) as sock:
        sock.sendall(head(kvs.server.port, "/createStream", body, headers=declared) + body)
        assert response(sock)[0] == 200
        other = body.replace(b'"}', b'y"}')
        top = head(kvs.server.port, "/createStream", body, headers=declared, length=len(other))
        sock.sendall(top + other)
        status, headers, _ = response(sock)
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")


# --- odd values get 400s --------------------------------------------------------------------

HUGE = "1e999999999"


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/describeStream", "[" * 100_000 + "]" * 100_000, "SerializationException"),
        ("/describeStream", '{"a":' * 100_000 + "1" + "}" * 100_000, "SerializationException"),
        (
            "/listFragments",
            {
                "FragmentSelector": {
                    "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": HUGE, "EndTimestamp": HUGE},
                }
            },
            "InvalidArgumentException",
        ),
        (
            "/getMedia",
            {"StartSelector": {"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": HUGE}},
            "InvalidArgumentException",
        ),
        (
            "/getMedia",
            {
                "StartSelector": {
                    "StartSelectorType": "PRODUCER_TIMESTAMP",
                    "StartTimestamp": "-" + HUGE,
                }
            },
            "InvalidArgumentException",
        ),
        (
            "/getClip",
            {
                "ClipFragmentSelector": {
                    "FragmentSelectorType": "SERVER_TIMESTAMP",
                    "TimestampRange": {"StartTimestamp": HUGE, "EndTimestamp": HUGE},
                }
            },
            "InvalidArgumentException",
        ),
        (
            "/callstream/contacts",
            {"ContactId": "c-odd", "Channel": {"nested": 1}},
            "InvalidArgumentException",
        ),
    ],
)
def test_odd_values_get_a_4xx_error_shape(kvs: Kvs, path: str, body: Any, code: str) -> None:
    name, _ = kvs.create()
    if isinstance(body, dict) and path != "/callstream/contacts":
        body = {"StreamName": name, **body}
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    with connect(kvs.server.port) as sock:
        sock.sendall(head(kvs.server.port, path, raw) + raw)
        status, headers, payload = response(sock)
    assert 400 <= status < 500 and headers["x-amzn-errortype"] == code, payload
    assert json.loads(payload)["__type"] == code


def test_a_huge_producer_start_timestamp_gets_a_4xx(kvs: Kvs) -> None:
    name, _ = kvs.create()
    extra = {
        "x-amzn-stream-name": name,
        "x-amzn-fragment-timecode-type": "ABSOLUTE",
        "x-amzn-producer-start-timestamp": HUGE,
    }
    with connect(kvs.server.port) as sock:
        sock.sendall(head(kvs.server.port, "/putMedia", b"", headers=extra))
        status, headers, _ = response(sock)
    assert (status, headers["x-amzn-errortype"]) == (400, "InvalidArgumentException")


# --- expected disconnects -------------------------------------------------------------------


def test_a_reader_that_goes_away_mid_stream_leaves_no_error_in_the_log(
    kvs: Kvs, caplog: pytest.LogCaptureFixture
) -> None:
    name, _ = kvs.create()
    audio = connect_audio(20, fragment_ms=200)
    kvs.put(name, audio.chunks)
    caplog.set_level(logging.DEBUG)
    media = kvs.client("kinesis-video-media", config=Config(read_timeout=30))
    for _ in range(3):
        resp = media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
        resp["Payload"].read(100)  # a little of the first fragment, then hang up
        resp["Payload"].close()
    # The server notices on its next write; a new reader proves it moved on.
    kvs.get_media(name, {"StartSelectorType": "EARLIEST"})
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info is not None]
    assert not noisy, [(r.name, r.getMessage()) for r in noisy]


# --- TLS ------------------------------------------------------------------------------------


def test_boto3_over_tls_with_the_development_ca(tmp_path: Any) -> None:
    from server_helpers import make_client

    from callstream.api.app import ServerConfig
    from callstream.api.server import ServerThread
    from callstream.api.tls import development_certificates, server_context

    certs = development_certificates(tmp_path / "tls")
    context = server_context(certs.cert_file, certs.key_file)
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY})
    with ServerThread(tmp_path / "data", config=config, ssl_context=context) as server:
        assert server.url.startswith("https://")
        kv = make_client(server.url, "kinesisvideo", config=Config())
        verified = botocore.session.get_session().create_client(
            "kinesisvideo",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            verify=str(certs.ca_file),
        )
        verified.create_stream(StreamName="tls-1", DataRetentionInHours=1)
        endpoint = verified.get_data_endpoint(StreamName="tls-1", APIName="PUT_MEDIA")
        assert endpoint["DataEndpoint"] == server.url
        # Without trusting the CA, the certificate is refused.
        with pytest.raises(botocore.exceptions.SSLError):
            kv.list_streams()
    # The CA is kept: a second call reuses it (clients keep trusting the same file).
    again = development_certificates(tmp_path / "tls")
    assert again.ca_file.read_bytes() == certs.ca_file.read_bytes()
    files = sorted((tmp_path / "tls").iterdir())  # keys and certificates, no temporary file
    assert [f.name for f in files] == ["ca-key.pem", "ca.pem", "server-key.pem", "server.pem"]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)


# --- as a process: memory given back, descriptors ---------------------------------------


def _blast(port: int, connections: int, megabytes: int) -> None:
    """``connections`` unsigned POSTs, each trying to send ``megabytes`` of body."""
    chunk = b"x" * (1 << 20)

    def one() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.settimeout(RECV_TIMEOUT)
                sock.sendall(
                    b"POST /createStream HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: %d\r\n\r\n" % (megabytes << 20)
                )
                for _ in range(megabytes):
                    sock.sendall(chunk)
        except OSError:
            pass  # refused and closed by the server: what it should do

    threads = [threading.Thread(target=one) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _aborted_uploads(port: int, count: int) -> None:
    """Signed requests cut off mid-body (tracebacks of these used to pin their buffers)."""
    body = b"{" + b" " * (900 << 10) + b"}"
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                head(port, "/listStreams", body, key=KEY, secret=SECRET) + body[: len(body) // 2]
            )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.slow
def test_memory_returns_near_its_baseline_after_an_attack(tmp_path: Any) -> None:
    # analytics off: the speech model loading in the background is not what this measures
    with ServeProcess(
        tmp_path / "data", "--memory-interval", "0.5", "--analytics", "off"
    ) as server:
        kv = server.client("kinesisvideo")
        kv.list_streams()
        baseline = server.rss_mb()
        for _ in range(3):
            _blast(server.port, connections=8, megabytes=60)
            _aborted_uploads(server.port, count=20)
            assert kv.list_streams()["StreamInfoList"] == []  # served throughout
        settled = server.settled_rss_mb(above=baseline + 25)
        log = server.stop()
    assert settled <= baseline + 25, f"RSS {settled:.0f} MB after the attack, {baseline:.0f} before"
    assert "Traceback" not in log, log


@pytest.mark.slow
def test_descriptor_exhaustion_logs_one_line_and_the_server_recovers(tmp_path: Any) -> None:
    limit = 160
    with ServeProcess(
        tmp_path / "data",
        "--max-client-connections",
        "10000",
        "--header-timeout",
        "600",
        # the speech model loading in the background would compete for the few descriptors
        "--analytics",
        "off",
        fd_limit=limit,
    ) as server:
        held: list[socket.socket] = []
        try:
            for _ in range(limit + 40):
                held.append(socket.create_connection(("127.0.0.1", server.port)))
            time.sleep(2.5)  # several accept retries happen meanwhile (not a timing check)
        finally:
            for sock in held:
                sock.close()
        kv = server.client("kinesisvideo", config=Config(retries={"max_attempts": 10}))
        assert kv.list_streams()["StreamInfoList"] == []  # back to normal
        log = server.stop()
    assert "Traceback" not in log, log
    lines = [ln for ln in log.splitlines() if "descriptor" in ln]
    assert 1 <= len(lines) <= 4, log


_ACCEPT_RETRIES_AFTER_CLOSE = """
import asyncio, logging, resource, socket

from callstream.api.connections import ConnectionGuard

logging.basicConfig(level=logging.INFO)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))


async def main() -> None:
    loop = asyncio.get_running_loop()
    ConnectionGuard().install_exception_handler(loop)
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, backlog=32)
    port = server.sockets[0].getsockname()[1]
    filler = []
    while True:  # every descriptor taken
        try:
            filler.append(socket.socket())
        except OSError:
            break
    clients = []
    for _ in range(8):  # connections waiting in the backlog, no descriptor left to accept
        filler.pop().close()
        sock = socket.socket()
        sock.connect(("127.0.0.1", port))
        clients.append(sock)
    await asyncio.sleep(0.3)  # the accepts fail; asyncio schedules its retries
    server.close()  # ... and the server closes before they fire
    await asyncio.sleep(1.5)
    print("done")


asyncio.run(main())
"""


def test_accept_retries_pending_when_the_server_closes_log_nothing() -> None:
    """At the descriptor limit asyncio retries a failed accept a second later, once per
    failed attempt; a server that closes meanwhile must not log a traceback per retry."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _ACCEPT_RETRIES_AFTER_CLOSE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "done" in run.stdout, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.count("cannot accept connections") == 1, run.stderr


# --- a stream per call: live state ends with the call -----------------------------------


def _short_calls(url: str, key: str, secret: str, n: int, concurrency: int = 16) -> None:
    """``n`` calls as Connect makes them: a stream each, a few fragments of PutMedia, then
    one reader of the recording."""
    import asyncio

    import aiohttp
    from botocore.credentials import Credentials as BotoCredentials

    from callstream.client.putmedia import put_media

    audio = connect_audio(3, fragment_ms=200)
    prefix = unique("call")
    kv = make_client(url, "kinesisvideo", key, secret)
    archived = make_client(url, "kinesis-video-archived-media", key, secret)
    creds = BotoCredentials(key, secret)

    async def main() -> None:
        gate = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as session:

            async def call(i: int) -> None:
                async with gate:
                    name = f"{prefix}-{i}"
                    await asyncio.to_thread(
                        kv.create_stream, StreamName=name, DataRetentionInHours=1
                    )
                    await put_media(
                        url,
                        audio.chunks,
                        stream_name=name,
                        credentials=creds,
                        region="us-east-1",
                        discover_endpoint=False,
                        session=session,
                    )

                    def read() -> None:
                        frags = archived.list_fragments(StreamName=name)["Fragments"]
                        assert len(frags) == 3
                        archived.get_media_for_fragment_list(
                            StreamName=name, Fragments=[f["FragmentNumber"] for f in frags]
                        )["Payload"].read()

                    await asyncio.to_thread(read)

            await asyncio.gather(*(call(i) for i in range(n)))

    asyncio.run(main())


def test_a_finished_call_leaves_no_live_state(kvs: Kvs) -> None:
    before = len(kvs.server.state.store.hub)
    _short_calls(kvs.url, ACCESS_KEY, SECRET_KEY, 40)
    wait_for(lambda: len(kvs.server.state.store.hub) <= before)


@pytest.mark.slow
def test_memory_returns_near_its_baseline_after_a_thousand_calls(tmp_path: Any) -> None:
    with ServeProcess(tmp_path / "data", "--memory-interval", "0.5") as server:
        _short_calls(server.url, KEY, SECRET, 20)  # warm up: first use of every code path
        baseline = server.rss_mb()
        _short_calls(server.url, KEY, SECRET, 1000)
        settled = server.settled_rss_mb(above=baseline + 15)
        log = server.stop()
    assert settled <= baseline + 15, (
        f"RSS {settled:.0f} MB after 1,000 calls, {baseline:.0f} before"
    )
    assert "Traceback" not in log, log
