"""``multipart/*`` SIP bodies (RFC 2046 framing, tolerant), sans-I/O.

:func:`parse_multipart` splits a body into :class:`BodyPart` objects and
:func:`parse_content_type` reads a Content-Type or Content-Disposition value. A SIPREC
INVITE carries its SDP offer and its recording metadata this way (RFC 7866). Errors are
:class:`~callstream.voice.errors.SiprecError` with the SIP status to answer with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callstream.voice.errors import SiprecError

__all__ = ["MAX_BODY_BYTES", "BodyPart", "parse_content_type", "parse_multipart"]

MAX_BODY_BYTES = 256 * 1024
"""Largest multipart body :func:`parse_multipart` accepts (SiprecError 413 beyond)."""


@dataclass
class BodyPart:
    """One part of a multipart body. ``content_type`` is the lowercased ``type/subtype``
    (``text/plain`` when the part has none), ``params`` its parameters (lowercased names,
    unquoted values), ``disposition`` the lowercased Content-Disposition type (e.g.
    ``recording-session``), ``headers`` every part header (lowercased names; the last of a
    repeated header), ``body`` the raw content."""

    content_type: str
    params: dict[str, str]
    disposition: str | None
    headers: dict[str, str]
    body: bytes


_TOKEN_PARAM = re.compile(r'\s*;\s*([^=;\s]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;]*))?')


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type (or Content-Disposition) value into the lowercased type and its
    parameters (lowercased names, unquoted values)."""
    head, sep, rest = value.partition(";")
    params: dict[str, str] = {}
    if sep:
        for match in _TOKEN_PARAM.finditer(";" + rest):
            raw = (match.group(2) or "").strip()
            if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            params[match.group(1).lower()] = raw
    return head.strip().lower(), params


def _parse_part(raw: bytes) -> BodyPart:
    # Headers end at the first empty line; a part starting with an empty line has none.
    headers: dict[str, str] = {}
    body = raw
    pos = 0
    last: str | None = None
    while True:
        end = raw.find(b"\n", pos)
        line_bytes = raw[pos:] if end < 0 else raw[pos:end]
        line = line_bytes.rstrip(b"\r").decode("utf-8", "replace")
        next_pos = len(raw) if end < 0 else end + 1
        if not line.strip():
            body = raw[next_pos:]
            break
        if line[0] in " \t" and last is not None:
            headers[last] += " " + line.strip()
        else:
            name, colon, value = line.partition(":")
            if not colon:
                # Not a header: a part without a header block.
                body = raw[pos:]
                break
            last = name.strip().lower()
            headers[last] = value.strip()
        if end < 0:
            body = b""
            break
        pos = next_pos
    content_type, params = parse_content_type(headers.get("content-type", "text/plain"))
    disposition = None
    if "content-disposition" in headers:
        disposition = parse_content_type(headers["content-disposition"])[0] or None
    return BodyPart(content_type, params, disposition, headers, body)


def parse_multipart(content_type: str, body: bytes, *, max_parts: int = 8) -> list[BodyPart]:
    """Split a ``multipart/*`` body into its parts (RFC 2046).

    The boundary comes from the Content-Type parameter (quoted or not). Delimiter lines may
    end in CRLF or LF and carry trailing white space; the preamble and epilogue are ignored;
    a missing closing delimiter is tolerated (the last part runs to the end). Raises
    SiprecError 415 when ``content_type`` is not multipart, 400 without a boundary, without
    any part or with more than ``max_parts`` parts, 413 over :data:`MAX_BODY_BYTES`.
    """
    ctype, params = parse_content_type(content_type)
    if not ctype.startswith("multipart/"):
        raise SiprecError(415, f"expected a multipart body, got {ctype or 'no type'}")
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise SiprecError(400, "multipart Content-Type without a usable boundary parameter")
    if len(body) > MAX_BODY_BYTES:
        raise SiprecError(413, f"body is {len(body)} bytes, over the {MAX_BODY_BYTES} limit")
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    starts: list[tuple[int, int, bool]] = []  # (delimiter line start, content start, closing)
    pos = 0
    while True:
        at = body.find(delimiter, pos)
        if at < 0:
            break
        pos = at + len(delimiter)
        if at > 0 and body[at - 1 : at] != b"\n":
            continue
        line_end = body.find(b"\n", pos)
        rest = body[pos:] if line_end < 0 else body[pos:line_end]
        closing = rest.startswith(b"--")
        if closing:
            rest = rest[2:]
        if rest.strip(b" \t\r"):
            continue  # the boundary text followed by more characters: not a delimiter
        content_start = len(body) if line_end < 0 else line_end + 1
        starts.append((at, content_start, closing))
        if closing:
            break
        if len(starts) > max_parts:
            raise SiprecError(400, f"multipart body has more than {max_parts} parts")
    parts: list[BodyPart] = []
    for n, (_, content_start, closing) in enumerate(starts):
        if closing:
            break
        following = starts[n + 1] if n + 1 < len(starts) else None
        if following is None:
            raw = body[content_start:]
        else:
            end = following[0]
            # The line break before a delimiter belongs to the delimiter.
            if body[end - 1 : end] == b"\n":
                end -= 1
                if body[end - 1 : end] == b"\r":
                    end -= 1
            raw = body[content_start:end]
        parts.append(_parse_part(raw))
    if not parts:
        raise SiprecError(400, f"no body part delimited by boundary {boundary!r}")
    if len(parts) > max_parts:
        raise SiprecError(400, f"multipart body has more than {max_parts} parts")
    return parts
