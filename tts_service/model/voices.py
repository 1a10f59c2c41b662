"""The voice catalogue: names, accents and genders of the model's speakers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tts_service.language.languages import BY_VOICE_PREFIX, matches

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
    name: str
    speaker_id: int
    language_code: str
    gender: Gender
    blend: str = ""  # the recipe, for a blend of other voices


def describe(name: str, speaker_id: int) -> Voice:
    """Derives a built-in voice's accent and gender from its name, e.g. af_bella."""
    prefix = name.split("_", 1)[0]
    found = BY_VOICE_PREFIX.get(prefix[:1])
    language = found.code if found is not None else "und"
    gender = {"f": Gender.FEMALE, "m": Gender.MALE}.get(prefix[1:2], Gender.UNKNOWN)
    return Voice(name=name, speaker_id=speaker_id, language_code=language, gender=gender)


class VoiceCatalog:
    """Looks voices up by name; the default voice is af_bella when the model has it."""

    def __init__(self, voices: list[Voice], default: str = DEFAULT_VOICE) -> None:
        self._by_name = {voice.name: voice for voice in voices}
        self.default = default if default in self._by_name else voices[0].name

    @classmethod
    def from_names(cls, names: list[str]) -> VoiceCatalog:
        return cls([describe(name, sid) for sid, name in enumerate(names)])

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Voice | None:
        return self._by_name.get(name or self.default)

    def list(self, language_code: str = "") -> list[Voice]:
        """The voices that speak `language_code` (languages.matches), by name."""
        return sorted((v for v in self._by_name.values()
                       if matches(language_code, v.language_code)), key=lambda v: v.name)
