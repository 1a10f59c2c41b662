"""One synthesis call, whatever the front: opened, checked, spoken, rendered and ended once.

Every front (gRPC, HTTP, Wyoming, WebSocket) drives the same `SpeechCall`: it opens the call's
record explicitly, hands over what the caller asked for (`AskedSettings` and the text), and
gets back rendered audio (`Chunk`s as they are made, or `WholeAudio`), encoded off the event
loop. However the call ends, `end` classifies it once (outcomes.classify), writes the one
request-log line and counts it. A front only translates its protocol into these values and
the outcome back into its own statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from tts_service.audio.encoding import AudioEncoding, StreamRenderer, render_whole
from tts_service.calls.live_text import LiveText, Mark, TextInput
from tts_service.calls.metrics import Metrics
from tts_service.calls.outcomes import Code, Outcome, classify
from tts_service.calls.request import (
    AskedSettings,
    Limits,
    SynthesisSettings,
    SynthesisSpec,
    build_settings,
    build_spec,
)
from tts_service.calls.ssml_request import build_ssml_spec
from tts_service.errors import InvalidRequest, Unsupported
from tts_service.language.front_end import FrontEnds
from tts_service.language.sentences import Piece
from tts_service.model.voices import VoiceCatalog
from tts_service.synthesis.scheduler import Admitted
from tts_service.synthesis.synthesizer import SpokenPiece, StyledPiece, Synthesizer, Voicing

_LOGGER = logging.getLogger("tts_service.requests")
_MAX_REQUEST_ID_CHARS = 64
# A value written into the log as it is; anything else is quoted and escaped (JSON), so no
# caller can start a line of its own or fake a field.
# A voice mix's formula, e.g. af_bella(2)+af_sky(1), is plain too.
_PLAIN = re.compile(r"[\w.:/@+()-]{1,64}")
FLUSHED = Mark.FLUSH  # what `live` yields once everything before a caller's flush is spoken


def log_value(value: str) -> str:
    """A caller-supplied value as it may appear in a log line."""
    return value if _PLAIN.fullmatch(value) else json.dumps(value)


def request_id(sent: object) -> str:
    """The caller's request id when it sent a sane one, else a new one."""
    if isinstance(sent, str) and 0 < len(sent) <= _MAX_REQUEST_ID_CHARS and sent.isprintable():
        return sent
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Dialect:
    """How a front names the request's fields and tells its callers to list the voices."""

    fields: Mapping[str, str]  # domain name -> the front's name; unlisted names stay
    list_voices: str

    def rename(self, error: InvalidRequest | Unsupported) -> InvalidRequest | Unsupported:
        # A field inside a list keeps its entry: pronunciations[2].word renames its head.
        head, mark, rest = error.field.partition("[")
        named = self.fields.get(head, head) + mark + rest
        if named == error.field:
            return error
        return type(error)(named, str(error))


@dataclass(frozen=True)
class TimedWord:
    """A word of the call's text (`[start, end)` in code points of all of it) and when it is
    spoken, in seconds of the call's audio."""

    start: int
    end: int
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TimedMark:
    """An SSML `<mark>`: its name, its place in the call's text (code points) and when the
    audio reaches it, in seconds of the call's audio."""

    name: str
    at: int
    time_s: float


@dataclass(frozen=True)
class Chunk:
    """Encoded audio for one piece of text (or the encoder's tail, with no piece)."""

    audio: bytes
    encoding: AudioEncoding
    sample_rate_hz: int
    piece: Piece | None  # offsets into all of the call's text
    offset_s: float  # where it starts in the call's audio
    duration_s: float
    sequence: int
    words: tuple[TimedWord, ...] = ()
    marks: tuple[TimedMark, ...] = ()


@dataclass(frozen=True)
class WholeAudio:
    """A call's audio as one encoded file."""

    audio: bytes
    encoding: AudioEncoding
    sample_rate_hz: int
    duration_s: float
    words: tuple[TimedWord, ...]
    marks: tuple[TimedMark, ...] = ()


@dataclass
class CallRecord:
    """What one call did, for its log line and metrics."""

    method: str
    request_id: str
    protocol: str
    started: float = field(default_factory=time.monotonic)
    voice: str = ""
    text_chars: int = 0
    text: str = ""
    pieces_total: int = 0
    pieces_sent: int = 0
    audio_s: float = 0.0
    first_chunk_s: float | None = None
    streamed: bool = False  # its audio went out as it was made (time to first chunk counts)

    def chunk_sent(self, audio_s: float) -> None:
        if self.first_chunk_s is None:
            self.first_chunk_s = time.monotonic() - self.started
        self.pieces_sent += 1
        self.audio_s += audio_s


