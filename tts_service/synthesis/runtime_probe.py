"""Proves, in a throwaway process, that the engine really synthesizes on PyPI's onnxruntime.

Loading the shim is final for a process, and a runtime can load and report a good version
yet crash or fail on the first inference. So before the server commits to it, a child
process does exactly that: activates it, loads the model and says one word.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

_TIMEOUT_S = 120.0
_WORD = "Ready."


def prove(shim_path: Path, model_dir: Path, timeout_s: float = _TIMEOUT_S) -> str | None:
    """None when a one-word synthesis worked on the PyPI runtime, else why not."""
    command = [sys.executable, "-m", __name__, str(shim_path), str(model_dir)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired:
        return f"a one-word synthesis took over {timeout_s:.0f} s"
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    last = lines[-1] if lines else "no message"
    if done.returncode < 0:
        return f"a one-word synthesis crashed (signal {-done.returncode}): {last}"
    return f"a one-word synthesis failed: {last}"


def _say_one_word(shim_path: Path, model_dir: Path) -> None:
    from tts_service.synthesis import onnx_runtime

    onnx_runtime.activate("pypi", shim_path)
    from tts_service.synthesis.engine import ModelFiles, load_offline_tts

    audio = load_offline_tts(ModelFiles(model_dir), num_threads=1).generate(_WORD, sid=0,
                                                                             speed=1.0)
    samples = np.asarray(audio.samples, dtype=np.float32)
    if samples.size == 0 or not np.isfinite(samples).all() or not np.abs(samples).max() > 0:
        raise RuntimeError(f"the engine made no usable audio for {_WORD!r}")


if __name__ == "__main__":
    try:
        _say_one_word(Path(sys.argv[1]), Path(sys.argv[2]))
    except Exception as err:  # the parent reads this one line
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
