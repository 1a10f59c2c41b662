"""An asyncio client that owns a channel to the TextToSpeechService."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from types import TracebackType

import grpc

from tts_api.v1 import tts_pb2, tts_pb2_grpc

# A unary WAV answer is 48 KB per second of 24 kHz audio, so gRPC's default 4 MB receive
# limit would cut Synthesize off at about 87 s of speech; 5000 characters is about 5 minutes.
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", 64 * 1024 * 1024),)


class TtsClient:
    """Calls one server; use as `async with TtsClient("localhost:50051") as client: ...`."""

    def __init__(self, target: str, *, credentials: grpc.ChannelCredentials | None = None,
                 token: str | None = None, timeout_s: float | None = None) -> None:
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials,
                                                    options=CHANNEL_OPTIONS)
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
        async def messages() -> AsyncGenerator[tts_pb2.StreamingSynthesizeRequest, None]:
            yield tts_pb2.StreamingSynthesizeRequest(config=config)
            async for request in requests:
                yield request

        call = self._stub.StreamingSynthesize(messages(), metadata=self._metadata)
        try:
            async for response in call:
                yield response
        finally:
            call.cancel()
