"""Text written while it is spoken: StreamingSynthesize fed like an LLM, beside SynthesizeStream.

Each repetition speaks the same sentences five ways on one server, one after the other: the
first sentence alone, the last sentence alone and the whole text through SynthesizeStream
(the references), then the whole text through StreamingSynthesize, sent TOKEN_CHARS
characters every TOKEN_INTERVAL_S seconds (an LLM's pace), and again every
SLOW_TOKEN_INTERVAL_S (slower than speech is made, so the engine keeps up with the text).
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.language.sentences import split_pieces

from . import service

# About what an LLM streams: 4 characters (one token) every 30 ms.
TOKEN_CHARS = 4
TOKEN_INTERVAL_S = 0.03
# 10 characters a second: a slow writer, or a person typing.
SLOW_TOKEN_INTERVAL_S = 0.4
# A writer that slow takes longer than the default max wait over one sentence, so the server
# would speak it in fragments; with this, the slow run's sentences stay whole and the bound
# (text finished + last sentence's synthesis) compares like with like. The LLM-paced run
# writes its whole text well within either.
MAX_WAIT_S = 10.0


@dataclass(frozen=True)
class LiveTiming:
    """Seconds from the start of the call."""

    first_end_sent_s: float  # the token holding the first sentence's last character
    first_audio_s: float
    text_done_s: float  # the last token was sent and the request stream half-closed
    last_audio_s: float


async def live(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str,
               interval_s: float = TOKEN_INTERVAL_S) -> LiveTiming:
    # Timed from the token that ends the sentence, although the server can only be sure of
    # the end with the next character: any wait for it counts against the stream.
    last_char = split_pieces(text)[0].end - 1
    start = time.perf_counter()
    sent: dict[str, float] = {}

    async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        yield tts_pb2.StreamingSynthesizeRequest(
            config=tts_pb2.SynthesisConfig(voice=service.VOICE))
        for at in range(0, len(text), TOKEN_CHARS):
            if at <= last_char < at + TOKEN_CHARS:
                sent["first_end"] = time.perf_counter() - start
            yield tts_pb2.StreamingSynthesizeRequest(text=text[at:at + TOKEN_CHARS])
            await asyncio.sleep(interval_s)
        sent["done"] = time.perf_counter() - start

    first = last = 0.0
    call = stub.StreamingSynthesize(requests(), timeout=service.CALL_TIMEOUT_S)
    async for response in call:
        if response.chunk.audio:
            last = time.perf_counter() - start
            first = first or last
    return LiveTiming(sent.get("first_end", sent["done"]), first, sent["done"], last)


async def measure(plan: Any, onnxruntime: str, text: str) -> dict[str, Any]:
    """Both targets' numbers per repetition, on a server of the default pool: what a voice
    agent gets from `make serve` (the scheduler makes its sentences on every idle engine)."""
    engines, threads, solo = service.DEFAULT_SHAPE
    pieces = split_pieces(text)
    first_sentence, last_sentence = pieces[0].text, pieces[-1].text
    rows: dict[str, list[float]] = {
        "reference_first_audio": [], "live_first_audio_after_its_token": [],
        "reference_last_sentence": [], "reference_whole_text": [], "live_text_done": [],
        "live_last_audio": [], "slow_text_done": [], "slow_last_audio": []}
    with service.running_server(engines, threads, onnxruntime,
                                "--streaming-max-wait", str(MAX_WAIT_S),
                                solo=solo) as server:
        async with service.channel(server.address) as chan:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
            for _ in range(plan.reps):
                reference_first = await service.stream(stub, first_sentence)
                reference_last = await service.stream(stub, last_sentence)
                reference_whole = await service.stream(stub, text)
                timing = await live(stub, text)
                rows["reference_first_audio"].append(reference_first.first_s)
                rows["reference_last_sentence"].append(reference_last.total_s)
                rows["reference_whole_text"].append(reference_whole.total_s)
                rows["live_first_audio_after_its_token"].append(
                    timing.first_audio_s - timing.first_end_sent_s)
                rows["live_text_done"].append(timing.text_done_s)
                rows["live_last_audio"].append(timing.last_audio_s)
                slow = await live(stub, text, SLOW_TOKEN_INTERVAL_S)
                rows["slow_text_done"].append(slow.text_done_s)
                rows["slow_last_audio"].append(slow.last_audio_s)
    return {"text": text, "token_chars": TOKEN_CHARS, "token_interval_s": TOKEN_INTERVAL_S,
            "slow_token_interval_s": SLOW_TOKEN_INTERVAL_S, "max_wait_s": MAX_WAIT_S,
            "shape": service.shape_name(engines, threads, solo),
            "measured_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            **rows}
