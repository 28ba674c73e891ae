"""The Connect registry's resources without HTTP: paging tokens, the phone number pool, and
the flow engine's view of an instance (storage config, queues, hours)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.flows.connect_errors import ConnectError
from callstream.flows.instance_resources import page, parse_phone_pool
from callstream.flows.instances import InstanceRegistry


@pytest.fixture()
def registry(tmp_path: Path) -> InstanceRegistry:
    return InstanceRegistry(tmp_path / "connect.sqlite3", region="eu-west-2", account_id="1" * 12)


def test_page_tokens() -> None:
    items = list(range(7))
    first, token = page(items, None, 3)
    assert first == [0, 1, 2] and token
    second, token = page(items, token, 3)
    third, last = page(items, token, 3)
    assert second == [3, 4, 5] and third == [6] and last is None
    assert page(items, None, None) == (items, None)
    for bad in ("garbage!", "bzo5OTk=", "bzotMQ=="):  # not base64 / past the end / negative
        with pytest.raises(ConnectError) as err:
            page(items, bad, 3)
        assert err.value.code == "InvalidParameterException"


def test_phone_pool_entries() -> None:
    assert parse_phone_pool(" +1555010xxxx, +18005550100 ") == ("+1555010xxxx", "+18005550100")
    for bad in ("", "5550100", "+1-555", "+0123", "+1x55", "+1234567890123456"):
        with pytest.raises(ValueError):
            parse_phone_pool(bad)


def test_runtime_instance(registry: InstanceRegistry) -> None:
    instance = registry.create_instance(
        identity_management_type="CONNECT_MANAGED",
        inbound_calls_enabled=True,
        outbound_calls_enabled=False,
    )
    bare = registry.runtime_instance(instance.id)
    assert bare.live_media_streaming is False
    assert bare.alias == instance.id  # no alias: streams are named with the id
    assert bare.default_queue.queue_id == registry.list_queues(instance.id)[0].id
    registry.associate_storage(
        instance.id,
        "MEDIA_STREAMS",
        {
            "StorageType": "KINESIS_VIDEO_STREAM",
            "KinesisVideoStreamConfig": {
                "Prefix": "pfx",
                "RetentionPeriodHours": 0,
                "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": "alias/k"},
            },
        },
    )
    hours = registry.create_hours(
        instance.id,
        "Nights",
        {
            "TimeZone": "America/New_York",
            "Config": [
                {
                    "Day": "FRIDAY",
                    "StartTime": {"Hours": 22, "Minutes": 0},
                    "EndTime": {"Hours": 6, "Minutes": 0},
                }
            ],
        },
    )
    queue = registry.create_queue(instance.id, "Night", {"HoursOfOperationId": hours.id})
    runtime = registry.runtime_instance(instance.id)
    assert runtime.live_media_streaming and runtime.stream_prefix == "pfx"
    assert runtime.retention_hours == 0 and runtime.kms_key_id == "alias/k"
    assert runtime.stream_name("c-1") == f"pfx-connect-{instance.id}-contact-c-1"
    found = runtime.find_queue(queue.arn)
    assert found is not None and found.name == "Night"
    night = runtime.find_hours(hours.arn)
    assert night is not None and night.time_zone == "America/New_York"
    registry.close()
