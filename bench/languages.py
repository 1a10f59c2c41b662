"""Languages: each language's front end against the route before it, side by side in one process.

"before" is sherpa-onnx 1.13.8's own front end as the service used it: every text phonemized
by espeak-ng as American English. "now" is the service's engine: the language's own front end
(tts_service/language/front_end.py, its time counted) and the same model. Per language, a
native voice
says short sentences; Whisper base hears them (word error rate; kana or pinyin error rate for
Japanese and Chinese), and the time to the first audio and the real-time factor are measured
on both routes, alternating. English also gets the suite's own recognizer (pocketsphinx) over
the bench's English texts, with first audio and throughput as ratios now/before.

`python -m bench.languages` runs this section alone and prints its part of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness import whisper
from harness.languages import SAMPLES
from harness.servers import MODEL_DIR, REPO
from harness.speech import transcribe
from harness.speech import word_error_rate as english_wer
from tts_service.language.sentences import UNARY_SPLIT, split_pieces
from tts_service.synthesis import onnx_runtime

from . import texts

_LOGGER = logging.getLogger("bench")
ROUTES = ("before", "now")
ENGLISH_TEXTS = {"1 sentence": texts.ONE_SENTENCE, "3 sentences": texts.THREE_SENTENCES,
                 "10 sentences": texts.TEN_SENTENCES}
FIRST_AUDIO_PAIRS = 4  # per repetition
# Synthesizes one text on a route: (seconds to the first audio, seconds in all, samples).
Say = Callable[[str, int], tuple[float, float, np.ndarray]]


def _timed(run: Callable[[Callable[[np.ndarray], bool]], None]
           ) -> tuple[float, float, np.ndarray]:
    chunks: list[np.ndarray] = []
    first: list[float] = []

    def on_chunk(samples: np.ndarray) -> bool:
        if not first:
            first.append(time.perf_counter())
        chunks.append(np.array(samples, dtype=np.float32))
        return True

    start = time.perf_counter()
    run(on_chunk)
    end = time.perf_counter()
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return (first[0] if first else end) - start, end - start, samples


def _routes(threads: int) -> tuple[dict[str, Any], Any]:
    """The two routes' `say(text, speaker_id)` for each language, and the voice names."""
    from tts_service.language.front_end import FrontEnds
    from tts_service.model.preparation import check_options, prepare
    from tts_service.synthesis.engine import ModelFiles, load_offline_tts

    files = ModelFiles(MODEL_DIR)
    options = check_options(files)
    builtin = options.builtin
    old = load_offline_tts(files, threads)
    new = prepare(files, [threads], options).engines[0]

    def before(text: str, speaker_id: int) -> tuple[float, float, np.ndarray]:
        # As the service called it: a piece at a time, sherpa-onnx's sentence callbacks.
        def run(on_chunk: Callable[[np.ndarray], bool]) -> None:
            for piece in split_pieces(text, UNARY_SPLIT):
                old.generate(piece.text, sid=speaker_id, speed=1.0,
                             callback=lambda samples, _: 1 if on_chunk(samples) else 0)
        return _timed(run)

    front_ends = FrontEnds()

    def now(language: str) -> Say:
        front_end = front_ends.by_code(language)

        def say(text: str, speaker_id: int) -> tuple[float, float, np.ndarray]:
            def run(on_chunk: Callable[[np.ndarray], bool]) -> None:
                for piece in front_end.pieces(text, UNARY_SPLIT):
                    # The front end's time counts, as in the service (not normalized: as before).
                    new.speak(front_end.utterance(piece.text, normalized=False), speaker_id,
                              1.0, lambda sentence: on_chunk(sentence.samples), timed=False)
            return _timed(run)
        return say

    for say in (before, now("en-US")):
        say("Ready.", 0)  # one-off allocations stay out of the timings
    return {"before": lambda language: before, "now": now}, [v.name for v in builtin]


# In a fresh interpreter, so each front end's memory is what it adds to a bare process (in
# this order: later ones share what earlier ones loaded, as in the server).
_FRONT_END_COSTS = textwrap.dedent(
    """
    import json, time
    from tts_service.language.languages import LANGUAGES
    from tts_service.language.g2p import Phonemizer

    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

    phonemizer = Phonemizer()
    costs = []
    for language in LANGUAGES:
        before, started = rss_mb(), time.perf_counter()
        phonemizer.load(language)
        costs.append({"language": language.code, "load_s": time.perf_counter() - started,
                      "rss_mb": rss_mb() - before})
    print(json.dumps(costs))
    """
)


