"""The real server under hostile input, overload, abandoned calls and shutdown (loopback only)."""

from __future__ import annotations

import asyncio
import math
import re
import signal
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.servers import ServerProcess, start_server
from harness.speech import pcm16_to_float
from tts_api.v1 import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.model

TIMEOUT_S = 60
LONG_TEXT = " ".join(f"This is sentence number {n} of a long text nobody will hear."
                     for n in range(1, 31))
PROPER_FAILURES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _peak_rss_mb(server: ServerProcess) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    text=st.one_of(
        st.text(max_size=60),
        st.text(st.characters(codec="utf-8"), max_size=30).map(lambda t: t + " okay."),
        st.sampled_from(["", " ", "\u202eevil\u202c", "e\u0301\u0301\u0301", "🙂🙂 yes",
                         "a" * 400, "\x00\x07 bell", "٣٤٥ مرحبا", "ﷺ" * 5, "$" * 50]),
    ),
    speed=st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.sampled_from([0.5, 1.0, 2.0])),
    encoding=st.integers(min_value=-3, max_value=12),
    rate=st.one_of(st.integers(min_value=-10, max_value=200000),
                   st.sampled_from([0, 8000, 16000, 44100])),
    gain=st.floats(allow_nan=True, allow_infinity=True, width=32),
    normalize=st.booleans(),
)
def test_fuzzed_requests_end_ok_or_with_a_proper_error(
        server: ServerProcess, text: str, speed: float, encoding: int, rate: int, gain: float,
        normalize: bool) -> None:
    request = tts_pb2.SynthesizeRequest(text=text, config=tts_pb2.SynthesisConfig(
        speed=speed, encoding=encoding,  # type: ignore[arg-type]
        sample_rate_hertz=rate, volume_gain_db=gain, normalize_text=normalize))

    async def call() -> None:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
            try:
                await stub.Synthesize(request, timeout=TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                assert error.code() in PROPER_FAILURES, (error.code(), error.details())
                assert "Traceback" not in (error.details() or "")

    asyncio.run(call())


async def test_server_answers_after_fuzzing(stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Still fine."),
                                     timeout=TIMEOUT_S)
    assert response.audio_duration_seconds > 0.3


async def test_overload_sheds_load_and_recovers() -> None:
    """24 clients against 1 engine with 2 waiting places, for a bounded time."""
    server = start_server("--engines", "1", "--engine-threads", "2",
                          "--max-queued-requests", "2")
    clients, duration_s = 24, 20.0
    outcomes: Counter[str] = Counter()
    try:
        rss_idle_mb = _peak_rss_mb(server)
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
            stop_at = time.monotonic() + duration_s

            async def client(n: int) -> None:
                while time.monotonic() < stop_at:
                    request = tts_pb2.SynthesizeRequest(text=f"Client {n} says hello there.")
                    try:
                        await stub.Synthesize(request, timeout=TIMEOUT_S)
                        outcomes["OK"] += 1
                    except grpc.aio.AioRpcError as error:
                        outcomes[error.code().name] += 1
                        await asyncio.sleep(0.2)

            await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(clients))),
                                   duration_s + 2 * TIMEOUT_S)
            after = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Back to normal."),
                                          timeout=TIMEOUT_S)
        rss_peak_mb = _peak_rss_mb(server)
    finally:
        assert server.stop() == 0
    print(f"\nload: {clients} clients for {duration_s:.0f} s against 1 engine: {dict(outcomes)}, "
          f"peak RSS {rss_peak_mb:.0f} MB (idle {rss_idle_mb:.0f} MB)")
    assert set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}, outcomes
    assert outcomes["OK"] >= 3 and outcomes["RESOURCE_EXHAUSTED"] >= clients
    assert rss_peak_mb < rss_idle_mb + 600
    assert after.audio_duration_seconds > 0.3


