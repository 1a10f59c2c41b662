"""The Wyoming front's protocol on a real port with a fake engine (a 0.1 s tone per sentence),
driven by the wyoming library's own client: info, one-shot and streamed synthesis in Home
Assistant's event order, errors that leave the connection and the server working, full pool,
hang-ups and drain."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import AsyncIterator

import pytest
from wyoming.audio import AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from harness.servers import free_port
from harness.wyoming_client import WyomingReply, read_reply
from tts_service.config import parse_config
from tts_service.fronts.wyoming import MAX_HEADER_BYTES, WyomingFront
from tts_service.server import StartupError

from .fakes import SAMPLE_RATE_HZ, TIMEOUT_S, FakeServer, fake_server, wait_until

TONE_BYTES = 2 * SAMPLE_RATE_HZ // 10  # the fake engine's 0.1 s per sentence, 16-bit
TEXT_PARTS = ["The weather ", "is lovely today. ", "We walked along ", "the river."]


@pytest.fixture
async def served() -> AsyncIterator[FakeServer]:
    async with fake_server(wyoming_port=free_port()) as server:
        yield server


@contextlib.asynccontextmanager
async def connect(server: FakeServer) -> AsyncIterator[AsyncTcpClient]:
    port = server.running.wyoming_port
    assert port is not None
    async with AsyncTcpClient("127.0.0.1", port, connect_timeout=TIMEOUT_S,
                              read_timeout=TIMEOUT_S) as client:
        yield client


async def synthesize(client: AsyncTcpClient, text: str, voice: SynthesizeVoice | None = None
                     ) -> WyomingReply:
    await client.write_event(Synthesize(text=text, voice=voice).event())
    return await read_reply(client, "audio-stop")


async def stream(client: AsyncTcpClient, parts: list[str], voice: SynthesizeVoice | None = None
                 ) -> WyomingReply:
    """Home Assistant's order: start, the chunks, the full text again, stop."""
    await client.write_event(SynthesizeStart(voice=voice).event())
    for part in parts:
        await client.write_event(SynthesizeChunk(text=part).event())
    await client.write_event(Synthesize(text="".join(parts), voice=voice).event())
    await client.write_event(SynthesizeStop().event())
    return await read_reply(client, "synthesize-stopped")


async def test_describe_lists_one_program_with_every_voice_and_streaming(
        served: FakeServer) -> None:
    async with connect(served) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
    assert event is not None and Info.is_type(event.type)
    (program,) = Info.from_event(event).tts
    assert program.supports_synthesize_streaming
    assert program.installed
    voices = {voice.name: voice for voice in program.voices}
    assert set(voices) == {"af_bella", "am_adam"}
    assert voices["af_bella"].languages == ["en-US"]
    assert voices["am_adam"].description == "am_adam (en-US, male)"
    assert served.count("Describe", "OK", "wyoming") == 1


async def test_synthesize_streams_every_sentence_between_audio_start_and_stop(
        served: FakeServer) -> None:
    async with connect(served) as client:
        heard = await synthesize(client, "One is here. Two is here.")
    assert heard.types[0] == "audio-start" and heard.types[-1] == "audio-stop"
    assert set(heard.types[1:-1]) == {"audio-chunk"}
    assert heard.start == AudioStart(rate=SAMPLE_RATE_HZ, width=2, channels=1, timestamp=0)
    assert len(heard.audio) == 2 * TONE_BYTES
    assert served.count("SynthesizeStream", "OK", "wyoming") == 1


async def test_a_streaming_session_ignores_the_replayed_text_and_ends_with_stopped(
        served: FakeServer) -> None:
    async with connect(served) as client:
        streamed = await stream(client, TEXT_PARTS)
        one_shot = await synthesize(client, "".join(TEXT_PARTS))
    assert streamed.types[0] == "audio-start"
    assert streamed.types[-2:] == ["audio-stop", "synthesize-stopped"]
    assert streamed.errors == []
    # Spoken once, not twice: the same audio as the one-shot synthesis of the whole text.
    assert len(streamed.audio) == len(one_shot.audio) == 2 * TONE_BYTES
    assert served.engine.calls.count("The weather is lovely today.") == 2  # once per request
    assert served.count("StreamingSynthesize", "OK", "wyoming") == 1


