"""The call-analytics commands and ``callstream serve``'s analytics options.

* ``callstream analyze --transcript FILE`` reads JSON Lines of LCA-shaped segments or
  ``CALLER:``/``AGENT:`` text lines (``-``: stdin); ``--input call.wav|call.mkv`` runs a
  saved recording through the recogniser first; ``--stream S [--start-fragment N]
  --endpoint-url URL`` has a server analyse a stream and waits for the result. Each prints
  (or writes) the call's export JSON object. Bad input is one line naming the line number
  or the file.
* ``callstream calls`` lists analysed calls; ``callstream transcript CALL [--follow]``
  prints a call's transcript (and, with ``--follow``, its new segments as they come, like
  ``tail -f``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_commands", "add_serve_options", "analytics_config", "cmd_analyze"]


def _error(message: str) -> Exception:
    from callstream.cli import CliError

    return CliError(message)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Run ``analyze``."""
    given = [x for x in (args.transcript, args.input, args.stream) if x]
    if len(given) != 1:
        raise _error("give one of --transcript FILE, --input FILE or --stream S")
    if args.input:
        report = _analyze_input(args)
    elif args.stream:
        report = _analyze_stream(args)
    else:
        report = _analyze_transcript(args)
    _write_report(args, report)
    return 0


def _write_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    out = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        try:
            Path(args.out).write_text(out, encoding="utf-8")
        except OSError as err:
            raise _error(f"cannot write {args.out}: {err.strerror}") from None
    else:
        sys.stdout.write(out)


def _rules(args: argparse.Namespace) -> list[Any]:
    if not args.categories:
        return []
    from callstream.analytics.categories import RuleError, load_rules

    try:
        return load_rules(args.categories)
    except RuleError as err:
        raise _error(f"{args.categories}: {err}") from None
    except OSError as err:
        raise _error(f"cannot open {args.categories}: {err.strerror}") from None


def _analyze_input(args: argparse.Namespace) -> dict[str, Any]:
    from callstream.analytics.asr import AsrError, open_recognizer
    from callstream.analytics.call import CallSettings
    from callstream.analytics.offline import analyze_audio
    from callstream.analytics.sources import SourceError, read_call_file

    path = Path(args.input)
    try:
        audio = read_call_file(path, swap=args.swap_channels)
    except OSError as err:
        raise _error(f"cannot open {path}: {err.strerror}") from None
    except SourceError as err:
        raise _error(str(err)) from None
    if audio.warning:
        print(f"callstream analyze: warning: {audio.warning}", file=sys.stderr)
    settings = CallSettings(rules=tuple(_rules(args)), redact=not args.no_redact)
    try:
        recognizer = open_recognizer(
            args.asr_engine, args.asr_model, workers=args.asr_workers, window_s=args.asr_window
        )
    except AsrError as err:
        raise _error(str(err)) from None
    report, _ = analyze_audio(
        audio, recognizer, args.call_id or path.stem, settings, workers=args.asr_workers
    )
    report["Source"] = "FILE"
    return report


def _analyze_stream(args: argparse.Namespace) -> dict[str, Any]:
    """Ask the server to analyse a stream, then wait for the call's export."""
    import time

    from callstream.cli import _stream_ids, _use_local_credentials_if_none, signed_request

    if not args.endpoint_url:
        raise _error("--stream needs --endpoint-url (the callstream server)")
    _use_local_credentials_if_none(args)
    name, arn = _stream_ids(args.stream)
    body: dict[str, Any] = {"StreamName": name} if name else {"StreamARN": arn}
    if args.start_fragment:
        body["StartFragmentNumber"] = args.start_fragment
    if args.call_id:
        body["CallId"] = args.call_id
    if args.swap_channels:
        body["SwapChannels"] = True
    base = args.endpoint_url.rstrip("/") + "/callstream/calls"
    status, data = signed_request("POST", base, region=args.region, body=json.dumps(body).encode())
    if status != 200:
        raise _error(f"HTTP {status}: {data.decode(errors='replace')[:300]}")
    call_id = json.loads(data)["CallId"]
    from urllib.parse import quote

    url = f"{base}/{quote(call_id, safe='')}"
    deadline = time.monotonic() + args.wait
    while True:
        status, data = signed_request("GET", url, region=args.region)
        if status == 200:
            found = json.loads(data)
            if "Call" in found:
                report: dict[str, Any] = found["Call"]
                return report
            if found["CallSummary"]["Status"] == "ERRORED":
                raise _error(f"call {call_id}: analytics failed")
        if time.monotonic() > deadline:
            raise _error(f"call {call_id}: not finished after {args.wait:g} s (still live?)")
        time.sleep(0.5)


