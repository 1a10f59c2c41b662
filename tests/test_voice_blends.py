"""Voice blends and pronunciation overrides: units, and a server started with both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest

from harness.servers import ServerProcess, start_server
from harness.speech import pcm16_to_float, transcribe
from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_service.model.blends import (
    Blend,
    BlendError,
    blend_voices,
    metadata_entry,
    model_with_speakers,
    parse_blend,
    parse_blends,
    write_voices,
)
from tts_service.model.voices import Gender, describe

NAMES = ["af_bella", "af_sky", "am_adam", "bf_emma"]
BUILTIN = [describe(name, sid) for sid, name in enumerate(NAMES)]
STEP_TIMEOUT_S = 120


def test_weights_are_scaled_to_sum_to_one() -> None:
    blend = parse_blend(" mix = af_bella:3 + af_sky:1 ", NAMES)
    assert blend == Blend("mix", (("af_bella", 0.75), ("af_sky", 0.25)))
    assert blend.recipe == "af_bella:0.75+af_sky:0.25"


@pytest.mark.parametrize(("spec", "message"), [
    ("mix", "has no recipe"),
    ("mix=", "has no recipe"),
    ("af_sky=af_bella:1", "'af_sky' is already a built-in voice"),
    ("bad name=af_bella:1", "the name 'bad name' must be"),
    ("mix=af_bella", "needs a positive weight"),
    ("mix=af_bella:0", "needs a positive weight"),
    ("mix=af_bella:-1+af_sky:2", "needs a positive weight"),
    ("mix=af_bella:nan", "needs a positive weight"),
    ("mix=af_bella:x", "needs a positive weight"),
    ("mix=af_bela:1", "unknown voice 'af_bela' (did you mean af_bella"),
    ("mix=af_bella:1+af_bella:2", "names 'af_bella' twice"),
])
def test_bad_specs_say_what_to_fix(spec: str, message: str) -> None:
    with pytest.raises(BlendError) as caught:
        parse_blend(spec, NAMES)
    assert message in str(caught.value)
    assert spec in str(caught.value)


def test_unknown_voice_says_how_to_list_voices() -> None:
    with pytest.raises(BlendError, match=r"ListVoices \(or `tts-grpc-client --list-voices`\)"):
        parse_blend("mix=zz_nobody:1", NAMES)


def test_two_blends_may_not_share_a_name() -> None:
    with pytest.raises(BlendError, match="'mix' are defined more than once"):
        parse_blends(["mix=af_bella:1", "mix=af_sky:1"], NAMES)


def test_blend_voices_follow_the_builtin_ones() -> None:
    blends = parse_blends(["girls=af_bella:1+af_sky:1", "duo=af_bella:1+am_adam:1",
                           "atlantic=af_sky:1+bf_emma:1"], NAMES)
    girls, duo, atlantic = blend_voices(blends, BUILTIN)
    assert [girls.speaker_id, duo.speaker_id, atlantic.speaker_id] == [4, 5, 6]
    assert (girls.gender, girls.language_code) == (Gender.FEMALE, "en-US")
    assert girls.blend == "af_bella:0.5+af_sky:0.5"
    assert duo.gender == Gender.NEUTRAL
    # Mixed accents take the first voice's.
    assert atlantic.language_code == "en-US"


def test_voices_file_gets_one_weighted_average_table_per_blend(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tables = rng.standard_normal((len(NAMES), 510, 1, 256)).astype("<f4")
    source = tmp_path / "voices.bin"
    tables.tofile(source)
    blends = parse_blends(["mix=af_bella:0.6+am_adam:0.4", "sky=af_sky:1"], NAMES)
    voices = write_voices(source, BUILTIN, blends, tmp_path / "out.bin")
    assert [v.name for v in voices] == ["mix", "sky"]
    written = np.fromfile(tmp_path / "out.bin", dtype="<f4").reshape(-1, 510, 1, 256)
    assert len(written) == len(NAMES) + 2
    np.testing.assert_array_equal(written[:4], tables)
    np.testing.assert_allclose(written[4], 0.6 * tables[0] + 0.4 * tables[2], atol=1e-6)
    np.testing.assert_array_equal(written[5], tables[1])


def test_a_voices_file_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "voices.bin"
    np.zeros(7, "<f4").tofile(source)
    with pytest.raises(BlendError, match="does not hold 4 equal voice tables"):
        write_voices(source, BUILTIN, [], tmp_path / "out.bin")


def _tiny_model(path: Path) -> None:
    model = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    onnx.helper.set_model_props(model, {"n_speakers": "54", "voice": "en-us"})
    onnx.save(model, path)


def test_appended_metadata_entry_overrides_the_speaker_count(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    _tiny_model(source)
    with model_with_speakers(source, 57, tmp_path) as patched:
        data = patched.read_bytes()
    assert data == source.read_bytes() + metadata_entry("n_speakers", "57")
    # The ONNX parser sees both entries; onnxruntime keeps the last value of a key.
    props = [(p.key, p.value) for p in onnx.load_from_string(data).metadata_props]
    assert props[-1] == ("n_speakers", "57")
    assert dict(props)["n_speakers"] == "57"


def test_metadata_entry_encodes_long_values() -> None:
    value = ",".join(["af_bella"] * 40)  # > 127 bytes: multi-byte length varints
    model = onnx.ModelProto.FromString(metadata_entry("speaker_names", value))
    assert [(p.key, p.value) for p in model.metadata_props] == [("speaker_names", value)]


# ---- a real server with a blend and pronunciation overrides ---------------------------------

BLENDS = "bella_sky=af_bella:0.6+af_sky:0.4,sky_copy=af_sky:1,duo=af_bella:1+am_adam:1"
# "cat" said as "dog" (misaki's phonemes for dog), a new word, and a respelling.
OVERRIDES = "# test overrides\ncat d ˈ ɔ ɡ\nzorblax zˈɔɹblæks\nsofa = banana\n"
SENTENCE = "The weather is lovely today."


@pytest.fixture(scope="module")
def blend_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    overrides = tmp_path_factory.mktemp("lexicon") / "overrides.txt"
    overrides.write_text(OVERRIDES, encoding="utf-8")
    running = start_server("--voice-blends", BLENDS, "--lexicon-overrides", str(overrides))
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.fixture(scope="module")
async def blend_stub(blend_server: ServerProcess
                     ) -> AsyncIterator[tts_pb2_grpc.TextToSpeechServiceStub]:
    async with grpc.aio.insecure_channel(blend_server.address) as channel:
        yield tts_pb2_grpc.TextToSpeechServiceStub(channel)


async def _pcm(stub: tts_pb2_grpc.TextToSpeechServiceStub, text: str, voice: str) -> np.ndarray:
    request = tts_pb2.SynthesizeRequest(text=text,
                                        config=tts_pb2.SynthesisConfig(voice=voice,
                                                                       encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE))
    response = await asyncio.wait_for(stub.Synthesize(request), STEP_TIMEOUT_S)
    return pcm16_to_float(response.audio)


@pytest.mark.model
async def test_list_voices_shows_the_blends(
        blend_stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    response = await blend_stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=10)
    voices = {voice.name: voice for voice in response.voices}
    assert len(voices) == 54 + 3
    mix = voices["bella_sky"]
    assert mix.blend == "af_bella:0.6+af_sky:0.4"
    assert (mix.language_code, mix.gender) == ("en-US", tts_pb2.VOICE_GENDER_FEMALE)
    assert voices["duo"].gender == tts_pb2.VOICE_GENDER_NEUTRAL
    assert voices["af_bella"].blend == ""


@pytest.mark.model
async def test_a_blend_speaks_with_its_own_style(
        blend_stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    sky, copy, bella, mix = [await _pcm(blend_stub, SENTENCE, voice)
                             for voice in ("af_sky", "sky_copy", "af_bella", "bella_sky")]
    # A one-voice blend is that voice's table exactly: proof the engine reads the appended
    # tables by speaker id rather than falling back to speaker 0.
    np.testing.assert_array_equal(copy, sky)
    assert not (len(mix) == len(sky) and np.array_equal(mix, sky))
    assert not (len(mix) == len(bella) and np.array_equal(mix, bella))
    heard = transcribe(mix, 24000).split()
    assert {"weather", "lovely", "today"} <= set(heard), heard


@pytest.mark.model
async def test_a_request_may_mix_a_blend_read_from_the_engines_voices_file(
        blend_stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    # sky_copy's table is af_sky's, appended after the built-in ones: mixed with af_bella,
    # either gives the same table, and both mixes are spoken by af_bella's speaker.
    with_blend = await _pcm(blend_stub, SENTENCE, "sky_copy+af_bella")
    with_voice = await _pcm(blend_stub, SENTENCE, "af_sky+af_bella")
    assert np.array_equal(with_blend, with_voice)
    bella = await _pcm(blend_stub, SENTENCE, "af_bella")
    assert not (len(bella) == len(with_blend) and np.array_equal(bella, with_blend))


@pytest.mark.model
async def test_an_override_changes_the_pronunciation(
        blend_stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    heard = transcribe(await _pcm(blend_stub, "The cat is sleeping on the sofa.", "af_bella"),
                       24000).split()
    assert "dog" in heard and "cat" not in heard, heard


@pytest.mark.model
async def test_a_respelling_changes_what_is_said(
        blend_stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    for normalize in (True, False):
        request = tts_pb2.SynthesizeRequest(text="The dog is sleeping on the Sofa today.",
                                            config=tts_pb2.SynthesisConfig(encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
                                                                           normalize_text=normalize))
        response = await asyncio.wait_for(blend_stub.Synthesize(request), STEP_TIMEOUT_S)
        heard = transcribe(pcm16_to_float(response.audio), 24000).split()
        assert "banana" in heard and "sofa" not in heard, heard


@pytest.mark.model
@pytest.mark.parametrize(("args", "overrides", "message"), [
    ((), "cat d ˈ ɔ ɡ\nbad w ɜ ʀ d\n",
     "line 2: 'bad' uses unknown phoneme symbols 'ʀ'"),
    (("--voice-blends", "mix=af_bella:1+nobody:1"), "", "unknown voice 'nobody'"),
])
def test_bad_configuration_stops_the_server_with_one_clear_line(
        tmp_path: Path, args: tuple[str, ...], overrides: str, message: str) -> None:
    options = list(args)
    if overrides:
        path = tmp_path / "overrides.txt"
        path.write_text(overrides, encoding="utf-8")
        options += ["--lexicon-overrides", str(path)]
    with pytest.raises(RuntimeError) as caught:
        start_server(*options)
    log = str(caught.value)
    assert "server exited with 2" in log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot start: " in errors[0] and message in errors[0], log
    assert "Traceback" not in log
