"""Pronunciation overrides: checks a `word phonemes` / `word = respelling` file and applies it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The overrides file, one entry per line:
#
#     # comment lines start with '#'; blank lines are ignored
#     kokoro k ˈ O k ə ɹ O      <- phonemes separated by spaces, as in lexicon-us-en.txt
#     gif    ɡˈɪf               <- or written as one string, one symbol per character
#
# The first whitespace-separated item is the word (matched case-insensitively, so it is
# lowercased), the rest are its phonemes. Every Kokoro symbol is a single character, so the two
# spellings mean the same; an item that is itself a symbol is kept whole, so a vocabulary with
# longer symbols would still work with the spaced form. Every symbol must be in tokens.txt.
#
#     gif = jif                 <- a respelling: the word is read as these plain words
#     nginx = engine x
#
# Both apply to English text (American and British). Respellings are applied to the text
# before synthesis; a phoneme entry replaces the English front end's reading of the word
# (language/g2p.py), whatever its lexicon says. A request may bring entries of its own
# (calls/request.py), checked by the same rules: `check_word`, `check_respelling`,
# `check_phonemes`.

_MAX_REPORTED_LINES = 10  # enough to fix a file in one go without flooding the log


# A respelling is letters of any script (a request's may be for any language) with their
# combining marks (Hindi's vowel signs), apostrophes, hyphens and spaces: nothing the normalizer
# would read as a number or a sign. Not IPA (U+0250-U+02FF): phonemes are given as phonemes.
_IPA = range(0x250, 0x300)
_JOINERS = frozenset("' -")


def _respelling_letter(char: str) -> bool:
    return unicodedata.category(char)[0] in "LM" and ord(char) not in _IPA


class LexiconError(ValueError):
    """The overrides file cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Overrides:
    """A checked overrides file: lexicon entries and text respellings, by lowercase word."""

    phonemes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    respellings: dict[str, str] = field(default_factory=dict)


class Respeller:
    """Replaces whole words (any case) by their respellings; pure and thread-safe."""

    def __init__(self, respellings: Mapping[str, str]) -> None:
        self._respellings = dict(respellings)
        words = sorted(self._respellings, key=len, reverse=True)
        self._pattern = re.compile(
            r"(?<![\w'])(" + "|".join(re.escape(w) for w in words) + r")(?![\w'])",
            re.IGNORECASE) if words else None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._respellings[m.group(1).lower()], text)


def read_symbols(tokens: Path) -> frozenset[str]:
    """The phoneme symbols of tokens.txt (`SYMBOL ID` lines; the space symbol is `  16`)."""
    symbols = set()
    for line in tokens.read_text(encoding="utf-8").splitlines():
        # Split at the last space: the space symbol's own line starts with a space.
        symbol, _, token_id = line.rpartition(" ")
        if symbol and token_id.isdigit():
            symbols.add(symbol)
    return frozenset(symbols)


def _split_phonemes(items: Iterable[str], symbols: frozenset[str]) -> list[str]:
    phonemes: list[str] = []
    for item in items:
        phonemes.extend([item] if item in symbols else list(item))
    return phonemes


def check_word(word: str) -> str | None:
    """What is wrong with a word to override (None if nothing): one word with a letter in it,
    as the respeller matches whole words and the G2P reads words."""
    if not word:
        return "the word is empty"
    if any(c.isspace() for c in word):
        return f"{word!r} is more than one word: give one word per entry"
    if not any(c.isalpha() for c in word):
        return f"{word!r} has no letters: only words can be overridden"
    return None


def check_respelling(word: str, respelling: str) -> str | None:
    """What is wrong with a respelling (None if nothing)."""
    if not (respelling[:1].isalpha() and _respelling_letter(respelling[0])
            and all(c in _JOINERS or _respelling_letter(c) for c in respelling)):
        return f"respell {word!r} with plain letters, e.g. 'gif = jif'"
    return None


def check_phonemes(word: str, items: Iterable[str], symbols: frozenset[str]
                   ) -> tuple[tuple[str, ...], str | None]:
    """A word's phonemes (spaced symbols or one string of them) and what is wrong with them
    (None if nothing): every symbol must be in tokens.txt."""
    phonemes = tuple(_split_phonemes(items, symbols))
    if not phonemes:
        return phonemes, (f"{word!r} has no phonemes; write 'word phonemes', e.g. "
                          "'tomato t ə m ˈ A ɾ O'")
    unknown = sorted({p for p in phonemes if p not in symbols})
    if unknown:
        listed = ", ".join(repr(s) for s in unknown)
        return phonemes, f"{word!r} uses unknown phoneme symbols {listed}"
    return phonemes, None


def allowed_symbols(symbols: frozenset[str]) -> str:
    """The symbols a phoneme entry may use, for an error message."""
    return "allowed symbols (tokens.txt): " + _allowed(symbols)


def _allowed(symbols: frozenset[str]) -> str:
    return " ".join(sorted(s for s in symbols if not s.isspace()))


def parse_overrides(path: Path, symbols: frozenset[str]) -> Overrides:
    """Reads and checks every line of an overrides file.

    Raises LexiconError listing every bad line (up to ten) with what is wrong and which symbols
    are allowed. A word given twice keeps its last line, as a later setting overrides an earlier.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LexiconError(f"cannot read the lexicon overrides file {path}: {err}") from err
    overrides = Overrides()
    problems: list[str] = []
    unknown_anywhere = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, *items = stripped.split()
        if (problem := check_word(word)) is not None:
            problems.append(f"line {number}: {problem}")
            continue
        if items[:1] == ["="]:
            respelling = " ".join(items[1:])
            if (problem := check_respelling(word, respelling)) is not None:
                problems.append(f"line {number}: {problem}")
                continue
            overrides.respellings[word.lower()] = respelling
            continue
        phonemes, problem = check_phonemes(word, items, symbols)
        if problem is not None:
            unknown_anywhere = unknown_anywhere or bool(phonemes)
            problems.append(f"line {number}: {problem}")
            continue
        overrides.phonemes[word.lower()] = phonemes
    if problems:
        shown = problems[:_MAX_REPORTED_LINES]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more bad lines")
        hint = f"; {allowed_symbols(symbols)}" if unknown_anywhere else ""
        raise LexiconError(f"lexicon overrides file {path}: " + "; ".join(shown) + hint)
    return overrides


def load_overrides(overrides_file: Path, tokens: Path) -> Overrides:
    """Checks `overrides_file` against tokens.txt; raises LexiconError naming every bad line."""
    return parse_overrides(overrides_file, read_symbols(tokens))
