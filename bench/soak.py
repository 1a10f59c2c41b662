"""The soak: one real server with gRPC, HTTP (with its WebSocket) and Wyoming on, driven at once
for minutes by clients on loopback, each at a bounded rate.

Each front has two client loops, each taking turns through its kinds of call: one makes
well-formed calls of every method, with clients that cancel, vanish mid-stream or read slowly;
the other short deadlines and hostile bodies (malformed JSON, oversize text, SSML-like markup,
lone surrogates, an oversize or malformed Wyoming frame). Halfway through, one call makes an
engine fail through the engine's test hook (`TTS_TEST_HOOK_ENGINE_FAULT`,
tts_service/synthesis/engine.py): that call must end INTERNAL and the engine must come back
into rotation. The server's RSS, open file descriptors and threads are sampled all along. At
the end every front must still answer a normal request and the server must exit 0 on SIGTERM.

`python -m bench --sections soak --soak-minutes 30`; the section's report says what must hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx2
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import ConnectionClosed
from wyoming.audio import AudioChunk
from wyoming.error import Error
from wyoming.event import async_read_event, async_write_event
from wyoming.tts import Synthesize

from harness import websocket_client, wyoming_client
from harness.servers import ServerProcess, free_port, start_server
from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.config import ServerConfig
from tts_service.synthesis.engine import FAULT_HOOK_VARIABLE

from . import service

_LOGGER = logging.getLogger("bench")
# The HTTP client logs every request at INFO: thousands of lines in a soak.
logging.getLogger("httpx2").setLevel(logging.WARNING)
VOICE = service.VOICE
FAULT_MARKER = "soakfault"  # a word no other call says
# Each loop waits this long on average (0.5x to 1.5x, at random) between its calls: a few
# calls a second over all fronts, of which a default pool on 2 cores keeps up with the
# well-formed ones.
MEAN_PAUSE_S = 3.0
FRONTS = ("gRPC", "HTTP", "WebSocket", "Wyoming")
# The kinds of call of the second loop of each front.
HOSTILE = frozenset({
    "Synthesize, 50 ms deadline", "Synthesize, oversize text", "malformed JSON",
    "oversize text", "lone surrogate", "SSML-like text", "not JSON", "oversize frame",
    "malformed frame"})
CALL_LIMIT_S = 90.0  # a call still running after this is a hang
MAX_TEXT_CHARS = ServerConfig().max_text_chars
SSML = '<speak><prosody rate="fast">Hello <break time="1s"/> there &amp; bye.</prosody></speak>'
# What no client may ever get, whatever it sends: the server's own faults.
BAD_OUTCOMES = frozenset({"INTERNAL", "UNKNOWN", "500", "close 4500", "wyoming INTERNAL"})
# RSS swings by a few hundred MB with the engines' runs, so growth is judged on many samples,
# two ways that a leak both trips: RSS grows when the last quarter's median is more than this
# share above the second quarter's (both after warm-up) and the line fitted through the second
# half's samples rises.
GROWTH_SHARE = 0.05
SAMPLE_EVERY_S = 2.0
# The server's threads may grow by asyncio's default pool of worker threads (it starts
# threads as work comes, up to this many, and keeps them), and no more: a leak grows with
# the calls, thousands of them.
WORKER_THREADS_CAP = min(32, (os.cpu_count() or 1) + 4)


def _sentence(rng: random.Random, number: int) -> str:
    # A number in every text: each call's pieces are new, so the audio cache does not answer
    # them and the engines work.
    subject = rng.choice(["The river", "A quiet train", "Our neighbour", "The old clock"])
    verb = rng.choice(["passed", "counted", "carried", "painted"])
    return f"{subject} {verb} {number} small boats before noon."


@dataclass
class Tally:
    """Outcomes per front and kind of call, and the calls that ended badly."""

    calls: dict[str, dict[str, Counter[str]]] = field(
        default_factory=lambda: {front: {} for front in FRONTS})
    bad: list[str] = field(default_factory=list)

    def add(self, front: str, kind: str, outcome: str) -> None:
        self.calls.setdefault(front, {}).setdefault(kind, Counter())[outcome] += 1
        if outcome in BAD_OUTCOMES or outcome.startswith(("exception", "hang")):
            self.bad.append(f"{front} {kind}: {outcome}")


@dataclass
class Target:
    server: ServerProcess
    metrics_port: int

    @property
    def wyoming_port(self) -> int:
        assert self.server.wyoming_port is not None
        return self.server.wyoming_port


Call = Callable[[random.Random, int], Awaitable[str]]


# gRPC -----------------------------------------------------------------------------------------

def _grpc_channel(address: str) -> grpc.aio.Channel:
    # No client retries: every outcome is the server's own.
    return grpc.aio.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])


def _grpc_calls(stub: tts_pb2_grpc.TextToSpeechServiceStub) -> dict[str, Call]:
    config = tts_pb2.SynthesisConfig(voice=VOICE)

    async def unary(rng: random.Random, n: int) -> str:
        await stub.Synthesize(tts_pb2.SynthesizeRequest(text=_sentence(rng, n), config=config),
                              timeout=CALL_LIMIT_S)
        return "OK"

    async def short_deadline(rng: random.Random, n: int) -> str:
        text = " ".join(_sentence(rng, n + i) for i in range(4))
        await stub.Synthesize(tts_pb2.SynthesizeRequest(text=text, config=config), timeout=0.05)
        return "OK"

    async def oversize(rng: random.Random, n: int) -> str:
        await stub.Synthesize(tts_pb2.SynthesizeRequest(text="a" * (MAX_TEXT_CHARS + 1)),
                              timeout=CALL_LIMIT_S)
        return "OK"

    async def stream(rng: random.Random, n: int, cancel: bool = False,
                     pause_s: float = 0.0) -> str:
        text = " ".join(_sentence(rng, n + i) for i in range(3))
        call = stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text=text, config=config),
                                     timeout=CALL_LIMIT_S)
        async for message in call:
            if message.chunk.audio and cancel:
                call.cancel()
                return "CANCELLED (by the client)"
            await asyncio.sleep(pause_s)
        return "OK"

    async def live(rng: random.Random, n: int, vanish: bool = False) -> str:
        parts = [_sentence(rng, n)[:20], _sentence(rng, n)[20:] + " ", _sentence(rng, n + 1)]

        async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
            yield tts_pb2.StreamingSynthesizeRequest(config=config)
            for part in parts:
                await asyncio.sleep(0.2)
                yield tts_pb2.StreamingSynthesizeRequest(text=part)

        call = stub.StreamingSynthesize(requests(), timeout=CALL_LIMIT_S)
        async for response in call:
            if response.chunk.audio and vanish:
                call.cancel()
                return "CANCELLED (the client vanished)"
        return "OK"

    return {
        "Synthesize": unary,
        "Synthesize, 50 ms deadline": short_deadline,
        "Synthesize, oversize text": oversize,
        "SynthesizeStream": stream,
        "SynthesizeStream, cancelled at first audio": lambda r, n: stream(r, n, cancel=True),
        "SynthesizeStream, slow reader (0.5 s a chunk)": lambda r, n: stream(r, n,
                                                                             pause_s=0.5),
        "StreamingSynthesize": live,
        "StreamingSynthesize, vanishes mid-stream": lambda r, n: live(r, n, vanish=True),
    }


async def _grpc_outcome(call: Awaitable[str]) -> str:
    try:
        return await call
    except grpc.aio.AioRpcError as err:
        return err.code().name


# HTTP -----------------------------------------------------------------------------------------

def _http_calls(client: httpx2.AsyncClient) -> dict[str, Call]:
    def body(rng: random.Random, n: int, **fields: Any) -> dict[str, Any]:
        return {"model": "kokoro", "voice": VOICE, "input": _sentence(rng, n), **fields}

    async def whole(rng: random.Random, n: int, **fields: Any) -> str:
        response = await client.post("/v1/audio/speech", json=body(rng, n, **fields))
        return str(response.status_code)

    async def streamed(rng: random.Random, n: int, hang_up: bool = False,
                       read_pause_s: float = 0.0, **fields: Any) -> str:
        text = " ".join(_sentence(rng, n + i) for i in range(3))
        async with client.stream("POST", "/v1/audio/speech",
                                 json=body(rng, n, **{"input": text, **fields})) as response:
            async for _ in response.aiter_bytes(8192):
                if hang_up:
                    return f"{response.status_code}, hung up at first bytes"
                await asyncio.sleep(read_pause_s)
        return str(response.status_code)

    async def raw(content: bytes) -> str:
        response = await client.post("/v1/audio/speech", content=content,
                                     headers={"content-type": "application/json"})
        return str(response.status_code)

    return {
        "file (stream false)": lambda r, n: whole(r, n, response_format="wav", stream=False),
        "stream (mp3)": lambda r, n: streamed(r, n),
        "SSE": lambda r, n: streamed(r, n, stream_format="sse", response_format="pcm"),
        "vanishes mid-stream": lambda r, n: streamed(r, n, hang_up=True),
        "slow reader (8 KiB per 0.25 s)": lambda r, n: streamed(
            r, n, read_pause_s=0.25, response_format="pcm"),
        "malformed JSON": lambda r, n: raw(b'{"model": "kokoro", "input": "Hello'),
        "oversize text": lambda r, n: whole(r, n, input="a" * (MAX_TEXT_CHARS + 1)),
        "lone surrogate": lambda r, n: raw(
            b'{"model": "kokoro", "voice": "af_bella", "input": "Hi \\ud800 there."}'),
        "SSML-like text": lambda r, n: whole(r, n, input=SSML),
    }


# WebSocket ------------------------------------------------------------------------------------

def _websocket_calls(url: str) -> dict[str, Call]:
    config = {"type": "config", "voice": VOICE}

    async def live(rng: random.Random, n: int) -> str:
        text = _sentence(rng, n) + " " + _sentence(rng, n + 1)
        reply = await websocket_client.speak(url, [
            config, {"type": "text", "text": text[:25]}, {"type": "text", "text": text[25:]},
            {"type": "end"}], pause_s=0.2, timeout_s=CALL_LIMIT_S)
        return f"close {reply.close_code}"

    async def vanish(rng: random.Random, n: int) -> str:
        text = " ".join(_sentence(rng, n + i) for i in range(3))
        async with websocket_connect(url, proxy=None, max_size=None) as socket:
            await socket.send(json.dumps(config))
            await socket.send(json.dumps({"type": "text", "text": text}))
            await socket.send(json.dumps({"type": "end"}))
            try:
                async for message in socket:
                    if isinstance(message, bytes):
                        break
            except ConnectionClosed:
                return f"close {socket.close_code} before any audio"
        return "hung up at first audio"

    async def hostile(messages: Sequence[str | dict[str, Any]]) -> str:
        reply = await websocket_client.speak(url, messages, timeout_s=CALL_LIMIT_S)
        return f"close {reply.close_code}"

    return {
        "live text": live,
        "vanishes mid-stream": vanish,
        "not JSON": lambda r, n: hostile(["this is not JSON"]),
        "lone surrogate": lambda r, n: hostile(
            [config, '{"type": "text", "text": "Hi \\ud800 there."}', {"type": "end"}]),
        "oversize text": lambda r, n: hostile(
            [config, {"type": "text", "text": "a" * (MAX_TEXT_CHARS + 1)}, {"type": "end"}]),
    }


# Wyoming --------------------------------------------------------------------------------------

def _wyoming_calls(port: int) -> dict[str, Call]:
    async def synthesize(rng: random.Random, n: int) -> str:
        reply = await wyoming_client.synthesize(port, _sentence(rng, n), VOICE)
        return _wyoming_outcome(reply.errors)

    async def session(rng: random.Random, n: int) -> str:
        text = _sentence(rng, n) + " " + _sentence(rng, n + 1)
        reply = await wyoming_client.stream(port, [text[:20], text[20:]], 0.2, VOICE)
        return _wyoming_outcome(reply.errors)

    @contextlib.asynccontextmanager
    async def connection() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            yield reader, writer
        finally:
            writer.close()

    async def vanish(rng: random.Random, n: int) -> str:
        text = " ".join(_sentence(rng, n + i) for i in range(3))
        async with connection() as (reader, writer):
            await async_write_event(Synthesize(text=text).event(), writer)
            while (event := await async_read_event(reader)) is not None:
                if AudioChunk.is_type(event.type):
                    return "hung up at first audio"
        return "closed before any audio"

    async def hostile(frame: bytes) -> str:
        async with connection() as (reader, writer):
            writer.write(frame)
            errors = []
            while (event := await async_read_event(reader)) is not None:
                if Error.is_type(event.type):
                    errors.append(Error.from_event(event))
        return _wyoming_outcome(errors) + ", closed"

    return {
        "synthesize": synthesize,
        "streaming session": session,
        "vanishes mid-stream": vanish,
        "oversize frame": lambda r, n: hostile(
            b'{"type": "synthesize", "data_length": 100000000}\n'),
        "malformed frame": lambda r, n: hostile(b"this is not an event\n"),
    }


def _wyoming_outcome(errors: Sequence[Error]) -> str:
    if not errors:
        return "ok"
    return "wyoming " + ", ".join(str(error.code) for error in errors)


# The run ----------------------------------------------------------------------------------------

async def _loop(front: str, calls: dict[str, Call], tally: Tally, deadline: float,
                rng: random.Random, outcome: Callable[[Awaitable[str]], Awaitable[str]]
                ) -> None:
    """Takes turns through `calls` until `deadline`, a random pause between two."""
    kinds = list(calls)
    turn = 0
    while time.monotonic() < deadline:
        kind = kinds[turn % len(kinds)]
        turn += 1
        tally.add(front, kind, await _bounded(outcome(calls[kind](rng, turn * 10))))
        await asyncio.sleep(MEAN_PAUSE_S * rng.uniform(0.5, 1.5))


async def _bounded(call: Awaitable[str]) -> str:
    try:
        async with asyncio.timeout(CALL_LIMIT_S):
            return await call
    except TimeoutError:
        return f"hang (no end within {CALL_LIMIT_S:g} s)"
    except Exception as error:  # a client that breaks on a normal answer: a finding
        return f"exception {type(error).__name__}: {error}"


async def _as_is(call: Awaitable[str]) -> str:
    return await call


async def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx2.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _metric_sum(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
                **labels: str) -> float:
    return sum(value for (sample, sample_labels), value in metrics.items()
               if sample == name and set(labels.items()) <= set(sample_labels))


@dataclass(frozen=True)
class Sample:
    at_s: float
    rss_mb: float
    fds: int
    threads: int


def _sample(pid: int, started: float) -> Sample:
    rss_mb = service.Memory(pid).read()[0]
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return Sample(time.monotonic() - started, rss_mb, len(os.listdir(f"/proc/{pid}/fd")),
                  threads)


async def _inject_fault(target: Target, stub: tts_pb2_grpc.TextToSpeechServiceStub,
                        at: float, engines: int) -> dict[str, Any]:
    """At `at`, one call whose text trips the engine's test hook; then the time until every
    engine is back in rotation."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    _LOGGER.info("soak: making one engine fail")
    started = time.monotonic()
    outcome = await _grpc_outcome(stub.Synthesize(tts_pb2.SynthesizeRequest(
        text=f"This sentence is the {FAULT_MARKER} of the soak.",
        config=tts_pb2.SynthesisConfig(voice=VOICE)), timeout=CALL_LIMIT_S))
    back_s = None
    while time.monotonic() - started < CALL_LIMIT_S:
        if _metric_sum(await _metrics(target.metrics_port), "tts_engines_in_rotation") == engines:
            back_s = time.monotonic() - started
            break
        await asyncio.sleep(0.25)
    return {"outcome": outcome, "back_in_rotation_s": back_s}


