"""The HTTP front's declared bodies: the OpenAPI document it serves lists every route with its
fields, and a body of the wrong shape is a 400 naming the field (a fake engine behind)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import httpx2
import openai
import pytest
from starlette.routing import Route

from harness.servers import free_port
from tts_service.calls.request import Limits
from tts_service.calls.speech_call import Calls
from tts_service.fronts.http_routes import HttpApi

from .fakes import TIMEOUT_S, FakeServer, fake_server

COMMON_FIELDS = {"model", "input", "voice", "response_format", "speed", "language",
                 "lang_code", "instructions", "pronunciations", "input_format"}
SPEECH_FIELDS = COMMON_FIELDS | {"stream_format", "stream", "word_timings"}


@pytest.fixture
async def served() -> AsyncIterator[FakeServer]:
    async with fake_server(http_port=free_port()) as server:
        yield server


def _schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    name = body["schema"]["$ref"].removeprefix("#/components/schemas/")
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


async def test_the_openapi_document_lists_every_route_with_its_fields(
        served: FakeServer) -> None:
    root = served.http_url.removesuffix("/v1")
    async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
        answer = await http.get(f"{root}/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.1")
    # No request is served through this one: the calls need only their limits.
    api = HttpApi(cast(Calls, SimpleNamespace(limits=Limits(max_text_chars=10))), None)
    served_routes = {(method.lower(), route.path) for route in api.app.routes
                     if isinstance(route, Route) for method in route.methods or ()
                     if method != "HEAD"}
    listed = {(method, path) for path, methods in document["paths"].items()
              for method in methods}
    assert listed == served_routes
    speech = _schema(document, "/v1/audio/speech")
    assert set(speech["properties"]) == SPEECH_FIELDS
    assert set(speech["required"]) == {"model", "input"}
    assert speech["properties"]["response_format"]["enum"] == [
        "mp3", "opus", "aac", "flac", "wav", "pcm"]
    assert speech["properties"]["stream"]["type"] == "boolean"
    assert "'af_bella(2)+af_sky(1)'" in speech["properties"]["voice"]["description"]
    captioned = _schema(document, "/dev/captioned_speech")
    assert set(captioned["properties"]) == COMMON_FIELDS | {"caption_format"}
    answers = document["paths"]["/dev/captioned_speech"]["post"]["responses"]["200"]["content"]
    assert set(answers) == {"application/json", "application/x-subrip", "text/vtt"}
    timed = document["components"]["schemas"]["CaptionedSpeechResponse"]
    assert set(timed["properties"]) == {"audio", "audio_format", "sample_rate", "duration",
                                        "timestamps", "marks"}
    assert set(document["components"]["schemas"]["WordTimestamp"]["properties"]) == {
        "word", "start_time", "end_time", "text_start", "text_end"}
    error = document["paths"]["/v1/audio/speech"]["post"]["responses"]["default"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


@pytest.mark.parametrize(("fields", "param", "words"), [
    ({"speed": "fast"}, "speed", "speed has the wrong type (str)"),
    ({"speed": True}, "speed", "speed has the wrong type (bool)"),
    ({"input": 42}, "input", "input has the wrong type (int)"),
    ({"voice": 7}, "voice", "voice must be a voice name"),
    ({"language": ["en"]}, "language", "language has the wrong type (list)"),
    ({"stream_format": "ws"}, "stream_format", "use 'audio' or 'sse'"),
    ({"model": None}, "model", "unknown model None"),
])
async def test_bodies_of_the_wrong_shape_name_the_field(
        served: FakeServer, fields: dict[str, Any], param: str, words: str) -> None:
    body: dict[str, Any] = {"model": "tts-1", "voice": "af_bella", "input": "Hi.", **fields}
    async with openai.AsyncOpenAI(base_url=served.http_url, api_key="unused",
                                  timeout=TIMEOUT_S, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.post("/audio/speech", cast_to=object, body=body)
    assert refused.value.param == param  # type: ignore[attr-defined]
    assert words in refused.value.message
    assert served.engine.calls == []
    assert served.count("CreateSpeech", "INVALID_ARGUMENT", "http") == 1


async def test_a_voice_object_and_null_fields_are_accepted(served: FakeServer) -> None:
    async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
        response = await http.post(f"{served.http_url}/audio/speech", json={
            "model": "tts-1", "voice": {"id": "af_bella"}, "input": "Hi.",
            "response_format": "pcm", "speed": None, "stream": None})
    assert response.status_code == 200, response.text
    assert len(response.content) == 2 * 2400  # the fake engine's 0.1 s tone


@pytest.mark.parametrize(("fields", "status", "param", "words"), [
    ({"caption_format": "ass"}, 400, "caption_format", "use one of json, srt, vtt"),
    ({}, 400, "word_timings", "word timings need"),  # the fake engine cannot time words
])
async def test_captioned_speech_refusals(served: FakeServer, fields: dict[str, Any],
                                         status: int, param: str, words: str) -> None:
    async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
        answer = await http.post(
            f"{served.http_url.removesuffix('/v1')}/dev/captioned_speech",
            json={"model": "kokoro", "voice": "af_bella", "input": "Hi.", **fields})
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"]
    assert served.engine.calls == []
