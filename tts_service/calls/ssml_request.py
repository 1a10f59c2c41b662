"""Checks an SSML request and turns it into directed pieces, before any work.

The document is read by language/ssml.py; here each of its stretches gets the voicing it asks
for (a voice, a speed, a language's front end, a loudness), is cut into pieces by that
language's rules like plain text, and keeps, character by character, its place in the
caller's SSML: word timings and marks point into the source the caller wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace

from tts_service.calls.live_text import TextInput
from tts_service.calls.request import (
    MAX_SPEED,
    MIN_SPEED,
    AskedSettings,
    Limits,
    SynthesisSettings,
    SynthesisSpec,
    build_settings,
    check_text,
    check_text_length,
)
from tts_service.errors import IdleTimeout, InvalidRequest, Unsupported
from tts_service.language.front_end import FrontEnds
from tts_service.language.languages import Language, matches
from tts_service.language.sentences import Piece, SplitPolicy
from tts_service.language.ssml import (
    Document,
    MarkPoint,
    Pause,
    Run,
    Speech,
    SsmlError,
    Style,
    parse,
)
from tts_service.model.voices import Voice, VoiceCatalog
from tts_service.synthesis.synthesizer import DirectedPiece, PausePiece, StyledPiece, Voicing

TEXT_FORMATS = ("text", "ssml")  # what a synthesis request's text may be written in
FIELD = "ssml"  # the domain's name for the request's SSML; each front names it its own way


def max_ssml_chars(limits: Limits) -> int:
    """The longest SSML source read, markup and all: as long as a request may be (its bytes
    cap every front's message), so markup may wrap the text many times over; the spoken text
    is counted apart, against max_text_chars."""
    return limits.max_request_bytes


async def next_document(inputs: AsyncIterator[TextInput], limits: Limits) -> tuple[str, bool]:
    """SSML sent over time (a WebSocket's text messages, Wyoming's chunks), joined up to the
    next flush or the end: the document, and whether the input has ended. A document is read
    only once it is whole; waiting for it is bounded like live text (idle timeout, size)."""
    limit = max_ssml_chars(limits)
    parts: list[str] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(limits.idle_timeout_s):
                text = await anext(inputs, None)
        except TimeoutError:
            raise IdleTimeout(f"no text for {limits.idle_timeout_s:g} s: send the rest of the "
                              "SSML document and end it") from None
        if text is None:
            return "".join(parts), True
        parts.append(text.text)
        size += len(text.text)
        if size > limit:
            raise InvalidRequest(FIELD, f"the SSML document is over {limit} characters: end "
                                 "each document sooner")
        if text.flush:
            return "".join(parts), False


def build_ssml_spec(source: str, asked: AskedSettings, *, streaming: bool,
                    catalog: VoiceCatalog, front_ends: FrontEnds, limits: Limits,
                    model_rate_hz: int, list_voices: str, marks_inside: bool = False
                    ) -> SynthesisSpec:
    """Validates the settings and the document (limits count the text it speaks, not its
    markup); raises InvalidRequest naming `ssml` with the line and column or the element.
    `marks_inside`: the engines time words, so a mark need not cut its sentence."""
    if not source.strip():
        raise InvalidRequest(FIELD, "ssml is empty: give a <speak> document")
    check_text(source)
    settings = build_settings(asked, streaming=streaming, catalog=catalog, front_ends=front_ends,
                              model_rate_hz=model_rate_hz, list_voices=list_voices)

    # Each <voice name> resolved once, as the parser checks it: any name a request's voice may
    # be, a mix included (read in the request's language, whatever its voices' languages).
    voices: dict[str, Voice] = {}

    def check_voice(name: str) -> str | None:
        try:
            voices[name] = catalog.resolve(name, settings.front_end.language.code)
        except (InvalidRequest, Unsupported) as err:
            return str(err)
        return None

    try:
        document = parse(source, settings.front_end.language, symbols=front_ends.symbols,
                         check_voice=check_voice, max_source_chars=max_ssml_chars(limits))
    except SsmlError as err:
        raise InvalidRequest(FIELD, f"ssml: {err}") from None
    check_text_length(document.spoken_chars, limits)
    pieces = _pieces(document, settings, catalog, voices, front_ends, model_rate_hz,
                     limits.stream_split if streaming else limits.unary_split, marks_inside)
    if not any(isinstance(piece, StyledPiece) for piece in pieces):
        raise InvalidRequest(FIELD, "ssml has no letters or digits to speak")
    return SynthesisSpec(**vars(settings), text=source, pieces=tuple(pieces))


@dataclass
class _Stretch:
    """Consecutive speech in one style, and the marks inside it: (offset in its text, name,
    offset in the caller's text)."""

    style: Style
    runs: list[Run]
    marks: list[tuple[int, str, int]]

    @property
    def length(self) -> int:
        return sum(len(run.text) for run in self.runs)


def _stretches(document: Document, marks_inside: bool
               ) -> Iterator[_Stretch | Pause | MarkPoint]:
    """The document's items, with speech of one style joined across the marks between it
    when `marks_inside` (the engines time words, so a mark is timed where its word starts and
    never cuts a sentence); otherwise each mark ends the speech before it."""
    current: _Stretch | None = None
    waiting: list[MarkPoint] = []  # marks after `current`, until it is known what follows
    for item in document.items:
        if isinstance(item, MarkPoint) and current is not None and marks_inside:
            waiting.append(item)
            continue
        if isinstance(item, Speech) and current is not None and item.style == current.style:
            current.marks += [(current.length, mark.name, mark.at) for mark in waiting]
            current.runs += item.runs
            waiting = []
            continue
        if current is not None:
            yield current
            yield from waiting
            current, waiting = None, []
        if isinstance(item, Speech):
            current = _Stretch(item.style, list(item.runs), [])
        else:
            yield item  # a pause, or a mark that ends the speech before it
    if current is not None:
        yield current
        yield from waiting


def _pieces(document: Document, settings: SynthesisSettings, catalog: VoiceCatalog,
            voices: dict[str, Voice], front_ends: FrontEnds, model_rate_hz: int,
            policy: SplitPolicy, marks_inside: bool) -> list[DirectedPiece]:
    """The document's pieces in order. A mark between pieces goes on the piece after it (or,
    at the end, on the last piece), reached where that piece's audio starts (or ends); one
    inside a piece is reached where its word starts."""
    pieces: list[DirectedPiece] = []
    marks: list[tuple[str, int]] = []
    for item in _stretches(document, marks_inside):
        if isinstance(item, MarkPoint):
            marks.append((item.name, item.at))
            continue
        if isinstance(item, Pause):
            made: list[DirectedPiece] = [PausePiece(
                item.at, item.at, "", samples=round(item.seconds * model_rate_hz))]
        else:
            made = list(_styled(item, settings, catalog, voices, front_ends, policy))
        if made and marks:
            made[0] = _with_marks(made[0], before=tuple(marks))
            marks = []
        pieces += made
    if marks and pieces:
        pieces[-1] = _with_marks(pieces[-1], after=tuple(marks))
    return [_beside_pauses(pieces, at) for at in range(len(pieces))]


def _beside_pauses(pieces: list[DirectedPiece], at: int) -> DirectedPiece:
    """The piece, told to lose the model's quiet at an edge that meets a <break>."""
    piece = pieces[at]
    if not isinstance(piece, StyledPiece):
        return piece
    after = at > 0 and isinstance(pieces[at - 1], PausePiece)
    before = at + 1 < len(pieces) and isinstance(pieces[at + 1], PausePiece)
    return replace(piece, trim_start=after, trim_end=before) if after or before else piece


def _with_marks(piece: DirectedPiece, before: tuple[tuple[str, int], ...] = (),
                after: tuple[tuple[str, int], ...] = ()) -> DirectedPiece:
    return replace(piece, marks_before=piece.marks_before + before,
                   marks_after=piece.marks_after + after)


def _styled(stretch: _Stretch, settings: SynthesisSettings, catalog: VoiceCatalog,
            voices: dict[str, Voice], front_ends: FrontEnds, policy: SplitPolicy
            ) -> Iterator[StyledPiece]:
    """One stretch of one style, cut into pieces by its language's rules, each with the
    marks that fall inside it."""
    style = stretch.style
    voice = (voices[style.voice] if style.voice
             else _reader(settings, catalog, style.language))
    speed = settings.speed * style.rate
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidRequest(FIELD, f"ssml: at offset {stretch.runs[0].start}, a rate of "
                             f"{style.rate:g} times the call's speed {settings.speed:g} is "
                             f"{speed:g}, outside [{MIN_SPEED}, {MAX_SPEED}]")
    # The call's front end carries its own pronunciations, in the call's language.
    front_end = (settings.front_end if style.language == settings.front_end.language
                 else front_ends[style.language])
    voicing = Voicing(voice.speaker_id, speed, front_end, settings.normalize,
                      timed=settings.word_timings, style=voice.style)
    text = "".join(run.text for run in stretch.runs)
    starts: list[int] = []
    ends: list[int] = []
    for run in stretch.runs:
        if run.exact:
            starts += range(run.start, run.end)
            ends += range(run.start + 1, run.end + 1)
        else:
            starts += [run.start] * len(run.text)
            ends += [run.end] * len(run.text)
    pieces = front_end.pieces(text, policy)
    marks = list(stretch.marks)
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        # A mark up to the piece's start is reached as it starts; one within it, at its word.
        before = [(name, source) for offset, name, source in marks if offset <= piece.start]
        inside = [(name, source, offset - piece.start) for offset, name, source in marks
                  if piece.start < offset < piece.end or (last and offset >= piece.end)]
        marks = [mark for mark in marks if mark[0] >= piece.end and not last]
        yield StyledPiece(
            starts[piece.start], ends[piece.end - 1], piece.text, voicing=voicing,
            gain_db=style.volume_db, runs=tuple(_clip(stretch.runs, piece)),
            starts=tuple(starts[piece.start:piece.end]), ends=tuple(ends[piece.start:piece.end]),
            marks_before=tuple(before), marks_inside=tuple(inside))


def _reader(settings: SynthesisSettings, catalog: VoiceCatalog, language: Language) -> Voice:
    """Who reads a stretch with no <voice>: the call's voice in its own language; in another
    language (<lang>), a voice of that language, of the call's voice's gender where there is
    one, since a Kokoro voice reads every language with its own accent."""
    voice = settings.voice
    if language == settings.front_end.language or matches(language.code, voice.language_code):
        return voice
    natives = catalog.list(language.code)
    same = [native for native in natives if native.gender == voice.gender]
    return (same or natives or [voice])[0]


def _clip(runs: Sequence[Run], piece: Piece) -> Iterator[Run]:
    """The runs' parts inside the piece, in order: their texts joined are the piece's."""
    offset = 0
    for run in runs:
        start, end = max(piece.start, offset), min(piece.end, offset + len(run.text))
        if start < end:
            part = run.text[start - offset:end - offset]
            if run.exact:
                yield Run(part, run.start + start - offset, run.start + end - offset,
                          phonemes=run.phonemes, normalize=run.normalize)
            else:
                yield Run(part, run.start, run.end, exact=False, phonemes=run.phonemes,
                          normalize=run.normalize)
        offset += len(run.text)