async def test_a_streaming_session_speaks_before_its_text_ends(served: FakeServer) -> None:
    async with connect(served) as client:
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="The first sentence is done. ").event())
        await client.write_event(SynthesizeChunk(text="The second is ").event())
        # No more text yet: the first sentence is spoken anyway.
        first = await client.read_event()
        assert first is not None and AudioStart.is_type(first.type)
        await client.write_event(SynthesizeChunk(text="still coming.").event())
        await client.write_event(SynthesizeStop().event())
        rest = await read_reply(client, "synthesize-stopped")
    assert len(rest.audio) == 2 * TONE_BYTES


@pytest.mark.parametrize(("request_", "code", "words"), [
    (Synthesize(text="Hello.", voice=SynthesizeVoice(name="nobody")), "INVALID_ARGUMENT",
     "unknown voice 'nobody'"),
    (Synthesize(text="  "), "INVALID_ARGUMENT", "text is empty"),
    (Synthesize(text="Please explode now."), "INTERNAL", "server log"),
    (Synthesize(text="Hello.", voice=SynthesizeVoice(language="xx")), "INVALID_ARGUMENT",
     "no voice speaks 'xx'"),
    (Event(type="synthesize", data={"voice": {"name": "af_bella"}}), "INVALID_ARGUMENT",
     "malformed synthesize event"),
    (Event(type="synthesize", data={"text": 42}), "INVALID_ARGUMENT", "text must be a string"),
])
async def test_a_failed_synthesis_is_an_error_then_audio_stop_and_the_connection_lives_on(
        served: FakeServer, request_: Synthesize | Event, code: str, words: str) -> None:
    event = request_ if isinstance(request_, Event) else request_.event()
    async with connect(served) as client:
        await client.write_event(event)
        failed = await read_reply(client, "audio-stop")
        assert [error.code for error in failed.errors] == [code]
        assert words in failed.errors[0].text
        assert "Traceback" not in failed.errors[0].text and "native" not in failed.errors[0].text
        assert failed.audio == b""
        await wait_until(lambda: served.running.scheduler.in_rotation == 1)  # a failed engine's
        ok = await synthesize(client, "Still here.")  # rebuild is done
    assert len(ok.audio) == TONE_BYTES
    assert served.count("SynthesizeStream", code, "wyoming") == 1


async def test_a_failed_session_is_an_error_then_synthesize_stopped_and_its_text_ignored(
        served: FakeServer) -> None:
    async with connect(served) as client:
        failed = await stream(client, TEXT_PARTS, voice=SynthesizeVoice(name="nobody"))
        assert failed.types == ["error", "synthesize-stopped"]
        assert "unknown voice" in failed.errors[0].text
        ok = await stream(client, TEXT_PARTS)
    assert ok.errors == [] and len(ok.audio) == 2 * TONE_BYTES
    assert served.engine.calls == ["The weather is lovely today.", "We walked along the river."]


async def test_events_out_of_order_are_errors_and_change_nothing(served: FakeServer) -> None:
    async with connect(served) as client:
        await client.write_event(SynthesizeChunk(text="Orphan text.").event())
        orphan = await read_reply(client, "error")
        await client.write_event(SynthesizeStop().event())
        stray_stop = await read_reply(client, "error")
        ok = await synthesize(client, "Fine.")
    assert "send synthesize-start first" in orphan.errors[0].text
    assert "without an open streaming session" in stray_stop.errors[0].text
    assert len(ok.audio) == TONE_BYTES
    assert served.engine.calls == ["Fine."]


async def test_a_voice_can_be_chosen_by_language(served: FakeServer) -> None:
    async with connect(served) as client:
        heard = await synthesize(client, "Hello.", voice=SynthesizeVoice(language="en_US"))
    assert heard.errors == [] and len(heard.audio) == TONE_BYTES


