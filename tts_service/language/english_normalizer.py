"""English text normalization: digits, symbols and abbreviations to the words a TTS engine knows."""

from __future__ import annotations

import re
from collections.abc import Callable

import inflect
from num2words import num2words

from tts_service.language.sentence_rules import ENGLISH_ABBREVIATIONS

# Longer digit runs are read digit by digit: nobody says "one quintillion ..." aloud, and the
# cap keeps a pathological 10,000-digit input linear instead of seconds of bignum formatting.
_MAX_CARDINAL_DIGITS = 15

_INFLECT = inflect.engine()

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTH_BY_PREFIX = {name[:3]: name for name in MONTHS}
_MONTH_NAME = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November"
    r"|December|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?)"
)

# [0-9] rather than \d everywhere: \d also matches Arabic-Indic and other digits, which would
# turn right-to-left text into English number words.
_NUM = r"[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?"
SIGNED_NUMBER = r"[-\u2212]?" + _NUM
# A number must not be glued to a preceding word character or decimal point.
_NUM_START = r"(?<![\w.])"


# --- Number words ------------------------------------------------------------------------------


def _clean(words: str) -> str:
    """Drop num2words' hyphens, commas and British "and" so the engine sees plain lexicon words."""
    words = words.replace("-", " ").replace(",", " ")
    return " ".join(w for w in words.split() if w != "and")


def digit_words(digits: str) -> str:
    """Reads the digits of `digits` one by one ("one oh five" is "one zero five")."""
    return " ".join(_DIGIT_WORDS[int(d)] for d in digits if d.isdigit())


def _cardinal(digits: str) -> str:
    """Reads an unsigned integer; leading zeros and very long runs are read digit by digit."""
    if len(digits) > _MAX_CARDINAL_DIGITS or (len(digits) > 1 and digits[0] == "0"):
        return digit_words(digits)
    return _clean(num2words(int(digits)))


def ordinal_words(digits: str) -> str:
    """Reads an unsigned integer as an ordinal: "twenty first"."""
    if len(digits) > _MAX_CARDINAL_DIGITS:
        return digit_words(digits)
    return _clean(num2words(int(digits), to="ordinal"))


def year_words(digits: str) -> str:
    """Reads a year as years are said: "nineteen eighty four", "twenty twenty"."""
    if len(digits) == 2:
        return "oh " + _DIGIT_WORDS[int(digits[1])] if digits[0] == "0" else _cardinal(digits)
    return _clean(num2words(int(digits), to="year"))


def number_words(text: str) -> str:
    """Reads a signed number that may have thousands separators and a decimal part."""
    sign = ""
    if text[:1] in "-\u2212":
        sign, text = "minus ", text[1:]
    whole, _, fraction = text.replace(",", "").partition(".")
    words = _cardinal(whole) if whole else ""
    if fraction:
        words = f"{words} point {digit_words(fraction)}".strip()
    return sign + words


def _is_one(number: str) -> bool:
    return number.replace(",", "") in ("1", "1.0")


def _plural_of(noun: str) -> str:
    # inflect would say "hertzes" and "yens".
    if noun.endswith(("hertz", "yen")):
        return noun
    return _INFLECT.plural_noun(noun)


def _plural(noun: str, number: str) -> str:
    return noun if _is_one(number) else _plural_of(noun)


def _keep_period(match: re.Match[str], words: str, *, capital_ends: bool = True) -> str:
    """Re-adds an abbreviation's period only where it doubles as the sentence's full stop.

    Periods inside a sentence would make the engine split it there. A following capital ends the
    sentence unless the abbreviation is often part of a name ("the U.S. Army").
    """
    if not match.group(0).endswith("."):
        return words
    rest = match.string[match.end() : match.end() + 3]
    if not rest.strip() or (capital_ends and re.match(r"\s+[A-Z\"(\u201c]", rest)):
        return words + "."
    return words


# --- Passes, in the order normalize() applies them ------------------------------------------


