"""Live text and word timings on the HTTP front with the real model: the WebSocket, driven by
the `websockets` library, speaks while the text is still being written and the recognizer hears
it; the WebSocket and the SSE stream (the official OpenAI SDK) carry every word with its place in
the text and its time in the audio."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from harness.servers import ServerProcess, require_durations
from harness.speech import pcm16_to_float, transcribe, word_error_rate
from harness.websocket_client import speak, url_of

pytestmark = pytest.mark.model

TEXT = ("The weather is lovely today. We walked along the river after lunch. "
        "Then we sat on a bench and watched the boats go by.")
# As a person or an LLM writes it, a word at a time (about 7 s in all: the first sentence is
# spoken before the text ends even on a busy 2-core machine).
PARTS = re.findall(r"\S+\s*", TEXT)
PAUSE_S = 0.3
MAX_WER = 0.2
RATE_HZ = 24000
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def client(http_server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{http_server.http_url}/v1", api_key="unused",
                       timeout=TIMEOUT_S, max_retries=0) as sdk:
        yield sdk


def check_words(words: list[dict[str, Any]], text: str, audio_s: float) -> None:
    """Every word of `text`, in order, where the text has it, timed within the audio."""
    assert [word["word"] for word in words] == text.replace(".", " ").replace(",", " ").split()
    for word in words:
        assert text[word["start"]:word["end"]] == word["word"]
        assert 0 <= word["start_s"] < word["end_s"] <= audio_s + 0.05, word
    starts = [word["start_s"] for word in words]
    assert starts == sorted(starts)


async def test_live_text_is_spoken_while_it_is_written_with_word_timings(
        http_server: ServerProcess) -> None:
    require_durations()
    config = {"type": "config", "voice": "af_bella", "word_timings": True}
    reply = await speak(url_of(http_server.http_url),
                        [config, *({"type": "text", "text": part} for part in PARTS),
                         {"type": "end"}], pause_s=PAUSE_S)
    assert reply.types[0] == "ready" and reply.types[-1] == "done", reply.types
    assert reply.close_code == 1000
    assert reply.first_audio_s is not None and reply.last_sent_s is not None
    assert reply.first_audio_s < reply.last_sent_s, (reply.first_audio_s, reply.last_sent_s)
    samples = pcm16_to_float(reply.audio)
    heard = transcribe(samples, RATE_HZ)
    assert word_error_rate(TEXT, heard) <= MAX_WER, heard
    spans = [message["text"] for message, _ in reply.chunks]
    assert "".join(span["text"] + " " for span in spans).strip() == TEXT
    check_words([word for message, _ in reply.chunks for word in message["words"]], TEXT,
                len(samples) / RATE_HZ)


def test_the_sse_stream_carries_word_timings_before_their_audio(client: openai.OpenAI) -> None:
    require_durations()
    events = []
    with client.audio.speech.with_streaming_response.create(
            model="kokoro", voice="af_bella", input=TEXT, response_format="pcm",
            stream_format="sse", extra_body={"word_timings": True}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    types = [event["type"] for event in events]
    assert types[-1] == "speech.audio.done"
    # Each chunk's words come just before its audio.
    assert types[:-1] == ["speech.audio.words", "speech.audio.delta"] * (len(types) // 2)
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events if "audio" in e)
    check_words([word for e in events if "words" in e for word in e["words"]], TEXT,
                len(pcm) / 2 / RATE_HZ)
