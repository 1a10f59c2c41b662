"""A fixed pool of speech engines shared by all requests, with a bounded waiting line."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence

from .engine import Engine
from .errors import NotReady, Overloaded


class EnginePool:
    """Hands out engines one request at a time; callers past `max_waiting` are refused."""

    def __init__(self, engines: Sequence[Engine], max_waiting: int) -> None:
        if not engines:
            raise ValueError("an engine pool needs at least one engine")
        self.size = len(engines)
        self.max_waiting = max_waiting
        self.sample_rate_hz = engines[0].sample_rate_hz
        self._idle: asyncio.Queue[Engine] = asyncio.Queue()
        for engine in engines:
            self._idle.put_nowait(engine)
        self._waiting = 0
        self._closed = False
        # One synthesis thread per engine: sherpa-onnx releases the GIL while it computes.
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.size, thread_name_prefix="engine"
        )

    @property
    def busy(self) -> int:
        return self.size - self._idle.qsize()

    @property
    def waiting(self) -> int:
        return self._waiting

    async def acquire(self) -> Engine:
        """Waits for an idle engine; give it back with `release` once its work has ended."""
        if self._closed:
            raise NotReady("the server is shutting down; retry on another instance")
        if self._idle.empty() and self._waiting >= self.max_waiting:
            raise Overloaded(
                f"all {self.size} engines are busy and {self._waiting} requests are already "
                "waiting; retry in a few seconds",
                retry_after_s=2.0,
            )
        self._waiting += 1
        try:
            return await self._idle.get()
        finally:
            self._waiting -= 1

    def release(self, engine: Engine) -> None:
        self._idle.put_nowait(engine)

    def close(self) -> None:
        """Refuses new work; running syntheses finish."""
        self._closed = True
        self.executor.shutdown(wait=False)
