"""The block-run scanner: runs of equal-size SimpleBlocks are read column by column, and
what comes out is exactly what reading them one by one gives."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream.mkv import ID
from callstream.mkv import writer as w
from callstream.mkv.reader import _scan_uniform, scan_blocks

UNKNOWN = -1


def one_by_one(
    buf: bytes, pos: int, end: int, base: int, limit: int, max_size: int
) -> tuple[int, list[int | bytes]]:
    """The plain-SimpleBlock rule, block by block (the reference)."""
    run: list[int | bytes] = []
    while pos + 7 <= end and buf[pos] == 0xA3:
        sf = buf[pos + 1]
        if sf >= 0x80:
            size, p = sf & 0x7F, pos + 2
        elif sf >= 0x40:
            size, p = ((sf & 0x3F) << 8) | buf[pos + 2], pos + 3
        else:
            break
        stop = p + size
        if stop > end or size < 4 or size > max_size or size in (0x7F, 0x3FFF):
            break
        track, flags = buf[p], buf[p + 3]
        if track < 0x80 or flags & 0x06 or (limit != UNKNOWN and base + stop > limit):
            break
        timecode = int.from_bytes(buf[p + 1 : p + 3], "big", signed=True)
        run += [base + pos, track & 0x7F, timecode, flags, buf[p + 4 : stop]]
        pos = stop
        if base + pos == limit:
            break
    return pos, run


@st.composite
def block_streams(draw: st.DrawFn) -> bytes:
    """Mostly runs of equal-size blocks (audio), with the odd block of another size,
    track, lacing or a non-block element, and the odd corrupted byte."""
    out = bytearray()
    for _ in range(draw(st.integers(0, 4))):
        size = draw(st.sampled_from([1, 40, 120, 124, 125, 320, 1024, 16380]))
        for _ in range(draw(st.integers(0, 40))):
            track = draw(st.sampled_from([1, 2, 1, 2, 126]))
            tc = draw(st.integers(-32768, 32767))
            out += w.simple_block(track, tc, b"\x5a" * size, keyframe=draw(st.booleans()))
        odd = draw(st.sampled_from(["none", "none", "laced", "leaf", "short", "track"]))
        if odd == "laced":
            out += w.element(ID.SimpleBlock, b"\x81\x00\x00\x82\x02\x03\x02abcdefghi")
        elif odd == "leaf":
            out += w.uint(ID.Timecode, 7)
        elif odd == "short":
            out += w.simple_block(1, 0, b"")
        elif odd == "track":  # a 2-byte track number
            out += w.element(ID.SimpleBlock, b"\x40\x81\x00\x00\x80" + b"z" * 20)
    for _ in range(draw(st.integers(0, 2))):
        if out:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=block_streams(),
    lead=st.integers(0, 3),
    cut=st.integers(0, 10**6),
    base=st.integers(0, 10**6),
    limit=st.one_of(st.just(UNKNOWN), st.integers(0, 10**6)),
    max_size=st.sampled_from([10**9, 1000, 300]),
)
def test_scan_blocks_gives_what_one_by_one_gives(
    data: bytes, lead: int, cut: int, base: int, limit: int, max_size: int
) -> None:
    buf = b"\xec" * lead + data
    end = len(buf) - cut % (len(buf) + 1) if cut % 3 else len(buf)
    if limit != UNKNOWN:
        limit = base + lead + limit % (len(buf) + 8)
    run: list[int | bytes] = []
    pos = scan_blocks(buf, lead, end, base, limit, max_size, run)
    assert (pos, run) == one_by_one(buf, lead, end, base, limit, max_size)


def test_a_run_of_equal_blocks_is_taken_in_bulk() -> None:
    """The column reader takes a long run in one call and stops at the first block that
    differs (here: a laced one), not before."""
    blocks = [w.simple_block(1 + k % 2, 20 * k, bytes([k]) * 320) for k in range(101)]
    laced = w.element(ID.SimpleBlock, b"\x81\x00\x00\x82\x02\x03\x02abcdefghi")
    buf = b"".join(blocks) + laced + b"".join(blocks[:30])
    step = len(blocks[0])
    run: list[int | bytes] = []
    assert _scan_uniform(buf, 0, step, len(buf), 0, UNKNOWN, run) == 101 * step
    assert len(run) == 5 * 100
    assert run[-5:] == [100 * step, 1, 2000, 0x80, bytes([100]) * 320]
    # and a run ending at a known Cluster end stops exactly there
    run = []
    assert _scan_uniform(buf, 0, step, len(buf), 1000, 1000 + 50 * step, run) == 50 * step