async def test_abandoned_stream_frees_its_engine_after_one_sentence() -> None:
    server = start_server("--engines", "1", "--max-queued-requests", "4")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
            call = stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text=LONG_TEXT),
                                         timeout=TIMEOUT_S)
            first = await asyncio.wait_for(call.read(), TIMEOUT_S)
            assert first.chunk.text_span.text.startswith("This is sentence number 1 ")
            call.cancel()
            # With one engine, this waits for the abandoned text unless it was stopped.
            response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="My turn now."),
                                             timeout=TIMEOUT_S)
            assert response.audio_duration_seconds > 0.3
    finally:
        assert server.stop() == 0
    log = "".join(server.log)
    stopped = re.search(r"stopped early: engine back in the pool after (\d+) of (\d+)", log)
    assert stopped is not None, log
    done, total = int(stopped.group(1)), int(stopped.group(2))
    assert total == 30 and done <= 3, log
    # The abandoned stream was logged as cancelled before the next request was served.
    assert log.index("status=CANCELLED") < log.index("text_chars=12 ")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_lets_the_stream_in_flight_finish_and_refuses_new_calls(
        signum: signal.Signals) -> None:
    server = start_server("--shutdown-grace", "60", "--engines", "1")
    text = "First of four sentences. Second one here. Third one here. And the fourth."
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
        call = stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text=text), timeout=TIMEOUT_S)
        messages = [(await asyncio.wait_for(call.read(), TIMEOUT_S)).chunk]
        server.process.send_signal(signum)
        await asyncio.sleep(0.5)  # the server enters shutdown

        async with grpc.aio.insecure_channel(server.address) as late_channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await tts_pb2_grpc.TextToSpeechServiceStub(late_channel).Synthesize(
                    tts_pb2.SynthesizeRequest(text="Too late."), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        while (message := await asyncio.wait_for(call.read(), TIMEOUT_S)) is not \
                grpc.aio.EOF:
            messages.append(message.chunk)
        assert await call.code() == grpc.StatusCode.OK
    assert server.process.wait(TIMEOUT_S) == 0
    spans = [m.text_span.text for m in messages if m.HasField("text_span")]
    assert spans[-1] == "And the fourth."
    assert math.isclose(sum(m.audio_duration_seconds for m in messages),
                        len(pcm16_to_float(b"".join(m.audio for m in messages))) / 24000,
                        rel_tol=0.01)


async def test_a_call_outliving_the_grace_period_is_cut_and_the_server_still_exits() -> None:
    grace_s = 1.0
    server = start_server("--shutdown-grace", str(grace_s), "--engines", "1")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = tts_pb2_grpc.TextToSpeechServiceStub(channel).SynthesizeStream(
                tts_pb2.SynthesizeStreamRequest(text=LONG_TEXT), timeout=TIMEOUT_S)
            await asyncio.wait_for(call.read(), TIMEOUT_S)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(grpc.aio.AioRpcError) as cut:
                while await asyncio.wait_for(call.read(), TIMEOUT_S) is not grpc.aio.EOF:
                    pass
            cut_after_s = time.monotonic() - signalled
        assert server.process.wait(TIMEOUT_S) == 0
    finally:
        server.stop()
    assert cut.value.code() == grpc.StatusCode.UNAVAILABLE, cut.value
    # The call ends at the grace period, give or take one sentence on a busy machine.
    assert grace_s <= cut_after_s < grace_s + 20, cut_after_s
    log = "".join(server.log)
    assert "method=SynthesizeStream status=CANCELLED" in log
    assert "pieces=30/30" not in log
    # grpc may then print the cut handler's CancelledError (traceback.print_exc in its
    # _schedule_rpc_coro): noise from grpc itself, after our own lines.
    assert " stopped\n" in log


def test_a_stop_signal_as_soon_as_it_says_serving_is_a_clean_stop() -> None:
    # A supervisor may signal the moment it reads the "serving" line.
    server = start_server("--engines", "1")
    assert server.stop() == 0, "".join(server.log)
    assert "".join(server.log).rstrip().endswith("stopped")


async def test_health_goes_not_serving_on_shutdown() -> None:
    server = start_server("--shutdown-grace", "5")
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(
            health_pb2.HealthCheckRequest(service="tts_api.v1.TextToSpeechService"),
            timeout=TIMEOUT_S)
        first = await asyncio.wait_for(watch.read(), TIMEOUT_S)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        # A stream in flight keeps the server in its grace period while we watch health.
        call = tts_pb2_grpc.TextToSpeechServiceStub(channel).SynthesizeStream(
            tts_pb2.SynthesizeStreamRequest(text=LONG_TEXT), timeout=TIMEOUT_S)
        await asyncio.wait_for(call.read(), TIMEOUT_S)
        server.process.send_signal(signal.SIGTERM)
        second = await asyncio.wait_for(watch.read(), TIMEOUT_S)
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        call.cancel()
    assert server.process.wait(TIMEOUT_S) == 0
