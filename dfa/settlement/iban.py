"""Kazakhstan IBANs (ISO 13616): validation of what users and banks give us, and display formatting.

A Kazakhstan IBAN has 20 characters: "KZ", two check digits, a 3-digit bank code and a 13-character
alphanumeric account number. The check digits satisfy ISO 7064 MOD 97-10: moved to the end and with
letters replaced by numbers (A=10 ... Z=35), the whole reads as an integer that leaves 1 modulo 97.
That catches every single substituted or adjacent-swapped digit, but not every digit replaced by a
letter (a letter counts as two digits), so the account number is never trusted on the checksum alone.
"""

import string

from dfa.settlement.errors import IbanDefect, InvalidIban

KAZAKH_COUNTRY_CODE = "KZ"
KAZAKH_IBAN_LENGTH = 20
DISPLAY_GROUP_LENGTH = 4
CHECK_DIGITS_MIN = 2
CHECK_DIGITS_MAX = 98

_DIGITS = frozenset(string.digits)
_ALPHANUMERIC = frozenset(string.digits + string.ascii_uppercase)
_CHECK_DIGITS = slice(2, 4)
_BANK_CODE = slice(4, 7)


def validate_kazakh_iban(value: str) -> str:
    """Return `value` as a valid Kazakhstan IBAN in electronic form (uppercase, no spaces), or refuse it.

    Whitespace anywhere and lowercase letters are tolerated (people copy IBANs from paper, where they
    are printed in groups of four). Raises `InvalidIban` whose `reason` is:
    `WRONG_COUNTRY` (not "KZ"), `BAD_CHARACTERS` (anything but A-Z and 0-9, or letters where the check
    digits or the bank code must be digits), `WRONG_LENGTH` (not 20 characters), `CHECK_DIGITS` (outside
    02-98, or the MOD 97-10 test fails).
    """
    compact = "".join(value.split())
    if not compact.isascii():
        raise InvalidIban("An IBAN contains only the letters A-Z and the digits 0-9", reason=IbanDefect.BAD_CHARACTERS)
    iban = compact.upper()
    if not iban:
        raise InvalidIban("The IBAN is empty", reason=IbanDefect.WRONG_LENGTH)
    _check_country(iban)
    _check_characters(iban)
    _check_length(iban)
    _check_structure(iban)
    if not has_valid_check_digits(iban):
        raise InvalidIban(
            "The IBAN's check digits do not match: a character is mistyped", reason=IbanDefect.CHECK_DIGITS
        )
    return iban


def format_iban(iban: str) -> str:
    """Return the IBAN in paper form: groups of four characters separated by single spaces.

    The input may already contain spaces; it is not validated (validate first when that matters).
    """
    compact = "".join(iban.split()).upper()
    return " ".join(compact[i:i + DISPLAY_GROUP_LENGTH] for i in range(0, len(compact), DISPLAY_GROUP_LENGTH))


def has_valid_check_digits(iban: str) -> bool:
    """True when `iban` (electronic form, A-Z and 0-9 only) passes ISO 7064 MOD 97-10."""
    return _as_integer(iban[4:] + iban[:4]) % 97 == 1


def compute_check_digits(country_code: str, bban: str) -> str:
    """The two check digits that make `country_code` + digits + `bban` pass MOD 97-10 (ISO 13616)."""
    return f"{98 - _as_integer(bban + country_code + '00') % 97:02d}"


def _as_integer(text: str) -> int:
    # int(c, 36) maps 0-9 to themselves and A-Z to 10-35, as ISO 13616 prescribes.
    return int("".join(str(int(c, 36)) for c in text))


def _check_country(iban: str) -> None:
    if iban[:2] != KAZAKH_COUNTRY_CODE:
        raise InvalidIban(
            f"Only Kazakhstan IBANs (starting with {KAZAKH_COUNTRY_CODE}) are accepted, not {iban[:2]!r}",
            reason=IbanDefect.WRONG_COUNTRY,
        )


def _check_characters(iban: str) -> None:
    if not set(iban) <= _ALPHANUMERIC:
        raise InvalidIban("An IBAN contains only the letters A-Z and the digits 0-9", reason=IbanDefect.BAD_CHARACTERS)


def _check_length(iban: str) -> None:
    if len(iban) != KAZAKH_IBAN_LENGTH:
        raise InvalidIban(
            f"A Kazakhstan IBAN has {KAZAKH_IBAN_LENGTH} characters, this one has {len(iban)}",
            reason=IbanDefect.WRONG_LENGTH,
        )


def _check_structure(iban: str) -> None:
    if not set(iban[_CHECK_DIGITS]) <= _DIGITS:
        raise InvalidIban("The IBAN's check digits (characters 3-4) must be digits", reason=IbanDefect.BAD_CHARACTERS)
    if not CHECK_DIGITS_MIN <= int(iban[_CHECK_DIGITS]) <= CHECK_DIGITS_MAX:
        # 00, 01 and 99 can pass MOD 97 (they are 97 away from 97, 98 and 02) but ISO 13616 never issues them.
        raise InvalidIban("The IBAN's check digits must lie between 02 and 98", reason=IbanDefect.CHECK_DIGITS)
    if not set(iban[_BANK_CODE]) <= _DIGITS:
        raise InvalidIban("The IBAN's bank code (characters 5-7) must be digits", reason=IbanDefect.BAD_CHARACTERS)
