"""The fast tier's server: the real grpc.aio server on port 0, in-process, with a fake engine.

The fake engine (a tone per sentence, with a gate to hold it busy) makes the timing of
engine work controllable; everything else — server, scheduler, servicer, statuses — is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import grpc
import numpy as np
import openai

from tts_api.v1 import tts_pb2_grpc
from tts_service.config import ServerConfig
from tts_service.fronts.grpc_servicer import RuntimeDescription
from tts_service.language.front_end import FrontEnds, Utterance
from tts_service.model.mixes import STYLE_WIDTH, StyleTables
from tts_service.model.voices import VoiceCatalog
from tts_service.server import RunningServer, start
from tts_service.synthesis.engine import EngineFailure, OnSentence, Sentence

SAMPLE_RATE_HZ = 24000
TIMEOUT_S = 30
# The model's phoneme symbols as the fake server knows them (the real ones come from
# tokens.txt): enough for a request's phonemes such as "ʤˈɪf"; "ʘ" is not among them.
SYMBOLS = frozenset(" .,ˈˌːəɪɛæʌʊɑɔɜɹʤʧŋθðʃʒAIOWYabdefhijklmnoprstuvwzɡ")


class FakeEngine:
    """Makes a 0.1 s tone per call; waits on `gate` first so tests can keep it busy.

    It replaces only the model: the real front ends make the tokens it is given.
    """

    sample_rate_hz = SAMPLE_RATE_HZ
    times_words = False
    mixes_voices = True

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.permits: threading.Semaphore | None = None  # when set, one per sentence
        self.calls: list[str] = []  # each utterance's text, as the front end made it
        self.phonemes: list[str] = []
        self.speeds: list[float] = []
        self.voices: list[tuple[int, np.ndarray | None]] = []  # speaker id, style table

    def speak(self, utterance: Utterance, speaker_id: int, speed: float,
              on_sentence: OnSentence, timed: bool, style: np.ndarray | None = None) -> None:
        text = utterance.text
        if text == "Ready.":  # the server's warm-up
            return
        self.gate.wait(TIMEOUT_S)
        if self.permits is not None:
            self.permits.acquire(timeout=TIMEOUT_S)
        self.calls.append(text)
        self.phonemes.append(utterance.phonemes)
        self.speeds.append(speed)
        self.voices.append((speaker_id, style))
        if "explode" in text:
            raise EngineFailure("native failure in the engine")
        tone = 0.3 * np.sin(np.arange(SAMPLE_RATE_HZ // 10, dtype=np.float32) * 0.1)
        on_sentence(Sentence(tone.astype(np.float32), (), last=True))


@dataclass
class FakeServer:
    engine: FakeEngine
    running: RunningServer
    channel: grpc.aio.Channel
    stub: tts_pb2_grpc.TextToSpeechServiceStub
    config: ServerConfig

    def count(self, method: str, code: str, protocol: str = "grpc") -> float:
        """tts_requests_total for this method and status, 0 when never seen."""
        value = self.running.metrics.registry.get_sample_value(
            "tts_requests_total", {"protocol": protocol, "method": method, "code": code})
        return value or 0.0

    @property
    def http_url(self) -> str:
        """The OpenAI-compatible API's base URL (start it with http_port=free_port())."""
        if self.config.tls_cert is not None:  # the test certificate names localhost
            return f"https://localhost:{self.running.http_port}/v1"
        return f"http://127.0.0.1:{self.running.http_port}/v1"


def style_tables(voices: int) -> np.ndarray:
    """The fake server's style tables, one per voice: a few rows, since the fake engine only
    records the (mixed) table it is given."""
    return np.random.default_rng(0).standard_normal((voices, 4, STYLE_WIDTH)).astype(
        np.float32)


@contextlib.asynccontextmanager
async def fake_server(voices: tuple[str, ...] = ("af_bella", "am_adam"),
                      rebuild_fails: bool = False, engine: FakeEngine | None = None,
                      **settings: Any) -> AsyncIterator[FakeServer]:
    """The fast tier's one server: a real server on port 0 with one fake engine (`engine`, or
    a new one) and one waiting place, unless `settings` (ServerConfig fields) say otherwise.

    An engine that fails is "rebuilt" as the same fake, healthy again, unless `rebuild_fails`.
    """
    engine = engine if engine is not None else FakeEngine()

    def rebuild(threads: int) -> FakeEngine:
        if rebuild_fails:
            raise RuntimeError("the model files are gone")
        return engine

    # The audio cache is off unless asked: these tests count and hold the engine's work.
    config = replace(ServerConfig(), **{"port": 0, "engines": 1, "max_queued_requests": 1,
                                        "audio_cache_mb": 0, **settings})
    runtime = RuntimeDescription("fake", "bundled", "0", 1, 1, 1)
    catalog = VoiceCatalog.from_names(list(voices),
                                      styles=StyleTables(style_tables(len(voices))))
    running = await start(config, [engine], catalog, runtime,
                          FrontEnds(symbols=SYMBOLS), load_engine=rebuild)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield FakeServer(engine, running, channel,
                             tts_pb2_grpc.TextToSpeechServiceStub(channel), config)
    finally:
        engine.gate.set()
        await running.stop(grace_s=1)


def openai_client(served: FakeServer) -> openai.AsyncOpenAI:
    """The OpenAI SDK on the fake server's HTTP front, without retries."""
    return openai.AsyncOpenAI(base_url=served.http_url, api_key="unused", timeout=TIMEOUT_S,
                              max_retries=0)


async def wait_until(condition: Callable[[], object], timeout_s: float = TIMEOUT_S) -> None:
    """Returns once `condition()` holds; fails the test after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)
