"""Lambda handlers for the call tests, bound as ``lca_handlers:<function>``.

``start_lca`` mimics LCA's StartLCA function (``lca-connect-kvs-stack/lambda_functions/
start_lca/handler.py``): it hands the unchanged ContactFlowEvent to the KVS consumer (here:
records it) and answers ``{"statusCode": 200, "body": "..."}``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

EVENTS: list[dict[str, Any]] = []
"""Every event a handler here received, in order."""
_lock = threading.Lock()

SLOW_SECONDS = 1.6


def _record(event: dict[str, Any]) -> None:
    with _lock:
        EVENTS.append(event)


def start_lca(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The StartLCA contract: record the event for the consumer, report success."""
    _record(event)
    assert context.get_remaining_time_in_millis() > 0
    return {"statusCode": 200, "body": '"Successfully invoked Connect KVS Consumer"'}


handler = start_lca


def slow(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Answers after the block's 1 s time limit."""
    _record(event)
    time.sleep(SLOW_SECONDS)
    return {"late": "yes"}


def nested(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A nested map: not a STRING_MAP."""
    _record(event)
    return {"customer": {"tier": "gold"}}


def flat(event: dict[str, Any], context: Any) -> dict[str, str]:
    """A valid STRING_MAP echoing a parameter."""
    _record(event)
    return {"tier": "gold", "echo": str(event["Details"]["Parameters"].get("who", ""))}


def broken(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Raises, as a failing function does."""
    raise RuntimeError("boom")
