"""The audio cache: bounded in bytes, keyed by what changes the samples, counted; a phrase said
again skips the engine, and the queue too when every piece of it is remembered."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tts_api.v1 import tts_pb2
from tts_service.audio.word_timing import SpokenWord
from tts_service.language.front_end import FrontEnds
from tts_service.language.languages import ENGLISH
from tts_service.language.sentences import split_pieces
from tts_service.synthesis.audio_cache import AudioCache, AudioKey
from tts_service.synthesis.engine import Sentence
from tts_service.synthesis.scheduler import Scheduler
from tts_service.synthesis.synthesizer import SpokenPiece, Synthesizer, Voicing

from .fakes import TIMEOUT_S, fake_server, wait_until
from .test_timed_synthesis import FakeTimedEngine


def _sentence(samples: int, words: tuple[SpokenWord, ...] = ()) -> Sentence:
    return Sentence(np.ones(samples, np.float32), words, last=True)


def _key(phonemes: str, speaker_id: int = 0, speed: float = 1.0) -> AudioKey:
    return AudioKey(phonemes, speaker_id, speed, "model")


def test_the_least_recently_used_entries_make_room_within_the_byte_bound() -> None:
    cache = AudioCache(max_bytes=3 * 400)  # three entries of 100 float32 samples
    for name in "abc":
        cache.put(_key(name), [_sentence(100)], timed=False)
    assert cache.get(_key("a"), timed=False) is not None  # a is now the most recent
    cache.put(_key("d"), [_sentence(100)], timed=False)
    assert cache.get(_key("b"), timed=False) is None
    assert all(cache.get(_key(name), timed=False) for name in "acd")
    assert cache.bytes == 1200 and len(cache) == 3
    cache.put(_key("huge"), [_sentence(1000)], timed=False)  # larger than the whole cache
    assert cache.get(_key("huge"), timed=False) is None and cache.bytes == 1200


def test_every_part_of_the_key_tells_entries_apart_and_hits_are_counted() -> None:
    counts = {"hits": 0, "misses": 0}
    cache = AudioCache(1 << 20, on_hit=lambda: counts.__setitem__("hits", counts["hits"] + 1),
                       on_miss=lambda: counts.__setitem__("misses", counts["misses"] + 1))
    cache.put(_key("hə"), [_sentence(10)], timed=False)
    assert cache.get(_key("hə"), timed=False) is not None
    for other in (_key("hi"), _key("hə", speaker_id=1), _key("hə", speed=1.5),
                  AudioKey("hə", 0, 1.0, "another model")):
        assert cache.get(other, timed=False) is None
    assert counts == {"hits": 1, "misses": 4}


def test_an_untimed_entry_does_not_answer_a_timed_request_and_samples_are_frozen() -> None:
    cache = AudioCache(1 << 20)
    cache.put(_key("a"), [_sentence(10)], timed=False)
    assert cache.get(_key("a"), timed=True) is None
    cache.put(_key("a"), [_sentence(10, (SpokenWord(0, 10, 1),))], timed=True)
    found = cache.get(_key("a"), timed=True)
    assert found is not None and found[0].words
    with pytest.raises(ValueError):
        found[0].samples[0] = 0.0  # shared by every later hit: nobody may change it


def test_a_cache_of_zero_bytes_is_off() -> None:
    cache = AudioCache(0)
    cache.put(_key("a"), [_sentence(10)], timed=False)
    assert not cache.enabled and cache.get(_key("a"), timed=False) is None and not len(cache)


async def test_a_remembered_text_comes_back_the_same_with_its_word_timings() -> None:
    engine = FakeTimedEngine()
    calls = 0
    speak = engine.speak

    def counted(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        speak(*args, **kwargs)  # type: ignore[arg-type]

    engine.speak = counted  # type: ignore[method-assign]
    scheduler = Scheduler([engine], max_waiting=4, read_ahead_s=100.0)
    synthesizer = Synthesizer(scheduler, AudioCache(1 << 20), model="fake", times_words=True)
    text = "Turned on the kitchen lights. Sorry, I did not understand."
    voicing = Voicing(0, 1.0, FrontEnds()[ENGLISH], normalize=True, timed=True)

    async def say() -> list[SpokenPiece]:
        return [spoken async for spoken in synthesizer.stream(split_pieces(text), voicing)
                if isinstance(spoken, SpokenPiece)]

    first = await asyncio.wait_for(say(), TIMEOUT_S)
    again = await asyncio.wait_for(say(), TIMEOUT_S)
    await scheduler.close()
    assert calls == 2  # two pieces made once; the second call made nothing
    assert [chunk.words for chunk in again] == [chunk.words for chunk in first]
    assert [text[w.start:w.end] for chunk in again for w in chunk.words][:3] == \
        ["Turned", "on", "the"]
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(first, again, strict=True))


async def test_a_remembered_phrase_skips_a_busy_engine_and_a_full_queue() -> None:
    async with fake_server(audio_cache_mb=1) as served:
        request = tts_pb2.SynthesizeRequest(text="Turned on the kitchen lights.")
        await served.stub.Synthesize(request, timeout=TIMEOUT_S)
        assert served.engine.calls == ["Turned on the kitchen lights."]
        served.engine.gate.clear()  # the only engine is held busy by another text ...
        busy = asyncio.ensure_future(served.stub.Synthesize(
            tts_pb2.SynthesizeRequest(text="Something else."), timeout=TIMEOUT_S))
        await wait_until(lambda: served.running.scheduler.busy == 1)
        queued = asyncio.ensure_future(served.stub.Synthesize(
            tts_pb2.SynthesizeRequest(text="A third text."), timeout=TIMEOUT_S))
        await wait_until(lambda: served.running.scheduler.waiting == 1)  # ... the queue full
        again = await served.stub.Synthesize(request, timeout=TIMEOUT_S)
        assert again.audio and not busy.done()
        registry = served.running.metrics.registry
        assert registry.get_sample_value("tts_audio_cache_hits_total") == 1
        assert (registry.get_sample_value("tts_audio_cache_bytes") or 0) > 0
        served.engine.gate.set()
        await busy
        await queued
        # Another speed is other samples: made anew.
        slower = tts_pb2.SynthesizeRequest(text="Turned on the kitchen lights.",
                                           config=tts_pb2.SynthesisConfig(speed=0.8))
        await served.stub.Synthesize(slower, timeout=TIMEOUT_S)
        assert served.engine.calls.count("Turned on the kitchen lights.") == 2
