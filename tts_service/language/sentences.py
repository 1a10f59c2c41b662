"""Splits request text into the pieces synthesized one at a time, keeping their offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tts_service.language.sentence_rules import ENGLISH_RULES, SentenceRules

# A sentence ends at . ! ? … or Hindi's danda । ॥ (with closing quotes or brackets) followed
# by white space, at a line break, or at Chinese and Japanese 。！？ (with closing brackets),
# which no space follows: those languages write none between words or sentences.
_SENTENCE_END = re.compile("[.!?\u2026\u0964\u0965]+[\"'\u201d\u2019)\\]]*(?=\\s)|\n"
                           "|[\u3002\uff01\uff1f]+[\u300d\u300f\uff09\u201d\u2019]*")
# Clause marks: , ; : before a space, a dash between spaces, or CJK 、，；：.
CLAUSE_END = re.compile(r"[,;:]+(?=\s)|\s[-\u2013\u2014]+\s|[\u3001\uff0c\uff1b\uff1a]+")
_SPACE = re.compile(r"\s")
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")
_WORD = re.compile(r"\S+")
# A phrase cut leaves at least this many words on each side: never a fragment of one or two.
_MIN_PHRASE_WORDS = 3
# The share of the sentence a phrase cut's first part may hold, and the share it aims for. The
# rest is made meanwhile on another engine and must be ready when the first part has played:
# with a single-thread engine's real-time factor r that takes a share of at least r / (1 + 2r).
# 0.3 holds up to r = 0.75; r measured 0.36 to 0.66 on 2-core machines here, and a fifth (the
# earlier floor) left a 0.53 s gap mid-sentence at 0.66 (bench/machine.py's least margin).
_PHRASE_SHARE = (0.3, 0.5)
_PHRASE_AIM = 0.4


@dataclass(frozen=True)
class Piece:
    """A part of the request text: `text == source[start:end]`, stripped of outer spaces."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class SplitPolicy:
    """How finely text is cut.

    An engine synthesizes one piece at a time, so the first piece's length sets the time to
    first audio. With `first_clause_chars` set, the first sentence is cut at its first clause
    mark that leaves at least that many characters on both sides; failing that, a first
    sentence of at least `first_phrase_chars` (None: never) is cut where a phrase opens
    (before "near", "because", "while"..., the language's `SentenceRules.phrase_openers`),
    three tenths to half of the way in. Sentences
    longer than `clause_split_chars` (None: never) are cut at clause marks into parts of at least
    `min_clause_chars`; anything still longer than `max_piece_chars` is cut at white space,
    which bounds the engine's memory per call.
    """

    clause_split_chars: int | None = 100
    min_clause_chars: int = 40
    max_piece_chars: int = 400
    first_clause_chars: int | None = None
    first_phrase_chars: int | None = None


# Streamed calls: a short first piece for early first audio, then clauses of sentences over
# 60 characters. Short pieces keep a newcomer's wait for an engine short (it waits for the
# piece in progress) and gave the recognizer the same word error rate as whole sentences over
# the bench's 300-word text (0.130 both; with 100/40 pieces a short request waited 3.5x its
# lone first audio behind two long streams, 1.6x with these).
# A first sentence without a clause mark is cut at a phrase from 60 characters on: a second
# piece costs the engine a run's fixed work again (12% more CPU for a 57-character sentence in
# two pieces), which a shorter sentence's earlier first audio does not repay under load.
STREAMING_SPLIT = SplitPolicy(first_clause_chars=12, clause_split_chars=60, min_clause_chars=25,
                              first_phrase_chars=60)
# Unary calls gain nothing from short pieces, and whole sentences keep the engine's prosody
# (the recognizer heard clause-split audio worse: WER 0.202 split vs 0.143 whole).
UNARY_SPLIT = SplitPolicy(clause_split_chars=None)


