"""Shared fixtures: one real server (real model, real port) for the modules that need it;
the check that a test marked `tools` has its commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from harness.servers import MODEL_DIR, REPO, ServerProcess, free_port, start_server
from tts_api.v1 import tts_pb2_grpc

# Where the test lab's commands are besides PATH: the venv's (pytest may run without it on
# PATH) and buf's npm prefix (the Makefile's BUF).
_TOOL_DIRS = (os.path.dirname(sys.executable),
              str(REPO / "build" / "buf" / "node_modules" / ".bin"))
# Not a command: the package registries, reachable wherever `make test` runs.
_NETWORK = "network"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked tools(...) fails at once, and says how to install what it lacks."""
    path = os.pathsep.join([*_TOOL_DIRS, os.environ.get("PATH", "")])
    missing = [name for marker in item.iter_markers("tools") for name in marker.args
               if name != _NETWORK and shutil.which(name, path=path) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)}: not installed; `make install` installs the test "
                    "lab (or leave such tests out with -m 'not tools')", pytrace=False)


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


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The onnxruntime shim built from native/ into a private place, so a test checks these
    sources rather than whatever build/ holds."""
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler to build the onnxruntime shim")
    out = tmp_path_factory.mktemp("shim") / "libonnxruntime.so"
    subprocess.run(["sh", str(REPO / "native" / "build.sh"), str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not (MODEL_DIR / "model.onnx").is_file():
        pytest.skip(f"Kokoro model not found in {MODEL_DIR} (set TTS_MODEL_DIR)")
    return MODEL_DIR


@pytest.fixture(scope="module")
async def channel(server: ServerProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as chan:
        yield chan


@pytest.fixture(scope="module")
def stub(channel: grpc.aio.Channel) -> tts_pb2_grpc.TextToSpeechServiceStub:
    return tts_pb2_grpc.TextToSpeechServiceStub(channel)
