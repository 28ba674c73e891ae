"""Connect instances used for calls, configured only through boto3's ``connect`` client
against a real server: Lambda associations, phone numbers from the server's pool, queues
and hours, contacts placed by number (``callstream call --to``) or with
StartOutboundVoiceContact, DescribeContact / contact attributes / StopContact, the contact
events on the bus, and Connect's error codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import numpy as np
import pytest
from api_helpers import SHARED, needs_connect_model
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.client.aws import sign_request
from callstream.flows.connect_client import configure_server
from callstream.media.wav import read_wav, write_wav

pytestmark = needs_connect_model

KEY, SECRET = "AKIDCONNECTCALLS", "connect-calls-secret"
REGION = "us-east-1"
ACCOUNT = "123456789012"
RATE = 8000
SRC = Path(__file__).resolve().parents[2] / "src"
LCA_FLOW = SHARED / "testdata" / "connect-flows" / "lca-contact-flow.json"
requires_lca = pytest.mark.skipif(
    not LCA_FLOW.is_file(),
    reason=f"shared test data not found at {LCA_FLOW} (set CALLSTREAM_SHARED_DIR)",
)
START_LCA = "arn:aws:lambda:us-east-1:123456789012:function:LCA-StartLCAFunction"
HANGUP_FLOW = json.dumps(
    {
        "Version": "2019-10-30",
        "StartAction": "stream",
        "Actions": [
            {
                "Identifier": "stream",
                "Type": "UpdateContactMediaStreamingBehavior",
                "Parameters": {
                    "MediaStreamingState": "Enabled",
                    "MediaStreamType": "Audio",
                    "Participants": [
                        {"ParticipantType": "Customer", "MediaDirections": ["From", "To"]}
                    ],
                },
                "Transitions": {
                    "NextAction": "bye",
                    "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "failed"}],
                },
            },
            {
                "Identifier": "failed",
                "Type": "UpdateContactAttributes",
                "Parameters": {"Attributes": {"streaming": "failed"}},
                "Transitions": {
                    "NextAction": "bye",
                    "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "bye"}],
                },
            },
            {
                "Identifier": "bye",
                "Type": "DisconnectParticipant",
                "Parameters": {},
                "Transitions": {},
            },
        ],
    }
)
QUEUE_FLOW = json.dumps(
    {
        "Version": "2019-10-30",
        "StartAction": "set-queue",
        "Actions": [
            {
                "Identifier": "set-queue",
                "Type": "UpdateContactTargetQueue",
                "Parameters": {"QueueId": ""},
                "Transitions": {
                    "NextAction": "queue",
                    "Errors": [{"ErrorType": "NoMatchingError", "NextAction": "bye"}],
                },
            },
            {
                "Identifier": "queue",
                "Type": "TransferContactToQueue",
                "Parameters": {},
                "Transitions": {
                    "NextAction": "bye",
                    "Errors": [
                        {"ErrorType": "QueueAtCapacity", "NextAction": "bye"},
                        {"ErrorType": "NoMatchingError", "NextAction": "bye"},
                    ],
                },
            },
            {
                "Identifier": "bye",
                "Type": "DisconnectParticipant",
                "Parameters": {},
                "Transitions": {},
            },
        ],
    }
)


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("connect-calls")


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[ServerThread]:
    config = ServerConfig(credentials={KEY: SECRET}, region=REGION, account_id=ACCOUNT)
    srv = ServerThread(data_dir, config=config).start()
    try:
        yield srv
    finally:
        srv.stop()


def client(server: ServerThread, service: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=60),
    )


@pytest.fixture(scope="module")
def connect(server: ServerThread) -> Any:
    return client(server, "connect")


class _Lambda(BaseHTTPRequestHandler):
    events: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).events.append(json.loads(self.rfile.read(length)))
        body = json.dumps({"started": "yes"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def lambda_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint standing in for the StartLCA function: records each event."""
    events: list[dict[str, Any]] = []
    handler = type("Handler", (_Lambda,), {"events": events})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/start-lca", events
    finally:
        httpd.shutdown()
        httpd.server_close()


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 4000).clip(-32000, 32000).astype(np.int16)


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p),
    )
    return env


def callstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callstream.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=180,
    )


