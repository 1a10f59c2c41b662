"""The OpenAI-compatible HTTP front's routes: speech, voices, models and the playground page.

It only translates: declared JSON bodies (http_bodies) into the call layer's values
(speech_call) and outcomes into HTTP statuses and OpenAI's error bodies. Every call is
recorded in the same request log and metrics as on gRPC, with protocol "http". uvicorn serves
the app on its port (http_hosting).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Send

from tts_service.audio import captions
from tts_service.audio import encoding as audio
from tts_service.calls.outcomes import Code, Outcome
from tts_service.calls.request import AskedSettings, SynthesisSpec
from tts_service.calls.speech_call import (
    Calls,
    Chunk,
    Dialect,
    SpeechCall,
    TimedMark,
    TimedWord,
    log_value,
)
from tts_service.errors import CallerGone, InvalidRequest, Unauthenticated
from tts_service.fronts.http_bodies import (
    MODELS,
    RESPONSE_FORMATS,
    CaptionedSpeechRequest,
    CaptionedSpeechResponse,
    MarkTimestamp,
    Operation,
    SpeechFields,
    SpeechRequest,
    VoiceObject,
    WordTimestamp,
    asked_pronunciations,
    openapi,
    parse,
)
from tts_service.fronts.security import bearer_token_matches

_LOGGER = logging.getLogger(__name__)

# OpenAI's voice names, each read by the Kokoro voice closest in accent and gender.
OPENAI_VOICES = {
    "alloy": "af_alloy", "ash": "am_adam", "ballad": "bm_george", "coral": "af_heart",
    "echo": "am_echo", "fable": "bm_fable", "onyx": "am_onyx", "nova": "af_nova",
    "sage": "af_sarah", "shimmer": "af_bella", "verse": "am_michael", "marin": "af_kore",
    "cedar": "am_liam",
}
# response_format -> (encoding, media type).
FORMATS = {
    "mp3": (audio.AudioEncoding.MP3, "audio/mpeg"),
    "opus": (audio.AudioEncoding.OGG_OPUS, "audio/ogg"),
    "aac": (audio.AudioEncoding.AAC, "audio/aac"),
    "flac": (audio.AudioEncoding.FLAC, "audio/flac"),
    "wav": (audio.AudioEncoding.WAV, "audio/wav"),
    "pcm": (audio.AudioEncoding.PCM16, "audio/pcm"),  # 16-bit little-endian, 24 kHz, mono
}
assert tuple(FORMATS) == RESPONSE_FORMATS, "http_bodies.ResponseFormat lists the same names"
# Outcome -> (HTTP status, OpenAI's error type). A caller that went away gets no answer; 499
# (nginx's "client closed request") is what an access log would show for it.
_HTTP_STATUS = {
    Code.OK: (200, ""),
    Code.CANCELLED: (499, "invalid_request_error"),
    Code.INVALID_ARGUMENT: (400, "invalid_request_error"),
    Code.FAILED_PRECONDITION: (400, "invalid_request_error"),
    Code.UNAUTHENTICATED: (401, "invalid_request_error"),
    Code.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    Code.DEADLINE_EXCEEDED: (504, "server_error"),
    Code.UNAVAILABLE: (503, "server_error"),
    Code.INTERNAL: (500, "server_error"),
}
# OpenAI's names for the request's fields.
DIALECT = Dialect(fields={"text": "input", "ssml": "input", "encoding": "response_format"},
                  list_voices="GET /v1/audio/voices")
_UNAUTHORIZED = ("missing or wrong bearer token: send the header 'Authorization: Bearer "
                 "<token>' (the OpenAI SDKs send their api_key that way)")


@dataclass(frozen=True)
class _Speech:
    spec: SynthesisSpec
    media_type: str
    sse: bool
    stream: bool  # False: one complete file (Kokoro-FastAPI's "stream": false)


def http_status(code: Code) -> int:
    """The HTTP status of an outcome."""
    return _HTTP_STATUS[code][0]


def word_json(word: TimedWord) -> dict[str, Any]:
    """A spoken word as the SSE stream and the WebSocket send it: its place in the text (code
    points) and its start and end in the call's audio (seconds)."""
    return {"word": word.text, "start": word.start, "end": word.end,
            "start_s": round(word.start_s, 3), "end_s": round(word.end_s, 3)}


