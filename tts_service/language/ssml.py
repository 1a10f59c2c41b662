"""SSML: the caller's markup read into what to say, how, and where to pause or mark.

`parse` reads a `<speak>` document (the elements Google documents for its voices) with a
hardened XML parser: a DTD, an entity declaration or an external reference is refused before
anything is expanded, and so is a document nested deeper than `MAX_DEPTH`. The result is pure
data in the caller's coordinates: every spoken run knows the code points of the source it
stands for, so word timings and marks point into the caller's SSML. Nothing here knows voices
or engines: a voice name is checked through the callback the caller passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from xml.parsers import expat

from defusedxml.common import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.expatreader import DefusedExpatParser

from tts_service.language import ipa, say_as
from tts_service.language.languages import Language, UnknownLanguage, resolve

MAX_DEPTH = 32  # elements inside each other; deeper documents are refused
MAX_BREAK_S = 10.0  # the longest <break>, as Google's voices allow
MAX_MARK_NAME_CHARS = 64


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
        raise SsmlError(f"the SSML is {len(source)} characters long: at most {max_source_chars} "
                        "are allowed")
    # A str from JSON may hold half of a UTF-16 pair, which no encoding can carry.
    if surrogate := _SURROGATE.search(source):
        raise SsmlError(f"{_where(source, surrogate.start())}: a lone surrogate "
                        f"(U+{ord(surrogate.group()):04X}) is not a character; send the text "
                        "as valid Unicode")
    return _Reader(source, language, symbols, check_voice).read()


_SURROGATE = re.compile("[\ud800-\udfff]")
_SSML_NAMESPACE = "http://www.w3.org/2001/10/synthesis"
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
# Each element and the attributes it takes (xml:lang is in the XML namespace).
_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "speak": ("xml:lang", "version"),
    "p": (),
    "s": (),
    "break": ("time", "strength"),
    "say-as": ("interpret-as", "format"),
    "sub": ("alias",),
    "phoneme": ("alphabet", "ph"),
    "prosody": ("rate", "volume"),
    "emphasis": ("level",),
    "lang": ("xml:lang",),
    "voice": ("name",),
    "mark": ("name",),
}
_PITCH = "cannot be changed: Kokoro has no pitch control (prosody takes rate and volume)"
_VOICE_BY_NAME = "is not supported: a voice is chosen by name, one of the server's voices"
# Attributes Google's voices take that this model cannot honour, and why.
_REFUSED = {
    ("prosody", "pitch"): _PITCH, ("prosody", "contour"): _PITCH, ("prosody", "range"): _PITCH,
    ("say-as", "detail"): "is not supported: the reading follows the language",
    ("voice", "gender"): _VOICE_BY_NAME, ("voice", "age"): _VOICE_BY_NAME,
    ("voice", "variant"): _VOICE_BY_NAME, ("voice", "languages"): _VOICE_BY_NAME,
}
_TEXT_ONLY = ("say-as", "sub", "phoneme")  # their text is read as a whole
_EMPTY = ("break", "mark")
_SENTENCES = ("p", "s")  # the sentence splitter cuts at the "\n" they begin and end with
_VERSIONS = ("1.0", "1.1")
# Seconds of silence for <break strength>; "none" (and 0 s) asks for no break at all.
BREAK_STRENGTHS_S = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.4, "strong": 0.7,
                     "x-strong": 1.0}
_BREAK_TIME = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|s)", re.IGNORECASE)
# <prosody rate>: times the enclosing rate; "default" is the call's own rate again.
RATES = {"x-slow": 0.7, "slow": 0.85, "medium": 1.0, "fast": 1.2, "x-fast": 1.4}
MIN_RATE, MAX_RATE = 0.5, 2.0  # of one <prosody rate>; the call's speed is checked with it later
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)%")
# <prosody volume>: dB added to the enclosing volume; "default" is the call's own volume again.
# The labels are Nuance Vocalizer's documented levels (Google's documentation gives none).
VOLUMES_DB = {"silent": -math.inf, "x-soft": -15.0, "soft": -6.0, "medium": 0.0, "loud": 3.0,
              "x-loud": 6.0}
MAX_VOLUME_CHANGE_DB = 40.0
_DECIBELS = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))dB", re.IGNORECASE)
# <emphasis level>: (times the rate, dB added); a slower, louder word sounds stressed.
EMPHASES = {"strong": (0.9, 3.0), "moderate": (0.95, 1.5), "reduced": (1.1, -3.0),
            "none": (1.0, 0.0)}
# Every white space character is one space, so plain text keeps its length: exact runs stay
# exact, character for character.
_FOLD = str.maketrans(dict.fromkeys("\t\n\r\x85\u2028\u2029", " "))
# defusedxml's own handlers, each raising before anything is declared or fetched.
_GUARD = DefusedExpatParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
_FORBIDDEN = {
    DTDForbidden: "a DOCTYPE is not allowed: SSML needs no DTD, and a DTD could declare entities",
    EntitiesForbidden: "entity declarations are not allowed",
    ExternalReferenceForbidden: "external references are not allowed",
}


def _where(source: str, at: int) -> str:
    """`at` (a code point offset) as a person finds it: line and column, from 1."""
    line_start = source.rfind("\n", 0, at) + 1
    return f"line {source.count(chr(10), 0, at) + 1}, column {at - line_start + 1}"


def _has_word(text: str) -> bool:
    return any(char.isalnum() for char in text)


@dataclass
class _Frame:
    """An open element: its name, where it starts (code points), the style of its content,
    and, for an element read as a whole (say-as, sub, phoneme), its text so far."""

    name: str
    at: int
    style: Style
    attributes: dict[str, str]
    chunks: list[Run] = field(default_factory=list)


class _Offsets:
    """Byte offsets of the UTF-8 source as code point offsets of the str, cheaply in order."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._byte = self._char = 0

    def char(self, byte: int) -> int:
        if byte < self._byte:
            self._byte = self._char = 0
        self._char += len(self._raw[self._byte:byte].decode("utf-8"))
        self._byte = byte
        return self._char


