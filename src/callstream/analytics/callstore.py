"""Where analysed calls are kept: an index to list them fast, and files per call.

Layout under ``<data_dir>/analytics``::

    calls.sqlite3                 one row per call (the call list)
    calls/<call id>/events.jsonl  the call's events in LCA's call-data-stream shape
    calls/<call id>/call.json     the export (what ``analyze`` prints), once finished
    calls/<call id>/recording.wav stereo 8 kHz recording: channel 0 caller, 1 agent
                                  (the training export cuts its clips from it)

The index row is what the call list shows: source, status, start and end, phone numbers,
agent, sentiment per channel with trend, categories, flags, segment count and how far
behind live the transcript is. Rows are written through :meth:`CallStore.upsert` from the
analytics service (one writer) and read from any thread.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callstream.events.types import Event
from callstream.sqlite_db import add_missing_columns

__all__ = ["CALL_EVENT_TYPES", "CallRow", "CallStore", "apply_event", "call_dir_name"]

CALL_EVENT_TYPES = (
    "CallAnalyticsStarted",
    "TranscriptSegment",
    "CategoryMatched",
    "CallAlert",
    "AgentUpdated",
    "CallSummary",
    "CallAnalyticsEnded",
)
"""The analytics events of a call: what its row and its ``events.jsonl`` are made of."""

STATUSES = ("STARTED", "TRANSCRIBING", "ENDED", "ERRORED")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id          TEXT PRIMARY KEY,
    source           TEXT NOT NULL,
    status           TEXT NOT NULL,
    started_ms       INTEGER NOT NULL,
    ended_ms         INTEGER,
    updated_ms       INTEGER NOT NULL,
    contact_id       TEXT,
    transaction_id   TEXT,
    customer_number  TEXT,
    system_number    TEXT,
    agent_id         TEXT,
    duration_s       REAL NOT NULL DEFAULT 0,
    segments         INTEGER NOT NULL DEFAULT 0,
    caller_sentiment REAL,
    agent_sentiment  REAL,
    caller_trend     TEXT,
    agent_trend      TEXT,
    categories       TEXT NOT NULL DEFAULT '[]',
    flags            TEXT NOT NULL DEFAULT '[]',
    behind_s         REAL NOT NULL DEFAULT 0,
    summary          TEXT,
    node             TEXT
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_ms DESC, call_id);
CREATE TABLE IF NOT EXISTS remote_cursor (
    id     INTEGER PRIMARY KEY CHECK (id = 0),
    cursor INTEGER NOT NULL
);
"""
_ADDED_COLUMNS = (("node", "TEXT"),)
"""Columns added after a call list could have been made (added on open)."""

_COLUMNS = (
    "call_id",
    "source",
    "status",
    "started_ms",
    "ended_ms",
    "updated_ms",
    "contact_id",
    "transaction_id",
    "customer_number",
    "system_number",
    "agent_id",
    "duration_s",
    "segments",
    "caller_sentiment",
    "agent_sentiment",
    "caller_trend",
    "agent_trend",
    "categories",
    "flags",
    "behind_s",
    "summary",
    "node",
)


