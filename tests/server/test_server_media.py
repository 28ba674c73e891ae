"""Media plane (kvs-wire §2): PutMedia in, GetMedia out, through real clients' wire format."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
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
    shared_file,
    tag_values,
    unique,
    wait_for,
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
    producer: list[dt.datetime]
    server: list[dt.datetime]
    payload: bytes  # GetMedia EARLIEST


@pytest.fixture(scope="module")
def paced(kvs: Kvs) -> Paced:
    """Five 200 ms fragments sent 300 ms apart, so server timestamps are spaced too."""
    name, _ = kvs.create()
    audio = connect_audio(5, fragment_ms=200)
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
        producer=[f["ProducerTimestamp"] for f in frags],
        server=[f["ServerTimestamp"] for f in frags],
        payload=payload,
    )


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
    inside = paced.producer[2] + dt.timedelta(milliseconds=50)
    for ts in (inside, paced.producer[2], inside.timestamp()):
        payload = kvs.get_media(
            paced.name, {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": ts}
        )
        assert numbers_in(payload) == paced.numbers[2:], ts
    early = paced.producer[0] - dt.timedelta(hours=1)
    payload = kvs.get_media(
        paced.name, {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": early}
    )
    assert numbers_in(payload) == paced.numbers


def test_selector_server_timestamp_picks_containing_fragment(kvs: Kvs, paced: Paced) -> None:
    inside = paced.server[3] + dt.timedelta(milliseconds=20)
    payload = kvs.get_media(
        paced.name, {"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": inside}
    )
    assert numbers_in(payload) == paced.numbers[3:]


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


def test_delete_stream_ends_live_readers(kvs: Kvs) -> None:
    name, arn = kvs.create()
    audio = connect_audio(2, fragment_ms=200)
    cut = len(audio.chunks[2]) * 2 // 3
    # fragment 1 stays half-uploaded while the producer pauses: the reader follows it live
    chunks: list[bytes | float] = [
        audio.chunks[0] + audio.chunks[1] + audio.chunks[2][:cut],
        2.0,
        audio.chunks[2][cut:],
    ]
    producer = threading.Thread(
        target=put_media, args=(kvs.url, chunks), kwargs={"stream_name": name}
    )
    producer.start()
    try:
        wait_for(lambda: len(kvs.archived.list_fragments(StreamName=name)["Fragments"]) == 1)
        resp = kvs.media.get_media(StreamName=name, StartSelector={"StartSelectorType": "EARLIEST"})
        body = resp["Payload"]
        first = body.read(100)  # the reader is streaming
        assert first
        deleted = time.monotonic()
        kvs.kv.delete_stream(StreamARN=arn)
        rest = body.read()
        assert time.monotonic() - deleted < 1.5  # woken at once, not left to time out
        served = tag_values(first + rest, FRAGMENT_NUMBER, partial=True)
        assert len(served) == 2  # fragment 0, then the live one up to the deletion
    finally:
        producer.join(30)


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