class _Reader:
    """One document, read by expat's events into items."""

    def __init__(self, source: str, language: Language, symbols: frozenset[str],
                 check_voice: Callable[[str], str | None]) -> None:
        self._source = source
        self._raw = source.encode("utf-8")
        self._language = language
        self._symbols = symbols
        self._check_voice = check_voice
        self._offsets = _Offsets(self._raw)
        self._items: list[Item] = []
        self._runs: list[Run] = []  # the Speech being gathered, in `_style`
        self._style: Style | None = None
        self._stack: list[_Frame] = []
        self._at_boundary = True  # a "\n" (or the start) ends what was said so far
        self._in_cdata = False
        # The encoding is ours, whatever the document declares: the offsets are of these bytes.
        parser = expat.ParserCreate(encoding="UTF-8", namespace_separator=" ")
        parser.buffer_text = False  # one event per text, newline and reference: exact offsets
        parser.StartDoctypeDeclHandler = _GUARD.defused_start_doctype_decl
        parser.EntityDeclHandler = _GUARD.defused_entity_decl
        parser.UnparsedEntityDeclHandler = _GUARD.defused_unparsed_entity_decl
        parser.ExternalEntityRefHandler = _GUARD.defused_external_entity_ref_handler
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.StartCdataSectionHandler = self._cdata_starts
        parser.EndCdataSectionHandler = self._cdata_ends
        # Comments and processing instructions are not spoken: expat skips them unhandled.
        self._parser = parser
        self._starts: dict[str, Callable[[_Frame], None]] = {
            "speak": self._start_speak, "lang": self._start_lang, "voice": self._start_voice,
            "p": self._sentence_starts, "s": self._sentence_starts, "break": self._start_break,
            "mark": self._start_mark, "prosody": self._start_prosody,
            "emphasis": self._start_emphasis, "say-as": self._start_say_as,
            "phoneme": self._start_phoneme}

    def read(self) -> Document:
        try:
            self._parser.Parse(self._raw, True)
        except expat.ExpatError as err:
            raise SsmlError(f"{self._where(self._parser.ErrorByteIndex)}: not well-formed XML: "
                            f"{expat.ErrorString(err.code)}") from err
        except DefusedXmlException as err:
            raise SsmlError(f"{self._where(self._parser.CurrentByteIndex)}: "
                            f"{_FORBIDDEN[type(err)]}") from err
        self._close()
        return Document(tuple(self._items))

    # --- Positions and errors

    def _here(self) -> int:
        return self._offsets.char(self._parser.CurrentByteIndex)

    def _where(self, byte: int) -> str:
        return _where(self._source, self._offsets.char(max(byte, 0)))

    def _error(self, element: str, at: int, problem: str) -> SsmlError:
        return SsmlError(f"<{element}> at {_where(self._source, at)}: {problem}")

    # --- What is said

    def _speak(self, run: Run, style: Style) -> None:
        if style != self._style:
            self._close()
            self._style = style
        if run.text.strip():
            self._at_boundary = False
        last = self._runs[-1] if self._runs else None
        if last is not None and last.exact and run.exact and last.end == run.start \
                and last.normalize and run.normalize and not last.phonemes and not run.phonemes:
            self._runs[-1] = Run(last.text + run.text, last.start, run.end)
        else:
            self._runs.append(run)

    def _close(self) -> None:
        """Ends the Speech being gathered; one with nothing to say (no letter, no digit, no
        phonemes: white space, punctuation, sentence ends) is dropped."""
        if any(run.phonemes or _has_word(run.text) for run in self._runs):
            assert self._style is not None
            self._items.append(Speech(self._style, tuple(self._runs)))
        self._runs = []
        self._style = None

    def _sentence_boundary(self, at: int, style: Style) -> None:
        # Only within a Speech: where one begins or ends, the text is cut anyway.
        if self._runs and style == self._style and not self._at_boundary:
            self._speak(Run("\n", at, at, exact=False), style)
        self._at_boundary = True

    # --- expat's events

    def _cdata_starts(self) -> None:
        self._in_cdata = True

    def _cdata_ends(self) -> None:
        self._in_cdata = False

    def _text(self, data: str) -> None:
        byte = self._parser.CurrentByteIndex
        if not self._in_cdata and self._raw[byte] == ord("&"):
            # An entity or character reference: its text stands for the whole reference.
            end_byte, exact = self._raw.index(b";", byte) + 1, False
        elif data == "\n" and self._raw[byte] == ord("\r"):
            # expat reads \r\n (or a lone \r) as one \n.
            end_byte, exact = byte + (2 if self._raw[byte + 1:byte + 2] == b"\n" else 1), True
        else:
            end_byte, exact = byte + len(data.encode("utf-8")), True
        start, end = self._offsets.char(byte), self._offsets.char(end_byte)
        text = (self._source[start:end] if exact else data).translate(_FOLD)
        run = Run(text, start, end, exact=exact)
        frame = self._stack[-1]
        if frame.name in _TEXT_ONLY:
            frame.chunks.append(run)
        elif frame.name in _EMPTY:
            if text.strip():
                raise self._error(frame.name, frame.at, "must be empty")
        else:
            self._speak(run, frame.style)

    def _start(self, tag: str, attributes: dict[str, str]) -> None:
        at = self._here()
        name = self._element(tag, at)
        if len(self._stack) >= MAX_DEPTH:
            raise self._error(name, at, f"is nested too deep: at most {MAX_DEPTH} elements may "
                                        "be inside each other")
        parent = self._stack[-1] if self._stack else None
        if (parent is None) != (name == "speak"):
            raise self._error(name, at, "<speak> is the root element, and the only one")
        if parent is not None and parent.name in _TEXT_ONLY:
            raise self._error(parent.name, parent.at, f"may contain only text, not <{name}>")
        if parent is not None and parent.name in _EMPTY:
            raise self._error(parent.name, parent.at, "must be empty")
        values = self._attributes(name, attributes, at)
        style = parent.style if parent is not None else Style(self._language)
        frame = _Frame(name, at, style, values)
        self._stack.append(frame)
        self._starts.get(name, self._start_other)(frame)

    def _end(self, _: str) -> None:
        frame = self._stack.pop()
        at = self._here()
        if frame.name in _SENTENCES:
            self._sentence_boundary(at, frame.style)
        elif frame.name in _TEXT_ONLY:
            self._read_whole(frame, at)

    # --- Elements and attributes

    def _element(self, tag: str, at: int) -> str:
        namespace, _, name = tag.rpartition(" ")
        if namespace not in ("", _SSML_NAMESPACE):
            raise self._error(name, at, f"is not an SSML element (namespace {namespace})")
        if name not in _ATTRIBUTES:
            raise self._error(name, at, "is not an element this server reads: use "
                              + ", ".join(f"<{known}>" for known in _ATTRIBUTES))
        return name

    def _attributes(self, element: str, attributes: dict[str, str], at: int) -> dict[str, str]:
        values = {}
        for qualified, value in attributes.items():
            namespace, _, local = qualified.rpartition(" ")
            attribute = {"": local, _XML_NAMESPACE: f"xml:{local}"}.get(namespace,
                                                                       f"{{{namespace}}}{local}")
            if (element, attribute) in _REFUSED:
                raise self._error(element, at, f"{attribute} {_REFUSED[element, attribute]}")
            allowed = _ATTRIBUTES[element]
            if attribute not in allowed:
                takes = ("takes " + ", ".join(allowed)) if allowed else "takes no attributes"
                raise self._error(element, at, f"has no attribute {attribute!r}: it {takes}")
            values[attribute] = value.strip()
        return values

    def _required(self, frame: _Frame, attribute: str) -> str:
        value = frame.attributes.get(attribute, "")
        if not value:
            raise self._error(frame.name, frame.at, f"needs a non-empty {attribute}")
        return value

    def _language_of(self, frame: _Frame) -> Language:
        try:
            return resolve(self._required(frame, "xml:lang"))
        except UnknownLanguage as err:
            raise self._error(frame.name, frame.at, str(err)) from err

    def _start_other(self, frame: _Frame) -> None:
        """An element whose start says nothing (<sub>: it is read at its end)."""

    def _start_speak(self, frame: _Frame) -> None:
        version = frame.attributes.get("version")
        if version is not None and version not in _VERSIONS:
            raise self._error("speak", frame.at, f"version {version!r} is not SSML's: use 1.0")
        if "xml:lang" in frame.attributes:
            frame.style = replace(frame.style, language=self._language_of(frame))

    def _start_lang(self, frame: _Frame) -> None:
        frame.style = replace(frame.style, language=self._language_of(frame))

    def _sentence_starts(self, frame: _Frame) -> None:
        self._sentence_boundary(frame.at, frame.style)

    def _start_voice(self, frame: _Frame) -> None:
        name = self._required(frame, "name")
        problem = self._check_voice(name)
        if problem is not None:
            raise self._error("voice", frame.at, problem)
        frame.style = replace(frame.style, voice=name)

    def _start_break(self, frame: _Frame) -> None:
        seconds = self._break_seconds(frame)
        # No break asked for: nothing to cut, so the speech goes on as one.
        if seconds > 0:
            self._close()
            self._items.append(Pause(seconds, frame.at))

    def _break_seconds(self, frame: _Frame) -> float:
        time = frame.attributes.get("time")
        if time is not None:  # time wins over strength, as in the SSML specification
            match = _BREAK_TIME.fullmatch(time)
            if match is None:
                raise self._error("break", frame.at, f"time {time!r} is not a duration: write "
                                  "it as 800ms or 1.5s")
            seconds = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
            if seconds > MAX_BREAK_S:
                raise self._error("break", frame.at, f"time {time!r} is too long: at most "
                                  f"{MAX_BREAK_S:g}s")
            return seconds
        strength = frame.attributes.get("strength", "medium")
        if strength not in BREAK_STRENGTHS_S:
            raise self._error("break", frame.at, f"strength {strength!r} is not one of "
                              + ", ".join(BREAK_STRENGTHS_S))
        return BREAK_STRENGTHS_S[strength]

    def _start_mark(self, frame: _Frame) -> None:
        name = self._required(frame, "name")
        if len(name) > MAX_MARK_NAME_CHARS:
            raise self._error("mark", frame.at, f"name is {len(name)} characters long: at most "
                              f"{MAX_MARK_NAME_CHARS}")
        self._close()
        self._items.append(MarkPoint(name, frame.at))

    def _start_prosody(self, frame: _Frame) -> None:
        rate, volume_db = frame.style.rate, frame.style.volume_db
        if (written := frame.attributes.get("rate")) is not None:
            rate = 1.0 if written == "default" else rate * self._rate(frame, written)
        if (written := frame.attributes.get("volume")) is not None:
            volume_db = 0.0 if written == "default" else volume_db + self._volume(frame, written)
        frame.style = replace(frame.style, rate=rate, volume_db=volume_db)

    def _rate(self, frame: _Frame, written: str) -> float:
        if written in RATES:
            return RATES[written]
        match = _PERCENT.fullmatch(written)
        if match is None:
            raise self._error("prosody", frame.at, f"rate {written!r} is not a rate: use a "
                              "percentage (80%), default or " + ", ".join(RATES))
        rate = float(match.group(1)) / 100
        if not MIN_RATE <= rate <= MAX_RATE:
            raise self._error("prosody", frame.at, f"rate {written!r} is out of range: from "
                              f"{MIN_RATE:.0%} to {MAX_RATE:.0%}")
        return rate

    def _volume(self, frame: _Frame, written: str) -> float:
        if written in VOLUMES_DB:
            return VOLUMES_DB[written]
        match = _DECIBELS.fullmatch(written)
        if match is None:
            raise self._error("prosody", frame.at, f"volume {written!r} is not a volume: use "
                              "+6dB, -3dB, default or " + ", ".join(VOLUMES_DB))
        change = float(match.group(1))
        if abs(change) > MAX_VOLUME_CHANGE_DB:
            raise self._error("prosody", frame.at, f"volume {written!r} is out of range: from "
                              f"-{MAX_VOLUME_CHANGE_DB:g}dB to +{MAX_VOLUME_CHANGE_DB:g}dB")
        return change

    def _start_emphasis(self, frame: _Frame) -> None:
        level = frame.attributes.get("level", "moderate")
        if level not in EMPHASES:
            raise self._error("emphasis", frame.at, f"level {level!r} is not one of "
                              + ", ".join(EMPHASES))
        rate, volume_db = EMPHASES[level]
        frame.style = replace(frame.style, rate=frame.style.rate * rate,
                              volume_db=frame.style.volume_db + volume_db)

    def _start_say_as(self, frame: _Frame) -> None:
        try:
            say_as.check(self._required(frame, "interpret-as"), frame.style.language,
                         frame.attributes.get("format", ""))
        except say_as.SayAsError as err:
            raise self._error("say-as", frame.at, str(err)) from err

    def _start_phoneme(self, frame: _Frame) -> None:
        alphabet = frame.attributes.get("alphabet", "ipa")
        if alphabet not in ipa.ALPHABETS:
            raise self._error("phoneme", frame.at, f"alphabet {alphabet!r} is not one of "
                              + ", ".join(ipa.ALPHABETS))
        self._required(frame, "ph")

    def _read_whole(self, frame: _Frame, end_at: int) -> None:
        """A say-as, sub or phoneme: one run for its whole text, whose source is the text
        between its tags without the white space around it."""
        chunks = frame.chunks
        start, end = (chunks[0].start, chunks[-1].end) if chunks else (end_at, end_at)
        while start < end and self._source[start].isspace():
            start += 1
        while end > start and self._source[end - 1].isspace():
            end -= 1
        written = "".join(chunk.text for chunk in chunks).strip()
        style = frame.style
        if frame.name == "sub":
            alias = " ".join(self._required(frame, "alias").split())
            self._speak(Run(alias, start, end, exact=False), style)
        elif frame.name == "say-as":
            try:
                words = say_as.read(frame.attributes["interpret-as"], written, style.language,
                                    frame.attributes.get("format", ""))
            except say_as.SayAsError as err:
                raise self._error("say-as", frame.at, str(err)) from err
            self._speak(Run(words, start, end, exact=False, normalize=False), style)
        else:
            if not written:
                raise self._error("phoneme", frame.at, "needs the written word it pronounces")
            ph = frame.attributes["ph"]
            try:
                if frame.attributes.get("alphabet", "ipa") == "ipa":
                    phonemes = ipa.from_ipa(ph, style.language, self._symbols)
                else:
                    phonemes = ipa.from_kokoro(ph, self._symbols)
            except ipa.PhonemeError as err:
                raise self._error("phoneme", frame.at, str(err)) from err
            exact = written == self._source[start:end].translate(_FOLD)
            self._speak(Run(written, start, end, exact=exact, phonemes=phonemes,
                            normalize=False), style)
