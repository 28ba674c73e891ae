"""Archived media of the ``kinesis-video-archived-media`` service (kvs-wire §3).

* **ListFragments** — fragments whose *start* timestamp (producer or server) lies in an
  inclusive range, in fragment-number order, ``MaxResults`` per page with an opaque
  base64 ``NextToken``.
* **GetMediaForFragmentList** — the same per-fragment MKV documents as GetMedia, without
  the MILLIS_BEHIND_NOW / CONTINUATION_TOKEN end tags (``video/webm``, chunked).
* **GetClip** — callstream's clips are **WAV files** (``audio/wav``, 16-bit PCM): the
  audio of the fragments that start in the range (the first 200 fragments / 100 MB, like
  KVS), decoded and laid on a true timeline (gaps become silence). Channels: Connect
  streams give stereo (left ``AUDIO_FROM_CUSTOMER``, right ``AUDIO_TO_CUSTOMER``, found by
  track name); other streams one channel per audio track in track-number order. Decoded:
  ``A_PCM/INT/LIT`` / ``A_PCM/INT/BIG`` 16-bit, ``A_MS/ACM`` (WAVEFORMATEX PCM16, A-law,
  µ-law) and Connect's ``A_AAC``-labelled L16 (by its ``MimeType`` tag or its ``11 90``
  CodecPrivate signature). Video and real AAC streams get
  UnsupportedStreamMediaTypeException (KVS's own clips are MP4 of H.264/H.265).
* **GetHLSStreamingSessionURL / GetDASHStreamingSessionURL / GetImages** — not
  supported: InvalidArgumentException (NoDataRetentionException on retention-0 streams,
  as KVS answers first).

Operations and their input rules are declared once, in :data:`OPERATIONS`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from callstream.api.app import Handler, ServerState, json_response, log, start_streaming
from callstream.api.control import STREAM_REF
from callstream.api.errors import KvsError
from callstream.api.shapes import (
    Body,
    Enum,
    Integer,
    ListOf,
    MapOf,
    Operation,
    String,
    Structure,
    Timestamp,
    parse_timestamp,
    routes,
)
from callstream.media.clip import ClipError, build_clip
from callstream.mkv.ebml import MkvError
from callstream.store.base import FragmentRecord, StoreError, StreamRecord
from callstream.store.numbers import is_valid_fragment_number
from callstream.store.reading import MediaFragment

__all__ = [
    "CLIP_CONTENT_TYPE",
    "MAX_CLIP_BYTES",
    "MAX_CLIP_FRAGMENTS",
    "OPERATIONS",
    "ROUTES",
]

DEFAULT_LIST_FRAGMENTS = 100
"""ListFragments page size when MaxResults is absent (the KVS default)."""
MAX_CLIP_FRAGMENTS = 200
"""A clip holds at most the first 200 fragments of the range (KVS limit)."""
MAX_CLIP_BYTES = 100 * 1000 * 1000
"""... and at most the first 100 MB of them."""
CLIP_CONTENT_TYPE = "audio/wav"
_MS_LIMIT = 1 << 62

# --- shapes (botocore kinesis-video-archived-media 2017-09-30) --------------------------------
SELECTOR_TYPE = Enum(("PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"))
TIMESTAMP_RANGE = Structure(
    {"StartTimestamp": Timestamp(), "EndTimestamp": Timestamp()},
    frozenset({"StartTimestamp", "EndTimestamp"}),
)
FRAGMENT_SELECTOR = Structure(
    {"FragmentSelectorType": SELECTOR_TYPE, "TimestampRange": TIMESTAMP_RANGE},
    frozenset({"FragmentSelectorType", "TimestampRange"}),
)
NEXT_TOKEN = String(1, 4096, r"[a-zA-Z0-9+/]+={0,2}")
FRAGMENT_NUMBER = String(1, 128, r"^[0-9]+$")
PLAYBACK_MODE = Enum(("LIVE", "LIVE_REPLAY", "ON_DEMAND"))
OPTIONAL_RANGE = Structure({"StartTimestamp": Timestamp(), "EndTimestamp": Timestamp()})
OPTIONAL_SELECTOR = Structure(
    {"FragmentSelectorType": SELECTOR_TYPE, "TimestampRange": OPTIONAL_RANGE}
)
EXPIRES = Integer(300, 43200)
ALWAYS_NEVER = Enum(("ALWAYS", "NEVER"))


# --- helpers --------------------------------------------------------------------------------
def _seconds(ms: int) -> float:
    return ms / 1000


def _fragment_json(rec: FragmentRecord) -> dict[str, Any]:
    return {
        "FragmentNumber": rec.fragment_number,
        "FragmentSizeInBytes": rec.size,
        "ProducerTimestamp": _seconds(rec.producer_timestamp_ms),
        "ServerTimestamp": _seconds(rec.server_timestamp_ms),
        "FragmentLengthInMilliseconds": rec.duration_ms,
    }


@dataclass(frozen=True, slots=True)
class _Range:
    by: Literal["server", "producer"]
    start_ms: int
    end_ms: int


def _clamp(ms: int) -> int:
    """Keep absurd timestamps inside the store's 64-bit integers."""
    return max(-_MS_LIMIT, min(_MS_LIMIT, ms))


