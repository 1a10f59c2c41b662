"""Each language's rules for cutting text: abbreviations that end no sentence, phrase openers."""

from __future__ import annotations

from dataclasses import dataclass

from tts_service.language.languages import Language


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class SentenceRules:
    """Where a language's text may be cut, beyond the marks every language shares.

    Words are lowercased and without their final period; an elided word ("lorsqu'", "nell'")
    keeps its apostrophe and stands for every word it begins.
    """

    # Words whose trailing period never ends a sentence ("Mr.", "Mme.", "Sra.").
    abbreviations: frozenset[str] = frozenset()
    # Words whose trailing period ends a sentence only before a capital ("etc."), as a dotted
    # abbreviation's does ("p.m.").
    final_abbreviations: frozenset[str] = frozenset()
    # Words that open a phrase of their own, before which a long first sentence may be cut.
    phrase_openers: frozenset[str] = frozenset()
    # Words that open a phrase only before one of `determiners` (English "to": "down to the
    # harbour", not "to watch").
    determined_openers: frozenset[str] = frozenset()
    determiners: frozenset[str] = frozenset()


# English abbreviations and the words the English normalizer reads them as; None where it
# reads them by their context ("Dr." Doctor or Drive, "St." Saint or Street, "No." before a
# number) or leaves them as written.
ENGLISH_ABBREVIATIONS: dict[str, str | None] = {
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor", "Jr": "Junior",
    "Sr": "Senior", "Mt": "Mount", "Ave": "Avenue", "vs": "versus", "etc": "et cetera",
    "approx": "approximately", "Fig": "Figure", "Inc": "Incorporated", "Ltd": "Limited",
    "Dept": "Department", "e.g": "for example", "i.e": "that is",
    "Dr": None, "St": None, "No": None, "est": None, "Co": None, "cf": None,
}  # fmt: skip
# A list often ends a sentence with "etc.", and every language writes it.
_ETC = frozenset({"etc"})

ENGLISH_RULES = SentenceRules(
    abbreviations=frozenset(word.lower() for word in ENGLISH_ABBREVIATIONS) - _ETC,
    final_abbreviations=_ETC,
    # Subordinating conjunctions, relative pronouns and prepositions of place, time and
    # manner. Not "of", "as", "than", "like", "and", "or", "that": they bind to the words
    # just before them ("a cup of tea", "bread and butter"); not "on", "off", "up", "down",
    # "out", often particles of the verb before ("turned on the light").
    phrase_openers=_words("""
        after although because before if once since though unless until when whenever where
        wherever whether while which who whom whose
        about above across against along among around at behind below beneath beside between
        beyond by during for from in inside into near onto outside over past through
        throughout toward towards under underneath upon with within without
    """),
    determined_openers=frozenset({"to"}),
    determiners=_words("the a an this that these those my your his her its our their"),
)

