"""In a cluster the call-event bus of every node holds every node's events; a call is
analysed only by the node it streams to (events without an Origin)."""

from __future__ import annotations

import time
from pathlib import Path

from callstream.analytics.service import AnalyticsConfig
from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.events import Event
from callstream.events.types import Origin
from polling import wait_for


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
