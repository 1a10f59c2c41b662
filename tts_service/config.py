"""Server settings, each declared once: a ServerConfig field with its flag, type and help.

Every setting is a flag and a TTS_* environment variable named after it (`--read-ahead`:
`TTS_READ_AHEAD`); a flag wins over its variable, and a bad value of either is a usage error
naming it (exit 2). Adding a setting is adding one field here: the parser, `--help` and the
option table in docs/configuration.md all come from the fields.

click does the parsing: it is already installed (uvicorn is built on it, and reads its own
settings the same way), takes a flag or else its variable through the same converter, names
the variable in its usage errors and shows both in `--help`. pydantic-settings would do the
same for a dataclass-like model, but would add a package for nothing click lacks here.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click
from click.core import ParameterSource

from tts_service import __version__
from tts_service.synthesis.onnx_runtime import CHOICES as ONNXRUNTIME_CHOICES
from tts_service.synthesis.onnx_runtime import DEFAULT_SHIM_PATH

PROG = "tts-grpc-server"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "kokoro-multi-lang-v1_0"
_ENV_PREFIX = "TTS_"


class Kind(click.ParamType):
    """Turns the text of a flag or variable into a setting's value, or says what is wrong.

    Defaults are already typed and pass through unchanged.
    """

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)

    def parse(self, text: str) -> Any:
        raise NotImplementedError


class Text(Kind):
    name = "text"

    def parse(self, text: str) -> str:
        return text


class FilePath(Kind):
    name = "path"

    def parse(self, text: str) -> Path:
        return Path(text)


class WholeNumber(Kind):
    name = "integer"

    def __init__(self, minimum: int, maximum: int | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum

    def parse(self, text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"must be a whole number, got {text!r}") from None
        if number < self.minimum or (self.maximum is not None and number > self.maximum):
            allowed = (f"at least {self.minimum}" if self.maximum is None
                       else f"{self.minimum} to {self.maximum}")
            raise ValueError(f"must be {allowed}, got {number}")
        return number


class Seconds(Kind):
    name = "seconds"

    def __init__(self, minimum: float = 0.0, *, above: bool = False) -> None:
        """At least `minimum` seconds, or more than it with `above`; never NaN or infinite."""
        self.minimum, self.above = minimum, above

    def parse(self, text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"must be a number of seconds, got {text!r}") from None
        too_small = number <= self.minimum if self.above else number < self.minimum
        if too_small or not math.isfinite(number):  # float() takes "nan" and "inf"
            allowed = "more than" if self.above else "at least"
            raise ValueError(f"must be {allowed} {self.minimum:g} seconds, got {text}")
        return number


class OneOf(Kind):
    def __init__(self, *choices: str, upper: bool = False) -> None:
        self.choices, self.upper = choices, upper
        self.name = "|".join(choices)

    def parse(self, text: str) -> str:
        value = text.upper() if self.upper else text.lower()
        if value not in self.choices:
            raise ValueError(f"choose from {', '.join(self.choices)}, got {text!r}")
        return value


class Switch(Kind):
    """A boolean. The flag alone turns it on; `--flag off` turns off what the variable set."""

    name = "on|off"
    _WORDS: ClassVar[dict[str, bool]] = {"1": True, "true": True, "yes": True, "on": True,
              "0": False, "false": False, "no": False, "off": False}

    def parse(self, text: str) -> bool:
        if text.lower() not in self._WORDS:
            raise ValueError(f"must be 1/true/yes/on or 0/false/no/off, got {text!r}")
        return self._WORDS[text.lower()]


class Names(Kind):
    """A comma-separated list."""

    name = "list"

    def parse(self, text: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Setting:
    flag: str
    kind: Kind
    help: str

    @property
    def env(self) -> str:
        return _ENV_PREFIX + self.flag.removeprefix("--").upper().replace("-", "_")


_T = TypeVar("_T")


def setting(default: _T, flag: str, kind: Kind, help: str) -> _T:
    """Declares a ServerConfig field as a flag, its TTS_* variable, its type and its help."""
    return field(default=default, metadata={"setting": Setting(flag, kind, help)})


PORT = WholeNumber(0, 65535)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start; cheap to build, nothing is loaded here."""

    host: str = setting(
        "127.0.0.1", "--host", Text(),
        "address to listen on; 0.0.0.0 or :: exposes the server to the network")
    port: int = setting(50051, "--port", PORT, "TCP port; 0 picks a free one")
    model_dir: Path = setting(
        DEFAULT_MODEL_DIR, "--model-dir", FilePath(),
        "the assembled Kokoro model (make models)")
    # The pool: unset follows the rule in tts_service/pool_shape.py for the CPUs the process
    # may use; a value given wins over the rule (docs/pool.md).
    engines: int | None = setting(
        None, "--engines", WholeNumber(1),
        "engine instances in the pool = pieces (about a sentence each) synthesized at once; "
        "unset: one per CPU the process may use (affinity and cgroup quota, docs/pool.md)")
    engine_threads: int | None = setting(
        None, "--engine-threads", WholeNumber(1), "CPU threads per engine; unset: 1")
    solo_engine_threads: int | None = setting(
        None, "--solo-engine-threads", WholeNumber(0),
        "CPU threads of an extra engine that makes a lone request's pieces, one at a time, "
        "whenever no other request is at work (a lone caller's audio is made on every core); "
        "0: no such engine; unset: one thread per usable CPU, at most 4, none on 1 CPU")
    # Worker threads of multi-threaded engines sleep between operators instead of
    # busy-waiting, so engines sharing cores do not take them from each other (bench.threads).
    intra_op_spinning: bool = setting(
        False, "--intra-op-spinning", Switch(),
        "on: onnxruntime's busy-waiting worker threads, which take cores from the other "
        "engines; off: an engine's extra threads sleep between operators (PyPI runtime only)")
    max_text_chars: int = setting(
        5000, "--max-text-chars", WholeNumber(1), "longest accepted text, in characters")
    max_queued_requests: int = setting(
        8, "--max-queued-requests", WholeNumber(0),
        "requests that may wait for their first engine; more get RESOURCE_EXHAUSTED")
    # More than the longest piece takes to make, so a reader at real time never waits on one.
    read_ahead_s: float = setting(
        8.0, "--read-ahead", Seconds(above=True),
        "seconds of audio made ahead of a streaming client's reading; past it the request's "
        "next pieces wait and its engines serve others")
    shutdown_grace_s: float = setting(
        30.0, "--shutdown-grace", Seconds(),
        "seconds that calls in flight get to finish on SIGTERM/SIGINT")
    # A voice agent's text comes in bursts (an LLM's first token after a tool call can take
    # many seconds), but a call left open and silent holds its admission.
    streaming_idle_timeout_s: float = setting(
        30.0, "--streaming-idle-timeout", Seconds(above=True),
        "StreamingSynthesize: seconds a call may go without a message or audio before it ends "
        "with DEADLINE_EXCEEDED")
    # An LLM streams 80+ characters a second, so a usual sentence ends well within 2 s; text
    # still waiting after that means the writer stalled.
    streaming_max_wait_s: float = setting(
        2.0, "--streaming-max-wait", Seconds(above=True),
        "StreamingSynthesize: seconds text may wait for a certain sentence end before it is "
        "spoken at the best break available")
    # gRPC clients keep one connection for hours, so replicas added later would get no share
    # of them; 300 s of grace is longer than the longest text (5000 characters) takes to make.
    max_connection_age_s: float = setting(
        300.0, "--max-connection-age", Seconds(),
        "seconds after which a client connection is asked to reconnect, so that long-lived "
        "clients spread over replicas added later; 0 keeps connections forever")
    max_connection_age_grace_s: float = setting(
        300.0, "--max-connection-age-grace", Seconds(),
        "seconds that calls in flight on such a connection get to finish before it is closed")
    # Per front (gRPC, HTTP with its WebSocket, Wyoming): every open connection holds a
    # socket, its buffers and a task, so a client that opens many and sends nothing must meet
    # a bound.
    max_connections: int = setting(
        256, "--max-connections", WholeNumber(1),
        "gRPC, HTTP (WebSockets included) and Wyoming: open client connections per front; "
        "more are refused at once (gRPC closes them unanswered, HTTP 503, a Wyoming error "
        "event)")
    # Longer than an honest client ever needs to send a request or to take a chunk of audio,
    # short enough that idle or trickling clients free their connections.
    connection_idle_timeout_s: float = setting(
        60.0, "--connection-idle-timeout", Seconds(above=True),
        "HTTP and Wyoming: seconds a connection may wait for its next request, take to send "
        "one, or go without reading the audio sent to it before it is closed; gRPC: seconds "
        "a connection may go without a call")
    onnxruntime: str = setting(
        "auto", "--onnxruntime", OneOf(*ONNXRUNTIME_CHOICES),
        "engine runtime: auto (the newer PyPI onnxruntime when it loads and passes a "
        "self-check, else the bundled one), pypi or bundled")
    onnxruntime_shim: Path = setting(
        DEFAULT_SHIM_PATH, "--onnxruntime-shim", FilePath(),
        "the forwarding library built by `make shim` that lets sherpa-onnx use the newer "
        "onnxruntime")
    voice_blends: tuple[str, ...] = setting(
        (), "--voice-blends", Names(),
        "extra voices mixed from built-in ones, comma separated, each NAME=VOICE:WEIGHT+"
        "VOICE:WEIGHT, e.g. bella_sky=af_bella:0.6+af_sky:0.4")
    lexicon_overrides: Path | None = setting(
        None, "--lexicon-overrides", FilePath(),
        "pronunciation overrides: 'word = respelling' and 'word phonemes' lines "
        "(docs/voices.md)")
    # About three minutes of speech (float32 at 24 kHz): an assistant's repeated phrases many
    # times over, at little memory.
    audio_cache_mb: int = setting(
        16, "--audio-cache-mb", WholeNumber(0),
        "audio of recently spoken pieces kept in memory, in MB: a piece said again (same tokens, "
        "voice, speed) comes back at once, without an engine; 0: off")
    preload_voices: tuple[str, ...] = setting(
        (), "--preload-voices", Names(),
        "voices whose languages' front ends load at start-up, comma separated; the others load "
        "on their first request (about a second); unset: the default voice")
    metrics_port: int = setting(
        0, "--metrics-port", PORT,
        "serve Prometheus metrics over HTTP on this port (host as --host); 0: off")
    http_port: int = setting(
        0, "--http-port", PORT,
        "also serve the OpenAI-compatible HTTP API and the playground page on this port "
        "(host, TLS and token as for gRPC); 0: off")
    wyoming_port: int = setting(
        0, "--wyoming-port", PORT,
        "also serve the Wyoming protocol (Home Assistant) on this port, host as --host; "
        "Wyoming has no authentication or encryption, so keep it on a trusted network "
        "(docs/wyoming.md); 0: off")
    tls_cert: Path | None = setting(
        None, "--tls-cert", FilePath(),
        "PEM server certificate (chain); with --tls-key, serves TLS instead of plaintext")
    tls_key: Path | None = setting(None, "--tls-key", FilePath(), "PEM private key of --tls-cert")
    tls_client_ca: Path | None = setting(
        None, "--tls-client-ca", FilePath(),
        "PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)")
    token_file: Path | None = setting(
        None, "--token-file", FilePath(),
        "file holding the bearer token TextToSpeech calls must send as 'authorization: Bearer "
        "<token>' (the token can also come from env TTS_TOKEN); health and reflection stay "
        "open")
    log_level: str = setting(
        "INFO", "--log-level", OneOf("DEBUG", "INFO", "WARNING", "ERROR", upper=True),
        "logging level")
    log_text: bool = setting(
        False, "--log-text", Switch(),
        "include request text in the request log (it may be private)")

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def settings() -> list[tuple[str, Setting, Any]]:
    """Each ServerConfig field's name, declaration and default, in declaration order."""
    return [(item.name, item.metadata["setting"], item.default) for item in fields(ServerConfig)]


