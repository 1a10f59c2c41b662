"""Server lifecycle: load engines, serve TextToSpeech with health and reflection, shut down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import grpc
import prometheus_client
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tts_api.v1 import tts_pb2, tts_pb2_grpc

from . import onnx_runtime, security
from .calls import CallObserver
from .config import ServerConfig, parse_config
from .engine import Engine, ModelFiles, TimedEngine
from .engine_pool import EnginePool
from .lexicon import LexiconError, Overrides, Respeller, load_overrides, write_lexicon
from .metrics import Metrics
from .normalize import normalize
from .request import Limits
from .servicer import RuntimeDescription, TextToSpeechServicer
from .synthesizer import Synthesizer
from .voice_blends import (
    Blend,
    BlendError,
    blend_voices,
    model_with_speakers,
    parse_blends,
    write_voices,
)
from .voices import Voice, VoiceCatalog, describe

_LOGGER = logging.getLogger(__name__)
SERVICE_NAME = tts_pb2.DESCRIPTOR.services_by_name["TextToSpeechService"].full_name


class StartupError(Exception):
    """The server cannot start; the message says what to fix."""


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    pool: EnginePool
    metrics: Metrics
    metrics_server: WSGIServer | None = None

    async def stop(self, grace_s: float) -> None:
        """Health goes NOT_SERVING, new calls are refused, calls in flight get `grace_s`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        self.pool.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()


def load_engines(config: ServerConfig, files: ModelFiles, blends: Sequence[Blend] = (),
                 overrides: Overrides | None = None) -> list[Engine]:
    from .engine import KokoroEngine

    # sherpa-onnx reads its files into memory when an engine loads, so the generated ones only
    # have to outlive the loading: a scratch directory removed right after, not a cache that
    # could go stale when the model or the options change.
    with tempfile.TemporaryDirectory(prefix="tts-service-") as scratch_dir, \
            contextlib.ExitStack() as keep_open:
        scratch = Path(scratch_dir)
        voices = model = lexicon = None
        try:
            if blends:
                builtin = _builtin_voices(files)
                voices = scratch / "voices.bin"
                write_voices(files.voices, builtin, blends, voices)
                model = keep_open.enter_context(
                    model_with_speakers(files.model, len(builtin) + len(blends), scratch))
            if overrides is not None and overrides.phonemes:
                lexicon = str(write_lexicon(overrides, files.lexicon, scratch / "lexicon.txt"))
                # Checked on 1.13.8: its Kokoro frontend sends all English text to espeak-ng.
                _LOGGER.warning("phoneme overrides loaded, but sherpa-onnx 1.13.8 reads the "
                                "lexicon only for CJK text: for English words, use respellings "
                                "('word = sounds like')")
        except BlendError as err:
            raise StartupError(str(err)) from err
        return [KokoroEngine(files, config.engine_threads, voices_path=voices, lexicon=lexicon,
                             model_path=model)
                for _ in range(config.engines)]


