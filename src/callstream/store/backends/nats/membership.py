"""A ``callstream serve`` node's part in a NATS cluster: what it keeps of its own, shared.

:meth:`NatsStore.join <callstream.store.backends.nats.store.NatsStore.join>` gives each
node a :class:`NatsMembership`: its call-event bus relayed to and from the other nodes'
(:class:`~callstream.store.backends.nats.events.ClusterEvents`) and its voice connectors
kept the same as theirs
(:class:`~callstream.store.backends.nats.voice_connectors.ClusterVoiceConnectors`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from callstream.store.backends.nats.events import ClusterEvents
from callstream.store.backends.nats.voice_connectors import ClusterVoiceConnectors
from callstream.store.base import NodeState

if TYPE_CHECKING:
    from callstream.store.backends.nats.store import NatsStore

__all__ = ["NatsMembership"]

CONNECTORS_READY_S = 10.0
"""How long start waits for the cluster's voice connectors (then it serves with its own,
and takes the cluster's as they arrive)."""


class NatsMembership:
    """One node's relayed events and shared voice connectors, started and closed together."""

    def __init__(self, store: NatsStore, node: NodeState) -> None:
        self.events = ClusterEvents(store, node.events, node.directory / "cluster-events.json")
        self.voice_connectors = ClusterVoiceConnectors(store, node.voice_connectors)

    async def start(self) -> None:
        """Join: relay events, then wait (briefly) to serve with the cluster's connectors."""
        await self.events.start()
        try:
            await self.voice_connectors.start()
        except BaseException:
            await self.events.close()
            raise
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONNECTORS_READY_S):
                await self.voice_connectors.ready.wait()

    async def close(self) -> None:
        """Leave: stop sharing connectors, then stop relaying events."""
        await self.voice_connectors.close()
        await self.events.close()
