"""The fixed texts every benchmark speaks: plain words, so normalization leaves them alone."""

from __future__ import annotations

ONE_SENTENCE = (
    "The old lighthouse keeper walked down to the harbour every morning to watch the boats."
)
THREE_SENTENCES = (
    "The weather was lovely on the first day of spring. We walked along the river after "
    "lunch and watched the ducks. Then we went home and had a pot of tea in the garden."
)
TEN_SENTENCES = (
    "My grandmother kept a small shop at the corner of the market square. "
    "Every morning she opened the shutters before the sun came up. "
    "The baker next door brought her a warm loaf of bread. "
    "She sold paper, string, candles and sweets to the children. "
    "On rainy days the shop was full of people waiting for the bus. "
    "She knew the name of every dog in the village. "
    "In the evening she counted the money at the kitchen table. "
    "My mother helped her on weekends when she was young. "
    "Later the shop became a small cafe with green chairs. "
    "I still walk past it whenever I visit the town."
)
# About 300 words. The first sentence is long, with clauses, like much real prose: the case
# where cutting at clauses matters most for the time to first audio.
PARAGRAPH = (
    "When the storm finally passed over the valley, late in the afternoon, the farmers came out "
    "of their houses, looked at the flattened fields, and began to count what they had lost. "
    "The river had risen during the night and carried away the wooden bridge that joined the "
    "two halves of the village. Children stood on the muddy bank and watched broken branches "
    "float past, while their parents talked in low voices about the harvest. Nobody could "
    "remember a summer storm as strong as this one. The oldest woman in the village said that "
    "her father had told her about a flood like it, long before the railway was built, but "
    "even she was not sure whether the story was true. By the evening the sky was clear again, "
    "and the air smelled of wet earth and cut grass. A group of young men carried ropes and "
    "planks down to the water and tried to build a simple crossing, so that the doctor could "
    "reach the houses on the other side. It took them three days of hard work. The women "
    "cooked soup in large pots and brought it down to the river in baskets, and the children "
    "ran between the two groups with messages and bread. When the new bridge was finally "
    "ready, the whole village walked across it together, slowly and carefully, as if it were "
    "a kind of celebration. The mayor gave a short speech and thanked everyone for their help. "
    "Later that year the government sent engineers to build a stone bridge, higher and "
    "stronger than the old one, but the villagers kept the wooden planks of the first crossing "
    "and used them to make benches for the school. Those benches are still there today, worn "
    "smooth by many years of children, and the teacher tells the story of the storm every "
    "autumn."
)

LATENCY_TEXTS: dict[str, str] = {
    "1 sentence": ONE_SENTENCE,
    "3 sentences": THREE_SENTENCES,
    "10 sentences": TEN_SENTENCES,
    "paragraph": PARAGRAPH,
}

# Texts whose first sentence is long: how much sooner does audio start when it is cut at
# clauses, and does the recognizer still hear the same words?
LONG_FIRST_SENTENCES: dict[str, str] = {
    "storm": PARAGRAPH.split(". ")[0] + ".",
    "letter": (
        "Although the letter arrived three weeks after it had been posted, with a torn "
        "envelope and a smudged address, my aunt read it aloud at the kitchen table, slowly, "
        "as if every word were precious. Then she put it away."
    ),
    "journey": (
        "If you take the early train from the city, change at the small station by the lake, "
        "and walk for an hour along the old road through the forest, you will reach the "
        "village just in time for lunch. The inn there is famous for its pies."
    ),
}

# Requests of the concurrency runs: one short sentence, so that many of them fit in the time.
THROUGHPUT_TEXT = "Please call me back when you get home from work tonight."
