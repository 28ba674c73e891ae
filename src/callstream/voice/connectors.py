"""Voice connectors: the resources the Amazon Chime SDK Voice Connector API manages, sans-HTTP.

A voice connector is where SIPREC / Cisco NBR recording sessions are sent; each call leg it
accepts is written to its own KVS-compatible stream when streaming is configured and not
disabled. The registry keeps the connectors in one SQLite file of the data directory
(``DATA_DIR/voice-connectors.sqlite3``, WAL), so the server and a CLI may use it at once:
every lookup first asks SQLite whether another connection committed since the last read
(``PRAGMA data_version``, no table read), and re-reads the (small) table only then.

The HTTP adapter (``callstream.api.chime``), the SIP server and the CLI all go through
:class:`VoiceConnectorRegistry`. Invalid input raises :class:`VoiceConnectorError` carrying
the AWS error code (``BadRequestException``, ``NotFoundException``) and message.

Conventions taken from AWS:

* ids are 22 lowercase letters and digits, like ``fo6zye2x3gr0vjugxb0k5i``;
* ``OutboundHostName`` is ``<id>.voiceconnector.chime.aws``, the host SIPREC / NBR sessions
  are addressed to (:meth:`VoiceConnectorRegistry.resolve` maps it back);
* the ARN is ``arn:aws:chime:<AwsRegion>:<account>:vc/<id>``;
* a connector without a streaming configuration has none (GetVoiceConnectorStreaming-
  Configuration answers ``NotFoundException``); deleting a connector deletes its streaming
  configuration with it.

``swap_roles`` is a callstream extension (not in the AWS API): the SIP side swaps which leg
it treats as the caller and which as the agent for this connector.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callstream.sqlite_db import open_registry_db

__all__ = [
    "AWS_REGIONS",
    "ID_ALPHABET",
    "ID_LENGTH",
    "MAX_CONNECTORS_PER_PAGE",
    "MAX_TAGS",
    "NAME_PATTERN",
    "NOTIFICATION_TARGETS",
    "OUTBOUND_HOST_SUFFIX",
    "REGISTRY_FILE",
    "StreamingConfiguration",
    "VoiceConnector",
    "VoiceConnectorError",
    "VoiceConnectorNotFound",
    "VoiceConnectorRegistry",
    "open_registry",
]

REGISTRY_FILE = "voice-connectors.sqlite3"
"""The registry's file in the data directory."""
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ID_LENGTH = 22
OUTBOUND_HOST_SUFFIX = "voiceconnector.chime.aws"
"""``OutboundHostName`` is ``<VoiceConnectorId>.`` + this, as on AWS."""
NAME_PATTERN = re.compile(r"[a-zA-Z0-9 _.-]+")
NAME_MAX = 256
NOTIFICATION_TARGETS = ("EventBridge", "SNS", "SQS")
MAX_NOTIFICATION_TARGETS = 3
MAX_CONNECTORS_PER_PAGE = 100
"""ListVoiceConnectors ``MaxResults`` upper bound (and the page size when none is given)."""
MAX_TAGS = 50
AWS_REGIONS = (
    "us-east-1",
    "us-west-2",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "ap-northeast-2",
    "ap-northeast-1",
    "ap-southeast-1",
    "ap-southeast-2",
)
"""``VoiceConnectorAwsRegion`` values of the chime-sdk-voice model."""

