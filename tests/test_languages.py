"""Languages without the model: codes, each language's phonemes, normalization, the codebook
that carries phonemes to the engine, and config.language_code reaching the engine."""

from __future__ import annotations

import functools
from pathlib import Path

import httpx2
import pytest

from harness import whisper
from harness.servers import free_port
from tts_api.v1 import tts_pb2
from tts_service.audio.word_timing import PieceTimer, SpokenWord
from tts_service.calls.request import AskedSettings, build_settings
from tts_service.errors import InvalidRequest
from tts_service.language.front_end import FrontEnds
from tts_service.language.g2p import Phonemizer
from tts_service.language.languages import BY_CODE, ENGLISH, LANGUAGES, UnknownLanguage, resolve
from tts_service.language.normalizers import normalize
from tts_service.language.segmenter import Segmenter
from tts_service.language.sentences import UNARY_SPLIT, SplitPolicy, split_pieces
from tts_service.model.voices import VoiceCatalog
from tts_service.synthesis.engine import Codebook, split_runs

from .fakes import TIMEOUT_S, fake_server


@pytest.mark.parametrize(("written", "code"), [
    ("fr-FR", "fr-FR"), ("FR-fr", "fr-FR"), ("fr_FR", "fr-FR"), ("fr", "fr-FR"),
    ("en", "en-US"), ("en-gb", "en-GB"), ("pt", "pt-BR"), ("zh", "zh-CN"), ("j", "ja-JP"),
])
def test_a_language_may_be_written_several_ways(written: str, code: str) -> None:
    assert resolve(written).code == code


@pytest.mark.parametrize(("written", "says"), [
    ("de-DE", "not spoken by this server"), ("fr-CA", "not spoken"), ("", "not a BCP-47"),
    ("fr FR", "not a BCP-47"), ("français", "not a BCP-47"),
])
def test_unknown_or_malformed_languages_are_refused_with_the_list(written: str,
                                                                 says: str) -> None:
    with pytest.raises(UnknownLanguage) as refused:
        resolve(written)
    assert says in str(refused.value)
    assert all(language.code in str(refused.value) for language in LANGUAGES)


CATALOG = VoiceCatalog.from_names(["af_bella", "ff_siwis", "jf_alpha", "xx_unknown"])
FRONT_ENDS = FrontEnds()  # nothing loads until a text is phonemized


def _settings(voice: str, language: str = "") -> str:
    return build_settings(AskedSettings(voice=voice, language=language), streaming=False,
                          catalog=CATALOG, front_ends=FRONT_ENDS, model_rate_hz=24000,
                          list_voices="ListVoices").front_end.language.code


def test_a_voice_reads_its_own_language_unless_told_otherwise() -> None:
    assert _settings("af_bella") == "en-US"
    assert _settings("ff_siwis") == "fr-FR"
    assert _settings("jf_alpha") == "ja-JP"
    assert _settings("xx_unknown") == "en-US"  # a voice of no known language reads English
    assert _settings("ff_siwis", "en-GB") == "en-GB"
    assert _settings("af_bella", "es") == "es-ES"
    with pytest.raises(InvalidRequest) as refused:
        _settings("af_bella", "xx-YY")
    assert refused.value.field == "language_code"


@functools.cache
def _phonemizer() -> Phonemizer:
    return Phonemizer({"kokoro": "kˈOkəɹO"})


@pytest.mark.parametrize(("language", "text", "phonemes"), [
    # misaki's lexicon, with spaCy's tags choosing the heteronym: past tense "read" is ɹˈɛd,
    # the noun "record" ɹˈɛkəɹd, the verb ɹəkˈɔɹd (espeak-ng says ri:d for the first).
    ("en-US", "I read it yesterday.", "ˌI ɹˈɛd ɪt jˈɛstəɹdˌA."),
    ("en-US", "Record the record.", "ɹəkˈɔɹd ðə ɹˈɛkəɹd."),
    ("en-GB", "The weather.", "ðə wˈɛðə."),  # British: no r at the end
    # An operator's phoneme override wins over the lexicon.
    ("en-US", "Kokoro speaks.", "kˈOkəɹO spˈiks."),
    ("es-ES", "Hola, amigo.", "ˈola, amˈiɣo."),
    ("fr-FR", "Bonjour.", "bɔ̃ʒˈuʁ."),
    ("it-IT", "Ciao.", "ʧˈao."),
    ("pt-BR", "Obrigado.", "ˌobriɡˈadʊ."),
    # Japanese kanji are read (espeak-ng's Japanese skips them), Chinese through pinyin.
    ("ja-JP", "東京", "toːkʲoː"),
    ("zh-CN", "你好", "ni↓xau↓"),
])
def test_each_language_has_its_own_phonemes(language: str, text: str, phonemes: str) -> None:
    assert _phonemizer()(text, BY_CODE[language]) == phonemes


