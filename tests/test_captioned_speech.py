"""The timed answer of the HTTP front (POST /dev/captioned_speech) on the real model: the
audio with its words in one JSON body, and the same timings as SRT and WebVTT captions."""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import soundfile
import srt
import webvtt

from harness.servers import ServerProcess, require_durations
from harness.speech import transcribe, word_error_rate

pytestmark = pytest.mark.model

TEXT = ("The weather is lovely today. We walked along the river after lunch, and then we sat "
        "on a bench and watched the boats go by.")
TIMEOUT_S = 120
MAX_WER = 0.2


@pytest.fixture(scope="module")
def http(http_server: ServerProcess) -> Iterator[httpx2.Client]:
    require_durations()
    with httpx2.Client(base_url=http_server.http_url, timeout=TIMEOUT_S) as client:
        yield client


def _captioned(http: httpx2.Client, **fields: Any) -> httpx2.Response:
    response = http.post("/dev/captioned_speech", json={
        "model": "kokoro", "voice": "af_bella", "input": TEXT, **fields})
    assert response.status_code == 200, response.text
    return response


def test_the_timed_json_has_the_audio_and_its_words_in_order_within_it(
        http: httpx2.Client) -> None:
    answer = _captioned(http, response_format="wav").json()
    assert answer["audio_format"] == "wav" and answer["sample_rate"] == 24000
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(answer["audio"])),
                                   dtype="float32")
    assert rate == answer["sample_rate"]
    assert answer["duration"] == pytest.approx(len(samples) / rate, abs=0.002)
    words = answer["timestamps"]
    assert [word["word"] for word in words] == TEXT.replace(",", "").replace(".", "").split()
    for word in words:
        assert TEXT[word["text_start"]:word["text_end"]] == word["word"]
        assert 0 <= word["start_time"] < word["end_time"] <= answer["duration"]
    for word, later in itertools.pairwise(words):
        assert word["text_end"] <= later["text_start"]
        assert word["end_time"] <= later["start_time"]
    heard = transcribe(samples, rate)
    assert word_error_rate(TEXT, heard) <= MAX_WER, heard


def _cover_the_words_in_order(cues: list[tuple[float, float, str]],
                              words: list[dict[str, Any]]) -> None:
    """Every word is shown, in order, by a cue on screen while it is said."""
    remaining = iter(words)
    for start_s, end_s, text in cues:
        for shown in text.replace(",", "").replace(".", "").split():
            word = next(remaining)
            assert shown == word["word"]
            assert start_s <= word["start_time"] + 0.001 and word["end_time"] <= end_s + 0.001
    assert next(remaining, None) is None


def test_srt_and_webvtt_captions_cover_the_words_in_order(http: httpx2.Client) -> None:
    words = _captioned(http).json()["timestamps"]
    served_srt = _captioned(http, caption_format="srt")
    assert served_srt.headers["content-type"].startswith("application/x-subrip")
    subtitles = list(srt.parse(served_srt.text))
    assert len(subtitles) >= 2
    _cover_the_words_in_order([(item.start.total_seconds(), item.end.total_seconds(),
                                item.content.replace("\n", " ")) for item in subtitles], words)
    served_vtt = _captioned(http, caption_format="vtt")
    assert served_vtt.headers["content-type"].startswith("text/vtt")
    captions = webvtt.from_buffer(io.StringIO(served_vtt.text)).captions
    assert [caption.text for caption in captions] == [item.content for item in subtitles]
    _cover_the_words_in_order([(caption.start_time.in_milliseconds() / 1000,
                                caption.end_time.in_milliseconds() / 1000,
                                caption.text.replace("\n", " ")) for caption in captions], words)
