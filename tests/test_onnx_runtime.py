"""Both onnxruntime choices speak the same words; the fallbacks behave as documented; the
shim's memory savings (shared weights, shrinking arenas, twin engines) keep the audio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from harness.servers import REPO, require_durations, start_server
from harness.speech import transcribe, word_error_rate
from tts_service.synthesis.onnx_runtime import RUNTIMES

SAMPLE_RATE_HZ = 24_000
AF_BELLA = 2
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "My brother plays the guitar in a small band.",
    "Please call me back when you get home.",
)
# Both runtimes are bit-deterministic, so these bounds never flake: they move only when a
# runtime changes. Kokoro's int8 duration predictor rounds differently on 1.28.2 and 1.32.0:
# single sentences measured here differ by up to 6%, ten sentences together by 0.7%.
DURATION_TOLERANCE = 0.03
WER_TOLERANCE = 0.05
MAX_WER = 0.25
SUBPROCESS_TIMEOUT_S = 300

# Each runtime is a per-process choice, so every case runs in a fresh interpreter.
_SYNTHESIZE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from tts_service.synthesis import onnx_runtime
    choice, shim, model_dir, out, sentences, sid, rate, spinning = sys.argv[1:9]
    info = onnx_runtime.activate(choice, Path(shim))
    if spinning == "off":
        assert onnx_runtime.disable_intra_op_spinning()
    import numpy as np
    from tts_service.synthesis.engine import ModelFiles, load_offline_tts
    tts = load_offline_tts(ModelFiles(Path(model_dir)), num_threads=2)
    chunks = []
    for text in json.loads(sentences):
        audio = tts.generate(text, sid=int(sid), speed=1.0)
        assert audio.sample_rate == int(rate), audio.sample_rate
        chunks.append(np.asarray(audio.samples, dtype=np.float32))
    np.concatenate(chunks).tofile(out)
    print(json.dumps({**info.__dict__, "quiet_sessions": onnx_runtime.quiet_sessions()}))
    """
)

_ACTIVATE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from tts_service.synthesis import onnx_runtime
    if sys.argv[3] == "import-first":
        import sherpa_onnx  # noqa: F401
    # A failing self-check stands for a runtime that loads but cannot synthesize.
    check = (lambda: "the engine crashed") if sys.argv[3] == "failing-self-check" else None
    try:
        info = onnx_runtime.activate(sys.argv[1], Path(sys.argv[2]), check)
    except onnx_runtime.RuntimeUnavailableError as exc:
        print(json.dumps({"error": str(exc), "sherpa": "sherpa_onnx" in sys.modules}))
    else:
        print(json.dumps(info.__dict__))
    """
)


# The shim's record of each run against sherpa-onnx's own audio, with and without its pause
# shortening, and our copy of that shortening against the original. Spinning is off, so both
# of the shim's wrappers (sessions and runs) are in the one table.
_RECORD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from tts_service.synthesis import onnx_runtime
    from tts_service.audio.pauses import shorten_pauses
    shim, model_dir, sentences, sid = sys.argv[1:5]
    onnx_runtime.activate("pypi", Path(shim))
    assert onnx_runtime.disable_intra_op_spinning()
    from tts_service.synthesis.engine import ModelFiles, load_offline_tts
    files = ModelFiles(Path(model_dir))
    runs = {}
    for scale in (1.0, 0.2):
        tts = load_offline_tts(files, num_threads=2, silence_scale=scale)
        runs[scale] = []
        def keep(samples, progress, scale=scale):
            runs[scale].append((np.array(samples, dtype=np.float32), onnx_runtime.last_run()))
            return 1
        for text in json.loads(sentences):
            tts.generate(text, sid=int(sid), speed=1.0, callback=keep)
    checks = []
    for (whole, record), (shortened, _) in zip(runs[1.0], runs[0.2], strict=True):
        ours = shorten_pauses(whole, 24000).samples
        checks.append({"recorded": record is not None,
                       "frames_match": record is not None
                       and int(record[1].sum()) * 600 == len(whole),
                       "identical": bool(np.array_equal(ours, shortened)),
                       "shortened_by": len(whole) - len(shortened)})
    print(json.dumps({"checks": checks, "quiet_sessions": onnx_runtime.quiet_sessions()}))
    """
)


