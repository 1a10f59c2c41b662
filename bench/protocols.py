"""gRPC and HTTP side by side: a gRPC caller's first audio while 4 other streams run, over
gRPC or over the OpenAI-compatible HTTP API of the same server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import openai

from harness.servers import free_port
from tts_api.v1 import tts_pb2_grpc

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
