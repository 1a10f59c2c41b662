"""The Wyoming front: the protocol Home Assistant speaks to local speech services, over TCP.

A connection is one `wyoming.server.AsyncEventHandler` whose `handle_event` only translates
events into the call layer's values (speech_call) and chunks back into events. A connection
carries any number of requests, one after another:

- `describe` -> `info`: one TTS program, every voice, streaming supported.
- `synthesize` -> `audio-start`, an `audio-chunk` per piece as soon as it is made, `audio-stop`.
- `synthesize-start`, `synthesize-chunk`..., `synthesize-stop` (a streaming session, one live
  call): each sentence is spoken while the text still arrives; the full-text `synthesize` that
  clients replay inside the session for older servers is ignored (else the answer would be
  spoken twice). Audio as above, then `synthesize-stopped`.

A failed request gets an `error` event (`text` says what to do, `code` is the canonical code's
name), then its usual last event (`audio-stop`, or `synthesize-stopped` for a session): a client
that waits for that event, as Home Assistant does, is never left waiting, and the connection
stays open for the next request. Wyoming has no authentication, so the front listens on
loopback unless told otherwise (server.py warns then).

The front reads frames itself rather than through the wyoming library, which trusts a header's
`data_length` and `payload_length` and would read gigabytes if told to: a header line, its
data and its payload each have a cap, and a frame over one is refused before its body is read.
Connections are bounded in number and closed when idle, trickling or not reading
(calls/connections.py); each such close sends an `error` event first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, Eventable
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeTextFormat,
    SynthesizeVoice,
)

from tts_service import __version__
from tts_service.audio.encoding import AudioEncoding
from tts_service.calls.connections import ConnectionGuard
from tts_service.calls.live_text import TextInput
from tts_service.calls.outcomes import Code, Outcome
from tts_service.calls.request import AskedSettings, pronunciations_from_json
from tts_service.calls.speech_call import CallFailed, Calls, Chunk, Dialect
from tts_service.calls.ssml_request import TEXT_FORMATS, next_document
from tts_service.errors import CallerGone, InvalidRequest
from tts_service.fronts.front import FrontStartError
from tts_service.fronts.in_flight import InFlight
from tts_service.model.voices import VoiceCatalog

_LOGGER = logging.getLogger(__name__)

PROTOCOL = "wyoming"
# Methods as in the request log and metrics: named after the gRPC method of the same kind
# (whole text in, audio streamed out; text streamed in), so that dashboards compare fronts.
_ONE_SHOT = "SynthesizeStream"
_SESSION = "StreamingSynthesize"
DIALECT = Dialect(fields={"voice": "voice.name", "language_code": "voice.language",
                          "ssml": "text"},
                  list_voices="the info event (send describe)")
# 16-bit mono PCM at the model's rate: what Wyoming's audio events carry.
_WIDTH_BYTES, _CHANNELS = 2, 1
# Text events read ahead of a streaming session's synthesis; past that the connection is not
# read, so TCP holds the sender back (as gRPC's flow control does).
_QUEUED_TEXTS = 64
# Frame caps. An honest header line is a type, a version and two lengths (under 200 bytes);
# data is a request's JSON, capped like any front's request by --max-text-chars
# (Limits.max_request_bytes); the server takes no audio, so a payload is never needed and a
# small one is only tolerated.
MAX_HEADER_BYTES = 8 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024
# How long a closing connection keeps reading (and dropping) what its client still sends, so
# that closing does not reset the connection before the client has read the error event.
_LINGER_S = 2.0
_ATTRIBUTION = Attribution(name="hexgrad (Kokoro-82M)",
                           url="https://huggingface.co/hexgrad/Kokoro-82M")
E = TypeVar("E", bound=Eventable)


def service_info(catalog: VoiceCatalog) -> Info:
    """The `info` answer: one TTS program with every voice and its language."""
    voices = [TtsVoice(name=voice.name, description=_describe(voice.name, voice.language_code,
                                                               voice.gender.value, voice.blend),
                       attribution=_ATTRIBUTION, installed=True, version=None,
                       languages=[voice.language_code])
              for voice in catalog.list()]
    return Info(tts=[TtsProgram(
        name="kokoro", description="Kokoro-82M text to speech (text_format: text or ssml)",
        attribution=_ATTRIBUTION,
        installed=True, version=__version__, voices=voices,
        supports_synthesize_streaming=True)])


def _is_ssml(text_format: object) -> bool:
    """Whether a request's text_format asks for SSML; a format neither text nor SSML is
    refused (the wyoming library keeps an unknown value as a string)."""
    if text_format is None or text_format == SynthesizeTextFormat.TEXT:
        return False
    if text_format == SynthesizeTextFormat.SSML:
        return True
    raise InvalidRequest("text_format", f"text_format {text_format!r} is not known: use "
                         f"one of {', '.join(TEXT_FORMATS)}")


def _describe(name: str, language: str, gender: str, blend: str) -> str:
    details = ", ".join(part for part in (language, gender, blend and f"blend of {blend}")
                        if part)
    return f"{name} ({details})"


class WyomingFront:
    """The Wyoming protocol on one port; what every connection shares."""

    name = "Wyoming"

    def __init__(self, calls: Calls, host: str, port: int, guard: ConnectionGuard) -> None:
        self.calls = calls
        self.info = service_info(calls.catalog).event()
        self.in_flight = InFlight()
        self.guard = guard
        self.connections: dict[asyncio.Task[Any], _Connection] = {}
        guard.watch(lambda: len(self.connections))
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def serving(self) -> str:
        return f"the Wyoming protocol (Home Assistant) on tcp://{self._host}:{self._port}"

    async def start(self) -> None:
        try:
            # The reader's limit is the header line's cap: readuntil refuses a longer line.
            self._server = await asyncio.start_server(self._accept, self._host, self._port,
                                                      limit=MAX_HEADER_BYTES)
        except OSError as err:
            raise FrontStartError(f"cannot serve Wyoming on port {self._port}: "
                                  f"{err.strerror}") from err
        self._port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, reader, writer)
        peer = writer.get_extra_info("peername")
        refusal = self.guard.refusal(len(self.connections), peer)
        if refusal is not None:
            await connection.close_with(Error(text=refusal, code=Code.RESOURCE_EXHAUSTED.name))
            return
        task = asyncio.current_task()
        assert task is not None
        self.connections[task] = connection
        try:
            await connection.run()
        finally:
            del self.connections[task]

    async def stop(self, grace_s: float) -> None:
        """Lets requests in flight finish for up to the grace, then closes every connection."""
        if self._server is None:
            return
        started = time.monotonic()
        self._server.close()  # no new connections
        await self.in_flight.drain(grace_s)
        for connection in self.connections.values():
            await connection.stop()
        if not self.connections:
            return
        # Each connection sends the last events of the request it was on (audio-stop), then
        # closes; one that cannot within what is left of the grace is cut off.
        left_s = max(_LINGER_S, grace_s - (time.monotonic() - started))
        _, late = await asyncio.wait(set(self.connections), timeout=left_s)
        for task in late:
            self.connections[task].writer.transport.abort()
        if late:
            await asyncio.wait(late)


class _Connection(AsyncEventHandler):
    """One client connection: its requests, in order."""

    def __init__(self, front: WyomingFront, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self._calls = front.calls
        self._front = front
        self._in_flight = front.in_flight
        self._guard = front.guard
        self._peer = writer.get_extra_info("peername")
        self._session: _Session | None = None

    async def run(self) -> None:
        """Reads and serves events until the client closes, or the server closes the
        connection (shutdown, or a frame or client it will not serve)."""
        self._is_running = True
        try:
            while self._is_running:
                event = await self._read_event()
                if event is None or not await self.handle_event(event):
                    break
        except _Closing as closing:
            self._guard.closed(closing.reason, self._peer, closing.outcome.message)
            await self.close_with(_error(closing.outcome))
        except ConnectionError:
            pass  # the client went away; a call it had is already logged as CANCELLED
        finally:
            await self.disconnect()
            self.writer.close()

    async def _read_event(self) -> Event | None:
        """The next frame as an event; None once the client has closed its side. Raises
        _Closing for a frame the server will not read or a client that idles or trickles."""
        reader, idle_s = self.reader, self._guard.idle_timeout_s
        while True:
            try:
                first = await asyncio.wait_for(reader.readexactly(1), idle_s)
                break
            except TimeoutError:
                # A session waiting for text has its own idle timeout, which ends its call.
                if self._session is None or self._session.task.done():
                    raise _Closing("idle", Outcome(Code.DEADLINE_EXCEEDED, (
                        f"no event for {idle_s:g} s: the connection is closed; open a new "
                        "one for the next request"))) from None
            except asyncio.IncompleteReadError:
                return None
        try:
            async with asyncio.timeout(idle_s):
                return await self._read_rest(first)
        except TimeoutError:
            raise _Closing("slow_request", Outcome(Code.DEADLINE_EXCEEDED, (
                f"an event took over {idle_s:g} s to arrive: the connection is closed; write "
                "each event at once"))) from None
        except asyncio.IncompleteReadError:
            return None

    async def _read_rest(self, first: bytes) -> Event:
        """The frame that starts with `first`: its header line, data and payload, each
        checked against its cap before it is read."""
        try:
            line = first + await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise self._refused("", "oversize_event", (
                f"an event's header line is over {MAX_HEADER_BYTES} bytes: put the event's "
                "data after the header (data_length), as the wyoming library does")) from None
        header = _json_object(line)
        event_type = header.get("type") if header is not None else None
        if header is None or not isinstance(event_type, str):
            raise self._refused("", "malformed_event", (
                "a header line is not a JSON object with a type: this server speaks the "
                "Wyoming protocol (one JSON header line per event)"))
        max_data = self._calls.limits.max_request_bytes
        data_length = self._length(header, "data_length", max_data, event_type, (
            f"text up to {self._calls.limits.max_text_chars} characters needs less: send "
            "shorter text"))
        payload_length = self._length(header, "payload_length", MAX_PAYLOAD_BYTES, event_type,
                                      "this server takes no audio")
        data = header.get("data")
        data = data if isinstance(data, dict) else {}
        if data_length:
            more = _json_object(await self.reader.readexactly(data_length))
            if more is None:
                raise self._refused(event_type, "malformed_event",
                                    f"the data of a {event_type} event is not a JSON object")
            data.update(more)
        payload = await self.reader.readexactly(payload_length) if payload_length else None
        return Event(type=event_type, data=data, payload=payload)

    def _length(self, header: dict[str, Any], field: str, cap: int, event_type: str,
                hint: str) -> int:
        """A header's announced length: a whole number of bytes up to `cap`."""
        length = header.get(field) or 0
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise self._refused(event_type, "malformed_event", (
                f"{field} of a {event_type} event must be a whole number of bytes"))
        if length > cap:
            raise self._refused(event_type, "oversize_event", (
                f"a {event_type} event announces {length} bytes of {field.split('_')[0]}, "
                f"more than this server reads ({cap}); {hint}"))
        return length

    def _refused(self, event_type: str, reason: str, message: str) -> _Closing:
        """A frame the server will not read: logged and counted like any refused request,
        under the method its event would have had."""
        error = InvalidRequest(event_type or "event", message)
        return _Closing(reason, self._calls.refused(_method(event_type), PROTOCOL, None, error))

    async def stop(self) -> None:
        """Ends the connection once the event being served has been answered: nothing more
        is read."""
        self._is_running = False
        self.reader.feed_eof()

    async def close_with(self, last: Error) -> None:
        """Sends `last`, then closes: the client's side is read and dropped for a moment, so
        that the close does not reset the connection before the client reads the event."""
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            async with asyncio.timeout(_LINGER_S):
                await self.write_event(last.event())
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                while await self.reader.read(64 * 1024):
                    pass
        self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        session = self._session
        in_session = session is not None and not session.stopped
        if Describe.is_type(event.type):
            return await self._describe()
        if Synthesize.is_type(event.type):
            if not in_session:
                await self._finish_session()
                await self._synthesize(event)
            # else: the full text, replayed inside the session for servers without streaming
        elif SynthesizeStart.is_type(event.type):
            if in_session:
                await self._refuse("synthesize-start", "a streaming session is already open: "
                                   "end it with synthesize-stop before starting another")
            else:
                await self._finish_session()
                self._session = _Session(lambda inputs: self._stream(event, inputs))
        elif SynthesizeChunk.is_type(event.type):
            if session is None or not in_session:
                await self._refuse("synthesize-chunk", "synthesize-chunk outside a streaming "
                                   "session: send synthesize-start first")
            else:
                await session.put(_chunk_text(event))
        elif SynthesizeStop.is_type(event.type):
            if session is None or not in_session:
                await self._refuse("synthesize-stop", "synthesize-stop without an open "
                                   "streaming session: send synthesize-start first")
            else:
                await session.put(None)
        # Anything else is dropped, as Wyoming servers do with events they do not serve.
        return True

    async def disconnect(self) -> None:
        """The client closed its side: a session it ended still sends its audio (a client may
        half-close once it has written everything); one it left open is abandoned."""
        session = self._session
        if session is not None and not session.stopped:
            session.task.cancel()
        await self._finish_session()

    async def _finish_session(self) -> None:
        """Waits for the last session's audio, so requests never interleave."""
        if self._session is not None:
            await asyncio.wait({self._session.task})
            self._session = None

    async def _send(self, message: Eventable | Event) -> None:
        """Sends one event; a client that takes none of it for the idle timeout is cut off
        (its audio would otherwise hold the call and the connection for as long as it likes)."""
        idle_s = self._guard.idle_timeout_s
        try:
            await asyncio.wait_for(
                self.write_event(message if isinstance(message, Event) else message.event()),
                idle_s)
        except ConnectionError as err:
            raise CallerGone(f"the client closed the connection: {err}") from None
        except TimeoutError:
            self._guard.closed("stalled_reader", self._peer,
                               f"the client read nothing for {idle_s:g} s")
            self.writer.transport.abort()
            raise CallerGone(f"the client read nothing for {idle_s:g} s") from None

    async def _describe(self) -> bool:
        try:
            async with self._calls.open("Describe", PROTOCOL):
                await self._send(self._front.info)
        except CallFailed:
            return False  # the client is gone
        return True

    async def _refuse(self, event_type: str, message: str) -> None:
        """An event out of order: no request begins, the client is told why."""
        outcome = self._calls.refused(_SESSION, PROTOCOL, None,
                                      InvalidRequest(event_type, message))
        with contextlib.suppress(CallerGone):
            await self._send(_error(outcome))

    async def _synthesize(self, event: Event) -> None:
        """One `synthesize`: the whole text in, its audio streamed out."""
        audio = _AudioOut(self._send)
        try:
            async with self._calls.open(_ONE_SHOT, PROTOCOL) as call:
                with self._in_flight.call():
                    request = _parsed(Synthesize, event)
                    spec = call.accept(_text(request.text), self._asked(request.voice, event),
                                       streaming=True, dialect=DIALECT,
                                       ssml=_is_ssml(request.text_format))
                    async with contextlib.aclosing(call.chunks(spec)) as chunks:
                        async for chunk in chunks:
                            await audio.write(chunk)
        except CallFailed as failed:
            if not await self._told(failed.outcome):
                return
        with contextlib.suppress(CallerGone):
            await audio.stop()

    async def _stream(self, start: Event, inputs: AsyncIterator[TextInput]) -> None:
        """A streaming session: text in as it is written, audio out as it is made."""
        audio = _AudioOut(self._send)
        try:
            async with self._calls.open(_SESSION, PROTOCOL) as call:
                with self._in_flight.call():
                    request = _parsed(SynthesizeStart, start)
                    asked = self._asked(request.voice, start)
                    settings = call.accept_settings(asked, dialect=DIALECT)
                    if _is_ssml(request.text_format):
                        # A document is read once it is whole: at synthesize-stop.
                        document, _ = await next_document(inputs, self._calls.limits)
                        spec = call.accept(document, asked, streaming=True, dialect=DIALECT,
                                           ssml=True)
                        async with contextlib.aclosing(call.chunks(spec)) as chunks:
                            async for chunk in chunks:
                                await audio.write(chunk)
                    else:
                        async with call.live(settings, inputs) as spoken:
                            async for item in spoken:
                                if isinstance(item, Chunk):  # no flushes to answer
                                    await audio.write(item)
        except CallFailed as failed:
            if not await self._told(failed.outcome):
                return
        with contextlib.suppress(CallerGone):
            if audio.started:
                await audio.stop()
            await self._send(SynthesizeStopped())

    async def _told(self, outcome: Outcome) -> bool:
        """Sends a failed request's error event; False when there is nobody to tell."""
        if outcome.code is Code.CANCELLED:
            return False
        try:
            await self._send(_error(outcome))
        except CallerGone:
            return False
        return True

    def _asked(self, voice: SynthesizeVoice | None, event: Event) -> AskedSettings:
        """The voice by name, else the default voice of the language asked for, else the
        server's default; the text is read in the language asked for, else the voice's own.
        Wyoming's audio is 16-bit PCM at the model's rate. The event's `pronunciations` is
        this server's extension (the wyoming library's classes drop keys they do not know;
        the event read here keeps them)."""
        name = language = ""
        if voice is not None and voice.language:
            language = _text(voice.language, "voice.language")
        if voice is not None and voice.name:
            name = _text(voice.name, "voice.name")
        elif language:
            name = self._voice_for(language)
        return AskedSettings(voice=name, encoding=AudioEncoding.PCM16, language=language,
                             pronunciations=pronunciations_from_json(
                                 event.data.get("pronunciations")))

    def _voice_for(self, language: str) -> str:
        catalog = self._calls.catalog
        # Piper's voices say en_US, ours en-US: the catalogue's matcher takes both.
        speaking = [voice.name for voice in catalog.list(language)]
        if not speaking:
            raise InvalidRequest("voice.language", f"no voice speaks {language!r}: the info "
                                 "event (send describe) lists each voice's language")
        return catalog.default if catalog.default in speaking else speaking[0]


