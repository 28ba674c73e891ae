"""The UI's stream browser endpoints, on the store service the KVS API uses.

* ``GET /ui/api/streams?prefix&next`` -- streams by name (KVS's ``StreamInfo`` plus tags).
* ``GET /ui/api/streams/{name}/summary`` -- fragments and bytes stored, the first and the
  last fragment, the producer.
* ``GET /ui/api/streams/{name}/fragments?start&end`` -- the fragments whose producer
  timestamps fall in ``[start, end]`` (epoch ms; default: the last hour of the stream):
  each fragment, the covered spans and the gaps between them, the stream's first and
  last fragment, and who produces it (Connect, a voice-connector leg or another PutMedia
  client, from the newest fragment's tags).
* ``GET /ui/api/streams/{name}/audio.wav?start&end[&download=1]`` -- the range's audio as
  ``callstream get-audio --start-timestamp start --stop-timestamp end --all-contacts``
  extracts it (:class:`~callstream.media.extract.AudioExtractor`: stereo caller/agent for
  Connect, mono otherwise; gaps become silence), with byte ranges for seeking.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from callstream.api.app import ServerState
from callstream.api.control import stream_info
from callstream.media.extract import AudioExtractor, Selection, resolve_track
from callstream.media.wav import WavWriter
from callstream.mkv.ebml import MkvError
from callstream.store.base import FragmentRecord, StoreError, StreamRecord
from callstream.web.http import UiError, json_ok, ranged_response

__all__ = ["ROUTES", "coverage", "producer_of"]

DEFAULT_WINDOW_MS = 3_600_000
"""The fragment view shows the stream's last hour unless asked for another range."""
MAX_LISTED = 2000
"""Fragments listed one by one (spans and gaps cover the whole range)."""
MAX_SCANNED = 100_000
"""Fragments looked at for one view; a longer range is cut (``Truncated``)."""
MAX_AUDIO_MS = 3_600_000
MAX_AUDIO_FRAGMENTS = 5000
GAP_MS = 250
"""Time between one fragment's end and the next one's start that counts as a gap."""
LOOKBACK_MS = 60_000
"""How far before ``start`` a fragment containing it may begin."""


def _invalid(message: str) -> UiError:
    return UiError(400, "InvalidArgumentException", message)


