"""Turns validated text into speech, piece by piece, on the engine pool."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .engine import Engine
from .engine_pool import EnginePool
from .text import Piece


@dataclass(frozen=True)
class SpokenPiece:
    """Audio for (part of) one piece: float32 mono samples at the engine's rate."""

    piece: Piece
    samples: np.ndarray


@dataclass
class _Job:
    """One request's engine work, shared by the event loop and the engine thread."""

    total: int  # pieces known so far (grows while pieces arrive over time)
    done: int = 0  # pieces the engine has finished
    stop: threading.Event = field(default_factory=threading.Event)


_DONE = object()
_LOGGER = logging.getLogger(__name__)


class Synthesizer:
    """Runs one request's pieces on one engine and yields the audio as it is made."""

    def __init__(self, pool: EnginePool, normalize: Callable[[str], str],
                 respell: Callable[[str], str] = str) -> None:
        self._pool = pool
        # Applied per piece just before synthesis, in the engine thread: respellings (always,
        # they are the operator's pronunciations), then text normalization (when asked for).
        self._normalize = normalize
        self._respell = respell

    @property
    def sample_rate_hz(self) -> int:
        return self._pool.sample_rate_hz

    async def stream(self, pieces: Sequence[Piece] | AsyncIterable[Piece], speaker_id: int,
                     speed: float, normalize: bool) -> AsyncGenerator[SpokenPiece, None]:
        """Yields each piece's audio as soon as the engine has made it.

        `pieces` is either all of them, or an async iterable of pieces arriving over time
        (text still being written): each is synthesized when it arrives, and the stream ends
        once the iterable has ended and its last piece is spoken (an error the iterable
        raises ends the stream with that error). The engine is held from the start to the
        end, also while waiting for pieces.

        Closing the iterator early (client gone, deadline passed) makes the engine stop after
        its current sentence; the engine goes back to the pool only when its thread is done,
        so an abandoned request never holds an engine for the rest of its text.
        """
        engine = await self._pool.acquire()
        loop = asyncio.get_running_loop()
        ready: asyncio.Queue[object] = asyncio.Queue()
        feeder: asyncio.Task[None] | None = None
        source: Iterable[Piece]
        if isinstance(pieces, AsyncIterable):
            job = _Job(total=0)
            arrived: queue.SimpleQueue[object] = queue.SimpleQueue()
            feeder = asyncio.ensure_future(_hand_over(pieces, arrived, job))
            # Blocks the engine thread until the next piece (or the end mark) arrives.
            source = iter(arrived.get, _DONE)  # type: ignore[arg-type]
        else:
            job = _Job(total=len(pieces))
            source = pieces

        def run() -> None:
            try:
                self._run(engine, source, speaker_id, speed, normalize, job,
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
            if feeder is not None:
                await feeder  # re-raises what failed while the pieces arrived
        finally:
            if not completed:
                job.stop.set()
            if feeder is not None:
                feeder.cancel()
                if not completed:
                    arrived.put(_DONE)  # wakes an engine thread waiting for the next piece

    def _run(self, engine: Engine, pieces: Iterable[Piece], speaker_id: int, speed: float,
             normalize: bool, job: _Job, emit: Callable[[SpokenPiece], object]) -> None:
        for piece in pieces:
            if job.stop.is_set():
                return
            text = self._respell(piece.text)
            if normalize:
                text = self._normalize(text)

            def on_chunk(samples: np.ndarray, piece: Piece = piece) -> bool:
                emit(SpokenPiece(piece, samples))
                return not job.stop.is_set()

            engine.generate(text, speaker_id, speed, on_chunk)
            job.done += 1


async def _hand_over(pieces: AsyncIterable[Piece], arrived: queue.SimpleQueue[object],
                     job: _Job) -> None:
    """Passes pieces arriving on the event loop to the engine thread, then the end mark."""
    try:
        async for piece in pieces:
            job.total += 1
            arrived.put(piece)
    finally:
        arrived.put(_DONE)
