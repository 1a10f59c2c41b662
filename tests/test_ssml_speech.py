"""SSML with the real model, heard: a break is a silence of its length at its place, say-as,
sub and phoneme change what the recognizer hears, <lang> is heard in its language by the
multilingual Whisper, <voice> switches the voice (the spans' spectra are each nearer their own
voice's), marks fall in order within the audio, and grpcurl takes SSML through reflection."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from harness import whisper
from harness.servers import ServerProcess
from harness.speech import pcm16_to_float, transcribe, words
from tts_api.v1 import tts_pb2, tts_pb2_grpc

from .test_tools import _grpcurl

pytestmark = pytest.mark.model
RATE_HZ = 24000
QUIET = 0.01  # sherpa-onnx's silence level (audio/pauses.py)


async def _stream(stub: tts_pb2_grpc.TextToSpeechServiceStub, ssml: str,
                  voice: str = "af_bella") -> list[tts_pb2.AudioChunk]:
    return [message.chunk async for message in stub.SynthesizeStream(
        tts_pb2.SynthesizeStreamRequest(ssml=ssml, config=tts_pb2.SynthesisConfig(
            voice=voice, encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE)), timeout=120)]


async def _audio(stub: tts_pb2_grpc.TextToSpeechServiceStub, ssml: str = "", text: str = "",
                 voice: str = "af_bella") -> tts_pb2.SynthesizeResponse:
    return await stub.Synthesize(tts_pb2.SynthesizeRequest(
        ssml=ssml, text=text, config=tts_pb2.SynthesisConfig(
            voice=voice, encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE)), timeout=120)


def _quiet_run(samples: np.ndarray, at: int) -> float:
    """Seconds of the run of quiet samples around sample `at`."""
    quiet = np.abs(samples) <= QUIET
    start = at
    while start > 0 and quiet[start - 1]:
        start -= 1
    end = at
    while end < len(samples) and quiet[end]:
        end += 1
    return (end - start) / RATE_HZ


async def test_a_break_is_a_silence_of_its_length_at_its_place(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    chunks = await _stream(stub, '<speak>The first part ends here.<break time="800ms"/>'
                           'And the second part starts here.</speak>')
    pause = [chunk for chunk in chunks if not chunk.text_span.text]
    assert [round(chunk.audio_duration_seconds, 3) for chunk in pause] == [0.8]
    samples = pcm16_to_float(b"".join(chunk.audio for chunk in chunks))
    middle = round((pause[0].audio_offset_seconds + 0.4) * RATE_HZ)
    assert _quiet_run(samples, middle) == pytest.approx(0.8, abs=0.1)
    before = chunks[chunks.index(pause[0]) - 1]
    assert "first part" in words(transcribe(pcm16_to_float(before.audio), RATE_HZ))


async def test_say_as_sub_and_phoneme_change_what_is_heard(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    def heard(response: tts_pb2.SynthesizeResponse) -> str:
        return words(whisper.hear(pcm16_to_float(response.audio), RATE_HZ, "en"))

    spelled = heard(await _audio(stub, '<speak>The word is <say-as interpret-as="characters">'
                                 'CAT</say-as>.</speak>'))
    assert "cat" not in spelled.split() and "c a t" in spelled, spelled
    alias = heard(await _audio(stub, '<speak>Visit the <sub alias="World Wide Web">WWW</sub>'
                               ' today.</speak>'))
    assert "world wide web" in alias, alias
    banana = heard(await _audio(stub, '<speak>The cat sleeps on the <phoneme alphabet="ipa" '
                                'ph="bəˈnænə">sofa</phoneme>.</speak>'))
    assert "banana" in banana and "sofa" not in banana, banana


async def test_lang_is_heard_in_its_language_inside_english_text(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    french = "Bonjour à tous, nous sommes très heureux de vous voir aujourd'hui."
    chunks = await _stream(stub, '<speak>This is English.<break time="300ms"/>'
                           f'<lang xml:lang="fr-FR">{french}</lang></speak>')
    spans = [chunk for chunk in chunks if "Bonjour" in chunk.text_span.text
             or "heureux" in chunk.text_span.text]
    samples = pcm16_to_float(b"".join(chunk.audio for chunk in spans))
    assert whisper.language_of(samples, RATE_HZ) == "fr"
    assert whisper.error_rate(french, whisper.hear(samples, RATE_HZ, "fr"), "fr-FR") < 0.5


def _spectrum(samples: np.ndarray) -> np.ndarray:
    """The mean log power spectrum of the voiced 40-ms frames."""
    frame = 960
    frames = samples[:len(samples) // frame * frame].reshape(-1, frame)
    voiced = frames[np.sqrt((frames ** 2).mean(axis=1)) > 0.02]
    power = np.abs(np.fft.rfft(voiced * np.hanning(frame), axis=1)) ** 2
    return np.log(power.mean(axis=0) + 1e-9)


async def test_voice_switches_the_voice_for_its_span(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    first, second = "I will read the first part.", "Then I read the second part for you."
    chunks = await _stream(stub, f'<speak>{first} <voice name="am_adam">{second}</voice>'
                           '</speak>')
    spans = {span: pcm16_to_float(b"".join(c.audio for c in chunks if c.text_span.text
                                           and c.text_span.text in span))
             for span in (first, second)}
    bella = _spectrum(pcm16_to_float((await _audio(stub, text=first + " " + second)).audio))
    adam = _spectrum(pcm16_to_float((await _audio(stub, text=first + " " + second,
                                                  voice="am_adam")).audio))
    one, two = _spectrum(spans[first]), _spectrum(spans[second])
    assert np.linalg.norm(one - bella) < np.linalg.norm(one - adam)
    assert np.linalg.norm(two - adam) < np.linalg.norm(two - bella)


async def test_marks_are_in_order_within_the_audio(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    ssml = ('<speak><mark name="a"/>One sentence here. <mark name="b"/>Another sentence '
            'there.<break time="300ms"/><mark name="c"/>The last one.<mark name="d"/></speak>')
    response = await _audio(stub, ssml)
    times = [mark.seconds for mark in response.marks]
    assert [mark.name for mark in response.marks] == ["a", "b", "c", "d"]
    assert times == sorted(times) and times[0] == 0
    assert 0 < times[1] < times[2] < times[3] == pytest.approx(
        response.audio_duration_seconds, abs=1e-3)
    for mark in response.marks:
        assert ssml[mark.offset:].startswith(f'<mark name="{mark.name}"')


async def test_a_mark_inside_a_sentence_is_timed_at_its_word_and_cuts_nothing(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    ssml = '<speak>The quick brown fox <mark name="jump"/>jumps over the lazy dog.</speak>'
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(
        ssml=ssml, config=tts_pb2.SynthesisConfig(encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
                                                  enable_word_timings=True)), timeout=120)
    plain = await _audio(stub, text=text)
    assert response.audio == plain.audio  # one piece, as the text alone
    [mark] = response.marks
    jumps = next(word for word in response.words if word.text_span.text == "jumps")
    assert ssml[jumps.text_span.start_offset:jumps.text_span.end_offset] == "jumps"
    assert mark.seconds == pytest.approx(jumps.start_seconds, abs=1e-3)
    assert ssml[mark.offset:].startswith('<mark name="jump"')


async def test_a_plain_document_is_the_same_audio_as_its_text(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    text = "Plain text, read the same way with or without markup."
    plain = await _audio(stub, text=text)
    assert (await _audio(stub, f"<speak>{text}</speak>")).audio == plain.audio


def test_grpcurl_takes_ssml(server: ServerProcess) -> None:
    done = subprocess.run(
        [_grpcurl(), "-plaintext", "-d", json.dumps({
            "ssml": '<speak>Hello.<mark name="here"/><break time="200ms"/>Goodbye.</speak>',
            "config": {"encoding": "AUDIO_ENCODING_PCM_S16LE"}}),
         server.address, "tts_api.v1.TextToSpeechService/Synthesize"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert [mark["name"] for mark in response["marks"]] == ["here"]
