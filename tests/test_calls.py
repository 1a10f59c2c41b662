"""Every call leaves a log line and a count, refused ones too (fast tier: fake engine)."""

from __future__ import annotations

import json
import logging
import re
import shlex
from pathlib import Path

import grpc
import pytest

from tts_api.v1 import tts_pb2
from tts_service.calls.speech_call import log_value

from .fakes import TIMEOUT_S, fake_server

TOKEN = "token-for-call-tests"
SECRET_TEXT = "My secret is swordfish."


def _request_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tts_service.requests"]


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


async def test_log_line_has_every_field_and_no_text_by_default(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tts_service.requests")
    async with fake_server() as served:
        await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text=SECRET_TEXT),
                                     timeout=TIMEOUT_S, metadata=(("x-request-id", "log-1"),))
    [line] = _request_lines(caplog)
    fields = _fields(line)
    assert fields["request_id"] == "log-1"
    assert fields["method"] == "Synthesize"
    assert fields["status"] == "OK"
    assert fields["voice"] == "af_bella"
    assert fields["text_chars"] == str(len(SECRET_TEXT))
    assert fields["pieces"] == "1/1"
    assert float(fields["audio_s"]) == pytest.approx(0.1, abs=0.01)
    assert {"first_chunk_s", "total_s"} <= fields.keys()
    assert "swordfish" not in caplog.text


async def test_log_text_option_puts_the_text_in_the_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tts_service.requests")
    async with fake_server(log_text=True) as served:
        await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text=SECRET_TEXT),
                                     timeout=TIMEOUT_S)
    [line] = _request_lines(caplog)
    assert line.endswith(f"text={json.dumps(SECRET_TEXT)}")


async def test_invalid_request_is_logged_and_counted_with_its_status(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tts_service.requests")
    async with fake_server() as served:
        with pytest.raises(grpc.aio.AioRpcError):
            await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text=""), timeout=TIMEOUT_S)
        assert served.count("Synthesize", "INVALID_ARGUMENT") == 1
    [line] = _request_lines(caplog)
    assert _fields(line)["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("metadata", [
    (),
    (("authorization", "Bearer wrong"),),
], ids=["missing", "wrong"])
async def test_calls_refused_for_their_token_are_logged_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        metadata: tuple[tuple[str, str], ...]) -> None:
    caplog.set_level(logging.INFO, logger="tts_service.requests")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    request_id = (("x-request-id", "refused-1"),)
    async with fake_server(token_file=token_file, log_text=True) as served:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text=SECRET_TEXT),
                                         timeout=TIMEOUT_S, metadata=metadata + request_id)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stream = served.stub.SynthesizeStream(tts_pb2.SynthesizeStreamRequest(text="Hi."),
                                              timeout=TIMEOUT_S, metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError):
            await stream.read()
        assert served.count("Synthesize", "UNAUTHENTICATED") == 1
        assert served.count("SynthesizeStream", "UNAUTHENTICATED") == 1
        assert served.engine.calls == []
    lines = [_fields(line) for line in _request_lines(caplog)]
    assert [(f["method"], f["status"]) for f in lines] == [
        ("Synthesize", "UNAUTHENTICATED"), ("SynthesizeStream", "UNAUTHENTICATED")]
    assert lines[0]["request_id"] == "refused-1"
    # The text of a refused call is never read, even with text logging on.
    assert "swordfish" not in caplog.text


async def test_deadline_is_logged_as_deadline_exceeded(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tts_service.requests")
    async with fake_server() as served:
        served.engine.gate.clear()
        stream = served.stub.SynthesizeStream(
            tts_pb2.SynthesizeStreamRequest(text="Too slow."), timeout=0.3)
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stream.read()
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        served.engine.gate.set()
    [line] = _request_lines(caplog)
    assert _fields(line)["status"] == "DEADLINE_EXCEEDED"


FORGED = "af_bella\nrequest_id=forged protocol=grpc method=Synthesize status=OK"


async def test_a_caller_cannot_forge_a_log_line_through_the_voice(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tts_service.requests")
    async with fake_server() as served:
        with pytest.raises(grpc.aio.AioRpcError):
            await served.stub.Synthesize(
                tts_pb2.SynthesizeRequest(text="Hi.",
                                          config=tts_pb2.SynthesisConfig(voice=FORGED)),
                timeout=TIMEOUT_S, metadata=(("x-request-id", "id with spaces status=OK"),))
    [line] = _request_lines(caplog)
    assert "\n" not in line
    # Read as a log shipper reads key=value pairs, quoted values kept whole.
    pairs = [token.split("=", 1) for token in shlex.split(line)]
    keys = [key for key, _ in pairs]
    assert keys.count("status") == 1 and keys.count("request_id") == 1
    fields = dict(pairs)
    assert fields["status"] == "INVALID_ARGUMENT"
    assert fields["request_id"] == "id with spaces status=OK"
    assert fields["voice"] == FORGED.replace("\n", "\\n")


def test_log_values_are_plain_words_or_quoted_json() -> None:
    assert log_value("af_bella") == "af_bella"
    assert log_value("a b") == '"a b"'
    assert log_value("x\ny") == '"x\\ny"'
    assert log_value('"') == '"\\""'
    assert log_value("\u2028") == '"\\u2028"'
