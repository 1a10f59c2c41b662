"""A lone caller gets the whole machine; repeated phrases come from memory.

Four sections, each against real servers started for it (fresh), two at a time where two
configurations are compared, their calls alternating:

- wyoming_bench: the ecosystem's own Wyoming benchmark (`wyoming-bench tts`, run as the tool
  itself, one round per run) against `--wyoming-port` on the default pool and on a pool of one
  2-thread engine, runs alternating; its four default texts, then texts of our own (assistant
  phrases and a short answer). Then `--no-unique` (the same texts again and again) with the
  audio cache on and off.
- lone: a lone gRPC stream whose first sentence has 70-90 characters and no comma, on the
  default pool and on the 1x2 pool, and the same sentence whole by unary Synthesize on the
  default pool; 4 clients' throughput on both pools.
- repeats: a sentence asked twice (its second first audio through gRPC and through Wyoming),
  and 20 assistant phrases asked in a seeded Zipf-like order, with the audio cache on and off:
  first audio and the server's CPU seconds per call.
- first_language: on a fresh default server, the first request in a language whose front end
  was not preloaded (French) against the same request again.

Options a server may not know yet (`--audio-cache-mb`, `--preload-voices`) are looked up in its
`--help` first: what needs one it refuses is recorded as not measured.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import wyoming_client
from harness.servers import ServerProcess, free_port
from tts_api.v1 import tts_pb2, tts_pb2_grpc

from . import service, texts

_LOGGER = logging.getLogger("bench")

# The pools compared: the server's own default, and one engine of 2 threads (no solo engine).
DEFAULT_POOL = "default"
ONE_BY_TWO = "1x2"
POOL_OPTIONS: dict[str, tuple[str, ...]] = {
    DEFAULT_POOL: (),
    ONE_BY_TWO: ("--engines", "1", "--engine-threads", "2", "--solo-engine-threads", "0"),
}
CACHE_OPTION = service.CACHE_OPTION
PRELOAD_OPTION = "--preload-voices"
# The cache size of the "on" servers: far more than the phrases here take (a few MB).
CACHE_MB = 64
CACHE_OPTIONS: dict[str, tuple[str, ...]] = {
    "on": (CACHE_OPTION, str(CACHE_MB)),
    "off": (CACHE_OPTION, "0"),
}

TOOL = "wyoming-bench"
TOOL_RUN_TIMEOUT_S = 900.0
# What a voice assistant says: short confirmations, and one answer of a few sentences.
OWN_TEXTS = [
    "Turned on the kitchen lights.",
    "The front door is locked and the alarm is set.",
    "I have set a timer for ten minutes.",
    "It is twenty one degrees in the living room.",
    "The nearest pharmacy is on Station Road, about ten minutes away on foot. It opens at "
    "eight in the morning and closes at six in the evening. On Sundays it is closed, but the "
    "one in the market square stays open until noon.",
]

# Lone streams: first sentences of this many characters, without a comma.
LONE_CHARS = (70, 90)
FOUR_CLIENTS = 4

# Phrases a home assistant says over and over, most often first (Zipf-like weights 1/rank).
PHRASES = [
    "Turned on the kitchen lights.",
    "Sorry, I didn't understand.",
    "Turned off the kitchen lights.",
    "Okay.",
    "Done.",
    "The front door is locked.",
    "Turned on the living room lights.",
    "Turned off the living room lights.",
    "Sorry, I couldn't find that device.",
    "The timer is done.",
    "I have set a timer for five minutes.",
    "The garage door is closed.",
    "Started the vacuum cleaner.",
    "Playing music in the kitchen.",
    "Paused the music.",
    "The heating is set to twenty degrees.",
    "Good morning! It is seven o'clock.",
    "Opened the bedroom blinds.",
    "Closed the bedroom blinds.",
    "Goodbye.",
]
ZIPF_SEED = 20261206
ZIPF_BLOCK = 50  # calls of one server before the other takes its turn

# Sentences asked twice in a row, a new one each time (the first of each pair is never cached).
REPEATED = [
    "Your package will arrive tomorrow between nine and eleven in the morning.",
    "The washing machine has finished and the laundry is ready.",
    "There is a light rain expected in the late afternoon today.",
    "Your next meeting starts in fifteen minutes in the small room.",
    "The battery of the smoke alarm in the hallway is running low.",
    "I added milk, eggs and bread to your shopping list.",
    "The back garden sprinklers will run for twenty minutes tonight.",
    "All the windows upstairs are closed and the blinds are down.",
    "The dishwasher will be done in about forty minutes from now.",
    "Your train leaves from platform four at half past eight.",
    "The temperature outside has dropped to three degrees.",
    "Someone rang the doorbell while you were away this afternoon.",
]

# A language whose front end the default server does not preload, and its voice.
LAZY_VOICE = "ff_siwis"
LAZY_LANGUAGE = "French"
LAZY_TEXT = "Le petit café près de la gare ouvre ses portes tous les matins à sept heures."
WARM_TEXT = texts.ONE_SENTENCE  # an English call first, so the engines are warm


@dataclass(frozen=True)
class Scale:
    """How much each section does; quick shrinks it to check the code path."""

    tool_rounds: int  # wyoming-bench runs per server and text set
    cache_rounds: int  # wyoming-bench --no-unique runs per server, cache on and off
    lone_texts: int
    lone_reps: int
    load_reps: int
    load_requests_per_client: int
    repeat_reps: int
    zipf_calls: int
    first_language_reps: int


def scale(quick: bool, reps: int) -> Scale:
    if quick:
        return Scale(tool_rounds=1, cache_rounds=1, lone_texts=2, lone_reps=1, load_reps=1,
                     load_requests_per_client=2, repeat_reps=1, zipf_calls=20,
                     first_language_reps=1)
    # About 9.5 minutes for wyoming_bench on a quiet machine (a run of its default texts, the
    # warm-up included, speaks some 85 s of audio), 8 for lone, 5 for repeats, 1 for
    # first_language.
    return Scale(tool_rounds=max(reps, 3), cache_rounds=2, lone_texts=6, lone_reps=max(reps, 5),
                 load_reps=max(reps, 3), load_requests_per_client=service.LOAD_REQUESTS_PER_CLIENT,
                 # each repetition asks two new sentences of REPEATED
                 repeat_reps=min(max(reps, 5), len(REPEATED) // 2), zipf_calls=200,
                 first_language_reps=max(reps, 3))


def pool_of(server: ServerProcess) -> str:
    """The pool the server logged, e.g. "2 engines of 1 thread, a solo engine of 2 threads"."""
    line = next(line for line in server.log if "serving tts_api" in line)
    return line[line.index("(") + 1:line.index(";")]



async def first_audio(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str,
                      voice: str = service.VOICE) -> float:
    """A SynthesizeStream call run to its end: seconds to its first audio."""
    started = time.perf_counter()
    first = 0.0
    call = stub.SynthesizeStream(
        tts_pb2.SynthesizeStreamRequest(text=text, config=tts_pb2.SynthesisConfig(voice=voice)),
        timeout=service.CALL_TIMEOUT_S)
    async for message in call:
        if message.chunk.audio and not first:
            first = time.perf_counter() - started
    if not first:
        raise RuntimeError(f"no audio for {text!r}")
    return first


def _alternate(names: Sequence[str], turn: int) -> list[str]:
    """`names` rotated by `turn`: each takes every place in turn, so drift favours none."""
    shift = turn % len(names)
    return [*names[shift:], *names[:shift]]


# --- wyoming-bench -------------------------------------------------------------------------

_TOOL_LINE = re.compile(r"^\[(non_streaming|streaming)\] r\d+ sent=\d+ ttft=(\d+)ms "
                        r"total=(\d+)ms audio=([\d.]+)s")
_TOOL_FAIL = re.compile(r"^\[(non_streaming|streaming)\] r\d+ FAIL: (.*)$")
MODES = ("non_streaming", "streaming")


def tool_command() -> list[str] | None:
    """The tool's own command (its console script beside this Python), or None if absent."""
    script = Path(sys.executable).parent / TOOL
    if script.exists():
        return [str(script)]
    found = shutil.which(TOOL)
    return [found] if found else None