class CallFailed(Exception):
    """A call ended with an error: its outcome, already logged and counted."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


class Calls:
    """The calls of one server: what they share, and where they are logged and counted."""

    def __init__(self, synthesizer: Synthesizer, catalog: VoiceCatalog, front_ends: FrontEnds,
                 limits: Limits, metrics: Metrics, log_text: bool,
                 why_no_word_timings: str = "", why_no_voice_mixes: str = "") -> None:
        self.synthesizer = synthesizer
        self.catalog = catalog
        self.front_ends = front_ends
        self.limits = limits
        self.metrics = metrics
        self.log_text = log_text
        # Why a request for word timings is refused, when the engines cannot time words.
        self.why_no_word_timings = why_no_word_timings
        # Why a voice mixed per request is refused, when the engines cannot speak one.
        self.why_no_voice_mixes = why_no_voice_mixes

    @property
    def sample_rate_hz(self) -> int:
        return self.synthesizer.sample_rate_hz

    def open(self, method: str, protocol: str, sent_request_id: object = None,
             deadline_passed: Callable[[], bool] = lambda: False) -> SpeechCall:
        """Opens the record of one call; `SpeechCall.end` (or leaving `async with`) closes it.

        `deadline_passed` tells a cancellation at the caller's deadline from a caller that
        went away (gRPC cancels the call for both).
        """
        record = CallRecord(method=method, request_id=request_id(sent_request_id),
                            protocol=protocol)
        return SpeechCall(self, record, deadline_passed)

    def refused(self, method: str, protocol: str, sent_request_id: object,
                error: BaseException) -> Outcome:
        """Logs and counts a call refused before it began (no token, an unreadable request)."""
        return self.open(method, protocol, sent_request_id).end(error)

    def finish(self, record: CallRecord, outcome: Outcome) -> None:
        elapsed_s = time.monotonic() - record.started
        protocol, method, code = record.protocol, record.method, outcome.code.name
        self.metrics.requests.labels(protocol, method, code).inc()
        if record.audio_s > 0:
            self.metrics.synthesis_seconds.labels(protocol, method).observe(elapsed_s)
            # Every formula is a voice of its own: one label for them all keeps the series few.
            voice = record.voice if self.catalog.get(record.voice) is not None else "mix"
            self.metrics.audio_seconds.labels(voice).inc(record.audio_s)
            self.metrics.real_time_factor.labels(protocol, method).observe(
                elapsed_s / record.audio_s)
        if record.first_chunk_s is not None and record.streamed:
            self.metrics.time_to_first_chunk.labels(protocol).observe(record.first_chunk_s)
        first = f"{record.first_chunk_s:.3f}" if record.first_chunk_s is not None else "-"
        text = f" text={json.dumps(record.text)}" if self.log_text and record.text else ""
        _LOGGER.info(
            "request_id=%s protocol=%s method=%s status=%s voice=%s text_chars=%d pieces=%d/%d "
            "audio_s=%.2f first_chunk_s=%s total_s=%.3f%s",
            log_value(record.request_id), protocol, method, code,
            log_value(record.voice) if record.voice else "-", record.text_chars,
            record.pieces_sent, record.pieces_total, record.audio_s, first, elapsed_s, text)


class SpeechCall:
    """One call: check what was asked, speak it, end it. Use `async with`, or call `end`."""

    def __init__(self, calls: Calls, record: CallRecord,
                 deadline_passed: Callable[[], bool]) -> None:
        self._calls = calls
        self.record = record
        self._deadline_passed = deadline_passed
        self.outcome: Outcome | None = None  # set once the call has ended

    @property
    def request_id(self) -> str:
        return self.record.request_id

    # Checking what was asked -------------------------------------------------------------

    def accept(self, text: str, asked: AskedSettings, *, streaming: bool, dialect: Dialect,
               ssml: bool = False) -> SynthesisSpec:
        """The validated request (`text` is an SSML document if `ssml`): raises InvalidRequest
        or Unsupported, named as `dialect` names the fields, before any engine work."""
        # A call may speak several texts (the WebSocket's SSML documents): the record adds up.
        self.record.text_chars += len(text)
        self.record.voice = asked.voice
        calls = self._calls
        with _named(dialect):
            if ssml:
                spec = build_ssml_spec(
                    text, asked, streaming=streaming, catalog=calls.catalog,
                    front_ends=calls.front_ends, limits=calls.limits,
                    model_rate_hz=calls.sample_rate_hz, list_voices=dialect.list_voices,
                    marks_inside=calls.synthesizer.times_words)
            else:
                spec = build_spec(text, asked, streaming=streaming, catalog=calls.catalog,
                                  front_ends=calls.front_ends, limits=calls.limits,
                                  model_rate_hz=calls.sample_rate_hz,
                                  list_voices=dialect.list_voices)
            self._check_engines(spec)
        self.record.voice = spec.voice.name
        self.record.pieces_total += len(spec.pieces)
        self.record.text += spec.text
        return spec

    def accept_settings(self, asked: AskedSettings, *, dialect: Dialect) -> SynthesisSettings:
        """The validated settings of a call whose text comes later (`live`)."""
        self.record.voice = asked.voice
        calls = self._calls
        with _named(dialect):
            settings = build_settings(asked, streaming=True, catalog=calls.catalog,
                                      front_ends=calls.front_ends,
                                      model_rate_hz=calls.sample_rate_hz,
                                      list_voices=dialect.list_voices)
            self._check_engines(settings)
        self.record.voice = settings.voice.name
        return settings

    def _check_engines(self, settings: SynthesisSettings) -> None:
        """Raises Unsupported for what was asked that the engines cannot do."""
        synthesizer = self._calls.synthesizer
        if settings.word_timings and not synthesizer.times_words:
            raise Unsupported("word_timings", self._calls.why_no_word_timings)
        if settings.voice.style is not None and not synthesizer.mixes_voices:
            raise Unsupported("voice", self._calls.why_no_voice_mixes)
        if isinstance(settings, SynthesisSpec) and not synthesizer.mixes_voices and any(
                isinstance(piece, StyledPiece) and piece.voicing.style is not None
                for piece in settings.pieces):
            raise Unsupported("ssml", f"<voice> names a mix: {self._calls.why_no_voice_mixes}")

    # Speaking ----------------------------------------------------------------------------

    async def chunks(self, spec: SynthesisSpec) -> AsyncGenerator[Chunk, None]:
        """The audio of `spec`, a chunk per piece as soon as it is made, then the encoder's
        tail if it has one."""
        self.record.streamed = True
        writer = _ChunkWriter(self._calls.sample_rate_hz, spec, self.record)
        async with contextlib.aclosing(self._speak(spec, spec.pieces)) as spoken:
            async for piece in spoken:
                assert isinstance(piece, SpokenPiece)
                yield await writer.write(piece)
        if (tail := await writer.finish()) is not None:
            yield tail

    async def whole(self, spec: SynthesisSpec) -> WholeAudio:
        """The audio of `spec` as one encoded file, with its words when asked for."""
        rate = self._calls.sample_rate_hz
        parts: list[np.ndarray] = []
        words: list[TimedWord] = []
        marks: list[TimedMark] = []
        offset_s = 0.0
        async with contextlib.aclosing(self._speak(spec, spec.pieces, whole=True)) as spoken:
            async for piece in spoken:
                assert isinstance(piece, SpokenPiece)
                parts.append(piece.samples)
                words += _timed_words(piece, offset_s, rate)
                marks += _timed_marks(piece, offset_s, rate)
                duration_s = len(piece.samples) / rate
                offset_s += duration_s
                self.record.chunk_sent(duration_s)

        def render() -> bytes:
            # Joining minutes of audio is a copy of megabytes: not on the event loop.
            samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            return render_whole(samples, rate, spec.sample_rate_hz, spec.volume_gain_db,
                                      spec.encoding)

        return WholeAudio(audio=await asyncio.to_thread(render), encoding=spec.encoding,
                          sample_rate_hz=spec.sample_rate_hz, duration_s=offset_s,
                          words=tuple(words), marks=tuple(marks))

    @contextlib.asynccontextmanager
    async def live(self, settings: SynthesisSettings, inputs: AsyncIterator[TextInput]
                   ) -> AsyncIterator[AsyncGenerator[Chunk | Mark, None]]:
        """Admits a call whose text arrives over time (raising Overloaded or NotReady at once,
        before any text is needed), then gives its audio: chunks in text order, and FLUSHED
        once everything sent before a flush has been spoken. One admission for the call's
        whole life.

        Errors of the input (too much text, idle too long, a bad message) end the call after
        the audio of the text before them.
        """
        self.record.streamed = True
        text = LiveText(inputs, self._calls.limits, rules=settings.front_end.rules)
        spoken = self._speak(settings, self._counted(text), announce=True)
        chunks = self._live_chunks(settings, spoken, text)
        try:
            await anext(spoken)  # ADMITTED
            yield chunks
        finally:
            await chunks.aclose()
            await spoken.aclose()
            text.close()
            self.record.text_chars = len(text.segmenter.text)
            self.record.text = text.segmenter.text

    async def _live_chunks(self, settings: SynthesisSettings,
                           spoken: AsyncGenerator[SpokenPiece | Mark | Admitted, None],
                           text: LiveText) -> AsyncGenerator[Chunk | Mark, None]:
        writer = _ChunkWriter(self._calls.sample_rate_hz, settings, self.record)
        async for item in spoken:
            if isinstance(item, SpokenPiece):
                yield await writer.write(item)
                text.audio_sent()
            elif isinstance(item, Mark):
                yield item
        if (tail := await writer.finish()) is not None:
            yield tail

    async def _counted(self, text: LiveText) -> AsyncIterator[Piece | Mark]:
        async for item in text.items():
            if isinstance(item, Piece):
                self.record.pieces_total += 1
            yield item

    def _speak(self, settings: SynthesisSettings,
               pieces: tuple[Piece, ...] | AsyncIterator[Piece | Mark], announce: bool = False,
               whole: bool = False) -> AsyncGenerator[SpokenPiece | Mark | Admitted, None]:
        voicing = Voicing(settings.voice.speaker_id, settings.speed, settings.front_end,
                          settings.normalize, timed=settings.word_timings,
                          style=settings.voice.style)
        return self._calls.synthesizer.stream(pieces, voicing, announce=announce, whole=whole)

    # Ending ------------------------------------------------------------------------------

    def end(self, error: BaseException | None = None) -> Outcome:
        """Classifies how the call ended, logs and counts it; the first end counts."""
        if self.outcome is not None:
            return self.outcome
        outcome = classify(error)
        if outcome.code is Code.CANCELLED and self._deadline_passed():
            outcome = Outcome(Code.DEADLINE_EXCEEDED, "the call's deadline passed")
        if outcome.unexpected:
            _LOGGER.error("request_id=%s failed unexpectedly", log_value(self.request_id),
                          exc_info=error)
        self.outcome = outcome
        self._calls.finish(self.record, outcome)
        return outcome

    async def __aenter__(self) -> SpeechCall:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> bool:
        outcome = self.end(error)
        if isinstance(error, Exception) and not isinstance(error, CallFailed):
            raise CallFailed(outcome) from error
        return False  # a cancellation goes on as it is


@contextlib.contextmanager
def _named(dialect: Dialect) -> Iterator[None]:
    try:
        yield
    except (InvalidRequest, Unsupported) as error:
        raise dialect.rename(error) from None


class _ChunkWriter:
    """Encodes one call's audio as Chunks: one continuous stream, offsets and numbers."""

    def __init__(self, model_rate_hz: int, settings: SynthesisSettings,
                 record: CallRecord) -> None:
        self._model_rate_hz = model_rate_hz
        self._settings = settings
        self._record = record
        self._renderer = StreamRenderer(model_rate_hz, settings.sample_rate_hz,
                                              settings.volume_gain_db, settings.encoding)
        self._offset_s = 0.0
        self._sequence = 0

    async def write(self, spoken: SpokenPiece) -> Chunk:
        data = await asyncio.to_thread(self._renderer.render, spoken.samples)
        duration_s = len(spoken.samples) / self._model_rate_hz
        chunk = self._chunk(data, spoken.piece, duration_s,
                            _timed_words(spoken, self._offset_s, self._model_rate_hz),
                            _timed_marks(spoken, self._offset_s, self._model_rate_hz))
        self._record.chunk_sent(duration_s)
        self._offset_s += duration_s
        self._sequence += 1
        return chunk

    async def finish(self) -> Chunk | None:
        """The encoder's trailing bytes, if it has any."""
        tail = await asyncio.to_thread(self._renderer.finish)
        return self._chunk(tail, None, 0.0, (), ()) if tail else None

    def _chunk(self, data: bytes, piece: Piece | None, duration_s: float,
               words: tuple[TimedWord, ...], marks: tuple[TimedMark, ...]) -> Chunk:
        return Chunk(audio=data, encoding=self._settings.encoding,
                     sample_rate_hz=self._settings.sample_rate_hz, piece=piece,
                     offset_s=self._offset_s, duration_s=duration_s, sequence=self._sequence,
                     words=words, marks=marks)


def _timed_words(spoken: SpokenPiece, offset_s: float, model_rate_hz: int
                 ) -> tuple[TimedWord, ...]:
    """The words spoken in one chunk that starts `offset_s` into the call's audio."""
    return tuple(TimedWord(
        start=span.start, end=span.end, text=span.text,
        start_s=offset_s + span.start_sample / model_rate_hz,
        end_s=offset_s + span.end_sample / model_rate_hz,
    ) for span in spoken.words)


def _timed_marks(spoken: SpokenPiece, offset_s: float, model_rate_hz: int
                 ) -> tuple[TimedMark, ...]:
    """The caller's marks one chunk that starts `offset_s` into the call's audio reaches."""
    return tuple(TimedMark(mark.name, mark.at, offset_s + mark.sample / model_rate_hz)
                 for mark in spoken.marks)

