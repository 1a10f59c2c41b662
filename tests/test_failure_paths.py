"""Edges of the service and its client that a happy path never reaches (fast tier)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tts_api.v1 import tts_pb2
from tts_service.server import SERVICE_NAME, StartupError

from .fakes import SAMPLE_RATE_HZ, TIMEOUT_S, fake_server

TOKEN = "token-from-the-environment"
TONE_SAMPLES = SAMPLE_RATE_HZ // 10  # the fake engine's 0.1 s per sentence


async def _client(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Runs tts-grpc-client without blocking the loop the in-process server runs on."""
    clean = {k: v for k, v in os.environ.items() if k not in ("TTS_SERVER", "TTS_TOKEN")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tts_client.cli", "--no-play", *args,
        env={**clean, **env}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_an_oversized_request_is_refused_and_the_server_keeps_serving() -> None:
    async with fake_server(max_text_chars=10) as served:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="a" * 100_000),
                                         timeout=TIMEOUT_S)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "message larger than max" in (refused.value.details() or "")
        assert served.engine.calls == []
        ok = await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Short."),
                                          timeout=TIMEOUT_S)
        assert ok.audio_duration_seconds > 0


async def test_listening_beyond_loopback_without_tls_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    # 192.0.2.1 is a documentation address: never this machine's, so nothing is exposed and
    # the bind fails after the warning.
    with pytest.raises(StartupError, match=re.escape("cannot listen on 192.0.2.1:")):
        async with fake_server(host="192.0.2.1"):
            pass
    assert "listening on 192.0.2.1 without TLS" in caplog.text
    caplog.clear()
    async with fake_server():
        pass
    assert "without TLS" not in caplog.text


async def test_the_server_takes_its_token_from_tts_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_TOKEN", TOKEN)
    async with fake_server() as served:
        request = tts_pb2.SynthesizeRequest(text="Hi.")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub.Synthesize(request, timeout=TIMEOUT_S)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = await served.stub.Synthesize(request, timeout=TIMEOUT_S,
                                          metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert ok.audio_duration_seconds > 0


async def test_reflection_stays_open_on_a_token_protected_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_TOKEN", TOKEN)
    async with fake_server() as served:
        stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT_S)
        answer = await asyncio.wait_for(call.read(), TIMEOUT_S)
        call.cancel()
    assert SERVICE_NAME in {s.name for s in answer.list_services_response.service}


async def test_the_client_takes_server_and_token_from_the_environment_and_sends_speed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TTS_TOKEN", TOKEN)
    async with fake_server() as served:
        address = f"127.0.0.1:{served.running.port}"
        out = tmp_path / "hi.wav"
        code, stderr = await _client("--speed", "1.5", "--output", str(out), "Hello there.",
                                     env={"TTS_SERVER": address, "TTS_TOKEN": TOKEN})
        assert code == 0, stderr
        assert served.engine.speeds == [1.5]
        code, stderr = await _client("Hello.", env={"TTS_SERVER": address})
        assert code == 1 and "UNAUTHENTICATED" in stderr and "Traceback" not in stderr
    assert soundfile.info(str(out)).frames == TONE_SAMPLES


@pytest.mark.parametrize(("config", "said"), [
    (tts_pb2.SynthesisConfig(), "It costs five dollars."),
    (tts_pb2.SynthesisConfig(normalize_text=True), "It costs five dollars."),
    (tts_pb2.SynthesisConfig(normalize_text=False), "It costs $5."),
], ids=["unset", "on", "off"])
async def test_normalize_text_is_on_unless_switched_off(config: tts_pb2.SynthesisConfig,
                                                        said: str) -> None:
    async with fake_server() as served:
        await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="It costs $5.",
                                                               config=config),
                                     timeout=TIMEOUT_S)
    assert served.engine.calls == [said]