def tool_version() -> str | None:
    try:
        return importlib.metadata.version(TOOL)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_tool(port: int, sample_texts: Sequence[str] | None, unique: bool = True
             ) -> dict[str, Any]:
    """One `wyoming-bench tts` run of one round (after its warm-up) against 127.0.0.1:`port`:
    every measurement it printed (-v), per mode, in seconds."""
    command = tool_command()
    assert command is not None
    args = [*command, "tts", f"127.0.0.1:{port}", "--rounds", "1", "-v", "--timeout", "120"]
    if sample_texts:
        args += ["--texts", *sample_texts]
    if not unique:
        args.append("--no-unique")
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, check=False,
                          timeout=TOOL_RUN_TIMEOUT_S)
    run: dict[str, Any] = {mode: {"ttft_s": [], "total_s": [], "audio_s": []} for mode in MODES}
    run["failures"] = []
    for line in done.stdout.splitlines():
        if match := _TOOL_LINE.match(line):
            cell = run[match.group(1)]
            cell["ttft_s"].append(int(match.group(2)) / 1000)
            cell["total_s"].append(int(match.group(3)) / 1000)
            cell["audio_s"].append(float(match.group(4)))
        elif match := _TOOL_FAIL.match(line):
            run["failures"].append(f"{match.group(1)}: {match.group(2)}")
    run["exit_code"] = done.returncode
    run["wall_s"] = time.monotonic() - started
    expected = len(sample_texts) if sample_texts else 4
    for mode in MODES:
        if len(run[mode]["ttft_s"]) != expected:
            raise RuntimeError(f"{TOOL} measured {len(run[mode]['ttft_s'])} {mode} calls of "
                               f"{expected} (exit {done.returncode}):\n{done.stdout}\n"
                               f"{done.stderr}")
    return run


