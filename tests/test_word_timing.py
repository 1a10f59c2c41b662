"""Word timing logic: pause shortening's sample map and token-to-word mapping (no model)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tts_service.audio import word_timing
from tts_service.audio.pauses import shorten_pauses
from tts_service.audio.word_timing import PieceTimer, SpokenWord, spoken_words

RATE_HZ = 24000
SPACE, COMMA, PERIOD = 16, 3, 4
SEPARATORS = frozenset({0, SPACE, COMMA, PERIOD})


def test_short_pauses_stay_and_long_ones_keep_a_fifth() -> None:
    voice = np.full(1000, 0.5, dtype=np.float32)
    short = np.zeros(4799, dtype=np.float32)  # just under 0.2 s: not a pause
    long = np.zeros(10000, dtype=np.float32)
    audio = np.concatenate([voice, short, voice, long, voice])
    shortened = shorten_pauses(audio, RATE_HZ)
    assert len(shortened.samples) == len(audio) - 8000
    assert shortened.removed == ((1000 + 4799 + 1000 + 2000, 1000 + 4799 + 1000 + 10000),)
    # Samples before the cut keep their place, samples after it move back by the cut.
    assert shortened.position(500) == 500
    assert shortened.position(len(audio)) == len(shortened.samples)
    assert shortened.position(1000 + 4799 + 1000 + 5000) == 1000 + 4799 + 1000 + 2000


def test_a_trailing_pause_must_be_longer_than_the_threshold() -> None:
    voice = np.full(100, 0.5, dtype=np.float32)
    exact = np.concatenate([voice, np.zeros(4800, dtype=np.float32)])
    assert shorten_pauses(exact, RATE_HZ).removed == ()
    longer = np.concatenate([voice, np.zeros(4801, dtype=np.float32)])
    assert len(shorten_pauses(longer, RATE_HZ).samples) == 100 + int(np.float32(4801) * 0.2)


def test_scale_one_changes_nothing() -> None:
    audio = np.zeros(48000, dtype=np.float32)
    assert shorten_pauses(audio, RATE_HZ, 1.0).samples is audio


def test_separators_are_read_from_tokens_txt(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("; 1\n, 3\n. 4\n  16\na 43\n\u02c8 156\n", encoding="utf-8")
    assert word_timing.separator_ids(tokens) == {0, 1, 3, 4, 16}


def test_tokens_between_separators_are_one_word_timed_by_durations() -> None:
    #         pad h  i  sp  t  o  .  pad
    tokens = [0, 50, 51, SPACE, 52, 53, PERIOD, 0]
    frames = [4, 2, 3, 1, 2, 2, 5, 1]
    words = spoken_words(tokens, frames, SEPARATORS)
    lead = word_timing.SOUND_LEAD_FRAMES
    assert words == [SpokenWord((4 - lead) * 600, (9 - lead) * 600, 2),
                     SpokenWord((10 - lead) * 600, (14 - lead) * 600, 2)]


def _words(*token_counts: int) -> list[SpokenWord]:
    out, at = [], 0
    for count in token_counts:
        out.append(SpokenWord(at, at + count * 600, count))
        at += (count + 1) * 600
    return out


def test_every_word_of_the_text_gets_its_spoken_word() -> None:
    text = "Hello there, how are you?"
    spans = PieceTimer(text, text).take(_words(5, 4, 3, 2, 3), last=True)
    assert [text[s.start:s.end] for s in spans] == ["Hello", "there", "how", "are", "you"]
    assert all(a.end_sample <= b.start_sample for a, b in itertools.pairwise(spans))


def test_words_the_engine_merges_become_one_span() -> None:
    text = "I am fine."
    spans = PieceTimer(text, text).take(_words(4, 4), last=True)
    assert [text[s.start:s.end] for s in spans] == ["I am", "fine"]


def test_normalized_text_maps_back_to_what_the_caller_wrote() -> None:
    original = "We paid $5.50 on 3/4."
    spoken = "We paid five dollars fifty cents on March fourth."
    spans = PieceTimer(original, spoken).take(_words(2, 3, 4, 6, 5, 5, 2, 5, 4), last=True)
    assert [original[s.start:s.end] for s in spans] == ["We", "paid", "$5.50", "on", "3/4"]
    money = spans[2]
    assert (money.start_sample, money.end_sample) == (_words(2, 3, 4)[2].start_sample,
                                                     _words(2, 3, 4, 6, 5, 5)[5].end_sample)


def test_a_piece_spoken_in_two_runs_is_split_at_its_sentence_end() -> None:
    text = "Yes. I think so."
    timer = PieceTimer(text, text)
    first = timer.take(_words(3), last=False)
    second = timer.take(_words(1, 4, 2), last=True)
    assert [text[s.start:s.end] for s in first] == ["Yes"]
    assert [text[s.start:s.end] for s in second] == ["I", "think", "so"]


def test_a_dropped_word_joins_a_neighbour_and_nothing_is_lost() -> None:
    text = "one two three four"
    spans = PieceTimer(text, text).take(_words(3, 5, 4), last=True)
    covered = " ".join(text[s.start:s.end] for s in spans)
    assert all(word in covered for word in text.split())
    assert len(spans) == 3


def test_respelled_words_map_back_to_the_written_word() -> None:
    original = "I like nginx a lot."
    spans = PieceTimer(original, "I like engine x a lot.").take(_words(2, 3, 5, 1, 1, 3),
                                                                last=True)
    assert [original[s.start:s.end] for s in spans] == ["I", "like", "nginx", "a", "lot"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=9), min_size=1, max_size=12),
       st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=14))
def test_any_alignment_covers_every_word_once_in_order(written: list[str],
                                                      token_counts: list[int]) -> None:
    """Whatever the engine splits, merges or drops, no word is lost, repeated or reordered."""
    text = " ".join(written)
    spans = PieceTimer(text, text).take(_words(*token_counts), last=True)
    assert " ".join(text[s.start:s.end] for s in spans).split() == written
    for before, after in itertools.pairwise(spans):
        assert before.end <= after.start
        assert before.start_sample < before.end_sample <= after.start_sample
