"""Amazon Connect instances, their storage configs and contact flows, sans-HTTP.

The resources the first slice of Connect's control-plane API manages (``callstream.api.connect``
is its HTTP adapter), kept in one SQLite file of the data directory
(``DATA_DIR/connect.sqlite3``, WAL) so the server and a CLI may open it at once.

Conventions taken from Amazon Connect:

* instance ids are UUIDs; the ARN is ``arn:aws:connect:<region>:<account>:instance/<id>``;
  an ``InstanceAlias`` is unique in the account (``DuplicateResourceException``);
* storage-config ``AssociationId``\\ s are 64 hex digits; only ``MEDIA_STREAMS`` with
  ``KINESIS_VIDEO_STREAM`` is accepted (live media streaming), one per instance;
  ``RetentionPeriodHours`` 0 means no data retention;
* contact flow ids are UUIDs, the ARN ``<instance ARN>/contact-flow/<id>``; names are unique
  in an instance; a ``PUBLISHED`` flow's content must load with
  :func:`callstream.flows.loader.load_flow` (``InvalidContactFlowException`` listing the
  problems), a ``SAVED`` one is kept as sent, as Connect does for drafts.

Refusals raise :class:`ConnectError` carrying the model's exception shape name.
Deleting an instance deletes its storage configs, flows and the resources of
:class:`~callstream.flows.instance_resources.ResourcesMixin` (Lambda associations, claimed
numbers, queues, hours, recorded contacts).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callstream.flows.connect_errors import ConnectError, invalid, not_found
from callstream.flows.instance_resources import ResourcesMixin
from callstream.flows.loader import load_flow
from callstream.flows.model import FlowError
from callstream.sqlite_db import add_missing_columns, open_registry_db

__all__ = [
    "REGISTRY_FILE",
    "ConnectError",
    "ContactFlow",
    "Instance",
    "InstanceRegistry",
    "StorageConfig",
    "open_instances",
]

REGISTRY_FILE = "connect.sqlite3"
"""The registry's file in the data directory."""
MEDIA_STREAMS = "MEDIA_STREAMS"
KINESIS_VIDEO_STREAM = "KINESIS_VIDEO_STREAM"

INSTANCE_ATTRIBUTE_DEFAULTS: dict[str, str] = {
    "CONTACTFLOW_LOGS": "false",
    "CONTACT_LENS": "true",
    "AUTO_RESOLVE_BEST_VOICES": "false",
    "USE_CUSTOM_TTS_VOICES": "false",
    "EARLY_MEDIA": "true",
    "MULTI_PARTY_CONFERENCE": "false",
    "HIGH_VOLUME_OUTBOUND": "false",
    "ENHANCED_CONTACT_MONITORING": "false",
    "ENHANCED_CHAT_MONITORING": "false",
    "MULTI_PARTY_CHAT_CONFERENCE": "false",
    "MESSAGE_STREAMING": "false",
}
"""Instance attributes of a new instance, other than its inbound and outbound calls (what
DescribeInstanceAttribute answers until UpdateInstanceAttribute sets one)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS instances (
        id TEXT PRIMARY KEY,
        alias TEXT UNIQUE,
        identity TEXT NOT NULL,
        inbound INTEGER NOT NULL,
        outbound INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        service_role TEXT NOT NULL,
        extra TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE IF NOT EXISTS storage_configs (
        association_id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        config TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS contact_flows (
        id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        description TEXT,
        content TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        modified_ms INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'ACTIVE',
        UNIQUE (instance_id, name)
    )""",
)
_ADDED_FLOW_COLUMNS = (("state", "TEXT NOT NULL DEFAULT 'ACTIVE'"),)
"""Flow columns added after a registry could have been made (added on open)."""


_not_found = not_found
_invalid = invalid


