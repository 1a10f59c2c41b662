"""Server lifecycle: load engines, serve TextToSpeech with health and reflection, shut down."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tts_api.v1 import tts_pb2, tts_pb2_grpc

from . import onnx_runtime
from .config import ServerConfig, parse_config
from .engine import Engine, ModelFiles
from .engine_pool import EnginePool
from .normalize import normalize
from .request import Limits
from .servicer import RuntimeDescription, TextToSpeechServicer
from .synthesizer import Synthesizer
from .voices import VoiceCatalog

_LOGGER = logging.getLogger(__name__)
SERVICE_NAME = tts_pb2.DESCRIPTOR.services_by_name["TextToSpeech"].full_name


class StartupError(Exception):
    """The server cannot start; the message says what to fix."""


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    pool: EnginePool

    async def stop(self, grace_s: float) -> None:
        """Health goes NOT_SERVING, new calls are refused, calls in flight get `grace_s`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        self.pool.close()


def load_engines(config: ServerConfig, files: ModelFiles) -> list[Engine]:
    from .engine import KokoroEngine

    return [KokoroEngine(files, config.engine_threads) for _ in range(config.engines)]


async def warm_up(pool: EnginePool, engines: Sequence[Engine]) -> None:
    """Runs a first synthesis on every engine so the first request does not pay for it."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(
        loop.run_in_executor(pool.executor, engine.generate, "Ready.", 0, 1.0, lambda _: True)
        for engine in engines
    ))


async def start(config: ServerConfig, engines: Sequence[Engine], catalog: VoiceCatalog,
                runtime: RuntimeDescription) -> RunningServer:
    """Starts serving on `config.address` with engines already loaded."""
    pool = EnginePool(engines, max_waiting=config.max_queued_requests)
    await warm_up(pool, engines)
    servicer = TextToSpeechServicer(
        Synthesizer(pool, normalize), catalog, Limits(max_text_chars=config.max_text_chars),
        runtime)

    server = grpc.aio.server(options=[
        # Requests are small; the limit keeps a hostile client from making us buffer much.
        ("grpc.max_receive_message_length", 4 * config.max_text_chars + 64 * 1024),
    ])
    tts_pb2_grpc.add_TextToSpeechServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(config.address)
    if port == 0:
        pool.close()
        raise StartupError(f"cannot listen on {config.address}: is the port already in use?")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=port, health=health_servicer, pool=pool)


def _catalog(files: ModelFiles) -> VoiceCatalog:
    names = files.voice_names.read_text(encoding="utf-8").split()
    return VoiceCatalog.from_names(names)


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

    engines = await asyncio.to_thread(load_engines, config, files)
    runtime = RuntimeDescription(
        engine_version=engine_version(), onnxruntime=ort.name, onnxruntime_version=ort.version,
        engines=config.engines, threads_per_engine=config.engine_threads,
        max_queued_requests=config.max_queued_requests)
    running = await start(config, engines, _catalog(files), runtime)
    _LOGGER.info("serving tts_api.v1.TextToSpeech on %s:%d (%d engines x %d threads, "
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
