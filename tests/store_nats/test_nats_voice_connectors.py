"""Voice connectors the same on every node of a NATS cluster: made, configured, renamed
and deleted with boto3's ``chime-sdk-voice`` (or the CLI) on any node, seen on every other
one (and by its SIP side), also by a node that joins later."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread
from callstream.voice.connectors import open_registry
from polling import wait_for

pytest.importorskip("nats", reason="nats-py is not installed (pip install -e '.[dev]')")

ACCESS_KEY, SECRET_KEY, REGION = (
    "AKIDEXAMPLE",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "us-east-1",
)


def chime(server: ServerThread) -> Any:
    return boto3.client(
        "chime-sdk-voice",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def eventually(check: Callable[[], bool], what: str) -> None:
    wait_for(check, 30, what)


def not_found(call: Callable[[], object]) -> bool:
    try:
        call()
    except ClientError as err:
        return bool(err.response["Error"]["Code"] == "NotFoundException")
    return False


@pytest.fixture
def config(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> ServerConfig:
    """The settings of every node of one deployment (a fresh prefix per test); the CLI
    and the nodes share one key pair."""
    monkeypatch.setenv("CALLSTREAM_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("CALLSTREAM_SECRET_ACCESS_KEY", SECRET_KEY)
    return ServerConfig(store=nats_url, store_prefix=f"vc{uuid.uuid4().hex[:10]}")


def test_a_voice_connector_made_on_one_node_is_on_every_node(
    config: ServerConfig, tmp_path: Path
) -> None:
    nodes = [ServerThread(tmp_path / "a", config=config).start()]
    try:
        nodes.append(ServerThread(tmp_path / "b", config=config).start())
        a, b = chime(nodes[0]), chime(nodes[1])
        made = a.create_voice_connector(Name="lca", RequireEncryption=False, AwsRegion=REGION)
        vc_id = made["VoiceConnector"]["VoiceConnectorId"]
        a.put_voice_connector_streaming_configuration(
            VoiceConnectorId=vc_id,
            StreamingConfiguration={"DataRetentionInHours": 24, "Disabled": False},
        )

        def streaming_on_b() -> bool:
            try:
                got = b.get_voice_connector_streaming_configuration(VoiceConnectorId=vc_id)
            except ClientError:
                return False
            return bool(got["StreamingConfiguration"]["DataRetentionInHours"] == 24)

        eventually(streaming_on_b, "the streaming configuration never reached node B")
        assert b.get_voice_connector(VoiceConnectorId=vc_id)["VoiceConnector"]["Name"] == "lca"
        # B's SIP side takes the connector's calls
        found = nodes[1].state.voice_connectors.resolve(f"{vc_id}.voiceconnector.chime.aws")
        assert found is not None and found.voice_connector_id == vc_id
        # changed on B: A follows
        b.update_voice_connector(VoiceConnectorId=vc_id, Name="renamed", RequireEncryption=True)
        eventually(
            lambda: (
                a.get_voice_connector(VoiceConnectorId=vc_id)["VoiceConnector"]["Name"] == "renamed"
            ),
            "the rename never reached node A",
        )
        # a node that joins later has them all at once
        other = a.create_voice_connector(Name="second", RequireEncryption=False)
        other_id = other["VoiceConnector"]["VoiceConnectorId"]
        eventually(
            lambda: not not_found(lambda: b.get_voice_connector(VoiceConnectorId=other_id)),
            "the second connector never reached node B",
        )
        # made with `callstream voice-connectors create` on A's data directory (another
        # process writing the registry file): published too
        cli = open_registry(tmp_path / "a", region=REGION, account_id="123456789012")
        try:
            third_id = cli.create("from-the-cli", require_encryption=False).voice_connector_id
        finally:
            cli.close()
        eventually(
            lambda: not not_found(lambda: b.get_voice_connector(VoiceConnectorId=third_id)),
            "the connector made by the CLI never reached node B",
        )
        nodes.append(ServerThread(tmp_path / "c", config=config).start())
        c = chime(nodes[2])
        listed = {v["VoiceConnectorId"] for v in c.list_voice_connectors()["VoiceConnectors"]}
        assert listed == {vc_id, other_id, third_id}
        # deleted on A: gone everywhere
        a.delete_voice_connector(VoiceConnectorId=vc_id)
        for client in (b, c):
            eventually(
                lambda client=client: not_found(
                    lambda: client.get_voice_connector(VoiceConnectorId=vc_id)
                ),
                "the deletion never reached every node",
            )
        assert nodes[1].state.voice_connectors.resolve(f"{vc_id}.voiceconnector.chime.aws") is None
    finally:
        for node in nodes:
            node.stop()


def test_a_change_made_while_a_node_was_stopped_is_not_undone_when_it_starts(
    config: ServerConfig, tmp_path: Path
) -> None:
    a = ServerThread(tmp_path / "a", config=config).start()
    b: ServerThread | None = ServerThread(tmp_path / "b", config=config).start()
    try:
        client_a = chime(a)
        ids = [
            client_a.create_voice_connector(Name=name, RequireEncryption=False)["VoiceConnector"][
                "VoiceConnectorId"
            ]
            for name in ("gone", "renamed", "kept")
        ]
        assert b is not None
        eventually(
            lambda: set(b.state.voice_connectors.documents()) == set(ids),  # type: ignore[union-attr]
            "the connectors never reached node B",
        )
        b.stop()
        b = None
        # with B stopped: deleted and renamed with the CLI on B's data directory
        cli = open_registry(tmp_path / "b", region=REGION, account_id="123456789012")
        try:
            cli.delete(ids[0])
            cli.update(ids[1], name="renamed-offline", require_encryption=False)
        finally:
            cli.close()
        b = ServerThread(tmp_path / "b", config=config).start()
        client_b = chime(b)
        eventually(
            lambda: not_found(lambda: client_a.get_voice_connector(VoiceConnectorId=ids[0])),
            "the offline deletion never reached node A",
        )
        eventually(
            lambda: (
                client_a.get_voice_connector(VoiceConnectorId=ids[1])["VoiceConnector"]["Name"]
                == "renamed-offline"
            ),
            "the offline rename never reached node A",
        )
        assert not_found(lambda: client_b.get_voice_connector(VoiceConnectorId=ids[0]))
        got = client_b.get_voice_connector(VoiceConnectorId=ids[1])["VoiceConnector"]["Name"]
        assert got == "renamed-offline"
        kept = client_b.get_voice_connector(VoiceConnectorId=ids[2])["VoiceConnector"]["Name"]
        assert kept == "kept"
    finally:
        a.stop()
        if b is not None:
            b.stop()
