"""The fronts side by side: a gRPC caller's first audio while 4 other streams run, over gRPC or
over the OpenAI-compatible HTTP API of the same server; and the first audio of the same text
through gRPC, Wyoming and the WebSocket on an idle server."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai

from harness import websocket_client, wyoming_client
from harness.servers import free_port
from tts_api.v1 import tts_pb2, tts_pb2_grpc

from . import service, texts

_LOGGER = logging.getLogger("bench")
# The SDK's HTTP library logs every request at INFO: hundreds of lines in a bench run.
logging.getLogger("httpx2").setLevel(logging.WARNING)
BACKGROUND_STREAMS = 4
BACKGROUND_TEXT = texts.THREE_SENTENCES
PROBE_TEXT = texts.ONE_SENTENCE
# The background requests fill both engines and the waiting line before the probe is sent.
SETTLE_S = 2.0


async def _grpc_client(address: str, stop: asyncio.Event) -> None:
    async with service.channel(address) as chan:
        stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
        while not stop.is_set():
            await service.stream(stub, BACKGROUND_TEXT)


async def _http_client(base_url: str, stop: asyncio.Event) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0,
                                  timeout=service.CALL_TIMEOUT_S) as client:
        while not stop.is_set():
            async with client.audio.speech.with_streaming_response.create(
                    model="kokoro", voice=service.VOICE, input=BACKGROUND_TEXT,
                    response_format="pcm") as response:
                async for _ in response.iter_bytes():
                    pass


async def _probe_under(background: Callable[[asyncio.Event], Awaitable[None]] | None,
                       stub: tts_pb2_grpc.TextToSpeechServiceStub, probes: int
                       ) -> list[float]:
    """First-audio times of `probes` gRPC streams, each sent while `background` runs."""
    stop = asyncio.Event()
    clients = [asyncio.ensure_future(background(stop))
               for _ in range(BACKGROUND_STREAMS)] if background else []
    try:
        await asyncio.sleep(SETTLE_S if clients else 0)
        return [(await service.stream(stub, PROBE_TEXT)).first_s for _ in range(probes)]
    finally:
        # Each background client ends its current request, so the next mode starts quiet.
        stop.set()
        await asyncio.gather(*clients)


async def measure_protocols(reps: int, probes: int, onnxruntime: str) -> dict[str, Any]:
    engines, threads, solo = service.DEFAULT_SHAPE
    first: dict[str, list[float]] = {"idle": [], "grpc": [], "http": []}
    with service.running_server(engines, threads, onnxruntime, "--http-port", str(free_port()),
                                solo=solo) as server:
        base_url = f"{server.http_url}/v1"
        backgrounds: dict[str, Callable[[asyncio.Event], Awaitable[None]] | None] = {
            "idle": None,
            "grpc": lambda stop: _grpc_client(server.address, stop),
            "http": lambda stop: _http_client(base_url, stop),
        }
        async with service.channel(server.address) as chan:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
            for rep in range(reps):
                # Alternate the order so that drift in the machine's load favours neither.
                order = ["idle", "grpc", "http"] if rep % 2 == 0 else ["idle", "http", "grpc"]
                for mode in order:
                    _LOGGER.info("protocols rep %d/%d: probe with %s background", rep + 1,
                                 reps, mode)
                    first[mode] += await _probe_under(backgrounds[mode], stub, probes)
    return {"first_audio_s": first, "shape": service.shape_name(*service.DEFAULT_SHAPE),
            "background_streams": BACKGROUND_STREAMS, "background_text": BACKGROUND_TEXT,
            "probe_text": PROBE_TEXT, "reps": reps, "probes": probes}


# First audio of the same text through every front that streams, on an idle server: the
# fronts differ only in how the text arrives and the audio leaves.
FRONTS_TEXT = texts.THREE_SENTENCES
FRONTS = {
    "grpc": "gRPC SynthesizeStream",
    "grpc_live": "gRPC StreamingSynthesize (text in one message)",
    "wyoming": "Wyoming synthesize",
    "wyoming_live": "Wyoming streaming session (Home Assistant's order)",
    "websocket": "WebSocket /v1/tts/ws (text in one message)",
}
# Each front's call against the gRPC method of the same kind: whole text in, or text streamed in.
SAME_KIND = {"grpc": "grpc", "grpc_live": "grpc_live", "wyoming": "grpc",
             "wyoming_live": "grpc_live", "websocket": "grpc_live"}


async def _grpc_live_first_s(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str) -> float:
    async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        yield tts_pb2.StreamingSynthesizeRequest(
            config=tts_pb2.SynthesisConfig(voice=service.VOICE))
        yield tts_pb2.StreamingSynthesizeRequest(text=text)

    start = time.perf_counter()
    first = 0.0
    async for response in stub.StreamingSynthesize(requests(), timeout=service.CALL_TIMEOUT_S):
        if response.chunk.audio and not first:
            first = time.perf_counter() - start
    return first


async def measure_fronts(reps: int, onnxruntime: str) -> dict[str, Any]:
    """Time to first audio of FRONTS_TEXT through each front, interleaved; every call runs to
    its end before the next starts, on an open connection (Wyoming: a new one per request, as
    Home Assistant makes, timed once it is open)."""
    engines, threads, solo = service.DEFAULT_SHAPE
    first: dict[str, list[float]] = {mode: [] for mode in FRONTS}
    with service.running_server(engines, threads, onnxruntime, "--http-port", str(free_port()),
                                "--wyoming-port", str(free_port()), solo=solo) as server:
        assert server.wyoming_port is not None
        port = server.wyoming_port
        url = websocket_client.url_of(server.http_url)
        config = {"type": "config", "voice": service.VOICE}
        async with service.channel(server.address) as chan:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(chan)
            probes: dict[str, Callable[[], Awaitable[float | None]]] = {
                "grpc": lambda: _first(service.stream(stub, FRONTS_TEXT)),
                "grpc_live": lambda: _grpc_live_first_s(stub, FRONTS_TEXT),
                "wyoming": lambda: _reply_first(wyoming_client.synthesize(
                    port, FRONTS_TEXT, service.VOICE)),
                "wyoming_live": lambda: _reply_first(wyoming_client.stream(
                    port, [FRONTS_TEXT], voice=service.VOICE)),
                "websocket": lambda: _reply_first(websocket_client.speak(url, [
                    config, {"type": "text", "text": FRONTS_TEXT}, {"type": "end"}])),
            }
            await probes["grpc"]()  # one unmeasured call: connections and caches warm
            for rep in range(reps):
                # Rotate the order so that drift in the machine's load favours no front.
                modes = list(FRONTS)
                modes = modes[rep % len(modes):] + modes[:rep % len(modes)]
                for mode in modes:
                    _LOGGER.info("fronts rep %d/%d: %s", rep + 1, reps, mode)
                    first_s = await probes[mode]()
                    assert first_s, f"{mode}: no audio"
                    first[mode].append(first_s)
    return {"first_audio_s": first, "names": FRONTS, "same_kind": SAME_KIND,
            "text": FRONTS_TEXT, "reps": reps,
            "shape": service.shape_name(engines, threads, solo),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")}


async def _first(timing: Awaitable[service.StreamTiming]) -> float:
    return (await timing).first_s


async def _reply_first(reply: Awaitable[Any]) -> float | None:
    first_s: float | None = (await reply).first_audio_s
    return first_s
