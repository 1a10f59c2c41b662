"""Server lifecycle: load engines, serve TextToSpeech with health and reflection, shut down."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

import grpc
import prometheus_client
from grpc_health.v1 import health, health_pb2

from tts_service.calls.connections import ConnectionGuard, ConnectionLimits
from tts_service.calls.metrics import Metrics
from tts_service.calls.request import Limits
from tts_service.calls.speech_call import Calls
from tts_service.config import ServerConfig, parse_config
from tts_service.fronts import security
from tts_service.fronts.front import Front, FrontStartError
from tts_service.fronts.grpc_hosting import SERVICE_NAME, GrpcFront
from tts_service.fronts.grpc_servicer import RuntimeDescription
from tts_service.fronts.http_hosting import HttpFront
from tts_service.fronts.http_routes import HttpApi
from tts_service.fronts.websocket import LiveSpeech
from tts_service.fronts.wyoming import WyomingFront
from tts_service.language.front_end import FrontEnds, Utterance
from tts_service.language.languages import BY_CODE
from tts_service.language.lexicon import LexiconError
from tts_service.model import preparation as model_prep
from tts_service.model.blends import BlendError
from tts_service.model.voices import VoiceCatalog
from tts_service.synthesis import onnx_runtime, runtime_probe
from tts_service.synthesis.audio_cache import AudioCache
from tts_service.synthesis.cpus import usable_cpus
from tts_service.synthesis.engine import Engine, ModelFiles
from tts_service.synthesis.pool_shape import PoolShape, pool_shape
from tts_service.synthesis.scheduler import Scheduler
from tts_service.synthesis.synthesizer import Synthesizer

_LOGGER = logging.getLogger(__name__)
F = TypeVar("F", bound=Front)


class StartupError(Exception):
    """The server cannot start; the message says what to fix."""


@dataclass
class RunningServer:
    fronts: Sequence[Front]  # in the order started: gRPC first, then the others configured
    health: health.aio.HealthServicer
    scheduler: Scheduler
    metrics: Metrics
    # Stops everything start() started (the scheduler, the metrics server, the fronts again),
    # in reverse order.
    resources: contextlib.AsyncExitStack

    def front(self, kind: type[F]) -> F | None:
        """The front of that kind; None when the configuration leaves it off."""
        return next((front for front in self.fronts if isinstance(front, kind)), None)

    @property
    def port(self) -> int:
        """The gRPC port."""
        return self.fronts[0].port

    @property
    def http_port(self) -> int | None:
        http = self.front(HttpFront)
        return http.port if http is not None else None

    @property
    def wyoming_port(self) -> int | None:
        wyoming = self.front(WyomingFront)
        return wyoming.port if wyoming is not None else None

    async def stop(self, grace_s: float) -> None:
        """Health goes NOT_SERVING, every front refuses new calls and gives those in flight
        `grace_s`; then the engines finish their current pieces and everything else stops."""
        await self.health.enter_graceful_shutdown()
        await asyncio.gather(*(front.stop(grace_s) for front in self.fronts))
        await self.resources.aclose()


async def warm_up(engines: Sequence[Engine], executor: Executor) -> None:
    """Runs a first synthesis on every engine so the first request does not pay for it."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(executor, warmed, engine)
                           for engine in engines))


# Said by every engine before it serves: Kokoro's symbols of "Ready.", so that warming up needs
# no language's front end loaded.
WARM_UP = Utterance("Ready.", "ɹˈɛdi.")


def warmed(engine: Engine) -> Engine:
    """`engine`, after a first synthesis (in the calling thread)."""
    engine.speak(WARM_UP, 0, 1.0, lambda _: True, timed=False)
    return engine