def call_dir_name(call_id: str) -> str:
    """A file-system-safe directory name for a call id (ids are UUIDs in practice, but
    any string may arrive through the API)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120].lstrip(".")
    if safe != call_id or not safe:
        import hashlib

        digest = hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        safe = f"{safe or 'call'}-{digest}"
    return safe


@dataclass(slots=True)
class CallRow:
    """One call in the call list (the API's ``Calls`` entries use these names)."""

    call_id: str
    source: str
    status: str
    started_ms: int
    updated_ms: int
    ended_ms: int | None = None
    contact_id: str | None = None
    transaction_id: str | None = None
    customer_number: str | None = None
    system_number: str | None = None
    agent_id: str | None = None
    duration_s: float = 0.0
    segments: int = 0
    caller_sentiment: float | None = None
    agent_sentiment: float | None = None
    caller_trend: str | None = None
    agent_trend: str | None = None
    categories: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    behind_s: float = 0.0
    summary: str | None = None
    node: str | None = None
    """The cluster node that analyses the call, when it is not this one."""

    def to_json(self) -> dict[str, Any]:
        """The row as the HTTP API and ``callstream calls --json`` show it."""
        return {
            "CallId": self.call_id,
            "Source": self.source,
            "Status": self.status,
            "StartedAt": self.started_ms,
            "EndedAt": self.ended_ms,
            "UpdatedAt": self.updated_ms,
            "ContactId": self.contact_id,
            "TransactionId": self.transaction_id,
            "CustomerPhoneNumber": self.customer_number,
            "SystemPhoneNumber": self.system_number,
            "AgentId": self.agent_id,
            "DurationSeconds": round(self.duration_s, 3),
            "Segments": self.segments,
            "Sentiment": {
                "CALLER": {"Overall": self.caller_sentiment, "Trend": self.caller_trend},
                "AGENT": {"Overall": self.agent_sentiment, "Trend": self.agent_trend},
            },
            "Categories": self.categories,
            "Flags": self.flags,
            "SecondsBehindLive": round(self.behind_s, 3),
            "Summary": self.summary,
            "Node": self.node,
        }


def apply_event(row: CallRow, event: Event, sentiments: dict[str, list[float]]) -> None:
    """What one of the call's analytics events changes in its row: segment count and mean
    weighted sentiment per channel (``sentiments`` holds each channel's values so far),
    categories, the abusive-caller flag, the agent."""
    if event.type == "TranscriptSegment" and not event.get("IsPartial"):
        if event.get("Transcript"):
            row.segments += 1
        weighted = event.get("SentimentWeighted")
        if weighted is not None:
            values = sentiments.setdefault(str(event.get("Channel")), [])
            values.append(float(weighted))
            mean = round(sum(values) / len(values), 3)
            if event.get("Channel") == "CALLER":
                row.caller_sentiment = mean
            else:
                row.agent_sentiment = mean
    elif event.type == "CategoryMatched":
        row.categories = sorted({*row.categories, *event.get("MatchedCategories", [])})
    elif event.type == "CallAlert" and event.get("AlertType") == "ABUSIVE_CALLER":
        row.flags = sorted({*row.flags, "ABUSIVE_CALLER"})
    elif event.type == "AgentUpdated":
        row.agent_id = event.get("AgentId")


def _row(values: tuple[Any, ...]) -> CallRow:
    d = dict(zip(_COLUMNS, values, strict=True))
    d["categories"] = json.loads(d["categories"])
    d["flags"] = json.loads(d["flags"])
    return CallRow(**d)


class CallStore:
    """The analysed calls under ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        (self.directory / "calls").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.directory / "calls.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        add_missing_columns(self._db, "calls", _ADDED_COLUMNS)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def call_dir(self, call_id: str) -> Path:
        """The call's directory (created)."""
        path = self.directory / "calls" / call_dir_name(call_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, call_id: str, name: str) -> Path:
        """A file of the call (not created)."""
        return self.directory / "calls" / call_dir_name(call_id) / name

    def upsert(self, row: CallRow, *, remote_cursor: int | None = None) -> None:
        """Insert or replace a call's row; with ``remote_cursor``, record in the same
        transaction that the bus event at that cursor is applied (:mod:`.remote`)."""
        values = [getattr(row, c) for c in _COLUMNS]
        # unescaped JSON, so that a search for "Réclamation" finds the category
        values[_COLUMNS.index("categories")] = json.dumps(row.categories, ensure_ascii=False)
        values[_COLUMNS.index("flags")] = json.dumps(row.flags, ensure_ascii=False)
        marks = ", ".join("?" * len(_COLUMNS))
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    f"INSERT OR REPLACE INTO calls ({', '.join(_COLUMNS)}) VALUES ({marks})",
                    values,
                )
                if remote_cursor is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO remote_cursor (id, cursor) VALUES (0, ?)",
                        (remote_cursor,),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def set_remote_cursor(self, cursor: int) -> None:
        """Record that the bus up to ``cursor`` holds no relayed event left to apply."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO remote_cursor (id, cursor) VALUES (0, ?)", (cursor,)
            )

    def remote_cursor(self) -> int | None:
        """The bus cursor of the last relayed event applied to the call list."""
        with self._lock:
            found = self._db.execute("SELECT cursor FROM remote_cursor WHERE id = 0").fetchone()
        return int(found[0]) if found else None

    def get(self, call_id: str) -> CallRow | None:
        """A call's row."""
        with self._lock:
            found = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM calls WHERE call_id = ?", (call_id,)
            ).fetchone()
        return _row(found) if found else None

    def list_calls(
        self,
        *,
        limit: int = 100,
        before: tuple[int, str] | None = None,
        status: str | None = None,
        search: str | None = None,
        flagged: bool = False,
    ) -> list[CallRow]:
        """Calls, newest first: ``limit`` of them after the page cursor ``before``
        ((started_ms, call_id) of the last row of the previous page); ``status`` filters,
        ``search`` matches the call id, the phone numbers, the agent and the categories."""
        where: list[str] = []
        args: list[Any] = []
        if before is not None:
            where.append("(started_ms < ? OR (started_ms = ? AND call_id > ?))")
            args += [before[0], before[0], before[1]]
        if status:
            where.append("status = ?")
            args.append(status)
        if flagged:
            where.append("flags != '[]'")
        if search:
            fields = (
                "call_id",
                "customer_number",
                "system_number",
                "agent_id",
                "categories",
                "contact_id",
            )
            where.append("(" + " OR ".join(f"{f} LIKE ? ESCAPE '\\'" for f in fields) + ")")
            escaped = search.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            pattern = "%" + escaped + "%"
            args += [pattern] * len(fields)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_ms DESC, call_id LIMIT ?"
        args.append(max(1, min(limit, 1000)))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_row(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def events(self, call_id: str) -> Iterator[dict[str, Any]]:
        """The call's logged events (LCA shape), oldest first. A line that is not a whole
        JSON object (the last one, cut short by a crash or still being written) is skipped."""
        path = self.path(call_id, "events.jsonl")
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        yield event
        except FileNotFoundError:
            return

    def transcript(self, call_id: str) -> list[dict[str, Any]]:
        """The call's transcript so far: its segments in order, each partial replaced by
        its final (the newest version of every segment)."""
        latest: dict[str, dict[str, Any]] = {}
        for event in self.events(call_id):
            if event.get("EventType") != "ADD_TRANSCRIPT_SEGMENT":
                continue
            sid = str(event.get("SegmentId"))
            old = latest.get(sid)
            if old is not None and not old.get("IsPartial") and event.get("IsPartial"):
                continue
            latest[sid] = event
        segments = [s for s in latest.values() if s.get("Transcript") or s.get("IsPartial")]
        return sorted(segments, key=lambda s: (float(s["StartTime"]), str(s["Channel"])))
