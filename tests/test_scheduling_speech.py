"""Piece scheduling with the real model: a lone stream on both engines of a pool without a solo
engine, the audio unchanged."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest
import soundfile

from harness.servers import ServerProcess, start_server
from harness.speech import pcm16_to_float, transcribe, word_error_rate
from tts_api.v1 import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.model

TEXT = ("The weather was lovely on the first day of spring. We walked along the river after "
        "lunch and watched the ducks. Then we went home and had a pot of tea in the garden. "
        "Later the children played with the old dog until it was dark.")
STEP_TIMEOUT_S = 120
CONFIG = tts_pb2.SynthesisConfig(voice="af_bella")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def metered() -> Iterator[tuple[ServerProcess, int]]:
    """2 engines x 1 thread and no solo engine (which would take a lone stream's every
    piece), serving its metrics."""
    metrics_port = _free_port()
    running = start_server("--engines", "2", "--engine-threads", "1", "--solo-engine-threads", "0",
                           "--metrics-port", str(metrics_port))
    yield running, metrics_port
    assert running.stop() == 0, "".join(running.log)


@pytest.fixture(scope="module")
async def metered_stub(metered: tuple[ServerProcess, int]
                       ) -> AsyncIterator[tts_pb2_grpc.TextToSpeechServiceStub]:
    async with grpc.aio.insecure_channel(metered[0].address) as channel:
        yield tts_pb2_grpc.TextToSpeechServiceStub(channel)


def _engines_busy(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        for line in page.read().decode().splitlines():
            if line.startswith("tts_engines_busy "):
                return float(line.split()[1])
    raise AssertionError("tts_engines_busy is missing from /metrics")


async def test_a_lone_stream_uses_both_engines_and_sounds_like_the_text(
        metered: tuple[ServerProcess, int],
        metered_stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    _, metrics_port = metered
    seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            seen.append(_engines_busy(metrics_port))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        call = metered_stub.SynthesizeStream(
            tts_pb2.SynthesizeStreamRequest(text=TEXT, config=CONFIG), timeout=STEP_TIMEOUT_S)
        chunks = []
        while True:
            message = await asyncio.wait_for(call.read(), STEP_TIMEOUT_S)
            if message is grpc.aio.EOF:
                break
            chunks.append(message.chunk)
    finally:
        stop.set()
        watcher.join(10)
    assert max(seen) == 2, f"engines busy over the stream: {sorted(set(seen))}"

    spoken = [chunk for chunk in chunks if chunk.text_span.text]
    assert [chunk.text_span.text for chunk in spoken] == [
        "The weather was lovely on the first day of spring.",
        "We walked along the river after lunch and watched the ducks.",
        "Then we went home and had a pot of tea in the garden.",
        "Later the children played with the old dog until it was dark.",
    ]
    joined = pcm16_to_float(b"".join(chunk.audio for chunk in chunks))
    heard = transcribe(joined, 24000)
    assert word_error_rate(TEXT, heard) < 0.25, heard

    # The same pieces said one at a time give the same audio, piece by piece.
    for chunk in spoken:
        alone = await metered_stub.Synthesize(
            tts_pb2.SynthesizeRequest(text=chunk.text_span.text, config=CONFIG),
            timeout=STEP_TIMEOUT_S)
        samples, _ = soundfile.read(io.BytesIO(alone.audio), dtype="float32")
        streamed = pcm16_to_float(chunk.audio)
        assert abs(len(samples) - len(streamed)) <= 4, chunk.text_span.text
        assert np.max(np.abs(samples - streamed[:len(samples)])) < 0.01
