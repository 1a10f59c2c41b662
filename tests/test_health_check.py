"""The container health probe (`python -m tts_service.health_check`) on a real port."""

from __future__ import annotations

import asyncio
import socket

from tts_service import health_check as probe

from .fakes import fake_server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_probe_passes_only_while_the_server_is_serving() -> None:
    async with fake_server() as served:
        address = f"127.0.0.1:{served.running.port}"
        assert await asyncio.to_thread(probe.main, [address]) == 0
        await served.running.health.enter_graceful_shutdown()  # what SIGTERM does first
        assert await asyncio.to_thread(probe.main, [address]) == 1
    assert await asyncio.to_thread(probe.main, [f"127.0.0.1:{_closed_port()}"]) == 1
