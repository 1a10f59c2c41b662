"""Idle, trickling and stalled clients and too many connections, on the HTTP front (its
WebSocket included), the Wyoming front and the gRPC front: real sockets on loopback, a fake
engine, short timeouts. Each HTTP or Wyoming refusal is an answer the client can read, a
metric and a log line (gRPC's core closes its connections itself); the server goes on
serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from websockets.asyncio.client import connect as websocket_connect
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize

from harness.servers import free_port
from harness.websocket_client import url_of
from harness.wyoming_client import read_reply
from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.fronts.http_hosting import HttpFront
from tts_service.fronts.wyoming import WyomingFront

from .fakes import SAMPLE_RATE_HZ, TIMEOUT_S, FakeServer, fake_server, wait_until
from .test_wyoming_logic import closed_count, read_until_closed

IDLE_S = 0.5
TONE_BYTES = 2 * SAMPLE_RATE_HZ // 10  # the fake engine's 0.1 s per sentence, 16-bit


def refused(server: FakeServer, protocol: str) -> float:
    value = server.running.metrics.registry.get_sample_value(
        "tts_connections_refused_total", {"protocol": protocol})
    return value or 0.0


def open_now(server: FakeServer, protocol: str) -> float:
    value = server.running.metrics.registry.get_sample_value(
        "tts_connections_open", {"protocol": protocol})
    return value or 0.0


@contextlib.asynccontextmanager
async def raw(port: int | None) -> AsyncIterator[tuple[asyncio.StreamReader,
                                                      asyncio.StreamWriter]]:
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def http_answer_until_closed(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the one response before the server closes."""
    async with asyncio.timeout(TIMEOUT_S):
        answer = await reader.read()  # up to the close
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def wyoming_works(server: FakeServer) -> None:
    async with AsyncTcpClient("127.0.0.1", server.running.wyoming_port or 0) as client:
        await client.write_event(Synthesize(text="Still here.").event())
        assert len((await read_reply(client, "audio-stop")).audio) == TONE_BYTES


