"""Extractive QA's input rules: the layouts of answers it reads, answers where they say they are, and questions with
no answer (SQuAD v2) allowed or refused by objective.allow_no_answer."""

from transferlab.errors import TransferlabError

NO_ANSWER = {"text": [], "answer_start": []}


def _blank(value) -> bool:
    return value is None or str(value).strip() == ""


def flat_answers(split, data_cfg):
    """Flat answer_text + answer_start columns (one answer per row, as a CSV holds them) as SQuAD's answers; both
    cells empty: a question with no answer."""
    columns = split.column_names
    if data_cfg.label_column in columns or not {"answer_text", "answer_start"} <= set(columns):
        return split

    def answers(row):
        text, start = row["answer_text"], row["answer_start"]
        if _blank(text) and _blank(start):
            return {data_cfg.label_column: NO_ANSWER}
        return {data_cfg.label_column: {"text": [text], "answer_start": [int(start)]}}

    return split.map(answers, remove_columns=["answer_text", "answer_start"], desc="answers")


def check_answers(ds, name_row) -> None:
    """Each answer's text is at its answer_start in the context (questions with no answer: check_no_answers)."""
    for begin in range(0, len(ds), 1000):
        rows = ds[begin : begin + 1000]
        for i, (context, answers) in enumerate(zip(rows["context"], rows["answers"])):
            for text, start in zip(answers["text"], answers["answer_start"]):
                found = context[start : start + len(text)]
                if found != text:
                    raise TransferlabError(
                        f"{name_row(begin + i)}: answer {text!r} is not at answer_start {start} of its context "
                        f"(found {found!r}); fix answer_start or the answer text"
                    )


def first_unanswerable(ds) -> int | None:
    """The index of the split's first question with no answer, or None."""
    for b, batch in enumerate(ds.select_columns(["answers"]).iter(batch_size=2000)):
        for i, answers in enumerate(batch["answers"]):
            if not answers["text"]:
                return b * 2000 + i
    return None


def check_no_answers(splits: dict, cfg) -> None:
    """objective.allow_no_answer=false refuses a question with no answer; null (automatic) becomes whether a split
    holds one, in the config the objective and its export read."""
    qa = cfg.objective
    found = {name: first_unanswerable(splits[name]) for name in ("train", "validation", "test") if name in splits}
    found = {name: i for name, i in found.items() if i is not None}
    if qa.allow_no_answer is False and found:
        name, i = next(iter(found.items()))
        data = cfg.data
        where = data.get("path") or data.name if data.source != "files" else data.get(name)
        where = where or f"carved from data.train, {data.train}"
        raise TransferlabError(
            f"data.{name} ({where}): the question {splits[name][i]['question'][:60]!r} has no answer; with "
            "objective.allow_no_answer=false extractive_qa needs at least one per question (SQuAD v1.1); "
            "set objective.allow_no_answer=true to train on unanswerable questions (SQuAD v2)"
        )
    if qa.allow_no_answer is None:
        qa.allow_no_answer = bool(found)
        if qa.tune_null_threshold and not found:
            raise TransferlabError(
                "objective.tune_null_threshold=true, but no split holds a question with no answer (answers "
                '{"text": [], "answer_start": []}); give such questions, or set objective.tune_null_threshold=false'
            )