def _tool_rounds(ports: dict[str, int], sample_texts: Sequence[str] | None, rounds: int,
                 unique: bool, label: str) -> dict[str, list[dict[str, Any]]]:
    taken: dict[str, list[dict[str, Any]]] = {name: [] for name in ports}
    for turn in range(rounds):
        for name in _alternate(list(ports), turn):
            _LOGGER.info("%s: %s, %s, round %d/%d", TOOL, label, name, turn + 1, rounds)
            taken[name].append(run_tool(ports[name], sample_texts, unique))
    return taken


async def measure_wyoming_bench(quick: bool, reps: int, onnxruntime: str) -> dict[str, Any]:
    plan = scale(quick, reps)
    version = tool_version()
    if tool_command() is None or version is None:
        _LOGGER.info("%s is not installed (pip install -e '.[bench]'): not measured", TOOL)
        return {"installed": False}
    result: dict[str, Any] = {"installed": True, "version": version, "rounds": plan.tool_rounds,
                              "own_texts": OWN_TEXTS, "pools": {}, "sets": {}}
    with contextlib.ExitStack() as stack:
        ports = {}
        for name, options in POOL_OPTIONS.items():
            server = stack.enter_context(service.serving(
                "--onnxruntime", onnxruntime, "--wyoming-port", str(free_port()),
                *service.no_cache(), *options))
            assert server.wyoming_port is not None
            ports[name] = server.wyoming_port
            result["pools"][name] = pool_of(server)
        result["sets"]["default texts"] = _tool_rounds(ports, None, plan.tool_rounds, True,
                                                       "its default texts")
        result["sets"]["own texts"] = _tool_rounds(ports, OWN_TEXTS, plan.tool_rounds, True,
                                                   "our texts")
    result["cache"] = {"supported": service.server_accepts(CACHE_OPTION), "mb": CACHE_MB}
    if not result["cache"]["supported"]:
        _LOGGER.info("%s: the server has no %s: the cache runs are not measured", TOOL,
                     CACHE_OPTION)
        return result
    with contextlib.ExitStack() as stack:
        ports = {}
        for name, options in CACHE_OPTIONS.items():
            server = stack.enter_context(service.serving(
                "--onnxruntime", onnxruntime, "--wyoming-port", str(free_port()), *options))
            assert server.wyoming_port is not None
            ports[name] = server.wyoming_port
        result["cache"]["runs"] = _tool_rounds(ports, None, plan.cache_rounds, False,
                                               "--no-unique")
    return result


# --- a lone stream, and 4 clients ----------------------------------------------------------

