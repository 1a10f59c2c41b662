"""The OpenAI-compatible HTTP front: speech, voices, models and the playground page.

It translates HTTP requests into the same domain values the gRPC servicer uses (build_spec,
Synthesizer.stream, audio.StreamRenderer, VoiceCatalog) and records every call in the same
request log and metrics, with protocol "http".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from . import audio
from .calls import CallObserver, CallRecord
from .errors import InvalidRequest, ServiceError
from .request import Limits, SynthesisSpec, build_spec
from .security import bearer_token_matches
from .status import to_status
from .synthesizer import SpokenPiece, Synthesizer
from .voices import VoiceCatalog

_LOGGER = logging.getLogger(__name__)

# Names OpenAI clients send; all of them are served by the one Kokoro model.
MODELS = ("kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
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
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}
_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
                429: "rate_limit_error", 503: "server_error"}
_UNAUTHORIZED = ("missing or wrong bearer token: send the header 'Authorization: Bearer "
                 "<token>' (the OpenAI SDKs send their api_key that way)")


class _Refused(Exception):
    """A request the HTTP layer itself refuses (wrong token, unreadable body)."""

    def __init__(self, code: grpc.StatusCode, message: str, error_code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.error_code = error_code
        self.param = param


@dataclass(frozen=True)
class _Speech:
    spec: SynthesisSpec
    media_type: str
    sse: bool


def _error_response(error: Exception, code: grpc.StatusCode, request_id: str) -> JSONResponse:
    """OpenAI's error body: {"error": {"message", "type", "param", "code"}}."""
    status = _HTTP_STATUS.get(code, 500)
    message = str(error) if isinstance(error, ServiceError | _Refused) else (
        "internal error while synthesizing; the server log has the details")
    param = error.field if isinstance(error, InvalidRequest) else getattr(error, "param", None)
    headers = {"x-request-id": request_id}
    retry_after_s = getattr(error, "retry_after_s", None)
    if retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after_s)))
    return JSONResponse(
        {"error": {"message": message, "type": _ERROR_TYPES.get(status, "server_error"),
                   "param": param, "code": getattr(error, "error_code", None)}},
        status_code=status, headers=headers)


async def _http_exception(request: Request, error: Exception) -> Response:
    """Unknown paths and methods, in OpenAI's error shape too (clients parse every error)."""
    assert isinstance(error, HTTPException)
    message = f"{request.method} {request.url.path}: {error.detail}; the API is " \
        "POST /v1/audio/speech, GET /v1/audio/voices and GET /v1/models"
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


