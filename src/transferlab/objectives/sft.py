"""Supervised fine-tuning of a decoder-only model (GPT-2 family) on source -> target, as chat models are tuned.

A row is the prompt then the target then the end token: the prompt is the source in the tokenizer's chat template;
a tokenizer without one (GPT-2's) gets the source followed by objective.separator as its template, which the export
keeps, so that transferlab-generate and transformers' pipelines prompt the model as it was trained. The loss is on
the target and the end token only (the prompt's labels are -100). Validation and test generate from the prompt
(left-padded in a batch) and are scored as seq2seq's are, so one task compares a T5 and a GPT-2 in one sweep. New
sources (infer) are prompted, left-padded and generated from alike; a causal LM exported without a chat template
(not an sft run's) is prompted with the source as it is, as transferlab-generate prompts it.
"""

from dataclasses import dataclass, field

from transferlab.config.rules import at_least
from transferlab.errors import TransferlabError
from transferlab.objectives.base import IGNORE, model_inputs
from transferlab.objectives.generation import GenerationConfig
from transferlab.objectives.seq2seq import TextToText, clipped


@dataclass
class SFTConfig:
    name: str = "sft"
    separator: str = "\n"  # between the source and the target, when the tokenizer has no chat template
    max_target_len: int = at_least(64, 2)  # target tokens, the end token included (the whole row: data.max_seq_len)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


def prompt(tokenizer, source: str, room: int) -> tuple[list, bool]:
    """(ids, cut): the source in the tokenizer's chat template (as it is without one), its last `room` tokens kept
    (the end: the separator the answer follows)."""
    from transferlab.objectives.generation import chat_prompt

    ids = (
        chat_prompt(tokenizer, source)
        if getattr(tokenizer, "chat_template", None)
        else tokenizer(source, add_special_tokens=False)["input_ids"]
    )
    return (ids[len(ids) - room :], True) if len(ids) > room else (ids, False)


def left_padded(prompts: list, pad: int, device):
    """(ids, mask) of prompts left-padded to the longest, so that every row continues at the same column."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.as_tensor(p, device=device)
        mask[i, width - len(p) :] = 1
    return ids, mask


class SFT(TextToText):
    name = "sft"
    Config = SFTConfig
    model_kinds = ("decoder",)
    auto_class = "AutoModelForCausalLM"
    pipeline_tag = "text-generation"
    outputs = ("pred_generation",)

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from transferlab.objectives.generation import plain_template

        super().__init__(cfg, data_cfg, tokenizer, train)
        if not getattr(tokenizer, "chat_template", None):  # the export keeps it: generate and pipelines prompt alike
            tokenizer.chat_template = plain_template(cfg.separator)

    kept = ("prompt_len",)  # predict generates from each row's prompt
    labels_layout = "aligned"  # the targets are the input tokens, prompts masked

    def prepare(self, split: str, dataset):
        tokenizer, limit, target_len = self.tokenizer, self.data_cfg.max_seq_len, self.cfg.max_target_len
        eos = tokenizer.eos_token_id

        def encode(batch):
            out = {"input_ids": [], "labels": [], "prompt_len": [], "source_cut": [], "target_cut": []}
            targets = tokenizer(batch["target"], add_special_tokens=False, verbose=False)["input_ids"]
            for source, target in zip(batch["source"], targets):
                target, target_cut = clipped(target + [eos], target_len)
                ids, source_cut = prompt(tokenizer, source, limit - len(target))
                values = (
                    ids + target,
                    [IGNORE] * len(ids) + target,
                    len(ids),
                    int(source_cut),
                    int(target_cut),
                )
                for key, value in zip(out, values):
                    out[key].append(value)
            return out

        settings = {"limit": limit, "target_len": target_len, "template": tokenizer.chat_template}
        columns = ["prompt_len", "source_cut", "target_cut"]
        return self._prepared(split, dataset, encode, settings, columns, aligned=("labels",))

    def step(self, model, batch, stage: str):
        from torch.nn.functional import pad

        logits = model(**model_inputs(batch)).logits
        targets = pad(batch["labels"][:, 1:], (0, 1), value=IGNORE)  # position t predicts token t + 1
        return self._token_loss(logits, targets, stage)

    def predict(self, model, batch) -> list:
        """Generate from each row's prompt, the prompts left-padded so that every row continues at the same column."""
        from transferlab.objectives.generation import decoded, generate

        prompts = [row[:n] for row, n in zip(batch["input_ids"], batch["prompt_len"].tolist())]
        ids, mask = left_padded(prompts, self.tokenizer.pad_token_id, batch["input_ids"].device)
        generated = generate(model, ids, mask, self.cfg.generation, self.seed(batch))[:, ids.size(1) :]
        return self._records(batch, decoded(self.tokenizer, generated))

    @classmethod
    def infer(cls, cfg, model, tokenizer, rows: list, options) -> list:
        """pred_generation: the text generated after each source's prompt."""
        from transferlab.models.architectures import max_positions
        from transferlab.objectives.collate import by_length
        from transferlab.objectives.generation import decoded, generate

        generation = cfg.generation
        limit = max_positions(model.config.to_dict())  # the prompt leaves room for the new tokens
        room = min(options.max_seq_len, limit - generation.max_new_tokens) if limit else options.max_seq_len
        if room < 1:
            raise TransferlabError(
                f"max_new_tokens={generation.max_new_tokens} leaves no room for a prompt in the model's {limit} "
                "positions; lower --max-new-tokens"
            )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        device = next(model.parameters()).device

        def run(batch: list, first: int) -> list:
            ids, mask = left_padded([prompt(tokenizer, r["source"], room)[0] for r in batch], pad, device)
            generated = generate(model, ids, mask, generation, first)[:, ids.size(1) :]
            return [{"pred_generation": text} for text in decoded(tokenizer, generated)]

        return by_length(rows, lambda r: len(r["source"]), run, options)
