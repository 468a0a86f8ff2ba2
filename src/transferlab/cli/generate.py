"""`transferlab-generate MODEL [--prompt TEXT ...] [--file PATH] [generation options]`: text from a causal LM or a
seq2seq model.

MODEL is an export dir (a run's export/, or any local HF-format dir) or a checkpoint inside a transferlab run dir.
Prompts come from --prompt (repeatable), --file (one a line) or stdin. A tokenizer with a chat template (an sft
export carries one) wraps each prompt in it; --raw passes prompts as they are. The options and their defaults are
objective.generation's; --seed fixes sampling. Output: one generated text a line (--jsonl: {"prompt", "generation"});
a terminal sees the tokens as they come.
"""

import argparse
import json
import sys
from pathlib import Path

from transferlab.errors import TransferlabError

GENERATIVE = {"AutoModelForSeq2SeqLM", "AutoModelForCausalLM"}
# an export's config.architectures names its head: these generate text; any other (a classifier's, a tagger's, a
# bare encoder's) would be loaded under a fresh, random LM head and print noise
GENERATIVE_ARCHITECTURES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def _from_checkpoint(ckpt: Path):
    import torch

    from transferlab.cli.evaluate import _load_config
    from transferlab.freeze import build_freeze_policy
    from transferlab.models.build import build_model
    from transferlab.models.tokenizer import build_tokenizer
    from transferlab.objectives import OBJECTIVES

    cfg, run_dir = _load_config(ckpt, [])
    objective_cls = OBJECTIVES[cfg.objective.name]
    if objective_cls.auto_class not in GENERATIVE:
        raise TransferlabError(
            f"{ckpt}: a checkpoint of objective={cfg.objective.name}, which does not generate text; "
            "give one of a seq2seq, sft, span_corruption or clm run"
        )
    tokenizer = build_tokenizer(cfg, None, run_dir, False, objective_cls)
    policy = build_freeze_policy(cfg.freeze)
    model = policy.apply(build_model(cfg, objective_cls(cfg.objective, cfg.data, tokenizer, None), tokenizer))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return policy.model_for_export(model)[0], tokenizer


def load(source: str):
    """(model, tokenizer) from an export dir or a run's checkpoint."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".ckpt":
        return _from_checkpoint(path)
    if not (path / "config.json").is_file():
        raise TransferlabError(
            f"{source}: neither an export dir (no config.json in it) nor a .ckpt file; "
            "give a run's export/ or checkpoint"
        )
    import transformers

    from transferlab.models.hub import check_tokenizer_files

    config = transformers.AutoConfig.from_pretrained(path)
    architecture = (config.architectures or [None])[0]
    if architecture is None or not architecture.endswith(GENERATIVE_ARCHITECTURES):
        what = f"a {architecture}" if architecture else "a model whose config.json names no architecture"
        raise TransferlabError(
            f"{source}: {what}, which does not generate text (no language-model head); "
            "give the export of a seq2seq, sft, span_corruption or clm run"
        )
    check_tokenizer_files(path, source, "copy the tokenizer files the model was trained with into it")
    auto = transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder else transformers.AutoModelForCausalLM
    try:
        model = auto.from_pretrained(path)
    except ValueError as e:
        raise TransferlabError(
            f"{source}: a {config.model_type} model without a text-generation head ({str(e).splitlines()[0]})"
        ) from None
    return model, transformers.AutoTokenizer.from_pretrained(path)


def prompt_ids(tokenizer, prompt: str, raw: bool, encoder_decoder: bool) -> list:
    """A seq2seq source is tokenized as in training (with its end token); a decoder continues the prompt, in the chat
    template when the tokenizer has one (an sft export), else as it is (no end token after it)."""
    from transferlab.objectives.generation import chat_prompt

    if getattr(tokenizer, "chat_template", None) and not raw and not encoder_decoder:
        return chat_prompt(tokenizer, prompt)
    return tokenizer(prompt, add_special_tokens=encoder_decoder)["input_ids"]


def generations(model, tokenizer, prompts: list, options, seed: int, raw: bool = False, stream=None):
    """The generated text of each prompt, one prompt at a time (greedy and beam search give a prompt's answer
    whatever else is in a batch; so does sampling, seeded per prompt)."""
    import torch

    from transferlab.models.architectures import max_positions
    from transferlab.objectives.generation import generate

    model.eval()
    device = next(model.parameters()).device
    limit = None if model.config.is_encoder_decoder else max_positions(model.config.to_dict())
    for i, prompt in enumerate(prompts):
        ids = torch.tensor([prompt_ids(tokenizer, prompt, raw, model.config.is_encoder_decoder)], device=device)
        if limit and ids.size(1) + options.max_new_tokens > limit:
            raise TransferlabError(
                f"prompt {i + 1} ({ids.size(1)} tokens) plus max_new_tokens={options.max_new_tokens} exceeds the "
                f"model's {limit} positions; lower --max-new-tokens or shorten the prompt"
            )
        out = generate(model, ids, torch.ones_like(ids), options, seed + i, stream)
        new = out[0] if model.config.is_encoder_decoder else out[0, ids.size(1) :]
        yield tokenizer.decode(new, skip_special_tokens=True).strip()


def _prompts(args) -> list:
    if args.prompt:
        return args.prompt
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise TransferlabError(f"--file {path}: no such file")
        lines = path.read_text(encoding="utf-8").splitlines()
    elif not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
    else:
        raise TransferlabError("no prompt: give --prompt TEXT, --file PATH (one prompt a line) or prompts on stdin")
    prompts = [line for line in lines if line.strip()]
    if not prompts:
        raise TransferlabError(f"{args.file or 'stdin'}: no prompt in it (every line is blank)")
    return prompts


def main(argv=None) -> None:
    from omegaconf import OmegaConf

    from transferlab.cli.front import report
    from transferlab.objectives.generation import GenerationConfig, add_flags, check, given

    parser = argparse.ArgumentParser(prog="transferlab-generate", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an export dir, or a checkpoint inside a run dir")
    parser.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    parser.add_argument("--file", help="prompts, one a line")
    add_flags(parser)  # --max-new-tokens, --num-beams, --do-sample, --top-k, ...: objective.generation's options
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="never wrap prompts in the tokenizer's chat template")
    parser.add_argument("--jsonl", action="store_true", help='print {"prompt", "generation"} a line')
    parser.add_argument("--chat", action="store_true", help="a conversation: a user turn a line on stdin (cli/chat.py)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        options = OmegaConf.structured(GenerationConfig(**given(args)))
        check(options, cli=True)
        if args.chat:
            from transferlab.cli.chat import chat

            return chat(args, options, load)
        prompts = _prompts(args)
        model, tokenizer = load(args.model)
        stream = None
        if sys.stdout.isatty() and not args.jsonl and options.num_beams == 1:  # beam search cannot stream
            from transformers import TextStreamer

            stream = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        for prompt, text in zip(prompts, generations(model, tokenizer, prompts, options, args.seed, args.raw, stream)):
            if args.jsonl:
                print(json.dumps({"prompt": prompt, "generation": text}, ensure_ascii=False), flush=True)
            elif stream is None:
                print(text, flush=True)
    except Exception as e:
        report(e, args.verbose)
        sys.exit(2 if isinstance(e, TransferlabError) else 1)


if __name__ == "__main__":
    main()
