"""The library a single user would pick instead: kokoro-onnx, in-process, on the same model.

Runs in a child process (it brings its own onnxruntime session), with a voices .npz written
from the model's voices.bin, so both sides speak with the same weights and style tables.
kokoro-onnx is a bench-only dependency (the `bench` extra); without it this is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VOICE = "af_bella"
STYLE_SHAPE = (510, 1, 256)  # one voice's style table in voices.bin (KOKORO_ASSETS.md)


def available() -> bool:
    return importlib.util.find_spec("kokoro_onnx") is not None


def measure(model_dir: Path, text: str, runs: int) -> dict[str, Any]:
    """In the child: real-time factors of `runs` kokoro-onnx syntheses of `text`."""
    import importlib.metadata

    import numpy as np
    from kokoro_onnx import Kokoro

    names = (model_dir / "voices.txt").read_text(encoding="utf-8").split()
    tables = np.fromfile(model_dir / "voices.bin", dtype="<f4").reshape(len(names),
                                                                         *STYLE_SHAPE)
    with tempfile.TemporaryDirectory(prefix="bench-kokoro-onnx-") as scratch:
        voices = Path(scratch) / "voices.npz"
        np.savez(voices, **{name: tables[i] for i, name in enumerate(names)})
        kokoro = Kokoro(str(model_dir / "model.onnx"), str(voices))
        kokoro.create("Ready.", voice=VOICE)  # one-off allocations out of the timings
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            samples, rate = kokoro.create(text, voice=VOICE, speed=1.0, lang="en-us")
            seconds.append(time.perf_counter() - start)
    audio_s = len(samples) / rate
    return {"version": importlib.metadata.version("kokoro-onnx"), "seconds": seconds,
            "audio_s": audio_s, "rtf": [s / audio_s for s in seconds]}


def run_child(model_dir: Path, text: str, runs: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.library", "--model-dir", str(model_dir), "--runs",
         str(runs), text],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("text")
    args = parser.parse_args()
    print(json.dumps(measure(args.model_dir, args.text, args.runs)))


if __name__ == "__main__":
    main()
