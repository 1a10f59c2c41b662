"""Text normalization heard through the recognizer: numbers, money, dates read as people do."""

from __future__ import annotations

import csv
from pathlib import Path

import jiwer
import pytest

from tts_api.v1 import tts_pb2, tts_pb2_grpc

from .speech import pcm16_to_float, transcribe, words

pytestmark = pytest.mark.model

SENTENCES_TSV = Path(__file__).parent / "data" / "normalization_sentences.tsv"
STEP_TIMEOUT_S = 120
# Normalization must remove at least this share of the recognizer's word errors.
MIN_RELATIVE_GAIN = 0.3
# Each sentence is synthesized twice at about twice real time on a shared 2-core machine; 32 of
# the file's sentences, spread over all of it, keep the test near ten minutes at worst.
SENTENCES_SPOKEN = 32


def _sentences() -> list[tuple[str, str]]:
    with SENTENCES_TSV.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(row["written"], row["spoken"]) for row in rows]


async def _heard(stub: tts_pb2_grpc.TextToSpeechStub, text: str, normalize: bool) -> str:
    request = tts_pb2.SynthesizeRequest(text=text, voice="af_bella", sample_rate_hertz=16000,
                                        encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
                                        normalize_text=normalize)
    response = await stub.Synthesize(request, timeout=STEP_TIMEOUT_S)
    return transcribe(pcm16_to_float(response.audio), 16000)


def test_the_sentence_set_is_large_and_full_of_things_to_normalize() -> None:
    sentences = _sentences()
    assert len(sentences) >= SENTENCES_SPOKEN >= 30
    assert all(any(c.isdigit() for c in written) or written.upper() != written.lower()
               for written, _ in sentences)
    assert sum(any(c.isdigit() for c in written) for written, _ in sentences) >= 25


@pytest.mark.timeout(1200)
async def test_normalization_lowers_the_word_error_rate(
        stub: tts_pb2_grpc.TextToSpeechStub) -> None:
    every = _sentences()
    sentences = [every[i * len(every) // SENTENCES_SPOKEN] for i in range(SENTENCES_SPOKEN)]
    references = [words(spoken) for _, spoken in sentences]
    heard: dict[bool, list[str]] = {True: [], False: []}
    for written, _ in sentences:
        for normalize in (True, False):
            heard[normalize].append(words(await _heard(stub, written, normalize)) or "<nothing>")
    # One corpus-level figure: errors over all reference words, as recognizers are scored.
    wer_on = float(jiwer.wer(references, heard[True]))
    wer_off = float(jiwer.wer(references, heard[False]))
    print(f"\nWER over {len(sentences)} sentences against the spoken form: "
          f"normalize_text on {wer_on:.3f}, off {wer_off:.3f}")
    assert wer_on < wer_off * (1 - MIN_RELATIVE_GAIN), (wer_on, wer_off)
    assert wer_on < 0.35
