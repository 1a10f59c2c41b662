"""Prometheus metrics: what the server is doing, scraped over HTTP from --metrics-port."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Synthesis of one request ranges from a fraction of a second to minutes.
_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
_RTF_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 4)


class Metrics:
    """The server's metrics, in a registry of their own (tests build several servers)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tts_requests", "Finished calls by protocol (grpc, http), method and outcome code "
            "(Google's canonical codes, as gRPC names them, for every protocol)",
            ["protocol", "method", "code"], registry=self.registry)
        self.queue_depth = Gauge(
            "tts_queue_depth", "Requests waiting for a free engine", registry=self.registry)
        self.engines_busy = Gauge(
            "tts_engines_busy", "Engines synthesizing right now", registry=self.registry)
        self.piece_queue_wait = Histogram(
            "tts_piece_queue_wait_seconds", "Time a request's next piece, ready to run, waited "
            "for a free engine", buckets=_SECONDS_BUCKETS, registry=self.registry)
        self.unread_audio = Gauge(
            "tts_unread_audio_seconds", "Audio made but not yet taken by its stream, over all "
            "requests (bounded by --read-ahead per request)", registry=self.registry)
        self.engines = Gauge(
            "tts_engines", "Engines in the pool, the solo engine included",
            registry=self.registry)
        self.engines_in_rotation = Gauge(
            "tts_engines_in_rotation", "Engines taking pieces: those that failed are out until "
            "rebuilt; 0 means the server refuses every call (health NOT_SERVING)",
            registry=self.registry)
        self.engine_failures = Counter(
            "tts_engine_failures", "Failed syntheses by engine position (0.. the pool, the "
            "solo engine last); each takes its engine out of rotation to be rebuilt",
            ["engine"], registry=self.registry)
        self.synthesis_seconds = Histogram(
            "tts_synthesis_seconds", "Wall time of a synthesis request, from start to last audio",
            ["protocol", "method"], buckets=_SECONDS_BUCKETS, registry=self.registry)
        self.audio_seconds = Counter(
            "tts_audio_seconds", "Seconds of audio produced", ["voice"],
            registry=self.registry)
        self.real_time_factor = Histogram(
            "tts_real_time_factor", "Synthesis wall time divided by audio duration (below 1 is "
            "faster than real time)", ["protocol", "method"], buckets=_RTF_BUCKETS,
            registry=self.registry)
        self.time_to_first_chunk = Histogram(
            "tts_time_to_first_chunk_seconds", "Time from a stream's start to its first audio",
            ["protocol"], buckets=_SECONDS_BUCKETS, registry=self.registry)
        self.audio_cache_hits = Counter(
            "tts_audio_cache_hits", "Pieces answered from the audio cache, without an engine",
            registry=self.registry)
        self.audio_cache_misses = Counter(
            "tts_audio_cache_misses", "Pieces looked up in the audio cache and made anew",
            registry=self.registry)
        self.audio_cache_bytes = Gauge(
            "tts_audio_cache_bytes", "Bytes of samples held by the audio cache",
            registry=self.registry)
        self.audio_cache_entries = Gauge(
            "tts_audio_cache_entries", "Pieces held by the audio cache", registry=self.registry)
        self.connections_open = Gauge(
            "tts_connections_open", "Open client connections by protocol (http, WebSockets "
            "included; wyoming), bounded by --max-connections", ["protocol"],
            registry=self.registry)
        self.connections_refused = Counter(
            "tts_connections_refused", "Connections refused because --max-connections were "
            "open", ["protocol"], registry=self.registry)
        self.connections_closed = Counter(
            "tts_connections_closed", "Connections the server closed by protocol and reason: "
            "idle (no request within --connection-idle-timeout), slow_request (a request took "
            "longer to arrive), stalled_reader (the client took no audio for that long), "
            "oversize_event, malformed_event (Wyoming)", ["protocol", "reason"],
            registry=self.registry)
        self.runtime = Info(
            "tts_engine_runtime", "The engine and the onnxruntime it runs on",
            registry=self.registry)

    def watch_pool(self, size: int, busy: Callable[[], float], waiting: Callable[[], float],
                   unread_audio_s: Callable[[], float] = lambda: 0.0,
                   in_rotation: Callable[[], float] | None = None) -> None:
        self.engines.set(size)
        self.engines_in_rotation.set_function(in_rotation or (lambda: size))
        self.unread_audio.set_function(unread_audio_s)
        self.engines_busy.set_function(busy)
        self.queue_depth.set_function(waiting)

    def watch_audio_cache(self, size_bytes: Callable[[], float],
                          entries: Callable[[], float]) -> None:
        self.audio_cache_bytes.set_function(size_bytes)
        self.audio_cache_entries.set_function(entries)
