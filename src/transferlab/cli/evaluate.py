"""`transferlab-eval ckpt_path=PATH [overrides]`: test a checkpoint with the config of the run that wrote it.

Overrides apply on top of that run's saved config, e.g. `data=files data.test=new.csv` to score new data
(the labels must be ones the model was trained on). The run's own files stay as they are: this evaluation's
metrics.json (with its checkpoint and overrides), predictions/ and eval-set files go to <run>/eval/<time>_<pid>/.
"""

import json
import os
import sys
from pathlib import Path

from transferlab.cli.front import report, verbose_requested
from transferlab.errors import TransferlabError


def _load_config(ckpt: Path, overrides: list):
    from omegaconf import OmegaConf

    from transferlab.config import setup
    from transferlab.config.validate import validate

    setup()
    run_dir = ckpt.resolve().parent.parent
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise TransferlabError(
            f"{ckpt}: no {saved.relative_to(run_dir.parent)} beside it; give a checkpoint inside a transferlab run dir"
        )
    cfg = OmegaConf.load(saved)
    OmegaConf.set_struct(cfg, True)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except Exception as e:
        raise TransferlabError(f"bad override: {str(e).splitlines()[0]}") from None
    cfg.resume, cfg.logger.wandb, cfg.logger.csv, cfg.test = "never", None, False, True
    validate(cfg)
    return cfg, run_dir


def _check_checkpoint(ckpt: Path) -> None:
    """A file that is no checkpoint answers in one line here, before the data is read and prepared."""
    from transferlab.run.preflight import read_checkpoint

    fixes = (
        "give a .ckpt from a run's checkpoints/ (best-*.ckpt or last.ckpt)",
        "to score an export on new data use transferlab-predict EXPORT INPUT",
    )
    read_checkpoint(str(ckpt), f"ckpt_path={ckpt}", fixes, needs=("state_dict",))


def evaluate(argv: list) -> dict:
    args = dict(a.split("=", 1) for a in argv if a.startswith("ckpt_path="))
    if "ckpt_path" not in args:
        raise TransferlabError("usage: transferlab-eval ckpt_path=<run>/checkpoints/<file>.ckpt [overrides]")
    ckpt = Path(args["ckpt_path"])
    if not ckpt.is_file():
        raise TransferlabError(f"ckpt_path={ckpt}: no such checkpoint file")
    _check_checkpoint(ckpt)
    overrides = [a for a in argv if not a.startswith(("ckpt_path=", "verbose="))]
    cfg, run_dir = _load_config(ckpt, overrides)
    from rich.console import Console

    from transferlab.run.assemble import assemble
    from transferlab.run.outputs import write_metrics

    console = Console(stderr=True)
    out = _out_dir(run_dir)
    a = assemble(cfg, run_dir, [], True, console, written=out)
    out.mkdir(parents=True)  # after the data and model were checked: a refused evaluation leaves no dir
    results = a.trainer.test(a.module, datamodule=a.datamodule, ckpt_path=str(ckpt), verbose=False)
    metrics = {k: float(v) for result in results for k, v in result.items()}
    record = {"checkpoint": os.path.relpath(ckpt, run_dir), "overrides": overrides, **metrics}
    write_metrics(out, record)
    console.print(f"eval: {out} (metrics.json, and the files the objective writes)", soft_wrap=True)
    print(json.dumps(metrics, indent=2))
    return metrics


def _out_dir(run_dir: Path) -> Path:
    """A new <run>/eval/<time>_<pid>: never a file of the run itself, nor an earlier evaluation's."""
    import time

    return run_dir / "eval" / f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"


def main() -> None:
    argv = sys.argv[1:]
    try:
        evaluate(argv)
    except Exception as e:
        report(e, verbose_requested(argv))
        sys.exit(2 if isinstance(e, TransferlabError) else 1)


if __name__ == "__main__":
    main()
