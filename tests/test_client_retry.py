"""The client's service config: which failures it retries, on a scripted loopback server.

A servicer that fails on cue stands in for replicas here, since the subject is the client's
retry policy (gRPC's, configured in tts_client/client.py), not synthesis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from tts_api.v1 import tts_pb2
from tts_client.client import SERVICE_CONFIG, TtsClient

TIMEOUT_S = 10
_SERVICE = tts_pb2.DESCRIPTOR.services_by_name["TextToSpeechService"].full_name


class ScriptedSynthesize:
    """Answers Synthesize with the next scripted status, then OK; records each attempt."""

    def __init__(self) -> None:
        self.script: list[tuple[grpc.StatusCode, bool]] = []  # (code, headers sent first)
        self.attempts: list[str] = []  # grpc-previous-rpc-attempts of each attempt

    async def synthesize(self, request: tts_pb2.SynthesizeRequest,
                         context: grpc.aio.ServicerContext) -> tts_pb2.SynthesizeResponse:
        metadata = dict(context.invocation_metadata() or ())
        self.attempts.append(str(metadata.get("grpc-previous-rpc-attempts", "0")))
        if self.script:
            code, headers_first = self.script.pop(0)
            if headers_first:  # as a server that has taken the call on
                await context.send_initial_metadata((("x-request-id", "scripted"),))
            await context.abort(code, f"scripted {code.name}")
        return tts_pb2.SynthesizeResponse(audio=b"RIFF", audio_duration_seconds=1.0)


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedSynthesize, str]]:
    servicer = ScriptedSynthesize()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, {
        "Synthesize": grpc.unary_unary_rpc_method_handler(
            servicer.synthesize, request_deserializer=tts_pb2.SynthesizeRequest.FromString,
            response_serializer=tts_pb2.SynthesizeResponse.SerializeToString),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


async def _call(target: str) -> grpc.StatusCode:
    async with TtsClient(target, timeout_s=TIMEOUT_S) as client:
        try:
            await client.synthesize(tts_pb2.SynthesizeRequest(text="Hello."))
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def test_unavailable_before_the_call_is_taken_on_is_retried(scripted) -> None:  # type: ignore[no-untyped-def]
    servicer, target = scripted
    servicer.script = [(grpc.StatusCode.UNAVAILABLE, False)] * 2
    assert await _call(target) == grpc.StatusCode.OK
    assert servicer.attempts == ["0", "1", "2"]


async def test_retries_stop_at_the_policy_limit(scripted) -> None:  # type: ignore[no-untyped-def]
    servicer, target = scripted
    servicer.script = [(grpc.StatusCode.UNAVAILABLE, False)] * 10
    assert await _call(target) == grpc.StatusCode.UNAVAILABLE
    max_attempts = SERVICE_CONFIG["methodConfig"][0]["retryPolicy"]["maxAttempts"]  # type: ignore[index]
    assert len(servicer.attempts) == max_attempts


@pytest.mark.parametrize(("code", "headers_first"), [
    (grpc.StatusCode.UNAVAILABLE, True),  # the server had taken the call on: never replayed
    (grpc.StatusCode.INVALID_ARGUMENT, False),  # the same request would fail again
    (grpc.StatusCode.RESOURCE_EXHAUSTED, False),  # retrying at once would add to the overload
])
async def test_other_failures_are_not_retried(scripted, code: grpc.StatusCode,  # type: ignore[no-untyped-def]
                                              headers_first: bool) -> None:
    servicer, target = scripted
    servicer.script = [(code, headers_first)]
    assert await _call(target) == code
    assert servicer.attempts == ["0"]
