"""Runs every measurement side by side, then writes BENCHMARKS.md and bench/benchmarks.png."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import math
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.servers import MODEL_DIR, REPO
from harness.speech import transcribe, word_error_rate
from tts_api.v1 import tts_pb2_grpc
from tts_service.language.english_normalizer import normalize
from tts_service.language.sentences import STREAMING_SPLIT, UNARY_SPLIT, SplitPolicy, split_pieces
from tts_service.synthesis import onnx_runtime

from . import (
    languages,
    live,
    lone,
    machine,
    mixes,
    replicas,
    report,
    scheduling,
    service,
    soak,
    ssml,
    texts,
)
from . import threads as thread_shapes
from .protocols import measure_fronts, measure_protocols
from .raw import RawEngine, raw_throughput
from .runtime_cpu import run_child

SHIM = onnx_runtime.DEFAULT_SHIM_PATH
RESULTS = REPO / "build" / "bench-results.json"
_LOGGER = logging.getLogger("bench")

# Clause-splitting policies compared on texts with a long first sentence. "off" never cuts a
# sentence at clauses (max_piece_chars still applies), i.e. whole sentences as the engine
# would do on its own and as unary calls are split.
POLICIES = {
    "off": UNARY_SPLIT,
    "clauses (100/40)": SplitPolicy(),
    report.STREAM_POLICY: STREAMING_SPLIT,
    "coarser (150/60)": SplitPolicy(clause_split_chars=150, min_clause_chars=60),
}
DEFAULT_POLICY = report.STREAM_POLICY
# Policies whose audio the recognizer checks: each costs a full synthesis of every text.
WER_POLICIES = ("off", "clauses (100/40)", DEFAULT_POLICY)


RAW_LOAD_REQUESTS = 8  # the raw engines split them evenly: no tail to hide


@dataclass(frozen=True)
class Plan:
    """How much to measure; --quick shrinks everything to check the code path in minutes."""

    reps: int
    paragraph_reps: int  # the ~300-word text costs as much as all the others together
    runtime_runs: int
    startup_reps: int
    shapes: tuple[tuple[int, int, int], ...]  # engines, threads, solo engine threads
    clients: tuple[int, ...]
    load_requests_per_client: int
    latency_texts: tuple[str, ...]
    clause_texts: tuple[str, ...]
    onnxruntime: str
    protocol_reps: int  # gRPC first audio beside gRPC or HTTP streams
    protocol_probes: int  # probes per repetition and background
    front_reps: int  # first audio of one text through each front
    soak_minutes: float  # the soak, run only when asked (--sections soak)
    quick: bool = False  # the sections of bench/lone.py shrink themselves
    baseline: Path | None = None  # an earlier release's checkout, beside this one (ssml)


def _plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        return Plan(reps=args.reps or 1, paragraph_reps=1, runtime_runs=1, startup_reps=1,
                    shapes=((1, 2, 0), (2, 1, 2)), clients=(1, 4),
                    load_requests_per_client=2,
                    latency_texts=("1 sentence", "3 sentences"), clause_texts=("storm",),
                    onnxruntime=args.onnxruntime, protocol_reps=1, protocol_probes=1,
                    front_reps=1, quick=True, soak_minutes=args.soak_minutes,
                    baseline=args.baseline)
    # Budgeted for about 25 minutes on 2 shared cores. 1 engine x 1 thread is left out: it was
    # the slowest shape in the measurements of shared/KOKORO_ASSETS.md.
    reps = args.reps or 3
    return Plan(reps=reps, paragraph_reps=min(reps, 2), runtime_runs=2, startup_reps=reps,
                shapes=((1, 2, 0), (2, 1, 0), (2, 2, 0), (2, 1, 2)),
                clients=(1, 2, 4, 8), load_requests_per_client=service.LOAD_REQUESTS_PER_CLIENT,
                latency_texts=tuple(texts.LATENCY_TEXTS),
                clause_texts=tuple(texts.LONG_FIRST_SENTENCES), onnxruntime=args.onnxruntime,
                protocol_reps=min(reps, 3), protocol_probes=2, front_reps=2 * reps,
                soak_minutes=args.soak_minutes, baseline=args.baseline)


def _first_piece(text: str, policy: SplitPolicy = POLICIES[DEFAULT_POLICY]) -> str:
    # What the service hands the engine first: the first piece, normalized.
    return normalize(split_pieces(text, policy)[0].text)


def _log(message: str, *args: object) -> None:
    _LOGGER.info(message, *args)


def measure_runtimes(plan: Plan) -> list[dict[str, Any]]:
    results = []
    for runtime in onnx_runtime.RUNTIMES:
        for threads in (1, 2):
            _log("runtime %s, %d thread(s)", runtime, threads)
            results.append(run_child(runtime, threads, plan.runtime_runs, MODEL_DIR, SHIM))
    return results


def measure_startup(plan: Plan) -> dict[str, dict[str, list[float]]]:
    """Seconds from start to serving per runtime, and the share spent choosing the runtime
    (on pypi that includes the one-word self-check in a child process); interleaved."""
    results: dict[str, dict[str, list[float]]] = {
        runtime: {"ready_s": [], "choose_s": []} for runtime in onnx_runtime.RUNTIMES}
    for rep in range(plan.startup_reps):
        for runtime in onnx_runtime.RUNTIMES:
            _log("start-up rep %d/%d: %s", rep + 1, plan.startup_reps, runtime)
            with service.running_server(1, 1, runtime) as server:
                log = "".join(server.log)
            results[runtime]["ready_s"].append(_logged_seconds(r"ready in ([\d.]+) s", log))
            results[runtime]["choose_s"].append(_logged_seconds(r"chosen in ([\d.]+) s", log))
    return results


def _logged_seconds(pattern: str, log: str) -> float:
    match = re.search(pattern, log)
    if match is None:
        raise RuntimeError(f"the server log has no {pattern!r}:\n{log}")
    return float(match.group(1))


async def measure_latency(plan: Plan, engine: RawEngine) -> dict[str, Any]:
    """Raw engine, unary and stream on the same texts, interleaved within each repetition."""
    latency: dict[str, dict[str, Any]] = {}
    for name in plan.latency_texts:
        text = texts.LATENCY_TEXTS[name]
        first = _first_piece(text)
        latency[name] = {"chars": len(text), "words": len(text.split()),
                         "pieces": len(split_pieces(text)), "first_piece_chars": len(first),
                         "raw_total": [], "raw_first": [], "raw_first_piece": [], "unary": [],
                         "stream_first": [], "stream_total": []}
    clauses: dict[str, dict[str, Any]] = {}
    for name in plan.clause_texts:
        text = texts.LONG_FIRST_SENTENCES[name]
        sentence = split_pieces(text, POLICIES["off"])[0].text
        clauses[name] = {
            "sentence_chars": len(sentence), "raw_sentence": [], "stream_first": [],
            "policies": {p: {"first_piece_chars": len(_first_piece(text, policy)),
                             "pieces": len(split_pieces(text, policy)), "raw_first_piece": []}
                         for p, policy in POLICIES.items()},
        }

    with service.running_server(1, engine.num_threads, plan.onnxruntime) as server:
        memory = service.Memory(server.process.pid)
        rss_start, hwm_start = memory.read()
        async with service.channel(server.address) as chan:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
            heard: dict[str, dict[str, str]] = {name: {} for name in clauses}
            with memory.sampling():
                for rep in range(plan.reps):
                    for name in plan.latency_texts:
                        if name == "paragraph" and rep >= plan.paragraph_reps:
                            continue
                        _log("latency rep %d/%d: %s", rep + 1, plan.reps, name)
                        text = texts.LATENCY_TEXTS[name]
                        row = latency[name]
                        raw = engine.synthesize(normalize(text))
                        row["raw_total"].append(raw.total_s)
                        row["raw_first"].append(raw.first_s)
                        row["raw_audio_s"] = raw.audio_s
                        row["raw_first_piece"].append(
                            engine.synthesize(_first_piece(text)).total_s)
                        unary = await service.unary(stub, text)
                        row["unary"].append(unary.total_s)
                        row["audio_s"] = unary.audio_s
                        # The paragraph's stream runs to the end once; later repetitions
                        # hang up after the first audio, which is all they are for.
                        streamed = await service.stream(
                            stub, text, first_only=name == "paragraph" and rep > 0)
                        row["stream_first"].append(streamed.first_s)
                        if not math.isnan(streamed.total_s):
                            row["stream_total"].append(streamed.total_s)
                    for name in plan.clause_texts:
                        text = texts.LONG_FIRST_SENTENCES[name]
                        _log("clauses rep %d/%d: %s", rep + 1, plan.reps, name)
                        row = clauses[name]
                        for policy_name, policy in POLICIES.items():
                            # The first repetition speaks every piece for the recognizer
                            # (WER_POLICIES only); the rest time the first piece alone, which
                            # under "off" is the whole first sentence.
                            whole = rep == 0 and policy_name in WER_POLICIES
                            pieces = split_pieces(text, policy)[: None if whole else 1]
                            spoken = [engine.synthesize(normalize(p.text)) for p in pieces]
                            row["policies"][policy_name]["raw_first_piece"].append(
                                spoken[0].total_s)
                            if whole:
                                heard[name][policy_name] = transcribe(
                                    report.concat([s.samples for s in spoken]),
                                    engine.sample_rate_hz)
                        row["raw_sentence"].append(
                            row["policies"]["off"]["raw_first_piece"][-1])
                        streamed = await service.stream(stub, text, keep_audio=rep == 0)
                        row["stream_first"].append(streamed.first_s)
                        if rep == 0:
                            heard[name]["service"] = transcribe(streamed.samples, 24000)
        rss_end, hwm_end = memory.read()

    # Corpus word error rate: every text's words joined, so long texts weigh more.
    reference = " ".join(texts.LONG_FIRST_SENTENCES[name] for name in clauses)
    wer = {way: word_error_rate(reference, " ".join(heard[name][way] for name in clauses))
           for way in ("service", *WER_POLICIES)}
    return {"texts": latency, "clauses": clauses, "wer": wer,
            "transcripts": heard,
            "server": {"engines": 1, "threads": engine.num_threads, "rss_start_mb": rss_start,
                       "hwm_start_mb": hwm_start, "rss_end_mb": rss_end, "hwm_end_mb": hwm_end,
                       "rss_max_mb": max(memory.samples_mb, default=rss_end)}}


async def measure_word_timings(plan: Plan) -> dict[str, Any]:
    """The cost of word timings: the same stream with them off and on, alternating."""
    text = texts.THREE_SENTENCES
    cells: dict[str, dict[str, list[float]]] = {
        way: {"first_s": [], "total_s": [], "cpu_s": [], "audio_s": []} for way in ("off", "on")}
    with service.running_server(1, 2, plan.onnxruntime) as server:
        async with service.channel(server.address) as chan:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
            for rep in range(plan.reps):
                for way in ("off", "on"):
                    _log("word timings rep %d/%d: %s", rep + 1, plan.reps, way)
                    cpu_before = service.cpu_s(server.process.pid)
                    streamed = await service.stream(stub, text, word_timings=way == "on")
                    row = cells[way]
                    row["cpu_s"].append(service.cpu_s(server.process.pid) - cpu_before)
                    row["first_s"].append(streamed.first_s)
                    row["total_s"].append(streamed.total_s)
                    row["audio_s"].append(streamed.audio_s)
    return {"text": text, "server": "1x2", **cells}


async def measure_load(plan: Plan) -> dict[str, Any]:
    """Throughput per pool shape and client count, each next to the raw engine's same shape."""
    raw_engines: dict[tuple[int, int], RawEngine] = {}
    results: dict[str, Any] = {"raw": {}, "service": {}, "text": texts.THROUGHPUT_TEXT,
                               "requests_per_client": plan.load_requests_per_client,
                               "raw_requests": RAW_LOAD_REQUESTS}
    for engines, threads, solo in plan.shapes:
        shape = service.shape_name(engines, threads, solo)
        # The raw side of a shape with a solo engine is its pool alone: the most a pool of
        # those engines makes when every one is busy.
        _log("raw throughput %s", shape)
        pool = []
        for index in range(engines):
            if (index, threads) not in raw_engines:
                raw_engines[index, threads] = RawEngine(MODEL_DIR, threads)
            pool.append(raw_engines[index, threads])
        rate, wall = raw_throughput(pool, texts.THROUGHPUT_TEXT, RAW_LOAD_REQUESTS)
        results["raw"][shape] = {"throughput": rate, "wall_s": wall}

        with service.running_server(engines, threads, plan.onnxruntime,
                                    solo=solo) as server:
            memory = service.Memory(server.process.pid)
            rss_start, hwm_start = memory.read()
            cells = {}
            with memory.sampling():
                for clients in plan.clients:
                    _log("service throughput %s, %d client(s)", shape, clients)
                    done = await service.load(server.address, texts.THROUGHPUT_TEXT, clients,
                                              clients * plan.load_requests_per_client)
                    cells[str(clients)] = {
                        "throughput": done.throughput, "wall_s": done.wall_s,
                        "audio_s": done.audio_s, "first_audio_median_s":
                        done.median_first_audio_s, "first_audio_max_s":
                        max(done.first_audio_s, default=float("nan")),
                        "rejected": done.rejected}
            rss_end, hwm_end = memory.read()
        results["service"][shape] = {
            "engines": engines, "threads": threads, "solo": solo,
            "cells": cells, "rss_start_mb": rss_start, "hwm_start_mb": hwm_start,
            "rss_max_mb": max(memory.samples_mb, default=rss_end), "hwm_end_mb": hwm_end}
    return results


