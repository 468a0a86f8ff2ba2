"""Supervised text-to-text on an encoder-decoder (T5, BART): source -> target.

Rows hold the source's ids and the target's (a sequence of its own length, data/prepared.py); batches pad both,
bucketed by their summed length, the target with -100. Training is teacher-forced cross-entropy on the target, which
stays the validation loss that picks checkpoints. Validation and test also generate (objective.generation) and score
the generated text against the reference (objectives/generation.py); test answers go to <run>/predictions/test.jsonl.
A source or target longer than its limit is truncated (its end token kept) and counted as data/<split>_*_truncated.
New sources (infer) are encoded, batched and generated from as the test split's are (objective.generation).
"""

from dataclasses import dataclass, field

from transferlab.config.rules import at_least
from transferlab.objectives.base import IGNORE, SPLIT_OF_STAGE, Objective, model_inputs
from transferlab.objectives.generation import GenerationConfig
from transferlab.objectives.smoothing import CrossEntropyConfig


@dataclass
class Seq2SeqConfig(CrossEntropyConfig):
    name: str = "seq2seq"
    source_prefix: str = ""  # put before every source (T5 style, e.g. "translate English to Spanish: ")
    max_target_len: int = at_least(64, 2)  # target tokens, its end token included (sources: data.max_seq_len)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


def clipped(ids: list, limit: int) -> tuple[list, bool]:
    """ids cut to `limit` tokens keeping the last one (the end token), and whether anything was cut."""
    return (ids, False) if len(ids) <= limit else (ids[: limit - 1] + ids[-1:], True)


def encode_sources(tokenizer, prefix: str, sources: list, limit: int) -> list:
    """(ids, cut) of each source, the prefix before it, cut to `limit` tokens."""
    return [clipped(ids, limit) for ids in tokenizer([prefix + s for s in sources], verbose=False)["input_ids"]]


