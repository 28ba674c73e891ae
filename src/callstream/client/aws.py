"""AWS access for the clients, the same way for real AWS and any KVS-compatible endpoint:
boto3 clients, and SigV4 signing (botocore's) for the requests boto3 has no call for
(PutMedia, callstream's own APIs)."""

from __future__ import annotations

from typing import Any

__all__ = ["SERVICE", "boto_client", "default_region", "sign_request"]

SERVICE = "kinesisvideo"
"""The SigV4 service name of every KVS API (control plane, media, archived media)."""


def default_region() -> str:
    """The region botocore would use (env, config file), else ``us-east-1``."""
    import botocore.session

    region = botocore.session.get_session().get_config_variable("region")
    return str(region) if region else "us-east-1"


def boto_client(
    service: str,
    endpoint_url: str | None,
    region: str | None,
    credentials: Any,
    **config: Any,
) -> Any:
    """A boto3 client for ``service``; ``credentials`` (botocore ``Credentials``) override
    the default chain, ``config`` becomes a botocore ``Config``."""
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {"region_name": region or default_region()}
    if endpoint_url is not None:
        kwargs["endpoint_url"] = endpoint_url
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        kwargs.update(
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
        )
    if config:
        kwargs["config"] = Config(**config)
    return boto3.client(service, **kwargs)


def sign_request(
    method: str,
    url: str,
    *,
    credentials: Any,
    region: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    service: str = SERVICE,
) -> dict[str, str]:
    """The headers of a request signed with botocore's ``SigV4Auth``: ``headers`` plus
    ``X-Amz-Date``, ``Authorization`` (and ``X-Amz-Security-Token`` for temporary
    credentials). ``body`` is what the signature covers (a streamed PutMedia body is
    signed as empty, as the KVS producer SDKs do)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    frozen = credentials.get_frozen_credentials()
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    SigV4Auth(
        Credentials(frozen.access_key, frozen.secret_key, frozen.token), service, region
    ).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}
