"""Checks a synthesis request as a whole and turns it into domain values, before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import audio
from .errors import InvalidRequest
from .text import STREAMING_SPLIT, UNARY_SPLIT, Piece, SplitPolicy, split_pieces
from .voices import Voice, VoiceCatalog

MIN_SPEED, MAX_SPEED = 0.5, 2.0


@dataclass(frozen=True)
class Limits:
    max_text_chars: int
    stream_split: SplitPolicy = STREAMING_SPLIT
    unary_split: SplitPolicy = UNARY_SPLIT


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
    if not math.isfinite(volume_gain_db) or not (
        audio.MIN_GAIN_DB <= volume_gain_db <= audio.MAX_GAIN_DB
    ):
        raise InvalidRequest(
            "volume_gain_db",
            f"volume_gain_db {volume_gain_db} is outside [{audio.MIN_GAIN_DB}, "
            f"{audio.MAX_GAIN_DB}] dB",
        )
    if encoding is None:
        encoding = audio.AudioEncoding.PCM16 if streaming else audio.AudioEncoding.WAV
    rate = sample_rate_hz or model_rate_hz
    try:
        audio.check_format(encoding, rate, streaming=streaming)
    except audio.UnsupportedAudioError as err:
        field = {"sample_rate_hz": "sample_rate_hertz"}.get(err.field, err.field)
        raise InvalidRequest(field, str(err)) from err
    pieces = split_pieces(text, limits.stream_split if streaming else limits.unary_split)
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
