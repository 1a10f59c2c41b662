"""Tests for reading SSML (language/ssml.py) with its say-as readings (say_as.py) and phoneme
alphabets (ipa.py): pure, no model."""

from __future__ import annotations

import math
import time

import pytest

from tts_service.language import ipa, say_as
from tts_service.language.languages import BY_CODE, ENGLISH, Language
from tts_service.language.ssml import (
    MAX_DEPTH,
    Document,
    Item,
    MarkPoint,
    Pause,
    Run,
    Speech,
    SsmlError,
    Style,
    parse,
)

# Kokoro-82M v1.0's tokens.txt, as lexicon.read_symbols reads it (space included).
SYMBOLS = frozenset(' !"(),.:;?AIOQSTWYabcdefhijklmnopqrstuvwxyzæçðøŋœɐɑɒɔɕɖəɚɛɜɟɡɣɤɥɨɪɯɰɲɳɴ'
                    'ɸɹɻɽɾʁʂʃʈʊʋʌʎʒʔʝʣʤʥʦʧʨʰʲˈˌː\u0303βθχᵊᵝᵻ—“”…→↓↗↘ꭧ')
VOICES = ("af_bella", "ff_siwis")
FRENCH, SPANISH, JAPANESE = BY_CODE["fr-FR"], BY_CODE["es-ES"], BY_CODE["ja-JP"]
BRITISH = BY_CODE["en-GB"]


def check_voice(name: str) -> str | None:
    return None if name in VOICES else f"no voice is named {name!r}"


def read(source: str, max_source_chars: int = 10_000) -> Document:
    return parse(source, ENGLISH, symbols=SYMBOLS, check_voice=check_voice,
                 max_source_chars=max_source_chars)


def speeches(source: str) -> list[Speech]:
    return [item for item in read(source).items if isinstance(item, Speech)]


def runs(source: str) -> list[Run]:
    return [run for speech in speeches(source) for run in speech.runs]


def text(source: str) -> str:
    return "".join(run.text for run in runs(source))


def refusal(source: str, max_source_chars: int = 10_000) -> str:
    with pytest.raises(SsmlError) as raised:
        read(source, max_source_chars)
    return str(raised.value)


# --- Text, offsets, sentences ------------------------------------------------------------------


def test_an_alias_stands_for_the_text_it_replaces_in_the_source() -> None:
    source = '<speak>Hello <sub alias="World Wide Web">WWW</sub>!</speak>'
    hello, alias, bang = runs(source)
    assert alias == Run("World Wide Web", source.index("WWW"), source.index("WWW") + 3,
                        exact=False)
    assert source[hello.start:hello.end] == "Hello " and hello.exact
    assert source[bang.start:bang.end] == "!"


def test_white_space_folds_one_character_for_one_so_plain_text_stays_exact() -> None:
    source = "<speak>One\r\n\ttwo\nthree  four</speak>"
    (run,) = runs(source)
    assert run.text == "One   two three  four"
    assert run.exact and len(run.text) == run.end - run.start
    assert source[run.start:run.end] == "One\r\n\ttwo\nthree  four"


def test_offsets_are_code_points_of_the_source_not_bytes() -> None:
    source = "<speak>Café 🎉 <sub alias='x'>naïve</sub> ünd</speak>"
    first, alias, last = runs(source)
    assert source[first.start:first.end] == "Café 🎉 "
    assert source[alias.start:alias.end] == "naïve"
    assert source[last.start:last.end] == " ünd"


def test_a_reference_reads_as_its_character_and_stands_for_the_whole_reference() -> None:
    source = "<speak>AT&amp;T caf&#233;</speak>"
    assert [(run.text, source[run.start:run.end], run.exact) for run in runs(source)] == [
        ("AT", "AT", True), ("&", "&amp;", False), ("T caf", "T caf", True),
        ("é", "&#233;", False)]


