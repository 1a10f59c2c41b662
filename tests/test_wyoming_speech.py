"""The Wyoming front on the real model, driven by the wyoming library's client as Home Assistant
drives it: the info it shows, a one-shot synthesis the recognizer hears, and a streaming
session in Home Assistant's exact event order (with the replayed full text) that speaks while
the text is still being written and says it once."""

from __future__ import annotations

import re

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from harness import wyoming_client
from harness.servers import ServerProcess
from harness.speech import pcm16_to_float, transcribe, word_error_rate

pytestmark = pytest.mark.model

TEXT = ("The weather is lovely today. We walked along the river after lunch. "
        "Then we sat on a bench and watched the boats go by.")
# As an LLM writes it, a word at a time; slowly enough (about 7 s in all) that the first
# sentence is spoken before the text ends even on a busy 2-core machine.
PARTS = re.findall(r"\S+\s*", TEXT)
PAUSE_S = 0.3
MAX_WER = 0.2
TIMEOUT_S = 120


def _port(server: ServerProcess) -> int:
    assert server.wyoming_port is not None, "start the server with --wyoming-port"
    return server.wyoming_port


async def test_info_lists_every_voice_with_its_language(http_server: ServerProcess) -> None:
    async with AsyncTcpClient("127.0.0.1", _port(http_server), read_timeout=TIMEOUT_S) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
    assert event is not None
    (program,) = Info.from_event(event).tts
    assert program.supports_synthesize_streaming
    voices = {voice.name: voice for voice in program.voices}
    assert len(voices) == 54
    assert voices["af_bella"].languages == ["en-US"]
    assert voices["bm_george"].description == "bm_george (en-GB, male)"


async def test_a_one_shot_synthesis_says_the_text(http_server: ServerProcess) -> None:
    reply = await wyoming_client.synthesize(_port(http_server), TEXT)
    assert reply.types[0] == "audio-start" and reply.types[-1] == "audio-stop"
    assert reply.start is not None and (reply.start.rate, reply.start.width) == (24000, 2)
    heard = transcribe(pcm16_to_float(reply.audio), reply.start.rate)
    assert word_error_rate(TEXT, heard) <= MAX_WER, heard


async def test_home_assistants_streaming_session_speaks_once_and_before_the_text_ends(
        http_server: ServerProcess) -> None:
    streamed = await wyoming_client.stream(_port(http_server), PARTS, pause_s=PAUSE_S)
    one_shot = await wyoming_client.synthesize(_port(http_server), TEXT)
    assert streamed.errors == []
    assert streamed.types[0] == "audio-start"
    assert streamed.types[-2:] == ["audio-stop", "synthesize-stopped"]
    assert streamed.first_audio_s is not None and streamed.last_text_s is not None
    assert streamed.first_audio_s < streamed.last_text_s, (streamed.first_audio_s,
                                                          streamed.last_text_s)
    # The replayed full text is not spoken again: as long as the one-shot synthesis (the
    # pieces are cut where the text had arrived, so a few pauses may differ by a little).
    assert streamed.audio_s() == pytest.approx(one_shot.audio_s(), rel=0.1)
    heard = transcribe(pcm16_to_float(streamed.audio), 24000)
    assert word_error_rate(TEXT, heard) <= MAX_WER, heard
