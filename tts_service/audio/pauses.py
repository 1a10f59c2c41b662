"""Shortens long pauses in synthesized speech as sherpa-onnx does, and says where samples went.

sherpa-onnx 1.13.8 shortens pauses itself (`GeneratedAudio::ScaleSilence`, silence_scale 0.2
by default), but then nobody knows where the model's words ended up. The engines therefore run
with silence_scale 1.0 and this module does the same shortening, with the same arithmetic:
the output is identical sample for sample (docs/word-timings.md), and `Shortened.position`
maps any sample of the model's audio to its place in the shortened audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# sherpa-onnx's constants: a pause is a run of samples with |x| <= 0.01 lasting at least 0.2 s;
# it keeps its first `silence_scale` part. 0.2 is OfflineTtsConfig's default silence_scale.
SILENCE_LEVEL = np.float32(0.01)
MIN_PAUSE_S = 0.2
DEFAULT_SCALE = 0.2


@dataclass(frozen=True)
class Shortened:
    """Shortened audio, and the ranges `[start, end)` of the original that were removed."""

    samples: np.ndarray
    removed: tuple[tuple[int, int], ...]

    def position(self, original: int) -> int:
        """Where sample `original` of the unshortened audio is now (the cut's start if removed)."""
        shift = 0
        for start, end in self.removed:
            if original >= end:
                shift += end - start
            elif original > start:
                shift += original - start
        return original - shift


def shorten_pauses(samples: np.ndarray, sample_rate_hz: int,
                   scale: float = DEFAULT_SCALE) -> Shortened:
    """Keeps the first `scale` part of every pause, as sherpa-onnx's ScaleSilence does."""
    if scale == 1:
        return Shortened(samples, ())
    threshold = int(sample_rate_hz * MIN_PAUSE_S)
    quiet = np.abs(samples) <= SILENCE_LEVEL
    edges = np.diff(np.concatenate(([False], quiet, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    total = len(samples)
    removed: list[tuple[int, int]] = []
    kept: list[np.ndarray] = []
    at = 0
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        # A pause inside the audio counts from `threshold` samples; one at the very end only
        # beyond it (sherpa-onnx's two comparisons differ, and we keep its exact behaviour).
        long_enough = end - start > threshold if end == total else end - start >= threshold
        if not long_enough:
            continue
        # float32 product, truncated: the C++ `(int32_t)((end - start) * scale)`.
        keep = int(np.float32(end - start) * np.float32(scale))
        kept.append(samples[at:start + keep])
        removed.append((start + keep, end))
        at = end
    if not removed:
        return Shortened(samples, ())
    kept.append(samples[at:])
    return Shortened(np.concatenate(kept), tuple(removed))
