"""The web UI in a real headless Chromium (Debian's ``chromium`` driven by playwright):
the call list with its filters, paging and live rows, a call's live transcript, alerts,
charts and recording, the stream browser, the login form, narrow windows and the
keyboard. Calls are seeded straight into the server's call store (and their live
events published on its bus), so these tests need no speech recogniser; the end-to-end
test with real speech is ``test_web_live_call.py``. Screenshots go to
``$TMPDIR/callstream-ui-artifacts`` (``CALLSTREAM_UI_ARTIFACTS`` to move them)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_helpers import (
    SCRIPT,
    Browser,
    LiveCall,
    artifact,
    chromium,
    need_browser,
    put_audio,
    seed_call,
    seed_many,
    segment_event,
    stereo_recording,
)

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.web.config import UiConfig

KEY, SECRET = "ui-key", "ui-secret"
T0 = 1_790_000_000_000
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    need_browser()
    with chromium() as b:
        yield b


@pytest.fixture(autouse=True)
def no_console_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every browser test ends without console errors or uncaught exceptions."""
    if "browser" not in request.fixturenames:
        yield
        return
    b: Browser = request.getfixturevalue("browser")
    b.errors.clear()
    yield
    assert b.errors == []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A loopback server (no login) with 120 listed calls, one full call and a stream
    with a gap; tests only read it."""
    need_browser()
    root = tmp_path_factory.mktemp("ui-browser")
    with ServerThread(root, config=ServerConfig(credentials={KEY: SECRET})) as srv:
        calls = srv.state.calls
        assert calls is not None
        seed_many(calls, 120, T0 - 60_000)
        seed_call(calls, "seeded-1", T0)
        srv.run(srv.store.create_stream("ui-stream", data_retention_hours=24, tags={"team": "qa"}))
        wav = stereo_recording(root / "a.wav", SCRIPT, 18)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
        put_audio(srv, "ui-stream", wav, T0, tags={"ContactId": "seeded-1"}, env=env)
        put_audio(srv, "ui-stream", wav, T0 + 25_000, tags={"ContactId": "seeded-1"}, env=env)
        yield srv


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A loopback server whose calls the tests drive live (each test its own call, the
    newest when it starts)."""
    need_browser()
    root = tmp_path_factory.mktemp("ui-live")
    with ServerThread(root, config=ServerConfig(credentials={KEY: SECRET})) as srv:
        assert srv.state.calls is not None
        seed_call(srv.state.calls, "seeded-1", T0)
        yield srv


def now_ms() -> int:
    return int(time.time() * 1000)


def rows(page: Any) -> list[str]:
    return list(
        page.locator("#calls-table tbody tr").evaluate_all("rs => rs.map(r => r.dataset.callId)")
    )


def wait_rows(page: Any, first: str | None = None, count: int | None = None) -> None:
    page.wait_for_function(
        "([first, count]) => { const rs = document.querySelectorAll('#calls-table tbody tr');"
        " return rs.length > 0 && (!first || rs[0].dataset.callId === first)"
        " && (count === null || rs.length === count); }",
        arg=[first, count],
        timeout=WAIT_MS,
    )


