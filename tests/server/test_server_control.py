"""Control plane (kvs-wire §1) through boto3: every operation, every error it names."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from server_helpers import ACCOUNT, REGION, Kvs, signed_post, unique

NO_VALIDATION = Config(parameter_validation=False)
ARN_RE = re.compile(
    rf"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/(?P<name>[a-zA-Z0-9_.-]+)/(?P<ms>[0-9]+)"
)


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def raw_body(client: Any, operation: str) -> list[bytes]:
    """Collect the raw response bodies of ``operation`` (botocore ``after-call`` hook)."""
    bodies: list[bytes] = []
    event = f"after-call.{client.meta.service_model.service_id.hyphenize()}.{operation}"

    def keep(http_response: Any, **_: Any) -> None:
        bodies.append(http_response.content)

    client.meta.events.register(event, keep)
    return bodies


# --- CreateStream / DescribeStream ------------------------------------------------------------
def test_create_and_describe_stream(kvs: Kvs) -> None:
    name = unique("create")
    before = time.time_ns() // 1_000_000
    arn = kvs.kv.create_stream(
        StreamName=name,
        DeviceName="device-1",
        MediaType="audio/L16,audio/aac",
        DataRetentionInHours=48,
        Tags={"team": "voice", "env": "test"},
    )["StreamARN"]
    after = time.time_ns() // 1_000_000
    m = ARN_RE.fullmatch(arn)
    assert m is not None and m["name"] == name

    info = kvs.kv.describe_stream(StreamName=name)["StreamInfo"]
    assert info["StreamName"] == name
    assert info["StreamARN"] == arn
    assert info["DeviceName"] == "device-1"
    assert info["MediaType"] == "audio/L16,audio/aac"
    assert info["DataRetentionInHours"] == 48
    assert info["Status"] == "ACTIVE"
    assert info["KmsKeyId"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/kinesisvideo"
    assert re.fullmatch(r"[a-zA-Z0-9]{1,64}", info["Version"])
    created = info["CreationTime"]
    assert isinstance(created, dt.datetime)
    assert before <= round(created.timestamp() * 1000) <= after  # created during the call
    # The ARN ends in the creation time in epoch milliseconds.
    assert int(m["ms"]) == round(created.timestamp() * 1000)
    assert kvs.kv.describe_stream(StreamARN=arn)["StreamInfo"] == info
    assert kvs.kv.list_tags_for_stream(StreamARN=arn)["Tags"] == {"team": "voice", "env": "test"}


def test_describe_stream_wire_shape(kvs: Kvs) -> None:
    """Keys alphabetical, IngestionConfiguration null, CreationTime a JSON number."""
    name, arn = kvs.create(KmsKeyId="alias/my-key")
    bodies = raw_body(kvs.kv, "DescribeStream")
    kvs.kv.describe_stream(StreamName=name)
    info = json.loads(bodies[-1])["StreamInfo"]
    assert list(info) == sorted(info)
    assert info["IngestionConfiguration"] is None
    assert isinstance(info["CreationTime"], float)
    assert str(round(info["CreationTime"] * 1000)) == arn.rsplit("/", 1)[1]
    assert info["KmsKeyId"] == "alias/my-key"
    assert "DeviceName" not in info  # absent values are omitted, not null


def test_create_stream_defaults(kvs: Kvs) -> None:
    name = unique()
    kvs.kv.create_stream(StreamName=name)
    info = kvs.kv.describe_stream(StreamName=name)["StreamInfo"]
    assert info["DataRetentionInHours"] == 0
    assert "MediaType" not in info


def test_create_stream_errors(kvs: Kvs) -> None:
    name, _ = kvs.create()
    with pytest.raises(ClientError) as exc:
        kvs.kv.create_stream(StreamName=name)
    assert error_of(exc) == ("ResourceInUseException", 400)

    loose = kvs.client("kinesisvideo", config=NO_VALIDATION)
    bad_inputs: list[dict[str, Any]] = [
        {"StreamName": "has space"},
        {"StreamName": "x" * 257},
        {"StreamName": ""},
        {"StreamName": unique(), "DeviceName": "bad/device"},
        {"StreamName": unique(), "DeviceName": "d" * 129},
        {"StreamName": unique(), "MediaType": "audio"},
        {"StreamName": unique(), "MediaType": "audio/" + "x" * 128},
        {"StreamName": unique(), "KmsKeyId": ""},
        {"StreamName": unique(), "KmsKeyId": "k" * 2049},
        {"StreamName": unique(), "DataRetentionInHours": -1},
        {"StreamName": unique(), "DataRetentionInHours": 87601},
        {"StreamName": unique(), "Tags": {"bad#key": "v"}},
        {"StreamName": unique(), "Tags": {"k" * 129: "v"}},
        {"StreamName": unique(), "Tags": {"k": "v" * 257}},
    ]
    for params in bad_inputs:
        with pytest.raises(ClientError) as exc:
            loose.create_stream(**params)
        assert error_of(exc) == ("InvalidArgumentException", 400), params
        assert "validation error" in exc.value.response["Error"]["Message"] or params.get(
            "DataRetentionInHours"
        )
    with pytest.raises(ClientError) as exc:
        loose.create_stream(StreamName=unique(), DataRetentionInHours="24")
    assert error_of(exc) == ("SerializationException", 400)
    # botocore models StreamStorageConfiguration from 1.41.2 on: older ones cannot send it
    status, raw = signed_post(
        kvs.url,
        "/createStream",
        {"StreamName": unique(), "StreamStorageConfiguration": {"DefaultStorageTier": "COLD"}},
    )
    assert status == 400 and json.loads(raw)["__type"] == "InvalidArgumentException", raw
    assert "validation error" in json.loads(raw)["Message"]

    many = {f"k{i}": "v" for i in range(51)}
    with pytest.raises(ClientError) as exc:
        kvs.kv.create_stream(StreamName=unique(), Tags=many)
    assert error_of(exc) == ("TagsPerResourceExceededLimitException", 400)
    # Unicode letters, separators and the punctuation of the tag pattern are fine.
    kvs.create(Tags={"Ünïcode key_.:/=+-@": "välue with spaces", "empty": ""})


def test_account_stream_limit(make_kvs: Any) -> None:
    small = make_kvs(max_streams=2)
    small.create("one")
    small.create("two")
    with pytest.raises(ClientError) as exc:
        small.kv.create_stream(StreamName="three")
    assert error_of(exc) == ("AccountStreamLimitExceededException", 400)
    small.kv.delete_stream(
        StreamARN=small.kv.describe_stream(StreamName="one")["StreamInfo"]["StreamARN"]
    )
    small.create("three")


def test_describe_missing_stream(kvs: Kvs) -> None:
    with pytest.raises(ClientError) as exc:
        kvs.kv.describe_stream(StreamName=unique("missing"))
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    assert exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        kvs.kv.describe_stream()
    assert error_of(exc) == ("InvalidArgumentException", 400)
    loose = kvs.client("kinesisvideo", config=NO_VALIDATION)
    with pytest.raises(ClientError) as exc:
        loose.describe_stream(StreamARN="not-an-arn")
    assert error_of(exc) == ("InvalidArgumentException", 400)


# --- ListStreams ------------------------------------------------------------------------------
def test_list_streams_pagination_and_prefix(kvs: Kvs) -> None:
    prefix = unique("list")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in reversed(names):
        kvs.create(n)
    condition = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": prefix}

    pages = list(
        kvs.kv.get_paginator("list_streams").paginate(
            StreamNameCondition=condition, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["StreamInfoList"]) for p in pages] == [2, 2, 1]
    listed = [s["StreamName"] for p in pages for s in p["StreamInfoList"]]
    assert listed == names
    for page in pages[:-1]:
        token = page["NextToken"]
        assert re.fullmatch(r"[a-zA-Z0-9+/=]*", token) and len(token) <= 1024
        base64.b64decode(token, validate=True)
    assert "NextToken" not in pages[-1]

    one = kvs.kv.list_streams(StreamNameCondition=condition)
    assert [s["StreamName"] for s in one["StreamInfoList"]] == names
    assert "NextToken" not in one
    first = one["StreamInfoList"][0]
    assert first == kvs.kv.describe_stream(StreamName=names[0])["StreamInfo"]

    everything = kvs.kv.list_streams(MaxResults=10000)["StreamInfoList"]
    assert set(names) <= {s["StreamName"] for s in everything}


def test_list_streams_errors(kvs: Kvs) -> None:
    loose = kvs.client("kinesisvideo", config=NO_VALIDATION)
    for params in (
        {"MaxResults": 0},
        {"MaxResults": 10001},
        {"NextToken": "not a token!"},
        {"NextToken": base64.b64encode(b"garbage").decode()},
        {"StreamNameCondition": {"ComparisonOperator": "ENDS_WITH", "ComparisonValue": "x"}},
    ):
        with pytest.raises(ClientError) as exc:
            loose.list_streams(**params)
        assert error_of(exc) == ("InvalidArgumentException", 400), params


# --- UpdateStream / UpdateDataRetention -------------------------------------------------------
def version_of(kvs: Kvs, name: str) -> str:
    return str(kvs.kv.describe_stream(StreamName=name)["StreamInfo"]["Version"])


def test_update_stream(kvs: Kvs) -> None:
    name, arn = kvs.create(MediaType="audio/L16")
    v1 = version_of(kvs, name)
    kvs.kv.update_stream(StreamName=name, CurrentVersion=v1, MediaType="audio/aac", DeviceName="d2")
    info = kvs.kv.describe_stream(StreamARN=arn)["StreamInfo"]
    assert info["MediaType"] == "audio/aac" and info["DeviceName"] == "d2"
    assert info["Version"] != v1
    with pytest.raises(ClientError) as exc:
        kvs.kv.update_stream(StreamName=name, CurrentVersion=v1, MediaType="audio/L16")
    assert error_of(exc) == ("VersionMismatchException", 400)
    with pytest.raises(ClientError) as exc:
        kvs.kv.update_stream(StreamName=unique(), CurrentVersion=v1)
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        kvs.kv.update_stream(StreamARN=arn, CurrentVersion=info["Version"], MediaType="nope")
    assert error_of(exc) == ("InvalidArgumentException", 400)


def test_update_data_retention(kvs: Kvs) -> None:
    name, arn = kvs.create(DataRetentionInHours=0)

    def change(op: str, hours: int, version: str | None = None) -> None:
        kvs.kv.update_data_retention(
            StreamName=name,
            CurrentVersion=version or version_of(kvs, name),
            Operation=op,
            DataRetentionChangeInHours=hours,
        )

    def retention() -> int:
        return int(kvs.kv.describe_stream(StreamARN=arn)["StreamInfo"]["DataRetentionInHours"])

    change("INCREASE_DATA_RETENTION", 24)
    assert retention() == 24
    change("DECREASE_DATA_RETENTION", 10)
    assert retention() == 14
    change("DECREASE_DATA_RETENTION", 14)
    assert retention() == 0
    for op, hours in (("DECREASE_DATA_RETENTION", 1), ("INCREASE_DATA_RETENTION", 87601)):
        with pytest.raises(ClientError) as exc:
            change(op, hours)
        assert error_of(exc) == ("InvalidArgumentException", 400)
    change("INCREASE_DATA_RETENTION", 87600)
    assert retention() == 87600
    with pytest.raises(ClientError) as exc:
        change("INCREASE_DATA_RETENTION", 1, version="stale0version")
    assert error_of(exc) == ("VersionMismatchException", 400)
    with pytest.raises(ClientError) as exc:
        change("SET_DATA_RETENTION", 1)
    assert error_of(exc) == ("InvalidArgumentException", 400)
    loose = kvs.client("kinesisvideo", config=NO_VALIDATION)
    with pytest.raises(ClientError) as exc:
        loose.update_data_retention(
            StreamName=name,
            CurrentVersion=version_of(kvs, name),
            Operation="DECREASE_DATA_RETENTION",
            DataRetentionChangeInHours=0,
        )
    assert error_of(exc) == ("InvalidArgumentException", 400)
    assert retention() == 87600


# --- DeleteStream -----------------------------------------------------------------------------
def test_delete_stream(kvs: Kvs) -> None:
    name, arn = kvs.create()
    with pytest.raises(ClientError) as exc:
        kvs.kv.delete_stream(StreamARN=arn, CurrentVersion="stale")
    assert error_of(exc) == ("VersionMismatchException", 400)
    kvs.kv.describe_stream(StreamName=name)  # still there
    kvs.kv.delete_stream(StreamARN=arn, CurrentVersion=version_of(kvs, name))
    with pytest.raises(ClientError) as exc:
        kvs.kv.describe_stream(StreamName=name)
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        kvs.kv.delete_stream(StreamARN=arn)
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    # without CurrentVersion only the stream's existence matters; the name is free again
    _, arn2 = kvs.create(name)
    assert arn2 != arn
    kvs.kv.delete_stream(StreamARN=arn2)
    loose = kvs.client("kinesisvideo", config=NO_VALIDATION)
    with pytest.raises(ClientError) as exc:
        loose.delete_stream(StreamARN="arn:aws:s3:::bucket")
    assert error_of(exc) == ("InvalidArgumentException", 400)


# --- GetDataEndpoint --------------------------------------------------------------------------
API_NAMES = [
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
]


def test_get_data_endpoint(kvs: Kvs) -> None:
    name, arn = kvs.create()
    for api in API_NAMES:
        got = kvs.kv.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"]
        assert got == kvs.url
    assert kvs.kv.get_data_endpoint(StreamARN=arn, APIName="GET_MEDIA")["DataEndpoint"] == kvs.url
    with pytest.raises(ClientError) as exc:
        kvs.kv.get_data_endpoint(StreamName=name, APIName="GET_EVERYTHING")
    assert error_of(exc) == ("InvalidArgumentException", 400)
    with pytest.raises(ClientError) as exc:
        kvs.kv.get_data_endpoint(StreamName=unique(), APIName="PUT_MEDIA")
    assert error_of(exc) == ("ResourceNotFoundException", 404)


# --- stream tags ------------------------------------------------------------------------------
def test_stream_tags(kvs: Kvs) -> None:
    name, arn = kvs.create(Tags={"a": "1"})
    kvs.kv.tag_stream(StreamName=name, Tags={"b": "2", "a": "replaced"})
    assert kvs.kv.list_tags_for_stream(StreamName=name)["Tags"] == {"a": "replaced", "b": "2"}
    kvs.kv.untag_stream(StreamARN=arn, TagKeyList=["a", "not-there"])
    assert kvs.kv.list_tags_for_stream(StreamARN=arn)["Tags"] == {"b": "2"}
    assert "NextToken" not in kvs.kv.list_tags_for_stream(StreamARN=arn)

    kvs.kv.tag_stream(StreamARN=arn, Tags={f"k{i}": "v" for i in range(49)})
    with pytest.raises(ClientError) as exc:
        kvs.kv.tag_stream(StreamARN=arn, Tags={"one-too-many": "v"})
    assert error_of(exc) == ("TagsPerResourceExceededLimitException", 400)
    assert len(kvs.kv.list_tags_for_stream(StreamARN=arn)["Tags"]) == 50
    kvs.kv.tag_stream(StreamARN=arn, Tags={"b": "still fits: replaces a value"})

    with pytest.raises(ClientError) as exc:
        kvs.kv.tag_stream(StreamARN=arn, Tags={"bad*key": "v"})
    assert error_of(exc) == ("InvalidArgumentException", 400)
    with pytest.raises(ClientError) as exc:
        kvs.kv.tag_stream(StreamName=unique(), Tags={"a": "b"})
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    loose = kvs.client("kinesisvideo", config=NO_VALIDATION)
    for call in (
        lambda: loose.tag_stream(StreamARN="stream/x", Tags={"a": "b"}),
        lambda: loose.untag_stream(StreamARN="stream/x", TagKeyList=["a"]),
        lambda: loose.list_tags_for_stream(StreamARN="arn:aws:kinesisvideo:x"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == ("InvalidResourceFormatException", 400)
    with pytest.raises(ClientError) as exc:
        loose.untag_stream(StreamARN=arn, TagKeyList=[])
    assert error_of(exc) == ("InvalidArgumentException", 400)


def test_resource_tags(kvs: Kvs) -> None:
    _, arn = kvs.create()
    kvs.kv.tag_resource(
        ResourceARN=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]
    )
    assert kvs.kv.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"a": "1", "b": ""}
    kvs.kv.untag_resource(ResourceARN=arn, TagKeyList=["a"])
    assert kvs.kv.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"b": ""}
    # the stream and resource views are the same tags
    assert kvs.kv.list_tags_for_stream(StreamARN=arn)["Tags"] == {"b": ""}

    with pytest.raises(ClientError) as exc:
        kvs.kv.tag_resource(
            ResourceARN=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]
        )
    assert error_of(exc) == ("TagsPerResourceExceededLimitException", 400)
    with pytest.raises(ClientError) as exc:
        kvs.kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "bad!", "Value": "v"}])
    assert error_of(exc) == ("InvalidArgumentException", 400)
    missing = f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/{unique()}/1700000000000"
    for call in (
        lambda: kvs.kv.tag_resource(ResourceARN=missing, Tags=[{"Key": "a", "Value": "b"}]),
        lambda: kvs.kv.untag_resource(ResourceARN=missing, TagKeyList=["a"]),
        lambda: kvs.kv.list_tags_for_resource(ResourceARN=missing),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == ("ResourceNotFoundException", 404)
    loose = kvs.client("kinesisvideo", config=NO_VALIDATION)
    with pytest.raises(ClientError) as exc:
        loose.list_tags_for_resource(ResourceARN="nope")
    assert error_of(exc) == ("InvalidArgumentException", 400)
    with pytest.raises(ClientError) as exc:
        loose.tag_resource(ResourceARN=arn, Tags=[{"Key": "a"}])
    assert error_of(exc) == ("InvalidArgumentException", 400)


def test_unknown_operation_is_clean_404(kvs: Kvs) -> None:
    """A modelled operation callstream does not serve answers cleanly (never a 500)."""
    with pytest.raises(ClientError) as exc:
        kvs.kv.list_signaling_channels()
    code, status = error_of(exc)
    assert status == 404 and code == "UnknownOperationException"
