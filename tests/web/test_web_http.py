"""The web UI over plain HTTP (no browser): who gets in, what the login sets, the JSON,
audio and server-sent events the pages read, against a real server on real sockets."""

from __future__ import annotations

import http.client
import io
import json
import os
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_helpers import Client, LiveCall, non_loopback_address, put_audio, seed_call, seed_many

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, FailureLimiter, Sessions
from callstream.web.config import UiConfig, is_loopback, login_required

KEY, SECRET = "ui-key", "ui-secret"
ENV_CREDS = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
T0 = 1_790_000_000_000

PROTECTED = [
    "/ui/",
    "/ui/static/app.js",
    "/ui/api/session",
    "/ui/api/calls",
    "/ui/api/calls/seeded-1",
    "/ui/api/calls/seeded-1/transcript",
    "/ui/api/calls/seeded-1/transcript.txt",
    "/ui/api/calls/seeded-1/call.json",
    "/ui/api/calls/seeded-1/recording.wav",
    "/ui/api/streams",
    "/ui/api/streams/ui-stream",
    "/ui/api/streams/ui-stream/fragments",
    "/ui/api/streams/ui-stream/summary",
    "/ui/api/streams/ui-stream/audio.wav?start=0&end=1000",
    "/ui/api/events",
]


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A loopback server whose UI needs no login; one seeded call."""
    config = ServerConfig(credentials={KEY: SECRET})
    with ServerThread(tmp_path_factory.mktemp("ui-open"), config=config) as srv:
        assert srv.state.calls is not None
        seed_call(srv.state.calls, "seeded-1", T0)
        yield srv


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A loopback server whose UI always asks for a login."""
    config = ServerConfig(credentials={KEY: SECRET}, ui=UiConfig(login="always"))
    with ServerThread(tmp_path_factory.mktemp("ui-locked"), config=config) as srv:
        assert srv.state.calls is not None
        seed_call(srv.state.calls, "seeded-1", T0)
        yield srv


def login(client: Client, next_url: str = "/ui/#/streams") -> tuple[int, dict[str, str]]:
    status, _, _ = client.request("/ui/login")
    assert status == 200
    token = client.cookie(LOGIN_CSRF_COOKIE)
    assert token
    status, headers, _ = client.request(
        "/ui/login",
        form={"access_key": KEY, "secret": SECRET, "csrf": token, "next": next_url},
    )
    return status, headers


