"""The live-text WebSocket of the HTTP front (GET /v1/tts/ws): text in as it is written, audio
out as it is made, for browsers, which cannot open gRPC's bidirectional streams.

It is StreamingSynthesize over a WebSocket: one live call (speech_call), with the same
admission, limits, errors and bearer token. It only translates JSON messages into the call's
values and its chunks back into messages (docs/websocket.md has the protocol):

    client: {"type": "config", ...}, then {"type": "text", "text": ..., "flush": ...}..., then
            {"type": "end"}; with the config's "text_format": "ssml", the text up to each
            flush (or the end) is one SSML document, spoken once it is whole
    server: {"type": "ready", ...}; per chunk {"type": "audio", ...} and one binary frame with
            its bytes; {"type": "flushed"} per flush; {"type": "done", ...}, then close 1000.
            An error is {"type": "error", ...}, then close 4000 + the HTTP status (4400, 4401,
            4429, 4503, 4504, 4500).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from tts_service.calls.live_text import TextInput
from tts_service.calls.outcomes import Code, Outcome
from tts_service.calls.request import (
    AskedSettings,
    SynthesisSettings,
    pronunciations_from_json,
)
from tts_service.calls.speech_call import FLUSHED, CallFailed, Calls, Chunk, Dialect, SpeechCall
from tts_service.calls.ssml_request import TEXT_FORMATS, next_document
from tts_service.errors import CallerGone, IdleTimeout, InvalidRequest, Unauthenticated
from tts_service.fronts.http_routes import (
    FORMATS,
    OPENAI_VOICES,
    http_status,
    json_field,
    mark_json,
    word_json,
)
from tts_service.fronts.in_flight import InFlight
from tts_service.fronts.security import bearer_token_matches

PATH = "/v1/tts/ws"
PROTOCOL = "websocket"
# Named after the gRPC method of the same kind (text streamed in), for the log and metrics.
METHOD = "StreamingSynthesize"
DIALECT = Dialect(fields={"text": "text", "ssml": "text", "encoding": "response_format",
                          "sample_rate_hz": "sample_rate", "language_code": "language"},
                  list_voices="GET /v1/audio/voices")
_CLOSE_OK = 1000
_UNAUTHORIZED = ("missing or wrong bearer token: send it as the config message's token (a "
                 "browser cannot set headers on a WebSocket) or as the header "
                 "'Authorization: Bearer <token>'")


class LiveSpeech:
    """The WebSocket route, bound to the server's calls and token."""

    def __init__(self, calls: Calls, token: str | None) -> None:
        self._calls = calls
        self._token = token.encode() if token else None
        self.in_flight = InFlight()
        self.route = WebSocketRoute(PATH, self.serve)

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        socket = _Socket(websocket)
        call = self._calls.open(METHOD, PROTOCOL, websocket.headers.get("x-request-id"))
        try:
            async with call:
                with self.in_flight.call():
                    config = await self._config(socket)
                    self._authorize(websocket, config)
                    asked = _asked(config)
                    if _text_format(config) == "ssml":
                        await self._documents(call, socket, asked, config)
                    else:
                        await self._live(call, socket, asked, config)
                    await _done(socket, call)
        except CallFailed as failed:
            await socket.fail(failed.outcome)
            return
        await socket.close(_CLOSE_OK)

    @staticmethod
    async def _live(call: SpeechCall, socket: _Socket, asked: AskedSettings,
                    config: dict[str, Any]) -> None:
        """Plain text: spoken as it arrives, one live call."""
        settings = call.accept_settings(asked, dialect=DIALECT)
        async with call.live(settings, socket.texts()) as spoken:
            await _ready(socket, call, settings, config)
            async for item in spoken:
                if item is FLUSHED:
                    await socket.send({"type": "flushed"})
                else:
                    assert isinstance(item, Chunk)
                    await socket.send(_audio(item))
                    await socket.send_bytes(item.audio)

    async def _documents(self, call: SpeechCall, socket: _Socket, asked: AskedSettings,
                         config: dict[str, Any]) -> None:
        """The SSML way: the text up to each flush (or the end) is one <speak> document,
        spoken whole once it is complete (a document cannot be read before its end)."""
        await _ready(socket, call, call.accept_settings(asked, dialect=DIALECT), config)
        texts = socket.texts()
        while True:
            document, ended = await next_document(texts, self._calls.limits)
            if document.strip():
                spec = call.accept(document, asked, streaming=True, dialect=DIALECT, ssml=True)
                async with contextlib.aclosing(call.chunks(spec)) as chunks:
                    async for chunk in chunks:
                        await socket.send(_audio(chunk))
                        await socket.send_bytes(chunk.audio)
            if ended:
                return
            await socket.send({"type": "flushed"})

    async def _config(self, socket: _Socket) -> dict[str, Any]:
        idle_timeout_s = self._calls.limits.idle_timeout_s
        try:
            first = await asyncio.wait_for(socket.receive(), idle_timeout_s)
        except TimeoutError:
            raise IdleTimeout(f"no config message within {idle_timeout_s:g} s: send it as "
                              "soon as the WebSocket opens") from None
        if first["type"] != "config":
            raise InvalidRequest("type", "the first message must be the config ({\"type\": "
                                 "\"config\", ...}, its fields may be left out); send the "
                                 "text in later messages")
        return first

    def _authorize(self, websocket: WebSocket, config: dict[str, Any]) -> None:
        if self._token is None:
            return
        sent = config.get("token")
        if isinstance(sent, str) and hmac.compare_digest(sent.encode(), self._token):
            return
        if bearer_token_matches(websocket.headers.get("authorization"), self._token):
            return
        raise Unauthenticated(_UNAUTHORIZED)


