"""Cuts text that arrives in pieces into the pieces to synthesize, as soon as each is certain.

The cuts are the ones `sentences.split_pieces` makes on the whole text (same sentence, clause and
abbreviation rules), so text sent in pieces sounds like the same text sent at once: a span is
handed out only when no later character can change it. A period followed by more text
("3.5", "e.g.", "J. R. R.") is decided by the characters after it, so the segmenter waits for
them. Only a flush, or text left waiting longer than `max_wait_s`, cuts elsewhere.

Pure: it reads no clock (callers pass `now`, in seconds on any monotonic clock).
"""

from __future__ import annotations

import re
from collections import deque

from tts_service.language.sentence_rules import ENGLISH_RULES, SentenceRules
from tts_service.language.sentences import (
    CLAUSE_END,
    Piece,
    SplitPolicy,
    cut_sentence,
    says_something,
    sentence_bounds,
    to_pieces,
)

# Text whose end looks like a sentence or clause end: after a max wait, the best place to cut.
_ENDS_AT_A_MARK = re.compile(
    "[.!?\u2026\u0964\u0965,;:\u3002\uff01\uff1f\u3001\uff0c\uff1b\uff1a]+"
    "[\"'\u201d\u2019)\\]\u300d]*\\s*$")
_SPACE = re.compile(r"\s+")
_ENDS_IN_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]$")


class Segmenter:
    """Accumulates a call's text and hands out its pieces in order, each exactly once.

    Offsets in the pieces count from the start of all the text fed so far.
    """

    def __init__(self, policy: SplitPolicy | None = None, max_wait_s: float = 2.0,
                 rules: SentenceRules = ENGLISH_RULES) -> None:
        self.policy = policy or SplitPolicy()
        self.rules = rules  # the language's abbreviations and phrase openers
        self.max_wait_s = max_wait_s
        self.text = ""
        self._sentence_start = 0  # where the sentence being written starts
        self._spoken_to = 0  # everything before this offset has been handed out
        self._first = True  # no sentence with something to say has ended yet
        self._arrivals: deque[tuple[int, float]] = deque()  # (end offset of a feed, its time)

    @property
    def pending(self) -> str:
        """The text received but not handed out yet."""
        return self.text[self._spoken_to:]

    @property
    def deadline(self) -> float | None:
        """When the oldest text still waiting has waited `max_wait_s`; None if none waits."""
        if not self._arrivals or not any(ch.isalnum() for ch in self.pending):
            return None
        return self._arrivals[0][1] + self.max_wait_s

    def feed(self, text: str, now: float) -> list[Piece]:
        """Adds text (joined verbatim) and returns the pieces that are now certain."""
        if text:
            self.text += text
            self._arrivals.append((len(self.text), now))
        bounds = sentence_bounds(self.text, self._sentence_start, self.rules)
        spans: list[tuple[int, int]] = []
        for start, end in bounds[:-1]:
            spans += cut_sentence(self.text, start, end, self.policy, self._first,
                                  rules=self.rules)
            self._first = self._first and not says_something(self.text, start, end)
        open_start, open_end = bounds[-1]
        # In the sentence still being written, every span but the last is already final.
        spans += cut_sentence(self.text, open_start, open_end, self.policy, self._first,
                              complete=False, rules=self.rules)[:-1]
        self._sentence_start = open_start
        return self._hand_out([span for span in spans if span[0] >= self._spoken_to])

    def flush(self) -> list[Piece]:
        """Hands out everything received, cutting the unfinished sentence where it stops."""
        pieces = self.feed("", 0.0)
        # The end of the text ends the sentence being written: it is cut as split_pieces cuts
        # a text's last sentence, from its start, so a first clause already handed out is
        # not looked for again in the rest.
        start, end = self._sentence_start, len(self.text)
        spans = [span for span in cut_sentence(self.text, start, end, self.policy, self._first,
                                               rules=self.rules)
                 if span[0] >= self._spoken_to]
        self._first = self._first and not says_something(self.text, start, end)
        self._sentence_start = end
        return pieces + self._hand_out(spans)

    def expire(self, now: float) -> list[Piece]:
        """After the max wait, hands out the waiting text up to the best break available.

        The best break is the very end when it is a sentence or clause mark, a space or a
        Chinese or Japanese character, else the last clause mark, else the last space (the text
        after it may be an unfinished word). A single unfinished word keeps waiting: it is
        spoken on the next space, flush or close.
        """
        deadline = self.deadline
        if deadline is None or now < deadline:
            return []
        pending = self.pending
        cut_at: int | None = None
        # Chinese and Japanese put no space between words: after a kana or an ideograph, the
        # end is as good a break as any.
        if _ENDS_AT_A_MARK.search(pending) or pending[-1:].isspace() or \
                _ENDS_IN_CJK.search(pending):
            cut_at = len(pending)
        else:
            marks = [m.end() for m in CLAUSE_END.finditer(pending)]
            spaces = [m.start() for m in _SPACE.finditer(pending.rstrip())
                      if pending[:m.start()].strip()]
            breaks = marks or spaces
            cut_at = breaks[-1] if breaks else None
        if cut_at is None:
            # Wait another max_wait before looking again rather than on every call.
            self._arrivals = deque([(len(self.text), now)])
            return []
        return self._cut_at(self._spoken_to + cut_at)

    def _cut_at(self, end: int) -> list[Piece]:
        """Hands out [spoken_to, end) as its own sentence; the next one starts at `end`."""
        spans = cut_sentence(self.text, self._spoken_to, end, self.policy, self._first,
                             rules=self.rules)
        self._first = self._first and not says_something(self.text, self._spoken_to, end)
        self._sentence_start = end
        return self._hand_out(spans)

    def _hand_out(self, spans: list[tuple[int, int]]) -> list[Piece]:
        if spans:
            self._spoken_to = spans[-1][1]
            while self._arrivals and self._arrivals[0][0] <= self._spoken_to:
                self._arrivals.popleft()
        return to_pieces(self.text, spans)
