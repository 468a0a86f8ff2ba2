"""Build data/wordnet_multilabel/ (multi-label topics of a word's senses) from WordNet 3.0 (stdlib only).

Source: Debian's ``wordnet-base`` package, as for build_wordnet.py::

    cd /tmp && apt-get download wordnet-base && dpkg -x wordnet-base_*.deb /tmp/wn
    python data/build_wordnet_multilabel.py --wordnet-dir /tmp/wn/usr/share/wordnet

One row per word (a lemma, lowercased, of any part of speech) with MIN_SENSES to MAX_SENSES senses:
- ``text``: "<word>: <definition of sense 1>; <definition of sense 2>; ..." (senses in data-file order);
- ``labels``: the sorted set of the senses' lexicographer files (noun.artifact, verb.motion, ...): 1 to MAX_SENSES.
Words are taken in a seeded order, and a word is kept only if none of its senses is a sense of a word kept before,
so every synset (and its definition) is in one row at most: no definition is in two splits. Outputs are
byte-identical across runs.
"""

import argparse
import collections
import random
import re
from pathlib import Path

from build_wordnet import LEXNAMES, POS_FILES, parse_gloss, write_jsonl_gz

SEED = 0
MIN_SENSES, MAX_SENSES = 2, 4
N_VALIDATION = N_TEST = 1000
N_TRAIN = 8000
OUT_DIR = Path(__file__).resolve().parent / "wordnet_multilabel"


def read_senses(wordnet_dir):
    """{word: [(synset key, lexname, definition), ...]} over every part of speech, senses in file order."""
    senses = collections.defaultdict(list)
    for pos in POS_FILES:
        with open(wordnet_dir / f"data.{pos}", encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):  # license header
                    continue
                fields, gloss = line.split(" | ", 1)
                parts = fields.split()
                definition, _ = parse_gloss(gloss.strip())
                for i in range(int(parts[3], 16)):
                    word = re.sub(r"\((a|p|ip)\)$", "", parts[4 + 2 * i]).replace("_", " ").lower()
                    key = f"{pos}.{parts[0]}"
                    if definition and key not in {k for k, _, _ in senses[word]}:
                        senses[word].append((key, LEXNAMES[int(parts[1])], definition))
    return senses


def disjoint_rows(senses, rng):
    """Rows of words with MIN_SENSES..MAX_SENSES senses, in a seeded order, no synset in two rows."""
    words = sorted(w for w, s in senses.items() if MIN_SENSES <= len(s) <= MAX_SENSES)
    rng.shuffle(words)
    used, rows = set(), []
    for word in words:
        keys = {k for k, _, _ in senses[word]}
        if keys & used:
            continue
        used |= keys
        text = f"{word}: " + "; ".join(d for _, _, d in senses[word])
        rows.append({"text": text, "labels": sorted({lex for _, lex, _ in senses[word]})})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet-dir", type=Path, required=True, help="directory holding data.noun, data.verb, ...")
    args = parser.parse_args()
    rng = random.Random(SEED)
    rows = disjoint_rows(read_senses(args.wordnet_dir), rng)
    validation, test = rows[:N_VALIDATION], rows[N_VALIDATION : N_VALIDATION + N_TEST]
    train = rows[N_VALIDATION + N_TEST :][:N_TRAIN]
    seen = {label for row in train for label in row["labels"]}
    # a held-out row with a topic train lacks could not be predicted: it goes to train instead
    for split in (validation, test):
        moved = [r for r in split if not set(r["labels"]) <= seen]
        split[:] = [r for r in split if set(r["labels"]) <= seen]
        train.extend(moved)
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        write_jsonl_gz(OUT_DIR / f"{name}.jsonl.gz", split)
        per_row = collections.Counter(len(r["labels"]) for r in split)
        print(name, len(split), "rows; labels per row:", dict(sorted(per_row.items())))
    counts = collections.Counter(label for r in train for label in r["labels"])
    print(len(counts), "labels in train:", counts.most_common())


if __name__ == "__main__":
    main()
