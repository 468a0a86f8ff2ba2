"""Build data/wordnet_qa/ (lexical span QA) from WordNet 3.0 (stdlib only).

Source: Debian's ``wordnet-base`` package, as for build_wordnet.py::

    cd /tmp && apt-get download wordnet-base && dpkg -x wordnet-base_*.deb /tmp/wn
    python data/build_wordnet_qa.py --wordnet-dir /tmp/wn/usr/share/wordnet

One question per example sentence that contains one of its synset's words as a whole word (case-insensitive; the
first such word in the synset's order):
- ``question``: "Which word means: <the synset's definition>?"
- ``context``: that example, then the synset's other examples (up to MAX_EXAMPLES sentences in all);
- ``answers``: SQuAD v1.1 style, {"text": [...], "answer_start": [...]}, every whole-word occurrence of the word in
  the context, the anchoring example's first.
Splits are by synset (seeded), so no definition is in two splits. Outputs are byte-identical across runs.
"""

import argparse
import random
import re
from pathlib import Path

from build_wordnet import POS_FILES, parse_gloss, write_jsonl_gz

SEED = 0
MAX_EXAMPLES = 3
HELD_OUT = 0.05  # share of the synsets in validation, and the same in test
OUT_DIR = Path(__file__).resolve().parent / "wordnet_qa"


def read_synsets(path):
    """Yield (offset, words, definition, examples) per synset; words as written (underscores as spaces, adjective
    markers such as (a) removed)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # license header
                continue
            fields, gloss = line.split(" | ", 1)
            parts = fields.split()
            words = [re.sub(r"\((a|p|ip)\)$", "", parts[4 + 2 * i]).replace("_", " ") for i in range(int(parts[3], 16))]
            definition, examples = parse_gloss(gloss.strip())
            yield parts[0], words, definition, examples


def whole_word(word):
    return re.compile(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", re.IGNORECASE)


def questions(pos, offset, words, definition, examples):
    """The synset's QA rows, one per example that holds one of its words."""
    rows = []
    for i, example in enumerate(examples):
        word = next((w for w in words if whole_word(w).search(example)), None)
        if word is None or not definition:
            continue
        context = " ".join([example] + [e for j, e in enumerate(examples) if j != i][: MAX_EXAMPLES - 1])
        spans = [m for m in whole_word(word).finditer(context)]
        rows.append(
            {
                "id": f"{pos}.{offset}.{i}",
                "question": f"Which word means: {definition}?",
                "context": context,
                "answers": {"text": [m.group(0) for m in spans], "answer_start": [m.start() for m in spans]},
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet-dir", type=Path, required=True, help="directory holding data.noun, data.verb, ...")
    args = parser.parse_args()
    by_synset = []
    for pos in POS_FILES:
        for offset, words, definition, examples in read_synsets(args.wordnet_dir / f"data.{pos}"):
            rows = questions(pos, offset, words, definition, examples)
            if rows:
                by_synset.append(rows)
    rng = random.Random(SEED)
    rng.shuffle(by_synset)
    n = round(HELD_OUT * len(by_synset))
    splits = {"validation": by_synset[:n], "test": by_synset[n : 2 * n], "train": by_synset[2 * n :]}
    for name, groups in splits.items():
        rows = [row for group in groups for row in group]
        rng.shuffle(rows)
        write_jsonl_gz(OUT_DIR / f"{name}.jsonl.gz", rows)
        print(f"wordnet_qa/{name}: {len(rows)} questions from {len(groups)} synsets")


if __name__ == "__main__":
    main()
