"""Start-up failures stop everything started so far and say why in one line (fast tier).

A failure at each step: nothing keeps listening, no engine thread is left, the metrics port
is free again; the exit is one `cannot start:` line with status 2 (tests/test_config.py).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from harness.servers import free_port
from tts_service import server
from tts_service.calls.request import Limits
from tts_service.calls.speech_call import Calls
from tts_service.fronts.http_routes import HttpApi, HttpStartError, bind, serve_http
from tts_service.server import StartupError

from .certs import make_pki
from .fakes import FakeEngine, fake_server


def _engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("engine")]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(autouse=True)
def _no_engine_threads_before() -> None:
    assert _engine_threads() == []


async def test_an_engine_that_fails_its_warm_up_stops_the_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: FakeEngine, *args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot run the model")

    monkeypatch.setattr(FakeEngine, "speak", broken)
    port = free_port()
    with pytest.raises(StartupError, match="an engine failed its first synthesis: cannot run"):
        async with fake_server(port=port):
            pass
    assert not _listening(port)
    assert _engine_threads() == []


async def test_a_failure_after_the_grpc_front_started_stops_it_and_the_metrics_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def fails(*args: object, **kwargs: object) -> None:
        raise HttpStartError("the HTTP front did not start: injected")

    monkeypatch.setattr(server, "serve_http", fails)
    port, metrics_port, http_port = free_port(), free_port(), free_port()
    with pytest.raises(StartupError, match="injected"):
        async with fake_server(port=port, metrics_port=metrics_port, http_port=http_port):
            pass
    assert not _listening(port)
    assert not _listening(metrics_port)
    assert not _listening(http_port)
    assert _engine_threads() == []
    async with fake_server(port=port, metrics_port=metrics_port):  # both ports are free
        assert _listening(port) and _listening(metrics_port)


async def test_a_taken_grpc_port_stops_the_start_and_leaves_no_engine_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with fake_server(port=port):
                pass
    assert _engine_threads() == []


async def test_a_tls_file_uvicorn_cannot_load_is_an_http_start_error(tmp_path: Path) -> None:
    """uvicorn's own loading errors come back as one clear error, never a traceback."""
    pki = make_pki(tmp_path)
    sock = bind("127.0.0.1", 0)
    try:
        # No request is served: the calls need only their limits.
        api = HttpApi(cast(Calls, SimpleNamespace(limits=Limits(max_text_chars=10))), None)
        with pytest.raises(HttpStartError, match="cannot serve HTTP with TLS files"):
            await serve_http(api, sock, pki.server_cert, pki.client_key, None)
    finally:
        sock.close()
