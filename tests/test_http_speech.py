"""The OpenAI-compatible HTTP API, called by the official OpenAI SDK, unmodified, on the real
model: every response format decoded by ffmpeg and heard by the recognizer, streaming, SSE,
and errors as the SDK's own exception classes."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator

import openai
import pytest

from harness.servers import ServerProcess
from harness.speech import pcm16_to_float, transcribe, word_error_rate

pytestmark = [pytest.mark.model, pytest.mark.tools("ffmpeg")]

TEXT = "The weather is lovely today. We walked along the river after lunch."
LONG_TEXT = ("The weather is lovely today. We walked along the river after lunch. "
             "Then we sat on a bench and watched the boats. Later the wind picked up. "
             "We went home before the rain started.")
TIMEOUT_S = 120
MAX_WER = 0.2
MODEL_RATE_HZ = 24000


@pytest.fixture(scope="module")
def client(http_server: ServerProcess) -> Iterator[openai.OpenAI]:
    # No retries: a refused request must surface as its exception, not be tried again.
    with openai.OpenAI(base_url=f"{http_server.http_url}/v1", api_key="unused",
                       timeout=TIMEOUT_S, max_retries=0) as sdk:
        yield sdk


def decode(data: bytes, response_format: str) -> bytes:
    """16-bit mono PCM at 24 kHz, decoded by ffmpeg (not the service's encoders)."""
    raw = ["-f", "s16le", "-ar", str(MODEL_RATE_HZ), "-ac", "1"] if response_format == "pcm" \
        else []
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", *raw, "-i", "pipe:0", "-f", "s16le", "-ar",
         str(MODEL_RATE_HZ), "-ac", "1", "pipe:1"],
        input=data, capture_output=True, check=True, timeout=TIMEOUT_S)
    assert decoded.stderr == b"", decoded.stderr.decode()
    return decoded.stdout


@pytest.mark.parametrize("response_format", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_response_format_says_the_text(client: openai.OpenAI,
                                             response_format: str) -> None:
    response = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT,
                                          response_format=response_format)  # type: ignore[arg-type]
    samples = pcm16_to_float(decode(response.content, response_format))
    assert 2.0 < len(samples) / MODEL_RATE_HZ < 10.0
    heard = transcribe(samples, MODEL_RATE_HZ)
    assert word_error_rate(TEXT, heard) <= MAX_WER, heard


def test_streaming_response_starts_before_the_synthesis_ends(client: openai.OpenAI) -> None:
    started = time.monotonic()
    arrivals: list[tuple[float, int]] = []
    with client.audio.speech.with_streaming_response.create(
            model="kokoro", voice="af_bella", input=LONG_TEXT, response_format="pcm") as response:
        assert response.headers["content-type"] == "audio/pcm"
        for chunk in response.iter_bytes():
            arrivals.append((time.monotonic() - started, len(chunk)))
    first_s, last_s = arrivals[0][0], arrivals[-1][0]
    audio_s = sum(size for _, size in arrivals) / 2 / MODEL_RATE_HZ
    # Five sentences take seconds to synthesize: the first must arrive well before the last.
    assert first_s < 0.5 * last_s, arrivals
    assert audio_s > 8.0


def test_sse_events_carry_the_audio(client: openai.OpenAI) -> None:
    events = []
    with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="af_bella", input=TEXT, response_format="pcm",
            stream_format="sse") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    types = [event["type"] for event in events]
    assert types[-1] == "speech.audio.done"
    assert set(types[:-1]) == {"speech.audio.delta"} and len(types) >= 3
    assert events[-1]["usage"]["input_tokens"] > 0
    pcm = b"".join(base64.b64decode(event["audio"]) for event in events[:-1])
    heard = transcribe(pcm16_to_float(pcm), MODEL_RATE_HZ)
    assert word_error_rate(TEXT, heard) <= MAX_WER, heard


@pytest.mark.parametrize(("fields", "param", "words"), [
    ({"voice": "nobody"}, "voice", "unknown voice"),
    ({"input": ""}, "input", "empty"),
    ({"input": "x" * 5001}, "input", "at most 5000"),
    ({"speed": 4.0}, "speed", "outside [0.5, 2.0]"),
    ({"response_format": "ogg"}, "response_format", "use one of mp3, opus, aac"),
    ({"model": "whisper-1"}, "model", "unknown model"),
])
def test_bad_requests_raise_bad_request_error(client: openai.OpenAI, fields: dict[str, object],
                                              param: str, words: str) -> None:
    request: dict[str, object] = {"model": "tts-1", "voice": "alloy", "input": "Hello.",
                                  **fields}
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.speech.create(**request)  # type: ignore[arg-type]
    assert raised.value.status_code == 400
    assert raised.value.param == param  # type: ignore[attr-defined]
    assert words in raised.value.message


def test_voices_and_models_are_listed(client: openai.OpenAI,
                                      http_server: ServerProcess) -> None:
    assert {model.id for model in client.models.list()} >= {"tts-1", "kokoro"}
    voices = client.get("/audio/voices", cast_to=object)
    assert isinstance(voices, dict)
    assert len(voices["voices"]) == 54
    bella = next(voice for voice in voices["voices"] if voice["id"] == "af_bella")
    assert bella == {"id": "af_bella", "name": "af_bella", "language": "en-US",
                     "gender": "female", "blend": ""}
    assert voices["openai_voices"]["alloy"] == "af_alloy"
