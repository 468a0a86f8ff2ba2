"""What a run leaves behind: metrics.json (flat keys + status) and export/ (save_pretrained model + tokenizer)."""

import json
import math
import os
import tempfile
from pathlib import Path


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    """Atomic write (temp file + rename): a reader never sees half a file."""
    path = run_dir / "metrics.json"
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({k: _plain(v) for k, v in sorted(metrics.items())}, indent=2)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".metrics.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(payload + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def export(model, tokenizer, export_dir: Path) -> Path:
    """HF save_pretrained (safetensors) of the task model and the tokenizer: loadable by AutoModel/AutoTokenizer."""
    export_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(export_dir)
    tokenizer.save_pretrained(export_dir)
    return export_dir