def _machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        load = loadavg.read().split()[:3]
    return {"cpu": model, "cores": os.cpu_count(), "load_at_start": " ".join(load),
            "python": platform.python_version(), "kernel": platform.release()}


def _save(results: dict[str, Any], path: Path) -> None:
    # After every phase: a failure late in a long run keeps what was measured before it.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1), encoding="utf-8")


# A lone caller, repeated phrases, a language on first use (bench/lone.py).
LONE_SECTIONS = ("wyoming_bench", "lone", "repeats", "first_language")
MACHINE_SECTIONS = ("memory", "one_cpu", "phrase", *LONE_SECTIONS, "mixes", "ssml")
# The sections of one run, in the order they run; --sections picks some of them.
SECTIONS = ("runtimes", "startup", "threads", "latency", "live", "scheduling", "word_timings",
            "load", "protocols", "replicas", "memory", "one_cpu", "phrase", *LONE_SECTIONS,
            "mixes", "ssml", "soak")


async def run_sections(plan: Plan, sections: Sequence[str], results_path: Path
                       ) -> dict[str, Any]:
    """Only `sections`, into the results already saved (a full run's, when there is one)."""
    results: dict[str, Any] = (json.loads(results_path.read_text(encoding="utf-8"))
                               if results_path.exists() else {})
    results.setdefault("partial", {})
    for section in sections:
        _log("section %s, %d repetition(s)", section, plan.reps)
        started = time.monotonic()
        results[section] = await _machine_section(plan, section)
        results["partial"][section] = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _machine(), "duration_s": time.monotonic() - started}
        _save(results, results_path)
    return results


