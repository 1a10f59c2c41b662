"""SSML: the caller's markup read into what to say, how, and where to pause or mark.

`parse` reads a `<speak>` document (the elements Google documents for its voices) with a
hardened XML parser: a DTD, an entity declaration or an external reference is refused before
anything is expanded, and so is a document nested deeper than `MAX_DEPTH`. The result is pure
data in the caller's coordinates: every spoken run knows the code points of the source it
stands for, so word timings and marks point into the caller's SSML. Nothing here knows voices
or engines: a voice name is checked through the callback the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tts_service.language.languages import Language

MAX_DEPTH = 32  # elements inside each other; deeper documents are refused
MAX_BREAK_S = 10.0  # the longest <break>, as Google's voices allow


class SsmlError(ValueError):
    """The document cannot be spoken: the message names the line and column (1-based) or the
    element, and says what to fix."""


@dataclass(frozen=True)
class Style:
    """How a stretch of the document is spoken, relative to the call's own settings."""

    language: Language  # xml:lang of <lang>/<speak>, else the call's
    voice: str = ""  # <voice name>, as written (already checked); "" is the call's voice
    rate: float = 1.0  # <prosody rate>/<emphasis>: times the call's speed
    volume_db: float = 0.0  # <prosody volume>/<emphasis>: added to the call's gain


@dataclass(frozen=True)
class Run:
    """Text to read, and the part of the caller's source `[start, end)` (code points) it
    stands for.

    `exact`: `text == source[start:end]` character for character (plain text, white space
    folded to spaces), so each character maps to its own source offset; otherwise (an alias, a
    say-as reading, an entity, a sentence break) all of `text` stands for the whole span.
    `phonemes` (Kokoro's symbols, words separated by spaces) replace the G2P for `text`.
    `normalize`: whether the language's normalizer may still rewrite it (not for a say-as
    reading, which is words already).
    """

    text: str
    start: int
    end: int
    exact: bool = True
    phonemes: str = ""
    normalize: bool = True


@dataclass(frozen=True)
class Speech:
    """Consecutive runs spoken in one style, with no pause or mark between them."""

    style: Style
    runs: tuple[Run, ...]


@dataclass(frozen=True)
class Pause:
    """A `<break>`: this much silence, at source offset `at`."""

    seconds: float
    at: int


@dataclass(frozen=True)
class MarkPoint:
    """A `<mark name>` at source offset `at`."""

    name: str
    at: int


Item = Speech | Pause | MarkPoint


@dataclass(frozen=True)
class Document:
    items: tuple[Item, ...]

    @property
    def spoken_chars(self) -> int:
        """What the text limit counts: the characters read, not the markup."""
        return sum(len(run.text) for item in self.items if isinstance(item, Speech)
                   for run in item.runs)


def parse(source: str, language: Language, *, symbols: frozenset[str],
          check_voice: Callable[[str], str | None], max_source_chars: int) -> Document:
    """Reads `source`, a `<speak>` document spoken by default in `language`; raises SsmlError.

    `symbols` are the model's phoneme symbols (what <phoneme> may end up as); `check_voice`
    returns why a <voice name> cannot be used, or None; a source longer than
    `max_source_chars` is refused before it is parsed.
    """
    raise NotImplementedError
