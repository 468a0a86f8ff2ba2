"""Supervised fine-tuning of a decoder-only model (GPT-2 family) on source -> target, as chat models are tuned.

A row is the prompt then the target then the end token: the prompt is the source in the tokenizer's chat template;
a tokenizer without one (GPT-2's) gets the source followed by objective.separator as its template, which the export
keeps, so that transferlab-generate and transformers' pipelines prompt the model as it was trained. The loss is on
the target and the end token only (the prompt's labels are -100). Validation and test generate from the prompt
(left-padded in a batch) and are scored as seq2seq's are, so one task compares a T5 and a GPT-2 in one sweep. New
sources (infer) are prompted, left-padded and generated from alike; a causal LM exported without a chat template
(not an sft run's) is prompted with the source as it is, as transferlab-generate prompts it.

Chat data (data.format=messages|alpaca|sharegpt, data/chat.py) reads as source = the turns before the last assistant
turn, target = that turn: a row is the whole conversation in the chat template (GPT-2's plain one then has roles),
the loss on every assistant turn (objectives/chat.py), and evaluation generates the last reply. train_on_inputs=true
puts every token in the loss; packing=true packs conversations into training rows (objectives/packing.py).
"""

from dataclasses import dataclass, field

from transferlab.config.rules import at_least
from transferlab.data.chat import CHAT_FORMATS
from transferlab.errors import TransferlabError
from transferlab.objectives.base import IGNORE, model_inputs
from transferlab.objectives.generation import GenerationConfig
from transferlab.objectives.seq2seq import TextToText, clipped
from transferlab.objectives.smoothing import CrossEntropyConfig


