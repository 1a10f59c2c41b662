"""StreamingSynthesize with the real model: text written in small pieces is heard whole."""

from __future__ import annotations

import asyncio
import random

import grpc
import numpy as np
import pytest

from harness.speech import pcm16_to_float, transcribe, word_error_rate
from tts_api.v1 import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.model

STEP_TIMEOUT_S = 120
TEXT = ("We walked 12 miles along the river. The tickets cost $3.50 each. "
        "Then we went home and had some tea")
SPOKEN = ("we walked twelve miles along the river the tickets cost three dollars fifty "
          "cents each then we went home and had some tea")


def pieces_of_one_to_seven(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(text):
        size = rng.randint(1, 7)
        pieces.append(text[at:at + size])
        at += size
    return pieces


async def _streamed(stub: tts_pb2_grpc.TextToSpeechServiceStub, pieces: list[str]
                    ) -> list[tts_pb2.AudioChunk]:
    """Sends the config, then each piece as its own message, then half-closes."""
    async def requests():  # type: ignore[no-untyped-def]
        yield tts_pb2.StreamingSynthesizeRequest(config=tts_pb2.SynthesisConfig(voice="af_bella"))
        for piece in pieces:
            yield tts_pb2.StreamingSynthesizeRequest(text=piece)
            await asyncio.sleep(0.005)  # each arrives as its own message, like tokens

    async def collect() -> list[tts_pb2.AudioChunk]:
        return [response.chunk async for response in stub.StreamingSynthesize(requests())
                if response.HasField("chunk")]

    return await asyncio.wait_for(collect(), STEP_TIMEOUT_S)


async def _whole(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str
                 ) -> list[tts_pb2.AudioChunk]:
    request = tts_pb2.SynthesizeStreamRequest(text=text,
                                              config=tts_pb2.SynthesisConfig(voice="af_bella"))

    async def collect() -> list[tts_pb2.AudioChunk]:
        return [response.chunk async for response in stub.SynthesizeStream(request)]

    return await asyncio.wait_for(collect(), STEP_TIMEOUT_S)


async def test_text_in_pieces_of_one_to_seven_characters_is_heard_whole_and_sounds_the_same(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    pieces = pieces_of_one_to_seven(TEXT, seed=3)
    cuts = np.cumsum([len(p) for p in pieces])[:-1]
    # Words and numbers are split across messages ("12" and "3.50" included).
    assert any(TEXT[c - 1].isalpha() and TEXT[c].isalpha() for c in cuts)
    assert any(TEXT.index("12") < c < TEXT.index("12") + 2 for c in cuts) or \
        any(TEXT.index("$3.50") < c < TEXT.index("$3.50") + 5 for c in cuts)

    streamed = await _streamed(stub, pieces)
    whole = await _whole(stub, TEXT)

    spans = [(c.text_span.start_offset, c.text_span.end_offset, c.text_span.text)
             for c in streamed]
    assert spans == [(c.text_span.start_offset, c.text_span.end_offset, c.text_span.text)
                     for c in whole]
    assert len(spans) == 3
    samples = pcm16_to_float(b"".join(c.audio for c in streamed))
    assert word_error_rate(SPOKEN, transcribe(samples, 24000)) <= 0.2
    # Same pieces on the same model: the same audio as the whole text, sample for sample
    # (within a rounding step, in case the engines' arithmetic differs by a hair).
    reference = pcm16_to_float(b"".join(c.audio for c in whole))
    assert len(samples) == len(reference)
    assert np.max(np.abs(samples - reference)) <= 2 / 32768


async def test_bad_settings_in_the_first_message_name_the_field(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    # Nothing is written after the bad message, not even a half-close: a write racing the
    # server's refusal would fail on the client's side and hide the server's status.
    call = stub.StreamingSynthesize()
    await call.write(tts_pb2.StreamingSynthesizeRequest(
        config=tts_pb2.SynthesisConfig(speed=9)))
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await asyncio.wait_for(call.read(), STEP_TIMEOUT_S)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "speed 9.0 is outside [0.5, 2.0]" in (failed.value.details() or "")