# --- the call list ----------------------------------------------------------------------------
def test_the_call_list_shows_every_column_and_filters_searches_and_pages_on_the_server(
    server: ServerThread, browser: Browser
) -> None:
    page = browser.page()
    page.goto(server.url + "/")
    assert page.url.endswith("/ui/")
    wait_rows(page, "seeded-1", 50)
    headers = page.locator("#calls-table thead th").all_inner_texts()
    assert [h.lower() for h in headers] == [
        "call id", "source", "started", "caller number", "agent", "status", "duration",
        "caller sentiment", "agent sentiment", "categories", "abusive",
    ]  # fmt: skip
    first = page.locator("#calls-table tbody tr").first
    cells = first.locator("td").all_inner_texts()
    assert cells[0] == "seeded-1" and cells[1] == "Connect" and cells[3] == "+15550100"
    assert cells[4] == "agent-7" and cells[5] == "ENDED" and cells[6] == "0:18"
    assert cells[7].startswith("-1.2") and "↑" in cells[7]  # caller sentiment, trend up
    assert "Escalation" in cells[9] and "Outage" in cells[9] and "Abusive" in cells[10]
    assert "flagged" in (first.get_attribute("class") or "")
    assert page.locator("#call-total").inner_text() == "121 calls stored"
    page.screenshot(path=str(artifact("call-list.png")))

    # paging: the server's pages, newest first, back and forth
    page.click("#page-older")
    wait_rows(page, "bulk-00049", 50)
    page.click("#page-older")
    wait_rows(page, "bulk-00099", 21)
    assert page.locator("#page-older").is_disabled()
    page.click("#page-newer")
    wait_rows(page, "bulk-00049", 50)

    # search (debounced as typed), status, the abusive-only switch
    page.fill("#call-search", "agent-36")
    wait_rows(page, "bulk-00036")
    assert all(r in ("bulk-00036", "bulk-00073", "bulk-00110") for r in rows(page))
    assert "search=agent-36" in page.url
    page.fill("#call-search", "")
    page.check("#call-flagged")
    wait_rows(page, "seeded-1", 3)
    assert rows(page) == ["seeded-1", "bulk-00000", "bulk-00097"]
    page.select_option("#call-status", "TRANSCRIBING")
    page.wait_for_selector("#calls-message:has-text('No calls match')", timeout=WAIT_MS)
    page.close()


def test_new_calls_appear_and_their_rows_update_live_with_an_alert(
    live_server: ServerThread, browser: Browser
) -> None:
    server = live_server
    page = browser.page()
    page.goto(server.url + "/ui/#/calls")
    wait_rows(page)
    page.wait_for_selector("#live-status[data-state='live']", timeout=WAIT_MS)
    call = LiveCall(server, "live-list-1", now_ms())  # the newest call
    wait_rows(page, "live-list-1")
    row = page.locator("tr[data-call-id='live-list-1']")
    call.say(0)
    page.wait_for_function(
        "() => document.querySelector(\"tr[data-call-id='live-list-1'] .col-status\")"
        ".textContent === 'TRANSCRIBING'",
        timeout=WAIT_MS,
    )
    assert "Outage" in row.locator(".col-categories").inner_text()
    call.say(2, partial_first=False)
    call.alert()
    page.wait_for_selector("tr.flagged[data-call-id='live-list-1']", timeout=WAIT_MS)
    toast = page.locator(".toast", has_text="live-list-1")
    toast.wait_for(timeout=WAIT_MS)
    assert "Abusive caller" in toast.inner_text() and "Shut up" in toast.inner_text()
    page.screenshot(path=str(artifact("call-list-live.png")))
    call.end()
    page.wait_for_function(
        "() => document.querySelector(\"tr[data-call-id='live-list-1'] .col-status\")"
        ".textContent === 'ENDED'",
        timeout=WAIT_MS,
    )
    assert row.locator(".col-duration").inner_text() == "0:18"
    assert row.locator(".col-caller-sent").inner_text().startswith("-1.2")
    toast.locator("button.close").click()
    assert page.locator(".toast", has_text="live-list-1").count() == 0

    # with "abusive only" on, a new call joins the list once it is flagged
    page.check("#call-flagged")
    wait_rows(page, "live-list-1")
    second = LiveCall(server, "live-list-2", now_ms())
    second.say(0)
    second.say(2, partial_first=False)
    assert "live-list-2" not in rows(page)
    second.alert()
    wait_rows(page, "live-list-2")
    assert rows(page)[:2] == ["live-list-2", "live-list-1"]
    second.end()
    page.close()