def _range(selector: dict[str, Any]) -> _Range:
    by: Literal["server", "producer"] = (
        "producer" if selector["FragmentSelectorType"] == "PRODUCER_TIMESTAMP" else "server"
    )
    span = selector["TimestampRange"]
    start = _clamp(parse_timestamp(span["StartTimestamp"], "StartTimestamp", rounding="up"))
    end = _clamp(parse_timestamp(span["EndTimestamp"], "EndTimestamp", rounding="down"))
    if end < start:
        raise KvsError(
            "InvalidArgumentException", "EndTimestamp must not be earlier than StartTimestamp."
        )
    return _Range(by, start, end)


def _encode_token(stream: StreamRecord, after: str, rng: _Range | None) -> str:
    payload: dict[str, Any] = {"arn": stream.arn, "after": after}
    if rng is not None:
        payload.update(by=rng.by, start=rng.start_ms, end=rng.end_ms)
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(raw).decode("ascii")


def _decode_token(stream: StreamRecord, token: str) -> tuple[str, _Range | None]:
    bad = KvsError("InvalidArgumentException", "NextToken is not valid for this request.")
    try:
        payload = json.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(payload, dict) or payload.get("arn") != stream.arn:
        raise bad
    after = payload.get("after")
    if not is_valid_fragment_number(after):
        raise bad
    rng = None
    if "by" in payload:
        by, start, end = payload.get("by"), payload.get("start"), payload.get("end")
        if (
            by not in ("producer", "server")
            or not isinstance(start, int)
            or not isinstance(end, int)
        ):
            raise bad
        rng = _Range("producer" if by == "producer" else "server", _clamp(start), _clamp(end))
    return str(after), rng


async def _retaining(state: ServerState, body: Body) -> StreamRecord:
    """The stream, which must keep data (NoDataRetentionException otherwise)."""
    stream = await state.stream(body)
    if stream.data_retention_hours == 0:
        raise KvsError(
            "NoDataRetentionException",
            f"Stream {stream.name} does not retain data (DataRetentionInHours is 0).",
        )
    return stream


# --- ListFragments --------------------------------------------------------------------------
async def list_fragments(
    request: web.Request, state: ServerState, body: Body
) -> web.StreamResponse:
    """``POST /listFragments``."""
    stream = await state.stream(body)
    limit = int(body.get("MaxResults") or DEFAULT_LIST_FRAGMENTS)
    after: str | None = None
    rng: _Range | None = None
    if body.get("NextToken"):
        after, rng = _decode_token(stream, body["NextToken"])
    elif body.get("FragmentSelector") is not None:
        rng = _range(body["FragmentSelector"])
    records = await state.store.list_fragments(
        stream,
        after_number=after,
        start_ms=rng.start_ms if rng else None,
        end_ms=rng.end_ms if rng else None,
        by=rng.by if rng else "server",
        limit=limit + 1,
    )
    out: dict[str, Any] = {"Fragments": [_fragment_json(r) for r in records[:limit]]}
    if len(records) > limit:
        out["NextToken"] = _encode_token(stream, records[limit - 1].fragment_number, rng)
    return json_response(out)


# --- GetMediaForFragmentList ----------------------------------------------------------------
async def get_media_for_fragment_list(
    request: web.Request, state: ServerState, body: Body
) -> web.StreamResponse:
    """``POST /getMediaForFragmentList``: the fragments in the order asked for."""
    stream = await state.stream(body)
    numbers: list[str] = body["Fragments"]
    store = state.store
    records = await store.find_fragments(stream, numbers)
    missing = [n for n in numbers if n not in records]
    if missing:
        raise KvsError(
            "ResourceNotFoundException",
            f"Fragment {missing[0]} of stream {stream.name} was not found.",
        )
    async with store.reader_slot(stream, "GET_MEDIA_FOR_FRAGMENT_LIST"):
        response = await start_streaming(request, "video/webm")
        try:
            for number in numbers:
                fragment = await store.fragment(stream, records[number])
                await response.write(fragment.document(end_tags=False))
        except (KvsError, StoreError) as exc:
            # Too late for an error response (the 200 is out): drop the connection without
            # the final chunk, so the client sees a truncated body rather than a clean end.
            log.warning("GetMediaForFragmentList on %s failed mid-stream: %s", stream.arn, exc)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response


# --- GetClip --------------------------------------------------------------------------------
_CLIP_ERRORS = {
    "unsupported": "UnsupportedStreamMediaTypeException",
    "missing_codec_private": "MissingCodecPrivateDataException",
    "invalid_codec_private": "InvalidCodecPrivateDataException",
    "invalid_frame": "InvalidMediaFrameException",
    "no_audio": "ResourceNotFoundException",
    "too_long": "InvalidArgumentException",
}