@dataclass(frozen=True)
class Instance:
    """One Connect instance (the model's ``Instance``); ``created_ms`` is epoch ms."""

    id: str
    arn: str
    identity_management_type: str
    instance_alias: str | None
    inbound_calls_enabled: bool
    outbound_calls_enabled: bool
    created_ms: int
    service_role: str
    status: str = "ACTIVE"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageConfig:
    """A storage config as the model's ``InstanceStorageConfig`` JSON (``config``) plus
    where it belongs."""

    association_id: str
    instance_id: str
    resource_type: str
    config: dict[str, Any]


@dataclass(frozen=True)
class ContactFlow:
    """A contact flow; ``content`` is the flow language JSON text as sent."""

    id: str
    arn: str
    instance_id: str
    name: str
    type: str
    status: str
    description: str | None
    content: str
    tags: dict[str, str]
    modified_ms: int
    state: str = "ACTIVE"
    """``ACTIVE`` or ``ARCHIVED`` (UpdateContactFlowMetadata)."""

    @property
    def content_sha256(self) -> str:
        """``FlowContentSha256``: hex SHA-256 of the content."""
        return hashlib.sha256(self.content.encode()).hexdigest()


def check_flow_content(content: str, flow_type: str) -> None:
    """Raise ``InvalidContactFlowException`` listing the problems unless ``content`` loads."""
    try:
        load_flow(content.encode(), flow_type=flow_type)  # bytes: JSON text, never a path
    except FlowError as err:
        problems = tuple(str(issue) for issue in err.issues) or (str(err),)
        raise ConnectError(
            "InvalidContactFlowException", "The flow is not valid.", problems
        ) from None


def _storable(config: dict[str, Any], resource_type: str) -> dict[str, Any]:
    """A storage config as stored (without its ``AssociationId``), once it is one callstream
    takes: ``MEDIA_STREAMS`` on ``KINESIS_VIDEO_STREAM`` with KMS encryption."""
    storage_type = config.get("StorageType", "")
    if resource_type != MEDIA_STREAMS:
        raise _invalid(f"ResourceType {resource_type} is not supported yet (only MEDIA_STREAMS).")
    if storage_type != KINESIS_VIDEO_STREAM or "KinesisVideoStreamConfig" not in config:
        raise _invalid("MEDIA_STREAMS takes StorageType KINESIS_VIDEO_STREAM with a config.")
    kvs = config["KinesisVideoStreamConfig"]
    if kvs.get("RetentionPeriodHours", 0) < 0:
        raise _invalid("RetentionPeriodHours must be at least 0.")
    if kvs.get("EncryptionConfig", {}).get("EncryptionType") != "KMS":
        raise _invalid("EncryptionConfig.EncryptionType must be KMS.")
    return {k: v for k, v in config.items() if k != "AssociationId"}


