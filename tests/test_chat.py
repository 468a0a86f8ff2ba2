"""Chat-style sft: the three chat formats read to one conversation, the loss mask on assistant turns only, packed
rows equal to unpacked ones (loss and logits), bad conversations named by file:line, a --chat session, and a tiny
run on multi-turn data."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "red green"},
    {"role": "assistant", "content": "blue"},
    {"role": "user", "content": "green"},
    {"role": "assistant", "content": "red red"},
]
WORDS = "red green blue black white pink gold grey".split()


def _lines(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def _conversations(n: int) -> list:
    """Multi-turn rows of varying length: a colour named by the user, said back by the assistant."""
    out = []
    for i in range(n):
        turns = [{"role": "system", "content": "say the colour"}] if i % 3 == 0 else []
        for j in range(1 + i % 3):
            colour = WORDS[(i + j) % len(WORDS)]
            turns += [{"role": "user", "content": f"the door is {colour}"}, {"role": "assistant", "content": colour}]
        out.append({"messages": turns})
    return out


@pytest.fixture(scope="module")
def tok():
    from transferlab.models.tokenizer import _train_byte_bpe

    texts = [" ".join(WORDS), "system user assistant say the colour door is be brief"] * 50
    tokenizer = _train_byte_bpe(iter([texts]), vocab_size=300, min_frequency=1, lowercase=False)
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _sft(tok, fmt="messages", path=None, **cfg):
    from transferlab.objectives.sft import SFT

    config = {"name": "sft", "separator": "\n", "max_target_len": 16, "generation": {"max_new_tokens": 4}}
    data = {"max_seq_len": 64, "num_proc": None, "format": fmt, "source": "files", "train": path}
    data.update(source_column="source", target_column="target")
    tok.chat_template = None  # each objective sets the plain template its data calls for
    return SFT(OmegaConf.create({**config, **cfg}), OmegaConf.create(data), tok, None)


def _gpt2(tok):
    from transformers import GPT2Config

    ends = {"bos_token_id": tok.eos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    return GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128, **ends)


def _read(path, fmt):
    from transferlab.data.files import read_file

    return read_file(path, "train", fmt=fmt, lines=True)


def _prepared(sft, path, split="train"):
    return sft.prepare(split, sft.reshape(_read(path, sft.data_cfg.format), sft.data_cfg).remove_columns("__line__"))


def test_the_three_formats_read_to_the_same_conversation(tmp_path):
    sharegpt = {"system": "system", "user": "human", "assistant": "gpt"}
    messages = _lines(tmp_path / "m.jsonl", [{"messages": CONVERSATION}, "", {"messages": CONVERSATION[1:3]}])
    share = _lines(
        tmp_path / "s.jsonl",
        [{"conversations": [{"from": sharegpt[t["role"]], "value": t["content"]} for t in CONVERSATION]}],
    )
    alpaca = _lines(
        tmp_path / "a.jsonl",
        [{"instruction": "red green", "output": "blue"}, {"instruction": "name it", "input": "0", "output": "null"}],
    )
    assert list(_read(messages, "messages")["messages"]) == [CONVERSATION, CONVERSATION[1:3]]
    assert list(_read(messages, "messages")["__line__"]) == [1, 3]  # a blank line is skipped: lines keep numbers
    assert list(_read(share, "sharegpt")["messages"]) == [CONVERSATION]
    assert (
        list(_read(alpaca, "alpaca")["messages"])
        == [  # read as written: "0" and "null" stay text
            CONVERSATION[1:3],
            [{"role": "user", "content": "name it\n\n0"}, {"role": "assistant", "content": "null"}],
        ]
    )


def test_only_the_assistant_turns_carry_labels_in_a_multi_turn_conversation(tmp_path, tok):
    path = _lines(tmp_path / "m.jsonl", [{"messages": CONVERSATION}])
    row = _prepared(_sft(tok), path)[0]
    pieces = [
        ("system: be brief\n", False),
        ("user: red green\n", False),
        ("assistant: ", False),
        ("blue<|endoftext|>", True),
        ("user: green\n", False),
        ("assistant: ", False),
        ("red red<|endoftext|>", True),
    ]
    ids = [tok(text, add_special_tokens=False)["input_ids"] for text, _ in pieces]
    expected = [i if reply else -100 for piece, (_, reply) in zip(ids, pieces) for i in piece]
    assert list(row["input_ids"]) == [i for piece in ids for i in piece]
    assert list(row["labels"]) == expected and expected.count(tok.eos_token_id) == 2  # both replies end in eos
    assert row["prompt_len"] == sum(len(p) for p in ids[:-1])  # evaluation generates the last reply from here
    everything = _prepared(_sft(tok, train_on_inputs=True), path)[0]
    assert list(everything["labels"]) == list(row["input_ids"])


def test_the_plain_template_without_roles_renders_a_single_turn_as_before(tok):
    from transferlab.objectives.generation import plain_template

    tok.chat_template = plain_template(" =>")
    turn = [{"role": "user", "content": "red green"}]
    assert tok.apply_chat_template(turn, tokenize=False, add_generation_prompt=True) == "red green =>"


def test_rows_are_packed_best_fit_decreasing_and_every_block_fits():
    from transferlab.objectives.packing import packed_groups

    # 5 opens a block (room 1), each 3 and each 2 fill one of their own; the 1 goes to the fullest block it fits
    assert packed_groups([3, 3, 2, 2, 1, 5], 6) == [[4, 5], [0, 1], [2, 3]]
    lengths = [(7 * i) % 61 + 1 for i in range(500)]
    groups = packed_groups(lengths, 64)
    assert sorted(i for g in groups for i in g) == list(range(500))
    assert all(sum(lengths[i] for i in g) <= 64 for g in groups) and len(groups) <= sum(lengths) / 64 * 1.1


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_give_the_loss_and_logits_of_the_conversations_alone(tmp_path, tok, attention):
    from transformers import AutoModelForCausalLM

    from transferlab.objectives.collate import PadCollator
    from transferlab.objectives.packing import PackedCollator, PackedRows

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_gpt2(tok), attn_implementation=attention).eval()
    assert model.config._attn_implementation == attention
    sft = _sft(tok, train_on_inputs=True)  # every label scored: a leak across conversations would show
    rows = _prepared(sft, _lines(tmp_path / "m.jsonl", _conversations(7)))
    packed = PackedRows(rows, 128)
    assert len(packed) < len(rows) and all(n <= 128 for n in packed.lengths)
    assert sorted(i for g in packed.groups for i in g) == list(range(len(rows)))
    padded = PadCollator(tok.pad_token_id, columns=(), aligned={"labels": -100})([rows[i] for i in range(len(rows))])
    blocks = PackedCollator(tok.pad_token_id)([packed[i] for i in range(len(packed))])
    assert "attention_mask" not in blocks and blocks["position_ids"][0, 0] == 0
    with torch.no_grad():
        alone, together = sft.step(model, padded, "train"), sft.step(model, blocks, "train")
        assert together.item() == pytest.approx(alone.item(), abs=1e-5)
        b = max(range(len(packed)), key=lambda b: len(packed.groups[b]))  # the block of the most conversations
        block, inputs = packed.groups[b], {k: blocks[k][b : b + 1] for k in ("input_ids", "position_ids")}
        logits = model(**inputs, use_cache=False).logits[0]
        start = 0
        for i in block:
            ids = torch.as_tensor(rows[i]["input_ids"])[None]
            own = model(input_ids=ids).logits[0]
            torch.testing.assert_close(logits[start : start + len(own)], own, atol=1e-5, rtol=1e-4)
            start += len(own)
    assert len(block) > 2


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn; give each conversation at least one"),
        (
            {"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
            'unknown role "bot" in messages[0].role; use system, user, assistant',
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 3}]},
            "messages[1].content is int 3, not a JSON string",
        ),
        (
            {"messages": [*CONVERSATION, {"role": "user", "content": "and?"}]},
            "a user turn after the last assistant turn; end each conversation with the assistant's reply",
        ),
    ],
)
def test_a_bad_conversation_is_named_by_file_and_line(tmp_path, row, problem):
    path = _lines(tmp_path / "bad.jsonl", [{"messages": CONVERSATION}, row])
    with pytest.raises(TransferlabError) as e:
        _read(path, "messages")
    assert str(e.value).startswith(f"{path}:2: {problem}")


def test_an_unknown_sharegpt_speaker_is_named_by_file_and_line(tmp_path):
    path = _lines(tmp_path / "s.jsonl", [{"conversations": [{"from": "bot", "value": "x"}]}])
    with pytest.raises(TransferlabError, match=r':1: unknown role "bot" in conversations\[0\].from; use system, human'):
        _read(path, "sharegpt")


@pytest.mark.parametrize(
    "template, problem",
    [
        (  # as strict chat models' templates are: no system turn
            "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system turns') }}{% endif %}"
            "{{ m.content }}{% endfor %}",
            "the chat template fails (TemplateError: no system turns)",
        ),
        (  # a turn count up front: the earlier turns render differently once a turn follows
            "{{ messages | length }}{% for m in messages %}{{ m.content }}{% endfor %}",
            "the chat template renders the conversation before turn 2 differently once that turn follows "
            "(it cannot be masked turn by turn)",
        ),
        (
            "{% for m in messages %}{% if m.role != 'assistant' %}{{ m.content }}{% endif %}{% endfor %}",
            "the chat template renders nothing for the last assistant turn",
        ),
    ],
)
def test_a_conversation_the_chat_template_cannot_render_is_named_by_file_and_line(tmp_path, tok, template, problem):
    rows = [{"messages": CONVERSATION[1:3]}, {"messages": CONVERSATION}]
    path = _lines(tmp_path / "m.jsonl", rows if "system" in template else rows[::-1])
    sft = _sft(tok, path=path)
    tok.chat_template = template
    with pytest.raises(TransferlabError) as e:
        _prepared(sft, path)
    line = 2 if "system" in template else 1
    assert str(e.value) == (
        f"{path}:{line}: {problem}; fix that conversation, or give a tokenizer whose chat template renders it "
        "(tokenizer.name_or_path=DIR)"
    )


@pytest.mark.slow  # a CLI subprocess
def test_the_cli_answers_a_bad_conversation_with_one_error_line_before_training(tmp_path):
    path = _lines(tmp_path / "bad.jsonl", [{"messages": CONVERSATION}, {"messages": CONVERSATION[:2]}])
    run = tmp_path / "run"
    args = ["model=tiny_gpt2", "objective=sft", "data=files", f"data.train={path}", "data.format=messages"]
    out = subprocess.run(
        [sys.executable, "-m", "transferlab.train", *args, "tokenizer=train", f"hydra.run.dir={run}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode != 0 and lines == [
        f"error: {path}:2: no assistant turn; give each conversation at least one assistant reply"
    ]
    assert not (run / "checkpoints").exists()


def _tiny_export(tok, path):
    from transformers import GPT2LMHeadModel

    from transferlab.objectives.generation import plain_template

    torch.manual_seed(1)
    model = GPT2LMHeadModel(_gpt2(tok))
    blank = [i for i in range(len(tok)) if not tok.decode([i], skip_special_tokens=True).strip()]
    with torch.no_grad():  # logit 0 for tokens that decode to nothing, below the best word's: no reply is empty
        model.transformer.wte.weight[blank] = 0
    model.save_pretrained(path)
    tok.chat_template = plain_template("\n", roles=True)
    tok.save_pretrained(path)


@pytest.mark.slow  # a CLI subprocess
def test_a_chat_session_keeps_the_history_and_ends_at_an_empty_line(tmp_path, tok):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transferlab.objectives.chat import prompt_ids
    from transferlab.objectives.generation import decoded

    export = tmp_path / "export"
    _tiny_export(tok, export)
    out = subprocess.run(
        [sys.executable, "-m", "transferlab.cli.generate", str(export), "--chat", "--max-new-tokens", "3"],
        input="red green\nblue\n\nnever answered\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    replies = out.stdout.splitlines()
    assert len(replies) == 2  # the empty line ended the session
    model, tokenizer = AutoModelForCausalLM.from_pretrained(export).eval(), AutoTokenizer.from_pretrained(export)
    history = []
    for text, reply in zip(["red green", "blue"], replies):
        history.append({"role": "user", "content": text})
        ids = torch.tensor([prompt_ids(tokenizer, history)])  # the conversation so far, the first reply included
        with torch.no_grad():
            new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
        assert reply == decoded(tokenizer, new[:, ids.size(1) :])[0]
        history.append({"role": "assistant", "content": reply})
    first, second = prompt_ids(tokenizer, history[:1]), tokenizer.decode(prompt_ids(tokenizer, history[:3]))
    assert replies[0] and second == f"user: red green\nassistant: {replies[0]}<|endoftext|>user: blue\nassistant: "
    assert prompt_ids(tokenizer, history[:3])[: len(first)] == first


def test_chat_refuses_the_options_a_session_does_not_read(tmp_path, tok):
    export = tmp_path / "export"
    _tiny_export(tok, export)
    out = subprocess.run(
        [sys.executable, "-m", "transferlab.cli.generate", str(export), "--chat", "--prompt", "hi", "--jsonl"],
        input="hi\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == (
        "error: --chat reads its user turns from stdin and prints replies as text; drop --prompt and --jsonl"
    )


def test_a_tiny_sft_run_on_multi_turn_data_scores_the_last_reply(tmp_path):
    from conftest import train_in_process

    rows = _conversations(24)
    train = _lines(tmp_path / "train.jsonl", rows)
    test = _lines(tmp_path / "test.jsonl", rows[:4])
    overrides = ["debug=fast", "model=tiny_gpt2", "objective=sft", "data=files", f"data.train={train}"]
    overrides += [f"data.test={test}", "data.format=messages", "data.max_seq_len=64", "tokenizer=train"]
    overrides += ["tokenizer.vocab_size=300", "objective.packing=true", "objective.generation.max_new_tokens=4"]
    run = tmp_path / "run"
    _, metrics, _ = train_in_process(overrides, run)
    assert {"test/loss", "test/bleu", "test/exact_match", "test/rougeL"} <= set(metrics)
    written = [json.loads(line) for line in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert [r["reference"] for r in written] == [r["messages"][-1]["content"] for r in rows[:4]]
    assert [r["source"] for r in written] == [r["messages"][:-1] for r in rows[:4]]
    template = (run / "export" / "chat_template.jinja").read_text()
    assert '"assistant: "' in template  # the export prompts with roles, as training rendered


def test_chat_data_for_an_objective_that_does_not_read_conversations_is_refused(tmp_path):
    from transferlab.cli.front import compose
    from transferlab.config.validate import validate

    path = _lines(tmp_path / "m.jsonl", [{"messages": CONVERSATION}])
    with pytest.raises(TransferlabError) as e:
        validate(compose(["data=files", f"data.train={path}", "data.format=sharegpt"]))
    assert str(e.value) == (
        "data.format=sharegpt reads conversations, which objective=classification does not learn from; "
        "use objective=sft, or a data.format of rows"
    )


def test_packing_with_virtual_tokens_is_refused():
    from transferlab.cli.front import compose
    from transferlab.config.validate import validate

    overrides = ["model=tiny_gpt2", "objective=sft", "data=wordnet_definitions", "objective.packing=true"]
    with pytest.raises(TransferlabError) as e:
        validate(compose([*overrides, "freeze=peft", "freeze.method=prefix_tuning"]))
    assert str(e.value) == (
        "objective.packing=true with freeze.method=prefix_tuning: its virtual tokens drop the position ids that keep "
        "packed conversations apart; set objective.packing=false, or use freeze.method=lora"
    )
    validate(compose([*overrides, "freeze=peft", "freeze.method=lora"]))  # an adapter keeps them: accepted


def test_predict_input_prompts_each_conversation_up_to_the_reply_it_asks_for(tmp_path):
    from transferlab.data.chat import prompts

    turns = CONVERSATION[:4]  # ends with the user's turn: the reply after it is asked for
    rows = [{"messages": turns}, {"messages": CONVERSATION, "id": "007"}]  # ends with a reply: generated anew
    found = prompts(_lines(tmp_path / "m.jsonl", rows), "messages")
    assert found == [(rows[0], turns), (rows[1], CONVERSATION[:4])]  # each row as read, beside its prompt
    alpaca = [{"instruction": "name it", "input": "red"}, {"instruction": "name it", "output": "red"}]
    assert [t for _, t in prompts(_lines(tmp_path / "a.jsonl", alpaca), "alpaca")] == [
        [{"role": "user", "content": "name it\n\nred"}],  # no output: the instruction and its input
        [{"role": "user", "content": "name it"}],  # an output: the reply generated anew
    ]
    sharegpt = [{"conversations": [{"from": "human", "value": "hi"}]}]
    assert prompts(_lines(tmp_path / "s.jsonl", sharegpt), "sharegpt")[0][1] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"messages": [{"role": "assistant", "content": "x"}]}, "no user turn before the reply to generate"),
        ({"messages": [{"role": "system", "content": "x"}]}, "no user turn before the reply to generate"),
        ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content is int 7, not a JSON string; --format"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 'unknown role "robot" in messages[0].role'),
        ('{"messages": [', "malformed JSON line"),
    ],
)
def test_a_bad_predict_conversation_is_named_by_file_and_line(tmp_path, row, problem):
    from transferlab.data.chat import prompts

    path = _lines(tmp_path / "in.jsonl", [{"messages": CONVERSATION[:2]}, row])
    with pytest.raises(TransferlabError) as e:
        prompts(path, "messages")
    assert str(e.value).startswith(f"{path}:2: {problem}")


def test_predict_continues_conversations_from_a_chat_file(tmp_path, tok):
    """transferlab-predict --format messages: each row as read plus the reply greedy decoding gives after the
    conversation rendered as training renders it (objectives/chat.prompt_ids)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transferlab.cli.predict import main
    from transferlab.objectives.chat import prompt_ids
    from transferlab.objectives.generation import decoded

    export = tmp_path / "export"
    _tiny_export(tok, export)
    rows = [{"messages": CONVERSATION[:2]}, {"messages": CONVERSATION, "id": "007"}]
    out = tmp_path / "out.jsonl"
    main([str(export), _lines(tmp_path / "in.jsonl", rows), "--format", "messages", "--out", str(out),
          "--max-new-tokens", "3"])  # fmt: skip
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "pred_generation"} for r in written] == rows
    model, tokenizer = AutoModelForCausalLM.from_pretrained(export).eval(), AutoTokenizer.from_pretrained(export)
    for row, turns in zip(written, [CONVERSATION[:2], CONVERSATION[:4]]):
        ids = torch.tensor([prompt_ids(tokenizer, turns)])
        with torch.no_grad():
            new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
        assert row["pred_generation"] == decoded(tokenizer, new[:, ids.size(1) :])[0]


