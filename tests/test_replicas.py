"""Three real replicas (`--engines 1`) on loopback: through nginx, and balanced by the client.

gRPC keeps one HTTP/2 connection per client, so balancing must happen per call: nginx's
grpc_pass does it for a proxy, round_robin in the client's service config without one.
Each replica counts the calls it served at its metrics endpoint. Every call has a deadline
and every process started here is stopped at the end.
"""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile
from prometheus_client.parser import text_string_to_metric_families

from bench.texts import PARAGRAPH
from harness.nginx import NginxProcess, start_nginx
from harness.servers import ServerProcess, free_port, start_server
from harness.speech import transcribe, word_error_rate, words
from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_client.client import TtsClient
from tts_service.language.sentences import UNARY_SPLIT, split_pieces

from .test_client import run_client

pytestmark = pytest.mark.model

REPLICAS = 3
CALLERS = 30  # concurrent callers on one client connection
CALLS_PER_CALLER = 2
SHORT_TEXT = "Good morning."
CALL_TIMEOUT_S = 120.0
STREAM_READ_TIMEOUT_S = 120.0
DRAIN_GRACE_S = 60
# The paragraph's first six sentences (139 words): a stream of many pieces and over 30 s of
# audio, at half the paragraph's time.
LONG_TEXT = " ".join(p.text for p in split_pieces(PARAGRAPH, UNARY_SPLIT)[:6])


@dataclass
class Replica:
    """One server process on fixed ports, so it can be restarted where nginx expects it."""

    port: int
    metrics_port: int
    server: ServerProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.server is not None and self.server.process.poll() is None

    def start(self) -> None:
        self.server = start_server(
            "--port", str(self.port), "--metrics-port", str(self.metrics_port),
            "--engines", "1", "--max-queued-requests", "32",
            "--shutdown-grace", str(DRAIN_GRACE_S))

    def calls_served(self, method: str = "Synthesize") -> int:
        """`method` calls this replica answered OK, from its Prometheus endpoint."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as page:
            text = page.read().decode()
        return int(sum(sample.value for family in text_string_to_metric_families(text)
                       for sample in family.samples
                       if sample.name == "tts_requests_total"
                       and sample.labels == {"protocol": "grpc", "method": method, "code": "OK"}))


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[Replica]]:
    group = [Replica(free_port(), free_port()) for _ in range(REPLICAS)]
    try:
        with ThreadPoolExecutor(REPLICAS) as starting:
            list(starting.map(Replica.start, group))
        yield group
    finally:
        for replica in group:
            if replica.alive:
                assert replica.server is not None
                assert replica.server.stop() == 0, "".join(replica.server.log)


@pytest.fixture
def all_up(replicas: list[Replica]) -> list[Replica]:
    """The three replicas, restarting any that an earlier test stopped."""
    for replica in replicas:
        if not replica.alive:
            replica.start()
    return replicas


@pytest.fixture(scope="module")
def nginx(replicas: list[Replica], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[NginxProcess]:
    running = start_nginx([r.port for r in replicas], tmp_path_factory.mktemp("nginx"))
    yield running
    assert running.stop() == 0, running.error_log.read_text()


async def _served(replicas: list[Replica]) -> list[int]:
    return await asyncio.gather(*(asyncio.to_thread(r.calls_served) for r in replicas))


async def _wait_until_served(replica: Replica, more_than: int, timeout_s: float) -> None:
    async def poll() -> None:
        while await asyncio.to_thread(replica.calls_served) <= more_than:
            await asyncio.sleep(0.2)
    await asyncio.wait_for(poll(), timeout_s)


_LOG_FIELDS = re.compile(r'" (\d+) upstream=(.*) grpc_status=(\S*) attempt=(\S*) time=')


@dataclass
class ProxyLog:
    """What nginx's access log (format tts_grpc) says about the calls it passed on."""

    answered_by: Counter[str]  # replica address -> calls it answered OK
    client_retries: int  # calls that were a client's retry of an earlier attempt
    failed_attempts: int  # attempts that did not end OK (the client retried them)
    rerouted: int  # calls nginx itself passed to a second replica

    @classmethod
    def parse(cls, lines: list[str]) -> ProxyLog:
        answered_by: Counter[str] = Counter()
        retries = failed = rerouted = 0
        for line in lines:
            match = _LOG_FIELDS.search(line)
            assert match is not None, line
            status, upstreams, grpc_status, attempt = match.groups()
            tried = [u.strip() for u in upstreams.split(",")]
            rerouted += len(tried) > 1
            retries += attempt not in ("", "-", "0")
            if status == "200" and grpc_status == "0":
                answered_by[tried[-1]] += 1
            else:
                failed += 1
        return cls(answered_by, retries, failed, rerouted)


