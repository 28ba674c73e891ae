"""Malformed input: MkvError with the byte offset, promptly, without allocating by an
untrusted size; and property-based round trips and mutations."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mkv_helpers import YACCHI_DIR, yacchi_bytes

from callstream.mkv import (
    ID,
    Block,
    EbmlReader,
    Fragment,
    FragmentReader,
    MkvError,
    parse_kvs_timestamp,
    render_fragment,
)
from callstream.mkv import writer as w
from callstream.mkv.ebml import encode_id, encode_size

TRACKS = w.tracks(
    [w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_AAC"), w.TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_AAC")]
)
HEADER = w.info(segment_uid=bytes(16)) + TRACKS


def fragment_doc(i: int = 0, *, unknown_cluster: bool = True) -> bytes:
    blocks = [w.simple_block(1 + k % 2, k * 64, bytes([i, k]) * 16) for k in range(4)]
    return render_fragment(
        ebml_header=w.ebml_header(),
        header=HEADER,
        cluster=w.cluster(
            1_726_677_688_724 + i * 1024,
            blocks,
            unknown_size=unknown_cluster,
            position=0,
            timecode_width=8,
        ),
        trailer=w.tags([("ContactId", "c-1")], size_width=8),
        fragment_number=f"{i:047d}",
        server_timestamp_ms=1_726_677_688_800 + i * 1024,
        producer_timestamp_ms=1_726_677_688_724 + i * 1024,
        millis_behind_now=100,
        continuation_token=f"{i:047d}",
    )


def parse(data: bytes, **kwargs: int) -> list[Fragment]:
    reader = FragmentReader(**kwargs)
    return reader.feed(data) + reader.close()


def raises_at(data: bytes, offset: int, match: str = "") -> MkvError:
    for attempt in (parse, lambda d: _parse_events(d)):
        with pytest.raises(MkvError, match=match) as err:
            attempt(data)
        assert err.value.offset == offset, str(err.value)
        assert f"byte offset {offset}" in str(err.value)
    return err.value


def _parse_events(data: bytes) -> list[object]:
    reader = EbmlReader()
    reader.feed(data)
    reader.close()
    return list(reader.events())


# --- specific faults ------------------------------------------------------------------------


def test_truncated_anywhere() -> None:
    """Every prefix either raises MkvError at or before the cut, or (cut between complete
    elements of unknown-size masters) yields a prefix of the frames."""
    data = fragment_doc(0, unknown_cluster=False) + fragment_doc(1)
    full = [f for frag in parse(data) for f in frag.frames]
    errors = 0
    for cut in range(1, len(data)):
        try:
            frames = [f for frag in parse(data[:cut]) for f in frag.frames]
        except MkvError as err:
            errors += 1
            assert 0 <= err.offset <= cut
            assert f"byte offset {err.offset}" in str(err)
        else:
            assert frames == full[: len(frames)]
    assert errors > len(data) * 0.9


def test_truncated_known_size_element_names_its_offset() -> None:
    doc = fragment_doc(0, unknown_cluster=False)
    block = doc.index(w.simple_block(2, 64, bytes([0, 1]) * 16))
    # Cut inside a block: the block's start is named.
    raises_at(doc[: block + 10], block, "input ends inside an element")
    # Cut between blocks of the known-size Cluster: the end of input is named.
    raises_at(doc[:block], block, "input ends inside Cluster, which declares")


def test_leaf_larger_than_the_data() -> None:
    data = w.ebml_header() + w.segment_start() + encode_id(ID.Title) + encode_size(1000) + b"short"
    raises_at(data, len(w.ebml_header()) + 12, "input ends inside an element")


@pytest.mark.parametrize(
    "bad", [b"\x00\x81\x00", b"\x08\x11\x22\x33\x44\x81\x00", b"\x04\x00\x00\x00\x00\x00\x81\x00"]
)
def test_invalid_or_overlong_id(bad: bytes) -> None:
    head = w.ebml_header() + w.segment_start() + HEADER
    raises_at(head + bad, len(head), "invalid element ID")


def test_overlong_size() -> None:
    head = w.ebml_header() + w.segment_start()
    raises_at(
        head + encode_id(ID.Info) + b"\x00\x00\x00\x00\x00\x00\x00\x00\x01",
        len(head) + 4,
        "invalid element size",
    )
    # Inside a collapsed master too.
    inner = encode_id(ID.TimecodeScale) + b"\x00" * 9
    info = encode_id(ID.Info) + encode_size(len(inner)) + inner
    raises_at(head + info, len(head) + 5 + 3, "invalid element size")


def test_child_overrunning_parent() -> None:
    head = w.ebml_header() + w.segment_start()
    child = encode_id(ID.TimecodeScale) + encode_size(10) + b"\x0f\x42\x40"
    info = encode_id(ID.Info) + encode_size(len(child)) + child + b"\x00" * 10
    raises_at(head + info, len(head) + 5, "overruns its parent")


def test_block_overrunning_known_size_cluster() -> None:
    head = w.ebml_header() + w.segment_start() + HEADER
    block = w.simple_block(1, 0, b"x" * 100)
    cluster = (
        encode_id(ID.Cluster) + encode_size(len(block) - 10 + 3) + w.uint(ID.Timecode, 0) + block
    )
    raises_at(head + cluster, len(head) + 5 + 3, "overruns")


def test_overrun_of_known_size_grandparent() -> None:
    """An unknown-size Cluster in a known-size Segment: a block past the Segment's end."""
    block = w.simple_block(1, 0, b"x" * 100)
    cluster = encode_id(ID.Cluster) + encode_size(-1) + w.uint(ID.Timecode, 0) + block
    body = HEADER + cluster
    segment = encode_id(ID.Segment) + encode_size(len(body) - 50) + body
    raises_at(
        w.ebml_header() + segment, len(w.ebml_header()) + len(segment) - len(block), "overruns"
    )


