"""Call audio for analytics: channels out of Connect- and Chime-shaped KVS streams as they
arrive (:class:`ChannelFeed`), and out of saved WAV / MKV files (:func:`read_call_file`).

Streams are made by callstream's own producer (what ``callstream encode`` writes); the
audio is noise with a different seed per track, so a channel that comes out sample for
sample equal to its input proves that nothing was swapped, lost, repeated or altered."""

from __future__ import annotations

import random
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.analytics.sources import (
    CONNECT_TRACKS,
    CallAudio,
    ChannelFeed,
    SourceError,
    read_call_file,
)
from callstream.client.producer import chime_producer, connect_producer, produce
from callstream.media.resample import resample
from callstream.mkv.ebml import MkvError

START_MS = 1_700_000_000_000
ORIGIN_NS = START_MS * 1_000_000
YACCHI = Path("/work/shared/testdata/kvs/yacchi")
needs_yacchi = pytest.mark.skipif(
    not YACCHI.is_dir(), reason=f"shared test data not found at {YACCHI}"
)


def pcm(seconds: float, seed: int, rate: int = 8000) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * rate)) * 3000).astype("<i2").tobytes()


CALLER, AGENT = pcm(3.0, 1), pcm(3.0, 2)


def connect_chunks(
    caller: bytes = CALLER,
    agent: bytes = AGENT,
    *,
    contact_id: str = "c-1",
    start_ms: int = START_MS,
    rate: int = 8000,
    **kw: object,
) -> list[bytes]:
    """Header, then one fragment per second (as ``callstream encode`` writes them)."""
    producer = connect_producer(
        contact_id=contact_id,
        instance_id="i-1",
        producer_start_ms=start_ms,
        sample_rate=rate,
        **kw,  # type: ignore[arg-type]
    )
    audio = {"AUDIO_FROM_CUSTOMER": caller, "AUDIO_TO_CUSTOMER": agent}
    return [c.data for c in produce(producer, audio, start_ms=start_ms)]


CONNECT = b"".join(connect_chunks())


def run(feed: ChannelFeed, pieces: list[bytes]) -> dict[str, bytes]:
    """Feed ``pieces`` in order, then finish; the PCM per role."""
    out: dict[str, bytes] = {}
    for piece in pieces:
        for role, data in feed.feed(piece):
            out[role] = out.get(role, b"") + data
    for role, data in feed.finish():
        out[role] = out.get(role, b"") + data
    return out


def connect_feed(**kw: object) -> ChannelFeed:
    return ChannelFeed(CONNECT_TRACKS, ORIGIN_NS, {"ContactId": "c-1"}, **kw)  # type: ignore[arg-type]


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        pieces.append(data[pos : pos + sizes[i % len(sizes)]])
        pos, i = pos + sizes[i % len(sizes)], i + 1
    return pieces


# --- ChannelFeed ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["connect", "pcm"])
@pytest.mark.parametrize("swap_tracks", [False, True])
def test_connect_tracks_come_out_sample_for_sample(codec: str, swap_tracks: bool) -> None:
    data = b"".join(connect_chunks(codec=codec, swap_tracks=swap_tracks))
    assert run(connect_feed(), [data]) == {"CALLER": CALLER, "AGENT": AGENT}


def test_audio_comes_out_block_by_block_before_its_fragment_ends() -> None:
    header, first, *_ = connect_chunks()
    feed = connect_feed()
    out = feed.feed(header + first[: len(first) // 2])
    caller = b"".join(p for role, p in out if role == "CALLER")
    assert 0 < len(caller) < 16000 and CALLER.startswith(caller)


@settings(max_examples=50)
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=10))
def test_any_chunking_gives_the_same_audio(sizes: list[int]) -> None:
    assert run(connect_feed(), split(CONNECT, sizes)) == {"CALLER": CALLER, "AGENT": AGENT}


