"""Webhooks: call events delivered as HTTP POSTs, in order, at least once.

A :class:`Webhook` is a URL, an optional filter (AWS ``detail-type`` and / or callstream
event types), a body format and an optional secret. :class:`WebhookRunner` is one
webhook's subscriber on the :class:`~callstream.events.bus.EventBus`:

* Each event it selects is POSTed as one JSON object: by default the EventBridge event
  (:func:`~callstream.events.types.to_eventbridge`: ``{"version": "0", "id",
  "detail-type", "source", "account", "time", "region", "resources", "detail"}``), exactly
  what an EventBridge rule would hand on for the events AWS emits (Chime streaming status,
  Connect contact events). Events AWS has no counterpart for come in the same envelope
  with ``"source": "callstream"`` and their type name as ``detail-type``, so a receiver
  tells them apart as it would on EventBridge. ``format="callstream"`` sends callstream's
  own wire form (``{"Cursor", "EventType", "Time", ...}``) instead.
* With a secret, ``X-Callstream-Signature: sha256=<hex>`` carries the HMAC-SHA256 of the
  body (as GitHub and Stripe sign theirs); ``X-Callstream-Cursor`` and
  ``X-Callstream-Event-Type`` name the event (the cursor lets a receiver drop the
  duplicates at-least-once delivery may bring after a crash).
* A 2xx answer acknowledges the event. Connection errors, timeouts, 408, 429 and 5xx are
  retried with capped exponential backoff and jitter (:class:`Backoff`; a ``Retry-After``
  is honoured up to the cap), the same event until it goes through, so order holds. Any
  other answer (a 4xx, a redirect) rejects the event: it is logged and skipped.
* The runner's cursor is kept in ``<directory>/<key>.json`` (written after each event),
  so a restart resumes after the last acknowledged event. A webhook seen for the first
  time starts with the events published from then on; if the journal was created anew
  since, it starts from the new journal's oldest event.
* It reads the bus like any subscriber: publishing never waits for it, and a receiver
  that is down for hours costs a cursor, not memory (the bus re-feeds a subscriber that
  fell behind from the journal).
* One log line per change of state: ``failing`` (with the error) when a delivery first
  fails, ``recovered`` when one goes through again; counters on the runner.

:func:`load_webhooks` builds webhooks from ``callstream serve --webhook URL`` flags and a
``--webhooks-file`` JSON file; :class:`Webhooks` runs them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from callstream import __version__
from callstream.durable import replace_file
from callstream.events.bus import EventBus, Subscription
from callstream.events.types import (
    EVENT_TYPES,
    Event,
    EventFilter,
    detail_type,
    encode,
    to_eventbridge,
    types_with_detail_type,
)

__all__ = [
    "SIGNATURE_HEADER",
    "Backoff",
    "Webhook",
    "WebhookConfigError",
    "WebhookRunner",
    "Webhooks",
    "load_webhooks",
    "parse_webhook",
    "selected_types",
    "sign",
    "type_filter",
]

log = logging.getLogger("callstream.webhooks")

Format = Literal["eventbridge", "callstream"]
FORMATS: tuple[Format, ...] = ("eventbridge", "callstream")

SIGNATURE_HEADER = "X-Callstream-Signature"
SECRET_ENV = "CALLSTREAM_WEBHOOK_SECRET"
"""The environment variable whose value signs the deliveries of ``--webhook`` URLs."""
IDLE_SAVE_S = 5.0
"""After this long without a selected event, the cursor moves past the filtered-out ones."""
_MAX_ERROR_BODY = 512


class WebhookConfigError(ValueError):
    """A webhook flag or file entry that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between attempts at one event: ``min_s`` doubling per failed attempt up to
    ``max_s``, each drawn at random from its upper half (jitter)."""

    min_s: float = 0.5
    max_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...); a
        receiver's ``Retry-After`` lengthens it, never beyond ``max_s``."""
        ceiling = min(self.max_s, self.min_s * 2.0 ** min(attempt - 1, 62))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_s))
        return wait


