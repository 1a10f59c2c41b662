"""Piece scheduling as clients see it, on the default pool: first audio, gaps, fairness, memory.

Every scenario runs against one server of the default shape, one after the other, so their
figures are side by side with the lone client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import soundfile

from harness.servers import MODEL_DIR
from harness.speech import pcm16_to_float, transcribe, word_error_rate
from tts_api.v1 import tts_pb2, tts_pb2_grpc

from . import library, service, texts
from .raw import RawEngine

_LOGGER = logging.getLogger("bench")
SLOW_READING = 10.0  # slow readers take 10 s of wall time per second of audio
# kokoro-onnx and the service's unary call take turns on the same sentence this many times at
# least: each alone drifted by 10-15% between runs on the shared machine.
LIBRARY_ROUNDS = 5


@dataclass(frozen=True)
class Scale:
    """How much to run; --quick shrinks it to check the code path."""

    reps: int
    long_text: str
    slow_clients: int
    slow_window_s: float
    short_calls: int


def scale(quick: bool, reps: int) -> Scale:
    if quick:
        return Scale(reps=1, long_text=texts.TEN_SENTENCES, slow_clients=6, slow_window_s=8.0,
                     short_calls=2)
    return Scale(reps=reps, long_text=texts.PARAGRAPH, slow_clients=20, slow_window_s=30.0,
                 short_calls=5)


@dataclass(frozen=True)
class Arrivals:
    """One streamed call as the client saw it: when each piece's audio came, and where."""

    first_s: float
    total_s: float
    audio_s: float
    # (arrival s since the call started, audio offset s, audio duration s) per chunk
    chunks: list[tuple[float, float, float]]
    samples: np.ndarray

    @property
    def worst_margin_s(self) -> float:
        """Least time any piece arrived before playback (started at the first) reached it.

        Negative means a gap: the player ran out of audio.
        """
        start = self.chunks[0][0]
        return min(offset - (arrived - start) for arrived, offset, _ in self.chunks)


async def _stream(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str,
                  seconds_per_audio_s: float = 0.0, keep_audio: bool = False) -> Arrivals:
    """Streams `text`; with `seconds_per_audio_s`, reads as slowly as that pace."""
    started = time.perf_counter()
    chunks: list[tuple[float, float, float]] = []
    audio: list[bytes] = []
    call = stub.SynthesizeStream(
        tts_pb2.SynthesizeStreamRequest(text=text,
                                        config=tts_pb2.SynthesisConfig(voice=service.VOICE)),
        timeout=service.CALL_TIMEOUT_S)
    async for message in call:
        chunk = message.chunk
        if chunk.audio_duration_seconds:
            chunks.append((time.perf_counter() - started, chunk.audio_offset_seconds,
                           chunk.audio_duration_seconds))
        if keep_audio:
            audio.append(chunk.audio)
        if seconds_per_audio_s:
            await asyncio.sleep(seconds_per_audio_s * chunk.audio_duration_seconds)
    return Arrivals(first_s=chunks[0][0], total_s=time.perf_counter() - started,
                    audio_s=sum(c[2] for c in chunks), chunks=chunks,
                    samples=pcm16_to_float(b"".join(audio)))



async def _short_calls(address: str, count: int, pause_s: float = 0.5) -> list[float]:
    """A client sending the short sentence `count` times: its first-audio times."""
    firsts = []
    async with service.stub(address) as stub:
        for _ in range(count):
            firsts.append((await _stream(stub, texts.ONE_SENTENCE)).first_s)
            await asyncio.sleep(pause_s)
    return firsts


