"""Hears speech in any of the service's languages with Whisper base (faster-whisper, CPU), and
scores it against the text: word error rate for alphabetic languages, character error rate of
the reading (kana for Japanese, toneless pinyin for Chinese, as Whisper writes traditional
characters) for the others."""

from __future__ import annotations

import functools
import re
import unicodedata

import jiwer
import numpy as np
import soxr

from tts_service.config import REPO_ROOT

# Joined from the two PyPI halves by `make whisper` (Makefile); never downloaded at run time.
MODEL_DIR = REPO_ROOT / "build" / "whisper-base"
_RATE_HZ = 16000


@functools.cache
def _model():  # type: ignore[no-untyped-def]
    from faster_whisper import WhisperModel

    if not (MODEL_DIR / "model.bin").exists():
        raise FileNotFoundError(f"{MODEL_DIR} has no Whisper model: run `make whisper`")
    return WhisperModel(str(MODEL_DIR), device="cpu", compute_type="int8", cpu_threads=2)


def hear(samples: np.ndarray, sample_rate_hz: int, language: str) -> str:
    """What Whisper hears in mono float audio, told the language (e.g. "fr") to expect."""
    audio = soxr.resample(samples.astype(np.float32), sample_rate_hz, _RATE_HZ)
    segments, _ = _model().transcribe(audio, language=language, beam_size=1,
                                      vad_filter=False, condition_on_previous_text=False)
    return " ".join(segment.text.strip() for segment in segments)


def _words(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)*", text))


def word_error_rate(reference: str, heard: str) -> float:
    return float(jiwer.wer(_words(reference), _words(heard) or "<nothing>"))


@functools.cache
def _tagger():  # type: ignore[no-untyped-def]
    import fugashi

    return fugashi.Tagger()


def kana(text: str) -> str:
    """Japanese text as its katakana reading (MeCab with unidic-lite), punctuation dropped."""
    reading = "".join(word.feature.kana or word.surface for word in _tagger()(text))
    return "".join(ch for ch in reading if "\u30a0" <= ch <= "\u30ff")


def pinyin(text: str) -> str:
    """Chinese text (simplified or traditional) as toneless pinyin syllables."""
    from pypinyin import lazy_pinyin

    return " ".join(syllable for syllable in lazy_pinyin(text) if syllable.isalpha()
                    and syllable.isascii())


def reading_error_rate(reference: str, heard: str, language: str) -> float:
    """Character error rate of the readings: kana (ja) or pinyin syllables (zh)."""
    if language == "ja":
        return float(jiwer.cer(kana(reference), kana(heard) or "-"))
    return float(jiwer.wer(pinyin(reference), pinyin(heard) or "-"))


def error_rate(reference: str, heard: str, language: str) -> float:
    """The error rate a language is judged by (see the module docstring)."""
    if language in ("ja", "zh"):
        return reading_error_rate(reference, heard, language)
    return word_error_rate(reference, heard)