async def start(config: ServerConfig, engines: Sequence[Engine], catalog: VoiceCatalog,
                runtime: RuntimeDescription, front_ends: FrontEnds | None = None,
                solo: Engine | None = None,
                load_engine: Callable[[int], Engine] | None = None) -> RunningServer:
    """Starts serving on `config.address` with engines already loaded.

    `load_engine(position)` loads a replacement for the engine at that position (the pool's,
    then the solo engine) after it failed. `front_ends` default to every language's without
    pronunciation overrides; those of `config.preload_voices` load before serving. A failure at any
    step raises StartupError after stopping whatever had started.
    """
    async with contextlib.AsyncExitStack() as started:
        running = await _start(started, config, engines, catalog, runtime,
                               front_ends or FrontEnds(), solo, load_engine)
        running.resources = started.pop_all()
        return running
    raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises


async def _start(started: contextlib.AsyncExitStack, config: ServerConfig,
                 engines: Sequence[Engine], catalog: VoiceCatalog, runtime: RuntimeDescription,
                 front_ends: FrontEnds, solo: Engine | None,
                 load_engine: Callable[[int], Engine] | None) -> RunningServer:
    try:
        credentials = security.server_credentials(config.tls_cert, config.tls_key,
                                                  config.tls_client_ca)
        token = security.load_token(config.token_file)
    except security.SecurityConfigError as err:
        raise StartupError(str(err)) from err
    if credentials is None and not security.is_loopback(config.host):
        _LOGGER.warning("listening on %s without TLS: anyone on the network can read the text "
                        "and audio; pass --tls-cert and --tls-key", config.host)
    if config.wyoming_port and not security.is_loopback(config.host):
        _LOGGER.warning("serving Wyoming on %s: the protocol has no authentication or "
                        "encryption (and takes no token), so anyone who can reach port %d can "
                        "use the engines; keep it on a trusted network", config.host,
                        config.wyoming_port)

    metrics = Metrics()
    health_servicer = health.aio.HealthServicer()

    failed: set[int] = set()  # engine positions out of rotation, as the scheduler reports them

    def engine_failed(position: int) -> None:
        failed.add(position)
        metrics.engine_failures.labels(str(position)).inc()

    def rebuild(position: int) -> Engine:  # in an engine thread
        assert load_engine is not None
        pool = scheduler.engines
        twin = model_prep.twin_in_rotation(
            pool[position], [engine for at, engine in enumerate(pool) if at not in failed])
        if twin is not None:
            _LOGGER.info("engine %d: rebuilt as a twin of a working engine, on its model",
                         position)
        engine = warmed(twin if twin is not None else load_engine(position))
        failed.discard(position)
        return engine

    scheduler = Scheduler(engines, max_waiting=config.max_queued_requests,
                          read_ahead_s=config.read_ahead_s,
                          on_queue_wait=metrics.piece_queue_wait.observe, solo=solo,
                          rebuild=rebuild if load_engine is not None else None,
                          on_engine_failed=engine_failed,
                          on_no_engine_left=_not_serving(health_servicer))
    started.push_async_callback(scheduler.close)
    try:
        await warm_up(scheduler.engines, scheduler.executor)
    except Exception as err:
        raise StartupError(f"an engine failed its first synthesis: {err}") from err
    metrics.watch_pool(scheduler.size, lambda: scheduler.busy, lambda: scheduler.waiting,
                       lambda: scheduler.unread_audio_s, lambda: scheduler.in_rotation)
    metrics.runtime.info({"engine": "sherpa-onnx", "engine_version": runtime.engine_version,
                          "onnxruntime": runtime.onnxruntime,
                          "onnxruntime_version": runtime.onnxruntime_version})
    await asyncio.to_thread(_preload, front_ends, catalog, config.preload_voices)
    # Loading and warming up freed much of what they allocated, but glibc keeps freed heap
    # for later; handing it back makes the idle server's memory what it really holds (-20 MB).
    _release_free_heap()
    cache = AudioCache(config.audio_cache_mb * 1024 * 1024,
                       on_hit=metrics.audio_cache_hits.inc, on_miss=metrics.audio_cache_misses.inc)
    metrics.watch_audio_cache(lambda: cache.bytes, lambda: len(cache))
    # Word timings are offered only if every engine's warm-up run came back with durations.
    synthesizer = Synthesizer(
        scheduler, cache, model=f"{config.model_dir} on {runtime.onnxruntime} "
        f"{runtime.onnxruntime_version}",
        times_words=all(engine.times_words for engine in scheduler.engines),
        mixes_voices=all(engine.mixes_voices for engine in scheduler.engines))
    limits = Limits(max_text_chars=config.max_text_chars,
                    idle_timeout_s=config.streaming_idle_timeout_s,
                    max_wait_s=config.streaming_max_wait_s)
    calls = Calls(synthesizer, catalog, front_ends, limits, metrics, log_text=config.log_text,
                  why_no_word_timings=runtime.why_no_word_timings(),
                  why_no_voice_mixes=runtime.why_no_voice_mixes())

    if config.metrics_port:
        try:
            metrics_server, _ = prometheus_client.start_http_server(
                config.metrics_port, addr=config.host, registry=metrics.registry)
        except OSError as err:
            raise StartupError(f"cannot serve metrics on port {config.metrics_port}: "
                               f"{err.strerror}") from err
        # Closed after the fronts have drained, so that the drain can be watched.
        started.callback(metrics_server.server_close)
        started.callback(metrics_server.shutdown)
    fronts = _fronts(config, calls, runtime, health_servicer, credentials, token, metrics)
    # Each front started is stopped at once if a later one fails; after a graceful stop, the
    # second stop when `resources` closes does nothing more.
    for front in fronts:
        try:
            await front.start()
        except FrontStartError as err:
            raise StartupError(str(err)) from err
        started.push_async_callback(front.stop, 0)
        _LOGGER.debug("%s front listening on port %d", front.name, front.port)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(fronts=fronts, health=health_servicer, scheduler=scheduler,
                         metrics=metrics, resources=started)


