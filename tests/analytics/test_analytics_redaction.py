"""PCI redaction: cards (numerals and spoken), CVV and expiry, no false positives."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.analytics.redaction import has_luhn_window, luhn_ok, redact_pci, redact_segments
from callstream.analytics.transcript import Segment as Seg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sure, my card number is 4111 1111 1111 1111.", "Sure, my card number is [PCI]."),
        ("it's 5500-0000-0000-0004 okay", "it's [PCI] okay"),
        ("number 378282246310005 thanks", "number [PCI] thanks"),
        (
            "four five three two, oh one five one, one two eight three, oh three six six",
            "[PCI]",
        ),
        ("the security code is 737", "the security code is [PCI]"),
        ("CVV is four five six", "CVV is [PCI]"),
        ("it's 123, the three digits on the back", "it's [PCI], the three digits on the back"),
        ("and it expires 05/27", "and it expires [PCI]"),
        ("expiry date oh five two seven", "expiry date [PCI]"),
        ("expiration is May twenty six", "expiration is [PCI]"),
        ("visa ending, card is 4111 1111 1111 1112", "visa ending, card is [PCI]"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert redact_pci(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "I ordered 2 items and only 1 arrived",
        "my order number is 1234567890123",
        "call me back on 0207 946 0018",
        "it was about 300 pounds in March",
        "oh, one moment please",
        "I've been a customer for 12 years, since 2011",
        "the reference is 5550001234567",
        "room 101, the code for the door is 4512",
    ],
)
def test_ordinary_numbers_are_kept(text: str) -> None:
    assert redact_pci(text) == (text, [])


def test_mask_char_keeps_length_and_separators() -> None:
    red, spans = redact_pci("card 4111-1111-1111-1111 ok", mask="#")
    assert red == "card ####-####-####-#### ok"
    assert spans == [(5, 24)]


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert has_luhn_window("99" + "4111111111111111" + "77")


def test_segments_only_caller_by_default_and_silence_spans() -> None:
    segs = [
        Seg("a1", "AGENT", 0.0, 2.0, "Can you read me 4111 1111 1111 1111 to confirm?"),
        Seg("c1", "CALLER", 2.0, 6.0, "Yes it's 4111 1111 1111 1111"),
        Seg("c2", "CALLER", 6.0, 7.0, "thanks"),
    ]
    out, silence = redact_segments(segs)
    assert [s.Transcript for s in out] == [segs[0].Transcript, "Yes it's [PCI]", "thanks"]
    assert segs[1].Transcript == "Yes it's 4111 1111 1111 1111"  # input untouched
    [(sid, t0, t1)] = silence
    assert sid == "c1" and 2.0 <= t0 < 3.5 and t1 == 6.0
    out2, silence2 = redact_segments(segs, channels=("CALLER", "AGENT"))
    assert "[PCI]" in out2[0].Transcript and len(silence2) == 2


_RUN = re.compile(r"\d(?:[\s,\-]*\d)*")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789", min_size=1, max_size=20),
            st.sampled_from([" ", "-", ", ", " card ", " the ", " oh ", "x", "security code"]),
            st.builds(lambda n: str(n), st.sampled_from([4111111111111111, 378282246310005])),
        ),
        max_size=12,
    ).map("".join)
)
def test_no_luhn_valid_card_survives(text: str) -> None:
    red, _ = redact_pci(text)
    for m in _RUN.finditer(red):
        digits = re.sub(r"\D", "", m.group(0))
        assert not has_luhn_window(digits), (text, red)