# Loads a 1-thread and a 2-thread engine (two sessions, as the pool and the solo engine are),
# then speaks a long text on the first, with the shim's memory options as asked; reports the
# resident memory each step added (VmRSS: what the targets in BENCHMARKS.md count).
_MEMORY = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    from tts_service.synthesis import onnx_runtime
    shim, model_dir, out, text, options = sys.argv[1:6]
    def rss_mb():
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmRSS"))
        return int(line.split()[1]) / 1024
    onnx_runtime.activate("pypi", Path(shim))
    from tts_service.synthesis.engine import ModelFiles, load_offline_tts
    files = ModelFiles(Path(model_dir))
    shared = onnx_runtime.share_weights(files.model) if "share" in options else 0
    shrinking = onnx_runtime.shrink_arenas() if "shrink" in options else False
    before = rss_mb()
    first = load_offline_tts(files, num_threads=1)
    first.generate("Ready.", sid=2, speed=1.0)
    loaded_first = rss_mb()
    second = load_offline_tts(files, num_threads=2)
    onnx_runtime.release_packed_weights()  # what is still read comes back from the file
    second.generate("Ready.", sid=2, speed=1.0)
    loaded_second = rss_mb()
    samples = [np.asarray(first.generate(text, sid=2, speed=1.0).samples, dtype=np.float32),
               np.asarray(second.generate("Thank you.", sid=2, speed=1.0).samples,
                          dtype=np.float32)]
    np.concatenate(samples).tofile(out)
    print(json.dumps({"shared": shared, "shrinking": shrinking,
                      "sharing_sessions": onnx_runtime.sharing_sessions(),
                      "first_mb": loaded_first - before, "second_mb": loaded_second - loaded_first,
                      "long_text_mb": rss_mb() - loaded_second}))
    """
)

# Twin engines speak different texts at once, each on its own thread, as a pool does.
_TWINS = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path
    import numpy as np
    from tts_service.synthesis import onnx_runtime
    shim, model_dir, texts = sys.argv[1:4]
    onnx_runtime.activate("pypi", Path(shim))
    from tts_service.synthesis.engine import ModelFiles
    from tts_service.model.preparation import check_options, prepare
    from tts_service.language.front_end import FrontEnds
    from tts_service.language.languages import ENGLISH
    files = ModelFiles(Path(model_dir))
    engine = prepare(files, [1], check_options(files)).engines[0]
    texts = json.loads(texts)
    front_end = FrontEnds()[ENGLISH]
    def speak(engine, text):
        chunks = []
        engine.speak(front_end.utterance(text), 2, 1.0,
                     lambda s: chunks.append(s.samples.copy()) or True, timed=False)
        return np.concatenate(chunks)
    alone = [speak(engine, text) for text in texts]
    twins = [engine, *(engine.twin() for _ in texts[1:])]
    together = [None] * len(texts)
    def run(i):
        together[i] = speak(twins[i], texts[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"same": [bool(np.array_equal(a, b)) for a, b in zip(alone, together)],
                      "lengths": [len(a) for a in alone]}))
    """
)


def _python(script: str, *args: str, stderr: list[str] | None = None) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    if stderr is not None:
        stderr.extend(done.stderr.splitlines())
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.model
def test_both_runtimes_speak_the_same_words(shim: Path, model_dir: Path, tmp_path: Path) -> None:
    reference = " ".join(SENTENCES)
    results = {}
    for choice in RUNTIMES:
        out = tmp_path / f"{choice}.f32"
        args = (choice, str(shim), str(model_dir), str(out), json.dumps(SENTENCES))
        info = _python(_SYNTHESIZE, *args, str(AF_BELLA), str(SAMPLE_RATE_HZ), "on")
        samples = np.fromfile(out, dtype=np.float32)
        heard = transcribe(samples, SAMPLE_RATE_HZ)
        duration_s = len(samples) / SAMPLE_RATE_HZ
        results[choice] = (info, duration_s, heard, word_error_rate(reference, heard))

    (bundled, bundled_s, bundled_heard, bundled_wer) = results["bundled"]
    (pypi, pypi_s, pypi_heard, pypi_wer) = results["pypi"]
    # Shown with -s; the numbers to compare when a runtime or these bounds change.
    for name, (info, duration_s, heard, wer) in results.items():
        print(f"\n{name} {info['version']}: {duration_s:.3f} s, WER {wer:.3f}: {heard}")
    assert bundled["name"] == "bundled"
    assert pypi["name"] == "pypi"
    assert pypi["version"] != bundled["version"]
    assert abs(pypi_s - bundled_s) <= DURATION_TOLERANCE * bundled_s, (pypi_s, bundled_s)
    assert bundled_wer <= MAX_WER, bundled_heard
    assert pypi_wer <= MAX_WER, pypi_heard
    assert abs(pypi_wer - bundled_wer) <= WER_TOLERANCE, (bundled_heard, pypi_heard)