def _analyze_transcript(args: argparse.Namespace) -> dict[str, Any]:
    from callstream.analytics.report import analyze_transcript
    from callstream.analytics.transcript import TranscriptError, parse_transcript

    path: str = args.transcript
    name = "stdin" if path == "-" else path
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as err:
        raise _error(f"cannot open {path}: {err.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise _error(f"{name}: line {line}: not UTF-8 text") from None
    try:
        segments = parse_transcript(text)
    except TranscriptError as err:
        raise _error(f"{name}: {err}") from None
    call_id = args.call_id or (Path(path).stem if path != "-" else "call")
    rules = _rules(args)
    return analyze_transcript(
        segments,
        call_id,
        redact=None if args.no_redact else redact_caller_pci,
        flaggers=[abuse_flags],
        categorizers=[category_matches(rules)] if rules else [],
    )


def abuse_flags(segments: list[Any]) -> list[dict[str, Any]]:
    """Abusive-caller flags (:mod:`callstream.analytics.abuse`) in the export's shape."""
    from callstream.analytics.abuse import find_abuse

    return [
        {
            "Type": flag.kind,
            "SegmentIds": flag.segment_ids,
            "Score": flag.score,
            "Evidence": [
                {"SegmentId": sid, "StartTime": start, "EndTime": end, "Term": term}
                for sid, start, end, term in flag.evidence
            ],
        }
        for flag in find_abuse(segments)
    ]


def category_matches(rules: Any) -> Any:
    """A categorizer running the rules over the call as a live matcher would."""
    from callstream.analytics.categories import CategoryMatcher

    def categorize(segments: list[Any]) -> list[dict[str, Any]]:
        matcher = CategoryMatcher(rules)
        matches = [m for seg in segments for m in matcher.feed(seg)]
        end = max((seg.EndTime for seg in segments), default=0.0)
        matches += matcher.finish(end)
        return [m.to_json() for m in matches]

    return categorize


def redact_caller_pci(segment: Any) -> str:
    """The segment's transcript with card numbers, CVVs and expiry dates masked (the
    caller's only: an agent reading back a masked number is not the customer's data)."""
    from callstream.analytics.redaction import redact_pci

    if segment.Channel != "CALLER":
        return str(segment.Transcript)
    return redact_pci(segment.Transcript)[0]


# --- calls and transcripts ---------------------------------------------------------------
def _get_json(args: argparse.Namespace, path: str) -> Any:
    from callstream.cli import _use_local_credentials_if_none, signed_request

    _use_local_credentials_if_none(args)
    status, data = signed_request("GET", args.endpoint_url.rstrip("/") + path, region=args.region)
    if status != 200:
        try:
            message = json.loads(data).get("message") or data.decode(errors="replace")
        except ValueError:
            message = data.decode(errors="replace")
        raise _error(f"HTTP {status}: {str(message)[:300]}")
    return json.loads(data)


def _score(value: Any) -> str:
    return "   -" if value is None else f"{value:+.1f}"


def cmd_calls(args: argparse.Namespace) -> int:
    """List analysed calls, newest first."""
    from urllib.parse import urlencode

    if args.limit < 1:
        raise _error(f"--limit must be at least 1, got {args.limit}")
    query: dict[str, str] = {"limit": str(min(args.limit, 1000))}
    if args.status:
        query["status"] = args.status
    if args.search:
        query["search"] = args.search
    if args.flagged:
        query["flagged"] = "1"
    page = _get_json(args, f"/callstream/calls?{urlencode(query)}")
    import time

    for call in page["Calls"]:
        if args.json:
            print(json.dumps(call, ensure_ascii=False))
            continue
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(call["StartedAt"] / 1000))
        sentiment = call["Sentiment"]
        flags = ",".join(call["Flags"] + call["Categories"]) or "-"
        print(
            f"{started}  {call['Status']:<12} {call['DurationSeconds']:7.1f}s  "
            f"caller {_score(sentiment['CALLER']['Overall'])} "
            f"agent {_score(sentiment['AGENT']['Overall'])}  {flags}  {call['CallId']}"
            + (f"  (node {call['Node']})" if call.get("Node") else "")
        )
    return 0


