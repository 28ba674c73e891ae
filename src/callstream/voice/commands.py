"""The voice connector's command line: ``serve``'s SIP options, ``voice-connector`` (the
recording server alone, writing to any KVS endpoint), ``voice-connectors`` (manage them),
``calls`` (active and recent legs) and ``siprec-call`` (place a test recording session)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callstream.voice.server import VoiceConfig

__all__ = ["add_commands", "add_serve_options", "voice_config"]


def _error(message: str) -> Exception:
    from callstream.cli import CliError

    return CliError(message)


# --- serve / voice-connector options ------------------------------------------------------------
def add_serve_options(p: argparse.ArgumentParser, *, standalone: bool = False) -> None:
    """The SIP and RTP options of ``serve`` and ``voice-connector``."""
    g = p.add_argument_group("voice connector (SIPREC / Cisco NBR recording server)")
    if not standalone:
        g.add_argument("--no-sip", action="store_true", help="do not run the SIP server")
    g.add_argument("--sip-host", default="127.0.0.1", help="SIP listen address (UDP and TCP)")
    g.add_argument("--sip-port", type=int, default=5060, help="SIP port (0: any free one)")
    g.add_argument(
        "--sip-advertise-ip", help="address put in SDP and Contact (behind NAT); default: listen"
    )
    g.add_argument("--rtp-ports", default="20000-29999", metavar="LOW-HIGH", help="RTP port range")
    g.add_argument(
        "--rtp-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="end a call after S seconds without RTP (not while on hold; 0: never)",
    )
    g.add_argument(
        "--rtp-batch-ms",
        type=int,
        default=100,
        metavar="MS",
        help="read RTP and write it to the legs' streams every MS ms (latency vs CPU)",
    )
    g.add_argument("--max-calls", type=int, default=1000, help="concurrent calls (then 503)")
    g.add_argument(
        "--overload-late-ms",
        type=int,
        default=0,
        metavar="MS",
        help="overload control: while the event loop runs MS ms late most of the time, new "
        "calls get 503 (0: off)",
    )
    g.add_argument(
        "--default-voice-connector",
        metavar="ID",
        help="connector for SIP hosts that name none (default: the only one, if just one)",
    )


def voice_config(args: argparse.Namespace) -> VoiceConfig | None:
    """The :class:`VoiceConfig` the options ask for (None: ``--no-sip``)."""
    from callstream.voice.server import VoiceConfig

    if getattr(args, "no_sip", False):
        return None
    low, sep, high = str(args.rtp_ports).partition("-")
    try:
        ports = (int(low), int(high))
    except ValueError:
        raise _error(f"--rtp-ports must be LOW-HIGH, got {args.rtp_ports!r}") from None
    if not sep or not 1024 <= ports[0] <= ports[1] <= 65535 or ports[1] - ports[0] < 3:
        raise _error(f"--rtp-ports must be LOW-HIGH within 1024-65535, got {args.rtp_ports!r}")
    if not 0 <= args.sip_port <= 65535:
        raise _error(f"--sip-port must be 0-65535, got {args.sip_port}")
    if not 10 <= args.rtp_batch_ms <= 500:
        raise _error(f"--rtp-batch-ms must be 10-500, got {args.rtp_batch_ms}")
    if args.max_calls < 1:
        raise _error(f"--max-calls must be at least 1, got {args.max_calls}")
    if args.overload_late_ms != 0 and not 20 <= args.overload_late_ms <= 10_000:
        # below ~20 ms an idle loop's ordinary timer slack would count as overload
        raise _error(f"--overload-late-ms must be 0 (off) or 20-10000, got {args.overload_late_ms}")
    return VoiceConfig(
        sip_host=args.sip_host,
        sip_port=args.sip_port,
        advertise_ip=args.sip_advertise_ip,
        rtp_ports=ports,
        rtp_timeout_s=args.rtp_timeout,
        rtp_batch_ms=args.rtp_batch_ms,
        max_calls=args.max_calls,
        overload_late_ms=args.overload_late_ms,
        default_connector=args.default_voice_connector,
    )


# --- voice-connector (standalone) ---------------------------------------------------------------
def cmd_voice_connector(args: argparse.Namespace) -> int:
    from callstream.api.server import stop_on_signals
    from callstream.flows.store import HttpCallStore
    from callstream.voice.connectors import open_registry
    from callstream.voice.server import VoiceServer

    config = voice_config(args)
    assert config is not None
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    config.sdr_dir = data_dir
    config.region = args.region
    config.account_id = args.account_id
    registry = open_registry(data_dir, region=args.region, account_id=args.account_id)

    async def main() -> None:
        store = HttpCallStore(args.kvs_endpoint, region=args.region)
        await store.prepare()
        server = VoiceServer(store, registry, config)
        try:
            await server.start()
        except OSError as exc:
            raise _error(
                f"cannot listen for SIP on {config.sip_host}:{config.sip_port}: {exc}"
            ) from None
        print(
            f"callstream voice connector: SIP on {config.sip_host}:{server.sip_port}"
            f" (UDP, TCP), legs to {args.kvs_endpoint} (data: {data_dir})",
            flush=True,
        )
        stop = stop_on_signals()
        try:
            await stop.wait()
        finally:
            await server.stop()
            await store.close()

    try:
        asyncio.run(main())
    finally:
        registry.close()
    return 0


# --- voice-connectors -------------------------------------------------------------------------
def _connector_json(vc: Any) -> dict[str, Any]:
    streaming = vc.streaming
    return {
        "VoiceConnectorId": vc.voice_connector_id,
        "Name": vc.name,
        "OutboundHostName": vc.outbound_host_name,
        "Streaming": None
        if streaming is None
        else {
            "DataRetentionInHours": streaming.data_retention_in_hours,
            "Disabled": streaming.disabled,
        },
        "SwapRoles": vc.swap_roles,
    }


def cmd_voice_connectors(args: argparse.Namespace) -> int:
    from callstream.voice.connectors import (
        StreamingConfiguration,
        VoiceConnectorError,
        open_registry,
    )

    registry = open_registry(Path(args.data_dir), region=args.region, account_id=args.account_id)
    try:
        action = args.action or "list"
        if action == "list":
            connectors, _ = registry.list()
            for vc in connectors:
                print(json.dumps(_connector_json(vc)))
            return 0
        if action == "create":
            vc = registry.create(args.name, require_encryption=False)
            if args.retention is not None:
                registry.put_streaming(
                    vc.voice_connector_id,
                    StreamingConfiguration(data_retention_in_hours=args.retention, disabled=False),
                )
            print(json.dumps(_connector_json(registry.get(vc.voice_connector_id))))
            return 0
        if not args.id:
            raise _error(f"voice-connectors {action} needs a connector id")
        if action == "streaming":
            if args.retention is None and not args.disable and not args.enable:
                raise _error("say --retention H, --enable or --disable")
            try:
                current = registry.get_streaming(args.id)
            except VoiceConnectorError:
                current = StreamingConfiguration(data_retention_in_hours=0, disabled=False)
            registry.put_streaming(
                args.id,
                StreamingConfiguration(
                    data_retention_in_hours=current.data_retention_in_hours
                    if args.retention is None
                    else args.retention,
                    disabled=args.disable or (current.disabled and not args.enable),
                    notification_targets=current.notification_targets,
                ),
            )
        elif action == "swap-roles":
            registry.set_swap_roles(args.id, args.value == "on")
        elif action == "delete":
            registry.delete(args.id)
            return 0
        print(json.dumps(_connector_json(registry.get(args.id))))
        return 0
    except VoiceConnectorError as exc:
        raise _error(f"{exc}") from None
    finally:
        registry.close()


# --- calls ----------------------------------------------------------------------------------
def cmd_calls(args: argparse.Namespace) -> int:
    from urllib.parse import urlencode

    from callstream.cli import _use_local_credentials_if_none, signed_request

    _use_local_credentials_if_none(args)
    base = args.endpoint_url.rstrip("/") + "/callstream/events"
    legs: dict[str, dict[str, Any]] = {}
    cursor = 0
    while True:
        query = {"type": "VoiceConnectorStreamingStatus", "cursor": str(cursor), "limit": "1000"}
        status, body = signed_request("GET", f"{base}?{urlencode(query)}", region=args.region)
        if status != 200:
            raise _error(f"HTTP {status}: {body.decode(errors='replace')[:300]}")
        page = json.loads(body)
        for event in page["Events"]:
            arn = event.get("StreamARN")
            if not arn:
                continue
            leg = legs.setdefault(arn, {"StreamARN": arn, "Status": "ACTIVE"})
            leg.update(
                {
                    k: event[k]
                    for k in ("CallId", "TransactionId", "VoiceConnectorId", "IsCaller",
                              "StartTime", "StartFragmentNumber", "EndTime", "FromNumber",
                              "ToNumber")
                    if k in event
                }
            )  # fmt: skip
            if event["StreamingStatus"] in ("ENDED", "FAILED"):
                leg["Status"] = event["StreamingStatus"]
        cursor = page["NextCursor"]
        if not page["HasMore"]:
            break
    rows = sorted(legs.values(), key=lambda r: r.get("StartTime") or 0, reverse=True)
    if args.active:
        rows = [r for r in rows if r["Status"] == "ACTIVE"]
    for row in rows[: args.limit]:
        if args.json:
            print(json.dumps(row))
            continue
        start = row.get("StartTime")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start / 1000)) if start else "-"
        role = "caller" if row.get("IsCaller") else "agent "
        print(f"{when}  {row['Status']:<6}  {role}  {row.get('CallId', '-')}  {row['StreamARN']}")
    return 0


# --- siprec-call ----------------------------------------------------------------------------
def cmd_siprec_call(args: argparse.Namespace) -> int:
    from callstream.client.producer import read_chime_audio
    from callstream.voice.client import SiprecCallError, place_call

    host, _, port = args.target.rpartition(":")
    if not host or not port.isdigit():
        raise _error(f"target must be HOST:PORT, got {args.target!r}")
    legs = [next(iter(read_chime_audio(args.caller_wav).values()))]
    if args.agent_wav:
        legs.append(next(iter(read_chime_audio(args.agent_wav).values())))
    else:
        legs.append(bytes(len(legs[0])))
    uri = None
    if args.voice_connector:
        uri = f"sip:recorder@{args.voice_connector}.voiceconnector.{host}:{port}"
    try:
        result = asyncio.run(
            place_call(
                (host, int(port)), legs, request_uri=uri, codec=args.codec, nbr=args.nbr,
                realtime=not args.fast,
            )
        )  # fmt: skip
    except SiprecCallError as exc:
        raise _error(str(exc)) from None
    print(json.dumps({"CallId": result.call_id, "PacketsSent": result.packets_sent,
                      "ByeStatus": result.bye_status}))  # fmt: skip
    return 0


def add_commands(sub: Any) -> None:
    """Add the voice connector's commands to the CLI."""
    p = sub.add_parser(
        "voice-connector",
        help="run the SIPREC/NBR recording server alone, writing legs to a KVS endpoint",
    )
    p.add_argument("--kvs-endpoint", required=True, help="KVS endpoint (callstream or AWS)")
    p.add_argument("--data-dir", required=True, help="voice connectors and SDRs")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account-id", default="123456789012")
    add_serve_options(p, standalone=True)
    p.set_defaults(func=cmd_voice_connector)

    p = sub.add_parser("voice-connectors", help="list or manage voice connectors")
    p.add_argument(
        "action",
        nargs="?",
        choices=["list", "create", "streaming", "swap-roles", "delete"],
        help="default: list",
    )
    p.add_argument("id", nargs="?", help="the VoiceConnectorId")
    p.add_argument("value", nargs="?", choices=["on", "off"], help="swap-roles on|off")
    p.add_argument("--data-dir", required=True, help="the server's data directory")
    p.add_argument("--name", default="callstream", help="create: the connector's name")
    p.add_argument("--retention", type=int, help="streaming data retention in hours")
    p.add_argument("--enable", action="store_true", help="streaming: enable")
    p.add_argument("--disable", action="store_true", help="streaming: disable")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account-id", default="123456789012")
    p.set_defaults(func=cmd_voice_connectors)

    p = sub.add_parser("voice-legs", help="active and recent voice connector call legs")
    p.add_argument("--endpoint-url", required=True, help="the callstream server")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--active", action="store_true", help="only legs still streaming")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="one JSON object per leg")
    p.set_defaults(func=cmd_calls)

    p = sub.add_parser("siprec-call", help="place a SIPREC recording session (a test SRC)")
    p.add_argument("target", help="the recording server's HOST:PORT (UDP)")
    p.add_argument("--caller-wav", required=True, help="what the caller says (mono WAV)")
    p.add_argument("--agent-wav", help="what the agent says (mono WAV; default: silence)")
    p.add_argument("--voice-connector", metavar="ID", help="address this connector")
    p.add_argument("--codec", choices=["PCMU", "PCMA"], default="PCMU")
    p.add_argument("--nbr", action="store_true", help="Cisco NBR instead of SIPREC")
    p.add_argument("--fast", action="store_true", help="send as fast as possible")
    p.set_defaults(func=cmd_siprec_call)
