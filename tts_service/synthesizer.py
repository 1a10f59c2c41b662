"""Turns validated text into speech, piece by piece, on the scheduler's engines."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .engine import Engine, OnChunk
from .scheduler import Scheduler
from .text import Piece


@dataclass(frozen=True)
class SpokenPiece:
    """Audio for (part of) one piece: float32 mono samples at the engine's rate."""

    piece: Piece
    samples: np.ndarray


class Synthesizer:
    """Says a request's pieces with its voice and speed; the scheduler picks the engines."""

    def __init__(self, scheduler: Scheduler, normalize: Callable[[str], str],
                 respell: Callable[[str], str] = str) -> None:
        self._scheduler = scheduler
        # Applied per piece just before synthesis, in the engine thread: respellings (always,
        # they are the operator's pronunciations), then text normalization (when asked for).
        self._normalize = normalize
        self._respell = respell

    @property
    def sample_rate_hz(self) -> int:
        return self._scheduler.sample_rate_hz

    async def stream(self, pieces: Sequence[Piece] | AsyncIterable[Piece], speaker_id: int,
                     speed: float, normalize: bool) -> AsyncGenerator[SpokenPiece, None]:
        """Yields each piece's audio in text order, as soon as it is made.

        `pieces` may also arrive over time (an async iterable). Closing the iterator early
        (client gone, deadline passed) stops every engine working for it after its current
        sentence, so an abandoned request never holds an engine for the rest of its text.
        """
        def say(engine: Engine, piece: Piece, on_chunk: OnChunk) -> None:
            text = self._respell(piece.text)
            if normalize:
                text = self._normalize(text)
            engine.generate(text, speaker_id, speed, on_chunk)

        async with contextlib.aclosing(self._scheduler.stream(pieces, say)) as spoken:
            async for piece, samples in spoken:
                yield SpokenPiece(piece, samples)