async def http_works(server: FakeServer) -> None:
    async with raw(server.running.http_port) as (reader, writer):
        writer.write(b"GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        async with asyncio.timeout(TIMEOUT_S):
            assert (await reader.read()).startswith(b"HTTP/1.1 200")


# Wyoming -------------------------------------------------------------------------------------

@pytest.fixture
async def wyoming() -> AsyncIterator[FakeServer]:
    async with fake_server(wyoming_port=free_port(), connection_idle_timeout_s=IDLE_S) as server:
        yield server


async def test_wyoming_closes_a_connection_that_sends_nothing(wyoming: FakeServer) -> None:
    async with raw(wyoming.running.wyoming_port) as (reader, _):
        events = await read_until_closed(reader)
    error = Error.from_event(events[0])
    assert (error.code, len(events)) == ("DEADLINE_EXCEEDED", 1)
    assert f"no event for {IDLE_S:g} s" in error.text
    assert closed_count(wyoming, "idle", "wyoming") == 1
    await wyoming_works(wyoming)


async def test_wyoming_closes_a_connection_whose_event_trickles_in(wyoming: FakeServer) -> None:
    async with raw(wyoming.running.wyoming_port) as (reader, writer):
        reading = asyncio.ensure_future(read_until_closed(reader))
        for byte in b'{"type": "describe"':  # a byte at a time, never the end of the line
            if reading.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(IDLE_S / 5)
        events = await reading
    assert "an event took over" in Error.from_event(events[0]).text
    assert closed_count(wyoming, "slow_request", "wyoming") == 1
    await wyoming_works(wyoming)


async def test_wyoming_refuses_connections_beyond_the_limit() -> None:
    async with fake_server(wyoming_port=free_port(), max_connections=1) as served:
        port = served.running.wyoming_port
        async with AsyncTcpClient("127.0.0.1", port or 0) as first:
            await first.write_event(Describe().event())
            assert Info.is_type((await first.read_event() or Event("none")).type)
            async with raw(port) as (reader, _):
                events = await read_until_closed(reader)
            error = Error.from_event(events[0])
            assert error.code == "RESOURCE_EXHAUSTED" and "retry in a few seconds" in error.text
            assert refused(served, "wyoming") == 1
            assert open_now(served, "wyoming") == 1
            await first.write_event(Synthesize(text="Still here.").event())  # unharmed
            assert len((await read_reply(first, "audio-stop")).audio) == TONE_BYTES
        await wait_until(lambda: open_now(served, "wyoming") == 0)
        await wyoming_works(served)  # its place is free again


async def test_a_wyoming_client_that_reads_nothing_holds_no_engine_and_is_cut_off() -> None:
    text = " ".join(f"Sentence number {n} is here." for n in range(150))
    async with fake_server(wyoming_port=free_port(), read_ahead_s=1.0,
                           connection_idle_timeout_s=2.0) as served:
        front = served.running.front(WyomingFront)
        assert front is not None
        with socket.create_connection(("127.0.0.1", served.running.wyoming_port or 0)) as stalled:
            await wait_until(lambda: len(front.connections) == 1)
            (connection,) = front.connections.values()
            # A slow link: little room in the server's send buffer, as on a congested network.
            sent = connection.writer.get_extra_info("socket")
            sent.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            stalled.sendall(b'{"type": "synthesize", "data_length": %d}\n' % len(
                data := json.dumps({"text": text}).encode()) + data)
            await wait_until(lambda: len(served.engine.calls) > 0)
            await wyoming_works(served)  # served while the other reads nothing
            await wait_until(lambda: closed_count(served, "stalled_reader", "wyoming") == 1)
        await wait_until(lambda: served.count("SynthesizeStream", "CANCELLED", "wyoming") == 1)
        await wait_until(lambda: served.running.scheduler.busy == 0)
    # Made until its unread audio reached --read-ahead (and the buffers filled), not to the end.
    assert len(served.engine.calls) < 100


# HTTP and its WebSocket ----------------------------------------------------------------------

@pytest.fixture
async def http() -> AsyncIterator[FakeServer]:
    async with fake_server(http_port=free_port(), connection_idle_timeout_s=IDLE_S) as server:
        yield server


async def test_http_closes_a_connection_that_sends_nothing_with_408(http: FakeServer) -> None:
    async with raw(http.running.http_port) as (reader, _):
        status, body = await http_answer_until_closed(reader)
    assert status == 408 and f"no request within {IDLE_S:g} s" in body["error"]["message"]
    assert closed_count(http, "idle", "http") == 1
    await http_works(http)


@pytest.mark.parametrize(("at_once", "trickled"), [
    (b"POST /v1/audio/speech HTTP/1.1\r\n", b"host: x\r\ncontent-length: 9\r\n"),  # the head
    (b"POST /v1/audio/speech HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
     b"content-length: 100\r\n\r\n", b'{"input": "Hello'),  # the body
])
async def test_http_closes_a_request_that_trickles_in_with_408(
        http: FakeServer, at_once: bytes, trickled: bytes) -> None:
    async with raw(http.running.http_port) as (reader, writer):
        reading = asyncio.ensure_future(http_answer_until_closed(reader))
        writer.write(at_once)
        for offset in range(len(trickled)):  # a byte at a time: never idle, always late
            if reading.done():
                break
            writer.write(trickled[offset:offset + 1])
            await asyncio.sleep(IDLE_S / 5)
        status, body = await reading
    assert status == 408 and "took over" in body["error"]["message"]
    assert closed_count(http, "slow_request", "http") == 1
    await http_works(http)


async def test_http_refuses_connections_beyond_the_limit_websockets_included() -> None:
    async with fake_server(http_port=free_port(), max_connections=1) as served:
        async with websocket_connect(url_of(served.http_url), proxy=None):
            await wait_until(lambda: open_now(served, "http") == 1)
            async with raw(served.running.http_port) as (reader, _):
                status, body = await http_answer_until_closed(reader)
        assert status == 503 and "retry in a few seconds" in body["error"]["message"]
        assert refused(served, "http") == 1
        await wait_until(lambda: open_now(served, "http") == 0)
        await http_works(served)


async def test_an_http_client_that_reads_nothing_holds_no_engine_and_is_cut_off() -> None:
    text = " ".join(f"Sentence number {n} is here." for n in range(150))
    body = json.dumps({"model": "tts-1", "voice": "af_bella", "input": text,
                       "response_format": "pcm"}).encode()
    async with fake_server(http_port=free_port(), read_ahead_s=1.0,
                           connection_idle_timeout_s=2.0) as served:
        front = served.running.front(HttpFront)
        assert front is not None and front.server is not None
        with socket.create_connection(("127.0.0.1", served.running.http_port or 0)) as stalled:
            await wait_until(lambda: open_now(served, "http") == 1)
            (connection,) = front.server.server_state.connections
            # A slow link: little room in the server's send buffer, as on a congested network.
            connection.transport.get_extra_info("socket").setsockopt(  # type: ignore[attr-defined]
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            stalled.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nhost: x\r\n"
                            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                            % (len(body), body))
            await wait_until(lambda: len(served.engine.calls) > 0)
            await http_works(served)  # served while the other reads nothing
            await wait_until(lambda: closed_count(served, "stalled_reader", "http") == 1)
        await wait_until(lambda: served.count("CreateSpeech", "CANCELLED", "http") == 1)
        await wait_until(lambda: served.running.scheduler.busy == 0)
    assert len(served.engine.calls) < 100


# gRPC ----------------------------------------------------------------------------------------

# A client's HTTP/2 connection preface and an empty SETTINGS frame: a connection ready for
# calls that makes none.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
GOAWAY = 7


def http2_frame_types(data: bytes) -> list[int]:
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length:]
    return types


