"""Corpora larger than memory: preparation time, disk and peak RSS against corpus size, and HF's run_mlm.py path.

    python bench/scale.py [--sizes 0.25,1|none] [--steps 200] [--peer-size 0.25] [--ddp 0.25] [--no-compare]
                          [--train-only]

For each size (GB of text) a synthetic corpus is generated under outputs/bench/scale/ (never committed): WordNet
glosses from the embedded corpus with random word-level variation (words swapped for others from the corpus
vocabulary, numbers inserted), so that it neither repeats nor compresses to nothing. Then, in fresh processes:
- **prepare**: load, tokenize (data.num_proc processes) and pack the MLM blocks into the prepared-data cache, as the
  first run on a corpus does; time, tokens/s, disk (the text's Arrow copy, the blocks) and peak RSS (all, and
  anonymous);
- **train**: `transferlab-train experiment=pretrain_mlm` for --steps steps on the prepared corpus (a cache hit: no
  tokenization), peak RSS (all, and anonymous);
  (--train-only: this alone, on the cache an earlier run of this bench prepared);
- **num_proc**: the smallest corpus is prepared with 1 and with 2 processes;
- **peer**: HF run_mlm.py's path on the --peer-size corpus (datasets map tokenize + group_texts into int64 lists,
  2 processes as `--preprocessing_num_workers 2`);
- **ddp** (--ddp GB): 2 CPU ranks started at once through trainer=ddp_multinode on an empty cache: which rank prepared,
  how long the other waited and then took, and whether both read the same prepared splits.
Writes outputs/bench/results/scale.json and prints the table docs/benchmarks.md keeps.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "outputs" / "bench" / "scale"
PY = sys.executable
TRAIN = Path(PY).parent / "transferlab-train"


def generate(size_gb: float) -> Path:
    import gzip

    path = WORK / f"corpus_{size_gb:g}gb.txt"
    if path.is_file():
        return path
    with gzip.open(ROOT / "data" / "wordnet_corpus" / "train.jsonl.gz", "rt") as f:
        lines = [json.loads(line)["text"] for line in f]
    vocab = sorted({w for line in lines[:20000] for w in line.split()})
    rng = random.Random(0)
    target, written = int(size_gb * 2**30), 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        while written < target:
            chunk = []
            for line in rng.choices(lines, k=10000):
                words = line.split()
                for _ in range(max(1, len(words) // 5)):
                    words[rng.randrange(len(words))] = rng.choice(vocab)
                if rng.random() < 0.3:
                    words.insert(rng.randrange(len(words) + 1), str(rng.randrange(10000)))
                chunk.append(" ".join(words))
            text = "\n".join(chunk) + "\n"
            out.write(text)
            written += len(text.encode())
    tmp.rename(path)
    return path


def measured(cmd: list, env: dict | None = None) -> dict:
    """Run cmd in a wrapper process that reports its child's peak RSS (ru_maxrss of that one child, file-backed pages
    of memory-mapped files included) and its peak anonymous RSS (RssAnon, sampled every 50 ms: the process's own
    memory, which is what runs out; mapped file pages are page cache the kernel can drop)."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter(); p = subprocess.Popen(sys.argv[1:]); anon = 0\n"
        "while p.poll() is None:\n"
        "    try:\n"
        "        line = next(x for x in open(f'/proc/{p.pid}/status') if x.startswith('RssAnon'))\n"
        "        anon = max(anon, int(line.split()[1]))\n"
        "    except (OSError, StopIteration):\n"
        "        pass\n"
        "    time.sleep(0.05)\n"
        "print('MEASURED', p.returncode, time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, anon)\n"
    )
    out = subprocess.run([PY, "-c", wrapper, *cmd], capture_output=True, text=True, env=env)
    line = next(x for x in out.stdout.splitlines() if x.startswith("MEASURED"))
    _, rc, seconds, rss_kb, anon_kb = line.split()
    if int(rc):
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{out.stderr[-3000:]}")
    return {
        "seconds": round(float(seconds), 1),
        "peak_rss_mb": round(int(rss_kb) / 1024),
        "peak_anon_mb": round(int(anon_kb) / 1024),
        "stdout": out.stdout,
        "stderr": out.stderr,
    }


def reprepared(cache: Path, n_blocks: int) -> bool:
    """Whether the training run prepared the train split again (a second blocks dir of the train split's shape)."""
    import numpy as np

    shapes = [
        np.load(d / "blocks.npy", mmap_mode="r").shape[0]
        for d in (cache / "prepared").iterdir()
        if (d / "blocks.npy").is_file()
    ]
    return shapes.count(n_blocks) > 1


