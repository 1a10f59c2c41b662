"""Per-call bookkeeping around servicer methods: request id, error statuses, log line, metrics."""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from .errors import ServiceError
from .metrics import Metrics
from .status import to_status

if TYPE_CHECKING:
    from .request import SynthesisSpec

_LOGGER = logging.getLogger("tts_service.requests")
F = TypeVar("F", bound=Callable[..., Any])
_CURRENT: contextvars.ContextVar[CallRecord] = contextvars.ContextVar("tts_call")
_MAX_REQUEST_ID_CHARS = 64
# The server's copy of a deadline runs from when the request arrived, so it ends a little
# after the client's; the client's cancel at its own deadline can arrive first.
_DEADLINE_SLACK_S = 0.5
# Calls whose first audio leaves before the synthesis ends: their time to first chunk is measured.
STREAMING_METHODS = frozenset({"SynthesizeStream", "StreamingSynthesize", "CreateSpeech"})
# Calls that send their response headers only once their first message is accepted: a client
# that waits for them never writes into a call the server has already refused (a write that
# races the server's status makes grpc report INTERNAL instead of it, grpc/grpc#36066).
ACCEPTS_FIRST_MESSAGE = frozenset({"StreamingSynthesize"})


@dataclass
class CallRecord:
    """What one call did; the servicer fills it in, the wrapper logs and measures it."""

    method: str
    request_id: str
    protocol: str = "grpc"
    started: float = field(default_factory=time.monotonic)
    voice: str = ""
    text_chars: int = 0
    text: str = ""
    pieces_total: int = 0
    pieces_sent: int = 0
    audio_s: float = 0.0
    first_chunk_s: float | None = None

    def accepted(self, spec: SynthesisSpec) -> None:
        """Records what a validated request is going to say."""
        self.voice = spec.voice.name
        self.pieces_total = len(spec.pieces)
        self.text = spec.text

    def chunk_sent(self, audio_s: float) -> None:
        if self.first_chunk_s is None:
            self.first_chunk_s = time.monotonic() - self.started
        self.pieces_sent += 1
        self.audio_s += audio_s


def current_call() -> CallRecord:
    return _CURRENT.get()


def request_id(sent: object) -> str:
    """The caller's x-request-id when it sent a sane one, else a new one."""
    if isinstance(sent, str) and 0 < len(sent) <= _MAX_REQUEST_ID_CHARS and sent.isprintable():
        return sent
    return uuid.uuid4().hex[:16]


def _sent_request_id(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "x-request-id" and isinstance(value, str):
            return value
    return None


class CallObserver:
    """Measures and logs calls; one per server, so each server has its own metrics."""

    def __init__(self, metrics: Metrics, log_text: bool) -> None:
        self.metrics = metrics
        self._log_text = log_text

    def finish(self, record: CallRecord, code: grpc.StatusCode) -> None:
        elapsed_s = time.monotonic() - record.started
        protocol = record.protocol
        self.metrics.requests.labels(protocol, record.method, code.name).inc()
        if record.audio_s > 0:
            self.metrics.synthesis_seconds.labels(protocol, record.method).observe(elapsed_s)
            self.metrics.audio_seconds.labels(record.voice).inc(record.audio_s)
            self.metrics.real_time_factor.labels(protocol, record.method).observe(
                elapsed_s / record.audio_s)
        if record.first_chunk_s is not None and record.method in STREAMING_METHODS:
            self.metrics.time_to_first_chunk.labels(protocol).observe(record.first_chunk_s)
        first = f"{record.first_chunk_s:.3f}" if record.first_chunk_s is not None else "-"
        text = f" text={record.text!r}" if self._log_text and record.text else ""
        _LOGGER.info(
            "request_id=%s protocol=%s method=%s status=%s voice=%s text_chars=%d pieces=%d/%d "
            "audio_s=%.2f first_chunk_s=%s total_s=%.3f%s",
            record.request_id, protocol, record.method, code.name, record.voice or "-",
            record.text_chars, record.pieces_sent, record.pieces_total, record.audio_s, first,
            elapsed_s, text)

    def begin(self, method: str, sent_request_id: object, protocol: str) -> CallRecord:
        """Opens the record of one call (any protocol); `finish` closes it."""
        record = CallRecord(method=method, request_id=request_id(sent_request_id),
                            protocol=protocol)
        _CURRENT.set(record)
        return record

    async def start(self, method: str, context: grpc.aio.ServicerContext) -> CallRecord:
        record = self.begin(method, _sent_request_id(context.invocation_metadata()), "grpc")
        if method not in ACCEPTS_FIRST_MESSAGE:
            await self.accept(record, context)
        return record

    async def accept(self, record: CallRecord, context: grpc.aio.ServicerContext) -> None:
        """Sends the response headers (x-request-id): the call is under way."""
        await context.send_initial_metadata((("x-request-id", record.request_id),))

    def refused(self, method_path: str, metadata: Any, code: grpc.StatusCode) -> None:
        """Logs and counts a call refused before it reached the servicer (e.g. no token)."""
        method = method_path.rsplit("/", 1)[-1]
        self.finish(CallRecord(method=method, request_id=request_id(_sent_request_id(metadata)),
                               protocol="grpc"), code)

    async def fail(self, record: CallRecord, error: Exception,
                   context: grpc.aio.ServicerContext) -> None:
        """Ends the call with the error's status (raises grpc's AbortError)."""
        if not isinstance(error, ServiceError):
            _LOGGER.exception("request_id=%s failed unexpectedly", record.request_id)
        await context.abort_with_status(to_status(error)[1])


class ObservedServicer:
    """A servicer whose methods are wrapped with `observed`; it owns the observer."""

    observer: CallObserver


def observed(handler: F) -> F:
    """Decorates a servicer method of an ObservedServicer: unary, or streaming responses
    (server or bidirectional streaming: the request argument is then the request iterator).

    Every call is counted and logged once: OK, the mapped error, DEADLINE_EXCEEDED when the
    call outlived its deadline, or CANCELLED when the client went away.
    """
    method = handler.__name__

    if inspect.isasyncgenfunction(handler):
        @functools.wraps(handler)
        async def stream(servicer: ObservedServicer, request: Any,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            observer = servicer.observer
            record = await observer.start(method, context)
            code = grpc.StatusCode.CANCELLED
            try:
                async for response in handler(servicer, request, context):
                    yield response
                code = grpc.StatusCode.OK
            except Exception as error:  # every failure gets a status
                code = to_status(error)[0]
                await observer.fail(record, error, context)
            finally:
                observer.finish(record, _unfinished(code, context))
        return stream  # type: ignore[return-value]

    @functools.wraps(handler)
    async def unary(servicer: ObservedServicer, request: Any,
                    context: grpc.aio.ServicerContext) -> Any:
        observer = servicer.observer
        record = await observer.start(method, context)
        code = grpc.StatusCode.CANCELLED
        try:
            response = await handler(servicer, request, context)
            code = grpc.StatusCode.OK
            return response
        except Exception as error:  # every failure gets a status
            code = to_status(error)[0]
            await observer.fail(record, error, context)
        finally:
            observer.finish(record, _unfinished(code, context))
    return unary  # type: ignore[return-value]


def _unfinished(code: grpc.StatusCode, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """Tells a passed deadline from a client that went away: grpc cancels the task for both."""
    if code == grpc.StatusCode.CANCELLED:
        remaining_s = context.time_remaining()
        if remaining_s is not None and remaining_s <= _DEADLINE_SLACK_S:
            return grpc.StatusCode.DEADLINE_EXCEEDED
    return code