def _clip(fragments: list[MediaFragment]) -> bytes:
    """Parse and decode (blocking): GetClip's WAV, or its KVS error."""
    parsed = []
    for fragment in fragments:
        try:
            parsed.append(fragment.parse())
        except (MkvError, IndexError) as exc:
            raise KvsError(
                "InvalidMediaFrameException", f"Fragment {fragment.number}: {exc}"
            ) from None
    try:
        return build_clip(parsed)
    except ClipError as exc:
        raise KvsError(_CLIP_ERRORS[exc.reason], str(exc)) from None


async def get_clip(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
    """``POST /getClip``: a WAV of the audio of the fragments that start in the range (the
    first 200 fragments / 100 MB, as KVS)."""
    stream = await _retaining(state, body)
    rng = _range(body["ClipFragmentSelector"])
    store = state.store
    records = await store.list_fragments(
        stream, start_ms=rng.start_ms, end_ms=rng.end_ms, by=rng.by, limit=MAX_CLIP_FRAGMENTS
    )
    if not records:
        raise KvsError(
            "ResourceNotFoundException",
            f"No fragments of stream {stream.name} start in the requested range.",
        )
    chosen: list[FragmentRecord] = []
    total = 0
    for rec in records:
        if chosen and total + rec.size > MAX_CLIP_BYTES:
            break
        chosen.append(rec)
        total += rec.size
    fragments = await store.fragments(stream, chosen)
    wav = await asyncio.to_thread(_clip, fragments)
    return web.Response(body=wav, content_type=CLIP_CONTENT_TYPE)


# --- HLS / DASH / images: not supported -----------------------------------------------------
def _not_supported(operation: str) -> Any:
    async def handler(request: web.Request, state: ServerState, body: Body) -> web.StreamResponse:
        await _retaining(state, body)
        raise KvsError(
            "InvalidArgumentException",
            f"{operation} is not supported by callstream; use GetMedia, "
            "GetMediaForFragmentList or GetClip (WAV).",
        )

    return handler


# --- the operation table --------------------------------------------------------------------
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "ListFragments",
        "/listFragments",
        Structure(
            {
                **STREAM_REF,
                "MaxResults": Integer(1, 1000),
                "NextToken": NEXT_TOKEN,
                "FragmentSelector": FRAGMENT_SELECTOR,
            }
        ),
        list_fragments,
    ),
    Operation(
        "GetMediaForFragmentList",
        "/getMediaForFragmentList",
        Structure(
            {**STREAM_REF, "Fragments": ListOf(FRAGMENT_NUMBER, min_len=1, max_len=1000)},
            frozenset({"Fragments"}),
        ),
        get_media_for_fragment_list,
    ),
    Operation(
        "GetClip",
        "/getClip",
        Structure(
            {**STREAM_REF, "ClipFragmentSelector": FRAGMENT_SELECTOR},
            frozenset({"ClipFragmentSelector"}),
        ),
        get_clip,
    ),
    Operation(
        "GetHLSStreamingSessionURL",
        "/getHLSStreamingSessionURL",
        Structure(
            {
                **STREAM_REF,
                "PlaybackMode": PLAYBACK_MODE,
                "HLSFragmentSelector": OPTIONAL_SELECTOR,
                "ContainerFormat": Enum(("FRAGMENTED_MP4", "MPEG_TS")),
                "DiscontinuityMode": Enum(("ALWAYS", "NEVER", "ON_DISCONTINUITY")),
                "DisplayFragmentTimestamp": ALWAYS_NEVER,
                "Expires": EXPIRES,
                "MaxMediaPlaylistFragmentResults": Integer(1, 5000),
            }
        ),
        _not_supported("GetHLSStreamingSessionURL"),
    ),
    Operation(
        "GetDASHStreamingSessionURL",
        "/getDASHStreamingSessionURL",
        Structure(
            {
                **STREAM_REF,
                "PlaybackMode": PLAYBACK_MODE,
                "DisplayFragmentTimestamp": ALWAYS_NEVER,
                "DisplayFragmentNumber": ALWAYS_NEVER,
                "DASHFragmentSelector": OPTIONAL_SELECTOR,
                "Expires": EXPIRES,
                "MaxManifestFragmentResults": Integer(1, 5000),
            }
        ),
        _not_supported("GetDASHStreamingSessionURL"),
    ),
    Operation(
        "GetImages",
        "/getImages",
        Structure(
            {
                **STREAM_REF,
                "ImageSelectorType": SELECTOR_TYPE,
                "StartTimestamp": Timestamp(),
                "EndTimestamp": Timestamp(),
                "SamplingInterval": Integer(),
                "Format": Enum(("JPEG", "PNG")),
                "FormatConfig": MapOf(
                    Enum(("JPEGQuality",)), String(0, 256, r"^[a-zA-Z_0-9]+"), 1, 1
                ),
                "WidthPixels": Integer(1, 3840),
                "HeightPixels": Integer(1, 2160),
                "MaxResults": Integer(1, 100),
                "NextToken": NEXT_TOKEN,
            },
            frozenset({"ImageSelectorType", "StartTimestamp", "EndTimestamp", "Format"}),
        ),
        _not_supported("GetImages"),
    ),
)
"""The archived-media operations (kvs-wire §3) with their input rules."""

ROUTES: dict[str, Handler] = routes(OPERATIONS)
