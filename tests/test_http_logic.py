"""HTTP front logic on a real port with a fake engine: token, full pool, hang-ups, metrics,
drain. The OpenAI SDK is the client; errors must arrive as its exception classes."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import openai
import pytest

from harness.servers import free_port
from tts_service.server import RunningServer, StartupError

from .certs import make_pki
from .fakes import TIMEOUT_S, FakeEngine, fake_server, wait_until

TOKEN = "s3cret-token"


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[FakeEngine, RunningServer, str]]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    async with fake_server(max_queued_requests=0, http_port=free_port(),
                           token_file=token_file) as served:
        yield served.engine, served.running, served.http_url


def _client(base_url: str, token: str = TOKEN) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=token, timeout=TIMEOUT_S,
                              max_retries=0)


def _count(running: RunningServer, method: str, code: str) -> float:
    return running.metrics.registry.get_sample_value(
        "tts_requests_total", {"protocol": "http", "method": method, "code": code}) or 0.0


async def test_wrong_token_raises_authentication_error(fake) -> None:  # type: ignore[no-untyped-def]
    _, running, base_url = fake
    async with _client(base_url, token="wrong") as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    assert "bearer token" in refused.value.message
    assert _count(running, "CreateSpeech", "UNAUTHENTICATED") == 1
    async with _client(base_url) as client:
        response = await client.audio.speech.create(model="tts-1", voice="af_bella",
                                                    input="Hi.", response_format="wav")
    assert response.content[:4] == b"RIFF"
    assert _count(running, "CreateSpeech", "OK") == 1


async def test_full_pool_raises_rate_limit_error_with_retry_after(fake) -> None:  # type: ignore[no-untyped-def]
    engine, running, base_url = fake
    engine.gate.clear()
    async with _client(base_url) as client:
        busy = asyncio.ensure_future(client.audio.speech.create(
            model="tts-1", voice="af_bella", input="Hello.", response_format="pcm"))
        await wait_until(lambda: running.scheduler.busy == 1)
        with pytest.raises(openai.RateLimitError) as refused:
            await client.audio.speech.create(model="tts-1", voice="af_bella", input="Hello.")
        assert int(refused.value.response.headers["retry-after"]) >= 1
        assert "retry" in refused.value.message
        engine.gate.set()
        assert len((await busy).content) == 2 * 2400  # the fake engine's 0.1 s tone
    assert _count(running, "CreateSpeech", "RESOURCE_EXHAUSTED") == 1


async def test_hang_up_stops_the_engine_and_frees_it(fake) -> None:  # type: ignore[no-untyped-def]
    engine, running, base_url = fake
    text = " ".join(f"Sentence number {n} is here." for n in range(40))
    engine.permits = threading.Semaphore(1)  # the engine may make one sentence, then waits
    async with _client(base_url) as client, \
            client.audio.speech.with_streaming_response.create(
                model="tts-1", voice="af_bella", input=text, response_format="pcm") as response:
        first = await asyncio.wait_for(anext(response.iter_bytes()), TIMEOUT_S)
        assert len(first) > 0
    engine.permits.release(1)  # the next sentence's audio finds the client gone
    await wait_until(lambda: _count(running, "CreateSpeech", "CANCELLED") == 1)
    engine.permits.release(40)  # let it run freely: only a stopped engine makes no more
    await wait_until(lambda: running.scheduler.busy == 0)
    assert len(engine.calls) <= 3


async def test_drain_lets_a_stream_in_flight_finish(fake) -> None:  # type: ignore[no-untyped-def]
    engine, running, base_url = fake
    engine.permits = threading.Semaphore(1)
    text = "One is here. Two is here. Three is here."
    async with _client(base_url) as client, \
            client.audio.speech.with_streaming_response.create(
                model="tts-1", voice="af_bella", input=text, response_format="pcm") as response:
        chunks = response.iter_bytes()
        received = len(await asyncio.wait_for(anext(chunks), TIMEOUT_S))
        stopping = asyncio.ensure_future(running.stop(grace_s=10))
        engine.permits.release(2)
        async for chunk in chunks:
            received += len(chunk)
    await asyncio.wait_for(stopping, TIMEOUT_S)
    assert received == 3 * 2 * 2400
    assert _count(running, "CreateSpeech", "OK") == 1


async def test_unknown_paths_get_openai_errors(fake) -> None:  # type: ignore[no-untyped-def]
    _, _, base_url = fake
    async with _client(base_url) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            await client.get("/audio/nothing", cast_to=object)
        assert "POST /v1/audio/speech" in missing.value.message
        with pytest.raises(openai.BadRequestError) as not_json:
            await client.post("/audio/speech", cast_to=object, body=["not", "an", "object"])
        assert "JSON object" in not_json.value.message


async def test_a_taken_http_port_stops_the_start_with_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot serve HTTP on port {port}"):
            async with fake_server(http_port=port):
                pass


async def test_http_uses_the_servers_tls_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    trusting = ssl.create_default_context(cafile=str(pki.ca_cert))
    async with fake_server(http_port=free_port(), tls_cert=pki.server_cert,
                           tls_key=pki.server_key) as served:
        base_url = served.http_url
        async with openai.AsyncOpenAI(
                base_url=base_url, api_key="unused", max_retries=0, timeout=TIMEOUT_S,
                http_client=openai.DefaultAsyncHttpxClient(verify=trusting)) as client:
            models = await client.models.list()
        assert "kokoro" in {model.id for model in models.data}
        async with _client(base_url) as untrusting:  # the system CAs do not know ours
            with pytest.raises(openai.APIConnectionError):
                await untrusting.models.list()


async def test_engine_failure_is_a_500_without_details_and_a_cut_stream_later(fake) -> None:  # type: ignore[no-untyped-def]
    _, running, base_url = fake
    async with _client(base_url) as client:
        with pytest.raises(openai.InternalServerError) as failed:
            await client.audio.speech.create(model="tts-1", voice="af_bella",
                                             input="Please explode now.")
        assert "server log" in failed.value.message
        assert "native failure" not in failed.value.message
        # Once audio has been sent, a failure cuts the connection: never a clean, short file.
        async with client.audio.speech.with_streaming_response.create(
                model="tts-1", voice="af_bella", input="Fine at first. Then explode.",
                response_format="pcm") as response:
            # The SDK hands the body over as its HTTP library (httpx2, its dependency) reads it.
            with pytest.raises(httpx2.RemoteProtocolError):
                async for _ in response.iter_bytes():
                    pass
    assert _count(running, "CreateSpeech", "INTERNAL") == 2
    assert running.scheduler.busy == 0


async def test_text_that_is_not_unicode_is_a_400_before_any_engine_work(fake) -> None:  # type: ignore[no-untyped-def]
    engine, running, _ = fake
    # Legal JSON whose string holds a lone surrogate, as a hostile client can send it.
    body = b'{"model": "tts-1", "voice": "af_bella", "input": "\\ud800 hi"}'
    reader, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    writer.write(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nAuthorization: Bearer " + TOKEN.encode() +
                 b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), TIMEOUT_S)
    answer = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    writer.close()
    assert status.startswith(b"HTTP/1.1 400"), status
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["param"] == "input" and "not valid Unicode" in error["message"]
    assert engine.calls == []
    assert _count(running, "CreateSpeech", "INVALID_ARGUMENT") == 1


async def test_a_client_gone_mid_body_is_cancelled_not_an_internal_error(
        fake, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    _, running, _ = fake
    _, writer = await asyncio.open_connection("127.0.0.1", running.http_port)
    writer.write(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nAuthorization: Bearer " + TOKEN.encode() +
                 b"\r\nContent-Length: 1000\r\n\r\n" + b'{"model": "tts-1", "inp')
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()  # half the body, then gone
    await wait_until(lambda: _count(running, "CreateSpeech", "CANCELLED") == 1)
    assert _count(running, "CreateSpeech", "INTERNAL") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text
