"""Voices mixed per request: a formula such as `af_bella(2)+af_sky(1)` checked and written in
one normal form, and the style tables formulas name, each mixed once and kept for the next
request that names it.

A Kokoro voice is a style table (voices.bin: one row of 256 floats per token count). A mix is
the weighted average of its voices' tables, weights scaled to sum to 1: the same mixing the
start-up blends get (blends.py writes theirs with `weighted_average`).
"""

from __future__ import annotations

import difflib
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tts_service.errors import InvalidRequest

# Enough for any blend people describe; few enough that a request cannot make the server
# average dozens of tables.
MAX_MIX_VOICES = 5
# Mixed tables kept (each 510 x 256 floats, about 0.5 MB): at most about 33 MB.
MIX_CACHE_ENTRIES = 64
# Kokoro's style vector: the model's `style` input is [1, 256].
STYLE_WIDTH = 256
# Significant digits a normalized weight keeps: the formula says exactly what is mixed.
_WEIGHT_DIGITS = 4
# A `+` outside parentheses separates voices (a weight such as 1e+2 keeps its own).
_SEPARATOR = re.compile(r"\+(?![^()]*\))")
_PART = re.compile(r"\s*(?P<voice>[^\s()+]+)\s*(?:\((?P<weight>[^()]*)\))?\s*")
_EXAMPLE = "e.g. 'af_bella(2)+af_sky(1)', or 'af_bella+af_sky' for equal weights"


def is_formula(name: str) -> bool:
    """Whether a voice name is a mix formula rather than one voice's name (voice and blend
    names have no `+` and no parentheses)."""
    return "+" in name or "(" in name or ")" in name


@dataclass(frozen=True)
class Mix:
    """A checked formula: its voices by name, each with its weight relative to the lightest
    (1), rounded to 4 significant digits."""

    components: tuple[tuple[str, float], ...]

    @property
    def formula(self) -> str:
        """The normal form: names in order, every weight written, e.g. af_bella(2)+af_sky(1).
        Formulas that mix the same voices in the same proportions have the same one."""
        return "+".join(f"{voice}({_written(weight)})" for voice, weight in self.components)

    @property
    def heaviest(self) -> tuple[str, ...]:
        """The voices by weight, heaviest first (by name among equals)."""
        return tuple(voice for voice, _ in sorted(self.components, key=lambda c: -c[1]))


def parse_mix(formula: str, known: Collection[str], list_voices: str = "the voice list") -> Mix:
    """Checks a formula `VOICE(WEIGHT)+VOICE(WEIGHT)...` (a voice without a weight weighs 1)
    against the `known` voice names; raises InvalidRequest naming `voice`, with what to fix.

    Weights are positive finite numbers; at most MAX_MIX_VOICES voices, each once.
    """
    def refuse(problem: str) -> InvalidRequest:
        return InvalidRequest("voice", f"voice mix {formula!r}: {problem}")

    parts = _SEPARATOR.split(formula)
    if len(parts) > MAX_MIX_VOICES:
        raise refuse(f"{len(parts)} voices; a mix takes at most {MAX_MIX_VOICES}")
    weights: dict[str, float] = {}
    for part in parts:
        if not part.strip():
            raise refuse(f"a '+' with no voice beside it; write VOICE(WEIGHT)+VOICE(WEIGHT), "
                         f"{_EXAMPLE}")
        found = _PART.fullmatch(part)
        if found is None:
            raise refuse(f"{part.strip()!r} is not VOICE or VOICE(WEIGHT), {_EXAMPLE}")
        voice, weight_text = found["voice"], found["weight"]
        weight = _weight(weight_text) if weight_text is not None else 1.0
        if not (math.isfinite(weight) and weight > 0):
            raise refuse(f"{part.strip()!r} needs a positive weight (a finite number above "
                         f"0), {_EXAMPLE}")
        if voice not in known:
            close = difflib.get_close_matches(voice, list(known), n=3)
            maybe = f" (did you mean {', '.join(close)}?)" if close else ""
            raise refuse(f"unknown voice {voice!r}{maybe}; {list_voices} shows the voices")
        if voice in weights:
            raise refuse(f"names {voice!r} twice; give it one weight")
        weights[voice] = weight
    lightest = min(weights.values())
    return Mix(tuple((voice, _rounded(weights[voice] / lightest)) for voice in sorted(weights)))


def _weight(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        return math.nan


def _rounded(weight: float) -> float:
    return float(f"{weight:.{_WEIGHT_DIGITS}g}")


def _written(weight: float) -> str:
    # Positional, never 1e+06: a formula's `+` separates voices only.
    return np.format_float_positional(weight, trim="-")


def weighted_average(tables: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The voices' style tables averaged with `weights` scaled to sum to 1, as float32.

    Averaged in float64 so that a voice mixed alone is bit-identical to its own table.
    """
    total = math.fsum(weights)
    mixed = sum((weight / total) * table.astype(np.float64)
                for table, weight in zip(tables, weights, strict=True))
    return np.asarray(mixed, dtype="<f4")


class StyleTables:
    """Every voice's style table by speaker id (built-in voices, then start-up blends), and
    the mixes of them requests asked for, each computed once and the last MIX_CACHE_ENTRIES
    kept; safe across threads."""

    def __init__(self, tables: np.ndarray, max_mixes: int = MIX_CACHE_ENTRIES) -> None:
        if tables.ndim != 3 or tables.shape[2] != STYLE_WIDTH:
            raise ValueError(f"style tables of shape {tables.shape}: expected (speakers, rows, "
                             f"{STYLE_WIDTH})")
        self._tables = tables
        self._max_mixes = max_mixes
        self._mixes: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def read(cls, voices_bin: Path, speakers: int) -> StyleTables:
        """The tables of a voices file holding `speakers` of them, mapped rather than read:
        only the tables mixed are paged in, and the page cache may drop them again."""
        tables = np.memmap(voices_bin, dtype="<f4", mode="r")
        per_speaker = tables.size // speakers if speakers else 0
        if not per_speaker or tables.size % speakers or per_speaker % STYLE_WIDTH:
            raise ValueError(f"{voices_bin} does not hold {speakers} voice tables of "
                             f"{STYLE_WIDTH}-wide rows")
        return cls(tables.reshape(speakers, per_speaker // STYLE_WIDTH, STYLE_WIDTH))

    def __len__(self) -> int:
        """How many mixed tables are kept."""
        return len(self._mixes)

    def mixed(self, formula: str, speaker_ids: Sequence[int], weights: Sequence[float]
              ) -> np.ndarray:
        """The read-only table of `formula` (the speakers' tables averaged with `weights`),
        the same object every time while it is kept."""
        with self._lock:
            table = self._mixes.get(formula)
            if table is not None:
                self._mixes.move_to_end(formula)
                return table
        table = weighted_average([self._tables[sid] for sid in speaker_ids], weights)
        table.setflags(write=False)  # shared by every request that names the formula
        with self._lock:
            # Another thread may have mixed it meanwhile: keep one object per formula.
            table = self._mixes.setdefault(formula, table)
            self._mixes.move_to_end(formula)
            while len(self._mixes) > self._max_mixes:
                self._mixes.popitem(last=False)
        return table
