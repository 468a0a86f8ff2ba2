"""`transferlab-predict EXPORT INPUT [--out PATH]`: run an export on new, unlabeled data.

EXPORT is an export dir (a run's export/, shared on its own: no run dir is needed). What it predicts is its
objective's (Objective.infer, with the encoding and decoding the run's evaluation used), named by the export's
transferlab.json, or for an export from elsewhere, by its architecture (the objective whose HF auto class builds
it, with its default config). INPUT is a csv/tsv/jsonl/json/parquet/txt/conll file read by the same readers as
data=files (--format squad for SQuAD JSON; --format messages|alpaca|sharegpt for conversations an sft export
continues: the reply after the last user turn, or the last assistant turn generated anew), or - for stdin (one
text a line). Output: JSONL (or CSV, by --out's extension): each input row as read, its prediction in columns of
its own (the objective's `outputs`; an input column of such a name is refused). Rows are batched by length; a
terminal shows a progress bar. Where the export generates, the decoding options of transferlab-generate
(--max-new-tokens, --num-beams, --top-k, ...) replace the run's objective.generation, with its rules.
"""

import argparse
import json
import sys
from pathlib import Path

from transferlab.errors import TransferlabError


def _architectures(auto_class: str) -> set:
    """The architectures a transformers auto class builds: its MODEL_FOR_*_MAPPING_NAMES values."""
    import transformers

    names = getattr(transformers, auto_class)._model_mapping._model_mapping  # that MODEL_FOR_*_MAPPING_NAMES dict
    return {a for value in names.values() for a in ([value] if isinstance(value, str) else value)}


def objective_of(export: Path) -> tuple:
    """(objective class, its config, the data settings its run read) of an export dir, read before weights load."""
    import transformers
    from omegaconf import OmegaConf

    from transferlab.models.hub import check_tokenizer_files
    from transferlab.objectives import OBJECTIVES
    from transferlab.run.outputs import RECORD

    if not (export / "config.json").is_file():
        raise TransferlabError(f"{export}: not an export dir (no config.json); give a run's export/")
    check_tokenizer_files(export, str(export), "copy the tokenizer files the model was trained with into it")
    predicting = [name for name, cls in OBJECTIVES.items() if cls.outputs]
    instead = f"give the export of a {', '.join(predicting[:-1])} or {predicting[-1]} run"
    if (export / RECORD).is_file():
        record = json.loads((export / RECORD).read_text(encoding="utf-8"))
        cls = OBJECTIVES.get(record["objective"])
        if cls is None or not cls.outputs:
            what = "not an objective of this transferlab" if cls is None else "predicts nothing on new data"
            raise TransferlabError(f"{export}: an export of objective={record['objective']}, which {what}; {instead}")
        return cls, OmegaConf.merge(OmegaConf.structured(cls.Config), record["objective_config"]), record["data"]
    if (export / "probe.json").is_file():  # a probe exported before transferlab.json: probes train on features
        found = [c for c in OBJECTIVES.values() if c.outputs and c.reads_features]
    else:
        config = transformers.AutoConfig.from_pretrained(export)
        architecture = (config.architectures or ["?"])[0]
        found = [c for c in OBJECTIVES.values() if c.outputs and architecture in _architectures(c.auto_class)]
        if not found:
            raise TransferlabError(
                f"{export}: a {architecture}, which predicts nothing transferlab-predict reads; {instead}"
            )
        found.sort(key=lambda c: c.problem_type != config.problem_type)  # e.g. multi-label's, where it says so
    return found[0], OmegaConf.structured(found[0].Config), {}


def _has_chat_template(export: Path) -> bool:
    """Whether the export's tokenizer files hold a chat template (transformers' chat_template.jinja, or the older
    tokenizer_config.json key), read before any weights load."""
    config = export / "tokenizer_config.json"
    in_config = config.is_file() and bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    return (export / "chat_template.jinja").is_file() or in_config


