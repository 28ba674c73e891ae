"""Amazon Connect's control-plane API of ``callstream serve``, driven by boto3's ``connect``
client and the AWS CLI against a real server: instances, the live media streaming storage
config and contact flows, with Connect's error codes; the AWS CLI smoke test goes on to a
Lambda association, a claimed number, a call to it and describe-contact (the rest is in
test_api_connect_calls.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from api_helpers import SHARED, aws_cli_env, needs_connect_model
from botocore.config import Config
from botocore.exceptions import ClientError

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.flows.instances import REGISTRY_FILE, InstanceRegistry
from callstream.media.wav import write_wav

ACCESS_KEY = "AKIDCONNECT"
SECRET_KEY = "connect-secret"
REGION = "us-east-1"
ACCOUNT = "123456789012"
CONNECT_FLOWS = SHARED / "testdata" / "connect-flows"
FLOW = json.dumps(
    {
        "Version": "2019-10-30",
        "StartAction": "bye",
        "Actions": [
            {
                "Identifier": "bye",
                "Type": "DisconnectParticipant",
                "Parameters": {},
                "Transitions": {},
            }
        ],
    }
)
BAD_FLOW = json.dumps(
    {
        "Version": "2019-10-30",
        "StartAction": "start",
        "Actions": [
            {
                "Identifier": "start",
                "Type": "MessageParticipant",
                "Parameters": {"Text": "hi"},
                "Transitions": {"NextAction": "nowhere"},
            }
        ],
    }
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY}, region=REGION, account_id=ACCOUNT)
    srv = ServerThread(tmp_path_factory.mktemp("connect-data"), config=config).start()
    try:
        yield srv
    finally:
        srv.stop()


def client(server: ServerThread, *, secret: str = SECRET_KEY) -> Any:
    return boto3.session.Session().client(
        "connect",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30),
    )


@pytest.fixture(scope="module")
def connect(server: ServerThread) -> Any:
    return client(server)


def new_instance(connect: Any, alias: str | None = None) -> str:
    kwargs: dict[str, Any] = {"InstanceAlias": alias} if alias else {}
    out = connect.create_instance(
        IdentityManagementType="CONNECT_MANAGED",
        InboundCallsEnabled=True,
        OutboundCallsEnabled=False,
        **kwargs,
    )
    return str(out["Id"])


def code_of(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


# --- instances -----------------------------------------------------------------------------------
def test_instance_lifecycle(server: ServerThread, connect: Any) -> None:
    out = connect.create_instance(
        IdentityManagementType="CONNECT_MANAGED",
        InstanceAlias="lifecycle-test",
        InboundCallsEnabled=True,
        OutboundCallsEnabled=False,
    )
    iid = out["Id"]
    assert out["Arn"] == f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{iid}"
    instance = connect.describe_instance(InstanceId=iid)["Instance"]
    assert instance["Id"] == iid and instance["Arn"] == out["Arn"]
    assert instance["InstanceAlias"] == "lifecycle-test"
    assert instance["IdentityManagementType"] == "CONNECT_MANAGED"
    assert instance["InstanceStatus"] == "ACTIVE"
    assert instance["InboundCallsEnabled"] is True and instance["OutboundCallsEnabled"] is False
    assert instance["ServiceRole"].startswith(f"arn:aws:iam::{ACCOUNT}:role/")
    assert instance["CreatedTime"].year >= 2024  # parsed by botocore as a timestamp
    listed = connect.list_instances()["InstanceSummaryList"]
    assert iid in [i["Id"] for i in listed]
    # state is in the data directory
    assert server.state.connect.path.name == REGISTRY_FILE
    registry = InstanceRegistry(server.state.connect.path, region=REGION, account_id=ACCOUNT)
    try:
        assert registry.get_instance(iid).instance_alias == "lifecycle-test"
    finally:
        registry.close()
    connect.delete_instance(InstanceId=iid)
    assert iid not in [i["Id"] for i in connect.list_instances()["InstanceSummaryList"]]
    with pytest.raises(ClientError) as err:
        connect.describe_instance(InstanceId=iid)
    assert code_of(err) == "ResourceNotFoundException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_instance_attributes(connect: Any) -> None:
    """Describe/Update/ListInstanceAttributes: a new instance's defaults, a set value kept,
    INBOUND_CALLS / OUTBOUND_CALLS being the instance's own switches."""
    iid = new_instance(connect)
    logs = connect.describe_instance_attribute(InstanceId=iid, AttributeType="CONTACTFLOW_LOGS")
    assert logs["Attribute"] == {"AttributeType": "CONTACTFLOW_LOGS", "Value": "false"}
    connect.update_instance_attribute(
        InstanceId=iid, AttributeType="CONTACTFLOW_LOGS", Value="true"
    )
    logs = connect.describe_instance_attribute(InstanceId=iid, AttributeType="CONTACTFLOW_LOGS")
    assert logs["Attribute"]["Value"] == "true"

    connect.update_instance_attribute(InstanceId=iid, AttributeType="OUTBOUND_CALLS", Value="true")
    connect.update_instance_attribute(InstanceId=iid, AttributeType="INBOUND_CALLS", Value="false")
    instance = connect.describe_instance(InstanceId=iid)["Instance"]
    assert instance["InboundCallsEnabled"] is False and instance["OutboundCallsEnabled"] is True

    pages = connect.get_paginator("list_instance_attributes").paginate(InstanceId=iid)
    listed = {a["AttributeType"]: a["Value"] for page in pages for a in page["Attributes"]}
    assert listed["INBOUND_CALLS"] == "false" and listed["OUTBOUND_CALLS"] == "true"
    assert listed["CONTACTFLOW_LOGS"] == "true"
    assert set(listed) == set(connect.meta.service_model.shape_for("InstanceAttributeType").enum)

    for kind, value in (("CONTACTFLOW_LOGS", "yes"), ("NO_SUCH_ATTRIBUTE", "true")):
        with pytest.raises(connect.exceptions.InvalidParameterException):
            connect.update_instance_attribute(InstanceId=iid, AttributeType=kind, Value=value)
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_instance_attribute(InstanceId="nope", AttributeType="EARLY_MEDIA")
    connect.delete_instance(InstanceId=iid)


