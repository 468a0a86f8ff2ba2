"""Token classification (tagging: POS, NER): one tag per word, learned on sub-words.

Rows are lists of words with one tag each. The fast tokenizer's word_ids put each word's tag on its first sub-word;
the rest get -100 (ignored), or the word's tag too with label_all_subwords (a B- tag continues as I-). Metrics are
on words (first sub-words): token accuracy always, and entity precision/recall/F1 (seqeval) when the tags are a
BIO/IOB2/BIOES scheme. A word the tokenizer turns into nothing, or one cut off by max_seq_len, has no sub-word to
predict from: it is left out of the metrics, and the number left out is reported (`*/words_unscored`); on new data
(infer) it gets no tag (null), the others the tag of their first sub-word, as evaluation reads them.
"""

import re
from dataclasses import dataclass

from transferlab.errors import TransferlabError
from transferlab.objectives.base import IGNORE, Objective, model_inputs, needs_fast
from transferlab.objectives.smoothing import CrossEntropyConfig

SCHEME = re.compile(r"^(O|[BIES]-.+)$")


@dataclass
class TokenClassificationConfig(CrossEntropyConfig):
    name: str = "token_classification"
    label_all_subwords: bool = False  # tag every sub-word of a word (default: the first; the rest are ignored)
    strict: bool = False  # seqeval's strict mode: an entity counts only with its exact scheme (IOB2/BIOES)


def tag_vocabulary(train) -> dict:
    """tag -> id from the train split's tags (sorted)."""
    tags = sorted({t for row in train["tags"][:] for t in row})
    if len(tags) < 2:
        raise TransferlabError(f"objective=token_classification needs at least 2 tags in train; found {tags}")
    return {tag: i for i, tag in enumerate(tags)}


def is_entity_scheme(tags) -> bool:
    """BIO/IOB2/BIOES tags (O plus B-/I-/E-/S- prefixes), where entity-level scores apply."""
    return all(SCHEME.match(t) for t in tags) and any(t != "O" for t in tags)


def align(word_ids: list, word_tags: list, all_subwords: bool, inside: dict) -> tuple[list, list]:
    """(labels, first): the tag id per sub-word (IGNORE where no tag goes) and 1 at each word's first sub-word."""
    labels, first, previous = [], [], None
    for word in word_ids:
        if word is None:
            labels.append(IGNORE)
            first.append(0)
        elif word != previous:
            labels.append(word_tags[word])
            first.append(1)
        else:
            labels.append(inside.get(word_tags[word], word_tags[word]) if all_subwords else IGNORE)
            first.append(0)
        previous = word
    return labels, first


def encode_words(tokenizer, words: list, max_len: int):
    """Rows of words as sub-words (their word_ids align tags), as training and inference read them."""
    return tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_len, verbose=False)


def first_tags(predicted: list, first: list, id2tag: dict) -> list:
    """The predicted tags of a row's words that have a first sub-word, in order."""
    return [id2tag[p] for p, f in zip(predicted, first) if f]


