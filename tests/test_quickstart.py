"""The README's quick start, run as written against the real server: the commands after
`make serve`, pointed at the shared server that also serves HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from harness.servers import REPO, ServerProcess
from harness.speech import transcribe, word_error_rate
from tts_service.config import ServerConfig

pytestmark = [pytest.mark.model, pytest.mark.tools("jq", "curl", "ffmpeg")]

RATE_HZ = 24000
TIMEOUT_S = 180


def quick_start_blocks() -> list[str]:
    section = re.split(r"^## ", (REPO / "README.md").read_text(), flags=re.M)[1]
    assert section.startswith("Quick start\n")
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def _decoded_mp3(path: Path) -> np.ndarray:
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                          "-ar", str(RATE_HZ), "-"], capture_output=True, check=True,
                         timeout=TIMEOUT_S).stdout
    return np.frombuffer(pcm, dtype="<i2")


def test_the_quick_start_speaks_its_sentence_three_ways(http_server: ServerProcess,
                                                        tmp_path: Path) -> None:
    serve, calls = quick_start_blocks()
    match = re.fullmatch(r"TTS_HTTP_PORT=(\d+) make serve\n", serve)
    assert match, serve
    grpc_target, http_target = f"localhost:{ServerConfig().port}", f"localhost:{match[1]}"
    # The commands reach what `make serve` started: its default gRPC port, the HTTP port set.
    assert grpc_target in calls and http_target in calls
    script = (calls.replace(grpc_target, http_server.address)
              .replace(http_target, f"127.0.0.1:{http_server.http_port}")
              .replace(".venv/bin/", f"{Path(sys.executable).parent}/"))
    played = tmp_path / "played.raw"
    alsa = tmp_path / "file.asoundrc"  # the default device writes what it plays to a file
    alsa.write_text('</usr/share/alsa/alsa.conf>\n'
                    f'pcm.!default {{ type file slave.pcm "null" file "{played}" '
                    'format "raw" }\n')
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path,
                          env={**os.environ, "TTS_SERVER": http_server.address,
                               "ALSA_CONFIG_PATH": str(alsa)},
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr

    said = re.search(r'tts-grpc-client .*"([^"]+)"$', calls, re.M)
    assert said, calls
    # The same sentence all three ways.
    assert f'"text": "{said[1]}"' in calls and f'"input": "{said[1]}"' in calls
    wav, wav_rate = soundfile.read(tmp_path / "hello.wav", dtype="int16")
    for name, audio, rate in [("played", np.fromfile(played, dtype="<i2"), RATE_HZ),
                              ("hello.wav", wav, wav_rate),
                              ("hello.mp3", _decoded_mp3(tmp_path / "hello.mp3"), RATE_HZ)]:
        assert word_error_rate(said[1], transcribe(audio, rate)) <= 0.2, name
