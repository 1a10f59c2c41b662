"""Tests for the English text normalization applied before synthesis."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tts_service.language.english_normalizer import normalize

_SENTENCES_TSV = Path(__file__).parent / "data" / "normalization_sentences.tsv"

CASES = {
    "cardinal": [
        ("I have 3 cats.", "I have three cats."),
        ("0", "zero"),
        ("It took 101 days.", "It took one hundred one days."),
        ("Add 42 more.", "Add forty two more."),
    ],
    "ordinal": [
        ("the 1st, 22nd and 3rd", "the first, twenty second and third"),
        ("the 4th and 11th and 101st", "the fourth and eleventh and one hundred first"),
    ],
    "thousands": [
        (
            "1,234,567 people",
            "one million two hundred thirty four thousand five hundred sixty seven people",
        ),
        ("1,000.25", "one thousand point two five"),
    ],
    "decimal": [
        ("Pi is 3.14.", "Pi is three point one four."),
        ("0.5 and .5", "zero point five and point five"),
    ],
    "negative": [
        ("It is -5 outside.", "It is minus five outside."),
        ("(-2.5)", "(minus two point five)"),
    ],
    "currency": [
        ("$5.50", "five dollars fifty cents"),
        ("$1", "one dollar"),
        ("£3.20", "three pounds twenty pence"),
        ("€10", "ten euros"),
        ("$2.5 million", "two point five million dollars"),
        ("$0.99", "ninety nine cents"),
        ("£0.01", "one penny"),
        ("€1.01", "one euro one cent"),
        ("$1,850", "one thousand eight hundred fifty dollars"),
        ("$3bn", "three billion dollars"),
        ("-$5", "minus five dollars"),
        ("¥500", "five hundred yen"),
        ("50¢", "fifty cents"),
    ],
    "percent": [
        ("45%", "forty five percent"),
        ("3.5 %", "three point five percent"),
        ("-2%", "minus two percent"),
    ],
    "year": [
        ("in 1999", "in nineteen ninety nine"),
        ("since 2005", "since two thousand five"),
        ("in 2024, we", "in twenty twenty four, we"),
        ("It ended in 1900.", "It ended in nineteen hundred."),
        ("That was 2010.", "That was twenty ten."),
        ("the 1990s", "the nineteen nineties"),
        ("the '80s", "the eighties"),
        ("the 2000s", "the two thousands"),
        ("1066 AD", "ten sixty six A D"),
        ("1990-1995", "nineteen ninety to nineteen ninety five"),
        ("We sold 2048 units", "We sold two thousand forty eight units"),
    ],
    "date": [
        ("2024-03-15", "March fifteenth, twenty twenty four"),
        ("3/15/2024", "March fifteenth, twenty twenty four"),
        ("15/3/2024", "March fifteenth, twenty twenty four"),
        ("March 15, 2024", "March fifteenth, twenty twenty four"),
        ("March 15th", "March fifteenth"),
        ("on 15 March", "on the fifteenth of March"),
        ("15 March 2021", "the fifteenth of March twenty twenty one"),
        ("Jan. 9", "January ninth"),
        ("Sept 1", "September first"),
        ("March 2024", "March twenty twenty four"),
    ],
    "time": [
        ("10:30 am", "ten thirty a m"),
        ("14:05", "fourteen oh five"),
        ("7pm", "seven p m"),
        ("at 7 p.m. today", "at seven p m today"),
        ("at 7 p.m.", "at seven p m."),
        ("9:05 PM", "nine oh five p m"),
        ("10:00", "ten o'clock"),
        ("18:00", "eighteen hundred"),
        ("8:00 am", "eight a m"),
    ],
    "phone": [
        ("555-123-4567", "five five five, one two three, four five six seven"),
        ("(555) 123-4567", "five five five, one two three, four five six seven"),
        ("+1 555 123 4567", "plus one, five five five, one two three, four five six seven"),
        ("+44 20 7946 0958", "plus four four, two zero, seven nine four six, zero nine five eight"),
        ("call 123-4567.", "call one two three, four five six seven."),
    ],
    "abbreviation": [
        ("Dr. Smith", "Doctor Smith"),
        ("Mr. Jones and Mrs. Lee met Ms. Park", "Mister Jones and Missus Lee met Miz Park"),
        ("in St. Louis", "in Saint Louis"),
        ("on Main St. today", "on Main Street today"),
        ("I live on Main St.", "I live on Main Street."),
        ("John Smith Jr. said", "John Smith Junior said"),
        ("fruit, e.g., apples", "fruit, for example, apples"),
        ("fruit, i.e. apples", "fruit, that is apples"),
        ("apples, pears, etc. Then", "apples, pears, et cetera. Then"),
        ("apples, pears, etc. and more", "apples, pears, et cetera and more"),
        ("cats vs. dogs", "cats versus dogs"),
        ("approx. 5 hours", "approximately five hours"),
        ("No. 5 and #1", "number five and number one"),
        ("Mt. Everest", "Mount Everest"),
    ],
    "unit": [
        ("5 km", "five kilometers"),
        ("1 km", "one kilometer"),
        ("10kg", "ten kilograms"),
        ("3 m and 20 cm and 5 mm", "three meters and twenty centimeters and five millimeters"),
        ("100 g", "one hundred grams"),
        ("60 mph", "sixty miles per hour"),
        ("100 km/h", "one hundred kilometers per hour"),
        ("20°C", "twenty degrees Celsius"),
        ("-5 °F", "minus five degrees Fahrenheit"),
        ("16 GB and 512 MB", "sixteen gigabytes and five hundred twelve megabytes"),
        ("30 ms", "thirty milliseconds"),
        ("3,200 ft", "three thousand two hundred feet"),
    ],
    "acronym": [
        ("gRPC", "g R P C"),
        ("the API", "the A P I"),
        ("the FBI", "the F B I"),
        ("NASA, NATO and UNESCO", "NASA, NATO and UNESCO"),
        ("HTTP and JSON", "H T T P and JSON"),
        ("GPUs", "G P U's"),
        ("iOS", "i O S"),
        ("OpenAI and MySQL", "Open A I and My S Q L"),
        ("the U.S. Army", "the U S Army"),
        ("AT&T and R&D", "A T and T and R and D"),
        ("World War II", "World War two"),
    ],
    "address": [
        ("user@example.com", "user at example dot com"),
        ("https://grpc.io/docs", "grpc dot io slash docs"),
        ("see https://grpc.io/docs.", "see grpc dot io slash docs."),
        ("www.example.org", "w w w dot example dot org"),
        (
            "mail first.last+tag@mail.example.co.uk",
            "mail first dot last plus tag at mail dot example dot co dot uk",
        ),
        ("go to example.com now", "go to example dot com now"),
    ],
    "mixed": [
        ("mp3 and 5G", "mp three and five G"),
        ("COVID-19", "COVID nineteen"),
        ("pages 10-20", "pages ten to twenty"),
        ("1/2 and 3/4", "one half and three quarters"),
        ("Python 3.11.7", "Python three dot eleven dot seven"),
        ("agent 007", "agent zero zero seven"),
        ("C++ and C#", "C plus plus and C sharp"),
        ("salt & pepper", "salt and pepper"),
        ("30-35°C and 5-10%", "thirty to thirty five degrees Celsius and five to ten percent"),
        ("24/7 support and 2:1 odds", "twenty four seven support and two to one odds"),
        ("x = 5 + 3, ages 18+", "x equals five plus three, ages eighteen plus"),
        ("a 3-day trip in her 20s", "a three day trip in her twenties"),
        ("3.5 GHz", "three point five gigahertz"),
    ],
}

PASS_THROUGH = [
    "",
    " ",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I think, therefore I am.",
    "A cat sat on a mat; it was happy: very happy?",
    "  leading and trailing spaces  \n",
    "Tabs\tand\nnewlines\r\nstay.",
    'She said "yes" and left... Then it rained!',
    "JavaScript, McDonald and iPhone stay as they are.",
    "Don't worry, it's fine.",
    "Shouting IS FINE HERE.",
    "Caf\u00e9 na\u00efve fa\u00e7ade r\u00e9sum\u00e9.",
    "\U0001f600 emoji \U0001f680 stay",
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u0661\u0662\u0663",
    "Control \x00\x07\x1b characters.",
    "Ellipsis\u2026 and \u201cquotes\u201d and em\u2014dashes.",
    "A - B and C / D",
    "well-known, e-mail, state-of-the-art.",
]


def _words(text: str) -> list[str]:
    return [w.strip("'") for w in re.findall(r"[a-z0-9']+", text.lower()) if w.strip("'")]


@pytest.mark.parametrize(
    ("written", "spoken"),
    [pytest.param(w, s, id=f"{cat}-{w}") for cat, rows in CASES.items() for w, s in rows],
)
def test_normalize_reads_case(written: str, spoken: str) -> None:
    assert normalize(written) == spoken


@pytest.mark.parametrize(
    "spoken", [pytest.param(s, id=f"{cat}-{w}") for cat, rows in CASES.items() for w, s in rows]
)
def test_normalized_output_is_stable(spoken: str) -> None:
    assert normalize(spoken) == spoken


@pytest.mark.parametrize("text", PASS_THROUGH)
def test_plain_text_passes_through_unchanged(text: str) -> None:
    assert normalize(text) == text
    assert normalize(normalize(text)) == normalize(text)


@pytest.mark.parametrize(
    "text", ["Dr. Smith met Mr. Jones.", "Use e.g. this, i.e. that.", "The U.S. Army won."]
)
def test_abbreviations_add_no_sentence_breaks(text: str) -> None:
    assert normalize(text).count(".") == 1


@pytest.mark.parametrize(
    "text",
    ["9" * 10_000, "1," * 5_000, "$" + "9" * 10_000, "-" * 5_000 + "5", "1." * 5_000, "1-" * 3_000],
)
def test_pathological_input_is_fast(text: str) -> None:
    started = time.perf_counter()
    result = normalize(text)
    assert time.perf_counter() - started < 1.0
    assert not re.search(r"[0-9]", result)


def test_long_digit_run_is_read_digit_by_digit() -> None:
    assert normalize("1" * 20) == " ".join(["one"] * 20)


@settings(max_examples=300, deadline=500)
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    assert isinstance(normalize(text), str)


@settings(max_examples=300, deadline=500)
@given(st.text(alphabet=st.sampled_from("0123456789 ,.-:/$%£€°+@()#&ASTkmgDr"), max_size=60))
def test_never_raises_on_number_like_text(text: str) -> None:
    assert isinstance(normalize(text), str)


def _sentence_rows() -> list[tuple[str, str]]:
    with _SENTENCES_TSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["written", "spoken"]
    return [(written, spoken) for written, spoken in rows[1:]]


def test_sentence_file_is_well_formed() -> None:
    rows = _sentence_rows()
    assert len(rows) >= 36
    for written, spoken in rows:
        assert 8 <= len(written.split()) <= 20, written
        assert re.fullmatch(r"[a-z' ]+", spoken), spoken


def test_sentences_read_as_spoken() -> None:
    rows = _sentence_rows()
    differing = [
        f"{written!r}\n  got:  {' '.join(_words(normalize(written)))}\n  want: {spoken}"
        for written, spoken in rows
        if _words(normalize(written)) != _words(spoken)
    ]
    assert len(differing) <= 0.2 * len(rows), "\n".join(differing)