def events_of(server: ServerThread, contact_id: str, fmt: str = "callstream") -> list[Any]:
    url = f"{server.url}/callstream/events?" + urlencode(
        {"contact": contact_id, "limit": "1000", "format": fmt}
    )
    headers = sign_request("GET", url, credentials=Credentials(KEY, SECRET), region=REGION)
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return list(json.loads(r.read())["Events"])


def new_instance(connect: Any, alias: str, *, outbound: bool = True) -> tuple[str, str]:
    out = connect.create_instance(
        IdentityManagementType="CONNECT_MANAGED",
        InstanceAlias=alias,
        InboundCallsEnabled=True,
        OutboundCallsEnabled=outbound,
    )
    return str(out["Id"]), str(out["Arn"])


def claim(connect: Any, instance_arn: str, flow_id: str | None = None) -> tuple[str, str]:
    """A number from the pool (SearchAvailablePhoneNumbers + ClaimPhoneNumber), bound to
    ``flow_id`` when given: (number, id)."""
    available = connect.search_available_phone_numbers(
        TargetArn=instance_arn, PhoneNumberCountryCode="US", PhoneNumberType="DID", MaxResults=5
    )["AvailableNumbersList"]
    for candidate in available:
        try:
            claimed = connect.claim_phone_number(
                TargetArn=instance_arn, PhoneNumber=candidate["PhoneNumber"]
            )
        except connect.exceptions.IdempotencyException:  # another test took it meanwhile
            continue
        number_id = claimed["PhoneNumberId"]
        if flow_id is not None:
            connect.associate_phone_number_contact_flow(
                PhoneNumberId=number_id,
                InstanceId=instance_arn.rsplit("/", 1)[1],
                ContactFlowId=flow_id,
            )
        return str(candidate["PhoneNumber"]), str(number_id)
    raise AssertionError("no number left in the pool")