def test_cdata_is_text_and_comments_and_processing_instructions_are_not_spoken() -> None:
    source = "<speak>a<![CDATA[ <b> & ]]>c<!-- not said --><?app not said?>d</speak>"
    assert text(source) == "a <b> & cd"
    assert all(source[run.start:run.end] == run.text for run in runs(source))


def test_paragraphs_and_sentences_end_with_a_line_break_the_splitter_cuts_at() -> None:
    source = "<speak><p><s>One.</s><s>Two</s></p><p>Three</p> four</speak>"
    assert text(source) == "One.\nTwo\nThree\n four"
    breaks = [run for run in runs(source) if run.text == "\n"]
    assert all(run.start == run.end and not run.exact for run in breaks)
    assert [source[run.start:run.start + 4] for run in breaks] == ["</s>", "</s>", "</p>"]


def test_a_change_of_style_starts_a_new_speech_and_equal_styles_share_one() -> None:
    source = ('<speak>a <prosody rate="slow">b</prosody> c <prosody rate="slow">d '
              '<emphasis level="none">e</emphasis></prosody></speak>')
    assert [("".join(run.text for run in speech.runs), speech.style.rate)
            for speech in speeches(source)] == [("a ", 1.0), ("b", 0.85), (" c ", 1.0),
                                                ("d e", 0.85)]


def test_a_speech_with_no_letter_or_digit_is_dropped_and_the_order_kept() -> None:
    items = read('<speak>Hi <break time="1s"/> . <mark name="m"/> <p/> 7</speak>').items
    assert [type(item) for item in items] == [Speech, Pause, MarkPoint, Speech]


def test_the_call_language_is_the_default_and_speak_may_set_another() -> None:
    (plain,) = speeches("<speak>Hi</speak>")
    (british,) = speeches('<speak xml:lang="en-GB">Hi</speak>')
    assert plain.style == Style(ENGLISH) and british.style == Style(BRITISH)


def test_the_ssml_namespace_and_version_are_accepted() -> None:
    source = ('<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" '
              'xml:lang="fr-FR"><s:p xmlns:s="http://www.w3.org/2001/10/synthesis">Bonjour</s:p>'
              '</speak>')
    (speech,) = speeches(source)
    assert speech.style.language == FRENCH and speech.runs[0].text == "Bonjour"


def test_spoken_chars_count_what_is_read_not_the_markup() -> None:
    document = read('<speak><prosody rate="fast">Hi</prosody> <sub alias="there">x</sub></speak>')
    assert document.spoken_chars == len("Hi there")


# --- break and mark ---------------------------------------------------------------------------


@pytest.mark.parametrize(("attributes", "seconds"), [
    ('time="800ms"', 0.8), ('time="1.5s"', 1.5), ('time="2s"', 2.0), ('time="10s"', 10.0),
    ('strength="x-weak"', 0.1), ('strength="weak"', 0.25), ('strength="medium"', 0.4),
    ('strength="strong"', 0.7), ('strength="x-strong"', 1.0), ("", 0.4),
    ('time="300ms" strength="x-strong"', 0.3),  # time wins, as in the SSML specification
])
def test_a_break_is_a_pause_where_it_is_written(attributes: str, seconds: float) -> None:
    source = f"<speak>One <break {attributes}/>two</speak>"
    first, pause, second = read(source).items
    assert pause == Pause(seconds, source.index("<break"))
    assert isinstance(first, Speech) and isinstance(second, Speech)


@pytest.mark.parametrize("attributes", ['strength="none"', 'time="0ms"'])
def test_no_break_asked_for_leaves_the_speech_whole(attributes: str) -> None:
    (speech,) = read(f"<speak>One <break {attributes}/>two</speak>").items
    assert isinstance(speech, Speech) and "".join(r.text for r in speech.runs) == "One two"