def test_one_byte_at_a_time_gives_the_same_audio() -> None:
    data = b"".join(connect_chunks(CALLER[:16000], AGENT[:16000]))
    assert run(connect_feed(), split(data, [1])) == {
        "CALLER": CALLER[:16000],
        "AGENT": AGENT[:16000],
    }


@pytest.mark.parametrize("piece", [None, 1, 777])
def test_another_contacts_fragment_ends_the_feed(piece: int | None) -> None:
    other = connect_chunks(pcm(2.0, 3), pcm(2.0, 4), contact_id="c-2", start_ms=START_MS + 3000)
    data = CONNECT + b"".join(other)
    feed = connect_feed()
    out = run(feed, [data] if piece is None else split(data, [piece]))
    assert out == {"CALLER": CALLER, "AGENT": AGENT}  # c-1's audio whole, none of c-2's
    assert feed.ended == "the stream moved on to ContactId c-2"
    assert feed.feed(b"".join(other)) == []  # and it stays ended


def test_fragments_without_the_call_tag_still_belong_to_the_call() -> None:
    feed = ChannelFeed(CONNECT_TRACKS, ORIGIN_NS, {"TransactionId": "t-1"})  # Connect has none
    assert run(feed, [CONNECT]) == {"CALLER": CALLER, "AGENT": AGENT}
    assert feed.ended is None


def chime_chunks(audio: bytes, transaction_id: str = "t-1") -> list[bytes]:
    producer = chime_producer(
        transaction_id=transaction_id,
        voice_connector_id="vc-1",
        call_id="call-1",
        producer_start_ms=START_MS,
    )
    return [c.data for c in produce(producer, {"AUDIO": audio}, start_ms=START_MS)]


def test_a_chime_leg_is_one_channel_whatever_its_track_is_called() -> None:
    data = b"".join(chime_chunks(CALLER))
    feed = ChannelFeed({"*": "AGENT"}, ORIGIN_NS, {"TransactionId": "t-1"})
    assert run(feed, [data]) == {"AGENT": CALLER}
    # a stream the user names: Connect tracks when it has them, else its first audio track
    anything = {**CONNECT_TRACKS, "*": "CALLER"}
    assert run(ChannelFeed(anything, 0), [data]) == {"CALLER": CALLER}
    assert run(ChannelFeed(anything, 0), [CONNECT]) == {"CALLER": CALLER, "AGENT": AGENT}
    other = b"".join(chime_chunks(AGENT, "t-2"))
    feed = ChannelFeed({"*": "CALLER"}, ORIGIN_NS, {"TransactionId": "t-1"})
    assert run(feed, [data, other]) == {"CALLER": CALLER}
    assert feed.ended == "the stream moved on to TransactionId t-2"


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("cut", [0.25, 0.5, 0.9])
def test_a_reconnect_that_repeats_fragments_repeats_no_audio(rate: int, cut: float) -> None:
    caller, agent = pcm(3.0, 5, rate), pcm(3.0, 6, rate)
    header, *fragments = connect_chunks(caller, agent, rate=rate)
    whole = run(connect_feed(), [header, *fragments])
    feed = connect_feed()
    first = header + fragments[0] + fragments[1][: int(len(fragments[1]) * cut)]
    out = run_no_finish(feed, [first])
    feed.restart()  # a new GetMedia: from the fragment before the cut one, again
    again = run(feed, [header, *fragments])
    joined = {role: out.get(role, b"") + again.get(role, b"") for role in ("CALLER", "AGENT")}
    if rate == 8000:
        assert joined == whole == {"CALLER": caller, "AGENT": agent}
        return
    for role in ("CALLER", "AGENT"):  # the streaming resampler differs by an LSB or two
        got, want = np.frombuffer(joined[role], "<i2"), np.frombuffer(whole[role], "<i2")
        assert len(got) == len(want) == 3 * 8000
        assert np.max(np.abs(got.astype(int) - want)) <= 4


