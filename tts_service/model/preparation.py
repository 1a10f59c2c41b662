"""Model preparation at start-up: the voice list read once, blends and lexicon merged in,
the engines loaded, and the voice catalogue they serve."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tts_service.language.lexicon import Overrides, parse_overrides, read_symbols
from tts_service.model.blends import (
    Blend,
    blend_voices,
    model_with_speakers,
    parse_blends,
    write_voices,
)
from tts_service.model.mixes import StyleTables
from tts_service.model.voices import Voice, VoiceCatalog, describe
from tts_service.synthesis import onnx_runtime
from tts_service.synthesis.engine import Engine, ModelFiles, Twinnable


@dataclass(frozen=True)
class ModelOptions:
    """The checked voice blends and pronunciation overrides, before anything is loaded."""

    builtin: list[Voice]
    blends: list[Blend]
    overrides: Overrides
    symbols: frozenset[str]  # the model's phoneme symbols (tokens.txt)


@dataclass(frozen=True)
class PreparedModel:
    """Loaded engines and what they can say: voices (built-in and blends), overrides and the
    phoneme symbols a request's pronunciations may use.

    `load_engine(threads)` loads one more engine like them (to replace one that failed); the
    files it needs live until `close()`.
    """

    engines: list[Engine]
    catalog: VoiceCatalog
    overrides: Overrides
    symbols: frozenset[str]
    load_engine: Callable[[int], Engine]
    close: Callable[[], None]


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
    symbols = read_symbols(files.tokens)
    overrides = (parse_overrides(lexicon_overrides, symbols)
                 if lexicon_overrides is not None else Overrides())
    return ModelOptions(builtin, blends, overrides, symbols)


def prepare(files: ModelFiles, thread_counts: Sequence[int],
            options: ModelOptions) -> PreparedModel:
    """Loads one engine per entry of `thread_counts` (its threads), with the blends and
    overrides merged in, in as little memory as they can share."""
    # The generated files (blended voices, merged lexicon) live in a scratch directory for the
    # server's life: an engine rebuilt later loads the same ones. Not a cache that could go
    # stale when the model or the options change.
    scratch = tempfile.TemporaryDirectory(prefix="tts-service-")
    voices = [*options.builtin, *blend_voices(options.blends, options.builtin)]
    try:
        load_engine = engine_loader(files, Path(scratch.name), options, thread_counts)
        engines = _load_twins(load_engine, thread_counts)
        # Requests mix the tables the engines loaded, the blends' included.
        styles = StyleTables.read(voices_file(files, Path(scratch.name), options), len(voices))
    except BaseException:
        scratch.cleanup()
        raise
    catalog = VoiceCatalog(voices, styles=styles)
    return PreparedModel(engines, catalog, options.overrides, options.symbols, load_engine,
                         scratch.cleanup)


def _load_twins(load_engine: Callable[[int], Engine], thread_counts: Sequence[int]
                ) -> list[Engine]:
    """Engines of the same thread count are twins of one loaded model (KokoroEngine.twin)."""
    from tts_service.synthesis.engine import KokoroEngine

    loaded: dict[int, Engine] = {}
    engines: list[Engine] = []
    for threads in thread_counts:
        first = loaded.get(threads)
        if isinstance(first, KokoroEngine):
            engines.append(first.twin())
        else:
            loaded[threads] = load_engine(threads)
            engines.append(loaded[threads])
    onnx_runtime.release_packed_weights()
    return engines


def twin_in_rotation(failed: Engine, working: Iterable[Engine]) -> Engine | None:
    """A twin of a working engine with the failed engine's threads, else None (load one).

    An engine fails on a piece (a native error), not for good: a model another engine is
    still running well serves a twin as well as a fresh load, which would hold the model a
    second time (about 170 MB) for the server's life.
    """
    if not isinstance(failed, Twinnable):
        return None
    for engine in working:
        if isinstance(engine, Twinnable) and engine.threads == failed.threads:
            return engine.twin()
    return None


def voices_file(files: ModelFiles, scratch: Path, options: ModelOptions) -> Path:
    """The voices file the engines load: the model's, or with blends the copy with their
    tables appended that engine_loader writes into `scratch`."""
    return scratch / "voices.bin" if options.blends else files.voices


def engine_loader(files: ModelFiles, scratch: Path, options: ModelOptions,
                  thread_counts: Sequence[int]) -> Callable[[int], Engine]:
    """Writes the files the engines need into `scratch`; returns a loader of one engine (a
    loaded model) with the given threads.

    Models loaded with different thread counts (the pool's and the solo
    engine's) share the weights through the shim, and every session shrinks its memory arena
    after each run.
    """
    from tts_service.synthesis.engine import Codebook, KokoroEngine

    onnx_runtime.shrink_arenas()
    if len(set(thread_counts)) > 1:
        onnx_runtime.share_weights(files.model)
    codebook = Codebook(files.tokens)
    spelled = codebook.write(scratch)
    voices = voices_file(files, scratch, options)
    speakers = len(options.builtin) + len(options.blends)
    if options.blends:
        write_voices(files.voices, options.builtin, options.blends, voices)

    def load(threads: int) -> Engine:
        if not options.blends:
            return KokoroEngine(files, threads, codebook, spelled)
        # The model with more speakers is copied for each load (in memory, in the kernel)
        # rather than held for the server's life: sherpa-onnx reads it while loading only.
        with model_with_speakers(files.model, speakers, scratch) as model:
            return KokoroEngine(files, threads, codebook, spelled,
                                voices_path=voices, model_path=model)

    return load
