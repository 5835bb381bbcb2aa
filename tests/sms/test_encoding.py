"""SMS text analysis: alphabet choice, segment boundaries, part splitting and octets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.encoding import (
    GSM7,
    UCS2,
    TextInfo,
    analyze,
    decode_gsm7,
    decode_ucs2,
    encode_gsm7,
    encode_ucs2,
    is_gsm7,
    split_parts,
)

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\x0c^{}\\[~]|€"
EMOJI = "😀"  # outside the BMP: two UTF-16 code units

gsm_texts = st.text(alphabet=GSM_BASIC + GSM_EXTENSION, max_size=700)
any_texts = st.text(max_size=400)
mixed_texts = st.text(alphabet=st.sampled_from("ab€😀é\u4e2d"), max_size=400)


def units_of(part: str, encoding: str) -> int:
    if encoding == GSM7:
        return len(encode_gsm7(part))
    return len(encode_ucs2(part)) // 2


# -- alphabet -----------------------------------------------------------------------------


def test_basic_table_has_128_septets_less_the_escape() -> None:
    assert len(GSM_BASIC) == 127
    assert sorted(encode_gsm7(GSM_BASIC)) == [code for code in range(128) if code != 0x1B]


def test_extension_characters_are_escaped_pairs() -> None:
    assert encode_gsm7(GSM_EXTENSION) == bytes.fromhex("1b0a1b141b281b291b2f1b3c1b3d1b3e1b401b65")


def test_euro_sign_is_gsm_and_costs_two_septets() -> None:
    info = analyze("Bei €5")
    assert info == TextInfo(encoding=GSM7, length=6, units=7, segments=1, per_segment=160)
    assert encode_gsm7("€") == b"\x1b\x65"


def test_grave_accent_and_section_sign_are_not_confused() -> None:
    # '§' is septet 0x5F; '`' has no GSM encoding at all.
    assert encode_gsm7("§") == b"\x5f"
    assert not is_gsm7("`")
    assert analyze("price `5`").encoding == UCS2


def test_swahili_text_stays_gsm7() -> None:
    text = "Habari yako? Karibu sana Dar es Salaam. Malipo yako ya TSh 10,000 yamepokelewa."
    info = analyze(text)
    assert info.encoding == GSM7
    assert info.units == len(text)
    assert decode_gsm7(encode_gsm7(text)) == text


def test_one_non_gsm_character_switches_the_whole_text_to_ucs2() -> None:
    text = "a" * 100 + "ç"  # lower-case c-cedilla is not in the GSM table (only Ç is)
    info = analyze(text)
    assert info.encoding == UCS2
    assert info.units == 101
    assert info.segments == 2
    assert info.per_segment == 67


def test_empty_text_is_one_segment() -> None:
    assert analyze("") == TextInfo(encoding=GSM7, length=0, units=0, segments=1, per_segment=160)
    assert split_parts("") == [""]


# -- boundaries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments", "per_segment"),
    [
        ("a" * 160, 1, 160),
        ("a" * 161, 2, 153),
        ("a" * 153 * 2, 2, 153),
        ("a" * (153 * 2 + 1), 3, 153),
        ("€" * 80, 1, 160),
        ("€" * 80 + "a", 2, 153),
    ],
)
def test_gsm7_segment_boundaries(text: str, segments: int, per_segment: int) -> None:
    info = analyze(text)
    assert (info.encoding, info.segments, info.per_segment) == (GSM7, segments, per_segment)
    assert len(split_parts(text)) == segments


@pytest.mark.parametrize(
    ("text", "segments", "per_segment"),
    [
        ("ç" * 70, 1, 70),
        ("ç" * 71, 2, 67),
        ("ç" * 67 * 2, 2, 67),
        ("ç" * (67 * 2 + 1), 3, 67),
        (EMOJI * 35, 1, 70),
        (EMOJI * 36, 2, 67),
    ],
)
def test_ucs2_segment_boundaries(text: str, segments: int, per_segment: int) -> None:
    info = analyze(text)
    assert (info.encoding, info.segments, info.per_segment) == (UCS2, segments, per_segment)
    assert len(split_parts(text)) == segments


def test_extension_character_at_a_part_border_moves_whole_to_the_next_part() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the escape would be septet 153, the € septet 154
    parts = split_parts(text)
    assert [len(encode_gsm7(p)) for p in parts] == [152, 12]
    assert parts[1].startswith("€")
    assert analyze(text).segments == 2


def test_extension_character_that_ends_exactly_on_a_border_stays() -> None:
    text = "a" * 151 + "€" + "b" * 10
    parts = split_parts(text)
    assert [len(encode_gsm7(p)) for p in parts] == [153, 10]
    assert parts[0].endswith("€")


def test_border_shifts_can_add_a_segment_beyond_the_plain_formula() -> None:
    text = ("a" * 152 + "€") * 2  # 308 septets: ceil(308 / 153) is 3, but both € shift
    info = analyze(text)
    assert info.units == 308
    assert info.segments == 3
    assert len(split_parts(text)) == 3


def test_surrogate_pair_at_a_part_border_is_not_split() -> None:
    text = "ç" * 66 + EMOJI + "ç" * 5  # the emoji would take units 67 and 68
    parts = split_parts(text)
    assert [len(encode_ucs2(p)) // 2 for p in parts] == [66, 7]
    assert parts[1].startswith(EMOJI)
    for part in parts:
        decode_ucs2(encode_ucs2(part)).encode("utf-16-be")  # well formed, no lone halves


def test_emoji_counts_two_units() -> None:
    info = analyze("Asante " + EMOJI)
    assert (info.encoding, info.length, info.units) == (UCS2, 8, 9)


def test_encode_gsm7_rejects_characters_outside_the_alphabet() -> None:
    with pytest.raises(ValueError, match="not in the GSM"):
        encode_gsm7("ç")


def test_decode_gsm7_is_tolerant_of_unknown_escapes() -> None:
    assert decode_gsm7(b"\x1b\x41") == "A"
    assert decode_gsm7(b"ab\x1b") == "ab "
    with pytest.raises(ValueError, match="not an unpacked GSM septet"):
        decode_gsm7(b"\x80")


def test_ucs2_is_utf16_big_endian() -> None:
    assert encode_ucs2("Şa" + EMOJI) == "Şa😀".encode("utf-16-be")
    assert encode_ucs2("€") == b"\x20\xac"


# -- properties ---------------------------------------------------------------------------


@given(gsm_texts)
def test_gsm7_round_trips(text: str) -> None:
    assert decode_gsm7(encode_gsm7(text)) == text


@given(any_texts)
def test_ucs2_round_trips(text: str) -> None:
    assert decode_ucs2(encode_ucs2(text)) == text


@given(st.one_of(gsm_texts, any_texts, mixed_texts))
def test_parts_rejoin_to_the_original(text: str) -> None:
    assert "".join(split_parts(text)) == text


@given(st.one_of(gsm_texts, any_texts, mixed_texts))
def test_every_part_fits_its_limit_and_counts_match(text: str) -> None:
    info = analyze(text)
    parts = split_parts(text)
    assert len(parts) == info.segments
    assert all(units_of(part, info.encoding) <= info.per_segment for part in parts)
    assert sum(units_of(part, info.encoding) for part in parts) == info.units
    if info.segments > 1:
        assert all(part for part in parts)


@given(st.one_of(gsm_texts, any_texts, mixed_texts))
def test_segment_count_follows_the_formula(text: str) -> None:
    info = analyze(text)
    single = 160 if info.encoding == GSM7 else 70
    part = 153 if info.encoding == GSM7 else 67
    if info.units <= single:
        assert (info.segments, info.per_segment) == (1, single)
        return
    assert info.per_segment == part
    # A two-unit character never straddles a border, so each part loses at most one unit.
    assert math.ceil(info.units / part) <= info.segments <= math.ceil(info.units / (part - 1))


@given(st.text(alphabet=GSM_BASIC, max_size=700))
def test_segment_count_is_exact_for_single_unit_gsm_text(text: str) -> None:
    info = analyze(text)
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert (info.units, info.segments) == (len(text), expected)


@given(st.text(alphabet=st.characters(max_codepoint=0xFFFF, codec="utf-8")))  # no surrogates
def test_segment_count_is_exact_for_bmp_only_ucs2_text(text: str) -> None:
    info = analyze(text)
    if info.encoding != UCS2:
        return
    expected = 1 if len(text) <= 70 else math.ceil(len(text) / 67)
    assert (info.units, info.segments) == (len(text), expected)


@given(any_texts)
def test_encoding_choice_matches_gsm_membership(text: str) -> None:
    info = analyze(text)
    assert info.encoding == (GSM7 if is_gsm7(text) else UCS2)
    assert info.length == len(text)
