"""SSML through every front, each with its real client, on a fake engine: what reaches the
engine (pieces, voices, speeds), the pauses and marks in the answer, and bad or hostile
documents refused with the front's INVALID_ARGUMENT while the server keeps serving. The
real model, heard, is in test_ssml_speech.py; the parser alone in test_ssml.py."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx2
import openai
import pytest
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from harness.servers import free_port
from harness.websocket_client import speak, url_of
from harness.wyoming_client import read_reply
from tts_api.v1 import tts_pb2
from tts_client.cli import build_parser, is_ssml

from .fakes import SAMPLE_RATE_HZ, TIMEOUT_S, FakeServer, fake_server, openai_client
from .test_pronunciations import _violations
from .test_wyoming_logic import connect

TONE_S = 0.1  # the fake engine's audio per piece
PAUSED = '<speak>Hello there.<break time="500ms"/>Goodbye now.</speak>'
MARKED = ('<speak><mark name="start"/>Hello there.<mark name="middle"/>'
          '<break time="200ms"/>Goodbye now.<mark name="end"/></speak>')
# Where the marks are reached in MARKED's audio: a tone, the break, a tone.
MARK_TIMES = {"start": 0.0, "middle": TONE_S, "end": 2 * TONE_S + 0.2}
PLAIN = "Hello there."
# Each bad document and words of the message that says what is wrong.
BAD = [
    ("<speak>Hello", "line 1"),
    ("<speak><foo>Hi</foo></speak>", "foo"),
    ('<speak><break time="-1s"/>Hi</speak>', "break"),
    ('<speak><voice name="zz_nobody">Hi</voice></speak>', "zz_nobody"),
]


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[FakeServer]:
    async with fake_server(("af_bella", "am_adam"), http_port=free_port(),
                           wyoming_port=free_port(), max_queued_requests=4) as server:
        yield server


def _pcm(ssml: str = "", text: str = "", **config: Any) -> tts_pb2.SynthesizeRequest:
    return tts_pb2.SynthesizeRequest(ssml=ssml, text=text, config=tts_pb2.SynthesisConfig(
        encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE, **config))


# gRPC ---------------------------------------------------------------------------------------

async def test_grpc_a_break_is_silence_between_the_pieces_around_it(served: FakeServer) -> None:
    before = len(served.engine.calls)
    response = await served.stub.Synthesize(_pcm(PAUSED), timeout=TIMEOUT_S)
    assert served.engine.calls[before:] == ["Hello there.", "Goodbye now."]
    assert response.audio_duration_seconds == pytest.approx(2 * TONE_S + 0.5, abs=1e-3)
    silence = response.audio[2 * round(TONE_S * SAMPLE_RATE_HZ):][:2 * SAMPLE_RATE_HZ // 2]
    assert silence == bytes(len(silence))


async def test_grpc_marks_come_with_the_unary_answer_and_the_stream(served: FakeServer) -> None:
    response = await served.stub.Synthesize(_pcm(MARKED), timeout=TIMEOUT_S)
    assert [(m.name, round(m.seconds, 3)) for m in response.marks] == list(MARK_TIMES.items())
    assert [MARKED[m.offset:].startswith(f'<mark name="{m.name}"') for m in response.marks] \
        == [True] * 3
    streamed = [mark async for message in served.stub.SynthesizeStream(
        tts_pb2.SynthesizeStreamRequest(ssml=MARKED), timeout=TIMEOUT_S)
        for mark in message.chunk.marks]
    assert [(m.name, round(m.seconds, 3)) for m in streamed] == list(MARK_TIMES.items())


async def test_grpc_voice_and_prosody_direct_their_span(served: FakeServer) -> None:
    before = len(served.engine.calls)
    await served.stub.Synthesize(_pcm(
        '<speak>Hello there. <voice name="am_adam">I am Adam.</voice> '
        '<prosody rate="50%">Slowly now.</prosody></speak>', speed=1.5), timeout=TIMEOUT_S)
    assert served.engine.calls[before:] == ["Hello there.", "I am Adam.", "Slowly now."]
    assert [speaker for speaker, _ in served.engine.voices[before:]] == [0, 1, 0]
    assert served.engine.speeds[before:] == [1.5, 1.5, 0.75]


async def test_grpc_voice_takes_a_mix(served: FakeServer) -> None:
    before = len(served.engine.calls)
    await served.stub.Synthesize(_pcm(
        '<speak>Hello there. <voice name="af_bella(1)+am_adam(3)">We are two.</voice></speak>'),
        timeout=TIMEOUT_S)
    (plain_id, plain_style), (mix_id, mix_style) = served.engine.voices[before:]
    assert (plain_id, plain_style) == (0, None)
    assert mix_id == 1 and mix_style is not None  # the heaviest voice, with the mixed table
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Synthesize(_pcm('<speak><voice name="af_bella(0)+am_adam">Hi</voice>'
                                          '</speak>'), timeout=TIMEOUT_S)
    assert "weight" in _violations(refused.value)["ssml"]


async def test_grpc_a_document_that_reads_as_plain_text_speaks_the_same(
        served: FakeServer) -> None:
    plain = await served.stub.Synthesize(_pcm(text=PLAIN), timeout=TIMEOUT_S)
    ssml = await served.stub.Synthesize(_pcm(f"<speak>{PLAIN}</speak>"), timeout=TIMEOUT_S)
    assert ssml.audio == plain.audio


async def test_grpc_text_and_ssml_together_are_refused(served: FakeServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Synthesize(_pcm(PAUSED, text=PLAIN), timeout=TIMEOUT_S)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "either text or ssml" in _violations(refused.value)["ssml"]


@pytest.mark.parametrize(("document", "words"), BAD)
async def test_grpc_refuses_bad_ssml_naming_the_field(served: FakeServer, document: str,
                                                      words: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Synthesize(_pcm(document), timeout=TIMEOUT_S)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in _violations(refused.value)["ssml"]
    await served.stub.Synthesize(_pcm(text=PLAIN), timeout=TIMEOUT_S)  # still serving


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY a "aaaaaaaaaa">'
          + "".join(f'<!ENTITY {b} "{("&" + a + ";") * 10}">'
                    for a, b in zip("abcdefgh", "bcdefghi", strict=True))
          + ']><speak>&i;</speak>')
HOSTILE = [
    ("billion laughs", LAUGHS),
    ("external entity", '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY x SYSTEM '
     '"file:///etc/passwd">]><speak>&x;</speak>'),
    ("10,000-deep nesting", "<speak>" + "<p>" * 10_000 + "Hi" + "</p>" * 10_000 + "</speak>"),
    ("1 MB of markup", "<speak>" + "<!-- padding -->" * 65_536 + "Hi</speak>"),
    ("unclosed tags", "<speak><p><s>Hello"),
    ("a lone surrogate in an attribute", '<speak><mark name="\ud800"/>Hi</speak>'),
]


@pytest.mark.parametrize(("name", "document"), HOSTILE, ids=[name for name, _ in HOSTILE])
async def test_hostile_ssml_is_refused_quickly_and_the_server_keeps_serving(
        served: FakeServer, name: str, document: str) -> None:
    started = time.monotonic()
    async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
        # Over HTTP: a JSON string can carry the lone surrogate, which protobuf cannot.
        # json.dumps escapes it (\\ud800), as a JSON client may send it.
        refused = await http.post(f"{served.http_url}/audio/speech", content=json.dumps({
            "model": "tts-1", "input": document, "input_format": "ssml"}),
            headers={"content-type": "application/json"})
    assert refused.status_code == 400, refused.text
    # A megabyte is over any request's size: the body is refused before it is read whole.
    assert refused.json()["error"]["param"] == ("body" if name == "1 MB of markup" else "input")
    assert time.monotonic() - started < 5, name
    await served.stub.Synthesize(_pcm(text=PLAIN), timeout=TIMEOUT_S)


async def test_grpc_server_info_lists_the_text_formats(served: FakeServer) -> None:
    info = await served.stub.GetServerInfo(tts_pb2.GetServerInfoRequest(), timeout=TIMEOUT_S)
    assert list(info.text_formats) == ["text", "ssml"]


# HTTP ---------------------------------------------------------------------------------------


async def test_http_takes_ssml_as_an_extension_of_the_openai_body(served: FakeServer) -> None:
    before = len(served.engine.calls)
    async with openai_client(served) as client:
        audio = await client.audio.speech.create(
            model="tts-1", voice="af_bella", input=PAUSED, response_format="pcm",
            extra_body={"input_format": "ssml"})
    assert served.engine.calls[before:] == ["Hello there.", "Goodbye now."]
    assert len(audio.content) == 2 * round((2 * TONE_S + 0.5) * SAMPLE_RATE_HZ)


async def test_http_sse_carries_the_marks(served: FakeServer) -> None:
    async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
        answer = await http.post(f"{served.http_url}/audio/speech", json={
            "model": "tts-1", "input": MARKED, "input_format": "ssml",
            "stream_format": "sse"})
    events = [line.removeprefix("data: ") for line in answer.text.splitlines()
              if line.startswith("data: ")]
    marks = [mark for event in map(json.loads, events) if event["type"] == "speech.audio.marks"
             for mark in event["marks"]]
    assert [(m["name"], m["time_s"]) for m in marks] == list(MARK_TIMES.items())


@pytest.mark.parametrize(("document", "words"), BAD)
async def test_http_refuses_bad_ssml_with_a_400_naming_input(served: FakeServer, document: str,
                                                             words: str) -> None:
    async with openai_client(served) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.speech.create(model="tts-1", voice="af_bella", input=document,
                                             extra_body={"input_format": "ssml"})
        assert refused.value.param == "input"  # type: ignore[attr-defined]
        assert words in refused.value.message


# WebSocket ----------------------------------------------------------------------------------

async def test_websocket_speaks_a_document_at_each_flush_with_its_marks(
        served: FakeServer) -> None:
    before = len(served.engine.calls)
    reply = await speak(url_of(served.http_url), [
        {"type": "config", "voice": "af_bella", "text_format": "ssml"},
        {"type": "text", "text": MARKED[:20]}, {"type": "text", "text": MARKED[20:],
                                                "flush": True},
        {"type": "text", "text": PAUSED}, {"type": "end"}])
    assert reply.types[-1] == "done", reply.messages
    assert "flushed" in reply.types
    assert served.engine.calls[before:] == ["Hello there.", "Goodbye now."] * 2
    marks = [mark["name"] for header, _ in reply.chunks for mark in header["marks"]]
    assert marks == ["start", "middle", "end"]


@pytest.mark.parametrize(("document", "words"), BAD)
async def test_websocket_refuses_bad_ssml_with_4400(served: FakeServer, document: str,
                                                    words: str) -> None:
    reply = await speak(url_of(served.http_url), [
        {"type": "config", "text_format": "ssml"}, {"type": "text", "text": document},
        {"type": "end"}])
    assert reply.close_code == 4400
    assert reply.messages[-1]["param"] == "text" and words in reply.messages[-1]["message"]


# Wyoming ------------------------------------------------------------------------------------

async def test_wyoming_takes_text_format_ssml_whole_and_streamed(served: FakeServer) -> None:
    before = len(served.engine.calls)
    async with connect(served) as client:
        await client.write_event(Synthesize(text=PAUSED, text_format="ssml").event())
        whole = await read_reply(client, "audio-stop")
        assert whole.errors == [] and whole.audio_s() == pytest.approx(0.7, abs=1e-3)
        await client.write_event(SynthesizeStart(text_format="ssml").event())
        await client.write_event(Synthesize(text=PAUSED, text_format="ssml").event())  # replay
        for part in (PAUSED[:15], PAUSED[15:]):
            await client.write_event(SynthesizeChunk(text=part).event())
        await client.write_event(SynthesizeStop().event())
        streamed = await read_reply(client, "synthesize-stopped")
        assert streamed.errors == [] and streamed.audio_s() == pytest.approx(0.7, abs=1e-3)
    assert served.engine.calls[before:] == ["Hello there.", "Goodbye now."] * 2


@pytest.mark.parametrize(("document", "words"), BAD)
async def test_wyoming_refuses_bad_ssml_with_an_error_event(served: FakeServer, document: str,
                                                            words: str) -> None:
    async with connect(served) as client:
        await client.write_event(Synthesize(text=document, text_format="ssml").event())
        failed = await read_reply(client, "audio-stop")
        assert [error.code for error in failed.errors] == ["INVALID_ARGUMENT"]
        assert words in failed.errors[0].text
        await client.write_event(Synthesize(text=PLAIN).event())  # the connection lives on
        assert (await read_reply(client, "audio-stop")).errors == []


# The command-line client --------------------------------------------------------------------

def test_the_cli_sends_ssml_for_ssml_or_a_ssml_file() -> None:
    assert is_ssml(build_parser().parse_args(["--ssml", PAUSED]))
    assert is_ssml(build_parser().parse_args(["--file", "talk.ssml"]))
    assert not is_ssml(build_parser().parse_args(["--file", "talk.txt"]))
    assert not is_ssml(build_parser().parse_args([PLAIN]))
