"""SSML's `<say-as>`: a written expression read as words, in its language.

Every reading is the language's own normalizer's (english_normalizer for English; num2words,
through normalizers, for Spanish, French, Italian and Portuguese). Hindi, Japanese and Mandarin
front ends read digits themselves, so for them digits are handed on as digits. What a language
has no reading for, or what does not fit the interpretation, is refused rather than guessed.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable

from tts_service.language import english_normalizer as english
from tts_service.language import normalizers
from tts_service.language.languages import Language

DATE_FORMATS = ("mdy", "dmy", "ymd", "md", "dm", "ym", "my", "d", "m", "y")
TIME_FORMATS = ("hms12", "hms24")
_SPELLINGS = ("characters", "spell-out", "verbatim")  # Google's three names for one reading
# What each kind of language can read (docs/ssml.md has the table).
_ENGLISH = (*_SPELLINGS, "cardinal", "ordinal", "digits", "fraction", "date", "time",
            "telephone", "currency", "unit")
_NUM2WORDS = (*_SPELLINGS, "cardinal", "ordinal", "digits", "date", "telephone", "currency")
_OWN_DIGITS = (*_SPELLINGS, "cardinal", "digits", "telephone")
INTERPRETATIONS = _ENGLISH
_NUM2WORDS_DATE_FORMATS = ("dmy", "mdy", "ymd", "m", "y")
_TIME = re.compile(r"([0-9]{1,2})(?:[:.]([0-9]{2}))?(?:[:.]([0-9]{2}))?"
                   r"\s*(?:([AaPp])\.?\s?[Mm]\.?)?")
_TELEPHONE = re.compile(r"\+?[0-9][0-9 ()./-]*")
_INTEGER = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+")
_FRACTION = re.compile(r"(?:([0-9]+)\s+)?([0-9]+)/([0-9]+)")
_CODE_AMOUNT = re.compile(r"(?:([A-Z]{3})\s?(.+)|(.+?)\s?([A-Z]{3}))")
_SYMBOL_BY_CODE = {code: symbol for symbol, code in normalizers.CURRENCY_CODES.items()}
_LATIN = re.compile(r"[A-Za-z]")
_NO_LATIN_LETTERS = ("ja-JP", "zh-CN")  # their front ends pass Latin letters through unread
_LETTERS_OR_DIGITS = re.compile(r"[^\W\d_]+|[0-9]+")
# misaki reads a lone capital "A" before another word as the article ("ɐ"); "eh" is always the
# letter's name.
_LETTER_A = "eh"


class SayAsError(ValueError):
    """The content cannot be read as asked; the message says why (the caller names the element)."""


def interpretations(language: Language) -> tuple[str, ...]:
    """The say-as interpretations `language` can read."""
    if language.english:
        return _ENGLISH
    return _NUM2WORDS if normalizers.reads_numbers(language) else _OWN_DIGITS


def check(interpret_as: str, language: Language, date_or_time_format: str = "") -> None:
    """Raises SayAsError unless `language` has this reading (and it takes a format if given)."""
    if interpret_as not in INTERPRETATIONS:
        raise SayAsError(f"interpret-as {interpret_as!r} is not supported: use one of "
                         + ", ".join(INTERPRETATIONS))
    if interpret_as not in interpretations(language):
        raise SayAsError(f"{language.name} ({language.code}) has no {interpret_as!r} reading: "
                         f"it reads " + ", ".join(interpretations(language)))
    if date_or_time_format and interpret_as not in ("date", "time"):
        raise SayAsError(f"format applies to date and time only, not to {interpret_as!r}")


def read(interpret_as: str, content: str, language: Language, date_or_time_format: str = ""
         ) -> str:
    """The words `content` is read as; raises SayAsError."""
    check(interpret_as, language, date_or_time_format)
    text = " ".join(content.split())
    if not text:
        raise SayAsError("there is nothing to read: the element is empty")
    reader = _READERS.get(interpret_as, _characters)
    return reader(text, language, date_or_time_format)


def _characters(text: str, language: Language, _: str) -> str:
    if language.code in _NO_LATIN_LETTERS and _LATIN.search(text):
        raise SayAsError(f"the {language.name} front end cannot spell Latin letters")
    words = []
    for part in _LETTERS_OR_DIGITS.findall(text):
        if part.isdigit():
            words.append(_digits(part, language))
        elif language.english:
            words.extend(_LETTER_A if letter == "A" else letter
                         for letter in english.spell(part.upper()).split())
        else:
            words.append(" ".join(part))
    if not words:
        raise SayAsError(f"{text!r} has no letters or digits to spell")
    return " ".join(words)


def _digits(digits: str, language: Language) -> str:
    if language.english:
        return english.digit_words(digits)
    if normalizers.reads_numbers(language):
        return normalizers.digit_words(digits, language)
    return " ".join(digits)


def _cardinal(text: str, language: Language, _: str) -> str:
    if language.english:
        if re.fullmatch(english.SIGNED_NUMBER, text):
            return english.number_words(text)
        raise SayAsError(f"{text!r} is not a number: write it as 1,234 or -5.5")
    if normalizers.reads_numbers(language):
        if re.fullmatch(normalizers.NUMBER, text):
            return normalizers.number_words(text, language)
        raise SayAsError(f"{text!r} is not a number: write it as 1.234 or 5,5")
    if _INTEGER.fullmatch(text):
        return text.replace(",", "")
    raise SayAsError(f"{text!r} is not a whole number: write it as 1234")


def _ordinal(text: str, language: Language, _: str) -> str:
    match = re.fullmatch(r"([0-9]+)(st|nd|rd|th)?" if language.english else r"([0-9]+)", text)
    if match is None:
        raise SayAsError(f"{text!r} is not an ordinal: write digits, as 21")
    if language.english:
        return english.ordinal_words(match.group(1))
    return normalizers.ordinal_words(int(match.group(1)), language)


def _digit_by_digit(text: str, language: Language, _: str) -> str:
    if not re.fullmatch(r"[0-9 ]+", text):
        raise SayAsError(f"{text!r} is not digits: write only 0 to 9")
    return _digits(text, language)


def _fraction(text: str, _: Language, __: str) -> str:
    match = _FRACTION.fullmatch(text)
    if match is None:
        raise SayAsError(f"{text!r} is not a fraction: write it as 3/4 or 1 1/2")
    whole, numerator, denominator = match.groups()
    if int(denominator) < 2:
        raise SayAsError(f"{text!r} has no denominator of 2 or more")
    words = english.fraction_words(int(numerator), int(denominator))
    return f"{english.number_words(whole)} and {words}" if whole else words


def _date(text: str, language: Language, written: str) -> str:
    written = written or "ymd"
    if written not in DATE_FORMATS:
        raise SayAsError(f"date format {written!r} is not supported: use one of "
                         + ", ".join(DATE_FORMATS))
    if not language.english and written not in _NUM2WORDS_DATE_FORMATS:
        raise SayAsError(f"{language.name} reads the date formats "
                         + ", ".join(_NUM2WORDS_DATE_FORMATS))
    fields = re.split(r"[-/. ]+", text)
    if not all(field.isdigit() and field.isascii() for field in fields) \
            or len(fields) != len(written):
        raise SayAsError(f"{text!r} is not a date written {written} (digits, separated by - / . "
                         "or a space)")
    parts = dict(zip(written, fields, strict=True))
    year, month, day = parts.get("y"), parts.get("m"), parts.get("d")
    if year is not None and not 1 <= int(year) <= 9999:
        raise SayAsError(f"{text!r} has no year {year}: write 1 to 9999")
    if month is not None and not 1 <= int(month) <= 12:
        raise SayAsError(f"{text!r} has no month {month}")
    if day is not None:
        # A year no one gave may be a leap year: February 29 stays readable.
        days = calendar.monthrange(int(year) if year else 2000, int(month))[1] if month else 31
        if not 1 <= int(day) <= days:
            raise SayAsError(f"{text!r} has no day {day}" + (" in that month" if month else ""))
    if not language.english:
        if year and month and day:
            return normalizers.date_words(int(day), int(month), int(year), language)
        if month:
            return normalizers.month_name(int(month), language)
        return normalizers.number_words(str(int(year or 0)), language)
    if month and day:
        return english.date_words(int(month), int(day), year) or ""
    if month:
        name = english.MONTHS[int(month) - 1]
        return f"{name} {english.year_words(year)}" if year else name
    if day:
        return english.ordinal_words(day)
    return english.year_words(year or "")


def _time(text: str, _: Language, written: str) -> str:
    if written and written not in TIME_FORMATS:
        raise SayAsError(f"time format {written!r} is not supported: use one of "
                         + ", ".join(TIME_FORMATS))
    match = _TIME.fullmatch(text)
    if match is None:
        raise SayAsError(f"{text!r} is not a time: write it as 14:30, 2:30 pm or 1:14:32")
    hour, minute, second, meridiem = match.groups()
    if written == "hms24" and (meridiem or int(hour) > 23):
        raise SayAsError(f"{text!r} is not a 24-hour time (hms24): 0:00 to 23:59, no am or pm")
    if written == "hms12" and not 1 <= int(hour) <= 12:
        raise SayAsError(f"{text!r} is not a 12-hour time (hms12): 1:00 to 12:59")
    if meridiem and not minute:
        clock = f"{hour} {meridiem.lower()}m"
    else:
        clock = f"{hour}:{minute or '00'}" + (f":{second}" if second else "")
        clock += f" {meridiem.lower()}m" if meridiem else ""
    words = english.clock_words(clock)
    if words is None:
        raise SayAsError(f"{text!r} is not a time of day")
    return words


def _telephone(text: str, language: Language, _: str) -> str:
    if not _TELEPHONE.fullmatch(text):
        raise SayAsError(f"{text!r} is not a telephone number: digits, with + ( ) - . / or "
                         "spaces")
    if language.english:
        return english.telephone_words(text)
    if normalizers.reads_numbers(language):
        return normalizers.telephone_words(text, language)
    if text.startswith("+"):
        raise SayAsError(f"the {language.name} front end cannot read '+': write the number "
                         "without it")
    return ", ".join(" ".join(group) for group in re.findall(r"[0-9]+", text))


def _currency(written: str, language: Language, _: str) -> str:
    text = written
    coded = _CODE_AMOUNT.fullmatch(text)
    if coded is not None:
        code = coded.group(1) or coded.group(4)
        if code not in _SYMBOL_BY_CODE:
            raise SayAsError(f"currency {code} is not supported: use one of "
                             + ", ".join(sorted(_SYMBOL_BY_CODE)) + " or their symbols")
        amount = (coded.group(2) or coded.group(3)).strip()
        sign, amount = ("-", amount[1:]) if amount[:1] in "-\u2212" else ("", amount)
        text = f"{sign}{_SYMBOL_BY_CODE[code]}{amount}"
    if language.english:
        words = english.amount_words(text)
    else:
        words = normalizers.amount_words(text, language)
    if words is None:
        raise SayAsError(f"{written!r} is not an amount {language.name} reads: write it as "
                         + ("$42.01 or 42.01 USD" if language.english else "42,01 € or 42,01 EUR"))
    return words


def _unit(text: str, _: Language, __: str) -> str:
    words = english.unit_words(text)
    if words is None:
        raise SayAsError(f"{text!r} is not a measure with a known unit: write it as 10 km or 5 kg")
    return words


_READERS: dict[str, Callable[[str, Language, str], str]] = {
    "cardinal": _cardinal,
    "ordinal": _ordinal,
    "digits": _digit_by_digit,
    "fraction": _fraction,
    "date": _date,
    "time": _time,
    "telephone": _telephone,
    "currency": _currency,
    "unit": _unit,
}