def iso_ms(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


# --- acceptance: the LCA deployment, then a call to its number ------------------------------------
@requires_lca
def test_lca_instance_configured_with_boto3_takes_a_call(
    server: ServerThread,
    connect: Any,
    data_dir: Path,
    tmp_path: Path,
    lambda_url: tuple[str, list[dict[str, Any]]],
) -> None:
    url, lambda_events = lambda_url
    # the deployment script, as written for real Connect (only the endpoint differs)
    iid, instance_arn = new_instance(connect, "lca-e2e")
    kms_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    connect.associate_instance_storage_config(
        InstanceId=iid,
        ResourceType="MEDIA_STREAMS",
        StorageConfig={
            "StorageType": "KINESIS_VIDEO_STREAM",
            "KinesisVideoStreamConfig": {
                "Prefix": "lca-e2e-media",
                "RetentionPeriodHours": 24,
                "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": kms_key},
            },
        },
    )
    connect.associate_lambda_function(InstanceId=iid, FunctionArn=START_LCA)
    assert connect.list_lambda_functions(InstanceId=iid)["LambdaFunctions"] == [START_LCA]
    hours = connect.list_hours_of_operations(InstanceId=iid)["HoursOfOperationSummaryList"]
    basic_hours = next(h["Id"] for h in hours if h["Name"] == "Basic Hours")
    queue = connect.create_queue(
        InstanceId=iid, Name="LCAQueue", HoursOfOperationId=basic_hours, Description="LCA"
    )
    listed_queues = connect.list_queues(InstanceId=iid, QueueTypes=["STANDARD"])
    assert "LCAQueue" in [q["Name"] for q in listed_queues["QueueSummaryList"]]
    content = (
        LCA_FLOW.read_text()
        .replace('"LambdaFunctionARN":""', f'"LambdaFunctionARN":"{START_LCA}"')
        .replace('"QueueId":""', f'"QueueId":"{queue["QueueArn"]}"')
    )
    assert START_LCA in content and queue["QueueArn"] in content
    flow_id = connect.create_contact_flow(
        InstanceId=iid, Name="to-lca-kvs", Type="CONTACT_FLOW", Content=content
    )["ContactFlowId"]
    number, number_id = claim(connect, instance_arn, flow_id)
    described = connect.describe_phone_number(PhoneNumberId=number_id)["ClaimedPhoneNumberSummary"]
    assert described["PhoneNumber"] == number and described["TargetArn"] == instance_arn
    assert described["PhoneNumberStatus"]["Status"] == "CLAIMED"
    # the server side of the Lambda: what `callstream serve --connect-lambda` keeps
    configure_server(data_dir, region=REGION, account_id=ACCOUNT, lambdas={START_LCA: url})

    # a caller dials the number
    customer = noise(6.0, seed=13)
    customer_wav = tmp_path / "customer.wav"
    write_wav(customer_wav, customer.reshape(-1, 1), RATE)
    placed = callstream(
        "call",
        "--to",
        number,
        "--from",
        "+15555550123",
        "--customer-audio",
        str(customer_wav),
        "--attribute",
        "campaign=spring",
        "--endpoint-url",
        server.url,
        "--speed",
        "4",
    )
    assert placed.returncode == 0, placed.stderr
    ctr = json.loads(placed.stdout)
    contact_id = ctr["ContactId"]
    assert ctr["InstanceARN"] == instance_arn and ctr["InitiationMethod"] == "INBOUND"
    assert ctr["SystemEndpoint"]["Address"] == number
    assert ctr["CustomerEndpoint"]["Address"] == "+15555550123"
    assert ctr["Queue"]["ARN"] == queue["QueueArn"]

    # the stream: named from the instance's prefix, with its retention and key
    stream_name = f"lca-e2e-media-connect-lca-e2e-contact-{contact_id}"
    info = client(server, "kinesisvideo").describe_stream(StreamName=stream_name)["StreamInfo"]
    assert info["DataRetentionInHours"] == 24 and info["KmsKeyId"] == kms_key

    # the StartLCA-style payload, with the MediaStreams attributes
    assert len(lambda_events) == 1
    data = lambda_events[0]["Details"]["ContactData"]
    assert lambda_events[0]["Name"] == "ContactFlowEvent"
    assert data["ContactId"] == contact_id and data["InstanceARN"] == instance_arn
    assert data["Channel"] == "VOICE" and data["InitiationMethod"] == "INBOUND"
    assert data["SystemEndpoint"] == {"Address": number, "Type": "TELEPHONE_NUMBER"}
    assert data["Attributes"] == {"campaign": "spring"}
    audio = data["MediaStreams"]["Customer"]["Audio"]
    assert audio["StreamARN"] == info["StreamARN"]
    assert audio["StartFragmentNumber"].isdigit() and audio["StartTimestamp"].isdigit()
    recording = ctr["Recordings"][0]
    assert recording["Location"] == info["StreamARN"]
    assert recording["FragmentStartNumber"] == audio["StartFragmentNumber"]

    # DescribeContact and GetContactAttributes know the contact
    contact = connect.describe_contact(InstanceId=iid, ContactId=contact_id)["Contact"]
    assert contact["Id"] == contact_id and contact["Arn"] == f"{instance_arn}/contact/{contact_id}"
    assert contact["InitiationMethod"] == "INBOUND" and contact["Channel"] == "VOICE"
    assert contact["QueueInfo"]["Id"] == queue["QueueId"]
    assert contact["SystemEndpoint"]["Address"] == number
    assert contact["DisconnectReason"] == "CUSTOMER_DISCONNECT"
    assert contact["DisconnectTimestamp"] >= contact["InitiationTimestamp"]
    attributes = connect.get_contact_attributes(InstanceId=iid, InitialContactId=contact_id)
    assert attributes["Attributes"] == {"campaign": "spring"}
    connect.update_contact_attributes(
        InstanceId=iid, InitialContactId=contact_id, Attributes={"disposition": "resolved"}
    )
    attributes = connect.get_contact_attributes(InstanceId=iid, InitialContactId=contact_id)
    assert attributes["Attributes"] == {"campaign": "spring", "disposition": "resolved"}

    # the contact events on the bus, next to the streaming events and the CTR
    kinds = [e["EventType"] for e in events_of(server, contact_id)]
    assert kinds[:2] == ["ContactStarted", "ContactConnectedToSystem"]
    assert kinds[-1] == "ContactEnded"
    assert {"MediaStreamingStarted", "ContactQueued", "MediaStreamingStopped"} <= set(kinds)
    assert kinds.index("MediaStreamingStarted") < kinds.index("ContactQueued")
    bridge = [
        e for e in events_of(server, contact_id, "eventbridge") if e["source"] == "aws.connect"
    ]
    assert [e["detail"]["eventType"] for e in bridge] == [
        "INITIATED",
        "CONNECTED_TO_SYSTEM",
        "QUEUED",
        "DISCONNECTED",
    ]
    for event in bridge:
        assert event["detail-type"] == "Amazon Connect Contact Event"
        assert event["detail"]["contactId"] == contact_id
        assert event["detail"]["instanceArn"] == instance_arn
        assert event["detail"]["channel"] == "VOICE"
        assert instance_arn in event["resources"]
    queued = bridge[2]["detail"]
    assert queued["initiationMethod"] == "INBOUND"
    assert queued["queueInfo"]["queueArn"] == queue["QueueArn"]
    assert queued["queueInfo"]["queueType"] == "STANDARD"

    # get-audio --start-fragment recovers the customer audio sample-exact
    out = tmp_path / "from-customer.wav"
    got_audio = callstream(
        "get-audio",
        "--stream",
        stream_name,
        "--endpoint-url",
        server.url,
        "--start-fragment",
        audio["StartFragmentNumber"],
        "--track",
        "AUDIO_FROM_CUSTOMER",
        "--out",
        str(out),
    )
    assert got_audio.returncode == 0, got_audio.stderr
    start = (int(audio["StartTimestamp"]) - iso_ms(ctr["InitiationTimestamp"])) * RATE // 1000
    assert 0 <= start < len(customer)
    np.testing.assert_array_equal(read_wav(out).samples[:, 0], customer[start:])


