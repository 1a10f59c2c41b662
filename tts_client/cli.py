"""tts-grpc-client: speak text through a TextToSpeech server, save it, or list its voices."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import traceback
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import grpc

from tts_api.v1 import tts_pb2

from . import captions
from .captions import caption_path, write_captions
from .client import TtsClient
from .errors import CliError, explain
from .live_input import LiveInput
from .sink import AudioFileSink

if TYPE_CHECKING:
    from .player import StreamPlayer

# File extension -> the encoding to ask the server for (.wav gets its header from the client).
OUTPUT_FORMATS = {
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
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # the shell's convention for "ended by SIGINT"


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
        "  tts-grpc-client --ssml '<speak>Wait<break time=\"1s\"/>now.</speak>'\n"
        "  tts-grpc-client --file talk.ssml\n"
        "  tts-grpc-client --list-voices\n\n"
        "exit status: 0 on success, 1 on any failure (the message says why; --debug adds\n"
        "the traceback of an unforeseen one), 2 for bad arguments, 130 when interrupted\n"
        "with Ctrl-C.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", nargs="?", metavar="TEXT",
                        help="text to speak; '-' or no argument with piped input reads stdin")
    parser.add_argument("--file", type=Path, metavar="FILE",
                        help="speak the text of FILE (UTF-8); a .ssml file is read as SSML")
    parser.add_argument("--ssml", action="store_true",
                        help="the text is an SSML <speak> document: pauses, say-as, phonemes, "
                        "voices and languages (the server's docs/ssml.md)")
    parser.add_argument("--live", action="store_true",
                        help="speak standard input while it is still being written (e.g. an "
                        "LLM's answer piped in): each sentence plays as soon as it is complete")
    parser.add_argument("--voice", default="", metavar="NAME",
                        help="voice name, or a mix such as 'af_bella(2)+af_sky(1)' (default: "
                        "the server's, af_bella); see --list-voices")
    parser.add_argument("--language", default="", metavar="CODE",
                        help="language to read the text in, e.g. fr-FR, en-GB, ja-JP (default: "
                        "the voice's own); see --list-voices")
    parser.add_argument("--say", type=pronunciation, action="append", default=[],
                        metavar="WORD=READING",
                        help="read WORD as READING in this call, over the server's lexicon: "
                        "plain words (--say GIF=jif, any language) or the model's phonemes "
                        "between slashes (--say 'GIF=/ʤˈɪf/', English only); repeatable, up "
                        "to 100")
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
                        "format comes from the extension: " + ", ".join(sorted(OUTPUT_FORMATS)))
    playback = parser.add_mutually_exclusive_group()
    playback.add_argument("--play", action="store_true",
                        help="with --output .wav/.raw/.pcm: play while saving")
    playback.add_argument("--no-play", action="store_true",
                        help="never open the audio device (without --output: synthesize and "
                        "discard, e.g. to check the server)")
    parser.add_argument("--captions", choices=captions.FORMATS,
                        help="with --output: also write the word timings as a WebVTT or SRT "
                        "caption file next to it (hello.wav -> hello.vtt), in cues of at most "
                        "2 lines of 42 characters and 7 s")
    parser.add_argument("--sample-rate", type=int, default=0, metavar="HZ",
                        help="sample rate in Hz, 8000 to 48000 (default: the model's own, "
                        "which the server says with the audio)")
    parser.add_argument("--list-voices", action="store_true",
                        help="print the server's voices (name, language, gender) and exit")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="seconds the server may take for the whole call (default 120; "
                        "not with --live, which lasts as long as its input)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="print timings (first chunk, first sound, underruns) on stderr")
    parser.add_argument("--debug", action="store_true",
                        help="on an unforeseen failure, print its traceback (for a bug report) "
                        "and gRPC's own description of a failed call")
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


def pronunciation(value: str) -> tts_pb2.Pronunciation:
    """--say WORD=RESPELLING, or WORD=/PHONEMES/ (slashes, as phonemes are written)."""
    word, equals, reading = value.partition("=")
    if not equals or not word.strip() or not reading.strip():
        raise argparse.ArgumentTypeError(
            f"{value!r}: write WORD=RESPELLING (GIF=jif) or WORD=/PHONEMES/ (GIF=/ʤˈɪf/)")
    reading = reading.strip()
    if len(reading) > 2 and reading.startswith("/") and reading.endswith("/"):
        return tts_pb2.Pronunciation(word=word.strip(), phonemes=reading[1:-1].strip())
    return tts_pb2.Pronunciation(word=word.strip(), respelling=reading)


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
    if args.file is not None:
        if args.text is not None:
            raise CliError("give the text either as TEXT or with --file, not both")
        try:
            text = args.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CliError(f"cannot read {args.file}: {err}") from err
    elif args.text == "-" or (args.text is None and not stdin.isatty()):
        text = stdin.read()
    elif args.text is None:
        raise CliError("no text given: pass it as an argument, or pipe it in (or use '-')")
    else:
        text = str(args.text)
    if not text.strip():
        raise CliError("the text is empty: nothing to say")
    return text


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


def _encoding(args: argparse.Namespace) -> tts_pb2.AudioEncoding.ValueType:
    """The encoding to ask for: 16-bit PCM to play, else what --output's extension says."""
    if args.output is None:
        return tts_pb2.AUDIO_ENCODING_PCM_S16LE
    suffix = args.output.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise CliError(f"cannot tell the format of {args.output}: use one of "
                       + ", ".join(sorted(OUTPUT_FORMATS)))
    return OUTPUT_FORMATS[suffix]


