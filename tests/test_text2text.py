"""Text-to-text: span corruption's noise and its exact inverse, SFT's masked prompt, seeded generation, the scores
against hand-computed values, and tiny runs of seq2seq and sft whose exports generate what transferlab-generate
and transformers generate."""

import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError
from transferlab.objectives.span_corruption import SpanCorruptionCollator, corrupt, counts, lengths, noise_mask
from transferlab.objectives.text_scores import text_scores

CLI = [sys.executable, "-m", "transferlab.train"]
WORDS = "red green blue black white pink gold grey".split()


def test_span_corruption_lengths_follow_t5s_arithmetic():
    assert lengths(512, 0.15, 3.0) == (568, 114)  # the T5 paper's setting: 568 tokens -> 512 inputs, 114 targets
    block, targets = lengths(64, 0.15, 3.0)
    noise, spans = counts(block, 0.15, 3.0)
    assert block - noise + spans + 1 == 64 and noise + spans + 1 == targets


def test_noise_share_and_span_lengths_hold_over_many_draws_and_the_input_and_target_give_back_the_block():
    block, _ = lengths(128, 0.15, 3.0)
    noise, spans = counts(block, 0.15, 3.0)
    rng = np.random.default_rng(0)
    sentinels = np.arange(32000, 32000 + spans)
    runs = []
    for _ in range(2000):
        mask = noise_mask(block, noise, spans, rng)
        assert mask.sum() == noise and not mask[0]  # exactly the noise share; a kept run comes first
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
        lengths_ = edges[1::2] - edges[::2]
        assert len(lengths_) == spans
        runs.extend(lengths_)
        tokens = rng.integers(5, 1000, block)
        inputs, target = corrupt(tokens, mask, sentinels, eos=1)
        # sentinels appear in order, once each, in both
        assert list(inputs[np.isin(inputs, sentinels)]) == list(sentinels) == list(target[np.isin(target, sentinels)])
        # putting each sentinel's span back into the input gives the block (and the end token)
        span_of, current = {}, None
        for x in target[:-1]:
            if x in sentinels:
                current = span_of[x] = []
            else:
                current.append(x)
        rebuilt = [t for x in inputs[:-1] for t in (span_of[x] if x in sentinels else [x])]
        assert rebuilt == list(tokens) and inputs[-1] == target[-1] == 1
    assert abs(np.mean(runs) - noise / spans) < 1e-9 and 1 <= min(runs) and noise / spans == pytest.approx(3.0, abs=0.2)
    assert np.std(runs) > 0.5  # span lengths vary, as T5's random segmentation makes them


def test_the_collator_draws_a_batchs_spans_from_its_seed():
    from transferlab.data.buckets import Batch, carry_seed

    cfg = OmegaConf.create({"noise_density": 0.15, "mean_noise_span_length": 3.0})
    collator = SpanCorruptionCollator(cfg, 32, np.arange(900, 1000), eos=1)
    blocks = [torch.arange(10, 10 + collator.block) + i for i in range(4)]

    def batch(seed):
        indices = Batch([0, 1, 2, 3])
        indices.seed = seed
        return collator(carry_seed(list(blocks), indices))

    first, again, other = batch(123), batch(123), batch(124)
    assert first["input_ids"].shape == (4, 32) and first["labels"].shape == (4, collator.targets)
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(first["labels"], again["labels"])
    assert not torch.equal(first["input_ids"], other["input_ids"])


def test_span_corruption_refuses_a_tokenizer_without_sentinels():
    from transferlab.models.tokenizer import _train_wordpiece
    from transferlab.objectives.span_corruption import SpanCorruption

    wordpiece = _train_wordpiece(iter([["a b c d"] * 10]), vocab_size=60, min_frequency=1, lowercase=True)
    cfg = OmegaConf.create({"name": "span_corruption", "noise_density": 0.15, "mean_noise_span_length": 3.0})
    with pytest.raises(
        TransferlabError,
        match=r"needs 2 sentinel tokens \(<extra_id_0> ... <extra_id_1>\) and an end token in the "
        r"tokenizer; it lacks <extra_id_0>: use tokenizer=train on a T5-style model",
    ):
        SpanCorruption(cfg, OmegaConf.create({"max_seq_len": 32, "num_proc": None}), wordpiece, None)