async def _normal_requests(target: Target, stub: tts_pb2_grpc.TextToSpeechServiceStub
                           ) -> dict[str, str]:
    """One well-formed request through each front, after the load."""
    rng = random.Random(0)
    server = target.server
    async with httpx2.AsyncClient(base_url=server.http_url, timeout=CALL_LIMIT_S) as client:
        checks: dict[str, Awaitable[str]] = {
            "gRPC Synthesize": _grpc_outcome(_grpc_calls(stub)["Synthesize"](rng, 1)),
            "HTTP file": _http_calls(client)["file (stream false)"](rng, 2),
            "WebSocket": _websocket_calls(websocket_client.url_of(server.http_url))[
                "live text"](rng, 3),
            "Wyoming": _wyoming_calls(target.wyoming_port)["synthesize"](rng, 4),
        }
        return {name: await _bounded(check) for name, check in checks.items()}


def _slope_mb_per_min(samples: Sequence[Sample]) -> float:
    if len(samples) < 2:
        return float("nan")
    return statistics.linear_regression([s.at_s / 60 for s in samples],
                                        [s.rss_mb for s in samples]).slope


async def measure(minutes: float, onnxruntime: str) -> dict[str, Any]:
    duration_s = minutes * 60
    every_s = SAMPLE_EVERY_S
    metrics_port = free_port()
    server = start_server(
        "--onnxruntime", onnxruntime, "--http-port", str(free_port()), "--wyoming-port",
        str(free_port()), "--metrics-port", str(metrics_port),
        env={FAULT_HOOK_VARIABLE: FAULT_MARKER})
    target = Target(server, metrics_port)
    try:
        started = time.monotonic()
        samples = [_sample(server.process.pid, started)]
        engines = int(_metric_sum(await _metrics(metrics_port), "tts_engines_in_rotation"))
        tally = Tally()
        deadline = started + duration_s
        _LOGGER.info("soak: %.1f minutes on %d engine(s), a sample every %.0f s", minutes,
                     engines, every_s)

        async def sampling() -> None:
            while True:
                await asyncio.sleep(every_s)
                samples.append(_sample(server.process.pid, started))

        sampler = asyncio.ensure_future(sampling())
        async with _grpc_channel(server.address) as chan, httpx2.AsyncClient(
                base_url=server.http_url, timeout=CALL_LIMIT_S) as http:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
            fronts = {
                "gRPC": (_grpc_calls(stub), _grpc_outcome),
                "HTTP": (_http_calls(http), _as_is),
                "WebSocket": (_websocket_calls(websocket_client.url_of(server.http_url)),
                              _as_is),
                "Wyoming": (_wyoming_calls(target.wyoming_port), _as_is),
            }
            loops = [
                _loop(front, {kind: call for kind, call in calls.items()
                              if (kind in HOSTILE) == hostile},
                      tally, deadline, random.Random(f"{front} {hostile}"), outcome)
                for front, (calls, outcome) in fronts.items() for hostile in (False, True)]
            try:
                fault, *_ = await asyncio.gather(
                    _inject_fault(target, stub, started + duration_s / 2, engines), *loops)
            finally:
                sampler.cancel()
            await asyncio.sleep(2.0)  # connections closed, calls ended
            samples.append(_sample(server.process.pid, started))
            end = samples[-1]
            after = await _normal_requests(target, stub)
        metrics = await _metrics(metrics_port)
    finally:
        exit_code = server.stop()
    during = samples[:-1]  # the last one is after the load
    half = [s for s in during if s.at_s >= duration_s / 2]
    slope = _slope_mb_per_min(half)
    quarters = [statistics.median([s.rss_mb for s in during
                                   if q * duration_s / 4 <= s.at_s < (q + 1) * duration_s / 4]
                                  or [float("nan")]) for q in range(4)]
    server_codes = {code: _metric_sum(metrics, "tts_requests_total", code=code)
                    for code in ("INTERNAL", "UNKNOWN")}
    return {
        "minutes": minutes, "engines": engines, "mean_pause_s": MEAN_PAUSE_S,
        "sample_every_s": every_s, "worker_threads_cap": WORKER_THREADS_CAP,
        "calls": {front: {kind: dict(outcomes) for kind, outcomes in kinds.items()}
                  for front, kinds in tally.calls.items()},
        "bad": tally.bad, "fault": fault, "server_codes": server_codes,
        "engine_failures": _metric_sum(metrics, "tts_engine_failures_total"),
        "samples": [[s.at_s, s.rss_mb, s.fds, s.threads] for s in samples],
        "start": samples[0].__dict__, "half": (half[0].__dict__ if half else None),
        "end": end.__dict__, "rss_slope_mb_per_min": slope, "rss_quarter_medians_mb": quarters,
        "rss_flat": not (quarters[3] > (1 + GROWTH_SHARE) * quarters[1] and slope > 0),
        "after": after, "exit_code": exit_code,
        "tracebacks": sum("Traceback" in line for line in server.log),
    }


