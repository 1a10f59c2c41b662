"""The HTTP front's hosting: uvicorn in the server's event loop, on a port bound at start-up,
with the server's TLS files, serving the routes of http_routes (and the WebSocket's)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

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


class HttpFront:
    """The OpenAI-compatible API, the playground and the live-text WebSocket on one port."""

    name = "HTTP"

    def __init__(self, api: HttpApi, host: str, port: int, tls_cert: Path | None = None,
                 tls_key: Path | None = None, tls_client_ca: Path | None = None,
                 live_calls: InFlight | None = None) -> None:
        """`live_calls` are the WebSocket calls, which a stop lets finish first (uvicorn would
        close them at once, code 1012)."""
        self._api = api
        self._host = host
        self._port = port
        self._tls = (tls_cert, tls_key, tls_client_ca)
        self.live_calls = live_calls
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self._port

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
            ssl_certfile=tls_cert, ssl_keyfile=tls_key,
            ssl_ca_certs=str(tls_client_ca) if tls_client_ca else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls_client_ca else ssl.CERT_NONE)
        try:
            config.load()  # reads the TLS files: a bad one fails here, with its reason
        except (OSError, ValueError) as err:
            raise FrontStartError(f"cannot serve HTTP with TLS files {tls_cert}, {tls_key}: "
                                  f"{err}") from err
        server = _EmbeddedServer(config)
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
