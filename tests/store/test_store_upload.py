"""The upload lifecycle, sans-I/O: what bytes, silences, the body's end and a newer upload
do to one PutMedia connection, on a clock the test drives."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.mkv import writer as w
from callstream.store.ingest import FragmentOpened, FragmentReady, IngestSession
from callstream.store.upload import (
    EndReason,
    IdleAck,
    UploadEnded,
    UploadEvent,
    UploadLifecycle,
    UploadState,
)

TRACKS = [w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0)]
HEADER = w.ebml_header() + w.segment_start() + w.info() + w.tracks(TRACKS)


def cluster(start_ms: int, frames: int = 5) -> bytes:
    return w.cluster(start_ms, [w.simple_block(1, 20 * i, b"\x00" * 320) for i in range(frames)])


def lifecycle(now: float = 0.0) -> UploadLifecycle:
    return UploadLifecycle(
        IngestSession(), now=now, flush_after_s=0.15, idle_ack_s=3.0, idle_close_s=30.0
    )


def kinds(events: list[UploadEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_a_complete_cluster_is_stored_once_the_producer_pauses() -> None:
    up = lifecycle()
    events = up.data(HEADER + cluster(0), now=1.0)
    assert "FragmentReceived" in kinds(events) and "FragmentReady" not in kinds(events)
    assert up.deadline() == 1.15  # the trailer may still come
    assert up.tick(1.1) == []
    ready = up.tick(1.15)
    assert kinds(ready) == ["FragmentReady"]
    assert up.deadline() == 4.0  # next: an IDLE ack, 3 s after the last bytes


def test_the_next_cluster_completes_the_previous_fragment_without_waiting() -> None:
    up = lifecycle()
    up.data(HEADER + cluster(0), now=0.0)
    events = up.data(cluster(100), now=0.1)
    assert "FragmentReady" in kinds(events)


def test_idle_acks_while_quiet_then_the_upload_ends() -> None:
    up = lifecycle()
    up.data(HEADER, now=0.0)
    acks = 0
    now = 0.0
    while up.state is UploadState.RECEIVING:
        deadline = up.deadline()
        assert deadline is not None and deadline > now
        now = deadline
        for event in up.tick(now):
            acks += isinstance(event, IdleAck)
    assert acks == 9  # at 3, 6, ... 27 s
    assert up.end_reason is EndReason.IDLE and now == 30.0
    assert up.deadline() is None


def test_data_postpones_idle_acks() -> None:
    up = lifecycle()
    up.data(HEADER, now=0.0)
    up.data(cluster(0), now=2.9)
    up.tick(3.1)  # the fragment's flush, nothing idle
    assert [e for e in up.tick(3.2) if isinstance(e, IdleAck)] == []
    assert up.deadline() == 5.9


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (UploadLifecycle.supersede, EndReason.SUPERSEDED),  # a newer upload
        (UploadLifecycle.end_of_body, EndReason.BODY_ENDED),
    ],
    ids=["superseded", "body-ended"],
)
def test_the_end_of_an_upload_completes_the_last_fragment(
    end: Callable[[UploadLifecycle], list[UploadEvent]], reason: EndReason
) -> None:
    up = lifecycle()
    up.data(HEADER + cluster(0), now=0.0)
    assert kinds(end(up)) == ["FragmentReady", "UploadEnded"]
    assert up.end_reason is reason
    assert up.data(cluster(100), now=1.0) == [] and up.tick(100.0) == []


def test_invalid_mkv_ends_the_upload_as_failed() -> None:
    up = lifecycle()
    events = up.data(b"\x1a\x45\xdf\xa3\x01\xff\xff\xff\xff\xff\xff\xff\x00garbage", now=0.0)
    assert isinstance(events[-1], UploadEnded) and events[-1].reason is EndReason.FAILED
    assert "IngestError" in kinds(events)


@settings(max_examples=60, deadline=None)
@given(
    pauses=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=3, max_size=3),
    cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=20),
)
def test_every_fragment_is_stored_once_whatever_the_pauses(
    pauses: list[float], cuts: list[int]
) -> None:
    body = HEADER + b"".join(cluster(200 * i) for i in range(3))
    up = lifecycle()
    now, pos, opened, ready = 0.0, 0, 0, 0
    pieces = []
    for size in cuts:
        pieces.append(body[pos : pos + size])
        pos += size
    pieces.append(body[pos:])

    def count(events: list[UploadEvent]) -> None:
        nonlocal opened, ready
        opened += sum(isinstance(e, FragmentOpened) for e in events)
        ready += sum(isinstance(e, FragmentReady) for e in events)

    for i, piece in enumerate(pieces):
        count(up.data(piece, now))
        now += pauses[i % len(pauses)]
        count(up.tick(now))
    count(up.end_of_body())
    assert opened == ready == 3
