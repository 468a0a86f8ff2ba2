"""Conversations as sft rows: rendered through the tokenizer's chat template (objectives/generation.py's plain one,
with roles, for a model without one), tokenized piece by piece, with labels on the assistant turns only.

The template is rendered incrementally: the conversation up to each assistant turn with the generation prompt, then
with that turn. Each rendering must begin with the previous one; the text between them is a piece, tokenized on its
own, so a piece's tokens never merge across a turn's edge and the tokens of a reply are exactly what the model
generates after its prompt. The reply pieces (the assistant's text and the template's end of turn) are the labels.
Prompts for generation (evaluation, transferlab-generate --chat) are tokenized the same way.
"""

from transferlab.errors import TransferlabError
from transferlab.objectives.base import IGNORE


class TemplateProblem(ValueError):
    """The chat template cannot render a conversation, or renders it differently once a turn follows."""


def render(tokenizer, messages: list, generation_prompt: bool) -> str:
    if not messages and not generation_prompt:
        return ""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as e:  # jinja's TemplateError, or the template's raise_exception (e.g. roles must alternate)
        raise TemplateProblem(f"the chat template fails ({type(e).__name__}: {str(e).splitlines()[0]})") from None


def pieces(tokenizer, messages: list, generation_prompt: bool = False) -> list:
    """[(text, is_reply)] whose texts joined are the conversation rendered (and the generation prompt after it)."""
    out, done = [], ""

    def extend(text: str, reply: bool, turn: int):
        nonlocal done
        if not text.startswith(done):
            raise TemplateProblem(
                f"the chat template renders the conversation before turn {turn + 1} differently once that turn follows "
                "(it cannot be masked turn by turn)"
            )
        out.append((text[len(done) :], reply))
        done = text

    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            extend(render(tokenizer, messages[:i], True), False, i)
        extend(render(tokenizer, messages[: i + 1], False), message["role"] == "assistant", i)
    if generation_prompt:
        extend(render(tokenizer, messages, True), False, len(messages))
    return [(text, reply) for text, reply in out if text]


def _ids(tokenizer, texts: list) -> list:
    return tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []


def prompt_ids(tokenizer, messages: list) -> list:
    """The ids of a conversation so far, ready for the assistant's reply (as training tokenized it)."""
    return [i for ids in _ids(tokenizer, [text for text, _ in pieces(tokenizer, messages, True)]) for i in ids]


def encoded(tokenizer, messages: list, limit: int, reply_limit: int, train_on_inputs: bool) -> dict:
    """A conversation ending with an assistant turn as an sft row: input_ids; labels (the assistant turns' tokens,
    -100 elsewhere; every token with train_on_inputs); prompt_len (the tokens before the last reply); the last reply
    cut to `reply_limit` tokens (its last kept) and the whole to its last `limit` tokens (the history's start cut)."""
    parts = pieces(tokenizer, messages)
    if not parts or not parts[-1][1]:
        raise TemplateProblem("the chat template renders nothing for the last assistant turn")
    ids = _ids(tokenizer, [text for text, _ in parts])
    reply_cut = len(ids[-1]) > reply_limit
    if reply_cut:
        ids[-1] = ids[-1][: reply_limit - 1] + ids[-1][-1:]
    tokens = [i for piece in ids for i in piece]
    labels = [i if reply or train_on_inputs else IGNORE for piece, (_, reply) in zip(ids, parts) for i in piece]
    prompt_len = len(tokens) - len(ids[-1])
    cut = max(0, len(tokens) - limit)
    return {
        "input_ids": tokens[cut:],
        "labels": labels[cut:],
        "prompt_len": max(0, prompt_len - cut),
        "source_cut": int(cut > 0),
        "target_cut": int(reply_cut),
    }


def conversation(source, target: str) -> list:
    """The conversation of an sft row read from chat data: the turns before the reply, then the reply."""
    return [{"role": m["role"], "content": m["content"]} for m in source] + [{"role": "assistant", "content": target}]


def template_error(problem: str, data_cfg, split: str, messages: list) -> TransferlabError:
    """The error for a conversation the template cannot render, naming its file and line where it has one."""
    from transferlab.data.chat import line_of

    path = data_cfg.get(split) if data_cfg.get("source") == "files" else None
    line = line_of(path, data_cfg.format, messages) if path else None
    where = f"{path}:{line}" if line else f"data.{split}"
    return TransferlabError(
        f"{where}: {problem}; fix that conversation, or give a tokenizer whose chat template renders it "
        "(tokenizer.name_or_path=DIR)"
    )