def shown_default(default: Any) -> str:
    """A default as people write it: on/off, a path inside the repository relative to it."""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, Path) and default.is_relative_to(REPO_ROOT):
        return str(default.relative_to(REPO_ROOT))
    if isinstance(default, tuple):
        return ",".join(default)
    if isinstance(default, float):
        return f"{default:g}"
    return "" if default is None else str(default)


class _Option(click.Option):
    """Names where a bad value came from, and shows its default as people write it."""

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        try:
            return super().process_value(ctx, value)
        except click.BadParameter as err:
            # click would name the flag and its variable both, whichever was given.
            from_env = ctx.get_parameter_source(self.name) is ParameterSource.ENVIRONMENT
            err.param_hint = f"{self.envvar}" if from_env else f"'{self.opts[0]}'"
            raise

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        extra.pop("default", None)
        if shown := shown_default(self.default):
            extra["default"] = shown
        return extra


def _option(name: str, declared: Setting, default: Any) -> click.Option:
    switch: dict[str, Any] = {}
    if isinstance(declared.kind, Switch):
        # `--log-text` alone turns it on; `--log-text off` wins over TTS_LOG_TEXT=1.
        switch = {"is_flag": False, "flag_value": "on", "metavar": "[on|off]"}
    return _Option([declared.flag, name], type=declared.kind, default=default,
                   envvar=declared.env, show_envvar=True, help=declared.help, **switch)


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(f"{PROG} {__version__}")
        ctx.exit()


def command() -> click.Command:
    """The tts-grpc-server command line, built from the ServerConfig declarations."""
    options = [_option(*declared) for declared in settings()]
    version = click.Option(["--version"], is_flag=True, expose_value=False, is_eager=True,
                           callback=_show_version, help="print the version and exit")
    return click.Command(
        PROG, params=[*options, version],
        help="Serve Kokoro-82M text-to-speech over gRPC (tts_api.v1.TextToSpeechService), with "
        "health checking and server reflection. Every option can also be set with the "
        "environment variable shown; a flag wins over its variable.",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})


def parse_config(argv: Sequence[str] | None = None) -> ServerConfig:
    """The settings from `argv` (default: the command line) and the TTS_* variables.

    A bad value prints a usage error naming its flag or variable and exits 2.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        context = command().make_context(PROG, args)
    except click.exceptions.Exit as done:  # --help, --version
        raise SystemExit(done.exit_code) from None
    except click.ClickException as err:
        err.show()
        raise SystemExit(err.exit_code) from None
    return ServerConfig(**context.params)
