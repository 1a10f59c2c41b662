"""The one place where domain errors become gRPC statuses with google.rpc details."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .errors import IdleTimeout, InvalidRequest, NotReady, Overloaded, ServiceError, Unsupported


def to_status(error: BaseException) -> tuple[grpc.StatusCode, grpc.Status]:
    """Maps an exception to its status code and a rich status (details the client can read)."""
    detail: Any = None
    if isinstance(error, InvalidRequest):
        code = code_pb2.INVALID_ARGUMENT
        detail = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=error.field,
                                                         description=str(error))
        ])
    elif isinstance(error, Overloaded):
        code = code_pb2.RESOURCE_EXHAUSTED
        detail = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(error.retry_after_s),
                                              nanos=int(error.retry_after_s % 1 * 1e9)))
    elif isinstance(error, NotReady):
        code = code_pb2.UNAVAILABLE
    elif isinstance(error, IdleTimeout):
        code = code_pb2.DEADLINE_EXCEEDED
    elif isinstance(error, Unsupported):
        code = code_pb2.FAILED_PRECONDITION
        detail = error_details_pb2.PreconditionFailure(violations=[
            error_details_pb2.PreconditionFailure.Violation(type="SERVER_CONFIGURATION",
                                                            subject=error.field,
                                                            description=str(error))
        ])
    else:
        code = code_pb2.INTERNAL
    message = str(error) if isinstance(error, ServiceError) else (
        "internal error while synthesizing; the server log has the details")
    status = status_pb2.Status(code=code, message=message)
    if detail is not None:
        status.details.add().Pack(detail)
    converted = rpc_status.to_status(status)
    return converted.code, converted
