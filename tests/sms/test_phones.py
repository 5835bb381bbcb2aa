"""The fast path for Tanzanian mobile numbers agrees with the full parser."""

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.phones import InvalidPhone, _tanzanian_mobile, normalize_phone


def slow(raw: str) -> str | None:
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    try:
        number = phonenumbers.parse(raw, "TZ")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@settings(max_examples=3000, deadline=None)
@given(
    national=st.from_regex(r"[1-9][0-9]{8}", fullmatch=True),
    form=st.sampled_from(["+255{}", "255{}", "0{}", "{}", "00255{}", "+255 {}"]),
)
def test_fast_path_never_disagrees_with_the_parser(national, form):
    raw = form.format(national)
    fast = _tanzanian_mobile(raw)
    if fast is not None:
        assert fast == slow(raw), raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0712345678", "+255712345678"),
        ("+255 712 345 678", "+255712345678"),
        ("712345678", "+255712345678"),
        ("255754000111", "+255754000111"),
        ("0622000111", "+255622000111"),
        ("+254712345678", "+254712345678"),
    ],
)
def test_common_forms_normalise(raw, expected):
    assert normalize_phone(raw) == expected


@settings(max_examples=2000, deadline=None)
@given(
    digits=st.text(alphabet=st.characters(categories=["Nd"]), min_size=9, max_size=9),
    form=st.sampled_from(["+2557{}", "07{}", "+255{}", "0{}", "{}"]),
)
def test_any_scripts_digits_give_e164_or_an_error(digits, form):
    """Whatever digits a number is written in, what is kept is E.164 in ASCII digits: one
    number, one spelling (an opt-out or a contact matches it however it came)."""
    raw = form.format(digits)
    try:
        normalised = normalize_phone(raw)
    except InvalidPhone:
        return
    assert normalised.isascii() and normalised[1:].isdigit(), (raw, normalised)


@pytest.mark.parametrize(
    "raw", ["+2557\u0661\u0662345678", "+255\u0667\u0661\u0662345678", "\u0660712345678"]
)
def test_other_scripts_digits_are_read_as_the_digits_they_are(raw):
    assert normalize_phone(raw) == "+255712345678"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("+255222123456", "is not a mobile number"),
        ("+255123456789", "is not a valid phone number"),
        ("hello", "is not a phone number"),
    ],
)
def test_bad_numbers_keep_their_reasons(raw, reason):
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(raw)
    assert caught.value.reason == reason
