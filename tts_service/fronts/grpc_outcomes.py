"""gRPC's side of a call's outcome: the status it ends with, set in one interceptor.

The servicer raises; this interceptor turns what it raised into the call's status with
google.rpc details a client can read (BadRequest, RetryInfo, PreconditionFailure). It also
turns a request that cannot be decoded (a string field that is not UTF-8) into
INVALID_ARGUMENT, counted like any other call, where grpc would answer UNKNOWN.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from tts_service.calls.outcomes import Code, Outcome, classify
from tts_service.calls.speech_call import CallFailed, Calls, log_value
from tts_service.errors import InvalidRequest

_LOGGER = logging.getLogger(__name__)


def to_status(outcome: Outcome) -> grpc.Status:
    """The rich gRPC status of an outcome."""
    detail: Any = None
    if outcome.code is Code.INVALID_ARGUMENT and outcome.field is not None:
        detail = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=outcome.field,
                                                         description=outcome.message)])
    elif outcome.code is Code.RESOURCE_EXHAUSTED and outcome.retry_after_s is not None:
        delay = outcome.retry_after_s
        detail = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
            seconds=int(delay), nanos=int(delay % 1 * 1e9)))
    elif outcome.code is Code.FAILED_PRECONDITION and outcome.field is not None:
        detail = error_details_pb2.PreconditionFailure(violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type="SERVER_CONFIGURATION", subject=outcome.field,
                description=outcome.message)])
    status = status_pb2.Status(code=grpc.StatusCode[outcome.code.name].value[0],
                               message=outcome.message)
    if detail is not None:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def sent_request_id(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "x-request-id" and isinstance(value, str):
            return value
    return None


class _Undecodable:
    """Stands in for a request message that could not be decoded."""

    def __init__(self, error: DecodeError) -> None:
        self.problem = InvalidRequest(
            "request", f"the request could not be decoded ({error}): text must be UTF-8")


class OutcomeInterceptor(grpc.aio.ServerInterceptor):
    """Ends every call to `services` with the status of its outcome."""

    def __init__(self, calls: Calls, services: Collection[str]) -> None:
        self._calls = calls
        self._prefixes = tuple(f"/{service}/" for service in services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        path = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or not path.startswith(self._prefixes):
            return handler
        method = path.rsplit("/", 1)[-1]
        metadata = handler_call_details.invocation_metadata  # type: ignore[attr-defined]
        decode = handler.request_deserializer

        def deserialize(data: bytes) -> Any:
            try:
                return decode(data)
            except DecodeError as error:
                return _Undecodable(error)

        kinds = dict(request_deserializer=deserialize,
                     response_serializer=handler.response_serializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, metadata), **kinds)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method, metadata), **kinds)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream, method, metadata, requests=True),
                **kinds)
        return handler

    def _unary(self, behavior: Callable[..., Awaitable[Any]], method: str, metadata: Any
               ) -> Callable[..., Awaitable[Any]]:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await self._refuse(method, metadata, request.problem, context)
            try:
                return await behavior(request, context)
            except Exception as error:
                await self._abort(error, context)

        return unary

    def _streaming(self, behavior: Callable[..., AsyncIterator[Any]], method: str,
                   metadata: Any, requests: bool = False) -> Callable[..., AsyncIterator[Any]]:
        async def streaming(request: Any, context: grpc.aio.ServicerContext
                            ) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await self._refuse(method, metadata, request.problem, context)
            try:
                async for response in behavior(_decoded(request) if requests else request,
                                               context):
                    yield response
            except Exception as error:
                await self._abort(error, context)

        return streaming

    async def _refuse(self, method: str, metadata: Any, error: Exception,
                      context: grpc.aio.ServicerContext) -> None:
        outcome = self._calls.refused(method, "grpc", sent_request_id(metadata), error)
        await context.abort_with_status(to_status(outcome))

    @staticmethod
    async def _abort(error: Exception, context: grpc.aio.ServicerContext) -> None:
        if isinstance(error, grpc.aio.AbortError):
            raise error
        if isinstance(error, CallFailed):
            outcome = error.outcome
        else:  # raised outside any call: nothing logged it yet
            outcome = classify(error)
            _LOGGER.error("a call failed outside its record: %s", log_value(str(error)),
                          exc_info=error)
        await context.abort_with_status(to_status(outcome))


async def _decoded(requests: AsyncIterable[Any]) -> AsyncIterator[Any]:
    """The request messages; one that could not be decoded ends the call as invalid."""
    async for request in requests:
        if isinstance(request, _Undecodable):
            raise request.problem
        yield request