class InstanceRegistry(ResourcesMixin):
    """The Connect instances of one data directory. Thread-safe; blocking (call it off the
    event loop in async code)."""

    def __init__(self, path: Path, *, region: str, account_id: str) -> None:
        self.path = Path(path)
        self.region = region
        self.account_id = account_id
        self._lock = threading.Lock()
        self.center: Any = None
        """The server's :class:`~callstream.flows.connect_contacts.ContactCenter` (set on
        first use by the API)."""
        self._db = open_registry_db(self.path)
        for statement in _SCHEMA:
            self._db.execute(statement)
        add_missing_columns(self._db, "contact_flows", _ADDED_FLOW_COLUMNS)
        self._create_resource_tables()

    # -- instances -------------------------------------------------------------------------
    def _instance(self, row: tuple[Any, ...]) -> Instance:
        iid, alias, identity, inbound, outbound, created, role, extra = row
        return Instance(
            id=iid,
            arn=self._connect_arn(f"instance/{iid}"),
            identity_management_type=identity,
            instance_alias=alias,
            inbound_calls_enabled=bool(inbound),
            outbound_calls_enabled=bool(outbound),
            created_ms=created,
            service_role=role,
            extra=json.loads(extra),
        )

    _INSTANCE_COLUMNS = "id, alias, identity, inbound, outbound, created_ms, service_role, extra"

    def _find(self, instance_id: str) -> Instance:
        row = self._by_id_or_arn(
            "instances", self._INSTANCE_COLUMNS, "instance", instance_id, "Instance"
        )
        return self._instance(row)

    def create_instance(
        self,
        *,
        identity_management_type: str,
        inbound_calls_enabled: bool,
        outbound_calls_enabled: bool,
        instance_alias: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Instance:
        """A new ACTIVE instance (``DuplicateResourceException`` for a taken alias)."""
        iid = str(uuid.uuid4())
        role = (
            f"arn:aws:iam::{self.account_id}:role/aws-service-role/connect.amazonaws.com/"
            f"AWSServiceRoleForAmazonConnect_{secrets.token_hex(10).upper()}"
        )
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT INTO instances ({self._INSTANCE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        iid,
                        instance_alias,
                        identity_management_type,
                        int(inbound_calls_enabled),
                        int(outbound_calls_enabled),
                        time.time_ns() // 1_000_000,
                        role,
                        json.dumps(extra or {}),
                    ),
                )
            except sqlite3.IntegrityError:
                raise ConnectError(
                    "DuplicateResourceException",
                    f"An instance with the alias {instance_alias} already exists.",
                ) from None
            return self._find(iid)

    def instance_attributes(self, instance_id: str) -> dict[str, str]:
        """Every instance attribute (``ListInstanceAttributes``): ``INBOUND_CALLS`` and
        ``OUTBOUND_CALLS`` as the instance has them, the rest as set or their defaults."""
        instance = self.get_instance(instance_id)
        values = {**INSTANCE_ATTRIBUTE_DEFAULTS, **instance.extra.get("Attributes", {})}
        values["INBOUND_CALLS"] = str(instance.inbound_calls_enabled).lower()
        values["OUTBOUND_CALLS"] = str(instance.outbound_calls_enabled).lower()
        return values

    def update_instance_attribute(self, instance_id: str, attribute: str, value: str) -> None:
        """Set one attribute (``UpdateInstanceAttribute``); the boolean ones take
        ``true`` / ``false``. ``INBOUND_CALLS`` / ``OUTBOUND_CALLS`` turn the instance's
        inbound and outbound calls on or off."""
        if value not in ("true", "false"):
            raise _invalid(f"Value '{value[:64]}' for {attribute} must be 'true' or 'false'.")
        with self._lock:
            instance = self._find(instance_id)
            if attribute in ("INBOUND_CALLS", "OUTBOUND_CALLS"):
                column = "inbound" if attribute == "INBOUND_CALLS" else "outbound"
                self._db.execute(
                    f"UPDATE instances SET {column} = ? WHERE id = ?",
                    (int(value == "true"), instance.id),
                )
                return
            extra = dict(instance.extra)
            extra["Attributes"] = {**extra.get("Attributes", {}), attribute: value}
            self._db.execute(
                "UPDATE instances SET extra = ? WHERE id = ?", (json.dumps(extra), instance.id)
            )

    def get_instance(self, instance_id: str) -> Instance:
        """The instance with this id (or ARN); ``ResourceNotFoundException`` if none."""
        with self._lock:
            return self._find(instance_id)

    def list_instances(self) -> builtins.list[Instance]:
        """Every instance, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._INSTANCE_COLUMNS} FROM instances ORDER BY created_ms, id"
            ).fetchall()
        return [self._instance(row) for row in rows]

    def delete_instance(self, instance_id: str) -> None:
        """Delete the instance with its storage configs and flows."""
        with self._lock:
            iid = self._find(instance_id).id
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for table, column in (
                    ("storage_configs", "instance_id"),
                    ("contact_flows", "instance_id"),
                    ("instances", "id"),
                ):
                    self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (iid,))
                self._delete_instance_resources(iid)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- storage configs -------------------------------------------------------------------
    def _storage(self, instance_id: str, association_id: str, resource_type: str) -> StorageConfig:
        row = self._db.execute(
            "SELECT association_id, instance_id, resource_type, config FROM storage_configs "
            "WHERE association_id = ? AND instance_id = ? AND resource_type = ?",
            (association_id, instance_id, resource_type),
        ).fetchone()
        if row is None:
            raise _not_found(f"Storage config {association_id} not found.")
        return StorageConfig(row[0], row[1], row[2], json.loads(row[3]))

    def associate_storage(
        self, instance_id: str, resource_type: str, config: dict[str, Any]
    ) -> StorageConfig:
        """Associate a storage config (``ResourceConflictException`` if the instance has
        one for this resource type already)."""
        stored = _storable(config, resource_type)
        association_id = secrets.token_hex(32)
        with self._lock:
            iid = self._find(instance_id).id
            taken = self._db.execute(
                "SELECT 1 FROM storage_configs WHERE instance_id = ? AND resource_type = ?",
                (iid, resource_type),
            ).fetchone()
            if taken is not None:
                raise ConnectError(
                    "ResourceConflictException",
                    f"Instance {iid} already has a {resource_type} storage config.",
                )
            self._db.execute(
                "INSERT INTO storage_configs VALUES (?, ?, ?, ?)",
                (association_id, iid, resource_type, json.dumps(stored)),
            )
            return self._storage(iid, association_id, resource_type)

    def get_storage(
        self, instance_id: str, association_id: str, resource_type: str
    ) -> StorageConfig:
        """One storage config; ``ResourceNotFoundException`` if none."""
        with self._lock:
            return self._storage(self._find(instance_id).id, association_id, resource_type)

    def list_storage(self, instance_id: str, resource_type: str) -> builtins.list[StorageConfig]:
        """The instance's storage configs of this resource type."""
        with self._lock:
            iid = self._find(instance_id).id
            rows = self._db.execute(
                "SELECT association_id, instance_id, resource_type, config FROM storage_configs "
                "WHERE instance_id = ? AND resource_type = ? ORDER BY association_id",
                (iid, resource_type),
            ).fetchall()
        return [StorageConfig(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def update_storage(
        self, instance_id: str, association_id: str, resource_type: str, config: dict[str, Any]
    ) -> StorageConfig:
        """Replace a storage config's settings."""
        stored = _storable(config, resource_type)
        with self._lock:
            iid = self._find(instance_id).id
            self._storage(iid, association_id, resource_type)
            self._db.execute(
                "UPDATE storage_configs SET config = ? WHERE association_id = ?",
                (json.dumps(stored), association_id),
            )
            return self._storage(iid, association_id, resource_type)

    def disassociate_storage(
        self, instance_id: str, association_id: str, resource_type: str
    ) -> None:
        """Remove a storage config."""
        with self._lock:
            iid = self._find(instance_id).id
            self._storage(iid, association_id, resource_type)
            self._db.execute(
                "DELETE FROM storage_configs WHERE association_id = ?", (association_id,)
            )

    # -- contact flows ---------------------------------------------------------------------
    _FLOW_COLUMNS = (
        "id, instance_id, name, type, status, description, content, tags, modified_ms, state"
    )

    def _flow(self, instance: Instance, flow_id: str) -> ContactFlow:
        row = self._db.execute(
            f"SELECT {self._FLOW_COLUMNS} FROM contact_flows WHERE instance_id = ? "
            "AND (id = ? OR ? = ? || '/contact-flow/' || id)",
            (instance.id, flow_id, flow_id, instance.arn),
        ).fetchone()
        if row is None:
            raise _not_found(f"Contact flow {flow_id} not found.")
        return self._flow_of(instance, row)

    @staticmethod
    def _flow_of(instance: Instance, row: tuple[Any, ...]) -> ContactFlow:
        fid, iid, name, ftype, status, description, content, tags, modified, state = row
        return ContactFlow(
            id=fid,
            arn=f"{instance.arn}/contact-flow/{fid}",
            instance_id=iid,
            name=name,
            type=ftype,
            status=status,
            description=description,
            content=content,
            tags=json.loads(tags),
            modified_ms=modified,
            state=state,
        )

    def create_flow(
        self,
        instance_id: str,
        *,
        name: str,
        flow_type: str,
        content: str,
        status: str = "PUBLISHED",
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> ContactFlow:
        """A new flow; a PUBLISHED one must be valid (``InvalidContactFlowException``)."""
        if status == "PUBLISHED":
            check_flow_content(content, flow_type)
        fid = str(uuid.uuid4())
        with self._lock:
            instance = self._find(instance_id)
            try:
                self._db.execute(
                    f"INSERT INTO contact_flows ({self._FLOW_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        fid,
                        instance.id,
                        name,
                        flow_type,
                        status,
                        description,
                        content,
                        json.dumps(tags or {}),
                        time.time_ns() // 1_000_000,
                        "ACTIVE",
                    ),
                )
            except sqlite3.IntegrityError:
                raise ConnectError(
                    "DuplicateResourceException", f"A flow named {name} already exists."
                ) from None
            return self._flow(instance, fid)

    def get_flow(self, instance_id: str, flow_id: str) -> ContactFlow:
        """One flow (by id or ARN); ``ResourceNotFoundException`` if none."""
        with self._lock:
            return self._flow(self._find(instance_id), flow_id)

    def list_flows(
        self, instance_id: str, types: builtins.list[str] | None = None
    ) -> builtins.list[ContactFlow]:
        """The instance's flows by name, only of ``types`` when given."""
        with self._lock:
            instance = self._find(instance_id)
            rows = self._db.execute(
                f"SELECT {self._FLOW_COLUMNS} FROM contact_flows WHERE instance_id = ? "
                "ORDER BY name",
                (instance.id,),
            ).fetchall()
        flows = [self._flow_of(instance, row) for row in rows]
        return [f for f in flows if not types or f.type in types]

    def update_flow_content(self, instance_id: str, flow_id: str, content: str) -> ContactFlow:
        """Replace a flow's content (validated when the flow is PUBLISHED)."""
        with self._lock:
            instance = self._find(instance_id)
            flow = self._flow(instance, flow_id)
        if flow.status == "PUBLISHED":
            check_flow_content(content, flow.type)
        with self._lock:
            self._db.execute(
                "UPDATE contact_flows SET content = ?, modified_ms = ? WHERE id = ?",
                (content, time.time_ns() // 1_000_000, flow.id),
            )
            return self._flow(instance, flow.id)

    def update_flow_metadata(
        self,
        instance_id: str,
        flow_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        state: str | None = None,
    ) -> ContactFlow:
        """Rename, redescribe, archive or restore a flow (UpdateContactFlowName / Metadata);
        a name another flow of the instance has is ``DuplicateResourceException``."""
        with self._lock:
            instance = self._find(instance_id)
            flow = self._flow(instance, flow_id)
            try:
                self._db.execute(
                    "UPDATE contact_flows SET name = ?, description = ?, state = ?, "
                    "modified_ms = ? WHERE id = ?",
                    (
                        flow.name if name is None else name,
                        flow.description if description is None else description,
                        flow.state if state is None else state,
                        time.time_ns() // 1_000_000,
                        flow.id,
                    ),
                )
            except sqlite3.IntegrityError:
                raise ConnectError(
                    "DuplicateResourceException", f"A flow named {name} already exists."
                ) from None
            return self._flow(instance, flow.id)

    def delete_flow(self, instance_id: str, flow_id: str) -> None:
        """Delete a flow."""
        with self._lock:
            flow = self._flow(self._find(instance_id), flow_id)
            self._db.execute("DELETE FROM contact_flows WHERE id = ?", (flow.id,))

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()


def open_instances(data_dir: Path, *, region: str, account_id: str) -> InstanceRegistry:
    """The registry of a data directory (``DATA_DIR/connect.sqlite3``)."""
    return InstanceRegistry(Path(data_dir) / REGISTRY_FILE, region=region, account_id=account_id)