def train_row(corpus: Path, cache: Path, env: dict, size: float, n_blocks: int, steps: int) -> dict:
    """`transferlab-train` for `steps` steps on the prepared corpus: its peak RSS (all, anonymous), time, and whether
    it prepared the train split again (it must not: a hit)."""
    train = measured(
        [
            str(TRAIN),
            *overrides(corpus, cache, 2),
            f"trainer.max_steps={steps}",
            "trainer.max_epochs=-1",
            "trainer.val_check_interval=100000",
            "trainer.limit_val_batches=0",
            f"hydra.run.dir={cache.parent / 'runs' / f'train_{size:g}'}",
        ],
        env,
    )
    return {
        "train_peak_rss_mb": train["peak_rss_mb"],
        "train_peak_anon_mb": train["peak_anon_mb"],
        "train_reprepared": reprepared(cache, n_blocks),
        "train_wall_s": train["seconds"],
    }


def train_blocks(cache: Path) -> int:
    """The train split's block count in a prepared bench cache: its largest blocks file."""
    import numpy as np

    if not (cache / "prepared").is_dir():
        raise SystemExit(f"--train-only: {cache} holds no prepared data; run without --train-only first")
    return max(
        np.load(d / "blocks.npy", mmap_mode="r").shape[0]
        for d in (cache / "prepared").iterdir()
        if (d / "blocks.npy").is_file()
    )


