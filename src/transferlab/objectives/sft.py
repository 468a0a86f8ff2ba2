"""Supervised fine-tuning of a decoder-only model (GPT-2 family) on source -> target, as chat models are tuned.

A row is the prompt then the target then the end token: the prompt is the source in the tokenizer's chat template;
a tokenizer without one (GPT-2's) gets the source followed by objective.separator as its template, which the export
keeps, so that transferlab-generate and transformers' pipelines prompt the model as it was trained. The loss is on
the target and the end token only (the prompt's labels are -100). Validation and test generate from the prompt
(left-padded in a batch) and are scored as seq2seq's are, so one task compares a T5 and a GPT-2 in one sweep.
"""

from dataclasses import dataclass, field

from transferlab.config.rules import at_least
from transferlab.objectives.base import IGNORE
from transferlab.objectives.generation import GenerationConfig
from transferlab.objectives.seq2seq import TextToText, clipped


@dataclass
class SFTConfig:
    name: str = "sft"
    separator: str = "\n"  # between the source and the target, when the tokenizer has no chat template
    max_target_len: int = at_least(64, 2)  # target tokens, the end token included (the whole row: data.max_seq_len)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


class SFT(TextToText):
    name = "sft"
    Config = SFTConfig
    model_kinds = ("decoder",)
    auto_class = "AutoModelForCausalLM"
    pipeline_tag = "text-generation"

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from transferlab.objectives.generation import plain_template

        super().__init__(cfg, data_cfg, tokenizer, train)
        if not getattr(tokenizer, "chat_template", None):  # the export keeps it: generate and pipelines prompt alike
            tokenizer.chat_template = plain_template(cfg.separator)

    def prepare(self, split: str, dataset):
        from transferlab.data.prepared import Rows
        from transferlab.objectives.generation import chat_prompt

        tokenizer, limit, target_len = self.tokenizer, self.data_cfg.max_seq_len, self.cfg.max_target_len
        eos = tokenizer.eos_token_id

        def encode(batch):
            out = {"input_ids": [], "labels": [], "prompt_len": [], "source_cut": [], "target_cut": []}
            targets = tokenizer(batch["target"], add_special_tokens=False, verbose=False)["input_ids"]
            for source, target in zip(batch["source"], targets):
                target, target_cut = clipped(target + [eos], target_len)
                prompt = chat_prompt(tokenizer, source)
                room = limit - len(target)
                source_cut = len(prompt) > room
                prompt = prompt[len(prompt) - room :] if source_cut else prompt  # keep the prompt's end (its separator)
                values = (
                    prompt + target,
                    [IGNORE] * len(prompt) + target,
                    len(prompt),
                    int(source_cut),
                    int(target_cut),
                )
                for key, value in zip(out, values):
                    out[key].append(value)
            return out

        settings = {
            "objective": self.name,
            "limit": limit,
            "target_len": target_len,
            "template": tokenizer.chat_template,
            "v": 1,
        }
        rows = Rows.prepare(
            dataset,
            encode,
            tokenizer,
            settings,
            ["prompt_len", "source_cut", "target_cut"],
            self.data_cfg.num_proc,
            aligned=("labels",),
        )
        self._remember(split, dataset, rows)
        return rows

    def collator(self, stage: str):
        from transferlab.objectives.collate import PadCollator

        return PadCollator(
            self.tokenizer.pad_token_id, columns=("prompt_len",), keep_ids=stage != "train", aligned={"labels": IGNORE}
        )

    def step(self, model, batch, stage: str):
        from torch.nn.functional import pad

        logits = model(**self.model_inputs(batch)).logits
        targets = pad(batch["labels"][:, 1:], (0, 1), value=IGNORE)  # position t predicts token t + 1
        return self._token_loss(logits, targets, stage)

    def predict(self, model, batch) -> list:
        """Generate from each row's prompt, the prompts left-padded so that every row continues at the same column."""
        import torch

        from transferlab.objectives.generation import generate

        lengths = batch["prompt_len"].tolist()
        width = max(lengths)
        ids = torch.full(
            (len(lengths), width), self.tokenizer.pad_token_id, dtype=torch.long, device=batch["input_ids"].device
        )
        mask = torch.zeros_like(ids)
        for i, n in enumerate(lengths):
            ids[i, width - n :] = batch["input_ids"][i, :n]
            mask[i, width - n :] = 1
        generated = generate(model, ids, mask, self.cfg.generation, self.seed(batch))[:, width:]
        return self._records(batch, self.tokenizer.batch_decode(generated, skip_special_tokens=True))
