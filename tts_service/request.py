"""Checks a synthesis request as a whole and turns it into domain values, before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import audio
from .errors import InvalidRequest
from .text import Piece, SplitPolicy, split_pieces
from .voices import Voice, VoiceCatalog

MIN_SPEED, MAX_SPEED = 0.5, 2.0
# The API's names for the audio module's fields.
_PROTO_FIELDS = {"sample_rate_hz": "sample_rate_hertz", "gain_db": "volume_gain_db"}


@dataclass(frozen=True)
class Limits:
    max_text_chars: int
    split_policy: SplitPolicy = field(default_factory=SplitPolicy)


@dataclass(frozen=True)
class SynthesisSpec:
    """A valid request: what to say, how, and in which format."""

    text: str
    pieces: tuple[Piece, ...]
    voice: Voice
    speed: float
    encoding: audio.AudioEncoding
    sample_rate_hz: int
    volume_gain_db: float
    normalize: bool


def build_spec(*, text: str, voice: str, speed: float, encoding: audio.AudioEncoding | None,
               sample_rate_hz: int, volume_gain_db: float, normalize: bool, streaming: bool,
               catalog: VoiceCatalog, limits: Limits, model_rate_hz: int) -> SynthesisSpec:
    """Validates every field (unset ones take their defaults); raises InvalidRequest."""
    if not text.strip():
        raise InvalidRequest("text", "text is empty: give the words to speak")
    if len(text) > limits.max_text_chars:
        raise InvalidRequest(
            "text",
            f"text has {len(text)} characters; this server accepts at most "
            f"{limits.max_text_chars} per request: split it into several requests",
        )
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
    pieces = split_pieces(text, limits.split_policy)
    if not pieces:
        raise InvalidRequest("text", "text has no letters or digits to speak")
    return SynthesisSpec(
        text=text,
        pieces=tuple(pieces),
        voice=found,
        speed=speed,
        encoding=encoding,
        sample_rate_hz=rate,
        volume_gain_db=volume_gain_db,
        normalize=normalize,
    )
