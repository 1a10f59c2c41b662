"""Turns validated text into speech, piece by piece, on the scheduler's engines."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tts_service.audio.word_timing import PieceTimer, TimedSpan
from tts_service.language.languages import ENGLISH, Language
from tts_service.language.sentences import Piece
from tts_service.synthesis.engine import Engine, OnChunk, Sentence, TimedEngine
from tts_service.synthesis.scheduler import Admitted, Scheduler

M = TypeVar("M")


@dataclass(frozen=True)
class SpokenPiece:
    """Audio for (part of) one piece: float32 mono samples at the engine's rate.

    `words` (timed requests only) are the spans of the request text spoken in `samples`, in
    offsets of the whole request text and samples of this chunk.
    """

    piece: Piece
    samples: np.ndarray
    words: tuple[TimedSpan, ...] = ()


class Synthesizer:
    """Says a request's pieces with its voice and speed; the scheduler picks the engines."""

    def __init__(self, scheduler: Scheduler, normalize: Callable[[str, Language], str],
                 respell: Callable[[str], str] = str, times_words: bool = False) -> None:
        self._scheduler = scheduler
        # Whether every engine can time words (stream(..., timed=True)).
        self.times_words = times_words
        # Applied per piece just before synthesis, in the engine thread: respellings (always on
        # English: they are the operator's English pronunciations), then text normalization in
        # the piece's language (when asked for).
        self._normalize = normalize
        self._respell = respell

    @property
    def sample_rate_hz(self) -> int:
        return self._scheduler.sample_rate_hz

    async def stream(self, pieces: Sequence[Piece] | AsyncIterable[Piece | M], speaker_id: int,
                     speed: float, normalize: bool, timed: bool = False, announce: bool = False,
                     language: Language = ENGLISH
                     ) -> AsyncGenerator[SpokenPiece | M | Admitted, None]:
        """Yields each piece's audio in text order, as soon as it is made.

        `pieces` may also arrive over time (an async iterable), with marks between them that
        come back once the audio before them has been yielded (Scheduler.stream). Closing the
        iterator early (client gone, deadline passed) stops every engine working for it after
        its current sentence, so an abandoned request never holds an engine for the rest of
        its text. With `timed`, each chunk carries the words it speaks; with `announce`,
        ADMITTED comes first, once the scheduler has admitted the request. The text is read
        as `language`.
        """
        # The words of each started piece's chunks, in the order the chunks were made. The
        # scheduler hands a piece's chunks back in that same order, so each chunk takes the
        # first entry of its piece; keyed by identity, as the scheduler keeps the very objects.
        words: dict[int, deque[tuple[TimedSpan, ...]]] = {}

        def say(engine: Engine, piece: Piece, on_chunk: OnChunk) -> None:
            text = self._respell(piece.text) if language.english else piece.text
            if normalize:
                text = self._normalize(text, language)
            if not timed:
                engine.generate(text, speaker_id, speed, on_chunk, language=language)
                return
            assert isinstance(engine, TimedEngine), "timed request on an untimed engine"
            engine.speak(text, speaker_id, speed,
                         _timed(piece, text, words.setdefault(id(piece), deque()), on_chunk),
                         timed=True, language=language)

        async with contextlib.aclosing(self._scheduler.stream(pieces, say, announce)) as spoken:
            async for item in spoken:
                if not isinstance(item, tuple):
                    yield item
                    continue
                piece, samples = item
                queued = words.get(id(piece))
                yield SpokenPiece(piece, samples, queued.popleft() if queued else ())


def _timed(piece: Piece, spoken_text: str, words: deque[tuple[TimedSpan, ...]],
           on_chunk: OnChunk) -> Callable[[Sentence], bool]:
    """Passes each sentence on, its words (spans of the request text) queued first."""
    timer = PieceTimer(piece.text, spoken_text)

    def on_sentence(sentence: Sentence) -> bool:
        words.append(tuple(
            TimedSpan(piece.start + span.start, piece.start + span.end, span.start_sample,
                      span.end_sample)
            for span in timer.take(sentence.words, sentence.last)))
        return on_chunk(sentence.samples)

    return on_sentence