@pytest.mark.model
def test_engines_without_spinning_make_the_same_audio(shim: Path, model_dir: Path,
                                                      tmp_path: Path) -> None:
    made = {}
    for spinning in ("on", "off"):
        out = tmp_path / f"spinning-{spinning}.f32"
        args = ("pypi", str(shim), str(model_dir), str(out), json.dumps(SENTENCES[:1]))
        info = _python(_SYNTHESIZE, *args, str(AF_BELLA), str(SAMPLE_RATE_HZ), spinning)
        made[spinning] = (int(info["quiet_sessions"]), np.fromfile(out, dtype=np.float32))
    assert made["on"][0] == 0
    assert made["off"][0] >= 1  # sherpa-onnx's session went through the shim's wrapper
    assert np.array_equal(made["on"][1], made["off"][1])


def test_auto_without_shim_falls_back_to_bundled(tmp_path: Path) -> None:
    info = _python(_ACTIVATE, "auto", str(tmp_path / "missing.so"), "activate-first")

    assert info["name"] == "bundled"
    assert info["version"] not in ("", "unknown")
    assert "missing.so" in info["reason"]


def test_pypi_without_shim_raises(tmp_path: Path) -> None:
    outcome = _python(_ACTIVATE, "pypi", str(tmp_path / "missing.so"), "activate-first")

    assert "missing.so" in outcome["error"]
    assert outcome["sherpa"] is False


def test_auto_with_shim_uses_pypi(shim: Path) -> None:
    info = _python(_ACTIVATE, "auto", str(shim), "activate-first")

    assert info["name"] == "pypi"
    assert str(shim) in info["reason"]


def test_auto_falls_back_with_one_warning_when_the_self_check_fails(shim: Path) -> None:
    logged: list[str] = []
    info = _python("import logging; logging.basicConfig()\n" + _ACTIVATE, "auto", str(shim),
                   "failing-self-check", stderr=logged)

    assert info["name"] == "bundled"
    assert info["version"] not in ("", "unknown")
    assert "failed its self-check: the engine crashed" in info["reason"]
    assert len(logged) == 1 and logged[0].startswith("WARNING:"), logged
    assert "the engine crashed" in logged[0]


def test_pypi_refuses_to_start_when_the_self_check_fails(shim: Path) -> None:
    outcome = _python(_ACTIVATE, "pypi", str(shim), "failing-self-check")

    assert "failed its self-check: the engine crashed" in outcome["error"]
    assert outcome["sherpa"] is False


def test_a_build_without_a_compiler_leaves_the_bundled_runtime(tmp_path: Path) -> None:
    out = tmp_path / "libonnxruntime.so"
    built = subprocess.run(["sh", str(REPO / "native" / "build.sh"), str(out)],
                           env={**os.environ, "CC": "no-such-compiler"}, capture_output=True,
                           text=True, timeout=60, check=False)
    assert built.returncode == 0
    assert "no C compiler ('no-such-compiler') found" in built.stderr
    assert not out.exists()
    info = _python(_ACTIVATE, "auto", str(out), "activate-first")
    assert info["name"] == "bundled"
    assert f"shim {out} not found" in info["reason"]


@pytest.mark.model
def test_self_check_synthesizes_a_word_on_the_pypi_runtime(shim: Path, model_dir: Path) -> None:
    from tts_service.synthesis.runtime_probe import prove

    assert prove(shim, model_dir) is None


@pytest.mark.model
def test_self_check_reports_why_the_word_was_not_synthesized(shim: Path, model_dir: Path,
                                                             tmp_path: Path) -> None:
    from tts_service.synthesis.runtime_probe import prove

    for part in model_dir.iterdir():
        (tmp_path / part.name).symlink_to(part)
    (tmp_path / "model.onnx").unlink()
    (tmp_path / "model.onnx").write_bytes((model_dir / "model.onnx").read_bytes()[:100_000])
    problem = prove(shim, tmp_path)
    assert problem is not None
    assert problem.startswith("a one-word synthesis failed: ")
    assert "model.onnx" in problem and "Traceback" not in problem
    assert prove(shim, model_dir, timeout_s=0.001) == \
        "a one-word synthesis took over 0 s"


def test_runtime_is_fixed_once_sherpa_onnx_is_imported(shim: Path) -> None:
    late_auto = _python(_ACTIVATE, "auto", str(shim), "import-first")
    late_pypi = _python(_ACTIVATE, "pypi", str(shim), "import-first")

    assert late_auto["name"] == "bundled"
    assert "can no longer be changed" in late_auto["reason"]
    assert "can no longer be changed" in late_pypi["error"]


def test_shim_version_node_matches_loader() -> None:
    from tts_service.synthesis import onnx_runtime

    version_script = (REPO / "native" / "ort_shim.map").read_text()
    assert f"VERS_{onnx_runtime.SHIM_ORT_VERSION} {{" in version_script


