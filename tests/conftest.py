"""Shared fixtures: one real server (real model, real port) for the modules that need it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from harness.servers import ServerProcess, free_port, start_server
from tts_api.v1 import tts_pb2_grpc


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """The default server: as `make serve` starts it, on a free port."""
    running = start_server()
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.fixture(scope="session")
def http_server() -> Iterator[ServerProcess]:
    """A one-engine server that also serves the HTTP API, the playground and Wyoming."""
    running = start_server("--engines", "1", "--http-port", str(free_port()),
                           "--wyoming-port", str(free_port()))
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.fixture(scope="module")
async def channel(server: ServerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as chan:
        yield chan


@pytest.fixture(scope="module")
def stub(channel: grpc.aio.Channel) -> tts_pb2_grpc.TextToSpeechServiceStub:
    return tts_pb2_grpc.TextToSpeechServiceStub(channel)
