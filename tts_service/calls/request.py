"""Checks a synthesis request as a whole and turns it into domain values, before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tts_service.audio import encoding as audio
from tts_service.errors import InvalidRequest
from tts_service.language.front_end import FrontEnd, FrontEnds
from tts_service.language.languages import (
    BY_CODE,
    ENGLISH,
    LANGUAGES,
    Language,
    UnknownLanguage,
    resolve,
)
from tts_service.language.lexicon import (
    Overrides,
    allowed_symbols,
    check_phonemes,
    check_respelling,
    check_word,
)
from tts_service.language.sentences import (
    STREAMING_SPLIT,
    UNARY_SPLIT,
    Piece,
    SplitPolicy,
)
from tts_service.model.voices import Voice, VoiceCatalog

MIN_SPEED, MAX_SPEED = 0.5, 2.0
# A call's own pronunciations: enough for a document's names and jargon, few enough that the
# respelling pattern and the checks stay cheap for every request.
MAX_PRONUNCIATIONS = 100
MAX_WORD_CHARS = 64
MAX_RESPELLING_CHARS = 200  # also the most characters of a word's phonemes
# The request's names for the audio module's fields.
_AUDIO_FIELDS = {"gain_db": "volume_gain_db"}


@dataclass(frozen=True)
class Limits:
    max_text_chars: int
    stream_split: SplitPolicy = STREAMING_SPLIT
    unary_split: SplitPolicy = UNARY_SPLIT
    # Text streamed in pieces: the longest pause between two messages before the call ends,
    # and the longest any text waits for a certain sentence end (defaults: config.py).
    idle_timeout_s: float = 30.0
    max_wait_s: float = 2.0

    @property
    def max_request_bytes(self) -> int:
        """The largest request read (gRPC message or HTTP body): up to 4 bytes per allowed
        character of UTF-8, plus room for the other fields, so a hostile client cannot make
        the server buffer much more than the longest text."""
        return 4 * self.max_text_chars + 64 * 1024


@dataclass(frozen=True)
class AskedPronunciation:
    """How a caller asked one word of its text to be read, not yet checked: either a
    respelling (plain words) or phonemes (the model's symbols), whichever is not empty."""

    word: str
    respelling: str = ""
    phonemes: str = ""


@dataclass(frozen=True)
class AskedSettings:
    """How a caller asked to speak and encode, not yet checked; every front fills one in.

    The zero values (an empty voice, speed 0, no encoding, rate 0) mean the defaults.
    """

    voice: str = ""
    speed: float = 0.0
    encoding: audio.AudioEncoding | None = None
    sample_rate_hz: int = 0
    volume_gain_db: float = 0.0
    normalize: bool = True
    word_timings: bool = False
    language: str = ""  # a BCP-47 code; empty: the voice's own language
    pronunciations: tuple[AskedPronunciation, ...] = ()  # this call's, over the server's


@dataclass(frozen=True)
class SynthesisSettings:
    """How to speak and encode, validated: the same for every synthesis call."""

    voice: Voice
    speed: float
    encoding: audio.AudioEncoding
    sample_rate_hz: int
    volume_gain_db: float
    normalize: bool
    word_timings: bool
    front_end: FrontEnd  # how the text is cut and read: the voice's language unless asked


@dataclass(frozen=True)
class SynthesisSpec(SynthesisSettings):
    """A valid request: what to say, how, and in which format."""

    text: str
    pieces: tuple[Piece, ...]


def check_text_length(chars: int, limits: Limits) -> None:
    """Raises InvalidRequest when a call's text is over the limit."""
    if chars > limits.max_text_chars:
        raise InvalidRequest(
            "text",
            f"text has {chars} characters; this server accepts at most "
            f"{limits.max_text_chars} per call: split it into several calls",
        )


def check_text(text: str) -> None:
    """Raises InvalidRequest when text is not valid Unicode (a JSON string may hold a lone
    surrogate, which no engine can take): refused before any work."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidRequest(
            "text", f"text is not valid Unicode: character {err.start} is a lone surrogate "
            f"(U+{ord(text[err.start]):04X}); send the text as UTF-8") from None


def build_spec(text: str, asked: AskedSettings, *, streaming: bool, catalog: VoiceCatalog,
               front_ends: FrontEnds, limits: Limits, model_rate_hz: int, list_voices: str
               ) -> SynthesisSpec:
    """Validates every field (unset ones take their defaults); raises InvalidRequest.

    `list_voices` says how the caller can list the voices, for an unknown one.
    """
    if not text.strip():
        raise InvalidRequest("text", "text is empty: give the words to speak")
    check_text_length(len(text), limits)
    check_text(text)
    settings = build_settings(asked, streaming=streaming, catalog=catalog, front_ends=front_ends,
                              model_rate_hz=model_rate_hz, list_voices=list_voices)
    pieces = settings.front_end.pieces(text, limits.stream_split if streaming
                                       else limits.unary_split)
    if not pieces:
        raise InvalidRequest("text", "text has no letters or digits to speak")
    return SynthesisSpec(**vars(settings), text=text, pieces=tuple(pieces))


def build_settings(asked: AskedSettings, *, streaming: bool, catalog: VoiceCatalog,
                   front_ends: FrontEnds, model_rate_hz: int, list_voices: str
                   ) -> SynthesisSettings:
    """Validates the settings (unset ones take their defaults); raises InvalidRequest."""
    found = catalog.resolve(asked.voice, asked.language, list_voices)
    speed = asked.speed or 1.0
    if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
        raise InvalidRequest(
            "speed", f"speed {speed} is outside [{MIN_SPEED}, {MAX_SPEED}] (1.0 is natural; "
            "0 means 1.0)")
    encoding = asked.encoding
    if encoding is None:
        encoding = audio.AudioEncoding.PCM16 if streaming else audio.AudioEncoding.WAV
    rate = asked.sample_rate_hz or model_rate_hz
    try:
        audio.check_gain(asked.volume_gain_db)
        audio.check_format(encoding, rate)
    except audio.UnsupportedAudioError as err:
        raise InvalidRequest(_AUDIO_FIELDS.get(err.field, err.field), str(err)) from err
    return SynthesisSettings(
        voice=found,
        speed=speed,
        encoding=encoding,
        sample_rate_hz=rate,
        volume_gain_db=asked.volume_gain_db,
        normalize=asked.normalize,
        word_timings=asked.word_timings,
        front_end=_front_end(asked, found, front_ends),
    )


def _language(code: str, voice: Voice) -> Language:
    """The language asked for, else the voice's own (English for a voice of none)."""
    if not code:
        return BY_CODE.get(voice.language_code, ENGLISH)
    try:
        return resolve(code)
    except UnknownLanguage as err:
        raise InvalidRequest("language_code", str(err)) from err


def pronunciations_from_json(value: object) -> tuple[AskedPronunciation, ...]:
    """`pronunciations` as a JSON message carries it (the WebSocket's config message,
    Wyoming's event data): a list of {"word": ..., "respelling": ...} or {"word": ...,
    "phonemes": ...} objects, null or absent for none. Raises InvalidRequest naming the entry
    whose shape is wrong; what the values mean is checked by `check_pronunciations`."""
    if value is None:
        return ()
    shape = ('a list of {"word": ..., "respelling": ...} or {"word": ..., "phonemes": ...} '
             'objects')
    if not isinstance(value, list):
        raise InvalidRequest("pronunciations", f"pronunciations must be {shape}")
    entries = []
    for at, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"pronunciations[{at}]",
                                 f"pronunciations[{at}] is not an object: send {shape}")
        for name in ("word", "respelling", "phonemes"):
            if not isinstance(entry.get(name, ""), str | None):
                raise InvalidRequest(f"pronunciations[{at}].{name}",
                                     f"pronunciations[{at}].{name} must be a string")
        entries.append(AskedPronunciation(entry.get("word") or "", entry.get("respelling") or "",
                                          entry.get("phonemes") or ""))
    return tuple(entries)


