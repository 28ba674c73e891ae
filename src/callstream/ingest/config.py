"""Settings of the ingest gateways (``callstream serve --ingest ...``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from callstream.ingest.call import Shape

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "PROTOCOLS", "IngestConfig"]

PROTOCOLS = ("twilio", "audiohook", "websocket", "audiosocket")
DEFAULT_MAX_MESSAGE_BYTES = {
    "twilio": 64 * 1024,
    "audiohook": 64 * 1024,
    "websocket": 128 * 1024,
}
"""The largest WebSocket message each protocol may send (larger: close 1009), as its core
allows: a Twilio media event is ~0.5 KiB of JSON, an AudioHook frame at most 64 KiB (the
Genesys reference server's limit), a plain-socket frame up to two seconds of 16 kHz stereo
L16. AudioSocket frames are bounded by the core (16 KiB of payload)."""


@dataclass(slots=True)
class IngestConfig:
    """How the gateways take calls and write them.

    Credentials: a protocol whose credential is not configured refuses every connection
    (403), so turning the gateways on exposes nothing by accident. AudioSocket carries no
    credential at all (Asterisk sends none): its port is off unless given, listens on
    loopback by default, and takes connections only from :attr:`audiosocket_allow`.
    """

    shape: Shape = "connect"
    swap_roles: frozenset[str] = frozenset()
    """Sources whose caller and agent are swapped (``--ingest-swap-roles twilio``)."""
    twilio_auth_token: str | None = None
    audiohook_keys: dict[str, str] = field(default_factory=dict)
    """AudioHook API key -> client secret (base64, as Genesys shows it)."""
    token: str | None = None
    """The plain WebSocket's shared token (Bearer, Basic password or ``?token=``)."""
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int | None = None
    """None: no AudioSocket listener; 0: any free port (tests)."""
    audiosocket_allow: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    """Peer addresses an AudioSocket connection is taken from (empty: any)."""
    max_calls: int = 100
    """Concurrent ingest connections over all protocols; more are refused (503 / close)."""
    idle_timeout_s: float = 10.0
    """A connection that sends nothing this long ends its call (not while paused)."""
    max_message_bytes: dict[str, int] = field(
        default_factory=lambda: dict(DEFAULT_MAX_MESSAGE_BYTES)
    )
    stream_prefix: str = "callstream-ingest"
    retention_hours: int = 24
    public_url: str | None = None
    """The base URL peers reach the server at (Twilio signs the URL it connects to);
    default: as the request names it."""
    bound_audiosocket_port: int | None = None
    """Set by the server once the AudioSocket listener is bound (its real port)."""