def test_unknown_instance(connect: Any) -> None:
    for call in (
        lambda: connect.describe_instance(InstanceId="00000000-0000-0000-0000-000000000000"),
        lambda: connect.delete_instance(InstanceId="nope"),
        lambda: connect.list_contact_flows(InstanceId="nope"),
        lambda: connect.list_instance_storage_configs(
            InstanceId="nope", ResourceType="MEDIA_STREAMS"
        ),
    ):
        with pytest.raises(connect.exceptions.ResourceNotFoundException):
            call()


def test_duplicate_alias(connect: Any) -> None:
    iid = new_instance(connect, "taken-alias")
    with pytest.raises(connect.exceptions.DuplicateResourceException):
        new_instance(connect, "taken-alias")
    connect.delete_instance(InstanceId=iid)
    connect.delete_instance(InstanceId=new_instance(connect, "taken-alias"))


def test_bad_input_is_invalid_parameter(connect: Any, server: ServerThread) -> None:
    unchecked = boto3.session.Session().client(
        "connect",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
    )
    with pytest.raises(unchecked.exceptions.InvalidParameterException) as err:
        unchecked.create_instance(
            IdentityManagementType="NOPE", InboundCallsEnabled=True, OutboundCallsEnabled=True
        )
    assert "IdentityManagementType" in err.value.response["Error"]["Message"]
    with pytest.raises(unchecked.exceptions.InvalidParameterException):
        unchecked.create_instance(IdentityManagementType="SAML", InboundCallsEnabled=True)


