"""Timed synthesis through the scheduler: each chunk comes back with its own piece's words."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from tts_service.audio.word_timing import SpokenWord
from tts_service.language.front_end import FrontEnds, Utterance
from tts_service.language.languages import ENGLISH
from tts_service.language.sentences import Piece, split_pieces
from tts_service.synthesis.engine import Engine, OnSentence, Sentence
from tts_service.synthesis.scheduler import Scheduler
from tts_service.synthesis.synthesizer import SpokenPiece, Synthesizer, Voicing

SAMPLE_RATE_HZ = 24000
WORD_SAMPLES = 2400
TIMEOUT_S = 30


class FakeTimedEngine:
    """Speaks each sentence of its text as one chunk, every word 0.1 s, words timed.

    Texts holding "slow" take a while, so a later piece on another engine finishes first.
    """

    sample_rate_hz = SAMPLE_RATE_HZ
    times_words = True
    mixes_voices = False

    def speak(self, utterance: Utterance, speaker_id: int, speed: float,
              on_sentence: OnSentence, timed: bool, style: np.ndarray | None = None) -> None:
        text = utterance.text
        if "slow" in text:
            time.sleep(0.3)
        sentences = [s.split() for s in text.split(".") if s.split()]
        for k, words in enumerate(sentences):
            spoken = tuple(SpokenWord(i * WORD_SAMPLES, (i + 1) * WORD_SAMPLES, len(word))
                           for i, word in enumerate(words)) if timed else ()
            samples = np.zeros(len(words) * WORD_SAMPLES, dtype=np.float32)
            if not on_sentence(Sentence(samples, spoken, k == len(sentences) - 1)):
                return


def _voicing(timed: bool) -> Voicing:
    """As spoken by the real English front end, not normalized (the fake reads the text)."""
    return Voicing(0, 1.0, FrontEnds()[ENGLISH], normalize=False, timed=timed)


async def test_words_stay_with_their_own_chunk_when_pieces_run_in_parallel() -> None:
    engines: list[Engine] = [FakeTimedEngine(), FakeTimedEngine()]
    scheduler = Scheduler(engines, max_waiting=4, read_ahead_s=100.0)
    synthesizer = Synthesizer(scheduler, times_words=True)
    # Pieces as the servicer may hand them: the first, slow one has two sentences (two
    # chunks), the second finishes on the other engine first.
    parts = ["The first piece is slow to say. It has two sentences.", "Then a quick one.",
             "And one more piece, short."]
    text = " ".join(parts)
    pieces, at = [], 0
    for part in parts:
        at = text.index(part, at)
        pieces.append(Piece(at, at + len(part), part))

    async def collect() -> list[SpokenPiece]:
        return [spoken async for spoken in synthesizer.stream(pieces, _voicing(timed=True))
                if isinstance(spoken, SpokenPiece)]

    spoken = await asyncio.wait_for(collect(), TIMEOUT_S)
    await scheduler.close()
    assert [chunk.piece for chunk in spoken] == [pieces[0], *pieces]

    written = [text[span.start:span.end] for chunk in spoken for span in chunk.words]
    assert written == text.replace(".", " ").replace(",", " ").split()
    for chunk in spoken:
        piece = chunk.piece
        assert chunk.words, chunk
        assert len(chunk.samples) == len(chunk.words) * WORD_SAMPLES
        for span in chunk.words:
            assert piece.start <= span.start < span.end <= piece.end
            assert 0 <= span.start_sample < span.end_sample <= len(chunk.samples)


async def test_untimed_streams_carry_no_words() -> None:
    scheduler = Scheduler([FakeTimedEngine()], max_waiting=4, read_ahead_s=100.0)
    synthesizer = Synthesizer(scheduler, times_words=True)
    spoken = [s async for s in synthesizer.stream(split_pieces("One. Two."), _voicing(False))
              if isinstance(s, SpokenPiece)]
    await scheduler.close()
    assert spoken and not any(chunk.words for chunk in spoken)
