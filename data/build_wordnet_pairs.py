"""Build data/wordnet_pairs/ (sentence-pair classification) from data/wordnet_topics/ (stdlib only).

A synthetic pair task: do two WordNet noun definitions belong to the same topic (lexicographer file)? Each split is
paired within the same split of wordnet_topics, so no definition of a held-out split is in train. Per pair: a first
definition drawn without replacement; with probability 1/2 a second one of the same topic, else one of another
topic (topic drawn in proportion to its size), also without replacement, so no definition is in two pairs. Labels
are `same` and `different`. Seeded: outputs are byte-identical across runs::

    python data/build_wordnet_pairs.py
"""

import gzip
import json
import random
from pathlib import Path

from build_wordnet import write_jsonl_gz

SEED = 0
PAIRS = {"train": 6000, "validation": 1000, "test": 1000}
HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "wordnet_pairs"


def read_topics(split: str) -> list:
    with gzip.open(HERE / "wordnet_topics" / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def pairs(rows: list, n: int, rng: random.Random) -> list:
    """n pairs {sentence1, sentence2, label}, half `same` in expectation."""
    pools: dict = {}
    for row in rows:
        pools.setdefault(row["label"], []).append(row["text"])
    for pool in pools.values():
        rng.shuffle(pool)
    topics = sorted(pools)
    out = []
    while len(out) < n:
        first_topic = rng.choices(topics, weights=[len(pools[t]) for t in topics])[0]
        same = rng.random() < 0.5
        others = [t for t in topics if t != first_topic and pools[t]]
        second_topic = first_topic if same else rng.choices(others, weights=[len(pools[t]) for t in others])[0]
        if len(pools[first_topic]) < (2 if same else 1):
            continue
        first = pools[first_topic].pop()
        second = pools[second_topic].pop()
        out.append({"sentence1": first, "sentence2": second, "label": "same" if same else "different"})
    return out


def main():
    rng = random.Random(SEED)
    for split, n in PAIRS.items():
        rows = pairs(read_topics(split), n, rng)
        write_jsonl_gz(OUT_DIR / f"{split}.jsonl.gz", rows)
        same = sum(r["label"] == "same" for r in rows)
        print(f"{split}: {len(rows)} pairs, {same} same, {len(rows) - same} different")


if __name__ == "__main__":
    main()
