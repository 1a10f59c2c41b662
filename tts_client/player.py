"""Plays 16-bit PCM through PortAudio as it arrives, without gaps between chunks."""

from __future__ import annotations

import queue
import threading
import time

import sounddevice as sd

# Audio goes to the device in blocks this long, so Ctrl-C is noticed within one block.
_BLOCK_S = 0.05
# How far the writer may run ahead of the audio clock. A real device blocks writes once its
# buffer is full, so this only paces sinks that take data faster than real time (ALSA's
# null/file plugins), where playback would otherwise "finish" before the sound was due.
_AHEAD_S = 0.2
# After a gap, hold at least this much audio before resuming (a gap is already audible, so
# a little more wait costs nothing), and never more than the cap (see _rebuffer_target_s).
_MIN_REBUFFER_S = 0.5
_MAX_REBUFFER_S = 4.0


class NoAudioDevice(Exception):
    """PortAudio found no usable output device."""


class PlaybackError(Exception):
    """The output device failed while playing."""


def check_output_device() -> None:
    """Raises NoAudioDevice unless PortAudio has a default output device that takes 16-bit
    mono: a cheap check before any synthesis, while the stream opens at the audio's rate."""
    try:
        sd.check_output_settings(channels=1, dtype="int16")
    except (sd.PortAudioError, ValueError) as err:
        raise NoAudioDevice(str(err)) from err


