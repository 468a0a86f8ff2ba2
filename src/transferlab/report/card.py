"""The model card every export carries (export/README.md, the Hugging Face Hub's convention).

YAML front matter for the Hub (library_name, pipeline_tag, tags, datasets, base_model, and model-index with the test
metrics), then what a reader needs: the data and its licence, the objective and freeze policy, trainable and total
parameters, the command that reproduces the run, the metrics and how to load the model.
"""

import shlex


def _dataset(data) -> str:
    return str(data.path) if data.source == "hub" else data.name


def front_matter(cfg, metrics: dict, pipeline_tag: str) -> dict:
    dataset = _dataset(cfg.data)
    test = {k: float(v) for k, v in sorted(metrics.items()) if k.startswith("test/")}
    front = {
        "library_name": "peft" if metrics.get("export/kind") == "adapter" else "transformers",
        **({"pipeline_tag": pipeline_tag} if pipeline_tag else {}),
        "tags": ["transferlab", cfg.objective.name, f"freeze-{cfg.freeze.name}"],
        "datasets": [dataset],
    }
    if not cfg.model.arch and not cfg.model.random_init:
        front["base_model"] = str(cfg.model.name_or_path)
    front["model-index"] = [
        {
            "name": cfg.task_name,
            "results": [
                {
                    "task": {"type": pipeline_tag or cfg.objective.name},
                    "dataset": {"name": dataset, "type": dataset, "split": "test"},
                    "metrics": [{"type": k.split("/", 1)[1], "name": k, "value": round(v, 6)} for k, v in test.items()],
                }
            ],
        }
    ]
    return front


def _usage(path: str, auto_class: str, pipeline_tag: str, kind: str = "model", usage: tuple = ()) -> str:
    from transformers.pipelines import SUPPORTED_TASKS

    if kind == "adapter":  # the freeze policy's adapter form: it says how it loads
        from transferlab.freeze.peft_policy import adapter_usage

        return adapter_usage(path, auto_class)

    lines = [
        f"from transformers import AutoTokenizer, {auto_class}",
        "",
        f'model = {auto_class}.from_pretrained("{path}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{path}")',
    ]
    if pipeline_tag and pipeline_tag in SUPPORTED_TASKS:
        lines += ["", "from transformers import pipeline", "", f'pipe = pipeline("{pipeline_tag}", model="{path}")']
    return "\n".join([*lines, *usage])


def _files_row(artifacts: dict) -> str:
    """The table row naming the objective's eval-set files in the run dir and the split each was scored on."""
    if not artifacts:
        return ""
    by_split: dict = {}
    for name, split in artifacts.items():
        by_split.setdefault(split, []).append(f"`{name}`")
    shown = "; ".join(f"{', '.join(names)} (on the {split} split)" for split, names in by_split.items())
    return f"| eval files (in the run dir) | {shown} |\n"


def model_card(
    cfg,
    metrics: dict,
    summary: dict,
    overrides: list,
    auto_class: str,
    pipeline_tag: str,
    artifacts=None,
    usage: tuple = (),
) -> str:
    """The card's text; `artifacts` are the objective's eval-set files in the run dir ({name: split}), `usage` the
    objective's lines after the load snippet."""
    import yaml

    data, model = cfg.data, cfg.model
    source = (
        f"`{data.path}` (hub)"
        if data.source == "hub"
        else ", ".join(f"{s}: `{data[s]}`" for s in ("train", "validation", "test") if data[s])
    )
    init = f"`{model.name_or_path}`" if not model.arch else f"random weights, `{model.arch}` built from config"
    if model.random_init:
        init = f"random weights, `{model.name_or_path}`'s architecture"
    trainable, total = summary["trainable"], summary["total"]
    rows = "\n".join(f"| `{k}` | {float(v):.4f} |" for k, v in sorted(metrics.items()) if k.startswith("test/"))
    body = f"""# {cfg.task_name}

Trained with transferlab.

| | |
|---|---|
| objective | `{cfg.objective.name}` |
| freeze policy | `{cfg.freeze.name}` |
| data | `{data.name}`: {source} |
| data licence | {data.license or "not stated: check the licence of the data this model was trained on"} |
| initialised from | {init} |
| parameters | {trainable:,} trained of {total:,} ({100 * trainable / max(total, 1):.1f}%) |
{_files_row(artifacts)}
## Reproduce

```bash
{shlex.join(["transferlab-train", *overrides])}
```

## Test metrics

| metric | value |
|---|---|
{rows or "| (no test split was scored) | |"}

## Use

```python
{_usage("path/to/export", auto_class, pipeline_tag, metrics.get("export/kind", "model"), usage)}
```
"""
    return "---\n" + yaml.safe_dump(front_matter(cfg, metrics, pipeline_tag), sort_keys=False) + "---\n\n" + body