# French, Spanish, Italian and Portuguese: the same kinds of words, left out where they bind
# to what precedes as the English ones above do: "de" and its contractions ("une tasse de
# thé"), "et"/"y"/"e", "ou"/"o", "que"/"che", "comme"/"como"/"come"; a bare "à"/"a" only
# before a determiner ("à la gare", not "commence à parler"); and words that are as often
# something else: French "en" and "y" (pronouns), "si" (also "so"); Italian "se" and Portuguese
# "se" and "nos" (also pronouns), "su" (a particle, "tirare su"), "da" ("da fare"), "prima",
# "lungo" and "vicino" (also adjectives, "la prima volta"); Spanish "bajo" (also "low").
FRENCH_RULES = SentenceRules(
    abbreviations=_words("""
        m mm mme mmes mlle mlles dr pr me mgr st ste cf env av apr chap fig tél
        janv févr avr juil oct nov déc
    """),
    final_abbreviations=_ETC,
    phrase_openers=_words("""
        quand lorsque lorsqu' puisque puisqu' parce quoique quoiqu' tandis afin car
        qui dont où
        après avant pendant depuis durant dès lors jusque jusqu' au aux avec sans pour par
        dans sur sous chez vers parmi entre derrière devant contre malgré selon autour près
    """),
    determined_openers=frozenset({"à"}),
    determiners=_words("""
        le la les l' un une des mon ma mes ton ta tes son sa ses notre nos votre vos leur
        leurs ce cet cette ces chaque
    """),
)
SPANISH_RULES = SentenceRules(
    abbreviations=_words("""
        sr sra srta sres dr dra dres lic ing arq prof profa dña ud uds vd vds sto sta av avda
        pág págs núm tel aprox ej cía dpto ee uu
    """),
    final_abbreviations=_ETC,
    phrase_openers=_words("""
        cuando donde mientras aunque porque si quien quienes cuyo cuya cuyos cuyas
        al en con sin para por desde hasta hacia sobre entre durante tras contra mediante
        según ante antes después cerca lejos detrás delante dentro encima debajo
    """),
    determined_openers=frozenset({"a"}),
    determiners=_words("""
        el la los las un una unos unas este esta estos estas ese esa esos esas aquel aquella
        mi mis tu tus su sus nuestro nuestra nuestros nuestras cada
    """),
)
ITALIAN_RULES = SentenceRules(
    abbreviations=_words("""
        sig sigg dott prof avv ing arch geom rag gent egr ss pag pagg cfr es tel fig ca
    """),
    final_abbreviations=_ETC | {"ecc"},
    phrase_openers=_words("""
        quando mentre perché poiché sebbene benché affinché finché dove
        in nel nella nello nei negli nelle nell' con col coi senza per tra fra
        al alla allo ai agli alle all' dal dalla dallo dai dagli dalle dall'
        sul sulla sullo sui sugli sulle sull' sopra sotto dentro fuori dietro davanti verso
        durante dopo contro presso attraverso oltre accanto intorno attorno
    """),
    determined_openers=frozenset({"a"}),
    determiners=_words("""
        un una uno un' questo questa questi queste quel quello quella quei quegli quelle
        mio mia miei mie tuo tua suo sua nostro nostra vostro vostra loro ogni
    """),
)
PORTUGUESE_RULES = SentenceRules(
    abbreviations=_words("""
        sr sra srta dr dra prof profa sto sta av exmo exma ilmo ilma pág págs tel fig cf cia
        ltda obs aprox depto
    """),
    final_abbreviations=_ETC,
    phrase_openers=_words("""
        quando onde enquanto embora porque cujo cuja cujos cujas
        em no na nas num numa com sem para pra por pelo pela pelos pelas ao aos à às
        desde até sobre sob entre durante contra após perto longe dentro atrás depois antes
    """),
    # The articles "a", "o" come before possessives ("vendeu a minha casa"): none of them.
    determined_openers=frozenset({"a"}),
    determiners=_words("""
        um uma uns umas este esta estes estas esse essa esses essas aquele aquela aqueles
        aquelas cada
    """),
)
# Hindi, Japanese and Chinese: cut at sentence and clause marks only. Their phrases are
# closed by postpositions and particles after the words they govern, so no word before a
# phrase marks a place to cut.
NO_PHRASE_RULES = SentenceRules()

_BY_CODE = {
    "en-US": ENGLISH_RULES, "en-GB": ENGLISH_RULES, "fr-FR": FRENCH_RULES,
    "es-ES": SPANISH_RULES, "it-IT": ITALIAN_RULES, "pt-BR": PORTUGUESE_RULES,
    "hi-IN": NO_PHRASE_RULES, "ja-JP": NO_PHRASE_RULES, "zh-CN": NO_PHRASE_RULES,
}  # fmt: skip


def rules_for(language: Language) -> SentenceRules:
    """The rules text in `language` is cut by."""
    return _BY_CODE[language.code]