def test_chat_input_that_cannot_be_read_as_asked_is_refused_in_one_line(tmp_path):
    from transferlab.cli.predict_input import read
    from transferlab.objectives import OBJECTIVES

    path = _lines(tmp_path / "in.jsonl", [{"messages": CONVERSATION}])
    sft, columns = OBJECTIVES["sft"], {"source": "source"}
    cases = [
        (lambda: read(path, "messages", OBJECTIVES["seq2seq"], columns), "--format messages reads conversations from "
         "a file, which a seq2seq export cannot take; give an sft export a JSON-lines file, or drop --format"),
        (lambda: read("-", "messages", sft, columns), "--format messages reads conversations from a file, which stdin "
         "cannot take; give an sft export a JSON-lines file, or drop --format"),
        (lambda: read(path, "messages", sft, columns, {"source": "text"}), "--source-column=text: --format messages "
         "reads whole conversations, no column; drop --source-column"),
        (lambda: read(path, "auto", sft, columns), f"{path}: no column 'source', but 'messages': conversations; read "
         "them with --format messages"),
    ]  # fmt: skip
    taken = _lines(tmp_path / "taken.jsonl", [{"messages": CONVERSATION, "pred_generation": "x"}])
    cases.append((lambda: read(taken, "messages", sft, columns), f"{taken}: field 'pred_generation' has a name this "
                  "sft export writes its prediction under; rename it"))  # fmt: skip
    for call, line in cases:
        with pytest.raises(TransferlabError) as e:
            call()
        assert str(e.value) == line


def test_predict_refuses_chat_input_for_an_export_without_a_chat_template(tmp_path, tok, capsys):
    from transferlab.cli.predict import main

    export = tmp_path / "export"
    _tiny_export(tok, export)
    (export / "chat_template.jinja").unlink()  # a causal LM from elsewhere: no template to render turns with
    path = _lines(tmp_path / "in.jsonl", [{"messages": CONVERSATION[:2]}])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(export), path, "--format", "messages"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --format messages: {export} has no chat template to render conversations with (an sft run's export "
        "keeps one); give such an export, or give text rows without --format"
    )