# --- who gets in ----------------------------------------------------------------------------
def test_root_redirects_to_the_ui_and_every_answer_carries_the_security_headers(
    open_server: ServerThread,
) -> None:
    client = Client(open_server.url)
    status, headers, _ = client.request("/")
    assert (status, headers["Location"]) == (302, "/ui/")
    status, headers, _ = client.request("/ui")
    assert (status, headers["Location"]) == (303, "/ui/")
    for path in ("/ui/", "/ui/api/calls", "/ui/static/app.js", "/ui/api/calls/nope", "/ui/login"):
        status, headers, _ = client.request(path)
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
    status, headers, body = client.request("/ui/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="static/app.js">' in body
    assert b"<script>" not in body and b"style=" not in body  # nothing inline for the CSP
    # the KVS API is untouched: still SigV4 everywhere else
    status, _, body = client.request("/listStreams", method="POST")
    assert status == 403 and b"MissingAuthenticationTokenException" in body


def test_on_loopback_the_ui_is_open_but_only_under_a_loopback_host_name(
    open_server: ServerThread,
) -> None:
    client = Client(open_server.url)
    status, _, body = client.request("/ui/api/calls")
    assert status == 200 and json.loads(body)["Calls"][0]["CallId"] == "seeded-1"
    status, _, body = client.request("/ui/api/session")
    assert json.loads(body)["LoginRequired"] is False
    # DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends its own Host
    status, _, body = client.request("/ui/api/calls", headers={"Host": "evil.example:8080"})
    assert status == 401 and b"seeded-1" not in body
    status, headers, _ = client.request("/ui/", headers={"Host": "evil.example"})
    assert status == 303 and headers["Location"].startswith("/ui/login")
    status, _, _ = client.request(
        "/ui/api/calls", headers={"Host": f"localhost:{open_server.port}"}
    )
    assert status == 200


def test_without_a_session_nothing_but_the_login_form_is_served(
    locked_server: ServerThread,
) -> None:
    client = Client(locked_server.url)
    for path in PROTECTED:
        status, headers, body = client.request(path)
        assert b"seeded-1" not in body and b"Outage" not in body, path
        if path.startswith("/ui/api/"):
            assert status == 401, path
            assert json.loads(body)["Error"] == "NotAuthorized"
        elif path == "/ui/":
            assert status == 303 and headers["Location"] == "/ui/login?next=%2Fui%2F"
        else:
            assert status == 401, path
    for public in ("/ui/login", "/ui/static/app.css", "/ui/static/favicon.svg"):
        assert client.request(public)[0] == 200, public
    # a forged cookie is no session
    client.jar.clear()
    status, _, _ = client.request(
        "/ui/api/calls", headers={"Cookie": f"{SESSION_COOKIE}=v1.eyJrIjoidWkta2V5In0.AAAA"}
    )
    assert status == 401


def test_login_sets_a_signed_httponly_strict_cookie_and_logout_needs_the_csrf_token(
    locked_server: ServerThread,
) -> None:
    client = Client(locked_server.url)
    status, headers = login(client)
    assert (status, headers["Location"]) == (303, "/ui/#/streams")
    cookie = headers["Set-Cookie"]
    assert f"{SESSION_COOKIE}=v1." in cookie
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/ui/", "Max-Age=43200", "expires="):
        assert attribute.lower() in cookie.lower(), (attribute, cookie)
    assert "secure" not in cookie.lower()  # plain http: a Secure cookie would not come back
    status, _, body = client.request("/ui/api/calls")
    assert status == 200 and json.loads(body)["Calls"][0]["CallId"] == "seeded-1"
    session = json.loads(client.request("/ui/api/session")[2])
    assert session["SignedIn"] and session["AccessKey"] == KEY and session["LoginRequired"]
    # logout: refused without the token, with another site's Origin, then done
    assert client.request("/ui/logout", method="POST")[0] == 403
    assert client.request("/ui/logout", method="POST", headers={"X-CSRF-Token": "nope"})[0] == 403
    status, _, _ = client.request(
        "/ui/logout",
        method="POST",
        headers={"X-CSRF-Token": session["Csrf"], "Origin": "http://evil.example"},
    )
    assert status == 403
    assert client.request("/ui/api/calls")[0] == 200  # still signed in
    status, headers, _ = client.request(
        "/ui/logout", method="POST", headers={"X-CSRF-Token": session["Csrf"]}
    )
    assert status == 200 and f'{SESSION_COOKIE}=""' in headers["Set-Cookie"]
    assert client.request("/ui/api/calls")[0] == 401
    # where a login leads stays inside the UI
    for elsewhere in (
        "//evil.example/",
        "https://evil.example/",
        "/ui\\@evil",
        "/callstream/calls",
    ):
        status, headers = login(Client(locked_server.url), elsewhere)
        assert (status, headers["Location"]) == (303, "/ui/"), elsewhere


def test_a_login_needs_the_right_secret_the_form_token_and_is_throttled(
    tmp_path: Path,
) -> None:
    config = ServerConfig(
        credentials={KEY: SECRET}, ui=UiConfig(login="always", max_login_failures=3)
    )
    with ServerThread(tmp_path, config=config) as srv:
        client = Client(srv.url)
        client.request("/ui/login")
        token = client.cookie(LOGIN_CSRF_COOKIE)
        assert token
        good = {"access_key": KEY, "secret": SECRET, "csrf": token, "next": "/ui/"}
        # no form token, a wrong one, another site's Origin: the form is refused
        status, _, body = client.request("/ui/login", form={**good, "csrf": ""})
        assert status == 403 and b"expired" in body
        status, _, _ = client.request("/ui/login", form={**good, "csrf": "x" * 32})
        assert status == 403
        status, _, _ = client.request(
            "/ui/login", form=good, headers={"Origin": "https://evil.example"}
        )
        assert status == 403
        assert client.cookie(SESSION_COOKIE) is None
        # wrong secret, unknown key: 401 with the form again
        # (each form carries a fresh token: the one its page set)
        for bad in ({"secret": "wrong"}, {"access_key": "nobody"}, {"secret": ""}):
            fresh = {**good, "csrf": client.cookie(LOGIN_CSRF_COOKIE) or ""}
            status, _, body = client.request("/ui/login", form={**fresh, **bad})
            assert status == 401 and b"Wrong access key or secret" in body
        # three failures: even the right secret waits now
        fresh = {**good, "csrf": client.cookie(LOGIN_CSRF_COOKIE) or ""}
        status, headers, body = client.request("/ui/login", form=fresh)
        assert status == 429 and int(headers["Retry-After"]) > 0
        assert client.cookie(SESSION_COOKIE) is None


def test_session_cookies_are_signed_expire_and_end_with_their_key(tmp_path: Path) -> None:
    creds = {KEY: SECRET}
    sessions = Sessions(tmp_path / "web" / "session.key", lambda: creds, lifetime_s=60)
    cookie, session = sessions.issue(KEY, now=1000.0)
    assert sessions.verify(cookie, now=1001.0) == session
    key_file = tmp_path / "web" / "session.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sessions.verify(cookie, now=1061.0) is None  # expired
    version, body, mac = cookie.split(".")
    assert sessions.verify(f"{version}.{body}.{mac[:-2]}AA", now=1001.0) is None
    assert sessions.verify(f"{version}.{body[:-2]}xx.{mac}", now=1001.0) is None
    assert sessions.verify("garbage", now=1001.0) is None
    assert sessions.verify(None) is None
    # the same key file signs for a restarted server; a new file ends every session
    again = Sessions(key_file, lambda: creds, lifetime_s=60)
    assert again.verify(cookie, now=1001.0) == session
    creds[KEY] = "rotated"
    assert sessions.verify(cookie, now=1001.0) is None  # the key's secret changed
    creds[KEY] = SECRET
    del creds[KEY]
    assert sessions.verify(cookie, now=1001.0) is None  # the key is gone
    creds[KEY] = SECRET
    key_file.unlink()
    fresh = Sessions(key_file, lambda: creds, lifetime_s=60)
    assert fresh.verify(cookie, now=1001.0) is None


def test_servers_creating_one_session_key_at_once_leave_one_whole_key(tmp_path: Path) -> None:
    key_file = tmp_path / "web" / "session.key"
    sessions = [Sessions(key_file, lambda: {KEY: SECRET}, lifetime_s=60) for _ in range(8)]
    start = threading.Barrier(len(sessions))
    errors: list[BaseException] = []

    def first_use(s: Sessions) -> None:
        try:
            start.wait()
            s.key()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=first_use, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert key_file.read_bytes() in {s.key() for s in sessions}
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert os.listdir(key_file.parent) == ["session.key"]


def test_failed_logins_are_counted_per_client_within_a_window() -> None:
    limiter = FailureLimiter(limit=2, window_s=10, max_clients=2)
    limiter.failed("a", now=0)
    assert limiter.blocked("a", now=1) == 0
    limiter.failed("a", now=1)
    assert limiter.blocked("a", now=2) == pytest.approx(8)
    assert limiter.blocked("b", now=2) == 0
    assert limiter.blocked("a", now=10.5) == 0  # the first failure left the window
    limiter.failed("b", now=3)
    limiter.failed("c", now=3)  # at most two clients kept: the oldest goes
    limiter.failed("a", now=11)
    limiter.succeeded("a")
    assert limiter.blocked("a", now=11) == 0


def test_when_a_login_is_required() -> None:
    creds = {KEY: SECRET}
    auto = UiConfig()
    for host in ("127.0.0.1", "::1", "localhost", "[::1]", "127.0.0.2"):
        assert is_loopback(host)
        assert not login_required(auto, listen_host=host, public_url=None, credentials=creds)
    for host in ("0.0.0.0", "", "::", "192.0.2.2", "example.com", None):
        assert not is_loopback(host)
        assert login_required(auto, listen_host=host, public_url=None, credentials=creds)
    assert login_required(
        auto, listen_host="127.0.0.1", public_url="https://kvs.example.com", credentials=creds
    )
    assert not login_required(
        auto, listen_host="127.0.0.1", public_url="http://localhost:8080", credentials=creds
    )
    assert login_required(
        UiConfig(login="always"), listen_host="127.0.0.1", public_url=None, credentials=creds
    )
    # no credentials: the API itself is open, so is the UI
    assert not login_required(auto, listen_host="0.0.0.0", public_url=None, credentials=None)


def test_a_server_listening_beyond_loopback_asks_for_a_login(tmp_path: Path) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to listen on")
    config = ServerConfig(credentials={KEY: SECRET})
    with ServerThread(tmp_path, host=address, config=config) as srv:
        assert srv.state.calls is not None
        seed_call(srv.state.calls, "seeded-1", T0)
        client = Client(srv.url)
        for path in PROTECTED:
            status, _, body = client.request(path)
            assert status in (401, 303), path
            assert b"seeded-1" not in body, path
        status, _ = login(client)
        assert status == 303
        status, _, body = client.request("/ui/api/calls")
        assert status == 200 and b"seeded-1" in body


def test_the_ui_can_be_turned_off(tmp_path: Path) -> None:
    with ServerThread(tmp_path, config=ServerConfig(credentials={KEY: SECRET}, ui=None)) as srv:
        client = Client(srv.url)
        for path in ("/", "/ui/", "/ui/api/calls"):
            status, _, body = client.request(path)
            assert status == 403 and b"MissingAuthenticationTokenException" in body, path


# --- what the pages read --------------------------------------------------------------------
def test_the_call_endpoints_serve_list_detail_transcript_and_downloads(
    open_server: ServerThread, tmp_path: Path
) -> None:
    client = Client(open_server.url)
    body = json.loads(client.request("/ui/api/calls?search=agent-7&flagged=1")[2])
    assert [c["CallId"] for c in body["Calls"]] == ["seeded-1"]
    assert body["Total"] >= 1 and body["ServerTime"] > T0
    row = body["Calls"][0]
    assert "ABUSIVE_CALLER" in row["Flags"] and row["Categories"] == ["Escalation", "Outage"]
    assert json.loads(client.request("/ui/api/calls?search=nobody")[2])["Calls"] == []
    status, _, err = client.request("/ui/api/calls?status=BOGUS")
    assert status == 400 and json.loads(err)["Error"] == "InvalidArgumentException"
    status, _, err = client.request("/ui/api/calls?next=%%%")
    assert status == 400

    detail = json.loads(client.request("/ui/api/calls/seeded-1")[2])
    assert detail["HasRecording"] is True and detail["Call"]["CallId"] == "seeded-1"
    transcript = json.loads(client.request("/ui/api/calls/seeded-1/transcript")[2])
    assert len(transcript["Segments"]) == 5
    (alert,) = transcript["Alerts"]
    assert alert["AlertType"] == "ABUSIVE_CALLER"
    assert {e["Term"] for e in alert["Evidence"]} >= {"Shut up", "know where you live"}
    assert transcript["Categories"]["Outage"] == [
        {"BeginOffsetMillis": 500, "EndOffsetMillis": 4000}
    ]
    assert isinstance(transcript["Cursor"], int)

    status, headers, text = client.request("/ui/api/calls/seeded-1/transcript.txt")
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    lines = text.decode().splitlines()
    assert lines[0].startswith("[00:00] CALLER: Hello") and len(lines) == 5
    status, headers, export = client.request("/ui/api/calls/seeded-1/call.json")
    assert status == 200 and json.loads(export)["CallId"] == "seeded-1"
    assert 'filename="seeded-1.json"' in headers["Content-Disposition"]

    status, headers, wav = client.request("/ui/api/calls/seeded-1/recording.wav")
    assert status == 200 and headers["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
    status, headers, part = client.request(
        "/ui/api/calls/seeded-1/recording.wav", headers={"Range": "bytes=1000-1999"}
    )
    assert status == 206 and part == wav[1000:2000]
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(wav)}"
    status, headers, _ = client.request("/ui/api/calls/seeded-1/recording.wav?download=1")
    assert 'filename="seeded-1.wav"' in headers["Content-Disposition"]

    for missing in ("/ui/api/calls/nope", "/ui/api/calls/nope/transcript"):
        status, _, err = client.request(missing)
        assert status == 404 and json.loads(err)["Error"] == "ResourceNotFoundException"


def test_the_call_list_pages_through_many_calls_newest_first(tmp_path: Path) -> None:
    with ServerThread(tmp_path, config=ServerConfig(credentials={KEY: SECRET})) as srv:
        assert srv.state.calls is not None
        seed_many(srv.state.calls, 120, T0)
        client = Client(srv.url)
        seen: list[str] = []
        token = ""
        while True:
            page = json.loads(client.request(f"/ui/api/calls?limit=50&next={token}")[2])
            seen += [c["CallId"] for c in page["Calls"]]
            if "NextToken" not in page:
                break
            token = page["NextToken"]
        assert seen == [f"bulk-{i:05d}" for i in range(120)]
        assert page["Total"] == 120


def test_the_stream_endpoints_show_fragments_gaps_and_serve_a_range_as_wav(
    open_server: ServerThread, tmp_path: Path
) -> None:
    import os

    from web_helpers import stereo_recording

    from callstream.media.wav import parse_wav

    open_server.run(
        open_server.store.create_stream("ui-stream", data_retention_hours=24, tags={"team": "qa"})
    )
    wav = stereo_recording(tmp_path / "a.wav", [("CALLER", 0, 3, ""), ("AGENT", 3, 6, "")], 6)
    env = {**os.environ, **ENV_CREDS}
    put_audio(open_server, "ui-stream", wav, T0, tags={"ContactId": "c-1"}, env=env)
    put_audio(open_server, "ui-stream", wav, T0 + 10_000, tags={"ContactId": "c-1"}, env=env)
    client = Client(open_server.url)

    streams = json.loads(client.request("/ui/api/streams")[2])["Streams"]
    (info,) = [s for s in streams if s["StreamName"] == "ui-stream"]
    assert info["DataRetentionInHours"] == 24 and info["Tags"] == {"team": "qa"}
    assert info["KmsKeyId"].startswith("arn:aws:kms:")

    summary = json.loads(client.request("/ui/api/streams/ui-stream/summary")[2])
    assert (summary["Count"], summary["Producer"], summary["Truncated"]) == (12, "CONNECT", False)
    assert summary["First"]["ProducerTimestamp"] == T0
    assert summary["Last"]["ProducerTimestamp"] == T0 + 15_000
    view = json.loads(client.request("/ui/api/streams/ui-stream/fragments")[2])
    assert summary["Bytes"] == view["Bytes"] == sum(f["Size"] for f in view["Fragments"])
    assert view["Count"] == 12 and view["Producer"] == "CONNECT"
    assert view["Tags"]["ContactId"] == "c-1"
    assert [t["Name"] for t in view["Tracks"]] == ["AUDIO_FROM_CUSTOMER", "AUDIO_TO_CUSTOMER"]
    # (a fragment's duration runs to its last frame's start: 980 ms of 20 ms frames)
    assert [s[:3] for s in view["Spans"]] == [[T0, T0 + 5980, 6], [T0 + 10_000, T0 + 15_980, 6]]
    assert view["Gaps"] == [[T0 + 5980, T0 + 10_000]]
    assert view["Start"] == T0 and view["End"] == T0 + 15_980
    narrow = json.loads(
        client.request(f"/ui/api/streams/ui-stream/fragments?start={T0 + 2500}&end={T0 + 4000}")[2]
    )
    assert [f["ProducerTimestamp"] for f in narrow["Fragments"]] == [
        T0 + 2000,
        T0 + 3000,
        T0 + 4000,
    ]

    path = f"/ui/api/streams/ui-stream/audio.wav?start={T0 + 2000}&end={T0 + 12_000}"
    status, headers, data = client.request(path)
    assert status == 200 and headers["Accept-Ranges"] == "bytes"
    audio = parse_wav(data)
    # 4 s before the gap, 4 s of silence for it, 2 s after: time stays true
    assert (audio.channels, audio.rate) == (2, 8000)
    assert audio.n_frames == 10 * 8000
    assert abs(audio.samples[8000:16000, 1]).max() > 1000  # the agent's tone, right channel
    assert abs(audio.samples[5 * 8000 : 7 * 8000]).max() == 0  # inside the gap
    # the command the page shows for that range gives the same audio
    import subprocess
    import sys
    from datetime import UTC, datetime

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")

    out = tmp_path / "cli.wav"
    done = subprocess.run(
        [sys.executable, "-m", "callstream.cli", "get-audio", "--stream", "ui-stream",
         "--endpoint-url", open_server.url, "--start-timestamp", iso(T0 + 2000),
         "--stop-timestamp", iso(T0 + 12_000), "--all-contacts", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data
    status, headers, part = client.request(path, headers={"Range": "bytes=44-143"})
    assert status == 206 and part == data[44:144]
    status, _, _ = client.request(path, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416
    status, headers, _ = client.request(path + "&download=1")
    assert "attachment" in headers["Content-Disposition"]

    for bad, code in (
        ("/ui/api/streams/ui-stream/audio.wav", 400),
        (f"/ui/api/streams/ui-stream/audio.wav?start={T0}&end={T0}", 400),
        (f"/ui/api/streams/ui-stream/audio.wav?start={T0}&end={T0 + 7_200_000}", 400),
        ("/ui/api/streams/ui-stream/audio.wav?start=x&end=1", 400),
        (f"/ui/api/streams/ui-stream/audio.wav?start={T0 - 600_000}&end={T0 - 300_000}", 404),
        ("/ui/api/streams/nope/fragments", 404),
    ):
        status, _, body = client.request(bad)
        assert status == code, (bad, body)
        assert "Message" in json.loads(body)


def _sse_events(conn: http.client.HTTPResponse, want: int, timeout: float) -> list[tuple[str, str]]:
    """Read server-sent events until ``want`` of them (kind, data) arrived."""
    found: list[tuple[str, str]] = []
    kind = data = ""
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        line = conn.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            found.append((kind, data))
            kind = data = ""
    return found


def test_live_events_bring_rows_transcript_segments_and_alerts(open_server: ServerThread) -> None:
    host, port = "127.0.0.1", open_server.port
    everything = http.client.HTTPConnection(host, port, timeout=20)
    everything.request("GET", "/ui/api/events")
    listing = everything.getresponse()
    assert listing.status == 200 and listing.headers["Content-Type"] == "text/event-stream"
    one = http.client.HTTPConnection(host, port, timeout=20)
    one.request("GET", "/ui/api/events?call=live-1")
    follow = one.getresponse()
    assert listing.readline().startswith(b": callstream live")
    assert follow.readline().startswith(b": callstream live")
    call = LiveCall(open_server, "live-1", int(time.time() * 1000))
    call.say(0)
    call.say(2, partial_first=False)
    call.alert()
    kinds = [k for k, _ in _sse_events(follow, 6, 20)]
    assert kinds[:3] == ["CallAnalyticsStarted", "TranscriptSegment", "TranscriptSegment"]
    assert "CategoryMatched" in kinds and "CallAlert" in kinds
    seen = _sse_events(listing, 2, 20)
    rows = [json.loads(d) for k, d in seen if k == "row"]
    alerts = [json.loads(d) for k, d in seen if k == "CallAlert"]
    assert alerts and alerts[0]["CallId"] == "live-1"
    assert not [k for k, _ in seen if k == "TranscriptSegment"]  # the list gets rows only
    more = _sse_events(listing, 1, 5) if not rows else []
    rows += [json.loads(d) for k, d in more if k == "row"]
    assert rows[-1]["CallId"] == "live-1" and rows[-1]["Flags"] == ["ABUSIVE_CALLER"]
    everything.close()
    one.close()


def test_callstream_serve_mounts_the_ui_and_takes_its_flags(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from process_helpers import ServeProcess

    for args, root, session in (
        ((), 302, 200),
        (("--ui-login", "always"), 302, 401),
        (("--ui", "off"), 403, 403),
    ):
        srv = ServeProcess(tmp_path / "-".join(args or ("default",)), "--analytics", "off", *args)
        try:
            client = Client(srv.url)
            assert client.request("/")[0] == root, args
            status, _, body = client.request("/ui/api/session")
            assert status == session, args
            if status == 200:
                assert json.loads(body)["LoginRequired"] is False
        finally:
            srv.proc.terminate()
            out, _ = srv.proc.communicate(timeout=30)
        assert (b"web UI: http://127.0.0.1:" in out) == ("off" not in args), out
