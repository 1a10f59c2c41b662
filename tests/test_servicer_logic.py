"""Servicer logic on a real gRPC port with a fake engine: pool limits, cancellation, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.server import RunningServer

from .fakes import TIMEOUT_S, FakeEngine, fake_server, wait_until


@pytest.fixture
async def fake(
) -> AsyncIterator[tuple[FakeEngine, RunningServer, tts_pb2_grpc.TextToSpeechServiceStub]]:
    async with fake_server() as served:
        yield served.engine, served.running, served.stub


def _server_saw(running: RunningServer, method: str, code: str) -> bool:
    return running.metrics.registry.get_sample_value(
        "tts_requests_total", {"protocol": "grpc", "method": method, "code": code}) == 1


async def test_full_pool_and_queue_refuse_at_once_with_a_retry_hint(fake) -> None:  # type: ignore[no-untyped-def]
    engine, running, stub = fake
    engine.gate.clear()
    request = tts_pb2.SynthesizeRequest(text="Hello.")
    busy = asyncio.ensure_future(stub.Synthesize(request, timeout=TIMEOUT_S))
    await wait_until(lambda: running.scheduler.busy == 1)
    queued = asyncio.ensure_future(stub.Synthesize(request, timeout=TIMEOUT_S))
    await wait_until(lambda: running.scheduler.waiting == 1)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Synthesize(request, timeout=TIMEOUT_S)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry" in (refused.value.details() or "")
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert retry.retry_delay.seconds >= 1

    engine.gate.set()
    assert len((await busy).audio) > 0
    assert len((await queued).audio) > 0


async def test_cancelled_stream_stops_the_engine_and_frees_it(fake) -> None:  # type: ignore[no-untyped-def]
    engine, running, stub = fake
    text = " ".join(f"Sentence number {n} is here." for n in range(40))
    engine.permits = threading.Semaphore(1)  # the engine may make one sentence, then waits
    call = stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text=text), timeout=TIMEOUT_S)
    first = await asyncio.wait_for(call.read(), TIMEOUT_S)
    assert first.chunk.text_span.text == "Sentence number 0 is here."
    call.cancel()
    await wait_until(lambda: _server_saw(running, "SynthesizeStream", "CANCELLED"))
    engine.permits.release(40)  # let it run freely: only a stopped engine makes no more
    await wait_until(lambda: running.scheduler.busy == 0)
    # Each engine finished at most the sentence it was in when the client left (the first
    # one is done; another may have started the next), not the 40 it was given.
    assert 1 <= len(engine.calls) <= 1 + running.scheduler.size
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Next one."),
                                     timeout=TIMEOUT_S)
    assert response.audio_duration_seconds == pytest.approx(0.1, abs=0.01)


async def test_deadline_stops_the_engine_and_is_recorded_as_such(fake) -> None:  # type: ignore[no-untyped-def]
    engine, running, stub = fake
    engine.gate.clear()
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await stub.Synthesize(tts_pb2.SynthesizeRequest(text="One. Two. Three. Four."),
                              timeout=0.3)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_until(lambda: _server_saw(running, "Synthesize", "DEADLINE_EXCEEDED"))
    engine.gate.set()
    await wait_until(lambda: running.scheduler.busy == 0)
    assert len(engine.calls) <= 1


async def test_engine_failure_is_internal_without_details_and_server_survives(fake) -> None:  # type: ignore[no-untyped-def]
    _, running, stub = fake
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Please explode now."),
                              timeout=TIMEOUT_S)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    details = failed.value.details() or ""
    assert "native failure" not in details and "Traceback" not in details
    assert "server log" in details
    # The engine left the rotation and came back rebuilt: the server keeps serving.
    await wait_until(lambda: running.scheduler.in_rotation == 1)
    assert running.metrics.registry.get_sample_value(
        "tts_engine_failures_total", {"engine": "0"}) == 1
    ok = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Fine."), timeout=TIMEOUT_S)
    assert ok.audio_duration_seconds > 0
    assert running.scheduler.busy == 0


async def test_with_no_engine_left_the_server_is_not_serving_and_refuses_calls(
        caplog: pytest.LogCaptureFixture) -> None:
    async with fake_server(rebuild_fails=True) as served:
        health = health_pb2_grpc.HealthStub(served.channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Please explode."),
                                         timeout=TIMEOUT_S)

        async def status() -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
            return int(reply.status)

        for _ in range(100):
            if await status() == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.02)
        assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hi."),
                                         timeout=TIMEOUT_S)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no engine is working" in (refused.value.details() or "")
        assert served.running.metrics.registry.get_sample_value(
            "tts_engines_in_rotation") == 0
    assert "engine 0 could not be rebuilt (the model files are gone)" in caplog.text


async def test_stream_spans_follow_the_text_even_across_clause_splits(fake) -> None:  # type: ignore[no-untyped-def]
    _, _, stub = fake
    text = ("This first sentence is rather long, because it keeps going with clause after "
            "clause, so that the first audio would otherwise wait for all of it. Short one.")
    call = stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text=text), timeout=TIMEOUT_S)
    spans = [m.chunk.text_span async for m in call if m.chunk.HasField("text_span")]
    assert len(spans) >= 3
    assert spans[0].end_offset < text.index(".")  # the first sentence was cut at a clause
    assert all(text[s.start_offset:s.end_offset] == s.text for s in spans)
    assert spans[-1].text == "Short one."


async def test_request_id_is_echoed(fake) -> None:  # type: ignore[no-untyped-def]
    _, _, stub = fake
    call = stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hi."), timeout=TIMEOUT_S,
                           metadata=(("x-request-id", "abc-123"),))
    await call
    assert ("x-request-id", "abc-123") in tuple(await call.initial_metadata())


async def test_a_stream_sends_a_sentences_audio_while_the_next_is_being_made(fake) -> None:  # type: ignore[no-untyped-def]
    engine, running, stub = fake
    engine.permits = threading.Semaphore(1)  # one sentence, then the engine waits
    call = stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text="One is here. Two is "
                                                                      "here."), timeout=TIMEOUT_S)
    first = await asyncio.wait_for(call.read(), TIMEOUT_S)
    assert first.chunk.text_span.text == "One is here."
    # The second sentence cannot be done yet: the first's audio did not wait for it.
    await wait_until(lambda: running.scheduler.busy == 1)
    assert engine.calls == ["One is here."]
    engine.permits.release()
    second = await asyncio.wait_for(call.read(), TIMEOUT_S)
    assert second.chunk.text_span.text == "Two is here."
    while await asyncio.wait_for(call.read(), TIMEOUT_S) is not grpc.aio.EOF:
        pass