class HttpApi:
    """The routes, bound to the server's synthesizer, voices, limits, observer and token."""

    def __init__(self, synthesizer: Synthesizer, catalog: VoiceCatalog, limits: Limits,
                 observer: CallObserver, token: str | None) -> None:
        self._synthesizer = synthesizer
        self._catalog = catalog
        self._limits = limits
        self._observer = observer
        self._token = token.encode() if token else None
        self.app = Starlette(routes=[
            Route("/", self.playground, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/audio/voices", self.voices, methods=["GET"]),
            Route("/v1/audio/speech", self.speech, methods=["POST"]),
        ], exception_handlers={HTTPException: _http_exception})

    async def playground(self, request: Request) -> HTMLResponse:
        page = resources.files("tts_service").joinpath("static/playground.html")
        return HTMLResponse(page.read_text(encoding="utf-8"))

    async def models(self, request: Request) -> Response:
        return await self._answer(request, "ListModels", lambda: {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "kokoro-82m"}
                     for name in MODELS],
        })

    async def voices(self, request: Request) -> Response:
        language = request.query_params.get("language", "")
        return await self._answer(request, "ListVoices", lambda: {
            "voices": [{"id": voice.name, "name": voice.name, "language": voice.language_code,
                        "gender": voice.gender.value, "blend": voice.blend}
                       for voice in self._catalog.list(language)],
            "default": self._catalog.default,
            "openai_voices": {name: kokoro for name, kokoro in OPENAI_VOICES.items()
                              if self._catalog.get(kokoro) is not None},
        })

    async def _answer(self, request: Request, method: str, body: Any) -> Response:
        record = self._observer.begin(method, request.headers.get("x-request-id"), "http")
        try:
            self._authorize(request)
            response: Response = JSONResponse(body(),
                                              headers={"x-request-id": record.request_id})
            code = grpc.StatusCode.OK
        except Exception as error:  # every failure gets an OpenAI-shaped error
            code, response = self._failed(record, error)
        self._observer.finish(record, code)
        return response

    async def speech(self, request: Request) -> Response:
        record = self._observer.begin("CreateSpeech", request.headers.get("x-request-id"),
                                      "http")
        try:
            self._authorize(request)
            speech = self._parse(await self._json(request), record)
            pieces = self._synthesizer.stream(speech.spec.pieces, speech.spec.voice.speaker_id,
                                              speech.spec.speed, speech.spec.normalize,
                                              language=speech.spec.language)
            try:
                # Waiting for the first audio here turns a full pool into a 429, not a cut
                # stream: the status line cannot change once the body has started.
                first = await anext(pieces)
            except BaseException:
                await pieces.aclose()
                raise
        except Exception as error:  # every failure gets an OpenAI-shaped error
            code, response = self._failed(record, error)
            self._observer.finish(record, code)
            return response
        return _ClosingStream(self._body(record, speech, pieces, first),
                              media_type=speech.media_type,
                              headers={"x-request-id": record.request_id})

    def _failed(self, record: CallRecord, error: Exception) -> tuple[grpc.StatusCode, Response]:
        code = error.code if isinstance(error, _Refused) else to_status(error)[0]
        if not isinstance(error, ServiceError | _Refused):
            _LOGGER.exception("request_id=%s failed unexpectedly", record.request_id)
        return code, _error_response(error, code, record.request_id)

    def _authorize(self, request: Request) -> None:
        if self._token is not None and not bearer_token_matches(
                request.headers.get("authorization"), self._token):
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED, _UNAUTHORIZED, "invalid_api_key")

    async def _json(self, request: Request) -> dict[str, Any]:
        body = bytearray()
        async for part in request.stream():
            body += part
            # The body is JSON around the text; this bounds what is read before parsing.
            if len(body) > self._limits.max_request_bytes:
                raise _Refused(grpc.StatusCode.INVALID_ARGUMENT,
                               f"request body over {self._limits.max_request_bytes} bytes: "
                               "send at most "
                               f"{self._limits.max_text_chars} characters of input")
        try:
            parsed = json.loads(body)
        except ValueError as err:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT,
                           f"the body is not JSON ({err}): send a JSON object with model, "
                           "input and voice") from None
        if not isinstance(parsed, dict):
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT,
                           "the body must be a JSON object with model, input and voice")
        return parsed

    def _parse(self, body: dict[str, Any], record: CallRecord) -> _Speech:
        """OpenAI's CreateSpeech fields to a SynthesisSpec; raises InvalidRequest."""
        model = body.get("model")
        if model not in MODELS:
            raise InvalidRequest("model", f"unknown model {model!r}: use one of "
                                 f"{', '.join(MODELS)} (all are Kokoro-82M here)")
        text = _field(body, "input", str, "")
        voice = body.get("voice", "")
        if isinstance(voice, dict):  # OpenAI's custom voice object: {"id": "..."}
            voice = voice.get("id", "")
        if not isinstance(voice, str):
            raise InvalidRequest("voice", "voice must be a voice name, e.g. 'af_bella'")
        voice = OPENAI_VOICES.get(voice, voice)
        record.text_chars = len(text)
        record.voice = voice
        response_format = _field(body, "response_format", str, "mp3")
        if response_format not in FORMATS:
            raise InvalidRequest("response_format",
                                 f"response_format {response_format!r} is not available: "
                                 f"use one of {', '.join(FORMATS)}")
        stream_format = _field(body, "stream_format", str, "audio")
        if stream_format not in ("audio", "sse"):
            raise InvalidRequest("stream_format",
                                 f"stream_format {stream_format!r}: use 'audio' or 'sse'")
        speed = _field(body, "speed", (int, float), 1.0)
        # An extension: the language to read in (BCP-47, default the voice's), as `language`
        # or as Kokoro-FastAPI's `lang_code` (which also takes Kokoro's letters, e.g. "f").
        language_field = "lang_code" if "lang_code" in body else "language"
        language = _field(body, language_field, str, "")
        encoding, media_type = FORMATS[response_format]
        try:
            spec = build_spec(
                text=text, voice=voice, speed=float(speed), encoding=encoding,
                sample_rate_hz=0, volume_gain_db=0.0, normalize=True, streaming=True,
                catalog=self._catalog, limits=self._limits,
                model_rate_hz=self._synthesizer.sample_rate_hz, language=language)
        except InvalidRequest as err:
            # Name the field as OpenAI's request calls it.
            field = {"text": "input", "language_code": language_field}.get(err.field, err.field)
            message = str(err).replace("ListVoices (or `tts-grpc-client --list-voices`)",
                                       "GET /v1/audio/voices")
            raise InvalidRequest(field, message) from None
        record.accepted(spec)
        sse = stream_format == "sse"
        return _Speech(spec, "text/event-stream" if sse else media_type, sse)

    async def _body(self, record: CallRecord, speech: _Speech,
                    pieces: AsyncGenerator[SpokenPiece, None], first: SpokenPiece
                    ) -> AsyncIterator[bytes]:
        spec = speech.spec
        model_rate = self._synthesizer.sample_rate_hz
        renderer = audio.StreamRenderer(model_rate, spec.sample_rate_hz, spec.volume_gain_db,
                                        spec.encoding)
        frame = _sse_delta if speech.sse else bytes
        code = grpc.StatusCode.CANCELLED
        try:
            async with contextlib.aclosing(pieces):
                spoken: SpokenPiece | None = first
                while spoken is not None:
                    data = await asyncio.to_thread(renderer.render, spoken.samples)
                    record.chunk_sent(len(spoken.samples) / model_rate)
                    if data:
                        yield frame(data)
                    spoken = await anext(pieces, None)
            tail = await asyncio.to_thread(renderer.finish)
            if tail:
                yield frame(tail)
            if speech.sse:
                yield _sse_event({"type": "speech.audio.done", "usage": {
                    "input_tokens": len(spec.text), "output_tokens": 0,
                    "total_tokens": len(spec.text)}})
            code = grpc.StatusCode.OK
        except Exception as error:
            # The status line has gone: breaking the connection is the only way left to tell
            # the client the audio is incomplete (a clean end would pass it off as whole).
            code = to_status(error)[0]
            _LOGGER.error("request_id=%s failed after its audio started: %s",
                          record.request_id, error)
            raise
        finally:
            self._observer.finish(record, code)


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidRequest(name, f"{name} has the wrong type ({type(value).__name__})")
    return value


