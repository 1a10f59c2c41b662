"""StreamingSynthesize's protocol on a real gRPC port with a fake engine: order, flushes,
limits and errors. Whether the audio says the text is tests/test_streaming_speech.py's job."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.server import RunningServer

from .fakes import TIMEOUT_S, FakeEngine, fake_server, wait_until

Fake = tuple[FakeEngine, RunningServer, tts_pb2_grpc.TextToSpeechServiceStub]


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    async with fake_server(max_text_chars=200, streaming_idle_timeout_s=1.0,
                           streaming_max_wait_s=0.3) as served:
        yield served.engine, served.running, served.stub


def config_message(**fields: Any) -> tts_pb2.StreamingSynthesizeRequest:
    return tts_pb2.StreamingSynthesizeRequest(config=tts_pb2.SynthesisConfig(**fields))


def text_message(text: str, flush: bool = False) -> tts_pb2.StreamingSynthesizeRequest:
    return tts_pb2.StreamingSynthesizeRequest(text=text, flush=flush)


async def read(call: grpc.aio.StreamStreamCall) -> tts_pb2.StreamingSynthesizeResponse:
    response = await asyncio.wait_for(call.read(), TIMEOUT_S)
    assert response is not grpc.aio.EOF, "the stream ended early"
    return response


async def read_rest(call: grpc.aio.StreamStreamCall) -> list[tts_pb2.StreamingSynthesizeResponse]:
    """Every response until the end (read() only: grpc does not mix it with `async for`)."""
    responses = []
    while (response := await asyncio.wait_for(call.read(), TIMEOUT_S)) is not grpc.aio.EOF:
        responses.append(response)
    return responses


async def fails_with(call: grpc.aio.StreamStreamCall, code: grpc.StatusCode,
                     field: str | None = None) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await read_rest(call)
    assert failed.value.code() == code, failed.value.details()
    if field is not None:
        status = rpc_status.from_call(failed.value)  # type: ignore[arg-type]
        assert status is not None
        bad = error_details_pb2.BadRequest()
        assert any(detail.Unpack(bad) for detail in status.details)
        assert [v.field for v in bad.field_violations] == [field]
    return failed.value.details() or ""


def count(running: RunningServer, code: str) -> float | None:
    return running.metrics.registry.get_sample_value(
        "tts_requests_total", {"protocol": "grpc", "method": "StreamingSynthesize", "code": code})


async def test_pieces_become_sentences_in_text_order_with_offsets_into_all_text(
        fake: Fake) -> None:
    engine, running, stub = fake
    text = "Hello there. Dr. Smith paid 3.50 dollars today! Is that fine"
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message(voice="am_adam"))
    for at in range(0, len(text), 3):
        await call.write(text_message(text[at:at + 3]))
    await call.done_writing()
    responses = await read_rest(call)
    spans = [r.chunk.text_span for r in responses if r.chunk.HasField("text_span")]
    assert [s.text for s in spans] == ["Hello there.", "Dr. Smith paid 3.50 dollars today!",
                                       "Is that fine"]
    assert all(text[s.start_offset:s.end_offset] == s.text for s in spans)
    assert [r.chunk.sequence_number for r in responses] == list(range(len(responses)))
    assert len(engine.calls) == len(spans)  # one synthesis per piece (normalized text)
    assert not any(r.flush_done for r in responses)
    await wait_until(lambda: count(running, "OK") == 1)


async def test_first_sentence_is_spoken_before_the_text_is_finished(fake: Fake) -> None:
    _, _, stub = fake
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    await call.write(text_message("First sentence. Sec"))
    first = await read(call)
    assert first.chunk.text_span.text == "First sentence."
    await call.write(text_message("ond one."))
    await call.done_writing()
    rest = await read_rest(call)
    assert [r.chunk.text_span.text for r in rest] == ["Second one."]


async def test_flush_speaks_mid_sentence_and_reports_when_done(fake: Fake) -> None:
    _, _, stub = fake
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    await call.write(text_message("Well, I think", flush=True))
    spoken = await read(call)
    assert spoken.chunk.text_span.text == "Well, I think"
    done = await read(call)
    assert done.flush_done and not done.HasField("chunk")
    await call.write(text_message("", flush=True))  # nothing buffered: reported at once
    assert (await read(call)).flush_done
    await call.write(text_message(" so."))
    await call.done_writing()
    rest = await read_rest(call)
    assert [r.chunk.text_span.text for r in rest] == ["so."]
    assert rest[0].chunk.sequence_number == 1
    assert rest[0].chunk.audio_offset_seconds == pytest.approx(0.1)


async def test_flush_on_the_config_message_is_done_at_once(fake: Fake) -> None:
    _, _, stub = fake
    first = tts_pb2.StreamingSynthesizeRequest(config=tts_pb2.SynthesisConfig(), flush=True)
    call = stub.StreamingSynthesize(iter([first, text_message("Hi.")]), timeout=TIMEOUT_S)
    responses = await read_rest(call)
    assert responses[0].flush_done and not responses[0].HasField("chunk")
    assert [r.chunk.text_span.text for r in responses[1:]] == ["Hi."]


async def test_text_without_a_sentence_end_is_spoken_after_the_max_wait(fake: Fake) -> None:
    _, _, stub = fake
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await call.write(text_message("and so, as I was saying"))
    first = await read(call)
    assert first.chunk.text_span.text == "and so,"  # the best break: the clause mark
    assert loop.time() - sent_at >= 0.3
    # The rest has waited as long, so it goes at once up to its last space: "saying" may
    # be half a word.
    assert (await read(call)).chunk.text_span.text == "as I was"
    await call.done_writing()
    assert [r.chunk.text_span.text for r in await read_rest(call)] == ["saying"]


async def test_half_close_without_any_text_ends_the_call_without_audio(fake: Fake) -> None:
    engine, running, stub = fake
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    await call.done_writing()
    assert await read_rest(call) == []
    assert await call.code() == grpc.StatusCode.OK
    assert engine.calls == []
    assert running.scheduler.busy == 0


async def test_wav_stream_is_one_file_across_runs(fake: Fake) -> None:
    _, _, stub = fake
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message(encoding=tts_pb2.AUDIO_ENCODING_WAV))
    await call.write(text_message("One.", flush=True))
    await call.write(text_message(" Two."))
    await call.done_writing()
    chunks = [r.chunk for r in await read_rest(call) if r.HasField("chunk")]
    assert chunks[0].audio.startswith(b"RIFF")
    assert not any(c.audio.startswith(b"RIFF") for c in chunks[1:])
    assert {c.encoding for c in chunks} == {tts_pb2.AUDIO_ENCODING_WAV}


@pytest.mark.parametrize(("messages", "field", "words"), [
    ([text_message("Hello.")], "config", "first message must carry config"),
    ([config_message(speed=3.0)], "config.speed", "outside [0.5, 2.0]"),
    ([config_message(voice="nobody")], "config.voice", "unknown voice"),
    ([config_message(sample_rate_hertz=1000)], "config.sample_rate_hertz", "1000"),
    ([config_message(), text_message("Hi. "), config_message()], "config",
     "only in the first message"),
    ([config_message(), text_message("a" * 150), text_message("b" * 51)], "text",
     "at most 200"),
])
async def test_bad_messages_are_invalid_argument_naming_the_field(
        fake: Fake, messages: list[tts_pb2.StreamingSynthesizeRequest], field: str,
        words: str) -> None:
    _, running, stub = fake
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    # Written one by one and never half-closed: nothing the client does races the refusal.
    for message in messages:
        await call.write(message)
    assert words in await fails_with(call, grpc.StatusCode.INVALID_ARGUMENT, field)
    # Counted once the handler has finished, which may be just after the client hears.
    await wait_until(lambda: count(running, "INVALID_ARGUMENT") == 1)
    await wait_until(lambda: running.scheduler.busy == 0)
    ok = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Still here."),
                               timeout=TIMEOUT_S)
    assert ok.audio_duration_seconds > 0


async def test_a_call_that_ends_before_any_message_is_invalid_argument(fake: Fake) -> None:
    _, _, stub = fake
    call = stub.StreamingSynthesize(iter([]), timeout=TIMEOUT_S)
    assert "before its first message" in await fails_with(
        call, grpc.StatusCode.INVALID_ARGUMENT, "config")


async def test_idle_caller_is_ended_with_deadline_exceeded(fake: Fake) -> None:
    _, running, stub = fake
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    await call.write(text_message("Spoken first. Then nothing more"))
    assert (await read(call)).chunk.text_span.text == "Spoken first."
    details = await fails_with(call, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert "no message and no audio for 1 s" in details
    await wait_until(lambda: count(running, "DEADLINE_EXCEEDED") == 1)
    await wait_until(lambda: running.scheduler.busy == 0)


async def test_audio_still_flowing_keeps_a_silent_caller_open(fake: Fake) -> None:
    engine, _, stub = fake
    engine.permits = threading.Semaphore(0)
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    await call.write(text_message("One. Two. Three. Four.", flush=True))
    for expected in ("One.", "Two.", "Three.", "Four."):
        await asyncio.sleep(0.6)  # 2.4 s in all without a message: past the 1 s idle timeout
        engine.permits.release()
        assert (await read(call)).chunk.text_span.text == expected
    assert (await read(call)).flush_done
    await call.done_writing()
    assert await read_rest(call) == []


async def test_empty_messages_keep_a_call_open(fake: Fake) -> None:
    _, _, stub = fake
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    for _ in range(4):  # 1.6 s in all, longer than the 1 s idle timeout
        await asyncio.sleep(0.4)
        await call.write(tts_pb2.StreamingSynthesizeRequest())
    await call.write(text_message("Still open."))
    await call.done_writing()
    assert [r.chunk.text_span.text for r in await read_rest(call)] == ["Still open."]


async def test_cancel_mid_text_stops_the_engine_and_frees_it(fake: Fake) -> None:
    engine, running, stub = fake
    engine.permits = threading.Semaphore(1)  # the engine may make one sentence, then waits
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    await call.write(text_message(" ".join(f"Sentence {n} is here." for n in range(8))))
    assert (await read(call)).chunk.text_span.text == "Sentence 0 is here."
    await call.write(text_message(" And more text is on its way"))
    call.cancel()
    await wait_until(lambda: count(running, "CANCELLED") == 1)
    engine.permits.release(20)  # let it run freely: only a stopped engine makes no more
    await wait_until(lambda: running.scheduler.busy == 0)
    # The engine stopped at the sentence it was in (or about to start) when the client
    # left, not after the 8 it had.
    assert len(engine.calls) <= 2
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Next one."),
                                     timeout=TIMEOUT_S)
    assert response.audio_duration_seconds == pytest.approx(0.1, abs=0.01)


async def test_full_pool_refuses_a_streaming_call_with_resource_exhausted(fake: Fake) -> None:
    engine, running, stub = fake
    engine.gate.clear()
    busy = asyncio.ensure_future(stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hello."),
                                                 timeout=TIMEOUT_S))
    await wait_until(lambda: running.scheduler.busy == 1)
    queued = asyncio.ensure_future(stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hi."),
                                                   timeout=TIMEOUT_S))
    await wait_until(lambda: running.scheduler.waiting == 1)
    call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
    await call.write(config_message())
    # Refused as its config is accepted, before the response headers: a client waiting for
    # them never writes text into a refused call.
    assert "x-request-id" not in dict(await asyncio.wait_for(call.initial_metadata(), TIMEOUT_S))
    assert "retry" in await fails_with(call, grpc.StatusCode.RESOURCE_EXHAUSTED)
    engine.gate.set()
    await asyncio.wait_for(asyncio.gather(busy, queued), TIMEOUT_S)


async def test_a_live_call_that_has_spoken_is_never_refused_later() -> None:
    """It holds its admission for its life: more text on a busy server waits, then is said."""
    async with fake_server(max_queued_requests=0) as served:
        engine, running, stub = served.engine, served.running, served.stub
        call = stub.StreamingSynthesize(timeout=TIMEOUT_S)
        await call.write(config_message())
        await call.write(text_message("First part.", flush=True))
        assert (await read(call)).chunk.text_span.text == "First part."
        assert (await read(call)).flush_done
        engine.gate.clear()  # another caller takes the only engine and holds it
        await wait_until(lambda: running.scheduler.busy == 0)
        other = asyncio.ensure_future(stub.Synthesize(
            tts_pb2.SynthesizeRequest(text="Other caller."), timeout=TIMEOUT_S))
        await wait_until(lambda: running.scheduler.busy == 1)
        await call.write(text_message(" Second part.", flush=True))
        await asyncio.sleep(0.1)
        engine.gate.set()
        assert (await read(call)).chunk.text_span.text == "Second part."
        assert (await read(call)).flush_done
        await call.done_writing()
        assert await read_rest(call) == []
        assert (await other).audio_duration_seconds > 0
        assert served.count("StreamingSynthesize", "OK") == 1


async def test_streaming_call_needs_the_token_like_the_others(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    async with fake_server(token_file=token_file) as served:
        # Refused before any message is read: writing one would race the refusal on the
        # client's side (and then report the failed write instead of the status).
        refused = served.stub.StreamingSynthesize(timeout=TIMEOUT_S)
        await fails_with(refused, grpc.StatusCode.UNAUTHENTICATED)
        allowed = served.stub.StreamingSynthesize(
            iter([config_message(), text_message("Hello.")]), timeout=TIMEOUT_S,
            metadata=(("authorization", "Bearer s3cret"),))
        assert [r.chunk.text_span.text for r in await read_rest(allowed)] == ["Hello."]


async def test_server_info_reports_the_streaming_limits(fake: Fake) -> None:
    _, _, stub = fake
    info = await stub.GetServerInfo(tts_pb2.GetServerInfoRequest(), timeout=TIMEOUT_S)
    assert info.streaming_idle_timeout_seconds == 1.0
    assert info.streaming_max_wait_seconds == pytest.approx(0.3)


async def test_headers_come_only_once_the_config_is_accepted(fake: Fake) -> None:
    _, _, stub = fake
    call = stub.StreamingSynthesize(metadata=(("x-request-id", "live-1"),))
    waiting = asyncio.ensure_future(call.initial_metadata())
    await asyncio.sleep(0.3)
    assert not waiting.done()  # nothing accepted yet
    await call.write(config_message(voice="af_bella"))
    assert ("x-request-id", "live-1") in tuple(await asyncio.wait_for(waiting, TIMEOUT_S))
    await call.done_writing()
    assert await read_rest(call) == []


async def test_a_refused_config_ends_the_call_before_any_headers(fake: Fake) -> None:
    _, _, stub = fake
    call = stub.StreamingSynthesize()
    await call.write(config_message(voice="zz_nobody"))
    # A client waiting for the headers learns of the refusal without writing any text.
    assert "x-request-id" not in dict(await asyncio.wait_for(call.initial_metadata(), TIMEOUT_S))
    assert await asyncio.wait_for(call.code(), TIMEOUT_S) == grpc.StatusCode.INVALID_ARGUMENT
