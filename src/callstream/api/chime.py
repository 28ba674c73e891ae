"""The Amazon Chime SDK Voice API (``chime-sdk-voice``) for voice connectors, over HTTP.

Voice connectors are managed with the real AWS clients pointed at ``callstream serve``
(``boto3.client("chime-sdk-voice", endpoint_url=...)``, ``aws chime-sdk-voice ...``), signed
with SigV4 and the service name ``chime`` on the same port and keys as the KVS API. The
wire format is that of the botocore model ``chime-sdk-voice`` 2022-08-03 (``rest-json``):
each operation has its HTTP method and URI (the connector id is a path parameter, list
parameters are in the query string), JSON bodies, ``CreatedTimestamp`` /
``UpdatedTimestamp`` as ISO 8601 strings with milliseconds, 201 for
CreateVoiceConnector and 204 with no body for the deletions and tag operations.

Errors are the model's exception shapes with their HTTP statuses, sent as Chime does:
``x-amzn-ErrorType: NotFoundException`` and the body ``{"Code": "NotFound", "Message":
"..."}`` (botocore, the JS SDK v3 and the AWS CLI take the code from the header, so
``client.exceptions.NotFoundException`` is raised). Input that breaks the model's
constraints (lengths, patterns, enums, ranges, required members) or is not JSON is a
``BadRequestException``. Authentication failures, oversized or slow bodies and unknown
routes under these paths keep the KVS API's error shapes (``InvalidSignatureException``,
``UnknownOperationException``, ...).

Operations: CreateVoiceConnector, GetVoiceConnector, ListVoiceConnectors,
UpdateVoiceConnector, DeleteVoiceConnector, PutVoiceConnectorStreamingConfiguration,
GetVoiceConnectorStreamingConfiguration, DeleteVoiceConnectorStreamingConfiguration,
TagResource, UntagResource, ListTagsForResource. The state lives in
:class:`callstream.voice.connectors.VoiceConnectorRegistry`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aiohttp import web

from callstream.api.app import Handler, ServerState, json_response, read_json
from callstream.api.errors import KvsError
from callstream.api.shapes import Boolean, Enum, Integer, ListOf, String, Structure
from callstream.voice.connectors import (
    AWS_REGIONS,
    NOTIFICATION_TARGETS,
    StreamingConfiguration,
    VoiceConnector,
    VoiceConnectorError,
)

__all__ = [
    "CHIME_ERRORS",
    "OPERATIONS",
    "ROUTES",
    "SIGNING_NAME",
    "ChimeOperation",
    "error_response",
    "is_chime_path",
    "iso8601",
    "streaming_json",
    "voice_connector_json",
]

SIGNING_NAME = "chime"
"""The SigV4 service name of ``chime-sdk-voice`` (its model's ``signingName``)."""

CHIME_ERRORS: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        "BadRequestException": (400, "BadRequest"),
        "NotFoundException": (404, "NotFound"),
        "ConflictException": (409, "Conflict"),
        "ForbiddenException": (403, "Forbidden"),
        "AccessDeniedException": (403, "AccessDenied"),
        "UnauthorizedClientException": (401, "Unauthorized"),
        "ResourceLimitExceededException": (400, "ResourceLimitExceeded"),
        "ThrottledClientException": (429, "Throttled"),
        "ServiceFailureException": (500, "ServiceFailure"),
        "ServiceUnavailableException": (503, "ServiceUnavailable"),
    }
)
"""Exception shape -> (HTTP status from the model, ``Code`` sent in the body, from the
model's ``ErrorCode`` enum)."""

_PREFIXES = ("/voice-connectors", "/tags")