def _sse_event(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def _sse_delta(data: bytes) -> bytes:
    return _sse_event({"type": "speech.audio.delta",
                       "audio": base64.b64encode(data).decode("ascii")})


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the gRPC server's event loop: the gRPC side owns SIGTERM and SIGINT and
    drains both (uvicorn 0.54 would otherwise replace their handlers while it runs)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HttpServer:
    """The running HTTP front; `stop` lets requests in flight finish for up to the grace."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    async def stop(self, grace_s: float) -> None:
        self.server.config.timeout_graceful_shutdown = math.ceil(grace_s)
        self.server.should_exit = True
        await self.task


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so that a taken port fails at start-up (OSError)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve_http(api: HttpApi, sock: socket.socket, tls_cert: Path | None,
                     tls_key: Path | None, tls_client_ca: Path | None) -> HttpServer:
    """Starts uvicorn on `sock` as a task of the running loop."""
    config = uvicorn.Config(
        api.app, log_config=None, access_log=False, lifespan="off",
        ssl_certfile=tls_cert, ssl_keyfile=tls_key,
        ssl_ca_certs=str(tls_client_ca) if tls_client_ca else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if tls_client_ca else ssl.CERT_NONE)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http-front")
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # raises why it could not start
    return HttpServer(server=server, task=task, port=sock.getsockname()[1])
