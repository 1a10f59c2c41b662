"""Each language's sentence rules: its abbreviations end no sentence, its phrases open the cut."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tts_service.calls.live_text import LiveText, TextInput
from tts_service.calls.request import AskedSettings, Limits, build_spec
from tts_service.language import english_normalizer
from tts_service.language.front_end import FrontEnds
from tts_service.language.languages import BY_CODE, LANGUAGES
from tts_service.language.segmenter import Segmenter
from tts_service.language.sentence_rules import (
    ENGLISH_ABBREVIATIONS,
    ENGLISH_RULES,
    SentenceRules,
    rules_for,
)
from tts_service.language.sentences import (
    STREAMING_SPLIT,
    UNARY_SPLIT,
    Piece,
    SplitPolicy,
    split_pieces,
)
from tts_service.model.voices import VoiceCatalog

ROMANCE = ("fr-FR", "es-ES", "it-IT", "pt-BR")


def texts(text: str, code: str, policy: SplitPolicy = UNARY_SPLIT,
          rules: SentenceRules | None = None) -> list[str]:
    pieces = split_pieces(text, policy, rules or rules_for(BY_CODE[code]))
    assert all(text[piece.start:piece.end] == piece.text for piece in pieces)
    return [piece.text for piece in pieces]


@pytest.mark.parametrize(("code", "text", "expected"), [
    ("fr-FR", "M. Dupont et Mme. Leroy voient le Dr. Petit. Ils parlent.",
     ["M. Dupont et Mme. Leroy voient le Dr. Petit.", "Ils parlent."]),
    ("fr-FR", "Mlle. Roux habite av. Foch, cf. la carte. Voilà.",
     ["Mlle. Roux habite av. Foch, cf. la carte.", "Voilà."]),
    ("es-ES", "La Sra. Gómez y el Sr. Ruiz ven a la Dra. Díaz. Luego se van.",
     ["La Sra. Gómez y el Sr. Ruiz ven a la Dra. Díaz.", "Luego se van."]),
    ("es-ES", "Ud. vive en la Avda. Mayor, pág. tres. Adiós.",
     ["Ud. vive en la Avda. Mayor, pág. tres.", "Adiós."]),
    ("it-IT", "Il Sig. Rossi e il Dott. Bianchi vedono il Prof. Neri. Poi partono.",
     ["Il Sig. Rossi e il Dott. Bianchi vedono il Prof. Neri.", "Poi partono."]),
    ("it-IT", "Gent. Sig. Verdi, cfr. la pag. sette. Grazie.",
     ["Gent. Sig. Verdi, cfr. la pag. sette.", "Grazie."]),
    ("pt-BR", "A Sra. Souza e o Sr. Lima visitam a Dra. Costa. Depois saem.",
     ["A Sra. Souza e o Sr. Lima visitam a Dra. Costa.", "Depois saem."]),
    ("pt-BR", "O Prof. Alves mora na Av. Paulista, pág. dez. Tchau.",
     ["O Prof. Alves mora na Av. Paulista, pág. dez.", "Tchau."]),
])
def test_a_languages_own_abbreviations_end_no_sentence(code: str, text: str,
                                                       expected: list[str]) -> None:
    assert texts(text, code) == expected
    # Read by the English rules, as every language was, one of them ends a sentence.
    assert len(texts(text, code, rules=ENGLISH_RULES)) > len(expected)


@pytest.mark.parametrize("code", ROMANCE)
def test_etc_ends_a_sentence_only_before_a_capital(code: str) -> None:
    assert texts("Pan, vino, etc. y sal. Fin.", code) == ["Pan, vino, etc. y sal.", "Fin."]
    assert texts("Pan, vino, etc. Fin.", code) == ["Pan, vino, etc.", "Fin."]


@pytest.mark.parametrize(("code", "text", "expected"), [
    # Before a subordinating conjunction, two fifths of the way in; never after "Mme.".
    ("fr-FR", "Mme. Dubois et M. Martin attendaient le train de nuit pendant que la pluie "
     "tombait sur la vieille gare du village.",
     ["Mme. Dubois et M. Martin attendaient le train de nuit",
      "pendant que la pluie tombait sur la vieille gare du village."]),
    # An elided conjunction ("lorsqu'il") opens a phrase too.
    ("fr-FR", "Mme Leroy attendait ses amis lorsqu'il commença à pleuvoir très fort sur toute "
     "la ville.",
     ["Mme Leroy attendait ses amis",
      "lorsqu'il commença à pleuvoir très fort sur toute la ville."]),
    # A bare "à" before a determiner, as English "to".
    ("fr-FR", "Le pêcheur descendait chaque matin à la mer avec son vieux chien fidèle.",
     ["Le pêcheur descendait chaque matin", "à la mer avec son vieux chien fidèle."]),
    ("es-ES", "La Sra. García y el Dr. López caminaban despacio por el parque mientras los "
     "niños jugaban con la pelota roja.",
     ["La Sra. García y el Dr. López caminaban despacio",
      "por el parque mientras los niños jugaban con la pelota roja."]),
    ("it-IT", "Il Sig. Rossi e il Dott. Bianchi aspettavano il treno mentre la pioggia cadeva "
     "piano sulla vecchia stazione del paese.",
     ["Il Sig. Rossi e il Dott. Bianchi aspettavano il treno",
      "mentre la pioggia cadeva piano sulla vecchia stazione del paese."]),
    ("pt-BR", "A Sra. Souza e o Dr. Lima esperavam o ônibus da manhã enquanto a chuva caía "
     "sobre a velha praça da cidade.",
     ["A Sra. Souza e o Dr. Lima esperavam o ônibus da manhã",
      "enquanto a chuva caía sobre a velha praça da cidade."]),
])
def test_a_long_first_sentence_is_cut_before_its_languages_phrase_opener(
        code: str, text: str, expected: list[str]) -> None:
    assert texts(text, code, STREAMING_SPLIT) == expected
    opener = expected[1].split()[0].replace("\u2019", "'")
    english = ENGLISH_RULES.phrase_openers | ENGLISH_RULES.determined_openers
    assert opener.split("'")[0] not in english
    # The segmenter, fed word by word, cuts it alike.
    segmenter = Segmenter(STREAMING_SPLIT, rules=rules_for(BY_CODE[code]))
    pieces = [piece.text for word in text.split(" ") for piece in segmenter.feed(word + " ", 0)]
    assert pieces + [piece.text for piece in segmenter.flush()] == expected


@pytest.mark.parametrize(("code", "text", "word"), [
    # Spanish "once" is eleven: the English rules cut before it ("Los niños ... | once gatos").
    ("es-ES", "Los niños del pueblo contaron once gatos negros que dormían tranquilos bajo el "
     "sol de la tarde.", "once"),
    # A bare "a" before a verb binds to it ("vamos a pasear").
    ("es-ES", "Los niños del pueblo vamos a pasear tranquilos todos juntos esta tarde de sol.",
     "a"),
    ("it-IT", "Tutti i ragazzi andavano a giocare tranquilli nel cortile fino a tarda sera.", "a"),
    # Words that bind to what comes before: "de", "come", "que", pronouns "se" and "en".
    ("fr-FR", "Le monsieur prenait une tasse de thé bien chaude chaque matin au café.", "de"),
    ("it-IT", "Il ragazzo del paese correva come il vento verso casa ogni sera.", "come"),
    ("es-ES", "Mi hermana mayor piensa que el tren llegará tarde esta noche.", "que"),
    ("pt-BR", "A minha irmã mais nova se levantou cedo e saiu de casa sem fazer barulho.", "se"),
    ("fr-FR", "Les enfants du village en parlent encore tous les soirs après le dîner.", "en"),
])
def test_no_cut_before_an_english_opener_or_a_word_that_binds(code: str, text: str,
                                                              word: str) -> None:
    assert texts(text, code, STREAMING_SPLIT) == [text]
    # The word stands where a cut could be: were it an opener, the text would be cut there.
    rules = rules_for(BY_CODE[code])
    opening = replace(rules, phrase_openers=rules.phrase_openers | {word})
    assert texts(text, code, STREAMING_SPLIT, opening)[1].startswith(word + " ")


@pytest.mark.parametrize("code", ["hi-IN", "ja-JP", "zh-CN"])
def test_hindi_japanese_and_chinese_have_no_phrase_cut_and_no_abbreviations(code: str) -> None:
    rules = rules_for(BY_CODE[code])
    assert not rules.phrase_openers and not rules.determined_openers
    assert not rules.abbreviations and not rules.final_abbreviations
    # Latin words in such a text are not cut at English openers, as they were.
    text = "मेरी बहन स्टेशन के पास काम करती है because पुस्तकालय बहुत बड़ा और सुंदर है।"
    assert texts(text, code, STREAMING_SPLIT) == [text]
    assert len(texts(text, code, STREAMING_SPLIT, ENGLISH_RULES)) == 2


def test_hindi_sentences_end_at_a_danda() -> None:
    text = "आज मौसम बहुत अच्छा है। मेरी बहन काम करती है॥ क्या आप आएँगे? हाँ।"
    expected = ["आज मौसम बहुत अच्छा है।", "मेरी बहन काम करती है॥", "क्या आप आएँगे?", "हाँ।"]
    assert texts(text, "hi-IN") == expected
    segmenter = Segmenter(rules=rules_for(BY_CODE["hi-IN"]))
    assert [piece.text for piece in segmenter.feed(text[:24], 0.0)] == expected[:1]
    # After the max wait, text ending at a danda is cut there.
    segmenter = Segmenter(max_wait_s=1.0)
    segmenter.feed("मेरी बहन काम करती है।", 0.0)
    assert [piece.text for piece in segmenter.expire(1.0)] == ["मेरी बहन काम करती है।"]


def test_every_language_has_rules_and_english_keeps_its_own() -> None:
    assert all(isinstance(rules_for(language), SentenceRules) for language in LANGUAGES)
    assert rules_for(BY_CODE["en-US"]) is rules_for(BY_CODE["en-GB"]) is ENGLISH_RULES
    for code in ROMANCE:
        openers = rules_for(BY_CODE[code]).phrase_openers
        # Italian "in" is its own word too.
        assert openers and not openers & ENGLISH_RULES.phrase_openers - {"in"}


def test_english_abbreviations_are_listed_once_for_the_splitter_and_the_normalizer() -> None:
    assert ENGLISH_RULES.abbreviations | ENGLISH_RULES.final_abbreviations == {
        word.lower() for word in ENGLISH_ABBREVIATIONS}
    assert english_normalizer.normalize("Mr. Smith lives on Main St. etc.") == \
        "Mister Smith lives on Main Street et cetera."


# Words of every Romance language's rules (abbreviations, "etc.", openers, elisions, a bare
# "a"/"à" before a determiner or not), so the property runs through each rule.
@settings(max_examples=200, deadline=None)
@given(code=st.sampled_from(ROMANCE), words=st.lists(st.sampled_from(
    ["Mme.", "Sra.", "Sig.", "Dr.", "etc.", "Fin.", "la", "casa", "vieja", "pendant", "mientras",
     "lorsqu'il", "nell'acqua", "à", "a", "un", "parlare", "enquanto", "por", "3", "fin.",
     "sí,", "\n"]), min_size=6, max_size=40),
    cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_text_in_pieces_is_cut_as_the_whole_text_by_its_languages_rules(
        code: str, words: list[str], cuts: list[int]) -> None:
    text = " ".join(words)
    rules = rules_for(BY_CODE[code])
    positions = sorted({cut % (len(text) + 1) for cut in cuts})
    segmenter = Segmenter(STREAMING_SPLIT, rules=rules)
    pieces = []
    for start, end in zip([0, *positions], [*positions, len(text)], strict=True):
        pieces += segmenter.feed(text[start:end], 0.0)
    pieces += segmenter.flush()
    assert pieces == split_pieces(text, STREAMING_SPLIT, rules)


SPANISH = "La Sra. García llegó. Luego se fue."


def test_a_request_is_cut_by_the_rules_of_its_language() -> None:
    def pieces(voice: str, language: str = "") -> list[str]:
        spec = build_spec(SPANISH, AskedSettings(voice=voice, language=language),
                          streaming=True, catalog=VoiceCatalog.from_names([voice]),
                          front_ends=FrontEnds(), limits=Limits(max_text_chars=5000),
                          model_rate_hz=24000,
                          list_voices="ListVoices")
        return [piece.text for piece in spec.pieces]

    assert pieces("ef_dora") == pieces("af_bella", "es-ES") == [
        "La Sra. García llegó.", "Luego se fue."]
    assert pieces("af_bella") == ["La Sra.", "García llegó.", "Luego se fue."]


async def test_streamed_text_is_cut_by_the_rules_of_its_language() -> None:
    async def inputs() -> AsyncIterator[TextInput]:
        for word in SPANISH.split(" "):
            yield TextInput(word + " ")

    live = LiveText(inputs(), Limits(max_text_chars=100),
                    rules=FrontEnds().by_code("es-ES").rules)
    assert [piece.text async for piece in live.items() if isinstance(piece, Piece)] == [
        "La Sra. García llegó.", "Luego se fue."]