async def _machine_section(plan: Plan, section: str) -> dict[str, Any]:
    if section == "memory":
        return await machine.measure_memory(plan.reps)
    if section == "one_cpu":
        return await machine.measure_one_cpu(plan.reps)
    if section == "phrase":
        return await machine.measure_phrase(max(plan.reps, 5), plan.onnxruntime)
    if section == "wyoming_bench":
        return await lone.measure_wyoming_bench(plan.quick, plan.reps, plan.onnxruntime)
    if section == "lone":
        return await lone.measure_lone(plan.quick, plan.reps, plan.onnxruntime)
    if section == "repeats":
        return await lone.measure_repeats(plan.quick, plan.reps, plan.onnxruntime)
    if section == "first_language":
        return await lone.measure_first_language(plan.quick, plan.reps, plan.onnxruntime)
    if section == "mixes":
        return await mixes.measure(plan.quick, plan.reps, plan.onnxruntime)
    if section == "ssml":
        return await ssml.measure(plan.reps, plan.onnxruntime, plan.baseline)
    if section == "soak":  # never part of the whole run: it takes --soak-minutes alone
        return await soak.measure(plan.soak_minutes, plan.onnxruntime)
    if section == "scheduling":
        info = onnx_runtime.activate(plan.onnxruntime, SHIM)
        _log("raw engine on onnxruntime %s (%s)", info.version, info.name)
        # Alone, the section measures its own baseline: the raw pool of 2x1, as the
        # throughput table would (the best raw shape there).
        pool = [RawEngine(MODEL_DIR, 1) for _ in range(2)]
        rate, _ = raw_throughput(pool, texts.THROUGHPUT_TEXT, RAW_LOAD_REQUESTS)
        del pool
        result = await scheduling.measure(False, plan.reps, plan.onnxruntime,
                                          RawEngine(MODEL_DIR, 2))
        return {**result, "raw_best_throughput": rate}
    raise ValueError(f"section {section!r} runs only in a whole run (--sections takes "
                     f"{', '.join((*MACHINE_SECTIONS, 'scheduling', 'soak'))})")


