"""Model preparation at start-up: the voice list read once, blends and lexicon merged in,
the engines loaded, and the voice catalogue they serve."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import onnx_runtime
from .engine import Engine, ModelFiles
from .lexicon import Overrides, load_overrides, write_lexicon
from .voice_blends import Blend, blend_voices, model_with_speakers, parse_blends, write_voices
from .voices import Voice, VoiceCatalog, describe

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelOptions:
    """The checked voice blends and pronunciation overrides, before anything is loaded."""

    builtin: list[Voice]
    blends: list[Blend]
    overrides: Overrides


@dataclass(frozen=True)
class PreparedModel:
    """Loaded engines and what they can say: voices (built-in and blends) and respellings."""

    engines: list[Engine]
    catalog: VoiceCatalog
    overrides: Overrides


def builtin_voices(files: ModelFiles) -> list[Voice]:
    """The model's own voices, in speaker-id order (voices.txt)."""
    names = files.voice_names.read_text(encoding="utf-8").split()
    return [describe(name, speaker_id) for speaker_id, name in enumerate(names)]


def check_options(files: ModelFiles, blend_specs: Sequence[str] = (),
                  lexicon_overrides: Path | None = None) -> ModelOptions:
    """Reads the voice list once and checks blends and overrides against the model; cheap.

    Raises BlendError or LexiconError, whose message names what to fix.
    """
    builtin = builtin_voices(files)
    blends = parse_blends(blend_specs, [voice.name for voice in builtin])
    overrides = (load_overrides(lexicon_overrides, files.tokens)
                 if lexicon_overrides is not None else Overrides())
    return ModelOptions(builtin, blends, overrides)


def prepare(files: ModelFiles, thread_counts: Sequence[int],
            options: ModelOptions) -> PreparedModel:
    """Loads one engine per entry of `thread_counts` (its threads), with the blends and
    overrides merged in."""
    loaded = load_engines(files, thread_counts, options.builtin, options.blends,
                          options.overrides)
    catalog = VoiceCatalog([*options.builtin, *blend_voices(options.blends, options.builtin)])
    return PreparedModel(loaded, catalog, options.overrides)


def load_engines(files: ModelFiles, thread_counts: Sequence[int],
                 builtin: Sequence[Voice], blends: Sequence[Blend] = (),
                 overrides: Overrides | None = None) -> list[Engine]:
    """One engine per entry of `thread_counts`, as little memory as they can share.

    Engines of the same thread count are twins of one loaded model (KokoroEngine.twin); the
    loaded models of different thread counts (the pool's and the solo engine's) share the
    weights through the shim, and every session shrinks its memory arena after each run.
    """
    from .engine import KokoroEngine

    onnx_runtime.shrink_arenas()
    if len(set(thread_counts)) > 1:
        onnx_runtime.share_weights(files.model)

    # sherpa-onnx reads its files into memory when an engine loads, so the generated ones only
    # have to outlive the loading: a scratch directory removed right after, not a cache that
    # could go stale when the model or the options change.
    with tempfile.TemporaryDirectory(prefix="tts-service-") as scratch_dir, \
            contextlib.ExitStack() as keep_open:
        scratch = Path(scratch_dir)
        voices = model = lexicon = None
        if blends:
            voices = scratch / "voices.bin"
            write_voices(files.voices, builtin, blends, voices)
            model = keep_open.enter_context(
                model_with_speakers(files.model, len(builtin) + len(blends), scratch))
        if overrides is not None and overrides.phonemes:
            lexicon = str(write_lexicon(overrides, files.lexicon, scratch / "lexicon.txt"))
            # Checked on 1.13.8: its Kokoro frontend sends all English text to espeak-ng.
            _LOGGER.warning("phoneme overrides loaded, but sherpa-onnx 1.13.8 reads the "
                            "lexicon only for CJK text: for English words, use respellings "
                            "('word = sounds like')")
        loaded: dict[int, KokoroEngine] = {}
        engines: list[Engine] = []
        for threads in thread_counts:
            if threads in loaded:
                engines.append(loaded[threads].twin())
            else:
                loaded[threads] = KokoroEngine(files, threads, voices_path=voices,
                                               lexicon=lexicon, model_path=model)
                engines.append(loaded[threads])
    onnx_runtime.release_packed_weights()
    return engines