def ddp_row(corpus: Path, steps: int) -> dict:
    """trainer=ddp_multinode as SLURM starts it: 2 CPU processes at once on an empty cache; each rank's share of the
    preparation (time waiting at the data's lock, time preparing, splits it wrote) and the prepared splits it read."""
    import socket

    cache = WORK / "cache_ddp"
    shutil.rmtree(cache, ignore_errors=True)
    run = cache.parent / "runs" / "ddp"
    shutil.rmtree(run, ignore_errors=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "TRANSFERLAB_CACHE": str(cache),
        "HF_DATASETS_CACHE": str(cache / "hf"),
        "OMP_NUM_THREADS": "1",
        "TRANSFERLAB_DEBUG_RANKS": "1",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "2",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_NAME": "bench",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    cmd = [
        str(TRAIN),
        *overrides(corpus, cache, 2),
        "trainer=ddp_multinode",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.precision=32-true",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=-1",
        "trainer.limit_val_batches=0",
        f"hydra.run.dir={run}",
    ]
    procs = [
        subprocess.Popen(
            cmd,
            env={**env, "SLURM_PROCID": str(r), "SLURM_NODEID": str(r)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"ddp run failed:\n{err[-3000:]}")
    ranks = [json.loads((run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    return {
        "size_gb": corpus.stat().st_size / 2**30,
        "ranks": [
            {
                "rank": r["rank"],
                "waited_s": round(r["preparation"]["waited_s"], 1),
                "prepare_s": round(r["preparation"]["seconds"], 1),
                "splits_written": len(r["preparation"]["written"]),
            }
            for r in ranks
        ],
        "same_prepared_splits": ranks[0]["data"] == ranks[1]["data"],
    }


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def overrides(corpus: Path, cache: Path, num_proc: int) -> list:
    small = ROOT / "data" / "wordnet_corpus" / "validation.jsonl.gz"
    return [
        "experiment=pretrain_mlm",
        "data=files",
        f"data.train={corpus}",
        f"data.validation={small}",
        "data.test=null",
        f"data.num_proc={num_proc}",
        "tokenizer.train_samples=100000",
        "logger=none",
        "callbacks.progress_bar=false",
        "export=false",
        "test=false",
        f"paths.output_dir={cache.parent / 'runs'}",
    ]


PREPARE = """
import json, os, sys, time
from transferlab.cli.front import compose
from transferlab.run.preflight import check_inputs
from transferlab.objectives import OBJECTIVES
from transferlab.models.tokenizer import build_tokenizer
from pathlib import Path
cfg = compose(sys.argv[1:])
# fresh with the cache: no tokenizer saved by an earlier bench
run = Path(os.environ["TRANSFERLAB_CACHE"]) / "prepare_run"
start = time.perf_counter()
raw = check_inputs(cfg, run).raw
loaded = time.perf_counter()
cls = OBJECTIVES[cfg.objective.name]
tok = build_tokenizer(cfg, raw["train"], run, True, cls)
tokenizer_s = time.perf_counter()
blocks = cls(cfg.objective, cfg.data, tok, raw["train"]).prepare("train", raw["train"])
done = time.perf_counter()
print("RESULT", json.dumps({"load_s": loaded - start, "tokenizer_s": tokenizer_s - loaded,
      "prepare_s": done - tokenizer_s, "tokens": int(blocks.blocks.size), "blocks_dtype": str(blocks.blocks.dtype),
      "n_blocks": len(blocks.blocks)}))
"""

PEER = """
import sys, time
from itertools import chain
from datasets import load_dataset
from transformers import AutoTokenizer
corpus, tokenizer_dir, block = sys.argv[1], sys.argv[2], 64
tok = AutoTokenizer.from_pretrained(tokenizer_dir)
start = time.perf_counter()
raw = load_dataset("text", data_files={"train": corpus}, split="train")
tokenized = raw.map(lambda b: tok(b["text"], return_special_tokens_mask=True), batched=True,
                    remove_columns=["text"], num_proc=2)
def group_texts(examples):  # run_mlm.py's grouping: concatenate, drop the remainder, cut into blocks
    concatenated = {k: list(chain(*examples[k])) for k in examples.keys()}
    total = (len(concatenated["input_ids"]) // block) * block
    return {k: [t[i : i + block] for i in range(0, total, block)] for k, t in concatenated.items()}
grouped = tokenized.map(group_texts, batched=True, num_proc=2)
print("RESULT", time.perf_counter() - start, len(grouped))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.25,1")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--peer-size", type=float, default=0.25)
    parser.add_argument(
        "--ddp", type=float, default=0, help="GB of the corpus for the 2-rank shared preparation (0: skip)"
    )
    parser.add_argument("--no-compare", action="store_true", help="skip num_proc=1 on the smallest corpus")
    parser.add_argument(
        "--train-only", action="store_true", help="measure the training runs alone, on caches this bench prepared"
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    sizes = [float(s) for s in args.sizes.split(",")] if args.sizes != "none" else []
    results = []
    for size in sizes:
        corpus = generate(size)
        if args.train_only:
            cache = WORK / f"cache_{size:g}gb_np2"
            env = {**os.environ, "TRANSFERLAB_CACHE": str(cache), "HF_DATASETS_CACHE": str(cache / "hf")}
            row = {
                "size_gb": size,
                "text_bytes": corpus.stat().st_size,
                **train_row(corpus, cache, env, size, train_blocks(cache), args.steps),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
            continue
        for num_proc in (1, 2) if size == min(sizes) and not args.no_compare else (2,):
            cache = WORK / f"cache_{size:g}gb_np{num_proc}"
            shutil.rmtree(cache, ignore_errors=True)  # a first preparation, every time
            hf_cache = cache / "hf"
            env = {**os.environ, "TRANSFERLAB_CACHE": str(cache), "HF_DATASETS_CACHE": str(hf_cache)}
            prep = measured([PY, "-c", PREPARE, *overrides(corpus, cache, num_proc)], env)
            info = json.loads(next(x for x in prep["stdout"].splitlines() if x.startswith("RESULT"))[7:])
            row = {
                "size_gb": size,
                "num_proc": num_proc,
                "text_bytes": corpus.stat().st_size,
                **info,
                "prepare_wall_s": prep["seconds"],
                "prepare_peak_rss_mb": prep["peak_rss_mb"],
                "prepare_peak_anon_mb": prep["peak_anon_mb"],
                "disk_hf_arrow_bytes": du(hf_cache),
                "disk_blocks_bytes": du(cache / "prepared"),
            }
            row["tokens_per_s"] = round(info["tokens"] / info["prepare_s"])
            if num_proc == 2:
                row.update(train_row(corpus, cache, env, size, info["n_blocks"], args.steps))
            results.append(row)
            print(json.dumps(row), flush=True)
    peer = None
    if args.peer_size:
        corpus = generate(args.peer_size)
        tokenizers = sorted((WORK / f"cache_{args.peer_size:g}gb_np2" / "tokenizers").iterdir())
        hf_cache = WORK / "peer_hf_cache"
        shutil.rmtree(hf_cache, ignore_errors=True)
        env = {**os.environ, "HF_DATASETS_CACHE": str(hf_cache)}
        run = measured([PY, "-c", PEER, str(corpus), str(tokenizers[0])], env)
        peer = {
            "size_gb": args.peer_size,
            "wall_s": run["seconds"],
            "peak_rss_mb": run["peak_rss_mb"],
            "peak_anon_mb": run["peak_anon_mb"],
            "disk_bytes": du(hf_cache),
        }
        print(json.dumps(peer), flush=True)
    ddp = ddp_row(generate(args.ddp), 20) if args.ddp else None
    if ddp:
        print(json.dumps(ddp), flush=True)
    out = (
        ROOT
        / "outputs"
        / "bench"
        / "results"
        / f"scale_{args.sizes.replace(',', '_')}{'_train' if args.train_only else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": results, "peer": peer, "ddp": ddp}, indent=2) + "\n")


if __name__ == "__main__":
    main()
