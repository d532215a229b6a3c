"""Kazakhstan's 12-digit identification numbers: IIN (persons) and BIN (legal entities)."""

from dataclasses import dataclass
from datetime import date

_FIRST_WEIGHTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
_SECOND_WEIGHTS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)


def check_digit(first_eleven: str) -> int | None:
    """The 12th digit for these 11 digits, or None when no digit can make a valid number."""
    digits = [int(c) for c in first_eleven]
    for weights in (_FIRST_WEIGHTS, _SECOND_WEIGHTS):
        remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if remainder != 10:
            return remainder
    return None


def is_valid_identification_number(value: str) -> bool:
    """True for 12 ASCII digits whose last digit is the check digit of the first eleven."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return False
    return check_digit(value[:11]) == int(value[11])


@dataclass(frozen=True)
class EncodedPerson:
    birth_date: date
    sex: str  # "male" or "female"


def decode_iin(iin: str) -> EncodedPerson | None:
    """The birth date and sex an IIN encodes (digits 1-6 are YYMMDD, digit 7 the century and sex:
    1/2 the 1800s, 3/4 the 1900s, 5/6 the 2000s, odd male, even female), or None where it encodes
    none (digit 7 is 0 for some foreign citizens) or the date does not exist."""
    century_and_sex = iin[6]
    if century_and_sex not in "123456":
        return None
    code = int(century_and_sex)
    century = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000}[code]
    try:
        born = date(century + int(iin[0:2]), int(iin[2:4]), int(iin[4:6]))
    except ValueError:
        return None
    return EncodedPerson(birth_date=born, sex="male" if code % 2 else "female")


def looks_like_bin(identifier: str) -> bool:
    """A BIN's fifth digit names the kind of legal entity (4, 5 or 6); an IIN's is the tens digit
    of the day of birth (0 to 3), so the two never collide."""
    return identifier[4] in "456"
