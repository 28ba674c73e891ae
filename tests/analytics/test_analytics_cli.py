"""``callstream analyze --transcript`` end to end in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callstream.cli", "analyze", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_analyze_text_transcript_to_stdout(tmp_path: Path) -> None:
    path = tmp_path / "support-call.txt"
    path.write_text(
        "CALLER: This is terrible, I am really angry about the outage!\n"
        "AGENT: Let me check the status.\n"
        "CALLER: Thank you, that is great news, I appreciate it.\n"
    )
    proc = _run("--transcript", str(path))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["CallId"] == "support-call"
    assert [s["Channel"] for s in report["Segments"]] == ["CALLER", "AGENT", "CALLER"]
    assert report["Segments"][0]["Sentiment"] == "NEGATIVE"
    assert set(report["Sentiment"]) == {"CALLER", "AGENT"}
    assert {"Categories", "Flags", "Summary", "Channels"} <= set(report)


def test_analyze_jsonl_to_file_with_call_id(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(
            {
                "Channel": "AGENT",
                "SegmentId": "x",
                "StartTime": 0,
                "EndTime": 1.5,
                "Transcript": "Hello, how can I help?",
            }
        )
        + "\n"
    )
    out = tmp_path / "out.json"
    proc = _run("--transcript", str(path), "--call-id", "abc", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    report = json.loads(out.read_text())
    assert report["CallId"] == "abc" and report["Segments"][0]["EndTime"] == 1.5


def test_analyze_stdin() -> None:
    proc = _run("--transcript", "-", stdin="AGENT: hi\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["CallId"] == "call"


def test_bad_input_is_one_line_with_the_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("CALLER: hello\nAGENT: fine\nthis line has no speaker\n")
    proc = _run("--transcript", str(path))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("callstream analyze: ") and "line 3:" in lines[0]


def test_missing_file_and_binary_input(tmp_path: Path) -> None:
    proc = _run("--transcript", str(tmp_path / "nope.txt"))
    assert proc.returncode == 1 and "cannot open" in proc.stderr
    path = tmp_path / "bin.txt"
    path.write_bytes(b"CALLER: ok\n\xff\xfe\n")
    proc = _run("--transcript", str(path))
    assert proc.returncode == 1 and "line 2: not UTF-8" in proc.stderr


CALL = """\
[00:01] AGENT: Thank you for calling, how can I help?
[00:04] CALLER: Third time I call, you useless idiot, my card was charged twice.
[00:12] AGENT: I am sorry about that. Can I have the card number?
[00:16] CALLER: It is 4111 1111 1111 1111, expiry 05/27.
[00:30] AGENT: Thank you, I have refunded the second charge.
[00:36] CALLER: Great, thanks a lot, that is really helpful. I bought 2 items in Scunthorpe.
"""


def test_analyze_flags_categories_and_redaction(tmp_path: Path) -> None:
    (tmp_path / "call.txt").write_text(CALL)
    rules = [
        {"name": "refund", "phrases": ["refunded"], "channel": "AGENT"},
        {"name": "no-goodbye", "phrases": ["have a nice day"], "channel": "AGENT", "negate": True},
    ]
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    done = _run("--transcript", str(tmp_path / "call.txt"), "--categories",
                str(tmp_path / "rules.json"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    kinds = {flag["Type"]: flag for flag in report["Flags"]}
    assert kinds["ABUSIVE_CALLER"]["SegmentIds"] == ["CALLER-1"]
    assert {m["Category"] for m in report["Categories"]} == {"refund", "no-goodbye"}
    texts = [s["Transcript"] for s in report["Segments"]]
    assert "4111" not in " ".join(texts) and "[PCI]" in texts[3]
    assert "2 items in Scunthorpe" in texts[5]  # ordinary numbers and places stay
    kept = _run("--transcript", str(tmp_path / "call.txt"), "--no-redact")
    assert "4111 1111 1111 1111" in kept.stdout

    (tmp_path / "bad.json").write_text(json.dumps([{"name": "x", "regex": "(unclosed"}]))
    bad = _run("--transcript", str(tmp_path / "call.txt"), "--categories",
               str(tmp_path / "bad.json"))  # fmt: skip
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1 and "bad.json" in bad.stderr
