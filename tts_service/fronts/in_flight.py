"""The calls under way on a front whose connections the server closes itself (Wyoming, the
WebSocket), so that stopping can refuse new calls and give the running ones their grace.

gRPC's `server.stop(grace)` does this for its own calls; uvicorn would close a WebSocket at
once (code 1012) and the wyoming library's server drops its connections, so these fronts
count their calls here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from tts_service.errors import NotReady


class InFlight:
    """The calls running on a front; `drain` refuses new ones and waits for the rest."""

    def __init__(self) -> None:
        # Each running call: the task it runs in, and a future set when it is done.
        self._calls: dict[asyncio.Future[None], asyncio.Task[object]] = {}
        self.closing = False

    def __len__(self) -> int:
        return len(self._calls)

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Counts a call while the block runs; raises NotReady once the front is draining
        (before any work, so the caller can be told to go elsewhere)."""
        if self.closing:
            raise NotReady("the server is shutting down; retry on another instance")
        task = asyncio.current_task()
        assert task is not None
        done = asyncio.get_running_loop().create_future()
        self._calls[done] = task
        try:
            yield
        finally:
            del self._calls[done]
            done.set_result(None)

    async def drain(self, grace_s: float) -> None:
        """Refuses new calls, lets the running ones finish for up to `grace_s`, then cancels
        the tasks of those still running and waits for the calls to end."""
        self.closing = True
        if not self._calls:
            return
        _, late = await asyncio.wait(set(self._calls), timeout=max(0.0, grace_s))
        for done in late:
            if (task := self._calls.get(done)) is not None:
                task.cancel()
        if late:
            await asyncio.wait(late)
