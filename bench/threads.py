"""Threads per engine through sherpa-onnx: a lone piece's time and the pool's throughput.

Each configuration runs in a fresh process (the runtime and its spinning setting are fixed
once sherpa_onnx is imported) on the PyPI onnxruntime through the shim.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = Path(os.environ.get("TTS_MODEL_DIR", REPO / "models" / "kokoro-multi-lang-v1_0"))
SHIM = REPO / "build" / "libonnxruntime.so"


def measure(engines: int, threads: int, spinning: bool, runs: int, model_dir: Path,
            shim: Path) -> dict:
    """In the child: a lone ONE_SENTENCE on one engine, then every engine busy at once."""
    from bench import texts
    from bench.raw import RawEngine, raw_throughput
    from tts_service.synthesis import onnx_runtime

    onnx_runtime.activate("pypi", shim)
    applied = spinning or onnx_runtime.disable_intra_op_spinning()
    pool = [RawEngine(model_dir, threads) for _ in range(engines)]
    lone = [pool[0].synthesize(texts.ONE_SENTENCE) for _ in range(runs)]
    throughput = [raw_throughput(pool, texts.THROUGHPUT_TEXT, 4 * engines)[0]
                  for _ in range(runs)]
    return {"engines": engines, "threads": threads, "spinning": spinning,
            "spinning_off_applied": not spinning and applied,
            "lone_s": [t.total_s for t in lone], "lone_audio_s": lone[0].audio_s,
            "throughput": throughput}


def run_child(engines: int, threads: int, spinning: bool, runs: int, model_dir: Path,
              shim: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.threads", "--child", str(engines), str(threads),
         "on" if spinning else "off", "--runs", str(runs), "--model-dir", str(model_dir),
         "--shim", str(shim)],
        capture_output=True, text=True, check=True, cwd=REPO)
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# (engines, threads, spinning): today's default, the oversubscribed pool with and without
# spinning, and one 2-thread engine alone.
SHAPES = ((2, 1, True), (2, 2, True), (2, 2, False), (1, 2, True), (1, 2, False))


def measure_all(runs: int, model_dir: Path, shim: Path,
                shapes: tuple[tuple[int, int, bool], ...] = SHAPES) -> list[dict]:
    return [run_child(e, t, s, runs, model_dir, shim) for e, t, s in shapes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--shim", type=Path, default=SHIM)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engines, threads, spinning = args.child
        print(json.dumps(measure(int(engines), int(threads), spinning == "on", args.runs,
                                 args.model_dir, args.shim)))
        return
    print("| engines x threads | spinning | lone sentence s (min / median) | "
          "audio s per wall s, all engines busy (min / median) |")
    print("|---|---|---|---|")
    for r in measure_all(args.runs, args.model_dir, args.shim):
        print(f"| {r['engines']}x{r['threads']} | {'on' if r['spinning'] else 'off'} "
              f"| {min(r['lone_s']):.2f} / {statistics.median(r['lone_s']):.2f} "
              f"| {min(r['throughput']):.2f} / {statistics.median(r['throughput']):.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