@pytest.mark.parametrize(("attributes", "problem"), [
    ('time="-1s"', "'-1s' is not a duration"), ('time="800"', "'800' is not a duration"),
    ('time="fast"', "is not a duration"), ('time="10.5s"', "'10.5s' is too long: at most 10s"),
    ('time="20000ms"', "is too long"), ('strength="huge"', "strength 'huge' is not one of"),
])
def test_a_bad_break_is_refused_naming_the_value(attributes: str, problem: str) -> None:
    message = refusal(f"<speak>\n  One <break {attributes}/></speak>")
    assert message.startswith("<break> at line 2, column 7: ") and problem in message


def test_a_break_and_a_mark_must_be_empty() -> None:
    assert "<break> at line 1, column 8: must be empty" in refusal(
        "<speak><break>soon</break></speak>")
    assert "<mark> at line 1, column 8: must be empty" in refusal(
        '<speak><mark name="m"><p>x</p></mark></speak>')


def test_a_mark_is_a_point_in_the_source_between_two_speeches() -> None:
    source = '<speak>Before <mark name="here"/>after</speak>'
    before, mark, after = read(source).items
    assert mark == MarkPoint("here", source.index("<mark"))
    assert isinstance(before, Speech) and isinstance(after, Speech)


@pytest.mark.parametrize(("mark", "problem"), [
    ("<mark/>", "needs a non-empty name"), ('<mark name=""/>', "needs a non-empty name"),
    (f'<mark name="{"m" * 65}"/>', "name is 65 characters long: at most 64"),
])
def test_a_mark_needs_a_short_name(mark: str, problem: str) -> None:
    assert problem in refusal(f"<speak>{mark}</speak>")
    read(f'<speak><mark name="{"m" * 64}"/></speak>')


# --- prosody, emphasis, lang, voice --------------------------------------------------------------


def style_of(element: str) -> Style:
    (speech,) = speeches(f"<speak>{element}</speak>")
    return speech.style


@pytest.mark.parametrize(("rate", "expected"), [
    ("x-slow", 0.7), ("slow", 0.85), ("medium", 1.0), ("fast", 1.2), ("x-fast", 1.4),
    ("default", 1.0), ("80%", 0.8), ("150%", 1.5), ("50%", 0.5), ("200%", 2.0),
])
def test_prosody_rate(rate: str, expected: float) -> None:
    assert style_of(f'<prosody rate="{rate}">x</prosody>').rate == pytest.approx(expected)


@pytest.mark.parametrize(("volume", "expected"), [
    ("x-soft", -15.0), ("soft", -6.0), ("medium", 0.0), ("loud", 3.0), ("x-loud", 6.0),
    ("default", 0.0), ("+6dB", 6.0), ("-3dB", -3.0), ("4.5db", 4.5), ("-40dB", -40.0),
])
def test_prosody_volume(volume: str, expected: float) -> None:
    assert style_of(f'<prosody volume="{volume}">x</prosody>').volume_db == expected


def test_silent_is_minus_infinity_decibels() -> None:
    assert style_of('<prosody volume="silent">x</prosody>').volume_db == -math.inf


def test_nested_prosody_and_emphasis_multiply_rates_and_add_decibels() -> None:
    style = style_of('<prosody rate="fast" volume="+2dB"><prosody rate="80%" volume="loud">'
                     '<emphasis level="strong">x</emphasis></prosody></prosody>')
    assert style.rate == pytest.approx(1.2 * 0.8 * 0.9) and style.volume_db == 2 + 3 + 3
    reset = style_of('<prosody rate="fast" volume="loud"><prosody rate="default" '
                     'volume="default">x</prosody></prosody>')
    assert (reset.rate, reset.volume_db) == (1.0, 0.0)


@pytest.mark.parametrize(("level", "rate", "volume_db"), [
    ("strong", 0.9, 3.0), ("moderate", 0.95, 1.5), ("reduced", 1.1, -3.0), ("none", 1.0, 0.0),
])
def test_emphasis_is_a_rate_and_a_volume(level: str, rate: float, volume_db: float) -> None:
    style = style_of(f'<emphasis level="{level}">x</emphasis>')
    assert (style.rate, style.volume_db) == (rate, volume_db)
    assert style_of("<emphasis>x</emphasis>") == style_of('<emphasis level="moderate">x</emphasis>')


