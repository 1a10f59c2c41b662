"""tts-grpc-client: speak text through a TextToSpeech server, save it, or list its voices."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import grpc
from grpc_status import rpc_status

from tts_api.v1 import tts_pb2

from .client import TtsClient

if TYPE_CHECKING:
    from .player import StreamPlayer

# File extension -> (encoding to ask the server for, whether the client writes a WAV header).
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
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


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
        "  tts-grpc-client --output hello.wav \"Saved, not played.\"\n"
        "  tts-grpc-client --list-voices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", nargs="?",
                        help="text to speak; '-' or no argument with piped input reads stdin")
    parser.add_argument("--voice", default="", help="voice name (default: the server's, "
                        "af_bella); see --list-voices")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="speaking rate, 0.5 to 2.0 (default 1.0)")
    parser.add_argument("--server", default=os.environ.get("TTS_SERVER", "localhost:50051"),
                        help="server address host:port (default localhost:50051, env TTS_SERVER)")
    parser.add_argument("--output", "-o", type=Path,
                        help="save to FILE instead of playing; format from the extension: "
                        + ", ".join(sorted(_OUTPUT_FORMATS)))
    parser.add_argument("--play", action="store_true",
                        help="with --output .wav/.raw: play as well as save")
    parser.add_argument("--no-play", action="store_true",
                        help="do not play (synthesize only; with --output, just save)")
    parser.add_argument("--sample-rate", type=int, default=0,
                        help="sample rate in Hz, 8000 to 48000 (default: the model's 24000)")
    parser.add_argument("--list-voices", action="store_true",
                        help="print the server's voices (name, language, gender) and exit")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds the whole call may take (default 120)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print timings (first chunk, first sound) on stderr")
    return parser


def read_text(args: argparse.Namespace, stdin: IO[str]) -> str:
    if args.text == "-" or (args.text is None and not stdin.isatty()):
        return stdin.read()
    if args.text is None:
        raise CliError("no text given: pass it as an argument, or pipe it in with '-'")
    return str(args.text)


def explain(error: grpc.aio.AioRpcError, server: str, timeout_s: float) -> str:
    """A message for a failed call: the status, the server's words and what to do."""
    code = error.code()
    details = error.details() or ""
    hint = ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return (f"cannot reach the server at {server}: is it running? start it with "
                f"`make serve` (or pass --server HOST:PORT). ({details})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        hint = f"the call did not finish within --timeout {timeout_s:g} s; raise it or " \
               "send shorter text"
    elif code == grpc.StatusCode.INVALID_ARGUMENT and "voice" in _bad_fields(error):
        hint = "run `tts-grpc-client --list-voices` to see the voices"
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        hint = "the server is busy; try again in a few seconds"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        hint = "the server wants a token: pass --token-file or set TTS_TOKEN"
    message = f"{code.name}: {details}"
    return f"{message}\n  hint: {hint}" if hint else message


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


async def speak(args: argparse.Namespace, text: str) -> None:
    started = time.monotonic()
    encoding = tts_pb2.AUDIO_ENCODING_PCM_S16LE
    if args.output is not None:
        suffix = args.output.suffix.lower()
        if suffix not in _OUTPUT_FORMATS:
            raise CliError(f"cannot tell the format of {args.output}: use one of "
                           + ", ".join(sorted(_OUTPUT_FORMATS)))
        encoding = _OUTPUT_FORMATS[suffix]
    play = (args.output is None or args.play) and not args.no_play
    if play and encoding != tts_pb2.AUDIO_ENCODING_PCM_S16LE:
        raise CliError("--play works with .wav or .raw output only")
    request = tts_pb2.SynthesizeRequest(text=text, voice=args.voice, speed=args.speed,
                                        encoding=encoding,
                                        sample_rate_hertz=args.sample_rate)

    player = None
    sink = _open_sink(args.output, encoding, args.sample_rate or 24000)
    progress = _Progress(len(text), sys.stderr) if args.output else None
    first_chunk_at = None
    try:
        async with TtsClient(args.server, timeout_s=args.timeout) as client:
            async for piece in client.synthesize_stream(request):
                if first_chunk_at is None:
                    first_chunk_at = time.monotonic()
                if play:
                    if player is None:
                        player = _new_player(piece.sample_rate_hertz)
                    _feed(player, piece.audio)
                if sink is not None:
                    sink.write(piece.audio)
                if progress is not None and piece.HasField("text_span"):
                    progress.update(piece.text_span.end_offset,
                                    piece.audio_offset_seconds + piece.audio_duration_seconds)
        if player is not None:
            await asyncio.to_thread(player.finish)
    except BaseException:
        if player is not None:
            player.abort()
        raise
    finally:
        if progress is not None:
            progress.close()
        if sink is not None:
            sink.close()
    if args.verbose and first_chunk_at is not None:
        lines = [f"first chunk after {first_chunk_at - started:.3f} s"]
        if player is not None and player.first_sound_at is not None:
            lines.append(f"first sound {player.first_sound_at - first_chunk_at:.3f} s after "
                         f"the first chunk ({player.first_sound_at - started:.3f} s after start)")
            lines.append(f"underruns: {player.underruns}")
        print("; ".join(lines), file=sys.stderr)


def _new_player(sample_rate_hz: int) -> StreamPlayer:
    # Imported late: sounddevice needs PortAudio, which saving to a file does not.
    try:
        from .player import StreamPlayer
    except OSError as err:
        raise CliError(f"cannot play audio: PortAudio is missing ({err}); install "
                       "libportaudio2, or save with --output FILE.wav") from err
    return StreamPlayer(sample_rate_hz)


def _feed(player: StreamPlayer, pcm: bytes) -> None:
    from .player import NoAudioDevice

    try:
        player.feed(pcm)
    except NoAudioDevice as err:
        raise CliError(f"no audio output device on this machine ({err}); save the audio "
                       "with --output FILE.wav instead") from err


def _open_sink(path: Path | None, encoding: int, sample_rate_hz: int):  # type: ignore[no-untyped-def]
    if path is None:
        return None
    if path.suffix.lower() == ".wav":
        import soundfile

        return _WavSink(soundfile.SoundFile(path, "w", samplerate=sample_rate_hz, channels=1,
                                            subtype="PCM_16"))
    return path.open("wb")


class _WavSink:
    """Writes streamed 16-bit PCM into a WAV file whose header gets the final length."""

    def __init__(self, sound_file) -> None:  # type: ignore[no-untyped-def]
        self._file = sound_file

    def write(self, pcm: bytes) -> None:
        if pcm:
            self._file.buffer_write(pcm, dtype="int16")

    def close(self) -> None:
        self._file.close()


async def run(args: argparse.Namespace) -> None:
    if args.list_voices:
        async with TtsClient(args.server, timeout_s=args.timeout) as client:
            _print_voices(await client.list_voices())
        return
    text = read_text(args, sys.stdin)
    await speak(args, text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except grpc.aio.AioRpcError as err:
        print(explain(err, args.server, args.timeout), file=sys.stderr)
        return EXIT_FAILURE
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
