"""The element-consumer layer: the same facts however elements arrive and however the
input is cut; the header decoding shortcuts (memo, Tags templates) agree with a full parse."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream.mkv import ID, Block, MkvError
from callstream.mkv import writer as w
from callstream.mkv.ebml import encode_id, encode_size
from callstream.mkv.elements import ElementWalker, MkvVisitor, TagItems, TrackInfo, run_blocks
from callstream.mkv.kvs import kvs_end_tags, kvs_start_tags, render_fragment

Fact = tuple[object, ...]

TRACKS = [
    w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
    w.TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1),
]


class Recorder(MkvVisitor):
    """Every fact, blocks one by one (how blocks are grouped into runs is not a fact)."""

    def __init__(self, *, lenient: bool = False) -> None:
        self.facts: list[Fact] = []
        self.lenient = lenient

    def ebml_header(self, offset: int, end: int) -> None:
        self.facts.append(("ebml", offset, end))

    def segment_start(self, offset: int, data_offset: int) -> None:
        self.facts.append(("segment", offset, data_offset))

    def segment_end(self, offset: int) -> None:
        self.facts.append(("segment_end", offset))

    def child(self, eid: int, offset: int, end: int, master: bool) -> None:
        self.facts.append(("child", eid, offset, end, master))

    def timecode_scale(self, scale: int) -> None:
        self.facts.append(("scale", scale))

    def tracks(self, entries: tuple[TrackInfo, ...], offset: int, end: int) -> None:
        self.facts.append(("tracks", [dataclasses.astuple(t) for t in entries], offset, end))

    def tags(self, items: TagItems, offset: int, end: int, depth: int) -> None:
        self.facts.append(("tags", items, offset, end, depth))

    def cluster_start(self, offset: int, depth: int) -> None:
        self.facts.append(("cluster", offset, depth))

    def cluster_timecode(self, timecode: int, offset: int) -> None:
        self.facts.append(("timecode", timecode, offset))

    def cluster_end(self, offset: int, depth: int) -> None:
        self.facts.append(("cluster_end", offset, depth))

    def block_run(self, flat: list[int | bytes]) -> None:
        for block in run_blocks(flat):
            self.block(block)

    def block(self, block: Block) -> None:
        self.facts.append(("block", block.offset, block.track, block.timecode, block.frames))

    def stray_block(self, block: Block) -> None:
        if not self.lenient:
            super().stray_block(block)
        self.facts.append(("stray", block.offset))


def facts(
    data: bytes, cuts: list[int] = (), *, collapse: bool = True, blocks: bool = False
) -> list[Fact]:  # type: ignore[assignment]
    """The facts of ``data`` fed in pieces cut at ``cuts`` (``feed_blocks`` if ``blocks``)."""
    recorder = Recorder()
    walker = ElementWalker(recorder, collapse=collapse)
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    for a, b in itertools.pairwise(bounds):
        (walker.feed_blocks if blocks else walker.feed)(data[a:b])
    walker.close()
    return recorder.facts


def getmedia_doc(i: int, *, unknown_cluster: bool = True) -> bytes:
    blocks = [w.simple_block(1 + k % 2, 64 * k, bytes([i, k]) * 300) for k in range(6)]
    return render_fragment(
        ebml_header=w.ebml_header(),
        header=w.info(segment_uid=bytes(16)) + w.tracks(TRACKS),
        cluster=w.cluster(1000 * i, blocks, unknown_size=unknown_cluster, timecode_width=8),
        trailer=w.tags([("ContactId", "c-1")], size_width=8),
        fragment_number=str(10**46 + i),
        server_timestamp_ms=1_700_000_000_000 + 1000 * i,
        producer_timestamp_ms=1_700_000_000_000 + 1000 * i,
        millis_behind_now=i,
        continuation_token=str(10**46 + i),
    )


def test_a_getmedia_fragment_as_facts() -> None:
    doc = getmedia_doc(0)
    got = facts(doc)
    kinds = [f[0] for f in got]
    assert kinds[:8] == [
        "ebml",
        "segment",
        "scale",
        "child",  # Info
        "tracks",
        "child",  # Tracks
        "tags",  # KVS start tags
        "child",
    ]
    assert kinds[8:11] == ["cluster", "timecode", "block"]
    assert kinds[-6:] == ["cluster_end", "tags", "child", "tags", "child", "segment_end"]
    ebml_end = len(w.ebml_header())
    assert got[0] == ("ebml", 0, ebml_end)
    assert got[1] == ("segment", ebml_end, ebml_end + len(w.segment_start()))
    tracks = next(f for f in got if f[0] == "tracks")
    assert [(t[0], t[2], t[3]) for t in tracks[1]] == [  # type: ignore[attr-defined]
        (1, "AUDIO_FROM_CUSTOMER", "A_AAC"),
        (2, "AUDIO_TO_CUSTOMER", "A_PCM/INT/LIT"),
    ]
    tags = [f[1] for f in got if f[0] == "tags"]
    assert tags[1] == (("ContactId", "c-1"),)
    assert dict(tags[2]) == {  # type: ignore[arg-type]
        "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW": "0",
        "AWS_KINESISVIDEO_CONTINUATION_TOKEN": str(10**46),
    }
    cluster = next(f for f in got if f[0] == "cluster")
    assert cluster[2] == 1 and ("timecode", 0, cluster[1] + 5) in got  # type: ignore[operator]
    blocks = [f for f in got if f[0] == "block"]
    assert [(b[2], b[3]) for b in blocks] == [(1 + k % 2, 64 * k) for k in range(6)]
    assert got[-1] == ("segment_end", len(doc))


def test_facts_are_those_of_the_streaming_path_however_the_input_is_cut() -> None:
    docs = getmedia_doc(0) + getmedia_doc(1, unknown_cluster=False) + getmedia_doc(2)
    streamed = facts(docs, collapse=False)
    assert facts(docs) == streamed
    for step in (1, 7, 333, 4096):
        cuts = list(range(step, len(docs), step))
        assert facts(docs, cuts) == streamed
        assert facts(docs, cuts, blocks=True) == streamed


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """Well-formed documents mixing known and unknown sizes, nested and binary tags, laced
    blocks, Tags before, between and after Clusters, several Segments."""
    out = b""
    for _ in range(draw(st.integers(1, 2))):
        header = w.info(
            timecode_scale=draw(st.sampled_from([1_000_000, 100_000])), segment_uid=bytes(16)
        )
        specs = TRACKS[: draw(st.integers(0, 2))]
        if specs:
            header += w.tracks(specs)
        body = [header]
        for c in range(draw(st.integers(0, 3))):
            if draw(st.booleans()):
                body.append(draw(tags_elements()))
            blocks = [
                w.simple_block(1 + k % 2, 20 * k - 5, bytes([k]) * draw(st.sampled_from([3, 200])))
                for k in range(draw(st.integers(0, 5)))
            ]
            if draw(st.booleans()):
                blocks.append(w.element(ID.SimpleBlock, b"\x82\x00\x07\x82\x02\x03\x02abcdefghi"))
            body.append(
                w.cluster(1000 * c, blocks, unknown_size=draw(st.booleans()), timecode_width=8)
            )
        if draw(st.booleans()):
            body.append(draw(tags_elements()))
        payload = b"".join(body)
        if draw(st.booleans()):
            segment = encode_id(ID.Segment) + encode_size(-1) + payload
        else:
            segment = w.element(ID.Segment, payload)
        out += w.ebml_header() + segment
    return out


@st.composite
def tags_elements(draw: st.DrawFn) -> bytes:
    name = st.text(alphabet="abcXYZ_", min_size=1, max_size=6)
    simple = [
        w.element(ID.SimpleTag, w.string(ID.TagName, draw(name)) + w.string(ID.TagString, v))
        for v in draw(st.lists(st.text(max_size=5), min_size=1, max_size=3))
    ]
    if draw(st.booleans()):
        inner = w.element(ID.SimpleTag, w.string(ID.TagName, "in") + w.binary(ID.TagBinary, b"\1"))
        simple[0] = w.element(
            ID.SimpleTag, w.string(ID.TagName, "out") + w.string(ID.TagString, "o") + inner
        )
    tag = b"".join(simple)
    shape = draw(st.sampled_from(["plain", "unknown", "unknown_tag", "wide"]))
    if shape == "unknown":
        return encode_id(ID.Tags) + encode_size(-1) + w.element(ID.Tag, tag)
    if shape == "unknown_tag":  # collapsed Tags holding an unknown-size Tag: re-streamed
        return w.element(ID.Tags, encode_id(ID.Tag) + encode_size(-1) + tag)
    return w.element(ID.Tags, w.element(ID.Tag, tag), size_width=8 if shape == "wide" else None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), cuts=st.lists(st.integers(0, 10**6), max_size=10), blocks=st.booleans())
def test_collapsed_and_streamed_masters_give_the_same_facts(
    doc: bytes, cuts: list[int], blocks: bool
) -> None:
    assert facts(doc, cuts, blocks=blocks) == facts(doc, collapse=False)


def test_kvs_tags_templates_follow_changing_values() -> None:
    """Per-fragment KVS tags are read through a template after the first; a payload of the
    same size but another shape is not taken for one."""
    recorder = Recorder()
    walker = ElementWalker(recorder)
    stamps = [(str(10**46 + i), 1_700_000_000_000 + 7 * i) for i in range(5)]
    for number, ms in stamps:
        walker.feed(kvs_start_tags(number, ms, ms + 1))
    same_size = kvs_end_tags(123456, "x" * 40)
    walker.feed(same_size)
    walker.close()
    items = [f[1] for f in recorder.facts if f[0] == "tags"]
    assert items[:5] == [
        (
            ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number),
            ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", f"{ms // 1000}.{ms % 1000:03d}"),
            ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", f"{(ms + 1) // 1000}.{(ms + 1) % 1000:03d}"),
        )
        for number, ms in stamps
    ]
    assert items[5] == (
        ("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "123456"),
        ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", "x" * 40),
    )


def test_repeated_tracks_payloads_give_the_same_entries_object() -> None:
    """Visitors may memoise on the entries tuple: GetMedia repeats Tracks in every document."""
    recorder = Recorder()
    walker = ElementWalker(recorder)
    walker.feed(getmedia_doc(0) + getmedia_doc(1))
    walker.close()
    first, second = (f[1] for f in recorder.facts if f[0] == "tracks")
    assert first == second
    entries: list[tuple[TrackInfo, ...]] = []

    class Keep(MkvVisitor):
        def tracks(self, e: tuple[TrackInfo, ...], offset: int, end: int) -> None:
            entries.append(e)

    keeper = ElementWalker(Keep())
    keeper.feed(getmedia_doc(0) + getmedia_doc(1))
    assert len(entries) == 2 and entries[0] is entries[1]


def test_a_track_entry_without_a_number_is_reported_as_number_0() -> None:
    entry = w.element(ID.TrackEntry, w.string(ID.CodecID, "A_PCM/INT/LIT"))
    data = w.ebml_header() + w.segment_start() + w.element(ID.Tracks, entry)
    for collapse in (True, False):
        (tracks,) = [f for f in facts(data, collapse=collapse) if f[0] == "tracks"]
        assert [t[0] for t in tracks[1]] == [0]  # type: ignore[attr-defined]


def test_blocks_outside_a_cluster_are_refused_unless_the_visitor_allows_them() -> None:
    stray = w.simple_block(1, 0, b"abc")
    data = w.ebml_header() + w.segment_start() + stray
    with pytest.raises(MkvError, match="block outside a Cluster") as err:
        facts(data)
    assert err.value.offset == len(data) - len(stray)
    lenient = Recorder(lenient=True)
    walker = ElementWalker(lenient)
    walker.feed(data)
    walker.close()
    assert ("stray", len(data) - len(stray)) in lenient.facts


def test_children_of_the_ebml_header_are_not_segment_children() -> None:
    streamed_header = encode_id(ID.EBML) + encode_size(-1) + w.ebml_header()[5:]
    data = streamed_header + w.segment_start() + w.info(segment_uid=bytes(16))
    for collapse in (True, False):
        children = [f for f in facts(data, collapse=collapse) if f[0] == "child"]
        assert [c[1] for c in children] == [ID.Info]


def test_feed_blocks_reports_the_runs_of_an_open_cluster() -> None:
    doc = getmedia_doc(3)
    first = doc.index(w.simple_block(1, 0, bytes([3, 0]) * 300))
    recorder = Recorder()
    walker = ElementWalker(recorder)
    walker.feed(doc[:first])
    before = len(recorder.facts)
    block = len(w.simple_block(1, 0, bytes([3, 0]) * 300))
    walker.feed_blocks(doc[first : first + 2 * block])
    assert [f[0] for f in recorder.facts[before:]] == ["block", "block"]
    assert walker.offset == first + 2 * block and not walker.at_limit
    walker.feed_blocks(doc[first + 2 * block :])
    walker.close()
    assert recorder.facts == facts(doc)
