"""Turns model samples into the requested rate, volume and encoding, whole or streamed.

`check_format` and `check_gain` say what can be produced; the call layer applies them once,
where a request enters (calls/request.py), and everything that renders trusts its settings.
"""

from __future__ import annotations

import enum
import io
import logging
import struct
from typing import Final, Protocol

import av
import lameenc
import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

_LOGGER = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]
Pcm16 = npt.NDArray[np.int16]

MIN_SAMPLE_RATE_HZ: Final = 8000
MAX_SAMPLE_RATE_HZ: Final = 48000
MIN_GAIN_DB: Final = -20.0
MAX_GAIN_DB: Final = 10.0
# The only rates the Opus codec itself runs at.
OPUS_SAMPLE_RATES_HZ: Final = frozenset({8000, 12000, 16000, 24000, 48000})
# MPEG-1/2/2.5 rates. LAME silently resamples any other input rate to a neighbour, so the
# stream would not be at the rate the response announces.
MP3_SAMPLE_RATES_HZ: Final = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100,
                                        48000})

_PCM16_FULL_SCALE: Final = 32767.0  # symmetric, as libsndfile scales floats
_LIMITER_KNEE: Final = 0.9
_MP3_BIT_RATE_KBPS: Final = 64  # valid for MPEG-1, 2 and 2.5, plenty for mono speech
_MP3_QUALITY: Final = 2  # LAME's "high quality" algorithm choice; 0 is much slower for no gain
_AAC_BIT_RATE_BPS: Final = 64000  # as for MP3: plenty for mono speech
# libsndfile's smallest Ogg page latency; its default (about 1 s) holds audio back that long.
_OGG_PAGE_LATENCY_MS: Final = 50.0
_SFC_SET_OGG_PAGE_LATENCY_MS: Final = 0x1302  # from sndfile.h; soundfile does not export it
_UNKNOWN_SIZE: Final = 0xFFFFFFFF


class AudioEncoding(enum.Enum):
    """Mono audio formats the service produces."""

    PCM16 = "pcm16"  # raw signed 16-bit little-endian samples, no header
    WAV = "wav"  # RIFF file of 16-bit PCM
    FLAC = "flac"  # 16-bit FLAC
    OGG_OPUS = "ogg_opus"  # Opus in one Ogg stream
    MP3 = "mp3"  # MPEG Layer III
    MULAW = "mulaw"  # G.711 mu-law, 8 bits per sample, no header
    ALAW = "alaw"  # G.711 A-law, 8 bits per sample, no header
    AAC = "aac"  # AAC-LC in ADTS frames (a stream of self-describing frames, no file header)


# Every encoding can be cut into chunks whose concatenation is one valid stream (WAV carries an
# "unknown" data size, FLAC an unknown total-samples count, Ogg and MP3 are streams by design),
# so any of them may be streamed; tests/test_formats.py decodes each one streamed.

_CODEC_RATES_HZ: Final = {
    AudioEncoding.OGG_OPUS: OPUS_SAMPLE_RATES_HZ,
    AudioEncoding.MP3: MP3_SAMPLE_RATES_HZ,
    # ADTS headers can only name these (and rates outside our 8-48 kHz range).
    AudioEncoding.AAC: MP3_SAMPLE_RATES_HZ,
}