def front_end_costs() -> list[dict[str, Any]]:
    """Seconds and megabytes each language's front end takes to load."""
    result = subprocess.run([sys.executable, "-c", _FRONT_END_COSTS], cwd=REPO,
                            capture_output=True, text=True, check=True, timeout=300)
    return list(json.loads(result.stdout.splitlines()[-1]))


def _mm(values: list[float]) -> list[float]:
    return [min(values), statistics.median(values)]


def measure(reps: int = 3, threads: int = 2) -> dict[str, Any]:
    started = time.perf_counter()
    costs = [front_end_costs() for _ in range(reps)]
    onnx_runtime.activate("pypi", onnx_runtime.DEFAULT_SHIM_PATH)
    routes, names = _routes(threads)
    languages: list[dict[str, Any]] = []
    for sample in SAMPLES:
        _LOGGER.info("languages: %s with %s", sample.language, sample.voice)
        speaker_id = names.index(sample.voice)
        row: dict[str, Any] = {"language": sample.language, "voice": sample.voice}
        for route in ROUTES:
            row[route] = {"first_s": [], "rtf": [], "errors": [], "heard": []}
        for rep in range(reps):
            for sentence in sample.sentences:
                order = ROUTES if rep % 2 == 0 else ROUTES[::-1]
                for route in order:
                    first_s, total_s, samples = routes[route](sample.language)(
                        sentence, speaker_id)
                    found = row[route]
                    found["first_s"].append(first_s)
                    found["rtf"].append(total_s / max(len(samples) / 24000, 1e-6))
                    if rep == 0 and sample.language != "hi-IN":
                        heard = whisper.hear(samples, 24000, sample.whisper)
                        found["heard"].append(heard)
                        found["errors"].append(whisper.error_rate(sentence, heard,
                                                                  sample.whisper))
        languages.append(row)
    english = _measure_english(routes, names.index("af_bella"), reps)
    return {"threads": threads, "reps": reps, "languages": languages, "english": english,
            "front_ends": costs, "duration_s": time.perf_counter() - started}


def _measure_english(routes: dict[str, Any], speaker_id: int, reps: int) -> dict[str, Any]:
    """af_bella over the bench's English texts: pocketsphinx's WER, first audio, throughput."""
    found: dict[str, Any] = {route: {"first_s": [], "throughput": [], "wer": []}
                             for route in ROUTES}
    for rep in range(reps):
        _LOGGER.info("languages: English, repetition %d", rep + 1)
        # First audio differs by a few percent at most: more pairs than the rest gets.
        for pair in range(FIRST_AUDIO_PAIRS):
            for route in (ROUTES if pair % 2 == 0 else ROUTES[::-1]):
                first_s, _, _ = routes[route]("en-US")(texts.ONE_SENTENCE, speaker_id)
                found[route]["first_s"].append(first_s)
        audio_s = dict.fromkeys(ROUTES, 0.0)
        wall_s = dict.fromkeys(ROUTES, 0.0)
        for text in ENGLISH_TEXTS.values():
            for route in (ROUTES if rep % 2 == 0 else ROUTES[::-1]):
                _, total_s, samples = routes[route]("en-US")(text, speaker_id)
                audio_s[route] += len(samples) / 24000
                wall_s[route] += total_s
                if rep == 0:
                    found[route]["wer"].append(english_wer(text, transcribe(samples, 24000)))
        for route in ROUTES:
            found[route]["throughput"].append(audio_s[route] / wall_s[route])
    return found


def _pair(now: list[float], before: list[float]) -> tuple[float, float]:
    """(ratio of the minimums, ratio of the medians), now / before."""
    return min(now) / min(before), statistics.median(now) / statistics.median(before)


# The targets for English: nothing lost against the route before.
FIRST_AUDIO_LIMIT = 1.05
THROUGHPUT_LIMIT = 0.95


def targets(results: dict[str, Any] | None) -> list[str]:
    """This section's rows of BENCHMARKS.md's table of targets."""
    if not results:
        return []
    before, now = results["english"]["before"], results["english"]["now"]
    first = _pair(now["first_s"], before["first_s"])
    throughput = _pair(now["throughput"], before["throughput"])
    wer = (statistics.mean(now["wer"]), statistics.mean(before["wer"]))
    return [
        f"| English first audio, own front end / sherpa-onnx's, 1 sentence | {first[0]:.2f} / "
        f"{first[1]:.2f} | <= {FIRST_AUDIO_LIMIT} | "
        f"{'met' if first[1] <= FIRST_AUDIO_LIMIT else '**missed**'} |",
        f"| English throughput, own front end / sherpa-onnx's | {throughput[0]:.2f} / "
        f"{throughput[1]:.2f} | >= {THROUGHPUT_LIMIT} | "
        f"{'met' if throughput[1] >= THROUGHPUT_LIMIT else '**missed**'} |",
        f"| English WER (pocketsphinx), own front end against sherpa-onnx's | {wer[0]:.3f} "
        f"against {wer[1]:.3f} | no higher | {'met' if wer[0] <= wer[1] else '**missed**'} |",
    ]


