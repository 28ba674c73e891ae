"""Request timestamps: every form a client sends, exact to the millisecond, rounded the
way an inclusive range needs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.api.errors import KvsError
from callstream.api.shapes import parse_timestamp


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1700000000, 1_700_000_000_000),
        (1700000000.5, 1_700_000_000_500),
        ("1700000000.123", 1_700_000_000_123),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.250+00:00", 1_700_000_000_250),
        ("2023-11-14T22:13:20.250", 1_700_000_000_250),  # no zone: UTC, as in AWS
        ("2023-11-15T00:13:20+02:00", 1_700_000_000_000),
        (-1.5, -1500),
    ],
)
def test_forms(value: object, ms: int) -> None:
    assert parse_timestamp(value, "T") == ms


def test_a_range_rounds_inward() -> None:
    # 0.4 ms after a whole millisecond: a range starting there must not include it
    assert parse_timestamp("1.0004", "T", rounding="up") == 1001
    assert parse_timestamp("1.0004", "T", rounding="down") == 1000
    assert parse_timestamp("-0.0004", "T", rounding="down") == -1
    assert parse_timestamp("1.0004", "T") == 1000


@pytest.mark.parametrize("bad", [None, True, "x", "NaN", "inf", "1e999999999", 1e308, [], {}])
def test_bad_values_are_400s(bad: object) -> None:
    with pytest.raises(KvsError) as info:
        parse_timestamp(bad, "StartTimestamp")
    assert info.value.code == "InvalidArgumentException" and "StartTimestamp" in info.value.message


@given(st.text(max_size=40) | st.floats(allow_nan=True) | st.integers())
def test_anything_is_a_value_or_a_400(value: object) -> None:
    try:
        parse_timestamp(value, "T")
    except KvsError as err:
        assert err.code == "InvalidArgumentException"


def test_a_json_number_means_the_decimal_the_client_wrote() -> None:
    # 1796420000.123 is the float 1796420000.1229999...: still .123 at either end
    assert parse_timestamp(1796420000.123, "T", rounding="down") == 1_796_420_000_123
    assert parse_timestamp(1796420000.123, "T", rounding="up") == 1_796_420_000_123
