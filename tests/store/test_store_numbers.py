"""Fragment numbers: real-sample decoding, round trip, ordering, validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.store.base import InvalidArgument
from callstream.store.numbers import (
    FRAGMENT_NUMBER_DIGITS,
    MAX_SEQUENCE,
    MAX_SERVER_TIMESTAMP_MS,
    InvalidFragmentNumber,
    is_valid_fragment_number,
    make_fragment_number,
    parse_fragment_number,
)

# Real fragment numbers and the SERVER_TIMESTAMP they were served with (kvs-wire.md §2, §3, §4).
REAL = [
    ("91343852333181432392682062607743920146159169392", 1, 1511852109126),
    ("91343852333181531502161607852955530730504675150", 20016, 1726677687758),
    ("91343852333185057105875891022195998207386831087", 732006, 1643353247067),
    ("91343852333713038908964877623801423530396737899", 107357082, 1537574915281),
    ("91343852333193120789800267782983005990846373393", 2360454, 1513100006851),
    ("91343852333193120794752027940124532060778351310", 2360455, 1513100025367),
]

seqs = st.integers(min_value=0, max_value=MAX_SEQUENCE)
stamps = st.integers(min_value=0, max_value=MAX_SERVER_TIMESTAMP_MS)
rands = st.integers(min_value=0, max_value=(1 << 28) - 1)


@pytest.mark.parametrize(("number", "seq", "ts"), REAL)
def test_real_numbers_decode(number: str, seq: int, ts: int) -> None:
    got_seq, got_ts, rand = parse_fragment_number(number)
    assert (got_seq, got_ts) == (seq, ts)
    assert make_fragment_number(seq, ts, rand) == number
    assert is_valid_fragment_number(number)


def test_first_fragment_of_a_fresh_stream() -> None:
    number = make_fragment_number(1, 1511852109126, 0)
    assert number.startswith("913438523331814323926820626")
    assert len(number) == FRAGMENT_NUMBER_DIGITS


@given(seqs, stamps, rands)
def test_round_trip(seq: int, ts: int, rand: int) -> None:
    number = make_fragment_number(seq, ts, rand)
    assert len(number) == FRAGMENT_NUMBER_DIGITS
    assert number.isdigit()
    assert parse_fragment_number(number) == (seq, ts, rand)


@given(seqs, seqs, stamps, stamps)
def test_order_follows_seq_as_strings_and_ints(s1: int, s2: int, t1: int, t2: int) -> None:
    a = make_fragment_number(s1, t1)
    b = make_fragment_number(s2, t2)
    if s1 < s2:
        assert a < b
        assert int(a) < int(b)
    elif s1 > s2:
        assert a > b
        assert int(a) > int(b)
    assert (a < b) == (int(a) < int(b))


@given(seqs, stamps)
def test_random_part_is_filled_in(seq: int, ts: int) -> None:
    assert parse_fragment_number(make_fragment_number(seq, ts))[:2] == (seq, ts)


def test_extremes_keep_47_digits() -> None:
    top = make_fragment_number(MAX_SEQUENCE, MAX_SERVER_TIMESTAMP_MS, (1 << 28) - 1)
    bottom = make_fragment_number(0, 0, 0)
    assert len(top) == len(bottom) == FRAGMENT_NUMBER_DIGITS
    assert bottom == str(1 << 156)


@pytest.mark.parametrize(
    ("seq", "ts", "rand"),
    [(-1, 0, 0), (MAX_SEQUENCE + 1, 0, 0), (1, -1, 0), (1, 1 << 64, 0), (1, 0, 1 << 28)],
)
def test_make_rejects_out_of_range(seq: int, ts: int, rand: int) -> None:
    with pytest.raises(ValueError):
        make_fragment_number(seq, ts, rand)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1234",
        "9134385233318143239268206260774392014615916939",  # 46 digits
        "913438523331814323926820626077439201461591693920",  # 48 digits
        "11343852333181432392682062607743920146159169392",  # 47 digits, marker bit clear
        "9134385233318143239268206260774392014615916939x",
        " 9134385233318143239268206260774392014615916939",
        "９1343852333181432392682062607743920146159169392",  # non-ASCII digit
    ],
)
def test_parse_rejects(bad: str) -> None:
    assert not is_valid_fragment_number(bad)
    with pytest.raises(InvalidFragmentNumber) as info:
        parse_fragment_number(bad)
    assert isinstance(info.value, InvalidArgument)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "InvalidArgumentException"


def test_non_strings_are_invalid() -> None:
    assert not is_valid_fragment_number(91343852333181432392682062607743920146159169392)
    assert not is_valid_fragment_number(None)


@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes(text: str) -> None:
    if is_valid_fragment_number(text):
        seq, ts, rand = parse_fragment_number(text)
        if seq <= MAX_SEQUENCE:  # above it only some timestamps still fit in 47 digits
            assert make_fragment_number(seq, ts, rand) == text


def test_largest_47_digit_number_parses() -> None:
    seq, _, _ = parse_fragment_number("9" * 47)
    assert seq == MAX_SEQUENCE + 1
