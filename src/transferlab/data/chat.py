"""Conversations in JSON lines, one a line, read into rows {"messages": [{"role", "content"}, ...]} (roles system,
user, assistant) with the line each starts on:

- data.format=messages: {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]};
- data.format=alpaca: {"instruction": ..., "input": ... (optional), "output": ...}, one user turn (the instruction,
  then a blank line and the input where it is not empty) and the assistant's output;
- data.format=sharegpt: {"conversations": [{"from": "system"|"human"|"gpt", "value": ...}, ...]}.

Text is read as written (a string, never a number or null turned into one). A conversation needs an assistant turn
and ends with one (the reply evaluation generates); a malformed line fails naming file:line.
"""

import gzip
import json
from pathlib import Path

from transferlab.errors import TransferlabError

CHAT_FORMATS = ("messages", "alpaca", "sharegpt")
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}
LAYOUTS = {
    "messages": '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}',
    "alpaca": '{"instruction": ..., "input": ... (optional), "output": ...}',
    "sharegpt": '{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}',
}


def _text(where: str, value, fmt: str, option: str = "data.format=") -> str:
    if not isinstance(value, str):
        shown = "missing" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"
        raise TransferlabError(f"{where} is {shown}, not a JSON string; {option}{fmt} reads {LAYOUTS[fmt]} a line")
    return value


def _turns(where: str, row: dict, fmt: str, reply: bool = True) -> list:
    """The row's turns as [{"role", "content"}], roles checked. reply=False (transferlab-predict's prompts, read with
    --format): alpaca's output may be absent."""
    option = "data.format=" if reply else "--format "
    if fmt == "alpaca":
        instruction, output = _text(f"{where}: 'instruction'", row.get("instruction"), fmt, option), row.get("output")
        given = row.get("input")
        extra = _text(f"{where}: 'input'", given, fmt, option) if given is not None else ""
        user = [{"role": "user", "content": instruction + ("\n\n" + extra if extra else "")}]
        if output is None and not reply:
            return user
        return [*user, {"role": "assistant", "content": _text(f"{where}: 'output'", output, fmt, option)}]
    key, role_key, content_key = (
        ("messages", "role", "content") if fmt == "messages" else ("conversations", "from", "value")
    )
    turns = row.get(key)
    if not isinstance(turns, list):
        raise TransferlabError(f"{where}: no '{key}' list; {option}{fmt} reads {LAYOUTS[fmt]} a line")
    names = {r: r for r in ROLES} if fmt == "messages" else SHAREGPT_ROLES
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise TransferlabError(f"{where}: {key}[{i}] is not an object; {option}{fmt} reads {LAYOUTS[fmt]}")
        role = turn.get(role_key)
        if role not in names:
            raise TransferlabError(
                f"{where}: unknown role {json.dumps(role)} in {key}[{i}].{role_key}; use {', '.join(names)}"
            )
        out.append(
            {
                "role": names[role],
                "content": _text(f"{where}: {key}[{i}].{content_key}", turn.get(content_key), fmt, option),
            }
        )
    return out


def conversation(where: str, row, fmt: str) -> list:
    """A row's conversation, checked: an object of the format's layout, ending with an assistant turn."""
    if not isinstance(row, dict):
        raise TransferlabError(f"{where}: not a JSON object; data.format={fmt} reads {LAYOUTS[fmt]} a line")
    turns = _turns(where, row, fmt)
    if not any(t["role"] == "assistant" for t in turns):
        raise TransferlabError(f"{where}: no assistant turn; give each conversation at least one assistant reply")
    if turns[-1]["role"] != "assistant":
        raise TransferlabError(
            f"{where}: a {turns[-1]['role']} turn after the last assistant turn; end each conversation with the "
            "assistant's reply (or drop the turns after it)"
        )
    return turns


def _lines(path: str):
    """(line number, the JSON value) of each non-blank line of the file."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as e:
                raise TransferlabError(
                    f"{path}:{number}: malformed JSON line ({e.msg}); fix or remove that line"
                ) from None


def conversations(path: str, fmt: str):
    """(line number, conversation) of each non-blank line of the file."""
    for number, row in _lines(path):
        yield number, conversation(f"{path}:{number}", row, fmt)


def prompts(path: str, fmt: str) -> list:
    """transferlab-predict's chat input: (the row as read, the turns a reply follows) of each non-blank line. A
    conversation that ends with an assistant turn is prompted with the turns before it, as evaluation prompts (the
    turn stays in the row, beside the prediction); one that ends with a user or system turn, with every turn."""
    out = []
    for number, row in _lines(path):
        where = f"{path}:{number}"
        if not isinstance(row, dict):
            raise TransferlabError(f"{where}: not a JSON object; --format {fmt} reads {LAYOUTS[fmt]} a line")
        turns = _turns(where, row, fmt, reply=False)
        if turns and turns[-1]["role"] == "assistant":
            turns = turns[:-1]
        if not turns or all(t["role"] == "system" for t in turns):
            raise TransferlabError(f"{where}: no user turn before the reply to generate; give the user's turn")
        out.append((row, turns))
    if not out:
        raise TransferlabError(f"{path}: no conversation (every line is blank); give one conversation a line")
    return out


def _rows(path: str, fmt: str):
    from transferlab.data.tabular import LINE

    for number, turns in conversations(path, fmt):
        yield {LINE: number, "messages": turns}


def line_of(path, fmt: str, turns: list) -> int | None:
    """The line of the file holding this conversation (an error message names it), or None."""
    return next((number for number, found in conversations(str(path), fmt) if found == turns), None)


def _read(path: Path, fmt: str):
    from datasets import Features, List, Value

    from transferlab.data.readers import from_rows
    from transferlab.data.tabular import LINE

    features = Features({LINE: Value("int64"), "messages": List({"role": Value("string"), "content": Value("string")})})
    return from_rows(_rows, features, path, fmt=fmt)


def read_messages(path: Path):
    return _read(path, "messages")


def read_alpaca(path: Path):
    return _read(path, "alpaca")


def read_sharegpt(path: Path):
    return _read(path, "sharegpt")