@pytest.mark.parametrize(("element", "problem"), [
    ('<prosody rate="49%">', "rate '49%' is out of range: from 50% to 200%"),
    ('<prosody rate="201%">', "out of range"), ('<prosody rate="quick">', "is not a rate"),
    ('<prosody rate="-10%">', "is not a rate"), ('<prosody volume="+41dB">', "out of range"),
    ('<prosody volume="loudest">', "is not a volume"),
    ('<prosody pitch="+2st">', "pitch cannot be changed: Kokoro has no pitch control"),
    ('<prosody range="x-high">', "range cannot be changed"),
    ('<emphasis level="extreme">', "level 'extreme' is not one of strong, moderate"),
])
def test_a_bad_prosody_or_emphasis_is_refused(element: str, problem: str) -> None:
    name = element[1:].split()[0]
    message = refusal(f"<speak>{element}x</{name}></speak>")
    assert message.startswith(f"<{name}> at line 1, column 8: ") and problem in message


def test_lang_speaks_its_content_in_that_language() -> None:
    source = '<speak>Hello <lang xml:lang="fr-FR">bonjour</lang> again</speak>'
    assert [speech.style.language for speech in speeches(source)] == [ENGLISH, FRENCH, ENGLISH]


@pytest.mark.parametrize("code", ["de-DE", "klingon!"])
def test_an_unknown_language_is_refused_naming_those_spoken(code: str) -> None:
    message = refusal(f'<speak><lang xml:lang="{code}">x</lang></speak>')
    assert message.startswith("<lang> at line 1, column 8: ") and "en-US, en-GB, es-ES" in message
    assert "needs a non-empty xml:lang" in refusal("<speak><lang>x</lang></speak>")


def test_voice_switches_the_voice_of_its_content() -> None:
    source = '<speak>One <voice name="ff_siwis">two</voice></speak>'
    assert [speech.style.voice for speech in speeches(source)] == ["", "ff_siwis"]


def test_a_voice_the_server_cannot_use_is_refused_with_its_reason() -> None:
    message = refusal('<speak>\n<voice name="zz_nobody">x</voice></speak>')
    assert message == "<voice> at line 2, column 1: no voice is named 'zz_nobody'"
    assert "gender is not supported: a voice is chosen by name" in refusal(
        '<speak><voice name="af_bella" gender="female">x</voice></speak>')


# --- say-as ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("interpret_as", "content", "words"), [
    ("characters", "ABC", "eh B C"),  # misaki reads a lone "A" before a word as "a"
    ("spell-out", "abc12", "eh B C one two"),
    ("verbatim", "W3C", "W three C"),
    ("cardinal", "12345", "twelve thousand three hundred forty five"),
    ("cardinal", "-1,234.5", "minus one thousand two hundred thirty four point five"),
    ("ordinal", "21", "twenty first"), ("ordinal", "3rd", "third"),
    ("digits", "1024", "one zero two four"),
    ("fraction", "3/4", "three quarters"), ("fraction", "1 1/2", "one and one half"),
    ("fraction", "5/32", "five thirty seconds"),
    ("time", "14:30", "fourteen thirty"), ("time", "2:30pm", "two thirty p m"),
    ("time", "7 PM", "seven p m"), ("time", "1:14:32", "one fourteen and thirty two seconds"),
    ("telephone", "+1 (555) 123-4567",
     "plus one, five five five, one two three, four five six seven"),
    ("currency", "$42.01", "forty two dollars one cent"),
    ("currency", "42.01 USD", "forty two dollars one cent"), ("currency", "€5", "five euros"),
    ("currency", "GBP 3.50", "three pounds fifty pence"),
    ("unit", "10 km", "ten kilometers"), ("unit", "1 kg", "one kilogram"),
])
def test_say_as_in_english(interpret_as: str, content: str, words: str) -> None:
    assert say_as.read(interpret_as, content, ENGLISH) == words


