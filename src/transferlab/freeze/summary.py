"""The trainable-vs-total parameter table printed before training."""

from __future__ import annotations


def parameter_summary(model) -> dict:
    """Trainable and total parameter counts, each tied/shared tensor counted once, with one row per top-level module
    of the task model (a peft model is looked through, so its rows are the wrapped model's modules, adapters inside,
    then what peft keeps beside the model: prompt tuning's virtual tokens as ``prompt_encoder``)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    seen: set[int] = set()
    rows = []

    def count(params) -> tuple[int, int]:
        trainable = total = 0
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
                trainable += p.numel() if p.requires_grad else 0
        return trainable, total

    for name, child in inner.named_children():
        trainable, total = count(child.parameters())
        if total:  # a tied lm_head owns nothing of its own: its tensor was counted with the embeddings
            rows.append((name, trainable, total))
    trainable, total = count(inner.parameters(recurse=False))
    if total:
        rows.append(("(own)", trainable, total))
    if inner is not model:
        for name, child in model.named_children():
            trainable, total = count(child.parameters())  # the wrapped model's tensors are counted already
            if total:
                rows.append((name, trainable, total))
    trainable, total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    return {"trainable": trainable, "total": total, "share": trainable / total if total else 0.0, "rows": rows}


def format_parameter_table(summary: dict) -> str:
    """A plain aligned text table; it prints the same in a log file and a rich console."""
    lines = [("module", "trainable", "total", "share")]
    for name, trainable, total in summary["rows"]:
        lines.append((name, f"{trainable:,}", f"{total:,}", f"{trainable / total:.1%}"))
    lines.append(("total", f"{summary['trainable']:,}", f"{summary['total']:,}", f"{summary['share']:.1%}"))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join(
        f"{name:<{widths[0]}}  {a:>{widths[1]}}  {b:>{widths[2]}}  {c:>{widths[3]}}" for name, a, b, c in lines
    )