def mark_json(mark: TimedMark) -> dict[str, Any]:
    """An SSML mark as the SSE stream and the WebSocket send it: its name, its place in the
    input (code points) and when the audio reaches it (seconds)."""
    return {"name": mark.name, "offset": mark.at, "time_s": round(mark.time_s, 3)}


def error_response(outcome: Outcome, request_id: str) -> JSONResponse:
    """OpenAI's error body: {"error": {"message", "type", "param", "code"}}."""
    status, kind = _HTTP_STATUS[outcome.code]
    headers = {"x-request-id": request_id}
    if outcome.retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(outcome.retry_after_s)))
    code = "invalid_api_key" if outcome.code is Code.UNAUTHENTICATED else None
    return JSONResponse(
        {"error": {"message": outcome.message, "type": kind, "param": outcome.field,
                   "code": code}},
        status_code=status, headers=headers)


async def _http_exception(request: Request, error: Exception) -> Response:
    """Unknown paths and methods, in OpenAI's error shape too (clients parse every error)."""
    assert isinstance(error, HTTPException)
    message = f"{request.method} {request.url.path}: {error.detail}; the API is " \
        "POST /v1/audio/speech, POST /dev/captioned_speech, GET /v1/audio/voices and " \
        "GET /v1/models (GET /openapi.json describes it)"
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                   "param": None, "code": None}},
                        status_code=error.status_code, headers=error.headers)


class _ClosingStream(StreamingResponse):
    """Closes its body as soon as sending stops, so a client that hangs up frees its engine
    after the current sentence rather than whenever the generator is garbage-collected."""

    body_iterator: AsyncGenerator[bytes, None]

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            await self.body_iterator.aclose()


def _accept(call: SpeechCall, asked: SpeechFields, *, word_timings: bool, streaming: bool
            ) -> SynthesisSpec:
    """The call layer's checks of a declared body: its values, named as the body names them."""
    if asked.instructions.strip():
        # Kokoro-82M has no way to take a free-form direction; saying so beats speaking in a
        # manner the caller did not ask for while seeming to have followed it.
        raise InvalidRequest("instructions", "instructions cannot be followed: Kokoro-82M "
                             "speaks as its voice does; leave instructions out and choose a "
                             "voice (GET /v1/audio/voices), a speed (0.5 to 2.0) or a "
                             "language instead")
    voice = asked.voice.id if isinstance(asked.voice, VoiceObject) else asked.voice
    # An extension: the language to read in (BCP-47, default the voice's), as `language` or
    # as Kokoro-FastAPI's `lang_code` (which also takes Kokoro's letters, e.g. "f").
    language_field = "lang_code" if asked.lang_code else "language"
    settings = AskedSettings(voice=OPENAI_VOICES.get(voice, voice), speed=asked.speed,
                             encoding=FORMATS[asked.response_format][0],
                             word_timings=word_timings,
                             language=getattr(asked, language_field),
                             pronunciations=asked_pronunciations(asked.pronunciations))
    dialect = replace(DIALECT, fields={**DIALECT.fields, "language_code": language_field})
    return call.accept(asked.input, settings, streaming=streaming, dialect=dialect,
                       ssml=asked.input_format == "ssml")


