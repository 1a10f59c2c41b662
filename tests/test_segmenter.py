"""The incremental segmenter: text in pieces is cut where the whole text would be."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tts_service.language.segmenter import Segmenter
from tts_service.language.sentences import STREAMING_SPLIT, Piece, SplitPolicy, split_pieces


def feed_all(segmenter: Segmenter, parts: list[str], now: float = 0.0) -> list[list[str]]:
    """The piece texts handed out after each part."""
    return [[p.text for p in segmenter.feed(part, now)] for part in parts]


def texts(pieces: list[Piece]) -> list[str]:
    return [p.text for p in pieces]


def test_a_sentence_is_handed_out_when_the_next_character_shows_its_end() -> None:
    segmenter = Segmenter()
    assert feed_all(segmenter, ["Hello there", ".", " How", " are you?"]) == [
        [], [], ["Hello there."], []]
    assert texts(segmenter.flush()) == ["How are you?"]


@pytest.mark.parametrize("text", [
    "Dr. Smith met Mr. Jones at noon. They talked.",
    "It costs 3.50 dollars. That is cheap.",
    "J. R. R. Tolkien wrote it. Read it.",
    "Use e.g. this one. Or that one.",
    'She said "stop!" and left. Then silence.',
    "Really?! Yes... I think so.\nNew line here",
    "A long first sentence keeps going on and on, with clause after clause after clause, "
    "so that it must be cut somewhere; and then it goes on a little more. Short.",
])
def test_cut_across_messages_at_every_position_gives_the_whole_text_pieces(text: str) -> None:
    expected = split_pieces(text)
    for at in range(1, len(text)):
        segmenter = Segmenter()
        pieces = segmenter.feed(text[:at], 0.0) + segmenter.feed(text[at:], 0.0)
        pieces += segmenter.flush()
        assert pieces == expected, f"cut at {at}: {text[:at]!r} | {text[at:]!r}"


def test_character_by_character_gives_the_whole_text_pieces_in_time() -> None:
    text = ("Dr. Who paid 3.5 pounds. It was, in all honesty, a bargain for a box that "
            "size, one that holds rather more than it seems to; or so he says. The end")
    segmenter = Segmenter()
    pieces: list[Piece] = []
    for at, char in enumerate(text):
        for piece in segmenter.feed(char, 0.0):
            # Handed out no later than one character after the piece's end was certain.
            assert piece.end <= at
            pieces.append(piece)
    assert pieces == split_pieces(text)[:-1]
    assert segmenter.flush() == split_pieces(text)[-1:]


def test_an_abbreviation_or_decimal_waits_for_what_follows() -> None:
    segmenter = Segmenter()
    assert texts(segmenter.feed("Mr.", 0.0)) == []
    assert texts(segmenter.feed(" Smith is here. The", 0.0)) == ["Mr. Smith is here."]
    assert texts(segmenter.feed(" price is 4.", 0.0)) == []
    assert texts(segmenter.feed("99 now.", 0.0)) == []
    assert texts(segmenter.feed(" ", 0.0)) == ["The price is 4.99 now."]


def test_offsets_count_from_the_start_of_all_the_text() -> None:
    segmenter = Segmenter()
    segmenter.feed("One. ", 0.0)
    (piece,) = segmenter.feed("Two. ", 0.0)
    assert (piece.start, piece.end, piece.text) == (5, 9, "Two.")
    assert segmenter.text[piece.start:piece.end] == piece.text


def test_explicit_flush_speaks_mid_sentence_and_the_rest_starts_afresh() -> None:
    segmenter = Segmenter()
    assert texts(segmenter.feed("Well, I think", 0.0)) == []
    assert texts(segmenter.flush()) == ["Well, I think"]
    assert texts(segmenter.flush()) == []
    assert texts(segmenter.feed(" so. Yes", 0.0)) == ["so."]
    assert texts(segmenter.flush()) == ["Yes"]


def test_punctuation_only_text_is_never_a_piece() -> None:
    segmenter = Segmenter()
    assert texts(segmenter.feed("... ", 0.0)) == []
    assert texts(segmenter.flush()) == []


def test_max_wait_cuts_at_the_best_break() -> None:
    segmenter = Segmenter(max_wait_s=2.0)
    segmenter.feed("So the answer, as far as I can tell, is proba", 10.0)
    assert segmenter.deadline == 12.0
    assert segmenter.expire(11.9) == []
    # The last clause mark wins over a space; the unfinished word keeps waiting.
    assert texts(segmenter.expire(12.0)) == ["So the answer, as far as I can tell,"]
    assert segmenter.pending == " is proba"
    segmenter.feed("bly yes", 12.5)
    assert segmenter.deadline == 12.0  # the waiting text arrived at 10.0
    assert texts(segmenter.expire(12.5)) == ["is probably"]
    assert segmenter.pending == " yes"
    assert segmenter.deadline == 14.5


def test_max_wait_speaks_a_finished_sentence_with_no_following_character() -> None:
    segmenter = Segmenter(max_wait_s=1.0)
    assert segmenter.feed("That is all.", 0.0) == []
    assert texts(segmenter.expire(1.0)) == ["That is all."]
    assert segmenter.deadline is None


def test_max_wait_never_cuts_inside_a_single_word() -> None:
    segmenter = Segmenter(max_wait_s=1.0)
    segmenter.feed("Supercalifragil", 0.0)
    assert segmenter.expire(1.0) == []
    assert segmenter.deadline == 2.0  # looks again one max wait later
    segmenter.feed("istic ", 1.5)
    assert texts(segmenter.expire(2.0)) == ["Supercalifragilistic"]


def test_long_sentence_is_cut_at_clauses_while_it_is_being_written() -> None:
    policy = SplitPolicy(clause_split_chars=60, min_clause_chars=20)
    segmenter = Segmenter(policy)
    first = "This opening clause is long enough to stand alone,"
    assert segmenter.feed(first + " and this", 0.0) == []  # too short a rest to cut yet
    (piece,) = segmenter.feed(" second one is long enough", 0.0)
    assert piece.text == first


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from(
    ["Dr.", "e.g.", "J.", "3.5", "word", "text,", "end.", "why?", "yes!", '"so."', "a;",
     "\n", "-", "...", "long" * 30, "(it.)"]), max_size=60),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
    policy=st.sampled_from([
        SplitPolicy(clause_split_chars=40, min_clause_chars=10, max_piece_chars=80),
        # The streams' own policy: the first sentence is cut short at its first clause.
        STREAMING_SPLIT,
        SplitPolicy(first_clause_chars=5, clause_split_chars=40, min_clause_chars=10,
                    max_piece_chars=80),
    ]))
def test_any_text_cut_anywhere_gives_the_whole_text_pieces(words: list[str], cuts: list[int],
                                                           policy: SplitPolicy) -> None:
    text = " ".join(words)
    positions = sorted({cut % (len(text) + 1) for cut in cuts})
    segmenter = Segmenter(policy)
    pieces: list[Piece] = []
    for start, end in zip([0, *positions], [*positions, len(text)], strict=True):
        pieces += segmenter.feed(text[start:end], 0.0)
    pieces += segmenter.flush()
    assert pieces == split_pieces(text, segmenter.policy)


# A first sentence with no clause mark, from words that open phrases or stand beside them (a
# number, a name, an abbreviation, a bracket), so that about a third of the examples are cut
# at a phrase; then sentences of any kind.
@settings(max_examples=300, deadline=None)
@given(first=st.lists(st.sampled_from(
    ["the", "old", "keeper", "walked", "slowly", "near", "to", "before", "while", "with", "a",
     "Avon", "harbour", "3", "Dr.", "Mr.", "(because", "it)"]), min_size=6, max_size=30),
    rest=st.lists(st.sampled_from(["word", "text,", "end.", "near", "the", "why?", "\n"]),
                  max_size=12),
    cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_a_first_sentence_cut_at_a_phrase_is_cut_alike_when_it_comes_in_pieces(
        first: list[str], rest: list[str], cuts: list[int]) -> None:
    text = " ".join(first) + ". " + " ".join(rest)
    positions = sorted({cut % (len(text) + 1) for cut in cuts})
    segmenter = Segmenter(STREAMING_SPLIT)
    pieces: list[Piece] = []
    for start, end in zip([0, *positions], [*positions, len(text)], strict=True):
        pieces += segmenter.feed(text[start:end], 0.0)
    pieces += segmenter.flush()
    assert pieces == split_pieces(text, STREAMING_SPLIT)


def test_a_first_sentence_without_clauses_waits_for_its_end_then_comes_at_its_phrase() -> None:
    segmenter = Segmenter(STREAMING_SPLIT)
    sentence = "The children stayed inside because the rain did not stop all afternoon."
    assert segmenter.feed(sentence[:40], 0.0) == []
    assert segmenter.feed(sentence[40:], 0.0) == []  # its end is not certain yet
    assert texts(segmenter.feed(" It", 0.0)) == [
        "The children stayed inside", "because the rain did not stop all afternoon."]


def test_flush_does_not_cut_a_second_first_clause_from_the_rest() -> None:
    # Found by the property test above: the first clause was handed out while the sentence
    # was being written, and the flush cut its rest at the next comma as if it were first.
    policy = SplitPolicy(first_clause_chars=5, clause_split_chars=40, min_clause_chars=10,
                         max_piece_chars=80)
    segmenter = Segmenter(policy)
    text = "text, text, Dr. Dr."
    assert texts(segmenter.feed(text, 0.0)) == ["text,"]
    assert texts(segmenter.flush()) == ["text, Dr. Dr."]
    assert [p.text for p in split_pieces(text, policy)] == ["text,", "text, Dr. Dr."]