def _segment_line(seg: dict[str, Any]) -> str:
    mark = "…" if seg.get("IsPartial") else " "
    start = float(seg["StartTime"])
    sentiment = seg.get("Sentiment") or ""
    label = f"  [{sentiment}]" if sentiment and sentiment != "NEUTRAL" else ""
    return (
        f"[{int(start // 60):02d}:{start % 60:05.2f}] {seg['Channel']:<6}{mark} "
        f"{seg['Transcript']}{label}"
    )


def cmd_transcript(args: argparse.Namespace) -> int:
    """Print a call's transcript; ``--follow`` keeps printing final segments as they come
    until the call ends."""
    from urllib.parse import quote

    call = quote(args.call_id, safe="")
    found = _get_json(args, f"/callstream/calls/{call}/transcript")
    shown: set[str] = set()
    for seg in found["Segments"]:
        if args.json:
            print(json.dumps(seg, ensure_ascii=False), flush=True)
        elif not seg.get("IsPartial"):
            print(_segment_line(seg), flush=True)
        if not seg.get("IsPartial"):
            shown.add(str(seg["SegmentId"]))
    if not args.follow or found["Status"] in ("ENDED", "ERRORED"):
        return 0
    return _follow(args, found["Cursor"], shown)


def _follow(args: argparse.Namespace, cursor: int, shown: set[str]) -> int:
    """Read the server's event stream (SSE) for this call until its END."""
    import urllib.request
    from urllib.parse import urlencode

    import botocore.session

    from callstream.client.aws import sign_request

    query = urlencode(
        [("type", "TranscriptSegment"), ("type", "CallAnalyticsEnded"), ("call", args.call_id),
         ("cursor", str(cursor))]
    )  # fmt: skip
    url = args.endpoint_url.rstrip("/") + f"/callstream/events/stream?{query}"
    creds = botocore.session.get_session().get_credentials()
    headers = sign_request("GET", url, credentials=creds, region=args.region, headers={}, body=b"")
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=args.idle_timeout) as resp:
        for raw in resp:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event.get("EventType") == "CallAnalyticsEnded":
                return 0
            if event.get("IsPartial") or str(event.get("SegmentId")) in shown:
                continue
            shown.add(str(event["SegmentId"]))
            if args.json:
                print(json.dumps(event, ensure_ascii=False), flush=True)
            elif event.get("Transcript"):
                print(_segment_line(event), flush=True)
    return 0


# --- serve options ---------------------------------------------------------------------------
def add_serve_options(p: Any) -> None:
    """``callstream serve``'s call-analytics flags."""
    g = p.add_argument_group("call analytics (live transcription, sentiment, flags)")
    g.add_argument(
        "--analytics",
        choices=["on", "off"],
        default="on",
        help="transcribe and analyse every call that enters the store (default: on)",
    )
    _asr_options(g)
    g.add_argument("--categories", metavar="RULES", help="category rules (JSON or YAML)")
    g.add_argument(
        "--alert-categories",
        metavar="REGEX",
        help="categories whose match is also an alert (a CallAlert event)",
    )
    g.add_argument("--no-partials", action="store_true", help="final segments only")
    g.add_argument(
        "--redact-audio",
        action="store_true",
        help="also silence spoken card numbers in each call's recording.wav",
    )


def _asr_options(g: Any) -> None:
    import os

    g.add_argument(
        "--asr-engine",
        choices=["whisper", "pocketsphinx", "none"],
        default="whisper",
        help="speech recogniser (default: whisper with the tiny.en model package)",
    )
    g.add_argument("--asr-model", metavar="DIR", help="a CTranslate2 Whisper model directory")
    g.add_argument(
        "--asr-workers",
        type=int,
        default=max(1, min(4, os.cpu_count() or 1)),
        metavar="N",
        help="utterances recognised at once (default: one per core, at most 4)",
    )
    g.add_argument(
        "--asr-window",
        type=float,
        default=15.0,
        metavar="S",
        help="Whisper's encoder window in seconds (1..30; 30 is stock Whisper, slower)",
    )