# --- phone numbers, Lambdas, queues, hours ----------------------------------------------------------
def test_phone_numbers(connect: Any) -> None:
    iid, arn = new_instance(connect, "numbers")
    fid = connect.create_contact_flow(
        InstanceId=iid, Name="F", Type="CONTACT_FLOW", Content=HANGUP_FLOW
    )["ContactFlowId"]
    first, first_id = claim(connect, arn, fid)
    second, second_id = claim(connect, arn)
    assert first.startswith("+1555010") and len(first) == 12
    listed = connect.list_phone_numbers_v2(InstanceId=iid)["ListPhoneNumbersSummaryList"]
    assert sorted(n["PhoneNumber"] for n in listed) == sorted([first, second])
    assert all(n["TargetArn"] == arn and n["PhoneNumberType"] == "DID" for n in listed)
    page = connect.list_phone_numbers_v2(InstanceId=iid, MaxResults=1)
    rest = connect.list_phone_numbers_v2(InstanceId=iid, MaxResults=1, NextToken=page["NextToken"])
    assert len(page["ListPhoneNumbersSummaryList"]) == len(rest["ListPhoneNumbersSummaryList"]) == 1
    assert "NextToken" not in rest
    v1 = connect.list_phone_numbers(InstanceId=iid)["PhoneNumberSummaryList"]
    assert {n["Id"] for n in v1} == {first_id, second_id}
    # a claimed number is not available any more; one outside the pool never is
    with pytest.raises(connect.exceptions.IdempotencyException):
        connect.claim_phone_number(InstanceId=iid, PhoneNumber=first)
    with pytest.raises(connect.exceptions.InvalidParameterException):
        connect.claim_phone_number(InstanceId=iid, PhoneNumber="+442079460000")
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.claim_phone_number(InstanceId="no-such-instance", PhoneNumber="+15550109999")
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.associate_phone_number_contact_flow(
            PhoneNumberId=second_id, InstanceId=iid, ContactFlowId="no-such-flow"
        )
    connect.disassociate_phone_number_contact_flow(PhoneNumberId=first_id, InstanceId=iid)
    connect.release_phone_number(PhoneNumberId=second_id)
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_phone_number(PhoneNumberId=second_id)
    # tags on a number and on the instance
    connect.tag_resource(resourceArn=f"{arn}", tags={"team": "cc"})
    number_arn = connect.describe_phone_number(PhoneNumberId=first_id)["ClaimedPhoneNumberSummary"][
        "PhoneNumberArn"
    ]
    connect.tag_resource(resourceArn=number_arn, tags={"line": "sales", "x": "y"})
    connect.untag_resource(resourceArn=number_arn, tagKeys=["x"])
    assert connect.list_tags_for_resource(resourceArn=number_arn)["tags"] == {"line": "sales"}
    assert connect.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "cc"}
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.list_tags_for_resource(resourceArn=f"{arn}/queue/nope")
    connect.delete_instance(InstanceId=iid)
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_phone_number(PhoneNumberId=first_id)