def test_error_responses_are_the_model_shapes_with_their_status() -> None:
    from callstream.api.connect import error_response
    from callstream.flows.connect_errors import ConnectError

    missing = error_response(ConnectError("ResourceNotFoundException", "gone"))
    assert (missing.status, missing.body, missing.content_type) == (
        404,
        b'{"Message":"gone"}',
        "application/json",
    )
    assert missing.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    invalid = error_response(ConnectError("InvalidContactFlowException", "bad", ("a", "b")))
    assert (invalid.status, json.loads(invalid.body)) == (
        400,
        {"message": "bad", "problems": [{"message": "a"}, {"message": "b"}]},
    )
    assert invalid.headers["x-amzn-ErrorType"] == "InvalidContactFlowException"
    # a code an older botocore's model lacks is still an answer, not a crash
    unknown = error_response(ConnectError("NotInTheModelException", "odd"))
    assert (unknown.status, unknown.headers["x-amzn-ErrorType"]) == (500, "NotInTheModelException")


def test_wrong_secret_is_refused(server: ServerThread) -> None:
    with pytest.raises(ClientError) as err:
        client(server, secret="wrong").list_instances()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# --- storage config ------------------------------------------------------------------------------
def kvs_config(prefix: str, hours: int, key: str = "alias/connect") -> dict[str, Any]:
    return {
        "StorageType": "KINESIS_VIDEO_STREAM",
        "KinesisVideoStreamConfig": {
            "Prefix": prefix,
            "RetentionPeriodHours": hours,
            "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": key},
        },
    }


def test_media_streams_storage_config(connect: Any) -> None:
    iid = new_instance(connect)
    assoc = connect.associate_instance_storage_config(
        InstanceId=iid, ResourceType="MEDIA_STREAMS", StorageConfig=kvs_config("lca", 24)
    )["AssociationId"]
    got = connect.describe_instance_storage_config(
        InstanceId=iid, AssociationId=assoc, ResourceType="MEDIA_STREAMS"
    )["StorageConfig"]
    assert got == {"AssociationId": assoc, **kvs_config("lca", 24)}
    listed = connect.list_instance_storage_configs(InstanceId=iid, ResourceType="MEDIA_STREAMS")
    assert [c["AssociationId"] for c in listed["StorageConfigs"]] == [assoc]
    # a second MEDIA_STREAMS config is a conflict
    with pytest.raises(connect.exceptions.ResourceConflictException):
        connect.associate_instance_storage_config(
            InstanceId=iid, ResourceType="MEDIA_STREAMS", StorageConfig=kvs_config("x", 1)
        )
    # retention 0 = no data retention
    connect.update_instance_storage_config(
        InstanceId=iid,
        AssociationId=assoc,
        ResourceType="MEDIA_STREAMS",
        StorageConfig=kvs_config("lca2", 0, "arn:aws:kms:us-east-1:123456789012:key/k"),
    )
    got = connect.describe_instance_storage_config(
        InstanceId=iid, AssociationId=assoc, ResourceType="MEDIA_STREAMS"
    )["StorageConfig"]["KinesisVideoStreamConfig"]
    assert got["Prefix"] == "lca2" and got["RetentionPeriodHours"] == 0
    assert got["EncryptionConfig"]["KeyId"].endswith("key/k")
    connect.disassociate_instance_storage_config(
        InstanceId=iid, AssociationId=assoc, ResourceType="MEDIA_STREAMS"
    )
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_instance_storage_config(
            InstanceId=iid, AssociationId=assoc, ResourceType="MEDIA_STREAMS"
        )
    assert not connect.list_instance_storage_configs(InstanceId=iid, ResourceType="MEDIA_STREAMS")[
        "StorageConfigs"
    ]
    # other resource / storage types are not served yet
    with pytest.raises(connect.exceptions.InvalidParameterException):
        connect.associate_instance_storage_config(
            InstanceId=iid,
            ResourceType="CALL_RECORDINGS",
            StorageConfig={
                "StorageType": "S3",
                "S3Config": {"BucketName": "b", "BucketPrefix": "p"},
            },
        )
    connect.delete_instance(InstanceId=iid)


