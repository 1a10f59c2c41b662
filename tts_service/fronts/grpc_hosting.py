"""The gRPC front: a grpc.aio server with the TextToSpeech servicer, health and reflection."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.calls.connections import ConnectionLimits
from tts_service.calls.speech_call import Calls
from tts_service.fronts import security
from tts_service.fronts.front import FrontStartError
from tts_service.fronts.grpc_outcomes import OutcomeInterceptor, sent_request_id
from tts_service.fronts.grpc_servicer import RuntimeDescription, TextToSpeechServicer

SERVICE_NAME = tts_pb2.DESCRIPTOR.services_by_name["TextToSpeechService"].full_name


def connection_age_options(age_s: float, grace_s: float) -> list[tuple[str, int]]:
    """gRPC channel arguments that make clients reconnect (and so rebalance) now and then;
    none for an age of 0."""
    if age_s == 0:
        return []
    return [("grpc.max_connection_age_ms", round(age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", round(grace_s * 1000))]


def connection_limit_options(limits: ConnectionLimits) -> list[tuple[str, int]]:
    """gRPC channel arguments for --max-connections and --connection-idle-timeout.

    gRPC's core applies both below Python: a connection beyond the limit is closed as soon as
    it is accepted (the client sees UNAVAILABLE and retries with backoff), and one with no
    call for the idle time gets a GOAWAY and is closed (its client reconnects for its next
    call). A call in progress keeps its connection open however long it runs.
    """
    return [("grpc.max_allowed_incoming_connections", limits.max_connections),
            ("grpc.max_connection_idle_ms", round(limits.idle_timeout_s * 1000))]


class GrpcFront:
    """TextToSpeechService, the standard health service and reflection on one port."""

    name = "gRPC"

    def __init__(self, calls: Calls, runtime: RuntimeDescription,
                 health_servicer: health.aio.HealthServicer, host: str, address: str,
                 credentials: grpc.ServerCredentials | None, token: str | None,
                 max_connection_age_s: float = 0, max_connection_age_grace_s: float = 0,
                 limits: ConnectionLimits | None = None) -> None:
        """`address` is host:port as gRPC binds it; `host` as the log line shows it."""
        self._calls = calls
        self._runtime = runtime
        self._health = health_servicer
        self._host = host
        self._address = address
        self._credentials = credentials
        self._token = token
        self._options = [*connection_age_options(max_connection_age_s,
                                                 max_connection_age_grace_s),
                         *connection_limit_options(limits or ConnectionLimits())]
        self._server: grpc.aio.Server | None = None
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def serving(self) -> str:
        return f"{SERVICE_NAME} on {self._host}:{self._port}"

    async def start(self) -> None:
        calls = self._calls
        interceptors: list[grpc.aio.ServerInterceptor] = [
            OutcomeInterceptor(calls, [SERVICE_NAME])]
        if self._token:  # outermost: a call without the token never reaches the servicer
            interceptors.insert(0, security.BearerTokenInterceptor(
                self._token, [SERVICE_NAME], lambda method, metadata, error: calls.refused(
                    method.rsplit("/", 1)[-1], "grpc", sent_request_id(metadata), error)))
        server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", calls.limits.max_request_bytes),
            *self._options,
        ])
        tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(
            TextToSpeechServicer(calls, self._runtime), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        try:
            self._port = (server.add_secure_port(self._address, self._credentials)
                          if self._credentials else server.add_insecure_port(self._address))
        except RuntimeError as err:
            await server.stop(None)
            # grpc logs the system's reason (e.g. "Address already in use") on the line before.
            raise FrontStartError(f"cannot listen on {self._address}: {err}") from err
        try:
            await server.start()
        except BaseException:
            await server.stop(None)
            raise
        self._server = server

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)