def _fronts(config: ServerConfig, calls: Calls, runtime: RuntimeDescription,
            health_servicer: health.aio.HealthServicer,
            credentials: grpc.ServerCredentials | None, token: str | None,
            metrics: Metrics) -> list[Front]:
    """The fronts the configuration asks for, in the order they start: gRPC (always) first."""
    limits = ConnectionLimits(max_connections=config.max_connections,
                              idle_timeout_s=config.connection_idle_timeout_s)
    fronts: list[Front] = [GrpcFront(
        calls, runtime, health_servicer, config.host, config.address, credentials, token,
        config.max_connection_age_s, config.max_connection_age_grace_s, limits)]
    if config.http_port:
        live = LiveSpeech(calls, token)  # the live-text WebSocket beside the API
        fronts.append(HttpFront(HttpApi(calls, token, routes=[live.route]), config.host,
                                config.http_port, config.tls_cert, config.tls_key,
                                config.tls_client_ca, live_calls=live.in_flight,
                                guard=ConnectionGuard("http", limits, metrics)))
    if config.wyoming_port:
        fronts.append(WyomingFront(calls, config.host, config.wyoming_port,
                                   ConnectionGuard("wyoming", limits, metrics)))
    return fronts


def _release_free_heap() -> None:
    # Not glibc (e.g. musl): nothing to hand back this way.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _preload(front_ends: FrontEnds, catalog: VoiceCatalog, voices: Sequence[str]) -> None:
    """Loads the front ends of the languages of `voices` (default: the default voice's)."""
    for name in voices or [catalog.default]:
        voice = catalog.get(name)
        if voice is None:
            raise StartupError(f"--preload-voices names an unknown voice {name!r}: choose from "
                               "the voices ListVoices shows, e.g. " + catalog.default)
        if voice.language_code in BY_CODE:
            front_ends.by_code(voice.language_code).load()


