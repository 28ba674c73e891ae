"""Control plane (placeholder: being completed)."""

from __future__ import annotations

from aiohttp import web

from callstream.api.app import Handler, ServerState, json_response, read_json


async def create_stream(request: web.Request, state: ServerState) -> web.StreamResponse:
    body = await read_json(request)
    rec = await state.run(
        state.backend.create_stream,
        body["StreamName"],
        device_name=body.get("DeviceName"),
        media_type=body.get("MediaType"),
        kms_key_id=body.get("KmsKeyId"),
        data_retention_hours=int(body.get("DataRetentionInHours", 0)),
        tags=body.get("Tags") or {},
    )
    return json_response({"StreamARN": rec.arn})


async def get_data_endpoint(request: web.Request, state: ServerState) -> web.StreamResponse:
    await read_json(request)
    return json_response({"DataEndpoint": state.endpoint(request)})


ROUTES: dict[str, Handler] = {
    "/createStream": create_stream,
    "/getDataEndpoint": get_data_endpoint,
}
