"""Amazon Connect's control-plane API (``connect``), first slice, over HTTP.

Instances, their live-media-streaming storage config and contact flows are managed with the
real AWS clients pointed at ``callstream serve`` (``boto3.client("connect",
endpoint_url=...)``, ``aws connect ...``), signed with SigV4 and the service name
``connect`` on the same port and keys as the KVS API. The wire format is the botocore model
``connect`` (``rest-json``), loaded at import (never copied): each operation's HTTP method
and URI come from the model, its input (path, query and JSON body members) is checked
against the model's input shape, and timestamps are epoch seconds as the model's default.

Errors are the model's exception shapes with their HTTP statuses: ``x-amzn-ErrorType``
names the shape and the body is ``{"Message": "..."}``; ``InvalidContactFlowException``
carries ``{"problems": [{"message": ...}]}``. Input breaking the model is an
``InvalidParameterException``.

Operations here: CreateInstance, DescribeInstance, ListInstances, DeleteInstance;
Associate/Describe/List/Update/DisassociateInstanceStorageConfig (``MEDIA_STREAMS`` on
``KINESIS_VIDEO_STREAM``); CreateContactFlow, DescribeContactFlow, ListContactFlows,
UpdateContactFlowContent, DeleteContactFlow. Lambda associations, phone numbers, queues,
hours and tags are in :mod:`callstream.api.connect_resources`; contacts (and callstream's
``POST /callstream/connect/calls``) in :mod:`callstream.api.connect_contacts`. State lives in
:class:`callstream.flows.instances.InstanceRegistry`. List operations page with
``NextToken`` / ``MaxResults``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import botocore.session
from aiohttp import web
from botocore.model import NoShapeFoundError, OperationModel, Shape
from botocore.validate import ParamValidator

from callstream.api.app import Handler, ServerState, json_response, read_json
from callstream.api.errors import KvsError
from callstream.flows.instance_resources import page
from callstream.flows.instances import ConnectError, ContactFlow, Instance, StorageConfig

__all__ = ["MODEL", "OPERATIONS", "ROUTES", "SIGNING_NAME", "error_response", "is_connect_path"]

MODEL = botocore.session.get_session().get_service_model("connect")
"""botocore's ``connect`` service model."""
SIGNING_NAME: str = MODEL.signing_name or "connect"
"""The SigV4 service name (``connect``)."""

_PREFIXES = (
    "/instance",
    "/contact-flows",
    "/contact-flows-summary",
    "/phone-number",
    "/phone-numbers-summary",
    "/queues",
    "/queues-summary",
    "/hours-of-operations",
    "/hours-of-operations-summary",
    "/contacts",
    "/contact",
    "/callstream/connect",
)
_TAGS = "/tags/arn:aws:connect:"
"""TagResource & co. name a Connect ARN in the path (chime-sdk-voice's ``/tags`` does not)."""


def is_connect_path(path: str) -> bool:
    """Whether a request path belongs to the Connect API (signed as ``connect``)."""
    return path.startswith(_TAGS) or any(path == p or path.startswith(p + "/") for p in _PREFIXES)


def error_response(err: ConnectError) -> web.Response:
    """A Connect error: the shape's status from the model, ``x-amzn-ErrorType``, body."""
    try:
        status = MODEL.shape_for(err.code).metadata["error"]["httpStatusCode"]
    except (KeyError, LookupError, NoShapeFoundError):  # a code the model lacks
        status = 500
    body: dict[str, Any] = {"Message": err.message}
    if err.problems:
        body = {"message": err.message, "problems": [{"message": p} for p in err.problems]}
    response = json_response(body, status=status)
    response.headers["x-amzn-ErrorType"] = err.code
    return response


def _epoch(ms: int) -> float:
    return ms / 1000


