"""Saves streamed audio to a file that appears only once it is complete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import soundfile

from .errors import CliError


class AudioFileSink:
    """Writes the streamed audio to FILE.part and renames it to FILE only on success.

    For .wav the client writes the header itself (from 16-bit PCM, at the stream's sample
    rate), so it holds the real length; other formats are the server's encoded stream, byte
    for byte.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._part = path.with_name(path.name + ".part")
        self._wav = path.suffix.lower() == ".wav"
        self._sound_file: soundfile.SoundFile | None = None
        self._raw: IO[bytes] | None = None
        try:
            self._raw = None if self._wav else self._part.open("wb")
        except OSError as err:
            raise CliError(f"cannot write {path}: {err.strerror}") from err

    def write(self, audio: bytes, sample_rate_hz: int) -> None:
        if self._wav and self._sound_file is None:
            try:
                self._sound_file = soundfile.SoundFile(
                    self._part, "w", samplerate=sample_rate_hz, channels=1, format="WAV",
                    subtype="PCM_16")
            except (OSError, RuntimeError) as err:
                raise CliError(f"cannot write {self._path}: {err}") from err
        if not audio:
            return
        if self._sound_file is not None:
            self._sound_file.buffer_write(audio, dtype="int16")
        elif self._raw is not None:
            self._raw.write(audio)

    def _close(self) -> None:
        if self._sound_file is not None:
            self._sound_file.close()
        if self._raw is not None:
            self._raw.close()

    def commit(self) -> None:
        self._close()
        os.replace(self._part, self._path)

    def discard(self) -> None:
        self._close()
        self._part.unlink(missing_ok=True)