def _is_abbreviation(text: str, period_at: int, rules: SentenceRules) -> bool:
    word_start = period_at
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:period_at].lower().lstrip("(\"'")
    # Single letters are initials ("J. R. R. Tolkien").
    if word in rules.abbreviations or (len(word) == 1 and word.isalpha()):
        return True
    # Dotted abbreviations ("p.m.", "U.S.") and final ones ("etc.") end a sentence only before
    # a capital letter.
    if _DOTTED.fullmatch(word) or word in rules.final_abbreviations:
        following = text[period_at + 1:].lstrip()
        return not (following[:1].isupper())
    return False


def sentence_bounds(text: str, start: int = 0,
                    rules: SentenceRules = ENGLISH_RULES) -> list[tuple[int, int]]:
    """Sentence spans of text[start:], the last one running to the end of the text.

    Every span but the last ends at a certain sentence end: one followed by white space.
    """
    bounds: list[tuple[int, int]] = []
    for match in _SENTENCE_END.finditer(text, start):
        if match.group().startswith(".") and _is_abbreviation(text, match.start(), rules):
            continue
        bounds.append((start, match.end()))
        start = match.end()
    bounds.append((start, len(text)))
    return bounds


def _cut(text: str, start: int, end: int, pattern: re.Pattern[str], min_chars: int,
         max_chars: int) -> list[tuple[int, int]]:
    """Cuts text[start:end] after matches of `pattern`, keeping parts >= min_chars."""
    if end - start <= max_chars:
        return [(start, end)]
    parts: list[tuple[int, int]] = []
    part_start = start
    for match in pattern.finditer(text, start, end):
        cut_at = match.end()
        if cut_at - part_start >= min_chars and end - cut_at >= min_chars:
            parts.append((part_start, cut_at))
            part_start = cut_at
    parts.append((part_start, end))
    return parts


