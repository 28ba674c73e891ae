"""``callstream export-dataset``: clips cut from real call directories, manifest and CSV.

The fixture calls are made with the real parts: :class:`CallStore` rows, events from a
:class:`CallAnalysis` written as the service writes them (``lca_record``, one JSON per
line), ``call.json`` from its export and ``recording.wav`` from the service's
``write_stereo``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callstream.analytics.asr import Recognition
from callstream.analytics.call import CallAnalysis, CallSettings, UtteranceJob
from callstream.analytics.callstore import CallRow, CallStore, call_dir_name
from callstream.analytics.categories import Rule
from callstream.analytics.dataset import (
    CSV_COLUMNS,
    MANIFEST_FIELDS,
    MARGIN_S,
    DatasetError,
    add_dataset_command,
    masked_spans,
    parse_time,
)
from callstream.analytics.redaction import redact_segments
from callstream.analytics.session import lca_record, write_json, write_stereo
from callstream.analytics.transcript import Segment
from callstream.cli import CliError
from callstream.media.wav import read_wav

RATE = 8000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CARD = "my card number is 4111 1111 1111 1111 thanks"


@dataclass
class Spoken:
    role: str
    start: float
    end: float
    text: str
    confidence: float = 0.9
    final: bool = True


def _noise(seconds: float, seed: int) -> np.ndarray:
    """Audio without a zero sample, so only silencing makes zeros."""
    rng = np.random.default_rng(seed)
    values = rng.integers(100, 3000, int(seconds * RATE), dtype=np.int16)
    return (values * rng.choice(np.array([-1, 1], dtype=np.int16), values.size)).astype("<i2")


def _make_call(
    store: CallStore,
    call_id: str,
    started_ms: int,
    spoken: list[Spoken],
    *,
    seconds: float = 10.0,
    live_redact: bool = True,
    status: str = "ENDED",
) -> None:
    directory = store.call_dir(call_id)
    rules = (Rule("OUTAGE", phrases=["internet is down"]),)
    analysis = CallAnalysis(call_id, CallSettings(rules=rules, redact=live_redact))
    events = []
    for s in spoken:
        job = UtteranceJob(s.role, s.start, s.end, b"", s.final, None)
        events += analysis.recognized(job, Recognition(s.text, s.confidence), now=0.0)
    export: dict[str, Any] = {}
    if status == "ENDED":
        events += analysis.finish(seconds)
        export = analysis.export()
        export["Recording"] = "recording.wav"
        write_json(directory / "call.json", export)
        (directory / "caller.raw").write_bytes(_noise(seconds, 1).tobytes())
        (directory / "agent.raw").write_bytes(_noise(seconds, 2).tobytes())
        write_stereo(directory / "recording.wav", directory / "caller.raw", directory / "agent.raw")
        (directory / "caller.raw").unlink()
        (directory / "agent.raw").unlink()
    with (directory / "events.jsonl").open("a", encoding="utf-8") as log:
        for event in events:
            log.write(json.dumps(lca_record(event), ensure_ascii=False) + "\n")
    row = CallRow(call_id, "CONNECT", status, started_ms, started_ms + 60_000)
    row.flags = sorted({f["Type"] for f in export.get("Flags", [])})
    row.categories = sorted({c["Category"] for c in export.get("Categories", [])})
    store.upsert(row)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    store = CallStore(data / "analytics")
    _make_call(
        store,
        "call-b",
        T0 + 3_600_000,
        [
            Spoken("AGENT", 0.05, 1.5, "Thank you for calling, how can I help?", 0.95),
            Spoken("CALLER", 2.0, 6.0, CARD, 0.8),
            Spoken("CALLER", 7.0, 9.96, "you stupid idiot, this is damn useless", 0.4),
        ],
        live_redact=False,  # the recogniser's digits reached the log unmasked
    )
    _make_call(
        store,
        "call-a",
        T0,
        [
            Spoken("CALLER", 0.5, 2.5, "Hello, my internet is down again", 0.9),
            Spoken("AGENT", 3.0, 4.0, "", 0.9),  # noise: an empty final
            Spoken("AGENT", 4.0, 6.0, "Let me check that for you", 0.7),
            Spoken("CALLER", 6.5, 9.5, "sure, " + CARD, 0.9),  # masked live: "[PCI]"
            Spoken("AGENT", 8.0, 9.0, "still thinking", 0.9, final=False),
        ],
    )
    _make_call(store, "call-live", T0 + 7_200_000, [Spoken("CALLER", 1, 2, "hi")], status="STARTED")
    store.close()
    return data


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callstream")
    sub = parser.add_subparsers(dest="command", required=True)
    add_dataset_command(sub)
    args = parser.parse_args(["export-dataset", *argv])
    return int(args.func(args))


def _export(data_dir: Path, out: Path, *argv: str) -> list[dict[str, Any]]:
    assert _run("--data-dir", str(data_dir), "--out", str(out), *argv) == 0
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _recording(data_dir: Path, call_id: str) -> np.ndarray:
    path = data_dir / "analytics" / "calls" / call_dir_name(call_id) / "recording.wav"
    return read_wav(path).samples


def test_clips_are_the_recordings_samples_with_manifest_and_csv(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    records = _export(data_dir, out)
    assert [(r["call_id"], r["channel"], r["start"]) for r in records] == [
        ("call-a", "CALLER", 0.5),
        ("call-a", "AGENT", 4.0),
        ("call-a", "CALLER", 6.5),
        ("call-b", "AGENT", 0.05),
        ("call-b", "CALLER", 2.0),
        ("call-b", "CALLER", 7.0),
    ]  # ENDED calls only, by call start then segment start; no partial, no empty final
    assert capsys.readouterr().err.strip().splitlines() == [
        f"callstream export-dataset: 6 clips, 0.00 hours, 2 calls -> {out}"
    ]
    for r in records:
        assert list(r) == list(MANIFEST_FIELDS)
        wav = read_wav(out / r["audio_filepath"])
        assert (wav.rate, wav.channels) == (RATE, 1)
        assert r["duration"] == pytest.approx(wav.duration, abs=1e-9)
        assert r["duration"] == pytest.approx(r["clip_end"] - r["clip_start"], abs=1e-9)
        assert r["clip_start"] == pytest.approx(max(0.0, r["start"] - MARGIN_S))
        assert r["clip_end"] == pytest.approx(min(10.0, r["end"] + MARGIN_S))
        assert r["audio_filepath"] == f"clips/{r['call_id']}/{r['segment_id']}.wav"
        recording = _recording(data_dir, r["call_id"])
        lo, hi = round(r["clip_start"] * RATE), round(r["clip_end"] * RATE)
        channel = 0 if r["channel"] == "CALLER" else 1
        expected = recording[lo:hi, channel]
        if "[PCI]" in r["text"]:
            assert (wav.samples[:, 0] == 0).any()
        else:
            np.testing.assert_array_equal(wav.samples[:, 0], expected)
    first = records[0]
    assert (
        first["segment_id"] == "ch_0-0.500" and first["text"] == "Hello, my internet is down again"
    )
    assert first["confidence"] == 0.9 and first["sentiment"] in ("NEGATIVE", "NEUTRAL", "MIXED")
    abusive = records[-1]
    assert abusive["issues"] and set(abusive["issues"]) <= {"PROFANITY", "INSULT", "THREAT"}
    assert "ABUSIVE_CALLER" in abusive["call_flags"] and abusive["categories"] == []
    assert all(r["categories"] == ["OUTAGE"] for r in records if r["call_id"] == "call-a")
    assert isinstance(abusive["sentiment_weighted"], float)

    with (out / "metadata.csv").open(encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(CSV_COLUMNS)
    assert CSV_COLUMNS[:2] == ("file_name", "transcription")
    assert [row["file_name"] for row in table] == [r["audio_filepath"] for r in records]
    assert [row["transcription"] for row in table] == [r["text"] for r in records]
    assert [float(row["duration"]) for row in table] == [r["duration"] for r in records]
    assert table[-1]["issues"] == ";".join(abusive["issues"])
    assert all((out / row["file_name"]).is_file() for row in table)


def test_pci_is_masked_in_text_and_silenced_in_audio(data_dir: Path, tmp_path: Path) -> None:
    records = {(r["call_id"], r["start"]): r for r in _export(data_dir, tmp_path / "ds")}
    # digits the live redaction let through: masked now, silenced where redact_segments says
    leaked = records[("call-b", 2.0)]
    assert leaked["text"] == "my card number is [PCI] thanks"
    seg = Segment("ch_0-2.000", "CALLER", 2.0, 6.0, CARD)
    ((_, t0, t1),) = redact_segments([seg])[1]
    _assert_silenced(tmp_path / "ds", leaked, _recording(data_dir, "call-b"), [(t0, t1)])
    # masked live: the mask's possible extent is silenced
    live = records[("call-a", 6.5)]
    assert live["text"] == "sure, my card number is [PCI] thanks"
    spans = masked_spans(Segment("x", "CALLER", 6.5, 9.5, live["text"]))
    # a spoken number may have run to the segment's end: then the margin is silenced too
    assert len(spans) == 1 and 6.5 < spans[0][0] < spans[0][1] == 9.5
    spans = [(spans[0][0], 9.5 + MARGIN_S)]
    _assert_silenced(tmp_path / "ds", live, _recording(data_dir, "call-a"), spans)


def _assert_silenced(
    out: Path, record: dict[str, Any], recording: np.ndarray, spans: list[tuple[float, float]]
) -> None:
    clip = read_wav(out / record["audio_filepath"]).samples[:, 0]
    lo = round(record["clip_start"] * RATE)
    expected = recording[lo : lo + clip.size, 0].copy()
    for t0, t1 in spans:
        a, b = int(np.floor(t0 * RATE)) - lo, min(clip.size, int(np.ceil(t1 * RATE)) - lo)
        assert 0 < a < a + RATE // 2 < b  # a real span, inside the clip
        assert not clip[a:b].any()
        expected[a:b] = 0
    np.testing.assert_array_equal(clip, expected)  # nothing else changed


def test_no_redact_keeps_text_and_audio_as_stored(data_dir: Path, tmp_path: Path) -> None:
    records = {
        (r["call_id"], r["start"]): r for r in _export(data_dir, tmp_path / "ds", "--no-redact")
    }
    leaked = records[("call-b", 2.0)]
    assert leaked["text"] == CARD
    clip = read_wav(tmp_path / "ds" / leaked["audio_filepath"]).samples[:, 0]
    lo = round(leaked["clip_start"] * RATE)
    np.testing.assert_array_equal(clip, _recording(data_dir, "call-b")[lo : lo + clip.size, 0])
    assert records[("call-a", 6.5)]["text"] == "sure, my card number is [PCI] thanks"


def test_filters(data_dir: Path, tmp_path: Path) -> None:
    def calls(*argv: str) -> list[tuple[str, float]]:
        return [(r["call_id"], r["start"]) for r in _export(data_dir, tmp_path / "f", *argv)]

    assert {c for c, _ in calls("--since", "2026-01-01T00:30:00Z")} == {"call-b"}
    assert {c for c, _ in calls("--since", str(T0 + 3_600_000))} == {"call-b"}
    assert {c for c, _ in calls("--until", "2026-01-01T01:00:00+00:00")} == {"call-a"}
    assert calls("--since", "2026-01-02") == []
    assert calls("--min-confidence", "0.85") == [
        ("call-a", 0.5),
        ("call-a", 6.5),
        ("call-b", 0.05),
    ]
    assert calls("--channel", "agent") == [("call-a", 4.0), ("call-b", 0.05)]
    assert calls("--channel", "CALLER", "--calls", "call-b") == [("call-b", 2.0), ("call-b", 7.0)]


def test_rerun_replaces_a_previous_export_and_is_deterministic(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    _export(data_dir, out)
    first = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    _export(data_dir, out, "--channel", "AGENT")
    assert sorted(p.name for p in (out / "clips" / "call-a").iterdir()) == ["ch_1-4.000.wav"]
    _export(data_dir, out)
    again = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert again == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "ds"]  # no leftovers


def test_a_directory_that_is_not_an_export_is_refused(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(CliError, match=r"--out .*mine is not empty and not a dataset export"):
        _run("--data-dir", str(data_dir), "--out", str(out))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    with pytest.raises(CliError, match="give a directory to create or replace"):
        _run("--data-dir", str(data_dir), "--out", "/")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "mine"]


def test_unreadable_recording_is_skipped_with_a_warning(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "analytics" / "calls" / "call-a" / "recording.wav").write_bytes(b"RIFF junk")
    records = _export(data_dir, tmp_path / "ds", "--calls", "call-a,call-b,nope,call-live")
    assert {r["call_id"] for r in records} == {"call-b"}
    err = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "\n".join(err)
    warnings = [line for line in err if ": warning: " in line]
    assert len(warnings) == 3
    assert warnings[0].endswith("call nope: not found, skipped")
    assert warnings[1].endswith("call call-live: STARTED, not ENDED; skipped")
    assert re.search(r"warning: call call-a: recording\.wav: .*; skipped$", warnings[2])
    assert err[-1].endswith(f"3 clips, 0.00 hours, 1 calls -> {tmp_path / 'ds'}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday': not an ISO 8601 time"),
        (["--until", "1767225600"], "--until 1767225600: epoch milliseconds have 12 or more"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "is not before --until"),
        (["--min-confidence", "1.5"], "--min-confidence must be within 0..1"),
        (["--calls", ","], "--calls: no call id given"),
    ],
)
def test_bad_arguments_are_one_line(
    data_dir: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    with pytest.raises(CliError) as err:
        _run("--data-dir", str(data_dir), "--out", str(tmp_path / "ds"), *argv)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_missing_or_empty_data_dir(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=r"--data-dir .*nowhere: no such directory"):
        _run("--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "ds"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CliError, match="no analysed calls here"):
        _run("--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "ds"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # nothing created


def test_parse_time() -> None:
    assert parse_time("2026-01-01T00:00:00Z", "--since") == T0
    assert parse_time("2026-01-01", "--since") == T0  # no zone: UTC
    assert parse_time("2026-01-01T01:00:00+01:00", "--since") == T0
    assert parse_time(str(T0), "--since") == T0
    with pytest.raises(DatasetError):
        parse_time("2026-13-01", "--since")


def test_masked_spans_cover_a_long_spoken_number() -> None:
    seg = Segment("s", "CALLER", 10.0, 20.0, "[PCI] and [PCI] please")
    spans = masked_spans(seg)
    assert len(spans) == 2
    assert spans[0][0] == 10.0  # starts the segment
    assert all(10.0 <= a < b <= 20.0 for a, b in spans)
    assert spans[1][1] > 17.0  # a long second number reaches near the end