def test_a_call_another_cluster_node_analysed_names_that_node(
    live_server: ServerThread, browser: Browser
) -> None:
    from callstream.analytics.callstore import CallRow

    calls = live_server.state.calls
    assert calls is not None
    started = now_ms()
    calls.upsert(
        CallRow("far-call", "VOICE_CONNECTOR", "ENDED", started, started, ended_ms=started,
                duration_s=12.0, node="node-b")
    )  # fmt: skip
    page = browser.page()
    page.goto(live_server.url + "/ui/#/calls")
    wait_rows(page, "far-call")
    source = page.locator("tr[data-call-id='far-call'] td").nth(1).inner_text()
    assert "Voice connector" in source and "node-b" in source
    page.goto(live_server.url + "/ui/#/calls/far-call")
    page.wait_for_selector("#player:has-text('node-b')", timeout=WAIT_MS)
    assert "cluster node node-b" in page.locator("#player").inner_text()
    page.close()


# --- a call -----------------------------------------------------------------------------------
def test_a_live_transcript_grows_replaces_partials_and_follows_until_the_reader_scrolls_up(
    live_server: ServerThread, browser: Browser
) -> None:
    server = live_server
    call = LiveCall(server, "live-detail-1", now_ms())
    page = browser.page(width=1280, height=700)
    page.goto(server.url + "/ui/#/calls/live-detail-1")
    page.wait_for_selector("#call-id:has-text('live-detail-1')", timeout=WAIT_MS)
    assert page.locator("#transcript li").count() == 0
    page.wait_for_selector("#live-status[data-state='live']", timeout=WAIT_MS)
    time.sleep(0.3)  # the call's own event stream opens after the transcript loads

    seg = call.export["Segments"][0]
    call.publish(segment_event(call.call_id, dict(seg, Transcript="Hello, I have"), partial=True))
    partial = page.locator(f"li[data-sid='{seg['SegmentId']}']")
    partial.wait_for(timeout=WAIT_MS)
    page.wait_for_selector(f"li.partial[data-sid='{seg['SegmentId']}']", timeout=WAIT_MS)
    assert partial.locator(".text").inner_text() == "Hello, I have"
    call.say(0, partial_first=False)  # the final replaces the partial in place
    page.wait_for_selector(f"li.final[data-sid='{seg['SegmentId']}']", timeout=WAIT_MS)
    assert page.locator("#transcript li").count() == 1
    assert partial.locator(".text").inner_text() == seg["Transcript"]
    assert "Outage" in partial.inner_text()  # the category matched on it
    assert "categorized" in (partial.get_attribute("class") or "")
    call.say(1)
    page.wait_for_function("() => document.querySelectorAll('#transcript li.final').length === 2")
    assert page.locator("#transcript li").nth(1).get_attribute("class") == "seg agent final"

    # enough lines to scroll: the view follows the newest one...
    for i in range(25):
        call.line(
            "AGENT" if i % 2 else "CALLER", 20 + i * 2, 21 + i * 2, f"Line number {i} of the call."
        )
    page.wait_for_function("() => document.querySelectorAll('#transcript li').length === 27")
    at_bottom = (
        "() => { const b = document.getElementById('transcript-box');"
        " return b.scrollHeight > b.clientHeight && b.scrollTop + b.clientHeight >= b.scrollHeight - 2; }"
    )
    page.wait_for_function(at_bottom, timeout=WAIT_MS)
    # ...until the reader scrolls up: then it stays put and offers to follow again
    page.locator("#transcript-box").hover()
    page.mouse.wheel(0, -5000)
    page.wait_for_function("() => document.getElementById('transcript-box').scrollTop === 0")
    call.say(2)
    call.alert()
    page.wait_for_selector("#jump-live:visible", timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelectorAll('#transcript li').length === 28")
    time.sleep(0.3)
    assert page.evaluate("document.getElementById('transcript-box').scrollTop") == 0
    page.click("#jump-live")
    page.wait_for_function(at_bottom, timeout=WAIT_MS)
    assert page.locator("#jump-live").is_hidden()

    # the alert, with its evidence marked in the abusive line
    pill = page.locator("#call-alerts .alert-pill")
    pill.wait_for(timeout=WAIT_MS)
    assert "Abusive caller" in pill.inner_text() and "know where you live" in pill.inner_text()
    abusive = page.locator("li.abusive")
    assert abusive.count() == 1 and "Shut up" in abusive.inner_text()
    assert set(abusive.locator("mark.abuse").all_inner_texts()) >= {
        "Shut up",
        "know where you live",
    }
    assert "INSULT" in abusive.inner_text() and "THREAT" in abusive.inner_text()
    page.wait_for_function(
        "() => document.getElementById('call-id').closest('h1').textContent.includes('TRANSCRIBING')",
        timeout=WAIT_MS,
    )
    # sentiment charts: one dot per final turn of each channel
    page.wait_for_function(
        "() => document.querySelectorAll('.chart-caller circle.dot').length === 15",
        timeout=WAIT_MS,
    )
    assert page.locator(".chart-agent circle.dot").count() == 13
    assert "The recording is ready when the call ends" in page.locator("#player").inner_text()
    page.screenshot(path=str(artifact("call-detail-live.png")), full_page=True)

    call.end()
    page.wait_for_selector("#recording", timeout=WAIT_MS)
    page.wait_for_selector("#talk-time", timeout=WAIT_MS)
    assert "ENDED" in page.locator("h1").inner_text()
    # the export names the words that matched
    page.wait_for_selector(f"li[data-sid='{seg['SegmentId']}'] mark.category", timeout=WAIT_MS)
    assert partial.locator("mark.category").inner_text() == "not working"
    page.close()


def test_the_recording_plays_seeks_from_a_clicked_line_and_downloads(
    server: ServerThread, browser: Browser
) -> None:
    page = browser.page()
    page.goto(server.url + "/ui/#/calls/seeded-1")
    page.wait_for_selector("#recording", timeout=WAIT_MS)
    page.wait_for_function("() => document.querySelectorAll('#transcript li').length === 5")
    page.wait_for_function("() => document.getElementById('recording').readyState >= 1")
    assert page.evaluate("document.getElementById('recording').duration") == pytest.approx(
        18.5, abs=0.1
    )
    page.locator("li[data-sid='ch_1-11.600']").click()
    page.wait_for_function(
        "() => { const a = document.getElementById('recording');"
        " return !a.paused && a.currentTime > 11.9; }",
        timeout=WAIT_MS,
    )
    # it keeps playing: the time advances
    before = page.evaluate("document.getElementById('recording').currentTime")
    page.wait_for_function(
        f"() => document.getElementById('recording').currentTime > {before} + 0.3",
        timeout=WAIT_MS,
    )
    # an alert's evidence seeks too
    page.locator("#call-alerts button.evidence").first.click()
    page.wait_for_function(
        "() => { const t = document.getElementById('recording').currentTime; return t >= 8 && t < 10; }",
        timeout=WAIT_MS,
    )
    page.evaluate("document.getElementById('recording').pause()")
    page.screenshot(path=str(artifact("call-detail.png")), full_page=True)

    links = {a.inner_text(): a.get_attribute("href") for a in page.locator("#downloads a").all()}
    assert set(links) == {"WAV", "JSON", "Transcript"}
    base = server.url + "/ui/"
    wav = page.request.get(base + links["WAV"])
    assert wav.status == 200 and wav.headers["content-type"] == "audio/wav"
    assert wav.body()[:4] == b"RIFF"
    export = page.request.get(base + links["JSON"]).json()
    assert export["CallId"] == "seeded-1"
    text = page.request.get(base + links["Transcript"]).text()
    assert (
        text.splitlines()[2] == "[00:08] CALLER: Shut up you stupid idiot, I know where you live."
    )
    page.close()


def test_the_keyboard_reaches_calls_and_lines_and_narrow_windows_keep_everything(
    server: ServerThread, browser: Browser
) -> None:
    page = browser.page(width=400, height=800)
    page.goto(server.url + "/ui/#/calls")
    wait_rows(page, "seeded-1")
    # no sideways scrolling: the table turns into cards
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    label = page.evaluate(
        "getComputedStyle(document.querySelector('#calls-table td.col-agent'), '::before').content"
    )
    assert label == '"Agent"'
    page.screenshot(path=str(artifact("narrow-call-list.png")))
    # Tab through the header and filters to the first call, Enter opens it
    page.focus("#call-flagged")
    for _ in range(3):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('call-link')"):
            break
    assert page.evaluate("document.activeElement.textContent") == "seeded-1"
    page.keyboard.press("Enter")
    page.wait_for_selector("#transcript li", timeout=WAIT_MS)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    first = page.locator("#transcript li").first
    first.focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.sid") == "ch_1-4.600"
    page.wait_for_function("() => document.getElementById('recording').readyState >= 1")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('recording').currentTime >= 4.6", timeout=WAIT_MS
    )
    page.evaluate("document.getElementById('recording').pause()")
    page.screenshot(path=str(artifact("narrow-call-detail.png")), full_page=True)
    page.close()


