"""`transferlab-generate MODEL --chat`: a conversation in the terminal with a model whose tokenizer has a chat
template (an sft export carries one). Each line read from stdin is the user's turn; the model's reply to the whole
conversation so far is printed on a line of its own and kept in it. An empty line or the end of input ends it.
Prompts are tokenized as sft training tokenized its conversations (objectives/chat.py); where the conversation
outgrows the model's positions, its oldest tokens are dropped.
"""

import sys

from transferlab.errors import TransferlabError


def chat(args, options, load) -> int:
    """transferlab-generate --chat: refuse the options a session does not read, then talk."""
    flags = {"--prompt": args.prompt, "--file": args.file, "--raw": args.raw, "--jsonl": args.jsonl}
    given = [flag for flag, value in flags.items() if value]
    if given:
        raise TransferlabError(
            f"--chat reads its user turns from stdin and prints replies as text; drop {' and '.join(given)}"
        )
    return session(*load(args.model), options, args.seed)


def session(model, tokenizer, options, seed: int, lines=None, out=None) -> int:
    """Chat over `lines` (default stdin), replies to `out` (default stdout); returns the number of replies."""
    import torch

    from transferlab.models.architectures import max_positions
    from transferlab.objectives.chat import prompt_ids
    from transferlab.objectives.generation import decoded, generate

    if model.config.is_encoder_decoder or not getattr(tokenizer, "chat_template", None):
        raise TransferlabError(
            "--chat needs a causal LM whose tokenizer has a chat template (an sft run's export); "
            "without --chat, each prompt is answered on its own"
        )
    lines, out = lines or sys.stdin, out or sys.stdout
    limit = max_positions(model.config.to_dict())
    room = limit - options.max_new_tokens if limit else None
    if room is not None and room < 1:
        raise TransferlabError(f"--max-new-tokens {options.max_new_tokens} fills the model's {limit} positions")
    model.eval()
    device, messages, turn = next(model.parameters()).device, [], 0
    ask = sys.stderr.write if lines is sys.stdin and sys.stdin.isatty() else (lambda _: None)
    while True:
        ask("> ")
        line = lines.readline()
        if not line.strip():  # an empty line, or the end of input
            return turn
        messages.append({"role": "user", "content": line.rstrip("\r\n")})
        ids = prompt_ids(tokenizer, messages)
        ids = torch.tensor([ids[-room:] if room else ids], device=device)
        generated = generate(model, ids, torch.ones_like(ids), options, seed + turn)[:, ids.size(1) :]
        reply = decoded(tokenizer, generated)[0]
        print(reply, file=out, flush=True)
        messages.append({"role": "assistant", "content": reply})
        turn += 1
