"""Caption files (WebVTT or SRT) from a synthesis's word timings: one cue per timed span."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import webvtt

from tts_api.v1 import tts_pb2

FORMATS = ("vtt", "srt")


def _timestamp(seconds: float) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"


def caption_path(audio_path: Path, caption_format: str) -> Path:
    """The caption file that goes next to the audio: hello.wav -> hello.vtt."""
    return audio_path.with_suffix(f".{caption_format}")


def write_captions(words: Sequence[tts_pb2.WordTiming], path: Path, caption_format: str) -> None:
    """Writes the cues to `path` (through a .part file, so a failure leaves no half file)."""
    captions = webvtt.WebVTT()
    for word in words:
        captions.captions.append(webvtt.Caption(start=_timestamp(word.start_seconds),
                                                end=_timestamp(word.end_seconds),
                                                text=word.text_span.text))
    part = path.with_name(path.name + ".part")
    with part.open("w", encoding="utf-8") as file:
        captions.write(file, format=caption_format)
    os.replace(part, path)