_BAD_REQUEST = "BadRequestException"
_NOT_FOUND = "NotFoundException"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS voice_connectors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    aws_region TEXT NOT NULL,
    require_encryption INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    swap_roles INTEGER NOT NULL DEFAULT 0,
    streaming TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    extra TEXT NOT NULL DEFAULT '{}'
)
"""


_COLUMNS = (
    "id",
    "name",
    "aws_region",
    "require_encryption",
    "created_ms",
    "updated_ms",
    "swap_roles",
    "streaming",
    "tags",
    "extra",
)


class VoiceConnectorError(Exception):
    """A request the registry refuses: ``code`` is the AWS error code (the exception shape
    name of the chime-sdk-voice model, e.g. ``BadRequestException``), ``message`` says why."""

    code: str
    message: str

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class VoiceConnectorNotFound(VoiceConnectorError):
    """No such voice connector (or no streaming configuration on it): ``NotFoundException``."""

    def __init__(self, message: str) -> None:
        super().__init__(_NOT_FOUND, message)


def _bad(message: str) -> VoiceConnectorError:
    return VoiceConnectorError(_BAD_REQUEST, message)


@dataclass(frozen=True)
class StreamingConfiguration:
    """A connector's streaming settings (``StreamingConfiguration`` of the AWS API).

    ``notification_targets`` holds ``"EventBridge"``, ``"SNS"`` or ``"SQS"`` (at most 3;
    empty when none were given); ``media_insights`` is the ``MediaInsightsConfiguration``
    object as sent (``{"Disabled": bool, "ConfigurationArn": str}``) or ``None``.
    """

    data_retention_in_hours: int
    disabled: bool
    notification_targets: tuple[str, ...] = ()
    media_insights: dict[str, Any] | None = None

    def validate(self) -> None:
        """Raise ``BadRequestException`` unless the settings satisfy the model's rules."""
        retention = self.data_retention_in_hours
        if isinstance(retention, bool) or not isinstance(retention, int) or retention < 0:
            raise _bad(
                f"Value '{retention}' at 'StreamingConfiguration.DataRetentionInHours' failed "
                "to satisfy constraint: Member must have value greater than or equal to 0"
            )
        if not isinstance(self.disabled, bool):
            raise _bad("StreamingConfiguration.Disabled must be a boolean.")
        if len(self.notification_targets) > MAX_NOTIFICATION_TARGETS:
            raise _bad(
                "StreamingConfiguration.StreamingNotificationTargets must have length <= "
                f"{MAX_NOTIFICATION_TARGETS}"
            )
        for target in self.notification_targets:
            if target not in NOTIFICATION_TARGETS:
                raise _bad(
                    f"Value '{target}' at 'StreamingConfiguration.StreamingNotificationTargets"
                    f".member.NotificationTarget' failed to satisfy constraint: Member must "
                    f"satisfy enum value set: [{', '.join(NOTIFICATION_TARGETS)}]"
                )
        if self.media_insights is not None and not isinstance(self.media_insights, dict):
            raise _bad("StreamingConfiguration.MediaInsightsConfiguration must be an object.")

    def to_json(self) -> dict[str, Any]:
        """The configuration as the AWS API renders it (``StreamingConfiguration``)."""
        out: dict[str, Any] = {
            "DataRetentionInHours": self.data_retention_in_hours,
            "Disabled": self.disabled,
        }
        if self.notification_targets:
            out["StreamingNotificationTargets"] = [
                {"NotificationTarget": t} for t in self.notification_targets
            ]
        if self.media_insights is not None:
            out["MediaInsightsConfiguration"] = dict(self.media_insights)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamingConfiguration:
        """The inverse of :meth:`to_json` (no validation)."""
        targets = data.get("StreamingNotificationTargets") or []
        insights = data.get("MediaInsightsConfiguration")
        return cls(
            data_retention_in_hours=data["DataRetentionInHours"],
            disabled=data["Disabled"],
            notification_targets=tuple(t.get("NotificationTarget", "") for t in targets),
            media_insights=dict(insights) if insights is not None else None,
        )


@dataclass(frozen=True)
class VoiceConnector:
    """One voice connector. ``created_ms`` / ``updated_ms`` are epoch milliseconds; ``tags``
    are ``(key, value)`` pairs in the order given; ``extra`` holds the optional members of
    CreateVoiceConnector the registry only echoes (``IntegrationType``, ``NetworkType``)."""

    voice_connector_id: str
    name: str
    aws_region: str
    outbound_host_name: str
    require_encryption: bool
    created_ms: int
    updated_ms: int
    arn: str
    streaming: StreamingConfiguration | None = None
    swap_roles: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def streaming_enabled(self) -> bool:
        """Streaming is configured and not disabled: calls are written to streams."""
        return self.streaming is not None and not self.streaming.disabled


def _validate_name(name: Any) -> str:
    if not isinstance(name, str):
        raise _bad("Name must be a string.")
    if not 1 <= len(name) <= NAME_MAX:
        raise _bad(
            f"Value '{name[:64]}' at 'Name' failed to satisfy constraint: Member must have "
            f"length between 1 and {NAME_MAX}"
        )
    if NAME_PATTERN.fullmatch(name) is None:
        raise _bad(
            f"Value '{name[:64]}' at 'Name' failed to satisfy constraint: Member must satisfy "
            f"regular expression pattern: {NAME_PATTERN.pattern}"
        )
    return name


