"""Text normalization per language: English through normalize.py; numbers, amounts, percentages
and dates of Spanish, French, Italian and Portuguese read in that language with num2words.

Japanese and Chinese front ends read numbers themselves (misaki: kana for Japanese, cn2an for
Chinese), and espeak-ng reads Hindi digits in Hindi (num2words has no Hindi), so their text
is left as it is.
"""

from __future__ import annotations

import re
from decimal import Decimal

from num2words import num2words

from tts_service.language import english_normalizer as english
from tts_service.language.languages import Language

# num2words' name for each language, and how each says the words around a number.
_NUM2WORDS = {"es-ES": "es", "fr-FR": "fr", "it-IT": "it", "pt-BR": "pt_BR"}
_DECIMAL_COMMA = {"es-ES": "coma", "fr-FR": "virgule", "it-IT": "virgola", "pt-BR": "vírgula"}
_PERCENT = {"es-ES": "por ciento", "fr-FR": "pour cent", "it-IT": "per cento",
            "pt-BR": "por cento"}
_PLUS = {"es-ES": "más", "fr-FR": "plus", "it-IT": "più", "pt-BR": "mais"}  # "+34 ..."
_MONTHS = {
    "es-ES": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
             "diciembre",
    "fr-FR": "janvier février mars avril mai juin juillet août septembre octobre novembre "
             "décembre",
    "it-IT": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre "
             "novembre dicembre",
    "pt-BR": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro "
             "dezembro",
}
# "15 de marzo de 2024", "15 mars 2024"
_DATE = {"es-ES": "{day} de {month} de {year}", "fr-FR": "{day} {month} {year}",
         "it-IT": "{day} {month} {year}", "pt-BR": "{day} de {month} de {year}"}
# Currency symbols and their ISO 4217 codes, which num2words reads (to="currency"; pt_BR's
# reads reais only) and SSML's say-as currency accepts ("42.01 USD").
CURRENCY_CODES = {"€": "EUR", "$": "USD", "£": "GBP", "R$": "BRL", "¥": "JPY"}
_PT_BR_CURRENCIES = {"EUR": "euros", "USD": "dólares", "GBP": "libras"}
_NO_CENTS = re.compile(r"\s*(?:,|\bcon|\bet|\be)\s+(?:cero|zéro|zero)\s+\S+$")

# These languages write 1.234.567,89 (French also 1 234 567,89): the comma is the decimal mark.
NUMBER = r"[0-9]{1,3}(?:[. \u00a0\u202f][0-9]{3})+(?:,[0-9]+)?|[0-9]+(?:,[0-9]+)?"
_START = r"(?<![\w.,])"
_END = r"(?![\w]|[.,][0-9])"
_MONEY = re.compile(
    rf"(?P<before>R\$|[€$£])\s?(?P<a>{NUMBER}){_END}|{_START}(?P<b>{NUMBER})\s?(?P<after>R\$|[€$£])")
_PERCENTAGE = re.compile(rf"{_START}(?P<n>{NUMBER})\s?%")
_DATES = re.compile(rf"{_START}(?P<d>[0-9]{{1,2}})/(?P<m>[0-9]{{1,2}})/(?P<y>[0-9]{{4}}){_END}")
_NUMBERS = re.compile(rf"{_START}{NUMBER}{_END}")


def _value(written: str) -> Decimal:
    return Decimal(re.sub(r"[. \u00a0\u202f]", "", written).replace(",", "."))


def reads_numbers(language: Language) -> bool:
    """Whether num2words reads this language's numbers here (English has its own normalizer;
    Hindi, Japanese and Chinese front ends read digits themselves)."""
    return language.code in _NUM2WORDS


def number_words(written: str, language: Language) -> str:
    """Reads an unsigned number written as `language` writes it (NUMBER: "1.234,5")."""
    lang = _NUM2WORDS[language.code]
    whole, _, fraction = re.sub(r"[. \u00a0\u202f]", "", written).partition(",")
    words = num2words(int(whole), lang=lang)
    if fraction:
        # "3,05": the digits after the comma as a number unless a zero leads them.
        after = (num2words(int(fraction), lang=lang) if not fraction.startswith("0")
                 else " ".join(num2words(int(digit), lang=lang) for digit in fraction))
        words += f" {_DECIMAL_COMMA[language.code]} {after}"
    return str(words)


def ordinal_words(number: int, language: Language) -> str:
    return str(num2words(number, lang=_NUM2WORDS[language.code], to="ordinal"))


def digit_words(digits: str, language: Language) -> str:
    """Reads the digits of `digits` one by one."""
    lang = _NUM2WORDS[language.code]
    return " ".join(str(num2words(int(digit), lang=lang)) for digit in digits if digit.isdigit())


def telephone_words(phone: str, language: Language) -> str:
    """Reads a telephone number digit by digit, group by group as it is written."""
    plus = f"{_PLUS[language.code]} " if phone.startswith("+") else ""
    return plus + ", ".join(digit_words(group, language) for group in re.findall(r"[0-9]+", phone))


def _money(match: re.Match[str], language: Language) -> str:
    symbol = match.group("before") or match.group("after")
    written = match.group("a") or match.group("b")
    lang = _NUM2WORDS[language.code]
    code = CURRENCY_CODES[symbol]
    if lang == "pt_BR" and code != "BRL":
        return f"{number_words(written, language)} {_PT_BR_CURRENCIES[code]}"
    options = {} if lang == "pt_BR" else {"currency": code}  # pt_BR's reads reais only
    words = str(num2words(_value(written), lang=lang, to="currency", **options))
    # A whole amount: without num2words' "and zero cents".
    return _NO_CENTS.sub("", words)


def amount_words(text: str, language: Language) -> str | None:
    """Reads `text` if it is exactly one amount of money ("42,01 €"), else None."""
    match = _MONEY.fullmatch(text)
    return _money(match, language) if match else None


def month_name(month: int, language: Language) -> str:
    return _MONTHS[language.code].split()[month - 1]


def date_words(day: int, month: int, year: int, language: Language) -> str:
    """Reads a date: "15 de marzo de 2024" in words."""
    lang = _NUM2WORDS[language.code]
    return _DATE[language.code].format(day=num2words(day, lang=lang),
                                       month=month_name(month, language),
                                       year=num2words(year, lang=lang))


def _date(match: re.Match[str], language: Language) -> str:
    day, month = int(match.group("d")), int(match.group("m"))
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return match.group()
    return date_words(day, month, int(match.group("y")), language)


def normalize(text: str, language: Language) -> str:
    """`text` with what a reader would say instead of digits and symbols, in `language`."""
    if language.english:
        return english.normalize(text)
    if language.code not in _NUM2WORDS:
        return text
    text = _DATES.sub(lambda m: _date(m, language), text)
    text = _MONEY.sub(lambda m: _money(m, language), text)
    text = _PERCENTAGE.sub(
        lambda m: f"{number_words(m.group('n'), language)} {_PERCENT[language.code]}", text)
    return _NUMBERS.sub(lambda m: number_words(m.group(), language), text)