def _ms(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        ms = int(value)
    except ValueError:
        raise _invalid(f"{name} must be epoch milliseconds (an integer).") from None
    if not 0 <= ms < 1 << 53:
        raise _invalid(f"{name} is out of range.")
    return ms


def _stream_json(rec: StreamRecord) -> dict[str, Any]:
    info = stream_info(rec)
    info["Tags"] = dict(rec.tags)
    return info


async def _stream(state: ServerState, name: str) -> StreamRecord:
    try:
        return await state.store.stream(name=name)
    except StoreError as err:
        raise UiError(404, "ResourceNotFoundException", f"Stream {name} not found.") from err


async def list_streams(request: web.Request, state: ServerState) -> web.StreamResponse:
    """Streams by name, a page at a time."""
    prefix = request.query.get("prefix") or None
    after = request.query.get("next") or None
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise _invalid("limit must be an integer.") from None
    limit = max(1, min(limit, 1000))
    records = await state.store.list_streams(prefix=prefix, after_name=after, limit=limit + 1)
    body: dict[str, Any] = {"Streams": [_stream_json(r) for r in records[:limit]]}
    if len(records) > limit:
        body["Next"] = records[limit - 1].name
    return json_ok(body)


def _fragment_json(rec: FragmentRecord) -> dict[str, Any]:
    return {
        "FragmentNumber": rec.fragment_number,
        "ProducerTimestamp": rec.producer_timestamp_ms,
        "ServerTimestamp": rec.server_timestamp_ms,
        "DurationMs": rec.duration_ms,
        "Size": rec.size,
    }


def coverage(records: list[FragmentRecord], gap_ms: int = GAP_MS) -> list[list[int]]:
    """The time covered by fragments (producer time) as ``[start, end, fragments, bytes]``
    spans; what lies between two spans is a gap longer than ``gap_ms``."""
    spans: list[list[int]] = []
    for rec in sorted(records, key=lambda r: r.producer_timestamp_ms):
        start = rec.producer_timestamp_ms
        end = start + max(0, rec.duration_ms)
        if spans and start <= spans[-1][1] + gap_ms:
            last = spans[-1]
            last[1] = max(last[1], end)
            last[2] += 1
            last[3] += rec.size
        else:
            spans.append([start, end, 1, rec.size])
    return spans


def producer_of(tags: Mapping[str, str]) -> str:
    """Who wrote a fragment, from its producer tags."""
    if tags.get("ContactId"):
        return "CONNECT"
    if tags.get("TransactionId"):
        return "VOICE_CONNECTOR"
    return "PUTMEDIA"


async def _edges(
    state: ServerState, stream: StreamRecord
) -> tuple[FragmentRecord | None, FragmentRecord | None]:
    first = await state.store.list_fragments(stream, limit=1)
    last = await state.store.backend.log.last(stream)
    return (first[0] if first else None), last


async def _newest_tags(state: ServerState, stream: StreamRecord, rec: FragmentRecord) -> Any:
    try:
        fragment = await state.store.fragment(stream, rec)
        parsed = await state.run(fragment.parse)
    except (StoreError, MkvError, IndexError, ValueError):
        return {}, []
    tracks = [
        {"Number": t.number, "Name": t.name, "Codec": t.codec_id} for t in parsed.tracks.values()
    ]
    producer = {k: v for k, v in parsed.tags.items() if not k.startswith("AWS_KINESISVIDEO_")}
    return producer, tracks


async def get_fragments(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The fragment view of one stream (see the module docstring)."""
    stream = await _stream(state, request.match_info["name"])
    start = _ms(request.query, "start")
    end = _ms(request.query, "end")
    first, last = await _edges(state, stream)
    body: dict[str, Any] = {"Stream": _stream_json(stream)}
    if first is None or last is None:
        body.update(Fragments=[], Spans=[], Gaps=[], Count=0, Bytes=0, Truncated=False)
        body["Producer"] = None
        return json_ok(body)
    stream_end = last.producer_timestamp_ms + last.duration_ms
    if end is None:
        end = stream_end if start is None else start + DEFAULT_WINDOW_MS
    if start is None:
        start = max(first.producer_timestamp_ms, end - DEFAULT_WINDOW_MS)
    if end < start:
        raise _invalid("end must not be before start.")
    records = await state.store.list_fragments(
        stream, start_ms=max(0, start - LOOKBACK_MS), end_ms=end, by="producer", limit=MAX_SCANNED
    )
    records = [r for r in records if r.producer_timestamp_ms + r.duration_ms > start]
    spans = coverage(records)
    gaps = [[a[1], b[0]] for a, b in itertools.pairwise(spans)]
    tags, tracks = await _newest_tags(state, stream, records[-1] if records else last)
    body.update(
        Start=start,
        End=end,
        First=_fragment_json(first),
        Last=_fragment_json(last),
        Fragments=[_fragment_json(r) for r in records[:MAX_LISTED]],
        Spans=spans,
        Gaps=gaps,
        Count=len(records),
        Bytes=sum(r.size for r in records),
        Truncated=len(records) >= MAX_SCANNED,
        Producer=producer_of(tags),
        Tags=tags,
        Tracks=tracks,
    )
    return json_ok(body)


class _AudioCache:
    """The last few extracted ranges: a player asks for one range many times, a byte
    range at a time."""

    def __init__(self, entries: int = 4, max_bytes: int = 128 * 1024 * 1024, ttl_s: float = 60):
        self.entries = entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._items: OrderedDict[tuple[Any, ...], tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or time.monotonic() - item[0] > self.ttl_s:
                self._items.pop(key, None)
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple[Any, ...], data: bytes) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), data)
            total = sum(len(v) for _, v in self._items.values())
            while len(self._items) > self.entries or (total > self.max_bytes and self._items):
                _, (_, dropped) = self._items.popitem(last=False)
                total -= len(dropped)


AUDIO_CACHE = web.AppKey("callstream.web.audio_cache", _AudioCache)


def _extract(documents: list[Any], start_ms: int, end_ms: int) -> bytes:
    """The WAV of the fragments, as ``get-audio --track auto`` writes it (blocking)."""
    out = io.BytesIO()
    extractor: AudioExtractor | None = None
    writer: WavWriter | None = None
    for media in documents:
        try:
            fragment = media.parse()
        except (MkvError, IndexError) as err:
            raise UiError(
                422, "InvalidMediaFrameException", f"Fragment {media.number}: {err}"
            ) from None
        if extractor is None:
            if not fragment.frames:
                continue
            both = resolve_track(fragment, "AUDIO_TO_CUSTOMER") is not None
            extractor = AudioExtractor(Selection.ALL if both else Selection.FROM_CUSTOMER)
        try:
            pcm = extractor.add(fragment)
        except ValueError as err:
            raise UiError(422, "UnsupportedStreamMediaTypeException", str(err)) from None
        if writer is None and extractor.rate is not None:
            writer = WavWriter(out, extractor.rate, extractor.channels)
        if writer is not None and pcm:
            writer.write(pcm)
    if extractor is None or writer is None:
        raise UiError(404, "ResourceNotFoundException", "No audio in the selected range.")
    tail = extractor.finish()
    if tail:
        writer.write(tail)
    writer.close()
    return out.getvalue()


async def get_audio(request: web.Request, state: ServerState) -> web.StreamResponse:
    """The audio of a time range as WAV (see the module docstring)."""
    stream = await _stream(state, request.match_info["name"])
    start = _ms(request.query, "start")
    end = _ms(request.query, "end")
    if start is None or end is None:
        raise _invalid("give start and end (epoch milliseconds).")
    if end <= start:
        raise _invalid("end must be after start.")
    if end - start > MAX_AUDIO_MS:
        raise _invalid("at most an hour of audio at a time: narrow the range.")
    records = await state.store.list_fragments(
        stream,
        start_ms=max(0, start - LOOKBACK_MS),
        end_ms=end - 1,
        by="producer",
        limit=MAX_AUDIO_FRAGMENTS + 100,
    )
    # as get-audio: from the fragment containing start, up to the first at or after end
    records = [r for r in records if r.producer_timestamp_ms + r.duration_ms > start]
    if not records:
        raise UiError(404, "ResourceNotFoundException", "No fragments in the selected range.")
    if len(records) > MAX_AUDIO_FRAGMENTS:
        raise _invalid("too many fragments in the range: narrow it.")
    cache = request.app[AUDIO_CACHE]
    key = (stream.arn, start, end, len(records), records[-1].fragment_number)
    data = cache.get(key)
    if data is None:
        try:
            documents = await state.store.fragments(stream, records)
        except StoreError as err:
            raise UiError(404, "ResourceNotFoundException", err.message) from None
        data = await state.run(_extract, documents, start, end)
        cache.put(key, data)
    download = f"{stream.name}-{start}-{end}.wav" if request.query.get("download") else None
    response = ranged_response(request, data, "audio/wav", download=download)
    response.headers["X-Audio-Start"] = str(records[0].producer_timestamp_ms)
    return response


async def get_stream(request: web.Request, state: ServerState) -> web.StreamResponse:
    """One stream's description."""
    stream = await _stream(state, request.match_info["name"])
    return json_ok({"Stream": _stream_json(stream)})


async def get_summary(request: web.Request, state: ServerState) -> web.StreamResponse:
    """What a stream holds: fragments and bytes stored (counted over at most
    :data:`MAX_SCANNED` fragments: ``Truncated`` beyond), its first and last fragment and
    its producer (the call list of streams asks for each row it shows)."""
    stream = await _stream(state, request.match_info["name"])
    records = await state.store.list_fragments(stream, limit=MAX_SCANNED)
    last = await state.store.backend.log.last(stream)
    tags: dict[str, str] = {}
    if last is not None:
        tags, _ = await _newest_tags(state, stream, last)
    return json_ok(
        {
            "StreamName": stream.name,
            "Count": len(records),
            "Bytes": sum(r.size for r in records),
            "Truncated": len(records) >= MAX_SCANNED,
            "First": _fragment_json(records[0]) if records else None,
            "Last": _fragment_json(last) if last is not None else None,
            "Producer": producer_of(tags) if last is not None else None,
        }
    )


ROUTES = (
    ("/api/streams", list_streams),
    ("/api/streams/{name}", get_stream),
    ("/api/streams/{name}/summary", get_summary),
    ("/api/streams/{name}/fragments", get_fragments),
    ("/api/streams/{name}/audio.wav", get_audio),
)
"""GET routes under the UI prefix."""
