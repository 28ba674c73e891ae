"""``callstream analyze``: call analytics from an existing transcript.

``callstream analyze --transcript FILE [--call-id ID] [--out F]`` reads JSON Lines of
LCA-shaped segments or ``CALLER:``/``AGENT:`` text lines (``-``: stdin) and prints (or
writes) the call's export JSON object. Bad input is one line naming the line number.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_commands", "cmd_analyze"]


def _error(message: str) -> Exception:
    from callstream.cli import CliError

    return CliError(message)


def cmd_analyze(args: argparse.Namespace) -> int:
    """Run ``analyze``."""
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
    categorizers = []
    if args.categories:
        from callstream.analytics.categories import RuleError, load_rules

        try:
            rules = load_rules(args.categories)
        except RuleError as err:
            raise _error(f"{args.categories}: {err}") from None
        categorizers.append(category_matches(rules))
    report = analyze_transcript(
        segments,
        call_id,
        redact=None if args.no_redact else redact_caller_pci,
        flaggers=[abuse_flags],
        categorizers=categorizers,
    )
    out = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        try:
            Path(args.out).write_text(out, encoding="utf-8")
        except OSError as err:
            raise _error(f"cannot write {args.out}: {err.strerror}") from None
    else:
        sys.stdout.write(out)
    return 0


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
        return [
            {
                "Category": m.category,
                "SegmentId": m.segment_id,
                "StartTime": m.start,
                "EndTime": m.end,
                "Phrase": m.phrase,
            }
            for m in matches
        ]

    return categorize


def redact_caller_pci(segment: Any) -> str:
    """The segment's transcript with card numbers, CVVs and expiry dates masked (the
    caller's only: an agent reading back a masked number is not the customer's data)."""
    from callstream.analytics.redaction import redact_pci

    if segment.Channel != "CALLER":
        return str(segment.Transcript)
    return redact_pci(segment.Transcript)[0]


def add_commands(sub: Any) -> None:
    """Add the analytics commands to the CLI."""
    p = sub.add_parser(
        "analyze",
        help="call analytics (sentiment, summary, talk time) from a transcript",
    )
    p.add_argument(
        "--transcript",
        required=True,
        metavar="FILE",
        help="JSON Lines of LCA segments or 'CALLER: ...'/'AGENT: ...' lines ('-': stdin)",
    )
    p.add_argument("--call-id", help="the CallId in the output (default: the file's name)")
    p.add_argument("--categories", metavar="RULES", help="category rules (JSON, or YAML)")
    p.add_argument("--no-redact", action="store_true", help="keep card numbers in transcripts")
    p.add_argument("--out", metavar="F", help="write the JSON here instead of stdout")
    p.set_defaults(func=cmd_analyze)
