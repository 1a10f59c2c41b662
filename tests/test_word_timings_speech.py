"""Word timings on the real model: every word timed, in order, where a recognizer hears it."""

from __future__ import annotations

import asyncio
import difflib
import itertools
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from harness.servers import MODEL_DIR, ServerProcess, require_durations, start_server
from harness.speech import pcm16_to_float, word_segments
from tts_api.v1 import tts_pb2, tts_pb2_grpc

from .test_client import run_client

pytestmark = pytest.mark.model

CALL_TIMEOUT_S = 120
FRAME_S = 0.025  # one duration frame of the model: 600 samples at 24 kHz
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me tomorrow morning before nine, because I have a meeting at ten.",
    "We walked along the river until the sun went down behind the hills.",
]


@pytest.fixture(scope="module")
def timed_server() -> Iterator[ServerProcess]:
    require_durations()
    # Two engines: the pieces of one request are said in parallel, so the times of the whole
    # stream are checked across engines.
    running = start_server("--engines", "2", "--engine-threads", "1")
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.fixture
async def stub(timed_server: ServerProcess
               ) -> AsyncIterator[tts_pb2_grpc.TextToSpeechServiceStub]:
    async with grpc.aio.insecure_channel(timed_server.address) as channel:
        yield tts_pb2_grpc.TextToSpeechServiceStub(channel)


def _config(encoding: int = tts_pb2.AUDIO_ENCODING_UNSPECIFIED, sample_rate_hertz: int = 0
            ) -> tts_pb2.SynthesisConfig:
    return tts_pb2.SynthesisConfig(voice="af_bella", enable_word_timings=True,
                                   encoding=encoding,  # type: ignore[arg-type]
                                   sample_rate_hertz=sample_rate_hertz)


async def _stream(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str,
                  config: tts_pb2.SynthesisConfig) -> list[tts_pb2.AudioChunk]:
    call = stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text=text, config=config),
                                 timeout=CALL_TIMEOUT_S)
    return [response.chunk async for response in call]


async def _written_live(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str,
                        config: tts_pb2.SynthesisConfig) -> list[tts_pb2.AudioChunk]:
    """StreamingSynthesize with the text sent a few characters at a time."""
    async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        yield tts_pb2.StreamingSynthesizeRequest(config=config)
        for at in range(0, len(text), 5):
            yield tts_pb2.StreamingSynthesizeRequest(text=text[at:at + 5])
            await asyncio.sleep(0.005)

    call = stub.StreamingSynthesize(requests(), timeout=CALL_TIMEOUT_S)
    return [response.chunk async for response in call if response.HasField("chunk")]


def _check_timed_chunks(text: str, chunks: list[tts_pb2.AudioChunk]) -> None:
    """Every written word once, in order, as the caller wrote it, inside its chunk's audio."""
    timings = [word for chunk in chunks for word in chunk.words]
    assert [w for t in timings for w in _written_words(t.text_span.text)] == _written_words(text)
    for timing in timings:
        span = timing.text_span
        assert text[span.start_offset:span.end_offset] == span.text
    for before, after in itertools.pairwise(timings):
        assert before.text_span.end_offset <= after.text_span.start_offset
        assert before.start_seconds < before.end_seconds <= after.start_seconds
    # Each chunk's words lie inside that chunk's audio, and the chunks tile the whole audio.
    total_s = 0.0
    for chunk in chunks:
        assert chunk.audio_offset_seconds == pytest.approx(total_s)
        for timing in chunk.words:
            assert chunk.audio_offset_seconds <= timing.start_seconds
            assert timing.end_seconds <= chunk.audio_offset_seconds + chunk.audio_duration_seconds
        total_s += chunk.audio_duration_seconds
    samples = sum(len(chunk.audio) // 2 for chunk in chunks)
    assert abs(samples / 24000 - total_s) < FRAME_S


def _written_words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower())


