"""Transcript parsing: JSON Lines of LCA segments and CALLER:/AGENT: text lines."""

from __future__ import annotations

import json

import pytest

from callstream.analytics.transcript import WORDS_PER_SECOND, TranscriptError, parse_transcript


def test_text_lines_without_times_are_sequential_by_word_count() -> None:
    segs = parse_transcript("CALLER: one two three four five\n\nAGENT: six seven\n# note\n")
    assert [s.Channel for s in segs] == ["CALLER", "AGENT"]
    assert segs[0].StartTime == 0
    assert segs[0].EndTime == pytest.approx(5 / WORDS_PER_SECOND)
    assert segs[1].StartTime == pytest.approx(segs[0].EndTime)
    assert segs[1].Transcript == "six seven"
    assert not segs[0].IsPartial


def test_text_lines_with_timestamps() -> None:
    segs = parse_transcript(
        "[00:05] agent: hello\n[1:02.5-1:04] CUSTOMER: my card\n[70] CALLER: ok\n[1:00:00] AGENT: bye"
    )
    assert [(s.Channel, s.StartTime) for s in segs] == [
        ("AGENT", 5),
        ("CALLER", 62.5),
        ("CALLER", 70),
        ("AGENT", 3600),
    ]
    assert segs[1].EndTime == 64


def test_json_lines_lca_shapes_and_partials_replaced() -> None:
    lines = [
        {"EventType": "START", "CallId": "c1"},
        {
            "Channel": "CALLER",
            "SegmentId": "ch_0-1",
            "StartTime": "1.0",
            "EndTime": "2",
            "Transcript": "I want",
            "IsPartial": True,
        },
        {
            "EventType": "ADD_TRANSCRIPT_SEGMENT",
            "IsCaller": False,
            "SegmentId": "a",
            "BeginOffsetMillis": 500,
            "EndOffsetMillis": 900,
            "Transcript": "Hello",
        },
        {
            "Channel": "CALLER",
            "SegmentId": "ch_0-1",
            "StartTime": 1.0,
            "EndTime": 3.0,
            "Transcript": "I want a refund",
            "IsPartial": False,
        },
        {
            "Channel": "CALLER",
            "SegmentId": "ch_0-1",
            "StartTime": 1.0,
            "EndTime": 2.0,
            "Transcript": "late partial",
            "IsPartial": True,
        },
        {"Channel": "AGENT_ASSISTANT", "Transcript": "tip"},
        {"EventType": "END", "CallId": "c1"},
    ]
    segs = parse_transcript("\n".join(json.dumps(x) for x in lines))
    assert [(s.SegmentId, s.Channel, s.StartTime, s.EndTime) for s in segs] == [
        ("a", "AGENT", 0.5, 0.9),
        ("ch_0-1", "CALLER", 1.0, 3.0),
    ]
    assert segs[1].Transcript == "I want a refund" and not segs[1].IsPartial


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("CALLER: hi\nBOB says hi", 2, "expected"),
        ("CALLER: hi\nMANAGER: hi", 2, "unknown speaker"),
        ('AGENT: hi\n\n{"Channel": "CALLER", ', 3, "invalid JSON"),
        ('{"Channel": "BOSS", "Transcript": "x"}', 1, "Channel"),
        ('{"Channel": "AGENT"}', 1, "Transcript"),
        ('{"Channel": "AGENT", "Transcript": "x", "StartTime": "soon"}', 1, "StartTime"),
        ('{"Channel": "AGENT", "Transcript": "x", "StartTime": 5, "EndTime": 2}', 1, "before"),
        ('{"Channel": "AGENT", "Transcript": "x", "Sentiment": "HAPPY"}', 1, "Sentiment"),
        ("[1:2:3:4] CALLER: x", 1, "expected"),
        ("[5-2] CALLER: x", 1, "before"),
        ("[1] CALLER: a\n[]", 2, "expected"),
        ("[1, 2]", 1, "expected"),
    ],
)
def test_errors_name_the_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(TranscriptError) as info:
        parse_transcript(text)
    assert info.value.line == line
    assert str(info.value).startswith(f"line {line}: ")
    assert needle in str(info.value)


def test_empty_input_is_an_error() -> None:
    with pytest.raises(TranscriptError, match="no transcript segments"):
        parse_transcript("\n# only a comment\n")
