"""Instance configuration a flow runs against: queues, hours of operation, streaming settings.

The interpreter never looks anything up over the network: the runner builds an
:class:`Instance` (from defaults, a config file or CLI flags) and passes it in. Defaults
mirror a fresh Connect instance: a ``BasicQueue`` on ``Basic Hours`` (open 24/7), live media
streaming enabled.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "BASIC_HOURS_ID",
    "BASIC_QUEUE",
    "DAYS",
    "HoursOfOperation",
    "HoursRange",
    "Instance",
    "Queue",
    "utc_now",
]

DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
BASIC_QUEUE = "BasicQueue"
"""The default queue every Connect instance starts with; the fallback for an empty QueueId."""
BASIC_HOURS_ID = "basic-hours"

_NAMESPACE = uuid.UUID("6f1d0b8e-5a0e-4c8e-9d43-6a8f3f1c2b7a")
_ARN_ID = re.compile(r"/([^/]+)$")


def _stable_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


@dataclass(frozen=True, slots=True)
class HoursRange:
    """One ``Config`` entry: ``day`` from ``start`` to ``end`` (local time).

    ``end <= start`` runs past midnight into the next day; ``00:00``-``00:00`` is the whole day.
    """

    day: str
    start: time
    end: time


def _whole_week() -> tuple[HoursRange, ...]:
    return tuple(HoursRange(day, time(0, 0), time(0, 0)) for day in DAYS)


@dataclass(frozen=True, slots=True)
class HoursOfOperation:
    """An hours-of-operation resource (DescribeHoursOfOperation shape)."""

    hours_id: str
    name: str
    time_zone: str = "UTC"
    config: tuple[HoursRange, ...] = field(default_factory=_whole_week)

    def is_open(self, when: datetime) -> bool:
        """True when ``when`` (timezone-aware; naive means UTC) falls inside a range."""
        zone = ZoneInfo(self.time_zone)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        local = when.astimezone(zone)
        today = DAYS[local.weekday()]
        yesterday = DAYS[(local.weekday() - 1) % 7]
        now = local.time().replace(tzinfo=None)
        for rng in self.config:
            whole_day = rng.start == rng.end == time(0, 0)
            if rng.day == today:
                if whole_day:
                    return True
                if rng.start < rng.end and rng.start <= now < rng.end:
                    return True
                if rng.end <= rng.start and now >= rng.start:
                    return True
            if rng.day == yesterday and not whole_day and rng.end <= rng.start and now < rng.end:
                return True
        return False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> HoursOfOperation:
        """Build from a DescribeHoursOfOperation ``HoursOfOperation`` object."""

        def hm(value: Mapping[str, Any]) -> time:
            return time(int(value.get("Hours", 0)) % 24, int(value.get("Minutes", 0)))

        config = tuple(
            HoursRange(str(item["Day"]).upper(), hm(item["StartTime"]), hm(item["EndTime"]))
            for item in data.get("Config", [])
        )
        name = str(data.get("Name", "hours"))
        return cls(
            hours_id=str(data.get("HoursOfOperationId") or _stable_id("hours", name)),
            name=name,
            time_zone=str(data.get("TimeZone", "UTC")),
            config=config,
        )


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue the contact can be routed to.

    ``at_capacity`` makes TransferContactToQueue take ``QueueAtCapacity`` without asking the
    runner; ``metrics`` feeds CheckMetricData (``NumberOfAgentsAvailable``, ...).
    """

    name: str
    queue_id: str = ""
    arn: str = ""
    hours_of_operation_id: str = BASIC_HOURS_ID
    outbound_caller_id: str | None = None
    at_capacity: bool = False
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Instance:
    """The Connect instance a contact belongs to.

    Live media streaming settings (connect-flows.md §3.3): ``live_media_streaming`` (when
    False every UpdateContactMediaStreamingBehavior block errors), ``stream_prefix``,
    ``kms_key_id``, ``retention_hours``. Streams are named
    ``<prefix>-connect-<alias>-contact-<ContactId>``.
    """

    alias: str = "callstream"
    instance_id: str = "0f4c4b3e-3c2a-4e2b-9d0a-7c1e5b6a9f10"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    live_media_streaming: bool = True
    stream_prefix: str = "callstream"
    kms_key_id: str | None = None
    retention_hours: int = 24
    queues: tuple[Queue, ...] = ()
    hours: tuple[HoursOfOperation, ...] = ()
    default_queue_name: str = BASIC_QUEUE

    def __post_init__(self) -> None:
        queues = [self._complete(q) for q in self.queues]
        if not any(q.name == self.default_queue_name for q in queues):
            queues.insert(0, self._complete(Queue(self.default_queue_name)))
        hours = list(self.hours)
        if not any(h.hours_id == BASIC_HOURS_ID for h in hours):
            hours.insert(0, HoursOfOperation(BASIC_HOURS_ID, "Basic Hours"))
        object.__setattr__(self, "queues", tuple(queues))
        object.__setattr__(self, "hours", tuple(hours))

    def _complete(self, queue: Queue) -> Queue:
        queue_id = queue.queue_id or _stable_id("queue", queue.name)
        arn = queue.arn or f"{self.arn}/queue/{queue_id}"
        return replace(queue, queue_id=queue_id, arn=arn)

    @property
    def arn(self) -> str:
        """``arn:aws:connect:<region>:<account>:instance/<instance id>``."""
        return f"arn:aws:connect:{self.region}:{self.account_id}:instance/{self.instance_id}"

    def stream_name(self, contact_id: str) -> str:
        """The KVS stream for a contact: ``<prefix>-connect-<alias>-contact-<ContactId>``."""
        return f"{self.stream_prefix}-connect-{self.alias}-contact-{contact_id}"

    def flow_arn(self, flow_id: str) -> str:
        """``<instance ARN>/contact-flow/<flow id>``."""
        return f"{self.arn}/contact-flow/{flow_id}"

    @property
    def default_queue(self) -> Queue:
        """The queue an empty QueueId falls back to (``BasicQueue`` unless configured)."""
        found = self.find_queue(self.default_queue_name)
        assert found is not None  # __post_init__ guarantees it
        return found

    def find_queue(self, ref: str) -> Queue | None:
        """A queue by id, ARN, the id at the end of an ARN, or name."""
        if not ref:
            return None
        tail = _ARN_ID.search(ref)
        for queue in self.queues:
            if ref in (queue.queue_id, queue.arn, queue.name):
                return queue
        if tail is not None:
            for queue in self.queues:
                if tail.group(1) == queue.queue_id:
                    return queue
        return None

    def find_hours(self, ref: str) -> HoursOfOperation | None:
        """Hours of operation by id, ARN (last path segment) or name."""
        tail = _ARN_ID.search(ref)
        key = tail.group(1) if tail and ref.startswith("arn:") else ref
        for hours in self.hours:
            if key in (hours.hours_id, hours.name) or ref == hours.name:
                return hours
        return None

    def with_queues(self, *queues: Queue) -> Instance:
        """A copy with extra queues (ids and ARNs filled in)."""
        return replace(self, queues=(*self.queues, *queues))


def utc_now() -> datetime:
    """The default clock: an aware UTC datetime."""
    return datetime.now(tz=UTC)
