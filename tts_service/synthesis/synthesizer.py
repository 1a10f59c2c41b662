"""Turns validated text into speech, piece by piece: each piece through its language's front end,
then from the audio cache or on the scheduler's engines.

A call's pieces are spoken with the call's `Voicing`, except the pieces SSML directs: a
`StyledPiece` brings its own (voice, speed, language, loudness, given phonemes) and a
`PausePiece` is silence; both may carry the caller's marks, timed where the audio reaches them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tts_service.audio.pauses import SILENCE_LEVEL
from tts_service.audio.word_timing import PieceTimer
from tts_service.language.front_end import FrontEnd, Utterance
from tts_service.language.sentences import Piece
from tts_service.language.ssml import Run
from tts_service.synthesis.audio_cache import AudioCache, AudioKey
from tts_service.synthesis.engine import Engine, Sentence, Style
from tts_service.synthesis.scheduler import ADMITTED, Admitted, OnChunk, Scheduler

M = TypeVar("M")
QUIET_KEPT_S = 0.03


@dataclass(frozen=True)
class WordSpan:
    """A word of the request: as written in the piece, where it stands in the caller's text
    (code points, `[start, end)`), and its samples in one chunk."""

    text: str
    start: int
    end: int
    start_sample: int
    end_sample: int


@dataclass(frozen=True)
class MarkAt:
    """A caller's mark (SSML `<mark>`): its name, its offset in the caller's text, and the
    sample of one chunk where the audio reaches it."""

    name: str
    at: int
    sample: int


@dataclass(frozen=True)
class SpokenPiece:
    """Audio for (part of) one piece: float32 mono samples at the engine's rate.

    `words` (timed requests only) are the words of the request spoken in `samples`; `marks`
    the caller's marks this chunk reaches.
    """

    piece: Piece
    samples: np.ndarray
    words: tuple[WordSpan, ...] = ()
    marks: tuple[MarkAt, ...] = ()


@dataclass(frozen=True)
class Voicing:
    """How a call's pieces are spoken (a StyledPiece's own, for SSML)."""

    speaker_id: int
    speed: float
    front_end: FrontEnd
    normalize: bool  # read numbers, amounts and dates as words first
    timed: bool  # each chunk carries the words it speaks
    style: Style | None = None  # a voice mixed per request: spoken instead of speaker_id's


@dataclass(frozen=True, eq=False, kw_only=True)
class DirectedPiece(Piece):
    """A piece of an SSML call: the marks (name, offset in the caller's text) reached just
    before and just after its audio."""

    marks_before: tuple[tuple[str, int], ...] = ()
    marks_after: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, eq=False, kw_only=True)
class StyledPiece(DirectedPiece):
    """Text SSML directs: `text` is what is read, `start`/`end` the part of the caller's text
    it stands for, `runs` the SSML runs it is made of (clipped to it: their texts joined are
    `text`) and `starts`/`ends` each of its characters' place in the caller's text."""

    voicing: Voicing
    gain_db: float
    runs: tuple[Run, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    # Beside a <break>, the model's own quiet at that edge goes, so the pause is as long as
    # asked (QUIET_KEPT_S of it stays, not to clip a fading sound).
    trim_start: bool = False
    trim_end: bool = False
    # Marks within its text: (name, offset in the caller's text, offset in `text`), reached
    # where the first word from that offset on starts (or, past the last word, at the end).
    marks_inside: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True, eq=False, kw_only=True)
class PausePiece(DirectedPiece):
    """An SSML `<break>`: this many samples of silence (at the engine's rate)."""

    samples: int


@dataclass(frozen=True, eq=False)
class _Prepared(Piece):
    """A piece through its front end: what the model gets, and its audio if remembered."""

    original: Piece  # as the caller's call cut it: what SpokenPiece names
    voicing: Voicing  # the call's, or the piece's own
    utterance: Utterance
    key: AudioKey
    made: tuple[Sentence, ...] | None


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
        # The words and marks of each started piece's chunks, in the order the chunks were
        # made. The scheduler hands a piece's chunks back in that same order, so each chunk
        # takes the first entry of its piece; keyed by identity, as the scheduler keeps the
        # very objects.
        timed: dict[int, deque[_Timed]] = {}
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
                    for samples in self._replay(piece, voicing, timed):
                        yield _spoken(piece, samples, timed[id(piece)].popleft())
                return
            source = self._prepared(ready, pieces[len(ready):], voicing)
        else:
            source = self._prepared([], pieces, voicing)

        def premade(piece: Piece) -> list[np.ndarray] | None:
            if isinstance(piece, _Prepared) and piece.made is not None:
                return self._replay(piece, voicing, timed)
            return None

        def say(engine: Engine, piece: Piece, on_chunk: OnChunk) -> None:  # an engine thread
            assert isinstance(piece, _Prepared)
            passed = _passing(piece, voicing.timed, timed.setdefault(id(piece), deque()),
                              on_chunk, self.sample_rate_hz)
            spoken = piece.voicing
            made: list[Sentence] = []

            def on_sentence(sentence: Sentence) -> bool:
                made.append(sentence)
                return passed(sentence)

            # Timed whenever the engines can, so that a remembered piece serves timed calls.
            engine.speak(piece.utterance, spoken.speaker_id, spoken.speed, on_sentence,
                         timed=self.times_words,
                         style=spoken.style.table if spoken.style is not None else None)
            if made and made[-1].last:  # said to the end, not stopped early
                self.cache.put(piece.key, made, timed=self.times_words)

        scheduled = self._scheduler.stream(source, say, announce, premade, whole)
        async with contextlib.aclosing(scheduled) as spoken:
            async for item in spoken:
                if not isinstance(item, tuple):
                    yield item
                    continue
                piece, samples = item
                assert isinstance(piece, _Prepared)
                yield _spoken(piece, samples, timed[id(piece)].popleft())

    async def _prepare(self, piece: Piece, voicing: Voicing) -> _Prepared:
        if isinstance(piece, PausePiece):  # silence: made already, never cached
            silence = Sentence(np.zeros(piece.samples, np.float32), (), last=True)
            return _Prepared(piece.start, piece.end, piece.text, piece, voicing,
                             Utterance("", ""), AudioKey("", -1, 0.0, ""), (silence,))
        if isinstance(piece, StyledPiece):
            voicing = piece.voicing
            # Off the event loop: G2P takes milliseconds, and seconds when it loads on first use.
            utterance = await asyncio.to_thread(voicing.front_end.utterance_of, piece.runs,
                                                voicing.normalize)
        else:
            utterance = await asyncio.to_thread(voicing.front_end.utterance, piece.text,
                                                voicing.normalize)
        key = AudioKey(utterance.phonemes, voicing.speaker_id, voicing.speed, self._model,
                       voicing.style.name if voicing.style is not None else "")
        return _Prepared(piece.start, piece.end, piece.text, piece, voicing, utterance, key,
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
                timed: dict[int, deque[_Timed]]) -> list[np.ndarray]:
        """A remembered piece's chunks, its words and marks queued as if an engine had just
        made them."""
        assert piece.made is not None
        chunks: list[np.ndarray] = []

        def keep(samples: np.ndarray) -> bool:
            chunks.append(samples)
            return True

        passed = _passing(piece, voicing.timed, timed.setdefault(id(piece), deque()), keep,
                          self.sample_rate_hz)
        for sentence in piece.made:
            passed(sentence)
        return chunks


# What each chunk of a piece carries besides its samples: its words and the marks it reaches.
_Timed = tuple[tuple[WordSpan, ...], tuple[MarkAt, ...]]


def _spoken(piece: _Prepared, samples: np.ndarray, timed: _Timed) -> SpokenPiece:
    """One chunk of a piece as the caller gets it, louder or softer if SSML asked."""
    original = piece.original
    if isinstance(original, StyledPiece) and original.gain_db:
        samples = samples * np.float32(10 ** (original.gain_db / 20))
    return SpokenPiece(original, samples, *timed)


def _source_span(piece: Piece, start: int, end: int) -> tuple[int, int]:
    """Where `piece.text[start:end]` stands in the caller's text."""
    if isinstance(piece, StyledPiece):
        return piece.starts[start], piece.ends[end - 1]
    return piece.start + start, piece.start + end


def _trimmed(samples: np.ndarray, rate_hz: int, start: bool, end: bool
             ) -> tuple[np.ndarray, int]:
    """`samples` without their quiet start and/or end (beyond QUIET_KEPT_S), and how many
    samples went from the start."""
    loud = np.flatnonzero(np.abs(samples) > SILENCE_LEVEL)
    if not (start or end) or not len(loud):
        return samples, 0
    kept = round(QUIET_KEPT_S * rate_hz)
    first = max(0, int(loud[0]) - kept) if start else 0
    last = min(len(samples), int(loud[-1]) + 1 + kept) if end else len(samples)
    return samples[first:last], first


def _passing(piece: _Prepared, timed: bool, queue: deque[_Timed], on_chunk: OnChunk,
             rate_hz: int) -> Callable[[Sentence], bool]:
    """Passes each sentence's samples on, its words (timed calls only) and marks queued first."""
    original = piece.original
    timer = PieceTimer(piece.text, piece.utterance.text)
    inside = list(original.marks_inside) if isinstance(original, StyledPiece) else []
    first = True

    def on_sentence(sentence: Sentence) -> bool:
        nonlocal first
        samples, cut = sentence.samples, 0
        if isinstance(original, StyledPiece):
            samples, cut = _trimmed(samples, rate_hz, first and original.trim_start,
                                    sentence.last and original.trim_end)
        # Marks inside the piece are timed by its words, even when the call is not.
        spans = timer.take(sentence.words, sentence.last) if timed or inside else []
        words = tuple(
            WordSpan(piece.text[span.start:span.end], *_source_span(original, span.start,
                                                                     span.end),
                     max(0, span.start_sample - cut),
                     min(len(samples), max(0, span.end_sample - cut)))
            for span in spans) if timed else ()
        marks: list[MarkAt] = []
        if isinstance(original, DirectedPiece):
            if first:
                marks += (MarkAt(name, at, 0) for name, at in original.marks_before)
            while inside:
                name, at, offset = inside[0]
                word = next((span for span in spans if span.start >= offset), None)
                if word is None and not sentence.last:
                    break  # its word is in a later sentence of the piece
                sample = len(samples) if word is None else max(0, word.start_sample - cut)
                marks.append(MarkAt(name, at, min(sample, len(samples))))
                inside.pop(0)
            if sentence.last:
                marks += (MarkAt(name, at, len(samples)) for name, at in original.marks_after)
        first = False
        queue.append((words, tuple(marks)))
        return on_chunk(samples)

    return on_sentence