# --- contact flows -------------------------------------------------------------------------------
@needs_connect_model
def test_contact_flow_lifecycle(connect: Any) -> None:
    iid = new_instance(connect)
    created = connect.create_contact_flow(
        InstanceId=iid, Name="Main", Type="CONTACT_FLOW", Content=FLOW, Description="d"
    )
    fid = created["ContactFlowId"]
    assert created["ContactFlowArn"].endswith(f"instance/{iid}/contact-flow/{fid}")
    flow = connect.describe_contact_flow(InstanceId=iid, ContactFlowId=fid)["ContactFlow"]
    assert flow["Name"] == "Main" and flow["Content"] == FLOW
    assert flow["Type"] == "CONTACT_FLOW" and flow["Status"] == "PUBLISHED"
    assert flow["FlowContentSha256"] == created["FlowContentSha256"]
    summary = connect.list_contact_flows(InstanceId=iid)["ContactFlowSummaryList"]
    assert [(s["Id"], s["ContactFlowType"]) for s in summary] == [(fid, "CONTACT_FLOW")]
    assert not connect.list_contact_flows(InstanceId=iid, ContactFlowTypes=["CUSTOMER_QUEUE"])[
        "ContactFlowSummaryList"
    ]
    with pytest.raises(connect.exceptions.DuplicateResourceException):
        connect.create_contact_flow(InstanceId=iid, Name="Main", Type="CONTACT_FLOW", Content=FLOW)
    new_content = FLOW.replace("bye", "end")
    connect.update_contact_flow_content(InstanceId=iid, ContactFlowId=fid, Content=new_content)
    flow = connect.describe_contact_flow(InstanceId=iid, ContactFlowId=fid)["ContactFlow"]
    assert flow["Content"] == new_content
    # an invalid update keeps the old content
    with pytest.raises(connect.exceptions.InvalidContactFlowException):
        connect.update_contact_flow_content(InstanceId=iid, ContactFlowId=fid, Content=BAD_FLOW)
    assert (
        connect.describe_contact_flow(InstanceId=iid, ContactFlowId=fid)["ContactFlow"]["Content"]
        == new_content
    )
    connect.delete_contact_flow(InstanceId=iid, ContactFlowId=fid)
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_contact_flow(InstanceId=iid, ContactFlowId=fid)
    connect.delete_instance(InstanceId=iid)


@needs_connect_model
def test_flow_name_description_and_archiving(connect: Any) -> None:
    """UpdateContactFlowName and UpdateContactFlowMetadata, as a deployment script renames,
    redescribes and archives the flows it replaces."""
    iid = new_instance(connect)
    fid = connect.create_contact_flow(
        InstanceId=iid, Name="Inbound v1", Type="CONTACT_FLOW", Content=FLOW, Description="old"
    )["ContactFlowId"]
    connect.create_contact_flow(
        InstanceId=iid, Name="Inbound v2", Type="CONTACT_FLOW", Content=FLOW
    )
    connect.update_contact_flow_name(InstanceId=iid, ContactFlowId=fid, Name="Inbound (retired)")
    flow = connect.describe_contact_flow(InstanceId=iid, ContactFlowId=fid)["ContactFlow"]
    assert (flow["Name"], flow["Description"], flow["State"]) == (
        "Inbound (retired)",
        "old",
        "ACTIVE",
    )
    connect.update_contact_flow_metadata(
        InstanceId=iid, ContactFlowId=fid, Description="replaced by v2", ContactFlowState="ARCHIVED"
    )
    flow = connect.describe_contact_flow(InstanceId=iid, ContactFlowId=fid)["ContactFlow"]
    assert (flow["Name"], flow["Description"], flow["State"]) == (
        "Inbound (retired)",
        "replaced by v2",
        "ARCHIVED",
    )
    summaries = connect.list_contact_flows(InstanceId=iid)["ContactFlowSummaryList"]
    assert {s["Name"]: s["ContactFlowState"] for s in summaries} == {
        "Inbound (retired)": "ARCHIVED",
        "Inbound v2": "ACTIVE",
    }
    with pytest.raises(connect.exceptions.DuplicateResourceException):
        connect.update_contact_flow_name(InstanceId=iid, ContactFlowId=fid, Name="Inbound v2")
    with pytest.raises(connect.exceptions.InvalidParameterException):
        connect.update_contact_flow_metadata(
            InstanceId=iid, ContactFlowId=fid, ContactFlowState="GONE"
        )
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.update_contact_flow_name(InstanceId=iid, ContactFlowId="nope", Name="x")
    connect.delete_instance(InstanceId=iid)


