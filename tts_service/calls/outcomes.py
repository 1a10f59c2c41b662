"""How a call ended: every way a call can end, classified once, for every front.

The codes are Google's canonical error codes (google.rpc.Code): they describe what happened,
not a protocol. gRPC sends them as they are; each other front has its own small table (HTTP
statuses in http_api, Wyoming error events). The request log and the metrics use their names.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum

from tts_service.errors import (
    CallerGone,
    IdleTimeout,
    InvalidRequest,
    NotReady,
    Overloaded,
    Unauthenticated,
    Unsupported,
)

INTERNAL_MESSAGE = "internal error while synthesizing; the server log has the details"


class Code(Enum):
    OK = "OK"
    CANCELLED = "CANCELLED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAVAILABLE = "UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class Outcome:
    """What the caller is told, and whether the log needs the traceback."""

    code: Code
    message: str = ""
    field: str | None = None  # the request field at fault, in the front's own naming
    retry_after_s: float | None = None  # when retrying makes sense
    unexpected: bool = False  # a bug or a native failure: log the traceback, alert on it

    @property
    def ok(self) -> bool:
        return self.code is Code.OK


OK = Outcome(Code.OK)


def classify(error: BaseException | None) -> Outcome:
    """The outcome of a call that ended with `error` (None: it succeeded)."""
    if error is None:
        return OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit | CallerGone):
        return Outcome(Code.CANCELLED, "the caller went away")
    if isinstance(error, InvalidRequest):
        return Outcome(Code.INVALID_ARGUMENT, str(error), field=error.field)
    if isinstance(error, Overloaded):
        return Outcome(Code.RESOURCE_EXHAUSTED, str(error), retry_after_s=error.retry_after_s)
    if isinstance(error, NotReady):
        return Outcome(Code.UNAVAILABLE, str(error))
    if isinstance(error, IdleTimeout):
        return Outcome(Code.DEADLINE_EXCEEDED, str(error))
    if isinstance(error, Unsupported):
        return Outcome(Code.FAILED_PRECONDITION, str(error), field=error.field)
    if isinstance(error, Unauthenticated):
        return Outcome(Code.UNAUTHENTICATED, str(error))
    return Outcome(Code.INTERNAL, INTERNAL_MESSAGE, unexpected=True)
