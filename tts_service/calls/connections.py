"""The connections of a front (HTTP, Wyoming): how many may be open, how long one may idle,
and the metrics and log lines of those refused or closed.

A front counts its own connections (uvicorn keeps a set, the Wyoming front its tasks); this
module decides and records, the same way for every front.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from tts_service.calls.metrics import Metrics

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    """Defaults: config.py."""

    max_connections: int = 256
    idle_timeout_s: float = 60.0


class ConnectionGuard:
    """One front's connection limits, with their metrics and log lines."""

    def __init__(self, protocol: str, limits: ConnectionLimits, metrics: Metrics) -> None:
        self.protocol = protocol
        self.limits = limits
        self._metrics = metrics

    @property
    def idle_timeout_s(self) -> float:
        return self.limits.idle_timeout_s

    def watch(self, open_connections: Callable[[], float]) -> None:
        """Where the front counts its open connections (read when metrics are scraped)."""
        self._metrics.connections_open.labels(self.protocol).set_function(open_connections)

    def refusal(self, open_now: int, peer: object) -> str | None:
        """None when a new connection may open beside `open_now` others; else what to tell
        its client (the refusal is counted and logged)."""
        limit = self.limits.max_connections
        if open_now < limit:
            return None
        self._metrics.connections_refused.labels(self.protocol).inc()
        _LOGGER.warning("%s connection from %s refused: %d open, the limit "
                        "(--max-connections)", self.protocol, _peer(peer), open_now)
        return (f"the server has {limit} {self.protocol} connections open, its limit: retry "
                "in a few seconds, and close connections you do not use")

    def closed(self, reason: str, peer: object, why: str) -> None:
        """Counts and logs a connection the server closes (`reason` is the metric's label)."""
        self._metrics.connections_closed.labels(self.protocol, reason).inc()
        _LOGGER.info("%s connection from %s closed (%s): %s", self.protocol, _peer(peer),
                     reason, why)


def _peer(peer: object) -> str:
    """host:port of a socket's peer address as asyncio gives it, else "unknown"."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "unknown"