def run_no_finish(feed: ChannelFeed, pieces: list[bytes]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for piece in pieces:
        for role, data in feed.feed(piece):
            out[role] = out.get(role, b"") + data
    return out


def test_16_khz_tracks_are_resampled_to_8_khz() -> None:
    t = np.arange(3 * 16000) / 16000
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    data = b"".join(connect_chunks(tone.tobytes(), tone.tobytes(), rate=16000))
    for pieces in ([data], split(data, [333])):
        out = run(connect_feed(), pieces)
        expected = resample(tone, 16000, 8000)
        for role in ("CALLER", "AGENT"):
            got = np.frombuffer(out[role], "<i2")
            assert abs(len(got) - len(expected)) <= 4
            n = min(len(got), len(expected)) - 200  # the filter's edges aside
            assert np.max(np.abs(got[100:n].astype(int) - expected[100:n])) <= 8


def test_a_gap_in_the_stream_becomes_silence_on_the_timeline() -> None:
    header, *first = connect_chunks(CALLER[:16000], AGENT[:16000])
    _, *later = connect_chunks(CALLER[16000:32000], AGENT[16000:32000], start_ms=START_MS + 3000)
    out = run(connect_feed(), [header, *first, *later])
    assert out["CALLER"] == CALLER[:16000] + bytes(32000) + CALLER[16000:32000]


def test_a_stream_clock_far_from_the_call_start_starts_the_call_at_its_first_frame() -> None:
    out = run(ChannelFeed(CONNECT_TRACKS, 0), [CONNECT])  # RELATIVE timecodes, no start given
    assert out == {"CALLER": CALLER, "AGENT": AGENT}


@needs_yacchi
def test_real_connect_shapes_from_other_tools() -> None:
    """Synthetic Connect-shaped streams from another project (yacchi/ebml fixtures)."""

    def fixture(name: str) -> bytes:
        lines = (YACCHI / f"{name}.ebml.hex").read_text().splitlines()
        return bytes.fromhex("".join(ln for ln in lines if not ln.lstrip().startswith("#")))

    contact = "00000000-0000-4000-8000-000000000002"
    feed = ChannelFeed(CONNECT_TRACKS, 0, {"ContactId": contact})
    out = run(feed, split(fixture("stream_reuse"), [97]))
    assert feed.ended == "the stream moved on to ContactId 00000000-0000-4000-8000-000000000003"
    assert set(out) == {"CALLER", "AGENT"}
    # track 1 is AUDIO_TO_CUSTOMER there: the roles follow the track names
    from callstream.mkv.kvs import FragmentReader

    data = fixture("track_order_swapped")
    (fragment,) = FragmentReader().feed(data) + FragmentReader().close()
    caller = fragment.track_named("AUDIO_FROM_CUSTOMER")
    assert caller is not None and caller.number == 2
    out = run(ChannelFeed(CONNECT_TRACKS, 0), [data])
    assert out["CALLER"] == b"".join(f.data for f in fragment.frames_of(2))


def mutated(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        i = where % max(1, len(out))
        if kind == 0:
            out[i : i + 1] = bytes([value])
        elif kind == 1:
            del out[i : i + 1 + value % 16]
        else:
            out[i:i] = bytes([value]) * (1 + value % 8)
    return bytes(out)


SMALL = connect_chunks(pcm(0.6, 7), pcm(0.6, 8))
SMALL_16K = connect_chunks(pcm(0.6, 7, 16000), pcm(0.6, 8, 16000), rate=16000, codec="pcm")


@settings(max_examples=300)
@given(
    base=st.sampled_from([b"".join(SMALL), b"".join(SMALL_16K), b""]),
    edits=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255))),
    noise=st.binary(max_size=200),
    piece=st.integers(1, 2000),
    star=st.booleans(),
)
def test_fuzzed_streams_raise_only_clear_errors(
    base: bytes, edits: list[tuple[int, int, int]], noise: bytes, piece: int, star: bool
) -> None:
    data = mutated(base, edits) if base else noise
    tracks = {"*": "CALLER"} if star else CONNECT_TRACKS
    feed = ChannelFeed(tracks, ORIGIN_NS, {"ContactId": "c-1"})
    try:
        for part in split(data, [piece]):
            for role, pcm_out in feed.feed(part):
                assert role in ("CALLER", "AGENT") and len(pcm_out) % 2 == 0
        feed.finish()
    except (MkvError, SourceError, ValueError):
        pass


