"""The web UI's settings (kept free of aiohttp so the server's config can name them)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["UI_PREFIX", "UiConfig", "is_loopback", "login_required"]

UI_PREFIX = "/ui"
"""Where the UI is mounted (``GET /`` redirects to it)."""


@dataclass(frozen=True, slots=True)
class UiConfig:
    """The web UI (``callstream serve --ui on|off --ui-login auto|always``).

    ``login``: ``auto`` asks for the access key and secret whenever the server listens
    beyond loopback (or its ``--public-url`` is not a loopback address); ``always`` asks
    for them on loopback too. ``session_hours``: how long a login lasts."""

    login: Literal["auto", "always"] = "auto"
    session_hours: float = 12.0
    max_login_failures: int = 10  # per client address within ``failure_window_s``
    failure_window_s: float = 300.0


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or a name, brackets allowed) names this machine's
    loopback interface only. ``""``, ``0.0.0.0`` and ``::`` (every interface) are not."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def login_required(
    config: UiConfig,
    *,
    listen_host: str | None,
    public_url: str | None,
    credentials: object | None,
) -> bool:
    """Whether every UI page and endpoint needs a login: with ``login="always"``, or
    when the server listens beyond loopback or is published at a non-loopback URL.
    Without configured credentials the API itself is open, and so is the UI."""
    if credentials is None:
        return False
    if config.login == "always":
        return True
    if not is_loopback(listen_host):
        return True
    return bool(public_url) and not is_loopback(urlsplit(public_url or "").hostname)
