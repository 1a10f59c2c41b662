"""Whole files and word timings on the OpenAI-compatible HTTP front, on a real port with a fake
engine: what the official SDK sends, `"stream": false` giving files whose headers carry their
real length, and the option checks."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import soundfile

from harness.servers import free_port

from .fakes import SAMPLE_RATE_HZ, TIMEOUT_S, FakeServer, fake_server

TEXT = "One is here. Two is here."
SAMPLES = 2 * SAMPLE_RATE_HZ // 10  # the fake engine's 0.1 s per sentence


@pytest.fixture
async def served() -> AsyncIterator[FakeServer]:
    async with fake_server(http_port=free_port()) as server:
        yield server


def _client(server: FakeServer, **http: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.http_url, api_key="unused", timeout=TIMEOUT_S,
                              max_retries=0, http_client=openai.DefaultAsyncHttpxClient(**http))


async def test_the_sdk_sends_no_stream_field_whether_or_not_it_streams(
        served: FakeServer) -> None:
    bodies: list[dict[str, Any]] = []

    async def record(request: Any) -> None:
        bodies.append(json.loads(request.content))

    async with _client(served, event_hooks={"request": [record]}) as client:
        await client.audio.speech.create(model="tts-1", voice="af_bella", input=TEXT)
        async with client.audio.speech.with_streaming_response.create(
                model="tts-1", voice="af_bella", input=TEXT) as response:
            await response.read()
    # The server cannot tell a buffered create() from a streaming one: it streams by default.
    assert bodies[0] == bodies[1] == {"model": "tts-1", "voice": "af_bella", "input": TEXT}


@pytest.mark.parametrize("response_format", ["wav", "flac"])
async def test_stream_false_gives_a_file_the_sdk_saves_and_soundfile_opens(
        served: FakeServer, tmp_path: Path, response_format: str) -> None:
    saved = tmp_path / f"speech.{response_format}"
    async with _client(served) as client:
        whole = await client.audio.speech.create(
            model="tts-1", voice="af_bella", input=TEXT, response_format=response_format,  # type: ignore[arg-type]
            extra_body={"stream": False})
        whole.write_to_file(saved)
        streamed = await client.audio.speech.create(
            model="tts-1", voice="af_bella", input=TEXT, response_format=response_format)  # type: ignore[arg-type]
    samples, rate = soundfile.read(saved, dtype="int16")
    assert rate == SAMPLE_RATE_HZ and len(samples) == SAMPLES
    assert soundfile.info(saved).frames == SAMPLES  # the header says how long it is
    # Streamed, the header cannot know the length yet: the reason for "stream": false.
    if response_format == "wav":
        assert streamed.content[40:44] == b"\xff\xff\xff\xff"
    else:
        assert soundfile.info(io.BytesIO(streamed.content)).frames != SAMPLES
    assert served.count("CreateSpeech", "OK", "http") == 2


@pytest.mark.parametrize(("fields", "param", "words"), [
    ({"stream": "no"}, "stream", "wrong type"),
    ({"stream": False, "stream_format": "sse"}, "stream", "is a stream"),
    ({"word_timings": True}, "word_timings", "stream_format 'sse'"),
    ({"word_timings": 1, "stream_format": "sse"}, "word_timings", "wrong type"),
])
async def test_options_that_do_not_fit_are_bad_requests(
        served: FakeServer, fields: dict[str, Any], param: str, words: str) -> None:
    async with _client(served) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.speech.create(model="tts-1", voice="af_bella", input=TEXT,
                                             extra_body=fields)
    assert refused.value.param == param  # type: ignore[attr-defined]
    assert words in refused.value.message
    assert served.engine.calls == []


async def test_word_timings_on_engines_that_cannot_time_words_are_refused(
        served: FakeServer) -> None:
    async with _client(served) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.speech.create(
                model="tts-1", voice="af_bella", input=TEXT, stream_format="sse",
                extra_body={"word_timings": True})
    assert "word timings need" in refused.value.message
    assert served.count("CreateSpeech", "FAILED_PRECONDITION", "http") == 1


async def test_instructions_are_refused_naming_what_can_be_set_instead(
        served: FakeServer) -> None:
    async with _client(served) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.speech.create(model="gpt-4o-mini-tts", voice="af_bella",
                                             input=TEXT, instructions="Speak cheerfully.")
        assert refused.value.param == "instructions"  # type: ignore[attr-defined]
        assert all(name in refused.value.message for name in ("voice", "speed", "language"))
        assert served.engine.calls == []
        # Empty instructions ask for nothing: the audio comes.
        spoken = await client.audio.speech.create(model="gpt-4o-mini-tts", voice="af_bella",
                                                  input=TEXT, instructions="",
                                                  response_format="pcm")
    assert len(spoken.content) == 2 * SAMPLES
    assert served.count("CreateSpeech", "INVALID_ARGUMENT", "http") == 1
