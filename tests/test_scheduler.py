"""The piece scheduler on a fake engine whose speed each test controls (no model, no gRPC)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from tts_service.engine import Engine, OnChunk
from tts_service.errors import NotReady, Overloaded
from tts_service.languages import ENGLISH, Language
from tts_service.scheduler import Scheduler
from tts_service.text import Piece

RATE_HZ = 1000
TIMEOUT_S = 20


@dataclass
class Run:
    engine: int
    text: str
    start: float
    end: float = 0.0


@dataclass
class Clock:
    """What every fake engine did, on one shared record."""

    runs: list[Run] = field(default_factory=list)
    running: int = 0
    most_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: list[str] = field(default_factory=list)


class FakeEngine:
    """Takes `compute_s` of wall time per piece and makes `audio_s` of silence for it.

    A piece's text is `name:compute_s:audio_s`. While `gate` is clear the engine waits on it
    before answering, so a test can hold a piece mid-synthesis.
    """

    sample_rate_hz = RATE_HZ

    def __init__(self, number: int, clock: Clock) -> None:
        self.number = number
        self.clock = clock
        self.gate = threading.Event()
        self.gate.set()

    def generate(self, text: str, speaker_id: int, speed: float, on_chunk: OnChunk,
                 language: Language = ENGLISH) -> None:
        name, compute_s, audio_s = text.split(":")
        run = Run(self.number, name, time.monotonic())
        with self.clock.lock:
            self.clock.runs.append(run)
            self.clock.running += 1
            self.clock.most_running = max(self.clock.most_running, self.clock.running)
        try:
            time.sleep(float(compute_s))
            self.gate.wait(TIMEOUT_S)
            if name.startswith("boom"):
                raise RuntimeError("native failure")
            if not on_chunk(np.zeros(int(float(audio_s) * RATE_HZ), np.float32)):
                self.clock.stopped.append(name)
        finally:
            run.end = time.monotonic()
            with self.clock.lock:
                self.clock.running -= 1


def pieces(*specs: str) -> list[Piece]:
    return [Piece(i, i + 1, spec) for i, spec in enumerate(specs)]


def work(engine: Engine, piece: Piece, on_chunk: OnChunk) -> None:
    engine.generate(piece.text, 0, 1.0, on_chunk)


SOLO = 9  # the solo engine's number in a Clock's runs


def make(engines: int = 2, max_waiting: int = 4, read_ahead_s: float = 100.0,
         solo: bool = False) -> tuple[Scheduler, list[FakeEngine], Clock, list[float]]:
    """A scheduler on `engines` fakes, plus a solo engine (the last fake) if `solo`."""
    clock = Clock()
    fakes = [FakeEngine(n, clock) for n in range(engines)]
    solo_engine = FakeEngine(SOLO, clock) if solo else None
    waits: list[float] = []
    scheduler = Scheduler(fakes, max_waiting, read_ahead_s, waits.append, solo=solo_engine)
    return scheduler, fakes + ([solo_engine] if solo_engine else []), clock, waits


async def collect(scheduler: Scheduler, todo: Sequence[Piece] | AsyncIterator[Piece],
                  read_delay_s: float = 0.0) -> list[str]:
    said = []
    async with asyncio.timeout(TIMEOUT_S):
        async for piece, _samples in scheduler.stream(todo, work):
            said.append(piece.text.split(":")[0])
            await asyncio.sleep(read_delay_s)
    return said


async def wait_until(condition, timeout_s: float = TIMEOUT_S) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


async def test_a_lone_request_uses_every_engine_and_gets_its_audio_in_text_order() -> None:
    scheduler, _, clock, _ = make(engines=2)
    # Slow pieces first: later ones finish earlier and must wait for their turn.
    todo = pieces("a:0.3:1", "b:0.05:1", "c:0.2:1", "d:0.05:1", "e:0.05:1")
    assert await collect(scheduler, todo) == ["a", "b", "c", "d", "e"]
    assert clock.most_running == 2
    assert {run.engine for run in clock.runs} == {0, 1}
    # Wall time is near the parallel time (0.35), not the sequential sum (0.65).
    assert max(r.end for r in clock.runs) - min(r.start for r in clock.runs) < 0.55
    assert scheduler.busy == 0


async def test_a_newcomer_starts_within_one_piece_time_and_engines_alternate() -> None:
    scheduler, _, clock, _ = make(engines=2)
    long_text = asyncio.ensure_future(collect(scheduler, pieces(
        *(f"long{n}:0.1:1" for n in range(20)))))
    await wait_until(lambda: len(clock.runs) >= 4)
    arrived = time.monotonic()
    short = await collect(scheduler, pieces(*(f"short{n}:0.1:1" for n in range(4))))
    assert short == [f"short{n}" for n in range(4)]
    first_short = next(r for r in clock.runs if r.text == "short0")
    assert first_short.start - arrived < 0.1 + 0.05  # one piece-time, plus scheduling slack
    # While both were active, each had one engine: no two short pieces ran at once.
    shorts = [r for r in clock.runs if r.text.startswith("short")]
    for one, other in itertools.pairwise(shorts):
        assert other.start >= one.end - 0.01
    await long_text


async def test_read_ahead_stops_scheduling_a_slow_reader_and_reading_resumes_it() -> None:
    scheduler, _, clock, _ = make(engines=2, read_ahead_s=3.0)
    stream = scheduler.stream(pieces(*(f"p{n}:0.01:1" for n in range(20))), work)
    async with asyncio.timeout(TIMEOUT_S):
        first = await anext(stream)
        assert first[0].text.startswith("p0")
        await asyncio.sleep(0.3)  # the consumer stops reading
        held = len(clock.runs)
        # 3 s of unread audio stops it; pieces already running (one per engine) still finish.
        assert 3 <= held <= 3 + 2 + 1
        assert scheduler.unread_audio_s <= 3.0 + 2
        assert scheduler.busy == 0  # the engines are free for others meanwhile
        rest = [piece.text async for piece, _ in stream]
    assert len(rest) == 19
    assert len(clock.runs) == 20


async def test_slow_readers_do_not_hold_engines_from_a_fast_one() -> None:
    scheduler, _, clock, _ = make(engines=2, max_waiting=8, read_ahead_s=2.0)
    slow = [scheduler.stream(pieces(*(f"slow{k}.{n}:0.02:1" for n in range(30))), work)
            for k in range(5)]
    for stream in slow:
        await asyncio.wait_for(anext(stream), TIMEOUT_S)
    await asyncio.sleep(0.5)  # every slow stream fills its read-ahead, then stops
    started = time.monotonic()
    assert await collect(scheduler, pieces("fast:0.05:1")) == ["fast"]
    assert time.monotonic() - started < 0.3
    assert sum(1 for r in clock.runs if r.text.startswith("slow")) <= 5 * (2 + 2 + 1)
    for stream in slow:
        await stream.aclose()
    await wait_until(lambda: scheduler.busy == 0)


async def test_cancel_mid_piece_stops_the_engine_after_that_piece_and_frees_it() -> None:
    scheduler, fakes, clock, _ = make(engines=1)
    stream = scheduler.stream(pieces(*(f"p{n}:0:1" for n in range(10))), work)
    await asyncio.wait_for(anext(stream), TIMEOUT_S)
    fakes[0].gate.clear()
    await wait_until(lambda: len(clock.runs) == 2)  # the second piece is mid-synthesis
    await stream.aclose()
    assert scheduler.busy == 1  # its thread is still in the piece
    fakes[0].gate.set()
    await wait_until(lambda: scheduler.busy == 0)
    assert clock.stopped == ["p1"]  # the engine was told to stop
    assert len(clock.runs) == 2  # and nothing after it was started
    assert await collect(scheduler, pieces("next:0:1")) == ["next"]


async def test_a_deadline_abandons_the_request_at_piece_granularity() -> None:
    scheduler, _, clock, _ = make(engines=2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.25):
            async for _ in scheduler.stream(pieces(*(f"p{n}:0.2:1" for n in range(10))),
                                            work):
                pass
    await wait_until(lambda: scheduler.busy == 0)
    # Two pieces in parallel, then two more at most: never the rest of the text.
    assert len(clock.runs) <= 4
    await asyncio.sleep(0.3)
    assert len(clock.runs) <= 4


async def test_overload_refuses_past_the_waiting_line_at_once() -> None:
    scheduler, fakes, _, _ = make(engines=1, max_waiting=1)
    fakes[0].gate.clear()
    running = scheduler.stream(pieces("a:0:1"), work)
    first = asyncio.ensure_future(anext(running))
    await wait_until(lambda: scheduler.busy == 1)
    queued = scheduler.stream(pieces("b:0:1"), work)
    second = asyncio.ensure_future(anext(queued))
    await wait_until(lambda: scheduler.waiting == 1)
    with pytest.raises(Overloaded, match="retry"):
        await anext(scheduler.stream(pieces("c:0:1"), work))
    fakes[0].gate.set()
    assert (await asyncio.wait_for(first, TIMEOUT_S))[0].text == "a:0:1"
    assert (await asyncio.wait_for(second, TIMEOUT_S))[0].text == "b:0:1"
    await running.aclose()
    await queued.aclose()


async def test_drain_refuses_new_requests_and_lets_running_ones_finish() -> None:
    scheduler, _, _, _ = make(engines=2)
    running = asyncio.ensure_future(collect(scheduler, pieces(
        *(f"p{n}:0.05:1" for n in range(6)))))
    await wait_until(lambda: scheduler.busy > 0)
    scheduler.close()
    with pytest.raises(NotReady):
        await anext(scheduler.stream(pieces("late:0:1"), work))
    assert await asyncio.wait_for(running, TIMEOUT_S) == [f"p{n}" for n in range(6)]
    assert scheduler.executor._shutdown  # nothing left: its threads are gone


async def test_pieces_arriving_over_time_are_said_in_order() -> None:
    scheduler, _, _, _ = make(engines=2)

    async def arriving() -> AsyncIterator[Piece]:
        for piece in pieces("a:0.1:1", "b:0:1", "c:0:1"):
            yield piece
            await asyncio.sleep(0.05)

    assert await collect(scheduler, arriving()) == ["a", "b", "c"]


async def test_an_engine_failure_comes_after_the_audio_before_it() -> None:
    scheduler, _, _, _ = make(engines=2)
    said: list[str] = []
    with pytest.raises(RuntimeError, match="native failure"):
        async with asyncio.timeout(TIMEOUT_S):
            async for piece, _ in scheduler.stream(pieces("a:0.1:1", "boom:0:1", "c:0:1"),
                                                   work):
                said.append(piece.text)
    assert said == ["a:0.1:1"]
    await wait_until(lambda: scheduler.busy == 0)
    assert await collect(scheduler, pieces("after:0:1")) == ["after"]


async def test_queue_wait_is_measured_per_piece() -> None:
    scheduler, _, _, waits = make(engines=1)
    first = asyncio.ensure_future(collect(scheduler, pieces("a:0.2:1")))
    await asyncio.sleep(0.05)
    await collect(scheduler, pieces("b:0:1"))
    await first
    assert len(waits) == 2
    assert waits[0] < 0.05
    assert 0.1 < waits[1] < 0.3  # b waited for a's engine


async def test_idle_engines_are_taken_in_pool_order_so_the_same_ones_stay_warm() -> None:
    scheduler, _, clock, _ = make(engines=3)
    assert await collect(scheduler, pieces("a:0.05:1", "b:0.05:1", "c:0.05:1")) == [
        "a", "b", "c"]
    for name in ("d", "e", "f"):  # one piece at a time: always the first engine
        assert await collect(scheduler, pieces(f"{name}:0:1")) == [name]
    assert [run.engine for run in clock.runs[3:]] == [0, 0, 0]


async def test_a_lone_piece_runs_on_the_solo_engine_alone() -> None:
    scheduler, _, clock, _ = make(engines=2, solo=True)
    assert await collect(scheduler, pieces("a:0.05:1")) == ["a"]
    assert await collect(scheduler, pieces("b:0.05:1")) == ["b"]
    assert [run.engine for run in clock.runs] == [SOLO, SOLO]
    assert clock.most_running == 1
    assert scheduler.busy == 0


async def test_several_pieces_go_to_the_pool_in_parallel_not_to_the_solo_engine() -> None:
    scheduler, _, clock, _ = make(engines=2, solo=True)
    todo = pieces("a:0.1:1", "b:0.1:1", "c:0.1:1", "d:0.1:1")
    assert await collect(scheduler, todo) == ["a", "b", "c", "d"]
    assert clock.most_running == 2
    # The last piece is the only one waiting, but an engine is still busy then.
    assert SOLO not in {run.engine for run in clock.runs}


async def test_newcomers_wait_for_the_solo_piece_then_share_the_pool() -> None:
    scheduler, fakes, clock, waits = make(engines=2, solo=True)
    fakes[-1].gate.clear()
    lone = asyncio.ensure_future(collect(scheduler, pieces("lone:0:1")))
    await wait_until(lambda: scheduler.busy == 1)
    newcomers = [asyncio.ensure_future(collect(scheduler, pieces(f"{name}:0.1:1")))
                 for name in ("m", "n")]
    await asyncio.sleep(0.1)
    assert clock.most_running == 1  # the solo engine has every core to itself
    assert scheduler.waiting == 2
    fakes[-1].gate.set()
    assert await asyncio.wait_for(lone, TIMEOUT_S) == ["lone"]
    assert [await asyncio.wait_for(n, TIMEOUT_S) for n in newcomers] == [["m"], ["n"]]
    assert [run.engine for run in clock.runs] == [SOLO, 0, 1]
    assert clock.most_running == 2
    assert min(waits[1:]) >= 0.1


async def test_with_a_pool_engine_busy_a_lone_piece_takes_another_one() -> None:
    scheduler, fakes, clock, _ = make(engines=2, solo=True)
    fakes[0].gate.clear()
    first = asyncio.ensure_future(collect(scheduler, pieces("x:0:1", "y:0:1")))
    await wait_until(lambda: len(clock.runs) == 2 and scheduler.busy == 1)  # y is made
    assert await collect(scheduler, pieces("z:0:1")) == ["z"]
    assert clock.runs[-1].engine == 1
    fakes[0].gate.set()
    assert await asyncio.wait_for(first, TIMEOUT_S) == ["x", "y"]
    assert SOLO not in {run.engine for run in clock.runs}


async def test_an_idle_solo_engine_does_not_lift_the_waiting_line_limit() -> None:
    scheduler, fakes, _, _ = make(engines=1, max_waiting=1, solo=True)
    fakes[0].gate.clear()
    running = scheduler.stream(pieces("a:0:1", "b:0:1"), work)
    first = asyncio.ensure_future(anext(running))
    await wait_until(lambda: scheduler.busy == 1)
    queued = scheduler.stream(pieces("c:0:1"), work)
    second = asyncio.ensure_future(anext(queued))
    await wait_until(lambda: scheduler.waiting == 1)
    with pytest.raises(Overloaded, match="every engine is busy"):
        await anext(scheduler.stream(pieces("d:0:1"), work))
    fakes[0].gate.set()
    assert (await asyncio.wait_for(first, TIMEOUT_S))[0].text == "a:0:1"
    assert (await asyncio.wait_for(second, TIMEOUT_S))[0].text == "c:0:1"
    await running.aclose()
    await queued.aclose()
