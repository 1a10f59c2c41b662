"""Replicas: the audio made per second by 3 servers behind nginx against 1, side by side."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from harness.nginx import NginxProcess, start_nginx
from harness.servers import ServerProcess, start_server

from . import service, texts

REPLICA_COUNTS = (1, 3)
# Enough concurrent clients to keep every engine of 3 replicas busy, with calls to spare.
CLIENTS = 6
REQUESTS = 12


def _load_average() -> float:
    # Other work on a shared machine takes cores the replicas would use: worth reporting.
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        return float(loadavg.read().split()[0])


async def measure(reps: int, onnxruntime: str) -> dict[str, Any]:
    """Each repetition runs the same load through nginx to 1 replica, then to 3.

    Every replica has one single-threaded engine, so 3 replicas could use 3 cores; the ratio
    is bounded by the cores of the machine, not by the design.
    """
    groups: dict[int, list[ServerProcess]] = {}
    proxies: dict[int, NginxProcess] = {}
    runs: dict[str, list[dict[str, float]]] = {str(count): [] for count in REPLICA_COUNTS}
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as scratch:
        try:
            for count in REPLICA_COUNTS:
                groups[count] = [
                    start_server("--engines", "1", "--engine-threads", "1",
                                 "--solo-engine-threads", "0", "--onnxruntime", onnxruntime,
                                 "--max-queued-requests", str(REQUESTS), *service.no_cache())
                    for _ in range(count)]
                proxies[count] = start_nginx([server.port for server in groups[count]],
                                             Path(scratch) / f"nginx-{count}")
            load_average = [_load_average()]
            for _ in range(reps):
                for count in REPLICA_COUNTS:
                    done = await service.load(proxies[count].address, texts.THROUGHPUT_TEXT,
                                              CLIENTS, REQUESTS)
                    runs[str(count)].append({"throughput": done.throughput,
                                             "rejected": done.rejected})
                    load_average.append(_load_average())
        finally:
            for proxy in proxies.values():
                proxy.stop()
            for group in groups.values():
                for server in group:
                    server.stop()
    return {"clients": CLIENTS, "requests": REQUESTS, "text": texts.THROUGHPUT_TEXT,
            "runs": runs, "load_average_1min": load_average}
