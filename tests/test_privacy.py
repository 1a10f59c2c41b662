"""The server sends nothing anywhere: start-up and syntheses open no socket beyond loopback."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import time
from pathlib import Path

import grpc
import pytest

from harness.servers import ServerProcess, start_server
from tts_api.v1 import tts_pb2, tts_pb2_grpc

# strace's rendering of a socket address: AF_INET(6) with its address, or a Unix path.
_INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')
_UNIX = re.compile(r'sa_family=AF_UNIX, sun_path="([^"]+)"')
# onnxruntime's telemetry uploader first looks up its host about 9 s after the runtime loads.
_WATCH_S = 25.0
# Where glibc asks for names: a lookup is the first step of phoning home.
_NAME_SERVICE = "/var/run/nscd/socket"


def destinations(trace: str) -> list[str]:
    """Every address a traced process connected or sent to that is not on this machine."""
    found = []
    for line in trace.splitlines():
        if not re.match(r"\d*\s*(connect|sendto|sendmsg)\(", line):
            continue
        inet, unix = _INET.search(line), _UNIX.search(line)
        remote = inet is not None and not ipaddress.ip_address(inet[1] or inet[2]).is_loopback
        if remote or (unix is not None and unix[1] == _NAME_SERVICE):
            found.append(line)
    return found


def test_the_trace_reader_sees_a_name_lookup_and_a_remote_address() -> None:
    """The check itself can fail: fed what the telemetry uploader did, it reports it."""
    trace = "\n".join([
        '123 connect(20, {sa_family=AF_INET, sin_port=htons(53), '
        'sin_addr=inet_addr("10.255.255.53")}, 16) = 0',
        '123 connect(19, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1',
        '123 connect(7, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '123 connect(8, {sa_family=AF_INET, sin_port=htons(5000), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
    ])
    assert len(destinations(trace)) == 3


def _stop_traced(server: ServerProcess) -> None:
    """Stops the server under the tracer (the tracer only detaches when signalled itself)."""
    tracer = server.process.pid
    children = Path(f"/proc/{tracer}/task/{tracer}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGTERM)
    assert server.process.wait(60) == 0, "".join(server.log)


@pytest.mark.model
@pytest.mark.tools("strace")
def test_start_up_and_a_synthesis_reach_nothing_beyond_loopback(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    started = time.monotonic()
    server = start_server("--engines", "1", wrapper=[
        "strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace)])
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
            reply = stub.Synthesize(tts_pb2.SynthesizeRequest(text="Nothing leaves."),
                                    timeout=60)
            assert reply.audio_duration_seconds > 0.5
            # Chinese's front end loads on first use: its dictionaries come from the package.
            chinese = stub.Synthesize(tts_pb2.SynthesizeRequest(
                text="你好。", config=tts_pb2.SynthesisConfig(voice="zf_xiaobei")), timeout=60)
            assert chinese.audio_duration_seconds > 0.3
        time.sleep(max(0.0, started + _WATCH_S - time.monotonic()))
    finally:
        _stop_traced(server)
    assert destinations(trace.read_text()) == []