@dataclass
class SFTConfig(CrossEntropyConfig):
    name: str = "sft"
    separator: str = "\n"  # between the source and the target, when the tokenizer has no chat template
    max_target_len: int = at_least(64, 2)  # target tokens, the end token included (the whole row: data.max_seq_len)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    train_on_inputs: bool = False  # true: the loss reads every token (prompts, earlier turns), not the replies only
    packing: bool = False  # true: conversations packed into training rows of data.max_seq_len, none seeing another


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
    chat = True

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from transferlab.objectives.generation import plain_template

        super().__init__(cfg, data_cfg, tokenizer, train)
        self.chat_data = data_cfg.get("format") in CHAT_FORMATS
        if not getattr(tokenizer, "chat_template", None):  # the export keeps it: generate and pipelines prompt alike
            tokenizer.chat_template = plain_template(cfg.separator, roles=self.chat_data)

    @classmethod
    def check(cls, cfg) -> None:
        """Packing masks attention by position ids, which peft's prompt and prefix tuning drop (virtual tokens)."""
        super().check(cfg)
        method = cfg.freeze.get("method") if cfg.freeze.get("name") == "peft" else None
        if cfg.objective.get("packing") and method in ("prompt_tuning", "prefix_tuning"):
            raise TransferlabError(
                f"objective.packing=true with freeze.method={method}: its virtual tokens drop the position ids that "
                "keep packed conversations apart; set objective.packing=false, or use freeze.method=lora"
            )

    @classmethod
    def reshape(cls, split, data_cfg):
        """Chat data's conversations as source (the turns before the last, an assistant's) and target (its text)."""
        if data_cfg.get("format") not in CHAT_FORMATS or "messages" not in (split.column_names or ()):
            return split
        from datasets import List, Value

        source, target = str(data_cfg.source_column), str(data_cfg.target_column)
        features = split.features.copy()
        del features["messages"]
        features[source] = List({"role": Value("string"), "content": Value("string")})
        features[target] = Value("string")

        def cut(batch):
            turns = batch["messages"]
            return {source: [t[:-1] for t in turns], target: [t[-1]["content"] for t in turns]}

        return split.map(cut, batched=True, remove_columns=["messages"], features=features, desc="conversations")

    @classmethod
    def texts(cls, split, batch_size: int = 1000):
        for i in range(0, len(split), batch_size):
            rows = split[i : i + batch_size]
            sources = (
                [m["content"] for s in rows["source"] for m in s]
                if rows["source"] and isinstance(rows["source"][0], list)
                else rows["source"]
            )
            yield sources + rows["target"]

    kept = ("prompt_len",)  # predict generates from each row's prompt
    labels_layout = "aligned"  # the targets are the input tokens, prompts masked

    def prepare(self, split: str, dataset):
        limit, template = self.data_cfg.max_seq_len, self.tokenizer.chat_template
        encode = self._chat_encoder(split) if self.chat_data else self._encoder()
        settings = {"limit": limit, "target_len": self.cfg.max_target_len, "template": template, "chat": self.chat_data}
        settings["train_on_inputs"] = self.cfg.get("train_on_inputs", False)
        columns = ["prompt_len", "source_cut", "target_cut"]
        rows = self._prepared(split, dataset, encode, settings, columns, aligned=("labels",))
        if split == "train" and self.cfg.get("packing", False):
            from transferlab.objectives.packing import PackedRows

            return PackedRows(rows, limit)
        return rows

    def _chat_encoder(self, split: str):
        from transferlab.objectives.chat import TemplateProblem, conversation, encoded, template_error

        tokenizer, limit, target_len = self.tokenizer, self.data_cfg.max_seq_len, self.cfg.max_target_len
        everything, data_cfg = self.cfg.get("train_on_inputs", False), self.data_cfg

        def encode(batch):
            out = {"input_ids": [], "labels": [], "prompt_len": [], "source_cut": [], "target_cut": []}
            for source, target in zip(batch["source"], batch["target"]):
                messages = conversation(source, target)
                try:
                    row = encoded(tokenizer, messages, limit, target_len, everything)
                except TemplateProblem as e:
                    raise template_error(str(e), data_cfg, split, messages) from None
                for key in out:
                    out[key].append(row[key])
            return out

        return encode

    def _encoder(self):
        tokenizer, limit, target_len = self.tokenizer, self.data_cfg.max_seq_len, self.cfg.max_target_len
        eos, everything = tokenizer.eos_token_id, self.cfg.get("train_on_inputs", False)

        def encode(batch):
            out = {"input_ids": [], "labels": [], "prompt_len": [], "source_cut": [], "target_cut": []}
            targets = tokenizer(batch["target"], add_special_tokens=False, verbose=False)["input_ids"]
            for source, target in zip(batch["source"], targets):
                target, target_cut = clipped(target + [eos], target_len)
                ids, source_cut = prompt(tokenizer, source, limit - len(target))
                values = (
                    ids + target,
                    (ids if everything else [IGNORE] * len(ids)) + target,
                    len(ids),
                    int(source_cut),
                    int(target_cut),
                )
                for key, value in zip(out, values):
                    out[key].append(value)
            return out

        return encode

    def collator(self, stage: str):
        if stage == "train" and self.cfg.get("packing", False):
            from transferlab.objectives.packing import PackedCollator

            return PackedCollator(self.tokenizer.pad_token_id)
        return super().collator(stage)

    def step(self, model, batch, stage: str):
        from torch.nn.functional import pad

        if "position_ids" in batch:  # packed: no mask and no cache, so that the model masks by the position_ids
            inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
        else:
            inputs = model_inputs(batch)
        logits = model(**inputs).logits
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
            ids, mask = left_padded([_prompt(tokenizer, r["source"], room) for r in batch], pad, device)
            generated = generate(model, ids, mask, generation, first)[:, ids.size(1) :]
            return [{"pred_generation": text} for text in decoded(tokenizer, generated)]

        return by_length(rows, lambda r: _length(r["source"]), run, options)


def _length(source) -> int:
    """A source's characters: a text's, or a conversation's turns' together (batches go by length)."""
    return sum(len(turn["content"]) for turn in source) if isinstance(source, list) else len(source)


def _prompt(tokenizer, source, room: int) -> list:
    """A text source's prompt, or a conversation's (a list of turns, from chat input: rendered and tokenized as
    training and transferlab-generate --chat do), its last `room` tokens kept."""
    if isinstance(source, list):
        from transferlab.objectives.chat import TemplateProblem, prompt_ids

        try:
            ids = prompt_ids(tokenizer, source)
        except TemplateProblem as e:
            raise TransferlabError(f"{e}; check the export's chat_template against these conversations") from None
        return ids[len(ids) - room :] if len(ids) > room else ids
    return prompt(tokenizer, source, room)[0]
