"""The ingest gateways' command line: ``serve``'s ``--ingest*`` options and ``replay``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callstream.ingest.config import IngestConfig

__all__ = ["add_commands", "add_serve_options", "ingest_config"]

TWILIO_ENV = "CALLSTREAM_TWILIO_AUTH_TOKEN"
AUDIOHOOK_ENV = "CALLSTREAM_AUDIOHOOK_API_KEY"
TOKEN_ENV = "CALLSTREAM_INGEST_TOKEN"


def _error(message: str) -> Exception:
    from callstream.cli import CliError

    return CliError(message)


def add_serve_options(p: argparse.ArgumentParser) -> None:
    """``callstream serve``'s ingest-gateway flags."""
    g = p.add_argument_group(
        "ingest gateways (Twilio Media Streams, Genesys AudioHook, plain WebSocket, AudioSocket)"
    )
    g.add_argument(
        "--ingest",
        choices=["auto", "on", "off"],
        default="auto",
        help="serve /ingest/twilio, /ingest/audiohook, /ingest/ws (auto: when a credential or"
        " --audiosocket-port is given)",
    )
    g.add_argument(
        "--ingest-shape",
        choices=["connect", "chime"],
        default="connect",
        help="connect: one stream per call, two tracks; chime: a stream per leg",
    )
    g.add_argument(
        "--twilio-auth-token",
        metavar="TOKEN",
        help=f"checks X-Twilio-Signature (or ${TWILIO_ENV}); without it Twilio is refused",
    )
    g.add_argument(
        "--audiohook-api-key",
        action="append",
        default=[],
        metavar="KEY:SECRET",
        help=f"an AudioHook API key and its base64 client secret (repeatable; or ${AUDIOHOOK_ENV})",
    )
    g.add_argument(
        "--ingest-token",
        metavar="TOKEN",
        help=f"the plain WebSocket's shared token (or ${TOKEN_ENV})",
    )
    g.add_argument(
        "--audiosocket-port",
        type=int,
        metavar="N",
        help="listen for Asterisk AudioSocket on this TCP port (default: off)",
    )
    g.add_argument("--audiosocket-host", default="127.0.0.1", help="AudioSocket listen address")
    g.add_argument(
        "--audiosocket-allow",
        default="127.0.0.1,::1",
        metavar="ADDR,...",
        help="peer addresses AudioSocket takes calls from ('any': all); default loopback",
    )
    g.add_argument(
        "--ingest-max-calls", type=int, default=100, metavar="N", help="concurrent ingest calls"
    )
    g.add_argument(
        "--ingest-idle-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="end an ingest call whose peer sends nothing for S seconds",
    )
    g.add_argument(
        "--ingest-swap-roles",
        default="",
        metavar="SOURCE,...",
        help="swap caller and agent for these protocols (twilio, audiohook, websocket,"
        " audiosocket)",
    )


def ingest_config(args: argparse.Namespace) -> IngestConfig | None:
    """The :class:`IngestConfig` ``serve``'s options ask for (None: off)."""
    from callstream.ingest.config import PROTOCOLS, IngestConfig

    twilio = args.twilio_auth_token or os.environ.get(TWILIO_ENV) or None
    token = args.ingest_token or os.environ.get(TOKEN_ENV) or None
    pairs = list(args.audiohook_api_key)
    if not pairs and os.environ.get(AUDIOHOOK_ENV):
        pairs = [os.environ[AUDIOHOOK_ENV]]
    keys: dict[str, str] = {}
    for pair in pairs:
        key, sep, secret = pair.partition(":")
        if not sep or not key:
            raise _error(f"--audiohook-api-key must be KEY:SECRET, got {pair!r}")
        from callstream.ingest.signatures import decode_client_secret

        try:
            decode_client_secret(secret)
        except ValueError:
            raise _error(f"--audiohook-api-key {key}: the secret is not base64") from None
        keys[key] = secret
    wanted = args.ingest == "on" or (
        args.ingest == "auto" and bool(twilio or token or keys or args.audiosocket_port is not None)
    )
    if not wanted:
        return None
    if args.audiosocket_port is not None and not 0 <= args.audiosocket_port <= 65535:
        raise _error(f"--audiosocket-port must be 0-65535, got {args.audiosocket_port}")
    if args.ingest_max_calls < 1:
        raise _error(f"--ingest-max-calls must be at least 1, got {args.ingest_max_calls}")
    if args.ingest_idle_timeout <= 0:
        raise _error("--ingest-idle-timeout must be positive")
    swap = {s.strip() for s in args.ingest_swap_roles.split(",") if s.strip()}
    unknown = swap - set(PROTOCOLS)
    if unknown:
        raise _error(f"--ingest-swap-roles: unknown protocol {sorted(unknown)[0]!r}")
    allow_text = args.audiosocket_allow.strip()
    allow = (
        frozenset()
        if allow_text == "any"
        else frozenset(a.strip() for a in allow_text.split(",") if a.strip())
    )
    return IngestConfig(
        shape=args.ingest_shape,
        swap_roles=frozenset(swap),
        twilio_auth_token=twilio,
        audiohook_keys=keys,
        token=token,
        audiosocket_host=args.audiosocket_host,
        audiosocket_port=args.audiosocket_port,
        audiosocket_allow=allow,
        max_calls=args.ingest_max_calls,
        idle_timeout_s=args.ingest_idle_timeout,
        public_url=getattr(args, "public_url", None),
    )


