"""Kazakhstan IBANs: ISO 13616 structure and ISO 7064 MOD 97-10 check digits."""

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dfa.platform.errors import Category, DomainError
from dfa.settlement.errors import IbanDefect, InvalidIban
from dfa.settlement.iban import compute_check_digits, format_iban, validate_kazakh_iban

PUBLISHED_EXAMPLE = "KZ86125KZT5004100100"  # the SWIFT IBAN registry's example for Kazakhstan
ALPHANUMERIC = string.digits + string.ascii_uppercase


def mod97(text: str) -> int:
    """The remainder by 97 of `text` read as ISO 13616 does (A=10 ... Z=35), digit by digit.

    Written independently of the module (piecewise, as ISO 7064 computes it by hand), so that a
    mistake there is not repeated here.
    """
    remainder = 0
    for digit in "".join(str(ALPHANUMERIC.index(c)) for c in text):
        remainder = (remainder * 10 + int(digit)) % 97
    return remainder


def kazakh_iban(bank_code: str, account: str) -> str:
    """A Kazakhstan IBAN with correct check digits for the given 3-digit bank code and 13-character account."""
    bban = bank_code + account
    return f"KZ{98 - mod97(bban + 'KZ00'):02d}{bban}"


def refusal(value: str) -> InvalidIban:
    with pytest.raises(InvalidIban) as caught:
        validate_kazakh_iban(value)
    return caught.value


bank_codes = st.text(alphabet=string.digits, min_size=3, max_size=3)
accounts = st.text(alphabet=ALPHANUMERIC, min_size=13, max_size=13)
ibans = st.builds(kazakh_iban, bank_codes, accounts)


def test_the_published_example_is_valid_and_the_helper_reproduces_it():
    assert kazakh_iban("125", "KZT5004100100") == PUBLISHED_EXAMPLE
    assert validate_kazakh_iban(PUBLISHED_EXAMPLE) == PUBLISHED_EXAMPLE


@pytest.mark.parametrize(("bank_code", "account"), [
    ("722", "KZT0000012345"),  # a Kaspi-like KZT account
    ("601", "KZT1234567890"),
    ("998", "A1B2C3D4E5F60"),
    ("000", "0000000000000"),
    ("999", "ZZZZZZZZZZZZZ"),
    ("856", "USD0000000001"),
])
def test_kazakh_ibans_with_correct_check_digits_are_valid(bank_code, account):
    iban = kazakh_iban(bank_code, account)
    assert validate_kazakh_iban(iban) == iban


def test_compute_check_digits_agrees_with_published_examples():
    assert compute_check_digits("KZ", "125KZT5004100100") == "86"
    assert compute_check_digits("DE", "370400440532013000") == "89"  # DE89370400440532013000
    assert compute_check_digits("GB", "WEST12345698765432") == "82"  # GB82WEST12345698765432


@pytest.mark.parametrize("written", [
    "KZ86 125K ZT50 0410 0100",
    "kz86125kzt5004100100",
    "kz86 125k zt50 0410 0100",
    "  KZ86125KZT5004100100\n",
    "KZ86\t125KZT5004100100",
    "KZ86\u00a0125K\u00a0ZT50\u00a00410\u00a00100",  # non-breaking spaces, as pasted from a web page
])
def test_spaces_and_lowercase_are_normalised_to_the_electronic_form(written):
    assert validate_kazakh_iban(written) == PUBLISHED_EXAMPLE


@pytest.mark.parametrize(("value", "reason"), [
    ("DE89370400440532013000", IbanDefect.WRONG_COUNTRY),  # valid, but German
    ("GB82WEST12345698765432", IbanDefect.WRONG_COUNTRY),  # valid, but British
    ("RU0204452560040702810412345678901", IbanDefect.WRONG_COUNTRY),
    ("86125KZT5004100100", IbanDefect.WRONG_COUNTRY),  # country code left out
    ("", IbanDefect.WRONG_LENGTH),
    ("   ", IbanDefect.WRONG_LENGTH),
    ("KZ86125KZT500410010", IbanDefect.WRONG_LENGTH),  # 19 characters
    ("KZ86125KZT50041001000", IbanDefect.WRONG_LENGTH),  # 21 characters
    ("KZ", IbanDefect.WRONG_LENGTH),
    ("KZ86125KZT50041001-0", IbanDefect.BAD_CHARACTERS),
    ("KZ86125KZT5004100.00", IbanDefect.BAD_CHARACTERS),
    ("KZ86125KZ\u04225004100100", IbanDefect.BAD_CHARACTERS),  # Cyrillic Т that looks like T
    ("\u041aZ86125KZT5004100100", IbanDefect.BAD_CHARACTERS),  # Cyrillic К that looks like K
    ("KZ\uff18\uff16125KZT5004100100", IbanDefect.BAD_CHARACTERS),  # full-width digits
    ("KZ8A125KZT5004100100", IbanDefect.BAD_CHARACTERS),  # a letter among the check digits
    ("KZ87125KZT5004100100", IbanDefect.CHECK_DIGITS),
    ("KZ68125KZT5004100100", IbanDefect.CHECK_DIGITS),  # check digits swapped
    ("KZ86125KZT5004100101", IbanDefect.CHECK_DIGITS),
])
def test_each_refusal_names_its_reason(value, reason):
    error = refusal(value)
    assert error.reason == reason
    assert error.context == {"reason": reason}
    assert error.detail


