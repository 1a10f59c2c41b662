"""A Wyoming client for tests and the bench, on the wyoming library's own AsyncTcpClient: a
one-shot `synthesize`, and a streaming session in Home Assistant's event order (start, the
text in chunks as an LLM writes it, the full text again, stop), written while the audio is
read, as Home Assistant does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

TIMEOUT_S = 120.0


@dataclass
class WyomingReply:
    """What the server sent for one request, and when (seconds since it was sent)."""

    types: list[str] = field(default_factory=list)
    audio: bytes = b""
    start: AudioStart | None = None
    errors: list[Error] = field(default_factory=list)
    first_audio_s: float | None = None
    last_text_s: float | None = None  # when the last synthesize-chunk went out

    def audio_s(self) -> float:
        assert self.start is not None, "no audio-start"
        return len(self.audio) / (self.start.rate * self.start.width * self.start.channels)


async def synthesize(port: int, text: str, voice: str | None = None,
                     host: str = "127.0.0.1") -> WyomingReply:
    """One `synthesize`, read up to its `audio-stop`."""
    async with _client(host, port) as client:
        started = time.monotonic()
        await client.write_event(Synthesize(text=text, voice=_voice(voice)).event())
        return await read_reply(client, "audio-stop", WyomingReply(), started)


async def stream(port: int, parts: Sequence[str], pause_s: float = 0.0,
                 voice: str | None = None, host: str = "127.0.0.1") -> WyomingReply:
    """A streaming session as Home Assistant sends one, `pause_s` between text chunks, read
    up to its `synthesize-stopped` while the text is still being written."""
    reply = WyomingReply()
    async with _client(host, port) as client:
        started = time.monotonic()

        async def write() -> None:
            await client.write_event(SynthesizeStart(voice=_voice(voice)).event())
            for index, part in enumerate(parts):
                if index and pause_s:
                    await asyncio.sleep(pause_s)
                await client.write_event(SynthesizeChunk(text=part).event())
            reply.last_text_s = time.monotonic() - started
            await client.write_event(Synthesize(text="".join(parts),
                                                voice=_voice(voice)).event())
            await client.write_event(SynthesizeStop().event())

        writer = asyncio.ensure_future(write())
        try:
            await read_reply(client, "synthesize-stopped", reply, started)
            await writer
        finally:
            writer.cancel()
    return reply


def _client(host: str, port: int) -> AsyncTcpClient:
    return AsyncTcpClient(host, port, connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S)


def _voice(name: str | None) -> SynthesizeVoice | None:
    return SynthesizeVoice(name=name) if name else None


async def read_reply(client: AsyncTcpClient, last: str, reply: WyomingReply | None = None,
                     started: float | None = None) -> WyomingReply:
    """Reads one request's answer, up to and including its event of type `last`."""
    reply = reply if reply is not None else WyomingReply()
    started = started if started is not None else time.monotonic()
    while True:
        event = await client.read_event()
        assert event is not None, f"the connection closed after {reply.types}"
        reply.types.append(event.type)
        if AudioStart.is_type(event.type):
            reply.start = AudioStart.from_event(event)
        elif AudioChunk.is_type(event.type):
            if reply.first_audio_s is None:
                reply.first_audio_s = time.monotonic() - started
            reply.audio += AudioChunk.from_event(event).audio
        elif Error.is_type(event.type):
            reply.errors.append(Error.from_event(event))
        if event.type == last:
            return reply