async def speak(args: argparse.Namespace, text: str | None) -> None:
    """Speaks `text`, or with None the live text of standard input, as it streams in."""
    encoding = _encoding(args)
    play = (args.output is None or args.play) and not args.no_play
    if play and encoding != tts_pb2.AUDIO_ENCODING_PCM_S16LE:
        raise CliError("--play works with .wav, .raw or .pcm output only")
    config = tts_pb2.SynthesisConfig(voice=args.voice, speed=args.speed, encoding=encoding,
                                     language_code=args.language,
                                     sample_rate_hertz=args.sample_rate,
                                     enable_word_timings=bool(args.captions),
                                     pronunciations=args.say)
    live_input = LiveInput(sys.stdin) if text is None else None

    def audio(client: TtsClient) -> AsyncGenerator[tts_pb2.AudioChunk, None]:
        if live_input is None:
            assert text is not None
            request = (tts_pb2.SynthesizeStreamRequest(ssml=text, config=config) if is_ssml(args)
                       else tts_pb2.SynthesizeStreamRequest(text=text, config=config))
            return client.synthesize_stream(request)
        return _chunks(client.streaming_synthesize(config, live_input.requests()))
    words: list[tts_pb2.WordTiming] = []

    player: StreamPlayer | None = None
    sink: AudioFileSink | None = None
    progress = (_Progress(len(text), sys.stderr)
                if args.output is not None and text is not None else None)
    first_chunk_at = last_chunk_at = None
    try:
        if play:  # a machine without an audio device fails before any synthesis
            _check_audio_device()
        sink = AudioFileSink(args.output) if args.output is not None else None
        async with (connect(args) as client,
                    contextlib.aclosing(audio(client)) as pieces):
            async for piece in pieces:
                last_chunk_at = time.monotonic()
                if first_chunk_at is None:
                    first_chunk_at = last_chunk_at
                if play:
                    # The device opens at the rate the audio says it has. Live text comes
                    # when it comes: a gap between sentences is the text not being there
                    # yet, not synthesis falling behind, so there is nothing to re-buffer for.
                    player = player or _open_player(piece.sample_rate_hertz,
                                                    rebuffer=text is not None)
                    done = (piece.text_span.end_offset / len(text)
                            if text and piece.HasField("text_span") else None)
                    _feed(player, piece, done)
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
            said = text if live_input is None else live_input.received
            assert said is not None
            _write_captions(said, words, caption_path(args.output, args.captions),
                            args.captions)
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


def _write_captions(text: str, words: list[tts_pb2.WordTiming], path: Path,
                    caption_format: str) -> None:
    try:
        write_captions(text, words, path, caption_format)
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


def _check_audio_device() -> None:
    # Imported late: sounddevice needs PortAudio, which saving to a file does not.
    try:
        from .player import NoAudioDevice, check_output_device
    except OSError as err:
        raise CliError(f"cannot play audio: PortAudio is missing ({err}); install "
                       "libportaudio2, or save the audio with --output FILE.wav") from err
    try:
        check_output_device()
    except NoAudioDevice as err:
        raise CliError(f"no audio output device on this machine ({err}); save the audio "
                       "with --output FILE.wav instead") from err


def _open_player(sample_rate_hz: int, rebuffer: bool) -> StreamPlayer:
    from .player import NoAudioDevice, StreamPlayer

    try:
        return StreamPlayer(sample_rate_hz, rebuffer=rebuffer)
    except NoAudioDevice as err:
        raise CliError(f"cannot play {sample_rate_hz} Hz audio on this machine's output "
                       f"device ({err}); save it with --output FILE.wav instead") from err


def _feed(player: StreamPlayer, piece: tts_pb2.AudioChunk, text_done: float | None) -> None:
    from .player import PlaybackError

    if piece.sample_rate_hertz != player.sample_rate_hz:
        raise CliError(f"the server changed the sample rate from {player.sample_rate_hz} Hz "
                       f"to {piece.sample_rate_hertz} Hz in the middle of the audio")
    try:
        player.feed(piece.audio, text_done)
    except PlaybackError as err:
        raise CliError(f"playback failed: {err}") from err


def _finish(player: StreamPlayer) -> None:
    from .player import PlaybackError

    try:
        player.finish()
    except PlaybackError as err:
        raise CliError(f"playback failed: {err}") from err


def is_ssml(args: argparse.Namespace) -> bool:
    """Whether the text is SSML: --ssml, or a .ssml --file."""
    return bool(args.ssml or (args.file is not None and args.file.suffix.lower() == ".ssml"))


async def run(args: argparse.Namespace) -> None:
    if args.list_voices:
        async with connect(args) as client:
            _print_voices(await client.list_voices())
        return
    if args.live:
        if args.text not in (None, "-") or args.file is not None:
            raise CliError("--live speaks standard input: leave out TEXT and --file (or give "
                           "'-')")
        if args.ssml:
            raise CliError("--live speaks plain text as it is written; SSML is read whole: "
                           "leave out --live")
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
        if args.debug:
            print(f"  grpc: {err.debug_error_string()}", file=sys.stderr)
        return EXIT_FAILURE
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:  # unforeseen: one line, and the traceback only when asked
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug else " (run again with --debug for the traceback)"
        print(f"error: {type(err).__name__}: {err}{hint}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
