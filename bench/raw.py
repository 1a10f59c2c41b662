"""The raw engine: sherpa-onnx called directly in this process, the baseline of every ratio."""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AF_BELLA = "af_bella"


@dataclass(frozen=True)
class RawTiming:
    """One raw synthesis: wall time to the first sentence's audio and to the end."""

    first_s: float
    total_s: float
    audio_s: float
    samples: np.ndarray


class RawEngine:
    """One sherpa-onnx OfflineTts with the service's model files, voice af_bella."""

    def __init__(self, model_dir: Path, num_threads: int) -> None:
        # The caller must have chosen the runtime (onnx_runtime.activate) first.
        from tts_service.synthesis.engine import ModelFiles, load_offline_tts

        self.num_threads = num_threads
        self._tts = load_offline_tts(ModelFiles(model_dir), num_threads)
        self.sample_rate_hz = int(self._tts.sample_rate)
        names = (model_dir / "voices.txt").read_text(encoding="utf-8").split()
        self.speaker_id = names.index(AF_BELLA)
        # As the server does: the first call pays one-off allocations, keep it out of timings.
        self.synthesize("Ready.")

    def synthesize(self, text: str) -> RawTiming:
        """Synthesizes `text` as a plain sherpa-onnx user would: one call, sentence callbacks."""
        chunks: list[np.ndarray] = []
        first: list[float] = []

        def on_sentence(samples: np.ndarray, _progress: float) -> int:
            if not first:
                first.append(time.perf_counter())
            chunks.append(samples)
            return 1

        start = time.perf_counter()
        # The returned GeneratedAudio is not read: its .samples converts every sample into a
        # Python float list, a cost the service never pays either.
        self._tts.generate(text, sid=self.speaker_id, speed=1.0, callback=on_sentence)
        end = time.perf_counter()
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return RawTiming(first_s=(first[0] if first else end) - start, total_s=end - start,
                         audio_s=len(samples) / self.sample_rate_hz, samples=samples)


def raw_throughput(engines: list[RawEngine], text: str, requests: int) -> tuple[float, float]:
    """Runs `requests` syntheses spread over `engines` in parallel threads, as a pool would.

    Returns (audio seconds per wall second, wall seconds). sherpa-onnx releases the GIL while
    it computes, so the threads really run at once.
    """
    per_engine = [requests // len(engines)] * len(engines)
    for i in range(requests % len(engines)):
        per_engine[i] += 1

    def work(engine: RawEngine, count: int) -> float:
        return sum(engine.synthesize(text).audio_s for _ in range(count))

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(engines)) as pool:
        audio_s = sum(pool.map(work, engines, per_engine))
    wall_s = time.perf_counter() - start
    return audio_s / wall_s, wall_s