def _validate_tags(tags: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for key, value in tags:
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise _bad("A tag Key must be a string of 1 to 128 characters.")
        if not isinstance(value, str) or len(value) > 256:
            raise _bad("A tag Value must be a string of at most 256 characters.")
        out[key] = value
    if len(out) > MAX_TAGS:
        raise _bad(f"A voice connector can have at most {MAX_TAGS} tags.")
    return tuple(out.items())


def _encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _bad("NextToken is not valid.") from None
    after = payload.get("after") if isinstance(payload, dict) else None
    if not isinstance(after, str):
        raise _bad("NextToken is not valid.")
    return after


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class VoiceConnectorRegistry:
    """The voice connectors of one data directory, in a SQLite file (WAL) that several
    processes may open at once. Thread-safe; every method is blocking (a few SQLite
    statements): call it off the event loop in async code.

    Lookups (:meth:`get`, :meth:`list`, :meth:`resolve`) read a cached copy of the table,
    refreshed when any connection has committed a change since (one ``PRAGMA
    data_version`` per lookup), so resolving every INVITE costs microseconds.
    """

    def __init__(self, path: Path, *, region: str, account_id: str) -> None:
        self.path = Path(path)
        self.region = region
        self.account_id = account_id
        self._lock = threading.Lock()
        self._db = open_registry_db(self.path)
        self._db.execute(_SCHEMA)
        self._cache: dict[str, VoiceConnector] | None = None
        self._version: int | None = None
        self.on_change: Callable[[], None] | None = None
        """Called after every change made through this registry (from the writing thread,
        under the registry's lock: it must only signal, as a cluster sync's wake-up does)."""

    # -- reading ---------------------------------------------------------------------------
    def _row(self, row: tuple[Any, ...]) -> VoiceConnector:
        vc_id, name, region, encrypt, created, updated, swap, streaming, tags, extra = row
        return VoiceConnector(
            voice_connector_id=vc_id,
            name=name,
            aws_region=region,
            outbound_host_name=f"{vc_id}.{OUTBOUND_HOST_SUFFIX}",
            require_encryption=bool(encrypt),
            created_ms=created,
            updated_ms=updated,
            arn=f"arn:aws:chime:{region}:{self.account_id}:vc/{vc_id}",
            streaming=StreamingConfiguration.from_json(json.loads(streaming))
            if streaming
            else None,
            swap_roles=bool(swap),
            tags=tuple((k, v) for k, v in json.loads(tags)),
            extra=json.loads(extra),
        )

    def _snapshot(self) -> dict[str, VoiceConnector]:
        """All connectors by id, re-read only when the file changed (caller holds the lock)."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if self._cache is None or version != self._version:
            rows = self._db.execute(
                "SELECT id, name, aws_region, require_encryption, created_ms, updated_ms, "
                "swap_roles, streaming, tags, extra FROM voice_connectors ORDER BY id"
            ).fetchall()
            self._cache = {row[0]: self._row(row) for row in rows}
            self._version = version
        return self._cache

    def _find(self, voice_connector_id: str) -> VoiceConnector:
        connector = self._snapshot().get(voice_connector_id)
        if connector is None:
            raise VoiceConnectorNotFound(f"Voice connector {voice_connector_id} not found.")
        return connector

    def get(self, voice_connector_id: str) -> VoiceConnector:
        """The connector with this id; :class:`VoiceConnectorNotFound` if there is none."""
        with self._lock:
            return self._find(voice_connector_id)

    def list(
        self, *, max_results: int | None = None, next_token: str | None = None
    ) -> tuple[builtins.list[VoiceConnector], str | None]:
        """One page of connectors in id order and the token of the next page (``None`` on
        the last). ``max_results`` is 1..100 (default 100); a token from an earlier call
        continues after its page (``BadRequestException`` if it is not one)."""
        limit = MAX_CONNECTORS_PER_PAGE if max_results is None else max_results
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise _bad(
                f"Value '{max_results}' at 'MaxResults' failed to satisfy constraint: Member "
                f"must have value between 1 and {MAX_CONNECTORS_PER_PAGE}"
            )
        after = _decode_token(next_token) if next_token else None
        with self._lock:
            ordered = list(self._snapshot().values())
        if after is not None:
            ordered = [c for c in ordered if c.voice_connector_id > after]
        page = ordered[:limit]
        token = _encode_token(page[-1].voice_connector_id) if len(ordered) > limit else None
        return page, token

    def resolve(self, host: str | None, *, default_id: str | None = None) -> VoiceConnector | None:
        """The connector a SIP request is for, from the host it was addressed to (the
        Request-URI host). ``<VoiceConnectorId>.voiceconnector.<anything>`` (any case, a
        ``:port`` allowed) selects that connector, or nothing if it does not exist. Any
        other host (or none) selects ``default_id``'s connector when given (``None`` if it
        does not exist), else the only connector when there is exactly one, else ``None``.
        """
        with self._lock:
            connectors = self._snapshot()
            labels = host.strip().lower().rstrip(".").split(".") if host else []
            if len(labels) >= 3 and labels[1] == "voiceconnector" and labels[0]:
                return connectors.get(labels[0])
            if default_id is not None:
                return connectors.get(default_id)
            if len(connectors) == 1:
                return next(iter(connectors.values()))
            return None

    # -- writing ---------------------------------------------------------------------------
    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one change in its own transaction (caller holds the lock); the row count."""
        try:
            cursor = self._db.execute(sql, params)
        finally:
            self._changed()
        return cursor.rowcount

    def _changed(self) -> None:
        self._cache = None  # our own commits do not move data_version
        if self.on_change is not None:
            self.on_change()

    # -- replication (a cluster keeps every node's registry the same) ------------------------
    def documents(self) -> dict[str, dict[str, Any]]:
        """Every connector as stored (column -> value, JSON types), by id."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM voice_connectors ORDER BY id"
            ).fetchall()
        return {row[0]: dict(zip(_COLUMNS, row, strict=True)) for row in rows}

    def apply(self, voice_connector_id: str, document: Mapping[str, Any] | None) -> None:
        """Store another node's version of a connector as it is (None: it was deleted),
        without calling :attr:`on_change`. :class:`ValueError` for a malformed document."""
        if document is not None:
            missing = [c for c in _COLUMNS if c not in document]
            if missing or document["id"] != voice_connector_id:
                raise ValueError(f"not a voice connector document (missing {missing})")
        with self._lock:
            try:
                if document is None:
                    self._db.execute(
                        "DELETE FROM voice_connectors WHERE id = ?", (voice_connector_id,)
                    )
                else:
                    self._db.execute(
                        f"INSERT OR REPLACE INTO voice_connectors ({', '.join(_COLUMNS)}) "
                        f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
                        tuple(document[c] for c in _COLUMNS),
                    )
            finally:
                self._cache = None

    def create(
        self,
        name: str,
        *,
        require_encryption: bool,
        aws_region: str | None = None,
        tags: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> VoiceConnector:
        """A new connector (``aws_region`` defaults to the registry's region; it must be
        one of :data:`AWS_REGIONS` when given)."""
        _validate_name(name)
        if not isinstance(require_encryption, bool):
            raise _bad("RequireEncryption must be a boolean.")
        if aws_region is not None and aws_region not in AWS_REGIONS:
            raise _bad(
                f"Value '{aws_region}' at 'AwsRegion' failed to satisfy constraint: Member "
                f"must satisfy enum value set: [{', '.join(AWS_REGIONS)}]"
            )
        pairs = tags.items() if isinstance(tags, Mapping) else (tags or ())
        tag_pairs = _validate_tags(pairs)
        now = _now_ms()
        with self._lock:
            for _ in range(8):
                vc_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
                try:
                    self._write(
                        "INSERT INTO voice_connectors (id, name, aws_region, require_encryption,"
                        " created_ms, updated_ms, tags, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            vc_id,
                            name,
                            aws_region or self.region,
                            int(require_encryption),
                            now,
                            now,
                            json.dumps([list(p) for p in tag_pairs]),
                            json.dumps(dict(extra or {})),
                        ),
                    )
                except sqlite3.IntegrityError:  # pragma: no cover - 36**22 ids
                    continue
                return self._find(vc_id)
        raise RuntimeError("could not allocate a voice connector id")  # pragma: no cover

    def update(
        self, voice_connector_id: str, *, name: str, require_encryption: bool
    ) -> VoiceConnector:
        """Rename the connector and set whether it requires encryption."""
        _validate_name(name)
        if not isinstance(require_encryption, bool):
            raise _bad("RequireEncryption must be a boolean.")
        with self._lock:
            changed = self._write(
                "UPDATE voice_connectors SET name = ?, require_encryption = ?, updated_ms = ? "
                "WHERE id = ?",
                (name, int(require_encryption), _now_ms(), voice_connector_id),
            )
            if not changed:
                raise VoiceConnectorNotFound(f"Voice connector {voice_connector_id} not found.")
            return self._find(voice_connector_id)

    def delete(self, voice_connector_id: str) -> None:
        """Delete the connector (and its streaming configuration)."""
        with self._lock:
            if not self._write("DELETE FROM voice_connectors WHERE id = ?", (voice_connector_id,)):
                raise VoiceConnectorNotFound(f"Voice connector {voice_connector_id} not found.")

    def put_streaming(
        self, voice_connector_id: str, config: StreamingConfiguration
    ) -> StreamingConfiguration:
        """Set (replace) the connector's streaming configuration; returns it."""
        config.validate()
        with self._lock:
            changed = self._write(
                "UPDATE voice_connectors SET streaming = ? WHERE id = ?",
                (json.dumps(config.to_json()), voice_connector_id),
            )
            if not changed:
                raise VoiceConnectorNotFound(f"Voice connector {voice_connector_id} not found.")
            streaming = self._find(voice_connector_id).streaming
        assert streaming is not None
        return streaming

    def get_streaming(self, voice_connector_id: str) -> StreamingConfiguration:
        """The connector's streaming configuration; ``NotFoundException`` when the connector
        does not exist or has none (as AWS answers)."""
        streaming = self.get(voice_connector_id).streaming
        if streaming is None:
            raise VoiceConnectorNotFound(
                f"Voice connector {voice_connector_id} has no streaming configuration."
            )
        return streaming

    def delete_streaming(self, voice_connector_id: str) -> None:
        """Remove the streaming configuration (``NotFoundException`` if there is none)."""
        with self._lock:
            if not self._write(
                "UPDATE voice_connectors SET streaming = NULL WHERE id = ? "
                "AND streaming IS NOT NULL",
                (voice_connector_id,),
            ):
                self._find(voice_connector_id)
                raise VoiceConnectorNotFound(
                    f"Voice connector {voice_connector_id} has no streaming configuration."
                )

    def set_swap_roles(self, voice_connector_id: str, swap: bool) -> VoiceConnector:
        """Swap (or not) the caller and agent legs of this connector's calls."""
        with self._lock:
            if not self._write(
                "UPDATE voice_connectors SET swap_roles = ? WHERE id = ?",
                (int(bool(swap)), voice_connector_id),
            ):
                raise VoiceConnectorNotFound(f"Voice connector {voice_connector_id} not found.")
            return self._find(voice_connector_id)

    def _retag(self, voice_connector_id: str, change: Any) -> VoiceConnector:
        """Apply ``change(tags) -> tags`` in one write transaction (caller holds the lock)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "SELECT tags FROM voice_connectors WHERE id = ?", (voice_connector_id,)
            ).fetchone()
            if row is None:
                raise VoiceConnectorNotFound(f"Voice connector {voice_connector_id} not found.")
            tags = _validate_tags(change(dict(json.loads(row[0]))).items())
            self._db.execute(
                "UPDATE voice_connectors SET tags = ? WHERE id = ?",
                (json.dumps([list(p) for p in tags]), voice_connector_id),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._changed()
        return self._find(voice_connector_id)

    def tag(self, voice_connector_id: str, tags: Iterable[tuple[str, str]]) -> VoiceConnector:
        """Add or overwrite tags (at most 50 in all)."""
        new = _validate_tags(tags)
        with self._lock:
            return self._retag(voice_connector_id, lambda current: {**current, **dict(new)})

    def untag(self, voice_connector_id: str, keys: Iterable[str]) -> VoiceConnector:
        """Remove the tags with these keys (absent keys are ignored)."""
        drop = set(keys)
        with self._lock:
            return self._retag(
                voice_connector_id,
                lambda current: {k: v for k, v in current.items() if k not in drop},
            )

    def by_arn(self, arn: str) -> VoiceConnector:
        """The connector with this ARN (``NotFoundException`` if none)."""
        with self._lock:
            for connector in self._snapshot().values():
                if connector.arn == arn:
                    return connector
        raise VoiceConnectorNotFound(f"Resource {arn} not found.")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()


def open_registry(data_dir: Path, *, region: str, account_id: str) -> VoiceConnectorRegistry:
    """The registry of a data directory (``DATA_DIR/voice-connectors.sqlite3``)."""
    return VoiceConnectorRegistry(
        Path(data_dir) / REGISTRY_FILE, region=region, account_id=account_id
    )