@pytest.mark.model
def test_server_without_the_shim_serves_on_bundled_after_one_warning(tmp_path: Path) -> None:
    missing = tmp_path / "libonnxruntime.so"
    server = start_server("--engines", "1", "--onnxruntime-shim", str(missing))
    try:
        warnings = [line for line in server.log if " WARNING " in line]
        assert len(warnings) == 1, server.log
        assert f"shim {missing} not found" in warnings[0]
        assert any("(bundled, chosen in" in line for line in server.log), server.log
    finally:
        assert server.stop() == 0


@pytest.mark.model
def test_server_asked_for_pypi_without_the_shim_refuses_to_start(tmp_path: Path) -> None:
    missing = tmp_path / "libonnxruntime.so"
    with pytest.raises(RuntimeError) as refused:
        start_server("--onnxruntime", "pypi", "--onnxruntime-shim", str(missing))
    log = str(refused.value)
    assert "server exited with 2" in log
    assert f"cannot start: PyPI onnxruntime unavailable: shim {missing} not found" in log
    assert "Traceback" not in log


@pytest.mark.model
def test_shim_records_durations_and_our_pause_shortening_is_sherpa_onnxs(
        shim: Path, model_dir: Path) -> None:
    """Word timings rest on these: durations x 600 samples is each sentence's audio, and
    shortening pauses ourselves gives sherpa-onnx's own output, sample for sample."""
    require_durations(model_dir)
    result = _python(_RECORD, str(shim), str(model_dir), json.dumps(SENTENCES), str(AF_BELLA))
    checks = cast(list[dict[str, Any]], result["checks"])
    assert len(checks) == len(SENTENCES)
    for check in checks:
        assert check["recorded"] and check["frames_match"] and check["identical"], check
    assert any(check["shortened_by"] > 0 for check in checks)  # pauses were really cut
    assert int(cast(int, result["quiet_sessions"])) == 2  # one per OfflineTts: spinning off too


@pytest.mark.model
def test_sessions_sharing_the_weights_hold_them_once_and_speak_alike(
        shim: Path, model_dir: Path, tmp_path: Path) -> None:
    runs = {}
    for options in ("none", "share"):
        out = tmp_path / f"{options}.f32"
        result = _python(_MEMORY, str(shim), str(model_dir), str(out), SENTENCES[0], options)
        runs[options] = (result, np.fromfile(out, dtype=np.float32))
    alone, shared = runs["none"][0], runs["share"][0]
    print(f"\nsecond session: {alone['second_mb']:.0f} MB alone, "
          f"{shared['second_mb']:.0f} MB sharing {shared['shared']} weights")
    assert int(alone["sharing_sessions"]) == 0
    assert int(shared["sharing_sessions"]) == 2
    assert int(shared["shared"]) > 400  # the model's 476 weights of 1 KiB or more
    # A session holds about 106 MB of weights on its own, about 18 MB when they are shared.
    assert float(shared["second_mb"]) < float(alone["second_mb"]) - 50
    assert np.array_equal(runs["none"][1], runs["share"][1])


@pytest.mark.model
def test_shrinking_arenas_give_back_a_long_texts_memory(shim: Path, model_dir: Path,
                                                        tmp_path: Path) -> None:
    text = " ".join(SENTENCES * 2)
    runs = {}
    for options in ("none", "shrink"):
        out = tmp_path / f"{options}.f32"
        result = _python(_MEMORY, str(shim), str(model_dir), str(out), text, options)
        runs[options] = (result, np.fromfile(out, dtype=np.float32))
    kept, shrunk = runs["none"][0], runs["shrink"][0]
    print(f"\nafter the long text: {kept['long_text_mb']:.0f} MB kept, "
          f"{shrunk['long_text_mb']:.0f} MB with shrinking arenas")
    assert shrunk["shrinking"] and not kept["shrinking"]
    assert float(shrunk["long_text_mb"]) < 40
    assert float(kept["long_text_mb"]) > float(shrunk["long_text_mb"]) + 40
    assert np.array_equal(runs["none"][1], runs["shrink"][1])


@pytest.mark.model
def test_twin_engines_speak_at_once_as_each_would_alone(shim: Path, model_dir: Path) -> None:
    texts = [*SENTENCES, "I have 3 apples and $5.50 from gRPC."]  # espeak-ng words too
    result = _python(_TWINS, str(shim), str(model_dir), json.dumps(texts))
    assert all(int(length) > SAMPLE_RATE_HZ for length in result["lengths"])
    assert result["same"] == [True] * len(texts)
