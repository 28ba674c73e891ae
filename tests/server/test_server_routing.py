"""Routing: the KVS API on exact paths behind SigV4, and sub-applications (the web UI,
websocket ingests) mounted beside it with their own authentication."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from server_helpers import ACCESS_KEY, SECRET_KEY, make_client

from callstream.api.app import ServerConfig
from callstream.api.server import ServerThread


def _ui() -> web.Application:
    @web.middleware
    async def token(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer ui-token":
            raise web.HTTPUnauthorized(text="log in")
        return await handler(request)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "ui"})

    app = web.Application(middlewares=[token])
    app.router.add_get("/hello", hello)
    app.router.add_post("/hello", hello)
    return app


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    config = ServerConfig(credentials={ACCESS_KEY: SECRET_KEY})
    with ServerThread(tmp_path / "data", config=config, subapps={"/ui": _ui()}) as srv:
        yield srv


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, headers=headers or {}, method=method, data=b"" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_sub_application_has_its_own_authentication(server: ServerThread) -> None:
    assert _get(server.url + "/ui/hello")[0] == 401  # its rule, not SigV4's 403
    status, body = _get(server.url + "/ui/hello", {"Authorization": "Bearer ui-token"})
    assert (status, json.loads(body)) == (200, {"hello": "ui"})
    status, _ = _get(server.url + "/ui/hello", {"Authorization": "Bearer ui-token"}, "POST")
    assert status == 200


def test_the_kvs_api_still_requires_sigv4_and_exact_paths(server: ServerThread) -> None:
    status, body = _get(server.url + "/listStreams", method="POST")
    assert status == 403 and json.loads(body)["__type"] == "MissingAuthenticationTokenException"
    kv = make_client(server.url, "kinesisvideo")
    assert kv.list_streams()["StreamInfoList"] == []
    # An unknown operation is answered in the KVS error shape, once authenticated.
    from botocore.credentials import Credentials

    from callstream.cli import signed_request

    status, body = signed_request(
        "POST",
        server.url + "/listStreamz",
        region="us-east-1",
        body=b"{}",
        credentials=Credentials(ACCESS_KEY, SECRET_KEY),
    )
    assert status == 404 and json.loads(body)["__type"] == "UnknownOperationException"
