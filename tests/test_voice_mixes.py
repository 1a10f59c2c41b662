"""Voices mixed per request (`af_bella(2)+af_sky(1)`): the formula checked and written in one
normal form, the mixed table computed once (model/mixes.py, VoiceCatalog.resolve), passed to
the engine and kept apart in the audio cache, refused with the front's INVALID_ARGUMENT naming
the voice on every front (gRPC, HTTP, WebSocket, Wyoming), each through its real client with a
fake engine. Last, the real model: the shim's style override is exact and belongs to the thread
that set it, a mix sounds between its voices and the same for the same formula, end to end
through gRPC and OpenAI's SDK."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import openai
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from wyoming.tts import Synthesize, SynthesizeVoice

from harness.servers import ServerProcess, free_port
from harness.speech import pcm16_to_float, transcribe
from harness.websocket_client import speak, url_of
from harness.wyoming_client import read_reply
from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.errors import InvalidRequest, Unsupported
from tts_service.model.mixes import (
    MAX_MIX_VOICES,
    STYLE_WIDTH,
    StyleTables,
    parse_mix,
    weighted_average,
)
from tts_service.model.voices import Gender, VoiceCatalog

from .fakes import TIMEOUT_S, FakeEngine, FakeServer, fake_server, openai_client, style_tables
from .test_calls import _fields, _request_lines
from .test_onnx_runtime import _python
from .test_pronunciations import _violations
from .test_wyoming_logic import connect

# Voices of the fake server: two American English, one British, one Japanese.
NAMES = ["af_bella", "af_sky", "bf_emma", "jf_alpha"]
ROWS = 6
TABLES = np.random.default_rng(7).standard_normal((len(NAMES), ROWS, STYLE_WIDTH)).astype(
    np.float32)
TEXT = "Good morning."
MIX = "af_bella(2)+af_sky(1)"
# Each bad voice, with words of the message that say what to fix.
BAD_VOICES: list[tuple[str, str]] = [
    ("af_bela(2)+af_sky(1)", "unknown voice 'af_bela' (did you mean af_bella"),
    ("af_bella(0)+af_sky", "needs a positive weight"),
    ("af_bella(-1)+af_sky", "needs a positive weight"),
    ("af_bella(nan)+af_sky", "needs a positive weight"),
    ("+".join(["af_bella"] * 50), f"50 voices; a mix takes at most {MAX_MIX_VOICES}"),
    ("af_bella++af_sky", "a '+' with no voice beside it"),
    ("af_bella+jf_alpha", "mixes voices of 2 languages (en-US, ja-JP): give the request a "
     "language"),
]


def _catalog() -> VoiceCatalog:
    return VoiceCatalog.from_names(NAMES, styles=StyleTables(TABLES))


# The formula ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("formula", "normal"), [
    ("af_bella(2)+af_sky(1)", "af_bella(2)+af_sky(1)"),
    ("af_bella+af_sky", "af_bella(1)+af_sky(1)"),
    ("af_sky+af_bella", "af_bella(1)+af_sky(1)"),
    ("af_bella(1)+af_sky(1)", "af_bella(1)+af_sky(1)"),
    (" af_sky ( 1 ) +  af_bella( 2 ) ", "af_bella(2)+af_sky(1)"),
    ("af_bella(4)+af_sky(2)", "af_bella(2)+af_sky(1)"),
    ("af_bella(0.6)+af_sky(0.4)", "af_bella(1.5)+af_sky(1)"),
    ("af_bella(0.3)+af_sky(0.7)", "af_bella(1)+af_sky(2.333)"),
    ("af_bella(1e+6)+af_sky(1)", "af_bella(1000000)+af_sky(1)"),
    ("af_bella(2)+af_sky+bf_emma(3)", "af_bella(2)+af_sky(1)+bf_emma(3)"),
])
def test_a_formula_has_one_normal_form(formula: str, normal: str) -> None:
    mix = parse_mix(formula, NAMES)
    assert mix.formula == normal
    assert parse_mix(mix.formula, NAMES) == mix  # the normal form says exactly what is mixed


@pytest.mark.parametrize(("formula", "words"), [
    *BAD_VOICES[:-1],
    ("af_bella(inf)+af_sky", "needs a positive weight"),
    ("af_bella(x)+af_sky", "needs a positive weight"),
    ("af_bella()+af_sky", "needs a positive weight"),
    ("af_bella+", "a '+' with no voice beside it"),
    ("+af_sky", "a '+' with no voice beside it"),
    ("(2)+af_sky", "'(2)' is not VOICE or VOICE(WEIGHT)"),
    ("af_bella(2+af_sky", "is not VOICE or VOICE(WEIGHT)"),
    ("af_bella(1)+af_bella(2)", "names 'af_bella' twice"),
    ("nobody+af_sky", "unknown voice 'nobody'; the voice list shows the voices"),
])
def test_a_bad_formula_is_refused_naming_the_voice(formula: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_mix(formula, NAMES)
    assert refused.value.field == "voice"
    assert words in str(refused.value)
    assert formula in str(refused.value)


def test_the_mixed_table_is_the_weighted_average() -> None:
    mixed = weighted_average([TABLES[0], TABLES[1]], [2.0, 1.0])
    np.testing.assert_allclose(mixed, (2 * TABLES[0] + TABLES[1]) / 3, rtol=1e-6)
    assert mixed.dtype == np.float32
    # Alone, a voice's table comes back bit for bit.
    assert np.array_equal(weighted_average([TABLES[2]], [3.0]), TABLES[2])


# The catalogue: resolve -----------------------------------------------------------------------

def test_resolve_gives_a_mix_its_normal_name_table_and_heaviest_speaker() -> None:
    catalog = _catalog()
    voice = catalog.resolve(" af_sky(1) + af_bella(2) ")
    assert voice.name == MIX
    assert voice.speaker_id == NAMES.index("af_bella")  # the heaviest voice's
    assert (voice.language_code, voice.gender) == ("en-US", Gender.FEMALE)
    assert voice.style is not None and voice.style.name == MIX
    np.testing.assert_allclose(voice.style.table, (2 * TABLES[0] + TABLES[1]) / 3, rtol=1e-6)
    assert not voice.style.table.flags.writeable  # shared by every request naming it


def test_the_same_formula_gets_the_same_table_object() -> None:
    catalog = _catalog()
    first = catalog.resolve("af_bella(1)+af_sky(1)").style
    again = catalog.resolve("af_sky+af_bella").style
    assert first is not None and again is not None
    assert again.table is first.table
    other = catalog.resolve(MIX).style
    assert other is not None and other.table is not first.table


def test_the_mixed_tables_kept_are_bounded_least_recently_used_first_out() -> None:
    styles = StyleTables(TABLES, max_mixes=2)
    first = styles.mixed("a", [0, 1], [1, 1])
    second = styles.mixed("b", [0, 2], [1, 1])
    assert styles.mixed("a", [0, 1], [1, 1]) is first  # used again: the newest
    styles.mixed("c", [1, 2], [1, 1])  # "b" goes
    assert len(styles) == 2
    assert styles.mixed("a", [0, 1], [1, 1]) is first
    again = styles.mixed("b", [0, 2], [1, 1])  # mixed anew, "c" goes
    assert again is not second and np.array_equal(again, second) and len(styles) == 2


def test_resolve_takes_voices_and_blends_and_a_one_voice_formula_is_that_voice() -> None:
    catalog = _catalog()
    assert catalog.resolve("af_sky") is catalog.get("af_sky")
    assert catalog.resolve("") is catalog.get("af_bella")  # the default
    assert catalog.resolve("af_sky(3)") is catalog.get("af_sky")
    with pytest.raises(InvalidRequest, match=r"unknown voice 'nobody': ListVoices shows the 4 "
                       r"voices; e\.g\. 'af_bella'"):
        catalog.resolve("nobody", list_voices="ListVoices")


def test_a_mix_of_two_languages_needs_the_request_to_give_one() -> None:
    catalog = _catalog()
    with pytest.raises(InvalidRequest, match="mixes voices of 2 languages") as refused:
        catalog.resolve("af_bella+jf_alpha")
    assert refused.value.field == "voice"
    voice = catalog.resolve("jf_alpha(3)+af_bella", language_code="ja")
    # Its accent, when a call must name one, is the heaviest voice's; its gender theirs.
    assert (voice.language_code, voice.gender) == ("ja-JP", Gender.FEMALE)
    # en-US and en-GB are two languages here: the text is read one way or the other.
    with pytest.raises(InvalidRequest, match=r"\(en-GB, en-US\)"):
        catalog.resolve("af_bella+bf_emma")


def test_a_catalogue_without_style_tables_cannot_mix() -> None:
    with pytest.raises(Unsupported, match="no style tables"):
        VoiceCatalog.from_names(NAMES).resolve(MIX)


# The fronts, with a fake engine ---------------------------------------------------------------

@pytest.fixture(scope="module")
async def served() -> AsyncIterator[FakeServer]:
    async with fake_server(tuple(NAMES), http_port=free_port(), wyoming_port=free_port(),
                           max_queued_requests=4, audio_cache_mb=1) as server:
        yield server


def _expected(weights: dict[str, float]) -> np.ndarray:
    """The fake server's tables mixed as its engine should be given them."""
    tables = style_tables(len(NAMES))
    return weighted_average([tables[NAMES.index(name)] for name in weights],
                            list(weights.values()))


