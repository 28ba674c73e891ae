"""The call list (SQLite index) and the per-call files: rows, ordering, paging, filters,
safe directory names and the transcript folded from the event log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.analytics.callstore import CallRow, CallStore, call_dir_name


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    calls = CallStore(tmp_path / "analytics")
    yield calls
    calls.close()


def row(call_id: str, started: int, **kw: Any) -> CallRow:
    return CallRow(
        call_id, kw.pop("source", "CONNECT"), kw.pop("status", "ENDED"), started, 0, **kw
    )


def ids(rows: list[CallRow]) -> list[str]:
    return [r.call_id for r in rows]


def test_upsert_then_get_round_trips_every_field(store: CallStore) -> None:
    full = CallRow(
        "c-1",
        "VOICE_CONNECTOR",
        "TRANSCRIBING",
        1_700_000_000_000,
        1_700_000_005_000,
        ended_ms=None,
        contact_id="contact",
        transaction_id="tx",
        customer_number="+15551230000",
        system_number="+15559870000",
        agent_id="agent-7",
        duration_s=12.5,
        segments=4,
        caller_sentiment=-1.25,
        agent_sentiment=2.0,
        caller_trend="DOWN",
        agent_trend="UP",
        categories=["cancellation", "Réclamation"],
        flags=["ABUSIVE_CALLER"],
        behind_s=0.75,
        summary="CALLER: cancel it",
    )
    store.upsert(full)
    assert store.get("c-1") == full
    assert store.get("nope") is None
    full.status, full.ended_ms = "ENDED", 1_700_000_009_000
    store.upsert(full)  # the same call again: replaced, not added
    assert store.get("c-1") == full and store.count() == 1
    assert full.to_json()["Sentiment"]["CALLER"] == {"Overall": -1.25, "Trend": "DOWN"}


def test_list_calls_is_newest_first(store: CallStore) -> None:
    for call_id, started in [("b", 2000), ("a", 1000), ("c", 3000), ("d", 2000)]:
        store.upsert(row(call_id, started))
    assert ids(store.list_calls()) == ["c", "b", "d", "a"]  # equal times: by call id
    assert ids(store.list_calls(limit=2)) == ["c", "b"]
    assert ids(store.list_calls(before=(2000, "b"))) == ["d", "a"]
    assert ids(store.list_calls(limit=0)) == ["c"]  # at least one row per page


@settings(max_examples=40)
@given(
    starts=st.lists(st.integers(0, 3), min_size=0, max_size=25),
    limit=st.integers(1, 6),
)
def test_paging_visits_every_call_once_even_with_equal_times(
    tmp_path_factory: pytest.TempPathFactory, starts: list[int], limit: int
) -> None:
    calls = CallStore(tmp_path_factory.mktemp("paging"))
    try:
        for i, started in enumerate(starts):
            calls.upsert(row(f"call-{i:02d}", started))
        everything = ids(calls.list_calls(limit=1000))
        paged: list[str] = []
        cursor: tuple[int, str] | None = None
        while True:
            page = calls.list_calls(limit=limit, before=cursor)
            if not page:
                break
            paged += ids(page)
            cursor = (page[-1].started_ms, page[-1].call_id)
        assert paged == everything
        assert len(set(paged)) == len(starts)
        started = {r.call_id: r.started_ms for r in calls.list_calls(limit=1000)}
        assert [started[c] for c in paged] == sorted(started.values(), reverse=True)
    finally:
        calls.close()


def test_status_flagged_and_search_filters(store: CallStore) -> None:
    store.upsert(row("live-1", 5, status="TRANSCRIBING", customer_number="+15550001111"))
    store.upsert(row("done-1", 4, agent_id="alice", categories=["billing"]))
    store.upsert(row("done-2", 3, flags=["ABUSIVE_CALLER"], contact_id="contact-9"))
    store.upsert(row("err-1", 2, status="ERRORED", system_number="+18005550199"))
    assert ids(store.list_calls(status="ENDED")) == ["done-1", "done-2"]
    assert ids(store.list_calls(flagged=True)) == ["done-2"]
    assert ids(store.list_calls(search="0001111")) == ["live-1"]
    assert ids(store.list_calls(search="ALICE")) == ["done-1"]
    assert ids(store.list_calls(search="billing")) == ["done-1"]
    assert ids(store.list_calls(search="contact-9")) == ["done-2"]
    assert ids(store.list_calls(search="8005550199")) == ["err-1"]
    assert ids(store.list_calls(search="done", status="ENDED", flagged=True)) == ["done-2"]
    assert store.list_calls(search="nothing like this") == []


def test_search_takes_percent_underscore_and_backslash_literally(store: CallStore) -> None:
    store.upsert(row("call_1", 4))
    store.upsert(row("callX1", 3))
    store.upsert(row("50%-off\\x", 2))
    store.upsert(row("plain", 1))
    assert ids(store.list_calls(search="call_1")) == ["call_1"]
    assert ids(store.list_calls(search="_")) == ["call_1"]
    assert ids(store.list_calls(search="50%")) == ["50%-off\\x"]
    assert ids(store.list_calls(search="%")) == ["50%-off\\x"]
    assert ids(store.list_calls(search="f\\x")) == ["50%-off\\x"]
    assert ids(store.list_calls(search="\\")) == ["50%-off\\x"]


def test_search_finds_categories_with_non_ascii_names(store: CallStore) -> None:
    store.upsert(row("fr-1", 2, categories=["Réclamation"]))
    store.upsert(row("de-1", 1, categories=["Kündigung"]))
    assert ids(store.list_calls(search="Réclamation")) == ["fr-1"]
    assert ids(store.list_calls(search="kündigung")) == ["de-1"]
    assert store.get("fr-1").categories == ["Réclamation"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "call_id",
    [
        "../x",
        "..",
        ".",
        "",
        "a/b",
        "a\\b",
        "/etc/passwd",
        "x" * 5000,
        "nul\0byte",
        "ré/sumé",
        "-",
        "\ud800",
    ],
)
def test_call_dir_name_is_one_safe_path_component(
    store: CallStore, tmp_path: Path, call_id: str
) -> None:
    name = call_dir_name(call_id)
    assert name and name not in (".", "..") and not name.startswith(".")
    assert "/" not in name and "\\" not in name and "\0" not in name
    assert len(name.encode()) <= 255
    assert all(c.isascii() for c in name)
    path = store.call_dir(call_id)
    assert path.parent == store.directory / "calls" and path.is_dir()
    assert store.path(call_id, "events.jsonl").parent == path


def test_call_dir_names_of_different_ids_differ() -> None:
    hostile = ["../x", "..", ".", "", "a/b", "a_b", "a?b", "call", "x" * 300, "x" * 301, "\ud800"]
    names = [call_dir_name(c) for c in hostile]
    assert len(set(names)) == len(names), names
    uuid = "4b9c7a0e-3f1d-4c1b-9a55-0d1f5e6a7b8c"
    assert call_dir_name(uuid) == uuid  # ordinary ids stay readable


def write_events(store: CallStore, call_id: str, events: list[dict[str, Any]]) -> Path:
    path = store.call_dir(call_id) / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def seg(sid: str, start: float, text: str, *, partial: bool, channel: str = "CALLER") -> dict:
    return {
        "EventType": "ADD_TRANSCRIPT_SEGMENT",
        "SegmentId": sid,
        "Channel": channel,
        "StartTime": start,
        "EndTime": start + 1,
        "Transcript": text,
        "IsPartial": partial,
    }


def test_transcript_folds_partials_into_their_finals(store: CallStore) -> None:
    write_events(
        store,
        "c-1",
        [
            {"EventType": "START", "CallId": "c-1"},
            seg("ch_0-1.000", 1.0, "hello", partial=True),
            seg("ch_1-0.500", 0.5, "good morning", partial=True, channel="AGENT"),
            seg("ch_0-1.000", 1.0, "hello there", partial=True),
            seg("ch_0-1.000", 1.0, "Hello there.", partial=False),
            seg("ch_0-1.000", 1.0, "hello th", partial=True),  # late partial: ignored
            seg("ch_0-3.000", 3.0, "uh", partial=True),
            seg("ch_0-3.000", 3.0, "", partial=False),  # noise: its partials go too
            seg("ch_0-3.000", 3.0, "uh huh", partial=True),  # and stay gone
            seg("ch_1-5.000", 5.0, "still talking", partial=True, channel="AGENT"),
            {"EventType": "CATEGORY_MATCH", "MatchedCategories": ["x"]},
        ],
    )
    got = [(s["SegmentId"], s["Transcript"], s["IsPartial"]) for s in store.transcript("c-1")]
    assert got == [
        ("ch_1-0.500", "good morning", True),
        ("ch_0-1.000", "Hello there.", False),
        ("ch_1-5.000", "still talking", True),
    ]
    assert [e["EventType"] for e in store.events("c-1")] == [
        "START",
        *["ADD_TRANSCRIPT_SEGMENT"] * 9,
        "CATEGORY_MATCH",
    ]
    assert store.transcript("never-seen") == []


def test_transcript_survives_a_torn_last_line(store: CallStore) -> None:
    path = write_events(store, "c-1", [seg("ch_0-1.000", 1.0, "Hello there.", partial=False)])
    with path.open("a", encoding="utf-8") as f:  # a write cut short by a crash
        f.write(json.dumps(seg("ch_0-2.000", 2.0, "More words", partial=False))[:40])
    assert [s["Transcript"] for s in store.transcript("c-1")] == ["Hello there."]
