"""boto3 clients for KVS, the same way for real AWS and any compatible endpoint."""

from __future__ import annotations

from typing import Any

__all__ = ["boto_client", "default_region"]


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
