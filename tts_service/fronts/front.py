"""What the server asks of every front (gRPC, HTTP, Wyoming): start, its port, stop."""

from __future__ import annotations

from typing import Protocol


class FrontStartError(Exception):
    """A front cannot start; the message says what to fix."""


class Front(Protocol):
    """A way in to the calls, listening on a port of its own.

    The server starts its fronts in order and stops them together: `stop` runs on every front
    at once, so each refuses new calls at the same moment and shares the same grace.
    """

    #: For logs: "gRPC", "HTTP", "Wyoming".
    name: str

    @property
    def port(self) -> int:
        """The bound port (known once `start` has returned: a port of 0 picks one)."""
        ...

    @property
    def serving(self) -> str:
        """What it serves and where, for the start-up log line that follows "serving "."""
        ...

    async def start(self) -> None:
        """Binds its port and starts serving in the running loop; raises FrontStartError,
        having released whatever it had taken."""
        ...

    async def stop(self, grace_s: float) -> None:
        """Refuses new calls, lets the running ones finish for up to `grace_s`, then closes.
        Stopping a stopped front again does nothing more."""
        ...
