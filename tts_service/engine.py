"""The speech engine: the only module that imports sherpa_onnx."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

_LOGGER = logging.getLogger(__name__)

# Called with each synthesized sentence (float32 mono samples, a view owned by the caller
# afterwards); returns False to stop after that sentence.
OnChunk = Callable[[np.ndarray], bool]


class Engine(Protocol):
    """What the service needs from a speech engine."""

    sample_rate_hz: int

    def generate(self, text: str, speaker_id: int, speed: float, on_chunk: OnChunk) -> None:
        """Synthesizes `text`, calling `on_chunk` per sentence; blocks until done or stopped."""
        ...


@dataclass(frozen=True)
class ModelFiles:
    """The files of an assembled Kokoro model directory (see models/assemble.py)."""

    directory: Path

    @property
    def model(self) -> Path:
        return self.directory / "model.onnx"

    @property
    def voices(self) -> Path:
        return self.directory / "voices.bin"

    @property
    def tokens(self) -> Path:
        return self.directory / "tokens.txt"

    @property
    def lexicon(self) -> Path:
        return self.directory / "lexicon-us-en.txt"

    @property
    def espeak_data(self) -> Path:
        return self.directory / "espeak-ng-data"

    @property
    def voice_names(self) -> Path:
        return self.directory / "voices.txt"

    def missing(self) -> list[Path]:
        needed = [self.model, self.voices, self.tokens, self.lexicon, self.espeak_data,
                  self.voice_names]
        return [path for path in needed if not path.exists()]


def engine_version() -> str:
    import sherpa_onnx

    return str(sherpa_onnx.__version__)


def load_offline_tts(files: ModelFiles, num_threads: int, voices_path: Path | None = None,
                     lexicon: str | None = None, model_path: Path | None = None) -> Any:
    """A sherpa-onnx OfflineTts for the Kokoro model (the benchmark's raw engine uses it too)."""
    # Imported here, not at module load: the runtime choice (onnx_runtime.activate) must
    # happen before sherpa_onnx is first imported.
    import sherpa_onnx

    kokoro = sherpa_onnx.OfflineTtsKokoroModelConfig(
        model=str(model_path or files.model),
        voices=str(voices_path or files.voices),
        tokens=str(files.tokens),
        lexicon=lexicon or str(files.lexicon),
        data_dir=str(files.espeak_data),
        dict_dir="",
    )
    config = sherpa_onnx.OfflineTtsConfig(
        model=sherpa_onnx.OfflineTtsModelConfig(kokoro=kokoro, num_threads=num_threads),
    )
    if not config.validate():
        raise RuntimeError(f"sherpa-onnx rejected the model files in {files.directory}")
    return sherpa_onnx.OfflineTts(config)


class KokoroEngine:
    """One sherpa-onnx OfflineTts instance with the Kokoro model loaded."""

    def __init__(self, files: ModelFiles, num_threads: int, voices_path: Path | None = None,
                 lexicon: str | None = None, model_path: Path | None = None) -> None:
        self._tts = load_offline_tts(files, num_threads, voices_path, lexicon, model_path)
        self.sample_rate_hz = int(self._tts.sample_rate)
        self.num_speakers = int(self._tts.num_speakers)

    def generate(self, text: str, speaker_id: int, speed: float, on_chunk: OnChunk) -> None:
        def callback(samples: np.ndarray, _progress: float) -> int:
            # sherpa-onnx 1.13.8: 1 continues, 0 stops after this sentence (its docstring
            # says the opposite; the behaviour was checked).
            return 1 if on_chunk(samples) else 0

        self._tts.generate(text, sid=speaker_id, speed=speed, callback=callback)
