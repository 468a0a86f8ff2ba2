"""SFT tokens/s: packed conversations (objective.packing=true) vs padded rows, on the same multi-turn data.

The same tiny GPT-2 (conf/model/tiny_gpt2.yaml's sizes), byte-level BPE tokenizer (8000, tokenizer=train's default),
conversations (1-4 turns of embedded WordNet definitions, data/chat.py's messages format), data.max_seq_len, batch
size and AdamW. Each runner is the product's training path without Lightning: the sft objective prepares the split,
the DataModule batches it (length-bucketed for padded rows, as by default), and objective.step gives the loss. Rounds
interleave the runners; the median of non-pad tokens per second of optimizer steps is reported, with the share of
computed tokens that are padding.

  python bench/sft_packing.py --threads 1
"""

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path


def conversations(n: int, seed: int = 0) -> list:
    """n conversations of 1-4 turns from the embedded WordNet definitions (user: a word and its example; assistant:
    its definition), a system turn in about a third: real text of varying length."""
    import gzip

    from transferlab.config import DATA_DIR

    with gzip.open(DATA_DIR / "wordnet_definitions" / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f]
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        turns = [{"role": "system", "content": "define the word"}] if rng.random() < 0.3 else []
        for pair in rng.sample(pairs, rng.randint(1, 4)):
            turns += [{"role": "user", "content": pair["source"]}, {"role": "assistant", "content": pair["target"]}]
        rows.append({"messages": turns})
    return rows


def runner(packing: bool, bucket: bool, path: str, tokenizer, a):
    """(one timed step, its non-pad tokens) closures over a fresh model and loader."""
    import torch
    from omegaconf import OmegaConf
    from transformers import GPT2Config, GPT2LMHeadModel

    from transferlab.data.files import read_file
    from transferlab.data.module import TransferDataModule
    from transferlab.objectives.sft import SFT

    data = {"max_seq_len": a.max_seq_len, "num_proc": None, "format": "messages", "source": "files", "train": path}
    data.update(source_column="source", target_column="target", batch_size=a.batch_size, eval_batch_size=None)
    data.update(bucket_by_length=bucket, num_workers=0, shuffle_buffer=1000)
    data = OmegaConf.create(data)
    cfg = {"name": "sft", "separator": "\n", "max_target_len": 64, "generation": {"max_new_tokens": 8}}
    tokenizer.chat_template = None
    objective = SFT(OmegaConf.create({**cfg, "packing": packing}), data, tokenizer, None)
    split = SFT.reshape(read_file(path, "train", fmt="messages"), data)
    train = objective.prepare("train", split)
    torch.manual_seed(0)
    ends = {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=128, n_layer=2, n_head=2, n_positions=512, **ends)
    model = GPT2LMHeadModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = TransferDataModule({"train": train}, objective, data, seed=0).train_dataloader()
    batches = iter(())

    def step() -> tuple:
        nonlocal batches
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        loss = objective.step(model, batch, "train")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return batch["n_tokens"], batch["input_ids"].numel()

    return step


def main() -> None:
    import torch

    from transferlab.models.tokenizer import _train_byte_bpe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--max-seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=30, help="timed steps per runner per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = conversations(a.rows)
    work = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    path = work / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = [t["content"] for r in rows for t in r["messages"]] + ["system user assistant"] * 10
    tokenizer = _train_byte_bpe(iter([texts]), vocab_size=8000, min_frequency=2, lowercase=False)
    tokenizer.pad_token = tokenizer.eos_token
    runners = {
        "padded (length-bucketed)": runner(False, True, str(path), tokenizer, a),
        "padded (bucketing off)": runner(False, False, str(path), tokenizer, a),
        "packed": runner(True, True, str(path), tokenizer, a),
    }
    rates, pads = {name: [] for name in runners}, {name: [0, 0] for name in runners}
    for _ in range(a.repeats):
        for name, step in runners.items():
            for _ in range(a.warmup):
                step()
            start, tokens = time.perf_counter(), 0
            for _ in range(a.steps):
                real, computed = step()
                tokens += real
                pads[name][0] += computed - real
                pads[name][1] += computed
            rates[name].append(tokens / (time.perf_counter() - start))
    base = statistics.median(rates["padded (length-bucketed)"])
    print(f"{a.rows} conversations, max_seq_len {a.max_seq_len}, batch {a.batch_size}, {a.threads} thread(s)")
    print("| runner | non-pad tokens/s (median) | vs padded (bucketed) [min-max] | pad share |\n|---|---|---|---|")
    for name, values in rates.items():
        spread = f"{min(values) / base:.2f}-{max(values) / base:.2f}"
        median, pad = statistics.median(values), pads[name][0] / pads[name][1]
        print(f"| {name} | {median:,.0f} | {median / base:.2f}x [{spread}] | {pad:.1%} |")


if __name__ == "__main__":
    main()