class UnsupportedAudioError(ValueError):
    """An encoding, sample rate or gain the service cannot produce; the message says what can.

    `field` names what is wrong: "encoding", "sample_rate_hz" or "gain_db".
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_format(encoding: object, sample_rate_hz: int) -> None:
    """Raises UnsupportedAudioError unless `encoding` can be produced at `sample_rate_hz`."""
    if not isinstance(encoding, AudioEncoding):
        raise UnsupportedAudioError(
            "encoding", f"encoding {encoding!r} is not supported; use one of {_names()}")
    _check_rate(sample_rate_hz)
    allowed = _CODEC_RATES_HZ.get(encoding)
    if allowed is not None and sample_rate_hz not in allowed:
        raise UnsupportedAudioError(
            "sample_rate_hz", f"{encoding.name} does not support {sample_rate_hz} Hz; use one "
            f"of {', '.join(map(str, sorted(allowed)))} Hz")


def check_gain(gain_db: float) -> None:
    """Raises UnsupportedAudioError unless `gain_db` is within [MIN_GAIN_DB, MAX_GAIN_DB]."""
    # Written so that NaN fails too.
    if not MIN_GAIN_DB <= gain_db <= MAX_GAIN_DB:
        raise UnsupportedAudioError(
            "gain_db", f"gain {gain_db} dB is outside the supported range "
            f"[{MIN_GAIN_DB}, {MAX_GAIN_DB}] dB")


def _check_rate(sample_rate_hz: int) -> None:
    if not MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise UnsupportedAudioError(
            "sample_rate_hz", f"sample rate {sample_rate_hz} Hz is outside the supported range "
            f"[{MIN_SAMPLE_RATE_HZ}, {MAX_SAMPLE_RATE_HZ}] Hz")


def _names() -> str:
    return ", ".join(e.name for e in AudioEncoding)


def _mono(samples: npt.ArrayLike) -> Samples:
    # No copy when the engine already hands out float32, which it does.
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim != 1:
        raise ValueError(f"expected mono samples (a 1-D array), got shape {array.shape}")
    return array


def to_pcm16(samples: npt.ArrayLike) -> Pcm16:
    """Converts float samples in [-1, 1] to little-endian int16, clipping anything beyond."""
    scaled = np.multiply(_mono(samples), _PCM16_FULL_SCALE, dtype=np.float32)
    np.clip(scaled, -_PCM16_FULL_SCALE, _PCM16_FULL_SCALE, out=scaled)
    return np.rint(scaled, out=scaled).astype("<i2")


def apply_gain(samples: npt.ArrayLike, gain_db: float) -> Samples:
    """Scales by `gain_db`, then soft-limits so that no sample exceeds 1.0.

    The limiter is stateless (each sample's output depends on that sample alone), so a stream
    cut into any chunks sounds exactly like the whole: there is no gain that jumps between
    chunks, which a limiter reacting to each chunk's peak would cause. Samples up to
    `_LIMITER_KNEE` pass linearly; louder ones bend smoothly towards 1.0 (tanh), which rounds
    off only the peaks a positive gain pushes past full scale instead of clipping them flat.
    0 dB returns the samples untouched, as the model made them.
    """
    array = _mono(samples)
    if gain_db == 0:
        return array
    louder = array * np.float32(10.0 ** (gain_db / 20.0))
    _soft_limit(louder)
    return louder


def _soft_limit(samples: Samples) -> None:
    loud = np.abs(samples) > _LIMITER_KNEE
    if not loud.any():
        return
    peaks = samples[loud]
    headroom = 1.0 - _LIMITER_KNEE
    # Slope 1 at the knee, so the curve has no corner there.
    bent = _LIMITER_KNEE + headroom * np.tanh((np.abs(peaks) - _LIMITER_KNEE) / headroom)
    samples[loud] = np.copysign(bent, peaks)


class StreamResampler:
    """Resamples consecutive chunks as one continuous signal, with soxr's high-quality filter.

    Chunked output equals whole-signal output: the filter state carries across chunks, so
    joins have no clicks. Call `flush` once at the end for the filter's last samples.
    """

    def __init__(self, input_rate_hz: int, output_rate_hz: int) -> None:
        self.input_rate_hz = input_rate_hz
        self.output_rate_hz = output_rate_hz
        self._stream: soxr.ResampleStream | None = None
        if input_rate_hz != output_rate_hz:
            self._stream = soxr.ResampleStream(input_rate_hz, output_rate_hz, 1,
                                               dtype="float32", quality="HQ")

    def resample(self, samples: npt.ArrayLike) -> Samples:
        """Returns the resampled chunk; the input itself when the rates are equal."""
        array = _mono(samples)
        if self._stream is None:
            return array
        return self._stream.resample_chunk(np.ascontiguousarray(array))

    def flush(self) -> Samples:
        """Returns the samples still inside the filter; call once, after the last chunk."""
        empty = np.zeros(0, np.float32)
        if self._stream is None:
            return empty
        return self._stream.resample_chunk(empty, last=True)


def resample_whole(samples: npt.ArrayLike, input_rate_hz: int, output_rate_hz: int) -> Samples:
    """Resamples a whole signal; the same result as StreamResampler over any chunking."""
    resampler = StreamResampler(input_rate_hz, output_rate_hz)
    head = resampler.resample(samples)
    if input_rate_hz == output_rate_hz:
        return head
    return np.concatenate([head, resampler.flush()])


class _Codec(Protocol):
    def encode(self, pcm: Pcm16) -> bytes: ...

    def finish(self) -> bytes: ...


class _RawPcm16:
    def encode(self, pcm: Pcm16) -> bytes:
        return pcm.tobytes()

    def finish(self) -> bytes:
        return b""


class _StreamedWav:
    """16-bit PCM after a RIFF header whose sizes say "unknown" (0xFFFFFFFF).

    The length is not known when the header leaves, and it cannot be patched afterwards. This is
    what ffmpeg writes to a pipe, and what ffmpeg, libsndfile and Python's `wave` read to the end.
    """

    def __init__(self, sample_rate_hz: int) -> None:
        self._header: bytes | None = _wav_header(sample_rate_hz)

    def encode(self, pcm: Pcm16) -> bytes:
        header, self._header = self._header or b"", None
        return header + pcm.tobytes()

    def finish(self) -> bytes:
        # An empty stream is still a valid (empty) WAV file.
        return self.encode(np.zeros(0, "<i2"))


def _wav_header(sample_rate_hz: int) -> bytes:
    bytes_per_sample = 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", _UNKNOWN_SIZE, b"WAVE",
        b"fmt ", 16, 1, 1, sample_rate_hz, sample_rate_hz * bytes_per_sample, bytes_per_sample,
        8 * bytes_per_sample,
        b"data", _UNKNOWN_SIZE,
    )


class _ByteSink:
    """A file for libsndfile that hands out each byte as soon as it is written.

    When closing, libsndfile seeks back to patch the header (FLAC's total sample count and MD5).
    Those bytes have already been sent, so such patches are dropped: the header keeps the
    "unknown" values that the format allows for streams.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._sent_bytes = 0
        self._position = 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        end = self._sent_bytes + len(self._pending)
        self._position = offset + {io.SEEK_SET: 0, io.SEEK_CUR: self._position,
                                   io.SEEK_END: end}[whence]
        return self._position

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes) -> int:
        start = self._position - self._sent_bytes
        self._position += len(data)
        # A negative start overlaps bytes already sent: only the part after them is kept.
        kept = data[max(0, -start):]
        start = max(0, start)
        if start > len(self._pending):
            self._pending.extend(bytes(start - len(self._pending)))
        self._pending[start:start + len(kept)] = kept
        return len(data)

    def take(self) -> bytes:
        """Returns the bytes written since the last call."""
        out = bytes(self._pending)
        self._sent_bytes += len(out)
        self._pending.clear()
        return out


class _Sndfile:
    """A libsndfile encoder writing into a _ByteSink."""

    def __init__(self, sample_rate_hz: int, file_format: str, subtype: str) -> None:
        self._sink = _ByteSink()
        self._file = sf.SoundFile(self._sink, "w", samplerate=sample_rate_hz, channels=1,
                                  format=file_format, subtype=subtype)

    def encode(self, pcm: Pcm16) -> bytes:
        self._file.write(pcm)
        return self._sink.take()

    def finish(self) -> bytes:
        self._file.close()
        return self._sink.take()


class _OggOpus(_Sndfile):
    def __init__(self, sample_rate_hz: int) -> None:
        super().__init__(sample_rate_hz, "OGG", "OPUS")
        # soundfile has no wrapper for this command, so it goes through soundfile's own cffi
        # handle. Without it a client would wait about a second for each page of audio.
        latency_ms = sf._ffi.new("double *", _OGG_PAGE_LATENCY_MS)
        failed = sf._snd.sf_command(self._file._file, _SFC_SET_OGG_PAGE_LATENCY_MS, latency_ms,
                                    sf._ffi.sizeof("double"))
        if failed:
            _LOGGER.warning("libsndfile refused an Ogg page latency of %s ms; Opus audio will "
                            "arrive in pages of about a second", _OGG_PAGE_LATENCY_MS)


class _Mp3:
    def __init__(self, sample_rate_hz: int) -> None:
        self._encoder = lameenc.Encoder()
        self._encoder.set_channels(1)
        self._encoder.set_in_sample_rate(sample_rate_hz)
        self._encoder.set_bit_rate(_MP3_BIT_RATE_KBPS)
        self._encoder.set_quality(_MP3_QUALITY)
        # Starts the encoder now: lameenc refuses to flush one that never saw input.
        self._encoder.encode(b"")

    def encode(self, pcm: Pcm16) -> bytes:
        return bytes(self._encoder.encode(pcm))

    def finish(self) -> bytes:
        return bytes(self._encoder.flush())


class _PacketSink:
    """Collects what PyAV's muxer writes; ADTS is written front to back, never patched."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def write(self, data: bytes) -> int:
        self._pending += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self._pending)
        self._pending.clear()
        return out


class _Aac:
    """FFmpeg's native AAC encoder, through PyAV (which bundles FFmpeg in its wheel)."""

    def __init__(self, sample_rate_hz: int) -> None:
        self._sink = _PacketSink()
        self._container = av.open(self._sink, mode="w", format="adts")
        self._stream = self._container.add_stream("aac", rate=sample_rate_hz, layout="mono")
        self._stream.bit_rate = _AAC_BIT_RATE_BPS
        self._sample_rate_hz = sample_rate_hz

    def encode(self, pcm: Pcm16) -> bytes:
        if len(pcm):
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate = self._sample_rate_hz
            self._mux(frame)
        return self._sink.take()

    def finish(self) -> bytes:
        self._mux(None)  # drains the encoder's look-ahead
        self._container.close()
        return self._sink.take()

    def _mux(self, frame: av.AudioFrame | None) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)


