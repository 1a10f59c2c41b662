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
from tts_service.calls.request import Limits
from tts_service.calls.speech_call import Calls
from tts_service.fronts.front import FrontStartError
from tts_service.fronts.http_hosting import HttpFront
from tts_service.fronts.http_routes import HttpApi
from tts_service.fronts.wyoming import WyomingFront
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


async def test_a_front_that_cannot_start_stops_the_fronts_started_before_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Wyoming starts last: its taken port stops the gRPC and HTTP fronts already serving and
    the metrics server, and the start fails naming the port."""
    port, metrics_port, http_port = free_port(), free_port(), free_port()
    serving_before_wyoming: list[bool] = []
    start_wyoming = WyomingFront.start

    async def start(self: WyomingFront) -> None:
        serving_before_wyoming.extend(_listening(p) for p in (port, metrics_port, http_port))
        await start_wyoming(self)

    monkeypatch.setattr(WyomingFront, "start", start)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        wyoming_port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot serve Wyoming on port {wyoming_port}: "
                           ".*already in use"):
            async with fake_server(port=port, metrics_port=metrics_port, http_port=http_port,
                                   wyoming_port=wyoming_port):
                pass
    assert serving_before_wyoming == [True, True, True]
    assert not any(_listening(p) for p in (port, metrics_port, http_port))
    assert _engine_threads() == []
    async with fake_server(port=port, metrics_port=metrics_port, http_port=http_port):
        assert all(_listening(p) for p in (port, metrics_port, http_port))  # free again


async def test_a_taken_grpc_port_stops_the_start_and_leaves_no_engine_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with fake_server(port=port):
                pass
    assert _engine_threads() == []


async def test_a_tls_file_uvicorn_cannot_load_fails_the_http_front(tmp_path: Path) -> None:
    """uvicorn's own loading errors come back as one clear error, never a traceback."""
    pki = make_pki(tmp_path)
    # No request is served: the calls need only their limits.
    api = HttpApi(cast(Calls, SimpleNamespace(limits=Limits(max_text_chars=10))), None)
    front = HttpFront(api, "127.0.0.1", 0, pki.server_cert, pki.client_key)
    with pytest.raises(FrontStartError, match="cannot serve HTTP with TLS files"):
        await front.start()