# --- shapes (botocore chime-sdk-voice 2022-08-03) ----------------------------------------------
NAME = String(1, 256, r"[a-zA-Z0-9 _.-]+")
ARN = String(1, 1024, r"^arn[\/\:\-\_\.a-zA-Z0-9]+$")
TAG_KEY = String(1, 128)
TAG = Structure({"Key": TAG_KEY, "Value": String(0, 256)}, frozenset({"Key", "Value"}))
TAG_LIST = ListOf(TAG, min_len=1, max_len=50)
INTEGRATION_TYPES = ("CONNECT_CALL_TRANSFER_CONNECTOR", "CONNECT_ANALYTICS_CONNECTOR")
NETWORK_TYPES = ("IPV4_ONLY", "DUAL_STACK")
CREATE_INPUT = Structure(
    {
        "Name": NAME,
        "AwsRegion": Enum(AWS_REGIONS),
        "RequireEncryption": Boolean(),
        "Tags": TAG_LIST,
        "IntegrationType": Enum(INTEGRATION_TYPES),
        "NetworkType": Enum(NETWORK_TYPES),
    },
    frozenset({"Name", "RequireEncryption"}),
)
UPDATE_INPUT = Structure(
    {"Name": NAME, "RequireEncryption": Boolean()}, frozenset({"Name", "RequireEncryption"})
)
STREAMING_CONFIGURATION = Structure(
    {
        "DataRetentionInHours": Integer(min=0),
        "Disabled": Boolean(),
        "StreamingNotificationTargets": ListOf(
            Structure({"NotificationTarget": Enum(NOTIFICATION_TARGETS)}), min_len=1, max_len=3
        ),
        "MediaInsightsConfiguration": Structure({"Disabled": Boolean(), "ConfigurationArn": ARN}),
    },
    frozenset({"DataRetentionInHours", "Disabled"}),
)
PUT_STREAMING_INPUT = Structure(
    {"StreamingConfiguration": STREAMING_CONFIGURATION}, frozenset({"StreamingConfiguration"})
)
TAG_INPUT = Structure({"ResourceARN": ARN, "Tags": TAG_LIST}, frozenset({"ResourceARN", "Tags"}))
UNTAG_INPUT = Structure(
    {"ResourceARN": ARN, "TagKeys": ListOf(TAG_KEY, min_len=1, max_len=50)},
    frozenset({"ResourceARN", "TagKeys"}),
)
EMPTY_INPUT = Structure({})


# --- wire helpers -----------------------------------------------------------------------------
def is_chime_path(path: str) -> bool:
    """Whether a request path belongs to the chime-sdk-voice API (signed as ``chime``)."""
    return any(path == p or path.startswith(p + "/") for p in _PREFIXES)


def error_response(err: VoiceConnectorError) -> web.Response:
    """A chime-sdk-voice error: the model's status, ``x-amzn-ErrorType`` and
    ``{"Code", "Message"}``."""
    status, code = CHIME_ERRORS.get(err.code, CHIME_ERRORS["ServiceFailureException"])
    response = json_response({"Code": code, "Message": err.message}, status=status)
    response.headers["x-amzn-ErrorType"] = err.code
    return response


def iso8601(ms: int) -> str:
    """Epoch ms as the model's ``Iso8601Timestamp``: ``2024-05-01T12:00:00.123Z``."""
    when = dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def voice_connector_json(vc: VoiceConnector) -> dict[str, Any]:
    """The ``VoiceConnector`` structure."""
    out: dict[str, Any] = {
        "VoiceConnectorId": vc.voice_connector_id,
        "AwsRegion": vc.aws_region,
        "Name": vc.name,
        "OutboundHostName": vc.outbound_host_name,
        "RequireEncryption": vc.require_encryption,
        "CreatedTimestamp": iso8601(vc.created_ms),
        "UpdatedTimestamp": iso8601(vc.updated_ms),
        "VoiceConnectorArn": vc.arn,
    }
    for key in ("IntegrationType", "NetworkType"):
        if key in vc.extra:
            out[key] = vc.extra[key]
    return out


def streaming_json(config: StreamingConfiguration) -> dict[str, Any]:
    """The ``StreamingConfiguration`` structure."""
    return config.to_json()


def _bad_request(message: str) -> VoiceConnectorError:
    return VoiceConnectorError("BadRequestException", message)


def _check(shape: Structure, body: Any) -> None:
    """Validate ``body`` against ``shape``; every violation is a ``BadRequestException``."""
    errors: list[tuple[str, str]] = []
    try:
        shape.check(body, "", errors)
    except KvsError as err:  # a value of the wrong JSON type
        raise _bad_request(err.message) from None
    if errors:
        count = len(errors)
        detail = "; ".join(message for _, message in errors)
        raise _bad_request(
            f"{count} validation {'error' if count == 1 else 'errors'} detected: {detail}"
        )


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        return await read_json(request)
    except KvsError as err:  # not JSON, or not an object
        raise _bad_request(err.message) from None


