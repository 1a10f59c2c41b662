"""Caption files (WebVTT or SRT) from a synthesis's word timings, cut into the same readable
cues the server's /dev/captioned_speech serves (tts_service/audio/captions.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tts_api.v1 import tts_pb2
from tts_service.audio.captions import FORMATS, WRITERS, Word, cues

__all__ = ["FORMATS", "caption_path", "write_captions"]


def caption_path(audio_path: Path, caption_format: str) -> Path:
    """The caption file that goes next to the audio: hello.wav -> hello.vtt."""
    return audio_path.with_suffix(f".{caption_format}")


def write_captions(text: str, words: Sequence[tts_pb2.WordTiming], path: Path,
                   caption_format: str) -> None:
    """Writes the cues of `text` to `path` (through a .part file, so a failure leaves no half
    file)."""
    timed = [Word(word.text_span.start_offset, word.text_span.end_offset, word.start_seconds,
                  word.end_seconds) for word in words]
    part = path.with_name(path.name + ".part")
    part.write_text(WRITERS[caption_format](cues(text, timed)), encoding="utf-8")
    os.replace(part, path)