async def grpc_works(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await tts_pb2_grpc.TextToSpeechServiceStub(channel).Synthesize(
            tts_pb2.SynthesizeRequest(text="Still here."), timeout=TIMEOUT_S,
            wait_for_ready=True)  # through the client's reconnection backoff
    assert response.audio_duration_seconds > 0


async def test_grpc_closes_a_connection_without_a_call_with_a_goaway() -> None:
    async with fake_server(connection_idle_timeout_s=IDLE_S) as served:
        async with raw(served.running.port) as (reader, writer):
            writer.write(HTTP2_PREFACE)
            opened = asyncio.get_running_loop().time()
            async with asyncio.timeout(TIMEOUT_S):
                answer = await reader.read()  # up to the close
            waited = asyncio.get_running_loop().time() - opened
        assert GOAWAY in http2_frame_types(answer)
        assert IDLE_S * 0.8 <= waited < TIMEOUT_S
        await grpc_works(f"127.0.0.1:{served.running.port}")


async def test_grpc_refuses_connections_beyond_the_limit() -> None:
    async with fake_server(max_connections=1) as served:
        address = f"127.0.0.1:{served.running.port}"
        await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hello."),
                                     timeout=TIMEOUT_S)  # the one connection allowed
        async with raw(served.running.port) as (reader, writer):
            writer.write(HTTP2_PREFACE)
            async with asyncio.timeout(TIMEOUT_S):
                assert await reader.read() == b""  # closed, unanswered
        # A connection of its own: channels to one address otherwise share theirs.
        async with grpc.aio.insecure_channel(
                address, options=[("grpc.use_local_subchannel_pool", 1)]) as other:
            with pytest.raises(grpc.aio.AioRpcError) as refusal:
                await tts_pb2_grpc.TextToSpeechServiceStub(other).Synthesize(
                    tts_pb2.SynthesizeRequest(text="Hello."), timeout=TIMEOUT_S)
        assert refusal.value.code() == grpc.StatusCode.UNAVAILABLE
        await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Again."),
                                     timeout=TIMEOUT_S)  # the first connection unharmed
        await served.channel.close()
        await grpc_works(address)  # its place is free again
