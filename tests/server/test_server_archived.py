"""Archived media (kvs-wire §3) through boto3: ListFragments, GetMediaForFragmentList,
GetClip (WAV) and the unsupported HLS / DASH / image APIs."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import struct
import time
import wave
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from server_helpers import (
    AudioUpload,
    Kvs,
    clusters_of,
    connect_audio,
    ramp,
    sent_bodies,
    shared_file,
    signed_post,
    tag_values,
    unique,
    wait_for,
    whole_second,
)

from callstream.client.producer import chime_producer, produce
from callstream.media.g711 import ulaw_decode, ulaw_encode
from callstream.mkv import writer
from callstream.mkv.writer import TrackSpec

NO_VALIDATION = Config(parameter_validation=False)
TOKEN_RE = re.compile(r"[a-zA-Z0-9+/]+={0,2}")


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


@dataclass
class Uploaded:
    name: str
    arn: str
    audio: AudioUpload
    fragments: list[dict[str, Any]]  # ListFragments output, in number order
    put_ms: tuple[int, int]  # the wall clock (epoch ms) before and after the PutMedia

    @property
    def numbers(self) -> list[str]:
        return [f["FragmentNumber"] for f in self.fragments]

    @property
    def server_ms(self) -> list[int]:
        return [ms(f["ServerTimestamp"]) for f in self.fragments]


def upload(kvs: Kvs, audio: AudioUpload, **create: Any) -> Uploaded:
    name, arn = kvs.create(**create)
    before = time.time_ns() // 1_000_000
    kvs.put(name, audio.chunks)
    after = time.time_ns() // 1_000_000
    frags = sorted(
        kvs.archived.list_fragments(StreamName=name, MaxResults=1000)["Fragments"],
        key=lambda f: f["FragmentNumber"],
    )
    return Uploaded(name, arn, audio, frags, (before, after))


@pytest.fixture(scope="module")
def connect(kvs: Kvs) -> Uploaded:
    """A Connect-shaped stream: 5 fragments of 1 s, ABSOLUTE producer timestamps on whole
    seconds, so that each fragment start is a timestamp every botocore sends exactly."""
    up = upload(kvs, connect_audio(5, fragment_ms=1000))
    assert len(up.fragments) == 5
    return up


def ts(ms: int) -> dt.datetime:
    """A boto3 request timestamp: whole seconds only (see ``whole_second``)."""
    return whole_second(ms)


def ms(value: dt.datetime) -> int:
    """A response timestamp in epoch ms."""
    return round(value.timestamp() * 1000)


def floor_s(t_ms: int) -> int:
    """The whole second at or before ``t_ms``."""
    return t_ms - t_ms % 1000


def ceil_s(t_ms: int) -> int:
    """The whole second at or after ``t_ms``."""
    return -(-t_ms // 1000) * 1000


def selector(kind: str, start_ms: int, end_ms: int, key: str = "FragmentSelector") -> Any:
    """A fragment selector with the exact (sub-second) times, for :func:`signed_post`."""
    return {
        key: {
            "FragmentSelectorType": kind,
            "TimestampRange": {"StartTimestamp": start_ms / 1000, "EndTimestamp": end_ms / 1000},
        }
    }


# --- ListFragments ----------------------------------------------------------------------------
def test_list_fragments_shape(kvs: Kvs, connect: Uploaded) -> None:
    for frag, start in zip(connect.fragments, connect.audio.starts_ms, strict=True):
        assert set(frag) == {
            "FragmentNumber",
            "FragmentSizeInBytes",
            "ProducerTimestamp",
            "ServerTimestamp",
            "FragmentLengthInMilliseconds",
        }
        assert len(frag["FragmentNumber"]) == 47
        assert frag["ProducerTimestamp"] == ts(start)
        assert frag["FragmentSizeInBytes"] > 0
        assert 0 < frag["FragmentLengthInMilliseconds"] <= 1000
        # the server timestamp is the arrival time: during the PutMedia
        assert connect.put_ms[0] <= ms(frag["ServerTimestamp"]) <= connect.put_ms[1]
    # raw wire: timestamps are JSON numbers, the fragment number a string
    bodies: list[bytes] = []
    kvs.archived.meta.events.register(
        "after-call.kinesis-video-archived-media.ListFragments",
        lambda http_response, **_: bodies.append(http_response.content),
    )
    kvs.archived.list_fragments(StreamARN=connect.arn)
    raw = json.loads(bodies[-1])["Fragments"][0]
    assert isinstance(raw["FragmentNumber"], str)
    assert isinstance(raw["ProducerTimestamp"], float | int)
    assert isinstance(raw["ServerTimestamp"], float | int)
    assert isinstance(raw["FragmentSizeInBytes"], int)


def test_list_fragments_timestamp_range_is_inclusive(kvs: Kvs, connect: Uploaded) -> None:
    starts = connect.audio.starts_ms

    def listed(kind: str, start: dt.datetime, end: dt.datetime) -> list[str]:
        frags = kvs.archived.list_fragments(
            StreamName=connect.name,
            FragmentSelector={
                "FragmentSelectorType": kind,
                "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end},
            },
        )["Fragments"]
        return sorted(f["FragmentNumber"] for f in frags)

    # [start of 1, start of 3]: 1, 2 and 3 (3 starts exactly at the end: included)
    assert listed("PRODUCER_TIMESTAMP", ts(starts[1]), ts(starts[3])) == connect.numbers[1:4]
    assert listed("PRODUCER_TIMESTAMP", ts(starts[2]), ts(starts[2])) == connect.numbers[2:3]
    assert listed("PRODUCER_TIMESTAMP", ts(starts[0] - 10**6), ts(starts[0] - 1000)) == []
    assert listed("PRODUCER_TIMESTAMP", ts(starts[-1] + 1000), ts(starts[-1] + 10**6)) == []
    # server timestamps (arrival times, now) are not producer timestamps (2023)
    server = connect.server_ms
    whole = (ts(floor_s(server[0])), ts(ceil_s(server[-1])))
    assert listed("SERVER_TIMESTAMP", *whole) == connect.numbers
    assert listed("PRODUCER_TIMESTAMP", *whole) == []


def test_list_fragments_selects_to_the_millisecond(kvs: Kvs, connect: Uploaded) -> None:
    """Sub-second request timestamps, as the JS SDK v3, the Java SDK and botocore from
    1.43.93 send them: the range is inclusive at both ends, to the millisecond."""
    starts = connect.audio.starts_ms

    def listed(kind: str, start_ms: int, end_ms: int) -> list[str]:
        body = {"StreamName": connect.name, **selector(kind, start_ms, end_ms)}
        status, raw = signed_post(kvs.url, "/listFragments", body)
        assert status == 200, raw
        return sorted(f["FragmentNumber"] for f in json.loads(raw)["Fragments"])

    kind = "PRODUCER_TIMESTAMP"
    assert listed(kind, starts[1], starts[3]) == connect.numbers[1:4]
    assert listed(kind, starts[1] + 1, starts[3] - 1) == connect.numbers[2:3]
    assert listed(kind, starts[1] - 1, starts[1]) == connect.numbers[1:2]
    # a range inside fragment 1 but after its start selects nothing
    assert listed(kind, starts[1] + 1, starts[1] + 999) == []
    server = connect.server_ms
    # 1, 2 and 3, and 0 or 4 if one arrived in the same millisecond as 1 or 3
    within = [
        n for n, t in zip(connect.numbers, server, strict=True) if server[1] <= t <= server[3]
    ]
    assert listed("SERVER_TIMESTAMP", server[1], server[3]) == within


def test_boto3_sub_second_timestamps_select_by_what_botocore_sends(
    kvs: Kvs, connect: Uploaded
) -> None:
    """A sub-second datetime through boto3: botocore before 1.43.93 sends its whole second,
    later versions the exact time (never a later time: that would skip a fragment). The
    server answers for what was sent."""
    client = kvs.client("kinesis-video-archived-media")
    sent = sent_bodies(client, "ListFragments")
    starts = connect.audio.starts_ms
    start, end = starts[1] + 500, starts[3] + 250  # inside fragments 1 and 3
    frags = client.list_fragments(
        StreamName=connect.name,
        FragmentSelector={
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {
                "StartTimestamp": dt.datetime.fromtimestamp(start / 1000, dt.UTC),
                "EndTimestamp": dt.datetime.fromtimestamp(end / 1000, dt.UTC),
            },
        },
    )["Fragments"]
    [body] = sent
    wire = body["FragmentSelector"]["TimestampRange"]
    lo, hi = round(wire["StartTimestamp"] * 1000), round(wire["EndTimestamp"] * 1000)
    assert (lo, hi) in ((start, end), (floor_s(start), floor_s(end)))
    # exact: 2 and 3; truncated to [start of 1, start of 3]: 1, 2 and 3
    expected = connect.numbers[2:4] if lo == start else connect.numbers[1:4]
    assert sorted(f["FragmentNumber"] for f in frags) == expected


def test_list_fragments_pagination(kvs: Kvs, connect: Uploaded) -> None:
    pages = list(
        kvs.archived.get_paginator("list_fragments").paginate(
            StreamName=connect.name,
            FragmentSelector={
                "FragmentSelectorType": "PRODUCER_TIMESTAMP",
                "TimestampRange": {
                    "StartTimestamp": ts(connect.audio.starts_ms[0]),
                    "EndTimestamp": ts(connect.audio.starts_ms[-1]),
                },
            },
            PaginationConfig={"PageSize": 2},
        )
    )
    assert [len(p["Fragments"]) for p in pages] == [2, 2, 1]
    assert [f["FragmentNumber"] for p in pages for f in p["Fragments"]] == connect.numbers
    for page in pages[:-1]:
        assert TOKEN_RE.fullmatch(page["NextToken"])
    assert "NextToken" not in pages[-1]
    first = kvs.archived.list_fragments(StreamName=connect.name, MaxResults=3)
    rest = kvs.archived.list_fragments(StreamName=connect.name, NextToken=first["NextToken"])
    assert [f["FragmentNumber"] for f in first["Fragments"] + rest["Fragments"]] == connect.numbers


def test_list_fragments_errors(kvs: Kvs, connect: Uploaded) -> None:
    loose = kvs.client("kinesis-video-archived-media", config=NO_VALIDATION)
    starts = connect.audio.starts_ms
    other, _ = kvs.create()
    token = kvs.archived.list_fragments(StreamName=connect.name, MaxResults=1)["NextToken"]
    for params in (
        {"MaxResults": 0},
        {"MaxResults": 1001},
        {"NextToken": "!!"},
        {"NextToken": base64.b64encode(b"{}").decode()},
        {
            "FragmentSelector": {
                "FragmentSelectorType": "ARRIVAL",
                "TimestampRange": {"StartTimestamp": 1, "EndTimestamp": 2},
            }
        },
        {
            "FragmentSelector": {
                "FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": ts(starts[2]), "EndTimestamp": ts(starts[1])},
            }
        },
        {"FragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP"}},
    ):
        with pytest.raises(ClientError) as exc:
            loose.list_fragments(StreamName=connect.name, **params)
        assert error_of(exc) == ("InvalidArgumentException", 400), params
    with pytest.raises(ClientError) as exc:  # a token of another stream
        kvs.archived.list_fragments(StreamName=other, NextToken=token)
    assert error_of(exc) == ("InvalidArgumentException", 400)
    with pytest.raises(ClientError) as exc:
        kvs.archived.list_fragments(StreamName=unique())
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    assert kvs.archived.list_fragments(StreamName=other)["Fragments"] == []


# --- GetMediaForFragmentList ------------------------------------------------------------------
def test_get_media_for_fragment_list(kvs: Kvs, connect: Uploaded) -> None:
    wanted = [connect.numbers[3], connect.numbers[0], connect.numbers[2]]
    resp = kvs.archived.get_media_for_fragment_list(StreamName=connect.name, Fragments=wanted)
    assert resp["ContentType"] == "video/webm"
    payload = resp["Payload"].read()
    assert tag_values(payload, "AWS_KINESISVIDEO_FRAGMENT_NUMBER") == wanted
    assert tag_values(payload, "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW") == []
    assert tag_values(payload, "AWS_KINESISVIDEO_CONTINUATION_TOKEN") == []
    assert len(tag_values(payload, "AWS_KINESISVIDEO_SERVER_TIMESTAMP")) == 3
    # the same documents GetMedia serves, minus the end tags
    media = kvs.get_media(connect.name, {"StartSelectorType": "EARLIEST"})
    by_number = dict(zip(connect.numbers, clusters_of(media), strict=True))
    assert clusters_of(payload) == [by_number[n] for n in wanted]
    assert payload.count(b"\x1a\x45\xdf\xa3") >= 3  # one EBML document per fragment


def test_get_media_for_fragment_list_of_an_uploaded_file(kvs: Kvs) -> None:
    data = shared_file("clusters.mkv").read_bytes()
    name, _ = kvs.create()
    kvs.put(name, [data], timecode_type="RELATIVE", producer_start_ms=1_700_000_000_000)
    numbers = sorted(
        f["FragmentNumber"] for f in kvs.archived.list_fragments(StreamName=name)["Fragments"]
    )
    payload = kvs.archived.get_media_for_fragment_list(StreamName=name, Fragments=numbers)[
        "Payload"
    ].read()
    assert clusters_of(payload) == clusters_of(data)


def test_get_media_for_fragment_list_errors(kvs: Kvs, connect: Uploaded) -> None:
    unknown = str(int(connect.numbers[-1]) + 1)  # well-formed, never stored
    for fragments in ([unknown], [connect.numbers[0], unknown], ["12345"]):
        with pytest.raises(ClientError) as exc:
            kvs.archived.get_media_for_fragment_list(StreamName=connect.name, Fragments=fragments)
        assert error_of(exc) == ("ResourceNotFoundException", 404), fragments
    loose = kvs.client("kinesis-video-archived-media", config=NO_VALIDATION)
    for fragments in ([], ["12a"], [connect.numbers[0]] * 1001, ["1" * 129]):
        with pytest.raises(ClientError) as exc:
            loose.get_media_for_fragment_list(StreamName=connect.name, Fragments=fragments)
        assert error_of(exc) == ("InvalidArgumentException", 400)
    with pytest.raises(ClientError) as exc:
        kvs.archived.get_media_for_fragment_list(StreamName=unique(), Fragments=[unknown])
    assert error_of(exc) == ("ResourceNotFoundException", 404)


def test_sixth_concurrent_get_media_for_fragment_list_is_refused(make_kvs: Any) -> None:
    """At most 5 concurrent GetMediaForFragmentList connections per stream, as on KVS."""
    kvs = make_kvs()
    name, _ = kvs.create()
    tracks = [TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0)]
    header = writer.ebml_header() + writer.segment_start() + writer.info() + writer.tracks(tracks)
    big = writer.cluster(0, [writer.simple_block(1, k, bytes(16000)) for k in range(64)])
    [number] = kvs.put(name, [header + big], producer_start_ms=0).numbers
    fragments = [number] * 400  # ~400 MB: each response stalls on its unread socket
    held = [
        kvs.archived.get_media_for_fragment_list(StreamName=name, Fragments=fragments)
        for _ in range(5)
    ]
    with pytest.raises(ClientError) as exc:
        kvs.archived.get_media_for_fragment_list(StreamName=name, Fragments=[number])
    assert error_of(exc) == ("ConnectionLimitExceededException", 400)
    for resp in held:
        resp["Payload"].close()

    def accepted() -> bool:
        try:
            payload = kvs.archived.get_media_for_fragment_list(StreamName=name, Fragments=[number])[
                "Payload"
            ].read()
        except ClientError:
            return False
        return clusters_of(payload) == [big]

    wait_for(accepted)


# --- GetClip ----------------------------------------------------------------------------------
def clip(kvs: Kvs, name: str, kind: str, start: Any, end: Any) -> tuple[str, bytes]:
    resp = kvs.archived.get_clip(
        StreamName=name,
        ClipFragmentSelector={
            "FragmentSelectorType": kind,
            "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end},
        },
    )
    return resp["ContentType"], resp["Payload"].read()


def read_wav(data: bytes) -> tuple[int, int, np.ndarray[Any, Any]]:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), w.getnchannels(), frames.reshape(-1, w.getnchannels())


def pcm(data: bytes) -> np.ndarray[Any, Any]:
    return np.frombuffer(data, dtype="<i2")


def test_get_clip_connect_stereo(kvs: Kvs, connect: Uploaded) -> None:
    starts = connect.audio.starts_ms
    content_type, data = clip(kvs, connect.name, "PRODUCER_TIMESTAMP", ts(starts[1]), ts(starts[3]))
    assert content_type == "audio/wav"
    rate, channels, frames = read_wav(data)
    assert (rate, channels) == (8000, 2)
    audio = connect.audio
    left = b"".join(audio.fragment_pcm("AUDIO_FROM_CUSTOMER", i) for i in (1, 2, 3))
    right = b"".join(audio.fragment_pcm("AUDIO_TO_CUSTOMER", i) for i in (1, 2, 3))
    assert np.array_equal(frames[:, 0], pcm(left))
    assert np.array_equal(frames[:, 1], pcm(right))


def test_get_clip_opens_in_ffmpeg(kvs: Kvs, connect: Uploaded) -> None:
    """What players use (libavformat via PyAV) reads the clip: PCM, stereo, 8 kHz, 5 s."""
    av = pytest.importorskip("av")
    starts = connect.audio.starts_ms
    _, data = clip(kvs, connect.name, "PRODUCER_TIMESTAMP", ts(starts[0]), ts(starts[-1]))
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        assert container.format.name == "wav"
        assert stream.codec_context.name == "pcm_s16le"
        assert (stream.rate, stream.channels) == (8000, 2)
        samples = sum(frame.samples for frame in container.decode(stream))
    assert samples == 5 * 8000


def test_get_clip_by_server_timestamp_and_last_fragment_alone(kvs: Kvs, connect: Uploaded) -> None:
    server = connect.server_ms
    whole = ts(floor_s(server[0])), ts(ceil_s(server[-1]))
    _, data = clip(kvs, connect.name, "SERVER_TIMESTAMP", *whole)
    _, _, frames = read_wav(data)
    assert np.array_equal(frames[:, 0], pcm(connect.audio.pcm["AUDIO_FROM_CUSTOMER"]))
    # to the millisecond (as sub-second clients send it): the fragments that arrived
    # from fragment 1 to fragment 3 (and 0 or 4 if one arrived in the same millisecond)
    body = {
        "StreamName": connect.name,
        **selector("SERVER_TIMESTAMP", server[1], server[3], key="ClipFragmentSelector"),
    }
    status, data = signed_post(kvs.url, "/getClip", body)
    assert status == 200, data
    _, _, frames = read_wav(data)
    within = [i for i, t in enumerate(server) if server[1] <= t <= server[3]]
    expected = b"".join(connect.audio.fragment_pcm("AUDIO_FROM_CUSTOMER", i) for i in within)
    assert np.array_equal(frames[:, 0], pcm(expected))
    # The last fragment's document carries no MimeType tag (Connect puts its metadata
    # before the *next* Cluster); its CodecPrivate signature still identifies L16.
    last = connect.audio.starts_ms[-1]
    _, data = clip(kvs, connect.name, "PRODUCER_TIMESTAMP", ts(last), ts(last))
    _, _, frames = read_wav(data)
    assert np.array_equal(frames[:, 1], pcm(connect.audio.fragment_pcm("AUDIO_TO_CUSTOMER", 4)))


def test_get_clip_fills_gaps_with_silence(kvs: Kvs, connect: Uploaded) -> None:
    """A stream missing fragment 1: the clip keeps true time, the hole is silence."""
    start = 1_700_000_100_000
    audio = connect_audio(3, fragment_ms=1000, start_ms=start)
    # drop fragment 1: header, fragment 0, fragment 2
    sparse = AudioUpload(
        [audio.chunks[0], audio.chunks[1], audio.chunks[3]], audio.pcm, [], 1000, 8000
    )
    up = upload(kvs, sparse)
    _, data = clip(kvs, up.name, "PRODUCER_TIMESTAMP", ts(start), ts(start + 2000))
    _, _, frames = read_wav(data)
    assert frames.shape == (3 * 8000, 2)
    assert np.array_equal(frames[:8000, 0], pcm(audio.fragment_pcm("AUDIO_FROM_CUSTOMER", 0)))
    assert not frames[8000:16000].any()
    assert np.array_equal(frames[16000:, 0], pcm(audio.fragment_pcm("AUDIO_FROM_CUSTOMER", 2)))


def test_get_clip_mono_pcm_track(kvs: Kvs) -> None:
    producer = chime_producer(
        transaction_id="t-1", voice_connector_id="vc-1", call_id="call-1", sample_rate=16000
    )
    samples = ramp(16000 // 2, 3)  # 500 ms
    start = floor_s(producer.producer_start_ms)
    chunks = [c.data for c in produce(producer, {"AUDIO": samples}, fragment_ms=250)]
    up = upload(kvs, AudioUpload(chunks, {"AUDIO": samples}, [], 250, 16000))
    _, data = clip(kvs, up.name, "PRODUCER_TIMESTAMP", ts(start), ts(start + 10_000))
    rate, channels, frames = read_wav(data)
    assert (rate, channels) == (16000, 1)
    assert np.array_equal(frames[:, 0], pcm(samples))


def test_get_clip_mulaw_ms_acm_track(kvs: Kvs) -> None:
    """G.711 µ-law declared the KVS producer way: A_MS/ACM with a WAVEFORMATEX."""
    waveformatex = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
    track = TrackSpec(number=1, name="leg", codec_id="A_MS/ACM", codec_private=waveformatex)
    law = ulaw_encode(pcm(ramp(16000, 4)))  # 2 s
    start = 1_700_000_200_000
    chunks = [
        writer.ebml_header() + writer.segment_start() + writer.info() + writer.tracks([track])
    ]
    for i in range(2):  # two 1 s fragments of fifty 20 ms blocks
        blocks = [
            writer.simple_block(1, 20 * j, law[i * 8000 + 160 * j : i * 8000 + 160 * (j + 1)])
            for j in range(50)
        ]
        chunks.append(writer.cluster(start + 1000 * i, blocks))
    up = upload(kvs, AudioUpload(chunks, {}, [], 1000, 8000))
    _, data = clip(kvs, up.name, "PRODUCER_TIMESTAMP", ts(start), ts(start + 1000))
    rate, channels, frames = read_wav(data)
    assert (rate, channels) == (8000, 1)
    assert np.array_equal(frames[:, 0], ulaw_decode(law))


@pytest.mark.parametrize(
    ("codec_private", "frame", "code"),
    [
        (None, b"\x00" * 160, "MissingCodecPrivateDataException"),
        (b"\x07\x00\x01\x00", b"\x00" * 160, "InvalidCodecPrivateDataException"),
        (
            struct.pack("<HHIIHHH", 1, 1, 8000, 16000, 2, 16, 0),
            b"\x00" * 161,
            "InvalidMediaFrameException",
        ),
        (
            struct.pack("<HHIIHHH", 0x55, 1, 8000, 2000, 1, 0, 0),
            b"\x00" * 160,
            "UnsupportedStreamMediaTypeException",
        ),
    ],
    ids=["no-codec-private", "short-waveformatex", "odd-pcm-frame", "mp3"],
)
def test_get_clip_codec_errors(
    kvs: Kvs, codec_private: bytes | None, frame: bytes, code: str
) -> None:
    track = TrackSpec(number=1, name="leg", codec_id="A_MS/ACM", codec_private=codec_private)
    start = 1_700_000_300_000
    chunks = [
        writer.ebml_header() + writer.segment_start() + writer.info() + writer.tracks([track]),
        writer.cluster(start, [writer.simple_block(1, 0, frame)]),
    ]
    up = upload(kvs, AudioUpload(chunks, {}, [], 20, 8000))
    with pytest.raises(ClientError) as exc:
        clip(kvs, up.name, "PRODUCER_TIMESTAMP", ts(start), ts(start))
    assert error_of(exc) == (code, 400)


def test_get_clip_limits_to_200_fragments(kvs: Kvs) -> None:
    audio = connect_audio(201, fragment_ms=20)
    up = upload(kvs, audio)
    assert len(up.fragments) == 201
    start = audio.starts_ms[0]
    _, data = clip(kvs, up.name, "PRODUCER_TIMESTAMP", ts(start), ts(audio.starts_ms[-1]))
    _, _, frames = read_wav(data)
    assert frames.shape[0] == 200 * 160  # the first 200 fragments, like KVS


def test_get_clip_errors(kvs: Kvs, connect: Uploaded) -> None:
    starts = connect.audio.starts_ms
    with pytest.raises(ClientError) as exc:  # nothing starts in the range
        clip(kvs, connect.name, "PRODUCER_TIMESTAMP", ts(starts[0] - 5000), ts(starts[0] - 1000))
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        clip(kvs, unique(), "PRODUCER_TIMESTAMP", ts(starts[0]), ts(starts[1]))
    assert error_of(exc) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        clip(kvs, connect.name, "PRODUCER_TIMESTAMP", ts(starts[1]), ts(starts[0]))
    assert error_of(exc) == ("InvalidArgumentException", 400)
    with pytest.raises(ClientError) as exc:
        clip(kvs, connect.name, "WALL_CLOCK", ts(starts[0]), ts(starts[1]))
    assert error_of(exc) == ("InvalidArgumentException", 400)

    name, _ = kvs.create(DataRetentionInHours=0)
    kvs.put(name, connect_audio(2).chunks)
    with pytest.raises(ClientError) as exc:
        clip(kvs, name, "PRODUCER_TIMESTAMP", ts(starts[0]), ts(starts[-1]))
    assert error_of(exc) == ("NoDataRetentionException", 400)


def test_get_clip_of_video_is_unsupported(kvs: Kvs) -> None:
    data = shared_file("clusters.mkv").read_bytes()
    name, _ = kvs.create()
    kvs.put(name, [data], timecode_type="RELATIVE", producer_start_ms=1_700_000_000_000)
    with pytest.raises(ClientError) as exc:
        clip(kvs, name, "PRODUCER_TIMESTAMP", ts(1_700_000_000_000), ts(1_700_000_100_000))
    assert error_of(exc) == ("UnsupportedStreamMediaTypeException", 400)


# --- HLS / DASH / images ----------------------------------------------------------------------
def test_streaming_sessions_and_images_are_not_supported(kvs: Kvs, connect: Uploaded) -> None:
    keep_none, _ = kvs.create(DataRetentionInHours=0)
    calls = {
        "hls": lambda name: kvs.archived.get_hls_streaming_session_url(
            StreamName=name, PlaybackMode="LIVE"
        ),
        "dash": lambda name: kvs.archived.get_dash_streaming_session_url(
            StreamName=name, PlaybackMode="ON_DEMAND"
        ),
        "images": lambda name: kvs.archived.get_images(
            StreamName=name,
            ImageSelectorType="PRODUCER_TIMESTAMP",
            StartTimestamp=ts(0),
            EndTimestamp=ts(1000),
            Format="JPEG",
        ),
    }
    for what, call in calls.items():
        with pytest.raises(ClientError) as exc:
            call(connect.name)
        assert error_of(exc) == ("InvalidArgumentException", 400), what
        assert "not supported" in exc.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as exc:
            call(keep_none)
        assert error_of(exc) == ("NoDataRetentionException", 400), what
        with pytest.raises(ClientError) as exc:
            call(unique())
        assert error_of(exc) == ("ResourceNotFoundException", 404), what
    loose = kvs.client("kinesis-video-archived-media", config=NO_VALIDATION)
    with pytest.raises(ClientError) as exc:
        loose.get_hls_streaming_session_url(StreamName=keep_none, Expires=10)
    assert error_of(exc) == ("InvalidArgumentException", 400)