async def run(plan: Plan, quick: bool, results_path: Path) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(), "plan": plan.__dict__, "quick": quick}
    # Bundled-runtime numbers come from fresh processes: the choice is one per process, and
    # this process must match the server's runtime for the side-by-side ratios.
    results["runtimes"] = measure_runtimes(plan)
    _save(results, results_path)
    results["startup"] = measure_startup(plan)
    _save(results, results_path)
    _log("threads per engine, spinning on and off")
    results["threads"] = thread_shapes.measure_all(
        plan.runtime_runs, MODEL_DIR, SHIM,
        thread_shapes.SHAPES if not quick else ((2, 1, True), (2, 2, False)))
    _save(results, results_path)
    info = onnx_runtime.activate(plan.onnxruntime, SHIM)
    results["raw_runtime"] = {"name": info.name, "version": info.version}
    _log("raw engine on onnxruntime %s (%s)", info.version, info.name)
    engine = RawEngine(MODEL_DIR, 2)
    results["latency"] = await measure_latency(plan, engine)
    _save(results, results_path)
    _log("text streamed as it is written, %d repetition(s)", plan.reps)
    results["live"] = await live.measure(plan, plan.onnxruntime, texts.THREE_SENTENCES)
    _save(results, results_path)
    results["scheduling"] = await scheduling.measure(quick, plan.reps, plan.onnxruntime, engine)
    _save(results, results_path)
    del engine
    results["word_timings"] = await measure_word_timings(plan)
    _save(results, results_path)
    _log("languages: each front end against sherpa-onnx's own")
    results["languages"] = languages.measure(plan.reps)
    _save(results, results_path)
    results["load"] = await measure_load(plan)
    _save(results, results_path)
    results["protocols"] = await measure_protocols(plan.protocol_reps, plan.protocol_probes,
                                                   plan.onnxruntime)
    _save(results, results_path)
    _log("first audio through each front, %d repetition(s)", plan.front_reps)
    results["fronts"] = await measure_fronts(plan.front_reps, plan.onnxruntime)
    _save(results, results_path)
    _log("replicas behind nginx: 1 against %d", max(replicas.REPLICA_COUNTS))
    results["replicas"] = await replicas.measure(plan.reps, plan.onnxruntime)
    _save(results, results_path)
    for section in MACHINE_SECTIONS:
        _log("section %s", section)
        started_section = time.monotonic()
        results[section] = await _machine_section(plan, section)
        results.setdefault("durations_s", {})[section] = time.monotonic() - started_section
        _save(results, results_path)
    results["duration_s"] = time.monotonic() - started
    _save(results, results_path)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="one repetition, two pool shapes, fewer clients (minutes, for "
                        "development; its numbers are not for BENCHMARKS.md)")
    parser.add_argument("--reps", type=int, default=0,
                        help="repetitions of each latency measurement (default 3; 1 with "
                        "--quick)")
    parser.add_argument("--onnxruntime", choices=onnx_runtime.RUNTIMES, default="pypi",
                        help="runtime of the server and of the in-process raw engine")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--chart", type=Path, default=REPO / "bench" / "benchmarks.png")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where the raw numbers are saved as JSON")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from --results without measuring")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help="measure only these (memory, one_cpu, phrase, scheduling, "
                        "wyoming_bench, lone, repeats, first_language, soak) into --results, "
                        "and print their report; BENCHMARKS.md is left alone (--report-only "
                        "writes it with them)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="a checkout of an earlier release: section ssml runs its server "
                        "beside this one's, plain text side by side")
    parser.add_argument("--soak-minutes", type=float, default=30.0,
                        help="how long the soak runs (--sections soak; default 30)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        stream=sys.stderr)
    if MODEL_DIR.joinpath("model.onnx").exists() is False:
        parser.error(f"no model in {MODEL_DIR}: run `make models` first")

    if args.sections:
        results = asyncio.run(run_sections(_plan(args), args.sections, args.results))
        print("\n".join(report.sections(results, args.sections)))
        return 0
    if args.report_only:
        results = json.loads(args.results.read_text(encoding="utf-8"))
    else:
        results = asyncio.run(run(_plan(args), args.quick, args.results))
        _log("raw numbers in %s (%.0f s in all)", args.results, results["duration_s"])
    report.write(results, args.out, args.chart)
    _log("wrote %s and %s", args.out, args.chart)
    return 0
