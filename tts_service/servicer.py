"""The TextToSpeech servicer: translates protos to domain values and back, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from tts_api.v1 import tts_pb2, tts_pb2_grpc

from . import __version__, audio
from .calls import CallObserver, CallRecord, ObservedServicer, current_call, observed
from .errors import IdleTimeout, InvalidRequest, Unsupported
from .live_text import LiveText, Mark, TextInput
from .request import Limits, SynthesisSettings, SynthesisSpec, build_settings, build_spec
from .synthesizer import SpokenPiece, Synthesizer
from .text import Piece
from .voices import Gender, VoiceCatalog

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
    solo_engine_threads: int = 0
    usable_cpus: int = 0
    pool_from_cpus: bool = False


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
        with _config_errors():
            spec = build_spec(text=text, **self._settings_fields(config), streaming=streaming,
                              catalog=self._catalog, limits=self._limits,
                              model_rate_hz=self._synthesizer.sample_rate_hz)
        self._check_word_timings(config)
        record.accepted(spec)
        return spec

    def _settings(self, config: tts_pb2.SynthesisConfig) -> SynthesisSettings:
        """The settings of a streamed call, whose text comes later."""
        record = current_call()
        record.voice = config.voice
        with _config_errors():
            settings = build_settings(**self._settings_fields(config), streaming=True,
                                      catalog=self._catalog,
                                      model_rate_hz=self._synthesizer.sample_rate_hz)
        self._check_word_timings(config)
        record.voice = settings.voice.name
        return settings

    def _check_word_timings(self, config: tts_pb2.SynthesisConfig) -> None:
        if config.enable_word_timings and not self._synthesizer.times_words:
            raise Unsupported("config.enable_word_timings", self._why_no_word_timings())

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

    @staticmethod
    def _settings_fields(config: tts_pb2.SynthesisConfig) -> dict[str, Any]:
        encoding = None
        if config.encoding != tts_pb2.AUDIO_ENCODING_UNSPECIFIED:
            if config.encoding not in _ENCODINGS:
                names = ", ".join(tts_pb2.AudioEncoding.Name(e) for e in _ENCODINGS)
                raise InvalidRequest("config.encoding",
                                     f"unknown encoding {config.encoding}: use one of {names}")
            encoding = _ENCODINGS[config.encoding]
        return dict(
            voice=config.voice,
            speed=config.speed,
            encoding=encoding,
            sample_rate_hz=config.sample_rate_hertz,
            volume_gain_db=config.volume_gain_db,
            normalize=config.normalize_text if config.HasField("normalize_text") else True,
        )

    def _pieces(self, spec: SynthesisSpec, timed: bool
                ) -> contextlib.aclosing[AsyncGenerator[SpokenPiece, None]]:
        return contextlib.aclosing(self._synthesizer.stream(
            spec.pieces, spec.voice.speaker_id, spec.speed, spec.normalize, timed=timed))

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
                words += _word_timings(spoken, offset_s, model_rate)
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
        chunks = _ChunkWriter(self._synthesizer.sample_rate_hz, spec)
        async with self._pieces(spec, request.config.enable_word_timings) as pieces:
            async for spoken in pieces:
                yield tts_pb2.SynthesizeStreamResponse(chunk=await chunks.write(spoken))
        tail = await chunks.finish()
        if tail is not None:
            yield tts_pb2.SynthesizeStreamResponse(chunk=tail)

    @observed
    async def StreamingSynthesize(
        self, request_iterator: AsyncIterable[tts_pb2.StreamingSynthesizeRequest],
        context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tts_pb2.StreamingSynthesizeResponse]:
        requests = aiter(request_iterator)
        try:
            first = await asyncio.wait_for(anext(requests), self._limits.idle_timeout_s)
        except StopAsyncIteration:
            raise InvalidRequest("config", "the call ended before its first message: send "
                                 "config first, then the text") from None
        except TimeoutError:
            raise IdleTimeout(f"no first message within {self._limits.idle_timeout_s:g} s: "
                              "send config as soon as the call starts") from None
        if not first.HasField("config"):
            raise InvalidRequest("config", "the first message must carry config (the "
                                 "settings, may be empty); send the text in later messages")
        settings = self._settings(first.config)
        record = current_call()
        await self.observer.accept(record, context)
        chunks = _ChunkWriter(self._synthesizer.sample_rate_hz, settings)
        live = LiveText(_text_inputs(requests, first.flush), self._limits)
        try:
            while (event := await live.next()) is not Mark.END:
                if event is Mark.FLUSH:
                    yield tts_pb2.StreamingSynthesizeResponse(flush_done=True)
                    continue
                assert not isinstance(event, Mark)
                # One synthesis per run of pieces between flushes: its end is the moment all
                # the text before the flush has been spoken.
                run = _counted(live.run_of_pieces(event), record)
                async with contextlib.aclosing(self._synthesizer.stream(
                        run, settings.voice.speaker_id, settings.speed, settings.normalize,
                        timed=first.config.enable_word_timings)) as spoken_pieces:
                    async for spoken in spoken_pieces:
                        yield tts_pb2.StreamingSynthesizeResponse(
                            chunk=await chunks.write(spoken))
                        live.audio_sent()
                if live.error is not None:
                    raise live.error
                if live.mark is Mark.FLUSH:
                    yield tts_pb2.StreamingSynthesizeResponse(flush_done=True)
                if live.mark is Mark.END:
                    break
        finally:
            live.close()
            record.text_chars = len(live.segmenter.text)
            record.text = live.segmenter.text
        tail = await chunks.finish()
        if tail is not None:
            yield tts_pb2.StreamingSynthesizeResponse(chunk=tail)

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
            streaming_idle_timeout_seconds=self._limits.idle_timeout_s,
            streaming_max_wait_seconds=self._limits.max_wait_s,
            solo_engine_threads=runtime.solo_engine_threads,
            usable_cpus=runtime.usable_cpus,
            pool_from_cpus=runtime.pool_from_cpus,
        )


class _ChunkWriter:
    """Encodes one call's audio as AudioChunks: one continuous stream, offsets and numbers."""

    def __init__(self, model_rate_hz: int, settings: SynthesisSettings) -> None:
        self._model_rate_hz = model_rate_hz
        self._rate_hz = settings.sample_rate_hz
        self._renderer = audio.StreamRenderer(model_rate_hz, settings.sample_rate_hz,
                                              settings.volume_gain_db, settings.encoding)
        self._encoding = _PROTO_ENCODINGS[settings.encoding]
        self._offset_s = 0.0
        self._sequence = 0

    async def write(self, spoken: SpokenPiece) -> tts_pb2.AudioChunk:
        data = await asyncio.to_thread(self._renderer.render, spoken.samples)
        duration_s = len(spoken.samples) / self._model_rate_hz
        piece = spoken.piece
        chunk = tts_pb2.AudioChunk(
            audio=data,
            encoding=self._encoding,
            sample_rate_hertz=self._rate_hz,
            text_span=tts_pb2.TextSpan(start_offset=piece.start, end_offset=piece.end,
                                       text=piece.text),
            audio_offset_seconds=self._offset_s,
            audio_duration_seconds=duration_s,
            sequence_number=self._sequence,
            words=_word_timings(spoken, self._offset_s, self._model_rate_hz),
        )
        current_call().chunk_sent(duration_s)
        self._offset_s += duration_s
        self._sequence += 1
        return chunk

    async def finish(self) -> tts_pb2.AudioChunk | None:
        """The encoder's trailing bytes, if it has any."""
        tail = await asyncio.to_thread(self._renderer.finish)
        if not tail:
            return None
        return tts_pb2.AudioChunk(audio=tail, encoding=self._encoding,
                                  sample_rate_hertz=self._rate_hz,
                                  audio_offset_seconds=self._offset_s,
                                  sequence_number=self._sequence)


def _word_timings(spoken: SpokenPiece, offset_s: float, model_rate_hz: int
                  ) -> list[tts_pb2.WordTiming]:
    """The words spoken in one chunk that starts `offset_s` into the call's audio."""
    piece = spoken.piece
    return [tts_pb2.WordTiming(
        text_span=tts_pb2.TextSpan(start_offset=span.start, end_offset=span.end,
                                   text=piece.text[span.start - piece.start:
                                                   span.end - piece.start]),
        start_seconds=offset_s + span.start_sample / model_rate_hz,
        end_seconds=offset_s + span.end_sample / model_rate_hz,
    ) for span in spoken.words]


@contextlib.contextmanager
def _config_errors() -> Iterator[None]:
    """Settings live in SynthesisConfig: names a bad field by its path in the request."""
    try:
        yield
    except InvalidRequest as err:
        if err.field == "text" or err.field.startswith("config."):
            raise
        raise InvalidRequest(f"config.{err.field}", str(err)) from None


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


async def _counted(pieces: AsyncIterator[Piece], record: CallRecord) -> AsyncIterator[Piece]:
    async for piece in pieces:
        record.pieces_total += 1
        yield piece
