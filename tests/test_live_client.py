"""tts-grpc-client --live end to end: real server, stdin written over time, ALSA's file plugin."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from harness.servers import REPO, ServerProcess
from harness.speech import transcribe, word_error_rate

from .test_client import RATE_HZ, client_command, client_env, file_device, run_client

pytestmark = pytest.mark.model

FIRST = "The weather is lovely today. "
SECOND = "We walked along the river."
WAIT_S = 60.0


def _played_s(raw: Path) -> float:
    return raw.stat().st_size / 2 / RATE_HZ if raw.exists() else 0.0


def test_live_plays_each_sentence_before_stdin_is_closed(server: ServerProcess,
                                                         tmp_path: Path) -> None:
    config, raw = file_device(tmp_path, "live")
    client = subprocess.Popen(
        client_command("--server", server.address, "--live", "--voice", "af_bella"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=client_env(config), cwd=REPO)
    assert client.stdin is not None
    try:
        # Like an LLM: a few characters at a time; the first sentence ends, then nothing.
        for at in range(0, len(FIRST), 4):
            client.stdin.write(FIRST[at:at + 4])
            client.stdin.flush()
            time.sleep(0.03)
        deadline = time.monotonic() + WAIT_S
        while _played_s(raw) < 0.5:
            assert client.poll() is None, client.communicate()[1]
            assert time.monotonic() < deadline, "nothing played while stdin stayed open"
            time.sleep(0.05)
        assert client.poll() is None  # still reading: the sound came from the open input
        _, stderr = client.communicate(SECOND, timeout=WAIT_S)  # then closes stdin
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, stderr
    played = np.fromfile(raw, dtype="<i2")
    assert word_error_rate(FIRST + SECOND, transcribe(played, RATE_HZ)) <= 0.2


def test_live_with_text_argument_is_refused() -> None:
    result = run_client("--live", "Hello there.")
    assert result.returncode == 1
    assert "--live speaks standard input" in result.stderr
    assert "Traceback" not in result.stderr


def test_live_with_empty_input_says_there_was_nothing(server: ServerProcess) -> None:
    result = run_client("--server", server.address, "--live", "--no-play", stdin="")
    assert result.returncode == 1
    assert "standard input had no text" in result.stderr


def test_live_with_an_unknown_voice_fails_cleanly_while_input_still_comes(
        server: ServerProcess) -> None:
    result = run_client("--server", server.address, "--live", "--voice", "zz_nobody",
                        "--no-play", stdin="Hello there. " * 200)
    assert result.returncode == 1
    # The client sends text only once the server has accepted the config, so the refusal is
    # never raced by a write (which grpc would report as INTERNAL, grpc/grpc#36066).
    assert "INVALID_ARGUMENT: unknown voice 'zz_nobody'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
