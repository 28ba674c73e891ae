"""In a cluster the call-event bus of every node holds every node's events; a call is
analysed only by the node it streams to (events without an Origin)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials
from call_speech import signed_json

from callstream.analytics.service import AnalyticsConfig
from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.cli import signed_request
from callstream.events import Event
from callstream.events.types import Origin
from polling import wait_for

KEY, SECRET = "AKIDCLUSTER", "cluster-secret"


def api(server: ServerThread, path: str) -> Any:
    return signed_json(server.url + path, "GET", KEY, SECRET, None)


def started(contact_id: str, arn: str) -> Event:
    return Event.of(
        "MediaStreamingStarted",
        ContactId=contact_id,
        StreamARN=arn,
        StartFragmentNumber="91343852333181432392682062607743920146264220000",
        StartTimestamp=int(time.time() * 1000),
    )


def test_a_call_relayed_from_another_node_is_not_analysed_here(tmp_path: Path) -> None:
    config = ServerConfig(analytics=AnalyticsConfig(engine="none", idle_end_s=0.5))
    with ServerThread(tmp_path, config=config) as server:
        stream = server.run(server.store.create_stream("call", data_retention_hours=1))
        bus, calls = server.state.events, server.state.calls
        assert calls is not None
        bus.publish(started("elsewhere", stream.arn).relayed(Origin("node-b", 7)))
        bus.publish(started("here", stream.arn))
        wait_for(lambda: calls.get("here") is not None, 60, "the local call was not analysed")
        # the listener takes events in order: "elsewhere" was passed over before "here"
        assert calls.get("elsewhere") is None


def analysed_elsewhere(call_id: str, node: str) -> list[Event]:
    """What another node's analytics publishes about a call, as relayed here."""
    events = [
        Event.of(
            "CallAnalyticsStarted",
            CallId=call_id,
            Source="VOICE_CONNECTOR",
            CreatedAt=int(time.time() * 1000),
            TransactionId="tx-far",
            CustomerPhoneNumber="+15551230001",
        ),
        Event.of(
            "TranscriptSegment",
            CallId=call_id,
            SegmentId="s1",
            Channel="CALLER",
            StartTime=0.5,
            EndTime=3.0,
            Transcript="this is the third time i'm calling",
            IsPartial=False,
            Sentiment="NEGATIVE",
            SentimentWeighted=-3.5,
        ),
        Event.of(
            "TranscriptSegment",
            CallId=call_id,
            SegmentId="s2",
            Channel="AGENT",
            StartTime=3.5,
            EndTime=5.0,
            Transcript="i'm sorry let me fix that",
            IsPartial=False,
            Sentiment="NEUTRAL",
        ),
        Event.of("CategoryMatched", CallId=call_id, MatchedCategories=["repeat-caller"]),
        Event.of(
            "CallAlert",
            CallId=call_id,
            AlertType="ABUSIVE_CALLER",
            SegmentIds=["s1"],
            Evidence=[],
        ),
        Event.of(
            "CallSummary",
            CallId=call_id,
            CallSummaryText="The caller called a third time about a bill.",
            Sentiment={
                "CALLER": {"Overall": -3.5, "Trend": "DOWN"},
                "AGENT": {"Overall": 0.0, "Trend": "FLAT"},
            },
            Categories=["repeat-caller"],
            Flags=["ABUSIVE_CALLER"],
        ),
        Event.of("CallAnalyticsEnded", CallId=call_id, Status="ENDED", DurationSeconds=5.0),
    ]
    return [e.relayed(Origin(node, i + 1)) for i, e in enumerate(events)]


