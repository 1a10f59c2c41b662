"""A failed engine is rebuilt as a twin of a working engine of its threads (no second copy of
the model), and loaded anew only when none works: the real server in-process, fake engines."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest

from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.config import ServerConfig
from tts_service.fronts.grpc_servicer import RuntimeDescription
from tts_service.language.front_end import Utterance
from tts_service.model.preparation import twin_in_rotation
from tts_service.model.voices import VoiceCatalog
from tts_service.server import start
from tts_service.synthesis import engine as engine_module
from tts_service.synthesis.engine import Engine, EngineFailure, KokoroEngine, Sentence

from .fakes import TIMEOUT_S, FakeEngine, wait_until


class TwinnableFake(FakeEngine):
    """A fake engine that, like KokoroEngine, has threads and makes twins."""

    def __init__(self, threads: int, twins: list[tuple[TwinnableFake, TwinnableFake]]) -> None:
        super().__init__()
        self.threads = threads
        self._twins = twins

    def twin(self) -> Engine:
        twin = TwinnableFake(self.threads, self._twins)
        self._twins.append((self, twin))
        return twin


@pytest.mark.parametrize("engines", [1, 2])
async def test_a_failed_engine_is_a_twin_of_a_working_one_else_loaded_anew(engines: int) -> None:
    twins: list[tuple[TwinnableFake, TwinnableFake]] = []
    pool = [TwinnableFake(1, twins) for _ in range(engines)]
    loaded: list[int] = []

    def load_engine(position: int) -> Engine:
        loaded.append(position)
        return TwinnableFake(1, twins)

    config = replace(ServerConfig(), port=0, engines=engines, audio_cache_mb=0)
    runtime = RuntimeDescription("fake", "bundled", "0", engines, 1, 1)
    running = await start(config, pool, VoiceCatalog.from_names(["af_bella"]), runtime,
                          load_engine=load_engine)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Please explode now."),
                                      timeout=TIMEOUT_S)
            assert failed.value.code() is grpc.StatusCode.INTERNAL
            await wait_until(lambda: running.scheduler.in_rotation == engines)
            response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Fine."),
                                              timeout=TIMEOUT_S)
            assert response.audio_duration_seconds > 0
    finally:
        await running.stop(grace_s=1)
    (broken,) = [engine for engine in pool if engine not in running.scheduler.engines]
    if engines == 1:  # no working engine of its threads: a new load
        assert (loaded, twins) == ([0], [])
    else:  # a twin of the other, working engine, in the failed one's place
        ((parent, twin),) = twins
        assert loaded == [] and parent is not broken and twin in running.scheduler.engines


def test_only_an_engine_of_the_same_threads_gives_a_twin() -> None:
    twins: list[tuple[TwinnableFake, TwinnableFake]] = []
    failed, other_threads = TwinnableFake(2, twins), TwinnableFake(1, twins)
    assert twin_in_rotation(failed, [other_threads]) is None
    assert twin_in_rotation(FakeEngine(), [other_threads]) is None  # cannot say its threads
    assert twin_in_rotation(failed, [FakeEngine(), TwinnableFake(2, twins)]) is not None


@pytest.mark.parametrize("marker", ["soakfault", ""])
def test_the_fault_hook_fails_a_real_engine_only_on_its_marker(
        marker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The hook is checked before the model runs: an engine with none loaded shows it, and
    # empty phonemes make no run when the text passes.
    monkeypatch.setattr(engine_module, "_FAULT_MARKER", marker)
    kokoro = object.__new__(KokoroEngine)
    sentences: list[Sentence] = []

    def heard(sentence: Sentence) -> bool:
        sentences.append(sentence)
        return True

    def speak(text: str) -> None:
        kokoro.speak(Utterance(text, ""), 0, 1.0, heard, False)

    speak("a plain sentence")
    if marker:
        with pytest.raises(EngineFailure, match=engine_module.FAULT_HOOK_VARIABLE):
            speak(f"please {marker} now")
    else:
        speak("please soakfault now")  # unset: no text fails
    assert sentences == []
