"""Hears audio back with a speech recognizer (pocketsphinx), so tests can check the words."""

from __future__ import annotations

import functools
import re

import jiwer
import numpy as np
import soxr

_RECOGNIZER_RATE_HZ = 16000


@functools.lru_cache(maxsize=1)
def _decoder():  # type: ignore[no-untyped-def]
    from pocketsphinx import Decoder

    return Decoder(samprate=_RECOGNIZER_RATE_HZ, loglevel="FATAL")


def transcribe(samples: np.ndarray, sample_rate_hz: int) -> str:
    """The words pocketsphinx's US-English model hears in float or int16 mono audio."""
    audio = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
    audio = soxr.resample(audio.astype(np.float32), sample_rate_hz, _RECOGNIZER_RATE_HZ)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    decoder = _decoder()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def words(text: str) -> str:
    """Lowercase words only: what a recognizer's output can be compared with."""
    return " ".join(re.findall(r"[a-z']+", text.lower().replace("-", " ")))


def word_error_rate(reference: str, heard: str) -> float:
    return float(jiwer.wer(words(reference), words(heard) or "<nothing>"))


def pcm16_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def word_segments(samples: np.ndarray, sample_rate_hz: int) -> list[tuple[str, float, float]]:
    """The words pocketsphinx hears, each with its start and end in seconds (its own alignment).

    Fillers and silences (<s>, </s>, <sil>, [NOISE]) are left out; alternative pronunciations
    ("read(2)") are reported as the plain word.
    """
    audio = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
    audio = soxr.resample(audio.astype(np.float32), sample_rate_hz, _RECOGNIZER_RATE_HZ)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    decoder = _decoder()
    frames_per_s = int(decoder.config["frate"])
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    found = []
    for segment in decoder.seg():
        word = re.sub(r"\(\d+\)$", "", segment.word)
        if word.startswith(("<", "[")):
            continue
        found.append((word, segment.start_frame / frames_per_s,
                      (segment.end_frame + 1) / frames_per_s))
    return found
