"""Short sentences in each language, with a native voice, for tests and the bench to hear."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    language: str  # BCP-47, as the service names it
    voice: str  # a voice whose own language it is
    whisper: str  # the language Whisper is told to expect
    sentences: tuple[str, ...]


# No digits: Whisper writes numbers as digits, which would count as errors.
SAMPLES = (
    Sample("en-US", "af_heart", "en", (
        "The weather is lovely today, so we walked along the river.",
        "She opened the window and listened to the birds singing.",
    )),
    Sample("en-GB", "bf_emma", "en", (
        "The weather is lovely today, so we walked along the river.",
        "She opened the window and listened to the birds singing.",
    )),
    Sample("es-ES", "ef_dora", "es", (
        "Hoy hace muy buen tiempo y vamos a pasear por el parque.",
        "Mi hermana trabaja en una biblioteca cerca de la estación.",
    )),
    Sample("fr-FR", "ff_siwis", "fr", (
        "Il fait très beau aujourd'hui, nous allons nous promener au parc.",
        "Ma sœur travaille dans une bibliothèque près de la gare.",
    )),
    Sample("it-IT", "if_sara", "it", (
        "Oggi fa molto bello e andiamo a passeggiare nel parco.",
        "Mia sorella lavora in una biblioteca vicino alla stazione.",
    )),
    Sample("pt-BR", "pf_dora", "pt", (
        "Hoje o tempo está muito bom e vamos passear no parque.",
        "Minha irmã trabalha numa biblioteca perto da estação.",
    )),
    Sample("hi-IN", "hf_alpha", "hi", (
        "आज मौसम बहुत अच्छा है और हम पार्क में घूमने जा रहे हैं।",
        "मेरी बहन स्टेशन के पास एक पुस्तकालय में काम करती है।",
    )),
    Sample("ja-JP", "jf_alpha", "ja", (
        "今日はとても良い天気なので、公園を散歩します。",
        "私の姉は駅の近くの図書館で働いています。",
    )),
    Sample("zh-CN", "zf_xiaobei", "zh", (
        "今天天气很好，我们去公园散步吧。",
        "我的姐姐在火车站附近的图书馆工作。",
    )),
)
BY_LANGUAGE = {sample.language: sample for sample in SAMPLES}
