"""SigV4 authentication as real KVS enforces it, and that a refused request changes nothing."""

from __future__ import annotations

from typing import Any

import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from server_helpers import Kvs, connect_audio, put_media, unique

UNSIGNED = Config(signature_version=botocore.UNSIGNED)


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def assert_absent(kvs: Kvs, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        kvs.kv.describe_stream(StreamName=name)
    assert error_of(exc) == ("ResourceNotFoundException", 404)


@pytest.mark.parametrize(
    ("client_kwargs", "code"),
    [
        ({"config": UNSIGNED}, "MissingAuthenticationTokenException"),
        ({"secret_key": "not-the-secret"}, "InvalidSignatureException"),
        ({"access_key": "AKIDUNKNOWN"}, "UnrecognizedClientException"),
    ],
    ids=["unsigned", "wrong-secret", "unknown-key"],
)
def test_bad_credentials_are_refused_and_change_nothing(
    kvs: Kvs, client_kwargs: dict[str, Any], code: str
) -> None:
    name, arn = kvs.create(Tags={"keep": "me"})
    version = kvs.kv.describe_stream(StreamName=name)["StreamInfo"]["Version"]
    kv = kvs.client("kinesisvideo", **client_kwargs)
    new = unique("never")
    calls = [
        lambda: kv.create_stream(StreamName=new),
        lambda: kv.delete_stream(StreamARN=arn),
        lambda: kv.tag_stream(StreamARN=arn, Tags={"evil": "x"}),
        lambda: kv.update_stream(StreamARN=arn, CurrentVersion=version, MediaType="video/h264"),
        lambda: kv.describe_stream(StreamName=name),
        lambda: kv.list_streams(),
    ]
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == (code, 403)
    archived = kvs.client("kinesis-video-archived-media", **client_kwargs)
    with pytest.raises(ClientError) as exc:
        archived.list_fragments(StreamName=name)
    assert error_of(exc) == (code, 403)
    media = kvs.client("kinesis-video-media", **client_kwargs)
    with pytest.raises(ClientError) as exc:
        media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
    assert error_of(exc) == (code, 403)

    assert_absent(kvs, new)
    info = kvs.kv.describe_stream(StreamName=name)["StreamInfo"]
    assert info["Version"] == version and "MediaType" not in info
    assert kvs.kv.list_tags_for_stream(StreamARN=arn)["Tags"] == {"keep": "me"}


def test_body_changed_after_signing_is_refused(kvs: Kvs) -> None:
    kv = kvs.client("kinesisvideo")
    signed_name = unique("signed")
    swapped_name = signed_name.replace("signed", "swappd")
    assert len(swapped_name) == len(signed_name)

    def tamper(request: Any, **_: Any) -> None:
        request.body = request.body.replace(signed_name.encode(), swapped_name.encode())

    kv.meta.events.register("before-send.kinesis-video.CreateStream", tamper)
    with pytest.raises(ClientError) as exc:
        kv.create_stream(StreamName=signed_name)
    assert error_of(exc) == ("InvalidSignatureException", 403)
    assert_absent(kvs, signed_name)
    assert_absent(kvs, swapped_name)


def test_putmedia_with_bad_signature_stores_nothing(kvs: Kvs) -> None:
    name, _ = kvs.create()
    audio = connect_audio(2)
    for kwargs, code in (
        ({"sign": False}, "MissingAuthenticationTokenException"),
        ({"secret_key": "wrong"}, "InvalidSignatureException"),
        ({"access_key": "AKIDUNKNOWN"}, "UnrecognizedClientException"),
    ):
        result = put_media(kvs.url, audio.chunks, stream_name=name, **kwargs)
        assert result.status == 403, kwargs
        assert result.error and result.error["Code"] == code
    assert kvs.archived.list_fragments(StreamName=name)["Fragments"] == []
    # the same upload, signed, goes through
    kvs.put(name, audio.chunks)
    assert len(kvs.archived.list_fragments(StreamName=name)["Fragments"]) == 2


def test_error_responses_carry_request_ids(kvs: Kvs) -> None:
    kv = kvs.client("kinesisvideo", config=UNSIGNED)
    with pytest.raises(ClientError) as exc:
        kv.list_streams()
    meta = exc.value.response["ResponseMetadata"]
    assert meta["RequestId"]
    assert meta["HTTPHeaders"]["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    ok = kvs.kv.list_streams(MaxResults=1)["ResponseMetadata"]["RequestId"]
    assert ok and ok != meta["RequestId"]


def test_putmedia_with_declared_body_hash(kvs: Kvs) -> None:
    name, _ = kvs.create()
    body = b"".join(connect_audio(2).chunks)
    kvs.put(name, [body], signed_body=body)  # a correctly declared hash is accepted
    assert len(kvs.archived.list_fragments(StreamName=name)["Fragments"]) == 2


def test_putmedia_body_changed_after_signing_is_refused(kvs: Kvs) -> None:
    name, _ = kvs.create()
    signed = b"".join(connect_audio(2).chunks)
    sent = b"".join(connect_audio(3).chunks)
    result = put_media(kvs.url, [sent], stream_name=name, signed_body=signed)
    assert kvs.archived.list_fragments(StreamName=name)["Fragments"] == []
    assert result.status == 403
    assert result.error and result.error["Code"] == "InvalidSignatureException"