class _Session:
    """The text of one streaming session on its way to its live call, which runs in its own
    task so that the connection keeps reading text while audio goes out."""

    def __init__(self, run: Callable[[AsyncIterator[TextInput]], Awaitable[None]]) -> None:
        self._texts: asyncio.Queue[TextInput | InvalidRequest | None] = \
            asyncio.Queue(_QUEUED_TEXTS)
        self.stopped = False  # synthesize-stop has arrived: the text is complete
        self.task = asyncio.ensure_future(run(self._inputs()))

    async def put(self, text: TextInput | InvalidRequest | None) -> None:
        """Queues the next text (None: the end), waiting while the queue is full; dropped once
        the call has ended (it failed: its error has gone out)."""
        self.stopped = self.stopped or text is None
        if self.task.done():
            return
        put = asyncio.ensure_future(self._texts.put(text))
        await asyncio.wait({put, self.task}, return_when=asyncio.FIRST_COMPLETED)
        put.cancel()

    async def _inputs(self) -> AsyncIterator[TextInput]:
        while (item := await self._texts.get()) is not None:
            if isinstance(item, InvalidRequest):
                raise item
            yield item


class _AudioOut:
    """One request's audio events: `audio-start` with the first audio, `audio-stop` last."""

    def __init__(self, send: Callable[[Eventable], Awaitable[None]]) -> None:
        self._send = send
        self.started = False
        self._end_ms = 0

    async def write(self, chunk: Chunk) -> None:
        if not chunk.audio:
            return
        rate = chunk.sample_rate_hz
        if not self.started:
            await self._send(AudioStart(rate=rate, width=_WIDTH_BYTES, channels=_CHANNELS,
                                        timestamp=0))
            self.started = True
        await self._send(AudioChunk(rate=rate, width=_WIDTH_BYTES, channels=_CHANNELS,
                                    audio=chunk.audio, timestamp=round(chunk.offset_s * 1000)))
        self._end_ms = round((chunk.offset_s + chunk.duration_s) * 1000)

    async def stop(self) -> None:
        await self._send(AudioStop(timestamp=self._end_ms))


