"""tts-grpc-client's main(argv) in-process against the fast tier's server (a fake engine).

main() runs its own event loop, so it runs in a worker thread while the server runs in the
test's loop. Standard input is the test's; playback goes to a recording player, since the
audio device is what the end-to-end tests (tests/test_client.py) exercise.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, ClassVar

import numpy as np
import pytest
import soundfile

from tts_client import player
from tts_client.cli import OUTPUT_FORMATS, main
from tts_client.sink import AudioFileSink

from .fakes import SAMPLE_RATE_HZ, TIMEOUT_S, FakeEngine, FakeServer, fake_server

TOKEN = "token-from-the-environment"
TONE_SAMPLES = SAMPLE_RATE_HZ // 10  # the fake engine's 0.1 s per sentence


@pytest.fixture(autouse=True)
def no_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TTS_SERVER", "TTS_TOKEN"):
        monkeypatch.delenv(name, raising=False)


class Terminal(io.StringIO):
    """A standard stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Piped(io.StringIO):
    def isatty(self) -> bool:
        return False


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv) off the server's loop: its exit status, standard output and error."""
    code = await asyncio.wait_for(asyncio.to_thread(main, list(argv)), TIMEOUT_S)
    out, err = capsys.readouterr()
    return code, out, err


def address(served: FakeServer) -> str:
    return f"127.0.0.1:{served.running.port}"


class RecordingPlayer:
    """Stands in for StreamPlayer: keeps what would have been played, and at which rate."""

    opened: ClassVar[list[RecordingPlayer]] = []

    def __init__(self, sample_rate_hz: int, rebuffer: bool = True) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.rebuffer = rebuffer
        self.pcm = b""
        self.finished = False
        self.first_sound_at = None
        RecordingPlayer.opened.append(self)

    def feed(self, pcm: bytes, text_done: float | None = None) -> None:
        self.pcm += pcm

    def finish(self) -> None:
        self.finished = True

    def abort(self) -> None:
        pass


@pytest.fixture
def played(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingPlayer]]:
    RecordingPlayer.opened = []
    monkeypatch.setattr(player, "check_output_device", lambda: None)
    monkeypatch.setattr(player, "StreamPlayer", RecordingPlayer)
    yield RecordingPlayer.opened


