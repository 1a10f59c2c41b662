"""Turns validated text into speech, piece by piece, on the engine pool."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .engine import Engine, Sentence, TimedEngine
from .engine_pool import EnginePool
from .text import Piece
from .word_timing import PieceTimer, TimedSpan


@dataclass(frozen=True)
class SpokenPiece:
    """Audio for (part of) one piece: float32 mono samples at the engine's rate.

    `words` (timed requests only) are the spans of the request text spoken in `samples`, in
    offsets of the whole request text and samples of this chunk.
    """

    piece: Piece
    samples: np.ndarray
    words: tuple[TimedSpan, ...] = ()


@dataclass
class _Job:
    """One request's engine work, shared by the event loop and the engine thread."""

    total: int
    done: int = 0  # pieces the engine has finished
    stop: threading.Event = field(default_factory=threading.Event)


_DONE = object()
_LOGGER = logging.getLogger(__name__)


class Synthesizer:
    """Runs one request's pieces on one engine and yields the audio as it is made."""

    def __init__(self, pool: EnginePool, normalize: Callable[[str], str],
                 respell: Callable[[str], str] = str, times_words: bool = False) -> None:
        self._pool = pool
        # Whether every engine can time words (stream(..., timed=True)).
        self.times_words = times_words
        # Applied per piece just before synthesis, in the engine thread: respellings (always,
        # they are the operator's pronunciations), then text normalization (when asked for).
        self._normalize = normalize
        self._respell = respell

    @property
    def sample_rate_hz(self) -> int:
        return self._pool.sample_rate_hz

    async def stream(self, pieces: Sequence[Piece], speaker_id: int, speed: float,
                     normalize: bool, timed: bool = False
                     ) -> AsyncGenerator[SpokenPiece, None]:
        """Yields each piece's audio as soon as the engine has made it.

        Closing the iterator early (client gone, deadline passed) makes the engine stop after
        its current sentence; the engine goes back to the pool only when its thread is done,
        so an abandoned request never holds an engine for the rest of its text.
        """
        engine = await self._pool.acquire()
        loop = asyncio.get_running_loop()
        ready: asyncio.Queue[object] = asyncio.Queue()
        job = _Job(total=len(pieces))

        def run() -> None:
            try:
                self._run(engine, pieces, speaker_id, speed, normalize, timed, job,
                          lambda item: loop.call_soon_threadsafe(ready.put_nowait, item))
            finally:
                loop.call_soon_threadsafe(ready.put_nowait, _DONE)

        def finished(work: asyncio.Future[None]) -> None:
            self._pool.release(engine)
            if job.stop.is_set():
                _LOGGER.info("synthesis stopped early: engine back in the pool after %d of %d "
                             "pieces", job.done, job.total)
                if not work.cancelled() and work.exception() is not None:
                    _LOGGER.warning("abandoned synthesis failed", exc_info=work.exception())

        work = loop.run_in_executor(self._pool.executor, run)
        work.add_done_callback(finished)
        completed = False
        try:
            while (item := await ready.get()) is not _DONE:
                assert isinstance(item, SpokenPiece)
                yield item
            completed = True
            await work  # re-raises what failed in the engine thread
        finally:
            if not completed:
                job.stop.set()

    def _run(self, engine: Engine, pieces: Sequence[Piece], speaker_id: int, speed: float,
             normalize: bool, timed: bool, job: _Job,
             emit: Callable[[SpokenPiece], object]) -> None:
        for piece in pieces:
            if job.stop.is_set():
                return
            text = self._respell(piece.text)
            if normalize:
                text = self._normalize(text)

            def on_chunk(samples: np.ndarray, piece: Piece = piece) -> bool:
                emit(SpokenPiece(piece, samples))
                return not job.stop.is_set()

            if timed:
                assert isinstance(engine, TimedEngine), "timed request on an untimed engine"
                engine.speak(text, speaker_id, speed,
                             _timed_emitter(piece, text, job, emit), timed=True)
            else:
                engine.generate(text, speaker_id, speed, on_chunk)
            job.done += 1


def _timed_emitter(piece: Piece, spoken_text: str, job: _Job,
                   emit: Callable[[SpokenPiece], object]) -> Callable[[Sentence], bool]:
    """Emits each sentence with the spans of the request text it speaks."""
    timer = PieceTimer(piece.text, spoken_text)

    def on_sentence(sentence: Sentence) -> bool:
        spans = tuple(
            TimedSpan(piece.start + span.start, piece.start + span.end, span.start_sample,
                      span.end_sample)
            for span in timer.take(sentence.words, sentence.last))
        emit(SpokenPiece(piece, sentence.samples, spans))
        return not job.stop.is_set()

    return on_sentence
