"""What a run leaves behind: metrics.json (flat keys + status), export/ (save_pretrained model + tokenizer, and
transferlab.json: the objective that trained it) and, for objectives that write them, predictions/<split>.jsonl."""

import json
import math
from pathlib import Path

from transferlab.cache import write_atomic
from transferlab.errors import Interrupted


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    payload = json.dumps({k: _plain(v) for k, v in sorted(metrics.items())}, indent=2)
    return write_atomic(run_dir / "metrics.json", payload + "\n")


def write_jsonl(path: Path, rows: list) -> Path:
    return write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_artifacts(run_dir: Path, files: dict) -> None:
    """An objective's eval-set files ({name: bytes}) into the run dir, each whole or not at all."""
    for name, content in files.items():
        write_atomic(run_dir / name, content)


def failure_record(error: BaseException) -> dict:
    """status: interrupted for a run stopped by a signal (in fit or while preparing data: signals.py), else failed."""
    status = "interrupted" if isinstance(error, (Interrupted, KeyboardInterrupt)) else "failed"
    return {"status": status, "error": f"{type(error).__name__}: {' '.join(str(error).split())}"}


def record_config_failure(argv: list, error: BaseException) -> None:
    """A config error stops a run before Hydra makes its dir. With an explicit hydra.run.dir that does not exist yet,
    leave metrics.json there (status failed) for whatever watches the run; an existing dir is an earlier run's and
    is never written to."""
    dirs = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    if "-m" in argv or "--multirun" in argv or len(dirs) != 1 or "${" in dirs[0]:
        return
    run_dir = Path(dirs[0]).expanduser()
    if not run_dir.exists():
        write_metrics(run_dir, failure_record(error))


RECORD = "transferlab.json"  # in an export: what transferlab-predict infers with


def export(model, tokenizer, export_dir: Path, objective) -> Path:
    """HF save_pretrained (safetensors) of the task model and the tokenizer: loadable by AutoModel/AutoTokenizer.
    Beside them, RECORD: the objective, its config and the data settings it read (its columns, max_seq_len)."""
    export_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(export_dir)
    tokenizer.save_pretrained(export_dir)
    keys = [*objective.fields.values(), "max_seq_len"]
    record = {
        "objective": objective.name,
        "objective_config": objective.export_config(),
        "data": {key: objective.data_cfg.get(key) for key in keys},
    }
    (export_dir / RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return export_dir