def _new_codec(encoding: AudioEncoding, sample_rate_hz: int) -> _Codec:
    match encoding:
        case AudioEncoding.PCM16:
            return _RawPcm16()
        case AudioEncoding.WAV:
            return _StreamedWav(sample_rate_hz)
        case AudioEncoding.FLAC:
            return _Sndfile(sample_rate_hz, "FLAC", "PCM_16")
        case AudioEncoding.OGG_OPUS:
            return _OggOpus(sample_rate_hz)
        case AudioEncoding.MP3:
            return _Mp3(sample_rate_hz)
        case AudioEncoding.MULAW:
            return _Sndfile(sample_rate_hz, "RAW", "ULAW")
        case AudioEncoding.ALAW:
            return _Sndfile(sample_rate_hz, "RAW", "ALAW")
        case AudioEncoding.AAC:
            return _Aac(sample_rate_hz)


class StreamEncoder:
    """Encodes consecutive chunks so that all returned bytes, joined, are one valid stream.

    The first non-empty result carries the container header (WAV, FLAC, Ogg). Codecs that work
    in blocks (FLAC, Opus, MP3) may return b"" for a short chunk and keep its samples for the
    next call; `finish` returns what is left and closes the stream. A stream that never got a
    sample is not a playable file in every encoding (FLAC writes nothing at all).
    """

    def __init__(self, encoding: AudioEncoding, sample_rate_hz: int) -> None:
        self.encoding = encoding
        self.sample_rate_hz = sample_rate_hz
        self._codec: _Codec | None = _new_codec(encoding, sample_rate_hz)

    def encode(self, samples: npt.ArrayLike) -> bytes:
        return self._open().encode(to_pcm16(samples))

    def finish(self) -> bytes:
        tail = self._open().finish()
        self._codec = None
        return tail

    def _open(self) -> _Codec:
        if self._codec is None:
            raise RuntimeError("this stream is finished; start a new StreamEncoder")
        return self._codec


