"""The web UI as an aiohttp sub-application, mounted by the server under ``/ui``.

Pages (plain JavaScript modules and CSS from ``static/``; routing inside the page is by
``#/calls``, ``#/calls/<id>``, ``#/streams``, ``#/streams/<name>``):

* ``GET /ui/`` -- the single page; ``GET /ui/login`` and ``POST /ui/login`` -- the login
  form; ``POST /ui/logout``; ``GET /ui/static/<file>`` -- scripts and styles.
* ``GET /ui/api/...`` -- the UI's JSON, audio and server-sent events
  (:mod:`callstream.web.calls`, :mod:`callstream.web.streams`, :mod:`callstream.web.live`),
  plus ``GET /ui/api/session`` (who is signed in, the CSRF token).

Access (:mod:`callstream.web.auth`): when a login is required (the server listens
beyond loopback, or ``UiConfig.login == "always"``), every page, script and endpoint but
the login form and its stylesheet needs the session cookie: a page asked for without it
redirects to the login form, anything else answers 401 with no data. On loopback
without a login, requests must still name a loopback host (``Host: 127.0.0.1:8080``,
``localhost``), so a page elsewhere cannot reach the UI through DNS rebinding. Every
answer carries a strict Content-Security-Policy (no inline scripts or styles, no
framing), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from callstream.api.app import ServerState
from callstream.api.errors import KvsError
from callstream.store.base import StoreError
from callstream.web import calls, live, streams
from callstream.web.auth import (
    CSRF_HEADER,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    FailureLimiter,
    Session,
    Sessions,
    check_secret,
    same_token,
)
from callstream.web.config import UI_PREFIX, UiConfig, is_loopback, login_required
from callstream.web.http import UiError, error_response, json_ok
from callstream.web.streams import AUDIO_CACHE, _AudioCache

__all__ = ["STATIC_DIR", "UI_PREFIX", "WebUi", "build_web_app"]

log = logging.getLogger("callstream.web")

STATIC_DIR = Path(__file__).with_name("static")
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
PUBLIC_ASSETS = frozenset({"app.css", "favicon.svg"})
"""What the login page needs; everything else needs a session when a login is required."""
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; font-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
SESSION = web.RequestKey("callstream.web.session", object)

UiHandler = Callable[[web.Request, ServerState], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class WebUi:
    """What the UI's handlers share: the server state, the login rules and sessions."""

    state: ServerState
    config: UiConfig
    required: bool
    sessions: Sessions
    limiter: FailureLimiter

    def session(self, request: web.Request) -> Session | None:
        """The request's valid session, if any (checked once per request)."""
        if SESSION not in request:
            request[SESSION] = self.sessions.verify(request.cookies.get(SESSION_COOKIE))
        found = request[SESSION]
        return found if isinstance(found, Session) else None

    def needs_login(self, request: web.Request) -> bool:
        """Whether this request may see the UI only with a session."""
        if self.state.config.credentials is None:
            return False
        if self.required:
            return True
        return not is_loopback(_host_name(request.host))

    def allowed(self, request: web.Request) -> bool:
        return not self.needs_login(request) or self.session(request) is not None


UI = web.AppKey("callstream.web.ui", WebUi)


def _host_name(host: str) -> str:
    """The name in a ``Host`` header (without the port)."""
    return urlsplit(f"//{host}").hostname or ""


def _same_origin(request: web.Request) -> bool:
    """A POST from this UI: no ``Origin`` (older browsers, same-origin forms) or one
    naming this very host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def _public(request: web.Request) -> bool:
    path = request.path
    if path == f"{UI_PREFIX}/login":
        return True
    prefix = f"{UI_PREFIX}/static/"
    return path.startswith(prefix) and path[len(prefix) :] in PUBLIC_ASSETS


def _safe_next(value: str | None) -> str:
    """A place inside the UI to go after logging in (never another site)."""
    if not value or not value.startswith(f"{UI_PREFIX}/") or value.startswith("//"):
        return f"{UI_PREFIX}/"
    if "\\" in value or any(ord(c) < 0x20 for c in value):
        return f"{UI_PREFIX}/"
    return value


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _unauthenticated(request: web.Request) -> web.StreamResponse:
    if request.path.startswith(f"{UI_PREFIX}/api/"):
        return error_response(UiError(401, "NotAuthorized", "Sign in to the callstream UI."))
    if request.method in ("GET", "HEAD") and not request.path.startswith(f"{UI_PREFIX}/static/"):
        return _see_other(f"{UI_PREFIX}/login?next={quote(request.path_qs, safe='')}")
    return web.Response(status=401, text="Sign in to the callstream UI.\n")


@web.middleware
async def ui_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Access rules first, then the handler; errors become JSON answers."""
    ui = request.app[UI]
    if request.path == UI_PREFIX:
        return _see_other(f"{UI_PREFIX}/")
    if not _public(request) and not ui.allowed(request):
        return _unauthenticated(request)
    try:
        return await handler(request)
    except UiError as err:
        return error_response(err)
    except KvsError as err:
        return error_response(UiError.from_kvs(err))
    except StoreError as err:
        return error_response(UiError(400, err.code, err.message))


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _bind(
    handler: UiHandler, state: ServerState
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def bound(request: web.Request) -> web.StreamResponse:
        return await handler(request, state)

    return bound


# --- pages ---------------------------------------------------------------------------------
def _static_file(name: str) -> Path:
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound(text="No such file.\n")
    return path


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        _static_file("index.html"),
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"},
    )


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = _static_file(name)
    kind = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
    if kind.startswith("text/"):
        kind += "; charset=utf-8"
    return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": "no-cache"})