def _around(target: str, got: str, width: int = 40) -> str:
    """'target' decodes as 'got', cut to `width` characters around where they first differ."""
    first = next((i for i, (a, b) in enumerate(zip(target, got)) if a != b), min(len(target), len(got)))
    start = max(0, first - width // 2)

    def cut(text: str) -> str:
        return ("..." if start else "") + text[start : start + width] + ("..." if len(text) > start + width else "")

    return f"{cut(target)!r} decodes as {cut(got)!r}"


class TextToText(Objective):
    """What seq2seq and sft share: the data (source, target), tokenizer texts, the raw splits whose references the
    evaluation reads, and the scoring and written rows of generated text. Subclasses encode, step and generate."""

    fields = {"source": "source_column", "target": "target_column"}
    columns = {"source_column": "source", "target_column": "target"}
    outputs = ("pred_generation",)

    @classmethod
    def texts(cls, split, batch_size: int = 1000):
        for i in range(0, len(split), batch_size):
            rows = split[i : i + batch_size]
            yield rows["source"] + rows["target"]

    SAMPLED_TARGETS = 1000  # targets a tokenizer is checked on, spread over the train split

    @classmethod
    def tokenizer_problem(cls, tokenizer, train) -> str | None:
        """A prediction is the decoded generation, scored against the target as written: a tokenizer that lowercases,
        normalises or reads a character as unknown gets every such target wrong whatever the model learns. Whitespace
        compares as the decoded text has it (runs collapsed, ends stripped); nothing else is forgiven."""
        rows = train.select(range(0, len(train), max(1, len(train) // cls.SAMPLED_TARGETS)))
        targets = list(rows["target"])
        decoded = tokenizer.batch_decode(
            tokenizer(targets, add_special_tokens=False, verbose=False)["input_ids"], skip_special_tokens=True
        )
        wrong = [(t, d) for t, d in zip(targets, decoded) if " ".join(t.split()) != " ".join(d.split())]
        if not wrong:
            return None
        target, got = (" ".join(text.split()) for text in wrong[0])
        return (
            f"cannot encode the targets exactly: {_around(target, got)} ({len(wrong)} of {len(targets)} "
            "sampled train targets differ)"
        )

    @classmethod
    def check(cls, cfg) -> None:
        """The decoding options agree (objective/generation.py), and generation fits the model's positions: the new
        tokens (after the prompt, for a decoder)."""
        from transferlab.errors import TransferlabError
        from transferlab.models.architectures import config_fields, max_positions
        from transferlab.objectives.generation import check

        super().check(cfg)
        check(cfg.objective.generation)
        limit = max_positions(config_fields(cfg.model))
        new = cfg.objective.generation.max_new_tokens
        prompt = cfg.data.max_seq_len if cls.model_kinds == ("decoder",) else 0
        if limit and new + prompt > limit:
            with_prompt = f" after a prompt of up to data.max_seq_len={prompt} tokens" if prompt else ""
            raise TransferlabError(
                f"objective.generation.max_new_tokens={new}{with_prompt} exceeds the model's {limit} positions; "
                "lower objective.generation.max_new_tokens" + (" or data.max_seq_len" if prompt else "")
            )

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from torch import nn

        from transferlab.objectives.metrics import FiniteMean, per_stage

        super().__init__(cfg, data_cfg, tokenizer, train)
        self.raw = {}
        self.metrics = per_stage(lambda: nn.ModuleDict({"acc": FiniteMean()}))  # teacher-forced target token accuracy
        self.vocab = len(tokenizer)  # logit columns from here on are no tokens (model.vocab_multiple's padding)

    def _remember(self, split: str, dataset, rows) -> None:
        """The raw split (its references are scored) and how many sources and targets were cut."""
        self.raw[split] = dataset
        for part in ("source", "target"):
            self.stats[f"{split}_{part}s_truncated"] = int(rows.columns[f"{part}_cut"].sum())

    def _prepared(self, split: str, dataset, encode, settings: dict, columns: list, **layout):
        """Rows.prepare keyed by the objective and its settings, the raw split remembered."""
        from transferlab.data.prepared import Rows

        settings = {"objective": self.name, "v": 1, **settings}
        rows = Rows.prepare(dataset, encode, self.tokenizer, settings, columns, self.data_cfg.num_proc, **layout)
        self._remember(split, dataset, rows)
        return rows

    def collator(self, stage: str):
        from transferlab.objectives.collate import PadCollator

        labels = {self.labels_layout: {"labels": IGNORE}}  # labels padded with IGNORE, as a sequence or token-aligned
        return PadCollator(self.tokenizer.pad_token_id, columns=self.kept, keep_ids=stage != "train", **labels)

    def _token_loss(self, logits, labels, stage: str):
        from transferlab.objectives.lm_loss import masked_padding
        from transferlab.objectives.metrics import top1
        from transferlab.objectives.smoothing import smoothed_cross_entropy, smoothing, vocabulary_columns

        logits = masked_padding(logits.float(), self.vocab)
        e, columns = smoothing(self.cfg, stage), vocabulary_columns(logits, self.vocab)
        loss = smoothed_cross_entropy(logits.flatten(0, 1), labels.flatten(), e, columns)[0]
        scored = labels != IGNORE
        self.metrics[stage]["acc"].update((top1(logits) == labels).float()[scored])
        return loss

    @staticmethod
    def seed(batch) -> int:
        """Sampling's seed for a batch: the same answers in every run and process."""
        return int(batch["ids"][0])

    def _records(self, batch, texts: list) -> list:
        return [{"id": i, "prediction": t} for i, t in zip(batch["ids"], texts)]

    def _pairs(self, stage: str, predictions: list) -> list:
        raw = self.raw[SPLIT_OF_STAGE[stage]]
        predictions = sorted(predictions, key=lambda r: r["id"])
        rows = raw.select([r["id"] for r in predictions])
        return [(r, row) for r, row in zip(predictions, rows)]

    def evaluate(self, stage: str, predictions: list) -> dict:
        from transferlab.objectives.text_scores import text_scores

        pairs = self._pairs(stage, predictions)
        return text_scores([r["prediction"] for r, _ in pairs], [row["target"] for _, row in pairs])

    def written(self, stage: str, predictions: list) -> list:
        return [
            {"example": r["id"], "source": row["source"], "reference": row["target"], "prediction": r["prediction"]}
            for r, row in self._pairs(stage, predictions)
        ]


class Seq2Seq(TextToText):
    name = "seq2seq"
    Config = Seq2SeqConfig
    model_kinds = ("encoder-decoder",)
    auto_class = "AutoModelForSeq2SeqLM"
    pipeline_tag = "text2text-generation"

    kept = ()  # the per-row columns a batch keeps
    labels_layout = "sequences"  # the targets are sequences of their own length
    # Random training batches: length-grouped ones cost 0.02-0.06 greedy exact match, in transferlab and in
    # Seq2SeqTrainer alike (bench/seq2seq_quality.py, docs/benchmarks.md); data.bucket_by_length=true trades that
    # for 1.44x tokens/s. Evaluation stays sorted (same scores, faster generation).
    bucket_train = False

    def prepare(self, split: str, dataset):
        tokenizer, prefix, source_len, target_len = (
            self.tokenizer,
            self.cfg.source_prefix,
            self.data_cfg.max_seq_len,
            self.cfg.max_target_len,
        )

        def encode(batch):
            out = {"input_ids": [], "labels": [], "source_cut": [], "target_cut": []}
            sources = encode_sources(tokenizer, prefix, batch["source"], source_len)
            targets = tokenizer(batch["target"], verbose=False)["input_ids"]
            for (source, source_cut), target in zip(sources, targets):
                target, target_cut = clipped(target, target_len)
                for key, value in zip(out, (source, target, int(source_cut), int(target_cut))):
                    out[key].append(value)
            return out

        settings = {"prefix": prefix, "source_len": source_len, "target_len": target_len}
        return self._prepared(split, dataset, encode, settings, ["source_cut", "target_cut"], sequences=("labels",))

    def step(self, model, batch, stage: str):
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
        logits = model(**model_inputs(batch), decoder_input_ids=decoder_input_ids).logits
        return self._token_loss(logits, batch["labels"], stage)

    def predict(self, model, batch) -> list:
        from transferlab.objectives.generation import decoded, generate

        generated = generate(model, batch["input_ids"], batch["attention_mask"], self.cfg.generation, self.seed(batch))
        return self._records(batch, decoded(self.tokenizer, generated))

    @classmethod
    def infer(cls, cfg, model, tokenizer, rows: list, options) -> list:
        """pred_generation: the text generated from each source (the run's source_prefix before it)."""
        from transferlab.objectives.collate import PadCollator, by_length, on_device
        from transferlab.objectives.generation import decoded, generate

        collate = PadCollator(tokenizer.pad_token_id, columns=())
        generation = cfg.generation

        def run(batch: list, first: int) -> list:
            sources = encode_sources(tokenizer, cfg.source_prefix, [r["source"] for r in batch], options.max_seq_len)
            inputs = on_device(collate([{"input_ids": ids} for ids, _ in sources]), model)
            generated = generate(model, inputs["input_ids"], inputs["attention_mask"], generation, first)
            return [{"pred_generation": text} for text in decoded(tokenizer, generated)]

        return by_length(rows, lambda r: len(r["source"]), run, options)
