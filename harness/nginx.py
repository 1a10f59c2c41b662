"""Runs Debian's nginx in the foreground with deploy/nginx/tts-grpc.conf, on loopback only.

The shipped configuration is used as it is, except for its listen port and its upstream
servers, which point at the replicas a test started; every path (pid, logs, temp files) is
under the test's own directory.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .servers import REPO, free_port

SHIPPED_CONF = REPO / "deploy" / "nginx" / "tts-grpc.conf"
_UPSTREAM_SERVER = re.compile(r"^( *)server 127\.0\.0\.1:\d+ (.*;)\n", re.MULTILINE)
_LISTEN = "listen 8080 http2;"


@dataclass
class NginxProcess:
    process: subprocess.Popen[bytes]
    port: int
    access_log: Path
    error_log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def access_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def stop(self, timeout_s: float = 10.0) -> int:
        """Graceful stop (SIGQUIT), then a kill if nginx does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def site_config(replica_ports: Sequence[int], port: int) -> str:
    """The shipped configuration, listening on `port` and balancing over `replica_ports`."""
    text = SHIPPED_CONF.read_text()
    servers = _UPSTREAM_SERVER.findall(text)
    assert servers and _LISTEN in text, f"{SHIPPED_CONF} changed: update tests/nginx.py"
    indent, options = servers[0]
    lines = "".join(f"{indent}server 127.0.0.1:{p} {options}\n" for p in replica_ports)
    text = _UPSTREAM_SERVER.sub("", text)
    text = text.replace("upstream tts_replicas {\n", "upstream tts_replicas {\n" + lines, 1)
    return text.replace(_LISTEN, f"listen 127.0.0.1:{port} http2;")


def start_nginx(replica_ports: Sequence[int], workdir: Path,
                timeout_s: float = 15.0) -> NginxProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (workdir / "tts-grpc.conf").write_text(site_config(replica_ports, port))
    access_log, error_log = workdir / "access.log", workdir / "error.log"
    temp_paths = "".join(f"    {kind}_temp_path {workdir / kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (workdir / "nginx.conf").write_text(
        "daemon off;\n"
        f"pid {workdir / 'nginx.pid'};\n"
        "worker_processes 1;\n"
        "events {}\n"
        "http {\n"
        f"{temp_paths}"
        f"    include {workdir / 'tts-grpc.conf'};\n"
        f"    access_log {access_log} tts_grpc;\n"
        "}\n")
    process = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-e", str(error_log), "-c", str(workdir / "nginx.conf")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = NginxProcess(process, port, access_log, error_log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}: "
                               f"{error_log.read_text() if error_log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return running
        except OSError:
            time.sleep(0.1)
    running.stop()
    raise TimeoutError(f"nginx did not listen on port {port} within {timeout_s} s")