def test_calls_another_node_analyses_are_in_this_nodes_call_list(tmp_path: Path) -> None:
    """The call list, summary, transcript and events of a call analysed on another node
    are on this one too; the call is not analysed again here, a call analysed here is not
    changed by another node's events, and after a restart nothing is applied twice."""
    config = ServerConfig(
        analytics=AnalyticsConfig(engine="none", idle_end_s=0.5),
        credentials={KEY: SECRET},
    )
    with ServerThread(tmp_path, config=config) as server:
        stream = server.run(server.store.create_stream("call", data_retention_hours=1))
        bus, calls = server.state.events, server.state.calls
        assert calls is not None
        bus.publish(started("here", stream.arn))
        wait_for(lambda: calls.get("here") is not None, 60, "the local call was not analysed")
        # another node's word about a call analysed here changes nothing (published first:
        # the follower takes events in order, so it is applied once "far" has ended)
        bus.publish(analysed_elsewhere("here", "node-b")[1])
        for event in analysed_elsewhere("far", "node-b"):
            bus.publish(event)
        row = wait_for(
            lambda: (r := calls.get("far")) is not None and r.status == "ENDED" and r,
            60,
            "the other node's call never ended here",
        )
        listed = {c["CallId"]: c for c in api(server, "/callstream/calls")["Calls"]}
        far = listed["far"]
        assert far["Node"] == "node-b" and far["Source"] == "VOICE_CONNECTOR"
        assert far["TransactionId"] == "tx-far" and far["CustomerPhoneNumber"] == "+15551230001"
        assert far["Segments"] == 2 and far["DurationSeconds"] == 5.0
        assert far["Sentiment"]["CALLER"] == {"Overall": -3.5, "Trend": "DOWN"}
        assert far["Categories"] == ["repeat-caller"] and far["Flags"] == ["ABUSIVE_CALLER"]
        assert far["Summary"] == "The caller called a third time about a bill."
        assert listed["here"]["Node"] is None and listed["here"]["Segments"] == 0
        transcript = api(server, "/callstream/calls/far/transcript")["Segments"]
        assert [s["SegmentId"] for s in transcript] == ["s1", "s2"]
        assert [line["EventType"] for line in calls.events("far")][:2] == [
            "START",
            "ADD_TRANSCRIPT_SEGMENT",
        ]
        status, body = signed_request(
            "GET",
            f"{server.url}/callstream/calls/far/recording.wav",
            region="us-east-1",
            credentials=Credentials(KEY, SECRET),
        )
        assert status == 404 and b"node-b" in body
        assert row.segments == 2
        listing = subprocess.run(
            [sys.executable, "-m", "callstream.cli", "calls", "--endpoint-url", server.url],
            env={**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET},
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        [far_line] = [line for line in listing.splitlines() if line.endswith("(node node-b)")]
        assert " far " in far_line and "ENDED" in far_line
    # a restart goes on after the last event applied
    with ServerThread(tmp_path, config=config) as server:
        bus, calls = server.state.events, server.state.calls
        assert calls is not None
        bus.publish(
            Event.of("AgentUpdated", CallId="far", AgentId="agent-7").relayed(Origin("node-b", 9))
        )
        wait_for(lambda: (r := calls.get("far")) is not None and r.agent_id == "agent-7", 60)
        after = calls.get("far")
        assert after is not None and after.segments == 2 and after.status == "ENDED"
        assert len(list(calls.events("far"))) == 8  # the 7 events once, then the new one
        # the analysing node restarted and analyses the call again from its start
        again = analysed_elsewhere("far", "node-b")[0]
        bus.publish(Event(again.type, again.fields, again.time_ms, 0, Origin("node-b", 20)))
        wait_for(lambda: (r := calls.get("far")) is not None and r.status == "STARTED", 60)
        assert [e["EventType"] for e in calls.events("far")] == ["START"]


def test_a_node_alone_records_how_far_it_read_so_a_restart_does_not_rescan(
    tmp_path: Path,
) -> None:
    """With no relayed events (one node, the embedded store), the follower still moves its
    saved cursor past the node's own events once it is idle."""
    config = ServerConfig(analytics=AnalyticsConfig(engine="none", idle_end_s=0.5))
    with ServerThread(tmp_path, config=config) as server:
        bus, calls = server.state.events, server.state.calls
        assert calls is not None
        last = 0
        for i in range(20):
            last = bus.publish(Event.of("CallAnalyticsStarted", CallId=f"own-{i}", Source="FILE"))
        wait_for(lambda: (calls.remote_cursor() or 0) >= last, 60, "the cursor never moved")
        assert all(calls.get(f"own-{i}") is None for i in range(20))  # not this follower's
