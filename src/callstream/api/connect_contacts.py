"""Connect API operations on contacts, and callstream's endpoint that places a call to a
number (the HTTP side of :mod:`callstream.flows.connect_contacts`).

Operations: DescribeContact, GetContactAttributes, UpdateContactAttributes, StopContact,
StartOutboundVoiceContact (the contact runs on the server; its customer side plays the
server's outbound audio, or silence).

``POST /callstream/connect/calls`` (SigV4, service ``connect``) places a call to a claimed
number, as a caller dialling it would; ``callstream call --to NUMBER`` uses it. The body
is JSON: ``To`` (required), ``From`` (the caller; default ``+15555550100``),
``CustomerAudio`` (a WAV, base64; required), ``AgentAudio`` (a WAV, base64), ``Speed``,
``Attributes``, ``Dtmf`` and ``Lambdas`` (``{name: URL}``: per-call bindings, URLs only; the
server's own bindings of the instance's associated functions apply otherwise). Errors
before the call starts are Connect errors (an unknown number is a 404
``ResourceNotFoundException``); then the answer is ``application/x-ndjson``: one
``{"Line": ...}`` per progress line while the call runs, then ``{"Result": {...}}``
(``ContactId``, ``InstanceId``, ``ContactRecord`` (the CTR), ``StreamName``, ``StreamARN``,
``StartFragmentNumber``, ``StartTimestamp``, ``LambdaCalls``) or ``{"Error": message}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
from typing import Any

from aiohttp import web

from callstream.api.app import VERIFIED_BODY, ServerState, start_streaming
from callstream.flows.connect_contacts import (
    ContactCenter,
    contact_center,
)
from callstream.flows.connect_errors import ConnectError, invalid
from callstream.flows.effects import Failed
from callstream.flows.lambdas import is_url

__all__ = ["CALLS_PATH", "OPERATIONS", "contact_json", "place_call_by_number"]

CALLS_PATH = "/callstream/connect/calls"
MAX_CALL_BODY_BYTES = 64 * 1024 * 1024
"""A call's request carries its audio (base64 WAV)."""


def center(state: ServerState) -> ContactCenter:
    """The server's contact center."""
    return contact_center(state.connect, state.store, state.events, state.contacts)


def _s(ms: Any) -> float | None:
    return ms / 1000 if isinstance(ms, int | float) else None


def contact_json(instance_arn: str, data: dict[str, Any]) -> dict[str, Any]:
    """The model's ``Contact`` from a contact's recorded fields (epoch ms -> seconds)."""
    out: dict[str, Any] = {"Arn": f"{instance_arn}/contact/{data['Id']}"}
    for key in (
        "Id",
        "InitialContactId",
        "PreviousContactId",
        "InitiationMethod",
        "Name",
        "Description",
        "Channel",
        "DisconnectReason",
        "Attributes",
    ):
        if data.get(key) is not None:
            out[key] = data[key]
    for key in (
        "InitiationTimestamp",
        "ConnectedToSystemTimestamp",
        "DisconnectTimestamp",
        "LastUpdateTimestamp",
    ):
        value = _s(data.get(key))
        if value is not None:
            out[key] = value
    for key in ("CustomerEndpoint", "SystemEndpoint"):
        endpoint = data.get(key)
        if isinstance(endpoint, dict) and endpoint.get("Address"):
            out[key] = {
                "Type": endpoint.get("Type", "TELEPHONE_NUMBER"),
                "Address": endpoint["Address"],
            }
    queue = data.get("QueueInfo")
    if isinstance(queue, dict):
        out["QueueInfo"] = {
            "Id": queue.get("Id"),
            "EnqueueTimestamp": _s(queue.get("EnqueueTimestamp")),
        }
    return out