@pytest.mark.parametrize(("date_format", "content", "words"), [
    ("", "2024-03-15", "March fifteenth, twenty twenty four"),
    ("ymd", "2024/03/15", "March fifteenth, twenty twenty four"),
    ("mdy", "3.15.2024", "March fifteenth, twenty twenty four"),
    ("dmy", "15 03 2024", "March fifteenth, twenty twenty four"),
    ("md", "02-29", "February twenty ninth"), ("dm", "1/3", "March first"),
    ("ym", "1960-09", "September nineteen sixty"), ("my", "9/1960", "September nineteen sixty"),
    ("d", "15", "fifteenth"), ("m", "12", "December"), ("y", "1984", "nineteen eighty four"),
])
def test_say_as_date_in_english(date_format: str, content: str, words: str) -> None:
    assert say_as.read("date", content, ENGLISH, date_format) == words


@pytest.mark.parametrize(("language", "interpret_as", "content", "words"), [
    (FRENCH, "characters", "ABC", "A B C"),
    (FRENCH, "cardinal", "1.234,5", "mille deux cent trente-quatre virgule cinq"),
    (FRENCH, "ordinal", "21", "vingt et unième"),
    (FRENCH, "digits", "105", "un zéro cinq"),
    (FRENCH, "telephone", "+33 1 23", "plus trois trois, un, deux trois"),
    (FRENCH, "currency", "42,01 €", "quarante-deux euros et un centime"),
    (FRENCH, "currency", "42,01 EUR", "quarante-deux euros et un centime"),
    (SPANISH, "cardinal", "21", "veintiuno"),
    (SPANISH, "ordinal", "2", "segundo"),
    (SPANISH, "telephone", "+34 91", "más tres cuatro, nueve uno"),
    (SPANISH, "currency", "5 EUR", "cinco euros"),
    (JAPANESE, "cardinal", "1,234", "1234"),  # the Japanese front end reads digits itself
    (JAPANESE, "digits", "105", "1 0 5"),
])
def test_say_as_in_other_languages(language: Language, interpret_as: str, content: str,
                                   words: str) -> None:
    assert say_as.read(interpret_as, content, language, "") == words


@pytest.mark.parametrize(("language", "date_format", "content", "words"), [
    (FRENCH, "dmy", "15/03/2024", "quinze mars deux mille vingt-quatre"),
    (SPANISH, "", "2024-03-15", "quince de marzo de dos mil veinticuatro"),
    (SPANISH, "m", "3", "marzo"), (FRENCH, "y", "1984", "mille neuf cent quatre-vingt-quatre"),
])
def test_say_as_date_in_other_languages(language: Language, date_format: str, content: str,
                                        words: str) -> None:
    assert say_as.read("date", content, language, date_format) == words


def test_a_say_as_reading_stands_for_the_content_between_its_tags() -> None:
    source = '<speak>Call <say-as interpret-as="telephone"> 555-1234 </say-as>.</speak>'
    (_, reading, _) = runs(source)
    assert reading == Run("five five five, one two three four", source.index("555"),
                          source.index("1234") + 4, exact=False, normalize=False)


def test_say_as_reads_in_the_language_of_its_span() -> None:
    source = ('<speak><lang xml:lang="es-ES"><say-as interpret-as="cardinal">21</say-as></lang>'
              "</speak>")
    assert text(source) == "veintiuno"


