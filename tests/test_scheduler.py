"""The piece scheduler on fake engines that each test holds and releases (no model, no gRPC).

Every assertion is about order, engine assignment and counts; none about wall-clock windows,
which a shared 2-core machine cannot promise. An engine holds a piece until the test lets it
go (`gate`), so "what runs while what" is decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from tts_service.errors import NotReady, Overloaded
from tts_service.language.front_end import Utterance
from tts_service.language.sentences import Piece
from tts_service.synthesis.engine import Engine, EngineFailure, OnSentence, Sentence
from tts_service.synthesis.scheduler import OnChunk, Scheduler

RATE_HZ = 1000
TIMEOUT_S = 20
SOLO = 9  # the solo engine's number in a Log's runs


@dataclass
class Run:
    engine: int
    text: str


@dataclass
class Log:
    """What every fake engine did, on one shared record."""

    runs: list[Run] = field(default_factory=list)
    running: int = 0
    most_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: list[str] = field(default_factory=list)

    def engines_of(self, prefix: str) -> list[int]:
        return [run.engine for run in self.runs if run.text.startswith(prefix)]

    @property
    def order(self) -> list[str]:
        return [run.text for run in self.runs]


class FakeEngine:
    """Makes `audio_s` of silence for a piece whose text is `name:audio_s`.

    While `gate` is clear it holds every piece it starts, so a test can keep it busy; with
    `permits` set it finishes one piece per permit. Pieces named boom* fail as a broken engine
    does.
    """

    sample_rate_hz = RATE_HZ
    times_words = False
    mixes_voices = False

    def __init__(self, number: int, log: Log) -> None:
        self.number = number
        self.log = log
        self.gate = threading.Event()
        self.gate.set()
        self.permits: threading.Semaphore | None = None

    def generate(self, text: str, speaker_id: int, speed: float, on_chunk: OnChunk) -> None:
        name, audio_s = text.split(":")
        with self.log.lock:
            self.log.runs.append(Run(self.number, name))
            self.log.running += 1
            self.log.most_running = max(self.log.most_running, self.log.running)
        try:
            self.gate.wait(TIMEOUT_S)
            if self.permits is not None:
                self.permits.acquire(timeout=TIMEOUT_S)
            if name.startswith("boom"):
                raise EngineFailure("native failure")
            if not on_chunk(np.zeros(int(float(audio_s) * RATE_HZ), np.float32)):
                self.log.stopped.append(name)
        finally:
            with self.log.lock:
                self.log.running -= 1

    def speak(self, utterance: Utterance, speaker_id: int, speed: float,
              on_sentence: OnSentence, timed: bool, style: np.ndarray | None = None) -> None:
        self.generate(utterance.text, speaker_id, speed,
                      lambda samples: on_sentence(Sentence(samples, (), last=True)))


def pieces(*specs: str) -> list[Piece]:
    return [Piece(i, i + 1, spec if ":" in spec else f"{spec}:1") for i, spec in enumerate(specs)]


def work(engine: Engine, piece: Piece, on_chunk: OnChunk) -> None:
    assert isinstance(engine, FakeEngine)
    engine.generate(piece.text, 0, 1.0, on_chunk)


def make(engines: int = 2, max_waiting: int = 4, read_ahead_s: float = 100.0,
         solo: bool = False, **options: object
         ) -> tuple[Scheduler, list[FakeEngine], Log, list[float]]:
    """A scheduler on `engines` fakes, plus a solo engine (the last fake) if `solo`."""
    log = Log()
    fakes = [FakeEngine(n, log) for n in range(engines)]
    solo_engine = FakeEngine(SOLO, log) if solo else None
    waits: list[float] = []
    scheduler = Scheduler(fakes, max_waiting, read_ahead_s, waits.append, solo=solo_engine,
                          **options)  # type: ignore[arg-type]
    return scheduler, fakes + ([solo_engine] if solo_engine else []), log, waits


async def collect(scheduler: Scheduler, todo: Sequence[Piece] | AsyncIterator[Piece]
                  ) -> list[str]:
    said = []
    async with asyncio.timeout(TIMEOUT_S):
        async for item in scheduler.stream(todo, work):
            assert isinstance(item, tuple)
            said.append(item[0].text.split(":")[0])
    return said


async def wait_until(condition, timeout_s: float = TIMEOUT_S) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


def hold(*fakes: FakeEngine) -> None:
    for fake in fakes:
        fake.gate.clear()


def release(*fakes: FakeEngine) -> None:
    for fake in fakes:
        fake.gate.set()


async def test_a_lone_request_uses_every_engine_and_gets_its_audio_in_text_order() -> None:
    scheduler, fakes, log, _ = make(engines=2)
    hold(*fakes)
    said = asyncio.ensure_future(collect(scheduler, pieces("a", "b", "c", "d", "e")))
    await wait_until(lambda: log.running == 2)  # two pieces at once: both engines
    assert sorted(log.engines_of("")) == [0, 1]
    release(fakes[1])  # b and the rest finish before a: they still come after it
    await wait_until(lambda: len(log.runs) == 5)
    release(fakes[0])
    assert await said == ["a", "b", "c", "d", "e"]
    assert scheduler.busy == 0


async def test_a_newcomer_takes_the_next_free_engine_and_then_they_alternate() -> None:
    scheduler, fakes, log, _ = make(engines=1)
    hold(*fakes)
    long_text = asyncio.ensure_future(collect(scheduler, pieces(
        *(f"long{n}" for n in range(6)))))
    await wait_until(lambda: log.order == ["long0"])
    short = asyncio.ensure_future(collect(scheduler, pieces("short0", "short1")))
    await wait_until(lambda: scheduler.waiting == 1)
    release(*fakes)
    assert await short == ["short0", "short1"]
    await long_text
    # The newcomer's first piece ran right after the piece in progress, then turns alternated.
    assert log.order[:5] == ["long0", "short0", "long1", "short1", "long2"]


async def test_read_ahead_stops_scheduling_a_slow_reader_and_reading_resumes_it() -> None:
    scheduler, _, log, _ = make(engines=2, read_ahead_s=3.0)
    stream = scheduler.stream(pieces(*(f"p{n}" for n in range(20))), work)
    async with asyncio.timeout(TIMEOUT_S):
        first = await anext(stream)
        assert isinstance(first, tuple) and first[0].text.startswith("p0")
        await wait_until(lambda: scheduler.busy == 0)  # the consumer is not reading
        held = len(log.runs)
        # 3 s of unread audio stops it; pieces already running (one per engine) still finish.
        assert 3 <= held <= 3 + 2 + 1
        assert scheduler.unread_audio_s <= 3.0 + 2
        rest = [item async for item in stream]
    assert len(rest) == 19
    assert len(log.runs) == 20


async def test_slow_readers_do_not_hold_engines_from_a_fast_one() -> None:
    scheduler, _, log, _ = make(engines=2, max_waiting=8, read_ahead_s=2.0)
    slow = [scheduler.stream(pieces(*(f"slow{k}.{n}" for n in range(30))), work)
            for k in range(5)]
    for stream in slow:
        await asyncio.wait_for(anext(stream), TIMEOUT_S)
    await wait_until(lambda: scheduler.busy == 0)  # every slow stream filled its read-ahead
    assert scheduler.waiting == 0
    assert await collect(scheduler, pieces("fast")) == ["fast"]
    assert sum(1 for r in log.runs if r.text.startswith("slow")) <= 5 * (2 + 2 + 1)
    for stream in slow:
        await stream.aclose()
    await wait_until(lambda: scheduler.busy == 0)


async def test_cancel_mid_piece_stops_the_engine_after_that_piece_and_frees_it() -> None:
    scheduler, fakes, log, _ = make(engines=1)
    hold(*fakes)
    stream = scheduler.stream(pieces(*(f"p{n}" for n in range(10))), work)
    reading = asyncio.ensure_future(anext(stream))
    await wait_until(lambda: log.running == 1)  # the first piece is mid-synthesis
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    await stream.aclose()
    assert scheduler.busy == 1  # its thread is still in the piece
    release(*fakes)
    await wait_until(lambda: scheduler.busy == 0)
    assert log.stopped == ["p0"]  # the engine was told to stop
    assert len(log.runs) == 1  # and nothing after it was started
    assert await collect(scheduler, pieces("next")) == ["next"]


async def test_a_cancelled_consumer_abandons_the_request_at_piece_granularity() -> None:
    scheduler, fakes, log, _ = make(engines=2)
    hold(*fakes)
    consumer = asyncio.ensure_future(collect(scheduler, pieces(*(f"p{n}" for n in range(10)))))
    await wait_until(lambda: log.running == 2)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    release(*fakes)
    await wait_until(lambda: scheduler.busy == 0)
    # The two pieces in progress were told to stop; nothing else of the text was started.
    assert sorted(log.stopped) == ["p0", "p1"]
    assert len(log.runs) == 2


async def test_overload_refuses_past_the_waiting_line_at_once() -> None:
    scheduler, fakes, _, _ = make(engines=1, max_waiting=1)
    hold(*fakes)
    running = scheduler.stream(pieces("a"), work)
    first = asyncio.ensure_future(anext(running))
    await wait_until(lambda: scheduler.busy == 1)
    queued = scheduler.stream(pieces("b"), work)
    second = asyncio.ensure_future(anext(queued))
    await wait_until(lambda: scheduler.waiting == 1)
    with pytest.raises(Overloaded, match="retry"):
        await anext(scheduler.stream(pieces("c"), work))
    release(*fakes)
    assert (await asyncio.wait_for(first, TIMEOUT_S))[0].text == "a:1"  # type: ignore[index]
    assert (await asyncio.wait_for(second, TIMEOUT_S))[0].text == "b:1"  # type: ignore[index]
    await running.aclose()
    await queued.aclose()


async def test_close_refuses_new_requests_and_waits_for_running_pieces() -> None:
    scheduler, fakes, log, _ = make(engines=2)
    hold(*fakes)
    running = asyncio.ensure_future(collect(scheduler, pieces(*(f"p{n}" for n in range(6)))))
    await wait_until(lambda: scheduler.busy == 2)
    closing = asyncio.ensure_future(scheduler.close())
    await asyncio.sleep(0)  # it has started
    with pytest.raises(NotReady, match="shutting down"):
        await anext(scheduler.stream(pieces("late"), work))
    await asyncio.sleep(0.05)
    assert not closing.done()  # engine threads are still in their pieces
    release(*fakes)
    assert await asyncio.wait_for(running, TIMEOUT_S) == [f"p{n}" for n in range(6)]
    await asyncio.wait_for(closing, TIMEOUT_S)
    assert scheduler.executor._shutdown  # nothing left: its threads are gone
    assert log.running == 0


async def test_close_after_a_cancelled_request_returns_once_its_engine_thread_ends() -> None:
    scheduler, fakes, log, _ = make(engines=1)
    hold(*fakes)
    consumer = asyncio.ensure_future(collect(scheduler, pieces("a", "b")))
    await wait_until(lambda: log.running == 1)
    consumer.cancel()
    closing = asyncio.ensure_future(scheduler.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # the engine thread would still call back into the loop
    release(*fakes)
    await asyncio.wait_for(closing, TIMEOUT_S)
    assert log.stopped == ["a"]


async def test_pieces_arriving_over_time_are_said_in_order() -> None:
    scheduler, _, _, _ = make(engines=2)

    async def arriving() -> AsyncIterator[Piece]:
        for piece in pieces("a", "b", "c"):
            yield piece
            await asyncio.sleep(0.01)

    assert await collect(scheduler, arriving()) == ["a", "b", "c"]


async def test_marks_come_back_once_the_audio_before_them_is_read() -> None:
    scheduler, fakes, log, _ = make(engines=2)
    hold(*fakes)
    flush = object()
    text_done = asyncio.Event()

    async def arriving() -> AsyncIterator[Piece | object]:
        for item in [*pieces("a", "b"), flush]:
            yield item
        await text_done.wait()
        yield Piece(5, 6, "c:1")

    said: list[object] = []

    async def consume() -> None:
        async for item in scheduler.stream(arriving(), work):
            said.append(item if item is flush else item[0].text)  # type: ignore[index]

    consumer = asyncio.ensure_future(consume())
    await wait_until(lambda: log.running == 2)
    await asyncio.sleep(0.05)
    assert said == []  # the mark waits for a and b
    release(*fakes)
    await wait_until(lambda: flush in said)
    assert said == ["a:1", "b:1", flush]  # and nothing waits for text not yet sent
    text_done.set()
    await asyncio.wait_for(consumer, TIMEOUT_S)
    assert said == ["a:1", "b:1", flush, "c:1"]


async def test_a_live_request_holds_one_admission_across_its_pauses() -> None:
    scheduler, fakes, _, _ = make(engines=1, max_waiting=0)
    more = asyncio.Event()

    async def arriving() -> AsyncIterator[Piece]:
        yield Piece(0, 1, "first:1")
        await more.wait()
        yield Piece(1, 2, "second:1")

    live = scheduler.stream(arriving(), work)
    assert (await asyncio.wait_for(anext(live), TIMEOUT_S))[0].text == "first:1"  # type: ignore[index]
    await wait_until(lambda: scheduler.busy == 0)
    hold(*fakes)
    other = asyncio.ensure_future(collect(scheduler, pieces("other")))
    await wait_until(lambda: scheduler.busy == 1)
    more.set()  # the live call's next text comes while the only engine is busy
    release(*fakes)
    assert (await asyncio.wait_for(anext(live), TIMEOUT_S))[0].text == "second:1"  # type: ignore[index]
    assert await other == ["other"]
    await live.aclose()


async def test_an_error_of_the_piece_source_comes_after_the_pieces_it_gave() -> None:
    scheduler, _, _, _ = make(engines=1)

    async def arriving() -> AsyncIterator[Piece]:
        yield Piece(0, 1, "a:1")
        yield Piece(1, 2, "b:1")
        raise ValueError("text too long")

    said: list[str] = []
    with pytest.raises(ValueError, match="too long"):
        async with asyncio.timeout(TIMEOUT_S):
            async for item in scheduler.stream(arriving(), work):
                said.append(item[0].text)  # type: ignore[index]
    assert said == ["a:1", "b:1"]


async def test_an_engine_failure_comes_after_the_audio_before_it() -> None:
    scheduler, _, _, _ = make(engines=2)
    said: list[str] = []
    with pytest.raises(EngineFailure, match="native failure"):
        async with asyncio.timeout(TIMEOUT_S):
            async for item in scheduler.stream(pieces("a", "boom", "c"), work):
                said.append(item[0].text)  # type: ignore[index]
    assert said == ["a:1"]
    await wait_until(lambda: scheduler.busy == 0)
    assert await collect(scheduler, pieces("after")) == ["after"]


async def test_a_failed_engine_leaves_the_rotation_and_comes_back_rebuilt() -> None:
    rebuilt: list[int] = []
    failed: list[int] = []
    may_rebuild = threading.Event()

    def rebuild(position: int) -> Engine:
        may_rebuild.wait(TIMEOUT_S)
        rebuilt.append(position)
        return FakeEngine(100 + position, log)

    scheduler, _, log, _ = make(engines=2, rebuild=rebuild, on_engine_failed=failed.append)
    with pytest.raises(EngineFailure):
        await collect(scheduler, pieces("boom"))
    assert failed == [0] and scheduler.failures == [1, 0]
    assert scheduler.in_rotation == 1
    # Engine 0, first in rank, is out: light load now goes to engine 1.
    assert await collect(scheduler, pieces("x")) == ["x"]
    assert await collect(scheduler, pieces("y")) == ["y"]
    assert log.engines_of("x") + log.engines_of("y") == [1, 1]
    may_rebuild.set()
    await wait_until(lambda: scheduler.in_rotation == 2)
    assert rebuilt == [0]
    assert await collect(scheduler, pieces("z")) == ["z"]
    assert log.engines_of("z") == [100]  # the rebuilt engine, back in its place
    await scheduler.close()


async def test_with_every_engine_failed_and_none_rebuilt_calls_are_refused_as_unavailable(
) -> None:
    def rebuild(position: int) -> Engine:
        raise RuntimeError("the model file is gone")

    told: list[str] = []
    scheduler, _, _, _ = make(engines=1, rebuild=rebuild,
                              on_no_engine_left=lambda: told.append("none left"))
    with pytest.raises(EngineFailure):
        await collect(scheduler, pieces("boom"))
    await wait_until(lambda: scheduler.working == 0)
    assert told == ["none left"]
    with pytest.raises(NotReady, match="no engine is working"):
        await collect(scheduler, pieces("next"))
    await scheduler.close()


async def test_an_error_in_the_callers_work_fails_the_request_but_not_the_engine() -> None:
    scheduler, _, log, _ = make(engines=1)

    def broken_work(engine: Engine, piece: Piece, on_chunk: OnChunk) -> None:
        raise ValueError("a bug in text preparation")

    with pytest.raises(ValueError, match="text preparation"):
        async for _ in scheduler.stream(pieces("a"), broken_work):
            pass
    assert scheduler.in_rotation == 1 and scheduler.failures == [0]
    assert await collect(scheduler, pieces("b")) == ["b"]
    assert log.engines_of("b") == [0]


async def test_queue_wait_is_measured_per_piece() -> None:
    scheduler, fakes, _, waits = make(engines=1)
    hold(*fakes)
    first = asyncio.ensure_future(collect(scheduler, pieces("a")))
    await wait_until(lambda: scheduler.busy == 1)
    second = asyncio.ensure_future(collect(scheduler, pieces("b")))
    await wait_until(lambda: scheduler.waiting == 1)
    await asyncio.sleep(0.2)
    release(*fakes)
    await first
    await second
    assert len(waits) == 2
    assert waits[1] >= 0.2  # b waited (at least) for as long as a held the engine
    assert waits[1] > waits[0]


async def test_idle_engines_are_taken_in_pool_order_so_the_same_ones_stay_warm() -> None:
    scheduler, fakes, log, _ = make(engines=3)
    hold(*fakes)
    three = asyncio.ensure_future(collect(scheduler, pieces("a", "b", "c")))
    await wait_until(lambda: log.running == 3)
    release(*fakes)
    assert await three == ["a", "b", "c"]
    for name in ("d", "e", "f"):  # one piece at a time: always the first engine
        assert await collect(scheduler, pieces(name)) == [name]
    assert [run.engine for run in log.runs[3:]] == [0, 0, 0]


async def test_a_lone_piece_runs_on_the_solo_engine_alone() -> None:
    scheduler, _, log, _ = make(engines=2, solo=True)
    assert await collect(scheduler, pieces("a")) == ["a"]
    assert await collect(scheduler, pieces("b")) == ["b"]
    assert [run.engine for run in log.runs] == [SOLO, SOLO]
    assert log.most_running == 1
    assert scheduler.busy == 0


def step(fake: FakeEngine) -> None:
    """Lets `fake` finish the piece it holds (or the next one it starts)."""
    assert fake.permits is not None
    fake.permits.release()


def stepped(*fakes: FakeEngine) -> None:
    for fake in fakes:
        fake.permits = threading.Semaphore(0)


async def test_a_lone_requests_pieces_run_on_the_solo_engine_one_at_a_time_in_order() -> None:
    scheduler, fakes, log, _ = make(engines=2, solo=True)
    solo = fakes[-1]
    stepped(solo)
    stream = scheduler.stream(pieces("a", "b", "c"), work)
    async with asyncio.timeout(TIMEOUT_S):
        reading = asyncio.ensure_future(anext(stream))
        await wait_until(lambda: log.order == ["a"])
        assert scheduler.busy == 1  # b waits: beside a it would take a's cores
        for name, after in (("a", ["a", "b"]), ("b", ["a", "b", "c"])):
            step(solo)
            spoken = await reading
            assert isinstance(spoken, tuple) and spoken[0].text == f"{name}:1"
            # Its audio came while the next piece is being made, which started at once.
            await wait_until(lambda after=after: log.order == after)  # type: ignore[misc]
            assert scheduler.busy == 1
            reading = asyncio.ensure_future(anext(stream))
        step(solo)
        assert (await reading)[0].text == "c:1"  # type: ignore[index]
        assert [item async for item in stream] == []
    assert log.engines_of("") == [SOLO] * 3
    assert log.most_running == 1


async def test_a_lone_whole_request_is_made_side_by_side_on_the_pool() -> None:
    """A unary call waits for all its audio: its pieces share the pool's cores, which ends it
    sooner than one at a time on the solo engine (a single piece still takes that one)."""
    scheduler, _, log, _ = make(engines=2, solo=True)
    async with asyncio.timeout(TIMEOUT_S):
        said = [item[0].text.split(":")[0] async for item in
                scheduler.stream(pieces("a", "b", "c"), work, whole=True)
                if isinstance(item, tuple)]
    assert said == ["a", "b", "c"]
    assert sorted(log.engines_of("")[:2]) == [0, 1]  # a and b side by side on the pool
    assert SOLO not in log.engines_of("")
    async with asyncio.timeout(TIMEOUT_S):
        assert [item[0].text async for item in scheduler.stream(pieces("d"), work, whole=True)
                if isinstance(item, tuple)] == ["d:1"]
    assert log.engines_of("d") == [SOLO]


async def test_a_newcomer_sends_both_to_the_pool_and_the_one_left_returns_to_solo() -> None:
    scheduler, fakes, log, _ = make(engines=2, solo=True)
    stepped(*fakes)
    solo = fakes[-1]
    lone = asyncio.ensure_future(collect(scheduler, pieces("l0", "l1", "l2", "l3", "l4")))
    await wait_until(lambda: log.order == ["l0"])
    other = asyncio.ensure_future(collect(scheduler, pieces("o0", "o1")))
    await wait_until(lambda: scheduler.waiting == 1)  # it waits for the solo engine's piece
    assert scheduler.busy == 1
    step(solo)  # l0 done: now both go to the single-thread engines, the newcomer first
    await wait_until(lambda: len(log.runs) == 3)
    assert (log.engines_of("o0"), log.engines_of("l1")) == ([0], [1])
    step(fakes[1])  # l1 done: the lone one's turn again
    await wait_until(lambda: len(log.runs) == 4)
    assert log.engines_of("l2") == [1]
    step(fakes[0])  # o0 done
    await wait_until(lambda: len(log.runs) == 5)
    assert log.engines_of("o1") == [0]
    step(fakes[0])
    assert await asyncio.wait_for(other, TIMEOUT_S) == ["o0", "o1"]
    # Alone again, with l2 still on a single-thread engine: l3 waits for it, not beside it.
    assert len(log.runs) == 5 and scheduler.busy == 1
    step(fakes[1])  # l2 done: back to the solo engine, one piece at a time
    await wait_until(lambda: len(log.runs) == 6)
    assert scheduler.busy == 1
    step(solo)
    step(solo)
    assert await asyncio.wait_for(lone, TIMEOUT_S) == ["l0", "l1", "l2", "l3", "l4"]
    assert {run.text: run.engine for run in log.runs} == {
        "l0": SOLO, "o0": 0, "l1": 1, "l2": 1, "o1": 0, "l3": SOLO, "l4": SOLO}
    assert log.most_running <= 2


async def test_read_ahead_bounds_a_lone_slow_reader_on_the_solo_engine() -> None:
    scheduler, _, log, _ = make(engines=2, solo=True, read_ahead_s=3.0)
    stream = scheduler.stream(pieces(*(f"p{n}" for n in range(20))), work)
    async with asyncio.timeout(TIMEOUT_S):
        await anext(stream)
        await wait_until(lambda: scheduler.busy == 0)  # the consumer is not reading
        assert 3 <= len(log.runs) <= 3 + 1 + 1  # one piece at a time: at most one past it
        assert [item async for item in stream] != []
    assert log.engines_of("") == [SOLO] * 20


async def test_newcomers_wait_for_the_solo_piece_then_share_the_pool() -> None:
    scheduler, fakes, log, _ = make(engines=2, solo=True)
    hold(fakes[-1])
    lone = asyncio.ensure_future(collect(scheduler, pieces("lone")))
    await wait_until(lambda: scheduler.busy == 1)
    newcomers = [asyncio.ensure_future(collect(scheduler, pieces(name))) for name in "mn"]
    await wait_until(lambda: scheduler.waiting == 2)
    assert log.most_running == 1  # the solo engine has every core to itself
    hold(*fakes[:2])
    release(fakes[-1])
    assert await asyncio.wait_for(lone, TIMEOUT_S) == ["lone"]
    await wait_until(lambda: log.running == 2)
    release(*fakes)
    assert [await asyncio.wait_for(n, TIMEOUT_S) for n in newcomers] == [["m"], ["n"]]
    assert [run.engine for run in log.runs] == [SOLO, 0, 1]


async def test_with_a_pool_engine_busy_a_newcomer_takes_another_one() -> None:
    scheduler, fakes, log, _ = make(engines=2, solo=True)
    hold(fakes[-1])
    first = asyncio.ensure_future(collect(scheduler, pieces("w0", "w1")))
    await wait_until(lambda: scheduler.busy == 1)  # w0 on the solo engine
    second = asyncio.ensure_future(collect(scheduler, pieces("x", "y")))
    await wait_until(lambda: scheduler.waiting == 1)
    hold(fakes[0])
    release(fakes[-1])  # w0 done: two requests at work, x and w1 go to the pool
    assert await asyncio.wait_for(first, TIMEOUT_S) == ["w0", "w1"]
    assert (log.engines_of("x"), log.engines_of("w1")) == ([0], [1])
    # x's request is alone now, but y waits for x rather than run beside it.
    assert await collect(scheduler, pieces("z")) == ["z"]
    assert log.engines_of("z") == [1]  # not the solo engine: x still runs beside it
    release(fakes[0])
    assert await asyncio.wait_for(second, TIMEOUT_S) == ["x", "y"]
    assert log.engines_of("y") == [SOLO]  # alone once x was done

async def test_an_idle_solo_engine_does_not_lift_the_waiting_line_limit() -> None:
    scheduler, fakes, _, _ = make(engines=1, max_waiting=1, solo=True)
    hold(*fakes)
    running = scheduler.stream(pieces("a", "b"), work)
    first = asyncio.ensure_future(anext(running))
    await wait_until(lambda: scheduler.busy == 1)
    queued = scheduler.stream(pieces("c"), work)
    second = asyncio.ensure_future(anext(queued))
    await wait_until(lambda: scheduler.waiting == 1)
    with pytest.raises(Overloaded, match="every engine is busy"):
        await anext(scheduler.stream(pieces("d"), work))
    release(*fakes)
    assert (await asyncio.wait_for(first, TIMEOUT_S))[0].text == "a:1"  # type: ignore[index]
    assert (await asyncio.wait_for(second, TIMEOUT_S))[0].text == "c:1"  # type: ignore[index]
    await running.aclose()
    await queued.aclose()


async def test_while_the_solo_engine_runs_callers_past_the_waiting_line_are_refused() -> None:
    """The pool engines are idle then, but they may not start: admission must count that."""
    scheduler, fakes, _, _ = make(engines=1, max_waiting=2, solo=True)
    hold(fakes[-1])
    lone = scheduler.stream(pieces("lone"), work)
    first = asyncio.ensure_future(anext(lone))
    await wait_until(lambda: scheduler.busy == 1)
    waiting = [scheduler.stream(pieces(f"w{n}"), work) for n in range(2)]
    started = [asyncio.ensure_future(anext(stream)) for stream in waiting]
    await wait_until(lambda: scheduler.waiting == 2)
    with pytest.raises(Overloaded):
        await anext(scheduler.stream(pieces("refused"), work))
    release(fakes[-1])
    await asyncio.wait_for(first, TIMEOUT_S)
    await asyncio.wait_for(asyncio.gather(*started), TIMEOUT_S)
    for stream in (lone, *waiting):
        await stream.aclose()


async def test_with_only_the_solo_engine_left_it_takes_every_piece() -> None:
    scheduler, fakes, log, _ = make(engines=1, solo=True)
    hold(fakes[-1])
    lone = asyncio.ensure_future(collect(scheduler, pieces("a", "b")))
    await wait_until(lambda: scheduler.busy == 1)  # a on the solo engine
    failing = asyncio.ensure_future(collect(scheduler, pieces("boom")))
    await wait_until(lambda: scheduler.waiting == 1)
    release(fakes[-1])  # two requests at work: boom goes to the pool engine, which fails
    with pytest.raises(EngineFailure):
        await asyncio.wait_for(failing, TIMEOUT_S)
    assert log.engines_of("boom") == [0]
    assert await asyncio.wait_for(lone, TIMEOUT_S) == ["a", "b"]
    assert scheduler.in_rotation == 1
    assert await collect(scheduler, pieces("x", "y", "z")) == ["x", "y", "z"]
    assert log.engines_of("x") + log.engines_of("y") + log.engines_of("z") == [SOLO] * 3


async def test_a_call_while_the_only_engine_is_rebuilt_waits_for_it() -> None:
    may_rebuild = threading.Event()
    log = Log()

    def rebuild(position: int) -> Engine:
        may_rebuild.wait(TIMEOUT_S)
        return FakeEngine(100, log)

    scheduler, _, _, _ = make(engines=1, rebuild=rebuild)
    with pytest.raises(EngineFailure):
        await collect(scheduler, pieces("boom"))
    assert scheduler.in_rotation == 0 and scheduler.working == 1
    waiting = asyncio.ensure_future(collect(scheduler, pieces("patient")))
    await wait_until(lambda: scheduler.waiting == 1)
    may_rebuild.set()
    assert await asyncio.wait_for(waiting, TIMEOUT_S) == ["patient"]
    assert log.engines_of("patient") == [100]
    await scheduler.close()


async def test_calls_waiting_when_the_last_rebuild_fails_are_refused_as_unavailable() -> None:
    may_rebuild = threading.Event()

    def rebuild(position: int) -> Engine:
        may_rebuild.wait(TIMEOUT_S)
        raise RuntimeError("the model file is gone")

    scheduler, _, _, _ = make(engines=1, rebuild=rebuild)
    with pytest.raises(EngineFailure):
        await collect(scheduler, pieces("boom"))
    waiting = asyncio.ensure_future(collect(scheduler, pieces("patient")))
    await wait_until(lambda: scheduler.waiting == 1)
    may_rebuild.set()
    with pytest.raises(NotReady, match="no engine is working"):
        await asyncio.wait_for(waiting, TIMEOUT_S)
    await scheduler.close()
