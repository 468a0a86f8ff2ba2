"""Extractive QA's windows, what its evaluation and its inference on new rows share: a question and its context cut
into windows (tokenizer overflow), batched with each token's character offsets in the context, each window's n-best
spans (objectives/spans.py) and the best span over an example's windows."""

from transferlab.errors import TransferlabError
from transferlab.objectives.base import model_inputs


def check_windows(where: str, batch, tokenizer, room: int, length: int, stride: int) -> None:
    """Every question leaves its context room in a window: at least one token, and more than doc_stride tokens when
    the context needs more than one window (neighbours share doc_stride tokens)."""
    lengths = lambda texts: [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]  # noqa: E731
    for question, n, m in zip(batch["question"], lengths(batch["question"]), lengths(batch["context"])):
        left = max(0, room - n)
        if left < 1 or (m > left and left <= stride):
            raise TransferlabError(
                f"{where}: the question {question[:60]!r} is {n} tokens, "
                f"which leaves {left} of objective.max_seq_len={length} "
                f"for its context of {m}, not more than objective.doc_stride={stride}; raise objective.max_seq_len "
                "(data.max_seq_len), lower objective.doc_stride, or shorten the question"
            )


def windows(tokenizer, batch, cfg, types: bool):
    """Each question with its context, cut into windows of cfg.max_seq_len sharing cfg.doc_stride tokens."""
    return tokenizer(
        batch["question"],
        batch["context"],
        truncation="only_second",
        max_length=cfg.max_seq_len,
        stride=cfg.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=types,
        verbose=False,
    )


def collator(tokenizer, columns: tuple, keep_ids: bool, offsets: bool):
    from transferlab.objectives.collate import PadCollator

    aligned = {"token_type_ids": 0} if "token_type_ids" in tokenizer.model_input_names else {}
    if offsets:
        aligned.update({"offset_start": -1, "offset_end": -1})
    return PadCollator(tokenizer.pad_token_id, columns=columns, keep_ids=keep_ids, aligned=aligned)


def window_spans(model, batch, cfg) -> tuple[list, list]:
    """Each window's n-best [score, char_start, char_end] in its context (objectives/spans.py), and its null score:
    the first token's start + end logits, where a window without the answer points (SQuAD v2)."""
    from transferlab.objectives.spans import best_spans

    out = model(**model_inputs(batch))
    start_logits, end_logits = out.start_logits.float().tolist(), out.end_logits.float().tolist()
    starts, ends = batch["offset_start"].tolist(), batch["offset_end"].tolist()
    spans = [
        best_spans(start_logits[i], end_logits[i], starts[i], ends[i], cfg.n_best, cfg.max_answer_len)
        for i in range(len(starts))
    ]
    return spans, [s[0] + e[0] for s, e in zip(start_logits, end_logits)]


def best_of(windows_spans) -> dict:
    """example -> the best span over its windows' (example, spans), or None where no window proposes one."""
    best = {}
    for example, spans in windows_spans:
        top = spans[0] if spans else None
        held = best.get(example)
        if example not in best or (top is not None and (held is None or top[0] > held[0])):
            best[example] = top
    return best


def answer(context: str, span) -> tuple:
    """(text, score) of a best span: ("", None) for none."""
    return (context[span[1] : span[2]], round(span[0], 4)) if span else ("", None)