# --- streams ----------------------------------------------------------------------------------
def test_the_stream_browser_shows_fragments_with_gaps_and_plays_a_chosen_range(
    server: ServerThread, browser: Browser
) -> None:
    page = browser.page()
    page.goto(server.url + "/ui/#/streams")
    page.wait_for_selector("#streams-table a:has-text('ui-stream')", timeout=WAIT_MS)
    row = page.locator("#streams-table tbody tr", has_text="ui-stream")
    page.wait_for_function(
        "() => document.querySelector(\"tr[data-stream='ui-stream'] .producer\").textContent"
        " !== '…'",
        timeout=WAIT_MS,
    )
    text = row.inner_text()
    assert "24 h" in text and "team=qa" in text and "alias/aws/kinesisvideo" in text
    assert "36 fragments" in text and "Amazon Connect contact" in text
    row.locator("a").click()
    page.wait_for_selector("#timeline", timeout=WAIT_MS)
    info = page.locator("#stream-info").inner_text()
    assert "Amazon Connect contact" in info and "ContactId=seeded-1" in info
    assert "AUDIO_FROM_CUSTOMER" in info and "team=qa" in info
    assert page.locator("#timeline rect.span").count() == 2
    assert page.locator("#timeline rect.gap").count() == 1
    assert page.locator("#fragments-table tr.fragment").count() == 36
    gap = page.locator("#fragments-table tr.gap-row")
    assert gap.count() == 1 and "gap of 7.0 s" in gap.inner_text()
    assert "36 fragments" in page.locator("#fragment-stats").inner_text()
    command = page.locator("#get-audio-command").inner_text()
    assert command.startswith(
        "callstream get-audio --stream ui-stream --endpoint-url " + server.url
    )
    assert "--start-timestamp 2026-09-21T" in command and "--all-contacts" in command
    page.screenshot(path=str(artifact("stream.png")))

    # drag across the second half of the timeline: the range, player and command follow
    box = page.locator("#timeline").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 3
    page.mouse.move(box["x"] + box["width"] * 0.62, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=5)
    page.mouse.up()
    page.wait_for_function(
        f"() => document.getElementById('get-audio-command').textContent !== {command!r}"
    )
    src = page.get_attribute("#range-audio", "src") or ""
    start = int(src.split("start=")[1].split("&")[0])
    end = int(src.split("end=")[1].split("&")[0])
    assert T0 + 25_000 < start < end < T0 + 43_000
    page.locator("#range-audio").evaluate("a => a.play()")
    page.wait_for_function(
        "() => document.getElementById('range-audio').currentTime > 0.5", timeout=WAIT_MS
    )
    page.locator("#range-audio").evaluate("a => a.pause()")
    wav = page.request.get(
        server.url + "/ui/" + (page.get_attribute("#range-download", "href") or "")
    )
    assert wav.status == 200 and wav.body()[:4] == b"RIFF"
    assert "attachment" in wav.headers["content-disposition"]
    # a fragment row selects that fragment
    page.locator("#fragments-table tr.fragment").first.click()
    page.wait_for_function(
        f"() => document.getElementById('range-audio').src.includes('start={T0}&end={T0 + 980}')"
    )
    # the whole stream, then the last five minutes (the same data here)
    page.click("#range-all")
    page.wait_for_function("() => document.querySelectorAll('#timeline rect.gap').length === 1")
    page.close()


