"""The HTTP front's JSON bodies, declared: pydantic models that check a request's shape and
types where it enters, name the field a 400 is about, and give the OpenAPI document.

Only the shape is checked here; what the values mean (a known voice, a speed in range, text
within the limit) is checked once for every front by the call layer (calls/request.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import models_json_schema

from tts_service import __version__
from tts_service.calls.request import MAX_PRONUNCIATIONS, AskedPronunciation
from tts_service.errors import InvalidRequest

# Names OpenAI clients send; all of them are served by the one Kokoro model.
Model = Literal["kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
MODELS: tuple[str, ...] = get_args(Model)
# OpenAI's response_format names (http_routes.FORMATS maps each to an encoding).
ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)
CaptionFormat = Literal["json", "srt", "vtt"]


class _Body(BaseModel):
    # Strict: JSON's types as they are (a boolean is no number, "1" is no number). Fields
    # nobody declared are ignored, as OpenAI-compatible servers do with each other's extensions.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        """A field sent as null takes its default, as the SDKs send unset optional fields."""
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if value is not None}
        return data


class VoiceObject(_Body):
    """OpenAI's custom voice object."""

    id: str = Field(description="A voice name, as a plain `voice` string would give it")


class Pronunciation(_Body):
    """How one word of the input is read, for this request only (over the server's lexicon
    overrides file): a respelling, or the model's phonemes (English only)."""

    word: str = Field(description="One word, matched whole and in any case ('gif' matches "
                      "'GIF', not 'gifs'); at most 64 characters")
    respelling: str = Field("", description="Plain words it is read as, e.g. 'jif' (letters, "
                            "spaces, hyphens, apostrophes; any language; at most 200)")
    phonemes: str = Field("", description="Or the model's phoneme symbols, e.g. 'ʤˈɪf' "
                          "(English only; at most 200 characters)")


def asked_pronunciations(entries: Sequence[Pronunciation]) -> tuple[AskedPronunciation, ...]:
    """The entries as the call layer checks them (calls/request.py)."""
    return tuple(AskedPronunciation(entry.word, entry.respelling, entry.phonemes)
                 for entry in entries)


class SpeechFields(_Body):
    """What every speech request says: the text, the voice and how to read and encode it."""

    model: Model = Field(description="Any of these names: all are Kokoro-82M here")
    input: str = Field(description="The text to speak (at most the server's --max-text-chars)"
                       ", or an SSML <speak> document with input_format 'ssml'")
    input_format: Literal["text", "ssml"] = Field(
        "text", description="An extension: 'ssml' reads `input` as SSML (docs/ssml.md): "
        "pauses, say-as, phonemes, voices, languages and marks; offsets in the answer are code "
        "points of the document")
    voice: str | VoiceObject = Field(
        "", description="A voice from GET /v1/audio/voices or one of OpenAI's names (alloy, "
        "ash, ...); empty: the server's default voice. Or a mix of up to 5 of the voices for "
        "this request, Kokoro-FastAPI's syntax: 'af_bella(2)+af_sky(1)' (weights are positive "
        "numbers, scaled to sum to 1) or 'af_bella+af_sky' (equal weights); a mix of voices of "
        "different languages needs `language`")
    response_format: ResponseFormat = Field("mp3", description="The audio's encoding")
    speed: float = Field(1.0, description="0.5 to 2.0; 1.0 is natural")
    language: str = Field(
        "", description="BCP-47 code of the language to read the text in; empty: the voice's")
    lang_code: str = Field(
        "", description="Kokoro-FastAPI's name for `language`; also takes Kokoro's letters "
        "(e.g. 'f')")
    instructions: str = Field(
        "", description="OpenAI's free-form voice direction, which Kokoro cannot follow: "
        "leave it empty (a 400 otherwise); voice, speed and language are what can be set")
    pronunciations: list[Pronunciation] = Field(
        default_factory=list, description=f"How to read some words of the input, for this "
        f"request only: at most {MAX_PRONUNCIATIONS} entries, each a word with a respelling "
        "or phonemes")


class SpeechRequest(SpeechFields):
    """POST /v1/audio/speech: OpenAI's CreateSpeech, with Kokoro-FastAPI's `stream`."""

    stream_format: Literal["audio", "sse"] = Field(
        "audio", description="audio: the encoded bytes as they are made; sse: server-sent "
        "events carrying them in base64")
    # Streamed unless asked otherwise: the OpenAI SDK sends no such field, whether it buffers
    # the body or streams it, and its streaming users need the audio as it is made
    # (docs/websocket.md, "Whole files").
    stream: bool = Field(True, description="false: one complete file whose header holds its "
                         "length")
    word_timings: bool = Field(False, description="With stream_format 'sse': events with "
                               "each word's place in the text and time in the audio")


class CaptionedSpeechRequest(SpeechFields):
    """POST /dev/captioned_speech: the audio and its words at once (Kokoro-FastAPI's path)."""

    caption_format: CaptionFormat = Field(
        "json", description="json: the audio (base64) and its words in one body; srt or vtt: "
        "the captions alone, as a subtitle file")


