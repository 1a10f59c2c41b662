"""The HTTP front's hosting: uvicorn in the server's event loop, on a port bound at start-up,
with the server's TLS files, serving the routes of http_routes (and the WebSocket's).

uvicorn bounds a request's head (h11's 16 KiB) and, after a response, the wait for the next
request (`timeout_keep_alive`, 5 s), but not the wait for a new connection's first request, a
request head or body that trickles in, nor a client that stops reading its response; and
`limit_concurrency` answers 503 only once a request has arrived, while idle connections pile
up. `_GuardedH11` adds those bounds (calls/connections.py). A WebSocket, once upgraded, has its
own: the first message within --streaming-idle-timeout, and uvicorn's pings, which close a
client that reads nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tts_service.calls.connections import ConnectionGuard
from tts_service.fronts.front import FrontStartError
from tts_service.fronts.http_routes import HttpApi
from tts_service.fronts.in_flight import InFlight


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the gRPC server's event loop: the gRPC side owns SIGTERM and SIGINT and
    drains both (uvicorn 0.54 would otherwise replace their handlers while it runs)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so that a taken port fails at start-up (OSError)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _guarded(guard: ConnectionGuard) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with `guard`'s limits on connections."""

    class _GuardedH11(H11Protocol):
        _refused = False
        _request_timer: asyncio.TimerHandle | None = None
        _stall_timer: asyncio.TimerHandle | None = None
        _received = False  # bytes of the awaited request have arrived

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            # uvicorn's set holds every open connection, WebSockets included.
            refusal = guard.refusal(len(self.server_state.connections),
                                    transport.get_extra_info("peername"))
            if refusal is not None:
                self._refused = True
                transport.write(_response(503, "Service Unavailable", "server_error", refusal,
                                          "retry-after: 5\r\n"))
                transport.close()
                return
            super().connection_made(transport)
            self._await_request()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._cancel_timers()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            self._received = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._await_request()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._stall_timer is None:
                self._stall_timer = self.loop.call_later(guard.idle_timeout_s, self._stalled)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
                self._stall_timer = None

        def _await_request(self) -> None:
            """The next request, head and body, must arrive within the idle timeout."""
            if self.transport.is_closing():
                return
            if self._request_timer is not None:
                self._request_timer.cancel()
            self._received = False
            self._request_timer = self.loop.call_later(guard.idle_timeout_s,
                                                       self._request_late)

        def _request_late(self) -> None:
            self._request_timer = None
            cycle = self.cycle
            waiting = cycle is None or cycle.response_complete
            if (self.transport.is_closing() or self.transport.get_protocol() is not self
                    or (not waiting and not cycle.more_body)):
                return  # closed, a WebSocket now, or the request is in and being answered
            idle_s = guard.idle_timeout_s
            reason, message = (
                ("slow_request", f"the request took over {idle_s:g} s to arrive: send it "
                 "at once") if self._received or not waiting else
                ("idle", f"no request within {idle_s:g} s: the connection is closed; open "
                 "a new one for the next request"))
            guard.closed(reason, self.client, message)
            if waiting or not cycle.response_started:
                self.transport.write(_response(408, "Request Timeout", "invalid_request_error",
                                               message))
            self.transport.close()  # a request being read ends as its client gone

        def _stalled(self) -> None:
            self._stall_timer = None
            if not self.transport.is_closing():
                guard.closed("stalled_reader", self.client, "the client read nothing for "
                             f"{guard.idle_timeout_s:g} s")
                self.transport.abort()  # what is buffered for it will never be read

        def _cancel_timers(self) -> None:
            for timer in (self._request_timer, self._stall_timer):
                if timer is not None:
                    timer.cancel()
            self._request_timer = self._stall_timer = None

    return _GuardedH11


def _response(status: int, reason: str, kind: str, message: str, headers: str = "") -> bytes:
    """A whole response that closes the connection, in OpenAI's error shape, written before
    or instead of the app's."""
    body = json.dumps({"error": {"message": message, "type": kind, "param": None,
                                 "code": None}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{headers}\r\n"
            ).encode() + body


class HttpFront:
    """The OpenAI-compatible API, the playground and the live-text WebSocket on one port."""

    name = "HTTP"

    def __init__(self, api: HttpApi, host: str, port: int, tls_cert: Path | None = None,
                 tls_key: Path | None = None, tls_client_ca: Path | None = None,
                 live_calls: InFlight | None = None, guard: ConnectionGuard | None = None
                 ) -> None:
        """`live_calls` are the WebSocket calls, which a stop lets finish first (uvicorn would
        close them at once, code 1012); `guard` limits the connections (None:
        uvicorn's own limits only)."""
        self._api = api
        self._host = host
        self._port = port
        self._tls = (tls_cert, tls_key, tls_client_ca)
        self.live_calls = live_calls
        self._guard = guard
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def server(self) -> uvicorn.Server | None:
        """The running uvicorn server (None before start)."""
        return self._server

    @property
    def serving(self) -> str:
        scheme = "https" if self._tls[0] else "http"
        return (f"the OpenAI-compatible speech API and the playground on "
                f"{scheme}://{self._host}:{self._port}/")

    async def start(self) -> None:
        try:
            sock = _bind(self._host, self._port)
        except OSError as err:
            raise FrontStartError(f"cannot serve HTTP on port {self._port}: "
                                  f"{err.strerror}") from err
        try:
            self._server, self._task = await self._serve(sock)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]

    async def _serve(self, sock: socket.socket
                     ) -> tuple[uvicorn.Server, asyncio.Task[None]]:
        """Starts uvicorn on `sock` as a task of the running loop; raises FrontStartError."""
        tls_cert, tls_key, tls_client_ca = self._tls
        config = uvicorn.Config(
            self._api.app, log_config=None, access_log=False, lifespan="off",
            # wsproto, named rather than found: the tests' WebSocket client (websockets) is
            # then never also the server's implementation.
            ws="wsproto", ws_max_size=self._api.max_message_bytes,
            http=_guarded(self._guard) if self._guard is not None else "h11",
            ssl_certfile=tls_cert, ssl_keyfile=tls_key,
            ssl_ca_certs=str(tls_client_ca) if tls_client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls_client_ca else ssl.CERT_NONE)
        try:
            config.load()  # reads the TLS files: a bad one fails here, with its reason
        except (OSError, ValueError) as err:
            raise FrontStartError(f"cannot serve HTTP with TLS files {tls_cert}, {tls_key}: "
                                  f"{err}") from err
        server = _EmbeddedServer(config)
        if self._guard is not None:
            self._guard.watch(lambda: len(server.server_state.connections))
        task = asyncio.create_task(server.serve(sockets=[sock]), name="http-front")
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if not server.started:
            error = task.exception() if not task.cancelled() else None
            raise FrontStartError(
                f"the HTTP front did not start: {error or 'see the log above'}")
        return server, task

    async def stop(self, grace_s: float) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        started = time.monotonic()
        if self.live_calls is not None:
            for listener in server.servers:
                listener.close()  # no new connections while the WebSocket calls finish
            await self.live_calls.drain(grace_s)
        left_s = max(0.0, grace_s - (time.monotonic() - started))
        server.config.timeout_graceful_shutdown = math.ceil(left_s)
        server.should_exit = True
        await task