def instance_json(instance: Instance, *, summary: bool = False) -> dict[str, Any]:
    """The ``Instance`` (or ``InstanceSummary``) structure."""
    out: dict[str, Any] = {
        "Id": instance.id,
        "Arn": instance.arn,
        "IdentityManagementType": instance.identity_management_type,
        "CreatedTime": _epoch(instance.created_ms),
        "ServiceRole": instance.service_role,
        "InstanceStatus": instance.status,
        "InboundCallsEnabled": instance.inbound_calls_enabled,
        "OutboundCallsEnabled": instance.outbound_calls_enabled,
    }
    if instance.instance_alias:
        out["InstanceAlias"] = instance.instance_alias
        out["InstanceAccessUrl"] = f"https://{instance.instance_alias}.my.connect.aws/"
    if not summary and instance.extra.get("Tags"):
        out["Tags"] = instance.extra["Tags"]
    return out


def storage_json(config: StorageConfig) -> dict[str, Any]:
    """The ``InstanceStorageConfig`` structure."""
    return {"AssociationId": config.association_id, **config.config}


def flow_json(flow: ContactFlow) -> dict[str, Any]:
    """The ``ContactFlow`` structure."""
    out: dict[str, Any] = {
        "Arn": flow.arn,
        "Id": flow.id,
        "Name": flow.name,
        "Type": flow.type,
        "State": flow.state,
        "Status": flow.status,
        "Content": flow.content,
        "Tags": flow.tags,
        "FlowContentSha256": flow.content_sha256,
        "LastModifiedTime": _epoch(flow.modified_ms),
    }
    if flow.description is not None:
        out["Description"] = flow.description
    return out


def flow_summary_json(flow: ContactFlow) -> dict[str, Any]:
    """The ``ContactFlowSummary`` structure."""
    return {
        "Id": flow.id,
        "Arn": flow.arn,
        "Name": flow.name,
        "ContactFlowType": flow.type,
        "ContactFlowState": flow.state,
        "ContactFlowStatus": flow.status,
    }


# --- input: the model's members from path, query and body, checked against the model ----------
def _invalid(message: str) -> ConnectError:
    return ConnectError("InvalidParameterException", message)


def _check_enums(shape: Shape, value: Any, where: str) -> None:
    """Enum members (ParamValidator leaves them alone)."""
    if shape.type_name == "string" and shape.enum and isinstance(value, str):
        if value not in shape.enum:
            raise _invalid(
                f"Value '{value[:64]}' at '{where}' failed to satisfy constraint: Member must "
                f"satisfy enum value set: [{', '.join(shape.enum)}]"
            )
    elif shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _check_enums(member, value[name], f"{where}.{name}" if where else name)
    elif shape.type_name == "list" and isinstance(value, list):
        for item in value:
            _check_enums(shape.member, item, where)


async def _params(op: OperationModel, request: web.Request) -> dict[str, Any]:
    shape = op.input_shape
    params: dict[str, Any] = {}
    if shape is None:
        return params
    try:
        body = await read_json(request)
    except KvsError as err:  # not JSON, or not an object
        raise _invalid(err.message) from None
    params.update({k: v for k, v in body.items() if k in shape.members and not _located(shape, k)})
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            params[name] = request.match_info[wire]
        elif location == "querystring":
            values = request.query.getall(wire, [])
            if not values:
                continue
            if member.type_name == "integer":
                try:
                    params[name] = int(values[0])
                except ValueError:
                    raise _invalid(f"{name} must be an integer.") from None
            elif member.type_name == "list":
                params[name] = list(values)
            else:
                params[name] = values[0]
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise _invalid(report.generate_report())
    _check_enums(shape, params, "")
    return params


def _located(shape: Shape, name: str) -> bool:
    return bool(shape.members[name].serialization.get("location"))


# --- handlers ------------------------------------------------------------------------------------
def paged(p: dict[str, Any], items: list[Any], key: str, *, default: int = 100) -> dict[str, Any]:
    """``{key: one page of items}`` plus ``NextToken`` when more follow."""
    chunk, token = page(items, p.get("NextToken"), p.get("MaxResults"), default=default)
    out: dict[str, Any] = {key: chunk}
    if token is not None:
        out["NextToken"] = token
    return out


