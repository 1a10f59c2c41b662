"""What the client says when something fails: one line, the status, and what to do."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class CliError(Exception):
    """A failure explained to the person at the terminal; exits non-zero."""


def explain(error: grpc.aio.AioRpcError, server: str, timeout_s: float) -> str:
    """A message for a failed call: the status, the server's words and what to do."""
    code = error.code()
    details = error.details() or ""
    hint = ""
    if code == grpc.StatusCode.UNAVAILABLE and _is_connection_failure(error):
        return (f"cannot reach the server at {server}: is it running? start it with "
                f"`make serve` (or point --server / TTS_SERVER at it). ({details})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        hint = (f"the call did not finish within --timeout {timeout_s:g} s; raise it or "
                "send shorter text")
    elif code == grpc.StatusCode.NOT_FOUND or "config.voice" in _bad_fields(error):
        hint = "run `tts-grpc-client --list-voices` to see the voices"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        hint = "pass the server's token with --token-file FILE or env TTS_TOKEN"
    elif code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
        hint = "the server is busy or restarting; try again in a few seconds"
    message = f"{code.name}: {details}"
    return f"{message}\n  hint: {hint}" if hint else message


def _is_connection_failure(error: grpc.aio.AioRpcError) -> bool:
    # The server itself also answers UNAVAILABLE (while shutting down); only a failure of
    # the channel means nothing is listening at the address.
    text = f"{error.details()} {error.debug_error_string()}".lower()
    return any(sign in text for sign in ("failed to connect", "connection refused",
                                         "connect failed", "unreachable", "resolving",
                                         "lookup failed", "dns resolution"))


def _bad_fields(error: grpc.aio.AioRpcError) -> set[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields: set[str] = set()
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields.update(v.field for v in bad_request.field_violations)
    return fields