# --- replay ------------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from callstream.ingest.replay import ReplayOptions, read_channels, replay

    try:
        channels = read_channels(args.wav)
    except (OSError, ValueError) as err:
        raise _error(f"{args.wav}: {err}") from None
    metadata: dict[str, str] = {}
    for item in args.metadata:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _error(f"--metadata must be NAME=VALUE, got {item!r}")
        metadata[name] = value
    key = secret = None
    if args.audiohook_api_key:
        key, sep, secret = args.audiohook_api_key.partition(":")
        if not sep:
            raise _error("--audiohook-api-key must be KEY:SECRET")
    if args.speed <= 0:
        raise _error("--speed must be positive")
    options = ReplayOptions(
        protocol=args.protocol,
        url=args.url,
        host=args.host,
        port=args.port
        if args.port is not None
        else (8080 if args.protocol != "audiosocket" else 0),
        call_id=args.call_id,
        speed=args.speed,
        twilio_auth_token=args.twilio_auth_token or os.environ.get(TWILIO_ENV),
        audiohook_api_key=key,
        audiohook_secret=secret,
        token=args.token or os.environ.get(TOKEN_ENV),
        encoding=args.encoding,
        metadata=metadata,
    )
    if args.protocol == "audiosocket" and not options.port:
        raise _error("--port is required for audiosocket (serve's --audiosocket-port)")
    try:
        result = asyncio.run(replay(channels, options))
    except (ConnectionError, OSError) as err:
        raise _error(str(err)) from None
    print(
        json.dumps(
            {
                "Protocol": args.protocol,
                "CallId": result.call_id,
                "Frames": result.frames,
                "CloseCode": result.close_code,
            }
        )
    )
    if result.close_code not in (None, 1000):
        print(f"callstream replay: the server closed with {result.close_code}", file=sys.stderr)
        return 1
    return 0


def add_commands(sub: Any) -> None:
    """Add ``replay`` to the CLI."""
    p = sub.add_parser("replay", help="play a WAV into an ingest gateway in real time")
    p.add_argument(
        "--protocol", required=True, choices=["twilio", "audiohook", "websocket", "audiosocket"]
    )
    p.add_argument("--wav", required=True, help="mono: the caller; stereo: caller, agent")
    p.add_argument("--url", help="WebSocket URL (default ws://HOST:PORT/ingest/<protocol>)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, help="server port (8080) or serve's --audiosocket-port")
    p.add_argument("--call-id", help="callSid / conversationId / callId / UUID (default: new)")
    p.add_argument("--speed", type=float, default=1.0, help="play N times faster than real time")
    p.add_argument("--twilio-auth-token", help=f"sign the request (or ${TWILIO_ENV})")
    p.add_argument("--audiohook-api-key", metavar="KEY:SECRET", help="sign the AudioHook request")
    p.add_argument("--token", help=f"the plain WebSocket's token (or ${TOKEN_ENV})")
    p.add_argument("--encoding", choices=["L16", "PCMU"], default="L16", help="plain WebSocket")
    p.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Twilio customParameters / the start message's metadata / AudioHook customConfig",
    )
    p.set_defaults(func=cmd_replay)
