"""Encodings, sample rates, speed and gain through the real service, decoded by ffmpeg."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
from typing import TypeAlias

import numpy as np
import pytest

from harness.speech import pcm16_to_float, transcribe, word_error_rate
from tts_api.v1 import tts_pb2, tts_pb2_grpc

pytestmark = [pytest.mark.model, pytest.mark.tools("ffmpeg", "ffprobe")]
Encoding: TypeAlias = tts_pb2.AudioEncoding.ValueType

TEXT = "The weather is lovely today. We walked along the river after lunch."
STEP_TIMEOUT_S = 120
# Opus pads to 20 ms frames; MP3 adds LAME's encoder delay (1105 samples) and pads the end to a
# whole frame (up to 1152 samples), so its slack is counted in samples.
DURATION_TOLERANCE_S = 0.05
MP3_EXTRA_SAMPLES = 1105 + 1152
# ffmpeg's demuxer for each header-less encoding.
_RAW_FORMATS = {
    tts_pb2.AUDIO_ENCODING_PCM_S16LE: "s16le",
    tts_pb2.AUDIO_ENCODING_MULAW: "mulaw",
    tts_pb2.AUDIO_ENCODING_ALAW: "alaw",
}
ENCODINGS = [tts_pb2.AUDIO_ENCODING_PCM_S16LE, tts_pb2.AUDIO_ENCODING_WAV,
             tts_pb2.AUDIO_ENCODING_FLAC, tts_pb2.AUDIO_ENCODING_OGG_OPUS,
             tts_pb2.AUDIO_ENCODING_MP3, tts_pb2.AUDIO_ENCODING_MULAW,
             tts_pb2.AUDIO_ENCODING_ALAW]


def _ffmpeg_input(encoding: Encoding, sample_rate_hz: int) -> list[str]:
    raw = _RAW_FORMATS.get(encoding)
    return ["-f", raw, "-ar", str(sample_rate_hz), "-ac", "1"] if raw else []


def decode(data: bytes, encoding: Encoding, sample_rate_hz: int) -> tuple[np.ndarray, int]:
    """Decodes with ffmpeg (not the service's encoders); fails on any decoder error."""
    input_args = _ffmpeg_input(encoding, sample_rate_hz)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", *input_args, "-show_entries", "stream=sample_rate,channels",
         "-of", "json", "-i", "pipe:0"], input=data, capture_output=True, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert int(stream["channels"]) == 1
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", *input_args, "-i", "pipe:0", "-f", "s16le", "-ac", "1",
         "pipe:1"], input=data, capture_output=True, check=True)
    assert decoded.stderr == b"", decoded.stderr.decode()
    return pcm16_to_float(decoded.stdout), int(stream["sample_rate"])


def opus_input_rate_hz(data: bytes) -> int:
    """The input rate an Ogg Opus stream declares (OpusHead); decoders always output 48 kHz."""
    head = data.index(b"OpusHead")
    return int(struct.unpack_from("<I", data, head + 12)[0])


async def _stream(stub: tts_pb2_grpc.TextToSpeechServiceStub, request: tts_pb2.SynthesizeRequest
                  ) -> list[tts_pb2.AudioChunk]:
    """The same text and settings through SynthesizeStream: its audio chunks."""
    streamed = tts_pb2.SynthesizeStreamRequest(text=request.text, config=request.config)

    async def collect() -> list[tts_pb2.AudioChunk]:
        return [message.chunk async for message in stub.SynthesizeStream(streamed)]

    return await asyncio.wait_for(collect(), STEP_TIMEOUT_S)


async def _pcm(stub: tts_pb2_grpc.TextToSpeechServiceStub, **fields: object) -> np.ndarray:
    request = tts_pb2.SynthesizeRequest(text=TEXT, config=tts_pb2.SynthesisConfig(
        voice="af_bella", encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
        **fields))  # type: ignore[arg-type]
    response = await stub.Synthesize(request, timeout=STEP_TIMEOUT_S)
    return pcm16_to_float(response.audio)


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def _check_decoded(data: bytes, encoding: Encoding, rate_hz: int, duration_s: float) -> None:
    samples, decoded_rate_hz = decode(data, encoding, rate_hz)
    if encoding == tts_pb2.AUDIO_ENCODING_OGG_OPUS:
        assert decoded_rate_hz == 48000
        assert opus_input_rate_hz(data) == rate_hz
    else:
        assert decoded_rate_hz == rate_hz
    tolerance_s = DURATION_TOLERANCE_S
    if encoding == tts_pb2.AUDIO_ENCODING_MP3:
        tolerance_s += MP3_EXTRA_SAMPLES / rate_hz
    assert len(samples) / decoded_rate_hz == pytest.approx(duration_s, abs=tolerance_s)
    assert _rms(samples) > 0.01, "decoded audio is silent"