# --- read_call_file ------------------------------------------------------------------------


def write_wav(path: Path, channels: list[bytes], rate: int = 8000) -> Path:
    samples = np.stack([np.frombuffer(c, "<i2") for c in channels], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def test_a_stereo_wav_is_caller_on_the_left_agent_on_the_right(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "call.wav", [CALLER, AGENT])
    assert read_call_file(path) == CallAudio(CALLER, AGENT)
    assert read_call_file(path, swap=True) == CallAudio(AGENT, CALLER)


def test_a_mono_wav_is_the_caller(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "caller.wav", [CALLER])
    assert read_call_file(path) == CallAudio(CALLER, b"")
    assert read_call_file(path, swap=True) == CallAudio(b"", CALLER)


def test_a_16_khz_wav_is_resampled(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "wide.wav", [pcm(2.0, 1, 16000), pcm(2.0, 2, 16000)], 16000)
    audio = read_call_file(path)
    assert abs(len(audio.caller) - 32000) <= 4 and len(audio.agent) == len(audio.caller)


def test_connect_and_chime_mkv_files(tmp_path: Path) -> None:
    connect = tmp_path / "connect.mkv"
    connect.write_bytes(b"".join(connect_chunks(swap_tracks=True)))
    assert read_call_file(connect) == CallAudio(CALLER, AGENT)
    assert read_call_file(connect, swap=True) == CallAudio(AGENT, CALLER)
    chime = tmp_path / "leg.mkv"
    chime.write_bytes(b"".join(chime_chunks(AGENT)))
    assert read_call_file(chime) == CallAudio(AGENT, b"")


def test_an_mkv_cut_off_at_the_end_gives_the_audio_before_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "cut.mkv"
    path.write_bytes(CONNECT[: len(CONNECT) * 2 // 3])
    audio = read_call_file(path)
    assert 16000 <= len(audio.caller) < len(CALLER) and CALLER.startswith(audio.caller)
    assert AGENT.startswith(audio.agent)
    assert audio.warning is not None and str(path) in audio.warning
    assert "offset" in audio.warning
    assert read_call_file(path, swap=True).warning == audio.warning


def test_an_mkv_of_a_pooled_stream_gives_its_first_call(tmp_path: Path) -> None:
    path = tmp_path / "pooled.mkv"
    later = START_MS + 5 * 86_400_000  # the stream is reused days later
    path.write_bytes(CONNECT + b"".join(connect_chunks(contact_id="c-2", start_ms=later)))
    audio = read_call_file(path)
    assert (audio.caller, audio.agent) == (CALLER, AGENT)
    assert audio.warning is not None and "ContactId c-2" in audio.warning


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a WAV or MKV"),
        (b"hello, this is text", "not a WAV or MKV"),
        (b"RIFF\x10\x00\x00\x00WAVEjunk", None),
        (b"\x1a\x45\xdf\xa3" + bytes(random.Random(1).randrange(256) for _ in range(64)), None),
        (CONNECT[:60], "offset"),
        (b"".join(connect_chunks()[:1]), "no audio frames"),
    ],
    ids=["empty", "text", "bad-wav", "bad-mkv", "cut-header", "header-only"],
)
def test_files_that_are_no_call_raise_a_source_error_naming_the_file(
    tmp_path: Path, content: bytes, reason: str | None
) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=reason) as err:
        read_call_file(path)
    assert str(err.value).startswith(f"{path}: ")
    with pytest.raises(OSError):
        read_call_file(tmp_path / "missing.wav")
