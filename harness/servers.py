"""Starts the real tts-grpc-server in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tts_service.config import DEFAULT_MODEL_DIR, REPO_ROOT

REPO = REPO_ROOT
# The model the servers load: the server's default, or the one TTS_MODEL_DIR names.
MODEL_DIR = Path(os.environ.get("TTS_MODEL_DIR", DEFAULT_MODEL_DIR))
# What a model assembled before word timings existed lacks (see models/assemble.py).
_NO_DURATIONS = ("{model} has no '{output}' output: it was assembled before word timings "
                 "existed; rebuild it with `make models` (or point TTS_MODEL_DIR at a model "
                 "assembled by `python models/assemble.py --out DIR`)")
_READY = re.compile(r"serving tts_api\.v1\.TextToSpeechService on (\S+):(\d+)")
_HTTP_READY = re.compile(r"speech API and the playground on https?://\S+:(\d+)/")
_WYOMING_READY = re.compile(r"serving the Wyoming protocol \(Home Assistant\) on tcp://\S+:(\d+)")


def require_durations(model_dir: Path = MODEL_DIR) -> None:
    """Fails the calling test, with the fix, when the model has no per-token durations.

    A failure, not a skip: word timings are part of the service, and a stale model would
    otherwise hide that they are untested.
    """
    import onnx
    import pytest

    from models.assemble import DURATIONS_OUTPUT

    model = model_dir / "model.onnx"
    graph = onnx.load(str(model), load_external_data=False).graph
    if DURATIONS_OUTPUT not in {output.name for output in graph.output}:
        pytest.fail(_NO_DURATIONS.format(model=model, output=DURATIONS_OUTPUT), pytrace=False)


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    port: int
    log: list[str] = field(default_factory=list)
    http_port: int | None = None  # when started with --http-port
    wyoming_port: int | None = None  # when started with --wyoming-port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        assert self.http_port is not None, "start the server with --http-port"
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_server(*args: str, env: dict[str, str] | None = None, timeout_s: float = 120.0,
                 wrapper: Sequence[str] = (), cwd: Path = REPO) -> ServerProcess:
    """Runs `python -m tts_service.server --port 0 ...` and waits until it is serving.

    `wrapper` is a command the server runs under (e.g. a tracer), the server's own command
    line appended to it. `cwd` is the checkout whose server runs (e.g. an earlier release's,
    beside this one's in a benchmark).
    """
    command: Sequence[str] = [*wrapper, sys.executable, "-m", "tts_service.server",
                              "--host", "127.0.0.1", "--port", "0", "--model-dir",
                              str(MODEL_DIR), *args]
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    assert process.stderr is not None
    log: list[str] = []
    found: list[int] = []
    http_ports: list[int] = []
    wyoming_ports: list[int] = []
    ready = threading.Event()

    def read_log() -> None:
        assert process.stderr is not None
        with process.stderr:  # closed at the server's exit, so no pipe outlives it
            for line in process.stderr:
                log.append(line)
                if http_match := _HTTP_READY.search(line):
                    http_ports.append(int(http_match.group(1)))
                if wyoming_match := _WYOMING_READY.search(line):
                    wyoming_ports.append(int(wyoming_match.group(1)))
                match = _READY.search(line)
                if match and not found:
                    found.append(int(match.group(2)))
                    ready.set()
        ready.set()

    threading.Thread(target=read_log, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.2):
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError("server did not start in time:\n" + "".join(log))
    if not found:
        process.wait(10)
        raise RuntimeError(f"server exited with {process.returncode}:\n" + "".join(log))
    return ServerProcess(process=process, port=found[0], log=log,
                         http_port=http_ports[0] if http_ports else None,
                         wyoming_port=wyoming_ports[0] if wyoming_ports else None)


def free_port() -> int:
    """A loopback port nobody listens on right now (for options where 0 means off)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
