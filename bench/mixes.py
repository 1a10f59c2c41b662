"""Voices mixed per request: what a mix costs its caller's first audio, the first time a formula
is asked for (its table is mixed then) and after (the table is kept), beside the plain voice.

One fresh server of the default pool with its audio cache off (the same sentence is asked in
each voice). Each repetition asks a formula never asked before, `af_bella(k)+af_sky(1)`, then
the same formula again, and the plain af_bella, all the same sentence through SynthesizeStream,
the plain voice's turn alternating between first and last. Then, in this process, the mixing
itself: VoiceCatalog.resolve of a new formula against one already kept.

`python -m bench --sections mixes` runs it alone (about a minute).
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any

from harness.servers import MODEL_DIR
from tts_service.model.mixes import StyleTables
from tts_service.model.voices import VoiceCatalog, describe

from . import lone, service, texts

_LOGGER = logging.getLogger("bench")

PLAIN = "af_bella"
TEXT = texts.ONE_SENTENCE
# Formulas timed in-process: two voices, and the most a mix may have.
_MIXING = ("af_bella({k})+af_sky(1)", "af_bella({k})+af_sky+af_heart+af_nova+af_kore")


def _formula(rep: int) -> str:
    return f"af_bella({rep + 2})+af_sky(1)"


async def measure(quick: bool, reps: int, onnxruntime: str) -> dict[str, Any]:
    reps = 1 if quick else max(reps, 5)
    result: dict[str, Any] = {"text": TEXT, "plain": PLAIN, "example": _formula(0),
                              "plain_s": [], "new_mix_s": [], "same_mix_s": []}
    with service.serving("--onnxruntime", onnxruntime, *service.no_cache()) as server:
        result["pool"] = lone.pool_of(server)
        async with service.stub(server.address) as stub:
            await lone.first_audio(stub, TEXT, PLAIN)  # every engine's first run is behind us
            for rep in range(reps):
                _LOGGER.info("voice mixes, rep %d/%d", rep + 1, reps)
                if rep % 2 == 0:
                    result["plain_s"].append(await lone.first_audio(stub, TEXT, PLAIN))
                result["new_mix_s"].append(await lone.first_audio(stub, TEXT, _formula(rep)))
                result["same_mix_s"].append(await lone.first_audio(stub, TEXT, _formula(rep)))
                if rep % 2 == 1:
                    result["plain_s"].append(await lone.first_audio(stub, TEXT, PLAIN))
    result["mixing_ms"] = _mixing_ms(reps)
    return result


def _mixing_ms(reps: int) -> dict[str, dict[str, list[float]]]:
    """resolve() of a formula the first time (its table mixed) and again (kept), in ms."""
    names = (MODEL_DIR / "voices.txt").read_text(encoding="utf-8").split()
    voices = [describe(name, speaker_id) for speaker_id, name in enumerate(names)]
    catalog = VoiceCatalog(voices, styles=StyleTables.read(Path(MODEL_DIR / "voices.bin"),
                                                           len(voices)))
    timed: dict[str, dict[str, list[float]]] = {}
    for pattern in _MIXING:
        voices_in_mix = pattern.count("+") + 1
        cell = timed.setdefault(f"{voices_in_mix} voices", {"first": [], "kept": []})
        for rep in range(reps):
            formula = pattern.format(k=rep + 2)
            for kind in ("first", "kept"):
                started = time.perf_counter()
                catalog.resolve(formula)
                cell[kind].append((time.perf_counter() - started) * 1000)
    return timed


def section(mixes: dict[str, Any] | None, minutes: str = "") -> list[str]:
    if not mixes:
        return []

    def mm(values: list[float], digits: int = 2) -> str:
        return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f}"

    plain_min, plain_median = min(mixes["plain_s"]), statistics.median(mixes["plain_s"])
    rows = [("the plain voice, " + mixes["plain"], mixes["plain_s"]),
            (f"a formula asked for the first time (e.g. `{mixes['example']}`)",
             mixes["new_mix_s"]),
            ("the same formula again", mixes["same_mix_s"])]
    lines = [
        f"## Voices mixed per request{minutes}", "",
        f"A fresh server of the default pool ({mixes['pool']}) with `--audio-cache-mb 0`. "
        f"{len(mixes['new_mix_s'])} repetitions, each a formula never asked before, then the "
        f"same formula again, and the plain voice (its turn first or last, alternately); the "
        f"same sentence (\"{mixes['text'][:40]}...\") through SynthesizeStream. First audio in "
        "seconds (min / median) and its ratio to the plain voice's (min-based / "
        "median-based). No target.", "",
        "| voice | first audio | ratio to the plain voice |", "|---|---|---|",
        *[f"| {name} | {mm(values)} | {min(values) / plain_min:.2f} / "
          f"{statistics.median(values) / plain_median:.2f} |" for name, values in rows],
        "",
        "Mixing a table (VoiceCatalog.resolve in one process, ms, min / median): "
        + "; ".join(f"{name}: {mm(cell['first'], 1)} the first time, {mm(cell['kept'], 2)} "
                    "kept" for name, cell in mixes["mixing_ms"].items())
        + ". A mix is spoken by the same engines at the same cost as a voice: its table "
        "replaces the voice's style input (native/ort_shim.c).", ""]
    return lines
