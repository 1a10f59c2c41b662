"""The tts-grpc-client command end to end: real server, real PortAudio into ALSA's file plugin.

A few runs of the installed command on the real model; the client's logic (input, files,
errors, --live, --debug) is tested in-process against the fast tier's server in
tests/test_client_cli.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile

from harness.servers import REPO, ServerProcess, start_server
from harness.speech import transcribe, word_error_rate
from tts_api.v1 import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.model

RATE_HZ = 24000
TEXT = "The weather is lovely today. We walked along the river and watched the boats."
CALL_TIMEOUT_S = 60.0
# About 2,000 characters (two to three minutes of speech): long enough that finishing it
# would take the server far longer than anything the interrupt test waits for.
LONG_TEXT = " ".join([
    "The old lighthouse stood at the edge of the cliff, its white paint peeling after "
    "decades of salt wind and winter storms. Every evening the keeper climbed the narrow "
    "spiral staircase and lit the great lamp that swept its beam across the dark water. "
    "Ships passing in the night relied on that steady light to find their way around the "
    "rocks, although most of the sailors never knew the name of the man who tended it."
] * 5)


def client_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("tts-grpc-client")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "tts_client.cli"]
    return [*launcher, *args]


def client_env(alsa_config: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TTS_SERVER", "ALSA_CONFIG_PATH")}
    if alsa_config is not None:
        env["ALSA_CONFIG_PATH"] = str(alsa_config)
    return env


def run_client(*args: str, alsa_config: Path | None = None, stdin: str | None = None,
               timeout_s: float = CALL_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(client_command(*args), input=stdin, capture_output=True, text=True,
                          env=client_env(alsa_config), cwd=REPO, timeout=timeout_s,
                          check=False, stdin=None if stdin is not None else subprocess.DEVNULL)


def file_device(directory: Path, name: str) -> tuple[Path, Path]:
    """An ALSA config whose default device writes every played sample to a raw file."""
    raw = directory / f"{name}.raw"
    config = directory / f"{name}.asoundrc"
    config.write_text('</usr/share/alsa/alsa.conf>\n'
                      f'pcm.!default {{ type file slave.pcm "null" file "{raw}" '
                      'format "raw" }\n')
    return config, raw


def seconds(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in {text!r}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """The default server with its audio cache off: these tests hear the client play a stream
    while it arrives, and the reference below would otherwise have it answered at once."""
    running = start_server("--audio-cache-mb", "0")
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.fixture(scope="module")
async def reference(stub: tts_pb2_grpc.TextToSpeechServiceStub) -> tts_pb2.SynthesizeResponse:
    """The server's own whole-text synthesis of TEXT, to compare the client's audio with."""
    request = tts_pb2.SynthesizeRequest(text=TEXT,
                                        config=tts_pb2.SynthesisConfig(voice="af_bella",
                                                                       encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE))
    response: tts_pb2.SynthesizeResponse = await stub.Synthesize(request,
                                                                 timeout=CALL_TIMEOUT_S)
    return response


async def test_plays_while_streaming(server: ServerProcess, tmp_path: Path,
                                     reference: tts_pb2.SynthesizeResponse) -> None:
    config, raw = file_device(tmp_path, "played")
    result = await asyncio.to_thread(run_client, "--server", server.address, "--voice",
                                     "af_bella", "--verbose", TEXT, alsa_config=config)
    assert result.returncode == 0, result.stderr
    # The file plugin receives S16_LE mono at the stream's rate, byte for byte.
    played = np.fromfile(raw, dtype="<i2")
    expected_frames = len(reference.audio) // 2
    assert abs(len(played) - expected_frames) <= RATE_HZ * 0.05, (len(played), expected_frames)
    assert np.sqrt(np.mean(played.astype(np.float64) ** 2)) > 300  # speech, not silence
    assert word_error_rate(TEXT, transcribe(played, RATE_HZ)) <= 0.2
    # Sound started right after the first chunk, before the last one had arrived.
    first_sound = seconds(r"first sound ([\d.]+) s after the first chunk", result.stderr)
    assert first_sound < 0.5
    last_chunk = seconds(r"last chunk ([\d.]+) s after", result.stderr)
    sound_started = seconds(r"first chunk, ([\d.]+) s after the command", result.stderr)
    assert sound_started < last_chunk


async def test_output_wav_matches_the_server(server: ServerProcess, tmp_path: Path,
                                             reference: tts_pb2.SynthesizeResponse) -> None:
    out = tmp_path / "saved.wav"
    result = await asyncio.to_thread(run_client, "--server", server.address, "--voice",
                                     "af_bella", "--output", str(out), TEXT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress line when stderr is not a terminal
    samples, rate = soundfile.read(out, dtype="int16")
    assert rate == RATE_HZ
    assert soundfile.info(str(out)).subtype == "PCM_16"
    assert len(samples) / rate == pytest.approx(reference.audio_duration_seconds, abs=0.02)
    assert word_error_rate(TEXT, transcribe(samples, rate)) <= 0.2
    assert not list(tmp_path.glob("*.part"))


def test_list_voices(server: ServerProcess) -> None:
    result = run_client("--server", server.address, "--list-voices")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "LANGUAGE", "GENDER"]
    assert len(rows) == 54
    assert any(row.split()[:3] == ["af_bella", "en-US", "female"] for row in rows), rows


@pytest.fixture(scope="module")
def one_engine_server() -> Iterator[ServerProcess]:
    """A server whose next request needs the engine an interrupted client was using."""
    running = start_server("--engines", "1", "--engine-threads", "2")
    yield running
    assert running.stop() == 0


async def test_ctrl_c_stops_playback_and_frees_the_engine(
        one_engine_server: ServerProcess, tmp_path: Path) -> None:
    async with grpc.aio.insecure_channel(one_engine_server.address) as channel:
        await _interrupt_and_check(one_engine_server, tts_pb2_grpc.TextToSpeechServiceStub(channel),
                                   tmp_path)


def _ctrl_c_as_at_a_terminal() -> None:
    """In the client, before it starts: SIGINT as a terminal gives it. A suite started in the
    background by a shell without job control runs with SIGINT ignored, which the client would
    inherit (and rightly honour, as under nohup)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _interrupt_and_check(server: ServerProcess, stub: tts_pb2_grpc.TextToSpeechServiceStub,
                               tmp_path: Path) -> None:
    info = await stub.GetServerInfo(tts_pb2.GetServerInfoRequest(), timeout=CALL_TIMEOUT_S)
    assert info.engines == 1
    short = tts_pb2.SynthesizeRequest(text="The engine is free again.",
                                      config=tts_pb2.SynthesisConfig(voice="af_bella"))
    began = time.monotonic()
    idle = await stub.Synthesize(short, timeout=CALL_TIMEOUT_S)
    audio_per_wall_s = idle.audio_duration_seconds / (time.monotonic() - began)

    config, raw = file_device(tmp_path, "interrupted")
    started_at = time.monotonic()
    client = subprocess.Popen(client_command("--server", server.address, LONG_TEXT),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=client_env(config),
                              cwd=REPO, preexec_fn=_ctrl_c_as_at_a_terminal)
    try:
        while not (raw.exists() and raw.stat().st_size > RATE_HZ):  # half a second played
            assert client.poll() is None, client.communicate()[1]
            assert time.monotonic() - started_at < CALL_TIMEOUT_S, "nothing was played"
            await asyncio.sleep(0.05)
        interrupted_at = time.monotonic()
        client.send_signal(signal.SIGINT)
        _, stderr = await asyncio.to_thread(client.communicate, timeout=10)
        stopped_s = time.monotonic() - interrupted_at
    finally:
        # Reaped and its pipe closed even when it hung: a failure stays this test's own.
        if client.poll() is None:
            client.kill()
            client.communicate()
    assert client.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr, stderr
    assert stopped_s < 2.0
    played_bytes = raw.stat().st_size
    await asyncio.sleep(0.5)
    assert raw.stat().st_size == played_bytes  # nothing more reaches the device

    # The engine serves the next request now, not once the long text would have been done:
    # at the idle speed, the server could have made at most `made_s` of it before the
    # interrupt, and the rest would take `unfinished_s` more.
    response = await stub.Synthesize(short, timeout=CALL_TIMEOUT_S)
    served_s = time.monotonic() - interrupted_at
    assert response.audio_duration_seconds == pytest.approx(idle.audio_duration_seconds)
    long_audio_s = idle.audio_duration_seconds * len(LONG_TEXT) / len(short.text)
    made_s = (interrupted_at - started_at) * audio_per_wall_s
    unfinished_s = (long_audio_s - made_s) / audio_per_wall_s
    assert served_s < unfinished_s / 4, (served_s, unfinished_s)


FIRST = "The weather is lovely today. "
SECOND = "We walked along the river."


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
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while _played_s(raw) < 0.5:
            assert client.poll() is None, client.communicate()[1]
            assert time.monotonic() < deadline, "nothing played while stdin stayed open"
            time.sleep(0.05)
        assert client.poll() is None  # still reading: the sound came from the open input
        _, stderr = client.communicate(SECOND, timeout=CALL_TIMEOUT_S)  # then closes stdin
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, stderr
    played = np.fromfile(raw, dtype="<i2")
    assert word_error_rate(FIRST + SECOND, transcribe(played, RATE_HZ)) <= 0.2