_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL_RE = re.compile(
    r"(?<![\w@/.-])(?:https?://|www\.|(?=[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"\.(?:com|org|net|io|dev|ai|edu|gov|app|co|uk|us|ca|de|fr|info|biz)\b(?![.@]\w)))"
    r"[^\s<>\"']+",
)
_URL_SYMBOLS = {
    ".": "dot", "/": "slash", "-": "dash", "_": "underscore", "@": "at", ":": "colon",
    "?": "question mark", "=": "equals", "&": "and", "#": "hash", "+": "plus", "%": "percent",
    "~": "tilde",
}  # fmt: skip
_URL_TOKEN_RE = re.compile(r"[A-Za-z]+|[0-9]+|.", re.DOTALL)


def _spell_address(address: str) -> str:
    words = []
    for token in _URL_TOKEN_RE.findall(address):
        if token[0].isdigit():
            words.append(digit_words(token))
        elif token.isalpha() and token.isascii():
            words.append(token)
        elif token in _URL_SYMBOLS:
            words.append(_URL_SYMBOLS[token])
    return " ".join(words)


def _split_trailing_punctuation(text: str) -> tuple[str, str]:
    """Sentence punctuation right after an address belongs to the sentence, not the address."""
    stripped = text.rstrip(".,;:!?)]}'\"")
    return stripped, text[len(stripped) :]


def _expand_url(match: re.Match[str]) -> str:
    url, trailing = _split_trailing_punctuation(match.group(0))
    # The scheme carries no information a listener needs.
    url = re.sub(r"^https?://", "", url).rstrip("/")
    if url.startswith("www."):
        return "w w w dot " + _spell_address(url[4:]) + trailing
    return _spell_address(url) + trailing


def _expand_email(match: re.Match[str]) -> str:
    address, trailing = _split_trailing_punctuation(match.group(0))
    return _spell_address(address) + trailing


def _addresses(text: str) -> str:
    text = _EMAIL_RE.sub(_expand_email, text)
    return _URL_RE.sub(_expand_url, text)


_PHONE_RE = re.compile(
    r"(?<![\w+.-])(?:"
    r"(?:\+?1[ .-])?(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}"
    r"|\+[0-9]{1,3}(?:[ .-]\(?[0-9]{1,4}\)?){1,4}[ .-][0-9]{2,8}"
    r"|[0-9]{3}-[0-9]{4}"
    r")(?![\w-]|\.[0-9])"
)


def telephone_words(phone: str) -> str:
    """Reads a telephone number digit by digit, group by group as it is written."""
    plus = "plus " if phone.startswith("+") else ""
    # Commas between digit groups give the pauses a person makes when reading a number.
    return plus + ", ".join(digit_words(group) for group in re.findall(r"[0-9]+", phone))


def _phone_numbers(text: str) -> str:
    return _PHONE_RE.sub(lambda m: telephone_words(m.group(0)), text)


_ISO_DATE_RE = re.compile(r"(?<![\w.-])([0-9]{4})-([0-9]{2})-([0-9]{2})(?![\w-])")
_SLASH_DATE_RE = re.compile(
    r"(?<![\w./])([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}|[0-9]{2})(?![\w/]|\.[0-9])"
)
_MONTH_DAY_RE = re.compile(
    rf"\b({_MONTH_NAME}) ([0-9]{{1,2}})(?:st|nd|rd|th)?(?:,? ([0-9]{{4}}))?(?![\w:.,]?[0-9])"
)
_DAY_MONTH_RE = re.compile(
    rf"(?<![\w.,])([0-9]{{1,2}})(?:st|nd|rd|th)? (?:of )?({_MONTH_NAME})(?:,? ([0-9]{{4}}))?"
    r"(?![\w.]?[0-9])"
)
_MONTH_YEAR_RE = re.compile(rf"\b({_MONTH_NAME}),? ([0-9]{{4}})(?![\w.,]?[0-9])")


