"""tts-grpc-client: speak text through a TextToSpeech server, save it, or list its voices."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import os
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import grpc
import soundfile
from grpc_status import rpc_status

from tts_api.v1 import tts_pb2

from . import captions
from .captions import caption_path, write_captions
from .client import TtsClient

if TYPE_CHECKING:
    from .player import StreamPlayer

# File extension -> the encoding to ask the server for (.wav gets its header from the client).
_OUTPUT_FORMATS = {
    ".wav": tts_pb2.AUDIO_ENCODING_PCM_S16LE,
    ".raw": tts_pb2.AUDIO_ENCODING_PCM_S16LE,
    ".pcm": tts_pb2.AUDIO_ENCODING_PCM_S16LE,
    ".flac": tts_pb2.AUDIO_ENCODING_FLAC,
    ".ogg": tts_pb2.AUDIO_ENCODING_OGG_OPUS,
    ".opus": tts_pb2.AUDIO_ENCODING_OGG_OPUS,
    ".mp3": tts_pb2.AUDIO_ENCODING_MP3,
    ".ulaw": tts_pb2.AUDIO_ENCODING_MULAW,
    ".mulaw": tts_pb2.AUDIO_ENCODING_MULAW,
    ".alaw": tts_pb2.AUDIO_ENCODING_ALAW,
}
_GENDERS = {tts_pb2.VOICE_GENDER_FEMALE: "female", tts_pb2.VOICE_GENDER_MALE: "male",
            tts_pb2.VOICE_GENDER_NEUTRAL: "neutral"}
_IMPORTED_AT = time.monotonic()  # "command start" where /proc cannot tell (a little late)
_MODEL_RATE_HZ = 24000
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"


class CliError(Exception):
    """A failure explained to the person at the terminal; exits non-zero."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tts-grpc-client",
        description="Speak text with a TextToSpeech gRPC server: plays the audio while it "
        "streams in, or saves it with --output.",
        epilog="examples:\n"
        "  tts-grpc-client --voice af_bella \"Hello there\"\n"
        "  echo 'Read from stdin.' | tts-grpc-client -\n"
        "  some-llm-command | tts-grpc-client --live\n"
        "  tts-grpc-client --output hello.wav \"Saved, not played.\"\n"
        "  tts-grpc-client --list-voices\n\n"
        "exit status: 0 on success, 1 on any failure (the message says why), 2 for bad\n"
        "arguments, 130 when interrupted with Ctrl-C.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", nargs="?", metavar="TEXT",
                        help="text to speak; '-' or no argument with piped input reads stdin")
    parser.add_argument("--live", action="store_true",
                        help="speak standard input while it is still being written (e.g. an "
                        "LLM's answer piped in): each sentence plays as soon as it is complete")
    parser.add_argument("--voice", default="", metavar="NAME",
                        help="voice name (default: the server's, af_bella); see --list-voices")
    parser.add_argument("--language", default="", metavar="CODE",
                        help="language to read the text in, e.g. fr-FR, en-GB, ja-JP (default: "
                        "the voice's own); see --list-voices")
    parser.add_argument("--speed", type=float, default=1.0, metavar="X",
                        help="speaking rate, 0.5 to 2.0 (default 1.0)")
    parser.add_argument("--server", default=os.environ.get("TTS_SERVER", "localhost:50051"),
                        metavar="TARGET",
                        help="server address host:port, or several replicas as "
                        "dns:///NAME:PORT (all addresses of NAME) or ipv4:A:PORT,B:PORT; calls "
                        "are spread round-robin and retried on another replica when one is "
                        "unavailable (default: $TTS_SERVER, else localhost:50051)")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE",
                        help="save to FILE instead of playing (add --play to do both); the "
                        "format comes from the extension: " + ", ".join(sorted(_OUTPUT_FORMATS)))
    playback = parser.add_mutually_exclusive_group()
    playback.add_argument("--play", action="store_true",
                        help="with --output .wav/.raw/.pcm: play while saving")
    playback.add_argument("--no-play", action="store_true",
                        help="never open the audio device (without --output: synthesize and "
                        "discard, e.g. to check the server)")
    parser.add_argument("--captions", choices=captions.FORMATS,
                        help="with --output: also write the word timings as a WebVTT or SRT "
                        "caption file next to it (hello.wav -> hello.vtt)")
    parser.add_argument("--sample-rate", type=int, default=0, metavar="HZ",
                        help="sample rate in Hz, 8000 to 48000 (default: the model's 24000)")
    parser.add_argument("--list-voices", action="store_true",
                        help="print the server's voices (name, language, gender) and exit")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="seconds the server may take for the whole call (default 120; "
                        "not with --live, which lasts as long as its input)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print timings (first chunk, first sound, underruns) on stderr")
    secure = parser.add_argument_group("security (for a server started with TLS or a token)")
    secure.add_argument("--tls", action="store_true",
                        help="connect with TLS, trusting the system's certificate authorities")
    secure.add_argument("--tls-ca", type=Path, metavar="FILE",
                        help="connect with TLS, trusting the CA certificates in FILE (PEM)")
    secure.add_argument("--tls-cert", type=Path, metavar="FILE",
                        help="client certificate (PEM) for a server that requires mutual TLS")
    secure.add_argument("--tls-key", type=Path, metavar="FILE",
                        help="private key (PEM) of --tls-cert")
    secure.add_argument("--token-file", type=Path, metavar="FILE",
                        help="file holding the bearer token (default: env TTS_TOKEN)")
    return parser


