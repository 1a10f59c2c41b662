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

# First sentences of 60 to 100 characters without a comma, each followed by a short one: the
# texts a stream used to synthesize whole before any sound. 20 open a phrase three tenths to
# a half of the way in and are cut there; four do not and stay whole. 438 words.
NO_COMMA_FIRST_SENTENCES: list[tuple[str, str]] = [
    ("The little bakery near the station sells fresh bread every morning before seven.",
     "It closes at noon."),
    ("My grandmother kept a small shop at the corner of the market square.",
     "Everyone in town knew her."),
    ("The old lighthouse keeper walked down to the harbour every morning to watch the boats.",
     "He never missed a day."),
    ("The children stayed inside because the rain did not stop all afternoon long.",
     "They played cards instead."),
    ("We found a quiet table behind the big window and ordered two cups of tea.",
     "The waiter was kind."),
    ("The farmer drove his tractor across the muddy field while the dogs ran ahead.",
     "It was hard work."),
    ("A young fox was sleeping under the garden bench when we came home last night.",
     "It ran away at once."),
    ("The students waited outside the library until the doors finally opened at nine.",
     "Some of them were cold."),
    ("Our neighbours painted their fence bright blue during the long summer holidays.",
     "It looks very cheerful."),
    ("The museum keeps its oldest maps in a dark room behind the main staircase.",
     "Visitors may see them on Sundays."),
    ("She carried the heavy basket through the crowded market without saying a word.",
     "Then she went home."),
    ("The river flows slowly past the mill before it reaches the sea.",
     "Fish swim in its clear water."),
    ("He always reads the newspaper with a cup of coffee after breakfast.",
     "Then he walks the dog."),
    ("The small boat drifted along the coast until the wind picked up again.",
     "The sailors were relieved."),
    ("The teacher wrote the answers on the board while the class copied them down.",
     "Nobody said a word."),
    ("My brother keeps his bicycle in the shed behind our house near the old oak tree.",
     "He rides it every day."),
    ("The birds gathered on the roof before they flew south for the winter.",
     "The garden felt empty."),
    ("A tall man in a grey coat stood beside the gate for almost an hour.",
     "Nobody knew his name."),
    ("The soup tasted much better after it had simmered for most of the afternoon.",
     "We ate it with bread."),
    ("We walked for miles along the beach without meeting a single person.",
     "The sea was calm."),
    ("The band played their new songs in the park while people danced on the grass.",
     "It was a warm evening."),
    ("The doctor listened to my heart before she wrote a short note for the pharmacy.",
     "I felt better soon."),
    ("Snow had fallen over the hills during the night and covered every road.",
     "The buses did not run."),
    ("The baker pulled the warm loaves from the oven just as the sun came up.",
     "The shop smelled wonderful."),
]
# How many of them (cut at a phrase) the first-audio comparison times in each repetition.
NO_COMMA_TIMED = 6