def test_frame_for_undeclared_track() -> None:
    head = w.ebml_header() + w.segment_start() + HEADER
    cluster = w.cluster(0, [w.simple_block(1, 0, b"ok"), w.simple_block(5, 0, b"??")])
    offset = len(head) + cluster.index(w.simple_block(5, 0, b"??"))
    with pytest.raises(MkvError, match="undeclared track 5") as err:
        parse(head + cluster)
    assert err.value.offset == offset


def test_block_outside_a_cluster() -> None:
    data = w.ebml_header() + w.segment_start() + HEADER + w.simple_block(1, 0, b"x")
    with pytest.raises(MkvError, match="outside a Cluster"):
        parse(data)


def test_unknown_size_leaf_and_deep_nesting() -> None:
    head = w.ebml_header() + w.segment_start()
    raises_at(head + encode_id(ID.Title) + encode_size(-1) + b"abc", len(head), "unknown size")
    deep = head + (encode_id(ID.SimpleTag) + encode_size(-1)) * 40
    with pytest.raises(MkvError, match="nested too deeply"):
        _parse_events(deep)


def test_errors_are_sticky_and_feed_after_close() -> None:
    reader = EbmlReader()
    reader.feed(b"\x00garbage")
    with pytest.raises(MkvError) as first:
        list(reader.events())
    with pytest.raises(MkvError) as again:
        list(reader.events())
    assert again.value is first.value
    reader.close()
    with pytest.raises(RuntimeError):
        reader.feed(b"x")


def test_garbage() -> None:
    import random

    rng = random.Random(7)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        try:
            parse(data)
        except MkvError as err:
            assert 0 <= err.offset <= len(data)


# --- untrusted sizes ------------------------------------------------------------------------


