"""Helpers shared by the API tests."""

from __future__ import annotations

import os

import pytest

from shared_data import SHARED as SHARED  # re-exported for the API tests


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


# What the Connect tests read back that older botocore models do not have (an older client
# drops members its model lacks from requests it validates and from parsed answers).
CONNECT_MEMBERS = {
    "CreateContactFlowRequest": ("Status",),
    "ContactFlow": ("Status",),
    "Contact": ("CustomerEndpoint", "SystemEndpoint", "DisconnectReason"),
}


def connect_model_gap() -> str | None:
    """Why the installed botocore cannot run the Connect API tests (None: it can)."""
    import botocore
    import botocore.session

    model = botocore.session.get_session().get_service_model("connect")
    for shape, members in CONNECT_MEMBERS.items():
        missing = [m for m in members if m not in model.shape_for(shape).members]
        if missing:
            return (
                f"botocore {botocore.__version__}'s connect model has no {shape}."
                f"{', '.join(missing)} (newer botocore has; the server answers them either way)"
            )
    return None


_CONNECT_GAP = connect_model_gap()
needs_connect_model = pytest.mark.skipif(_CONNECT_GAP is not None, reason=str(_CONNECT_GAP))