def test_lambda_associations(connect: Any) -> None:
    iid, _ = new_instance(connect, "lambdas")
    arns = [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f{i}" for i in range(3)]
    for arn in arns:
        connect.associate_lambda_function(InstanceId=iid, FunctionArn=arn)
    with pytest.raises(connect.exceptions.ResourceConflictException):
        connect.associate_lambda_function(InstanceId=iid, FunctionArn=arns[0])
    with pytest.raises(connect.exceptions.InvalidParameterException):
        connect.associate_lambda_function(InstanceId=iid, FunctionArn="not-an-arn")
    pages = connect.get_paginator("list_lambda_functions").paginate(
        InstanceId=iid, PaginationConfig={"PageSize": 2}
    )
    assert [arn for p in pages for arn in p["LambdaFunctions"]] == arns
    connect.disassociate_lambda_function(InstanceId=iid, FunctionArn=arns[1])
    assert connect.list_lambda_functions(InstanceId=iid)["LambdaFunctions"] == [arns[0], arns[2]]
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.disassociate_lambda_function(InstanceId=iid, FunctionArn=arns[1])
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.list_lambda_functions(InstanceId="no-such-instance")
    connect.delete_instance(InstanceId=iid)


def test_queues_and_hours(connect: Any) -> None:
    iid, arn = new_instance(connect, "queues")
    hours = connect.create_hours_of_operation(
        InstanceId=iid,
        Name="Office",
        TimeZone="Europe/Paris",
        Config=[
            {
                "Day": "MONDAY",
                "StartTime": {"Hours": 9, "Minutes": 0},
                "EndTime": {"Hours": 17, "Minutes": 30},
            }
        ],
    )
    got = connect.describe_hours_of_operation(
        InstanceId=iid, HoursOfOperationId=hours["HoursOfOperationId"]
    )["HoursOfOperation"]
    assert got["Name"] == "Office" and got["TimeZone"] == "Europe/Paris"
    assert got["Config"][0]["EndTime"] == {"Hours": 17, "Minutes": 30}
    with pytest.raises(connect.exceptions.InvalidParameterException):
        connect.create_hours_of_operation(
            InstanceId=iid, Name="Bad", TimeZone="Mars/Olympus", Config=[]
        )
    queue = connect.create_queue(
        InstanceId=iid, Name="Support", HoursOfOperationId=hours["HoursOfOperationId"]
    )
    assert queue["QueueArn"] == f"{arn}/queue/{queue['QueueId']}"
    described = connect.describe_queue(InstanceId=iid, QueueId=queue["QueueId"])["Queue"]
    assert described["HoursOfOperationId"] == hours["HoursOfOperationId"]
    with pytest.raises(connect.exceptions.DuplicateResourceException):
        connect.create_queue(
            InstanceId=iid, Name="Support", HoursOfOperationId=hours["HoursOfOperationId"]
        )
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.create_queue(InstanceId=iid, Name="Orphan", HoursOfOperationId="nope")
    names = [
        q["Name"]
        for p in connect.get_paginator("list_queues").paginate(
            InstanceId=iid, PaginationConfig={"PageSize": 1}
        )
        for q in p["QueueSummaryList"]
    ]
    assert names == ["BasicQueue", "Support"]
    # the summaries and descriptions: what names the resource, and where it was modified
    summary = connect.list_queues(InstanceId=iid)["QueueSummaryList"][1]
    assert {k: summary[k] for k in ("Id", "Arn", "Name", "QueueType", "LastModifiedRegion")} == {
        "Id": queue["QueueId"],
        "Arn": queue["QueueArn"],
        "Name": "Support",
        "QueueType": "STANDARD",
        "LastModifiedRegion": REGION,
    }
    assert connect.list_queues(InstanceId=iid, QueueTypes=["AGENT"])["QueueSummaryList"] == []
    listed = connect.list_hours_of_operations(InstanceId=iid)["HoursOfOperationSummaryList"]
    assert [(h["Id"], h["Name"], h["LastModifiedRegion"]) for h in listed][1:] == [
        (hours["HoursOfOperationId"], "Office", REGION)
    ]
    assert listed[1]["Arn"] == hours["HoursOfOperationArn"] == got["HoursOfOperationArn"]
    for item in (summary, *listed, described, got):
        assert item["LastModifiedRegion"] == REGION
        assert isinstance(item["LastModifiedTime"], datetime)
    assert described["QueueArn"] == queue["QueueArn"] and described["Status"] == "ENABLED"
    connect.delete_instance(InstanceId=iid)


def test_list_pagination(connect: Any) -> None:
    iid, _ = new_instance(connect, "paging")
    for i in range(5):
        connect.create_contact_flow(
            InstanceId=iid, Name=f"flow-{i}", Type="CONTACT_FLOW", Content=HANGUP_FLOW
        )
    pages = list(
        connect.get_paginator("list_contact_flows").paginate(
            InstanceId=iid, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["ContactFlowSummaryList"]) for p in pages] == [2, 2, 1]
    assert [s["Name"] for p in pages for s in p["ContactFlowSummaryList"]] == [
        f"flow-{i}" for i in range(5)
    ]
    with pytest.raises(connect.exceptions.InvalidParameterException):
        connect.list_contact_flows(InstanceId=iid, NextToken="garbage!")
    connect.delete_instance(InstanceId=iid)


# --- contacts -------------------------------------------------------------------------------------
def test_call_to_unknown_or_unbound_number(
    server: ServerThread, connect: Any, tmp_path: Path
) -> None:
    customer_wav = tmp_path / "c.wav"
    write_wav(customer_wav, noise(0.5, seed=1).reshape(-1, 1), RATE)
    unknown = callstream(
        "call",
        "--to",
        "+15550109998",
        "--customer-audio",
        str(customer_wav),
        "--endpoint-url",
        server.url,
    )
    assert unknown.returncode == 1
    assert "ResourceNotFoundException" in unknown.stderr and "+15550109998" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    iid, arn = new_instance(connect, "unbound")
    number, _ = claim(connect, arn)
    unbound = callstream(
        "call", "--to", number, "--customer-audio", str(customer_wav), "--endpoint-url", server.url
    )
    assert unbound.returncode == 1 and "not associated with a contact flow" in unbound.stderr
    module_lambda = callstream(
        "call",
        "--to",
        number,
        "--customer-audio",
        str(customer_wav),
        "--lambda",
        "f=os:system",
        "--endpoint-url",
        server.url,
    )
    assert module_lambda.returncode == 1 and "URLs only" in module_lambda.stderr
    connect.delete_instance(InstanceId=iid)


def test_without_storage_config_streaming_takes_the_error_branch(
    server: ServerThread, connect: Any, tmp_path: Path
) -> None:
    iid, arn = new_instance(connect, "no-storage")
    fid = connect.create_contact_flow(
        InstanceId=iid, Name="F", Type="CONTACT_FLOW", Content=HANGUP_FLOW
    )["ContactFlowId"]
    number, _ = claim(connect, arn, fid)
    customer_wav = tmp_path / "c.wav"
    write_wav(customer_wav, noise(10.0, seed=2).reshape(-1, 1), RATE)
    placed = callstream(
        "call",
        "--to",
        number,
        "--customer-audio",
        str(customer_wav),
        "--endpoint-url",
        server.url,
        "--speed",
        "20",
    )
    assert placed.returncode == 0, placed.stderr
    ctr = json.loads(placed.stdout)
    assert ctr["Attributes"] == {"streaming": "failed"} and ctr["Recordings"] is None
    assert ctr["DisconnectReason"] == "CONTACT_FLOW_DISCONNECT"
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_instance_storage_config(
            InstanceId=iid, AssociationId="0" * 64, ResourceType="MEDIA_STREAMS"
        )
    contact = connect.describe_contact(InstanceId=iid, ContactId=ctr["ContactId"])["Contact"]
    assert contact["DisconnectReason"] == "CONTACT_FLOW_DISCONNECT"
    connect.delete_instance(InstanceId=iid)


def test_outbound_contact_runs_until_stopped(server: ServerThread, connect: Any) -> None:
    iid, arn = new_instance(connect, "outbound")
    connect.associate_instance_storage_config(
        InstanceId=iid,
        ResourceType="MEDIA_STREAMS",
        StorageConfig={
            "StorageType": "KINESIS_VIDEO_STREAM",
            "KinesisVideoStreamConfig": {
                "Prefix": "out",
                "RetentionPeriodHours": 1,
                "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": "alias/out"},
            },
        },
    )
    fid = connect.create_contact_flow(
        InstanceId=iid, Name="Q", Type="CONTACT_FLOW", Content=QUEUE_FLOW
    )["ContactFlowId"]
    number, _ = claim(connect, arn)
    contact_id = connect.start_outbound_voice_contact(
        InstanceId=iid,
        ContactFlowId=fid,
        DestinationPhoneNumber="+15555550142",
        SourcePhoneNumber=number,
        Attributes={"reason": "callback"},
    )["ContactId"]
    contact = connect.describe_contact(InstanceId=iid, ContactId=contact_id)["Contact"]
    assert contact["InitiationMethod"] == "OUTBOUND"
    assert contact["CustomerEndpoint"]["Address"] == "+15555550142"
    assert contact["SystemEndpoint"]["Address"] == number
    assert "DisconnectTimestamp" not in contact  # it is up (60 s of silence)
    # a live contact's attributes change while it runs
    connect.update_contact_attributes(
        InstanceId=iid, InitialContactId=contact_id, Attributes={"agent": "bob"}
    )
    assert connect.get_contact_attributes(InstanceId=iid, InitialContactId=contact_id)[
        "Attributes"
    ] == {"reason": "callback", "agent": "bob"}
    connect.stop_contact(InstanceId=iid, ContactId=contact_id)
    deadline = time.monotonic() + 60
    while "DisconnectTimestamp" not in contact and time.monotonic() < deadline:
        time.sleep(0.1)
        contact = connect.describe_contact(InstanceId=iid, ContactId=contact_id)["Contact"]
    assert contact["DisconnectReason"] == "API"
    assert contact["Attributes"] == {"reason": "callback", "agent": "bob"}
    with pytest.raises(connect.exceptions.ContactNotFoundException):
        connect.stop_contact(InstanceId=iid, ContactId=contact_id)
    kinds = [e["EventType"] for e in events_of(server, contact_id)]
    assert kinds[0] == "ContactStarted" and "ContactQueued" in kinds
    assert kinds[-1] == "ContactEnded"
    # outbound calls disabled on the instance
    iid2, _ = new_instance(connect, "inbound-only", outbound=False)
    fid2 = connect.create_contact_flow(
        InstanceId=iid2, Name="Q", Type="CONTACT_FLOW", Content=QUEUE_FLOW
    )["ContactFlowId"]
    with pytest.raises(connect.exceptions.OutboundContactNotPermittedException):
        connect.start_outbound_voice_contact(
            InstanceId=iid2, ContactFlowId=fid2, DestinationPhoneNumber="+15555550142"
        )
    connect.delete_instance(InstanceId=iid)
    connect.delete_instance(InstanceId=iid2)