async def test_a_full_pool_refuses_with_resource_exhausted() -> None:
    async with fake_server(wyoming_port=free_port(), max_queued_requests=0) as served, \
            connect(served) as busy, connect(served) as refused:
        served.engine.gate.clear()
        await busy.write_event(Synthesize(text="Hello.").event())
        await wait_until(lambda: served.running.scheduler.busy == 1)
        await refused.write_event(Synthesize(text="Hello.").event())
        answer = await read_reply(refused, "audio-stop")
        assert answer.types == ["error", "audio-stop"]
        assert answer.errors[0].code == "RESOURCE_EXHAUSTED"
        assert "retry" in answer.errors[0].text
        served.engine.gate.set()
        assert len((await read_reply(busy, "audio-stop")).audio) == TONE_BYTES


async def test_a_client_that_hangs_up_frees_its_engine(served: FakeServer) -> None:
    served.engine.permits = threading.Semaphore(1)  # one sentence, then the engine waits
    text = " ".join(f"Sentence number {n} is here." for n in range(40))
    wyoming = served.running.front(WyomingFront)
    assert wyoming is not None
    connections = wyoming.connections
    async with connect(served) as client:
        await client.write_event(Synthesize(text=text).event())
        await read_reply(client, "audio-chunk")
        (connection,) = connections
    served.engine.permits.release(1)  # the next sentence's audio finds the client gone
    await wait_until(lambda: served.count("SynthesizeStream", "CANCELLED", "wyoming") == 1)
    served.engine.permits.release(40)
    await wait_until(lambda: served.running.scheduler.busy == 0)
    assert len(served.engine.calls) <= 3
    await asyncio.wait_for(connection, TIMEOUT_S)  # ended quietly: nothing left to log


async def test_an_abandoned_session_is_cancelled(served: FakeServer) -> None:
    async with connect(served) as client:
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="Half a sentence").event())
    await wait_until(lambda: served.count("StreamingSynthesize", "CANCELLED", "wyoming") == 1)
    assert served.engine.calls == []


async def test_drain_finishes_a_session_in_flight_and_refuses_new_requests() -> None:
    async with fake_server(wyoming_port=free_port()) as served:
        served.engine.permits = threading.Semaphore(1)
        async with connect(served) as client, connect(served) as late:
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeChunk(text="One is here. Two is here.").event())
            await read_reply(client, "audio-chunk")
            wyoming = served.running.front(WyomingFront)
            assert wyoming is not None
            stopping = asyncio.ensure_future(served.running.stop(grace_s=10))
            await wait_until(lambda: wyoming.in_flight.closing)
            refused = await synthesize(late, "Too late.")
            await client.write_event(SynthesizeStop().event())
            served.engine.permits.release(5)
            rest = await read_reply(client, "synthesize-stopped")
            await asyncio.wait_for(stopping, TIMEOUT_S)
    assert refused.errors[0].code == "UNAVAILABLE"
    assert "shutting down" in refused.errors[0].text
    assert rest.errors == [] and len(rest.audio) == TONE_BYTES
    assert served.count("StreamingSynthesize", "OK", "wyoming") == 1


async def test_a_taken_wyoming_port_stops_the_start_with_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot serve Wyoming on port {port}"):
            async with fake_server(wyoming_port=port):
                pass


async def test_wyoming_beyond_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    # 192.0.2.1 is a documentation address: never this machine's, so nothing is exposed and
    # the start fails after the warning.
    with pytest.raises(StartupError, match=re.escape("cannot listen on 192.0.2.1:")):
        async with fake_server(host="192.0.2.1", wyoming_port=free_port()):
            pass
    assert "serving Wyoming on 192.0.2.1: the protocol has no authentication" in caplog.text
    caplog.clear()
    async with fake_server(wyoming_port=free_port()):
        pass
    assert "no authentication" not in caplog.text


def test_the_wyoming_port_is_off_unless_set_by_flag_or_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TTS_WYOMING_PORT", raising=False)
    assert parse_config([]).wyoming_port == 0
    monkeypatch.setenv("TTS_WYOMING_PORT", "10200")
    assert parse_config([]).wyoming_port == 10200
    assert parse_config(["--wyoming-port", "10300"]).wyoming_port == 10300
    monkeypatch.setenv("TTS_WYOMING_PORT", "70000")
    with pytest.raises(SystemExit):
        parse_config([])
    assert "Invalid value for TTS_WYOMING_PORT: must be 0 to 65535, got 70000" in \
        capsys.readouterr().err


