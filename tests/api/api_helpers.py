"""Helpers shared by the API tests."""

from __future__ import annotations

import os


def aws_cli_env(access_key: str, secret_key: str, region: str) -> dict[str, str]:
    """The environment for running the AWS CLI against a test server: these credentials and
    region, none of the user's AWS configuration, no pager, no instance metadata."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY=secret_key,
        AWS_DEFAULT_REGION=region,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    return env
