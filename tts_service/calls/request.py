"""Checks a synthesis request as a whole and turns it into domain values, before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tts_service.audio import encoding as audio
from tts_service.errors import InvalidRequest
from tts_service.language.languages import BY_CODE, ENGLISH, Language, UnknownLanguage, resolve
from tts_service.language.sentence_rules import rules_for
from tts_service.language.sentences import (
    STREAMING_SPLIT,
    UNARY_SPLIT,
    Piece,
    SplitPolicy,
    split_pieces,
)
from tts_service.model.voices import Voice, VoiceCatalog

MIN_SPEED, MAX_SPEED = 0.5, 2.0
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
    language: Language  # how the text is read: the voice's own unless asked


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
               limits: Limits, model_rate_hz: int, list_voices: str) -> SynthesisSpec:
    """Validates every field (unset ones take their defaults); raises InvalidRequest.

    `list_voices` says how the caller can list the voices, for an unknown one.
    """
    if not text.strip():
        raise InvalidRequest("text", "text is empty: give the words to speak")
    check_text_length(len(text), limits)
    check_text(text)
    settings = build_settings(asked, streaming=streaming, catalog=catalog,
                              model_rate_hz=model_rate_hz, list_voices=list_voices)
    pieces = split_pieces(text, limits.stream_split if streaming else limits.unary_split,
                          rules_for(settings.language))
    if not pieces:
        raise InvalidRequest("text", "text has no letters or digits to speak")
    return SynthesisSpec(**vars(settings), text=text, pieces=tuple(pieces))


def build_settings(asked: AskedSettings, *, streaming: bool, catalog: VoiceCatalog,
                   model_rate_hz: int, list_voices: str) -> SynthesisSettings:
    """Validates the settings (unset ones take their defaults); raises InvalidRequest."""
    found = catalog.get(asked.voice)
    if found is None:
        raise InvalidRequest(
            "voice",
            f"unknown voice {asked.voice!r}: {list_voices} shows the {len(catalog)} voices; "
            f"e.g. {catalog.default!r}",
        )
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
        language=_language(asked.language, found),
    )


def _language(code: str, voice: Voice) -> Language:
    """The language asked for, else the voice's own (English for a voice of none)."""
    if not code:
        return BY_CODE.get(voice.language_code, ENGLISH)
    try:
        return resolve(code)
    except UnknownLanguage as err:
        raise InvalidRequest("language_code", str(err)) from err