@pytest.mark.tools("nginx")
async def test_calls_through_nginx_survive_a_replica_draining(
        all_up: list[Replica], nginx: NginxProcess) -> None:
    """60 calls from 30 concurrent callers on one connection; replica 3 gets SIGTERM mid-run."""
    victim = all_up[-1]
    assert victim.server is not None
    before = await _served(all_up)
    log_start = len(nginx.access_lines())
    outcomes: list[str] = []

    async def caller(client: TtsClient) -> None:
        for _ in range(CALLS_PER_CALLER):
            try:
                response = await client.synthesize(tts_pb2.SynthesizeRequest(text=SHORT_TEXT))
                assert response.audio_duration_seconds > 0.3
                outcomes.append("OK")
            except grpc.aio.AioRpcError as error:
                outcomes.append(f"{error.code().name}: {error.details()}")

    async with TtsClient(nginx.address, timeout_s=CALL_TIMEOUT_S) as client:
        callers = [asyncio.ensure_future(caller(client)) for _ in range(CALLERS)]
        await _wait_until_served(victim, before[-1], CALL_TIMEOUT_S)
        victim.server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*callers), 3 * CALL_TIMEOUT_S)

    exit_code = await asyncio.to_thread(victim.server.process.wait, DRAIN_GRACE_S + 30)
    assert exit_code == 0, "".join(victim.server.log)
    total = CALLERS * CALLS_PER_CALLER
    assert Counter(outcomes) == Counter({"OK": total})  # none lost, none failed
    after = await _served(all_up[:-1])
    assert all(a > b for a, b in zip(after, before, strict=False)), (before, after)

    log = ProxyLog.parse(nginx.access_lines()[log_start:])
    assert sum(log.answered_by.values()) == total
    assert set(log.answered_by) == {r.address for r in all_up}
    print(f"\nthrough nginx: {total} calls, answered per replica "
          f"{[log.answered_by[r.address] for r in all_up]} (replica 3 drained mid-run), "
          f"client retries {log.client_retries}, failed attempts {log.failed_attempts}, "
          f"rerouted by nginx {log.rerouted}, lost 0")


async def _read_all(stream: AsyncIterator[tts_pb2.AudioChunk]) -> list[tts_pb2.AudioChunk]:
    chunks = []
    while True:
        try:
            chunks.append(await asyncio.wait_for(anext(stream), STREAM_READ_TIMEOUT_S))
        except StopAsyncIteration:
            return chunks


@pytest.mark.tools("nginx")
async def test_a_long_stream_passes_through_nginx_uncut(all_up: list[Replica],
                                                        nginx: NginxProcess) -> None:
    """Half a minute of speech streams through the proxy to its last sentence."""
    async with TtsClient(nginx.address, timeout_s=600) as client:
        chunks = await _read_all(client.synthesize_stream(
            tts_pb2.SynthesizeStreamRequest(text=LONG_TEXT)))
    assert words(" ".join(c.text_span.text for c in chunks)) == words(LONG_TEXT)
    assert [c.sequence_number for c in chunks] == list(range(len(chunks)))
    audio_s = sum(c.audio_duration_seconds for c in chunks)
    assert audio_s > 30
    last = chunks[-1]
    heard = transcribe(np.frombuffer(last.audio, dtype="<i2"), last.sample_rate_hertz)
    assert word_error_rate(last.text_span.text, heard) < 0.5, (last.text_span.text, heard)
    print(f"\nthrough nginx: {len(LONG_TEXT.split())} words, {len(chunks)} chunks, "
          f"{audio_s:.1f} s of audio, uncut")


