"""PutMedia ingest state machine: fragments cut exactly, invalid input rejected cleanly."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.mkv import writer as w
from callstream.mkv.ebml import ID
from callstream.mkv.kvs import FragmentReader, render_fragment
from callstream.store.ingest import (
    ClusterBytes,
    FragmentOpened,
    FragmentReady,
    FragmentReceived,
    IngestError,
    IngestEvent,
    IngestLimits,
    IngestSession,
    _Spool,
)

TRACKS = [
    w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1),
    w.TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1),
]


def header(tracks: list[w.TrackSpec] = TRACKS, lead: bytes = b"") -> bytes:
    return w.ebml_header() + w.segment_start() + lead + w.info() + w.tracks(tracks)


def fragment(start_ms: int, *, frames: int = 50, tracks: tuple[int, ...] = (1, 2)) -> bytes:
    blocks = []
    for i in range(frames):
        for t in tracks:
            blocks.append(w.simple_block(t, i * 20, bytes([t, i % 256]) * 160))
    return w.cluster(start_ms, blocks)


def run(data: bytes, *, chunk: int | None = None, **kw: object) -> list[IngestEvent]:
    session = IngestSession(**kw)  # type: ignore[arg-type]
    events: list[IngestEvent] = []
    if chunk is None:
        events += session.feed(data)
    else:
        rng = random.Random(chunk)
        i = 0
        while i < len(data):
            n = rng.randint(1, chunk)
            events += session.feed(data[i : i + n])
            i += n
    events += session.close()
    return events


def of(events: list[IngestEvent], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
def test_each_cluster_is_a_fragment_cut_byte_exact(chunk: int | None) -> None:
    clusters = [fragment(1_700_000_000_000 + 1000 * i) for i in range(3)]
    data = header() + b"".join(clusters)
    events = run(data, chunk=chunk)
    ready = of(events, FragmentReady)
    assert [r.cluster for r in ready] == clusters
    assert [r.producer_timestamp_ms for r in ready] == [
        1_700_000_000_000 + 1000 * i for i in range(3)
    ]
    assert [r.duration_ms for r in ready] == [980, 980, 980]
    # live bytes add up to the clusters, in order, per fragment
    for r in ready:
        live = b"".join(e.data for e in of(events, ClusterBytes) if e.seq == r.seq)
        assert live == r.cluster
    kinds = [type(e).__name__ for e in events if not isinstance(e, ClusterBytes)]
    assert kinds[:4] == ["FragmentOpened", "FragmentReceived", "FragmentReady", "FragmentOpened"]
    assert of(events, IngestError) == []


def test_relative_timecodes_add_the_producer_start() -> None:
    data = header() + fragment(0) + fragment(1000)
    ready = of(run(data, timecode_type="RELATIVE", producer_start_ms=5_000), FragmentReady)
    assert [r.producer_timestamp_ms for r in ready] == [5_000, 6_000]
    assert [r.timecode for r in ready] == [0, 1000]


def test_tags_between_clusters_trail_the_previous_fragment_and_lead_tags_the_first() -> None:
    lead = w.tags([("testTag_0", "v0")], size_width=8)
    between = w.tags([("ContactId", "c-1")], size_width=8)
    data = header(lead=lead) + fragment(0) + between + fragment(1000)
    ready = of(run(data), FragmentReady)
    assert ready[0].header.startswith(lead) and not ready[1].header.startswith(lead)
    assert ready[0].trailer == between and ready[1].trailer == b""
    assert ready[1].metadata == {"ContactId": "c-1"}
    # rendered as GetMedia documents they parse with the tags where KVS puts them
    docs = b"".join(
        render_fragment(
            ebml_header=r.ebml_header,
            header=r.header,
            cluster=r.cluster,
            trailer=r.trailer,
            fragment_number=str(10**46 + r.seq),
            server_timestamp_ms=1,
            producer_timestamp_ms=r.producer_timestamp_ms,
            millis_behind_now=0,
            continuation_token=str(10**46 + r.seq),
        )
        for r in ready
    )
    reader = FragmentReader()
    frags = reader.feed(docs) + reader.close()
    assert [f.tags for f in frags] == [{"testTag_0": "v0", "ContactId": "c-1"}, {}]


def test_timecode_going_backwards_rejects_only_that_fragment() -> None:
    data = header() + fragment(10_000) + fragment(5_000) + fragment(11_000)
    events = run(data)
    errors = of(events, IngestError)
    assert [(e.code, e.timecode, e.fatal) for e in errors] == [
        ("FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS", 5_000, False)
    ]
    assert [r.timecode for r in of(events, FragmentReady)] == [10_000, 11_000]


def test_frame_for_undeclared_track_is_rejected() -> None:
    data = header() + fragment(0) + fragment(1000, tracks=(1, 3)) + fragment(2000)
    events = run(data)
    assert [e.code for e in of(events, IngestError)] == ["TRACK_NUMBER_MISMATCH"]
    assert [r.timecode for r in of(events, FragmentReady)] == [0, 2000]


def test_more_than_three_tracks_is_fatal() -> None:
    tracks = [w.TrackSpec(n, f"t{n}", "A_PCM/INT/LIT") for n in range(1, 5)]
    events = run(header(tracks) + fragment(0))
    assert [(e.code, e.fatal) for e in of(events, IngestError)] == [
        ("MORE_THAN_ALLOWED_TRACKS_FOUND", True)
    ]
    assert of(events, FragmentReady) == []


def test_fragment_too_long_and_too_large() -> None:
    long = header() + fragment(0, frames=600)  # 12 s of frames
    assert [e.code for e in of(run(long), IngestError)] == ["MAX_FRAGMENT_DURATION_REACHED"]
    limits = IngestLimits(max_fragment_bytes=20_000)
    big = header() + fragment(0, frames=100)
    codes = [e.code for e in of(run(big, limits=limits), IngestError)]
    assert codes and codes[0] in ("MAX_FRAGMENT_SIZE_REACHED", "INVALID_MKV_DATA")


def test_metadata_limits() -> None:
    too_many = b"".join(w.tags([(f"k{i}", "v")], size_width=8) for i in range(11))
    data = header() + fragment(0) + too_many + fragment(1000)
    events = run(data)
    assert [e.code for e in of(events, IngestError)] == ["FRAGMENT_METADATA_LIMIT_REACHED"]
    assert [r.timecode for r in of(events, FragmentReady)] == [0]


def test_invalid_mkv_is_fatal_and_keeps_earlier_fragments() -> None:
    good = header() + fragment(0) + fragment(1000)
    events = run(good + b"\x00\x00garbage")
    errors = of(events, IngestError)
    assert len(errors) == 1 and errors[0].code == "INVALID_MKV_DATA" and errors[0].fatal
    assert "byte offset" in errors[0].message
    # fragment 1 completed before the garbage; fragment 2's trailer never ended cleanly
    assert [r.timecode for r in of(events, FragmentReady)] == [0]


def test_two_segments_in_one_body_are_invalid() -> None:
    data = header() + fragment(0) + header() + fragment(1000)
    codes = [e.code for e in of(run(data), IngestError)]
    assert codes == ["INVALID_MKV_DATA"]


def test_acks_echo_the_raw_cluster_timecode() -> None:
    events = run(header() + fragment(1234) + fragment(2234))
    assert [e.timecode for e in of(events, FragmentOpened)] == [1234, 2234]
    assert [e.timecode for e in of(events, FragmentReceived)] == [1234, 2234]


def test_unknown_size_clusters_end_at_the_next_tags() -> None:
    def live_cluster(tc: int) -> bytes:
        blocks = [w.simple_block(1, i * 20, b"\x01\x02" * 160) for i in range(10)]
        return w.cluster(tc, blocks, unknown_size=True)

    tags = w.tags([("ContactId", "x")], size_width=8)
    data = header(TRACKS[:1]) + live_cluster(0) + tags + live_cluster(1000)
    ready = of(run(data, chunk=300), FragmentReady)
    assert len(ready) == 2
    assert ready[0].trailer == tags
    assert ready[0].cluster == live_cluster(0)
    assert ready[0].cluster[:5] == bytes.fromhex("1F43B675FF")
    assert ID.Cluster == 0x1F43B675


def test_flush_after_a_pause_stores_the_fragment_and_carries_late_tags_forward() -> None:
    session = IngestSession()
    tags = w.tags([("ContactId", "c-2")], size_width=8)
    events = session.feed(header() + fragment(0))
    assert session.awaiting_trailer and of(events, FragmentReady) == []
    flushed = session.flush()
    assert [(r.timecode, r.trailer) for r in of(flushed, FragmentReady)] == [(0, b"")]
    assert not session.awaiting_trailer
    events = session.feed(tags + fragment(1000)) + session.close()
    opened = of(events, FragmentOpened)
    ready = of(events, FragmentReady)
    assert opened[0].prefix.endswith(tags) and ready[0].header.endswith(tags)
    assert ready[0].metadata == {"ContactId": "c-2"}


def _live_body(bad: str) -> tuple[bytes, list[int]]:
    """A live upload in unknown-size Clusters, one of them breaking a rule mid-Cluster;
    returns the body and the offsets where its frame pairs start (a producer's writes)."""
    out = bytearray(header())
    edges = []
    for c, tc in enumerate((0, 20_000, 10_000 if bad == "backwards" else 40_000, 60_000)):
        out += w.cluster(tc, [], unknown_size=True)
        for k in range(60 if bad == "long" and c == 1 else 20):
            edges.append(len(out))
            step = 200 if bad == "long" else 20
            t2 = 3 if bad == "track" and c == 1 and k == 7 else 2
            out += w.simple_block(1, k * step, bytes([k]) * 320)
            out += w.simple_block(t2, k * step, bytes([k]) * 320)
    return bytes(out), edges


def _merged(events: list[IngestEvent]) -> list[object]:
    """Events with each fragment's ClusterBytes joined (how they are split depends on
    the chunking, what they add up to must not), and none for rejected fragments (how
    much of one reached live readers before the error depends on the chunking too)."""
    rejected = {e.seq for e in events if isinstance(e, IngestError)}
    out: list[object] = []
    for e in events:
        if isinstance(e, ClusterBytes) and e.seq in rejected:
            continue
        last = out[-1] if out else None
        if isinstance(e, ClusterBytes) and isinstance(last, ClusterBytes) and last.seq == e.seq:
            out[-1] = ClusterBytes(e.seq, last.data + e.data)
            continue
        out.append(e)
    return out


@pytest.mark.parametrize("bad", ["none", "track", "backwards", "long"])
def test_frame_by_frame_writes_give_the_events_of_one_whole_write(bad: str) -> None:
    """A live producer writes each frame pair as it is captured: the steady-state path
    those writes take must find the same fragments and the same errors, at the same
    place, as the general one."""
    body, edges = _live_body(bad)
    whole = run(body)
    session = IngestSession()
    chunked: list[IngestEvent] = []
    for a, b in itertools.pairwise([0, *edges, len(body)]):
        chunked += session.feed(body[a:b])
    chunked += session.close()
    assert _merged(chunked) == _merged(whole)
    codes = [e.code for e in of(whole, IngestError)]
    expected = {
        "none": [],
        "track": ["TRACK_NUMBER_MISMATCH"],
        "backwards": ["FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS"],
        "long": ["MAX_FRAGMENT_DURATION_REACHED"],
    }[bad]
    assert codes == expected
    assert len(of(whole, FragmentReady)) == 4 - len(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=300), st.integers(0, 400), st.integers(0, 400)),
        min_size=1,
        max_size=120,
    )
)
def test_spool_slices_what_was_appended(steps: list[tuple[bytes, int, int]]) -> None:
    """The ingest's byte store: any range still held comes back exactly, after merges of
    tiny chunks and drops of old ones."""
    spool = _Spool()
    whole = b""
    kept = 0
    for data, a, b in steps:
        spool.append(data)
        whole += data
        lo = kept + a % (len(whole) - kept + 1)
        hi = lo + b % (len(whole) - lo + 1)
        assert spool.slice(lo, hi) == whole[lo:hi]
        if b % 3 == 0:
            spool.drop_before(lo)
            assert spool.start <= lo
            kept = lo
    assert spool.slice(kept, len(whole)) == whole[kept:]
    assert spool.end == len(whole)


