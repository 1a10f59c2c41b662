"""The TextToSpeech servicer: translates protos to the call layer's values and back, nothing
more. Statuses are set by grpc_outcomes.OutcomeInterceptor from what a method raises."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import grpc

from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service import __version__
from tts_service.audio import encoding as audio
from tts_service.calls.live_text import TextInput
from tts_service.calls.request import AskedPronunciation, AskedSettings
from tts_service.calls.speech_call import (
    FLUSHED,
    Calls,
    Chunk,
    Dialect,
    SpeechCall,
    TimedMark,
    TimedWord,
)
from tts_service.calls.ssml_request import TEXT_FORMATS
from tts_service.errors import IdleTimeout, InvalidRequest
from tts_service.fronts.grpc_outcomes import sent_request_id
from tts_service.model.voices import Gender

_ENCODINGS = {
    tts_pb2.AUDIO_ENCODING_PCM_S16LE: audio.AudioEncoding.PCM16,
    tts_pb2.AUDIO_ENCODING_WAV: audio.AudioEncoding.WAV,
    tts_pb2.AUDIO_ENCODING_FLAC: audio.AudioEncoding.FLAC,
    tts_pb2.AUDIO_ENCODING_OGG_OPUS: audio.AudioEncoding.OGG_OPUS,
    tts_pb2.AUDIO_ENCODING_MP3: audio.AudioEncoding.MP3,
    tts_pb2.AUDIO_ENCODING_MULAW: audio.AudioEncoding.MULAW,
    tts_pb2.AUDIO_ENCODING_ALAW: audio.AudioEncoding.ALAW,
}
_PROTO_ENCODINGS = {domain: proto for proto, domain in _ENCODINGS.items()}
_GENDERS = {
    Gender.FEMALE: tts_pb2.VOICE_GENDER_FEMALE,
    Gender.MALE: tts_pb2.VOICE_GENDER_MALE,
    Gender.NEUTRAL: tts_pb2.VOICE_GENDER_NEUTRAL,
}
# Settings live in SynthesisConfig: a bad one is named by its path in the request.
DIALECT = Dialect(
    fields={"voice": "config.voice", "speed": "config.speed", "encoding": "config.encoding",
            "sample_rate_hz": "config.sample_rate_hertz",
            "volume_gain_db": "config.volume_gain_db",
            "word_timings": "config.enable_word_timings",
            "language_code": "config.language_code",
            "pronunciations": "config.pronunciations"},
    list_voices="ListVoices (or `tts-grpc-client --list-voices`)")
# The server's copy of a deadline runs from when the request arrived, so it ends a little
# after the client's; the client's cancel at its own deadline can arrive first.
_DEADLINE_SLACK_S = 0.5


@dataclass(frozen=True)
class RuntimeDescription:
    """What GetServerInfo reports about the engines."""

    engine_version: str
    onnxruntime: str
    onnxruntime_version: str
    engines: int
    threads_per_engine: int
    max_queued_requests: int
    solo_engine_threads: int = 0
    usable_cpus: int = 0
    pool_from_cpus: bool = False

    def why_no_word_timings(self) -> str:
        """Why a server on this runtime may be unable to time words, and the fix."""
        if self.onnxruntime == "pypi":
            return ("word timings need a model with the durations output, and this server's "
                    "model has none: re-assemble it with `make models`, or ask without "
                    "enable_word_timings")
        return (f"word timings need the engine on PyPI's onnxruntime, but this server runs on "
                f"the {self.onnxruntime} onnxruntime {self.onnxruntime_version}: restart it "
                "with --onnxruntime pypi (after `make shim`), or ask without "
                "enable_word_timings")

    def why_no_voice_mixes(self) -> str:
        """Why a server on this runtime may be unable to speak a voice mix, and the fix."""
        if self.onnxruntime == "pypi":
            return ("voice mixes need the onnxruntime shim's style override, and this "
                    "server's shim was built without it: rebuild it with `make shim` and "
                    "restart the server, or give one voice (or a blend set at start-up with "
                    "--voice-blends)")
        return (f"voice mixes need the engine on PyPI's onnxruntime, but this server runs on "
                f"the {self.onnxruntime} onnxruntime {self.onnxruntime_version}: restart it "
                "with --onnxruntime pypi (after `make shim`), or give one voice (or a blend "
                "set at start-up with --voice-blends)")


class TextToSpeechServicer(tts_pb2_grpc.TextToSpeechServiceServicer):
    def __init__(self, calls: Calls, runtime: RuntimeDescription) -> None:
        self._calls = calls
        self._runtime = runtime

    @contextlib.asynccontextmanager
    async def _call(self, method: str, context: grpc.aio.ServicerContext,
                    headers_now: bool = True) -> AsyncIterator[SpeechCall]:
        """Opens the call's record; with `headers_now`, the call is under way at once (the
        response headers carry its x-request-id)."""
        call = self._calls.open(method, "grpc", sent_request_id(context.invocation_metadata()),
                                deadline_passed=lambda: _deadline_passed(context))
        async with call:
            if headers_now:
                await _send_headers(call, context)
            yield call

    async def ListVoices(self, request: tts_pb2.ListVoicesRequest,
                         context: grpc.aio.ServicerContext) -> tts_pb2.ListVoicesResponse:
        async with self._call("ListVoices", context):
            catalog = self._calls.catalog
            return tts_pb2.ListVoicesResponse(
                voices=[
                    tts_pb2.Voice(
                        name=voice.name,
                        language_code=voice.language_code,
                        gender=_GENDERS.get(voice.gender, tts_pb2.VOICE_GENDER_UNSPECIFIED),
                        natural_sample_rate_hertz=self._calls.sample_rate_hz,
                        blend=voice.blend,
                    )
                    for voice in catalog.list(request.language_code)
                ],
                default_voice=catalog.default,
            )

    async def Synthesize(self, request: tts_pb2.SynthesizeRequest,
                         context: grpc.aio.ServicerContext) -> tts_pb2.SynthesizeResponse:
        async with self._call("Synthesize", context) as call:
            text, ssml = _text_of(request)
            spec = call.accept(text, _asked(request.config), streaming=False,
                               dialect=DIALECT, ssml=ssml)
            whole = await call.whole(spec)
            return tts_pb2.SynthesizeResponse(
                audio=whole.audio,
                encoding=_PROTO_ENCODINGS[whole.encoding],
                sample_rate_hertz=whole.sample_rate_hz,
                audio_duration_seconds=whole.duration_s,
                voice=spec.voice.name,
                words=[_word(word) for word in whole.words],
                marks=[_mark(mark) for mark in whole.marks],
            )

    async def SynthesizeStream(self, request: tts_pb2.SynthesizeStreamRequest,
                               context: grpc.aio.ServicerContext
                               ) -> AsyncIterator[tts_pb2.SynthesizeStreamResponse]:
        async with self._call("SynthesizeStream", context) as call:
            text, ssml = _text_of(request)
            spec = call.accept(text, _asked(request.config), streaming=True,
                               dialect=DIALECT, ssml=ssml)
            async with contextlib.aclosing(call.chunks(spec)) as chunks:
                async for chunk in chunks:
                    yield tts_pb2.SynthesizeStreamResponse(chunk=_chunk(chunk))

    async def StreamingSynthesize(
        self, request_iterator: AsyncIterable[tts_pb2.StreamingSynthesizeRequest],
        context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tts_pb2.StreamingSynthesizeResponse]:
        # The response headers go out only once the config is accepted: a client that waits
        # for them never writes into a call the server has already refused (a write that races
        # the server's status makes grpc report INTERNAL instead of it, grpc/grpc#36066).
        async with self._call("StreamingSynthesize", context, headers_now=False) as call:
            requests = aiter(request_iterator)
            first = await self._first_message(requests)
            settings = call.accept_settings(_asked(first.config), dialect=DIALECT)
            async with call.live(settings, _text_inputs(requests, first.flush)) as spoken:
                await _send_headers(call, context)  # admitted: the call is under way
                async for item in spoken:
                    if item is FLUSHED:
                        yield tts_pb2.StreamingSynthesizeResponse(flush_done=True)
                    else:
                        assert isinstance(item, Chunk)
                        yield tts_pb2.StreamingSynthesizeResponse(chunk=_chunk(item))

    async def _first_message(self, requests: AsyncIterator[tts_pb2.StreamingSynthesizeRequest]
                             ) -> tts_pb2.StreamingSynthesizeRequest:
        idle_timeout_s = self._calls.limits.idle_timeout_s
        try:
            first = await asyncio.wait_for(anext(requests), idle_timeout_s)
        except StopAsyncIteration:
            raise InvalidRequest("config", "the call ended before its first message: send "
                                 "config first, then the text") from None
        except TimeoutError:
            raise IdleTimeout(f"no first message within {idle_timeout_s:g} s: send config as "
                              "soon as the call starts") from None
        if not first.HasField("config"):
            raise InvalidRequest("config", "the first message must carry config (the "
                                 "settings, may be empty); send the text in later messages")
        return first

    async def GetServerInfo(self, request: tts_pb2.GetServerInfoRequest,
                            context: grpc.aio.ServicerContext
                            ) -> tts_pb2.GetServerInfoResponse:
        async with self._call("GetServerInfo", context):
            runtime, limits = self._runtime, self._calls.limits
            return tts_pb2.GetServerInfoResponse(
                model="kokoro-82m-v1.0-int8",
                model_sample_rate_hertz=self._calls.sample_rate_hz,
                engine_version=runtime.engine_version,
                onnxruntime=runtime.onnxruntime,
                onnxruntime_version=runtime.onnxruntime_version,
                engines=runtime.engines,
                threads_per_engine=runtime.threads_per_engine,
                max_text_chars=limits.max_text_chars,
                max_queued_requests=runtime.max_queued_requests,
                server_version=__version__,
                streaming_idle_timeout_seconds=limits.idle_timeout_s,
                streaming_max_wait_seconds=limits.max_wait_s,
                solo_engine_threads=runtime.solo_engine_threads,
                usable_cpus=runtime.usable_cpus,
                pool_from_cpus=runtime.pool_from_cpus,
                text_formats=list(TEXT_FORMATS),
            )


def _asked(config: tts_pb2.SynthesisConfig) -> AskedSettings:
    encoding = None
    if config.encoding != tts_pb2.AUDIO_ENCODING_UNSPECIFIED:
        if config.encoding not in _ENCODINGS:
            names = ", ".join(tts_pb2.AudioEncoding.Name(e) for e in _ENCODINGS)
            raise InvalidRequest("config.encoding",
                                 f"unknown encoding {config.encoding}: use one of {names}")
        encoding = _ENCODINGS[config.encoding]
    return AskedSettings(
        voice=config.voice,
        speed=config.speed,
        encoding=encoding,
        sample_rate_hz=config.sample_rate_hertz,
        volume_gain_db=config.volume_gain_db,
        normalize=config.normalize_text if config.HasField("normalize_text") else True,
        word_timings=config.enable_word_timings,
        language=config.language_code,
        pronunciations=tuple(AskedPronunciation(entry.word, entry.respelling, entry.phonemes)
                             for entry in config.pronunciations),
    )


def _chunk(chunk: Chunk) -> tts_pb2.AudioChunk:
    message = tts_pb2.AudioChunk(
        audio=chunk.audio,
        encoding=_PROTO_ENCODINGS[chunk.encoding],
        sample_rate_hertz=chunk.sample_rate_hz,
        audio_offset_seconds=chunk.offset_s,
        audio_duration_seconds=chunk.duration_s,
        sequence_number=chunk.sequence,
        words=[_word(word) for word in chunk.words],
        marks=[_mark(mark) for mark in chunk.marks],
    )
    if chunk.piece is not None:
        piece = chunk.piece
        message.text_span.CopyFrom(tts_pb2.TextSpan(start_offset=piece.start,
                                                    end_offset=piece.end, text=piece.text))
    return message


def _word(word: TimedWord) -> tts_pb2.WordTiming:
    return tts_pb2.WordTiming(
        text_span=tts_pb2.TextSpan(start_offset=word.start, end_offset=word.end,
                                   text=word.text),
        start_seconds=word.start_s, end_seconds=word.end_s)


def _mark(mark: TimedMark) -> tts_pb2.MarkTiming:
    return tts_pb2.MarkTiming(name=mark.name, offset=mark.at, seconds=mark.time_s)


def _text_of(request: tts_pb2.SynthesizeRequest | tts_pb2.SynthesizeStreamRequest
             ) -> tuple[str, bool]:
    """The request's text or SSML (exactly one of them), and whether it is SSML."""
    if request.text and request.ssml:
        raise InvalidRequest("ssml", "give either text or ssml, not both")
    return (request.ssml, True) if request.ssml else (request.text, False)


async def _text_inputs(requests: AsyncIterator[tts_pb2.StreamingSynthesizeRequest],
                       flush_first: bool) -> AsyncIterator[TextInput]:
    """The messages after the first one, as domain values."""
    if flush_first:
        yield TextInput(flush=True)
    async for request in requests:
        if request.HasField("config"):
            raise InvalidRequest("config", "config is allowed only in the first message; "
                                 "later messages carry text and flush")
        yield TextInput(request.text, request.flush)


async def _send_headers(call: SpeechCall, context: grpc.aio.ServicerContext) -> None:
    """Sends the response headers (x-request-id): the call is under way."""
    await context.send_initial_metadata((("x-request-id", call.request_id),))


def _deadline_passed(context: grpc.aio.ServicerContext) -> bool:
    remaining_s = context.time_remaining()
    return remaining_s is not None and remaining_s <= _DEADLINE_SLACK_S
