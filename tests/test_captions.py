"""Cue cutting (tts_service/audio/captions.py) on made-up timings: readable cues as subtitle
guidelines give them, every word once and in order, and files that subtitle libraries read."""

from __future__ import annotations

import io
import itertools
import re

import pytest
import srt
import webvtt

from tts_service.audio.captions import (
    MAX_CUE_S,
    MAX_LINE_CHARS,
    MAX_LINES,
    MIN_CUE_S,
    Cue,
    Word,
    cues,
)
from tts_service.audio.captions import srt as write_srt
from tts_service.audio.captions import webvtt as write_webvtt

STORY = ("\"Hello there,\" she said. The weather is lovely today; we walked along the river "
         "after lunch, and then we sat on a bench & watched the boats < 3 metres away. Later "
         "the wind picked up --> so we went home before the rain started. The end!")


def timed(text: str, word_s: float = 0.3, gap_s: float = 0.05) -> list[Word]:
    """Every run of letters, digits or apostrophes as a word said for `word_s`."""
    words, at = [], 0.2
    for match in re.finditer(r"[\w']+", text):
        words.append(Word(match.start(), match.end(), at, at + word_s))
        at += word_s + gap_s
    return words


def _words_of(made: list[Cue]) -> list[str]:
    return re.findall(r"[\w']+", " ".join(line for cue in made for line in cue.lines))


@pytest.mark.parametrize("word_s", [0.1, 0.3, 0.9])
def test_cues_are_readable_and_hold_every_word_once_in_order(word_s: float) -> None:
    words = timed(STORY, word_s)
    made = cues(STORY, words)
    assert len(made) > 3
    assert _words_of(made) == [STORY[w.start:w.end] for w in words]
    # Nothing of the text is lost, punctuation included (the opening quote too).
    assert " ".join(" ".join(cue.lines) for cue in made) == " ".join(STORY.split())
    for cue in made:
        assert 1 <= len(cue.lines) <= MAX_LINES
        assert all(len(line) <= MAX_LINE_CHARS for line in cue.lines), cue
        assert cue.end_s - cue.start_s <= MAX_CUE_S
    for cue, later in itertools.pairwise(made):
        assert cue.start_s < cue.end_s <= later.start_s
        assert cue.end_s - cue.start_s >= MIN_CUE_S or cue.end_s == later.start_s


def test_each_cue_spans_exactly_its_words_times() -> None:
    words = timed(STORY)
    made = cues(STORY, words)
    firsts = iter(words)
    for cue in made:
        first = next(firsts)
        assert cue.start_s == first.start_s
        for _ in range(len(re.findall(r"[\w']+", " ".join(cue.lines))) - 1):
            next(firsts)


def test_a_sentence_end_starts_a_new_cue_once_the_cue_is_readable() -> None:
    text = "Hi. Short one. Then a sentence that goes on."
    made = cues(text, timed(text, word_s=0.5))
    # "Hi." alone would be up for half a second: it stays with the next sentence.
    assert [" ".join(cue.lines) for cue in made] == ["Hi. Short one.",
                                                     "Then a sentence that goes on."]


def test_a_slow_word_run_is_cut_at_the_longest_cue() -> None:
    text = "one two three four five six seven eight"
    made = cues(text, timed(text, word_s=2.0))
    assert [" ".join(cue.lines) for cue in made] == [
        "one two three", "four five six", "seven eight"]


def test_a_word_longer_than_a_line_stays_whole_on_a_line_of_its_own() -> None:
    long_word = "Pneumonoultramicroscopicsilicovolcanoconiosis-and-more-besides"
    text = f"Say {long_word} now."
    made = cues(text, timed(text))
    lines = [line for cue in made for line in cue.lines]
    assert long_word in lines
    assert all(len(line) <= MAX_LINE_CHARS for line in lines if line != long_word)


def test_a_short_last_cue_stays_up_for_the_shortest_reading_time() -> None:
    made = cues("Hi.", [Word(0, 2, 1.0, 1.2)])
    assert made == [Cue(1.0, 1.0 + MIN_CUE_S, ("Hi.",))]
    assert cues("", []) == []


def test_srt_parses_with_the_srt_library() -> None:
    words = timed(STORY)
    made = cues(STORY, words)
    parsed = list(srt.parse(write_srt(made)))
    assert [item.index for item in parsed] == list(range(1, len(made) + 1))
    assert [item.content for item in parsed] == ["\n".join(cue.lines) for cue in made]
    assert [item.start.total_seconds() for item in parsed] == [
        round(cue.start_s, 3) for cue in made]
    assert [item.end.total_seconds() for item in parsed] == [round(cue.end_s, 3) for cue in made]


def test_webvtt_parses_with_webvtt_py_and_escapes_what_webvtt_reserves() -> None:
    made = cues(STORY, timed(STORY))
    written = write_webvtt(made)
    assert written.startswith("WEBVTT\n\n")
    assert "&amp;" in written and "&lt; 3" in written and "--&gt;" in written
    parsed = webvtt.from_buffer(io.StringIO(written))
    assert len(parsed.captions) == len(made)
    assert [cue.start_time.in_milliseconds() for cue in parsed.captions] == [
        round(cue.start_s * 1000) for cue in made]
    assert [cue.text.split("\n") for cue in parsed.captions] == [
        [line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
         for line in cue.lines] for cue in made]