def section(results: dict[str, Any] | None) -> list[str]:
    """This section of BENCHMARKS.md."""
    if not results:
        return []
    lines = [
        "## Languages: each language's own front end",
        "",
        f"Measured in one process on an engine of {results['threads']} threads, {results['reps']}"
        " repetitions alternating the routes. *before*: sherpa-onnx's own front end as the "
        "service used it (every text read as American English by espeak-ng); *now*: the "
        "language's front end (`tts_service/language/front_end.py`, its time included) on the "
        "same model. "
        "Error rate: Whisper base's word error rate on two sentences said by a native voice "
        "(Japanese: kana error rate; Chinese: toneless pinyin error rate; Hindi is not judged by"
        " Whisper, which writes it in Urdu script: tests check its phonemes instead). First "
        "audio and real-time factor: min / median over every sentence.",
        "",
        "| language | voice | error before | error now | first audio before (s) | "
        "first audio now (s) | real-time factor before | real-time factor now |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["languages"]:
        errors = [f"{statistics.mean(row[route]['errors']):.2f}" if row[route]["errors"]
                  else "—" for route in ROUTES]
        timings = [f"{a:.2f} / {b:.2f}" for route in ROUTES
                   for a, b in [_mm(row[route]["first_s"])]]
        rtfs = [f"{a:.2f} / {b:.2f}" for route in ROUTES for a, b in [_mm(row[route]["rtf"])]]
        lines.append(f"| {row['language']} | {row['voice']} | {errors[0]} | {errors[1]} | "
                     f"{timings[0]} | {timings[1]} | {rtfs[0]} | {rtfs[1]} |")
    lines += ["", "Japanese and Chinese came out fast *before* because they said almost nothing: "
              "Japanese as English letter names, Chinese as a moment of silence (every "
              "ideograph unknown)."]
    english = results["english"]
    before, now = english["before"], english["now"]
    first, throughput = (_pair(now["first_s"], before["first_s"]),
                         _pair(now["throughput"], before["throughput"]))
    lines += [
        "",
        "English with af_bella, now / before (min-based / median-based): first audio of the "
        f"one-sentence text ({len(now['first_s'])} pairs) {first[0]:.2f} / "
        f"{first[1]:.2f} (now {statistics.median(now['first_s']):.2f} s, before "
        f"{statistics.median(before['first_s']):.2f} s, median); throughput {throughput[0]:.2f}"
        f" / {throughput[1]:.2f} over the bench's 1-, 3- and 10-sentence texts (now "
        f"{statistics.median(now['throughput']):.2f}, before "
        f"{statistics.median(before['throughput']):.2f} audio seconds per second); WER "
        f"(pocketsphinx, the suite's recognizer) {statistics.mean(now['wer']):.3f} now, "
        f"{statistics.mean(before['wer']):.3f} before.",
        "",
        "Loading each language's front end, in a fresh process, in this order (later ones "
        "share what earlier ones loaded); min / median of "
        f"{len(results['front_ends'])} processes. Each loads on its language's first request, "
        "except those of `--preload-voices` (default: the default voice's, American English), "
        "at start-up (`tts_service/language/front_end.py`).",
        "",
        "| language | load (s) | memory added (MB) |",
        "|---|---|---|",
    ]
    for k, first in enumerate(results["front_ends"][0]):
        runs = [costs[k] for costs in results["front_ends"]]
        seconds, megabytes = _mm([r["load_s"] for r in runs]), _mm([r["rss_mb"] for r in runs])
        lines.append(f"| {first['language']} | {seconds[0]:.2f} / {seconds[1]:.2f} | "
                     f"{megabytes[0]:.0f} / {megabytes[1]:.0f} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.languages", description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--results", type=Path, default=REPO / "build" / "bench-languages.json")
    parser.add_argument("--english-only", action="store_true",
                        help="re-measure only the English comparison into --results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        stream=sys.stderr)
    if args.english_only:
        results = json.loads(args.results.read_text(encoding="utf-8"))
        onnx_runtime.activate("pypi", onnx_runtime.DEFAULT_SHIM_PATH)
        routes, names = _routes(results["threads"])
        results["english"] = _measure_english(routes, names.index("af_bella"), args.reps)
    else:
        results = measure(args.reps)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print("\n".join(["| target | measured | limit | verdict |", "|---|---|---|---|",
                     *targets(results), "", *section(results)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
