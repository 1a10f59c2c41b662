"""Server settings: command-line flags, each with a TTS_* environment variable as its default."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .onnx_runtime import CHOICES as ONNXRUNTIME_CHOICES
from .onnx_runtime import DEFAULT_SHIM_PATH

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "kokoro-multi-lang-v1_0"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to start; cheap to build, nothing is loaded here."""

    host: str = "127.0.0.1"
    port: int = 50051
    model_dir: Path = DEFAULT_MODEL_DIR
    # The pool: None follows the rule in tts_service/pool_shape.py for the CPUs the process
    # may use (one single-thread engine per CPU, a solo engine of up to 4 threads); a value
    # given wins over the rule. solo_engine_threads 0 means no solo engine.
    engines: int | None = None
    engine_threads: int | None = None
    solo_engine_threads: int | None = None
    # Worker threads of multi-threaded engines sleep between operators instead of
    # busy-waiting, so engines sharing cores do not take them from each other (bench.threads).
    intra_op_spinning: str = "off"
    max_text_chars: int = 5000
    max_queued_requests: int = 8
    # Unread audio a streaming request may hold before its pieces stop being scheduled: more
    # than the longest piece takes to make, so a reader at real time never waits on a piece.
    read_ahead_s: float = 8.0
    shutdown_grace_s: float = 30.0
    # StreamingSynthesize: a voice agent's text comes in bursts (an LLM's first token after a
    # tool call can take many seconds), but a call left open and silent holds its engine.
    streaming_idle_timeout_s: float = 30.0
    # An LLM streams 20+ tokens (80+ characters) a second, so a usual sentence (under 100
    # characters, where long sentences are cut at clauses anyway) ends well within 2 s;
    # text still waiting after that means the writer stalled, and is spoken at the best
    # break rather than held back longer.
    streaming_max_wait_s: float = 2.0
    # gRPC clients keep one connection for hours, so replicas added later would get no share
    # of them: a connection older than this is told to go away (GOAWAY), and its client
    # reconnects through the balancer. Calls in flight on it get the grace to finish; 300 s is
    # longer than the longest text (5000 characters, about 5 minutes of audio) takes to make.
    max_connection_age_s: float = 300.0
    max_connection_age_grace_s: float = 300.0
    onnxruntime: str = "auto"
    onnxruntime_shim: Path = DEFAULT_SHIM_PATH
    voice_blends: tuple[str, ...] = field(default_factory=tuple)
    lexicon_overrides: Path | None = None
    metrics_port: int = 0
    http_port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    token_file: Path | None = None
    log_level: str = "INFO"
    log_text: bool = False

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {value!r}") from None


