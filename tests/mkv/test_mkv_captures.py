"""Real captures (aws parser-library test resources) and the yacchi synthetic KVS fixtures,
checked against mkvinfo and against README.json, fed whole, in random chunks and bytewise."""

from __future__ import annotations

from pathlib import Path

import pytest
from mkv_helpers import (
    MkvinfoDoc,
    capture_paths,
    frame_rows,
    mkvinfo_bytes,
    parse_chunked,
    parse_whole,
    random_sizes,
    requires_mkvinfo,
    requires_shared,
    sample_bytes,
    split_documents,
    yacchi_names,
    yacchi_readme,
)

from callstream.mkv import (
    ID,
    Block,
    EbmlReader,
    Fragment,
    FragmentReader,
    Start,
    format_kvs_timestamp,
    parse_kvs_timestamp,
)

pytestmark = requires_shared

CAPTURES = [p.name for p in capture_paths()] or ["<no shared data>"]
YACCHI = yacchi_names() or ["<no shared data>"]
ALL = CAPTURES + YACCHI
SMALL = [n for n in ALL if n in YACCHI or n == "test_mixed_tags.mkv"]

AWS_FIELDS = {
    "AWS_KINESISVIDEO_FRAGMENT_NUMBER": ("fragment_number", str),
    "AWS_KINESISVIDEO_SERVER_TIMESTAMP": ("server_timestamp_ms", parse_kvs_timestamp),
    "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP": ("producer_timestamp_ms", parse_kvs_timestamp),
    "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW": ("millis_behind_now", int),
    "AWS_KINESISVIDEO_CONTINUATION_TOKEN": ("continuation_token", str),
}


def _fragments_in(frags: list[Fragment], start: int, stop: int) -> list[Fragment]:
    return [f for f in frags if start <= f.offset < stop]


# mkvinfo resyncs over elements it does not know (the 0x4FFE / 0x4FFF of this fixture);
# it reads everything after them normally.
MKVINFO_RESYNCS = {"unknown_elements": 2}


def _check_doc_against_mkvinfo(
    info: MkvinfoDoc, frags: list[Fragment], allowed_problems: int = 0
) -> None:
    problems = [p for p in info.problems if "rror" in p or "arning" in p]
    assert len(problems) == allowed_problems, info.problems
    if not allowed_problems:
        assert info.returncode == 0, info.problems
    assert len(frags) == len(info.clusters)
    for frag, cluster in zip(frags, info.clusters, strict=True):
        assert frag.timecode_scale_ns == (info.timestamp_scale or 1_000_000)
        assert frag.cluster_timecode is not None
        assert frag.cluster_timecode * frag.timecode_scale_ns == cluster.timestamp_ns
        assert frame_rows([frag]) == cluster.frames
        assert {n: (t.name, t.codec_id) for n, t in frag.tracks.items()} == info.tracks
        # Absolute frame timestamps hang off the fragment's cluster timestamp.
        assert frag.cluster_timestamp_ns is not None
        for f in frag.frames:
            assert f.timestamp_ns == frag.cluster_timestamp_ns + f.timecode * frag.timecode_scale_ns
        if frag.producer_timestamp_ms is not None:
            assert frag.cluster_timestamp_ns == frag.producer_timestamp_ms * 1_000_000
    # Tags: the document's producer tags (last value wins) and the KVS fields.
    expected_tags: dict[str, str] = {}
    aws: dict[str, set[object]] = {field: set() for field, _ in AWS_FIELDS.values()}
    for name, value in info.tags:
        if name in AWS_FIELDS:
            field, conv = AWS_FIELDS[name]
            aws[field].add(conv(value))
        else:
            expected_tags[name] = value.strip()
    got_tags: dict[str, str] = {}
    for frag in frags:
        got_tags.update({k: v.strip() for k, v in frag.tags.items()})
    assert got_tags == expected_tags
    for field in aws:
        got = {getattr(f, field) for f in frags} - {None}
        assert got == aws[field], field


@requires_mkvinfo
@pytest.mark.parametrize("name", ALL)
def test_matches_mkvinfo_per_document(name: str, tmp_path: Path) -> None:
    """Each GetMedia document, cut at our EBML offsets, is a valid MKV for mkvinfo, and
    our fragments of it carry what mkvinfo -v shows."""
    data = sample_bytes(name)
    frags = parse_whole(data)
    docs = split_documents(data)
    assert docs[0][0] == 0
    seen = 0
    blocks = 0
    for i, (start, stop) in enumerate(docs):
        info = mkvinfo_bytes(data[start:stop], tmp_path, f"doc{i}.mkv")
        doc_frags = _fragments_in(frags, start, stop)
        _check_doc_against_mkvinfo(info, doc_frags, MKVINFO_RESYNCS.get(name, 0))
        seen += len(doc_frags)
        blocks += sum(c.blocks for c in info.clusters)
    assert seen == len(frags)
    # Cross-check the cut independently: mkvinfo on the whole file (it resyncs over the
    # extra EBML headers) sees the same clusters, blocks and frames.
    whole = mkvinfo_bytes(data, tmp_path, "whole.mkv")
    assert len(whole.clusters) == len(frags)
    assert sum(c.blocks for c in whole.clusters) == blocks
    assert [fr for c in whole.clusters for fr in c.frames] == frame_rows(frags)


