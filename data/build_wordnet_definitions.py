"""Build data/wordnet_definitions/ (definition modeling) from WordNet 3.0 (stdlib only).

Source: Debian's ``wordnet-base`` package, as for build_wordnet.py::

    cd /tmp && apt-get download wordnet-base && dpkg -x wordnet-base_*.deb /tmp/wn
    python data/build_wordnet_definitions.py --wordnet-dir /tmp/wn/usr/share/wordnet

One row per example sentence that contains one of its synset's words as a whole word (the triples of
build_wordnet_qa.py): ``source`` is ``word: <the word as the example writes it>; example: <the example>`` and
``target`` is the synset's definition. Split by word (lowercased), seeded: no word is in two splits, so a model must
define words it never saw defined. Outputs are byte-identical across runs.
"""

import argparse
import collections
import random
from pathlib import Path

from build_wordnet import POS_FILES, write_jsonl_gz
from build_wordnet_qa import read_synsets, whole_word

SEED = 0
HELD_OUT = 0.05  # share of the words in validation, and the same in test
OUT_DIR = Path(__file__).resolve().parent / "wordnet_definitions"


def triples(wordnet_dir: Path):
    """(word as written in the example, example, definition), in file order."""
    for pos in POS_FILES:
        for _, words, definition, examples in read_synsets(wordnet_dir / f"data.{pos}"):
            for example in examples:
                match = next((m for w in words for m in [whole_word(w).search(example)] if m), None)
                if match and definition:
                    yield match.group(0), example, definition


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet-dir", type=Path, required=True, help="directory holding data.noun, data.verb, ...")
    args = parser.parse_args()
    by_word = collections.defaultdict(list)
    for word, example, definition in triples(args.wordnet_dir):
        by_word[word.lower()].append({"source": f"word: {word}; example: {example}", "target": definition})
    words = sorted(by_word)
    rng = random.Random(SEED)
    rng.shuffle(words)
    n = round(HELD_OUT * len(words))
    splits = {"validation": words[:n], "test": words[n : 2 * n], "train": words[2 * n :]}
    for name, chosen in splits.items():
        rows = [row for word in chosen for row in by_word[word]]
        rng.shuffle(rows)
        write_jsonl_gz(OUT_DIR / f"{name}.jsonl.gz", rows)
        print(f"wordnet_definitions/{name}: {len(rows)} rows, {len(chosen)} words")


if __name__ == "__main__":
    main()
