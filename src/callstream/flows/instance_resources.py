"""The resources of a Connect instance beyond its flows: Lambda associations, phone numbers,
queues, hours of operation, tags and the contacts placed through the server.

:class:`ResourcesMixin` is part of :class:`callstream.flows.instances.InstanceRegistry` (the
same SQLite file, ``DATA_DIR/connect.sqlite3``); it is kept apart because it holds what a
*call* needs from an instance, where ``instances`` holds what configures one.

Conventions taken from Amazon Connect:

* **Lambda functions** are associated with an instance by ARN (AssociateLambdaFunction);
  callstream cannot run AWS Lambda, so each ARN is *bound* to a local handler
  (``module:function``, ``path/to/file.py:function``) or an ``http(s)://`` URL in a
  server-side map (:meth:`ResourcesMixin.bind_lambda`; ``callstream serve --connect-lambda
  ARN=TARGET``). Only associated ARNs run in a call placed through the server; an ARN that
  is associated but bound to nothing fails its block (Error branch), as an ARN Connect
  cannot invoke does.
* **Phone numbers** are claimed from the server's pool (:data:`DEFAULT_PHONE_POOL`,
  ``+1555010xxxx``; ``callstream serve --phone-numbers``): an entry is an E.164 number or
  a pattern whose trailing ``x``\\ s stand for any digit. A claimed number has an id (UUID),
  the ARN ``arn:aws:connect:<region>:<account>:phone-number/<id>``, a target instance and
  at most one contact flow (AssociatePhoneNumberContactFlow).
* **Queues** and **hours of operation** are stored with Connect's shapes and handed to the
  flow engine (:meth:`ResourcesMixin.runtime_instance`): ``BasicQueue`` and ``Basic Hours``
  exist in every instance as in a fresh Connect instance.
* **Contacts** placed through the server (a call to a number, StartOutboundVoiceContact) are
  recorded with their instance, attributes and timestamps; the running ones are also
  reachable live (:mod:`callstream.flows.connect_contacts`).
"""

from __future__ import annotations

import base64
import builtins
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from callstream.flows.connect_errors import ConnectError, invalid, not_found
from callstream.flows.instance import BASIC_HOURS_ID, BASIC_QUEUE, HoursOfOperation, Queue
from callstream.flows.instance import Instance as RuntimeInstance

if TYPE_CHECKING:
    from callstream.flows.instances import ContactFlow, Instance

__all__ = [
    "DEFAULT_PHONE_POOL",
    "ContactRow",
    "HoursRow",
    "LambdaBinding",
    "PhoneNumber",
    "QueueRow",
    "ResourcesMixin",
    "page",
    "parse_phone_pool",
]

DEFAULT_PHONE_POOL = "+1555010xxxx"
"""Numbers ClaimPhoneNumber hands out unless ``callstream serve --phone-numbers`` says
otherwise: +1 555 010 0000 to +1 555 010 9999."""

