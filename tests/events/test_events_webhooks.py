"""Webhooks: call events POSTed to a real HTTP receiver on a loopback port, in order, in
the EventBridge shape, signed; retried with backoff, resumed after restarts from a saved
cursor, never in the publisher's way; and configured by ``callstream serve`` flags."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botocore.credentials import Credentials

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.cli import signed_request
from callstream.events import Event, EventBus, encode, to_eventbridge, webhooks
from callstream.events.webhooks import (
    SECRET_ENV,
    SIGNATURE_HEADER,
    Backoff,
    Webhook,
    WebhookConfigError,
    WebhookRunner,
    load_webhooks,
    parse_webhook,
)

FAST = Backoff(min_s=0.01, max_s=0.05)
SECRET = b"webhook-secret"
CHIME = "Chime VoiceConnector Streaming Status"
ARN = "arn:aws:kinesisvideo:us-east-1:123456789012:stream/ChimeVoiceConnector-vc1-abc/1569388023478"


def streaming(i: int, status: str = "STARTED") -> Event:
    return Event.of(
        "VoiceConnectorStreamingStatus",
        time_ms=1_764_870_503_000 + i,
        StreamingStatus=status,
        VoiceConnectorId="vc1",
        TransactionId=f"t-{i}",
        CallId=f"call-{i}",
        Direction="Inbound",
        StreamARN=ARN,
        StartFragmentNumber="91343852333181432392682062626916362215787186434",
        StartTime=1_764_870_503_000,
        MediaType="audio/L16",
    )


def contact(i: int) -> Event:
    return Event.of("ContactStarted", ContactId=f"c-{i}", Channel="VOICE")


@dataclass
class Request:
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def cursor(self) -> int:
        return int(self.headers["X-Callstream-Cursor"])


Answer = Callable[[Request, int], Awaitable[int]]
"""The status to answer the n-th request (0-based) with; may wait."""


async def ok(request: Request, n: int) -> int:
    return 200


class Receiver:
    """A real aiohttp server on 127.0.0.1 recording every POST it gets."""

    def __init__(self, answer: Answer = ok, port: int = 0) -> None:
        self.answer = answer
        self.port = port
        self.requests: list[Request] = []
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        got = Request(await request.read(), dict(request.headers))
        n = len(self.requests)
        self.requests.append(got)
        status = await self.answer(got, n)
        headers = {"Retry-After": "0"} if status == 429 else {}
        return web.Response(status=status, text="busy" if status >= 300 else "", headers=headers)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def cursors(self) -> list[int]:
        return [r.cursor for r in self.requests]

    async def until(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)


async def start_runner(
    bus: EventBus, hook: Webhook, directory: Path
) -> tuple[WebhookRunner, asyncio.Task[None]]:
    runner = WebhookRunner(bus, hook, directory)
    start = await asyncio.to_thread(runner.position)
    return runner, asyncio.create_task(runner.run(start))


async def stop_runner(bus: EventBus, task: asyncio.Task[None]) -> None:
    bus.end_subscriptions()
    async with asyncio.timeout(20):
        await task


def verify(request: Request, secret: bytes = SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret, request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers[SIGNATURE_HEADER], expected)


# --- delivery ----------------------------------------------------------------------------


def test_events_reach_the_receiver_in_order_as_signed_eventbridge_events(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = await Receiver().start()
        with EventBus(tmp_path / "events") as bus:
            hook = Webhook(receiver.url, secret=SECRET, backoff=FAST)
            runner, task = await start_runner(bus, hook, tmp_path / "hooks")
            events = [streaming(1), contact(2), streaming(3, "ENDED")]
            cursors = [bus.publish(e) for e in events]
            await receiver.until(lambda: len(receiver.requests) == 3)
            assert receiver.cursors() == cursors
            for request, event, cursor in zip(receiver.requests, events, cursors, strict=True):
                assert verify(request)
                assert request.headers["Content-Type"] == "application/json"
                assert request.headers["X-Callstream-Event-Type"] == event.type
                expected = to_eventbridge(
                    event.with_cursor(cursor), account="123456789012", region="us-east-1"
                )
                assert request.json == expected
            first = receiver.requests[0].json
            assert first["detail-type"] == CHIME and first["source"] == "aws.chime"
            assert set(first) == {
                "version",
                "id",
                "detail-type",
                "source",
                "account",
                "time",
                "region",
                "resources",
                "detail",
            }
            assert first["detail"]["streamingStatus"] == "STARTED"
            assert first["detail"]["streamArn"] == ARN
            assert first["detail"]["startTime"] == "2025-12-04T17:48:23.000Z"
            assert first["detail"]["version"] == "0"
            assert receiver.requests[1].json["source"] == "aws.connect"
            await stop_runner(bus, task)
            assert (runner.delivered, runner.rejected, runner.retries) == (3, 0, 0)
            assert runner.cursor == cursors[-1]
        await receiver.stop()

    asyncio.run(main())


def test_5xx_answers_are_retried_with_backoff_and_one_log_line_per_state_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def flaky(request: Request, n: int) -> int:
        return 503 if n < 2 else 200

    async def main() -> None:
        receiver = await Receiver(flaky).start()
        with EventBus(tmp_path / "events") as bus:
            hook = Webhook(receiver.url, secret=SECRET, backoff=FAST)
            runner, task = await start_runner(bus, hook, tmp_path / "hooks")
            first, second = bus.publish(streaming(1)), bus.publish(streaming(2))
            await receiver.until(lambda: len(receiver.requests) == 4)
            await receiver.until(lambda: runner.cursor == second)
            assert receiver.cursors() == [first, first, first, second]
            assert all(verify(r) for r in receiver.requests)
            assert (runner.delivered, runner.retries, runner.state) == (2, 2, "up")
            assert "HTTP 503: busy" in runner.last_error
            await stop_runner(bus, task)
        await receiver.stop()

    with caplog.at_level(logging.INFO, logger="callstream.webhooks"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if r.name == "callstream.webhooks"]
    assert len(lines) == 2, lines
    assert "failing at cursor" in lines[0] and "HTTP 503" in lines[0]
    assert "recovered" in lines[1] and "after 2 failed attempts" in lines[1]


def test_408_and_429_are_retried_other_4xx_skip_the_event(tmp_path: Path) -> None:
    async def picky(request: Request, n: int) -> int:
        if n == 0:
            return 429  # with Retry-After: 0
        if n == 1:
            return 408
        return 400 if request.json["detail"]["callId"] == "call-2" else 200

    async def main() -> None:
        receiver = await Receiver(picky).start()
        with EventBus(tmp_path / "events") as bus:
            runner, task = await start_runner(
                bus, Webhook(receiver.url, backoff=FAST), tmp_path / "hooks"
            )
            cursors = [bus.publish(streaming(i)) for i in (1, 2, 3)]
            await receiver.until(lambda: runner.cursor == cursors[-1])
            # the rejected event was sent once and not again; the next one went on
            assert receiver.cursors() == [cursors[0]] * 3 + cursors[1:]
            assert (runner.delivered, runner.rejected, runner.retries) == (2, 1, 2)
            assert SIGNATURE_HEADER not in receiver.requests[0].headers  # no secret
            await stop_runner(bus, task)
        await receiver.stop()

    asyncio.run(main())


def test_a_receiver_that_is_down_then_up_misses_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        # a port held without listening: connections are refused, and no other test's
        # server can take it meanwhile
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        waiting = Receiver()
        with EventBus(tmp_path / "events") as bus:
            hook = Webhook(f"http://127.0.0.1:{port}/hook", backoff=FAST)
            runner, task = await start_runner(bus, hook, tmp_path / "hooks")
            cursors = [bus.publish(streaming(i)) for i in range(5)]
            await waiting.until(lambda: runner.retries >= 3)
            assert runner.state == "failing" and runner.delivered == 0
            assert "Connect" in runner.last_error or "refused" in runner.last_error.lower()
            holder.close()
            receiver = await Receiver(port=port).start()
            cursors.append(bus.publish(streaming(5)))
            await receiver.until(lambda: runner.cursor == cursors[-1])
            assert receiver.cursors() == cursors
            assert runner.state == "up"
            await stop_runner(bus, task)
            await receiver.stop()

    asyncio.run(main())


def test_a_restarted_runner_resumes_after_the_last_acknowledged_event(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"

    async def life(publish: list[Event], expect: int) -> tuple[list[int], list[int]]:
        receiver = await Receiver().start()
        with EventBus(tmp_path / "events") as bus:
            hook = Webhook(receiver.url, backoff=FAST, name="crm")  # the port changes
            runner, task = await start_runner(bus, hook, hooks)
            cursors = [bus.publish(e) for e in publish]
            await receiver.until(lambda: len(receiver.requests) >= expect)
            await receiver.until(lambda: runner.cursor == bus.last_cursor)
            await stop_runner(bus, task)
        await receiver.stop()
        return cursors, receiver.cursors()

    sent, got = asyncio.run(life([streaming(i) for i in range(3)], 3))
    assert got == sent
    # events published while no runner is running ...
    with EventBus(tmp_path / "events") as bus:
        missed = [bus.publish(streaming(i)) for i in (10, 11)]
    # ... are delivered after the restart, and none of the acknowledged ones again
    sent_after, got_after = asyncio.run(life([streaming(12)], 3))
    assert got_after == [*missed, *sent_after]
    (saved,) = hooks.glob("*.json")
    assert json.loads(saved.read_text())["Cursor"] == sent_after[-1]
    assert os.listdir(hooks) == [saved.name]  # no temporary file left behind
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_an_event_in_flight_when_the_runner_stops_is_sent_again(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"

    async def hang(request: Request, n: int) -> int:
        await asyncio.sleep(3600)
        return 200

    async def first() -> int:
        receiver = await Receiver(hang).start()
        with EventBus(tmp_path / "events") as bus:
            hook = Webhook(receiver.url, backoff=FAST, name="crm")
            _, task = await start_runner(bus, hook, hooks)
            cursor = bus.publish(streaming(1))
            await receiver.until(lambda: len(receiver.requests) == 1)
            task.cancel()  # a server stopping mid-delivery
            with pytest.raises(asyncio.CancelledError):
                await task
        await receiver.stop()
        return cursor

    async def second() -> list[int]:
        receiver = await Receiver().start()
        with EventBus(tmp_path / "events") as bus:
            hook = Webhook(receiver.url, backoff=FAST, name="crm")
            _, task = await start_runner(bus, hook, hooks)
            await receiver.until(lambda: len(receiver.requests) == 1)
            await stop_runner(bus, task)
        await receiver.stop()
        return receiver.cursors()

    cursor = asyncio.run(first())
    assert asyncio.run(second()) == [cursor]  # at least once


def test_a_failing_webhook_stops_with_the_bus_and_keeps_the_event(tmp_path: Path) -> None:
    async def down(request: Request, n: int) -> int:
        return 500

    async def main() -> None:
        receiver = await Receiver(down).start()
        with EventBus(tmp_path / "events") as bus:
            runner, task = await start_runner(
                bus, Webhook(receiver.url, backoff=FAST), tmp_path / "hooks"
            )
            start = runner.cursor
            bus.publish(streaming(1))
            await receiver.until(lambda: runner.retries >= 2)
            await stop_runner(bus, task)  # ends between two attempts, no cancel needed
            assert runner.delivered == 0 and runner.cursor == start
        await receiver.stop()
        (saved,) = (tmp_path / "hooks").glob("*.json")
        assert json.loads(saved.read_text())["Cursor"] == start

    asyncio.run(main())


def test_filters_select_by_detail_type_and_event_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "IDLE_SAVE_S", 0.05)  # the cursor passes filtered-out events

    async def main() -> None:
        chime = await Receiver().start()
        connect = await Receiver().start()
        wire = await Receiver().start()
        with EventBus(tmp_path / "events") as bus:
            hooks = [
                Webhook(chime.url, detail_types=(CHIME,), backoff=FAST),
                Webhook(
                    connect.url,
                    detail_types=("Amazon Connect Contact Event",),
                    event_types=("ContactStarted",),
                    backoff=FAST,
                ),
                Webhook(
                    wire.url, event_types=("StreamCreated",), format="callstream", backoff=FAST
                ),
            ]
            started = [await start_runner(bus, h, tmp_path / "hooks") for h in hooks]
            events = [
                contact(1),
                streaming(2),
                Event.of("StreamCreated", StreamARN=ARN, StreamName="s"),
                Event.of("ContactEnded", ContactId="c-1"),
                streaming(3, "FAILED"),
            ]
            cursors = [bus.publish(e) for e in events]
            await chime.until(lambda: len(chime.requests) == 2)
            await connect.until(lambda: len(connect.requests) == 1)
            await wire.until(lambda: len(wire.requests) == 1)
            for runner, _ in started:
                await chime.until(lambda r=runner: r.cursor == cursors[-1])  # type: ignore[misc]
            assert chime.cursors() == [cursors[1], cursors[4]]
            assert [r.json["detail"]["streamingStatus"] for r in chime.requests] == [
                "STARTED",
                "FAILED",
            ]
            assert connect.cursors() == [cursors[0]]
            assert connect.requests[0].json["detail"]["eventType"] == "INITIATED"
            # callstream's own wire form, for an event AWS has no counterpart of
            assert wire.requests[0].body == encode(events[2].with_cursor(cursors[2]))
            for _, task in started:
                await stop_runner(bus, task)
        for receiver in (chime, connect, wire):
            await receiver.stop()

    asyncio.run(main())


def test_the_publisher_never_waits_for_a_hanging_receiver_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def hang_first(request: Request, n: int) -> int:
            if n == 0:
                await release.wait()
            return 200

        receiver = await Receiver(hang_first).start()
        # live queues of 4 events: the webhook falls behind and is re-fed from the journal
        with EventBus(tmp_path / "events", queue_events=4) as bus:
            runner, task = await start_runner(
                bus, Webhook(receiver.url, backoff=FAST), tmp_path / "hooks"
            )
            first = bus.publish(streaming(0))
            await receiver.until(lambda: len(receiver.requests) == 1)

            def publish_many() -> list[int]:  # another thread: it must not block either
                return [bus.publish(streaming(i)) for i in range(1, 200)]

            cursors = [first, *await asyncio.to_thread(publish_many)]
            await bus.committed(cursors[-1])
            assert not release.is_set() and len(receiver.requests) == 1
            release.set()
            await receiver.until(lambda: runner.cursor == cursors[-1])
            assert receiver.cursors() == cursors
            await stop_runner(bus, task)
        await receiver.stop()

    asyncio.run(main())


def test_an_attempt_that_times_out_is_retried(tmp_path: Path) -> None:
    async def main() -> None:
        async def slow_first(request: Request, n: int) -> int:
            if n == 0:
                await asyncio.sleep(3600)
            return 200

        receiver = await Receiver(slow_first).start()
        with EventBus(tmp_path / "events") as bus:
            hook = Webhook(receiver.url, timeout_s=0.2, backoff=FAST)
            runner, task = await start_runner(bus, hook, tmp_path / "hooks")
            cursor = bus.publish(streaming(1))
            await receiver.until(lambda: runner.cursor == cursor)
            # (a loaded machine may time out a quick answer too: then it is sent once more)
            sent = receiver.cursors()
            assert len(sent) >= 2 and set(sent) == {cursor}
            assert (runner.delivered, runner.retries) == (1, len(sent) - 1)
            assert "no answer within 0.2 s" in runner.last_error
            await stop_runner(bus, task)
        await receiver.stop()

    asyncio.run(main())


def test_a_new_webhook_starts_with_new_events_and_a_new_journal_from_its_start(
    tmp_path: Path,
) -> None:
    hooks = tmp_path / "hooks"

    async def life(before: int, after: int) -> list[int]:
        receiver = await Receiver().start()
        with EventBus(tmp_path / "events") as bus:
            early = [bus.publish(streaming(i)) for i in range(before)]
            await bus.committed(early[-1])
            hook = Webhook(receiver.url, backoff=FAST, name="crm")
            runner, task = await start_runner(bus, hook, hooks)
            for i in range(after):
                bus.publish(contact(i))
            await receiver.until(lambda: runner.cursor == bus.last_cursor)
            await stop_runner(bus, task)
        await receiver.stop()
        return receiver.cursors()

    assert asyncio.run(life(3, 2)) == [4, 5]  # the 3 published before it existed: not sent
    shutil.rmtree(tmp_path / "events")  # a journal created anew: cursors start again at 1
    assert asyncio.run(life(2, 1)) == [1, 2, 3]


# --- configuration -----------------------------------------------------------------------


def test_webhook_flags_and_file_are_parsed_and_bad_ones_named(tmp_path: Path) -> None:
    hook = parse_webhook(
        "https://h.example:8443/in?x=1#detail-type=Chime VoiceConnector Streaming Status"
        "&format=callstream&timeout=2.5",
        secret="s",
    )
    assert hook.url == "https://h.example:8443/in?x=1"
    assert hook.detail_types == (CHIME,) and hook.format == "callstream"
    assert hook.timeout_s == 2.5 and hook.secret == b"s"
    assert hook.types == frozenset({"VoiceConnectorStreamingStatus"})
    both = parse_webhook("http://h/x#type=ContactStarted,ContactEnded&name=crm")
    assert both.types == frozenset({"ContactStarted", "ContactEnded"}) and both.key == "crm"
    assert parse_webhook("http://h/x").types is None and parse_webhook("http://h/x").secret is None
    assert parse_webhook("http://h/x").key != parse_webhook("http://h/y").key
    assert "secret" not in repr(parse_webhook("http://h/x", secret="hunter2")).lower()

    def refused(spec: str) -> str:
        with pytest.raises(WebhookConfigError) as err:
            parse_webhook(spec)
        return str(err.value)

    assert "not an http(s) URL" in refused("ftp://h/x")
    assert "not an http(s) URL" in refused("h/x")
    assert "detail-type 'Nope'" in refused("http://h/x#detail-type=Nope")
    assert "type 'Nope'" in refused("http://h/x#type=Nope")
    assert "unknown option 'colour'" in refused("http://h/x#colour=red")
    assert "format must be one of" in refused("http://h/x#format=xml")
    assert "timeout must be" in refused("http://h/x#timeout=0")
    assert "no event type has both" in refused(
        f"http://h/x#detail-type={CHIME}&type=ContactStarted"
    )

    config = tmp_path / "hooks.json"
    config.write_text(
        json.dumps(
            {
                "webhooks": [
                    {
                        "url": "https://lca.example/events",
                        "detail-type": [CHIME],
                        "secret": "abc",
                        "headers": {"Authorization": "Bearer t"},
                        "name": "lca",
                    },
                    {"url": "http://h/all", "type": "ContactStarted, ContactEnded"},
                ]
            }
        )
    )
    loaded = load_webhooks(["http://h/flag"], config, secret="env")
    assert [h.url for h in loaded] == [
        "http://h/flag",
        "https://lca.example/events",
        "http://h/all",
    ]
    assert loaded[0].secret == b"env" and loaded[1].secret == b"abc"
    assert loaded[1].headers == {"Authorization": "Bearer t"} and loaded[1].key == "lca"
    assert loaded[2].event_types == ("ContactStarted", "ContactEnded")

    def file_refused(data: object) -> str:
        config.write_text(json.dumps(data))
        with pytest.raises(WebhookConfigError) as err:
            load_webhooks([], config)
        return str(err.value)

    assert 'expected {"webhooks": [...]}' in file_refused([])
    assert "webhooks[0].url: required" in file_refused({"webhooks": [{}]})
    assert "webhooks[0]: unknown key 'Url'" in file_refused({"webhooks": [{"Url": "x"}]})
    assert "webhooks[0].headers" in file_refused(
        {"webhooks": [{"url": "http://h/", "headers": {"A": 1}}]}
    )
    assert "webhooks[0].name" in file_refused({"webhooks": [{"url": "http://h/", "name": "../x"}]})
    assert "configured twice" in file_refused({"webhooks": [{"url": "http://h/"}] * 2})
    config.write_text("{not json")
    with pytest.raises(WebhookConfigError, match="not JSON"):
        load_webhooks([], config)
    with pytest.raises(WebhookConfigError, match="No such file"):
        load_webhooks([], tmp_path / "absent.json")


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(min_s=0.5, max_s=60)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (8, 60.0), (500, 60.0)):
        for _ in range(20):
            assert ceiling / 2 <= backoff.delay(attempt) <= ceiling
    assert backoff.delay(1, retry_after=5) >= 5
    assert backoff.delay(1, retry_after=3600) <= 60


# --- inside the server -------------------------------------------------------------------


def test_the_server_runs_its_configured_webhooks(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    async def main() -> None:
        receiver = await Receiver().start()
        hook = Webhook(receiver.url, detail_types=(CHIME,), secret=SECRET, backoff=FAST)
        config = ServerConfig(region="eu-west-1", account_id="111122223333", webhooks=(hook,))
        server = await asyncio.to_thread(ServerThread(data_dir, config=config).start)
        try:
            bus = server.state.events
            bus.publish(contact(1))
            cursor = bus.publish(streaming(2))
            await receiver.until(lambda: len(receiver.requests) == 1)
            (request,) = receiver.requests
            assert verify(request) and request.cursor == cursor
            assert request.json["account"] == "111122223333"
            assert request.json["region"] == "eu-west-1"
        finally:
            await asyncio.to_thread(server.stop)
            await receiver.stop()
        (saved,) = (data_dir / "webhooks").glob("*.json")
        assert json.loads(saved.read_text())["Cursor"] >= cursor

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_callstream_serve_webhook_flags(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "callstream.cli", "serve", "--data-dir", str(tmp_path / "d")]
    bad = subprocess.run(
        [*argv, "--webhook", "http://h/x#detail-type=Nope"],
        capture_output=True,
        timeout=60,
    )
    assert bad.returncode == 1
    (line,) = bad.stderr.decode().splitlines()
    assert line.startswith("callstream serve: --webhook: detail-type 'Nope'")
    assert not (tmp_path / "d").exists()  # refused before anything was created

    async def main() -> None:
        receiver = await Receiver().start()
        port = _free_port()
        env = dict(
            os.environ,
            CALLSTREAM_ACCESS_KEY_ID="AKIDHOOK",
            CALLSTREAM_SECRET_ACCESS_KEY="hook-secret",
            **{SECRET_ENV: SECRET.decode()},
        )
        argv = [sys.executable, "-m", "callstream.cli", "serve", "--no-sip", "--port", str(port)]
        argv += ["--data-dir", str(tmp_path / "data")]
        argv += ["--webhook", f"{receiver.url}#detail-type={CHIME}"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            body = {"Events": [streaming(1).to_json() | {"Time": 1_764_870_503_000}]}
            del body["Events"][0]["Cursor"]
            status, answer = await asyncio.to_thread(
                signed_request,
                "POST",
                f"http://127.0.0.1:{port}/callstream/events",
                region="us-east-1",
                body=json.dumps(body).encode(),
                credentials=Credentials("AKIDHOOK", "hook-secret"),
            )
            assert status == 200, answer
            await receiver.until(lambda: len(receiver.requests) == 1)
            (request,) = receiver.requests
            assert verify(request)
            assert request.json["detail-type"] == CHIME
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
            await receiver.stop()

    asyncio.run(main())