def _front_end(asked: AskedSettings, voice: Voice, front_ends: FrontEnds) -> FrontEnd:
    """The front end of the call's language, with the call's pronunciations if it has any."""
    front_end = front_ends[_language(asked.language, voice)]
    if not asked.pronunciations:
        return front_end
    return front_end.with_pronunciations(
        check_pronunciations(asked.pronunciations, front_end, front_ends.symbols))


def check_pronunciations(asked: tuple[AskedPronunciation, ...], front_end: FrontEnd,
                         symbols: frozenset[str]) -> Overrides:
    """A call's pronunciations, checked by the lexicon file's rules plus the limits of a
    request; raises InvalidRequest naming the entry (pronunciations[i]) and what to fix. A word
    given twice keeps its last entry, as in the file."""
    if len(asked) > MAX_PRONUNCIATIONS:
        raise InvalidRequest(
            "pronunciations", f"pronunciations has {len(asked)} entries; this server accepts "
            f"at most {MAX_PRONUNCIATIONS} per call")
    checked = Overrides()
    for at, entry in enumerate(asked):
        field = f"pronunciations[{at}]"

        def refuse(part: str, problem: str, field: str = field) -> InvalidRequest:
            # The message names the entry too: Wyoming's error event has no field of its own.
            return InvalidRequest(f"{field}{part}", f"{field}{part}: {problem}")

        if len(entry.word) > MAX_WORD_CHARS:
            raise refuse(".word", f"the word has {len(entry.word)} characters; at most "
                         f"{MAX_WORD_CHARS}")
        if (problem := check_word(entry.word)) is not None:
            raise refuse(".word", problem)
        word = entry.word.lower()
        if bool(entry.respelling) == bool(entry.phonemes):
            raise refuse("", f"give {entry.word!r} either a respelling or phonemes (one of "
                         "the two, not empty)")
        given = entry.respelling or entry.phonemes
        part = ".respelling" if entry.respelling else ".phonemes"
        if len(given) > MAX_RESPELLING_CHARS:
            raise refuse(part, f"{part[1:]} of {entry.word!r} has {len(given)} characters; at "
                         f"most {MAX_RESPELLING_CHARS}")
        if entry.respelling:
            if (problem := check_respelling(entry.word, entry.respelling)) is not None:
                raise refuse(part, problem)
            checked.respellings[word] = entry.respelling
            checked.phonemes.pop(word, None)
            continue
        if not front_end.takes_phonemes:
            english = ", ".join(lang.code for lang in LANGUAGES if lang.english)
            raise refuse(part, f"phonemes for a word work in English only ({english}), not "
                         f"in {front_end.language.name} ({front_end.language.code}): give "
                         f"{entry.word!r} a respelling instead")
        phonemes, problem = check_phonemes(entry.word, entry.phonemes.split(), symbols)
        if problem is not None:
            raise refuse(part, f"{problem}; {allowed_symbols(symbols)}" if phonemes
                         else problem)
        checked.phonemes[word] = phonemes
        checked.respellings.pop(word, None)
    return checked
