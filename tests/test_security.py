"""TLS, mutual TLS, bearer tokens and the metrics endpoint, on real servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.servers import ServerProcess, start_server
from tts_api.v1 import tts_pb2, tts_pb2_grpc

from .certs import Pki, make_pki

pytestmark = pytest.mark.model

TOKEN = "s3cret-token-for-tests"
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def tls_server(pki: Pki) -> Iterator[ServerProcess]:
    running = start_server("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key))
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def mtls_server(pki: Pki) -> Iterator[ServerProcess]:
    running = start_server("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                           "--tls-client-ca", str(pki.ca_cert))
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text(TOKEN + "\n")
    metrics_port = _free_port()
    running = start_server("--token-file", str(token_file), "--metrics-port", str(metrics_port))
    yield running, metrics_port
    assert running.stop() == 0


async def _say(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()
               ) -> tts_pb2.SynthesizeResponse:
    stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
    return await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Secure hello."),
                                 timeout=TIMEOUT_S, metadata=metadata)


def _credentials(pki: Pki, with_client_cert: bool) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca_cert.read_bytes(),
        private_key=pki.client_key.read_bytes() if with_client_cert else None,
        certificate_chain=pki.client_cert.read_bytes() if with_client_cert else None)


async def test_tls_server_speaks_tls_only(pki: Pki, tls_server: ServerProcess) -> None:
    async with grpc.aio.secure_channel(tls_server.address, _credentials(pki, False)) as channel:
        assert (await _say(channel)).audio_duration_seconds > 0.3
    async with grpc.aio.insecure_channel(tls_server.address) as plaintext:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _say(plaintext)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tls_client_refuses_an_unknown_server_certificate(
        tmp_path: Path, tls_server: ServerProcess) -> None:
    stranger = make_pki(tmp_path)
    async with grpc.aio.secure_channel(tls_server.address,
                                       _credentials(stranger, False)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _say(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_needs_a_client_certificate(pki: Pki,
                                                     mtls_server: ServerProcess) -> None:
    async with grpc.aio.secure_channel(mtls_server.address, _credentials(pki, True)) as channel:
        assert (await _say(channel)).audio_duration_seconds > 0.3
    async with grpc.aio.secure_channel(mtls_server.address,
                                       _credentials(pki, False)) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _say(anonymous)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("metadata", [
    (),
    (("authorization", "Bearer wrong-token"),),
    (("authorization", TOKEN),),
    (("authorization", f"Basic {TOKEN}"),),
], ids=["missing", "wrong", "no scheme", "other scheme"])
async def test_token_is_required(token_server: tuple[ServerProcess, int],
                                 metadata: tuple[tuple[str, str], ...]) -> None:
    async with grpc.aio.insecure_channel(token_server[0].address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _say(channel, metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "Bearer" in (refused.value.details() or "")
        stream = tts_pb2_grpc.TextToSpeechServiceStub(channel).SynthesizeStream(
            tts_pb2.SynthesizeStreamRequest(text="Hi."), timeout=TIMEOUT_S, metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError) as refused_stream:
            await stream.read()
        assert refused_stream.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_right_token_works_and_health_stays_open(
        token_server: tuple[ServerProcess, int]) -> None:
    async with grpc.aio.insecure_channel(token_server[0].address) as channel:
        response = await _say(channel, (("authorization", f"Bearer {TOKEN}"),))
        assert response.audio_duration_seconds > 0.3
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_metrics_endpoint_counts_calls(token_server: tuple[ServerProcess, int]) -> None:
    server, metrics_port = token_server
    authorized = (("authorization", f"Bearer {TOKEN}"),)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
        await _say(channel, authorized)
        async for _ in stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text="Streamed hi."),
                                             timeout=TIMEOUT_S, metadata=authorized):
            pass
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Synthesize(tts_pb2.SynthesizeRequest(text="x",
                                                            config=tts_pb2.SynthesisConfig(voice="nobody")),
                                  timeout=TIMEOUT_S, metadata=authorized)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Synthesize(tts_pb2.SynthesizeRequest(text="No token."), timeout=TIMEOUT_S)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as page:
        text = page.read().decode()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples['tts_requests_total{code="OK",method="Synthesize",protocol="grpc"}'] >= 1
    assert samples['tts_requests_total{code="OK",method="SynthesizeStream",protocol="grpc"}'] >= 1
    assert samples[
        'tts_requests_total{code="INVALID_ARGUMENT",method="Synthesize",protocol="grpc"}'] >= 1
    assert samples[
        'tts_requests_total{code="UNAUTHENTICATED",method="Synthesize",protocol="grpc"}'] >= 1
    assert samples["tts_engines"] == 3  # the default pool: 2 engines and the solo engine
    assert samples["tts_engines_busy"] == 0
    assert samples["tts_queue_depth"] == 0
    assert samples['tts_audio_seconds_total{voice="af_bella"}'] > 0.5
    assert samples['tts_time_to_first_chunk_seconds_count{protocol="grpc"}'] >= 1
    assert samples['tts_real_time_factor_count{method="Synthesize",protocol="grpc"}'] >= 1
    assert samples[
        'tts_synthesis_seconds_count{method="SynthesizeStream",protocol="grpc"}'] >= 1
    assert any(key.startswith("tts_engine_runtime_info{") and "onnxruntime_version=" in key
               for key in samples)


def _client(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TTS_TOKEN"}
    return subprocess.run([sys.executable, "-m", "tts_client.cli", "--no-play", *args],
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


def test_client_cli_sends_the_token(tmp_path: Path,
                                    token_server: tuple[ServerProcess, int]) -> None:
    address = token_server[0].address
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    refused = _client("--server", address, "Hello.")
    assert refused.returncode == 1
    assert "UNAUTHENTICATED" in refused.stderr and "--token-file" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _client("--server", address, "--token-file", str(token_file), "Hello.").returncode == 0


def test_client_cli_speaks_tls_and_mutual_tls(pki: Pki, tls_server: ServerProcess,
                                              mtls_server: ServerProcess) -> None:
    done = _client("--server", tls_server.address, "--tls-ca", str(pki.ca_cert), "Hello.")
    assert done.returncode == 0, done.stderr
    anonymous = _client("--server", mtls_server.address, "--tls-ca", str(pki.ca_cert), "Hello.")
    assert anonymous.returncode == 1 and "Traceback" not in anonymous.stderr
    mutual = _client("--server", mtls_server.address, "--tls-ca", str(pki.ca_cert),
                     "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key),
                     "Hello.")
    assert mutual.returncode == 0, mutual.stderr