def connect(args: argparse.Namespace) -> TtsClient:
    """A client for --server with the TLS and token options applied."""
    def read(path: Path | None) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as err:
            raise CliError(f"cannot read {path}: {err.strerror}") from err

    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together")
    credentials = None
    if args.tls or args.tls_ca or args.tls_cert:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(args.tls_ca), private_key=read(args.tls_key),
            certificate_chain=read(args.tls_cert))
    token_bytes = read(args.token_file)
    token = token_bytes.decode().strip() if token_bytes is not None else \
        os.environ.get("TTS_TOKEN", "").strip()
    return TtsClient(args.server, credentials=credentials, token=token or None,
                     timeout_s=args.timeout)


def read_text(args: argparse.Namespace, stdin: IO[str]) -> str:
    if args.text == "-" or (args.text is None and not stdin.isatty()):
        text = stdin.read()
    elif args.text is None:
        raise CliError("no text given: pass it as an argument, or pipe it in (or use '-')")
    else:
        text = str(args.text)
    if not text.strip():
        raise CliError("the text is empty: nothing to say")
    return text


def explain(error: grpc.aio.AioRpcError, server: str, timeout_s: float) -> str:
    """A message for a failed call: the status, the server's words and what to do."""
    code = error.code()
    details = error.details() or ""
    hint = ""
    if code == grpc.StatusCode.UNAVAILABLE and _is_connection_failure(error):
        return (f"cannot reach the server at {server}: is it running? start it with "
                f"`make serve` (or point --server / TTS_SERVER at it). ({details})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        hint = (f"the call did not finish within --timeout {timeout_s:g} s; raise it or "
                "send shorter text")
    elif code == grpc.StatusCode.NOT_FOUND or "config.voice" in _bad_fields(error):
        hint = "run `tts-grpc-client --list-voices` to see the voices"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        hint = "pass the server's token with --token-file FILE or env TTS_TOKEN"
    elif code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
        hint = "the server is busy or restarting; try again in a few seconds"
    message = f"{code.name}: {details}"
    return f"{message}\n  hint: {hint}" if hint else message


def _is_connection_failure(error: grpc.aio.AioRpcError) -> bool:
    # The server itself also answers UNAVAILABLE (while shutting down); only a failure of
    # the channel means nothing is listening at the address.
    text = f"{error.details()} {error.debug_error_string()}".lower()
    return any(sign in text for sign in ("failed to connect", "connection refused",
                                         "connect failed", "unreachable", "resolving",
                                         "lookup failed", "dns resolution"))


def _bad_fields(error: grpc.aio.AioRpcError) -> set[str]:
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields: set[str] = set()
    for detail in status.details if status else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields.update(v.field for v in bad_request.field_violations)
    return fields


def _print_voices(response: tts_pb2.ListVoicesResponse) -> None:
    print(f"{'NAME':<14} {'LANGUAGE':<9} GENDER")
    for voice in response.voices:
        default = "  (default)" if voice.name == response.default_voice else ""
        gender = _GENDERS.get(voice.gender, "-")
        print(f"{voice.name:<14} {voice.language_code:<9} {gender}{default}")


class _Progress:
    """Shows how far through the text the stream is, on a terminal only."""

    def __init__(self, total_chars: int, stream: IO[str]) -> None:
        self._total = max(total_chars, 1)
        self._stream = stream
        self._enabled = stream.isatty()

    def update(self, end_offset: int, audio_s: float) -> None:
        if self._enabled:
            percent = 100 * min(end_offset, self._total) / self._total
            self._stream.write(f"\r{percent:5.1f}% of the text, {audio_s:6.1f} s of audio")
            self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")


