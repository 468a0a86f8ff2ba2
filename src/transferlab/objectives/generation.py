"""What the text-to-text objectives (seq2seq, sft) and transferlab-generate share: generation options, seeded
generation, and the scores of generated text against references.

Scores are fractions, like every transferlab metric (sacrebleu prints BLEU and chrF x100): corpus BLEU and chrF
(sacrebleu, its default 13a tokenisation), ROUGE-L F-measure (torchmetrics) and exact match after whitespace
normalisation.
"""

from dataclasses import dataclass

from transferlab.config.rules import at_least, ranged


@dataclass
class GenerationConfig:
    max_new_tokens: int = at_least(32)
    num_beams: int = at_least(1, hint="1 is greedy (or sampling with do_sample=true)")
    do_sample: bool = False
    temperature: float = ranged(1.0, gt=0.0)
    top_p: float = ranged(1.0, gt=0.0, le=1.0)


def options(cfg) -> dict:
    """model.generate keyword arguments; the sampling ones only when sampling (transformers warns otherwise)."""
    out = {"max_new_tokens": cfg.max_new_tokens, "num_beams": cfg.num_beams, "do_sample": cfg.do_sample}
    if cfg.do_sample:
        out.update(temperature=cfg.temperature, top_p=cfg.top_p)
    return out


def generate(model, input_ids, attention_mask, cfg, seed: int, streamer=None):
    """model.generate under a fixed seed (sampling is reproducible) in a forked RNG: the training run's random
    state (dropout, masks) is the same whether or not it generated. A streamer gets the tokens as they come."""
    import torch

    devices = [input_ids.device] if input_ids.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, streamer=streamer, **options(cfg))


def with_new_tokens(cfg, max_new_tokens: int | None):
    """Generation options with max_new_tokens in place of cfg's, where given."""
    from omegaconf import OmegaConf

    return cfg if max_new_tokens is None else OmegaConf.merge(cfg, {"max_new_tokens": max_new_tokens})


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


def normalized(text: str) -> str:
    return " ".join(text.split())


def text_scores(predictions: list, references: list) -> dict:
    """{"bleu", "chrf", "rougeL", "exact_match"} of generated texts against one reference each."""
    import sacrebleu
    from torchmetrics.functional.text.rouge import rouge_score

    rouge = rouge_score(predictions, references, rouge_keys=("rougeL",))["rougeL_fmeasure"]
    return {
        "bleu": sacrebleu.corpus_bleu(predictions, [references]).score / 100,
        "chrf": sacrebleu.corpus_chrf(predictions, [references]).score / 100,
        "rougeL": float(rouge),
        "exact_match": sum(normalized(p) == normalized(r) for p, r in zip(predictions, references))
        / max(1, len(references)),
    }