ConnectHandler = Callable[[ServerState, dict[str, Any]], Awaitable[dict[str, Any]]]


async def create_instance(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``PUT /instance``."""
    instance = await state.run(
        state.connect.create_instance,
        identity_management_type=p["IdentityManagementType"],
        inbound_calls_enabled=p["InboundCallsEnabled"],
        outbound_calls_enabled=p["OutboundCallsEnabled"],
        instance_alias=p.get("InstanceAlias"),
        extra={"Tags": p["Tags"]} if p.get("Tags") else None,
    )
    return {"Id": instance.id, "Arn": instance.arn}


async def describe_instance(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /instance/{InstanceId}``."""
    return {"Instance": instance_json(await state.run(state.connect.get_instance, p["InstanceId"]))}


async def list_instances(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /instance``."""
    instances = await state.run(state.connect.list_instances)
    return paged(p, [instance_json(i, summary=True) for i in instances], "InstanceSummaryList")


async def delete_instance(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /instance/{InstanceId}``."""
    await state.run(state.connect.delete_instance, p["InstanceId"])
    return {}


async def describe_attribute(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /instance/{InstanceId}/attribute/{AttributeType}``."""
    values = await state.run(state.connect.instance_attributes, p["InstanceId"])
    kind = p["AttributeType"]
    return {"Attribute": {"AttributeType": kind, "Value": values.get(kind, "false")}}


async def update_attribute(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /instance/{InstanceId}/attribute/{AttributeType}``."""
    await state.run(
        state.connect.update_instance_attribute, p["InstanceId"], p["AttributeType"], p["Value"]
    )
    return {}


async def list_attributes(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /instance/{InstanceId}/attributes``: the attribute types this model knows."""
    values = await state.run(state.connect.instance_attributes, p["InstanceId"])
    known = MODEL.shape_for("InstanceAttributeType").enum
    attributes = [{"AttributeType": k, "Value": values.get(k, "false")} for k in known]
    return paged(p, attributes, "Attributes", default=7)


async def associate_storage(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``PUT /instance/{InstanceId}/storage-config``."""
    config = await state.run(
        state.connect.associate_storage, p["InstanceId"], p["ResourceType"], p["StorageConfig"]
    )
    return {"AssociationId": config.association_id}


async def describe_storage(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /instance/{InstanceId}/storage-config/{AssociationId}?resourceType=``."""
    config = await state.run(
        state.connect.get_storage, p["InstanceId"], p["AssociationId"], p["ResourceType"]
    )
    return {"StorageConfig": storage_json(config)}


async def list_storage(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /instance/{InstanceId}/storage-configs?resourceType=``."""
    configs = await state.run(state.connect.list_storage, p["InstanceId"], p["ResourceType"])
    return paged(p, [storage_json(c) for c in configs], "StorageConfigs")


async def update_storage(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /instance/{InstanceId}/storage-config/{AssociationId}?resourceType=``."""
    await state.run(
        state.connect.update_storage,
        p["InstanceId"],
        p["AssociationId"],
        p["ResourceType"],
        p["StorageConfig"],
    )
    return {}


async def disassociate_storage(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /instance/{InstanceId}/storage-config/{AssociationId}?resourceType=``."""
    await state.run(
        state.connect.disassociate_storage, p["InstanceId"], p["AssociationId"], p["ResourceType"]
    )
    return {}


async def create_flow(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``PUT /contact-flows/{InstanceId}``."""
    flow = await state.run(
        lambda: state.connect.create_flow(
            p["InstanceId"],
            name=p["Name"],
            flow_type=p["Type"],
            content=p["Content"],
            status=p.get("Status") or "PUBLISHED",
            description=p.get("Description"),
            tags=p.get("Tags"),
        )
    )
    return {
        "ContactFlowId": flow.id,
        "ContactFlowArn": flow.arn,
        "FlowContentSha256": flow.content_sha256,
    }


async def describe_flow(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /contact-flows/{InstanceId}/{ContactFlowId}``."""
    flow = await state.run(state.connect.get_flow, p["InstanceId"], p["ContactFlowId"])
    return {"ContactFlow": flow_json(flow)}


async def list_flows(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /contact-flows-summary/{InstanceId}``."""
    flows = await state.run(state.connect.list_flows, p["InstanceId"], p.get("ContactFlowTypes"))
    return paged(p, [flow_summary_json(f) for f in flows], "ContactFlowSummaryList")


async def update_flow_content(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /contact-flows/{InstanceId}/{ContactFlowId}/content``."""
    await state.run(
        state.connect.update_flow_content, p["InstanceId"], p["ContactFlowId"], p["Content"]
    )
    return {}


async def update_flow_metadata(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /contact-flows/{InstanceId}/{ContactFlowId}/metadata`` and ``.../name``
    (UpdateContactFlowName: the same without a state)."""
    await state.run(
        state.connect.update_flow_metadata,
        p["InstanceId"],
        p["ContactFlowId"],
        name=p.get("Name"),
        description=p.get("Description"),
        state=p.get("ContactFlowState"),
    )
    return {}


async def delete_flow(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /contact-flows/{InstanceId}/{ContactFlowId}``."""
    await state.run(state.connect.delete_flow, p["InstanceId"], p["ContactFlowId"])
    return {}


OPERATIONS: dict[str, ConnectHandler] = {
    "CreateInstance": create_instance,
    "DescribeInstance": describe_instance,
    "ListInstances": list_instances,
    "DeleteInstance": delete_instance,
    "DescribeInstanceAttribute": describe_attribute,
    "UpdateInstanceAttribute": update_attribute,
    "ListInstanceAttributes": list_attributes,
    "AssociateInstanceStorageConfig": associate_storage,
    "DescribeInstanceStorageConfig": describe_storage,
    "ListInstanceStorageConfigs": list_storage,
    "UpdateInstanceStorageConfig": update_storage,
    "DisassociateInstanceStorageConfig": disassociate_storage,
    "CreateContactFlow": create_flow,
    "DescribeContactFlow": describe_flow,
    "ListContactFlows": list_flows,
    "UpdateContactFlowContent": update_flow_content,
    "UpdateContactFlowName": update_flow_metadata,
    "UpdateContactFlowMetadata": update_flow_metadata,
    "DeleteContactFlow": delete_flow,
}
"""The operations served, by the model's operation name."""


def _bind(op: OperationModel, handler: ConnectHandler) -> Handler:
    async def handle(request: web.Request, state: ServerState) -> web.StreamResponse:
        try:
            payload = await handler(state, await _params(op, request))
        except ConnectError as err:
            return error_response(err)
        return json_response(payload, status=int(op.http.get("responseCode", 200)))

    handle.__name__ = handle.__qualname__ = op.name
    return handle


def _routes() -> tuple[tuple[str, str, Handler], ...]:
    from callstream.api import connect_contacts, connect_resources

    OPERATIONS.update(connect_resources.OPERATIONS)
    OPERATIONS.update(connect_contacts.OPERATIONS)
    out: list[tuple[str, str, Handler]] = []
    for name, handler in OPERATIONS.items():
        op = MODEL.operation_model(name)
        out.append((op.http["method"], op.http["requestUri"].split("?")[0], _bind(op, handler)))
    out.append(("POST", connect_contacts.CALLS_PATH, connect_contacts.place_call_by_number))
    return tuple(out)


ROUTES: tuple[tuple[str, str, Handler], ...] = _routes()
"""``(method, path, handler)`` for the app's router, from the model's HTTP bindings."""


async def stop_contacts(app: web.Application) -> None:
    """Server shutdown: hang up the contacts the server placed and wait for them."""
    from callstream.api.app import STATE

    center = app[STATE].connect.center
    if center is not None:
        await center.close()