class TokenClassification(Objective):
    name = "token_classification"
    Config = TokenClassificationConfig
    fields = {"tokens": "text_column", "tags": "label_column"}
    columns = {"text_column": "tokens", "label_column": "tags"}
    auto_class = "AutoModelForTokenClassification"
    pipeline_tag = "token-classification"
    outputs = ("pred_tags",)
    words = ("tokens",)

    @classmethod
    def check_rows(cls, split, name_row) -> None:
        """One tag per word."""
        for i, (tokens, tags) in enumerate(zip(split["tokens"][:], split["tags"][:])):
            if len(tokens) != len(tags):
                raise TransferlabError(
                    f"{name_row(i)} has {len(tokens)} words but {len(tags)} tags; give one tag per word"
                )

    @classmethod
    def check_splits(cls, splits: dict, cfg) -> None:
        """Every validation/test tag must occur in train."""
        known = set(tag_vocabulary(splits["train"]))
        for split in ("validation", "test"):
            unseen = sorted({t for row in splits[split]["tags"][:] for t in row} - known)
            if unseen:
                shown = ", ".join(unseen[:5]) + (" ..." if len(unseen) > 5 else "")
                raise TransferlabError(
                    f"data.{split} has tags never seen in train: {shown}; the model cannot predict them "
                    "(fix the split, or give train examples of them)"
                )

    @classmethod
    def texts(cls, split, batch_size: int = 1000):
        for i in range(0, len(split), batch_size):
            yield [" ".join(words) for words in split[i : i + batch_size]["tokens"]]

    def __init__(self, cfg, data_cfg, tokenizer, train):
        from torch import nn

        from transferlab.objectives.metrics import FiniteMean, per_stage

        super().__init__(cfg, data_cfg, tokenizer, train)
        needs_fast(tokenizer, self.name, "its word_ids align tags to sub-words")
        self.tag2id = tag_vocabulary(train)
        self.id2tag = {i: t for t, i in self.tag2id.items()}
        self.entities = is_entity_scheme(self.tag2id)
        self.metrics = per_stage(lambda: nn.ModuleDict({"acc": FiniteMean()}))

    def prepare(self, split: str, dataset):
        from transferlab.data.prepared import Rows

        tokenizer, max_len, tag2id, all_subwords = (
            self.tokenizer,
            self.data_cfg.max_seq_len,
            self.tag2id,
            self.cfg.label_all_subwords,
        )
        inside = {i: tag2id.get("I-" + t[2:], i) for t, i in tag2id.items() if t.startswith("B-")}

        def encode(batch):
            enc = encode_words(tokenizer, batch["tokens"], max_len)
            labels, first, words = [], [], []
            for row, tags in enumerate(batch["tags"]):
                ids = [tag2id[t] for t in tags]
                row_labels, row_first = align(enc.word_ids(row), ids, all_subwords, inside)
                labels.append(row_labels)
                first.append(row_first)
                words.append(len(tags))
            return {"input_ids": enc["input_ids"], "labels": labels, "first": first, "words": words}

        settings = {"objective": self.name, "max_len": max_len, "tags": tag2id, "all_subwords": all_subwords, "v": 1}
        return Rows.prepare(
            dataset, encode, tokenizer, settings, ["words"], self.data_cfg.num_proc, aligned=("labels", "first")
        )

    def collator(self, stage: str):
        from transferlab.objectives.collate import PadCollator

        return PadCollator(
            self.tokenizer.pad_token_id,
            columns=("words",),
            keep_ids=stage != "train",
            aligned={"labels": IGNORE, "first": 0},
        )

    def model_config(self) -> dict:
        return {"num_labels": len(self.tag2id), "id2label": dict(self.id2tag), "label2id": dict(self.tag2id)}

    def step(self, model, batch, stage: str):
        from torch.nn.functional import cross_entropy

        from transferlab.objectives.smoothing import smoothing

        logits = model(**model_inputs(batch)).logits.float()
        labels = batch["labels"].flatten()
        loss = cross_entropy(
            logits.flatten(0, 1), labels, ignore_index=IGNORE, label_smoothing=smoothing(self.cfg, stage)
        )
        first = batch["first"].bool()
        self.metrics[stage]["acc"].update((logits.argmax(-1) == batch["labels"]).float()[first])
        return loss

    def predict(self, model, batch) -> list:
        """Per sentence: the gold and predicted tags of its scored words, and how many words it has."""
        logits = model(**model_inputs(batch)).logits
        predicted, labels, first = logits.argmax(-1).tolist(), batch["labels"].tolist(), batch["first"].tolist()
        return [
            {
                "id": example,
                "gold": first_tags(labels[i], first[i], self.id2tag),
                "predicted": first_tags(predicted[i], first[i], self.id2tag),
                "words": int(batch["words"][i]),
            }
            for i, example in enumerate(batch["ids"])
        ]

    @classmethod
    def infer(cls, cfg, model, tokenizer, rows: list, options) -> list:
        """pred_tags: a tag per word (null for a word with no sub-word to predict from)."""
        from transferlab.objectives.collate import PadCollator, by_length, on_device

        collate, id2tag = PadCollator(tokenizer.pad_token_id, columns=()), model.config.id2label

        def run(batch: list, first: int) -> list:
            words = [r["tokens"] if isinstance(r["tokens"], list) else r["tokens"].split() for r in batch]
            enc = encode_words(tokenizer, words, options.max_seq_len)
            predicted = model(**model_inputs(on_device(collate([{"input_ids": i} for i in enc["input_ids"]]), model)))
            predicted = predicted.logits.argmax(-1).tolist()
            out = []
            for i, row in enumerate(words):
                # aligned with each word's own index as its tag: which word each first sub-word starts
                at, firsts = align(enc.word_ids(i), list(range(len(row))), False, {})
                tagged = dict(zip(first_tags(at, firsts, range(len(row))), first_tags(predicted[i], firsts, id2tag)))
                out.append({"pred_tags": [tagged.get(w) for w in range(len(row))]})
            return out

        return by_length(rows, lambda r: len(r["tokens"]), run, options)

    def evaluate(self, stage: str, predictions: list) -> dict:
        out = {"words_unscored": float(sum(r["words"] - len(r["gold"]) for r in predictions))}
        if self.entities:
            from seqeval.metrics import f1_score, precision_score, recall_score
            from seqeval.scheme import IOB2, IOBES

            gold = [r["gold"] for r in predictions]
            predicted = [r["predicted"] for r in predictions]
            kwargs = {}
            if self.cfg.strict:
                scheme = IOBES if any(t.startswith(("E-", "S-")) for t in self.tag2id) else IOB2
                kwargs = {"mode": "strict", "scheme": scheme}
            for name, score in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
                out[name] = float(score(gold, predicted, zero_division=0, **kwargs))
        return out
