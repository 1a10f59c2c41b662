"""The TextToSpeech servicer: translates protos to domain values and back, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import grpc
import numpy as np

from tts_api.v1 import tts_pb2, tts_pb2_grpc

from . import __version__, audio
from .calls import CallObserver, ObservedServicer, current_call, observed
from .errors import InvalidRequest, Unsupported
from .request import Limits, SynthesisSpec, build_spec
from .synthesizer import SpokenPiece, Synthesizer
from .voices import Gender, VoiceCatalog
from .word_timing import TimedSpan

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


@dataclass(frozen=True)
class RuntimeDescription:
    """What GetServerInfo reports about the engines."""

    engine_version: str
    onnxruntime: str
    onnxruntime_version: str
    engines: int
    threads_per_engine: int
    max_queued_requests: int


class TextToSpeechServicer(tts_pb2_grpc.TextToSpeechServiceServicer, ObservedServicer):
    def __init__(self, synthesizer: Synthesizer, catalog: VoiceCatalog, limits: Limits,
                 runtime: RuntimeDescription, observer: CallObserver) -> None:
        self.observer = observer
        self._synthesizer = synthesizer
        self._catalog = catalog
        self._limits = limits
        self._runtime = runtime

    def _spec(self, text: str, config: tts_pb2.SynthesisConfig, streaming: bool
              ) -> SynthesisSpec:
        record = current_call()
        record.text_chars = len(text)
        record.voice = config.voice
        try:
            spec = self._build(text, config, streaming)
        except InvalidRequest as err:
            # Settings live in SynthesisConfig: name the field by its path in the request.
            if err.field != "text":
                raise InvalidRequest(f"config.{err.field}", str(err)) from None
            raise
        if config.enable_word_timings and not self._synthesizer.times_words:
            raise Unsupported("config.enable_word_timings", self._why_no_word_timings())
        record.voice = spec.voice.name
        record.pieces_total = len(spec.pieces)
        record.text = spec.text
        return spec

    def _why_no_word_timings(self) -> str:
        runtime = self._runtime
        if runtime.onnxruntime == "pypi":
            return ("word timings need a model with the durations output, and this server's "
                    "model has none: re-assemble it with `make models`, or ask without "
                    "enable_word_timings")
        return (f"word timings need the engine on PyPI's onnxruntime, but this server runs on "
                f"the {runtime.onnxruntime} onnxruntime {runtime.onnxruntime_version}: restart "
                "it with --onnxruntime pypi (after `make shim`), or ask without "
                "enable_word_timings")

    def _build(self, text: str, config: tts_pb2.SynthesisConfig, streaming: bool
               ) -> SynthesisSpec:
        encoding = None
        if config.encoding != tts_pb2.AUDIO_ENCODING_UNSPECIFIED:
            if config.encoding not in _ENCODINGS:
                names = ", ".join(tts_pb2.AudioEncoding.Name(e) for e in _ENCODINGS)
                raise InvalidRequest("encoding",
                                     f"unknown encoding {config.encoding}: use one of {names}")
            encoding = _ENCODINGS[config.encoding]
        return build_spec(
            text=text,
            voice=config.voice,
            speed=config.speed,
            encoding=encoding,
            sample_rate_hz=config.sample_rate_hertz,
            volume_gain_db=config.volume_gain_db,
            normalize=config.normalize_text if config.HasField("normalize_text") else True,
            streaming=streaming,
            catalog=self._catalog,
            limits=self._limits,
            model_rate_hz=self._synthesizer.sample_rate_hz,
        )

    def _pieces(self, spec: SynthesisSpec, timed: bool
                ) -> contextlib.aclosing[AsyncGenerator[SpokenPiece, None]]:
        return contextlib.aclosing(self._synthesizer.stream(
            spec.pieces, spec.voice.speaker_id, spec.speed, spec.normalize, timed=timed))

    def _word_timings(self, text: str, spans: tuple[TimedSpan, ...], offset_s: float
                      ) -> list[tts_pb2.WordTiming]:
        rate = self._synthesizer.sample_rate_hz
        return [tts_pb2.WordTiming(
            text_span=tts_pb2.TextSpan(start_offset=span.start, end_offset=span.end,
                                       text=text[span.start:span.end]),
            start_seconds=offset_s + span.start_sample / rate,
            end_seconds=offset_s + span.end_sample / rate,
        ) for span in spans]

    @observed
    async def ListVoices(self, request: tts_pb2.ListVoicesRequest,
                         context: grpc.aio.ServicerContext) -> tts_pb2.ListVoicesResponse:
        return tts_pb2.ListVoicesResponse(
            voices=[
                tts_pb2.Voice(
                    name=voice.name,
                    language_code=voice.language_code,
                    gender=_GENDERS.get(voice.gender, tts_pb2.VOICE_GENDER_UNSPECIFIED),
                    natural_sample_rate_hertz=self._synthesizer.sample_rate_hz,
                    blend=voice.blend,
                )
                for voice in self._catalog.list(request.language_code)
            ],
            default_voice=self._catalog.default,
        )

    @observed
    async def Synthesize(self, request: tts_pb2.SynthesizeRequest,
                         context: grpc.aio.ServicerContext) -> tts_pb2.SynthesizeResponse:
        spec = self._spec(request.text, request.config, streaming=False)
        model_rate = self._synthesizer.sample_rate_hz
        record = current_call()
        chunks: list[np.ndarray] = []
        words: list[tts_pb2.WordTiming] = []
        offset_s = 0.0
        async with self._pieces(spec, request.config.enable_word_timings) as pieces:
            async for spoken in pieces:
                chunks.append(spoken.samples)
                words += self._word_timings(spec.text, spoken.words, offset_s)
                offset_s += len(spoken.samples) / model_rate
                record.chunk_sent(len(spoken.samples) / model_rate)

        def render() -> bytes:
            # Joining minutes of audio is a copy of megabytes: not on the event loop.
            samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
            return audio.render_whole(samples, model_rate, spec.sample_rate_hz,
                                      spec.volume_gain_db, spec.encoding)

        encoded = await asyncio.to_thread(render)
        return tts_pb2.SynthesizeResponse(
            audio=encoded,
            encoding=_PROTO_ENCODINGS[spec.encoding],
            sample_rate_hertz=spec.sample_rate_hz,
            audio_duration_seconds=sum(len(chunk) for chunk in chunks) / model_rate,
            voice=spec.voice.name,
            words=words,
        )

    @observed
    async def SynthesizeStream(self, request: tts_pb2.SynthesizeStreamRequest,
                               context: grpc.aio.ServicerContext
                               ) -> AsyncIterator[tts_pb2.SynthesizeStreamResponse]:
        spec = self._spec(request.text, request.config, streaming=True)
        model_rate = self._synthesizer.sample_rate_hz
        renderer = audio.StreamRenderer(model_rate, spec.sample_rate_hz, spec.volume_gain_db,
                                        spec.encoding)
        encoding = _PROTO_ENCODINGS[spec.encoding]
        offset_s = 0.0
        sequence = 0
        record = current_call()
        async with self._pieces(spec, request.config.enable_word_timings) as pieces:
            async for spoken in pieces:
                data = await asyncio.to_thread(renderer.render, spoken.samples)
                duration_s = len(spoken.samples) / model_rate
                piece = spoken.piece
                yield tts_pb2.SynthesizeStreamResponse(chunk=tts_pb2.AudioChunk(
                    audio=data,
                    encoding=encoding,
                    sample_rate_hertz=spec.sample_rate_hz,
                    text_span=tts_pb2.TextSpan(start_offset=piece.start, end_offset=piece.end,
                                               text=piece.text),
                    audio_offset_seconds=offset_s,
                    audio_duration_seconds=duration_s,
                    sequence_number=sequence,
                    words=self._word_timings(spec.text, spoken.words, offset_s),
                ))
                record.chunk_sent(duration_s)
                offset_s += duration_s
                sequence += 1
        tail = await asyncio.to_thread(renderer.finish)
        if tail:
            yield tts_pb2.SynthesizeStreamResponse(chunk=tts_pb2.AudioChunk(
                audio=tail, encoding=encoding, sample_rate_hertz=spec.sample_rate_hz,
                audio_offset_seconds=offset_s, sequence_number=sequence))

    @observed
    async def GetServerInfo(self, request: tts_pb2.GetServerInfoRequest,
                            context: grpc.aio.ServicerContext
                            ) -> tts_pb2.GetServerInfoResponse:
        runtime = self._runtime
        return tts_pb2.GetServerInfoResponse(
            model="kokoro-82m-v1.0-int8",
            model_sample_rate_hertz=self._synthesizer.sample_rate_hz,
            engine_version=runtime.engine_version,
            onnxruntime=runtime.onnxruntime,
            onnxruntime_version=runtime.onnxruntime_version,
            engines=runtime.engines,
            threads_per_engine=runtime.threads_per_engine,
            max_text_chars=self._limits.max_text_chars,
            max_queued_requests=runtime.max_queued_requests,
            server_version=__version__,
        )
