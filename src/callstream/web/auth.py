"""Logins for the web UI: the API's access keys, signed session cookies, CSRF tokens.

* A login checks an access key and its secret against the server's credentials (the
  same ones SigV4 uses) in constant time, and sets a session cookie: ``v1.<payload>.<mac>``
  where the payload (base64url JSON) holds the access key, the expiry, a random nonce and
  a fingerprint of the key's secret, and the MAC is HMAC-SHA256 under a per-server secret
  kept in ``<data dir>/web/session.key`` (created on first use, mode 0600). Removing the
  key or changing its secret ends its sessions; deleting the file ends all of them.
* The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui``, ``Secure`` over https,
  and expires with the session.
* State-changing requests carry a CSRF token: signed-in, ``HMAC(secret, "csrf" + nonce)``
  in the ``X-CSRF-Token`` header or a ``csrf`` form field; the login form, before any
  session exists, a random token both in a cookie and in the form (double submit). A
  POST whose ``Origin`` names another site is refused either way.
* Failed logins are counted per client address; past the limit the address waits for
  the window to pass (429).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from callstream.durable import replace_file

__all__ = [
    "CSRF_HEADER",
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "FailureLimiter",
    "Session",
    "Sessions",
    "check_secret",
    "same_token",
]

SESSION_COOKIE = "callstream_session"
LOGIN_CSRF_COOKIE = "callstream_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
_VERSION = "v1"
_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who, until when (epoch seconds), and its CSRF token."""

    access_key: str
    expires: int
    nonce: str
    csrf: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens (False when either is missing)."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def check_secret(credentials: Mapping[str, str], access_key: str, secret: str) -> bool:
    """Whether ``secret`` is ``access_key``'s; the comparison takes the same time whether
    or not the key exists."""
    expected = credentials.get(access_key)
    candidate = expected if expected is not None else secrets.token_hex(16)
    match = hmac.compare_digest(
        hashlib.sha256(secret.encode("utf-8", "replace")).digest(),
        hashlib.sha256(candidate.encode("utf-8", "replace")).digest(),
    )
    return match and expected is not None


class Sessions:
    """Issues and checks session cookies (see the module docstring). ``credentials``
    returns the server's current access keys (None: no authentication)."""

    def __init__(
        self,
        key_file: Path,
        credentials: Callable[[], Mapping[str, str] | None],
        *,
        lifetime_s: float,
    ) -> None:
        self.key_file = Path(key_file)
        self.credentials = credentials
        self.lifetime_s = lifetime_s
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        """The per-server signing secret (read, or created on first use)."""
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = _load_or_create_key(self.key_file)
        return self._key

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self.key(), "\0".join(parts).encode("utf-8"), hashlib.sha256).digest()

    def _fingerprint(self, access_key: str, secret: str) -> str:
        return _b64(self._mac("fingerprint", access_key, secret)[:12])

    def csrf_for(self, nonce: str) -> str:
        """The CSRF token of the session with ``nonce``."""
        return _b64(self._mac("csrf", nonce)[:24])

    def issue(self, access_key: str, now: float | None = None) -> tuple[str, Session]:
        """A cookie value for a login of ``access_key`` (whose secret was checked)."""
        creds = self.credentials() or {}
        nonce = secrets.token_urlsafe(16)
        expires = int((now if now is not None else time.time()) + self.lifetime_s)
        payload = {
            "k": access_key,
            "e": expires,
            "n": nonce,
            "f": self._fingerprint(access_key, creds.get(access_key, "")),
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        mac = _b64(self._mac(_VERSION, body))
        return f"{_VERSION}.{body}.{mac}", Session(access_key, expires, nonce, self.csrf_for(nonce))

    def verify(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie value carries, or None when it is missing, forged,
        expired, or its key was removed or given a new secret."""
        if not cookie or len(cookie) > 4096:
            return None
        version, _, rest = cookie.partition(".")
        body, _, mac = rest.partition(".")
        if version != _VERSION or not body or not mac:
            return None
        if not same_token(mac, _b64(self._mac(_VERSION, body))):
            return None
        try:
            payload = json.loads(_unb64(body))
            access_key, expires, nonce, fingerprint = (
                payload["k"],
                payload["e"],
                payload["n"],
                payload["f"],
            )
        except (ValueError, KeyError, TypeError):
            return None
        if not all(isinstance(x, str) for x in (access_key, nonce, fingerprint)):
            return None
        if not isinstance(expires, int) or expires <= (now if now is not None else time.time()):
            return None
        creds = self.credentials()
        if creds is None or access_key not in creds:
            return None
        if not same_token(fingerprint, self._fingerprint(access_key, creds[access_key])):
            return None
        return Session(access_key, expires, nonce, self.csrf_for(nonce))


def _load_or_create_key(path: Path) -> bytes:
    """The secret in ``path``; a new random one written there (0600) if absent or bad."""
    with contextlib.suppress(FileNotFoundError):
        data = path.read_bytes()
        if len(data) >= _KEY_BYTES:
            return data[:_KEY_BYTES]
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(_KEY_BYTES)
    replace_file(path, key, mode=0o600)
    return key


class FailureLimiter:
    """Failed logins per client address within a sliding window (bounded memory)."""

    def __init__(self, limit: int, window_s: float, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(client, ()) if now - t < self.window_s]
        if times:
            self._failures[client] = times
        else:
            self._failures.pop(client, None)
        return times

    def blocked(self, client: str, now: float | None = None) -> float:
        """Seconds ``client`` must wait before trying again (0: may try now)."""
        now = time.monotonic() if now is None else now
        times = self._recent(client, now)
        if len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window_s - now)

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._recent(client, now)
        times.append(now)
        self._failures[client] = times
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