def test_unknown_contacts_and_instances(connect: Any) -> None:
    iid, _ = new_instance(connect, "unknowns")
    missing = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_contact(InstanceId=iid, ContactId=missing)
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.get_contact_attributes(InstanceId=iid, InitialContactId=missing)
    with pytest.raises(connect.exceptions.ContactNotFoundException):
        connect.stop_contact(InstanceId=iid, ContactId=missing)
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.describe_contact(InstanceId="no-such-instance", ContactId=missing)
    with pytest.raises(connect.exceptions.ResourceNotFoundException):
        connect.start_outbound_voice_contact(
            InstanceId=iid, ContactFlowId="no-such-flow", DestinationPhoneNumber="+15555550142"
        )
    with pytest.raises(ClientError) as err:
        connect.start_outbound_voice_contact(
            InstanceId="no-such-instance",
            ContactFlowId="no-such-flow",
            DestinationPhoneNumber="+15555550142",
        )
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    connect.delete_instance(InstanceId=iid)


def test_settings_from_serve_options(tmp_path: Path) -> None:
    """``serve --phone-numbers`` and ``--connect-outbound-audio``."""
    outbound_wav = tmp_path / "outbound.wav"
    write_wav(outbound_wav, noise(1.0, seed=6).reshape(-1, 1), RATE)
    configure_server(
        tmp_path,
        region=REGION,
        account_id=ACCOUNT,
        phone_numbers="+18005550100,+4420794600xx",
        outbound_audio=outbound_wav,
    )
    config = ServerConfig(credentials={KEY: SECRET}, region=REGION, account_id=ACCOUNT)
    with ServerThread(tmp_path, config=config) as srv:
        connect = client(srv, "connect")
        _, arn = new_instance(connect, "pool")
        toll_free = connect.search_available_phone_numbers(
            TargetArn=arn, PhoneNumberCountryCode="US", PhoneNumberType="TOLL_FREE"
        )["AvailableNumbersList"]
        assert [n["PhoneNumber"] for n in toll_free] == ["+18005550100"]
        uk = connect.search_available_phone_numbers(
            TargetArn=arn, PhoneNumberCountryCode="GB", PhoneNumberType="DID", MaxResults=3
        )["AvailableNumbersList"]
        assert [n["PhoneNumber"] for n in uk] == ["+442079460000", "+442079460001", "+442079460002"]
        connect.claim_phone_number(TargetArn=arn, PhoneNumber="+442079460042")
        with pytest.raises(connect.exceptions.InvalidParameterException):
            connect.claim_phone_number(TargetArn=arn, PhoneNumber="+15550100000")
        # the outbound contact's customer plays the configured WAV, then hangs up
        iid = arn.rsplit("/", 1)[1]
        fid = connect.create_contact_flow(
            InstanceId=iid, Name="Q", Type="CONTACT_FLOW", Content=QUEUE_FLOW
        )["ContactFlowId"]
        contact_id = connect.start_outbound_voice_contact(
            InstanceId=iid, ContactFlowId=fid, DestinationPhoneNumber="+15555550142"
        )["ContactId"]
        contact = connect.describe_contact(InstanceId=iid, ContactId=contact_id)["Contact"]
        deadline = time.monotonic() + 60
        while "DisconnectTimestamp" not in contact and time.monotonic() < deadline:
            time.sleep(0.1)
            contact = connect.describe_contact(InstanceId=iid, ContactId=contact_id)["Contact"]
        assert contact["DisconnectReason"] == "CUSTOMER_DISCONNECT"
        assert contact["SystemEndpoint"]["Address"] == "+442079460042"  # the instance's number
    bad = callstream("serve", "--data-dir", str(tmp_path / "x"), "--phone-numbers", "555-0100")
    assert bad.returncode == 1 and "555-0100" in bad.stderr
    missing = tmp_path / "missing.wav"
    bad = callstream(
        "serve", "--data-dir", str(tmp_path / "y"), "--connect-outbound-audio", str(missing)
    )
    assert bad.returncode == 1 and "missing.wav" in bad.stderr


