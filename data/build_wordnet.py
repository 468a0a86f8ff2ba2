"""Build the embedded WordNet 3.0 datasets under data/ (stdlib only).

Source: Debian's ``wordnet-base`` package (the Princeton WordNet 3.0 database)::

    cd /tmp && apt-get download wordnet-base && dpkg -x wordnet-base_*.deb /tmp/wn
    python data/build_wordnet.py --wordnet-dir /tmp/wn/usr/share/wordnet

Outputs (all rewritten on every run, byte-identical across runs):

* ``wordnet_topics/{train,validation,test}.jsonl.gz`` -- {"text", "label"}:
  noun gloss definitions labelled with their lexicographer file, 10 largest
  noun files only.
* ``wordnet_corpus/{train,validation}.jsonl.gz`` -- {"text"}: every gloss
  definition and example sentence of all parts of speech, minus anything that
  could leak the topics validation/test splits.
* ``LICENSE.wordnet`` -- the WordNet 3.0 license, taken from data.noun's header.
"""

import argparse
import collections
import gzip
import json
import random
import re
from pathlib import Path

SEED = 0
N_TOPIC_VAL = N_TOPIC_TEST = 2500
N_CORPUS_VAL = 2000
N_LABELS = 10
POS_FILES = ("noun", "verb", "adj", "adv")
OUT_DIR = Path(__file__).resolve().parent

# lexnames(5WN). Embedded because wordnet-base does not ship the lexnames file.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact "
    "noun.attribute noun.body noun.cognition noun.communication noun.event "
    "noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time "
    "verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()

# Examples start at the first quote that follows a separator. A quote with no
# separator before it is usually part of the definition itself, e.g.
# 'significant progress (especially in the phrase "make strides")'.
EXAMPLES_START = re.compile(r'[;:,]\s*"')
QUOTED = re.compile(r'"([^"]*)"')


def parse_gloss(gloss):
    """Split a gloss into (definition, [examples])."""
    m = EXAMPLES_START.search(gloss)
    if not m:
        return gloss.strip(" ;:,"), []
    definition = gloss[: m.start()].strip(" ;:,")
    # Only text inside quotes counts: what sits between quotes is separators or
    # attributions ('- Shakespeare'), which are not sentences. The ~20 glosses
    # with unbalanced quotes lose a fragment this way; not worth special-casing.
    examples = [e.strip() for e in QUOTED.findall(gloss[m.end() - 1 :])]
    return definition, [e for e in examples if e]


def read_synsets(path):
    """Yield (lexname, definition, examples) per synset, in file order."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # license header
                continue
            fields, gloss = line.split(" | ", 1)
            definition, examples = parse_gloss(gloss.strip())
            yield LEXNAMES[int(fields.split()[1])], definition, examples


def license_text(path):
    """The license as printed in data.noun's header, minus its line numbers."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("  "):
                break
            lines.append(line.strip().split(" ", 1)[1] if " " in line.strip() else "")
    return "\n".join(lines).strip() + "\n"


def quotas(sizes, total):
    """Largest-remainder apportionment, so per-label quotas sum to `total` exactly."""
    n = sum(sizes.values())
    exact = {k: total * v / n for k, v in sizes.items()}
    out = {k: int(x) for k, x in exact.items()}
    by_remainder = sorted(exact, key=lambda k: (out[k] - exact[k], k))
    for k in by_remainder[: total - sum(out.values())]:
        out[k] += 1
    return out


def write_jsonl_gz(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and an empty embedded filename keep the gzip header constant, so
    # rebuilding yields identical bytes and the diff stays empty.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


def build_topics(noun_synsets, rng):
    counts = collections.Counter(lex for lex, _, _ in noun_synsets)
    # Tie-break on name so the label set cannot depend on Counter ordering.
    keep = {lex for lex, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:N_LABELS]}
    labels_of, first = collections.defaultdict(set), {}
    for lex, definition, _ in noun_synsets:
        if lex in keep and definition:
            labels_of[definition].add(lex)
            first.setdefault(definition, lex)
    # A text filed under two labels has no single right answer: drop it.
    by_label = collections.defaultdict(list)
    for text, lex in first.items():
        if len(labels_of[text]) == 1:
            by_label[lex].append(text)

    sizes = {lex: len(texts) for lex, texts in by_label.items()}
    val_q, test_q = quotas(sizes, N_TOPIC_VAL), quotas(sizes, N_TOPIC_TEST)
    splits = {"train": [], "validation": [], "test": []}
    for lex in sorted(by_label):
        texts = by_label[lex][:]
        rng.shuffle(texts)
        v, t = val_q[lex], test_q[lex]
        for name, chunk in (("validation", texts[:v]), ("test", texts[v : v + t]), ("train", texts[v + t :])):
            splits[name].extend({"text": x, "label": lex} for x in chunk)
    for rows in splits.values():
        rng.shuffle(rows)
    return splits


def build_corpus(all_synsets, heldout_defs, rng):
    # Drop held-out synsets wholesale, and ban their examples too, so that the
    # same example sentence reached via another synset cannot leak either.
    banned = set(heldout_defs)
    for _, definition, examples in all_synsets:
        if definition in heldout_defs:
            banned.update(examples)
    texts = {}  # dict as an insertion-ordered set, for determinism
    for _, definition, examples in all_synsets:
        if definition in heldout_defs:
            continue
        for text in [definition, *examples]:
            if text and text not in banned:
                texts[text] = None
    texts = list(texts)
    rng.shuffle(texts)
    return {
        "validation": [{"text": x} for x in texts[:N_CORPUS_VAL]],
        "train": [{"text": x} for x in texts[N_CORPUS_VAL:]],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--wordnet-dir", type=Path, required=True, help="directory holding data.noun, data.verb, data.adj, data.adv"
    )
    args = parser.parse_args()

    synsets = {pos: list(read_synsets(args.wordnet_dir / f"data.{pos}")) for pos in POS_FILES}
    # A single generator, consumed in a fixed order, makes SEED the only source
    # of randomness for the whole build.
    rng = random.Random(SEED)
    topics = build_topics(synsets["noun"], rng)
    heldout = {r["text"] for name in ("validation", "test") for r in topics[name]}
    corpus = build_corpus([s for pos in POS_FILES for s in synsets[pos]], heldout, rng)

    for name, rows in topics.items():
        write_jsonl_gz(OUT_DIR / "wordnet_topics" / f"{name}.jsonl.gz", rows)
    for name, rows in corpus.items():
        write_jsonl_gz(OUT_DIR / "wordnet_corpus" / f"{name}.jsonl.gz", rows)
    (OUT_DIR / "LICENSE.wordnet").write_text(license_text(args.wordnet_dir / "data.noun"), encoding="utf-8")

    for name, rows in topics.items():
        counts = collections.Counter(r["label"] for r in rows)
        print(f"topics/{name}: {len(rows)}", dict(sorted(counts.items())))
    for name, rows in corpus.items():
        print(f"corpus/{name}: {len(rows)}")


if __name__ == "__main__":
    main()