def lone_texts(count: int) -> list[tuple[str, str]]:
    """(text to stream, its first sentence) for first sentences of LONE_CHARS characters."""
    low, high = LONE_CHARS
    return [(f"{first} {second}", first) for first, second in texts.NO_COMMA_FIRST_SENTENCES
            if low <= len(first) <= high][:count]


async def measure_lone(quick: bool, reps: int, onnxruntime: str) -> dict[str, Any]:
    plan = scale(quick, reps)
    chosen = lone_texts(plan.lone_texts)
    result: dict[str, Any] = {
        "texts": [text for text, _ in chosen], "first_sentence_chars": [len(f) for _, f in chosen],
        "first_s": {DEFAULT_POOL: [], ONE_BY_TWO: []}, "unary_s": [], "pools": {},
        "four_clients": {DEFAULT_POOL: [], ONE_BY_TWO: []},
        "clients": FOUR_CLIENTS, "requests_per_client": plan.load_requests_per_client,
        "load_text": texts.THROUGHPUT_TEXT}
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, options in POOL_OPTIONS.items():
            servers[name] = stack.enter_context(service.serving("--onnxruntime", onnxruntime,
                                                        *service.no_cache(), *options))
            result["pools"][name] = pool_of(servers[name])
        async with service.stub(servers[DEFAULT_POOL].address) as default, \
                service.stub(servers[ONE_BY_TWO].address) as one_by_two:
            # One unmeasured call each: connections and the engines' first run.
            for stub in (default, one_by_two):
                await first_audio(stub, texts.THROUGHPUT_TEXT)
            calls: dict[str, Callable[[str, str], Awaitable[float]]] = {
                DEFAULT_POOL: lambda text, _: first_audio(default, text),
                ONE_BY_TWO: lambda text, _: first_audio(one_by_two, text),
                "unary": lambda _, sentence: _unary_s(default, sentence)}
            for rep in range(plan.lone_reps):
                for index, (text, sentence) in enumerate(chosen):
                    _LOGGER.info("lone stream rep %d/%d, text %d/%d", rep + 1, plan.lone_reps,
                                 index + 1, len(chosen))
                    for way in _alternate(list(calls), rep * len(chosen) + index):
                        seconds = await calls[way](text, sentence)
                        (result["unary_s"] if way == "unary"
                         else result["first_s"][way]).append(seconds)
        for rep in range(plan.load_reps):
            for name in _alternate(list(servers), rep):
                _LOGGER.info("lone: %d clients on %s, rep %d/%d", FOUR_CLIENTS, name, rep + 1,
                             plan.load_reps)
                done = await service.load(servers[name].address, texts.THROUGHPUT_TEXT,
                                          FOUR_CLIENTS,
                                          FOUR_CLIENTS * plan.load_requests_per_client)
                result["four_clients"][name].append(done.throughput)
    return result


async def _unary_s(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str) -> float:
    return (await service.unary(stub, text)).total_s


# --- repeated phrases ----------------------------------------------------------------------

def zipf_order(count: int, seed: int = ZIPF_SEED) -> list[str]:
    """`count` of PHRASES drawn with weights 1/rank, the same for every run."""
    weights = [1 / rank for rank in range(1, len(PHRASES) + 1)]
    return random.Random(seed).choices(PHRASES, weights=weights, k=count)


