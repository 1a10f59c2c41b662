"""The SSML reader alone (language/ssml.py): what each element becomes, where in the source
each run stands, the readings of say-as and the IPA mapping, and every bad or hostile
document refused with a message naming its place."""

from __future__ import annotations

import pytest

from tts_service.language.languages import BY_CODE, ENGLISH
from tts_service.language.ssml import (
    MAX_DEPTH,
    Document,
    MarkPoint,
    Pause,
    Speech,
    SsmlError,
    Style,
    ipa_to_kokoro,
    parse,
    read_as,
)

from .fakes import SYMBOLS

FRENCH = BY_CODE["fr-FR"]


def _parse(source: str, max_chars: int = 100_000) -> Document:
    return parse(source, ENGLISH, symbols=SYMBOLS, max_source_chars=max_chars,
                 check_voice=lambda name: None if name in ("af_bella", "am_adam")
                 else f"unknown voice {name!r}")


def _said(document: Document) -> list[str]:
    return ["".join(run.text for run in item.runs) if isinstance(item, Speech)
            else repr(item) for item in document.items]


def test_plain_text_is_one_exact_run_whose_offsets_are_the_source() -> None:
    source = "<speak>Hello\n  there.</speak>"
    [speech] = _parse(source).items
    assert isinstance(speech, Speech) and speech.style == Style(ENGLISH)
    [run] = speech.runs
    assert (run.text, run.exact) == ("Hello   there.", True)  # white space folded one for one
    assert source[run.start:run.end] == "Hello\n  there."


def test_offsets_are_code_points_not_bytes() -> None:
    source = "<speak>Café é <sub alias='World Wide Web'>WWW</sub>!</speak>"
    runs = [run for item in _parse(source).items if isinstance(item, Speech)
            for run in item.runs]
    alias = next(run for run in runs if run.text == "World Wide Web")
    assert source[alias.start:alias.end] == "WWW" and not alias.exact


def test_breaks_and_marks_split_the_speech_in_source_order() -> None:
    source = ('<speak>One.<break time="800ms"/>Two.<mark name="m"/><break strength="weak"/>'
              'Three.<break time="0s"/></speak>')
    items = _parse(source).items
    assert [type(item).__name__ for item in items] == [
        "Speech", "Pause", "Speech", "MarkPoint", "Pause", "Speech"]
    assert isinstance(items[1], Pause) and items[1].seconds == 0.8
    assert isinstance(items[4], Pause) and items[4].seconds == 0.25
    mark = items[3]
    assert isinstance(mark, MarkPoint) and source[mark.at:].startswith('<mark name="m"')


def test_styles_nest_and_compose() -> None:
    items = _parse('<speak><prosody rate="80%" volume="+2dB">A <emphasis level="strong">'
                   'B</emphasis></prosody> <lang xml:lang="fr-FR"><voice name="am_adam">C'
                   '</voice></lang></speak>').items
    styles = [item.style for item in items if isinstance(item, Speech)]
    assert styles[0] == Style(ENGLISH, rate=0.8, volume_db=2.0)
    assert (styles[1].rate, styles[1].volume_db) == (pytest.approx(0.72), 5.0)
    assert styles[-1] == Style(FRENCH, voice="am_adam")


def test_paragraphs_and_sentences_end_sentences() -> None:
    assert "".join(_said(_parse("<speak><p><s>One</s><s>Two</s></p></speak>"))) == \
        "\n\nOne\n\nTwo\n\n"


def test_say_as_phoneme_and_sub_runs_stand_for_their_element_and_are_not_normalized() -> None:
    source = ('<speak><say-as interpret-as="characters">CAT</say-as> <phoneme alphabet="ipa" '
              'ph="bəˈnænə">sofa</phoneme></speak>')
    runs = [run for item in _parse(source).items if isinstance(item, Speech)
            for run in item.runs]
    spelled, _, sofa = runs
    assert (spelled.text, spelled.normalize, source[spelled.start:spelled.end]) == \
        ("C A T", False, "CAT")
    assert (sofa.text, sofa.phonemes, sofa.exact) == ("sofa", "bənˈænə", True)


