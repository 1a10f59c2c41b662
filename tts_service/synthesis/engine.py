"""The speech engine: the only module that imports sherpa_onnx."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tts_service.audio.pauses import shorten_pauses
from tts_service.audio.word_timing import SpokenWord, separator_ids, spoken_words
from tts_service.language.front_end import Utterance
from tts_service.synthesis import onnx_runtime

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sentence:
    """One sentence as the engine made it: its audio and, when timed, its spoken words."""

    samples: np.ndarray  # float32 mono, owned by the receiver
    words: tuple[SpokenWord, ...]  # in samples of `samples`; empty when not timed
    last: bool  # the last sentence of the utterance given to `speak`


# Called with each synthesized sentence, in the engine's thread; returns False to stop after it.
OnSentence = Callable[[Sentence], bool]


@dataclass(frozen=True, eq=False)
class Style:
    """A style table spoken instead of the speaker's own: a voice mixed per request.

    `name` says which (the mix's formula: the audio cache keys on it); `table` has one row of
    the model's style vector per token count (float32, rows x 256, read-only).
    """

    name: str
    table: np.ndarray


class EngineFailure(Exception):
    """The engine itself failed while synthesizing (not its caller's callback): it may be
    broken, so the scheduler takes it out of rotation and rebuilds it."""


# A test hook, unset in production: with it set, a piece whose text contains its value fails
# as a native failure of sherpa-onnx would, so that a load test (bench/soak.py) can watch a
# real server take an engine out and rebuild it. No input reaches such a failure otherwise:
# every request is checked before the engine sees its tokens.
FAULT_HOOK_VARIABLE = "TTS_TEST_HOOK_ENGINE_FAULT"
_FAULT_MARKER = os.environ.get(FAULT_HOOK_VARIABLE, "")


class Engine(Protocol):
    """What the service needs from a speech engine: tokens in, audio out; it knows no language
    (the front end made the tokens)."""

    sample_rate_hz: int

    @property
    def times_words(self) -> bool:
        """Whether `speak(..., timed=True)` gives each sentence's spoken words."""
        ...

    @property
    def mixes_voices(self) -> bool:
        """Whether `speak(..., style=table)` speaks with that table (a voice mixed per
        request) instead of the speaker's own."""
        ...

    def speak(self, utterance: Utterance, speaker_id: int, speed: float,
              on_sentence: OnSentence, timed: bool, style: np.ndarray | None = None) -> None:
        """Says `utterance.phonemes`, calling `on_sentence` per sentence (with its words when
        `timed`), in `style` (Style.table) when given, else the speaker's; blocks until done
        or stopped."""
        ...


@runtime_checkable
class Twinnable(Engine, Protocol):
    """An engine that can make another on its loaded model (KokoroEngine.twin)."""

    threads: int

    def twin(self) -> Engine:
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
                     silence_scale: float = 0.2, tokens: Path | None = None) -> Any:
    """A sherpa-onnx OfflineTts for the Kokoro model (the benchmark's raw engine uses it too)."""
    # Imported here, not at module load: the runtime choice (onnx_runtime.activate) must
    # happen before sherpa_onnx is first imported.
    import sherpa_onnx

    kokoro = sherpa_onnx.OfflineTtsKokoroModelConfig(
        model=str(model_path or files.model),
        voices=str(voices_path or files.voices),
        tokens=str(tokens or files.tokens),
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


# sherpa-onnx 1.13.8 takes text, not phonemes: it phonemizes all English with espeak-ng (never
# misaki's lexicon, which Kokoro was trained on) and has no Japanese reading of kanji. Its
# Chinese path, though, reads each CJK ideograph through the lexicon and puts nothing between
# them. So the engine loads a lexicon that spells token id n as the ideograph U+4E00+n, and
# hands sherpa-onnx the service's own phonemes (phonemes.py) spelled that way: the model gets
# exactly those token ids (tests/test_languages_speech.py checks them in the shim's record).
# sherpa-onnx 2.0.x takes token ids per call instead (GenerationConfig.tokens).
_CODEBOOK_START = 0x4E00
# Kokoro reads at most 510 tokens per run (its style tables have 510 rows); sherpa-onnx adds a
# pad at each end. Longer phoneme strings are cut, at a sentence or word end, into runs.
MAX_RUN_TOKENS = 508
_RUN_ENDS = (".!?;:", ",\u2014\u2026", " ")


class Codebook:
    """Kokoro's symbols (tokens.txt) and their spelling as ideographs for sherpa-onnx."""

    def __init__(self, tokens_txt: Path) -> None:
        self.symbols: dict[str, int] = {}
        for line in tokens_txt.read_text(encoding="utf-8").splitlines():
            # "SYMBOL ID"; the space symbol's line is " ID" (sherpa-onnx: a lone ID is space).
            symbol, _, token_id = line.rpartition(" ")
            self.symbols[symbol or " "] = int(token_id)

    def encode(self, phonemes: str) -> str:
        """The phonemes as ideographs; symbols the model does not know are left out."""
        return "".join(chr(_CODEBOOK_START + self.symbols[symbol]) for symbol in phonemes
                       if symbol in self.symbols)

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Writes the ideographs' tokens.txt and lexicon; returns their paths."""
        tokens, lexicon = directory / "codebook-tokens.txt", directory / "codebook-lexicon.txt"
        ids = sorted(set(self.symbols.values()))
        tokens.write_text("".join(f"{chr(_CODEBOOK_START + i)} {i}\n" for i in ids),
                          encoding="utf-8")
        lexicon.write_text("".join(f"{chr(_CODEBOOK_START + i)} {chr(_CODEBOOK_START + i)}\n"
                                   for i in ids), encoding="utf-8")
        return tokens, lexicon


def split_runs(phonemes: str, max_tokens: int = MAX_RUN_TOKENS) -> list[str]:
    """Cuts a phoneme string into runs the model can take, each ending at the latest sentence
    mark, else clause mark, else space, that fits."""
    runs = []
    while len(phonemes) > max_tokens:
        head = phonemes[:max_tokens]
        cut = next((at + 1 for marks in _RUN_ENDS
                    if (at := max(head.rfind(mark) for mark in marks)) > 0), max_tokens)
        runs.append(phonemes[:cut].strip())
        phonemes = phonemes[cut:].strip()
    return [*runs, phonemes] if phonemes else runs


class KokoroEngine:
    """One sherpa-onnx OfflineTts instance with the Kokoro model loaded, fed phonemes."""

    def __init__(self, files: ModelFiles, num_threads: int,
                 codebook: Codebook, codebook_files: tuple[Path, Path],
                 voices_path: Path | None = None, model_path: Path | None = None) -> None:
        # Pauses are shortened here, not by sherpa-onnx, so that word times can follow the
        # samples through the cut (tts_service/pauses.py); the audio is the same.
        tokens, lexicon = codebook_files
        self._tts = load_offline_tts(files, num_threads, voices_path, str(lexicon), model_path,
                                     silence_scale=1.0, tokens=tokens)
        self._codebook = codebook
        self.threads = num_threads
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

    @property
    def mixes_voices(self) -> bool:
        """Whether `speak` can take a style table: the shim replaces the style of this
        thread's runs (not the bundled runtime, nor a shim built before it could)."""
        return onnx_runtime.overrides_styles()

    def speak(self, utterance: Utterance, speaker_id: int, speed: float,
              on_sentence: OnSentence, timed: bool, style: np.ndarray | None = None) -> None:
        """Synthesizes the utterance's tokens run by run; with `timed`, each run's words are
        timed; with `style`, every run reads its style from that table."""
        if _FAULT_MARKER and _FAULT_MARKER in utterance.text:
            raise EngineFailure(f"injected by {FAULT_HOOK_VARIABLE} (a test hook)")
        runs = [encoded for run in split_runs(utterance.phonemes)
                if (encoded := self._codebook.encode(run))]
        # sherpa-onnx runs the model on the thread that calls generate (this one), and the
        # shim's override belongs to the thread that set it, so twins never see each other's.
        if style is not None:
            onnx_runtime.set_style(style)
        try:
            for number, encoded in enumerate(runs, start=1):
                if not self._run(encoded, speaker_id, speed, on_sentence, timed,
                                 last=number == len(runs)):
                    return
        finally:
            if style is not None:
                onnx_runtime.set_style(None)

    def _run(self, encoded: str, speaker_id: int, speed: float, on_sentence: OnSentence,
             timed: bool, last: bool) -> bool:
        """One sherpa-onnx call; returns False when `on_sentence` asked to stop.

        A failure of sherpa-onnx itself is an EngineFailure. An error of our own callback is
        not the engine's: it is kept, the engine is asked to stop, and it is raised as it is
        once the engine has returned.
        """
        go_on = True
        callback_errors: list[Exception] = []

        def callback(samples: np.ndarray, progress: float) -> int:
            nonlocal go_on
            try:
                go_on = say(samples, progress)
            except Exception as error:
                callback_errors.append(error)
                go_on = False
            # sherpa-onnx 1.13.8: 1 continues, 0 stops after this sentence (its docstring
            # says the opposite; the behaviour was checked).
            return 1 if go_on else 0

        def say(samples: np.ndarray, progress: float) -> bool:
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
            # progress is 1.0 on the run's last sentence.
            return on_sentence(Sentence(shortened.samples, words, last and progress >= 1.0))

        try:
            self._tts.generate(encoded, sid=speaker_id, speed=speed, callback=callback)
        except Exception as error:
            raise EngineFailure(f"sherpa-onnx failed: {error}") from error
        if callback_errors:
            raise callback_errors[0]
        return go_on