def _positive(value: str) -> int:
    number = _whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _non_negative(value: str) -> int:
    number = _whole_number(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number


def _non_negative_seconds(value: str) -> float:
    number = _number(value)
    if not number >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {value}")
    return number


def _port(value: str) -> int:
    number = _whole_number(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {value}")
    return number


def _positive_seconds(value: str) -> float:
    number = _number(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {value}")
    return number


def _switch(value: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}
    if value.lower() not in words:
        raise argparse.ArgumentTypeError("must be 1/true/yes/on or 0/false/no/off")
    return words[value.lower()]


def _blends(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tts-grpc-server",
        description="Serve Kokoro-82M text-to-speech over gRPC (tts_api.v1.TextToSpeechService), "
        "with "
        "health checking and server reflection. Every option can also be set with the "
        "environment variable shown; a flag wins over its variable.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = ServerConfig()

    def option(flag: str, env: str, convert: Callable[[str], Any], default: Any,
               help_text: str, **kwargs: Any) -> None:
        raw = os.environ.get(env)
        if raw not in (None, ""):
            default = _from_env(parser, env, raw, convert, kwargs.get("choices"))
        parser.add_argument(flag, type=convert, default=default,
                            help=f"{help_text} [env {env}]", **kwargs)

    option("--host", "TTS_HOST", str, defaults.host,
           "address to listen on; 0.0.0.0 or :: exposes the server to the network")
    option("--port", "TTS_PORT", _port, defaults.port, "TCP port; 0 picks a free one")
    option("--model-dir", "TTS_MODEL_DIR", Path, defaults.model_dir,
           "assembled Kokoro model directory (make models)")
    option("--engines", "TTS_ENGINES", _positive, defaults.engines,
           "engine instances in the pool = pieces synthesized at the same time; unset (None): one "
           "per CPU the process may use (affinity and cgroup quota, docs/pool.md)")
    option("--engine-threads", "TTS_ENGINE_THREADS", _positive, defaults.engine_threads,
           "CPU threads per engine; unset (None): 1")
    option("--solo-engine-threads", "TTS_SOLO_ENGINE_THREADS", _non_negative,
           defaults.solo_engine_threads,
           "CPU threads of an extra engine that takes a piece only when every engine is idle "
           "and that piece is the only one waiting (a lone sentence runs on several cores); "
           "0: no such engine; unset (None): one per usable CPU, at most 4, none on 1 CPU")
    option("--intra-op-spinning", "TTS_INTRA_OP_SPINNING", str, defaults.intra_op_spinning,
           "'off': an engine's extra threads sleep between operators (PyPI runtime only); "
           "'on': onnxruntime's default busy-waiting, which takes cores from the other engines",
           choices=["off", "on"])
    option("--max-text-chars", "TTS_MAX_TEXT_CHARS", _positive, defaults.max_text_chars,
           "longest accepted text, in characters")
    option("--max-queued-requests", "TTS_MAX_QUEUED_REQUESTS", _non_negative,
           defaults.max_queued_requests,
           "requests that may wait for a busy engine; more get RESOURCE_EXHAUSTED")
    option("--read-ahead", "TTS_READ_AHEAD", _positive_seconds, defaults.read_ahead_s,
           "seconds of audio made ahead of a streaming client's reading; past it the request's "
           "next pieces wait and its engines serve others", dest="read_ahead_s")
    option("--shutdown-grace", "TTS_SHUTDOWN_GRACE", _number, defaults.shutdown_grace_s,
           "seconds that calls in flight get to finish on SIGTERM/SIGINT", dest="shutdown_grace_s")
    option("--streaming-idle-timeout", "TTS_STREAMING_IDLE_TIMEOUT", _positive_seconds,
           defaults.streaming_idle_timeout_s,
           "StreamingSynthesize: seconds a call may go without a message or audio before it "
           "ends with DEADLINE_EXCEEDED", dest="streaming_idle_timeout_s")
    option("--streaming-max-wait", "TTS_STREAMING_MAX_WAIT", _positive_seconds,
           defaults.streaming_max_wait_s,
           "StreamingSynthesize: seconds text may wait for a certain sentence end before it is "
           "spoken at the best break available", dest="streaming_max_wait_s")
    option("--max-connection-age", "TTS_MAX_CONNECTION_AGE", _non_negative_seconds,
           defaults.max_connection_age_s,
           "seconds after which a client connection is asked to reconnect, so that long-lived "
           "clients spread over replicas added later; 0 keeps connections forever",
           dest="max_connection_age_s")
    option("--max-connection-age-grace", "TTS_MAX_CONNECTION_AGE_GRACE", _non_negative_seconds,
           defaults.max_connection_age_grace_s,
           "seconds that calls in flight on such a connection get to finish before it is "
           "closed", dest="max_connection_age_grace_s")
    option("--onnxruntime", "TTS_ONNXRUNTIME", str, defaults.onnxruntime,
           "engine runtime: 'auto' (the newer PyPI onnxruntime when it loads and passes a "
           "self-check, else the bundled one), 'pypi' or 'bundled'",
           choices=ONNXRUNTIME_CHOICES)
    option("--onnxruntime-shim", "TTS_ONNXRUNTIME_SHIM", Path, defaults.onnxruntime_shim,
           "the forwarding library built by `make shim` that lets sherpa-onnx use the newer "
           "onnxruntime")
    option("--voice-blends", "TTS_VOICE_BLENDS", _blends, defaults.voice_blends,
           "extra voices mixed from built-in ones, comma separated, each NAME=VOICE:WEIGHT+"
           "VOICE:WEIGHT, e.g. 'bella_sky=af_bella:0.6+af_sky:0.4'")
    option("--lexicon-overrides", "TTS_LEXICON_OVERRIDES", Path, defaults.lexicon_overrides,
           "pronunciation overrides: 'word = respelling' and 'word phonemes' lines (README)")
    option("--metrics-port", "TTS_METRICS_PORT", _non_negative, defaults.metrics_port,
           "serve Prometheus metrics over HTTP on this port (host as --host); 0 disables")
    option("--http-port", "TTS_HTTP_PORT", _port, defaults.http_port,
           "also serve the OpenAI-compatible HTTP API and the playground page on this port "
           "(host, TLS and token as for gRPC); 0 disables")
    option("--tls-cert", "TTS_TLS_CERT", Path, defaults.tls_cert,
           "PEM server certificate (chain); with --tls-key, serves TLS instead of plaintext")
    option("--tls-key", "TTS_TLS_KEY", Path, defaults.tls_key, "PEM private key of --tls-cert")
    option("--tls-client-ca", "TTS_TLS_CLIENT_CA", Path, defaults.tls_client_ca,
           "PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)")
    option("--token-file", "TTS_TOKEN_FILE", Path, defaults.token_file,
           "file holding the bearer token TextToSpeech calls must send as 'authorization: "
           "Bearer <token>' (the token can also come from env TTS_TOKEN); health and "
           "reflection stay open")
    option("--log-level", "TTS_LOG_LEVEL", str.upper, defaults.log_level,
           "logging level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    raw_log_text = os.environ.get("TTS_LOG_TEXT", "")
    log_text = bool(raw_log_text) and _from_env(parser, "TTS_LOG_TEXT", raw_log_text,
                                                _switch, None)
    parser.add_argument("--log-text", action="store_true", default=log_text,
                        help="include request text in the request log (off: it may be private) "
                        "[env TTS_LOG_TEXT]")
    return parser


def _from_env(parser: argparse.ArgumentParser, env: str, raw: str,
              convert: Callable[[str], Any], choices: Sequence[str] | None) -> Any:
    """The variable's value converted like its flag; a bad one exits naming the variable."""
    try:
        value = convert(raw)
    except (argparse.ArgumentTypeError, ValueError) as err:
        parser.error(f"{env}={raw!r}: {err}")
    if choices is not None and value not in choices:
        parser.error(f"{env}={raw!r}: choose from {', '.join(choices)}")
    return value


def parse_config(argv: Sequence[str] | None = None) -> ServerConfig:
    args = build_parser().parse_args(argv)
    return ServerConfig(**vars(args))
