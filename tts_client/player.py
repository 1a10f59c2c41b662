"""Plays 16-bit PCM through PortAudio as it arrives, without gaps between chunks."""

from __future__ import annotations

import threading
import time
from typing import Any

import sounddevice as sd


class NoAudioDevice(Exception):
    """PortAudio found no usable output device."""


class StreamPlayer:
    """Feeds an output stream from a byte buffer filled by the network.

    The stream opens when the first chunk arrives, so sound starts as soon as there is audio.
    The buffer holds whatever the server sent ahead of playback: reading the network eagerly
    lets the server free its engine early, and the audio of one request is at most a few MB.
    If the network falls behind, the callback plays silence until more arrives.
    """

    def __init__(self, sample_rate_hz: int, device: str | int | None = None) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._device = device
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._ended = False
        self._done = threading.Event()
        self._stream: sd.RawOutputStream | None = None
        self.first_sound_at: float | None = None  # time.monotonic() when sound left the DAC
        self.underruns = 0
        self.frames_played = 0

    def _open(self) -> None:
        try:
            self._stream = sd.RawOutputStream(
                samplerate=self.sample_rate_hz, channels=1, dtype="int16",
                device=self._device, callback=self._callback,
                finished_callback=self._done.set)
        except (sd.PortAudioError, ValueError) as err:
            raise NoAudioDevice(str(err)) from err
        self._stream.start()

    def feed(self, pcm: bytes) -> None:
        with self._lock:
            self._buffer += pcm
        if self._stream is None:
            self._open()

    def _callback(self, outdata: Any, frames: int, when: Any, status: sd.CallbackFlags) -> None:
        wanted = len(outdata)
        with self._lock:
            taken = min(wanted, len(self._buffer) - len(self._buffer) % 2)
            outdata[:taken] = self._buffer[:taken]
            del self._buffer[:taken]
            ended = self._ended and not self._buffer
        if taken and self.first_sound_at is None:
            # outputBufferDacTime is when this buffer's first sample reaches the speaker.
            delay = max(0.0, when.outputBufferDacTime - when.currentTime)
            self.first_sound_at = time.monotonic() + delay
        self.frames_played += taken // 2
        if taken < wanted:
            outdata[taken:] = b"\x00" * (wanted - taken)
            if ended:
                raise sd.CallbackStop
            if taken == 0 and not self._ended:
                self.underruns += 1

    def finish(self, timeout_s: float | None = None) -> None:
        """Waits until every sample fed so far has been played, then closes the device."""
        with self._lock:
            self._ended = True
        if self._stream is None:
            return
        self._done.wait(timeout_s)
        self._stream.close()

    def abort(self) -> None:
        """Stops at once (Ctrl-C), dropping what has not been played."""
        with self._lock:
            self._ended = True
            self._buffer.clear()
        if self._stream is not None:
            self._stream.abort()
            self._stream.close()