RESOURCE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS lambda_functions (
        instance_id TEXT NOT NULL,
        function_arn TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (instance_id, function_arn)
    )""",
    """CREATE TABLE IF NOT EXISTS lambda_handlers (
        function_arn TEXT PRIMARY KEY,
        target TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS phone_numbers (
        id TEXT PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        instance_id TEXT NOT NULL,
        description TEXT,
        flow_id TEXT,
        tags TEXT NOT NULL DEFAULT '{}',
        created_ms INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS queues (
        id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (instance_id, name)
    )""",
    """CREATE TABLE IF NOT EXISTS hours_of_operation (
        id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        UNIQUE (instance_id, name)
    )""",
    """CREATE TABLE IF NOT EXISTS tags (
        arn TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (arn, key)
    )""",
    """CREATE TABLE IF NOT EXISTS contacts (
        id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        initial_contact_id TEXT NOT NULL,
        data TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS contacts_initial ON contacts (instance_id, initial_contact_id)",
)

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_POOL_ENTRY = re.compile(r"^\+[1-9][0-9]*x*$")
_TOLL_FREE = ("+1800", "+1888", "+1877", "+1866", "+1855", "+1844", "+1833")
_COUNTRY = {"+1": "US", "+44": "GB", "+49": "DE", "+33": "FR", "+61": "AU", "+81": "JP"}

T = TypeVar("T")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- paging ---------------------------------------------------------------------------------
def page(
    items: Sequence[T], next_token: str | None, max_results: int | None, *, default: int = 100
) -> tuple[list[T], str | None]:
    """One page of ``items`` (in a stable order) from ``next_token``: the page and the
    token of the next one (None on the last page). A token this function did not make is
    an ``InvalidParameterException``."""
    start = 0
    if next_token:
        try:
            start = int(base64.urlsafe_b64decode(next_token.encode()).decode().removeprefix("o:"))
        except (ValueError, UnicodeDecodeError):
            raise invalid("NextToken is not valid.") from None
        if start < 0 or start > len(items):
            raise invalid("NextToken is not valid.")
    size = max_results if max_results and max_results > 0 else default
    chunk = list(items[start : start + size])
    end = start + len(chunk)
    token = base64.urlsafe_b64encode(f"o:{end}".encode()).decode() if end < len(items) else None
    return chunk, token


# --- the phone number pool ------------------------------------------------------------------
def parse_phone_pool(spec: str) -> tuple[str, ...]:
    """Pool entries from ``+15550100000,+1555020xxxx``; ValueError naming a bad entry."""
    entries = tuple(e.strip() for e in spec.split(",") if e.strip())
    if not entries:
        raise ValueError("the phone number pool is empty")
    for entry in entries:
        digits = len(entry) - 1
        if not _POOL_ENTRY.match(entry) or digits > 15 or digits < 2:
            raise ValueError(f"{entry!r} is not an E.164 number or a pattern such as +1555010xxxx")
    return entries


def _in_pool(number: str, pool: Sequence[str]) -> bool:
    for entry in pool:
        fixed = entry.rstrip("x")
        if len(number) == len(entry) and number.startswith(fixed) and number[1:].isdigit():
            return True
    return False


def _pool_numbers(pool: Sequence[str]) -> Iterator[str]:
    for entry in pool:
        fixed = entry.rstrip("x")
        free = len(entry) - len(fixed)
        if free == 0:
            yield entry
            continue
        for n in range(10**free):
            yield f"{fixed}{n:0{free}d}"


def country_code(number: str) -> str:
    """The ISO country of an E.164 number (``US`` unless a few known prefixes say else)."""
    for prefix in sorted(_COUNTRY, key=len, reverse=True):
        if number.startswith(prefix):
            return _COUNTRY[prefix]
    return "US"


def number_type(number: str) -> str:
    """``TOLL_FREE`` for North American toll-free prefixes, else ``DID``."""
    return "TOLL_FREE" if number.startswith(_TOLL_FREE) else "DID"


# --- rows -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LambdaBinding:
    """An associated Lambda function and the handler it is bound to (None: unbound)."""

    function_arn: str
    target: str | None


@dataclass(frozen=True)
class PhoneNumber:
    """A claimed phone number."""

    id: str
    arn: str
    number: str
    instance_id: str
    instance_arn: str
    description: str | None
    flow_id: str | None
    tags: dict[str, str]

    @property
    def country_code(self) -> str:
        """``PhoneNumberCountryCode``."""
        return country_code(self.number)

    @property
    def type(self) -> str:
        """``PhoneNumberType``."""
        return number_type(self.number)


@dataclass(frozen=True)
class QueueRow:
    """A queue (the model's ``Queue``): ``data`` holds the optional members as sent."""

    id: str
    arn: str
    instance_id: str
    name: str
    data: dict[str, Any]
    standard: bool = True


@dataclass(frozen=True)
class HoursRow:
    """Hours of operation (the model's ``HoursOfOperation``)."""

    id: str
    arn: str
    instance_id: str
    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ContactRow:
    """A contact placed through the server, as last recorded (``data``: its fields in the
    model's ``Contact`` names, timestamps in epoch ms, plus ``Attributes``)."""

    id: str
    instance_id: str
    initial_contact_id: str
    data: dict[str, Any] = field(default_factory=dict)


_Named = TypeVar("_Named", QueueRow, HoursRow)


def _by_ref(rows: Iterable[_Named], ref: str, what: str) -> _Named:
    """The queue or hours of ``rows`` whose id or ARN is ``ref``; ``ResourceNotFoundException``
    naming ``what`` when there is none."""
    for row in rows:
        if ref in (row.id, row.arn):
            return row
    raise not_found(f"{what} {ref} not found.")


_BASIC_HOURS_CONFIG = [
    {
        "Day": day,
        "StartTime": {"Hours": 0, "Minutes": 0},
        "EndTime": {"Hours": 0, "Minutes": 0},
    }
    for day in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
]


class ResourcesMixin:
    """Lambda associations, numbers, queues, hours, tags and contacts of the registry."""

    region: str
    account_id: str
    _db: sqlite3.Connection
    _lock: threading.Lock

    if TYPE_CHECKING:

        def _find(self, instance_id: str) -> Instance: ...

        def get_flow(self, instance_id: str, flow_id: str) -> ContactFlow: ...

        def list_flows(
            self, instance_id: str, types: builtins.list[str] | None = None
        ) -> builtins.list[ContactFlow]: ...

        def list_storage(self, instance_id: str, resource_type: str) -> builtins.list[Any]: ...

    def _create_resource_tables(self) -> None:
        for statement in RESOURCE_SCHEMA:
            self._db.execute(statement)

    def _delete_instance_resources(self, instance_id: str) -> None:
        """Inside the instance deletion's transaction."""
        for table in (
            "lambda_functions",
            "phone_numbers",
            "queues",
            "hours_of_operation",
            "contacts",
        ):
            self._db.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))

    # -- ARNs (instances and phone numbers are account-level resources) ---------------------
    def _connect_arn(self, resource: str) -> str:
        """``arn:aws:connect:<region>:<account>:<resource>`` (``instance/<id>``, ...)."""
        return f"arn:aws:connect:{self.region}:{self.account_id}:{resource}"

    def _by_id_or_arn(
        self,
        table: str,
        columns: str,
        kind: str,
        ref: str,
        what: str,
        *,
        or_column: str | None = None,
    ) -> tuple[Any, ...]:
        """The row of ``table`` that ``ref`` names by its id, its ARN (``kind``: the ARN's
        resource type) or the value of ``or_column``; ``ResourceNotFoundException`` naming
        ``what`` when there is none."""
        where = "id = ? OR ? = (? || id)"
        params: tuple[str, ...] = (ref, ref, self._connect_arn(f"{kind}/"))
        if or_column is not None:
            where += f" OR {or_column} = ?"
            params += (ref,)
        sql = f"SELECT {columns} FROM {table} WHERE {where}"
        row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
        if row is None:
            raise not_found(f"{what} {ref} not found.")
        return row

    # -- settings ---------------------------------------------------------------------------
    def set_phone_pool(self, spec: str) -> None:
        """The pool ClaimPhoneNumber takes numbers from (:func:`parse_phone_pool`)."""
        parse_phone_pool(spec)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO settings VALUES ('phone_pool', ?)", (spec,))

    def set_outbound_audio(self, path: str | None) -> None:
        """The WAV an outbound contact's customer side plays (None: silence)."""
        with self._lock:
            if path is None:
                self._db.execute("DELETE FROM settings WHERE key = 'outbound_audio'")
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO settings VALUES ('outbound_audio', ?)", (path,)
                )

    def outbound_audio(self) -> str | None:
        """The WAV :meth:`set_outbound_audio` set, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM settings WHERE key = 'outbound_audio'"
            ).fetchone()
        return str(row[0]) if row else None

    def phone_pool(self) -> tuple[str, ...]:
        """The pool's entries (default :data:`DEFAULT_PHONE_POOL`)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM settings WHERE key = 'phone_pool'").fetchone()
        return parse_phone_pool(row[0] if row else DEFAULT_PHONE_POOL)

    # -- Lambda functions -------------------------------------------------------------------
    def associate_lambda(self, instance_id: str, function_arn: str) -> None:
        """Associate a function (``ResourceConflictException`` when it already is)."""
        if not function_arn.startswith("arn:") or ":function:" not in function_arn:
            raise invalid(f"{function_arn} is not a Lambda function ARN.")
        with self._lock:
            iid = self._find(instance_id).id
            try:
                self._db.execute(
                    "INSERT INTO lambda_functions VALUES (?, ?, ?)", (iid, function_arn, _now_ms())
                )
            except sqlite3.IntegrityError:
                raise ConnectError(
                    "ResourceConflictException",
                    f"{function_arn} is already associated with instance {iid}.",
                ) from None

    def disassociate_lambda(self, instance_id: str, function_arn: str) -> None:
        """Remove an association (``ResourceNotFoundException`` when there is none)."""
        with self._lock:
            iid = self._find(instance_id).id
            gone = self._db.execute(
                "DELETE FROM lambda_functions WHERE instance_id = ? AND function_arn = ?",
                (iid, function_arn),
            ).rowcount
        if not gone:
            raise not_found(f"{function_arn} is not associated with instance {iid}.")

    def list_lambdas(self, instance_id: str) -> builtins.list[str]:
        """The associated function ARNs, in the order they were associated."""
        with self._lock:
            iid = self._find(instance_id).id
            rows = self._db.execute(
                "SELECT function_arn FROM lambda_functions WHERE instance_id = ? "
                "ORDER BY created_ms, function_arn",
                (iid,),
            ).fetchall()
        return [r[0] for r in rows]

    def bind_lambda(self, function_arn: str, target: str | None) -> None:
        """Bind a function ARN to a handler (``module:function``, ``file.py:function``) or a
        URL; None removes the binding. Bindings are server-wide (every instance)."""
        with self._lock:
            if target is None:
                self._db.execute(
                    "DELETE FROM lambda_handlers WHERE function_arn = ?", (function_arn,)
                )
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO lambda_handlers VALUES (?, ?)", (function_arn, target)
                )

    def lambda_bindings(self, instance_id: str) -> builtins.list[LambdaBinding]:
        """The instance's associated functions with their handlers."""
        with self._lock:
            iid = self._find(instance_id).id
            rows = self._db.execute(
                "SELECT f.function_arn, h.target FROM lambda_functions f LEFT JOIN "
                "lambda_handlers h ON h.function_arn = f.function_arn WHERE f.instance_id = ? "
                "ORDER BY f.created_ms, f.function_arn",
                (iid,),
            ).fetchall()
        return [LambdaBinding(r[0], r[1]) for r in rows]

    # -- phone numbers ----------------------------------------------------------------------
    def _number_of(self, row: tuple[Any, ...]) -> PhoneNumber:
        nid, number, iid, description, flow_id, tags = row
        return PhoneNumber(
            id=nid,
            arn=self._connect_arn(f"phone-number/{nid}"),
            number=number,
            instance_id=iid,
            instance_arn=self._connect_arn(f"instance/{iid}"),
            description=description,
            flow_id=flow_id,
            tags=json.loads(tags),
        )

    _NUMBER_COLUMNS = "id, number, instance_id, description, flow_id, tags"

    def _number(self, ref: str) -> PhoneNumber:
        row = self._by_id_or_arn(
            "phone_numbers",
            self._NUMBER_COLUMNS,
            "phone-number",
            ref,
            "Phone number",
            or_column="number",
        )
        return self._number_of(row)

    def available_numbers(
        self,
        prefix: str | None = None,
        limit: int = 10,
        *,
        country: str | None = None,
        kind: str | None = None,
    ) -> builtins.list[str]:
        """Numbers of the pool nobody claimed (``SearchAvailablePhoneNumbers``), of one
        country and type (``DID``, ``TOLL_FREE``) when given."""
        pool = self.phone_pool()
        with self._lock:
            claimed = {r[0] for r in self._db.execute("SELECT number FROM phone_numbers")}
        out: list[str] = []
        for number in _pool_numbers(pool):
            if number in claimed or (prefix and not number.startswith(prefix)):
                continue
            if (country and country_code(number) != country) or (
                kind and number_type(number) != kind
            ):
                continue
            out.append(number)
            if len(out) >= limit:
                break
        return out

    def claim_number(
        self,
        number: str,
        *,
        instance_id: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> PhoneNumber:
        """Claim ``number`` from the pool for an instance."""
        if not _E164.match(number):
            raise invalid(f"{number} is not an E.164 phone number (e.g. +15550100000).")
        if not _in_pool(number, self.phone_pool()):
            raise invalid(
                f"{number} is not available: claim one of the server's pool "
                "(SearchAvailablePhoneNumbers lists them)."
            )
        nid = str(uuid.uuid4())
        with self._lock:
            iid = self._find(instance_id).id
            try:
                self._db.execute(
                    "INSERT INTO phone_numbers VALUES (?, ?, ?, ?, NULL, ?, ?)",
                    (nid, number, iid, description, json.dumps(tags or {}), _now_ms()),
                )
            except sqlite3.IntegrityError:
                raise ConnectError(
                    "IdempotencyException", f"{number} has already been claimed."
                ) from None
            return self._number(nid)

    def get_number(self, ref: str) -> PhoneNumber:
        """A claimed number by id, ARN or the number itself."""
        with self._lock:
            return self._number(ref)

    def list_numbers(self, instance_id: str | None = None) -> builtins.list[PhoneNumber]:
        """Claimed numbers (of one instance when given), by number."""
        with self._lock:
            if instance_id is None:
                rows = self._db.execute(
                    f"SELECT {self._NUMBER_COLUMNS} FROM phone_numbers ORDER BY number"
                ).fetchall()
            else:
                iid = self._find(instance_id).id
                rows = self._db.execute(
                    f"SELECT {self._NUMBER_COLUMNS} FROM phone_numbers WHERE instance_id = ? "
                    "ORDER BY number",
                    (iid,),
                ).fetchall()
        return [self._number_of(r) for r in rows]

    def release_number(self, ref: str) -> None:
        """Give a number back to the pool."""
        with self._lock:
            number = self._number(ref)
            self._db.execute("DELETE FROM phone_numbers WHERE id = ?", (number.id,))

    def associate_number_flow(self, ref: str, instance_id: str, flow_id: str) -> PhoneNumber:
        """Point a number at a contact flow of its instance."""
        flow = self.get_flow(instance_id, flow_id)  # ResourceNotFoundException
        with self._lock:
            number = self._number(ref)
            if number.instance_id != flow.instance_id:
                raise not_found(f"Phone number {ref} is not claimed for instance {instance_id}.")
            self._db.execute(
                "UPDATE phone_numbers SET flow_id = ? WHERE id = ?", (flow.id, number.id)
            )
            return self._number(number.id)

    def disassociate_number_flow(self, ref: str, instance_id: str) -> None:
        """Unbind a number from its flow."""
        with self._lock:
            iid = self._find(instance_id).id
            number = self._number(ref)
            if number.instance_id != iid:
                raise not_found(f"Phone number {ref} is not claimed for instance {instance_id}.")
            self._db.execute("UPDATE phone_numbers SET flow_id = NULL WHERE id = ?", (number.id,))

    # -- queues and hours -------------------------------------------------------------------
    def _stable(self, instance_id: str, kind: str, name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"callstream:{instance_id}:{kind}:{name}"))

    def basic_hours_id(self, instance_id: str) -> str:
        """The id of the instance's ``Basic Hours`` (24/7)."""
        return self._stable(instance_id, "hours", "Basic Hours")

    def _builtin_hours(self, instance: Instance) -> HoursRow:
        hid = self.basic_hours_id(instance.id)
        return HoursRow(
            id=hid,
            arn=f"{instance.arn}/operating-hours/{hid}",
            instance_id=instance.id,
            name="Basic Hours",
            data={"TimeZone": "UTC", "Config": _BASIC_HOURS_CONFIG, "Description": "24/7"},
        )

    def _builtin_queue(self, instance: Instance) -> QueueRow:
        qid = self._stable(instance.id, "queue", BASIC_QUEUE)
        return QueueRow(
            id=qid,
            arn=f"{instance.arn}/queue/{qid}",
            instance_id=instance.id,
            name=BASIC_QUEUE,
            data={"HoursOfOperationId": self.basic_hours_id(instance.id), "Status": "ENABLED"},
        )

    def create_hours(self, instance_id: str, name: str, data: dict[str, Any]) -> HoursRow:
        """Store hours of operation (``TimeZone``, ``Config``, ``Description``, ``Tags``)."""
        try:
            HoursOfOperation.from_api({"Name": name, **data}).is_open(datetime.now(UTC))
        except Exception as err:  # an unknown time zone, a bad day or hour
            raise invalid(f"The hours of operation are not valid: {err}") from None
        hid = str(uuid.uuid4())
        with self._lock:
            instance = self._find(instance_id)
            if name == "Basic Hours":
                raise ConnectError("DuplicateResourceException", f"{name} already exists.")
            try:
                self._db.execute(
                    "INSERT INTO hours_of_operation VALUES (?, ?, ?, ?, ?)",
                    (hid, instance.id, name, json.dumps(data), _now_ms()),
                )
            except sqlite3.IntegrityError:
                raise ConnectError(
                    "DuplicateResourceException", f"Hours of operation {name} already exist."
                ) from None
            return self._hours(instance, hid)

    def _stored(
        self, instance: Instance, table: str, kind: str, row_type: type[_Named]
    ) -> builtins.list[_Named]:
        """The queues or hours of operation (``table``) created in ``instance``, oldest
        first; ``kind``: their type in the ARN ``<instance ARN>/<kind>/<id>``."""
        rows = self._db.execute(
            f"SELECT id, name, data FROM {table} WHERE instance_id = ? ORDER BY created_ms, id",
            (instance.id,),
        ).fetchall()
        return [
            row_type(r[0], f"{instance.arn}/{kind}/{r[0]}", instance.id, r[1], json.loads(r[2]))
            for r in rows
        ]

    def _hours(self, instance: Instance, ref: str) -> HoursRow:
        return _by_ref(self._hours_list(instance), ref, "Hours of operation")

    def _hours_list(self, instance: Instance) -> builtins.list[HoursRow]:
        stored = self._stored(instance, "hours_of_operation", "operating-hours", HoursRow)
        return [self._builtin_hours(instance), *stored]

    def get_hours(self, instance_id: str, hours_id: str) -> HoursRow:
        """Hours of operation by id or ARN."""
        with self._lock:
            return self._hours(self._find(instance_id), hours_id)

    def list_hours(self, instance_id: str) -> builtins.list[HoursRow]:
        """The instance's hours of operation (``Basic Hours`` first)."""
        with self._lock:
            return self._hours_list(self._find(instance_id))

    def create_queue(self, instance_id: str, name: str, data: dict[str, Any]) -> QueueRow:
        """Store a queue; its ``HoursOfOperationId`` must exist."""
        qid = str(uuid.uuid4())
        with self._lock:
            instance = self._find(instance_id)
            self._hours(instance, str(data.get("HoursOfOperationId", "")))
            if name == BASIC_QUEUE:
                raise ConnectError("DuplicateResourceException", f"{name} already exists.")
            try:
                self._db.execute(
                    "INSERT INTO queues VALUES (?, ?, ?, ?, ?)",
                    (qid, instance.id, name, json.dumps({**data, "Status": "ENABLED"}), _now_ms()),
                )
            except sqlite3.IntegrityError:
                raise ConnectError(
                    "DuplicateResourceException", f"A queue named {name} already exists."
                ) from None
            return self._queue(instance, qid)

    def _queues(self, instance: Instance) -> builtins.list[QueueRow]:
        return [self._builtin_queue(instance), *self._stored(instance, "queues", "queue", QueueRow)]

    def _queue(self, instance: Instance, ref: str) -> QueueRow:
        return _by_ref(self._queues(instance), ref, "Queue")

    def get_queue(self, instance_id: str, queue_id: str) -> QueueRow:
        """A queue by id or ARN."""
        with self._lock:
            return self._queue(self._find(instance_id), queue_id)

    def list_queues(self, instance_id: str) -> builtins.list[QueueRow]:
        """The instance's standard queues (``BasicQueue`` first)."""
        with self._lock:
            return self._queues(self._find(instance_id))

    # -- tags -------------------------------------------------------------------------------
    def _check_arn(self, arn: str) -> None:
        prefix = self._connect_arn("")
        if not arn.startswith(prefix):
            raise not_found(f"Resource {arn} not found.")
        rest = arn[len(prefix) :]
        parts = rest.split("/")
        if parts[0] == "phone-number" and len(parts) == 2:
            self._number(parts[1])
            return
        if parts[0] != "instance" or len(parts) < 2:
            raise not_found(f"Resource {arn} not found.")
        instance = self._find(parts[1])
        if len(parts) == 2:
            return
        if len(parts) == 4 and parts[2] == "contact-flow":
            if not self._db.execute(
                "SELECT 1 FROM contact_flows WHERE id = ? AND instance_id = ?",
                (parts[3], instance.id),
            ).fetchone():
                raise not_found(f"Resource {arn} not found.")
            return
        if len(parts) == 4 and parts[2] == "queue":
            self._queue(instance, parts[3])
            return
        if len(parts) == 4 and parts[2] == "operating-hours":
            self._hours(instance, parts[3])
            return
        raise not_found(f"Resource {arn} not found.")

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        """Add or replace tags of a resource of this registry."""
        with self._lock:
            self._check_arn(arn)
            self._db.executemany(
                "INSERT OR REPLACE INTO tags VALUES (?, ?, ?)",
                [(arn, k, v) for k, v in tags.items()],
            )

    def untag_resource(self, arn: str, keys: Sequence[str]) -> None:
        """Remove tags of a resource."""
        with self._lock:
            self._check_arn(arn)
            self._db.executemany(
                "DELETE FROM tags WHERE arn = ? AND key = ?", [(arn, k) for k in keys]
            )

    def list_tags(self, arn: str) -> dict[str, str]:
        """A resource's tags."""
        with self._lock:
            self._check_arn(arn)
            rows = self._db.execute(
                "SELECT key, value FROM tags WHERE arn = ? ORDER BY key", (arn,)
            ).fetchall()
        return {k: v for k, v in rows}

    # -- contacts ---------------------------------------------------------------------------
    def record_contact(
        self, instance_id: str, contact_id: str, initial: str, data: dict[str, Any]
    ) -> None:
        """Insert or replace a contact placed through the server."""
        with self._lock:
            self._db.execute(
                "INSERT INTO contacts VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "data = excluded.data",
                (contact_id, instance_id, initial, json.dumps(data), _now_ms()),
            )

    def get_contact(self, instance_id: str, contact_id: str) -> ContactRow | None:
        """A recorded contact of the instance (None when there is none)."""
        with self._lock:
            iid = self._find(instance_id).id
            row = self._db.execute(
                "SELECT id, instance_id, initial_contact_id, data FROM contacts "
                "WHERE id = ? AND instance_id = ?",
                (contact_id, iid),
            ).fetchone()
        return None if row is None else ContactRow(row[0], row[1], row[2], json.loads(row[3]))

    # -- the engine's view ------------------------------------------------------------------
    def runtime_instance(self, instance_id: str) -> RuntimeInstance:
        """The flow engine's :class:`~callstream.flows.instance.Instance` for this instance:
        its alias, the MEDIA_STREAMS storage config (none: live media streaming disabled,
        so streaming blocks take their Error branch), its queues and hours."""
        configs = self.list_storage(instance_id, "MEDIA_STREAMS")
        with self._lock:
            instance = self._find(instance_id)
            queues = self._queues(instance)
            hours = self._hours_list(instance)
            numbers = {
                r[0]: r[1]
                for r in self._db.execute(
                    "SELECT id, number FROM phone_numbers WHERE instance_id = ?", (instance.id,)
                )
            }
        kvs = configs[0].config.get("KinesisVideoStreamConfig", {}) if configs else {}
        encryption = kvs.get("EncryptionConfig") or {}
        runtime_hours = tuple(
            HoursOfOperation.from_api({"HoursOfOperationId": h.id, "Name": h.name, **h.data})
            for h in hours
        )
        runtime_queues = tuple(
            Queue(
                name=q.name,
                queue_id=q.id,
                arn=q.arn,
                hours_of_operation_id=str(q.data.get("HoursOfOperationId") or BASIC_HOURS_ID),
                outbound_caller_id=numbers.get(
                    str((q.data.get("OutboundCallerConfig") or {}).get("OutboundCallerIdNumberId"))
                ),
            )
            for q in queues
        )
        return RuntimeInstance(
            alias=instance.instance_alias or instance.id,
            instance_id=instance.id,
            region=self.region,
            account_id=self.account_id,
            live_media_streaming=bool(configs),
            stream_prefix=str(kvs.get("Prefix") or "connect"),
            kms_key_id=encryption.get("KeyId"),
            retention_hours=int(kvs.get("RetentionPeriodHours", 0)),
            queues=runtime_queues,
            hours=runtime_hours,
        )