async def test_every_word_is_timed_once_in_order_inside_its_chunk(stub) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(SENTENCES)
    chunks = await _stream(stub, text, _config())
    assert len(chunks) >= 3  # several pieces, said by both engines
    _check_timed_chunks(text, chunks)


async def test_text_streamed_as_it_is_written_is_timed_the_same(stub) -> None:  # type: ignore[no-untyped-def]
    """StreamingSynthesize: the same words, spans and times as the whole text streamed."""
    text = " ".join(SENTENCES)
    live = await _written_live(stub, text, _config())
    _check_timed_chunks(text, live)
    whole = await _stream(stub, text, _config())

    def timed(chunks: list[tts_pb2.AudioChunk]) -> list[tuple[int, int, str, float, float]]:
        return [(w.text_span.start_offset, w.text_span.end_offset, w.text_span.text,
                 round(w.start_seconds, 3), round(w.end_seconds, 3))
                for chunk in chunks for w in chunk.words]

    assert timed(live) == timed(whole)


async def test_times_agree_with_an_independent_aligner(stub) -> None:  # type: ignore[no-untyped-def]
    """pocketsphinx segments the same audio on its own; 80% of words within 100 ms."""
    differences: list[float] = []
    for text in SENTENCES:
        response = await stub.Synthesize(tts_pb2.SynthesizeRequest(
            text=text, config=_config(encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE)),
            timeout=CALL_TIMEOUT_S)
        ours = [(w.text_span.text.lower(), w.start_seconds, w.end_seconds)
                for w in response.words]
        heard = word_segments(pcm16_to_float(response.audio), response.sample_rate_hertz)
        matcher = difflib.SequenceMatcher(a=[w for w, _, _ in ours], b=[w for w, _, _ in heard],
                                          autojunk=False)
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                _, start, end = ours[block.a + k]
                _, heard_start, heard_end = heard[block.b + k]
                differences += [abs(start - heard_start), abs(end - heard_end)]
    assert len(differences) >= 2 * 25, "the recognizer should hear most words"
    within = sum(d <= 0.1 for d in differences) / len(differences)
    assert within >= 0.8, f"only {within:.0%} of word boundaries within 100 ms"


async def test_normalized_text_maps_back_to_what_the_caller_wrote(stub) -> None:  # type: ignore[no-untyped-def]
    text = "On 3/4/2025 we paid $5.50 for 12 apples."
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text=text, config=_config()),
                                     timeout=CALL_TIMEOUT_S)
    spans = [w.text_span.text for w in response.words]
    assert "$5.50" in spans and "12" in spans and any("3/4/2025" in s for s in spans)
    assert [w for s in spans for w in _written_words(s)] == _written_words(text)


async def test_word_timings_are_off_by_default(stub) -> None:  # type: ignore[no-untyped-def]
    config = tts_pb2.SynthesisConfig(voice="af_bella")
    chunks = await _stream(stub, "Hello there.", config)
    assert chunks and not any(chunk.words for chunk in chunks)
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hello there.",
                                                               config=config),
                                     timeout=CALL_TIMEOUT_S)
    assert not response.words


@pytest.mark.parametrize(("encoding", "rate_hz"), [
    (tts_pb2.AUDIO_ENCODING_WAV, 16000),
    (tts_pb2.AUDIO_ENCODING_FLAC, 22050),
    (tts_pb2.AUDIO_ENCODING_OGG_OPUS, 48000),
    (tts_pb2.AUDIO_ENCODING_MP3, 44100),
    (tts_pb2.AUDIO_ENCODING_MULAW, 8000),
    (tts_pb2.AUDIO_ENCODING_ALAW, 8000),
])
async def test_times_do_not_depend_on_encoding_or_rate(stub, encoding: int,  # type: ignore[no-untyped-def]
                                                       rate_hz: int) -> None:
    text = "Good morning, Anna."
    reference = await _stream(stub, text, _config())
    other = await _stream(stub, text, _config(encoding=encoding, sample_rate_hertz=rate_hz))
    assert [list(c.words) for c in other if c.words] == [list(c.words) for c in reference]