def _prompt(reader: EbmlReader | FragmentReader, data: bytes) -> MkvError:
    """Feeding only a header must raise at once: from the header alone (not waiting for
    the payload), without allocating for the claimed size."""
    tracemalloc.start()
    try:
        with pytest.raises(MkvError) as err:
            if isinstance(reader, EbmlReader):
                reader.feed(data)
                list(reader.events())
            else:
                reader.feed(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    return err.value


@pytest.mark.parametrize("limit", [None, 1000])
def test_leaf_claiming_2_pow_55_bytes(limit: int | None) -> None:
    head = w.ebml_header() + w.segment_start()
    data = head + encode_id(ID.Void) + encode_size(2**55) + b"\x00" * 100
    kwargs = {} if limit is None else {"max_element_size": limit}
    for reader in (EbmlReader(**kwargs), FragmentReader(**kwargs)):
        err = _prompt(reader, data)
        assert err.offset == len(head)
        assert "exceeds the" in str(err)


def test_block_claiming_2_pow_40_bytes() -> None:
    head = (
        w.ebml_header()
        + w.segment_start()
        + HEADER
        + encode_id(ID.Cluster)
        + encode_size(-1)
        + w.uint(ID.Timecode, 0)
    )
    err = _prompt(
        FragmentReader(),
        head + encode_id(ID.SimpleBlock) + encode_size(2**40) + b"\x81\x00\x00\x80",
    )
    assert err.offset == len(head)


def test_max_element_size_bounds_tags_too() -> None:
    data = fragment_doc(0)
    parse(data, max_element_size=2048)  # small masters still collapse or stream
    with pytest.raises(MkvError, match="exceeds the 20-byte limit"):
        parse(data, max_element_size=20)


def test_master_claiming_2_pow_55_bytes_streams() -> None:
    """A master's size is never allocated: its children stream, the end raises."""
    head = w.ebml_header() + w.segment_start() + HEADER
    cluster = encode_id(ID.Cluster) + encode_size(2**55) + w.uint(ID.Timecode, 0)
    blocks = b"".join(w.simple_block(1, k, b"x" * 100) for k in range(50))
    reader = FragmentReader()
    assert reader.feed(head + cluster + blocks) == []
    with pytest.raises(MkvError, match="Cluster, which declares") as err:
        reader.close()
    assert err.value.offset == len(head + cluster + blocks)


# --- property-based -------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)
_TAG_NAME = _TEXT.filter(lambda s: not s.startswith("AWS_KINESISVIDEO_"))


@dataclass
class Model:
    data: bytes
    tracks: dict[int, tuple[str, str]]
    scale: int
    clusters: list[tuple[int, list[tuple[int, int, int, bytes]]]]  # tc, [track, tc, flags, data]
    tags: list[dict[str, str]]
    producer_ms: list[int | None]


@st.composite
def models(draw: st.DrawFn) -> Model:
    numbers = draw(st.lists(st.integers(1, 126), min_size=1, max_size=4, unique=True))
    tracks = {
        n: (draw(_TEXT), draw(st.sampled_from(["A_AAC", "A_PCM/INT/LIT", "A_MS/ACM"])))
        for n in numbers
    }
    scale = draw(st.sampled_from([1_000_000, 100_000, 1_000, 1]))
    getmedia = draw(st.booleans())
    unknown_cluster = draw(st.booleans())
    width = draw(st.sampled_from([None, 4, 8]))
    header = w.info(timecode_scale=scale, segment_uid=bytes(16)) + w.tracks(
        [w.TrackSpec(n, name, codec) for n, (name, codec) in tracks.items()]
    )
    clusters = []
    all_tags: list[dict[str, str]] = []
    producers: list[int | None] = []
    docs = []
    for i in range(draw(st.integers(1, 3))):
        tc = draw(st.integers(0, 2**48))
        blocks = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(numbers),
                    st.integers(-32768, 32767),
                    st.booleans(),
                    st.binary(max_size=200),
                ),
                max_size=6,
            )
        )
        encoded = [w.simple_block(t, btc, data, keyframe=key) for t, btc, key, data in blocks]
        cluster = w.cluster(tc, encoded, unknown_size=unknown_cluster)
        clusters.append((tc, [(t, btc, 0x80 if key else 0, data) for t, btc, key, data in blocks]))
        items = draw(st.lists(st.tuples(_TAG_NAME, _TEXT), max_size=3))
        all_tags.append(dict(items))
        trailer = w.tags(items, size_width=width) if items else b""
        if getmedia:
            producer = draw(st.integers(0, 2**42))
            producers.append(producer)
            docs.append(
                render_fragment(
                    ebml_header=w.ebml_header(),
                    header=header,
                    cluster=cluster,
                    trailer=trailer,
                    fragment_number=str(i),
                    server_timestamp_ms=producer,
                    producer_timestamp_ms=producer,
                    millis_behind_now=draw(st.none() | st.integers(0, 10**6)),
                    continuation_token=str(i),
                )
            )
        else:
            producers.append(None)
            docs.append((trailer if i == 0 else b"") + cluster if i == 0 else cluster)
            all_tags[-1] = dict(items) if i == 0 else {}
    if getmedia:
        data = b"".join(docs)
    else:
        body = header + b"".join(docs)
        segment = w.segment_start() + body if draw(st.booleans()) else w.element(ID.Segment, body)
        data = w.ebml_header() + segment
    return Model(data, tracks, scale, clusters, all_tags, producers)


