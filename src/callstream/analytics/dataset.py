"""The training export: analysed calls as a speech dataset (``callstream export-dataset``).

Every finished call (status ``ENDED`` with a ``recording.wav``) under
``<data_dir>/analytics`` (:mod:`callstream.analytics.callstore`) becomes one clip per final,
non-empty transcript segment: 8 kHz mono 16-bit WAV cut from the call's stereo recording
(channel 0 the caller, channel 1 the agent) at the segment's ``StartTime``/``EndTime`` with
:data:`MARGIN_S` either side, clipped to the recording. The output directory holds::

    manifest.jsonl                     one JSON object per clip (NeMo's manifest shape:
                                       audio_filepath, duration, text, plus ours)
    metadata.csv                       file_name,transcription,... (Hugging Face audiofolder)
    clips/<call dir>/<segment id>.wav  the clips (names made file-system safe)

Paths in both files are relative to the output directory. Clips are ordered by call start
(then call id), then segment start (then channel, segment id): the same calls give the
same bytes.

Redaction (on by default): the caller's transcript is PCI-masked again with
:func:`~callstream.analytics.redaction.redact_pci` (idempotent: ``[PCI]`` has no digits,
but digits the live redaction let through are caught), and the caller's audio is silenced
over the spans :func:`~callstream.analytics.redaction.redact_segments` gives for them.
Transcripts are masked live, so most card numbers arrive as ``[PCI]`` with their spoken
length gone: such a mask is silenced over the span it can have covered, estimated as
both the 5 characters it is now and :data:`MASK_SPOKEN_CHARS` (a 19-digit number spoken
as words), widened by 0.25 s and clipped to the segment. A silenced span that reaches a
segment's edge also covers the clip's margin there.

The output replaces a previous export atomically enough: it is written into a fresh
sibling directory ``<out>.tmp-*`` and renamed over ``<out>`` at the end (a failed run leaves
``<out>`` as it was). A non-empty ``<out>`` that is not an export (anything but
``manifest.jsonl``, ``metadata.csv`` and ``clips/``) is refused, so nothing else is lost.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callstream.analytics.callstore import CallRow, CallStore, call_dir_name
from callstream.analytics.redaction import PCI_MASK, redact_pci, redact_segments
from callstream.analytics.transcript import CHANNELS, Segment
from callstream.media.wav import read_wav, write_wav

__all__ = [
    "CSV_COLUMNS",
    "MANIFEST_FIELDS",
    "MARGIN_S",
    "MASK_SPOKEN_CHARS",
    "DatasetError",
    "ExportOptions",
    "ExportResult",
    "add_dataset_command",
    "cmd_export_dataset",
    "export_dataset",
    "parse_time",
]

RATE = 8000
MARGIN_S = 0.1
"""Audio kept before a segment's start and after its end (clipped to the recording)."""
MASK_SPOKEN_CHARS = 120
"""How many characters a ``[PCI]`` mask may stand for when its time is estimated: a card
number of 19 digits spoken as words ("seven seven ..."), at most 6 characters each."""
_WIDEN_S = 0.25  # as redact_segments widens its spans
_EXPORT_ENTRIES = frozenset({"manifest.jsonl", "metadata.csv", "clips"})
_PAGE = 1000

MANIFEST_FIELDS = (
    "audio_filepath",
    "duration",
    "text",
    "call_id",
    "segment_id",
    "channel",
    "start",
    "end",
    "clip_start",
    "clip_end",
    "sentiment",
    "sentiment_weighted",
    "confidence",
    "issues",
    "call_flags",
    "categories",
)
"""The keys of a ``manifest.jsonl`` line, in order. ``start``/``end`` are the segment's
times in the call, ``clip_start``/``clip_end`` the clip's (with the margins);
``duration`` is the clip's length."""
CSV_COLUMNS = ("file_name", "transcription", *MANIFEST_FIELDS[1:2], *MANIFEST_FIELDS[3:])
"""The ``metadata.csv`` header: ``file_name``, ``transcription``, then the manifest's
fields (lists joined with ``;``, a missing value empty)."""