async def measure_repeats(quick: bool, reps: int, onnxruntime: str) -> dict[str, Any]:
    plan = scale(quick, reps)
    order = zipf_order(plan.zipf_calls)
    supported = service.server_accepts(CACHE_OPTION)
    # Without the option the server has no cache: it is measured as "off" alone.
    configs = CACHE_OPTIONS if supported else {"off": ()}
    result: dict[str, Any] = {
        "supported": supported, "mb": CACHE_MB, "configs": list(configs),
        "twice": {name: {front: {"first_s": [], "second_s": []} for front in ("grpc", "wyoming")}
                  for name in configs},
        "zipf": {name: {"first_s": [], "cpu_s": 0.0, "calls": 0} for name in configs},
        "zipf_calls": len(order), "zipf_distinct": len(set(order)), "phrases": len(PHRASES),
        # whether each call's phrase was asked before (first_s of each server is in this order)
        "zipf_asked_before": [phrase in order[:index] for index, phrase in enumerate(order)],
        "seed": ZIPF_SEED, "block": ZIPF_BLOCK}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(service.serving(
            "--onnxruntime", onnxruntime, "--wyoming-port", str(free_port()), *options))
            for name, options in configs.items()}
        result["pool"] = pool_of(next(iter(servers.values())))
        async with contextlib.AsyncExitStack() as channels:
            stubs = {name: await channels.enter_async_context(service.stub(server.address))
                     for name, server in servers.items()}
            for stub in stubs.values():  # connections and the engines' first run
                await first_audio(stub, texts.THROUGHPUT_TEXT)
            sentences = iter(REPEATED)
            for rep in range(plan.repeat_reps):
                grpc_text, wyoming_text = next(sentences), next(sentences)
                for name in _alternate(list(servers), rep):
                    _LOGGER.info("repeats: a sentence twice, cache %s, rep %d/%d", name,
                                 rep + 1, plan.repeat_reps)
                    cell = result["twice"][name]
                    for key in ("first_s", "second_s"):
                        cell["grpc"][key].append(await first_audio(stubs[name], grpc_text))
                    port = servers[name].wyoming_port
                    assert port is not None
                    for key in ("first_s", "second_s"):
                        reply = await wyoming_client.synthesize(port, wyoming_text, service.VOICE)
                        assert reply.first_audio_s is not None, reply.types
                        cell["wyoming"][key].append(reply.first_audio_s)
            blocks = [order[start:start + ZIPF_BLOCK] for start in range(0, len(order),
                                                                          ZIPF_BLOCK)]
            for index, block in enumerate(blocks):
                for name in _alternate(list(servers), index):
                    _LOGGER.info("repeats: phrases %d-%d of %d, cache %s",
                                 index * ZIPF_BLOCK + 1, index * ZIPF_BLOCK + len(block),
                                 len(order), name)
                    zipf = result["zipf"][name]
                    pid = servers[name].process.pid
                    cpu_before = service.cpu_s(pid)
                    for phrase in block:
                        zipf["first_s"].append(await first_audio(stubs[name], phrase))
                    zipf["cpu_s"] += service.cpu_s(pid) - cpu_before
                    zipf["calls"] += len(block)
    return result


# --- the first request of a language not preloaded -----------------------------------------

_LOADED = re.compile(rf"{LAZY_LANGUAGE} front end loaded in ([\d.]+) s")


async def measure_first_language(quick: bool, reps: int, onnxruntime: str) -> dict[str, Any]:
    plan = scale(quick, reps)
    cache = service.server_accepts(CACHE_OPTION)
    # The repeat is the same request: with a cache it would come from memory.
    options = service.no_cache()
    result: dict[str, Any] = {
        "preload_option": service.server_accepts(PRELOAD_OPTION), "cache_off": cache,
        "voice": LAZY_VOICE, "language": LAZY_LANGUAGE, "text": LAZY_TEXT,
        "english_first_s": [], "first_s": [], "again_s": [], "loaded_at_start": [],
        "load_s": [], "rss_idle_mb": [], "rss_after_mb": []}
    for rep in range(plan.first_language_reps):
        _LOGGER.info("first %s request on a fresh server, rep %d/%d", LAZY_LANGUAGE, rep + 1,
                     plan.first_language_reps)
        with service.serving("--onnxruntime", onnxruntime, *options) as server:
            result["pool"] = pool_of(server)
            at_start = len(server.log)
            memory = service.Memory(server.process.pid)
            result["rss_idle_mb"].append(memory.read()[0])
            async with service.stub(server.address) as stub:
                result["english_first_s"].append(await first_audio(stub, WARM_TEXT))
                result["first_s"].append(await first_audio(stub, LAZY_TEXT, LAZY_VOICE))
                result["again_s"].append(await first_audio(stub, LAZY_TEXT, LAZY_VOICE))
            result["rss_after_mb"].append(memory.read()[0])
            loads = [(index, match) for index, line in enumerate(list(server.log))
                     if (match := _LOADED.search(line))]
        result["loaded_at_start"].append(bool(loads) and loads[0][0] < at_start)
        result["load_s"].append(float(loads[0][1].group(1)) if loads else None)
    return result


