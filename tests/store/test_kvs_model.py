"""callstream.kvs.model: the KVS rules for stream fields, tags, retention and stream ARNs
that every backend (and the API layer) shares."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.kvs import model
from callstream.kvs.model import (
    MAX_RETENTION_HOURS,
    MAX_TAGS,
    InvalidValue,
    StreamArn,
    TooManyTags,
    parse_stream_arn,
    stream_arn,
)


def test_limits_match_kvs() -> None:
    assert (MAX_TAGS, MAX_RETENTION_HOURS) == (50, 87600)


@pytest.mark.parametrize("name", ["a", "A-z_0.9", "x" * 256])
def test_valid_stream_names(name: str) -> None:
    assert model.validate_stream_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 257, "has space", "slash/", "ü", None, 5])
def test_invalid_stream_names(name: object) -> None:
    with pytest.raises(InvalidValue, match="invalid StreamName") as exc:
        model.validate_stream_name(name)
    assert exc.value.code == "InvalidArgumentException"
    assert isinstance(exc.value, ValueError)


def test_device_name_media_type_and_kms_key() -> None:
    assert model.validate_device_name(None) is None
    assert model.validate_device_name("d" * 128) == "d" * 128
    for bad in ("d" * 129, "", "a b", 3):
        with pytest.raises(InvalidValue):
            model.validate_device_name(bad)
    for ok in (None, "audio/L16", "video/h264,audio/aac", "audio/x-mulaw+1.0"):
        assert model.validate_media_type(ok) == ok
    for bad in ("audio", "audio/", "/L16", "audio/L16,", "audio/ü", "a/" + "b" * 127):
        with pytest.raises(InvalidValue):
            model.validate_media_type(bad)
    assert model.validate_kms_key_id(None) is None
    assert model.validate_kms_key_id("k" * 2048) == "k" * 2048
    for bad in ("", "k" * 2049, 7):
        with pytest.raises(InvalidValue):
            model.validate_kms_key_id(bad)


def test_retention_hours() -> None:
    for ok in (0, 1, MAX_RETENTION_HOURS):
        assert model.validate_retention_hours(ok) == ok
    for bad in (-1, MAX_RETENTION_HOURS + 1, True, 1.0, "1", None):
        with pytest.raises(InvalidValue, match="DataRetentionInHours"):
            model.validate_retention_hours(bad)


def test_tags() -> None:
    fifty = {f"k{i}": "v" for i in range(MAX_TAGS)}
    assert model.validate_tags(fifty) == fifty
    assert model.validate_tags(fifty) is not fifty  # a copy
    with pytest.raises(TooManyTags) as exc:
        model.validate_tags({**fifty, "one-more": "v"})
    assert exc.value.code == "TagsPerResourceExceededLimitException"
    assert isinstance(exc.value, InvalidValue)
    assert model.validate_tags({"Ключ 1_.:/=+-@": "värde", "k" * 128: "v" * 256, "e": ""})
    for bad in ({"": "v"}, {"k" * 129: "v"}, {"k": "v" * 257}, {"k\n": "v"}, {"k": "v\t"}):
        with pytest.raises(InvalidValue):
            model.validate_tags(bad)
    for bad_type in ([("k", "v")], {1: "v"}, {"k": 1}):
        with pytest.raises(InvalidValue):
            model.validate_tags(bad_type)
    assert model.is_tag_text("a b") and not model.is_tag_text("a#b")


def test_versions_are_fresh_tokens() -> None:
    versions = {model.new_stream_version() for _ in range(100)}
    assert len(versions) == 100
    assert all(len(v) == 20 and v.isalnum() and v.isascii() for v in versions)


def test_stream_arn_round_trip() -> None:
    arn = stream_arn("us-east-1", "123456789012", "my.stream-1", 1_700_000_000_123)
    assert arn == "arn:aws:kinesisvideo:us-east-1:123456789012:stream/my.stream-1/1700000000123"
    parsed = parse_stream_arn(arn)
    assert parsed == StreamArn("us-east-1", "123456789012", "my.stream-1", 1_700_000_000_123)
    assert str(parsed) == arn
    china = parse_stream_arn("arn:aws-cn:kinesisvideo:cn-north-1:1:stream/s/5")
    assert (china.partition, china.region, china.name, china.creation_ms) == (
        "aws-cn",
        "cn-north-1",
        "s",
        5,
    )


@pytest.mark.parametrize(
    "arn",
    [
        "",
        "arn:aws:kinesisvideo:us-east-1:123:stream/name",  # no creation time
        "arn:aws:kinesisvideo:us-east-1:123:stream/na me/1",
        "arn:aws:kinesis:us-east-1:123:stream/name/1",
        "arn:aws:kinesisvideo:us-east-1:abc:stream/name/1",
        "arn:aws:kinesisvideo:us-east-1:123:channel/name/1",
        "arn:aws:kinesisvideo:us-east-1:123:stream/name/1/extra",
        "arn:aws:kinesisvideo:us-east-1:123:stream/name/-1",
        "arn:aws:kinesisvideo:us-east-1:1:stream/n/" + "1" * 1024,  # longer than an ARN may be
        None,
    ],
)
def test_invalid_stream_arns(arn: object) -> None:
    with pytest.raises(InvalidValue, match="invalid stream ARN"):
        parse_stream_arn(arn)


@given(
    name=st.from_regex(model.STREAM_NAME_PATTERN, fullmatch=True),
    region=st.from_regex(r"[a-z]{2}-[a-z]+-[0-9]", fullmatch=True),
    account=st.from_regex(r"[0-9]{12}", fullmatch=True),
    creation_ms=st.integers(0, 2**63),
)
def test_any_stream_arn_parses_back(name: str, region: str, account: str, creation_ms: int) -> None:
    parsed = parse_stream_arn(stream_arn(region, account, name, creation_ms))
    assert (parsed.region, parsed.account_id, parsed.name, parsed.creation_ms) == (
        region,
        account,
        name,
        creation_ms,
    )


def test_the_model_is_import_light() -> None:
    code = (
        "import sys, callstream.kvs.model\n"
        "heavy = {'sqlite3', 'aiohttp', 'callstream.store', 'cryptography'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))