@pytest.mark.parametrize(("say", "problem"), [
    ('interpret-as="cardinal">abc', "'abc' is not a number"),
    ('interpret-as="ordinal">first', "'first' is not an ordinal"),
    ('interpret-as="digits">12a', "'12a' is not digits"),
    ('interpret-as="date">2024-13-45', "'2024-13-45' has no month 13"),
    ('interpret-as="date">2023-02-29', "'2023-02-29' has no day 29 in that month"),
    ('interpret-as="date" format="dmy">03-15', "'03-15' is not a date written dmy"),
    ('interpret-as="date" format="dmy">2024-03-15', "'2024-03-15' has no day 2024"),
    ('interpret-as="date" format="yyyymmdd">2024-03-15', "date format 'yyyymmdd' is not"),
    ('interpret-as="time" format="hms24">2:30pm', "is not a 24-hour time"),
    ('interpret-as="time" format="hms12">14:30', "is not a 12-hour time"),
    ('interpret-as="time">25:00', "'25:00' is not a time of day"),
    ('interpret-as="fraction">3/0', "has no denominator of 2 or more"),
    ('interpret-as="currency">42 XYZ', "currency XYZ is not supported"),
    ('interpret-as="currency">lots', "'lots' is not an amount"),
    ('interpret-as="unit">10 parsecs', "is not a measure with a known unit"),
    ('interpret-as="characters">!?', "has no letters or digits to spell"),
    ('interpret-as="cardinal">', "there is nothing to read"),
    ('interpret-as="expletive">x', "interpret-as 'expletive' is not supported: use one of"),
    ('interpret-as="cardinal" format="mdy">1', "format applies to date and time only"),
    ('interpret-as="date" detail="1">2024-03-15', "detail is not supported"),
    (">x", "needs a non-empty interpret-as"),
])
def test_say_as_that_cannot_be_read_is_refused(say: str, problem: str) -> None:
    message = refusal(f"<speak>Now <say-as {say}</say-as></speak>")
    assert message.startswith("<say-as> at line 1, column 12: ") and problem in message


@pytest.mark.parametrize(("code", "interpret_as", "content"), [
    ("fr-FR", "time", "14:30"), ("es-ES", "fraction", "1/2"), ("fr-FR", "unit", "10 km"),
    ("ja-JP", "ordinal", "2"), ("zh-CN", "date", "2024-03-15"), ("hi-IN", "currency", "$5"),
])
def test_a_reading_the_language_has_not_is_refused_naming_both(code: str, interpret_as: str,
                                                                content: str) -> None:
    language = BY_CODE[code]
    message = refusal(f'<speak><lang xml:lang="{code}"><say-as interpret-as="{interpret_as}">'
                      f'{content}</say-as></lang></speak>')
    assert f"{language.name} ({code}) has no '{interpret_as}' reading: it reads" in message


def test_japanese_and_chinese_cannot_spell_latin_letters() -> None:
    assert "cannot spell Latin letters" in refusal(
        '<speak xml:lang="ja-JP"><say-as interpret-as="characters">ABC</say-as></speak>')


@pytest.mark.parametrize("element", ["say-as", "sub", "phoneme"])
def test_an_element_read_whole_holds_only_text(element: str) -> None:
    attributes = {"say-as": 'interpret-as="cardinal"', "sub": 'alias="x"',
                  "phoneme": 'ph="x"'}[element]
    message = refusal(f"<speak><{element} {attributes}>1<break/></{element}></speak>")
    assert message == f"<{element}> at line 1, column 8: may contain only text, not <break>"


def test_an_alias_must_say_something() -> None:
    assert "<sub> at line 1, column 8: needs a non-empty alias" in refusal(
        '<speak><sub alias=" ">x</sub></speak>')


