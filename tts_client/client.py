"""An asyncio client that owns a channel to the TextToSpeechService."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from types import TracebackType

import grpc

from tts_api.v1 import tts_pb2, tts_pb2_grpc

_SERVICE = tts_pb2.DESCRIPTOR.services_by_name["TextToSpeechService"]
# A target may name several replicas (`dns:///tts.example:50051` with several addresses, or
# `ipv4:10.0.0.1:50051,10.0.0.2:50051`): round_robin spreads calls over all of them instead of
# pinning every call to the first (gRPC's default, pick_first). A call that ends UNAVAILABLE
# (a replica shutting down or gone) is retried on another one; gRPC retries only until the
# response headers arrive, so a call is never replayed once a replica has taken it on, let
# alone after audio was sent. Throttling stops retries when most calls fail anyway.
# StreamingSynthesize is left out: its text is written while the call runs, so a retry would
# replay live input that gRPC buffers only up to a limit.
_RETRIED_METHODS = [{"service": _SERVICE.full_name, "method": method.name}
                    for method in _SERVICE.methods if not method.client_streaming]
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": _RETRIED_METHODS,
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
}
CHANNEL_OPTIONS = (
    # A unary WAV answer is 48 KB per second of 24 kHz audio, so gRPC's default 4 MB receive
    # limit would cut Synthesize off at about 87 s of speech; 5000 characters is about 5 min.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
)


class TtsClient:
    """Calls a server, or spreads calls over replicas when the target names several.

    `async with TtsClient("localhost:50051") as client: ...`; targets are gRPC's: `host:port`,
    `dns:///name:port` (every address the name resolves to), `ipv4:a:port,b:port`.
    """

    def __init__(self, target: str, *, credentials: grpc.ChannelCredentials | None = None,
                 token: str | None = None, timeout_s: float | None = None,
                 channel_options: Sequence[tuple[str, str | int]] = ()) -> None:
        options = (*CHANNEL_OPTIONS, *channel_options)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._stub = tts_pb2_grpc.TextToSpeechServiceStub(self._channel)
        self._metadata: Sequence[tuple[str, str]] = (
            (("authorization", f"Bearer {token}"),) if token else ())
        self.timeout_s = timeout_s

    async def __aenter__(self) -> TtsClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def list_voices(self, language_code: str = "") -> tts_pb2.ListVoicesResponse:
        return await self._stub.ListVoices(
            tts_pb2.ListVoicesRequest(language_code=language_code),
            timeout=self.timeout_s, metadata=self._metadata)

    async def synthesize(self, request: tts_pb2.SynthesizeRequest) -> tts_pb2.SynthesizeResponse:
        return await self._stub.Synthesize(request, timeout=self.timeout_s,
                                           metadata=self._metadata)

    async def synthesize_stream(
        self, request: tts_pb2.SynthesizeStreamRequest
    ) -> AsyncGenerator[tts_pb2.AudioChunk, None]:
        """Yields the audio chunks as the server sends them; breaking out cancels the call."""
        call = self._stub.SynthesizeStream(request, timeout=self.timeout_s,
                                           metadata=self._metadata)
        try:
            async for response in call:
                yield response.chunk
        finally:
            call.cancel()

    async def streaming_synthesize(
        self, config: tts_pb2.SynthesisConfig,
        requests: AsyncIterable[tts_pb2.StreamingSynthesizeRequest]
    ) -> AsyncGenerator[tts_pb2.StreamingSynthesizeResponse, None]:
        """Sends `config`, then `requests` (text, flushes) as they come; yields the answers.

        Half-closes when `requests` ends. No deadline: the call lasts as long as the text
        keeps coming (the server ends a call that goes quiet). Breaking out cancels it.
        """
        call = self._stub.StreamingSynthesize(metadata=self._metadata)

        async def send() -> None:
            await call.write(tts_pb2.StreamingSynthesizeRequest(config=config))
            # The server sends its headers once it has accepted the config: text written
            # before that could race a refusal, which grpc then reports as INTERNAL.
            await call.initial_metadata()
            if call.done():
                return  # refused: reading reports the server's status
            try:
                async for request in requests:
                    await call.write(request)
                await call.done_writing()
            except asyncio.InvalidStateError:
                return  # the call ended meanwhile: reading reports how

        sending = asyncio.ensure_future(send())
        try:
            async for response in call:
                yield response
            await sending  # the input's own failure, if any
        finally:
            sending.cancel()
            call.cancel()