def test_a_letter_in_the_bank_code_is_refused_even_with_matching_check_digits():
    bban = "12AKZT5004100100"
    iban = f"KZ{compute_check_digits('KZ', bban)}{bban}"
    assert mod97(iban[4:] + iban[:4]) == 1
    assert refusal(iban).reason == IbanDefect.BAD_CHARACTERS


def test_check_digits_outside_02_to_98_are_refused_even_when_they_pass_mod_97():
    # 98 - 97 = 01 passes MOD 97 just as 98 does; ISO 13616 never issues 00, 01 or 99.
    candidates = (kazakh_iban("125", f"KZT{n:010d}") for n in range(10_000))
    iban = next(candidate for candidate in candidates if candidate[2:4] == "98")
    twin = iban[:2] + "01" + iban[4:]
    assert mod97(twin[4:] + twin[:4]) == 1
    error = refusal(twin)
    assert error.reason == IbanDefect.CHECK_DIGITS


def test_the_error_is_a_named_domain_refusal():
    error = refusal("DE89370400440532013000")
    assert isinstance(error, DomainError)
    assert error.type == "iban-invalid"
    assert error.category == Category.INVALID
    assert "KZ" in error.detail


def test_every_single_changed_digit_of_the_published_example_is_caught():
    for position, character in enumerate(PUBLISHED_EXAMPLE):
        if not character.isdigit():
            continue
        for replacement in string.digits.replace(character, ""):
            mistyped = PUBLISHED_EXAMPLE[:position] + replacement + PUBLISHED_EXAMPLE[position + 1:]
            assert refusal(mistyped).reason == IbanDefect.CHECK_DIGITS, mistyped


def test_every_swap_of_adjacent_different_digits_is_caught():
    for iban in (PUBLISHED_EXAMPLE, kazakh_iban("722", "KZT0000012345"), kazakh_iban("601", "9876543210123")):
        for position in range(2, len(iban) - 1):
            first, second = iban[position], iban[position + 1]
            if first.isdigit() and second.isdigit() and first != second:
                swapped = iban[:position] + second + first + iban[position + 2:]
                assert refusal(swapped).reason == IbanDefect.CHECK_DIGITS, swapped


def test_mod_97_cannot_catch_every_slip_between_a_digit_and_a_letter():
    # A letter counts as two digits, so a digit-to-letter slip can keep the remainder: the checksum
    # proves an account number was not mistyped in most ways, never that it is the right account.
    iban = kazakh_iban("403", "8AAXLNS2MN057")
    slip = iban[:13] + "1" + iban[14:]
    assert slip != iban
    assert validate_kazakh_iban(slip) == slip


def test_format_iban_groups_by_four():
    assert format_iban(PUBLISHED_EXAMPLE) == "KZ86 125K ZT50 0410 0100"
    assert format_iban("kz86 125kzt5004100100") == "KZ86 125K ZT50 0410 0100"
    assert format_iban("DE89370400440532013000") == "DE89 3704 0044 0532 0130 00"


@given(ibans)
def test_every_iban_built_with_correct_check_digits_validates(iban):
    assert validate_kazakh_iban(iban) == iban
    assert validate_kazakh_iban(format_iban(iban).lower()) == iban


@settings(max_examples=500)
@given(ibans, st.integers(min_value=0, max_value=19), st.sampled_from(ALPHANUMERIC))
def test_every_single_character_substitution_is_refused(iban, position, replacement):
    original = iban[position]
    assume(replacement != original)
    # In the account number a digit may become a letter and keep the remainder (see the test above);
    # everywhere else, and for any like-for-like slip, the IBAN must be refused.
    if position >= 7:
        assume(replacement.isdigit() == original.isdigit())
    mistyped = iban[:position] + replacement + iban[position + 1:]
    with pytest.raises(InvalidIban):
        validate_kazakh_iban(mistyped)


@given(ibans, st.integers(min_value=2, max_value=18))
def test_every_swap_of_adjacent_different_digits_is_refused(iban, position):
    first, second = iban[position], iban[position + 1]
    assume(first.isdigit() and second.isdigit() and first != second)
    with pytest.raises(InvalidIban):
        validate_kazakh_iban(iban[:position] + second + first + iban[position + 2:])