def test_a_stream_that_does_not_exist_says_so(server: ServerThread, browser: Browser) -> None:
    page = browser.page()
    page.goto(server.url + "/ui/#/streams/no-such-stream")
    page.wait_for_selector("text=No stream no-such-stream", timeout=WAIT_MS)
    page.goto(server.url + "/ui/#/calls/no-such-call")
    page.wait_for_selector("text=No call no-such-call", timeout=WAIT_MS)
    browser.errors[:] = [e for e in browser.errors if "404" not in e]  # the 404s themselves
    page.close()


# --- signing in -------------------------------------------------------------------------------
def test_signing_in_and_out_in_the_browser(tmp_path: Path, browser: Browser) -> None:
    config = ServerConfig(credentials={KEY: SECRET}, ui=UiConfig(login="always"))
    with ServerThread(tmp_path, config=config) as srv:
        assert srv.state.calls is not None
        seed_call(srv.state.calls, "secret-call", T0)
        page = browser.page()
        page.goto(srv.url + "/ui/#/calls/secret-call")
        page.wait_for_selector("form[action='login']")
        assert "/ui/login?next=" in page.url
        assert "secret-call" not in page.content()
        page.fill("#access_key", KEY)
        page.fill("#secret", "wrong")
        page.click("button[type=submit]")
        page.wait_for_selector("#login-error:has-text('Wrong access key or secret')")
        page.screenshot(path=str(artifact("login.png")))
        browser.errors[:] = [e for e in browser.errors if "401" not in e]  # the refusal itself
        page.fill("#access_key", KEY)
        page.fill("#secret", SECRET)
        page.click("button[type=submit]")
        page.wait_for_selector("#calls-table tbody tr[data-call-id='secret-call']", timeout=WAIT_MS)
        assert page.locator("#who").inner_text() == KEY
        cookies = {c["name"]: c for c in page.context.cookies()}
        session = cookies["callstream_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # not readable by scripts
        page.click("#logout")
        page.wait_for_selector("form[action='login']", timeout=WAIT_MS)
        page.goto(srv.url + "/ui/")
        page.wait_for_selector("form[action='login']")
        page.close()


# --- load -------------------------------------------------------------------------------------
def test_with_ten_thousand_calls_the_list_pages_searches_and_filters(
    tmp_path: Path, browser: Browser
) -> None:
    """10,000 stored calls: the first page, a search, the flagged filter and the next page
    all come from the server (timings printed; ``bench/bench_web.py`` measures them)."""
    import json

    with ServerThread(tmp_path, config=ServerConfig(credentials={KEY: SECRET})) as srv:
        assert srv.state.calls is not None
        seed_many(srv.state.calls, 10_000, T0)
        assert srv.state.calls.count() == 10_000
        page = browser.page()
        page.goto(srv.url + "/ui/#/calls")
        wait_rows(page, "bulk-00000", 50)
        first_ms = page.evaluate("performance.getEntriesByName('calls-rendered')[0].startTime")
        fetch_ms = int(page.get_attribute("#calls-table", "data-render-ms") or -1)
        assert page.locator("#call-total").inner_text() == "10,000 calls stored"
        timings = {"first_page_ms": round(first_ms, 1), "fetch_and_render_ms": fetch_ms}
        # a search, a filter and the next page go through the server too
        page.fill("#call-search", "agent-36")
        wait_rows(page, "bulk-00036")
        timings["search_ms"] = int(page.get_attribute("#calls-table", "data-render-ms") or -1)
        page.fill("#call-search", "")
        wait_rows(page, "bulk-00000", 50)
        for label, action, first in (
            ("flagged_ms", lambda: page.check("#call-flagged"), "bulk-00000"),
            ("older_page_ms", lambda: page.click("#page-older"), "bulk-04850"),
        ):
            action()
            wait_rows(page, first)
            timings[label] = int(page.get_attribute("#calls-table", "data-render-ms") or -1)
        page.screenshot(path=str(artifact("call-list-10000.png")))
        artifact("load-10000.json").write_text(json.dumps(timings))
        print(f"\n10,000 calls: {timings}")
        assert first_ms > 0, timings  # the time itself is a measurement, not a verdict
        page.close()
