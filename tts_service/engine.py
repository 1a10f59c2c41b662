"""The speech engine: the only module that imports sherpa_onnx."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import onnx_runtime
from .pauses import shorten_pauses
from .word_timing import SpokenWord, separator_ids, spoken_words

_LOGGER = logging.getLogger(__name__)

# Called with each synthesized sentence (float32 mono samples, a view owned by the caller
# afterwards); returns False to stop after that sentence.
OnChunk = Callable[[np.ndarray], bool]


@dataclass(frozen=True)
class Sentence:
    """One sentence as the engine made it: its audio and, when timed, its spoken words."""

    samples: np.ndarray
    words: tuple[SpokenWord, ...]  # in samples of `samples`; empty when not timed
    last: bool  # the last sentence of the text given to `speak`


OnSentence = Callable[[Sentence], bool]


class Engine(Protocol):
    """What the service needs from a speech engine."""

    sample_rate_hz: int

    def generate(self, text: str, speaker_id: int, speed: float, on_chunk: OnChunk) -> None:
        """Synthesizes `text`, calling `on_chunk` per sentence; blocks until done or stopped."""
        ...


@runtime_checkable
class TimedEngine(Engine, Protocol):
    """An engine that can also say when each word of a sentence is spoken."""

    @property
    def times_words(self) -> bool: ...

    def speak(self, text: str, speaker_id: int, speed: float, on_sentence: OnSentence,
              timed: bool) -> None:
        """Like `generate`, with each sentence's spoken words when `timed`."""
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
                     lexicon: str | None = None, model_path: Path | None = None,
                     silence_scale: float = 0.2) -> Any:
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
        silence_scale=silence_scale,
    )
    if not config.validate():
        raise RuntimeError(f"sherpa-onnx rejected the model files in {files.directory}")
    return sherpa_onnx.OfflineTts(config)


class KokoroEngine:
    """One sherpa-onnx OfflineTts instance with the Kokoro model loaded."""

    def __init__(self, files: ModelFiles, num_threads: int, voices_path: Path | None = None,
                 lexicon: str | None = None, model_path: Path | None = None) -> None:
        # Pauses are shortened here, not by sherpa-onnx, so that word times can follow the
        # samples through the cut (tts_service/pauses.py); the audio is the same.
        self._tts = load_offline_tts(files, num_threads, voices_path, lexicon, model_path,
                                     silence_scale=1.0)
        self.sample_rate_hz = int(self._tts.sample_rate)
        self.num_speakers = int(self._tts.num_speakers)
        self._separators = separator_ids(files.tokens)
        self._durations_seen = False

    def twin(self) -> KokoroEngine:
        """Another engine on this one's loaded model, for a pool of engines of the same threads.

        sherpa-onnx's generate is const and onnxruntime's Run may be called from several
        threads at once, so twins synthesize in parallel (as fast as separate engines, and to
        the same samples) while the model, the voices and the lexicon are held once: a
        loaded engine is about 170 MB, a twin only its runs' working memory.
        """
        twin = copy.copy(self)
        twin._durations_seen = False
        return twin

    @property
    def times_words(self) -> bool:
        """Whether `speak` can time words: a run of this engine came with its durations.

        That needs the shim (not the bundled runtime) and a model assembled with the durations
        output; the server's warm-up synthesis finds out before the first request.
        """
        return self._durations_seen

    def generate(self, text: str, speaker_id: int, speed: float, on_chunk: OnChunk) -> None:
        self.speak(text, speaker_id, speed, lambda sentence: on_chunk(sentence.samples),
                   timed=False)

    def speak(self, text: str, speaker_id: int, speed: float, on_sentence: OnSentence,
              timed: bool) -> None:
        """Synthesizes `text` sentence by sentence; with `timed`, each one's words are timed."""
        def callback(samples: np.ndarray, progress: float) -> int:
            # Read every run, in this thread: the shim keeps only this thread's latest one.
            run = onnx_runtime.last_run()
            self._durations_seen |= run is not None
            shortened = shorten_pauses(samples, self.sample_rate_hz)
            words: tuple[SpokenWord, ...] = ()
            if timed and run is not None:
                words = tuple(spoken_words(run[0].tolist(), run[1].tolist(), self._separators,
                                           shortened.position))
            elif timed:
                _LOGGER.warning("no durations recorded for a sentence; its words are untimed")
            # sherpa-onnx 1.13.8: 1 continues, 0 stops after this sentence (its docstring
            # says the opposite; the behaviour was checked). progress is 1.0 on the last one.
            return 1 if on_sentence(Sentence(shortened.samples, words, progress >= 1.0)) else 0

        self._tts.generate(text, sid=speaker_id, speed=speed, callback=callback)
