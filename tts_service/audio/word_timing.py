"""When each word is spoken: the model's per-token durations mapped back to the caller's text.

Kokoro gives every input token a duration in frames of 600 samples. The engine's token
sequence has word boundaries (the space, the punctuation, the pads), so the tokens between two
boundaries are one spoken word with an exact start and end. Spoken words do not always match
written ones (espeak-ng merges "I am" into one word, normalization turns "$5.50" into four),
so the two sequences are aligned by length, and written words that share sound, or that
normalization made from one piece of the caller's text, become one timed span.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Kokoro's decoder makes 600 samples (25 ms at 24 kHz) per duration frame.
SAMPLES_PER_FRAME = 600
# The model's sound for a token starts before the token's frames: the decoder's convolutions
# start a word's onset (fricatives, aspiration) early. Measured here on 12 sentences as the
# first audible sample (|x| > 0.01) against the end of the leading pad's frames: 13 to 88 ms,
# median 51 ms; so word times are moved 2 frames (50 ms) earlier (docs/word-timings.md).
SOUND_LEAD_FRAMES = 2
# The id sherpa-onnx pads each sentence with, at both ends; it is not in tokens.txt.
PAD_ID = 0
# Symbols of tokens.txt that separate words: space and punctuation (the rest are phonemes and
# stress marks, which belong to a word).
_SEPARATOR_SYMBOLS = frozenset(" ;:,.!?\u2014\u2026\"()\u201c\u201d")
# Chinese and Japanese write no space between words, so each kana or ideograph is a written
# word of its own; the alignment joins them into the front end's words (jieba's for Chinese,
# MeCab's for Japanese), which are what gets timed.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A word character that is not CJK, or a combining mark (Devanagari's vowel signs and
# virama, decomposed accents), which Python's \w leaves out.
_LETTER = rf"[^\W{_CJK}]|[\u0300-\u036f\u0900-\u0963\u0966-\u097f]|'"
_WORD = re.compile(rf"[{_CJK}]|(?:{_LETTER})+")
# A word as the caller wrote it, with what normalization reads as part of it ("$5.50", "50%").
_SOURCE_WORD = re.compile(
    rf"[{_CJK}]|[$\u20ac\u00a3\u00a5#@+-]?(?:{_LETTER})(?:(?:{_LETTER}|[.,:/%-])*(?:{_LETTER}|%))?")
# Kokoro symbols per kana (a mora) and per ideograph (a Chinese syllable, or a Japanese
# reading of one or more moras), against about one per letter elsewhere.
_KANA = re.compile("[\u3040-\u30ff]")
_KANA_TOKENS, _IDEOGRAPH_TOKENS = 2.0, 4.0
# Costs of the alignment, in units of |log(length ratio)|: a written word with no sound of its
# own, or sound with no written word, costs more than a merge of two words into one.
_MERGE_COST = 0.35
_UNMATCHED_COST = 1.5
# Written words per spoken word and back: four, for Chinese words of four characters.
_MAX_BLOCK = 4


@dataclass(frozen=True)
class SpokenWord:
    """The sound of one word of the engine's token sequence, in samples of its chunk."""

    start_sample: int
    end_sample: int
    tokens: int


@dataclass(frozen=True)
class TimedSpan:
    """A part of a piece's text (code points, `[start, end)`) and when it is spoken."""

    start: int
    end: int
    start_sample: int
    end_sample: int


def separator_ids(tokens_txt: Path) -> frozenset[int]:
    """The ids of tokens.txt that separate words, plus the pad."""
    ids = {PAD_ID}
    for line in tokens_txt.read_text(encoding="utf-8").splitlines():
        symbol, _, token_id = line.rpartition(" ")
        # "SYMBOL ID"; the space symbol's line is " ID" (and a bare "ID" line means space too).
        if symbol in _SEPARATOR_SYMBOLS or symbol == "" or symbol.isspace():
            ids.add(int(token_id))
    return frozenset(ids)


