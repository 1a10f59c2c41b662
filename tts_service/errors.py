"""Domain errors: what went wrong, in words a caller can act on. They know nothing of gRPC."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors a caller is told about (the message is shown to them)."""


class InvalidRequest(ServiceError):
    """A request field is missing or out of range; `field` names it as in the proto."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Overloaded(ServiceError):
    """Every engine is busy and the waiting line is full."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReady(ServiceError):
    """The service is starting or shutting down."""


class IdleTimeout(ServiceError):
    """A caller streaming text sent nothing for longer than the server waits."""


class Unsupported(ServiceError):
    """The request asks for something this server cannot do as configured; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Unauthenticated(ServiceError):
    """The caller did not prove who it is (a missing or wrong bearer token)."""


class CallerGone(Exception):
    """The caller went away before the call was done (a closed connection, half a body).

    Not a fault of the server: such calls end CANCELLED, never INTERNAL.
    """