def load(export: Path, objective_cls):
    """(model in eval mode, tokenizer) of an export dir, the model as its objective's HF class (or a probe)."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(export)
    if (export / "probe.json").is_file():
        from transferlab.freeze.probe import load_probe

        return load_probe(export), tokenizer
    return getattr(transformers, objective_cls.auto_class).from_pretrained(export).eval(), tokenizer


def write(path: str | None, rows: list, predictions: list) -> None:
    """Each row as read, then its prediction. CSV: a string cell as it is, a missing one empty, anything else (a list,
    a number or a boolean read from JSON) as JSON writes it."""
    merged = [{**row, **pred} for row, pred in zip(rows, predictions)]
    if path and path.endswith(".csv"):
        import csv

        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(merged[0]))
            writer.writeheader()
            for row in merged:
                writer.writerow(
                    {
                        k: v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                        for k, v in row.items()
                    }
                )
        return
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in merged)
    if path:
        Path(path).write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)


def _columns(args, objective_cls, data: dict) -> dict:
    """field -> the input column holding it: --<field>-column, else the run's column, else the field's name. An
    optional field (a pair's second text) is read when the run read it, and refused when it did not."""
    from transferlab.objectives.base import OPTIONAL_KEYS, input_fields

    columns = {}
    for f in input_fields(objective_cls):
        key, given = objective_cls.fields[f], getattr(args, f"{f}_column", None)
        if key in OPTIONAL_KEYS and not data.get(key):
            if given:
                raise TransferlabError(
                    f"--{f.replace('_', '-')}-column={given}: this export was trained without data.{key}, so it "
                    f"reads no {f}; drop the option"
                )
            continue
        columns[f] = given or data.get(key) or f
    return columns


def _decoding(args, objective_cls, cfg) -> None:
    """The decoding flags given, in place of the run's objective.generation where the export generates (--top-k
    there is sampling's); refused where it does not. Checked before anything loads."""
    from transferlab.objectives.generation import given, overridden

    options = given(args)
    if "generation" in cfg:
        cfg.generation = overridden(cfg.generation, options)
        return
    options.pop("top_k", None)  # the k most likely labels, where the export ranks them
    if options:
        flag = "--" + next(iter(options)).replace("_", "-")
        raise TransferlabError(
            f"{flag}: a {objective_cls.name} export generates no text, so it has no decoding options; drop {flag}"
        )


def _progress(show: bool):
    if not show:
        return iter
    from tqdm import tqdm

    return lambda batches: tqdm(batches, desc="predict", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    from transferlab.objectives import OBJECTIVES
    from transferlab.objectives.base import input_fields
    from transferlab.objectives.generation import add_flags

    parser = argparse.ArgumentParser(prog="transferlab-predict", description=__doc__.splitlines()[0])
    parser.add_argument("export", help="an export dir (a run's export/)")
    parser.add_argument("input", help="a data file (the formats of data=files), or - for stdin, one text a line")
    parser.add_argument("--out", help="output file: .jsonl (default: stdout) or .csv")
    parser.add_argument(
        "--format",
        default="auto",
        help="the input's format when its extension does not say (e.g. squad, conll), or a chat format "
        "(messages, alpaca, sharegpt) for an sft export to continue conversations",
    )
    for field in sorted({f for cls in OBJECTIVES.values() if cls.outputs for f in input_fields(cls)}):
        parser.add_argument(
            f"--{field.replace('_', '-')}-column",
            help=f"the input column holding the {field} (default: the run's, else {field})",
        )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--top-k", type=int, help="where the export ranks labels: the k most likely (1); where it samples: its top_k"
    )
    add_flags(parser, keep_the_runs=True, skip=("top_k",))  # where it generates: the run's options unless given
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv=None) -> None:
    from transferlab.cli.front import report

    args = _parser().parse_args(argv)
    try:
        for flag in ("top_k", "batch_size"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise TransferlabError(f"--{flag.replace('_', '-')}={value} must be >= 1")
        from transferlab.cli.predict_input import read
        from transferlab.data.chat import CHAT_FORMATS
        from transferlab.models.architectures import max_positions
        from transferlab.objectives.base import InferOptions

        export = Path(args.export)
        objective_cls, cfg, data = objective_of(export)
        _decoding(args, objective_cls, cfg)
        columns = _columns(args, objective_cls, data)
        given = {f: getattr(args, f"{f}_column") for f in columns if getattr(args, f"{f}_column", None)}
        rows, inputs = read(args.input, args.format, objective_cls, columns, given)
        if args.format in CHAT_FORMATS and not _has_chat_template(export):
            raise TransferlabError(
                f"--format {args.format}: {export} has no chat template to render conversations with (an sft run's "
                "export keeps one); give such an export, or give text rows without --format"
            )
        model, tokenizer = load(export, objective_cls)
        model.to(args.device)
        options = InferOptions(
            max_seq_len=data.get("max_seq_len") or max_positions(model.config.to_dict()) or tokenizer.model_max_length,
            batch_size=args.batch_size,
            top_k=args.top_k or 1,
            progress=_progress(sys.stderr.isatty()),
        )
        write(args.out, rows, objective_cls.infer(cfg, model, tokenizer, inputs, options))
    except Exception as e:
        report(e, args.verbose)
        sys.exit(2 if isinstance(e, TransferlabError) else 1)


if __name__ == "__main__":
    main()