class WordTimestamp(BaseModel):
    """A spoken word: its text, when it is said, and where it is in the input."""

    word: str = Field(description="The word as written in the input")
    start_time: float = Field(description="Seconds into the audio")
    end_time: float = Field(description="Seconds into the audio")
    text_start: int = Field(description="Its first code point in `input`")
    text_end: int = Field(description="One past its last code point: input[text_start:"
                          "text_end] == word")


class MarkTimestamp(BaseModel):
    """An SSML <mark>: when the audio reaches it, and where it is in the input."""

    name: str = Field(description="The mark's name, as written")
    time: float = Field(description="Seconds into the audio")
    text_offset: int = Field(description="Its place in `input`, in code points")


class CaptionedSpeechResponse(BaseModel):
    """Kokoro-FastAPI's captioned speech answer, with the audio's rate and duration."""

    audio: str = Field(description="The audio file, in base64")
    audio_format: ResponseFormat
    sample_rate: int = Field(description="Samples per second of the audio")
    duration: float = Field(description="Seconds of audio")
    timestamps: list[WordTimestamp] = Field(description="The words, in the order spoken")
    marks: list[MarkTimestamp] = Field(description="The SSML marks reached, in order (none "
                                       "for plain text)")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = Field(description="The request field at fault, if one is")
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape, which the SDKs turn into their exception classes."""

    error: ErrorDetail


# A wrong value of a field with a fixed set, in words that say what to send instead.
_CHOICES: dict[str, Callable[[object], str]] = {
    "model": lambda value: f"unknown model {value!r}: use one of {', '.join(MODELS)} (all "
                           "are Kokoro-82M here)",
    "response_format": lambda value: f"response_format {value!r} is not available: use one "
                                     f"of {', '.join(RESPONSE_FORMATS)}",
    "stream_format": lambda value: f"stream_format {value!r}: use 'audio' or 'sse'",
    "caption_format": lambda value: f"caption_format {value!r}: use one of "
                                    f"{', '.join(get_args(CaptionFormat))}",
}
_TYPE_HINTS = {"voice": "voice must be a voice name, e.g. 'af_bella'"}


_B = TypeVar("_B", bound=_Body)


def parse(kind: type[_B], parsed_json: object) -> _B:
    """The body as `kind`; raises InvalidRequest naming the first field at fault."""
    try:
        return kind.model_validate(parsed_json)
    except ValidationError as error:
        raise invalid_request(error) from None


def invalid_request(error: ValidationError) -> InvalidRequest:
    """pydantic's first complaint as the front's 400: the field, and what to send instead."""
    first = error.errors(include_url=False)[0]
    loc = first["loc"]
    if not loc:
        return InvalidRequest("body", "the body must be a JSON object with model, input and "
                              "voice")
    name, value, kind = str(loc[0]), first["input"], first["type"]
    # A field inside a list is named with its entry: pronunciations[2].word. Other parts are
    # pydantic's names of a union's branches (voice.str), not the caller's.
    path = name
    for before, part in itertools.pairwise(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(before, int):
            path += f".{part}"
    if kind == "missing":
        choices = _CHOICES.get(path)
        return InvalidRequest(path, choices(None) if choices else f"{path} is missing")
    if kind == "literal_error" and path in _CHOICES:
        return InvalidRequest(path, _CHOICES[path](value))
    return InvalidRequest(path, _TYPE_HINTS.get(
        path, f"{path} has the wrong type ({type(value).__name__})"))


@dataclass(frozen=True)
class Operation:
    """One route as the OpenAPI document lists it."""

    method: str
    path: str
    summary: str
    body: type[BaseModel] | None = None
    # Media type -> a model of the JSON answer, or None for bytes or text.
    answers: dict[str, type[BaseModel] | None] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)  # name -> description


def openapi(operations: Sequence[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`, their bodies' schemas from the models."""
    models = {ErrorBody} | {op.body for op in operations if op.body} | {
        model for op in operations for model in op.answers.values() if model}
    refs, schemas = models_json_schema(
        [(model, "validation" if model in {op.body for op in operations} else "serialization")
         for model in sorted(models, key=lambda model: model.__name__)],
        ref_template="#/components/schemas/{model}")
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {"summary": op.summary, "responses": {
            "200": {"description": "OK", "content": {
                media: {"schema": refs[(model, "serialization")] if model else {}}
                for media, model in op.answers.items()}},
            "default": {"description": "OpenAI's error shape", "content": error},
        }}
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": refs[(op.body, "validation")]}}}
        if op.query:
            entry["parameters"] = [{"name": name, "in": "query", "required": False,
                                    "description": text, "schema": {"type": "string"}}
                                   for name, text in op.query.items()]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {"openapi": "3.1.0",
            "info": {"title": "Kokoro TTS, OpenAI-compatible HTTP API", "version": __version__},
            "paths": paths, "components": {"schemas": schemas.get("$defs", {})}}
