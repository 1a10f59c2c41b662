"""The error table: every bad field gets INVALID_ARGUMENT naming it (fast tier: fake engine)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tts_api.v1 import tts_pb2

from .fakes import TIMEOUT_S, FakeServer, fake_server


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[FakeServer]:
    async with fake_server(max_text_chars=5000) as server:
        yield server


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    found = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found


BAD_REQUESTS = [
    ("unknown voice", "Hi.", dict(voice="xx_nobody"), "config.voice", "ListVoices"),
    ("empty text", "", {}, "text", "empty"),
    ("whitespace text", " \n\t ", {}, "text", "empty"),
    ("no words", "?! ...", {}, "text", "no letters"),
    ("too long", "a" * 5001, {}, "text", "at most 5000"),
    ("speed too low", "Hi.", dict(speed=0.2), "config.speed", "[0.5, 2.0]"),
    ("speed too high", "Hi.", dict(speed=3.0), "config.speed", "[0.5, 2.0]"),
    ("speed not a number", "Hi.", dict(speed=float("nan")), "config.speed", "[0.5, 2.0]"),
    ("rate too low", "Hi.", dict(sample_rate_hertz=4000), "config.sample_rate_hertz", "8000"),
    ("rate too high", "Hi.", dict(sample_rate_hertz=96000), "config.sample_rate_hertz",
     "48000"),
    ("unknown encoding", "Hi.", dict(encoding=99), "config.encoding", "PCM"),
    ("gain too high", "Hi.", dict(volume_gain_db=30), "config.volume_gain_db", "10"),
    ("gain too low", "Hi.", dict(volume_gain_db=-30), "config.volume_gain_db", "-20"),
    ("gain not a number", "Hi.", dict(volume_gain_db=float("nan")), "config.volume_gain_db",
     "-20"),
    ("opus rate", "Hi.", dict(encoding=tts_pb2.AUDIO_ENCODING_OGG_OPUS,
                              sample_rate_hertz=44100), "config.sample_rate_hertz", "48000"),
    ("unsupported language", "Hi.", dict(language_code="de-DE"), "config.language_code",
     "fr-FR"),
    ("malformed language", "Hi.", dict(language_code="french!"), "config.language_code",
     "BCP-47"),
]


@pytest.mark.parametrize("rpc", ["Synthesize", "SynthesizeStream"])
@pytest.mark.parametrize(("case", "text", "settings", "field", "says"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
async def test_bad_requests_get_invalid_argument(
        served: FakeServer, rpc: str, case: str, text: str,
        settings: dict[str, object], field: str, says: str) -> None:
    request = tts_pb2.SynthesizeRequest(
        text=text, config=tts_pb2.SynthesisConfig(**settings))  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        if rpc == "Synthesize":
            await served.stub.Synthesize(request, timeout=TIMEOUT_S)
        else:
            streamed = tts_pb2.SynthesizeStreamRequest(text=request.text, config=request.config)
            await asyncio.wait_for(served.stub.SynthesizeStream(streamed).read(), TIMEOUT_S)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert says in (error.details() or ""), error.details()
    assert "Traceback" not in (error.details() or "")
    assert field in _violations(error)
    assert served.engine.calls == []
    assert served.count(rpc, "INVALID_ARGUMENT") >= 1




@pytest.mark.parametrize("rpc", ["Synthesize", "SynthesizeStream", "StreamingSynthesize"])
async def test_word_timings_on_a_server_that_cannot_time_words_fail_the_precondition(
        served: FakeServer, rpc: str) -> None:
    """The fake engine has no durations, as a server on the bundled runtime: refused up front."""
    config = tts_pb2.SynthesisConfig(enable_word_timings=True)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        if rpc == "Synthesize":
            await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hi.", config=config),
                                         timeout=TIMEOUT_S)
        elif rpc == "SynthesizeStream":
            streamed = tts_pb2.SynthesizeStreamRequest(text="Hi.", config=config)
            await asyncio.wait_for(served.stub.SynthesizeStream(streamed).read(), TIMEOUT_S)
        else:
            call = served.stub.StreamingSynthesize(iter([
                tts_pb2.StreamingSynthesizeRequest(config=config)]))
            await asyncio.wait_for(call.read(), TIMEOUT_S)
    error = raised.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert "enable_word_timings" in (error.details() or "")
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert failure.violations[0].subject == "config.enable_word_timings"
    assert served.engine.calls == []
    assert served.count(rpc, "FAILED_PRECONDITION") >= 1
