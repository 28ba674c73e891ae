"""The Kinesis Video Streams resource model: what a stream's names, tags and retention may
be, its limits, and the stream ARN.

The rules follow the botocore ``kinesisvideo`` 2017-09-30 model and what the real service
accepts. Every store backend validates with these functions (so a second backend answers
exactly as the embedded one does) and the API layer can use them too. A rejected value
raises :class:`InvalidValue` (a :class:`ValueError`) carrying the KVS error code; callers
turn it into their own error type (the store: :class:`~callstream.store.base.InvalidArgument`
and :class:`~callstream.store.base.TagsLimitExceeded`). Nothing here does I/O.
"""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from dataclasses import dataclass

__all__ = [
    "DEVICE_NAME_PATTERN",
    "MAX_ARN_LENGTH",
    "MAX_KMS_KEY_ID_LENGTH",
    "MAX_MEDIA_TYPE_LENGTH",
    "MAX_RETENTION_HOURS",
    "MAX_TAGS",
    "MAX_TAG_KEY_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "MEDIA_TYPE_PATTERN",
    "STREAM_ARN_PATTERN",
    "STREAM_NAME_PATTERN",
    "InvalidValue",
    "StreamArn",
    "TooManyTags",
    "is_tag_text",
    "new_stream_version",
    "parse_stream_arn",
    "stream_arn",
    "validate_device_name",
    "validate_kms_key_id",
    "validate_media_type",
    "validate_retention_hours",
    "validate_stream_name",
    "validate_tags",
]

MAX_TAGS = 50
"""Tags per stream."""
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_RETENTION_HOURS = 87600
"""Largest DataRetentionInHours KVS accepts (10 years)."""
MAX_MEDIA_TYPE_LENGTH = 128
MAX_KMS_KEY_ID_LENGTH = 2048
MAX_ARN_LENGTH = 1024

STREAM_NAME_PATTERN = r"[a-zA-Z0-9_.\-]{1,256}"
"""A StreamName (the whole value)."""
DEVICE_NAME_PATTERN = r"[a-zA-Z0-9_.\-]{1,128}"
"""A DeviceName (the whole value)."""
MEDIA_TYPE_PATTERN = r"[\w\-.+]+/[\w\-.+]+(?:,[\w\-.+]+/[\w\-.+]+)*"
"""A MediaType: one or more comma-separated ``type/subtype`` (ASCII word characters)."""
STREAM_ARN_PATTERN = (
    r"arn:(?P<partition>[a-z\d-]+):kinesisvideo:(?P<region>[a-z0-9-]+):(?P<account>[0-9]+)"
    r":stream/(?P<name>[a-zA-Z0-9_.\-]{1,256})/(?P<creation_ms>[0-9]+)"
)
"""A stream ARN: ``arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<creation-ms>``."""

_STREAM_NAME_RE = re.compile(STREAM_NAME_PATTERN)
_DEVICE_NAME_RE = re.compile(DEVICE_NAME_PATTERN)
_MEDIA_TYPE_RE = re.compile(MEDIA_TYPE_PATTERN, re.ASCII)
_STREAM_ARN_RE = re.compile(STREAM_ARN_PATTERN)
_TAG_EXTRA_CHARS = frozenset("_.:/=+-@")
_VERSION_ALPHABET = string.ascii_letters + string.digits
_VERSION_LENGTH = 20


class InvalidValue(ValueError):
    """A value KVS would reject; ``code`` is the KVS error code to answer it with."""

    code = "InvalidArgumentException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TooManyTags(InvalidValue):
    """More than :data:`MAX_TAGS` tags on one stream."""

    code = "TagsPerResourceExceededLimitException"


# --- stream fields -------------------------------------------------------------------------


def validate_stream_name(value: object) -> str:
    """``value`` if it is a valid StreamName (1..256 of ``a-zA-Z0-9_.-``)."""
    if not isinstance(value, str) or _STREAM_NAME_RE.fullmatch(value) is None:
        raise InvalidValue(f"invalid StreamName: {value!r}")
    return value