def test_a_registry_from_before_flow_states_opens_with_active_flows(tmp_path: Path) -> None:
    """A data directory whose flows table has no state column (made before flows could be
    archived) opens, and its flows are ACTIVE."""
    import sqlite3

    path = tmp_path / REGISTRY_FILE
    registry = InstanceRegistry(path, region=REGION, account_id=ACCOUNT)
    instance = registry.create_instance(
        identity_management_type="CONNECT_MANAGED",
        inbound_calls_enabled=True,
        outbound_calls_enabled=False,
    )
    flow = registry.create_flow(instance.id, name="Main", flow_type="CONTACT_FLOW", content=FLOW)
    registry.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE contact_flows DROP COLUMN state")
    db.commit()
    db.close()
    registry = InstanceRegistry(path, region=REGION, account_id=ACCOUNT)
    try:
        assert registry.get_flow(instance.id, flow.id).state == "ACTIVE"
        registry.update_flow_metadata(instance.id, flow.id, state="ARCHIVED")
        assert registry.get_flow(instance.id, flow.id).state == "ARCHIVED"
    finally:
        registry.close()


@needs_connect_model
def test_invalid_flow_lists_problems(connect: Any) -> None:
    iid = new_instance(connect)
    for content in (BAD_FLOW, "not json", '{"Version": "2019-10-30"}', "/etc/passwd"):
        with pytest.raises(connect.exceptions.InvalidContactFlowException) as err:
            connect.create_contact_flow(
                InstanceId=iid, Name="Bad", Type="CONTACT_FLOW", Content=content
            )
        problems = err.value.response["problems"]
        assert problems and all(p["message"] for p in problems)
    with pytest.raises(connect.exceptions.InvalidContactFlowException) as err:
        connect.create_contact_flow(
            InstanceId=iid, Name="Bad", Type="CONTACT_FLOW", Content=BAD_FLOW
        )
    assert any("nowhere" in p["message"] for p in err.value.response["problems"])
    # a SAVED (draft) flow is kept as sent, as Connect does
    saved = connect.create_contact_flow(
        InstanceId=iid, Name="Draft", Type="CONTACT_FLOW", Content=BAD_FLOW, Status="SAVED"
    )
    assert (
        connect.describe_contact_flow(InstanceId=iid, ContactFlowId=saved["ContactFlowId"])[
            "ContactFlow"
        ]["Status"]
        == "SAVED"
    )
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_contact_flow(InstanceId=iid, ContactFlowId="no-such-flow")
    connect.delete_instance(InstanceId=iid)


@needs_connect_model
def test_lca_flow_imports(connect: Any) -> None:
    path = CONNECT_FLOWS / "lca-contact-flow.json"
    if not path.is_file():
        pytest.skip(f"shared test data not found at {path}")
    content = path.read_text()
    iid = new_instance(connect)
    fid = connect.create_contact_flow(
        InstanceId=iid, Name="LCA", Type="CONTACT_FLOW", Content=content
    )["ContactFlowId"]
    flow = connect.describe_contact_flow(InstanceId=iid, ContactFlowId=fid)["ContactFlow"]
    assert flow["Content"] == content and flow["Status"] == "PUBLISHED"
    connect.delete_instance(InstanceId=iid)