@pytest.fixture
def model_rate_22050(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server whose model speaks at 22050 Hz, so nothing can pass by assuming 24 kHz."""
    monkeypatch.setattr(FakeEngine, "sample_rate_hz", 22050)


@pytest.mark.usefixtures("model_rate_22050")
async def test_plays_at_the_sample_rate_the_stream_says(
        capsys: pytest.CaptureFixture[str], played: list[RecordingPlayer]) -> None:
    async with fake_server() as served:
        code, _, err = await run(capsys, "--server", address(served), "Hello there. Bye.")
    assert code == 0, err
    [device] = played
    assert device.sample_rate_hz == 22050
    assert device.rebuffer and device.finished
    assert len(device.pcm) == 2 * 2 * TONE_SAMPLES  # two sentences of 16-bit samples


@pytest.mark.usefixtures("model_rate_22050")
async def test_saves_a_wav_at_the_streams_rate_or_the_one_asked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_server() as served:
        for asked, expected in ((None, 22050), ("16000", 16000)):
            out = tmp_path / f"{expected}.wav"
            rate = ["--sample-rate", asked] if asked else []
            code, _, err = await run(capsys, "--server", address(served), *rate, "--output",
                                     str(out), "Hello there.")
            assert code == 0, err
            assert err == ""  # no progress line when stderr is not a terminal
            assert soundfile.info(str(out)).samplerate == expected
            assert not list(tmp_path.glob("*.part"))


async def test_reads_piped_text_and_shows_progress_on_a_terminal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "piped.raw"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    async with fake_server() as served:
        for argv in (["-"], []):  # '-' or no argument at all reads the pipe
            monkeypatch.setattr(sys, "stdin", Piped("From a pipe. Two sentences."))
            code, _, _ = await run(capsys, "--server", address(served), "--output", str(out),
                                   *argv)
            assert code == 0, terminal.getvalue()
            assert out.stat().st_size == 2 * 2 * TONE_SAMPLES
        assert served.engine.calls == ["From a pipe.", "Two sentences."] * 2
    assert "100.0% of the text" in terminal.getvalue()


async def test_lists_the_voices_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_server() as served:
        code, out, err = await run(capsys, "--server", address(served), "--list-voices")
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [
        ["NAME", "LANGUAGE", "GENDER"], ["af_bella", "en-US", "female", "(default)"],
        ["am_adam", "en-US", "male"]]


def _list_into_a_closed_pipe(server: str) -> str:
    listing = subprocess.Popen([sys.executable, "-m", "tts_client.cli", "--server", server,
                                "--list-voices"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.close()  # like `| head -0`: nobody reads the table
    with listing.stderr:
        stderr = listing.stderr.read()
    listing.wait(TIMEOUT_S)
    return stderr


async def test_a_listing_into_a_reader_that_stops_early_ends_quietly() -> None:
    async with fake_server() as served:
        stderr = await asyncio.to_thread(_list_into_a_closed_pipe, address(served))
    assert "Traceback" not in stderr and "Broken pipe" not in stderr, stderr


async def test_server_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nothing listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        unused = f"127.0.0.1:{sock.getsockname()[1]}"
    code, _, err = await run(capsys, "--server", unused, "--no-play", "Hello.")
    assert code == 1
    assert f"cannot reach the server at {unused}: is it running?" in err
    assert "make serve" in err


async def test_unknown_voice_points_at_the_voice_list(capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_server() as served:
        code, _, err = await run(capsys, "--server", address(served), "--voice", "zz_nobody",
                                 "--no-play", "Hello.")
    assert code == 1
    assert "unknown voice 'zz_nobody'" in err
    assert "hint: run `tts-grpc-client --list-voices`" in err


async def test_a_passed_deadline_suggests_a_larger_timeout(
        capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_server() as served:
        served.engine.gate.clear()  # the engine never finishes
        code, _, err = await run(capsys, "--server", address(served), "--timeout", "0.2",
                                 "--no-play", "Hello.")
    assert code == 1
    assert "DEADLINE_EXCEEDED" in err and "--timeout 0.2" in err


async def test_an_unknown_output_format_is_refused_before_any_call(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await run(capsys, "--server", "127.0.0.1:1", "--output",
                             str(tmp_path / "x.doc"), "Hello.")
    assert code == 1
    assert "cannot tell the format of" in err and ".wav" in err


async def test_takes_server_and_token_from_the_environment_and_sends_speed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TTS_TOKEN", TOKEN)  # the server's token, and then the client's
    async with fake_server() as served:
        monkeypatch.setenv("TTS_SERVER", address(served))
        out = tmp_path / "hi.wav"
        code, _, err = await run(capsys, "--speed", "1.5", "--output", str(out),
                                 "Hello there.")
        assert code == 0, err
        assert served.engine.speeds == [1.5]
        monkeypatch.delenv("TTS_TOKEN")
        code, _, err = await run(capsys, "--no-play", "Hello.")
        assert code == 1 and "UNAUTHENTICATED" in err and "--token-file" in err
    assert soundfile.info(str(out)).frames == TONE_SAMPLES


def _pipe(text: str) -> IO[str]:
    """Standard input that is a real pipe (--live reads its file descriptor)."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as writer:
        writer.write(text)
    return os.fdopen(read_end, "r")


async def test_live_speaks_each_sentence_of_standard_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "live.raw"
    async with fake_server() as served:
        with _pipe("The first sentence. And the sec") as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            code, _, err = await run(capsys, "--server", address(served), "--live",
                                     "--output", str(out))
        assert code == 0, err
        assert served.engine.calls == ["The first sentence.", "And the sec"]
    assert out.stat().st_size == 2 * 2 * TONE_SAMPLES


async def test_live_with_a_text_argument_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await run(capsys, "--server", "127.0.0.1:1", "--live", "Hello there.")
    assert code == 1
    assert "--live speaks standard input" in err


async def test_live_with_empty_input_says_there_was_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_server() as served:
        with _pipe("") as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            code, _, err = await run(capsys, "--server", address(served), "--live",
                                     "--no-play")
    assert code == 1
    assert "standard input had no text" in err


async def test_live_with_an_unknown_voice_fails_cleanly_while_input_still_comes(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async with fake_server() as served:
        with _pipe("Hello there. " * 200) as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            code, _, err = await run(capsys, "--server", address(served), "--live",
                                     "--voice", "zz_nobody", "--no-play")
    assert code == 1
    # The client sends text only once the server has accepted the config, so the refusal is
    # never raced by a write (which grpc would report as INTERNAL, grpc/grpc#36066).
    assert "INVALID_ARGUMENT: unknown voice 'zz_nobody'" in err


@pytest.mark.parametrize("debug", [False, True])
async def test_an_unforeseen_failure_shows_its_traceback_only_with_debug(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        debug: bool) -> None:
    def broken(self: AudioFileSink, audio: bytes, sample_rate_hz: int) -> None:
        raise ValueError("a bug in the sink")

    monkeypatch.setattr(AudioFileSink, "write", broken)
    async with fake_server() as served:
        code, _, err = await run(capsys, "--server", address(served), "--output",
                                 str(tmp_path / "x.wav"), *(["--debug"] if debug else []),
                                 "Hello.")
    assert code == 1
    assert "error: ValueError: a bug in the sink" in err
    assert ("Traceback (most recent call last)" in err) is debug
    assert ("run again with --debug" in err) is not debug
    assert not list(tmp_path.iterdir())  # the half-written file is gone


def test_no_audio_device_fails_before_any_call(tmp_path: Path) -> None:
    config = tmp_path / "no-device.asoundrc"
    # A default device on a sound card that does not exist: PortAudio cannot open it.
    config.write_text("</usr/share/alsa/alsa.conf>\npcm.!default { type hw card 29 }\n")
    # Nothing listens at port 1: the device is checked before the server is called.
    done = subprocess.run([sys.executable, "-m", "tts_client.cli", "--server", "127.0.0.1:1",
                           "Hello."], capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, "ALSA_CONFIG_PATH": str(config)})
    assert done.returncode == 1
    assert "no audio output device on this machine" in done.stderr
    assert "--output" in done.stderr and "Traceback" not in done.stderr


# ffprobe's name for each container, read back by a decoder that knows nothing of ours.
_READ_BACK = {
    ".wav": "wav", ".flac": "flac", ".ogg": "ogg", ".opus": "ogg", ".mp3": "mp3",
}
_BYTES_PER_SAMPLE = {".raw": 2, ".pcm": 2, ".ulaw": 1, ".mulaw": 1, ".alaw": 1}


@pytest.mark.tools("ffmpeg", "ffprobe")
async def test_every_output_extension_writes_its_format(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert set(OUTPUT_FORMATS) == set(_READ_BACK) | set(_BYTES_PER_SAMPLE)
    async with fake_server() as served:
        for extension in sorted(OUTPUT_FORMATS):
            out = tmp_path / f"out{extension}"
            code, _, err = await run(capsys, "--server", address(served), "--output",
                                     str(out), "Hi.")
            assert code == 0, (extension, err)
            if extension in _READ_BACK:
                assert _ffprobe_format(out) == _READ_BACK[extension], extension
                decoded = np.frombuffer(_ffmpeg_decode(out), dtype="<i2")
                # Lossy codecs pad to whole frames (MP3: 1152 samples, plus its delay); the
                # tone's peak is 0.3 of full scale.
                assert TONE_SAMPLES * 0.9 <= len(decoded) <= TONE_SAMPLES * 2, extension
                assert np.abs(decoded).max() > 0.2 * 32768, extension
            else:
                size = out.stat().st_size
                assert size == TONE_SAMPLES * _BYTES_PER_SAMPLE[extension], extension
            assert not out.with_name(out.name + ".part").exists()


def _ffprobe_format(path: Path) -> str:
    return subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                          check=True, timeout=TIMEOUT_S).stdout.strip()


def _ffmpeg_decode(path: Path) -> bytes:
    """Mono 16-bit PCM at the fake model's rate, whatever the file's own rate."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                           "-ar", str(SAMPLE_RATE_HZ), "-"], capture_output=True, check=True,
                          timeout=TIMEOUT_S).stdout