def test_queued_call_with_an_agent_sends_every_contact_event(
    server: ServerThread, connect: Any, tmp_path: Path
) -> None:
    iid, arn = new_instance(connect, "agent")
    fid = connect.create_contact_flow(
        InstanceId=iid, Name="Q", Type="CONTACT_FLOW", Content=QUEUE_FLOW
    )["ContactFlowId"]
    number, _ = claim(connect, arn, fid)
    customer_wav, agent_wav = tmp_path / "c.wav", tmp_path / "a.wav"
    write_wav(customer_wav, noise(6.0, seed=4).reshape(-1, 1), RATE)
    write_wav(agent_wav, noise(1.0, seed=5).reshape(-1, 1), RATE)
    placed = callstream(
        "call",
        "--to",
        number,
        "--customer-audio",
        str(customer_wav),
        "--agent-audio",
        str(agent_wav),
        "--endpoint-url",
        server.url,
        "--speed",
        "5",
    )
    assert placed.returncode == 0, placed.stderr
    contact_id = json.loads(placed.stdout)["ContactId"]
    bridge = [
        e["detail"]
        for e in events_of(server, contact_id, "eventbridge")
        if e["detail-type"] == "Amazon Connect Contact Event"
    ]
    assert [d["eventType"] for d in bridge] == [
        "INITIATED",
        "CONNECTED_TO_SYSTEM",
        "QUEUED",
        "CONNECTED_TO_AGENT",
        "DISCONNECTED",
    ]
    agent = bridge[3]
    assert agent["agentInfo"]["agentArn"].startswith(f"{arn}/agent/")
    assert agent["agentInfo"]["connectedToAgentTimestamp"].endswith("Z")
    assert bridge[1]["connectedToSystemTimestamp"].endswith("Z")
    connect.delete_instance(InstanceId=iid)
