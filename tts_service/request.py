"""Checks a synthesis request as a whole and turns it into domain values, before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import audio
from .errors import InvalidRequest
from .languages import BY_CODE, ENGLISH, Language, UnknownLanguage, resolve
from .text import STREAMING_SPLIT, UNARY_SPLIT, Piece, SplitPolicy, split_pieces
from .voices import Voice, VoiceCatalog

MIN_SPEED, MAX_SPEED = 0.5, 2.0
# The API's names for the audio module's fields.
_PROTO_FIELDS = {"sample_rate_hz": "sample_rate_hertz", "gain_db": "volume_gain_db"}


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
class SynthesisSettings:
    """How to speak and encode, validated: the same for every synthesis call."""

    voice: Voice
    speed: float
    encoding: audio.AudioEncoding
    sample_rate_hz: int
    volume_gain_db: float
    normalize: bool
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


def build_spec(*, text: str, voice: str, speed: float, encoding: audio.AudioEncoding | None,
               sample_rate_hz: int, volume_gain_db: float, normalize: bool, streaming: bool,
               catalog: VoiceCatalog, limits: Limits, model_rate_hz: int,
               language: str = "") -> SynthesisSpec:
    """Validates every field (unset ones take their defaults); raises InvalidRequest."""
    if not text.strip():
        raise InvalidRequest("text", "text is empty: give the words to speak")
    check_text_length(len(text), limits)
    settings = build_settings(voice=voice, speed=speed, encoding=encoding,
                              sample_rate_hz=sample_rate_hz, volume_gain_db=volume_gain_db,
                              normalize=normalize, streaming=streaming, catalog=catalog,
                              model_rate_hz=model_rate_hz, language=language)
    pieces = split_pieces(text, limits.stream_split if streaming else limits.unary_split)
    if not pieces:
        raise InvalidRequest("text", "text has no letters or digits to speak")
    return SynthesisSpec(**vars(settings), text=text, pieces=tuple(pieces))


def build_settings(*, voice: str, speed: float, encoding: audio.AudioEncoding | None,
                   sample_rate_hz: int, volume_gain_db: float, normalize: bool,
                   streaming: bool, catalog: VoiceCatalog, model_rate_hz: int,
                   language: str = "") -> SynthesisSettings:
    """Validates the settings (unset ones take their defaults); raises InvalidRequest."""
    found = catalog.get(voice)
    if found is None:
        raise InvalidRequest(
            "voice",
            f"unknown voice {voice!r}: ListVoices (or `tts-grpc-client --list-voices`) shows "
            f"the {len(catalog)} voices; e.g. {catalog.default!r}",
        )
    speed = speed or 1.0
    if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
        raise InvalidRequest(
            "speed", f"speed {speed} is outside [{MIN_SPEED}, {MAX_SPEED}] (1.0 is natural; "
            "0 means 1.0)")
    if encoding is None:
        encoding = audio.AudioEncoding.PCM16 if streaming else audio.AudioEncoding.WAV
    rate = sample_rate_hz or model_rate_hz
    try:
        audio.check_gain(volume_gain_db)
        audio.check_format(encoding, rate)
    except audio.UnsupportedAudioError as err:
        raise InvalidRequest(_PROTO_FIELDS.get(err.field, err.field), str(err)) from err
    return SynthesisSettings(
        voice=found,
        speed=speed,
        encoding=encoding,
        sample_rate_hz=rate,
        volume_gain_db=volume_gain_db,
        normalize=normalize,
        language=_language(language, found),
    )


def _language(code: str, voice: Voice) -> Language:
    """The language asked for, else the voice's own (English for a voice of none)."""
    if not code:
        return BY_CODE.get(voice.language_code, ENGLISH)
    try:
        return resolve(code)
    except UnknownLanguage as err:
        raise InvalidRequest("language_code", str(err)) from err
