"""Edges of the service that a happy path never reaches (fast tier)."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tts_api.v1 import tts_pb2
from tts_service.server import SERVICE_NAME, StartupError

from .fakes import TIMEOUT_S, fake_server

TOKEN = "token-from-the-environment"


async def test_an_oversized_request_is_refused_and_the_server_keeps_serving() -> None:
    async with fake_server(max_text_chars=10) as served:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="a" * 100_000),
                                         timeout=TIMEOUT_S)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "message larger than max" in (refused.value.details() or "")
        assert served.engine.calls == []
        ok = await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Short."),
                                          timeout=TIMEOUT_S)
        assert ok.audio_duration_seconds > 0


async def test_listening_beyond_loopback_without_tls_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    # 192.0.2.1 is a documentation address: never this machine's, so nothing is exposed and
    # the bind fails after the warning.
    with pytest.raises(StartupError, match=re.escape("cannot listen on 192.0.2.1:")):
        async with fake_server(host="192.0.2.1"):
            pass
    assert "listening on 192.0.2.1 without TLS" in caplog.text
    caplog.clear()
    async with fake_server():
        pass
    assert "without TLS" not in caplog.text


async def test_the_server_takes_its_token_from_tts_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_TOKEN", TOKEN)
    async with fake_server() as served:
        request = tts_pb2.SynthesizeRequest(text="Hi.")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub.Synthesize(request, timeout=TIMEOUT_S)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = await served.stub.Synthesize(request, timeout=TIMEOUT_S,
                                          metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert ok.audio_duration_seconds > 0


async def test_reflection_stays_open_on_a_token_protected_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_TOKEN", TOKEN)
    async with fake_server() as served:
        stub = reflection_pb2_grpc.ServerReflectionStub(served.channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=TIMEOUT_S)
        answer = await asyncio.wait_for(call.read(), TIMEOUT_S)
        call.cancel()
    assert SERVICE_NAME in {s.name for s in answer.list_services_response.service}


@pytest.mark.parametrize(("config", "said"), [
    (tts_pb2.SynthesisConfig(), "It costs five dollars."),
    (tts_pb2.SynthesisConfig(normalize_text=True), "It costs five dollars."),
    (tts_pb2.SynthesisConfig(normalize_text=False), "It costs $5."),
], ids=["unset", "on", "off"])
async def test_normalize_text_is_on_unless_switched_off(config: tts_pb2.SynthesisConfig,
                                                        said: str) -> None:
    async with fake_server() as served:
        await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="It costs $5.",
                                                               config=config),
                                     timeout=TIMEOUT_S)
    assert served.engine.calls == [said]


async def test_a_request_that_is_not_utf8_is_invalid_argument_and_counted() -> None:
    """protobuf refuses a string field that is not UTF-8; grpc alone would answer UNKNOWN."""
    async with fake_server() as served:
        raw = served.channel.unary_unary(f"/{SERVICE_NAME}/Synthesize",
                                         request_serializer=bytes,
                                         response_deserializer=bytes)
        text_field = tts_pb2.SynthesizeRequest.DESCRIPTOR.fields_by_name["text"].number
        surrogate = b"\xed\xa0\x80"  # U+D800 as WTF-8: never valid UTF-8
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw(bytes([text_field << 3 | 2, 4]) + surrogate + b"a", timeout=TIMEOUT_S)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "UTF-8" in (refused.value.details() or "")
        assert served.engine.calls == []
        assert served.count("Synthesize", "INVALID_ARGUMENT") == 1
        ok = await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Fine."),
                                          timeout=TIMEOUT_S)
        assert ok.audio_duration_seconds > 0


def test_every_error_a_caller_is_told_about_has_its_own_outcome() -> None:
    """A ServiceError is the caller's to act on: none may fall through to INTERNAL."""
    from tts_service import errors
    from tts_service.calls.outcomes import Code, classify

    kinds = [cls for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.ServiceError)
             and cls is not errors.ServiceError]
    assert len(kinds) >= 6
    for kind in kinds:
        error = kind("f", "m") if kind in (errors.InvalidRequest, errors.Unsupported) else \
            kind("m", 1.0) if kind is errors.Overloaded else kind("m")
        outcome = classify(error)
        assert outcome.code is not Code.INTERNAL and not outcome.unexpected, kind
        assert outcome.message == "m", kind
    assert classify(errors.CallerGone("gone")).code is Code.CANCELLED
    assert classify(RuntimeError("bug")).unexpected
