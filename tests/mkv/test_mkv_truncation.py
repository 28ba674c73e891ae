"""Cut-off captures and KVS end tags split across Tags elements."""

from __future__ import annotations

import pytest

from callstream.mkv import FragmentReader, MkvError, iter_fragments, render_fragment
from callstream.mkv import writer as w
from callstream.mkv.kvs import format_kvs_timestamp

HEADER = w.info() + w.tracks([w.TrackSpec(1, "AUDIO_FROM_CUSTOMER", "A_PCM/INT/LIT")])


def document(n: int, *, end_tags: bool = True) -> bytes:
    start = 1_700_000_000_000 + 1000 * n
    cluster = w.cluster(start, [w.simple_block(1, i * 20, bytes([n]) * 320) for i in range(50)])
    number = f"{10**46 + n}"
    return render_fragment(
        ebml_header=w.ebml_header(),
        header=HEADER,
        cluster=cluster,
        fragment_number=number,
        server_timestamp_ms=start,
        producer_timestamp_ms=start,
        millis_behind_now=5 if end_tags else None,
        continuation_token=number if end_tags else None,
    )


def test_a_cut_off_capture_still_delivers_the_fragment_whose_cluster_arrived() -> None:
    data = document(0) + document(1) + document(2)
    cut = data[:-30]  # the end Tags of the last fragment are cut
    reader = FragmentReader()
    delivered = reader.feed(cut)
    with pytest.raises(MkvError) as err:
        reader.close()
    delivered += err.value.fragments
    assert [f.fragment_number for f in delivered] == [f"{10**46 + n}" for n in range(3)]
    assert len(delivered[-1].frames) == 50
    # the iterator form yields them before raising
    got = []
    with pytest.raises(MkvError):
        for fragment in iter_fragments([cut]):
            got.append(fragment)
    assert len(got) == 3


def test_end_tags_split_over_two_tags_elements_make_one_fragment() -> None:
    number = f"{10**46}"
    split = (
        document(0, end_tags=False)
        + w.tags([("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "5")], size_width=4)
        + w.tags([("AWS_KINESISVIDEO_CONTINUATION_TOKEN", number)], size_width=4)
    )
    reader = FragmentReader()
    frags = reader.feed(split + document(1)) + reader.close()
    assert len(frags) == 2
    assert frags[0].millis_behind_now == 5 and frags[0].continuation_token == number
    assert frags[0].producer_timestamp_ms == 1_700_000_000_000
    assert format_kvs_timestamp(frags[1].producer_timestamp_ms or 0) == "1700000001.000"