# The report -------------------------------------------------------------------------------------

def section(soak: dict[str, Any] | None) -> list[str]:
    if not soak:
        return []
    fault = soak["fault"]
    fault_ok = fault["outcome"] == "INTERNAL" and fault["back_in_rotation_s"] is not None
    start, half, end = soak["start"], soak["half"] or soak["start"], soak["end"]
    quarters = soak["rss_quarter_medians_mb"]
    after_ok = all(outcome in ("OK", "200", "close 1000", "ok")
                   for outcome in soak["after"].values())
    # The server's own count includes the one injected fault.
    server_internal = soak["server_codes"]["INTERNAL"] - (fault["outcome"] == "INTERNAL")
    rows = []
    for front, kinds in soak["calls"].items():
        for kind, outcomes in kinds.items():
            shown = ", ".join(f"{outcome} {count}" for outcome, count
                              in sorted(outcomes.items(), key=lambda item: -item[1]))
            rows.append(f"| {front} | {kind} | {sum(outcomes.values())} | {shown} |")
    total = sum(sum(outcomes.values()) for kinds in soak["calls"].values()
                for outcomes in kinds.values())

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    return [
        "## Soak: every front at once",
        "",
        f"One server ({soak['engines']:.0f} engines, the default pool) with gRPC, HTTP, its "
        f"WebSocket and Wyoming on, driven for {soak['minutes']:g} minutes by two clients per "
        "front on loopback (well-formed calls; short deadlines and hostile bodies), each "
        "taking turns through its kinds of call with "
        f"{soak['mean_pause_s'] / 2:g}-{soak['mean_pause_s'] * 1.5:g} s between two "
        f"({total} calls in all); halfway through, one gRPC call made an engine fail through "
        "the engine's test hook. `python -m bench --sections soak --soak-minutes "
        f"{soak['minutes']:g}` (bench/soak.py). Outcomes: the gRPC status, the HTTP status, the "
        "WebSocket's close code, Wyoming's error codes (`ok` for none).",
        "",
        "| front | call | calls | outcomes |",
        "|---|---|---|---|",
        *rows,
        "",
        "| must hold | measured | verdict |",
        "|---|---|---|",
        f"| no INTERNAL, UNKNOWN, 500 or WebSocket 4500, no hang or client exception, but "
        f"the injected fault | {len(soak['bad'])} at the clients, {server_internal:.0f} "
        f"INTERNAL and {soak['server_codes']['UNKNOWN']:.0f} UNKNOWN in the server's "
        f"tts_requests_total | {verdict(not soak['bad'] and server_internal == 0)} |",
        f"| the injected fault ends its call INTERNAL and the engine comes back | "
        f"{fault['outcome']}, every engine in rotation after "
        + (f"{fault['back_in_rotation_s']:.1f} s" if fault["back_in_rotation_s"] is not None
           else "never") + f" ({soak['engine_failures']:.0f} engine failure counted) | "
        f"{verdict(fault_ok)} |",
        f"| RSS does not grow after warm-up: the median of the last quarter's samples (one "
        f"every {soak['sample_every_s']:g} s) no more than {GROWTH_SHARE:.0%} above the second "
        "quarter's, or the line fitted through the second half falls | medians by quarter "
        f"{' / '.join(f'{q:.0f}' for q in quarters)} MB; "
        f"fitted slope over the second half {soak['rss_slope_mb_per_min']:+.2f} MB/min; "
        f"{start['rss_mb']:.0f} MB at the start, {end['rss_mb']:.0f} after the load, peak "
        f"{max(s[1] for s in soak['samples']):.0f} | {verdict(soak['rss_flat'])} |",
        f"| open file descriptors no more after the load than under it (half-time) | start "
        f"{start['fds']}, half-time {half['fds']}, end {end['fds']} | "
        f"{verdict(end['fds'] <= half['fds'])} |",
        f"| threads at the end at most {soak['worker_threads_cap']} above the start (asyncio's "
        f"pool of worker threads) | start {start['threads']}, half-time {half['threads']}, end "
        f"{end['threads']} | "
        f"{verdict(end['threads'] <= start['threads'] + soak['worker_threads_cap'])} |",
        "| every front answers a normal request afterwards, and the server exits 0 | "
        + ", ".join(f"{name} {outcome}" for name, outcome in soak["after"].items())
        + f"; exit {soak['exit_code']} | {verdict(after_ok and soak['exit_code'] == 0)} |",
        "",
        f"Tracebacks in the server's log: {soak['tracebacks']} (the injected fault's engine "
        "failure logs one).",
        "",
        *([f"Bad outcomes: {'; '.join(soak['bad'][:10])}.", ""] if soak["bad"] else []),
    ]