def _feed(data: bytes, cuts: list[int]) -> list[Fragment]:
    reader = FragmentReader()
    out: list[Fragment] = []
    prev = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        out += reader.feed(data[prev:cut])
        prev = cut
    out += reader.feed(data[prev:])
    return out + reader.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models(), cuts=st.lists(st.integers(0, 10**6), max_size=12))
def test_writer_reader_round_trip(model: Model, cuts: list[int]) -> None:
    frags = _feed(model.data, cuts)
    assert frags == _feed(model.data, [])
    assert len(frags) == len(model.clusters)
    for frag, (tc, blocks), tags, producer in zip(
        frags, model.clusters, model.tags, model.producer_ms, strict=True
    ):
        assert {n: (t.name, t.codec_id) for n, t in frag.tracks.items()} == model.tracks
        assert frag.timecode_scale_ns == model.scale
        assert frag.cluster_timecode == tc
        assert [(f.track, f.timecode, f.flags, f.data) for f in frag.frames] == blocks
        assert frag.tags == tags
        base = producer * 1_000_000 if producer is not None else tc * model.scale
        assert [f.timestamp_ns for f in frag.frames] == [base + b[1] * model.scale for b in blocks]
        assert frag.producer_timestamp_ms == producer


def _seeds() -> list[bytes]:
    laced = w.element(ID.SimpleBlock, b"\x81\x00\x00\x86\x02\x83\x82" + b"abcdefghi")
    plain = w.ebml_header() + w.master(
        ID.Segment, [HEADER, w.cluster(0, [laced, w.simple_block(2, -1, b"zz")])]
    )
    seeds = [fragment_doc(0) + fragment_doc(1, unknown_cluster=False), plain]
    if YACCHI_DIR.is_dir():
        seeds += [
            yacchi_bytes(n)
            for n in (
                "connect_real_shape",
                "multi_cluster",
                "scaled_timestamps",
                "unknown_elements",
            )
        ]
    return seeds


SEEDS = _seeds()

_mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "dup", "truncate"]),
    st.integers(0, 10**6),
    st.integers(0, 255),
    st.integers(1, 64),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, value, span in mutations:
        if not buf:
            break
        i = where % len(buf)
        if op == "flip":
            buf[i] ^= 1 << (value % 8)
        elif op == "set":
            buf[i] = value
        elif op == "insert":
            buf[i:i] = bytes([value]) * span
        elif op == "delete":
            del buf[i : i + span]
        elif op == "dup":
            buf[i:i] = buf[i : i + span]
        else:
            del buf[i:]
    return bytes(buf)


def _outcome(data: bytes, cuts: list[int]) -> tuple[str, object]:
    try:
        return ("ok", _feed(data, cuts))
    except MkvError as err:
        return ("error", str(err))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    mutations=st.lists(_mutation, min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_mutations_parse_or_raise_mkv_error(
    seed: int, mutations: list[tuple[str, int, int, int]], cuts: list[int]
) -> None:
    """Any mutation parses or raises MkvError (nothing else, no hang), and the outcome
    does not depend on how the input is chunked."""
    data = _mutate(SEEDS[seed], mutations)
    whole = _outcome(data, [])
    assert _outcome(data, cuts) == whole
    reader = EbmlReader()
    reader.feed(data)
    reader.close()
    try:
        for ev in reader.events():
            if isinstance(ev, Block):
                assert all(isinstance(f, bytes) for f in ev.frames)
    except MkvError:
        pass


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("1511852109.126", 1511852109126),
        ("0.000", 0),
        (" 5.000 ", 5000),
        ("5.1", 5100),
        ("5.12351", 5124),
        ("-3", -3000),
        ("7.", 7000),
    ],
)
def test_kvs_timestamps(value: str, ms: int) -> None:
    assert parse_kvs_timestamp(value) == ms


@pytest.mark.parametrize(
    "value", ["9e99999999", "1e5", "Infinity", "NaN", "", ".5", "1.2.3", "１.0", "1" * 30]
)
def test_kvs_timestamps_reject_unbounded_or_odd_forms(value: str) -> None:
    """Rejected before any conversion: "9e99999999" as a number would take a 40 MB
    integer (and as long to build)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            parse_kvs_timestamp(value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000
