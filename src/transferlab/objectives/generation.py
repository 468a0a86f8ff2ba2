"""What the text-to-text objectives (seq2seq, sft), transferlab-generate and transferlab-predict share: decoding
options and their rules, and seeded generation. The scores of generated text are objectives/text_scores.py's.

An option left at its default is not passed to model.generate: the model's generation config (transformers'
defaults, e.g. top_k 50 when sampling) decides it. An option the chosen decoding would ignore (top_k without
sampling, length_penalty without beams) is refused, not dropped.
"""

import dataclasses
from dataclasses import dataclass

from transferlab.config.rules import at_least, check_value, ranged
from transferlab.errors import TransferlabError


@dataclass
class GenerationConfig:
    max_new_tokens: int = at_least(32)
    min_new_tokens: int = at_least(0, 0, hint="the end token is held back until this many new tokens")
    num_beams: int = at_least(1, hint="1 is greedy (or sampling with do_sample=true)")
    do_sample: bool = False
    temperature: float = ranged(1.0, gt=0.0)
    top_p: float = ranged(1.0, gt=0.0, le=1.0)
    top_k: int | None = at_least(None, hint="sampling draws from the k most likely tokens; unset: the model's (50)")
    repetition_penalty: float = ranged(1.0, gt=0.0, hint="1 is none; above 1 makes a token already in the text rarer")
    no_repeat_ngram_size: int = at_least(0, 0, hint="0 is off; n forbids any n-gram to occur twice")
    length_penalty: float = 1.0  # beam search: score / length**length_penalty; above 0 favours longer texts
    early_stopping: bool = False  # beam search: stop once num_beams texts are complete


ALWAYS = ("max_new_tokens", "num_beams", "do_sample")  # passed whatever their value: they choose the decoding
DEFAULTS = GenerationConfig()
NEEDS = {  # option -> (what it applies to, whether cfg has that, the setting that gives it)
    **{
        k: ("only when sampling", lambda c: c.do_sample, ("do_sample", True)) for k in ("temperature", "top_p", "top_k")
    },
    **{
        k: ("only to beam search", lambda c: c.num_beams > 1, ("num_beams", "above 1"))
        for k in ("length_penalty", "early_stopping")
    },
}


def changed(cfg) -> dict:
    """The options of cfg (a GenerationConfig node) that differ from their defaults, in the schema's order."""
    out = {}
    for f in dataclasses.fields(GenerationConfig):
        value = cfg.get(f.name, getattr(DEFAULTS, f.name))
        if f.name not in ALWAYS and value != getattr(DEFAULTS, f.name):
            out[f.name] = value
    return out


def options(cfg) -> dict:
    """model.generate keyword arguments: the decoding's choice, then only the options set away from their default."""
    return {**{k: cfg[k] for k in ALWAYS}, **changed(cfg)}


def name(key: str, cli: bool) -> str:
    return "--" + key.replace("_", "-") if cli else f"objective.generation.{key}"


def setting(key: str, value, cli: bool) -> str:
    """A setting as the user writes it: `--do-sample`, `--top-k=5`; `objective.generation.do_sample=true`."""
    if isinstance(value, bool) and cli:
        return name(key, cli) if value else "--no-" + key.replace("_", "-")
    return f"{name(key, cli)}={str(value).lower() if isinstance(value, bool) else value}"


def check(cfg, cli: bool = False) -> None:
    """Ranges, then the rules between options; one line naming them as a CLI flag (cli) or a config key."""
    for f in dataclasses.fields(GenerationConfig):
        if "range" in f.metadata:
            check_value(name(f.name, cli), cfg[f.name], f.metadata["range"])
    for key, value in changed(cfg).items():
        if key in NEEDS and not NEEDS[key][1](cfg):
            what, _, (needed, to) = NEEDS[key]
            add = f"add {setting(needed, to, cli)}" if isinstance(to, bool) else f"set {name(needed, cli)} {to}"
            raise TransferlabError(f"{setting(key, value, cli)} applies {what}; {add}, or drop {name(key, cli)}")
    if cfg.min_new_tokens > cfg.max_new_tokens:
        raise TransferlabError(
            f"{setting('min_new_tokens', cfg.min_new_tokens, cli)} exceeds "
            f"{setting('max_new_tokens', cfg.max_new_tokens, cli)}; lower {name('min_new_tokens', cli)}, or raise "
            f"{name('max_new_tokens', cli)}"
        )


def add_flags(parser, keep_the_runs: bool = False, skip: tuple = ()) -> None:
    """A command-line flag per option (--top-k, --do-sample, ...), by default the option's default; keep_the_runs:
    none, so that a flag not given keeps what the run generated with (a switch then has its --no- form too)."""
    import argparse

    for f in dataclasses.fields(GenerationConfig):
        if f.name in skip:
            continue
        flag, default = "--" + f.name.replace("_", "-"), None if keep_the_runs else getattr(DEFAULTS, f.name)
        if f.type is bool:
            switch = argparse.BooleanOptionalAction if keep_the_runs else "store_true"
            parser.add_argument(flag, action=switch, default=default)
        else:
            parser.add_argument(flag, type=float if f.type is float else int, default=default)


def given(args) -> dict:
    """The options given on the command line (add_flags' flags), by their config keys."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(GenerationConfig)
        if getattr(args, f.name, None) is not None
    }


def generate(model, input_ids, attention_mask, cfg, seed: int, streamer=None):
    """model.generate under a fixed seed (sampling is reproducible) in a forked RNG: the training run's random
    state (dropout, masks) is the same whether or not it generated. A streamer gets the tokens as they come."""
    import torch

    devices = [input_ids.device] if input_ids.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, streamer=streamer, **options(cfg))


def overridden(cfg, flags: dict):
    """cfg (a run's options) with the options given on a command line in its place, checked under their flags."""
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(cfg, flags)
    check(merged, cli=True)
    return merged


def decoded(tokenizer, generated) -> list:
    """Generated ids as the texts predictions hold: special tokens dropped, the ends stripped."""
    return [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]


def plain_template(separator: str, roles: bool = False) -> str:
    """A chat template for a model without one (GPT-2): each turn's text then the separator, a reply's text then the
    end token; with `roles`, each turn starts with its role ("user: ") and the generation prompt is "assistant: ".
    Without roles a single user turn renders as its text then the separator, as sft's source -> target rows are."""
    import json

    sep = json.dumps(separator)
    prefix = '{{ message["role"] + ": " }}' if roles else ""
    prompt = '{% if add_generation_prompt %}{{ "assistant: " }}{% endif %}' if roles else ""
    return (
        '{% for message in messages %}{% if message["role"] == "assistant" %}'
        + prefix
        + '{{ message["content"] }}{{ eos_token }}{% else %}'
        + prefix
        + '{{ message["content"] }}{{ '
        + sep
        + " }}{% endif %}{% endfor %}"
        + prompt
    )


def chat_prompt(tokenizer, text: str) -> list:
    """The ids of `text` as the user's turn in the tokenizer's chat template, ready for the answer."""
    out = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)