async def measure(quick: bool, reps: int, onnxruntime: str, engine: RawEngine,
                  server_options: Sequence[str] = ()) -> dict[str, Any]:
    """The scenarios on the default pool, or on the one `server_options` make."""
    plan = scale(quick, reps)
    engines, threads, solo = service.DEFAULT_SHAPE
    result: dict[str, Any] = {"shape": service.shape_name(engines, threads, solo),
                              "server_options": list(server_options),
                              "raw_threads": engine.num_threads,
                              "long_text_words": len(plan.long_text.split()),
                              "slow_clients": plan.slow_clients,
                              "slow_window_s": plan.slow_window_s,
                              "lone_first": [], "raw_piece": [], "lone_throughput": [],
                              "unary_rtf": [], "unary_s": []}
    # The slow readers all connect at once: admission is not what this scenario measures.
    with service.running_server(engines, threads, onnxruntime,
                                "--max-queued-requests", str(plan.slow_clients + 4),
                                *server_options, solo=solo) as server:
        memory = service.Memory(server.process.pid)
        result["rss_idle_mb"] = memory.read()[0]
        async with service.stub(server.address) as stub:
            if library.available():
                result["library"] = await _library_rounds(stub, max(plan.reps, LIBRARY_ROUNDS))
            else:
                _LOGGER.info("kokoro-onnx not installed (pip install -e '.[bench]'): no "
                             "comparison")
            for rep in range(plan.reps):
                _LOGGER.info("scheduling rep %d/%d: lone client", rep + 1, plan.reps)
                # The raw 2-thread engine on the same sentence, with the server idle.
                result["raw_piece"].append(engine.synthesize(texts.ONE_SENTENCE).total_s)
                result["lone_first"].append((await _stream(stub, texts.ONE_SENTENCE)).first_s)
                unary = await service.unary(stub, texts.ONE_SENTENCE)
                result["unary_s"].append(unary.total_s)
                result["unary_audio_s"] = unary.audio_s
                result["unary_rtf"].append(unary.total_s / unary.audio_s)
                several = await _stream(stub, texts.TEN_SENTENCES)
                result["lone_throughput"].append(several.audio_s / several.total_s)

            _LOGGER.info("scheduling: lone long stream, gaps")
            long = await _stream(stub, plan.long_text, keep_audio=True)
            result["long"] = {"first_s": long.first_s, "total_s": long.total_s,
                              "audio_s": long.audio_s, "worst_margin_s": long.worst_margin_s,
                              "pieces": len(long.chunks)}
            # The split policies heard by the recognizer on the same long text: the stream's
            # (first clause, then clauses of long sentences) and unary's (whole sentences).
            _LOGGER.info("scheduling: word error rate, stream against unary")
            whole = await stub.Synthesize(
                tts_pb2.SynthesizeRequest(text=plan.long_text,
                                          config=tts_pb2.SynthesisConfig(voice=service.VOICE)),
                timeout=service.CALL_TIMEOUT_S)
            unary_samples, rate = soundfile.read(io.BytesIO(whole.audio), dtype="float32")
            result["wer"] = {
                "words": len(plan.long_text.split()),
                "stream": word_error_rate(plan.long_text, transcribe(long.samples, 24000)),
                "unary": word_error_rate(plan.long_text, transcribe(unary_samples, rate))}

        _LOGGER.info("scheduling: 2 long streams and a short-sentence client")

        async def long_client() -> float:
            async with service.stub(server.address) as stub:
                return (await _stream(stub, plan.long_text)).total_s

        longs = [asyncio.ensure_future(long_client()) for _ in range(2)]
        busy = service.Memory(server.process.pid)
        with busy.sampling():
            await asyncio.sleep(1.0)  # both long texts are under way
            result["mixed_short_first"] = await _short_calls(server.address, plan.short_calls)
            result["mixed_long_total_s"] = await asyncio.gather(*longs)
        # Every engine at work: what the slow readers' memory is compared with, since an
        # engine's working memory is given back after each run.
        result["rss_busy_max_mb"] = max(busy.samples_mb, default=memory.read()[0])

        _LOGGER.info("scheduling: %d slow readers and a fast client", plan.slow_clients)
        rss_before = memory.read()[0]
        slow = [asyncio.ensure_future(_slow_reader(server.address, plan.long_text))
                for _ in range(plan.slow_clients)]
        with memory.sampling():
            await asyncio.sleep(plan.slow_window_s / 2)
            result["slow_fast_first"] = await _short_calls(server.address, plan.short_calls)
            await asyncio.sleep(plan.slow_window_s / 2)
        for task in slow:
            task.cancel()
        outcomes = await asyncio.gather(*slow, return_exceptions=True)
        result["slow_failed"] = sum(1 for o in outcomes
                                    if isinstance(o, BaseException)
                                    and not isinstance(o, asyncio.CancelledError))
        result["rss_before_slow_mb"] = rss_before
        result["rss_slow_max_mb"] = max(memory.samples_mb, default=memory.read()[0])

        _LOGGER.info("scheduling: 4 clients, short sentences")
        four = await service.load(server.address, texts.THROUGHPUT_TEXT, 4,
                                  4 * service.LOAD_REQUESTS_PER_CLIENT)
        result["four_clients_throughput"] = four.throughput
    return result


async def _library_rounds(stub: tts_pb2_grpc.TextToSpeechServiceStub, rounds: int
                          ) -> dict[str, Any]:
    """kokoro-onnx in its own process (one synthesis after its warm-up) and the service's
    unary call on the same sentence, taking turns while the server is otherwise idle."""
    taken: dict[str, Any] = {"seconds": [], "rtf": [], "unary_s": []}
    for turn in range(rounds):
        _LOGGER.info("scheduling: kokoro-onnx against unary, round %d/%d", turn + 1, rounds)
        run = library.run_child(MODEL_DIR, texts.ONE_SENTENCE, 1)
        taken["seconds"] += run["seconds"]
        taken["rtf"] += run["rtf"]
        taken.update(version=run["version"], audio_s=run["audio_s"])
        taken["unary_s"].append((await service.unary(stub, texts.ONE_SENTENCE)).total_s)
    return taken


async def _slow_reader(address: str, text: str) -> None:
    with contextlib.suppress(grpc.aio.AioRpcError):
        async with service.stub(address) as stub:
            await _stream(stub, text, seconds_per_audio_s=SLOW_READING)


def summary(result: dict[str, Any]) -> dict[str, float]:
    """Medians the report quotes."""
    return {"lone_first": statistics.median(result["lone_first"]),
            "mixed_first": statistics.median(result["mixed_short_first"]),
            "slow_fast_first": statistics.median(result["slow_fast_first"])}