async def _synthesize(served: FakeServer, voice: str, text: str = TEXT, language: str = ""
                      ) -> tts_pb2.SynthesizeResponse:
    return await served.stub.Synthesize(tts_pb2.SynthesizeRequest(
        text=text, config=tts_pb2.SynthesisConfig(voice=voice, language_code=language)),
        timeout=TIMEOUT_S)


async def test_grpc_speaks_a_mix_with_its_table_and_names_it(
        served: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tts_service.requests")
    before = len(served.engine.voices)
    response = await _synthesize(served, "af_sky + af_bella(2)", text="A mixed hello.")
    assert response.voice == MIX
    [(speaker_id, table)] = served.engine.voices[before:]
    assert speaker_id == NAMES.index("af_bella")
    assert table is not None
    np.testing.assert_allclose(table, _expected({"af_bella": 2, "af_sky": 1}),
                               rtol=1e-6)
    assert _fields(_request_lines(caplog)[-1])["voice"] == MIX  # the normal form, unquoted
    # Each formula is a voice of its own: the metric counts them all as one, "mix".
    audio_s = served.running.metrics.registry.get_sample_value
    assert (audio_s("tts_audio_seconds_total", {"voice": "mix"}) or 0) > 0
    assert audio_s("tts_audio_seconds_total", {"voice": MIX}) is None


async def test_a_mix_and_its_voices_never_answer_each_other_from_the_cache(
        served: FakeServer) -> None:
    text = "Cached per voice."
    before = len(served.engine.voices)
    for voice in ("af_bella", MIX, "af_bella", "af_sky(1)+af_bella(2)", "af_bella+af_sky"):
        await _synthesize(served, voice, text)
    made = served.engine.voices[before:]
    # Made once each: af_bella, the 2:1 mix, the 1:1 mix; the repeats came from the cache.
    assert [table is None for _, table in made] == [True, False, False]
    assert not np.array_equal(made[1][1], made[2][1])  # type: ignore[arg-type]


async def test_a_mix_of_two_languages_is_read_in_the_language_given(
        served: FakeServer) -> None:
    response = await _synthesize(served, "jf_alpha+af_bella", text="Hello there.",
                                 language="en-US")
    assert response.voice == "af_bella(1)+jf_alpha(1)"
    assert served.engine.calls[-1] == "Hello there."


@pytest.mark.parametrize(("voice", "words"), BAD_VOICES)
async def test_grpc_refuses_a_bad_mix_naming_config_voice(served: FakeServer, voice: str,
                                                          words: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _synthesize(served, voice)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in _violations(refused.value)["config.voice"]
    assert (await _synthesize(served, MIX)).voice == MIX  # still serving



async def test_http_takes_kokoro_fastapis_syntax(served: FakeServer) -> None:
    before = len(served.engine.voices)
    async with openai_client(served) as client:
        # The SDK types `voice` as OpenAI's names; the server takes any voice or formula.
        await client.audio.speech.create(model="tts-1", voice=MIX,  # type: ignore[arg-type]
                                         input="Over HTTP.", response_format="pcm")
    [(speaker_id, table)] = served.engine.voices[before:]
    assert table is not None and speaker_id == NAMES.index("af_bella")


@pytest.mark.parametrize(("voice", "words"), BAD_VOICES)
async def test_http_refuses_a_bad_mix_with_a_400_naming_voice(served: FakeServer, voice: str,
                                                              words: str) -> None:
    async with openai_client(served) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.speech.create(model="tts-1", voice=voice,  # type: ignore[arg-type]
                                             input=TEXT)
    assert refused.value.param == "voice"  # type: ignore[attr-defined]
    assert words in refused.value.message


async def test_websocket_takes_a_mix_in_its_config_message(served: FakeServer) -> None:
    reply = await speak(url_of(served.http_url), [
        {"type": "config", "voice": "af_sky+af_bella(2)"},
        {"type": "text", "text": "Live mix."}, {"type": "end"}])
    assert reply.types[-1] == "done"
    assert reply.messages[0].get("voice") == MIX, reply.messages[0]


@pytest.mark.parametrize(("voice", "words"), BAD_VOICES)
async def test_websocket_refuses_a_bad_mix_with_4400_naming_voice(
        served: FakeServer, voice: str, words: str) -> None:
    reply = await speak(url_of(served.http_url), [
        {"type": "config", "voice": voice}, {"type": "text", "text": TEXT}, {"type": "end"}])
    assert reply.close_code == 4400
    error = reply.messages[-1]
    assert error["param"] == "voice" and words in error["message"]


async def test_wyoming_takes_a_mix_as_the_voice_name(served: FakeServer) -> None:
    before = len(served.engine.voices)
    async with connect(served) as client:
        await client.write_event(Synthesize(text="Home mix.",
                                            voice=SynthesizeVoice(name=MIX)).event())
        assert (await read_reply(client, "audio-stop")).errors == []
    [(_, table)] = served.engine.voices[before:]
    assert table is not None


@pytest.mark.parametrize(("voice", "words"), BAD_VOICES)
async def test_wyoming_refuses_a_bad_mix_with_an_error_event_naming_voice(
        served: FakeServer, voice: str, words: str) -> None:
    async with connect(served) as client:
        await client.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name=voice)).event())
        failed = await read_reply(client, "audio-stop")
        assert [error.code for error in failed.errors] == ["INVALID_ARGUMENT"]
        assert words in failed.errors[0].text
        await client.write_event(Synthesize(text=TEXT).event())  # the connection lives on
        assert (await read_reply(client, "audio-stop")).errors == []


