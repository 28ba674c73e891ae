"""Contacts the server places through its Connect instances: by number, or outbound.

:class:`ContactCenter` runs a contact the way Amazon Connect would for a configured
instance, in the server process (:class:`~callstream.flows.store.LocalCallStore` over the
server's media store, events on its bus):

* **a call to a number** (:meth:`ContactCenter.plan_inbound`): the contact flow the number
  is bound to (AssociatePhoneNumberContactFlow), InitiationMethod ``INBOUND``,
  SystemEndpoint the number, CustomerEndpoint the caller;
* **an outbound contact** (:meth:`ContactCenter.plan_outbound`, StartOutboundVoiceContact):
  the given flow, InitiationMethod ``OUTBOUND``, CustomerEndpoint the destination; the
  customer side plays the server's outbound audio (``serve --connect-outbound-audio``) or
  :data:`OUTBOUND_SILENCE_S` seconds of silence, unless StopContact ends it first.

Either way the contact runs with the instance's live media streaming settings (the
MEDIA_STREAMS storage config: stream ``<prefix>-connect-<alias>-contact-<ContactId>`` with
its retention and KMS key; no config: streaming blocks take their Error branch), its
queues and hours, its other published flows (TransferToFlow) and its associated Lambda
functions bound to handlers (:class:`~callstream.flows.instance_resources.ResourcesMixin`).
It publishes Connect's contact events (INITIATED, CONNECTED_TO_SYSTEM, QUEUED,
CONNECTED_TO_AGENT, DISCONNECTED) next to the streaming events, stores the CTR and keeps
the contact in the registry for DescribeContact / GetContactAttributes; while it runs,
UpdateContactAttributes changes its live attributes and StopContact hangs it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from callstream.flows.call import CallControl, CallResult, place_call
from callstream.flows.clock import SAMPLE_RATE, Int16Array
from callstream.flows.connect_errors import ConnectError, invalid, not_found
from callstream.flows.instance import Instance as RuntimeInstance
from callstream.flows.lambdas import LambdaSpec
from callstream.flows.loader import load_flow
from callstream.flows.model import Flow, FlowError
from callstream.flows.store import LocalCallStore

if TYPE_CHECKING:
    from callstream.events.bus import EventBus
    from callstream.flows.instances import InstanceRegistry
    from callstream.store.contacts import ContactStore
    from callstream.store.service import MediaStore

__all__ = [
    "DEFAULT_CALLER",
    "OUTBOUND_SILENCE_S",
    "ContactCenter",
    "ContactPlan",
    "contact_center",
]

log = logging.getLogger("callstream.flows.call")

DEFAULT_CALLER = "+15555550100"
"""The CustomerEndpoint of a call to a number when the caller is not given."""
OUTBOUND_SILENCE_S = 60
"""How long an outbound contact (StartOutboundVoiceContact) lasts unless stopped: the
customer side is that much silence."""


@dataclass
class ContactPlan:
    """Everything a contact needs, resolved from the registry before it starts."""

    instance_id: str
    instance: RuntimeInstance
    flow: Flow
    flows: list[Flow]
    flow_id: str
    lambdas: dict[str, LambdaSpec]
    initiation_method: str
    customer_address: str
    system_address: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None


@dataclass
class _Live:
    plan: ContactPlan
    control: CallControl
    task: asyncio.Task[CallResult] | None = None


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _dt_ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class ContactCenter:
    """The contacts a server places: plans them from ``registry``, runs them on ``store``
    with events on ``bus`` and CTRs in ``contacts``, and keeps the running ones."""

    def __init__(
        self,
        registry: InstanceRegistry,
        store: MediaStore,
        bus: EventBus,
        contacts: ContactStore,
    ) -> None:
        self.registry = registry
        self.store = store
        self.bus = bus
        self.contacts = contacts
        self.live: dict[str, _Live] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- planning (blocking: registry reads) ------------------------------------------------
    def _flows(self, instance_id: str, flow_id: str) -> tuple[Flow, list[Flow], str]:
        main = self.registry.get_flow(instance_id, flow_id)
        if main.status != "PUBLISHED":
            raise ConnectError(
                "InvalidContactFlowException", f"Contact flow {main.name} is not published."
            )
        loaded: list[Flow] = []
        first: Flow | None = None
        for flow in self.registry.list_flows(instance_id):
            if flow.status != "PUBLISHED":
                continue
            try:
                parsed = load_flow(
                    flow.content.encode(),
                    flow_type=flow.type,
                    name=flow.name,
                    flow_id=flow.id,
                    arn=flow.arn,
                )
            except FlowError as err:  # published before a loader change: skip it
                if flow.id == main.id:
                    raise ConnectError(
                        "InvalidContactFlowException", f"Contact flow {flow.name}: {err}"
                    ) from None
                continue
            if flow.id == main.id:
                first = parsed
            else:
                loaded.append(parsed)
        assert first is not None
        return first, loaded, main.id

    def _lambdas(self, instance_id: str, overrides: Mapping[str, str]) -> dict[str, LambdaSpec]:
        bound: dict[str, LambdaSpec] = {
            b.function_arn: b.target
            for b in self.registry.lambda_bindings(instance_id)
            if b.target is not None
        }
        bound.update(overrides)
        return bound

    def plan_inbound(
        self,
        number: str,
        *,
        caller: str | None = None,
        attributes: Mapping[str, str] | None = None,
        lambdas: Mapping[str, str] | None = None,
    ) -> ContactPlan:
        """A call to ``number``: its instance and contact flow (ResourceNotFoundException
        for a number nobody claimed or one bound to no flow)."""
        claimed = self.registry.get_number(number)
        if claimed.flow_id is None:
            raise not_found(f"Phone number {claimed.number} is not associated with a contact flow.")
        instance = self.registry.get_instance(claimed.instance_id)
        if not instance.inbound_calls_enabled:
            raise ConnectError(
                "InvalidRequestException", f"Instance {instance.id} does not take inbound calls."
            )
        flow, flows, flow_id = self._flows(instance.id, claimed.flow_id)
        return ContactPlan(
            instance_id=instance.id,
            instance=self.registry.runtime_instance(instance.id),
            flow=flow,
            flows=flows,
            flow_id=flow_id,
            lambdas=self._lambdas(instance.id, lambdas or {}),
            initiation_method="INBOUND",
            customer_address=caller or DEFAULT_CALLER,
            system_address=claimed.number,
            attributes=dict(attributes or {}),
        )

    def plan_outbound(
        self,
        instance_id: str,
        flow_id: str,
        destination: str,
        *,
        source: str | None = None,
        queue_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> ContactPlan:
        """StartOutboundVoiceContact: ``OutboundContactNotPermittedException`` when the
        instance makes no outbound calls."""
        instance = self.registry.get_instance(instance_id)
        if not instance.outbound_calls_enabled:
            raise ConnectError(
                "OutboundContactNotPermittedException",
                f"Instance {instance.id} does not make outbound calls.",
            )
        if not destination.startswith("+") or not destination[1:].isdigit():
            raise ConnectError(
                "DestinationNotAllowedException", f"{destination} is not an E.164 number."
            )
        runtime = self.registry.runtime_instance(instance.id)
        system = source
        if queue_id:
            queue = self.registry.get_queue(instance.id, queue_id)
            found = runtime.find_queue(queue.id)
            system = system or (found.outbound_caller_id if found else None)
        if system is None:
            numbers = self.registry.list_numbers(instance.id)
            system = numbers[0].number if numbers else None
        flow, flows, fid = self._flows(instance.id, flow_id)
        return ContactPlan(
            instance_id=instance.id,
            instance=runtime,
            flow=flow,
            flows=flows,
            flow_id=fid,
            lambdas=self._lambdas(instance.id, {}),
            initiation_method="OUTBOUND",
            customer_address=destination,
            system_address=system,
            attributes=dict(attributes or {}),
            name=name,
            description=description,
        )

    # -- running ----------------------------------------------------------------------------
    def _call_store(self) -> LocalCallStore:
        from callstream.events.types import Event

        bus = self.bus
        contacts = self.contacts

        def publish(event_type: str, detail: Mapping[str, Any]) -> object:
            return bus.publish(Event.of(event_type, **detail))

        async def store_record(ctr: Mapping[str, Any]) -> object:
            return await asyncio.to_thread(contacts.put, dict(ctr))

        return LocalCallStore(self.store, publish=publish, store_contact_record=store_record)

    def _record(self, plan: ContactPlan, contact_id: str, data: dict[str, Any]) -> None:
        self.registry.record_contact(plan.instance_id, contact_id, contact_id, data)

    def _snapshot(self, live: _Live, result: CallResult | None = None) -> dict[str, Any]:
        """The contact's fields (model names, epoch ms) from its live state."""
        contact = live.control.contact
        plan = live.plan
        assert contact is not None
        out: dict[str, Any] = {
            "Id": contact.contact_id,
            "InitialContactId": contact.initial_contact_id,
            "PreviousContactId": contact.previous_contact_id,
            "InitiationMethod": contact.initiation_method,
            "Channel": contact.channel,
            "Name": plan.name,
            "Description": plan.description,
            "InitiationTimestamp": _dt_ms(contact.initiation_timestamp),
            "ConnectedToSystemTimestamp": _dt_ms(contact.connected_to_system_timestamp),
            "DisconnectTimestamp": _dt_ms(contact.disconnect_timestamp),
            "DisconnectReason": contact.disconnect_reason,
            "LastUpdateTimestamp": int(time.time() * 1000),
            "Attributes": dict(contact.attributes),
            "ContactFlowId": plan.flow_id,
            "CustomerEndpoint": contact.customer_endpoint.to_json()
            if contact.customer_endpoint
            else None,
            "SystemEndpoint": contact.system_endpoint.to_json()
            if contact.system_endpoint
            else None,
        }
        if contact.queue is not None and contact.enqueue_timestamp is not None:
            out["QueueInfo"] = {
                "Id": contact.queue.queue_id,
                "EnqueueTimestamp": _dt_ms(contact.enqueue_timestamp),
            }
        if result is not None:
            out["MediaStreams"] = [
                {
                    "StreamARN": s.stream_arn,
                    "StartFragmentNumber": s.start_fragment_number,
                    "StartTimestamp": s.start_timestamp_ms,
                    "StopTimestamp": s.stop_timestamp_ms,
                    "StopFragmentNumber": s.stop_fragment_number,
                }
                for s in result.media_streams
            ]
        return {k: v for k, v in out.items() if v is not None}

    async def place(
        self,
        plan: ContactPlan,
        *,
        customer_audio: Int16Array,
        agent_audio: Int16Array | None = None,
        speed: float = 1.0,
        dtmf: str | None = None,
        on_event: Callable[[str], object] | None = None,
        control: CallControl | None = None,
        contact_id: str | None = None,
    ) -> CallResult:
        """Run one contact to its end (the caller awaits it)."""
        control = control or CallControl()
        known = self.live.get(contact_id) if contact_id else None
        live = known if known is not None else _Live(plan, control)
        call_store = self._call_store()
        task: asyncio.Future[CallResult] | None = None
        try:
            task = asyncio.ensure_future(
                place_call(
                    flow=plan.flow,
                    flows=plan.flows,
                    customer_audio=customer_audio,
                    agent_audio=agent_audio,
                    store=call_store,
                    attributes=plan.attributes,
                    lambdas=plan.lambdas,
                    region=self.registry.region,
                    speed=speed,
                    instance=plan.instance,
                    dtmf=dtmf,
                    on_event=on_event,
                    customer_address=plan.customer_address,
                    system_address=plan.system_address,
                    initiation_method=plan.initiation_method,
                    control=control,
                    contact_events=True,
                    contact_id=contact_id,
                )
            )
            live.task = task
            started = asyncio.ensure_future(control.started.wait())
            try:
                await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                started.cancel()
            contact = control.contact
            if contact is not None:
                self.live[contact.contact_id] = live
                await asyncio.to_thread(
                    self._record, plan, contact.contact_id, self._snapshot(live)
                )
            result = await task
            return result
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            for key in {contact_id, control.contact.contact_id if control.contact else None}:
                if key is not None:
                    self.live.pop(key, None)
            if control.contact is not None:
                ended = (
                    task.result()
                    if task and task.done() and not task.cancelled() and task.exception() is None
                    else None
                )
                with contextlib.suppress(Exception):
                    snapshot = self._snapshot(live, ended)
                    await asyncio.to_thread(
                        self._record, plan, control.contact.contact_id, snapshot
                    )
            await call_store.close()

    def start(self, plan: ContactPlan, *, customer_audio: Int16Array, speed: float = 1.0) -> str:
        """Start a contact in the background (StartOutboundVoiceContact); returns its id
        once it exists (call from the event loop; the id is known before the flow runs)."""
        control = CallControl()
        contact_id = str(uuid.uuid4())
        # known at once: DescribeContact right after StartOutboundVoiceContact finds it
        self.live[contact_id] = _Live(plan, control)
        task = asyncio.ensure_future(
            self.place(
                plan,
                customer_audio=customer_audio,
                speed=speed,
                control=control,
                on_event=lambda line: log.info("contact %s %s", contact_id, line),
                contact_id=contact_id,
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return contact_id

    def outbound_audio(self) -> Int16Array:
        """What an outbound contact's customer side plays: the server's outbound WAV
        (``serve --connect-outbound-audio``), or :data:`OUTBOUND_SILENCE_S` s of silence
        when there is none or it cannot be read any more."""
        from callstream.flows.clock import mono_8k

        path = self.registry.outbound_audio()
        if path is not None:
            try:
                return mono_8k(path)
            except (OSError, ValueError) as err:
                log.warning("outbound audio %s: %s; playing silence", path, err)
        return silence(OUTBOUND_SILENCE_S)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("an outbound contact failed: %s", task.exception())

    async def close(self) -> None:
        """Hang up every running contact and wait for them to end (server shutdown)."""
        for live in list(self.live.values()):
            live.control.stop()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for t in pending:
                t.cancel()

    # -- reading and changing contacts --------------------------------------------------------
    def _live_in(self, instance_id: str, contact_id: str) -> _Live | None:
        live = self.live.get(contact_id)
        if live is None or live.plan.instance_id != self.registry.get_instance(instance_id).id:
            return None
        return live

    def describe(self, instance_id: str, contact_id: str) -> dict[str, Any]:
        """The contact's fields (model names, epoch ms): live, recorded, or from its CTR."""
        live = self._live_in(instance_id, contact_id)
        if live is not None and live.control.contact is not None:
            return self._snapshot(live)
        if live is not None:  # placed, its flow not started yet
            plan = live.plan
            return {
                "Id": contact_id,
                "InitialContactId": contact_id,
                "InitiationMethod": plan.initiation_method,
                "Channel": "VOICE",
                "Name": plan.name,
                "Description": plan.description,
                "Attributes": dict(plan.attributes),
                "CustomerEndpoint": {"Address": plan.customer_address},
                "SystemEndpoint": {"Address": plan.system_address} if plan.system_address else None,
            }
        row = self.registry.get_contact(instance_id, contact_id)
        if row is not None:
            return row.data
        record = self.contacts.get(contact_id)
        instance = self.registry.get_instance(instance_id)
        if record is None or record.get("InstanceARN") != instance.arn:
            raise not_found(f"Contact {contact_id} not found.")
        return _from_ctr(record)

    def attributes(self, instance_id: str, initial_contact_id: str) -> dict[str, str]:
        """The contact's attributes (GetContactAttributes)."""
        return dict(self.describe(instance_id, initial_contact_id).get("Attributes") or {})

    def update_attributes(
        self, instance_id: str, initial_contact_id: str, attributes: Mapping[str, str]
    ) -> None:
        """UpdateContactAttributes: the live contact's attributes (the flow sees them
        from its next block on) and the recorded ones; an empty value removes a key."""
        for key, value in attributes.items():
            if not isinstance(value, str):
                raise invalid(f"Attribute {key} must be a string.")
        live = self._live_in(instance_id, initial_contact_id)
        if live is not None:
            contact = live.control.contact
            target = contact.attributes if contact is not None else live.plan.attributes
            for key, value in attributes.items():
                if value == "":
                    target.pop(key, None)
                else:
                    target[key] = value
            return
        data = self.describe(instance_id, initial_contact_id)
        merged = dict(data.get("Attributes") or {})
        for key, value in attributes.items():
            if value == "":
                merged.pop(key, None)
            else:
                merged[key] = value
        data = {**data, "Attributes": merged, "LastUpdateTimestamp": int(time.time() * 1000)}
        iid = self.registry.get_instance(instance_id).id
        self.registry.record_contact(iid, initial_contact_id, initial_contact_id, data)

    def stop(self, instance_id: str, contact_id: str) -> None:
        """StopContact: hang up a running contact (``ContactNotFoundException`` when it is
        not running)."""
        live = self._live_in(instance_id, contact_id)
        if live is None:
            raise ConnectError("ContactNotFoundException", f"Contact {contact_id} is not active.")
        live.control.stop()


def _ms(value: object) -> int | None:
    """A CTR timestamp (ISO 8601) in epoch ms, or None."""
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _from_ctr(record: Mapping[str, Any]) -> dict[str, Any]:
    """The contact fields of a CTR written by a call placed outside the server."""

    out: dict[str, Any] = {
        "Id": record.get("ContactId"),
        "InitialContactId": record.get("InitialContactId"),
        "PreviousContactId": record.get("PreviousContactId"),
        "InitiationMethod": record.get("InitiationMethod"),
        "Channel": record.get("Channel"),
        "InitiationTimestamp": _ms(record.get("InitiationTimestamp")),
        "ConnectedToSystemTimestamp": _ms(record.get("ConnectedToSystemTimestamp")),
        "DisconnectTimestamp": _ms(record.get("DisconnectTimestamp")),
        "LastUpdateTimestamp": _ms(record.get("LastUpdateTimestamp")),
        "DisconnectReason": record.get("DisconnectReason"),
        "Attributes": dict(record.get("Attributes") or {}),
        "CustomerEndpoint": record.get("CustomerEndpoint"),
        "SystemEndpoint": record.get("SystemEndpoint"),
    }
    return {k: v for k, v in out.items() if v is not None}


def silence(seconds: float) -> Int16Array:
    """``seconds`` of 8 kHz silence."""
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)


def contact_center(
    registry: InstanceRegistry, store: MediaStore, bus: EventBus, contacts: ContactStore
) -> ContactCenter:
    """The registry's contact center (one per server), made on first use."""
    center = registry.center
    if not isinstance(center, ContactCenter):
        center = registry.center = ContactCenter(registry, store, bus, contacts)
    return center