def _month(name: str) -> str:
    """Expands "Jan." and "Sept" to full names; the regex only admits real month prefixes."""
    return _MONTH_BY_PREFIX[name[:3]]


def date_words(month: int, day: int, year: str | None) -> str | None:
    """Reads a date, "March fifteenth, twenty twenty four" (None if no month has that day)."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    words = f"{MONTHS[month - 1]} {ordinal_words(str(day))}"
    return f"{words}, {year_words(year)}" if year else words


def _dates(text: str) -> str:
    def iso(match: re.Match[str]) -> str:
        year, month, day = match.groups()
        return date_words(int(month), int(day), year) or match.group(0)

    def slashed(match: re.Match[str]) -> str:
        first, second, year = (int(match.group(1)), int(match.group(2)), match.group(3))
        # US order unless the first field cannot be a month.
        month, day = (second, first) if first > 12 >= second else (first, second)
        return date_words(month, day, year) or match.group(0)

    def month_day(match: re.Match[str]) -> str:
        month, day, year = match.groups()
        if not 1 <= int(day) <= 31:
            return match.group(0)
        words = f"{_month(month)} {ordinal_words(day)}"
        return f"{words}, {year_words(year)}" if year else words

    def day_month(match: re.Match[str]) -> str:
        day, month, year = match.groups()
        if not 1 <= int(day) <= 31:
            return match.group(0)
        words = f"the {ordinal_words(day)} of {_month(month)}"
        return f"{words} {year_words(year)}" if year else words

    def month_year(match: re.Match[str]) -> str:
        return f"{_month(match.group(1))} {year_words(match.group(2))}"

    text = _ISO_DATE_RE.sub(iso, text)
    text = _SLASH_DATE_RE.sub(slashed, text)
    text = _MONTH_DAY_RE.sub(month_day, text)
    text = _DAY_MONTH_RE.sub(day_month, text)
    return _MONTH_YEAR_RE.sub(month_year, text)


_CLOCK_RE = re.compile(
    r"(?<![\w.:])([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?"
    r"(?:\s?([AaPp])\.?[Mm]\b\.?)?(?![\w:]|\.[0-9])"
)
_RATIO_RE = re.compile(r"(?<![\w.:])([0-9]{1,3}):([0-9])(?![\w:]|\.[0-9])")
_HOUR_MERIDIEM_RE = re.compile(r"(?<![\w.:,])([0-9]{1,2})\s?([AaPp])\.?[Mm]\b\.?")


def _minutes(minute: int) -> str:
    return f"oh {_DIGIT_WORDS[minute]}" if minute < 10 else _cardinal(str(minute))


def _clock(match: re.Match[str]) -> str | None:
    hour, minute = int(match.group(1)), int(match.group(2))
    second, meridiem = match.group(3), match.group(4)
    if hour > 23 or minute > 59 or (second and int(second) > 59):
        return None
    if meridiem:
        words = _cardinal(str(hour))
        words += f" {_minutes(minute)}" if minute else ""
        return _keep_period(match, f"{words} {meridiem.lower()} m")
    if minute:
        words = f"{_cardinal(str(hour))} {_minutes(minute)}"
    elif hour <= 12:
        words = f"{_cardinal(str(hour))} o'clock"
    else:
        words = f"{_cardinal(str(hour))} hundred"
    if second and int(second):
        words += f" and {_cardinal(str(int(second)))} {_plural('second', second)}"
    return words


def _hour_only(match: re.Match[str]) -> str | None:
    hour = int(match.group(1))
    if not 1 <= hour <= 12:
        return None
    return _keep_period(match, f"{_cardinal(str(hour))} {match.group(2).lower()} m")


def clock_words(text: str) -> str | None:
    """Reads `text` if it is exactly one time of day ("14:30", "2:30 pm", "7 a.m."), else None."""
    if match := _CLOCK_RE.fullmatch(text):
        return _clock(match)
    if match := _HOUR_MERIDIEM_RE.fullmatch(text):
        return _hour_only(match)
    return None


def _times(text: str) -> str:
    text = _CLOCK_RE.sub(lambda m: _clock(m) or m.group(0), text)
    text = _HOUR_MERIDIEM_RE.sub(lambda m: _hour_only(m) or m.group(0), text)
    # A single digit after the colon cannot be minutes: "2:1 odds", "16:9 screens".
    return _RATIO_RE.sub(lambda m: f"{_cardinal(m.group(1))} to {_cardinal(m.group(2))}", text)


_CURRENCIES = {
    "$": ("dollar", "cent"),
    "€": ("euro", "cent"),
    "£": ("pound", "penny"),
    "¥": ("yen", ""),
}
_SCALES = {"thousand": "thousand", "k": "thousand", "K": "thousand", "million": "million",
           "m": "million", "M": "million", "billion": "billion", "bn": "billion",
           "b": "billion", "B": "billion", "trillion": "trillion", "tn": "trillion"}  # fmt: skip
_MONEY_RE = re.compile(
    r"(?<![\w.])([-\u2212])?([$€£¥])\s?([0-9]+(?:,[0-9]{3})*)(?:\.([0-9]+))?"
    r"(?:\s?(thousand|million|billion|trillion|bn|tn|[kKmMbB])\b)?(?![0-9])"
)
_CENTS_RE = re.compile(r"(?<![\w.])([0-9]{1,2})\s?¢")


def _minor_unit(name: str, count: int) -> str:
    if name == "penny":
        return "penny" if count == 1 else "pence"
    return name if count == 1 else name + "s"


def _amount(match: re.Match[str]) -> str:
    minus, symbol, whole, fraction, scale = match.groups()
    major, minor = _CURRENCIES[symbol]
    sign = "minus " if minus else ""
    if scale:
        amount = number_words(whole + (f".{fraction}" if fraction else ""))
        return f"{sign}{amount} {_SCALES[scale]} {_plural_of(major)}"
    if fraction and (len(fraction) > 2 or not minor):
        return f"{sign}{number_words(whole + '.' + fraction)} {_plural_of(major)}"
    parts = []
    if whole.strip("0,") or not fraction:
        parts.append(f"{number_words(whole)} {_plural(major, whole)}")
    # "$2.5" means two dollars fifty, not five cents.
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    if cents:
        parts.append(f"{_cardinal(str(cents))} {_minor_unit(minor, cents)}")
    return sign + " ".join(parts)


def amount_words(text: str) -> str | None:
    """Reads `text` if it is exactly one amount of money ("$42.01", "€5"), else None."""
    match = _MONEY_RE.fullmatch(text)
    return _amount(match) if match else None


def _money(text: str) -> str:
    def cents(match: re.Match[str]) -> str:
        count = match.group(1)
        return f"{_cardinal(count)} {_plural('cent', count)}"

    text = _MONEY_RE.sub(_amount, text)
    return _CENTS_RE.sub(cents, text)


_PERCENT_RE = re.compile(_NUM_START + rf"({SIGNED_NUMBER})(?:[-\u2013]({_NUM}))?\s?%")


def _percentages(text: str) -> str:
    def expand(match: re.Match[str]) -> str:
        number, upper = match.groups()
        amount = number_words(number)
        if upper:
            amount += f" to {number_words(upper)}"
        return f"{amount} percent"

    return _PERCENT_RE.sub(expand, text)


# Case matters: "5 m" is metres but "5 M" is not, "5 g" is grams but "5G" is a network.
_UNITS = {
    "km/h": "kilometer per hour", "kph": "kilometer per hour", "mph": "mile per hour",
    "km": "kilometer", "m": "meter", "cm": "centimeter", "mm": "millimeter",
    "kg": "kilogram", "g": "gram", "mg": "milligram", "lb": "pound", "lbs": "pound",
    "oz": "ounce", "ft": "foot", "mi": "mile", "ml": "milliliter", "mL": "milliliter",
    "°C": "degree Celsius", "°F": "degree Fahrenheit", "°": "degree",
    "TB": "terabyte", "GB": "gigabyte", "MB": "megabyte", "KB": "kilobyte", "kB": "kilobyte",
    "GHz": "gigahertz", "MHz": "megahertz", "kHz": "kilohertz", "Hz": "hertz",
    "ms": "millisecond", "sec": "second", "min": "minute", "hr": "hour", "hrs": "hour",
    "kW": "kilowatt", "kWh": "kilowatt hour",
}  # fmt: skip
_UNIT_RE = re.compile(
    _NUM_START
    + rf"({SIGNED_NUMBER})(?:[-\u2013]({_NUM}))?\s?("
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")(?![\w/])"
)


def _measure(match: re.Match[str]) -> str:
    number, upper, unit = match.groups()
    # Pluralize the head noun: "miles per hour", "degrees Celsius".
    head, _, rest = _UNITS[unit].partition(" ")
    head = _plural(head, upper or number)
    amount = f"{number_words(number)} to {number_words(upper)}" if upper else number_words(number)
    return f"{amount} {head} {rest}".rstrip()


def unit_words(text: str) -> str | None:
    """Reads `text` if it is exactly one measure ("10 km", "5kg"), else None."""
    match = _UNIT_RE.fullmatch(text)
    return _measure(match) if match else None


def _units(text: str) -> str:
    return _UNIT_RE.sub(_measure, text)


# The abbreviations with one reading, and its words (sentence_rules.py lists them all).
_ABBREVIATIONS = {word: words for word, words in ENGLISH_ABBREVIATIONS.items() if words}
_TITLE_RE = re.compile(r"(?<![\w.])(Mr|Mrs|Ms|Prof)\.?(?= [A-Z])")
# Prefixes ("Mt. Everest") never end a sentence; suffixes ("etc.") often do.
_PREFIX_RE = re.compile(r"(?<![\w.])(Mt|vs|approx|Fig)\.")
_PHD_RE = re.compile(r"(?<![\w.])Ph\.?D\b\.?")
_SUFFIX_RE = re.compile(r"(?<![\w.])(Jr|Sr|Ave|etc|Inc|Ltd|Dept)\.")
_VERSUS_RE = re.compile(r"(?<![\w.])vs(?= )")
_LATIN_RE = re.compile(r"(?<![\w.])(e\.g|i\.e)\.?(?!\w)", re.IGNORECASE)
_DOCTOR_RE = re.compile(r"(?<![\w.])Dr\.?(?= [A-Z])|(?<![\w.])Dr\.")
_SAINT_STREET_RE = re.compile(r"(?<![\w.])St\.")
_NUMBER_SIGN_RE = re.compile(r"(?<![\w.])(?:No\.|#) ?(?=[0-9])")


def _abbreviations(text: str) -> str:
    def saint_or_street(match: re.Match[str]) -> str:
        before = match.string[: match.start()].rstrip()
        after = match.string[match.end() : match.end() + 2]
        # "Main St." and "5th St." name a street; "St. Louis" names a saint or a town after one.
        after_name = bool(re.search(r"(?:\b[A-Z][\w'-]*|[0-9](?:st|nd|rd|th)?)$", before))
        if not after_name and re.match(r" [A-Z]", after):
            return "Saint"
        return _keep_period(match, "Street")

    def doctor_or_drive(match: re.Match[str]) -> str:
        if match.group(0) == "Dr" or re.match(r" [A-Z]", match.string[match.end() :]):
            return "Doctor"
        return _keep_period(match, "Drive")

    text = _LATIN_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)
    text = _TITLE_RE.sub(lambda m: _ABBREVIATIONS[m.group(1)], text)
    text = _DOCTOR_RE.sub(doctor_or_drive, text)
    text = _SAINT_STREET_RE.sub(saint_or_street, text)
    text = _NUMBER_SIGN_RE.sub("number ", text)
    text = _VERSUS_RE.sub("versus", text)
    text = _PREFIX_RE.sub(lambda m: _ABBREVIATIONS[m.group(1)], text)
    text = _PHD_RE.sub(lambda m: _keep_period(m, "P H D"), text)
    return _SUFFIX_RE.sub(lambda m: _keep_period(m, _ABBREVIATIONS[m.group(1)]), text)


_DECADE_RE = re.compile(r"(?<![\w.,'])(?:([0-9]{2})|')?([0-9]0)'?s\b")


def _decades(text: str) -> str:
    def expand(match: re.Match[str]) -> str:
        century, decade = match.groups()
        if century:
            # "1900s" is "nineteen hundreds", "2000s" is "two thousands".
            words = year_words(century + decade)
        else:
            words = _cardinal(decade) if decade != "00" else "two thousand"
        head, _, last = words.rpartition(" ")
        return f"{head} {_INFLECT.plural_noun(last)}".strip()

    return _DECADE_RE.sub(expand, text)


_ORDINAL_RE = re.compile(r"(?<![\w.,])([0-9]+)(st|nd|rd|th|ST|ND|RD|TH)\b")


def _ordinals(text: str) -> str:
    return _ORDINAL_RE.sub(lambda m: ordinal_words(m.group(1)), text)


_FRACTION_RE = re.compile(r"(?<![\w./])([0-9]{1,2})/([0-9]{1,2})(?![\w/]|\.[0-9])")


def fraction_words(numerator: int, denominator: int) -> str:
    """Reads a fraction: "three quarters", "five thirty seconds"."""
    noun = {2: "half", 4: "quarter"}.get(denominator) or ordinal_words(str(denominator))
    if numerator != 1:
        noun = _INFLECT.plural_noun(noun)
    return f"{_cardinal(str(numerator))} {noun}"


def _fractions(text: str) -> str:
    def expand(match: re.Match[str]) -> str:
        numerator, denominator = int(match.group(1)), int(match.group(2))
        if (numerator, denominator) == (24, 7):
            return "twenty four seven"
        if not 0 < numerator < denominator <= 16:
            return match.group(0)
        return fraction_words(numerator, denominator)

    return _FRACTION_RE.sub(expand, text)


_YEAR_CUE_RE = re.compile(
    r"(?:\b(?:in|since|from|until|till|by|during|year|circa|of|before|after|between|around|early"
    r"|late|mid|summer|winter|spring|autumn|fall|the)|" + _MONTH_NAME + r")[\s,]+$",
    re.IGNORECASE,
)
_ERA_RE = re.compile(r"\s?(?:BC|AD|BCE|CE)\b")
_RANGE_RE = re.compile(
    r"(?<![\w.,-])([0-9]+)(?:[-\u2013]| \u2013 )([0-9]+)(?![\w.,]?[0-9]|[-\u2013/])"
)
_VERSION_RE = re.compile(r"(?<![\w.])([0-9]+(?:\.[0-9]+){2,})(?![\w.]?[0-9])")
_NUMBER_RE = re.compile(
    r"(?:^|(?<=[\s(\[\"'/]))[-\u2212](?=\.?[0-9])"  # a sign only where a number can start
    r"|(?<![\w.])\.[0-9]+"  # ".5"
    r"|[0-9]+(?:,[0-9]{3})*(?:\.[0-9]+)?"
)


def _looks_like_year(text: str, start: int, end: int) -> bool:
    if end - start != 4 or not 1000 <= int(text[start:end]) <= 2099:
        return False
    value = int(text[start:end])
    if _ERA_RE.match(text, end):
        return True
    before = text[max(0, start - 12) : start]
    if _YEAR_CUE_RE.search(before):
        # "of 1500 people" counts people; a year cue only counts when no noun follows.
        return value >= 1900 or not re.match(r" [a-z]+s\b", text[end : end + 20])
    # A bare number in the modern range ending a clause or the text is most often a year.
    return (
        1900 <= value <= 2099
        and not text[end : end + 1].isalnum()
        and (end == len(text) or text[end] in ".,;:!?)")
    )


def _ranges(text: str) -> str:
    def expand(match: re.Match[str]) -> str:
        first, second = match.groups()
        as_years = (
            len(first) == 4
            and len(second) == 4
            and all(1000 <= int(n) <= 2099 for n in (first, second))
        )
        read = year_words if as_years else _cardinal
        return f"{read(first)} to {read(second)}"

    return _RANGE_RE.sub(expand, text)


def _versions(text: str) -> str:
    return _VERSION_RE.sub(
        lambda m: " dot ".join(_cardinal(part) for part in m.group(1).split(".")), text
    )


def _numbers(text: str) -> str:
    def expand(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in "-\u2212":
            return "minus "
        if token.isdigit() and _looks_like_year(match.string, match.start(), match.end()):
            words = year_words(token)
        else:
            words = number_words(token)
        # Keep digits glued to letters apart from them: "mp3" -> "mp three", "5G" -> "five G".
        before = match.string[match.start() - 1 : match.start()]
        after = match.string[match.end() : match.end() + 1]
        if before.isalpha():
            words = " " + words
        if after.isalpha():
            words += " "
        return words

    # "COVID-19" and "3-day" join a number and a word; the hyphen is not a minus sign.
    text = re.sub(r"(?<=[A-Za-z])-(?=[0-9])|(?<=[0-9])-(?=[A-Za-z])", " ", text)
    return _NUMBER_RE.sub(expand, text)


_AMPERSAND_RE = re.compile(r"(?<=\s)&(?=\s)")
_OPERATORS = {"+": "plus", "=": "equals", "\u00d7": "times"}
_OPERATOR_RE = re.compile(r"(?<=\s)([+=\u00d7])(?=\s)|(?<![\w+])\+(?=[0-9])|(?<=[0-9])\+(?![\w+])")
_LETTERS_AND_RE = re.compile(r"\b([A-Z]{1,3})&([A-Z]{1,3})\b")
_LANGUAGE_RE = re.compile(r"\b([A-Za-z])(\+\+|#)(?!\w)")


def _symbols(text: str) -> str:
    def expand_operator(match: re.Match[str]) -> str:
        if match.group(1):
            return _OPERATORS[match.group(1)]
        # A bare sign: "+49" is "plus four nine", "18+" is "eighteen plus".
        return "plus " if match.string[match.end() : match.end() + 1].isdigit() else " plus"

    text = _AMPERSAND_RE.sub("and", text)
    text = _OPERATOR_RE.sub(expand_operator, text)
    # "AT&T" and "R&D" are letter names even where a part, like "AT", is also a word.
    text = _LETTERS_AND_RE.sub(lambda m: f"{spell(m.group(1))} and {spell(m.group(2))}", text)
    return _LANGUAGE_RE.sub(
        lambda m: m.group(1) + {"++": " plus plus", "#": " sharp"}[m.group(2)], text
    )


# Capitalized words that read as words, not letters.
# fmt: off
_WORD_ACRONYMS = frozenset({
    "NASA", "NATO", "UNESCO", "UNICEF", "NAFTA", "OPEC", "LASER", "RADAR", "SCUBA", "AIDS",
    "COVID", "FIFA", "IKEA", "LEGO", "GIF", "JPEG", "PIN", "SIM", "SWAT", "ZIP", "POTUS",
    "SCOTUS", "FEMA", "DARPA", "ASCII", "JSON", "YAML", "TOML", "CAPTCHA", "WASM", "RAM",
    "ROM", "NASDAQ", "SARS", "MERS",
    # Short all-caps English words, as found in shouted text.
    "A", "I", "AN", "AS", "AT", "BE", "BY", "DO", "GO", "HE", "IF", "IN", "IS", "ME", "MY",
    "NO", "OF", "OH", "ON", "OR", "SO", "TO", "UP", "WE", "YES", "THE", "AND", "FOR", "NOT",
    "YOU", "ALL", "BUT", "ARE", "WAS", "CAN", "HAS", "HER", "HIS", "OUR", "OUT", "NEW", "NOW",
    "ONE", "TWO", "BIG", "WHY", "HOW", "WHO", "GET", "SEE", "LET", "END", "HEY", "WOW",
})
# fmt: on
# Letter names that a vowel heuristic would wrongly read as a word.
_SPELLED_ACRONYMS = frozenset({"UCLA", "NYSE", "IEEE", "USA", "CEO", "CFO", "CTO", "FAQ", "URL"})
_ROMAN_RE = re.compile(r"\b([A-Z][a-z]+) (X{0,3})(IX|IV|V?I{0,3})\b(?![.'-]\w)")
_ROMAN_VALUES = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8,
                 "IX": 9, "": 0}  # fmt: skip
_CAPS_TOKEN_RE = re.compile(r"(?<![\w'])(?=[A-Za-z]*[A-Z]{2})([A-Za-z]+?)(s?)(?![\w'])")
_CAMEL_PART_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
_DOTTED_RE = re.compile(r"(?<![\w.])((?:[A-Za-z]\.){2,})")
_ONSETS = frozenset({"STR", "SCR", "SPR", "SPL", "THR", "CHR", "SCH", "SHR", "PHR"})


def _pronounceable(word: str) -> bool:
    """A rough test for capitals that read as a word ("NASA") rather than letters ("HTTP")."""
    if word in _WORD_ACRONYMS:
        return True
    if word in _SPELLED_ACRONYMS or len(word) < 4:
        return False
    vowel_pattern = re.sub(r"[AEIOU]|(?<=.)Y", "v", word)
    vowel_pattern = re.sub(r"[^v]", "c", vowel_pattern)
    if "v" not in vowel_pattern or "vvv" in vowel_pattern:
        return False
    clusters = re.findall(r"c{3,}", vowel_pattern)
    return not clusters or (vowel_pattern.startswith("ccc") and word[:3] in _ONSETS)


def spell(word: str) -> str:
    """Letters one by one: capitals on their own are read as their names ("P H D")."""
    return " ".join(word)


def _acronyms(text: str) -> str:
    def roman(match: re.Match[str]) -> str:
        name, tens, units = match.groups()
        if not tens and len(units) < 2:
            return match.group(0)  # a lone "I" or "V" is far more often a word or letter
        return f"{name} {_cardinal(str(10 * len(tens) + _ROMAN_VALUES[units]))}"

    def caps(match: re.Match[str]) -> str:
        token, plural = match.groups()
        parts = _CAMEL_PART_RE.findall(token)
        spelled = [p.isupper() and len(p) > 1 and not _pronounceable(p) for p in parts]
        words = " ".join(spell(p) if s else p for p, s in zip(parts, spelled, strict=True))
        # "GPUs" -> "G P U's": a bare "Us" would be read as the word "us".
        if plural:
            words += "'s" if spelled[-1] else "s"
        return words

    def dotted(match: re.Match[str]) -> str:
        return _keep_period(match, spell(match.group(1).replace(".", "")), capital_ends=False)

    text = _ROMAN_RE.sub(roman, text)
    text = _DOTTED_RE.sub(dotted, text)
    return _CAPS_TOKEN_RE.sub(caps, text)


# Order matters: each pass consumes the symbols that later, more general passes would misread
# (an e-mail's dots before abbreviations, a phone number's dashes before minus signs, a date's
# year before bare numbers, money and units before plain numbers, and letters last).
_PASSES: tuple[Callable[[str], str], ...] = (
    _addresses,
    _phone_numbers,
    _dates,
    _times,
    _money,
    _percentages,
    _units,
    _abbreviations,
    _decades,
    _ordinals,
    _fractions,
    _ranges,
    _versions,
    _symbols,
    _numbers,
    _acronyms,
)


def normalize(text: str) -> str:
    """Returns `text` with numbers, symbols and abbreviations written out as spoken words."""
    for apply in _PASSES:
        text = apply(text)
    return text
