"""Runs requests' pieces, not whole requests, on a fixed pool of engines.

Each engine synthesizes one piece at a time in its own thread. Every time an engine is free it
takes the next piece of the request with the fewest pieces running, the one served least
recently first (round robin per piece). So a lone request gets every engine, its pieces made
in parallel, and a new request's first piece starts as soon as any engine finishes its current
piece: within one piece-time, whatever else is running. Round robin rather than
shortest-first or earliest-deadline: it needs no estimate of piece cost, never starves a long
text, and gives a newcomer the next engine anyway because it has nothing running yet.

An optional solo engine, with a thread per core, takes a piece only when every engine is idle
and that piece is the only one waiting, and nothing else starts while it runs: a lone
sentence is made as fast as the machine allows, while several pieces, or several requests,
go to the single-thread engines, which share the cores without oversubscribing them (two
busy multi-thread engines take cores from each other). A newcomer waits at most for one
piece on the solo engine, which is the fastest piece-time there is.

A request's audio is handed back strictly in text order. A request stops being scheduled once
it holds more than `read_ahead_s` seconds of audio its consumer has not read, and resumes as
the consumer reads: a slow reader costs bounded memory, and its engines serve others meanwhile.
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

import numpy as np

from .engine import Engine, OnChunk
from .errors import NotReady, Overloaded
from .text import Piece

_LOGGER = logging.getLogger(__name__)

# Runs in an engine thread: synthesizes one piece on the engine, calling on_chunk per chunk.
PieceWork = Callable[[Engine, Piece, OnChunk], None]


@dataclass(eq=False)
class _Slot:
    """A started piece: its audio chunks wait here until the consumer reads them."""

    piece: Piece
    chunks: deque[np.ndarray] = field(default_factory=deque)
    done: bool = False
    error: BaseException | None = None


@dataclass(eq=False)
class _Request:
    work: PieceWork
    arrived: float
    pending: deque[Piece] = field(default_factory=deque)  # not started yet, in text order
    slots: deque[_Slot] = field(default_factory=deque)  # started, not yet read to the end
    input_done: bool = False  # no more pieces will arrive
    input_error: BaseException | None = None
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
        return self.input_done and not self.pending and not self.slots


class Scheduler:
    """Shares engines between requests piece by piece; refuses callers past `max_waiting`.

    `waiting` counts requests that have a piece to run but none started yet (the queue the
    RESOURCE_EXHAUSTED limit applies to); `busy` counts engines synthesizing right now.
    """

    def __init__(self, engines: Sequence[Engine], max_waiting: int, read_ahead_s: float,
                 on_queue_wait: Callable[[float], object] = lambda _: None,
                 solo: Engine | None = None) -> None:
        if not engines:
            raise ValueError("a scheduler needs at least one engine")
        self._solo = solo
        # Every engine it runs pieces on, the solo engine last.
        self.engines: tuple[Engine, ...] = (*engines, *([solo] if solo is not None else []))
        self.size = len(self.engines)
        self.max_waiting = max_waiting
        self.read_ahead_s = read_ahead_s
        self.sample_rate_hz = engines[0].sample_rate_hz
        self._on_queue_wait = on_queue_wait
        # Idle engines are taken in pool order, so the same few stay warm under light load.
        self._rank = {id(engine): rank for rank, engine in enumerate(self.engines)}
        self._idle: list[Engine] = list(self.engines)
        self._requests: list[_Request] = []
        self._closed = False
        # One synthesis thread per engine: sherpa-onnx releases the GIL while it computes.
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.size, thread_name_prefix="engine")

    @property
    def busy(self) -> int:
        return self.size - len(self._idle)

    @property
    def waiting(self) -> int:
        return sum(1 for r in self._requests
                   if not r.abandoned and r.started == 0 and r.pending)

    @property
    def unread_audio_s(self) -> float:
        """Audio made but not yet read by its consumer, over all requests."""
        return sum(r.unread_s for r in self._requests)

    async def stream(self, pieces: Sequence[Piece] | AsyncIterable[Piece], work: PieceWork
                     ) -> AsyncGenerator[tuple[Piece, np.ndarray], None]:
        """Yields (piece, samples) in text order as the engines make them.

        Closing the iterator early (client gone, deadline passed) drops the pieces not yet
        started and makes running ones stop after their current sentence; each engine goes
        back to the pool when its thread is done.
        """
        if self._closed:
            raise NotReady("the server is shutting down; retry on another instance")
        if not self._idle_in_pool() and self.waiting >= self.max_waiting:
            raise Overloaded(
                f"every engine is busy and {self.waiting} requests are already "
                "waiting; retry in a few seconds",
                retry_after_s=2.0,
            )
        request = _Request(work=work, arrived=time.monotonic())
        self._requests.append(request)
        feeder = None
        if isinstance(pieces, Sequence):
            request.pending.extend(pieces)
            request.input_done = True
        else:
            feeder = asyncio.create_task(self._feed(request, pieces))
        self._dispatch()
        completed = False
        try:
            while True:
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
                        continue
                elif request.input_error is not None:
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

    async def _feed(self, request: _Request, pieces: AsyncIterable[Piece]) -> None:
        try:
            async for piece in pieces:
                request.pending.append(piece)
                self._dispatch()
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
        request.unread_s = 0.0
        if request.running == 0:
            self._forget(request)

    def _forget(self, request: _Request) -> None:
        if request.stop.is_set():
            _LOGGER.info("synthesis stopped early: engine back in the pool after %d of %d "
                         "pieces", request.done, request.total)
        self._requests.remove(request)
        if self._closed and not self._requests:
            self.executor.shutdown(wait=False)
        self._dispatch()

    def _dispatch(self) -> None:
        """Gives idle engines to the pieces that should run next (see the module docstring)."""
        now = time.monotonic()
        candidates = []
        for request in self._requests:
            if request.schedulable(self.read_ahead_s):
                if request.ready_since is None:
                    request.ready_since = now
                candidates.append(request)
            else:
                request.ready_since = None
        while candidates:
            engine = self._engine_for(sum(len(r.pending) for r in candidates))
            if engine is None:
                break
            request = min(candidates, key=lambda r: (r.running, r.last_served))
            self._idle.remove(engine)
            self._start(request, engine, now)
            if not request.schedulable(self.read_ahead_s):
                candidates.remove(request)

    def _idle_in_pool(self) -> list[Engine]:
        """Idle engines other than the solo engine."""
        return [engine for engine in self._idle if engine is not self._solo]

    def _engine_for(self, waiting_pieces: int) -> Engine | None:
        """The engine the next piece should take, or None if it must wait."""
        if self._solo is not None:
            if self._solo not in self._idle:
                return None  # it has every core to itself
            if self.busy == 0 and waiting_pieces == 1:
                return self._solo
        idle = self._idle_in_pool()
        return min(idle, key=lambda e: self._rank[id(e)]) if idle else None

    def _start(self, request: _Request, engine: Engine, now: float) -> None:
        slot = _Slot(request.pending.popleft())
        request.slots.append(slot)
        request.running += 1
        request.started += 1
        request.last_served = now
        assert request.ready_since is not None
        self._on_queue_wait(now - request.ready_since)
        request.ready_since = now if request.pending else None
        loop = asyncio.get_running_loop()

        def on_chunk(samples: np.ndarray) -> bool:  # in the engine thread
            loop.call_soon_threadsafe(self._chunk_made, request, slot, samples)
            return not request.stop.is_set()

        def run() -> None:
            if not request.stop.is_set():
                request.work(engine, slot.piece, on_chunk)

        work = loop.run_in_executor(self.executor, run)
        work.add_done_callback(lambda done: self._piece_done(request, slot, engine, done))

    def _chunk_made(self, request: _Request, slot: _Slot, samples: np.ndarray) -> None:
        if request.abandoned:
            return
        slot.chunks.append(samples)
        request.unread_s += len(samples) / self.sample_rate_hz
        request.changed.set()

    def _piece_done(self, request: _Request, slot: _Slot, engine: Engine,
                    done: asyncio.Future[None]) -> None:
        self._idle.append(engine)
        request.running -= 1
        request.done += 1
        slot.done = True
        error = None if done.cancelled() else done.exception()
        if error is not None:
            if request.abandoned:
                _LOGGER.warning("abandoned synthesis failed", exc_info=error)
            slot.error = error
        request.changed.set()
        if request.abandoned and request.running == 0:
            self._forget(request)
        else:
            self._dispatch()

    def close(self) -> None:
        """Refuses new requests; those in flight run to their end (or their cancellation)."""
        self._closed = True
        if not self._requests:
            self.executor.shutdown(wait=False)
