"""The chime-sdk-voice API (voice connectors) of ``callstream serve``, driven by boto3's
``chime-sdk-voice`` client and the AWS CLI against a real server, plus the exact wire
format (statuses, timestamps, error shapes) and SigV4 with the service name ``chime``."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from api_helpers import aws_cli_env
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from callstream.api import chime
from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.voice.connectors import REGISTRY_FILE, VoiceConnectorRegistry

ACCESS_KEY = "AKIDCHIME"
SECRET_KEY = "chime-secret"
REGION = "us-east-1"
ACCOUNT = "123456789012"
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY}, region=REGION, account_id=ACCOUNT)
    srv = ServerThread(tmp_path_factory.mktemp("chime-data"), config=config).start()
    try:
        yield srv
    finally:
        srv.stop()


def client(
    server: ServerThread,
    *,
    service: str = "chime-sdk-voice",
    secret: str = SECRET_KEY,
    key: str = ACCESS_KEY,
    validate: bool = True,
) -> Any:
    config = Config(
        retries={"max_attempts": 1, "mode": "standard"},
        read_timeout=30,
        parameter_validation=validate,
    )
    return boto3.session.Session().client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=config,
    )


@pytest.fixture(scope="module")
def voice(server: ServerThread) -> Any:
    return client(server)


@pytest.fixture(scope="module")
def unchecked(server: ServerThread) -> Any:
    """A client that sends what it is given (no client-side parameter validation)."""
    return client(server, validate=False)


def signed(
    server: ServerThread,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    service: str = "chime",
    secret: str = SECRET_KEY,
) -> tuple[int, dict[str, str], bytes]:
    """One request as written (SigV4 for ``service``): status, lower-case headers, body."""
    url = server.url + path
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, secret), service, REGION).add_auth(req)
    request = urllib.request.Request(
        url, data=body, headers=dict(req.headers.items()), method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def code_of(err: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = err.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


# --- the full cycle through boto3 -----------------------------------------------------------------
def test_voice_connector_lifecycle(voice: Any) -> None:
    created = voice.create_voice_connector(
        Name="SIPREC recorder", RequireEncryption=True, AwsRegion="us-west-2"
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    vc = created["VoiceConnector"]
    vc_id = vc["VoiceConnectorId"]
    assert re.fullmatch(r"[a-z0-9]{22}", vc_id)
    assert vc["Name"] == "SIPREC recorder" and vc["RequireEncryption"] is True
    assert vc["AwsRegion"] == "us-west-2"
    assert vc["OutboundHostName"] == f"{vc_id}.voiceconnector.chime.aws"
    assert vc["VoiceConnectorArn"] == f"arn:aws:chime:us-west-2:{ACCOUNT}:vc/{vc_id}"
    assert vc["CreatedTimestamp"] == vc["UpdatedTimestamp"]

    got = voice.get_voice_connector(VoiceConnectorId=vc_id)["VoiceConnector"]
    assert got == vc

    updated = voice.update_voice_connector(
        VoiceConnectorId=vc_id, Name="renamed", RequireEncryption=False
    )["VoiceConnector"]
    assert (updated["Name"], updated["RequireEncryption"]) == ("renamed", False)
    assert updated["CreatedTimestamp"] == vc["CreatedTimestamp"]
    assert updated["UpdatedTimestamp"] >= vc["UpdatedTimestamp"]

    # streaming: none yet, then retention + targets, then disabled, then deleted
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.get_voice_connector_streaming_configuration(VoiceConnectorId=vc_id)
    config = {
        "DataRetentionInHours": 24,
        "Disabled": False,
        "StreamingNotificationTargets": [
            {"NotificationTarget": "EventBridge"},
            {"NotificationTarget": "SQS"},
        ],
        "MediaInsightsConfiguration": {
            "Disabled": True,
            "ConfigurationArn": "arn:aws:chime:us-east-1:123456789012:media-insights-pipeline-configuration/x",
        },
    }
    put = voice.put_voice_connector_streaming_configuration(
        VoiceConnectorId=vc_id, StreamingConfiguration=config
    )
    assert put["StreamingConfiguration"] == config
    got_config = voice.get_voice_connector_streaming_configuration(VoiceConnectorId=vc_id)
    assert got_config["StreamingConfiguration"] == config
    voice.put_voice_connector_streaming_configuration(
        VoiceConnectorId=vc_id,
        StreamingConfiguration={"DataRetentionInHours": 0, "Disabled": True},
    )
    assert voice.get_voice_connector_streaming_configuration(VoiceConnectorId=vc_id)[
        "StreamingConfiguration"
    ] == {"DataRetentionInHours": 0, "Disabled": True}
    deleted = voice.delete_voice_connector_streaming_configuration(VoiceConnectorId=vc_id)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.get_voice_connector_streaming_configuration(VoiceConnectorId=vc_id)
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.delete_voice_connector_streaming_configuration(VoiceConnectorId=vc_id)

    # a connector with streaming configured can be deleted (its configuration goes with it)
    voice.put_voice_connector_streaming_configuration(
        VoiceConnectorId=vc_id,
        StreamingConfiguration={"DataRetentionInHours": 1, "Disabled": False},
    )
    gone = voice.delete_voice_connector(VoiceConnectorId=vc_id)
    assert gone["ResponseMetadata"]["HTTPStatusCode"] == 204
    for call in (
        voice.get_voice_connector,
        voice.delete_voice_connector,
        voice.get_voice_connector_streaming_configuration,
    ):
        with pytest.raises(voice.exceptions.NotFoundException) as err:
            call(VoiceConnectorId=vc_id)
        assert code_of(err) == (404, "NotFoundException")
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.update_voice_connector(VoiceConnectorId=vc_id, Name="x", RequireEncryption=True)
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.put_voice_connector_streaming_configuration(
            VoiceConnectorId=vc_id,
            StreamingConfiguration={"DataRetentionInHours": 1, "Disabled": False},
        )


def test_list_pagination(tmp_path: Path) -> None:
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY})
    with ServerThread(tmp_path, config=config) as srv:
        voice = client(srv)
        assert voice.list_voice_connectors()["VoiceConnectors"] == []
        ids = sorted(
            voice.create_voice_connector(Name=f"vc {i}", RequireEncryption=False)["VoiceConnector"][
                "VoiceConnectorId"
            ]
            for i in range(5)
        )
        seen: list[str] = []
        kwargs: dict[str, Any] = {"MaxResults": 2}
        pages = 0
        while True:
            page = voice.list_voice_connectors(**kwargs)
            pages += 1
            seen += [vc["VoiceConnectorId"] for vc in page["VoiceConnectors"]]
            if "NextToken" not in page:
                break
            kwargs["NextToken"] = page["NextToken"]
        assert (seen, pages) == (ids, 3)
        everything = voice.list_voice_connectors()
        assert [vc["VoiceConnectorId"] for vc in everything["VoiceConnectors"]] == ids
        assert "NextToken" not in everything


def test_tags(voice: Any) -> None:
    vc = voice.create_voice_connector(
        Name="tagged", RequireEncryption=False, Tags=[{"Key": "team", "Value": "ops"}]
    )["VoiceConnector"]
    arn = vc["VoiceConnectorArn"]
    assert voice.list_tags_for_resource(ResourceARN=arn)["Tags"] == [
        {"Key": "team", "Value": "ops"}
    ]
    tagged = voice.tag_resource(ResourceARN=arn, Tags=[{"Key": "env", "Value": "prod"}])
    assert tagged["ResponseMetadata"]["HTTPStatusCode"] == 204
    voice.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert voice.list_tags_for_resource(ResourceARN=arn)["Tags"] == [
        {"Key": "env", "Value": "prod"}
    ]
    with pytest.raises(voice.exceptions.NotFoundException):
        voice.list_tags_for_resource(ResourceARN=f"arn:aws:chime:us-east-1:{ACCOUNT}:vc/nope")
    voice.delete_voice_connector(VoiceConnectorId=vc["VoiceConnectorId"])


# --- validation: the model's constraints, checked by the server ----------------------------------
STREAMING_OK = {"DataRetentionInHours": 1, "Disabled": False}


@pytest.mark.parametrize(
    "config",
    [
        {"DataRetentionInHours": -1, "Disabled": False},
        {"Disabled": False},
        {"DataRetentionInHours": 1},
        {**STREAMING_OK, "StreamingNotificationTargets": []},
        {
            **STREAMING_OK,
            "StreamingNotificationTargets": [{"NotificationTarget": "SNS"}] * 4,
        },
        {**STREAMING_OK, "StreamingNotificationTargets": [{"NotificationTarget": "Email"}]},
        {**STREAMING_OK, "MediaInsightsConfiguration": {"ConfigurationArn": "not an arn"}},
        {"DataRetentionInHours": "24", "Disabled": False},
    ],
    ids=[
        "negative-retention",
        "no-retention",
        "no-disabled",
        "no-targets",
        "four-targets",
        "unknown-target",
        "bad-arn",
        "retention-string",
    ],
)
def test_bad_streaming_configuration(voice: Any, unchecked: Any, config: dict[str, Any]) -> None:
    vc_id = voice.create_voice_connector(Name="v", RequireEncryption=False)["VoiceConnector"][
        "VoiceConnectorId"
    ]
    try:
        with pytest.raises(unchecked.exceptions.BadRequestException) as err:
            unchecked.put_voice_connector_streaming_configuration(
                VoiceConnectorId=vc_id, StreamingConfiguration=config
            )
        assert code_of(err) == (400, "BadRequestException")
        assert err.value.response["Error"]["Message"]
        with pytest.raises(voice.exceptions.NotFoundException):  # nothing was stored
            voice.get_voice_connector_streaming_configuration(VoiceConnectorId=vc_id)
    finally:
        voice.delete_voice_connector(VoiceConnectorId=vc_id)


@pytest.mark.parametrize(
    "params",
    [
        {"Name": "", "RequireEncryption": True},
        {"Name": "x" * 257, "RequireEncryption": True},
        {"Name": "no/slashes", "RequireEncryption": True},
        {"Name": "ok"},
        {"Name": "ok", "RequireEncryption": True, "AwsRegion": "mars-north-1"},
        {"Name": "ok", "RequireEncryption": "yes"},
        {"Name": "ok", "RequireEncryption": True, "Tags": []},
    ],
)
def test_bad_create(voice: Any, unchecked: Any, params: dict[str, Any]) -> None:
    before = voice.list_voice_connectors()["VoiceConnectors"]
    with pytest.raises(unchecked.exceptions.BadRequestException) as err:
        unchecked.create_voice_connector(**params)
    assert code_of(err) == (400, "BadRequestException")
    assert voice.list_voice_connectors()["VoiceConnectors"] == before


@pytest.mark.parametrize("params", [{"MaxResults": 0}, {"MaxResults": 101}, {"NextToken": "%%"}])
def test_bad_list(unchecked: Any, params: dict[str, Any]) -> None:
    with pytest.raises(unchecked.exceptions.BadRequestException):
        unchecked.list_voice_connectors(**params)


def test_bad_update_changes_nothing(voice: Any, unchecked: Any) -> None:
    vc = voice.create_voice_connector(Name="keep", RequireEncryption=True)["VoiceConnector"]
    with pytest.raises(unchecked.exceptions.BadRequestException):
        unchecked.update_voice_connector(
            VoiceConnectorId=vc["VoiceConnectorId"], Name="", RequireEncryption=False
        )
    assert (
        voice.get_voice_connector(VoiceConnectorId=vc["VoiceConnectorId"])["VoiceConnector"] == vc
    )
    voice.delete_voice_connector(VoiceConnectorId=vc["VoiceConnectorId"])


# --- the wire format ------------------------------------------------------------------------------
def test_wire_format(server: ServerThread) -> None:
    status, headers, body = signed(
        server, "POST", "/voice-connectors", b'{"Name": "wire", "RequireEncryption": false}'
    )
    assert status == 201 and headers["content-type"].startswith("application/json")
    assert headers["x-amzn-requestid"]
    vc = json.loads(body)["VoiceConnector"]
    assert ISO_MS.fullmatch(vc["CreatedTimestamp"]) and ISO_MS.fullmatch(vc["UpdatedTimestamp"])
    vc_id = vc["VoiceConnectorId"]

    status, headers, body = signed(
        server, "GET", f"/voice-connectors/{vc_id}/streaming-configuration"
    )
    assert status == 404
    assert headers["x-amzn-errortype"] == "NotFoundException"
    error = json.loads(body)
    assert error["Code"] == "NotFound" and vc_id in error["Message"]

    status, headers, body = signed(server, "PUT", f"/voice-connectors/{vc_id}", b"{not json")
    assert (status, headers["x-amzn-errortype"], json.loads(body)["Code"]) == (
        400,
        "BadRequestException",
        "BadRequest",
    )

    status, _, body = signed(server, "DELETE", f"/voice-connectors/{vc_id}")
    assert (status, body) == (204, b"")


def test_a_body_that_is_not_a_json_object_gets_each_apis_error_shape(
    server: ServerThread,
) -> None:
    why = {
        b"{not json": "The request body is not valid JSON.",
        b"[1, 2]": "The request body must be a JSON object.",
        b'"text"': "The request body must be a JSON object.",
    }
    for body, message in why.items():
        status, headers, answer = signed(server, "POST", "/voice-connectors", body)
        assert (status, headers["x-amzn-errortype"], json.loads(answer)) == (
            400,
            "BadRequestException",
            {"Code": "BadRequest", "Message": message},
        )
        status, headers, answer = signed(server, "PUT", "/instance", body, service="connect")
        assert (status, headers["x-amzn-errortype"], json.loads(answer)) == (
            400,
            "InvalidParameterException",
            {"Message": message},
        )
    # an empty body is no body: the model's required members are what is missing
    status, headers, answer = signed(server, "PUT", "/instance", b"", service="connect")
    assert (status, headers["x-amzn-errortype"]) == (400, "InvalidParameterException")
    assert "IdentityManagementType" in json.loads(answer)["Message"]
    status, headers, answer = signed(server, "POST", "/voice-connectors", b" ")
    assert (status, headers["x-amzn-errortype"]) == (400, "BadRequestException")
    assert "Name" in json.loads(answer)["Message"]


def test_unknown_routes_keep_the_kvs_error_shape(server: ServerThread) -> None:
    for method, path in (
        ("PATCH", "/voice-connectors"),
        ("POST", "/voice-connectors/abc"),
        ("GET", "/voice-connectors/abc/termination"),
        ("POST", "/noSuchOperation"),
    ):
        service = "chime" if path.startswith("/voice") else "kinesisvideo"
        status, headers, body = signed(server, method, path, b"{}", service=service)
        assert status == 404, (method, path)
        assert headers["x-amzn-errortype"] == "UnknownOperationException"
        assert json.loads(body)["__type"] == "UnknownOperationException"


def test_kvs_api_unchanged_beside_it(server: ServerThread) -> None:
    kv = client(server, service="kinesisvideo")
    arn = kv.create_stream(StreamName="beside-chime", DataRetentionInHours=1)["StreamARN"]
    assert kv.describe_stream(StreamARN=arn)["StreamInfo"]["StreamName"] == "beside-chime"
    kv.delete_stream(StreamARN=arn)


# --- SigV4 (service name "chime") -----------------------------------------------------------------
def test_wrong_signature_is_refused(server: ServerThread, voice: Any) -> None:
    before = voice.list_voice_connectors()["VoiceConnectors"]
    bad = client(server, secret="wrong")
    with pytest.raises(ClientError) as err:
        bad.create_voice_connector(Name="nope", RequireEncryption=False)
    assert code_of(err) == (403, "InvalidSignatureException")
    with pytest.raises(ClientError) as err:
        client(server, key="AKIDUNKNOWN").list_voice_connectors()
    assert code_of(err) == (403, "UnrecognizedClientException")
    assert voice.list_voice_connectors()["VoiceConnectors"] == before


def test_service_scope_must_match_the_api(server: ServerThread) -> None:
    # a chime path signed for kinesisvideo, and a KVS path signed for chime: both refused
    status, headers, body = signed(server, "GET", "/voice-connectors", service="kinesisvideo")
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert "chime" in json.loads(body)["Message"]
    status, headers, _ = signed(server, "POST", "/listStreams", b"{}", service="chime")
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")


def test_unauthenticated_refused_before_the_body(server: ServerThread) -> None:
    # 60 MiB announced, nothing sent: the answer comes from the headers alone
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(
            b"POST /voice-connectors HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 62914560\r\n\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    top = data.split(b"\r\n\r\n")[0].decode("latin-1").lower()
    assert top.startswith("http/1.1 403")
    assert "x-amzn-errortype: missingauthenticationtokenexception" in top


# --- the registry is the server's, shared with other processes ----------------------------------
def test_registry_in_the_data_dir_is_shared(tmp_path: Path) -> None:
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY})
    with ServerThread(tmp_path, config=config) as srv:
        voice = client(srv)
        cli = VoiceConnectorRegistry(tmp_path / REGISTRY_FILE, region=REGION, account_id=ACCOUNT)
        try:
            made = cli.create("from the cli", require_encryption=False)
            listed = voice.list_voice_connectors()["VoiceConnectors"]
            assert [vc["VoiceConnectorId"] for vc in listed] == [made.voice_connector_id]
            over_http = voice.create_voice_connector(Name="over http", RequireEncryption=True)
            vc_id = over_http["VoiceConnector"]["VoiceConnectorId"]
            assert cli.get(vc_id).name == "over http"
            assert srv.state.voice_connectors.resolve(f"{vc_id}.voiceconnector.x") is not None
        finally:
            cli.close()


# --- the operation table follows the installed botocore model -------------------------------------
def _model() -> dict[str, Any]:
    root = Path(botocore.__file__).parent / "data" / "chime-sdk-voice"
    (version,) = sorted(p.name for p in root.iterdir())[-1:]
    path = root / version / "service-2.json"
    if path.exists():
        model: dict[str, Any] = json.loads(path.read_text())
    else:
        model = json.loads(gzip.decompress((path.parent / "service-2.json.gz").read_bytes()))
    return model


def test_operations_match_the_model() -> None:
    model = _model()
    assert model["metadata"]["signingName"] == chime.SIGNING_NAME
    assert model["metadata"]["protocol"] == "rest-json"
    for op in chime.OPERATIONS:
        http = model["operations"][op.name]["http"]
        assert http["method"] == op.method, op.name
        assert http["requestUri"].split("?")[0] == op.path, op.name
        assert http.get("responseCode", 200) == op.status, op.name
    codes = set(model["shapes"]["ErrorCode"]["enum"])
    for name, (status, code) in chime.CHIME_ERRORS.items():
        assert model["shapes"][name]["error"]["httpStatusCode"] == status, name
        assert code in codes, name
    # UntagResource shares TagResource's route
    untag = model["operations"]["UntagResource"]["http"]
    assert (untag["method"], untag["requestUri"].split("?")[0]) == ("POST", "/tags")


# --- the AWS CLI ---------------------------------------------------------------------------------
def test_aws_cli(server: ServerThread, voice: Any) -> None:
    aws = shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI (`aws`) is not installed")
    vc_id = voice.create_voice_connector(Name="for the cli", RequireEncryption=False)[
        "VoiceConnector"
    ]["VoiceConnectorId"]
    env = aws_cli_env(ACCESS_KEY, SECRET_KEY, REGION)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [aws, "chime-sdk-voice", *args, "--endpoint-url", server.url, "--output", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    listed = run("list-voice-connectors")
    assert listed.returncode == 0, listed.stderr
    ids = [vc["VoiceConnectorId"] for vc in json.loads(listed.stdout)["VoiceConnectors"]]
    assert vc_id in ids
    missing = run("get-voice-connector", "--voice-connector-id", "nosuchconnector")
    assert missing.returncode != 0 and "NotFoundException" in missing.stderr
    voice.delete_voice_connector(VoiceConnectorId=vc_id)
