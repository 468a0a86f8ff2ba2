"""Build data/wordnet_depth/ (regression: how deep in WordNet's noun hierarchy a definition sits; stdlib only).

Source: Debian's ``wordnet-base`` package, as for build_wordnet.py::

    cd /tmp && apt-get download wordnet-base && dpkg -x wordnet-base_*.deb /tmp/wn
    python data/build_wordnet.py --wordnet-dir /tmp/wn/usr/share/wordnet   # wordnet_topics first: its splits are used
    python data/build_wordnet_depth.py --wordnet-dir /tmp/wn/usr/share/wordnet

``{"text": <noun definition>, "label": <depth>}``: the depth is the fewest hypernym links (``@`` and instance ``@i``)
from the synset up to ``entity`` (depth 0), a number WordNet gives. The definitions are wordnet_topics' own, in its
splits (train from its train, validation and test from its held-out splits), so a model pre-trained on
wordnet_corpus has never read a validation or test definition. Outputs are byte-identical across runs.
"""

import argparse
import collections
import gzip
import json
import random
from pathlib import Path

from build_wordnet import parse_gloss, write_jsonl_gz

SEED = 0
SIZES = {"train": 10000, "validation": 1000, "test": 1000}
ROOT = "00001740"  # entity.n.01
HYPERNYMS = {"@", "@i"}
DATA_DIR = Path(__file__).resolve().parent
OUT_DIR = DATA_DIR / "wordnet_depth"


def read_nouns(path):
    """{offset: (definition, [hypernym offsets])} of data.noun."""
    nouns = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # license header
                continue
            fields, gloss = line.split(" | ", 1)
            parts = fields.split()
            n_words = int(parts[3], 16)
            at = 4 + 2 * n_words
            n_pointers = int(parts[at])
            pointers = [parts[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(n_pointers)]
            hypernyms = [offset for symbol, offset, pos, _ in pointers if symbol in HYPERNYMS and pos == "n"]
            nouns[parts[0]] = (parse_gloss(gloss.strip())[0], hypernyms)
    return nouns


def depths(nouns):
    """The fewest hypernym links from each synset up to ROOT (breadth-first down the hyponym links)."""
    below = collections.defaultdict(list)
    for offset, (_, hypernyms) in nouns.items():
        for parent in hypernyms:
            below[parent].append(offset)
    depth, queue = {ROOT: 0}, collections.deque([ROOT])
    while queue:
        offset = queue.popleft()
        for child in below[offset]:
            if child not in depth:
                depth[child] = depth[offset] + 1
                queue.append(child)
    return depth


def topics_texts(split):
    with gzip.open(DATA_DIR / "wordnet_topics" / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet-dir", type=Path, required=True, help="directory holding data.noun")
    args = parser.parse_args()

    nouns = read_nouns(args.wordnet_dir / "data.noun")
    depth = depths(nouns)
    found = collections.defaultdict(set)  # definition -> the depths of the synsets that have it
    for offset, (definition, _) in nouns.items():
        found[definition].add(depth[offset])
    rng = random.Random(SEED)
    for split, size in SIZES.items():
        # a definition shared by synsets of different depths has no single answer: left out
        texts = [t for t in topics_texts(split) if len(found.get(t, ())) == 1]
        rows = [{"text": t, "label": next(iter(found[t]))} for t in rng.sample(texts, size)]
        write_jsonl_gz(OUT_DIR / f"{split}.jsonl.gz", rows)
        counts = collections.Counter(r["label"] for r in rows)
        mean = sum(r["label"] for r in rows) / size
        print(f"{split}: {size} of {len(texts)}, mean depth {mean:.2f}", dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
