"""One call's text arriving over time, turned into pieces, flush marks and the end, in order.

It applies the limits of a streamed text: the total length, the idle timeout (no message
and no audio for that long), and the max wait after which waiting text is cut at the best
break.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum

from tts_service.calls.request import Limits, check_text, check_text_length
from tts_service.errors import IdleTimeout
from tts_service.language.segmenter import Segmenter
from tts_service.language.sentence_rules import ENGLISH_RULES, SentenceRules
from tts_service.language.sentences import Piece

# Messages read ahead of the synthesis; past that, gRPC's flow control holds the caller back.
_INBOX_MESSAGES = 64


@dataclass(frozen=True)
class TextInput:
    """One message's worth: text joined verbatim to the text before, and maybe a flush."""

    text: str = ""
    flush: bool = False


class Mark(Enum):
    FLUSH = "flush"  # all text received up to the caller's flush has been handed out
    END = "end"  # the caller finished and all its text has been handed out


class LiveText:
    """Reads `inputs` in its own task; `next()` returns what to do next, in text order."""

    def __init__(self, inputs: AsyncIterator[TextInput], limits: Limits,
                 clock: Callable[[], float] = time.monotonic,
                 rules: SentenceRules = ENGLISH_RULES) -> None:
        # The call's language's sentence rules (its front end's).
        self.segmenter = Segmenter(limits.stream_split, limits.max_wait_s, rules)
        self._limits = limits
        self._clock = clock
        self._inbox: asyncio.Queue[tuple[TextInput | Exception | None, float]] = \
            asyncio.Queue(_INBOX_MESSAGES)
        self._ready: deque[Piece | Mark] = deque()
        self._last_message_at = clock()
        self._ended = False
        self._reader = asyncio.ensure_future(self._read(inputs))

    def close(self) -> None:
        self._reader.cancel()

    def audio_sent(self) -> None:
        """Restarts the idle clock: a call whose audio is still flowing is not idle."""
        self._last_message_at = self._clock()

    async def next(self) -> Piece | Mark:
        """The next piece to speak, FLUSH, or END (then END forever); raises ServiceError."""
        while not self._ready:
            if self._ended:
                return Mark.END
            try:
                item, arrived_at = self._inbox.get_nowait()  # messages first, however late
            except asyncio.QueueEmpty:
                idle_deadline = self._last_message_at + self._limits.idle_timeout_s
                deadline = min(idle_deadline, self.segmenter.deadline or math.inf)
                try:
                    item, arrived_at = await asyncio.wait_for(
                        self._inbox.get(), max(0.0, deadline - self._clock()))
                except TimeoutError:
                    now = self._clock()
                    # Audio sent meanwhile moved the idle clock on.
                    if now >= self._last_message_at + self._limits.idle_timeout_s:
                        raise IdleTimeout(
                            f"no message and no audio for {self._limits.idle_timeout_s:g} s: "
                            "send text (an empty message keeps the call open) or half-close "
                            "the stream when the text is done") from None
                    self._ready.extend(self.segmenter.expire(now))
                    continue
            if isinstance(item, Exception):
                raise item
            if item is None:  # the caller half-closed: speak the rest
                self._ready.extend(self.segmenter.flush())
                self._ended = True
                continue
            check_text_length(len(self.segmenter.text) + len(item.text), self._limits)
            check_text(item.text)
            self._ready.extend(self.segmenter.feed(item.text, arrived_at))
            if item.flush:
                self._ready.extend(self.segmenter.flush())
                self._ready.append(Mark.FLUSH)
        return self._ready.popleft()

    async def items(self) -> AsyncIterator[Piece | Mark]:
        """The pieces and FLUSH marks in order, until the END; raises ServiceError."""
        while (item := await self.next()) is not Mark.END:
            yield item

    async def _read(self, inputs: AsyncIterator[TextInput]) -> None:
        """Queues each input with its arrival time (the idle and max-wait clocks run from
        there, however late `next()` gets to it)."""
        try:
            async for item in inputs:
                self._last_message_at = now = self._clock()
                await self._inbox.put((item, now))
        except Exception as err:  # e.g. a bad message: raised by next(), in order
            await self._inbox.put((err, self._clock()))
        else:
            await self._inbox.put((None, self._clock()))