def test_deleting_an_instance_deletes_its_flows(connect: Any) -> None:
    iid = new_instance(connect)
    connect.create_contact_flow(InstanceId=iid, Name="F", Type="CONTACT_FLOW", Content=FLOW)
    connect.delete_instance(InstanceId=iid)
    iid2 = new_instance(connect)
    assert not connect.list_contact_flows(InstanceId=iid2)["ContactFlowSummaryList"]
    connect.delete_instance(InstanceId=iid2)


# --- the AWS CLI ---------------------------------------------------------------------------------
@needs_connect_model
def test_aws_cli(server: ServerThread, tmp_path: Path) -> None:
    aws = shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI (`aws`) is not installed")
    env = aws_cli_env(ACCESS_KEY, SECRET_KEY, REGION)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [aws, "connect", *args, "--endpoint-url", server.url, "--output", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    created = run(
        "create-instance",
        "--identity-management-type",
        "CONNECT_MANAGED",
        "--inbound-calls-enabled",
        "--no-outbound-calls-enabled",
        "--instance-alias",
        "cli-smoke",
    )
    assert created.returncode == 0, created.stderr
    iid = json.loads(created.stdout)["Id"]
    storage = run(
        "associate-instance-storage-config",
        "--instance-id",
        iid,
        "--resource-type",
        "MEDIA_STREAMS",
        "--storage-config",
        json.dumps(kvs_config("cli", 24)),
    )
    assert storage.returncode == 0, storage.stderr
    assert json.loads(storage.stdout)["AssociationId"]
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(FLOW)
    flow = run(
        "create-contact-flow",
        "--instance-id",
        iid,
        "--name",
        "cli flow",
        "--type",
        "CONTACT_FLOW",
        "--content",
        f"file://{flow_file}",
    )
    assert flow.returncode == 0, flow.stderr
    flow_id = json.loads(flow.stdout)["ContactFlowId"]
    assert flow_id
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:cli-fn"
    associated = run("associate-lambda-function", "--instance-id", iid, "--function-arn", function)
    assert associated.returncode == 0, associated.stderr
    listed = run("list-lambda-functions", "--instance-id", iid)
    assert json.loads(listed.stdout)["LambdaFunctions"] == [function]
    search = run(
        "search-available-phone-numbers",
        "--instance-id",
        iid,
        "--phone-number-country-code",
        "US",
        "--phone-number-type",
        "DID",
        "--max-results",
        "1",
    )
    assert search.returncode == 0, search.stderr
    number = json.loads(search.stdout)["AvailableNumbersList"][0]["PhoneNumber"]
    claimed = run("claim-phone-number", "--instance-id", iid, "--phone-number", number)
    assert claimed.returncode == 0, claimed.stderr
    number_id = json.loads(claimed.stdout)["PhoneNumberId"]
    bound = run(
        "associate-phone-number-contact-flow",
        "--phone-number-id",
        number_id,
        "--instance-id",
        iid,
        "--contact-flow-id",
        flow_id,
    )
    assert bound.returncode == 0, bound.stderr
    customer = tmp_path / "customer.wav"
    write_wav(customer, np.zeros((4000, 1), dtype=np.int16), 8000)
    call = subprocess.run(
        [
            sys.executable,
            "-m",
            "callstream.cli",
            "call",
            "--to",
            number,
            "--customer-audio",
            str(customer),
            "--endpoint-url",
            server.url,
            "--speed",
            "20",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert call.returncode == 0, call.stderr
    contact_id = json.loads(call.stdout)["ContactId"]
    described = run("describe-contact", "--instance-id", iid, "--contact-id", contact_id)
    assert described.returncode == 0, described.stderr
    contact = json.loads(described.stdout)["Contact"]
    assert contact["Id"] == contact_id and contact["InitiationMethod"] == "INBOUND"
    assert contact["SystemEndpoint"]["Address"] == number
    unknown = run("describe-contact", "--instance-id", iid, "--contact-id", "no-such-contact")
    assert unknown.returncode != 0 and "ResourceNotFoundException" in unknown.stderr
    missing = run("describe-instance", "--instance-id", "nope")
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr
    assert run("delete-instance", "--instance-id", iid).returncode == 0