def test_unknown_english_words_are_read_by_espeak_rather_than_dropped() -> None:
    spoken = _phonemizer()("Zorblax gRPC.", ENGLISH)
    assert len(spoken.split()) == 2 and all(len(word) > 3 for word in spoken.split()), spoken


def test_hindi_is_espeak_ngs_hindi() -> None:
    """Whisper base cannot judge Hindi (it writes Urdu script), so its phonemes are checked:
    espeak-ng's Hindi voice, not an English reading of the letters."""
    from phonemizer.backend import EspeakBackend

    text = "नमस्ते, आप कैसे हैं?"
    spoken = _phonemizer()(text, BY_CODE["hi-IN"])

    def espeak(voice: str) -> str:
        backend = EspeakBackend(language=voice, preserve_punctuation=True, with_stress=True)
        return str(backend.phonemize([text])[0]).strip()

    assert spoken == espeak("hi")
    assert spoken != espeak("en-us")


@pytest.mark.parametrize(("language", "text", "said"), [
    ("es-ES", "Tengo 3 perros.", "Tengo tres perros."),
    ("es-ES", "Cuesta 5,50 €.", "Cuesta cinco euros con cincuenta céntimos."),
    ("es-ES", "Un 20 % más.", "Un veinte por ciento más."),
    ("fr-FR", "Il a 21 ans et 3,05 kg.", "Il a vingt et un ans et trois virgule zéro cinq kg."),
    ("fr-FR", "1 234 personnes, 12 €.", "mille deux cent trente-quatre personnes, douze euros."),
    ("it-IT", "Il 15/03/2024.", "Il quindici marzo duemilaventiquattro."),
    ("pt-BR", "Custa R$ 10,50.", "Custa dez reais e cinquenta centavos."),
    ("en-US", "I have 3 apples.", "I have three apples."),
    # The Japanese and Chinese front ends read digits themselves; espeak-ng reads Hindi's.
    ("ja-JP", "猫が3匹", "猫が3匹"),
    ("zh-CN", "3只猫", "3只猫"),
    ("hi-IN", "3 किताबें", "3 किताबें"),
])
def test_numbers_are_read_in_the_texts_language(language: str, text: str, said: str) -> None:
    assert normalize(text, BY_CODE[language]) == said