def test_a_known_size_cluster_is_received_when_its_last_block_arrives() -> None:
    """A producer that writes a whole-size Cluster frame by frame and then waits for the
    RECEIVED ack gets it without sending anything more."""
    blocks = [w.simple_block(1, 20 * k, bytes([k]) * 320) for k in range(5)]
    cluster = w.cluster(0, blocks)
    head = len(cluster) - len(b"".join(blocks))
    session = IngestSession()
    events = session.feed(header() + cluster[:head])  # the Cluster's header and Timecode
    for block in blocks:  # one write per frame; the last ends the Cluster exactly
        events += session.feed(block)
    assert [e.timecode for e in of(events, FragmentReceived)] == [0]
    assert session.awaiting_trailer  # stored after the pause, or when the next Cluster starts


@pytest.mark.parametrize("big", [False, True])
def test_flush_never_cuts_a_tags_element_in_half(big: bool) -> None:
    """The producer pauses in the middle of the Tags that follow a Cluster: the fragment is
    stored with the complete elements only, and the Tags go whole in front of the next
    Cluster (before, the stored trailer ended inside the Tags and the next prefix began
    inside it). ``big``: Tags too large to be read whole, which stream."""
    done = w.tags([("ContactId", "c-3")], size_width=8)
    value = "v" * (2_000_000 if big else 10)
    tags = w.tags([("InstanceId", "i-3"), ("AWS_KINESISVIDEO_NOTE", value)], size_width=8)
    session = IngestSession()
    session.feed(header() + fragment(0) + done + tags[: len(tags) // 2])
    flushed = of(session.flush(), FragmentReady)
    assert [(r.timecode, r.trailer) for r in flushed] == [(0, done)]
    events = session.feed(tags[len(tags) // 2 :] + fragment(1000)) + session.close()
    opened = of(events, FragmentOpened)
    assert opened and opened[0].prefix.endswith(tags)
