"""The Connect registry's resources without HTTP: paging tokens, the phone number pool, and
the flow engine's view of an instance (storage config, queues, hours)."""

from __future__ import annotations

from collections.abc import Callable
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


def _missing(call: Callable[[], object]) -> str:
    with pytest.raises(ConnectError) as err:
        call()
    assert err.value.code == "ResourceNotFoundException"
    return err.value.message


def test_resources_are_found_by_id_or_arn(registry: InstanceRegistry) -> None:
    arn = "arn:aws:connect:eu-west-2:111111111111"
    instance = registry.create_instance(
        identity_management_type="CONNECT_MANAGED",
        inbound_calls_enabled=True,
        outbound_calls_enabled=True,
    )
    assert instance.arn == f"{arn}:instance/{instance.id}"
    assert registry.get_instance(instance.arn) == registry.get_instance(instance.id) == instance
    assert _missing(lambda: registry.get_instance("nope")) == "Instance nope not found."
    other = f"arn:aws:connect:us-east-1:111111111111:instance/{instance.id}"  # another region
    assert _missing(lambda: registry.get_instance(other)) == f"Instance {other} not found."

    number = registry.claim_number("+15550100007", instance_id=instance.arn)
    assert number.arn == f"{arn}:phone-number/{number.id}"
    assert number.instance_arn == instance.arn and number.instance_id == instance.id
    for ref in (number.id, number.arn, "+15550100007"):
        assert registry.get_number(ref) == number
    assert _missing(lambda: registry.get_number("+15550100008")) == (
        "Phone number +15550100008 not found."
    )
    registry.tag_resource(number.arn, {"team": "a"})
    assert registry.list_tags(number.arn) == {"team": "a"}

    late = registry.create_hours(instance.id, "Late", {"TimeZone": "UTC", "Config": []})
    later = registry.create_hours(instance.id, "Later", {"TimeZone": "UTC", "Config": []})
    assert late.arn == f"{instance.arn}/operating-hours/{late.id}"
    names = [h.name for h in registry.list_hours(instance.id)]  # the same ms: either order
    assert names[0] == "Basic Hours" and sorted(names[1:]) == ["Late", "Later"]
    assert registry.get_hours(instance.id, late.arn) == registry.get_hours(instance.id, late.id)
    assert _missing(lambda: registry.get_hours(instance.id, "x")) == (
        "Hours of operation x not found."
    )
    queue = registry.create_queue(instance.id, "Sales", {"HoursOfOperationId": later.arn})
    assert queue.arn == f"{instance.arn}/queue/{queue.id}"
    assert queue.data == {"HoursOfOperationId": later.arn, "Status": "ENABLED"}
    assert [q.name for q in registry.list_queues(instance.id)] == ["BasicQueue", "Sales"]
    assert registry.get_queue(instance.arn, queue.arn) == queue
    assert _missing(lambda: registry.get_queue(instance.id, "x")) == "Queue x not found."
    assert _missing(lambda: registry.create_queue(instance.id, "Q", {})) == (
        "Hours of operation  not found."
    )
    for resource in (queue.arn, late.arn, instance.arn):
        registry.tag_resource(resource, {"k": "v"})
        assert registry.list_tags(resource) == {"k": "v"}
    gone = f"{instance.arn}/queue/{late.id}"  # an hours id is not a queue
    assert _missing(lambda: registry.list_tags(gone)) == f"Queue {late.id} not found."
    unknown = f"{instance.arn}/agent/a"
    assert _missing(lambda: registry.list_tags(unknown)) == f"Resource {unknown} not found."
    registry.close()


def test_storage_configs_are_checked_and_stored_without_their_association_id(
    registry: InstanceRegistry,
) -> None:
    instance = registry.create_instance(
        identity_management_type="CONNECT_MANAGED",
        inbound_calls_enabled=True,
        outbound_calls_enabled=True,
    )
    kvs = {"Prefix": "p", "EncryptionConfig": {"EncryptionType": "KMS", "KeyId": "k"}}
    config = {"StorageType": "KINESIS_VIDEO_STREAM", "KinesisVideoStreamConfig": kvs}
    stored = registry.associate_storage(
        instance.id, "MEDIA_STREAMS", {"AssociationId": "mine", **config}
    )
    assert stored.config == config and len(stored.association_id) == 64
    bad = {
        "ResourceType CALL_RECORDINGS is not supported yet (only MEDIA_STREAMS).": (
            "CALL_RECORDINGS",
            config,
        ),
        "MEDIA_STREAMS takes StorageType KINESIS_VIDEO_STREAM with a config.": (
            "MEDIA_STREAMS",
            {"StorageType": "S3", "KinesisVideoStreamConfig": kvs},
        ),
        "RetentionPeriodHours must be at least 0.": (
            "MEDIA_STREAMS",
            {**config, "KinesisVideoStreamConfig": {**kvs, "RetentionPeriodHours": -1}},
        ),
        "EncryptionConfig.EncryptionType must be KMS.": (
            "MEDIA_STREAMS",
            {**config, "KinesisVideoStreamConfig": {"Prefix": "p"}},
        ),
    }
    for message, (resource_type, refused) in bad.items():
        with pytest.raises(ConnectError) as err:
            registry.associate_storage(instance.id, resource_type, refused)
        assert (err.value.code, err.value.message) == ("InvalidParameterException", message)
        with pytest.raises(ConnectError) as err:
            registry.update_storage(instance.id, stored.association_id, resource_type, refused)
        assert (err.value.code, err.value.message) == ("InvalidParameterException", message)
    assert registry.list_storage(instance.id, "MEDIA_STREAMS") == [stored]
    renamed = {**config, "KinesisVideoStreamConfig": {**kvs, "Prefix": "q"}}
    updated = registry.update_storage(
        instance.id, stored.association_id, "MEDIA_STREAMS", {"AssociationId": "x", **renamed}
    )
    assert updated.config == renamed and updated.association_id == stored.association_id
    registry.close()
