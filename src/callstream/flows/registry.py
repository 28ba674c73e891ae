"""The flows a contact can be transferred to (TransferToFlow), looked up by ARN, id or name."""

from __future__ import annotations

from collections.abc import Iterator

from callstream.flows.model import Flow

__all__ = ["FlowRegistry"]


class FlowRegistry:
    """Flows by ARN, id and name; ``ContactFlowId`` values resolve through :meth:`resolve`.

    A ``ContactFlowId`` may be a flow ARN (``.../contact-flow/<id>``), a bare id, or (handy
    for exported flows whose ids point into another account) the flow's name.
    """

    def __init__(self, *flows: Flow) -> None:
        self._flows: list[Flow] = []
        for flow in flows:
            self.add(flow)

    def add(self, flow: Flow) -> Flow:
        """Register ``flow`` (it keeps its ``name``, ``flow_id`` and ``arn``)."""
        self._flows.append(flow)
        return flow

    def resolve(self, ref: str) -> Flow | None:
        """The flow named by ``ref`` (ARN, id, the id at the end of an ARN, or name)."""
        if not ref:
            return None
        tail = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else None
        for key in (ref, tail):
            if not key:
                continue
            for flow in self._flows:
                if key in (flow.arn, flow.flow_id):
                    return flow
        for flow in self._flows:
            if flow.name and flow.name == ref:
                return flow
        return None

    def __iter__(self) -> Iterator[Flow]:
        return iter(self._flows)

    def __len__(self) -> int:
        return len(self._flows)
