"""SSML's `<phoneme>`: a pronunciation, in IPA or in the model's own symbols, as Kokoro's symbols.

Kokoro-82M learned English from misaki's symbols and the other languages from espeak-ng's IPA
as misaki maps it, so standard IPA is mapped the way misaki maps espeak-ng's (hexgrad/misaki
EN_PHONES.md and espeak.py): English diphthongs and affricates become misaki's one-letter
symbols, American English loses the length mark; the other languages keep their IPA but for
tied affricates and diphthongs. Stress marks move to just before the stressed vowel, where
misaki and espeak-ng put them. Whatever the model has no symbol for is refused, named.
"""

from __future__ import annotations

import re
import unicodedata

from tts_service.language.languages import Language
from tts_service.language.lexicon import allowed_symbols

ALPHABETS = ("ipa", "x-kokoro")
_TIES = "\u0361\u035c"  # d͡ʒ, d͜ʒ
_STRESS = "ˈˌ"
# Kokoro's vowels, where a stress mark belongs (misaki's vowels and espeak-ng's).
_VOWELS = frozenset("AIWYOQaeiouyæɑɐɒɔəɛɜɚɪʊʌᵊᵻɤɯɨøœɘɵɞ")
# Written IPA that is spelled another way among the model's symbols, in every language.
_EVERY_LANGUAGE = {":": "ː", "g": "ɡ", "'": "ˈ"}
# Tied pairs as misaki maps espeak-ng's (EspeakG2P.e2m), for the languages espeak-ng reads.
_TIED = {"a͡ɪ": "I", "a͡ʊ": "W", "d͡z": "ʣ", "d͡ʒ": "ʤ", "e͡ɪ": "A", "o͡ʊ": "O", "ə͡ʊ": "Q",
         "s͡s": "S", "t͡s": "ʦ", "t͡ʃ": "ʧ", "ɔ͡ɪ": "Y"}
# English as misaki writes it (EN_PHONES.md, "From espeak to Misaki"), tied or not.
_ENGLISH = {"eɪ": "A", "aɪ": "I", "aʊ": "W", "ɔɪ": "Y", "dʒ": "ʤ", "tʃ": "ʧ", "ɚ": "əɹ",
            "ɝ": "ɜɹ", "r": "ɹ", "ɐ": "ə", "ʔ": "t", "ɫ": "l", "ɬ": "l", "x": "k", "ç": "k",
            "e": "ɛ"}  # a lone e is the DRESS vowel of British dictionaries ("bed" /bed/)
_AMERICAN = {**_ENGLISH, "oʊ": "O", "əʊ": "O", "eə": "ɛɹ", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɪə": "iə",
             "ɒ": "ɑ"}
_BRITISH = {**_ENGLISH, "əʊ": "Q", "oʊ": "Q", "eə": "ɛː", "iə": "ɪə", "æ": "a"}
_DROPPED = str.maketrans("", "", _TIES + ".‿")  # ties once mapped; syllable dots


class PhonemeError(ValueError):
    """The pronunciation cannot be said by the model; the message names what to change."""


def _replacer(table: dict[str, str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(key) for key in sorted(table, key=len, reverse=True)))


_TABLES = {name: (table, _replacer(table)) for name, table in (
    ("every", _EVERY_LANGUAGE), ("tied", _TIED), ("en-US", _AMERICAN), ("en-GB", _BRITISH))}


def _replace(text: str, name: str) -> str:
    # One pass, longest first: a replacement is never replaced again.
    table, pattern = _TABLES[name]
    return pattern.sub(lambda match: table[match.group()], text)


def _stress_before_vowels(word: str) -> str:
    out: list[str] = []
    pending = ""
    at = 0
    for char in word:
        if char in _STRESS:
            pending, at = char, len(out)
        elif pending and char in _VOWELS:
            out += [pending, char]
            pending = ""
        else:
            out.append(char)
    if pending:  # no vowel after it: left where it was written
        out.insert(at, pending)
    return "".join(out)


def _as_symbols(char: str, symbols: frozenset[str]) -> str:
    """A precomposed letter the model spells as letter and mark ("ã": "a" + U+0303); a
    diacritic it has no symbol for (dental t̪, non-syllabic i̯) is dropped, as a nuance the
    model cannot make."""
    if char in symbols:
        return char
    parts = unicodedata.normalize("NFD", char)
    if all(part in symbols or unicodedata.combining(part) for part in parts):
        return "".join(part for part in parts if part in symbols)
    return char


def from_ipa(ph: str, language: Language, symbols: frozenset[str]) -> str:
    """Kokoro's symbols for IPA `ph` read in `language`, words separated by spaces."""
    text = _replace(unicodedata.normalize("NFC", " ".join(ph.split())), "every")
    if language.english:
        # Tied or not, English pairs are misaki's symbols (o͡ʊ is O in America, Q in Britain).
        text = _replace(text.translate(_DROPPED), language.code)
        if language.code == "en-US":
            text = text.replace("ː", "")  # misaki's American English has no length mark
    else:
        text = _replace(text.replace("\u035c", "\u0361"), "tied").translate(_DROPPED)
    text = "".join(_as_symbols(char, symbols) for char in text)
    text = " ".join(_stress_before_vowels(word) for word in text.split())
    _check(text, symbols, "IPA " + repr(ph))
    return text


def from_kokoro(ph: str, symbols: frozenset[str]) -> str:
    """`ph`, the model's own symbols, checked; words separated by one space."""
    text = " ".join(ph.split())
    _check(text, symbols, repr(ph))
    return text


def _check(text: str, symbols: frozenset[str], written: str) -> None:
    if not text:
        raise PhonemeError(f"{written} has no phonemes")
    unknown = sorted({char for char in text if char not in symbols})
    if unknown:
        listed = " ".join(unknown)
        raise PhonemeError(f"the model cannot say {listed} (from {written}); "
                           f"{allowed_symbols(symbols)}")
