"""The service as a client sees it: timed calls, concurrent clients, the server's memory."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from harness.servers import REPO, ServerProcess, start_server
from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_client.client import CHANNEL_OPTIONS
from tts_service.synthesis.cpus import usable_cpus
from tts_service.synthesis.pool_shape import pool_shape

VOICE = "af_bella"
CALL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class StreamTiming:
    first_s: float
    total_s: float
    audio_s: float
    samples: np.ndarray


@dataclass(frozen=True)
class UnaryTiming:
    total_s: float
    audio_s: float


@dataclass
class Memory:
    """The server's resident memory in MB: VmRSS sampled now, VmHWM the peak so far."""

    pid: int
    samples_mb: list[float] = field(default_factory=list)

    def read(self) -> tuple[float, float]:
        fields = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) / 1024  # kB
        return fields["VmRSS"], fields["VmHWM"]

    @contextmanager
    def sampling(self, interval_s: float = 0.25) -> Iterator[None]:
        """Samples VmRSS in a background thread while the block runs."""
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(interval_s):
                try:
                    self.samples_mb.append(self.read()[0])
                except (OSError, KeyError):
                    return

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


# Calls per client in a throughput cell. A fixed batch ends with a tail where some engines
# idle; with 8 calls per client that tail (at most one piece-time) weighs little, while one
# batch of 8 calls for all clients made any schedule with an odd piece at the end lose half
# a round (the solo engine's first piece does exactly that).
LOAD_REQUESTS_PER_CLIENT = 8


def shape_name(engines: int, threads: int, solo: int = 0) -> str:
    """E.g. "2x1" (engines x threads), "2x1+solo2" with a solo engine of 2 threads."""
    return f"{engines}x{threads}" + (f"+solo{solo}" if solo else "")


# The pool `make serve` starts on this machine, by the rule for the CPUs it may use:
# (engines, threads, solo engine threads).
_DERIVED = pool_shape(usable_cpus())
DEFAULT_SHAPE = (_DERIVED.engines, _DERIVED.engine_threads, _DERIVED.solo_engine_threads)


CACHE_OPTION = "--audio-cache-mb"


@functools.cache
def server_accepts(option: str) -> bool:
    """Whether this checkout's server has `option` (from its --help)."""
    done = subprocess.run([sys.executable, "-m", "tts_service.server", "--help"],
                          capture_output=True, text=True, cwd=REPO, check=False, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    return re.search(rf"{re.escape(option)}(?![\w-])", done.stdout) is not None


def no_cache() -> tuple[str, ...]:
    """The options that turn the server's audio cache off, if it has one. The bench asks the
    same texts again and again to time their synthesis: from the cache they would take no
    time. Options given after these win (bench/lone.py turns the cache on that way)."""
    return (CACHE_OPTION, "0") if server_accepts(CACHE_OPTION) else ()


@contextmanager
def running_server(engines: int, threads: int, onnxruntime: str, *options: str,
                   solo: int = 0) -> Iterator[ServerProcess]:
    """A server of `engines` x `threads`, with a solo engine of `solo` threads if not 0."""
    with serving("--engines", str(engines), "--engine-threads", str(threads),
                 "--solo-engine-threads", str(solo), "--onnxruntime", onnxruntime,
                 *no_cache(), *options) as server:
        yield server


@contextmanager
def serving(*args: str, cwd: Path = REPO) -> Iterator[ServerProcess]:
    """A server started with `args` (from the checkout `cwd`), stopped at the end; an unclean
    exit fails the bench."""
    server = start_server(*args, cwd=cwd)
    try:
        yield server
    finally:
        code = server.stop()
        if code != 0:
            raise RuntimeError(f"server exited with {code}:\n" + "".join(server.log))


def channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


@asynccontextmanager
async def stub(address: str) -> AsyncIterator[tts_pb2_grpc.TextToSpeechServiceStub]:
    """A stub on its own channel to `address`, closed at the end."""
    async with channel(address) as chan:
        yield tts_pb2_grpc.TextToSpeechServiceStub(chan)


async def unary(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str) -> UnaryTiming:
    """A Synthesize call with the defaults (WAV at 24 kHz), timed until the reply is in."""
    start = time.perf_counter()
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text=text,
                                                               config=tts_pb2.SynthesisConfig(voice=VOICE)),
                                     timeout=CALL_TIMEOUT_S)
    return UnaryTiming(time.perf_counter() - start, response.audio_duration_seconds)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) process `pid` has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # utime and stime are fields 14 and 15, counted after the ")" that ends "(comm)".
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stream(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str, keep_audio: bool = False,
                 first_only: bool = False, word_timings: bool = False) -> StreamTiming:
    """A SynthesizeStream call (16-bit PCM): time to the first audio bytes and to the end.

    `first_only` hangs up after the first audio, then waits until the server's engine is free
    again (a one-word call queues behind it), so the next measurement runs on a quiet machine.
    """
    start = time.perf_counter()
    first = 0.0
    audio_s = 0.0
    pieces: list[bytes] = []
    config = tts_pb2.SynthesisConfig(voice=VOICE, enable_word_timings=word_timings)
    call = stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text=text, config=config),
                                 timeout=CALL_TIMEOUT_S)
    async for message in call:
        chunk = message.chunk
        if chunk.audio and not first:
            first = time.perf_counter() - start
        audio_s += chunk.audio_duration_seconds
        if keep_audio:
            pieces.append(chunk.audio)
        if first and first_only:
            call.cancel()
            break
    total = time.perf_counter() - start
    if first_only:
        await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Ok.",
                                                        config=tts_pb2.SynthesisConfig(voice=VOICE)),
                              timeout=CALL_TIMEOUT_S)
        total = float("nan")
    samples = (np.frombuffer(b"".join(pieces), dtype="<i2").astype(np.float32) / 32768.0
               if keep_audio else np.zeros(0, np.float32))
    return StreamTiming(first, total, audio_s, samples)


@dataclass(frozen=True)
class LoadResult:
    clients: int
    requests: int
    wall_s: float
    audio_s: float
    first_audio_s: list[float]
    rejected: int

    @property
    def throughput(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def median_first_audio_s(self) -> float:
        return statistics.median(self.first_audio_s) if self.first_audio_s else float("nan")


async def load(address: str, text: str, clients: int, requests: int) -> LoadResult:
    """`clients` users, each on its own channel, share `requests` streamed calls of `text`.

    A fixed amount of work split evenly, rather than a fixed duration: every cell of the
    table then does the same syntheses, and a closed loop per client keeps the pool fed.
    """
    first_audio: list[float] = []
    audio = [0.0]
    rejected = [0]

    async def client(count: int) -> None:
        async with channel(address) as chan:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
            for _ in range(count):
                try:
                    timing = await stream(stub, text)
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
                    rejected[0] += 1
                    continue
                first_audio.append(timing.first_s)
                audio[0] += timing.audio_s

    counts = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    start = time.perf_counter()
    await asyncio.gather(*(client(count) for count in counts))
    wall = time.perf_counter() - start
    return LoadResult(clients, requests, wall, audio[0], first_audio, rejected[0])
