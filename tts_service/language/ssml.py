"""SSML: the caller's markup read into what to say, how, and where to pause or mark.

`parse` reads a `<speak>` document (the elements Google documents for its voices) with a
hardened XML parser: a DTD, an entity declaration or an external reference is refused before
anything is expanded, and so is a document nested deeper than `MAX_DEPTH`. The result is pure
data in the caller's coordinates: every spoken run knows the code points of the source it
stands for, so word timings and marks point into the caller's SSML. Nothing here knows voices
or engines: a voice name is checked through the callback the caller passes.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from xml.parsers.expat import ExpatError

import numpy as np
from defusedxml.common import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser
from num2words import num2words

from tts_service.language import english_normalizer, normalizers
from tts_service.language.languages import Language, UnknownLanguage, resolve

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
    if len(source) > max_source_chars:
        raise SsmlError(f"the document has {len(source)} characters; at most "
                        f"{max_source_chars} are read")
    return _Reader(source, language, symbols, check_voice).read()


# What each element may carry; anything else is refused by name.
_ATTRIBUTES: dict[str, frozenset[str]] = {
    "speak": frozenset({"xml:lang", "xmlns", "version"}),
    "p": frozenset(), "s": frozenset(),
    "break": frozenset({"time", "strength"}),
    "say-as": frozenset({"interpret-as", "format", "detail"}),
    "sub": frozenset({"alias"}),
    "phoneme": frozenset({"alphabet", "ph"}),
    "prosody": frozenset({"rate", "volume", "pitch"}),
    "emphasis": frozenset({"level"}),
    "lang": frozenset({"xml:lang"}),
    "voice": frozenset({"name"}),
    "mark": frozenset({"name"}),
}
_EMPTY = frozenset({"break", "mark"})  # elements with no content
_CONTENT_ONLY = frozenset({"say-as", "sub", "phoneme"})  # text inside, no elements
BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.4, "strong": 0.7,
                   "x-strong": 1.0}
_TIME = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\s*")
RATES = {"x-slow": 0.6, "slow": 0.8, "medium": 1.0, "fast": 1.25, "x-fast": 1.5, "default": 1.0}
MIN_RATE, MAX_RATE = 0.5, 2.0
VOLUMES = {"silent": -96.0, "x-soft": -12.0, "soft": -6.0, "medium": 0.0, "loud": 6.0,
           "x-loud": 10.0, "default": 0.0}
MIN_VOLUME_DB, MAX_VOLUME_DB = -96.0, 10.0
_DB = re.compile(r"\s*([+-]?[0-9]+(?:\.[0-9]+)?)\s*dB\s*")
# <emphasis level>: how much slower and louder (Kokoro has no stress input of its own).
EMPHASIS = {"strong": (0.9, 3.0), "moderate": (0.95, 1.5), "reduced": (1.1, -3.0),
            "none": (1.0, 0.0)}
MAX_MARK_CHARS = 64
# IPA into Kokoro's symbols: misaki writes English diphthongs and affricates as one letter.
_IPA_ANY = (("\u0361", ""), ("\u035c", ""), (".", ""), ("d\u0292", "ʤ"), ("t\u0283", "ʧ"),
            ("g", "ɡ"), ("ɫ", "l"))
_IPA_ENGLISH = (("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("ɚ", "əɹ"),
                ("ɝ", "ɜɹ"), ("r", "ɹ"))
_IPA_US = (("oʊ", "O"), ("əʊ", "O"))
_IPA_GB = (("əʊ", "Q"), ("oʊ", "Q"))
# A stress mark followed by the consonants of its syllable's onset.
_STRESS_BEFORE_ONSET = re.compile("([ˈˌ])([^ˈˌ aeiouyæɑɒɔəɛɜɪʊʌɐɨʉøœɯɤ̃ᵊAIOWYQ]+)")
# num2words' names of the languages it reads (Hindi and Mandarin it cannot).
_NUM2WORDS = {"en-US": "en", "en-GB": "en", "es-ES": "es", "fr-FR": "fr", "it-IT": "it",
              "ja-JP": "ja", "pt-BR": "pt_BR"}
_DATE_FORMATS = frozenset({"mdy", "dmy", "ymd", "md", "dm", "ym", "my", "y", "m", "d"})
_SAY_AS = ("characters", "spell-out", "verbatim", "cardinal", "number", "ordinal", "digits",
           "fraction", "date", "time", "telephone", "currency")


@dataclass
class _Open:
    """An element being read: its name, the style inside it, and the text of a content-only
    element with the source span of that text."""

    name: str
    style: Style
    attributes: dict[str, str]
    content: list[str]
    start: int = -1
    end: int = -1


class _Reader:
    def __init__(self, source: str, language: Language, symbols: frozenset[str],
                 check_voice: Callable[[str], str | None]) -> None:
        self._source = source
        self._data = source.encode("utf-8")
        # The code point each byte belongs to: expat reports places in bytes.
        lead = (np.frombuffer(self._data, np.uint8) & 0xC0) != 0x80
        self._char_at = np.cumsum(lead) - 1
        self._symbols = symbols
        self._check_voice = check_voice
        self._language = language
        self._open: list[_Open] = []
        self._items: list[Item] = []
        self._runs: list[Run] = []
        self._style: Style | None = None
        reader = DefusedExpatParser(forbid_dtd=True, forbid_entities=True,
                                    forbid_external=True)
        reader.reset()  # makes expat with defusedxml's refusals of DTDs and entities
        self._expat = reader._parser
        self._expat.buffer_text = False  # each piece of text with its own place
        self._expat.StartElementHandler = self._start
        self._expat.EndElementHandler = self._end
        self._expat.CharacterDataHandler = self._text

    def read(self) -> Document:
        try:
            self._expat.Parse(self._data, True)
        except ExpatError as err:
            raise SsmlError(f"line {err.lineno}, column {err.offset + 1}: malformed XML "
                            f"({_expat_message(err)})") from None
        except DefusedXmlException:
            raise SsmlError(f"line {self._expat.CurrentLineNumber}: a DTD, entity declaration "
                            "or external reference is not allowed in SSML") from None
        self._flush()
        return Document(tuple(self._items))

    # Where things are --------------------------------------------------------------------

    def _here(self) -> int:
        """The code point the parser is at."""
        at = self._expat.CurrentByteIndex
        return int(self._char_at[at]) if at < len(self._data) else len(self._source)

    def _fail(self, problem: str) -> SsmlError:
        return SsmlError(f"line {self._expat.CurrentLineNumber}, column "
                         f"{self._expat.CurrentColumnNumber + 1}: {problem}")

    # Elements ----------------------------------------------------------------------------

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        if len(self._open) >= MAX_DEPTH:
            raise self._fail(f"<{name}> is nested deeper than {MAX_DEPTH} elements")
        if not self._open and name != "speak":
            raise self._fail(f"the document must be a <speak> element, not <{name}>")
        if self._open and name == "speak":
            raise self._fail("<speak> may only be the outermost element")
        if name not in _ATTRIBUTES:
            raise self._fail(f"unknown element <{name}>: SSML here has "
                             f"{', '.join(f'<{known}>' for known in _ATTRIBUTES)}")
        unknown = sorted(set(attributes) - _ATTRIBUTES[name])
        if unknown:
            allowed = ", ".join(sorted(_ATTRIBUTES[name])) or "none"
            raise self._fail(f"<{name}> has no attribute {unknown[0]!r} (it takes: {allowed})")
        if self._open and self._open[-1].name in _CONTENT_ONLY:
            raise self._fail(f"<{self._open[-1].name}> holds text only, not <{name}>")
        style = self._open[-1].style if self._open else Style(self._language)
        style = self._styled(name, attributes, style)
        self._open.append(_Open(name, style, attributes, []))
        if name in ("p", "s"):
            self._add(Run("\n", self._here(), self._here(), exact=False), style)
        elif name == "break":
            self._pause(attributes)
        elif name == "mark":
            mark = attributes.get("name", "")
            if not mark or len(mark) > MAX_MARK_CHARS:
                raise self._fail(f"<mark> needs a name of 1 to {MAX_MARK_CHARS} characters")
            self._flush()
            self._items.append(MarkPoint(mark, self._here()))

    def _end(self, name: str) -> None:
        element = self._open.pop()
        if name in ("p", "s"):
            self._add(Run("\n", self._here(), self._here(), exact=False), element.style)
        elif name in _CONTENT_ONLY:
            self._content(element)

    def _styled(self, name: str, attributes: dict[str, str], style: Style) -> Style:
        if "xml:lang" in attributes:
            try:
                style = replace(style, language=resolve(attributes["xml:lang"]))
            except UnknownLanguage as err:
                raise self._fail(f"<{name} xml:lang>: {err}") from None
        if name == "voice":
            voice = attributes.get("name", "")
            problem = self._check_voice(voice) if voice else "<voice> needs a name"
            if problem is not None:
                raise self._fail(f"<voice name={voice!r}>: {problem}")
            style = replace(style, voice=voice)
        elif name == "prosody":
            if "pitch" in attributes:
                raise self._fail("<prosody pitch> cannot be honoured: Kokoro-82M has no pitch "
                                 "control (choose another voice); rate and volume can be set")
            rate = _rate(attributes.get("rate", "default"))
            volume = _volume(attributes.get("volume", "default"))
            if rate is None:
                raise self._fail(f"<prosody rate={attributes['rate']!r}>: use a percentage "
                                 f"such as 80%, a number, or one of {', '.join(RATES)}")
            if volume is None:
                raise self._fail(f"<prosody volume={attributes['volume']!r}>: use a change "
                                 f"such as +6dB or -3dB, or one of {', '.join(VOLUMES)}")
            style = replace(style, rate=style.rate * rate, volume_db=style.volume_db + volume)
        elif name == "emphasis":
            level = attributes.get("level", "moderate")
            if level not in EMPHASIS:
                raise self._fail(f"<emphasis level={level!r}>: use one of "
                                 f"{', '.join(EMPHASIS)}")
            rate, gain = EMPHASIS[level]
            style = replace(style, rate=style.rate * rate, volume_db=style.volume_db + gain)
        if not MIN_RATE <= style.rate <= MAX_RATE:
            raise self._fail(f"<{name}> makes the rate {style.rate:g}, outside [{MIN_RATE}, "
                             f"{MAX_RATE}]")
        if not MIN_VOLUME_DB <= style.volume_db <= MAX_VOLUME_DB:
            raise self._fail(f"<{name}> makes the volume {style.volume_db:+g} dB, outside "
                             f"[{MIN_VOLUME_DB:g}, {MAX_VOLUME_DB:+g}] dB")
        return style

    def _pause(self, attributes: dict[str, str]) -> None:
        if "time" in attributes:  # time wins over strength, as the SSML spec says
            found = _TIME.fullmatch(attributes["time"])
            seconds = float(found[1]) / (1000 if found[2] == "ms" else 1) if found else -1.0
            if not 0 <= seconds <= MAX_BREAK_S:
                raise self._fail(f"<break time={attributes['time']!r}>: give 0 to "
                                 f"{MAX_BREAK_S:g} s, e.g. 800ms or 1.5s")
        else:
            strength = attributes.get("strength", "medium")
            if strength not in BREAK_STRENGTHS:
                raise self._fail(f"<break strength={strength!r}>: use one of "
                                 f"{', '.join(BREAK_STRENGTHS)}")
            seconds = BREAK_STRENGTHS[strength]
        self._flush()
        if seconds > 0:
            self._items.append(Pause(seconds, self._here()))

    # Text --------------------------------------------------------------------------------

    def _text(self, data: str) -> None:
        if not self._open:
            return  # white space around the root; expat refuses anything else
        start = self._here()
        written = self._source[start:start + len(data)]
        # An entity or character reference (&amp;) arrives as its text: it stands for the
        # whole reference.
        exact = written == data
        end = start + len(data) if exact else self._source.index(";", start) + 1
        element = self._open[-1]
        if element.name in _CONTENT_ONLY:
            element.content.append(data)
            element.start = start if element.start < 0 else element.start
            element.end = end
            return
        self._add(Run(re.sub(r"\s", " ", data), start, end, exact=exact), element.style)

    def _content(self, element: _Open) -> None:
        """A say-as, sub or phoneme, read once its content is whole."""
        written = "".join(element.content)
        if not written.strip():
            raise self._fail(f"<{element.name}> is empty: put the text it reads inside")
        start, end = element.start, element.end
        attributes = element.attributes
        language = element.style.language
        if element.name == "sub":
            alias = attributes.get("alias", "")
            if not alias.strip():
                raise self._fail("<sub> needs a non-empty alias")
            run = Run(alias, start, end, exact=False)
        elif element.name == "phoneme":
            run = Run(re.sub(r"\s", " ", written), start, end,
                      exact=written == self._source[start:end],
                      phonemes=self._phonemes(attributes, language))
        else:
            reading = self._say_as(attributes, written.strip(), language)
            run = Run(reading, start, end, exact=False, normalize=False)
        self._add(run, element.style)

    def _phonemes(self, attributes: dict[str, str], language: Language) -> str:
        alphabet, ph = attributes.get("alphabet", ""), attributes.get("ph", "").strip()
        if alphabet not in ("ipa", "x-kokoro"):
            raise self._fail(f"<phoneme alphabet={alphabet!r}>: use ipa or x-kokoro (the "
                             "model's own symbols)")
        if not ph:
            raise self._fail("<phoneme> needs its phonemes in ph")
        if alphabet == "ipa":
            ph = ipa_to_kokoro(ph, language)
        unknown = sorted({char for char in ph if char != " " and char not in self._symbols})
        if unknown:
            raise self._fail(f"<phoneme ph={attributes['ph']!r}>: the model cannot say "
                             f"{' '.join(unknown)} (its symbols: "
                             f"{''.join(sorted(self._symbols - {' '}))})")
        return ph

    def _say_as(self, attributes: dict[str, str], written: str, language: Language) -> str:
        kind = attributes.get("interpret-as", "")
        if kind not in _SAY_AS:
            raise self._fail(f"<say-as interpret-as={kind!r}>: use one of {', '.join(_SAY_AS)}")
        try:
            return read_as(kind, written, language, attributes.get("format", ""))
        except ValueError as err:
            raise self._fail(f"<say-as interpret-as={kind!r}>: {err}") from None

    # Items -------------------------------------------------------------------------------

    def _add(self, run: Run, style: Style) -> None:
        if self._style is not None and style != self._style:
            self._flush()
        self._style = style
        last = self._runs[-1] if self._runs else None
        if (last is not None and last.exact and run.exact and last.end == run.start
                and not last.phonemes and not run.phonemes):
            # expat hands text over in parts (at each line end): one run again.
            self._runs[-1] = Run(last.text + run.text, last.start, run.end)
        else:
            self._runs.append(run)

    def _flush(self) -> None:
        if self._runs and self._style is not None:
            self._items.append(Speech(self._style, tuple(self._runs)))
        self._runs = []
        self._style = None


def _expat_message(err: ExpatError) -> str:
    return str(err).split(":")[0]


def _rate(value: str) -> float | None:
    if value in RATES:
        return RATES[value]
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        return None


def _volume(value: str) -> float | None:
    if value in VOLUMES:
        return VOLUMES[value]
    found = _DB.fullmatch(value)
    return float(found[1]) if found else None


def ipa_to_kokoro(ipa: str, language: Language) -> str:
    """IPA as Kokoro's symbols: ties and syllable marks dropped, and for English misaki's one
    letter per diphthong and affricate (its American or British set)."""
    table: tuple[tuple[str, str], ...] = _IPA_ANY
    if language.english:
        table += _IPA_ENGLISH + (_IPA_GB if language.code == "en-GB" else _IPA_US)
    for ipa_form, kokoro in table:
        ipa = ipa.replace(ipa_form, kokoro)
    # IPA marks stress where the syllable starts; misaki (and so Kokoro) before its vowel.
    return _STRESS_BEFORE_ONSET.sub(r"\2\1", ipa)


def _cardinal(number: int, language: Language, to: str = "cardinal") -> str:
    if language.code not in _NUM2WORDS:
        raise ValueError(f"numbers cannot be read as words in {language.name} here: write "
                         "them as digits outside <say-as>")
    return str(num2words(number, lang=_NUM2WORDS[language.code], to=to))


def _integer(written: str) -> int:
    digits = written.replace(",", "").replace(" ", "")
    if not re.fullmatch(r"-?[0-9]{1,15}", digits):
        raise ValueError(f"{written!r} is not a whole number")
    return int(digits)


def read_as(kind: str, written: str, language: Language, date_format: str = "") -> str:
    """How `written` is read as `kind` (a say-as interpret-as) in `language`; raises
    ValueError saying why it cannot be."""
    if kind in ("characters", "spell-out", "verbatim"):
        return " ".join(char for char in written if not char.isspace())
    if kind in ("cardinal", "number"):
        return _cardinal(_integer(written), language)
    if kind == "ordinal":
        return _cardinal(_integer(written.rstrip(".ºª").removesuffix("th")
                                   .removesuffix("st").removesuffix("nd")
                                   .removesuffix("rd")), language, to="ordinal")
    if kind in ("digits", "telephone"):
        groups = re.findall(r"[0-9]+", written)
        if not groups or re.search(r"[^0-9\s()+.-]", written):
            raise ValueError(f"{written!r} is not a run of digits")
        return ", ".join(" ".join(_cardinal(int(digit), language) for digit in group)
                         for group in groups)
    if kind == "fraction":
        found = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", written)
        if found is None:
            raise ValueError(f"{written!r} is not a fraction such as 3/4")
        if not language.english:
            raise ValueError(f"fractions are read in English only, not in {language.name}")
        return english_normalizer.normalize(f"{int(found[1])}/{int(found[2])}")
    if kind == "date":
        return _date(written, language, date_format or "ymd")
    if kind == "time":
        if not re.fullmatch(r"[0-9]{1,2}[:.][0-9]{2}(?:[:.][0-9]{2})?\s*(?:[AaPp]\.?[Mm]\.?)?",
                            written):
            raise ValueError(f"{written!r} is not a time such as 14:30 or 2:30pm")
        return english_normalizer.normalize(written) if language.english else \
            normalizers.normalize(written.replace(".", ":"), language)
    if not re.search(r"[0-9]", written):  # currency
        raise ValueError(f"{written!r} is not an amount such as $42.01 or 5 €")
    return english_normalizer.normalize(written) if language.english else \
        normalizers.normalize(written, language)


def _date(written: str, language: Language, date_format: str) -> str:
    if date_format not in _DATE_FORMATS:
        raise ValueError(f"format {date_format!r} is not known: use one of "
                         f"{', '.join(sorted(_DATE_FORMATS))}")
    parts = re.findall(r"[0-9]+", written)
    if len(parts) != len(date_format):
        raise ValueError(f"{written!r} does not have the {len(date_format)} numbers of format "
                         f"{date_format!r}")
    fields = dict(zip(date_format, map(int, parts), strict=True))
    try:
        datetime.date(fields.get("y", 2000), fields.get("m", 1), fields.get("d", 1))
    except ValueError as err:
        raise ValueError(f"{written!r} is not a date ({err})") from None
    if language.english:
        month = english_normalizer.MONTHS[fields["m"] - 1] if "m" in fields else ""
        day = _cardinal(fields["d"], language, "ordinal") if "d" in fields else ""
        year = english_normalizer.normalize(str(fields["y"])) if "y" in fields else ""
        spoken = " ".join(part for part in (month, day) if part)
        if year and spoken:
            return f"{spoken}, {year}"
        return spoken or year
    if len(fields) != 3:
        raise ValueError(f"in {language.name} a date is read with day, month and year only "
                         "(format dmy, mdy or ymd)")
    return normalizers.normalize(f"{fields['d']}/{fields['m']}/{fields['y']}", language)
