"""Control plane of the ``kinesisvideo`` service (kvs-wire §1): streams, endpoints, tags.

Every operation and its input rules are declared once, in :data:`OPERATIONS`; the rules
follow the botocore ``kinesisvideo`` 2017-09-30 model. Responses are shaped as real KVS
sends them: ``StreamInfo`` with alphabetical keys (including the undocumented
``IngestionConfiguration: null``), ``CreationTime`` as a JSON number of epoch seconds, and
the stream ARN ending in the creation time in epoch milliseconds.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from callstream.api.app import Handler, ServerState, json_response
from callstream.api.errors import KvsError
from callstream.api.shapes import (
    Body,
    Enum,
    Integer,
    ListOf,
    MapOf,
    Operation,
    String,
    Structure,
    routes,
    tag_text,
)
from callstream.store.base import StreamRecord, VersionMismatch

__all__ = ["API_NAMES", "MAX_RETENTION_HOURS", "OPERATIONS", "ROUTES", "stream_info"]

MAX_RETENTION_HOURS = 87600
"""Largest DataRetentionInHours KVS accepts (10 years)."""
MAX_TAGS = 50
"""Tags per stream."""
DEFAULT_LIST_STREAMS = 10000
API_NAMES = (
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
)
"""GetDataEndpoint ``APIName`` values; every node serves them all."""

# --- shapes (botocore kinesisvideo 2017-09-30) ----------------------------------------------
STREAM_NAME = String(1, 256, r"[a-zA-Z0-9_.-]+")
DEVICE_NAME = String(1, 128, r"[a-zA-Z0-9_.-]+")
MEDIA_TYPE = String(1, 128, r"[\w\-\.\+]+/[\w\-\.\+]+(,[\w\-\.\+]+/[\w\-\.\+]+)*")
KMS_KEY_ID = String(1, 2048, r".+")
VERSION = String(1, 64, r"[a-zA-Z0-9]+")
ARN_PATTERN = r"arn:[a-z\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+"
RESOURCE_ARN = String(1, 1024, ARN_PATTERN)
STREAM_ARN_FOR_TAGS = String(1, 1024, ARN_PATTERN, error="InvalidResourceFormatException")
"""TagStream / UntagStream / ListTagsForStream answer a malformed ARN with
InvalidResourceFormatException."""
NEXT_TOKEN = String(0, 1024, r"[a-zA-Z0-9+/=]*")
TAG_KEY = String(1, 128, r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$", predicate=tag_text)
TAG_VALUE = String(0, 256, r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*", predicate=tag_text)
TAG_MAP = MapOf(
    TAG_KEY, TAG_VALUE, min_len=1, max_len=MAX_TAGS, error="TagsPerResourceExceededLimitException"
)
TAG_KEY_LIST = ListOf(TAG_KEY, min_len=1, max_len=MAX_TAGS)
TAG_LIST = ListOf(
    Structure({"Key": TAG_KEY, "Value": TAG_VALUE}, frozenset({"Key", "Value"})),
    min_len=1,
    max_len=MAX_TAGS,
    error="TagsPerResourceExceededLimitException",
)
STREAM_REF = {"StreamName": STREAM_NAME, "StreamARN": RESOURCE_ARN}
TAGS_STREAM_REF = {"StreamName": STREAM_NAME, "StreamARN": STREAM_ARN_FOR_TAGS}


# --- responses ------------------------------------------------------------------------------
def stream_info(rec: StreamRecord) -> dict[str, Any]:
    """``StreamInfo`` as real KVS renders it (keys alphabetical; absent optional values
    omitted; ``IngestionConfiguration`` null like the real service)."""
    info: dict[str, Any] = {
        "CreationTime": rec.creation_time_ms / 1000,
        "DataRetentionInHours": rec.data_retention_hours,
        "DeviceName": rec.device_name,
        "IngestionConfiguration": None,
        "KmsKeyId": rec.kms_key_id,
        "MediaType": rec.media_type,
        "Status": rec.status,
        "StreamARN": rec.arn,
        "StreamName": rec.name,
        "Version": rec.version,
    }
    return {k: v for k, v in info.items() if v is not None or k == "IngestionConfiguration"}


def _encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(raw).decode("ascii")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        payload = json.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError):
        raise KvsError("InvalidArgumentException", "NextToken is not valid.") from None
    if not isinstance(payload, dict):
        raise KvsError("InvalidArgumentException", "NextToken is not valid.")
    return payload


async def _update(
    state: ServerState, rec: StreamRecord, version: str, **changes: Any
) -> StreamRecord:
    return await state.store.update_stream(rec.arn, version, **changes)


async def _retag(state: ServerState, rec: StreamRecord, change: Any, attempts: int = 5) -> None:
    """Apply ``change(tags) -> tags`` to the stream's tags. Tag operations carry no
    version, so a concurrent update of the stream is retried rather than reported."""
    for attempt in range(attempts):
        try:
            await _update(state, rec, rec.version, tags=change(dict(rec.tags)))
            return
        except VersionMismatch:
            if attempt == attempts - 1:
                raise
            rec = await state.store.stream(arn=rec.arn)


# --- handlers -------------------------------------------------------------------------------
async def create_stream(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
    """``POST /createStream``."""
    retention = int(body.get("DataRetentionInHours") or 0)
    if retention > MAX_RETENTION_HOURS:
        raise KvsError(
            "InvalidArgumentException",
            f"DataRetentionInHours must be at most {MAX_RETENTION_HOURS}.",
        )
    rec = await state.store.create_stream(
        body["StreamName"],
        device_name=body.get("DeviceName"),
        media_type=body.get("MediaType"),
        kms_key_id=body.get("KmsKeyId"),
        data_retention_hours=retention,
        tags=dict(body.get("Tags") or {}),
    )
    return json_response({"StreamARN": rec.arn})


async def describe_stream(
    request: web.Request, state: ServerState, body: Body
) -> web.StreamResponse:
    """``POST /describeStream``."""
    rec = await state.stream(body)
    return json_response({"StreamInfo": stream_info(rec)})


async def list_streams(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
    """``POST /listStreams``: by name, ``MaxResults`` per page, opaque ``NextToken``."""
    limit = int(body.get("MaxResults") or DEFAULT_LIST_STREAMS)
    condition = body.get("StreamNameCondition") or {}
    prefix = condition.get("ComparisonValue") or None
    after: str | None = None
    token = body.get("NextToken")
    if token:
        after = _decode_token(token).get("after")
        if not isinstance(after, str):
            raise KvsError("InvalidArgumentException", "NextToken is not valid.")
    records = await state.store.list_streams(prefix=prefix, after_name=after, limit=limit + 1)
    out: dict[str, Any] = {"StreamInfoList": [stream_info(r) for r in records[:limit]]}
    if len(records) > limit:
        out["NextToken"] = _encode_token({"after": records[limit - 1].name})
    return json_response(out)


async def update_stream(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
    """``POST /updateStream``: DeviceName / MediaType, guarded by ``CurrentVersion``."""
    rec = await state.stream(body)
    changes = {
        key: body[member]
        for member, key in (("DeviceName", "device_name"), ("MediaType", "media_type"))
        if body.get(member) is not None
    }
    await _update(state, rec, body["CurrentVersion"], **changes)
    return json_response({})


async def update_data_retention(
    request: web.Request, state: ServerState, body: Body
) -> web.StreamResponse:
    """``POST /updateDataRetention``: add or remove hours (0 .. 87600 as the result)."""
    rec = await state.stream(body)
    if body["CurrentVersion"] != rec.version:  # stale versions first, as for UpdateStream
        raise VersionMismatch(f"stream version is not {body['CurrentVersion']}")
    change = int(body["DataRetentionChangeInHours"])
    if body["Operation"] == "DECREASE_DATA_RETENTION":
        change = -change
    new = rec.data_retention_hours + change
    if new < 0:
        raise KvsError(
            "InvalidArgumentException",
            f"Cannot decrease the data retention of {rec.data_retention_hours} hours "
            f"by {-change} hours.",
        )
    if new > MAX_RETENTION_HOURS:
        raise KvsError(
            "InvalidArgumentException",
            f"The data retention cannot exceed {MAX_RETENTION_HOURS} hours.",
        )
    await _update(state, rec, body["CurrentVersion"], data_retention_hours=new)
    return json_response({})


async def delete_stream(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
    """``POST /deleteStream``; readers of the live edge are woken and end."""
    arn = body["StreamARN"]
    await state.store.delete_stream(arn, body.get("CurrentVersion"))
    return json_response({})


async def get_data_endpoint(
    request: web.Request, state: ServerState, body: Body
) -> web.StreamResponse:
    """``POST /getDataEndpoint``: this server serves every data-plane API; in a cluster,
    a live GetMedia reader is sent to the node that ingests the stream (if it advertises
    its URL), so the live bytes need not cross nodes."""
    rec = await state.stream(body)
    if body["APIName"] == "GET_MEDIA":
        owner = await state.store.live_ingest_url(rec.arn)
        if owner is not None:
            return json_response({"DataEndpoint": owner})
    return json_response({"DataEndpoint": state.endpoint(request)})


async def tag_stream(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
    """``POST /tagStream``: add tags, replacing the values of existing keys."""
    rec = await state.stream(body)
    new = dict(body["Tags"])
    await _retag(state, rec, lambda tags: {**tags, **new})
    return json_response({})


async def untag_stream(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
    """``POST /untagStream``: remove keys (absent keys are ignored)."""
    rec = await state.stream(body)
    gone = set(body["TagKeyList"])
    await _retag(state, rec, lambda tags: {k: v for k, v in tags.items() if k not in gone})
    return json_response({})


async def list_tags_for_stream(
    request: web.Request, state: ServerState, body: Body
) -> web.StreamResponse:
    """``POST /listTagsForStream``: at most 50 tags, so always one page."""
    rec = await state.stream(body)
    return json_response({"Tags": dict(rec.tags)})


async def _resource(state: ServerState, body: Body) -> StreamRecord:
    return await state.stream({"StreamARN": body["ResourceARN"]})


async def tag_resource(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
    """``POST /TagResource``: ``Tags`` is a list of ``{Key, Value}``."""
    rec = await _resource(state, body)
    new = {t["Key"]: t["Value"] for t in body["Tags"]}
    await _retag(state, rec, lambda tags: {**tags, **new})
    return json_response({})


async def untag_resource(
    request: web.Request, state: ServerState, body: Body
) -> web.StreamResponse:
    """``POST /UntagResource``."""
    rec = await _resource(state, body)
    gone = set(body["TagKeyList"])
    await _retag(state, rec, lambda tags: {k: v for k, v in tags.items() if k not in gone})
    return json_response({})


async def list_tags_for_resource(
    request: web.Request, state: ServerState, body: Body
) -> web.StreamResponse:
    """``POST /ListTagsForResource``: tags as a map, one page."""
    rec = await _resource(state, body)
    return json_response({"Tags": dict(rec.tags)})


# --- the operation table --------------------------------------------------------------------
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "CreateStream",
        "/createStream",
        Structure(
            {
                "DeviceName": DEVICE_NAME,
                "StreamName": STREAM_NAME,
                "MediaType": MEDIA_TYPE,
                "KmsKeyId": KMS_KEY_ID,
                "DataRetentionInHours": Integer(min=0),
                # Empty Tags are accepted (SDK users pass {}); more than 50 are refused.
                "Tags": MapOf(
                    TAG_KEY,
                    TAG_VALUE,
                    max_len=MAX_TAGS,
                    error="TagsPerResourceExceededLimitException",
                ),
                "StreamStorageConfiguration": Structure(
                    {"DefaultStorageTier": Enum(("HOT", "WARM"))},
                    frozenset({"DefaultStorageTier"}),
                ),
            },
            frozenset({"StreamName"}),
        ),
        create_stream,
    ),
    Operation("DescribeStream", "/describeStream", Structure(STREAM_REF), describe_stream),
    Operation(
        "ListStreams",
        "/listStreams",
        Structure(
            {
                "MaxResults": Integer(1, 10000),
                "NextToken": NEXT_TOKEN,
                "StreamNameCondition": Structure(
                    {"ComparisonOperator": Enum(("BEGINS_WITH",)), "ComparisonValue": STREAM_NAME}
                ),
            }
        ),
        list_streams,
    ),
    Operation(
        "DeleteStream",
        "/deleteStream",
        Structure({"StreamARN": RESOURCE_ARN, "CurrentVersion": VERSION}, frozenset({"StreamARN"})),
        delete_stream,
    ),
    Operation(
        "UpdateStream",
        "/updateStream",
        Structure(
            {
                **STREAM_REF,
                "CurrentVersion": VERSION,
                "DeviceName": DEVICE_NAME,
                "MediaType": MEDIA_TYPE,
            },
            frozenset({"CurrentVersion"}),
        ),
        update_stream,
    ),
    Operation(
        "UpdateDataRetention",
        "/updateDataRetention",
        Structure(
            {
                **STREAM_REF,
                "CurrentVersion": VERSION,
                "Operation": Enum(("INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION")),
                "DataRetentionChangeInHours": Integer(min=1),
            },
            frozenset({"CurrentVersion", "Operation", "DataRetentionChangeInHours"}),
        ),
        update_data_retention,
    ),
    Operation(
        "GetDataEndpoint",
        "/getDataEndpoint",
        Structure({**STREAM_REF, "APIName": Enum(API_NAMES)}, frozenset({"APIName"})),
        get_data_endpoint,
    ),
    Operation(
        "TagStream",
        "/tagStream",
        Structure({**TAGS_STREAM_REF, "Tags": TAG_MAP}, frozenset({"Tags"})),
        tag_stream,
    ),
    Operation(
        "UntagStream",
        "/untagStream",
        Structure({**TAGS_STREAM_REF, "TagKeyList": TAG_KEY_LIST}, frozenset({"TagKeyList"})),
        untag_stream,
    ),
    Operation(
        "ListTagsForStream",
        "/listTagsForStream",
        Structure({**TAGS_STREAM_REF, "NextToken": NEXT_TOKEN}),
        list_tags_for_stream,
    ),
    Operation(
        "TagResource",
        "/TagResource",
        Structure(
            {"ResourceARN": RESOURCE_ARN, "Tags": TAG_LIST}, frozenset({"ResourceARN", "Tags"})
        ),
        tag_resource,
    ),
    Operation(
        "UntagResource",
        "/UntagResource",
        Structure(
            {"ResourceARN": RESOURCE_ARN, "TagKeyList": TAG_KEY_LIST},
            frozenset({"ResourceARN", "TagKeyList"}),
        ),
        untag_resource,
    ),
    Operation(
        "ListTagsForResource",
        "/ListTagsForResource",
        Structure(
            {"ResourceARN": RESOURCE_ARN, "NextToken": NEXT_TOKEN}, frozenset({"ResourceARN"})
        ),
        list_tags_for_resource,
    ),
)
"""The control-plane operations (kvs-wire §1.2) with their input rules (§1.3)."""

ROUTES: dict[str, Handler] = routes(OPERATIONS)