# --- phoneme ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "written", "kokoro"), [
    (ENGLISH, "təˈmeɪtoʊ", "təmˈAtO"),
    (BRITISH, "təˈmɑːtəʊ", "təmˈɑːtQ"),
    (ENGLISH, "ˈd͡ʒʌmp", "ʤˈʌmp"), (ENGLISH, "ˈtʃɝtʃ", "ʧˈɜɹʧ"),
    (ENGLISH, "ˈhaɪ ˈdaʊn ˈbɔɪ", "hˈI dˈWn bˈY"),
    (ENGLISH, "ˈɡɪf", "ɡˈɪf"), (ENGLISH, "'gɪf", "ɡˈɪf"),  # ASCII g and ' as IPA writes them
    (ENGLISH, "ˈbɜːd", "bˈɜɹd"), (BRITISH, "ˈbɜːd", "bˈɜːd"),
    (ENGLISH, "ˈrɛd", "ɹˈɛd"), (BRITISH, "ˈbed", "bˈɛd"), (BRITISH, "ˈkæt", "kˈat"),
    (ENGLISH, "ˈhæp.i", "hˈæpi"), (ENGLISH, "ˈbʌt̬ɚ", "bˈʌtəɹ"),
    (FRENCH, "bɔ̃ˈʒuʁ", "bɔ̃ʒˈuʁ"), (BY_CODE["it-IT"], "ˈpit͡sa", "pˈiʦa"),
    (BY_CODE["pt-BR"], "ˈkãw̃", "kˈa\u0303w̃"),  # the model's nasal vowels are two symbols
    (SPANISH, "ˈpe.ro", "pˈero"),
])
def test_ipa_is_mapped_into_the_model_symbols(language: Language, written: str, kokoro: str
                                              ) -> None:
    assert ipa.from_ipa(written, language, SYMBOLS) == kokoro


def test_a_phoneme_run_is_the_written_word_with_its_symbols() -> None:
    source = '<speak>I say <phoneme alphabet="ipa" ph="təˈmeɪtoʊ">tomato</phoneme>.</speak>'
    (_, word, _) = runs(source)
    assert word == Run("tomato", source.index("tomato"), source.index("tomato") + 6,
                       exact=True, phonemes="təmˈAtO", normalize=False)


def test_kokoro_symbols_are_taken_as_they_are_and_ipa_is_the_default_alphabet() -> None:
    source = ('<speak><phoneme alphabet="x-kokoro" ph=" kˈOkəɹO   tˈɛst ">Kokoro test</phoneme>'
              ' <phoneme ph="ˈrɛd">red</phoneme></speak>')
    assert [run.phonemes for run in runs(source) if run.phonemes] == ["kˈOkəɹO tˈɛst", "ɹˈɛd"]


@pytest.mark.parametrize(("phoneme", "problem"), [
    ('alphabet="ipa" ph="kʷʼa"', "the model cannot say ʷ ʼ (from IPA 'kʷʼa'); allowed symbols"),
    ('alphabet="x-kokoro" ph="kʷa"', "the model cannot say ʷ (from 'kʷa')"),
    ('alphabet="x-sampa" ph="t@"', "alphabet 'x-sampa' is not one of ipa, x-kokoro"),
    ('alphabet="ipa" ph=""', "needs a non-empty ph"),
    ('alphabet="ipa" ph=".."', "has no phonemes"),
])
def test_a_pronunciation_the_model_cannot_say_is_refused(phoneme: str, problem: str) -> None:
    message = refusal(f"<speak><phoneme {phoneme}>word</phoneme></speak>")
    assert message.startswith("<phoneme> at line 1, column 8: ") and problem in message


def test_a_phoneme_needs_the_word_it_pronounces() -> None:
    assert "needs the written word it pronounces" in refusal(
        '<speak><phoneme ph="ə"> </phoneme></speak>')


# --- What is refused, and hostile documents ----------------------------------------------------


def test_unknown_elements_and_attributes_are_refused_listing_what_is_allowed() -> None:
    audio = refusal('<speak>\n  <audio src="a.mp3">x</audio></speak>')
    assert audio.startswith("<audio> at line 2, column 3: is not an element this server reads")
    assert "<speak>, <p>, <s>, <break>, <say-as>, <sub>, <phoneme>, <prosody>" in audio
    assert "is not an element" in refusal("<speak><par>x</par></speak>")
    assert refusal('<speak><p class="x">y</p></speak>') == (
        "<p> at line 1, column 8: has no attribute 'class': it takes no attributes")
    assert refusal('<speak xml:base="http://example.com/">x</speak>') == (
        "<speak> at line 1, column 1: has no attribute 'xml:base': it takes xml:lang, version")
    assert "is not an SSML element (namespace urn:other)" in refusal(
        '<speak xmlns:o="urn:other"><o:p>x</o:p></speak>')