@pytest.mark.parametrize(("kind", "written", "language", "date_format", "reading"), [
    ("cardinal", "1,234", "en-US", "", "one thousand, two hundred and thirty-four"),
    ("ordinal", "3rd", "en-US", "", "third"),
    ("digits", "2024", "en-US", "", "two zero two four"),
    ("telephone", "555-1234", "en-US", "", "five five five, one two three four"),
    ("fraction", "3/4", "en-US", "", "three quarters"),
    ("date", "2024-03-05", "en-US", "", "March fifth, twenty twenty four"),
    ("date", "3/5", "en-US", "md", "March fifth"),
    ("time", "2:30pm", "en-US", "", "two thirty p m"),
    ("currency", "$42.01", "en-US", "", "forty two dollars one cent"),
    ("cardinal", "21", "fr-FR", "", "vingt et un"),
    ("ordinal", "3", "fr-FR", "", "troisième"),
    ("date", "05/03/2024", "fr-FR", "dmy", "cinq mars deux mille vingt-quatre"),
    ("currency", "5 €", "fr-FR", "", "cinq euros"),
    ("cardinal", "21", "es-ES", "", "veintiuno"),
])
def test_say_as_readings(kind: str, written: str, language: str, date_format: str,
                         reading: str) -> None:
    assert read_as(kind, written, BY_CODE[language], date_format) == reading


@pytest.mark.parametrize(("kind", "written", "language", "words"), [
    ("cardinal", "abc", "en-US", "not a whole number"),
    ("date", "2024-13-45", "en-US", "not a date"),
    ("fraction", "3/4", "fr-FR", "English only"),
    ("cardinal", "5", "hi-IN", "Hindi"),
])
def test_say_as_refuses_what_does_not_fit(kind: str, written: str, language: str,
                                          words: str) -> None:
    with pytest.raises(ValueError, match=words):
        read_as(kind, written, BY_CODE[language])


def test_ipa_becomes_misakis_symbols() -> None:
    assert ipa_to_kokoro("təˈmeɪtoʊ", ENGLISH) == "təmˈAtO"
    assert ipa_to_kokoro("ˈd͡ʒɪf", ENGLISH) == "ʤˈɪf"
    assert ipa_to_kokoro("ˈtəʊ", BY_CODE["en-GB"]) == "tˈQ"


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY a "aaaaaaaaaa">'
          '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><speak>&b;</speak>')


@pytest.mark.parametrize(("source", "words"), [
    (LAUGHS, "DTD"),
    ('<!DOCTYPE speak [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>', "DTD"),
    ("<speak>" + "<p>" * 10_000 + "x", f"deeper than {MAX_DEPTH}"),
    ("<speak>" + " " * 200_000 + "</speak>", "at most 100000"),
    ("<speak><p>Hello</speak>", "line 1, column"),
    ("<speak>Hi</speak> trailing", "malformed XML"),
    ("<voice>Hi</voice>", "must be a <speak>"),
    ("<speak><audio src='x'/></speak>", "unknown element <audio>"),
    ("<speak><break duration='1s'/></speak>", "no attribute 'duration'"),
    ('<speak><break time="-1s"/></speak>', "<break time='-1s'>"),
    ('<speak><break time="11s"/></speak>', "0 to 10 s"),
    ('<speak><lang xml:lang="tlh">Qapla</lang></speak>', "<lang xml:lang>"),
    ('<speak><voice name="zz_nobody">Hi</voice></speak>', "unknown voice 'zz_nobody'"),
    ('<speak><phoneme alphabet="ipa" ph="ʘ">x</phoneme></speak>', "cannot say ʘ"),
    ('<speak><prosody pitch="+2st">Hi</prosody></speak>', "no pitch control"),
    ('<speak><prosody rate="400%">Hi</prosody></speak>', "outside [0.5, 2.0]"),
    ('<speak><say-as interpret-as="cardinal"><sub alias="x">1</sub></say-as></speak>',
     "holds text only"),
    ('<speak><mark/>Hi</speak>', "needs a name"),
])
def test_bad_documents_are_refused_naming_the_place(source: str, words: str) -> None:
    with pytest.raises(SsmlError, match=words.replace("[", r"\[").replace("(", r"\(")):
        _parse(source)
