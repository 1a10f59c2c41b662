"""SSML costs plain text nothing: the same text as plain text, as a bare `<speak>` document and
as a document with markup (a pause between its sentences, a say-as, a prosody), on one server
of the default pool (audio cache off), calls alternating; and, given `--baseline DIR` (a
checkout of an earlier release), plain text on that release's server beside this one's.

Each call is a SynthesizeStream run to its end (first audio and total) and a unary Synthesize
(total); a bare document's unary audio is compared with the plain text's, byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.servers import ServerProcess
from tts_api.v1 import tts_pb2, tts_pb2_grpc

from . import service, texts
from .lone import pool_of

_LOGGER = logging.getLogger("bench")
LIMIT = 1.05  # markup, and this release, cost plain text nothing measurable
PREVIOUS = "previous release"  # the server of --baseline

PLAIN = texts.THREE_SENTENCES
BARE = f"<speak>{PLAIN}</speak>"
# The same sentences with markup between and inside them: what a directed text costs.
DIRECTED = ("<speak>" + PLAIN.replace(". ", '.<break time="300ms"/>', 1)
            .replace(". ", '. <prosody rate="110%">', 1) + "</prosody></speak>")
KINDS = {"plain": ("text", PLAIN), "bare SSML": ("ssml", BARE),
         "directed SSML": ("ssml", DIRECTED)}


def _request(kind: str, config: tts_pb2.SynthesisConfig) -> dict[str, Any]:
    field, text = KINDS[kind]
    return {field: text, "config": config}


async def _timed(stub: tts_pb2_grpc.TextToSpeechServiceStub, kind: str
                 ) -> tuple[float, float, float, bytes]:
    """First audio and total of a stream, the unary total, and the unary audio."""
    started = time.perf_counter()
    first = 0.0
    async for message in stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(**_request(
            kind, tts_pb2.SynthesisConfig(voice=service.VOICE))),
            timeout=service.CALL_TIMEOUT_S):
        if message.chunk.audio and not first:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    started = time.perf_counter()
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(**_request(
        kind, tts_pb2.SynthesisConfig(voice=service.VOICE))), timeout=service.CALL_TIMEOUT_S)
    return first, total, time.perf_counter() - started, response.audio



@contextlib.contextmanager
def _servers(onnxruntime: str, baseline: Path | None) -> Iterator[dict[str, ServerProcess]]:
    options = ("--onnxruntime", onnxruntime, *service.no_cache())
    with contextlib.ExitStack() as stack:
        servers = {"this": stack.enter_context(service.serving(*options))}
        if baseline is not None:
            servers[PREVIOUS] = stack.enter_context(service.serving(*options, cwd=baseline))
        yield servers


async def measure(reps: int, onnxruntime: str, baseline: Path | None) -> dict[str, Any]:
    reps = max(reps, 5)
    result: dict[str, Any] = {"reps": reps, "text": PLAIN, "directed": DIRECTED,
                              "baseline": _commit(baseline) if baseline else None}
    timings: dict[str, list[tuple[float, float, float]]] = {}
    audio: dict[str, bytes] = {}
    with _servers(onnxruntime, baseline) as servers:
        result["pool"] = pool_of(servers["this"])
        calls = [(name, kind) for kind in KINDS for name in servers
                 if name == "this" or kind == "plain"]
        async with contextlib.AsyncExitStack() as stack:
            stubs = {name: await stack.enter_async_context(service.stub(server.address))
                     for name, server in servers.items()}
            for stub in stubs.values():  # warm-up: first calls pay one-off costs
                await _timed(stub, "plain")
            for rep in range(reps):
                _LOGGER.info("ssml: repetition %d/%d", rep + 1, reps)
                shift = rep % len(calls)  # each call takes every place in turn
                for name, kind in calls[shift:] + calls[:shift]:
                    first, total, unary_s, made = await _timed(stubs[name], kind)
                    timings.setdefault(f"{name} {kind}", []).append((first, total, unary_s))
                    audio.setdefault(f"{name} {kind}", made)
    result["timings"] = timings
    result["bare_same_audio"] = audio["this bare SSML"] == audio["this plain"]
    if f"{PREVIOUS} plain" in audio:
        result["previous_same_audio"] = audio[f"{PREVIOUS} plain"] == audio["this plain"]
    return result


def _commit(checkout: Path) -> str:
    """The commit a checkout is at, as the report names the release it measured."""
    done = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h of %cs"],
                          capture_output=True, text=True, check=True)
    return f"commit {done.stdout.strip()}"


def _ratios(results: dict[str, Any], over: str, under: str, part: int) -> tuple[float, float]:
    top = [timing[part] for timing in results["timings"][over]]
    bottom = [timing[part] for timing in results["timings"][under]]
    return min(top) / min(bottom), statistics.median(top) / statistics.median(bottom)


def _row(results: dict[str, Any], target: str, over: str, under: str, parts: tuple[int, ...]
         ) -> str:
    """A target row: the min- and median-based ratios of each part; met when all are."""
    ratios = [_ratios(results, over, under, part) for part in parts]
    measured = "; ".join(f"{low:.2f} / {middle:.2f}" for low, middle in ratios)
    met = all(value <= LIMIT for pair in ratios for value in pair)
    return f"| {target} | {measured} | <= {LIMIT} | {'met' if met else '**missed**'} |"


def targets(results: dict[str, Any] | None) -> list[str]:
    """Rows of *Against the targets*."""
    if not results:
        return []
    same = "yes" if results["bare_same_audio"] else "NO"
    rows = [
        _row(results, "SSML: a bare `<speak>` document / the same plain text: stream first "
             f"audio; stream total; unary total (same audio: {same})", "this bare SSML",
             "this plain", (0, 1, 2)),
        _row(results, "SSML with a break and a prosody / plain text: stream first audio",
             "this directed SSML", "this plain", (0,))]
    if results.get("baseline"):
        same = "yes" if results["previous_same_audio"] else "NO"
        rows.append(_row(
            results, "plain text, this release / the previous release side by side: stream "
            f"first audio; stream total; unary total (same audio: {same})", "this plain",
            f"{PREVIOUS} plain", (0, 1, 2)))
    return rows


def section(results: dict[str, Any] | None, minutes: str) -> list[str]:
    if not results:
        return []
    lines = [f"### SSML against plain text{minutes}", "",
             f"One server of the default pool ({results['pool']}, `--audio-cache-mb 0`)"
             + (f" beside the previous release's ({results['baseline']})"
                if results.get("baseline") else "")
             + f", calls alternating, {results['reps']} repetitions; the three sentences of "
             "the latency table as plain text, as a bare `<speak>` document, and with a "
             "300 ms break after the first sentence and the rest at 110% rate. Seconds, min / "
             "median:", "",
             "| request | stream first audio | stream total | unary total |",
             "|---|---|---|---|"]
    for name, values in results["timings"].items():
        cells = []
        for part in range(3):
            column = [value[part] for value in values]
            cells.append(f"{min(column):.2f} / {statistics.median(column):.2f}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return [*lines, ""]
