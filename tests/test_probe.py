"""The container health probe (`python -m tts_service.probe`) against a real port, fake engine."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

from tts_service import probe
from tts_service.config import ServerConfig
from tts_service.server import start
from tts_service.servicer import RuntimeDescription
from tts_service.voices import VoiceCatalog

from .test_servicer_logic import FakeEngine


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_probe_passes_only_while_the_server_is_serving() -> None:
    config = replace(ServerConfig(), port=0, engines=1)
    runtime = RuntimeDescription("fake", "bundled", "0", 1, 1, 1)
    running = await start(config, [FakeEngine()], VoiceCatalog.from_names(["af_bella"]),
                          runtime)
    address = f"127.0.0.1:{running.port}"
    try:
        assert await asyncio.to_thread(probe.main, [address]) == 0
        await running.health.enter_graceful_shutdown()  # what SIGTERM does first
        assert await asyncio.to_thread(probe.main, [address]) == 1
    finally:
        await running.stop(grace_s=1)
    assert await asyncio.to_thread(probe.main, [f"127.0.0.1:{_closed_port()}"]) == 1
