"""Every language heard back (real model, real server, Whisper base): a native voice reads its
own language without being told which, and a voice told the wrong language is heard badly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile

from harness import whisper
from harness.languages import BY_LANGUAGE, SAMPLES
from harness.servers import MODEL_DIR, REPO, ServerProcess, require_durations
from harness.speech import pcm16_to_float
from tts_api.v1 import tts_pb2, tts_pb2_grpc

from .test_client import run_client

pytestmark = pytest.mark.model

STEP_TIMEOUT_S = 120
# Measured here (BENCHMARKS.md, Languages): 0.00 to 0.17 for every language read by its own
# front end, 0.54 to 1.06 when read as American English, as the service did before.
MAX_ERROR = 0.25
MIN_WRONG_LANGUAGE_ERROR = 0.5


async def _say(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str, voice: str,
               language_code: str = "") -> np.ndarray:
    config = tts_pb2.SynthesisConfig(voice=voice, language_code=language_code,
                                     encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE)
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text=text, config=config),
                                     timeout=STEP_TIMEOUT_S)
    return pcm16_to_float(response.audio)


HEARD = [sample for sample in SAMPLES if sample.language not in ("en-US", "hi-IN")]


@pytest.mark.parametrize("sample", HEARD, ids=[sample.language for sample in HEARD])
async def test_a_native_voice_is_heard_in_its_own_language(
        stub: tts_pb2_grpc.TextToSpeechServiceStub, sample) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(sample.sentences)
    heard = whisper.hear(await _say(stub, text, sample.voice), 24000, sample.whisper)
    assert whisper.error_rate(text, heard, sample.whisper) <= MAX_ERROR, heard


async def test_a_voice_told_the_wrong_language_is_heard_badly(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    """The control: French read as American English, as every text was read before languages
    existed. If the recognizer heard this well, the test above would prove nothing."""
    french = BY_LANGUAGE["fr-FR"]
    text = " ".join(french.sentences)
    heard = whisper.hear(await _say(stub, text, french.voice, "en-US"), 24000, "fr")
    assert whisper.error_rate(text, heard, "fr") >= MIN_WRONG_LANGUAGE_ERROR, heard


def test_any_voice_reads_the_language_it_is_told(server: ServerProcess,
                                                  tmp_path: Path) -> None:
    """An American voice reads Spanish when told to, here through tts-grpc-client --language."""
    text = BY_LANGUAGE["es-ES"].sentences[0]
    output = tmp_path / "spanish.wav"
    result = run_client("--server", server.address, "--voice", "af_heart", "--language",
                        "es-ES", "--output", str(output), text)
    assert result.returncode == 0, result.stderr
    samples, rate = soundfile.read(output, dtype="float32")
    heard = whisper.hear(samples, rate, "es")
    assert whisper.error_rate(text, heard, "es") <= MAX_ERROR, heard


async def test_hindi_is_spoken_whole(stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    """Whisper base cannot judge Hindi (tests/test_languages.py checks its phonemes against
    espeak-ng's Hindi); here every sentence must come out as speech of its length."""
    hindi = BY_LANGUAGE["hi-IN"]
    for sentence in hindi.sentences:
        samples = await _say(stub, sentence, hindi.voice)
        assert 2.5 < len(samples) / 24000 < 8.0
        assert float(np.sqrt(np.mean(samples**2))) > 0.01, "audio is silent"


# Run in a fresh interpreter: the runtime (the shim that records each model run) is chosen
# once per process, before sherpa_onnx is imported.
_TOKENS_PER_WORD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from tts_service.synthesis import onnx_runtime
    onnx_runtime.activate("pypi", onnx_runtime.DEFAULT_SHIM_PATH)
    from tts_service.synthesis.engine import ModelFiles
    from tts_service.language.front_end import FrontEnds
    from tts_service.model.preparation import check_options, prepare
    files = ModelFiles(Path(sys.argv[1]))
    engine = prepare(files, [1], check_options(files)).engines[0]
    front_ends = FrontEnds()
    found = []
    for code, text in json.loads(sys.argv[2]):
        words = []
        utterance = front_ends.by_code(code).utterance(text, normalized=False)
        engine.speak(utterance, 0, 1.0,
                     lambda s: words.extend(w.tokens for w in s.words) or True, timed=True)
        found.append(words)
    print(json.dumps(found))
    """
)


def test_the_model_reads_exactly_the_front_ends_phonemes() -> None:
    """The codebook carries each language's phonemes to the model unchanged: the shim's record
    of the run has, word by word, as many tokens as the front end's phonemes have symbols."""
    require_durations()
    from tts_service.language.g2p import Phonemizer
    from tts_service.language.languages import BY_CODE

    cases = [("en-US", "Hello world."), ("fr-FR", "Bonjour tout le monde."),
             ("zh-CN", "你好世界。")]
    phonemizer = Phonemizer()
    expected = [[len(word.strip(".,")) for word in phonemizer(text, BY_CODE[code]).split()]
                for code, text in cases]
    result = subprocess.run([sys.executable, "-c", _TOKENS_PER_WORD, str(MODEL_DIR),
                             json.dumps(cases)], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == expected


async def test_chinese_word_timings_are_the_front_ends_words(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    """Chinese writes no spaces: a timed word is one of jieba's words, in whole characters."""
    require_durations()
    text = BY_LANGUAGE["zh-CN"].sentences[1]
    config = tts_pb2.SynthesisConfig(voice="zf_xiaobei", enable_word_timings=True)
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(text=text, config=config),
                                     timeout=STEP_TIMEOUT_S)
    words = [text[w.text_span.start_offset:w.text_span.end_offset] for w in response.words]
    assert words == ["我", "的", "姐姐", "在", "火车站", "附近", "的", "图书馆", "工作"]
    starts = [w.start_seconds for w in response.words]
    assert starts == sorted(starts) and response.words[-1].end_seconds <= \
        response.audio_duration_seconds + 0.05
