"""Write texts.jsonl: 1,000 review-like texts, the request bodies shared by every study scenario.

Run once; the output is checked in, so every variant and every machine sends the same texts:

    python scenarios/study/make_texts.py            # writes scenarios/study/texts.jsonl

The texts come from the templates and word lists below, drawn with a fixed seed: nothing is
downloaded. Lengths vary like short product reviews (a few words to a few sentences, about 20
to 300 characters), which matters because the model's cost grows with the text's length.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 20240420
COUNT = 1000
OUT = Path(__file__).with_name("texts.jsonl")

THINGS = {
    "product": ["phone", "laptop", "blender", "vacuum cleaner", "pair of headphones", "kettle",
                "backpack", "smart watch", "coffee machine", "desk chair", "camera", "router"],
    "place": ["hotel", "restaurant", "cafe", "gym", "hostel", "bakery", "spa", "museum"],
    "work": ["novel", "film", "album", "series", "cookbook", "video game", "podcast", "play"],
}  # fmt: skip
GOOD = ["great", "excellent", "solid", "lovely", "reliable", "wonderful", "impressive",
        "comfortable", "well made", "fantastic", "charming", "sturdy", "delightful"]  # fmt: skip
BAD = ["awful", "flimsy", "disappointing", "noisy", "overpriced", "broken", "slow", "bland",
       "confusing", "cheap-feeling", "unreliable", "tedious", "dirty"]  # fmt: skip
ASPECTS = {
    "product": ["battery life", "build quality", "screen", "price", "setup", "sound", "design",
                "customer support", "packaging", "instructions"],
    "place": ["staff", "location", "breakfast", "room", "service", "prices", "music", "view",
              "cleanliness", "wait"],
    "work": ["plot", "ending", "characters", "pacing", "soundtrack", "dialogue", "writing",
             "acting", "first half", "length"],
}  # fmt: skip
OPENERS = ["", "Honestly, ", "Well, ", "To be fair, ", "Overall, ", "I have to say ",
           "After a month, ", "For the price, "]  # fmt: skip
CLOSERS = ["Would buy again.", "Not recommended.", "Five stars.", "One star.", "Meh.",
           "I want my money back.", "Highly recommended!", "Will not return.",
           "Worth every penny.", "Three stars, maybe.", "My family loved it.",
           "Never again."]  # fmt: skip


def sentence(rng: random.Random, kind: str, thing: str, mood: str) -> str:
    """One clause about one aspect; ``mood`` is good, bad or mixed."""
    aspect = rng.choice(ASPECTS[kind])
    good, bad = rng.choice(GOOD), rng.choice(BAD)
    templates = {
        "good": [f"The {aspect} is {good}.", f"I loved the {aspect} of this {thing}.",
                 f"Really {good} {aspect}, better than I expected.",
                 f"The {aspect} was {good} and {rng.choice(GOOD)}."],
        "bad": [f"The {aspect} is {bad}.", f"I hated the {aspect} of this {thing}.",
                f"Really {bad} {aspect}, worse than I expected.",
                f"The {aspect} was {bad} and {rng.choice(BAD)}."],
        "mixed": [f"The {aspect} is {good}, but the {rng.choice(ASPECTS[kind])} is {bad}.",
                  f"Great {aspect}, {bad} everything else.",
                  f"I wanted to like the {aspect}; it was {bad} in the end."],
    }  # fmt: skip
    return rng.choice(templates[mood])


def review(rng: random.Random) -> str:
    kind = rng.choice(list(THINGS))
    thing = rng.choice(THINGS[kind])
    mood = rng.choices(["good", "bad", "mixed"], weights=[45, 40, 15])[0]
    verdict = rng.choice(GOOD if mood == "good" else BAD)
    article = "an" if verdict[0] in "aeiou" else "a"
    first = f"{rng.choice(OPENERS)}{article} {verdict} {thing}."
    parts = [first[0].upper() + first[1:]]
    # Geometric-ish number of sentences: most reviews are short, a few run long.
    while len(parts) < 6 and rng.random() < 0.62:
        parts.append(sentence(rng, kind, thing, mood))
    if rng.random() < 0.5:
        parts.append(rng.choice(CLOSERS))
    return " ".join(parts)


def main() -> int:
    rng = random.Random(SEED)
    lines = [json.dumps({"text": review(rng)}) for _ in range(COUNT)]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lengths = sorted(len(json.loads(line)["text"]) for line in lines)
    median = lengths[COUNT // 2]
    print(f"{OUT}: {COUNT} texts, {lengths[0]}..{lengths[-1]} characters, median {median}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