@pytest.mark.parametrize("name", ALL)
def test_every_fragment_delivered_in_random_chunks(name: str) -> None:
    data = sample_bytes(name)
    whole = parse_whole(data)
    assert whole, "no fragments"
    assert whole[-1].end_offset == len(data)  # the last fragment too
    for seed in range(3):
        sizes = random_sizes(len(data), seed, max_size=max(2, len(data) // 7))
        assert parse_chunked(data, sizes) == whole


@pytest.mark.parametrize("name", SMALL)
def test_every_fragment_delivered_bytewise(name: str) -> None:
    data = sample_bytes(name)
    assert parse_chunked(data, [1] * len(data)) == parse_whole(data)


@pytest.mark.parametrize("name", ["output_get_media.mkv", "test_mixed_tags.mkv"])
def test_getmedia_fragment_delivered_when_its_document_completes(name: str) -> None:
    """A GetMedia fragment comes out of feed() as soon as its end Tags close, not when
    the next fragment's EBML header arrives (the Python consumer library's bug)."""
    data = sample_bytes(name)
    reader = FragmentReader()
    numbers = []
    for start, stop in split_documents(data):
        got = reader.feed(data[start:stop])
        assert len(got) == 1
        assert got[0].millis_behind_now is not None
        numbers.append(got[0].fragment_number)
    assert reader.close() == []
    assert numbers == sorted(numbers)


def test_output_get_media_values() -> None:
    """Spot values from kvs-wire.md §2.7 / Appendix A.1."""
    frags = parse_whole(sample_bytes("output_get_media.mkv"))
    assert len(frags) == 5
    first = frags[0]
    assert first.fragment_number == "91343852333181432392682062607743920146159169392"
    assert first.server_timestamp_ms == 1511852109126
    assert first.producer_timestamp_ms == 1511852108513
    assert first.millis_behind_now == 15858
    assert first.continuation_token == first.fragment_number
    assert [f.cluster_timecode for f in frags] == [0, 2000, 4000, 6000, 8000]
    assert [len(f.frames) for f in frags] == [60] * 5
    assert first.frames[0].keyframe and len(first.frames[0].data) == 111835
    assert first.frames[1].timestamp_ns == 1511852108513_000_000 + 33_000_000
    assert first.tags["ENCODER"] == "Elemental H.264"  # later duplicate wins
    assert first.tracks[1].codec_id == "V_MPEG4/ISO/AVC"


def test_mixed_tags_custom_tags_before_and_after_cluster() -> None:
    frags = parse_whole(sample_bytes("test_mixed_tags.mkv"))
    assert len(frags) == 10
    expected = {f"testTag_{i}": f"testTag_{i}_Value" for i in range(5)}
    assert all(f.tags == expected for f in frags)
    assert [f.producer_timestamp_ms for f in frags] == [i * 5000 for i in range(10)]
    assert all(len(f.frames) == 10 for f in frags)


def test_plain_mkv_two_tracks_and_cues() -> None:
    """vogels_480: a plain known-size Segment, video + AAC, SeekHead and Cues."""
    frags = parse_whole(sample_bytes("vogels_480.mkv"))
    assert [f.cluster_timecode for f in frags][:3] == [0, 2155, 7147]
    assert frags[0].track_named("Stereo") is not None
    assert all(f.fragment_number is None for f in frags)
    per_track = {1: 0, 2: 0}
    for f in frags:
        for fr in f.frames:
            per_track[fr.track] += 1
    assert sum(per_track.values()) == 2334 and per_track[2] > 0


# --- yacchi README.json ---------------------------------------------------------------------


def _docs(name: str) -> tuple[bytes, list[tuple[int, int]], list[Fragment]]:
    data = sample_bytes(name)
    return data, split_documents(data), parse_whole(data)


@pytest.mark.parametrize("name", YACCHI)
def test_yacchi_readme_counts(name: str) -> None:
    meta = yacchi_readme()[name]
    data, docs, frags = _docs(name)
    assert len(data) == meta["bytes"]
    reader = EbmlReader()
    reader.feed(data)
    reader.close()
    starts = [ev for ev in reader.events() if isinstance(ev, Start)]
    assert sum(ev.id == ID.EBML for ev in starts) == meta["ebml_headers"] == len(docs)
    segments = [ev for ev in starts if ev.id == ID.Segment]
    clusters = [ev for ev in starts if ev.id == ID.Cluster]
    assert len(segments) == meta["segments"]
    assert len(docs) == meta["fragments"]
    assert len(clusters) == meta["clusters"] == len(frags)
    assert sum(len(f.frames) for f in frags) == meta["simple_blocks"]
    assert all(ev.size == -1 for ev in segments) is meta["unknown_size_segment"]
    assert any(ev.size != -1 for ev in clusters) is meta["known_size_cluster"]


@pytest.mark.parametrize("name", YACCHI)
def test_yacchi_readme_identity(name: str) -> None:
    """Fragment numbers, ContactIds and producer timestamps per fragment document; a
    tagless document's time follows the timeline of the last tagged one."""
    meta = yacchi_readme()[name]
    _, docs, frags = _docs(name)
    firsts = [_fragments_in(frags, a, b)[0] for a, b in docs]
    numbers = meta["fragment_numbers"]
    assert isinstance(numbers, list)
    for frag, expected in zip(firsts, numbers, strict=True):
        if frag.fragment_number is None:  # tagless: README names it, the bytes cannot
            assert not frag.tags
        elif expected.startswith("..."):
            assert frag.fragment_number.endswith(expected[3:])
        else:
            assert frag.fragment_number == expected
    contacts = [f.tags.get("ContactId", "") for f in firsts]
    listed = meta["contact_ids"]
    assert isinstance(listed, list)
    if len(listed) == len(docs):
        assert contacts == listed
    else:  # the distinct ids, in order
        assert list(dict.fromkeys(c for c in contacts if c)) == listed
    stamps = [format_kvs_timestamp(f.cluster_timestamp_ns // 1_000_000) for f in firsts]
    assert stamps == meta["producer_timestamps"]


def test_yacchi_connect_real_shape() -> None:
    """A_AAC over L16: the format only in MimeType; Connect tags before and after."""
    (frag,) = parse_whole(sample_bytes("connect_real_shape"))
    caller = frag.track_named("AUDIO_FROM_CUSTOMER")
    agent = frag.track_named("AUDIO_TO_CUSTOMER")
    assert caller is not None and agent is not None
    assert (caller.number, agent.number) == (1, 2)
    assert caller.codec_id == "A_AAC" and caller.codec_private == b"\x11\x90"
    assert caller.sampling_rate is None and caller.channels is None
    assert frag.tags["MimeType"] == "audio/L16;rate=8000;channels=1"
    assert frag.tags["ContactId"] == "00000000-0000-4000-8000-000000000001"
    assert frag.cluster_timecode == 1_000_000_000_000
    assert frag.millis_behind_now == 0
    assert [len(f.data) for f in frag.frames] == [24] * 4


def test_yacchi_track_order_swapped_select_by_name() -> None:
    (frag,) = parse_whole(sample_bytes("track_order_swapped"))
    agent = frag.track_named("AUDIO_TO_CUSTOMER")
    caller = frag.track_named("AUDIO_FROM_CUSTOMER")
    assert agent is not None and caller is not None
    assert (agent.number, caller.number) == (1, 2)
    assert frag.frames_of(caller.number) and frag.frames_of(agent.number)


def test_yacchi_short_block_mid_track() -> None:
    (frag,) = parse_whole(sample_bytes("short_block_mid_track"))
    sizes = {t: [len(f.data) for f in frag.frames_of(t)] for t in frag.tracks}
    assert 192 in sizes[1] + sizes[2]
    rel = [f.timecode for f in frag.frames_of(1)]
    assert rel == sorted(rel) and all(tc % 64 == 0 for tc in rel)


def test_yacchi_false_magic_not_split() -> None:
    data = sample_bytes("false_ebml_magic_in_pcm")
    (frag,) = parse_whole(data)
    assert any(b"\x1a\x45\xdf\xa3" in f.data for f in frag.frames)
    assert data.count(b"\x1a\x45\xdf\xa3") > 1


def test_yacchi_scaled_timestamps() -> None:
    (frag,) = parse_whole(sample_bytes("scaled_timestamps"))
    assert frag.timecode_scale_ns == 100_000
    assert frag.cluster_timecode == 1000
    assert [f.timecode for f in frag.frames] == [-20, 0, 20]
    base = 8_000_000_000_000 * 1_000_000
    assert [f.timestamp_ns for f in frag.frames] == [base - 2_000_000, base, base + 2_000_000]


def test_yacchi_tagless_tail_is_delivered() -> None:
    data = sample_bytes("tagless_tail")
    reader = FragmentReader()
    early = reader.feed(data)
    late = reader.close()
    assert len(early) == 2 and len(late) == 1  # only the end of input completes it
    tail = late[0]
    assert tail.fragment_number is None and not tail.tags
    assert len(tail.frames) == 2 and tail.end_offset == len(data)


def test_yacchi_unknown_elements() -> None:
    data = sample_bytes("unknown_elements")
    reader = EbmlReader()
    reader.feed(data)
    reader.close()
    ids = {ev.id for ev in reader.events() if not isinstance(ev, Block)}
    assert {0x4FFE, 0x4FFF} <= ids
    (frag,) = parse_whole(data)
    assert frag.fragment_number == "unknown-0" and len(frag.frames) == 1