def test_span_acc_scores_the_noised_tokens_alone_where_acc_also_counts_sentinels_and_the_end():
    """A decoder that knows the target's structure (sentinels, end) but none of its spans: acc rewards it for what
    counting gives, span_acc shows that it read nothing."""
    from types import SimpleNamespace

    from transferlab.models.tokenizer import _train_unigram
    from transferlab.objectives.span_corruption import SpanCorruption

    tokenizer = _train_unigram(iter([["the cat sat on a mat by the door"] * 20]), 120, 1, False)
    cfg = OmegaConf.create({"name": "span_corruption", "noise_density": 0.15, "mean_noise_span_length": 3.0})
    objective = SpanCorruption(cfg, OmegaConf.create({"max_seq_len": 32, "num_proc": None}), tokenizer, None)
    s0, s1, eos = tokenizer.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_1>", "</s>"])
    a, b = tokenizer.convert_tokens_to_ids(["c", "d"])  # two pieces of the text
    assert len({s0, s1, eos, a, b}) == 5
    labels = torch.tensor([[s0, a, b, s1, b, eos]])  # spans: a b | b
    guessed = torch.tensor([[s0, b, b, s1, a, eos]])  # right on 3 of 3 told tokens, 1 of 3 span tokens
    logits = torch.nn.functional.one_hot(guessed, len(tokenizer)).float() * 10

    class Model:
        def prepare_decoder_input_ids_from_labels(self, labels):
            return labels

        def __call__(self, **kwargs):
            return SimpleNamespace(logits=logits)

    objective.step(Model(), {"input_ids": torch.tensor([[a]]), "labels": labels}, "val")
    scores = {k: float(v.compute()) for k, v in objective.metrics["val"].items()}
    assert (scores["acc"], scores["span_acc"]) == (pytest.approx(4 / 6), pytest.approx(1 / 3))


def test_sft_rows_mask_the_prompt_and_keep_the_target_and_end_token(tmp_path, monkeypatch):
    from datasets import Dataset

    from transferlab.models.tokenizer import _train_byte_bpe
    from transferlab.objectives.sft import SFT

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    tok = _train_byte_bpe(
        iter([["red green blue", "blue green red"] * 50]), vocab_size=300, min_frequency=1, lowercase=True
    )
    tok.pad_token = tok.eos_token
    cfg = OmegaConf.create(
        {"name": "sft", "separator": " =>", "max_target_len": 16, "generation": {"max_new_tokens": 4}}
    )
    sft = SFT(cfg, OmegaConf.create({"max_seq_len": 32, "num_proc": None}), tok, None)
    rows = sft.prepare("train", Dataset.from_dict({"source": ["red green"], "target": ["green red"]}))
    item = rows[0]
    prompt = tok("red green =>", add_special_tokens=False)["input_ids"]
    target = tok("green red", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert list(item["input_ids"]) == prompt + target and item["prompt_len"] == len(prompt)
    assert list(item["labels"]) == [-100] * len(prompt) + target  # the loss reads the target and its end only


def test_scores_match_hand_computed_values():
    # ROUGE-L: the longest common subsequence is 5 words; P = 5/5, R = 5/6, F = 2PR / (P + R) = 10/11
    scores = text_scores(["the cat sat on mat", "a  dog\tbarks "], ["the cat sat on the mat", "a dog barks"])
    assert scores["rougeL"] == pytest.approx((10 / 11 + 1.0) / 2, abs=1e-4)
    assert scores["exact_match"] == 0.5  # whitespace is normalised: the second is exact
    same = text_scores(["the quick brown fox jumps"], ["the quick brown fox jumps"])
    assert same == {
        "bleu": pytest.approx(1.0),
        "chrf": pytest.approx(1.0),
        "rouge1": pytest.approx(1.0),
        "rouge2": pytest.approx(1.0),
        "rougeL": pytest.approx(1.0),
        "rougeLsum": pytest.approx(1.0),
        "exact_match": 1.0,
        "distinct_1": 1.0,
        "distinct_2": 1.0,
        "repeat_rate": 0.0,
    }
    # BLEU by hand: "the cat sat on mat" against "the cat sat on the mat": 1-4-gram precisions 5/5, 3/4, 2/3, 1/2,
    # brevity penalty exp(1 - 6/5)
    import math

    bleu = text_scores(["the cat sat on mat"], ["the cat sat on the mat"])["bleu"]
    assert bleu == pytest.approx(math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25, abs=1e-4)


def test_generation_is_reproducible_under_a_seed():
    from transformers import GPT2Config, GPT2LMHeadModel

    from transferlab.objectives.generation import GenerationConfig, generate

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=64)).eval()
    cfg = OmegaConf.structured(GenerationConfig(max_new_tokens=12, do_sample=True, temperature=1.5))
    ids = torch.tensor([[1, 2, 3]])
    before = torch.get_rng_state()
    a, b, c = (generate(model, ids, torch.ones_like(ids), cfg, seed) for seed in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), before)  # the run's own random state is untouched


