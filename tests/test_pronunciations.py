"""A request's own pronunciations: checked once where the call enters (calls/request.py), applied
by that call's front end only, and refused with the front's INVALID_ARGUMENT naming the entry
on every front (gRPC, HTTP, WebSocket, Wyoming), each through its real client with a fake
engine; the server keeps serving after each refusal. Last, the real model heard by a
recognizer: a request's pronunciation changes what is said, for that request only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx2
import openai
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from harness.servers import free_port
from harness.speech import pcm16_to_float, transcribe
from harness.websocket_client import speak, url_of
from harness.wyoming_client import read_reply
from tts_api.v1 import tts_pb2, tts_pb2_grpc
from tts_client.cli import build_parser
from tts_service.calls.request import (
    MAX_PRONUNCIATIONS,
    AskedPronunciation,
    check_pronunciations,
    pronunciations_from_json,
)
from tts_service.errors import InvalidRequest
from tts_service.language.front_end import FrontEnds
from tts_service.language.languages import BY_CODE, ENGLISH
from tts_service.language.lexicon import Overrides

from .fakes import SYMBOLS, TIMEOUT_S, FakeServer, fake_server, openai_client
from .test_wyoming_logic import connect

TEXT = "Read the docs about GIF."
JIF = {"word": "GIF", "respelling": "jif"}
TOO_MANY = [{"word": f"w{n}", "respelling": "jif"} for n in range(MAX_PRONUNCIATIONS + 1)]
# Each bad list, the field it is refused under (the front's prefix aside) and words of the
# message that say what to fix.
BAD_LISTS: list[tuple[list[dict[str, str]], str, str, str]] = [
    (TOO_MANY, "", "pronunciations", f"at most {MAX_PRONUNCIATIONS}"),
    ([JIF, {"word": "gif", "phonemes": "ʤˈɪʘ"}], "", "pronunciations[1].phonemes",
     "unknown phoneme symbols 'ʘ'"),
    ([{"word": "", "respelling": "jif"}], "", "pronunciations[0].word", "the word is empty"),
    ([{"word": "wifi", "phonemes": "wˈIfI"}], "es-ES", "pronunciations[0].phonemes",
     "English only"),
]


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[FakeServer]:
    # A Spanish voice too: Wyoming reads Spanish only with a voice of its own.
    async with fake_server(("af_bella", "ef_dora"), http_port=free_port(),
                           wyoming_port=free_port(), max_queued_requests=4) as server:
        yield server


# The check and the front end ------------------------------------------------------------------

def _checked(*entries: AskedPronunciation, language: str = "en-US") -> Overrides:
    front_end = FrontEnds(symbols=SYMBOLS)[BY_CODE[language]]
    return check_pronunciations(entries, front_end, SYMBOLS)


def test_entries_are_checked_into_overrides_and_a_later_entry_for_a_word_wins() -> None:
    checked = _checked(AskedPronunciation("GIF", phonemes="ɡ ˈ ɪ f"),
                       AskedPronunciation("nginx", respelling="engine x"),
                       AskedPronunciation("gif", phonemes="ʤˈɪf"))
    assert checked == Overrides(phonemes={"gif": ("ʤ", "ˈ", "ɪ", "f")},
                                respellings={"nginx": "engine x"})


@pytest.mark.parametrize(("entry", "field", "words"), [
    (AskedPronunciation("two words", respelling="x"), "pronunciations[0].word",
     "more than one word"),
    (AskedPronunciation("42", respelling="forty"), "pronunciations[0].word", "no letters"),
    (AskedPronunciation("w" * 65, respelling="x"), "pronunciations[0].word", "at most 64"),
    (AskedPronunciation("gif"), "pronunciations[0]", "either a respelling or phonemes"),
    (AskedPronunciation("gif", "jif", "ʤˈɪf"), "pronunciations[0]", "either"),
    (AskedPronunciation("gif", respelling="ʤɪf"), "pronunciations[0].respelling",
     "plain letters"),
    (AskedPronunciation("gif", respelling="j" * 201), "pronunciations[0].respelling",
     "at most 200"),
])
def test_a_bad_entry_is_refused_naming_it(entry: AskedPronunciation, field: str,
                                          words: str) -> None:
    with pytest.raises(InvalidRequest, match=words) as refused:
        _checked(entry)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_unknown_symbols_list_the_allowed_ones() -> None:
    with pytest.raises(InvalidRequest, match=r"allowed symbols \(tokens.txt\): .*ʤ"):
        _checked(AskedPronunciation("gif", phonemes="ʘ"))


def test_a_respelling_works_in_any_language_and_phonemes_in_english_only() -> None:
    assert _checked(AskedPronunciation("wifi", respelling="uaifai"),
                    language="es-ES").respellings == {"wifi": "uaifai"}
    for code in ("fr-FR", "ja-JP", "zh-CN"):
        with pytest.raises(InvalidRequest, match=f"English only .*{code}"):
            _checked(AskedPronunciation("wifi", phonemes="wˈIfI"), language=code)


@pytest.mark.parametrize(("value", "field"), [
    ("gif=jif", "pronunciations"),
    (["gif"], "pronunciations[0]"),
    ([JIF, {"word": 7, "respelling": "x"}], "pronunciations[1].word"),
])
def test_json_of_the_wrong_shape_names_the_entry(value: object, field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        pronunciations_from_json(value)
    assert refused.value.field == field


def test_the_calls_pronunciations_apply_to_its_front_end_only_and_win() -> None:
    english = FrontEnds(Overrides(respellings={"gif": "giff", "sql": "sequel"}),
                        symbols=SYMBOLS)[ENGLISH]
    assert english.spoken("GIF and SQL", normalized=False) == "giff and sequel"
    call = english.with_pronunciations(Overrides(respellings={"gif": "jif"}))
    assert call.spoken("GIF and SQL", normalized=False) == "jif and sequel"
    # A word the call gives phonemes for reaches the G2P as written, not respelled.
    phonemes = english.with_pronunciations(Overrides(phonemes={"gif": tuple("ʤˈɪf")}))
    assert phonemes.spoken("GIF", normalized=False) == "GIF"
    assert english.spoken("GIF and SQL", normalized=False) == "giff and sequel"
    assert english.with_pronunciations(Overrides()) is english


# gRPC ---------------------------------------------------------------------------------------

def _config(entries: list[dict[str, str]], language: str = "") -> tts_pb2.SynthesisConfig:
    return tts_pb2.SynthesisConfig(
        voice="af_bella", language_code=language,
        pronunciations=[tts_pb2.Pronunciation(**entry) for entry in entries])


async def _grpc_heard(served: FakeServer, config: tts_pb2.SynthesisConfig) -> str:
    before = len(served.engine.calls)
    await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text=TEXT, config=config),
                                 timeout=TIMEOUT_S)
    return served.engine.calls[before]


async def test_grpc_a_pronunciation_holds_for_its_request_only(served: FakeServer) -> None:
    assert await _grpc_heard(served, _config([JIF])) == "Read the docs about jif."
    assert await _grpc_heard(served, _config([])) == TEXT
    before = len(served.engine.phonemes)
    await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text=TEXT, config=_config(
        [{"word": "gif", "phonemes": "ʤ ˈ ɪ f"}])), timeout=TIMEOUT_S)
    assert served.engine.phonemes[before].endswith("ʤˈɪf.")


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found


@pytest.mark.parametrize(("entries", "language", "field", "words"), BAD_LISTS)
async def test_grpc_refuses_a_bad_list_naming_the_entry(
        served: FakeServer, entries: list[dict[str, str]], language: str, field: str,
        words: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.Synthesize(tts_pb2.SynthesizeRequest(
            text=TEXT, config=_config(entries, language)), timeout=TIMEOUT_S)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in _violations(refused.value)[f"config.{field}"]
    assert await _grpc_heard(served, _config([])) == TEXT  # still serving


async def test_grpc_streaming_takes_them_in_its_first_message(served: FakeServer) -> None:
    async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
        yield tts_pb2.StreamingSynthesizeRequest(config=_config([JIF]))
        yield tts_pb2.StreamingSynthesizeRequest(text=TEXT)

    before = len(served.engine.calls)
    async for _ in served.stub.StreamingSynthesize(requests(), timeout=TIMEOUT_S):
        pass
    assert served.engine.calls[before:] == ["Read the docs about jif."]


# HTTP ---------------------------------------------------------------------------------------


async def test_http_a_pronunciation_holds_for_its_request_only(served: FakeServer) -> None:
    async with openai_client(served) as client:
        before = len(served.engine.calls)
        await client.audio.speech.create(model="tts-1", voice="af_bella", input=TEXT,
                                         extra_body={"pronunciations": [JIF]})
        await client.audio.speech.create(model="tts-1", voice="af_bella", input=TEXT)
    assert served.engine.calls[before:] == ["Read the docs about jif.", TEXT]


async def test_http_captioned_speech_takes_them_too(served: FakeServer) -> None:
    # The fake engine cannot time words, so the route refuses; the list is checked first.
    async with httpx2.AsyncClient(timeout=TIMEOUT_S) as http:
        captioned = await http.post(
            f"{served.http_url.removesuffix('/v1')}/dev/captioned_speech",
            json={"model": "tts-1", "voice": "af_bella", "input": TEXT,
                  "pronunciations": [{"word": "", "respelling": "jif"}]})
    assert captioned.status_code == 400
    assert captioned.json()["error"]["param"] == "pronunciations[0].word"


@pytest.mark.parametrize(("entries", "language", "field", "words"), [
    *BAD_LISTS,
    ([{"word": "gif", "respelling": 5}], "", "pronunciations[0].respelling", "wrong type"),
    ([{"respelling": "jif"}], "", "pronunciations[0].word", "is missing"),
])
async def test_http_refuses_a_bad_list_with_a_400_naming_the_entry(
        served: FakeServer, entries: list[dict[str, Any]], language: str, field: str,
        words: str) -> None:
    async with openai_client(served) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.speech.create(
                model="tts-1", voice="af_bella", input=TEXT,
                extra_body={"pronunciations": entries, "language": language})
        assert refused.value.param == field  # type: ignore[attr-defined]
        assert words in refused.value.message
        await client.audio.speech.create(model="tts-1", voice="af_bella", input=TEXT)


# WebSocket ----------------------------------------------------------------------------------

async def test_websocket_takes_them_in_its_config_message(served: FakeServer) -> None:
    before = len(served.engine.calls)
    reply = await speak(url_of(served.http_url), [
        {"type": "config", "voice": "af_bella", "pronunciations": [JIF]},
        {"type": "text", "text": TEXT}, {"type": "end"}])
    assert reply.types[-1] == "done"
    assert served.engine.calls[before:] == ["Read the docs about jif."]


@pytest.mark.parametrize(("entries", "language", "field", "words"), BAD_LISTS)
async def test_websocket_refuses_a_bad_list_with_4400_naming_the_entry(
        served: FakeServer, entries: list[dict[str, str]], language: str, field: str,
        words: str) -> None:
    reply = await speak(url_of(served.http_url), [
        {"type": "config", "voice": "af_bella", "language": language,
         "pronunciations": entries}, {"type": "text", "text": TEXT}, {"type": "end"}])
    assert reply.close_code == 4400
    error = reply.messages[-1]
    assert error["param"] == field and words in error["message"]


# Wyoming ------------------------------------------------------------------------------------

def _synthesize(entries: list[dict[str, str]], language: str = "") -> Any:
    event = Synthesize(text=TEXT).event()
    # This server's extension key: the event's data beside Wyoming's own fields.
    event.data["pronunciations"] = entries
    if language:
        event.data["voice"] = {"language": language}
    return event


async def test_wyoming_takes_them_as_an_extension_of_the_event(served: FakeServer) -> None:
    before = len(served.engine.calls)
    async with connect(served) as client:
        await client.write_event(_synthesize([JIF]))
        assert (await read_reply(client, "audio-stop")).errors == []
        await client.write_event(Synthesize(text=TEXT).event())
        await read_reply(client, "audio-stop")
        start = SynthesizeStart().event()
        start.data["pronunciations"] = [JIF]
        await client.write_event(start)
        await client.write_event(Synthesize(text=TEXT).event())  # Home Assistant's replay
        await client.write_event(SynthesizeChunk(text=TEXT).event())
        await client.write_event(SynthesizeStop().event())
        await read_reply(client, "synthesize-stopped")
    assert served.engine.calls[before:] == ["Read the docs about jif.", TEXT,
                                            "Read the docs about jif."]


@pytest.mark.parametrize(("entries", "language", "field", "words"), BAD_LISTS)
async def test_wyoming_refuses_a_bad_list_with_an_error_event_naming_the_entry(
        served: FakeServer, entries: list[dict[str, str]], language: str, field: str,
        words: str) -> None:
    async with connect(served) as client:
        await client.write_event(_synthesize(entries, language))
        failed = await read_reply(client, "audio-stop")
        assert [error.code for error in failed.errors] == ["INVALID_ARGUMENT"]
        assert field in failed.errors[0].text and words in failed.errors[0].text
        await client.write_event(Synthesize(text=TEXT).event())  # the connection lives on
        assert (await read_reply(client, "audio-stop")).errors == []


# The command-line client --------------------------------------------------------------------

def test_the_cli_says_respellings_and_phonemes_between_slashes() -> None:
    args = build_parser().parse_args(["Hi", "--say", "GIF=jif", "--say", "gif=/ʤˈɪf/"])
    assert args.say == [tts_pb2.Pronunciation(word="GIF", respelling="jif"),
                        tts_pb2.Pronunciation(word="gif", phonemes="ʤˈɪf")]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["Hi", "--say", "GIF"])


# The real model, heard ----------------------------------------------------------------------

SOFA = "The cat is sleeping on the sofa."


async def _heard(stub: tts_pb2_grpc.TextToSpeechServiceStub, *entries: dict[str, str]
                 ) -> list[str]:
    response = await stub.Synthesize(tts_pb2.SynthesizeRequest(
        text=SOFA, config=tts_pb2.SynthesisConfig(
            encoding=tts_pb2.AUDIO_ENCODING_PCM_S16LE,
            pronunciations=[tts_pb2.Pronunciation(**entry) for entry in entries])),
        timeout=120)
    return transcribe(pcm16_to_float(response.audio), 24000).split()


@pytest.mark.model
async def test_a_pronunciation_is_heard_in_its_request_only(
        stub: tts_pb2_grpc.TextToSpeechServiceStub) -> None:
    respelled = await _heard(stub, {"word": "sofa", "respelling": "banana"})
    assert "banana" in respelled and "sofa" not in respelled, respelled
    # The next request, the same text without it, is read as before (not from the cache).
    plain = await _heard(stub)
    assert "sofa" in plain and "banana" not in plain, plain
    spoken = await _heard(stub, {"word": "cat", "phonemes": "d ˈ ɔ ɡ"})
    assert "dog" in spoken and "cat" not in spoken, spoken