async def warm_up(pool: EnginePool, engines: Sequence[Engine]) -> None:
    """Runs a first synthesis on every engine so the first request does not pay for it."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(
        loop.run_in_executor(pool.executor, engine.generate, "Ready.", 0, 1.0, lambda _: True)
        for engine in engines
    ))


async def start(config: ServerConfig, engines: Sequence[Engine], catalog: VoiceCatalog,
                runtime: RuntimeDescription, respell: Callable[[str], str] = str
                ) -> RunningServer:
    """Starts serving on `config.address` with engines already loaded."""
    try:
        credentials = security.server_credentials(config.tls_cert, config.tls_key,
                                                  config.tls_client_ca)
        token = security.load_token(config.token_file)
    except security.SecurityConfigError as err:
        raise StartupError(str(err)) from err
    if credentials is None and not security.is_loopback(config.host):
        _LOGGER.warning("listening on %s without TLS: anyone on the network can read the text "
                        "and audio; pass --tls-cert and --tls-key", config.host)

    pool = EnginePool(engines, max_waiting=config.max_queued_requests)
    await warm_up(pool, engines)
    metrics = Metrics()
    metrics.watch_pool(pool.size, lambda: pool.busy, lambda: pool.waiting)
    metrics.runtime.info({"engine": "sherpa-onnx", "engine_version": runtime.engine_version,
                          "onnxruntime": runtime.onnxruntime,
                          "onnxruntime_version": runtime.onnxruntime_version})
    servicer = TextToSpeechServicer(
        Synthesizer(pool, normalize, respell, times_words=all(
            isinstance(engine, TimedEngine) and engine.times_words for engine in engines)),
        catalog,
        Limits(max_text_chars=config.max_text_chars), runtime,
        CallObserver(metrics, log_text=config.log_text))

    interceptors = [security.BearerTokenInterceptor(token, [SERVICE_NAME])] if token else []
    server = grpc.aio.server(interceptors=interceptors, options=[
        # Requests are small; the limit keeps a hostile client from making us buffer much.
        ("grpc.max_receive_message_length", 4 * config.max_text_chars + 64 * 1024),
    ])
    tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        port = (server.add_secure_port(config.address, credentials) if credentials
                else server.add_insecure_port(config.address))
    except RuntimeError:
        port = 0
    if port == 0:
        pool.close()
        raise StartupError(f"cannot listen on {config.address}: is the port already in use?")
    metrics_server = None
    if config.metrics_port:
        try:
            metrics_server, _ = prometheus_client.start_http_server(
                config.metrics_port, addr=config.host, registry=metrics.registry)
        except OSError as err:
            pool.close()
            raise StartupError(f"cannot serve metrics on port {config.metrics_port}: "
                               f"{err.strerror}") from err
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=port, health=health_servicer, pool=pool,
                         metrics=metrics, metrics_server=metrics_server)


def _builtin_voices(files: ModelFiles) -> list[Voice]:
    names = files.voice_names.read_text(encoding="utf-8").split()
    return [describe(name, speaker_id) for speaker_id, name in enumerate(names)]


def _catalog(files: ModelFiles, blends: Sequence[Blend] = ()) -> VoiceCatalog:
    builtin = _builtin_voices(files)
    return VoiceCatalog([*builtin, *blend_voices(blends, builtin)])


async def serve(config: ServerConfig) -> None:
    """Runs the server until SIGTERM or SIGINT, then shuts down gracefully."""
    started = time.monotonic()
    files = ModelFiles(config.model_dir)
    missing = files.missing()
    if missing:
        raise StartupError(
            f"the model is not assembled: missing {', '.join(str(p) for p in missing)}; "
            "run `make models` (or point --model-dir / TTS_MODEL_DIR at it)")
    try:
        ort = onnx_runtime.activate(config.onnxruntime, config.onnxruntime_shim)
    except onnx_runtime.RuntimeUnavailableError as err:
        raise StartupError(str(err)) from err
    _LOGGER.info("engine runtime: onnxruntime %s (%s): %s", ort.version, ort.name, ort.reason)

    from .engine import engine_version

    try:
        blends = parse_blends(config.voice_blends, [v.name for v in _builtin_voices(files)])
        overrides = (load_overrides(config.lexicon_overrides, files.tokens)
                     if config.lexicon_overrides is not None else Overrides())
    except (BlendError, LexiconError) as err:
        raise StartupError(str(err)) from err
    engines = await asyncio.to_thread(load_engines, config, files, blends, overrides)
    runtime = RuntimeDescription(
        engine_version=engine_version(), onnxruntime=ort.name, onnxruntime_version=ort.version,
        engines=config.engines, threads_per_engine=config.engine_threads,
        max_queued_requests=config.max_queued_requests)
    running = await start(config, engines, _catalog(files, blends), runtime,
                          Respeller(overrides.respellings))
    _LOGGER.info("serving tts_api.v1.TextToSpeechService on %s:%d (%d engines x %d threads, "
                 "ready in %.1f s)", config.host, running.port, config.engines,
                 config.engine_threads, time.monotonic() - started)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    _LOGGER.info("shutting down: finishing calls in flight (up to %.0f s)",
                 config.shutdown_grace_s)
    await running.stop(config.shutdown_grace_s)
    _LOGGER.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(config))
    except StartupError as err:
        _LOGGER.error("cannot start: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