async def speak(args: argparse.Namespace, text: str | None) -> None:
    """Speaks `text`, or with None the live text of standard input, as it streams in."""
    encoding = tts_pb2.AUDIO_ENCODING_PCM_S16LE
    if args.output is not None:
        suffix = args.output.suffix.lower()
        if suffix not in _OUTPUT_FORMATS:
            raise CliError(f"cannot tell the format of {args.output}: use one of "
                           + ", ".join(sorted(_OUTPUT_FORMATS)))
        encoding = _OUTPUT_FORMATS[suffix]
    play = (args.output is None or args.play) and not args.no_play
    if play and encoding != tts_pb2.AUDIO_ENCODING_PCM_S16LE:
        raise CliError("--play works with .wav, .raw or .pcm output only")
    sample_rate_hz = args.sample_rate or _MODEL_RATE_HZ
    config = tts_pb2.SynthesisConfig(voice=args.voice, speed=args.speed, encoding=encoding,
                                     language_code=args.language,
                                     sample_rate_hertz=args.sample_rate,
                                     enable_word_timings=bool(args.captions))
    live_input = _LiveInput(sys.stdin) if text is None else None

    def audio(client: TtsClient) -> AsyncGenerator[tts_pb2.AudioChunk, None]:
        if live_input is None:
            assert text is not None
            return client.synthesize_stream(
                tts_pb2.SynthesizeStreamRequest(text=text, config=config))
        return _chunks(client.streaming_synthesize(config, live_input.requests()))
    words: list[tts_pb2.WordTiming] = []

    player: StreamPlayer | None = None
    sink: _Sink | None = None
    progress = (_Progress(len(text), sys.stderr)
                if args.output is not None and text is not None else None)
    first_chunk_at = last_chunk_at = None
    try:
        # The device opens before the call, so a machine without one fails before synthesis.
        # Live text comes when it comes: a gap between sentences is the text not being there
        # yet, not synthesis falling behind, so there is nothing to re-buffer for.
        player = _new_player(sample_rate_hz, rebuffer=text is not None) if play else None
        sink = _Sink(args.output) if args.output is not None else None
        async with (connect(args) as client,
                    contextlib.aclosing(audio(client)) as pieces):
            async for piece in pieces:
                last_chunk_at = time.monotonic()
                if first_chunk_at is None:
                    first_chunk_at = last_chunk_at
                    if player is not None and piece.sample_rate_hertz != sample_rate_hz:
                        raise CliError(f"the server sent {piece.sample_rate_hertz} Hz audio, "
                                       f"not the {sample_rate_hz} Hz asked for")
                if player is not None:
                    done = (piece.text_span.end_offset / len(text)
                            if text and piece.HasField("text_span") else None)
                    _feed(player, piece.audio, done)
                if sink is not None:
                    sink.write(piece.audio, piece.sample_rate_hertz)
                words += piece.words
                if progress is not None and piece.HasField("text_span"):
                    progress.update(piece.text_span.end_offset,
                                    piece.audio_offset_seconds + piece.audio_duration_seconds)
        if live_input is not None and not live_input.received.strip():
            raise CliError("standard input had no text: nothing to say")
        if sink is not None:
            sink.commit()
        if args.captions:
            _write_captions(words, caption_path(args.output, args.captions), args.captions)
        if player is not None:
            await asyncio.to_thread(_finish, player)
    except BaseException:
        # Ctrl-C lands here as CancelledError: silence the device at once; leaving the
        # `async with` blocks above has already cancelled the call.
        if player is not None:
            player.abort()
        if sink is not None:
            sink.discard()
        raise
    finally:
        if progress is not None:
            progress.close()
    if args.verbose:
        _print_timings(first_chunk_at, last_chunk_at, player)


def _write_captions(words: list[tts_pb2.WordTiming], path: Path, caption_format: str) -> None:
    try:
        write_captions(words, path, caption_format)
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror}") from err