async def _refused(address: str) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hi.", config=_config()),
                                  timeout=CALL_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    return raised.value


async def test_a_model_without_durations_refuses_word_timings(tmp_path: Path) -> None:
    """A model assembled before the durations output existed: re-assembling is the fix."""
    import onnx

    model = onnx.load(str(MODEL_DIR / "model.onnx"))
    kept = [output for output in model.graph.output if output.name != "durations"]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    old = tmp_path / "model"
    old.mkdir()
    onnx.save(model, str(old / "model.onnx"))
    for entry in MODEL_DIR.iterdir():
        if entry.name != "model.onnx":
            (old / entry.name).symlink_to(entry)
    running = start_server("--engines", "1", "--model-dir", str(old))
    try:
        error = await _refused(running.address)
        assert "make models" in (error.details() or "")
    finally:
        assert running.stop() == 0, "".join(running.log)


async def test_bundled_runtime_refuses_word_timings_and_voice_mixes_and_says_why() -> None:
    running = start_server("--engines", "1", "--onnxruntime", "bundled")
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hi.", config=_config()),
                                      timeout=CALL_TIMEOUT_S)
            assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "--onnxruntime pypi" in (raised.value.details() or "")
            status = rpc_status.from_call(raised.value)
            assert status is not None
            failure = error_details_pb2.PreconditionFailure()
            assert status.details[0].Unpack(failure)
            assert failure.violations[0].subject == "config.enable_word_timings"
            # A voice mix needs the shim's style override, too (docs/voices.md).
            with pytest.raises(grpc.aio.AioRpcError) as mix:
                await stub.Synthesize(tts_pb2.SynthesizeRequest(
                    text="Hi.", config=tts_pb2.SynthesisConfig(voice="af_bella(2)+af_sky(1)")),
                    timeout=CALL_TIMEOUT_S)
            assert mix.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "--onnxruntime pypi" in (mix.value.details() or "")
            status = rpc_status.from_call(mix.value)
            assert status is not None and status.details[0].Unpack(failure)
            assert failure.violations[0].subject == "config.voice"
            # The server keeps serving untimed requests in one voice.
            response = await stub.Synthesize(tts_pb2.SynthesizeRequest(
                text="Hi.", config=tts_pb2.SynthesisConfig()), timeout=CALL_TIMEOUT_S)
            assert response.audio_duration_seconds > 0
    finally:
        assert running.stop() == 0, "".join(running.log)


@pytest.mark.parametrize("caption_format", ["vtt", "srt"])
def test_cli_writes_captions_next_to_the_audio(timed_server: ServerProcess, tmp_path: Path,
                                               caption_format: str) -> None:
    import webvtt

    out = tmp_path / "hello.wav"
    text = ("Hello there, how are you? The weather is lovely today, and we walked along the "
            "river after lunch.")
    result = run_client("--server", timed_server.address, "--output", str(out),
                        "--captions", caption_format, text)
    assert result.returncode == 0, result.stderr
    captions_file = tmp_path / f"hello.{caption_format}"
    read = webvtt.read if caption_format == "vtt" else webvtt.from_srt
    cues = read(str(captions_file)).captions
    # Readable cues (tts_service/audio/captions.py), each the text of its words, in order.
    assert cues[0].text == "Hello there, how are you?" and len(cues) >= 2
    assert " ".join(cue.text.replace("\n", " ") for cue in cues) == text
    assert all(len(line) <= 42 for cue in cues for line in cue.text.split("\n"))
    assert all(a.end_in_seconds <= b.start_in_seconds for a, b in itertools.pairwise(cues))
    assert not list(tmp_path.glob("*.part"))


def test_cli_captions_need_an_output_file() -> None:
    result = run_client("--captions", "vtt", "Hello.")
    assert result.returncode == 2 and "--output" in result.stderr