class DatasetError(ValueError):
    """Bad export input (a one-line message naming the flag or the path)."""


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """Which calls and segments are exported, and how."""

    since_ms: int | None = None
    """Calls that started at or after this (epoch ms; None: any)."""
    until_ms: int | None = None
    """Calls that started before this (epoch ms; None: any)."""
    min_confidence: float = 0.0
    """Segments below this recogniser confidence are dropped; above 0, so are segments
    without a confidence."""
    channels: tuple[str, ...] = CHANNELS
    redact: bool = True
    calls: tuple[str, ...] | None = None
    """Only these call ids (None: every call)."""
    margin_s: float = MARGIN_S


@dataclass(slots=True)
class ExportResult:
    """What an export wrote."""

    clips: int = 0
    seconds: float = 0.0
    calls: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def parse_time(value: str, flag: str) -> int:
    """``value`` (ISO 8601, UTC when it names no zone, or epoch milliseconds) as epoch ms."""
    text = value.strip()
    if text.isdigit():
        if len(text) < 12:
            raise DatasetError(
                f"{flag} {value}: epoch milliseconds have 12 or more digits "
                "(seconds or a year? write a date as 2026-01-31)"
            )
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise DatasetError(
            f"{flag} {value!r}: not an ISO 8601 time (2026-01-31T09:00:00Z) or epoch milliseconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round(when.timestamp() * 1000)


# --- the export ----------------------------------------------------------------------------
def export_dataset(
    data_dir: Path,
    out: Path,
    options: ExportOptions | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write the analysed calls under ``data_dir`` as a dataset in ``out`` (see the module
    docstring). Calls that cannot be exported are skipped with a warning (passed to
    ``warn`` and kept in the result); bad arguments raise :class:`DatasetError`."""
    options = options or ExportOptions()
    result = ExportResult()

    def warning(message: str) -> None:
        result.warnings.append(message)
        if warn is not None:
            warn(message)

    store = _open_store(Path(data_dir))
    try:
        out = Path(os.path.abspath(out))
        _check_out(out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = _fresh_dir(out, "tmp")
        except OSError as err:
            raise DatasetError(f"--out {out}: cannot create it: {err.strerror}") from None
        try:
            _write_export(store, tmp, options, result, warning)
            _replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        store.close()
    return result


def _open_store(data_dir: Path) -> CallStore:
    if not data_dir.is_dir():
        what = "is not a directory" if data_dir.exists() else "no such directory"
        raise DatasetError(f"--data-dir {data_dir}: {what}")
    analytics = data_dir / "analytics"
    if not (analytics / "calls.sqlite3").is_file():
        raise DatasetError(
            f"--data-dir {data_dir}: no analysed calls here (no analytics/calls.sqlite3)"
        )
    try:
        return CallStore(analytics)
    except (OSError, sqlite3.Error) as err:
        raise DatasetError(f"--data-dir {data_dir}: cannot open the call list: {err}") from None


def _check_out(out: Path) -> None:
    if not out.name:
        raise DatasetError(f"--out {out}: give a directory to create or replace")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file, not a directory")
    if not out.is_dir():
        return
    try:
        entries = set(os.listdir(out))
    except OSError as err:
        raise DatasetError(f"--out {out}: {err.strerror}") from None
    foreign = sorted(entries - _EXPORT_ENTRIES)
    if foreign:
        raise DatasetError(
            f"--out {out} is not empty and not a dataset export (it has {foreign[0]!r}); "
            "give a new or empty directory"
        )


def _fresh_dir(out: Path, kind: str) -> Path:
    """A new, empty sibling of ``out`` (made like ``mkdir``: with the umask's mode, which
    becomes the export's when renamed to ``out``)."""
    while True:
        path = out.with_name(f"{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def _replace(tmp: Path, out: Path) -> None:
    """Put ``tmp`` where ``out`` is: a rename, with the old export moved aside first."""
    old: Path | None = None
    if out.is_dir():
        old = _fresh_dir(out, "old")
        os.rename(out, old / "export")
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old / "export", out)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_export(
    store: CallStore,
    tmp: Path,
    options: ExportOptions,
    result: ExportResult,
    warning: Callable[[str], None],
) -> None:
    (tmp / "clips").mkdir()
    with (
        (tmp / "manifest.jsonl").open("w", encoding="utf-8", newline="\n") as manifest,
        (tmp / "metadata.csv").open("w", encoding="utf-8", newline="") as metadata,
    ):
        table = csv.writer(metadata, lineterminator="\n")
        table.writerow(CSV_COLUMNS)
        for row in _select_calls(store, options, warning):
            records = _export_call(store, row, tmp, options, warning)
            if not records:
                continue
            result.calls += 1
            for record in records:
                manifest.write(json.dumps(record, ensure_ascii=False) + "\n")
                table.writerow(_csv_row(record))
                result.clips += 1
                result.seconds += float(record["duration"])


def _csv_row(record: Mapping[str, Any]) -> list[str]:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            return ";".join(str(v) for v in value)
        return str(value)

    values = [record["audio_filepath"], record["text"]]
    values += [record[name] for name in CSV_COLUMNS[2:]]
    return [cell(v) for v in values]


def _select_calls(
    store: CallStore, options: ExportOptions, warning: Callable[[str], None]
) -> list[CallRow]:
    rows: list[CallRow] = []
    if options.calls is not None:
        for call_id in dict.fromkeys(options.calls):
            row = store.get(call_id)
            if row is None:
                warning(f"call {call_id}: not found, skipped")
            elif row.status != "ENDED":
                warning(f"call {call_id}: {row.status}, not ENDED; skipped")
            else:
                rows.append(row)
    else:
        before: tuple[int, str] | None = None
        while True:
            page = store.list_calls(limit=_PAGE, before=before, status="ENDED")
            rows += page
            if len(page) < _PAGE:
                break
            before = (page[-1].started_ms, page[-1].call_id)
            if options.since_ms is not None and before[0] < options.since_ms:
                break
    rows = [
        r
        for r in rows
        if (options.since_ms is None or r.started_ms >= options.since_ms)
        and (options.until_ms is None or r.started_ms < options.until_ms)
    ]
    return sorted(rows, key=lambda r: (r.started_ms, r.call_id))


@dataclass(slots=True)
class _Seg:
    segment: Segment
    event: Mapping[str, Any]


def _final_segments(
    store: CallStore, call_id: str, options: ExportOptions, warning: Callable[[str], None]
) -> list[_Seg] | None:
    try:
        events = store.transcript(call_id)
    except (OSError, ValueError) as err:
        warning(f"call {call_id}: cannot read events.jsonl ({err}); skipped")
        return None
    out: list[_Seg] = []
    bad = 0
    for event in events:
        if event.get("IsPartial") or not str(event.get("Transcript") or "").strip():
            continue
        channel = event.get("Channel")
        if channel not in options.channels:
            continue
        confidence = event.get("Confidence")
        if options.min_confidence > 0 and not (
            isinstance(confidence, int | float) and confidence >= options.min_confidence
        ):
            continue
        try:
            start, end = float(event["StartTime"]), float(event["EndTime"])
        except (KeyError, TypeError, ValueError):
            bad += 1
            continue
        if not (math.isfinite(start) and math.isfinite(end) and end > start >= 0):
            bad += 1
            continue
        segment = Segment(
            str(event.get("SegmentId")), str(channel), start, end, str(event["Transcript"])
        )
        out.append(_Seg(segment, event))
    if bad:
        warning(f"call {call_id}: {bad} segment(s) without valid StartTime/EndTime skipped")
    out.sort(key=lambda s: (s.segment.StartTime, s.segment.Channel, s.segment.SegmentId))
    return out


def _call_labels(store: CallStore, row: CallRow) -> tuple[list[str], list[str]]:
    """The call's flag types and categories: its row's, and its call.json's."""
    flags = set(row.flags)
    categories = set(row.categories)
    try:
        export = json.loads(store.path(row.call_id, "call.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        export = None
    if isinstance(export, dict):
        flags |= {str(f["Type"]) for f in export.get("Flags") or [] if isinstance(f, dict)}
        categories |= {
            str(c["Category"]) for c in export.get("Categories") or [] if isinstance(c, dict)
        }
    return sorted(flags), sorted(categories)


def _export_call(
    store: CallStore,
    row: CallRow,
    tmp: Path,
    options: ExportOptions,
    warning: Callable[[str], None],
) -> list[dict[str, Any]]:
    call_id = row.call_id
    path = store.path(call_id, "recording.wav")
    if not path.is_file():
        warning(f"call {call_id}: no recording.wav; skipped")
        return []
    try:
        audio = read_wav(path)
    except OSError as err:
        warning(f"call {call_id}: cannot read recording.wav ({err.strerror}); skipped")
        return []
    except ValueError as err:
        warning(f"call {call_id}: recording.wav: {err}; skipped")
        return []
    if audio.rate != RATE or audio.channels != len(CHANNELS):
        warning(
            f"call {call_id}: recording.wav is {audio.rate} Hz with {audio.channels} "
            f"channel(s), not {RATE} Hz stereo; skipped"
        )
        return []
    segs = _final_segments(store, call_id, options, warning)
    if not segs:
        return []
    silence = _silence_spans([s.segment for s in segs], options) if options.redact else {}
    texts = _texts([s.segment for s in segs], options.redact)
    call_flags, categories = _call_labels(store, row)
    folder = call_dir_name(call_id)
    (tmp / "clips" / folder).mkdir(parents=True, exist_ok=True)
    n = audio.n_frames
    records: list[dict[str, Any]] = []
    outside = 0
    for s in segs:
        seg = s.segment
        channel = CHANNELS.index(seg.Channel)
        lo = max(0, round((seg.StartTime - options.margin_s) * RATE))
        hi = min(n, round((seg.EndTime + options.margin_s) * RATE))
        if hi - lo <= 0 or seg.StartTime * RATE >= n:
            outside += 1
            continue
        clip = audio.samples[lo:hi, channel].copy()
        for t0, t1 in silence.get(seg.Channel, ()):
            a = max(lo, math.floor(t0 * RATE))
            b = min(hi, math.ceil(t1 * RATE))
            if a < b:
                clip[a - lo : b - lo] = 0
        name = f"clips/{folder}/{call_dir_name(seg.SegmentId)}.wav"
        write_wav(tmp / name, clip, RATE)
        event = s.event
        records.append(
            {
                "audio_filepath": name,
                "duration": (hi - lo) / RATE,
                "text": texts[seg.SegmentId],
                "call_id": call_id,
                "segment_id": seg.SegmentId,
                "channel": seg.Channel,
                "start": seg.StartTime,
                "end": seg.EndTime,
                "clip_start": lo / RATE,
                "clip_end": hi / RATE,
                "sentiment": event.get("Sentiment"),
                "sentiment_weighted": event.get("SentimentWeighted"),
                "confidence": event.get("Confidence"),
                "issues": sorted(str(i) for i in event.get("Issues") or []),
                "call_flags": call_flags,
                "categories": categories,
            }
        )
    if outside:
        warning(f"call {call_id}: {outside} segment(s) beyond the end of recording.wav skipped")
    return records


# --- redaction -----------------------------------------------------------------------------
def _texts(segments: Iterable[Segment], redact: bool) -> dict[str, str]:
    """The exported transcript of each segment: the caller's PCI-masked (again)."""
    out: dict[str, str] = {}
    for seg in segments:
        text = seg.Transcript.strip()
        if redact and seg.Channel == "CALLER":
            text = redact_pci(text)[0]
        out[seg.SegmentId] = text
    return out


def _silence_spans(
    segments: list[Segment], options: ExportOptions
) -> dict[str, list[tuple[float, float]]]:
    """Per channel, the time spans to zero: PCI still spelled out in the caller's text
    (:func:`redact_segments`) and the masks the live redaction left (:func:`masked_spans`),
    a span at a segment's edge stretched over the clip's margin."""
    by_id = {seg.SegmentId: seg for seg in segments}
    spans: list[tuple[Segment, float, float]] = [
        (by_id[sid], t0, t1) for sid, t0, t1 in redact_segments(segments)[1]
    ]
    for seg in segments:
        if seg.Channel == "CALLER":
            spans += [(seg, t0, t1) for t0, t1 in masked_spans(seg)]
    out: dict[str, list[tuple[float, float]]] = {}
    for seg, t0, t1 in spans:
        if t0 <= seg.StartTime:
            t0 = seg.StartTime - options.margin_s
        if t1 >= seg.EndTime:
            t1 = seg.EndTime + options.margin_s
        out.setdefault(seg.Channel, []).append((t0, t1))
    return out


def masked_spans(seg: Segment) -> list[tuple[float, float]]:
    """The time spans ``[PCI]`` masks in ``seg``'s transcript can have covered.

    The words a mask replaced are gone, so where it sits in time is estimated from its
    character position twice, with the mask as long as it is now and as
    :data:`MASK_SPOKEN_CHARS`; the span covers both estimates, widened by 0.25 s on each
    side and clipped to the segment.
    """
    text = seg.Transcript
    found = [m.start() for m in re.finditer(re.escape(PCI_MASK), text)]
    if not found:
        return []
    duration = max(0.0, seg.EndTime - seg.StartTime)
    spans: list[tuple[float, float]] = []
    for i, pos in enumerate(found):
        t0, t1 = math.inf, -math.inf
        for weight in (len(PCI_MASK), MASK_SPOKEN_CHARS):
            extra = weight - len(PCI_MASK)
            total = len(text) + extra * len(found)
            a = pos + extra * i
            t0 = min(t0, seg.StartTime + duration * a / total)
            t1 = max(t1, seg.StartTime + duration * (a + weight) / total)
        spans.append(
            (max(seg.StartTime, t0 - _WIDEN_S), min(seg.EndTime, t1 + _WIDEN_S)),
        )
    return spans


# --- the command ---------------------------------------------------------------------------
def add_dataset_command(sub: Any) -> None:
    """Add ``callstream export-dataset`` to the CLI's subcommands."""
    p = sub.add_parser(
        "export-dataset",
        help="analysed calls as a speech dataset: WAV clips, manifest.jsonl, metadata.csv",
    )
    p.add_argument("--data-dir", help="the server's data directory (default: serve's default)")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (a previous export there "
        "is replaced; any other non-empty directory is refused)"
    )  # fmt: skip
    p.add_argument(
        "--since", metavar="T", help="calls that started at or after T (ISO 8601 or epoch ms)"
    )
    p.add_argument("--until", metavar="T", help="calls that started before T")
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        metavar="X",
        help="drop segments below this recogniser confidence (0..1)",
    )
    p.add_argument(
        "--channel",
        type=str.upper,
        choices=["CALLER", "AGENT", "ALL"],
        default="ALL",
        help="which side's segments (default: all)",
    )
    p.add_argument(
        "--no-redact",
        action="store_true",
        help="keep transcripts and audio as stored (no PCI masking or silencing)",
    )
    p.add_argument("--calls", metavar="ID,...", help="only these call ids")
    p.set_defaults(func=cmd_export_dataset)


def _options(args: argparse.Namespace) -> ExportOptions:
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    if since is not None and until is not None and since >= until:
        raise DatasetError(f"--since {args.since} is not before --until {args.until}")
    if not 0.0 <= args.min_confidence <= 1.0:
        raise DatasetError(f"--min-confidence must be within 0..1, got {args.min_confidence}")
    calls = None
    if args.calls is not None:
        calls = tuple(c.strip() for c in args.calls.split(",") if c.strip())
        if not calls:
            raise DatasetError("--calls: no call id given")
    return ExportOptions(
        since_ms=since,
        until_ms=until,
        min_confidence=args.min_confidence,
        channels=CHANNELS if args.channel == "ALL" else (args.channel,),
        redact=not args.no_redact,
        calls=calls,
    )


def cmd_export_dataset(args: argparse.Namespace) -> int:
    """Run ``export-dataset``: warnings and a one-line summary on stderr."""
    from callstream.cli import CliError, _data_dir_default

    def warn(message: str) -> None:
        print(f"callstream export-dataset: warning: {message}", file=sys.stderr, flush=True)

    try:
        options = _options(args)
        data_dir = Path(args.data_dir) if args.data_dir else _data_dir_default()
        result = export_dataset(data_dir, Path(args.out), options, warn=warn)
    except DatasetError as err:
        raise CliError(str(err)) from None
    except OSError as err:
        name = f" {err.filename}" if err.filename else ""
        raise CliError(f"cannot write{name}: {err.strerror}") from None
    print(
        f"callstream export-dataset: {result.clips} clips, {result.hours:.2f} hours, "
        f"{result.calls} calls -> {args.out}",
        file=sys.stderr,
    )
    return 0
