"""Turns validated text into speech, piece by piece: each piece through its language's front end,
then from the audio cache or on the scheduler's engines."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tts_service.audio.word_timing import PieceTimer, TimedSpan
from tts_service.language.front_end import FrontEnd, Utterance
from tts_service.language.sentences import Piece
from tts_service.synthesis.audio_cache import AudioCache, AudioKey
from tts_service.synthesis.engine import Engine, Sentence, Style
from tts_service.synthesis.scheduler import ADMITTED, Admitted, OnChunk, Scheduler

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


@dataclass(frozen=True, eq=False)
class _Prepared(Piece):
    """A piece through its front end: what the model gets, and its audio if remembered."""

    original: Piece  # as the caller's call cut it: what SpokenPiece names
    utterance: Utterance
    key: AudioKey
    made: tuple[Sentence, ...] | None


@dataclass(frozen=True)
class Voicing:
    """How one call's pieces are spoken: the same for all of them."""

    speaker_id: int
    speed: float
    front_end: FrontEnd
    normalize: bool  # read numbers, amounts and dates as words first
    timed: bool  # each chunk carries the words it speaks
    style: Style | None = None  # a voice mixed per request: spoken instead of speaker_id's


class Synthesizer:
    """Says a request's pieces with its voice and speed: the front end makes each piece's
    tokens, the audio cache answers those it has heard, and the scheduler picks the engines
    for the rest."""

    def __init__(self, scheduler: Scheduler, cache: AudioCache | None = None,
                 model: str = "", times_words: bool = False, mixes_voices: bool = False
                 ) -> None:
        self._scheduler = scheduler
        self.cache = cache if cache is not None else AudioCache(0)
        self._model = model  # the model files and runtime: part of every cache key
        # Whether every engine can time words (stream(..., timed=True)).
        self.times_words = times_words
        # Whether every engine can speak a voice mixed per request (Voicing.style).
        self.mixes_voices = mixes_voices

    @property
    def sample_rate_hz(self) -> int:
        return self._scheduler.sample_rate_hz

    async def stream(self, pieces: Sequence[Piece] | AsyncIterable[Piece | M], voicing: Voicing,
                     announce: bool = False, whole: bool = False
                     ) -> AsyncGenerator[SpokenPiece | M | Admitted, None]:
        """Yields each piece's audio in text order, as soon as it is made.

        `pieces` may also arrive over time (an async iterable), with marks between them that
        come back once the audio before them has been yielded (Scheduler.stream). Closing the
        iterator early (client gone, deadline passed) stops every engine working for it after
        its current sentence, so an abandoned request never holds an engine for the rest of
        its text. With `announce`, ADMITTED comes first, once the scheduler has admitted the
        request. Text given whole whose every piece is remembered skips the scheduler: it
        needs no engine, so it neither queues nor is refused. `whole`: the caller waits for
        all the audio (Scheduler.stream).
        """
        # The words of each started piece's chunks, in the order the chunks were made. The
        # scheduler hands a piece's chunks back in that same order, so each chunk takes the
        # first entry of its piece; keyed by identity, as the scheduler keeps the very objects.
        words: dict[int, deque[tuple[TimedSpan, ...]]] = {}
        source: AsyncIterable[Piece | M]
        if isinstance(pieces, Sequence):
            ready: list[_Prepared] = []
            for piece in pieces:
                ready.append(await self._prepare(piece, voicing))
                if ready[-1].made is None:
                    break
            if len(ready) == len(pieces) and all(piece.made for piece in ready):
                if announce:
                    yield ADMITTED
                for piece in ready:
                    for samples in self._replay(piece, voicing, words):
                        yield SpokenPiece(piece.original, samples,
                                          words[id(piece)].popleft())
                return
            source = self._prepared(ready, pieces[len(ready):], voicing)
        else:
            source = self._prepared([], pieces, voicing)

        def premade(piece: Piece) -> list[np.ndarray] | None:
            if isinstance(piece, _Prepared) and piece.made is not None:
                return self._replay(piece, voicing, words)
            return None

        def say(engine: Engine, piece: Piece, on_chunk: OnChunk) -> None:  # an engine thread
            assert isinstance(piece, _Prepared)
            passed = _passing(piece, voicing.timed, words.setdefault(id(piece), deque()),
                              on_chunk)
            made: list[Sentence] = []

            def on_sentence(sentence: Sentence) -> bool:
                made.append(sentence)
                return passed(sentence)

            # Timed whenever the engines can, so that a remembered piece serves timed calls.
            engine.speak(piece.utterance, voicing.speaker_id, voicing.speed, on_sentence,
                         timed=self.times_words,
                         style=voicing.style.table if voicing.style is not None else None)
            if made and made[-1].last:  # said to the end, not stopped early
                self.cache.put(piece.key, made, timed=self.times_words)

        scheduled = self._scheduler.stream(source, say, announce, premade, whole)
        async with contextlib.aclosing(scheduled) as spoken:
            async for item in spoken:
                if not isinstance(item, tuple):
                    yield item
                    continue
                piece, samples = item
                queued = words.get(id(piece))
                original = piece.original if isinstance(piece, _Prepared) else piece
                yield SpokenPiece(original, samples, queued.popleft() if queued else ())

    async def _prepare(self, piece: Piece, voicing: Voicing) -> _Prepared:
        # Off the event loop: G2P takes milliseconds, and seconds when it loads on first use.
        utterance = await asyncio.to_thread(voicing.front_end.utterance, piece.text,
                                            voicing.normalize)
        key = AudioKey(utterance.phonemes, voicing.speaker_id, voicing.speed, self._model,
                       voicing.style.name if voicing.style is not None else "")
        return _Prepared(piece.start, piece.end, piece.text, piece, utterance, key,
                         self.cache.get(key, timed=voicing.timed))

    async def _prepared(self, ready: list[_Prepared], rest: Sequence[Piece] | AsyncIterable[
            Piece | M], voicing: Voicing) -> AsyncIterator[Piece | M]:
        """The pieces through the front end, one by one as they are needed; marks as they are."""
        for prepared in ready:
            yield prepared
        if isinstance(rest, Sequence):
            for each in rest:
                yield await self._prepare(each, voicing)
            return
        async for item in rest:
            yield await self._prepare(item, voicing) if isinstance(item, Piece) else item

    def _replay(self, piece: _Prepared, voicing: Voicing,
                words: dict[int, deque[tuple[TimedSpan, ...]]]) -> list[np.ndarray]:
        """A remembered piece's chunks, its words queued as if an engine had just made them."""
        assert piece.made is not None
        chunks: list[np.ndarray] = []

        def keep(samples: np.ndarray) -> bool:
            chunks.append(samples)
            return True

        passed = _passing(piece, voicing.timed, words.setdefault(id(piece), deque()), keep)
        for sentence in piece.made:
            passed(sentence)
        return chunks


def _passing(piece: _Prepared, timed: bool, words: deque[tuple[TimedSpan, ...]],
             on_chunk: OnChunk) -> Callable[[Sentence], bool]:
    """Passes each sentence's samples on, its words (spans of the request text) queued first
    (empty when the call is not timed)."""
    timer = PieceTimer(piece.text, piece.utterance.text)

    def on_sentence(sentence: Sentence) -> bool:
        words.append(tuple(
            TimedSpan(piece.start + span.start, piece.start + span.end, span.start_sample,
                      span.end_sample)
            for span in timer.take(sentence.words, sentence.last)) if timed else ())
        return on_chunk(sentence.samples)

    return on_sentence