def validate_device_name(value: object) -> str | None:
    """``value`` if it is None or a valid DeviceName (1..128 of ``a-zA-Z0-9_.-``)."""
    return _optional(value, _DEVICE_NAME_RE, "DeviceName")


def validate_media_type(value: object) -> str | None:
    """``value`` if it is None or a valid MediaType (at most 128 characters)."""
    checked = _optional(value, _MEDIA_TYPE_RE, "MediaType")
    if checked is not None and len(checked) > MAX_MEDIA_TYPE_LENGTH:
        raise InvalidValue(f"MediaType longer than {MAX_MEDIA_TYPE_LENGTH} characters")
    return checked


def validate_kms_key_id(value: object) -> str | None:
    """``value`` if it is None or a KmsKeyId of 1..2048 characters."""
    if value is not None and (
        not isinstance(value, str) or not 1 <= len(value) <= MAX_KMS_KEY_ID_LENGTH
    ):
        raise InvalidValue(f"KmsKeyId must be 1..{MAX_KMS_KEY_ID_LENGTH} characters")
    return value


def validate_retention_hours(value: object) -> int:
    """``value`` if it is an integer DataRetentionInHours in 0..87600 (0: not persisted)."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_RETENTION_HOURS
    ):
        raise InvalidValue(f"DataRetentionInHours must be 0..{MAX_RETENTION_HOURS}")
    return value


def is_tag_text(text: str) -> bool:
    """``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*``: letters, separators, numbers and ``_.:/=+-@``."""
    return all(c in _TAG_EXTRA_CHARS or unicodedata.category(c)[0] in "LZN" for c in text)


def validate_tags(tags: object) -> dict[str, str]:
    """A copy of ``tags`` if it is a valid tag set: at most :data:`MAX_TAGS` (else
    :class:`TooManyTags`), keys of 1..128 and values of 0..256 tag characters."""
    if not isinstance(tags, dict):
        raise InvalidValue("tags must be a mapping")
    if len(tags) > MAX_TAGS:
        raise TooManyTags(f"a stream can have at most {MAX_TAGS} tags")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if (
            not isinstance(key, str)
            or not 1 <= len(key) <= MAX_TAG_KEY_LENGTH
            or not is_tag_text(key)
        ):
            raise InvalidValue(f"invalid tag key: {key!r}")
        if (
            not isinstance(value, str)
            or len(value) > MAX_TAG_VALUE_LENGTH
            or not is_tag_text(value)
        ):
            raise InvalidValue(f"invalid tag value for {key!r}")
        out[key] = value
    return out


def new_stream_version() -> str:
    """A fresh stream Version token (20 random letters and digits)."""
    return "".join(secrets.choice(_VERSION_ALPHABET) for _ in range(_VERSION_LENGTH))


def _optional(value: object, pattern: re.Pattern[str], what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidValue(f"invalid {what}: {value!r}")
    return value


# --- the stream ARN --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamArn:
    """The parts of a stream ARN; ``str()`` gives the ARN back."""

    region: str
    account_id: str
    name: str
    creation_ms: int
    partition: str = "aws"

    def __str__(self) -> str:
        return (
            f"arn:{self.partition}:kinesisvideo:{self.region}:{self.account_id}"
            f":stream/{self.name}/{self.creation_ms}"
        )


def stream_arn(region: str, account_id: str, name: str, creation_ms: int) -> str:
    """The ARN KVS gives stream ``name`` created at ``creation_ms`` (epoch milliseconds)."""
    return str(StreamArn(region, account_id, name, creation_ms))


def parse_stream_arn(arn: object) -> StreamArn:
    """The parts of a stream ARN; :class:`InvalidValue` unless ``arn`` is one."""
    match = _STREAM_ARN_RE.fullmatch(arn) if isinstance(arn, str) else None
    if match is None or len(match[0]) > MAX_ARN_LENGTH:
        raise InvalidValue(f"invalid stream ARN: {arn!r}")
    return StreamArn(
        region=match["region"],
        account_id=match["account"],
        name=match["name"],
        creation_ms=int(match["creation_ms"]),
        partition=match["partition"],
    )
