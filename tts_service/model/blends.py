"""Voice blends: extra voices whose style table is a weighted average of built-in voices."""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tts_service.model.mixes import weighted_average
from tts_service.model.voices import Voice, mixed

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_LIST_HINT = "ListVoices (or `tts-grpc-client --list-voices`) shows the built-in voices"


class BlendError(ValueError):
    """A blend spec cannot be served; the message quotes the spec and says what to fix."""


@dataclass(frozen=True)
class Blend:
    """A configured blend: component voice names with weights that sum to 1."""

    name: str
    components: tuple[tuple[str, float], ...]

    @property
    def recipe(self) -> str:
        return "+".join(f"{voice}:{weight:.4g}" for voice, weight in self.components)


def parse_blend(spec: str, builtin_names: Sequence[str]) -> Blend:
    """Parses `NAME=VOICE:WEIGHT+VOICE:WEIGHT`; weights are positive and scaled to sum to 1."""
    name, equals, recipe = (part.strip() for part in spec.partition("="))
    example = "e.g. 'bella_sky=af_bella:0.6+af_sky:0.4'"
    if not equals or not recipe:
        raise BlendError(f"voice blend {spec!r} has no recipe: write NAME=VOICE:WEIGHT+..., "
                         f"{example}")
    if not _NAME.fullmatch(name):
        raise BlendError(f"voice blend {spec!r}: the name {name!r} must be letters, digits, "
                         f"'_', '.' or '-', {example}")
    if name in builtin_names:
        raise BlendError(f"voice blend {spec!r}: {name!r} is already a built-in voice; choose "
                         "another name")
    weights: dict[str, float] = {}
    for part in recipe.split("+"):
        voice, colon, weight_text = (item.strip() for item in part.partition(":"))
        try:
            weight = float(weight_text) if colon else math.nan
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight > 0):
            raise BlendError(f"voice blend {spec!r}: {part.strip()!r} needs a positive weight, "
                             f"as VOICE:WEIGHT, {example}")
        if voice not in builtin_names:
            close = difflib.get_close_matches(voice, builtin_names, n=3)
            maybe = f" (did you mean {', '.join(close)}?)" if close else ""
            raise BlendError(f"voice blend {spec!r}: unknown voice {voice!r}{maybe}; {_LIST_HINT}"
                             " (blends mix built-in voices only)")
        if voice in weights:
            raise BlendError(f"voice blend {spec!r} names {voice!r} twice; give it one weight")
        weights[voice] = weight
    total = sum(weights.values())
    return Blend(name, tuple((voice, weight / total) for voice, weight in weights.items()))


def parse_blends(specs: Sequence[str], builtin_names: Sequence[str]) -> list[Blend]:
    """Parses every spec; two blends may not share a name."""
    blends = [parse_blend(spec, builtin_names) for spec in specs]
    names = [blend.name for blend in blends]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BlendError(f"voice blends {', '.join(map(repr, repeated))} are defined more than "
                         "once; give each blend its own name")
    return blends


def blend_voices(blends: Sequence[Blend], builtin: Sequence[Voice]) -> list[Voice]:
    """Catalogue entries of the blends, whose tables follow the built-in ones in order."""
    by_name = {voice.name: voice for voice in builtin}
    return [mixed(blend.name, [by_name[name] for name, _ in blend.components], position,
                  blend=blend.recipe)
            for position, blend in enumerate(blends, start=len(builtin))]


def write_voices(source: Path, builtin: Sequence[Voice], blends: Sequence[Blend],
                 destination: Path) -> list[Voice]:
    """Writes `source` (the built-in style tables) plus one weighted-average table per blend.

    The engine picks a voice's table by speaker id, so the blend at position k after the
    built-in voices is spoken with speaker id len(builtin) + k. Returns the blends' voices.
    """
    tables = np.fromfile(source, dtype="<f4")
    if len(builtin) == 0 or tables.size % len(builtin):
        raise BlendError(f"{source} does not hold {len(builtin)} equal voice tables; "
                         "re-assemble the model (make models)")
    tables = tables.reshape(len(builtin), -1)
    row = {voice.name: voice.speaker_id for voice in builtin}
    shutil.copyfile(source, destination)
    with destination.open("ab") as out:
        for blend in blends:
            weighted_average([tables[row[name]] for name, _ in blend.components],
                             [weight for _, weight in blend.components]).tofile(out)
    return blend_voices(blends, builtin)


def metadata_entry(key: str, value: str) -> bytes:
    """A serialized ONNX ModelProto holding one `metadata_props` entry and nothing else.

    Appended to a model file, protobuf's merge rules add it to the model's entries.
    """
    from onnx import ModelProto, StringStringEntryProto  # only blended servers need it

    entry = StringStringEntryProto(key=key, value=value)
    return bytes(ModelProto(metadata_props=[entry]).SerializeToString())


@contextlib.contextmanager
def model_with_speakers(model: Path, n_speakers: int, scratch: Path) -> Iterator[Path]:
    """Yields the path of a copy of `model` whose metadata says it has `n_speakers` voices.

    sherpa-onnx 1.13.8 refuses a voices file larger than n_speakers tables, and the model's
    metadata says 54. A protobuf message may repeat a field, so appending one more
    `metadata_props` entry to the file is a valid model, and onnxruntime keeps the last value
    of a repeated key: the 92 MB model is copied, never parsed. The copy lives in an
    anonymous in-memory file (memfd) where Linux offers one, so nothing lands on disk and it is
    gone when the block ends; elsewhere it is written into `scratch`.
    """
    suffix = metadata_entry("n_speakers", str(n_speakers))
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("kokoro-model.onnx")
        try:
            with model.open("rb") as source:
                size_bytes = os.fstat(source.fileno()).st_size
                copied = 0
                while copied < size_bytes:  # in the kernel: the model never passes through Python
                    copied += os.sendfile(fd, source.fileno(), copied, size_bytes - copied)
            os.write(fd, suffix)
            yield Path(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    copy = scratch / "model.onnx"
    shutil.copyfile(model, copy)
    with copy.open("ab") as out:
        out.write(suffix)
    try:
        yield copy
    finally:
        copy.unlink(missing_ok=True)