class HttpApi:
    """The routes, bound to the server's calls and token."""

    def __init__(self, calls: Calls, token: str | None, routes: Sequence[BaseRoute] = ()
                 ) -> None:
        self._calls = calls
        self._token = token.encode() if token else None
        audio_types: dict[str, type[BaseModel] | None] = dict.fromkeys(
            [*(media for _, media in FORMATS.values()), "text/event-stream"])
        # Each route once: served by Starlette and listed in the OpenAPI document.
        operations = [
            (Operation("GET", "/", "The playground page", answers={"text/html": None}),
             self.playground),
            (Operation("GET", "/openapi.json", "This API's OpenAPI document",
                       answers={"application/json": None}), self.openapi),
            (Operation("GET", "/v1/models", "The accepted model names",
                       answers={"application/json": None}), self.models),
            (Operation("GET", "/v1/audio/voices", "The voices, the default and OpenAI's names",
                       answers={"application/json": None},
                       query={"language": "only the voices that speak this BCP-47 code"}),
             self.voices),
            (Operation("POST", "/v1/audio/speech", "OpenAI's CreateSpeech: the text as audio",
                       body=SpeechRequest, answers=audio_types), self.speech),
            (Operation("POST", "/dev/captioned_speech",
                       "The text as one audio file with its words' times (Kokoro-FastAPI's "
                       "shape), or as SRT or WebVTT captions",
                       body=CaptionedSpeechRequest,
                       answers={"application/json": CaptionedSpeechResponse,
                                **{media: None for media in captions.MEDIA_TYPES.values()}}),
             self.captioned_speech),
        ]
        self.openapi_document = openapi([operation for operation, _ in operations])
        self.app = Starlette(routes=[
            *(Route(op.path, handler, methods=[op.method]) for op, handler in operations),
            *routes,  # the live-text WebSocket (websocket.py), composed by the server
        ], exception_handlers={HTTPException: _http_exception})

    @property
    def max_message_bytes(self) -> int:
        """The largest request body or WebSocket message read."""
        return self._calls.limits.max_request_bytes

    async def playground(self, request: Request) -> HTMLResponse:
        page = resources.files("tts_service.fronts").joinpath("static/playground.html")
        return HTMLResponse(page.read_text(encoding="utf-8"))

    async def openapi(self, request: Request) -> JSONResponse:
        return JSONResponse(self.openapi_document)

    async def models(self, request: Request) -> Response:
        return await self._answer(request, "ListModels", lambda: {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "kokoro-82m"}
                     for name in MODELS],
        })

    async def voices(self, request: Request) -> Response:
        language = request.query_params.get("language", "")
        catalog = self._calls.catalog
        return await self._answer(request, "ListVoices", lambda: {
            "voices": [{"id": voice.name, "name": voice.name, "language": voice.language_code,
                        "gender": voice.gender.value, "blend": voice.blend}
                       for voice in catalog.list(language)],
            "default": catalog.default,
            "openai_voices": {name: kokoro for name, kokoro in OPENAI_VOICES.items()
                              if catalog.get(kokoro) is not None},
        })

    def _open(self, request: Request, method: str) -> SpeechCall:
        return self._calls.open(method, "http", request.headers.get("x-request-id"))

    async def _answer(self, request: Request, method: str, body: Callable[[], Any]
                      ) -> Response:
        call = self._open(request, method)
        try:
            self._authorize(request)
            response = JSONResponse(body(), headers={"x-request-id": call.request_id})
        except Exception as error:  # every failure gets an OpenAI-shaped error
            return error_response(call.end(error), call.request_id)
        call.end()
        return response

    async def speech(self, request: Request) -> Response:
        call = self._open(request, "CreateSpeech")
        try:
            self._authorize(request)
            speech = self._parse(await self._json(request), call)
            if not speech.stream:
                whole = await call.whole(speech.spec)
                call.end()
                return Response(whole.audio, media_type=speech.media_type,
                                headers={"x-request-id": call.request_id})
            chunks = call.chunks(speech.spec)
            try:
                # Waiting for the first audio here turns a full pool into a 429, not a cut
                # stream: the status line cannot change once the body has started.
                first = await anext(chunks)
            except BaseException:
                await chunks.aclose()
                raise
        except Exception as error:  # every failure gets an OpenAI-shaped error
            return error_response(call.end(error), call.request_id)
        return _ClosingStream(self._body(call, speech, chunks, first),
                              media_type=speech.media_type,
                              headers={"x-request-id": call.request_id})

    async def captioned_speech(self, request: Request) -> Response:
        call = self._open(request, "CreateCaptionedSpeech")
        try:
            self._authorize(request)
            asked = parse(CaptionedSpeechRequest, await self._json(request))
            spec = _accept(call, asked, word_timings=True, streaming=False)
            whole = await call.whole(spec)
        except Exception as error:  # every failure gets an OpenAI-shaped error
            return error_response(call.end(error), call.request_id)
        call.end()
        headers = {"x-request-id": call.request_id}
        if asked.caption_format in captions.WRITERS:
            cues = captions.cues(spec.text, [captions.Word(word.start, word.end, word.start_s,
                                                           word.end_s) for word in whole.words])
            return Response(captions.WRITERS[asked.caption_format](cues),
                            media_type=captions.MEDIA_TYPES[asked.caption_format],
                            headers=headers)
        return JSONResponse(CaptionedSpeechResponse(
            audio=base64.b64encode(whole.audio).decode("ascii"),
            audio_format=asked.response_format, sample_rate=whole.sample_rate_hz,
            duration=round(whole.duration_s, 3),
            timestamps=[WordTimestamp(word=word.text, start_time=round(word.start_s, 3),
                                      end_time=round(word.end_s, 3), text_start=word.start,
                                      text_end=word.end) for word in whole.words],
            marks=[MarkTimestamp(name=mark.name, time=round(mark.time_s, 3),
                                 text_offset=mark.at) for mark in whole.marks],
        ).model_dump(), headers=headers)

    def _authorize(self, request: Request) -> None:
        if self._token is not None and not bearer_token_matches(
                request.headers.get("authorization"), self._token):
            raise Unauthenticated(_UNAUTHORIZED)

    async def _json(self, request: Request) -> object:
        limits = self._calls.limits
        body = bytearray()
        try:
            async for part in request.stream():
                body += part
                # The body is JSON around the text; this bounds what is read before parsing.
                if len(body) > limits.max_request_bytes:
                    raise InvalidRequest("body", f"request body over "
                                         f"{limits.max_request_bytes} bytes: send at most "
                                         f"{limits.max_text_chars} characters of input")
        except ClientDisconnect:
            raise CallerGone("the client disconnected while sending its request") from None
        try:
            # The standard parser, not pydantic's: a JSON string may hold a lone surrogate,
            # which the call layer refuses naming the field (pydantic's refuses the body).
            return json.loads(body)
        except ValueError as err:
            raise InvalidRequest("body", f"the body is not JSON ({err}): send a JSON object "
                                 "with model, input and voice") from None

    def _parse(self, body: object, call: SpeechCall) -> _Speech:
        """OpenAI's CreateSpeech fields to a validated spec; raises InvalidRequest."""
        asked = parse(SpeechRequest, body)
        sse = asked.stream_format == "sse"
        if sse and not asked.stream:
            raise InvalidRequest("stream", "stream_format 'sse' is a stream: leave stream out "
                                 "(or true), or ask for stream_format 'audio'")
        if asked.word_timings and not sse:
            raise InvalidRequest("word_timings", "word timings come as events of the SSE "
                                 "stream: ask for stream_format 'sse' (or use the WebSocket "
                                 "/v1/tts/ws)")
        spec = _accept(call, asked, word_timings=asked.word_timings, streaming=asked.stream)
        media_type = "text/event-stream" if sse else FORMATS[asked.response_format][1]
        return _Speech(spec, media_type, sse, asked.stream)

    async def _body(self, call: SpeechCall, speech: _Speech,
                    chunks: AsyncGenerator[Chunk, None], first: Chunk) -> AsyncIterator[bytes]:
        spec = speech.spec
        frame = _sse_delta if speech.sse else bytes
        try:
            async with contextlib.aclosing(chunks):
                chunk: Chunk | None = first
                while chunk is not None:
                    if chunk.words and speech.sse:
                        yield _sse_event({"type": "speech.audio.words",
                                          "words": [word_json(word) for word in chunk.words]})
                    if chunk.marks and speech.sse:
                        yield _sse_event({"type": "speech.audio.marks",
                                          "marks": [mark_json(mark) for mark in chunk.marks]})
                    if chunk.audio:
                        yield frame(chunk.audio)
                    chunk = await anext(chunks, None)
            if speech.sse:
                yield _sse_event({"type": "speech.audio.done", "usage": {
                    "input_tokens": len(spec.text), "output_tokens": 0,
                    "total_tokens": len(spec.text)}})
        except BaseException as error:
            outcome = call.end(error)
            if outcome.code is not Code.CANCELLED:
                # The status line has gone: breaking the connection is the only way left to
                # tell the client the audio is incomplete (a clean end would pass it off as
                # whole).
                _LOGGER.error("request_id=%s failed after its audio started: %s",
                              log_value(call.request_id), log_value(outcome.message))
            raise
        call.end()


def json_field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any
               ) -> Any:
    """A field of a JSON object, `default` when absent or null; InvalidRequest when it has
    another type (a boolean is no number, as in JSON)."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidRequest(name, f"{name} has the wrong type ({type(value).__name__})")
    return value


def _sse_event(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def _sse_delta(data: bytes) -> bytes:
    return _sse_event({"type": "speech.audio.delta",
                       "audio": base64.b64encode(data).decode("ascii")})