@pytest.mark.parametrize("encoding", ENCODINGS, ids=tts_pb2.AudioEncoding.Name)
async def test_unary_audio_decodes_to_the_announced_rate_and_duration(
        stub: tts_pb2_grpc.TextToSpeechServiceStub, encoding: Encoding) -> None:
    request = tts_pb2.SynthesizeRequest(text=TEXT,
                                        config=tts_pb2.SynthesisConfig(voice="af_bella",
                                                                       encoding=encoding))
    response = await stub.Synthesize(request, timeout=STEP_TIMEOUT_S)
    assert response.encoding == encoding
    assert response.sample_rate_hertz == 24000
    assert 2.0 < response.audio_duration_seconds < 10.0
    _check_decoded(response.audio, encoding, 24000, response.audio_duration_seconds)


@pytest.mark.parametrize("encoding", ENCODINGS, ids=tts_pb2.AudioEncoding.Name)
async def test_stream_chunks_concatenate_into_one_valid_stream(
        stub: tts_pb2_grpc.TextToSpeechServiceStub, encoding: Encoding) -> None:
    request = tts_pb2.SynthesizeRequest(text=TEXT,
                                        config=tts_pb2.SynthesisConfig(voice="af_bella",
                                                                       encoding=encoding,
                                                                       sample_rate_hertz=16000))
    messages = await _stream(stub, request)
    assert sum(1 for m in messages if m.audio) >= 2, "expected audio in several chunks"
    assert {(m.encoding, m.sample_rate_hertz) for m in messages} == {(encoding, 16000)}
    duration_s = sum(m.audio_duration_seconds for m in messages)
    _check_decoded(b"".join(m.audio for m in messages), encoding, 16000, duration_s)


@pytest.mark.parametrize("rate_hz", [8000, 16000, 22050, 44100, 48000])
async def test_resampled_wav_has_the_requested_rate_and_duration(
        stub: tts_pb2_grpc.TextToSpeechServiceStub, rate_hz: int) -> None:
    request = tts_pb2.SynthesizeRequest(text=TEXT,
                                        config=tts_pb2.SynthesisConfig(voice="af_bella",
                                                                       sample_rate_hertz=rate_hz,
                                                                       encoding=tts_pb2.AUDIO_ENCODING_WAV))
    response = await stub.Synthesize(request, timeout=STEP_TIMEOUT_S)
    assert response.sample_rate_hertz == rate_hz
    samples, decoded_rate_hz = decode(response.audio, tts_pb2.AUDIO_ENCODING_WAV, rate_hz)
    assert decoded_rate_hz == rate_hz
    # soxr keeps the length exact up to its rounding of the last sample.
    assert len(samples) == pytest.approx(response.audio_duration_seconds * rate_hz, abs=2)


async def test_streamed_resampling_matches_the_whole_signal(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    """The resampler carries its state across chunks: no clicks or gaps at the joins."""
    request = tts_pb2.SynthesizeRequest(text=TEXT,
                                        config=tts_pb2.SynthesisConfig(voice="af_bella",
                                                                       sample_rate_hertz=16000,
                                                                       encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE))
    streamed = pcm16_to_float(b"".join(m.audio for m in await _stream(stub, request)))
    whole = pcm16_to_float((await stub.Synthesize(request, timeout=STEP_TIMEOUT_S)).audio)
    assert len(streamed) == pytest.approx(len(whole), abs=2)
    common = min(len(streamed), len(whole))
    assert np.max(np.abs(streamed[:common] - whole[:common])) < 2e-3


@pytest.mark.parametrize(("rate_hz", "max_wer"), [(16000, 0.2), (8000, 0.3)])
async def test_recognizer_understands_telephone_and_wideband_rates(
        stub: tts_pb2_grpc.TextToSpeechServiceStub, rate_hz: int, max_wer: float) -> None:
    samples = await _pcm(stub, sample_rate_hertz=rate_hz)
    heard = transcribe(samples, rate_hz)
    assert word_error_rate(TEXT, heard) <= max_wer, heard


async def test_speed_changes_the_duration(stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    natural, fast, slow = [len(await _pcm(stub, speed=speed)) for speed in (1.0, 2.0, 0.5)]
    assert fast < 0.7 * natural
    assert slow > 1.5 * natural


async def test_volume_gain_scales_the_level(stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    loud = await _pcm(stub)
    quiet = await _pcm(stub, volume_gain_db=-20.0)
    assert len(quiet) == len(loud)
    # -20 dB is a factor of 10 in amplitude; int16 rounding moves it only slightly.
    assert _rms(quiet) / _rms(loud) == pytest.approx(0.1, rel=0.05)