def test_a_streamer_sees_each_new_token_as_it_comes():
    """transferlab-generate on a terminal streams: the streamer gets the prompt, then every new token, then the end."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.generation.streamers import BaseStreamer

    from transferlab.objectives.generation import GenerationConfig, generate

    class Recorder(BaseStreamer):
        def __init__(self):
            self.seen = []

        def put(self, value):
            self.seen.append(value.tolist())

        def end(self):
            self.seen.append("end")

    model = GPT2LMHeadModel(
        GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=64, eos_token_id=None)
    ).eval()
    ids, recorder = torch.tensor([[1, 2, 3]]), Recorder()
    out = generate(
        model, ids, torch.ones_like(ids), OmegaConf.structured(GenerationConfig(max_new_tokens=4)), 0, recorder
    )
    assert recorder.seen[0] == [[1, 2, 3]] and recorder.seen[-1] == "end"
    assert [t for step in recorder.seen[1:-1] for t in step] == out[0, 3:].tolist()


NAMES = dict(zip(WORDS, "one two three four five six seven eight".split()))


def _pairs(path, n: int, seed: int) -> str:
    """A colour amid filler words -> its number name: learned in a few hundred steps by a tiny model."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        colour = rng.choice(WORDS)
        words = rng.sample(["the", "door", "is", "now", "painted"], 3) + [colour]
        rng.shuffle(words)
        rows.append({"source": " ".join(words), "target": NAMES[colour]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _generate(export, prompts: list) -> list:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "transferlab.cli.generate",
            str(export),
            *sum((["--prompt", p] for p in prompts), []),
            "--max-new-tokens",
            "16",
            "--jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line)["generation"] for line in out.stdout.splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("model, objective", [("tiny_t5", "seq2seq"), ("tiny_gpt2", "sft")])
def test_a_tiny_text_to_text_run_learns_and_its_export_generates_the_same_text_everywhere(tmp_path, model, objective):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

    train, test = _pairs(tmp_path / "train.jsonl", 600, 0), _pairs(tmp_path / "test.jsonl", 24, 1)
    run = tmp_path / "run"
    out = subprocess.run(
        [
            *CLI,
            f"model={model}",
            f"objective={objective}",
            "data=files",
            f"data.train={train}",
            f"data.test={test}",
            "data.max_seq_len=32",
            "tokenizer=train",
            "tokenizer.vocab_size=300",
            "trainer.max_epochs=8",
            "optimizer.lr=3e-3",
            "objective.generation.max_new_tokens=16",
            "logger=none",
            "callbacks.progress_bar=false",
            f"hydra.run.dir={run}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    scores = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum", "exact_match", "distinct_1", "distinct_2")
    assert {f"test/{k}" for k in (*scores, "repeat_rate", "loss", "acc")} <= set(metrics)
    assert metrics["test/exact_match"] > 0.5  # learned (chance: 1/8)
    rows = [json.loads(line) for line in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert metrics["test/exact_match"] == pytest.approx(
        sum(r["prediction"] == r["reference"] for r in rows) / len(rows)
    )

    prompts = [r["source"] for r in rows[:6]]
    assert _generate(run / "export", prompts) == [r["prediction"] for r in rows[:6]]  # the CLI, greedy, from the export
    # transferlab-predict on the test file, from the export alone (sft: prompted through the export's chat template)
    out = subprocess.run(
        [sys.executable, "-m", "transferlab.cli.predict", str(run / "export"), test, "--max-new-tokens", "16"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    predicted = [json.loads(line) for line in out.stdout.splitlines()]
    assert [p["source"] for p in predicted] == [r["source"] for r in rows]
    assert [p["pred_generation"] for p in predicted] == [r["prediction"] for r in rows]
    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    if (
        objective == "seq2seq"
    ):  # transformers 5 has no text2text-generation pipeline: its generate, as the pipeline called it
        hf = AutoModelForSeq2SeqLM.from_pretrained(run / "export").eval()
        for prompt, row in zip(prompts, rows):
            ids = tokenizer(prompt, return_tensors="pt")
            text = tokenizer.decode(hf.generate(**ids, max_new_tokens=16)[0], skip_special_tokens=True).strip()
            assert text == row["prediction"]
    else:  # the export carries its prompt template: a chat pipeline prompts it as training did
        chat = pipeline(
            "text-generation", model=AutoModelForCausalLM.from_pretrained(run / "export"), tokenizer=tokenizer
        )
        for prompt, row in zip(prompts, rows):
            answer = chat([{"role": "user", "content": prompt}], max_new_tokens=16, do_sample=False)[0][
                "generated_text"
            ][-1]["content"]
            assert answer.strip() == row["prediction"]
