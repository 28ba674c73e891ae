"""Media plane (kvs-wire §2): PutMedia in, GetMedia out, through real clients' wire format."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError
from server_helpers import (
    Kvs,
    PutResult,
    clusters_of,
    connect_audio,
    put_media,
    sent_bodies,
    shared_file,
    signed_post,
    tag_values,
    unique,
    wait_for,
    whole_second,
)

from callstream.mkv.kvs import iter_fragments

FRAGMENT_NUMBER = "AWS_KINESISVIDEO_FRAGMENT_NUMBER"
CONTINUATION_TOKEN = "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
MILLIS_BEHIND_NOW = "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def numbers_in(payload: bytes) -> list[str]:
    return tag_values(payload, FRAGMENT_NUMBER)


def split(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- PutMedia -> GetMedia round trips -----------------------------------------------------------
@pytest.mark.parametrize("filename", ["clusters.mkv", "vogels_480.mkv"])
def test_putmedia_file_comes_back_byte_identical(kvs: Kvs, filename: str) -> None:
    data = shared_file(filename).read_bytes()
    name, _ = kvs.create()
    result = kvs.put(
        name, split(data), timecode_type="RELATIVE", producer_start_ms=1_700_000_000_000
    )
    sent = clusters_of(data)
    assert len(sent) > 1
    for event in ("BUFFERING", "RECEIVED", "PERSISTED"):
        assert len(result.of(event)) == len(sent), event
    assert [a["FragmentTimecode"] for a in result.of("BUFFERING")] == sorted(
        a["FragmentTimecode"] for a in result.of("BUFFERING")
    )

    payload = kvs.get_media(name, {"StartSelectorType": "EARLIEST"})
    assert clusters_of(payload) == sent  # every Cluster exactly as uploaded
    numbers = numbers_in(payload)
    assert numbers == [a["FragmentNumber"] for a in result.of("BUFFERING")]
    assert all(len(n) == 47 and n.isdigit() for n in numbers)
    assert numbers == sorted(numbers)
    assert tag_values(payload, CONTINUATION_TOKEN) == numbers
    assert len(tag_values(payload, MILLIS_BEHIND_NOW)) == len(numbers)
    fragments = list(iter_fragments([payload]))
    assert [f.fragment_number for f in fragments] == numbers
    # RELATIVE: producer timestamp = start + Cluster timecode (ms)
    assert fragments[0].producer_timestamp_ms == 1_700_000_000_000 + (
        fragments[0].cluster_timecode or 0
    )


def test_putmedia_retention_zero_is_still_readable(kvs: Kvs) -> None:
    name, _ = kvs.create(DataRetentionInHours=0)
    audio = connect_audio(3)
    result = kvs.put(name, audio.chunks)
    assert not result.of("PERSISTED")  # nothing is persisted without retention
    assert len(result.of("RECEIVED")) == 3
    payload = kvs.get_media(name, {"StartSelectorType": "EARLIEST"})
    assert numbers_in(payload) == [a["FragmentNumber"] for a in result.of("RECEIVED")]


def test_putmedia_errors(kvs: Kvs) -> None:
    missing = put_media(kvs.url, [b""], stream_name=unique("missing"))
    assert missing.status == 404
    assert missing.error and missing.error["Code"] == "ResourceNotFoundException"
    name, _ = kvs.create()
    bad = put_media(kvs.url, [b""], stream_name=name, timecode_type="SOMETIMES")
    assert bad.status == 400
    assert bad.error and bad.error["Code"] == "InvalidArgumentException"


# --- GetMedia start selectors -------------------------------------------------------------------
@dataclass
class Paced:
    name: str
    numbers: list[str]
    producer: list[int]  # epoch ms, on whole seconds
    server: list[int]  # epoch ms
    lengths: list[int]  # FragmentLengthInMilliseconds
    payload: bytes  # GetMedia EARLIEST


def ms(value: dt.datetime) -> int:
    return round(value.timestamp() * 1000)


@pytest.fixture(scope="module")
def paced(kvs: Kvs) -> Paced:
    """Five 1 s fragments starting on whole seconds (timestamps every botocore sends
    exactly), sent 300 ms apart, so server timestamps are spaced too."""
    name, _ = kvs.create()
    audio = connect_audio(5, fragment_ms=1000)
    chunks: list[bytes | float] = [audio.chunks[0] + audio.chunks[1]]
    for chunk in audio.chunks[2:]:
        chunks += [0.3, chunk]
    kvs.put(name, chunks)
    frags = sorted(
        kvs.archived.list_fragments(StreamName=name)["Fragments"],
        key=lambda f: f["FragmentNumber"],
    )
    assert len(frags) == 5
    payload = kvs.get_media(name, {"StartSelectorType": "EARLIEST"})
    return Paced(
        name=name,
        numbers=[f["FragmentNumber"] for f in frags],
        producer=[ms(f["ProducerTimestamp"]) for f in frags],
        server=[ms(f["ServerTimestamp"]) for f in frags],
        lengths=[f["FragmentLengthInMilliseconds"] for f in frags],
        payload=payload,
    )


def get_media_raw(kvs: Kvs, name: str, kind: str, at_ms: int) -> list[str]:
    """GetMedia with a sub-second StartTimestamp, sent as the JS SDK v3 and the Java SDK
    send it (botocore before 1.43.93 would send whole seconds); the fragment numbers."""
    selector = {"StartSelectorType": kind, "StartTimestamp": at_ms / 1000}
    status, payload = signed_post(
        kvs.url, "/getMedia", {"StreamName": name, "StartSelector": selector}
    )
    assert status == 200, payload
    return numbers_in(payload)


def containing(starts: list[int], lengths: list[int], at: int) -> int:
    """Index of the fragment a timestamp selector starts with: the last one containing
    ``at`` (fragments may overlap in server time), else the first one after it."""
    inside = [i for i, (s, n) in enumerate(zip(starts, lengths, strict=True)) if s <= at <= s + n]
    return inside[-1] if inside else next(i for i, s in enumerate(starts) if s >= at)


def test_selector_earliest(paced: Paced) -> None:
    assert numbers_in(paced.payload) == paced.numbers


def test_selector_fragment_number_starts_after_it(kvs: Kvs, paced: Paced) -> None:
    payload = kvs.get_media(
        paced.name,
        {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": paced.numbers[1]},
    )
    assert numbers_in(payload) == paced.numbers[2:]
    last = kvs.get_media(
        paced.name,
        {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": paced.numbers[-1]},
    )
    assert numbers_in(last) == []


def test_selector_continuation_token_resumes_after_it(kvs: Kvs, paced: Paced) -> None:
    tokens = tag_values(paced.payload, CONTINUATION_TOKEN)
    assert tokens == paced.numbers
    payload = kvs.get_media(
        paced.name, {"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": tokens[2]}
    )
    assert numbers_in(payload) == paced.numbers[3:]


def test_selector_producer_timestamp_picks_containing_fragment(kvs: Kvs, paced: Paced) -> None:
    start = paced.producer[2]
    # through boto3: the start of fragment 2 as datetime, float and int seconds, and a
    # sub-second datetime inside fragment 2, sent exactly or as its whole second (the
    # start of fragment 2) depending on the botocore version
    media = kvs.client("kinesis-video-media")
    sent = sent_bodies(media, "GetMedia")
    inside = dt.datetime.fromtimestamp((start + 500) / 1000, dt.UTC)
    for ts in (whole_second(start), start / 1000, start // 1000, inside):
        selector = {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": ts}
        payload = media.get_media(StreamName=paced.name, StartSelector=selector)["Payload"]
        assert numbers_in(payload.read()) == paced.numbers[2:], ts
    assert round(sent[-1]["StartSelector"]["StartTimestamp"] * 1000) in (start + 500, start)
    early = whole_second(paced.producer[0] - 3_600_000)
    payload = kvs.get_media(
        paced.name, {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": early}
    )
    assert numbers_in(payload) == paced.numbers
    # to the millisecond
    for at, first in ((start, 2), (start + 1, 2), (start + 500, 2), (start - 500, 1)):
        assert get_media_raw(kvs, paced.name, "PRODUCER_TIMESTAMP", at) == paced.numbers[first:]


def test_selector_server_timestamp_picks_containing_fragment(kvs: Kvs, paced: Paced) -> None:
    server = paced.server
    # 20 ms after fragment 3 arrived (to the millisecond)
    at = server[3] + 20
    first = containing(server, paced.lengths, at)
    assert first >= 3
    assert get_media_raw(kvs, paced.name, "SERVER_TIMESTAMP", at) == paced.numbers[first:]
    # through boto3: the first whole second from fragment 3's arrival on
    at = -(-server[3] // 1000) * 1000
    first = containing(server, paced.lengths, at)
    assert first >= 3
    payload = kvs.get_media(
        paced.name, {"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": whole_second(at)}
    )
    assert numbers_in(payload) == paced.numbers[first:]


def test_selector_now_serves_only_new_fragments(kvs: Kvs) -> None:
    name, _ = kvs.create()
    audio = connect_audio(4, fragment_ms=200)
    go = threading.Event()
    cut = len(audio.chunks[3]) * 2 // 3  # fragment 2 is mid-upload when NOW is asked

    def chunks() -> Any:
        # header, fragments 0 and 1 (complete once fragment 2 starts), part of fragment 2
        yield audio.chunks[0] + audio.chunks[1] + audio.chunks[2] + audio.chunks[3][:cut]
        while not go.is_set():
            yield 0.02
        yield audio.chunks[3][cut:]
        yield audio.chunks[4]

    results: list[PutResult] = []
    producer = threading.Thread(
        target=lambda: results.append(put_media(kvs.url, chunks(), stream_name=name))
    )
    producer.start()
    try:
        wait_for(lambda: len(kvs.archived.list_fragments(StreamName=name)["Fragments"]) == 2)
        resp = kvs.media.get_media(StreamName=name, StartSelector={"StartSelectorType": "NOW"})
    finally:
        go.set()
        producer.join(30)
    payload = resp["Payload"].read()
    numbers = sorted(
        f["FragmentNumber"] for f in kvs.archived.list_fragments(StreamName=name)["Fragments"]
    )
    assert len(numbers) == 4
    # the fragment being uploaded at the time of the call, and what followed
    assert numbers_in(payload) == numbers[2:]
    assert clusters_of(payload) == clusters_of(b"".join(audio.chunks))[2:]
    assert results and results[0].status == 200


def test_get_media_errors(kvs: Kvs, paced: Paced) -> None:
    with pytest.raises(ClientError) as exc:
        kvs.media.get_media(StreamName=unique(), StartSelector={"StartSelectorType": "EARLIEST"})
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    for selector in (
        {"StartSelectorType": "SOMETIME"},
        {"StartSelectorType": "FRAGMENT_NUMBER"},
        {"StartSelectorType": "CONTINUATION_TOKEN"},
        {"StartSelectorType": "PRODUCER_TIMESTAMP"},
    ):
        with pytest.raises(ClientError) as exc:
            kvs.media.get_media(StreamName=paced.name, StartSelector=selector)
        assert error_of(exc) == ("InvalidArgumentException", 400), selector


def test_fourth_concurrent_get_media_is_refused(make_kvs: Any) -> None:
    kvs = make_kvs(live_idle_timeout_s=1.0)
    name, _ = kvs.create()
    selector = {"StartSelectorType": "EARLIEST"}
    # Each call returns once the response headers arrived; the body stays open at the
    # (empty) live edge until the idle timeout.
    open_responses = [
        kvs.media.get_media(StreamName=name, StartSelector=selector) for _ in range(3)
    ]
    with pytest.raises(ClientError) as exc:
        kvs.media.get_media(StreamName=name, StartSelector=selector)
    assert error_of(exc) == ("ConnectionLimitExceededException", 400)
    for resp in open_responses:
        assert resp["Payload"].read() == b""

    def accepted() -> bool:
        try:
            kvs.media.get_media(StreamName=name, StartSelector=selector)["Payload"].close()
        except ClientError:
            return False
        return True

    wait_for(accepted)


def test_delete_stream_ends_live_readers(make_kvs: Any) -> None:
    # The producer is never cut off for idling here, so only the deletion can end a
    # reader that follows its open fragment (else the read below times out and fails).
    kvs = make_kvs(putmedia_idle_close_s=600.0)
    name, arn = kvs.create()
    audio = connect_audio(2, fragment_ms=200)
    cut = len(audio.chunks[2]) * 2 // 3
    resume = threading.Event()

    def chunks() -> Any:
        # fragment 1 stays half-uploaded while the producer pauses: the reader follows it
        yield audio.chunks[0] + audio.chunks[1] + audio.chunks[2][:cut]
        while not resume.is_set():
            yield 0.02
        yield audio.chunks[2][cut:]

    producer = threading.Thread(
        target=put_media, args=(kvs.url, chunks()), kwargs={"stream_name": name, "timeout": 120}
    )
    producer.start()
    try:
        wait_for(lambda: len(kvs.archived.list_fragments(StreamName=name)["Fragments"]) == 1)
        resp = kvs.media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
        body = resp["Payload"]
        first = body.read(100)  # the reader is streaming
        assert first
        kvs.kv.delete_stream(StreamARN=arn)
        rest = body.read()
        # the response ended while the producer was still connected and paused
        assert producer.is_alive() and not resume.is_set()
        served = tag_values(first + rest, FRAGMENT_NUMBER, partial=True)
        assert len(served) == 2  # fragment 0, then the live one up to the deletion
    finally:
        resume.set()
        producer.join(60)


# --- errors that could arise after the 200 -------------------------------------------------------
def test_get_media_after_a_short_fragment_number_is_a_clean_error(kvs: Kvs, paced: Paced) -> None:
    with pytest.raises(ClientError) as exc:
        kvs.media.get_media(
            StreamName=paced.name,
            StartSelector={"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "123"},
        )["Payload"].read()
    assert error_of(exc)[0] in {"InvalidArgumentException", "ResourceNotFoundException"}


def test_putmedia_to_a_deleted_stream_ends_with_an_error_ack(kvs: Kvs) -> None:
    name, arn = kvs.create()
    audio = connect_audio(3, fragment_ms=200)
    gate = threading.Event()

    def chunks() -> Any:
        yield audio.chunks[0] + audio.chunks[1] + audio.chunks[2]
        while not gate.is_set():
            yield 0.02
        yield audio.chunks[3]

    results: list[PutResult] = []

    def upload() -> None:
        with contextlib.suppress(TimeoutError):
            results.append(put_media(kvs.url, chunks(), stream_name=name, timeout=3))

    producer = threading.Thread(target=upload)
    producer.start()
    try:
        wait_for(lambda: len(kvs.archived.list_fragments(StreamName=name)["Fragments"]) == 1)
        kvs.kv.delete_stream(StreamARN=arn)
    finally:
        gate.set()
        producer.join(10)
    assert results, "PutMedia did not finish"
    assert results[0].of("ERROR")