@dataclass(frozen=True, slots=True)
class Webhook:
    """One webhook: where to POST, which events, in what form, signed with what."""

    url: str
    detail_types: tuple[str, ...] = ()
    """Only events whose EventBridge ``detail-type`` is one of these (empty: any)."""
    event_types: tuple[str, ...] = ()
    """Only events of these callstream types (empty: any); both filters must pass."""
    format: Format = "eventbridge"
    secret: bytes | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Extra request headers (an ``Authorization`` the receiver wants)."""
    timeout_s: float = 10.0
    """One attempt (connect, send, answer) must finish within this."""
    name: str = ""
    """Names the webhook's saved cursor; empty: derived from the URL and the filter."""
    backoff: Backoff = Backoff()

    @property
    def types(self) -> frozenset[str] | None:
        """The event types the filters select (None: every type; empty: none)."""
        return selected_types(self.detail_types, self.event_types)

    @property
    def filter(self) -> EventFilter:
        """The bus filter of this webhook."""
        return type_filter(self.types)

    @property
    def key(self) -> str:
        """The file name (without ``.json``) of this webhook's saved cursor."""
        if self.name:
            return self.name
        identity = json.dumps(
            [self.url, sorted(self.detail_types), sorted(self.event_types), self.format]
        )
        return "webhook-" + hashlib.sha256(identity.encode()).hexdigest()[:16]

    @property
    def display(self) -> str:
        """The URL for log lines: without credentials or query (they may hold secrets)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        label = f"{parts.scheme}://{host}{port}{parts.path}"
        return f"{self.name} ({label})" if self.name else label


def selected_types(
    detail_types: Iterable[str] = (), event_types: Iterable[str] = ()
) -> frozenset[str] | None:
    """The event types with one of ``detail_types`` (EventBridge ``detail-type``) that are
    among ``event_types``; an empty filter passes every type (None)."""
    selected: set[str] | None = None
    details = list(detail_types)
    if details:
        selected = set()
        for name in details:
            selected |= types_with_detail_type(name)
    chosen = set(event_types)
    if chosen:
        selected = chosen if selected is None else selected & chosen
    return None if selected is None else frozenset(selected)


def type_filter(types: frozenset[str] | None, **fields: Any) -> EventFilter:
    """An :class:`EventFilter` of ``types`` (None: any type; empty: no event at all)."""
    if types is not None and not types:
        types = frozenset({""})  # no event has an empty type name
    return EventFilter.where(types or (), **fields)


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


# --- configuration -----------------------------------------------------------------------


def _check_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookConfigError(f"{where}: {url!r} is not an http(s) URL")
    try:
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        raise WebhookConfigError(f"{where}: {url!r} has an invalid port") from None
    return url


def _check_filters(detail_types: Sequence[str], event_types: Sequence[str], where: str) -> None:
    known_details = sorted({detail_type(s) for s in EVENT_TYPES.values()})
    for name in detail_types:
        if not types_with_detail_type(name):
            raise WebhookConfigError(
                f"{where}: detail-type {name!r} is no event's (known: {', '.join(known_details)})"
            )
    for name in event_types:
        if name not in EVENT_TYPES:
            known = ", ".join(sorted(EVENT_TYPES))
            raise WebhookConfigError(f"{where}: type {name!r} is no event type (known: {known})")
    if detail_types and event_types and not selected_types(detail_types, event_types):
        raise WebhookConfigError(f"{where}: no event type has both that detail-type and type")


def _names(value: object, where: str) -> list[str]:
    """A filter value: a string (comma-separated for types) or a list of strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise WebhookConfigError(f"{where}: expected a string or a list of strings")
    return [v.strip() for v in items if v.strip()]


def _format(value: object, where: str) -> Format:
    for name in FORMATS:
        if value == name:
            return name
    raise WebhookConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, got {value!r}")


