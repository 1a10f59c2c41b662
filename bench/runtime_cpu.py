"""Measures CPU seconds per second of audio for each onnxruntime choice and thread count."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness.servers import MODEL_DIR, REPO
from tts_service.synthesis import onnx_runtime

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "My brother plays the guitar in a small band. "
    "Please call me back when you get home."
)
AF_BELLA = 2


def measure(runtime: str, num_threads: int, runs: int, model_dir: Path, shim: Path) -> dict:
    """Runs in the child: picks the runtime, loads the model, times `runs` syntheses."""
    info = onnx_runtime.activate(runtime, shim)
    from tts_service.synthesis.engine import ModelFiles, load_offline_tts

    tts = load_offline_tts(ModelFiles(model_dir), num_threads)
    # The first call pays one-off allocations and thread-pool start-up; keep it out.
    tts.generate("Warm up.", sid=AF_BELLA, speed=1.0)
    cpu_per_audio_s = []
    wall_per_audio_s = []
    for _ in range(runs):
        # process_time counts every thread of this process, which is what a pool pays for.
        cpu0, wall0 = time.process_time(), time.perf_counter()
        audio = tts.generate(TEXT, sid=AF_BELLA, speed=1.0)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        audio_s = len(audio.samples) / audio.sample_rate
        cpu_per_audio_s.append(cpu / audio_s)
        wall_per_audio_s.append(wall / audio_s)
    return {
        "runtime": info.name,
        "version": info.version,
        "num_threads": num_threads,
        "audio_s": audio_s,
        "cpu_per_audio_s": cpu_per_audio_s,
        "wall_per_audio_s": wall_per_audio_s,
    }


def run_child(runtime: str, num_threads: int, runs: int, model_dir: Path, shim: Path) -> dict:
    """Measures one runtime and thread count in a fresh process; returns measure()'s dict."""
    # One process per runtime: the choice cannot be undone once sherpa_onnx is imported.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.runtime_cpu",
            "--child",
            runtime,
            "--threads",
            str(num_threads),
            "--runs",
            str(runs),
            "--model-dir",
            str(model_dir),
            "--shim",
            str(shim),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runtimes", nargs="+", default=list(onnx_runtime.RUNTIMES))
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--shim", type=Path, default=onnx_runtime.DEFAULT_SHIM_PATH)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = measure(args.child, args.threads[0], args.runs, args.model_dir, args.shim)
        print(json.dumps(result))
        return

    print("| runtime | version | threads | audio s | CPU s/audio s: min | median | wall/audio s |")
    print("|---|---|---|---|---|---|---|")
    for runtime in args.runtimes:
        for num_threads in args.threads:
            r = run_child(runtime, num_threads, args.runs, args.model_dir, args.shim)
            cpu = r["cpu_per_audio_s"]
            print(
                f"| {r['runtime']} | {r['version']} | {num_threads} | {r['audio_s']:.2f} "
                f"| {min(cpu):.3f} | {statistics.median(cpu):.3f} "
                f"| {statistics.median(r['wall_per_audio_s']):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