def _cookie_options(request: web.Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "Strict",
        "secure": request.secure,
        "path": f"{UI_PREFIX}/",
    }


def _login_page(
    request: web.Request, *, error: str = "", status: int = 200, next_url: str | None = None
) -> web.Response:
    import secrets

    token = secrets.token_urlsafe(24)
    template = (STATIC_DIR / "login.html").read_text(encoding="utf-8")
    page = (
        template.replace("{{csrf}}", html.escape(token))
        .replace("{{next}}", html.escape(_safe_next(next_url or request.query.get("next"))))
        .replace("{{error}}", html.escape(error))
        .replace("{{error_class}}", "error" if error else "error hidden")
    )
    response = web.Response(
        status=status,
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **_cookie_options(request))
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    """Check the access key and secret; set the session cookie and go on."""
    ui = request.app[UI]
    client = request.remote or "?"
    form = await request.post()
    next_url = _safe_next(str(form.get("next") or ""))
    csrf_ok = same_token(str(form.get("csrf") or ""), request.cookies.get(LOGIN_CSRF_COOKIE))
    if not _same_origin(request) or not csrf_ok:
        return _login_page(
            request,
            error="The form expired; please sign in again.",
            status=403,
            next_url=next_url,
        )
    wait = ui.limiter.blocked(client)
    if wait > 0:
        response = _login_page(
            request,
            error=f"Too many failed sign-ins; try again in {int(wait) + 1} s.",
            status=429,
            next_url=next_url,
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    access_key = str(form.get("access_key") or "").strip()
    secret = str(form.get("secret") or "")
    creds = ui.state.config.credentials
    if creds is None or not access_key or not check_secret(creds, access_key, secret):
        ui.limiter.failed(client)
        log.info("UI sign-in refused for %r from %s", access_key[:64], client)
        return _login_page(
            request,
            error="Wrong access key or secret.",
            status=401,
            next_url=next_url,
        )
    ui.limiter.succeeded(client)
    cookie, _ = ui.sessions.issue(access_key)
    response = _see_other(next_url)
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=int(ui.sessions.lifetime_s), **_cookie_options(request)
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path=f"{UI_PREFIX}/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session (CSRF-checked); back to the login form."""
    ui = request.app[UI]
    session = ui.session(request)
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type == "application/x-www-form-urlencoded":
        token = str((await request.post()).get("csrf") or "")
    if session is None or not _same_origin(request) or not same_token(token, session.csrf):
        raise UiError(403, "InvalidCsrfToken", "The CSRF token is missing or wrong.")
    response = json_ok({"SignedOut": True, "Location": f"{UI_PREFIX}/login"})
    response.del_cookie(SESSION_COOKIE, path=f"{UI_PREFIX}/")
    return response


async def session_info(request: web.Request) -> web.StreamResponse:
    ui = request.app[UI]
    session = ui.session(request)
    return json_ok(
        {
            "LoginRequired": ui.needs_login(request),
            "SignedIn": session is not None,
            "AccessKey": session.access_key if session else None,
            "Expires": session.expires if session else None,
            "Csrf": session.csrf if session else None,
            "Analytics": ui.state.analytics is not None,
        }
    )


def build_web_app(state: ServerState, *, listen_host: str | None) -> web.Application:
    """The UI sub-application for a server listening on ``listen_host``."""
    config = state.config.ui if state.config.ui is not None else UiConfig()
    data_dir = state.data_dir
    ui = WebUi(
        state=state,
        config=config,
        required=login_required(
            config,
            listen_host=listen_host,
            public_url=state.config.public_url,
            credentials=state.config.credentials,
        ),
        sessions=Sessions(
            data_dir / "web" / "session.key",
            lambda: state.config.credentials,
            lifetime_s=config.session_hours * 3600,
        ),
        limiter=FailureLimiter(config.max_login_failures, config.failure_window_s),
    )
    app = web.Application(middlewares=[ui_middleware], client_max_size=64 * 1024)
    app[UI] = ui
    app[AUDIO_CACHE] = _AudioCache()
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/session", session_info)
    for path, handler in (*calls.ROUTES, *streams.ROUTES, *live.ROUTES):
        app.router.add_get(path, _bind(handler, state))
    return app