def closed_count(server: FakeServer, reason: str, protocol: str = "wyoming") -> float:
    value = server.running.metrics.registry.get_sample_value(
        "tts_connections_closed_total", {"protocol": protocol, "reason": reason})
    return value or 0.0


async def read_until_closed(reader: asyncio.StreamReader) -> list[Event]:
    """Every event the server sends until it closes the connection."""
    events = []
    async with asyncio.timeout(TIMEOUT_S):
        while (event := await async_read_event(reader)) is not None:
            events.append(event)
    return events


# Hand-made frames the wyoming library's reader would trust: it reads whatever a header
# announces, or a header line up to its reader's limit.
@pytest.mark.parametrize(("frame", "method", "words"), [
    (b'{"type": "synthesize", "data": {"text": "' + b"a" * MAX_HEADER_BYTES,
     "Event", f"header line is over {MAX_HEADER_BYTES} bytes"),
    (b'{"type": "synthesize", "data_length": 4000000000}\n',
     "SynthesizeStream", "announces 4000000000 bytes of data"),
    (b'{"type": "synthesize-chunk", "data_length": 300000}\n',
     "StreamingSynthesize", "announces 300000 bytes of data"),
    (b'{"type": "audio-chunk", "payload_length": 100000000}\n',
     "Event", "announces 100000000 bytes of payload"),
])
async def test_an_oversize_frame_is_refused_before_its_body_and_the_connection_closed(
        served: FakeServer, frame: bytes, method: str, words: str) -> None:
    port = served.running.wyoming_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame)
        # The body announced never comes: the answer must not wait for it.
        events = await read_until_closed(reader)
    finally:
        writer.close()
    assert [event.type for event in events] == ["error"]
    error = Error.from_event(events[0])
    assert error.code == "INVALID_ARGUMENT" and words in error.text
    assert closed_count(served, "oversize_event") == 1
    assert served.count(method, "INVALID_ARGUMENT", "wyoming") == 1
    async with connect(served) as client:  # the server goes on serving
        ok = await synthesize(client, "Still here.")
    assert len(ok.audio) == TONE_BYTES


async def test_the_data_cap_follows_the_longest_accepted_text() -> None:
    """Data room for --max-text-chars characters of 4 UTF-8 bytes each: beyond 64 KiB here."""
    async with fake_server(wyoming_port=free_port(), max_text_chars=20000) as served, \
            connect(served) as client:
        padding = "🙂" * 20000  # 80000 bytes; describe reads and ignores its data
        await client.write_event(Event(type="describe", data={"padding": padding}))
        event = await client.read_event()
    assert event is not None and Info.is_type(event.type)
    assert closed_count(served, "oversize_event") == 0


async def test_a_header_that_is_not_json_is_an_error_and_a_close(served: FakeServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.running.wyoming_port)
    try:
        writer.write(b"GET / HTTP/1.1\r\n")
        events = await read_until_closed(reader)
    finally:
        writer.close()
    assert "not a JSON object with a type" in Error.from_event(events[0]).text
    assert closed_count(served, "malformed_event") == 1


async def test_synthesize_sends_a_sentences_audio_while_the_next_is_being_made(
        served: FakeServer) -> None:
    served.engine.permits = threading.Semaphore(1)  # one sentence, then the engine waits
    async with connect(served) as client:
        await client.write_event(Synthesize(text="One is here. Two is here.").event())
        first = await read_reply(client, "audio-chunk")
        # The second sentence cannot be done yet: the first's audio did not wait for it.
        await wait_until(lambda: served.running.scheduler.busy == 1)
        assert served.engine.calls == ["One is here."]
        assert len(first.audio) == TONE_BYTES
        served.engine.permits.release()
        rest = await read_reply(client, "audio-stop")
    assert len(rest.audio) == TONE_BYTES
