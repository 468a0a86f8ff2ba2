"""transferlab-predict on exports alone: labels with probabilities (top-k), tags per word, QA answers, the input's
columns kept, rows in input order whatever the batching, and its bad inputs in one line."""

import json

import pytest
import torch

from transferlab.cli.predict import main
from transferlab.models.tokenizer import _train_wordpiece

TEXTS = ["a small dog barks", "the red bus stops here", "a cat", "dogs and cats sleep on the mat all day long"]


@pytest.fixture(scope="module")
def tokenizer():
    return _train_wordpiece(iter([TEXTS * 20]), vocab_size=120, min_frequency=1, lowercase=True)


def _export(path, cls, tokenizer, **labels):
    from transformers import BertConfig

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        **labels,
    )
    model = cls(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def _run(capsys, *argv) -> list:
    main([*map(str, argv)])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_classification_keeps_the_columns_and_gives_each_row_its_label_and_probabilities(tmp_path, tokenizer, capsys):
    from transformers import BertForSequenceClassification

    labels = {0: "animal", 1: "vehicle", 2: "thing"}
    model = _export(
        tmp_path / "export",
        BertForSequenceClassification,
        tokenizer,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    (tmp_path / "in.csv").write_text("id,text\n" + "".join(f"{i},{t}\n" for i, t in enumerate(TEXTS)))
    rows = _run(capsys, tmp_path / "export", tmp_path / "in.csv", "--top-k", 2, "--batch-size", 2)
    assert [r["id"] for r in rows] == ["0", "1", "2", "3"] and [
        r["text"] for r in rows
    ] == TEXTS  # input order (cells as written), despite length batches
    for r, text in zip(rows, TEXTS):
        with torch.no_grad():
            probs = model(**tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0]
        assert r["pred_label"] == labels[int(probs.argmax())]
        assert r["pred_score"] == pytest.approx(float(probs.max()), abs=1e-5)
        assert [k["label"] for k in r["pred_top_k"]] == [labels[int(i)] for i in probs.argsort(descending=True)[:2]]
    import csv

    main([str(tmp_path / "export"), str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv")])
    table = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert list(table[0]) == ["id", "text", "pred_label", "pred_score"]
    assert [r["pred_label"] for r in table] == [r["pred_label"] for r in rows]


def test_tagging_gives_one_tag_per_word_and_qa_a_span_of_the_context(tmp_path, tokenizer, capsys):
    from transformers import BertForQuestionAnswering, BertForTokenClassification

    tags = {0: "NOUN", 1: "VERB", 2: "DET"}
    _export(
        tmp_path / "tagger",
        BertForTokenClassification,
        tokenizer,
        id2label=tags,
        label2id={v: k for k, v in tags.items()},
    )
    (tmp_path / "words.jsonl").write_text("".join(json.dumps({"tokens": t.split()}) + "\n" for t in TEXTS))
    rows = _run(capsys, tmp_path / "tagger", tmp_path / "words.jsonl")
    assert [len(r["pred_tags"]) for r in rows] == [len(t.split()) for t in TEXTS]
    assert {t for r in rows for t in r["pred_tags"]} <= set(tags.values())

    _export(tmp_path / "reader", BertForQuestionAnswering, tokenizer)
    (tmp_path / "qa.jsonl").write_text(
        "".join(json.dumps({"question": "which animal ?", "context": t}) + "\n" for t in TEXTS)
    )
    rows = _run(capsys, tmp_path / "reader", tmp_path / "qa.jsonl")
    for r in rows:
        start, answer = r["pred_start"], r["pred_answer"]
        assert r["context"][start : start + len(answer)] == answer and answer  # a span of the context


def test_bad_input_is_one_line(tmp_path, tokenizer, capsys):
    from transformers import BertForMaskedLM, BertForSequenceClassification

    _export(tmp_path / "export", BertForSequenceClassification, tokenizer, num_labels=2)
    _export(tmp_path / "mlm", BertForMaskedLM, tokenizer)
    (tmp_path / "other.csv").write_text("sentence,id\na dog,1\n")
    (tmp_path / "empty.csv").write_text("")
    cases = [
        (
            (tmp_path / "export", tmp_path / "other.csv"),
            "no column 'text' for this classification export; columns found: sentence, id; "
            "name it with --text-column=<one of them>",
        ),
        ((tmp_path / "export", tmp_path / "empty.csv"), "empty.csv is empty; give a file with at least one example"),
        (
            (tmp_path / "mlm", tmp_path / "other.csv"),
            "a BertForMaskedLM, which predicts nothing transferlab-predict reads",
        ),
        ((tmp_path / "nowhere", tmp_path / "other.csv"), "not an export dir (no config.json)"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and err[-1].startswith("error: ") and message in err[-1], err[-1]
    rows = _run(capsys, tmp_path / "export", tmp_path / "other.csv", "--text-column", "sentence")
    assert rows[0]["sentence"] == "a dog" and rows[0]["pred_label"] in ("LABEL_0", "LABEL_1")


def test_generation_exports_write_what_transferlab_generate_writes(tmp_path, capsys):
    """seq2seq (T5) and causal LM (GPT-2) exports: one generated text a row, the very text of transferlab-generate."""
    from omegaconf import OmegaConf
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    from transferlab.cli.generate import generations
    from transferlab.models.tokenizer import _train_byte_bpe, _train_unigram
    from transferlab.objectives.generation import GenerationConfig

    torch.manual_seed(0)
    unigram = _train_unigram(iter([TEXTS * 20]), vocab_size=150, min_frequency=1, lowercase=True)
    t5 = T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(unigram),
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=1,
            num_heads=2,
            decoder_start_token_id=unigram.pad_token_id,
        )
    ).eval()
    bpe = _train_byte_bpe(iter([TEXTS * 20]), vocab_size=300, min_frequency=1, lowercase=True)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(bpe), n_embd=32, n_layer=1, n_head=2, n_positions=64)).eval()
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"source": t, "n": i}) + "\n" for i, t in enumerate(TEXTS[:2]))
    )
    options = OmegaConf.structured(GenerationConfig(max_new_tokens=5))
    for name, model, tok in (("t5", t5, unigram), ("gpt2", gpt2, bpe)):
        model.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
        rows = _run(capsys, tmp_path / name, tmp_path / "in.jsonl", "--max-new-tokens", 5)
        assert [r["n"] for r in rows] == [0, 1]
        assert [r["pred_generation"] for r in rows] == list(generations(model, tok, TEXTS[:2], options, 0)), name