def test_the_codebook_spells_each_symbol_as_one_ideograph(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("; 1\n  16\nh 50\nə 83\n", encoding="utf-8")
    codebook = Codebook(tokens)
    assert codebook.encode("hə h") == "".join(chr(0x4E00 + i) for i in (50, 83, 16, 50))
    assert codebook.encode("h¿") == chr(0x4E00 + 50)  # unknown symbols are left out
    spelled_tokens, lexicon = codebook.write(tmp_path)
    assert spelled_tokens.read_text(encoding="utf-8").splitlines()[1] == f"{chr(0x4E00 + 16)} 16"
    assert f"{chr(0x4E00 + 83)} {chr(0x4E00 + 83)}" in lexicon.read_text(encoding="utf-8")


def test_long_phonemes_are_cut_into_runs_at_sentence_then_word_ends() -> None:
    assert split_runs("ab. cd ef", max_tokens=6) == ["ab.", "cd ef"]
    assert split_runs("ab cd ef", max_tokens=6) == ["ab cd", "ef"]
    assert split_runs("abcdefgh", max_tokens=6) == ["abcdef", "gh"]
    assert split_runs("") == []


def _read_as(text: str, language: str) -> str:
    """The phonemes the language's front end makes of `text`: each language reads "Hello."
    its own way, so they tell which front end made the engine's tokens."""
    return FRONT_ENDS.by_code(language).phonemes(text)


def test_each_language_reads_the_same_word_its_own_way() -> None:
    readings = {code: _read_as("Hello.", code) for code in ("en-US", "en-GB", "fr-FR", "es-ES")}
    assert len(set(readings.values())) == len(readings), readings


async def test_the_requested_language_reaches_the_engine() -> None:
    async with fake_server(engines=1) as served:
        for language_code, voice, expected in [("", "af_bella", "en-US"),
                                               ("fr-FR", "af_bella", "fr-FR"),
                                               ("en-gb", "am_adam", "en-GB")]:
            config = tts_pb2.SynthesisConfig(voice=voice, language_code=language_code)
            await served.stub.Synthesize(tts_pb2.SynthesizeRequest(text="Hello.", config=config),
                                         timeout=TIMEOUT_S)
            assert served.engine.phonemes[-1] == _read_as("Hello.", expected)


def test_chinese_and_japanese_sentences_end_at_their_own_marks_without_spaces() -> None:
    pieces = split_pieces("今天天气很好。我们去公园吧！你呢？", UNARY_SPLIT)
    assert [piece.text for piece in pieces] == ["今天天气很好。", "我们去公园吧！", "你呢？"]
    clauses = split_pieces("今日はとても良い天気なので、公園を散歩します。",
                           SplitPolicy(clause_split_chars=10, min_clause_chars=5))
    assert [piece.text for piece in clauses] == ["今日はとても良い天気なので、",
                                                 "公園を散歩します。"]


def test_streamed_chinese_is_cut_after_the_max_wait_without_a_space() -> None:
    segmenter = Segmenter(SplitPolicy(clause_split_chars=None), max_wait_s=2.0)
    assert segmenter.feed("我的姐姐在火车站", now=0.0) == []
    assert [piece.text for piece in segmenter.expire(now=2.5)] == ["我的姐姐在火车站"]
    assert [piece.text for piece in segmenter.feed("附近工作。", now=3.0)] == ["附近工作。"]


def test_a_chinese_word_is_the_front_ends_word() -> None:
    """Each ideograph is a written word; the alignment joins them into the spoken words
    (jieba's: 我 的 姐姐 在 火车站), whose token counts the engine reports."""
    text = "我的姐姐在火车站。"
    spoken = [SpokenWord(100 * k, 100 * (k + 1), tokens) for k, tokens in
              enumerate([3, 3, 8, 3, 12])]
    spans = PieceTimer(text, text).take(spoken, last=True)
    assert [text[span.start:span.end] for span in spans] == ["我", "的", "姐姐", "在", "火车站"]


async def test_the_http_front_takes_language_or_kokoro_fastapis_lang_code() -> None:
    async with fake_server(engines=1, http_port=free_port()) as served:
        url = f"http://127.0.0.1:{served.running.http_port}/v1/audio/speech"
        async with httpx2.AsyncClient(timeout=TIMEOUT_S) as client:
            for extra, expected in [({}, "en-US"), ({"language": "es-ES"}, "es-ES"),
                                    ({"lang_code": "f"}, "fr-FR")]:
                response = await client.post(url, json={"model": "tts-1", "voice": "af_bella",
                                                         "input": "Hello.", **extra})
                assert response.status_code == 200, response.text
                assert served.engine.phonemes[-1] == _read_as("Hello.", expected)
            refused = await client.post(url, json={"model": "tts-1", "voice": "af_bella",
                                                   "input": "Hello.", "lang_code": "de"})
            assert refused.status_code == 400
            assert "lang_code" in refused.text and "fr-FR" in refused.text


def _spoken(*token_counts: int) -> list[SpokenWord]:
    return [SpokenWord(100 * k, 100 * (k + 1), tokens) for k, tokens in enumerate(token_counts)]


def test_a_four_character_chinese_word_is_one_span() -> None:
    text = "今天天气很好。"  # jieba: 今天天气 很 好
    spans = PieceTimer(text, text).take(_spoken(18, 4, 4), last=True)
    assert [text[span.start:span.end] for span in spans] == ["今天天气", "很", "好"]


def test_a_hindi_word_keeps_its_vowel_signs() -> None:
    """Devanagari's vowel signs and virama are combining marks, not \\w: still the word's."""
    text = "बहुत अच्छा है।"
    spans = PieceTimer(text, text).take(_spoken(5, 5, 2), last=True)
    assert [text[span.start:span.end] for span in spans] == ["बहुत", "अच्छा", "है"]


def test_whisper_halves_of_the_wrong_size_are_refused(tmp_path: Path) -> None:
    halves = [tmp_path / "part1", tmp_path / "part2"]
    for number, folder in enumerate(halves, start=1):
        folder.mkdir()
        (folder / f"model.bin.part{number}").write_bytes(b"x" * 10)
    with pytest.raises(SystemExit, match="expected 145217532"):
        whisper.assemble(tmp_path / "model", halves)
    assert not (tmp_path / "model" / "model.bin").exists()


def test_a_voice_listing_and_a_request_read_a_language_code_alike() -> None:
    """One matcher: every spelling a request may use lists that language's voices."""
    catalog = VoiceCatalog.from_names(["af_bella", "am_adam", "bf_emma", "ff_siwis"])
    american = [voice.name for voice in catalog.list("en-US")]
    assert american == ["af_bella", "am_adam"]
    for spelled in ("en_US", "EN-us", "a"):
        assert [voice.name for voice in catalog.list(spelled)] == american
        assert resolve(spelled).code == "en-US"
    assert [voice.name for voice in catalog.list("en")] == ["af_bella", "am_adam", "bf_emma"]
    assert [voice.name for voice in catalog.list("fr")] == ["ff_siwis"]
    assert catalog.list("de-DE") == [] and len(catalog.list("")) == 4


def test_front_ends_load_their_g2p_on_first_use_unless_preloaded() -> None:
    front_ends = FrontEnds(preload=[BY_CODE["en-US"]])
    assert front_ends.loaded() == [BY_CODE["en-US"]]
    assert front_ends.by_code("it-IT").utterance("Ciao.").phonemes == "ʧˈao."
    assert front_ends.loaded() == [BY_CODE["en-US"], BY_CODE["it-IT"]]
