"""The service end to end: real model, real gRPC on a loopback port, real recognizer."""

from __future__ import annotations

import asyncio
import io
import os
from importlib.metadata import version
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import whisper
from harness.servers import ServerProcess, start_server
from harness.speech import pcm16_to_float, transcribe, word_error_rate
from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.synthesis.cpus import usable_cpus
from tts_service.synthesis.pool_shape import pool_shape

pytestmark = pytest.mark.model

THREE_SENTENCES = ("The weather is lovely today. We walked along the river after lunch. "
                   "Then we went home and had some tea.")
STEP_TIMEOUT_S = 120


async def _stream(stub: tts_pb2_grpc.TextToSpeechServiceStub, request: tts_pb2.SynthesizeRequest
                  ) -> list[tts_pb2.AudioChunk]:
    """The same text and settings through SynthesizeStream: its audio chunks."""
    streamed = tts_pb2.SynthesizeStreamRequest(text=request.text, config=request.config)

    async def collect() -> list[tts_pb2.AudioChunk]:
        return [message.chunk async for message in stub.SynthesizeStream(streamed)]

    return await asyncio.wait_for(collect(), STEP_TIMEOUT_S)


async def test_health_reports_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tts_api.v1.TextToSpeechService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_list_voices_has_all_54_kokoro_voices(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    response = await stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=10)
    voices = {voice.name: voice for voice in response.voices}
    assert len(response.voices) == len(voices) == 54
    assert response.default_voice == "af_bella"
    bella = voices["af_bella"]
    assert (bella.language_code, bella.gender) == ("en-US", tts_pb2.VOICE_GENDER_FEMALE)
    assert voices["bm_george"].language_code == "en-GB"
    assert voices["bm_george"].gender == tts_pb2.VOICE_GENDER_MALE
    british = await stub.ListVoices(tts_pb2.ListVoicesRequest(language_code="en-gb"), timeout=10)
    assert {v.language_code for v in british.voices} == {"en-GB"}
    assert len(british.voices) == 8  # bf_alice … bm_lewis


