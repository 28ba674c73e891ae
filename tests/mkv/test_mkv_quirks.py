"""One test per real-world quirk of KVS / Connect / Matroska streams, on hand-built bytes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream.mkv import (
    ID,
    Block,
    BlockRun,
    EbmlReader,
    End,
    Fragment,
    FragmentReader,
    Leaf,
    MkvError,
    Start,
    render_fragment,
)
from callstream.mkv import writer as w
from callstream.mkv.ebml import encode_id, encode_size

PCM_TRACKS = [
    w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1),
    w.TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_PCM/INT/LIT", sampling_rate=8000.0, channels=1),
]
HEADER = w.info(segment_uid=bytes(16)) + w.tracks(PCM_TRACKS)


def parse(data: bytes) -> list[Fragment]:
    reader = FragmentReader()
    return reader.feed(data) + reader.close()


def parse_all_ways(data: bytes) -> list[Fragment]:
    """Parse whole, bytewise and in 5-byte chunks; all three must agree."""
    whole = parse(data)
    for step in (1, 5):
        reader = FragmentReader()
        out: list[Fragment] = []
        for i in range(0, len(data), step):
            out += reader.feed(data[i : i + step])
        assert out + reader.close() == whole
    return whole


def events(data: bytes, **kwargs: int) -> list[Start | End | Leaf | Block]:
    reader = EbmlReader(**kwargs)
    reader.feed(data)
    reader.close()
    return list(reader.events())


def raw_block(track: int, tc: int, flags: int, body: bytes, eid: int = ID.SimpleBlock) -> bytes:
    """A (Simple)Block element from its parts (track < 127)."""
    return w.element(
        eid, bytes([0x80 | track]) + (tc & 0xFFFF).to_bytes(2, "big") + bytes([flags]) + body
    )


def getmedia(
    blocks: list[bytes], *, number: str = "1", producer_ms: int = 1000, **kw: object
) -> bytes:
    return render_fragment(
        ebml_header=w.ebml_header(),
        header=HEADER,
        cluster=w.cluster(0, blocks),
        fragment_number=number,
        server_timestamp_ms=producer_ms + 1,
        producer_timestamp_ms=producer_ms,
        **kw,  # type: ignore[arg-type]
    )


# --- KVS tags, sizes, Connect profile -----------------------------------------------------------


def test_kvs_tags_before_and_after_the_cluster() -> None:
    data = render_fragment(
        ebml_header=w.ebml_header(),
        header=HEADER + w.tags([("Pre", "x")]),
        cluster=w.cluster(5, [w.simple_block(1, 0, b"ab")], unknown_size=True),
        trailer=w.tags([("ContactId", "c-1")], size_width=8),
        fragment_number="91343852333181432392682062607743920146159169392",
        server_timestamp_ms=1511852109126,
        producer_timestamp_ms=1511852108513,
        millis_behind_now=15858,
        continuation_token="tok",
    )
    (frag,) = parse_all_ways(data)
    assert frag.fragment_number == "91343852333181432392682062607743920146159169392"
    assert (frag.server_timestamp_ms, frag.producer_timestamp_ms) == (1511852109126, 1511852108513)
    assert (frag.millis_behind_now, frag.continuation_token) == (15858, "tok")
    assert frag.tags == {"Pre": "x", "ContactId": "c-1"}
    assert frag.offset == 0 and frag.end_offset == len(data)


def test_fragment_delivered_at_end_tags_before_close() -> None:
    data = getmedia([w.simple_block(1, 0, b"x")], millis_behind_now=1, continuation_token="1")
    reader = FragmentReader()
    assert len(reader.feed(data)) == 1
    assert reader.close() == []


@pytest.mark.parametrize("width", [4, 8])
def test_wide_size_fields(width: int) -> None:
    """KVS writes 4-byte sizes, the producer SDKs 8-byte ones: same content as minimal."""

    def el(eid: int, payload: bytes) -> bytes:
        return w.element(eid, payload, width)

    def doc(wide: bool) -> bytes:
        e = el if wide else w.element
        track = e(
            ID.TrackEntry,
            e(ID.TrackNumber, b"\x01")
            + e(ID.Name, b"AUDIO_FROM_CUSTOMER")
            + e(ID.CodecID, b"A_AAC"),
        )
        tag = e(
            ID.Tags,
            e(ID.Tag, e(ID.SimpleTag, e(ID.TagName, b"MimeType") + e(ID.TagString, b"audio/L16"))),
        )
        block = e(ID.SimpleBlock, b"\x81\x00\x10\x80" + b"pcm" * 40)
        cluster = e(ID.Cluster, e(ID.Timecode, (7).to_bytes(8, "big")) + block)
        return w.ebml_header() + e(ID.Segment, e(ID.Tracks, track) + tag + cluster)

    wide, narrow = doc(True), doc(False)
    assert len(wide) > len(narrow)
    (a,) = parse_all_ways(wide)
    (b,) = parse(narrow)
    assert a.frames == b.frames and a.tags == b.tags and a.tracks == b.tracks
    assert a.frames[0].data == b"pcm" * 40 and a.cluster_timecode == 7


def test_connect_profile_aac_codec_id_over_l16() -> None:
    """CodecID A_AAC + CodecPrivate 11 90, no Audio master: the format is in MimeType."""
    tracks = w.tracks(
        [
            w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
            w.TrackSpec(2, "AUDIO_TO_CUSTOMER", "A_AAC", codec_private=b"\x11\x90"),
        ]
    )
    pcm = bytes(range(256)) * 4
    data = render_fragment(
        ebml_header=w.ebml_header(doc_type_version=2),
        header=w.info(segment_uid=bytes(16)) + tracks,
        cluster=w.cluster(
            1726677688724,
            [w.simple_block(1, 0, pcm), w.simple_block(2, 0, pcm[::-1])],
            unknown_size=True,
            position=0,
            timecode_width=8,
        ),
        trailer=b"".join(
            w.tags([kv], size_width=8)
            for kv in [("ContactId", "c"), ("MimeType", "audio/L16;rate=8000;channels=1;")]
        ),
        fragment_number="n",
        server_timestamp_ms=1726677687758,
        producer_timestamp_ms=1726677688724,
        millis_behind_now=78569,
        continuation_token="n",
    )
    (frag,) = parse_all_ways(data)
    caller = frag.track_named("AUDIO_FROM_CUSTOMER")
    assert caller is not None
    assert (caller.codec_id, caller.codec_private, caller.sampling_rate) == (
        "A_AAC",
        b"\x11\x90",
        None,
    )
    assert frag.tags["MimeType"] == "audio/L16;rate=8000;channels=1;"
    assert frag.frames_of(caller.number)[0].data == pcm  # payload untouched
    assert frag.cluster_timecode == 1726677688724
    assert frag.frames[0].timestamp_ns == 1726677688724 * 1_000_000


@pytest.mark.parametrize("numbers", [(1, 2), (2, 1), (9, 5)])
def test_track_numbers_differ_select_by_name(numbers: tuple[int, int]) -> None:
    caller_no, agent_no = numbers
    header = w.info(segment_uid=bytes(16)) + w.tracks(
        [
            w.TrackSpec(agent_no, "AUDIO_TO_CUSTOMER", "A_AAC"),
            w.TrackSpec(caller_no, "AUDIO_FROM_CUSTOMER", "A_AAC"),
        ]
    )
    data = (
        w.ebml_header()
        + w.segment_start()
        + header
        + w.cluster(
            0, [w.simple_block(caller_no, 0, b"caller"), w.simple_block(agent_no, 0, b"agent")]
        )
    )
    (frag,) = parse_all_ways(data)
    caller = frag.track_named("AUDIO_FROM_CUSTOMER")
    agent = frag.track_named("AUDIO_TO_CUSTOMER")
    assert caller is not None and agent is not None
    assert [f.data for f in frag.frames_of(caller.number)] == [b"caller"]
    assert [f.data for f in frag.frames_of(agent.number)] == [b"agent"]
    assert frag.track_named("nope") is None


def test_legacy_single_track_audio_l16() -> None:
    header = w.info(segment_uid=bytes(16)) + w.tracks(
        [w.TrackSpec(1, "Track_audio/L16", "A_PCM/INT/LIT")]
    )
    data = getmedia([w.simple_block(1, 0, b"\x01\x00" * 8)]).replace(HEADER, header)
    (frag,) = parse_all_ways(data)
    legacy = frag.track_named("Track_audio/L16")
    assert legacy is not None and list(frag.tracks) == [1]
    assert frag.frames_of(legacy.number)[0].data == b"\x01\x00" * 8


# --- lacing ---------------------------------------------------------------------------------------


def _xiph(sizes: list[int]) -> bytes:
    out = b""
    for s in sizes:
        out += b"\xff" * (s // 255) + bytes([s % 255])
    return out


def _vint(value: int) -> bytes:
    return encode_size(value)


def _ebml_lace(sizes: list[int]) -> bytes:
    out = _vint(sizes[0])
    for prev, cur in itertools.pairwise(sizes):
        diff = cur - prev
        for n in range(1, 9):
            bias = (1 << (7 * n - 1)) - 1
            if -bias <= diff <= bias:
                out += ((diff + bias) | (1 << (7 * n))).to_bytes(n, "big")
                break
    return out


FRAMES = [b"a" * 300, b"", b"bb", b"c" * 255, b"d" * 1000]


@pytest.mark.parametrize(
    ("lacing", "frames"),
    [
        ("xiph", FRAMES),
        ("ebml", FRAMES),
        ("ebml", [b"q" * 7]),  # a laced block with a single frame
        ("xiph", [b"q" * 7]),
        ("fixed", [b"x" * 64, b"y" * 64, b"z" * 64]),
    ],
)
@pytest.mark.parametrize("simple", [True, False])
def test_lacing(lacing: str, frames: list[bytes], simple: bool) -> None:
    sizes = [len(f) for f in frames]
    count = bytes([len(frames) - 1])
    if lacing == "xiph":
        flags, body = 0x02, count + _xiph(sizes[:-1]) + b"".join(frames)
    elif lacing == "ebml":
        flags, body = (
            0x06,
            count + (_ebml_lace(sizes[:-1]) if len(frames) > 1 else b"") + b"".join(frames),
        )
    else:
        flags, body = 0x04, count + b"".join(frames)
    if simple:
        block = raw_block(2, -3, flags | 0x80, body)
    else:
        block = w.master(
            ID.BlockGroup, [raw_block(2, -3, flags, body, ID.Block), w.uint(ID.BlockDuration, 20)]
        )
    data = getmedia([w.simple_block(1, 0, b"first"), block], producer_ms=5000)
    (frag,) = parse_all_ways(data)
    laced = frag.frames_of(2)
    assert [f.data for f in laced] == frames
    assert all(f.timecode == -3 and f.timestamp_ns == 4_997_000_000 for f in laced)
    assert all(f.keyframe is simple for f in laced)


@pytest.mark.parametrize(
    "body",
    [
        b"\x04" + b"\x05\x05\x05\x05",  # Xiph: 4 sizes summing past the data
        b"\x02",  # Xiph: sizes missing
        b"",  # no frame count
    ],
)
def test_bad_xiph_lacing_raises(body: bytes) -> None:
    data = getmedia([raw_block(1, 0, 0x82, body)])
    with pytest.raises(MkvError) as err:
        parse(data)
    assert err.value.offset == data.index(raw_block(1, 0, 0x82, body))


def test_bad_fixed_lacing_raises() -> None:
    data = getmedia([raw_block(1, 0, 0x84, b"\x02" + b"12345")])  # 5 bytes into 3 frames
    with pytest.raises(MkvError, match="fixed lacing"):
        parse(data)


# --- structure ------------------------------------------------------------------------------------


def test_crc32_elements_are_ignored() -> None:
    crc = w.element(ID.CRC32, b"\x01\x02\x03\x04")
    info = w.element(ID.Info, crc + w.uint(ID.TimecodeScale, 1_000_000))
    cluster = w.element(ID.Cluster, crc + w.uint(ID.Timecode, 3) + w.simple_block(1, 1, b"x"))
    tags = w.element(
        ID.Tags,
        crc
        + w.element(
            ID.Tag,
            crc + w.element(ID.SimpleTag, w.string(ID.TagName, "A") + w.string(ID.TagString, "b")),
        ),
    )
    data = w.ebml_header() + w.master(ID.Segment, [crc, info, w.tracks(PCM_TRACKS), tags, cluster])
    (frag,) = parse_all_ways(data)
    assert frag.tags == {"A": "b"} and frag.cluster_timecode == 3
    assert [f.data for f in frag.frames] == [b"x"]


def test_cues_and_seekhead_after_and_before_clusters() -> None:
    seek = w.master(
        ID.SeekHead,
        [
            w.master(
                ID.Seek, [w.binary(ID.SeekID, encode_id(ID.Cues)), w.uint(ID.SeekPosition, 999)]
            )
        ],
    )
    cues = w.master(
        ID.Cues,
        [
            w.master(
                ID.CuePoint,
                [
                    w.uint(ID.CueTime, 0),
                    w.master(
                        ID.CueTrackPositions,
                        [w.uint(ID.CueTrack, 1), w.uint(ID.CueClusterPosition, 5)],
                    ),
                ],
            )
        ],
    )
    clusters = [w.cluster(i * 1000, [w.simple_block(1, 0, bytes([i]))]) for i in range(3)]
    data = w.ebml_header() + w.master(ID.Segment, [seek, HEADER, *clusters, cues])
    frags = parse_all_ways(data)
    assert [f.cluster_timecode for f in frags] == [0, 1000, 2000]
    assert frags[-1].end_offset == len(data)


def test_unknown_size_segment_and_clusters() -> None:
    clusters = [w.cluster(i, [w.simple_block(1, 0, b"x")], unknown_size=True) for i in range(3)]
    data = w.ebml_header() + w.segment_start() + HEADER + b"".join(clusters)
    frags = parse_all_ways(data)
    assert [f.cluster_timecode for f in frags] == [0, 1, 2]
    evs = events(data)
    ends = [e for e in evs if isinstance(e, End)]
    assert [e.id for e in ends][-2:] == [ID.Cluster, ID.Segment]
    assert all(e.offset == len(data) for e in ends[-2:])


def test_unknown_size_cluster_inside_known_size_segment() -> None:
    """An unknown-size Cluster ends where its known-size Segment ends."""
    cluster = w.cluster(0, [w.simple_block(1, 0, b"x")], unknown_size=True)
    segment = w.master(ID.Segment, [HEADER, cluster])
    data = w.ebml_header() + segment + w.ebml_header() + w.segment_start() + HEADER + cluster
    frags = parse_all_ways(data)
    assert len(frags) == 2
    assert frags[0].end_offset == len(w.ebml_header()) + len(segment)
    ev = [e for e in events(data) if isinstance(e, End) and e.id in (ID.Cluster, ID.Segment)]
    assert [(e.id, e.offset) for e in ev[:2]] == [
        (ID.Cluster, frags[0].end_offset),
        (ID.Segment, frags[0].end_offset),
    ]


def test_unknown_size_tags_and_tag() -> None:
    """Tags of unknown size stream; an unknown-size Tag inside known-size Tags too."""
    simple = w.element(
        ID.SimpleTag, w.string(ID.TagName, "ContactId") + w.string(ID.TagString, "c-9")
    )
    streamed = encode_id(ID.Tags) + encode_size(-1) + w.element(ID.Tag, simple)
    inner_unknown = w.element(ID.Tags, encode_id(ID.Tag) + encode_size(-1) + simple)
    for tags in (streamed, inner_unknown):
        data = (
            w.ebml_header()
            + w.segment_start()
            + HEADER
            + tags
            + w.cluster(0, [w.simple_block(1, 0, b"x")])
        )
        (frag,) = parse_all_ways(data)
        assert frag.tags == {"ContactId": "c-9"}


def test_nested_simple_tags() -> None:
    inner = w.element(ID.SimpleTag, w.string(ID.TagName, "inner") + w.string(ID.TagString, "2"))
    outer = w.element(
        ID.SimpleTag, w.string(ID.TagName, "outer") + w.string(ID.TagString, "1") + inner
    )
    binary = w.element(
        ID.SimpleTag, w.string(ID.TagName, "bin") + w.binary(ID.TagBinary, b"\x01\xff")
    )
    tags = w.element(ID.Tags, w.element(ID.Tag, outer + binary))
    unknown = encode_id(ID.Tags) + encode_size(-1) + w.element(ID.Tag, outer + binary)
    for t in (tags, unknown):
        data = (
            w.ebml_header()
            + w.segment_start()
            + HEADER
            + t
            + w.cluster(0, [w.simple_block(1, 0, b"x")])
        )
        (frag,) = parse_all_ways(data)
        assert frag.tags == {"outer": "1", "inner": "2", "bin": "01ff"}


@pytest.mark.parametrize("where", ["segment", "cluster", "tags"])
def test_unknown_elements_never_break_the_reader(where: str) -> None:
    leaf = w.element(0x4FFE, b"\x2a")
    box = w.element(0x4FFF, w.string(ID.Name, "vendor-box") + w.uint(ID.TrackNumber, 7))
    odd = leaf + box + w.element(0x2A5A5A, b"zzz") + w.element(0x11223344, b"")
    blocks = [w.simple_block(1, 0, b"a"), w.simple_block(2, 0, b"b")]
    if where == "cluster":
        cluster = (
            encode_id(ID.Cluster)
            + encode_size(-1)
            + w.uint(ID.Timecode, 0)
            + blocks[0]
            + odd
            + blocks[1]
        )
        body = HEADER + cluster
    elif where == "tags":
        tags = w.element(
            ID.Tags,
            odd
            + w.element(
                ID.Tag,
                odd
                + w.element(
                    ID.SimpleTag, odd + w.string(ID.TagName, "k") + w.string(ID.TagString, "v")
                ),
            ),
        )
        body = HEADER + tags + w.cluster(0, blocks)
    else:
        body = odd + HEADER + odd + w.cluster(0, blocks) + odd
    data = w.ebml_header() + w.segment_start() + body
    (frag,) = parse_all_ways(data)
    assert [f.data for f in frag.frames] == [b"a", b"b"]
    assert list(frag.tracks) == [1, 2]  # the vendor box's TrackNumber 7 is not a track
    if where == "tags":
        assert frag.tags == {"k": "v"}
    leaves = [e for e in events(data) if isinstance(e, Leaf) and e.id == 0x4FFF]
    if where != "tags":
        assert leaves and all(isinstance(e.value, bytes) for e in leaves)


def test_ebml_magic_and_ids_inside_pcm_are_not_split() -> None:
    magic = b"\x1a\x45\xdf\xa3\x18\x53\x80\x67\x1f\x43\xb6\x75\x12\x54\xc3\x67"
    pcm = magic * 40
    data = getmedia([w.simple_block(1, 0, pcm), w.simple_block(2, 0, magic)]) * 2
    frags = parse_all_ways(data)
    assert len(frags) == 2
    assert all([f.data for f in fr.frames] == [pcm, magic] for fr in frags)


def test_tagless_fragments_including_the_tail_are_delivered() -> None:
    def doc(i: int, tagged: bool) -> bytes:
        cluster = w.cluster(i * 1000, [w.simple_block(1, 0, bytes([i]))], unknown_size=True)
        if tagged:
            return getmedia([], number=str(i), producer_ms=10_000 + i * 1000).replace(
                w.cluster(0, []), cluster
            )
        return w.ebml_header() + w.segment_start() + HEADER + cluster

    data = doc(0, True) + doc(1, False) + doc(2, False) + doc(3, True) + doc(4, False)
    frags = parse_all_ways(data)
    assert [f.fragment_number for f in frags] == ["0", None, None, "3", None]
    assert [f.frames[0].data for f in frags] == [bytes([i]) for i in range(5)]
    # Tagless fragments continue the producer timeline of the last tagged one.
    assert [f.cluster_timestamp_ns for f in frags] == [
        (10_000 + i * 1000) * 1_000_000 for i in range(5)
    ]
    reader = FragmentReader()
    assert len(reader.feed(data)) == 4 and len(reader.close()) == 1


def test_negative_block_timecodes_and_timecode_scale() -> None:
    info = w.info(timecode_scale=100_000, segment_uid=bytes(16))  # 0.1 ms ticks
    header = info + w.tracks(PCM_TRACKS)
    cluster = w.cluster(1000, [w.simple_block(1, tc, b"x") for tc in (-32768, -20, 0, 20, 32767)])
    plain = w.ebml_header() + w.segment_start() + header + cluster
    (frag,) = parse_all_ways(plain)
    assert frag.timecode_scale_ns == 100_000
    assert [f.timestamp_ns for f in frag.frames] == [
        (1000 + tc) * 100_000 for tc in (-32768, -20, 0, 20, 32767)
    ]
    tagged = render_fragment(
        ebml_header=w.ebml_header(),
        header=header,
        cluster=cluster,
        fragment_number="f",
        server_timestamp_ms=8_000_000_000_001,
        producer_timestamp_ms=8_000_000_000_000,
    )
    (frag,) = parse_all_ways(tagged)
    base = 8_000_000_000_000 * 1_000_000
    assert [f.timestamp_ns - base for f in frag.frames] == [
        tc * 100_000 for tc in (-32768, -20, 0, 20, 32767)
    ]


def test_timecode_scale_resets_per_segment() -> None:
    first = (
        w.ebml_header()
        + w.segment_start()
        + w.info(timecode_scale=100_000, segment_uid=bytes(16))
        + w.tracks(PCM_TRACKS)
        + w.cluster(10, [w.simple_block(1, 0, b"x")])
    )
    info_without_scale = w.master(ID.Info, [w.string(ID.MuxingApp, "m")])
    second = (
        w.ebml_header()
        + w.segment_start()
        + info_without_scale
        + w.tracks(PCM_TRACKS)
        + w.cluster(10, [w.simple_block(1, 0, b"x")])
    )
    a, b = parse_all_ways(first + second)
    assert (a.timecode_scale_ns, b.timecode_scale_ns) == (100_000, 1_000_000)
    assert (a.frames[0].timestamp_ns, b.frames[0].timestamp_ns) == (1_000_000, 10_000_000)


def test_void_and_multibyte_track_numbers() -> None:
    tracks = w.tracks([w.TrackSpec(300, "big", "A_PCM/INT/LIT")])
    block = w.element(ID.SimpleBlock, encode_size(300) + b"\x00\x01\x80" + b"payload")
    data = (
        w.ebml_header()
        + w.segment_start()
        + w.info()
        + w.element(ID.Void, bytes(50))
        + tracks
        + w.cluster(0, [w.element(ID.Void, b""), block])
    )
    (frag,) = parse_all_ways(data)
    assert [(f.track, f.timecode, f.data) for f in frag.frames] == [(300, 1, b"payload")]


def test_error_only_fragment_without_cluster() -> None:
    tags = w.tags(
        [
            ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", "9"),
            ("AWS_KINESISVIDEO_ERROR_CODE", "MAX_FRAGMENT_SIZE_REACHED"),
            ("AWS_KINESISVIDEO_ERROR_ID", "4003"),
        ]
    )
    data = w.ebml_header() + w.segment_start() + HEADER + tags
    (frag,) = parse_all_ways(data)
    assert (frag.fragment_number, frag.error_code, frag.error_id) == (
        "9",
        "MAX_FRAGMENT_SIZE_REACHED",
        4003,
    )
    assert frag.frames == []


def test_bad_kvs_values_become_plain_tags() -> None:
    data = render_fragment(
        ebml_header=w.ebml_header(),
        header=HEADER,
        cluster=w.cluster(0, [w.simple_block(1, 0, b"x")]),
        fragment_number="1",
        server_timestamp_ms=1,
        producer_timestamp_ms=1,
    ).replace(b"0.001", b"9e999")  # the producer timestamp (same width)
    (frag,) = parse_all_ways(data)
    assert frag.producer_timestamp_ms is None
    assert frag.tags["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"] == "9e999"


# --- the event API --------------------------------------------------------------------------------


def test_events_resume_after_early_break() -> None:
    data = getmedia([w.simple_block(1, i, bytes([i])) for i in range(6)], millis_behind_now=0)
    expected = events(data)
    reader = EbmlReader()
    reader.feed(data)
    reader.close()
    got: list[object] = []
    while True:
        batch = []
        for ev in reader.events():
            batch.append(ev)
            if len(batch) == 3:
                break
        got += batch
        if len(batch) < 3:
            break
    assert got == expected


def test_collapse_delivers_masters_whole() -> None:
    data = getmedia([w.simple_block(1, 0, b"x")])
    evs = events(data)
    collapsed = EbmlReader(collapse={ID.Tracks, ID.Tags})
    collapsed.feed(data)
    collapsed.close()
    cev = list(collapsed.events())
    tracks = [e for e in cev if isinstance(e, Leaf) and e.id == ID.Tracks]
    assert len(tracks) == 1 and isinstance(tracks[0].value, bytes)
    assert not any(isinstance(e, Start) and e.id in (ID.Tracks, ID.Tags) for e in cev)
    blocks = [e for e in evs if isinstance(e, Block)]
    assert blocks == [e for e in cev if isinstance(e, Block)]


def test_tags_between_clusters_belong_to_the_next_cluster() -> None:
    """One Segment, metadata before each Cluster (a PutMedia upload, or the parser
    library's OutputSegmentMerger output): each fragment gets its own tags."""
    body = HEADER
    for i in range(3):
        kvs = w.tags(
            [
                ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", str(i)),
                ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", f"{i}.000"),
            ]
        )
        body += (
            kvs
            + w.tags([("ContactId", f"c{i}")])
            + w.cluster(i * 1000, [w.simple_block(1, 0, b"x")])
        )
    data = w.ebml_header() + w.segment_start() + body + w.tags([("Trailing", "t")])
    frags = parse_all_ways(data)
    assert [f.fragment_number for f in frags] == ["0", "1", "2"]
    assert [f.producer_timestamp_ms for f in frags] == [0, 1000, 2000]
    assert [f.tags.get("ContactId") for f in frags] == ["c0", "c1", "c2"]
    assert [("Trailing" in f.tags) for f in frags] == [False, False, True]


def test_persistent_tags_written_after_each_cluster() -> None:
    """Tags before the first Cluster and after every Cluster but the last (a producer
    re-sending persistent metadata): every fragment carries them."""
    tags = w.tags([("ContactId", "c-9")])
    clusters = [w.cluster(i * 1000, [w.simple_block(1, 0, b"x")]) for i in range(4)]
    body = tags + tags.join(clusters)
    data = w.ebml_header() + w.segment_start() + HEADER + body
    frags = parse_all_ways(data)
    assert [f.tags for f in frags] == [{"ContactId": "c-9"}] * 4


def test_batch_blocks_matches_block_events() -> None:
    laced = raw_block(2, 5, 0x82, b"\x01\x03" + b"abcdef")  # laced: stays a Block
    data = getmedia([w.simple_block(1, k, bytes([k]) * 9) for k in range(5)] + [laced]) * 2
    plain = [
        (e.offset, e.track, e.timecode, e.flags, e.frames)
        for e in events(data)
        if isinstance(e, Block)
    ]
    for step in (len(data), 7, 1):
        reader = EbmlReader(batch_blocks=True)
        got = []
        for i in range(0, len(data), step):
            reader.feed(data[i : i + step])
            for ev in reader.events():
                if isinstance(ev, BlockRun):
                    got += [(o, t, tc, f, (d,)) for o, t, tc, f, d in ev.blocks()]
                elif isinstance(ev, Block):
                    got.append((ev.offset, ev.track, ev.timecode, ev.flags, ev.frames))
        assert got == plain


def _live_upload() -> bytes:
    """A PutMedia-shaped body: unknown-size Clusters of small and 2-byte-size blocks,
    producer Tags between them, a laced block, and a known-size Cluster whose last block
    ends exactly at its end."""
    laced = raw_block(2, 5, 0x82, b"\x01\x03" + b"abcdef")
    decoy = w.simple_block(1, 7, b"not a block") * 3  # block bytes inside a block's payload
    live = [
        w.cluster(
            1000 * c,
            [
                w.simple_block(1 + k % 2, 20 * k, bytes([k]) * (9 if k % 3 else 300))
                for k in range(6)
            ]
            + ([laced, w.simple_block(2, 200, decoy)] if c == 1 else []),
            unknown_size=True,
            timecode_width=8,
        )
        for c in range(3)
    ]
    known = w.cluster(3000, [w.simple_block(1, k, bytes([k]) * 40) for k in range(4)])
    return (
        w.ebml_header()
        + w.segment_start()
        + HEADER
        + w.tags([("A", "1")]).join(live)
        + known
        + w.tags([("B", "2")])
    )


def _as_blocks(flat: list[int | bytes]) -> list[Block]:
    it = iter(flat)
    return [Block(o, t, tc, f, (d,)) for o, t, tc, f, d in zip(it, it, it, it, it, strict=True)]  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_feed_blocks_yields_what_feed_yields_however_the_input_is_cut(data: st.DataObject) -> None:
    """``feed_blocks`` (the PutMedia steady state) parses whole blocks at the start of a
    chunk itself; with the events of the rest, the result is exactly ``feed``'s."""
    doc = _live_upload()
    plain = events(doc)
    block_edges = sorted({e.offset for e in plain if isinstance(e, Block)})
    decoy = w.simple_block(1, 7, b"not a block")
    block_edges.append(doc.index(decoy))  # a cut inside a block, where it looks like one
    cuts = data.draw(
        st.lists(
            st.one_of(st.sampled_from(block_edges), st.integers(1, len(doc) - 1)),
            max_size=40,
            unique=True,
        )
    )
    reader = EbmlReader()
    got: list[Start | End | Leaf | Block] = []
    bounds = [0, *sorted(cuts), len(doc)]
    for a, b in itertools.pairwise(bounds):
        got += _as_blocks(reader.feed_blocks(doc[a:b]))
        got += list(reader.events())  # type: ignore[arg-type]
    reader.close()
    got += list(reader.events())  # type: ignore[arg-type]
    assert got == plain


def test_feed_blocks_parses_block_aligned_chunks_itself() -> None:
    doc = _live_upload()
    plain = events(doc)
    first = next(e for e in plain if isinstance(e, Block))
    second = next(e for e in plain if isinstance(e, Block) and e.offset > first.offset)
    reader = EbmlReader()
    reader.feed(doc[: first.offset])
    assert not any(isinstance(e, Block) for e in reader.events())
    run = reader.feed_blocks(doc[first.offset : second.offset])
    assert _as_blocks(run) == [first]
    assert reader.offset == second.offset
    assert list(reader.events()) == []
