"""Captions from word timings: the words cut into readable cues, written as SRT or WebVTT.

Pure and free of the server's packages, so the client writes its caption files with the same
cues the server serves (tts_client/captions.py).
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

# Netflix's Timed Text Style Guide (General Requirements, and its English guide): at most 42
# characters a line, at most 2 lines, an event on screen from 5/6 s (20 frames at 24 fps) to
# 7 s. The BBC's Subtitle Guidelines ask for the same shape (2 lines, about 37-42 characters).
MAX_LINE_CHARS: Final = 42
MAX_LINES: Final = 2
MIN_CUE_S: Final = 5 / 6
MAX_CUE_S: Final = 7.0
# A sentence that ends here lets the next one start a cue of its own, once this one is
# readable for long enough.
_SENTENCE_ENDS: Final = (".", "!", "?", "…", "。", "！", "？")

FORMATS: Final = ("srt", "vtt")
MEDIA_TYPES: Final = {"srt": "application/x-subrip", "vtt": "text/vtt"}


@dataclass(frozen=True)
class Word:
    """A spoken word: `text[start:end]` of the whole text, said from start_s to end_s."""

    start: int
    end: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Cue:
    """One caption on screen: its lines, from start_s to end_s."""

    start_s: float
    end_s: float
    lines: tuple[str, ...]


def cues(text: str, words: Sequence[Word]) -> list[Cue]:
    """The words cut into cues of at most MAX_LINES lines of MAX_LINE_CHARS and MAX_CUE_S.

    A cue shows the text from its first word up to the next cue's first word, punctuation
    included (the first cue from the start of the text); a new cue starts after a sentence's
    end once the cue has been up MIN_CUE_S, and whenever the next word would not fit. A cue
    shorter than MIN_CUE_S stays up longer, up to the next one's start.
    """
    # Where the text shown with each word ends: at the next word, or the end of the text.
    shown_ends = [later.start for later in words[1:]] + [len(text)]
    groups: list[tuple[int, int]] = []  # [first, last] word of each cue
    for number, word in enumerate(words):
        if groups:
            first = groups[-1][0]
            begin = 0 if not groups[:-1] else words[first].start
            fits = (word.end_s - words[first].start_s <= MAX_CUE_S
                    and len(_lines(text[begin:shown_ends[number]])) <= MAX_LINES)
            after_sentence = (any(mark in text[words[number - 1].end:word.start]
                                  for mark in _SENTENCE_ENDS)
                              and word.start_s - words[first].start_s >= MIN_CUE_S)
            if fits and not after_sentence:
                groups[-1] = (first, number)
                continue
        groups.append((number, number))
    made = [Cue(words[first].start_s, words[last].end_s,
                tuple(_lines(text[0 if not cue else words[first].start:shown_ends[last]])))
            for cue, (first, last) in enumerate(groups)]
    for number, cue in enumerate(made):
        later = made[number + 1].start_s if number + 1 < len(made) else float("inf")
        longest = min(cue.start_s + MIN_CUE_S, later)
        if cue.end_s < longest:
            made[number] = Cue(cue.start_s, longest, cue.lines)
    return made


def _lines(part: str) -> list[str]:
    # A word longer than a line is kept whole on its own line rather than cut mid-word.
    return textwrap.wrap(" ".join(part.split()), MAX_LINE_CHARS, break_long_words=False,
                         break_on_hyphens=False)


def srt(made: Sequence[Cue]) -> str:
    """SubRip: numbered cues, times as HH:MM:SS,mmm."""
    return "".join(f"{number}\n{_time(cue.start_s, ',')} --> {_time(cue.end_s, ',')}\n"
                   f"{chr(10).join(cue.lines)}\n\n" for number, cue in enumerate(made, 1))


def webvtt(made: Sequence[Cue]) -> str:
    """WebVTT: its header, then cues with times as HH:MM:SS.mmm; the text escaped as WebVTT
    reads it (& and <, which also keeps "-->" out of a cue)."""
    return "WEBVTT\n\n" + "".join(
        f"{_time(cue.start_s, '.')} --> {_time(cue.end_s, '.')}\n"
        f"{chr(10).join(html.escape(line, quote=False) for line in cue.lines)}\n\n"
        for cue in made)


WRITERS: Final[dict[str, Callable[[Sequence[Cue]], str]]] = {"srt": srt, "vtt": webvtt}


def _time(seconds: float, decimal_mark: str) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{decimal_mark}{millis % 1000:03d}"
