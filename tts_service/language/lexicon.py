"""Pronunciation overrides: checks a `word phonemes` / `word = respelling` file and applies it."""

from __future__ import annotations

import re
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
# (tts_service/phonemes.py), whatever its lexicon says.

_MAX_REPORTED_LINES = 10  # enough to fix a file in one go without flooding the log


_RESPELLING = re.compile(r"[A-Za-z][A-Za-z' -]*")


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
        if items[:1] == ["="]:
            respelling = " ".join(items[1:])
            if not _RESPELLING.fullmatch(respelling):
                problems.append(f"line {number}: respell {word!r} with plain letters, e.g. "
                                "'gif = jif'")
                continue
            overrides.respellings[word.lower()] = respelling
            continue
        if not items:
            problems.append(f"line {number}: {word!r} has no phonemes; write 'word phonemes', "
                            f"e.g. 'tomato t ə m ˈ A ɾ O'")
            continue
        phonemes = _split_phonemes(items, symbols)
        unknown = sorted({p for p in phonemes if p not in symbols})
        if unknown:
            unknown_anywhere = True
            listed = ", ".join(repr(s) for s in unknown)
            problems.append(f"line {number}: {word!r} uses unknown phoneme symbols {listed}")
            continue
        overrides.phonemes[word.lower()] = tuple(phonemes)
    if problems:
        shown = problems[:_MAX_REPORTED_LINES]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more bad lines")
        hint = (f"; allowed symbols (tokens.txt): {_allowed(symbols)}" if unknown_anywhere
                else "")
        raise LexiconError(f"lexicon overrides file {path}: " + "; ".join(shown) + hint)
    return overrides


def load_overrides(overrides_file: Path, tokens: Path) -> Overrides:
    """Checks `overrides_file` against tokens.txt; raises LexiconError naming every bad line."""
    return parse_overrides(overrides_file, read_symbols(tokens))