# --- operations ---------------------------------------------------------------------------------
async def describe_contact(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /contacts/{InstanceId}/{ContactId}``."""
    cc = center(state)
    data = await state.run(cc.describe, p["InstanceId"], p["ContactId"])
    instance = await state.run(state.connect.get_instance, p["InstanceId"])
    return {"Contact": contact_json(instance.arn, data)}


async def get_attributes(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``GET /contact/attributes/{InstanceId}/{InitialContactId}``."""
    cc = center(state)
    return {"Attributes": await state.run(cc.attributes, p["InstanceId"], p["InitialContactId"])}


async def update_attributes(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /contact/attributes``."""
    cc = center(state)
    live = cc.live.get(p["InitialContactId"])
    if live is not None:  # a running contact: change it on the loop, where the flow runs
        await state.run(state.connect.get_instance, p["InstanceId"])
        cc.update_attributes(p["InstanceId"], p["InitialContactId"], p["Attributes"])
    else:
        await state.run(
            cc.update_attributes, p["InstanceId"], p["InitialContactId"], p["Attributes"]
        )
    return {}


async def stop_contact(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /contact/stop``."""
    cc = center(state)
    await state.run(state.connect.get_instance, p["InstanceId"])
    cc.stop(p["InstanceId"], p["ContactId"])
    return {}


async def start_outbound(state: ServerState, p: dict[str, Any]) -> dict[str, Any]:
    """``PUT /contact/outbound-voice``: the contact runs on the server, the customer side
    playing the server's outbound audio (``serve --connect-outbound-audio``) or
    :data:`OUTBOUND_SILENCE_S` s of silence, unless StopContact ends it first."""
    cc = center(state)
    plan = await state.run(
        lambda: cc.plan_outbound(
            p["InstanceId"],
            p["ContactFlowId"],
            p["DestinationPhoneNumber"],
            source=p.get("SourcePhoneNumber"),
            queue_id=p.get("QueueId"),
            attributes=p.get("Attributes"),
            name=p.get("Name"),
            description=p.get("Description"),
        )
    )
    contact_id = cc.start(plan, customer_audio=await state.run(cc.outbound_audio))
    return {"ContactId": contact_id}


OPERATIONS = {
    "DescribeContact": describe_contact,
    "GetContactAttributes": get_attributes,
    "UpdateContactAttributes": update_attributes,
    "StopContact": stop_contact,
    "StartOutboundVoiceContact": start_outbound,
}
"""The operations of this module, by the model's operation name."""


# --- POST /callstream/connect/calls -------------------------------------------------------------
def _audio(body: dict[str, Any], key: str, *, required: bool) -> bytes | None:
    value = body.get(key)
    if value is None:
        if required:
            raise invalid(f"{key} is required (a WAV file, base64).")
        return None
    if not isinstance(value, str):
        raise invalid(f"{key} must be a base64 string.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{key} is not valid base64.") from None


def _strings(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid(f"{key} must be an object of strings.")
    return dict(value)


async def place_call_by_number(request: web.Request, state: ServerState) -> web.StreamResponse:
    """``POST /callstream/connect/calls`` (see the module docstring)."""
    from callstream.api.connect import error_response
    from callstream.flows.clock import mono_8k

    try:
        try:
            body = json.loads(request[VERIFIED_BODY])
        except (ValueError, RecursionError):
            raise invalid("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        to = body.get("To")
        if not isinstance(to, str) or not to:
            raise invalid("To is required (the number to call).")
        caller = body.get("From")
        if caller is not None and not isinstance(caller, str):
            raise invalid("From must be a string.")
        speed = body.get("Speed", 1.0)
        if (
            not isinstance(speed, int | float)
            or isinstance(speed, bool)
            or not speed > 0
            or math.isinf(speed)
        ):
            raise invalid("Speed must be a positive number.")
        dtmf = body.get("Dtmf")
        if dtmf is not None and not isinstance(dtmf, str):
            raise invalid("Dtmf must be a string.")
        lambdas = _strings(body, "Lambdas")
        for name, target in lambdas.items():
            if not is_url(target):
                raise invalid(
                    f"Lambdas.{name}: a call may bind Lambdas to URLs only; bind handlers "
                    "on the server (callstream serve --connect-lambda ARN=module:function)."
                )
        attributes = _strings(body, "Attributes")
        customer_wav = _audio(body, "CustomerAudio", required=True)
        agent_wav = _audio(body, "AgentAudio", required=False)
        try:
            customer = mono_8k(customer_wav or b"")
            agent = mono_8k(agent_wav) if agent_wav is not None else None
        except ValueError as err:
            raise invalid(f"The audio is not a WAV file this server reads: {err}") from None
        cc = center(state)
        plan = await state.run(
            lambda: cc.plan_inbound(to, caller=caller, attributes=attributes, lambdas=lambdas)
        )
    except ConnectError as err:
        return error_response(err)

    response = await start_streaming(request, "application/x-ndjson")
    lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def writer() -> None:
        while (item := await lines.get()) is not None:
            line = json.dumps(item, separators=(",", ":"), default=str)
            await response.write(line.encode() + b"\n")

    task = asyncio.create_task(writer())
    try:
        try:
            result = await cc.place(
                plan,
                customer_audio=customer,
                agent_audio=agent,
                speed=float(speed),
                dtmf=dtmf,
                on_event=lambda line: lines.put_nowait({"Line": line}),
            )
        except Exception as err:  # reported in the stream; the 200 is already out
            lines.put_nowait({"Error": str(err) or type(err).__name__})
        else:
            lines.put_nowait(
                {
                    "Result": {
                        "ContactId": result.contact_id,
                        "InstanceId": plan.instance_id,
                        "ContactRecord": result.ctr,
                        "StreamName": result.stream_name,
                        "StreamARN": result.stream_arn,
                        "StartFragmentNumber": result.start_fragment_number,
                        "StartTimestamp": result.start_timestamp_ms,
                        "LambdaCalls": [
                            {
                                "Name": call.name,
                                "Payload": call.payload,
                                "Response": {"Failed": call.response.message}
                                if isinstance(call.response, Failed)
                                else call.response,
                            }
                            for call in result.lambda_calls
                        ],
                    }
                }
            )
        lines.put_nowait(None)
        await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    await response.write_eof()
    return response
