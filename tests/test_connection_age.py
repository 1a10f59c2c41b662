"""Maximum connection age: long-lived clients are asked to reconnect, calls in flight finish.

Servicer logic on a real port with the fast tier's fake server; no speech here.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tts_api.v1 import tts_pb2
from tts_service.config import ServerConfig, parse_config

from .fakes import TIMEOUT_S, fake_server


async def _state_after(channel: grpc.aio.Channel, seconds: float) -> grpc.ChannelConnectivity:
    await asyncio.sleep(seconds)
    return channel.get_state()


@pytest.mark.parametrize("age_s", [0.5, 0.0])
async def test_old_connections_are_closed_after_their_calls_finish(age_s: float) -> None:
    async with fake_server(max_connection_age_s=age_s,
                           max_connection_age_grace_s=TIMEOUT_S) as served:
        engine, channel, stub = served.engine, served.channel, served.stub
        engine.gate.clear()  # a call that outlives the connection's age
        call = asyncio.ensure_future(
            stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hello."), timeout=TIMEOUT_S))
        await asyncio.sleep(1.5)
        engine.gate.set()
        assert (await call).audio_duration_seconds > 0  # the grace let it finish
        # Asked to go away, the client drops the connection once it is idle and would
        # reconnect (through the balancer) for its next call; without an age it keeps it.
        expected = (grpc.ChannelConnectivity.IDLE if age_s
                    else grpc.ChannelConnectivity.READY)
        assert await _state_after(channel, 0.5) == expected
        response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text="Again."),
                                         timeout=TIMEOUT_S)
        assert response.audio_duration_seconds > 0


def test_connection_age_options_come_from_flags_and_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerConfig().max_connection_age_s == 300
    assert parse_config(["--max-connection-age", "60"]).max_connection_age_s == 60
    monkeypatch.setenv("TTS_MAX_CONNECTION_AGE_GRACE", "12.5")
    assert parse_config([]).max_connection_age_grace_s == 12.5
    for bad in ("-1", "nan", "soon"):
        with pytest.raises(SystemExit):
            parse_config(["--max-connection-age", bad])
