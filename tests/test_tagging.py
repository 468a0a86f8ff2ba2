"""objective=token_classification: CoNLL reading, sub-word alignment, seqeval scores, bad input, and an end-to-end
tiny NER run whose export gives the same tags in transformers' token-classification pipeline."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from omegaconf import OmegaConf

from transferlab.data.conll import read_conll
from transferlab.errors import TransferlabError
from transferlab.models.tokenizer import _train_wordpiece
from transferlab.objectives.base import IGNORE
from transferlab.objectives.token_classification import TokenClassification, align, is_entity_scheme

CLI = [sys.executable, "-m", "transferlab.train"]


@pytest.fixture(scope="module")
def wordpiece():
    texts = ["john lives in paris", "mary visits new york", "the cat sleeps", "believable things happen"] * 50
    return _train_wordpiece(iter([texts]), vocab_size=120, min_frequency=1, lowercase=True)


def _objective(tokenizer, tags, **cfg):
    train = Dataset.from_dict({"tokens": [["w"] * len(t) for t in tags], "tags": tags})
    config = OmegaConf.create({"name": "token_classification", "label_all_subwords": False, "strict": False, **cfg})
    return TokenClassification(config, OmegaConf.create({"max_seq_len": 32, "num_proc": None}), tokenizer, train)


def test_conll_files_skip_docstart_split_on_blank_lines_and_take_the_last_column(tmp_path):
    path = tmp_path / "ner.conll"
    path.write_text("-DOCSTART- -X- O O\n\nJohn NNP B-PER\nlives VBZ O\n\n\nParis\tNNP\tB-LOC\n")
    ds = read_conll(path)
    assert ds["tokens"][:] == [["John", "lives"], ["Paris"]] and ds["tags"][:] == [["B-PER", "O"], ["B-LOC"]]


def test_a_conll_line_with_other_columns_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("John NNP B-PER\nlives VBZ O\n\nParis B-LOC\n")
    with pytest.raises(
        TransferlabError, match=rf"^{path}:4: 2 columns, but line 1 has 3; every token line needs the same columns"
    ):
        read_conll(path)


def test_tags_go_on_each_words_first_sub_word_and_a_word_with_no_sub_word_is_left_out(wordpiece):
    words = ["john", "\x07", "johnparis", "paris"]  # a control character tokenizes to nothing
    enc = wordpiece(words, is_split_into_words=True)
    word_ids = enc.word_ids()
    assert 1 not in word_ids and word_ids.count(2) > 1  # no sub-word for word 1; word 2 in several pieces
    labels, first = align(word_ids, [10, 11, 12, 13], all_subwords=False, inside={})
    pieces = [labels[j] for j, w in enumerate(word_ids) if w == 2]
    assert pieces == [12] + [IGNORE] * (len(pieces) - 1)
    assert [labels[j] for j, f in enumerate(first) if f] == [10, 12, 13]  # one scored position per word that has one
    assert labels[0] == labels[-1] == IGNORE  # [CLS] and [SEP]
    every, _ = align(word_ids, [10, 11, 12, 13], all_subwords=True, inside={12: 99})
    assert [every[j] for j, w in enumerate(word_ids) if w == 2] == [12] + [99] * (len(pieces) - 1)  # B- goes on as I-


def test_entity_scores_are_seqevals_on_a_hand_checked_example(wordpiece):
    objective = _objective(wordpiece, [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]])
    assert objective.entities and not is_entity_scheme(["NOUN", "VERB"])
    predictions = [
        # gold: PER(0-1), LOC(3); predicted: PER(0-1) right, LOC missed, a false PER at 4
        {"id": 0, "gold": ["B-PER", "I-PER", "O", "B-LOC"], "predicted": ["B-PER", "I-PER", "O", "O"], "words": 4},
        {"id": 1, "gold": ["O", "O"], "predicted": ["O", "B-PER"], "words": 3},  # one word was never scored
    ]
    scores = objective.evaluate("test", predictions)
    assert scores == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "words_unscored": 1.0})
    # strict mode (IOB2): an entity must start with B-; "I-PER" alone is no entity there, one in the default mode
    lenient = objective.evaluate("test", [{"id": 0, "gold": ["I-PER"], "predicted": ["I-PER"], "words": 1}])
    strict = _objective(wordpiece, [["B-PER", "I-PER", "O"]], strict=True).evaluate(
        "test", [{"id": 0, "gold": ["B-PER", "I-PER"], "predicted": ["I-PER", "I-PER"], "words": 2}]
    )
    assert lenient["f1"] == 1.0 and strict["f1"] == 0.0


def test_a_slow_tokenizer_is_refused_in_one_line():
    class Slow:  # transformers 5 ships few Python-only tokenizers; what matters is what it says of itself
        is_fast = False

    with pytest.raises(TransferlabError, match="objective=token_classification needs a fast tokenizer"):
        _objective(Slow(), [["B-PER", "O"]])


def _conll(path: Path, sentences: list) -> str:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sentences))
    return str(path)


def _ner_sentences(n: int, seed: int) -> list:
    import random

    rng = random.Random(seed)
    people, places = ["john", "mary", "anna smith", "li wei"], ["paris", "new york", "oslo", "rio de janeiro"]
    out = []
    for _ in range(n):
        person, place = rng.choice(people).split(), rng.choice(places).split()
        sentence = [(w, "B-PER" if i == 0 else "I-PER") for i, w in enumerate(person)]
        sentence += [("lives", "O"), ("in", "O")] + [(w, "B-LOC" if i == 0 else "I-LOC") for i, w in enumerate(place)]
        out.append(sentence)
    return out


@pytest.mark.parametrize(
    "split, rows, message",
    [
        (
            "test",
            [[("john", "B-PER"), ("x", "B-ORG")]],
            "data.test has tags never seen in train: B-ORG; the model cannot predict them",
        ),
    ],
)
def test_tags_never_seen_in_train_are_refused_before_training(tmp_path, split, rows, message):
    train = _conll(tmp_path / "train.conll", _ner_sentences(20, 0))
    other = _conll(tmp_path / f"{split}.conll", rows)
    out = subprocess.run(
        [
            *CLI,
            "experiment=pos",
            "data=files",
            f"data.train={train}",
            f"data.validation={train}",
            f"data.test={other}",
            "data.text_column=tokens",
            "data.label_column=tags",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_a_tiny_ner_run_scores_entities_and_its_export_tags_alike_in_a_pipeline(tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    train = _conll(tmp_path / "train.conll", _ner_sentences(300, 0))
    test = _conll(tmp_path / "test.conll", _ner_sentences(30, 1))
    run = tmp_path / "run"
    out = subprocess.run(
        [
            *CLI,
            "experiment=pos",
            "data=files",
            f"data.train={train}",
            f"data.test={test}",
            "data.text_column=tokens",
            "data.label_column=tags",
            "trainer.max_epochs=4",
            "tokenizer.vocab_size=200",
            "logger=none",
            "callbacks.progress_bar=false",
            f"hydra.run.dir={run}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test/acc", "test/precision", "test/recall", "test/f1", "test/words_unscored"} <= set(metrics)
    assert metrics["test/f1"] > 0.9 and metrics["test/words_unscored"] == 0  # an easy pattern, learned

    model = AutoModelForTokenClassification.from_pretrained(run / "export").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "export")
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer, ignore_labels=[])
    for sentence in _ner_sentences(30, 1)[:10]:
        words = [w for w, _ in sentence]
        enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            ours = model(**enc).logits[0].argmax(-1).tolist()
        firsts = {}
        for j, w in enumerate(enc.word_ids()):
            if w is not None and w not in firsts:
                firsts[w] = j
        theirs = {e["index"]: e["entity"] for e in tagger(" ".join(words))}
        assert [theirs[j] for j in firsts.values()] == [model.config.id2label[ours[j]] for j in firsts.values()]


def test_a_hub_datasets_class_label_tags_are_read_as_their_names():
    from datasets import ClassLabel, Features, Sequence, Value

    from transferlab.data.loading import _label_names

    features = Features(
        {
            "tokens": Sequence(Value("string")),
            "ner_tags": Sequence(ClassLabel(names=["O", "B-PER", "I-PER"])),
            "topic": ClassLabel(names=["news", "sport"]),
        }
    )
    ds = Dataset.from_dict(
        {"tokens": [["Ann", "Lee", "ran"]], "ner_tags": [[1, 2, 0]], "topic": [1]}, features=features
    )
    named = _label_names(ds, ["tokens", "ner_tags", "topic"])
    assert named["ner_tags"][:] == [["B-PER", "I-PER", "O"]] and named["topic"][:] == ["sport"]
    assert named["tokens"][:] == [["Ann", "Lee", "ran"]]


def test_data_format_reads_a_conll_file_whatever_its_name(tmp_path):
    from transferlab.data.files import read_file

    path = tmp_path / "train.txt"
    path.write_text("John B-PER\nruns O\n\n")
    assert read_file(str(path), "train", "strict", "conll")["tags"][:] == [["B-PER", "O"]]