async def test_engines_that_cannot_mix_refuse_a_mix_saying_how_to_enable_it() -> None:
    engine = FakeEngine()
    engine.mixes_voices = False  # as on the bundled runtime
    async with fake_server(tuple(NAMES), engine=engine) as served:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _synthesize(served, MIX)
        assert (await _synthesize(served, "af_sky")).voice == "af_sky"  # one voice still is
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert failure.violations[0].subject == "config.voice"
    assert "--onnxruntime pypi" in failure.violations[0].description
    assert "make shim" in failure.violations[0].description
    assert engine.voices == [(NAMES.index("af_sky"), None)]


# The real model ------------------------------------------------------------------------------

SENTENCE = "The weather is lovely today."
RATE_HZ = 24_000

# One engine (one thread) speaks SENTENCE in af_bella and af_sky, then as af_bella with
# af_sky's own table as the override, on this thread and on another, then a mix twice (by two
# formulas of the same proportions). The override set here reaching a run proves sherpa-onnx
# runs the model on the calling thread; not reaching another thread's run, that it is that
# thread's own.
_SPEAK = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path
    import numpy as np
    from tts_service.synthesis import onnx_runtime
    shim, model_dir, text, out = sys.argv[1:5]
    onnx_runtime.activate("pypi", Path(shim))
    from tts_service.language.front_end import FrontEnds
    from tts_service.language.languages import ENGLISH
    from tts_service.model.preparation import check_options, prepare
    from tts_service.synthesis.engine import ModelFiles
    files = ModelFiles(Path(model_dir))
    model = prepare(files, [1], check_options(files))
    engine, catalog = model.engines[0], model.catalog
    utterance = FrontEnds()[ENGLISH].utterance(text)
    def say(speaker_id, style=None):
        chunks = []
        engine.speak(utterance, speaker_id, 1.0,
                     lambda s: chunks.append(s.samples.copy()) or True, timed=False, style=style)
        return np.concatenate(chunks)
    bella, sky = catalog.get("af_bella").speaker_id, catalog.get("af_sky").speaker_id
    own = np.fromfile(files.voices, dtype="<f4").reshape(len(catalog), -1, 256)[sky].copy()
    spoken = {"bella": say(bella), "sky": say(sky), "bella_as_sky": say(bella, own)}
    onnx_runtime.set_style(own)  # this thread's: engine.speak without a style keeps it
    other = threading.Thread(target=lambda: spoken.update(other_thread=say(bella)))
    other.start()
    other.join()
    spoken["this_thread"] = say(bella)
    onnx_runtime.set_style(None)
    spoken["after_clearing"] = say(bella)
    mix = catalog.resolve("af_bella(1)+af_sky(1)")
    again = catalog.resolve("af_sky+af_bella")
    spoken["mix"] = say(mix.speaker_id, mix.style.table)
    spoken["mix_again"] = say(again.speaker_id, again.style.table)
    np.savez(out, **spoken)
    print(json.dumps({"names": [mix.name, again.name],
                      "same_table": again.style.table is mix.style.table}))
    """
)


@pytest.fixture(scope="module")
def spoken(shim: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("mixes") / "spoken.npz"
    result = _python(_SPEAK, str(shim), str(model_dir), SENTENCE, str(out))
    assert result["names"] == ["af_bella(1)+af_sky(1)"] * 2
    assert result["same_table"]
    with np.load(out) as saved:
        return {name: saved[name] for name in saved.files}


def _mel_filters(n_fft: int, bands: int, top_hz: float = 8000.0) -> np.ndarray:
    """Triangular filters evenly spaced on the mel scale, 0 to `top_hz`."""
    edges_mel = np.linspace(0.0, 2595 * np.log10(1 + top_hz / 700), bands + 2)
    edges_hz = 700 * (10 ** (edges_mel / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE_HZ)
    low, mid, high = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    return np.clip(np.minimum((freqs - low) / (mid - low), (high - freqs) / (high - mid)), 0,
                   None)


def _mean_log_mel(samples: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """The voice's long-term spectrum: the log-mel spectrum averaged over the frames that
    are not silence (timing differs between voices; the timbre is what a mix shares)."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft)[::hop] * np.hanning(n_fft)
    mel = (np.abs(np.fft.rfft(frames, axis=1)) ** 2) @ _mel_filters(n_fft, 64).T
    energy = mel.sum(axis=1)
    return np.asarray(np.log10(mel[energy > energy.max() * 1e-3] + 1e-10).mean(axis=0))