def _hard_cut(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """Cuts at the last white space before each max_chars boundary (or anywhere if none)."""
    parts = []
    while end - start > max_chars:
        limit = start + max_chars
        space = max((m.start() for m in _SPACE.finditer(text, start + 1, limit)), default=-1)
        cut_at = space if space > start else limit
        parts.append((start, cut_at))
        start = cut_at
    parts.append((start, end))
    return parts


def _strip(text: str, start: int, end: int) -> Piece | None:
    chunk = text[start:end]
    stripped = chunk.strip()
    if not stripped or not any(ch.isalnum() for ch in stripped):
        return None
    offset = start + (len(chunk) - len(chunk.lstrip()))
    return Piece(start=offset, end=offset + len(stripped), text=stripped)


def _first_clause(text: str, start: int, end: int, min_chars: int) -> list[tuple[int, int]]:
    """Cuts text[start:end] after its first clause mark with min_chars on both sides."""
    for match in CLAUSE_END.finditer(text, start, end):
        if len(text[start:match.end()].strip()) >= min_chars and \
                len(text[match.end():end].strip()) >= min_chars:
            return [(start, match.end()), (match.end(), end)]
    return [(start, end)]


def _among(word: str, words: frozenset[str]) -> bool:
    """Whether `word` is one of `words`, or begins with one elided there ("lorsqu'il")."""
    word = word.replace("\u2019", "'")
    apostrophe = word.find("'")
    return word in words or (apostrophe > 0 and word[:apostrophe + 1] in words)


def _opens_phrase(word: str, following: str, rules: SentenceRules) -> bool:
    return _among(word, rules.phrase_openers) or (
        word in rules.determined_openers and _among(following, rules.determiners))


def _first_phrase(text: str, start: int, end: int,
                  rules: SentenceRules) -> list[tuple[int, int]]:
    """Cuts text[start:end] before a word that opens a phrase, nearest two fifths of the way in.

    The first part must hold `_PHRASE_SHARE` of the sentence: shorter, the rest, made meanwhile
    on another engine, would not be ready when the first part has been played; longer, little
    first audio is gained. Never next to a number or an abbreviation, inside a name
    ("Stratford upon Avon", "Jack in the Box"), or inside quotes or brackets.
    """
    matches = list(_WORD.finditer(text, start, end))
    words, starts = [m.group() for m in matches], [m.start() for m in matches]
    head_start = starts[0] if starts else start
    length = len(text[head_start:end].rstrip())
    best: tuple[float, int] | None = None
    for index in range(_MIN_PHRASE_WORDS, len(words) - _MIN_PHRASE_WORDS + 1):
        head = text[head_start:starts[index]].rstrip()
        share = len(head) / length
        before, after = words[index - 1], words[index + 1: index + 3]
        opens = _opens_phrase(words[index], after[0], rules)
        in_name = before[:1].isupper() and any(word[:1].isupper() for word in after)
        if (opens and _PHRASE_SHARE[0] <= share <= _PHRASE_SHARE[1] and not in_name
                and not before.endswith(".")
                and not any(ch.isdigit() for ch in before + after[0])
                and not _unbalanced(head)):
            distance = abs(share - _PHRASE_AIM)
            if best is None or distance < best[0]:
                best = (distance, starts[index])
    if best is None:
        return [(start, end)]
    return [(start, best[1]), (best[1], end)]


def _unbalanced(head: str) -> bool:
    """Whether `head` leaves a quote or bracket open."""
    return (head.count("(") != head.count(")") or head.count("[") != head.count("]")
            or head.count('"') % 2 == 1 or head.count("\u201c") != head.count("\u201d"))


def cut_sentence(text: str, start: int, end: int, policy: SplitPolicy, first: bool = False,
                 complete: bool = True,
                 rules: SentenceRules = ENGLISH_RULES) -> list[tuple[int, int]]:
    """The spans text[start:end] (one sentence) is synthesized in: clauses, then hard cuts.

    `first` marks the text's first sentence with something to say, which
    `policy.first_clause_chars` may cut short. Each cut depends only on the text before it
    and on the sentence being long enough (first_clause_chars <= min_clause_chars), so for a
    sentence still being written every span but the last is already final. The phrase cut
    (`policy.first_phrase_chars`) weighs the whole sentence, so it is made only once the
    sentence is `complete`; a sentence it may cut has no earlier cut (no clause mark, no
    hard cut), so nothing of it has been handed out before.
    """
    parts = [(start, end)]
    if first and policy.first_clause_chars is not None:
        parts = _first_clause(text, start, end, policy.first_clause_chars)
    if (first and complete and len(parts) == 1 and policy.first_phrase_chars is not None
            and policy.first_phrase_chars <= len(text[start:end].strip())
            <= policy.max_piece_chars):
        parts = _first_phrase(text, start, end, rules)
    return [hard
            for part in parts
            for clause in _cut(text, *part, CLAUSE_END, policy.min_clause_chars,
                               policy.clause_split_chars
                               if policy.clause_split_chars is not None else end - start)
            for hard in _hard_cut(text, *clause, policy.max_piece_chars)]


def says_something(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] has a letter or digit for the engine to speak."""
    return _strip(text, start, end) is not None


def to_pieces(text: str, spans: list[tuple[int, int]]) -> list[Piece]:
    """The spans as pieces, without those with no letter or digit (the engine makes no sound
    for stray punctuation or emoji)."""
    return [piece for span in spans if (piece := _strip(text, *span)) is not None]


def split_pieces(text: str, policy: SplitPolicy = SplitPolicy(),
                 rules: SentenceRules = ENGLISH_RULES) -> list[Piece]:
    """Splits `text` into sentence or clause pieces with offsets into `text`, by the rules
    of its language."""
    spans: list[tuple[int, int]] = []
    first = True
    for start, end in sentence_bounds(text, rules=rules):
        spans += cut_sentence(text, start, end, policy, first, rules=rules)
        first = first and not says_something(text, start, end)
    return to_pieces(text, spans)
