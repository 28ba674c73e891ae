"""What the web UI's handlers share: JSON answers and errors, byte ranges, downloads."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from callstream.api.errors import KvsError

__all__ = ["UiError", "attachment", "error_response", "json_ok", "ranged_response"]


class UiError(Exception):
    """An answer other than 200 for a UI endpoint: ``{"Error": code, "Message": ...}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def from_kvs(cls, err: KvsError) -> UiError:
        return cls(err.status, err.code, err.message)


def json_ok(payload: Any, status: int = 200) -> web.Response:
    """A JSON answer that no cache keeps."""
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def error_response(err: UiError) -> web.Response:
    """The JSON error answer."""
    return json_ok({"Error": err.code, "Message": err.message}, status=err.status)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def attachment(name: str) -> str:
    """A ``Content-Disposition`` value that saves the body as ``name`` (made safe)."""
    safe = _SAFE_NAME.sub("_", name).strip("._") or "download"
    return f'attachment; filename="{safe[:150]}"'


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def ranged_response(
    request: web.Request,
    data: bytes,
    content_type: str,
    *,
    download: str | None = None,
) -> web.Response:
    """``data`` answering one ``Range: bytes=a-b`` (206, or 416 when it starts past the
    end) or whole (200), so that an audio element can seek in it. Several ranges in one
    request are answered whole, as HTTP allows."""
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = attachment(download)
    size = len(data)
    wanted = request.headers.get("Range", "")
    found = _RANGE.fullmatch(wanted.strip()) if wanted else None
    if found is None or (not found.group(1) and not found.group(2)):
        return web.Response(body=data, content_type=content_type, headers=headers)
    first, last = found.group(1), found.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    else:  # the last N bytes
        start = max(0, size - int(last))
        end = size - 1
    if start >= size or end < start:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return web.Response(
        status=206, body=data[start : end + 1], content_type=content_type, headers=headers
    )
