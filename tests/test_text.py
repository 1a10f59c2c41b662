"""The text splitter: where sentences end, where streams and unary calls cut, the hard cut."""

from __future__ import annotations

import pytest

from tts_service.language.sentences import STREAMING_SPLIT, UNARY_SPLIT, SplitPolicy, split_pieces


def texts(text: str, policy: SplitPolicy | None = None) -> list[str]:
    pieces = split_pieces(text, policy or SplitPolicy())
    for piece in pieces:
        assert text[piece.start:piece.end] == piece.text  # offsets point into the request
    return [piece.text for piece in pieces]


@pytest.mark.parametrize(("text", "expected"), [
    ("Dr. Smith met Mr. Jones. They talked.", ["Dr. Smith met Mr. Jones.", "They talked."]),
    ("No. 5 is here. See fig. 3 now.", ["No. 5 is here.", "See fig. 3 now."]),
    ("Use a tool, e.g. a saw. Then stop.", ["Use a tool, e.g. a saw.", "Then stop."]),
    ("We met at 5 p.m. today. Then we left.", ["We met at 5 p.m. today.", "Then we left."]),
    ("We met at 5 p.m. Then we left.", ["We met at 5 p.m.", "Then we left."]),
    ("The U.S. economy grew.", ["The U.S. economy grew."]),
])
def test_abbreviations_do_not_end_sentences(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


def test_initials_do_not_end_sentences() -> None:
    assert texts("J. R. R. Tolkien wrote it. Really.") == ["J. R. R. Tolkien wrote it.",
                                                           "Really."]


def test_numbers_with_periods_stay_whole() -> None:
    assert texts("Pi is 3.14 and v1.2.3 shipped. It costs $5.50.") == [
        "Pi is 3.14 and v1.2.3 shipped.", "It costs $5.50."]


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert texts('He said "Stop." Then he left. (Quietly.) Done!') == [
        'He said "Stop."', "Then he left.", "(Quietly.)", "Done!"]
    assert texts("\u201cReally?\u201d Yes\u2026 maybe.") == [
        "\u201cReally?\u201d", "Yes\u2026", "maybe."]


def test_line_breaks_end_pieces_and_pieces_without_words_are_dropped() -> None:
    assert texts("Title\nBody text here.\n\n--- !!\n") == ["Title", "Body text here."]


def test_the_hard_cut_splits_at_white_space_below_the_longest_piece() -> None:
    policy = SplitPolicy(max_piece_chars=30)
    words = "word " * 20  # 100 characters, no punctuation
    pieces = texts(words, policy)
    assert all(len(piece) <= 30 for piece in pieces)
    assert " ".join(pieces).split() == words.split()  # cut between words, none lost
    assert texts("x" * 70, policy) == ["x" * 30, "x" * 30, "x" * 10]  # no space: anywhere


STORM = ("When the storm finally passed over the valley, late in the afternoon, the farmers "
         "came out of their houses, looked at the flattened fields, and began to count. "
         "The river rose, and rose again.")


def test_streams_start_with_the_first_clause_then_cut_long_sentences_at_clauses() -> None:
    assert texts(STORM, STREAMING_SPLIT) == [
        "When the storm finally passed over the valley,",
        "late in the afternoon, the farmers came out of their houses,",
        "looked at the flattened fields, and began to count.",
        "The river rose, and rose again.",  # short sentences stay whole
    ]
    # A first clause shorter than the policy's minimum is not cut off.
    assert texts("Hi, there. Short one, really.", STREAMING_SPLIT) == [
        "Hi, there.", "Short one, really."]
    assert texts("Hello there, my friend, how are you today?", STREAMING_SPLIT) == [
        "Hello there,", "my friend, how are you today?"]
    # Later sentences over 60 characters are cut at clauses too: short pieces keep the wait
    # of another request for an engine short.
    assert texts("It was spring. We walked along the quiet river after lunch, and then we "
                 "watched the ducks swim.", STREAMING_SPLIT) == [
        "It was spring.", "We walked along the quiet river after lunch,",
        "and then we watched the ducks swim."]


def test_unary_calls_are_split_in_whole_sentences() -> None:
    assert texts(STORM, UNARY_SPLIT) == [
        "When the storm finally passed over the valley, late in the afternoon, the farmers "
        "came out of their houses, looked at the flattened fields, and began to count.",
        "The river rose, and rose again.",
    ]
    long_sentence = "and then " * 60  # 540 characters: the hard cut still bounds a piece
    assert all(len(piece) <= UNARY_SPLIT.max_piece_chars
               for piece in texts(long_sentence, UNARY_SPLIT))


def test_build_spec_splits_streams_finely_and_unary_calls_in_sentences() -> None:
    from tts_service.calls.request import AskedSettings, Limits, build_spec
    from tts_service.language.front_end import FrontEnds
    from tts_service.model.voices import VoiceCatalog

    def spec_pieces(streaming: bool) -> list[str]:
        spec = build_spec(STORM, AskedSettings(voice="af_bella"), streaming=streaming,
                          catalog=VoiceCatalog.from_names(["af_bella"]),
                          front_ends=FrontEnds(), limits=Limits(max_text_chars=5000),
                          model_rate_hz=24000, list_voices="ListVoices")
        return [piece.text for piece in spec.pieces]

    assert spec_pieces(streaming=True) == texts(STORM, STREAMING_SPLIT)
    assert spec_pieces(streaming=False) == texts(STORM, UNARY_SPLIT)


@pytest.mark.parametrize(("text", "expected"), [
    # Before a preposition, two fifths of the way in or as near as the words allow.
    ("A young fox was sleeping under the garden bench when we came home last night. "
     "It ran away.",
     ["A young fox was sleeping", "under the garden bench when we came home last night.",
      "It ran away."]),
    ("My grandmother kept a small shop at the corner of the market square.",
     ["My grandmother kept a small shop", "at the corner of the market square."]),
    # "to" opens a phrase before a determiner only, not before a verb.
    ("The old lighthouse keeper walked down to the harbour every morning to watch the boats.",
     ["The old lighthouse keeper walked down",
      "to the harbour every morning to watch the boats."]),
    # A subordinating conjunction.
    ("The children stayed inside because the rain did not stop all afternoon long.",
     ["The children stayed inside", "because the rain did not stop all afternoon long."]),
])
def test_a_first_sentence_without_clauses_is_cut_where_a_phrase_opens(
        text: str, expected: list[str]) -> None:
    assert texts(text, STREAMING_SPLIT) == expected


@pytest.mark.parametrize("text", [
    # Only the first piece of a stream: a second sentence stays whole.
    "Yes. The children stayed inside because the rain did not stop all afternoon long.",
    # No opener between three tenths and a half of the way in: "near" comes at a fifth, where
    # the rest of the sentence could not be made before the first part has played.
    "The little bakery near the station sells fresh bread every morning before seven.",
    "Every morning she opened the shutters before the sun came up.",
    # Never inside a name, or beside a number or an abbreviation.
    "We drove from Stratford upon Avon back home through the quiet villages of the north.",
    "The train leaves platform 9 at 10 in the morning from the old station downtown.",
    "Prices rose approx. in every single month of that long and very difficult year.",
    # Never inside quotes or brackets.
    'She said "the old house by the river" was sold for a very good price last week.',
    # Never a fragment of one or two words on either side.
    "Thunderstorms everywhere near the coast made the long journey home very slow indeed.",
])
def test_no_phrase_cut_where_it_would_hurt(text: str) -> None:
    first = split_pieces(text, STREAMING_SPLIT)[0].text
    assert first == split_pieces(text, UNARY_SPLIT)[0].text


def test_the_phrase_cut_is_for_streams_and_long_enough_sentences_only() -> None:
    sentence = "The little bakery near the station sells fresh bread every morning."
    assert texts(sentence, UNARY_SPLIT) == [sentence]
    assert texts(sentence, SplitPolicy(first_clause_chars=12)) == [sentence]  # no phrase cut
    short = "Please call me back when you get home from work tonight."  # 57 < 60 characters
    assert texts(short, STREAMING_SPLIT) == [short]
    # A sentence with a clause mark is cut there, not at a phrase.
    assert texts("The little bakery near the station, they say, sells fresh bread daily.",
                 STREAMING_SPLIT)[0] == "The little bakery near the station,"