def _distance(one: np.ndarray, other: np.ndarray) -> float:
    return float(np.sqrt(np.mean((_mean_log_mel(one) - _mean_log_mel(other)) ** 2)))


@pytest.mark.model
def test_the_style_override_is_exact_and_the_calling_threads_own(
        spoken: dict[str, np.ndarray]) -> None:
    bella, sky = spoken["bella"], spoken["sky"]
    assert not (len(bella) == len(sky) and np.array_equal(bella, sky))
    # af_bella's speaker with af_sky's table is af_sky, sample for sample.
    assert np.array_equal(spoken["bella_as_sky"], sky)
    assert np.array_equal(spoken["this_thread"], sky)
    assert np.array_equal(spoken["other_thread"], bella)
    assert np.array_equal(spoken["after_clearing"], bella)


@pytest.mark.model
def test_a_mix_sounds_between_its_voices_and_the_same_for_the_same_formula(
        spoken: dict[str, np.ndarray]) -> None:
    bella, sky, mix = spoken["bella"], spoken["sky"], spoken["mix"]
    apart = _distance(bella, sky)
    to_bella, to_sky = _distance(mix, bella), _distance(mix, sky)
    print(f"\nmean log-mel distance: mix-bella {to_bella:.3f}, mix-sky {to_sky:.3f}, "
          f"bella-sky {apart:.3f}")
    # Measured 0.31 and 0.28 against 0.57 for a longer sentence: about halfway.
    assert to_bella < 0.75 * apart and to_sky < 0.75 * apart
    assert np.array_equal(spoken["mix_again"], mix)


