"""The whole machine: the default pool's memory, one CPU, and the first sentence's phrase cut.

- Memory: resident memory of the default pool's server idle, with one engine more, and after
  the ~300-word paragraph, each server started anew, alternating.
- One CPU: a server started under `taskset -c 0` (its default pool follows the one CPU) next
  to one raw single-thread engine pinned to the same CPU in a child process, alternating.
- Phrase cut: texts whose first sentence has no comma, streamed on the default pool in this
  process (the server's scheduler and engines) with the first sentence cut at a phrase and
  whole, alternating; the recognizer's word error rate over all of them under both; and the
  server's own stream of the same texts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from harness.servers import MODEL_DIR, REPO, ServerProcess
from harness.speech import transcribe, word_error_rate
from tts_api.v1 import tts_pb2_grpc
from tts_service.language.front_end import FrontEnds
from tts_service.language.languages import ENGLISH
from tts_service.language.sentences import STREAMING_SPLIT, UNARY_SPLIT, SplitPolicy, split_pieces

from . import service, texts
from .raw import RawEngine

_LOGGER = logging.getLogger("bench")
ONE_CPU = 0
# The stream split of today's server, and the same without cutting a first sentence at a phrase.
PHRASE_POLICIES: dict[str, SplitPolicy] = {
    "phrase": STREAMING_SPLIT,
    "whole": dataclasses.replace(STREAMING_SPLIT, first_phrase_chars=None),
}
FOUR_CLIENTS = 4


@contextmanager
def _pinned(cpus: set[int]) -> Iterator[None]:
    """This thread on `cpus` for the block: processes started in it inherit the mask."""
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, everywhere)


@contextmanager
def _server(*args: str, cpus: set[int] | None = None) -> Iterator[ServerProcess]:
    with contextlib.ExitStack() as stack:
        # Started pinned (the server's affinity is inherited), stopped after the caller's use.
        with _pinned(cpus or os.sched_getaffinity(0)):
            server = stack.enter_context(service.serving(*service.no_cache(), *args))
        yield server


def _pool_line(server: ServerProcess) -> str:
    line = next(line for line in server.log if "serving tts_api" in line)
    return line[line.index("(") + 1:line.rindex(";")]


async def measure_memory(reps: int) -> dict[str, Any]:
    """Idle RSS of the default pool and of one engine more; RSS after the paragraph."""
    engines = service.DEFAULT_SHAPE[0]
    result: dict[str, Any] = {"idle_mb": [], "idle_one_more_mb": [], "after_paragraph_mb": [],
                              "peak_paragraph_mb": [], "paragraph_words":
                              len(texts.PARAGRAPH.split())}
    for rep in range(reps):
        _LOGGER.info("memory rep %d/%d", rep + 1, reps)
        with _server() as server:
            result["pool"] = _pool_line(server)
            memory = service.Memory(server.process.pid)
            await asyncio.sleep(1.0)
            idle = memory.read()[0]
            result["idle_mb"].append(idle)
            async with service.channel(server.address) as chan:
                stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
                with memory.sampling():
                    await service.stream(stub, texts.PARAGRAPH)
            result["after_paragraph_mb"].append(memory.read()[0])
            result["peak_paragraph_mb"].append(max(memory.samples_mb, default=idle))
        with _server("--engines", str(engines + 1)) as server:
            result["pool_one_more"] = _pool_line(server)
            await asyncio.sleep(1.0)
            result["idle_one_more_mb"].append(service.Memory(server.process.pid).read()[0])
    return result


def raw_one_cpu(runs: int, requests: int) -> dict[str, Any]:
    """In the child, pinned to one CPU: one raw single-thread engine, a lone sentence and
    `requests` short ones in a row (what one engine makes when it is never idle)."""
    os.sched_setaffinity(0, {ONE_CPU})
    from tts_service.synthesis import onnx_runtime

    onnx_runtime.activate("pypi", onnx_runtime.DEFAULT_SHIM_PATH)
    engine = RawEngine(MODEL_DIR, 1)
    lone = [engine.synthesize(texts.ONE_SENTENCE).first_s for _ in range(runs)]
    started = time.perf_counter()
    audio_s = sum(engine.synthesize(texts.THROUGHPUT_TEXT).audio_s for _ in range(requests))
    return {"lone_first_s": lone, "throughput": audio_s / (time.perf_counter() - started)}


def _raw_one_cpu_child(runs: int, requests: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.machine", "--raw-one-cpu", str(runs),
                           str(requests)], capture_output=True, text=True, check=True, cwd=REPO)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def measure_one_cpu(reps: int) -> dict[str, Any]:
    """The default pool under `taskset -c 0` against one raw single-thread engine there."""
    requests = FOUR_CLIENTS * service.LOAD_REQUESTS_PER_CLIENT
    result: dict[str, Any] = {"raw_first_s": [], "raw_throughput": [], "lone_first_s": [],
                              "four_clients_throughput": [], "requests": requests}
    for rep in range(reps):
        _LOGGER.info("one CPU rep %d/%d: raw engine", rep + 1, reps)
        raw = _raw_one_cpu_child(1, requests)
        result["raw_first_s"] += raw["lone_first_s"]
        result["raw_throughput"].append(raw["throughput"])
        _LOGGER.info("one CPU rep %d/%d: service", rep + 1, reps)
        with _server(cpus={ONE_CPU}) as server:
            result["pool"] = _pool_line(server)
            async with service.channel(server.address) as chan:
                stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
                result["lone_first_s"].append(
                    (await service.stream(stub, texts.ONE_SENTENCE)).first_s)
            done = await service.load(server.address, texts.THROUGHPUT_TEXT, FOUR_CLIENTS,
                                      requests)
            result["four_clients_throughput"].append(done.throughput)
    return result


class _InProcessPool:
    """The default pool as the server builds it (engines, twins, scheduler), in this process."""

    def __init__(self) -> None:
        from tts_service.model.preparation import check_options, prepare
        from tts_service.synthesis.engine import ModelFiles
        from tts_service.synthesis.scheduler import Scheduler

        engines, threads, solo = service.DEFAULT_SHAPE
        files = ModelFiles(MODEL_DIR)
        options = check_options(files)
        voices = options.builtin
        loaded = prepare(files, [threads] * engines + ([solo] if solo else []),
                         options).engines
        self.speaker_id = next(v.speaker_id for v in voices if v.name == service.VOICE)
        self.front_end = FrontEnds()[ENGLISH]
        self.scheduler = Scheduler(loaded[:engines], max_waiting=8, read_ahead_s=600.0,
                                   solo=loaded[engines] if solo else None)

    def _work(self, engine: Any, piece: Any, on_chunk: Any) -> None:
        engine.speak(self.front_end.utterance(piece.text), self.speaker_id, 1.0,
                     lambda sentence: on_chunk(sentence.samples), timed=False)

    async def stream(self, text: str, policy: SplitPolicy, whole: bool
                     ) -> tuple[float, list[tuple[float, float]], np.ndarray]:
        """First audio s; (arrival s, audio offset s) per chunk; the audio if `whole`."""
        started = time.perf_counter()
        arrivals: list[tuple[float, float]] = []
        chunks: list[np.ndarray] = []
        offset_s = 0.0
        async for item in self.scheduler.stream(split_pieces(text, policy), self._work):
            assert isinstance(item, tuple)
            _, samples = item
            arrivals.append((time.perf_counter() - started, offset_s))
            offset_s += len(samples) / self.scheduler.sample_rate_hz
            chunks.append(samples)
            if not whole:
                break
        while self.scheduler.busy:  # pieces still running finish before the next call
            await asyncio.sleep(0.01)
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return arrivals[0][0], arrivals, audio


def _worst_margin_s(arrivals: Sequence[tuple[float, float]]) -> float:
    """Least time a chunk arrived before playback, started at the first, reached it."""
    start = arrivals[0][0]
    return min(offset - (arrived - start) for arrived, offset in arrivals)


async def measure_phrase(reps: int, onnxruntime: str) -> dict[str, Any]:
    """First audio with the first sentence cut at a phrase and whole; the recognizer's WER."""
    from tts_service.synthesis import onnx_runtime

    onnx_runtime.activate(onnxruntime, onnx_runtime.DEFAULT_SHIM_PATH)
    timed = [first + " " + second for first, second in texts.NO_COMMA_FIRST_SENTENCES
             if len(split_pieces(first, STREAMING_SPLIT)) > 1][:texts.NO_COMMA_TIMED]
    pool = _InProcessPool()
    result: dict[str, Any] = {
        "texts": timed,
        "first_sentence_chars": [len(split_pieces(t, UNARY_SPLIT)[0].text) for t in timed],
        "first_piece_chars": [len(split_pieces(t, STREAMING_SPLIT)[0].text) for t in timed],
        "first_s": {name: [] for name in PHRASE_POLICIES}, "service_first_s": []}
    with _server() as server:
        result["pool"] = _pool_line(server)
        async with service.channel(server.address) as chan:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
            for rep in range(reps):
                _LOGGER.info("phrase cut rep %d/%d", rep + 1, reps)
                order = list(PHRASE_POLICIES) if rep % 2 == 0 else list(PHRASE_POLICIES)[::-1]
                for text in timed:
                    for name in order:
                        first_s, _, _ = await pool.stream(text, PHRASE_POLICIES[name], False)
                        result["first_s"][name].append(first_s)
                    result["service_first_s"].append(
                        (await service.stream(stub, text, first_only=True)).first_s)
    corpus = [first + " " + second for first, second in texts.NO_COMMA_FIRST_SENTENCES]
    result["wer_words"] = sum(len(text.split()) for text in corpus)
    result["wer"], result["worst_margin_s"], result["cut"] = {}, {}, 0
    for name, policy in PHRASE_POLICIES.items():
        _LOGGER.info("phrase cut: word error rate, %s first sentences", name)
        heard, margins = [], []
        for text in corpus:
            _, arrivals, audio = await pool.stream(text, policy, True)
            heard.append(transcribe(audio, pool.scheduler.sample_rate_hz))
            margins.append(_worst_margin_s(arrivals))
        result["wer"][name] = word_error_rate(" ".join(corpus), " ".join(heard))
        result["worst_margin_s"][name] = min(margins)
    result["cut"] = sum(len(split_pieces(first, STREAMING_SPLIT)) > 1
                        for first, _ in texts.NO_COMMA_FIRST_SENTENCES)
    result["corpus_texts"] = len(corpus)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw-one-cpu", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_one_cpu:
        print(json.dumps(raw_one_cpu(*args.raw_one_cpu)))


if __name__ == "__main__":
    main()