# ffprobe's name for each container, read back by a decoder that knows nothing of ours.
_READ_BACK = {
    ".wav": "wav", ".flac": "flac", ".ogg": "ogg", ".opus": "ogg", ".mp3": "mp3",
}
_BYTES_PER_SAMPLE = {".raw": 2, ".pcm": 2, ".ulaw": 1, ".mulaw": 1, ".alaw": 1}


async def test_every_output_extension_writes_its_format(tmp_path: Path) -> None:
    from tts_client.cli import _OUTPUT_FORMATS

    assert set(_OUTPUT_FORMATS) == set(_READ_BACK) | set(_BYTES_PER_SAMPLE)
    async with fake_server() as served:
        address = f"127.0.0.1:{served.running.port}"
        for extension in sorted(_OUTPUT_FORMATS):
            out = tmp_path / f"out{extension}"
            code, stderr = await _client("--server", address, "--output", str(out), "Hi.",
                                         env={})
            assert code == 0, (extension, stderr)
            if extension in _READ_BACK:
                assert _ffprobe_format(out) == _READ_BACK[extension], extension
                decoded = np.frombuffer(_ffmpeg_decode(out), dtype="<i2")
                # Lossy codecs pad to whole frames (MP3: 1152 samples, plus its delay); the
                # tone's peak is 0.3 of full scale.
                assert TONE_SAMPLES * 0.9 <= len(decoded) <= TONE_SAMPLES * 2, extension
                assert np.abs(decoded).max() > 0.2 * 32768, extension
            else:
                size = out.stat().st_size
                assert size == TONE_SAMPLES * _BYTES_PER_SAMPLE[extension], extension
            assert not out.with_name(out.name + ".part").exists()


def _ffprobe_format(path: Path) -> str:
    return subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                          check=True, timeout=TIMEOUT_S).stdout.strip()


def _ffmpeg_decode(path: Path) -> bytes:
    """Mono 16-bit PCM at the model's rate, whatever the file's own rate."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                           "-ar", str(SAMPLE_RATE_HZ), "-"], capture_output=True, check=True,
                          timeout=TIMEOUT_S).stdout



async def test_a_request_that_is_not_utf8_is_invalid_argument_and_counted() -> None:
    """protobuf refuses a string field that is not UTF-8; grpc alone would answer UNKNOWN."""
    async with fake_server() as served:
        raw = served.channel.unary_unary(f"/{SERVICE_NAME}/Synthesize",
                                         request_serializer=bytes,
                                         response_deserializer=bytes)
        text_field = tts_pb2.SynthesizeRequest.DESCRIPTOR.fields_by_name["text"].number
        surrogate = b"\xed\xa0\x80"  # U+D800 as WTF-8: never valid UTF-8
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw(bytes([text_field << 3 | 2, 4]) + surrogate + b"a", timeout=TIMEOUT_S)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "UTF-8" in (refused.value.details() or "")
        assert served.engine.calls == []
        assert served.count("Synthesize", "INVALID_ARGUMENT") == 1
        ok = await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Fine."),
                                          timeout=TIMEOUT_S)
        assert ok.audio_duration_seconds > 0


def test_every_error_a_caller_is_told_about_has_its_own_outcome() -> None:
    """A ServiceError is the caller's to act on: none may fall through to INTERNAL."""
    from tts_service import errors
    from tts_service.outcomes import Code, classify

    kinds = [cls for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.ServiceError)
             and cls is not errors.ServiceError]
    assert len(kinds) >= 6
    for kind in kinds:
        error = kind("f", "m") if kind in (errors.InvalidRequest, errors.Unsupported) else \
            kind("m", 1.0) if kind is errors.Overloaded else kind("m")
        outcome = classify(error)
        assert outcome.code is not Code.INTERNAL and not outcome.unexpected, kind
        assert outcome.message == "m", kind
    assert classify(errors.CallerGone("gone")).code is Code.CANCELLED
    assert classify(RuntimeError("bug")).unexpected
