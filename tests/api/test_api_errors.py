"""The KVS error table and its wire format, checked against botocore's own parser."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from callstream.api.errors import ERRORS, KvsError, error_response_parts

REQUEST_ID = "8f5e4b32-df62-11e7-acb6-5954fc2c0a6b"

# The contract from the brief / kvs-wire §1.6: code -> HTTP status.
EXPECTED_STATUS = {
    "ResourceNotFoundException": 404,
    "ResourceInUseException": 400,
    "InvalidArgumentException": 400,
    "ClientLimitExceededException": 400,
    "AccountStreamLimitExceededException": 400,
    "DeviceStreamLimitExceededException": 400,
    "InvalidDeviceException": 400,
    "NotAuthorizedException": 401,
    "AccessDeniedException": 401,
    "VersionMismatchException": 400,
    "InvalidResourceFormatException": 400,
    "TagsPerResourceExceededLimitException": 400,
    "NoDataRetentionException": 400,
    "ConnectionLimitExceededException": 400,
    "InvalidEndpointException": 400,
    "UnsupportedStreamMediaTypeException": 400,
    "MissingCodecPrivateDataException": 400,
    "InvalidCodecPrivateDataException": 400,
    "InvalidMediaFrameException": 400,
    "SerializationException": 400,
    "UnknownOperationException": 404,
    "InternalFailure": 500,
    "MissingAuthenticationTokenException": 403,
    "InvalidSignatureException": 403,
    "UnrecognizedClientException": 403,
    "IncompleteSignatureException": 403,
}

KVS_SERVICES = (
    "kinesisvideo",
    "kinesis-video-media",
    "kinesis-video-archived-media",
    "kinesis-video-signaling",
)


def test_table_has_every_required_code_with_its_status() -> None:
    for code, status in EXPECTED_STATUS.items():
        assert code in ERRORS, code
        assert ERRORS[code].status == status, code
        assert ERRORS[code].code == code
        assert ERRORS[code].default_message


def test_table_agrees_with_every_error_modelled_by_botocore() -> None:
    session = botocore.session.get_session()
    seen = 0
    for service in KVS_SERVICES:
        model = session.get_service_model(service)
        for op in model.operation_names:
            for shape in model.operation_model(op).error_shapes:
                status = shape.metadata["error"]["httpStatusCode"]
                assert shape.name in ERRORS, f"{service}.{op} can raise {shape.name}"
                assert ERRORS[shape.name].status == status, shape.name
                seen += 1
    assert seen > 50


def test_real_not_found_message() -> None:
    err = KvsError("ResourceNotFoundException")
    assert err.status == 404
    assert err.message == "The requested stream is not found or not active."
    assert err.spec is ERRORS["ResourceNotFoundException"]


def test_custom_message_and_unknown_code() -> None:
    err = KvsError("InvalidArgumentException", "StreamName is too long")
    assert (err.code, err.message, err.status) == (
        "InvalidArgumentException",
        "StreamName is too long",
        400,
    )
    assert "StreamName is too long" in str(err)
    with pytest.raises(ValueError, match="unknown KVS error code"):
        KvsError("ResourceNotFound")  # a typo must not reach the wire
    with pytest.raises(KvsError) as info:
        raise KvsError("VersionMismatchException")
    assert info.value.status == 400


def test_error_response_parts_exact_wire_format() -> None:
    status, headers, body = error_response_parts(KvsError("ResourceNotFoundException"), "rid-1")
    assert status == 404
    assert headers == {
        "x-amzn-RequestId": "rid-1",
        "x-amzn-ErrorType": "ResourceNotFoundException",
        "Content-Type": "application/json",
    }
    assert body == (
        b'{"__type":"ResourceNotFoundException",'
        b'"Message":"The requested stream is not found or not active."}'
    )


def test_message_with_quotes_and_unicode_is_valid_json() -> None:
    msg = 'stream "a\\b" ist nicht gefunden \u2013 \U0001f4de'
    _, _, body = error_response_parts(KvsError("ResourceNotFoundException", msg), "r")
    assert json.loads(body) == {"__type": "ResourceNotFoundException", "Message": msg}


def _parse_with_botocore(err: KvsError, service: str, operation: str) -> dict[str, Any]:
    status, headers, body = error_response_parts(err, REQUEST_ID)
    model = botocore.session.get_session().get_service_model(service)
    op = model.operation_model(operation)
    parser = create_parser(model.metadata["protocol"])
    # botocore hands its parsers a case-insensitive HeadersDict, as received on the wire.
    response = {"status_code": status, "headers": HeadersDict(headers), "body": body}
    parsed: dict[str, Any] = parser.parse(response, op.output_shape)
    return parsed


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_botocore_rest_json_parser_reads_every_error(code: str) -> None:
    err = KvsError(code)
    parsed = _parse_with_botocore(err, "kinesisvideo", "DescribeStream")
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == ERRORS[code].default_message
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == ERRORS[code].status
    assert parsed["ResponseMetadata"]["RequestId"] == REQUEST_ID
    exc = ClientError(parsed, "DescribeStream")
    assert exc.response["Error"]["Code"] == code
    assert code in str(exc)


@pytest.mark.parametrize(
    ("service", "operation"),
    [("kinesis-video-media", "GetMedia"), ("kinesis-video-archived-media", "ListFragments")],
)
def test_data_plane_parsers_read_errors(service: str, operation: str) -> None:
    parsed = _parse_with_botocore(KvsError("NotAuthorizedException", "no"), service, operation)
    assert parsed["Error"] == {"Code": "NotAuthorizedException", "Message": "no"}
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == 401


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _client_answering(err: KvsError) -> Any:
    """A real boto3 kinesisvideo client whose HTTP layer returns our error response."""
    client = boto3.session.Session().client(
        "kinesisvideo",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}),
    )

    def respond(request: Any, **_: Any) -> AWSResponse:
        status, headers, body = error_response_parts(err, REQUEST_ID)
        return AWSResponse(request.url, status, headers, _Raw(body))

    client.meta.events.register("before-send.kinesis-video.*", respond)
    return client


def test_boto3_client_raises_modelled_exception_class() -> None:
    client = _client_answering(KvsError("ResourceNotFoundException"))
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.describe_stream(StreamName="nope")
    resp = info.value.response
    assert resp["Error"]["Code"] == "ResourceNotFoundException"
    assert resp["Error"]["Message"] == "The requested stream is not found or not active."
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert resp["ResponseMetadata"]["RequestId"] == REQUEST_ID


@pytest.mark.parametrize(
    "code", ["InvalidSignatureException", "MissingAuthenticationTokenException", "InternalFailure"]
)
def test_boto3_client_surfaces_unmodelled_errors_as_client_error(code: str) -> None:
    client = _client_answering(KvsError(code))
    with pytest.raises(ClientError) as info:
        client.list_streams()
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == ERRORS[code].status


@pytest.mark.parametrize("drop", ["header", "body __type"])
def test_code_survives_either_carrier_alone(drop: str) -> None:
    """Header for botocore/JS v3, ``__type`` for parsers that read only the body."""
    status, headers, body = error_response_parts(KvsError("VersionMismatchException"), "r")
    if drop == "header":
        del headers["x-amzn-ErrorType"]
    else:
        body = json.dumps({"Message": json.loads(body)["Message"]}).encode()
    model = botocore.session.get_session().get_service_model("kinesisvideo")
    parsed = create_parser("rest-json").parse(
        {"status_code": status, "headers": HeadersDict(headers), "body": body},
        model.operation_model("UpdateStream").output_shape,
    )
    assert parsed["Error"]["Code"] == "VersionMismatchException"
    assert parsed["Error"]["Message"] == ERRORS["VersionMismatchException"].default_message
