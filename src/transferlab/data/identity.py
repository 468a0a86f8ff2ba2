"""What a run records about its data (metrics.json data/*), so a report can tell whether runs did the same task and
how many labels each used.

The same task is the same train pool (the train split before data.train_fraction and data.max_train_samples, which
differ between a study's runs by design) and the same validation and test splits as used (after
data.max_eval_samples). Each is named by a hash of its rows as read: the objective's fields (renamed to their field
names, labels as names), before tokenization. So transferlab-train and transferlab-baseline record the same
fingerprint for the same rows, whatever the file's path or column names, and any tokenizer. A split's hash is cached
under its name ($TRANSFERLAB_CACHE/rows/), so a later run of the same split reads none of its rows for it.
"""

import hashlib
import json

from transferlab.cache import cache_key, cached_file

TRAIN_EXAMPLES = "data/train_examples"
FINGERPRINTS = {  # metrics.json key -> (which splits, split)
    "data/fingerprint_train_pool": ("task", "train"),
    "data/fingerprint_validation": ("used", "validation"),
    "data/fingerprint_test": ("used", "test"),
}
_BATCH = 4096  # rows per hashed batch (part of the hash: fixed)


def _hash_rows(ds) -> dict:
    digest, rows = hashlib.sha256(), 0
    for batch in ds.iter(batch_size=_BATCH):
        text = json.dumps(batch, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
        digest.update(text.encode())
        rows += len(next(iter(batch.values()), []))
    return {"rows": rows, "sha256": digest.hexdigest()[:16]}


def rows_summary(ds) -> dict:
    """{"rows": n, "sha256": hash of the rows} of a split, cached under the split's name."""

    def write(path):
        path.write_text(json.dumps(_hash_rows(ds)))

    return json.loads(cached_file("rows", cache_key(ds._fingerprint, "rows", 1), "rows.json", write).read_text())


def data_record(task: dict, used: dict) -> dict:
    """metrics.json's data/train_examples (the train rows used) and one fingerprint per split of the task."""
    splits = {"task": task, "used": used}
    record = {TRAIN_EXAMPLES: rows_summary(used["train"])["rows"]} if "train" in used else {}
    for key, (which, split) in FINGERPRINTS.items():
        if split in splits[which]:
            record[key] = rows_summary(splits[which][split])["sha256"]
    return record
