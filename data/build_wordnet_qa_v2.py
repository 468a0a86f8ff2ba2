"""Build data/wordnet_qa_v2/ (SQuAD v2-style lexical span QA, with synthetic unanswerable questions) from
data/wordnet_qa/ (stdlib only; run build_wordnet_qa.py first if that is missing)::

    python data/build_wordnet_qa_v2.py

Per split (wordnet_qa's splits are by synset, so no definition is in two of them), drawn with a fixed seed:
- ANSWERABLE questions of wordnet_qa as they are (is_impossible false);
- UNANSWERABLE further questions, each paired with the context of another question of the same split from a
  different synset, one that does not hold the answer word as a whole word (case-insensitive): is_impossible true,
  answers []. These are synthetic: the question was written for another context.
Written as SQuAD v2.0 JSON ({"version": "v2.0", "data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}, one
paragraph per question), gzipped with a constant header: outputs are byte-identical across runs.
"""

import gzip
import json
import random
import re
from pathlib import Path

SEED = 0
HERE = Path(__file__).resolve().parent
SIZES = {"train": (8000, 4000), "validation": (600, 300), "test": (600, 300)}  # (answerable, unanswerable)


def read_jsonl_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def synset(row):
    return row["id"].rsplit(".", 1)[0]  # "noun.01234567.2" -> the synset "noun.01234567"


def holds(context, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", context, re.IGNORECASE) is not None


def build(rows, answerable, unanswerable, rng):
    rows = sorted(rows, key=lambda r: r["id"])
    rng.shuffle(rows)
    kept, asked = rows[:answerable], rows[answerable : answerable + unanswerable]
    paragraphs = [
        {
            "context": r["context"],
            "qas": [
                {
                    "id": r["id"],
                    "question": r["question"],
                    "answers": [{"text": t, "answer_start": s} for t, s in zip(*r["answers"].values())],
                    "is_impossible": False,
                }
            ],
        }
        for r in kept
    ]
    for r in asked:
        while True:
            other = rows[rng.randrange(len(rows))]
            if synset(other) != synset(r) and not holds(other["context"], r["answers"]["text"][0]):
                break
        qa = {"id": f"{r['id']}.x.{other['id']}", "question": r["question"], "answers": [], "is_impossible": True}
        paragraphs.append({"context": other["context"], "qas": [qa]})
    rng.shuffle(paragraphs)
    return {"version": "v2.0", "data": [{"title": "wordnet_qa_v2", "paragraphs": paragraphs}]}


def main():
    rng = random.Random(SEED)
    out = HERE / "wordnet_qa_v2"
    out.mkdir(exist_ok=True)
    for split, (answerable, unanswerable) in SIZES.items():
        document = build(read_jsonl_gz(HERE / "wordnet_qa" / f"{split}.jsonl.gz"), answerable, unanswerable, rng)
        with (
            open(out / f"{split}.json.gz", "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        ):
            gz.write(json.dumps(document, ensure_ascii=False).encode("utf-8"))
        print(f"wordnet_qa_v2/{split}: {answerable} answerable + {unanswerable} unanswerable questions")


if __name__ == "__main__":
    main()