def _connector_id(request: web.Request) -> str:
    vc_id = request.match_info["voiceConnectorId"]
    if not vc_id.strip():
        raise _bad_request("VoiceConnectorId must not be empty.")
    return vc_id


def _tags(items: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(t["Key"], t["Value"]) for t in items]


# --- handlers: (request, state, body) -> response payload (None: no body) ------------------------
ChimeHandler = Callable[
    [web.Request, ServerState, dict[str, Any]], Awaitable[dict[str, Any] | None]
]


async def create_voice_connector(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``POST /voice-connectors`` (201)."""
    extra = {k: body[k] for k in ("IntegrationType", "NetworkType") if body.get(k) is not None}
    vc = await state.run(
        state.voice_connectors.create,
        body["Name"],
        require_encryption=body["RequireEncryption"],
        aws_region=body.get("AwsRegion"),
        tags=_tags(body.get("Tags") or []),
        extra=extra,
    )
    return {"VoiceConnector": voice_connector_json(vc)}


async def get_voice_connector(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``GET /voice-connectors/{voiceConnectorId}``."""
    vc = await state.run(state.voice_connectors.get, _connector_id(request))
    return {"VoiceConnector": voice_connector_json(vc)}


async def list_voice_connectors(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``GET /voice-connectors?max-results=N&next-token=T``."""
    raw_max = request.query.get("max-results")
    max_results: int | None = None
    if raw_max is not None:
        try:
            max_results = int(raw_max)
        except ValueError:
            raise _bad_request(f"MaxResults must be an integer, not '{raw_max[:32]}'.") from None
    connectors, token = await state.run(
        state.voice_connectors.list,
        max_results=max_results,
        next_token=request.query.get("next-token") or None,
    )
    out: dict[str, Any] = {"VoiceConnectors": [voice_connector_json(vc) for vc in connectors]}
    if token is not None:
        out["NextToken"] = token
    return out


async def update_voice_connector(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``PUT /voice-connectors/{voiceConnectorId}``."""
    vc = await state.run(
        state.voice_connectors.update,
        _connector_id(request),
        name=body["Name"],
        require_encryption=body["RequireEncryption"],
    )
    return {"VoiceConnector": voice_connector_json(vc)}


async def delete_voice_connector(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``DELETE /voice-connectors/{voiceConnectorId}`` (204; its streaming configuration
    goes with it)."""
    await state.run(state.voice_connectors.delete, _connector_id(request))
    return None


async def put_streaming_configuration(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``PUT /voice-connectors/{voiceConnectorId}/streaming-configuration``."""
    data = body["StreamingConfiguration"]
    targets = data.get("StreamingNotificationTargets") or []
    insights = data.get("MediaInsightsConfiguration")
    config = StreamingConfiguration(
        data_retention_in_hours=int(data["DataRetentionInHours"]),
        disabled=data["Disabled"],
        notification_targets=tuple(t.get("NotificationTarget", "") for t in targets),
        media_insights=dict(insights) if insights is not None else None,
    )
    stored = await state.run(state.voice_connectors.put_streaming, _connector_id(request), config)
    return {"StreamingConfiguration": streaming_json(stored)}


async def get_streaming_configuration(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``GET /voice-connectors/{voiceConnectorId}/streaming-configuration`` (404 when the
    connector has none)."""
    config = await state.run(state.voice_connectors.get_streaming, _connector_id(request))
    return {"StreamingConfiguration": streaming_json(config)}


async def delete_streaming_configuration(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``DELETE /voice-connectors/{voiceConnectorId}/streaming-configuration`` (204)."""
    await state.run(state.voice_connectors.delete_streaming, _connector_id(request))
    return None


async def tags_post(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``POST /tags?operation=tag-resource|untag-resource`` (204)."""
    operation = request.query.get("operation")
    registry = state.voice_connectors
    if operation == "tag-resource":
        _check(TAG_INPUT, body)
        vc = await state.run(registry.by_arn, body["ResourceARN"])
        await state.run(registry.tag, vc.voice_connector_id, _tags(body["Tags"]))
    elif operation == "untag-resource":
        _check(UNTAG_INPUT, body)
        vc = await state.run(registry.by_arn, body["ResourceARN"])
        await state.run(registry.untag, vc.voice_connector_id, body["TagKeys"])
    else:
        raise _bad_request("operation must be tag-resource or untag-resource.")
    return None


async def list_tags_for_resource(
    request: web.Request, state: ServerState, body: dict[str, Any]
) -> dict[str, Any] | None:
    """``GET /tags?arn=ARN``."""
    arn = request.query.get("arn")
    if arn is None:
        raise _bad_request(
            "1 validation error detected: Value null at 'ResourceARN' failed to "
            "satisfy constraint: Member must not be null"
        )
    _check(Structure({"ResourceARN": ARN}), {"ResourceARN": arn})
    vc = await state.run(state.voice_connectors.by_arn, arn)
    return {"Tags": [{"Key": k, "Value": v} for k, v in vc.tags]}


@dataclass(frozen=True, slots=True)
class ChimeOperation:
    """One operation of the model: its HTTP binding, success status, body rules, handler."""

    name: str
    method: str
    path: str
    status: int
    input: Structure
    handler: ChimeHandler


_VC = "/voice-connectors/{voiceConnectorId}"
OPERATIONS: tuple[ChimeOperation, ...] = (
    ChimeOperation(
        "CreateVoiceConnector",
        "POST",
        "/voice-connectors",
        201,
        CREATE_INPUT,
        create_voice_connector,
    ),
    ChimeOperation(
        "ListVoiceConnectors", "GET", "/voice-connectors", 200, EMPTY_INPUT, list_voice_connectors
    ),
    ChimeOperation("GetVoiceConnector", "GET", _VC, 200, EMPTY_INPUT, get_voice_connector),
    ChimeOperation("UpdateVoiceConnector", "PUT", _VC, 200, UPDATE_INPUT, update_voice_connector),
    ChimeOperation("DeleteVoiceConnector", "DELETE", _VC, 204, EMPTY_INPUT, delete_voice_connector),
    ChimeOperation(
        "PutVoiceConnectorStreamingConfiguration",
        "PUT",
        _VC + "/streaming-configuration",
        200,
        PUT_STREAMING_INPUT,
        put_streaming_configuration,
    ),
    ChimeOperation(
        "GetVoiceConnectorStreamingConfiguration",
        "GET",
        _VC + "/streaming-configuration",
        200,
        EMPTY_INPUT,
        get_streaming_configuration,
    ),
    ChimeOperation(
        "DeleteVoiceConnectorStreamingConfiguration",
        "DELETE",
        _VC + "/streaming-configuration",
        204,
        EMPTY_INPUT,
        delete_streaming_configuration,
    ),
    # TagResource and UntagResource share POST /tags (told apart by ?operation=)
    ChimeOperation("TagResource", "POST", "/tags", 204, EMPTY_INPUT, tags_post),
    ChimeOperation("ListTagsForResource", "GET", "/tags", 200, EMPTY_INPUT, list_tags_for_resource),
)
"""The operations served; ``path`` is the model's ``requestUri`` without its query."""


def _bind(op: ChimeOperation) -> Handler:
    async def handle(request: web.Request, state: ServerState) -> web.StreamResponse:
        try:
            body = await _body(request) if request.method in ("POST", "PUT") else {}
            if op.input is not EMPTY_INPUT:
                _check(op.input, body)
            payload = await op.handler(request, state, body)
        except VoiceConnectorError as err:
            return error_response(err)
        if payload is None:
            return web.Response(status=op.status)
        return json_response(payload, status=op.status)

    handle.__name__ = handle.__qualname__ = op.name
    return handle


ROUTES: tuple[tuple[str, str, Handler], ...] = tuple(
    (op.method, op.path, _bind(op)) for op in OPERATIONS
)
"""``(method, path, handler)`` for the app's router (paths with ``{voiceConnectorId}``)."""
