"""Pronunciation overrides: parsing, symbol checks and respellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.servers import MODEL_DIR
from tts_service.language.lexicon import (
    LexiconError,
    Overrides,
    Respeller,
    load_overrides,
    parse_overrides,
    read_symbols,
)

SYMBOLS = frozenset("təmˈAɾOkæd ɔɡpbn")


def _write(tmp_path: Path, text: str, name: str = "overrides.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_tokens_file_symbols_include_the_space_and_stress_marks(tmp_path: Path) -> None:
    tokens = _write(tmp_path, "; 1\n  16\nˈ 156\nA 24\n", "tokens.txt")
    assert read_symbols(tokens) == {";", " ", "ˈ", "A"}


@pytest.mark.model
def test_the_model_vocabulary_has_114_symbols() -> None:
    symbols = read_symbols(MODEL_DIR / "tokens.txt")
    assert len(symbols) == 114
    assert {" ", "ˈ", "ɾ", "A"} <= symbols


def test_spaced_and_compact_phonemes_mean_the_same(tmp_path: Path) -> None:
    path = _write(tmp_path, "# a comment\n\n  Tomato t ə m ˈ A ɾ O\nPotato  pətˈAɾO  \n")
    assert parse_overrides(path, SYMBOLS).phonemes == {
        "tomato": ("t", "ə", "m", "ˈ", "A", "ɾ", "O"),
        "potato": ("p", "ə", "t", "ˈ", "A", "ɾ", "O"),
    }


def test_a_later_line_for_the_same_word_wins(tmp_path: Path) -> None:
    path = _write(tmp_path, "cat k æ t\nCAT d ɔ ɡ\n")
    assert parse_overrides(path, SYMBOLS).phonemes == {"cat": ("d", "ɔ", "ɡ")}


def test_unknown_symbols_name_the_file_line_symbols_and_the_allowed_ones(
        tmp_path: Path) -> None:
    path = _write(tmp_path, "cat k æ t\n# fine\ngif ɡ ˈ ɪ f\nxyz kæ#\n")
    with pytest.raises(LexiconError) as caught:
        parse_overrides(path, SYMBOLS)
    message = str(caught.value)
    assert str(path) in message
    assert "line 3: 'gif' uses unknown phoneme symbols 'f', 'ɪ'" in message
    assert "line 4: 'xyz' uses unknown phoneme symbols '#'" in message
    assert "line 1" not in message
    assert "allowed symbols (tokens.txt): " in message
    assert "ɾ" in message.split("allowed symbols")[1]


def test_a_word_without_phonemes_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "cat\n")
    with pytest.raises(LexiconError, match=r"line 1: 'cat' has no phonemes"):
        parse_overrides(path, SYMBOLS)


def test_many_bad_lines_are_summarized(tmp_path: Path) -> None:
    path = _write(tmp_path, "".join(f"w{n}\n" for n in range(15)))
    with pytest.raises(LexiconError, match=r"and 5 more bad lines"):
        parse_overrides(path, SYMBOLS)


def test_a_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(LexiconError, match=r"cannot read the lexicon overrides file .*nope"):
        parse_overrides(tmp_path / "nope.txt", SYMBOLS)


def test_load_checks_against_the_tokens(tmp_path: Path) -> None:
    tokens = _write(tmp_path, "k 1\nO 2\n  16\n", "tokens.txt")
    bad = _write(tmp_path, "kokoro k O k O ɹ O\n")
    with pytest.raises(LexiconError, match="'ɹ'"):
        load_overrides(bad, tokens)
    good = _write(tmp_path, "kokoro kOkO\n")
    assert load_overrides(good, tokens).phonemes == {"kokoro": ("k", "O", "k", "O")}


def test_respellings_are_read_beside_phonemes(tmp_path: Path) -> None:
    path = _write(tmp_path, "GIF = jif\nnginx = engine x\ncat k æ t\n")
    overrides = parse_overrides(path, SYMBOLS)
    assert overrides == Overrides(phonemes={"cat": ("k", "æ", "t")},
                                  respellings={"gif": "jif", "nginx": "engine x"})


def test_a_respelling_must_be_plain_letters(tmp_path: Path) -> None:
    path = _write(tmp_path, "gif = ʤɪf\nsql =\n")
    with pytest.raises(LexiconError, match=r"line 1: respell 'gif' with plain letters.*line 2"):
        parse_overrides(path, SYMBOLS)


def test_respeller_replaces_whole_words_in_any_case() -> None:
    respell = Respeller({"gif": "jif", "nginx": "engine x"})
    assert respell("A GIF and a gif, via Nginx.") == "A jif and a jif, via engine x."
    assert respell("gifted gifs don't change; gif's do") == "gifted gifs don't change; gif's do"
    assert Respeller({})("unchanged text") == "unchanged text"