def _print_timings(first_chunk_at: float | None, last_chunk_at: float | None,
                   player: StreamPlayer | None) -> None:
    if first_chunk_at is None or last_chunk_at is None:
        return
    started = _command_started_at()
    lines = [f"first chunk {first_chunk_at - started:.3f} s and last chunk "
             f"{last_chunk_at - started:.3f} s after the command started"]
    if player is not None and player.first_sound_at is not None:
        lines.append(f"first sound {player.first_sound_at - first_chunk_at:.3f} s after the "
                     f"first chunk, {player.first_sound_at - started:.3f} s after the command "
                     f"started (device latency {player.latency_s * 1000:.0f} ms)")
        lines.append(f"underruns {player.underruns} ({player.gap_s:.3f} s of gaps"
                     + "".join(f", re-buffered {t:.1f} s" for t in player.rebuffer_targets_s)
                     + ")")
    print("; ".join(lines), file=sys.stderr)


def _command_started_at() -> float:
    """When this process started, on the time.monotonic() clock (Linux), else module import."""
    try:
        stat = Path("/proc/self/stat").read_text()
        # Field 22 (starttime, in clock ticks since boot) counts from after "(comm) ".
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        age_s = (time.clock_gettime(time.CLOCK_BOOTTIME)
                 - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED_AT
    return time.monotonic() - age_s


async def _chunks(responses: AsyncGenerator[tts_pb2.StreamingSynthesizeResponse, None]
                  ) -> AsyncGenerator[tts_pb2.AudioChunk, None]:
    async with contextlib.aclosing(responses):
        async for response in responses:
            if response.HasField("chunk"):
                yield response.chunk


class _LiveInput:
    """Standard input as it arrives, in whatever pieces the writer flushes.

    A daemon thread does the blocking reads, so Ctrl-C never waits for the writer.
    """

    _READ_BYTES = 4096

    def __init__(self, stdin: IO[str]) -> None:
        self._fd = stdin.fileno()
        self.received = ""

    async def requests(self) -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[str | None] = asyncio.Queue()

        def read() -> None:
            # UTF-8 characters may be split across reads; the decoder keeps the halves.
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            try:
                while data := os.read(self._fd, self._READ_BYTES):
                    loop.call_soon_threadsafe(arrived.put_nowait, decoder.decode(data))
                loop.call_soon_threadsafe(arrived.put_nowait, decoder.decode(b"", final=True))
                loop.call_soon_threadsafe(arrived.put_nowait, None)
            except RuntimeError:
                return  # the call ended (e.g. refused) and its event loop closed: stop reading

        threading.Thread(target=read, name="tts-stdin", daemon=True).start()
        while (text := await arrived.get()) is not None:
            if text:
                self.received += text
                yield tts_pb2.StreamingSynthesizeRequest(text=text)


def _new_player(sample_rate_hz: int, rebuffer: bool = True) -> StreamPlayer:
    # Imported late: sounddevice needs PortAudio, which saving to a file does not.
    try:
        from .player import NoAudioDevice, StreamPlayer
    except OSError as err:
        raise CliError(f"cannot play audio: PortAudio is missing ({err}); install "
                       "libportaudio2, or save the audio with --output FILE.wav") from err
    try:
        return StreamPlayer(sample_rate_hz, rebuffer=rebuffer)
    except NoAudioDevice as err:
        raise CliError(f"no audio output device on this machine ({err}); save the audio "
                       "with --output FILE.wav instead") from err


def _feed(player: StreamPlayer, pcm: bytes, text_done: float | None) -> None:
    from .player import PlaybackError

    try:
        player.feed(pcm, text_done)
    except PlaybackError as err:
        raise CliError(f"playback failed: {err}") from err


def _finish(player: StreamPlayer) -> None:
    from .player import PlaybackError

    try:
        player.finish()
    except PlaybackError as err:
        raise CliError(f"playback failed: {err}") from err


class _Sink:
    """Writes the streamed audio to FILE.part and renames it to FILE only on success.

    For .wav the client writes the header itself (from 16-bit PCM), so it holds the real
    length; other formats are the server's encoded stream, byte for byte.
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


async def run(args: argparse.Namespace) -> None:
    if args.list_voices:
        async with connect(args) as client:
            _print_voices(await client.list_voices())
        return
    if args.live:
        if args.text not in (None, "-"):
            raise CliError("--live speaks standard input: leave out TEXT (or give '-')")
        await speak(args, None)
        return
    text = read_text(args, sys.stdin)
    await speak(args, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.captions and args.output is None:
        parser.error("--captions writes its file next to --output FILE: give --output too")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`--list-voices | head`): nothing more to say, and Python must
        # not complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except grpc.aio.AioRpcError as err:
        print(f"error: {explain(err, args.server, args.timeout)}", file=sys.stderr)
        return EXIT_FAILURE
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:  # anything unforeseen still gets one line, not a traceback
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
