"""The voice-connector registry (sans-HTTP): CRUD, streaming configuration, SIP routing by
host, and two registries (a server and a CLI) sharing one file."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from callstream.voice.connectors import (
    REGISTRY_FILE,
    StreamingConfiguration,
    VoiceConnectorError,
    VoiceConnectorNotFound,
    VoiceConnectorRegistry,
    open_registry,
)

ACCOUNT = "123456789012"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[VoiceConnectorRegistry]:
    reg = open_registry(tmp_path, region="us-east-1", account_id=ACCOUNT)
    try:
        yield reg
    finally:
        reg.close()


def test_create_shapes_like_aws(registry: VoiceConnectorRegistry, tmp_path: Path) -> None:
    vc = registry.create("sbc one", require_encryption=True, tags={"team": "ops"})
    assert re.fullmatch(r"[a-z0-9]{22}", vc.voice_connector_id)
    assert vc.outbound_host_name == f"{vc.voice_connector_id}.voiceconnector.chime.aws"
    assert vc.arn == f"arn:aws:chime:us-east-1:{ACCOUNT}:vc/{vc.voice_connector_id}"
    assert vc.aws_region == "us-east-1"
    assert vc.require_encryption is True
    assert vc.created_ms == vc.updated_ms > 0
    assert vc.streaming is None and not vc.streaming_enabled and vc.swap_roles is False
    assert vc.tags == (("team", "ops"),)
    assert (tmp_path / REGISTRY_FILE).is_file()
    assert registry.get(vc.voice_connector_id) == vc
    other = registry.create("b", require_encryption=False, aws_region="eu-west-2")
    assert other.arn.startswith("arn:aws:chime:eu-west-2:")


@pytest.mark.parametrize(
    ("name", "region"),
    [("", None), ("x" * 257, None), ("bad/name", None), ("ok", "mars-1")],
)
def test_create_refuses_bad_input(
    registry: VoiceConnectorRegistry, name: str, region: str | None
) -> None:
    with pytest.raises(VoiceConnectorError) as err:
        registry.create(name, require_encryption=False, aws_region=region)
    assert err.value.code == "BadRequestException"
    assert registry.list()[0] == []


def test_update_delete_not_found(registry: VoiceConnectorRegistry) -> None:
    vc = registry.create("a", require_encryption=False)
    updated = registry.update(vc.voice_connector_id, name="renamed", require_encryption=True)
    assert (updated.name, updated.require_encryption) == ("renamed", True)
    assert updated.created_ms == vc.created_ms and updated.updated_ms >= vc.updated_ms
    registry.delete(vc.voice_connector_id)
    for call in (
        lambda: registry.get(vc.voice_connector_id),
        lambda: registry.delete(vc.voice_connector_id),
        lambda: registry.update(vc.voice_connector_id, name="x", require_encryption=False),
        lambda: registry.get_streaming(vc.voice_connector_id),
        lambda: registry.set_swap_roles(vc.voice_connector_id, True),
    ):
        with pytest.raises(VoiceConnectorNotFound) as err:
            call()
        assert err.value.code == "NotFoundException"


def test_streaming_configuration(registry: VoiceConnectorRegistry) -> None:
    vc = registry.create("a", require_encryption=False)
    vc_id = vc.voice_connector_id
    with pytest.raises(VoiceConnectorNotFound):
        registry.get_streaming(vc_id)  # none configured: NotFound, as AWS
    config = StreamingConfiguration(24, False, ("EventBridge", "SQS"))
    assert registry.put_streaming(vc_id, config) == config
    assert registry.get_streaming(vc_id) == config
    assert registry.get(vc_id).streaming_enabled
    registry.put_streaming(vc_id, StreamingConfiguration(0, True))
    assert not registry.get(vc_id).streaming_enabled
    assert registry.get(vc_id).streaming == StreamingConfiguration(0, True)
    for bad in (
        StreamingConfiguration(-1, False),
        StreamingConfiguration(1, False, ("Email",)),
        StreamingConfiguration(1, False, ("SNS",) * 4),
    ):
        with pytest.raises(VoiceConnectorError) as err:
            registry.put_streaming(vc_id, bad)
        assert err.value.code == "BadRequestException"
    registry.delete_streaming(vc_id)
    with pytest.raises(VoiceConnectorNotFound):
        registry.get_streaming(vc_id)
    with pytest.raises(VoiceConnectorNotFound):
        registry.delete_streaming(vc_id)
    registry.put_streaming(vc_id, config)
    registry.delete(vc_id)  # a connector with streaming may be deleted (with it)
    with pytest.raises(VoiceConnectorNotFound):
        registry.get_streaming(vc_id)


def test_list_pagination(registry: VoiceConnectorRegistry) -> None:
    ids = sorted(
        registry.create(f"vc{i}", require_encryption=False).voice_connector_id for i in range(7)
    )
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page, token = registry.list(max_results=3, next_token=token)
        seen += [c.voice_connector_id for c in page]
        pages += 1
        if token is None:
            break
    assert seen == ids and pages == 3
    assert [c.voice_connector_id for c in registry.list()[0]] == ids
    for bad in ({"max_results": 0}, {"max_results": 101}, {"next_token": "garbage!"}):
        with pytest.raises(VoiceConnectorError) as err:
            registry.list(**bad)  # type: ignore[arg-type]
        assert err.value.code == "BadRequestException"


def test_resolve_rules(registry: VoiceConnectorRegistry) -> None:
    assert registry.resolve("anything.example.com") is None  # no connectors
    a = registry.create("a", require_encryption=False)
    # exactly one connector: any other host (or none) selects it
    assert registry.resolve("10.0.0.5") == a
    assert registry.resolve(None) == a
    b = registry.create("b", require_encryption=False)
    assert registry.resolve("10.0.0.5") is None  # two: ambiguous
    host = f"{b.voice_connector_id}.voiceconnector.chime.aws"
    assert registry.resolve(host) == b
    assert registry.resolve(host.upper() + ":5060") == b
    assert registry.resolve(f"{a.voice_connector_id}.VoiceConnector.example.net") == a
    assert registry.resolve(host, default_id=a.voice_connector_id) == b  # the id host wins
    assert registry.resolve("sbc.example.com", default_id=a.voice_connector_id) == a
    assert registry.resolve("sbc.example.com", default_id="nosuchconnector") is None
    assert registry.resolve("nosuchconnector00000000.voiceconnector.chime.aws") is None
    registry.delete(a.voice_connector_id)
    assert registry.resolve("sbc.example.com") == b  # one left


def test_swap_roles_persists(tmp_path: Path) -> None:
    reg = open_registry(tmp_path, region="us-east-1", account_id=ACCOUNT)
    vc = reg.create("a", require_encryption=False)
    assert reg.set_swap_roles(vc.voice_connector_id, True).swap_roles is True
    reg.close()
    reopened = open_registry(tmp_path, region="us-east-1", account_id=ACCOUNT)
    try:
        assert reopened.get(vc.voice_connector_id).swap_roles is True
        assert reopened.set_swap_roles(vc.voice_connector_id, False).swap_roles is False
    finally:
        reopened.close()


def test_tags(registry: VoiceConnectorRegistry) -> None:
    vc = registry.create("a", require_encryption=False, tags=[("k1", "v1")])
    vc_id = vc.voice_connector_id
    assert registry.tag(vc_id, [("k2", "v2"), ("k1", "new")]).tags == (("k1", "new"), ("k2", "v2"))
    assert registry.untag(vc_id, ["k1", "absent"]).tags == (("k2", "v2"),)
    assert registry.by_arn(vc.arn).voice_connector_id == vc_id
    with pytest.raises(VoiceConnectorError):
        registry.tag(vc_id, [(f"k{i}", "v") for i in range(60)])


def test_two_registries_share_the_file(tmp_path: Path) -> None:
    server = VoiceConnectorRegistry(tmp_path / "vc.sqlite3", region="us-east-1", account_id=ACCOUNT)
    cli = VoiceConnectorRegistry(tmp_path / "vc.sqlite3", region="us-east-1", account_id=ACCOUNT)
    try:
        assert server.resolve("x") is None  # warms the server's cache
        vc = cli.create("from-cli", require_encryption=False)
        assert server.resolve("x") == vc  # the cache saw the other connection's commit
        server.put_streaming(vc.voice_connector_id, StreamingConfiguration(6, False))
        assert cli.get(vc.voice_connector_id).streaming_enabled
        cli.set_swap_roles(vc.voice_connector_id, True)
        assert server.get(vc.voice_connector_id).swap_roles
        server.delete(vc.voice_connector_id)
        with pytest.raises(VoiceConnectorNotFound):
            cli.get(vc.voice_connector_id)
    finally:
        server.close()
        cli.close()


def _create_in_child(path: str, name: str) -> None:
    reg = VoiceConnectorRegistry(Path(path), region="us-east-1", account_id=ACCOUNT)
    reg.create(name, require_encryption=False)
    reg.close()


def test_another_process_sees_and_makes_changes(tmp_path: Path) -> None:
    path = tmp_path / "vc.sqlite3"
    reg = VoiceConnectorRegistry(path, region="us-east-1", account_id=ACCOUNT)
    try:
        assert reg.list()[0] == []
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_create_in_child, args=(str(path), "from-process"))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert [c.name for c in reg.list()[0]] == ["from-process"]
    finally:
        reg.close()