def spoken_words(token_ids: Sequence[int], durations: Sequence[int], separators: frozenset[int],
                 position: Callable[[int], int] = int) -> list[SpokenWord]:
    """Groups the tokens between separators; `position` maps model samples to chunk samples."""
    def sample(frame: int) -> int:
        return position(max(0, frame - SOUND_LEAD_FRAMES) * SAMPLES_PER_FRAME)

    words: list[SpokenWord] = []
    frame = 0
    start: int | None = None
    count = 0
    for token_id, frames in zip(token_ids, durations, strict=True):
        if int(token_id) in separators:
            if start is not None:
                words.append(SpokenWord(sample(start), sample(frame), count))
                start = None
        elif start is None:
            start, count = frame, 1
        else:
            count += 1
        frame += int(frames)
    if start is not None:
        words.append(SpokenWord(sample(start), sample(frame), count))
    return words


@dataclass(frozen=True)
class _Written:
    """A word of the text the engine read, with the caller's text it stands for."""

    text: str
    start: int  # in the caller's text (the piece), code points
    end: int


def _written_words(original: str, spoken_text: str) -> list[_Written]:
    """The words the engine read, each with the span of the caller's text it came from.

    Words that rewriting (normalization, respelling) left alone map to themselves; words it
    made map to the whole stretch of the caller's text it replaced ("$5.50" for all of "five
    dollars fifty cents").
    """
    source = [(m.group(), m.start(), m.end()) for m in _SOURCE_WORD.finditer(original)]
    target = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(spoken_text)]
    if not target:
        return []
    matcher = difflib.SequenceMatcher(
        a=[w.lower() for w, _, _ in source], b=[w.lower() for w, _, _ in target], autojunk=False)
    written: list[_Written] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "delete":
            continue
        if tag == "equal":
            written.extend(_Written(target[b0 + k][0], source[a0 + k][1], source[a0 + k][2])
                           for k in range(b1 - b0))
            continue
        if a1 > a0:
            start, end = source[a0][1], source[a1 - 1][2]
        elif source:
            # Words the rewriting added with nothing to replace: they belong to a neighbour.
            near = source[a0 - 1] if a0 > 0 else source[0]
            start, end = near[1], near[2]
        else:
            start, end = 0, len(original)
        written.extend(_Written(target[k][0], start, end) for k in range(b0, b1))
    return written


def _expected_tokens(word: str) -> float:
    # About one phoneme per letter; only ratios matter, the alignment rescales them.
    if _KANA.match(word):
        return _KANA_TOKENS
    if re.match(f"[{_CJK}]", word):
        return _IDEOGRAPH_TOKENS
    return float(len(word))


def _align(written: Sequence[_Written], spoken: Sequence[SpokenWord]
           ) -> tuple[float, list[tuple[int, int, int, int]]]:
    """Monotonic alignment of all written words to all spoken words, by length.

    Returns its cost and the blocks (w0, w1, s0, s1): written words [w0, w1) are spoken as
    spoken words [s0, s1); either side may be empty (a word with no sound, or sound with no
    word), at a price.
    """
    n, m = len(written), len(spoken)
    # Running totals: a block's length is a difference of two of them.
    want_upto = list(itertools.accumulate((_expected_tokens(w.text) for w in written),
                                          initial=0.0))
    got_upto = list(itertools.accumulate((s.tokens for s in spoken), initial=0))
    scale = got_upto[m] / want_upto[n] if want_upto[n] else 1.0
    cost = [[math.inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int]]] = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            here = cost[i][j]
            if here == math.inf:
                continue
            for a in range(_MAX_BLOCK + 1):
                for b in range(_MAX_BLOCK + 1):
                    if i + a > n or j + b > m or a + b == 0 or (a * b == 0 and a + b > 1):
                        continue
                    if a * b == 0:
                        step = _UNMATCHED_COST
                    else:
                        want = (want_upto[i + a] - want_upto[i]) * scale
                        got = got_upto[j + b] - got_upto[j]
                        step = abs(math.log((got + 1) / (want + 1))) + _MERGE_COST * (a + b - 2)
                    if here + step < cost[i + a][j + b]:
                        cost[i + a][j + b] = here + step
                        back[i + a][j + b] = (i, j)
    blocks: list[tuple[int, int, int, int]] = []
    i, j = n, m
    while (i, j) != (0, 0):
        pi, pj = back[i][j]
        blocks.append((pi, i, pj, j))
        i, j = pi, pj
    blocks.reverse()
    return cost[n][m], blocks


