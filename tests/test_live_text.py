"""LiveText: messages arriving over time become pieces, flush marks and the end, with limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tts_service.calls.live_text import LiveText, Mark, TextInput
from tts_service.calls.request import Limits
from tts_service.errors import IdleTimeout, InvalidRequest
from tts_service.language.sentences import Piece

TIMEOUT_S = 10


async def _inputs(*items: TextInput, then_wait: bool = False) -> AsyncIterator[TextInput]:
    for item in items:
        yield item
    if then_wait:
        await asyncio.Event().wait()  # the caller stays connected and silent


async def _events(live: LiveText) -> list[str]:
    """Everything up to END, as piece texts and mark names."""
    events: list[str] = []
    while (event := await asyncio.wait_for(live.next(), TIMEOUT_S)) is not Mark.END:
        events.append(event.text if isinstance(event, Piece) else event.name)
    return events


async def test_sentences_flushes_and_the_end_come_in_text_order() -> None:
    live = LiveText(_inputs(TextInput("One. Tw"), TextInput("o, three", flush=True),
                            TextInput(" four.")), Limits(max_text_chars=100))
    assert await _events(live) == ["One.", "Two, three", "FLUSH", "four."]
    assert live.segmenter.text == "One. Two, three four."


async def test_waiting_messages_are_taken_however_late_the_reader_comes_back() -> None:
    now = [0.0]
    live = LiveText(_inputs(TextInput("Hello there. "), TextInput("Bye.")),
                    Limits(max_text_chars=100, idle_timeout_s=1.0), clock=lambda: now[0])
    for _ in range(10):  # the reader task queues both messages
        await asyncio.sleep(0)
    now[0] = 60.0  # e.g. the synthesis of a long flush kept the caller of next() away
    assert await _events(live) == ["Hello there.", "Bye."]


async def test_text_over_the_limit_names_the_field() -> None:
    live = LiveText(_inputs(TextInput("a" * 60), TextInput("b" * 41)), Limits(max_text_chars=100))
    with pytest.raises(InvalidRequest) as over:
        await _events(live)
    assert over.value.field == "text"
    assert "101 characters" in str(over.value)


async def test_a_bad_message_is_raised_in_its_place() -> None:
    async def inputs() -> AsyncIterator[TextInput]:
        yield TextInput("Said. ")
        raise InvalidRequest("config", "config is allowed only in the first message")

    live = LiveText(inputs(), Limits(max_text_chars=100))
    assert (await asyncio.wait_for(live.next(), TIMEOUT_S)) == Piece(0, 5, "Said.")
    with pytest.raises(InvalidRequest, match="only in the first message"):
        await asyncio.wait_for(live.next(), TIMEOUT_S)


async def test_silence_past_the_idle_timeout_ends_the_call() -> None:
    live = LiveText(_inputs(TextInput("Half a sen"), then_wait=True),
                    Limits(max_text_chars=100, idle_timeout_s=0.3, max_wait_s=0.1))
    # The max wait comes first and speaks what it can; then the silence ends the call.
    assert (await asyncio.wait_for(live.next(), TIMEOUT_S)) == Piece(0, 6, "Half a")
    with pytest.raises(IdleTimeout, match=r"no message and no audio for 0\.3 s"):
        await asyncio.wait_for(live.next(), TIMEOUT_S)
    live.close()
