"""Why prepared blocks are .npy and not datasets' Arrow: bytes per token on disk and the cost of fetching a batch.

    python bench/arrow_vs_npy.py [--blocks 200000] [--block-size 64] [--batches 300]

The same uint16 token blocks are written both ways under outputs/bench/arrow_vs_npy/ (never committed):
- Arrow: a datasets.Dataset with one list<uint16> column (what datasets.map writes), saved and loaded memory-mapped;
  a batch is ds[indices] with the numpy format (DataLoader's __getitems__ path);
- .npy: the store's layout (data/store.py), np.load(mmap_mode="r"); a batch is blocks[indices].
Random batches of 32 blocks, the order fixed by a seed; median microseconds per batch over --batches batches.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "outputs" / "bench" / "arrow_vs_npy"


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(fetch, batches) -> float:
    for b in batches[:10]:  # warm the page cache and any lazy set-up
        fetch(b)
    times = []
    for b in batches:
        t = time.perf_counter()
        fetch(b)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=200_000)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=300)
    a = p.parse_args()
    from datasets import Dataset, Features, Sequence, Value, load_from_disk

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 30_000, size=(a.blocks, a.block_size), dtype=np.uint16)
    np.save(OUT / "blocks.npy", blocks)
    features = Features({"input_ids": Sequence(Value("uint16"))})
    Dataset.from_dict({"input_ids": list(blocks)}, features=features).save_to_disk(str(OUT / "arrow"))
    tokens = blocks.size
    arrow = load_from_disk(str(OUT / "arrow")).with_format("numpy")
    npy = np.load(OUT / "blocks.npy", mmap_mode="r")
    batches = [np.sort(rng.choice(a.blocks, 32, replace=False)) for _ in range(a.batches)]
    result = {
        "blocks": a.blocks,
        "block_size": a.block_size,
        "npy_bytes_per_token": round((OUT / "blocks.npy").stat().st_size / tokens, 3),
        "arrow_bytes_per_token": round(du(OUT / "arrow") / tokens, 3),
        "npy_us_per_batch": round(timed(lambda b: npy[b], batches), 1),
        "arrow_us_per_batch": round(timed(lambda b: arrow[b]["input_ids"], batches), 1),
    }
    result["arrow_vs_npy_fetch"] = round(result["arrow_us_per_batch"] / result["npy_us_per_batch"], 1)
    print(json.dumps(result))
    (OUT.parent / "results").mkdir(exist_ok=True)
    (OUT.parent / "results" / "arrow_vs_npy.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
