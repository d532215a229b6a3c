"""The cabinet's languages: Kazakh, Russian and English, with message catalogs and formatting per language.

Page text is written in English and translated through the catalogs `locale/<language>/LC_MESSAGES/messages.po`
(read as they are, with no compile step). The language of a request is chosen once, by `negotiate`, and
held in a context variable while its page renders, so templates and page code call `gettext` without
passing it around. Amounts of money, quantities, dates and instants are formatted by Babel with the
language's own conventions: `1 234 567,89 ₸` in Kazakh and Russian, `1,234,567.89 KZT` in English.
"""

import gettext as gettext_module
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import NumberFormatError, format_currency, format_decimal, parse_decimal

from dfa.platform.types import BIGINT_MAX

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGE_COOKIE = "dfa_lang"
LANGUAGE_COOKIE_MAX_AGE_S = 365 * 24 * 3600
NOTHING = "—"
_MONEY = "#,##0.00\xa0¤"  # always two decimals, the currency after the amount


@dataclass(frozen=True)
class Language:
    code: str  # the cookie's and the page's `lang`
    locale: str  # Babel's locale for formatting
    name: str  # the language's name in itself, as the switch shows it


LANGUAGES = {
    language.code: language
    for language in (
        Language("kk", "kk_KZ", "Қазақша"),
        Language("ru", "ru_KZ", "Русский"),
        Language("en", "en_GB", "English"),
    )
}
SOURCE_LANGUAGE = "en"  # the language the pages are written in: it needs no catalog


def catalog_path(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / "messages.po"


def read_catalog(code: str) -> Catalog:
    with catalog_path(code).open("rb") as po:
        return read_po(po, locale=LANGUAGES[code].locale)


def _load(code: str) -> gettext_module.NullTranslations:
    if code == SOURCE_LANGUAGE:
        return gettext_module.NullTranslations()
    catalog = read_catalog(code)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext_module.GNUTranslations(compiled)


_TRANSLATIONS = {code: _load(code) for code in LANGUAGES}
_current: ContextVar[Language] = ContextVar("cabinet_language", default=LANGUAGES[SOURCE_LANGUAGE])


def negotiate(*, chosen: str | None, accept_language: str | None, default: str) -> Language:
    """The language of a request: the one chosen on the page (the switch or its cookie), else the first of
    the browser's Accept-Language the cabinet speaks, else `default`."""
    if chosen in LANGUAGES:
        return LANGUAGES[chosen]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return LANGUAGES[primary]
    return LANGUAGES[default]


@contextmanager
def speaking(language: Language) -> Iterator[Language]:
    """Render and format in `language` inside the block."""
    token = _current.set(language)
    try:
        yield language
    finally:
        _current.reset(token)


def current() -> Language:
    return _current.get()


def gettext(message: str) -> str:
    return _TRANSLATIONS[_current.get().code].gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _TRANSLATIONS[_current.get().code].ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a message to be translated where it is shown, not here (a navigation label, a constant)."""
    return message


def label_of(value: str) -> str:
    """The message a status, kind or role is shown as: the value with its underscores as spaces."""
    return value.replace("_", " ")


def label(value: str) -> str:
    """A status, kind or role in the current language."""
    return gettext(label_of(value))


# Formatting -------------------------------------------------------------------------------------------


def kzt(tiyn: int | None) -> str:
    """An amount in tiyn as tenge in the current language, to the tiyn."""
    if tiyn is None:
        return NOTHING
    return format_currency(Decimal(tiyn).scaleb(-2), "KZT", format=_MONEY, locale=_current.get().locale)


def tenge(tiyn: int | None) -> str:
    """An amount in tiyn as a number of tenge with two decimals, without the currency (for table columns
    whose heading names it)."""
    if tiyn is None:
        return NOTHING
    return format_decimal(Decimal(tiyn).scaleb(-2), format="#,##0.00", locale=_current.get().locale)


def parse_tiyn(text: str) -> int | None:
    """An amount of tenge as a visitor typed it in their language ("1 234,56", "1,234.56", "1234.5"), in tiyn;
    None unless it is a positive amount to the tiyn at most, written in ASCII digits, that fits a bigint."""
    cleaned = "".join(text.split()).removesuffix("₸").removesuffix("KZT")
    if not cleaned or cleaned.strip("0123456789.,"):
        return None
    try:
        amount = parse_decimal(cleaned, locale=_current.get().locale, strict=True)
    except NumberFormatError:
        return None
    if not amount.is_finite() or amount <= 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        return None
    tiyn = int(amount.scaleb(2))
    return tiyn if tiyn <= BIGINT_MAX else None


def units(quantity: int | None) -> str:
    """A whole number (units, counts) with the language's grouping."""
    if quantity is None:
        return NOTHING
    return format_decimal(quantity, locale=_current.get().locale)


def day(value: date | str | None) -> str:
    """A date as people of the language write it, e.g. 21 нояб. 2026 г."""
    if value is None:
        return NOTHING
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return format_date(value, format="medium", locale=_current.get().locale)


def instant(moment: datetime | str | None, zone: str) -> str:
    """A moment in the operator's time zone, to the second, with the language's date and time order."""
    if moment is None:
        return NOTHING
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return format_datetime(moment, format="medium", tzinfo=ZoneInfo(zone), locale=_current.get().locale)