def _timeout(value: object, where: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise WebhookConfigError(f"{where}: timeout must be seconds in (0, 3600], got {value!r}")
    return seconds


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 100:
        raise WebhookConfigError(f"{where}: name must be a non-empty string")
    if not all(c.isalnum() or c in "-_." for c in value) or value.startswith("."):
        raise WebhookConfigError(f"{where}: name {value!r} may hold only letters, digits, - _ .")
    return value


def parse_webhook(spec: str, *, secret: str | None = None, where: str = "--webhook") -> Webhook:
    """A webhook from ``URL[#detail-type=D&type=T1,T2&format=F&name=N&timeout=S]``: the
    fragment (which an HTTP client never sends) carries the options; ``detail-type`` and
    ``type`` may repeat. Raises :class:`WebhookConfigError`."""
    url, _, fragment = spec.partition("#")
    _check_url(url, where)
    detail_types: list[str] = []
    event_types: list[str] = []
    fmt: Format = "eventbridge"
    timeout = 10.0
    name = ""
    for key, value in parse_qsl(fragment, keep_blank_values=True):
        if key == "detail-type":
            detail_types.extend(_names(value, where))
        elif key == "type":
            event_types.extend(_names(value.split(","), where))
        elif key == "format":
            fmt = _format(value, where)
        elif key == "timeout":
            timeout = _timeout(value, where)
        elif key == "name":
            name = _name(value, where)
        else:
            raise WebhookConfigError(
                f"{where}: unknown option {key!r} after '#' "
                "(detail-type, type, format, timeout, name)"
            )
    _check_filters(detail_types, event_types, where)
    return Webhook(
        url,
        tuple(detail_types),
        tuple(event_types),
        fmt,
        secret.encode() if secret else None,
        timeout_s=timeout,
        name=name,
    )


_FILE_KEYS = ("url", "detail-type", "type", "format", "secret", "headers", "timeout", "name")


def _from_entry(entry: object, where: str) -> Webhook:
    if not isinstance(entry, dict):
        raise WebhookConfigError(f"{where}: a webhook must be a JSON object")
    for key in entry:
        if key not in _FILE_KEYS:
            raise WebhookConfigError(f"{where}: unknown key {key!r} ({', '.join(_FILE_KEYS)})")
    url = entry.get("url")
    if not isinstance(url, str):
        raise WebhookConfigError(f"{where}.url: required, a string")
    _check_url(url, f"{where}.url")
    if "#" in url:
        raise WebhookConfigError(f"{where}.url: give options as keys, not after '#'")
    detail_types = _names(entry.get("detail-type", []), f"{where}.detail-type")
    event_types = [
        part.strip()
        for value in _names(entry.get("type", []), f"{where}.type")
        for part in value.split(",")
        if part.strip()
    ]
    _check_filters(detail_types, event_types, where)
    secret = entry.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise WebhookConfigError(f"{where}.secret: expected a non-empty string")
    headers = entry.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k.strip() and "\n" not in k + v
        for k, v in headers.items()
    ):
        raise WebhookConfigError(f"{where}.headers: expected an object of header strings")
    return Webhook(
        url,
        tuple(detail_types),
        tuple(event_types),
        _format(entry.get("format", "eventbridge"), f"{where}.format"),
        secret.encode() if secret else None,
        dict(headers),
        _timeout(entry.get("timeout", 10.0), f"{where}.timeout"),
        _name(entry["name"], f"{where}.name") if "name" in entry else "",
    )


def load_webhooks(
    specs: Iterable[str] = (), path: Path | None = None, *, secret: str | None = None
) -> list[Webhook]:
    """Webhooks from ``--webhook`` specs (each signed with ``secret`` when given) and the
    JSON file at ``path``: ``{"webhooks": [{"url": ..., "detail-type": ..., "type": ...,
    "format": ..., "secret": ..., "headers": {...}, "timeout": s, "name": ...}]}``. Two
    webhooks that would share a saved cursor are refused. Raises
    :class:`WebhookConfigError`."""
    hooks = [parse_webhook(spec, secret=secret) for spec in specs]
    if path is not None:
        where = f"--webhooks-file {path}"
        try:
            data = json.loads(Path(path).read_text())
        except OSError as err:
            raise WebhookConfigError(f"{where}: {err.strerror}") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise WebhookConfigError(f"{where}: not JSON ({err})") from None
        entries = data.get("webhooks") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise WebhookConfigError(f'{where}: expected {{"webhooks": [...]}}')
        hooks.extend(_from_entry(e, f"{where}: webhooks[{i}]") for i, e in enumerate(entries))
    seen: dict[str, Webhook] = {}
    for hook in hooks:
        if hook.key in seen:
            raise WebhookConfigError(
                f"webhook {hook.display} is configured twice (give each a different name)"
            )
        seen[hook.key] = hook
    return hooks


