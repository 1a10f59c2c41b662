"""The live-text WebSocket's protocol on a real port with a fake engine (a 0.1 s tone per
sentence), driven by the `websockets` library: messages and binary frames in order, flushes,
errors as a JSON message and a close code, token, full pool, idle and hang-ups, drain."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from harness.servers import free_port
from harness.websocket_client import speak, url_of
from tts_service.fronts.http_hosting import HttpFront

from .fakes import SAMPLE_RATE_HZ, TIMEOUT_S, FakeServer, fake_server, wait_until

TONE_BYTES = 2 * SAMPLE_RATE_HZ // 10  # the fake engine's 0.1 s per sentence, 16-bit PCM
TOKEN = "s3cret-token"
CONFIG: dict[str, Any] = {"type": "config", "voice": "af_bella"}
END = {"type": "end"}


def text(value: str, flush: bool = False) -> dict[str, Any]:
    return {"type": "text", "text": value, "flush": flush}


@pytest.fixture
async def served() -> AsyncIterator[FakeServer]:
    async with fake_server(http_port=free_port()) as server:
        yield server


def url(server: FakeServer) -> str:
    return url_of(server.http_url)


async def test_text_in_pieces_comes_back_as_audio_with_its_spans(served: FakeServer) -> None:
    reply = await speak(url(served), [CONFIG, text("One is "), text("here. Two is"),
                                      text(" here."), END])
    assert reply.types[0] == "ready" and reply.types[-1] == "done"
    assert set(reply.types[1:-1]) == {"audio"}
    assert reply.messages[0]["voice"] == "af_bella"
    assert reply.messages[0]["sample_rate"] == SAMPLE_RATE_HZ
    spans = [message["text"] for message, _ in reply.chunks]
    assert spans == [{"start": 0, "end": 12, "text": "One is here."},
                     {"start": 13, "end": 25, "text": "Two is here."}]
    assert [message["sequence"] for message, _ in reply.chunks] == [0, 1]
    assert [message["offset_s"] for message, _ in reply.chunks] == [0.0, 0.1]
    assert len(reply.audio) == 2 * TONE_BYTES
    assert reply.messages[-1] == {"type": "done", "audio_s": 0.2, "chunks": 2,
                                  "text_chars": 25}
    assert reply.close_code == 1000
    assert served.count("StreamingSynthesize", "OK", "websocket") == 1


async def test_a_flush_is_acknowledged_once_its_text_is_spoken(served: FakeServer) -> None:
    reply = await speak(url(served), [CONFIG, text("No full stop here", flush=True),
                                      text("And more."), END])
    assert reply.types == ["ready", "audio", "flushed", "audio", "done"]
    assert served.engine.calls == ["No full stop here", "And more."]


async def test_mp3_chunks_carry_the_encoders_tail_too(served: FakeServer) -> None:
    reply = await speak(url(served), [{**CONFIG, "response_format": "mp3"}, text("Hi."), END])
    assert reply.types[-1] == "done"
    assert reply.audio[:3] == b"ID3" or reply.audio[0] == 0xFF  # an MP3 stream
    assert reply.chunks[-1][0]["text"] is None  # the tail belongs to no text


@pytest.mark.parametrize(("messages", "code", "param", "words"), [
    ([{**CONFIG, "voice": "nobody"}], "INVALID_ARGUMENT", "voice", "unknown voice 'nobody'"),
    ([{**CONFIG, "speed": 9}], "INVALID_ARGUMENT", "speed", "outside [0.5, 2.0]"),
    ([{**CONFIG, "response_format": "ogg"}], "INVALID_ARGUMENT", "response_format",
     "use one of mp3"),
    ([{**CONFIG, "word_timings": "yes"}], "INVALID_ARGUMENT", "word_timings", "wrong type"),
    ([{**CONFIG, "word_timings": True}], "FAILED_PRECONDITION", "word_timings",
     "word timings need"),
    ([text("Hello.")], "INVALID_ARGUMENT", "type", "first message must be the config"),
    (["not json"], "INVALID_ARGUMENT", "message", "not JSON"),
    ([b"\x00\x01"], "INVALID_ARGUMENT", "message", "binary messages"),
    ([["a list"]], "INVALID_ARGUMENT", "type", "JSON object with a type"),
    ([CONFIG, {"type": "shout"}], "INVALID_ARGUMENT", "type", "unknown message type"),
    ([CONFIG, CONFIG], "INVALID_ARGUMENT", "type", "only in the first message"),
    ([CONFIG, text("\ud800 hi")], "INVALID_ARGUMENT", "text", "lone surrogate"),
])
async def test_a_bad_message_is_an_error_message_then_close_4400(
        served: FakeServer, messages: list[Any], code: str, param: str, words: str) -> None:
    reply = await speak(url(served), [m if not isinstance(m, list) else _raw_json(m)
                                      for m in messages])
    error = reply.error
    assert error is not None, reply.messages
    assert (error["code"], error["param"]) == (code, param)
    assert words in error["message"]
    assert reply.close_code == 4400
    assert served.count("StreamingSynthesize", code, "websocket") == 1
    assert served.engine.calls == []


def _raw_json(value: list[Any]) -> str:
    return json.dumps(value)


async def test_text_over_the_limit_ends_the_call_after_the_audio_before_it() -> None:
    async with fake_server(http_port=free_port(), max_text_chars=20) as served:
        reply = await speak(url(served), [CONFIG, text("Short one. "), text("x" * 30), END])
    assert reply.types[:2] == ["ready", "audio"]
    assert reply.error is not None and "at most 20" in reply.error["message"]
    assert reply.close_code == 4400


async def test_the_token_comes_in_the_config_or_the_header(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    async with fake_server(http_port=free_port(), token_file=token_file) as served:
        refused = await speak(url(served), [CONFIG, text("Hi."), END])
        wrong = await speak(url(served), [{**CONFIG, "token": "guess"}, text("Hi."), END])
        in_config = await speak(url(served), [{**CONFIG, "token": TOKEN}, text("Hi."), END])
        in_header = await speak(url(served), [CONFIG, text("Hi."), END],
                                headers={"Authorization": f"Bearer {TOKEN}"})
    for reply in (refused, wrong):
        assert reply.error is not None and reply.error["code"] == "UNAUTHENTICATED"
        assert "bearer token" in reply.error["message"]
        assert reply.close_code == 4401
    for reply in (in_config, in_header):
        assert reply.close_code == 1000 and len(reply.audio) == TONE_BYTES
    assert served.engine.calls == ["Hi.", "Hi."]


async def test_a_full_pool_refuses_with_4429_and_a_retry_hint() -> None:
    async with fake_server(http_port=free_port(), max_queued_requests=0) as served:
        served.engine.gate.clear()
        busy = asyncio.ensure_future(speak(url(served), [CONFIG, text("Hello."), END]))
        await wait_until(lambda: served.running.scheduler.busy == 1)
        refused = await speak(url(served), [CONFIG, text("Hello."), END])
        served.engine.gate.set()
        assert len((await busy).audio) == TONE_BYTES
    assert refused.error is not None and refused.error["code"] == "RESOURCE_EXHAUSTED"
    assert refused.error["retry_after_s"] > 0
    assert refused.close_code == 4429


async def test_a_silent_client_is_ended_by_the_idle_timeout() -> None:
    async with fake_server(http_port=free_port(), streaming_idle_timeout_s=0.3) as served:
        no_config = await speak(url(served), [])
        no_text = await speak(url(served), [CONFIG])
    for reply in (no_config, no_text):
        assert reply.error is not None and reply.error["code"] == "DEADLINE_EXCEEDED"
        assert reply.close_code == 4504


async def test_a_client_that_hangs_up_frees_its_engine(served: FakeServer) -> None:
    served.engine.permits = threading.Semaphore(1)
    many = " ".join(f"Sentence number {n} is here." for n in range(40))
    async with connect(url(served), proxy=None) as socket:
        await socket.send('{"type": "config"}')
        await socket.send(f'{{"type": "text", "text": "{many}"}}')
        await socket.send('{"type": "end"}')
        while not isinstance(await asyncio.wait_for(socket.recv(), TIMEOUT_S), bytes):
            pass
    served.engine.permits.release(1)
    await wait_until(lambda: served.count("StreamingSynthesize", "CANCELLED", "websocket") == 1)
    served.engine.permits.release(40)
    await wait_until(lambda: served.running.scheduler.busy == 0)
    assert len(served.engine.calls) <= 3


async def test_drain_lets_a_live_call_finish_and_refuses_new_ones() -> None:
    async with fake_server(http_port=free_port()) as served:
        served.engine.permits = threading.Semaphore(1)
        async with connect(url(served), proxy=None) as socket:
            await socket.send('{"type": "config"}')
            await socket.send('{"type": "text", "text": "One is here. Two"}')
            while not isinstance(await asyncio.wait_for(socket.recv(), TIMEOUT_S), bytes):
                pass
            http = served.running.front(HttpFront)
            assert http is not None and http.live_calls is not None
            live_calls = http.live_calls
            stopping = asyncio.ensure_future(served.running.stop(grace_s=10))
            await wait_until(lambda: live_calls.closing)
            with pytest.raises(OSError):  # the listener is closed: no new calls
                await speak(url(served), [CONFIG])
            await socket.send('{"type": "text", "text": " is here."}')
            await socket.send('{"type": "end"}')
            served.engine.permits.release(5)
            received = [await asyncio.wait_for(socket.recv(), TIMEOUT_S) for _ in range(3)]
            await asyncio.wait_for(stopping, TIMEOUT_S)
    assert '"done"' in str(received[-1])
    assert served.count("StreamingSynthesize", "OK", "websocket") == 1
