"""Each language's front end: the one stage where request text becomes Kokoro's tokens.

A `FrontEnd` does, for one language, every step between the caller's text and the model, each
a step of its own: cutting the text into pieces (that language's sentence and clause rules),
respelling (the operator's English respellings and the call's own, in any language),
normalizing (numbers, amounts and dates read in that language) and G2P (misaki or espeak-ng,
loaded on first use unless preloaded), with the operator's and the call's phoneme overrides
(English only). Nothing below it knows a language: the engine takes the tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tts_service.language.g2p import Phonemizer
from tts_service.language.languages import BY_CODE, LANGUAGES, Language
from tts_service.language.lexicon import Overrides, Respeller
from tts_service.language.normalizers import normalize
from tts_service.language.sentence_rules import rules_for
from tts_service.language.sentences import Piece, SplitPolicy, split_pieces
from tts_service.language.ssml import Run

NO_OVERRIDES = Overrides()  # never changed: a default shared by every front end


@dataclass(frozen=True)
class Utterance:
    """What the model is asked to say for one piece: the piece as spoken (respelled and
    normalized: word timings map it back to the caller's text) and its Kokoro symbols, words
    separated by spaces."""

    text: str
    phonemes: str


class FrontEnd:
    """One language's steps from text to tokens; pure but for the G2P's lazy loading, and safe
    to call from several threads."""

    def __init__(self, language: Language, phonemizer: Phonemizer,
                 overrides: Overrides = NO_OVERRIDES, call: Overrides = NO_OVERRIDES) -> None:
        self.language = language
        self.rules = rules_for(language)  # where its text may be cut
        self._phonemizer = phonemizer
        # The operator's overrides are English words: other languages keep their text.
        self._overrides = overrides if language.english else NO_OVERRIDES
        self._call = call
        # One pass of respellings, the call's over the operator's: a word the call gives
        # phonemes for must reach the G2P as it is written, not respelled by the operator.
        respellings = {word: respelling
                       for word, respelling in self._overrides.respellings.items()
                       if word not in call.phonemes}
        respellings.update(call.respellings)
        self._respell = Respeller(respellings)
        # The operator's phonemes are the Phonemizer's own; the call's go with each text.
        self._phonemes = {word: "".join(symbols) for word, symbols in call.phonemes.items()}

    @property
    def takes_phonemes(self) -> bool:
        """Whether a word's phonemes can be given: only misaki's English G2P reads text word
        by word with a lexicon to override; espeak-ng, Japanese and Mandarin do not."""
        return self.language.english

    def with_pronunciations(self, call: Overrides) -> FrontEnd:
        """This front end for one call that brings its own pronunciations (checked: phonemes
        only if `takes_phonemes`), which win over the operator's; the G2P is shared."""
        if not call.phonemes and not call.respellings:
            return self
        return FrontEnd(self.language, self._phonemizer, self._overrides, call)

    @property
    def loaded(self) -> bool:
        """Whether its G2P is loaded (otherwise the first utterance loads it)."""
        return self._phonemizer.loaded(self.language)

    def load(self) -> None:
        """Loads the G2P now (blocking: seconds for English or Chinese)."""
        self._phonemizer.load(self.language)

    def pieces(self, text: str, policy: SplitPolicy) -> list[Piece]:
        """The pieces `text` is synthesized in, cut by this language's rules."""
        return split_pieces(text, policy, self.rules)

    def spoken(self, text: str, normalized: bool = True) -> str:
        """The text as the model should read it: respelled, then (if asked) normalized."""
        text = self._respell(text)
        return normalize(text, self.language) if normalized else text

    def phonemes(self, spoken: str) -> str:
        """Kokoro's symbols for text already respelled and normalized."""
        return self._phonemizer(spoken, self.language, self._phonemes)

    def utterance(self, text: str, normalized: bool = True) -> Utterance:
        """Every step at once: what the model gets for the piece `text`."""
        spoken = self.spoken(text, normalized)
        return Utterance(spoken, self.phonemes(spoken))

    def utterance_of(self, runs: Iterable[Run], normalized: bool = True) -> Utterance:
        """What the model gets for a piece of SSML: each run through every step, except what
        a run says already (a say-as reading is not normalized again; given phonemes replace
        the G2P), joined in order."""
        spoken: list[str] = []
        phonemes: list[str] = []
        for run in runs:
            if run.phonemes:
                said, symbols = run.text, run.phonemes
            else:
                said = self.spoken(run.text, normalized and run.normalize)
                symbols = self.phonemes(said) if said.strip() else ""
            spoken.append(said)
            if symbols.strip():
                phonemes.append(symbols.strip())
        return Utterance("".join(spoken), " ".join(phonemes))


class FrontEnds:
    """Every language's front end, each made once; the G2Ps of `preload` load now, the others
    on first use."""

    def __init__(self, overrides: Overrides = NO_OVERRIDES, symbols: frozenset[str] = frozenset(),
                 preload: Iterable[Language] = ()) -> None:
        phonemizer = Phonemizer({word: "".join(phonemes)
                                 for word, phonemes in overrides.phonemes.items()})
        self._front_ends = {language.code: FrontEnd(language, phonemizer, overrides)
                            for language in LANGUAGES}
        # The model's phoneme symbols (tokens.txt): what a call's phonemes may use.
        self.symbols = symbols
        for language in preload:
            self[language].load()

    def __getitem__(self, language: Language) -> FrontEnd:
        return self._front_ends[language.code]

    def by_code(self, code: str) -> FrontEnd:
        """The front end of a canonical language code (en-US), as a voice reports it."""
        return self._front_ends[BY_CODE[code].code]

    def loaded(self) -> list[Language]:
        """The languages whose G2P is loaded, in the service's order."""
        return [front_end.language for front_end in self._front_ends.values()
                if front_end.loaded]