def analytics_config(args: argparse.Namespace) -> Any:
    """The server's AnalyticsConfig from ``serve``'s flags (None: off)."""
    if args.analytics == "off":
        return None
    import re

    from callstream.analytics.asr import ENGINES
    from callstream.analytics.call import CallSettings
    from callstream.analytics.service import AnalyticsConfig

    if args.asr_workers < 1:
        raise _error(f"--asr-workers must be at least 1, got {args.asr_workers}")
    if not 1.0 <= args.asr_window <= 30.0:
        raise _error(f"--asr-window must be within 1..30 s, got {args.asr_window}")
    if args.asr_engine not in ENGINES:
        raise _error(f"--asr-engine: unknown engine {args.asr_engine}")
    if args.asr_model and not (Path(args.asr_model) / "model.bin").is_file():
        raise _error(f"--asr-model {args.asr_model}: no model.bin there")
    try:
        alert = re.compile(args.alert_categories, re.I) if args.alert_categories else None
    except re.error as err:
        raise _error(f"--alert-categories: {err}") from None
    settings = CallSettings(
        rules=tuple(_rules(args)), alert_categories=alert, partials=not args.no_partials
    )
    return AnalyticsConfig(
        engine=args.asr_engine,
        model=args.asr_model,
        workers=args.asr_workers,
        window_s=args.asr_window,
        settings=settings,
        redact_audio=args.redact_audio,
    )


def add_commands(sub: Any) -> None:
    """Add the analytics commands to the CLI."""
    p = sub.add_parser(
        "analyze",
        help="call analytics (transcript, sentiment, flags, summary) of a call",
    )
    p.add_argument(
        "--transcript",
        metavar="FILE",
        help="JSON Lines of LCA segments or 'CALLER: ...'/'AGENT: ...' lines ('-': stdin)",
    )
    p.add_argument(
        "--input",
        metavar="FILE",
        help="a recording: WAV (stereo: caller left, agent right) or MKV/GetMedia payload",
    )
    p.add_argument("--stream", metavar="S", help="a stream (name or ARN) the server analyses")
    p.add_argument("--start-fragment", metavar="N", help="with --stream: start at fragment N")
    p.add_argument("--endpoint-url", help="with --stream: the callstream server")
    p.add_argument("--region", default="us-east-1")
    p.add_argument(
        "--wait", type=float, default=600.0, metavar="S", help="with --stream: give up after S s"
    )
    p.add_argument("--swap-channels", action="store_true", help="caller and agent swapped")
    _asr_options(p)
    p.add_argument("--call-id", help="the CallId in the output (default: the file's name)")
    p.add_argument("--categories", metavar="RULES", help="category rules (JSON, or YAML)")
    p.add_argument("--no-redact", action="store_true", help="keep card numbers in transcripts")
    p.add_argument("--out", metavar="F", help="write the JSON here instead of stdout")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("calls", help="analysed calls: status, duration, sentiment, flags")
    p.add_argument("--endpoint-url", required=True, help="the callstream server")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument(
        "--status", choices=["STARTED", "TRANSCRIBING", "ENDED", "ERRORED"], help="only these"
    )
    p.add_argument("--search", help="call id, phone number, agent or category contains this")
    p.add_argument("--flagged", action="store_true", help="only calls with a flag")
    p.add_argument("--json", action="store_true", help="one JSON object per call")
    p.set_defaults(func=cmd_calls)

    p = sub.add_parser("transcript", help="a call's transcript (--follow: live)")
    p.add_argument("call_id", metavar="CALL")
    p.add_argument("--endpoint-url", required=True, help="the callstream server")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--follow", "-f", action="store_true", help="print new segments as they come")
    p.add_argument("--json", action="store_true", help="segments as JSON lines")
    p.add_argument(
        "--idle-timeout", type=float, default=120.0, metavar="S", help="give up after S s of quiet"
    )
    p.set_defaults(func=cmd_transcript)

    from callstream.analytics.dataset import add_dataset_command

    add_dataset_command(sub)