def _not_serving(health_servicer: health.aio.HealthServicer) -> Callable[[], None]:
    """What to do once no engine works or is being rebuilt: health turns NOT_SERVING, so a
    balancer sends calls elsewhere and an orchestrator can restart the process."""
    updates: set[asyncio.Task[None]] = set()

    async def update() -> None:
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def no_engine_left() -> None:
        task = asyncio.ensure_future(update())
        updates.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(updates.discard)

    return no_engine_left


async def serve(config: ServerConfig) -> None:
    """Runs the server until SIGTERM or SIGINT, then shuts down gracefully."""
    started = time.monotonic()
    files = ModelFiles(config.model_dir)
    missing = files.missing()
    if missing:
        raise StartupError(
            f"the model is not assembled: missing {', '.join(str(p) for p in missing)}; "
            "run `make models` (or point --model-dir / TTS_MODEL_DIR at it)")
    # Checked first: a typo in an option should not wait for the runtime check and the model.
    try:
        options = model_prep.check_options(files, config.voice_blends, config.lexicon_overrides)
    except (BlendError, LexiconError) as err:
        raise StartupError(str(err)) from err
    choosing = time.monotonic()
    try:
        ort = onnx_runtime.activate(
            config.onnxruntime, config.onnxruntime_shim,
            functools.partial(runtime_probe.prove, config.onnxruntime_shim, config.model_dir))
    except onnx_runtime.RuntimeUnavailableError as err:
        raise StartupError(str(err)) from err
    _LOGGER.info("engine runtime: onnxruntime %s (%s, chosen in %.1f s): %s", ort.version,
                 ort.name, time.monotonic() - choosing, ort.reason)
    shape = pool_shape(usable_cpus(), config.engines, config.engine_threads,
                       config.solo_engine_threads)
    if not config.intra_op_spinning and max(shape.thread_counts) > 1:
        quiet = onnx_runtime.disable_intra_op_spinning()
        # The solo engine runs alone: its busy-waiting threads take no core from another.
        if not quiet and shape.engine_threads > 1:
            _LOGGER.warning("--intra-op-spinning off needs the PyPI onnxruntime through the "
                            "shim; engines keep onnxruntime's busy-waiting threads")

    try:
        model = await asyncio.to_thread(model_prep.prepare, files, shape.thread_counts,
                                        options)
    except (BlendError, RuntimeError, OSError) as err:  # e.g. a voices file of the wrong size
        raise StartupError(f"cannot load the model: {err}") from err
    with contextlib.closing(model):
        await _serve(config, model, ort, shape, started)


async def _serve(config: ServerConfig, model: model_prep.PreparedModel,
                 ort: onnx_runtime.RuntimeInfo, shape: PoolShape, started: float) -> None:
    from tts_service.synthesis.engine import engine_version

    runtime = RuntimeDescription(
        engine_version=engine_version(), onnxruntime=ort.name, onnxruntime_version=ort.version,
        engines=shape.engines, threads_per_engine=shape.engine_threads,
        max_queued_requests=config.max_queued_requests,
        solo_engine_threads=shape.solo_engine_threads, usable_cpus=shape.cpus.count,
        pool_from_cpus=shape.from_cpus)
    pool, solo = model.engines[:shape.engines], model.engines[shape.engines:]
    front_ends = FrontEnds(model.overrides, model.symbols)
    running = await start(config, pool, model.catalog, runtime, front_ends,
                          solo[0] if solo else None,
                          load_engine=lambda at: model.load_engine(shape.thread_counts[at]))
    # The gRPC front's line comes last and says "ready": supervisors and tests wait for it.
    grpc_front, *others = running.fronts
    for front in others:
        _LOGGER.info("serving %s", front.serving)
    # Before the line that says "ready": a supervisor may signal as soon as it reads it.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    loaded = ", ".join(language.name for language in front_ends.loaded()) or "none"
    _LOGGER.info("serving %s (%s; front ends loaded: %s, the others on first use; ready in "
                 "%.1f s)", grpc_front.serving, shape.describe(), loaded,
                 time.monotonic() - started)

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
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