async def test_the_command_line_client_speaks_through_a_multi_address_target(
        all_up: list[Replica], tmp_path: Path) -> None:
    text = "The weather is lovely today."
    out = tmp_path / "spoken.wav"
    target = "ipv4:" + ",".join(r.address for r in all_up)
    result = await asyncio.to_thread(run_client, "--server", target, "--output", str(out),
                                     text, timeout_s=CALL_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    samples, rate_hz = soundfile.read(out, dtype="int16")
    assert word_error_rate(text, transcribe(samples, rate_hz)) < 0.5


async def _call_many(target: str, calls: int, channel_options: tuple = ()) -> None:
    async with grpc.aio.insecure_channel(target, options=channel_options) as channel:
        stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
        responses = await asyncio.gather(*(
            stub.Synthesize(tts_pb2.SynthesizeRequest(text=SHORT_TEXT), timeout=CALL_TIMEOUT_S)
            for _ in range(calls)))
    assert all(r.audio_duration_seconds > 0.3 for r in responses)


async def test_client_side_round_robin_spreads_calls_and_drops_a_killed_replica(
        all_up: list[Replica]) -> None:
    target = "ipv4:" + ",".join(r.address for r in all_up)

    # The classic mistake first: gRPC's default policy (pick_first) sends every call of a
    # connection to one replica, as a plain TCP balancer would.
    before = await _served(all_up)
    await _call_many(target, 6)
    pinned = [a - b for a, b in zip(await _served(all_up), before, strict=True)]
    assert sorted(pinned) == [0, 0, 6], pinned

    # Its own subchannels, reconnecting within a second: gRPC shares subchannels between a
    # process's channels, and one left in connection backoff (up to 120 s) by an earlier
    # channel to a reused port would keep a replica out of the rotation.
    fresh = (("grpc.use_local_subchannel_pool", 1), ("grpc.max_reconnect_backoff_ms", 1000))
    async with TtsClient(target, timeout_s=CALL_TIMEOUT_S, channel_options=fresh) as client:
        async def call_all(calls: int) -> None:
            responses = await asyncio.gather(*(
                client.synthesize(tts_pb2.SynthesizeRequest(text=SHORT_TEXT))
                for _ in range(calls)))
            assert all(r.audio_duration_seconds > 0.3 for r in responses)

        # round_robin picks among the replicas it is connected to; a fresh channel connects
        # to all of them within moments, and its first calls go to the first one ready.
        async def listed_by() -> list[int]:
            return await asyncio.gather(*(asyncio.to_thread(r.calls_served, "ListVoices")
                                          for r in all_up))

        async def connected_to_all() -> None:
            while min(await listed_by()) == 0:
                await client.list_voices()
                await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(connected_to_all(), CALL_TIMEOUT_S)
        except TimeoutError:
            tails = [r.server.log[-5:] if r.server else None for r in all_up]
            pytest.fail(f"round_robin reached only some replicas: ListVoices served "
                        f"{await listed_by()}; their logs end {tails}")

        before = await _served(all_up)
        await call_all(15)
        spread = [a - b for a, b in zip(await _served(all_up), before, strict=True)]
        assert sum(spread) == 15 and min(spread) >= 1, spread

        killed = all_up[-1]
        assert killed.server is not None
        killed.server.process.kill()
        assert await asyncio.to_thread(killed.server.process.wait, 30) == -signal.SIGKILL
        survivors = all_up[:-1]
        before = await _served(survivors)
        await call_all(15)  # the killed replica's share moves to the others, nothing fails
        moved = [a - b for a, b in zip(await _served(survivors), before, strict=True)]
        assert sum(moved) == 15 and min(moved) >= 1, moved
    print(f"\nround_robin: pick_first pinned {pinned}; round_robin spread 15 calls as "
          f"{spread}; after a SIGKILL, 15 calls as {moved} over the two left, none failed")