# Formats whose header holds the length: written to a seekable buffer so libsndfile can fill it.
_FILE_FORMATS: Final = {AudioEncoding.WAV: "WAV", AudioEncoding.FLAC: "FLAC"}


def encode_whole(samples: npt.ArrayLike, sample_rate_hz: int, encoding: AudioEncoding) -> bytes:
    """Encodes a complete signal as one file (WAV and FLAC with their true length)."""
    file_format = _FILE_FORMATS.get(encoding)
    if file_format is None:
        encoder = StreamEncoder(encoding, sample_rate_hz)
        return encoder.encode(samples) + encoder.finish()
    buffer = io.BytesIO()
    sf.write(buffer, to_pcm16(samples), sample_rate_hz, format=file_format, subtype="PCM_16")
    return buffer.getvalue()


class StreamRenderer:
    """Resamples, applies gain and encodes one stream of model chunks, in that order.

    Gain comes after resampling so the limiter also catches the resampler's overshoot.
    """

    def __init__(self, input_rate_hz: int, output_rate_hz: int, gain_db: float,
                 encoding: AudioEncoding) -> None:
        self._resampler = StreamResampler(input_rate_hz, output_rate_hz)
        self._encoder = StreamEncoder(encoding, output_rate_hz)
        self._gain_db = gain_db

    def render(self, samples: npt.ArrayLike) -> bytes:
        return self._encoder.encode(apply_gain(self._resampler.resample(samples), self._gain_db))

    def finish(self) -> bytes:
        tail = apply_gain(self._resampler.flush(), self._gain_db)
        return self._encoder.encode(tail) + self._encoder.finish()


def render_whole(samples: npt.ArrayLike, input_rate_hz: int, output_rate_hz: int,
                 gain_db: float, encoding: AudioEncoding) -> bytes:
    """Resamples, applies gain and encodes a complete signal as one file."""
    resampled = resample_whole(samples, input_rate_hz, output_rate_hz)
    return encode_whole(apply_gain(resampled, gain_db), output_rate_hz, encoding)