# --- delivery ----------------------------------------------------------------------------


def _save_cursor(path: Path, url: str, journal_id: str, cursor: int) -> None:
    data = json.dumps({"Url": url, "JournalId": journal_id, "Cursor": cursor}).encode()
    replace_file(path, data, mode=0o600)


def _load_cursor(path: Path, journal_id: str) -> int | None:
    """The saved cursor (0 when it belongs to another journal), None if none is saved."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.error("webhook cursor %s unreadable (%s): starting with new events", path, err)
        return None
    cursor = data.get("Cursor") if isinstance(data, dict) else None
    if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
        log.error("webhook cursor %s holds no cursor: starting with new events", path)
        return None
    return cursor if data.get("JournalId") == journal_id else 0


@dataclass(slots=True)
class _Attempt:
    ok: bool = False
    retry: bool = False
    detail: str = ""
    retry_after: float | None = None


class WebhookRunner:
    """Delivers one webhook's events (see the module docstring). Run :meth:`run` on the
    bus's loop; it returns when its subscription ends (between two attempts when the
    receiver is failing; cancel it to stop at once): an event not yet acknowledged is
    sent again next time."""

    def __init__(
        self,
        bus: EventBus,
        webhook: Webhook,
        directory: Path,
        *,
        account: str = "123456789012",
        region: str = "us-east-1",
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.bus = bus
        self.webhook = webhook
        self.path = Path(directory) / f"{webhook.key}.json"
        self.account = account
        self.region = region
        self._session = session
        self.state: Literal["up", "failing"] = "up"
        self.cursor = 0
        """The last event acknowledged (or rejected) and saved."""
        self.delivered = 0
        self.rejected = 0
        self.retries = 0
        self.last_error = ""
        self._attempts = 0

    def position(self) -> int:
        """Where the webhook resumes (blocking: reads, and first time writes, its file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        cursor = _load_cursor(self.path, self.bus.journal_id)
        if cursor is None:  # new: from the events published from now on
            cursor = self.bus.last_cursor
            _save_cursor(self.path, self.webhook.url, self.bus.journal_id, cursor)
        return cursor

    async def run(self, start: int | None = None) -> None:
        """Deliver events until the subscription ends, from ``start`` (default: the saved
        cursor)."""
        if start is None:
            start = await asyncio.to_thread(self.position)
        self.cursor = start
        session = self._session
        owned = session is None
        if session is None:
            session = aiohttp.ClientSession()
        try:
            # in a cluster each node delivers the events published on it: configured on
            # every node, a webhook gets every event once
            local = replace(self.webhook.filter, local=True)
            async with self.bus.subscribe(local, start) as subscription:
                await self._pump(session, subscription)
        finally:
            if owned:
                await session.close()

    async def _pump(self, session: aiohttp.ClientSession, subscription: Subscription) -> None:
        while True:
            event = await subscription.next(IDLE_SAVE_S)
            if event is None:
                # idle (or ended): every event up to here was delivered or filtered out
                if subscription.cursor > self.cursor:
                    await self._save(subscription.cursor)
                if subscription.ended:
                    return
                continue
            outcome = await self._deliver(session, event, subscription)
            if outcome is None:  # stopped while retrying: sent again next time
                return
            if outcome:
                self.delivered += 1
            else:
                self.rejected += 1
            await self._save(event.cursor)

    async def _save(self, cursor: int) -> None:
        await asyncio.to_thread(
            _save_cursor, self.path, self.webhook.url, self.bus.journal_id, cursor
        )
        self.cursor = cursor

    def body(self, event: Event) -> bytes:
        """The request body for ``event`` in the webhook's format."""
        if self.webhook.format == "callstream":
            return encode(event)
        envelope = to_eventbridge(
            event, account=self.account, region=self.region, node=self.bus.node
        )
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()

    def headers(self, event: Event, body: bytes) -> dict[str, str]:
        """The request headers for ``event`` (the webhook's own first)."""
        headers = dict(self.webhook.headers)
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = f"callstream-webhook/{__version__}"
        headers["X-Callstream-Cursor"] = str(event.cursor)
        headers["X-Callstream-Event-Type"] = event.type
        if self.webhook.secret:
            headers[SIGNATURE_HEADER] = sign(self.webhook.secret, body)
        return headers

    async def _deliver(
        self, session: aiohttp.ClientSession, event: Event, subscription: Subscription
    ) -> bool | None:
        """POST ``event`` until it is acknowledged (True) or rejected (False); None when
        the subscription ended (the bus is closing) before either."""
        body = self.body(event)
        headers = self.headers(event, body)
        attempt = 0
        while True:
            result = await self._post(session, body, headers)
            if not result.retry:
                self._recovered(event)
                if not result.ok:
                    log.warning(
                        "webhook %s: %s at cursor %d rejected (%s); skipped",
                        self.webhook.display,
                        event.type,
                        event.cursor,
                        result.detail,
                    )
                return result.ok
            attempt += 1
            self.retries += 1
            self.last_error = result.detail
            if self.state == "up":
                self.state = "failing"
                self._attempts = 0
                log.warning(
                    "webhook %s: failing at cursor %d: %s (retrying with backoff)",
                    self.webhook.display,
                    event.cursor,
                    result.detail,
                )
            self._attempts += 1
            if subscription.ended:
                return None
            await asyncio.sleep(self.webhook.backoff.delay(attempt, result.retry_after))
            if subscription.ended:
                return None

    def _recovered(self, event: Event) -> None:
        if self.state == "failing":
            self.state = "up"
            log.warning(
                "webhook %s: recovered at cursor %d after %d failed attempts",
                self.webhook.display,
                event.cursor,
                self._attempts,
            )

    async def _post(
        self, session: aiohttp.ClientSession, body: bytes, headers: Mapping[str, str]
    ) -> _Attempt:
        timeout = aiohttp.ClientTimeout(total=self.webhook.timeout_s)
        try:
            async with session.post(
                self.webhook.url,
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                if 200 <= status < 300:
                    await resp.read()  # keeps the connection reusable
                    return _Attempt(ok=True)
                text = (await resp.content.read(_MAX_ERROR_BODY)).decode("utf-8", "replace")
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            return _Attempt(retry=True, detail=f"no answer within {self.webhook.timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as err:
            return _Attempt(retry=True, detail=f"{type(err).__name__}: {err}")
        detail = f"HTTP {status}" + (f": {text.strip()[:200]}" if text.strip() else "")
        retry = status >= 500 or status in (408, 429)
        return _Attempt(retry=retry, detail=detail, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: the backoff decides
    return seconds if seconds >= 0 else None


class Webhooks:
    """Every configured webhook, each on its own task (on the bus's loop) with one shared
    HTTP client. Their cursors live in ``directory``."""

    def __init__(
        self,
        bus: EventBus,
        webhooks: Sequence[Webhook],
        directory: Path,
        *,
        account: str = "123456789012",
        region: str = "us-east-1",
    ) -> None:
        self.bus = bus
        self.webhooks = list(webhooks)
        self.directory = Path(directory)
        self.account = account
        self.region = region
        self.runners: list[WebhookRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Read each webhook's cursor and start delivering (call on the bus's loop)."""
        if not self.webhooks:
            return
        self.bus.bind()
        self._session = aiohttp.ClientSession()
        for hook in self.webhooks:
            runner = WebhookRunner(
                self.bus,
                hook,
                self.directory,
                account=self.account,
                region=self.region,
                session=self._session,
            )
            start = await asyncio.to_thread(runner.position)
            self.runners.append(runner)
            self._tasks.append(
                asyncio.create_task(self._supervise(runner, start), name=f"webhook-{hook.key}")
            )
        log.info("%d webhook(s) delivering call events", len(self.runners))

    async def _supervise(self, runner: WebhookRunner, start: int) -> None:
        while True:
            try:
                await runner.run(start)
                return
            except Exception:  # a bug or a disk error: keep the webhook alive
                log.exception("webhook %s stopped; restarting it", runner.webhook.display)
                await asyncio.sleep(runner.webhook.backoff.max_s)
                start = runner.cursor

    async def stop(self) -> None:
        """Stop every webhook now (an event in flight is sent again after a restart)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
