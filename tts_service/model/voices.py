"""The voice catalogue: names, accents and genders of the model's speakers, and the one place
a voice name a caller wrote (a voice, a start-up blend or a mix formula) becomes a voice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from tts_service.errors import InvalidRequest, Unsupported
from tts_service.language.languages import BY_VOICE_PREFIX, matches
from tts_service.model.mixes import StyleTables, is_formula, parse_mix
from tts_service.synthesis.engine import Style

# Kokoro voice names start with two letters: the language (languages.py), then f(emale) or
# m(ale).
DEFAULT_VOICE = "af_bella"


class Gender(Enum):
    UNKNOWN = "unknown"
    FEMALE = "female"
    MALE = "male"
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class Voice:
    name: str  # for a mix, its formula in normal form (mixes.Mix.formula)
    speaker_id: int  # for a mix, its heaviest voice's: the engine replaces that one's style
    language_code: str
    gender: Gender
    blend: str = ""  # the recipe, for a blend of other voices
    # A voice mixed per request: the style table spoken instead of the speaker's own.
    style: Style | None = field(default=None, compare=False, repr=False)


def describe(name: str, speaker_id: int) -> Voice:
    """Derives a built-in voice's accent and gender from its name, e.g. af_bella."""
    prefix = name.split("_", 1)[0]
    found = BY_VOICE_PREFIX.get(prefix[:1])
    language = found.code if found is not None else "und"
    gender = {"f": Gender.FEMALE, "m": Gender.MALE}.get(prefix[1:2], Gender.UNKNOWN)
    return Voice(name=name, speaker_id=speaker_id, language_code=language, gender=gender)


def mixed(name: str, parts: Sequence[Voice], speaker_id: int, blend: str = "",
          style: Style | None = None) -> Voice:
    """A voice mixed from `parts`, a start-up blend or a request's mix: its gender is theirs
    if they share one, its language theirs, or the first part's if they differ."""
    languages = {part.language_code for part in parts}
    genders = {part.gender for part in parts}
    return Voice(
        name=name,
        speaker_id=speaker_id,
        # A mixed accent has no code of its own; the first (a mix's heaviest) voice's is the
        # closest guess.
        language_code=parts[0].language_code if len(languages) > 1 else languages.pop(),
        gender=genders.pop() if len(genders) == 1 else Gender.NEUTRAL,
        blend=blend,
        style=style,
    )


class VoiceCatalog:
    """Looks voices up by name; the default voice is af_bella when the model has it.

    With `styles` (every voice's style table, by speaker id) it also mixes voices per request.
    """

    def __init__(self, voices: list[Voice], default: str = DEFAULT_VOICE,
                 styles: StyleTables | None = None) -> None:
        self._by_name = {voice.name: voice for voice in voices}
        self.default = default if default in self._by_name else voices[0].name
        self._styles = styles

    @classmethod
    def from_names(cls, names: list[str], styles: StyleTables | None = None) -> VoiceCatalog:
        return cls([describe(name, sid) for sid, name in enumerate(names)], styles=styles)

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Voice | None:
        """The voice of the catalogue by that name (empty: the default); a formula is none."""
        return self._by_name.get(name or self.default)

    def list(self, language_code: str = "") -> list[Voice]:
        """The voices that speak `language_code` (languages.matches), by name."""
        return sorted((v for v in self._by_name.values()
                       if matches(language_code, v.language_code)), key=lambda v: v.name)

    def resolve(self, name: str, language_code: str = "", list_voices: str = "the voice list"
                ) -> Voice:
        """The voice a caller named: a voice of the catalogue (empty: the default), or a mix
        of them, e.g. `af_bella(2)+af_sky(1)` (mixes.parse_mix), whose table is mixed once.

        A mix of voices of different languages needs `language_code` (the language the text
        is read in), else it is refused: nothing says which of its accents to read with. A
        formula of one voice is that voice. Raises InvalidRequest naming `voice`;
        `list_voices` says how the caller lists the voices.
        """
        if not is_formula(name):
            found = self.get(name)
            if found is None:
                raise InvalidRequest(
                    "voice", f"unknown voice {name!r}: {list_voices} shows the {len(self)} "
                    f"voices; e.g. {self.default!r}")
            return found
        mix = parse_mix(name, self._by_name, list_voices)
        parts = [self._by_name[voice] for voice in mix.heaviest]
        if len(parts) == 1:
            return parts[0]
        languages = sorted({part.language_code for part in parts})
        if len(languages) > 1 and not language_code:
            raise InvalidRequest(
                "voice", f"voice mix {mix.formula!r} mixes voices of {len(languages)} "
                f"languages ({', '.join(languages)}): give the request a language to read the "
                "text in, or mix voices of one language")
        if self._styles is None:
            raise Unsupported("voice", "this server has no style tables to mix voices with: "
                              "give one voice")
        weights = dict(mix.components)
        table = self._styles.mixed(mix.formula, [part.speaker_id for part in parts],
                                   [weights[part.name] for part in parts])
        return mixed(mix.formula, parts, parts[0].speaker_id,
                     style=Style(mix.formula, table))