async def test_unary_hello_world_is_a_second_of_24khz_speech(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    response = await stub.Synthesize(
        tts_pb2.SynthesizeRequest(text="Hello world.",
                                  config=tts_pb2.SynthesisConfig(voice="af_bella")),
        timeout=STEP_TIMEOUT_S)
    assert response.encoding == tts_pb2.AUDIO_ENCODING_WAV
    assert response.sample_rate_hertz == 24000
    samples, rate = soundfile.read(io.BytesIO(response.audio), dtype="float32")
    assert rate == 24000
    duration_s = len(samples) / rate
    assert 0.6 < duration_s < 2.0
    assert response.audio_duration_seconds == pytest.approx(duration_s, abs=0.01)
    assert float(np.sqrt(np.mean(samples**2))) > 0.01, "audio is silent"
    # Two words are too little context for pocketsphinx (it hears "the world"): Whisper.
    heard = whisper.hear(samples, rate, "en")
    assert whisper.word_error_rate("Hello world.", heard) == 0, heard


async def test_stream_sends_sentences_in_order_adding_up_to_the_unary_audio(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    request = tts_pb2.SynthesizeRequest(text=THREE_SENTENCES,
                                        config=tts_pb2.SynthesisConfig(voice="af_bella"))
    messages = await _stream(stub, request)
    spans = [m.text_span for m in messages if m.HasField("text_span")]
    assert len(spans) >= 3
    assert [s.start_offset for s in spans] == sorted(s.start_offset for s in spans)
    for span in spans:
        assert THREE_SENTENCES[span.start_offset:span.end_offset] == span.text
    assert [m.sequence_number for m in messages] == list(range(len(messages)))
    assert all(m.encoding == tts_pb2.AUDIO_ENCODING_PCM_S16LE for m in messages)
    streamed = pcm16_to_float(b"".join(m.audio for m in messages))

    unary = await stub.Synthesize(request, timeout=STEP_TIMEOUT_S)
    whole, _ = soundfile.read(io.BytesIO(unary.audio), dtype="float32")
    assert len(streamed) == pytest.approx(len(whole), rel=0.03)
    offsets = [m.audio_offset_seconds for m in messages[: len(spans)]]
    assert offsets == sorted(offsets)


async def test_recognizer_hears_the_text(stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    response = await stub.Synthesize(
        tts_pb2.SynthesizeRequest(text=THREE_SENTENCES,
                                  config=tts_pb2.SynthesisConfig(voice="af_bella")),
        timeout=STEP_TIMEOUT_S)
    samples, rate = soundfile.read(io.BytesIO(response.audio), dtype="float32")
    heard = transcribe(samples, rate)
    assert word_error_rate(THREE_SENTENCES, heard) <= 0.2, heard


async def test_engine_speaks_out_of_lexicon_words(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    """No word is lost: a word in no lexicon (here a digit, left unnormalized) is still
    spoken (sherpa-onnx 2.0.x's own front end silently drops such words)."""
    request = tts_pb2.SynthesizeRequest(text="I have 3 apples.",
                                        config=tts_pb2.SynthesisConfig(voice="af_bella",
                                                                       normalize_text=False))
    response = await stub.Synthesize(request, timeout=STEP_TIMEOUT_S)
    samples, rate = soundfile.read(io.BytesIO(response.audio), dtype="float32")
    heard = transcribe(samples, rate).split()
    assert "three" in heard, heard


async def test_server_info_reports_engine_and_limits(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    info = await stub.GetServerInfo(tts_pb2.GetServerInfoRequest(), timeout=10)
    assert info.engine_version.startswith("1.13.")
    assert info.model_sample_rate_hertz == 24000
    assert info.onnxruntime == "pypi"
    assert info.onnxruntime_version == version("onnxruntime")
    assert info.max_text_chars == 5000
    # The default pool follows the CPUs: on 2, two single-thread engines and a solo engine of
    # two threads.
    shape = pool_shape(usable_cpus())
    assert (info.engines, info.threads_per_engine, info.solo_engine_threads) == \
        (shape.engines, shape.engine_threads, shape.solo_engine_threads)
    assert (info.usable_cpus, info.pool_from_cpus) == (shape.cpus.count, True)


def test_on_one_cpu_the_server_starts_one_single_thread_engine_and_no_solo_engine() -> None:
    """Under `taskset -c 0` no engine thread may wait for another's core."""
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everywhere)})  # the server inherits this thread's mask
    try:
        server = start_server()
    finally:
        os.sched_setaffinity(0, everywhere)
    try:
        assert os.sched_getaffinity(server.process.pid) == {min(everywhere)}
        serving = next(line for line in server.log if "serving tts_api" in line)
        assert "(1 engine of 1 thread, no solo engine; derived from 1 usable CPU " in serving
        info = _server_info(server.address)
        assert (info.engines, info.threads_per_engine, info.solo_engine_threads) == (1, 1, 0)
        assert (info.usable_cpus, info.pool_from_cpus) == (1, True)
    finally:
        assert server.stop() == 0, "".join(server.log)


def test_an_explicit_setting_wins_over_the_cpus() -> None:
    server = start_server("--solo-engine-threads", "0")
    try:
        info = _server_info(server.address)
        assert info.solo_engine_threads == 0
        assert info.engines == pool_shape(usable_cpus()).engines
        assert not info.pool_from_cpus
    finally:
        assert server.stop() == 0, "".join(server.log)


def _server_info(address: str) -> tts_pb2.GetServerInfoResponse:
    with grpc.insecure_channel(address) as channel:
        stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
        response: tts_pb2.GetServerInfoResponse = stub.GetServerInfo(
            tts_pb2.GetServerInfoRequest(), timeout=10)
        return response


def test_default_server_really_runs_on_the_newer_onnxruntime(server: ServerProcess) -> None:
    """A silent fallback to the bundled runtime would pass every other test, only slower."""
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    runtimes = {Path(line.split()[-1]) for line in maps.splitlines()
                if "/libonnxruntime.so" in line}
    names = {(path.parent.parent.name, path.name) for path in runtimes}
    assert ("onnxruntime", f"libonnxruntime.so.{version('onnxruntime')}") in names, runtimes
    assert not any(path.parent.parent.name == "sherpa_onnx" for path in runtimes), runtimes
    assert any(f"onnxruntime {version('onnxruntime')} (pypi, " in line for line in server.log)


async def test_server_still_serves_after_a_bad_request(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    # Every row of the error table is in test_errors.py, against the fake engine.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hi.", config=tts_pb2.SynthesisConfig(
            voice="xx_nobody")), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Still here."), timeout=60)
    assert response.audio_duration_seconds > 0.3