class _Closing(Exception):
    """The server closes the connection: why (the metric's reason), and what the client is
    told."""

    def __init__(self, reason: str, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.reason = reason
        self.outcome = outcome


def _method(event_type: str) -> str:
    """The request log's method for a request that begins with `event_type`."""
    if event_type.startswith("synthesize-"):
        return _SESSION
    return _ONE_SHOT if event_type == "synthesize" else "Event"


def _json_object(text: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return value if isinstance(value, dict) else None


def _error(outcome: Outcome) -> Error:
    return Error(text=outcome.message, code=outcome.code.name)


def _parsed(kind: type[E], event: Event) -> E:
    """The event's fields; a malformed event is the caller's error, not ours."""
    try:
        return kind.from_event(event)  # type: ignore[return-value]
    except (KeyError, TypeError, AttributeError, ValueError):
        raise InvalidRequest(event.type, f"malformed {event.type} event: see the Wyoming "
                             "protocol for its fields") from None


def _chunk_text(event: Event) -> TextInput | InvalidRequest:
    try:
        return TextInput(_text(_parsed(SynthesizeChunk, event).text))
    except InvalidRequest as error:
        return error  # ends the session, in order, after the text before it


def _text(value: Any, field: str = "text") -> str:
    if not isinstance(value, str):
        raise InvalidRequest(field, f"{field} must be a string")
    return value
