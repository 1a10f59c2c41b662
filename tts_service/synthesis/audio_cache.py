"""The audio of recently spoken pieces, so that a phrase said again comes back at once.

An assistant says the same things again and again ("Turned on the kitchen lights."). A piece's
audio depends only on what the model is given, so the key is exactly that: its tokens, the
speaker (a voice or a start-up blend: each has its own speaker id; a voice mixed per request
also its formula, whose table replaces the speaker's), the speed, and the model and runtime
that made it. The caller's text, language and normalizing only matter through the
tokens; encoding, sample rate and volume apply after the cache. Entries keep the engine's
sentences with their spoken words, so word timings work on a hit. Bounded in bytes, least
recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tts_service.synthesis.engine import Sentence


@dataclass(frozen=True)
class AudioKey:
    """Everything that changes a piece's samples."""

    phonemes: str
    speaker_id: int
    speed: float
    model: str  # the model's files and the runtime that runs them
    style: str = ""  # a voice mixed per request: its formula (Style.name); else empty


class AudioCache:
    """Sentences by AudioKey, at most `max_bytes` of samples; safe across threads.

    `timed` entries hold the words of each sentence: an untimed one cannot answer a timed
    request, which then makes (and stores) it anew.
    """

    def __init__(self, max_bytes: int, on_hit: Callable[[], object] = lambda: None,
                 on_miss: Callable[[], object] = lambda: None) -> None:
        self.max_bytes = max_bytes
        self._on_hit, self._on_miss = on_hit, on_miss
        self._entries: OrderedDict[AudioKey, tuple[tuple[Sentence, ...], bool, int]] = \
            OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: AudioKey, timed: bool) -> tuple[Sentence, ...] | None:
        """The sentences made for `key` (with words, if `timed`), else None; counted."""
        if not self.enabled:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is not None and (found[1] or not timed):
                self._entries.move_to_end(key)
                sentences = found[0]
            else:
                sentences = None
        (self._on_miss if sentences is None else self._on_hit)()
        return sentences

    def put(self, key: AudioKey, sentences: Sequence[Sentence], timed: bool) -> None:
        """Remembers a piece's whole audio; the oldest entries make room for it."""
        size = sum(sentence.samples.nbytes for sentence in sentences)
        if not self.enabled or size > self.max_bytes:
            return
        frozen = []
        for sentence in sentences:
            samples = sentence.samples.copy()
            samples.setflags(write=False)  # shared by every later hit
            frozen.append(Sentence(samples, sentence.words, sentence.last))
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self._entries[key] = (tuple(frozen), timed, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped
