"""The languages the service speaks, and how a request names one (BCP-47, e.g. fr-FR)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str  # BCP-47, as ListVoices reports a voice's language
    name: str
    voice_prefix: str  # Kokoro voice names start with it (af_bella: a, American English)

    @property
    def english(self) -> bool:
        """Whether it is English (US or GB): respellings and the English normalizer apply."""
        return self.code.startswith("en-")


# Kokoro-82M v1.0's nine languages; a voice's first letter is its language.
LANGUAGES = (
    Language("en-US", "American English", "a"),
    Language("en-GB", "British English", "b"),
    Language("es-ES", "Spanish", "e"),
    Language("fr-FR", "French", "f"),
    Language("hi-IN", "Hindi", "h"),
    Language("it-IT", "Italian", "i"),
    Language("ja-JP", "Japanese", "j"),
    Language("pt-BR", "Brazilian Portuguese", "p"),
    Language("zh-CN", "Mandarin Chinese", "z"),
)
ENGLISH = LANGUAGES[0]
BY_CODE = {language.code: language for language in LANGUAGES}
BY_VOICE_PREFIX = {language.voice_prefix: language for language in LANGUAGES}
# What a request may write for each language, lowercased: the code ("fr-fr", also "fr_fr"),
# the bare language where the service has one variety of it ("fr"; "en" is American), and
# Kokoro's one-letter code, which Kokoro-FastAPI's `lang_code` uses ("f").
_SPELLINGS = {
    **{language.code.lower(): language for language in LANGUAGES},
    **{language.code.split("-")[0].lower(): language for language in reversed(LANGUAGES)},
    **{language.voice_prefix: language for language in LANGUAGES},
}
_WELL_FORMED = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")


class UnknownLanguage(ValueError):
    """A language code that is malformed or not spoken here; the message says which exist."""


def _spelling(code: str) -> str:
    return code.lower().replace("_", "-")


def resolve(code: str) -> Language:
    """The language a request names (case-insensitive); raises UnknownLanguage."""
    codes = ", ".join(language.code for language in LANGUAGES)
    if not _WELL_FORMED.fullmatch(code):
        raise UnknownLanguage(f"{code!r} is not a BCP-47 language code: use one of {codes}")
    found = _SPELLINGS.get(_spelling(code))
    if found is None:
        raise UnknownLanguage(f"language {code!r} is not spoken by this server: use one of "
                              f"{codes} (or leave it empty for the voice's own language)")
    return found



def matches(asked: str, language_code: str) -> bool:
    """Whether a voice of `language_code` answers a listing for `asked`: empty lists every
    voice, a bare language every variety of it ("en": en-US and en-GB), anything else the one
    language `resolve` finds for it (so "en_US", "en-us" and "a" all list American English).
    Every front lists voices through this, and a request names its language through `resolve`:
    a code that a request may use lists that language's voices.
    """
    if not asked:
        return True
    spelled = _spelling(asked)
    if "-" not in spelled and len(spelled) > 1:
        return language_code.lower().split("-")[0] == spelled
    found = _SPELLINGS.get(spelled)
    return found is not None and found.code == language_code