def test_the_root_is_speak_and_only_the_root() -> None:
    assert "<p> at line 1, column 1: <speak> is the root element" in refusal("<p>x</p>")
    assert "<speak> at line 1, column 8: <speak> is the root element" in refusal(
        "<speak><speak>x</speak></speak>")
    assert "junk after document element" in refusal("<speak>x</speak> more")
    assert "not well-formed XML" in refusal("text <speak>x</speak>")


def test_the_declared_encoding_is_ignored_for_the_text_we_were_given() -> None:
    source = '<?xml version="1.0" encoding="ISO-8859-1"?><speak>Café</speak>'
    (run,) = runs(source)
    assert run.text == "Café" and source[run.start:run.end] == "Café"


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = MAX_DEPTH - 1  # inside <speak>
    assert text("<speak>" + "<p>" * depth + "x" + "</p>" * depth + "</speak>") == "x\n"


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'
                            for n in range(1, 10))
                  + "]><speak>&lol9;</speak>")
HOSTILE = {
    "billion laughs": (BILLION_LAUGHS, "line 1, column 37: a DOCTYPE is not allowed"),
    "external entity": ('<!DOCTYPE speak [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                        "<speak>&x;</speak>", "a DOCTYPE is not allowed"),
    "external DTD": ('<!DOCTYPE speak SYSTEM "http://example.com/speak.dtd"><speak/>',
                     "a DOCTYPE is not allowed"),
    "undeclared entity": ("<speak>&x;</speak>", "line 1, column 8: not well-formed XML: "
                                               "undefined entity"),
    "10,000 deep": ("<speak>" + "<s>" * 10_000 + "</s>" * 10_000 + "</speak>",
                    f"<s> at line 1, column {8 + 3 * MAX_DEPTH - 3}: is nested too deep"),
    "1 MB of markup": ("<speak>" + "<p>x</p>" * 131_072 + "</speak>",
                       "the SSML is 1048591 characters long: at most 100000 are allowed"),
    "unclosed tag": ("<speak>\n  <p>open\n</speak>",
                     "line 3, column 3: not well-formed XML: mismatched tag"),
    "unclosed document": ("<speak><p>open", "not well-formed XML: no element found"),
    "lone surrogate": ('<speak><voice name="af_\ud83dbella">x</voice></speak>',
                       "line 1, column 24: a lone surrogate (U+D83D) is not a character"),
    "control character": ("<speak>a\x00b</speak>", "line 1, column 9: not well-formed XML"),
    "unknown element": ("<speak><foo>x</foo></speak>", "<foo> at line 1, column 8"),
    "unknown attribute": ('<speak><break bar="1"/></speak>', "has no attribute 'bar'"),
    "bad break time": ('<speak><break time="-5s"/></speak>', "is not a duration"),
    "unknown language": ('<speak xml:lang="tlh">x</speak>', "'tlh' is not spoken"),
    "unknown voice": ('<speak><voice name="nobody">x</voice></speak>', "no voice is named"),
    "unsayable IPA": ('<speak><phoneme ph="ǃ">x</phoneme></speak>', "the model cannot say ǃ"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_ssml_is_refused_quickly(name: str) -> None:
    source, problem = HOSTILE[name]
    started = time.perf_counter()
    message = refusal(source, max_source_chars=100_000)
    assert time.perf_counter() - started < 1.0
    assert problem in message


def test_items_are_in_source_order() -> None:
    source = ('<speak><s>One <mark name="a"/>two</s><break time="1s"/>'
              '<prosody rate="fast">three</prosody><mark name="b"/></speak>')
    items: tuple[Item, ...] = read(source).items
    places = [item.at if not isinstance(item, Speech) else item.runs[0].start
              for item in items]
    assert places == sorted(places) and [type(item) for item in items] == [
        Speech, MarkPoint, Speech, Pause, Speech, MarkPoint]
