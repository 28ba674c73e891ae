"""The client side of the contacts a server places, and the server's Connect settings.

:func:`call_number` is ``callstream call --to NUMBER``: it asks a server to place a call to
a claimed number (``POST /callstream/connect/calls``, SigV4 service ``connect``; see
:mod:`callstream.api.connect_contacts`) and follows its progress. :func:`configure_server`
is ``callstream serve --phone-numbers / --connect-lambda``: it keeps the number pool and the
Lambda bindings in the data directory's registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["CALLS_PATH", "CallFailed", "call_number", "configure_server"]

CALLS_PATH = "/callstream/connect/calls"


class CallFailed(Exception):
    """A call to a number the server refused or could not complete; ``code`` is the
    Connect error code when the server answered one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


async def call_number(
    endpoint_url: str,
    to: str,
    *,
    customer_audio: str | os.PathLike[str],
    agent_audio: str | os.PathLike[str] | None = None,
    caller: str | None = None,
    attributes: Mapping[str, str] | None = None,
    lambdas: Mapping[str, str] | None = None,
    dtmf: str | None = None,
    speed: float = 1.0,
    region: str = "us-east-1",
    credentials: Any = None,
    on_event: Callable[[str], object] | None = None,
) -> dict[str, Any]:
    """Place a call to ``to`` through the server at ``endpoint_url`` (``POST
    /callstream/connect/calls``, SigV4 service ``connect``): the server runs the flow the
    number is bound to. Progress lines go to ``on_event``; returns the ``Result`` object
    (``ContactId``, ``ContactRecord``, ``StreamName``, ...). Raises :class:`CallFailed`."""
    import base64
    import json

    import aiohttp
    import botocore.session

    from callstream.client.aws import sign_request

    def b64(path: str | os.PathLike[str]) -> str:
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()

    document: dict[str, Any] = {"To": to, "CustomerAudio": b64(customer_audio), "Speed": speed}
    if agent_audio is not None:
        document["AgentAudio"] = b64(agent_audio)
    for key, value in (
        ("From", caller),
        ("Attributes", dict(attributes or {}) or None),
        ("Lambdas", dict(lambdas or {}) or None),
        ("Dtmf", dtmf),
    ):
        if value is not None:
            document[key] = value
    body = json.dumps(document).encode()
    url = endpoint_url.rstrip("/") + CALLS_PATH
    creds = credentials or botocore.session.get_session().get_credentials()
    headers = {"Content-Type": "application/json"}
    if creds is not None:
        headers = sign_request(
            "POST",
            url,
            credentials=creds,
            region=region,
            headers=headers,
            body=body,
            service="connect",
        )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    code = resp.headers.get("x-amzn-ErrorType")
                    try:
                        message = json.loads(text).get("Message") or text
                    except ValueError:
                        message = text
                    raise CallFailed(
                        f"{code or 'HTTP ' + str(resp.status)}: {message}".strip(), code
                    )
                async for raw in resp.content:
                    if not raw.strip():
                        continue
                    item = json.loads(raw)
                    if "Line" in item and on_event is not None:
                        on_event(str(item["Line"]))
                    elif "Result" in item:
                        return dict(item["Result"])
                    elif "Error" in item:
                        raise CallFailed(str(item["Error"]))
    except (aiohttp.ClientError, OSError) as err:
        raise CallFailed(f"cannot reach {url}: {err}") from None
    raise CallFailed("the server ended the call's answer without a result")


def configure_server(
    data_dir: str | os.PathLike[str],
    *,
    region: str,
    account_id: str,
    phone_numbers: str | None = None,
    lambdas: Mapping[str, str] | None = None,
    outbound_audio: str | os.PathLike[str] | None = None,
) -> None:
    """``callstream serve --phone-numbers POOL --connect-lambda ARN=TARGET
    --connect-outbound-audio WAV``: keep the number pool, the Lambda bindings and the
    outbound contacts' customer audio in the data directory's registry (ValueError for a
    bad pool, binding or WAV)."""
    from pathlib import Path

    from callstream.flows.instances import open_instances

    for arn, target in (lambdas or {}).items():
        if not arn.startswith("arn:") or ":function:" not in arn:
            raise ValueError(f"--connect-lambda {arn}: not a Lambda function ARN")
        if not target:
            raise ValueError(f"--connect-lambda {arn}: no handler")
    audio_path = None
    if outbound_audio is not None:
        from callstream.flows.clock import mono_8k

        audio_path = str(Path(outbound_audio).resolve())
        try:
            mono_8k(audio_path)
        except (OSError, ValueError) as err:
            raise ValueError(f"--connect-outbound-audio {outbound_audio}: {err}") from None
    registry = open_instances(Path(data_dir), region=region, account_id=account_id)
    try:
        if audio_path is not None:
            registry.set_outbound_audio(audio_path)
        if phone_numbers is not None:
            registry.set_phone_pool(phone_numbers)
        for arn, target in (lambdas or {}).items():
            registry.bind_lambda(arn, target)
    finally:
        registry.close()