class StreamPlayer:
    """Writes the chunks the network delivers to an output stream from a writer thread.

    The device is opened up front (so a machine without one fails before any synthesis) and
    started when the first chunk arrives, so sound begins as soon as there is audio. Chunks
    wait in an unbounded queue: reading the network eagerly lets the server free its engine
    early, and one request's audio is a few MB at most. The device's own buffer (`latency`)
    is what bridges one chunk to the next; when a chunk arrives after the previous one has
    finished playing, that is an underrun (an audible gap), and the player then holds back
    enough audio for the rest to play through (`_rebuffer_target_s`).
    """

    def __init__(self, sample_rate_hz: int, device: str | int | None = None,
                 rebuffer: bool = True) -> None:
        """`rebuffer=False` plays each chunk as soon as it comes, for audio of text that is
        still being written, where a gap means the text is not there yet."""
        self.sample_rate_hz = sample_rate_hz
        self._rebuffer = rebuffer
        try:
            self._stream = sd.RawOutputStream(samplerate=sample_rate_hz, channels=1,
                                              dtype="int16", device=device)
        except (sd.PortAudioError, ValueError) as err:
            raise NoAudioDevice(str(err)) from err
        self.latency_s = float(self._stream.latency)  # type: ignore[arg-type]
        self._chunks: queue.Queue[tuple[bytes, float | None] | None] = queue.Queue()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.first_write_at: float | None = None  # time.monotonic() of the first write
        self.underruns = 0
        self.gap_s = 0.0  # total silence inserted because audio arrived late
        self.frames_played = 0
        self.rebuffer_targets_s: list[float] = []  # what each underrun waited for
        # Monotonic time by which the audio written so far has left the writer; the device
        # plays its last sample `latency` later.
        self._clock_s = 0.0
        self._first_arrival_at: float | None = None
        self._received_s = 0.0
        self._received_after_first_s = 0.0
        self._text_done = 0.0

    @property
    def first_sound_at(self) -> float | None:
        """When the first sample reached the speaker: first write plus the device's latency."""
        return None if self.first_write_at is None else self.first_write_at + self.latency_s

    def feed(self, pcm: bytes, text_done: float | None = None) -> None:
        """Queues audio for playback; the first call starts the device.

        `text_done` (0..1], how much of the text this chunk completes, lets the player
        estimate how much audio is still to come when it has to re-buffer.
        """
        self._raise_error()
        if pcm:
            self._chunks.put((pcm, text_done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_all, name="tts-player",
                                                daemon=True)
                self._thread.start()

    def finish(self) -> None:
        """Blocks until every sample fed so far has been played, then closes the device."""
        self._chunks.put(None)
        if self._thread is None:
            self._stream.close()
            return
        self._thread.join()
        self._raise_error()

    def abort(self) -> None:
        """Stops at once (Ctrl-C), dropping what has not been played; safe to call twice."""
        self._abort.set()
        self._chunks.put(None)
        if self._thread is None:
            self._stream.close(ignore_errors=True)
        else:
            self._thread.join(timeout=2.0)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise PlaybackError(str(self._error)) from self._error

    def _write_all(self) -> None:
        # Only this thread touches the stream once it has started: PortAudio streams are not
        # safe to stop from one thread while another is blocked writing to them.
        try:
            self._stream.start()
            self._play_chunks()
            if self._abort.is_set():
                self._stream.abort()
            else:
                # The device still holds up to `latency` of audio (and a pacing sink nothing).
                self._abort.wait(max(0.0, self._clock_s + self.latency_s - time.monotonic()))
                if self._abort.is_set():
                    self._stream.abort()
                else:
                    self._stream.stop()
        except BaseException as err:  # reported to the caller by finish() or feed()
            self._error = err
        finally:
            self._stream.close(ignore_errors=True)

    def _play_chunks(self) -> None:
        pending: list[bytes] = []
        pending_s = 0.0
        target_s = 0.0  # audio to hold before resuming after the current gap
        gap_from: float | None = None  # when the device ran dry, while re-buffering
        ended = False
        while not ended and not self._abort.is_set():
            item = self._chunks.get()
            if item is None:
                ended = True
            else:
                chunk, text_done = item
                now = time.monotonic()
                self._note_arrival(now, len(chunk) / 2 / self.sample_rate_hz, text_done)
                pending.append(chunk)
                pending_s += len(chunk) / 2 / self.sample_rate_hz
                if self.first_write_at is None:
                    self.first_write_at = self._clock_s = now
                elif gap_from is None and now > self._clock_s + self.latency_s:
                    # The device played everything it had before this chunk came: a gap.
                    # Speech arrives slower than it plays, so hold enough that the rest of
                    # the text can play through instead of stuttering at every sentence.
                    self.underruns += 1
                    gap_from = self._clock_s + self.latency_s
                    target_s = self._rebuffer_target_s() if self._rebuffer else 0.0
                    self.rebuffer_targets_s.append(target_s)
                if gap_from is not None and pending_s < target_s:
                    continue
            if gap_from is not None:
                now = time.monotonic()
                self.gap_s += now - gap_from
                self._clock_s = now
                gap_from = None
            for chunk in pending:
                self._write_chunk(chunk)
            pending.clear()
            pending_s = 0.0

    def _note_arrival(self, now: float, chunk_s: float, text_done: float | None) -> None:
        if self._first_arrival_at is None:
            self._first_arrival_at = now
        else:
            self._received_after_first_s += chunk_s
        self._received_s += chunk_s
        if text_done:
            self._text_done = text_done

    def _rebuffer_target_s(self) -> float:
        """The audio to buffer so the rest plays without another gap, at the rate seen so far.

        With `r` audio seconds arriving per second and `R` seconds still to come, playing R
        takes R seconds while making it takes R / r: holding R (1 - r) first covers the
        difference. Capped, since waiting longer than a few seconds is worse than a stutter.
        """
        if self._first_arrival_at is None or not self._text_done:
            return _MIN_REBUFFER_S
        elapsed_s = time.monotonic() - self._first_arrival_at
        rate = self._received_after_first_s / elapsed_s if elapsed_s > 0 else 1.0
        remaining_s = self._received_s * (1 - self._text_done) / self._text_done
        return min(_MAX_REBUFFER_S, max(_MIN_REBUFFER_S, remaining_s * (1 - rate)))

    def _write_chunk(self, chunk: bytes) -> None:
        block_bytes = 2 * max(1, int(self.sample_rate_hz * _BLOCK_S))
        for start in range(0, len(chunk) - len(chunk) % 2, block_bytes):
            ahead_s = self._clock_s - time.monotonic() - _AHEAD_S
            if ahead_s > 0 and self._abort.wait(ahead_s):
                return
            if self._abort.is_set():
                return
            block = chunk[start:start + block_bytes]
            self._stream.write(block)
            frames = len(block) // 2
            self.frames_played += frames
            self._clock_s += frames / self.sample_rate_hz
