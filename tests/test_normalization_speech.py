"""Text normalization heard through the recognizer: numbers, money, dates read as people do."""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
from pathlib import Path

import jiwer
import pytest

from harness.speech import pcm16_to_float, transcribe, words
from tts_api.v1 import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.model

SENTENCES_TSV = Path(__file__).parent / "data" / "normalization_sentences.tsv"
STEP_TIMEOUT_S = 120
# Normalization must remove at least this share of the recognizer's word errors.
MIN_RELATIVE_GAIN = 0.3
# Each sentence is synthesized twice and heard twice; 20 of the file's sentences, spread over
# all of it, keep the test under two minutes on 2 cores.
SENTENCES_SPOKEN = 20


def _sentences() -> list[tuple[str, str]]:
    with SENTENCES_TSV.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(row["written"], row["spoken"]) for row in rows]


async def _all_heard(stub: tts_pb2_grpc.TextToSpeechServiceStub, texts: list[str],
                     normalize: bool) -> list[str]:
    """Synthesizes each text and hears it back, recognizing one while the next is made."""
    loop = asyncio.get_running_loop()
    # Two calls in flight keep the engine busy without filling the server's waiting line;
    # one recognizer thread, since the pocketsphinx decoder is not shared across threads.
    in_flight = asyncio.Semaphore(2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as recognizer:
        async def heard(text: str) -> str:
            request = tts_pb2.SynthesizeRequest(text=text,
                                                config=tts_pb2.SynthesisConfig(voice="af_bella",
                                                                               sample_rate_hertz=16000,
                                                                               encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
                                                                               normalize_text=normalize))
            async with in_flight:
                response = await stub.Synthesize(request, timeout=STEP_TIMEOUT_S)
            return await loop.run_in_executor(
                recognizer, transcribe, pcm16_to_float(response.audio), 16000)

        return list(await asyncio.gather(*(heard(text) for text in texts)))


def test_the_sentence_set_is_large_and_full_of_things_to_normalize() -> None:
    sentences = _sentences()
    assert len(sentences) >= 30 and len(sentences) >= SENTENCES_SPOKEN >= 20
    assert all(any(c.isdigit() for c in written) or written.upper() != written.lower()
               for written, _ in sentences)
    assert sum(any(c.isdigit() for c in written) for written, _ in sentences) >= 25


@pytest.mark.timeout(1200)
async def test_normalization_lowers_the_word_error_rate(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    every = _sentences()
    sentences = [every[i * len(every) // SENTENCES_SPOKEN] for i in range(SENTENCES_SPOKEN)]
    references = [words(spoken) for _, spoken in sentences]
    heard = {
        normalize: [words(text) or "<nothing>" for text in
                    await _all_heard(stub, [written for written, _ in sentences], normalize)]
        for normalize in (True, False)
    }
    # One corpus-level figure: errors over all reference words, as recognizers are scored.
    wer_on = float(jiwer.wer(references, heard[True]))
    wer_off = float(jiwer.wer(references, heard[False]))
    print(f"\nWER over {len(sentences)} sentences against the spoken form: "
          f"normalize_text on {wer_on:.3f}, off {wer_off:.3f}")
    assert wer_on < wer_off * (1 - MIN_RELATIVE_GAIN), (wer_on, wer_off)
    assert wer_on < 0.35