class PieceTimer:
    """Times the words of one piece, run by run, as the engine speaks it.

    `original` is the piece as the caller wrote it, `spoken_text` what the engine was given
    (after respelling and normalization). The engine may split a piece into several sentences
    (one model run and one audio chunk each); `take` maps one run's spoken words to the next
    written words.
    """

    def __init__(self, original: str, spoken_text: str) -> None:
        self._written = _written_words(original, spoken_text)
        self._sentence_ends = {
            k + 1 for k, m in enumerate(_WORD.finditer(spoken_text))
            if re.match(r"[^\w']*[.!?\u2026\u3002\uff01\uff1f]", spoken_text[m.end():])
        }
        self._next = 0

    def take(self, spoken: Sequence[SpokenWord], last: bool) -> list[TimedSpan]:
        """The spans spoken in one run; `last` when it is the piece's final run."""
        remaining = self._written[self._next:]
        if not remaining or not spoken:
            if last:
                self._next = len(self._written)
            return []
        # The engine speaks whole sentences: a run that is not the last one ends where a
        # sentence of the text ends; the alignment that fits best says which.
        ends = [len(remaining)]
        if not last:
            ends = [end - self._next for end in sorted(self._sentence_ends)
                    if self._next < end < self._next + len(remaining)] + ends
        used, (_, blocks) = min(((end, _align(remaining[:end], spoken)) for end in ends),
                                key=lambda found: found[1][0])
        self._next += used
        return _spans(remaining[:used], spoken, blocks)


def _spans(written: Sequence[_Written], spoken: Sequence[SpokenWord],
           blocks: Sequence[tuple[int, int, int, int]]) -> list[TimedSpan]:
    spans: list[TimedSpan] = []
    pending_text: tuple[int, int] | None = None  # written words with no sound of their own
    for w0, w1, s0, s1 in blocks:
        text = ((min(w.start for w in written[w0:w1]), max(w.end for w in written[w0:w1]))
                if w1 > w0 else None)
        if s1 == s0:  # silent written words: part of the next span (or the previous one)
            assert text is not None
            pending_text = _union(pending_text, text)
            continue
        start_sample, end_sample = spoken[s0].start_sample, spoken[s1 - 1].end_sample
        if text is None:  # sound with no written word: the previous span lasts longer
            if spans:
                spans[-1] = _extend(spans[-1], spans[-1].start, spans[-1].end, end_sample)
            continue
        text = _union(pending_text, text)
        pending_text = None
        # Words that share a piece of the caller's text ("$5.50") or sound become one span.
        if spans and text[0] < spans[-1].end:
            last = spans[-1]
            spans[-1] = _extend(last, min(last.start, text[0]), max(last.end, text[1]),
                                end_sample)
        else:
            spans.append(TimedSpan(text[0], text[1], start_sample, end_sample))
    if pending_text is not None and spans:
        last = spans[-1]
        spans[-1] = _extend(last, last.start, max(last.end, pending_text[1]), last.end_sample)
    return spans


def _union(a: tuple[int, int] | None, b: tuple[int, int]) -> tuple[int, int]:
    return b if a is None else (min(a[0], b[0]), max(a[1], b[1]))


def _extend(span: TimedSpan, start: int, end: int, end_sample: int) -> TimedSpan:
    return TimedSpan(start, end, span.start_sample, max(span.end_sample, end_sample))
