"""A client of the live-text WebSocket (/v1/tts/ws) for tests and the bench, built on the
`websockets` library (not the server's own WebSocket stack): sends the messages, with pauses
as a writer would, while it reads everything the server answers until it closes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TIMEOUT_S = 120.0


@dataclass
class LiveReply:
    """Everything the server sent, in order, and when (seconds since the socket opened)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)
    first_audio_s: float | None = None
    last_sent_s: float | None = None  # when the client sent its last message
    close_code: int | None = None

    @property
    def audio(self) -> bytes:
        return b"".join(data for _, data in self.chunks)

    @property
    def types(self) -> list[str]:
        return [message["type"] for message in self.messages]

    @property
    def error(self) -> dict[str, Any] | None:
        return next((m for m in self.messages if m["type"] == "error"), None)


def url_of(http_base: str) -> str:
    """The WebSocket's URL on a server whose HTTP API is at `http_base` (http://host:port)."""
    return http_base.replace("http", "ws", 1).removesuffix("/v1") + "/v1/tts/ws"


async def speak(url: str, messages: Sequence[Mapping[str, Any] | bytes | str],
                pause_s: float = 0.0, headers: Mapping[str, str] | None = None,
                timeout_s: float = TIMEOUT_S) -> LiveReply:
    """Sends `messages` (dicts as JSON text, bytes as binary, str as raw text), `pause_s`
    apart, and returns what came back once the server closed the socket."""
    reply = LiveReply()
    async with asyncio.timeout(timeout_s), connect(
            url, additional_headers=dict(headers or {}), proxy=None,
            max_size=None) as socket:
        opened = time.monotonic()
        writer = asyncio.ensure_future(_write(socket, messages, pause_s, reply, opened))
        try:
            await _read(socket, reply, opened)
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
    return reply


async def _write(socket: ClientConnection, messages: Sequence[Mapping[str, Any] | bytes | str],
                 pause_s: float, reply: LiveReply, opened: float) -> None:
    for index, message in enumerate(messages):
        if index and pause_s:
            await asyncio.sleep(pause_s)
        data = json.dumps(dict(message)) if isinstance(message, Mapping) else message
        try:
            await socket.send(data)
        except ConnectionClosed:
            return  # the server ended the call (an error): the reader has its answer
        reply.last_sent_s = time.monotonic() - opened


async def _read(socket: ClientConnection, reply: LiveReply, opened: float) -> None:
    pending: dict[str, Any] | None = None  # an audio message waiting for its binary frame
    try:
        async for received in socket:
            if isinstance(received, bytes):
                assert pending is not None, "a binary frame without an audio message"
                assert len(received) == pending["bytes"], pending
                reply.chunks.append((pending, received))
                if received and reply.first_audio_s is None:
                    reply.first_audio_s = time.monotonic() - opened
                pending = None
                continue
            assert pending is None, f"no binary frame after {pending}"
            message = json.loads(received)
            reply.messages.append(message)
            if message["type"] == "audio":
                pending = message
    except ConnectionClosed:
        pass
    reply.close_code = socket.close_code
