"""G.711 codec tests: bit-exact against audioop, plus round-trip properties."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from callstream.media import g711
from callstream.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))
int16_arrays = hnp.arrays(np.int16, st.integers(0, 400))


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop as mod
        except ImportError:
            pytest.skip("audioop not available (removed in Python 3.13)")
    return mod


def _le(samples: np.ndarray) -> bytes:
    return samples.astype("<i2").tobytes()


# --- bit-exactness against the reference -------------------------------------------------


def test_ulaw_encode_matches_audioop_for_every_int16(audioop: ModuleType) -> None:
    assert ulaw_encode(ALL_INT16) == audioop.lin2ulaw(_le(ALL_INT16), 2)


def test_alaw_encode_matches_audioop_for_every_int16(audioop: ModuleType) -> None:
    assert alaw_encode(ALL_INT16) == audioop.lin2alaw(_le(ALL_INT16), 2)


def test_ulaw_decode_matches_audioop_for_every_code(audioop: ModuleType) -> None:
    assert _le(ulaw_decode(ALL_CODES)) == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_for_every_code(audioop: ModuleType) -> None:
    assert _le(alaw_decode(ALL_CODES)) == audioop.alaw2lin(ALL_CODES, 2)


def test_encode_tables_are_indexed_by_uint16_view() -> None:
    idx = ALL_INT16.view(np.uint16)
    assert g711.ULAW_ENCODE_TABLE.shape == (65536,)
    assert g711.ULAW_ENCODE_TABLE[idx].tobytes() == ulaw_encode(ALL_INT16)
    assert g711.ALAW_ENCODE_TABLE[idx].tobytes() == alaw_encode(ALL_INT16)
    assert not g711.ULAW_DECODE_TABLE.flags.writeable


def test_known_reference_values() -> None:
    # ITU-T G.711: silence is 0xFF (µ-law) / 0xD5 (A-law); extremes saturate.
    assert ulaw_encode(np.array([0, 32767, -32768], np.int16)) == b"\xff\x80\x00"
    assert alaw_encode(np.array([0, 32767, -32768], np.int16)) == b"\xd5\xaa\x2a"
    assert ulaw_decode(b"\xff\x7f\x80\x00").tolist() == [0, 0, 32124, -32124]
    assert alaw_decode(b"\xd5\x55\xaa\x2a").tolist() == [8, -8, 32256, -32256]


# --- code round trips (exhaustive) --------------------------------------------------------


def test_every_ulaw_code_round_trips_except_negative_zero() -> None:
    back = ulaw_encode(ulaw_decode(ALL_CODES))
    differ = [c for c in range(256) if back[c] != c]
    assert differ == [0x7F]  # -0 decodes to 0, which encodes as +0 (0xFF)


def test_every_alaw_code_round_trips() -> None:
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES


@pytest.mark.parametrize(("enc", "dec"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_quantisation_error_is_bounded_and_monotonic(
    enc: Callable[[np.ndarray], bytes], dec: Callable[[bytes], np.ndarray]
) -> None:
    y = dec(enc(ALL_INT16)).astype(np.int32)
    x = ALL_INT16.astype(np.int32)
    # error within the segment step (~1/16 of the magnitude, plus the smallest step)
    assert np.all(np.abs(y - x) <= np.abs(x) // 16 + 8)
    # companding preserves order
    assert np.all(np.diff(y) >= 0)


# --- properties ---------------------------------------------------------------------------


@given(int16_arrays)
def test_ulaw_decode_encode_is_idempotent(x: np.ndarray) -> None:
    codes = ulaw_encode(x)
    assert len(codes) == x.size
    y = ulaw_decode(codes)
    assert y.dtype == np.int16
    assert ulaw_encode(y) == codes
    assert np.array_equal(ulaw_decode(ulaw_encode(y)), y)


@given(int16_arrays)
def test_alaw_decode_encode_is_idempotent(x: np.ndarray) -> None:
    codes = alaw_encode(x)
    y = alaw_decode(codes)
    assert alaw_encode(y) == codes
    assert np.array_equal(alaw_decode(alaw_encode(y)), y)


@given(int16_arrays)
def test_bytes_input_is_little_endian_pcm(x: np.ndarray) -> None:
    assert ulaw_encode(x.astype("<i2").tobytes()) == ulaw_encode(x)
    assert alaw_encode(bytearray(x.astype("<i2").tobytes())) == alaw_encode(x)
    # a big-endian array means the same values, not swapped bytes
    assert ulaw_encode(x.astype(">i2")) == ulaw_encode(x)


def test_input_coercion_and_errors() -> None:
    x = np.array([[1, -2], [300, -4000]], dtype=np.int16)
    assert ulaw_encode(x) == ulaw_encode(x.reshape(-1))  # (n, ch) -> interleaved
    assert ulaw_encode(x.astype(np.int32)) == ulaw_encode(x)
    assert ulaw_encode(ALL_INT16[::7]) == ulaw_encode(ALL_INT16[::7].copy())
    assert (
        ulaw_decode(np.frombuffer(ALL_CODES, np.uint8)).tolist() == ulaw_decode(ALL_CODES).tolist()
    )
    with pytest.raises(ValueError, match="even byte length"):
        ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="out of int16 range"):
        alaw_encode(np.array([40000], dtype=np.int32))
    with pytest.raises(TypeError, match="integer"):
        ulaw_encode(np.array([0.5]))
    with pytest.raises(TypeError, match="uint8"):
        ulaw_decode(np.array([1, 2], dtype=np.int16))
    assert ulaw_encode(b"") == b""
    assert ulaw_decode(b"").shape == (0,)