@pytest.fixture(scope="module")
async def mix_stub(http_server: ServerProcess
                   ) -> AsyncIterator[tts_pb2_grpc.TextToSpeechServiceStub]:
    async with grpc.aio.insecure_channel(http_server.address) as channel:
        yield tts_pb2_grpc.TextToSpeechServiceStub(channel)


async def _pcm(stub: tts_pb2_grpc.TextToSpeechServiceStub, voice: str
               ) -> tts_pb2.SynthesizeResponse:
    return await stub.Synthesize(tts_pb2.SynthesizeRequest(
        text=SENTENCE, config=tts_pb2.SynthesisConfig(
            voice=voice, encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE)), timeout=120)


@pytest.mark.model
async def test_a_mix_end_to_end_over_grpc_and_openais_sdk(
        http_server: ServerProcess, mix_stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    response = await _pcm(mix_stub, "af_sky + af_bella(2)")
    assert response.voice == MIX
    mixed = pcm16_to_float(response.audio)
    heard = transcribe(mixed, RATE_HZ).split()
    assert {"weather", "lovely", "today"} <= set(heard), heard
    bella = pcm16_to_float((await _pcm(mix_stub, "af_bella")).audio)
    assert not (len(bella) == len(mixed) and np.array_equal(bella, mixed))
    assert any(f"voice={MIX} " in line for line in http_server.log), "".join(http_server.log)
    async with openai.AsyncOpenAI(base_url=f"{http_server.http_url}/v1", api_key="unused",
                                  timeout=120, max_retries=0) as client:
        speech = await client.audio.speech.create(
            model="tts-1", voice=MIX, input=SENTENCE,  # type: ignore[arg-type]
            response_format="pcm")
        assert np.array_equal(pcm16_to_float(speech.content), mixed)
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.speech.create(model="tts-1", voice="af_bella+nobody",  # type: ignore[arg-type]
                                             input=SENTENCE)
    assert refused.value.param == "voice"  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await _pcm(mix_stub, "af_bella(0)+af_sky")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs a positive weight" in _violations(bad.value)["config.voice"]
