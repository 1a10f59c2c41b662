"""Runs requests' pieces, not whole requests, on a fixed pool of engines.

Each engine synthesizes one piece at a time in its own thread. Every time an engine is free it
takes the next piece of the request with the fewest pieces running, the one served least
recently first (round robin per piece). So a new request's first piece starts as soon as any
engine finishes its current piece: within one piece-time, whatever else is running. Round
robin rather than shortest-first or earliest-deadline: it needs no estimate of piece cost,
never starves a long text, and gives a newcomer the next engine anyway because it has nothing
running yet. Without a solo engine a lone request gets every engine, its pieces made in
parallel.

An optional solo engine, with a thread per core, serves a lone request: while no other request
has a piece running or ready to run, the lone request's pieces run on it one at a time, in text
order, and nothing else runs beside it. Each piece is then made as fast as the machine allows
and handed back as soon as it is done, while the next one starts: the first audio comes as
early as from one engine with every core, and later pieces never hold it back (made side by
side on single-thread engines, two pieces each take a lone core's time, so the first audio came
about when both were done). With two or more requests at work the single-thread engines take
every piece, as above: they share the cores without oversubscribing them (two busy multi-thread
engines take cores from each other), and the solo engine starts nothing. A newcomer waits at
most for the piece on the solo engine, the fastest piece-time there is; then both requests go
to the single-thread engines. When one is left alone again, its next piece goes back to the
solo engine once its pieces still running on the single-thread engines are done (a piece never
runs beside the solo engine's threads). A request whose consumer waits for all its audio (a
unary call) has no first audio to hurry: alone, its pieces are made side by side on the
single-thread engines, which ends it sooner, and only a piece left alone takes the solo engine.

Admission (the one rule, for every front): a call is admitted when the scheduler is open and
either an engine would start its first piece right now (while the solo engine runs, none is
free) or fewer than `max_waiting` admitted calls are waiting for their first engine; otherwise
it is refused at once with a retry hint. A call holds its admission for its whole life: text
that arrives over time (a live call) is fed into the same request, across flushes and pauses.

An engine whose synthesis fails (EngineFailure) leaves the rotation at once, so it cannot take
the next piece; it is rebuilt in its own thread and comes back if that works. Calls admitted
meanwhile wait for it like for a busy engine. With no engine left that works or is being
rebuilt, every call is refused as unavailable, and the owner is told (health).

A request's audio is handed back strictly in text order. A request stops being scheduled once
it holds more than `read_ahead_s` seconds of audio its consumer has not read, and resumes as
the consumer reads: a slow reader costs bounded memory, and its engines serve others meanwhile.
Marks (anything that is not a Piece) may be fed between pieces; each is handed back once all
the audio of the pieces before it has been read, which is how a live call learns that a
flush has been spoken.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from tts_service.errors import NotReady, Overloaded
from tts_service.language.sentences import Piece
from tts_service.synthesis.engine import Engine, EngineFailure

_LOGGER = logging.getLogger(__name__)

# Called with each chunk of a piece's audio (float32 mono samples, owned by the scheduler
# afterwards), in the engine's thread; returns False to stop after that chunk.
OnChunk = Callable[[np.ndarray], bool]
# Runs in an engine thread: synthesizes one piece on the engine, calling on_chunk per chunk.
PieceWork = Callable[[Engine, Piece, OnChunk], None]
# A piece's audio if it is already made (remembered), else None: such a piece takes no engine.
Premade = Callable[[Piece], Sequence[np.ndarray] | None]
# Loads a fresh engine for a position in the pool, in an engine thread (warmed up, ready).
Rebuild = Callable[[int], Engine]
M = TypeVar("M")
_NO_ENGINE = ("no engine is working (each failed and could not be rebuilt; the server log says "
              "why): retry on another instance")


class Admitted(Enum):
    """What `stream(..., announce=True)` yields first, once the request is admitted."""

    ADMITTED = "admitted"


ADMITTED = Admitted.ADMITTED


@dataclass(eq=False)
class _Slot:
    """A started piece: its audio chunks wait here until the consumer reads them."""

    piece: Piece
    chunks: deque[np.ndarray] = field(default_factory=deque)
    done: bool = False
    error: BaseException | None = None


def _none_premade(piece: Piece) -> None:
    return None


@dataclass(eq=False)
class _Request:
    work: PieceWork
    arrived: float
    premade: Premade = _none_premade
    whole: bool = False  # its consumer waits for all its audio
    pending: deque[Piece] = field(default_factory=deque)  # not started yet, in text order
    slots: deque[_Slot] = field(default_factory=deque)  # started, not yet read to the end
    marks: deque[tuple[int, object]] = field(default_factory=deque)  # (pieces before, mark)
    fed: int = 0  # pieces received so far
    read: int = 0  # pieces whose audio has been read to the end
    input_done: bool = False  # no more pieces will arrive
    input_error: BaseException | None = None
    refused: BaseException | None = None  # no engine is left to make its pieces
    running: int = 0
    started: int = 0
    done: int = 0  # pieces whose engine work has ended
    total: int = 0  # pieces it had when it was abandoned
    last_served: float = float("-inf")
    unread_s: float = 0.0
    ready_since: float | None = None  # since when its next piece could run but waits
    abandoned: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def schedulable(self, read_ahead_s: float) -> bool:
        return (not self.abandoned and bool(self.pending) and self.unread_s < read_ahead_s
                and not any(slot.error for slot in self.slots))

    @property
    def finished(self) -> bool:
        return self.input_done and not self.pending and not self.slots and not self.marks


class Scheduler:
    """Shares engines between requests piece by piece; refuses callers past `max_waiting`.

    `waiting` counts requests that have a piece to run but none started yet (the queue the
    RESOURCE_EXHAUSTED limit applies to); `busy` counts engines synthesizing right now.
    Engines are known by their position: the pool's in order, then the solo engine.
    """

    def __init__(self, engines: Sequence[Engine], max_waiting: int, read_ahead_s: float,
                 on_queue_wait: Callable[[float], object] = lambda _: None,
                 solo: Engine | None = None, rebuild: Rebuild | None = None,
                 on_engine_failed: Callable[[int], object] = lambda _: None,
                 on_no_engine_left: Callable[[], object] = lambda: None) -> None:
        if not engines:
            raise ValueError("a scheduler needs at least one engine")
        self._engines: list[Engine] = [*engines, *([solo] if solo is not None else [])]
        self._solo = len(engines) if solo is not None else None
        self.size = len(self._engines)
        self.max_waiting = max_waiting
        self.read_ahead_s = read_ahead_s
        self.sample_rate_hz = engines[0].sample_rate_hz
        self._on_queue_wait = on_queue_wait
        self._rebuild = rebuild
        self._on_engine_failed = on_engine_failed
        self._on_no_engine_left = on_no_engine_left
        # Idle engines are taken in pool order, so the same few stay warm under light load.
        self._idle: list[int] = list(range(self.size))
        self._out: set[int] = set()  # out of rotation: failed (being rebuilt, or gone)
        self._rebuilding: set[int] = set()
        self.failures = [0] * self.size  # failed syntheses per engine position
        self._requests: list[_Request] = []
        self._working: set[asyncio.Future[Any]] = set()  # engine threads' work in flight
        self._closed = False
        # One synthesis thread per engine: sherpa-onnx releases the GIL while it computes.
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.size, thread_name_prefix="engine")

    @property
    def engines(self) -> tuple[Engine, ...]:
        """Every engine it runs pieces on, the solo engine last."""
        return tuple(self._engines)

    @property
    def in_rotation(self) -> int:
        """Engines that take pieces: all but the failed ones."""
        return self.size - len(self._out)

    @property
    def working(self) -> int:
        """Engines in rotation or being rebuilt: 0 means no call can be served."""
        return self.in_rotation + len(self._rebuilding)

    @property
    def busy(self) -> int:
        return self.in_rotation - len(self._idle)

    @property
    def waiting(self) -> int:
        return sum(1 for r in self._requests
                   if not r.abandoned and r.started == 0 and r.pending)

    @property
    def unread_audio_s(self) -> float:
        """Audio made but not yet read by its consumer, over all requests."""
        return sum(r.unread_s for r in self._requests)

    def _admit(self) -> None:
        """The admission rule (module docstring); raises NotReady or Overloaded."""
        if self._closed:
            raise NotReady("the server is shutting down; retry on another instance")
        if self.working == 0:
            raise NotReady(_NO_ENGINE)
        if self._engine_for(newcomer=True) is None and self.waiting >= self.max_waiting:
            raise Overloaded(
                f"every engine is busy and {self.waiting} requests are already "
                "waiting; retry in a few seconds",
                retry_after_s=2.0,
            )

    async def stream(self, pieces: Sequence[Piece] | AsyncIterable[Piece | M], work: PieceWork,
                     announce: bool = False, premade: Premade = _none_premade,
                     whole: bool = False
                     ) -> AsyncGenerator[tuple[Piece, np.ndarray] | M | Admitted, None]:
        """Yields (piece, samples) in text order as the engines make them, and each mark fed
        between pieces once the audio before it has been read. With `announce`, ADMITTED
        comes first, as soon as the request is admitted (before any piece is needed). A piece
        whose audio `premade` has takes no engine: it is handed back in its turn. A `whole`
        request is one whose consumer waits for all its audio (a unary call): alone, its
        pieces are made side by side on the single-thread engines, the last one on the solo
        engine, which ends it sooner than one at a time.

        Closing the iterator early (client gone, deadline passed) drops the pieces not yet
        started and makes running ones stop after their current sentence; each engine goes
        back to the pool when its thread is done. An error of the piece source is raised
        after the audio of the pieces it gave.
        """
        self._admit()
        request = _Request(work=work, arrived=time.monotonic(), premade=premade, whole=whole)
        self._requests.append(request)
        feeder = None
        if isinstance(pieces, Sequence):
            request.pending.extend(pieces)
            request.fed = len(pieces)
            request.input_done = True
        else:
            feeder = asyncio.create_task(self._feed(request, pieces))
        self._dispatch()
        completed = False
        try:
            if announce:
                yield ADMITTED
            while True:
                if request.refused is not None and not request.slots:
                    raise request.refused
                if request.marks and request.marks[0][0] == request.read:
                    yield request.marks.popleft()[1]  # type: ignore[misc]
                    continue
                if request.slots:
                    head = request.slots[0]
                    if head.chunks:
                        samples = head.chunks.popleft()
                        request.unread_s -= len(samples) / self.sample_rate_hz
                        self._dispatch()  # reading may have let it under the read-ahead bound
                        yield head.piece, samples
                        continue
                    if head.error is not None:
                        raise head.error
                    if head.done:
                        request.slots.popleft()
                        request.read += 1
                        continue
                elif request.input_error is not None and not request.pending:
                    raise request.input_error
                elif request.finished:
                    break
                request.changed.clear()
                await request.changed.wait()
            completed = True
        finally:
            if feeder is not None:
                feeder.cancel()
            self._abandon(request, completed)

    async def _feed(self, request: _Request, pieces: AsyncIterable[Piece | M]) -> None:
        try:
            async for item in pieces:
                if isinstance(item, Piece):
                    request.pending.append(item)
                    request.fed += 1
                    self._dispatch()
                else:
                    request.marks.append((request.fed, item))
                    request.changed.set()
        except Exception as error:  # handed to the consumer, in order after the audio
            request.input_error = error
        finally:
            request.input_done = True
            request.changed.set()

    def _abandon(self, request: _Request, completed: bool) -> None:
        request.abandoned = True
        if not completed:
            request.stop.set()
            request.total = request.started + len(request.pending)
        request.pending.clear()
        request.slots.clear()
        request.marks.clear()
        request.unread_s = 0.0
        if request.running == 0:
            self._forget(request)

    def _forget(self, request: _Request) -> None:
        if request.stop.is_set():
            _LOGGER.info("synthesis stopped early: engine back in the pool after %d of %d "
                         "pieces", request.done, request.total)
        self._requests.remove(request)
        self._dispatch()

    def _dispatch(self) -> None:
        """Gives idle engines to the pieces that should run next (see the module docstring)."""
        now = time.monotonic()
        candidates = []
        for request in self._requests:
            self._take_premade(request)
            if request.schedulable(self.read_ahead_s):
                if request.ready_since is None:
                    request.ready_since = now
                candidates.append(request)
            else:
                request.ready_since = None
        while candidates:
            engine = self._engine_for()
            if engine is None:
                break
            request = min(candidates, key=lambda r: (r.running, r.last_served))
            self._idle.remove(engine)
            self._start(request, engine, now)
            if not request.schedulable(self.read_ahead_s):
                candidates.remove(request)

    def _take_premade(self, request: _Request) -> None:
        """Hands back the pieces at the head of its queue whose audio is already made."""
        while (not request.abandoned and request.pending
               and (chunks := request.premade(request.pending[0])) is not None):
            slot = _Slot(request.pending.popleft(), deque(chunks), done=True)
            request.slots.append(slot)
            request.started += 1
            request.done += 1
            request.unread_s += sum(len(chunk) for chunk in chunks) / self.sample_rate_hz
            request.changed.set()

    def _engine_for(self, newcomer: bool = False) -> int | None:
        """The engine the next piece should take, or None if it must wait; `newcomer`: for
        the first piece of a request not yet admitted."""
        solo = self._solo
        if solo is not None and solo not in self._out:
            if solo not in self._idle:
                return None  # it has every core to itself
            if all(i == solo or i in self._out for i in range(self.size)):
                return solo  # the only engine left
            at_work = self._at_work()
            if len(at_work) + newcomer == 1 and not (
                    at_work and at_work[0].whole
                    and len(at_work[0].pending) + at_work[0].running > 1):
                # A lone request: its pieces one at a time on the solo engine, so nothing may
                # run beside it. A piece of its own still running on a pool engine (it was not
                # alone when that started) is waited for rather than joined. A lone whole
                # request with several pieces left is no first audio to hurry: its pieces go
                # side by side to the single-thread engines, which end it sooner.
                return solo if self.busy == 0 else None
        idle = [engine for engine in self._idle if engine != solo]
        return min(idle) if idle else None

    def _at_work(self) -> list[_Request]:
        """Requests that have a piece running, or one that could start now."""
        return [r for r in self._requests if r.running or r.schedulable(self.read_ahead_s)]

    def _start(self, request: _Request, engine: int, now: float) -> None:
        slot = _Slot(request.pending.popleft())
        request.slots.append(slot)
        request.running += 1
        request.started += 1
        request.last_served = now
        assert request.ready_since is not None
        self._on_queue_wait(now - request.ready_since)
        request.ready_since = now if request.pending else None
        loop = asyncio.get_running_loop()
        instance = self._engines[engine]

        def on_chunk(samples: np.ndarray) -> bool:  # in the engine thread
            loop.call_soon_threadsafe(self._chunk_made, request, slot, samples)
            return not request.stop.is_set()

        def run() -> None:
            if not request.stop.is_set():
                request.work(instance, slot.piece, on_chunk)

        work = loop.run_in_executor(self.executor, run)
        self._working.add(work)
        work.add_done_callback(lambda done: self._piece_done(request, slot, engine, done))

    def _chunk_made(self, request: _Request, slot: _Slot, samples: np.ndarray) -> None:
        if request.abandoned:
            return
        slot.chunks.append(samples)
        request.unread_s += len(samples) / self.sample_rate_hz
        request.changed.set()

    def _piece_done(self, request: _Request, slot: _Slot, engine: int,
                    done: asyncio.Future[None]) -> None:
        self._working.discard(done)
        request.running -= 1
        request.done += 1
        slot.done = True
        error = None if done.cancelled() else done.exception()
        if isinstance(error, EngineFailure):
            self._take_out(engine, error)
        else:
            self._idle.append(engine)
        if error is not None:
            if request.abandoned:
                _LOGGER.warning("abandoned synthesis failed", exc_info=error)
            slot.error = error
        request.changed.set()
        if request.abandoned and request.running == 0:
            self._forget(request)
        else:
            self._dispatch()

    def _take_out(self, engine: int, error: BaseException) -> None:
        """Takes a failed engine out of rotation and starts rebuilding it."""
        self.failures[engine] += 1
        self._out.add(engine)
        self._on_engine_failed(engine)
        rebuilding = self._rebuild is not None and not self._closed
        _LOGGER.error("engine %d failed (%s): out of rotation%s; %d of %d engines in rotation",
                      engine, error, ", rebuilding it" if rebuilding else "",
                      self.in_rotation, self.size)
        if self._rebuild is None or not rebuilding:
            self._check_engines_left()
            return
        self._rebuilding.add(engine)
        work = asyncio.get_running_loop().run_in_executor(self.executor, self._rebuild, engine)
        self._working.add(work)
        work.add_done_callback(lambda done: self._rebuilt(engine, done))

    def _rebuilt(self, engine: int, done: asyncio.Future[Engine]) -> None:
        self._working.discard(done)
        self._rebuilding.discard(engine)
        error = None if done.cancelled() else done.exception()
        if error is not None or done.cancelled():
            _LOGGER.error("engine %d could not be rebuilt (%s): it stays out; %d of %d engines "
                          "in rotation", engine, error or "cancelled", self.in_rotation,
                          self.size)
            self._check_engines_left()
            return
        if self._closed:
            return
        self._engines[engine] = done.result()
        self._out.discard(engine)
        self._idle.append(engine)
        _LOGGER.info("engine %d rebuilt: back in rotation; %d of %d engines in rotation",
                     engine, self.in_rotation, self.size)
        self._dispatch()

    def _check_engines_left(self) -> None:
        """With no engine left (none in rotation, none being rebuilt), the owner is told and
        requests waiting for one are refused after the audio they already have."""
        if self.working > 0:
            return
        self._on_no_engine_left()
        for request in self._requests:
            request.refused = NotReady(_NO_ENGINE)
            request.changed.set()

    async def close(self) -> None:
        """Refuses new requests, then waits for every engine thread to finish its work.

        Requests in flight keep running until they end or are cancelled (the fronts' grace);
        an abandoned one stops after its current sentence. Once this returns no engine
        thread is left to call back into the event loop.
        """
        self._closed = True
        while self._working:
            await asyncio.gather(*self._working, return_exceptions=True)
        await asyncio.to_thread(self.executor.shutdown, wait=True)
