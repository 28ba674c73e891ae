"""The call sink: ingest events in, tagged streams and the analytics' call events out,
through the store service in this process (real files, the real upload path)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import StreamAudio, parse_stream, tone

from callstream.ingest.call import LAG_MS, CallSink, IngestTarget, SinkSettings, Timeline
from callstream.ingest.events import (
    AudioReceived,
    CallEnded,
    CallPaused,
    CallResumed,
    CallStarted,
)
from callstream.kvs.selectors import StartSelector
from callstream.store.backends import open_backend
from callstream.store.service import MediaStore


class Clock:
    """Epoch milliseconds the test moves."""

    def __init__(self) -> None:
        self.ms = 1_764_900_000_000.0

    def __call__(self) -> float:
        return self.ms


async def _read(store: MediaStore, arn: str) -> tuple[StreamAudio, Any]:
    stream = await store.stream(arn=arn)
    fragments = [
        f.parse() async for f in store.read(stream, StartSelector.earliest(), follow=False)
    ]
    return parse_stream(fragments), stream


def run_call(
    tmp_path: Path,
    events: list[Any],
    *,
    settings: SinkSettings | None = None,
    step_ms: float = 20.0,
) -> tuple[CallSink, list[tuple[StreamAudio, Any]], list[dict[str, Any]]]:
    """Feed ``events`` (one clock step after each audio event) to a sink over a real store;
    return the sink, each stream read back, and the published events."""
    published: list[dict[str, Any]] = []

    def publish(event_type: str, detail: Mapping[str, Any]) -> None:
        published.append({"EventType": event_type, **detail})

    async def scenario() -> tuple[CallSink, list[tuple[StreamAudio, Any]]]:
        store = MediaStore(open_backend("embedded", tmp_path / "store"))
        await store.start()
        clock = Clock()
        try:
            sink = CallSink(IngestTarget(store, publish), settings, clock=clock)
            for event in events:
                await sink.handle([event])
                if isinstance(event, AudioReceived):
                    clock.ms += step_ms
                    await asyncio.sleep(0)
                elif isinstance(event, float):
                    clock.ms += event
                    sink.tick()
            await sink.end("test")
            read = [await _read(store, s.arn) for s in sink.streams]
        finally:
            await store.close()
        return sink, read

    sink, read = asyncio.run(scenario())
    return sink, read, published


def frames(
    pcm: bytes, channel: int, *, ms: int = 20, timestamps: bool = True, rate: int = 8000
) -> list[Any]:
    per_ms = rate * 2 // 1000
    step = per_ms * ms
    return [
        AudioReceived(channel, pcm[i : i + step], i // per_ms if timestamps else None)
        for i in range(0, len(pcm), step)
    ]


def interleave(*lists: list[Any]) -> list[Any]:
    out: list[Any] = []
    for group in zip(*lists, strict=True):
        out.extend(group)
    return out


START = CallStarted("twilio", "CA123", ("caller", "agent"), 8000, {"from": "+15550001"})


def test_connect_shape_one_stream_two_tracks_sample_exact_with_tags_and_events(
    tmp_path: Path,
) -> None:
    caller, agent = tone(3.0, 300, 1), tone(3.0, 500, 2)
    events = [START, *interleave(frames(caller, 0), frames(agent, 1)), CallEnded()]
    sink, [(audio, stream)], published = run_call(tmp_path, events)
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == caller
    assert audio.pcm["AUDIO_TO_CUSTOMER"] == agent
    assert stream.tags["callstream:source"] == "twilio"
    assert stream.tags["callstream:call-id"] == "CA123"
    assert stream.tags["callstream:meta:from"] == "+15550001"
    assert stream.tags["callstream:contact-id"] == sink.contact_id
    assert audio.tags[0]["ContactId"] == sink.contact_id
    assert audio.tags[0]["callstream:call-id"] == "CA123"
    kinds = [e["EventType"] for e in published]
    assert kinds == ["MediaStreamingStarted", "MediaStreamingStopped"]
    started, stopped = published
    assert started["ContactId"] == sink.contact_id and started["StreamARN"] == stream.arn
    assert started["StartFragmentNumber"] == audio.numbers[0]
    assert started["Tracks"] == ["AUDIO_FROM_CUSTOMER", "AUDIO_TO_CUSTOMER"]
    assert stopped["StopFragmentNumber"] == audio.numbers[-1]
    assert len(audio.numbers) == 3  # 1 s fragments


def test_chime_shape_a_stream_per_leg_with_is_caller(tmp_path: Path) -> None:
    caller, agent = tone(1.5, 300, 1), tone(1.5, 500, 2)
    events = [START, *interleave(frames(caller, 0), frames(agent, 1)), CallEnded()]
    sink, read, published = run_call(tmp_path, events, settings=SinkSettings(shape="chime"))
    (a_caller, s_caller), (a_agent, s_agent) = read
    assert a_caller.pcm["AUDIO"] == caller and a_agent.pcm["AUDIO"] == agent
    assert s_caller.tags["callstream:role"] == "caller"
    assert s_agent.tags["callstream:role"] == "agent"
    assert a_caller.tags[0]["TransactionId"] == sink.contact_id
    assert a_caller.tags[0]["CallId"] == "CA123"
    legs = [(e["StreamingStatus"], e["StreamARN"], e["IsCaller"]) for e in published]
    assert sorted(legs) == sorted(
        [
            ("STARTED", s_caller.arn, True),
            ("STARTED", s_agent.arn, False),
            ("ENDED", s_caller.arn, True),
            ("ENDED", s_agent.arn, False),
        ]
    )
    assert all(e["CallId"] == "CA123" and e["FromNumber"] == "+15550001" for e in published)


def test_swap_roles_puts_the_first_channel_on_the_agent_track(tmp_path: Path) -> None:
    caller, agent = tone(1.0, 300, 1), tone(1.0, 500, 2)
    events = [START, *interleave(frames(caller, 0), frames(agent, 1)), CallEnded()]
    _, [(audio, _)], _ = run_call(tmp_path, events, settings=SinkSettings(swap_roles=True))
    assert audio.pcm["AUDIO_TO_CUSTOMER"] == caller
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == agent


def test_timestamp_gaps_become_silence_and_late_audio_loses_its_overlap(tmp_path: Path) -> None:
    a, b, c = tone(0.2, 300, 1), tone(0.2, 400, 2), tone(0.2, 500, 3)
    start = CallStarted("twilio", "CA1", ("caller",), 8000)
    events = [
        start,
        AudioReceived(0, a, 0),
        AudioReceived(0, b, 500),  # 300 ms gap
        AudioReceived(0, c, 600),  # 100 ms late: its first 100 ms are dropped
        CallEnded(),
    ]
    _, [(audio, _)], _ = run_call(tmp_path, events)
    expect = a + bytes(16 * 300) + b + c[16 * 100 :]
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == expect
    # a mono source: the agent track is silence of the same length
    assert audio.pcm["AUDIO_TO_CUSTOMER"] == bytes(len(expect))


def test_audio_without_timestamps_is_appended(tmp_path: Path) -> None:
    caller = tone(1.0, 300, 1)
    events = [
        CallStarted("audiosocket", "u-1", ("caller",), 8000),
        *frames(caller, 0, timestamps=False),
    ]
    _, [(audio, _)], _ = run_call(tmp_path, [*events, CallEnded()])
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == caller


def test_pause_is_recorded_as_silence_as_long_as_it_lasted(tmp_path: Path) -> None:
    a, b = tone(0.4, 300, 1), tone(0.4, 400, 2)
    start = CallStarted("audiohook", "conv-1", ("caller", "agent"), 8000)
    # AudioHook positions that do not count the pause: b's timestamp follows a directly
    events = [
        start,
        *interleave(frames(a, 0), frames(a, 1)),
        CallPaused(),
        700.0,  # the clock moves 700 ms while paused
        CallResumed(),
        *[
            AudioReceived(f.channel, f.pcm, f.timestamp_ms + 400)
            for f in interleave(frames(b, 0), frames(b, 1))
        ],
        CallEnded(),
    ]
    _, [(audio, _)], _ = run_call(tmp_path, events)
    expect = a + bytes(16 * 700) + b
    assert audio.pcm["AUDIO_FROM_CUSTOMER"] == expect
    assert audio.pcm["AUDIO_TO_CUSTOMER"] == expect


def test_a_silent_channel_is_filled_so_the_other_keeps_moving() -> None:
    line = Timeline(["caller", "agent"], 8000, joint=True)
    pcm = tone(2.0, 300, 1)
    now = 0.0
    released = 0
    for i in range(0, len(pcm), 320):
        line.place("caller", pcm[i : i + 320], None, now)
        released += sum(len(p["caller"]) // 2 for _, p in line.release())
        now += 20
    # the agent never spoke: the caller's audio was released up to LAG_MS behind
    assert released >= 16000 - LAG_MS * 8 - 160
    assert line.lanes["agent"].audio_samples == 0


def test_a_one_channel_call_is_released_at_once_in_the_connect_shape() -> None:
    """The agent track of a caller-only source is silence that nobody waits for."""
    line = Timeline(["caller"], 8000, joint=True)
    pcm = tone(0.1, 300, 1)
    line.place("caller", pcm, None, 0.0)
    pieces = line.release()
    assert b"".join(p["caller"] for _, p in pieces) == pcm
    assert b"".join(p["agent"] for _, p in pieces) == bytes(len(pcm))


def test_a_call_without_call_started_ends_quietly(tmp_path: Path) -> None:
    sink, read, published = run_call(tmp_path, [AudioReceived(0, b"\0\0" * 160, 0)])
    assert read == [] and published == [] and sink.started is None


@pytest.mark.parametrize("rate", [16000])
def test_connect_shape_resamples_other_rates_to_8k(tmp_path: Path, rate: int) -> None:
    pcm = tone(1.0, 300, 1, rate=rate)
    start = CallStarted("websocket", "c1", ("caller",), rate)
    _, [(audio, _)], _ = run_call(tmp_path, [start, *frames(pcm, 0, ms=10, rate=rate), CallEnded()])
    n = len(audio.pcm["AUDIO_FROM_CUSTOMER"]) // 2
    assert abs(n - 8000) <= 160