class _Socket:
    """One WebSocket as messages: JSON objects with a type, and binary frames of audio."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def receive(self) -> dict[str, Any]:
        """The next message; raises InvalidRequest for one that is not a JSON object with a
        type, CallerGone once the client has closed."""
        try:
            received: Message = await self._websocket.receive()
        except WebSocketDisconnected:
            raise CallerGone("the client closed the WebSocket") from None
        if received["type"] == "websocket.disconnect":
            raise CallerGone("the client closed the WebSocket")
        text = received.get("text")
        if text is None:
            raise InvalidRequest("message", "binary messages are not read here: send JSON "
                                 "text messages (config, text, end)")
        try:
            message = json.loads(text)
        except ValueError as err:
            raise InvalidRequest("message", f"a message is not JSON ({err}): send JSON "
                                 "objects such as {\"type\": \"text\", \"text\": \"Hi.\"}"
                                 ) from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise InvalidRequest("type", "each message is a JSON object with a type: config, "
                                 "text or end")
        return message

    async def texts(self) -> AsyncIterator[TextInput]:
        """The messages after the config, as the live call's input, until `end`."""
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "end":
                return
            if kind == "text":
                yield TextInput(json_field(message, "text", str, ""),
                                json_field(message, "flush", bool, False))
            elif kind == "config":
                raise InvalidRequest("type", "config is allowed only in the first message; "
                                     "later messages are text and end")
            else:
                raise InvalidRequest("type", f"unknown message type {kind!r}: send text "
                                     "(with an optional flush) or end")

    async def send(self, message: dict[str, Any]) -> None:
        await self._sent(self._websocket.send_text(json.dumps(message)))

    async def send_bytes(self, data: bytes) -> None:
        await self._sent(self._websocket.send_bytes(data))

    async def close(self, code: int) -> None:
        with contextlib.suppress(CallerGone):
            await self._sent(self._websocket.close(code))

    async def fail(self, outcome: Outcome) -> None:
        """Tells the client how its call ended, then closes with 4000 + the HTTP status."""
        if outcome.code is Code.CANCELLED:
            return  # nobody to tell
        error: dict[str, Any] = {"type": "error", "code": outcome.code.name,
                                 "message": outcome.message, "param": outcome.field}
        if outcome.retry_after_s is not None:
            error["retry_after_s"] = outcome.retry_after_s
        try:
            await self.send(error)
        except CallerGone:
            return
        await self.close(4000 + http_status(outcome.code))

    @staticmethod
    async def _sent(sending: Any) -> None:
        try:
            await sending
        except (WebSocketDisconnect, WebSocketDisconnected, OSError):
            raise CallerGone("the client closed the WebSocket") from None


def _asked(config: dict[str, Any]) -> AskedSettings:
    """The config message's settings; names as in POST /v1/audio/speech where it has them."""
    voice = json_field(config, "voice", str, "")
    response_format = json_field(config, "response_format", str, "pcm")
    if response_format not in FORMATS:
        raise InvalidRequest("response_format", f"response_format {response_format!r} is not "
                             f"available: use one of {', '.join(FORMATS)}")
    return AskedSettings(
        voice=OPENAI_VOICES.get(voice, voice),
        speed=float(json_field(config, "speed", (int, float), 1.0)),
        encoding=FORMATS[response_format][0],
        sample_rate_hz=json_field(config, "sample_rate", int, 0),
        normalize=json_field(config, "normalize", bool, True),
        word_timings=json_field(config, "word_timings", bool, False),
        language=json_field(config, "language", str, ""),
        pronunciations=pronunciations_from_json(config.get("pronunciations")))


async def _ready(socket: _Socket, call: SpeechCall, settings: SynthesisSettings,
                 config: dict[str, Any]) -> None:
    await socket.send({"type": "ready", "request_id": call.request_id,
                       "voice": settings.voice.name,
                       "response_format": config.get("response_format", "pcm"),
                       "sample_rate": settings.sample_rate_hz,
                       "text_format": _text_format(config)})


async def _done(socket: _Socket, call: SpeechCall) -> None:
    record = call.record
    await socket.send({"type": "done", "audio_s": round(record.audio_s, 3),
                       "chunks": record.pieces_sent, "text_chars": record.text_chars})


def _text_format(config: dict[str, Any]) -> str:
    text_format = json_field(config, "text_format", str, "text")
    if text_format not in TEXT_FORMATS:
        raise InvalidRequest("text_format", f"text_format {text_format!r} is not known: use "
                             f"one of {', '.join(TEXT_FORMATS)}")
    return str(text_format)


def _audio(chunk: Chunk) -> dict[str, Any]:
    """The message before a chunk's binary frame: what it says and where it sits."""
    piece = chunk.piece
    return {"type": "audio", "sequence": chunk.sequence, "bytes": len(chunk.audio),
            "offset_s": round(chunk.offset_s, 3), "duration_s": round(chunk.duration_s, 3),
            "text": None if piece is None else {"start": piece.start, "end": piece.end,
                                                "text": piece.text},
            "words": [word_json(word) for word in chunk.words],
            "marks": [mark_json(mark) for mark in chunk.marks]}
